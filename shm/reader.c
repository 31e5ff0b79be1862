/* shm reader: see reader.h and layout.h.
 *
 * Everything in the mapping may be garbage (a corrupt file, a writer that
 * died mid-update, or simply a slot read while it changes), so every value
 * loaded from it is checked before it is used as an offset or a length,
 * and nothing copied out is trusted before the slot's sequence word is
 * seen unchanged after the copy.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "layout.h"
#include "reader.h"

struct shm_reader {
	char *path;
	int fd;
	const uint8_t *base;
	size_t size;
	const struct shm_header *h;
	const struct shm_slot *tab;
	uint64_t mask;			/* table_slots - 1 */
	const uint8_t *arena;
	uint64_t arena_size;
	dev_t dev;
	ino_t ino;
};

#define LOAD(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define LOAD_ACQ(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)

/*
 * Test-only hook (reader.h): a test program that compiles this file with
 * SHM_TEST_HOOKS runs a whole writer update between the two loads of a
 * slot, so that the pair it read is torn for sure and only the sequence
 * re-check can tell; or, after a key matched, an update that reuses the
 * record's space for another key.  Nothing of it exists in the library.
 */
#ifdef SHM_TEST_HOOKS
void (*shm_reader_test_hook)(void);
void (*shm_reader_test_hook_matched)(void);
#define SHM_READER_TEST_HOOK() do {					\
	if (shm_reader_test_hook != NULL)				\
		shm_reader_test_hook();					\
} while (0)
/* an expression: it sits inside the lookup's chain of conditions */
#define SHM_READER_TEST_HOOK_MATCHED()					\
	(shm_reader_test_hook_matched != NULL ?				\
	    shm_reader_test_hook_matched() : (void)0)
#else
#define SHM_READER_TEST_HOOK() do { } while (0)
#define SHM_READER_TEST_HOOK_MATCHED() ((void)0)
#endif

/*
 * Validate the fixed part of a header: these fields are written once
 * before the file gets its name, but the file may be anything.
 */
static int
header_check(const uint8_t *base, size_t size)
{
	const struct shm_header *h = (const struct shm_header *)base;
	uint64_t slots, tab_end;

	if (size < SHM_HEADER_SIZE || h->magic != SHM_MAGIC ||
	    h->format != SHM_FORMAT || h->header_size != SHM_HEADER_SIZE ||
	    h->region_size != size || h->table_off != SHM_HEADER_SIZE)
		return -EBADMSG;
	slots = h->table_slots;
	if (slots == 0 || (slots & (slots - 1)) != 0 ||
	    slots > (size - SHM_HEADER_SIZE) / SHM_SLOT_SIZE)
		return -EBADMSG;
	tab_end = SHM_HEADER_SIZE + slots * SHM_SLOT_SIZE;
	if (h->arena_off != tab_end || h->arena_off > size ||
	    h->arena_size > size - h->arena_off ||
	    h->arena_size > SHM_ARENA_MAX)
		return -EBADMSG;
	return 0;
}

static int
reader_map(struct shm_reader *r)
{
	struct stat st;
	void *base;
	int fd, rc;

	/*
	 * The path may come from a greeting, i.e. from whoever answers on
	 * a socket (a peer port too).  A region is a regular file: never
	 * open anything else (a FIFO would block the caller for good, a
	 * device may act on open), and never block in open(2).
	 */
	if (stat(r->path, &st) == 0 && !S_ISREG(st.st_mode))
		return -EBADMSG;
	fd = open(r->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) != 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	if (!S_ISREG(st.st_mode)) {	/* replaced since the stat */
		close(fd);
		return -EBADMSG;
	}
	if (st.st_size < SHM_HEADER_SIZE) {
		close(fd);
		return -EBADMSG;
	}
	base = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED) {
		rc = -errno;
		close(fd);
		return rc;
	}
	if ((rc = header_check(base, (size_t)st.st_size)) != 0) {
		munmap(base, (size_t)st.st_size);
		close(fd);
		return rc;
	}
	r->fd = fd;
	r->base = base;
	r->size = (size_t)st.st_size;
	r->h = base;
	r->tab = (const struct shm_slot *)(r->base + SHM_HEADER_SIZE);
	r->mask = r->h->table_slots - 1;
	r->arena = r->base + r->h->arena_off;
	r->arena_size = r->h->arena_size;
	r->dev = st.st_dev;
	r->ino = st.st_ino;
	return 0;
}

