/* auth_password: see auth_password.h. */
#include <errno.h>
#include <string.h>

#include <stdio.h>
#include <stdlib.h>

#include "agent.h"
#include "auth_method.h"
#include "auth_password.h"
#include "handlers.h"
#include "handlers_internal.h"
#include "proto.h"
#include "server.h"
#include "tree.h"

int
auth_password_open(const uint8_t key[32], const msgpack_object *o,
    uint8_t digest[AUTH_PASSWORD_DIGEST])
{
	const uint8_t *b;

	if (o == NULL || o->type != MSGPACK_OBJECT_BIN ||
	    o->via.bin.size != AUTH_PASSWORD_BOX)
		return -EINVAL;
	b = (const uint8_t *)o->via.bin.ptr;
	if (crypto_secretbox_open_easy(digest, b + crypto_secretbox_NONCEBYTES,
	    AUTH_PASSWORD_BOX - crypto_secretbox_NONCEBYTES, b, key) != 0)
		return -EINVAL;
	return 0;
}

int
auth_password_hash(const uint8_t digest[AUTH_PASSWORD_DIGEST],
    char out[crypto_pwhash_STRBYTES])
{
	if (crypto_pwhash_str_alg(out, (const char *)digest,
	    AUTH_PASSWORD_DIGEST, AUTH_PASSWORD_OPSLIMIT,
	    AUTH_PASSWORD_MEMLIMIT, crypto_pwhash_ALG_ARGON2ID13) != 0)
		return -ENOMEM;
	return 0;
}

/*
 * Is the cost a stored Argon2 string asks for ("$m=KiB,t=passes,p=lanes")
 * within AUTH_PASSWORD_MAX_*?  crypto_pwhash_str_verify takes the cost
 * from the string, and whoever can write a record (set_internal on
 * (nil, auth, password, user, X), a peer's update, a --load file) chooses
 * it: such a record (m=4 GiB, t=100000; written for fuzz_auth by hand)
 * froze the agent at the first login as X
 * (tests/fuzz/regressions/auth/argon2-cost-stored).
 */
static bool
hash_cost_ok(const char *s)
{
	const char *p = strstr(s, "$m=");
	unsigned long m, t, lanes;

	if (p == NULL || sscanf(p, "$m=%lu,t=%lu,p=%lu$", &m, &t,
	    &lanes) != 3)
		return false;
	return m <= AUTH_PASSWORD_MAX_MEMLIMIT / 1024 &&
	    t <= AUTH_PASSWORD_MAX_OPSLIMIT && lanes == 1;
}

bool
auth_password_verify(const msgpack_object *record,
    const uint8_t digest[AUTH_PASSWORD_DIGEST])
{
	const msgpack_object *pw = proto_map_get(record, "password");
	char str[crypto_pwhash_STRBYTES];

	if (pw == NULL)
		return false;
	if (pw->type == MSGPACK_OBJECT_BIN &&
	    pw->via.bin.size == AUTH_PASSWORD_DIGEST)
		return sodium_memcmp(pw->via.bin.ptr, digest,
		    AUTH_PASSWORD_DIGEST) == 0;
	if (pw->type != MSGPACK_OBJECT_STR || pw->via.str.size == 0 ||
	    pw->via.str.size >= sizeof(str))
		return false;
	memcpy(str, pw->via.str.ptr, pw->via.str.size);
	str[pw->via.str.size] = '\0';
	if (!hash_cost_ok(str))
		return false;
	return crypto_pwhash_str_verify(str, (const char *)digest,
	    AUTH_PASSWORD_DIGEST) == 0;
}

bool
auth_password_name_ok(const char *s, size_t len)
{
	if (len == 0 || !((s[0] >= 'a' && s[0] <= 'z') ||
	    (s[0] >= 'A' && s[0] <= 'Z')))
		return false;
	for (size_t i = 1; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return false;
	return true;
}

/* ---- the method (auth_method.h) ---- */

/*
 * The password method's login check: NULL if the box in the request holds
 * the digest the record accepts, else the error text (in buf).
 */
static const char *
password_login(struct req *r, const msgpack_object *ident,
    const struct entry **rec, char *buf, size_t cap)
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
	ok = proto_unpack(entry_value(*rec), entry_value_len(*rec), &zone,
	    &val) == 0 &&
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

static void
password_get(struct req *r, const struct entry *rec)
{
	(void)rec;
	/* no secret leaves: not even its hash (spec §4.4: {}) */
	conn_reply(r->c, r->seq, 0, true);
}

const struct auth_method auth_method_password = {
	.name = "password",
	.login = password_login,
	.set = auth_set_password,
	.get = password_get,
};
