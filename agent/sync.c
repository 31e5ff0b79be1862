/* sync: see sync.h. */
#include <errno.h>
#include <netdb.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ev.h>
#include <sodium.h>

#include "agent.h"
#include "distkv.h"
#include "forget.h"
#include "joinwatch.h"
#include "log.h"
#include "proto.h"
#include "ranges.h"
#include "serf.h"
#include "serfproc.h"
#include "server.h"
#include "memberlog.h"
#include "sync.h"
#include "transport.h"

/*
 * Gossip carries an event quickly only if name + payload stay under about
 * 1350 bytes (serf-notes §5); keep a margin for the payload's envelope.
 */
#define SYNC_EVENT_BUDGET 1200
/* Serf loses events beyond a few tens per second: at most this many
 * update events per second; the rest is left to catch-up. */
#define SYNC_EVENTS_PER_SEC 40.0
#define SYNC_EVENT_BURST 20.0
/* Ticks asked for in one catch-up request. */
#define SYNC_MAX_TICKS 20000
#define SYNC_PEER_TIMEOUT_MS 1000
/* Ticks a node skips after downloading its own lost data (see below). */
#define SYNC_TICK_JUMP 100000
/* Times a holder sends entries with a wiped node's skipped ticks again. */
#define SYNC_SKIP_RESENDS 3
/* Catch-up rounds that gain nothing back off up to this (seconds). */
#define SYNC_CATCHUP_MAX_BACKOFF 5.0
/*
 * While a split recovery runs, missing ticks are left to Serf (spec
 * §3.10-3.11) for this many clocks before the peer port pulls them: the
 * first answer of a recovery comes about half a clock after the collision.
 */
#define SYNC_CATCHUP_GRACE 1.0
/* One answering round sends at most this many entries again over Serf;
 * the rest is left to catch-up, and looks at most this many ticks. */
#define SYNC_RETRANSMIT_MAX 200
#define SYNC_ANSWER_TICKS 100000
/*
 * Serf gossips queued events every 200 ms (LAN profile), so a node that
 * answers missing reports sooner than that after another cannot have
 * heard the other's retransmissions.  At a short clock the spec's
 * staggered waits (0, c/4, 3c/8, ... : 0, 50, 75 ms at clock 0.2) let
 * every node answer the same report: the split test saw 6 update events
 * for 10 changes on 4 nodes, over the spec's N+1.  So the answer at
 * position p of the chain waits at least p times this, and a node off
 * the chain waits for the whole chain first (start_answering).
 */
#define SYNC_HEAR_S 0.25
/* (time, tock) samples kept to find "the tock of keep seconds ago" */
#define SYNC_TOCK_SAMPLES 64
/*
 * Periodic infos per clock in the whole cluster, not per node.  Every info
 * carries every node's tick and done, so one per node and clock is N
 * events of N entries each clock: measured at 50 nodes (bench_cluster,
 * bench/README.md), Serf's gossip could not carry them, its 512-LTime
 * window ran out ("received old event distkv.info") and raw events took
 * up to 30 s.  Any one info shows every node what it lacks of any node,
 * so a few per clock keep the detection of a lost change at about a
 * clock; clusters of up to this many nodes send one per node and clock.
 */
#define SYNC_INFOS_PER_CLOCK 3.0

struct qrec {
	size_t off, len;
	uint64_t tick;
};

/* A ping chain (spec §3.5): newest first; nodes may repeat; a node whose
 * tick was nil has no tick. */
#define PING_MAX 16
struct pinglink {
	struct node *node;
	bool has_tick;
	uint64_t tick;
};
struct pingchain {
	unsigned n;
	uint64_t tock;
	struct pinglink l[PING_MAX];
};

struct sync {
	struct agent *a;
	struct serfproc *proc;
	struct serf *serf;
	char run_dir[512];
	bool own_run_dir;
	char ev_update[96], ev_info[96], ev_ping[96];
	struct pingchain last_ping;	/* L: the last accepted ping */
	ev_timer ping_timer;
	uint64_t pings_sent, collisions;

	msgpack_sbuffer q;		/* encoded local change records */
	struct qrec *qr;
	size_t qn, qcap;
	double tokens;
	ev_tstamp refill;

	struct serf_member *mem;
	size_t nmem;
	unsigned rr;

	ev_timer info_timer, catchup_timer;
	unsigned info_wait;		/* clocks until the next periodic info */
	struct joinwatch joinwatch;	/* why we are alone (joinwatch.h) */

	distkv *peer;			/* one peer request at a time */
	ev_io peer_io;
	bool downloading;
	struct record_ctx ctx;
	uint64_t peer_items;
	ev_tstamp peer_started;
	bool peer_done;			/* its end arrived: close it */
	/* a peer connection being made, without blocking the loop */
	int pfd;			/* -1: none */
	ev_io connect_io;
	msgpack_sbuffer preq;		/* the request to send once connected */
	char pname[SERF_NAME_MAX + 1];
	char refused[SERF_NAME_MAX + 1];	/* the last peer that refused */
	ev_tstamp refused_until;

