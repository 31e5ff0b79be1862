/* shm writer: see writer.h and layout.h. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "holes.h"
#include "layout.h"
#include "writer.h"

#define SHM_MIN_SLOTS 1024
#define SHM_MIN_ARENA (256u << 10)
/* Rebuild when live + deleted slots pass this share of the table. */
#define SHM_MAX_LOAD_NUM 3
#define SHM_MAX_LOAD_DEN 4
/*
 * The arena's room beyond the live records after a replacement: 1/2 when
 * the data grew (the arena filled with little garbage in it), 1/8 when it
 * is a compaction.  Holes are reused in place (holes.h), so steady
 * overwrites need no slack; growth does, or every few puts would copy the
 * whole region.
 */
#define SHM_GROW_DEN 2
#define SHM_COMPACT_DEN 8

struct shm_writer {
	char *path;
	int lock_fd;			/* PATH.lock, flock()ed while open */
	mode_t mode;
	char node[SHM_NODE_MAX];
	int fd;
	uint8_t *base;
	size_t size;
	struct shm_header *h;
	struct shm_slot *tab;
	uint8_t *arena;
	uint64_t used_slots;		/* live + deleted */
	uint64_t reserved;		/* bytes shm_writer_reserve awaits */
	struct shm_holes holes;		/* free space inside the arena */
	uint32_t notified_seq;
	uint64_t replacements;
	/* which table the slots of hints belong to (shm_writer_put_hinted):
	 * new at open and at every replacement, unique in the process */
	uint32_t gen;
};

static uint32_t writer_gens;

/* A generation no hint of an earlier table holds; 0 is "no hint". */
static uint32_t
writer_next_gen(void)
{
	if (++writer_gens == 0)
		++writer_gens;
	return writer_gens;
}

/* A hint: gen in the high half, slot in the low (writer.h); none for a
 * slot past 32 bits (a table of 2^32 slots is past any arena's reach) */
static uint64_t
hint_make(const struct shm_writer *w, uint64_t slot)
{
	return slot <= UINT32_MAX ? (uint64_t)w->gen << 32 | slot : 0;
}

/*
 * The slot a hint names, if it is this table's and still holds a live
 * record whose tag is hash's, else UINT64_MAX.  Within one table a live
 * key's slot never changes (deletes leave a DELETED slot, only a
 * replacement moves records) and a hint is dropped when its key is
 * deleted, so such a slot holds the hint's key: no record compare.
 */
static uint64_t
hint_slot(const struct shm_writer *w, const uint64_t *hint, uint64_t hash)
{
	uint64_t slot;
	const struct shm_slot *s;

	if (hint == NULL || *hint >> 32 != w->gen)
		return UINT64_MAX;
	slot = *hint & 0xffffffffu;
	if (slot >= w->h->table_slots)
		return UINT64_MAX;
	s = &w->tab[slot];
	if (shm_slot_state(s->len_state) != SHM_SLOT_LIVE ||
	    shm_slot_tag(s->tag_off) != shm_hash_tag(hash))
		return UINT64_MAX;
	return slot;
}

/* Plain stores to fields readers load atomically. */
#define STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define LOAD(p) __atomic_load_n((p), __ATOMIC_RELAXED)

/*
 * Test-only hook (writer.h): with SHM_TEST_HOOKS, slot_write() stops here
 * between its two sequence-word stores, with the slot half written (odd
 * seq, new length, old offset), so that a test can read it then.
 */
#ifdef SHM_TEST_HOOKS
void (*shm_writer_test_hook)(void);
#define SHM_WRITER_TEST_HOOK() do {					\
	if (shm_writer_test_hook != NULL)				\
		shm_writer_test_hook();					\
} while (0)
#else
#define SHM_WRITER_TEST_HOOK() do { } while (0)
#endif

