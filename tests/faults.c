/*
 * distkv-faults: fault-injection run of a loopback DistKV cluster.
 *
 * Starts N agents (each with its embedded serf) through tests/cluster.c,
 * every node as its own uid on its own loopback address with a state dir.
 * A workload writes and deletes a few keys on every node and records every
 * acknowledged change (node, key, value, chain head, tock).  Faults come on
 * a schedule drawn from the seed: partitions (iptables: packets marked by
 * uid in mangle OUTPUT, dropped on INPUT by mark and destination address,
 * serf-notes.md section 7), heals, kill -9 of agents (restarted after a
 * while with their state dir, or sometimes with an emptied one) and kill
 * -9 of serf children.  At the end everything is healed and restarted, the
 * run waits for identical dumps on every node and checks every
 * acknowledged write against the final tree:
 *
 *   - the final entry has the write's head: the value must be the write's;
 *   - else the final chain holds the write's node with a tick >= the
 *     write's tick (superseded by a causal successor);
 *   - else the final entry must win the conflict rule against the write
 *     (higher tock; equal tocks: higher head node name, then higher tick).
 *
 * Writes of a node incarnation whose state dir was later emptied may be
 * lost (docs/cluster.md, "Limits"); they are counted apart as expected.
 * Two acknowledged writes with the same (node, tick) are reported as tick
 * reuse (a node restarted with an emptied state dir numbered a change
 * again).  While partitioned, just before each heal or new partition, the
 * dumps of two nodes on different sides are compared: the summary's
 * partition_probes_diverged shows that the cuts really cut.  Without
 * convergence the check runs against the first node that answers dump
 * (indicative only).
 *
 * Usage: distkv-faults [--nodes N] [--seconds S] [--seed X]
 *     [--converge-timeout S] [--wipe-percent P] [--keep] [--verbose]
 * The fault schedule is drawn from its own random stream, so a seed gives
 * the same schedule (up to timing: e.g. whether a restarted node is up).
 * --keep keeps the temp dirs (agent.err, run/serf.log, state) for a look.
 *
 * One summary line on stdout; exit 0 only without violations or timeouts.
 * Only its own pids are killed, only its own iptables rules deleted (also
 * on SIGINT/SIGTERM/SIGHUP), temp dirs are removed unless --keep.
 *
 * Needs root and iptables; exits 77 (skip) without them.
 */
#include <errno.h>
#include <getopt.h>
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

#define NKEYS 4
#define MARK_BASE 0xd10000	/* + uid: unique per run and node */
#define MAX_RULES 256

static volatile sig_atomic_t g_stop;

static void
on_signal(int sig)
{
	(void)sig;
	g_stop = 1;
}

/* ---- deterministic random numbers (xorshift64*) ---- */

/*
 * Two streams: the fault schedule (drawn only when a fault is due, so the
 * same seed gives the same schedule whatever the timing) and the workload.
 */
static uint64_t rng_state[2];
enum { RNG_FAULT, RNG_WORK };

static uint64_t
rnd(int stream)
{
	uint64_t *x = &rng_state[stream];

	*x ^= *x >> 12;
	*x ^= *x << 25;
	*x ^= *x >> 27;
	return *x * 2685821657736338717ULL;
}

/* Uniform in [lo, hi]. */
static long
rnd_range(int stream, long lo, long hi)
{
	return lo + (long)(rnd(stream) % (uint64_t)(hi - lo + 1));
}

/* ---- iptables rules ---- */

struct rule {
	char table[8];		/* "mangle" or "filter" */
	char chain[8];
	char spec[160];		/* match and target, space separated */
	bool active;
};

static struct rule g_rules[MAX_RULES];
static int g_nrules;
static bool g_verbose;

