/*
 * login: the distkv_login* and distkv_auth_* calls of libdistkv (spec §4,
 * docs/protocol.md "Authentication").  The password never leaves the
 * process: after diffie_hellman, its SHA-256 travels in a NaCl secretbox
 * under the shared key, as the reference's client sends it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>
#include <sodium.h>

#include "client_internal.h"
#include "dh.h"
#include "distkv.h"
#include "proto.h"

/* The reference's normal exponent size: 1024 bits, RFC 3526 group 18. */
#define LOGIN_DH_LENGTH 1024

/* What the replies of one request said. */
struct outcome {
	bool error;
	uint8_t *pubkey;
	size_t pubkey_len;
};

static int
outcome_cb(void *arg, const uint8_t *msg, size_t len)
{
	struct outcome *o = arg;
	msgpack_zone zone;
	msgpack_object m;
	const msgpack_object *pk;

	msgpack_zone_init(&zone, 512);
	if (proto_unpack(msg, len, &zone, &m) == 0) {
		if (proto_map_get(&m, "error") != NULL)
			o->error = true;
		pk = proto_map_get(&m, "pubkey");
		if (pk != NULL && pk->type == MSGPACK_OBJECT_BIN &&
		    o->pubkey == NULL &&
		    (o->pubkey = malloc(pk->via.bin.size)) != NULL) {
			memcpy(o->pubkey, pk->via.bin.ptr, pk->via.bin.size);
			o->pubkey_len = pk->via.bin.size;
		}
	}
	msgpack_zone_destroy(&zone);
	return (0);
}

/* Send the request in sb; an error item anywhere makes its kind
 * (errors.c), its text is in distkv_errmsg. */
static int
request(distkv *c, msgpack_sbuffer *sb, struct outcome *o)
{
	int rc = distkv_request(c, sb->data, sb->size, outcome_cb, o);

	if (rc == 0 && o->error) {
		const char *m = distkv_errmsg(c);

		rc = client_error_code(m, strlen(m));
	}
	return (rc);
}

/*
 * A refused login is DISTKV_EDENIED whatever the agent's words: an unknown
 * user ("No such user") must look like a wrong password to the caller.
 */
static int
login_refused(int rc)
{
	return (rc == DISTKV_ENOTFOUND || rc == DISTKV_ESERVER ? DISTKV_EDENIED :
	    rc);
}

static void
pack_str(msgpack_packer *pk, const char *s)
{
	msgpack_pack_str_with_body(pk, s, strlen(s));
}

int
distkv_dh(distkv *c)
{
	uint8_t priv[LOGIN_DH_LENGTH / 8 + 8], *pub = NULL, *unused = NULL;
	uint8_t *key;
	size_t publen, unusedlen;
	struct outcome o = { false, NULL, 0 };
	msgpack_sbuffer sb;
	msgpack_packer pk;
	bool *done;
	int rc;

	key = client_dh_key(c, &done);
	if (*done)
		return (0);
	if (sodium_init() < 0)
		return (-ENOMEM);
	randombytes_buf(priv, sizeof(priv));
	if ((rc = dh_public(LOGIN_DH_LENGTH, priv, sizeof(priv), &pub,
	    &publen)) != 0)
		goto out;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 3);
	pack_str(&pk, "action");
	pack_str(&pk, "diffie_hellman");
	pack_str(&pk, "pubkey");
	msgpack_pack_bin_with_body(&pk, pub, publen);
	pack_str(&pk, "length");
	msgpack_pack_int(&pk, LOGIN_DH_LENGTH);
	rc = request(c, &sb, &o);
	msgpack_sbuffer_destroy(&sb);
	if (rc == 0 && o.pubkey == NULL)
		rc = DISTKV_EPROTO;
	/* the agent's key is checked as the agent checks ours */
	if (rc == 0 && dh_compute(LOGIN_DH_LENGTH, priv, sizeof(priv),
	    o.pubkey, o.pubkey_len, &unused, &unusedlen, key) != 0)
		rc = DISTKV_EPROTO;
	if (rc == 0)
		*done = true;
out:
	sodium_memzero(priv, sizeof(priv));
	free(unused);
	free(pub);
	free(o.pubkey);
	return (rc);
}

