/* ops: see ops.h. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <msgpack.h>
#include <xxhash.h>

#include "auth.h"
#include "cli.h"
#include "mpjson.h"
#include "ops.h"
#include "proto.h"

/* The agent's snapshot files (agent/persist.h; docs/operations.md). */
#define FILE_MAGIC	"DKVC\x00\x01\r\n"
#define FILE_MAGIC_LEN	8
#define FILE_MAX_RECORD	(64u << 20)
/* restore: update requests in flight at once */
#define RESTORE_WINDOW	256
/* health --wait without -t gives up after this long */
#define HEALTH_WAIT_MS	60000

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

static void
pack_cstr(msgpack_packer *pk, const char *s)
{
	msgpack_pack_str_with_body(pk, s, strlen(s));
}

/* ---- one request, one reply ---- */

struct reply {
	msgpack_sbuffer sb;		/* the last message's bytes */
};

static int
keep_cb(void *arg, const uint8_t *msg, size_t len)
{
	struct reply *r = arg;

	r->sb.size = 0;
	msgpack_sbuffer_write(&r->sb, (const char *)msg, len);
	return (0);
}

/*
 * {action[, node]} and its reply unpacked into *o (zone: the caller's).
 * Returns 0 or the exit status after a message.
 */
static int
call(distkv *c, const char *action, const char *node, struct reply *r,
    msgpack_zone *zone, msgpack_object *o)
{
	msgpack_sbuffer req;
	msgpack_packer pk;
	int rc;

	msgpack_sbuffer_init(&req);
	msgpack_packer_init(&pk, &req, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 1 + (node != NULL));
	pack_cstr(&pk, "action");
	pack_cstr(&pk, action);
	if (node != NULL) {
		pack_cstr(&pk, "node");
		pack_cstr(&pk, node);
	}
	rc = distkv_request(c, req.data, req.size, keep_cb, r);
	msgpack_sbuffer_destroy(&req);
	if (rc != 0)
		return (auth_refused(c, rc, action));
	if (proto_unpack((const uint8_t *)r->sb.data, r->sb.size, zone,
	    o) != 0 || o->type != MSGPACK_OBJECT_MAP)
		return (cli_err(EXIT_AGENT, "%s: malformed reply", action));
	return (0);
}

static bool
get_bool(const msgpack_object *m, const char *k)
{
	const msgpack_object *o = proto_map_get(m, k);

	return (o != NULL && o->type == MSGPACK_OBJECT_BOOLEAN &&
	    o->via.boolean);
}

static uint64_t
get_u64(const msgpack_object *m, const char *k, bool *has)
{
	const msgpack_object *o = proto_map_get(m, k);
	uint64_t v = 0;

	*has = o != NULL && proto_get_uint(o, &v) == 0;
	return (v);
}

/* JSON of the reply's fields but seq and tock, on one line. */
static int
print_json(const msgpack_object *m)
{
	msgpack_sbuffer b;
	bool first = true;
	int rc = 0;

	msgpack_sbuffer_init(&b);
	msgpack_sbuffer_write(&b, "{", 1);
	for (uint32_t i = 0; i < m->via.map.size && rc == 0; i++) {
		const msgpack_object_kv *kv = &m->via.map.ptr[i];

		if (kv->key.type != MSGPACK_OBJECT_STR ||
		    proto_str_eq(&kv->key, "seq") ||
		    proto_str_eq(&kv->key, "tock"))
			continue;
		if (!first)
			msgpack_sbuffer_write(&b, ",", 1);
		first = false;
		if ((rc = mpjson_put_string(&b, kv->key.via.str.ptr,
		    kv->key.via.str.size)) == 0) {
			msgpack_sbuffer_write(&b, ":", 1);
			rc = mpjson_format(&b, &kv->val, 0);
		}
	}
	msgpack_sbuffer_write(&b, "}\n", 2);
	if (rc == 0)
		fwrite(b.data, 1, b.size, stdout);
	msgpack_sbuffer_destroy(&b);
	return (rc == 0 ? 0 : cli_err(EXIT_AGENT, "cannot format the reply"));
}

/* ---- members ---- */

