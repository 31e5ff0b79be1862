/* Unit tests of libclient/proto.c: stream framing and canonical forms. */
#include <errno.h>
#include <string.h>

#include <criterion/criterion.h>

#include <netinet/in.h>
#include <sys/socket.h>

#include "hostport.h"
#include "proto.h"

static size_t
pack_sample(uint8_t *out, size_t cap)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	size_t n;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 3);
	msgpack_pack_str_with_body(&pk, "seq", 3);
	msgpack_pack_uint64(&pk, 70000);
	msgpack_pack_str_with_body(&pk, "path", 4);
	msgpack_pack_array(&pk, 2);
	msgpack_pack_str_with_body(&pk, "a", 1);
	msgpack_pack_bin_with_body(&pk, "\x01\x02", 2);
	msgpack_pack_str_with_body(&pk, "value", 5);
	msgpack_pack_double(&pk, 1.5);
	n = sb.size;
	cr_assert(n <= cap);
	memcpy(out, sb.data, n);
	msgpack_sbuffer_destroy(&sb);
	return n;
}

Test(proto, scan_finds_exact_object_length)
{
	uint8_t buf[256];
	size_t n = pack_sample(buf, sizeof(buf)), len;

	memcpy(buf + n, buf, n);	/* two objects back to back */
	cr_assert_eq(proto_scan(buf, 2 * n, PROTO_MAX_NESTING, &len), 0);
	cr_assert_eq(len, n);
}

Test(proto, scan_every_prefix_is_incomplete)
{
	uint8_t buf[256];
	size_t n = pack_sample(buf, sizeof(buf)), len;

	for (size_t i = 0; i < n; i++)
		cr_assert_eq(proto_scan(buf, i, PROTO_MAX_NESTING, &len),
		    -EAGAIN, "prefix %zu", i);
}

Test(proto, scan_rejects_reserved_byte)
{
	uint8_t bad[] = { 0x81, 0xa1, 'a', 0xc1 };
	size_t len;

	cr_assert_eq(proto_scan(bad, sizeof(bad), PROTO_MAX_NESTING, &len),
	    -EPROTO);
}

Test(proto, scan_rejects_deep_nesting)
{
	uint8_t deep[40];
	size_t len;

	memset(deep, 0x91, sizeof(deep));	/* [[[[...]]]] */
	deep[sizeof(deep) - 1] = 0xc0;
	cr_assert_eq(proto_scan(deep, sizeof(deep), PROTO_MAX_NESTING, &len),
	    -EPROTO);
	cr_assert_eq(proto_scan(deep + 10, sizeof(deep) - 10, 32, &len), 0);
}

Test(proto, huge_declared_length_is_incomplete_not_allocated)
{
	/* array32 claiming 4 billion elements, str32 claiming 4 GB */
	uint8_t arr[] = { 0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0 };
	uint8_t str[] = { 0xdb, 0xff, 0xff, 0xff, 0xff, 'x' };
	size_t len;

	cr_assert_eq(proto_scan(arr, sizeof(arr), 32, &len), -EAGAIN);
	cr_assert_eq(proto_scan(str, sizeof(str), 32, &len), -EAGAIN);
}

Test(proto, unpack_and_map_lookup)
{
	uint8_t buf[256];
	size_t n = pack_sample(buf, sizeof(buf));
	msgpack_zone z;
	msgpack_object o;
	uint64_t seq;

	msgpack_zone_init(&z, 1024);
	cr_assert_eq(proto_unpack(buf, n, &z, &o), 0);
	cr_assert_eq(proto_get_uint(proto_map_get(&o, "seq"), &seq), 0);
	cr_assert_eq(seq, 70000);
	cr_assert_null(proto_map_get(&o, "nope"));
	cr_assert(proto_str_eq(&proto_map_get(&o, "path")->via.array.ptr[0],
	    "a"));
	cr_assert_neq(proto_unpack(buf, n - 1, &z, &o), 0);
	msgpack_zone_destroy(&z);
}

