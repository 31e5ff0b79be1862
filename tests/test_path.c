/* Tests for libclient/path.c: building, parsing and printing paths. */
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "distkv.h"

static distkv_path *
parse_ok(const char *text)
{
	distkv_path *p = NULL;
	int rc = distkv_path_parse(text, &p);

	cr_assert_eq(rc, 0, "parse \"%s\": %s", text, distkv_strerror(rc));
	cr_assert_not_null(p);
	return p;
}

static void
expect_str(const distkv_path *p, size_t i, const char *s)
{
	struct distkv_elem e;

	cr_assert_eq(distkv_path_elem(p, i, &e), 0);
	cr_assert_eq(e.type, DISTKV_ELEM_STR, "elem %zu type %d", i, e.type);
	cr_assert_eq(e.len, strlen(s));
	cr_assert_arr_eq(e.s, s, e.len);
}

static void
expect_int(const distkv_path *p, size_t i, int64_t v)
{
	struct distkv_elem e;

	cr_assert_eq(distkv_path_elem(p, i, &e), 0);
	cr_assert_eq(e.type, DISTKV_ELEM_INT);
	cr_assert_eq(e.i, v);
}

Test(path, build_and_read)
{
	distkv_path *p, *d;
	struct distkv_elem e;

	cr_assert_eq(distkv_path_new(&p), 0);
	cr_assert_eq(distkv_path_len(p), 0);
	cr_assert_eq(distkv_path_push_nil(p), 0);
	cr_assert_eq(distkv_path_push_str(p, "auth", 4), 0);
	cr_assert_eq(distkv_path_push_int(p, -7), 0);
	cr_assert_eq(distkv_path_push_bin(p, "\x00\xff", 2), 0);
	cr_assert_eq(distkv_path_len(p), 4);

	cr_assert_eq(distkv_path_elem(p, 0, &e), 0);
	cr_assert_eq(e.type, DISTKV_ELEM_NIL);
	expect_str(p, 1, "auth");
	expect_int(p, 2, -7);
	cr_assert_eq(distkv_path_elem(p, 3, &e), 0);
	cr_assert_eq(e.type, DISTKV_ELEM_BIN);
	cr_assert_eq(e.len, 2);
	cr_assert_arr_eq(e.s, "\x00\xff", 2);
	cr_assert_eq(distkv_path_elem(p, 4, &e), DISTKV_EINVAL);

	cr_assert_eq(distkv_path_dup(p, &d), 0);
	distkv_path_truncate(p, 2);
	cr_assert_eq(distkv_path_len(p), 2);
	cr_assert_eq(distkv_path_len(d), 4, "dup is independent");
	expect_int(d, 2, -7);
	distkv_path_truncate(p, 99);
	cr_assert_eq(distkv_path_len(p), 0);
	distkv_path_free(p);
	distkv_path_free(d);
	distkv_path_free(NULL);
}

Test(path, push_rules)
{
	distkv_path *p;
	struct distkv_elem e;

	cr_assert_eq(distkv_path_new(&p), 0);
	cr_assert_eq(distkv_path_push_str(p, "\xc3\x28", 2), DISTKV_EINVAL,
	    "invalid UTF-8 is refused");
	cr_assert_eq(distkv_path_push_str(p, "a", 1), 0);
	cr_assert_eq(distkv_path_push_nil(p), DISTKV_EINVAL,
	    "nil only as the first element");
	/* spec §1.1: the empty bin is the empty string */
	cr_assert_eq(distkv_path_push_bin(p, "", 0), 0);
	cr_assert_eq(distkv_path_elem(p, 1, &e), 0);
	cr_assert_eq(e.type, DISTKV_ELEM_STR);
	cr_assert_eq(e.len, 0);
	distkv_path_free(p);
}

Test(path, parse_root)
{
	distkv_path *p;

	p = parse_ok("");
	cr_assert_eq(distkv_path_len(p), 0);
	distkv_path_free(p);
	p = parse_ok("/");
	cr_assert_eq(distkv_path_len(p), 0);
	distkv_path_free(p);
}

