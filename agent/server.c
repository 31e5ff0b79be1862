/* server: see server.h. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>


#include "agent.h"
#include "handlers.h"
#include "log.h"
#include "penalty.h"
#include "persist.h"
#include "proto.h"
#include "server_impl.h"

/* Bytes read per read(2); reads per callback are bounded for fairness. */
#define SERVER_READ_CHUNK 65536
#define SERVER_READS_PER_CB 16
/* Up to this many bytes buffered, requests are unpacked in one pass. */
#define SERVER_ONE_PASS_MAX 65536
/*
 * A pipelined batch's replies leave every this many requests, not only at
 * its end: the client works on the first replies (and sends more
 * requests) while the agent works on the rest, instead of the two taking
 * turns.  bench_socket, 100k keys: pipelined sets 1.85x Redis with it,
 * 1.03x without (bench/README.md).
 */
#define SERVER_FLUSH_EVERY 16

static void conn_close(struct conn *c);
static void conn_flush(struct conn *c);
static void conn_rio_cb(struct ev_loop *loop, ev_io *w, int revents);
static void server_log_failed(struct server *s, int rc)
    __attribute__((noreturn));

struct agent *
conn_agent(const struct conn *c)
{
	return c->srv->a;
}

struct entry *
conn_root(const struct conn *c)
{
	return c->root;
}

void
conn_set_root(struct conn *c, struct entry *root)
{
	c->root = root;
}

static size_t
conn_pending(const struct conn *c)
{
	return c->out.size - c->out_off;
}

bool
conn_output_full(const struct conn *c)
{
	return conn_pending(c) > c->srv->a->cfg.max_output;
}

bool
conn_output_busy(const struct conn *c)
{
	return conn_pending(c) > c->srv->a->cfg.max_output / 2;
}

static void
conn_mark_dirty(struct conn *c)
{
	if (c->dirty || c->dead)
		return;
	c->dirty = true;
	c->dnext = c->srv->dirty;
	c->srv->dirty = c;
}

uint8_t *
conn_out_room(struct conn *c, size_t n)
{
	msgpack_sbuffer *sb = &c->out;
	size_t cap;
	char *d;

	if (sb->alloc - sb->size >= n) {
		c->room_end = (uint8_t *)sb->data + sb->size + n;
		return ((uint8_t *)sb->data + sb->size);
	}
	cap = sb->alloc > 0 ? sb->alloc : MSGPACK_SBUFFER_INIT_SIZE;
	while (cap - sb->size < n)
		cap *= 2;
	if ((d = realloc(sb->data, cap)) == NULL) {
		/* what went out so far goes; then the connection closes */
		log_warn("out of memory for a reply: closing the connection");
		conn_mark_dirty(c);
		c->dead = true;
		return (NULL);
	}
	sb->data = d;
	sb->alloc = cap;
	c->room_end = (uint8_t *)d + sb->size + n;
	return ((uint8_t *)d + sb->size);
}

void
conn_out_advance(struct conn *c, const uint8_t *end)
{
	/* a reply packed by hand past the room it asked for has written
	 * over the heap: stop before anything else does */
	if (end > c->room_end) {
		log_error("BUG: a reply overran its room by %zu bytes",
		    (size_t)(end - c->room_end));
		abort();
	}
	c->out.size = (size_t)((const char *)end - c->out.data);
}

uint8_t *
conn_reply_room(struct conn *c, uint64_t seq, uint32_t nfields, size_t more)
{
	uint8_t *p;

	if (c->multi_pending && seq == c->multi_seq)
		c->multi_pending = false;
	/* map header, "seq" and its value: at most 5 + 4 + 9 bytes */
	if ((p = conn_out_room(c, 18 + more)) == NULL)
		return (NULL);
	p = proto_put_maphdr(p, nfields + 1);
	p = proto_put_key(p, "seq");
	p = proto_put_uint(p, seq);
	/* the caller's room, exactly: an overrun is caught however short
	 * this header came out */
	c->room_end = p + more;
	conn_mark_dirty(c);
	return (p);
}