	/* split recovery (spec §3.10): one at a time */
	struct recovery {
		bool running;
		unsigned step;		/* next: 1 ticks, 2 missing, 3 answer */
		unsigned pos;		/* our place on the sane chain */
		bool replace;		/* the sane chain won the collision */
		bool got_ticks;		/* another node sent its ticks */
		bool got_missing;	/* another node sent its missing */
		struct pingchain sane;
		ev_timer timer;
	} rec;
	/* answering missing reports (spec §3.11): one at a time */
	bool answering, answer_again;
	ev_timer answer_timer;
	ev_tstamp missing_since;	/* 0: nothing missing */
	struct {
		uint64_t recoveries, retransmit_events, retransmit_entries;
		uint64_t missing_reports, known_reports, catchup_items;
		uint64_t purged;
	} stats;
	/* (time, tock) samples for --tombstone-keep */
	struct {
		ev_tstamp at;
		uint64_t tock;
	} samples[SYNC_TOCK_SAMPLES];
	unsigned nsamples;
	ev_tstamp next_purge;		/* the next tree walk for purges */

	uint64_t announce_from, announce_to;	/* skipped own ticks */
	bool last_gained;		/* the last catch-up brought something */
	bool catching_up;		/* the running peer request is one */
	double backoff;			/* seconds between fruitless rounds */
	ev_tstamp next_catchup;
};

#define container_of(p, type, member) \
	((type *)(void *)((char *)(p) - offsetof(type, member)))

static void sync_peer_close(struct sync *s);
static void raise_tock(struct agent *a, const msgpack_object *m);

/* ---- helpers ---- */

static void
pack_str(msgpack_packer *pk, const char *s)
{
	msgpack_pack_str_with_body(pk, s, strlen(s));
}

static void
pack_bool(msgpack_packer *pk, bool b)
{
	if (b)
		msgpack_pack_true(pk);
	else
		msgpack_pack_false(pk);
}

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
static void
pack_update_head(struct sync *s, msgpack_packer *pk, uint32_t n)
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