static void
print_member(const msgpack_object *m)
{
	const msgpack_object *name = proto_map_get(m, "name");
	const msgpack_object *st = proto_map_get(m, "status");
	const msgpack_object *seen = proto_map_get(m, "last_seen");
	char tick[32], lag[32], ago[32];
	uint64_t v;
	bool has;

	v = get_u64(m, "tick", &has);
	snprintf(tick, sizeof(tick), has ? "%" PRIu64 : "-", v);
	v = get_u64(m, "lag", &has);
	snprintf(lag, sizeof(lag), has ? "%" PRIu64 : "-", v);
	if (seen != NULL && (seen->type == MSGPACK_OBJECT_FLOAT64 ||
	    seen->type == MSGPACK_OBJECT_FLOAT32))
		snprintf(ago, sizeof(ago), "%.1fs", seen->via.f64);
	else
		snprintf(ago, sizeof(ago), "never");
	printf("%-20.*s %-10.*s %10s %-8s %-9s %8" PRIu64 " %8s%s%s\n",
	    name != NULL && name->type == MSGPACK_OBJECT_STR ?
	    (int)name->via.str.size : 1,
	    name != NULL && name->type == MSGPACK_OBJECT_STR ?
	    name->via.str.ptr : "?",
	    st != NULL && st->type == MSGPACK_OBJECT_STR ?
	    (int)st->via.str.size : 1,
	    st != NULL && st->type == MSGPACK_OBJECT_STR ?
	    st->via.str.ptr : "?", tick,
	    get_bool(m, "reported") ? "yes" : "no", ago,
	    get_u64(m, "missing", &has), lag,
	    get_bool(m, "self") ? "  (this node)" : "",
	    get_bool(m, "forgotten") ? "  (forgotten)" : "");
}

static int
cmd_members(distkv *c, const struct ops_opts *o)
{
	struct reply r;
	msgpack_zone zone;
	msgpack_object m;
	const msgpack_object *ms;
	int rc;

	msgpack_sbuffer_init(&r.sb);
	msgpack_zone_init(&zone, 4096);
	if ((rc = call(c, "get_members", NULL, &r, &zone, &m)) != 0)
		goto out;
	if (o->json) {
		rc = print_json(&m);
		goto out;
	}
	ms = proto_map_get(&m, "members");
	if (ms == NULL || ms->type != MSGPACK_OBJECT_ARRAY) {
		rc = cli_err(EXIT_AGENT, "members: malformed reply");
		goto out;
	}
	printf("%-20s %-10s %10s %-8s %-9s %8s %8s\n", "NODE", "STATUS",
	    "TICK", "REPORTED", "LAST SEEN", "MISSING", "LAG");
	for (uint32_t i = 0; i < ms->via.array.size; i++)
		if (ms->via.array.ptr[i].type == MSGPACK_OBJECT_MAP)
			print_member(&ms->via.array.ptr[i]);
out:
	msgpack_zone_destroy(&zone);
	msgpack_sbuffer_destroy(&r.sb);
	return (rc);
}

/* ---- health ---- */

struct health {
	bool reached, healthy;
	char reason[512];
	char node[160];
	bool ready, standalone, serf, joined;
	uint64_t missing;
};

/* One look: connect, log in, get_members.  Returns 0 or an exit status
 * that waiting cannot change (a refused login). */
