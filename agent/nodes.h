/*
 * nodes: the node table (spec §1.3).  One record per node name ever heard
 * of, including this agent's own: its tick (or none yet), the ticks seen
 * (known), the ticks other servers reported missing, and which entry holds
 * each of its ticks that is still on some stored chain.
 *
 * Records are never freed while the agent runs, so a struct node pointer
 * is a stable identity (chains hold them).
 */
#ifndef DISTKV_NODES_H
#define DISTKV_NODES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ranges.h"

struct entry;

/* tick -> entry, open addressing with backward-shift deletion */
struct tickmap {
	struct tickmap_slot {
		uint64_t tick;		/* 0 = empty (ticks start at 1) */
		struct entry *entry;
	} *slot;
	size_t n, cap;
};

struct node {
	char *name;		/* NUL-terminated, valid UTF-8 */
	size_t name_len;
	bool has_tick;		/* false: tick is nil (no data yet) */
	uint64_t tick;
	struct ranges known;
	struct ranges remote_missing;
	/* missing ticks already asked for during this split recovery
	 * (spec §3.4, §3.10): not asked for twice */
	struct ranges seen_missing;
	/*
	 * Ticks of updates this agent sent or received lately
	 * (sync_heard_tick): [0] since the last turn, [1] in the turn
	 * before.  A report that one of them is missing was most likely
	 * sent before its sender heard the update, which is on its way; it
	 * is not answered.
	 */
	struct ranges heard[2];
	/*
	 * Ticks the node itself announced as skipped after it lost its data
	 * (sync.c, download_done; on that node itself too): known, yet other
	 * nodes may still hold entries with them, which they send again a
	 * few times (resent_to: the end of the skipped ticks looked at,
	 * resends: how often, next_resend: not before), and which the purge
	 * floor must not make stale.
	 */
	struct ranges skipped;
	uint64_t resent_to;
	unsigned resends;
	double next_resend;
	struct tickmap entries;
	/*
	 * Tombstone purge (docs/cluster.md, "Tombstones"): this node's last
	 * reported `done` vector (done[i]: every tick 1..done[i] of the node
	 * with index i seen), and the purge floor: every tick <= floor of
	 * this node is known to have reached every node.
	 */
	uint64_t *report;
	size_t nreport;
	bool has_report;
	uint64_t floor;
	double last_seen;	/* ev_now of its last Serf message, 0: never */
	struct node *hnext;	/* hash chain */
	size_t index;		/* creation order */
};

struct nodes {
	struct node **by_index;	/* creation order */
	size_t n, cap;
	struct node **hash;
	size_t hcap;
};

void nodes_init(struct nodes *ns);
void nodes_fini(struct nodes *ns);
/* Find a node by name; with create, make it (name must be valid UTF-8,
 * 1..PROTO_MAX_NODE_NAME bytes: checked by callers).  NULL if absent or
 * out of memory. */
struct node *nodes_get(struct nodes *ns, const char *name, size_t len,
    bool create);
/* tick := max(tick, t), nil below every number. */
void node_raise_tick(struct node *n, uint64_t t);
/* "See" tick t (spec §1.3): known += t, remote_missing -= t. */
int node_see(struct node *n, uint64_t t);
/* {name: tick} of every node with a tick (an info's `ticks`, spec §3.4). */
void nodes_pack_ticks(const struct nodes *ns, msgpack_packer *pk);

struct entry *node_entry_get(const struct node *n, uint64_t tick);
int node_entry_set(struct node *n, uint64_t tick, struct entry *e);
/* Remove the mapping tick -> e (only if it maps to e). */
void node_entry_del(struct node *n, uint64_t tick, const struct entry *e);

#endif