/* {action, typ: password, [kind: user], ident, password: box} */
static int
password_request(distkv *c, const char *action, const char *user,
    const char *password)
{
	uint8_t digest[32], box[24 + 16 + 32], *key;
	struct outcome o = { false, NULL, 0 };
	msgpack_sbuffer sb;
	msgpack_packer pk;
	bool set = strcmp(action, "auth_set") == 0, *done;
	int rc;

	if (user == NULL || password == NULL)
		return (DISTKV_EINVAL);
	if ((rc = distkv_dh(c)) != 0)
		return (rc);
	key = client_dh_key(c, &done);
	crypto_hash_sha256(digest, (const uint8_t *)password,
	    strlen(password));
	randombytes_buf(box, crypto_secretbox_NONCEBYTES);
	crypto_secretbox_easy(box + crypto_secretbox_NONCEBYTES, digest,
	    sizeof(digest), box, key);
	sodium_memzero(digest, sizeof(digest));
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 4 + set);
	pack_str(&pk, "action");
	pack_str(&pk, action);
	pack_str(&pk, "typ");
	pack_str(&pk, "password");
	if (set) {
		pack_str(&pk, "kind");
		pack_str(&pk, "user");
	}
	pack_str(&pk, "ident");
	pack_str(&pk, user);
	pack_str(&pk, "password");
	msgpack_pack_bin_with_body(&pk, box, sizeof(box));
	rc = request(c, &sb, &o);
	msgpack_sbuffer_destroy(&sb);
	return (rc);
}

int
distkv_login_password(distkv *c, const char *user, const char *password)
{
	int rc = password_request(c, "auth", user, password);

	if (rc == 0)
		client_login_done(c);
	return (login_refused(rc));
}

int
distkv_auth_add_password(distkv *c, const char *user, const char *password)
{
	return (password_request(c, "auth_set", user, password));
}

int
distkv_login(distkv *c, const char *method, const char *ident)
{
	struct outcome o = { false, NULL, 0 };
	msgpack_sbuffer sb;
	msgpack_packer pk;
	int rc;

	if (method == NULL)
		return (DISTKV_EINVAL);
	if (ident == NULL)
		ident = "*";
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 4);
	pack_str(&pk, "action");
	pack_str(&pk, "auth");
	pack_str(&pk, "typ");
	pack_str(&pk, method);
	pack_str(&pk, "ident");
	pack_str(&pk, ident);
	pack_str(&pk, "data");
	msgpack_pack_map(&pk, 0);
	rc = request(c, &sb, &o);
	msgpack_sbuffer_destroy(&sb);
	if (rc == 0)
		client_login_done(c);
	return (login_refused(rc));
}

int
distkv_auth_set_method(distkv *c, const char *method)
{
	struct outcome o = { false, NULL, 0 };
	msgpack_sbuffer sb;
	msgpack_packer pk;
	int rc;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 2);
	pack_str(&pk, "action");
	pack_str(&pk, "set_auth_typ");
	pack_str(&pk, "typ");
	if (method != NULL)
		pack_str(&pk, method);
	else
		msgpack_pack_nil(&pk);
	rc = request(c, &sb, &o);
	msgpack_sbuffer_destroy(&sb);
	return (rc);
}

const char *
distkv_auth_method(const distkv *c)
{
	static __thread char buf[64];
	msgpack_zone zone;
	msgpack_object g;
	const msgpack_object *a;
	const void *gb;
	size_t len;

	buf[0] = '\0';
	gb = distkv_greeting(c, &len);
	msgpack_zone_init(&zone, 512);
	if (gb != NULL && proto_unpack(gb, len, &zone, &g) == 0 &&
	    (a = proto_map_get(&g, "auth")) != NULL &&
	    a->type == MSGPACK_OBJECT_ARRAY && a->via.array.size > 0 &&
	    a->via.array.ptr[0].type == MSGPACK_OBJECT_STR &&
	    a->via.array.ptr[0].via.str.size < sizeof(buf)) {
		memcpy(buf, a->via.array.ptr[0].via.str.ptr,
		    a->via.array.ptr[0].via.str.size);
		buf[a->via.array.ptr[0].via.str.size] = '\0';
	}
	msgpack_zone_destroy(&zone);
	return (buf[0] != '\0' ? buf : NULL);
}