static int
health_once(const struct ops_opts *o, struct health *h)
{
	distkv *c = NULL;
	struct reply r;
	msgpack_zone zone;
	msgpack_object m;
	const msgpack_object *n;
	int rc;

	memset(h, 0, sizeof(*h));
	rc = o->connect != NULL ? distkv_connect_url(o->connect, o->tls, &c) :
	    distkv_connect(o->socket, &c);
	if (rc != 0) {
		const char *why = distkv_connect_errmsg();

		/* the agent opens its socket only once it has its data */
		snprintf(h->reason, sizeof(h->reason), "agent at %s not "
		    "reachable (not running, or not ready yet): %s",
		    o->socket, why[0] != '\0' ? why : distkv_strerror(rc));
		return (rc == DISTKV_EINVAL ? EXIT_USAGE : 0);
	}
	h->reached = true;
	if ((rc = auth_login(c, o->ao)) != 0) {
		distkv_close(c);
		return (rc);
	}
	msgpack_sbuffer_init(&r.sb);
	msgpack_zone_init(&zone, 4096);
	if ((rc = call(c, "get_members", NULL, &r, &zone, &m)) != 0)
		goto out;
	n = proto_map_get(&m, "node");
	if (n != NULL && n->type == MSGPACK_OBJECT_STR)
		snprintf(h->node, sizeof(h->node), "%.*s",
		    (int)n->via.str.size, n->via.str.ptr);
	h->ready = get_bool(&m, "ready");
	h->standalone = get_bool(&m, "standalone");
	h->serf = get_bool(&m, "serf");
	h->joined = get_bool(&m, "joined");
	h->missing = get_u64(&m, "missing", &(bool){ false });
	if (!h->ready)
		snprintf(h->reason, sizeof(h->reason), "node %s has not got "
		    "its data yet", h->node);
	else if (!h->standalone && !h->serf)
		snprintf(h->reason, sizeof(h->reason), "node %s is not "
		    "connected to its Serf agent", h->node);
	else if (!h->standalone && !h->joined)
		snprintf(h->reason, sizeof(h->reason), "node %s has not "
		    "joined its cluster (no other member alive)", h->node);
	else if (h->missing > 0)
		snprintf(h->reason, sizeof(h->reason), "node %s misses %"
		    PRIu64 " changes of other nodes (catching up)", h->node,
		    h->missing);
	else
		h->healthy = true;
out:
	msgpack_zone_destroy(&zone);
	msgpack_sbuffer_destroy(&r.sb);
	distkv_close(c);
	return (rc);
}

static int
cmd_health(const struct ops_opts *o)
{
	long long deadline = now_ms() + (o->timeout_ms > 0 ? o->timeout_ms :
	    HEALTH_WAIT_MS);
	struct health h;
	int rc;

	for (;;) {
		if ((rc = health_once(o, &h)) != 0)
			return (rc);
		if (h.healthy || !o->wait || now_ms() >= deadline)
			break;
		usleep(200 * 1000);
	}
	if (o->json) {
		msgpack_sbuffer b;

		msgpack_sbuffer_init(&b);
		printf("{\"healthy\":%s,\"reason\":", h.healthy ? "true" :
		    "false");
		if (h.healthy)
			printf("null");
		else if (mpjson_put_string(&b, h.reason,
		    strlen(h.reason)) == 0)
			fwrite(b.data, 1, b.size, stdout);
		b.size = 0;
		printf(",\"node\":");
		if (mpjson_put_string(&b, h.node, strlen(h.node)) == 0)
			fwrite(b.data, 1, b.size, stdout);
		printf(",\"reachable\":%s,\"ready\":%s,\"standalone\":%s,"
		    "\"serf\":%s,\"joined\":%s,\"missing\":%" PRIu64 "}\n",
		    h.reached ? "true" : "false", h.ready ? "true" : "false",
		    h.standalone ? "true" : "false", h.serf ? "true" : "false",
		    h.joined ? "true" : "false", h.missing);
		msgpack_sbuffer_destroy(&b);
	} else if (h.healthy)
		printf("healthy: node %s is ready%s, nothing missing\n",
		    h.node, h.standalone ? " (standalone)" :
		    ", joined to its cluster");
	if (h.healthy)
		return (0);
	return (cli_err(EXIT_UNHEALTHY, "not healthy: %s%s", h.reason,
	    o->wait ? " (gave up waiting)" : ""));
}

/* ---- forget, metrics ---- */

static int
cmd_forget(distkv *c, const struct ops_opts *o, const char *node)
{
	struct reply r;
	msgpack_zone zone;
	msgpack_object m;
	int rc;

	if (*node == '\0' || strlen(node) > DISTKV_NODE_MAX ||
	    !proto_utf8_valid(node, strlen(node)))
		return (cli_err(EXIT_USAGE, "forget: bad node name"));
	msgpack_sbuffer_init(&r.sb);
	msgpack_zone_init(&zone, 1024);
	if ((rc = call(c, "kill_node", node, &r, &zone, &m)) == 0) {
		if (o->json)
			printf("{\"forgotten\":true}\n");
		else
			printf("node %s forgotten: tombstone purges no longer "
			    "wait for it\n", node);
	}
	msgpack_zone_destroy(&zone);
	msgpack_sbuffer_destroy(&r.sb);
	return (rc);
}

