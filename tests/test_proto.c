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

/* the numeric HOST:PORT of --listen, --metrics, distkv-etcd --listen and
 * tcp:// URLs; the bracketed IPv6 form is what the docs show */
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