static void
futex_wake_all(uint32_t *word)
{
	/* shared futex: readers wait on the same file page */
	syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

static uint64_t
pow2_at_least(uint64_t n)
{
	uint64_t p = 1;

	while (p < n)
		p <<= 1;
	return p;
}

/* A new, empty region in a temp file next to the target path. */
static int
region_create(struct shm_writer *w, uint64_t slots, uint64_t arena,
    uint64_t generation, int *fdp, uint8_t **basep, size_t *sizep,
    char *tmp, size_t tmpcap)
{
	struct shm_header *h;
	uint64_t size = SHM_HEADER_SIZE + slots * SHM_SLOT_SIZE + arena;
	uint8_t *base;
	int fd;

	if ((size_t)snprintf(tmp, tmpcap, "%s.new", w->path) >= tmpcap)
		return -ENAMETOOLONG;
	unlink(tmp);
	fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, w->mode);
	if (fd < 0)
		return -errno;
	/* the mode must not depend on the umask */
	if (fchmod(fd, w->mode) != 0 || ftruncate(fd, (off_t)size) != 0) {
		int e = errno;

		close(fd);
		unlink(tmp);
		return -e;
	}
	base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED) {
		int e = errno;

		close(fd);
		unlink(tmp);
		return -e;
	}
	h = (struct shm_header *)base;
	h->magic = SHM_MAGIC;
	h->format = SHM_FORMAT;
	h->header_size = SHM_HEADER_SIZE;
	h->region_size = size;
	h->table_off = SHM_HEADER_SIZE;
	h->table_slots = slots;
	h->arena_off = SHM_HEADER_SIZE + slots * SHM_SLOT_SIZE;
	h->arena_size = arena;
	h->generation = generation;
	h->agent_pid = (uint32_t)getpid();
	memcpy(h->node, w->node, sizeof(h->node));
	*fdp = fd;
	*basep = base;
	*sizep = size;
	return 0;
}

static void
writer_attach(struct shm_writer *w, int fd, uint8_t *base, size_t size)
{
	w->fd = fd;
	w->base = base;
	w->size = size;
	w->h = (struct shm_header *)base;
	w->tab = (struct shm_slot *)(base + w->h->table_off);
	w->arena = base + w->h->arena_off;
}

static const struct shm_record *
rec_at(const uint8_t *arena, uint64_t off)
{
	return (const struct shm_record *)(const void *)(arena + off);
}

static const uint8_t *
rec_key(const struct shm_record *r)
{
	return (const uint8_t *)(r + 1);
}

/*
 * Find key: *found = its LIVE slot, or SIZE_MAX; *free_slot = the first
 * DELETED or EMPTY slot of the probe (where an insert goes).
 */
static void
writer_find(const struct shm_writer *w, uint64_t hash, const uint8_t *key,
    size_t klen, uint64_t *found, uint64_t *free_slot)
{
	uint64_t mask = w->h->table_slots - 1;
	uint32_t tag = shm_hash_tag(hash);

	*found = UINT64_MAX;
	*free_slot = UINT64_MAX;
	for (uint64_t i = 0; i <= mask; i++) {
		uint64_t idx = (hash + i) & mask;
		const struct shm_slot *s = &w->tab[idx];
		uint32_t state = shm_slot_state(s->len_state);

		if (state == SHM_SLOT_EMPTY) {
			if (*free_slot == UINT64_MAX)
				*free_slot = idx;
			return;
		}
		if (state == SHM_SLOT_DELETED) {
			if (*free_slot == UINT64_MAX)
				*free_slot = idx;
			continue;
		}
		if (shm_slot_tag(s->tag_off) == tag) {
			const struct shm_record *r = rec_at(w->arena,
			    shm_slot_off(s->tag_off));

			if (r->key_len == klen &&
			    memcmp(rec_key(r), key, klen) == 0) {
				*found = idx;
				return;
			}
		}
	}
}

/*
 * Seqlock write of one slot (Linux write_seqcount_begin/end in C11): the
 * odd sequence is stored, a release fence orders it before the field
 * stores, and the final even value is stored with release.  Readers pair
 * this with an acquire load of seq, relaxed field loads, an acquire fence
 * and a second load of seq.
 */
