/* handlers: the dispatcher, the greeting and the helpers every
 * action group shares (handlers_internal.h).  One function per action,
 * a const table maps names to them. */
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

#include "handlers_internal.h"

/* ---- small helpers ---- */

void
pack_value(struct conn *c, msgpack_packer *pk, const struct entry *e)
{
	if (e == NULL || !entry_has_value(e))
		msgpack_pack_nil(pk);
	else
		conn_pack_raw(c, entry_value(e), entry_value_len(e));
}

void
shown_init(struct shown *s, struct agent *a, const struct xlate_user *conv,
    const struct entry *e)
{
	s->e = e;
	s->converted = s->failed = false;
	s->buf = NULL;
	s->len = 0;
	s->err[0] = 0;
	if (e != NULL && entry_has_value(e) && xlate_read(a, conv, e,
	    entry_value(e), entry_value_len(e), &s->converted, &s->buf, &s->len,
	    s->err, sizeof(s->err)) != 0)
		s->failed = true;
}

void
pack_shown(struct conn *c, msgpack_packer *pk, const struct shown *s)
{
	if (!s->converted)
		pack_value(c, pk, s->e);
	else if (s->buf == NULL)
		msgpack_pack_nil(pk);
	else
		conn_pack_raw(c, s->buf, s->len);
}

void
shown_fini(struct shown *s)
{
	free(s->buf);
	s->buf = NULL;
}

bool
req_int_bad(struct req *r, const char *key)
{
	conn_reply_error(r->c, r->seq, "%s must be an integer", key);
	return false;
}

bool
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
bool
req_path(struct req *r, bool create, bool internal, struct entry **out)
{
	const msgpack_object *p = proto_map_get(r->msg, "path");
	struct entry *base;
	bool bad_nil = false, allow_nil;
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
		/* the meta root is for unrestricted users (acl.h) */
		allow_nil = base == r->a->tree.root && !r->hc->acl.restricted;
	}
	if (r->key == NULL)
		rc = tree_follow(&r->a->tree, base, p, create, allow_nil,
		    &bad_nil, out);
	else if (create && r->key->base == base) {
		/* the lookup before kept the key: no second build */
		*out = tree_key_create(&r->a->tree, r->key);
		rc = *out != NULL ? 0 : -ENOMEM;
	} else if ((rc = tree_key_build(&r->a->tree, base, p, allow_nil,
	    &bad_nil, r->key)) == 0 &&
	    (*out = tree_key_find(&r->a->tree, r->key)) == NULL && create &&
	    (*out = tree_key_create(&r->a->tree, r->key)) == NULL)
		rc = -ENOMEM;
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
	else if (bad_nil && r->hc->acl.restricted && !internal &&
	    base == r->a->tree.root)
		conn_reply_error(r->c, r->seq, "Access denied: the meta root "
		    "(nil) is for users without ACL (this login is bound to "
		    "ACL %s)", r->hc->acl.name);
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

void
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

void
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
bool
below(const struct entry *base, const struct entry *e)
{
	for (; e != NULL; e = e->parent)
		if (e == base)
			return true;
	return false;
}

void
handlers_send_item(struct conn *c, uint64_t seq, struct entry *base,
    const struct entry **last, struct entry *e, unsigned nchain,
    const struct acl_user *acl, const struct xlate_user *conv)
{
	enum acl_view view = acl != NULL ?
	    acl_view(conn_agent(c), acl, base, e) : ACL_FULL;
	uint32_t d;
	bool with_chain = nchain > 0 && e->chain->n > 0;
	msgpack_packer *pk;
	struct shown sh;

	if (view == ACL_HIDE)
		return;
	shown_init(&sh, conn_agent(c), view == ACL_FULL ? conv : NULL, e);
	d = tree_common_depth(base, *last, e);
	/* the reference sends an item it may not read without its value;
	 * one its converter cannot encode carries the error instead */
	pk = conn_reply(c, seq, 3 + (view == ACL_FULL) + (with_chain ? 1 : 0),
	    false);
	pack_key(pk, "path");
	tree_pack_path(pk, base, e, d);
	pack_key(pk, "depth");
	msgpack_pack_uint32(pk, d);
	if (view == ACL_FULL && sh.failed) {
		pack_key(pk, "error");
		msgpack_pack_str_with_body(pk, sh.err, strlen(sh.err));
	} else if (view == ACL_FULL) {
		pack_key(pk, "value");
		pack_shown(c, pk, &sh);
	}
	shown_fini(&sh);
	pack_key(pk, "tock");
	msgpack_pack_uint64(pk, e->tock);
	if (with_chain) {
		pack_key(pk, "chain");
		chain_pack(pk, e->chain, nchain);
	}
	*last = e;
}

const struct acl_user *
handlers_acl(const struct handlers_conn *hc)
{
	return hc->acl.restricted ? &hc->acl : NULL;
}

const struct xlate_user *
handlers_conv(const struct handlers_conn *hc)
{
	return hc->conv.bound ? &hc->conv : NULL;
}


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

void
valbuf_init(struct valbuf *v)
{
	v->data = v->small;
	v->size = 0;
	v->cap = sizeof(v->small);
}

