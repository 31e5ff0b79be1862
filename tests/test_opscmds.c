/*
 * test_opscmds: the operator commands of distkv-cli (cli/ops.c) against
 * real agents: members, health (and --wait), forget in a real Serf
 * cluster, metrics over the socket and over HTTP (--metrics), and the
 * backup procedure of docs/operations.md (dump, restore, --load).
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <regex.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "cluster.h"
#include "harness.h"

#define MAX_ARGV	32
#define CLI_DEADLINE_MS	60000

struct run {
	int	status;
	char	out[262144];
	size_t	outlen;
	char	err[8192];
	size_t	errlen;
};

/* Run argv (argv[0] a program path) with a deadline; collect its output. */
static int
run_argv(struct run *r, const char **argv)
{
	struct pollfd pf[2];
	long long deadline = harness_now_ms() + CLI_DEADLINE_MS;
	int po[2], pe[2], status, open_fds = 2;
	pid_t pid;

	memset(r, 0, sizeof(*r));
	cr_assert(pipe(po) == 0 && pipe(pe) == 0);
	pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		dup2(po[1], 1);
		dup2(pe[1], 2);
		close(po[0]);
		close(pe[0]);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(po[1]);
	close(pe[1]);
	pf[0].fd = po[0];
	pf[1].fd = pe[0];
	pf[0].events = pf[1].events = POLLIN;
	while (open_fds > 0) {
		long long left = deadline - harness_now_ms();
		ssize_t got;

		if (left <= 0) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			cr_assert_fail("%s %s did not finish in time", argv[0],
			    argv[1]);
		}
		if (poll(pf, 2, (int)left) < 0) {
			cr_assert(errno == EINTR);
			continue;
		}
		for (int k = 0; k < 2; k++) {
			char *buf = k == 0 ? r->out : r->err;
			size_t *len = k == 0 ? &r->outlen : &r->errlen;
			size_t cap = k == 0 ? sizeof(r->out) : sizeof(r->err);

			if (pf[k].fd < 0 ||
			    !(pf[k].revents & (POLLIN | POLLHUP)))
				continue;
			got = read(pf[k].fd, buf + *len, cap - 1 - *len);
			if (got <= 0) {
				close(pf[k].fd);
				pf[k].fd = -1;
				open_fds--;
			} else
				*len += (size_t)got;
		}
	}
	cr_assert(waitpid(pid, &status, 0) == pid);
	r->status = WIFEXITED(status) ? WEXITSTATUS(status) :
	    128 + WTERMSIG(status);
	r->out[r->outlen] = '\0';
	r->err[r->errlen] = '\0';
	return (r->status);
}

/* distkv-cli --socket SOCK ARGS... */
static int
cli(struct run *r, const char *sock, const char *first, ...)
{
	const char *argv[MAX_ARGV + 4];
	const char *a;
	va_list ap;
	int n = 0;

	argv[n++] = harness_bin("distkv-cli");
	argv[n++] = "--socket";
	argv[n++] = sock;
	va_start(ap, first);
	for (a = first; a != NULL && n < MAX_ARGV; a = va_arg(ap, const char *))
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;
	return (run_argv(r, argv));
}

/* `members -j` of the agent at sock, parsed (caller json_decref). */
static json_t *
members(const char *sock)
{
	struct run r;
	json_error_t je;
	json_t *j;

	cr_assert_eq(cli(&r, sock, "members", "-j", NULL), 0, "members: %s",
	    r.err);
	j = json_loads(r.out, 0, &je);
	cr_assert_not_null(j, "members -j is not JSON: %s (%s)", je.text,
	    r.out);
	return (j);
}

/* The member named name in a members reply, or NULL. */
static json_t *
member(json_t *m, const char *name)
{
	json_t *arr = json_object_get(m, "members"), *x;
	size_t i;

	json_array_foreach(arr, i, x)
		if (strcmp(json_string_value(json_object_get(x, "name")),
		    name) == 0)
			return (x);
	return (NULL);
}

/* ---- members and health ---- */

