/* Tests for libclient/value.c: building and reading msgpack values. */
#include <errno.h>
#include <math.h>
#include <string.h>

#include <criterion/criterion.h>
#include <msgpack.h>

#include "distkv.h"

Test(value, str_round_trip)
{
	struct distkv_value v;
	const char *s;
	size_t n;
	char big[300];

	cr_assert_eq(distkv_value_from_str(&v, "hello", 5), 0);
	cr_assert_eq(v.len, 6);
	cr_assert_eq(v.data[0], 0xa5);
	cr_assert_eq(distkv_value_get_str(v.data, v.len, &s, &n), 0);
	cr_assert_eq(n, 5);
	cr_assert_arr_eq(s, "hello", 5);
	distkv_value_clear(&v);
	cr_assert_null(v.data);

	memset(big, 'x', sizeof(big));
	cr_assert_eq(distkv_value_from_str(&v, big, sizeof(big)), 0);
	cr_assert_eq(v.data[0], 0xda, "str16 for 300 bytes");
	cr_assert_eq(distkv_value_get_str(v.data, v.len, &s, &n), 0);
	cr_assert_eq(n, sizeof(big));
	distkv_value_clear(&v);

	cr_assert_eq(distkv_value_from_str(&v, "", 0), 0);
	cr_assert_eq(distkv_value_get_str(v.data, v.len, &s, &n), 0);
	cr_assert_eq(n, 0);
	distkv_value_clear(&v);
}

Test(value, int_round_trip)
{
	static const int64_t vals[] = {
		0, 1, 127, 128, 255, 256, 65535, 65536, 4294967295LL,
		4294967296LL, INT64_MAX, -1, -32, -33, -128, -129, -32768,
		-32769, -2147483648LL, -2147483649LL, INT64_MIN,
	};
	struct distkv_value v;
	int64_t out;
	double d;
	size_t i;

	for (i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		cr_assert_eq(distkv_value_from_int(&v, vals[i]), 0);
		cr_assert_eq(distkv_value_get_int(v.data, v.len, &out), 0);
		cr_expect_eq(out, vals[i], "%lld", (long long)vals[i]);
		cr_assert_eq(distkv_value_get_double(v.data, v.len, &d), 0,
		    "get_double accepts integers");
		cr_expect_eq(d, (double)vals[i]);
		distkv_value_clear(&v);
	}
	/* uint64 above INT64_MAX does not fit */
	cr_assert_eq(distkv_value_get_int(
	    "\xcf\xff\xff\xff\xff\xff\xff\xff\xff", 9, &out), -ERANGE);
	/* any integer width is accepted, e.g. a non-canonical int16 5 */
	cr_assert_eq(distkv_value_get_int("\xd1\x00\x05", 3, &out), 0);
	cr_assert_eq(out, 5);
}

Test(value, double_and_float)
{
	struct distkv_value v;
	double d;

	cr_assert_eq(distkv_value_from_double(&v, 3.25), 0);
	cr_assert_eq(v.len, 9);
	cr_assert_eq(distkv_value_get_double(v.data, v.len, &d), 0);
	cr_assert_eq(d, 3.25);
	cr_assert_eq(distkv_value_get_int(v.data, v.len, &(int64_t){ 0 }),
	    DISTKV_ETYPE);
	distkv_value_clear(&v);
	/* float32 1.5 = 0x3fc00000 */
	cr_assert_eq(distkv_value_get_double("\xca\x3f\xc0\x00\x00", 5, &d), 0);
	cr_assert_eq(d, 1.5);
}