static bool
take_token(struct sync *s)
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
	pack_update_head(s, &pk, (uint32_t)(to - from));
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
				if (!take_token(s))
					break;
				send_update(s, from, i);
				from = i;
				size = 64;
			}
			size += len;
		}
		if (from < s->qn && take_token(s)) {
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
static void
send_info_event(struct sync *s, uint32_t nparts,
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
	const struct nodes *ns = &s->a->nodes;
	uint32_t n = 0;

	for (size_t i = 0; i < ns->n; i++)
		n += ns->by_index[i]->has_tick;
	pack_str(pk, "ticks");
	msgpack_pack_map(pk, n);
	for (size_t i = 0; i < ns->n; i++) {
		const struct node *nd = ns->by_index[i];

		if (!nd->has_tick)
			continue;
		msgpack_pack_str_with_body(pk, nd->name, nd->name_len);
		msgpack_pack_uint64(pk, nd->tick);
	}
}

/*
 * `done`: for every node, the end of the run of its ticks from 1 that we
 * have all seen.  What every node reports this way decides when a
 * tombstone may be purged (purge_tombstones).
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

static void
send_info(struct sync *s)
{
	send_info_event(s, 2 + (s->announce_to > 0), fill_periodic, NULL);
}

/* Recovery step 1: our ticks and the sane ping chain as the reason. */
static void
fill_reason(struct sync *s, msgpack_packer *pk, const void *arg)
{
	const struct pingchain *c = &s->rec.sane;

	(void)arg;
	pack_ticks(s, pk);
	pack_str(pk, "reason");
	msgpack_pack_map(pk, 4 + c->l[0].has_tick);
	pack_str(pk, "node");
	msgpack_pack_str_with_body(pk, c->l[0].node->name,
	    c->l[0].node->name_len);
	if (c->l[0].has_tick) {
		pack_str(pk, "tick");
		msgpack_pack_uint64(pk, c->l[0].tick);
	}
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
static void
fill_missing(struct sync *s, msgpack_packer *pk, const void *arg)
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

static double
rand01(void)
{
	return (double)randombytes_uniform(1000000) / 1000000.0;
}

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
static bool
ping_tail_eq(const struct pingchain *a, unsigned ai,
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

static void
ping_reschedule(struct sync *s)
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
	pack_str(pk, "node");
	msgpack_pack_str_with_body(pk, c->l[i].node->name,
	    c->l[i].node->name_len);
	if (c->l[i].has_tick) {
		pack_str(pk, "tick");
		msgpack_pack_uint64(pk, c->l[i].tick);
	}
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
	ping_reschedule(s);
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
static bool
ping_decode(struct sync *s, const msgpack_object *m, struct pingchain *out)
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

/* ---- split recovery (spec §3.10) and answering (§3.11) ---- */

/* Index (0-based) of this node in chain c, -1 if absent. */
static int
chain_position(const struct sync *s, const struct pingchain *c)
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

static void
start_answering(struct sync *s)
{
	const struct pingchain *c = s->rec.running ? &s->rec.sane :
	    &s->last_ping;
	int pos = chain_position(s, c);
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
	if (e->value == NULL)
		msgpack_pack_nil(&pk);
	else
		msgpack_sbuffer_write(out, (const char *)e->value,
		    e->value_len);
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
	if ((x->tokens = take_token(s))) {
		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		pack_update_head(s, &pk, x->inbatch);
		msgpack_sbuffer_write(&sb, x->batch.data, x->batch.size);
		if (serf_send_event(s->serf, s->ev_update,
		    (const uint8_t *)sb.data, sb.size) == 0) {
			s->stats.retransmit_events++;
			s->stats.retransmit_entries += x->inbatch;
		}
		msgpack_sbuffer_destroy(&sb);
	}
	x->batch.size = 0;
	x->inbatch = 0;
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
 * (download_done).  Entries with some of those ticks may still live here:
 * made before the wipe and received only by nodes the wiped one could not
 * reach when it downloaded.  Nobody will ever report them missing, so
 * send them again, once per announcement (hardening issue, item 16).
 */
static void
resend_skipped(struct sync *s, const msgpack_object *from,
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
		send_info_event(s, 1, fill_known, x);
		s->stats.known_reports++;
	}
	for (size_t i = 0; i < nn; i++)
		ranges_fini(&x->sup[i]);
	free(x->sup);
	msgpack_sbuffer_destroy(&x->batch);
	msgpack_sbuffer_destroy(&x->one);
	free(x);
}

static void
answer_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct sync *s = container_of(w, struct sync, answer_timer);

	(void)loop;
	(void)revents;
	answer_round(s);
	s->answering = false;
	if (s->answer_again) {
		s->answer_again = false;
		start_answering(s);
	}
}

static void
start_recovery(struct sync *s, unsigned pos, const struct pingchain *sane,
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

static void
recovery_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
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
			send_info_event(s, 2, fill_reason, NULL);
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
			send_info_event(s, 1, fill_missing, NULL);
			s->stats.missing_reports++;
		}
		r->step = 3;
		arm(s, &r->timer, pos_wait(s, 1.0, r->pos));
		break;
	default:
		start_answering(s);
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
static void
handle_ping(struct sync *s, const msgpack_object *m)
{
	struct agent *a = s->a;
	struct pingchain p, old;
	bool take;
	int pos;

	if (!ping_decode(s, m, &p) || p.l[0].node == a->self)
		return;
	raise_tock(a, m);
	if (s->last_ping.n == 0 || (p.n > 1 &&
	    ping_tail_eq(&p, 1, &s->last_ping, 0)) ||
	    (p.n == 1 && s->last_ping.n <= 2)) {
		s->last_ping = p;
		ping_reschedule(s);
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
		ping_reschedule(s);
	}
	/*
	 * Two chains after one another: a split healing (or two pings
	 * crossing).  The nodes of the old chain run split recovery in
	 * the order of their positions (spec §3.8 step 3).
	 */
	if (agent_ready(a) && p.l[0].has_tick && old.l[0].has_tick &&
	    (pos = chain_position(s, &old)) >= 0)
		start_recovery(s, (unsigned)pos, &old, !take);
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
		pack_str(pk, "node");
		msgpack_pack_str_with_body(pk, c->l[i].node->name,
		    c->l[i].node->name_len);
		if (c->l[i].has_tick) {
			pack_str(pk, "tick");
			msgpack_pack_uint64(pk, c->l[i].tick);
		}
	}
}

/* ---- receiving ---- */

static void
raise_tock(struct agent *a, const msgpack_object *m)
{
	uint64_t t;

	if (proto_get_tock(proto_map_get(m, "tock"), &t) == 0 && t > a->tock)
		a->tock = t;
}

/* A (node, tick) pair from a message: the node's tick rises to it. */
static void
raise_node_tick(struct agent *a, const msgpack_object *name,
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
		raise_node_tick(a, proto_map_get(rec, "node"),
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
}

static void
handle_update(struct sync *s, const msgpack_object *m)
{
	const msgpack_object *ch = proto_map_get(m, "changes");

	raise_tock(s->a, m);
	raise_node_tick(s->a, proto_map_get(m, "node"),
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
			(void)ranges_add_all(&n->remote_missing, &rs);
			(void)ranges_add_all(&n->seen_missing, &rs);
			any = true;
		}
		ranges_fini(&rs);
	}
	if (any)
		start_answering(s);
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
	    !ping_decode(s, reason, &c))
		return;
	if (rep != NULL && rep->type == MSGPACK_OBJECT_BOOLEAN &&
	    rep->via.boolean) {
		s->last_ping = c;
		ping_reschedule(s);
	}
	if ((pos = chain_position(s, &s->last_ping)) < 0)
		return;
	start_recovery(s, (unsigned)pos, &s->last_ping, false);
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

	raise_tock(s->a, m);
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
			resend_skipped(s, proto_map_get(m, "node"), known);
	}
	if (has_ticks)
		for (uint32_t i = 0; i < ticks->via.map.size; i++)
			raise_node_tick(s->a, &ticks->via.map.ptr[i].key,
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
			handle_ping(s, &m);
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
		send_info(s);
}

