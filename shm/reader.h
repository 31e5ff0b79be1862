/*
 * shm reader: lock-free, read-only access to an agent's region (layout.h,
 * docs/shm.md).  Any number of readers in any number of processes; a
 * reader handle itself is for one thread at a time.
 *
 * The hit path (shm_reader_get on a current region) makes no system call,
 * takes no lock and never writes to the region.  Everything read from the
 * region is untrusted: every offset and length is checked before use, and
 * each copy is validated by the slot's sequence word.
 */
#ifndef DISTKV_SHM_READER_H
#define DISTKV_SHM_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct shm_reader;

/* Most attempts of one lookup before it reports -EAGAIN. */
#define SHM_READ_RETRIES 1000

#ifdef SHM_TEST_HOOKS
/*
 * Test builds only (tests/test_shm_hooks.c compiles shm/ with
 * SHM_TEST_HOOKS): called inside a lookup's read section, between the
 * loads of a slot's length/state word and its tag/offset word.
 */
extern void (*shm_reader_test_hook)(void);
/* ... and after a slot's key matched, before the value is copied. */
extern void (*shm_reader_test_hook_matched)(void);
#endif

struct shm_read_meta {
	uint64_t tick;
	uint64_t tock;
	char node[64 + 1];	/* NUL-terminated */
};

/*
 * Map the region at path read-only and validate its header.
 * Returns 0, -errno, or -EBADMSG for a file that is not a valid region.
 */
int shm_reader_open(const char *path, struct shm_reader **out);
void shm_reader_close(struct shm_reader *r);

/*
 * Look up key.  On success copies the value (msgpack bytes) into buf,
 * sets *len (and *m if not NULL) and returns 0.
 *   -ENOENT   no such key
 *   -ENOBUFS  buf too small; *len is the size needed
 *   -EAGAIN   the writer kept changing the slot (SHM_READ_RETRIES)
 *   -EBADMSG  the region is corrupt where this lookup went
 *   other -errno: re-mapping a replaced region failed
 * A replaced region is re-mapped transparently (the only case with system
 * calls).
 */
int shm_reader_get(struct shm_reader *r, const uint8_t *key, size_t klen,
    void *buf, size_t cap, size_t *len, struct shm_read_meta *m);

/*
 * The same with the key's hash given: hash must be shm_key_hash(key,
 * klen), computed once by a caller that reads the same key again and
 * again (it is valid in every region: it depends on the key bytes only).
 */
int shm_reader_get_hashed(struct shm_reader *r, const uint8_t *key,
    size_t klen, uint64_t hash, void *buf, size_t cap, size_t *len,
    struct shm_read_meta *m);
/*
 * A str value's body and a NUL in buf, from one copy out of the region
 * (no copy of the msgpack header to move over afterwards).  -ENOBUFS if
 * the value is no str or its body and NUL do not fit in cap: then read
 * it with shm_reader_get_hashed to tell which.  Else as shm_reader_get.
 */
int shm_reader_get_str_hashed(struct shm_reader *r, const uint8_t *key,
    size_t klen, uint64_t hash, char *buf, size_t cap);
/*
 * The body of the msgpack str at v (vlen bytes, all of the value): its
 * header length in *hdr and body length, or false if it is anything else.
 * Shared by the reader (on region bytes that may be mid-write, checked
 * against the slot's seq afterwards) and libdistkv's typed getters:
 * bounded by vlen, never trusted further.
 */
static inline bool
shm_str_body(const uint8_t *v, size_t vlen, size_t *hdr, size_t *body)
{
	uint8_t b;

	if (vlen == 0)
		return false;
	b = v[0];
	if ((b & 0xe0) == 0xa0) {
		*hdr = 1;
		*body = b & 0x1f;
	} else if (b == 0xd9 && vlen >= 2) {
		*hdr = 2;
		*body = v[1];
	} else if (b == 0xda && vlen >= 3) {
		*hdr = 3;
		*body = (size_t)v[1] << 8 | v[2];
	} else if (b == 0xdb && vlen >= 5) {
		*hdr = 5;
		*body = (size_t)v[1] << 24 | (size_t)v[2] << 16 |
		    (size_t)v[3] << 8 | v[4];
	} else
		return false;
	return vlen - *hdr == *body;
}

/* The hash the region indexes key by (XXH3-64 of the bytes). */
uint64_t shm_key_hash(const uint8_t *key, size_t klen);

/* Published changes so far (an ordinary load; no system call). */
uint64_t shm_reader_changes(struct shm_reader *r);
/* The futex word; pass it to shm_reader_wait. */
uint32_t shm_reader_seq(struct shm_reader *r);
/*
 * Block until the region's change word differs from since, the region is
 * replaced or closed, or timeout_ms passes (-1: forever).  Returns 0 when
 * something changed, -ETIMEDOUT, or -errno.
 */
int shm_reader_wait(struct shm_reader *r, uint32_t since, int timeout_ms);

/*
 * Liveness: 1 if the agent behind the region runs (pid alive, not closed,
 * heartbeat younger than stale_ms), 0 if the data is stale.  If the agent
 * is gone and a new region has appeared at the path, re-maps it first.
 * Makes system calls (kill(pid, 0), stat).
 */
int shm_reader_alive(struct shm_reader *r, int stale_ms);

/*
 * Cheap freshness test for the hit path: the region is not closed and its
 * heartbeat is younger than stale_ms.  No system call (the coarse
 * monotonic clock is read through the vDSO).
 */
bool shm_reader_fresh(struct shm_reader *r, int stale_ms);

/*
 * Call fn for every live key in the region (keys and values borrowed for
 * the call).  The result is consistent: if the writer published anything
 * during the scan it is repeated, up to SHM_READ_RETRIES / 100 times, then
 * -EAGAIN.  fn returning non-zero stops the scan (returns 0).
 */
typedef int shm_scan_fn(void *arg, const uint8_t *key, size_t klen,
    const uint8_t *val, size_t vlen);
int shm_reader_scan(struct shm_reader *r, shm_scan_fn *fn, void *arg);

/* Region facts for tools and tests. */
struct shm_reader_info {
	uint64_t region_size;
	uint64_t generation;
	uint64_t live_entries;
	uint64_t live_bytes;
	uint32_t agent_pid;
	bool closed;
	/* ms since the agent's last heartbeat (CLOCK_MONOTONIC) */
	uint64_t heartbeat_age_ms;
};
void shm_reader_info(struct shm_reader *r, struct shm_reader_info *i);

#endif
