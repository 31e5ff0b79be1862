/*
 * test_cli: distkv-cli end to end against a real standalone distkv-agent,
 * plus unit tests of its JSON <-> msgpack conversion (libclient/mpjson.c).
 *
 * Every child runs under a deadline: run_cli() kills the CLI after
 * CLI_DEADLINE_MS and fails the test; watchers are read line by line with a
 * deadline.  A live watch is synchronised on its "(up to date)" line, never
 * on a sleep.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include <msgpack.h>

#include "harness.h"
#include "mpjson.h"

#define CLI_DEADLINE_MS	10000
#define MAX_ARGV	32

struct run {
	int	status;		/* exit status, or 128 + signal */
	char	out[65536];
	size_t	outlen;
	char	err[8192];
	size_t	errlen;
};

struct proc {
	pid_t	pid;
	int	out;		/* read end of its stdout */
	char	buf[8192];
	size_t	len;
};

static struct harness_agent agent;
static const char *stdin_path;	/* the CLI's stdin if not NULL */

/* ---- running the CLI ---- */

static void
spawn(struct proc *p, const char **argv, int *errfd)
{
	int po[2], pe[2];

	cr_assert(pipe(po) == 0 && pipe(pe) == 0);
	memset(p, 0, sizeof(*p));
	p->pid = fork();
	cr_assert(p->pid >= 0);
	if (p->pid == 0) {
		int in = stdin_path != NULL ? open(stdin_path, O_RDONLY) : -1;

		if (in >= 0)
			dup2(in, 0);
		dup2(po[1], 1);
		dup2(pe[1], 2);
		close(po[0]);
		close(po[1]);
		close(pe[0]);
		close(pe[1]);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(po[1]);
	close(pe[1]);
	p->out = po[0];
	if (errfd != NULL)
		*errfd = pe[0];
	else
		close(pe[0]);
}

static void
build_argv(const char **argv, const char *first, va_list ap)
{
	const char *a;
	int n = 0;

	argv[n++] = harness_bin("distkv-cli");
	for (a = first; a != NULL && n < MAX_ARGV; a = va_arg(ap, const char *))
		argv[n++] = a;
	argv[n] = NULL;
}

/* Run distkv-cli with the NULL-terminated arguments; collect everything. */
static int
run_argv(struct run *r, const char **argv)
{
	struct pollfd pf[2];
	struct proc p;
	long long deadline = harness_now_ms() + CLI_DEADLINE_MS;
	int errfd, status, n, open_fds = 2;
	ssize_t got;

	memset(r, 0, sizeof(*r));
	spawn(&p, argv, &errfd);
	pf[0].fd = p.out;
	pf[1].fd = errfd;
	pf[0].events = pf[1].events = POLLIN;
	while (open_fds > 0) {
		long long left = deadline - harness_now_ms();

		if (left <= 0) {
			kill(p.pid, SIGKILL);
			waitpid(p.pid, NULL, 0);
			cr_assert_fail("distkv-cli %s did not finish in time",
			    argv[1]);
		}
		n = poll(pf, 2, (int)left);
		if (n < 0 && errno == EINTR)
			continue;
		cr_assert(n >= 0);
		if (pf[0].fd >= 0 && (pf[0].revents & (POLLIN | POLLHUP))) {
			got = read(pf[0].fd, r->out + r->outlen,
			    sizeof(r->out) - 1 - r->outlen);
			if (got <= 0) {
				close(pf[0].fd);
				pf[0].fd = -1;
				open_fds--;
			} else
				r->outlen += (size_t)got;
		}
		if (pf[1].fd >= 0 && (pf[1].revents & (POLLIN | POLLHUP))) {
			got = read(pf[1].fd, r->err + r->errlen,
			    sizeof(r->err) - 1 - r->errlen);
			if (got <= 0) {
				close(pf[1].fd);
				pf[1].fd = -1;
				open_fds--;
			} else
				r->errlen += (size_t)got;
		}
	}
	cr_assert(waitpid(p.pid, &status, 0) == p.pid);
	r->status = WIFEXITED(status) ? WEXITSTATUS(status) :
	    128 + WTERMSIG(status);
	r->out[r->outlen] = '\0';
	r->err[r->errlen] = '\0';
	return (r->status);
}

/* distkv-cli ARGS... (no socket option added) */
static int
cli_bare(struct run *r, const char *first, ...)
{
	const char *argv[MAX_ARGV + 2];
	va_list ap;

	va_start(ap, first);
	build_argv(argv, first, ap);
	va_end(ap);
	return (run_argv(r, argv));
}

/* distkv-cli --socket AGENT ARGS... */
static int
cli(struct run *r, const char *first, ...)
{
	const char *argv[MAX_ARGV + 4];
	const char *a;
	va_list ap;
	int n = 0;

	argv[n++] = harness_bin("distkv-cli");
	argv[n++] = "--socket";
	argv[n++] = agent.socket;
	va_start(ap, first);
	for (a = first; a != NULL && n < MAX_ARGV; a = va_arg(ap, const char *))
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;
	return (run_argv(r, argv));
}

/* Must succeed silently or print only on stdout. */
#define OK(...) do {							\
	struct run ok_r;						\
	int ok_rc = cli(&ok_r, __VA_ARGS__, NULL);			\
	cr_assert_eq(ok_rc, 0, "exit %d, stderr: %s", ok_rc, ok_r.err);	\
} while (0)

/* Read one line from a running watcher within ms; NULL: none (or EOF). */
static char *
read_line_ms(struct proc *p, char *line, size_t cap, int ms)
{
	long long deadline = harness_now_ms() + ms;
	struct pollfd pf;
	char *nl;
	ssize_t got;
	size_t n;

	for (;;) {
		if ((nl = memchr(p->buf, '\n', p->len)) != NULL) {
			n = (size_t)(nl - p->buf) + 1;
			cr_assert(n < cap);
			memcpy(line, p->buf, n);
			line[n] = '\0';
			memmove(p->buf, p->buf + n, p->len - n);
			p->len -= n;
			return (line);
		}
		if (harness_now_ms() >= deadline)
			return (NULL);
		pf.fd = p->out;
		pf.events = POLLIN;
		if (poll(&pf, 1, (int)(deadline - harness_now_ms())) <= 0)
			continue;
		got = read(p->out, p->buf + p->len, sizeof(p->buf) - p->len);
		if (got <= 0)
			return (NULL);
		p->len += (size_t)got;
	}
}

/* Read one line from a running watcher, with a deadline. */
static char *
read_line(struct proc *p, char *line, size_t cap)
{
	return (read_line_ms(p, line, cap, CLI_DEADLINE_MS));
}

