/* sync: see sync.h; sync_impl.h says how it is split. */
#include "sync_impl.h"

/* ---- helpers ---- */

bool
sync_name_reserved(const struct agent *a, const char *name, size_t nlen)
{
	size_t plen = strlen(a->cfg.event_prefix);

	return nlen >= plen && memcmp(name, a->cfg.event_prefix, plen) == 0;
}

bool
sync_serf_connected(const struct agent *a)
{
	return a->sync != NULL && a->sync->serf != NULL &&
	    serf_connected(a->sync->serf);
}

/* ---- broadcasting local changes ---- */

void
sync_local_change(struct agent *a, const struct entry *e)
{
	struct sync *s = a->sync;
	msgpack_packer pk;

	if (s == NULL)
		return;
	if (s->qn == s->qcap) {
		size_t cap = s->qcap ? s->qcap * 2 : 64;
		struct qrec *qr = realloc(s->qr, cap * sizeof(*qr));

		if (qr == NULL)
			return;	/* catch-up will carry it */
		s->qr = qr;
		s->qcap = cap;
	}
	s->qr[s->qn].off = s->q.size;
	msgpack_packer_init(&pk, &s->q, msgpack_sbuffer_write);
	agent_pack_change(a, &pk, e);
	s->qr[s->qn].len = s->q.size - s->qr[s->qn].off;
	s->qr[s->qn].tick = e->chain->l[0].tick;
	s->qn++;
}

/* Envelope of an update event: {node, tick, tock, changes: [...]}. */
void
sync_pack_update_head(struct sync *s, msgpack_packer *pk, uint32_t n)
{
	struct agent *a = s->a;

	msgpack_pack_map(pk, 4);
	pack_str(pk, "node");
	msgpack_pack_str_with_body(pk, a->self->name, a->self->name_len);
	pack_str(pk, "tick");
	msgpack_pack_uint64(pk, a->self->tick);
	pack_str(pk, "tock");
	msgpack_pack_uint64(pk, a->tock);
	pack_str(pk, "changes");
	msgpack_pack_array(pk, n);
}

bool
sync_take_token(struct sync *s)
{
	ev_tstamp now = ev_now(s->a->loop);

	s->tokens += (now - s->refill) * SYNC_EVENTS_PER_SEC;
	if (s->tokens > SYNC_EVENT_BURST)
		s->tokens = SYNC_EVENT_BURST;
	s->refill = now;
	if (s->tokens < 1.0)
		return false;
	s->tokens -= 1.0;
	return true;
}

static void
send_update(struct sync *s, size_t from, size_t to)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	int rc;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	sync_pack_update_head(s, &pk, (uint32_t)(to - from));
	for (size_t i = from; i < to; i++) {
		if (s->qr[i].len > SYNC_EVENT_BUDGET) {
			/* too big to gossip: announce it; peers pull the value */
			msgpack_pack_map(&pk, 3);
			pack_str(&pk, "node");
			msgpack_pack_str_with_body(&pk, s->a->self->name,
			    s->a->self->name_len);
			pack_str(&pk, "tick");
			msgpack_pack_uint64(&pk, s->qr[i].tick);
			pack_str(&pk, "ref");
			msgpack_pack_true(&pk);
		} else
			msgpack_sbuffer_write(&sb, s->q.data + s->qr[i].off,
			    s->qr[i].len);
	}
	rc = serf_send_event(s->serf, s->ev_update, (const uint8_t *)sb.data,
	    sb.size);
	if (rc != 0)
		log_debug("update event not sent (%s); catch-up will repair",
		    strerror(-rc));
	else
		for (size_t i = from; i < to; i++)
			sync_heard_tick(s, s->a->self, s->qr[i].tick);
	msgpack_sbuffer_destroy(&sb);
}

void
sync_flush(struct agent *a)
{
	struct sync *s = a->sync;
	size_t from = 0, size = 64;

	if (s == NULL || s->qn == 0)
		return;
	if (serf_connected(s->serf)) {
		for (size_t i = 0; i < s->qn; i++) {
			size_t len = s->qr[i].len > SYNC_EVENT_BUDGET ? 40 :
			    s->qr[i].len;

			if (i > from && size + len > SYNC_EVENT_BUDGET) {
				if (!sync_take_token(s))
					break;
				send_update(s, from, i);
				from = i;
				size = 64;
			}
			size += len;
		}
		if (from < s->qn && sync_take_token(s)) {
			send_update(s, from, s->qn);
			from = s->qn;
		}
		if (from < s->qn)
			log_debug("%zu changes left to catch-up (rate limit)",
			    s->qn - from);
	}
	s->qn = 0;
	s->q.size = 0;
}