Test(value, bool_and_nil)
{
	struct distkv_value v;
	bool b = false;

	cr_assert_eq(distkv_value_from_bool(&v, true), 0);
	cr_assert_eq(distkv_value_get_bool(v.data, v.len, &b), 0);
	cr_assert(b);
	cr_assert_not(distkv_value_is_nil(v.data, v.len));
	distkv_value_clear(&v);
	cr_assert_eq(distkv_value_from_bool(&v, false), 0);
	cr_assert_eq(distkv_value_get_bool(v.data, v.len, &b), 0);
	cr_assert_not(b);
	distkv_value_clear(&v);

	cr_assert_eq(distkv_value_from_nil(&v), 0);
	cr_assert(distkv_value_is_nil(v.data, v.len));
	cr_assert_eq(distkv_value_get_bool(v.data, v.len, &b), DISTKV_ETYPE);
	distkv_value_clear(&v);
	cr_assert_not(distkv_value_is_nil(NULL, 0));
}

Test(value, wrong_types)
{
	const char *s;
	size_t n;
	int64_t i;
	double d;
	bool b;

	cr_assert_eq(distkv_value_get_str("\x05", 1, &s, &n), DISTKV_ETYPE);
	cr_assert_eq(distkv_value_get_str("\xc4\x01x", 3, &s, &n),
	    DISTKV_ETYPE, "bin is not str");
	cr_assert_eq(distkv_value_get_int("\xa1x", 2, &i), DISTKV_ETYPE);
	cr_assert_eq(distkv_value_get_double("\xc0", 1, &d), DISTKV_ETYPE);
	cr_assert_eq(distkv_value_get_bool("\x01", 1, &b), DISTKV_ETYPE);
	cr_assert_eq(distkv_value_get_int("\x91\x01", 2, &i), DISTKV_ETYPE);
}

/* get_str checks a str's length by its header, without a scan */
Test(value, str_lengths_are_checked)
{
	static const struct { const char *b; size_t n; } bad[] = {
		{ "\xa3" "ab", 3 }, { "\xa1" "ab", 3 }, { "\xd9", 1 },
		{ "\xd9\x02" "a", 3 }, { "\xda\x00", 2 },
		{ "\xdb\x00\x00\x00", 4 }, { "\xdb\xff\xff\xff\xff" "a", 6 },
		{ "\xc4\x05", 2 },
	};
	const char *s;
	size_t n;

	cr_assert_eq(distkv_value_get_str("\xda\x00\x01" "x", 4, &s,
	    &n), 0);
	cr_assert_eq(n, 1);
	cr_assert_eq(s[0], 'x');
	cr_assert_eq(distkv_value_get_str("\xdb\x00\x00\x00\x00", 5, &s, &n),
	    0);
	cr_assert_eq(n, 0);
	cr_assert_eq(distkv_value_get_str("\xa0", 1, &s, &n), 0);
	cr_assert_eq(n, 0);
	cr_assert_eq(distkv_value_get_str(NULL, 0, &s, &n), DISTKV_EINVAL);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(distkv_value_get_str(bad[i].b, bad[i].n, &s, &n),
		    DISTKV_EINVAL, "case %zu", i);
		cr_assert_null(s);
	}
}

Test(value, readers_check_bounds)
{
	const char *s;
	size_t n;
	int64_t i;

	/* truncated: str8 claims 5 bytes, has 2 */
	cr_assert_eq(distkv_value_get_str("\xd9\x05" "ab", 4, &s, &n),
	    DISTKV_EINVAL);
	/* trailing garbage after one object */
	cr_assert_eq(distkv_value_get_int("\x01\x02", 2, &i), DISTKV_EINVAL);
	cr_assert_eq(distkv_value_get_int("\xcd\x01", 2, &i), DISTKV_EINVAL);
	cr_assert_eq(distkv_value_get_int(NULL, 0, &i), DISTKV_EINVAL);
	cr_assert_eq(distkv_value_get_int("\xc1", 1, &i), DISTKV_EINVAL);
}