static int
cmd_metrics(distkv *c)
{
	struct reply r;
	msgpack_zone zone;
	msgpack_object m;
	const msgpack_object *t;
	int rc;

	msgpack_sbuffer_init(&r.sb);
	msgpack_zone_init(&zone, 1024);
	if ((rc = call(c, "get_metrics", NULL, &r, &zone, &m)) == 0) {
		t = proto_map_get(&m, "text");
		if (t == NULL || t->type != MSGPACK_OBJECT_STR)
			rc = cli_err(EXIT_AGENT, "metrics: malformed reply");
		else
			fwrite(t->via.str.ptr, 1, t->via.str.size, stdout);
	}
	msgpack_zone_destroy(&zone);
	msgpack_sbuffer_destroy(&r.sb);
	return (rc);
}

/* ---- dump ---- */

struct dumper {
	FILE *f;
	uint64_t size, entries, got;
	bool have_size, bad;
};

static int
dump_cb(void *arg, const uint8_t *msg, size_t len)
{
	struct dumper *d = arg;
	msgpack_zone zone;
	msgpack_object m;
	const msgpack_object *data;
	bool has;

	msgpack_zone_init(&zone, 256);
	if (proto_unpack(msg, len, &zone, &m) != 0 ||
	    m.type != MSGPACK_OBJECT_MAP) {
		d->bad = true;
		goto out;
	}
	if ((data = proto_map_get(&m, "data")) != NULL) {
		if (data->type != MSGPACK_OBJECT_BIN || (d->got == 0 &&
		    (data->via.bin.size < FILE_MAGIC_LEN ||
		    memcmp(data->via.bin.ptr, FILE_MAGIC,
		    FILE_MAGIC_LEN) != 0))) {
			d->bad = true;
			goto out;
		}
		if (fwrite(data->via.bin.ptr, 1, data->via.bin.size,
		    d->f) != data->via.bin.size)
			d->bad = true;
		d->got += data->via.bin.size;
	} else if (proto_map_get(&m, "size") != NULL) {
		d->size = get_u64(&m, "size", &d->have_size);
		d->entries = get_u64(&m, "entries", &has);
	}
out:
	msgpack_zone_destroy(&zone);
	return (d->bad ? 1 : 0);
}

static int
cmd_dump(distkv *c, const struct ops_opts *o, const char *file)
{
	static const char req[] = "\x81\xa6" "action" "\xac" "get_snapshot";
	bool to_stdout = strcmp(file, "-") == 0;
	struct dumper d;
	char tmp[4096];
	int rc, fd;

	memset(&d, 0, sizeof(d));
	if (to_stdout)
		d.f = stdout;
	else {
		if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", file) >=
		    sizeof(tmp))
			return (cli_err(EXIT_USAGE, "dump: file name too long"));
		if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
		    0600)) < 0 || (d.f = fdopen(fd, "wb")) == NULL)
			return (cli_err(EXIT_AGENT, "dump: cannot write %s: %s",
			    tmp, strerror(errno)));
	}
	rc = distkv_request(c, req, sizeof(req) - 1, dump_cb, &d);
	if (rc == 0 && (d.bad || !d.have_size || d.got != d.size)) {
		rc = cli_err(EXIT_AGENT, "dump: %s", d.bad ?
		    "cannot write the file, or the agent sent no snapshot" :
		    "the snapshot arrived incomplete");
		goto fail;
	}
	if (rc != 0) {
		rc = auth_refused(c, rc, "dump");
		goto fail;
	}
	if (to_stdout)
		return (fflush(stdout) == 0 ? 0 : cli_err(EXIT_AGENT,
		    "dump: write error: %s", strerror(errno)));
	/* whole and on disk before it takes the name */
	if (fflush(d.f) != 0 || fsync(fileno(d.f)) != 0) {
		rc = cli_err(EXIT_AGENT, "dump: %s: %s", tmp, strerror(errno));
		goto fail;
	}
	fclose(d.f);
	if (rename(tmp, file) != 0) {
		rc = cli_err(EXIT_AGENT, "dump: cannot rename %s to %s: %s",
		    tmp, file, strerror(errno));
		unlink(tmp);
		return (rc);
	}
	if (o->json)
		printf("{\"file\":\"%s\",\"bytes\":%" PRIu64 ",\"entries\":%"
		    PRIu64 "}\n", file, d.got, d.entries);
	else
		printf("dumped %" PRIu64 " entries (%" PRIu64 " bytes) to %s\n",
		    d.entries, d.got, file);
	return (0);