Test(ops, members_health_standalone)
{
	struct harness_agent a;
	struct run r;
	json_t *m, *me;

	harness_init(&a);
	cr_assert_eq(harness_start(&a, "--standalone", "--node", "solo",
	    NULL), 0);
	cr_assert_eq(cli(&r, a.socket, "set", "k", "v", NULL), 0);
	cr_assert_eq(cli(&r, a.socket, "members", NULL), 0, "%s", r.err);
	cr_assert(strstr(r.out, "NODE") != NULL && strstr(r.out, "solo") &&
	    strstr(r.out, "standalone") && strstr(r.out, "(this node)"),
	    "%s", r.out);
	m = members(a.socket);
	cr_assert_str_eq(json_string_value(json_object_get(m, "node")),
	    "solo");
	cr_assert(json_is_true(json_object_get(m, "ready")));
	cr_assert(json_is_true(json_object_get(m, "standalone")));
	cr_assert_not_null(me = member(m, "solo"));
	cr_assert(json_is_true(json_object_get(me, "self")));
	cr_assert_eq(json_integer_value(json_object_get(me, "tick")), 1);
	json_decref(m);

	cr_assert_eq(cli(&r, a.socket, "health", NULL), 0, "%s", r.err);
	cr_assert(strstr(r.out, "healthy") != NULL);
	cr_assert_eq(cli(&r, a.socket, "health", "-j", NULL), 0);
	cr_assert(strstr(r.out, "\"healthy\":true") != NULL, "%s", r.out);
	/* --wait belongs to health */
	cr_assert_eq(cli(&r, a.socket, "members", "--wait", NULL), 2);
	harness_cleanup(&a);
}

Test(ops, health_unreachable)
{
	char sock[300];
	struct run r;
	long long t0;

	snprintf(sock, sizeof(sock), "/tmp/distkv-no-such-%d.sock",
	    (int)getpid());
	cr_assert_eq(cli(&r, sock, "health", NULL), 7);
	cr_assert(strstr(r.err, "not healthy") && strstr(r.err,
	    "not reachable"), "%s", r.err);
	cr_assert_eq(cli(&r, sock, "health", "-j", NULL), 7);
	cr_assert(strstr(r.out, "\"healthy\":false") &&
	    strstr(r.out, "\"reachable\":false"), "%s", r.out);
	/* --wait gives up at its deadline, not before and not much after */
	t0 = harness_now_ms();
	cr_assert_eq(cli(&r, sock, "health", "--wait", "-t", "1", NULL), 7);
	cr_assert(harness_now_ms() - t0 >= 900 &&
	    harness_now_ms() - t0 < 5000, "waited %lld ms",
	    harness_now_ms() - t0);
	cr_assert(strstr(r.err, "gave up waiting") != NULL, "%s", r.err);
}

Test(ops, health_wait_for_start)
{
	struct harness_agent a;
	const char *argv[8];
	int status;
	pid_t pid;

	harness_init(&a);
	argv[0] = harness_bin("distkv-cli");
	argv[1] = "--socket";
	argv[2] = a.socket;
	argv[3] = "health";
	argv[4] = "--wait";
	argv[5] = "-t";
	argv[6] = "30";
	argv[7] = NULL;
	pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		int devnull = open("/dev/null", O_WRONLY);

		dup2(devnull, 1);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	/* the waiter is running before the agent exists */
	cr_assert_eq(waitpid(pid, &status, WNOHANG), 0);
	cr_assert_eq(harness_start(&a, "--standalone", NULL), 0);
	{
		long long deadline = harness_now_ms() + 20000;
		pid_t w;

		while ((w = waitpid(pid, &status, WNOHANG)) == 0 &&
		    harness_now_ms() < deadline)
			usleep(20000);
		if (w == 0) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			cr_assert_fail("health --wait did not see the agent");
		}
	}
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "health --wait: status %d", status);
	harness_cleanup(&a);
}

/* ---- metrics ---- */

