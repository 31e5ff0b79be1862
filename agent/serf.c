/* serf: see serf.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>
#include <msgpack.h>

#include "log.h"
#include "proto.h"
#include "serf.h"

#define container_of(p, type, member) \
	((type *)(void *)((char *)(p) - offsetof(type, member)))

/*
 * Bounds on what the Serf agent can make us hold.  A header is a small map
 * ({Seq, Error}); anything bigger while a header is expected is garbage, so
 * the connection is dropped early instead of buffering up to SERF_IN_MAX.
 * A body (member list, event record) may be larger, up to SERF_IN_MAX.
 */
#define SERF_IN_MAX		(16u << 20)
#define SERF_HDR_MAX		65536
#define SERF_OUT_MAX		(8u << 20)
#define SERF_READ_CHUNK		65536
#define SERF_READS_PER_CB	16
#define SERF_PEND_MAX		(1u << 20)
#define SERF_MEMBERS_MAX	65536

#define SERF_BACKOFF_MIN	0.1
#define SERF_BACKOFF_MAX	5.0
/*
 * The backoff restarts from SERF_BACKOFF_MIN only after a connection that
 * stayed up this long, so an agent that accepts and then misbehaves is not
 * hammered every 100 ms.
 */
#define SERF_STABLE		5.0
/* From connect() to the first member list; a silent peer is dropped. */
#define SERF_SETUP_TIMEOUT	10.0
/* At most one "event rejected" line per this many seconds. */
#define SERF_ERRLOG_INTERVAL	1.0

/*
 * The agent checks name + payload and the encoded message (name + payload
 * + 29 + up to 5 bytes of Lamport time, serf-notes §5) against
 * user_event_size_limit; 40 covers the encoding with a little slack.
 */
#define SERF_EVENT_OVERHEAD	40
#define SERF_DEFAULT_SIZE_LIMIT	512

/* No spaces, no wildcards (serf-notes §4): user events are filtered by the
 * caller. */
#define SERF_STREAM_FILTER \
	"user,member-join,member-leave,member-failed,member-update,member-reap"

enum serf_state {
	SERF_IDLE,		/* no socket; the retry timer runs */
	SERF_CONNECTING,	/* non-blocking connect() in progress */
	SERF_HELLO,		/* handshake (and auth) sent */
	SERF_SYNC,		/* stream and members sent */
	SERF_READY,		/* stream open, member list read */
};

enum serf_op {
	SERF_OP_DONE,		/* answered out of order; popped later */
	SERF_OP_HANDSHAKE,
	SERF_OP_AUTH,
	SERF_OP_STREAM,
	SERF_OP_MEMBERS,
	SERF_OP_EVENT,
	SERF_OP_FORCE_LEAVE,
};

/* A request waiting for its reply header. */
struct serf_pend {
	uint64_t seq;
	enum serf_op op;
};

struct serf {
	ev_io rio, wio;
	ev_timer retry;		/* reconnect after backoff */
	ev_timer setup;		/* bounds connect .. first member list */
	struct ev_loop *loop;
	struct sockaddr_storage sa;
	socklen_t salen;
	char *addr;		/* for log lines */
	char *auth_key;
	struct serf_callbacks cb;
	void *arg;

	int fd;
	enum serf_state state;
	unsigned gen;		/* bumped on every drop */
	ev_tstamp backoff;
	ev_tstamp ready_at;	/* when the state became SERF_READY */
	size_t size_limit;

	uint8_t *in;
	size_t in_len, in_cap;
	uint8_t *out;
	size_t out_off, out_len, out_cap;
	bool out_oom;
	msgpack_packer pk;
	msgpack_zone zone;

	uint64_t next_seq;
	uint64_t stream_seq;
	bool stream_open;
	bool members_pending;	/* a members request is outstanding */
	bool members_again;	/* a member event came in meanwhile */

	/* FIFO ring of outstanding requests (replies come in order). */
	struct serf_pend *pend;
	size_t pend_head, pend_n, pend_cap;

	unsigned busy;		/* inside one of our libev callbacks */
	bool closed;		/* serf_close() ran while busy */

	ev_tstamp errlog_at;
	unsigned long errlog_suppressed;
	struct serf_stats stats;	/* serf_get_stats */
};

static void serf_drop(struct serf *s, const char *why, bool warn);
static void serf_flush(struct serf *s);

/* ---- buffers and encoding ---- */