msgpack_packer *
conn_reply(struct conn *c, uint64_t seq, uint32_t nfields, bool stamp)
{
	uint8_t *p = conn_reply_room(c, seq, nfields + (stamp ? 1 : 0), 14);

	if (p != NULL && stamp) {
		p = proto_put_key(p, "tock");
		p = proto_put_uint(p, agent_stamp(c->srv->a));
	}
	if (p != NULL)
		conn_out_advance(c, p);
	return (&c->pk);
}

msgpack_packer *
conn_packer(struct conn *c)
{
	return (&c->pk);
}

msgpack_packer *
conn_reply_noseq(struct conn *c, uint32_t nfields)
{
	msgpack_pack_map(&c->pk, nfields + 1);
	msgpack_pack_str_with_body(&c->pk, "tock", 4);
	msgpack_pack_uint64(&c->pk, agent_stamp(c->srv->a));
	conn_mark_dirty(c);
	return &c->pk;
}

void
conn_reply_error(struct conn *c, uint64_t seq, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	msgpack_packer *pk;
	bool multi;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(msg))
		n = sizeof(msg) - 1;
	/* every error text is valid UTF-8, however the parts were cut */
	n = (int)proto_utf8_sanitize(msg, (size_t)n);
	/* a multi-reply request's first message: start, error item, end */
	multi = c->multi_pending && seq == c->multi_seq;
	if (multi)
		conn_reply_state(c, seq, "start");
	c->srv->a->metrics.errors++;
	pk = conn_reply(c, seq, 1, true);
	msgpack_pack_str_with_body(pk, "error", 5);
	msgpack_pack_str_with_body(pk, msg, (size_t)n);
	if (multi)
		conn_reply_state(c, seq, "end");
}

void
conn_multi_begin(struct conn *c, uint64_t seq)
{
	c->multi_pending = true;
	c->multi_seq = seq;
}

void
conn_multi_end(struct conn *c)
{
	c->multi_pending = false;
}

void
conn_reply_state(struct conn *c, uint64_t seq, const char *st)
{
	msgpack_packer *pk = conn_reply(c, seq, 1, true);

	msgpack_pack_str_with_body(pk, "state", 5);
	msgpack_pack_str_with_body(pk, st, strlen(st));
}

/*
 * The packer's write function: msgpack_sbuffer_write, with the short
 * writes (headers, numbers: a reply is a dozen of them) copied inline.
 */
static int
conn_out_write(void *data, const char *buf, size_t len)
{
	msgpack_sbuffer *sb = data;

	if (sb->alloc - sb->size < len)
		return msgpack_sbuffer_write(sb, buf, len);	/* grows */
	proto_copy(sb->data + sb->size, buf, len);
	sb->size += len;
	return 0;
}

void
conn_pack_raw(struct conn *c, const uint8_t *p, size_t len)
{
	conn_out_write(&c->out, (const char *)p, len);
}

void
conn_task_add(struct conn *c, struct task *t)
{
	t->conn = c;
	t->last_input = ev_now(c->srv->a->loop);
	t->prev = NULL;
	t->next = c->tasks;
	if (c->tasks != NULL)
		c->tasks->prev = t;
	c->tasks = t;
}

bool
conn_task_input(struct task *t)
{
	t->last_input = ev_now(t->conn->srv->a->loop);
	if (++t->inputs <= SERVER_STREAM_MAX_INPUTS)
		return true;
	conn_reply_error(t->conn, t->seq, "Too many messages in one stream "
	    "(at most %d); start another", SERVER_STREAM_MAX_INPUTS);
	conn_task_end(t, true);
	return false;
}

/* Every few seconds: end the client-streamed requests gone silent
 * for --stream-timeout seconds. */
static void
server_stream_sweep_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct server *s = container_of(w, struct server, sweep);
	ev_tstamp now = ev_now(loop);

	(void)revents;
	for (struct conn *c = s->conns; c != NULL; c = c->next) {
		struct task *t, *next;

		for (t = c->tasks; t != NULL; t = next) {
			next = t->next;
			if (t->ops->input == NULL ||
			    now - t->last_input < s->a->cfg.stream_idle)
				continue;
			conn_reply_error(c, t->seq, "No input for %.0f s: the "
			    "stream is closed", s->a->cfg.stream_idle);
			conn_task_end(t, true);
		}
	}
}