/* Every line is a # HELP, a # TYPE or a sample (name{labels} value). */
static void
check_prometheus(const char *text)
{
	regex_t help, type, sample;
	char line[1024];
	const char *p = text, *nl;
	int n = 0;

	cr_assert(regcomp(&help, "^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* .+$",
	    REG_EXTENDED | REG_NOSUB) == 0);
	cr_assert(regcomp(&type, "^# TYPE [a-zA-Z_:][a-zA-Z0-9_:]* "
	    "(counter|gauge|histogram|summary|untyped)$",
	    REG_EXTENDED | REG_NOSUB) == 0);
	cr_assert(regcomp(&sample, "^[a-zA-Z_:][a-zA-Z0-9_:]*"
	    "(\\{[a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\]|\\\\.)*\""
	    "(,[a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\]|\\\\.)*\")*\\})? "
	    "[-+]?([0-9.]+([eE][-+]?[0-9]+)?|Inf|NaN)$",
	    REG_EXTENDED | REG_NOSUB) == 0);
	for (; *p != '\0'; p = nl + 1) {
		nl = strchr(p, '\n');
		cr_assert_not_null(nl, "the text does not end in a newline");
		cr_assert((size_t)(nl - p) < sizeof(line));
		memcpy(line, p, (size_t)(nl - p));
		line[nl - p] = '\0';
		cr_assert(regexec(&help, line, 0, NULL, 0) == 0 ||
		    regexec(&type, line, 0, NULL, 0) == 0 ||
		    regexec(&sample, line, 0, NULL, 0) == 0,
		    "not Prometheus text: '%s'", line);
		n++;
	}
	cr_assert(n > 50, "only %d lines", n);
	regfree(&help);
	regfree(&type);
	regfree(&sample);
}

/* The value of the sample line that starts with prefix (-1: none). */
static double
sample(const char *text, const char *prefix)
{
	size_t len = strlen(prefix);

	for (const char *p = text; p != NULL && *p != '\0';) {
		if (strncmp(p, prefix, len) == 0 && p[len] == ' ')
			return (strtod(p + len + 1, NULL));
		p = strchr(p, '\n');
		if (p != NULL)
			p++;
	}
	return (-1);
}

/* curl -s http://127.0.0.1:PORT/PATH; returns curl's status. */
static int
curl(struct run *r, unsigned port, const char *path, bool fail)
{
	char url[128];
	const char *argv[] = { "/usr/bin/curl", "-s", "-m", "10",
	    fail ? "-f" : "-o", fail ? url : "/dev/null", fail ? NULL :
	    "-w", fail ? NULL : "%{http_code}", fail ? NULL : url, NULL };

	snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", port, path);
	return (run_argv(r, argv));
}

