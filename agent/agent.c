/* agent: see agent.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "log.h"
#include "persist.h"
#include "watch.h"

int
agent_init(struct agent *a, struct ev_loop *loop,
    const struct agent_config *cfg)
{
	memset(a, 0, sizeof(*a));
	a->loop = loop;
	a->cfg = *cfg;
	tree_init(&a->tree);
	nodes_init(&a->nodes);
	a->self = nodes_get(&a->nodes, cfg->node, strlen(cfg->node), true);
	if (a->self == NULL)
		return -ENOMEM;
	/* spec §1.5: root creation at start is stamped */
	a->tree.root.tock = agent_stamp(a);
	return 0;
}

void
agent_fini(struct agent *a)
{
	tree_fini(&a->tree);
	nodes_fini(&a->nodes);
}

/* Step 1 of spec §3.6: every link of an incoming chain is seen. */
static int
agent_see_chain(const struct chain *c)
{
	for (unsigned i = 0; i < c->n; i++) {
		node_raise_tick(c->l[i].node, c->l[i].tick);
		if (node_see(c->l[i].node, c->l[i].tick) != 0)
			return -ENOMEM;
	}
	return 0;
}

static enum apply_result
agent_decide(const struct entry *e, const struct update *u)
{
	if (e->chain.n > 0 && chain_same(&e->chain, &u->chain))
		return APPLY_DUPLICATE;
	if (e->chain.n > 0 && chain_covers(&e->chain, &u->chain))
		return APPLY_STALE;
	if (e->chain.n == 0 || chain_descends(&u->chain, &e->chain))
		return APPLY_ACCEPTED;
	/* concurrent: tock decides, equal tocks let the incoming one win */
	log_info("conflicting update %s:%llu vs stored %s:%llu (tock %llu vs %llu)",
	    u->chain.l[0].node->name, (unsigned long long)u->chain.l[0].tick,
	    e->chain.l[0].node->name, (unsigned long long)e->chain.l[0].tick,
	    (unsigned long long)u->tock, (unsigned long long)e->tock);
	return u->tock < e->tock ? APPLY_CONFLICT_LOST : APPLY_ACCEPTED;
}

int
agent_commit(struct agent *a, const struct update *u, enum origin o)
{
	(void)o;	/* the Serf broadcast will use it */
	struct entry *e = u->entry;
	enum apply_result r;
	uint8_t *nv = NULL;
	struct chain in = u->chain;

	if (in.n == 0)
		return -EINVAL;
	if (in.n > a->cfg.change_length)
		in.n = a->cfg.change_length;	/* spec §8.21: cap everywhere */
	if (u->tock > a->tock)
		a->tock = u->tock;
	if (agent_see_chain(&u->chain) != 0)
		return -ENOMEM;
	r = agent_decide(e, u);
	if (r != APPLY_ACCEPTED)
		return r;

	if (u->value != NULL) {
		if ((nv = malloc(u->value_len)) == NULL)
			return -ENOMEM;
		memcpy(nv, u->value, u->value_len);
	}
	/* supersede links of the old chain that the new one does not hold */
	for (unsigned i = 0; i < e->chain.n; i++) {
		const struct chain_link *l = &e->chain.l[i];

		if (chain_tick_of(&in, l->node) != l->tick)
			node_entry_del(l->node, l->tick, e);
	}
	for (unsigned i = 0; i < in.n; i++)
		if (node_entry_set(in.l[i].node, in.l[i].tick, e) != 0) {
			free(nv);
			return -ENOMEM;
		}
	free(e->value);
	e->value = nv;
	e->value_len = nv != NULL ? (uint32_t)u->value_len : 0;
	e->tock = u->tock;
	e->chain = in;
	a->changes++;

	/* fan-out, in DESIGN.md order */
	persist_record_change(a, e);
	/* 2: shm publish lands here (shm issue) */
	watch_notify(a, e);
	/* 4: Serf broadcast of local changes lands here (replication issue) */
	return APPLY_ACCEPTED;
}

int
agent_change_local(struct agent *a, struct entry *e, const uint8_t *value,
    size_t len)
{
	struct update u;
	unsigned n = 1;
	int rc;

	memset(&u, 0, sizeof(u));
	agent_stamp(a);
	node_raise_tick(a->self, a->self->has_tick ? a->self->tick + 1 : 1);
	u.chain.l[0].node = a->self;
	u.chain.l[0].tick = a->self->tick;
	/* our own old link is dropped (superseded by agent_commit) */
	for (unsigned i = 0; i < e->chain.n && n < a->cfg.change_length; i++)
		if (e->chain.l[i].node != a->self)
			u.chain.l[n++] = e->chain.l[i];
	u.chain.n = n;
	u.entry = e;
	u.value = value;
	u.value_len = len;
	u.tock = agent_stamp(a);
	rc = agent_commit(a, &u, ORIGIN_LOCAL);
	agent_stamp(a);
	return rc == APPLY_ACCEPTED ? 0 : (rc < 0 ? rc : -EIO);
}