static int
serf_out_reserve(struct serf *s, size_t n)
{
	size_t cap;
	uint8_t *p;

	if (s->out_cap - s->out_len >= n)
		return 0;
	if (s->out_off > 0) {
		memmove(s->out, s->out + s->out_off, s->out_len - s->out_off);
		s->out_len -= s->out_off;
		s->out_off = 0;
		if (s->out_cap - s->out_len >= n)
			return 0;
	}
	cap = s->out_cap ? s->out_cap : 4096;
	while (cap - s->out_len < n)
		cap *= 2;
	if ((p = realloc(s->out, cap)) == NULL)
		return -ENOMEM;
	s->out = p;
	s->out_cap = cap;
	return 0;
}

/* msgpack_packer write callback: append to the output buffer. */
static int
serf_out_write(void *data, const char *buf, size_t len)
{
	struct serf *s = data;

	if (serf_out_reserve(s, len) != 0) {
		s->out_oom = true;
		return -1;
	}
	memcpy(s->out + s->out_len, buf, len);
	s->out_len += len;
	return 0;
}

static size_t
serf_out_pending(const struct serf *s)
{
	return s->out_len - s->out_off;
}

static void
serf_pack_str(msgpack_packer *pk, const char *str, size_t len)
{
	msgpack_pack_str(pk, len);
	msgpack_pack_str_body(pk, str, len);
}

#define SERF_PACK_LIT(pk, lit) serf_pack_str((pk), (lit), sizeof(lit) - 1)

static int
serf_pend_push(struct serf *s, uint64_t seq, enum serf_op op)
{
	if (s->pend_n == s->pend_cap) {
		size_t cap = s->pend_cap ? s->pend_cap * 2 : 64;
		struct serf_pend *p;

		if (cap > SERF_PEND_MAX)
			return -ENOBUFS;
		if ((p = malloc(cap * sizeof(*p))) == NULL)
			return -ENOMEM;
		for (size_t i = 0; i < s->pend_n; i++)
			p[i] = s->pend[(s->pend_head + i) & (s->pend_cap - 1)];
		free(s->pend);
		s->pend = p;
		s->pend_cap = cap;
		s->pend_head = 0;
	}
	s->pend[(s->pend_head + s->pend_n) & (s->pend_cap - 1)] =
	    (struct serf_pend){ .seq = seq, .op = op };
	s->pend_n++;
	return 0;
}

/*
 * Find and remove the request a reply header answers.  The agent answers
 * commands in order, so this is the head; anything else is searched (and
 * tombstoned) rather than trusted.  Returns SERF_OP_DONE if unknown.
 */
static enum serf_op
serf_pend_take(struct serf *s, uint64_t seq, bool peek)
{
	for (size_t i = 0; i < s->pend_n; i++) {
		struct serf_pend *p =
		    &s->pend[(s->pend_head + i) & (s->pend_cap - 1)];
		enum serf_op op = p->op;

		if (op == SERF_OP_DONE || p->seq != seq)
			continue;
		if (peek)
			return op;
		p->op = SERF_OP_DONE;
		while (s->pend_n > 0 &&
		    s->pend[s->pend_head].op == SERF_OP_DONE) {
			s->pend_head = (s->pend_head + 1) & (s->pend_cap - 1);
			s->pend_n--;
		}
		return op;
	}
	return SERF_OP_DONE;
}

/* Queue a request header; the caller packs the body (if any) next. */
static int
serf_request(struct serf *s, const char *cmd, enum serf_op op, uint64_t *seqp)
{
	uint64_t seq = s->next_seq++;
	int rc;

	if ((rc = serf_pend_push(s, seq, op)) != 0)
		return rc;
	msgpack_pack_map(&s->pk, 2);
	SERF_PACK_LIT(&s->pk, "Command");
	serf_pack_str(&s->pk, cmd, strlen(cmd));
	SERF_PACK_LIT(&s->pk, "Seq");
	msgpack_pack_uint64(&s->pk, seq);
	if (seqp != NULL)
		*seqp = seq;
	return 0;
}

/* Start writing (from the loop, so output of one iteration is batched). */
static void
serf_kick(struct serf *s)
{
	if (s->fd >= 0 && s->state != SERF_CONNECTING &&
	    serf_out_pending(s) > 0)
		ev_io_start(s->loop, &s->wio);
}

/* ---- connection lifecycle ---- */

static void
serf_teardown(struct serf *s)
{
	ev_io_stop(s->loop, &s->rio);
	ev_io_stop(s->loop, &s->wio);
	ev_timer_stop(s->loop, &s->setup);
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	s->state = SERF_IDLE;
	s->gen++;
	free(s->in);
	s->in = NULL;
	s->in_len = s->in_cap = 0;
	free(s->out);
	s->out = NULL;
	s->out_off = s->out_len = s->out_cap = 0;
	s->out_oom = false;
	s->pend_head = s->pend_n = 0;
	s->stream_open = false;
	s->members_pending = s->members_again = false;
	msgpack_zone_clear(&s->zone);
}

