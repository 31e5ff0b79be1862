/*
 * tests/test_shm (see test_shm.c): the writer's space.  Suite "shm":
 * tombstones, growth, reuse in place, compaction and the change counters
 * across a replacement; suite "shm_memory": the region stays within the
 * layout's bound over 1M updates, and when the live data shrinks.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "shmtest.h"

/* A read-only mapping of the file currently at region (survives renames). */
struct rawmap {
	const uint8_t *base;
	size_t size;
	const struct shm_header *h;
};

static void
rawmap_open(struct rawmap *m)
{
	struct stat st;
	int fd = open(region, O_RDONLY);

	cr_assert_geq(fd, 0);
	cr_assert_eq(fstat(fd, &st), 0);
	m->size = (size_t)st.st_size;
	m->base = mmap(NULL, m->size, PROT_READ, MAP_SHARED, fd, 0);
	cr_assert_neq(m->base, MAP_FAILED);
	close(fd);
	m->h = (const struct shm_header *)(const void *)m->base;
}

static void
rawmap_close(struct rawmap *m)
{
	munmap((void *)m->base, m->size);
}

/* ============== suite shm (declared in test_shm.c) ============== */

Test(shm, tombstones_keep_probes_intact)
{
	struct shm_writer *w = wopen();
	struct shm_reader *r = ropen();
	struct shm_writer_stats st;
	char k[32], v[32];
	struct peek pk;

	/* 700 keys in 1024 slots: long probe runs, no replacement yet */
	for (int i = 0; i < 700; i++) {
		snprintf(k, sizeof(k), "key%d", i);
		snprintf(v, sizeof(v), "v%d", i);
		put_str(w, k, v);
	}
	for (int i = 0; i < 700; i += 2) {
		snprintf(k, sizeof(k), "key%d", i);
		cr_assert_eq(shm_writer_del(w, (const uint8_t *)k, strlen(k)),
		    0);
	}
	shm_writer_stats(w, &st);
	cr_assert_eq(st.replacements, 0, "this test wants one region");
	peek_file(region, &pk);
	cr_assert_eq(pk.used_slots, 700, "deleted slots stay tombstones");
	cr_assert_eq(pk.live_slots, 350);
	for (int i = 0; i < 700; i++) {
		snprintf(k, sizeof(k), "key%d", i);
		snprintf(v, sizeof(v), "v%d", i);
		if (i % 2 == 0)
			ASSERT_MISS(r, k);
		else
			ASSERT_GET(r, k, v);
	}
	/* re-inserting reuses tombstones: no new slot is used */
	for (int i = 0; i < 700; i += 2) {
		snprintf(k, sizeof(k), "key%d", i);
		put_str(w, k, "back");
	}
	peek_file(region, &pk);
	cr_assert_eq(pk.used_slots, 700);
	cr_assert_eq(pk.live_slots, 700);
	for (int i = 0; i < 700; i++) {
		snprintf(k, sizeof(k), "key%d", i);
		snprintf(v, sizeof(v), "v%d", i);
		ASSERT_GET(r, k, i % 2 == 0 ? "back" : v);
	}
	shm_writer_stats(w, &st);
	cr_assert_eq(st.live_entries, 700);
	shm_reader_close(r);
	shm_writer_close(w, false);
}