struct task *
conn_task_find(struct conn *c, uint64_t seq)
{
	for (struct task *t = c->tasks; t != NULL; t = t->next)
		if (t->seq == seq)
			return t;
	return NULL;
}

void
conn_task_end(struct task *t, bool send_end)
{
	struct conn *c = t->conn;

	if (send_end)
		conn_reply_state(c, t->seq, "end");
	if (t->prev != NULL)
		t->prev->next = t->next;
	else
		c->tasks = t->next;
	if (t->next != NULL)
		t->next->prev = t->prev;
	t->ops->free(t);
}

void
conn_task_want_pump(struct task *t)
{
	t->wants_pump = true;
	t->conn->want_pump = true;
	conn_mark_dirty(t->conn);
}

/* Run the pumps of tasks waiting for room, while there is room. */
static void
conn_run_pumps(struct conn *c)
{
	struct task *t, *next;

	if (!c->want_pump || c->dead)
		return;
	c->want_pump = false;
	for (t = c->tasks; t != NULL; t = next) {
		next = t->next;
		if (!t->wants_pump)
			continue;
		if (conn_output_busy(c)) {
			c->want_pump = true;
			return;
		}
		t->wants_pump = false;
		/* may end (free) t, never another task */
		t->ops->pump(t);
	}
}

static void
conn_update_reading(struct conn *c)
{
	struct ev_loop *loop = c->srv->a->loop;
	/* a TLS write that waits for input needs reading, full or not */
	bool want = !c->dead && !c->closing && !c->handshaking &&
	    (!conn_output_full(c) || c->tr.write_wants_read);

	if (want && !c->reading)
		ev_io_start(loop, &c->rio);
	else if (!want && c->reading)
		ev_io_stop(loop, &c->rio);
	c->reading = want;
}

/* Write what we can without blocking; arm wio for the rest. */
static void
conn_flush(struct conn *c)
{
	struct ev_loop *loop = c->srv->a->loop;

	if (c->dead)
		return;
	/* a reply must never leave before its change is durable */
	if (!c->srv->log_failed) {
		int rc = persist_sync(c->srv->a);

		if (rc != 0)
			server_log_failed(c->srv, rc);	/* does not return */
		c->out_acked = c->out.size;
		c->nunacked = 0;
	}
	while (conn_pending(c) > 0) {
		ssize_t n = transport_write(&c->tr, c->out.data + c->out_off,
		    conn_pending(c));

		if (n > 0) {
			c->out_off += (size_t)n;
			continue;
		}
		if (n == -EINTR)
			continue;
		if (n == -EAGAIN || n == -EWOULDBLOCK)
			break;
		log_debug("client write failed: %s", strerror((int)-n));
		c->dead = true;
		return;
	}
	if (conn_pending(c) == 0) {
		c->out.size = 0;
		c->out_off = 0;
		c->out_acked = 0;
		ev_io_stop(loop, &c->wio);
		if (c->closing)
			c->dead = true;	/* the caller closes it */
	} else {
		if (c->out_off > (1u << 20) && c->out_off > c->out.size / 2) {
			memmove(c->out.data, c->out.data + c->out_off,
			    conn_pending(c));
			c->out.size -= c->out_off;
			c->out_acked -= c->out_off;
			c->out_off = 0;
		}
		/* the socket being writable does not help a TLS write that
		 * waits for input: rio calls us then */
		if (c->tr.write_wants_read)
			ev_io_stop(loop, &c->wio);
		else
			ev_io_start(loop, &c->wio);
	}
	conn_update_reading(c);
}

