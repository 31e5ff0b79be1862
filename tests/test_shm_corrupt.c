/*
 * tests/test_shm (see test_shm.c): suite "shm_corrupt", readers over
 * truncated, garbage and corrupted region files, and over what is no
 * regular file; every call must return an error code, never crash.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <xxhash.h>

#include "shmtest.h"

/* Overwrite n bytes of the file at off. */
static void
patch(const char *path, uint64_t off, const void *bytes, size_t n)
{
	int fd = open(path, O_RDWR);

	cr_assert_geq(fd, 0);
	cr_assert_eq(pwrite(fd, bytes, n, (off_t)off), (ssize_t)n);
	close(fd);
}

static void
patch_u64(const char *path, uint64_t off, uint64_t v)
{
	patch(path, off, &v, sizeof(v));
}

static void
patch_u32(const char *path, uint64_t off, uint32_t v)
{
	patch(path, off, &v, sizeof(v));
}

static void
patch_u8(const char *path, uint64_t off, uint8_t v)
{
	patch(path, off, &v, sizeof(v));
}

/* Slot index of a key in a region with no collisions on its probe. */
static uint64_t
slot_of(const struct peek *pk, const char *k)
{
	return XXH3_64bits(k, strlen(k)) & (pk->h.table_slots - 1);
}

static uint64_t
slot_off(uint64_t idx)
{
	return SHM_HEADER_SIZE + idx * SHM_SLOT_SIZE;
}

/* ================= suite shm_corrupt ================= */

TestSuite(shm_corrupt, .init = tdir_setup, .fini = tdir_teardown,
    .timeout = 60.);

/* A populated, closed region at path; returns its size. */
static size_t
make_region(int nkeys)
{
	struct shm_writer *w = wopen();
	struct shm_writer_stats st;
	char k[32], v[64];

	for (int i = 0; i < nkeys; i++) {
		snprintf(k, sizeof(k), "key%d", i);
		snprintf(v, sizeof(v), "value%d", i);
		put_str(w, k, v);
	}
	for (int i = 0; i < nkeys; i += 5) {
		snprintf(k, sizeof(k), "key%d", i);
		shm_writer_del(w, (const uint8_t *)k, strlen(k));
	}
	shm_writer_stats(w, &st);
	shm_writer_close(w, false);
	return (size_t)st.region_size;
}

static void
write_file(const char *path, const void *buf, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, buf, n), (ssize_t)n);
	close(fd);
}

static uint8_t *
read_file(const char *path, size_t *n)
{
	struct stat st;
	uint8_t *buf;
	int fd = open(path, O_RDONLY);

	cr_assert_geq(fd, 0);
	cr_assert_eq(fstat(fd, &st), 0);
	*n = (size_t)st.st_size;
	buf = malloc(*n ? *n : 1);
	cr_assert_not_null(buf);
	cr_assert_eq(read(fd, buf, *n), (ssize_t)*n);
	close(fd);
	return buf;
}

static int
try_open(void)
{
	struct shm_reader *r = NULL;
	int rc = shm_reader_open(region, &r);

	if (rc == 0)
		shm_reader_close(r);
	else
		cr_assert_null(r, "out-param cleared on failure");
	return rc;
}

