/*
 * sync_recovery: split recovery (spec §3.10) and answering missing
 * reports (§3.11); see sync_impl.h.
 */
#include "sync_impl.h"

/* ---- split recovery (spec §3.10) and answering (§3.11) ---- */

/* Index (0-based) of this node in chain c, -1 if absent. */
int
sync_chain_position(const struct sync *s, const struct pingchain *c)
{
	for (unsigned i = 0; i < c->n; i++)
		if (c->l[i].node == s->a->self)
			return (int)i;
	return -1;
}

/* clock * (k - 2^-pos): the position-based waits of spec §3.10 */
static double
pos_wait(const struct sync *s, double k, unsigned pos)
{
	double half_pow = 1.0 / (double)(1ULL << (pos > 60 ? 60 : pos));

	return s->a->cfg.clock * (k - half_pow);
}

static void
arm(struct sync *s, ev_timer *t, double after)
{
	ev_timer_stop(s->a->loop, t);
	ev_timer_set(t, after > 0 ? after : 0., 0.);
	ev_timer_start(s->a->loop, t);
}

/* A turn of the heard ticks: what is older than two turns is forgotten. */
static void
heard_turn(struct sync *s)
{
	ev_tstamp now = ev_now(s->a->loop);
	bool both = now - s->heard_turned >= 2 * SYNC_HEARD_S;

	if (now - s->heard_turned < SYNC_HEARD_S)
		return;
	for (size_t i = 0; i < s->a->nodes.n; i++) {
		struct node *nd = s->a->nodes.by_index[i];
		struct ranges older = nd->heard[1];

		nd->heard[1] = nd->heard[0];
		nd->heard[0] = older;
		ranges_clear(&nd->heard[0]);
		if (both)
			ranges_clear(&nd->heard[1]);
	}
	s->heard_turned = now;
}

void
sync_heard_tick(struct sync *s, struct node *nd, uint64_t t)
{
	heard_turn(s);
	(void)ranges_add(&nd->heard[0], t, t + 1);
}

void
sync_heard_remove(struct sync *s, const struct node *nd, struct ranges *rs)
{
	heard_turn(s);
	if (ranges_remove_all(rs, &nd->heard[0]) != 0 ||
	    ranges_remove_all(rs, &nd->heard[1]) != 0)
		ranges_clear(rs);
}

void
sync_heard_chain(struct sync *s, const struct chain *c)
{
	for (unsigned i = 0; i < c->n; i++)
		sync_heard_tick(s, c->l[i].node, c->l[i].tick);
}

void
sync_heard_record(struct sync *s, const msgpack_object *rec)
{
	const msgpack_object *ch = proto_map_get(rec, "chain");
	struct chain c;

	/* a retransmission nests its chain, a local change's is flat */
	if (ch == NULL)
		ch = rec;
	if (ch->type == MSGPACK_OBJECT_MAP &&
	    chain_unpack(&s->a->nodes, ch, CHAIN_CAP, &c) == 0)
		sync_heard_chain(s, &c);
}

/* Did someone report a tick missing that this node knows? */
static bool
anything_to_answer(const struct sync *s)
{
	for (size_t i = 0; i < s->a->nodes.n; i++) {
		const struct node *nd = s->a->nodes.by_index[i];

		if (ranges_overlap(&nd->remote_missing, &nd->known))
			return true;
	}
	return false;
}

void
sync_start_answering(struct sync *s)
{
	const struct pingchain *c = s->rec.running ? &s->rec.sane :
	    &s->last_ping;
	int pos = sync_chain_position(s, c);
	double after, heard;

	if (s->answering) {
		s->answer_again = true;	/* one more round after this one */
		return;
	}
	/*
	 * Recovery step 4 starts a round even when nothing this node knows
	 * was reported missing: then there is nothing to send (a later
	 * report starts a round), and get_state's "answering" stays false.
	 */
	if (!anything_to_answer(s))
		return;
	s->answering = true;
	/* on the chain: by position (the first answers at once, the others
	 * hear its retransmissions first); off it: after them */
	if (pos >= 0) {
		after = pos_wait(s, 1.0, (unsigned)pos) / 2;
		heard = pos * SYNC_HEAR_S;
	} else {
		after = s->a->cfg.clock * (0.5 + rand01() / 5.0);
		heard = (c->n + rand01()) * SYNC_HEAR_S;
	}
	arm(s, &s->answer_timer, after > heard ? after : heard);
}

