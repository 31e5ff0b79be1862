/* agent: see agent.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "log.h"
#include "persist.h"
#include "watch.h"
#include "writer.h"

int
agent_init(struct agent *a, struct ev_loop *loop,
    const struct agent_config *cfg)
{
	memset(a, 0, sizeof(*a));
	a->loop = loop;
	a->cfg = *cfg;
	if (tree_init(&a->tree) != 0)
		return -ENOMEM;
	nodes_init(&a->nodes);
	a->self = nodes_get(&a->nodes, cfg->node, strlen(cfg->node), true);
	if (a->self == NULL)
		return -ENOMEM;
	/* spec §1.5: root creation at start is stamped */
	a->tree.root->tock = agent_stamp(a);
	return 0;
}

void
agent_fini(struct agent *a)
{
	tree_fini(&a->tree);
	nodes_fini(&a->nodes);
}

/* Fan-out step 2: the change is visible in shm before any reply. */
static void
agent_shm_publish(struct agent *a, const struct entry *e)
{
	struct shm_meta m;
	int rc;

	/* the entry's key is the region key (docs/shm.md) */
	if (e->value == NULL)
		rc = shm_writer_del(a->shm, e->key, e->key_len);
	else {
		m.tick = e->chain.l[0].tick;
		m.tock = e->tock;
		m.node = e->chain.l[0].node->name;
		m.node_len = e->chain.l[0].node->name_len;
		rc = shm_writer_put(a->shm, e->key, e->key_len, e->value,
		    e->value_len, &m);
	}
	if (rc != 0)
		/* readers would serve an old value as current: never */
		fatal("cannot publish to the shared-memory region: %s",
		    strerror(-rc));
}

static void
agent_heartbeat_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct agent *a = (struct agent *)((char *)w -
	    offsetof(struct agent, heartbeat));

	(void)loop;
	(void)revents;
	shm_writer_heartbeat(a->shm);
}

int
agent_shm_open(struct agent *a)
{
	struct tree_walk w;
	struct entry *e;
	int rc;

	if ((rc = shm_writer_open(a->cfg.shm_path, a->cfg.shm_mode,
	    a->self->name, &a->shm)) != 0)
		return rc;
	tree_walk_init(&w, a->tree.root, -1);
	while ((e = tree_walk_next(&w)) != NULL)
		if (e->value != NULL)
			agent_shm_publish(a, e);
	ev_timer_init(&a->heartbeat, agent_heartbeat_cb, 0.25, 0.25);
	ev_timer_start(a->loop, &a->heartbeat);
	ev_unref(a->loop);	/* the heartbeat alone keeps no loop alive */
	return 0;
}

void
agent_shm_close(struct agent *a)
{
	if (a->shm == NULL)
		return;
	ev_ref(a->loop);
	ev_timer_stop(a->loop, &a->heartbeat);
	shm_writer_close(a->shm, false);
	a->shm = NULL;
}

void
agent_end_batch(struct agent *a)
{
	persist_sync(a);
	if (a->shm != NULL)
		shm_writer_notify(a->shm);
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
	if (a->shm != NULL)
		agent_shm_publish(a, e);
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
