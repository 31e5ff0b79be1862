/*
 * cluster: start and stop a cluster of real distkv-agents (each with its
 * embedded `serf agent`) on loopback, for the cluster tests and the
 * replication benchmark.
 *
 * Node i of a cluster gets its own loopback address 127.0.0.(ipbase + i),
 * all nodes share one port triple chosen from the process id (gossip P,
 * Serf RPC P+1, peer port P+2; checked free before use), and its own temp
 * dir from harness_init() (client socket, shm region, state dir, Serf run
 * dir "run", stderr in "agent.err").  Agents run with --clock 0.2 so that
 * info messages and catch-up are quick.  Node 0 starts with --init, the
 * others with --join node0.
 *
 * Every wait has a deadline; the waits poll (a few ms) and return -1 with
 * a reason in the caller's buffer instead of failing anything themselves,
 * so this file needs no Criterion and the benchmark can use it too.
 * Processes are stopped by the pids this file started (the Serf child of
 * a node is found by its parent pid in /proc); nothing is killed by name.
 *
 * Test-only code: one thread; allocation failures abort.
 */
#ifndef DISTKV_TEST_CLUSTER_H
#define DISTKV_TEST_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "distkv.h"
#include "harness.h"

/* 50-node clusters run in bench_cluster (issue 14); 64 leaves room */
#define CLUSTER_MAX 64
#define CLUSTER_MAX_ARGS 16
/* cluster_start spawns at most this many nodes before it waits for their
 * sockets: 2 cores, and each node is two processes */
#define CLUSTER_SPAWN_BATCH 8

struct cluster_node {
	struct harness_agent h;		/* pid, dir, socket, shm, state_dir */
	char name[16];			/* n0, n1, ... */
	char bind[32], serf_rpc[32], peer[32];
	char run_dir[320];		/* h.dir/run: serf.json, serf.log */
	/* h.dir/cluster.key: the cluster's shared test secret, passed as
	 * --cluster-key unless the extra arguments name a key (or none) */
	char keyfile[320];
	/* extra arguments for every start of this node (borrowed) */
	const char *extra[CLUSTER_MAX_ARGS + 1];
	bool started;			/* spawned at least once */
	/* if uid != 0: the child drops to (uid, gid), no supplementary
	 * groups, before exec (needs root; the fault harness uses it) */
	uid_t uid;
	gid_t gid;
};

struct cluster {
	int n;
	int ipbase;
	int port;
	const char *clock;		/* --clock, default "0.2" */
	const char *log_level;		/* --log-level, default "info" */
	struct cluster_node node[CLUSTER_MAX];
};

/*
 * Set up n nodes (temp dirs, addresses, a free port triple); no process
 * yet.  ipbase: first address byte (tests and bench use different ones).
 * Returns 0 or -1.
 */
int cluster_init(struct cluster *c, int n, int ipbase);

/* Add arguments for every later start of node i (strings borrowed). */
void cluster_node_args(struct cluster *c, int i, ...);

/*
 * Spawn node i: with init, with --init "cluster"; every node but a node 0
 * started with init joins node 0 (node 0 itself joins node 1).  Does not
 * wait.  Returns 0 or -1.
 */
int cluster_spawn(struct cluster *c, int i, bool init);
/*
 * Wait until node i's client socket accepts (or the agent dies).  A node
 * that must download opens its socket only when the download is done.
 * Returns 0 or -1.
 */
int cluster_wait_socket(struct cluster *c, int i, int timeout_ms);

/*
 * Start all n nodes: node 0 with --init, wait for its socket, then the
 * others in batches of CLUSTER_SPAWN_BATCH, each batch's sockets waited
 * for before the next is spawned.  0 or -1 (see cluster_diag).
 */
int cluster_start(struct cluster *c);

/*
 * Wait until the Serf agent of every running node lists want members as
 * alive (Serf RPC `members` on the node's --serf-rpc address; want <= 0:
 * the number of running nodes).  0, or -1 with the reason in why.
 */
