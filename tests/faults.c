/*
 * distkv-faults: fault-injection run of a loopback DistKV cluster.
 *
 * Starts N agents (each with its embedded serf) through tests/cluster.c,
 * every node as its own uid on its own loopback address with a state dir.
 * A workload writes and deletes a few keys on every node and records every
 * acknowledged change (node, key, value, chain head, tock); it also reads
 * the keys over every node's socket (get_value with one chain link) and
 * records every answered read (node asked, key, value bytes, chain head,
 * tock).  Faults come on a schedule drawn from the seed: partitions
 * (iptables: packets marked by uid in mangle OUTPUT, dropped on INPUT by
 * mark and destination address, serf-notes.md section 7), heals, kill -9
 * of agents (restarted after a while with their state dir, or sometimes
 * with an emptied one) and kill -9 of serf children.  At the end
 * everything is healed and restarted, the run waits for identical dumps on
 * every node and checks every acknowledged write and every answered read
 * against the final tree, with one rule for both:
 *
 *   - the final entry has the write's (read's) head: the value must be
 *     the one written (read);
 *   - else the final chain holds the head's node with a tick >= the
 *     head's tick (superseded by a causal successor);
 *   - else the final entry must win the conflict rule against it
 *     (higher tock; equal tocks: higher head node name, then higher tick).
 *
 * A read of nothing (no value, or a tombstone) is not checked: it claims
 * no value that could be lost.
 *
 * Writes of a node incarnation whose state dir was later emptied may be
 * lost (docs/cluster.md, "Limits"); they are counted apart as expected.
 * The same holds for a read when every copy we know of went that way: the
 * node that answered was emptied after the read, and so was the
 * incarnation that made the write (if the write was never acknowledged to
 * us: any emptying of the head's node).  Two acknowledged writes with the
 * same (node, tick) are reported as tick reuse (a node restarted with an
 * emptied state dir numbered a change again).  While partitioned, just
 * before each heal or new partition, the dumps of two nodes on different
 * sides are compared: the summary's partition_probes_diverged shows that
 * the cuts really cut.  Without convergence the check runs against the
 * first node that answers dump (indicative only).  Convergence after the
 * final heal is given in ms, in seconds and in the cluster's clocks
 * (--clock of the agents, 0.2 s).
 *
 * --split runs a deterministic split scenario instead (no faults, no
 * random workload): every node writes a marker and the run waits for
 * identical dumps and (if the agents report it) until no node runs a
 * recovery; the nodes are cut into two halves (the first ceil(N/2) and
 * the rest) with the same iptables rules; K changes (--changes, 10)
 * are made alternately on the two sides, each on another node of its
 * side, and each must be acknowledged.  The run waits until the nodes of
 * each side hold identical dumps with all of that side's changes, then
 * probes the cut: no node may hold a change of the other side.  Once the
 * cut has held for 10 clocks (each side pings on its own, and Serf stops
 * re-gossiping the split's changes, so recovery has work to do) it
 * heals, waits for identical dumps on every node, checks the changes as
 * above and reads the agents' recovery counters (get_state {recovery:
 * true}: recoveries, retransmit_events, retransmit_entries,
 * missing_reports, known_reports, catchup_items), summed over the nodes
 * and counted from just before the cut, read once the dumps are
 * identical and no node answers missing reports any more
 * (recovery_running: nodes whose recovery still ran then).  A
 * counter no node reports is printed as n/a.  lost_events counts, over
 * the nodes, the changes made on the other side; retransmitted_per_lost
 * is (retransmit_entries + catchup_items) / lost_events.  The run fails
 * if the cut leaked, a side or the healed cluster does not converge within
 * --converge-timeout, a change is lost, or (when reported, K <= 10)
 * retransmit_events exceeds N + 1: the spec allows at most N + 1 update
 * messages to repair up to 10 changes made during a split of N servers.
 * On a convergence timeout the entries that differ are printed, with
 * every node's value, tock and chain.  Two convergence times, from the
 * heal: converge_ms, when a pass of dumps first found every node the
 * same (a pass of 20 dumps takes 60-100 ms, passes are 50 ms apart), and
 * applied_ms, when the last node applied the last change, timed by a
 * watch on every node's tree (its own thread) as the items arrive.
 *
 * --wipe-split runs the deterministic scenario of a node that loses its
 * disk during a split.  The victim is node N/2, its holders the K
 * (--unique: 0, 1 or 2) nodes after it (modulo N), the rest the
 * majority.  The victim sets pv/<victim>/x = "before" and the run waits
 * for identical dumps with it and until no node runs a recovery; it cuts
 * {victim, holders} off the rest, sets pv/<victim>/x to "v1".."v5" and
 * creates pv/<victim>/new on the victim (each acknowledged), waits until
 * the victim's side holds them and probes that no other node does.  It
 * kills the victim (-9) and empties its state dir, then moves the cut to
 * {rest, victim} | {holders}: the new rules are added before the old ones
 * are deleted, so no packet crosses while it moves (K = 0: the cut is
 * simply lifted).  The victim restarts without data, downloads from the
 * majority and skips ticks (its log's "restarted without data: ticks A-B
 * skipped"; the summary says whether the tick of "v5" lies in A-B).  Once
 * the majority side holds one tree with "before", every node there knows
 * the skipped ticks A-B and misses none (get_state {known, missing}:
 * healing before the victim's announcement arrives would let a node ask
 * for the holders' ticks and repair the split by chance), and at least
 * WIPE_HOLD_CLOCKS (10) clocks have passed since the victim's last write
 * (Serf has stopped gossiping its events), everything heals (the rules
 * go one by one, newest first, which takes a few hundred ms; as for
 * --split, converge_ms counts from the last one).  The run then waits at
 * most WIPE_CONVERGE_CLOCKS (30) clocks for identical dumps
 * and checks every node: for K >= 1 x = "v5" and new = "new" (the
 * acknowledged writes survived on the holders and must win), for K = 0
 * x = "before" and no new (they died with the victim's disk), and no node
 * may report missing ticks (get_state {missing}) within the same
 * deadline.  The other phases wait within --converge-timeout.  On failure
 * every node's entries of the victim (value, tock, chain) and its
 * get_state {nodes, known, missing, remote_missing} are printed.
 *
 * Usage: distkv-faults [--nodes N] [--seconds S] [--seed X]
 *     [--converge-timeout S] [--wipe-percent P] [--keep] [--verbose]
 *        distkv-faults --split [--nodes N] [--changes K]
 *     [--converge-timeout S] [--keep] [--verbose]
 *        distkv-faults --wipe-split [--nodes N] [--unique K]
 *     [--converge-timeout S] [--keep] [--verbose]
 * Every form takes --clock S, the agents' --clock (default 0.2).
 * The fault schedule is drawn from its own random stream, so a seed gives
 * the same schedule (up to timing: e.g. whether a restarted node is up);
 * writes and reads have a stream each as well.  --keep keeps the temp
 * dirs (agent.err, run/serf.log, state) for a look.
 *
 * One summary line on stdout; exit 0 only without violations or timeouts.
 * Only its own pids are killed, only its own iptables rules deleted (also
 * on SIGINT/SIGTERM/SIGHUP), temp dirs are removed unless --keep.
 *
 * Needs root and iptables; exits 77 (skip) without them.
 */
