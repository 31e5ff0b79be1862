/*
 * fuzz_serf_events: libFuzzer harness for the Serf user events agent/sync.c
 * receives: `update`, `info` and `ping` payloads (and pass-through names),
 * handed to serf_user_event() exactly as serf.c hands them over, on a
 * ready in-memory agent (fuzz_sync.h: sync.c compiled in, no Serf).
 *
 * An input is a sequence of events, each
 *   u8 kind | u16 little-endian length | payload
 * where kind % 4 picks the name: 0 distkv.update, 1 distkv.info,
 * 2 distkv.ping, 3 user.other.  After the events the timers the events
 * armed run once each, as if their time had come (recovery steps,
 * answering missing ticks, the periodic info with its tombstone purge).
 *
 * Invariants, after every event:
 *   - no tick or tock beyond FUZZ_TICK_CEILING is accepted (known bug
 *     "tick-ceiling" until the agent refuses them, fuzz_pending) and,
 *     short of that, tock and ticks only grow;
 *   - a hostile event changes at most the entries it names: an entry's
 *     value, chain or tock changes only if a record of that very update
 *     event has its path; info, ping and other events change no entry;
 *   - the tree stays walkable (fuzz_agent.h);
 *   - nothing crashes, leaks or hits undefined behaviour.
 *
 * Built with -DFUZZ_MAKE_SEEDS this file is a program that writes seed
 * event sequences, packed by sync.c's own senders, into argv[1].
 */
#include "fuzz_sync.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct ev_loop *loop;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (getenv("FUZZ_VERBOSE") == NULL)
		log_set_level((enum log_level)(LOG_ERROR + 1));
	if ((loop = ev_loop_new(EVFLAG_AUTO)) == NULL)
		abort();
	return 0;
}

/* ---- what an event changed ---- */

struct seen {
	const struct entry *e;
	uint64_t print;
};

struct snap {
	struct seen *v;
	size_t n, cap;
};

static uint64_t
fnv(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * UINT64_C(0x100000001b3);
	return h;
}

static uint64_t
fingerprint(const struct entry *e)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325);
	uint64_t x[3] = { e->tock, entry_value_len(e), e->chain->n };

	h = fnv(h, x, sizeof(x));
	if (entry_has_value(e))
		h = fnv(h, entry_value(e), entry_value_len(e));
	for (unsigned i = 0; i < e->chain->n; i++) {
		h = fnv(h, &e->chain->l[i].node, sizeof(e->chain->l[i].node));
		h = fnv(h, &e->chain->l[i].tick, sizeof(e->chain->l[i].tick));
	}
	return h;
}

/* Entries with a value or chain, in walk order (entries never move). */
static void
snap_take(struct agent *a, struct snap *sn)
{
	struct tree_walk w;
	struct entry *e;

	sn->n = 0;
	tree_walk_init(&w, a->tree.root, -1);
	while ((e = tree_walk_next(&w)) != NULL) {
		if (!entry_has_value(e) && e->chain->n == 0)
			continue;
		if (sn->n == sn->cap) {
			sn->cap = sn->cap ? sn->cap * 2 : 64;
			if ((sn->v = realloc(sn->v, sn->cap *
			    sizeof(*sn->v))) == NULL)
				abort();
		}
		sn->v[sn->n].e = e;
		sn->v[sn->n].print = fingerprint(e);
		sn->n++;
	}
}

static bool
snap_has(const struct snap *sn, const struct entry *e, uint64_t print)
{
	for (size_t i = 0; i < sn->n; i++)
		if (sn->v[i].e == e)
			return sn->v[i].print == print;
	return false;
}

/* The entry a record's path names now (NULL: none). */
static const struct entry *
named_entry(struct agent *a, const msgpack_object *rec)
{
	const msgpack_object *p = proto_map_get(rec, "path");
	struct entry *e = NULL;
	bool bad_nil;

	if (p == NULL || p->type != MSGPACK_OBJECT_ARRAY)
		return NULL;
	if (tree_follow(&a->tree, a->tree.root, p, false, true, &bad_nil,
	    &e) != 0)
		return NULL;
	return e;
}

static bool
is_named(struct agent *a, const msgpack_object *m, const struct entry *e)
{
	const msgpack_object *ch;

	if (m == NULL)
		return false;
	ch = proto_map_get(m, "changes");
	if (ch == NULL)
		return named_entry(a, m) == e;
	if (ch->type != MSGPACK_OBJECT_ARRAY)
		return false;
	for (uint32_t i = 0; i < ch->via.array.size; i++)
		if (ch->via.array.ptr[i].type == MSGPACK_OBJECT_MAP &&
		    named_entry(a, &ch->via.array.ptr[i]) == e)
			return true;
	return false;
}