/* ---- info: the ticks this node knows ---- */

static void pack_ping_chain(msgpack_packer *pk, const struct pingchain *c,
    unsigned i);

/* Send an info event: {node, tick, tock} plus what fill() adds (nparts
 * keys), never coalesced; a large one may not gossip fast, it still
 * arrives. */
void
sync_send_info_event(struct sync *s, uint32_t nparts,
    void (*fill)(struct sync *, msgpack_packer *, const void *),
    const void *arg)
{
	struct agent *a = s->a;
	msgpack_sbuffer sb;
	msgpack_packer pk;

	if (!serf_connected(s->serf))
		return;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 3 + nparts);
	pack_str(&pk, "node");
	msgpack_pack_str_with_body(&pk, a->self->name, a->self->name_len);
	pack_str(&pk, "tick");
	if (a->self->has_tick)
		msgpack_pack_uint64(&pk, a->self->tick);
	else
		msgpack_pack_nil(&pk);
	pack_str(&pk, "tock");
	msgpack_pack_uint64(&pk, a->tock);
	fill(s, &pk, arg);
	serf_send_event(s->serf, s->ev_info, (const uint8_t *)sb.data,
	    sb.size);
	msgpack_sbuffer_destroy(&sb);
}

/* `ticks`: every node we know a tick of (spec §3.4). */
static void
pack_ticks(struct sync *s, msgpack_packer *pk)
{
	pack_str(pk, "ticks");
	nodes_pack_ticks(&s->a->nodes, pk);
}

/*
 * `done`: for every node, the end of the run of its ticks from 1 that we
 * have all seen.  What every node reports this way decides when a
 * tombstone may be purged (sync_purge_tombstones).
 */
static void
pack_done(struct sync *s, msgpack_packer *pk)
{
	const struct nodes *ns = &s->a->nodes;
	uint32_t n = 0;

	for (size_t i = 0; i < ns->n; i++)
		n += ranges_prefix(&ns->by_index[i]->known) > 0;
	pack_str(pk, "done");
	msgpack_pack_map(pk, n);
	for (size_t i = 0; i < ns->n; i++) {
		const struct node *nd = ns->by_index[i];
		uint64_t d = ranges_prefix(&nd->known);

		if (d == 0)
			continue;
		msgpack_pack_str_with_body(pk, nd->name, nd->name_len);
		msgpack_pack_uint64(pk, d);
	}
}

/* The periodic info: our ticks and done, our skipped ticks as known. */
static void
fill_periodic(struct sync *s, msgpack_packer *pk, const void *arg)
{
	const struct node *self = s->a->self;

	(void)arg;
	pack_ticks(s, pk);
	pack_done(s, pk);
	if (s->announce_to == 0)
		return;
	/* spec §3.4 `known`: our skipped ticks hold nothing */
	pack_str(pk, "known");
	msgpack_pack_map(pk, 1);
	msgpack_pack_str_with_body(pk, self->name, self->name_len);
	msgpack_pack_array(pk, 1);
	msgpack_pack_array(pk, 2);
	msgpack_pack_uint64(pk, s->announce_from);
	msgpack_pack_uint64(pk, s->announce_to);
}

void
sync_send_info(struct sync *s)
{
	sync_send_info_event(s, 2 + (s->announce_to > 0), fill_periodic, NULL);
}

/* Recovery step 1: our ticks and the sane ping chain as the reason. */
void
sync_fill_reason(struct sync *s, msgpack_packer *pk, const void *arg)
{
	const struct pingchain *c = &s->rec.sane;

	(void)arg;
	pack_ticks(s, pk);
	pack_str(pk, "reason");
	msgpack_pack_map(pk, 4 + c->l[0].has_tick);
	pack_link_pairs(pk, &c->l[0]);
	pack_str(pk, "tock");
	msgpack_pack_uint64(pk, c->tock);
	pack_str(pk, "replace");
	pack_bool(pk, s->rec.replace);
	pack_str(pk, "prev");
	if (c->n > 1)
		pack_ping_chain(pk, c, 1);
	else
		msgpack_pack_nil(pk);
}

/*
 * Recovery step 2: `missing` for every node with ticks, less what was
 * asked for already in this recovery (possibly an empty map: it still
 * tells the others that this step is done).
 */