static void
conn_wio_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct conn *c = container_of(w, struct conn, wio);

	(void)revents;
	if (c->tr.read_wants_write) {
		/* a TLS read waited for room to write (a key update) */
		conn_rio_cb(loop, &c->rio, EV_READ);
		return;		/* c may be gone */
	}
	conn_flush(c);
	/* pumps and held requests run in the prepare step */
	if (!c->dead && ((!conn_output_busy(c) && c->want_pump) ||
	    (c->input_held && !conn_output_full(c))))
		conn_mark_dirty(c);
	if (c->dead)
		conn_close(c);
}

/* Remember the seq of a request whose reply waits for durability. */
static void
conn_note_unacked(struct conn *c, const msgpack_object *req)
{
	uint64_t seq;

	if (proto_get_uint(proto_map_get(req, "seq"), &seq) != 0)
		return;
	if (c->nunacked == c->capunacked) {
		size_t cap = c->capunacked ? c->capunacked * 2 : 16;
		uint64_t *v = realloc(c->unacked, cap * sizeof(*v));

		if (v == NULL)
			return;	/* that request gets no error: EOF says it */
		c->unacked = v;
		c->capunacked = cap;
	}
	c->unacked[c->nunacked++] = seq;
}

/*
 * The change log cannot be written (a full disk, an I/O error): the
 * changes of this batch are in memory but not durable, so their replies
 * must never leave.  Every reply not yet covered by a successful sync is
 * withheld, each of those requests is answered with an error instead,
 * what can be sent is sent (2 s at most), and the agent stops.  A restart
 * finds exactly what was acknowledged.
 */
static void __attribute__((noreturn))
server_log_failed(struct server *s, int rc)
{
	s->log_failed = true;
	for (struct conn *c = s->conns; c != NULL; c = c->next) {
		if (c->out.size > c->out_acked)
			c->out.size = c->out_acked;
		for (size_t i = 0; i < c->nunacked; i++)
			conn_reply_error(c, c->unacked[i], "Not done: the "
			    "change log cannot be written (%s); the agent "
			    "stops so that nothing unlogged is acknowledged",
			    strerror(-rc));
		c->nunacked = 0;
	}
	server_drain(s);
	fatal("cannot write the change log: %s; stopped so that no unlogged "
	    "change is acknowledged (free space, then restart: every "
	    "acknowledged change is in the log)", strerror(-rc));
}

/*
 * Would a flush fsync (persist_sync)?  Then a batch's replies wait for its
 * end: one fsync covers them all.
 */
static bool
conn_flush_syncs(const struct conn *c)
{
	const struct agent *a = c->srv->a;

	return a->cfg.fsync == FSYNC_ALWAYS &&
	    (a->persist != NULL || a->logw != NULL);
}

