/*
 * The writer's list of free space in its region's arena: records that no
 * slot points to any more (overwritten or deleted), kept so that a new
 * record can take their place instead of growing the arena.
 *
 * Private to the writer (the region holds none of it) and empty again
 * after every replacement, whose arena is compacted.  A hole is only
 * ever handed back after the slot that pointed to it was switched away
 * under its seq, so a reader still copying the old record from it sees
 * the seq change and discards the copy (docs/shm.md, "Writer rules").
 */
#ifndef DISTKV_SHM_HOLES_H
#define DISTKV_SHM_HOLES_H

#include <stdbool.h>
#include <stdint.h>

/* Holes up to this length are kept by exact length, one list each. */
#define SHM_HOLES_EXACT_MAX 4096u
#define SHM_HOLES_CLASSES (SHM_HOLES_EXACT_MAX / 8 + 1)

struct shm_hole_list {
	uint32_t *off8;		/* offsets / 8 (the arena is <= 32 GiB) */
	uint32_t n, cap;
};

struct shm_big_hole {
	uint64_t off, len;
};

struct shm_holes {
	struct shm_hole_list exact[SHM_HOLES_CLASSES];
	uint64_t nonempty[(SHM_HOLES_CLASSES + 63) / 64];
	struct shm_big_hole *big;	/* longer holes, unsorted */
	uint32_t nbig, capbig;
	uint64_t bytes;			/* in all the lists */
};

/* All lists empty; keeps their memory for reuse. */
void shm_holes_clear(struct shm_holes *h);
void shm_holes_free(struct shm_holes *h);

/*
 * Remember len bytes at off (both multiples of 8, len >= SHM_RECORD_MIN)
 * as free.  Out of memory, the space is simply not reused: it stays
 * garbage until the next compaction.
 */
void shm_holes_add(struct shm_holes *h, uint64_t off, uint64_t len);

/* A hole of exactly len bytes, removed from the lists. */
bool shm_holes_take_exact(struct shm_holes *h, uint64_t len, uint64_t *off);

/*
 * The front of a longer hole (the shortest that fits, among the exact
 * lists; else the first of the long ones), removed from the lists; the
 * rest goes back if it can hold a record, else it is garbage until the
 * next compaction.
 */
bool shm_holes_take_split(struct shm_holes *h, uint64_t len, uint64_t *off);

#endif