void
sync_fill_missing(struct sync *s, msgpack_packer *pk, const void *arg)
{
	const struct nodes *ns = &s->a->nodes;
	struct ranges *miss;
	uint32_t n = 0;

	(void)arg;
	pack_str(pk, "missing");
	if ((miss = calloc(ns->n ? ns->n : 1, sizeof(*miss))) == NULL) {
		msgpack_pack_map(pk, 0);
		return;
	}
	for (size_t i = 0; i < ns->n; i++) {
		struct node *nd = ns->by_index[i];

		ranges_init(&miss[i]);
		if (!nd->has_tick || nd->tick == 0 ||
		    ranges_missing(&nd->known, nd->tick, &miss[i]) != 0 ||
		    ranges_remove_all(&miss[i], &nd->seen_missing) != 0)
			ranges_clear(&miss[i]);
		n += !ranges_empty(&miss[i]);
	}
	msgpack_pack_map(pk, n);
	for (size_t i = 0; i < ns->n; i++) {
		struct node *nd = ns->by_index[i];

		if (!ranges_empty(&miss[i])) {
			msgpack_pack_str_with_body(pk, nd->name, nd->name_len);
			ranges_pack(pk, &miss[i]);
			(void)ranges_add_all(&nd->seen_missing, &miss[i]);
		}
		ranges_fini(&miss[i]);
	}
	free(miss);
}

/* ---- pings (spec §3.8): a common, rotating order of live nodes ---- */

static bool
link_eq(const struct pinglink *a, const struct pinglink *b)
{
	return a->node == b->node && a->has_tick == b->has_tick &&
	    (!a->has_tick || a->tick == b->tick);
}

/*
 * Tolerant equality of ping chains from index ai / bi on: heads equal and
 * tails equal, where a tail that ends early matches as long as the other
 * side has at most 2 more links (truncation tolerance).
 */
bool
sync_ping_tail_eq(const struct pingchain *a, unsigned ai,
    const struct pingchain *b, unsigned bi)
{
	for (;;) {
		unsigned ra = a->n - ai, rb = b->n - bi;

		if (ra == 0 || rb == 0)
			return (ra > rb ? ra - rb : rb - ra) <= 2;
		if (!link_eq(&a->l[ai], &b->l[bi]))
			return false;
		ai++;
		bi++;
	}
}

/* Position (1-based) of this node in prev(L), 0 if absent. */
static unsigned
ping_position(const struct sync *s)
{
	for (unsigned i = 1; i < s->last_ping.n; i++)
		if (s->last_ping.l[i].node == s->a->self)
			return i;
	return 0;
}

/* When to ping next, as a factor of the clock (spec §3.8 table). */
static double
ping_factor(const struct sync *s)
{
	const struct pingchain *L = &s->last_ping;
	unsigned lv = L->n, pos, k;
	double nn = (double)(s->a->nodes.n > 0 ? s->a->nodes.n : 1);

	if (L->n > 0 && L->l[0].node == s->a->self)
		return 3.0;
	if (!agent_ready(s->a) && L->n > 1) {
		for (unsigned i = 1; i < L->n; i++)
			if (L->l[i].has_tick && L->l[i].tick > 0) {
				if (i > (L->n - 1 + 1) / 2)
					return 3.0;	/* stay quiet */
				break;
			}
	}
	if ((pos = ping_position(s)) > 0)
		return 2.0 - (double)(pos - 1) / (double)lv;
	k = lv < s->a->cfg.ping_length - 1 ? 3 : 10;
	if (rand01() < 1.0 / ((double)k * nn))
		return 1.0 + rand01() / nn;
	return 2.5 + rand01() / 2.0;
}

void
sync_ping_reschedule(struct sync *s)
{
	ev_timer_stop(s->a->loop, &s->ping_timer);
	ev_timer_set(&s->ping_timer, ping_factor(s) * s->a->cfg.clock, 0.);
	ev_timer_start(s->a->loop, &s->ping_timer);
}

static void
pack_ping_chain(msgpack_packer *pk, const struct pingchain *c, unsigned i)
{
	/* as a chain map: node, [tick], prev (nil at the real end) */
	msgpack_pack_map(pk, 2 + c->l[i].has_tick);
	pack_link_pairs(pk, &c->l[i]);
	pack_str(pk, "prev");
	if (i + 1 < c->n)
		pack_ping_chain(pk, c, i + 1);
	else
		msgpack_pack_nil(pk);
}