/* One retransmission record (spec §3.3 shape) into out (emptied first);
 * false if it is too big to gossip (catch-up will carry it). */
static bool
pack_retransmission(struct agent *a, msgpack_sbuffer *out,
    const struct entry *e, unsigned chain_len)
{
	msgpack_packer pk;

	out->size = 0;
	msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 4);
	pack_str(&pk, "chain");
	/*
	 * The whole stored chain, not the reference's 2 links: a receiver
	 * that already holds the head keeps its chain, one that takes this
	 * one must end with the same chain as everybody else.
	 */
	chain_pack(&pk, e->chain, chain_len);
	pack_str(&pk, "path");
	msgpack_sbuffer_write(out, (const char *)tree_entry_key(&a->tree, e),
	    e->key_len);
	pack_str(&pk, "value");
	if (!entry_has_value(e))
		msgpack_pack_nil(&pk);
	else
		msgpack_sbuffer_write(out, (const char *)entry_value(e),
		    entry_value_len(e));
	pack_str(&pk, "tock");
	msgpack_pack_uint64(&pk, e->tock);
	return out->size <= SYNC_EVENT_BUDGET;
}

/* One answering round (spec §3.11) in progress. */
struct answer {
	struct sync *s;
	msgpack_sbuffer batch;		/* records of the next update event */
	uint32_t inbatch;
	msgpack_sbuffer one;		/* the record being added */
	const struct entry *sent[SYNC_RETRANSMIT_MAX];
	uint32_t nsent;
	uint32_t batch_from;		/* sent[] of the next event */
	bool tokens;			/* false: rate limit reached */
	struct ranges *sup;		/* superseded ticks, per node index */
	uint32_t nsup;			/* nodes with a non-empty set */
};

/* Send the collected records as one update event. */
static void
answer_flush(struct answer *x)
{
	struct sync *s = x->s;
	msgpack_sbuffer sb;
	msgpack_packer pk;

	if (x->inbatch == 0)
		return;
	if ((x->tokens = sync_take_token(s))) {
		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		sync_pack_update_head(s, &pk, x->inbatch);
		msgpack_sbuffer_write(&sb, x->batch.data, x->batch.size);
		if (serf_send_event(s->serf, s->ev_update,
		    (const uint8_t *)sb.data, sb.size) == 0) {
			s->stats.retransmit_events++;
			s->stats.retransmit_entries += x->inbatch;
			for (uint32_t i = x->batch_from; i < x->nsent; i++)
				sync_heard_chain(s, x->sent[i]->chain);
		}
		msgpack_sbuffer_destroy(&sb);
	}
	x->batch.size = 0;
	x->inbatch = 0;
	x->batch_from = x->nsent;
}

/* Tick t of nd was reported missing and we know it: send its entry
 * again, or collect it as superseded. */
static void
answer_tick(struct answer *x, struct node *nd, uint64_t t)
{
	const struct entry *e = node_entry_get(nd, t);

	if (e == NULL) {
		(void)ranges_add(&x->sup[nd->index], t, t + 1);
		return;
	}
	for (uint32_t i = 0; i < x->nsent; i++)
		if (x->sent[i] == e)
			return;	/* its chain holds several asked ticks */
	if (!x->tokens || x->nsent == SYNC_RETRANSMIT_MAX ||
	    !pack_retransmission(x->s->a, &x->one, e,
	    x->s->a->cfg.change_length))
		return;			/* left to catch-up */
	if (x->batch.size + x->one.size > SYNC_EVENT_BUDGET)
		answer_flush(x);
	if (!x->tokens)
		return;
	msgpack_sbuffer_write(&x->batch, x->one.data, x->one.size);
	x->sent[x->nsent++] = e;
	x->inbatch++;
}

/*
 * A node that lost its data announces its skipped ticks as known
 * (sync_download_done).  Entries with some of those ticks may still live here:
 * made before the wipe and received only by nodes the wiped one could not
 * reach when it downloaded.  Nobody will ever report them missing, so
 * send them again, once per announcement (hardening issue, item 16).
 */
