/*
 * Tests for shm/writer.c and shm/reader.c, used directly (no agent).
 * One program, tests/test_shm, of these files:
 *
 * test_shm.c: suite "shm", the writer/reader contract one call at a time.
 * test_shm_arena.c: suite "shm" on the writer's space (tombstones, growth,
 * reuse in place, compaction, the change counters across a replacement),
 * and suite "shm_memory": the region stays within the layout's bound over
 * 1M updates, and when the live data shrinks.
 * test_shm_corrupt.c: suite "shm_corrupt": readers over truncated, garbage
 * and corrupted region files; every call must return an error code, never
 * crash.
 * test_shm_procs.c: suite "shm" on liveness and waiting, and suite
 * "shm_torture": forked reader processes hammer random keys while this
 * process writes, grows and compacts; every value carries its key and a
 * checksum, so a torn or misdirected read is detected.
 * shmtest.c: the helpers they share.
 *
 * Regions live in a fresh temp directory per test (under /dev/shm when it
 * exists, so rebuilt regions do not cause disk writeback), removed by the
 * fixture.  Child processes are only ever killed by the pid this program
 * forked.
 *
 * DISTKV_SHM_TORTURE_SECS (default 10) and DISTKV_SHM_SEED change the
 * torture run length and the random seed.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "shmtest.h"

/* ================= suite shm: the contract ================= */

/*
 * Declared here only: the suite's tests in test_shm_arena.c and
 * test_shm_procs.c run with this .init, .fini and timeout (Criterion wants
 * one declaration of a suite per program).
 */
TestSuite(shm, .init = tdir_setup, .fini = tdir_teardown, .timeout = 20.);

Test(shm, empty_region)
{
	struct shm_writer *w = wopen();
	struct shm_reader *r = ropen();
	struct shm_reader_info i;
	struct shm_writer_stats st;
	struct stat sb;

	ASSERT_MISS(r, "nothing");
	shm_reader_info(r, &i);
	shm_writer_stats(w, &st);
	cr_assert_eq(i.generation, 1);
	cr_assert_eq(i.live_entries, 0);
	cr_assert_eq(i.live_bytes, 0);
	cr_assert_eq(i.agent_pid, (uint32_t)getpid());
	cr_assert_not(i.closed);
	cr_assert_eq(i.region_size, st.region_size);
	cr_assert_eq(st.replacements, 0);
	/* the mode does not depend on the umask */
	cr_assert_eq(stat(region, &sb), 0);
	cr_assert_eq(sb.st_mode & 0777, 0600);
	cr_assert_eq((uint64_t)sb.st_size, st.region_size);
	shm_reader_close(r);
	shm_writer_close(w, true);
	cr_assert_neq(access(region, F_OK), 0, "unlink_file removes it");
}

Test(shm, put_get_update_delete)
{
	struct shm_writer *w = wopen();
	struct shm_reader *r = ropen();
	struct shm_writer_stats st;
	struct shm_reader_info i;
	char big[3000];

	put_str(w, "a", "1");
	put_str(w, "b", "two");
	ASSERT_GET(r, "a", "1");
	ASSERT_GET(r, "b", "two");
	ASSERT_MISS(r, "c");
	ASSERT_MISS(r, "");

	/* updates of growing and shrinking size, each visible at once */
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	put_str(w, "a", "a much longer value than before");
	ASSERT_GET(r, "a", "a much longer value than before");
	put_str(w, "a", "");
	ASSERT_GET(r, "a", "");
	put_str(w, "b", big);
	{
		char out[sizeof(big)];
		size_t len;

		cr_assert_eq(shm_reader_get(r, (const uint8_t *)"b", 1, out,
		    sizeof(out), &len, NULL), 0);
		cr_assert_eq(len, sizeof(big) - 1);
		cr_assert_eq(memcmp(out, big, len), 0);
	}

	shm_writer_stats(w, &st);
	shm_reader_info(r, &i);
	cr_assert_eq(st.live_entries, 2);
	cr_assert_eq(i.live_entries, 2);
	cr_assert_eq(st.live_bytes, shm_record_size(2, 1, 0) +
	    shm_record_size(2, 1, sizeof(big) - 1));
	cr_assert_eq(i.live_bytes, st.live_bytes);

	cr_assert_eq(shm_writer_del(w, (const uint8_t *)"a", 1), 0);
	ASSERT_MISS(r, "a");
	{
		char out[sizeof(big)];
		size_t len;

		cr_assert_eq(shm_reader_get(r, (const uint8_t *)"b", 1, out,
		    sizeof(out), &len, NULL), 0);
		cr_assert_eq(len, sizeof(big) - 1);
	}
	/* deleting what is absent is a no-op */
	cr_assert_eq(shm_writer_del(w, (const uint8_t *)"a", 1), 0);
	cr_assert_eq(shm_writer_del(w, (const uint8_t *)"zz", 2), 0);
	shm_writer_stats(w, &st);
	cr_assert_eq(st.live_entries, 1);
	cr_assert_eq(st.live_bytes, shm_record_size(2, 1, sizeof(big) - 1));
	/* and back */
	put_str(w, "a", "again");
	ASSERT_GET(r, "a", "again");
	shm_writer_stats(w, &st);
	cr_assert_eq(st.live_entries, 2);

	/* binary keys and values, NULs included */
	{
		const uint8_t k[] = { 0x93, 0x00, 0xc0, 0xff };
		const uint8_t v[] = { 0x00, 0x01, 0x00 };
		struct shm_meta m = meta(1, 1, "n1");
		uint8_t out[8];
		size_t len;

		cr_assert_eq(shm_writer_put(w, k, sizeof(k), v, sizeof(v), &m),
		    0);
		cr_assert_eq(shm_reader_get(r, k, sizeof(k), out, sizeof(out),
		    &len, NULL), 0);
		cr_assert_eq(len, sizeof(v));
		cr_assert_eq(memcmp(out, v, sizeof(v)), 0);
		/* a prefix of the key is another key */
		cr_assert_eq(shm_reader_get(r, k, 3, out, sizeof(out), &len,
		    NULL), -ENOENT);
	}
	shm_reader_close(r);
	shm_writer_close(w, false);
}

