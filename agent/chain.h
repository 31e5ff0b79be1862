/*
 * chain: change chains (spec §1.4), the bounded vector clocks that order
 * updates.  A chain is a list of (node, tick) links, newest first, each
 * node at most once.  Links point into the node table (nodes.h).
 */
#ifndef DISTKV_CHAIN_H
#define DISTKV_CHAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "nodes.h"

/* Most links any chain holds in memory (change.length is at most this). */
#define CHAIN_CAP 16
/* Default change.length: links stored and broadcast. */
#define CHAIN_DEFAULT_LENGTH 5

struct chain_link {
	struct node *node;
	uint64_t tick;
};

/*
 * A chain as a value (an update, a temporary) holds CHAIN_CAP links.  An
 * entry keeps its chain out of line, allocated to its length (tree.h,
 * tree_payload_new): only the first n links are there, so an entry's chain
 * is only ever read through a pointer, never copied by value.
 */
struct chain {
	unsigned n;		/* 0: no chain (never updated) */
	/* an entry's payload: its value's bytes after the n links (0: nil;
	 * a value is canonical msgpack, never empty), kept here rather than
	 * in the entry, where it cost 4 bytes of every one of millions */
	uint32_t value_len;
	/* an entry's payload: its region slot hint (shm_writer_put_hinted;
	 * 0 none), which outlives the payload (agent_commit carries it) */
	uint64_t shm_hint;
	struct chain_link l[CHAIN_CAP];
};

/* The empty chain: an entry never updated, or a purged tombstone. */
extern const struct chain chain_none;

/* Bytes of a chain of n links allocated to size. */
#define CHAIN_SIZE(n) (offsetof(struct chain, l) + \
	(size_t)(n) * sizeof(struct chain_link))

/* Relations of spec §1.4 (heads compared). */
bool chain_same(const struct chain *c, const struct chain *e);
/* C covers E: C has H(E).node with tick >= H(E).tick. */
bool chain_covers(const struct chain *c, const struct chain *e);
/* E descends from C: E has H(C).node with tick >= H(C).tick; an empty C
 * is descended from by everything. */
bool chain_descends(const struct chain *e, const struct chain *c);
/* Tick of node in c, 0 if absent. */
uint64_t chain_tick_of(const struct chain *c, const struct node *n);

/*
 * Pack c as nested maps {node, tick, prev} with at most limit links; the
 * last packed link gets "prev: nil" only if it really is the last one.
 * limit 0 packs nil.  (Callers leave the field out for nchain 0.)
 */
void chain_pack(msgpack_packer *pk, const struct chain *c, unsigned limit);
/* Pack the chain's fields flat into an open map: node, tick, prev (3
 * key/value pairs; prev nested as in chain_pack). */
void chain_pack_flat(msgpack_packer *pk, const struct chain *c,
    unsigned limit);

/*
 * Decode a chain from its wire form (a map {node, tick, prev}) into out,
 * creating node records and raising their ticks (spec §1.3: deserializing
 * a (name, tick) pair raises that node's tick).  Links beyond max_len are
 * dropped.  Returns 0, or -EINVAL for anything malformed (not a map, bad
 * node name, tick missing or 0, a node twice), leaving the table unchanged.
 */
int chain_unpack(struct nodes *ns, const msgpack_object *o, unsigned max_len,
    struct chain *out);
/* The flat form (node, tick, prev as fields of a larger map) decodes with
 * chain_unpack too: the map's other keys are ignored. */

/* Check a node name from the wire: str, 1..128 bytes, UTF-8. */
bool chain_node_name_ok(const msgpack_object *o);

#endif