/* ---- proto_unpack against msgpack_unpack, on random input ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint32_t
rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state >> 11);
}

static size_t
put_be(uint8_t *o, uint64_t v, unsigned w)
{
	for (unsigned i = 0; i < w; i++)
		o[i] = (uint8_t)(v >> (8 * (w - 1 - i)));
	return w;
}

/*
 * Write one random object of every msgpack form (each width of every
 * integer, float32 and 64, every str/bin/ext header, fixext, containers
 * in each header size) into o, which has room for cap bytes; returns the
 * bytes written (0: out of room).
 */
static size_t
gen_obj(uint8_t *o, size_t cap, unsigned depth)
{
	static const uint8_t heads[] = {
		0x05, 0x7f, 0xe0, 0xff, 0xc0, 0xc2, 0xc3, 0xcc, 0xcd, 0xce,
		0xcf, 0xd0, 0xd1, 0xd2, 0xd3, 0xca, 0xcb, 0xa3, 0xd9, 0xda,
		0xdb, 0xc4, 0xc5, 0xc6, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xc7,
		0xc8, 0xc9, 0x93, 0x90, 0xdc, 0xdd, 0x82, 0x80, 0xde, 0xdf,
	};
	uint8_t b;
	size_t n = 0, len = 0, k;
	unsigned w = 0, items = 0;

	if (cap < 64)
		return 0;
	b = heads[rng() % sizeof(heads)];
	if (depth > 6 && (b >= 0x80 && b <= 0x9f))
		b = 0xc0;
	if (depth > 6 && (b == 0xdc || b == 0xdd || b == 0xde || b == 0xdf))
		b = 0xc3;
	o[n++] = b;
	switch (b) {
	case 0xcc: case 0xd0: n += put_be(o + n, rng(), 1); break;
	case 0xcd: case 0xd1: n += put_be(o + n, rng(), 2); break;
	case 0xce: case 0xd2: case 0xca: n += put_be(o + n, rng(), 4); break;
	case 0xcf: case 0xd3: case 0xcb:
		n += put_be(o + n, ((uint64_t)rng() << 32) | rng(), 8);
		break;
	case 0xa3: len = 3; break;
	case 0xd9: case 0xc4: w = 1; break;
	case 0xda: case 0xc5: w = 2; break;
	case 0xdb: case 0xc6: w = 4; break;
	case 0xd4: len = 2; break;
	case 0xd5: len = 3; break;
	case 0xd6: len = 5; break;
	case 0xd7: len = 9; break;
	case 0xd8: len = 17; break;
	case 0xc7: case 0xc8: case 0xc9:
		w = b == 0xc7 ? 1 : b == 0xc8 ? 2 : 4;
		len = rng() % 20;
		n += put_be(o + n, len, w);
		len++;		/* the type byte */
		w = 0;
		break;
	case 0x93: items = 3; break;
	case 0x82: items = 4; break;
	case 0xdc: case 0xdd: case 0xde: case 0xdf:
		items = rng() % 5;
		n += put_be(o + n, items, b == 0xdc || b == 0xde ? 2 : 4);
		if (b == 0xde || b == 0xdf)
			items *= 2;
		break;
	}
	if (w != 0) {
		len = rng() % 40;
		n += put_be(o + n, len, w);
	}
	for (k = 0; k < len; k++)
		o[n++] = (uint8_t)(rng() % 3 == 0 ? 0xc3 : 'a' + rng() % 26);
	for (k = 0; k < items; k++) {
		size_t m = gen_obj(o + n, cap - n, depth + 1);

		if (m == 0)
			return 0;
		n += m;
	}
	return n;
}