static void
serf_schedule_retry(struct serf *s)
{
	ev_timer_stop(s->loop, &s->retry);
	ev_timer_set(&s->retry, s->backoff, 0.);
	ev_timer_start(s->loop, &s->retry);
	s->backoff *= 2;
	if (s->backoff > SERF_BACKOFF_MAX)
		s->backoff = SERF_BACKOFF_MAX;
}

/*
 * Lose the connection: discard queued output and outstanding requests (the
 * caller's catch-up repairs lost events), tell the caller if it had been
 * told "connected", and retry after the backoff.
 */
static void
serf_drop(struct serf *s, const char *why, bool warn)
{
	bool was_ready = s->state == SERF_READY;

	if (was_ready && ev_now(s->loop) - s->ready_at >= SERF_STABLE)
		s->backoff = SERF_BACKOFF_MIN;
	if (warn || was_ready)
		log_warn("serf %s: %s; reconnecting in %.1f s", s->addr, why,
		    s->backoff);
	else
		log_debug("serf %s: %s; retrying in %.1f s", s->addr, why,
		    s->backoff);
	serf_teardown(s);
	serf_schedule_retry(s);
	if (was_ready && s->cb.state != NULL)
		s->cb.state(s->arg, false);
}

static void
serf_hello(struct serf *s)
{
	int rc = 0;

	s->state = SERF_HELLO;
	ev_io_stop(s->loop, &s->wio);
	ev_io_set(&s->wio, s->fd, EV_WRITE);
	ev_io_set(&s->rio, s->fd, EV_READ);
	ev_io_start(s->loop, &s->rio);
	if ((rc = serf_request(s, "handshake", SERF_OP_HANDSHAKE, NULL)) != 0)
		goto out;
	msgpack_pack_map(&s->pk, 1);
	SERF_PACK_LIT(&s->pk, "Version");
	msgpack_pack_int32(&s->pk, 1);
	/*
	 * Pipelining auth is safe: only a rejected request's *body* is
	 * misparsed by the agent (serf-notes §1), and nothing else is sent
	 * before auth succeeds.
	 */
	if (s->auth_key != NULL) {
		if ((rc = serf_request(s, "auth", SERF_OP_AUTH, NULL)) != 0)
			goto out;
		msgpack_pack_map(&s->pk, 1);
		SERF_PACK_LIT(&s->pk, "AuthKey");
		serf_pack_str(&s->pk, s->auth_key, strlen(s->auth_key));
	}
	if (s->out_oom)
		rc = -ENOMEM;
out:
	if (rc != 0) {
		serf_drop(s, strerror(-rc), true);
		return;
	}
	serf_kick(s);
}

static void
serf_connect(struct serf *s)
{
	int one = 1;

	s->fd = socket(s->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (s->fd < 0) {
		serf_drop(s, strerror(errno), true);
		return;
	}
	(void)setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	msgpack_packer_init(&s->pk, s, serf_out_write);
	s->next_seq = 1;
	ev_timer_set(&s->setup, SERF_SETUP_TIMEOUT, 0.);
	ev_timer_start(s->loop, &s->setup);
	if (connect(s->fd, (struct sockaddr *)&s->sa, s->salen) == 0) {
		serf_hello(s);
		return;
	}
	if (errno != EINPROGRESS) {
		char why[128];

		snprintf(why, sizeof(why), "connect: %s", strerror(errno));
		serf_drop(s, why, false);
		return;
	}
	s->state = SERF_CONNECTING;
	ev_io_set(&s->wio, s->fd, EV_WRITE);
	ev_io_start(s->loop, &s->wio);
}

/* Bracket every libev callback: serf_close() inside one is deferred. */
static void
serf_enter(struct serf *s)
{
	s->busy++;
}

static void serf_free(struct serf *s);

/* Returns true if s is gone. */
static bool
serf_leave(struct serf *s)
{
	if (--s->busy == 0 && s->closed) {
		serf_free(s);
		return true;
	}
	return false;
}

static void
serf_retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct serf *s = container_of(w, struct serf, retry);

	(void)loop;
	(void)revents;
	serf_enter(s);
	serf_connect(s);
	serf_leave(s);
}

