/*
 * mp - the small msgpack reader and writer of distkv-cli.
 *
 * libdistkv hands values over as encoded msgpack bytes.  The CLI only needs
 * to walk them once (to print them) and to build them from parsed JSON, so
 * it carries this cursor-style codec instead of linking msgpack-c itself
 * (libdistkv's own msgpack dependency is private to the library).
 *
 * The reader never allocates and never reads outside [p, end): every length
 * is checked against the remaining bytes first.  The writer produces the
 * smallest encoding of every integer, string and container header, as
 * msgpack-c does, so equal values give equal bytes.
 *
 * No I/O, no globals.
 */
#ifndef DISTKV_CLI_MP_H
#define DISTKV_CLI_MP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum mp_type {
	MP_NIL,
	MP_BOOL,
	MP_INT,		/* signed: i */
	MP_UINT,	/* unsigned: u (always used for values >= 0) */
	MP_FLOAT,	/* d; len 4 if it was a float32 (widened), else 8 */
	MP_STR,		/* s, len */
	MP_BIN,		/* s, len */
	MP_EXT,		/* ext_type, s, len */
	MP_ARRAY,	/* n items follow */
	MP_MAP,		/* n key/value pairs follow */
};

struct mp_tok {
	enum mp_type type;
	bool b;
	int64_t i;
	uint64_t u;
	double d;
	const char *s;
	size_t len;
	int8_t ext_type;
	uint32_t n;
};

struct mp_reader {
	const uint8_t *p;
	const uint8_t *end;
};

void mp_reader_init(struct mp_reader *r, const void *data, size_t len);
/* Read the next token.  Returns 0, or -1 on truncated or invalid bytes. */
int mp_next(struct mp_reader *r, struct mp_tok *t);
/* Skip one whole object (nested up to depth).  Returns 0 or -1. */
int mp_skip(struct mp_reader *r, int depth);

/* A growable output buffer. */
struct mp_buf {
	uint8_t *buf;
	size_t len;
	size_t cap;
};

void mp_buf_free(struct mp_buf *b);
/* All writers return 0 or -1 (out of memory). */
int mp_put_nil(struct mp_buf *b);
int mp_put_bool(struct mp_buf *b, bool v);
int mp_put_int(struct mp_buf *b, int64_t v);
int mp_put_uint(struct mp_buf *b, uint64_t v);
int mp_put_double(struct mp_buf *b, double v);
int mp_put_str(struct mp_buf *b, const char *s, size_t len);
int mp_put_bin(struct mp_buf *b, const void *s, size_t len);
int mp_put_ext(struct mp_buf *b, int8_t type, const void *s, size_t len);
int mp_put_array(struct mp_buf *b, uint32_t n);
int mp_put_map(struct mp_buf *b, uint32_t n);

#endif