void
sync_resend_skipped(struct sync *s, const msgpack_object *from,
    const msgpack_object *known)
{
	struct node *nd;
	struct answer x;
	struct ranges rs;
	uint64_t end;

	if (from == NULL || !chain_node_name_ok(from) ||
	    (nd = nodes_get(&s->a->nodes, from->via.str.ptr,
	    from->via.str.size, false)) == NULL || nd == s->a->self)
		return;
	/* only what the node says of its own ticks is a skip */
	for (uint32_t i = 0; i < known->via.map.size; i++) {
		const msgpack_object *k = &known->via.map.ptr[i].key;

		if (k->type != MSGPACK_OBJECT_STR ||
		    k->via.str.size != from->via.str.size ||
		    memcmp(k->via.str.ptr, from->via.str.ptr,
		    k->via.str.size) != 0)
			continue;
		ranges_init(&rs);
		if (ranges_unpack(&known->via.map.ptr[i].val, &rs) == 0 &&
		    !ranges_empty(&rs))
			(void)ranges_add_all(&nd->skipped, &rs);
		ranges_fini(&rs);
	}
	if (ranges_empty(&nd->skipped))
		return;
	/*
	 * A Serf event may be lost (the announcement is often heard right
	 * at a heal): send again a few times, 5 clocks apart.  Copies are
	 * duplicates where they arrived already; nothing else repairs a loss,
	 * since everybody counts these ticks as known.
	 */
	end = nd->skipped.r[nd->skipped.n - 1].e;
	if (end > nd->resent_to) {
		nd->resent_to = end;
		nd->resends = 0;
		nd->next_resend = 0;
	}
	if (nd->resends >= SYNC_SKIP_RESENDS ||
	    ev_now(s->a->loop) < nd->next_resend)
		return;
	nd->resends++;
	nd->next_resend = ev_now(s->a->loop) + 5 * s->a->cfg.clock;
	memset(&x, 0, sizeof(x));
	x.s = s;
	x.tokens = true;
	if ((x.sup = calloc(s->a->nodes.n, sizeof(*x.sup))) == NULL)
		return;
	msgpack_sbuffer_init(&x.batch);
	msgpack_sbuffer_init(&x.one);
	/* the entries that hold its ticks: walk its tick map, not the range
	 * (a skip is 100,000 ticks wide) */
	for (size_t i = 0; i < nd->entries.cap; i++) {
		uint64_t t = nd->entries.slot[i].tick;

		if (t != 0 && ranges_contains(&nd->skipped, t))
			answer_tick(&x, nd, t);
	}
	answer_flush(&x);
	if (x.nsent > 0)
		log_info("%s lost its data: sent %u entries with its skipped "
		    "ticks again", nd->name, x.nsent);
	free(x.sup);
	msgpack_sbuffer_destroy(&x.batch);
	msgpack_sbuffer_destroy(&x.one);
}

/* `known`: the superseded ticks collected in a round. */
static void
fill_known(struct sync *s, msgpack_packer *pk, const void *arg)
{
	const struct answer *x = arg;

	pack_str(pk, "known");
	msgpack_pack_map(pk, x->nsup);
	for (size_t i = 0; i < s->a->nodes.n; i++) {
		const struct node *nd = s->a->nodes.by_index[i];

		if (ranges_empty(&x->sup[i]))
			continue;
		msgpack_pack_str_with_body(pk, nd->name, nd->name_len);
		ranges_pack(pk, &x->sup[i]);
	}
}

/*
 * One answering round: for every tick others reported missing that we
 * know, send the entry that holds it again, or report it superseded.
 * Single-threaded, the round cannot see others' retransmissions arrive
 * halfway (the reference sleeps c/10 per skipped tick for that); the
 * position-based start delays do that job: the first node answers, the
 * later ones hear it and find their remote_missing emptied.
 */