static void
serf_setup_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct serf *s = container_of(w, struct serf, setup);

	(void)loop;
	(void)revents;
	serf_enter(s);
	serf_drop(s, "no answer from the Serf agent", true);
	serf_leave(s);
}

/* ---- replies and records ---- */

static void
serf_log_event_error(struct serf *s, const msgpack_object *err)
{
	ev_tstamp now = ev_now(s->loop);

	if (s->errlog_at != 0 && now - s->errlog_at < SERF_ERRLOG_INTERVAL) {
		s->errlog_suppressed++;
		return;
	}
	log_warn("serf %s: event rejected: %.*s (%lu similar suppressed)",
	    s->addr, (int)err->via.str.size, err->via.str.ptr,
	    s->errlog_suppressed);
	s->errlog_at = now;
	s->errlog_suppressed = 0;
}

static int
serf_request_members(struct serf *s)
{
	int rc;

	if (s->members_pending) {
		s->members_again = true;
		return 0;
	}
	if ((rc = serf_request(s, "members", SERF_OP_MEMBERS, NULL)) != 0)
		return rc;
	if (s->out_oom)
		return -ENOMEM;
	s->members_pending = true;
	s->members_again = false;
	serf_kick(s);
	return 0;
}

/* Handshake (and auth) done: open the stream, then read the members, so no
 * change falls between the two (serf-notes §4). */
static int
serf_sync(struct serf *s)
{
	int rc;

	s->state = SERF_SYNC;
	if ((rc = serf_request(s, "stream", SERF_OP_STREAM,
	    &s->stream_seq)) != 0)
		return rc;
	msgpack_pack_map(&s->pk, 1);
	SERF_PACK_LIT(&s->pk, "Type");
	SERF_PACK_LIT(&s->pk, SERF_STREAM_FILTER);
	return serf_request_members(s);
}

/* Copy a str into a NUL-terminated buffer; false if absent or too long. */
static bool
serf_copy_str(const msgpack_object *o, char *buf, size_t cap)
{
	if (o == NULL || o->type != MSGPACK_OBJECT_STR ||
	    o->via.str.size >= cap)
		return false;
	memcpy(buf, o->via.str.ptr, o->via.str.size);
	buf[o->via.str.size] = '\0';
	return true;
}

static bool
serf_parse_member(const msgpack_object *o, struct serf_member *m)
{
	const msgpack_object *name, *addr, *port, *status, *tags, *peer;
	const char *ap;
	uint64_t pv;
	uint32_t alen;

	if (o->type != MSGPACK_OBJECT_MAP)
		return false;
	name = proto_map_get(o, "Name");
	addr = proto_map_get(o, "Addr");
	port = proto_map_get(o, "Port");
	status = proto_map_get(o, "Status");
	tags = proto_map_get(o, "Tags");
	if (!serf_copy_str(name, m->name, sizeof(m->name)) ||
	    !serf_copy_str(status, m->status, sizeof(m->status)))
		return false;
	if (port == NULL || proto_get_uint(port, &pv) != 0 || pv > 65535)
		return false;
	m->port = (uint16_t)pv;
	if (addr == NULL)
		return false;
	if (addr->type == MSGPACK_OBJECT_BIN) {
		ap = addr->via.bin.ptr;
		alen = addr->via.bin.size;
	} else if (addr->type == MSGPACK_OBJECT_STR) {
		ap = addr->via.str.ptr;
		alen = addr->via.str.size;
	} else
		return false;
	if (alen == 4) {
		if (inet_ntop(AF_INET, ap, m->addr, sizeof(m->addr)) == NULL)
			return false;
	} else if (alen == 16) {
		if (inet_ntop(AF_INET6, ap, m->addr, sizeof(m->addr)) == NULL)
			return false;
	} else
		return false;
	m->peer[0] = '\0';
	if (tags != NULL && tags->type != MSGPACK_OBJECT_NIL) {
		if (tags->type != MSGPACK_OBJECT_MAP)
			return false;
		peer = proto_map_get(tags, "distkv");
		if (peer != NULL &&
		    !serf_copy_str(peer, m->peer, sizeof(m->peer)))
			return false;
	}
	return true;
}