Test(shm, meta_and_node_name)
{
	struct shm_writer *w = wopen();
	struct shm_reader *r = ropen();
	struct shm_read_meta rm;
	char node[100], out[16];
	struct shm_meta m;
	size_t len;

	m = meta(42, 77, "node-a");
	cr_assert_eq(shm_writer_put(w, (const uint8_t *)"k", 1,
	    (const uint8_t *)"v", 1, &m), 0);
	memset(&rm, 0x55, sizeof(rm));
	cr_assert_eq(shm_reader_get(r, (const uint8_t *)"k", 1, out,
	    sizeof(out), &len, &rm), 0);
	cr_assert_eq(rm.tick, 42);
	cr_assert_eq(rm.tock, 77);
	cr_assert_str_eq(rm.node, "node-a");

	/* a node name longer than SHM_NODE_MAX is cut, still terminated */
	memset(node, 'N', sizeof(node) - 1);
	node[sizeof(node) - 1] = '\0';
	m = meta(43, 78, node);
	cr_assert_eq(shm_writer_put(w, (const uint8_t *)"k", 1,
	    (const uint8_t *)"w", 1, &m), 0);
	cr_assert_eq(shm_reader_get(r, (const uint8_t *)"k", 1, out,
	    sizeof(out), &len, &rm), 0);
	cr_assert_eq(rm.tick, 43);
	cr_assert_eq(strlen(rm.node), SHM_NODE_MAX);
	cr_assert_eq(memcmp(rm.node, node, SHM_NODE_MAX), 0);
	cr_assert_eq(out[0], 'w');

	/* an empty node name */
	m = meta(44, 79, "");
	cr_assert_eq(shm_writer_put(w, (const uint8_t *)"k", 1,
	    (const uint8_t *)"x", 1, &m), 0);
	cr_assert_eq(shm_reader_get(r, (const uint8_t *)"k", 1, out,
	    sizeof(out), &len, &rm), 0);
	cr_assert_str_eq(rm.node, "");
	shm_reader_close(r);
	shm_writer_close(w, false);
}

Test(shm, small_buffer_reports_size)
{
	struct shm_writer *w = wopen();
	struct shm_reader *r = ropen();
	char out[64];
	size_t len = 0;

	put_str(w, "k", "0123456789");
	cr_assert_eq(shm_reader_get(r, (const uint8_t *)"k", 1, out, 4, &len,
	    NULL), -ENOBUFS);
	cr_assert_eq(len, 10, "*len is the size needed");
	cr_assert_eq(shm_reader_get(r, (const uint8_t *)"k", 1, NULL, 0, &len,
	    NULL), -ENOBUFS);
	cr_assert_eq(len, 10);
	cr_assert_eq(shm_reader_get(r, (const uint8_t *)"k", 1, out, 10, &len,
	    NULL), 0, "exactly the size fits");
	cr_assert_eq(memcmp(out, "0123456789", 10), 0);
	shm_reader_close(r);
	shm_writer_close(w, false);
}

Test(shm, oversized_put_is_refused)
{
	struct shm_writer *w = wopen();
	struct shm_meta m = meta(1, 1, "n1");
	static const uint8_t v[1];

	/* the value length is checked before any value byte is read */
	cr_assert_eq(shm_writer_put(w, (const uint8_t *)"k", 1, v,
	    (size_t)UINT32_MAX, &m), -E2BIG);
	shm_writer_close(w, false);
}

