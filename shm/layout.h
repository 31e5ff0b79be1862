/*
 * layout: the shared-memory region of one agent (docs/shm.md).
 *
 * One writer (the agent), any number of readers mapping the file
 * PROT_READ.  Offsets only, fixed-width little-endian fields (the region
 * never leaves the host), every size and offset _Static_asserted.
 *
 *   [header: 256 bytes][slot table: slots * 32 bytes][arena]
 *
 * The slot table is open addressing with linear probing on XXH3-64 of the
 * key (the canonical msgpack encoding of the path).  Each slot is guarded
 * by its own sequence word: odd while the writer changes it.  A slot goes
 * EMPTY -> LIVE -> DELETED -> LIVE ... and never back to EMPTY inside one
 * region, so a probe sequence never loses a key it passed.
 *
 * Records live in the arena, 8-byte aligned, and are never modified in
 * place: a new value is a new record, then the slot is switched to it under
 * its sequence word.  The arena is a bump allocator; when it is full the
 * writer builds a compacted region in a new file, renames it over the old
 * name, and sets the old header's `superseded`: readers re-open the name.
 */
#ifndef DISTKV_SHM_LAYOUT_H
#define DISTKV_SHM_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#define SHM_MAGIC 0x31304d48535644ULL	/* "DVSHM01" + NUL, little endian */
#define SHM_FORMAT 1
#define SHM_HEADER_SIZE 256
#define SHM_SLOT_SIZE 32
#define SHM_RECORD_HEADER 32
#define SHM_NODE_MAX 64			/* node name bytes kept per record */
#define SHM_ALIGN 8

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
	uint64_t arena_size;
	uint64_t generation;		/* +1 for every replacement */
	/* -- changing fields -- */
	uint32_t superseded;		/* 1: a newer region has this name */
	uint32_t change_seq;		/* futex word: +1 per published change */
	uint64_t changes;		/* published changes, never wraps */
	uint64_t heartbeat_ns;		/* CLOCK_MONOTONIC of the writer */
	uint32_t agent_pid;
	uint32_t closed;		/* 1: the agent stopped cleanly */
	uint64_t arena_used;		/* bytes allocated in the arena */
	uint64_t live_entries;
	uint64_t live_bytes;		/* bytes of live records */
	char node[SHM_NODE_MAX];	/* the agent's node name, NUL padded */
	uint8_t reserved[SHM_HEADER_SIZE - 184];
};

struct shm_slot {
	uint32_t seq;			/* even: stable; odd: being written */
	uint32_t state;			/* enum shm_slot_state */
	uint64_t hash;			/* XXH3-64 of the key */
	uint64_t rec_off;		/* from arena_off */
	uint32_t rec_len;		/* whole record, padded */
	uint32_t pad;
};

/* A record: header, node name, key, value, padding to SHM_ALIGN. */
struct shm_record {
	uint32_t key_len;
	uint32_t val_len;
	uint64_t tick;
	uint64_t tock;
	uint8_t node_len;		/* <= SHM_NODE_MAX */
	uint8_t pad[7];
};

_Static_assert(sizeof(struct shm_header) == SHM_HEADER_SIZE, "header size");
_Static_assert(offsetof(struct shm_header, superseded) == 64, "header layout");
_Static_assert(offsetof(struct shm_header, change_seq) == 68, "futex word");
_Static_assert(offsetof(struct shm_header, changes) == 72, "header layout");
_Static_assert(offsetof(struct shm_header, heartbeat_ns) == 80, "header layout");
_Static_assert(offsetof(struct shm_header, agent_pid) == 88, "header layout");
_Static_assert(offsetof(struct shm_header, node) == 120, "header layout");
_Static_assert(sizeof(struct shm_slot) == SHM_SLOT_SIZE, "slot size");
_Static_assert(offsetof(struct shm_slot, hash) == 8, "slot layout");
_Static_assert(offsetof(struct shm_slot, rec_off) == 16, "slot layout");
_Static_assert(offsetof(struct shm_slot, rec_len) == 24, "slot layout");
_Static_assert(sizeof(struct shm_record) == SHM_RECORD_HEADER, "record size");

/* Bytes a record of these sizes occupies. */
static inline uint64_t
shm_record_size(size_t node_len, size_t key_len, size_t val_len)
{
	uint64_t n = SHM_RECORD_HEADER + (uint64_t)node_len + key_len +
	    val_len;

	return (n + SHM_ALIGN - 1) & ~(uint64_t)(SHM_ALIGN - 1);
}

#endif