/* Same type, same value (floats by their bits), same pointers. */
static void
assert_same_obj(const msgpack_object *a, const msgpack_object *b)
{
	cr_assert_eq(a->type, b->type);
	switch (a->type) {
	case MSGPACK_OBJECT_NIL:
		break;
	case MSGPACK_OBJECT_BOOLEAN:
		cr_assert_eq(a->via.boolean, b->via.boolean);
		break;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		cr_assert_eq(a->via.u64, b->via.u64);
		break;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		cr_assert_eq(a->via.i64, b->via.i64);
		break;
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		cr_assert_eq(memcmp(&a->via.f64, &b->via.f64,
		    sizeof(a->via.f64)), 0);
		break;
	case MSGPACK_OBJECT_STR:
	case MSGPACK_OBJECT_BIN:
		cr_assert_eq(a->via.str.size, b->via.str.size);
		/* msgpack-c points an empty one at its header: no matter */
		if (a->via.str.size > 0)
			cr_assert_eq(a->via.str.ptr, b->via.str.ptr);
		break;
	case MSGPACK_OBJECT_EXT:
		cr_assert_eq(a->via.ext.type, b->via.ext.type);
		cr_assert_eq(a->via.ext.size, b->via.ext.size);
		if (a->via.ext.size > 0)
			cr_assert_eq(a->via.ext.ptr, b->via.ext.ptr);
		break;
	case MSGPACK_OBJECT_ARRAY:
		cr_assert_eq(a->via.array.size, b->via.array.size);
		for (uint32_t i = 0; i < a->via.array.size; i++)
			assert_same_obj(&a->via.array.ptr[i],
			    &b->via.array.ptr[i]);
		break;
	case MSGPACK_OBJECT_MAP:
		cr_assert_eq(a->via.map.size, b->via.map.size);
		for (uint32_t i = 0; i < a->via.map.size; i++) {
			assert_same_obj(&a->via.map.ptr[i].key,
			    &b->via.map.ptr[i].key);
			assert_same_obj(&a->via.map.ptr[i].val,
			    &b->via.map.ptr[i].val);
		}
		break;
	default:
		cr_assert_fail("unexpected type %d", a->type);
	}
}

/* Both decoders on buf[0..n): the same verdict, the same object. */
static int
unpack_both(const uint8_t *buf, size_t n)
{
	msgpack_zone z1, z2;
	msgpack_object a, b;
	msgpack_unpack_return r;
	size_t off = 0;
	int rc, ok;

	msgpack_zone_init(&z1, 256);
	msgpack_zone_init(&z2, 256);
	rc = proto_unpack(buf, n, &z1, &a);
	/*
	 * Where the scan finds no complete object, msgpack_unpack fails too
	 * (bytes missing, 0xc1, too deep), but it may first allocate what a
	 * declared count asks for, which ASan turns into an abort: only the
	 * verdict is compared there.
	 */
	if (proto_scan(buf, n, PROTO_MAX_NESTING, &off) != 0) {
		cr_assert_neq(rc, 0);
		msgpack_zone_destroy(&z1);
		msgpack_zone_destroy(&z2);
		return 0;
	}
	off = 0;
	r = msgpack_unpack((const char *)buf, n, &off, &z2, &b);
	ok = r == MSGPACK_UNPACK_SUCCESS && off == n;
	cr_assert_eq(rc == 0, ok, "proto_unpack %d, msgpack_unpack %d "
	    "(off %zu of %zu)", rc, (int)r, off, n);
	if (ok)
		assert_same_obj(&a, &b);
	msgpack_zone_destroy(&z1);
	msgpack_zone_destroy(&z2);
	return ok;
}

/*
 * proto_unpack_first on buf[0..len): want is the object's length, 0 for
 * "more bytes needed", (size_t)-1 for "what scan + unpack say".
 */
static void
check_first(const uint8_t *buf, size_t want, size_t len)
{
	msgpack_zone z1, z2;
	msgpack_object a, b;
	size_t got = 0, scanned = 0;
	int rc, src;

	msgpack_zone_init(&z1, 256);
	msgpack_zone_init(&z2, 256);
	rc = proto_unpack_first(buf, len, &z1, &a, &got);
	if (want == (size_t)-1) {
		src = proto_scan(buf, len, PROTO_MAX_NESTING, &scanned);
		if (src == 0 && proto_unpack(buf, scanned, &z2, &b) == 0) {
			cr_assert_eq(rc, 0);
			cr_assert_eq(got, scanned);
			assert_same_obj(&a, &b);
		} else {
			/* refused or incomplete: a declared count larger than
			 * the bytes left is "incomplete" at once in one pass,
			 * where the scan may reach a bad byte first */
			cr_assert_neq(rc, 0);
			if (src == -EAGAIN)
				cr_assert_eq(rc, -EAGAIN);
		}
	} else if (want == 0)
		cr_assert_eq(rc, -EAGAIN, "len %zu: %d", len, rc);
	else {
		cr_assert_eq(rc, 0);
		cr_assert_eq(got, want);
		cr_assert_eq(proto_unpack(buf, want, &z2, &b), 0);
		assert_same_obj(&a, &b);
	}
	msgpack_zone_destroy(&z1);
	msgpack_zone_destroy(&z2);
}