/* ---- peer requests: download and catch-up ---- */

/* An alive peer with a peer port, preferring the node named want. */
static const struct serf_member *
pick_peer(struct sync *s, const char *want)
{
	const struct serf_member *best = NULL;

	for (size_t k = 0; k < s->nmem; k++) {
		const struct serf_member *m = &s->mem[(s->rr + k) % s->nmem];

		if (strcmp(m->status, "alive") != 0 || m->peer[0] == '\0' ||
		    strcmp(m->name, s->a->self->name) == 0)
			continue;
		/* it just said it has no data: ask the others first */
		if (ev_now(s->a->loop) < s->refused_until &&
		    strcmp(m->name, s->refused) == 0)
			continue;
		if (want != NULL && strcmp(m->name, want) == 0)
			return m;
		if (best == NULL)
			best = m;
	}
	s->rr++;
	return best;
}

static int
ignore_reply(void *arg, const uint8_t *msg, size_t len)
{
	(void)arg;
	(void)msg;
	(void)len;
	return 0;
}

/*
 * On a connected socket: read the greeting and, if the peer asks for it,
 * prove the cluster key.  Both are answered at once by a reachable peer;
 * the bound is SYNC_PEER_TIMEOUT_MS.
 */
static int
peer_login(struct sync *s, int fd)
{
	const struct agent *a = s->a;
	const msgpack_object *chal;
	msgpack_zone zone;
	msgpack_object g;
	const void *gb;
	size_t glen;
	int rc;

	if ((rc = distkv_connect_fd(fd, SYNC_PEER_TIMEOUT_MS, &s->peer)) != 0) {
		log_debug("peer %s: %s", s->pname, distkv_strerror(rc));
		return rc;
	}
	distkv_set_timeout(s->peer, SYNC_PEER_TIMEOUT_MS);
	gb = distkv_greeting(s->peer, &glen);
	msgpack_zone_init(&zone, 1024);
	rc = proto_unpack(gb, glen, &zone, &g);
	chal = rc == 0 ? proto_map_get(&g, "challenge") : NULL;
	if (chal != NULL) {
		uint8_t mac[crypto_auth_hmacsha256_BYTES];
		msgpack_sbuffer sb;
		msgpack_packer pk;

		if (!a->cfg.has_cluster_key || chal->type != MSGPACK_OBJECT_BIN) {
			log_warn("peer %s wants a cluster key we do not have",
			    s->pname);
			rc = -EACCES;
		} else {
			crypto_auth_hmacsha256(mac,
			    (const uint8_t *)chal->via.bin.ptr,
			    chal->via.bin.size, a->cfg.cluster_key);
			msgpack_sbuffer_init(&sb);
			msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
			msgpack_pack_map(&pk, 3);
			pack_str(&pk, "action");
			pack_str(&pk, "peer_auth");
			pack_str(&pk, "node");
			msgpack_pack_str_with_body(&pk, a->self->name,
			    a->self->name_len);
			pack_str(&pk, "mac");
			msgpack_pack_bin_with_body(&pk, mac, sizeof(mac));
			rc = distkv_request(s->peer, sb.data, sb.size,
			    ignore_reply, NULL);
			msgpack_sbuffer_destroy(&sb);
			if (rc != 0)
				log_warn("peer %s refused our cluster key: %s",
				    s->pname, distkv_errmsg(s->peer));
		}
	}
	msgpack_zone_destroy(&zone);
	if (rc != 0) {
		distkv_close(s->peer);
		s->peer = NULL;
	}
	return rc;
}

static void
peer_update_io(struct sync *s)
{
	int ev = EV_READ | (distkv_want_write(s->peer) ? EV_WRITE : 0);

	if (ev_is_active(&s->peer_io) && s->peer_io.events == ev)
		return;
	ev_io_stop(s->a->loop, &s->peer_io);
	ev_io_set(&s->peer_io, distkv_fd(s->peer), ev);
	ev_io_start(s->a->loop, &s->peer_io);
}

