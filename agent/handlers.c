/* handlers: see handlers.h.  One static function per action, a const
 * table maps names to them. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "handlers.h"
#include "log.h"
#include "persist.h"
#include "proto.h"
#include "server.h"
#include "sync.h"
#include "tree.h"
#include "watch.h"

#include <sodium.h>

#define DISTKV_VERSION_MAJOR 0
#define DISTKV_VERSION_MINOR 1
#define DISTKV_VERSION_PATCH 0

/* Longest chain a client may ask for in a reply. */
#define HANDLERS_MAX_NCHAIN CHAIN_CAP

struct req {
	struct conn *c;
	struct handlers_conn *hc;
	struct agent *a;
	uint64_t seq;
	const msgpack_object *msg;
	bool streamed;		/* state: "start" */
};

typedef void action_fn(struct req *r);

struct action {
	const char *name;
	action_fn *fn;
	bool streamable;	/* has a client-streamed form */
};

/* ---- small helpers ---- */

static void
pack_key(msgpack_packer *pk, const char *k)
{
	msgpack_pack_str_with_body(pk, k, strlen(k));
}

static void
pack_value(struct conn *c, msgpack_packer *pk, const struct entry *e)
{
	if (e == NULL || e->value == NULL)
		msgpack_pack_nil(pk);
	else
		conn_pack_raw(c, e->value, e->value_len);
}

/* Optional integer field; returns false (and replies) if malformed. */
static bool
req_int(struct req *r, const char *key, int64_t dflt, int64_t lo, int64_t hi,
    int64_t *out)
{
	const msgpack_object *o = proto_map_get(r->msg, key);

	*out = dflt;
	if (o == NULL || o->type == MSGPACK_OBJECT_NIL)
		return true;
	if (proto_get_int(o, out) != 0) {
		conn_reply_error(r->c, r->seq, "%s must be an integer", key);
		return false;
	}
	if (*out < lo)
		*out = lo;
	if (*out > hi)
		*out = hi;
	return true;
}

static bool
req_bool(struct req *r, const char *key, bool dflt, bool *out)
{
	const msgpack_object *o = proto_map_get(r->msg, key);

	*out = dflt;
	if (o == NULL || o->type == MSGPACK_OBJECT_NIL)
		return true;
	if (o->type != MSGPACK_OBJECT_BOOLEAN) {
		conn_reply_error(r->c, r->seq, "%s must be a boolean", key);
		return false;
	}
	*out = o->via.boolean;
	return true;
}

/* The meta root [nil], created on demand. */
static struct entry *
meta_root(struct agent *a)
{
	static const uint8_t nil = 0xc0;

	return tree_child(&a->tree, a->tree.root, &nil, 1, true);
}

/*
 * Resolve the request's path field.  internal: relative to [nil], nil
 * nowhere.  Otherwise relative to the connection root; nil only as the
 * first element and only at the real root (spec §1.6, C recommendation).
 * Replies with an error and returns false on bad input; *out may be NULL
 * (absent) when !create.
 */
static bool
req_path(struct req *r, bool create, bool internal, struct entry **out)
{
	const msgpack_object *p = proto_map_get(r->msg, "path");
	struct entry *base;
	bool bad_nil, allow_nil;
	int rc;

	*out = NULL;
	if (p == NULL) {
		conn_reply_error(r->c, r->seq, "Missing path");
		return false;
	}
	if (internal) {
		base = meta_root(r->a);
		allow_nil = false;
		if (base == NULL) {
			conn_reply_error(r->c, r->seq, "Out of memory");
			return false;
		}
	} else {
		base = conn_root(r->c);
		allow_nil = base == r->a->tree.root;
	}
	rc = tree_follow(&r->a->tree, base, p, create, allow_nil, &bad_nil,
	    out);
	if (rc == 0)
		return true;
	if (rc == -E2BIG)
		conn_reply_error(r->c, r->seq, "Path too deep (limit %d elements)",
		    PROTO_MAX_PATH_DEPTH);
	else if (rc == -ENAMETOOLONG)
		conn_reply_error(r->c, r->seq, "Path too long (limits: %d bytes "
		    "per element, %d bytes for the whole path)",
		    PROTO_MAX_ELEM_BYTES, PROTO_MAX_PATH_BYTES);
	else if (rc == -ENOMEM)
		conn_reply_error(r->c, r->seq, "Out of memory");
	else if (bad_nil)
		conn_reply_error(r->c, r->seq, "Null path element");
	else if (p->type != MSGPACK_OBJECT_ARRAY)
		conn_reply_error(r->c, r->seq, "Path must be an array");
	else
		conn_reply_error(r->c, r->seq,
		    "Bad path element: use strings (UTF-8), byte strings or integers");
	return false;
}

/* Text of a msgpack object for error messages, cut to fit. */
static void
repr(char *buf, size_t cap, const msgpack_object *o)
{
	int n = msgpack_object_print_buffer(buf, cap, *o);

	if (n < 0)
		snprintf(buf, cap, "?");
}

static void
repr_bytes(char *buf, size_t cap, const uint8_t *p, size_t len)
{
	msgpack_zone zone;
	msgpack_object o;

	if (p == NULL) {
		snprintf(buf, cap, "nil");
		return;
	}
	msgpack_zone_init(&zone, 1024);
	if (proto_unpack(p, len, &zone, &o) == 0)
		repr(buf, cap, &o);
	else
		snprintf(buf, cap, "?");
	msgpack_zone_destroy(&zone);
}

static void
repr_chain(char *buf, size_t cap, const struct chain *c)
{
	size_t off = 0;

	buf[0] = '\0';
	for (unsigned i = 0; i < c->n && off < cap; i++) {
		int n = snprintf(buf + off, cap - off, "%s%s:%" PRIu64,
		    i ? " " : "", c->l[i].node->name, c->l[i].tick);

		if (n < 0)
			break;
		off += (size_t)n;
	}
}

/* The entry's path from the connection root; false if it lies outside. */
static bool
below(const struct entry *base, const struct entry *e)
{
	for (; e != NULL; e = e->parent)
		if (e == base)
			return true;
	return false;
}

void
handlers_send_item(struct conn *c, uint64_t seq, const struct entry *base,
    const struct entry **last, const struct entry *e, unsigned nchain)
{
	uint32_t d = tree_common_depth(base, *last, e);
	bool with_chain = nchain > 0 && e->chain.n > 0;
	msgpack_packer *pk;

	pk = conn_reply(c, seq, 4 + (with_chain ? 1 : 0), false);
	pack_key(pk, "path");
	tree_pack_path(pk, base, e, d);
	pack_key(pk, "depth");
	msgpack_pack_uint32(pk, d);
	pack_key(pk, "value");
	pack_value(c, pk, e);
	pack_key(pk, "tock");
	msgpack_pack_uint64(pk, e->tock);
	if (with_chain) {
		pack_key(pk, "chain");
		chain_pack(pk, &e->chain, nchain);
	}
	*last = e;
}

/*
 * A canonical value: small ones in place (a set should not cost an 8 KiB
 * sbuffer allocation), larger ones on the heap.
 */
struct valbuf {
	uint8_t small[512];
	uint8_t *data;
	size_t size, cap;
};

static int
valbuf_write(void *arg, const char *b, size_t len)
{
	struct valbuf *v = arg;

	if (len > v->cap - v->size) {
		size_t cap = (v->cap + len) * 2;
		uint8_t *d = v->data == v->small ? malloc(cap) :
		    realloc(v->data, cap);

		if (d == NULL)
			return -1;
		if (v->data == v->small)
			memcpy(d, v->small, v->size);
		v->data = d;
		v->cap = cap;
	}
	memcpy(v->data + v->size, b, len);
	v->size += len;
	return 0;
}

static void
valbuf_init(struct valbuf *v)
{
	v->data = v->small;
	v->size = 0;
	v->cap = sizeof(v->small);
}

static void
valbuf_fini(struct valbuf *v)
{
	if (v->data != v->small)
		free(v->data);
}

/* Pack a canonical copy of o into v.  Returns false on failure. */
static bool
canonical(struct valbuf *v, const msgpack_object *o)
{
	msgpack_packer pk;

	msgpack_packer_init(&pk, v, valbuf_write);
	return proto_pack_canonical(&pk, o) == 0;
}

/* ---- greeting and login ---- */