static void
reader_unmap(struct shm_reader *r)
{
	if (r->base != NULL) {
		munmap((void *)r->base, r->size);
		close(r->fd);
	}
	r->base = NULL;
}

/* Replace the mapping by the file now at the path. */
static int
reader_remap(struct shm_reader *r)
{
	struct shm_reader n = *r;
	int rc;

	n.base = NULL;
	if ((rc = reader_map(&n)) != 0)
		return rc;
	reader_unmap(r);
	*r = n;
	return 0;
}

int
shm_reader_open(const char *path, struct shm_reader **out)
{
	struct shm_reader *r;
	int rc;

	*out = NULL;
	if ((r = calloc(1, sizeof(*r))) == NULL ||
	    (r->path = strdup(path)) == NULL) {
		free(r);
		return -ENOMEM;
	}
	if ((rc = reader_map(r)) != 0) {
		free(r->path);
		free(r);
		return rc;
	}
	*out = r;
	return 0;
}

void
shm_reader_close(struct shm_reader *r)
{
	if (r == NULL)
		return;
	reader_unmap(r);
	free(r->path);
	free(r);
}

/*
 * Check a record position taken from a slot against the arena and read its
 * key and value lengths into *rh; *moff is the offset of its metadata from
 * the record start.  Key, value and the fixed part of the metadata must
 * fit in len; the node name's length, at the end of the record, is checked
 * by meta_ok() when the metadata is read (a lookup that does not want it
 * touches only the record's first bytes).  Invariant relied on: records
 * never straddle the arena end, so off + len <= arena_size for any slot
 * the writer made.  off is 8-aligned by construction (a count of 8 bytes).
 */
static inline bool
record_ok(const struct shm_reader *r, uint64_t off, uint64_t len,
    struct shm_record *rh, uint64_t *moff)
{
	if (off > r->arena_size || len > r->arena_size - off ||
	    len < SHM_RECORD_MIN || (len & (SHM_ALIGN - 1)) != 0)
		return false;
	memcpy(rh, r->arena + off, sizeof(*rh));
	/* u32 + u32: no overflow in 64 bits */
	*moff = shm_meta_off(rh->key_len, rh->val_len);
	return *moff <= len - SHM_META_SIZE;
}

/* The node name of a record that passed record_ok() fits in it too. */
static inline bool
meta_ok(const struct shm_reader *r, uint64_t off, uint64_t len,
    uint64_t moff, uint8_t *node_len)
{
	*node_len = r->arena[off + moff +
	    offsetof(struct shm_record_meta, node_len)];
	return *node_len <= SHM_NODE_MAX &&
	    moff + SHM_META_SIZE + *node_len <= len;
}

/*
 * Key bytes equal?  Keys are mostly short (a msgpack path of a few dozen
 * bytes): compare them a word at a time here, without a call; the last
 * word overlaps the one before, so neither side is read past n.
 */
static inline bool
key_eq(const uint8_t *a, const uint8_t *b, size_t n)
{
	uint64_t x, y;

	if (n < 8 || n > 64)
		return memcmp(a, b, n) == 0;
	for (size_t i = 0; i + 8 < n; i += 8) {
		memcpy(&x, a + i, 8);
		memcpy(&y, b + i, 8);
		if (x != y)
			return false;
	}
	memcpy(&x, a + n - 8, 8);
	memcpy(&y, b + n - 8, 8);
	return x == y;
}

enum probe_step { PROBE_MISS, PROBE_NEXT, PROBE_HIT, PROBE_RETRY,
    PROBE_SMALL, PROBE_BAD };

/*
 * One slot of a lookup.  Reads the slot under its sequence word; on a
 * key match copies the value, or with as_str only the body of a str
 * value and a NUL (PROBE_SMALL if the value is no str or does not fit).
 * Returns what the lookup does next.
 */
