/*
 * proto: the msgpack helpers shared by the agent and libdistkv.
 *
 * The wire carries concatenated msgpack objects with no framing (spec §2.1),
 * so both sides must find object boundaries in a byte stream that may be
 * hostile.  proto_scan() walks the bytes without allocating: it rejects
 * nesting deeper than a limit and reports the exact length of the first
 * complete object, so msgpack-c only ever unpacks objects whose every element
 * is present in the buffer (which bounds its allocation by the input size).
 *
 * Not installed; linked into distkv-agent and libdistkv.  No I/O, no globals.
 */
#ifndef DISTKV_PROTO_H
#define DISTKV_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <msgpack.h>

/* Deepest container nesting accepted anywhere on the wire. */
#define PROTO_MAX_NESTING 32
/* Most elements in a path. */
#define PROTO_MAX_PATH_DEPTH 64
/*
 * Longest path: the canonical msgpack array of the whole path (from the
 * real root), and the string or byte string of one element.  They bound
 * what one request can make the agent keep per entry.
 */
#define PROTO_MAX_PATH_BYTES 16384
#define PROTO_MAX_ELEM_BYTES 4096
/* Longest node name (bytes). */
#define PROTO_MAX_NODE_NAME 128
/*
 * Highest tick and tock accepted from anywhere (clients, Serf, peers,
 * files) and made here: 2^53 - 1, the largest integer every JSON reader
 * holds exactly.  Far below 2^64, so "tick + 1" and the three tock stamps
 * of a change can never wrap; a million changes a second would need 285
 * years to reach it.  A node at the ceiling refuses new changes with a
 * clear error rather than reuse a tick or let a tock go backwards.
 */
#define PROTO_MAX_TICK ((UINT64_C(1) << 53) - 1)
#define PROTO_MAX_TOCK PROTO_MAX_TICK

/*
 * Find the first complete msgpack object in buf[0..len).
 * Returns 0 and sets *objlen, -EAGAIN if more bytes are needed, -EPROTO if
 * the bytes can never be valid msgpack (reserved byte 0xc1) or nest deeper
 * than max_nesting.
 */
int proto_scan(const uint8_t *buf, size_t len, unsigned max_nesting,
    size_t *objlen);

/*
 * Unpack exactly one object of len bytes (as found by proto_scan) into zone.
 * Returns 0 or -EPROTO.
 */
int proto_unpack(const uint8_t *buf, size_t len, msgpack_zone *zone,
    msgpack_object *out);

/*
 * proto_scan and proto_unpack in one pass, for a buffer that holds few
 * bytes (each call may unpack the whole buffer): unpack the first object
 * in buf[0..len) into zone and set *objlen.  Returns 0, -EAGAIN if more
 * bytes are needed (whatever it put in zone is garbage then), or -EPROTO
 * (what proto_unpack refuses: 0xc1, nesting past PROTO_MAX_NESTING).
 */
int proto_unpack_first(const uint8_t *buf, size_t len, msgpack_zone *zone,
    msgpack_object *out, size_t *objlen);

/*
 * Look up a string key in a map object; NULL if absent or not a map.
 * Inline: every request takes eight or so of these, and with the key a
 * literal the compiler folds its strlen and memcmp into a few compares
 * (out of line they were 700 of a get request's 3,800 instructions).
 */
static inline const msgpack_object *
proto_map_get(const msgpack_object *map, const char *key)
{
	size_t n = __builtin_strlen(key);

	if (map == NULL || map->type != MSGPACK_OBJECT_MAP)
		return NULL;
	for (uint32_t i = 0; i < map->via.map.size; i++) {
		const msgpack_object *k = &map->via.map.ptr[i].key;

		if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
		    __builtin_memcmp(k->via.str.ptr, key, n) == 0)
			return &map->via.map.ptr[i].val;
	}
	return NULL;
}

/*
 * memcpy for the packers' write callbacks, which get 1 to 9 bytes at a
 * time (a header, a number) far more often than anything long: overlapping
 * fixed-size moves the compiler inlines, no call.
 */
static inline void
proto_copy(void *dst, const void *src, size_t n)
{
	char *d = dst;
	const char *s = src;

	if (n > 16)
		__builtin_memcpy(d, s, n);
	else if (n >= 8) {
		__builtin_memcpy(d, s, 8);
		__builtin_memcpy(d + n - 8, s + n - 8, 8);
	} else if (n >= 4) {
		__builtin_memcpy(d, s, 4);
		__builtin_memcpy(d + n - 4, s + n - 4, 4);
	} else if (n > 0) {
		d[0] = s[0];
		d[n / 2] = s[n / 2];
		d[n - 1] = s[n - 1];
	}
}

/* True if o is a msgpack str equal to s. */
static inline bool
proto_str_eq(const msgpack_object *o, const char *s)
{
	/* inline: a literal's length folds (a call with a strlen cost 60
	 * instructions, twice a request in the agent's dispatch) */
	size_t n = __builtin_strlen(s);

	return o != NULL && o->type == MSGPACK_OBJECT_STR &&
	    o->via.str.size == n && __builtin_memcmp(o->via.str.ptr, s, n) == 0;
}