static void
sync_peer_close(struct sync *s)
{
	if (s->peer == NULL)
		return;
	ev_io_stop(s->a->loop, &s->peer_io);
	distkv_close(s->peer);
	s->peer = NULL;
}

static void
download_done(struct sync *s)
{
	struct agent *a = s->a;

	s->downloading = false;
	/* spec §3.9, C recommendation: max(reported, 0), never reuse */
	if (!a->self->has_tick)
		node_raise_tick(a->self, 0);
	else if (a->self->tick > 0) {
		/*
		 * This node existed before and lost its data (no state dir):
		 * changes it made that no reachable peer saw have ticks above
		 * what the download says.  Jump past them so no tick is ever
		 * used twice, and announce the skipped ones as known (they
		 * hold nothing), so nobody waits for them.
		 */
		uint64_t from = a->self->tick + 1, to = from + SYNC_TICK_JUMP;

		ranges_add(&a->self->known, from, to);
		/* here too: "known" but not seen by all (agent_decide) */
		ranges_add(&a->self->skipped, from, to);
		node_raise_tick(a->self, to - 1);
		log_info("restarted without data: ticks %llu-%llu skipped",
		    (unsigned long long)from, (unsigned long long)(to - 1));
		s->announce_from = from;
		s->announce_to = to;
	}
	log_info("download complete: %llu records, tick %llu",
	    (unsigned long long)s->peer_items,
	    (unsigned long long)a->self->tick);
	agent_became_ready(a);
}

/* One reply message of the running peer request. */
static int
peer_message(void *arg, const uint8_t *msg, size_t len)
{
	struct sync *s = arg;
	struct agent *a = s->a;
	msgpack_zone zone;
	msgpack_object m;
	const msgpack_object *st, *err;
	const char *why;
	bool applied, end = false;

	msgpack_zone_init(&zone, 4096);
	if (proto_unpack(msg, len, &zone, &m) != 0 ||
	    m.type != MSGPACK_OBJECT_MAP) {
		msgpack_zone_destroy(&zone);
		return 1;
	}
	st = proto_map_get(&m, "state");
	err = proto_map_get(&m, "error");
	if (err != NULL) {
		log_info("peer %s refused: %.*s", s->pname,
		    err->type == MSGPACK_OBJECT_STR ? (int)err->via.str.size : 1,
		    err->type == MSGPACK_OBJECT_STR ? err->via.str.ptr : "?");
		/* the request is over; the timer asks another peer */
		snprintf(s->refused, sizeof(s->refused), "%s", s->pname);
		s->refused_until = ev_now(a->loop) + 2 * a->cfg.clock;
		s->peer_done = true;
		s->catching_up = false;
		s->downloading = false;
	} else if (st != NULL) {
		end = proto_str_eq(st, "end");
	} else {
		raise_tock(a, &m);
		if (agent_apply_record(a, &s->ctx, &m, ORIGIN_REMOTE, &applied,
		    &why) != 0)
			log_warn("bad record from peer: %s", why);
		s->peer_items++;
		if (s->catching_up)
			s->stats.catchup_items++;
	}
	msgpack_zone_destroy(&zone);
	if (end) {
		/* the request is over: the connection goes with it, closed by
		 * peer_io_cb (not from inside the library's callback) */
		s->peer_done = true;
		if (s->catching_up && s->peer_items > 0)
			s->last_gained = true;
		s->catching_up = false;
		if (s->downloading)
			download_done(s);
	}
	return 0;
}

static void
peer_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct sync *s = container_of(w, struct sync, peer_io);
	int rc;

	(void)loop;
	(void)revents;
	rc = distkv_process(s->peer);
	if (rc != 0 || s->peer_done) {
		if (rc != 0)
			log_info("peer request ended: %s", distkv_strerror(rc));
		if (rc != 0 && s->downloading)
			s->downloading = false;	/* retried by the timer */
		sync_peer_close(s);
		return;
	}
	peer_update_io(s);
}

/* Give up a connection that is being made. */
static void
peer_connect_abort(struct sync *s)
{
	if (s->pfd < 0)
		return;
	ev_io_stop(s->a->loop, &s->connect_io);
	close(s->pfd);
	s->pfd = -1;
	s->downloading = false;
}

/* The non-blocking connect finished: log in, send the request. */
static void
peer_connected_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct sync *s = container_of(w, struct sync, connect_io);
	int fd = s->pfd, err = 0, rc;
	socklen_t elen = sizeof(err);

	(void)revents;
	ev_io_stop(loop, w);
	s->pfd = -1;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0 ||
	    err != 0) {
		log_debug("peer %s: connect: %s", s->pname,
		    strerror(err != 0 ? err : errno));
		close(fd);
		s->downloading = false;
		return;
	}
	/* peer_login owns fd now */
	if (peer_login(s, fd) != 0 ||
	    (rc = distkv_async_request(s->peer, s->preq.data, s->preq.size,
	    peer_message, s, NULL)) != 0) {
		sync_peer_close(s);
		s->downloading = false;
		return;
	}
	ev_io_init(&s->peer_io, peer_io_cb, distkv_fd(s->peer), EV_READ);
	peer_update_io(s);
}

