/*
 * Tests for shm/writer.c and shm/reader.c, used directly (no agent).
 *
 * Suite "shm": the writer/reader contract one call at a time.
 * Suite "shm_corrupt": readers over truncated, garbage and corrupted
 * region files; every call must return an error code, never crash.
 * Suite "shm_torture": forked reader processes hammer random keys while
 * this process writes, grows and compacts; every value carries its key and
 * a checksum, so a torn or misdirected read is detected.
 * Suite "shm_memory": the region stays within the layout's bound over
 * 1M updates, and when the live data shrinks.
 *
 * Regions live in a fresh temp directory per test (under /dev/shm when it
 * exists, so rebuilt regions do not cause disk writeback), removed by the
 * fixture.  Child processes are only ever killed by the pid this file
 * forked.
 *
 * DISTKV_SHM_TORTURE_SECS (default 10) and DISTKV_SHM_SEED change the
 * torture run length and the random seed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <xxhash.h>

#include "layout.h"
#include "reader.h"
#include "writer.h"

/* ---- fixture: one temp dir per test ---- */

static char tdir[128];
static char region[192];

static void
tdir_setup(void)
{
	struct stat st;

	if (stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) &&
	    access("/dev/shm", W_OK) == 0)
		snprintf(tdir, sizeof(tdir), "/dev/shm/distkv-test.XXXXXX");
	else
		snprintf(tdir, sizeof(tdir), "/tmp/distkv-test.XXXXXX");
	cr_assert_not_null(mkdtemp(tdir), "mkdtemp: %s", strerror(errno));
	snprintf(region, sizeof(region), "%s/region", tdir);
}

static void
tdir_teardown(void)
{
	DIR *d;
	struct dirent *de;

	if (tdir[0] == '\0' || (d = opendir(tdir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			unlinkat(dirfd(d), de->d_name, 0);
	closedir(d);
	rmdir(tdir);
	tdir[0] = '\0';
}

/* ---- helpers ---- */

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* xorshift64*: reproducible, seeded per test. */
static uint64_t
rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ULL;
}

static uint64_t
test_seed(void)
{
	const char *e = getenv("DISTKV_SHM_SEED");

	return e != NULL ? strtoull(e, NULL, 0) | 1 : 0x9e3779b97f4a7c15ULL;
}

static struct shm_meta
meta(uint64_t tick, uint64_t tock, const char *node)
{
	struct shm_meta m = { tick, tock, node, strlen(node) };

	return m;
}

static struct shm_writer *
wopen(void)
{
	struct shm_writer *w = NULL;
	int rc = shm_writer_open(region, 0600, "n1", &w);

	cr_assert_eq(rc, 0, "shm_writer_open: %s", strerror(-rc));
	return w;
}

static struct shm_reader *
ropen(void)
{
	struct shm_reader *r = NULL;
	int rc = shm_reader_open(region, &r);

	cr_assert_eq(rc, 0, "shm_reader_open: %s", strerror(-rc));
	return r;
}

static void
put_str(struct shm_writer *w, const char *k, const char *v)
{
	struct shm_meta m = meta(1, 1, "n1");
	int rc = shm_writer_put(w, (const uint8_t *)k, strlen(k),
	    (const uint8_t *)v, strlen(v), &m);

	cr_assert_eq(rc, 0, "put %s: %s", k, strerror(-rc));
}

/* Get k as a string; returns the reader's rc, *out NUL-terminated. */
static int
get_str(struct shm_reader *r, const char *k, char *out, size_t cap)
{
	size_t len = 0;
	int rc = shm_reader_get(r, (const uint8_t *)k, strlen(k), out,
	    cap - 1, &len, NULL);

	out[rc == 0 ? len : 0] = '\0';
	return rc;
}

#define ASSERT_GET(r, k, want) do {					\
	char v_[256];							\
	int rc_ = get_str((r), (k), v_, sizeof(v_));			\
	cr_assert_eq(rc_, 0, "get %s: %s", (k), strerror(-rc_));	\
	cr_assert_str_eq(v_, (want), "get %s", (k));			\
} while (0)

#define ASSERT_MISS(r, k) do {						\
	char v_[256];							\
	int rc_ = get_str((r), (k), v_, sizeof(v_));			\
	cr_assert_eq(rc_, -ENOENT, "get %s: want ENOENT, got %d (%s)",	\
	    (k), rc_, v_);						\
} while (0)