static void
answer_round(struct sync *s)
{
	struct nodes *ns = &s->a->nodes;
	size_t nn = ns->n, start;
	uint64_t budget = SYNC_ANSWER_TICKS;
	struct answer *x;

	if (nn == 0 || (x = calloc(1, sizeof(*x))) == NULL)
		return;
	if ((x->sup = calloc(nn, sizeof(*x->sup))) == NULL) {
		free(x);
		return;
	}
	x->s = s;
	x->tokens = true;
	msgpack_sbuffer_init(&x->batch);
	msgpack_sbuffer_init(&x->one);
	start = randombytes_uniform((uint32_t)nn);
	for (size_t j = 0; j < nn; j++) {
		struct node *nd = ns->by_index[(start + j) % nn];
		struct ranges todo, unknown;

		ranges_init(&x->sup[nd->index]);
		if (ranges_empty(&nd->remote_missing))
			continue;
		/* todo = remote_missing ∩ known */
		ranges_init(&todo);
		ranges_init(&unknown);
		if (ranges_add_all(&todo, &nd->remote_missing) != 0 ||
		    ranges_add_all(&unknown, &nd->remote_missing) != 0 ||
		    ranges_remove_all(&unknown, &nd->known) != 0 ||
		    ranges_remove_all(&todo, &unknown) != 0)
			ranges_clear(&todo);
		for (size_t r = 0; r < todo.n; r++)
			for (uint64_t t = todo.r[r].b; t < todo.r[r].e &&
			    budget > 0; t++, budget--)
				answer_tick(x, nd, t);
		x->nsup += !ranges_empty(&x->sup[nd->index]);
		/* sent or superseded: not ours to send again (§3.11) */
		(void)ranges_remove_all(&nd->remote_missing, &nd->known);
		ranges_fini(&todo);
		ranges_fini(&unknown);
	}
	answer_flush(x);
	if (x->nsent > 0 || x->nsup > 0)
		log_info("recovery: answered missing reports: %u entries sent "
		    "again, superseded ticks of %u nodes reported", x->nsent,
		    x->nsup);
	if (x->nsup > 0) {
		sync_send_info_event(s, 1, fill_known, x);
		s->stats.known_reports++;
	}
	for (size_t i = 0; i < nn; i++)
		ranges_fini(&x->sup[i]);
	free(x->sup);
	msgpack_sbuffer_destroy(&x->batch);
	msgpack_sbuffer_destroy(&x->one);
	free(x);
}

void
sync_answer_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct sync *s = container_of(w, struct sync, answer_timer);

	(void)loop;
	(void)revents;
	answer_round(s);
	s->answering = false;
	if (s->answer_again) {
		s->answer_again = false;
		sync_start_answering(s);
	}
}

void
sync_start_recovery(struct sync *s, unsigned pos, const struct pingchain *sane,
    bool replace)
{
	struct recovery *r = &s->rec;

	if (r->running)
		return;
	r->running = true;
	r->step = 1;
	r->pos = pos;
	r->replace = replace;
	r->got_ticks = r->got_missing = false;
	r->sane = *sane;
	s->stats.recoveries++;
	log_debug("recovery: started at position %u of the ping chain of "
	    "%s:%llu", pos, sane->l[0].node->name,
	    (unsigned long long)sane->l[0].tick);
	arm(s, &r->timer, pos_wait(s, 1.0, pos) / 2);
}

void
sync_recovery_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct sync *s = container_of(w, struct sync, rec.timer);
	struct recovery *r = &s->rec;

	(void)loop;
	(void)revents;
	switch (r->step) {
	case 1:
		if (r->got_ticks)
			log_debug("recovery step 1: another node sent ticks");
		else {
			log_debug("recovery step 1: sending our ticks");
			sync_send_info_event(s, 2, sync_fill_reason, NULL);
		}
		r->step = 2;
		arm(s, &r->timer, pos_wait(s, 2.0, r->pos) / 2);
		break;
	case 2:
		if (r->got_missing)
			log_debug("recovery step 2: another node sent its "
			    "missing ticks");
		else {
			log_debug("recovery step 2: sending our missing ticks");
			sync_send_info_event(s, 1, sync_fill_missing, NULL);
			s->stats.missing_reports++;
		}
		r->step = 3;
		arm(s, &r->timer, pos_wait(s, 1.0, r->pos));
		break;
	default:
		sync_start_answering(s);
		for (size_t i = 0; i < s->a->nodes.n; i++)
			ranges_clear(&s->a->nodes.by_index[i]->seen_missing);
		r->running = false;
		log_debug("recovery: done");
		break;
	}
}