void
valbuf_fini(struct valbuf *v)
{
	if (v->data != v->small)
		free(v->data);
}

/*
 * Pack a canonical copy of o into v.  Returns false on failure.  A
 * string, byte string or integer that fits goes in by hand, in
 * msgpack-c's shortest forms (proto_put_*): through the packer it was
 * two calls of valbuf_write, about 150 instructions of a set.
 */
bool
canonical(struct valbuf *v, const msgpack_object *o)
{
	msgpack_packer pk;
	uint8_t *p = v->data + v->size;
	size_t room = v->cap - v->size;

	switch (o->type) {
	case MSGPACK_OBJECT_STR:
	case MSGPACK_OBJECT_BIN:
		if (o->via.str.size > room || room - o->via.str.size < 5)
			break;
		p = proto_put_strhdr(p, o->type == MSGPACK_OBJECT_BIN,
		    o->via.str.size);
		memcpy(p, o->via.str.ptr, o->via.str.size);
		v->size = (size_t)(p + o->via.str.size - v->data);
		return true;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		if (room < 9)
			break;
		v->size = (size_t)(proto_put_uint(p, o->via.u64) - v->data);
		return true;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		if (room < 9)
			break;
		v->size = (size_t)(proto_put_int(p, o->via.i64) - v->data);
		return true;
	default:
		break;
	}
	msgpack_packer_init(&pk, v, valbuf_write);
	return proto_pack_canonical(&pk, o) == 0;
}

/*
 * req_path for the data tree, then, for a connection bound to an ACL, the
 * walk's 'x'/'n' checks and letter at the target (acl.h): the one point
 * where an action's path meets the ACL.  Nothing is created before the
 * check passed.
 */
bool
req_path_acl(struct req *r, enum path_mode mode, char letter,
    struct entry **out)
{
	char err[1200];

	if (!req_path(r, false, false, out))
		return false;
	if (r->hc->acl.restricted && !acl_check_path(r->a, &r->hc->acl,
	    conn_root(r->c), proto_map_get(r->msg, "path"), mode != PATH_FIND,
	    letter, NULL, err, sizeof(err))) {
		conn_reply_error(r->c, r->seq, "%s", err);
		return false;
	}
	if (mode == PATH_CREATE && *out == NULL)
		return req_path(r, true, false, out);
	return true;
}

/* ---- greeting and login ---- */

/* Child of e named by the string s (canonical str element). */
struct entry *
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
struct entry *
auth_entry(struct agent *a)
{
	static const uint8_t nil = 0xc0;

	return child_str(a, tree_child(&a->tree, a->tree.root, &nil, 1,
	    false), "auth", 4, false);
}

/* The active method (the `current` field of (nil,"auth")), or NULL. */
const msgpack_object *
auth_current(struct agent *a, msgpack_zone *zone, msgpack_object *val)
{
	struct entry *au = auth_entry(a);
	const msgpack_object *cur;

	if (au == NULL || !entry_has_value(au) ||
	    proto_unpack(entry_value(au), entry_value_len(au), zone, val) != 0)
		return NULL;
	cur = proto_map_get(val, "current");
	return cur != NULL && cur->type == MSGPACK_OBJECT_STR ? cur : NULL;
}

bool
handlers_shm_allowed(struct conn *c)
{
	return conn_agent(c)->shm != NULL && conn_is_local(c);
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
	bool give_shm;
	bool remote;

	msgpack_zone_init(&zone, 256);
	cur = auth_current(a, &zone, &val);
	remote = !conn_is_local(c) && !conn_is_peer(c);
	/* --no-login: recovery from a lock-out, the gate stays open and
	 * the greeting asks for nothing; on the local socket only */
	if (a->cfg.no_login && !remote)
		cur = NULL;
	hc->need_login = cur != NULL;
	hc->logged_in = cur == NULL;
	/* the network is not the local socket: no method, no way in,
	 * unless the operator said so (docs/operations.md) */
	hc->remote_no_method = remote && cur == NULL &&
	    !a->cfg.listen_allow_anonymous;
	if (hc->remote_no_method)
		hc->logged_in = false;
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
	/* before a login, nobody knows the user's ACL: the region (which
	 * cannot filter) is then asked for with get_shm after the login;
	 * a remote host cannot map it at all */
	give_shm = handlers_shm_allowed(c) && !hc->need_login;
	pk = conn_reply(c, 0, 3 + (au != NULL ? 1 : 0) + give_shm, true);
	if (give_shm) {
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
			n += !(cur != NULL && name_is_str(entry_children(au)[i],
			    cur->via.str.ptr, cur->via.str.size));
		pack_key(pk, "auth");
		msgpack_pack_array(pk, n);
		if (cur != NULL)
			msgpack_pack_object(pk, *cur);
		else
			msgpack_pack_nil(pk);
		for (uint32_t i = 0; i < au->nchild; i++) {
			const struct entry *m = entry_children(au)[i];

			if (cur != NULL && name_is_str(m, cur->via.str.ptr,
			    cur->via.str.size))
				continue;
			conn_pack_raw(c, entry_name(m), entry_name_len(m));
		}
	}
	msgpack_zone_destroy(&zone);
}