static void
slot_write(struct shm_slot *s, uint32_t state, uint64_t hash, uint64_t off,
    uint32_t len)
{
	uint32_t seq = s->seq;

	STORE(&s->seq, seq + 1);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	STORE(&s->len_state, len | state);
	SHM_WRITER_TEST_HOOK();
	STORE(&s->tag_off, shm_tag_off(hash, off));
	__atomic_store_n(&s->seq, seq + 2, __ATOMIC_RELEASE);
}

static void
publish_change(struct shm_writer *w)
{
	struct shm_header *h = w->h;

	STORE(&h->changes, h->changes + 1);
	__atomic_store_n(&h->change_seq, h->change_seq + 1, __ATOMIC_RELEASE);
}

/*
 * Room for a record of size bytes: a hole of that size, else the front
 * of a longer hole, else the end of the arena (holes first: their pages
 * are already in memory, the arena's end may not be yet).  False: a
 * replacement is due.
 */
static bool
arena_place(struct shm_writer *w, uint64_t size, uint64_t *off)
{
	if (shm_holes_take_exact(&w->holes, size, off) ||
	    shm_holes_take_split(&w->holes, size, off))
		return true;
	if (w->h->arena_used + size > w->h->arena_size)
		return false;
	*off = w->h->arena_used;
	STORE(&w->h->arena_used, *off + size);
	return true;
}

/*
 * Write a record at off, which arena_place() gave: space no slot points
 * to (a hole's old record was switched away from under its slot's seq).
 */
static void
record_write(struct shm_writer *w, uint64_t off, const uint8_t *key,
    size_t klen, const uint8_t *val, size_t vlen, const char *node,
    size_t nlen, uint64_t tick, uint64_t tock)
{
	uint64_t size = shm_record_size(nlen, klen, vlen);
	uint64_t moff = shm_meta_off(klen, vlen);
	struct shm_record *r = (struct shm_record *)(void *)(w->arena + off);
	struct shm_record_meta *mt =
	    (struct shm_record_meta *)(void *)(w->arena + off + moff);
	uint8_t *p = (uint8_t *)(r + 1);

	/*
	 * off may be a hole: a record some slot pointed to until its last
	 * update, whose readers may still be copying it.  They retry once
	 * they see that slot's seq changed, so the seq stores of that update
	 * must be visible before any byte written here: release orders them
	 * (a compiler barrier on x86, a dmb on arm64).
	 */
	__atomic_thread_fence(__ATOMIC_RELEASE);
	/* bytes no slot points to: plain stores are fine */
	r->key_len = (uint32_t)klen;
	r->val_len = (uint32_t)vlen;
	memcpy(p, key, klen);
	memcpy(p + klen, val, vlen);
	memset(p + klen + vlen, 0, moff - SHM_RECORD_HEADER - klen - vlen);
	mt->tick = tick;
	mt->tock = tock;
	mt->node_len = (uint8_t)nlen;
	memcpy(mt->node, node, nlen);
	memset(mt->node + nlen, 0, size - moff - SHM_META_SIZE - nlen);
}

/*
 * Build a compacted region with room for extra_bytes more and
 * extra_entries more keys (and the slack of a growth or of a
 * compaction), rename it over the path, and tell readers of the old one.
 */