static inline __attribute__((always_inline)) enum probe_step
probe_slot(const struct shm_reader *r, const struct shm_slot *s,
    uint32_t tag, const uint8_t *key, size_t klen, void *buf, size_t cap,
    size_t *len, struct shm_read_meta *m, bool as_str)
{
	uint32_t seq, ls, state;
	uint64_t to, off, moff;
	uint8_t nl = 0;		/* set by meta_ok, read only when m != NULL */
	struct shm_record rh;
	const uint8_t *p;
	enum probe_step step;
	size_t hdr, body;

	/* pairs with the release store of the even seq in slot_write() */
	seq = LOAD_ACQ(&s->seq);
	if (seq & 1)
		return PROBE_RETRY;
	ls = LOAD(&s->len_state);
	SHM_READER_TEST_HOOK();
	to = LOAD(&s->tag_off);
	state = shm_slot_state(ls);
	if (state == SHM_SLOT_EMPTY)
		step = PROBE_MISS;
	else if (state != SHM_SLOT_LIVE || shm_slot_tag(to) != tag)
		step = PROBE_NEXT;
	else if (off = shm_slot_off(to),
	    !record_ok(r, off, shm_slot_len(ls), &rh, &moff))
		step = PROBE_BAD;
	else {
		p = r->arena + off + SHM_RECORD_HEADER;
		if (rh.key_len != klen || !key_eq(p, key, klen))
			step = PROBE_NEXT;
		else if (SHM_READER_TEST_HOOK_MATCHED(), m != NULL && !meta_ok(r, off, shm_slot_len(ls), moff,
		    &nl))
			step = PROBE_BAD;
		else if (as_str) {
			/* record_ok: the value lies inside the arena */
			if (!shm_str_body(p + klen, rh.val_len, &hdr, &body) ||
			    body >= cap)
				step = PROBE_SMALL;
			else {
				memcpy(buf, p + klen + hdr, body);
				((char *)buf)[body] = '\0';
				step = PROBE_HIT;
			}
		} else if (rh.val_len > cap) {
			*len = rh.val_len;
			step = PROBE_SMALL;
		} else {
			memcpy(buf, p + klen, rh.val_len);
			*len = rh.val_len;
			if (m != NULL) {
				const uint8_t *mp = r->arena + off + moff;

				memcpy(&m->tick, mp, sizeof(m->tick));
				memcpy(&m->tock, mp + offsetof(struct
				    shm_record_meta, tock), sizeof(m->tock));
				memcpy(m->node, mp + SHM_META_SIZE, nl);
				m->node[nl] = '\0';
			}
			step = PROBE_HIT;
		}
	}
	/* pairs with the release fence after the odd seq in slot_write() */
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	if (LOAD(&s->seq) != seq)
		return PROBE_RETRY;
	/* a corrupt record under a stable seq is really corrupt */
	return step;
}

uint64_t
shm_key_hash(const uint8_t *key, size_t klen)
{
	/* the writer's hash (writer.c); SHM_FORMAT changes if it does */
	return XXH3_64bits(key, klen);
}

int
shm_reader_get(struct shm_reader *r, const uint8_t *key, size_t klen,
    void *buf, size_t cap, size_t *len, struct shm_read_meta *m)
{
	return shm_reader_get_hashed(r, key, klen, shm_key_hash(key, klen), buf,
	    cap, len, m);
}

/*
 * The lookup proper.  Invariant relied on for a hash computed long before
 * (a prepared key): the hash is a pure function of the key bytes, the
 * same in every region of this SHM_FORMAT, so it stays right across a
 * replacement (a new generation); nothing else of the key is kept.
 */
/* always inlined: each caller gets its own copy, as_str a constant */
static inline __attribute__((always_inline)) int
lookup(struct shm_reader *r, const uint8_t *key, size_t klen, uint64_t hash,
    void *buf, size_t cap, size_t *len, struct shm_read_meta *m, bool as_str)
{
	uint32_t tag = shm_hash_tag(hash);
	int rc;

	for (int attempt = 0; attempt < SHM_READ_RETRIES; attempt++) {
		bool retry = false;

		/* a replaced region: the only path with system calls */
		if (LOAD_ACQ(&r->h->superseded) != 0 &&
		    (rc = reader_remap(r)) != 0)
			return rc;
		for (uint64_t i = 0; i <= r->mask && !retry; i++) {
			const struct shm_slot *s = &r->tab[(hash + i) & r->mask];

			switch (probe_slot(r, s, tag, key, klen, buf, cap, len,
			    m, as_str)) {
			case PROBE_MISS:
				return -ENOENT;
			case PROBE_NEXT:
				break;
			case PROBE_HIT:
				return 0;
			case PROBE_SMALL:
				return -ENOBUFS;
			case PROBE_BAD:
				/* maybe mid-replacement: look again first */
				if (LOAD_ACQ(&r->h->superseded) != 0)
					retry = true;
				else
					return -EBADMSG;
				break;
			case PROBE_RETRY:
				retry = true;
				break;
			}
		}
		if (!retry)
			return -ENOENT;	/* probed the whole table */
	}
	return -EAGAIN;
}

