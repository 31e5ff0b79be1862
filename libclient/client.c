/*
 * client: the connection to the agent and the request machinery under
 * every call (the calls themselves are in calls.c, reply decoding in
 * reply.c).
 *
 * Everything is asynchronous underneath.  A request is a struct req on the
 * handle's list, keyed by its seq; bytes from the socket are framed with
 * proto_scan(), each complete message is routed to its request, and a
 * request leaves the list when its single reply or its "end" arrives.  A
 * synchronous call starts a request and then runs the same machinery
 * (poll + read + dispatch) until that request is finished, so replies to
 * other requests are dispatched meanwhile.
 *
 * Callbacks may call back into the library (start requests, cancel, even
 * make synchronous calls), so a request is reference counted: the list, a
 * waiting synchronous caller and a running callback each hold a reference,
 * and every message is copied out of the input buffer before it is
 * dispatched, so nested reads may move the buffer freely.  Callbacks never
 * run from inside distkv_async_* or distkv_cancel, only from distkv_process
 * and synchronous calls.  distkv_close must not be called from a callback.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "distkv.h"
#include "hostport.h"
#include "client_impl.h"
#include "tls.h"

/* A hostile or broken agent must not make us buffer without bound. */
#define IN_MAX		(64u * 1024 * 1024)
#define READ_CHUNK	65536
/* Reads per distkv_process call, so one busy watch cannot starve the app. */
#define READS_PER_PROCESS 64
/* $DISTKV_TIMEOUT (seconds) or DISTKV_DEFAULT_TIMEOUT_MS */
#define DEFAULT_TIMEOUT	default_timeout_ms()

static long long now_ms(void);
static void	conn_die(distkv *, int);
static int	out_queue(distkv *, const void *, size_t);
static int	out_flush(distkv *);
static int	in_read(distkv *, int);
static void	in_frames(distkv *);
static msgpack_zone *zone_take(distkv *, msgpack_zone *);
static void	zone_give(distkv *, msgpack_zone *);
static void	dispatch(distkv *, const msgpack_object *, const uint8_t *,
		    size_t);
static void	dispatch_req(distkv *, struct req *, const msgpack_object *,
		    const uint8_t *, size_t);
static void	handle_greeting(distkv *, const msgpack_object *);
static void	set_errmsg(distkv *, const msgpack_object *);
static int	reply_error_code(const msgpack_object *);
static int	send_stop(distkv *, uint64_t);
static int	wait_req(distkv *, struct req *, int);

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

/*
 * The handle is dead from now on: every pending request fails with rc and
 * every later call returns it.  The descriptor stays open until
 * distkv_close so that the application's poll set never holds a reused fd.
 */
static void
conn_die(distkv *c, int rc)
{
	struct req *r;

	if (c->dead != 0)
		return;
	c->dead = rc;
	shutdown(c->fd, SHUT_RDWR);
	c->out_len = c->out_off = 0;
	while ((r = c->reqs) != NULL)
		client_req_finish(c, r, rc);
}

/* ---- output ---- */

