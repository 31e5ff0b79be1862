/*
 * value - conversion between msgpack values and the text forms of
 * distkv-cli (docs/cli.md, "Values").
 *
 * JSON is parsed with jansson.  Output is written by hand so that every
 * msgpack value has an exact, loss-free text form: uint64 above INT64_MAX,
 * byte strings ({"$bin":"hex"}), ext types ({"$ext":[type,"hex"]}) and maps
 * with keys that are not strings ({"$map":[[key,value],...]}).  The parser
 * accepts the same forms, so printed values can be fed back with -j.
 *
 * No I/O, no globals.
 */
#ifndef DISTKV_CLI_VALUE_H
#define DISTKV_CLI_VALUE_H

#include <stdbool.h>
#include <stddef.h>

#include "mp.h"

/* Deepest nesting converted in either direction. */
#define VALUE_MAX_DEPTH 64

/* Flags of value_format. */
enum {
	VALUE_BARE_STR = 1,	/* a top-level str is written as its bytes */
	VALUE_BARE_BIN = 2,	/* a top-level bin is written as its bytes */
};

/* Append text to a buffer.  Return 0 or -1 (out of memory). */
int value_puts(struct mp_buf *out, const char *s);
int value_putn(struct mp_buf *out, const char *s, size_t len);
/* Append s as a JSON string literal; invalid UTF-8 becomes U+FFFD. */
int value_json_string(struct mp_buf *out, const char *s, size_t len);

/*
 * Append the msgpack value (data, len) as compact JSON (flags 0) or with a
 * bare top-level string/bytes.  Returns 0, or -1 if the bytes are not
 * exactly one valid msgpack object (or out of memory).
 */
int value_format(struct mp_buf *out, const void *data, size_t len, int flags);

/*
 * Parse JSON text into one msgpack value appended to out.  On failure
 * returns -1 with a message in err.
 */
int value_parse_json(const char *text, struct mp_buf *out, char *err,
    size_t errlen);

/* True if s[0..len) is valid UTF-8. */
bool value_utf8_valid(const char *s, size_t len);

#endif
