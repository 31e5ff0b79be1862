/* proto: see proto.h. */
#include <errno.h>
#include <string.h>

#include "proto.h"

/* Bytes after the type byte that hold a length or value, by type byte. */
static int
scan_read_be(const uint8_t *p, size_t avail, unsigned width, uint64_t *out)
{
	uint64_t v = 0;
	unsigned i;

	if (avail < width)
		return -EAGAIN;
	for (i = 0; i < width; i++)
		v = (v << 8) | p[i];
	*out = v;
	return 0;
}

/*
 * Iterative walk: 'pending' counts the objects still to read at each open
 * container level, so deep input costs no C stack.
 */
int
proto_scan(const uint8_t *buf, size_t len, unsigned max_nesting,
    size_t *objlen)
{
	uint64_t pending[PROTO_MAX_NESTING + 1];
	unsigned depth = 0;
	size_t pos = 0;
	int rc;

	if (max_nesting > PROTO_MAX_NESTING)
		max_nesting = PROTO_MAX_NESTING;
	pending[0] = 1;
	for (;;) {
		uint64_t skip = 0, children = 0;
		uint8_t b;

		while (pending[depth] == 0) {
			if (depth == 0) {
				*objlen = pos;
				return 0;
			}
			depth--;
		}
		pending[depth]--;
		if (pos >= len)
			return -EAGAIN;
		b = buf[pos++];
		if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 ||
		    b == 0xc3) {
			/* fixint, nil, bool: nothing follows */
		} else if (b >= 0xa0 && b <= 0xbf) {
			skip = b & 0x1f;
		} else if (b >= 0x90 && b <= 0x9f) {
			children = b & 0x0f;
		} else if (b >= 0x80 && b <= 0x8f) {
			children = 2 * (uint64_t)(b & 0x0f);
		} else {
			unsigned w = 0;
			uint64_t n;

			switch (b) {
			case 0xc1:
				return -EPROTO;
			case 0xcc: case 0xd0: skip = 1; break;
			case 0xcd: case 0xd1: skip = 2; break;
			case 0xca: case 0xce: case 0xd2: skip = 4; break;
			case 0xcb: case 0xcf: case 0xd3: skip = 8; break;
			case 0xd4: skip = 2; break;
			case 0xd5: skip = 3; break;
			case 0xd6: skip = 5; break;
			case 0xd7: skip = 9; break;
			case 0xd8: skip = 17; break;
			case 0xc4: case 0xd9: w = 1; break;
			case 0xc5: case 0xda: w = 2; break;
			case 0xc6: case 0xdb: w = 4; break;
			case 0xc7: w = 1; break;
			case 0xc8: w = 2; break;
			case 0xc9: w = 4; break;
			case 0xdc: case 0xde: w = 2; break;
			case 0xdd: case 0xdf: w = 4; break;
			default:
				return -EPROTO;
			}
			if (w != 0) {
				if ((rc = scan_read_be(buf + pos, len - pos, w,
				    &n)) != 0)
					return rc;
				pos += w;
				if (b == 0xdc || b == 0xdd)
					children = n;
				else if (b == 0xde || b == 0xdf)
					children = 2 * n;
				else if (b >= 0xc7 && b <= 0xc9)
					skip = n + 1;	/* ext: type byte */
				else
					skip = n;
			}
		}
		if (skip > 0) {
			if (skip > len - pos)
				return -EAGAIN;
			pos += skip;
		}
		if (children > 0) {
			if (depth + 1 > max_nesting)
				return -EPROTO;
			pending[++depth] = children;
		}
	}
}

/*
 * A decoder for complete objects, in place of msgpack_unpack: that one
 * runs a general streaming state machine and cost about 850 instructions
 * for a 60-byte request, the largest single item in the agent's and the
 * client's profiles.  This one makes exactly the objects msgpack_unpack
 * makes (the same types, strings, byte strings and ext payloads pointing
 * into buf, arrays and maps in the zone) and fails where it fails: bytes
 * missing, the reserved byte 0xc1, a container (even an empty one) inside
 * PROTO_MAX_NESTING open ones (msgpack-c's stack of 32), bytes left over.
 * Callers need not have run proto_scan: every length is checked against
 * the bytes left, and a container cannot declare more elements than there
 * are bytes, so the zone never holds more than a bounded multiple of len.
 */
struct unpacker {
	const uint8_t	*p, *end;
	msgpack_zone	*zone;
	bool		 incomplete;	/* failed for want of bytes */
};