static int
iptables(const char *op, const struct rule *r)
{
	char *argv[40], buf[sizeof(r->spec)];
	int argc = 0, status;
	pid_t pid;

	argv[argc++] = "iptables";
	argv[argc++] = "-w";
	argv[argc++] = "5";
	argv[argc++] = "-t";
	argv[argc++] = (char *)r->table;
	argv[argc++] = (char *)op;
	argv[argc++] = (char *)r->chain;
	snprintf(buf, sizeof(buf), "%s", r->spec);
	for (char *tok = strtok(buf, " "); tok != NULL && argc < 38;
	    tok = strtok(NULL, " "))
		argv[argc++] = tok;
	argv[argc] = NULL;
	if (g_verbose)
		fprintf(stderr, "faults: iptables -t %s %s %s %s\n", r->table,
		    op, r->chain, r->spec);
	if ((pid = fork()) < 0)
		return -1;
	if (pid == 0) {
		execvp("iptables", argv);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* Add a rule; it is remembered so that cleanup deletes it exactly. */
static int
rule_add(const char *table, const char *chain, const char *fmt, ...)
{
	struct rule *r;
	va_list ap;

	if (g_nrules >= MAX_RULES)
		return -1;
	r = &g_rules[g_nrules];
	snprintf(r->table, sizeof(r->table), "%s", table);
	snprintf(r->chain, sizeof(r->chain), "%s", chain);
	va_start(ap, fmt);
	vsnprintf(r->spec, sizeof(r->spec), fmt, ap);
	va_end(ap);
	if (iptables("-A", r) != 0) {
		fprintf(stderr, "faults: iptables -A %s %s failed\n", chain,
		    r->spec);
		return -1;
	}
	r->active = true;
	g_nrules++;
	return 0;
}

/* Delete the active rules of table (NULL: all), newest first. */
static int
rules_delete(const char *table)
{
	int bad = 0;

	for (int k = g_nrules - 1; k >= 0; k--) {
		struct rule *r = &g_rules[k];

		if (!r->active || (table != NULL && strcmp(r->table, table)))
			continue;
		if (iptables("-D", r) != 0) {
			fprintf(stderr, "faults: could not delete rule -t %s "
			    "%s %s\n", r->table, r->chain, r->spec);
			bad++;
		}
		r->active = false;
	}
	/* compact: drop inactive rules from the end */
	while (g_nrules > 0 && !g_rules[g_nrules - 1].active)
		g_nrules--;
	return bad;
}

/* ---- the run ---- */

enum fault {
	F_PARTITION, F_HEAL, F_KILL_AGENT, F_RESTART, F_RESTART_WIPED,
	F_KILL_SERF, F_CRASH, F_NKINDS
};
static const char *const fault_name[F_NKINDS] = {
	"partition", "heal", "kill_agent", "restart", "restart_wiped",
	"kill_serf", "unexpected_exit",
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

struct run {
	struct cluster c;
	int n;
	int seconds;
	uint64_t seed;
	bool keep;
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
	char joins[CLUSTER_MAX][CLUSTER_MAX][32];
};

/* The packet mark of node i: its uid is unique among concurrent runs. */
static int
node_mark(const struct run *r, int i)
{
	return MARK_BASE + (int)r->c.node[i].uid;
}

static long long
rel_ms(const struct run *r)
{
	return harness_now_ms() - r->t0;
}

static void
logf_(const struct run *r, const char *fmt, ...)
{
	va_list ap;

	if (!g_verbose)
		return;
	fprintf(stderr, "faults: [%7.3f] ", (double)rel_ms(r) / 1000.0);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Extra arguments of node i: its state dir and a join of every other node
 * (the cluster code only joins node 0, or node 1 for node 0). */
static void
node_setup_args(struct run *r, int i)
{
	struct cluster_node *nd = &r->c.node[i];
	size_t k = 0;

	nd->extra[k++] = "--state-dir";
	nd->extra[k++] = nd->h.state_dir;
	for (int j = 0; j < r->n && k + 2 <= CLUSTER_MAX_ARGS; j++) {
		if (j == i || j == (i == 0 ? 1 : 0))
			continue;
		snprintf(r->joins[i][j], sizeof(r->joins[i][j]), "%s",
		    r->c.node[j].bind);
		nd->extra[k++] = "--join";
		nd->extra[k++] = r->joins[i][j];
	}
	nd->extra[k] = NULL;
}

static int
chown_tree(const char *path, uid_t uid, gid_t gid)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "chown -R %u:%u '%s'", (unsigned)uid,
	    (unsigned)gid, path);
	return system(cmd) == 0 ? 0 : -1;
}

static int
empty_state_dir(struct run *r, int i)
{
	struct cluster_node *nd = &r->c.node[i];
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s' && mkdir '%s'",
	    nd->h.state_dir, nd->h.state_dir);
	if (system(cmd) != 0)
		return -1;
	return chown_tree(nd->h.state_dir, nd->uid, nd->gid);
}

static void
drop_client(struct run *r, int i)
{
	distkv_close(r->k[i]);
	r->k[i] = NULL;
}

/* Wait (bounded) for pid, a child or an adopted orphan, to go away. */
static void
reap_pid(pid_t pid, int timeout_ms)
{
	long long deadline = harness_now_ms() + timeout_ms;

	while (pid > 0) {
		pid_t got = waitpid(pid, NULL, WNOHANG);

		if (got == pid || (got < 0 && errno == ECHILD &&
		    kill(pid, 0) != 0))
			return;
		if (harness_now_ms() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			return;
		}
		usleep(5000);
	}
}

static void
kill_agent(struct run *r, int i)
{
	struct cluster_node *nd = &r->c.node[i];
	pid_t serf = cluster_serf_pid(&r->c, i);

	drop_client(r, i);
	kill(nd->h.pid, SIGKILL);
	waitpid(nd->h.pid, NULL, 0);
	nd->h.pid = 0;
	/* the serf child gets SIGTERM from PDEATHSIG; we are its subreaper */
	reap_pid(serf, 5000);
	r->down[i] = true;
	r->restart_at[i] = harness_now_ms() + rnd_range(RNG_FAULT, 1000, 6000);
	r->wipe[i] = rnd_range(RNG_FAULT, 0, 99) < r->wipe_pct;
	r->faults[F_KILL_AGENT]++;
	logf_(r, "kill -9 %s (serf %d)", nd->name, (int)serf);
}

static int
restart_node(struct run *r, int i, bool wipe)
{
	if (wipe) {
		if (empty_state_dir(r, i) != 0)
			return -1;
		r->epoch[i]++;
	}
	r->down[i] = false;
	logf_(r, "restart %s%s", r->c.node[i].name, wipe ? " (wiped)" : "");
	return cluster_spawn(&r->c, i, false);
}

/*
 * Self-check of the partition, before it is lifted: a running node of the
 * first group and one of another group; do their dumps differ?  (With
 * writes every 20 ms they should, unless the cut leaks.)
 */
static void
probe_partition(struct run *r)
{
	struct cluster_dump a, b;
	char why[256];
	int x = -1, y = -1;

	if (!r->partitioned)
		return;
	for (int i = 0; i < r->n; i++) {
		if (r->c.node[i].h.pid <= 0 || r->down[i])
			continue;
		if (x < 0)
			x = i;
		else if (y < 0 && r->group[i] != r->group[x])
			y = i;
	}
	if (x < 0 || y < 0 || cluster_dump(&r->c, x, &a) != 0)
		return;
	if (cluster_dump(&r->c, y, &b) == 0) {
		r->probes++;
		if (cluster_dump_cmp(&a, &b, why, sizeof(why)) != 0)
			r->probes_diverged++;
		cluster_dump_free(&b);
	}
	cluster_dump_free(&a);
}

static void
do_partition(struct run *r)
{
	int group[CLUSTER_MAX], ngroups, used;
	char desc[128];
	size_t off = 0;

	probe_partition(r);
	rules_delete("filter");
	do {
		ngroups = r->n >= 4 ? (int)rnd_range(RNG_FAULT, 2, 3) : 2;
		used = 0;
		for (int i = 0; i < r->n; i++) {
			group[i] = (int)rnd_range(RNG_FAULT, 0, ngroups - 1);
			used |= 1 << group[i];
		}
	} while (__builtin_popcount((unsigned)used) < 2);
	for (int a = 0; a < r->n; a++)
		for (int b = 0; b < r->n; b++)
			if (group[a] != group[b])
				rule_add("filter", "INPUT", "-m mark --mark %d "
				    "-d 127.0.0.%d -j DROP", node_mark(r, a),
				    r->c.ipbase + b);
	desc[0] = '\0';
	for (int g = 0; g < ngroups; g++) {
		if (!(used & (1 << g)))
			continue;
		off += (size_t)snprintf(desc + off, sizeof(desc) - off, " {");
		for (int i = 0; i < r->n; i++)
			if (group[i] == g)
				off += (size_t)snprintf(desc + off,
				    sizeof(desc) - off, " n%d", i);
		off += (size_t)snprintf(desc + off, sizeof(desc) - off, " }");
	}
	memcpy(r->group, group, sizeof(group));
	r->partitioned = true;
	r->faults[F_PARTITION]++;
	logf_(r, "partition%s", desc);
}

static void
do_heal(struct run *r)
{
	probe_partition(r);
	rules_delete("filter");
	if (r->partitioned) {
		r->faults[F_HEAL]++;
		logf_(r, "heal");
	}
	r->partitioned = false;
}

static int
n_down(const struct run *r)
{
	int d = 0;

	for (int i = 0; i < r->n; i++)
		d += r->down[i];
	return d;
}

static void
inject(struct run *r)
{
	long dice = rnd_range(RNG_FAULT, 0, 99);
	int i = (int)rnd_range(RNG_FAULT, 0, r->n - 1);
	int maxdown = (r->n - 1) / 2 > 0 ? (r->n - 1) / 2 : 1;

	if (dice < 35)
		do_partition(r);
	else if (dice < 55)
		do_heal(r);
	else if (dice < 80) {
		if (r->down[i] || n_down(r) >= maxdown || r->c.node[i].h.pid <= 0)
			return;
		kill_agent(r, i);
	} else {
		pid_t serf;

		if (r->down[i] || (serf = cluster_serf_pid(&r->c, i)) <= 0)
			return;
		kill(serf, SIGKILL);
		r->faults[F_KILL_SERF]++;
		logf_(r, "kill -9 serf of %s (pid %d)", r->c.node[i].name,
		    (int)serf);
	}
}

/* Restarts that are due, and agents that died on their own. */
static void
housekeeping(struct run *r, bool all_now)
{
	for (int i = 0; i < r->n; i++) {
		struct cluster_node *nd = &r->c.node[i];
		int status;

		if (nd->h.pid > 0 &&
		    waitpid(nd->h.pid, &status, WNOHANG) == nd->h.pid) {
			fprintf(stderr, "faults: %s (pid %d) exited on its own "
			    "(status 0x%x) at %.3f s; see %s/agent.err\n",
			    nd->name, (int)nd->h.pid, status,
			    (double)rel_ms(r) / 1000.0, nd->h.dir);
			nd->h.pid = 0;
			drop_client(r, i);
			r->faults[F_CRASH]++;
			r->down[i] = true;
			r->restart_at[i] = harness_now_ms() + 1000;
			r->wipe[i] = false;
		}
		if (r->down[i] && (all_now ||
		    harness_now_ms() >= r->restart_at[i])) {
			bool wipe = !all_now && r->wipe[i];

			if (restart_node(r, i, wipe) == 0)
				r->faults[wipe ? F_RESTART_WIPED : F_RESTART]++;
		}
	}
}

static uint8_t *
pack_int(int64_t v, size_t *len)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_int64(&pk, v);
	*len = sb.size;
	return (uint8_t *)sb.data;
}