Test(shm, scan_sees_exactly_the_live_keys)
{
	struct shm_writer *w = wopen();
	struct shm_reader *r = ropen();
	struct scan_acc a;
	char k[32], v[32];

	memset(&a, 0, sizeof(a));
	cr_assert_eq(shm_reader_scan(r, scan_cb, &a), 0);
	cr_assert_eq(a.calls, 0, "an empty region scans empty");
	for (int i = 0; i < 1000; i++) {
		snprintf(k, sizeof(k), "key%d", i);
		snprintf(v, sizeof(v), "v%d", i);
		put_str(w, k, v);
	}
	for (int i = 0; i < 1000; i += 3) {
		snprintf(k, sizeof(k), "key%d", i);
		shm_writer_del(w, (const uint8_t *)k, strlen(k));
	}
	memset(&a, 0, sizeof(a));
	cr_assert_eq(shm_reader_scan(r, scan_cb, &a), 0);
	cr_assert_eq(a.bad, 0);
	for (int i = 0; i < 1000; i++)
		cr_assert_eq(a.seen[i], i % 3 != 0, "key%d", i);

	memset(&a, 0, sizeof(a));
	a.stop_after = 5;
	cr_assert_eq(shm_reader_scan(r, scan_cb, &a), 0, "a stop is no error");
	cr_assert_eq(a.calls, 5);
	shm_reader_close(r);
	shm_writer_close(w, false);
}

/* A msgpack str of body bytes 'a', 'b', ... into v; its length. */
static size_t
pack_str_value(uint8_t *v, size_t body)
{
	size_t h;

	if (body < 32) {
		v[0] = (uint8_t)(0xa0 | body);
		h = 1;
	} else if (body < 256) {
		v[0] = 0xd9;
		v[1] = (uint8_t)body;
		h = 2;
	} else if (body < 65536) {
		v[0] = 0xda;
		v[1] = (uint8_t)(body >> 8);
		v[2] = (uint8_t)body;
		h = 3;
	} else {
		v[0] = 0xdb;
		v[1] = (uint8_t)(body >> 24);
		v[2] = (uint8_t)(body >> 16);
		v[3] = (uint8_t)(body >> 8);
		v[4] = (uint8_t)body;
		h = 5;
	}
	for (size_t i = 0; i < body; i++)
		v[h + i] = (uint8_t)('a' + i % 26);
	return h + body;
}

static int
get_str_hashed(struct shm_reader *r, const char *k, char *out, size_t cap)
{
	return shm_reader_get_str_hashed(r, (const uint8_t *)k, strlen(k),
	    shm_key_hash((const uint8_t *)k, strlen(k)), out, cap);
}

/*
 * shm_reader_get_str_hashed (the typed getters' read): the body of a str
 * value and a NUL for every header width, -ENOBUFS when body + NUL do not
 * fit or the value is no well-formed str, -ENOENT for a missing key.
 */
Test(shm, get_str_hashed_every_header)
{
	static const size_t bodies[] = { 0, 5, 31, 32, 255, 256, 65535,
	    65536 };
	struct shm_writer *w = wopen();
	struct shm_reader *r = ropen();
	struct shm_meta m = meta(1, 1, "n1");
	static uint8_t v[65536 + 5];
	static char out[65536 + 2];
	char k[32];

	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		size_t n = bodies[i], len = pack_str_value(v, n);

		snprintf(k, sizeof(k), "s%zu", n);
		cr_assert_eq(shm_writer_put(w, (const uint8_t *)k, strlen(k),
		    v, len, &m), 0);
		memset(out, 'X', sizeof(out));
		cr_assert_eq(get_str_hashed(r, k, out, n + 1), 0, "%s", k);
		cr_assert_eq(out[n], '\0', "%s: NUL after the body", k);
		cr_assert_eq(memcmp(out, v + (len - n), n), 0, "%s: body", k);
		cr_assert_eq(get_str_hashed(r, k, out, n), -ENOBUFS,
		    "%s: no room for the NUL", k);
	}
	/* an int, and a str header that claims one byte more than is there */
	v[0] = 0x2a;
	cr_assert_eq(shm_writer_put(w, (const uint8_t *)"int", 3, v, 1, &m),
	    0);
	cr_assert_eq(get_str_hashed(r, "int", out, sizeof(out)), -ENOBUFS);
	v[0] = 0xa0 | 4;
	memcpy(v + 1, "abc", 3);
	cr_assert_eq(shm_writer_put(w, (const uint8_t *)"short", 5, v, 4, &m),
	    0);
	cr_assert_eq(get_str_hashed(r, "short", out, sizeof(out)), -ENOBUFS);
	v[0] = 0xd9;		/* str8 cut inside its header */
	cr_assert_eq(shm_writer_put(w, (const uint8_t *)"cut", 3, v, 1, &m),
	    0);
	cr_assert_eq(get_str_hashed(r, "cut", out, sizeof(out)), -ENOBUFS);
	cr_assert_eq(get_str_hashed(r, "missing", out, sizeof(out)), -ENOENT);
	shm_reader_close(r);
	shm_writer_close(w, false);
}
