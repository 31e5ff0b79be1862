/*
 * client: the connection to the agent, synchronous and asynchronous calls.
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
#include "proto.h"
#include "client_internal.h"
#include "tls.h"

/* A hostile or broken agent must not make us buffer without bound. */
#define IN_MAX		(64u * 1024 * 1024)
#define READ_CHUNK	65536
/* Reads per distkv_process call, so one busy watch cannot starve the app. */
#define READS_PER_PROCESS 64
/* $DISTKV_TIMEOUT (seconds) or DISTKV_DEFAULT_TIMEOUT_MS */
#define DEFAULT_TIMEOUT	default_timeout_ms()

enum req_kind {
	REQ_SYNC,	/* single reply kept for a synchronous caller */
	REQ_GET,	/* async get: distkv_get_cb */
	REQ_SET,	/* async set/delete: distkv_set_cb */
	REQ_ITEMS,	/* tree/watch items: entry_fn (sync) or watch_cb */
	REQ_RAW,	/* distkv_request: every message to raw_fn */
	REQ_STOP,	/* our own "stop"; confirms the cancel of 'task' */
};

struct req {
	struct req	*next;
	uint64_t	 seq;
	enum req_kind	 kind;
	int		 refs;
	unsigned	 nmsg;
	bool		 multi;		/* first message: state "start" */
	bool		 finished;
	bool		 cancelled;	/* we sent stop for it */
	bool		 orphan;	/* nobody wants its results */
	bool		 user_stop;	/* a sync callback said stop */
	int		 rc;		/* final result */
	int		 err;		/* error item of a multi reply */

	/* REQ_SYNC: the reply message, copied */
	uint8_t		*reply;
	size_t		 reply_len;

	/* REQ_ITEMS: path lengthening (spec §2.6) */
	distkv_path	*base;
	distkv_path	*last;

	distkv_get_cb	*get_cb;
	distkv_set_cb	*set_cb;
	distkv_watch_cb	*watch_cb;
	distkv_entry_fn	*entry_fn;
	distkv_raw_fn	*raw_fn;
	void		*arg;

	uint64_t	 task;		/* REQ_STOP */
};

struct distkv {
	int		 fd;
	struct tls_conn	*tls;		/* tls:// connections, else NULL */
	bool		 tls_rw;	/* a TLS read waits for POLLOUT */
	int		 dead;		/* 0, or what every call returns */
	int		 write_err;	/* seen where no callback may run */
	bool		 greeted;
	char		*node;
	uint64_t	 gtick;
	char		*errmsg;
	int		 timeout_ms;
	distkv_shm	*shm;		/* region named in the greeting */
	distkv_path	*root;		/* after distkv_root: the prefix of
					 * every path, for shm keys */
	msgpack_sbuffer	 greeting;	/* the greeting map, as received */
	msgpack_zone	 zone;		/* reused by dispatch() */
	bool		 zone_ready, zone_busy;
	uint64_t	 next_seq;

	uint8_t		*in;
	size_t		 in_off, in_len, in_cap;
	uint8_t		*out;
	size_t		 out_off, out_len, out_cap;

	/* in flight, oldest first: replies mostly come in that order, so
	 * finding one is a look at the head */
	struct req	*reqs;
	struct req	**reqs_tail;	/* &last->next, or &reqs */

	struct strcache	*strcache;	/* strget.c: prepared keys by text */
	bool		 dh_done;	/* login.c: diffie_hellman ran */
	uint8_t		 dh_key[32];	/* its shared key */
};

/*
 * Most requests are a few dozen bytes: they are encoded in the struct's
 * own buffer (on the caller's stack), with no allocation; a larger one
 * moves to the heap (enc_write).  A struct enc is never copied.
 */
#define ENC_FIRST 256

/* Encoder for one request map. */
struct enc {
	msgpack_sbuffer	 sb;		/* data: small, or malloc'ed */
	msgpack_packer	 pk;
	int		 err;
	char		 small[ENC_FIRST];
};

static long long now_ms(void);
static void	req_unref(struct req *);
static struct req *req_new(distkv *, enum req_kind);
static struct req *req_find(distkv *, uint64_t);
static void	req_unlink(distkv *, struct req *);
static void	req_finish(distkv *, struct req *, int);
static void	conn_die(distkv *, int);
static int	out_queue(distkv *, const void *, size_t);
static int	out_flush(distkv *);
static int	in_read(distkv *, int);
static void	in_frames(distkv *);
static void	dispatch(distkv *, const uint8_t *, size_t);
static void	dispatch_req(distkv *, struct req *, const msgpack_object *,
		    const uint8_t *, size_t);
static void	handle_greeting(distkv *, const msgpack_object *);
static void	set_errmsg(distkv *, const msgpack_object *);
static int	reply_error_code(const msgpack_object *);
static int	decode_chain(const msgpack_object *, struct distkv_chain *);
static int	decode_entry(const msgpack_object *, struct distkv_entry *,
		    bool);
static int	decode_item(struct req *, const msgpack_object *,
		    struct distkv_entry *);
static int	reply_value(struct distkv_value *, const msgpack_object *);
static int	decode_set(const msgpack_object *,
		    struct distkv_set_result *);
static void	enc_init(struct enc *, size_t);
static void	enc_str(struct enc *, const char *);
static void	enc_uint(struct enc *, uint64_t);
static void	enc_int(struct enc *, int64_t);
static void	enc_bool(struct enc *, bool);
static void	enc_nil(struct enc *);
static void	enc_raw(struct enc *, const void *, size_t);
static void	enc_path(struct enc *, const distkv_path *);
static int	start(distkv *, struct enc *, struct req *);
static int	send_stop(distkv *, uint64_t);
static int	wait_req(distkv *, struct req *, int);
static void	enc_init_raw(struct enc *);
static void	enc_free(struct enc *);
static int	sync_single(distkv *, struct enc *, msgpack_zone *,
		    msgpack_object *, struct req **);
static int	sync_multi(distkv *, struct enc *, struct req *, int);
static int	check_msgpack(const void *, size_t);
static int	enc_set(struct enc *, uint64_t, const char *,
		    const distkv_path *, const void *, size_t,
		    const struct distkv_set_opts *);
