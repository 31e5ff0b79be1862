/*
 * fuzz_sync: an in-memory agent with replication state, for the harnesses
 * of what agent/sync.c receives (fuzz_serf_events.c, fuzz_peer.c).
 *
 * sync.c's receivers (serf_user_event, peer_message, peer_login) are
 * static and struct sync is private, so the harness includes sync.c and
 * its parts (sync_recovery.c, sync_peer.c, sync_tomb.c) themselves: the
 * real code, compiled into the harness.  The program then links the rest
 * of the agent from libagent.a, whose sync objects the linker leaves out
 * (every symbol they define is already defined here).
 *
 * fuzz_sync_new() makes what sync_start() makes, minus Serf and the
 * timers: no `serf agent`, no sockets, nothing sent (serf_send_event on
 * a NULL Serf fails, as when Serf is down).  The agent is ready, with a
 * server without listeners (for agent_became_ready).
 */
#ifndef DISTKV_FUZZ_SYNC_H
#define DISTKV_FUZZ_SYNC_H

#include "sync.c"
#include "sync_recovery.c"
#include "sync_peer.c"
#include "sync_tomb.c"

#include "fuzz_agent.h"

static struct sync *
fuzz_sync_new(struct agent *a, struct ev_loop *l, const char *node,
    bool ready)
{
	struct agent_config cfg;
	struct sync *s;

	memset(&cfg, 0, sizeof(cfg));
	cfg.node = node;
	cfg.change_length = CHAIN_DEFAULT_LENGTH;
	cfg.event_prefix = "distkv";
	cfg.clock = 1.0;
	cfg.ping_length = 4;
	cfg.tombstone_keep = 300;
	cfg.max_request = 1u << 20;
	cfg.max_output = 1u << 20;
	cfg.has_cluster_key = true;
	memset(cfg.cluster_key, 0x5a, sizeof(cfg.cluster_key));
	if (agent_init(a, l, &cfg) != 0)
		abort();
	if (ready) {
		node_raise_tick(a->self, 0);
		a->ready = true;
	}
	a->server_ready = true;		/* no client socket to open */
	if ((s = calloc(1, sizeof(*s))) == NULL)
		abort();
	s->a = a;
	s->pfd = -1;
	s->last_gained = true;
	msgpack_sbuffer_init(&s->q);
	msgpack_sbuffer_init(&s->preq);
	snprintf(s->ev_update, sizeof(s->ev_update), "%s.update",
	    cfg.event_prefix);
	snprintf(s->ev_info, sizeof(s->ev_info), "%s.info", cfg.event_prefix);
	snprintf(s->ev_ping, sizeof(s->ev_ping), "%s.ping", cfg.event_prefix);
	s->tokens = SYNC_EVENT_BURST;
	s->refill = ev_now(l);
	ev_timer_init(&s->info_timer, sync_info_timer_cb, cfg.clock, cfg.clock);
	ev_timer_init(&s->catchup_timer, sync_catchup_timer_cb, cfg.clock / 2,
	    cfg.clock / 2);
	ev_timer_init(&s->rec.timer, sync_recovery_timer_cb, 0., 0.);
	ev_timer_init(&s->answer_timer, sync_answer_timer_cb, 0., 0.);
	ev_timer_init(&s->ping_timer, ping_timer_cb, cfg.clock, 0.);
	ev_io_init(&s->peer_io, peer_io_cb, -1, EV_READ);
	a->sync = s;
	return s;
}

static void
fuzz_sync_free(struct agent *a)
{
	sync_stop(a);		/* stops the timers, frees struct sync */
	agent_fini(a);
}

#endif