/* Child of e named by the string s (canonical str element). */
static struct entry *
child_str(struct agent *a, struct entry *e, const char *s, size_t len,
    bool create)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	struct entry *c;

	if (e == NULL)
		return NULL;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_str_with_body(&pk, s, len);
	c = tree_child(&a->tree, e, (const uint8_t *)sb.data, sb.size, create);
	msgpack_sbuffer_destroy(&sb);
	return c;
}

/* True if e's name is the string s (canonical: fixstr or str8). */
static bool
name_is_str(const struct entry *e, const char *s, size_t len)
{
	size_t hdr = len < 32 ? 1 : 2;

	const uint8_t *name = entry_name(e);

	return entry_name_len(e) == hdr + len &&
	    (hdr == 1 ? name[0] == (0xa0 | len) : name[0] == 0xd9) &&
	    memcmp(name + hdr, s, len) == 0;
}

/* (nil, "auth"), or NULL if it does not exist. */
static struct entry *
auth_entry(struct agent *a)
{
	static const uint8_t nil = 0xc0;

	return child_str(a, tree_child(&a->tree, a->tree.root, &nil, 1,
	    false), "auth", 4, false);
}

/* The active method (the `current` field of (nil,"auth")), or NULL. */
static const msgpack_object *
auth_current(struct agent *a, msgpack_zone *zone, msgpack_object *val)
{
	struct entry *au = auth_entry(a);
	const msgpack_object *cur;

	if (au == NULL || au->value == NULL ||
	    proto_unpack(au->value, au->value_len, zone, val) != 0)
		return NULL;
	cur = proto_map_get(val, "current");
	return cur != NULL && cur->type == MSGPACK_OBJECT_STR ? cur : NULL;
}

void
handlers_greet(struct conn *c, struct handlers_conn *hc)
{
	struct agent *a = conn_agent(c);
	struct entry *au = auth_entry(a);
	msgpack_packer *pk;
	msgpack_zone zone;
	msgpack_object val;
	const msgpack_object *cur;

	msgpack_zone_init(&zone, 256);
	cur = auth_current(a, &zone, &val);
	hc->need_login = cur != NULL;
	hc->logged_in = cur == NULL;
	/*
	 * The peer port: with a cluster key, a peer proves it with an HMAC
	 * of this challenge (peer_auth) before anything else; the key never
	 * crosses the wire.  Peers are trusted like the super-root user.
	 */
	hc->need_peer_auth = conn_is_peer(c) && a->cfg.has_cluster_key;
	if (conn_is_peer(c))
		hc->logged_in = !hc->need_peer_auth;
	if (hc->need_peer_auth) {
		/* before the proof, only what the proof needs */
		randombytes_buf(hc->challenge, sizeof(hc->challenge));
		pk = conn_reply(c, 0, 1, false);
		pack_key(pk, "challenge");
		msgpack_pack_bin_with_body(pk, hc->challenge,
		    sizeof(hc->challenge));
		msgpack_zone_destroy(&zone);
		return;
	}
	pk = conn_reply(c, 0, 3 + (au != NULL ? 1 : 0) +
	    (a->shm != NULL && !conn_is_peer(c)), true);
	if (a->shm != NULL && !conn_is_peer(c)) {
		/* where local readers map the tree (docs/shm.md) */
		pack_key(pk, "shm");
		msgpack_pack_str_with_body(pk, a->cfg.shm_path,
		    strlen(a->cfg.shm_path));
	}
	pack_key(pk, "node");
	msgpack_pack_str_with_body(pk, a->self->name, a->self->name_len);
	pack_key(pk, "version");
	msgpack_pack_array(pk, 3);
	msgpack_pack_int(pk, DISTKV_VERSION_MAJOR);
	msgpack_pack_int(pk, DISTKV_VERSION_MINOR);
	msgpack_pack_int(pk, DISTKV_VERSION_PATCH);
	pack_key(pk, "tick");
	if (a->self->has_tick)
		msgpack_pack_uint64(pk, a->self->tick);
	else
		msgpack_pack_nil(pk);
	if (au != NULL) {
		/* spec §2.3: [active method or nil, the other methods...] */
		uint32_t n = 1;

		for (uint32_t i = 0; i < au->nchild; i++)
			n += !(cur != NULL && name_is_str(au->child[i],
			    cur->via.str.ptr, cur->via.str.size));
		pack_key(pk, "auth");
		msgpack_pack_array(pk, n);
		if (cur != NULL)
			msgpack_pack_object(pk, *cur);
		else
			msgpack_pack_nil(pk);
		for (uint32_t i = 0; i < au->nchild; i++) {
			const struct entry *m = au->child[i];

			if (cur != NULL && name_is_str(m, cur->via.str.ptr,
			    cur->via.str.size))
				continue;
			conn_pack_raw(c, entry_name(m), entry_name_len(m));
		}
	}
	msgpack_zone_destroy(&zone);
}

/* ---- get_value ---- */

static void
reply_entry(struct req *r, const struct entry *e, int64_t nchain,
    bool with_path)
{
	bool with_chain = nchain > 0 && e->chain.n > 0;
	msgpack_packer *pk;

	pk = conn_reply(r->c, r->seq, 2 + (with_chain ? 1 : 0) +
	    (with_path ? 1 : 0), false);
	pack_key(pk, "value");
	pack_value(r->c, pk, e);
	pack_key(pk, "tock");
	msgpack_pack_uint64(pk, e->tock);
	if (with_chain) {
		pack_key(pk, "chain");
		chain_pack(pk, &e->chain, (unsigned)nchain);
	}
	if (with_path) {
		pack_key(pk, "path");
		tree_pack_path(pk, conn_root(r->c), e, 0);
	}
}

static void
get_common(struct req *r, bool internal)
{
	const msgpack_object *node = proto_map_get(r->msg, "node");
	const msgpack_object *tick = proto_map_get(r->msg, "tick");
	struct entry *e;
	int64_t nchain;
	uint64_t t;

	if (!req_int(r, "nchain", 0, 0, HANDLERS_MAX_NCHAIN, &nchain))
		return;
	if (!internal && proto_map_get(r->msg, "path") == NULL &&
	    node != NULL) {
		struct node *n;

		if (!chain_node_name_ok(node) || tick == NULL ||
		    proto_get_uint(tick, &t) != 0) {
			conn_reply_error(r->c, r->seq,
			    "get_value by event needs node (string) and tick (integer)");
			return;
		}
		n = nodes_get(&r->a->nodes, node->via.str.ptr,
		    node->via.str.size, false);
		if (n == NULL) {
			conn_reply_error(r->c, r->seq, "Unknown node: %.*s",
			    (int)node->via.str.size, node->via.str.ptr);
			return;
		}
		/* spec §2.7: the error text is the tick (a KeyError) */
		e = node_entry_get(n, t);
		if (e == NULL || !below(conn_root(r->c), e)) {
			conn_reply_error(r->c, r->seq, "%" PRIu64, t);
			return;
		}
		reply_entry(r, e, nchain, true);
		return;
	}
	if (!req_path(r, false, internal, &e))
		return;
	if (e == NULL) {
		msgpack_packer *pk = conn_reply(r->c, r->seq, 1, true);

		pack_key(pk, "value");
		msgpack_pack_nil(pk);
		return;
	}
	reply_entry(r, e, nchain, false);
}

static void
act_get_value(struct req *r)
{
	get_common(r, false);
}

static void
act_get_internal(struct req *r)
{
	get_common(r, true);
}

/* ---- set_value / delete_value ---- */

static bool
same_bytes(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	if (a == NULL || b == NULL)
		return a == b;
	return alen == blen && memcmp(a, b, alen) == 0;
}

/* Why agent_change_local refused, in words (never a wrong cause). */
static void
reply_change_error(struct req *r, int rc)
{
	if (rc == -ERANGE)
		conn_reply_error(r->c, r->seq, "Tick limit reached: node %s "
		    "cannot make more changes (ticks and tocks end at 2^53-1)",
		    r->a->self->name);
	else if (rc == -ENOMEM)
		conn_reply_error(r->c, r->seq, "Out of memory");
	else
		conn_reply_error(r->c, r->seq, "Change not applied: %s",
		    strerror(-rc));
}