int
shm_reader_get_hashed(struct shm_reader *r, const uint8_t *key, size_t klen,
    uint64_t hash, void *buf, size_t cap, size_t *len,
    struct shm_read_meta *m)
{
	return lookup(r, key, klen, hash, buf, cap, len, m, false);
}

int
shm_reader_get_str_hashed(struct shm_reader *r, const uint8_t *key,
    size_t klen, uint64_t hash, char *buf, size_t cap)
{
	size_t len;

	return lookup(r, key, klen, hash, buf, cap, &len, NULL, true);
}

uint64_t
shm_reader_changes(struct shm_reader *r)
{
	/* the count goes on in the region that replaced this one */
	if (LOAD_ACQ(&r->h->superseded) != 0)
		reader_remap(r);
	return LOAD_ACQ(&r->h->changes);
}

uint32_t
shm_reader_seq(struct shm_reader *r)
{
	if (LOAD_ACQ(&r->h->superseded) != 0)
		reader_remap(r);
	return LOAD_ACQ(&r->h->change_seq);
}

int
shm_reader_wait(struct shm_reader *r, uint32_t since, int timeout_ms)
{
	struct timespec ts, *tsp = NULL;
	long rc;

	if (LOAD_ACQ(&r->h->change_seq) != since ||
	    LOAD_ACQ(&r->h->superseded) != 0 || LOAD_ACQ(&r->h->closed) != 0)
		return 0;
	if (timeout_ms >= 0) {
		ts.tv_sec = timeout_ms / 1000;
		ts.tv_nsec = (long)(timeout_ms % 1000) * 1000000L;
		tsp = &ts;
	}
	/* shared futex on a read-only mapping: FUTEX_WAIT only reads */
	rc = syscall(SYS_futex, &r->h->change_seq, FUTEX_WAIT, since, tsp,
	    NULL, 0);
	if (rc == 0 || errno == EAGAIN || errno == EINTR)
		return 0;
	return errno == ETIMEDOUT ? -ETIMEDOUT : -errno;
}

int
shm_reader_alive(struct shm_reader *r, int stale_ms)
{
	struct timespec ts;
	uint64_t now, beat;
	uint32_t pid;
	struct stat st;

	if (LOAD_ACQ(&r->h->superseded) != 0)
		reader_remap(r);
	pid = LOAD(&r->h->agent_pid);
	beat = LOAD(&r->h->heartbeat_ns);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	if (LOAD_ACQ(&r->h->closed) == 0 && pid != 0 &&
	    (kill((pid_t)pid, 0) == 0 || errno == EPERM) &&
	    (stale_ms < 0 || now < beat ||
	    now - beat <= (uint64_t)stale_ms * 1000000u))
		return 1;
	/* the agent is gone: has a new one put a region at the path? */
	if (stat(r->path, &st) == 0 &&
	    (st.st_ino != r->ino || st.st_dev != r->dev) &&
	    reader_remap(r) == 0)
		return shm_reader_alive(r, stale_ms);
	return 0;
}

bool
shm_reader_fresh(struct shm_reader *r, int stale_ms)
{
	struct timespec ts;
	uint64_t now, beat;

	if (LOAD_ACQ(&r->h->closed) != 0 || LOAD_ACQ(&r->h->superseded) != 0)
		return false;
	beat = LOAD(&r->h->heartbeat_ns);
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	now = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	/* the coarse clock may lag the writer's fine one by a tick */
	return now < beat || now - beat <= (uint64_t)stale_ms * 1000000u;
}

/* Growable private copy of scan results. */
struct scanbuf {
	uint8_t *p;
	size_t len, cap;
};

static int
scanbuf_add(struct scanbuf *b, const void *src, size_t n)
{
	if (n > b->cap - b->len) {
		size_t cap = b->cap ? b->cap * 2 : 4096;
		uint8_t *p;

		while (cap - b->len < n)
			cap *= 2;
		if ((p = realloc(b->p, cap)) == NULL)
			return -ENOMEM;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, src, n);
	b->len += n;
	return 0;
}

