/*
 * test_serf: agent/serf.c and agent/serfproc.c against real `serf agent`
 * children (serf-notes §8: seed first, unique ports, poll with deadlines)
 * and against a fake Serf agent that sends garbage.
 *
 * Ports: gossip on 127.0.0.{2,3,4}:BASE, RPC on 127.0.0.1:BASE+1..3, where
 * BASE depends on the test process's pid (Criterion forks one per test).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <ev.h>
#include <msgpack.h>

#include "log.h"
#include "proto.h"
#include "serf.h"
#include "serfproc.h"

#define container_of(p, type, member) \
	((type *)(void *)((char *)(p) - offsetof(type, member)))

#define NNODES 3
#define EVENT_LIMIT 2048
#define RX_MAX 128

struct rx {
	char name[64];
	uint8_t data[EVENT_LIMIT];
	size_t len;
};

struct node {
	int idx;
	char dir[256];
	char name[64], bind[64], rpc[64], tag[96], peer[64];
	struct serfproc *proc;
	struct serf *serf;
	int ups, downs;		/* state(true) / state(false) calls */
	size_t nmembers, alive_tagged;
	bool peer_tags_ok;
	struct rx rx[RX_MAX];
	size_t nrx;
};

static struct ev_loop *loop;
static char tmpdir[128];
static int base;
static struct node nodes[NNODES];

/* ---- helpers ---- */

static void
tick_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	(void)l;
	(void)w;
	(void)revents;
}

/* Run the loop until cond(arg) or the deadline; returns cond's result. */
static bool
run_until(bool (*cond)(void *), void *arg, double seconds)
{
	ev_timer tick;
	double deadline = ev_time() + seconds;
	bool ok;

	ev_timer_init(&tick, tick_cb, 0.02, 0.02);
	ev_timer_start(loop, &tick);
	while (!(ok = cond(arg)) && ev_time() < deadline)
		ev_run(loop, EVRUN_ONCE);
	ev_timer_stop(loop, &tick);
	return ok;
}

static bool
never(void *arg)
{
	(void)arg;
	return false;
}

static void
run_for(double seconds)
{
	(void)run_until(never, NULL, seconds);
}

static void
on_user_event(void *arg, const char *name, size_t name_len,
    const uint8_t *payload, size_t len, uint64_t ltime)
{
	struct node *n = arg;
	struct rx *r;

	(void)ltime;
	if (n->nrx == RX_MAX || name_len >= sizeof(r->name) ||
	    len > sizeof(r->data))
		return;
	r = &n->rx[n->nrx++];
	memcpy(r->name, name, name_len);
	r->name[name_len] = '\0';
	if (len > 0)
		memcpy(r->data, payload, len);
	r->len = len;
}

static void
on_members(void *arg, const struct serf_member *m, size_t cnt)
{
	struct node *n = arg;

	n->nmembers = cnt;
	n->alive_tagged = 0;
	n->peer_tags_ok = true;
	for (size_t i = 0; i < cnt; i++) {
		if (strcmp(m[i].status, "alive") != 0)
			continue;
		if (m[i].peer[0] != '\0')
			n->alive_tagged++;
		/* the distkv tag of every node is its gossip IP + ":27589" */
		for (int j = 0; j < NNODES; j++)
			if (strcmp(m[i].name, nodes[j].name) == 0 &&
			    strcmp(m[i].peer, nodes[j].peer) != 0)
				n->peer_tags_ok = false;
	}
}

static void
on_state(void *arg, bool up)
{
	struct node *n = arg;

	if (up)
		n->ups++;
	else
		n->downs++;
}

static const struct serf_callbacks node_cbs = {
	.user_event = on_user_event,
	.members = on_members,
	.state = on_state,
};

static void
node_init(struct node *n, int idx)
{
	memset(n, 0, sizeof(*n));
	n->idx = idx;
	snprintf(n->dir, sizeof(n->dir), "%s/n%d", tmpdir, idx);
	snprintf(n->name, sizeof(n->name), "t%d-n%d", (int)getpid(), idx);
	snprintf(n->bind, sizeof(n->bind), "127.0.0.%d:%d", idx + 2, base);
	snprintf(n->rpc, sizeof(n->rpc), "127.0.0.1:%d", base + 1 + idx);
	snprintf(n->peer, sizeof(n->peer), "127.0.0.%d:27589", idx + 2);
	snprintf(n->tag, sizeof(n->tag), "distkv=127.0.0.%d:27589", idx + 2);
}

