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
#include "auth_method.h"
#include "handlers_internal.h"

/*
 * The auth actions (spec §4): each method is one file behind
 * auth_method.h (root, _test, password, unix, cert); the actions here find it
 * and run its part.
 */

const struct auth_method *
auth_method_find(const msgpack_object *typ)
{
	static const struct auth_method *const methods[] = {
		&auth_method_root, &auth_method_test, &auth_method_password,
		&auth_method_unix, &auth_method_cert,
	};

	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
		if (proto_str_eq(typ, methods[i]->name))
			return methods[i];
	return NULL;
}

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
struct entry *
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

bool
auth_data_empty(const msgpack_object *o)
{
	return o == NULL || o->type == MSGPACK_OBJECT_NIL ||
	    (o->type == MSGPACK_OBJECT_MAP && o->via.map.size == 0);
}

/* The typ and kind fields: the method, or NULL after an error reply. */
static const struct auth_method *
req_method(struct req *r, const msgpack_object **typ)
{
	const struct auth_method *m;

	if ((*typ = req_str(r, "typ")) == NULL || !req_kind(r))
		return NULL;
	if ((m = auth_method_find(*typ)) == NULL)
		conn_reply_error(r->c, r->seq,
		    "This auth method is not supported by this agent");
	return m;
}

void
act_auth(struct req *r)
{
	const struct auth_method *m;
	const msgpack_object *typ, *ident, *cur;
	msgpack_zone zone;
	msgpack_object val;
	const struct entry *rec = NULL;
	const char *err = NULL;
	char buf[640];
	double wait = 0;

	if ((typ = req_str(r, "typ")) == NULL)
		return;
	m = auth_method_find(typ);
	/* a method that knows who connected needs no ident */
	ident = proto_map_get(r->msg, "ident");
	if (ident != NULL && ident->type == MSGPACK_OBJECT_NIL)
		ident = NULL;
	if (!(m != NULL && m->ident_optional && ident == NULL) &&
	    (ident = req_str(r, "ident")) == NULL)
		return;
	msgpack_zone_init(&zone, 256);
	cur = auth_current(r->a, &zone, &val);
	conn_reply_state(r->c, r->seq, "start");
	if (ident != NULL)
		rec = auth_user_entry(r->a, typ, ident);
	if (rec != NULL && !entry_has_value(rec))
		rec = NULL;
	if (!r->hc->logged_in && cur != NULL &&
	    !(cur->via.str.size == typ->via.str.size &&
	    memcmp(cur->via.str.ptr, typ->via.str.ptr, typ->via.str.size) == 0)) {
		snprintf(buf, sizeof(buf), "Wrong auth type: %.*s",
		    (int)cur->via.str.size, cur->via.str.ptr);
		err = buf;
	} else if (m == NULL)
		err = "This auth method is not supported by this agent";
	else if ((wait = conn_login_wait(r->c)) > 0) {
		snprintf(buf, sizeof(buf), "AuthFailedError: too many failed "
		    "logins; try again in %.1f s", wait);
		err = buf;
	} else if (rec == NULL && !m->ident_optional)
		err = "No such user";
	else
		err = m->login(r, ident, &rec, buf, sizeof(buf));
	if (err != NULL) {
		msgpack_packer *pk = conn_reply(r->c, r->seq, 1, true);

		pack_key(pk, "error");
		msgpack_pack_str_with_body(pk, err, strlen(err));
		/* a login storm costs the stormer, not the agent */
		if (wait == 0 && strncmp(err, "Wrong auth type", 15) != 0)
			conn_login_failed(r->c);
	} else if (!r->hc->user_set) {
		/* spec §4.2: the first login decides; a later one only checks */
		r->hc->logged_in = true;
		r->hc->user_set = true;
		acl_user_bind(&r->hc->acl, rec);
		xlate_user_bind(&r->hc->conv, rec);
	}
	conn_reply_state(r->c, r->seq, "end");
	msgpack_zone_destroy(&zone);
}

/*
 * Run set_value/delete_value on a meta path with a request built here, so
 * auth writes get exactly the checks and reply of a client set (spec
 * §4.6: "written like set_value").  path: array elements under [nil];
 * value NULL: delete.
 */
