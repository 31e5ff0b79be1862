/*
 * faults: what the files of distkv-faults share: faults.c (options, the
 * cluster, the fault run), faults_converge.c (waiting for identical dumps
 * and for the recoveries to end), faults_check.c (the check of a fault
 * run's writes and reads) and faults_split.c (the --split and
 * --wipe-split scenarios).  faults.c's header says what the program does.
 */
#ifndef DISTKV_TESTS_FAULTS_H
#define DISTKV_TESTS_FAULTS_H

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <msgpack.h>

#include "cluster.h"
#include "proto.h"

#define NKEYS 4
#define MARK_BASE 0xd10000	/* + uid: unique per run and node */
#define MAX_RULES 1024
#define SPLIT_MARK_KEY 1000	/* + node index: the markers of --split */
#define SPLIT_HOLD_CLOCKS 10	/* the least a --split lasts */

enum fault {
	F_PARTITION, F_HEAL, F_KILL_AGENT, F_RESTART, F_RESTART_WIPED,
	F_KILL_SERF, F_CRASH, F_NKINDS
};

struct write_rec {
	int node;		/* index of the node that acknowledged it */
	int epoch;		/* its incarnation (count of wiped restarts) */
	int key;
	bool del;
	int64_t value;
	char head[DISTKV_NODE_MAX + 1];
	uint64_t tick, tock;
	long long t_ms;
};

/* An answered read of a value (reads of nothing are only counted). */
struct read_rec {
	int node;		/* index of the node that answered */
	int epoch;		/* its incarnation then */
	int key;
	uint8_t value[16];	/* msgpack bytes: our values are integers */
	size_t value_len;
	char head[DISTKV_NODE_MAX + 1];
	uint64_t tick, tock;
	long long t_ms;
};

struct run {
	struct cluster c;
	int n;
	int seconds;
	uint64_t seed;
	bool keep;
	bool split;			/* --split: the split scenario */
	int changes;			/* --changes: K of --split */
	bool wipe_split;		/* --wipe-split: wipe during a split */
	int unique;			/* --unique: K of --wipe-split */
	int converge_ms;
	int wipe_pct;			/* restarts with an emptied state dir */
	long long t0;
	distkv *k[CLUSTER_MAX];
	bool down[CLUSTER_MAX];		/* killed by us, restart pending */
	long long restart_at[CLUSTER_MAX];
	bool wipe[CLUSTER_MAX];		/* restart it with an empty state dir */
	int epoch[CLUSTER_MAX];		/* wiped restarts so far */
	bool partitioned;
	int group[CLUSTER_MAX];
	int probes, probes_diverged;	/* see probe_partition */
	int faults[F_NKINDS];
	struct write_rec *w;
	size_t nw, capw;
	unsigned long write_errors;
	struct read_rec *rd;
	size_t nrd, caprd;
	unsigned long reads_nil, read_errors;
	char joins[CLUSTER_MAX][CLUSTER_MAX][32];
};

struct link {
	char node[DISTKV_NODE_MAX + 1];
	uint64_t tick;
};

enum {
	RV_RECOVERIES, RV_RETRANSMIT_EVENTS, RV_RETRANSMIT_ENTRIES,
	RV_MISSING_REPORTS, RV_KNOWN_REPORTS, RV_CATCHUP_ITEMS, RV_N
};

/* One node's answer; what the agent does not send stays absent. */
struct recov {
	bool have[RV_N];
	uint64_t v[RV_N];
	bool have_running, running;
	bool have_answering, answering;
};

/* set by SIGINT/SIGTERM/SIGHUP: every wait ends */
extern volatile sig_atomic_t g_stop;
/* iptables rules in place (rules_delete_before undoes the newest) */
extern int g_nrules;

/* faults.c */
void complain(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
void print_diag(const struct cluster *c);
int rules_delete_before(const char *table, int upto);
void logf_(const struct run *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int empty_state_dir(struct run *r, int i);
void kill_agent(struct run *r, int i);
int restart_node(struct run *r, int i, bool wipe);
int partition_apply(struct run *r, const int *group, int ngroups);
void do_heal(struct run *r);
distkv *client(struct run *r, int i);
void call_failed(struct run *r, int i, int rc);
int do_write(struct run *r, int i, int key, bool del, int64_t id);
/* the msgpack bytes of v (malloc'd) */
uint8_t *pack_int(int64_t v, size_t *len);

/* faults_converge.c */
/*
 * A watch on the whole tree of every node, served by a thread of its
 * own, that notes when each node last applied a change: when the nodes
 * converged, to the millisecond, where wait_same's passes of dumps only
 * confirm it later (applied_start, then applied_stop once converged).
 */
struct applied {
	distkv *k[CLUSTER_MAX];
	int n;
	/* between the thread and applied_start's wait */
	_Atomic bool uptodate[CLUSTER_MAX];	/* the watch is in place */
	_Atomic int failed;		/* watches that ended early */
	_Atomic bool stop;
	/* the thread's alone until applied_stop joins it */
	long long last_ms[CLUSTER_MAX];	/* harness_now_ms, -1: no change */
	pthread_t thread;
};
int applied_start(struct run *r, struct applied *ap);
long long applied_stop(struct applied *ap, int *node);
double clock_s(const struct run *r);
const char *fmt_converge(const struct run *r, long long ms);
const char *fmt_applied(const struct run *r, long long ms);
long long wait_same(struct run *r, size_t min_items, long long since,
    int timeout_ms, char *why, size_t whylen);
int recov_query(struct run *r, int i, struct recov *rv, char *why,
    size_t whylen);
int wait_no_recovery(struct run *r, struct recov *rv, const char *what,
    bool answering);

/* faults_check.c */
size_t parse_chain(const uint8_t *b, size_t len, struct link *out, size_t max);
const struct cluster_item *key_item(const struct cluster_dump *d, int key);
bool write_kept(const struct cluster_dump *d, const struct write_rec *w,
    char *why, size_t whylen);
int check_writes(struct run *r, const struct cluster_dump *d, int *expected);
int check_reads(struct run *r, const struct cluster_dump *d, int *expected);
int count_tick_reuse(const struct run *r);
void print_divergence(struct run *r);

/* faults_split.c: the deterministic scenarios */
int run_split(struct run *r);
int run_wipe_split(struct run *r);

#endif