Test(ops, metrics)
{
	struct harness_agent a;
	struct run r, h;
	char log[320], buf[4096];
	double set_ok, set_err, writes, before;
	unsigned port = 0;
	FILE *f;

	harness_init(&a);
	cr_assert_eq(harness_start(&a, "--standalone", "--metrics",
	    "127.0.0.1:0", NULL), 0);
	/* the port the agent picked, from its log line */
	snprintf(log, sizeof(log), "%s/agent.err", a.dir);
	cr_assert_not_null(f = fopen(log, "r"));
	while (fgets(buf, sizeof(buf), f) != NULL) {
		char *p = strstr(buf, "/metrics (port ");

		if (p != NULL)
			port = (unsigned)atoi(p + strlen("/metrics (port "));
	}
	fclose(f);
	cr_assert(port > 0, "no metrics port in the log");

	cr_assert_eq(cli(&r, a.socket, "set", "m/a", "1", NULL), 0);
	cr_assert_eq(cli(&r, a.socket, "metrics", NULL), 0, "%s", r.err);
	check_prometheus(r.out);
	set_ok = sample(r.out,
	    "distkv_requests_total{action=\"set_value\",result=\"ok\"}");
	set_err = sample(r.out,
	    "distkv_requests_total{action=\"set_value\",result=\"error\"}");
	writes = sample(r.out,
	    "distkv_request_duration_seconds_count{class=\"write\"}");
	before = sample(r.out, "distkv_changes_total");
	cr_assert_eq(set_ok, 1);
	cr_assert_eq(set_err, 0);
	cr_assert_eq(writes, 1);
	cr_assert(sample(r.out, "distkv_entries") >= 3);
	cr_assert(sample(r.out, "distkv_region_bytes") > 0);
	cr_assert_eq(sample(r.out, "distkv_ready"), 1);

	/* three good writes and one refused (--new on an existing entry) */
	cr_assert_eq(cli(&r, a.socket, "set", "m/b", "2", NULL), 0);
	cr_assert_eq(cli(&r, a.socket, "set", "m/c", "3", NULL), 0);
	cr_assert_eq(cli(&r, a.socket, "delete", "m/c", NULL), 0);
	cr_assert_neq(cli(&r, a.socket, "set", "--new", "m/a", "9", NULL), 0);
	cr_assert_eq(cli(&r, a.socket, "metrics", NULL), 0);
	check_prometheus(r.out);
	cr_assert_eq(sample(r.out, "distkv_requests_total{action=\""
	    "set_value\",result=\"ok\"}"), set_ok + 2);
	cr_assert_eq(sample(r.out, "distkv_requests_total{action=\""
	    "set_value\",result=\"error\"}"), set_err + 1);
	cr_assert_eq(sample(r.out, "distkv_requests_total{action=\""
	    "delete_value\",result=\"ok\"}"), 1);
	cr_assert_eq(sample(r.out, "distkv_request_duration_seconds_count{"
	    "class=\"write\"}"), writes + 4);
	cr_assert_eq(sample(r.out, "distkv_request_duration_seconds_bucket{"
	    "class=\"write\",le=\"+Inf\"}"), writes + 4);
	cr_assert_eq(sample(r.out, "distkv_changes_total"), before + 3);
	cr_assert_eq(sample(r.out, "distkv_tombstones"), 1);
	cr_assert(sample(r.out, "distkv_connections_accepted_total") >= 7);

	/* the same text over HTTP, read by a real client */
	cr_assert_eq(curl(&h, port, "/metrics", true), 0, "curl: %d %s",
	    h.status, h.err);
	check_prometheus(h.out);
	cr_assert(sample(h.out, "distkv_requests_total{action=\"get_metrics"
	    "\",result=\"ok\"}") >= 2);
	cr_assert_eq(sample(h.out, "distkv_requests_total{action=\""
	    "set_value\",result=\"ok\"}"), set_ok + 2);
	cr_assert_eq(curl(&h, port, "/nothing", false), 0);
	cr_assert_str_eq(h.out, "404");
	harness_cleanup(&a);
}

/* ---- backup and restore (docs/operations.md, "Backup and restore") ---- */

/* A cluster struct naming standalone agents, for cluster_dump. */
static void
as_cluster(struct cluster *c, struct harness_agent **a, int n)
{
	memset(c, 0, sizeof(*c));
	c->n = n;
	for (int i = 0; i < n; i++)
		c->node[i].h = *a[i];
}