/*
 * Start a request to a peer; replies go to peer_message.  The TCP connect
 * runs on the loop: an unreachable peer (a partition) costs the local
 * clients nothing, and is given up after SYNC_PEER_TIMEOUT_MS.
 */
static int
peer_request(struct sync *s, const struct serf_member *m,
    const msgpack_sbuffer *req)
{
	struct addrinfo *ai;
	int fd, rc;

	if ((fd = transport_tcp_socket(m->peer, false, &ai)) < 0)
		return fd;
	rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
	freeaddrinfo(ai);
	if (rc != 0 && errno != EINPROGRESS) {
		rc = -errno;
		close(fd);
		return rc;
	}
	snprintf(s->pname, sizeof(s->pname), "%s", m->name);
	s->preq.size = 0;
	msgpack_sbuffer_write(&s->preq, req->data, req->size);
	s->peer_items = 0;
	s->peer_done = false;
	s->ctx.base = s->a->tree.root;
	s->ctx.last = s->a->tree.root;
	s->peer_started = ev_now(s->a->loop);
	s->pfd = fd;
	ev_io_init(&s->connect_io, peer_connected_cb, fd, EV_WRITE);
	ev_io_start(s->a->loop, &s->connect_io);
	return 0;
}

static void
start_download(struct sync *s)
{
	const struct serf_member *m = pick_peer(s, NULL);
	msgpack_sbuffer sb;
	msgpack_packer pk;

	if (m == NULL)
		return;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 1);
	pack_str(&pk, "action");
	pack_str(&pk, "dump");
	s->downloading = true;
	log_info("downloading the tree from %s (%s)", m->name, m->peer);
	if (peer_request(s, m, &sb) != 0)
		s->downloading = false;
	msgpack_sbuffer_destroy(&sb);
}

/*
 * Whom to ask for want's ticks: a random alive peer whose last `done`
 * report is ahead of ours for want (it holds ticks we lack), else want
 * itself.  Asking want first made every node ask the writer of a bulk
 * load at once, which then served N-1 catch-ups of every key
 * (bench/README.md, 20 and 50 nodes).
 */
static const char *
catchup_source(struct sync *s, const struct node *want)
{
	uint64_t mine = ranges_prefix(&want->known);
	const char *pick = NULL;
	uint32_t seen = 0;

	for (size_t k = 0; k < s->nmem; k++) {
		const struct serf_member *m = &s->mem[k];
		const struct node *nd;

		if (strcmp(m->status, "alive") != 0 || m->peer[0] == '\0' ||
		    strcmp(m->name, s->a->self->name) == 0 ||
		    strcmp(m->name, want->name) == 0)
			continue;
		nd = nodes_get(&s->a->nodes, m->name, strlen(m->name), false);
		if (nd == NULL || !nd->has_report ||
		    want->index >= nd->nreport ||
		    nd->report[want->index] <= mine)
			continue;
		/* each candidate equally likely (reservoir sampling) */
		if (randombytes_uniform(++seen) == 0)
			pick = m->name;
	}
	return pick != NULL ? pick : want->name;
}

/*
 * Ask a peer for every tick we know exists but have not seen.  The peer
 * answers with the entries that hold them (their current state, which
 * descends from the missing change) and reports superseded ones as known.
 */