static int
out_queue(distkv *c, const void *b, size_t n)
{
	if (c->out_off > 0 && c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	if (c->out_len + n > c->out_cap) {
		size_t ncap = c->out_cap == 0 ? 4096 : c->out_cap;
		uint8_t *nb;

		if (c->out_off > 0) {
			memmove(c->out, c->out + c->out_off,
			    c->out_len - c->out_off);
			c->out_len -= c->out_off;
			c->out_off = 0;
		}
		while (c->out_len + n > ncap)
			ncap *= 2;
		if (ncap != c->out_cap) {
			if ((nb = realloc(c->out, ncap)) == NULL)
				return (-ENOMEM);
			c->out = nb;
			c->out_cap = ncap;
		}
	}
	memcpy(c->out + c->out_len, b, n);
	c->out_len += n;
	return (0);
}

/*
 * Write what the socket takes now.  MSG_NOSIGNAL: a vanished agent is an
 * EPIPE error here, not a SIGPIPE that kills the application.
 */
static int
out_flush(distkv *c)
{
	ssize_t n;

	while (c->out_off < c->out_len) {
		if (c->tls != NULL) {
			n = tls_write(c->tls, c->out + c->out_off,
			    c->out_len - c->out_off);
			if (n < 0) {
				errno = (int)-n;
				n = -1;
			}
		} else
			n = send(c->fd, c->out + c->out_off,
			    c->out_len - c->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return (0);
			return (DISTKV_EDISCONNECTED);
		}
		c->out_off += (size_t)n;
	}
	c->out_off = c->out_len = 0;
	return (0);
}

/* ---- input ---- */

/*
 * Read up to max_reads chunks (until EAGAIN) and dispatch every complete
 * message.  Returns 0 or the code the handle died with.
 */
static int
in_read(distkv *c, int max_reads)
{
	ssize_t n;
	int i;

	for (i = 0; i < max_reads && c->dead == 0; i++) {
		if (c->in_off > 0) {
			memmove(c->in, c->in + c->in_off,
			    c->in_len - c->in_off);
			c->in_len -= c->in_off;
			c->in_off = 0;
		}
		if (c->in_cap - c->in_len < READ_CHUNK) {
			size_t ncap = c->in_cap == 0 ? 2 * READ_CHUNK :
			    c->in_cap * 2;
			uint8_t *nb;

			if (c->in_len >= IN_MAX) {
				/* one message larger than we accept */
				conn_die(c, DISTKV_EPROTO);
				break;
			}
			if (ncap > IN_MAX + READ_CHUNK)
				ncap = IN_MAX + READ_CHUNK;
			if ((nb = realloc(c->in, ncap)) == NULL) {
				conn_die(c, -ENOMEM);
				break;
			}
			c->in = nb;
			c->in_cap = ncap;
		}
		if (c->tls != NULL) {
			char why[256] = "";

			n = tls_read(c->tls, c->in + c->in_len,
			    c->in_cap - c->in_len, &c->tls_rw, why, sizeof(why));
			/* refused after the handshake (TLS 1.3 checks our
			 * certificate then): say so, before the greeting */
			if (n == -EPROTO && !c->greeted) {
				client_connect_err("%s", why);
				conn_die(c, DISTKV_ETLS);
				break;
			}
			if (n < 0) {
				errno = (int)-n;
				n = -1;
			}
		} else
			n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len,
			    MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			conn_die(c, DISTKV_EDISCONNECTED);
			break;
		}
		if (n == 0) {
			conn_die(c, DISTKV_EDISCONNECTED);
			break;
		}
		c->in_len += (size_t)n;
		in_frames(c);
	}
	return (c->dead);
}

/*
 * A reply is unpacked from a copy of its bytes (callbacks may re-enter
 * and move c->in).  Most are short: up to FRAME_FIRST bytes are copied
 * and unpacked in one pass (proto_unpack_first), the way the agent reads
 * requests; only a reply longer than that is scanned for its end first.
 */
#define FRAME_FIRST 256

static void
in_frames(distkv *c)
{
	uint8_t small[1024], *msg;
	msgpack_zone local, *zone;
	msgpack_object m;
	size_t avail, n, objlen;
	int rc;

	while (c->dead == 0 && c->in_off < c->in_len) {
		avail = c->in_len - c->in_off;
		n = avail < FRAME_FIRST ? avail : FRAME_FIRST;
		zone = zone_take(c, &local);
		msg = small;
		memcpy(small, c->in + c->in_off, n);
		rc = proto_unpack_first(small, n, zone, &m, &objlen);
		if (rc == -EAGAIN && n < avail) {
			/* longer than FRAME_FIRST: find its end, then unpack */
			zone_give(c, zone);
			zone = zone_take(c, &local);
			rc = proto_scan(c->in + c->in_off, avail,
			    PROTO_MAX_NESTING, &objlen);
			if (rc == 0 && objlen > sizeof(small) &&
			    (msg = malloc(objlen)) == NULL) {
				zone_give(c, zone);
				conn_die(c, -ENOMEM);
				return;
			}
			if (rc == 0) {
				memcpy(msg, c->in + c->in_off, objlen);
				rc = proto_unpack(msg, objlen, zone, &m) == 0 ?
				    0 : -EPROTO;
			}
		}
		if (rc == 0) {
			c->in_off += objlen;
			dispatch(c, &m, msg, objlen);
		}
		zone_give(c, zone);
		if (msg != small)
			free(msg);
		if (rc == -EAGAIN)
			return;
		if (rc != 0) {
			conn_die(c, DISTKV_EPROTO);
			return;
		}
	}
}

