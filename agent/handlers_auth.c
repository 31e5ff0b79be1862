/* handlers_auth: the auth actions (spec §4): auth, auth_set,
 * set_auth_typ, auth_list, auth_get. */
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

#include "dh.h"
#include "auth_password.h"
#include "auth_unix.h"
#include "handlers_internal.h"

/*
 * Authentication (spec §4): `root` (ident "*", empty data), `_test` (any
 * recorded name) and `password` (a box sealed with the key of
 * diffie_hellman, auth_password.h).
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
	return proto_str_eq(typ, "root") || proto_str_eq(typ, "_test") ||
	    proto_str_eq(typ, "password") || proto_str_eq(typ, "unix");
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

/*
 * The password method's login check: NULL if the box in the request holds
 * the digest the record accepts, else the error text (in buf).
 */
static const char *
password_login_error(struct req *r, const struct entry *rec,
    const msgpack_object *ident, char *buf, size_t cap)
{
	uint8_t digest[AUTH_PASSWORD_DIGEST];
	msgpack_zone zone;
	msgpack_object val;
	bool ok;

	if (!r->hc->dh_done)
		return "No shared key yet: call diffie_hellman first";
	if (auth_password_open(r->hc->dh_key, proto_map_get(r->msg,
	    "password"), digest) != 0)
		return "AuthFailedError: the password box does not open "
		    "(another diffie_hellman key, or damaged)";
	msgpack_zone_init(&zone, 512);
	ok = proto_unpack(rec->value, rec->value_len, &zone, &val) == 0 &&
	    auth_password_verify(&val, digest);
	msgpack_zone_destroy(&zone);
	sodium_memzero(digest, sizeof(digest));
	if (ok)
		return NULL;
	/* the reference's text, which its tests look for */
	snprintf(buf, cap, "AuthFailedError('Password hashes do not match', "
	    "'%.*s')", (int)ident->via.str.size, ident->via.str.ptr);
	return buf;
}

/*
 * The unix method: the connecting uid, by login name or number, must have
 * a record; ident, if given and not "*", must be one of those names.
 * NULL on success, else the error text (in buf).
 */
static const char *
unix_login_error(struct req *r, const msgpack_object *ident, char *buf,
    size_t cap)
{
	static const msgpack_object typ = { .type = MSGPACK_OBJECT_STR,
	    .via.str = { 4, "unix" } };
	char name[256], num[24];
	const char *cand[2] = { name, num };
	msgpack_object id;
	uid_t uid;
	gid_t gid;

	if (conn_peer_cred(r->c, &uid, &gid) != 0)
		return "AuthFailedError: the unix method needs the local socket";
	auth_unix_names(uid, name, num);
	for (int i = 0; i < 2; i++) {
		const struct entry *rec;

		if (cand[i][0] == '\0')
			continue;
		if (ident != NULL && !proto_str_eq(ident, "*") &&
		    !proto_str_eq(ident, cand[i]))
			continue;
		id.type = MSGPACK_OBJECT_STR;
		id.via.str.ptr = cand[i];
		id.via.str.size = (uint32_t)strlen(cand[i]);
		rec = auth_user_entry(r->a, &typ, &id);
		if (rec != NULL && rec->value != NULL)
			return NULL;
	}
	snprintf(buf, cap, "AuthFailedError: uid %s%s%s%s has no unix user%s",
	    num, name[0] ? " (" : "", name, name[0] ? ")" : "",
	    ident != NULL && !proto_str_eq(ident, "*") ? " by that name" : "");
	return buf;
}