static void
one_write(struct run *r, int64_t id)
{
	int i = (int)rnd_range(RNG_WORK, 0, r->n - 1);
	int key = (int)rnd_range(RNG_WORK, 0, NKEYS - 1);
	bool del = rnd_range(RNG_WORK, 0, 99) < 15;
	struct distkv_set_result res;
	struct distkv_set_opts opts;
	distkv_path *p;
	uint8_t *val = NULL;
	size_t len = 0;
	int rc;

	if (r->c.node[i].h.pid <= 0)
		return;
	if (r->k[i] == NULL) {
		if (distkv_connect(r->c.node[i].h.socket, &r->k[i]) != 0) {
			r->k[i] = NULL;
			return;		/* down, or still downloading */
		}
		distkv_set_timeout(r->k[i], 3000);
	}
	memset(&opts, 0, sizeof(opts));
	opts.nchain = 1;
	memset(&res, 0, sizeof(res));
	p = cluster_path("fk", key);
	if (del)
		rc = distkv_delete(r->k[i], p, &opts, &res);
	else {
		val = pack_int(id, &len);
		rc = distkv_set(r->k[i], p, val, len, &opts, &res);
	}
	distkv_path_free(p);
	free(val);
	if (rc != 0) {
		r->write_errors++;
		if (rc == DISTKV_EDISCONNECTED || rc == DISTKV_ETIMEDOUT ||
		    rc == DISTKV_EPROTO)
			drop_client(r, i);
		distkv_set_result_clear(&res);
		return;
	}
	if (res.changed && res.chain.n > 0) {
		struct write_rec *w;

		if (r->nw == r->capw) {
			r->capw = r->capw ? r->capw * 2 : 1024;
			r->w = realloc(r->w, r->capw * sizeof(*r->w));
			if (r->w == NULL)
				abort();
		}
		w = &r->w[r->nw++];
		memset(w, 0, sizeof(*w));
		w->node = i;
		w->epoch = r->epoch[i];
		w->key = key;
		w->del = del;
		w->value = id;
		snprintf(w->head, sizeof(w->head), "%s", res.chain.ev[0].node);
		w->tick = res.chain.ev[0].tick;
		w->tock = res.tock;
		w->t_ms = rel_ms(r);
	}
	distkv_set_result_clear(&res);
}

