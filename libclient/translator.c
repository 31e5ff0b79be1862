/*
 * translator: libdistkv's calls that write the records of spec §5 (types,
 * matches, codecs, converters; docs/translator.md).  Each builds the
 * record the agent expects and writes it under the meta root with the
 * checks of set_value, so the agent's refusal ("Must have check-good
 * values", "This type does not exist", ...) is DISTKV_ESERVER with its
 * text in distkv_errmsg().
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "client_internal.h"
#include "distkv.h"

static void
pack_str(msgpack_packer *pk, const char *s)
{
	msgpack_pack_str_with_body(pk, s, strlen(s));
}

/* (nil, kind[, name], elements of text...) */
static int
meta_path(const char *kind, const char *name, const char *text,
    distkv_path **out)
{
	distkv_path *p = NULL, *rest = NULL;
	struct distkv_elem el;
	int rc;

	if (text == NULL || (rc = distkv_path_parse(text, &rest)) != 0)
		return (DISTKV_EINVAL);
	if ((rc = distkv_path_new(&p)) != 0)
		goto out;
	distkv_path_push_nil(p);
	distkv_path_push_str(p, kind, strlen(kind));
	if (name != NULL)
		distkv_path_push_str(p, name, strlen(name));
	for (size_t i = 0; rc == 0 && i < distkv_path_len(rest); i++) {
		distkv_path_elem(rest, i, &el);
		rc = el.type == DISTKV_ELEM_STR ?
		    distkv_path_push_str(p, el.s, el.len) :
		    el.type == DISTKV_ELEM_BIN ?
		    distkv_path_push_bin(p, el.s, el.len) :
		    el.type == DISTKV_ELEM_INT ?
		    distkv_path_push_int(p, el.i) : DISTKV_EINVAL;
	}
out:
	distkv_path_free(rest);
	if (rc != 0)
		distkv_path_free(p);
	else
		*out = p;
	return (rc);
}

/* A msgpack array given by the caller, or an empty one. */
static int
pack_array(msgpack_packer *pk, msgpack_sbuffer *sb, const void *v,
    size_t len)
{
	struct distkv_value chk = { NULL, 0 };

	if (v == NULL || len == 0) {
		msgpack_pack_array(pk, 0);
		return (0);
	}
	/* exactly one object, and an array */
	if (distkv_value_from_msgpack(&chk, v, len) != 0)
		return (DISTKV_EINVAL);
	distkv_value_clear(&chk);
	if (!((((const uint8_t *)v)[0] & 0xf0) == 0x90 ||
	    ((const uint8_t *)v)[0] == 0xdc || ((const uint8_t *)v)[0] == 0xdd))
		return (DISTKV_EINVAL);
	return (msgpack_sbuffer_write(sb, v, len) == 0 ? 0 : -ENOMEM);
}

static int
write_record(distkv *c, const char *kind, const char *name,
    const char *text, msgpack_sbuffer *sb)
{
	distkv_path *p;
	int rc;

	if ((rc = meta_path(kind, name, text, &p)) != 0)
		return (rc);
	rc = distkv_set(c, p, sb->data, sb->size, NULL, NULL);
	distkv_path_free(p);
	return (rc);
}

int
distkv_type_set(distkv *c, const char *type, const char *code,
    const void *good, size_t good_len, const void *bad, size_t bad_len,
    const void *schema, size_t schema_len)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	struct distkv_value chk = { NULL, 0 };
	int rc;

	if (schema != NULL && distkv_value_from_msgpack(&chk, schema,
	    schema_len) != 0)
		return (DISTKV_EINVAL);
	distkv_value_clear(&chk);
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 3 + (code != NULL) + (schema != NULL));
	pack_str(&pk, "good");
	if ((rc = pack_array(&pk, &sb, good, good_len)) != 0)
		goto out;
	pack_str(&pk, "bad");
	if ((rc = pack_array(&pk, &sb, bad, bad_len)) != 0)
		goto out;
	pack_str(&pk, "lang");
	pack_str(&pk, "lua");
	if (code != NULL) {
		pack_str(&pk, "code");
		pack_str(&pk, code);
	}
	if (schema != NULL) {
		pack_str(&pk, "schema");
		msgpack_sbuffer_write(&sb, schema, schema_len);
	}
	rc = write_record(c, "type", NULL, type, &sb);
out:
	msgpack_sbuffer_destroy(&sb);
	return (rc);
}

/* {field: [elements of text]}: a match's type, a converter's codec. */
static int
names_record(distkv *c, const char *kind, const char *name,
    const char *pattern, const char *field, const char *text)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	distkv_path *t;
	struct distkv_elem el;
	int rc;

	if (text == NULL || distkv_path_parse(text, &t) != 0)
		return (DISTKV_EINVAL);
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 1);
	pack_str(&pk, field);
	msgpack_pack_array(&pk, (uint32_t)distkv_path_len(t));
	for (size_t i = 0; i < distkv_path_len(t); i++) {
		distkv_path_elem(t, i, &el);
		if (el.type == DISTKV_ELEM_STR)
			msgpack_pack_str_with_body(&pk, el.s, el.len);
		else if (el.type == DISTKV_ELEM_INT)
			msgpack_pack_int64(&pk, el.i);
		else
			msgpack_pack_bin_with_body(&pk, el.s, el.len);
	}
	distkv_path_free(t);
	rc = write_record(c, kind, name, pattern, &sb);
	msgpack_sbuffer_destroy(&sb);
	return (rc);
}

int
distkv_match_set(distkv *c, const char *pattern, const char *type)
{
	return (names_record(c, "match", NULL, pattern, "type", type));
}

int
distkv_conv_set(distkv *c, const char *conv, const char *pattern,
    const char *codec)
{
	if (conv == NULL || *conv == '\0')
		return (DISTKV_EINVAL);
	return (names_record(c, "conv", conv, pattern, "codec", codec));
}

int
distkv_codec_set(distkv *c, const char *codec, const char *decode,
    const char *encode, const void *in, size_t in_len, const void *out,
    size_t out_len)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	int rc;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 5);
	pack_str(&pk, "lang");
	pack_str(&pk, "lua");
	pack_str(&pk, "decode");
	if (decode != NULL)
		pack_str(&pk, decode);
	else
		msgpack_pack_nil(&pk);
	pack_str(&pk, "encode");
	if (encode != NULL)
		pack_str(&pk, encode);
	else
		msgpack_pack_nil(&pk);
	pack_str(&pk, "in");
	if ((rc = pack_array(&pk, &sb, in, in_len)) == 0) {
		pack_str(&pk, "out");
		rc = pack_array(&pk, &sb, out, out_len);
	}
	if (rc == 0)
		rc = write_record(c, "codec", NULL, codec, &sb);
	msgpack_sbuffer_destroy(&sb);
	return (rc);
}

int
distkv_translator_delete(distkv *c, const char *kind, const char *name)
{
	distkv_path *p;
	int rc;

	if (kind == NULL || (strcmp(kind, "type") != 0 &&
	    strcmp(kind, "match") != 0 && strcmp(kind, "codec") != 0 &&
	    strcmp(kind, "conv") != 0))
		return (DISTKV_EINVAL);
	if ((rc = meta_path(kind, NULL, name, &p)) != 0)
		return (rc);
	rc = distkv_delete(c, p, NULL, NULL);
	distkv_path_free(p);
	return (rc);
}