static void
set_common(struct req *r, bool internal, bool del)
{
	const msgpack_object *vo = proto_map_get(r->msg, "value");
	const msgpack_object *prev = proto_map_get(r->msg, "prev");
	const msgpack_object *ch = proto_map_get(r->msg, "chain");
	struct valbuf val, pv;
	const uint8_t *nv = NULL;
	size_t nvlen = 0;
	struct entry *e;
	int64_t nchain;
	bool changed, report_prev;
	uint8_t *old = NULL;
	size_t oldlen = 0;
	char txt[256];
	msgpack_packer *pk;
	int rc;

	valbuf_init(&val);
	valbuf_init(&pv);
	if (del && vo != NULL) {
		conn_reply_error(r->c, r->seq,
		    "A deleted entry can't have a value");
		goto out;
	}
	if (!del && vo == NULL) {
		conn_reply_error(r->c, r->seq,
		    "Missing value (use delete_value to delete)");
		goto out;
	}
	if (!req_int(r, "nchain", 1, 0, HANDLERS_MAX_NCHAIN, &nchain))
		goto out;
	if (vo != NULL && vo->type != MSGPACK_OBJECT_NIL) {
		if (!canonical(&val, vo)) {
			conn_reply_error(r->c, r->seq, "Out of memory");
			goto out;
		}
		nv = (const uint8_t *)val.data;
		nvlen = val.size;
	}
	if (ch != NULL && ch->type != MSGPACK_OBJECT_NIL) {
		const msgpack_object *cn = proto_map_get(ch, "node");
		const msgpack_object *ct = proto_map_get(ch, "tick");
		uint64_t t;

		if (ch->type != MSGPACK_OBJECT_MAP || cn == NULL ||
		    !chain_node_name_ok(cn) || ct == NULL ||
		    proto_get_uint(ct, &t) != 0) {
			conn_reply_error(r->c, r->seq,
			    "chain must be nil or a map {node: string, tick: integer}");
			goto out;
		}
	}
	/* every check before anything changes (spec §8.8) */
	if (!req_path(r, false, internal, &e))
		goto out;
	if (prev != NULL) {
		if (!canonical(&pv, prev)) {
			conn_reply_error(r->c, r->seq, "Out of memory");
			goto out;
		}
		if (prev->type == MSGPACK_OBJECT_NIL ?
		    e != NULL && e->value != NULL :
		    e == NULL || !same_bytes(e->value, e->value_len,
		    (const uint8_t *)pv.data, pv.size)) {
			repr_bytes(txt, sizeof(txt), e ? e->value : NULL,
			    e ? e->value_len : 0);
			conn_reply_error(r->c, r->seq, "Data is %s", txt);
			goto out;
		}
	}
	if (ch != NULL) {
		bool has_chain = e != NULL && e->chain.n > 0;

		if (ch->type == MSGPACK_OBJECT_NIL) {
			/* spec §8.10: a tombstone may be re-created */
			if (has_chain && e->value != NULL) {
				conn_reply_error(r->c, r->seq,
				    "This entry already exists");
				goto out;
			}
		} else if (!has_chain) {
			conn_reply_error(r->c, r->seq, "This entry is new");
			goto out;
		} else {
			/* a pure comparison: the node table is not touched */
			const msgpack_object *cn = proto_map_get(ch, "node");
			uint64_t t;

			proto_get_uint(proto_map_get(ch, "tick"), &t);
			if (e->chain.l[0].tick != t ||
			    e->chain.l[0].node->name_len != cn->via.str.size ||
			    memcmp(e->chain.l[0].node->name, cn->via.str.ptr,
			    cn->via.str.size) != 0) {
				repr_chain(txt, sizeof(txt), &e->chain);
				conn_reply_error(r->c, r->seq, "Chain is %s",
				    txt);
				goto out;
			}
		}
	}
	if (e == NULL && !req_path(r, true, internal, &e))
		goto out;
	changed = !same_bytes(e->value, e->value_len, nv, nvlen);
	report_prev = prev == NULL && ch == NULL;
	if (report_prev && e->value != NULL) {
		if ((old = malloc(e->value_len)) == NULL) {
			conn_reply_error(r->c, r->seq, "Out of memory");
			goto out;
		}
		memcpy(old, e->value, e->value_len);
		oldlen = e->value_len;
	}
	if ((rc = agent_change_local(r->a, e, nv, nvlen)) != 0) {
		reply_change_error(r, rc);
		goto out;
	}
	pk = conn_reply(r->c, r->seq, 2 + (report_prev ? 1 : 0) +
	    (nchain > 0 ? 1 : 0), false);
	pack_key(pk, "changed");
	if (changed)
		msgpack_pack_true(pk);
	else
		msgpack_pack_false(pk);
	if (report_prev) {
		pack_key(pk, "prev");
		if (old != NULL)
			conn_pack_raw(r->c, old, oldlen);
		else
			msgpack_pack_nil(pk);
	}
	if (nchain > 0) {
		pack_key(pk, "chain");
		chain_pack(pk, &e->chain, (unsigned)nchain);
	}
	pack_key(pk, "tock");
	msgpack_pack_uint64(pk, e->tock);
out:
	free(old);
	valbuf_fini(&val);
	valbuf_fini(&pv);
}

static void act_set_value(struct req *r) { set_common(r, false, false); }
static void act_delete_value(struct req *r) { set_common(r, false, true); }
static void act_set_internal(struct req *r) { set_common(r, true, false); }
static void act_delete_internal(struct req *r) { set_common(r, true, true); }

/* ---- get_tree ---- */

struct tree_task {
	struct task task;		/* first */
	struct entry *base;
	struct tree_walk walk;
	const struct entry *last;
	int min_depth;
	unsigned nchain;
};

static void
tree_task_pump(struct task *t)
{
	struct tree_task *tt = (struct tree_task *)t;
	struct entry *e;

	while (!conn_output_busy(t->conn)) {
		if ((e = tree_walk_next(&tt->walk)) == NULL) {
			conn_task_end(t, true);
			return;
		}
		if (e->value == NULL ||
		    (int)(e->depth - tt->base->depth) < tt->min_depth)
			continue;
		handlers_send_item(t->conn, t->seq, tt->base, &tt->last, e,
		    tt->nchain);
	}
	conn_task_want_pump(t);
}

static void
free_task(struct task *t)
{
	free(t);
}

static const struct task_ops tree_task_ops = {
	.pump = tree_task_pump,
	.free = free_task,
};

/* Depth window: both spellings (spec §8.12). */
static bool
req_depths(struct req *r, int *min_depth, int *max_depth)
{
	int64_t lo, hi;

	if (proto_map_get(r->msg, "min_depth") != NULL) {
		if (!req_int(r, "min_depth", 0, 0, INT_MAX, &lo))
			return false;
	} else if (!req_int(r, "mindepth", 0, 0, INT_MAX, &lo))
		return false;
	if (proto_map_get(r->msg, "max_depth") != NULL) {
		if (!req_int(r, "max_depth", -1, -1, INT_MAX, &hi))
			return false;
	} else if (!req_int(r, "maxdepth", -1, -1, INT_MAX, &hi))
		return false;
	*min_depth = (int)lo;
	*max_depth = (int)hi;
	return true;
}

static void
act_get_tree(struct req *r)
{
	struct tree_task *tt;
	struct entry *e;
	int64_t nchain;
	int lo, hi;

	if (!req_int(r, "nchain", 0, 0, HANDLERS_MAX_NCHAIN, &nchain) ||
	    !req_depths(r, &lo, &hi) || !req_path(r, false, false, &e))
		return;
	if (conn_task_find(r->c, r->seq) != NULL) {
		conn_reply_error(r->c, r->seq, "Request %" PRIu64 " runs already",
		    r->seq);
		return;
	}
	conn_reply_state(r->c, r->seq, "start");
	if (e == NULL) {
		/* spec §8.11: a missing path is an empty tree */
		conn_reply_state(r->c, r->seq, "end");
		return;
	}
	if ((tt = calloc(1, sizeof(*tt))) == NULL) {
		conn_reply_error(r->c, r->seq, "Out of memory");
		conn_reply_state(r->c, r->seq, "end");
		return;
	}
	tt->task.seq = r->seq;
	tt->task.ops = &tree_task_ops;
	tt->base = e;
	tt->last = e;
	tt->min_depth = lo;
	tt->nchain = (unsigned)nchain;
	tree_walk_init(&tt->walk, e, hi);
	conn_task_add(r->c, &tt->task);
	tree_task_pump(&tt->task);
}