#include "faults.h"

volatile sig_atomic_t g_stop;

/*
 * Every failure message, kept so that print_diag() can repeat them after
 * the agents' logs: CI shows only a log's tail, and the logs would
 * otherwise bury the reason.
 */
static char g_complaints[4096];
static size_t g_ncomplaints;

void
complain(const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (g_ncomplaints >= sizeof(g_complaints) - 1)
		return;
	va_start(ap, fmt);
	n = vsnprintf(g_complaints + g_ncomplaints,
	    sizeof(g_complaints) - g_ncomplaints, fmt, ap);
	va_end(ap);
	if (n > 0)
		g_ncomplaints += (size_t)n;
	if (g_ncomplaints > sizeof(g_complaints) - 1)
		g_ncomplaints = sizeof(g_complaints) - 1;
}

/* The agents' log tails, then the failure messages once more. */
void
print_diag(const struct cluster *c)
{
	fprintf(stderr, "%s", cluster_diag(c));
	if (g_ncomplaints > 0)
		fprintf(stderr, "---- distkv-faults: what failed (repeated "
		    "from above)\n%s", g_complaints);
}

static void
on_signal(int sig)
{
	(void)sig;
	g_stop = 1;
}

/* ---- deterministic random numbers (xorshift64*) ---- */

/*
 * Three streams: the fault schedule (drawn only when a fault is due, so
 * the same seed gives the same schedule whatever the timing), the writes
 * and the reads (adding reads left the writes of a seed as they were).
 */