static void
node_start_proc(struct node *n, const char *join)
{
	const char *joins[] = { join, NULL };
	const char *tags[] = { n->tag, NULL };
	struct serfproc_config c = {
		.node = n->name,
		.bind = n->bind,
		.rpc_addr = n->rpc,
		.join = join != NULL ? joins : NULL,
		.tags = tags,
		.dir = n->dir,
		.event_size_limit = EVENT_LIMIT,
		.reconnect_interval = "1s",
		.reconnect_timeout = "30s",
		.profile = "lan",
	};
	int rc = serfproc_start(loop, &c, &n->proc);

	cr_assert_eq(rc, 0, "serfproc_start: %s", strerror(-rc));
	cr_assert_gt(serfproc_pid(n->proc), 0);
}

static void
node_open_client(struct node *n)
{
	int rc = serf_open(loop, n->rpc, NULL, &node_cbs, n, &n->serf);

	cr_assert_eq(rc, 0, "serf_open: %s", strerror(-rc));
	serf_set_size_limit(n->serf, EVENT_LIMIT);
}

static bool
connected(void *arg)
{
	return serf_connected(((struct node *)arg)->serf);
}

static bool
two_alive_everywhere(void *arg)
{
	(void)arg;
	for (int i = 0; i < 2; i++)
		if (!serf_connected(nodes[i].serf) ||
		    nodes[i].alive_tagged != 2)
			return false;
	return true;
}

/* Seed first, wait for its RPC handshake, then the joiner. */
static void
cluster_up(void)
{
	node_start_proc(&nodes[0], NULL);
	node_open_client(&nodes[0]);
	cr_assert(run_until(connected, &nodes[0], 5.),
	    "seed RPC never answered");
	node_start_proc(&nodes[1], nodes[0].bind);
	node_open_client(&nodes[1]);
	cr_assert(run_until(two_alive_everywhere, NULL, 10.),
	    "cluster did not form: n0 %zu, n1 %zu alive",
	    nodes[0].alive_tagged, nodes[1].alive_tagged);
}

static const struct rx *
node_find(const struct node *n, const char *name, const uint8_t *p,
    size_t len)
{
	for (size_t i = 0; i < n->nrx; i++)
		if (strcmp(n->rx[i].name, name) == 0 && n->rx[i].len == len &&
		    (len == 0 || memcmp(n->rx[i].data, p, len) == 0))
			return &n->rx[i];
	return NULL;
}

struct want {
	const char *name;
	const uint8_t *p;
	size_t len;
};

static bool
both_got(void *arg)
{
	const struct want *w = arg;

	return node_find(&nodes[0], w->name, w->p, w->len) != NULL &&
	    node_find(&nodes[1], w->name, w->p, w->len) != NULL;
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(path);
}

static void
setup(void)
{
	loop = EV_DEFAULT;
	log_set_level(LOG_WARN);
	base = 20000 + (getpid() % 3000) * 4;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_serf.XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
	for (int i = 0; i < NNODES; i++)
		node_init(&nodes[i], i);
}