/* Wait for a spawned CLI to exit (deadline); its exit status. */
static int
proc_wait(struct proc *p)
{
	long long deadline = harness_now_ms() + CLI_DEADLINE_MS;
	int status;

	while (harness_now_ms() < deadline) {
		if (waitpid(p->pid, &status, WNOHANG) == p->pid) {
			close(p->out);
			return (WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		}
		usleep(2000);	/* poll interval of a deadline-bounded wait */
	}
	kill(p->pid, SIGKILL);
	waitpid(p->pid, NULL, 0);
	close(p->out);
	return (-1);
}

/* ---- fixture: one standalone agent per test ---- */

static void
agent_up(void)
{
	harness_init(&agent);
	cr_assert(mkdir(agent.state_dir, 0700) == 0);
	if (harness_start(&agent, "--standalone", "--node", "n1",
	    "--file-dir", agent.state_dir, NULL) != 0) {
		harness_cleanup(&agent);
		cr_assert_fail("agent did not start (see its stderr)");
	}
}

static void
agent_down(void)
{
	harness_cleanup(&agent);
}

TestSuite(cli, .init = agent_up, .fini = agent_down, .timeout = 60.);
TestSuite(cli_usage, .timeout = 30.);
TestSuite(cli_value);

/* ---- set / get ---- */

Test(cli, set_get_string)
{
	struct run r;

	cr_assert_eq(cli(&r, "set", "svc/web/host", "www1.example.org",
	    NULL), 0, "%s", r.err);
	cr_assert_str_eq(r.out, "");
	cr_assert_eq(cli(&r, "get", "svc/web/host", NULL), 0, "%s", r.err);
	cr_assert_str_eq(r.out, "www1.example.org\n");
	/* a string that looks like a number stays a string */
	OK("set", "s/num", "42");
	cli(&r, "get", "--json", "s/num", NULL);
	cr_assert(strncmp(r.out, "{\"path\":\"s/num\",\"value\":\"42\","
	    "\"tock\":", 34) == 0, "%s", r.out);
}

Test(cli, set_get_json_int)
{
	struct run r;

	OK("set", "-j", "svc/web/port", "8080");
	cr_assert_eq(cli(&r, "get", "svc/web/port", NULL), 0);
	cr_assert_str_eq(r.out, "8080\n");
	OK("set", "-j", "neg", "-5");		/* a negative number is a value */
	cli(&r, "get", "neg", NULL);
	cr_assert_str_eq(r.out, "-5\n");
	OK("set", "-j", "big", "18446744073709551615");
	cli(&r, "get", "big", NULL);
	cr_assert_str_eq(r.out, "18446744073709551615\n");
	OK("set", "-j", "f", "1.0");
	cli(&r, "get", "f", NULL);
	cr_assert_str_eq(r.out, "1.0\n");
	OK("set", "--json-value", "t", "true");
	cli(&r, "get", "t", NULL);
	cr_assert_str_eq(r.out, "true\n");
}

Test(cli, set_get_json_object)
{
	const char *obj = "{\"port\":8080,\"tags\":[\"a\",\"b\"],"
	    "\"w\":1.5,\"on\":false,\"x\":null}";
	struct run r;

	OK("set", "-j", "svc/web", obj);
	cr_assert_eq(cli(&r, "get", "svc/web", NULL), 0);
	cr_assert_str_eq(r.out, "{\"port\":8080,\"tags\":[\"a\",\"b\"],"
	    "\"w\":1.5,\"on\":false,\"x\":null}\n");
	OK("set", "-j", "bytes", "{\"$bin\":\"00ff41\"}");
	cli(&r, "get", "bytes", NULL);
	cr_assert_str_eq(r.out, "{\"$bin\":\"00ff41\"}\n");
}

Test(cli, typed_path_elements)
{
	struct run r;

	OK("set", "-j", "counters/:42", "1");
	OK("set", "counters/:xcafe", "bytes-key");
	OK("set", "a\\/b", "slash");
	cr_assert_eq(cli(&r, "get", "counters/:42", NULL), 0);
	cr_assert_str_eq(r.out, "1\n");
	/* the string "42" is another element than the integer 42 */
	cr_assert_eq(cli(&r, "get", "counters/42", NULL), 1);
	cr_assert_eq(cli(&r, "get", "a\\/b", NULL), 0);
	cr_assert_str_eq(r.out, "slash\n");
	cr_assert_eq(cli(&r, "tree", "counters", NULL), 0);
	cr_assert_str_eq(r.out, "counters/:42 = 1\n"
	    "counters/:xcafe = \"bytes-key\"\n");
}

Test(cli, missing_key_exits_1)
{
	struct run r;

	cr_assert_eq(cli(&r, "get", "no/such/key", NULL), 1);
	cr_assert_str_eq(r.out, "");
	cr_assert_str_eq(r.err, "distkv-cli: no/such/key: not found\n");
	/* deleted = not found too */
	OK("set", "gone", "x");
	OK("delete", "gone");
	cr_assert_eq(cli(&r, "get", "gone", NULL), 1);
}

/* ---- output modes ---- */

Test(cli, json_output_exact)
{
	struct run r;
	char want[256];
	unsigned long long tock;
	int n = 0;

	OK("set", "-j", "svc/web/port", "8080");
	cr_assert_eq(cli(&r, "get", "--json", "svc/web/port", NULL), 0);
	cr_assert(sscanf(r.out, "{\"path\":\"svc/web/port\",\"value\":8080,"
	    "\"tock\":%llu}\n%n", &tock, &n) == 1 && n > 0 &&
	    (size_t)n == r.outlen, "%s", r.out);
	snprintf(want, sizeof(want), "{\"path\":\"svc/web/port\","
	    "\"value\":8080,\"tock\":%llu,\"chain\":[{\"node\":\"n1\","
	    "\"tick\":", tock);
	cr_assert_eq(cli(&r, "get", "--json", "-c", "3", "svc/web/port",
	    NULL), 0);
	cr_assert(strncmp(r.out, want, strlen(want)) == 0, "%s", r.out);
	cr_assert(r.outlen > 4 && strcmp(r.out + r.outlen - 4, "}]}\n") == 0,
	    "%s", r.out);

	/* set --json prints the reply */
	cr_assert_eq(cli(&r, "set", "--json", "k", "v", NULL), 0);
	cr_assert(strncmp(r.out, "{\"path\":\"k\",\"changed\":true,\"tock\":",
	    33) == 0, "%s", r.out);
}

Test(cli, raw_output_exact)
{
	struct run r;

	OK("set", "s", "hello world");
	cr_assert_eq(cli(&r, "get", "--raw", "s", NULL), 0);
	cr_assert_eq(r.outlen, 11);
	cr_assert(memcmp(r.out, "hello world", 11) == 0);
	OK("set", "-j", "b", "{\"$bin\":\"00ff\"}");
	cr_assert_eq(cli(&r, "--raw", "get", "b", NULL), 0);
	cr_assert_eq(r.outlen, 2);
	cr_assert(memcmp(r.out, "\0\xff", 2) == 0);
	OK("set", "-j", "o", "[1,\"x\"]");
	cli(&r, "get", "--raw", "o", NULL);
	cr_assert_str_eq(r.out, "[1,\"x\"]");
	OK("set", "t/a", "A");
	OK("set", "-j", "t/b", "2");
	cli(&r, "tree", "--raw", "t", NULL);
	cr_assert_str_eq(r.out, "A\n2\n");
}

/* docs/cli.md: "If an option is given twice the last one wins (`--json
 * --raw` means raw)", wherever the options stand. */
Test(cli, json_then_raw_means_raw)
{
	struct run r;

	OK("set", "s", "hello world");
	OK("set", "t/a", "A");
	cr_assert_eq(cli(&r, "--json", "--raw", "get", "s", NULL), 0, "%s",
	    r.err);
	cr_assert_eq(r.outlen, 11, "'%s'", r.out);
	cr_assert(memcmp(r.out, "hello world", 11) == 0, "'%s'", r.out);
	cr_assert_eq(cli(&r, "get", "--json", "--raw", "s", NULL), 0);
	cr_assert_eq(r.outlen, 11, "'%s'", r.out);
	cr_assert_eq(cli(&r, "--json", "get", "s", "--raw", NULL), 0);
	cr_assert_eq(r.outlen, 11, "'%s'", r.out);
	cr_assert_eq(cli(&r, "--json", "--raw", "tree", "t", NULL), 0);
	cr_assert_str_eq(r.out, "A\n");
	/* and the other way round: JSON */
	cr_assert_eq(cli(&r, "--raw", "--json", "get", "s", NULL), 0);
	cr_assert(strncmp(r.out, "{\"path\":\"s\",\"value\":\"hello world\"",
	    33) == 0, "%s", r.out);
}

Test(cli, global_options_after_subcommand)
{
	const char *argv[8];
	struct run r;

	OK("set", "k", "v");
	argv[0] = harness_bin("distkv-cli");
	argv[1] = "get";
	argv[2] = "k";
	argv[3] = "--json";
	argv[4] = "--socket";
	argv[5] = agent.socket;
	argv[6] = NULL;
	cr_assert_eq(run_argv(&r, argv), 0, "%s", r.err);
	cr_assert(strncmp(r.out, "{\"path\":\"k\",\"value\":\"v\"", 23) == 0,
	    "%s", r.out);
	/* --socket=PATH, before the subcommand, $DISTKV_SOCKET */
	{
		char opt[400];

		snprintf(opt, sizeof(opt), "--socket=%s", agent.socket);
		cr_assert_eq(cli_bare(&r, opt, "--raw", "get", "k", NULL), 0);
		cr_assert_str_eq(r.out, "v");
		setenv("DISTKV_SOCKET", agent.socket, 1);
		cr_assert_eq(cli_bare(&r, "get", "k", NULL), 0, "%s", r.err);
		cr_assert_str_eq(r.out, "v\n");
		unsetenv("DISTKV_SOCKET");
	}
	/* "--" ends the options: a value starting with "--" */
	OK("set", "--", "d", "--not-an-option");
	cli(&r, "get", "d", NULL);
	cr_assert_str_eq(r.out, "--not-an-option\n");
}

/* ---- tree ---- */

Test(cli, tree_and_depth_limits)
{
	struct run r;

	OK("set", "-j", "a", "1");
	OK("set", "-j", "a/b", "2");
	OK("set", "-j", "a/b/c", "3");
	OK("set", "a/d", "four");
	OK("set", "-j", "z", "0");
	cr_assert_eq(cli(&r, "tree", "a", NULL), 0, "%s", r.err);
	cr_assert_str_eq(r.out,
	    "a = 1\na/b = 2\na/b/c = 3\na/d = \"four\"\n");
	cr_assert_eq(cli(&r, "tree", "--max-depth", "1", "a", NULL), 0);
	cr_assert_str_eq(r.out, "a = 1\na/b = 2\na/d = \"four\"\n");
	cr_assert_eq(cli(&r, "tree", "--max-depth", "0", "a", NULL), 0);
	cr_assert_str_eq(r.out, "a = 1\n");
	cr_assert_eq(cli(&r, "tree", "--min-depth", "1", "--max-depth=1",
	    "a", NULL), 0);
	cr_assert_str_eq(r.out, "a/b = 2\na/d = \"four\"\n");
	cr_assert_eq(cli(&r, "tree", "--min-depth", "2", "a", NULL), 0);
	cr_assert_str_eq(r.out, "a/b/c = 3\n");
	/* whole tree: both top-level entries, in creation order */
	cr_assert_eq(cli(&r, "tree", "--max-depth", "1", NULL), 0);
	cr_assert_str_eq(r.out, "a = 1\nz = 0\n");
	cr_assert_eq(cli(&r, "tree", "--json", "a/b", NULL), 0);
	cr_assert(strncmp(r.out, "{\"path\":\"a/b\",\"value\":2,\"tock\":",
	    31) == 0, "%s", r.out);
	cr_assert(strstr(r.out, "}\n{\"path\":\"a/b/c\",\"value\":3,"
	    "\"tock\":") != NULL, "%s", r.out);
	cr_assert_eq(cli(&r, "tree", "-c", "1", "a/b/c", NULL), 0);
	cr_assert(strncmp(r.out, "a/b/c = 3  [n1:", 15) == 0, "%s", r.out);
}

/* ---- delete ---- */

Test(cli, delete)
{
	struct run r;

	OK("set", "x", "1");
	cr_assert_eq(cli(&r, "delete", "x", NULL), 0, "%s", r.err);
	cr_assert_str_eq(r.out, "");
	cr_assert_eq(cli(&r, "get", "x", NULL), 1);
	/* deleting nothing is fine */
	cr_assert_eq(cli(&r, "delete", "never/there", NULL), 0, "%s", r.err);

	OK("set", "t/a", "1");
	OK("set", "t/b/c", "2");
	OK("set", "t2", "keep");
	cr_assert_eq(cli(&r, "delete", "-r", "--json", "t", NULL), 0, "%s",
	    r.err);
	cr_assert_str_eq(r.out, "{\"path\":\"t\",\"deleted\":2}\n");
	cr_assert_eq(cli(&r, "get", "t/a", NULL), 1);
	cr_assert_eq(cli(&r, "get", "t/b/c", NULL), 1);
	cr_assert_eq(cli(&r, "get", "t2", NULL), 0);
	cr_assert_eq(cli(&r, "tree", "t", NULL), 0);
	cr_assert_str_eq(r.out, "");
	/* -r takes no preconditions */
	cr_assert_eq(cli(&r, "delete", "-r", "--new", "t", NULL), 2);
}

/* ---- preconditions ---- */

Test(cli, precondition_new)
{
	struct run r;

	cr_assert_eq(cli(&r, "set", "--new", "lock", "a", NULL), 0, "%s",
	    r.err);
	cr_assert_eq(cli(&r, "set", "--new", "lock", "b", NULL), 4);
	cr_assert_str_eq(r.err,
	    "distkv-cli: lock: This entry already exists\n");
	cli(&r, "get", "lock", NULL);
	cr_assert_str_eq(r.out, "a\n");
	/* docs/cli.md: a deleted entry (a tombstone) may be re-created */
	OK("delete", "lock");
	cr_assert_eq(cli(&r, "set", "--new", "lock", "c", NULL), 0, "%s",
	    r.err);
	cli(&r, "get", "lock", NULL);
	cr_assert_str_eq(r.out, "c\n");
}

Test(cli, precondition_prev)
{
	struct run r;

	OK("set", "-j", "n", "5");
	cr_assert_eq(cli(&r, "set", "-j", "--prev", "4", "n", "6", NULL), 4);
	cr_assert(strstr(r.err, "distkv-cli: n: ") == r.err, "%s", r.err);
	cr_assert_eq(cli(&r, "set", "-j", "--prev", "5", "n", "6", NULL), 0,
	    "%s", r.err);
	cli(&r, "get", "n", NULL);
	cr_assert_str_eq(r.out, "6\n");
	/* without -j --prev is a string: "6" is not 6 */
	cr_assert_eq(cli(&r, "delete", "--prev", "6", "n", NULL), 4);
	cr_assert_eq(cli(&r, "delete", "-j", "--prev", "6", "n", NULL), 0);
	cr_assert_eq(cli(&r, "get", "n", NULL), 1);
}

Test(cli, precondition_chain)
{
	struct run r;
	char node[64], head[96];
	unsigned long long tick;
	char *p;

	OK("set", "c", "1");
	cr_assert_eq(cli(&r, "get", "-c", "1", "c", NULL), 0);
	/* "1\nchain: n1:T\n" */
	p = strstr(r.out, "chain: ");
	cr_assert(p != NULL, "%s", r.out);
	cr_assert(sscanf(p, "chain: %63[^:]:%llu", node, &tick) == 2);
	cr_assert_str_eq(node, "n1");
	cr_assert_eq(cli(&r, "set", "--chain", "n1:999999", "c", "2", NULL), 4);
	cr_assert(strncmp(r.err, "distkv-cli: c: Chain is", 23) == 0, "%s",
	    r.err);
	snprintf(head, sizeof(head), "%s:%llu", node, tick);
	cr_assert_eq(cli(&r, "set", "--chain", head, "c", "2", NULL), 0, "%s",
	    r.err);
	/* the old head is stale now */
	cr_assert_eq(cli(&r, "set", "--chain", head, "c", "3", NULL), 4);
	cr_assert_eq(cli(&r, "set", "--chain", "n1:1", "fresh", "x", NULL), 4);
	cr_assert_str_eq(r.err, "distkv-cli: fresh: This entry is new\n");
	cr_assert_eq(cli(&r, "set", "--new", "--chain", head, "c", "x", NULL),
	    2);
}

/* ---- watch ---- */

Test(cli, watch_fetch_count)
{
	struct run r;

	OK("set", "-j", "w/a", "1");
	OK("set", "-j", "w/b", "2");
	/*
	 * fetch: the value-less "w" itself, then a and b; -n counts changes
	 * only (issue 13: the fetched entries used to count), so with none
	 * the watch ends at -t
	 */
	cr_assert_eq(cli(&r, "watch", "--fetch", "-n", "1", "-t", "0.5", "w",
	    NULL), 0, "%s", r.err);
	cr_assert_str_eq(r.out, "w (no value)\nw/a = 1\nw/b = 2\n"
	    "(up to date)\n");
	cr_assert_eq(cli(&r, "watch", "--fetch", "--min-depth", "1", "-n",
	    "2", "-t", "0.5", "--json", "w", NULL), 0);
	cr_assert(strncmp(r.out, "{\"path\":\"w/a\",\"value\":1,", 24) == 0,
	    "%s", r.out);
	/* a timeout ends a watch that got fewer items: exit 0 */
	cr_assert_eq(cli(&r, "watch", "--fetch", "-t", "1", "-n", "10", "w",
	    NULL), 0, "%s", r.err);
	cr_assert_str_eq(r.out,
	    "w (no value)\nw/a = 1\nw/b = 2\n(up to date)\n");
}

Test(cli, watch_live)
{
	const char *argv[12];
	struct proc p;
	char line[512];
	struct run r;

	OK("set", "-j", "live/x", "1");
	argv[0] = harness_bin("distkv-cli");
	argv[1] = "--socket";
	argv[2] = agent.socket;
	argv[3] = "watch";
	argv[4] = "--fetch";
	argv[5] = "-n";
	argv[6] = "2";		/* two changes; the fetched lines do not count */
	argv[7] = "live";
	argv[8] = NULL;
	spawn(&p, argv, NULL);
	cr_assert_str_eq(read_line(&p, line, sizeof(line)), "live (no value)\n");
	cr_assert_str_eq(read_line(&p, line, sizeof(line)), "live/x = 1\n");
	cr_assert_str_eq(read_line(&p, line, sizeof(line)), "(up to date)\n");
	/* the watch is registered: changes now arrive live */
	OK("set", "-j", "live/y", "[1,2]");
	cr_assert_str_eq(read_line(&p, line, sizeof(line)),
	    "live/y = [1,2]\n");
	OK("delete", "live/x");
	cr_assert_str_eq(read_line(&p, line, sizeof(line)),
	    "live/x (no value)\n");
	cr_assert_eq(proc_wait(&p), 0);
	(void)r;
}

/* ---- shared memory: get through the region or the socket ---- */

/* distkv-cli [--no-shm] get [mode] key: both ways must print the same. */
static void
get_both_ways(const char *key, const char *mode)
{
	const char *argv[10];
	struct run a, b;
	int n;

	n = 0;
	argv[n++] = harness_bin("distkv-cli");
	argv[n++] = "--socket";
	argv[n++] = agent.socket;
	argv[n++] = "get";
	if (mode != NULL)
		argv[n++] = mode;
	argv[n++] = key;
	argv[n] = NULL;
	run_argv(&a, argv);
	argv[n++] = "--no-shm";		/* a global option after the path */
	argv[n] = NULL;
	run_argv(&b, argv);
	cr_assert_eq(a.status, b.status, "%s %s: %d vs %d", key,
	    mode != NULL ? mode : "", a.status, b.status);
	cr_assert_eq(a.outlen, b.outlen, "%s: '%s' vs '%s'", key, a.out,
	    b.out);
	cr_assert(memcmp(a.out, b.out, a.outlen) == 0, "%s: '%s' vs '%s'",
	    key, a.out, b.out);
	cr_assert_str_eq(a.err, b.err);
}

/* 60 runs of distkv-cli: on a loaded 2-core box a spawn takes ~1 s */
Test(cli, get_shm_and_socket_agree, .timeout = 180.)
{
	static const char *keys[] = { "s", "e", "i", "f", "o", "b", "big",
	    "missing", "gone" };
	static const char *modes[] = { NULL, "--json", "--raw" };
	char big[2000];
	struct stat st;
	struct run r;
	size_t k, m;

	/* the harness gives the agent a region, or this tests nothing */
	cr_assert(stat(agent.shm, &st) == 0 && st.st_size > 0,
	    "no region at %s", agent.shm);
	memset(big, 'x', sizeof(big) - 1);	/* beyond any small buffer */
	big[sizeof(big) - 1] = '\0';
	OK("set", "s", "hello world");
	OK("set", "e", "");
	OK("set", "-j", "i", "-5");
	OK("set", "-j", "f", "1.5");
	OK("set", "-j", "o", "{\"port\":8080,\"tags\":[\"a\",\"b\"]}");
	OK("set", "-j", "b", "{\"$bin\":\"00ff41\"}");
	OK("set", "big", big);
	OK("set", "gone", "x");
	OK("delete", "gone");
	for (k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
		for (m = 0; m < sizeof(modes) / sizeof(modes[0]); m++)
			get_both_ways(keys[k], modes[m]);
	/* and the value is the one stored */
	cr_assert_eq(cli(&r, "--no-shm", "get", "o", NULL), 0, "%s", r.err);
	cr_assert_str_eq(r.out, "{\"port\":8080,\"tags\":[\"a\",\"b\"]}\n");
	cr_assert_eq(cli(&r, "--no-shm", "get", "missing", NULL), 1);
	cr_assert_str_eq(r.err, "distkv-cli: missing: not found\n");
}

/* ---- wait ---- */

/*
 * Start `distkv-cli --socket S wait WARGS...' in the background, then set
 * key to "w1", "w2", ... until the wait printed something or exited.
 * Usually "w1" ends it.  Had the wait not read its start value before the
 * first set, it takes "w1" as the start and the next set ends it: no sleep
 * decides the outcome, and every step has a deadline.  Returns the number
 * of sets; *line gets the wait's first line ("" if none), *status its exit
 * status.
 */
static int
wait_while_setting(const char **wargs, const char *key, char *line,
    size_t cap, int *status)
{
	const char *argv[MAX_ARGV + 4];
	long long deadline = harness_now_ms() + CLI_DEADLINE_MS;
	struct pollfd pf;
	struct proc p;
	char val[32];
	int n = 0, i, errfd;

	argv[n++] = harness_bin("distkv-cli");
	argv[n++] = "--socket";
	argv[n++] = agent.socket;
	argv[n++] = "wait";
	for (i = 0; wargs[i] != NULL && n < MAX_ARGV; i++)
		argv[n++] = wargs[i];
	argv[n] = NULL;
	spawn(&p, argv, &errfd);
	for (i = 1;; i++) {
		cr_assert(harness_now_ms() < deadline, "wait did not return "
		    "after %d sets", i - 1);
		snprintf(val, sizeof(val), "w%d", i);
		OK("set", key, val);
		pf.fd = p.out;
		pf.events = POLLIN;
		/* a step, not a guess: the loop goes on until it returns */
		if (poll(&pf, 1, 200) > 0)
			break;
	}
	if (read_line(&p, line, cap) == NULL)
		*line = '\0';
	*status = proc_wait(&p);
	close(errfd);
	return (i);
}

/* The wait printed "wJ\n" for a J that was set. */
static void
assert_set_value(const char *line, int sets)
{
	int j = 0, end = 0;

	cr_assert(sscanf(line, "w%d\n%n", &j, &end) == 1 && end > 0 &&
	    line[end] == '\0', "wait printed '%s'", line);
	cr_assert(j >= 1 && j <= sets, "wait printed w%d after %d sets", j,
	    sets);
}

Test(cli, wait_returns_after_set)
{
	const char *wargs[] = { "wk", NULL };
	char line[512];
	int status, sets;

	OK("set", "wk", "start");
	sets = wait_while_setting(wargs, "wk", line, sizeof(line), &status);
	cr_assert_eq(status, 0);
	assert_set_value(line, sets);
}

Test(cli, wait_no_shm_returns_after_set)
{
	const char *wargs[] = { "--no-shm", "wk", NULL };
	const char *jargs[] = { "wk", "--json", "--no-shm", NULL };
	char line[512];
	int status, sets;

	OK("set", "wk", "start");
	sets = wait_while_setting(wargs, "wk", line, sizeof(line), &status);
	cr_assert_eq(status, 0);
	assert_set_value(line, sets);
	wait_while_setting(jargs, "wk", line, sizeof(line), &status);
	cr_assert_eq(status, 0);
	cr_assert(strncmp(line, "{\"path\":\"wk\",\"value\":\"w", 23) == 0,
	    "%s", line);
}

Test(cli, wait_sees_a_value_appear)
{
	const char *shm[] = { "new/a", NULL };
	const char *sock[] = { "--no-shm", "new/b", NULL };
	char line[512];
	int status, sets;

	sets = wait_while_setting(shm, "new/a", line, sizeof(line), &status);
	cr_assert_eq(status, 0);
	assert_set_value(line, sets);
	sets = wait_while_setting(sock, "new/b", line, sizeof(line), &status);
	cr_assert_eq(status, 0);
	assert_set_value(line, sets);
}

Test(cli, wait_changes)
{
	const char *shm[] = { "--changes", NULL };
	const char *sock[] = { "--changes", "--no-shm", NULL };
	char line[512];
	int status;

	wait_while_setting(shm, "any/where", line, sizeof(line), &status);
	cr_assert_eq(status, 0);
	cr_assert_str_eq(line, "");
	wait_while_setting(sock, "any/where", line, sizeof(line), &status);
	cr_assert_eq(status, 0);
	cr_assert_str_eq(line, "");
}

Test(cli, wait_timeout_exits_1)
{
	const char *argv[10];
	struct proc p;
	struct run r;
	int n, errfd;

	OK("set", "still", "v");
	cr_assert_eq(cli(&r, "wait", "--timeout", "1", "still", NULL), 1);
	cr_assert_str_eq(r.out, "");
	cr_assert_str_eq(r.err, "distkv-cli: still: no change within 1 s\n");
	cr_assert_eq(cli(&r, "wait", "-t", "1", "--no-shm", "still", NULL), 1);
	cr_assert_str_eq(r.out, "");
	cr_assert_str_eq(r.err, "distkv-cli: still: no change within 1 s\n");
	cr_assert_eq(cli(&r, "wait", "-t", "1", "never/set", NULL), 1);
	cr_assert_eq(cli(&r, "wait", "-t", "1", "--changes", NULL), 1);
	cr_assert_str_eq(r.err, "distkv-cli: no change within 1 s\n");

	/*
	 * Storing the value the path already has is no change, whether it
	 * happens before or after the wait has started.
	 */
	n = 0;
	argv[n++] = harness_bin("distkv-cli");
	argv[n++] = "--socket";
	argv[n++] = agent.socket;
	argv[n++] = "wait";
	argv[n++] = "-t";
	argv[n++] = "1";
	argv[n++] = "still";
	argv[n] = NULL;
	spawn(&p, argv, &errfd);	/* keep its stderr open: no SIGPIPE */
	OK("set", "still", "v");
	cr_assert_eq(proc_wait(&p), 1);
	close(errfd);
}

/* ---- serf ---- */

/*
 * A standalone agent is a one-node cluster: its own monitors get the
 * events sent to it.  The monitor has no "up to date" line to wait for,
 * so the event is sent again until the monitor (-n 1) has printed it.
 */
static void
serf_mon_gets(const char *mode, const char *const *send, const char *want)
{
	const char *argv[MAX_ARGV];
	long long deadline = harness_now_ms() + CLI_DEADLINE_MS;
	char line[256];
	struct proc p;
	struct run r;
	int n = 0;

	argv[n++] = harness_bin("distkv-cli");
	argv[n++] = "--socket";
	argv[n++] = agent.socket;
	if (mode != NULL)
		argv[n++] = mode;
	argv[n++] = "serf";
	argv[n++] = "mon";
	argv[n++] = "-n";
	argv[n++] = "1";
	argv[n++] = "deploy";
	argv[n] = NULL;
	spawn(&p, argv, NULL);
	for (;;) {
		const char *const *a;

		cr_assert(harness_now_ms() < deadline, "serf mon got nothing");
		n = 0;
		argv[n++] = harness_bin("distkv-cli");
		argv[n++] = "--socket";
		argv[n++] = agent.socket;
		for (a = send; *a != NULL && n < MAX_ARGV - 1; a++)
			argv[n++] = *a;
		argv[n] = NULL;
		cr_assert_eq(run_argv(&r, argv), 0, "%s", r.err);
		cr_assert_str_eq(r.out, "");
		if (read_line_ms(&p, line, sizeof(line), 100) != NULL)
			break;
	}
	cr_assert_str_eq(line, want);
	cr_assert_eq(proc_wait(&p), 0);
}

Test(cli, serf_standalone_loops_back)
{
	static const char *const text[] = { "serf", "send", "deploy",
	    "web-1.4", NULL };
	static const char *const json[] = { "serf", "send", "-j", "deploy",
	    "{\"v\":[1,2]}", NULL };
	static const char *const raw[] = { "serf", "send", "--raw", "deploy",
	    "bytes", NULL };
	char *big;
	struct run r;

	serf_mon_gets(NULL, text, "\"web-1.4\"\n");
	serf_mon_gets("--json", json,
	    "{\"type\":\"deploy\",\"data\":{\"v\":[1,2]}}\n");
	serf_mon_gets("--raw", raw, "bytes\n");
	cr_assert_eq(cli(&r, "--json", "serf", "send", "deploy", "x", NULL),
	    0);
	cr_assert_str_eq(r.out, "{\"result\":true}\n");
	/* Serf's limit on name and payload holds standalone too */
	big = malloc(9300);
	cr_assert(big != NULL);
	memset(big, 'x', 9299);
	big[9299] = '\0';
	cr_assert_eq(cli(&r, "serf", "send", "--raw", "deploy", big, NULL),
	    4);
	free(big);
	cr_assert_str_eq(r.err, "distkv-cli: serf send: Serf event not sent: "
	    "too large for Serf\n");
	cr_assert_eq(cli(&r, "serf", "send", "distkv.update", "x", NULL), 4);
	cr_assert_eq(cli(&r, "serf", "mon", "-n", "1", ":deploy", NULL), 4);
}

/* ---- state, save, log ---- */

Test(cli, state)
{
	struct run r;

	OK("set", "k", "v");
	cr_assert_eq(cli(&r, "state", NULL), 0, "%s", r.err);
	cr_assert(strncmp(r.out, "agent n1\n", 9) == 0, "%s", r.out);
	cr_assert(strstr(r.out, "nodes:\n  n1 ") != NULL, "%s", r.out);
	/* standalone: no ping chain, recovery counters at zero */
	cr_assert(strstr(r.out, "\nping:\n  -\n") != NULL, "%s", r.out);
	cr_assert(strstr(r.out, "\nrecovery:\n") != NULL &&
	    strstr(r.out, "\n  running false\n") != NULL, "%s", r.out);
	cr_assert_eq(cli(&r, "state", "--json", NULL), 0);
	cr_assert(strncmp(r.out, "{\"node\":\"n1\",", 13) == 0, "%s", r.out);
	cr_assert(strstr(r.out, "\"nodes\":{\"n1\":") != NULL, "%s", r.out);
	cr_assert(strstr(r.out, "\"recovery\":{\"tombstones\":0,") != NULL,
	    "%s", r.out);
}

Test(cli, save_and_log)
{
	struct run r;
	struct stat st;
	char path[512];

	OK("set", "k", "v");
	cr_assert_eq(cli(&r, "save", "snap.mp", NULL), 0, "%s", r.err);
	cr_assert_str_eq(r.out, "");
	snprintf(path, sizeof(path), "%s/snap.mp", agent.state_dir);
	cr_assert(stat(path, &st) == 0 && st.st_size > 0, "%s missing", path);
	cr_assert_eq(cli(&r, "log", "--fetch", "changes.mp", NULL), 0, "%s",
	    r.err);
	snprintf(path, sizeof(path), "%s/changes.mp", agent.state_dir);
	cr_assert(stat(path, &st) == 0 && st.st_size > 0, "%s missing", path);
}

/* ---- usage and connection errors (no agent needed) ---- */

Test(cli_usage, usage_errors_exit_2)
{
	struct run r;

	cr_assert_eq(cli_bare(&r, NULL), 2);
	cr_assert(strncmp(r.err, "usage: distkv-cli", 17) == 0, "%s", r.err);
	cr_assert_eq(cli_bare(&r, "frobnicate", NULL), 2);
	cr_assert_str_eq(r.err, "distkv-cli: unknown command 'frobnicate' "
	    "(see distkv-cli --help)\n");
	cr_assert_eq(cli_bare(&r, "--doesnotexist", NULL), 2);
	cr_assert_eq(cli_bare(&r, "get", "--bogus", "k", NULL), 2);
	cr_assert(strstr(r.err, "unknown option '--bogus'") != NULL, "%s",
	    r.err);
	cr_assert_eq(cli_bare(&r, "get", NULL), 2);
	cr_assert_eq(cli_bare(&r, "get", "a", "b", NULL), 2);
	cr_assert_eq(cli_bare(&r, "set", "k", NULL), 2);
	cr_assert_eq(cli_bare(&r, "get", "a//b", NULL), 2);
	cr_assert(strncmp(r.err, "distkv-cli: invalid path 'a//b'", 31) == 0,
	    "%s", r.err);
	cr_assert_eq(cli_bare(&r, "set", "-j", "k", "{", NULL), 2);
	cr_assert(strncmp(r.err, "distkv-cli: invalid JSON value", 30) == 0,
	    "%s", r.err);
	cr_assert_eq(cli_bare(&r, "set", "-j", "k", "null", NULL), 2);
	cr_assert_eq(cli_bare(&r, "set", "-j", "k", "18446744073709551616",
	    NULL), 2);
	cr_assert_eq(cli_bare(&r, "tree", "--max-depth", "x", NULL), 2);
	cr_assert_eq(cli_bare(&r, "set", "--chain", "n1", "k", "v", NULL), 2);
	cr_assert_eq(cli_bare(&r, "watch", "-n", "0", NULL), 2);
	cr_assert_eq(cli_bare(&r, "state", "extra", NULL), 2);
	/* -j belongs to set/delete only */
	cr_assert_eq(cli_bare(&r, "get", "-j", "k", NULL), 2);
	cr_assert_str_eq(r.out, "");
	/* wait: PATH, or --changes without one */
	cr_assert_eq(cli_bare(&r, "wait", NULL), 2);
	cr_assert_eq(cli_bare(&r, "wait", "--changes", "k", NULL), 2);
	cr_assert_eq(cli_bare(&r, "wait", "-t", "0", "k", NULL), 2);
	cr_assert_eq(cli_bare(&r, "wait", "a//b", NULL), 2);
	/* serf send TYPE DATA | serf mon TYPE */
	cr_assert_eq(cli_bare(&r, "serf", NULL), 2);
	cr_assert_eq(cli_bare(&r, "serf", "bogus", "t", NULL), 2);
	cr_assert_eq(cli_bare(&r, "serf", "send", "t", NULL), 2);
	cr_assert_eq(cli_bare(&r, "serf", "mon", "t", "x", NULL), 2);
	cr_assert_eq(cli_bare(&r, "serf", "send", "", "x", NULL), 2);
	cr_assert_eq(cli_bare(&r, "serf", "send", "-j", "t", "{", NULL), 2);
	cr_assert_eq(cli_bare(&r, "serf", "send", "-j", "--raw", "t", "1",
	    NULL), 2);
	cr_assert_eq(cli_bare(&r, "serf", "send", "-n", "1", "t", "x", NULL),
	    2);
	cr_assert_eq(cli_bare(&r, "serf", "mon", "-j", "t", NULL), 2);
	cr_assert_str_eq(r.out, "");
}

Test(cli_usage, unreachable_exits_3)
{
	struct run r;

	cr_assert_eq(cli_bare(&r, "--socket", "/nonexistent/distkv.sock",
	    "get", "k", NULL), 3);
	cr_assert(strncmp(r.err, "distkv-cli: cannot reach the agent at "
	    "/nonexistent/distkv.sock", 62) == 0, "%s", r.err);
	cr_assert_str_eq(r.out, "");
}

Test(cli_usage, help)
{
	struct run r;

	cr_assert_eq(cli_bare(&r, "--help", NULL), 0);
	cr_assert(strstr(r.out, "Commands:") != NULL);
	cr_assert(strstr(r.out, "Exit status:") != NULL);
	cr_assert_eq(cli_bare(&r, "-h", NULL), 0);
	cr_assert_eq(cli_bare(&r, "get", "--help", NULL), 0);
	cr_assert(strncmp(r.out, "usage: distkv-cli get", 21) == 0);
	cr_assert(strstr(r.out, "Examples:") != NULL);
	cr_assert_eq(cli_bare(&r, "set", "-h", "--socket", "/x", NULL), 0);
	cr_assert(strncmp(r.out, "usage: distkv-cli set", 21) == 0);
	cr_assert_eq(cli_bare(&r, "help", "watch", NULL), 0);
	cr_assert(strncmp(r.out, "usage: distkv-cli watch", 23) == 0);
	cr_assert_eq(cli_bare(&r, "help", "nope", NULL), 2);
	cr_assert_eq(cli_bare(&r, "help", "wait", NULL), 0);
	cr_assert(strncmp(r.out, "usage: distkv-cli wait", 22) == 0);
	cr_assert_eq(cli_bare(&r, "serf", "--help", NULL), 0);
	cr_assert(strncmp(r.out, "usage: distkv-cli serf", 22) == 0);
	cr_assert_eq(cli_bare(&r, "--help", NULL), 0);
	cr_assert(strstr(r.out, "--no-shm") != NULL);
	cr_assert_eq(cli_bare(&r, "--version", NULL), 0);
}

/* ---- value conversion: mpjson (no processes) ---- */

/* Parse JSON into a fresh buffer; returns mpjson_parse()'s code. */
static int
parse(const char *in, msgpack_sbuffer *mp, char *err, size_t errlen)
{
	msgpack_packer pk;

	msgpack_sbuffer_init(mp);
	msgpack_packer_init(&pk, mp, msgpack_sbuffer_write);
	return (mpjson_parse(&pk, in, err, errlen));
}

static void
roundtrip(const char *in, const char *want)
{
	msgpack_sbuffer mp, txt;
	char err[256];

	cr_assert_eq(parse(in, &mp, err, sizeof(err)), 0, "%s: %s", in, err);
	msgpack_sbuffer_init(&txt);
	cr_assert_eq(mpjson_format_bytes(&txt, mp.data, mp.size, 0), 0, "%s",
	    in);
	cr_assert_eq(msgpack_sbuffer_write(&txt, "", 1), 0);
	cr_assert_str_eq(txt.data, want);
	msgpack_sbuffer_destroy(&mp);
	msgpack_sbuffer_destroy(&txt);
}

Test(cli_value, json_roundtrips)
{
	roundtrip("1", "1");
	roundtrip(" -5 ", "-5");
	roundtrip("1.5", "1.5");
	roundtrip("0.1", "0.1");
	roundtrip("3.0", "3.0");
	roundtrip("1e300", "1e+300");
	roundtrip("\"a\\\"b\\n\\u00e9\"", "\"a\\\"b\\n\xc3\xa9\"");
	roundtrip("[1,[2,{}],[]]", "[1,[2,{}],[]]");
	roundtrip("{\"b\":1,\"a\":{\"c\":null}}", "{\"b\":1,\"a\":{\"c\":null}}");
	roundtrip("9223372036854775807", "9223372036854775807");
	roundtrip("-9223372036854775808", "-9223372036854775808");
	roundtrip("9223372036854775808", "9223372036854775808");
	roundtrip("[18446744073709551615]", "[18446744073709551615]");
	roundtrip("{\"$bin\":\"00FF\"}", "{\"$bin\":\"00ff\"}");
	roundtrip("{\"$bin\":\"\"}", "{\"$bin\":\"\"}");
	roundtrip("{\"$ext\":[-3,\"0102\"]}", "{\"$ext\":[-3,\"0102\"]}");
	roundtrip("{\"$ext\":[5,\"010203\"]}", "{\"$ext\":[5,\"010203\"]}");
	roundtrip("{\"$map\":[[1,\"a\"],[\"k\",2]]}",
	    "{\"$map\":[[1,\"a\"],[\"k\",2]]}");
	/* all-string keys come out as a plain object */
	roundtrip("{\"$map\":[[\"a\",1]]}", "{\"a\":1}");
	/* a real map whose only key is "$bin" keeps its identity */
	roundtrip("{\"$bin\":5}", "{\"$map\":[[\"$bin\",5]]}");
	roundtrip("{\"$map\":[[\"$bin\",\"00\"]]}",
	    "{\"$map\":[[\"$bin\",\"00\"]]}");
	roundtrip("\"\\u0000\"", "\"\\u0000\"");
}

/* Keys a JSON object cannot hold print in the $map form and read back
 * (found by tests/fuzz/fuzz_path_json.c). */
Test(cli_value, map_keys_json_cannot_hold)
{
	/* a NUL in a key: jansson refuses it in an object key */
	roundtrip("{\"$map\":[[\"a\\u0000b\",1]]}",
	    "{\"$map\":[[\"a\\u0000b\",1]]}");
	/* repeated keys: an object would keep only the last */
	roundtrip("{\"$map\":[[\"k\",1],[\"k\",2]]}",
	    "{\"$map\":[[\"k\",1],[\"k\",2]]}");
	/* the empty key twice */
	roundtrip("{\"$map\":[[\"\",1],[\"\",2]]}",
	    "{\"$map\":[[\"\",1],[\"\",2]]}");
	/* distinct keys stay a plain object */
	roundtrip("{\"$map\":[[\"k\",1],[\"\",2]]}", "{\"k\":1,\"\":2}");
}

Test(cli_value, json_errors)
{
	static const char *bad[] = {
		"{", "hello", "18446744073709551616", "-9223372036854775809",
		"{\"$bin\":\"0\"}", "{\"$bin\":\"zz\"}", "{\"$ext\":[300,\"\"]}",
		"{\"$map\":[[1]]}", "[1,]", "", "[1,{\"$bin\":\"0\"}]",
	};
	msgpack_sbuffer mp;
	msgpack_packer pk;
	char err[256];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		cr_assert_eq(parse(bad[i], &mp, err, sizeof(err)), -EINVAL,
		    "%s", bad[i]);
		cr_assert(err[0] != '\0', "no message for %s", bad[i]);
		cr_assert_eq(mp.size, 0, "%s packed something", bad[i]);
		msgpack_sbuffer_destroy(&mp);
	}
	/* a failure leaves what the packer already wrote alone */
	msgpack_sbuffer_init(&mp);
	msgpack_packer_init(&pk, &mp, msgpack_sbuffer_write);
	cr_assert_eq(msgpack_pack_array(&pk, 1), 0);
	cr_assert_eq(mpjson_parse(&pk, "[[1,2],{\"$ext\":[1,\"x\"]}]", err,
	    sizeof(err)), -EINVAL);
	cr_assert_eq(mp.size, 1);
	msgpack_sbuffer_destroy(&mp);
}

Test(cli_value, msgpack_forms)
{
	/* float32 0.1, fixext1, str8 with invalid UTF-8, bare flags */
	static const uint8_t f32[] = { 0xca, 0x3d, 0xcc, 0xcc, 0xcd };
	static const uint8_t ext[] = { 0xd4, 0x07, 0xab };
	static const uint8_t badstr[] = { 0xd9, 0x02, 'a', 0xff };
	static const uint8_t str[] = { 0xa2, 'h', 'i' };
	static const uint8_t bin[] = { 0xc4, 0x02, 0x00, 'x' };
	static const uint8_t big[] = { 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff,
	    0xff, 0xff, 0xff };
	static const uint8_t i8[] = { 0xd0, 0x05 };	/* int8 5 */
	static const uint8_t trunc[] = { 0x92, 0x01 };
	static const uint8_t two[] = { 0x01, 0x02 };
	static const uint8_t reserved[] = { 0xc1 };
	static const uint8_t nonstrkey[] = { 0x81, 0x01, 0xc3 };
	msgpack_sbuffer t;

	msgpack_sbuffer_init(&t);
#define FMT(bytes, flags, want) do {					\
	t.size = 0;							\
	cr_assert_eq(mpjson_format_bytes(&t, bytes, sizeof(bytes),	\
	    flags), 0);							\
	cr_assert_eq(t.size, sizeof(want) - 1);				\
	cr_assert(memcmp(t.data, want, t.size) == 0);			\
} while (0)
	FMT(f32, 0, "0.1");
	FMT(ext, 0, "{\"$ext\":[7,\"ab\"]}");
	FMT(badstr, 0, "\"a\xef\xbf\xbd\"");
	FMT(str, 0, "\"hi\"");
	FMT(str, MPJSON_BARE_STR, "hi");
	FMT(bin, 0, "{\"$bin\":\"0078\"}");
	FMT(bin, MPJSON_BARE_BIN, "\0x");
	FMT(big, 0, "18446744073709551615");
	FMT(i8, 0, "5");
	FMT(nonstrkey, 0, "{\"$map\":[[1,true]]}");
#undef FMT
	t.size = 0;
	cr_assert_eq(mpjson_format_bytes(&t, trunc, sizeof(trunc), 0),
	    -EPROTO);
	cr_assert_eq(mpjson_format_bytes(&t, two, sizeof(two), 0), -EPROTO);
	cr_assert_eq(mpjson_format_bytes(&t, reserved, sizeof(reserved), 0),
	    -EPROTO);
	cr_assert_eq(t.size, 0);
	msgpack_sbuffer_destroy(&t);
}