static int	enc_tree(struct enc *, uint64_t, const char *,
		    const distkv_path *, const struct distkv_tree_opts *);
static int	sync_prepare(distkv *, struct req **);
static int	items_req(distkv *, const distkv_path *, struct req **);

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

/* ---- requests ---- */

static struct req *
req_new(distkv *c, enum req_kind kind)
{
	struct req *r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return (NULL);
	r->kind = kind;
	r->seq = c->next_seq++;
	r->refs = 1;		/* the list's, taken in start() */
	return (r);
}

/* not inlined: gcc 12's -Wuse-after-free misreads the refcount */
static __attribute__((noinline)) void
req_unref(struct req *r)
{
	if (r == NULL || --r->refs > 0)
		return;
	free(r->reply);
	distkv_path_free(r->base);
	distkv_path_free(r->last);
	free(r);
}

static struct req *
req_find(distkv *c, uint64_t seq)
{
	struct req *r;

	for (r = c->reqs; r != NULL; r = r->next) {
		if (r->seq == seq)
			return (r);
	}
	return (NULL);
}

static void
req_unlink(distkv *c, struct req *r)
{
	struct req **pp;

	for (pp = &c->reqs; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == r) {
			*pp = r->next;
			if (c->reqs_tail == &r->next)
				c->reqs_tail = pp;
			r->next = NULL;
			return;
		}
	}
}

/*
 * End a request: it leaves the list (so later messages with its seq are
 * ignored), its owner hears about it once, and the list's reference goes.
 */