static void
teardown(void)
{
	for (int i = 0; i < NNODES; i++) {
		serf_close(nodes[i].serf);
		nodes[i].serf = NULL;
		/*
		 * SIGTERM: instant exit, no leave (serf-notes §8).  The
		 * SIGINT path of serfproc_stop: see stop_is_graceful.
		 */
		if (serfproc_pid(nodes[i].proc) > 0)
			kill(serfproc_pid(nodes[i].proc), SIGTERM);
	}
	for (int i = 0; i < NNODES; i++) {
		serfproc_stop(nodes[i].proc);
		nodes[i].proc = NULL;
	}
	(void)nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(serf, .init = setup, .fini = teardown, .timeout = 40.);

/* ---- real agents ---- */

Test(serf, two_agents_join)
{
	cluster_up();
	for (int i = 0; i < 2; i++) {
		cr_expect_eq(nodes[i].ups, 1);
		cr_expect_eq(nodes[i].downs, 0);
		cr_expect(nodes[i].peer_tags_ok, "n%d saw a wrong tag", i);
	}
}

Test(serf, event_reaches_everyone)
{
	uint8_t payload[1000];
	struct want w = { "distkv.test", payload, sizeof(payload) };

	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)(i * 7 + getpid());
	payload[0] = 0;		/* NULs and high bytes: binary-safe */
	payload[1] = 0xff;
	cluster_up();
	cr_assert_eq(serf_send_event(nodes[0].serf, w.name, payload,
	    sizeof(payload)), 0);
	cr_assert(run_until(both_got, &w, 5.),
	    "event not delivered: n0 %zu, n1 %zu events", nodes[0].nrx,
	    nodes[1].nrx);
}

static bool
self_got(void *arg)
{
	const struct want *w = arg;

	return node_find(&nodes[0], w->name, w->p, w->len) != NULL;
}

Test(serf, oversized_event)
{
	static uint8_t big[EVENT_LIMIT + 1];
	const char *name = "distkv.test";
	/* the largest payload serf_send_event lets through */
	size_t max = EVENT_LIMIT - 40 - strlen(name);
	struct want w = { name, big, max };

	memset(big, 0xab, sizeof(big));
	node_start_proc(&nodes[0], NULL);
	node_open_client(&nodes[0]);
	cr_assert(run_until(connected, &nodes[0], 5.));
	cr_expect_eq(serf_send_event(nodes[0].serf, name, big, sizeof(big)),
	    -EMSGSIZE);
	cr_expect_eq(serf_send_event(nodes[0].serf, name, big, max + 1),
	    -EMSGSIZE);
	/* ... and the agent accepts that one: it reaches our own stream */
	cr_assert_eq(serf_send_event(nodes[0].serf, name, big, max), 0);
	cr_assert(run_until(self_got, &w, 3.), "max-size event rejected");
	cr_expect_eq(serf_send_event(nodes[0].serf, "", big, 1), -EINVAL);

	/*
	 * With our limit set above the agent's, the agent rejects the event
	 * in its reply header: logged, and the session goes on.
	 */
	serf_set_size_limit(nodes[0].serf, 9216);
	cr_assert_eq(serf_send_event(nodes[0].serf, name, big, sizeof(big)),
	    0);
	w.len = 10;
	cr_assert_eq(serf_send_event(nodes[0].serf, name, big, w.len), 0);
	cr_assert(run_until(self_got, &w, 3.), "session broken by an error");
	cr_expect(serf_connected(nodes[0].serf));
	cr_expect_eq(nodes[0].downs, 0);
	cr_expect_null(node_find(&nodes[0], name, big, sizeof(big)));
}

static bool
is_down(void *arg)
{
	return ((struct node *)arg)->downs > 0;
}

static bool
is_back(void *arg)
{
	struct node *n = arg;

	return n->ups >= 2 && serf_connected(n->serf) && n->alive_tagged == 2;
}

Test(serf, supervisor_restarts_killed_serf)
{
	struct node *n1 = &nodes[1];
	int old;
	bool got = false;

	cluster_up();
	old = serfproc_pid(n1->proc);
	cr_assert_eq(kill(old, SIGKILL), 0);
	cr_assert(run_until(is_down, n1, 5.), "client missed the loss");
	cr_expect_eq(serf_connected(n1->serf), false);
	cr_expect_eq(serf_send_event(n1->serf, "distkv.test",
	    (const uint8_t *)"x", 1), -ENOTCONN);
	cr_assert(run_until(is_back, n1, 15.),
	    "no reconnect: ups %d, alive %zu, pid %d", n1->ups,
	    n1->alive_tagged, serfproc_pid(n1->proc));
	cr_expect_neq(serfproc_pid(n1->proc), old);
	cr_expect_gt(serfproc_pid(n1->proc), 0);
	cr_expect_eq(n1->downs, 1);

	/* events flow again: fire until one gets through (n0 may still
	 * think n1 failed for a moment) */
	for (int i = 0; i < 40 && !got; i++) {
		char p[32];
		struct want w = { "distkv.again", (const uint8_t *)p, 0 };

		w.len = (size_t)snprintf(p, sizeof(p), "again-%d", i);
		cr_assert_eq(serf_send_event(nodes[0].serf, w.name, w.p,
		    w.len), 0);
		got = run_until(both_got, &w, 0.5);
	}
	cr_assert(got, "no event reached the restarted node");
}