Test(cli_value, canonical_integers)
{
	/* msgpack-c's smallest encodings, as the agent compares bytes */
	static const uint8_t want[] = {
		0x95, 0x7f, 0xe0, 0xd0, 0xdf, 0xcd, 0x01, 0x00,
		0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	};
	msgpack_sbuffer b;
	char err[256];

	cr_assert_eq(parse("[127,-32,-33,256,18446744073709551615]", &b, err,
	    sizeof(err)), 0, "%s", err);
	cr_assert_eq(b.size, sizeof(want));
	cr_assert(memcmp(b.data, want, sizeof(want)) == 0);
	msgpack_sbuffer_destroy(&b);
}

/*
 * Logins (the logins issue): users and the required method through
 * `auth`, a password from $DISTKV_PASSWORD or --password-file (never the
 * command line), exit 6 for "not allowed".
 */
Test(cli, logins_and_auth_commands)
{
	char pwfile[400];
	struct run r;
	FILE *f;
	int rc;

	rc = cli(&r, "auth", "method", NULL);
	cr_assert(rc == 0 && strcmp(r.out, "off\n") == 0, "%d %s", rc, r.out);
	rc = cli(&r, "auth", "method", "password", NULL);
	cr_assert(rc == 4 && strstr(r.err, "You didn't configure") != NULL,
	    "%d %s", rc, r.err);
	setenv("DISTKV_PASSWORD", "s3cret", 1);
	OK("auth", "user", "add", "password", "joe");
	rc = cli(&r, "auth", "user", "add", "password", "joe", NULL);
	cr_assert(rc == 4 && strstr(r.err, "already exists") != NULL,
	    "%d %s", rc, r.err);
	unsetenv("DISTKV_PASSWORD");
	OK("auth", "method", "password");
	/* no login: refused, status 6 */
	rc = cli(&r, "get", "x", NULL);
	cr_assert(rc == 6, "%d %s", rc, r.err);
	setenv("DISTKV_PASSWORD", "wrong", 1);
	rc = cli(&r, "-u", "joe", "get", "x", NULL);
	unsetenv("DISTKV_PASSWORD");
	cr_assert(rc == 6 && strstr(r.err, "AuthFailedError") != NULL,
	    "%d %s", rc, r.err);
	snprintf(pwfile, sizeof(pwfile), "%s/pw", agent.dir);
	f = fopen(pwfile, "w");
	cr_assert(f != NULL);
	fputs("s3cret\n", f);
	fclose(f);
	OK("-u", "joe", "--password-file", pwfile, "set", "x", "1");
	rc = cli(&r, "-u", "joe", "--password-file", pwfile, "get", "x", NULL);
	cr_assert(rc == 0 && strncmp(r.out, "1", 1) == 0, "%d %s", rc, r.err);
	rc = cli(&r, "-u", "joe", "--password-file", pwfile, "auth", "user",
	    "list", "password", NULL);
	cr_assert(rc == 0 && strcmp(r.out, "joe\n") == 0, "%d %s", rc, r.out);
	rc = cli(&r, "-u", "joe", "--password-file", pwfile, "auth", "user",
	    "show", "password", "joe", NULL);
	cr_assert(rc == 0 && strcmp(r.out, "{}\n") == 0, "%d %s", rc, r.out);
	/* stdin is no terminal: no prompt, a clear error */
	if (!isatty(STDIN_FILENO)) {
		rc = cli(&r, "-u", "joe", "get", "x", NULL);
		cr_assert(rc == 2 && strstr(r.err, "DISTKV_PASSWORD") != NULL,
		    "%d %s", rc, r.err);
	}
	OK("-u", "joe", "--password-file", pwfile, "auth", "method", "off");
	OK("get", "x");
}

