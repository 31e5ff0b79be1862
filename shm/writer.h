/*
 * shm writer: the agent's side of the shared-memory region (layout.h).
 * Single-threaded; exactly one writer per region path (the agent).  No I/O
 * besides the region file itself.
 */
#ifndef DISTKV_SHM_WRITER_H
#define DISTKV_SHM_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct shm_writer;

struct shm_meta {
	uint64_t tick;
	uint64_t tock;
	const char *node;	/* chain head node, cut to SHM_NODE_MAX bytes */
	size_t node_len;
};

#ifdef SHM_TEST_HOOKS
/*
 * Test builds only (tests/test_shm_hooks.c compiles shm/ with
 * SHM_TEST_HOOKS): called inside a slot update, between the odd and the
 * even sequence-word store, after the length/state word was written and
 * before the tag/offset word is.
 */
extern void (*shm_writer_test_hook)(void);
#endif

struct shm_writer_stats {
	uint64_t region_size;
	uint64_t live_entries;
	uint64_t live_bytes;
	uint64_t arena_used;
	uint64_t generation;
	uint64_t replacements;	/* regions built by growth or compaction */
};

/*
 * Create a fresh, empty region at path (replacing whatever file was there,
 * atomically) with the given permissions.  node names the agent.
 * Returns 0 or -errno.
 */
/*
 * ... and lock it for this writer (PATH.lock): -EBUSY if another writer
 * holds it; shm_writer_lock_owner tells its pid (0 if unknown).
 */
int shm_writer_lock_owner(const char *path);
int shm_writer_open(const char *path, mode_t mode, const char *node,
    struct shm_writer **out);
/*
 * Publish key -> value with its metadata; replaces an existing record,
 * whose space later records reuse.  Readers see the whole old or the
 * whole new record.  May build a new region (growth or compaction).
 * Returns 0 or -errno / -E2BIG (then nothing changed).  A compaction
 * after the change that fails leaves the region valid and larger: the
 * next change tries again.
 */
int shm_writer_put(struct shm_writer *w, const uint8_t *key, size_t klen,
    const uint8_t *val, size_t vlen, const struct shm_meta *m);
/*
 * shm_writer_put with a hint: *hint is a cookie the caller keeps with the
 * key, 0 at first, that names the key's slot once the key is published,
 * so that the next put of it skips the probe and the compare of the old
 * record's key (a cache miss each in a big region).  A hint of an earlier
 * table (the region was replaced since) or one that no longer fits falls
 * back to the probe.  Keep one hint per key, never copy it to another
 * key, and pass it to shm_writer_del_hinted when the key goes.
 */
int shm_writer_put_hinted(struct shm_writer *w, const uint8_t *key,
    size_t klen, const uint8_t *val, size_t vlen, const struct shm_meta *m,
    uint64_t *hint);
/*
 * Fetch the table slot a put of key probes first into the cache.  A bulk
 * fill calls it some puts ahead: in a big table that probe is a cache
 * miss per put, which the fill otherwise waits for one by one.
 */
void shm_writer_prefetch(const struct shm_writer *w, const uint8_t *key,
    size_t klen);

/* Bytes of the record shm_writer_put makes of these sizes. */
uint64_t shm_writer_record_bytes(size_t klen, size_t vlen, size_t node_len);
/*
 * Make room for entries more keys and bytes more record bytes (sums of
 * shm_writer_record_bytes), so that putting them builds no new region: a
 * bulk load fills the region once instead of growing it by doublings.
 * The pages of that room and of the table are populated at once.
 * Returns 0 or -errno / -E2BIG.
 */
int shm_writer_reserve(struct shm_writer *w, uint64_t entries,
    uint64_t bytes);
/* Remove key (a no-op if absent); its space is reused.  Returns 0. */
int shm_writer_del(struct shm_writer *w, const uint8_t *key, size_t klen);
/* The same with the key's hint (shm_writer_put_hinted), which it resets. */
int shm_writer_del_hinted(struct shm_writer *w, const uint8_t *key,
    size_t klen, uint64_t *hint);
/* Store the current time as the heartbeat (call periodically). */
void shm_writer_heartbeat(struct shm_writer *w);
/* Wake readers blocked in a wait if anything changed since the last call
 * (one futex syscall per batch, not per change). */
void shm_writer_notify(struct shm_writer *w);
void shm_writer_stats(const struct shm_writer *w, struct shm_writer_stats *s);
/* Mark the region closed (readers then report it stale) and unmap; the
 * file stays for readers unless unlink_file. */
void shm_writer_close(struct shm_writer *w, bool unlink_file);

#endif