Test(ops, dump_restore)
{
	struct harness_agent a, b, d;
	struct harness_agent *all[3] = { &a, &b, &d };
	struct cluster c;
	struct cluster_dump da, db, dd;
	char file[400], bad[400], why[512];
	struct run r;
	struct stat st;
	FILE *f;
	int fd;

	harness_init(&a);
	harness_init(&b);
	harness_init(&d);
	cr_assert_eq(harness_start(&a, "--standalone", "--node", "src", NULL),
	    0);
	cr_assert_eq(cli(&r, a.socket, "set", "svc/web/port", "8080", NULL),
	    0);
	cr_assert_eq(cli(&r, a.socket, "set", "-j", "svc/web/on", "true",
	    NULL), 0);
	cr_assert_eq(cli(&r, a.socket, "set", "-j", "svc/db",
	    "{\"a\":[1,2.5,null]}", NULL), 0);
	cr_assert_eq(cli(&r, a.socket, "set", "gone", "x", NULL), 0);
	cr_assert_eq(cli(&r, a.socket, "delete", "gone", NULL), 0);
	cr_assert_eq(cli(&r, a.socket, "set", "svc/web/port", "8081", NULL),
	    0);

	snprintf(file, sizeof(file), "%s/backup.dkv", b.dir);
	cr_assert_eq(cli(&r, a.socket, "dump", file, NULL), 0, "%s", r.err);
	cr_assert(strstr(r.out, "dumped") != NULL, "%s", r.out);
	cr_assert(stat(file, &st) == 0 && st.st_size > 8);

	/* into a fresh node, through its write path */
	cr_assert_eq(harness_start(&b, "--standalone", "--node", "dst", NULL),
	    0);
	cr_assert_eq(cli(&r, b.socket, "restore", file, NULL), 0, "%s",
	    r.err);
	cr_assert(strstr(r.out, "records sent") != NULL, "%s", r.out);
	/* the agent's own loader reads the same file */
	cr_assert_eq(harness_start(&d, "--standalone", "--node", "ld",
	    "--load", file, NULL), 0);

	as_cluster(&c, all, 3);
	cr_assert_eq(cluster_dump(&c, 0, &da), 0);
	cr_assert_eq(cluster_dump(&c, 1, &db), 0);
	cr_assert_eq(cluster_dump(&c, 2, &dd), 0);
	cr_assert_eq(da.n, 4, "%zu items", da.n);
	cr_assert_eq(cluster_dump_cmp(&da, &db, why, sizeof(why)), 0,
	    "restored tree differs: %s", why);
	cr_assert_eq(cluster_dump_cmp(&da, &dd, why, sizeof(why)), 0,
	    "loaded tree differs: %s", why);
	cluster_dump_free(&da);
	cluster_dump_free(&db);
	cluster_dump_free(&dd);
	cr_assert_eq(cli(&r, b.socket, "get", "svc/web/port", NULL), 0);
	cr_assert_str_eq(r.out, "8081\n");
	cr_assert_eq(cli(&r, b.socket, "get", "gone", NULL), 1);

	/* again: nothing new */
	cr_assert_eq(cli(&r, b.socket, "restore", "-j", file, NULL), 0);
	cr_assert(strstr(r.out, "\"applied\":0") != NULL, "%s", r.out);
	/* not into the node the changes came from while it has its own */
	cr_assert_eq(cli(&r, a.socket, "restore", file, NULL), 4);
	cr_assert(strstr(r.err, "own name") != NULL, "%s", r.err);

	/* a damaged copy is refused at the damaged record */
	snprintf(bad, sizeof(bad), "%s/bad.dkv", b.dir);
	{
		char cmd[1000];

		snprintf(cmd, sizeof(cmd), "cp %s %s", file, bad);
		cr_assert_eq(system(cmd), 0);
	}
	cr_assert((fd = open(bad, O_RDWR)) >= 0);
	cr_assert_eq(pwrite(fd, "\xff\xff\xff", 3, st.st_size / 2), 3);
	close(fd);
	cr_assert_eq(cli(&r, b.socket, "restore", bad, NULL), 2);
	cr_assert(strstr(r.err, "damaged") != NULL, "%s", r.err);
	/* not a distkv file at all */
	cr_assert_not_null(f = fopen(bad, "w"));
	fputs("hello\n", f);
	fclose(f);
	cr_assert_eq(cli(&r, b.socket, "restore", bad, NULL), 2);
	cr_assert(strstr(r.err, "bad magic") != NULL, "%s", r.err);
	cr_assert_eq(cli(&r, b.socket, "dump", "/nonexistent-dir/x", NULL),
	    3);
	harness_cleanup(&a);
	harness_cleanup(&b);
	harness_cleanup(&d);
}

/* ---- forget, in a real Serf cluster ---- */

/* Wait until pred(members of node i) holds; false at the deadline. */
static bool
wait_members(struct cluster *c, int i, bool (*pred)(json_t *, void *),
    void *arg, int timeout_ms)
{
	long long deadline = harness_now_ms() + timeout_ms;

	while (harness_now_ms() < deadline) {
		json_t *m = members(c->node[i].h.socket);
		bool ok = pred(m, arg);

		json_decref(m);
		if (ok)
			return (true);
		usleep(100000);
	}
	return (false);
}