static void
req_finish(distkv *c, struct req *r, int rc)
{
	if (r->finished)
		return;
	r->finished = true;
	r->rc = rc;
	req_unlink(c, r);
	if (!r->orphan) {
		r->refs++;
		switch (r->kind) {
		case REQ_GET:
			r->get_cb(r->arg, rc, NULL);
			break;
		case REQ_SET:
			r->set_cb(r->arg, rc, NULL);
			break;
		case REQ_ITEMS:
			if (r->watch_cb != NULL)
				r->watch_cb(r->arg, rc, NULL);
			break;
		default:
			break;
		}
		r->refs--;
	}
	req_unref(r);
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
		req_finish(c, r, rc);
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
 * Dispatch every complete message in the buffer.  Each is copied out first
 * and the offset advanced before dispatch, because a callback may read and
 * dispatch (and so move the buffer) itself.
 */
static void
in_frames(distkv *c)
{
	uint8_t small[1024], *msg;
	size_t objlen;
	int rc;

	while (c->dead == 0 && c->in_off < c->in_len) {
		rc = proto_scan(c->in + c->in_off, c->in_len - c->in_off,
		    PROTO_MAX_NESTING, &objlen);
		if (rc == -EAGAIN)
			return;
		if (rc != 0) {
			conn_die(c, DISTKV_EPROTO);
			return;
		}
		/* a copy: callbacks may re-enter and move c->in */
		msg = objlen <= sizeof(small) ? small : malloc(objlen);
		if (msg == NULL) {
			conn_die(c, -ENOMEM);
			return;
		}
		memcpy(msg, c->in + c->in_off, objlen);
		c->in_off += objlen;
		dispatch(c, msg, objlen);
		if (msg != small)
			free(msg);
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

static void
dispatch(distkv *c, const uint8_t *buf, size_t len)
{
	msgpack_zone local, *zone;
	msgpack_object m;
	const msgpack_object *seqo;
	uint64_t seq;
	struct req *r;

	/* the handle's zone, unless a callback re-entered us while it is
	 * in use: then a fresh one */
	if (!c->zone_busy && (c->zone_ready ||
	    (c->zone_ready = msgpack_zone_init(&c->zone, 2048)))) {
		zone = &c->zone;
		c->zone_busy = true;
	} else {
		msgpack_zone_init(&local, 2048);
		zone = &local;
	}
	if (proto_unpack(buf, len, zone, &m) != 0 ||
	    m.type != MSGPACK_OBJECT_MAP ||
	    (seqo = proto_map_get(&m, "seq")) == NULL ||
	    proto_get_uint(seqo, &seq) != 0) {
		/* spec §2.2: a reply without seq is fatal */
		conn_die(c, DISTKV_EPROTO);
		goto out;
	}
	if (!c->greeted) {
		if (seq != 0)
			conn_die(c, DISTKV_EPROTO);
		else
			handle_greeting(c, &m);
		goto out;
	}
	/* Unknown seq: a reply to something we gave up on (timeout, stop). */
	if ((r = req_find(c, seq)) == NULL)
		goto out;
	r->refs++;
	dispatch_req(c, r, &m, buf, len);
	req_unref(r);
out:
	if (zone == &c->zone) {
		msgpack_zone_clear(zone);
		c->zone_busy = false;
	} else
		msgpack_zone_destroy(zone);
}

static void
dispatch_req(distkv *c, struct req *r, const msgpack_object *m,
    const uint8_t *buf, size_t len)
{
	const msgpack_object *state, *error;
	struct distkv_entry e;
	struct distkv_set_result sr;
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
				req_finish(c, r, -ENOMEM);
				return;
			}
			memcpy(r->reply, buf, len);
			r->reply_len = len;
			break;
		case REQ_GET:
			if (rc == 0 && (rc = decode_entry(m, &e, false)) == 0) {
				if (distkv_value_is_nil(e.value.data,
				    e.value.len))
					rc = DISTKV_ENOTFOUND;
				r->finished = true;
				req_unlink(c, r);
				r->get_cb(r->arg, rc, &e);
				/* what distkv_entry_clear frees, without its
				 * memset of the whole entry */
				distkv_path_free(e.path);
				distkv_value_clear(&e.value);
				req_unref(r);
				return;
			}
			break;
		case REQ_SET:
			if (rc == 0 && (rc = decode_set(m, &sr)) == 0) {
				r->finished = true;
				req_unlink(c, r);
				r->set_cb(r->arg, 0, &sr);
				distkv_value_clear(&sr.prev);
				req_unref(r);
				return;
			}
			break;
		case REQ_STOP:
			/*
			 * The agent should end the cancelled request with
			 * state "end" first; if it did not (the reference
			 * does not), this confirmation ends it.
			 */
			if ((t = req_find(c, r->task)) != NULL)
				req_finish(c, t, DISTKV_ECANCELLED);
			break;
		case REQ_ITEMS:
			if (rc == 0)
				rc = DISTKV_EPROTO;
			break;
		case REQ_RAW:
			break;
		}
		req_finish(c, r, rc);
		return;
	}
	if (proto_str_eq(state, "end")) {
		rc = r->cancelled ? DISTKV_ECANCELLED : r->err;
		if (rc == 0 && r->kind == REQ_ITEMS && r->watch_cb != NULL)
			rc = DISTKV_ESERVER;	/* watches never just end */
		req_finish(c, r, rc);
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
	if ((rc = decode_item(r, m, &e)) != 0) {
		conn_die(c, rc);
		return;
	}
	if (r->watch_cb != NULL)
		r->watch_cb(r->arg, 0, &e);
	else if (r->entry_fn(r->arg, &e) != 0)
		r->user_stop = true;
	distkv_entry_clear(&e);
}

/* ---- decoding replies ---- */

static int
decode_chain(const msgpack_object *o, struct distkv_chain *ch)
{
	const msgpack_object *node, *tick, *prev;

	/* not the 2 KiB of events: only ev[0..n) is ever read */
	ch->n = 0;
	ch->complete = true;
	while (o != NULL && o->type != MSGPACK_OBJECT_NIL) {
		struct distkv_event *ev;

		if (o->type != MSGPACK_OBJECT_MAP)
			return (DISTKV_EPROTO);
		if (ch->n == DISTKV_CHAIN_MAX) {
			ch->complete = false;
			break;
		}
		ev = &ch->ev[ch->n];
		node = proto_map_get(o, "node");
		tick = proto_map_get(o, "tick");
		if (node == NULL || node->type != MSGPACK_OBJECT_STR ||
		    node->via.str.size > DISTKV_NODE_MAX)
			return (DISTKV_EPROTO);
		memcpy(ev->node, node->via.str.ptr, node->via.str.size);
		ev->node[node->via.str.size] = '\0';
		if (tick != NULL && tick->type != MSGPACK_OBJECT_NIL &&
		    proto_get_uint(tick, &ev->tick) != 0)
			return (DISTKV_EPROTO);
		ch->n++;
		/* spec §1.4: no prev key = truncated, prev nil = the end */
		if ((prev = proto_map_get(o, "prev")) == NULL) {
			ch->complete = false;
			break;
		}
		o = prev;
	}
	return (0);
}

/*
 * An empty entry, field by field: only chain.ev[0..n) is ever read, and a
 * memset of all DISTKV_CHAIN_MAX events twice per distkv_get cost more
 * than the whole region read.
 */
static void
entry_reset(struct distkv_entry *e)
{
	e->path = NULL;
	e->value.data = NULL;
	e->value.len = 0;
	e->tock = 0;
	e->chain.n = 0;
	e->chain.complete = false;
	e->depth = 0;
}

/* value, tock, chain and (if with_path and present) path of a reply map. */
static int
decode_entry(const msgpack_object *m, struct distkv_entry *e, bool with_path)
{
	const msgpack_object *v, *tock, *chain, *path;
	int rc;

	entry_reset(e);
	v = proto_map_get(m, "value");
	tock = proto_map_get(m, "tock");
	chain = proto_map_get(m, "chain");
	path = with_path ? proto_map_get(m, "path") : NULL;
	if (tock != NULL && proto_get_uint(tock, &e->tock) != 0)
		return (DISTKV_EPROTO);
	if ((rc = decode_chain(chain, &e->chain)) != 0)
		return (rc);
	if (v != NULL)
		rc = reply_value(&e->value, v);
	else
		rc = distkv_value_from_nil(&e->value);
	if (rc != 0)
		return (rc);
	if (path != NULL) {
		if ((rc = distkv_path_new(&e->path)) != 0 ||
		    (rc = path_push_object(e->path, path)) != 0) {
			distkv_entry_clear(e);
			return (rc);
		}
	}
	return (0);
}

/*
 * A tree/watch item: path shortened against the previous item (spec §2.6).
 * L = L[:depth] + path; the entry's path is the request path + L.
 */
static int
decode_item(struct req *r, const msgpack_object *m, struct distkv_entry *e)
{
	const msgpack_object *path, *depth;
	int64_t d = 0;
	int rc;

	path = proto_map_get(m, "path");
	depth = proto_map_get(m, "depth");
	if (path == NULL)
		return (DISTKV_EPROTO);
	if (depth != NULL && (proto_get_int(depth, &d) != 0 || d < 0 ||
	    (uint64_t)d > distkv_path_len(r->last)))
		return (DISTKV_EPROTO);
	distkv_path_truncate(r->last, distkv_path_len(r->last) - (size_t)d);
	if ((rc = path_push_object(r->last, path)) != 0)
		return (rc);
	if ((rc = decode_entry(m, e, false)) != 0)
		return (rc);
	e->depth = (int)distkv_path_len(r->last);
	if ((rc = distkv_path_dup(r->base, &e->path)) != 0 ||
	    (rc = path_append(e->path, r->last, 0)) != 0) {
		distkv_entry_clear(e);
		return (rc == DISTKV_EINVAL ? DISTKV_EPROTO : rc);
	}
	return (0);
}

static int
decode_set(const msgpack_object *m, struct distkv_set_result *r)
{
	const msgpack_object *changed, *prev, *tock, *chain;
	int rc;

	/* field by field, as entry_reset */
	r->changed = false;
	r->has_prev = false;
	r->prev.data = NULL;
	r->prev.len = 0;
	r->chain.n = 0;
	r->chain.complete = false;
	r->tock = 0;
	changed = proto_map_get(m, "changed");
	prev = proto_map_get(m, "prev");
	tock = proto_map_get(m, "tock");
	chain = proto_map_get(m, "chain");
	if (changed != NULL) {
		if (changed->type != MSGPACK_OBJECT_BOOLEAN)
			return (DISTKV_EPROTO);
		r->changed = changed->via.boolean;
	}
	if (tock != NULL && proto_get_uint(tock, &r->tock) != 0)
		return (DISTKV_EPROTO);
	if ((rc = decode_chain(chain, &r->chain)) != 0)
		return (rc);
	if (prev != NULL) {
		if ((rc = reply_value(&r->prev, prev)) != 0)
			return (rc);
		r->has_prev = true;
	}
	return (0);
}

void
distkv_entry_clear(struct distkv_entry *e)
{
	if (e == NULL)
		return;
	distkv_path_free(e->path);
	distkv_value_clear(&e->value);
	entry_reset(e);
}

void
distkv_set_result_clear(struct distkv_set_result *r)
{
	if (r == NULL)
		return;
	distkv_value_clear(&r->prev);
	memset(r, 0, sizeof(*r));
}

/*
 * value_from_object's result (the canonical bytes of o) in an allocation
 * of their size: packed in struct enc's stack buffer first, where
 * value_from_object's sbuffer mallocs 8 KiB per reply.
 */
static int
reply_value(struct distkv_value *v, const msgpack_object *o)
{
	struct enc e;
	int rc = 0;

	v->data = NULL;
	v->len = 0;
	enc_init_raw(&e);
	if (proto_pack_canonical(&e.pk, o) != 0 || e.err != 0 ||
	    (v->data = malloc(e.sb.size)) == NULL)
		rc = -ENOMEM;
	else {
		memcpy(v->data, e.sb.data, e.sb.size);
		v->len = e.sb.size;
	}
	enc_free(&e);
	return (rc);
}

/* ---- encoding requests ---- */

/* Room for len more bytes: the buffer moves to the heap. */
static int
enc_grow(struct enc *e, size_t len)
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
static int
enc_write(void *data, const char *buf, size_t len)
{
	struct enc *e = data;
	msgpack_sbuffer *sb = &e->sb;

	if (sb->alloc - sb->size < len && enc_grow(e, len) != 0)
		return (-1);
	proto_copy(sb->data + sb->size, buf, len);
	sb->size += len;
	return (0);
}

static void
enc_free(struct enc *e)
{
	if (e->sb.data != e->small)
		free(e->sb.data);
	e->sb.data = e->small;
	e->sb.size = 0;
	e->sb.alloc = sizeof(e->small);
}

/* For a map header the caller writes itself. */
static void
enc_init_raw(struct enc *e)
{
	e->sb.data = e->small;
	e->sb.size = 0;
	e->sb.alloc = sizeof(e->small);
	msgpack_packer_init(&e->pk, e, enc_write);
	e->err = 0;
}

/*
 * Room for n more bytes at the end of e's buffer, or NULL (e->err set).
 * enc_str, enc_uint, enc_int and the map header write straight into it
 * (proto_put_*: msgpack-c's shortest forms): through the packer, each
 * token was a call of enc_write, some 700 instructions per set request.
 */
static uint8_t *
enc_room(struct enc *e, size_t n)
{
	if (e->sb.alloc - e->sb.size < n && enc_grow(e, n) != 0) {
		e->err = -ENOMEM;
		return (NULL);
	}
	return ((uint8_t *)e->sb.data + e->sb.size);
}

static void
enc_done(struct enc *e, const uint8_t *end)
{
	e->sb.size = (size_t)(end - (const uint8_t *)e->sb.data);
}

static void
enc_init(struct enc *e, size_t nfields)
{
	uint8_t *p;

	enc_init_raw(e);
	if ((p = enc_room(e, 5)) == NULL)
		return;
	if (nfields < 16)
		*p++ = (uint8_t)(0x80 | nfields);
	else if (nfields < 65536) {
		*p++ = 0xde;
		p = proto_put_be(p, nfields, 2);
	} else {
		*p++ = 0xdf;
		p = proto_put_be(p, nfields, 4);
	}
	enc_done(e, p);
}

static inline void
enc_str(struct enc *e, const char *s)
{
	size_t n = strlen(s);
	uint8_t *p;

	if ((p = enc_room(e, n + 5)) == NULL)
		return;
	p = proto_put_strhdr(p, false, n);
	proto_copy(p, s, n);
	enc_done(e, p + n);
}

static void
enc_uint(struct enc *e, uint64_t v)
{
	uint8_t *p;

	if ((p = enc_room(e, 9)) == NULL)
		return;
	if (v > INT64_MAX) {
		*p++ = 0xcf;
		p = proto_put_be(p, v, 8);
	} else
		p = proto_put_int(p, (int64_t)v);
	enc_done(e, p);
}

static void
enc_int(struct enc *e, int64_t v)
{
	uint8_t *p;

	if ((p = enc_room(e, 9)) == NULL)
		return;
	enc_done(e, proto_put_int(p, v));
}

static void
enc_bool(struct enc *e, bool b)
{
	if ((b ? msgpack_pack_true(&e->pk) : msgpack_pack_false(&e->pk)) != 0)
		e->err = -ENOMEM;
}

static void
enc_nil(struct enc *e)
{
	if (msgpack_pack_nil(&e->pk) != 0)
		e->err = -ENOMEM;
}

/* Bytes already in msgpack form (checked by the caller). */
static void
enc_raw(struct enc *e, const void *b, size_t n)
{
	if (enc_write(e, b, n) != 0)
		e->err = -ENOMEM;
}

static void
enc_path(struct enc *e, const distkv_path *p)
{
	const uint8_t *key;
	size_t len;

	/* the path keeps its canonical bytes: the same as path_pack's */
	if ((key = path_key_cached(p, &len, NULL)) != NULL) {
		if (enc_write(e, (const char *)key, len) != 0)
			e->err = -ENOMEM;
	} else if (path_pack(&e->pk, p) != 0)
		e->err = -ENOMEM;
}

static int
check_msgpack(const void *b, size_t n)
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
static int
start(distkv *c, struct enc *e, struct req *r)
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
		req_unref(r);
	enc_free(e);
	return (rc);
}