/* Copy of the region's header and a count of non-empty slots. */
struct peek {
	struct shm_header h;
	uint64_t used_slots;	/* live + deleted */
	uint64_t live_slots;
};

static void
peek_file(const char *path, struct peek *pk)
{
	struct stat st;
	const uint8_t *base;
	int fd = open(path, O_RDONLY);

	cr_assert_geq(fd, 0, "open %s", path);
	cr_assert_eq(fstat(fd, &st), 0);
	base = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	cr_assert_neq(base, MAP_FAILED);
	memcpy(&pk->h, base, sizeof(pk->h));
	pk->used_slots = pk->live_slots = 0;
	for (uint64_t i = 0; i < pk->h.table_slots; i++) {
		const struct shm_slot *s = (const struct shm_slot *)(const void *)
		    (base + SHM_HEADER_SIZE + i * SHM_SLOT_SIZE);

		uint32_t state = shm_slot_state(s->len_state);

		pk->used_slots += state != SHM_SLOT_EMPTY;
		pk->live_slots += state == SHM_SLOT_LIVE;
	}
	munmap((void *)base, (size_t)st.st_size);
	close(fd);
}

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

/* ---- self-checking values for the torture and memory tests ----
 *
 * value = [sum u64][magic u32][key id u32][version u64][len u32][round u32]
 *         [payload]; sum = XXH64 of everything after it.  Versions come from
 * one counter in the writer, so per key they only grow.
 */
#define TV_MAGIC 0x54564c31u
#define TV_HDR 32
#define TV_MAX (64u << 10)

struct tv_hdr {
	uint64_t sum;
	uint32_t magic;
	uint32_t id;
	uint64_t version;
	uint32_t len;
	uint32_t pad;
};
_Static_assert(sizeof(struct tv_hdr) == TV_HDR, "tv header");

static size_t
tkey(uint32_t id, uint8_t *buf)
{
	/* keys of varying length: "k<id>:" and id % 23 filler bytes */
	int n = snprintf((char *)buf, 32, "k%" PRIu32 ":", id);

	for (uint32_t i = 0; i < id % 23; i++)
		buf[n++] = (uint8_t)('a' + (id + i) % 26);
	return (size_t)n;
}

/* Parse a key made by tkey; UINT32_MAX if it is not one. */
static uint32_t
tkey_id(const uint8_t *k, size_t klen)
{
	uint8_t want[64];
	uint32_t id = 0;
	size_t i = 1;

	if (klen < 3 || k[0] != 'k')
		return UINT32_MAX;
	while (i < klen && k[i] >= '0' && k[i] <= '9' && i < 12)
		id = id * 10 + (uint32_t)(k[i++] - '0');
	if (tkey(id, want) != klen || memcmp(want, k, klen) != 0)
		return UINT32_MAX;
	return id;
}

static size_t
tval(uint8_t *buf, uint32_t id, uint64_t version, size_t len, uint32_t round)
{
	struct tv_hdr h = { 0, TV_MAGIC, id, version, (uint32_t)len, round };
	uint64_t s = version * 0x100000001b3ULL + id + 1;

	for (size_t i = TV_HDR; i < len; i += 8) {
		uint64_t x = rnd(&s);

		memcpy(buf + i, &x, len - i < 8 ? len - i : 8);
	}
	memcpy(buf, &h, sizeof(h));
	h.sum = XXH64(buf + 8, len - 8, 0);
	memcpy(buf, &h.sum, sizeof(h.sum));
	return len;
}

enum tv_check { TV_OK, TV_TORN, TV_WRONG_KEY };

/* The round number of a chain key's value (see the torture). */
static uint32_t
tval_round(const uint8_t *v)
{
	struct tv_hdr h;

	memcpy(&h, v, sizeof(h));
	return h.pad;
}