static void
start_catchup(struct sync *s)
{
	struct agent *a = s->a;
	struct ranges miss;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	const struct serf_member *m;
	const struct node *want = NULL;
	uint64_t most = 0, total = 0;
	uint32_t nn = 0;

	ranges_init(&miss);
	for (size_t i = 0; i < a->nodes.n; i++) {
		struct node *nd = a->nodes.by_index[i];
		uint64_t c;

		if (!nd->has_tick || nd->tick == 0)
			continue;
		ranges_missing(&nd->known, nd->tick, &miss);
		if ((c = ranges_count(&miss)) == 0)
			continue;
		nn++;
		total += c;
		if (c > most) {
			most = c;
			want = nd;
		}
	}
	if (nn == 0) {
		s->backoff = 0;
		s->missing_since = 0;
		ranges_fini(&miss);
		return;
	}
	/* during a split recovery, Serf retransmissions get the first
	 * chance; other losses are pulled at once */
	if (s->missing_since == 0)
		s->missing_since = ev_now(a->loop);
	if (s->rec.running && ev_now(a->loop) - s->missing_since <
	    SYNC_CATCHUP_GRACE * a->cfg.clock) {
		ranges_fini(&miss);
		return;
	}
	/*
	 * Ticks nobody holds (lost with a node's disk) would be asked for
	 * forever: after a round that brought nothing, wait longer, up to
	 * SYNC_CATCHUP_MAX_BACKOFF; any progress resets the wait.
	 */
	if (ev_now(a->loop) < s->next_catchup) {
		ranges_fini(&miss);
		return;
	}
	if (s->last_gained)
		s->backoff = 0;
	else
		s->backoff = s->backoff == 0 ? a->cfg.clock :
		    s->backoff * 2 > SYNC_CATCHUP_MAX_BACKOFF ?
		    SYNC_CATCHUP_MAX_BACKOFF : s->backoff * 2;
	s->next_catchup = ev_now(a->loop) + s->backoff;
	s->last_gained = false;
	if ((m = pick_peer(s, catchup_source(s, want))) == NULL) {
		ranges_fini(&miss);
		return;
	}
	log_info("catch-up: %llu missing events of %u nodes, asking %s",
	    (unsigned long long)total, nn, m->name);
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 2);
	pack_str(&pk, "action");
	pack_str(&pk, "get_events");
	pack_str(&pk, "ranges");
	msgpack_pack_map(&pk, nn);
	for (size_t i = 0; i < a->nodes.n; i++) {
		struct node *nd = a->nodes.by_index[i];

		if (!nd->has_tick || nd->tick == 0)
			continue;
		ranges_missing(&nd->known, nd->tick, &miss);
		if (ranges_empty(&miss))
			continue;
		msgpack_pack_str_with_body(&pk, nd->name, nd->name_len);
		ranges_pack(&pk, &miss);
	}
	ranges_fini(&miss);
	if (peer_request(s, m, &sb) == 0)
		s->catching_up = true;
	msgpack_sbuffer_destroy(&sb);
}

/* ---- tombstones (docs/cluster.md, "Tombstones") ---- */

/* Remember (time, tock) now and then: which tock is "keep seconds ago". */
static void
sample_tock(struct sync *s)
{
	ev_tstamp now = ev_now(s->a->loop);
	double every = s->a->cfg.tombstone_keep / (SYNC_TOCK_SAMPLES / 2);
	unsigned last = (s->nsamples + SYNC_TOCK_SAMPLES - 1) %
	    SYNC_TOCK_SAMPLES;

	if (s->nsamples > 0 && now - s->samples[last].at < every)
		return;
	s->samples[s->nsamples % SYNC_TOCK_SAMPLES].at = now;
	s->samples[s->nsamples % SYNC_TOCK_SAMPLES].tock = s->a->tock;
	s->nsamples++;
}

/* The tock this node had keep seconds ago (0: not running that long). */
static uint64_t
tock_keep_ago(const struct sync *s)
{
	ev_tstamp then = ev_now(s->a->loop) - s->a->cfg.tombstone_keep;
	unsigned n = s->nsamples < SYNC_TOCK_SAMPLES ? s->nsamples :
	    SYNC_TOCK_SAMPLES;
	uint64_t best = 0;

	if (s->a->cfg.tombstone_keep <= 0)
		return s->a->tock;
	for (unsigned i = 0; i < n; i++)
		if (s->samples[i].at <= then && s->samples[i].tock > best)
			best = s->samples[i].tock;
	return best;
}

/*
 * Raise every node's purge floor: the ticks every node has reported seen.
 * Only when every node that may hold data has reported: every node that
 * ever had a tick and every Serf member, whatever its status (one that is
 * down or left may come back with its state dir).  And only when this
 * node has seen everything each of them had made when it reported: a
 * change made concurrently with a delete, before its maker saw the
 * delete, is then here already and was weighed against the tombstone.
 * Returns false when the floors could not be raised.
 */
static bool
raise_floors(struct sync *s)
{
	struct nodes *ns = &s->a->nodes;
	uint64_t *f;

	for (size_t i = 0; i < s->nmem; i++) {
		const struct serf_member *m = &s->mem[i];
		const struct node *r = nodes_get(ns, m->name, strlen(m->name),
		    false);

		if (r != s->a->self && (r == NULL || !r->has_report) &&
		    !forget_skips(s->a, m->name, strlen(m->name)))
			return false;
	}
	if ((f = calloc(ns->n ? ns->n : 1, sizeof(*f))) == NULL)
		return false;
	for (size_t x = 0; x < ns->n; x++)
		f[x] = ranges_prefix(&ns->by_index[x]->known);
	for (size_t i = 0; i < ns->n; i++) {
		const struct node *r = ns->by_index[i];

		if (r == s->a->self || (!r->has_tick && !r->has_report) ||
		    forget_skips(s->a, r->name, r->name_len))
			continue;
		if (!r->has_report || ranges_prefix(&r->known) <
		    (r->index < r->nreport ? r->report[r->index] : 0)) {
			free(f);
			return false;
		}
		for (size_t x = 0; x < ns->n; x++) {
			uint64_t d = x < r->nreport ? r->report[x] : 0;

			if (d < f[x])
				f[x] = d;
		}
	}
	for (size_t x = 0; x < ns->n; x++)
		if (f[x] > ns->by_index[x]->floor)
			ns->by_index[x]->floor = f[x];
	free(f);
	return true;
}