/* Handle every complete message in the input buffer. */
static void
conn_process_input(struct conn *c)
{
	size_t off = 0;
	unsigned nreq = 0;

	/*
	 * Over --max-output, leave the rest buffered: the read watcher is
	 * off too, so a client that pipelines and never reads holds at most
	 * max_output plus one reply here (whatever its requests are).
	 * conn_flush comes back to it once the output drains.
	 */
	while (!c->dead && !c->closing && off < c->in_len &&
	    !conn_output_full(c)) {
		size_t objlen, avail = c->in_len - off;
		msgpack_object obj;
		bool unpacked = false;
		int rc;

		/*
		 * A few buffered bytes (pipelined small requests): scan and
		 * unpack in one pass.  Many: scan first, so that a large
		 * request arriving in pieces is not unpacked at every read.
		 */
		if (avail <= SERVER_ONE_PASS_MAX) {
			rc = proto_unpack_first(c->in + off, avail, &c->zone,
			    &obj, &objlen);
			unpacked = rc == 0;
			if (rc != 0)
				msgpack_zone_clear(&c->zone);
		} else
			rc = proto_scan(c->in + off, avail, PROTO_MAX_NESTING,
			    &objlen);
		if (rc == -EAGAIN) {
			if (c->in_len - off > c->srv->a->cfg.max_request) {
				msgpack_packer *pk = conn_reply_noseq(c, 1);

				msgpack_pack_str_with_body(pk, "error", 5);
				msgpack_pack_str_with_body(pk,
				    "Request too large; closing", 26);
				c->dead = true;	/* the stream cannot resync */
			}
			break;
		}
		if (rc != 0 || objlen > c->srv->a->cfg.max_request) {
			/* no seq can be trusted: reply without one */
			msgpack_packer *pk = conn_reply_noseq(c, 1);

			msgpack_pack_str_with_body(pk, "error", 5);
			if (rc != 0)
				msgpack_pack_str_with_body(pk,
				    "Malformed msgpack (or nested too deep); closing", 47);
			else
				msgpack_pack_str_with_body(pk,
				    "Request too large; closing", 26);
			c->dead = true;
			break;
		}
		if (!unpacked &&
		    proto_unpack(c->in + off, objlen, &c->zone, &obj) != 0) {
			msgpack_packer *pk = conn_reply_noseq(c, 1);

			msgpack_pack_str_with_body(pk, "error", 5);
			msgpack_pack_str_with_body(pk, "Malformed msgpack; closing", 26);
			c->dead = true;
			break;
		}
		off += objlen;
		if (c->srv->a->persist != NULL)
			conn_note_unacked(c, &obj);
		handlers_dispatch(c, &c->hs, &obj);
		msgpack_zone_clear(&c->zone);
		if (++nreq % SERVER_FLUSH_EVERY == 0 && off < c->in_len &&
		    !c->dead && !conn_flush_syncs(c))
			conn_flush(c);
	}
	/* the batch's requests were timed end to end (metrics.h); the
	 * next batch's first starts its own clock */
	c->srv->a->metrics.batch_stamp = 0;
	if (off > 0) {
		memmove(c->in, c->in + off, c->in_len - off);
		c->in_len -= off;
	}
	c->input_held = !c->dead && c->in_len > 0 && conn_output_full(c);
}

static void
conn_rio_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct conn *c = container_of(w, struct conn, rio);

	(void)loop;
	(void)revents;
	/* a TLS write that waited for input may go on now */
	if (c->tr.write_wants_read)
		conn_flush(c);
	for (int i = 0; i < SERVER_READS_PER_CB && !c->dead; i++) {
		ssize_t n;

		if (c->in_cap - c->in_len < SERVER_READ_CHUNK) {
			size_t cap = c->in_cap ? c->in_cap * 2 :
			    SERVER_READ_CHUNK * 2;
			uint8_t *in;

			if (cap > c->srv->a->cfg.max_request +
			    4 * SERVER_READ_CHUNK && c->in_cap >=
			    c->in_len + SERVER_READ_CHUNK / 4)
				cap = c->in_cap;	/* at the bound */
			if (cap != c->in_cap) {
				if ((in = realloc(c->in, cap)) == NULL) {
					c->dead = true;
					break;
				}
				c->in = in;
				c->in_cap = cap;
			}
		}
		n = transport_read(&c->tr, c->in + c->in_len,
		    c->in_cap - c->in_len);
		if (n == 0) {
			/* half-sent frames are dropped with the connection */
			c->dead = true;
			break;
		}
		if (n < 0) {
			if (n == -EINTR)
				continue;
			if (n != -EAGAIN && n != -EWOULDBLOCK)
				c->dead = true;
			break;
		}
		c->in_len += (size_t)n;
		conn_process_input(c);
		/* a short read drained the socket (and TLS's buffer): skip
		 * the EAGAIN read */
		if (conn_output_full(c) || ((size_t)n < SERVER_READ_CHUNK / 2 &&
		    !transport_pending(&c->tr)))
			break;
	}
	if (c->tr.read_wants_write && !c->dead)
		ev_io_start(loop, &c->wio);
	if (c->dead) {
		/* try to deliver a final error reply, then go */
		c->dead = false;
		conn_flush(c);
		conn_close(c);
		return;
	}
	conn_update_reading(c);
}