/* Locked out: --no-login lets the operator in to switch logins off. */
Test(cli_usage, no_login_recovers_a_lock_out, .timeout = 60)
{
	struct harness_agent lo;
	struct run r;
	int rc;

	harness_init(&lo);
	cr_assert(mkdir(lo.state_dir, 0700) == 0);
	cr_assert(harness_start(&lo, "--standalone", "--node", "lo",
	    "--state-dir", lo.state_dir, NULL) == 0);
	memcpy(&agent, &lo, sizeof(agent));
	OK("auth", "user", "add", "root", "*");
	OK("auth", "method", "root");
	OK("auth", "user", "delete", "root", "*");
	/* nobody can log in any more */
	rc = cli(&r, "get", "x", NULL);
	cr_assert(rc == 6, "%d %s", rc, r.err);
	cr_assert(harness_stop(&lo) == 0);
	cr_assert(harness_start(&lo, "--standalone", "--node", "lo",
	    "--state-dir", lo.state_dir, "--no-login", NULL) == 0);
	memcpy(&agent, &lo, sizeof(agent));
	OK("auth", "method", "off");
	cr_assert(harness_stop(&lo) == 0);
	cr_assert(harness_start(&lo, "--standalone", "--node", "lo",
	    "--state-dir", lo.state_dir, NULL) == 0);
	memcpy(&agent, &lo, sizeof(agent));
	rc = cli(&r, "get", "x", NULL);
	cr_assert(rc == 1, "%d %s", rc, r.err);	/* not found: served */
	harness_cleanup(&lo);
	memset(&agent, 0, sizeof(agent));
}