/* Copy every live record (key and value, length-prefixed) into b. */
static int
scan_once(struct shm_reader *r, struct scanbuf *b)
{
	for (uint64_t i = 0; i <= r->mask; i++) {
		const struct shm_slot *s = &r->tab[i];
		struct shm_record rh;
		uint64_t off, rlen, moff;
		uint32_t lens[2];

		uint32_t seq = LOAD_ACQ(&s->seq), ls;
		uint64_t to;
		uint8_t nl;
		bool too_much = false;

		if (seq & 1)
			return -EAGAIN;
		ls = LOAD(&s->len_state);
		to = LOAD(&s->tag_off);
		/*
		 * The record does not change while the slot keeps seq; once
		 * the slot is switched away its space may hold another
		 * record (the writer reuses it), so the seq is checked again
		 * after the copy, as a lookup does.
		 */
		off = shm_slot_off(to);
		rlen = shm_slot_len(ls);
		if (shm_slot_state(ls) == SHM_SLOT_LIVE &&
		    record_ok(r, off, rlen, &rh, &moff) &&
		    meta_ok(r, off, rlen, moff, &nl)) {
			lens[0] = rh.key_len;
			lens[1] = rh.val_len;
			/*
			 * Live records never overlap, so a valid region
			 * yields at most arena_size bytes (plus 8 per slot):
			 * more means slots point at the same bytes again and
			 * again, i.e. corruption.
			 */
			too_much = b->len + sizeof(lens) + rh.key_len +
			    rh.val_len > r->arena_size + 8 * (r->mask + 1);
			if (!too_much && (scanbuf_add(b, lens,
			    sizeof(lens)) != 0 || scanbuf_add(b, r->arena +
			    off + SHM_RECORD_HEADER, (size_t)rh.key_len +
			    rh.val_len) != 0))
				return -ENOMEM;
		}
		/* pairs with the release fence after the odd seq */
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (LOAD(&s->seq) != seq)
			return -EAGAIN;
		if (too_much)
			return -EBADMSG;
	}
	return 0;
}

int
shm_reader_scan(struct shm_reader *r, shm_scan_fn *fn, void *arg)
{
	struct scanbuf b = { NULL, 0, 0 };
	int rc = -EAGAIN;

	for (int attempt = 0; attempt < SHM_READ_RETRIES / 100; attempt++) {
		uint64_t before;

		if (LOAD_ACQ(&r->h->superseded) != 0 &&
		    (rc = reader_remap(r)) != 0)
			break;
		/*
		 * Region-wide seqlock: the writer bumps `changes` after every
		 * slot change, so equal counts around the copy mean no slot
		 * changed during it.  A change that is in progress shows as
		 * an odd slot seq: retry then too.
		 */
		before = LOAD_ACQ(&r->h->changes);
		b.len = 0;
		if ((rc = scan_once(r, &b)) == -EAGAIN)
			continue;
		if (rc != 0)
			break;
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (LOAD(&r->h->changes) != before ||
		    LOAD(&r->h->superseded) != 0) {
			rc = -EAGAIN;
			continue;
		}
		rc = 0;
		for (size_t off = 0; off < b.len;) {
			uint32_t lens[2];

			memcpy(lens, b.p + off, sizeof(lens));
			off += sizeof(lens);
			if (fn(arg, b.p + off, lens[0], b.p + off + lens[0],
			    lens[1]) != 0)
				break;
			off += (size_t)lens[0] + lens[1];
		}
		break;
	}
	free(b.p);
	return rc;
}

void
shm_reader_info(struct shm_reader *r, struct shm_reader_info *i)
{
	if (LOAD_ACQ(&r->h->superseded) != 0)
		reader_remap(r);
	i->region_size = r->h->region_size;
	i->generation = r->h->generation;
	i->live_entries = LOAD(&r->h->live_entries);
	i->live_bytes = LOAD(&r->h->live_bytes);
	i->agent_pid = LOAD(&r->h->agent_pid);
	i->closed = LOAD(&r->h->closed) != 0;
	{
		/* the writer stamps CLOCK_MONOTONIC: same clock, same boot */
		uint64_t beat = LOAD(&r->h->heartbeat_ns), now;
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		now = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
		i->heartbeat_age_ms = now > beat ? (now - beat) / 1000000u : 0;
	}
}