static void
conn_close(struct conn *c)
{
	struct server *s = c->srv;
	struct ev_loop *loop = s->a->loop;

	/* cancel everything the connection started (spec §2.2) */
	while (c->tasks != NULL)
		conn_task_end(c->tasks, false);
	ev_io_stop(loop, &c->rio);
	ev_io_stop(loop, &c->wio);
	transport_close(&c->tr);
	if (c->dirty) {
		struct conn **pp;

		for (pp = &s->dirty; *pp != NULL; pp = &(*pp)->dnext)
			if (*pp == c) {
				*pp = c->dnext;
				break;
			}
	}
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	s->nconns--;
	/* a descriptor is free again */
	for (size_t i = 0; i < s->nlis; i++)
		if (s->lis[i].paused)
			accept_resume(&s->lis[i]);
	free(c->in);
	free(c->unacked);
	msgpack_sbuffer_destroy(&c->out);
	msgpack_zone_destroy(&c->zone);
	free(c);
}

void
conn_end_after_reply(struct conn *c)
{
	c->closing = true;
	conn_mark_dirty(c);
}

/* Greet a connection whose transport is ready, and start reading it. */
static void
conn_start(struct conn *c)
{
	c->handshaking = false;
	c->reading = true;
	ev_io_start(c->srv->a->loop, &c->rio);
	handlers_greet(c, &c->hs);
}

/* transport_handshake_start's verdict (it logged a failure already). */
static void
conn_handshake_done(void *arg, int rc)
{
	struct conn *c = arg;

	if (rc != 0)
		conn_close(c);
	else
		conn_start(c);
}

/*
 * A connection on fd, from a listener of the given kind; addr (may be
 * NULL) keys the peer_auth and login penalties.  A TLS connection is
 * greeted once its handshake is done.
 */
int
server_conn_adopt(struct server *s, int fd, enum listen_kind kind,
    const struct sockaddr_storage *addr, socklen_t addrlen)
{
	struct conn *c;
	char who[80] = "?", host[NI_MAXHOST], port[NI_MAXSERV];

	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    !msgpack_zone_init(&c->zone, 4096)) {
		free(c);
		close(fd);
		return -ENOMEM;
	}
	if (kind == LISTEN_TLS) {
		if (transport_init_tls(&c->tr, s->tls, fd) != 0) {
			msgpack_zone_destroy(&c->zone);
			free(c);
			close(fd);
			return -ENOMEM;
		}
	} else
		transport_init_plain(&c->tr, kind == LISTEN_UNIX ?
		    TRANSPORT_UNIX : TRANSPORT_TCP, fd);
	c->srv = s;
	c->peer = kind == LISTEN_PEER;
	if (addr != NULL) {
		c->addr = *addr;
		c->addrlen = addrlen;
	}
	c->root = s->a->tree.root;
	msgpack_sbuffer_init(&c->out);
	msgpack_packer_init(&c->pk, &c->out, conn_out_write);
	ev_io_init(&c->rio, conn_rio_cb, fd, EV_READ);
	ev_io_init(&c->wio, conn_wio_cb, fd, EV_WRITE);
	c->next = s->conns;
	if (s->conns != NULL)
		s->conns->prev = c;
	s->conns = c;
	s->nconns++;
	s->a->metrics.conns_accepted++;
	if (kind != LISTEN_TLS) {
		conn_start(c);
		return 0;
	}
	c->handshaking = true;
	if (addr != NULL && getnameinfo((const struct sockaddr *)addr,
	    addrlen, host, sizeof(host), port, sizeof(port),
	    NI_NUMERICHOST | NI_NUMERICSERV) == 0)
		snprintf(who, sizeof(who), "%.50s:%.8s", host, port);
	transport_handshake_start(&c->tr, s->a->loop, who, conn_handshake_done,
	    c);
	return 0;
}

int
server_adopt(struct server *s, int fd, bool peer)
{
	return server_conn_adopt(s, fd, peer ? LISTEN_PEER : LISTEN_UNIX, NULL,
	    0);
}

bool
conn_is_peer(const struct conn *c)
{
	return c->peer;
}

bool
conn_is_local(const struct conn *c)
{
	return !c->peer && c->tr.kind == TRANSPORT_UNIX;
}