/* ---- watch ---- */

static void
act_watch(struct req *r)
{
	struct watch_opts o;
	struct entry *e;
	int64_t nchain;

	memset(&o, 0, sizeof(o));
	if (!req_int(r, "nchain", 0, 0, HANDLERS_MAX_NCHAIN, &nchain) ||
	    !req_bool(r, "fetch", false, &o.fetch) ||
	    !req_depths(r, &o.min_depth, &o.max_depth))
		return;
	o.nchain = (unsigned)nchain;
	if (conn_task_find(r->c, r->seq) != NULL) {
		conn_reply_error(r->c, r->seq, "Request %" PRIu64 " runs already",
		    r->seq);
		return;
	}
	if (!req_path(r, true, false, &e))
		return;
	if (watch_start(r->c, r->seq, e, &o) != 0)
		conn_reply_error(r->c, r->seq, "Out of memory");
}

/* ---- root ---- */

static void
act_root(struct req *r)
{
	struct entry *e;
	msgpack_packer *pk;
	bool with_chain;

	if (!req_path(r, true, false, &e))
		return;
	conn_set_root(r->c, e);
	with_chain = e->chain.n > 0;
	pk = conn_reply(r->c, r->seq, 3 + (with_chain ? 1 : 0), false);
	pack_key(pk, "value");
	pack_value(r->c, pk, e);
	pack_key(pk, "tock");
	msgpack_pack_uint64(pk, e->tock);
	pack_key(pk, "path");
	msgpack_pack_array(pk, 0);
	if (with_chain) {
		pack_key(pk, "chain");
		chain_pack(pk, &e->chain, 2);
	}
}

/* ---- get_state ---- */


static void
act_get_state(struct req *r)
{
	bool f[6];
	static const char *keys[6] = { "nodes", "known", "missing",
	    "remote_missing", "ping", "recovery" };
	msgpack_packer *pk;
	uint32_t n = 0;

	for (int i = 0; i < 6; i++) {
		if (!req_bool(r, keys[i], false, &f[i]))
			return;
		n += f[i];
	}
	pk = conn_reply(r->c, r->seq, n, true);
	if (f[0]) {
		pack_key(pk, "nodes");
		agent_pack_nodes(r->a, pk);
	}
	if (f[1]) {
		pack_key(pk, "known");
		agent_pack_ranges(r->a, pk, AGENT_KNOWN);
	}
	if (f[2]) {
		pack_key(pk, "missing");
		agent_pack_ranges(r->a, pk, AGENT_MISSING);
	}
	if (f[3]) {
		pack_key(pk, "remote_missing");
		agent_pack_ranges(r->a, pk, AGENT_REMOTE_MISSING);
	}
	if (f[4]) {
		/* the last accepted ping chain, newest first (spec §3.8) */
		pack_key(pk, "ping");
		sync_pack_ping(r->a, pk);
	}
	if (f[5]) {
		/* split recovery (spec §3.10, §3.11): state and counters */
		pack_key(pk, "recovery");
		sync_pack_recovery(r->a, pk);
	}
}

/* ---- delete_tree ---- */

static void
act_delete_tree(struct req *r)
{
	struct tree_walk w;
	struct entry *e, *base;
	const struct entry *last;
	int64_t nchain;
	uint64_t count = 0;
	msgpack_packer *pk;
	int rc;

	if (!req_int(r, "nchain", 0, 0, HANDLERS_MAX_NCHAIN, &nchain) ||
	    !req_path(r, true, false, &base))
		return;
	if (nchain > 0)
		conn_reply_state(r->c, r->seq, "start");
	last = base;
	tree_walk_init(&w, base, -1);
	/* parent before children, each its own change (spec §2.5.9) */
	while ((e = tree_walk_next(&w)) != NULL) {
		uint8_t *old = NULL;
		uint32_t oldlen, d;

		if (e->value == NULL)
			continue;
		oldlen = e->value_len;
		if (nchain > 0) {
			/* the reply reports the value the change removes */
			if ((old = malloc(oldlen)) == NULL) {
				conn_reply_error(r->c, r->seq, "Out of memory");
				break;
			}
			memcpy(old, e->value, oldlen);
		}
		if ((rc = agent_change_local(r->a, e, NULL, 0)) != 0) {
			free(old);
			reply_change_error(r, rc);
			break;
		}
		count++;
		if (nchain == 0)
			continue;
		d = tree_common_depth(base, last, e);
		pk = conn_reply(r->c, r->seq, 7, false);
		chain_pack_flat(pk, &e->chain, (unsigned)nchain);
		pack_key(pk, "path");
		tree_pack_path(pk, base, e, d);
		pack_key(pk, "depth");
		msgpack_pack_uint32(pk, d);
		pack_key(pk, "old_value");
		conn_pack_raw(r->c, old, oldlen);
		pack_key(pk, "tock");
		msgpack_pack_uint64(pk, e->tock);
		last = e;
		free(old);
	}
	if (nchain > 0) {
		conn_reply_state(r->c, r->seq, "end");
		return;
	}
	pk = conn_reply(r->c, r->seq, 1, true);
	pack_key(pk, "changed");
	msgpack_pack_uint64(pk, count);
}

/* ---- save / log ---- */

/*
 * Map a client file name into the configured file directory: relative,
 * no "..", no empty name (spec §2.5.10, C recommendation).
 */
static bool
req_file(struct req *r, char *out, size_t cap)
{
	const msgpack_object *p = proto_map_get(r->msg, "path");
	const char *dir = r->a->cfg.file_dir;

	if (dir == NULL) {
		conn_reply_error(r->c, r->seq,
		    "No file directory configured (start the agent with --file-dir or --state-dir)");
		return false;
	}
	if (p == NULL || p->type != MSGPACK_OBJECT_STR ||
	    p->via.str.size == 0 || p->via.str.size > 255) {
		conn_reply_error(r->c, r->seq,
		    "path must be a file name (string)");
		return false;
	}
	if (p->via.str.ptr[0] == '/' ||
	    memchr(p->via.str.ptr, '\0', p->via.str.size) != NULL) {
		conn_reply_error(r->c, r->seq,
		    "File names are relative to the agent's file directory");
		return false;
	}
	for (uint32_t i = 0; i + 1 < p->via.str.size; i++)
		if (p->via.str.ptr[i] == '.' && p->via.str.ptr[i + 1] == '.' &&
		    (i == 0 || p->via.str.ptr[i - 1] == '/')) {
			conn_reply_error(r->c, r->seq,
			    "File names may not contain '..'");
			return false;
		}
	if ((size_t)snprintf(out, cap, "%s/%.*s", dir, (int)p->via.str.size,
	    p->via.str.ptr) >= cap) {
		conn_reply_error(r->c, r->seq, "File name too long");
		return false;
	}
	if (persist_is_own_file(r->a, out)) {
		conn_reply_error(r->c, r->seq, "Refusing to write %.*s: the "
		    "agent itself owns that file", (int)p->via.str.size,
		    p->via.str.ptr);
		return false;
	}
	return true;
}

static void
reply_result_true(struct req *r)
{
	msgpack_packer *pk = conn_reply(r->c, r->seq, 1, true);

	pack_key(pk, "result");
	msgpack_pack_true(pk);
}

static void
act_save(struct req *r)
{
	char path[PATH_MAX];
	int rc;

	if (!req_file(r, path, sizeof(path)))
		return;
	if ((rc = persist_save(r->a, path)) != 0) {
		conn_reply_error(r->c, r->seq, "Cannot save: %s", strerror(-rc));
		return;
	}
	reply_result_true(r);
}

static void
act_log(struct req *r)
{
	char path[PATH_MAX];
	bool fetch;
	int rc;

	if (!req_bool(r, "fetch", false, &fetch) ||
	    !req_file(r, path, sizeof(path)))
		return;
	if ((rc = persist_start_log(r->a, path, fetch)) != 0) {
		conn_reply_error(r->c, r->seq, "Cannot log: %s", strerror(-rc));
		return;
	}
	reply_result_true(r);
}

/* ---- update ---- */

struct update_task {
	struct task task;		/* first */
	struct record_ctx ctx;
	uint64_t count;
};