static int
writer_rebuild(struct shm_writer *w, uint64_t extra_bytes,
    uint64_t extra_entries, bool grow)
{
	struct shm_header *oh = w->h;
	uint64_t live = oh->live_bytes + extra_bytes;
	uint64_t entries = oh->live_entries + extra_entries;
	uint64_t slots, arena, size;
	char tmp[PATH_MAX + 8];
	struct shm_writer nw;
	uint8_t *base;
	int fd, rc;

	/* load <= 0.7 after the rebuild */
	slots = pow2_at_least(entries * 10 / 7 + 1);
	if (slots < SHM_MIN_SLOTS)
		slots = SHM_MIN_SLOTS;
	arena = live + live / (grow ? SHM_GROW_DEN : SHM_COMPACT_DEN);
	if (arena < SHM_MIN_ARENA)
		arena = SHM_MIN_ARENA;
	arena = (arena + 4095) & ~(uint64_t)4095;
	/* slot offsets reach SHM_ARENA_MAX and no further */
	if (live > SHM_ARENA_MAX)
		return -E2BIG;
	if (arena > SHM_ARENA_MAX)
		arena = SHM_ARENA_MAX;
	nw = *w;
	if ((rc = region_create(w, slots, arena, oh->generation + 1, &fd,
	    &base, &size, tmp, sizeof(tmp))) != 0)
		return rc;
	writer_attach(&nw, fd, base, size);
	nw.used_slots = 0;
	for (uint64_t i = 0; i < oh->table_slots; i++) {
		const struct shm_slot *s = &w->tab[i];
		const struct shm_record *r;
		uint64_t found, free_slot, off, hash;
		uint32_t len = shm_slot_len(s->len_state);

		if (shm_slot_state(s->len_state) != SHM_SLOT_LIVE)
			continue;
		r = rec_at(w->arena, shm_slot_off(s->tag_off));
		/* the slot keeps only the top of the hash: the probe needs
		 * the low bits */
		hash = XXH3_64bits(rec_key(r), r->key_len);
		writer_find(&nw, hash, rec_key(r), r->key_len, &found,
		    &free_slot);
		off = nw.h->arena_used;
		memcpy(nw.arena + off, r, len);
		nw.h->arena_used = off + len;
		nw.tab[free_slot].len_state = len | SHM_SLOT_LIVE;
		nw.tab[free_slot].tag_off = shm_tag_off(hash, off);
		nw.used_slots++;
	}
	nw.h->live_entries = oh->live_entries;
	nw.h->live_bytes = oh->live_bytes;
	/*
	 * The replacement is itself published as one change on both sides,
	 * so the counters agree: a reader that saw the old region's last
	 * value sees the same value on the new one, and every later put
	 * moves past it.
	 */
	nw.h->changes = oh->changes + 1;
	nw.h->change_seq = oh->change_seq + 1;
	nw.h->heartbeat_ns = oh->heartbeat_ns;
	if (rename(tmp, w->path) != 0) {
		rc = -errno;
		munmap(base, size);
		close(fd);
		unlink(tmp);
		return rc;
	}
	/* readers of the old region re-open the name on their next call */
	__atomic_store_n(&oh->superseded, 1, __ATOMIC_RELEASE);
	publish_change(w);
	futex_wake_all(&oh->change_seq);
	munmap(w->base, w->size);
	close(w->fd);
	nw.replacements = w->replacements + 1;
	nw.notified_seq = w->notified_seq;
	nw.gen = writer_next_gen();
	*w = nw;
	/* the new arena is compacted: no holes (nw shares the lists) */
	shm_holes_clear(&w->holes);
	return 0;
}

/*
 * A replacement sizes the arena at 1.5x the live records after growth,
 * 1.125x after a compaction.  The file is sparse: room never written
 * takes no memory, the records and holes below arena_used do.  So the
 * writer compacts after a change that leaves
 *   - more than 1/8 of the live data (plus the minimum arena) in holes
 *     and rests below arena_used: the memory bound, 1.125x live + a fixed
 *     part, whatever the churn; or
 *   - an arena more than 1.5x the live data (plus the minimum): the file
 *     shrinks with the data, not only its memory.
 * The minimum keeps a small region from compacting on every change, and
 * a compaction leaves no holes and 1/8 of room: the next one comes after
 * at least that much more churn.
 */
static bool
writer_wasteful(const struct shm_writer *w)
{
	uint64_t live = w->h->live_bytes + w->reserved;

	return w->h->arena_used - w->h->live_bytes >
	    live / SHM_COMPACT_DEN + SHM_MIN_ARENA ||
	    w->h->arena_size > live + live / SHM_GROW_DEN + SHM_MIN_ARENA;
}