/* ---- the translator's commands (docs/cli.md, "Types and converters") */

#define EXIT_REFUSED_CODE 4	/* the agent refused (docs/cli.md) */

static const char *
write_tmp(const char *name, const char *text)
{
	static char path[4][400];
	static int next;
	char *p = path[next++ % 4];
	FILE *f;

	snprintf(p, 400, "%s/%s", agent.dir, name);
	f = fopen(p, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
	return p;
}

/* test_feature_typecheck.py::test_72_cmd, with Lua code. */
Test(cli, translator_typecheck)
{
	struct run r;
	const char *code = write_tmp("int.lua", "if math.type(value) ~= "
	    "'integer' then error('not an int') end\n");

	OK("type", "set", "int", "--code", code, "-g", "0", "-g", "2",
	    "-b", "none", "-b", "\"Foo\"");
	code = write_tmp("pct.lua", "if not (value >= 0 and value <= 100) "
	    "then error('not a percentage') end\n");
	cr_assert_eq(cli(&r, "type", "set", "--code", code, "-g", "0", "-g",
	    "100", "-g", "50", "-b", "-1", "-b", "5.5", "int/percent", NULL),
	    EXIT_REFUSED_CODE, "exit %d: %s", r.status, r.err);
	cr_assert(strstr(r.err, "not an int") != NULL, "%s", r.err);
	OK("type", "set", "--code", code, "-g", "0", "-g", "100", "-g", "50",
	    "-b", "-1", "-b", "555", "int/percent");
	OK("match", "set", "foo/+/bar", "int/percent");
	cr_assert_eq(cli(&r, "set", "foo/dud/bar", "123", NULL),
	    EXIT_REFUSED_CODE, "%s", r.err);
	cr_assert_eq(cli(&r, "set", "-j", "foo/dud/bar", "123", NULL),
	    EXIT_REFUSED_CODE, "%s", r.err);
	cr_assert(strstr(r.err, "not a percentage") != NULL, "%s", r.err);
	cr_assert_eq(cli(&r, "set", "-j", "foo/dud/bar", "5.5", NULL),
	    EXIT_REFUSED_CODE, "%s", r.err);
	OK("set", "-j", "foo/dud/bar", "55");
	cr_assert_eq(cli(&r, "get", "foo/dud/bar", NULL), 0);
	cr_assert_str_eq(r.out, "55\n");
	cr_assert_eq(cli(&r, "--json", "type", "get", "int/percent", NULL), 0,
	    "%s", r.err);
	cr_assert(strstr(r.out, "\"good\":[0,100,50]") != NULL, "%s", r.out);
	cr_assert_eq(cli(&r, "type", "list", NULL), 0, "%s", r.err);
	cr_assert(strstr(r.out, "int/percent {") != NULL, "%s", r.out);
	cr_assert_eq(cli(&r, "match", "set", "x", "nope", NULL),
	    EXIT_REFUSED_CODE);
	cr_assert(strstr(r.err, "This type does not exist") != NULL, "%s",
	    r.err);
	OK("match", "delete", "foo/+/bar");
	OK("set", "-j", "foo/dud/bar", "555");
}

/* Codecs, converter sets and a user bound to one. */
Test(cli, translator_convert)
{
	struct run r;
	const char *dec = write_tmp("dec.lua", "assert(type(value) == "
	    "'string', 'not a string') return tonumber(value)\n");
	const char *enc = write_tmp("enc.lua", "return tostring(value)\n");

	cr_assert_eq(cli(&r, "codec", "set", "int", "--decode", dec, "--in",
	    "\"1\"=2", NULL), EXIT_REFUSED_CODE);
	cr_assert(strstr(r.err, "Decoding \"1\" got 1, not 2") != NULL, "%s",
	    r.err);
	OK("--json", "codec", "set", "int", "--decode", dec, "--encode", enc,
	    "--in", "\"1\"=1", "--in", "\"2\"=2", "--out", "1=\"1\"",
	    "--out", "-3=\"-3\"");
	OK("conv", "set", "foo", "inty/#", "int");
	cr_assert_eq(cli(&r, "conv", "set", "foo", "x", "nope", NULL),
	    EXIT_REFUSED_CODE);
	cr_assert(strstr(r.err, "This codec does not exist") != NULL, "%s",
	    r.err);
	cr_assert_eq(cli(&r, "--json", "conv", "list", NULL), 0, "%s", r.err);
	cr_assert(strstr(r.out, "\"name\":\"foo/inty/#\"") != NULL, "%s",
	    r.out);
	OK("auth", "user", "add", "_test", "con");
	OK("auth", "user", "conv", "_test", "con", "foo");
	OK("auth", "method", "_test");
	OK("-a", "_test", "-u", "con", "set", "inty/ten", "10");
	/* the region holds the stored form: a converted login reads over
	 * the socket */
	cr_assert_eq(cli(&r, "-a", "_test", "-u", "con", "get", "inty/ten",
	    NULL), 0, "%s", r.err);
	cr_assert_str_eq(r.out, "10\n");
	cr_assert_eq(cli(&r, "--no-shm", "-a", "_test", "-u", "con", "--json",
	    "get", "inty/ten", NULL), 0, "%s", r.err);
	cr_assert(strstr(r.out, "\"value\":\"10\"") != NULL, "%s", r.out);
}

/*
 * Where options may stand (getopt_long, cli/args.c): global ones before
 * the command or among its arguments, the command's own only after it;
 * a negative number is a value; "--opt=VALUE", "-cN" and "-c N" alike.
 */
Test(cli, option_positions_and_values)
{
	struct run r;

	OK("set", "neg/s", "-5");		/* without -j: the string */
	cr_assert_eq(cli(&r, "get", "--json", "neg/s", NULL), 0);
	cr_assert(strncmp(r.out, "{\"path\":\"neg/s\",\"value\":\"-5\"", 28)
	    == 0, "%s", r.out);
	OK("set", "neg/i", "-j", "-5");		/* -j after PATH */
	cr_assert_eq(cli(&r, "get", "neg/i", "--json", NULL), 0);
	cr_assert(strncmp(r.out, "{\"path\":\"neg/i\",\"value\":-5,", 27) == 0,
	    "%s", r.out);
	OK("set", "neg/f", "-0.5", "-j");	/* -j last */
	cli(&r, "get", "neg/f", NULL);
	cr_assert_str_eq(r.out, "-0.5\n");
	/* --prev=VALUE, a negative --prev VALUE */
	OK("set", "--prev=-5", "-j", "neg/i", "7");
	cr_assert_eq(cli(&r, "set", "-j", "--prev", "-5", "neg/i", "8", NULL),
	    4, "%s", r.err);
	/* -cN and -c N; a global option between the command's */
	cr_assert_eq(cli(&r, "get", "-c1", "--json", "neg/i", NULL), 0);
	cr_assert(strstr(r.out, "\"chain\":[{\"node\":\"n1\"") != NULL, "%s",
	    r.out);
	cr_assert_eq(cli(&r, "-t", "5", "get", "-c", "1", "neg/i", NULL), 0);
	cr_assert(strncmp(r.out, "7\nchain: n1:", 12) == 0, "%s", r.out);
}

Test(cli_usage, option_errors)
{
	struct run r;

	/* a command's option before the command is not known there */
	cr_assert_eq(cli_bare(&r, "-j", "get", "k", NULL), 2);
	cr_assert_str_eq(r.err, "distkv-cli: unknown option '-j' (see "
	    "distkv-cli --help)\n");
	cr_assert_eq(cli_bare(&r, "get", "-j", "k", NULL), 2);
	cr_assert_str_eq(r.err, "distkv-cli: get: unknown option '-j' (see "
	    "distkv-cli get --help)\n");
	cr_assert_eq(cli_bare(&r, "get", "k", "--bogus=1", NULL), 2);
	cr_assert_str_eq(r.err, "distkv-cli: get: unknown option "
	    "'--bogus=1' (see distkv-cli get --help)\n");
	cr_assert_eq(cli_bare(&r, "get", "--json=1", "k", NULL), 2);
	cr_assert_str_eq(r.err, "distkv-cli: option --json takes no value\n");
	cr_assert_eq(cli_bare(&r, "get", "k", "-c", NULL), 2);
	cr_assert_str_eq(r.err, "distkv-cli: option -c needs N\n");
	cr_assert_eq(cli_bare(&r, "tree", "--max-depth", NULL), 2);
	cr_assert_str_eq(r.err, "distkv-cli: option --max-depth needs N\n");
	cr_assert_eq(cli_bare(&r, "get", "-c", "x", "k", NULL), 2);
	cr_assert_str_eq(r.err, "distkv-cli: invalid chain length: 'x' (a "
	    "number from 0 to 16)\n", "%s", r.err);
	cr_assert_eq(cli_bare(&r, "set", "k", "v", "w", NULL), 2);
	cr_assert_str_eq(r.out, "");
}

/* ---- values from stdin and files (set PATH -, @FILE, --file) ---- */

static void
write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");

	cr_assert(f != NULL);
	cr_assert_eq(fwrite(data, 1, len, f), len);
	cr_assert_eq(fclose(f), 0);
}