Test(proto, unpack_matches_msgpack_c_on_random_input)
{
	static uint8_t buf[1 << 16];
	unsigned nok = 0, nbad = 0;

	for (int round = 0; round < 20000; round++) {
		size_t n = gen_obj(buf, sizeof(buf) - 8, 0), cut;

		if (n == 0)
			continue;
		nok += unpack_both(buf, n);
		/* one pass: the same object, its length, bytes after it */
		buf[n] = (uint8_t)rng();
		check_first(buf, n, n + 1);
		/* cut short: more bytes needed, in one pass too */
		cut = rng() % n;
		nbad += !unpack_both(buf, cut);
		check_first(buf, 0, cut);
		/* a byte changed, a byte too many */
		buf[rng() % n] = (uint8_t)rng();
		unpack_both(buf, n);
		check_first(buf, (size_t)-1, n + 1);
		nbad += !unpack_both(buf, n + 1);
	}
	/* the generator made both kinds, many of each */
	cr_assert_gt(nok, 15000);
	cr_assert_gt(nbad, 30000);
}

Test(proto, unpack_nesting_limit_is_msgpack_c_s)
{
	uint8_t buf[80];

	/* 32 non-empty arrays around a nil pass, 33 fail, in both */
	for (size_t depth = 30; depth <= 34; depth++) {
		memset(buf, 0x91, depth);
		buf[depth] = 0xc0;
		cr_assert_eq(unpack_both(buf, depth + 1),
		    depth <= PROTO_MAX_NESTING);
	}
	/* msgpack-c counts an empty array as a level too */
	memset(buf, 0x91, 31);
	buf[31] = 0x90;
	cr_assert(unpack_both(buf, 32));
	memset(buf, 0x91, 32);
	buf[32] = 0x90;
	cr_assert(!unpack_both(buf, 33));
	/* a huge declared array is refused, not allocated */
	buf[0] = 0xdd;
	memset(buf + 1, 0xff, 4);
	cr_assert(!unpack_both(buf, 5));
	cr_assert(!unpack_both(buf, 1));
}

Test(proto, utf8_validation)
{
	cr_assert(proto_utf8_valid("h\xc3\xa9llo", 6));
	cr_assert(proto_utf8_valid("\xf0\x9f\x98\x80", 4));
	cr_assert_not(proto_utf8_valid("\xc3", 1));
	cr_assert_not(proto_utf8_valid("\xc0\xaf", 2));	/* overlong */
	cr_assert_not(proto_utf8_valid("\xed\xa0\x80", 3));	/* surrogate */
	cr_assert_not(proto_utf8_valid("\xff", 1));
	/* the eight-byte ASCII fast path, at and across word boundaries */
	cr_assert(proto_utf8_valid("abcdefghijklmnopqrstuvwxyz", 26));
	cr_assert(proto_utf8_valid("abcdefgh\xc3\xa9ijklmnop", 18));
	cr_assert_not(proto_utf8_valid("abcdefghijklmnop\xffqrs", 20));
	cr_assert_not(proto_utf8_valid("abcdefg\xc3", 8));
	cr_assert_not(proto_utf8_valid("abcdefgh\xed\xa0\x80xyz", 14));
	/* the ASCII pass reads short strings and tails in overlapping
	 * words: a bad byte at every position of every length is seen */
	for (size_t len = 0; len <= 24; len++) {
		char buf[24];

		memset(buf, 'a', sizeof(buf));
		cr_assert(proto_utf8_valid(buf, len), "len %zu", len);
		for (size_t pos = 0; pos < len; pos++) {
			buf[pos] = (char)0xff;
			cr_assert_not(proto_utf8_valid(buf, len),
			    "0xff at %zu of %zu", pos, len);
			buf[pos] = 'a';
		}
	}
}