static int
send_stop(distkv *c, uint64_t task)
{
	struct req *r, *t;
	struct enc e;

	if ((t = req_find(c, task)) != NULL) {
		if (t->cancelled)
			return (0);
		t->cancelled = true;
	}
	if ((r = req_new(c, REQ_STOP)) == NULL)
		return (-ENOMEM);
	r->task = task;
	enc_init(&e, 3);
	enc_str(&e, "seq");
	enc_uint(&e, r->seq);
	enc_str(&e, "action");
	enc_str(&e, "stop");
	enc_str(&e, "task");
	enc_uint(&e, task);
	return (start(c, &e, r));
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
static int
sync_single(distkv *c, struct enc *e, msgpack_zone *zone,
    msgpack_object *m, struct req **rp)
{
	struct req *r = *rp;
	int rc;

	*rp = NULL;
	r->refs++;		/* ours */
	if ((rc = start(c, e, r)) != 0) {
		req_unref(r);
		return (rc);
	}
	rc = wait_req(c, r, c->timeout_ms);
	if (rc == 0)
		rc = r->rc;
	if (rc != 0) {
		/* a late reply finds an orphan and is dropped */
		r->orphan = true;
		req_unref(r);
		return (rc);
	}
	*rp = r;
	if (proto_unpack(r->reply, r->reply_len, zone, m) != 0)
		return (DISTKV_EPROTO);
	return (reply_error_code(proto_map_get(m, "error")));
}

/* Start a multi-reply request driven by a sync callback; wait for it. */
static int
sync_multi(distkv *c, struct enc *e, struct req *r, int timeout_ms)
{
	int rc;

	r->refs++;		/* ours */
	if ((rc = start(c, e, r)) != 0) {
		req_unref(r);
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
	req_unref(r);
	return (rc);
}

static int
sync_prepare(distkv *c, struct req **rp)
{
	*rp = NULL;
	if (c->dead != 0)
		return (c->dead);
	if ((*rp = req_new(c, REQ_SYNC)) == NULL)
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
		req_unref(r);
	}
	c->reqs_tail = &c->reqs;
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

/* ---- synchronous calls ---- */

/*
 * distkv_get through the mapped region: no round trip.  The agent
 * publishes a change before it replies, so a caller reads its own writes.
 */
static int
get_from_shm(distkv *c, const distkv_path *p, struct distkv_entry *out)
{
	distkv_path *full = NULL;
	int rc;

	if (c->root != NULL) {
		if ((rc = distkv_path_dup(c->root, &full)) != 0 ||
		    (rc = path_append(full, p, 0)) != 0) {
			distkv_path_free(full);
			return (rc);
		}
		p = full;
	}
	rc = shm_client_get_value(c->shm, p, &out->value, &out->tock);
	distkv_path_free(full);
	if (rc == DISTKV_ENOTFOUND)
		rc = distkv_value_from_nil(&out->value) == 0 ?
		    DISTKV_ENOTFOUND : -ENOMEM;
	return (rc);
}

int
distkv_get(distkv *c, const distkv_path *p, int nchain,
    struct distkv_entry *out)
{
	msgpack_zone zone;
	msgpack_object m;
	struct req *r;
	struct enc e;
	int rc;

	entry_reset(out);
	if (c->shm != NULL && nchain <= 0 && c->dead == 0 &&
	    shm_client_fresh(c->shm) &&
	    (rc = get_from_shm(c, p, out)) != DISTKV_EBUSY &&
	    rc != DISTKV_ECORRUPT)
		return (rc);
	if ((rc = sync_prepare(c, &r)) != 0)
		return (rc);
	enc_init(&e, nchain > 0 ? 4 : 3);
	enc_str(&e, "seq");
	enc_uint(&e, r->seq);
	enc_str(&e, "action");
	enc_str(&e, "get_value");
	enc_str(&e, "path");
	enc_path(&e, p);
	if (nchain > 0) {
		enc_str(&e, "nchain");
		enc_int(&e, nchain);
	}
	msgpack_zone_init(&zone, 2048);
	if ((rc = sync_single(c, &e, &zone, &m, &r)) == 0 &&
	    (rc = decode_entry(&m, out, false)) == 0) {
		if (distkv_value_is_nil(out->value.data, out->value.len))
			rc = DISTKV_ENOTFOUND;
	}
	msgpack_zone_destroy(&zone);
	req_unref(r);
	if (rc != 0 && rc != DISTKV_ENOTFOUND)
		distkv_entry_clear(out);
	return (rc);
}

int
distkv_get_event(distkv *c, const char *node, uint64_t tick, int nchain,
    struct distkv_entry *out)
{
	msgpack_zone zone;
	msgpack_object m;
	struct req *r;
	struct enc e;
	int rc;

	memset(out, 0, sizeof(*out));
	if (node == NULL || strlen(node) > DISTKV_NODE_MAX)
		return (DISTKV_EINVAL);
	if ((rc = sync_prepare(c, &r)) != 0)
		return (rc);
	enc_init(&e, nchain > 0 ? 5 : 4);
	enc_str(&e, "seq");
	enc_uint(&e, r->seq);
	enc_str(&e, "action");
	enc_str(&e, "get_value");
	enc_str(&e, "node");
	enc_str(&e, node);
	enc_str(&e, "tick");
	enc_uint(&e, tick);
	if (nchain > 0) {
		enc_str(&e, "nchain");
		enc_int(&e, nchain);
	}
	msgpack_zone_init(&zone, 2048);
	if ((rc = sync_single(c, &e, &zone, &m, &r)) == 0)
		rc = decode_entry(&m, out, true);
	msgpack_zone_destroy(&zone);
	req_unref(r);
	if (rc != 0)
		distkv_entry_clear(out);
	return (rc);
}

/* The fields of set_value / delete_value (value NULL: delete). */
/* On success e holds the encoding; on failure nothing is allocated. */
static int
enc_set(struct enc *e, uint64_t seq, const char *action,
    const distkv_path *p, const void *value, size_t len,
    const struct distkv_set_opts *o)
{
	size_t n = 4;
	int nchain = 1;
	int rc;

	if (value != NULL && (rc = check_msgpack(value, len)) != 0)
		return (rc);
	if (o != NULL) {
		if (o->prev != NULL &&
		    (rc = check_msgpack(o->prev, o->prev_len)) != 0)
			return (rc);
		if (o->pre == DISTKV_PRE_CHAIN &&
		    strlen(o->chain_head.node) > DISTKV_NODE_MAX)
			return (DISTKV_EINVAL);
		if (o->pre != DISTKV_PRE_NONE && o->pre != DISTKV_PRE_NEW &&
		    o->pre != DISTKV_PRE_CHAIN)
			return (DISTKV_EINVAL);
		if (o->nchain >= 0)
			nchain = o->nchain;
		n += o->pre != DISTKV_PRE_NONE;
		n += o->prev != NULL;
	}
	n += value != NULL;
	enc_init(e, n);
	enc_str(e, "seq");
	enc_uint(e, seq);
	enc_str(e, "action");
	enc_str(e, action);
	enc_str(e, "path");
	enc_path(e, p);
	if (value != NULL) {
		enc_str(e, "value");
		enc_raw(e, value, len);
	}
	enc_str(e, "nchain");
	enc_int(e, nchain);
	if (o != NULL && o->pre == DISTKV_PRE_NEW) {
		/* the key present with nil: "must not exist" (§2.5.2) */
		enc_str(e, "chain");
		enc_nil(e);
	} else if (o != NULL && o->pre == DISTKV_PRE_CHAIN) {
		enc_str(e, "chain");
		if (msgpack_pack_map(&e->pk, 2) != 0)
			e->err = -ENOMEM;
		enc_str(e, "node");
		enc_str(e, o->chain_head.node);
		enc_str(e, "tick");
		enc_uint(e, o->chain_head.tick);
	}
	if (o != NULL && o->prev != NULL) {
		enc_str(e, "prev");
		enc_raw(e, o->prev, o->prev_len);
	}
	return (0);
}

static int
set_common(distkv *c, const char *action, const distkv_path *p,
    const void *value, size_t len, const struct distkv_set_opts *opts,
    struct distkv_set_result *out)
{
	msgpack_zone zone;
	msgpack_object m;
	struct distkv_set_result tmp;
	struct req *r;
	struct enc e;
	int rc;

	if (out != NULL)
		memset(out, 0, sizeof(*out));
	if ((rc = sync_prepare(c, &r)) != 0)
		return (rc);
	if ((rc = enc_set(&e, r->seq, action, p, value, len, opts)) != 0) {
		req_unref(r);
		return (rc);
	}
	msgpack_zone_init(&zone, 2048);
	if ((rc = sync_single(c, &e, &zone, &m, &r)) == 0 &&
	    (rc = decode_set(&m, &tmp)) == 0) {
		if (out != NULL)
			*out = tmp;
		else
			distkv_set_result_clear(&tmp);
	}
	msgpack_zone_destroy(&zone);
	req_unref(r);
	return (rc);
}

int
distkv_set(distkv *c, const distkv_path *p, const void *value, size_t len,
    const struct distkv_set_opts *opts, struct distkv_set_result *out)
{
	if (value == NULL)
		return (DISTKV_EINVAL);
	return (set_common(c, "set_value", p, value, len, opts, out));
}

int
distkv_delete(distkv *c, const distkv_path *p,
    const struct distkv_set_opts *opts, struct distkv_set_result *out)
{
	return (set_common(c, "delete_value", p, NULL, 0, opts, out));
}

int
distkv_delete_tree(distkv *c, const distkv_path *p, uint64_t *count)
{
	msgpack_zone zone;
	msgpack_object m;
	struct req *r;
	struct enc e;
	int rc;

	if (count != NULL)
		*count = 0;
	if ((rc = sync_prepare(c, &r)) != 0)
		return (rc);
	enc_init(&e, 3);
	enc_str(&e, "seq");
	enc_uint(&e, r->seq);
	enc_str(&e, "action");
	enc_str(&e, "delete_tree");
	enc_str(&e, "path");
	enc_path(&e, p);
	msgpack_zone_init(&zone, 2048);
	if ((rc = sync_single(c, &e, &zone, &m, &r)) == 0) {
		uint64_t n = 0;
		const msgpack_object *ch = proto_map_get(&m, "changed");

		if (ch != NULL && proto_get_uint(ch, &n) != 0)
			rc = DISTKV_EPROTO;
		else if (count != NULL)
			*count = n;
	}
	msgpack_zone_destroy(&zone);
	req_unref(r);
	return (rc);
}

/*
 * get_tree and watch fields.  get_tree is sent both depth spellings
 * (spec §2.5.4: mindepth at c326411, min_depth later); unknown fields are
 * ignored by the agent.
 */
static int
enc_tree(struct enc *e, uint64_t seq, const char *action,
    const distkv_path *p, const struct distkv_tree_opts *o)
{
	bool watch = strcmp(action, "watch") == 0;
	size_t n = 3;

	if (o != NULL) {
		n += o->nchain > 0;
		n += (o->min_depth > 0) * (watch ? 1 : 2);
		n += (o->max_depth >= 0) * (watch ? 1 : 2);
		n += watch && o->fetch;
	}
	enc_init(e, n);
	enc_str(e, "seq");
	enc_uint(e, seq);
	enc_str(e, "action");
	enc_str(e, action);
	enc_str(e, "path");
	enc_path(e, p);
	if (o == NULL)
		return (e->err);
	if (o->nchain > 0) {
		enc_str(e, "nchain");
		enc_int(e, o->nchain);
	}
	if (o->min_depth > 0) {
		enc_str(e, "min_depth");
		enc_int(e, o->min_depth);
		if (!watch) {
			enc_str(e, "mindepth");
			enc_int(e, o->min_depth);
		}
	}
	if (o->max_depth >= 0) {
		enc_str(e, "max_depth");
		enc_int(e, o->max_depth);
		if (!watch) {
			enc_str(e, "maxdepth");
			enc_int(e, o->max_depth);
		}
	}
	if (watch && o->fetch) {
		enc_str(e, "fetch");
		enc_bool(e, true);
	}
	return (e->err);
}

static int
items_req(distkv *c, const distkv_path *p, struct req **out)
{
	struct req *r;
	int rc;

	*out = NULL;
	if ((r = req_new(c, REQ_ITEMS)) == NULL)
		return (-ENOMEM);
	if (p != NULL)
		rc = distkv_path_dup(p, &r->base);
	else
		rc = distkv_path_new(&r->base);
	if (rc != 0 || (rc = distkv_path_new(&r->last)) != 0) {
		req_unref(r);
		return (rc);
	}
	*out = r;
	return (0);
}

/* get_tree and the synchronous watch: a multi reply of items to fn. */
static int
sync_items(distkv *c, const char *action, const distkv_path *p,
    const struct distkv_tree_opts *opts, int timeout_ms, distkv_entry_fn *fn,
    void *arg)
{
	struct req *r;
	struct enc e;
	int rc;

	if (c->dead != 0)
		return (c->dead);
	if (fn == NULL)
		return (DISTKV_EINVAL);
	if ((rc = items_req(c, p, &r)) != 0)
		return (rc);
	if ((rc = enc_tree(&e, r->seq, action, p, opts)) != 0) {
		enc_free(&e);
		req_unref(r);
		return (rc);
	}
	r->entry_fn = fn;
	r->arg = arg;
	return (sync_multi(c, &e, r, timeout_ms));
}

int
distkv_get_tree(distkv *c, const distkv_path *p,
    const struct distkv_tree_opts *opts, distkv_entry_fn *fn, void *arg)
{
	return (sync_items(c, "get_tree", p, opts, c->timeout_ms, fn, arg));
}

int
distkv_watch(distkv *c, const distkv_path *p,
    const struct distkv_tree_opts *opts, int timeout_ms, distkv_entry_fn *fn,
    void *arg)
{
	return (sync_items(c, "watch", p, opts, timeout_ms, fn, arg));
}

int
distkv_state(distkv *c, int flags, struct distkv_value *out)
{
	static const struct {
		int flag;
		const char *key;
	} keys[] = {
		{ DISTKV_STATE_NODES, "nodes" },
		{ DISTKV_STATE_KNOWN, "known" },
		{ DISTKV_STATE_MISSING, "missing" },
		{ DISTKV_STATE_REMOTE_MISSING, "remote_missing" },
		{ DISTKV_STATE_PING, "ping" },
		{ DISTKV_STATE_RECOVERY, "recovery" },
	};
	msgpack_zone zone;
	msgpack_object m;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	struct req *r;
	struct enc e;
	size_t i, n = 2;
	uint32_t k, keep;
	int rc;

	memset(out, 0, sizeof(*out));
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		n += (flags & keys[i].flag) != 0;
	if ((rc = sync_prepare(c, &r)) != 0)
		return (rc);
	enc_init(&e, n);
	enc_str(&e, "seq");
	enc_uint(&e, r->seq);
	enc_str(&e, "action");
	enc_str(&e, "get_state");
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		if (flags & keys[i].flag) {
			enc_str(&e, keys[i].key);
			enc_bool(&e, true);
		}
	}
	msgpack_zone_init(&zone, 2048);
	if ((rc = sync_single(c, &e, &zone, &m, &r)) == 0) {
		keep = 0;
		for (k = 0; k < m.via.map.size; k++) {
			const msgpack_object *key = &m.via.map.ptr[k].key;

			keep += !proto_str_eq(key, "seq") &&
			    !proto_str_eq(key, "tock");
		}
		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		rc = msgpack_pack_map(&pk, keep) == 0 ? 0 : -ENOMEM;
		for (k = 0; k < m.via.map.size && rc == 0; k++) {
			const msgpack_object_kv *kv = &m.via.map.ptr[k];

			if (proto_str_eq(&kv->key, "seq") ||
			    proto_str_eq(&kv->key, "tock"))
				continue;
			if (proto_pack_canonical(&pk, &kv->key) != 0 ||
			    proto_pack_canonical(&pk, &kv->val) != 0)
				rc = -ENOMEM;
		}
		if (rc == 0 && sb.data != NULL) {
			out->len = sb.size;
			out->data = (uint8_t *)msgpack_sbuffer_release(&sb);
		} else if (rc == 0)
			rc = -ENOMEM;
		msgpack_sbuffer_destroy(&sb);
	}
	msgpack_zone_destroy(&zone);
	req_unref(r);
	return (rc);
}

int
distkv_root(distkv *c, const distkv_path *p, struct distkv_entry *out)
{
	msgpack_zone zone;
	msgpack_object m;
	struct distkv_entry tmp;
	struct req *r;
	struct enc e;
	int rc;

	if (out != NULL)
		memset(out, 0, sizeof(*out));
	if ((rc = sync_prepare(c, &r)) != 0)
		return (rc);
	enc_init(&e, 3);
	enc_str(&e, "seq");
	enc_uint(&e, r->seq);
	enc_str(&e, "action");
	enc_str(&e, "root");
	enc_str(&e, "path");
	enc_path(&e, p);
	msgpack_zone_init(&zone, 2048);
	if ((rc = sync_single(c, &e, &zone, &m, &r)) == 0 &&
	    (rc = decode_entry(&m, &tmp, true)) == 0) {
		if (out != NULL)
			*out = tmp;
		else
			distkv_entry_clear(&tmp);
		/* shm keys are absolute: remember the new prefix */
		if (c->root == NULL)
			rc = distkv_path_dup(p, &c->root);
		else
			rc = path_append(c->root, p, 0);
	}
	msgpack_zone_destroy(&zone);
	req_unref(r);
	return (rc);
}

/* save and log: {path: file[, fetch]} answered by {result: true}. */
static int
file_action(distkv *c, const char *action, const char *file, int fetch)
{
	msgpack_zone zone;
	msgpack_object m;
	struct req *r;
	struct enc e;
	int rc;

	if (file == NULL)
		return (DISTKV_EINVAL);
	if ((rc = sync_prepare(c, &r)) != 0)
		return (rc);
	enc_init(&e, fetch >= 0 ? 4 : 3);
	enc_str(&e, "seq");
	enc_uint(&e, r->seq);
	enc_str(&e, "action");
	enc_str(&e, action);
	enc_str(&e, "path");
	enc_str(&e, file);
	if (fetch >= 0) {
		enc_str(&e, "fetch");
		enc_bool(&e, fetch != 0);
	}
	msgpack_zone_init(&zone, 2048);
	rc = sync_single(c, &e, &zone, &m, &r);
	msgpack_zone_destroy(&zone);
	req_unref(r);
	return (rc);
}

int
distkv_save(distkv *c, const char *file)
{
	return (file_action(c, "save", file, -1));
}

int
distkv_log(distkv *c, const char *file, bool fetch)
{
	return (file_action(c, "log", file, fetch));
}

/*
 * The caller's map gets our seq in front: a new map header with one more
 * pair, our seq pair, then the caller's pairs verbatim.
 */
/*
 * The caller's map gets our seq in front: a new map header with one more
 * pair, our seq pair, then the caller's pairs verbatim.
 */
static int
raw_prepare(distkv *c, const void *fields, size_t len, distkv_raw_fn *fn,
    void *arg, struct req **rp, struct enc *e)
{
	const uint8_t *b = fields;
	msgpack_zone zone;
	msgpack_object m;
	struct req *r;
	size_t hdr;
	int rc;

	if (c->dead != 0)
		return (c->dead);
	if (fn == NULL || (rc = check_msgpack(fields, len)) != 0)
		return (DISTKV_EINVAL);
	if (b[0] >= 0x80 && b[0] <= 0x8f)
		hdr = 1;
	else if (b[0] == 0xde)
		hdr = 3;
	else if (b[0] == 0xdf)
		hdr = 5;
	else
		return (DISTKV_EINVAL);
	msgpack_zone_init(&zone, 2048);
	rc = proto_unpack(b, len, &zone, &m);
	if (rc == 0 && proto_map_get(&m, "seq") != NULL)
		rc = DISTKV_EINVAL;	/* the seq is ours to choose */
	msgpack_zone_destroy(&zone);
	if (rc != 0)
		return (DISTKV_EINVAL);
	if ((r = req_new(c, REQ_RAW)) == NULL)
		return (-ENOMEM);
	r->raw_fn = fn;
	r->arg = arg;
	enc_init_raw(e);
	if (msgpack_pack_map(&e->pk, m.via.map.size + 1) != 0)
		e->err = -ENOMEM;
	enc_str(e, "seq");
	enc_uint(e, r->seq);
	enc_raw(e, b + hdr, len - hdr);
	*rp = r;
	return (0);
}

int
distkv_request(distkv *c, const void *fields, size_t len,
    distkv_raw_fn *fn, void *arg)
{
	struct req *r;
	struct enc e;
	int rc;

	if ((rc = raw_prepare(c, fields, len, fn, arg, &r, &e)) != 0)
		return (rc);
	return (sync_multi(c, &e, r, c->timeout_ms));
}

int
distkv_async_request(distkv *c, const void *fields, size_t len,
    distkv_raw_fn *fn, void *arg, uint64_t *seq)
{
	struct req *r;
	struct enc e;
	uint64_t s;
	int rc;

	if (seq != NULL)
		*seq = 0;
	if ((rc = raw_prepare(c, fields, len, fn, arg, &r, &e)) != 0)
		return (rc);
	s = r->seq;
	if ((rc = start(c, &e, r)) == 0 && seq != NULL)
		*seq = s;
	return (rc);
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
distkv_async_get(distkv *c, const distkv_path *p, int nchain,
    distkv_get_cb *cb, void *arg, uint64_t *seq)
{
	struct req *r;
	struct enc e;
	int rc;

	if (seq != NULL)
		*seq = 0;
	if (c->dead != 0)
		return (c->dead);
	if (cb == NULL)
		return (DISTKV_EINVAL);
	if ((r = req_new(c, REQ_GET)) == NULL)
		return (-ENOMEM);
	r->get_cb = cb;
	r->arg = arg;
	enc_init(&e, nchain > 0 ? 4 : 3);
	enc_str(&e, "seq");
	enc_uint(&e, r->seq);
	enc_str(&e, "action");
	enc_str(&e, "get_value");
	enc_str(&e, "path");
	enc_path(&e, p);
	if (nchain > 0) {
		enc_str(&e, "nchain");
		enc_int(&e, nchain);
	}
	if (seq != NULL)
		*seq = r->seq;
	if ((rc = start(c, &e, r)) != 0 && seq != NULL)
		*seq = 0;
	return (rc);
}

static int
async_set_common(distkv *c, const char *action, const distkv_path *p,
    const void *value, size_t len, const struct distkv_set_opts *opts,
    distkv_set_cb *cb, void *arg, uint64_t *seq)
{
	struct req *r;
	struct enc e;
	uint64_t s;
	int rc;

	if (seq != NULL)
		*seq = 0;
	if (c->dead != 0)
		return (c->dead);
	if (cb == NULL)
		return (DISTKV_EINVAL);
	if ((r = req_new(c, REQ_SET)) == NULL)
		return (-ENOMEM);
	if ((rc = enc_set(&e, r->seq, action, p, value, len, opts)) != 0) {
		req_unref(r);
		return (rc);
	}
	r->set_cb = cb;
	r->arg = arg;
	s = r->seq;
	if ((rc = start(c, &e, r)) == 0 && seq != NULL)
		*seq = s;
	return (rc);
}

int
distkv_async_set(distkv *c, const distkv_path *p, const void *value,
    size_t len, const struct distkv_set_opts *opts, distkv_set_cb *cb,
    void *arg, uint64_t *seq)
{
	if (value == NULL)
		return (DISTKV_EINVAL);
	return (async_set_common(c, "set_value", p, value, len, opts, cb, arg,
	    seq));
}

int
distkv_async_delete(distkv *c, const distkv_path *p,
    const struct distkv_set_opts *opts, distkv_set_cb *cb, void *arg,
    uint64_t *seq)
{
	return (async_set_common(c, "delete_value", p, NULL, 0, opts, cb, arg,
	    seq));
}

int
distkv_async_watch(distkv *c, const distkv_path *p,
    const struct distkv_tree_opts *opts, distkv_watch_cb *cb, void *arg,
    uint64_t *seq)
{
	struct req *r;
	struct enc e;
	uint64_t s;
	int rc;

	if (seq != NULL)
		*seq = 0;
	if (c->dead != 0)
		return (c->dead);
	if (cb == NULL)
		return (DISTKV_EINVAL);
	if ((rc = items_req(c, p, &r)) != 0)
		return (rc);
	if ((rc = enc_tree(&e, r->seq, "watch", p, opts)) != 0) {
		enc_free(&e);
		req_unref(r);
		return (rc);
	}
	r->watch_cb = cb;
	r->arg = arg;
	s = r->seq;
	if ((rc = start(c, &e, r)) == 0 && seq != NULL)
		*seq = s;
	return (rc);
}

int
distkv_cancel(distkv *c, uint64_t seq)
{
	struct req *r;

	if (c->dead != 0)
		return (c->dead);
	if ((r = req_find(c, seq)) == NULL || r->kind == REQ_STOP)
		return (DISTKV_EINVAL);
	return (send_stop(c, seq));
}