Test(shm, growth_replaces_region_and_readers_follow)
{
	struct shm_writer *w = wopen();
	struct shm_reader *r = ropen();
	struct shm_writer_stats st;
	struct shm_reader_info i;
	struct rawmap old;
	struct peek pk;
	char k[32], v[300];

	struct stat sb;
	int oldfd;

	rawmap_open(&old);
	oldfd = open(region, O_RDONLY);
	cr_assert_geq(oldfd, 0);
	put_str(w, "first", "1");
	ASSERT_GET(r, "first", "1");
	/* past 3/4 of 1024 slots and past the 256 KiB arena */
	for (int n = 0; n < 3000; n++) {
		snprintf(k, sizeof(k), "key%d", n);
		snprintf(v, sizeof(v), "%0*d", 200, n);
		put_str(w, k, v);
	}
	shm_writer_stats(w, &st);
	cr_assert_geq(st.replacements, 2, "table and arena grew");
	cr_assert_eq(st.generation, 1 + st.replacements);
	/* the old file is marked, its readers move on */
	cr_assert_eq(__atomic_load_n(&old.h->superseded, __ATOMIC_ACQUIRE), 1);
	cr_assert_eq(old.h->generation, 1);
	/*
	 * A mapped file is never shrunk (readers would take SIGBUS): it is
	 * replaced by a rename, and the old inode keeps its size.
	 */
	cr_assert_eq(fstat(oldfd, &sb), 0);
	cr_assert_eq((size_t)sb.st_size, old.size);
	close(oldfd);
	rawmap_close(&old);

	ASSERT_GET(r, "first", "1");
	for (int n = 0; n < 3000; n++) {
		snprintf(k, sizeof(k), "key%d", n);
		snprintf(v, sizeof(v), "%0*d", 200, n);
		ASSERT_GET(r, k, v);
	}
	shm_reader_info(r, &i);
	cr_assert_eq(i.generation, st.generation);
	cr_assert_eq(i.live_entries, 3001);
	cr_assert_eq(i.region_size, st.region_size);

	/* the layout promises: load <= 0.75, arena >= the live records */
	peek_file(region, &pk);
	cr_assert_leq(pk.used_slots * 4, pk.h.table_slots * 3);
	cr_assert_eq(pk.live_slots, 3001);
	cr_assert_geq(pk.h.arena_size, pk.h.live_bytes);
	cr_assert_eq(pk.h.arena_off, SHM_HEADER_SIZE +
	    pk.h.table_slots * SHM_SLOT_SIZE);
	/* no temp file is left behind */
	{
		char tmp[256];

		snprintf(tmp, sizeof(tmp), "%s.new", region);
		cr_assert_neq(access(tmp, F_OK), 0);
	}
	shm_reader_close(r);
	shm_writer_close(w, false);
}

/*
 * An overwrite frees its old record and a delete its record: a later
 * record of that size (or smaller) takes the space in place, so steady
 * overwrites neither grow the arena nor replace the region.
 */
Test(shm, overwrites_and_deletes_reuse_the_space_in_place)
{
	struct shm_writer *w = wopen();
	struct shm_reader *r = ropen();
	struct shm_writer_stats st;
	struct peek pk;
	char k[32], v[1100], out[sizeof(v)];
	uint64_t used;

	memset(v, 'v', sizeof(v) - 1);
	v[sizeof(v) - 1] = '\0';
	for (int n = 0; n < 100; n++) {
		snprintf(k, sizeof(k), "key%d", n);
		put_str(w, k, v);
	}
	peek_file(region, &pk);
	used = pk.h.arena_used;
	/* 20 more values per key, of the same size: 2 MiB of records */
	for (int round = 0; round < 20; round++)
		for (int n = 0; n < 100; n++) {
			snprintf(k, sizeof(k), "key%d", n);
			v[0] = (char)('a' + round);
			put_str(w, k, v);
		}
	/* a deleted key's space goes to a new key, a smaller value too */
	for (int n = 0; n < 50; n++) {
		snprintf(k, sizeof(k), "key%d", n);
		cr_assert_eq(shm_writer_del(w, (const uint8_t *)k, strlen(k)),
		    0);
		snprintf(k, sizeof(k), "new%d", n);
		put_str(w, k, v + (n % 2) * 500);
	}
	shm_writer_stats(w, &st);
	cr_assert_eq(st.replacements, 0, "the first region holds it all");
	cr_assert_eq(st.live_entries, 100);
	peek_file(region, &pk);
	/*
	 * the arena grew by the one record put before any hole existed
	 * (the first 100 are all one size, so one is used / 100)
	 */
	cr_assert_eq(pk.h.arena_used, used + used / 100, "%" PRIu64
	    " bytes used, %" PRIu64 " after the first values",
	    pk.h.arena_used, used);
	for (int n = 0; n < 100; n++) {
		bool gone = n < 50;

		snprintf(k, sizeof(k), "key%d", n);
		cr_assert_eq(get_str(r, k, out, sizeof(out)), gone ? -ENOENT :
		    0, "%s", k);
		if (!gone) {
			cr_assert_eq(out[0], 'a' + 19);
			cr_assert_eq(strlen(out), sizeof(v) - 1);
			continue;
		}
		snprintf(k, sizeof(k), "new%d", n);
		cr_assert_eq(get_str(r, k, out, sizeof(out)), 0, "%s", k);
		cr_assert_str_eq(out, v + (n % 2) * 500);
	}
	shm_reader_close(r);
	shm_writer_close(w, false);
}

