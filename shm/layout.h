/*
 * layout: the shared-memory region of one agent (docs/shm.md).
 *
 * One writer (the agent), any number of readers mapping the file
 * PROT_READ.  Offsets only, fixed-width little-endian fields (the region
 * never leaves the host), every size and offset _Static_asserted.
 *
 *   [header: 256 bytes][slot table: slots * 16 bytes][arena]
 *
 * The slot table is open addressing with linear probing on XXH3-64 of the
 * key (the canonical msgpack encoding of the path): the probe starts at
 * the low bits of the hash, and each slot keeps the high 32 bits as a tag
 * that is compared before the record is touched.  Each slot is guarded by
 * its own sequence word: odd while the writer changes it.  A slot goes
 * EMPTY -> LIVE -> DELETED -> LIVE ... and never back to EMPTY inside one
 * region, so a probe sequence never loses a key it passed.
 *
 * Records live in the arena, 8-byte aligned, and are never modified while
 * a slot points to them: a new value is a new record, then the slot is
 * switched to it under its sequence word.  Only then is the old record's
 * space free for another record (a reader still copying it sees the seq
 * changed).  A record starts with the key and the value (what a lookup
 * reads) and ends with the metadata (tick, tock, node name).  When a
 * record fits in no free space, the writer builds a compacted region in a
 * new file, renames it over the old name, and sets the old header's
 * `superseded`: readers re-open the name.
 */
#ifndef DISTKV_SHM_LAYOUT_H
#define DISTKV_SHM_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#define SHM_MAGIC 0x31304d48535644ULL	/* "DVSHM01" + NUL, little endian */
#define SHM_FORMAT 2
#define SHM_HEADER_SIZE 256
#define SHM_SLOT_SIZE 16
#define SHM_RECORD_HEADER 8		/* key_len, val_len */
#define SHM_META_SIZE 17		/* tick, tock, node_len */
#define SHM_NODE_MAX 64			/* node name bytes kept per record */
#define SHM_ALIGN 8
/* The smallest record: empty key and value, empty node name. */
#define SHM_RECORD_MIN 32
/* The largest record a slot can describe (len_state is 32 bits). */
#define SHM_RECORD_MAX 0xfffffff8u
/* Slot offsets are in units of 8 bytes in 32 bits: arenas up to 32 GiB. */
#define SHM_OFF_SHIFT 3
#define SHM_ARENA_MAX ((uint64_t)1 << 35)

#define SHM_STATE_MASK 3u

enum shm_slot_state {
	SHM_SLOT_EMPTY = 0,		/* never used: ends a probe */
	SHM_SLOT_LIVE = 1,
	SHM_SLOT_DELETED = 2,		/* tombstone: probes go on */
};

/*
 * Fields from `superseded` on change while readers run; readers load them
 * with __atomic builtins.  The ones before are written once, before the
 * file is renamed into place (the rename publishes them).
 */
struct shm_header {
	uint64_t magic;			/* SHM_MAGIC */
	uint32_t format;		/* SHM_FORMAT */
	uint32_t header_size;		/* SHM_HEADER_SIZE */
	uint64_t region_size;		/* bytes of the file */
	uint64_t table_off;		/* = SHM_HEADER_SIZE */
	uint64_t table_slots;		/* power of two */
	uint64_t arena_off;
	uint64_t arena_size;		/* <= SHM_ARENA_MAX */
	uint64_t generation;		/* +1 for every replacement */
	/* -- changing fields -- */
	uint32_t superseded;		/* 1: a newer region has this name */
	uint32_t change_seq;		/* futex word: +1 per published change */
	uint64_t changes;		/* published changes, never wraps */
	uint64_t heartbeat_ns;		/* CLOCK_MONOTONIC of the writer */
	uint32_t agent_pid;
	uint32_t closed;		/* 1: the agent stopped cleanly */
	uint64_t arena_used;		/* arena end ever used (holes reused) */
	uint64_t live_entries;
	uint64_t live_bytes;		/* bytes of live records */
	char node[SHM_NODE_MAX];	/* the agent's node name, NUL padded */
	uint8_t reserved[SHM_HEADER_SIZE - 184];
};

