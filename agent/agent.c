/* agent: see agent.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <systemd/sd-daemon.h>

#include "agent.h"
#include "proto.h"
#include "log.h"
#include "persist.h"
#include "server.h"
#include "sync.h"
#include "watch.h"
#include "writer.h"
#include "xlate.h"

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
	if (xlate_new(&a->xlate) != 0)
		return -ENOMEM;
	/* spec §1.5: root creation at start is stamped */
	a->tree.root->tock = agent_stamp(a);
	return 0;
}

void
agent_fini(struct agent *a)
{
	xlate_free(a->xlate);
	a->xlate = NULL;
	tree_fini(&a->tree);
	nodes_fini(&a->nodes);
	watch_table_fini(&a->watched);
	msgpack_sbuffer_destroy(&a->scratch);
}

/* Fan-out step 2: the change is visible in shm before any reply. */
static void
agent_shm_publish(struct agent *a, const struct entry *e)
{
	/* the payload is the entry's own allocation (tree.h); only the
	 * shared chain_none is const, and it has no hint to keep */
	uint64_t *hint = e->chain != &chain_none ?
	    &((struct chain *)(uintptr_t)e->chain)->shm_hint : NULL;
	struct shm_meta m;
	int rc;

	/* the entry's key is the region key (docs/shm.md) */
	if (!entry_has_value(e))
		rc = shm_writer_del_hinted(a->shm,
		    tree_entry_key(&a->tree, e), e->key_len, hint);
	else {
		m.tick = e->chain->l[0].tick;
		m.tock = e->tock;
		m.node = e->chain->l[0].node->name;
		m.node_len = e->chain->l[0].node->name_len;
		rc = shm_writer_put_hinted(a->shm,
		    tree_entry_key(&a->tree, e), e->key_len, entry_value(e),
		    entry_value_len(e), &m, hint);
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
		if (entry_has_value(e))
			agent_shm_publish(a, e);
	ev_timer_init(&a->heartbeat, agent_heartbeat_cb, 0.25, 0.25);
	ev_timer_start(a->loop, &a->heartbeat);
	ev_unref(a->loop);	/* the heartbeat alone keeps no loop alive */
	return 0;
}

int
agent_bulk_begin(struct agent *a, size_t n)
{
	struct shm_writer_stats st;

	if (tree_reserve(&a->tree, a->tree.nentries + n) != 0)
		return -ENOMEM;
	/* only an empty region: one with values must follow every change
	 * (a delete there is a delete readers must see) */
	if (a->shm != NULL) {
		shm_writer_stats(a->shm, &st);
		a->shm_deferred = st.live_entries == 0;
	}
	return 0;
}

#define AGENT_FILL_AHEAD 8

/* The next entry with a value on walk w: its region slot into the cache. */
static void
bulk_prefetch_next(struct agent *a, struct tree_walk *w)
{
	struct entry *e;

	while ((e = tree_walk_next(w)) != NULL)
		if (entry_has_value(e)) {
			shm_writer_prefetch(a->shm,
			    tree_entry_key(&a->tree, e), e->key_len);
			return;
		}
}

int
agent_bulk_end(struct agent *a)
{
	struct tree_walk w, ahead;
	struct entry *e;
	uint64_t n = 0, bytes = 0;
	int rc;

	tree_index_flush(&a->tree);
	if (!a->shm_deferred)
		return 0;
	a->shm_deferred = false;
	tree_walk_init(&w, a->tree.root, -1);
	while ((e = tree_walk_next(&w)) != NULL)
		if (entry_has_value(e)) {
			n++;
			bytes += shm_writer_record_bytes(e->key_len,
			    entry_value_len(e), e->chain->l[0].node->name_len);
		}
	if ((rc = shm_writer_reserve(a->shm, n, bytes)) != 0)
		return rc;
	/* a second walk AGENT_FILL_AHEAD values ahead fetches the slots
	 * the puts will probe (shm_writer_prefetch) */
	tree_walk_init(&w, a->tree.root, -1);
	tree_walk_init(&ahead, a->tree.root, -1);
	for (int i = 0; i < AGENT_FILL_AHEAD; i++)
		bulk_prefetch_next(a, &ahead);
	while ((e = tree_walk_next(&w)) != NULL)
		if (entry_has_value(e)) {
			bulk_prefetch_next(a, &ahead);
			agent_shm_publish(a, e);
		}
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

int
agent_end_batch(struct agent *a)
{
	int rc;

	tree_index_flush(&a->tree);
	/* durable first: nothing leaves before it is logged */
	if ((rc = persist_sync(a)) != 0)
		return rc;
	if (a->shm != NULL)
		shm_writer_notify(a->shm);
	sync_flush(a);
	return 0;
}

void
agent_became_ready(struct agent *a)
{
	int rc;

	a->ready = true;
	persist_record_ready(a);
	if (a->server_ready)
		return;
	if ((rc = server_open_clients(a->server)) != 0)
		fatal("cannot serve on %s: %s", a->cfg.socket_path,
		    strerror(-rc));
	a->server_ready = true;
	log_info("node %s ready on %s (tick %llu)", a->self->name,
	    a->cfg.socket_path, (unsigned long long)a->self->tick);
	/* Type=notify: started means serving, not merely running (a node
	 * without data joins and downloads first); a no-op outside systemd */
	sd_notifyf(0, "READY=1\nSTATUS=serving on %s", a->cfg.socket_path);
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

/*
 * Purge a tombstone: its chain goes, the entry stays as a chain-less
 * intermediate entry (entries are never freed while the agent runs;
 * snapshots leave it out, so a restart reclaims it).
 */
static int
agent_forget_tombstone(struct agent *a, struct entry *e,
    const struct update *u)
{
	if (u->chain.n != 0 || entry_has_value(e) || e->chain->n == 0)
		return -EINVAL;
	for (unsigned i = 0; i < e->chain->n; i++)
		node_entry_del(e->chain->l[i].node, e->chain->l[i].tick, e);
	tree_entry_set_payload(e, NULL, false, 0);
	a->tombstones--;
	return APPLY_ACCEPTED;
}

static enum apply_result
agent_decide(const struct agent *a, const struct entry *e,
    const struct update *u, enum origin o)
{
	/*
	 * No chain here, but every node has seen the incoming head: this is
	 * a late copy of a change whose tombstone was purged (or which was
	 * superseded), never news.  Not while downloading (not ready): a
	 * download brings the known ranges before the entries.  Nor for a
	 * tick its node announced as skipped after losing its data: "known"
	 * there means "nothing to wait for", not "every node has it".
	 */
	if (e->chain->n == 0 && o != ORIGIN_LOCAL && agent_ready(a) &&
	    u->chain.l[0].tick <= u->chain.l[0].node->floor &&
	    !ranges_contains(&u->chain.l[0].node->skipped,
	    u->chain.l[0].tick))
		return APPLY_STALE;
	if (e->chain->n > 0 && chain_same(e->chain, &u->chain))
		return APPLY_DUPLICATE;
	if (e->chain->n > 0 && chain_covers(e->chain, &u->chain))
		return APPLY_STALE;
	if (e->chain->n == 0 || chain_descends(&u->chain, e->chain))
		return APPLY_ACCEPTED;
	/* concurrent: tock decides, equal tocks let the incoming one win */
	log_info("conflicting update %s:%llu vs stored %s:%llu (tock %llu vs %llu)",
	    u->chain.l[0].node->name, (unsigned long long)u->chain.l[0].tick,
	    e->chain->l[0].node->name, (unsigned long long)e->chain->l[0].tick,
	    (unsigned long long)u->tock, (unsigned long long)e->tock);
	if (u->tock != e->tock)
		return u->tock < e->tock ? APPLY_CONFLICT_LOST : APPLY_ACCEPTED;
	/*
	 * Equal tocks: the reference lets the incoming update win, which
	 * makes two nodes swap values.  Every node must pick the same winner,
	 * so compare the heads: the higher node name, then the higher tick.
	 * Names are compared as byte strings with their lengths (a name may
	 * hold a NUL byte: strcmp would call "n\0a" and "n\0b" equal and let
	 * the incoming one lose on both nodes).  Equal names are one node,
	 * which descent or staleness decided above (a chain holds each node
	 * once), so the tick tier is a guard, not a rule that is ever reached.
	 */
	{
		const struct node *un = u->chain.l[0].node;
		const struct node *en = e->chain->l[0].node;
		size_t n = un->name_len < en->name_len ? un->name_len :
		    en->name_len;
		int c = memcmp(un->name, en->name, n);

		if (c == 0 && un->name_len != en->name_len)
			c = un->name_len > en->name_len ? 1 : -1;
		if (c == 0)
			c = u->chain.l[0].tick > e->chain->l[0].tick ? 1 : -1;
		return c > 0 ? APPLY_ACCEPTED : APPLY_CONFLICT_LOST;
	}
}

int
agent_commit(struct agent *a, const struct update *u, enum origin o)
{
	struct entry *e = u->entry;
	enum apply_result r;
	struct chain in = u->chain, *p;

	if (o == ORIGIN_PURGE)
		return agent_forget_tombstone(a, e, u);
	if (in.n == 0 || u->tock > PROTO_MAX_TOCK)
		return -EINVAL;
	if (in.n > a->cfg.change_length)
		in.n = a->cfg.change_length;	/* spec §8.21: cap everywhere */
	if (u->tock > a->tock)
		a->tock = u->tock;
	if (agent_see_chain(&u->chain) != 0)
		return -ENOMEM;
	r = agent_decide(a, e, u, o);
	if (r != APPLY_ACCEPTED)
		return r;
	/* the new chain and value in one block, sized to them (tree.h) */
	if ((p = tree_payload_new(&in, u->value, u->value_len)) == NULL)
		return -ENOMEM;
	/* the key keeps its region slot (a delete resets the hint) */
	p->shm_hint = e->chain->shm_hint;
	if (!entry_has_value(e) && e->chain->n > 0)
		a->tombstones--;
	if (u->value == NULL)
		a->tombstones++;
	/* supersede links of the old chain that the new one does not hold */
	for (unsigned i = 0; i < e->chain->n; i++) {
		const struct chain_link *l = &e->chain->l[i];

		if (chain_tick_of(&in, l->node) != l->tick)
			node_entry_del(l->node, l->tick, e);
	}
	for (unsigned i = 0; i < in.n; i++)
		if (node_entry_set(in.l[i].node, in.l[i].tick, e) != 0) {
			free(p);
			return -ENOMEM;
		}
	tree_entry_set_payload(e, p, u->value != NULL, u->value_len);
	e->tock = u->tock;
	a->changes++;
	/* the translator's compiled code follows its records at once, on
	 * every node and for every origin (xlate.h) */
	xlate_applied(a, e);

	/* fan-out, in DESIGN.md order */
	persist_record_change(a, e);
	if (a->shm != NULL && !a->shm_deferred)
		agent_shm_publish(a, e);
	watch_notify(a, e);
	if (o == ORIGIN_LOCAL)
		sync_local_change(a, e);
	return APPLY_ACCEPTED;
}

int
agent_change_local(struct agent *a, struct entry *e, const uint8_t *value,
    size_t len)
{
	struct update u;
	unsigned n = 1;
	int rc;

	/*
	 * At the ceiling, refuse: a tick used twice or a tock that wraps
	 * would break the chain and conflict rules on every node.
	 */
	if ((a->self->has_tick && a->self->tick >= PROTO_MAX_TICK) ||
	    a->tock > PROTO_MAX_TOCK - 3)
		return -ERANGE;
	memset(&u, 0, sizeof(u));
	agent_stamp(a);
	node_raise_tick(a->self, a->self->has_tick ? a->self->tick + 1 : 1);
	u.chain.l[0].node = a->self;
	u.chain.l[0].tick = a->self->tick;
	/* our own old link is dropped (superseded by agent_commit) */
	for (unsigned i = 0; i < e->chain->n && n < a->cfg.change_length; i++)
		if (e->chain->l[i].node != a->self)
			u.chain.l[n++] = e->chain->l[i];
	u.chain.n = n;
	u.entry = e;
	u.value = value;
	u.value_len = len;
	u.tock = agent_stamp(a);
	rc = agent_commit(a, &u, ORIGIN_LOCAL);
	agent_stamp(a);
	return rc == APPLY_ACCEPTED ? 0 : (rc < 0 ? rc : -EIO);
}

/* ---- applying records (spec §2.8 loading rules) ---- */

static int
merge_state(struct agent *a, const msgpack_object *rec, const char **why)
{
	static const char *keys[3] = { "nodes", "known", "remote_missing" };

	for (int k = 0; k < 3; k++) {
		const msgpack_object *m = proto_map_get(rec, keys[k]);

		if (m == NULL)
			continue;
		if (m->type != MSGPACK_OBJECT_MAP) {
			*why = "state fields must be maps";
			return -EINVAL;
		}
		for (uint32_t i = 0; i < m->via.map.size; i++) {
			const msgpack_object *name = &m->via.map.ptr[i].key;
			const msgpack_object *v = &m->via.map.ptr[i].val;
			struct ranges rs;
			struct node *n;
			uint64_t t;
			int rc = 0;

			if (!chain_node_name_ok(name)) {
				*why = "bad node name";
				return -EINVAL;
			}
			ranges_init(&rs);
			if (k == 0 && v->type != MSGPACK_OBJECT_NIL &&
			    proto_get_tick(v, &t) != 0)
				rc = -EINVAL;
			if (k > 0)
				rc = ranges_unpack(v, &rs);
			if (rc != 0) {
				ranges_fini(&rs);
				*why = "bad tick or range list";
				return -EINVAL;
			}
			n = nodes_get(&a->nodes, name->via.str.ptr,
			    name->via.str.size, true);
			if (n == NULL) {
				ranges_fini(&rs);
				*why = "out of memory";
				return -ENOMEM;
			}
			if (k == 0 && v->type != MSGPACK_OBJECT_NIL)
				node_raise_tick(n, t);
			else if (k == 1) {
				/* spec §3.4 known: nothing left to send */
				rc = ranges_add_all(&n->known, &rs);
				if (rc == 0)
					rc = ranges_remove_all(
					    &n->remote_missing, &rs);
			}
			else if (k == 2)
				rc = ranges_add_all(&n->remote_missing, &rs);
			ranges_fini(&rs);
			if (rc != 0) {
				*why = "out of memory";
				return rc;
			}
		}
	}
	return 0;
}

/*
 * An entry that was never updated carries the tock its parent had when
 * it was made (spec §1.2).  A load makes it when its record comes, after
 * its parent's record has set the parent's last tock, so without this the
 * entry would take that later tock: a snapshot saved after a load would
 * differ from the one loaded.  Not a change of the tree (no value, no
 * chain, nothing to tell anyone); the tock only counts as seen.
 */
static void
restore_creation_tock(struct agent *a, struct entry *e, uint64_t tock)
{
	if (entry_has_value(e) || e->chain->n > 0)
		return;		/* updated: its tock is its update's */
	e->tock = tock;
	if (tock > a->tock)
		a->tock = tock;
}

int
agent_apply_record(struct agent *a, struct record_ctx *ctx,
    const msgpack_object *rec, enum origin o, bool *applied, const char **why)
{
	const msgpack_object *path, *depth, *value, *ch, *tock = NULL;
	struct entry *start, *e;
	msgpack_packer pk;
	struct update u;
	uint64_t d = 0;
	int rc;

	*applied = false;
	*why = NULL;
	if (rec->type != MSGPACK_OBJECT_MAP) {
		*why = "record is not a map";
		return -EINVAL;
	}
	value = proto_map_get(rec, "value");
	if (value == NULL) {
		if (proto_map_get(rec, "nodes") != NULL ||
		    proto_map_get(rec, "known") != NULL ||
		    proto_map_get(rec, "remote_missing") != NULL)
			return merge_state(a, rec, why);
		log_warn("ignoring a record without value or state");
		return 0;
	}
	path = proto_map_get(rec, "path");
	depth = proto_map_get(rec, "depth");
	if (path == NULL) {
		*why = "record without path";
		return -EINVAL;
	}
	start = ctx->base;
	if (depth != NULL) {
		/* spec §2.6: P = L[:depth] + path */
		if (proto_get_uint(depth, &d) != 0 ||
		    d > (uint32_t)(ctx->last->depth - ctx->base->depth)) {
			*why = "bad depth";
			return -EINVAL;
		}
		for (start = ctx->last;
		    (uint32_t)(start->depth - ctx->base->depth) > d;
		    start = start->parent)
			;
	}
	memset(&u, 0, sizeof(u));
	ch = proto_map_get(rec, "chain");
	if (ch == NULL && proto_map_get(rec, "node") != NULL)
		ch = rec;	/* flat chain fields */
	/* every check before the path is created: a bad record changes nothing */
	if (ch != NULL && ch->type != MSGPACK_OBJECT_NIL) {
		if (chain_unpack(&a->nodes, ch, a->cfg.change_length,
		    &u.chain) != 0) {
			*why = "bad chain (node names, ticks 1 to 2^53-1)";
			return -EINVAL;
		}
	}
	tock = proto_map_get(rec, "tock");
	if (tock != NULL && proto_get_tock(tock, &u.tock) != 0) {
		*why = "bad tock (an integer, at most 2^53-1)";
		return -EINVAL;
	}
	rc = tree_follow(&a->tree, start, path, true,
	    start == a->tree.root, NULL, &e);
	if (rc != 0) {
		*why = rc == -E2BIG ? "path too deep" :
		    rc == -ENAMETOOLONG ? "path too long" : "bad path";
		return rc == -ENOMEM ? rc : -EINVAL;
	}
	ctx->last = e;
	if (ch == NULL || ch->type == MSGPACK_OBJECT_NIL) {
		/* a value-less snapshot entry changes nothing: it only says
		 * which tock the entry took from its parent when it was made */
		if (tock != NULL)
			restore_creation_tock(a, e, u.tock);
		return 0;
	}
	if (tock == NULL)
		u.tock = agent_stamp(a);
	/* one buffer for every record: no allocation per value */
	a->scratch.size = 0;
	msgpack_packer_init(&pk, &a->scratch, msgpack_sbuffer_write);
	if (value->type != MSGPACK_OBJECT_NIL) {
		if (proto_pack_canonical(&pk, value) != 0) {
			*why = "out of memory";
			return -ENOMEM;
		}
		u.value = (const uint8_t *)a->scratch.data;
		u.value_len = a->scratch.size;
	}
	u.entry = e;
	rc = agent_commit(a, &u, o);
	/* a huge value's buffer is not kept */
	if (a->scratch.alloc > 65536) {
		msgpack_sbuffer_destroy(&a->scratch);
		msgpack_sbuffer_init(&a->scratch);
	}
	if (rc < 0) {
		*why = "out of memory";
		return rc;
	}
	*applied = rc == APPLY_ACCEPTED;
	return 0;
}

void
agent_pack_change(struct agent *a, msgpack_packer *pk, const struct entry *e)
{
	msgpack_pack_map(pk, 6);
	chain_pack_flat(pk, e->chain, a->cfg.change_length);
	msgpack_pack_str_with_body(pk, "path", 4);
	/* the entry's key is the canonical array of its full path */
	pk->callback(pk->data, (const char *)tree_entry_key(&a->tree, e),
	    e->key_len);
	msgpack_pack_str_with_body(pk, "value", 5);
	if (!entry_has_value(e))
		msgpack_pack_nil(pk);
	else
		pk->callback(pk->data, (const char *)entry_value(e),
		    entry_value_len(e));
	msgpack_pack_str_with_body(pk, "tock", 4);
	msgpack_pack_uint64(pk, e->tock);
}

void
agent_pack_nodes(const struct agent *a, msgpack_packer *pk)
{
	msgpack_pack_map(pk, a->nodes.n);
	for (size_t i = 0; i < a->nodes.n; i++) {
		const struct node *nd = a->nodes.by_index[i];

		msgpack_pack_str_with_body(pk, nd->name, nd->name_len);
		if (nd->has_tick)
			msgpack_pack_uint64(pk, nd->tick);
		else
			msgpack_pack_nil(pk);
	}
}

void
agent_pack_ranges(const struct agent *a, msgpack_packer *pk,
    enum agent_ranges k)
{
	struct ranges miss;
	uint32_t n = 0;

	ranges_init(&miss);
	/* two passes: count the non-empty sets, then pack them */
	for (int pass = 0; pass < 2; pass++) {
		if (pass == 1)
			msgpack_pack_map(pk, n);
		for (size_t i = 0; i < a->nodes.n; i++) {
			struct node *nd = a->nodes.by_index[i];
			const struct ranges *rs;

			if (k == AGENT_KNOWN)
				rs = &nd->known;
			else if (k == AGENT_REMOTE_MISSING)
				rs = &nd->remote_missing;
			else {
				if (!nd->has_tick || nd->tick < 1)
					continue;
				ranges_missing(&nd->known, nd->tick, &miss);
				rs = &miss;
			}
			if (ranges_empty(rs))
				continue;
			if (pass == 0) {
				n++;
				continue;
			}
			msgpack_pack_str_with_body(pk, nd->name, nd->name_len);
			ranges_pack(pk, rs);
		}
	}
	ranges_fini(&miss);
}
