/*
 * shmtest: what the files of tests/test_shm share (test_shm.c,
 * test_shm_arena.c, test_shm_corrupt.c, test_shm_procs.c): the fixture,
 * a writer and a reader at its region, string puts and gets, a look at
 * the region file, and the self-checking values.  The names are the ones
 * the tests were written with when they were one file, so that each test
 * still reads as it was written.
 */
#ifndef DISTKV_TESTS_SHMTEST_H
#define DISTKV_TESTS_SHMTEST_H

#include <stddef.h>
#include <stdint.h>
/* for the ASSERT_ macros */
#include <errno.h>
#include <string.h>

#include "layout.h"
#include "reader.h"
#include "writer.h"

/* The region's path in the test's temp dir (tdir_setup). */
extern char region[192];

/* One temp dir per test: every suite's .init and .fini. */
void tdir_setup(void);
void tdir_teardown(void);

uint64_t rnd(uint64_t *s);
uint64_t test_seed(void);
struct shm_meta meta(uint64_t tick, uint64_t tock, const char *node);
/* At region; the test fails if it cannot be opened. */
struct shm_writer *wopen(void);
struct shm_reader *ropen(void);
void put_str(struct shm_writer *w, const char *k, const char *v);
int get_str(struct shm_reader *r, const char *k, char *out, size_t cap);

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

void peek_file(const char *path, struct peek *pk);

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

size_t tkey(uint32_t id, uint8_t *buf);
size_t tval(uint8_t *buf, uint32_t id, uint64_t version, size_t len,
    uint32_t round);

/*
 * scan_cb's tally of keys "key<n>" with values "v<n>" (n < 1000); it stops
 * the scan after stop_after calls (0: never).
 */
struct scan_acc {
	int calls;
	int stop_after;
	char seen[1000];
	int bad;
};

int scan_cb(void *arg, const uint8_t *key, size_t klen, const uint8_t *val,
    size_t vlen);

#endif