/* The code of an error reply's text (errors.c); 0 for no error. */
static int
reply_error_code(const msgpack_object *e)
{
	if (e == NULL)
		return (0);
	if (e->type != MSGPACK_OBJECT_STR)
		return (DISTKV_ESERVER);
	return (client_error_code(e->via.str.ptr, e->via.str.size));
}

static void
set_errmsg(distkv *c, const msgpack_object *e)
{
	char *s;

	if (e != NULL && e->type == MSGPACK_OBJECT_STR)
		s = strndup(e->via.str.ptr, e->via.str.size);
	else
		s = strdup("(error reply without text)");
	if (s == NULL)
		return;
	free(c->errmsg);
	c->errmsg = s;
}

/*
 * Map the region the agent names.  Failing that is no error: reads then
 * go over the socket.  DISTKV_NO_SHM set in the environment skips it.
 */
static void
map_shm(distkv *c, const msgpack_object *path)
{
	char *p;

	if (path == NULL || path->type != MSGPACK_OBJECT_STR ||
	    path->via.str.size == 0 || path->via.str.size > 4096 ||
	    getenv("DISTKV_NO_SHM") != NULL)
		return;
	if ((p = strndup(path->via.str.ptr, path->via.str.size)) == NULL)
		return;
	if (distkv_shm_open(p, &c->shm) != 0)
		c->shm = NULL;
	free(p);
}

static int
shm_reply_cb(void *arg, const uint8_t *msg, size_t len)
{
	distkv *c = arg;
	msgpack_zone zone;
	msgpack_object m;

	msgpack_zone_init(&zone, 256);
	if (proto_unpack(msg, len, &zone, &m) == 0) {
		distkv_shm_close(c->shm);
		c->shm = NULL;
		map_shm(c, proto_map_get(&m, "shm"));
	}
	msgpack_zone_destroy(&zone);
	return (0);
}

/*
 * After a login: the region only for a login the agent gives it to (a
 * user bound to an ACL reads over the socket, through the ACL).  An agent
 * without get_shm answers an error: no region then, the safe side.
 */
void
client_login_done(distkv *c)
{
	static const char req[] = "\x81\xa6" "action" "\xa7" "get_shm";

	(void)distkv_request(c, req, sizeof(req) - 1, shm_reply_cb, c);
}

const char *
distkv_version(void)
{
	return (DISTKV_VERSION_STRING);
}

distkv_shm *
distkv_shm_of(const distkv *c)
{
	return (c->shm);
}

uint8_t *
client_dh_key(distkv *c, bool **done)
{
	*done = &c->dh_done;
	return (c->dh_key);
}

struct strcache **
client_strcache(distkv *c)
{
	return (&c->strcache);
}

bool
client_has_root(const distkv *c)
{
	return (c->root != NULL);
}

bool
client_has_cert(const distkv *c)
{
	return (tls_has_client_cert(c->tls));
}

