/*
 * mpjson: conversion between msgpack values and JSON text, in the mapping
 * that docs/cli.md ("Values") documents for distkv-cli.  The agent uses the
 * same parser for its --init VALUE.
 *
 * JSON is parsed with jansson and packed with msgpack-c's packer; msgpack
 * is read as msgpack_object.  JSON text is written by hand because jansson
 * cannot hold integers above INT64_MAX, and every msgpack value needs an
 * exact, loss-free text form: uint64 above INT64_MAX, byte strings
 * ({"$bin":"hex"}), ext types ({"$ext":[type,"hex"]}), maps with keys that
 * are not strings ({"$map":[[key,value],...]}), floats with the fewest
 * digits that read back as the same float.  The parser accepts the same
 * forms, so printed values read back as the same value.
 *
 * Text goes into a msgpack_sbuffer used as a plain byte buffer (not NUL
 * terminated).  Every function leaves its output untouched on failure.
 * Returns: 0, -ENOMEM, -EINVAL (bad JSON or a value without JSON form),
 * -EPROTO (bytes that are not exactly one msgpack object).
 *
 * No I/O, no globals; linked into libproto.
 */
#ifndef DISTKV_MPJSON_H
#define DISTKV_MPJSON_H

#include <stddef.h>

#include <msgpack.h>

/* Deepest nesting converted from JSON (msgpack input: PROTO_MAX_NESTING). */
#define MPJSON_MAX_DEPTH 64

/* Flags of mpjson_format(). */
enum {
	MPJSON_BARE_STR = 1,	/* a top-level str is written as its bytes */
	MPJSON_BARE_BIN = 2,	/* a top-level bin is written as its bytes */
};

/* Append s[0..len) as a JSON string literal; invalid UTF-8 becomes U+FFFD. */
int mpjson_put_string(msgpack_sbuffer *out, const char *s, size_t len);

/*
 * Append o as compact JSON, or with flags a bare top-level string/bytes.
 * Returns 0, -ENOMEM, or -EINVAL if o nests deeper than MPJSON_MAX_DEPTH.
 */
int mpjson_format(msgpack_sbuffer *out, const msgpack_object *o, int flags);

/*
 * The same for encoded bytes, which must be exactly one msgpack object
 * (checked with proto_scan() before msgpack-c unpacks it); -EPROTO if not.
 */
int mpjson_format_bytes(msgpack_sbuffer *out, const void *data, size_t len,
    int flags);

/*
 * Parse the JSON text (any type at the top) and pack it as one msgpack
 * value with pk, integers in their smallest encoding.  On failure nothing
 * is packed and err holds a message: -EINVAL for bad JSON, integers outside
 * int64/uint64, malformed tagged forms or nesting deeper than
 * MPJSON_MAX_DEPTH; -ENOMEM.
 */
int mpjson_parse(msgpack_packer *pk, const char *text, char *err,
    size_t errlen);

#endif