int cluster_wait_members(struct cluster *c, int want, int timeout_ms,
    char *why, size_t whylen);

/*
 * Raise the soft RLIMIT_NOFILE to what n nodes need in this process and
 * their children (a client connection and a shm region per node, plus
 * the agents' own), at most to the hard limit.  0, or -1 if the hard
 * limit is too low.
 */
int cluster_raise_fd_limit(int n);

/* pid of node i's serf child (found in /proc), 0 if none. */
pid_t cluster_serf_pid(const struct cluster *c, int i);

/*
 * Stop node i: its serf child first (SIGTERM: at once, no leave), then the
 * agent (SIGTERM); wait up to 10 s.  Returns the agent's exit status or
 * -1 (killed after the deadline, or not running).
 */
int cluster_stop_node(struct cluster *c, int i);
/* Stop every running node in parallel; returns the number of nodes whose
 * exit status was not 0. */
int cluster_stop(struct cluster *c);
/* Stop what runs and remove the temp dirs (kept if $DISTKV_KEEP is set). */
void cluster_cleanup(struct cluster *c);

/* The tail of every node's agent.err and serf.log (static buffer). */
const char *cluster_diag(const struct cluster *c);
/* Number of lines in node i's agent.err that contain needle. */
int cluster_log_count(const struct cluster *c, int i, const char *needle);

/* Connect a libdistkv client to node i (timeout 10 s); NULL on failure. */
distkv *cluster_connect(const struct cluster *c, int i);

/*
 * Wait until every running node in mask (bit i: node i; 0: all; only the
 * first 64 nodes can be named) holds
 * value (msgpack bytes; NULL: no value, i.e. deleted or never set) at path
 * p, in its shm region (distkv_shm_get) and over its socket (get_value).
 * 0, or -1 with the reason in why.
 */
int cluster_wait_value(struct cluster *c, uint64_t mask, const distkv_path *p,
    const void *value, size_t len, int timeout_ms, char *why,
    size_t whylen);

/* One entry of a dump, full path and value as msgpack bytes. */
struct cluster_item {
	uint8_t *path;
	size_t path_len;
	uint8_t *value;
	size_t value_len;
	uint8_t *chain;
	size_t chain_len;
	uint64_t tock;
};

struct cluster_dump {
	struct cluster_item *it;	/* sorted by path bytes */
	size_t n, cap;
};

/*
 * The complete tree of node i through the `dump` action on its client
 * socket: every entry with a chain, tombstones included, paths
 * lengthened.  0 or a libdistkv error code.
 */
int cluster_dump(const struct cluster *c, int i, struct cluster_dump *out);
void cluster_dump_free(struct cluster_dump *d);
/* The item at path (msgpack array bytes), or NULL. */
const struct cluster_item *cluster_dump_find(const struct cluster_dump *d,
    const void *path, size_t len);
/* The same for a distkv_path (aborts on ENOMEM). */
const struct cluster_item *cluster_dump_find_path(
    const struct cluster_dump *d, const distkv_path *p);
/* Compare two dumps (paths, values, chains, tocks); 0 if identical, else
 * -1 with the first difference in why. */
int cluster_dump_cmp(const struct cluster_dump *a, const struct cluster_dump *b,
    char *why, size_t whylen);

/*
 * Wait until the dumps of every running node are identical and hold at
 * least min_items items.  0, or -1 with the last difference in why.
 */
int cluster_wait_same(struct cluster *c, size_t min_items, int timeout_ms,
    char *why, size_t whylen);

/* msgpack bytes as text, for messages: a static ring of 4 buffers. */
const char *cluster_show(const uint8_t *b, size_t len);

/* A path of one string and one integer element: [s, i] (aborts on ENOMEM). */
distkv_path *cluster_path(const char *s, int64_t i);
/* msgpack bytes of a path (array of its elements), malloc'd. */
uint8_t *cluster_path_bytes(const distkv_path *p, size_t *len);

#endif