static uint64_t
unpack_be(const uint8_t *p, unsigned w)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < w; i++)
		v = (v << 8) | p[i];
	return v;
}

static int unpack_obj(struct unpacker *, msgpack_object *, unsigned);

/*
 * The elements most containers hold (map keys, path elements, small
 * numbers) without a call: 1 if o was one of them, else 0 and nothing
 * consumed.  A request is a dozen such objects, and the call per object
 * was a fifth of its decoding.
 */
static inline int
unpack_small(struct unpacker *u, msgpack_object *o)
{
	uint8_t b;
	size_t n;

	if (u->p >= u->end)
		return 0;
	b = *u->p;
	if (b <= 0x7f) {
		o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
		o->via.u64 = b;
		u->p++;
		return 1;
	}
	if ((b & 0xe0) != 0xa0 || (n = b & 0x1f) >= (size_t)(u->end - u->p))
		return 0;
	o->type = MSGPACK_OBJECT_STR;
	o->via.str.ptr = (const char *)u->p + 1;
	o->via.str.size = (uint32_t)n;
	u->p += 1 + n;
	return 1;
}

static int
unpack_container(struct unpacker *u, msgpack_object *o, uint64_t n, bool map,
    unsigned depth)
{
	size_t left = (size_t)(u->end - u->p);

	/* every element takes at least one byte */
	if (n > left || (map && 2 * n > left)) {
		u->incomplete = true;
		return -EPROTO;
	}
	if (depth >= PROTO_MAX_NESTING)
		return -EPROTO;
	if (map) {
		msgpack_object_kv *kv = msgpack_zone_malloc(u->zone,
		    (size_t)n * sizeof(*kv));

		if (kv == NULL)
			return -EPROTO;
		o->type = MSGPACK_OBJECT_MAP;
		o->via.map.size = (uint32_t)n;
		o->via.map.ptr = kv;
		for (uint64_t i = 0; i < n; i++)
			if ((!unpack_small(u, &kv[i].key) &&
			    unpack_obj(u, &kv[i].key, depth + 1) != 0) ||
			    (!unpack_small(u, &kv[i].val) &&
			    unpack_obj(u, &kv[i].val, depth + 1) != 0))
				return -EPROTO;
	} else {
		msgpack_object *a = msgpack_zone_malloc(u->zone,
		    (size_t)n * sizeof(*a));

		if (a == NULL)
			return -EPROTO;
		o->type = MSGPACK_OBJECT_ARRAY;
		o->via.array.size = (uint32_t)n;
		o->via.array.ptr = a;
		for (uint64_t i = 0; i < n; i++)
			if (!unpack_small(u, &a[i]) &&
			    unpack_obj(u, &a[i], depth + 1) != 0)
				return -EPROTO;
	}
	return 0;
}

/* type: MSGPACK_OBJECT_STR, _BIN or _EXT (whose first byte is its type) */
static int
unpack_bytes(struct unpacker *u, msgpack_object *o, uint64_t n, int type)
{
	size_t left = (size_t)(u->end - u->p);

	if (type == MSGPACK_OBJECT_EXT)
		n++;
	if (n > left) {
		u->incomplete = true;
		return -EPROTO;
	}
	o->type = (msgpack_object_type)type;
	if (type == MSGPACK_OBJECT_EXT) {
		o->via.ext.type = (int8_t)u->p[0];
		o->via.ext.ptr = (const char *)u->p + 1;
		o->via.ext.size = (uint32_t)(n - 1);
	} else {
		/* str and bin have the same layout */
		o->via.str.ptr = (const char *)u->p;
		o->via.str.size = (uint32_t)n;
	}
	u->p += n;
	return 0;
}