static enum tv_check
tval_check(const uint8_t *v, size_t len, uint32_t id, uint64_t *version)
{
	struct tv_hdr h;

	if (len < TV_HDR)
		return TV_TORN;
	memcpy(&h, v, sizeof(h));
	if (h.magic != TV_MAGIC || h.len != len ||
	    XXH64(v + 8, len - 8, 0) != h.sum)
		return TV_TORN;
	*version = h.version;
	return h.id == id ? TV_OK : TV_WRONG_KEY;
}

/* Value sizes: mostly small, some medium, a few large (forcing growth). */
static size_t
tsize(uint64_t *s)
{
	uint64_t r = rnd(s) % 1000;

	if (r < 900)
		return TV_HDR + rnd(s) % 480;
	if (r < 990)
		return 512 + rnd(s) % 3584;
	return 4096 + rnd(s) % (TV_MAX - 4096);
}

/* ================= suite shm: the contract ================= */

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

struct scan_acc {
	int calls;
	int stop_after;
	char seen[1000];
	int bad;
};

static int
scan_cb(void *arg, const uint8_t *key, size_t klen, const uint8_t *val,
    size_t vlen)
{
	struct scan_acc *a = arg;
	char k[32], want[32];
	int n;

	a->calls++;
	if (klen >= sizeof(k) || klen < 4) {
		a->bad++;
		return 0;
	}
	memcpy(k, key, klen);
	k[klen] = '\0';
	n = atoi(k + 3);
	snprintf(want, sizeof(want), "v%d", n);
	if (n < 0 || n >= 1000 || a->seen[n]++ != 0 ||
	    vlen != strlen(want) || memcmp(val, want, vlen) != 0)
		a->bad++;
	return a->stop_after != 0 && a->calls >= a->stop_after;
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

Test(shm, liveness_fresh_closed)
{
	struct shm_writer *w = wopen();
	struct shm_reader *r = ropen();
	struct shm_reader_info i;
	long long deadline;

	cr_assert_eq(shm_reader_alive(r, 60000), 1);
	cr_assert(shm_reader_fresh(r, 60000));
	/* no heartbeat: stale after stale_ms (condition with a deadline) */
	deadline = now_ms() + 5000;
	while (shm_reader_fresh(r, 30) && now_ms() < deadline)
		usleep(1000);
	cr_assert_not(shm_reader_fresh(r, 30), "heartbeat never aged");
	cr_assert_eq(shm_reader_alive(r, 30), 0, "old heartbeat: stale");
	cr_assert_eq(shm_reader_alive(r, 60000), 1);
	cr_assert_eq(shm_reader_alive(r, -1), 1, "-1: no heartbeat check");
	shm_writer_heartbeat(w);
	cr_assert(shm_reader_fresh(r, 30));
	cr_assert_eq(shm_reader_alive(r, 30), 1);

	put_str(w, "k", "last");
	shm_writer_close(w, false);
	cr_assert_eq(shm_reader_alive(r, 60000), 0, "closed: stale");
	cr_assert_not(shm_reader_fresh(r, 60000));
	shm_reader_info(r, &i);
	cr_assert(i.closed);
	ASSERT_GET(r, "k", "last");
	shm_reader_close(r);
}

/* A writer in a child that exits without closing (as kill -9 leaves it). */
static pid_t
writer_child_dies(const char *k, const char *v)
{
	int pfd[2];
	pid_t pid;
	char c;

	cr_assert_eq(pipe(pfd), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct shm_writer *w = NULL;
		struct shm_meta m = meta(1, 1, "dead");

		close(pfd[0]);
		if (shm_writer_open(region, 0600, "dead", &w) != 0 ||
		    shm_writer_put(w, (const uint8_t *)k, strlen(k),
		    (const uint8_t *)v, strlen(v), &m) != 0)
			_exit(1);
		if (write(pfd[1], "x", 1) != 1)
			_exit(1);
		_exit(0);	/* no shm_writer_close */
	}
	close(pfd[1]);
	cr_assert_eq(read(pfd[0], &c, 1), 1, "writer child failed");
	close(pfd[0]);
	return pid;
}

Test(shm, dead_writer_stale_then_restart_remaps)
{
	struct shm_reader *r;
	struct shm_writer *w;
	struct shm_reader_info i;
	int status;
	pid_t pid;

	pid = writer_child_dies("k", "from the dead");
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	r = ropen();
	/* the last state is served, and reported stale (pid gone) */
	ASSERT_GET(r, "k", "from the dead");
	cr_assert_eq(shm_reader_alive(r, 60000), 0);
	shm_reader_info(r, &i);
	cr_assert_eq(i.agent_pid, (uint32_t)pid);
	cr_assert_not(i.closed, "it died: nobody closed it");

	/* a new writer at the same path: alive() re-maps, new state shows */
	w = wopen();
	put_str(w, "k2", "new");
	cr_assert_eq(shm_reader_alive(r, 60000), 1);
	shm_reader_info(r, &i);
	cr_assert_eq(i.agent_pid, (uint32_t)getpid());
	ASSERT_MISS(r, "k");
	ASSERT_GET(r, "k2", "new");
	shm_reader_close(r);
	shm_writer_close(w, false);
}

/* ---- waiting ---- */

/*
 * True once pid sleeps in the futex syscall (202 on x86-64) or, where
 * /proc/PID/syscall is not readable, in state S.
 */
static bool
child_blocked(pid_t pid)
{
	char path[64], buf[256];
	FILE *f;
	bool ok = false;

	snprintf(path, sizeof(path), "/proc/%d/syscall", (int)pid);
	if ((f = fopen(path, "r")) != NULL) {
		buf[0] = '\0';
		if (fgets(buf, sizeof(buf), f) != NULL)
#if defined(__x86_64__)
			ok = strncmp(buf, "202 ", 4) == 0;
#else
			ok = buf[0] != 'r';	/* not "running" */
#endif
		fclose(f);
		if (ok || buf[0] != '\0')
			return ok;
	}
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((f = fopen(path, "r")) != NULL) {
		char *p;

		if (fgets(buf, sizeof(buf), f) != NULL &&
		    (p = strrchr(buf, ')')) != NULL)
			ok = p[1] == ' ' && p[2] == 'S';
		fclose(f);
	}
	return ok;
}

enum wake_how { WAKE_NOTIFY, WAKE_REPLACE, WAKE_CLOSE };

/*
 * A child blocks in shm_reader_wait (5 s timeout); once it is asleep in
 * the futex the parent changes the region; the child exits 0 if it woke
 * with rc 0 well before its timeout.
 */
static void
check_wakeup(enum wake_how how)
{
	struct shm_writer *w = wopen();
	long long deadline;
	int status, pfd[2];
	pid_t pid;
	char c;

	put_str(w, "k", "v");
	cr_assert_eq(pipe(pfd), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct shm_reader *r = NULL;
		long long t0;
		uint32_t seq;
		int rc;

		close(pfd[0]);
		alarm(20);
		if (shm_reader_open(region, &r) != 0)
			_exit(10);
		seq = shm_reader_seq(r);
		if (write(pfd[1], "x", 1) != 1)
			_exit(11);
		t0 = now_ms();
		rc = shm_reader_wait(r, seq, 5000);
		if (rc != 0)
			_exit(12);
		if (now_ms() - t0 >= 4000)
			_exit(13);
		_exit(0);
	}
	close(pfd[1]);
	cr_assert_eq(read(pfd[0], &c, 1), 1);
	close(pfd[0]);
	deadline = now_ms() + 3000;
	while (!child_blocked(pid) && now_ms() < deadline)
		usleep(1000);
	cr_assert(child_blocked(pid), "the waiter never blocked");
	switch (how) {
	case WAKE_NOTIFY:
		put_str(w, "k", "changed");
		shm_writer_notify(w);
		break;
	case WAKE_REPLACE: {
		char k[32], v[300];
		struct shm_writer_stats st;

		memset(v, 'v', sizeof(v) - 1);
		v[sizeof(v) - 1] = '\0';
		/* no notify: the replacement itself wakes the old word */
		for (int n = 0; n < 10000; n++) {
			snprintf(k, sizeof(k), "key%d", n);
			put_str(w, k, v);
			shm_writer_stats(w, &st);
			if (st.replacements > 0)
				break;
		}
		break;
	}
	case WAKE_CLOSE:
		shm_writer_close(w, false);
		w = NULL;
		break;
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status), "waiter died by signal %d",
	    WTERMSIG(status));
	cr_assert_eq(WEXITSTATUS(status), 0, "waiter failed with code %d "
	    "(12: wait rc != 0, 13: woke only at the timeout)",
	    WEXITSTATUS(status));
	shm_writer_close(w, false);
}