static void
check_changes(struct agent *a, const struct snap *before, bool upd,
    const uint8_t *payload, size_t len)
{
	struct snap after = { NULL, 0, 0 };
	msgpack_zone zone;
	msgpack_object m;
	const msgpack_object *mp = NULL;
	size_t used;

	snap_take(a, &after);
	msgpack_zone_init(&zone, 4096);
	if (upd && proto_scan(payload, len, PROTO_MAX_NESTING, &used) == 0 &&
	    used == len && proto_unpack(payload, len, &zone, &m) == 0 &&
	    m.type == MSGPACK_OBJECT_MAP)
		mp = &m;
	for (size_t i = 0; i < after.n; i++) {
		const struct entry *e = after.v[i].e;

		if (snap_has(before, e, after.v[i].print))
			continue;
		if (!is_named(a, mp, e))
			FUZZ_FAIL("a %s event changed an entry it does not "
			    "name (depth %u)", upd ? "update" : "non-update",
			    e->depth);
	}
	/* an entry that lost its value and chain (a purge) changed too */
	for (size_t i = 0; i < before->n; i++) {
		const struct entry *e = before->v[i].e;

		if (!entry_has_value(e) && e->chain->n == 0 &&
		    !is_named(a, mp, e))
			FUZZ_FAIL("an event forgot an entry it does not name");
	}
	msgpack_zone_destroy(&zone);
	free(after.v);
}

/* Run each armed timer once, as if its time had come. */
static void
run_timers(struct sync *s)
{
	for (int round = 0; round < 4; round++) {
		bool any = false;

		if (ev_is_active(&s->rec.timer)) {
			ev_timer_stop(loop, &s->rec.timer);
			sync_recovery_timer_cb(loop, &s->rec.timer, EV_TIMER);
			any = true;
		}
		if (ev_is_active(&s->answer_timer)) {
			ev_timer_stop(loop, &s->answer_timer);
			sync_answer_timer_cb(loop, &s->answer_timer, EV_TIMER);
			any = true;
		}
		if (!any)
			break;
	}
	ev_timer_stop(loop, &s->ping_timer);
	sync_info_timer_cb(loop, &s->info_timer, EV_TIMER);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct snap before;
	struct fuzz_clocks fc;
	struct agent a;
	struct sync *s = fuzz_sync_new(&a, loop, "fuzz", true);
	size_t off = 0;

	fuzz_clocks_init(&fc);
	fuzz_check_clocks(&fc, &a, data, size);
	while (off + 3 <= size) {
		static const char *other = "user.other";
		uint8_t kind = data[off] & 3;
		size_t len = (size_t)data[off + 1] | (size_t)data[off + 2] << 8;
		const char *name;

		off += 3;
		if (len > size - off)
			len = size - off;
		name = kind == 0 ? s->ev_update : kind == 1 ? s->ev_info :
		    kind == 2 ? s->ev_ping : other;
		snap_take(&a, &before);
		/* an exact copy: ASan sees any read past the payload */
		{
			uint8_t *p = malloc(len ? len : 1);

			if (p == NULL)
				abort();
			memcpy(p, data + off, len);
			serf_user_event(s, name, strlen(name), p, len, 0);
			if (!fc.wedged)
				check_changes(&a, &before, kind == 0, p, len);
			free(p);
		}
		off += len;
		fuzz_check_clocks(&fc, &a, data, size);
		fuzz_check_tree(&a);
	}
	run_timers(s);
	fuzz_check_clocks(&fc, &a, data, size);
	fuzz_check_tree(&a);
	fuzz_sync_free(&a);
	return 0;
}

#ifdef FUZZ_MAKE_SEEDS
static msgpack_sbuffer out;

static void
event(uint8_t kind, const msgpack_sbuffer *p)
{
	uint8_t h[3] = { kind, (uint8_t)p->size, (uint8_t)(p->size >> 8) };

	msgpack_sbuffer_write(&out, (const char *)h, 3);
	msgpack_sbuffer_write(&out, p->data, p->size);
}

/* What send_update sends for the queued changes of s. */
static void
pack_queued(struct sync *s, msgpack_sbuffer *sb)
{
	msgpack_packer pk;

	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	sync_pack_update_head(s, &pk, (uint32_t)s->qn);
	for (size_t i = 0; i < s->qn; i++)
		msgpack_sbuffer_write(sb, s->q.data + s->qr[i].off,
		    s->qr[i].len);
	s->qn = 0;
	s->q.size = 0;
}

/* What sync_send_info_event sends with fill. */
static void
pack_info(struct sync *s, msgpack_sbuffer *sb, uint32_t nparts,
    void (*fill)(struct sync *, msgpack_packer *, const void *))
{
	struct agent *a = s->a;
	msgpack_packer pk;

	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 3 + nparts);
	pack_str(&pk, "node");
	msgpack_pack_str_with_body(&pk, a->self->name, a->self->name_len);
	pack_str(&pk, "tick");
	msgpack_pack_uint64(&pk, a->self->tick);
	pack_str(&pk, "tock");
	msgpack_pack_uint64(&pk, a->tock);
	fill(s, &pk, NULL);
}