Test(serf, connects_when_agent_appears)
{
	struct node *n = &nodes[2];

	node_open_client(n);
	run_for(0.7);
	cr_expect_eq(serf_connected(n->serf), false);
	cr_expect_eq(n->ups, 0);
	cr_expect_eq(n->downs, 0);
	cr_expect_eq(serf_send_event(n->serf, "distkv.test",
	    (const uint8_t *)"x", 1), -ENOTCONN);
	node_start_proc(n, NULL);
	cr_assert(run_until(connected, n, 8.), "never connected");
	cr_expect_eq(n->ups, 1);
	cr_expect_eq(n->nmembers, 1);
}

Test(serf, stop_is_graceful)
{
	int pid, st;

	node_start_proc(&nodes[0], NULL);
	node_open_client(&nodes[0]);
	cr_assert(run_until(connected, &nodes[0], 5.));
	pid = serfproc_pid(nodes[0].proc);
	serfproc_stop(nodes[0].proc);
	nodes[0].proc = NULL;
	/* reaped by serfproc_stop: no such child any more */
	cr_expect_eq(waitpid(pid, &st, WNOHANG), -1);
	cr_expect_eq(kill(pid, 0), -1);
	cr_assert(run_until(is_down, &nodes[0], 3.));
}

Test(serf, bad_arguments)
{
	struct serf *s = (struct serf *)1;
	struct serfproc *p = (struct serfproc *)1;
	struct serfproc_config c = { .node = "x", .bind = "127.0.0.1:1",
	    .rpc_addr = "127.0.0.1:2", .dir = tmpdir,
	    .event_size_limit = 9217 };

	cr_expect_eq(serf_open(loop, "nonsense", NULL, &node_cbs, NULL, &s),
	    -EINVAL);
	cr_expect_null(s);
	cr_expect_eq(serf_open(loop, "localhost:7373", NULL, &node_cbs, NULL,
	    &s), -EINVAL);
	cr_expect_eq(serfproc_start(loop, &c, &p), -EINVAL);
	cr_expect_null(p);
	c.event_size_limit = 0;
	c.serf_bin = "/nonexistent/serf";
	cr_expect_eq(serfproc_start(loop, &c, &p), -ENOENT);
	serf_close(NULL);
	serfproc_stop(NULL);
}

/* ---- a fake Serf agent ---- */

enum fake_mode {
	FAKE_RESERVED_BYTE,	/* 0xc1 after the handshake reply */
	FAKE_HUGE_STR,		/* a str32 of 4 GiB where a header belongs */
	FAKE_HUGE_HEADER,	/* a map header with an endless Error string */
	FAKE_UNKNOWN_SEQ,	/* a reply nobody asked for */
	FAKE_DEEP,		/* nesting beyond PROTO_MAX_NESTING */
	FAKE_BAD_MEMBERS,	/* odd member records, then a bad record */
	FAKE_SILENT,		/* a good session, then it stops reading */
};

struct fake {
	enum fake_mode mode;
	int lfd, cfd;
	ev_io lio, rio, wio;
	uint8_t in[65536];
	size_t in_len;
	msgpack_sbuffer out;
	size_t out_off;
	int accepts, eofs;
	uint64_t stream_seq;
};

static void
fake_close(struct fake *f)
{
	if (f->cfd < 0)
		return;
	ev_io_stop(loop, &f->rio);
	ev_io_stop(loop, &f->wio);
	close(f->cfd);
	f->cfd = -1;
	f->eofs++;
	msgpack_sbuffer_clear(&f->out);
	f->out_off = 0;
	f->in_len = 0;
}