Test(shm_corrupt, open_rejects_bad_files)
{
	uint8_t *good, junk[4096];
	size_t n;

	cr_assert_eq(try_open(), -ENOENT);
	write_file(region, "", 0);
	cr_assert_eq(try_open(), -EBADMSG, "empty file");
	memset(junk, 0xa5, sizeof(junk));
	write_file(region, junk, 100);
	cr_assert_eq(try_open(), -EBADMSG, "shorter than a header");
	write_file(region, junk, sizeof(junk));
	cr_assert_eq(try_open(), -EBADMSG, "garbage");

	make_region(50);
	good = read_file(region, &n);
	cr_assert_eq(try_open(), 0);
	/* truncated: at any length, the size no longer matches */
	write_file(region, good, n - 1);
	cr_assert_eq(try_open(), -EBADMSG, "1 byte short");
	write_file(region, good, n / 2);
	cr_assert_eq(try_open(), -EBADMSG, "half");
	write_file(region, good, SHM_HEADER_SIZE);
	cr_assert_eq(try_open(), -EBADMSG, "header only");
	write_file(region, good, SHM_HEADER_SIZE - 1);
	cr_assert_eq(try_open(), -EBADMSG, "part of a header");
	/* longer than it says */
	{
		uint8_t *longer = calloc(1, n + 4096);

		memcpy(longer, good, n);
		write_file(region, longer, n + 4096);
		free(longer);
		cr_assert_eq(try_open(), -EBADMSG, "extended");
	}

	/* every fixed header field, one at a time */
	struct { size_t off; uint64_t val; int width; const char *what; }
	    bad[] = {
		{ 0, 0x31304d48535645ULL, 8, "magic" },
		{ 8, 1, 4, "format 1 (the old layout)" },
		{ 8, 3, 4, "format 3" },
		{ 12, 128, 4, "header_size" },
		{ 16, n - 8, 8, "region_size" },
		{ 16, UINT64_MAX, 8, "region_size max" },
		{ 24, 0, 8, "table_off" },
		{ 24, 512, 8, "table_off" },
		{ 32, 0, 8, "table_slots 0" },
		{ 32, 1000, 8, "table_slots not a power of two" },
		{ 32, 1ULL << 40, 8, "table_slots beyond the file" },
		{ 32, 1ULL << 63, 8, "table_slots overflow" },
		{ 40, 0, 8, "arena_off" },
		{ 40, UINT64_MAX - 7, 8, "arena_off max" },
		{ 48, n, 8, "arena_size beyond the file" },
		{ 48, UINT64_MAX, 8, "arena_size max" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_file(region, good, n);
		if (bad[i].width == 8)
			patch_u64(region, bad[i].off, bad[i].val);
		else
			patch_u32(region, bad[i].off, (uint32_t)bad[i].val);
		cr_assert_eq(try_open(), -EBADMSG, "%s", bad[i].what);
	}
	free(good);
}

/*
 * Corrupt one slot or record of a known key and check the lookup: a bad
 * offset or length under a stable seq is -EBADMSG, never followed.
 */
Test(shm_corrupt, bad_slots_and_records_are_errors)
{
	struct peek pk;
	uint8_t *good;
	size_t n;
	uint64_t idx, so, rec, moff, tagbits, rlen;
	struct shm_slot s;
	struct shm_record rh;
	struct scan_acc a;

	{
		struct shm_writer *w = wopen();

		put_str(w, "target", "value");
		shm_writer_close(w, false);
	}
	good = read_file(region, &n);
	peek_file(region, &pk);
	idx = slot_of(&pk, "target");
	so = slot_off(idx);
	memcpy(&s, good + so, sizeof(s));
	cr_assert_eq(shm_slot_state(s.len_state), SHM_SLOT_LIVE,
	    "no collision on this probe");
	cr_assert_eq(shm_slot_tag(s.tag_off),
	    shm_hash_tag(XXH3_64bits("target", 6)));
	rec = pk.h.arena_off + shm_slot_off(s.tag_off);
	rlen = shm_slot_len(s.len_state);
	memcpy(&rh, good + rec, sizeof(rh));
	moff = shm_meta_off(rh.key_len, rh.val_len);
	cr_assert_eq(rlen, shm_record_size(2, 6, 5));
	cr_assert_eq(good[rec + moff + 16], 2, "node_len where it belongs");
	tagbits = s.tag_off & ~(uint64_t)UINT32_MAX;

	/*
	 * want: the result of a get that also reads the metadata; a get
	 * without it (m == NULL) gives the same, except for a bad node name
	 * length (meta_only): it never reads that byte and finds the value.
	 */
	struct { uint64_t off; uint64_t val; int width; int want;
	    const char *what; int meta_only; } bad[] = {
		/* tag_off: tag in the high half, offset / 8 in the low */
		{ so + 8, tagbits | (pk.h.arena_size + 8) >> 3, 8, -EBADMSG,
		    "rec_off out", 0 },
		{ so + 8, tagbits | UINT32_MAX, 8, -EBADMSG, "rec_off max", 0 },
		{ so + 8, tagbits | (pk.h.arena_size - 8) >> 3, 8, -EBADMSG,
		    "record past the arena end", 0 },
		/* len_state: length in bytes | state */
		{ so + 4, (rlen + 4) | SHM_SLOT_LIVE, 4, -EBADMSG,
		    "rec_len not a multiple of 8", 0 },
		{ so + 4, 8 | SHM_SLOT_LIVE, 4, -EBADMSG,
		    "rec_len < header", 0 },
		{ so + 4, (rlen - 8) | SHM_SLOT_LIVE, 4, -EBADMSG,
		    "rec_len cuts the node name", 0 },
		{ so + 4, 0xfffffff8u | SHM_SLOT_LIVE, 4, -EBADMSG,
		    "rec_len huge", 0 },
		{ rec + 0, UINT32_MAX, 4, -EBADMSG, "key_len huge", 0 },
		{ rec + 4, UINT32_MAX, 4, -EBADMSG, "val_len huge", 0 },
		{ rec + 4, 1000, 4, -EBADMSG, "val_len past rec_len", 0 },
		{ rec + 4, rlen, 4, -EBADMSG,
		    "val_len puts the meta past rec_len", 0 },
		{ rec + moff + 16, 65, 1, -EBADMSG, "node_len > 64", 1 },
		{ rec + moff + 16, 255, 1, -EBADMSG, "node_len 255", 1 },
		{ rec + moff + 16, 64, 1, -EBADMSG, "node_len past rec_len",
		    1 },
		{ so + 4, rlen | 3, 4, -ENOENT, "unknown state: skipped", 0 },
		{ so + 4, rlen | SHM_SLOT_DELETED, 4, -ENOENT, "deleted", 0 },
		{ so + 4, 0, 4, -ENOENT, "empty", 0 },
		{ so + 12, shm_slot_tag(s.tag_off) ^ 1, 4, -ENOENT,
		    "other tag", 0 },
		{ rec + 0, 5, 4, -ENOENT, "other key length", 0 },
		{ rec + 8, 'T', 1, -ENOENT, "other key bytes", 0 },
		{ so + 0, 1, 4, -EAGAIN, "seq odd forever: bounded retry", 0 },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct shm_reader *r;
		struct shm_read_meta rm;
		char out[64];
		size_t len = 0;
		int rc;

		write_file(region, good, n);
		if (bad[i].width == 8)
			patch_u64(region, bad[i].off, bad[i].val);
		else if (bad[i].width == 4)
			patch_u32(region, bad[i].off, (uint32_t)bad[i].val);
		else
			patch_u8(region, bad[i].off, (uint8_t)bad[i].val);
		r = ropen();
		rc = shm_reader_get(r, (const uint8_t *)"target", 6, out,
		    sizeof(out), &len, &rm);
		cr_assert_eq(rc, bad[i].want, "%s: got %d", bad[i].what, rc);
		cr_assert_leq(len, sizeof(out));
		len = 0;
		rc = shm_reader_get(r, (const uint8_t *)"target", 6, out,
		    sizeof(out), &len, NULL);
		if (bad[i].meta_only) {
			cr_assert_eq(rc, 0, "%s, no meta: got %d", bad[i].what,
			    rc);
			cr_assert(len == 5 && memcmp(out, "value", 5) == 0);
		} else
			cr_assert_eq(rc, bad[i].want, "%s, no meta: got %d",
			    bad[i].what, rc);
		cr_assert_leq(len, sizeof(out));
		/* a scan skips what it cannot trust, or reports busy */
		memset(&a, 0, sizeof(a));
		rc = shm_reader_scan(r, scan_cb, &a);
		cr_assert(rc == 0 || (rc == -EAGAIN && bad[i].want == -EAGAIN),
		    "%s: scan %d", bad[i].what, rc);
		shm_reader_close(r);
	}
	free(good);
}

/*
 * A table whose every slot is live with a foreign hash has no empty slot
 * to end a probe: the lookup must stop after one pass.
 */
Test(shm_corrupt, full_table_lookup_terminates)
{
	struct shm_reader *r;
	struct peek pk;
	/* tag 1, offset 0, 64 bytes */
	struct shm_slot s = { 0, 64 | SHM_SLOT_LIVE, (uint64_t)1 << 32 };
	uint8_t *tab;
	char out[8];
	size_t len;

	make_region(0);
	peek_file(region, &pk);
	tab = malloc(pk.h.table_slots * SHM_SLOT_SIZE);
	for (uint64_t i = 0; i < pk.h.table_slots; i++)
		memcpy(tab + i * SHM_SLOT_SIZE, &s, sizeof(s));
	patch(region, SHM_HEADER_SIZE, tab, pk.h.table_slots * SHM_SLOT_SIZE);
	free(tab);
	r = ropen();
	cr_assert_eq(shm_reader_get(r, (const uint8_t *)"k", 1, out,
	    sizeof(out), &len, NULL), -ENOENT);
	shm_reader_close(r);
}

/* Results a reader may give on a damaged region. */
static bool
allowed_rc(int rc)
{
	return rc == 0 || rc == -ENOENT || rc == -ENOBUFS || rc == -EAGAIN ||
	    rc == -EBADMSG;
}

static int
scan_any(void *arg, const uint8_t *key, size_t klen, const uint8_t *val,
    size_t vlen)
{
	uint64_t *sum = arg;

	/* touch every byte handed out: ASan checks the bounds */
	for (size_t i = 0; i < klen; i++)
		*sum += key[i];
	for (size_t i = 0; i < vlen; i++)
		*sum += val[i];
	return 0;
}

/*
 * Random damage to a populated region: bytes, words and offsets anywhere,
 * more often in the header, slots and record headers.  Every call returns
 * an allowed code; copies stay within the caller's buffer.
 */
Test(shm_corrupt, random_damage_never_crashes)
{
	uint64_t seed = test_seed() ^ 0xc0ffee, sum = 0;
	uint8_t *good, *bad;
	size_t n;
	struct peek pk;
	int opened = 0, hits = 0, errors = 0;

	make_region(200);
	good = read_file(region, &n);
	peek_file(region, &pk);
	bad = malloc(n);
	for (int iter = 0; iter < 1000; iter++) {
		struct shm_reader *r = NULL;
		int nflip = 1 + (int)(rnd(&seed) % 8), rc;

		memcpy(bad, good, n);
		for (int f = 0; f < nflip; f++) {
			uint64_t where, r0 = rnd(&seed) % 8;

			if (r0 == 0)	/* header, skipping `superseded` (its
					 * re-open loop only slows this down) */
				where = rnd(&seed) % 64;
			else if (r0 <= 3)
				where = SHM_HEADER_SIZE + rnd(&seed) %
				    (pk.h.table_slots * SHM_SLOT_SIZE);
			else if (r0 <= 6)
				where = pk.h.arena_off + rnd(&seed) %
				    (pk.h.arena_used + 1);
			else
				where = rnd(&seed) % n;
			if (where >= n)
				continue;
			if (rnd(&seed) % 2 && where + 8 <= n) {
				uint64_t v = rnd(&seed);

				if (rnd(&seed) % 2)
					v %= 4096;	/* plausible offsets */
				memcpy(bad + where, &v, 8);
			} else
				bad[where] ^= (uint8_t)(1u << (rnd(&seed) % 8));
		}
		write_file(region, bad, n);
		rc = shm_reader_open(region, &r);
		if (rc != 0) {
			cr_assert_eq(rc, -EBADMSG, "open: %d", rc);
			continue;
		}
		opened++;
		for (int i = 0; i < 200; i++) {
			char k[32], out[16];
			size_t len = 0;

			snprintf(k, sizeof(k), "key%d", i);
			rc = shm_reader_get(r, (const uint8_t *)k, strlen(k),
			    out, (size_t)(i % 3) * 6, &len, NULL);
			cr_assert(allowed_rc(rc), "get %s: %d", k, rc);
			if (rc == 0)
				cr_assert_leq(len, (size_t)(i % 3) * 6);
			hits += rc == 0;
			errors += rc == -EBADMSG;
		}
		rc = shm_reader_scan(r, scan_any, &sum);
		cr_assert(rc == 0 || rc == -EAGAIN, "scan: %d", rc);
		{
			struct shm_reader_info i;

			shm_reader_info(r, &i);
			(void)shm_reader_changes(r);
			(void)shm_reader_seq(r);
			(void)shm_reader_fresh(r, 1000);
			rc = shm_reader_alive(r, 1000);
			cr_assert(rc == 0 || rc == 1);
			rc = shm_reader_wait(r, shm_reader_seq(r), 0);
			cr_assert(rc == 0 || rc == -ETIMEDOUT, "wait: %d", rc);
		}
		shm_reader_close(r);
	}
	cr_log_info("random damage: %d of 1000 opened, %d hits, %d EBADMSG",
	    opened, hits, errors);
	cr_assert_gt(opened, 300, "the damage should mostly spare the header");
	cr_assert_gt(errors, 0, "some damage is detected as such");
	free(good);
	free(bad);
}

/*
 * A region path can come from a greeting, i.e. from whoever answers on a
 * socket: a FIFO there must not block the opener (found by
 * tests/fuzz/fuzz_peer.c), and nothing but a regular file is opened.
 */
Test(shm_corrupt, only_regular_files_are_opened, .timeout = 5.)
{
	struct shm_reader *r = NULL;

	cr_assert_eq(mkfifo(region, 0600), 0, "mkfifo: %s", strerror(errno));
	cr_assert_eq(shm_reader_open(region, &r), -EBADMSG);
	cr_assert_null(r);
	cr_assert_eq(unlink(region), 0);
	cr_assert_eq(shm_reader_open("/dev/null", &r), -EBADMSG);
	cr_assert_null(r);
}
