/*
 * sync: replication between agents (spec §3, docs/cluster.md).
 *
 * Serf is the fast path: local changes are broadcast as `<prefix>.update`
 * events (several per event, each event small enough to gossip), and every
 * node announces the ticks it knows in `<prefix>.info` every clock.  Serf
 * loses events under bursts and gives a new node no history, so every
 * node also repairs: per-origin ticks are contiguous, so a node sees what
 * it misses ([1, tick] - known) and pulls exactly those events from a
 * peer over the peer port (get_events).  A node without data downloads
 * the whole tree from a peer (dump) before it serves clients.
 *
 * All of it runs on the agent's loop; every change still goes through
 * agent_commit().
 */
#ifndef DISTKV_SYNC_H
#define DISTKV_SYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct agent;
struct conn;
struct entry;

/* Start Serf (embedded or attached), timers, download if not ready. */
int sync_start(struct agent *a);
void sync_stop(struct agent *a);

/* A change made here: queue it for the next broadcast. */
void sync_local_change(struct agent *a, const struct entry *e);
/* End of a loop iteration (after the logs are synced): broadcast. */
void sync_flush(struct agent *a);

/*
 * The user_event_size_limit the agents run Serf with; a standalone agent
 * checks serfsend against it too, so both behave alike.
 */
#define SYNC_SERF_EVENT_LIMIT 9216

/* serfsend: fire a user event with exactly this name (no prefix). */
int sync_serf_send(struct agent *a, const char *name, size_t nlen,
    const uint8_t *payload, size_t len);
/* True if a pass-through name would enter the servers' namespace. */
bool sync_name_reserved(const struct agent *a, const char *name, size_t nlen);

/*
 * serfmon: events named name go to fn until removed.  The monitors belong
 * to the agent (a->serf_mons), so a standalone one has them too.
 */
struct sync_monitor {
	char name[256];
	size_t nlen;
	void (*fn)(struct sync_monitor *m, const uint8_t *payload, size_t len);
	struct sync_monitor *next;
};
void sync_monitor_add(struct agent *a, struct sync_monitor *m);
void sync_monitor_remove(struct agent *a, struct sync_monitor *m);
/* A user event named name arrived (or, standalone, was sent): to fn. */
void sync_monitor_deliver(struct agent *a, const char *name, size_t nlen,
    const uint8_t *payload, size_t len);

/* For get_state and logs: is Serf connected. */
bool sync_serf_connected(const struct agent *a);
/* get_state's `ping`: the last accepted ping chain [{node, tick}, ...]. */
struct msgpack_packer;
void sync_pack_ping(const struct agent *a, struct msgpack_packer *pk);
/* get_state's `recovery`: {running, step, answering, counters...}. */
void sync_pack_recovery(const struct agent *a, struct msgpack_packer *pk);

/* The Serf member list as last read (NULL, 0 when standalone). */
struct serf_member;
const struct serf_member *sync_members(const struct agent *a, size_t *n);
/*
 * For `health`: Serf is connected and, if --join was given, another
 * member is alive (a first node with nothing to join is joined).
 */
bool sync_joined(const struct agent *a);
/* Ask Serf to drop a gone node from its member lists (forget). */
int sync_force_leave(struct agent *a, const char *node);

/* Counters for the metrics (docs/operations.md, "Metrics"). */
#include "serf.h"
struct sync_stats {
	struct serf_stats serf;
	uint64_t recoveries, retransmit_events, retransmit_entries;
	uint64_t missing_reports, known_reports, catchup_items, purged;
	bool recovery_running;
};
void sync_get_stats(const struct agent *a, struct sync_stats *out);

#endif