static int
unpack_obj(struct unpacker *u, msgpack_object *o, unsigned depth)
{
	static const uint8_t fixext_len[] = { 1, 2, 4, 8, 16 };
	uint8_t b;
	unsigned w;
	uint64_t v;

	if (u->p >= u->end) {
		u->incomplete = true;
		return -EPROTO;
	}
	b = *u->p++;
	if (b <= 0x7f) {
		o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
		o->via.u64 = b;
		return 0;
	}
	if (b >= 0xe0) {
		o->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
		o->via.i64 = (int8_t)b;
		return 0;
	}
	if (b >= 0xa0 && b <= 0xbf)
		return unpack_bytes(u, o, b & 0x1f, MSGPACK_OBJECT_STR);
	if (b >= 0x90 && b <= 0x9f)
		return unpack_container(u, o, b & 0x0f, false, depth);
	if (b <= 0x8f)
		return unpack_container(u, o, b & 0x0f, true, depth);
	switch (b) {
	case 0xc0:
		o->type = MSGPACK_OBJECT_NIL;
		return 0;
	case 0xc2:
	case 0xc3:
		o->type = MSGPACK_OBJECT_BOOLEAN;
		o->via.boolean = b == 0xc3;
		return 0;
	case 0xc1:
		return -EPROTO;
	}
	/* everything else has a fixed-width part: a number or a length */
	switch (b) {
	case 0xcc: case 0xd0: case 0xc4: case 0xd9: case 0xc7:
		w = 1; break;
	case 0xcd: case 0xd1: case 0xc5: case 0xda: case 0xc8:
	case 0xdc: case 0xde:
		w = 2; break;
	case 0xca: case 0xce: case 0xd2: case 0xc6: case 0xdb: case 0xc9:
	case 0xdd: case 0xdf:
		w = 4; break;
	case 0xcb: case 0xcf: case 0xd3:
		w = 8; break;
	default:
		/* fixext 1, 2, 4, 8, 16: a type byte, then that many */
		return unpack_bytes(u, o, fixext_len[b - 0xd4],
		    MSGPACK_OBJECT_EXT);
	}
	if ((size_t)(u->end - u->p) < w) {
		u->incomplete = true;
		return -EPROTO;
	}
	v = unpack_be(u->p, w);
	u->p += w;
	switch (b) {
	case 0xcc: case 0xcd: case 0xce: case 0xcf:
		o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
		o->via.u64 = v;
		return 0;
	case 0xd0: case 0xd1: case 0xd2: case 0xd3: {
		/* sign-extend; msgpack-c calls a non-negative one positive */
		int64_t i = (int64_t)(v << (64 - 8 * w)) >> (64 - 8 * w);

		if (i < 0) {
			o->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
			o->via.i64 = i;
		} else {
			o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
			o->via.u64 = (uint64_t)i;
		}
		return 0;
	}
	case 0xca: {
		uint32_t bits = (uint32_t)v;
		float f;

		memcpy(&f, &bits, sizeof(f));
		o->type = MSGPACK_OBJECT_FLOAT32;
		o->via.f64 = f;
		return 0;
	}
	case 0xcb:
		memcpy(&o->via.f64, &v, sizeof(o->via.f64));
		o->type = MSGPACK_OBJECT_FLOAT64;
		return 0;
	case 0xc4: case 0xc5: case 0xc6:
		return unpack_bytes(u, o, v, MSGPACK_OBJECT_BIN);
	case 0xd9: case 0xda: case 0xdb:
		return unpack_bytes(u, o, v, MSGPACK_OBJECT_STR);
	case 0xc7: case 0xc8: case 0xc9:
		return unpack_bytes(u, o, v, MSGPACK_OBJECT_EXT);
	case 0xdc: case 0xdd:
		return unpack_container(u, o, v, false, depth);
	default:	/* 0xde, 0xdf */
		return unpack_container(u, o, v, true, depth);
	}
}

int
proto_unpack(const uint8_t *buf, size_t len, msgpack_zone *zone,
    msgpack_object *out)
{
	struct unpacker u = { buf, buf + len, zone, false };

	if (buf == NULL || unpack_obj(&u, out, 0) != 0 || u.p != u.end)
		return -EPROTO;
	return 0;
}

int
proto_unpack_first(const uint8_t *buf, size_t len, msgpack_zone *zone,
    msgpack_object *out, size_t *objlen)
{
	struct unpacker u = { buf, buf + len, zone, false };

	if (unpack_obj(&u, out, 0) != 0)
		return u.incomplete ? -EAGAIN : -EPROTO;
	*objlen = (size_t)(u.p - buf);
	return 0;
}

int
proto_get_int(const msgpack_object *o, int64_t *out)
{
	if (o == NULL)
		return -EINVAL;
	if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
		if (o->via.u64 > INT64_MAX)
			return -EINVAL;
		*out = (int64_t)o->via.u64;
		return 0;
	}
	if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
		*out = o->via.i64;
		return 0;
	}
	return -EINVAL;
}