Test(cli, set_from_stdin_and_files)
{
	char bin[256], path[400], big[400];
	struct run r;
	FILE *f;
	int i;

	for (i = 0; i < 256; i++)
		bin[i] = (char)i;
	snprintf(path, sizeof(path), "%s/value.bin", agent.dir);
	write_file(path, bin, sizeof(bin));
	/* bytes that are not UTF-8: a byte string, back unchanged */
	stdin_path = path;
	cr_assert_eq(cli(&r, "set", "v/stdin", "-", NULL), 0, "%s", r.err);
	stdin_path = NULL;
	cr_assert_eq(cli(&r, "get", "--raw", "v/stdin", NULL), 0);
	cr_assert_eq(r.outlen, sizeof(bin));
	cr_assert(memcmp(r.out, bin, sizeof(bin)) == 0);
	cr_assert_eq(cli(&r, "get", "v/stdin", NULL), 0);
	cr_assert(strncmp(r.out, "{\"$bin\":\"000102", 14) == 0, "%s", r.out);
	{
		char at[410];

		snprintf(at, sizeof(at), "@%s", path);
		OK("set", "v/at", at);
	}
	OK("set", "--file", path, "v/file");
	cr_assert_eq(cli(&r, "get", "--raw", "v/file", NULL), 0);
	cr_assert_eq(r.outlen, sizeof(bin));
	cr_assert(memcmp(r.out, bin, sizeof(bin)) == 0);
	cr_assert_eq(cli(&r, "get", "--raw", "v/at", NULL), 0);
	cr_assert_eq(r.outlen, sizeof(bin));

	/* UTF-8 text: a string, its newline kept */
	write_file(path, "line 1\nline 2\n", 14);
	OK("set", "-f", path, "v/text");
	cr_assert_eq(cli(&r, "get", "--json", "v/text", NULL), 0);
	cr_assert(strncmp(r.out, "{\"path\":\"v/text\",\"value\":"
	    "\"line 1\\nline 2\\n\"", 36) == 0, "%s", r.out);

	/* -j: the file is JSON */
	write_file(path, "{\"a\":[1,2.5,-3]}\n", 17);
	stdin_path = path;
	cr_assert_eq(cli(&r, "set", "-j", "v/json", "-", NULL), 0, "%s",
	    r.err);
	stdin_path = NULL;
	cli(&r, "get", "v/json", NULL);
	cr_assert_str_eq(r.out, "{\"a\":[1,2.5,-3]}\n");
	write_file(path, "{\"a\":", 5);
	cr_assert_eq(cli(&r, "set", "-j", "--file", path, "v/json", NULL), 2);
	cr_assert(strstr(r.err, "invalid JSON value in ") != NULL, "%s",
	    r.err);
	write_file(path, "null", 4);
	cr_assert_eq(cli(&r, "set", "-j", "--file", path, "v/json", NULL), 2);
	write_file(path, "1\0", 2);
	cr_assert_eq(cli(&r, "set", "-j", "--file", path, "v/json", NULL), 2);
	cr_assert(strstr(r.err, "NUL byte") != NULL, "%s", r.err);

	/* errors: no such file, '@' alone, --file and VALUE, too large */
	cr_assert_eq(cli(&r, "set", "v/x", "@/nonexistent/file", NULL), 2);
	cr_assert_str_eq(r.err, "distkv-cli: cannot read /nonexistent/file: "
	    "No such file or directory\n");
	cr_assert_eq(cli(&r, "set", "v/x", "@", NULL), 2);
	cr_assert_eq(cli(&r, "set", "--file", path, "v/x", "y", NULL), 2);
	cr_assert_eq(cli(&r, "set", "v/x", NULL), 2);
	snprintf(big, sizeof(big), "%s/big", agent.dir);
	cr_assert((f = fopen(big, "wb")) != NULL);
	for (i = 0; i < (4 << 20) - (64 << 10) + 1; i++)
		fputc('a', f);
	cr_assert_eq(fclose(f), 0);
	cr_assert_eq(cli(&r, "set", "--file", big, "v/x", NULL), 2);
	{
		char want[600];

		snprintf(want, sizeof(want), "distkv-cli: %s: larger than "
		    "4128768 bytes (the agent's default --max-request, 4 MiB, "
		    "less 64 KiB)\n", big);
		cr_assert_str_eq(r.err, want);
	}
	cr_assert_eq(cli(&r, "get", "v/x", NULL), 1);
	/* the largest value that is allowed goes through */
	cr_assert_eq(truncate(big, (4 << 20) - (64 << 10)), 0);
	cr_assert_eq(cli(&r, "set", "--file", big, "v/x", NULL), 0, "%s",
	    r.err);
	/* a string that starts with '@' or is "-": given as JSON */
	OK("set", "-j", "v/at2", "\"@x\"");
	cli(&r, "get", "v/at2", NULL);
	cr_assert_str_eq(r.out, "@x\n");
}

