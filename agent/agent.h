/*
 * agent: the state of one distkv-agent and the one function that changes
 * the tree.
 *
 * Every change, from a local client, a loaded file, a log replay or (later)
 * a peer, goes through agent_commit(): it decides by the chain rules of spec
 * §3.6 and only then fans out, in this order: change logs (state dir and
 * `log` writers), shm publish (not yet), watchers, Serf broadcast (not yet).
 * Nothing else mutates an entry's value, chain or tock.
 */
#ifndef DISTKV_AGENT_H
#define DISTKV_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <ev.h>

#include "chain.h"
#include "nodes.h"
#include "tree.h"

enum fsync_policy { FSYNC_ALWAYS, FSYNC_BATCH, FSYNC_NONE };

struct agent_config {
	const char *socket_path;
	mode_t socket_mode;
	const char *node;		/* our node name */
	bool standalone;
	const char *init_json;		/* --init: root value (JSON, else string) */
	const char *load_file;
	const char *state_dir;
	const char *file_dir;		/* save/log files live here */
	enum fsync_policy fsync;
	size_t max_request;		/* bytes of one request */
	size_t max_output;		/* bytes queued to one client */
	unsigned change_length;		/* chain links stored and sent */
	unsigned snapshot_every;	/* changes between snapshots (state dir) */
	const char *shm_path;		/* shared-memory region, NULL: none */
	mode_t shm_mode;
};

struct server;
struct persist;
struct logwriter;
struct shm_writer;

struct agent {
	struct ev_loop *loop;
	struct agent_config cfg;
	struct tree tree;
	struct nodes nodes;
	struct node *self;
	uint64_t tock;
	struct server *server;
	struct persist *persist;	/* state dir, or NULL */
	struct logwriter *logw;		/* `log` action writer, or NULL */
	struct shm_writer *shm;		/* shared-memory region, or NULL */
	ev_timer heartbeat;		/* shm liveness */
	uint64_t changes;		/* accepted changes since start */
};

enum origin {
	ORIGIN_LOCAL,			/* made here (client, --init) */
	ORIGIN_LOAD,			/* snapshot, log replay, --load, update */
	ORIGIN_REMOTE,			/* from a peer */
};

/* Outcome of agent_commit (spec §3.6). */
enum apply_result {
	APPLY_ACCEPTED,
	APPLY_DUPLICATE,
	APPLY_STALE,
	APPLY_CONFLICT_LOST,
};

/* One update to apply.  value is canonical msgpack, or NULL for nil. */
struct update {
	struct entry *entry;
	const uint8_t *value;
	size_t value_len;
	struct chain chain;		/* incoming chain, links in the node table */
	uint64_t tock;
};

int agent_init(struct agent *a, struct ev_loop *loop,
    const struct agent_config *cfg);
void agent_fini(struct agent *a);

/* Stamp something: the next tock (spec §1.5). */
static inline uint64_t
agent_stamp(struct agent *a)
{
	return ++a->tock;
}

/*
 * Apply u to the tree (the one mutation path).  Marks every chain link
 * seen, decides, and on acceptance fans out.  Returns an enum
 * apply_result, or -ENOMEM.
 */
int agent_commit(struct agent *a, const struct update *u, enum origin o);

/*
 * A local change (spec §3.7): new tick for this node, chain built on the
 * entry's chain, value (canonical msgpack, NULL = delete) committed.
 * Always accepted.  Returns 0 or -ENOMEM.
 */
int agent_change_local(struct agent *a, struct entry *e, const uint8_t *value,
    size_t len);

/*
 * Open the shared-memory region (cfg.shm_path) and publish the tree into
 * it; later changes are published by agent_commit.  Returns 0 or -errno.
 */
int agent_shm_open(struct agent *a);
/* Mark the region closed (readers then report stale data). */
void agent_shm_close(struct agent *a);
/*
 * End of one event-loop iteration's batch of changes, before replies are
 * written: make them durable and wake blocked shm readers.
 */
void agent_end_batch(struct agent *a);

/* True when this agent serves clients (its tick is set). */
static inline bool
agent_ready(const struct agent *a)
{
	return a->self->has_tick;
}

#endif