Test(shm, wait_times_out_without_change)
{
	struct shm_writer *w = wopen();
	struct shm_reader *r = ropen();
	long long t0;
	uint32_t seq;

	seq = shm_reader_seq(r);
	t0 = now_ms();
	cr_assert_eq(shm_reader_wait(r, seq, 50), -ETIMEDOUT);
	cr_assert_geq(now_ms() - t0, 40);
	cr_assert_eq(shm_reader_wait(r, seq, 0), -ETIMEDOUT);
	/* a change before the wait: no sleep at all */
	put_str(w, "k", "v");
	cr_assert_eq(shm_reader_wait(r, seq, 5000), 0);
	cr_assert_neq(shm_reader_seq(r), seq);
	shm_reader_close(r);
	shm_writer_close(w, false);
}

Test(shm, wait_wakes_on_notify)
{
	check_wakeup(WAKE_NOTIFY);
}

Test(shm, wait_wakes_on_replacement)
{
	check_wakeup(WAKE_REPLACE);
}

Test(shm, wait_wakes_on_close)
{
	check_wakeup(WAKE_CLOSE);
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

/* ================= suite shm_torture ================= */

#define T_READERS 4
#define T_KEYS 6000
/*
 * Chain keys (ids T_KEYS ..): after every batch the writer puts round r
 * into chain key 0, 1, ... in that order.  A consistent scan therefore
 * shows rounds that never increase along the chain and differ by at most
 * one; a scan that mixes moments shows otherwise.
 */
#define T_CHAIN 10

struct t_stats {
	uint64_t gets, hits, misses, busy, other;
	uint64_t torn, wrong_key, backwards, small;
	uint64_t scans, scan_entries, scan_busy, scan_bad, scan_torn_view;
	uint64_t waits, generations, last_gen;
	char first_error[160];
};

struct t_shared {
	uint32_t stop;
	struct t_stats r[T_READERS];
};

static void t_note(struct t_stats *st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Keep the first problem a reader saw, for the failure message. */
static void
t_note(struct t_stats *st, const char *fmt, ...)
{
	va_list ap;

	if (st->first_error[0] != '\0')
		return;
	va_start(ap, fmt);
	vsnprintf(st->first_error, sizeof(st->first_error), fmt, ap);
	va_end(ap);
}

struct t_scan {
	struct t_stats *st;
	uint64_t *last;
	uint32_t chain[T_CHAIN];
	bool chain_seen[T_CHAIN];
};

static int
t_scan_cb(void *arg, const uint8_t *key, size_t klen, const uint8_t *val,
    size_t vlen)
{
	struct t_scan *ts = arg;
	uint32_t id = tkey_id(key, klen);
	uint64_t version;

	ts->st->scan_entries++;
	if (id == UINT32_MAX || id >= T_KEYS + T_CHAIN ||
	    tval_check(val, vlen, id, &version) != TV_OK) {
		ts->st->scan_bad++;
		t_note(ts->st, "scan: bad entry for key %" PRIu32
		    " (len %zu)", id, vlen);
		return 0;
	}
	if (version < ts->last[id]) {
		ts->st->backwards++;
		t_note(ts->st, "scan: key %" PRIu32 " went back from %" PRIu64
		    " to %" PRIu64, id, ts->last[id], version);
	}
	ts->last[id] = version;
	if (id >= T_KEYS) {
		ts->chain[id - T_KEYS] = tval_round(val);
		ts->chain_seen[id - T_KEYS] = true;
	}
	return 0;
}

/* A consistent scan sees the chain at one moment of the writer. */
static void
t_check_chain(struct t_scan *ts)
{
	for (int i = 0; i < T_CHAIN; i++)
		if (!ts->chain_seen[i]) {
			ts->st->scan_torn_view++;
			t_note(ts->st, "scan: chain key %d missing", i);
			return;
		}
	for (int i = 1; i < T_CHAIN; i++)
		if (ts->chain[i] > ts->chain[i - 1] ||
		    ts->chain[0] - ts->chain[i] > 1) {
			ts->st->scan_torn_view++;
			t_note(ts->st, "scan: chain rounds %" PRIu32 " .. %"
			    PRIu32 " at key %d: not one moment", ts->chain[0],
			    ts->chain[i], i);
			return;
		}
}

/* One forked reader: random gets, now and then a scan and a short wait. */
static void
t_reader(struct t_shared *sh, int idx, uint64_t seed)
{
	struct t_stats *st = &sh->r[idx];
	struct shm_reader *r = NULL;
	uint64_t *last = calloc(T_KEYS + T_CHAIN, sizeof(*last));
	uint8_t *buf = malloc(TV_MAX), key[64];
	struct shm_reader_info info;
	uint64_t batch = 0;

	if (last == NULL || buf == NULL || shm_reader_open(region, &r) != 0)
		_exit(3);
	while (!__atomic_load_n(&sh->stop, __ATOMIC_ACQUIRE)) {
		for (int i = 0; i < 256; i++) {
			uint32_t id = (uint32_t)(rnd(&seed) %
			    (T_KEYS + T_CHAIN));
			size_t klen = tkey(id, key), len = 0;
			/* now and then a buffer that is too small */
			size_t cap = rnd(&seed) % 64 == 0 ? 100 : TV_MAX;
			uint64_t version;
			int rc;

			rc = shm_reader_get(r, key, klen, buf, cap, &len, NULL);
			st->gets++;
			if (rc == -ENOENT) {
				st->misses++;
				continue;
			}
			if (rc == -EAGAIN) {
				st->busy++;
				continue;
			}
			if (rc == -ENOBUFS && cap < TV_MAX && len > cap &&
			    len <= TV_MAX) {
				st->small++;
				continue;
			}
			if (rc != 0) {
				st->other++;
				t_note(st, "get key %" PRIu32 ": rc %d, len "
				    "%zu", id, rc, len);
				continue;
			}
			st->hits++;
			switch (tval_check(buf, len, id, &version)) {
			case TV_TORN:
				st->torn++;
				t_note(st, "key %" PRIu32 ": torn value, len "
				    "%zu", id, len);
				continue;
			case TV_WRONG_KEY:
				st->wrong_key++;
				t_note(st, "key %" PRIu32 ": value of another "
				    "key, len %zu", id, len);
				continue;
			case TV_OK:
				break;
			}
			if (version < last[id]) {
				st->backwards++;
				t_note(st, "key %" PRIu32 " went back from %"
				    PRIu64 " to %" PRIu64, id, last[id],
				    version);
			}
			last[id] = version;
		}
		if (++batch % 16 == 0) {
			struct t_scan ts;
			int rc;

			memset(&ts, 0, sizeof(ts));
			ts.st = st;
			ts.last = last;
			rc = shm_reader_scan(r, t_scan_cb, &ts);
			if (rc == 0) {
				st->scans++;
				t_check_chain(&ts);
			} else if (rc == -EAGAIN)
				st->scan_busy++;
			else {
				st->other++;
				t_note(st, "scan rc %d", rc);
			}
		}
		if (batch % 64 == 0) {
			int rc = shm_reader_wait(r, shm_reader_seq(r), 1);

			st->waits++;
			if (rc != 0 && rc != -ETIMEDOUT) {
				st->other++;
				t_note(st, "wait rc %d", rc);
			}
		}
		shm_reader_info(r, &info);
		if (info.generation != st->last_gen) {
			st->generations++;
			st->last_gen = info.generation;
		}
	}
	shm_reader_close(r);
	free(last);
	free(buf);
	_exit(0);
}

/* Put round r into every chain key, in chain order. */
static void
t_chain_round(struct shm_writer *w, uint64_t *model, uint64_t *version,
    uint32_t r)
{
	uint8_t key[64], val[64];

	for (uint32_t id = T_KEYS; id < T_KEYS + T_CHAIN; id++) {
		size_t klen = tkey(id, key);
		size_t vlen = tval(val, id, ++*version, sizeof(val), r);
		struct shm_meta m = meta(*version, *version, "n1");

		cr_assert_eq(shm_writer_put(w, key, klen, val, vlen, &m), 0);
		model[id] = *version;
	}
}

static int
torture_secs(void)
{
	const char *e = getenv("DISTKV_SHM_TORTURE_SECS");
	int s = e != NULL ? atoi(e) : 10;

	return s > 0 ? s : 10;
}

/*
 * T_READERS forked readers, each with its own handle, read random keys
 * for DISTKV_SHM_TORTURE_SECS while this process writes.  A reader counts
 * a value that fails its checksum (torn), that belongs to another key,
 * or whose version is older than one it already saw for that key (values
 * going back in time, e.g. across a re-map); its scans must each be one
 * consistent view (the chain keys).  Crashes show in the exit status.
 * At the end a fresh reader must see exactly the writer's model.
 */
Test(shm_torture, forked_readers_never_see_torn_values, .init = tdir_setup,
    .fini = tdir_teardown, .timeout = 120.)
{
	struct t_shared *sh;
	struct shm_writer *w = wopen();
	struct shm_writer_stats st;
	uint64_t *model = calloc(T_KEYS + T_CHAIN, sizeof(*model));
	uint32_t round = 0;
	uint8_t *val = malloc(TV_MAX), key[64];
	uint64_t seed = test_seed(), version = 0, ops = 0, puts = 0, dels = 0;
	uint64_t max_gen_seen = 0;
	pid_t pids[T_READERS];
	long long start, deadline, wait_deadline;
	int secs = torture_secs();

	cr_assert_not_null(model);
	cr_assert_not_null(val);
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(sh, MAP_FAILED);
	memset(sh, 0, sizeof(*sh));
	cr_log_info("torture: %d s, seed 0x%" PRIx64, secs, seed);

	/* a first population so readers hit from the start */
	for (uint32_t id = 0; id < T_KEYS; id += 2) {
		size_t klen = tkey(id, key), vlen = tval(val, id, ++version,
		    tsize(&seed), 0);
		struct shm_meta m = meta(version, version, "n1");

		cr_assert_eq(shm_writer_put(w, key, klen, val, vlen, &m), 0);
		model[id] = version;
	}
	t_chain_round(w, model, &version, round);
	for (int i = 0; i < T_READERS; i++) {
		uint64_t rs = seed + 0x1000003ULL * (uint64_t)(i + 1);

		fflush(NULL);
		pids[i] = fork();
		cr_assert_geq(pids[i], 0);
		if (pids[i] == 0) {
			alarm((unsigned)secs + 60);	/* never outlive us */
			t_reader(sh, i, rs);
		}
	}

	/*
	 * Writer: phases of one second alternately fill (85% puts) and
	 * drain (30% puts), so the table grows and shrinks and the arena
	 * fills with garbage: growth and compaction all the time.
	 */
	start = now_ms();
	deadline = start + secs * 1000LL;
	for (long long t = start; t < deadline; t = now_ms()) {
		bool fill = ((t - start) / 1000) % 2 == 0;

		for (int i = 0; i < 512; i++) {
			uint32_t id = (uint32_t)(rnd(&seed) % T_KEYS);
			size_t klen = tkey(id, key);
			int rc;

			ops++;
			if (rnd(&seed) % 100 < (fill ? 85u : 30u)) {
				size_t vlen = tval(val, id, ++version,
				    tsize(&seed), 0);
				struct shm_meta m = meta(version, version,
				    "n1");

				rc = shm_writer_put(w, key, klen, val, vlen, &m);
				cr_assert_eq(rc, 0, "put: %s", strerror(-rc));
				model[id] = version;
				puts++;
			} else {
				rc = shm_writer_del(w, key, klen);
				cr_assert_eq(rc, 0, "del: %s", strerror(-rc));
				model[id] = 0;
				dels++;
			}
		}
		t_chain_round(w, model, &version, ++round);
		shm_writer_heartbeat(w);
		shm_writer_notify(w);
	}
	__atomic_store_n(&sh->stop, 1, __ATOMIC_RELEASE);

	/* reap every reader; a stuck one is killed by its pid */
	wait_deadline = now_ms() + 20000;
	for (int i = 0; i < T_READERS; i++) {
		int status = 0;
		pid_t got = 0;

		while ((got = waitpid(pids[i], &status, WNOHANG)) == 0 &&
		    now_ms() < wait_deadline)
			usleep(2000);
		if (got == 0) {
			kill(pids[i], SIGKILL);
			waitpid(pids[i], &status, 0);
			cr_assert_fail("reader %d did not stop", i);
		}
		cr_assert(WIFEXITED(status), "reader %d crashed: signal %d", i,
		    WIFSIGNALED(status) ? WTERMSIG(status) : 0);
		cr_assert_eq(WEXITSTATUS(status), 0, "reader %d exit %d", i,
		    WEXITSTATUS(status));
	}

	shm_writer_stats(w, &st);
	cr_log_info("torture writer: %" PRIu64 " ops (%" PRIu64 " puts, %"
	    PRIu64 " deletes), %" PRIu64 " replacements, region %" PRIu64
	    " bytes, %" PRIu64 " live", ops, puts, dels, st.replacements,
	    st.region_size, st.live_entries);
	for (int i = 0; i < T_READERS; i++) {
		struct t_stats *s = &sh->r[i];

		cr_log_info("reader %d: %" PRIu64 " gets, %" PRIu64 " hits, %"
		    PRIu64 " misses, %" PRIu64 " busy, %" PRIu64 " small, %"
		    PRIu64 " scans (%" PRIu64 " entries, %" PRIu64 " busy), %"
		    PRIu64 " generations seen", i, s->gets, s->hits,
		    s->misses, s->busy, s->small, s->scans, s->scan_entries,
		    s->scan_busy, s->generations);
		cr_expect_eq(s->torn, 0, "reader %d: %" PRIu64 " torn reads; "
		    "first: %s", i, s->torn, s->first_error);
		cr_expect_eq(s->wrong_key, 0, "reader %d: %" PRIu64 " reads of "
		    "another key; first: %s", i, s->wrong_key, s->first_error);
		cr_expect_eq(s->backwards, 0, "reader %d: %" PRIu64 " values "
		    "went back in time; first: %s", i, s->backwards,
		    s->first_error);
		cr_expect_eq(s->scan_bad, 0, "reader %d: bad scan entries; "
		    "first: %s", i, s->first_error);
		cr_expect_eq(s->scan_torn_view, 0, "reader %d: %" PRIu64
		    " scans were no consistent view; first: %s", i,
		    s->scan_torn_view, s->first_error);
		cr_expect_eq(s->other, 0, "reader %d: %" PRIu64 " unexpected "
		    "errors; first: %s", i, s->other, s->first_error);
		/* the readers really ran through the replacements */
		cr_expect_gt(s->hits, 10000, "reader %d barely read", i);
		cr_expect_gt(s->scans, 0, "reader %d never scanned", i);
		cr_expect_lt(s->busy, s->gets / 100, "reader %d mostly busy",
		    i);
		if (s->generations > max_gen_seen)
			max_gen_seen = s->generations;
	}
	cr_assert_geq(st.replacements, 10, "growth and compaction happened");
	cr_assert_geq(max_gen_seen, 3, "readers followed replacements");

	/* the final state, through a fresh reader, is exactly the model */
	{
		struct shm_reader *r = ropen();
		uint64_t live = 0;

		for (uint32_t id = 0; id < T_KEYS + T_CHAIN; id++) {
			size_t klen = tkey(id, key), len;
			uint64_t v;
			int rc = shm_reader_get(r, key, klen, val, TV_MAX, &len,
			    NULL);

			if (model[id] == 0) {
				cr_assert_eq(rc, -ENOENT, "key %" PRIu32, id);
				continue;
			}
			live++;
			cr_assert_eq(rc, 0, "key %" PRIu32 ": %d", id, rc);
			cr_assert_eq(tval_check(val, len, id, &v), TV_OK);
			cr_assert_eq(v, model[id], "key %" PRIu32, id);
		}
		cr_assert_eq(st.live_entries, live);
		shm_reader_close(r);
	}
	munmap(sh, sizeof(*sh));
	free(model);
	free(val);
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