Test(value, from_msgpack_checks_one_object)
{
	struct distkv_value v;
	/* {"a": [1, nil]} */
	static const uint8_t ok[] = { 0x81, 0xa1, 'a', 0x92, 0x01, 0xc0 };
	char deep[64];

	cr_assert_eq(distkv_value_from_msgpack(&v, ok, sizeof(ok)), 0);
	cr_assert_eq(v.len, sizeof(ok));
	cr_assert_arr_eq(v.data, ok, sizeof(ok));
	cr_assert_neq((const void *)v.data, (const void *)ok, "a copy");
	distkv_value_clear(&v);

	cr_assert_eq(distkv_value_from_msgpack(&v, ok, sizeof(ok) - 1),
	    DISTKV_EINVAL, "incomplete");
	cr_assert_null(v.data);
	cr_assert_eq(distkv_value_from_msgpack(&v, "\x01\x02", 2),
	    DISTKV_EINVAL, "two objects");
	cr_assert_eq(distkv_value_from_msgpack(&v, "", 0), DISTKV_EINVAL);
	cr_assert_eq(distkv_value_from_msgpack(&v, "\xc1", 1), DISTKV_EINVAL);
	/* nesting deeper than the wire allows */
	memset(deep, 0x91, sizeof(deep));
	deep[sizeof(deep) - 1] = 0x01;
	cr_assert_eq(distkv_value_from_msgpack(&v, deep, sizeof(deep)),
	    DISTKV_EINVAL);
}

/*
 * Scalars, strs and bins are checked from their header, without a scan
 * (issue 14): for every first byte but a container's, short lengths and
 * several kinds of following bytes, distkv_value_from_msgpack accepts
 * exactly what msgpack-c's own unpacker reads as one whole object.
 */
Test(value, header_checks_agree_with_msgpack_c)
{
	static const uint8_t fill[] = { 0x00, 0x01, 0x02, 0x05, 0x7f, 0xc0,
	    0xff };
	struct distkv_value v;
	uint8_t buf[16];
	int checked = 0;

	for (unsigned b = 0; b < 256; b++) {
		/*
		 * Not containers: those still go through proto_scan, and
		 * msgpack-c would allocate for a count of 4 billion.
		 */
		if ((b >= 0x80 && b <= 0x9f) || (b >= 0xdc && b <= 0xdf))
			continue;
		for (size_t len = 1; len <= sizeof(buf); len++)
			for (size_t f = 0; f < sizeof(fill); f++) {
				msgpack_zone zone;
				msgpack_object o;
				size_t off = 0;
				int want, got;

				buf[0] = (uint8_t)b;
				memset(buf + 1, fill[f], sizeof(buf) - 1);
				/* lengths of str8/bin8 headers: 0..len */
				if (len >= 2 && (b == 0xd9 || b == 0xc4))
					buf[1] = (uint8_t)(f % 3 == 0 ?
					    len - 2 : fill[f]);
				msgpack_zone_init(&zone, 64);
				want = msgpack_unpack((const char *)buf, len,
				    &off, &zone, &o) == MSGPACK_UNPACK_SUCCESS &&
				    off == len ? 0 : DISTKV_EINVAL;
				msgpack_zone_destroy(&zone);
				got = distkv_value_from_msgpack(&v, buf, len);
				cr_assert_eq(got, want, "first byte 0x%02x, "
				    "%zu bytes, fill 0x%02x: %d, msgpack-c "
				    "says %d", b, len, fill[f], got, want);
				if (got == 0) {
					cr_assert_eq(v.len, len);
					cr_assert_arr_eq(v.data, buf, len);
				}
				distkv_value_clear(&v);
				checked++;
			}
	}
	cr_assert_eq(checked, (256 - 36) * 16 * 7);
}

Test(value, strerror_covers_codes)
{
	cr_assert_str_eq(distkv_strerror(DISTKV_EDISCONNECTED),
	    "connection to the agent lost; reconnect");
	cr_assert_str_eq(distkv_strerror(-ENOENT), strerror(ENOENT));
	cr_assert_str_eq(distkv_strerror(0), "success");
	cr_assert_str_eq(distkv_strerror(-5000), "unknown error");
	for (int rc = DISTKV_ETIMEDOUT; rc <= DISTKV_ENOTFOUND; rc++)
		cr_assert_str_neq(distkv_strerror(rc), "unknown error");
}