static void
reply_count(struct conn *c, uint64_t seq, uint64_t count)
{
	msgpack_packer *pk = conn_reply(c, seq, 1, true);

	pack_key(pk, "count");
	msgpack_pack_uint64(pk, count);
}

static void
update_input(struct task *t, const msgpack_object *msg)
{
	struct update_task *ut = (struct update_task *)t;
	const msgpack_object *st = proto_map_get(msg, "state");
	const msgpack_object *err = proto_map_get(msg, "error");
	const char *why = NULL;
	bool applied;

	if (err != NULL) {
		conn_reply_error(t->conn, t->seq, "Update aborted by the client");
		conn_task_end(t, false);
		return;
	}
	if (st != NULL && proto_str_eq(st, "end")) {
		reply_count(t->conn, t->seq, ut->count);
		conn_task_end(t, false);
		return;
	}
	if (agent_apply_record(conn_agent(t->conn), &ut->ctx, msg, ORIGIN_LOAD,
	    &applied,
	    &why) != 0) {
		conn_reply_error(t->conn, t->seq, "Bad update record: %s", why);
		conn_task_end(t, false);
		return;
	}
	ut->count += applied;
}

static const struct task_ops update_task_ops = {
	.input = update_input,
	.free = free_task,
};

static void
act_update(struct req *r)
{
	struct record_ctx ctx;
	struct update_task *ut;
	struct entry *base = conn_root(r->c);
	const char *why = NULL;
	bool applied;

	if (proto_map_get(r->msg, "path") != NULL && r->streamed &&
	    !req_path(r, true, false, &base))
		return;
	ctx.base = base;
	ctx.last = base;
	if (!r->streamed) {
		if (agent_apply_record(r->a, &ctx, r->msg, ORIGIN_LOAD, &applied,
		    &why) != 0) {
			conn_reply_error(r->c, r->seq, "Bad update record: %s",
			    why);
			return;
		}
		reply_count(r->c, r->seq, applied);
		return;
	}
	if ((ut = calloc(1, sizeof(*ut))) == NULL) {
		conn_reply_error(r->c, r->seq, "Out of memory");
		return;
	}
	ut->task.seq = r->seq;
	ut->task.ops = &update_task_ops;
	ut->ctx = ctx;
	conn_task_add(r->c, &ut->task);
}

/* ---- stop, pass-through, auth ---- */

static void
act_stop(struct req *r)
{
	const msgpack_object *to = proto_map_get(r->msg, "task");
	struct task *t;
	msgpack_packer *pk;
	uint64_t seq;

	if (to == NULL || proto_get_uint(to, &seq) != 0) {
		conn_reply_error(r->c, r->seq, "stop needs task (integer)");
		return;
	}
	t = conn_task_find(r->c, seq);
	/* spec §8.15: the stopped request still ends with state "end" */
	if (t != NULL)
		conn_task_end(t, true);
	pk = conn_reply(r->c, r->seq, 1, true);
	pack_key(pk, "result");
	if (t != NULL)
		msgpack_pack_true(pk);
	else
		msgpack_pack_false(pk);
}

/* ---- replication: pass-through and peer actions ---- */

static bool
req_serf_type(struct req *r, const msgpack_object **type)
{
	*type = proto_map_get(r->msg, "type");
	if (r->a->sync == NULL) {
		conn_reply_error(r->c, r->seq,
		    "No Serf: this agent runs standalone (serfsend/serfmon need a cluster)");
		return false;
	}
	if (*type == NULL || (*type)->type != MSGPACK_OBJECT_STR ||
	    (*type)->via.str.size == 0 || (*type)->via.str.size > 200) {
		conn_reply_error(r->c, r->seq, "type must be a non-empty string");
		return false;
	}
	/* spec §2.5.11: clients may not forge server messages */
	if ((*type)->via.str.ptr[0] == ':' ||
	    sync_name_reserved(r->a, (*type)->via.str.ptr,
	    (*type)->via.str.size)) {
		conn_reply_error(r->c, r->seq,
		    "Types may not start with a colon or the servers' prefix \"%s\"",
		    r->a->cfg.event_prefix);
		return false;
	}
	return true;
}

static void
act_serfsend(struct req *r)
{
	const msgpack_object *type, *data, *raw;
	msgpack_sbuffer sb;
	const uint8_t *p;
	size_t len;
	int rc;

	if (!req_serf_type(r, &type))
		return;
	data = proto_map_get(r->msg, "data");
	raw = proto_map_get(r->msg, "raw");
	msgpack_sbuffer_init(&sb);
	if (raw != NULL && raw->type == MSGPACK_OBJECT_BIN) {
		p = (const uint8_t *)raw->via.bin.ptr;
		len = raw->via.bin.size;
	} else if (raw != NULL && raw->type == MSGPACK_OBJECT_STR) {
		p = (const uint8_t *)raw->via.str.ptr;
		len = raw->via.str.size;
	} else {
		msgpack_packer pk;

		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		if (data != NULL)
			msgpack_pack_object(&pk, *data);
		else
			msgpack_pack_nil(&pk);
		p = (const uint8_t *)sb.data;
		len = sb.size;
	}
	rc = sync_serf_send(r->a, type->via.str.ptr, type->via.str.size, p,
	    len);
	msgpack_sbuffer_destroy(&sb);
	if (rc != 0) {
		conn_reply_error(r->c, r->seq, "Serf event not sent: %s",
		    rc == -EMSGSIZE ? "too large for Serf" : strerror(-rc));
		return;
	}
	conn_reply(r->c, r->seq, 0, true);
}

struct serfmon_task {
	struct task task;		/* first */
	struct sync_monitor mon;
	bool raw;
	struct agent *a;
};

static void
serfmon_event(struct sync_monitor *m, const uint8_t *payload, size_t len)
{
	struct serfmon_task *st = (struct serfmon_task *)(void *)
	    ((char *)m - offsetof(struct serfmon_task, mon));
	struct conn *c = st->task.conn;
	msgpack_packer *pk;
	size_t objlen;
	bool ok;

	if (conn_output_full(c))
		return;	/* a monitor that does not read misses events */
	ok = !st->raw && len > 0 &&
	    proto_scan(payload, len, PROTO_MAX_NESTING, &objlen) == 0 &&
	    objlen == len;
	pk = conn_reply(c, st->task.seq, 2 + (!st->raw && !ok), true);
	pack_key(pk, "type");
	msgpack_pack_str_with_body(pk, m->name, m->nlen);
	if (ok) {
		pack_key(pk, "data");
		conn_pack_raw(c, payload, len);
	} else {
		pack_key(pk, "raw");
		msgpack_pack_bin_with_body(pk, payload, len);
		if (!st->raw) {
			pack_key(pk, "error");
			msgpack_pack_str_with_body(pk,
			    "payload is not one msgpack object", 33);
		}
	}
}

static void
serfmon_free(struct task *t)
{
	struct serfmon_task *st = (struct serfmon_task *)t;

	sync_monitor_remove(st->a, &st->mon);
	free(st);
}

static const struct task_ops serfmon_ops = {
	.free = serfmon_free,
};

static void
act_serfmon(struct req *r)
{
	const msgpack_object *type;
	struct serfmon_task *st;
	bool raw;

	if (!req_serf_type(r, &type) || !req_bool(r, "raw", false, &raw))
		return;
	if ((st = calloc(1, sizeof(*st))) == NULL) {
		conn_reply_error(r->c, r->seq, "Out of memory");
		return;
	}
	st->task.seq = r->seq;
	st->task.ops = &serfmon_ops;
	st->a = r->a;
	st->raw = raw;
	memcpy(st->mon.name, type->via.str.ptr, type->via.str.size);
	st->mon.nlen = type->via.str.size;
	st->mon.fn = serfmon_event;
	sync_monitor_add(r->a, &st->mon);
	conn_task_add(r->c, &st->task);
	conn_reply_state(r->c, r->seq, "start");
}