const struct transport *
conn_transport(const struct conn *c)
{
	return &c->tr;
}

int
conn_peer_cred(const struct conn *c, uid_t *uid, gid_t *gid)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);

	if (!conn_is_local(c))
		return -ENOTSUP;	/* TCP: no kernel-vouched identity */
	if (getsockopt(c->tr.fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0)
		return -errno;
	*uid = cr.uid;
	*gid = cr.gid;
	return 0;
}

/* Once per loop iteration: pumps, then durability, then replies. */
static void
server_prepare_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct server *s = container_of(w, struct server, prep);
	struct conn *c;
	int rc;

	(void)revents;
	for (c = s->dirty; c != NULL; c = c->dnext) {
		if (c->input_held && !conn_output_full(c))
			conn_process_input(c);
		conn_run_pumps(c);
	}
	if ((rc = agent_end_batch(s->a)) != 0)
		server_log_failed(s, rc);
	while ((c = s->dirty) != NULL) {
		s->dirty = c->dnext;
		c->dirty = false;
		conn_flush(c);
		if (c->dead)
			conn_close(c);
	}
	/*
	 * A walk that paused on a busy output, or requests held while the
	 * output was full, whose bytes all went out at once have no write
	 * event to wake them: run them next iteration.
	 */
	for (c = s->conns; c != NULL; c = c->next)
		if ((c->want_pump && !conn_output_busy(c)) ||
		    (c->input_held && !conn_output_full(c))) {
			conn_mark_dirty(c);
			ev_idle_start(loop, &s->idle);
		}
}

static void
server_idle_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	(void)revents;
	ev_idle_stop(loop, w);
}

int
server_new(struct agent *a, struct server **out)
{
	struct server *s;

	*out = NULL;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return -ENOMEM;
	s->a = a;
	ev_prepare_init(&s->prep, server_prepare_cb);
	ev_prepare_start(a->loop, &s->prep);
	ev_idle_init(&s->idle, server_idle_cb);
	{
		double every = a->cfg.stream_idle > 10 ? 5.0 :
		    a->cfg.stream_idle > 0 ? a->cfg.stream_idle / 2 : 5.0;

		ev_timer_init(&s->sweep, server_stream_sweep_cb, every, every);
	}
	ev_timer_start(a->loop, &s->sweep);
	ev_unref(a->loop);	/* the sweep alone keeps no loop alive */
	*out = s;
	return 0;
}

void
server_set_tls(struct server *s, struct tls_server *ts)
{
	tls_server_free(s->tls);
	s->tls = ts;
}

void
server_drain(struct server *s)
{
	long long waited = 0;

	s->draining = true;
	accept_stop_all(s);
	/* bounded: a client that does not read gets what fits in 2 s */
	while (waited < 2000) {
		bool pending = false;
		struct pollfd pfd[64];
		nfds_t n = 0;

		for (struct conn *c = s->conns; c != NULL; c = c->next) {
			conn_flush(c);
			if (!c->dead && conn_pending(c) > 0 && n < 64) {
				pfd[n].fd = c->tr.fd;
				pfd[n].events = POLLOUT;
				n++;
				pending = true;
			}
		}
		if (!pending)
			break;
		poll(pfd, n, 50);
		waited += 50;
	}
}

void
server_close(struct server *s)
{
	if (s == NULL)
		return;
	while (s->conns != NULL)
		conn_close(s->conns);
	ev_prepare_stop(s->a->loop, &s->prep);
	ev_idle_stop(s->a->loop, &s->idle);
	ev_ref(s->a->loop);
	ev_timer_stop(s->a->loop, &s->sweep);
	s->draining = true;
	accept_stop_all(s);
	for (size_t i = 0; i < s->nlis; i++) {
		close(s->lis[i].fd);
		if (s->lis[i].kind == LISTEN_UNIX)
			unlink(s->a->cfg.socket_path);
	}
	tls_server_free(s->tls);
	free(s);
}

size_t
server_nconns(const struct server *s)
{
	return s != NULL ? s->nconns : 0;
}