/*
 * Forget tombstones whose delete every node has seen (head tick at or
 * below its node's floor) and that are older than --tombstone-keep.  A
 * late copy of anything they superseded is stale by the same floor
 * (agent_decide), so nothing comes back to life.
 */
static void
purge_tombstones(struct sync *s)
{
	struct agent *a = s->a;
	struct tree_walk w;
	struct entry *e;
	uint64_t limit, n = 0;

	sample_tock(s);
	if (!agent_ready(a) || !raise_floors(s) || a->tombstones == 0 ||
	    (limit = tock_keep_ago(s)) == 0)
		return;
	/*
	 * The walk visits the whole tree: not every clock when tombstones
	 * must be kept long anyway (a tenth of --tombstone-keep late at
	 * most).
	 */
	if (ev_now(a->loop) < s->next_purge)
		return;
	s->next_purge = ev_now(a->loop) + a->cfg.tombstone_keep / 10;
	tree_walk_init(&w, a->tree.root, -1);
	while ((e = tree_walk_next(&w)) != NULL) {
		struct update u;

		if (e->value != NULL || e->chain->n == 0 || e->tock > limit ||
		    e->chain->l[0].tick > e->chain->l[0].node->floor)
			continue;
		memset(&u, 0, sizeof(u));
		u.entry = e;
		if (agent_commit(a, &u, ORIGIN_PURGE) == APPLY_ACCEPTED)
			n++;
	}
	if (n > 0) {
		s->stats.purged += n;
		log_info("purged %llu tombstones every node has seen",
		    (unsigned long long)n);
	}
}

/*
 * Clocks until this node's next periodic info: about alive members /
 * SYNC_INFOS_PER_CLOCK on average, drawn at random so that the nodes do
 * not fall into step; 1 in small clusters.
 */
static unsigned
next_info_wait(const struct sync *s)
{
	double m;
	size_t alive = 0;

	for (size_t i = 0; i < s->nmem; i++)
		alive += strcmp(s->mem[i].status, "alive") == 0;
	m = (double)alive / SYNC_INFOS_PER_CLOCK;
	if (m <= 1.0)
		return 1;
	return 1 + (unsigned)(rand01() * (2.0 * m - 1.0));
}

static void
info_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct sync *s = container_of(w, struct sync, info_timer);

	(void)loop;
	(void)revents;
	if (s->info_wait > 1)
		s->info_wait--;
	else {
		send_info(s);
		s->info_wait = next_info_wait(s);
	}
	purge_tombstones(s);
}

static void
catchup_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct sync *s = container_of(w, struct sync, catchup_timer);

	(void)loop;
	(void)revents;
	{
		char serf_log[600];

		snprintf(serf_log, sizeof(serf_log), "%s/serf.log", s->run_dir);
		joinwatch_step(&s->joinwatch, s->a, ev_now(s->a->loop), s->mem,
		    s->nmem, s->a->cfg.serf_addr == NULL ? serf_log : NULL);
	}
	if (s->pfd >= 0) {
		if (ev_now(s->a->loop) - s->peer_started >
		    SYNC_PEER_TIMEOUT_MS / 1000.0) {
			log_info("peer %s unreachable; trying another later",
			    s->pname);
			peer_connect_abort(s);
		}
		return;
	}
	if (s->peer != NULL) {
		/* a peer that stalls is given up on after 30 s */
		if (ev_now(s->a->loop) - s->peer_started > 30.0) {
			log_warn("peer request stalled; dropping it");
			sync_peer_close(s);
			s->downloading = false;
		}
		return;
	}
	if (!agent_ready(s->a))
		start_download(s);
	else
		start_catchup(s);
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
	ev_timer_init(&s->info_timer, info_timer_cb, c->clock, c->clock);
	ev_timer_start(a->loop, &s->info_timer);
	ev_timer_init(&s->catchup_timer, catchup_timer_cb, c->clock / 2,
	    c->clock / 2);
	ev_timer_start(a->loop, &s->catchup_timer);
	ev_timer_init(&s->rec.timer, recovery_timer_cb, 0., 0.);
	ev_timer_init(&s->answer_timer, answer_timer_cb, 0., 0.);
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
	peer_connect_abort(s);
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