static void
act_peer_auth(struct req *r)
{
	const msgpack_object *mac = proto_map_get(r->msg, "mac");
	const msgpack_object *node = proto_map_get(r->msg, "node");

	if (!r->hc->need_peer_auth) {
		conn_reply(r->c, r->seq, 0, true);	/* nothing to prove */
		return;
	}
	if (mac == NULL || mac->type != MSGPACK_OBJECT_BIN ||
	    mac->via.bin.size != crypto_auth_hmacsha256_BYTES ||
	    crypto_auth_hmacsha256_verify((const uint8_t *)mac->via.bin.ptr,
	    r->hc->challenge, sizeof(r->hc->challenge),
	    r->a->cfg.cluster_key) != 0) {
		log_warn("peer %.*s failed to prove the cluster key",
		    node != NULL && node->type == MSGPACK_OBJECT_STR ?
		    (int)node->via.str.size : 1,
		    node != NULL && node->type == MSGPACK_OBJECT_STR ?
		    node->via.str.ptr : "?");
		conn_reply_error(r->c, r->seq,
		    "AuthFailedError: wrong cluster key");
		/* one guess per connection, and the address waits */
		conn_peer_auth_failed(r->c);
		return;
	}
	r->hc->need_peer_auth = false;
	r->hc->logged_in = true;
	conn_reply(r->c, r->seq, 0, true);
}

/*
 * dump: the whole tree for a joining node (spec §3.9, with the paths
 * shortened and lengthened correctly): first the node table, then every
 * entry that has a chain, tombstones included, so deletes survive.
 */
struct dump_task {
	struct task task;		/* first */
	struct tree_walk walk;
	const struct entry *last;
	struct agent *a;
};

static void
dump_pump(struct task *t)
{
	struct dump_task *dt = (struct dump_task *)t;
	struct entry *e;

	while (!conn_output_busy(t->conn)) {
		msgpack_packer *pk;
		uint32_t d;

		if ((e = tree_walk_next(&dt->walk)) == NULL) {
			conn_task_end(t, true);
			return;
		}
		if (e->chain.n == 0)
			continue;
		d = tree_common_depth(dt->a->tree.root, dt->last, e);
		pk = conn_reply(t->conn, t->seq, 5, false);
		pack_key(pk, "path");
		tree_pack_path(pk, dt->a->tree.root, e, d);
		pack_key(pk, "depth");
		msgpack_pack_uint32(pk, d);
		pack_key(pk, "value");
		pack_value(t->conn, pk, e);
		pack_key(pk, "tock");
		msgpack_pack_uint64(pk, e->tock);
		pack_key(pk, "chain");
		chain_pack(pk, &e->chain, CHAIN_CAP);
		dt->last = e;
	}
	conn_task_want_pump(t);
}

static const struct task_ops dump_ops = {
	.pump = dump_pump,
	.free = free_task,
};

/*
 * A node without its data yet must not hand out its empty tree: a joining
 * node that downloaded it would call itself ready with nothing, and serve
 * that to its clients.  The asker tries another peer.
 */
static bool
refuse_not_ready(struct req *r)
{
	if (agent_ready(r->a))
		return false;
	conn_reply_error(r->c, r->seq,
	    "Not ready: this node has not got its data yet");
	return true;
}

/* {nodes: {name: tick}, known: {name: ranges}} as an item of seq */
static void
send_state_item(struct req *r)
{
	msgpack_packer *pk = conn_reply(r->c, r->seq, 3, false);

	pack_key(pk, "tock");
	msgpack_pack_uint64(pk, r->a->tock);
	pack_key(pk, "nodes");
	agent_pack_nodes(r->a, pk);
	pack_key(pk, "known");
	agent_pack_ranges(r->a, pk, AGENT_KNOWN);
}

static void
act_dump(struct req *r)
{
	struct dump_task *dt;

	if (refuse_not_ready(r))
		return;
	if ((dt = calloc(1, sizeof(*dt))) == NULL) {
		conn_reply_error(r->c, r->seq, "Out of memory");
		return;
	}
	conn_reply_state(r->c, r->seq, "start");
	send_state_item(r);
	dt->task.seq = r->seq;
	dt->task.ops = &dump_ops;
	dt->a = r->a;
	dt->last = r->a->tree.root;
	tree_walk_init(&dt->walk, r->a->tree.root, -1);
	conn_task_add(r->c, &dt->task);
	dump_pump(&dt->task);
}

/*
 * get_events {ranges: {node: ranges}}: for each asked tick this node
 * knows, the entry that holds it (its current state, full path) or, if it
 * was superseded, a `known` item; ticks this node never saw are left out.
 * Bounded: at most HANDLERS_MAX_EVENT_TICKS ticks per request.
 */
#define HANDLERS_MAX_EVENT_TICKS 100000

static void
act_get_events(struct req *r)
{
	const msgpack_object *rs = proto_map_get(r->msg, "ranges");
	uint64_t budget = HANDLERS_MAX_EVENT_TICKS;
	msgpack_packer *pk;

	if (refuse_not_ready(r))
		return;
	if (rs == NULL || rs->type != MSGPACK_OBJECT_MAP) {
		conn_reply_error(r->c, r->seq,
		    "ranges must be a map {node: range list}");
		return;
	}
	conn_reply_state(r->c, r->seq, "start");
	for (uint32_t i = 0; i < rs->via.map.size && budget > 0; i++) {
		const msgpack_object *name = &rs->via.map.ptr[i].key;
		struct ranges want, super;
		const struct entry *last = NULL;
		struct node *n;

		if (!chain_node_name_ok(name))
			continue;
		n = nodes_get(&r->a->nodes, name->via.str.ptr,
		    name->via.str.size, false);
		ranges_init(&want);
		ranges_init(&super);
		if (n == NULL ||
		    ranges_unpack(&rs->via.map.ptr[i].val, &want) != 0) {
			ranges_fini(&want);
			continue;
		}
		for (size_t k = 0; k < want.n && budget > 0; k++) {
			for (uint64_t t = want.r[k].b; t < want.r[k].e &&
			    budget > 0; t++, budget--) {
				const struct entry *e;

				if (!ranges_contains(&n->known, t))
					continue;
				e = node_entry_get(n, t);
				if (e == NULL) {
					ranges_add(&super, t, t + 1);
					continue;
				}
				if (e == last)
					continue;	/* one entry, several ticks */
				pk = conn_reply(r->c, r->seq, 4, false);
				pack_key(pk, "path");
				tree_pack_path(pk, r->a->tree.root, e, 0);
				pack_key(pk, "value");
				pack_value(r->c, pk, e);
				pack_key(pk, "tock");
				msgpack_pack_uint64(pk, e->tock);
				pack_key(pk, "chain");
				chain_pack(pk, &e->chain, CHAIN_CAP);
				last = e;
			}
		}
		if (!ranges_empty(&super)) {
			pk = conn_reply(r->c, r->seq, 1, false);
			pack_key(pk, "known");
			msgpack_pack_map(pk, 1);
			msgpack_pack_str_with_body(pk, n->name, n->name_len);
			ranges_pack(pk, &super);
		}
		ranges_fini(&want);
		ranges_fini(&super);
	}
	conn_reply_state(r->c, r->seq, "end");
}


/*
 * Authentication (spec §4) for the methods that need no secret: `root`
 * (ident "*", empty data) and `_test` (any recorded name).  `password`
 * needs diffie_hellman and is not implemented.
 */

/* A string field of the request, or NULL (after an error reply). */
static const msgpack_object *
req_str(struct req *r, const char *key)
{
	const msgpack_object *o = proto_map_get(r->msg, key);

	if (o == NULL || o->type != MSGPACK_OBJECT_STR ||
	    o->via.str.size == 0 || o->via.str.size > 255) {
		conn_reply_error(r->c, r->seq, "%s must be a non-empty string",
		    key);
		return NULL;
	}
	return o;
}

static bool
auth_method_known(const msgpack_object *typ)
{
	return proto_str_eq(typ, "root") || proto_str_eq(typ, "_test");
}

/* kind field: only "user" exists. */
static bool
req_kind(struct req *r)
{
	const msgpack_object *k = proto_map_get(r->msg, "kind");

	if (k != NULL && k->type != MSGPACK_OBJECT_NIL &&
	    !proto_str_eq(k, "user")) {
		conn_reply_error(r->c, r->seq, "kind must be \"user\"");
		return false;
	}
	return true;
}

/* (nil, "auth", typ, "user"[, ident]) */
static struct entry *
auth_user_entry(struct agent *a, const msgpack_object *typ,
    const msgpack_object *ident)
{
	struct entry *e = child_str(a, auth_entry(a), typ->via.str.ptr,
	    typ->via.str.size, false);

	e = child_str(a, e, "user", 4, false);
	if (ident != NULL)
		e = child_str(a, e, ident->via.str.ptr, ident->via.str.size,
		    false);
	return e;
}