fail:
	if (!to_stdout) {
		fclose(d.f);
		unlink(tmp);
	}
	return (rc);
}

/* ---- restore ---- */

struct restorer {
	distkv *c;
	unsigned inflight;
	uint64_t sent, applied;
	bool failed;
	char err[512];
	/* the last record's full path, element by element (packed) */
	struct elem {
		uint8_t *p;
		size_t len;
	} path[PROTO_MAX_PATH_DEPTH];
	size_t depth;
};

static int
restore_cb(void *arg, const uint8_t *msg, size_t len)
{
	struct restorer *rs = arg;
	msgpack_zone zone;
	msgpack_object m;
	const msgpack_object *e;
	bool has;

	rs->inflight--;
	msgpack_zone_init(&zone, 256);
	if (proto_unpack(msg, len, &zone, &m) != 0 ||
	    m.type != MSGPACK_OBJECT_MAP) {
		rs->failed = true;
		snprintf(rs->err, sizeof(rs->err), "malformed reply");
	} else if ((e = proto_map_get(&m, "error")) != NULL) {
		if (!rs->failed)
			snprintf(rs->err, sizeof(rs->err), "%.*s",
			    e->type == MSGPACK_OBJECT_STR ?
			    (int)e->via.str.size : 1,
			    e->type == MSGPACK_OBJECT_STR ?
			    e->via.str.ptr : "?");
		rs->failed = true;
	} else
		rs->applied += get_u64(&m, "count", &has);
	msgpack_zone_destroy(&zone);
	return (0);
}

/* Wait for replies until fewer than max requests are in flight. */
static int
restore_drain(struct restorer *rs, unsigned max)
{
	while (rs->inflight > max) {
		struct pollfd pfd = { distkv_fd(rs->c), POLLIN, 0 };
		int rc;

		if (distkv_want_write(rs->c))
			pfd.events |= POLLOUT;
		if (poll(&pfd, 1, 30000) == 0)
			return (DISTKV_ETIMEDOUT);
		if ((rc = distkv_process(rs->c)) != 0)
			return (rc);
	}
	return (0);
}

static int
pack_elem(struct elem *el, const msgpack_object *o)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_object(&pk, *o);
	free(el->p);
	el->p = (uint8_t *)sb.data;	/* taken over */
	el->len = sb.size;
	return (el->p != NULL ? 0 : -ENOMEM);
}

/*
 * Send one record as an `update` request: a value record with its path
 * made whole (spec §2.6: last[:depth] + path), every other field as it
 * is; a state record as it is.
 */