/* Integer value of o (positive or negative integer).  Returns 0 or -EINVAL. */
int proto_get_int(const msgpack_object *o, int64_t *out);
int proto_get_uint(const msgpack_object *o, uint64_t *out);
/* A tick (0..PROTO_MAX_TICK) or tock (0..PROTO_MAX_TOCK); -EINVAL/-ERANGE. */
int proto_get_tick(const msgpack_object *o, uint64_t *out);
int proto_get_tock(const msgpack_object *o, uint64_t *out);

/* True if s[0..len) is valid UTF-8. */
bool proto_utf8_valid(const char *s, size_t len);
/*
 * Make s[0..len) valid UTF-8 in place, for texts cut to fit a buffer:
 * a character cut off at the end is dropped, any other invalid byte
 * becomes '?'.  Returns the new length.
 */
size_t proto_utf8_sanitize(char *s, size_t len);

/*
 * Pack one path element in canonical form (spec §1.1, our choices):
 * str stays str (must be UTF-8), empty bin becomes empty str, other bin stays
 * bin, integers are packed by value in the smallest width, nil is allowed
 * only if allow_nil.  Floats, bools, arrays and maps give -EINVAL.
 */
int proto_pack_path_elem(msgpack_packer *pk, const msgpack_object *o,
    bool allow_nil);

/*
 * The same canonical element written directly into out, which must hold
 * 9 bytes plus the element's string length.  Returns the bytes written or
 * -EINVAL.  (The agent's hot path: no packer callbacks.)
 */
int proto_put_path_elem(uint8_t *out, const msgpack_object *o,
    bool allow_nil);
/*
 * proto_put_path_elem's common case inline: o a str of at most 31 bytes,
 * all ASCII, written as a fixstr.  Returns the bytes written, or 0 (out
 * partly written) when o is not such a str: then call proto_put_path_elem.
 * out must hold 1 + its length bytes.  The copy and the ASCII test read
 * each byte once, as words (a call per element to the general writer, its
 * UTF-8 check and its header writer cost a four-element path 200
 * instructions).
 */
static inline int
proto_put_short_ascii_elem(uint8_t *out, const msgpack_object *o)
{
	const char *s = o->via.str.ptr;
	size_t n = o->via.str.size;
	uint8_t *d = out + 1;
	uint64_t a, b, c, e, hi;

	if (o->type != MSGPACK_OBJECT_STR || n > 31)
		return 0;
	/* overlapping words cover every length: [0,16) and [n-16,n) */
	if (n >= 16) {
		__builtin_memcpy(&a, s, 8);
		__builtin_memcpy(&b, s + 8, 8);
		__builtin_memcpy(&c, s + n - 16, 8);
		__builtin_memcpy(&e, s + n - 8, 8);
		__builtin_memcpy(d, &a, 8);
		__builtin_memcpy(d + 8, &b, 8);
		__builtin_memcpy(d + n - 16, &c, 8);
		__builtin_memcpy(d + n - 8, &e, 8);
		hi = a | b | c | e;
	} else if (n >= 8) {
		__builtin_memcpy(&a, s, 8);
		__builtin_memcpy(&e, s + n - 8, 8);
		__builtin_memcpy(d, &a, 8);
		__builtin_memcpy(d + n - 8, &e, 8);
		hi = a | e;
	} else if (n >= 4) {
		uint32_t x, y;

		__builtin_memcpy(&x, s, 4);
		__builtin_memcpy(&y, s + n - 4, 4);
		__builtin_memcpy(d, &x, 4);
		__builtin_memcpy(d + n - 4, &y, 4);
		hi = x | y;
	} else {
		hi = 0;
		for (size_t i = 0; i < n; i++) {
			d[i] = (uint8_t)s[i];
			hi |= d[i];
		}
	}
	if ((hi & 0x8080808080808080ULL) != 0)
		return 0;
	out[0] = (uint8_t)(0xa0 | n);
	return (int)n + 1;
}

/* Shortest msgpack forms, as msgpack-c writes them; return the end. */
uint8_t *proto_put_be(uint8_t *o, uint64_t v, int width);
uint8_t *proto_put_strhdr(uint8_t *o, bool bin, size_t n);
uint8_t *proto_put_int(uint8_t *o, int64_t v);

static inline uint8_t *
proto_put_uint(uint8_t *o, uint64_t v)
{
	if (v <= INT64_MAX)
		return (proto_put_int(o, (int64_t)v));
	*o++ = 0xcf;
	return (proto_put_be(o, v, 8));
}

/* A map header for n pairs (at most 5 bytes). */
static inline uint8_t *
proto_put_maphdr(uint8_t *o, size_t n)
{
	if (n < 16) {
		*o++ = (uint8_t)(0x80 | n);
		return (o);
	}
	if (n < 65536) {
		*o++ = 0xde;
		return (proto_put_be(o, n, 2));
	}
	*o++ = 0xdf;
	return (proto_put_be(o, n, 4));
}

/* A str, for a literal map key: its strlen folds to a constant, and so
 * does the header's form. */
static inline uint8_t *
proto_put_key(uint8_t *o, const char *k)
{
	size_t n = strlen(k);

	if (n < 32)
		*o++ = (uint8_t)(0xa0 | n);
	else
		o = proto_put_strhdr(o, false, n);
	memcpy(o, k, n);
	return (o + n);
}

/*
 * Pack an object in canonical form: msgpack-c chooses the smallest encoding
 * for every integer, string and container header, so two equal values always
 * give equal bytes (spec §8.26: type + value equality, integers by value).
 */
int proto_pack_canonical(msgpack_packer *pk, const msgpack_object *o);

#endif