static void
send_ping(struct sync *s)
{
	struct agent *a = s->a;
	struct pingchain p;
	msgpack_sbuffer sb;
	msgpack_packer pk;

	/* a new ping = (self, tick) followed by L, cut to ping.length; if
	 * that head equals L's, L is sent again unchanged */
	memset(&p, 0, sizeof(p));
	p.l[0].node = a->self;
	p.l[0].has_tick = a->self->has_tick;
	p.l[0].tick = a->self->tick;
	if (s->last_ping.n > 0 && link_eq(&p.l[0], &s->last_ping.l[0]))
		p = s->last_ping;
	else {
		p.n = 1;
		for (unsigned i = 0; i < s->last_ping.n &&
		    p.n < a->cfg.ping_length; i++)
			p.l[p.n++] = s->last_ping.l[i];
		p.tock = agent_stamp(a);
	}
	s->last_ping = p;
	s->pings_sent++;
	if (serf_connected(s->serf)) {
		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		msgpack_pack_map(&pk, 4);
		pack_str(&pk, "node");
		msgpack_pack_str_with_body(&pk, a->self->name,
		    a->self->name_len);
		pack_str(&pk, "tick");
		if (a->self->has_tick)
			msgpack_pack_uint64(&pk, a->self->tick);
		else
			msgpack_pack_nil(&pk);
		pack_str(&pk, "tock");
		msgpack_pack_uint64(&pk, p.tock);
		pack_str(&pk, "prev");
		if (p.n > 1)
			pack_ping_chain(&pk, &p, 1);
		else
			msgpack_pack_nil(&pk);
		serf_send_event(s->serf, s->ev_ping, (const uint8_t *)sb.data,
		    sb.size);
		msgpack_sbuffer_destroy(&sb);
	}
	sync_ping_reschedule(s);
}

static void
ping_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct sync *s = container_of(w, struct sync, ping_timer);

	(void)loop;
	(void)revents;
	send_ping(s);
}

/* Decode a ping message into a chain (nodes created, ticks raised). */
bool
sync_ping_decode(struct sync *s, const msgpack_object *m, struct pingchain *out)
{
	const msgpack_object *cur = m;

	memset(out, 0, sizeof(*out));
	if (proto_get_tock(proto_map_get(m, "tock"), &out->tock) != 0)
		return false;
	while (cur != NULL && cur->type == MSGPACK_OBJECT_MAP &&
	    out->n < PING_MAX) {
		const msgpack_object *name = proto_map_get(cur, "node");
		const msgpack_object *tick = proto_map_get(cur, "tick");
		struct pinglink *l = &out->l[out->n];

		if (name == NULL || !chain_node_name_ok(name))
			return false;
		l->node = nodes_get(&s->a->nodes, name->via.str.ptr,
		    name->via.str.size, true);
		if (l->node == NULL)
			return false;
		if (tick != NULL && tick->type != MSGPACK_OBJECT_NIL) {
			if (proto_get_tick(tick, &l->tick) != 0)
				return false;
			l->has_tick = true;
			node_raise_tick(l->node, l->tick);
		}
		out->n++;
		cur = proto_map_get(cur, "prev");
	}
	return out->n > 0;
}

/* ---- receiving ---- */

void
sync_raise_tock(struct agent *a, const msgpack_object *m)
{
	uint64_t t;

	if (proto_get_tock(proto_map_get(m, "tock"), &t) == 0 && t > a->tock)
		a->tock = t;
}

void
sync_raise_node_tick(struct agent *a, const msgpack_object *name,
    const msgpack_object *tick)
{
	struct node *n;
	uint64_t t;

	if (name == NULL || !chain_node_name_ok(name) || tick == NULL ||
	    proto_get_tick(tick, &t) != 0)
		return;
	n = nodes_get(&a->nodes, name->via.str.ptr, name->via.str.size, true);
	if (n != NULL)
		node_raise_tick(n, t);
}

static void
apply_update_record(struct agent *a, const msgpack_object *rec)
{
	struct record_ctx ctx = { a->tree.root, a->tree.root };
	const msgpack_object *ref = proto_map_get(rec, "ref");
	const char *why;
	bool applied;

	if (ref != NULL && ref->type == MSGPACK_OBJECT_BOOLEAN &&
	    ref->via.boolean) {
		/* by reference: the gap it opens is pulled by catch-up */
		sync_raise_node_tick(a, proto_map_get(rec, "node"),
		    proto_map_get(rec, "tick"));
		return;
	}
	if (proto_map_get(rec, "value") == NULL) {
		log_debug("update record without value ignored");
		return;
	}
	if (agent_apply_record(a, &ctx, rec, ORIGIN_REMOTE, &applied,
	    &why) != 0)
		log_warn("bad update record from Serf: %s", why);
	else
		sync_heard_record(a->sync, rec);
}