static int
restore_record(struct restorer *rs, const msgpack_object *rec)
{
	const msgpack_object *path = proto_map_get(rec, "path");
	const msgpack_object *depth = proto_map_get(rec, "depth");
	msgpack_sbuffer sb;
	msgpack_packer pk;
	uint64_t d = 0;
	uint32_t n = 1;
	int rc;

	if (path != NULL) {
		if (path->type != MSGPACK_OBJECT_ARRAY ||
		    (depth != NULL && (proto_get_uint(depth, &d) != 0 ||
		    d > rs->depth)) ||
		    d + path->via.array.size > PROTO_MAX_PATH_DEPTH) {
			snprintf(rs->err, sizeof(rs->err), "record %" PRIu64
			    ": bad path or depth", rs->sent);
			return (DISTKV_EINVAL);
		}
		for (uint32_t i = 0; i < path->via.array.size; i++)
			if (pack_elem(&rs->path[d + i],
			    &path->via.array.ptr[i]) != 0)
				return (-ENOMEM);
		rs->depth = d + path->via.array.size;
	}
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	for (uint32_t i = 0; i < rec->via.map.size; i++) {
		const msgpack_object *k = &rec->via.map.ptr[i].key;

		n += !(proto_str_eq(k, "depth") || proto_str_eq(k, "action") ||
		    proto_str_eq(k, "seq"));
	}
	msgpack_pack_map(&pk, n);
	pack_cstr(&pk, "action");
	pack_cstr(&pk, "update");
	for (uint32_t i = 0; i < rec->via.map.size; i++) {
		const msgpack_object_kv *kv = &rec->via.map.ptr[i];

		if (proto_str_eq(&kv->key, "depth") ||
		    proto_str_eq(&kv->key, "action") ||
		    proto_str_eq(&kv->key, "seq"))
			continue;
		msgpack_pack_object(&pk, kv->key);
		if (!proto_str_eq(&kv->key, "path")) {
			msgpack_pack_object(&pk, kv->val);
			continue;
		}
		msgpack_pack_array(&pk, (uint32_t)rs->depth);
		for (size_t j = 0; j < rs->depth; j++)
			msgpack_sbuffer_write(&sb, (const char *)rs->path[j].p,
			    rs->path[j].len);
	}
	rc = distkv_async_request(rs->c, sb.data, sb.size, restore_cb, rs,
	    NULL);
	msgpack_sbuffer_destroy(&sb);
	if (rc == 0) {
		rs->inflight++;
		rs->sent++;
	}
	return (rc);
}

static uint32_t
le32(const uint8_t *p)
{
	return ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[3] << 24);
}

/* Read the whole file (it is what an agent holds in RAM anyway). */
static int
read_file(const char *file, uint8_t **buf, size_t *len)
{
	FILE *f = strcmp(file, "-") == 0 ? stdin : fopen(file, "rb");
	size_t cap = 0, n;
	uint8_t *b = NULL, *nb;

	*buf = NULL;
	*len = 0;
	if (f == NULL)
		return (-errno);
	for (;;) {
		if (*len == cap) {
			cap = cap ? cap * 2 : 1 << 16;
			if ((nb = realloc(b, cap)) == NULL) {
				free(b);
				if (f != stdin)
					fclose(f);
				return (-ENOMEM);
			}
			b = nb;
		}
		if ((n = fread(b + *len, 1, cap - *len, f)) == 0)
			break;
		*len += n;
	}
	n = ferror(f);
	if (f != stdin)
		fclose(f);
	if (n != 0) {
		free(b);
		return (-EIO);
	}
	*buf = b;
	return (0);
}

/*
 * This agent's own name among the file's nodes while it has changes of
 * its own: the same (node, tick) would then name two changes.
 */
static bool
own_name_clash(distkv *c, const msgpack_object *rec)
{
	const msgpack_object *nodes = proto_map_get(rec, "nodes"), *t;
	const char *self = distkv_node(c);
	const void *g;
	size_t glen;
	msgpack_zone zone;
	msgpack_object gm;
	uint64_t tick = 0;
	bool clash = false;

	if (nodes == NULL || nodes->type != MSGPACK_OBJECT_MAP ||
	    self == NULL || (g = distkv_greeting(c, &glen)) == NULL)
		return (false);
	msgpack_zone_init(&zone, 512);
	if (proto_unpack(g, glen, &zone, &gm) == 0 &&
	    (t = proto_map_get(&gm, "tick")) != NULL &&
	    proto_get_uint(t, &tick) == 0 && tick > 0)
		for (uint32_t i = 0; i < nodes->via.map.size; i++)
			if (proto_str_eq(&nodes->via.map.ptr[i].key, self))
				clash = true;
	msgpack_zone_destroy(&zone);
	return (clash);
}

