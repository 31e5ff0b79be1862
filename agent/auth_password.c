/* auth_password: see auth_password.h. */
#include <errno.h>
#include <string.h>

#include "auth_password.h"
#include "proto.h"

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
