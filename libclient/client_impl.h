/*
 * client_impl: the connection's internals, shared by client.c (requests,
 * framing, dispatch, the connection), reply.c (decoding replies) and
 * calls.c (the synchronous and asynchronous calls).  Not installed;
 * client_internal.h holds what the other libdistkv files share.
 *
 * The request encoders are static inline: a pipelined set runs through a
 * dozen of them, and each was a call of its own (see enc_room).
 */
#ifndef DISTKV_CLIENT_IMPL_H
#define DISTKV_CLIENT_IMPL_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <msgpack.h>

#include "distkv.h"
#include "proto.h"
#include "client_internal.h"

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
	/* finished async requests, for the next ones (client_req_new):
	 * calloc and free were a fifth of a pipelined request's cost */
	struct req	*req_pool;
	unsigned	 req_pooled;
};

/*
 * Most requests are a few dozen bytes: they are encoded in the struct's
 * own buffer (on the caller's stack), with no allocation; a larger one
 * moves to the heap (client_enc_write).  A struct enc is never copied.
 */
#define ENC_FIRST 256

/* Encoder for one request map. */
struct enc {
	msgpack_sbuffer	 sb;		/* data: small, or malloc'ed */
	msgpack_packer	 pk;
	int		 err;
	char		 small[ENC_FIRST];
};

/* requests.c: the requests in flight */
struct req *client_req_new(distkv *c, enum req_kind kind);
void	client_req_unref(struct req *r);
/* client_req_unref where c lives on (its dispatch): the last reference
 * puts r in c's pool */
void	client_req_release(distkv *c, struct req *r);
struct req *client_req_find(distkv *c, uint64_t seq);
void	client_req_unlink(distkv *c, struct req *r);
/* End r once: it leaves the list, its owner hears rc, the list's
 * reference goes. */
void	client_req_finish(distkv *c, struct req *r, int rc);
void	client_req_pool_free(distkv *c);

/* client.c: the connection */
/*
 * Queue the encoded request e (whose seq field is r's and comes first in
 * the map) and put r on the list.  Consumes e and, on failure, r.
 */
int	client_start(distkv *c, struct enc *e, struct req *r);
/*
 * Start a synchronous single-reply request and wait for its reply, which
 * is unpacked into zone/m.  *rp keeps the reply bytes alive; the caller
 * unrefs it.
 */
int	client_sync_single(distkv *c, struct enc *e, msgpack_zone *zone,
	    msgpack_object *m, struct req **rp);
/* Start a multi-reply request driven by a sync callback; wait for it. */
int	client_sync_multi(distkv *c, struct enc *e, struct req *r,
	    int timeout_ms);
/* A new REQ_SYNC request in *rp, or the handle's error. */
int	client_sync_prepare(distkv *c, struct req **rp);
/* The packer's write function; room for len more bytes (heap from then
 * on). */
int	client_enc_write(void *data, const char *buf, size_t len);
int	client_enc_grow(struct enc *e, size_t len);
/* DISTKV_EINVAL unless b..b+n is exactly one msgpack object. */
int	client_check_msgpack(const void *b, size_t n);

/* reply.c: decoding replies */
/* value, tock, chain and (if with_path and present) path of a reply map. */
/*
 * As client_decode_entry without the path, for a callback that borrows
 * e: the value is not copied to the heap but packed into keep (set up
 * with enc_init_raw, released with enc_free after the call), nil as a
 * static byte.
 */
int	client_decode_entry_borrowed(const msgpack_object *m,
    struct distkv_entry *e, struct enc *keep);
int	client_decode_entry(const msgpack_object *m, struct distkv_entry *e,
	    bool with_path);
/* A tree/watch item: path shortened against the previous item (spec §2.6). */
int	client_decode_item(struct req *r, const msgpack_object *m,
	    struct distkv_entry *e);
/* With keep (as client_decode_entry_borrowed's) r->prev is borrowed from
 * it, else malloc'd (distkv_set_result_clear). */
int	client_decode_set(const msgpack_object *m,
	    struct distkv_set_result *r, struct enc *keep);

/*
 * An empty entry, field by field: only chain.ev[0..n) is ever read, and a
 * memset of all DISTKV_CHAIN_MAX events twice per distkv_get cost more
 * than the whole region read.
 */
static inline void
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

/* ---- encoding requests ---- */

static inline void
enc_free(struct enc *e)
{
	if (e->sb.data != e->small)
		free(e->sb.data);
	e->sb.data = e->small;
	e->sb.size = 0;
	e->sb.alloc = sizeof(e->small);
}

/* For a map header the caller writes itself. */
static inline void
enc_init_raw(struct enc *e)
{
	e->sb.data = e->small;
	e->sb.size = 0;
	e->sb.alloc = sizeof(e->small);
	msgpack_packer_init(&e->pk, e, client_enc_write);
	e->err = 0;
}

/*
 * Room for n more bytes at the end of e's buffer, or NULL (e->err set).
 * enc_str, enc_uint, enc_int and the map header write straight into it
 * (proto_put_*: msgpack-c's shortest forms): through the packer, each
 * token was a call of client_enc_write, some 700 instructions per set
 * request.
 */
static inline uint8_t *
enc_room(struct enc *e, size_t n)
{
	if (e->sb.alloc - e->sb.size < n && client_enc_grow(e, n) != 0) {
		e->err = -ENOMEM;
		return (NULL);
	}
	return ((uint8_t *)e->sb.data + e->sb.size);
}

static inline void
enc_done(struct enc *e, const uint8_t *end)
{
	e->sb.size = (size_t)(end - (const uint8_t *)e->sb.data);
}

static inline void
enc_init(struct enc *e, size_t nfields)
{
	uint8_t *p;

	enc_init_raw(e);
	if ((p = enc_room(e, 5)) != NULL)
		enc_done(e, proto_put_maphdr(p, nfields));
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

static inline void
enc_uint(struct enc *e, uint64_t v)
{
	uint8_t *p;

	if ((p = enc_room(e, 9)) != NULL)
		enc_done(e, proto_put_uint(p, v));
}

static inline void
enc_int(struct enc *e, int64_t v)
{
	uint8_t *p;

	if ((p = enc_room(e, 9)) == NULL)
		return;
	enc_done(e, proto_put_int(p, v));
}

/* A request map of nfields pairs, its seq and action packed. */
static inline void
enc_request(struct enc *e, size_t nfields, uint64_t seq, const char *action)
{
	enc_init(e, nfields);
	enc_str(e, "seq");
	enc_uint(e, seq);
	enc_str(e, "action");
	enc_str(e, action);
}

static inline void
enc_bool(struct enc *e, bool b)
{
	if ((b ? msgpack_pack_true(&e->pk) : msgpack_pack_false(&e->pk)) != 0)
		e->err = -ENOMEM;
}

static inline void
enc_nil(struct enc *e)
{
	if (msgpack_pack_nil(&e->pk) != 0)
		e->err = -ENOMEM;
}

/* Bytes already in msgpack form (checked by the caller). */
static inline void
enc_raw(struct enc *e, const void *b, size_t n)
{
	if (client_enc_write(e, b, n) != 0)
		e->err = -ENOMEM;
}

static inline void
enc_path(struct enc *e, const distkv_path *p)
{
	const uint8_t *key;
	size_t len;

	/* the path keeps its canonical bytes: the same as path_pack's */
	if ((key = path_key_cached(p, &len, NULL)) != NULL) {
		if (client_enc_write(e, (const char *)key, len) != 0)
			e->err = -ENOMEM;
	} else if (path_pack(&e->pk, p) != 0)
		e->err = -ENOMEM;
}

#endif