/*
 * A replacement that does not fit in the current arena is growth when
 * the arena holds little that is not live (at most 1/8 of it: holes, and
 * rests too short for a record), else a compaction.
 */
static bool
writer_grows(const struct shm_writer *w)
{
	return w->h->arena_used - w->h->live_bytes <=
	    w->h->arena_size / SHM_COMPACT_DEN && !writer_wasteful(w);
}

/*
 * After a change is published: compact if it left the region wasteful.
 * A compaction that fails here leaves a valid, larger region, and the
 * next change tries again; the change itself stands.
 */
static void
writer_tidy(struct shm_writer *w)
{
	if (writer_wasteful(w))
		(void)writer_rebuild(w, 0, 0, false);
}

/*
 * One writer per region: an flock on PATH.lock, held while the agent
 * runs (two agents with the same node name would otherwise replace each
 * other's region and readers would get the other agent's values).  The
 * lock file holds the owner's pid for the error message.
 */
static int
writer_lock(struct shm_writer *w, const char *path)
{
	char lp[PATH_MAX + 8], pid[32];
	int n;

	if ((size_t)snprintf(lp, sizeof(lp), "%s.lock", path) >= sizeof(lp))
		return -ENAMETOOLONG;
	if ((w->lock_fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
	    0600)) < 0)
		return -errno;
	if (flock(w->lock_fd, LOCK_EX | LOCK_NB) != 0) {
		int e = errno == EWOULDBLOCK ? EBUSY : errno;

		close(w->lock_fd);
		w->lock_fd = -1;
		return -e;
	}
	n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(w->lock_fd, 0) != 0 ||
	    pwrite(w->lock_fd, pid, (size_t)n, 0) != n)
		return 0;	/* the pid is only for messages */
	return 0;
}