static void
handle_update(struct sync *s, const msgpack_object *m)
{
	const msgpack_object *ch = proto_map_get(m, "changes");

	sync_raise_tock(s->a, m);
	sync_raise_node_tick(s->a, proto_map_get(m, "node"),
	    proto_map_get(m, "tick"));
	if (ch == NULL) {
		apply_update_record(s->a, m);	/* spec §3.3 single form */
		return;
	}
	if (ch->type != MSGPACK_OBJECT_ARRAY)
		return;
	for (uint32_t i = 0; i < ch->via.array.size; i++)
		if (ch->via.array.ptr[i].type == MSGPACK_OBJECT_MAP)
			apply_update_record(s->a, &ch->via.array.ptr[i]);
}

/* info `done` of node `from`: remember it as that node's report. */
static void
take_done(struct sync *s, const msgpack_object *from,
    const msgpack_object *done)
{
	struct nodes *ns = &s->a->nodes;
	struct node *r, *n;
	uint64_t *v;

	if (from == NULL || !chain_node_name_ok(from) ||
	    (r = nodes_get(ns, from->via.str.ptr, from->via.str.size,
	    true)) == NULL)
		return;
	for (uint32_t i = 0; i < done->via.map.size; i++) {
		const msgpack_object *k = &done->via.map.ptr[i].key;

		if (chain_node_name_ok(k))
			(void)nodes_get(ns, k->via.str.ptr, k->via.str.size,
			    true);
	}
	if ((v = calloc(ns->n, sizeof(*v))) == NULL)
		return;
	for (uint32_t i = 0; i < done->via.map.size; i++) {
		const msgpack_object *k = &done->via.map.ptr[i].key;
		uint64_t t;

		if (chain_node_name_ok(k) &&
		    proto_get_tick(&done->via.map.ptr[i].val, &t) == 0 &&
		    (n = nodes_get(ns, k->via.str.ptr, k->via.str.size,
		    false)) != NULL)
			v[n->index] = t;
	}
	free(r->report);
	r->report = v;
	r->nreport = ns->n;
	r->has_report = true;
}

/* info `missing` (spec §3.4): others lack these ticks; answer them. */
static void
take_missing(struct sync *s, const msgpack_object *missing)
{
	bool any = false;

	for (uint32_t i = 0; i < missing->via.map.size; i++) {
		const msgpack_object *name = &missing->via.map.ptr[i].key;
		struct ranges rs;
		struct node *n;

		if (!chain_node_name_ok(name))
			continue;
		ranges_init(&rs);
		if (ranges_unpack(&missing->via.map.ptr[i].val, &rs) == 0 &&
		    !ranges_empty(&rs) &&
		    (n = nodes_get(&s->a->nodes, name->via.str.ptr,
		    name->via.str.size, true)) != NULL) {
			(void)ranges_add_all(&n->seen_missing, &rs);
			/* on its way to the reporter: not answered */
			sync_heard_remove(s, n, &rs);
			(void)ranges_add_all(&n->remote_missing, &rs);
			any = any || !ranges_empty(&rs);
		}
		ranges_fini(&rs);
	}
	if (any)
		sync_start_answering(s);
}

/*
 * info `reason` (spec §3.10): another node found a split.  If it says its
 * chain won, adopt it; then recover if this node is on our chain.
 */
static void
take_reason(struct sync *s, const msgpack_object *reason, bool with_ticks)
{
	const msgpack_object *rep = proto_map_get(reason, "replace");
	struct pingchain c;
	int pos;

	if (s->rec.running || !agent_ready(s->a) ||
	    !sync_ping_decode(s, reason, &c))
		return;
	if (rep != NULL && rep->type == MSGPACK_OBJECT_BOOLEAN &&
	    rep->via.boolean) {
		s->last_ping = c;
		sync_ping_reschedule(s);
	}
	if ((pos = sync_chain_position(s, &s->last_ping)) < 0)
		return;
	sync_start_recovery(s, (unsigned)pos, &s->last_ping, false);
	s->rec.got_ticks = with_ticks;	/* this very info had them */
}