static void
handle_greeting(distkv *c, const msgpack_object *m)
{
	const msgpack_object *node, *tick;

	node = proto_map_get(m, "node");
	tick = proto_map_get(m, "tick");
	/* a peer port that wants a proof first names nothing (challenge) */
	if (node == NULL && proto_map_get(m, "challenge") != NULL)
		c->node = strdup("");
	else if (node == NULL || node->type != MSGPACK_OBJECT_STR ||
	    node->via.str.size > DISTKV_NODE_MAX) {
		conn_die(c, DISTKV_EPROTO);
		return;
	} else
		c->node = strndup(node->via.str.ptr, node->via.str.size);
	if (c->node == NULL) {
		conn_die(c, -ENOMEM);
		return;
	}
	/* tick is nil while the agent has no data yet (spec §1.3) */
	if (tick != NULL && proto_get_uint(tick, &c->gtick) != 0)
		c->gtick = 0;
	map_shm(c, proto_map_get(m, "shm"));
	{
		msgpack_packer pk;

		msgpack_packer_init(&pk, &c->greeting, msgpack_sbuffer_write);
		msgpack_pack_object(&pk, *m);
	}
	c->greeted = true;
}

/*
 * The zone a reply is unpacked into: the handle's, unless a callback
 * re-entered us while it is in use: then a fresh one (local).
 */
static msgpack_zone *
zone_take(distkv *c, msgpack_zone *local)
{
	if (!c->zone_busy && (c->zone_ready ||
	    (c->zone_ready = msgpack_zone_init(&c->zone, 2048)))) {
		c->zone_busy = true;
		return (&c->zone);
	}
	msgpack_zone_init(local, 2048);
	return (local);
}

static void
zone_give(distkv *c, msgpack_zone *zone)
{
	if (zone == &c->zone) {
		msgpack_zone_clear(zone);
		c->zone_busy = false;
	} else
		msgpack_zone_destroy(zone);
}

/* One message m, unpacked from buf[0..len), to its request. */
static void
dispatch(distkv *c, const msgpack_object *m, const uint8_t *buf, size_t len)
{
	const msgpack_object *seqo;
	uint64_t seq;
	struct req *r;

	if (m->type != MSGPACK_OBJECT_MAP ||
	    (seqo = proto_map_get(m, "seq")) == NULL ||
	    proto_get_uint(seqo, &seq) != 0) {
		/* spec §2.2: a reply without seq is fatal */
		conn_die(c, DISTKV_EPROTO);
		return;
	}
	if (!c->greeted) {
		if (seq != 0)
			conn_die(c, DISTKV_EPROTO);
		else
			handle_greeting(c, m);
		return;
	}
	/* Unknown seq: a reply to something we gave up on (timeout, stop). */
	if ((r = client_req_find(c, seq)) == NULL)
		return;
	r->refs++;
	dispatch_req(c, r, m, buf, len);
	client_req_release(c, r);
}