int
shm_writer_lock_owner(const char *path)
{
	char lp[PATH_MAX + 8], buf[32];
	ssize_t n;
	int fd;

	if ((size_t)snprintf(lp, sizeof(lp), "%s.lock", path) >= sizeof(lp) ||
	    (fd = open(lp, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	return atoi(buf);
}

int
shm_writer_open(const char *path, mode_t mode, const char *node,
    struct shm_writer **out)
{
	struct shm_writer *w;
	char tmp[PATH_MAX + 8];
	uint8_t *base;
	size_t size;
	int fd, rc;

	*out = NULL;
	if ((w = calloc(1, sizeof(*w))) == NULL ||
	    (w->path = strdup(path)) == NULL) {
		free(w);
		return -ENOMEM;
	}
	w->mode = mode;
	/* before anything replaces the region another agent may publish */
	if ((rc = writer_lock(w, path)) != 0)
		goto fail;
	/* NUL padded, not necessarily terminated (layout.h) */
	memcpy(w->node, node, strnlen(node, sizeof(w->node)));
	if ((rc = region_create(w, SHM_MIN_SLOTS, SHM_MIN_ARENA, 1, &fd, &base,
	    &size, tmp, sizeof(tmp))) != 0)
		goto fail;
	if (rename(tmp, path) != 0) {
		rc = -errno;
		munmap(base, size);
		close(fd);
		unlink(tmp);
		goto fail;
	}
	writer_attach(w, fd, base, size);
	w->gen = writer_next_gen();
	shm_writer_heartbeat(w);
	*out = w;
	return 0;
fail:
	if (w->lock_fd > 0)
		close(w->lock_fd);
	free(w->path);
	free(w);
	return rc;
}

void
shm_writer_prefetch(const struct shm_writer *w, const uint8_t *key,
    size_t klen)
{
	uint64_t hash = XXH3_64bits(key, klen);

	__builtin_prefetch(&w->tab[hash & (w->h->table_slots - 1)], 1);
}

int
shm_writer_put(struct shm_writer *w, const uint8_t *key, size_t klen,
    const uint8_t *val, size_t vlen, const struct shm_meta *m)
{
	return shm_writer_put_hinted(w, key, klen, val, vlen, m, NULL);
}

int
shm_writer_put_hinted(struct shm_writer *w, const uint8_t *key, size_t klen,
    const uint8_t *val, size_t vlen, const struct shm_meta *m,
    uint64_t *hint)
{
	size_t nlen = m->node_len < SHM_NODE_MAX ? m->node_len : SHM_NODE_MAX;
	uint64_t hash, size, found, free_slot, off, old_len = 0, slot;
	int rc;

	if (klen > UINT32_MAX / 2 || vlen > UINT32_MAX / 2)
		return -E2BIG;
	size = shm_record_size(nlen, klen, vlen);
	/* a slot holds the length in 32 bits */
	if (size > SHM_RECORD_MAX)
		return -E2BIG;
	hash = XXH3_64bits(key, klen);
	free_slot = UINT64_MAX;
	if ((found = hint_slot(w, hint, hash)) == UINT64_MAX)
		writer_find(w, hash, key, klen, &found, &free_slot);
	if ((found == UINT64_MAX && (w->used_slots + 1) * SHM_MAX_LOAD_DEN >
	    w->h->table_slots * SHM_MAX_LOAD_NUM) ||
	    !arena_place(w, size, &off)) {
		if ((rc = writer_rebuild(w, size, 1, writer_grows(w))) != 0)
			return rc;
		writer_find(w, hash, key, klen, &found, &free_slot);
		/* a fresh arena has room for size at its end */
		if (!arena_place(w, size, &off))
			return -ENOSPC;
	}
	record_write(w, off, key, klen, val, vlen, m->node, nlen, m->tick,
	    m->tock);
	w->reserved -= w->reserved < size ? w->reserved : size;
	if (found != UINT64_MAX) {
		struct shm_slot *s = &w->tab[found];
		uint64_t old_off = shm_slot_off(s->tag_off);

		old_len = shm_slot_len(s->len_state);
		slot_write(s, SHM_SLOT_LIVE, hash, off, (uint32_t)size);
		/* no slot points to the old record now: its space is free */
		shm_holes_add(&w->holes, old_off, old_len);
		slot = found;
	} else {
		if (shm_slot_state(w->tab[free_slot].len_state) ==
		    SHM_SLOT_EMPTY)
			w->used_slots++;
		slot_write(&w->tab[free_slot], SHM_SLOT_LIVE, hash, off,
		    (uint32_t)size);
		STORE(&w->h->live_entries, w->h->live_entries + 1);
		slot = free_slot;
	}
	STORE(&w->h->live_bytes, w->h->live_bytes + size - old_len);
	publish_change(w);
	if (hint != NULL)
		*hint = hint_make(w, slot);
	/* a compaction here moves every record: the hint is then another
	 * table's, which its generation tells */
	writer_tidy(w);
	return 0;
}

uint64_t
shm_writer_record_bytes(size_t klen, size_t vlen, size_t node_len)
{
	return shm_record_size(node_len < SHM_NODE_MAX ? node_len :
	    SHM_NODE_MAX, klen, vlen);
}

/*
 * A bulk fill is about to write `bytes` of records after arena_used and
 * probe the table at random: its pages come in one call (the kernel's
 * page zeroing in a batch) rather than a page fault each.  Those faults
 * were 5-6% of a 1M-key snapshot load in perf; with this the load took
 * 3-4% less CPU (bench/README.md, session 14).  Only room that is about
 * to be written: the region stays sparse.  Kernels before 5.14 refuse
 * the advice; the faults then come one by one as before.
 */
static void
writer_populate(struct shm_writer *w, uint64_t bytes)
{
	long pg = sysconf(_SC_PAGESIZE);
	uintptr_t from, to;

	if (pg <= 0 || bytes == 0)
		return;
	(void)madvise(w->tab, w->h->table_slots * sizeof(*w->tab),
	    MADV_POPULATE_WRITE);
	from = (uintptr_t)(w->arena + w->h->arena_used) & ~((uintptr_t)pg - 1);
	to = (uintptr_t)(w->arena + w->h->arena_used + bytes);
	(void)madvise((void *)from, to - from, MADV_POPULATE_WRITE);
}

int
shm_writer_reserve(struct shm_writer *w, uint64_t entries, uint64_t bytes)
{
	int rc;

	if (w->h->arena_used + bytes <= w->h->arena_size &&
	    (w->used_slots + entries) * SHM_MAX_LOAD_DEN <=
	    w->h->table_slots * SHM_MAX_LOAD_NUM)
		rc = 0;
	else
		rc = writer_rebuild(w, bytes, entries, true);
	/* until they come, the room is not garbage to compact away */
	if (rc == 0) {
		w->reserved = bytes;
		writer_populate(w, bytes);
	}
	return rc;
}

int
shm_writer_del(struct shm_writer *w, const uint8_t *key, size_t klen)
{
	return shm_writer_del_hinted(w, key, klen, NULL);
}

int
shm_writer_del_hinted(struct shm_writer *w, const uint8_t *key, size_t klen,
    uint64_t *hint)
{
	uint64_t hash, found, free_slot;
	struct shm_slot *s;

	if (klen > UINT32_MAX / 2)
		return 0;	/* no such key can exist */
	hash = XXH3_64bits(key, klen);
	if ((found = hint_slot(w, hint, hash)) == UINT64_MAX)
		writer_find(w, hash, key, klen, &found, &free_slot);
	/* the slot turns DELETED and may later hold another key */
	if (hint != NULL)
		*hint = 0;
	if (found == UINT64_MAX)
		return 0;
	s = &w->tab[found];
	STORE(&w->h->live_bytes, w->h->live_bytes -
	    shm_slot_len(s->len_state));
	STORE(&w->h->live_entries, w->h->live_entries - 1);
	slot_write(s, SHM_SLOT_DELETED, hash, shm_slot_off(s->tag_off),
	    shm_slot_len(s->len_state));
	/* readers never follow a deleted slot's offset: the space is free */
	shm_holes_add(&w->holes, shm_slot_off(s->tag_off),
	    shm_slot_len(s->len_state));
	publish_change(w);
	writer_tidy(w);
	return 0;
}

void
shm_writer_heartbeat(struct shm_writer *w)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	STORE(&w->h->heartbeat_ns,
	    (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
}

void
shm_writer_notify(struct shm_writer *w)
{
	uint32_t cur = w->h->change_seq;

	if (cur == w->notified_seq)
		return;
	w->notified_seq = cur;
	futex_wake_all(&w->h->change_seq);
}

void
shm_writer_stats(const struct shm_writer *w, struct shm_writer_stats *s)
{
	s->region_size = w->h->region_size;
	s->live_entries = w->h->live_entries;
	s->live_bytes = w->h->live_bytes;
	s->arena_used = w->h->arena_used;
	s->generation = w->h->generation;
	s->replacements = w->replacements;
}

void
shm_writer_close(struct shm_writer *w, bool unlink_file)
{
	if (w == NULL)
		return;
	__atomic_store_n(&w->h->closed, 1, __ATOMIC_RELEASE);
	publish_change(w);
	futex_wake_all(&w->h->change_seq);
	munmap(w->base, w->size);
	close(w->fd);
	shm_holes_free(&w->holes);
	if (unlink_file)
		unlink(w->path);
	if (w->lock_fd >= 0) {
		char lp[PATH_MAX + 8];

		/* ours to remove: we hold the lock until close */
		if ((size_t)snprintf(lp, sizeof(lp), "%s.lock", w->path) <
		    sizeof(lp))
			unlink(lp);
		close(w->lock_fd);
	}
	free(w->path);
	free(w);
}