static void
handle_info(struct sync *s, const msgpack_object *m)
{
	const msgpack_object *ticks = proto_map_get(m, "ticks");
	const msgpack_object *known = proto_map_get(m, "known");
	const msgpack_object *missing = proto_map_get(m, "missing");
	const msgpack_object *reason = proto_map_get(m, "reason");
	const msgpack_object *done = proto_map_get(m, "done");
	bool has_ticks = ticks != NULL && ticks->type == MSGPACK_OBJECT_MAP;

	sync_raise_tock(s->a, m);
	if (known != NULL && known->type == MSGPACK_OBJECT_MAP) {
		/* superseded or skipped ticks: nothing to wait for */
		struct record_ctx ctx = { s->a->tree.root, s->a->tree.root };
		msgpack_object rec;
		msgpack_object_kv kv;
		const char *why;
		bool applied;

		kv.key.type = MSGPACK_OBJECT_STR;
		kv.key.via.str.ptr = "known";
		kv.key.via.str.size = 5;
		kv.val = *known;
		rec.type = MSGPACK_OBJECT_MAP;
		rec.via.map.size = 1;
		rec.via.map.ptr = &kv;
		if (agent_apply_record(s->a, &ctx, &rec, ORIGIN_REMOTE,
		    &applied, &why) != 0)
			log_warn("bad info known: %s", why);
		else
			sync_resend_skipped(s, proto_map_get(m, "node"), known);
	}
	if (has_ticks)
		for (uint32_t i = 0; i < ticks->via.map.size; i++)
			sync_raise_node_tick(s->a, &ticks->via.map.ptr[i].key,
			    &ticks->via.map.ptr[i].val);
	if (done != NULL && done->type == MSGPACK_OBJECT_MAP)
		take_done(s, proto_map_get(m, "node"), done);
	if (reason != NULL && reason->type == MSGPACK_OBJECT_MAP)
		take_reason(s, reason, has_ticks);
	else if (has_ticks && s->rec.running)
		s->rec.got_ticks = true;
	if (missing != NULL && missing->type == MSGPACK_OBJECT_MAP) {
		if (s->rec.running)
			s->rec.got_missing = true;
		take_missing(s, missing);
	}
}

static bool
member_listed(const struct sync *s, const char *name)
{
	for (size_t i = 0; i < s->nmem; i++)
		if (strcmp(s->mem[i].name, name) == 0)
			return true;
	return false;
}

static void
serf_user_event(void *arg, const char *name, size_t nlen,
    const uint8_t *payload, size_t len, uint64_t ltime)
{
	struct sync *s = arg;
	bool upd = strlen(s->ev_update) == nlen &&
	    memcmp(name, s->ev_update, nlen) == 0;
	bool info = strlen(s->ev_info) == nlen &&
	    memcmp(name, s->ev_info, nlen) == 0;
	bool ping = strlen(s->ev_ping) == nlen &&
	    memcmp(name, s->ev_ping, nlen) == 0;
	msgpack_zone zone;
	msgpack_object m;
	size_t objlen;

	(void)ltime;
	if (!upd && !info && !ping) {
		sync_monitor_deliver(s->a, name, nlen, payload, len);
		return;
	}
	/* payloads from the network: framed and checked like client input */
	if (proto_scan(payload, len, PROTO_MAX_NESTING, &objlen) != 0 ||
	    objlen != len) {
		log_warn("malformed %.*s event ignored", (int)nlen, name);
		return;
	}
	msgpack_zone_init(&zone, 4096);
	if (proto_unpack(payload, len, &zone, &m) == 0 &&
	    m.type == MSGPACK_OBJECT_MAP) {
		const msgpack_object *from = proto_map_get(&m, "node");
		struct node *fn;

		/* for `distkv-cli members`: when it was last heard of */
		if (from != NULL && chain_node_name_ok(from) &&
		    (fn = nodes_get(&s->a->nodes, from->via.str.ptr,
		    from->via.str.size, false)) != NULL) {
			fn->last_seen = ev_now(s->a->loop);
			/* a sender Serf's list here does not have yet: the
			 * member event is still on its way; `members` and the
			 * peer choice want the news now */
			if (!member_listed(s, fn->name))
				serf_refresh_members(s->serf);
		}
		if (!upd && from != NULL &&
		    proto_str_eq(from, s->a->self->name))
			;	/* our own info or ping */
		else if (upd)
			handle_update(s, &m);
		else if (ping)
			sync_handle_ping(s, &m);
		else
			handle_info(s, &m);
	}
	msgpack_zone_destroy(&zone);
}

static void
serf_members(void *arg, const struct serf_member *m, size_t n)
{
	struct sync *s = arg;
	struct serf_member *copy = NULL;

	if (n > 0 && (copy = malloc(n * sizeof(*copy))) == NULL)
		return;
	memberlog_changes(s->a->self->name, s->mem, s->nmem, m, n);
	if (n > 0)
		memcpy(copy, m, n * sizeof(*copy));
	free(s->mem);
	s->mem = copy;
	s->nmem = n;
}