Test(shm, compaction_drops_garbage_and_tombstones)
{
	struct shm_writer *w = wopen();
	struct shm_reader *r = ropen();
	struct shm_writer_stats st;
	struct peek pk;
	char k[32], v[1100];
	uint64_t gen;

	/*
	 * 100 keys updated over and over with values that grow every
	 * round: no hole fits a later value, garbage fills the arena
	 */
	memset(v, 'v', sizeof(v) - 1);
	v[sizeof(v) - 1] = '\0';
	for (int round = 0; round < 20; round++)
		for (int n = 0; n < 100; n++) {
			snprintf(k, sizeof(k), "key%d", n);
			v[0] = (char)('a' + round);
			v[500 + round * 25] = '\0';
			put_str(w, k, v);
			v[500 + round * 25] = 'v';
		}
	shm_writer_stats(w, &st);
	cr_assert_geq(st.replacements, 1);
	cr_assert_eq(st.live_entries, 100);
	peek_file(region, &pk);
	cr_assert_eq(pk.used_slots, 100, "a compacted table has no garbage");
	cr_assert_eq(pk.h.live_bytes, st.live_bytes);
	cr_assert_leq(pk.h.arena_used, pk.h.arena_size);
	for (int n = 0; n < 100; n++) {
		char out[sizeof(v)];

		snprintf(k, sizeof(k), "key%d", n);
		cr_assert_eq(get_str(r, k, out, sizeof(out)), 0);
		cr_assert_eq(out[0], 'a' + 19);
		cr_assert_eq(strlen(out), 500 + 19 * 25);
	}

	/* insert + delete churn on new keys fills the table with tombstones */
	gen = st.generation;
	for (int n = 0; n < 2000; n++) {
		snprintf(k, sizeof(k), "tmp%d", n);
		put_str(w, k, "t");
		cr_assert_eq(shm_writer_del(w, (const uint8_t *)k, strlen(k)),
		    0);
	}
	shm_writer_stats(w, &st);
	cr_assert_gt(st.generation, gen, "tombstones force a rebuild");
	cr_assert_eq(st.live_entries, 100);
	peek_file(region, &pk);
	cr_assert_leq(pk.used_slots * 4, pk.h.table_slots * 3);
	ASSERT_MISS(r, "tmp5");
	snprintf(k, sizeof(k), "key%d", 42);
	{
		char out[sizeof(v)];

		cr_assert_eq(get_str(r, k, out, sizeof(out)), 0);
	}
	shm_reader_close(r);
	shm_writer_close(w, false);
}

/*
 * The change counters (changes, and the futex word change_seq) must name
 * one state each.  A replacement bumps the OLD region's counters after the
 * new region copied them, so the value the old region ends with must not
 * come back in the new region for a different state: a reader that took
 * the counter from the old region just before it moved would then take
 * the next change for one it has seen, and miss it (a lost wake-up for
 * distkv_shm_wait, a missed update for a poller of distkv_shm_changes).
 */