static int
serf_on_members(struct serf *s, const msgpack_object *body)
{
	const msgpack_object *arr = proto_map_get(body, "Members");
	struct serf_member *m;
	size_t n = 0, bad = 0;
	bool first = s->state == SERF_SYNC;

	if (arr == NULL || arr->type != MSGPACK_OBJECT_ARRAY ||
	    arr->via.array.size > SERF_MEMBERS_MAX)
		return -EPROTO;
	m = calloc(arr->via.array.size ? arr->via.array.size : 1, sizeof(*m));
	if (m == NULL)
		return -ENOMEM;
	for (uint32_t i = 0; i < arr->via.array.size; i++) {
		if (serf_parse_member(&arr->via.array.ptr[i], &m[n]))
			n++;
		else
			bad++;
	}
	if (bad > 0)
		log_warn("serf %s: ignored %zu malformed member record(s)",
		    s->addr, bad);
	s->members_pending = false;
	if (first) {
		s->state = SERF_READY;
		s->ready_at = ev_now(s->loop);
		ev_timer_stop(s->loop, &s->setup);
		log_info("serf %s: connected, %zu member(s)", s->addr, n);
	}
	if (s->cb.members != NULL)
		s->cb.members(s->arg, m, n);
	free(m);
	if (first && s->state == SERF_READY && !s->closed &&
	    s->cb.state != NULL)
		s->cb.state(s->arg, true);
	if (s->members_again && s->state == SERF_READY && !s->closed)
		return serf_request_members(s);
	return 0;
}

static int
serf_on_record(struct serf *s, const msgpack_object *body)
{
	const msgpack_object *ev = proto_map_get(body, "Event");
	const msgpack_object *name, *payload, *lt;
	const uint8_t *p = NULL;
	size_t len = 0;
	uint64_t ltime = 0;

	if (ev == NULL || ev->type != MSGPACK_OBJECT_STR)
		return -EPROTO;
	if (proto_str_eq(ev, "user")) {
		name = proto_map_get(body, "Name");
		payload = proto_map_get(body, "Payload");
		lt = proto_map_get(body, "LTime");
		if (name == NULL || name->type != MSGPACK_OBJECT_STR)
			return -EPROTO;
		if (lt != NULL && proto_get_uint(lt, &ltime) != 0)
			return -EPROTO;
		if (payload == NULL || payload->type == MSGPACK_OBJECT_NIL) {
			/* empty payload */
		} else if (payload->type == MSGPACK_OBJECT_BIN) {
			p = (const uint8_t *)payload->via.bin.ptr;
			len = payload->via.bin.size;
		} else if (payload->type == MSGPACK_OBJECT_STR) {
			p = (const uint8_t *)payload->via.str.ptr;
			len = payload->via.str.size;
		} else
			return -EPROTO;
		s->stats.events_in++;
		if (s->cb.user_event != NULL)
			s->cb.user_event(s->arg, name->via.str.ptr,
			    name->via.str.size, p, len, ltime);
		return 0;
	}
	if (ev->via.str.size > 7 && memcmp(ev->via.str.ptr, "member-", 7) == 0)
		return serf_request_members(s);	/* a hint: re-read */
	log_debug("serf %s: ignoring %.*s record", s->addr,
	    (int)ev->via.str.size, ev->via.str.ptr);
	return 0;
}

void
serf_refresh_members(struct serf *s)
{
	if (s != NULL && s->state == SERF_READY && !s->closed)
		(void)serf_request_members(s);
}

/* A reply header for op arrived (body: the members list, or NULL). */
static int
serf_on_reply(struct serf *s, enum serf_op op, const msgpack_object *err,
    const msgpack_object *body)
{
	static const char *names[] = {
		[SERF_OP_HANDSHAKE] = "handshake", [SERF_OP_AUTH] = "auth",
		[SERF_OP_STREAM] = "stream", [SERF_OP_MEMBERS] = "members",
	};

	if (err->via.str.size > 0) {
		if (op == SERF_OP_EVENT) {
			s->stats.events_rejected++;
			serf_log_event_error(s, err);
			return 0;
		}
		if (op == SERF_OP_FORCE_LEAVE) {
			log_warn("serf %s: force-leave failed: %.*s", s->addr,
			    (int)err->via.str.size, err->via.str.ptr);
			return 0;
		}
		log_warn("serf %s: %s failed: %.*s", s->addr, names[op],
		    (int)err->via.str.size, err->via.str.ptr);
		return -EPROTO;
	}
	switch (op) {
	case SERF_OP_HANDSHAKE:
		return s->auth_key != NULL ? 0 : serf_sync(s);
	case SERF_OP_AUTH:
		return serf_sync(s);
	case SERF_OP_STREAM:
		s->stream_open = true;
		return 0;
	case SERF_OP_MEMBERS:
		return serf_on_members(s, body);
	case SERF_OP_EVENT:
	case SERF_OP_FORCE_LEAVE:
	case SERF_OP_DONE:
		break;
	}
	return 0;
}