/* What send_ping sends: a chain (self, then the given nodes). */
static void
pack_ping(struct sync *s, msgpack_sbuffer *sb, struct node **prev, int n)
{
	struct agent *a = s->a;
	struct pingchain p;
	msgpack_packer pk;

	memset(&p, 0, sizeof(p));
	p.l[0].node = a->self;
	p.l[0].has_tick = true;
	p.l[0].tick = a->self->tick;
	for (int i = 0; i < n; i++) {
		p.l[i + 1].node = prev[i];
		p.l[i + 1].has_tick = prev[i]->has_tick;
		p.l[i + 1].tick = prev[i]->tick;
	}
	p.n = (unsigned)n + 1;
	p.tock = agent_stamp(a);
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 4);
	pack_str(&pk, "node");
	msgpack_pack_str_with_body(&pk, a->self->name, a->self->name_len);
	pack_str(&pk, "tick");
	msgpack_pack_uint64(&pk, a->self->tick);
	pack_str(&pk, "tock");
	msgpack_pack_uint64(&pk, p.tock);
	pack_str(&pk, "prev");
	if (p.n > 1)
		pack_ping_chain(&pk, &p, 1);
	else
		msgpack_pack_nil(&pk);
}

static int nseed;

static void
emit(const char *dir)
{
	fuzz_write_seed(dir, "seed", nseed++, out.data, out.size);
	out.size = 0;
}

int
main(int argc, char **argv)
{
	struct agent a;
	struct sync *s;
	msgpack_sbuffer sb;
	struct node *others[2];
	static const uint8_t v1 = 1, v2 = 2;

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	LLVMFuzzerInitialize(NULL, NULL);
	msgpack_sbuffer_init(&out);
	msgpack_sbuffer_init(&sb);
	s = fuzz_sync_new(&a, loop, "n2", true);
	others[0] = nodes_get(&a.nodes, "fuzz", 4, true);
	others[1] = nodes_get(&a.nodes, "n3", 2, true);
	node_raise_tick(others[0], 3);
	node_raise_tick(others[1], 5);

	/* updates: one change, then several in one event, then a delete */
	agent_change_local(&a, fuzz_seed_key(&a, "a", "b"), &v1, 1);
	pack_queued(s, &sb);
	event(0, &sb);
	sb.size = 0;
	agent_change_local(&a, fuzz_seed_key(&a, "a", "b"), &v2, 1);
	agent_change_local(&a, fuzz_seed_key(&a, "c", NULL), &v1, 1);
	agent_change_local(&a, fuzz_seed_key(&a, "a", "d"), &v2, 1);
	pack_queued(s, &sb);
	event(0, &sb);
	sb.size = 0;
	emit(argv[1]);
	agent_change_local(&a, fuzz_seed_key(&a, "c", NULL), NULL, 0);
	pack_queued(s, &sb);
	event(0, &sb);
	sb.size = 0;
	/* info: ticks and done, then missing */
	pack_info(s, &sb, 2, fill_periodic);
	event(1, &sb);
	sb.size = 0;
	emit(argv[1]);
	ranges_add(&others[1]->known, 1, 3);
	pack_info(s, &sb, 1, sync_fill_missing);
	event(1, &sb);
	sb.size = 0;
	emit(argv[1]);
	/* pings: a short chain, then one with this node in it */
	pack_ping(s, &sb, others + 1, 1);
	event(2, &sb);
	sb.size = 0;
	pack_ping(s, &sb, others, 2);
	event(2, &sb);
	sb.size = 0;
	emit(argv[1]);
	/* a split: info with a reason (the sane chain) */
	s->rec.sane.n = 2;
	s->rec.sane.tock = a.tock;
	s->rec.sane.l[0].node = a.self;
	s->rec.sane.l[0].has_tick = true;
	s->rec.sane.l[0].tick = a.self->tick;
	s->rec.sane.l[1].node = others[0];
	s->rec.sane.l[1].has_tick = true;
	s->rec.sane.l[1].tick = 3;
	pack_info(s, &sb, 2, sync_fill_reason);
	event(1, &sb);
	sb.size = 0;
	emit(argv[1]);
	/* a pass-through event */
	msgpack_sbuffer_write(&sb, "\xa1x", 2);
	event(3, &sb);
	emit(argv[1]);
	fuzz_sync_free(&a);
	msgpack_sbuffer_destroy(&sb);
	msgpack_sbuffer_destroy(&out);
	return 0;
}
#endif