Test(shm, change_counters_are_unique_across_replacement)
{
	struct shm_writer *w = wopen();
	struct shm_writer_stats st;
	struct rawmap old, cur;
	char k[32], v[300];
	uint64_t old_changes;
	uint32_t old_seq;
	int n;

	rawmap_open(&old);
	memset(v, 'v', sizeof(v) - 1);
	v[sizeof(v) - 1] = '\0';
	/* fill until exactly the put that replaces the region */
	for (n = 0; n < 10000; n++) {
		snprintf(k, sizeof(k), "key%d", n);
		put_str(w, k, v);
		shm_writer_stats(w, &st);
		if (st.replacements > 0)
			break;
	}
	cr_assert_eq(st.replacements, 1);
	old_changes = __atomic_load_n(&old.h->changes, __ATOMIC_ACQUIRE);
	old_seq = __atomic_load_n(&old.h->change_seq, __ATOMIC_ACQUIRE);
	rawmap_open(&cur);
	/* n + 1 puts in all, each one change (the replacement may count too) */
	cr_assert_geq(cur.h->changes, (uint64_t)n + 1);
	cr_assert_gt(cur.h->changes, old_changes,
	    "the new region reports %" PRIu64 " changes for a state the old "
	    "one never had, but the old one ended at %" PRIu64 " (value "
	    "reused: a reader holding it misses the put)", cur.h->changes,
	    old_changes);
	cr_assert_gt(cur.h->change_seq, old_seq,
	    "futex word: new region %" PRIu32 ", old region ended at %" PRIu32,
	    cur.h->change_seq, old_seq);
	rawmap_close(&cur);
	rawmap_close(&old);
	shm_writer_close(w, false);
}

/*
 * distkv_shm_changes() is documented as "a plain memory load, free to
 * poll": a poller must keep seeing changes after the region was replaced,
 * not stay on the counter of the old, dead region.
 */
Test(shm, changes_keep_counting_after_replacement)
{
	struct shm_writer *w = wopen();
	struct shm_reader *r = ropen();
	struct shm_writer_stats st;
	char k[32], v[300];
	uint64_t c1, c2;

	memset(v, 'v', sizeof(v) - 1);
	v[sizeof(v) - 1] = '\0';
	for (int n = 0; n < 10000; n++) {
		snprintf(k, sizeof(k), "key%d", n);
		put_str(w, k, v);
		shm_writer_stats(w, &st);
		if (st.replacements > 0)
			break;
	}
	cr_assert_eq(st.replacements, 1);
	c1 = shm_reader_changes(r);
	put_str(w, "one more", "x");
	c2 = shm_reader_changes(r);
	cr_assert_gt(c2, c1, "a put after the replacement is not counted by "
	    "a reader that only polls shm_reader_changes (stuck at %" PRIu64
	    ")", c1);
	shm_reader_close(r);
	shm_writer_close(w, false);
}

/* ================= suite shm_memory ================= */

#define M_KEYS 10000
#define M_UPDATES 1000000
#define M_VMAX 2048		/* values of 32 .. 2047 bytes */

static uint64_t
round_page(uint64_t n)
{
	return (n + 4095) & ~(uint64_t)4095;
}

/*
 * 1M updates on 10k keys of varying size.  From the layout: a replacement
 * sizes the arena to at most 1.5 x (live bytes + the record being put),
 * rounded up to a page (at least 256 KiB), and the table so that it is
 * <= 0.7 full; a replacement happens before the table passes 0.75, and
 * whenever the arena is more than 1.5 x live + 256 KiB.  So, sampled all
 * along and at the end:
 *   arena_size <= max(256 KiB, round_page(1.5 x (live at the last
 *                 replacement + one record)))
 *   used slots <= 0.75 x table_slots
 *   region_size <= 1.5 x live_bytes + 16 x table_slots + 256 + 256 KiB
 *   arena_used <= 1.125 x live_bytes + 256 KiB (what takes memory)
 * Overwrites reuse the space of the records they replace (holes.h), so
 * the replacements are few: growth, and a compaction when the holes are
 * too fragmented for the values that come.
 */