static size_t
canon_elem(const uint8_t *in, size_t inlen, uint8_t *out, int *rc)
{
	msgpack_zone z;
	msgpack_object o;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	size_t n;

	msgpack_zone_init(&z, 256);
	cr_assert_eq(proto_unpack(in, inlen, &z, &o), 0);
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	*rc = proto_pack_path_elem(&pk, &o, false);
	n = sb.size;
	{
		/* the direct encoder writes exactly the same bytes */
		uint8_t direct[64];
		int w = proto_put_path_elem(direct, &o, false);

		cr_assert_eq(w < 0, *rc != 0);
		if (w >= 0) {
			cr_assert_eq((size_t)w, n);
			cr_assert_eq(memcmp(direct, sb.data, n), 0);
		}
	}
	if (n > 0)
		memcpy(out, sb.data, n);
	msgpack_sbuffer_destroy(&sb);
	msgpack_zone_destroy(&z);
	return n;
}

Test(proto, canonical_path_elements)
{
	uint8_t out[32];
	int rc;
	size_t n;

	/* empty bin == empty str */
	n = canon_elem((const uint8_t *)"\xc4\x00", 2, out, &rc);
	cr_assert_eq(rc, 0);
	cr_assert(n == 1 && out[0] == 0xa0);
	/* uint64-encoded 5 == fixint 5 */
	n = canon_elem((const uint8_t *)"\xcf\0\0\0\0\0\0\0\x05", 9, out, &rc);
	cr_assert(rc == 0 && n == 1 && out[0] == 0x05);
	/* int16-encoded -1 == negative fixint */
	n = canon_elem((const uint8_t *)"\xd1\xff\xff", 3, out, &rc);
	cr_assert(rc == 0 && n == 1 && out[0] == 0xff);
	/* str8 "a" == fixstr "a" */
	n = canon_elem((const uint8_t *)"\xd9\x01" "a", 3, out, &rc);
	cr_assert(rc == 0 && n == 2 && out[0] == 0xa1 && out[1] == 'a');
	/* floats, bools, nil (not allowed here) are refused */
	canon_elem((const uint8_t *)"\xca\0\0\0\0", 5, out, &rc);
	cr_assert_eq(rc, -EINVAL);
	canon_elem((const uint8_t *)"\xc3", 1, out, &rc);
	cr_assert_eq(rc, -EINVAL);
	canon_elem((const uint8_t *)"\xc0", 1, out, &rc);
	cr_assert_eq(rc, -EINVAL);
	/* invalid UTF-8 in a str element */
	canon_elem((const uint8_t *)"\xa1\xff", 2, out, &rc);
	cr_assert_eq(rc, -EINVAL);
}

/*
 * The inline writer of short ASCII elements (the agent's key builder)
 * writes what proto_put_path_elem writes, for every length it takes, and
 * leaves to it every other element: a non-ASCII byte at any position,
 * a str of 32 bytes and more, bin, integers.  Each source string sits at
 * the end of a heap block of its own size, so ASan sees any read past it.
 */
Test(proto, short_ascii_elements_match_the_general_writer)
{
	uint8_t want[64], got[64];

	for (size_t n = 0; n <= 40; n++) {
		for (size_t bad = 0; bad <= n; bad++) {
			char *s = malloc(n > 0 ? n : 1);
			msgpack_object o = { .type = MSGPACK_OBJECT_STR };
			int w, g;

			for (size_t i = 0; i < n; i++)
				s[i] = (char)('a' + (i * 7 + n) % 26);
			if (bad < n) {
				/* a whole two-byte character, so still
				 * valid UTF-8 when it fits */
				s[bad] = (char)0xc3;
				if (bad + 1 < n)
					s[bad + 1] = (char)0xa9;
			}
			o.via.str.ptr = s;
			o.via.str.size = (uint32_t)n;
			w = proto_put_path_elem(want, &o, false);
			memset(got, 0x55, sizeof(got));
			g = proto_put_short_ascii_elem(got, &o);
			if (n <= 31 && bad == n) {
				cr_assert_eq(g, w, "n %zu", n);
				cr_assert_arr_eq(got, want, (size_t)w);
				/* nothing past the element is touched */
				cr_assert_eq(got[w], 0x55, "n %zu", n);
			} else
				cr_assert_eq(g, 0, "n %zu bad %zu", n, bad);
			free(s);
		}
	}
	{
		msgpack_object o = { .type = MSGPACK_OBJECT_BIN };

		o.via.bin.ptr = "ab";
		o.via.bin.size = 2;
		cr_assert_eq(proto_put_short_ascii_elem(got, &o), 0);
		o.type = MSGPACK_OBJECT_POSITIVE_INTEGER;
		o.via.u64 = 5;
		cr_assert_eq(proto_put_short_ascii_elem(got, &o), 0);
	}
}