static bool
empty_map_or_absent(const msgpack_object *o)
{
	return o == NULL || o->type == MSGPACK_OBJECT_NIL ||
	    (o->type == MSGPACK_OBJECT_MAP && o->via.map.size == 0);
}

static void
act_auth(struct req *r)
{
	const msgpack_object *typ, *ident, *cur;
	msgpack_zone zone;
	msgpack_object val;
	struct entry *rec;
	const char *err = NULL;

	if ((typ = req_str(r, "typ")) == NULL ||
	    (ident = req_str(r, "ident")) == NULL)
		return;
	msgpack_zone_init(&zone, 256);
	cur = auth_current(r->a, &zone, &val);
	conn_reply_state(r->c, r->seq, "start");
	rec = auth_user_entry(r->a, typ, ident);
	if (!r->hc->logged_in && cur != NULL &&
	    !(cur->via.str.size == typ->via.str.size &&
	    memcmp(cur->via.str.ptr, typ->via.str.ptr, typ->via.str.size) == 0))
		err = "Wrong auth type";
	else if (!auth_method_known(typ))
		err = "This auth method is not supported by this agent";
	else if (rec == NULL || rec->value == NULL)
		err = "No such user";
	else if (proto_str_eq(typ, "root") &&
	    !empty_map_or_absent(proto_map_get(r->msg, "data")))
		err = "AuthFailedError: the root method takes no data";
	if (err != NULL) {
		msgpack_packer *pk = conn_reply(r->c, r->seq, 1, true);

		pack_key(pk, "error");
		if (strcmp(err, "Wrong auth type") == 0 && cur != NULL) {
			char buf[320];
			int n = snprintf(buf, sizeof(buf), "%s: %.*s", err,
			    (int)cur->via.str.size, cur->via.str.ptr);

			msgpack_pack_str_with_body(pk, buf, (size_t)n);
		} else
			msgpack_pack_str_with_body(pk, err, strlen(err));
	} else
		r->hc->logged_in = true;
	conn_reply_state(r->c, r->seq, "end");
	msgpack_zone_destroy(&zone);
}

/*
 * Run set_value/delete_value on a meta path with a request built here, so
 * auth writes get exactly the checks and reply of a client set (spec
 * §4.6: "written like set_value").  path: array elements under [nil];
 * value NULL: delete.
 */
static void
auth_write(struct req *r, const char **path, size_t npath,
    const msgpack_object *value, const msgpack_object *chain, bool has_chain)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_zone zone;
	msgpack_object msg;
	const msgpack_object *nchain = proto_map_get(r->msg, "nchain");
	struct req sub = *r;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 1 + (value != NULL) + has_chain +
	    (nchain != NULL));
	pack_key(&pk, "path");
	msgpack_pack_array(&pk, npath);
	for (size_t i = 0; i < npath; i++)
		msgpack_pack_str_with_body(&pk, path[i], strlen(path[i]));
	if (value != NULL) {
		pack_key(&pk, "value");
		msgpack_pack_object(&pk, *value);
	}
	if (has_chain) {
		pack_key(&pk, "chain");
		if (chain != NULL)
			msgpack_pack_object(&pk, *chain);
		else
			msgpack_pack_nil(&pk);
	}
	if (nchain != NULL) {
		pack_key(&pk, "nchain");
		msgpack_pack_object(&pk, *nchain);
	}
	msgpack_zone_init(&zone, 1024);
	if (proto_unpack((const uint8_t *)sb.data, sb.size, &zone, &msg) != 0)
		conn_reply_error(r->c, r->seq, "Out of memory");
	else {
		sub.msg = &msg;
		set_common(&sub, true, value == NULL);
	}
	msgpack_zone_destroy(&zone);
	msgpack_sbuffer_destroy(&sb);
}

static void
act_auth_set(struct req *r)
{
	const msgpack_object *typ, *ident, *aux, *chain;
	msgpack_object rec, *kv;
	char name[256];
	const char *path[5];

	if ((typ = req_str(r, "typ")) == NULL || !req_kind(r))
		return;
	if (!auth_method_known(typ)) {
		conn_reply_error(r->c, r->seq,
		    "This auth method is not supported by this agent");
		return;
	}
	ident = proto_map_get(r->msg, "ident");
	if (ident == NULL)
		ident = proto_map_get(r->msg, "name");
	if (ident == NULL || ident->type != MSGPACK_OBJECT_STR ||
	    ident->via.str.size == 0 || ident->via.str.size >= sizeof(name)) {
		conn_reply_error(r->c, r->seq, "ident must be a non-empty string");
		return;
	}
	if (proto_str_eq(typ, "root") && !proto_str_eq(ident, "*")) {
		conn_reply_error(r->c, r->seq, "The root method's ident is \"*\"");
		return;
	}
	if (proto_str_eq(typ, "root") &&
	    !empty_map_or_absent(proto_map_get(r->msg, "data"))) {
		conn_reply_error(r->c, r->seq, "The root method takes no data");
		return;
	}
	aux = proto_map_get(r->msg, "aux");
	if (aux != NULL && aux->type != MSGPACK_OBJECT_MAP &&
	    aux->type != MSGPACK_OBJECT_NIL) {
		conn_reply_error(r->c, r->seq, "aux must be a map");
		return;
	}
	/* record {_aux: aux or {}} (spec §4.3, §4.5) */
	kv = calloc(1, sizeof(*kv) * 2);
	if (kv == NULL) {
		conn_reply_error(r->c, r->seq, "Out of memory");
		return;
	}
	kv[0].type = MSGPACK_OBJECT_STR;
	kv[0].via.str.ptr = "_aux";
	kv[0].via.str.size = 4;
	if (aux != NULL && aux->type == MSGPACK_OBJECT_MAP)
		kv[1] = *aux;
	else
		kv[1].type = MSGPACK_OBJECT_MAP;
	rec.type = MSGPACK_OBJECT_MAP;
	rec.via.map.size = 1;
	rec.via.map.ptr = (msgpack_object_kv *)kv;
	snprintf(name, sizeof(name), "%.*s", (int)ident->via.str.size,
	    ident->via.str.ptr);
	path[0] = "auth";
	path[1] = proto_str_eq(typ, "root") ? "root" : "_test";
	path[2] = "user";
	path[3] = name;
	chain = proto_map_get(r->msg, "chain");
	auth_write(r, path, 4, &rec, chain, chain != NULL);
	free(kv);
}

static void
act_set_auth_typ(struct req *r)
{
	const msgpack_object *typ = proto_map_get(r->msg, "typ");
	msgpack_zone zone;
	msgpack_object old, nv;
	msgpack_object_kv kv[64];
	struct entry *au = auth_entry(r->a), *users;
	const char *path[1] = { "auth" };
	uint32_t n = 0;

	if (typ == NULL || (typ->type != MSGPACK_OBJECT_NIL &&
	    (typ->type != MSGPACK_OBJECT_STR || typ->via.str.size == 0))) {
		conn_reply_error(r->c, r->seq, "typ must be a method name or nil");
		return;
	}
	if (typ->type == MSGPACK_OBJECT_STR) {
		bool any = false;

		users = auth_user_entry(r->a, typ, NULL);
		for (uint32_t i = 0; users != NULL && i < users->nchild; i++)
			any |= users->child[i]->value != NULL;
		if (!any || !auth_method_known(typ)) {
			conn_reply_error(r->c, r->seq,
			    "You didn't configure this method yet: %.*s",
			    (int)typ->via.str.size, typ->via.str.ptr);
			return;
		}
	}
	/* old value with `current` replaced (or removed for nil) */
	msgpack_zone_init(&zone, 512);
	if (au != NULL && au->value != NULL &&
	    proto_unpack(au->value, au->value_len, &zone, &old) == 0 &&
	    old.type == MSGPACK_OBJECT_MAP) {
		for (uint32_t i = 0; i < old.via.map.size && n < 63; i++)
			if (!proto_str_eq(&old.via.map.ptr[i].key, "current"))
				kv[n++] = old.via.map.ptr[i];
	}
	if (typ->type == MSGPACK_OBJECT_STR) {
		kv[n].key.type = MSGPACK_OBJECT_STR;
		kv[n].key.via.str.ptr = "current";
		kv[n].key.via.str.size = 7;
		kv[n].val = *typ;
		n++;
	}
	nv.type = MSGPACK_OBJECT_MAP;
	nv.via.map.size = n;
	nv.via.map.ptr = kv;
	auth_write(r, path, 1, &nv, NULL, false);
	msgpack_zone_destroy(&zone);
}