Test(shm_memory, region_bounded_after_1m_updates, .init = tdir_setup,
    .fini = tdir_teardown, .timeout = 180.)
{
	struct shm_writer *w = wopen();
	struct shm_writer_stats st;
	uint8_t *val = malloc(M_VMAX), key[64];
	uint64_t seed = test_seed() ^ 0x5eed, version = 0;
	uint64_t live_at_rebuild = 0, rec_at_rebuild = 0, gen = 1;
	double worst = 0, worst_tab = 0;
	struct peek pk;

	cr_assert_not_null(val);
	for (uint64_t n = 0; n < (uint64_t)M_KEYS + M_UPDATES; n++) {
		uint32_t id = n < M_KEYS ? (uint32_t)n :
		    (uint32_t)(rnd(&seed) % M_KEYS);
		size_t klen = tkey(id, key);
		size_t vlen = tval(val, id, ++version, TV_HDR + rnd(&seed) %
		    (M_VMAX - TV_HDR), 0);
		struct shm_meta m = meta(version, version, "n1");
		uint64_t live_before;

		shm_writer_stats(w, &st);
		live_before = st.live_bytes;
		cr_assert_eq(shm_writer_put(w, key, klen, val, vlen, &m), 0);
		shm_writer_stats(w, &st);
		if (st.generation != gen) {
			gen = st.generation;
			live_at_rebuild = live_before;
			rec_at_rebuild = shm_record_size(2, klen, vlen);
		}
		if (n >= M_KEYS && (n % 1000 == 0 ||
		    n == (uint64_t)M_KEYS + M_UPDATES - 1)) {
			uint64_t arena_max, bound;
			double ratio, ratio_tab;

			peek_file(region, &pk);
			arena_max = round_page(live_at_rebuild + rec_at_rebuild +
			    (live_at_rebuild + rec_at_rebuild) / 2);
			if (arena_max < (256u << 10))
				arena_max = 256u << 10;
			cr_assert_leq(pk.h.arena_size, arena_max,
			    "arena %" PRIu64 " > 1.5 x %" PRIu64 " live at the "
			    "last replacement", pk.h.arena_size,
			    live_at_rebuild);
			/* the memory bound: holes and rests below arena_used */
			cr_assert_leq(pk.h.arena_used - pk.h.live_bytes,
			    pk.h.live_bytes / 8 + (256u << 10), "%" PRIu64
			    " bytes used for %" PRIu64 " live",
			    pk.h.arena_used, pk.h.live_bytes);
			cr_assert_leq(pk.used_slots * 4, pk.h.table_slots * 3,
			    "table load %" PRIu64 "/%" PRIu64, pk.used_slots,
			    pk.h.table_slots);
			cr_assert_eq(pk.h.live_entries, M_KEYS);
			/* slots = pow2 >= (entries + 1) / 0.7 at the rebuild */
			cr_assert_lt(pk.h.table_slots, 2 * ((pk.h.live_entries +
			    1) * 10 / 7 + 1), "table of %" PRIu64 " slots for %"
			    PRIu64 " keys", pk.h.table_slots,
			    pk.h.live_entries);
			bound = st.live_bytes + st.live_bytes / 2 +
			    SHM_SLOT_SIZE * pk.h.table_slots +
			    SHM_HEADER_SIZE + (256u << 10);
			cr_assert_leq(st.region_size, bound, "region %" PRIu64
			    " > 1.5 x %" PRIu64 " live + table %" PRIu64
			    " slots + 256 KiB after %" PRIu64 " updates",
			    st.region_size, st.live_bytes, pk.h.table_slots,
			    n - M_KEYS);
			ratio = (double)st.region_size / (double)st.live_bytes;
			ratio_tab = (double)st.region_size / (double)
			    (st.live_bytes + SHM_SLOT_SIZE * pk.h.table_slots);
			if (ratio > worst)
				worst = ratio;
			if (ratio_tab > worst_tab)
				worst_tab = ratio_tab;
		}
	}
	shm_writer_stats(w, &st);
	peek_file(region, &pk);
	cr_log_info("memory: after %d updates on %d keys: region %" PRIu64
	    " bytes, live %" PRIu64 " bytes, table %" PRIu64 " slots, "
	    "%" PRIu64 " replacements; arena used/live %.3f; "
	    "region/live %.3f (worst %.3f), "
	    "region/(live + 16 x slots) %.3f (worst %.3f)", M_UPDATES, M_KEYS,
	    st.region_size, st.live_bytes, pk.h.table_slots, st.replacements,
	    (double)pk.h.arena_used / (double)pk.h.live_bytes,
	    (double)st.region_size / (double)st.live_bytes, worst,
	    (double)st.region_size / (double)(st.live_bytes + SHM_SLOT_SIZE *
	    pk.h.table_slots), worst_tab);
	/* the size on disk is the size the header claims */
	{
		struct stat sb;

		cr_assert_eq(stat(region, &sb), 0);
		cr_assert_eq((uint64_t)sb.st_size, st.region_size);
	}
	free(val);
	shm_writer_close(w, false);
}