static void
dispatch_req(distkv *c, struct req *r, const msgpack_object *m,
    const uint8_t *buf, size_t len)
{
	const msgpack_object *state, *error;
	struct distkv_entry e;
	struct distkv_set_result sr;
	struct enc keep;
	struct req *t;
	int rc;

	r->nmsg++;
	state = proto_map_get(m, "state");
	error = proto_map_get(m, "error");
	if (error != NULL)
		set_errmsg(c, error);
	if (r->kind == REQ_RAW && !r->orphan &&
	    r->raw_fn(r->arg, buf, len) != 0 && !r->finished) {
		r->user_stop = true;
		r->orphan = true;
		if (r->multi || proto_str_eq(state, "start"))
			send_stop(c, r->seq);
	}
	if (r->nmsg == 1 && proto_str_eq(state, "start")) {
		r->multi = true;
		return;
	}
	if (r->finished)
		return;
	if (!r->multi) {
		/* single reply: the request is complete */
		rc = error != NULL ? reply_error_code(error) : 0;
		switch (r->kind) {
		case REQ_SYNC:
			if ((r->reply = malloc(len)) == NULL) {
				client_req_finish(c, r, -ENOMEM);
				return;
			}
			memcpy(r->reply, buf, len);
			r->reply_len = len;
			break;
		case REQ_GET:
			enc_init_raw(&keep);
			if (rc == 0 && (rc = client_decode_entry_borrowed(m,
			    &e, &keep)) == 0) {
				if (distkv_value_is_nil(e.value.data,
				    e.value.len))
					rc = DISTKV_ENOTFOUND;
				r->finished = true;
				client_req_unlink(c, r);
				/* e is the callback's to borrow, not to keep:
				 * its value lives in keep */
				r->get_cb(r->arg, rc, &e);
				enc_free(&keep);
				client_req_unref(r);
				return;
			}
			enc_free(&keep);
			break;
		case REQ_SET:
			enc_init_raw(&keep);
			if (rc == 0 && (rc = client_decode_set(m, &sr,
			    &keep)) == 0) {
				r->finished = true;
				client_req_unlink(c, r);
				/* sr is borrowed (distkv_set_cb): its prev
				 * lives in keep */
				r->set_cb(r->arg, 0, &sr);
				enc_free(&keep);
				client_req_unref(r);
				return;
			}
			enc_free(&keep);
			break;
		case REQ_STOP:
			/*
			 * The agent should end the cancelled request with
			 * state "end" first; if it did not (the reference
			 * does not), this confirmation ends it.
			 */
			if ((t = client_req_find(c, r->task)) != NULL)
				client_req_finish(c, t, DISTKV_ECANCELLED);
			break;
		case REQ_ITEMS:
			if (rc == 0)
				rc = DISTKV_EPROTO;
			break;
		case REQ_RAW:
			break;
		}
		client_req_finish(c, r, rc);
		return;
	}
	if (proto_str_eq(state, "end")) {
		rc = r->cancelled ? DISTKV_ECANCELLED : r->err;
		if (rc == 0 && r->kind == REQ_ITEMS && r->watch_cb != NULL)
			rc = DISTKV_ESERVER;	/* watches never just end */
		client_req_finish(c, r, rc);
		return;
	}
	if (error != NULL) {
		r->err = reply_error_code(error);
		return;
	}
	if (r->kind != REQ_ITEMS || r->orphan || r->cancelled || r->user_stop)
		return;
	if (proto_str_eq(state, "uptodate")) {
		if (r->watch_cb != NULL)
			r->watch_cb(r->arg, 0, NULL);
		else if (r->entry_fn(r->arg, NULL) != 0)
			r->user_stop = true;
		return;
	}
	if (state != NULL)
		return;		/* some state we do not know: skip */
	if ((rc = client_decode_item(r, m, &e)) != 0) {
		conn_die(c, rc);
		return;
	}
	if (r->watch_cb != NULL)
		r->watch_cb(r->arg, 0, &e);
	else if (r->entry_fn(r->arg, &e) != 0)
		r->user_stop = true;
	distkv_entry_clear(&e);
}

/* ---- encoding requests ---- */

/* Room for len more bytes: the buffer moves to the heap. */
int
client_enc_grow(struct enc *e, size_t len)
{
	msgpack_sbuffer *sb = &e->sb;
	size_t ncap = sb->alloc * 2;
	char *nd;

	while (ncap - sb->size < len)
		ncap *= 2;
	if (sb->data == e->small) {
		if ((nd = malloc(ncap)) != NULL)
			memcpy(nd, sb->data, sb->size);
	} else
		nd = realloc(sb->data, ncap);
	if (nd == NULL)
		return (-1);
	sb->data = nd;
	sb->alloc = ncap;
	return (0);
}

/* The packer's write function. */
int
client_enc_write(void *data, const char *buf, size_t len)
{
	struct enc *e = data;
	msgpack_sbuffer *sb = &e->sb;

	if (sb->alloc - sb->size < len && client_enc_grow(e, len) != 0)
		return (-1);
	proto_copy(sb->data + sb->size, buf, len);
	sb->size += len;
	return (0);
}

int
client_check_msgpack(const void *b, size_t n)
{
	size_t objlen;

	if (b == NULL || n == 0 ||
	    proto_scan(b, n, PROTO_MAX_NESTING, &objlen) != 0 || objlen != n)
		return (DISTKV_EINVAL);
	return (0);
}

/*
 * Queue the encoded request e (whose seq field is r's and comes first in
 * the map) and put r on the list.  Consumes e and, on failure, r.  Write
 * errors are only noted here: callbacks run from distkv_process and sync
 * waits, never from the call that started the request.
 */