typedef void action_fn(struct req *r);

struct action {
	const char *name;
	size_t len;		/* strlen(name): compared before the bytes */
	action_fn *fn;
	bool streamable;	/* has a client-streamed form */
	bool unrestricted;	/* refused to a user bound to an ACL */
	bool multi;		/* multi reply: errors framed by start/end */
};

/* a name and its length, which is compared first */
#define NAME(s) s, sizeof(s) - 1
static const struct action actions[] = {
	{ NAME("get_value"), act_get_value, false, false, false },
	{ NAME("set_value"), act_set_value, false, false, false },
	{ NAME("delete_value"), act_delete_value, false, false, false },
	{ NAME("get_tree"), act_get_tree, true, false, true },
	{ NAME("watch"), act_watch, true, false, true },
	{ NAME("root"), act_root, false, false, false },
	{ NAME("get_state"), act_get_state, false, false, false },
	{ NAME("get_internal"), act_get_internal, false, true, false },
	{ NAME("set_internal"), act_set_internal, false, true, false },
	{ NAME("delete_internal"), act_delete_internal, false, true, false },
	{ NAME("delete_tree"), act_delete_tree, false, false, false },
	{ NAME("save"), act_save, false, true, false },
	{ NAME("log"), act_log, false, true, false },
	{ NAME("update"), act_update, true, true, false },
	{ NAME("stop"), act_stop, false, true, false },
	{ NAME("serfsend"), act_serfsend, false, true, false },
	{ NAME("serfmon"), act_serfmon, true, true, true },
	{ NAME("peer_auth"), act_peer_auth, false, false, false },
	{ NAME("dump"), act_dump, false, true, false },
	{ NAME("get_events"), act_get_events, false, true, false },
	{ NAME("auth"), act_auth, true, false, true },
	{ NAME("diffie_hellman"), act_diffie_hellman, false, false, false },
	{ NAME("auth_list"), act_auth_list, false, true, false },
	{ NAME("auth_get"), act_auth_get, true, true, false },
	{ NAME("auth_set"), act_auth_set, true, true, false },
	{ NAME("set_auth_typ"), act_set_auth_typ, false, true, false },
	{ NAME("test_acl"), act_test_acl, false, false, false },
	{ NAME("get_shm"), act_get_shm, false, false, false },
	{ NAME("get_members"), act_get_members, false, false, false },
	{ NAME("get_metrics"), act_get_metrics, false, false, false },
	{ NAME("kill_node"), act_kill_node, false, true, false },
	{ NAME("get_snapshot"), act_get_snapshot, false, true, false },
};
#undef NAME

/*
 * Does this request get a multi reply (the reference's streaming
 * commands)?  Besides the always-multi actions: auth_list without ident,
 * and auth_get/auth_set as client-streamed dialogs (state start).
 */
static bool
action_multi(const struct action *ac, const struct req *r)
{
	const msgpack_object *id;

	if (ac->multi)
		return true;
	if (strcmp(ac->name, "auth_list") == 0) {
		id = proto_map_get(r->msg, "ident");
		return id == NULL || id->type == MSGPACK_OBJECT_NIL;
	}
	return r->streamed && (strcmp(ac->name, "auth_get") == 0 ||
	    strcmp(ac->name, "auth_set") == 0);
}

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
		if (conn_task_input(t))
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
		conn_reply_error(c, r.seq, "%s", hs->remote_no_method ?
		    "NoAuthError: Login required on TCP connections, but no "
		    "auth method is on: turn one on (distkv-cli auth method "
		    "NAME) or start the agent with --listen-allow-anonymous" :
		    "NoAuthError: log in first");
		return;
	}
	for (size_t i = 0; i < sizeof(actions) / sizeof(actions[0]); i++) {
		/* ao is a str (checked above) */
		if (ao->via.str.size != actions[i].len ||
		    memcmp(ao->via.str.ptr, actions[i].name,
		    actions[i].len) != 0)
			continue;
		if (r.streamed && !actions[i].streamable)
			break;
		struct agent *a = r.a;
		uint64_t errors = a->metrics.errors;
		double t0 = a->metrics.batch_stamp != 0 ?
		    a->metrics.batch_stamp : metrics_now(), t1;

		if (action_multi(&actions[i], &r))
			conn_multi_begin(c, r.seq);
		if (actions[i].unrestricted && hs->acl.restricted)
			conn_reply_error(c, r.seq, "Access denied: %s needs a "
			    "user without ACL (this login is bound to ACL %s)",
			    actions[i].name, hs->acl.name);
		else
			actions[i].fn(&r);
		conn_multi_end(c);
		t1 = metrics_now();
		a->metrics.batch_stamp = t1;
		metrics_request(&a->metrics, i, actions[i].name,
		    a->metrics.errors != errors, t1 - t0);
		return;
	}
	r.a->metrics.unknown++;
	conn_reply_error(c, r.seq, "Unknown action: %.*s",
	    (int)(ao->via.str.size > 64 ? 64 : ao->via.str.size),
	    ao->via.str.ptr);
}