/*
 * The same bound when the live data shrinks: deletes and smaller values
 * leave garbage without filling the arena, so a region sized for the old
 * data must still be compacted (docs/shm.md: "a replacement then happens
 * at the latest when garbage reaches half the live data").  Fixed
 * overhead here also includes the smallest arena (256 KiB).
 */
Test(shm_memory, bound_holds_after_live_data_shrinks, .init = tdir_setup,
    .fini = tdir_teardown, .timeout = 60.)
{
	struct shm_writer *w = wopen();
	struct shm_writer_stats st;
	uint8_t val[1024], key[64];
	uint64_t version = 0, bound;
	struct peek pk;

	for (uint32_t id = 0; id < M_KEYS; id++) {
		size_t klen = tkey(id, key);
		size_t vlen = tval(val, id, ++version, sizeof(val), 0);
		struct shm_meta m = meta(version, version, "n1");

		cr_assert_eq(shm_writer_put(w, key, klen, val, vlen, &m), 0);
	}
	/* 90% of the keys go away */
	for (uint32_t id = 0; id < M_KEYS; id++)
		if (id % 10 != 0) {
			size_t klen = tkey(id, key);

			cr_assert_eq(shm_writer_del(w, key, klen), 0);
		}
	/* the rest is updated a few times, with smaller values */
	for (int round = 0; round < 3; round++)
		for (uint32_t id = 0; id < M_KEYS; id += 10) {
			size_t klen = tkey(id, key);
			size_t vlen = tval(val, id, ++version, 100, 0);
			struct shm_meta m = meta(version, version, "n1");

			cr_assert_eq(shm_writer_put(w, key, klen, val, vlen,
			    &m), 0);
		}
	shm_writer_stats(w, &st);
	peek_file(region, &pk);
	cr_assert_eq(st.live_entries, M_KEYS / 10);
	bound = st.live_bytes + st.live_bytes / 2 + SHM_SLOT_SIZE *
	    pk.h.table_slots + SHM_HEADER_SIZE + (256u << 10);
	cr_log_info("memory after shrinking: region %" PRIu64 " bytes, live %"
	    PRIu64 ", table %" PRIu64 " slots, bound %" PRIu64, st.region_size,
	    st.live_bytes, pk.h.table_slots, bound);
	cr_expect_leq(st.region_size, bound, "region %" PRIu64 " bytes for %"
	    PRIu64 " live bytes (%.1fx): deletes and smaller values never "
	    "trigger a compaction", st.region_size, st.live_bytes,
	    (double)st.region_size / (double)st.live_bytes);
	cr_expect_leq(pk.h.arena_used - pk.h.live_bytes, pk.h.live_bytes / 8 +
	    (256u << 10), "%" PRIu64 " arena bytes used for %" PRIu64 " live",
	    pk.h.arena_used, pk.h.live_bytes);
	shm_writer_close(w, false);
}