int
client_start(distkv *c, struct enc *e, struct req *r)
{
	int rc;

	if ((rc = e->err) == 0 && (rc = out_queue(c, e->sb.data,
	    e->sb.size)) == 0) {
		r->next = NULL;
		*c->reqs_tail = r;
		c->reqs_tail = &r->next;
		/*
		 * Batch: requests started together leave in one write, from
		 * distkv_process() or a synchronous wait (distkv_want_write
		 * tells the caller's loop to poll for POLLOUT).  Only a large
		 * backlog is pushed out here.
		 */
		if (c->write_err == 0 && c->out_len - c->out_off > 65536)
			c->write_err = out_flush(c);
	} else
		client_req_unref(r);
	enc_free(e);
	return (rc);
}

static int
send_stop(distkv *c, uint64_t task)
{
	struct req *r, *t;
	struct enc e;

	if ((t = client_req_find(c, task)) != NULL) {
		if (t->cancelled)
			return (0);
		t->cancelled = true;
	}
	if ((r = client_req_new(c, REQ_STOP)) == NULL)
		return (-ENOMEM);
	r->task = task;
	enc_request(&e, 3, r->seq, "stop");
	enc_str(&e, "task");
	enc_uint(&e, task);
	return (client_start(c, &e, r));
}

/*
 * Run the connection until r is finished (or its sync callback asked to
 * stop), the handle dies, or timeout_ms passes (<0: no limit).  r NULL:
 * until the greeting has arrived.
 */
static int
wait_req(distkv *c, struct req *r, int timeout_ms)
{
	long long deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
	struct pollfd pfd;
	int rc, wait;

	for (;;) {
		if (r == NULL ? c->greeted : (r->finished || r->user_stop))
			return (0);
		if (c->dead != 0)
			return (c->dead);
		if (c->write_err != 0) {
			conn_die(c, c->write_err);
			continue;
		}
		if ((rc = out_flush(c)) != 0) {
			conn_die(c, rc);
			continue;
		}
		wait = -1;
		if (deadline >= 0) {
			long long left = deadline - now_ms();

			if (left <= 0)
				return (DISTKV_ETIMEDOUT);
			wait = left > 1000000 ? 1000000 : (int)left;
		}
		pfd.fd = c->fd;
		pfd.events = POLLIN;
		if (c->out_off < c->out_len || c->tls_rw)
			pfd.events |= POLLOUT;
		pfd.revents = 0;
		/* bytes TLS decrypted already make no socket readable */
		if (tls_pending(c->tls))
			wait = 0;
		rc = poll(&pfd, 1, wait);
		if (rc < 0) {
			if (errno == EINTR)
				continue;
			return (-errno);
		}
		if (rc == 0 && !tls_pending(c->tls))
			continue;
		if ((pfd.revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL)) ||
		    (c->tls_rw && (pfd.revents & POLLOUT)) ||
		    tls_pending(c->tls))
			in_read(c, READS_PER_PROCESS);
	}
}

/*
 * Start a synchronous single-reply request and wait for its reply, which
 * is unpacked into zone/m.  *rp keeps the reply bytes alive; the caller
 * unrefs it.  An error reply gives its kind (reply_error_code; text in
 * errmsg).
 */
int
client_sync_single(distkv *c, struct enc *e, msgpack_zone *zone,
    msgpack_object *m, struct req **rp)
{
	struct req *r = *rp;
	int rc;

	*rp = NULL;
	r->refs++;		/* ours */
	if ((rc = client_start(c, e, r)) != 0) {
		client_req_unref(r);
		return (rc);
	}
	rc = wait_req(c, r, c->timeout_ms);
	if (rc == 0)
		rc = r->rc;
	if (rc != 0) {
		/* a late reply finds an orphan and is dropped */
		r->orphan = true;
		client_req_unref(r);
		return (rc);
	}
	*rp = r;
	if (proto_unpack(r->reply, r->reply_len, zone, m) != 0)
		return (DISTKV_EPROTO);
	return (reply_error_code(proto_map_get(m, "error")));
}