Test(path, parse_elements)
{
	distkv_path *p;
	struct distkv_elem e;

	p = parse_ok("/a/b c/");
	cr_assert_eq(distkv_path_len(p), 2);
	expect_str(p, 0, "a");
	expect_str(p, 1, "b c");
	distkv_path_free(p);

	p = parse_ok(":nil/auth/:123/:-5/:/:xDEADbeef");
	cr_assert_eq(distkv_path_len(p), 6);
	cr_assert_eq(distkv_path_elem(p, 0, &e), 0);
	cr_assert_eq(e.type, DISTKV_ELEM_NIL);
	expect_str(p, 1, "auth");
	expect_int(p, 2, 123);
	expect_int(p, 3, -5);
	expect_str(p, 4, "");
	cr_assert_eq(distkv_path_elem(p, 5, &e), 0);
	cr_assert_eq(e.type, DISTKV_ELEM_BIN);
	cr_assert_eq(e.len, 4);
	cr_assert_arr_eq(e.s, "\xde\xad\xbe\xef", 4);
	distkv_path_free(p);

	p = parse_ok(":-9223372036854775808/:9223372036854775807");
	expect_int(p, 0, INT64_MIN);
	expect_int(p, 1, INT64_MAX);
	distkv_path_free(p);
}

Test(path, parse_escapes)
{
	distkv_path *p;

	p = parse_ok("a\\/b/\\\\/\\:nil/x:y/\\/");
	cr_assert_eq(distkv_path_len(p), 5);
	expect_str(p, 0, "a/b");
	expect_str(p, 1, "\\");
	expect_str(p, 2, ":nil");
	expect_str(p, 3, "x:y");
	expect_str(p, 4, "/");
	distkv_path_free(p);

	/* an escaped trailing slash is part of the element, not ignored */
	p = parse_ok("a\\/");
	cr_assert_eq(distkv_path_len(p), 1);
	expect_str(p, 0, "a/");
	distkv_path_free(p);
}

Test(path, parse_errors)
{
	static const char *bad[] = {
		"a//b", "//", "a//", "//a",
		"a\\", "a\\n", "\\",
		":abc", ":+5", ": 5", ":5x", ":-", ":99999999999999999999",
		":x1", ":xzz", "a/:nil", ":NIL/x",
		"\xff\xfe",
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		distkv_path *p = (distkv_path *)1;
		int rc = distkv_path_parse(bad[i], &p);

		cr_expect_eq(rc, DISTKV_EINVAL, "\"%s\" gave %d", bad[i], rc);
		cr_expect_null(p, "\"%s\": out cleared on error", bad[i]);
	}
	cr_assert_eq(distkv_path_parse(NULL, &(distkv_path *){ NULL }),
	    DISTKV_EINVAL);
}

Test(path, format_forms)
{
	distkv_path *p;
	char *s;

	cr_assert_eq(distkv_path_new(&p), 0);
	cr_assert_eq(distkv_path_format(p, &s), 0);
	cr_assert_str_eq(s, "/");
	free(s);

	cr_assert_eq(distkv_path_push_nil(p), 0);
	cr_assert_eq(distkv_path_push_str(p, "a/b", 3), 0);
	cr_assert_eq(distkv_path_push_str(p, ":x", 2), 0);
	cr_assert_eq(distkv_path_push_str(p, "", 0), 0);
	cr_assert_eq(distkv_path_push_int(p, -42), 0);
	cr_assert_eq(distkv_path_push_bin(p, "\x01\xab", 2), 0);
	cr_assert_eq(distkv_path_push_str(p, "back\\slash", 10), 0);
	cr_assert_eq(distkv_path_format(p, &s), 0);
	cr_assert_str_eq(s, ":nil/a\\/b/\\:x/:/:-42/:x01ab/back\\\\slash");
	free(s);

	/* no text form for a NUL byte inside a string */
	distkv_path_truncate(p, distkv_path_len(p));
	cr_assert_eq(distkv_path_push_str(p, "a\0b", 3), 0);
	cr_assert_eq(distkv_path_format(p, &s), DISTKV_EINVAL);
	cr_assert_null(s);
	distkv_path_free(p);
}

static bool
path_equal(const distkv_path *a, const distkv_path *b)
{
	struct distkv_elem x, y;
	size_t i;

	if (distkv_path_len(a) != distkv_path_len(b))
		return false;
	for (i = 0; i < distkv_path_len(a); i++) {
		distkv_path_elem(a, i, &x);
		distkv_path_elem(b, i, &y);
		if (x.type != y.type || x.i != y.i || x.len != y.len ||
		    (x.len > 0 && memcmp(x.s, y.s, x.len) != 0))
			return false;
	}
	return true;
}