static void
fake_flush(struct fake *f)
{
	while (f->out_off < f->out.size) {
		ssize_t n = send(f->cfd, f->out.data + f->out_off,
		    f->out.size - f->out_off, MSG_NOSIGNAL);

		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			ev_io_start(loop, &f->wio);
			return;
		}
		if (n <= 0) {
			fake_close(f);
			return;
		}
		f->out_off += (size_t)n;
	}
	ev_io_stop(loop, &f->wio);
}

static void
pack_lit(msgpack_packer *pk, const char *s)
{
	msgpack_pack_str(pk, strlen(s));
	msgpack_pack_str_body(pk, s, strlen(s));
}

static void
fake_reply(msgpack_packer *pk, uint64_t seq)
{
	msgpack_pack_map(pk, 2);
	pack_lit(pk, "Error");
	pack_lit(pk, "");
	pack_lit(pk, "Seq");
	msgpack_pack_uint64(pk, seq);
}

static void
fake_garbage(struct fake *f, msgpack_packer *pk)
{
	static uint8_t filler[1 << 20];

	switch (f->mode) {
	case FAKE_RESERVED_BYTE:
		msgpack_sbuffer_write(&f->out, "\xc1\xc1\xc1", 3);
		break;
	case FAKE_HUGE_STR:
		msgpack_sbuffer_write(&f->out, "\xdb\xff\xff\xff\xff", 5);
		memset(filler, 'A', sizeof(filler));
		msgpack_sbuffer_write(&f->out, (char *)filler, sizeof(filler));
		break;
	case FAKE_HUGE_HEADER:
		msgpack_pack_map(pk, 2);
		pack_lit(pk, "Seq");
		msgpack_pack_uint64(pk, 1);
		pack_lit(pk, "Error");
		msgpack_sbuffer_write(&f->out, "\xdb\x40\x00\x00\x00", 5);
		memset(filler, 'B', sizeof(filler));
		msgpack_sbuffer_write(&f->out, (char *)filler, sizeof(filler));
		break;
	case FAKE_UNKNOWN_SEQ:
		fake_reply(pk, 999999);
		break;
	case FAKE_DEEP:
		for (int i = 0; i < 100; i++)
			msgpack_pack_map(pk, 1), pack_lit(pk, "Seq");
		msgpack_pack_uint64(pk, 1);
		break;
	case FAKE_BAD_MEMBERS:
	case FAKE_SILENT:
		break;
	}
}

static void
fake_members(msgpack_packer *pk)
{
	static const char addr[4] = { 127, 0, 0, 9 };

	msgpack_pack_map(pk, 1);
	pack_lit(pk, "Members");
	msgpack_pack_array(pk, 4);
	msgpack_pack_map(pk, 1);		/* Name is not a str */
	pack_lit(pk, "Name");
	msgpack_pack_int(pk, 1);
	pack_lit(pk, "not a map");
	msgpack_pack_map(pk, 5);		/* Addr of 3 bytes */
	pack_lit(pk, "Name");
	pack_lit(pk, "odd");
	pack_lit(pk, "Addr");
	msgpack_pack_bin(pk, 3);
	msgpack_pack_bin_body(pk, addr, 3);
	pack_lit(pk, "Port");
	msgpack_pack_int(pk, 7946);
	pack_lit(pk, "Status");
	pack_lit(pk, "alive");
	pack_lit(pk, "Tags");
	msgpack_pack_nil(pk);
	msgpack_pack_map(pk, 6);		/* a good one, extra keys */
	pack_lit(pk, "Name");
	pack_lit(pk, "good");
	pack_lit(pk, "Addr");
	msgpack_pack_bin(pk, 4);
	msgpack_pack_bin_body(pk, addr, 4);
	pack_lit(pk, "Port");
	msgpack_pack_int(pk, 7946);
	pack_lit(pk, "Status");
	pack_lit(pk, "alive");
	pack_lit(pk, "Tags");
	msgpack_pack_map(pk, 1);
	pack_lit(pk, "distkv");
	pack_lit(pk, "127.0.0.9:27589");
	pack_lit(pk, "DelegateCur");
	msgpack_pack_int(pk, 5);
}