/* Start a multi-reply request driven by a sync callback; wait for it. */
int
client_sync_multi(distkv *c, struct enc *e, struct req *r, int timeout_ms)
{
	int rc;

	r->refs++;		/* ours */
	if ((rc = client_start(c, e, r)) != 0) {
		client_req_unref(r);
		return (rc);
	}
	rc = wait_req(c, r, timeout_ms);
	if (rc == 0 && r->finished)
		rc = r->rc;
	if (!r->finished) {
		/*
		 * Stopped by the callback or timed out: the callback's
		 * stack frame goes away, so nothing may reach it again.
		 */
		r->orphan = true;
		if (c->dead == 0)
			send_stop(c, r->seq);
	}
	client_req_unref(r);
	return (rc);
}

int
client_sync_prepare(distkv *c, struct req **rp)
{
	*rp = NULL;
	if (c->dead != 0)
		return (c->dead);
	if ((*rp = client_req_new(c, REQ_SYNC)) == NULL)
		return (-ENOMEM);
	return (0);
}

/* ---- connection ---- */

static int
default_timeout_ms(void)
{
	const char *env = getenv("DISTKV_TIMEOUT");
	char *end;
	double s;

	if (env == NULL || *env == '\0')
		return (DISTKV_DEFAULT_TIMEOUT_MS);
	s = strtod(env, &end);
	if (*end != '\0' || !(s >= 0) || s > 86400.0 * 365)
		return (DISTKV_DEFAULT_TIMEOUT_MS);	/* garbage: the default */
	return (s == 0 ? -1 : (int)(s * 1000.0));
}

int
client_default_timeout_ms(void)
{
	return (default_timeout_ms());
}

/*
 * Wrap a connected socket (and its TLS, if not NULL; both are the
 * handle's from now on, also on failure) and read the greeting within
 * timeout_ms.
 */
int
client_adopt(int fd, struct tls_conn *tls, int timeout_ms, distkv **out)
{
	distkv *c;
	int rc;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		tls_close(tls);
		close(fd);
		return (-ENOMEM);
	}
	c->fd = fd;
	c->tls = tls;
	c->timeout_ms = DEFAULT_TIMEOUT;
	c->next_seq = 1;
	c->reqs_tail = &c->reqs;
	msgpack_sbuffer_init(&c->greeting);

	rc = wait_req(c, NULL, timeout_ms);
	if (rc == DISTKV_EDISCONNECTED)
		rc = DISTKV_ECONNECT;
	if (rc != 0) {
		distkv_close(c);
		return (rc);
	}
	*out = c;
	return (0);
}

int
distkv_connect(const char *socket_path, distkv **out)
{
	struct sockaddr_un sun;
	const char *m;
	int fd, rc;

	*out = NULL;
	client_connect_err("%s", "");
	if (socket_path == NULL && (m = getenv("DISTKV_CONNECT")) != NULL &&
	    *m != '\0')
		return (distkv_connect_url(m, NULL, out));
	if (socket_path == NULL)
		socket_path = getenv("DISTKV_SOCKET");
	if (socket_path == NULL || *socket_path == '\0')
		socket_path = DISTKV_DEFAULT_SOCKET;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(socket_path) >= sizeof(sun.sun_path))
		return (DISTKV_ECONNECT);
	memcpy(sun.sun_path, socket_path, strlen(socket_path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return (-errno);
	/* A local socket connects at once or fails; EAGAIN = backlog full. */
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
		client_connect_err("cannot connect to %s: %s", socket_path,
		    strerror(errno));
		close(fd);
		return (DISTKV_ECONNECT);
	}
	if ((rc = client_adopt(fd, NULL, DEFAULT_TIMEOUT, out)) != 0)
		return (rc);
	/*
	 * The unix method needs no secret: log in by ourselves.  A refusal
	 * leaves the connection as it is; its calls then say NoAuthError.
	 */
	if ((m = distkv_auth_method(*out)) != NULL && strcmp(m, "unix") == 0)
		(void)distkv_login(*out, "unix", NULL);
	return (0);
}

