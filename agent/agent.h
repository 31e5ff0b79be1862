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
#include <msgpack.h>

#include "chain.h"
#include "metrics.h"
#include "nodes.h"
#include "proto.h"
#include "tree.h"
#include "watch.h"

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
	/* cluster (sync.c, docs/cluster.md) */
	const char *serf_addr;		/* --serf: attach to this RPC address */
	const char *serf_auth;		/* its rpc_auth key, or NULL */
	const char *serf_rpc;		/* embedded agent's RPC address */
	const char *serf_bin;
	const char *bind;		/* embedded agent's gossip ADDR:PORT */
	const char *const *join;	/* NULL-terminated */
	const char *peer_bind;		/* peer port ADDR:PORT */
	const char *run_dir;		/* embedded agent's files */
	const char *event_prefix;	/* Serf event names: PREFIX.update ... */
	double clock;			/* seconds: info messages, ping clock */
	unsigned ping_length;		/* links of a ping chain (4) */
	double tombstone_keep;		/* seconds before a purge may come */
	double join_timeout;		/* no data, nothing joined: give up */
	bool no_login;			/* --no-login: the gate stays open */
	bool acl_default_deny;		/* no ACL entry matches: refuse */
	/* --listen-allow-anonymous: TCP/TLS clients need no login while
	 * no auth method is on */
	bool listen_allow_anonymous;
	double stream_idle;		/* --stream-timeout: silent streams end */
	const char *metrics_addr;	/* --metrics ADDR:PORT, or NULL */
	bool has_cluster_key;
	uint8_t cluster_key[32];
};

struct server;
struct persist;
struct logwriter;
struct shm_writer;
struct sync;
struct sync_monitor;
struct xlate;

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
	struct sync *sync;		/* replication, or NULL (standalone) */
	struct sync_monitor *serf_mons;	/* serfmon requests (sync.h) */
	struct xlate *xlate;		/* types, codecs (xlate.h) */
	bool server_ready;		/* the client socket is open */
	bool ready;			/* has its data (agent_ready) */
	ev_timer heartbeat;		/* shm liveness */
	uint64_t changes;		/* accepted changes since start */
	uint64_t tombstones;		/* entries with a chain and no value */
	size_t watches;			/* running watch requests (watch.c) */
	struct watch_table watched;	/* the entries they watch */
	struct metrics metrics;		/* counters (metrics.h) */
	/* a bulk load fills an empty region once, at its end */
	bool shm_deferred;
	msgpack_sbuffer scratch;	/* agent_apply_record's value */
};

enum origin {
	ORIGIN_LOCAL,			/* made here (client, --init) */
	ORIGIN_LOAD,			/* snapshot, log replay, --load, update */
	ORIGIN_REMOTE,			/* from a peer */
	ORIGIN_PURGE,			/* forget a tombstone (chain.n 0) */
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

/*
 * Stamp something: the next tock (spec §1.5).  It stops at the ceiling
 * (PROTO_MAX_TOCK): there local changes are refused already
 * (agent_change_local), and a stamp past it would be refused by peers.
 */
static inline uint64_t
agent_stamp(struct agent *a)
{
	if (a->tock >= PROTO_MAX_TOCK)
		return a->tock;
	return ++a->tock;
}

/*
 * Apply u to the tree (the one mutation path).  Marks every chain link
 * seen, decides, and on acceptance fans out.  Returns an enum
 * apply_result, or -ENOMEM.  With ORIGIN_PURGE and an empty chain it
 * forgets the tombstone u->entry (sync.c decides when that is safe):
 * nothing to publish, log or notify, the value is nil already.
 */
int agent_commit(struct agent *a, const struct update *u, enum origin o);

/*
 * A local change (spec §3.7): new tick for this node, chain built on the
 * entry's chain, value (canonical msgpack, NULL = delete) committed.
 * Always accepted.  Returns 0, -ENOMEM, or -ERANGE when this node's tick
 * or the tock is at its ceiling (PROTO_MAX_TICK: nothing is changed).
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
 * A bulk load (a snapshot or change log read at start): every record goes
 * through agent_commit as always, but the tree's index is sized for n
 * more entries at once, and an empty shm region is filled once at the end
 * (agent_bulk_end: sized for all of it, in tree order) instead of record
 * by record.  Returns 0 or -ENOMEM / the region's -errno.
 */
int agent_bulk_begin(struct agent *a, size_t n);
int agent_bulk_end(struct agent *a);

/*
 * End of one event-loop iteration's batch of changes, before replies are
 * written: make them durable and wake blocked shm readers.  Returns 0 or
 * persist_sync's error (then nothing of the batch may be acknowledged).
 */
int agent_end_batch(struct agent *a);

/* Path lengthener of a record stream (spec §2.6): base and last entry. */
struct record_ctx {
	struct entry *base;
	struct entry *last;
};

/*
 * Apply one decoded record (spec §2.8 loading rules) through agent_commit:
 * a value record (full or shortened path, chain nested or flat) or a state
 * record (nodes, known, remote_missing).  Used by the file loader, the
 * `update` action, peers' downloads and Serf updates.  *applied is set
 * when a value record was accepted.  Returns 0, or -EINVAL for a malformed
 * record with *why set to a message.
 */
struct msgpack_object;
int agent_apply_record(struct agent *a, struct record_ctx *ctx,
    const struct msgpack_object *rec, enum origin o, bool *applied,
    const char **why);

/*
 * Pack the change record of e (spec §2.8 log record, §3.3 update): a map
 * {node, tick, prev, path, value, tock}, chain flat, full path.
 */
void agent_pack_change(struct agent *a, msgpack_packer *pk,
    const struct entry *e);

/* The node table's {name: tick} map (spec §2.5.7 `nodes`). */
void agent_pack_nodes(const struct agent *a, msgpack_packer *pk);
/* {name: ranges} of every node with a non-empty set of this kind. */
enum agent_ranges { AGENT_KNOWN, AGENT_MISSING, AGENT_REMOTE_MISSING };
void agent_pack_ranges(const struct agent *a, msgpack_packer *pk,
    enum agent_ranges k);

/* The node just got its data (download): open the client socket. */
void agent_became_ready(struct agent *a);

/*
 * True when this agent has its data and serves clients: standalone,
 * --init, data of its own from the state dir or --load, or a completed
 * download.  Not "its tick is set": peers' messages name this node and
 * raise its tick long before a restarted, empty node has any data.
 */
static inline bool
agent_ready(const struct agent *a)
{
	return a->ready;
}

#endif