/* Answer every complete request in the input. */
static void
fake_handle(struct fake *f)
{
	msgpack_packer pk;
	msgpack_zone zone;
	size_t off = 0;

	msgpack_packer_init(&pk, &f->out, msgpack_sbuffer_write);
	msgpack_zone_init(&zone, 1024);
	for (;;) {
		msgpack_object hdr;
		const msgpack_object *cmd;
		uint64_t seq = 0;
		size_t hlen, blen = 0;
		bool body;

		if (proto_scan(f->in + off, f->in_len - off, 8, &hlen) != 0)
			break;
		cr_assert_eq(proto_unpack(f->in + off, hlen, &zone, &hdr), 0);
		cmd = proto_map_get(&hdr, "Command");
		cr_assert_eq(proto_get_uint(proto_map_get(&hdr, "Seq"), &seq),
		    0);
		cr_assert_not_null(cmd);
		body = !proto_str_eq(cmd, "members");
		if (body && proto_scan(f->in + off + hlen,
		    f->in_len - off - hlen, 8, &blen) != 0)
			break;
		off += hlen + blen;
		fake_reply(&pk, seq);
		if (proto_str_eq(cmd, "handshake")) {
			fake_garbage(f, &pk);
		} else if (proto_str_eq(cmd, "stream")) {
			f->stream_seq = seq;
		} else if (proto_str_eq(cmd, "members") &&
		    f->mode == FAKE_SILENT) {
			msgpack_pack_map(&pk, 1);
			pack_lit(&pk, "Members");
			msgpack_pack_array(&pk, 0);
			ev_io_stop(loop, &f->rio);
			break;
		} else if (proto_str_eq(cmd, "members")) {
			fake_members(&pk);
			/* then a stream record whose Event is no str */
			fake_reply(&pk, f->stream_seq);
			msgpack_pack_map(&pk, 1);
			pack_lit(&pk, "Event");
			msgpack_pack_int(&pk, 5);
		}
		msgpack_zone_clear(&zone);
	}
	msgpack_zone_destroy(&zone);
	memmove(f->in, f->in + off, f->in_len - off);
	f->in_len -= off;
}

static void
fake_rio_cb(struct ev_loop *l, ev_io *w, int revents)
{
	struct fake *f = container_of(w, struct fake, rio);
	ssize_t n;

	(void)l;
	(void)revents;
	n = read(f->cfd, f->in + f->in_len, sizeof(f->in) - f->in_len);
	if (n <= 0) {
		if (n < 0 && errno == EAGAIN)
			return;
		fake_close(f);
		return;
	}
	f->in_len += (size_t)n;
	fake_handle(f);
	fake_flush(f);
}

static void
fake_wio_cb(struct ev_loop *l, ev_io *w, int revents)
{
	(void)l;
	(void)revents;
	fake_flush(container_of(w, struct fake, wio));
}

static void
fake_lio_cb(struct ev_loop *l, ev_io *w, int revents)
{
	struct fake *f = container_of(w, struct fake, lio);
	int fd;

	(void)l;
	(void)revents;
	if ((fd = accept4(f->lfd, NULL, NULL, SOCK_NONBLOCK)) < 0)
		return;
	fake_close(f);		/* a reconnect implies the old one is gone */
	f->cfd = fd;
	f->accepts++;
	ev_io_set(&f->rio, fd, EV_READ);
	ev_io_set(&f->wio, fd, EV_WRITE);
	ev_io_start(loop, &f->rio);
}

static void
fake_start(struct fake *f, enum fake_mode mode, char *addr, size_t cap)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	int one = 1;

	memset(f, 0, sizeof(*f));
	f->mode = mode;
	f->cfd = -1;
	msgpack_sbuffer_init(&f->out);
	sin.sin_port = htons((uint16_t)(base + 3));
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	cr_assert_geq(f->lfd, 0);
	setsockopt(f->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	cr_assert_eq(bind(f->lfd, (struct sockaddr *)&sin, sizeof(sin)), 0,
	    "bind: %s", strerror(errno));
	cr_assert_eq(listen(f->lfd, 8), 0);
	ev_io_init(&f->lio, fake_lio_cb, f->lfd, EV_READ);
	ev_io_init(&f->rio, fake_rio_cb, -1, EV_READ);
	ev_io_init(&f->wio, fake_wio_cb, -1, EV_WRITE);
	ev_io_start(loop, &f->lio);
	snprintf(addr, cap, "127.0.0.1:%d", base + 3);
}