void
act_auth(struct req *r)
{
	const msgpack_object *typ, *ident, *cur;
	msgpack_zone zone;
	msgpack_object val;
	struct entry *rec;
	const char *err = NULL;
	char buf[640];
	double wait = 0;

	if ((typ = req_str(r, "typ")) == NULL)
		return;
	/* unix: the kernel says who it is; ident is optional */
	ident = proto_map_get(r->msg, "ident");
	if (!(proto_str_eq(typ, "unix") && (ident == NULL ||
	    ident->type == MSGPACK_OBJECT_NIL)) &&
	    (ident = req_str(r, "ident")) == NULL)
		return;
	if (ident != NULL && ident->type == MSGPACK_OBJECT_NIL)
		ident = NULL;
	msgpack_zone_init(&zone, 256);
	cur = auth_current(r->a, &zone, &val);
	conn_reply_state(r->c, r->seq, "start");
	rec = ident != NULL ? auth_user_entry(r->a, typ, ident) : NULL;
	if (!r->hc->logged_in && cur != NULL &&
	    !(cur->via.str.size == typ->via.str.size &&
	    memcmp(cur->via.str.ptr, typ->via.str.ptr, typ->via.str.size) == 0))
		err = "Wrong auth type";
	else if (!auth_method_known(typ))
		err = "This auth method is not supported by this agent";
	else if ((wait = conn_login_wait(r->c)) > 0) {
		snprintf(buf, sizeof(buf), "AuthFailedError: too many failed "
		    "logins; try again in %.1f s", wait);
		err = buf;
	} else if (proto_str_eq(typ, "unix"))
		err = unix_login_error(r, ident, buf, sizeof(buf));
	else if (rec == NULL || rec->value == NULL)
		err = "No such user";
	else if (proto_str_eq(typ, "root") &&
	    !empty_map_or_absent(proto_map_get(r->msg, "data")))
		err = "AuthFailedError: the root method takes no data";
	else if (proto_str_eq(typ, "password"))
		err = password_login_error(r, rec, ident, buf, sizeof(buf));
	if (err != NULL) {
		msgpack_packer *pk = conn_reply(r->c, r->seq, 1, true);

		pack_key(pk, "error");
		if (strcmp(err, "Wrong auth type") == 0 && cur != NULL) {
			char wbuf[320];
			int n = snprintf(wbuf, sizeof(wbuf), "%s: %.*s", err,
			    (int)cur->via.str.size, cur->via.str.ptr);

			msgpack_pack_str_with_body(pk, wbuf, (size_t)n);
		} else
			msgpack_pack_str_with_body(pk, err, strlen(err));
		/* a login storm costs the stormer, not the agent */
		if (wait == 0 && strncmp(err, "Wrong auth type", 15) != 0)
			conn_login_failed(r->c);
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

/*
 * auth_set of a password user: the box holds the password's digest; the
 * record {_aux: nil, password: <Argon2id of the digest>} is created, never
 * changed (chain nil: "This entry already exists", spec §4.4).
 */
static void
auth_set_password(struct req *r, const msgpack_object *ident)
{
	uint8_t digest[AUTH_PASSWORD_DIGEST];
	char hash[crypto_pwhash_STRBYTES], name[256];
	msgpack_object rec;
	msgpack_object_kv kv[2];
	const char *path[4] = { "auth", "password", "user", name };

	if (!auth_password_name_ok(ident->via.str.ptr, ident->via.str.size) ||
	    ident->via.str.size >= sizeof(name)) {
		conn_reply_error(r->c, r->seq, "A password user's name must "
		    "match ^[a-zA-Z][a-zA-Z0-9_]*$");
		return;
	}
	if (!r->hc->dh_done) {
		conn_reply_error(r->c, r->seq,
		    "No shared key yet: call diffie_hellman first");
		return;
	}
	if (auth_password_open(r->hc->dh_key, proto_map_get(r->msg,
	    "password"), digest) != 0) {
		conn_reply_error(r->c, r->seq, "password must be the 72-byte "
		    "box of its SHA-256 under the diffie_hellman key");
		return;
	}
	if (auth_password_hash(digest, hash) != 0) {
		sodium_memzero(digest, sizeof(digest));
		conn_reply_error(r->c, r->seq, "Out of memory");
		return;
	}
	sodium_memzero(digest, sizeof(digest));
	snprintf(name, sizeof(name), "%.*s", (int)ident->via.str.size,
	    ident->via.str.ptr);
	kv[0].key.type = MSGPACK_OBJECT_STR;
	kv[0].key.via.str.ptr = "_aux";
	kv[0].key.via.str.size = 4;
	kv[0].val.type = MSGPACK_OBJECT_NIL;
	kv[1].key.type = MSGPACK_OBJECT_STR;
	kv[1].key.via.str.ptr = "password";
	kv[1].key.via.str.size = 8;
	kv[1].val.type = MSGPACK_OBJECT_STR;
	kv[1].val.via.str.ptr = hash;
	kv[1].val.via.str.size = (uint32_t)strlen(hash);
	rec.type = MSGPACK_OBJECT_MAP;
	rec.via.map.size = 2;
	rec.via.map.ptr = kv;
	auth_write(r, path, 4, &rec, NULL, true);
}

/* ---- the _test method's client-streamed dialogs (spec §4.5) ---- */

static void auth_set_test(struct req *r, const msgpack_object *name);

struct test_dialog {
	struct task task;		/* first */
	struct handlers_conn *hc;
	bool get;			/* auth_get, else auth_set */
	bool done;			/* the last step was sent */
	char ident[256];		/* auth_get: the user */
};

static void
test_dialog_free(struct task *t)
{
	free(t);
}

/* {seq, step: STEP[, name, chain]} */
static msgpack_packer *
reply_step(struct task *t, const char *step, uint32_t more)
{
	msgpack_packer *pk = conn_reply(t->conn, t->seq, 1 + more, false);

	pack_key(pk, "step");
	msgpack_pack_str_with_body(pk, step, strlen(step));
	return pk;
}

static void
test_dialog_input(struct task *t, const msgpack_object *msg)
{
	struct test_dialog *d = (struct test_dialog *)t;
	const msgpack_object *step = proto_map_get(msg, "step");
	const msgpack_object *st = proto_map_get(msg, "state");
	struct req r;

	if (proto_map_get(msg, "error") != NULL) {
		conn_reply_error(t->conn, t->seq, "Dialog aborted by the "
		    "client");
		conn_task_end(t, !d->done || d->get);
		return;
	}
	if (st != NULL && proto_str_eq(st, "end")) {
		/* the client ends its input: auth_get reports the end of
		 * the dialog as an error item (spec §4.5), auth_set had
		 * already ended */
		if (d->get)
			conn_reply_error(t->conn, t->seq, "The dialog is over");
		conn_task_end(t, d->get || !d->done);
		return;
	}
	if (d->done || step == NULL ||
	    !proto_str_eq(step, d->get ? "WantName" : "HasName")) {
		conn_reply_error(t->conn, t->seq, "Unexpected step in the "
		    "_test dialog (expected %s)", d->done ? "the end" :
		    d->get ? "WantName" : "HasName");
		conn_task_end(t, true);
		return;
	}
	d->done = true;
	memset(&r, 0, sizeof(r));
	r.c = t->conn;
	r.hc = d->hc;
	r.a = conn_agent(t->conn);
	r.seq = t->seq;
	r.msg = msg;
	if (d->get) {
		msgpack_object id;
		struct entry *rec;
		msgpack_packer *pk;
		static const msgpack_object typ = { .type = MSGPACK_OBJECT_STR,
		    .via.str = { 5, "_test" } };

		id.type = MSGPACK_OBJECT_STR;
		id.via.str.ptr = d->ident;
		id.via.str.size = (uint32_t)strlen(d->ident);
		rec = auth_user_entry(r.a, &typ, &id);
		pk = reply_step(t, "SendName", 2);
		pack_key(pk, "name");
		msgpack_pack_str_with_body(pk, d->ident, strlen(d->ident));
		pack_key(pk, "chain");
		if (rec != NULL)
			chain_pack(pk, &rec->chain, CHAIN_CAP);
		else
			msgpack_pack_nil(pk);
		return;
	}
	/* HasName {name, chain, aux}: written like set_value, then end */
	auth_set_test(&r, proto_map_get(msg, "name"));
	conn_reply_state(t->conn, t->seq, "end");
}

static const struct task_ops test_dialog_ops = {
	.input = test_dialog_input,
	.free = test_dialog_free,
};

/* Open a _test dialog: start, then its first step. */
static void
test_dialog_start(struct req *r, bool get, const msgpack_object *ident)
{
	struct test_dialog *d = calloc(1, sizeof(*d));

	if (d == NULL) {
		conn_reply_error(r->c, r->seq, "Out of memory");
		return;
	}
	d->task.seq = r->seq;
	d->task.ops = &test_dialog_ops;
	d->hc = r->hc;
	d->get = get;
	if (ident != NULL)
		snprintf(d->ident, sizeof(d->ident), "%.*s",
		    (int)ident->via.str.size, ident->via.str.ptr);
	conn_task_add(r->c, &d->task);
	conn_reply_state(r->c, r->seq, "start");
	reply_step(&d->task, get ? "SendWant" : "GiveName", 0);
}

/*
 * Write the record {_aux: aux or {}} of a method without secrets (spec
 * §4.3, §4.5) for ident, from the request's aux and chain fields.
 */
static void
auth_set_generic(struct req *r, const char *method,
    const msgpack_object *ident)
{
	const msgpack_object *aux = proto_map_get(r->msg, "aux");
	const msgpack_object *chain = proto_map_get(r->msg, "chain");
	msgpack_object rec;
	msgpack_object_kv kv[1];
	char name[256];
	const char *path[4] = { "auth", method, "user", name };

	if (ident == NULL || ident->type != MSGPACK_OBJECT_STR ||
	    ident->via.str.size == 0 || ident->via.str.size >= sizeof(name)) {
		conn_reply_error(r->c, r->seq, "ident must be a non-empty string");
		return;
	}
	if (aux != NULL && aux->type != MSGPACK_OBJECT_MAP &&
	    aux->type != MSGPACK_OBJECT_NIL) {
		conn_reply_error(r->c, r->seq, "aux must be a map");
		return;
	}
	kv[0].key.type = MSGPACK_OBJECT_STR;
	kv[0].key.via.str.ptr = "_aux";
	kv[0].key.via.str.size = 4;
	if (aux != NULL && aux->type == MSGPACK_OBJECT_MAP)
		kv[0].val = *aux;
	else {
		kv[0].val.type = MSGPACK_OBJECT_MAP;
		kv[0].val.via.map.size = 0;
		kv[0].val.via.map.ptr = NULL;
	}
	rec.type = MSGPACK_OBJECT_MAP;
	rec.via.map.size = 1;
	rec.via.map.ptr = kv;
	snprintf(name, sizeof(name), "%.*s", (int)ident->via.str.size,
	    ident->via.str.ptr);
	auth_write(r, path, 4, &rec, chain, chain != NULL);
}

static void
auth_set_test(struct req *r, const msgpack_object *name)
{
	auth_set_generic(r, "_test", name);
}

void
act_auth_set(struct req *r)
{
	const msgpack_object *typ, *ident;

	if ((typ = req_str(r, "typ")) == NULL || !req_kind(r))
		return;
	if (!auth_method_known(typ)) {
		conn_reply_error(r->c, r->seq,
		    "This auth method is not supported by this agent");
		return;
	}
	if (r->streamed && proto_str_eq(typ, "_test")) {
		test_dialog_start(r, false, NULL);
		return;
	}
	ident = proto_map_get(r->msg, "ident");
	if (ident == NULL)
		ident = proto_map_get(r->msg, "name");
	if (ident == NULL || ident->type != MSGPACK_OBJECT_STR ||
	    ident->via.str.size == 0) {
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
	if (proto_str_eq(typ, "password"))
		auth_set_password(r, ident);
	else
		auth_set_generic(r, proto_str_eq(typ, "root") ? "root" :
		    proto_str_eq(typ, "unix") ? "unix" : "_test", ident);
}

void
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

void
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

void
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
	if (r->streamed && proto_str_eq(typ, "_test")) {
		test_dialog_start(r, true, ident);
		return;
	}
	rec = auth_user_entry(r->a, typ, ident);
	if (proto_str_eq(typ, "password") && rec != NULL && rec->value != NULL) {
		/* no secret leaves: not even its hash (spec §4.4: {}) */
		conn_reply(r->c, r->seq, 0, true);
		return;
	}
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

/* spec §4.4: allowed before login, once per connection. */
void
act_diffie_hellman(struct req *r)
{
	const msgpack_object *pub = proto_map_get(r->msg, "pubkey");
	msgpack_packer *pk;
	int64_t length;
	uint8_t *mine;
	size_t n;
	int rc;

	if (r->hc->dh_done) {
		conn_reply_error(r->c, r->seq, "Can't call dh twice");
		return;
	}
	if (!req_int(r, "length", 1024, 1, DH_MAX_LENGTH, &length))
		return;
	if (pub == NULL || pub->type != MSGPACK_OBJECT_BIN ||
	    pub->via.bin.size == 0 || pub->via.bin.size > 1024) {
		conn_reply_error(r->c, r->seq, "pubkey must be a byte string "
		    "(the big-endian public key)");
		return;
	}
	rc = dh_respond((unsigned)length, (const uint8_t *)pub->via.bin.ptr,
	    pub->via.bin.size, &mine, &n, r->hc->dh_key);
	if (rc != 0) {
		conn_reply_error(r->c, r->seq, rc == -EINVAL ? "Bad pubkey: "
		    "not an element of the Diffie-Hellman group" :
		    "Out of memory");
		return;
	}
	r->hc->dh_done = true;
	pk = conn_reply(r->c, r->seq, 1, true);
	pack_key(pk, "pubkey");
	msgpack_pack_bin_with_body(pk, mine, n);
	free(mine);
}
