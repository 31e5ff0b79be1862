/*
 * sync_impl: what the parts of replication share: sync.c (broadcasting,
 * infos, pings, receiving, start and stop), sync_recovery.c, sync_peer.c
 * and sync_tomb.c.  Not an API: sync.h is.
 */
#ifndef DISTKV_SYNC_IMPL_H
#define DISTKV_SYNC_IMPL_H

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
 * A whole clock made a split of 20 nodes at clock 0.2 converge in 2.6-3.0
 * clocks (p50 of four batches of 8), half a clock in 2.1-2.5 (three),
 * with as many events sent again (bench/README.md, session 13).
 */
#define SYNC_CATCHUP_GRACE 0.5
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
 * the chain waits for the whole chain first (sync_start_answering).
 */
#define SYNC_HEAR_S 0.25
/*
 * A tick carried by an update this node sent or received less than one
 * to two turns of this ago is not sent again on a missing report
 * (sync_heard_tick).  Serf needs about half a second to bring an event to
 * 20-50 nodes, and a report takes as long to come back: one that arrives
 * within this window was most likely made before its sender heard the
 * update.  Without the window, every report that crossed an update or a
 * retransmission started another round: a split of 20 nodes at clock 0.2
 * sent a median of 26 retransmission events for 10 changes, over the
 * spec's N+1 (bench/README.md).  Should the update really have been lost
 * there, catch-up brings it.
 */
#define SYNC_HEARD_S 1.0
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
	ev_tstamp heard_turned;		/* the last turn of nodes' heard */
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

static inline void
pack_str(msgpack_packer *pk, const char *s)
{
	msgpack_pack_str_with_body(pk, s, strlen(s));
}

static inline void
pack_bool(msgpack_packer *pk, bool b)
{
	if (b)
		msgpack_pack_true(pk);
	else
		msgpack_pack_false(pk);
}

/* A ping link's "node" and, if it has one, "tick" pairs (the caller
 * counts them in its map: 1 + l->has_tick). */
static inline void
pack_link_pairs(msgpack_packer *pk, const struct pinglink *l)
{
	pack_str(pk, "node");
	msgpack_pack_str_with_body(pk, l->node->name, l->node->name_len);
	if (l->has_tick) {
		pack_str(pk, "tick");
		msgpack_pack_uint64(pk, l->tick);
	}
}

static inline double
rand01(void)
{
	return (double)randombytes_uniform(1000000) / 1000000.0;
}

/* sync.c */
void sync_raise_tock(struct agent *a, const msgpack_object *m);
void sync_pack_update_head(struct sync *s, msgpack_packer *pk, uint32_t n);
bool sync_ping_decode(struct sync *s, const msgpack_object *m,
    struct pingchain *out);
void sync_ping_reschedule(struct sync *s);
bool sync_ping_tail_eq(const struct pingchain *a, unsigned ai,
    const struct pingchain *b, unsigned bi);
void sync_send_info_event(struct sync *s, uint32_t nparts,
    void (*fill)(struct sync *, msgpack_packer *, const void *),
    const void *arg);
bool sync_take_token(struct sync *s);
void sync_send_info(struct sync *s);
/* recovery steps 1 and 2: fill functions for sync_send_info_event */
void sync_fill_reason(struct sync *s, msgpack_packer *pk, const void *arg);
void sync_fill_missing(struct sync *s, msgpack_packer *pk, const void *arg);

/* sync_recovery.c: split recovery (spec §3.10) and answering (§3.11) */
void sync_answer_timer_cb(struct ev_loop *loop, ev_timer *w, int revents);
int sync_chain_position(const struct sync *s, const struct pingchain *c);
void sync_handle_ping(struct sync *s, const msgpack_object *m);
void sync_recovery_timer_cb(struct ev_loop *loop, ev_timer *w, int revents);
void sync_resend_skipped(struct sync *s, const msgpack_object *from,
    const msgpack_object *known);
void sync_start_answering(struct sync *s);
/* A (node, tick) pair from a message: the node's tick rises to it. */
void sync_raise_node_tick(struct agent *a, const msgpack_object *name,
    const msgpack_object *tick);
/* Updates sent or received: their ticks are not answered for a while
 * (SYNC_HEARD_S). */
void sync_heard_tick(struct sync *s, struct node *nd, uint64_t t);
void sync_heard_chain(struct sync *s, const struct chain *c);
/* An update record (or a catch-up one) that was applied. */
void sync_heard_record(struct sync *s, const msgpack_object *rec);
/* rs -= the ticks of nd heard lately. */
void sync_heard_remove(struct sync *s, const struct node *nd,
    struct ranges *rs);
void sync_start_recovery(struct sync *s, unsigned pos,
    const struct pingchain *sane, bool replace);

/* sync_peer.c: peer requests, download and catch-up */
void sync_download_done(struct sync *s);
void sync_peer_connect_abort(struct sync *s);
void sync_start_catchup(struct sync *s);
void sync_start_download(struct sync *s);
void sync_peer_close(struct sync *s);

/* sync_tomb.c: tombstones, and the timers that look for what is missing */
void sync_catchup_timer_cb(struct ev_loop *loop, ev_timer *w, int revents);
void sync_info_timer_cb(struct ev_loop *loop, ev_timer *w, int revents);
void sync_purge_tombstones(struct sync *s);

#endif