/* ---- export / import ---- */

/* Write s to a file in the agent's directory; its path (static). */
static const char *
write_lines(const char *name, const char *s)
{
	static char path[400];

	snprintf(path, sizeof(path), "%s/%s", agent.dir, name);
	write_file(path, s, strlen(s));
	return (path);
}

Test(cli, export_import_roundtrip)
{
	struct harness_agent fresh;
	struct run r;
	char *first;
	const char *file;
	const char *argv[8];

	/* every kind of value and of path element */
	OK("set", "x/str", "hello\nworld");
	OK("set", "-j", "x/int", "-5");
	OK("set", "-j", "x/big", "18446744073709551615");
	OK("set", "-j", "x/float", "1.0");
	OK("set", "-j", "x/obj", "{\"a\":[1,2.5,true,null],\"b\":{}}");
	OK("set", "-j", "x/bin", "{\"$bin\":\"00ff\"}");
	OK("set", "-j", "x/map", "{\"$map\":[[1,\"one\"],[2,\"two\"]]}");
	OK("set", "-j", "x/ext", "{\"$ext\":[5,\"abcd\"]}");
	OK("set", "x/:42", "int element");
	OK("set", "x/:xcafe", "bytes element");
	OK("set", "x/a\\/b", "escaped slash");
	OK("set", "gone", "x");
	OK("delete", "gone");
	/* a 32-bit float has no JSON form of its own: "msgpack" keeps it */
	file = write_lines("f32.jsonl", "{\"path\":\"x/f32\",\"msgpack\":"
	    "\"ca3fc00000\"}\n");
	cr_assert_eq(cli(&r, "import", file, NULL), 0, "%s", r.err);
	cr_assert_str_eq(r.out, "1 written\n");

	cr_assert_eq(cli(&r, "export", NULL), 0, "%s", r.err);
	cr_assert(strstr(r.out, "{\"path\":\"x/:42\",\"value\":\"int "
	    "element\"}\n") != NULL, "%s", r.out);
	cr_assert(strstr(r.out, "{\"path\":\"x/f32\",\"value\":1.5,"
	    "\"msgpack\":\"ca3fc00000\"}\n") != NULL, "%s", r.out);
	cr_assert(strstr(r.out, "{\"path\":\"x/float\",\"value\":1.0}\n") !=
	    NULL, "%s", r.out);
	cr_assert(strstr(r.out, "gone") == NULL, "%s", r.out);
	first = strdup(r.out);
	file = write_lines("all.jsonl", first);

	/* into a fresh agent, and out again: the same lines */
	harness_init(&fresh);
	cr_assert(harness_start(&fresh, "--standalone", "--node", "n2",
	    NULL) == 0);
	argv[0] = harness_bin("distkv-cli");
	argv[1] = "--socket";
	argv[2] = fresh.socket;
	argv[3] = "import";
	argv[4] = file;
	argv[5] = NULL;
	cr_assert_eq(run_argv(&r, argv), 0, "%s", r.err);
	cr_assert_str_eq(r.out, "12 written\n");
	argv[3] = "export";
	argv[4] = NULL;
	cr_assert_eq(run_argv(&r, argv), 0, "%s", r.err);
	cr_assert_str_eq(r.out, first);
	/* a subtree only */
	argv[4] = "x/obj";
	cr_assert_eq(run_argv(&r, argv), 0, "%s", r.err);
	cr_assert_str_eq(r.out, "{\"path\":\"x/obj\",\"value\":{\"a\":"
	    "[1,2.5,true,null],\"b\":{}}}\n");
	harness_cleanup(&fresh);
	free(first);
}

Test(cli, import_bulk_and_errors)
{
	struct run r;
	static char lines[1000 * 48];
	const char *file;
	size_t n = 0;
	int i;

	for (i = 0; i < 1000; i++)
		n += (size_t)snprintf(lines + n, sizeof(lines) - n,
		    "{\"path\":\"bulk/:%d\",\"value\":%d}\n", i, i * 3);
	file = write_lines("bulk.jsonl", lines);
	cr_assert_eq(cli(&r, "--json", "import", file, NULL), 0, "%s", r.err);
	cr_assert_str_eq(r.out, "{\"written\":1000,\"failed\":0}\n");
	cli(&r, "get", "bulk/:999", NULL);
	cr_assert_str_eq(r.out, "2997\n");
	cr_assert_eq(cli(&r, "tree", "--raw", "bulk", NULL), 0);
	for (i = 0, n = 0; r.out[n] != '\0'; n++)
		i += r.out[n] == '\n';
	cr_assert_eq(i, 1000);
	/* tree --json lines import too; blank lines are skipped */
	file = write_lines("tree.jsonl", "{\"path\":\"t/a\",\"value\":\"A\","
	    "\"tock\":3,\"chain\":[{\"node\":\"n1\",\"tick\":1}]}\n\n  \n");
	cr_assert_eq(cli(&r, "import", file, NULL), 0, "%s", r.err);
	cr_assert_str_eq(r.out, "1 written\n");

	/* a bad line stops the import; what came before is written */
	file = write_lines("bad.jsonl", "{\"path\":\"e/1\",\"value\":1}\n"
	    "{\"path\":\"e/2\",\"value\":\n{\"path\":\"e/3\",\"value\":3}\n");
	cr_assert_eq(cli(&r, "import", file, NULL), 2);
	cr_assert_str_eq(r.out, "1 written\n");
	cr_assert(strstr(r.err, "bad.jsonl:2: invalid JSON") != NULL, "%s",
	    r.err);
	cr_assert_eq(cli(&r, "get", "e/3", NULL), 1);
	file = write_lines("bad2.jsonl", "{\"path\":\"e/4\"}\n");
	cr_assert_eq(cli(&r, "import", file, NULL), 2);
	cr_assert(strstr(r.err, "bad2.jsonl:1: needs \"path\"") != NULL, "%s",
	    r.err);
	file = write_lines("bad3.jsonl", "{\"path\":\"a//b\",\"value\":1}\n");
	cr_assert_eq(cli(&r, "import", file, NULL), 2);
	file = write_lines("bad4.jsonl", "{\"path\":\"e/5\",\"value\":null}\n");
	cr_assert_eq(cli(&r, "import", file, NULL), 2);
	file = write_lines("bad5.jsonl", "{\"path\":\"e/5\",\"msgpack\":\"c1\"}"
	    "\n");
	cr_assert_eq(cli(&r, "import", file, NULL), 2);
	cr_assert_eq(cli(&r, "import", "/nonexistent/x", NULL), 2);
	cr_assert_eq(cli(&r, "get", "e/5", NULL), 1);

	/* a set the agent refuses: reported with its line, the rest goes on */
	{
		const char *code = write_lines("int.lua", "if math.type(value) "
		    "~= 'integer' then error('not an int') end\n");
		char copy[400];

		snprintf(copy, sizeof(copy), "%s", code);
		OK("type", "set", "int", "--code", copy, "-g", "0", "-g", "2",
		    "-b", "none", "-b", "\"Foo\"");
		OK("match", "set", "typed/+", "int");
	}
	file = write_lines("refused.jsonl", "{\"path\":\"typed/a\",\"value\":1}"
	    "\n{\"path\":\"typed/b\",\"value\":\"no\"}\n"
	    "{\"path\":\"typed/c\",\"value\":3}\n");
	cr_assert_eq(cli(&r, "--json", "import", file, NULL), 4, "%s", r.err);
	cr_assert_str_eq(r.out, "{\"written\":2,\"failed\":1}\n");
	cr_assert(strstr(r.err, "refused.jsonl:2: ") != NULL, "%s", r.err);
	cli(&r, "get", "typed/c", NULL);
	cr_assert_str_eq(r.out, "3\n");
}