static bool
serf_is_map_head(uint8_t b)
{
	return (b >= 0x80 && b <= 0x8f) || b == 0xde || b == 0xdf;
}

/*
 * Frame the next object at p[0..n): 0 and *len, -EAGAIN, or -EPROTO.
 * It must be a map (headers and bodies both are).
 */
static int
serf_frame(const uint8_t *p, size_t n, size_t max, size_t *len)
{
	int rc;

	if (n == 0)
		return -EAGAIN;
	if (!serf_is_map_head(p[0]))
		return -EPROTO;
	rc = proto_scan(p, n, PROTO_MAX_NESTING, len);
	if (rc == -EAGAIN && n > max)
		return -EPROTO;
	if (rc == 0 && *len > max)
		return -EPROTO;
	return rc;
}

/*
 * Handle one header (+ body) at p[0..n).  Returns the bytes consumed,
 * 0 if more input is needed, or -EPROTO with *why set.
 */
static ssize_t
serf_process_one(struct serf *s, const uint8_t *p, size_t n, const char **why)
{
	msgpack_object hdr, body;
	const msgpack_object *seqo, *err;
	size_t hlen, blen = 0;
	uint64_t seq;
	enum serf_op op;
	bool record = false, has_body;
	int rc;

	*why = "malformed reply header";
	if ((rc = serf_frame(p, n, SERF_HDR_MAX, &hlen)) != 0)
		return rc == -EAGAIN ? 0 : -EPROTO;
	if (proto_unpack(p, hlen, &s->zone, &hdr) != 0)
		return -EPROTO;
	seqo = proto_map_get(&hdr, "Seq");
	err = proto_map_get(&hdr, "Error");
	if (seqo == NULL || proto_get_uint(seqo, &seq) != 0)
		return -EPROTO;
	if (err != NULL && err->type == MSGPACK_OBJECT_NIL)
		err = NULL;
	if (err != NULL && err->type != MSGPACK_OBJECT_STR)
		return -EPROTO;

	op = serf_pend_take(s, seq, true);
	if (op == SERF_OP_STREAM) {
		/*
		 * The agent registers a stream before it sends the ack, so a
		 * record may overtake it: with the same Seq, only the next
		 * object tells (a record has "Event", a header has "Seq").
		 * Something always follows the ack: the members reply.
		 */
		const msgpack_object *next_ev;

		*why = "malformed record after stream header";
		if ((rc = serf_frame(p + hlen, n - hlen, SERF_IN_MAX,
		    &blen)) != 0)
			return rc == -EAGAIN ? 0 : -EPROTO;
		if (proto_unpack(p + hlen, blen, &s->zone, &body) != 0)
			return -EPROTO;
		next_ev = proto_map_get(&body, "Event");
		record = next_ev != NULL && proto_map_get(&body, "Seq") == NULL;
		if (!record)
			blen = 0;
	} else if (op == SERF_OP_DONE) {
		*why = "reply for an unknown Seq";
		if (!s->stream_open || seq != s->stream_seq)
			return -EPROTO;
		record = true;
	}
	/* A failed members request drops the session: its body, if the agent
	 * sends one, need not be waited for. */
	has_body = record || (op == SERF_OP_MEMBERS &&
	    (err == NULL || err->via.str.size == 0));
	if (has_body && blen == 0) {
		*why = "malformed reply body";
		if ((rc = serf_frame(p + hlen, n - hlen, SERF_IN_MAX,
		    &blen)) != 0)
			return rc == -EAGAIN ? 0 : -EPROTO;
		if (proto_unpack(p + hlen, blen, &s->zone, &body) != 0)
			return -EPROTO;
	}

	if (record) {
		*why = "malformed stream record";
		if (err != NULL && err->via.str.size > 0)
			return -EPROTO;
		rc = serf_on_record(s, &body);
	} else {
		static const msgpack_object noerr = {
			.type = MSGPACK_OBJECT_STR,
		};

		(void)serf_pend_take(s, seq, false);
		*why = "request rejected";
		rc = serf_on_reply(s, op, err != NULL ? err : &noerr,
		    has_body ? &body : NULL);
	}
	if (rc == -ENOMEM)
		*why = "out of memory";
	else if (rc == -ENOBUFS)
		*why = "too many outstanding requests";
	if (rc != 0)
		return -EPROTO;
	return (ssize_t)(hlen + blen);
}