static void
serf_state(void *arg, bool connected)
{
	struct sync *s = arg;

	log_info("Serf %s", connected ? "connected" : "connection lost; "
	    "serving local clients, will catch up");
	if (connected)
		sync_send_info(s);
}

/* ---- start and stop ---- */

static int
make_run_dir(struct sync *s)
{
	const struct agent_config *c = &s->a->cfg;

	if (c->run_dir != NULL) {
		snprintf(s->run_dir, sizeof(s->run_dir), "%s", c->run_dir);
		if (mkdir(s->run_dir, 0750) != 0 && errno != EEXIST)
			return -errno;
		return 0;
	}
	if (c->state_dir != NULL) {
		snprintf(s->run_dir, sizeof(s->run_dir), "%s/serf",
		    c->state_dir);
		if (mkdir(s->run_dir, 0750) != 0 && errno != EEXIST)
			return -errno;
		return 0;
	}
	snprintf(s->run_dir, sizeof(s->run_dir), "%s/distkv-serf.XXXXXX",
	    getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp");
	if (mkdtemp(s->run_dir) == NULL)
		return -errno;
	s->own_run_dir = true;
	return 0;
}

int
sync_start(struct agent *a)
{
	static const struct serf_callbacks cbs = {
		.user_event = serf_user_event,
		.members = serf_members,
		.state = serf_state,
	};
	const struct agent_config *c = &a->cfg;
	char gossip_key[64];
	struct sync *s;
	const char *rpc;
	int rc;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return -ENOMEM;
	s->a = a;
	s->pfd = -1;
	s->last_gained = true;		/* no backoff before the first round */
	msgpack_sbuffer_init(&s->q);
	msgpack_sbuffer_init(&s->preq);
	snprintf(s->ev_update, sizeof(s->ev_update), "%s.update",
	    c->event_prefix);
	snprintf(s->ev_info, sizeof(s->ev_info), "%s.info", c->event_prefix);
	snprintf(s->ev_ping, sizeof(s->ev_ping), "%s.ping", c->event_prefix);
	s->tokens = SYNC_EVENT_BURST;
	s->refill = ev_now(a->loop);
	joinwatch_init(&s->joinwatch, ev_now(a->loop));
	a->sync = s;
	rpc = c->serf_addr;
	if (rpc == NULL) {
		struct serfproc_config pc;
		char tag[300];
		const char *tags[2] = { tag, NULL };

		if ((rc = make_run_dir(s)) != 0) {
			log_error("cannot create a directory for Serf: %s",
			    strerror(-rc));
			goto fail;
		}
		snprintf(tag, sizeof(tag), "distkv=%s", c->peer_bind);
		memset(&pc, 0, sizeof(pc));
		pc.serf_bin = c->serf_bin;
		pc.node = a->self->name;
		pc.bind = c->bind;
		pc.rpc_addr = c->serf_rpc;
		pc.join = c->join;
		pc.tags = tags;
		pc.dir = s->run_dir;
		pc.event_size_limit = SYNC_SERF_EVENT_LIMIT;
		pc.reconnect_interval = "1s";
		pc.reconnect_timeout = "24h";
		pc.profile = "lan";
		if (c->has_cluster_key) {
			/*
			 * Gossip is encrypted with a key derived from the
			 * cluster secret: a Serf agent without it cannot join,
			 * so nobody outside can fire update events.
			 */
			uint8_t k[32];

			crypto_generichash(k, sizeof(k),
			    (const uint8_t *)"distkv-serf-gossip", 18,
			    c->cluster_key, sizeof(c->cluster_key));
			sodium_bin2base64(gossip_key, sizeof(gossip_key), k,
			    sizeof(k), sodium_base64_VARIANT_ORIGINAL);
			sodium_memzero(k, sizeof(k));
			pc.encrypt_key = gossip_key;
		}
		if ((rc = serfproc_start(a->loop, &pc, &s->proc)) != 0) {
			log_error("cannot start serf agent: %s", strerror(-rc));
			goto fail;
		}
		rpc = c->serf_rpc;
	}
	if ((rc = serf_open(a->loop, rpc, c->serf_auth, &cbs, s,
	    &s->serf)) != 0) {
		log_error("bad Serf RPC address %s", rpc);
		goto fail;
	}
	serf_set_size_limit(s->serf, SYNC_SERF_EVENT_LIMIT);
	ev_timer_init(&s->info_timer, sync_info_timer_cb, c->clock, c->clock);
	ev_timer_start(a->loop, &s->info_timer);
	ev_timer_init(&s->catchup_timer, sync_catchup_timer_cb, c->clock / 2,
	    c->clock / 2);
	ev_timer_start(a->loop, &s->catchup_timer);
	ev_timer_init(&s->rec.timer, sync_recovery_timer_cb, 0., 0.);
	ev_timer_init(&s->answer_timer, sync_answer_timer_cb, 0., 0.);
	/* the first ping after a random delay in [clock/2, clock) */
	ev_timer_init(&s->ping_timer, ping_timer_cb,
	    c->clock * (0.5 + rand01() / 2.0), 0.);
	ev_timer_start(a->loop, &s->ping_timer);
	return 0;
fail:
	sync_stop(a);
	return rc;
}

void
sync_stop(struct agent *a)
{
	struct sync *s = a->sync;

	if (s == NULL)
		return;
	sync_peer_close(s);
	sync_peer_connect_abort(s);
	msgpack_sbuffer_destroy(&s->preq);
	ev_timer_stop(a->loop, &s->info_timer);
	ev_timer_stop(a->loop, &s->catchup_timer);
	ev_timer_stop(a->loop, &s->ping_timer);
	ev_timer_stop(a->loop, &s->rec.timer);
	ev_timer_stop(a->loop, &s->answer_timer);
	serf_close(s->serf);
	serfproc_stop(s->proc);
	if (s->own_run_dir) {
		char p[600];

		snprintf(p, sizeof(p), "%s/serf.json", s->run_dir);
		unlink(p);
		snprintf(p, sizeof(p), "%s/serf.log", s->run_dir);
		unlink(p);
		rmdir(s->run_dir);
	}
	msgpack_sbuffer_destroy(&s->q);
	free(s->qr);
	free(s->mem);
	free(s);
	a->sync = NULL;
}

/* ---- pass-through ---- */

int
sync_serf_send(struct agent *a, const char *name, size_t nlen,
    const uint8_t *payload, size_t len)
{
	char buf[256];

	if (a->sync == NULL || a->sync->serf == NULL)
		return -ENOTCONN;
	if (nlen >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, name, nlen);
	buf[nlen] = '\0';
	return serf_send_event(a->sync->serf, buf, payload, len);
}

void
sync_monitor_add(struct agent *a, struct sync_monitor *m)
{
	m->next = a->serf_mons;
	a->serf_mons = m;
}

void
sync_monitor_remove(struct agent *a, struct sync_monitor *m)
{
	struct sync_monitor **pp;

	for (pp = &a->serf_mons; *pp != NULL; pp = &(*pp)->next)
		if (*pp == m) {
			*pp = m->next;
			return;
		}
}

void
sync_monitor_deliver(struct agent *a, const char *name, size_t nlen,
    const uint8_t *payload, size_t len)
{
	for (struct sync_monitor *mo = a->serf_mons; mo != NULL;) {
		struct sync_monitor *next = mo->next;

		if (mo->nlen == nlen && memcmp(mo->name, name, nlen) == 0)
			mo->fn(mo, payload, len);
		mo = next;
	}
}

/* ---- for the operator actions (handlers_ops.c, metrics.c) ---- */

const struct serf_member *
sync_members(const struct agent *a, size_t *n)
{
	if (a->sync == NULL) {
		*n = 0;
		return NULL;
	}
	*n = a->sync->nmem;
	return a->sync->mem;
}

bool
sync_joined(const struct agent *a)
{
	const struct sync *s = a->sync;

	if (!sync_serf_connected(a))
		return false;
	/* nothing to join: the first node of a cluster */
	if (a->cfg.join == NULL || a->cfg.join[0] == NULL)
		return true;
	for (size_t i = 0; i < s->nmem; i++)
		if (strcmp(s->mem[i].status, "alive") == 0 &&
		    strcmp(s->mem[i].name, a->self->name) != 0)
			return true;
	return false;
}

int
sync_force_leave(struct agent *a, const char *node)
{
	if (a->sync == NULL)
		return -ENOTCONN;
	return serf_force_leave(a->sync->serf, node);
}

void
sync_get_stats(const struct agent *a, struct sync_stats *out)
{
	const struct sync *s = a->sync;

	memset(out, 0, sizeof(*out));
	if (s == NULL)
		return;
	serf_get_stats(s->serf, &out->serf);
	out->recoveries = s->stats.recoveries;
	out->retransmit_events = s->stats.retransmit_events;
	out->retransmit_entries = s->stats.retransmit_entries;
	out->missing_reports = s->stats.missing_reports;
	out->known_reports = s->stats.known_reports;
	out->catchup_items = s->stats.catchup_items;
	out->purged = s->stats.purged;
	out->recovery_running = s->rec.running;
}