/* One auth_list item / reply: {typ, kind, ident, [chain]}. */
static void
pack_auth_item(struct req *r, const msgpack_object *typ,
    const struct entry *rec, unsigned nchain, bool stamp)
{
	bool with_chain = nchain > 0 && rec->chain.n > 0;
	msgpack_packer *pk = conn_reply(r->c, r->seq, 3 + with_chain, stamp);

	pack_key(pk, "typ");
	msgpack_pack_object(pk, *typ);
	pack_key(pk, "kind");
	msgpack_pack_str_with_body(pk, "user", 4);
	pack_key(pk, "ident");
	conn_pack_raw(r->c, entry_name(rec), entry_name_len(rec));
	if (with_chain) {
		pack_key(pk, "chain");
		chain_pack(pk, &rec->chain, nchain);
	}
}

static void
act_auth_list(struct req *r)
{
	const msgpack_object *typ, *ident;
	struct entry *users, *rec;
	int64_t nchain;

	if ((typ = req_str(r, "typ")) == NULL || !req_kind(r) ||
	    !req_int(r, "nchain", 0, 0, HANDLERS_MAX_NCHAIN, &nchain))
		return;
	ident = proto_map_get(r->msg, "ident");
	if (ident != NULL && ident->type != MSGPACK_OBJECT_NIL) {
		if (ident->type != MSGPACK_OBJECT_STR) {
			conn_reply_error(r->c, r->seq, "ident must be a string");
			return;
		}
		rec = auth_user_entry(r->a, typ, ident);
		if (rec == NULL || rec->value == NULL) {
			conn_reply_error(r->c, r->seq, "No such user");
			return;
		}
		pack_auth_item(r, typ, rec, (unsigned)nchain, true);
		return;
	}
	conn_reply_state(r->c, r->seq, "start");
	users = auth_user_entry(r->a, typ, NULL);
	for (uint32_t i = 0; users != NULL && i < users->nchild; i++)
		if (users->child[i]->value != NULL)
			pack_auth_item(r, typ, users->child[i],
			    (unsigned)nchain, true);
	conn_reply_state(r->c, r->seq, "end");
}

static void
act_auth_get(struct req *r)
{
	const msgpack_object *typ, *ident, *aux;
	struct entry *rec;
	msgpack_zone zone;
	msgpack_object val;
	msgpack_packer *pk;
	uint32_t naux = 0;

	if ((typ = req_str(r, "typ")) == NULL || !req_kind(r) ||
	    (ident = req_str(r, "ident")) == NULL)
		return;
	rec = auth_user_entry(r->a, typ, ident);
	msgpack_zone_init(&zone, 512);
	if (rec == NULL || rec->value == NULL ||
	    proto_unpack(rec->value, rec->value_len, &zone, &val) != 0) {
		conn_reply_error(r->c, r->seq, "No such user");
		msgpack_zone_destroy(&zone);
		return;
	}
	/* generic methods: the record's aux fields plus the chain */
	aux = proto_map_get(&val, "_aux");
	if (aux != NULL && aux->type == MSGPACK_OBJECT_MAP)
		naux = aux->via.map.size;
	pk = conn_reply(r->c, r->seq, naux + 1, true);
	for (uint32_t i = 0; i < naux; i++) {
		msgpack_pack_object(pk, aux->via.map.ptr[i].key);
		msgpack_pack_object(pk, aux->via.map.ptr[i].val);
	}
	pack_key(pk, "chain");
	chain_pack(pk, &rec->chain, CHAIN_CAP);
	msgpack_zone_destroy(&zone);
}

static void
act_not_supported(struct req *r)
{
	conn_reply_error(r->c, r->seq,
	    "diffie_hellman is not supported by this agent (no password login)");
}

static const struct action actions[] = {
	{ "get_value", act_get_value, false },
	{ "set_value", act_set_value, false },
	{ "delete_value", act_delete_value, false },
	{ "get_tree", act_get_tree, true },
	{ "watch", act_watch, true },
	{ "root", act_root, false },
	{ "get_state", act_get_state, false },
	{ "get_internal", act_get_internal, false },
	{ "set_internal", act_set_internal, false },
	{ "delete_internal", act_delete_internal, false },
	{ "delete_tree", act_delete_tree, false },
	{ "save", act_save, false },
	{ "log", act_log, false },
	{ "update", act_update, true },
	{ "stop", act_stop, false },
	{ "serfsend", act_serfsend, false },
	{ "serfmon", act_serfmon, true },
	{ "peer_auth", act_peer_auth, false },
	{ "dump", act_dump, false },
	{ "get_events", act_get_events, false },
	{ "auth", act_auth, true },
	{ "diffie_hellman", act_not_supported, false },
	{ "auth_list", act_auth_list, false },
	{ "auth_get", act_auth_get, false },
	{ "auth_set", act_auth_set, false },
	{ "set_auth_typ", act_set_auth_typ, false },
};

/* A reply that cannot carry a seq (spec §2.2): {error, tock}. */
static void
reply_no_seq(struct conn *c, const char *msg)
{
	msgpack_packer *pk = conn_reply_noseq(c, 1);

	pack_key(pk, "error");
	msgpack_pack_str_with_body(pk, msg, strlen(msg));
}

void
handlers_dispatch(struct conn *c, struct handlers_conn *hs,
    const msgpack_object *msg)
{
	const msgpack_object *so, *ao, *st;
	struct req r;
	struct task *t;
	int64_t seq;

	if (msg->type != MSGPACK_OBJECT_MAP) {
		reply_no_seq(c, "Request must be a map");
		return;
	}
	so = proto_map_get(msg, "seq");
	if (so == NULL || proto_get_int(so, &seq) != 0) {
		reply_no_seq(c, "Request without an integer seq");
		return;
	}
	/* messages of a running client-streamed request go to it */
	if (seq >= 0 && (t = conn_task_find(c, (uint64_t)seq)) != NULL &&
	    t->ops->input != NULL) {
		t->ops->input(t, msg);
		return;
	}
	if (seq < 0) {
		reply_no_seq(c, "seq must not be negative");
		return;
	}
	if (hs->have_last && seq <= hs->last) {
		conn_reply_error(c, (uint64_t)seq,
		    "Channel closed? Sequence error: %" PRId64 " < %" PRId64,
		    hs->last, seq);
		return;
	}
	hs->have_last = true;
	hs->last = seq;

	memset(&r, 0, sizeof(r));
	r.c = c;
	r.hc = hs;
	r.a = conn_agent(c);
	r.seq = (uint64_t)seq;
	r.msg = msg;
	ao = proto_map_get(msg, "action");
	if (ao == NULL || ao->type != MSGPACK_OBJECT_STR) {
		conn_reply_error(c, r.seq, "Missing action (a string)");
		return;
	}
	st = proto_map_get(msg, "state");
	r.streamed = st != NULL && proto_str_eq(st, "start");
	if (hs->need_peer_auth && !proto_str_eq(ao, "peer_auth")) {
		conn_reply_error(c, r.seq,
		    "NoAuthError: prove the cluster key first (peer_auth)");
		return;
	}
	/* spec §2.4: before login only auth and diffie_hellman */
	if (!hs->logged_in && !proto_str_eq(ao, "auth") &&
	    !proto_str_eq(ao, "diffie_hellman") &&
	    !proto_str_eq(ao, "peer_auth")) {
		conn_reply_error(c, r.seq, "NoAuthError: log in first");
		return;
	}
	for (size_t i = 0; i < sizeof(actions) / sizeof(actions[0]); i++) {
		if (!proto_str_eq(ao, actions[i].name))
			continue;
		if (r.streamed && !actions[i].streamable)
			break;
		actions[i].fn(&r);
		return;
	}
	conn_reply_error(c, r.seq, "Unknown action: %.*s",
	    (int)(ao->via.str.size > 64 ? 64 : ao->via.str.size),
	    ao->via.str.ptr);
}