/* Handle every complete message in the input buffer. */
static void
serf_process(struct serf *s)
{
	unsigned gen = s->gen;
	size_t off = 0;

	while (off < s->in_len) {
		const char *why;
		ssize_t used;

		used = serf_process_one(s, s->in + off, s->in_len - off, &why);
		msgpack_zone_clear(&s->zone);
		if (s->closed || s->gen != gen)
			return;		/* a callback closed or dropped */
		if (used < 0) {
			serf_drop(s, why, true);
			return;
		}
		if (used == 0)
			break;
		off += (size_t)used;
	}
	if (off > 0) {
		memmove(s->in, s->in + off, s->in_len - off);
		s->in_len -= off;
	}
	if (s->out_oom)
		serf_drop(s, "out of memory", true);
	else
		serf_kick(s);
}

static void
serf_rio_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct serf *s = container_of(w, struct serf, rio);

	(void)loop;
	(void)revents;
	serf_enter(s);
	for (int i = 0; i < SERF_READS_PER_CB; i++) {
		ssize_t n;

		if (s->in_cap - s->in_len < SERF_READ_CHUNK) {
			size_t cap = s->in_cap ? s->in_cap * 2 :
			    2 * SERF_READ_CHUNK;
			uint8_t *in;

			if (s->in_len >= SERF_IN_MAX) {
				serf_drop(s, "message too large", true);
				goto out;
			}
			if (cap > SERF_IN_MAX + SERF_READ_CHUNK)
				cap = SERF_IN_MAX + SERF_READ_CHUNK;
			if ((in = realloc(s->in, cap)) == NULL) {
				serf_drop(s, "out of memory", true);
				goto out;
			}
			s->in = in;
			s->in_cap = cap;
		}
		n = read(s->fd, s->in + s->in_len, s->in_cap - s->in_len);
		if (n == 0) {
			serf_drop(s, "connection closed by the Serf agent",
			    false);
			goto out;
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			serf_drop(s, strerror(errno), false);
			goto out;
		}
		s->in_len += (size_t)n;
		if ((size_t)n < SERF_READ_CHUNK)
			break;
	}
	serf_process(s);
out:
	serf_leave(s);
}

static void
serf_flush(struct serf *s)
{
	while (serf_out_pending(s) > 0) {
		ssize_t n = send(s->fd, s->out + s->out_off,
		    serf_out_pending(s), MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				ev_io_start(s->loop, &s->wio);
				return;
			}
			serf_drop(s, strerror(errno), false);
			return;
		}
		s->out_off += (size_t)n;
	}
	s->out_off = s->out_len = 0;
	ev_io_stop(s->loop, &s->wio);
}

static void
serf_wio_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct serf *s = container_of(w, struct serf, wio);

	(void)loop;
	(void)revents;
	serf_enter(s);
	if (s->state == SERF_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);

		if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
			err = errno;
		if (err != 0) {
			char why[128];

			snprintf(why, sizeof(why), "connect: %s",
			    strerror(err));
			serf_drop(s, why, false);
		} else
			serf_hello(s);
	} else
		serf_flush(s);
	serf_leave(s);
}

/* ---- public ---- */

static int
serf_parse_addr(const char *text, struct sockaddr_storage *sa,
    socklen_t *salen)
{
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
		.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
	};
	struct addrinfo *res = NULL;
	char host[INET6_ADDRSTRLEN + 2];
	const char *colon = strrchr(text, ':'), *h = text;
	size_t hlen;

	if (colon == NULL || colon[1] == '\0')
		return -EINVAL;
	hlen = (size_t)(colon - text);
	if (hlen >= 2 && text[0] == '[' && text[hlen - 1] == ']') {
		h = text + 1;
		hlen -= 2;
	}
	if (hlen == 0 || hlen >= sizeof(host))
		return -EINVAL;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	if (getaddrinfo(host, colon + 1, &hints, &res) != 0 || res == NULL)
		return -EINVAL;
	if (res->ai_addrlen > sizeof(*sa)) {
		freeaddrinfo(res);
		return -EINVAL;
	}
	memcpy(sa, res->ai_addr, res->ai_addrlen);
	*salen = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