/* ---- the check ---- */

struct link {
	char node[DISTKV_NODE_MAX + 1];
	uint64_t tick;
};

/* Decode a dump chain (nested {node, tick, prev} maps). */
static size_t
parse_chain(const uint8_t *b, size_t len, struct link *out, size_t max)
{
	msgpack_unpacked up;
	const msgpack_object *o;
	size_t n = 0;

	if (b == NULL)
		return 0;
	msgpack_unpacked_init(&up);
	if (msgpack_unpack_next(&up, (const char *)b, len, NULL) !=
	    MSGPACK_UNPACK_SUCCESS) {
		msgpack_unpacked_destroy(&up);
		return 0;
	}
	o = &up.data;
	while (o != NULL && o->type == MSGPACK_OBJECT_MAP && n < max) {
		const msgpack_object *next = NULL;

		memset(&out[n], 0, sizeof(out[n]));
		for (uint32_t k = 0; k < o->via.map.size; k++) {
			const msgpack_object *key = &o->via.map.ptr[k].key;
			const msgpack_object *v = &o->via.map.ptr[k].val;

			if (key->type != MSGPACK_OBJECT_STR)
				continue;
			if (key->via.str.size == 4 &&
			    !memcmp(key->via.str.ptr, "node", 4) &&
			    v->type == MSGPACK_OBJECT_STR)
				snprintf(out[n].node, sizeof(out[n].node),
				    "%.*s", (int)v->via.str.size,
				    v->via.str.ptr);
			else if (key->via.str.size == 4 &&
			    !memcmp(key->via.str.ptr, "tick", 4) &&
			    v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
				out[n].tick = v->via.u64;
			else if (key->via.str.size == 4 &&
			    !memcmp(key->via.str.ptr, "prev", 4))
				next = v;
		}
		n++;
		o = next;
	}
	msgpack_unpacked_destroy(&up);
	return n;
}

/* Does the final entry (head fh/ftick, tock ftock) win over write w? */
static bool
conflict_wins(const char *fh, uint64_t ftick, uint64_t ftock,
    const struct write_rec *w)
{
	int c;

	if (ftock != w->tock)
		return ftock > w->tock;
	if ((c = strcmp(fh, w->head)) != 0)
		return c > 0;
	return ftick > w->tick;
}

static int
check(struct run *r, const struct cluster_dump *d, int *expected)
{
	int violations = 0, shown = 0;

	*expected = 0;
	for (size_t k = 0; k < r->nw; k++) {
		const struct write_rec *w = &r->w[k];
		distkv_path *p = cluster_path("fk", w->key);
		size_t plen, n;
		uint8_t *pb = cluster_path_bytes(p, &plen);
		const struct cluster_item *it = cluster_dump_find(d, pb, plen);
		struct link l[CLUSTER_MAX_ARGS];
		char why[400];
		bool ok = false;

		distkv_path_free(p);
		free(pb);
		why[0] = '\0';
		if (it == NULL) {
			snprintf(why, sizeof(why), "key missing from the tree");
		} else if ((n = parse_chain(it->chain, it->chain_len, l,
		    CLUSTER_MAX_ARGS)) == 0) {
			snprintf(why, sizeof(why), "final entry has no chain");
		} else if (!strcmp(l[0].node, w->head) && l[0].tick == w->tick) {
			size_t vlen;
			uint8_t *v = w->del ? NULL : pack_int(w->value, &vlen);
			/* a delete leaves nil in the dump */
			static const uint8_t nil = 0xc0;

			if (w->del)
				ok = it->value_len == 1 && it->value[0] == nil;
			else
				ok = it->value_len == vlen &&
				    !memcmp(it->value, v, vlen);
			if (!ok)
				snprintf(why, sizeof(why), "final head is the "
				    "write's but the value differs");
			free(v);
		} else {
			for (size_t j = 0; j < n && !ok; j++)
				ok = !strcmp(l[j].node, w->head) &&
				    l[j].tick >= w->tick;
			if (!ok)
				ok = conflict_wins(l[0].node, l[0].tick,
				    it->tock, w);
			if (!ok)
				snprintf(why, sizeof(why), "lost to %s:%llu "
				    "tock %llu, which neither descends from "
				    "it nor wins the conflict rule",
				    l[0].node, (unsigned long long)l[0].tick,
				    (unsigned long long)it->tock);
		}
		if (ok)
			continue;
		if (w->epoch < r->epoch[w->node]) {
			(*expected)++;	/* its node's state dir was emptied */
			continue;
		}
		violations++;
		if (shown++ < 20)
			fprintf(stderr, "faults: VIOLATION: %s %s fk/%d = %lld "
			    "acked by %s at %.3f s: head %s:%llu tock %llu: "
			    "%s\n", w->del ? "delete" : "set",
			    w->del ? "of" : "of", w->key,
			    (long long)w->value, r->c.node[w->node].name,
			    (double)w->t_ms / 1000.0, w->head,
			    (unsigned long long)w->tick,
			    (unsigned long long)w->tock, why);
	}
	return violations;
}

/* Acknowledged writes that share a (node, tick) with another one. */
static int
count_tick_reuse(const struct run *r)
{
	int dup = 0;

	for (size_t a = 0; a < r->nw; a++)
		for (size_t b = a + 1; b < r->nw; b++)
			if (r->w[a].tick == r->w[b].tick &&
			    !strcmp(r->w[a].head, r->w[b].head)) {
				if (dup++ < 5)
					fprintf(stderr, "faults: tick reuse: "
					    "%s:%llu acked for fk/%d=%lld and "
					    "fk/%d=%lld\n", r->w[a].head,
					    (unsigned long long)r->w[a].tick,
					    r->w[a].key,
					    (long long)r->w[a].value,
					    r->w[b].key,
					    (long long)r->w[b].value);
				break;
			}
	return dup;
}

/* ---- main ---- */

static void
usage(void)
{
	fprintf(stderr, "usage: distkv-faults [--nodes N] [--seconds S] "
	    "[--seed X] [--converge-timeout S] [--wipe-percent P] [--keep]\n"
	    "       [--verbose]\n"
	    "  P: share of agent restarts with an emptied state dir (25)\n");
}

static void
cleanup(struct run *r)
{
	for (int i = 0; i < r->n; i++)
		drop_client(r, i);
	rules_delete(NULL);
	if (r->keep)
		setenv("DISTKV_KEEP", "1", 1);
	cluster_cleanup(&r->c);
	free(r->w);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "nodes", required_argument, NULL, 'n' },
		{ "seconds", required_argument, NULL, 's' },
		{ "seed", required_argument, NULL, 'x' },
		{ "converge-timeout", required_argument, NULL, 'c' },
		{ "keep", no_argument, NULL, 'k' },
		{ "wipe-percent", required_argument, NULL, 'w' },
		{ "verbose", no_argument, NULL, 'v' },
		{ NULL, 0, NULL, 0 },
	};
	static struct run run;
	struct run *r = &run;
	struct sigaction sa;
	struct cluster_dump final;
	long long next_fault, t_end, t_heal, t_conv = -1;
	int opt, violations = 0, expected = 0, rc = 1, ipbase, checked_on = 0;
	int64_t id = 0;
	char why[2048];
	unsigned base_uid;

	r->n = 3;
	r->seconds = 60;
	r->seed = (uint64_t)time(NULL);
	r->converge_ms = 90000;
	r->wipe_pct = 25;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'n': r->n = atoi(optarg); break;
		case 's': r->seconds = atoi(optarg); break;
		case 'x': r->seed = strtoull(optarg, NULL, 0); break;
		case 'c': r->converge_ms = atoi(optarg) * 1000; break;
		case 'k': r->keep = true; break;
		case 'w': r->wipe_pct = atoi(optarg); break;
		case 'v': g_verbose = true; break;
		default: usage(); return 2;
		}
	}
	if (r->n < 2 || r->n > CLUSTER_MAX || r->seconds < 1) {
		usage();
		return 2;
	}
	if (geteuid() != 0) {
		fprintf(stderr, "distkv-faults: needs root (uids, iptables); "
		    "skipped\n");
		return 77;
	}
	if (system("iptables -w 5 -t mangle -S OUTPUT >/dev/null 2>&1") != 0) {
		fprintf(stderr, "distkv-faults: iptables missing or unusable; "
		    "skipped\n");
		return 77;
	}
	for (int k = 0; k < 2; k++) {
		rng_state[k] = (r->seed + (uint64_t)k) * 0x9E3779B97F4A7C15ULL +
		    0x1234567ULL;
		if (rng_state[k] == 0)
			rng_state[k] = 1;
		(void)rnd(k);
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* a killed agent's serf child is reparented to us, not init */
	prctl(PR_SET_CHILD_SUBREAPER, 1);

	ipbase = 60 + (int)(getpid() % 8) * 16;
	if (cluster_init(&r->c, r->n, ipbase) != 0) {
		fprintf(stderr, "distkv-faults: no free ports\n");
		return 1;
	}
	r->c.log_level = "info";
	/* uids and marks unique per run: derived from the port triple */
	base_uid = 21000u + (unsigned)((r->c.port - 20000) / 4) * 8u;
	for (int i = 0; i < r->n; i++) {
		struct cluster_node *nd = &r->c.node[i];

		nd->uid = (uid_t)(base_uid + (unsigned)i);
		nd->gid = (gid_t)(base_uid + (unsigned)i);
		if (mkdir(nd->h.state_dir, 0700) != 0 ||
		    chown_tree(nd->h.dir, nd->uid, nd->gid) != 0 ||
		    chmod(nd->h.dir, 0755) != 0) {
			fprintf(stderr, "distkv-faults: cannot prepare %s\n",
			    nd->h.dir);
			goto out;
		}
		node_setup_args(r, i);
	}
	for (int i = 0; i < r->n; i++)
		if (rule_add("mangle", "OUTPUT", "-m owner --uid-owner %u -j "
		    "MARK --set-mark %d", (unsigned)r->c.node[i].uid,
		    node_mark(r, i)) != 0)
			goto out;

	r->t0 = harness_now_ms();
	if (cluster_start(&r->c) != 0) {
		fprintf(stderr, "distkv-faults: cluster did not start\n%s",
		    cluster_diag(&r->c));
		goto out;
	}
	logf_(r, "cluster of %d up (ports %d.., uids %u..)", r->n, r->c.port,
	    base_uid);

	/* ---- workload and faults ---- */
	t_end = harness_now_ms() + (long long)r->seconds * 1000;
	next_fault = harness_now_ms() + rnd_range(RNG_FAULT, 1000, 3000);
	while (!g_stop && harness_now_ms() < t_end) {
		one_write(r, ++id);
		if (harness_now_ms() >= next_fault) {
			inject(r);
			next_fault = harness_now_ms() +
			    rnd_range(RNG_FAULT, 1000, 4000);
		}
		housekeeping(r, false);
		usleep(20000);
	}
	if (g_stop)
		goto out;

	/* ---- heal everything, restart the dead, converge ---- */
	do_heal(r);
	housekeeping(r, true);
	t_heal = harness_now_ms();
	logf_(r, "final heal; waiting for convergence");
	for (int i = 0; i < r->n && !g_stop; i++)
		if (cluster_wait_socket(&r->c, i, (int)(r->converge_ms -
		    (harness_now_ms() - t_heal))) != 0) {
			fprintf(stderr, "distkv-faults: %s: no socket after the "
			    "final heal\n", r->c.node[i].name);
			break;
		}
	/* in slices, so that a signal does not wait for the deadline */
	while (!g_stop && t_conv < 0 &&
	    harness_now_ms() - t_heal < r->converge_ms)
		if (cluster_wait_same(&r->c, 0, 1000, why, sizeof(why)) == 0)
			t_conv = harness_now_ms() - t_heal;
	if (g_stop)
		goto out;
	if (t_conv < 0)
		fprintf(stderr, "distkv-faults: TIMEOUT: no convergence in "
		    "%d s: %s\n%s", r->converge_ms / 1000, why,
		    cluster_diag(&r->c));
	housekeeping(r, false);		/* report crashes during convergence */

	/*
	 * Check against node 0's tree, or without convergence against the
	 * first node that answers (the result is then only indicative).
	 */
	for (checked_on = 0; checked_on < r->n; checked_on++)
		if (cluster_dump(&r->c, checked_on, &final) == 0)
			break;
	{
		if (checked_on == r->n) {
			fprintf(stderr, "distkv-faults: no node answers dump\n");
			t_conv = -1;
		} else {
			violations = check(r, &final, &expected);
			if (g_verbose)
				for (size_t k = 0; k < final.n; k++) {
					char vb[128];
					msgpack_unpacked up;

					msgpack_unpacked_init(&up);
					vb[0] = 0;
					if (msgpack_unpack_next(&up,
					    (const char *)final.it[k].value,
					    final.it[k].value_len, NULL) ==
					    MSGPACK_UNPACK_SUCCESS)
						msgpack_object_print_buffer(vb,
						    sizeof(vb), up.data);
					msgpack_unpacked_destroy(&up);
					fprintf(stderr, "faults: final item "
					    "%zu: value %s tock %llu\n", k, vb,
					    (unsigned long long)
					    final.it[k].tock);
				}
			cluster_dump_free(&final);
		}
	}
	rc = (t_conv < 0 || violations > 0 || r->faults[F_CRASH] > 0) ? 1 : 0;
	{
		int reuse = count_tick_reuse(r);
		size_t dels = 0;

		for (size_t k = 0; k < r->nw; k++)
			dels += r->w[k].del;
		char fl[256];
		size_t off = 0;

		for (int f = 0; f < F_NKINDS; f++)
			off += (size_t)snprintf(fl + off, sizeof(fl) - off,
			    " %s=%d", fault_name[f], r->faults[f]);
		printf("distkv-faults: seed=%llu nodes=%d duration=%ds "
		    "faults:%s acked=%zu (deletes %zu) write_errors=%lu "
		    "violations=%d expected_wipe_losses=%d tick_reuse=%d "
		    "partition_probes_diverged=%d/%d converge_ms=%lld "
		    "checked_on=%s%s %s\n",
		    (unsigned long long)r->seed, r->n, r->seconds, fl,
		    r->nw, dels, r->write_errors, violations, expected,
		    reuse, r->probes_diverged, r->probes, t_conv,
		    checked_on < r->n ? r->c.node[checked_on].name : "none",
		    t_conv < 0 ? "(unconverged)" : "",
		    rc == 0 ? "PASS" : t_conv < 0 ? "FAIL(timeout)" :
		    "FAIL");
		fflush(stdout);
	}
	if (rc != 0 && !r->keep)
		fprintf(stderr, "%s", cluster_diag(&r->c));
out:
	if (g_stop)
		fprintf(stderr, "distkv-faults: interrupted; cleaning up\n");
	cleanup(r);
	return g_stop ? 130 : rc;
}