void
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
 * Write the record {_aux: aux or {}} of a method without secrets (spec
 * §4.3, §4.5) for ident, from the request's aux and chain fields.
 */
void
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

void
act_auth_set(struct req *r)
{
	const struct auth_method *m;
	const msgpack_object *typ, *ident;

	if ((m = req_method(r, &typ)) == NULL)
		return;
	if (r->streamed && m->dialog != NULL) {
		m->dialog(r, false, NULL);
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
	m->set(r, ident);
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
			any |= entry_has_value(entry_children(users)[i]);
		if (!any || auth_method_find(typ) == NULL) {
			conn_reply_error(r->c, r->seq,
			    "You didn't configure this method yet: %.*s",
			    (int)typ->via.str.size, typ->via.str.ptr);
			return;
		}
	}
	/* old value with `current` replaced (or removed for nil) */
	msgpack_zone_init(&zone, 512);
	if (au != NULL && entry_has_value(au) &&
	    proto_unpack(entry_value(au), entry_value_len(au), &zone, &old) == 0 &&
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
	bool with_chain = nchain > 0 && rec->chain->n > 0;
	msgpack_packer *pk = conn_reply(r->c, r->seq, 3 + with_chain, stamp);

	pack_key(pk, "typ");
	msgpack_pack_object(pk, *typ);
	pack_key(pk, "kind");
	msgpack_pack_str_with_body(pk, "user", 4);
	pack_key(pk, "ident");
	conn_pack_raw(r->c, entry_name(rec), entry_name_len(rec));
	if (with_chain) {
		pack_key(pk, "chain");
		chain_pack(pk, rec->chain, nchain);
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
		if (rec == NULL || !entry_has_value(rec)) {
			conn_reply_error(r->c, r->seq, "No such user");
			return;
		}
		pack_auth_item(r, typ, rec, (unsigned)nchain, true);
		return;
	}
	conn_reply_state(r->c, r->seq, "start");
	users = auth_user_entry(r->a, typ, NULL);
	for (uint32_t i = 0; users != NULL && i < users->nchild; i++)
		if (entry_has_value(entry_children(users)[i]))
			pack_auth_item(r, typ, entry_children(users)[i],
			    (unsigned)nchain, true);
	conn_reply_state(r->c, r->seq, "end");
}

/* auth_get of a method without secrets: the aux fields and the chain. */
void
auth_get_generic(struct req *r, const struct entry *rec)
{
	const msgpack_object *aux;
	msgpack_zone zone;
	msgpack_object val;
	msgpack_packer *pk;
	uint32_t naux = 0;

	msgpack_zone_init(&zone, 512);
	if (proto_unpack(entry_value(rec), entry_value_len(rec), &zone, &val) != 0) {
		conn_reply_error(r->c, r->seq, "No such user");
		msgpack_zone_destroy(&zone);
		return;
	}
	aux = proto_map_get(&val, "_aux");
	if (aux != NULL && aux->type == MSGPACK_OBJECT_MAP)
		naux = aux->via.map.size;
	pk = conn_reply(r->c, r->seq, naux + 1, true);
	for (uint32_t i = 0; i < naux; i++) {
		msgpack_pack_object(pk, aux->via.map.ptr[i].key);
		msgpack_pack_object(pk, aux->via.map.ptr[i].val);
	}
	pack_key(pk, "chain");
	chain_pack(pk, rec->chain, CHAIN_CAP);
	msgpack_zone_destroy(&zone);
}

void
act_auth_get(struct req *r)
{
	const struct auth_method *m;
	const msgpack_object *typ, *ident;
	struct entry *rec;

	if ((m = req_method(r, &typ)) == NULL ||
	    (ident = req_str(r, "ident")) == NULL)
		return;
	if (r->streamed && m->dialog != NULL) {
		m->dialog(r, true, ident);
		return;
	}
	rec = auth_user_entry(r->a, typ, ident);
	if (rec == NULL || !entry_has_value(rec)) {
		conn_reply_error(r->c, r->seq, "No such user");
		return;
	}
	m->get(r, rec);
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