static void
fake_stop(struct fake *f)
{
	fake_close(f);
	ev_io_stop(loop, &f->lio);
	close(f->lfd);
	msgpack_sbuffer_destroy(&f->out);
}

static bool
reconnected(void *arg)
{
	const struct fake *f = arg;

	return f->accepts >= 3 && f->eofs >= 2;
}

ParameterizedTestParameters(serf, garbage_from_agent)
{
	static enum fake_mode modes[] = {
		FAKE_RESERVED_BYTE, FAKE_HUGE_STR, FAKE_HUGE_HEADER,
		FAKE_UNKNOWN_SEQ, FAKE_DEEP, FAKE_BAD_MEMBERS,
	};

	return cr_make_param_array(enum fake_mode, modes,
	    sizeof(modes) / sizeof(modes[0]));
}

ParameterizedTest(enum fake_mode *mode, serf, garbage_from_agent,
    .timeout = 10.)
{
	static struct fake f;
	struct node *n = &nodes[2];
	char addr[64];

	fake_start(&f, *mode, addr, sizeof(addr));
	cr_assert_eq(serf_open(loop, addr, NULL, &node_cbs, n, &n->serf), 0);
	/* dropped and retried (100 ms, 200 ms): the third connection */
	cr_assert(run_until(reconnected, &f, 3.),
	    "mode %d: accepts %d, eofs %d", (int)*mode, f.accepts, f.eofs);
	if (*mode == FAKE_BAD_MEMBERS) {
		/* the list was usable: one good member out of four */
		cr_expect_geq(n->ups, 2);
		cr_expect_geq(n->downs, 2);
		cr_expect_eq(n->nmembers, 1);
		cr_expect_eq(n->alive_tagged, 1);
	} else {
		cr_expect_eq(n->ups, 0);
		cr_expect_eq(n->downs, 0);
	}
	serf_close(n->serf);
	n->serf = NULL;
	fake_stop(&f);
}

/* The agent stops reading: events queue up to the bound, then -ENOBUFS. */
Test(serf, output_is_bounded, .timeout = 10.)
{
	static struct fake f;
	static uint8_t payload[8000];
	struct node *n = &nodes[2];
	char addr[64];
	int rc = 0, sent = 0;

	fake_start(&f, FAKE_SILENT, addr, sizeof(addr));
	cr_assert_eq(serf_open(loop, addr, NULL, &node_cbs, n, &n->serf), 0);
	cr_assert(run_until(connected, n, 3.));
	serf_set_size_limit(n->serf, 9216);
	for (int round = 0; round < 20 && rc == 0; round++) {
		/* let the loop push into the socket buffers meanwhile */
		for (int i = 0; i < 200 && rc == 0; i++)
			if ((rc = serf_send_event(n->serf, "distkv.test",
			    payload, sizeof(payload))) == 0)
				sent++;
		run_for(0.02);
	}
	cr_expect_eq(rc, -ENOBUFS, "rc %d after %d events", rc, sent);
	cr_expect_geq((size_t)sent * sizeof(payload), (size_t)8 << 20);
	cr_expect_leq((size_t)sent * sizeof(payload), (size_t)64 << 20);
	cr_expect(serf_connected(n->serf));
	cr_expect_eq(n->downs, 0);
	serf_close(n->serf);
	n->serf = NULL;
	fake_stop(&f);
}

/*
 * Run the tests one at a time: real agents on a 2-core machine are less
 * jittery that way (still ~10 s in all), and libcriterion 2.4's runner
 * leaks a timeout record when tests with .timeout end concurrently, which
 * fails the ASan build (detect_leaks=1).  --jobs on the command line still
 * overrides this.
 */
int
main(int argc, char *argv[])
{
	struct criterion_test_set *tests = criterion_initialize();
	int rc = 0;

	criterion_options.jobs = 1;
	if (criterion_handle_args(argc, argv, true))
		rc = !criterion_run_all_tests(tests);
	criterion_finalize(tests);
	return rc;
}