int
distkv_connect_tcp(const char *hostport, int timeout_ms, distkv **out)
{
	struct addrinfo *ai;
	struct pollfd pfd;
	long long deadline = now_ms() + timeout_ms;
	int fd, rc, err = 0;
	socklen_t elen = sizeof(err);

	*out = NULL;
	if (hostport_resolve(hostport, false, &ai) != 0)
		return (DISTKV_EINVAL);
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
	    0);
	if (fd < 0) {
		rc = -errno;
		freeaddrinfo(ai);
		return (rc);
	}
	rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
	freeaddrinfo(ai);
	if (rc != 0 && errno != EINPROGRESS) {
		close(fd);
		return (DISTKV_ECONNECT);
	}
	if (rc != 0) {
		/* bounded: a vanished peer costs at most timeout_ms */
		pfd.fd = fd;
		pfd.events = POLLOUT;
		rc = poll(&pfd, 1, timeout_ms);
		if (rc <= 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err,
		    &elen) != 0 || err != 0) {
			close(fd);
			return (rc == 0 ? DISTKV_ETIMEDOUT : DISTKV_ECONNECT);
		}
	}
	rc = (int)(deadline - now_ms());
	return (client_adopt(fd, NULL, rc > 0 ? rc : 1, out));
}

int
distkv_connect_fd(int fd, int timeout_ms, distkv **out)
{
	int fl;

	*out = NULL;
	if (fd < 0)
		return (DISTKV_EINVAL);
	/* the library polls: the socket must not block */
	if ((fl = fcntl(fd, F_GETFL)) < 0 ||
	    fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		close(fd);
		return (-errno);
	}
	return (client_adopt(fd, NULL, timeout_ms, out));
}

const void *
distkv_greeting(const distkv *c, size_t *len)
{
	*len = c->greeting.size;
	return (c->greeting.data);
}

void
distkv_close(distkv *c)
{
	struct req *r;

	if (c == NULL)
		return;
	/* Callbacks are not called: the application is tearing down. */
	while ((r = c->reqs) != NULL) {
		c->reqs = r->next;
		r->finished = true;
		client_req_unref(r);
	}
	c->reqs_tail = &c->reqs;
	client_req_pool_free(c);
	tls_close(c->tls);
	close(c->fd);
	distkv_shm_close(c->shm);
	strcache_free(c->strcache);
	distkv_path_free(c->root);
	msgpack_sbuffer_destroy(&c->greeting);
	if (c->zone_ready)
		msgpack_zone_destroy(&c->zone);
	free(c->in);
	free(c->out);
	free(c->node);
	free(c->errmsg);
	free(c);
}

const char *
distkv_node(const distkv *c)
{
	return (c->node);
}

uint64_t
distkv_greeting_tick(const distkv *c)
{
	return (c->gtick);
}

const char *
distkv_errmsg(const distkv *c)
{
	return (c->errmsg != NULL ? c->errmsg : "");
}

void
distkv_set_timeout(distkv *c, int ms)
{
	c->timeout_ms = ms;
}

/* ---- asynchronous interface ---- */

int
distkv_fd(const distkv *c)
{
	return (c->fd);
}

int
distkv_process(distkv *c)
{
	int rc;

	if (c->dead != 0)
		return (c->dead);
	if (c->write_err != 0) {
		conn_die(c, c->write_err);
		return (c->dead);
	}
	if ((rc = out_flush(c)) != 0) {
		conn_die(c, rc);
		return (c->dead);
	}
	return (in_read(c, READS_PER_PROCESS));
}

bool
distkv_want_write(const distkv *c)
{
	return (c->dead == 0 && (c->out_off < c->out_len || c->tls_rw));
}

int
distkv_cancel(distkv *c, uint64_t seq)
{
	struct req *r;

	if (c->dead != 0)
		return (c->dead);
	if ((r = client_req_find(c, seq)) == NULL || r->kind == REQ_STOP)
		return (DISTKV_EINVAL);
	return (send_stop(c, seq));
}