int
proto_get_uint(const msgpack_object *o, uint64_t *out)
{
	if (o == NULL || o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return -EINVAL;
	*out = o->via.u64;
	return 0;
}

static int
get_uint_upto(const msgpack_object *o, uint64_t max, uint64_t *out)
{
	uint64_t t;

	if (proto_get_uint(o, &t) != 0)
		return -EINVAL;
	if (t > max)
		return -ERANGE;
	*out = t;
	return 0;
}

int
proto_get_tick(const msgpack_object *o, uint64_t *out)
{
	return get_uint_upto(o, PROTO_MAX_TICK, out);
}

int
proto_get_tock(const msgpack_object *o, uint64_t *out)
{
	return get_uint_upto(o, PROTO_MAX_TOCK, out);
}

/*
 * Length of the valid UTF-8 sequence at s[i] (1 to 4), 0 if the bytes
 * there are not one, -1 if they may be one cut short by the end.
 */
static int
utf8_seq_len(const unsigned char *s, size_t i, size_t len)
{
	unsigned char c = s[i];
	size_t n;
	uint32_t cp;

	if (c < 0x80)
		return 1;
	else if ((c & 0xe0) == 0xc0) {
		n = 1; cp = c & 0x1f;
	} else if ((c & 0xf0) == 0xe0) {
		n = 2; cp = c & 0x0f;
	} else if ((c & 0xf8) == 0xf0) {
		n = 3; cp = c & 0x07;
	} else
		return 0;
	for (size_t k = 1; k <= n; k++) {
		if (i + k >= len)
			return -1;
		if ((s[i + k] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i + k] & 0x3f);
	}
	/* overlong forms, surrogates, beyond U+10FFFF */
	if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) ||
	    (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return (int)n + 1;
}

bool
proto_utf8_valid(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;
	uint64_t hi = 0;

	/*
	 * All ASCII, the common case (path elements, keys): one pass that
	 * only ORs the bytes together, eight at a time, the tail as one
	 * more word overlapping the last (a byte loop over the tail of
	 * short elements cost a get 100 instructions).
	 */
	if (len >= 8) {
		uint64_t w;

		for (; i + 8 <= len; i += 8) {
			memcpy(&w, s + i, 8);
			hi |= w;
		}
		memcpy(&w, s + len - 8, 8);
		hi |= w;
	} else if (len >= 4) {
		uint32_t a, b;

		memcpy(&a, s, 4);
		memcpy(&b, s + len - 4, 4);
		hi = a | b;
	} else
		for (; i < len; i++)
			hi |= s[i];
	if ((hi & 0x8080808080808080ULL) == 0)
		return true;
	i = 0;
	while (i < len) {
		int n;

		/* ASCII: eight bytes at a time */
		if (len - i >= 8) {
			uint64_t w;

			memcpy(&w, s + i, 8);
			if ((w & 0x8080808080808080ULL) == 0) {
				i += 8;
				continue;
			}
		}
		/* short elements (most path elements): no call per byte */
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		if ((n = utf8_seq_len(s, i, len)) <= 0)
			return false;
		i += (size_t)n;
	}
	return true;
}

size_t
proto_utf8_sanitize(char *str, size_t len)
{
	unsigned char *s = (unsigned char *)str;
	size_t i = 0;

	while (i < len) {
		int n = utf8_seq_len(s, i, len);

		if (n < 0)
			return i;	/* a character cut by the end */
		if (n == 0)
			s[i++] = '?';
		else
			i += (size_t)n;
	}
	return len;
}

int
proto_pack_path_elem(msgpack_packer *pk, const msgpack_object *o,
    bool allow_nil)
{
	switch (o->type) {
	case MSGPACK_OBJECT_STR:
		if (!proto_utf8_valid(o->via.str.ptr, o->via.str.size))
			return -EINVAL;
		msgpack_pack_str(pk, o->via.str.size);
		return msgpack_pack_str_body(pk, o->via.str.ptr,
		    o->via.str.size) == 0 ? 0 : -ENOMEM;
	case MSGPACK_OBJECT_BIN:
		/* spec §1.1: the empty bin and the empty str are one key */
		if (o->via.bin.size == 0)
			return msgpack_pack_str(pk, 0) == 0 ? 0 : -ENOMEM;
		msgpack_pack_bin(pk, o->via.bin.size);
		return msgpack_pack_bin_body(pk, o->via.bin.ptr,
		    o->via.bin.size) == 0 ? 0 : -ENOMEM;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		return msgpack_pack_uint64(pk, o->via.u64) == 0 ? 0 : -ENOMEM;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		return msgpack_pack_int64(pk, o->via.i64) == 0 ? 0 : -ENOMEM;
	case MSGPACK_OBJECT_NIL:
		if (!allow_nil)
			return -EINVAL;
		return msgpack_pack_nil(pk) == 0 ? 0 : -ENOMEM;
	default:
		return -EINVAL;
	}
}

int
proto_pack_canonical(msgpack_packer *pk, const msgpack_object *o)
{
	return msgpack_pack_object(pk, *o) == 0 ? 0 : -ENOMEM;
}

/* host order to big endian (msgpack's) */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define BE16(x) __builtin_bswap16(x)
#define BE32(x) __builtin_bswap32(x)
#define BE64(x) __builtin_bswap64(x)
#else
#define BE16(x) (x)
#define BE32(x) (x)
#define BE64(x) (x)
#endif

uint8_t *
proto_put_be(uint8_t *o, uint64_t v, int w)
{
	/* one store per width, not a loop per byte (every length, number
	 * and header of a reply comes through here) */
	switch (w) {
	case 1:
		*o = (uint8_t)v;
		break;
	case 2: {
		uint16_t x = BE16((uint16_t)v);

		memcpy(o, &x, 2);
		break;
	}
	case 4: {
		uint32_t x = BE32((uint32_t)v);

		memcpy(o, &x, 4);
		break;
	}
	case 8: {
		uint64_t x = BE64(v);

		memcpy(o, &x, 8);
		break;
	}
	default:
		for (int i = w - 1; i >= 0; i--)
			o[w - 1 - i] = (uint8_t)(v >> (8 * i));
	}
	return (o + w);
}


uint8_t *
proto_put_strhdr(uint8_t *o, bool bin, size_t n)
{
	if (!bin && n < 32) {
		*o++ = (uint8_t)(0xa0 | n);
		return (o);
	}
	if (n < 256) {
		*o++ = bin ? 0xc4 : 0xd9;
		return (proto_put_be(o, n, 1));
	}
	if (n < 65536) {
		*o++ = bin ? 0xc5 : 0xda;
		return (proto_put_be(o, n, 2));
	}
	*o++ = bin ? 0xc6 : 0xdb;
	return (proto_put_be(o, n, 4));
}


uint8_t *
proto_put_int(uint8_t *o, int64_t v)
{
	if (v >= 0) {
		uint64_t u = (uint64_t)v;

		if (u < 128)
			*o++ = (uint8_t)u;
		else if (u < 256) {
			*o++ = 0xcc;
			o = proto_put_be(o, u, 1);
		} else if (u < 65536) {
			*o++ = 0xcd;
			o = proto_put_be(o, u, 2);
		} else if (u < 4294967296ULL) {
			*o++ = 0xce;
			o = proto_put_be(o, u, 4);
		} else {
			*o++ = 0xcf;
			o = proto_put_be(o, u, 8);
		}
	} else if (v >= -32)
		*o++ = (uint8_t)(int8_t)v;
	else if (v >= INT8_MIN) {
		*o++ = 0xd0;
		o = proto_put_be(o, (uint64_t)v, 1);
	} else if (v >= INT16_MIN) {
		*o++ = 0xd1;
		o = proto_put_be(o, (uint64_t)v, 2);
	} else if (v >= INT32_MIN) {
		*o++ = 0xd2;
		o = proto_put_be(o, (uint64_t)v, 4);
	} else {
		*o++ = 0xd3;
		o = proto_put_be(o, (uint64_t)v, 8);
	}
	return (o);
}

int
proto_put_path_elem(uint8_t *out, const msgpack_object *o, bool allow_nil)
{
	uint8_t *p = out;

	switch (o->type) {
	case MSGPACK_OBJECT_STR:
		if (!proto_utf8_valid(o->via.str.ptr, o->via.str.size))
			return -EINVAL;
		p = proto_put_strhdr(p, false, o->via.str.size);
		memcpy(p, o->via.str.ptr, o->via.str.size);
		p += o->via.str.size;
		break;
	case MSGPACK_OBJECT_BIN:
		/* spec §1.1: the empty bin and the empty str are one key */
		p = proto_put_strhdr(p, o->via.bin.size > 0, o->via.bin.size);
		memcpy(p, o->via.bin.ptr, o->via.bin.size);
		p += o->via.bin.size;
		break;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		p = proto_put_uint(p, o->via.u64);
		break;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		p = proto_put_int(p, o->via.i64);
		break;
	case MSGPACK_OBJECT_NIL:
		if (!allow_nil)
			return -EINVAL;
		*p++ = 0xc0;
		break;
	default:
		return -EINVAL;
	}
	return (int)(p - out);
}