/* the numeric HOST:PORT of --listen, --metrics, distkv-etcd --listen and
 * tcp:// URLs; the bracketed IPv6 form is what the docs show */
/* The hand packers write what msgpack-c writes (the reply and request
 * fast paths use them in place of the packer). */
Test(proto, put_uint_maphdr_and_key_match_msgpack_c)
{
	static const uint64_t u[] = { 0, 1, 127, 128, 255, 256, 65535, 65536,
	    4294967295ULL, 4294967296ULL, INT64_MAX, (uint64_t)INT64_MAX + 1,
	    UINT64_MAX };
	static const size_t m[] = { 0, 1, 15, 16, 65535, 65536, 4294967295ULL };
	uint8_t buf[16], *end;
	msgpack_sbuffer sb;
	msgpack_packer pk;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	for (size_t i = 0; i < sizeof(u) / sizeof(u[0]); i++) {
		sb.size = 0;
		msgpack_pack_uint64(&pk, u[i]);
		end = proto_put_uint(buf, u[i]);
		cr_assert_eq((size_t)(end - buf), sb.size, "%llu",
		    (unsigned long long)u[i]);
		cr_assert_arr_eq(buf, sb.data, sb.size);
	}
	for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
		sb.size = 0;
		msgpack_pack_map(&pk, m[i]);
		end = proto_put_maphdr(buf, m[i]);
		cr_assert_eq((size_t)(end - buf), sb.size, "%zu", m[i]);
		cr_assert_arr_eq(buf, sb.data, sb.size);
	}
	sb.size = 0;
	msgpack_pack_str_with_body(&pk, "changed", 7);
	end = proto_put_key(buf, "changed");
	cr_assert_eq((size_t)(end - buf), sb.size);
	cr_assert_arr_eq(buf, sb.data, sb.size);
	/* past a fixstr's 31 bytes: a str8 header */
	{
		static const char k40[] = "0123456789012345678901234567890123456789";
		uint8_t big[64];

		sb.size = 0;
		msgpack_pack_str_with_body(&pk, k40, 40);
		end = proto_put_key(big, k40);
		cr_assert_eq((size_t)(end - big), sb.size);
		cr_assert_arr_eq(big, sb.data, sb.size);
	}
	msgpack_sbuffer_destroy(&sb);
}

Test(hostport, numeric_forms_and_refusals)
{
	static const char *bad[] = { "", ":", "1.2.3.4", "1.2.3.4:",
	    ":27586", "[]:27586", "[::1]", "::1:27586x", "localhost:27586",
	    "1.2.3.4:http", "[::1:27586", "1.2.3.4:99999", NULL };
	struct addrinfo *ai;
	const struct sockaddr_in6 *s6;

	cr_assert_eq(hostport_resolve("127.0.0.1:27586", false, &ai), 0);
	cr_assert_eq(ai->ai_family, AF_INET);
	cr_assert_eq(ntohs(((const struct sockaddr_in *)(const void *)
	    ai->ai_addr)->sin_port), 27586);
	freeaddrinfo(ai);
	cr_assert_eq(hostport_resolve("[::1]:2379", true, &ai), 0);
	cr_assert_eq(ai->ai_family, AF_INET6);
	s6 = (const struct sockaddr_in6 *)(const void *)ai->ai_addr;
	cr_assert_eq(ntohs(s6->sin6_port), 2379);
	cr_assert(IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr));
	freeaddrinfo(ai);
	cr_assert_eq(hostport_resolve("[::]:0", true, &ai), 0);
	freeaddrinfo(ai);
	for (size_t i = 0; bad[i] != NULL; i++) {
		ai = (struct addrinfo *)1;
		cr_assert_eq(hostport_resolve(bad[i], false, &ai), -EINVAL,
		    "accepted '%s'", bad[i]);
		cr_assert_null(ai, "'%s' left an addrinfo", bad[i]);
	}
}