enum { RNG_FAULT, RNG_WORK, RNG_READ, RNG_N };
static uint64_t rng_state[RNG_N];

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
int g_nrules;
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
static int rule_add(const char *, const char *, const char *, ...)
    __attribute__((format(printf, 3, 4)));

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

/*
 * Delete the active rules of table (NULL: all) among those added before
 * the count of rules was upto (g_nrules: all), newest first.  Returns the
 * number of rules that could not be deleted.
 */
/*
 * Delete the active rules of table among the first upto in one
 * iptables-restore --noflush transaction, newest first: a heal of a split
 * of 20 nodes is then one step, not 20 iptables runs of ~70 ms each on a
 * loaded machine, which the convergence figure would otherwise count.
 * 0, or -1 (nothing deleted: the caller deletes one by one).
 */
static int
rules_delete_atomic(const char *table, int upto)
{
	int fds[2], status, any = 0;
	pid_t pid;
	FILE *f;

	if (pipe(fds) != 0)
		return -1;
	if ((pid = fork()) < 0) {
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	if (pid == 0) {
		dup2(fds[0], 0);
		close(fds[0]);
		close(fds[1]);
		execlp("iptables-restore", "iptables-restore", "-w", "5",
		    "--noflush", (char *)NULL);
		_exit(127);
	}
	close(fds[0]);
	if ((f = fdopen(fds[1], "w")) == NULL) {
		close(fds[1]);
		waitpid(pid, NULL, 0);
		return -1;
	}
	fprintf(f, "*%s\n", table);
	for (int k = upto - 1; k >= 0; k--) {
		const struct rule *r = &g_rules[k];

		if (!r->active || strcmp(r->table, table) != 0)
			continue;
		fprintf(f, "-D %s %s\n", r->chain, r->spec);
		any++;
	}
	fprintf(f, "COMMIT\n");
	fclose(f);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return -1;
	if (g_verbose)
		fprintf(stderr, "faults: iptables-restore: %d rules of %s "
		    "deleted\n", any, table);
	for (int k = upto - 1; k >= 0; k--)
		if (g_rules[k].active && strcmp(g_rules[k].table, table) == 0)
			g_rules[k].active = false;
	return 0;
}

int
rules_delete_before(const char *table, int upto)
{
	int bad = 0;

	if (table != NULL && rules_delete_atomic(table, upto) == 0)
		upto = 0;	/* done; only the compaction below is left */
	for (int k = upto - 1; k >= 0; k--) {
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

/* Delete the active rules of table (NULL: all), newest first. */
static int
rules_delete(const char *table)
{
	return rules_delete_before(table, g_nrules);
}

/* ---- the run ---- */

static const char *const fault_name[F_NKINDS] = {
	"partition", "heal", "kill_agent", "restart", "restart_wiped",
	"kill_serf", "unexpected_exit",
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

void
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

int
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

void
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

int
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

/*
 * Cut the nodes into groups (group[i]: node i's, < ngroups).  The filter
 * rules of an earlier cut must be gone, or be deleted right after this
 * with rules_delete_before() (--wipe-split moves a cut that way, so that
 * no packet crosses while it moves).  Returns the number of rules that
 * could not be added: the cut then leaks.
 */
int
partition_apply(struct run *r, const int *group, int ngroups)
{
	char desc[128];
	size_t off = 0;
	int bad = 0;

	/*
	 * Per sender, one rule per run of consecutive addresses on other
	 * sides (an iprange): a split of 20 nodes in two halves is 20 rules,
	 * not 200, so it is cut and healed in a few hundred ms.
	 */
	for (int a = 0; a < r->n; a++)
		for (int b = 0; b < r->n; b++) {
			int e = b;

			if (group[a] == group[b])
				continue;
			while (e + 1 < r->n && group[e + 1] != group[a])
				e++;
			if ((e == b ? rule_add("filter", "INPUT", "-m mark "
			    "--mark %d -d 127.0.0.%d -j DROP", node_mark(r, a),
			    r->c.ipbase + b) : rule_add("filter", "INPUT",
			    "-m mark --mark %d -m iprange --dst-range "
			    "127.0.0.%d-127.0.0.%d -j DROP", node_mark(r, a),
			    r->c.ipbase + b, r->c.ipbase + e)) != 0)
				bad++;
			b = e;
		}
	desc[0] = '\0';
	for (int g = 0; g < ngroups; g++) {
		bool any = false;

		for (int i = 0; i < r->n; i++)
			any |= group[i] == g;
		if (!any)
			continue;
		off += (size_t)snprintf(desc + off, sizeof(desc) - off, " {");
		for (int i = 0; i < r->n; i++)
			if (group[i] == g)
				off += (size_t)snprintf(desc + off,
				    sizeof(desc) - off, " n%d", i);
		off += (size_t)snprintf(desc + off, sizeof(desc) - off, " }");
	}
	memcpy(r->group, group, (size_t)r->n * sizeof(group[0]));
	r->partitioned = true;
	r->faults[F_PARTITION]++;
	logf_(r, "partition%s", desc);
	return bad;
}

static void
do_partition(struct run *r)
{
	int group[CLUSTER_MAX], ngroups, used;

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
	/* a rule that fails shows up as an undiverged probe */
	(void)partition_apply(r, group, ngroups);
}

void
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

uint8_t *
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

/* The client of node i, connected on demand; NULL while it is down (or
 * still downloading: its socket opens only then). */
distkv *
client(struct run *r, int i)
{
	if (r->c.node[i].h.pid <= 0)
		return NULL;
	if (r->k[i] == NULL) {
		if (distkv_connect(r->c.node[i].h.socket, &r->k[i]) != 0) {
			r->k[i] = NULL;
			return NULL;
		}
		distkv_set_timeout(r->k[i], 3000);
	}
	return r->k[i];
}

/* After a failed call: a handle that cannot be trusted any more goes. */
void
call_failed(struct run *r, int i, int rc)
{
	if (rc == DISTKV_EDISCONNECTED || rc == DISTKV_ETIMEDOUT ||
	    rc == DISTKV_EPROTO)
		drop_client(r, i);
}

/* v with room for one more element (n used, *cap allocated). */
static void *
grow(void *v, size_t n, size_t *cap, size_t size)
{
	if (n < *cap)
		return v;
	*cap = *cap ? *cap * 2 : 1024;
	if ((v = realloc(v, *cap * size)) == NULL)
		abort();
	return v;
}

/*
 * Set fk/key to id (or delete it) through node i and record the change if
 * the agent acknowledges one.  Returns 0 (recorded), 1 (acknowledged, but
 * nothing changed: a delete of nothing), DISTKV_ECONNECT without a client,
 * or the call's error code.
 */
int
do_write(struct run *r, int i, int key, bool del, int64_t id)
{
	struct distkv_set_result res;
	struct distkv_set_opts opts;
	struct write_rec *w;
	distkv_path *p;
	distkv *k;
	uint8_t *val = NULL;
	size_t len = 0;
	int rc;

	if ((k = client(r, i)) == NULL)
		return DISTKV_ECONNECT;
	memset(&opts, 0, sizeof(opts));
	opts.nchain = 1;
	memset(&res, 0, sizeof(res));
	p = cluster_path("fk", key);
	if (del)
		rc = distkv_delete(k, p, &opts, &res);
	else {
		val = pack_int(id, &len);
		rc = distkv_set(k, p, val, len, &opts, &res);
	}
	distkv_path_free(p);
	free(val);
	if (rc != 0) {
		r->write_errors++;
		call_failed(r, i, rc);
		distkv_set_result_clear(&res);
		return rc;
	}
	if (!res.changed || res.chain.n == 0) {
		distkv_set_result_clear(&res);
		return 1;
	}
	r->w = grow(r->w, r->nw, &r->capw, sizeof(*r->w));
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
	distkv_set_result_clear(&res);
	return 0;
}

static void
one_write(struct run *r, int64_t id)
{
	int i = (int)rnd_range(RNG_WORK, 0, r->n - 1);
	int key = (int)rnd_range(RNG_WORK, 0, NKEYS - 1);
	bool del = rnd_range(RNG_WORK, 0, 99) < 15;

	(void)do_write(r, i, key, del, id);
}

/*
 * Read a random key over a random node's socket (one chain link asked for,
 * which also keeps libdistkv off the shm region) and record the answer.
 */
static void
one_read(struct run *r)
{
	int i = (int)rnd_range(RNG_READ, 0, r->n - 1);
	int key = (int)rnd_range(RNG_READ, 0, NKEYS - 1);
	struct distkv_entry e;
	struct read_rec *rd;
	distkv_path *p;
	distkv *k;
	int rc;

	if ((k = client(r, i)) == NULL)
		return;
	p = cluster_path("fk", key);
	rc = distkv_get(k, p, 1, &e);
	distkv_path_free(p);
	if (rc == DISTKV_ENOTFOUND) {
		r->reads_nil++;
		distkv_entry_clear(&e);
		return;
	}
	if (rc != 0) {
		r->read_errors++;
		call_failed(r, i, rc);
		return;
	}
	if (e.chain.n == 0 || e.value.len > sizeof(rd->value)) {
		/* no value of ours: an answer the check cannot judge */
		fprintf(stderr, "faults: %s answered fk/%d with %zu value "
		    "bytes and %zu chain links\n", r->c.node[i].name, key,
		    e.value.len, e.chain.n);
		r->read_errors++;
		distkv_entry_clear(&e);
		return;
	}
	r->rd = grow(r->rd, r->nrd, &r->caprd, sizeof(*r->rd));
	rd = &r->rd[r->nrd++];
	memset(rd, 0, sizeof(*rd));
	rd->node = i;
	rd->epoch = r->epoch[i];
	rd->key = key;
	memcpy(rd->value, e.value.data, e.value.len);
	rd->value_len = e.value.len;
	snprintf(rd->head, sizeof(rd->head), "%s", e.chain.ev[0].node);
	rd->tick = e.chain.ev[0].tick;
	rd->tock = e.tock;
	rd->t_ms = rel_ms(r);
	distkv_entry_clear(&e);
}

/* ---- the fault run ---- */

static int
run_faults(struct run *r)
{
	struct cluster_dump final;
	long long next_fault, t_end, t_heal, t_conv = -1;
	int violations = 0, expected = 0, read_violations = 0;
	int read_expected = 0, rc, checked_on = 0;
	int64_t id = 0;
	char why[2048];

	t_end = harness_now_ms() + (long long)r->seconds * 1000;
	next_fault = harness_now_ms() + rnd_range(RNG_FAULT, 1000, 3000);
	while (!g_stop && harness_now_ms() < t_end) {
		one_write(r, ++id);
		one_read(r);
		if (harness_now_ms() >= next_fault) {
			inject(r);
			next_fault = harness_now_ms() +
			    rnd_range(RNG_FAULT, 1000, 4000);
		}
		housekeeping(r, false);
		usleep(20000);
	}
	if (g_stop)
		return 1;

	/* ---- heal everything, restart the dead, converge ---- */
	do_heal(r);
	housekeeping(r, true);
	t_heal = harness_now_ms();
	logf_(r, "final heal; waiting for convergence");
	for (int i = 0; i < r->n && !g_stop; i++)
		if (cluster_wait_socket(&r->c, i, (int)(r->converge_ms -
		    (harness_now_ms() - t_heal))) != 0) {
			complain("distkv-faults: %s: no socket after the "
			    "final heal\n", r->c.node[i].name);
			break;
		}
	t_conv = wait_same(r, 0, t_heal, r->converge_ms, why, sizeof(why));
	if (g_stop)
		return 1;
	if (t_conv < 0) {
		complain("distkv-faults: TIMEOUT: no convergence in "
		    "%d s: %s\n", r->converge_ms / 1000, why);
		print_divergence(r);
	}
	housekeeping(r, false);		/* report crashes during convergence */

	/*
	 * Check against node 0's tree, or without convergence against the
	 * first node that answers (the result is then only indicative).
	 */
	for (checked_on = 0; checked_on < r->n; checked_on++)
		if (cluster_dump(&r->c, checked_on, &final) == 0)
			break;
	if (checked_on == r->n) {
		complain("distkv-faults: no node answers dump\n");
		t_conv = -1;
	} else {
		violations = check_writes(r, &final, &expected);
		read_violations = check_reads(r, &final, &read_expected);
		for (size_t k = 0; g_verbose && k < final.n; k++)
			fprintf(stderr, "faults: final item %zu: value %s "
			    "tock %llu\n", k, cluster_show(final.it[k].value,
			    final.it[k].value_len),
			    (unsigned long long)final.it[k].tock);
		cluster_dump_free(&final);
	}
	rc = (t_conv < 0 || violations > 0 || read_violations > 0 ||
	    r->faults[F_CRASH] > 0) ? 1 : 0;
	{
		int reuse = count_tick_reuse(r);
		size_t dels = 0, off = 0;
		char fl[256];

		for (size_t k = 0; k < r->nw; k++)
			dels += r->w[k].del;
		for (int f = 0; f < F_NKINDS; f++)
			off += (size_t)snprintf(fl + off, sizeof(fl) - off,
			    " %s=%d", fault_name[f], r->faults[f]);
		printf("distkv-faults: seed=%llu nodes=%d duration=%ds "
		    "faults:%s acked=%zu (deletes %zu) write_errors=%lu "
		    "violations=%d expected_wipe_losses=%d reads=%zu "
		    "(nil %lu) read_errors=%lu read_violations=%d "
		    "expected_wipe_read_losses=%d tick_reuse=%d "
		    "partition_probes_diverged=%d/%d converge_ms=%lld %s "
		    "checked_on=%s%s %s\n",
		    (unsigned long long)r->seed, r->n, r->seconds, fl,
		    r->nw, dels, r->write_errors, violations, expected,
		    r->nrd, r->reads_nil, r->read_errors, read_violations,
		    read_expected, reuse, r->probes_diverged, r->probes,
		    t_conv, fmt_converge(r, t_conv),
		    checked_on < r->n ? r->c.node[checked_on].name : "none",
		    t_conv < 0 ? "(unconverged)" : "",
		    rc == 0 ? "PASS" : t_conv < 0 ? "FAIL(timeout)" :
		    "FAIL");
		fflush(stdout);
	}
	if (rc != 0 && !r->keep)
		print_diag(&r->c);
	return rc;
}

/* ---- main ---- */

static void
usage(void)
{
	fprintf(stderr, "usage: distkv-faults [--nodes N] [--seconds S] "
	    "[--seed X] [--converge-timeout S] [--wipe-percent P] [--keep]\n"
	    "       [--verbose]\n"
	    "       distkv-faults --split [--nodes N] [--changes K] "
	    "[--converge-timeout S] [--keep]\n"
	    "       [--verbose]\n"
	    "       distkv-faults --wipe-split [--nodes N] [--unique K] "
	    "[--converge-timeout S] [--keep]\n"
	    "       [--verbose]\n"
	    "  every form also takes --clock S: the agents' clock (0.2)\n"
	    "  P: share of agent restarts with an emptied state dir (25)\n"
	    "  --split: cut the nodes into two halves, make K changes (10) "
	    "on both sides,\n"
	    "  heal, and report convergence and the recovery counters\n"
	    "  --wipe-split: cut node N/2 (the victim) and K (--unique: 0, 1 "
	    "or 2; 1) holders\n"
	    "  off the rest, write on the victim, kill it, empty its state "
	    "dir, move the cut\n"
	    "  (rest and victim | holders), restart it, heal; the victim's "
	    "writes must win\n"
	    "  everywhere if K >= 1, be gone everywhere if K = 0 "
	    "(N >= K + 2)\n");
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
	free(r->rd);
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
		{ "split", no_argument, NULL, 'S' },
		{ "changes", required_argument, NULL, 'K' },
		{ "wipe-split", no_argument, NULL, 'W' },
		{ "unique", required_argument, NULL, 'U' },
		{ "clock", required_argument, NULL, 'C' },
		{ NULL, 0, NULL, 0 },
	};
	static struct run run;
	struct run *r = &run;
	struct sigaction sa;
	int opt, rc = 1, ipbase;
	unsigned base_uid;
	const char *clock_arg = NULL;

	r->n = 3;
	r->seconds = 60;
	r->seed = (uint64_t)time(NULL);
	r->converge_ms = 90000;
	r->wipe_pct = 25;
	r->changes = 10;
	r->unique = 1;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'n': r->n = atoi(optarg); break;
		case 's': r->seconds = atoi(optarg); break;
		case 'x': r->seed = strtoull(optarg, NULL, 0); break;
		case 'c': r->converge_ms = atoi(optarg) * 1000; break;
		case 'k': r->keep = true; break;
		case 'w': r->wipe_pct = atoi(optarg); break;
		case 'v': g_verbose = true; break;
		case 'S': r->split = true; break;
		case 'K': r->changes = atoi(optarg); break;
		case 'W': r->wipe_split = true; break;
		case 'U': r->unique = atoi(optarg); break;
		case 'C': clock_arg = optarg; break;
		default: usage(); return 2;
		}
	}
	if (optind != argc || r->n < 2 || r->n > CLUSTER_MAX ||
	    r->seconds < 1 || r->converge_ms < 1000 || r->changes < 1 ||
	    r->changes >= SPLIT_MARK_KEY || r->unique < 0 || r->unique > 2 ||
	    (r->split && r->wipe_split) ||
	    (r->wipe_split && r->n < r->unique + 2)) {
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
	for (int k = 0; k < RNG_N; k++) {
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
		complain("distkv-faults: no free ports\n");
		return 1;
	}
	r->c.log_level = "info";
	if (clock_arg != NULL) {
		if (!(strtod(clock_arg, NULL) >= 0.05)) {
			usage();
			return 2;
		}
		r->c.clock = clock_arg;	/* --clock of the agents (0.2) */
	}
	/* uids and marks unique per run: derived from the port triple */
	base_uid = 21000u + (unsigned)((r->c.port - 20000) / 4) *
	    (unsigned)CLUSTER_MAX;
	for (int i = 0; i < r->n; i++) {
		struct cluster_node *nd = &r->c.node[i];

		nd->uid = (uid_t)(base_uid + (unsigned)i);
		nd->gid = (gid_t)(base_uid + (unsigned)i);
		if (mkdir(nd->h.state_dir, 0700) != 0 ||
		    chown_tree(nd->h.dir, nd->uid, nd->gid) != 0 ||
		    chmod(nd->h.dir, 0755) != 0) {
			complain("distkv-faults: cannot prepare %s\n",
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
		complain("distkv-faults: cluster did not start\n");
		print_diag(&r->c);
		goto out;
	}
	logf_(r, "cluster of %d up (ports %d.., uids %u..)", r->n, r->c.port,
	    base_uid);
	rc = r->split ? run_split(r) : r->wipe_split ? run_wipe_split(r) :
	    run_faults(r);
out:
	if (g_stop)
		fprintf(stderr, "distkv-faults: interrupted; cleaning up\n");
	cleanup(r);
	return g_stop ? 130 : rc;
}