static void
put_hinted(struct shm_writer *w, const char *k, const char *v, uint64_t *hint)
{
	struct shm_meta m = meta(1, 1, "n1");
	int rc = shm_writer_put_hinted(w, (const uint8_t *)k, strlen(k),
	    (const uint8_t *)v, strlen(v), &m, hint);

	cr_assert_eq(rc, 0, "put %s: %s", k, strerror(-rc));
}

/*
 * A slot hint (shm_writer_put_hinted) names the key's slot while its
 * table lasts.  Through overwrites, a delete and re-creation, replacements
 * (the hints then name another table) and hints that do not fit (another
 * key's, a slot past the table), every key reads its last value and no
 * other key is touched.
 */
Test(shm, slot_hints_follow_the_key_or_fall_back)
{
	enum { N = 400 };
	struct shm_writer *w = wopen();
	struct shm_reader *r = ropen();
	struct shm_writer_stats st;
	uint64_t hint[N] = { 0 }, kept, forged, gen, newkey = 0;
	char k[32], v[64];
	int round;

	for (round = 0; round < 3; round++)
		for (int n = 0; n < N; n++) {
			snprintf(k, sizeof(k), "key%d", n);
			snprintf(v, sizeof(v), "r%d-%d", round, n);
			put_hinted(w, k, v, &hint[n]);
			cr_assert_neq(hint[n], 0);
		}
	/* same-size overwrites in one table: the hint stays the slot */
	kept = hint[7];
	put_hinted(w, "key7", "r9-7", &hint[7]);
	gen = hint[7] >> 32;
	cr_assert_eq(hint[7], kept, "no replacement, same slot");
	for (int n = 0; n < N; n++) {
		snprintf(k, sizeof(k), "key%d", n);
		snprintf(v, sizeof(v), n == 7 ? "r9-%d" : "r2-%d", n);
		ASSERT_GET(r, k, v);
	}

	/* a delete resets the hint; the key comes back through the probe */
	cr_assert_eq(shm_writer_del_hinted(w, (const uint8_t *)"key3", 4,
	    &hint[3]), 0);
	cr_assert_eq(hint[3], 0);
	ASSERT_MISS(r, "key3");
	put_hinted(w, "newkey", "fresh", &newkey);
	put_hinted(w, "key3", "back", &hint[3]);
	ASSERT_GET(r, "key3", "back");
	ASSERT_GET(r, "newkey", "fresh");

	/* another key's hint: its slot's tag is not this key's, so the put
	 * probes (the other key keeps its value); a slot past the table
	 * is refused the same way */
	forged = hint[5];
	put_hinted(w, "key6", "six", &forged);
	ASSERT_GET(r, "key6", "six");
	ASSERT_GET(r, "key5", "r2-5");
	cr_assert_eq(forged, hint[6], "the probe found key6's own slot");
	forged = gen << 32 | 0xfffffffeu;
	put_hinted(w, "key8", "eight", &forged);
	ASSERT_GET(r, "key8", "eight");
	cr_assert_eq(forged, hint[8]);

	/* growth replaces the table: every old hint names another table */
	for (int n = 0; n < 3000; n++) {
		snprintf(k, sizeof(k), "grow%d", n);
		put_str(w, k, "g");
	}
	shm_writer_stats(w, &st);
	cr_assert_geq(st.replacements, 1);
	for (int n = 0; n < N; n++) {
		snprintf(k, sizeof(k), "key%d", n);
		snprintf(v, sizeof(v), "after-%d", n);
		put_hinted(w, k, v, &hint[n]);
		cr_assert_neq(hint[n] >> 32, gen, "a new table's hint");
	}
	for (int n = 0; n < N; n++) {
		snprintf(k, sizeof(k), "key%d", n);
		snprintf(v, sizeof(v), "after-%d", n);
		ASSERT_GET(r, k, v);
	}
	for (int n = 0; n < 3000; n += 97) {
		snprintf(k, sizeof(k), "grow%d", n);
		ASSERT_GET(r, k, "g");
	}
	shm_reader_close(r);
	shm_writer_close(w, false);
}