/* ---- tree --keys, wait -t 0.5, watch --raw deletions ---- */

Test(cli, tree_keys_and_fractional_timeouts)
{
	struct run r;
	long long t0;

	OK("set", "kk/a", "A");
	OK("set", "-j", "kk/:7", "7");
	OK("set", "kk/b\\/c", "slash");
	cr_assert_eq(cli(&r, "tree", "--keys", "kk", NULL), 0, "%s", r.err);
	cr_assert_str_eq(r.out, "kk/a\nkk/:7\nkk/b\\/c\n");
	cr_assert_eq(cli(&r, "--json", "tree", "-k", "--min-depth", "1",
	    "kk", NULL), 0);
	cr_assert_str_eq(r.out, "{\"path\":\"kk/a\"}\n{\"path\":\"kk/:7\"}\n"
	    "{\"path\":\"kk/b\\\\/c\"}\n");
	/* a fraction of a second */
	t0 = harness_now_ms();
	cr_assert_eq(cli(&r, "wait", "-t", "0.5", "kk/a", NULL), 1);
	cr_assert(harness_now_ms() - t0 >= 500);
	cr_assert_str_eq(r.err, "distkv-cli: kk/a: no change within 0.5 s\n");
	cr_assert_eq(cli(&r, "wait", "--changes", "-t", ".25", NULL), 1);
	cr_assert_str_eq(r.err, "distkv-cli: no change within 0.25 s\n");
	cr_assert_eq(cli(&r, "get", "-t", "2.5", "kk/a", NULL), 0);
	cr_assert_eq(cli(&r, "wait", "-t", "0.0001", "kk/a", NULL), 2);
	cr_assert_eq(cli(&r, "wait", "-t", "1e3", "kk/a", NULL), 2);
	cr_assert_eq(cli(&r, "wait", "-t", "1.2.3", "kk/a", NULL), 2);
	cr_assert_str_eq(r.err, "distkv-cli: invalid timeout: '1.2.3' "
	    "(seconds, from 0.001 to 2147483)\n");
}

Test(cli, watch_raw_marks_deletions)
{
	const char *argv[12];
	struct proc p;
	char line[512];

	OK("set", "-j", "rd/x", "1");
	argv[0] = harness_bin("distkv-cli");
	argv[1] = "--socket";
	argv[2] = agent.socket;
	argv[3] = "watch";
	argv[4] = "--raw";
	argv[5] = "--fetch";
	argv[6] = "-n";
	argv[7] = "2";
	argv[8] = "rd";
	argv[9] = NULL;
	spawn(&p, argv, NULL);
	/* fetched: the value-less "rd" (marked), then x */
	cr_assert_str_eq(read_line(&p, line, sizeof(line)), "(no value)\n");
	cr_assert_str_eq(read_line(&p, line, sizeof(line)), "1\n");
	OK("set", "rd/y", "hello");
	cr_assert_str_eq(read_line(&p, line, sizeof(line)), "hello\n");
	OK("delete", "rd/x");
	cr_assert_str_eq(read_line(&p, line, sizeof(line)), "(no value)\n");
	cr_assert_eq(proc_wait(&p), 0);
}

/* ---- shell completion (dist/completion/distkv-cli) ---- */

/* COMPREPLY of the bash completion for the words given (in one string). */
static void
complete_bash(struct run *r, const char *words, int cword)
{
	const char *argv[4];
	char script[2048];

	snprintf(script, sizeof(script), "source %s/dist/completion/distkv-cli"
	    " && COMP_WORDS=(%s) && COMP_CWORD=%d && _distkv_cli && "
	    "printf '%%s\\n' \"${COMPREPLY[@]}\"", TOP_SRCDIR, words, cword);
	argv[0] = "/bin/bash";
	argv[1] = "-c";
	argv[2] = script;
	argv[3] = NULL;
	cr_assert_eq(run_argv(r, argv), 0, "%s", r->err);
}

Test(cli, bash_completion)
{
	char words[512], path[1024], *slash;
	const char *old = getenv("PATH");
	struct run r;

	/* the distkv-cli under test is the one the script runs */
	snprintf(path, sizeof(path), "%s", harness_bin("distkv-cli"));
	cr_assert((slash = strrchr(path, '/')) != NULL);
	snprintf(slash, sizeof(path) - (size_t)(slash - path), ":%s",
	    old != NULL ? old : "/usr/bin:/bin");
	setenv("PATH", path, 1);

	OK("set", "cm/a/x", "1");
	OK("set", "cm/b", "2");
	OK("set", "cm/:5", "3");
	OK("set", "other", "4");
	complete_bash(&r, "distkv-cli ex", 1);
	cr_assert_str_eq(r.out, "export\n");
	complete_bash(&r, "distkv-cli tree --ke", 2);
	cr_assert_str_eq(r.out, "--keys\n");
	snprintf(words, sizeof(words), "distkv-cli --socket %s get cm/",
	    agent.socket);
	complete_bash(&r, words, 4);
	cr_assert_str_eq(r.out, "cm/a/\ncm/b\ncm/:5\n");
	snprintf(words, sizeof(words), "distkv-cli --socket %s tree -k o",
	    agent.socket);
	complete_bash(&r, words, 5);
	cr_assert_str_eq(r.out, "other\n");
	snprintf(words, sizeof(words), "distkv-cli --socket %s get cm/a/",
	    agent.socket);
	complete_bash(&r, words, 4);
	cr_assert_str_eq(r.out, "cm/a/x\n");
	/* no agent: no paths, no noise */
	complete_bash(&r, "distkv-cli --socket /nonexistent get c", 4);
	cr_assert_str_eq(r.out, "\n");
	cr_assert_str_eq(r.err, "");
	setenv("PATH", old != NULL ? old : "/usr/bin:/bin", 1);
}

/* ---- connection errors say why (issue 13 item 12) ---- */

/* A Unix socket at path: bound, and listening if listen_too. */
static int
unix_socket_at(const char *path, bool listen_too)
{
	struct sockaddr_un sun;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	cr_assert(strlen(path) < sizeof(sun.sun_path));
	strcpy(sun.sun_path, path);
	cr_assert((fd = socket(AF_UNIX, SOCK_STREAM, 0)) >= 0);
	cr_assert(bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0);
	if (listen_too)
		cr_assert(listen(fd, 8) == 0);
	return (fd);
}

Test(cli_usage, connection_errors)
{
	char dir[] = "/tmp/distkv-cli-XXXXXX", path[128], want[512];
	const char *argv[12];
	struct run r;
	int fd;

	cr_assert(mkdtemp(dir) != NULL);
	cr_assert(chmod(dir, 0755) == 0);

	/* 1. no such socket */
	snprintf(path, sizeof(path), "%s/missing.sock", dir);
	cr_assert_eq(cli_bare(&r, "--socket", path, "get", "k", NULL), 3);
	snprintf(want, sizeof(want), "distkv-cli: cannot reach the agent at "
	    "%s: no such socket (is distkv-agent running? --socket or "
	    "$DISTKV_SOCKET name another)\n", path);
	cr_assert_str_eq(r.err, want);

	/* 2. not a socket */
	snprintf(path, sizeof(path), "%s/file", dir);
	write_file(path, "x", 1);
	cr_assert_eq(cli_bare(&r, "--socket", path, "get", "k", NULL), 3);
	snprintf(want, sizeof(want), "distkv-cli: cannot reach the agent at "
	    "%s: not a socket (a regular file)\n", path);
	cr_assert_str_eq(r.err, want);
	unlink(path);

	/* 3. a socket nobody listens on */
	snprintf(path, sizeof(path), "%s/stale.sock", dir);
	close(unix_socket_at(path, false));
	cr_assert_eq(cli_bare(&r, "--socket", path, "get", "k", NULL), 3);
	cr_assert(strstr(r.err, ": connection refused (nothing listens "
	    "there") != NULL, "%s", r.err);
	unlink(path);

	/* 4. a listener that never answers: the greeting times out */
	snprintf(path, sizeof(path), "%s/hang.sock", dir);
	fd = unix_socket_at(path, true);
	cr_assert_eq(cli_bare(&r, "--socket", path, "-t", "0.5", "get", "k",
	    NULL), 3);
	snprintf(want, sizeof(want), "distkv-cli: cannot reach the agent at "
	    "%s: no answer within 0.5 s (is it stopped or hung? --timeout "
	    "sets the limit)\n", path);
	cr_assert_str_eq(r.err, want);

	/* 5. permission denied: the socket is root's, 0600; we are nobody */
	cr_assert(chmod(path, 0600) == 0);
	if (getuid() == 0 && access("/usr/bin/setpriv", X_OK) == 0) {
		argv[0] = "/usr/bin/setpriv";
		argv[1] = "--reuid=65534";
		argv[2] = "--regid=65534";
		argv[3] = "--clear-groups";
		argv[4] = harness_bin("distkv-cli");
		argv[5] = "--socket";
		argv[6] = path;
		argv[7] = "get";
		argv[8] = "k";
		argv[9] = NULL;
		cr_assert_eq(run_argv(&r, argv), 3, "%s", r.err);
		snprintf(want, sizeof(want), "distkv-cli: cannot reach the "
		    "agent at %s: permission denied (the socket's group may "
		    "connect: ls -l %s)\n", path, path);
		cr_assert_str_eq(r.err, want);
	} else
		cr_log_warn("not root or no setpriv: permission case skipped");
	close(fd);
	unlink(path);
	rmdir(dir);
}
