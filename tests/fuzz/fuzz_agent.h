/*
 * fuzz_agent: invariants of an in-memory agent, shared by the harnesses
 * that drive one (requests, persist, serf_events, peer).  Header only.
 *
 * fuzz_check_tree(): the tree is walkable and consistent.
 * fuzz_check_clocks(): tock and every node's tick only grow between two
 * calls, and none passes FUZZ_TICK_CEILING (the agent refuses them since
 * the hardening issue; the inputs that found it are regressions now).
 */
#ifndef DISTKV_FUZZ_AGENT_H
#define DISTKV_FUZZ_AGENT_H

#include "agent.h"
#include "proto.h"
#include "tree.h"

#include "fuzz_common.h"

#define FUZZ_MAX_NODES 4096

struct fuzz_clocks {
	bool wedged;			/* a tick went past the ceiling */
	uint64_t tock;
	size_t nnodes;
	uint64_t ticks[FUZZ_MAX_NODES];
	bool has_tick[FUZZ_MAX_NODES];
};

static inline void
fuzz_clocks_init(struct fuzz_clocks *fc)
{
	fc->wedged = false;
	fc->tock = 0;
	fc->nnodes = 0;
}

/* True if any tick or the tock is beyond the ceiling. */
static inline bool
fuzz_beyond_ceiling(const struct agent *a)
{
	if (a->tock > FUZZ_TICK_CEILING)
		return true;
	for (size_t i = 0; i < a->nodes.n; i++)
		if (a->nodes.by_index[i]->has_tick &&
		    a->nodes.by_index[i]->tick > FUZZ_TICK_CEILING)
			return true;
	return false;
}

static inline void
fuzz_check_clocks(struct fuzz_clocks *fc, const struct agent *a,
    const uint8_t *input, size_t input_len)
{
	size_t n = a->nodes.n;

	(void)input;
	(void)input_len;
	if (fuzz_beyond_ceiling(a))
		FUZZ_FAIL("a tick or tock beyond the ceiling was accepted");
	/* the agent only raises its tock or stamps tock + 1 */
	if (a->tock < fc->tock)
		FUZZ_FAIL("tock went back from %llu to %llu",
		    (unsigned long long)fc->tock, (unsigned long long)a->tock);
	fc->tock = a->tock;
	if (n < fc->nnodes)
		FUZZ_FAIL("the node table shrank");
	for (size_t i = 0; i < n && i < FUZZ_MAX_NODES; i++) {
		const struct node *nd = a->nodes.by_index[i];

		if (i < fc->nnodes && fc->has_tick[i] &&
		    (!nd->has_tick || nd->tick < fc->ticks[i]))
			FUZZ_FAIL("tick of node %s went back from %llu to %llu",
			    nd->name, (unsigned long long)fc->ticks[i],
			    (unsigned long long)nd->tick);
		fc->has_tick[i] = nd->has_tick;
		fc->ticks[i] = nd->tick;
	}
	fc->nnodes = n < FUZZ_MAX_NODES ? n : FUZZ_MAX_NODES;
}

static inline void
fuzz_check_tree(struct agent *a)
{
	struct tree_walk w;
	struct entry *e;
	size_t count = 0;
	uint64_t tombstones = 0;

	tree_walk_init(&w, a->tree.root, -1);
	while ((e = tree_walk_next(&w)) != NULL) {
		count++;
		if (e != a->tree.root) {
			bool found = false;

			if (e->parent == NULL || e->depth != e->parent->depth + 1)
				FUZZ_FAIL("entry with a bad parent or depth");
			for (uint32_t i = 0; i < e->parent->nchild; i++)
				found |= entry_children(e->parent)[i] == e;
			if (!found)
				FUZZ_FAIL("entry missing from its parent");
		}
		if (e->chain->n > CHAIN_CAP)
			FUZZ_FAIL("chain of %u links", e->chain->n);
		for (unsigned i = 0; i < e->chain->n; i++) {
			if (e->chain->l[i].node == NULL)
				FUZZ_FAIL("chain link without a node");
			for (unsigned j = 0; j < i; j++)
				if (e->chain->l[j].node == e->chain->l[i].node)
					FUZZ_FAIL("node twice in one chain");
		}
		if (entry_has_value(e)) {
			size_t used;

			if (proto_scan(entry_value(e), entry_value_len(e),
			    PROTO_MAX_NESTING, &used) != 0 ||
			    used != entry_value_len(e))
				FUZZ_FAIL("stored value is not one object");
			if (e->chain->n == 0)
				FUZZ_FAIL("value without a chain");
		} else if (e->chain->n > 0)
			tombstones++;
	}
	if (count != a->tree.nentries)
		FUZZ_FAIL("walk found %zu entries, the tree has %zu", count,
		    a->tree.nentries);
	if (tombstones != a->tombstones)
		FUZZ_FAIL("%llu tombstones, the agent counts %llu",
		    (unsigned long long)tombstones,
		    (unsigned long long)a->tombstones);
}

/*
 * Seeds: the entry ['k1'] or ['k1', 'k2'] (short string names), created;
 * for the seed writers of the harnesses that drive an agent.
 */
static inline struct entry *
fuzz_seed_key(struct agent *a, const char *k1, const char *k2)
{
	uint8_t n[16];
	struct entry *e;

	n[0] = (uint8_t)(0xa0 | strlen(k1));
	memcpy(n + 1, k1, strlen(k1));
	e = tree_child(&a->tree, a->tree.root, n, strlen(k1) + 1, true);
	if (k2 != NULL) {
		n[0] = (uint8_t)(0xa0 | strlen(k2));
		memcpy(n + 1, k2, strlen(k2));
		e = tree_child(&a->tree, e, n, strlen(k2) + 1, true);
	}
	return e;
}

#endif