/*
 * A slot.  len_state: the record's length in bytes (a multiple of 8) with
 * the state in the low 2 bits.  tag_off: high 32 bits the top 32 bits of
 * the key's hash, low 32 bits the record's offset from arena_off / 8.
 */
struct shm_slot {
	uint32_t seq;			/* even: stable; odd: being written */
	uint32_t len_state;
	uint64_t tag_off;
};

/*
 * A record: this header, key bytes, value bytes, zero padding to
 * SHM_ALIGN, then the metadata (struct shm_record_meta: tick, tock,
 * node_len, node bytes), zero padding to SHM_ALIGN.
 */
struct shm_record {
	uint32_t key_len;
	uint32_t val_len;
};

/* At shm_meta_off(key_len, val_len) from the record start. */
struct shm_record_meta {
	uint64_t tick;
	uint64_t tock;
	uint8_t node_len;		/* <= SHM_NODE_MAX */
	uint8_t node[];
};

_Static_assert(sizeof(struct shm_header) == SHM_HEADER_SIZE, "header size");
_Static_assert(offsetof(struct shm_header, superseded) == 64, "header layout");
_Static_assert(offsetof(struct shm_header, change_seq) == 68, "futex word");
_Static_assert(offsetof(struct shm_header, changes) == 72, "header layout");
_Static_assert(offsetof(struct shm_header, heartbeat_ns) == 80, "header layout");
_Static_assert(offsetof(struct shm_header, agent_pid) == 88, "header layout");
_Static_assert(offsetof(struct shm_header, node) == 120, "header layout");
_Static_assert(sizeof(struct shm_slot) == SHM_SLOT_SIZE, "slot size");
_Static_assert(offsetof(struct shm_slot, len_state) == 4, "slot layout");
_Static_assert(offsetof(struct shm_slot, tag_off) == 8, "slot layout");
_Static_assert(sizeof(struct shm_record) == SHM_RECORD_HEADER, "record size");
_Static_assert(offsetof(struct shm_record_meta, tock) == 8, "meta layout");
_Static_assert(offsetof(struct shm_record_meta, node_len) == 16,
    "meta layout");
_Static_assert(offsetof(struct shm_record_meta, node) == SHM_META_SIZE,
    "meta layout");
_Static_assert(SHM_STATE_MASK < SHM_ALIGN, "state bits below the length");
_Static_assert((SHM_RECORD_MAX & (SHM_ALIGN - 1)) == 0, "record max");
_Static_assert(SHM_ARENA_MAX == ((uint64_t)UINT32_MAX + 1) << SHM_OFF_SHIFT,
    "arena max");

static inline uint64_t
shm_pad8(uint64_t n)
{
	return (n + SHM_ALIGN - 1) & ~(uint64_t)(SHM_ALIGN - 1);
}

/* Offset of the metadata from the record start. */
static inline uint64_t
shm_meta_off(uint64_t key_len, uint64_t val_len)
{
	return SHM_RECORD_HEADER + shm_pad8(key_len + val_len);
}

/* Bytes a record of these sizes occupies. */
static inline uint64_t
shm_record_size(size_t node_len, size_t key_len, size_t val_len)
{
	return shm_meta_off(key_len, val_len) +
	    shm_pad8(SHM_META_SIZE + (uint64_t)node_len);
}

/* Slot field encoding. */
static inline uint32_t
shm_slot_state(uint32_t len_state)
{
	return len_state & SHM_STATE_MASK;
}

static inline uint32_t
shm_slot_len(uint32_t len_state)
{
	return len_state & ~SHM_STATE_MASK;
}

static inline uint32_t
shm_slot_tag(uint64_t tag_off)
{
	return (uint32_t)(tag_off >> 32);
}

static inline uint64_t
shm_slot_off(uint64_t tag_off)
{
	return (tag_off & UINT32_MAX) << SHM_OFF_SHIFT;
}

static inline uint32_t
shm_hash_tag(uint64_t hash)
{
	return (uint32_t)(hash >> 32);
}

/* off: 8-aligned, < SHM_ARENA_MAX. */
static inline uint64_t
shm_tag_off(uint64_t hash, uint64_t off)
{
	return (hash & ~(uint64_t)UINT32_MAX) | (off >> SHM_OFF_SHIFT);
}

#endif