/*
 * A ping from another node.  The valid next ping extends L; anything else
 * is a collision (two pings after the same one, or a split healing).  The
 * winner is chosen the same way everywhere (spec §3.8, with the docs'
 * tie-breakers: higher tick, then the alphabetically lower name).
 */
void
sync_handle_ping(struct sync *s, const msgpack_object *m)
{
	struct agent *a = s->a;
	struct pingchain p, old;
	bool take;
	int pos;

	if (!sync_ping_decode(s, m, &p) || p.l[0].node == a->self)
		return;
	sync_raise_tock(a, m);
	if (s->last_ping.n == 0 || (p.n > 1 &&
	    sync_ping_tail_eq(&p, 1, &s->last_ping, 0)) ||
	    (p.n == 1 && s->last_ping.n <= 2)) {
		s->last_ping = p;
		sync_ping_reschedule(s);
		return;
	}
	s->collisions++;
	if (!p.l[0].has_tick && agent_ready(a))
		take = false;
	else if (p.l[0].has_tick && !agent_ready(a))
		take = true;
	else if (p.tock != s->last_ping.tock)
		take = p.tock > s->last_ping.tock;
	else if (p.l[0].tick != s->last_ping.l[0].tick)
		take = p.l[0].tick > s->last_ping.l[0].tick;
	else
		take = strcmp(p.l[0].node->name,
		    s->last_ping.l[0].node->name) < 0;
	log_debug("ping collision: %s:%llu (tock %llu) vs %s:%llu (tock %llu), "
	    "keeping %s", p.l[0].node->name, (unsigned long long)p.l[0].tick,
	    (unsigned long long)p.tock, s->last_ping.l[0].node->name,
	    (unsigned long long)s->last_ping.l[0].tick,
	    (unsigned long long)s->last_ping.tock,
	    take ? "the new one" : "ours");
	old = s->last_ping;
	if (take) {
		s->last_ping = p;
		sync_ping_reschedule(s);
	}
	/*
	 * Two chains after one another: a split healing (or two pings
	 * crossing).  The nodes of the old chain run split recovery in
	 * the order of their positions (spec §3.8 step 3).
	 */
	if (agent_ready(a) && p.l[0].has_tick && old.l[0].has_tick &&
	    (pos = sync_chain_position(s, &old)) >= 0)
		sync_start_recovery(s, (unsigned)pos, &old, !take);
}

void
sync_pack_recovery(const struct agent *a, msgpack_packer *pk)
{
	const struct sync *s = a->sync;
	static const struct sync zero;

	if (s == NULL)
		s = &zero;
	msgpack_pack_map(pk, 11);
	pack_str(pk, "tombstones");
	msgpack_pack_uint64(pk, a->tombstones);
	pack_str(pk, "purged");
	msgpack_pack_uint64(pk, s->stats.purged);
	pack_str(pk, "running");
	pack_bool(pk, s->rec.running);
	pack_str(pk, "step");
	msgpack_pack_uint32(pk, s->rec.running ? s->rec.step : 0);
	pack_str(pk, "answering");
	pack_bool(pk, s->answering);
	pack_str(pk, "recoveries");
	msgpack_pack_uint64(pk, s->stats.recoveries);
	pack_str(pk, "retransmit_events");
	msgpack_pack_uint64(pk, s->stats.retransmit_events);
	pack_str(pk, "retransmit_entries");
	msgpack_pack_uint64(pk, s->stats.retransmit_entries);
	pack_str(pk, "missing_reports");
	msgpack_pack_uint64(pk, s->stats.missing_reports);
	pack_str(pk, "known_reports");
	msgpack_pack_uint64(pk, s->stats.known_reports);
	pack_str(pk, "catchup_items");
	msgpack_pack_uint64(pk, s->stats.catchup_items);
}

void
sync_pack_ping(const struct agent *a, msgpack_packer *pk)
{
	const struct pingchain *c;

	if (a->sync == NULL) {
		msgpack_pack_array(pk, 0);
		return;
	}
	c = &a->sync->last_ping;
	msgpack_pack_array(pk, c->n);
	for (unsigned i = 0; i < c->n; i++) {
		msgpack_pack_map(pk, 1 + c->l[i].has_tick);
		pack_link_pairs(pk, &c->l[i]);
	}
}