Test(path, format_round_trips)
{
	static const char *texts[] = {
		"/", "a", "a/b/c", ":nil", ":nil/auth/user", ":0", ":-1",
		":x00ff", "\\:colon", "sl\\/ash", "b\\\\s", ":/:/x",
		"\xc3\xa9t\xc3\xa9/:1234567890123",
	};
	size_t i;

	for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		distkv_path *p = parse_ok(texts[i]), *q;
		char *s, *s2;

		cr_assert_eq(distkv_path_format(p, &s), 0);
		q = parse_ok(s);
		cr_expect(path_equal(p, q), "\"%s\" -> \"%s\"", texts[i], s);
		cr_assert_eq(distkv_path_format(q, &s2), 0);
		cr_expect_str_eq(s, s2);
		free(s);
		free(s2);
		distkv_path_free(p);
		distkv_path_free(q);
	}
}

Test(path, depth_limit)
{
	distkv_path *p;
	int i, rc = 0;

	cr_assert_eq(distkv_path_new(&p), 0);
	for (i = 0; i < 1000 && rc == 0; i++)
		rc = distkv_path_push_int(p, i);
	cr_assert_eq(rc, DISTKV_EINVAL, "paths are bounded");
	cr_assert_lt(distkv_path_len(p), 1000);
	distkv_path_free(p);
}

/* The shm key encoder must write exactly what path_pack writes. */
#include "client_internal.h"
#include "reader.h"

static void
assert_key_matches_pack(const distkv_path *p)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	uint8_t *big;
	size_t need, n;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	cr_assert_eq(path_pack(&pk, p), 0);
	need = path_key(p, NULL, 0);	/* an upper bound */
	big = malloc(need);
	cr_assert_not_null(big);
	n = path_key(p, big, need);
	cr_assert_eq(n, sb.size, "path of %zu elements: key %zu bytes, packed %zu", distkv_path_len(p), n, sb.size);
	cr_assert_eq(memcmp(big, sb.data, n), 0);
	/* the bytes the path keeps for lookups, when they fit */
	{
		size_t clen;
		uint64_t hash;
		const uint8_t *c = path_key_cached(p, &clen, &hash);

		cr_assert(c != NULL || n > 64, "a %zu-byte key not kept", n);
		cr_assert(c == NULL || (clen == n && memcmp(c, big, n) == 0),
		    "kept key differs from the packed path");
		/* and the hash kept with it is the region's for those bytes */
		cr_assert(c == NULL || hash == shm_key_hash(big, n),
		    "kept hash differs from shm_key_hash");
	}
	free(big);
	msgpack_sbuffer_destroy(&sb);
}

Test(path, shm_key_bytes_equal_packed_path)
{
	static const int64_t ints[] = { 0, 1, 127, 128, 255, 256, 65535,
	    65536, 4294967295LL, 4294967296LL, INT64_MAX, -1, -32, -33, -128,
	    -129, -32768, -32769, -2147483648LL, -2147483649LL, INT64_MIN };
	char longstr[70000];
	distkv_path *p;

	memset(longstr, 'x', sizeof(longstr));
	cr_assert_eq(distkv_path_new(&p), 0);
	assert_key_matches_pack(p);		/* the root */
	cr_assert_eq(distkv_path_push_nil(p), 0);
	for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
		cr_assert_eq(distkv_path_push_int(p, ints[i]), 0);
		assert_key_matches_pack(p);
	}
	cr_assert_eq(distkv_path_push_str(p, longstr, 31), 0);
	cr_assert_eq(distkv_path_push_str(p, longstr, 32), 0);
	cr_assert_eq(distkv_path_push_str(p, longstr, 300), 0);
	cr_assert_eq(distkv_path_push_str(p, longstr, 66000), 0);
	cr_assert_eq(distkv_path_push_bin(p, longstr, 5), 0);
	cr_assert_eq(distkv_path_push_bin(p, longstr, 300), 0);
	cr_assert_eq(distkv_path_push_bin(p, longstr, 66000), 0);
	cr_assert_eq(distkv_path_push_str(p, "", 0), 0);
	assert_key_matches_pack(p);
	/* shortened again, back to a key that is kept */
	distkv_path_truncate(p, distkv_path_len(p) - 2);
	assert_key_matches_pack(p);
	distkv_path_truncate(p, distkv_path_len(p));
	assert_key_matches_pack(p);
	cr_assert_eq(distkv_path_push_str(p, "svc", 3), 0);
	cr_assert_eq(distkv_path_push_int(p, 12), 0);
	assert_key_matches_pack(p);
	distkv_path_free(p);
}