static bool
all_alive(json_t *m, void *arg)
{
	int n = *(int *)arg, k = 0;
	json_t *x;
	size_t i;

	json_array_foreach(json_object_get(m, "members"), i, x)
		k += strcmp(json_string_value(json_object_get(x, "status")),
		    "alive") == 0;
	return (k == n);
}

static bool
is_down(json_t *m, void *arg)
{
	json_t *x = member(m, arg);
	const char *st = x != NULL ?
	    json_string_value(json_object_get(x, "status")) : NULL;

	return (st != NULL && (strcmp(st, "failed") == 0 ||
	    strcmp(st, "left") == 0));
}

static bool
is_forgotten(json_t *m, void *arg)
{
	json_t *x = member(m, arg);

	return (x != NULL && json_is_true(json_object_get(x, "forgotten")));
}

static double
purged(struct cluster *c, int i)
{
	struct run r;

	cr_assert_eq(cli(&r, c->node[i].h.socket, "metrics", NULL), 0);
	return (sample(r.out, "distkv_tombstones_purged_total"));
}

/* stopped in .fini: a failed assertion must not leave agents behind */
static struct cluster fc;

static void
forget_fini(void)
{
	cluster_cleanup(&fc);
}

Test(ops, forget_cluster, .timeout = 600, .fini = forget_fini)
{
	struct cluster *cp = &fc;
	struct run r;
	int three = 3;
	long long deadline;

	cr_assert_eq(cluster_init(cp, 3, 41), 0);
	for (int i = 0; i < 3; i++)
		cluster_node_args(cp, i, "--tombstone-keep", "0", NULL);
	cr_assert_eq(cluster_start(cp), 0, "%s", cluster_diag(cp));
	cr_assert(wait_members(cp, 0, all_alive, &three, 30000),
	    "not all alive: %s", cluster_diag(cp));
	/* health of a joined node */
	cr_assert_eq(cli(&r, cp->node[1].h.socket, "health", "--wait", "-t",
	    "30", NULL), 0, "%s", r.err);

	/* refused: a live node, this node, a name nobody knows */
	cr_assert_eq(cli(&r, cp->node[0].h.socket, "forget", "n1", NULL), 4);
	cr_assert(strstr(r.err, "is alive") != NULL, "%s", r.err);
	cr_assert_eq(cli(&r, cp->node[0].h.socket, "forget", "n0", NULL), 4);
	cr_assert(strstr(r.err, "this node") != NULL, "%s", r.err);
	cr_assert_eq(cli(&r, cp->node[0].h.socket, "forget", "nobody", NULL),
	    4);
	cr_assert(strstr(r.err, "Unknown node") != NULL, "%s", r.err);

	/* n2 goes for good; a delete's tombstone waits for its report */
	cr_assert_geq(cluster_stop_node(cp, 2), -1);
	cr_assert(wait_members(cp, 0, is_down, "n2", 60000),
	    "n2 never failed: %s", cluster_diag(cp));
	cr_assert_eq(cli(&r, cp->node[0].h.socket, "set", "t", "x", NULL), 0);
	cr_assert_eq(cli(&r, cp->node[0].h.socket, "delete", "t", NULL), 0);
	cr_assert_eq(cli(&r, cp->node[0].h.socket, "members", NULL), 0);
	cr_assert(strstr(r.out, "failed") || strstr(r.out, "left"), "%s",
	    r.out);

	cr_assert_eq(cli(&r, cp->node[0].h.socket, "forget", "n2", NULL), 0,
	    "%s", r.err);
	/* the forget replicates */
	cr_assert(wait_members(cp, 1, is_forgotten, "n2", 30000),
	    "n1 never learnt: %s", cluster_diag(cp));
	/* and the purge no longer waits for n2, on both live nodes */
	deadline = harness_now_ms() + 60000;
	while ((purged(cp, 0) < 1 || purged(cp, 1) < 1) &&
	    harness_now_ms() < deadline)
		usleep(200000);
	cr_assert(purged(cp, 0) >= 1 && purged(cp, 1) >= 1,
	    "no purge after forget: %s", cluster_diag(cp));
}