static int
cmd_restore(distkv *c, const struct ops_opts *o, const char *file)
{
	struct restorer rs;
	msgpack_zone zone;
	uint8_t *buf;
	size_t len, off;
	long long t0 = now_ms();
	int rc;

	if ((rc = read_file(file, &buf, &len)) != 0)
		return (cli_err(EXIT_USAGE, "restore: cannot read %s: %s",
		    file, strerror(-rc)));
	if (len < FILE_MAGIC_LEN || memcmp(buf, FILE_MAGIC,
	    FILE_MAGIC_LEN) != 0) {
		free(buf);
		return (cli_err(EXIT_USAGE, "restore: %s is not a distkv "
		    "snapshot or log file (bad magic)", file));
	}
	memset(&rs, 0, sizeof(rs));
	rs.c = c;
	msgpack_zone_init(&zone, 4096);
	for (off = FILE_MAGIC_LEN; off < len && rc == 0 && !rs.failed;) {
		size_t rlen, objlen;
		msgpack_object rec;

		if (len - off < 8 || (rlen = le32(buf + off)) == 0 ||
		    rlen > FILE_MAX_RECORD || rlen > len - off - 8 ||
		    XXH32(buf + off + 8, rlen, 0) != le32(buf + off + 4) ||
		    proto_scan(buf + off + 8, rlen, PROTO_MAX_NESTING,
		    &objlen) != 0 || objlen != rlen ||
		    proto_unpack(buf + off + 8, rlen, &zone, &rec) != 0 ||
		    rec.type != MSGPACK_OBJECT_MAP) {
			rc = cli_err(EXIT_USAGE, "restore: %s: the record at "
			    "offset %zu is damaged or cut (nothing after it "
			    "was sent; %" PRIu64 " records were)", file, off,
			    rs.sent);
			break;
		}
		if (rs.sent == 0 && own_name_clash(c, &rec)) {
			rc = cli_err(EXIT_REFUSED, "restore: %s holds changes "
			    "of node %s, this agent's own name, and it has "
			    "changes of its own: restore into an empty node or "
			    "one with another --node name", file,
			    distkv_node(c));
			break;
		}
		if ((rc = restore_drain(&rs, RESTORE_WINDOW - 1)) == 0)
			rc = restore_record(&rs, &rec);
		msgpack_zone_clear(&zone);
		off += 8 + rlen;
		if (rc != 0 && rc != DISTKV_EINVAL)
			rc = auth_refused(c, rc, "restore");
		else if (rc == DISTKV_EINVAL)
			rc = cli_err(EXIT_USAGE, "restore: %s: %s", file,
			    rs.err);
	}
	if (rc == 0 && (rc = restore_drain(&rs, 0)) != 0)
		rc = auth_refused(c, rc, "restore");
	if (rc == 0 && rs.failed)
		rc = cli_err(EXIT_REFUSED, "restore: the agent refused a "
		    "record: %s (%" PRIu64 " records sent)", rs.err, rs.sent);
	else if (rc == 0 && o->json)
		printf("{\"records\":%" PRIu64 ",\"applied\":%" PRIu64
		    ",\"seconds\":%.3f}\n", rs.sent, rs.applied,
		    (double)(now_ms() - t0) / 1000.0);
	else if (rc == 0)
		printf("restored %s: %" PRIu64 " records sent, %" PRIu64
		    " entries changed (the rest were there already)\n", file,
		    rs.sent, rs.applied);
	/* nothing may stay in flight when the handle is closed */
	if (rs.inflight > 0)
		(void)restore_drain(&rs, 0);
	for (size_t i = 0; i < PROTO_MAX_PATH_DEPTH; i++)
		free(rs.path[i].p);
	msgpack_zone_destroy(&zone);
	free(buf);
	return (rc);
}

/* ---- dispatch ---- */

int
ops_command(distkv *c, const char *cmd, const struct ops_opts *o, int argc,
    char **argv)
{
	if (strcmp(cmd, "health") == 0 && argc == 0)
		return (cmd_health(o));
	if (o->wait)
		return (cli_err(EXIT_USAGE, "--wait is for health only"));
	if (strcmp(cmd, "members") == 0 && argc == 0)
		return (cmd_members(c, o));
	if (strcmp(cmd, "forget") == 0 && argc == 1)
		return (cmd_forget(c, o, argv[0]));
	if (strcmp(cmd, "metrics") == 0 && argc == 0)
		return (cmd_metrics(c));
	if (strcmp(cmd, "dump") == 0 && argc == 1)
		return (cmd_dump(c, o, argv[0]));
	if (strcmp(cmd, "restore") == 0 && argc == 1)
		return (cmd_restore(c, o, argv[0]));
	return (cli_err(EXIT_USAGE, "usage: distkv-cli members | health "
	    "[--wait] [-t SECONDS] | forget NODE | metrics | dump FILE | "
	    "restore FILE"));
}