int
serf_open(struct ev_loop *loop, const char *rpc_addr, const char *auth_key,
    const struct serf_callbacks *cb, void *arg, struct serf **out)
{
	struct serf *s;
	int rc;

	*out = NULL;
	if (loop == NULL || rpc_addr == NULL || cb == NULL)
		return -EINVAL;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return -ENOMEM;
	s->fd = -1;
	if ((rc = serf_parse_addr(rpc_addr, &s->sa, &s->salen)) != 0)
		goto fail;
	rc = -ENOMEM;
	if ((s->addr = strdup(rpc_addr)) == NULL)
		goto fail;
	if (auth_key != NULL && (s->auth_key = strdup(auth_key)) == NULL)
		goto fail;
	if (!msgpack_zone_init(&s->zone, 4096))
		goto fail;
	s->loop = loop;
	s->cb = *cb;
	s->arg = arg;
	s->state = SERF_IDLE;
	s->backoff = SERF_BACKOFF_MIN;
	s->size_limit = SERF_DEFAULT_SIZE_LIMIT;
	ev_io_init(&s->rio, serf_rio_cb, -1, EV_READ);
	ev_io_init(&s->wio, serf_wio_cb, -1, EV_WRITE);
	ev_timer_init(&s->setup, serf_setup_cb, SERF_SETUP_TIMEOUT, 0.);
	/* First attempt from the loop: no callback runs inside serf_open. */
	ev_timer_init(&s->retry, serf_retry_cb, 0., 0.);
	ev_timer_start(loop, &s->retry);
	*out = s;
	return 0;
fail:
	free(s->auth_key);
	free(s->addr);
	free(s);
	return rc;
}

static void
serf_free(struct serf *s)
{
	msgpack_zone_destroy(&s->zone);
	free(s->pend);
	free(s->addr);
	if (s->auth_key != NULL)
		explicit_bzero(s->auth_key, strlen(s->auth_key));
	free(s->auth_key);
	free(s);
}

void
serf_close(struct serf *s)
{
	if (s == NULL || s->closed)
		return;
	serf_teardown(s);
	ev_timer_stop(s->loop, &s->retry);
	s->closed = true;
	if (s->busy == 0)
		serf_free(s);
}

bool
serf_connected(const struct serf *s)
{
	return s != NULL && s->state == SERF_READY;
}

int
serf_send_event(struct serf *s, const char *name, const uint8_t *payload,
    size_t len)
{
	size_t nlen;
	int rc;

	if (s == NULL || name == NULL || (payload == NULL && len > 0))
		return -EINVAL;
	nlen = strlen(name);
	if (nlen == 0 || nlen > SERF_NAME_MAX)
		return -EINVAL;
	if (s->state != SERF_READY)
		rc = -ENOTCONN;
	else if ((rc = serf_event_check(s->size_limit, nlen, len)) != 0)
		;
	/* header ~20, body ~30 + the two strings' headers */
	else if (serf_out_pending(s) + nlen + len + 64 > SERF_OUT_MAX)
		rc = -ENOBUFS;
	else if ((rc = serf_out_reserve(s, nlen + len + 64)) == 0)
		rc = serf_request(s, "event", SERF_OP_EVENT, NULL);
	if (rc != 0) {
		s->stats.events_lost++;
		return rc;
	}
	s->stats.events_out++;
	msgpack_pack_map(&s->pk, 3);
	SERF_PACK_LIT(&s->pk, "Name");
	serf_pack_str(&s->pk, name, nlen);
	SERF_PACK_LIT(&s->pk, "Payload");
	msgpack_pack_bin(&s->pk, len);
	msgpack_pack_bin_body(&s->pk, payload, len);
	SERF_PACK_LIT(&s->pk, "Coalesce");
	msgpack_pack_false(&s->pk);
	serf_kick(s);
	return 0;
}

void
serf_set_size_limit(struct serf *s, size_t limit)
{
	s->size_limit = limit;
}

int
serf_event_check(size_t limit, size_t nlen, size_t len)
{
	if (nlen == 0 || nlen > SERF_NAME_MAX)
		return -EINVAL;
	if (len > limit || nlen + len + SERF_EVENT_OVERHEAD > limit)
		return -EMSGSIZE;
	return 0;
}

int
serf_force_leave(struct serf *s, const char *node)
{
	size_t nlen = strlen(node);
	int rc;

	if (nlen == 0 || nlen > SERF_NAME_MAX)
		return -EINVAL;
	if (s == NULL || s->state != SERF_READY)
		return -ENOTCONN;
	if ((rc = serf_request(s, "force-leave", SERF_OP_FORCE_LEAVE,
	    NULL)) != 0)
		return rc;
	msgpack_pack_map(&s->pk, 2);
	SERF_PACK_LIT(&s->pk, "Node");
	serf_pack_str(&s->pk, node, nlen);
	SERF_PACK_LIT(&s->pk, "Prune");
	msgpack_pack_true(&s->pk);
	if (s->out_oom)
		return -ENOMEM;
	serf_kick(s);
	return 0;
}

void
serf_get_stats(const struct serf *s, struct serf_stats *out)
{
	if (s == NULL)
		memset(out, 0, sizeof(*out));
	else
		*out = s->stats;
}
