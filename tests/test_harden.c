/*
 * test_harden: regression tests of the hardening issue (hostile input and
 * operator mistakes), each against a real distkv-agent.
 *
 * Every test here failed on main ecb24f7 (the behaviour the issue
 * reported) and names the item it covers.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "distkv.h"
#include "harness.h"
#include "logfile.h"
#include "proto.h"
#include "rawclient.h"

static struct harness_agent ag;
static char mounted[320];	/* a tmpfs this test mounted, if any */

static void
setup(void)
{
	harness_init(&ag);
}

static void
teardown(void)
{
	harness_cleanup(&ag);
	if (mounted[0] != '\0') {
		umount2(mounted, MNT_DETACH);
		rmdir(mounted);
		mounted[0] = '\0';
	}
}

TestSuite(harden, .init = setup, .fini = teardown, .timeout = 60);

/* The head tick of path ['NAME'] (nchain 1). */
static uint64_t
head_tick(struct rc_conn *c, int seq, const char *name)
{
	struct rc_msg *m = rc_call(c, "{seq:%d, action:'get_value', "
	    "path:['%s'], nchain:1}", seq, name);
	const msgpack_object *t = rc_get(&m->obj, "chain.tick");
	uint64_t v;

	cr_assert(t != NULL && t->type == MSGPACK_OBJECT_POSITIVE_INTEGER,
	    "no chain tick: %s", rc_show(&m->obj));
	v = t->via.u64;
	rc_msg_free(m);
	return v;
}

static bool
error_is_utf8(const struct rc_msg *m)
{
	const msgpack_object *e = rc_get(&m->obj, "error");

	cr_assert(e != NULL && e->type == MSGPACK_OBJECT_STR,
	    "expected an error: %s", rc_show(&m->obj));
	return proto_utf8_valid(e->via.str.ptr, e->via.str.size);
}

/* Item 1: a tick that cannot be followed is refused; no tick is reused. */
Test(harden, tick_beyond_ceiling_refused)
{
	struct rc_conn *c;
	uint64_t t1, t2, t3;

	RC_START(&ag, "--standalone", "--node", "h1");
	c = rc_open(ag.socket);
	cr_assert(c != NULL);
	RC_ASSERT_MATCH(rc_call(c, "{seq:1, action:'set_value', path:['x'], "
	    "value:0, nchain:0}"), "{seq:1, changed:true, prev:nil, tock:_}");
	t1 = head_tick(c, 2, "x");
	/* the own node at 2^64-1, as head and as a prev link */
	RC_ASSERT_MATCH(rc_call(c, "{seq:3, action:'update', path:['x'], "
	    "value:1, node:'h1', tick:18446744073709551615, prev:nil, "
	    "tock:5}"), "{seq:3, error:_, tock:_}");
	RC_ASSERT_MATCH(rc_call(c, "{seq:4, action:'update', path:['y'], "
	    "value:1, node:'h2', tick:1, prev:{node:'h1', "
	    "tick:18446744073709551615, prev:nil}, tock:5}"),
	    "{seq:4, error:_, tock:_}");
	/* one past the documented ceiling 2^53-1 */
	RC_ASSERT_MATCH(rc_call(c, "{seq:5, action:'update', path:['x'], "
	    "value:1, node:'h1', tick:9007199254740992, prev:nil, tock:5}"),
	    "{seq:5, error:_, tock:_}");
	/* nothing changed: y was never created, x holds its value */
	{
		struct rc_msg **v;
		size_t n;

		rc_send(c, "{seq:6, action:'get_tree', path:[]}");
		v = rc_collect(c, 6, &n, RC_TIMEOUT);
		for (size_t i = 0; i < n; i++)
			cr_assert(!rc_match(&v[i]->obj, NULL, 0,
			    "{seq:6, path:['y'], ...}"), "y exists: %s",
			    rc_show(&v[i]->obj));
		rc_msgs_free(v, n);
	}
	RC_ASSERT_MATCH(rc_call(c, "{seq:7, action:'get_value', path:['x']}"),
	    "{seq:7, value:0, tock:_}");
	/* writes go on, each with a new, higher tick */
	RC_ASSERT_MATCH(rc_call(c, "{seq:8, action:'set_value', path:['x'], "
	    "value:2, nchain:0}"), "{seq:8, changed:true, prev:0, tock:_}");
	t2 = head_tick(c, 9, "x");
	RC_ASSERT_MATCH(rc_call(c, "{seq:10, action:'set_value', path:['x'], "
	    "value:3, nchain:0}"), "{seq:10, changed:true, prev:2, tock:_}");
	t3 = head_tick(c, 11, "x");
	cr_assert(t1 < t2 && t2 < t3, "ticks %llu %llu %llu",
	    (unsigned long long)t1, (unsigned long long)t2,
	    (unsigned long long)t3);
	RC_ASSERT_MATCH(rc_call(c, "{seq:12, action:'get_state', nodes:true}"),
	    "{seq:12, nodes:{h1:%llu}, tock:_}", (unsigned long long)t3);

	/* at the ceiling itself, a change is refused by its real cause */
	RC_ASSERT_MATCH(rc_call(c, "{seq:13, action:'update', path:['z'], "
	    "value:1, node:'h1', tick:9007199254740991, prev:nil, tock:5}"),
	    "{seq:13, count:1, tock:_}");
	{
		struct rc_msg *m = rc_call(c, "{seq:14, action:'set_value', "
		    "path:['x'], value:4}");

		cr_assert(rc_str_prefix(&m->obj, "error", "Tick limit reached"),
		    "%s", rc_show(&m->obj));
		rc_msg_free(m);
	}
	RC_ASSERT_MATCH(rc_call(c, "{seq:15, action:'get_value', path:['x']}"),
	    "{seq:15, value:3, tock:_}");
	rc_close(c);
}

/* Item 2: a tock beyond the ceiling is refused; tocks only grow. */
Test(harden, tock_beyond_ceiling_refused)
{
	struct rc_conn *c;
	uint64_t prev = 0;

	RC_START(&ag, "--standalone", "--node", "h1");
	c = rc_open(ag.socket);
	cr_assert(c != NULL);
	RC_ASSERT_MATCH(rc_call(c, "{seq:1, action:'update', path:['t'], "
	    "value:1, node:'h2', tick:1, prev:nil, "
	    "tock:18446744073709551606}"), "{seq:1, error:_, tock:_}");
	RC_ASSERT_MATCH(rc_call(c, "{seq:2, action:'update', path:['t'], "
	    "value:1, node:'h2', tick:1, prev:nil, tock:9007199254740992}"),
	    "{seq:2, error:_, tock:_}");
	for (int i = 0; i < 5; i++) {
		struct rc_msg *m = rc_call(c, "{seq:%d, action:'set_value', "
		    "path:['t'], value:%d, nchain:0}", 10 + i, i);
		int64_t tock = rc_int(&m->obj, "tock");

		cr_assert(!rc_has(&m->obj, "error"), "%s", rc_show(&m->obj));
		cr_assert(tock > 0 && (uint64_t)tock > prev,
		    "tock %lld after %llu", (long long)tock,
		    (unsigned long long)prev);
		cr_assert((uint64_t)tock < 1000, "tock %lld: the refused "
		    "update moved the clock", (long long)tock);
		prev = (uint64_t)tock;
		rc_msg_free(m);
	}
	rc_close(c);
}

/* Item 3: every error text is valid UTF-8, however long its parts. */
/*
 * The widest reply fields: a seq and a tock of 9 bytes each (the set and
 * get replies are packed by hand into a room of fixed size; an overrun
 * aborts the agent).  Every reply that carries the entry's tock is read
 * back whole.
 */
Test(harden, widest_seq_and_tock_fit_their_replies)
{
	struct rc_conn *c;

	RC_START(&ag, "--standalone", "--node", "h1");
	c = rc_open(ag.socket);
	cr_assert(c != NULL);
	/* a tock near the ceiling 2^53-1 and a seq past 2^32: 9 bytes
	 * each (and room for the local set's tock after it) */
	RC_ASSERT_MATCH(rc_call(c, "{seq:4294967296, action:'update', "
	    "path:['w'], value:'x', node:'h2', tick:1, prev:nil, "
	    "tock:9007199254740000}"), "{seq:4294967296, count:1, tock:_}");
	RC_ASSERT_MATCH(rc_call(c, "{seq:9007199254740000, "
	    "action:'get_value', path:['w']}"),
	    "{seq:9007199254740000, value:'x', tock:9007199254740000}");
	RC_ASSERT_MATCH(rc_call(c, "{seq:9007199254740001, "
	    "action:'get_value', path:['w'], nchain:3}"),
	    "{seq:9007199254740001, value:'x', tock:9007199254740000, "
	    "chain:{node:'h2', tick:1, prev:nil}}");
	/* a set's reply: the old value too, and a tock past it */
	RC_ASSERT_MATCH(rc_call(c, "{seq:9007199254740002, "
	    "action:'set_value', path:['w'], value:'y'}"),
	    "{seq:9007199254740002, changed:true, prev:'x', tock:_, chain:_}");
	RC_ASSERT_MATCH(rc_call(c, "{seq:9007199254740003, "
	    "action:'get_value', path:['w']}"),
	    "{seq:9007199254740003, value:'y', tock:_}");
	rc_close(c);
}

Test(harden, error_texts_are_utf8)
{
	char action[256], val[1024];
	struct rc_conn *c;
	struct rc_msg *m;
	size_t n = 0;

	RC_START(&ag, "--standalone", "--node", "h1");
	c = rc_open(ag.socket);
	cr_assert(c != NULL);
	for (int i = 0; i < 40; i++)
		n += (size_t)snprintf(action + n, sizeof(action) - n, "é");
	m = rc_call(c, "{seq:1, action:'%s'}", action);
	cr_assert(error_is_utf8(m), "%s", rc_show(&m->obj));
	rc_msg_free(m);
	for (int k = 1; k < 4; k++) {
		/* every cut position of a two-byte character */
		n = 0;
		for (int i = 0; i < 150 + k; i++)
			n += (size_t)snprintf(val + n, sizeof(val) - n, "%s",
			    i < k ? "a" : "é");
		RC_ASSERT_MATCH(rc_call(c, "{seq:%d, action:'set_value', "
		    "path:['u'], value:'%s', nchain:0}", 10 * k, val),
		    "{seq:%d, changed:true, prev:_, tock:_}", 10 * k);
		m = rc_call(c, "{seq:%d, action:'set_value', path:['u'], "
		    "value:'x', prev:'y'}", 10 * k + 1);
		cr_assert(rc_str_prefix(&m->obj, "error", "Data is"), "%s",
		    rc_show(&m->obj));
		cr_assert(error_is_utf8(m), "%s", rc_show(&m->obj));
		rc_msg_free(m);
	}
	rc_close(c);
}

static long
agent_rss_kib(pid_t pid)
{
	char path[64], line[256];
	long kib = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	cr_assert(f != NULL);
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

/*
 * Item 4: a client that pipelines requests with big replies and never
 * reads costs at most --max-output (plus one reply), not a reply per
 * request; once it reads, every request is answered, in order.
 */
Test(harden, max_output_bounds_pipelined_replies, .timeout = 120)
{
	enum { N = 4000, VLEN = 256 * 1024 };
	struct rc_conn *c;
	uint8_t *req;
	size_t reqlen;
	msgpack_sbuffer sb;
	long before, grown = 0;
	long long until;
	int i;
	char *val;

	RC_START(&ag, "--standalone", "--node", "h1");
	c = rc_open(ag.socket);
	cr_assert(c != NULL);
	val = malloc(VLEN + 1);
	cr_assert(val != NULL);
	memset(val, 'v', VLEN);
	val[VLEN] = '\0';
	RC_ASSERT_MATCH(rc_call(c, "{seq:1, action:'set_value', path:['big'], "
	    "value:'%s', nchain:0}", val), "{seq:1, changed:true, prev:nil, "
	    "tock:_}");
	before = agent_rss_kib(ag.pid);
	msgpack_sbuffer_init(&sb);
	for (i = 0; i < N; i++) {
		cr_assert(rc_build(&req, &reqlen, "{seq:%d, action:'get_value', "
		    "path:['big']}", 100 + i) == 0);
		msgpack_sbuffer_write(&sb, (const char *)req, reqlen);
		free(req);
	}
	/* ~140 KB of requests: the kernel takes them all at once */
	cr_assert(send(c->fd, sb.data, sb.size, MSG_NOSIGNAL) ==
	    (ssize_t)sb.size);
	/*
	 * Watch the agent for 2 s: 4,000 replies of 256 KiB would be 1 GB;
	 * --max-output (16 MiB) allows about 16 MiB.  The failure shows
	 * within a few hundred ms; passing takes the whole window.
	 */
	until = harness_now_ms() + 2000;
	while (harness_now_ms() < until) {
		grown = agent_rss_kib(ag.pid) - before;
		if (grown > 64 * 1024)
			break;
		usleep(20000);	/* sampling interval of a bounded watch */
	}
	cr_assert(grown <= 64 * 1024, "agent RSS grew by %ld KiB for a "
	    "client that does not read (--max-output 16 MiB)", grown);
	for (i = 0; i < N; i++) {
		struct rc_msg *m = rc_recv(c, RC_TIMEOUT);

		cr_assert(m != NULL, "reply %d missing", i);
		cr_assert(rc_int(&m->obj, "seq") == 100 + i, "reply %d: %.100s",
		    i, rc_show(&m->obj));
		cr_assert(rc_get(&m->obj, "value") != NULL &&
		    rc_get(&m->obj, "value")->via.str.size == VLEN);
		rc_msg_free(m);
	}
	msgpack_sbuffer_destroy(&sb);
	free(val);
	rc_close(c);
}

/* A path of n elements "<i>" + 250 - strlen bytes of c, as notation. */
static char *
long_path(int first, int n, size_t elen)
{
	size_t cap = (size_t)n * (elen + 8) + 16, len = 0;
	char *p = malloc(cap);

	cr_assert(p != NULL);
	for (int i = 0; i < n; i++) {
		len += (size_t)snprintf(p + len, cap - len, "%s'%05d",
		    i ? "," : "", i == 0 ? first : i);
		memset(p + len, 'a' + i % 26, elen - 5);
		len += elen - 5;
		p[len++] = '\'';
	}
	p[len] = '\0';
	return p;
}

/*
 * Item 5: a documented byte limit on one element and a whole path, with a
 * clear error; the agent's memory per entry follows its own element, not
 * its depth times its path.
 */
Test(harden, path_byte_limits_and_memory, .timeout = 120)
{
	enum { PATHS = 200, DEPTH = 64, ELEN = 250 };
	struct rc_conn *c;
	struct rc_msg *m;
	long before, grown;
	char *p, opts[1024];
	const char *asan = getenv("ASAN_OPTIONS");

	/* ASan keeps freed blocks (its quarantine, 256 MB): the requests'
	 * buffers would count as the agent's memory */
	if (asan != NULL) {
		snprintf(opts, sizeof(opts), "%s:quarantine_size_mb=0", asan);
		setenv("ASAN_OPTIONS", opts, 1);
	}
	RC_START(&ag, "--standalone", "--node", "h1");
	c = rc_open(ag.socket);
	cr_assert(c != NULL);
	/* one element over 4096 bytes; a whole path over 16384 */
	p = long_path(0, 1, PROTO_MAX_ELEM_BYTES + 1);
	m = rc_call(c, "{seq:1, action:'set_value', path:[%s], value:1}", p);
	cr_assert(rc_str_prefix(&m->obj, "error", "Path too long"), "%s",
	    rc_show(&m->obj));
	rc_msg_free(m);
	free(p);
	p = long_path(0, 5, 4000);
	m = rc_call(c, "{seq:2, action:'set_value', path:[%s], value:1}", p);
	cr_assert(rc_str_prefix(&m->obj, "error", "Path too long"), "%s",
	    rc_show(&m->obj));
	rc_msg_free(m);
	free(p);
	m = rc_call(c, "{seq:3, action:'get_state', entries:true}");
	rc_msg_free(m);

	before = agent_rss_kib(ag.pid);
	for (int i = 0; i < PATHS; i++) {
		p = long_path(i, DEPTH, ELEN);
		RC_ASSERT_MATCH(rc_call(c, "{seq:%d, action:'set_value', "
		    "path:[%s], value:%d, nchain:0}", 10 + i, p, i),
		    "{seq:%d, changed:true, prev:nil, tock:_}", 10 + i);
		free(p);
	}
	grown = agent_rss_kib(ag.pid) - before;
	/* whole keys in every entry would be ~100 MB; own elements ~5 MB */
	cr_assert(grown < 40 * 1024, "agent RSS grew by %ld KiB for %d "
	    "paths of %d elements of %d bytes", grown, PATHS, DEPTH, ELEN);
	/* and every deep entry is found again, by path and by walking */
	for (int i = 0; i < PATHS; i += 37) {
		p = long_path(i, DEPTH, ELEN);
		RC_ASSERT_MATCH(rc_call(c, "{seq:%d, action:'get_value', "
		    "path:[%s]}", 1000 + i, p), "{seq:%d, value:%d, tock:_}",
		    1000 + i, i);
		free(p);
	}
	{
		struct rc_msg **v;
		size_t n, items = 0;

		p = long_path(7, DEPTH, ELEN);
		rc_send(c, "{seq:5000, action:'get_tree', path:[%.*s]}",
		    (int)(strchr(p, ',') - p), p);
		v = rc_collect(c, 5000, &n, RC_TIMEOUT);
		for (size_t i = 0; i < n; i++) {
			const msgpack_object *path = rc_get(&v[i]->obj, "path");

			if (path == NULL || !rc_has(&v[i]->obj, "value"))
				continue;
			items++;
			cr_assert(rc_match(&v[i]->obj, NULL, 0, "{seq:5000, "
			    "path:[%s], depth:0, value:7, tock:_}",
			    strchr(p, ',') + 1), "%.300s", rc_show(&v[i]->obj));
		}
		cr_assert(items == 1, "%zu items", items);
		rc_msgs_free(v, n);
		free(p);
	}
	rc_close(c);
}

/* CPU seconds (user + system) the process has used so far. */
static double
proc_cpu_seconds(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut = 0, st = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	cr_assert(f != NULL);
	cr_assert(fgets(buf, sizeof(buf), f) != NULL);
	fclose(f);
	p = strrchr(buf, ')');
	cr_assert(p != NULL);
	/* fields 14 and 15 (utime, stime); p is at the end of field 2 */
	cr_assert(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
	    "%lu %lu", &ut, &st) == 2);
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static long
file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/*
 * Item 6: out of descriptors, the agent neither spins nor floods its log;
 * it serves again once clients leave.
 */
Test(harden, emfile_no_spin, .timeout = 60)
{
	enum { N = 80 };
	struct rlimit rl = { 48, 48 };
	int fds[N], nfds = 0;
	char errpath[320];
	double cpu0, cpu1;
	long log0, log1;
	struct rc_conn *c;

	RC_START(&ag, "--standalone", "--node", "h1");
	cr_assert(prlimit(ag.pid, RLIMIT_NOFILE, &rl, NULL) == 0,
	    "prlimit: %s", strerror(errno));
	snprintf(errpath, sizeof(errpath), "%s/agent.err", ag.dir);
	/* more connections than the agent has descriptors for */
	for (int i = 0; i < N; i++) {
		if ((fds[nfds] = harness_connect(ag.socket)) >= 0)
			nfds++;
	}
	cr_assert(nfds > 48, "only %d connections", nfds);
	/* let the agent hit the limit: a fresh client is not greeted */
	c = rc_open_nogreet(ag.socket);
	cr_assert(c != NULL);
	cr_assert(rc_recv(c, 500) == NULL, "greeted beyond the fd limit");
	cpu0 = proc_cpu_seconds(ag.pid);
	log0 = file_size(errpath);
	{
		/* a bounded watch of 2 s: a spinning agent burns ~2 s */
		long long until = harness_now_ms() + 2000;

		while (harness_now_ms() < until)
			usleep(50000);
	}
	cpu1 = proc_cpu_seconds(ag.pid);
	log1 = file_size(errpath);
	cr_assert(cpu1 - cpu0 < 0.5, "agent used %.2f s of CPU in 2 s while "
	    "out of descriptors", cpu1 - cpu0);
	cr_assert(log1 - log0 < 1024, "agent logged %ld bytes in 2 s while "
	    "out of descriptors", log1 - log0);
	cr_assert(strstr(rc_agent_err(&ag), "Too many open files") != NULL,
	    "no warning in the log:\n%s", rc_agent_err(&ag));
	/* clients leave: the waiting one is greeted and served */
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
	{
		struct rc_msg *g = rc_recv(c, RC_TIMEOUT);

		cr_assert(g != NULL, "the waiting client was never greeted");
		rc_msg_free(g);
	}
	RC_ASSERT_MATCH(rc_call(c, "{seq:1, action:'set_value', path:['k'], "
	    "value:1, nchain:0}"), "{seq:1, changed:true, prev:nil, tock:_}");
	rc_close(c);
}

/*
 * Run a built program (e.g. "distkv-agent") with args (NULL-terminated,
 * after the program name) until it exits, 15 s at most; its exit status,
 * its stdout into out (if not NULL) and its stderr into err.
 */
static int
run_prog(const char *prog, char *out, size_t outlen, char *err,
    size_t errlen, const char *const *args)
{
	const char *argv[32];
	char path[320], opath[320];
	int argc = 0, status = -1;
	long long deadline = harness_now_ms() + 15000;
	pid_t pid;
	FILE *f;

	argv[argc++] = harness_bin(prog);
	for (size_t i = 0; args[i] != NULL && argc < 31; i++)
		argv[argc++] = args[i];
	argv[argc] = NULL;
	snprintf(path, sizeof(path), "%s/run.err", ag.dir);
	snprintf(opath, sizeof(opath), "%s/run.out", ag.dir);
	pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int ofd = open(opath, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		if (fd >= 0)
			dup2(fd, 2);
		if (ofd >= 0)
			dup2(ofd, 1);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	while (waitpid(pid, &status, WNOHANG) == 0) {
		if (harness_now_ms() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			cr_assert_fail("%s did not exit within 15 s", prog);
		}
		usleep(10000);	/* poll interval of a deadline-bounded wait */
	}
	for (int k = 0; k < 2; k++) {
		char *b = k ? out : err;
		size_t cap = k ? outlen : errlen;

		if (b == NULL)
			continue;
		b[0] = '\0';
		if ((f = fopen(k ? opath : path, "r")) != NULL) {
			size_t n = fread(b, 1, cap - 1, f);

			b[n] = '\0';
			fclose(f);
		}
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int
run_agent(char *err, size_t errlen, const char *const *args)
{
	return run_prog("distkv-agent", NULL, 0, err, errlen, args);
}

/* Item 8: a cluster node without a cluster key refuses to start. */
Test(harden, cluster_needs_a_key)
{
	char err[4096];
	const char *args[] = { "--node", "k1", "--socket", ag.socket,
	    "--shm", ag.shm, "--bind", "127.0.0.250:17001", "--serf-rpc",
	    "127.0.0.250:17002", "--run-dir", ag.dir, NULL };
	int rc = run_agent(err, sizeof(err), args);

	cr_assert(rc == 2, "exit %d, stderr:\n%s", rc, err);
	cr_assert(strstr(err, "--cluster-key") != NULL &&
	    strstr(err, "--insecure-no-cluster-key") != NULL, "%s", err);
	cr_assert(access(ag.socket, F_OK) != 0, "a socket was opened");
}

/*
 * Item 9: save and log never write a file the agent owns; by default they
 * write into a subdirectory of the state dir.
 */
Test(harden, save_never_overwrites_state, .timeout = 60)
{
	static const char *const owned[] = { "changes.dkv", "lock",
	    "snapshot.dkv", "snapshot.dkv.tmp", "changes.dkv.tmp" };
	char path[400], link[400];
	struct rc_conn *c;
	struct rc_msg *m;
	struct stat st;
	int seq = 1;

	cr_assert(mkdir(ag.state_dir, 0750) == 0);
	RC_START(&ag, "--standalone", "--node", "s1", "--state-dir",
	    ag.state_dir);
	c = rc_open(ag.socket);
	cr_assert(c != NULL);
	RC_ASSERT_MATCH(rc_call(c, "{seq:%d, action:'set_value', path:['a'], "
	    "value:1, nchain:0}", seq), "{seq:%d, changed:true, prev:nil, "
	    "tock:_}", seq);
	seq++;
	/* the default file dir is DIR/files: these names are harmless */
	for (size_t i = 0; i < 3; i++) {
		RC_ASSERT_MATCH(rc_call(c, "{seq:%d, action:'save', "
		    "path:'%s'}", seq, owned[i]), "{seq:%d, result:true, "
		    "tock:_}", seq);
		seq++;
		snprintf(path, sizeof(path), "%s/files/%s", ag.state_dir,
		    owned[i]);
		cr_assert(stat(path, &st) == 0, "%s not written", path);
	}
	RC_ASSERT_MATCH(rc_call(c, "{seq:%d, action:'set_value', path:['b'], "
	    "value:2, nchain:0}", seq), "{seq:%d, changed:true, prev:nil, "
	    "tock:_}", seq);
	seq++;
	rc_close(c);
	/* the acknowledged writes survive a crash: the log is intact */
	harness_kill9(&ag);
	RC_START(&ag, "--standalone", "--node", "s1", "--state-dir",
	    ag.state_dir, "--file-dir", ag.state_dir);
	c = rc_open(ag.socket);
	cr_assert(c != NULL);
	RC_ASSERT_MATCH(rc_call(c, "{seq:%d, action:'get_value', path:['b']}",
	    seq), "{seq:%d, value:2, tock:_}", seq);
	seq++;
	/* --file-dir is the state dir itself: its own files are refused */
	for (size_t i = 0; i < sizeof(owned) / sizeof(owned[0]); i++) {
		for (int log = 0; log < 2; log++) {
			m = rc_call(c, "{seq:%d, action:'%s', path:'%s'}", seq,
			    log ? "log" : "save", owned[i]);
			cr_assert(rc_str_prefix(&m->obj, "error",
			    "Refusing to write"), "%s %s: %s", log ? "log" :
			    "save", owned[i], rc_show(&m->obj));
			rc_msg_free(m);
			seq++;
		}
	}
	/* and so is another name for the change log, or for the socket */
	snprintf(link, sizeof(link), "%s/other.dkv", ag.state_dir);
	snprintf(path, sizeof(path), "%s/changes.dkv", ag.state_dir);
	cr_assert(symlink(path, link) == 0);
	m = rc_call(c, "{seq:%d, action:'save', path:'other.dkv'}", seq++);
	cr_assert(rc_str_prefix(&m->obj, "error", "Refusing to write"), "%s",
	    rc_show(&m->obj));
	rc_msg_free(m);
	snprintf(link, sizeof(link), "%s/sock.dkv", ag.state_dir);
	cr_assert(symlink(ag.socket, link) == 0);
	m = rc_call(c, "{seq:%d, action:'log', path:'sock.dkv'}", seq++);
	cr_assert(rc_str_prefix(&m->obj, "error", "Refusing to write"), "%s",
	    rc_show(&m->obj));
	rc_msg_free(m);
	RC_ASSERT_MATCH(rc_call(c, "{seq:%d, action:'set_value', path:['c'], "
	    "value:3, nchain:0}", seq), "{seq:%d, changed:true, prev:nil, "
	    "tock:_}", seq);
	seq++;
	rc_close(c);
	harness_kill9(&ag);
	/* nothing of the state was overwritten: a restart finds the data */
	RC_START(&ag, "--standalone", "--node", "s1", "--state-dir",
	    ag.state_dir);
	c = rc_open(ag.socket);
	cr_assert(c != NULL);
	RC_ASSERT_MATCH(rc_call(c, "{seq:1, action:'get_value', path:['c']}"),
	    "{seq:1, value:3, tock:_}");
	rc_close(c);
}

/*
 * Item 10: a second agent for the same region (same node name, or the
 * same --shm) refuses to start; the first one's readers keep its data.
 */
Test(harden, one_agent_per_region)
{
	char shm[300], err[4096];
	const char *args[16];
	struct rc_conn *c;
	int rc;

	RC_START(&ag, "--standalone", "--node", "r1");
	c = rc_open(ag.socket);
	cr_assert(c != NULL);
	RC_ASSERT_MATCH(rc_call(c, "{seq:1, action:'set_value', path:['who'], "
	    "value:'first', nchain:0}"), "{seq:1, changed:true, prev:nil, "
	    "tock:_}");
	snprintf(shm, sizeof(shm), "%s", ag.shm);
	{
		char sock2[320];
		size_t k = 0;

		snprintf(sock2, sizeof(sock2), "%s/second.sock", ag.dir);
		args[k++] = "--standalone";
		args[k++] = "--node";
		args[k++] = "r1";
		args[k++] = "--socket";
		args[k++] = sock2;
		args[k++] = "--shm";
		args[k++] = shm;
		args[k] = NULL;
		rc = run_agent(err, sizeof(err), args);
		cr_assert(rc == 1, "second agent: exit %d\n%s", rc, err);
		cr_assert(strstr(err, "in use by another agent") != NULL, "%s",
		    err);
		cr_assert(access(sock2, F_OK) != 0, "the second agent served");
	}
	/* the region is still the first agent's: it publishes into it */
	RC_ASSERT_MATCH(rc_call(c, "{seq:2, action:'set_value', path:['who'], "
	    "value:'still first', nchain:0}"), "{seq:2, changed:true, "
	    "prev:'first', tock:_}");
	rc_close(c);
	{
		char cmd[700], out[256] = "";
		FILE *p;

		snprintf(cmd, sizeof(cmd), "DISTKV_SOCKET=%s %s --json get who",
		    ag.socket, harness_bin("distkv-cli"));
		p = popen(cmd, "r");
		cr_assert(p != NULL);
		cr_assert(fgets(out, sizeof(out), p) != NULL);
		pclose(p);
		cr_assert(strstr(out, "still first") != NULL, "%s", out);
	}
}

/* Item 11: --socket naming a regular file leaves that file alone. */
Test(harden, socket_path_regular_file_kept)
{
	char err[4096], buf[64] = "";
	const char *args[] = { "--standalone", "--node", "f1", "--socket",
	    ag.socket, "--shm", ag.shm, NULL };
	FILE *f = fopen(ag.socket, "w");
	int rc;

	cr_assert(f != NULL);
	fputs("precious\n", f);
	fclose(f);
	rc = run_agent(err, sizeof(err), args);
	cr_assert(rc == 1, "exit %d\n%s", rc, err);
	cr_assert(strstr(err, "not a socket") != NULL, "%s", err);
	f = fopen(ag.socket, "r");
	cr_assert(f != NULL, "the file is gone");
	cr_assert(fgets(buf, sizeof(buf), f) != NULL);
	fclose(f);
	cr_assert_str_eq(buf, "precious\n");
}

/* Item 12: SIGHUP reopens the log file and the agent keeps serving. */
Test(harden, sighup_reopens_log)
{
	char logp[320], moved[320], buf[4096];
	struct rc_conn *c;
	long long deadline;
	FILE *f;
	size_t n;

	snprintf(logp, sizeof(logp), "%s/agent.log", ag.dir);
	snprintf(moved, sizeof(moved), "%s/agent.log.1", ag.dir);
	RC_START(&ag, "--standalone", "--node", "g1", "--log-file", logp);
	cr_assert(rename(logp, moved) == 0, "no log file: %s",
	    strerror(errno));
	cr_assert(kill(ag.pid, SIGHUP) == 0);
	/* the new file appears with the agent's word on it */
	deadline = harness_now_ms() + 5000;
	for (;;) {
		buf[0] = '\0';
		if ((f = fopen(logp, "r")) != NULL) {
			n = fread(buf, 1, sizeof(buf) - 1, f);
			buf[n] = '\0';
			fclose(f);
		}
		if (strstr(buf, "SIGHUP") != NULL)
			break;
		cr_assert(harness_now_ms() < deadline, "no reopened log; "
		    "agent %s", waitpid(ag.pid, NULL, WNOHANG) == 0 ?
		    "alive" : "dead");
		usleep(20000);	/* poll interval of a deadline-bounded wait */
	}
	c = rc_open(ag.socket);
	cr_assert(c != NULL, "the agent stopped serving after SIGHUP");
	RC_ASSERT_MATCH(rc_call(c, "{seq:1, action:'set_value', path:['h'], "
	    "value:1, nchain:0}"), "{seq:1, changed:true, prev:nil, tock:_}");
	rc_close(c);
	/* without --log-file, SIGHUP changes nothing either */
	cr_assert(harness_stop(&ag) == 0);
	RC_START(&ag, "--standalone", "--node", "g1");
	cr_assert(kill(ag.pid, SIGHUP) == 0);
	c = rc_open(ag.socket);
	cr_assert(c != NULL);
	RC_ASSERT_MATCH(rc_call(c, "{seq:1, action:'get_value', path:['h']}"),
	    "{seq:1, value:nil, tock:_}");
	rc_close(c);
	deadline = harness_now_ms() + 5000;
	while (strstr(rc_agent_err(&ag), "SIGHUP") == NULL) {
		cr_assert(harness_now_ms() < deadline, "SIGHUP not logged");
		usleep(20000);	/* poll interval of a deadline-bounded wait */
	}
	cr_assert(waitpid(ag.pid, NULL, WNOHANG) == 0, "SIGHUP killed it");
}

static void
set_values(struct rc_conn *c, int first, int n)
{
	for (int i = first; i < first + n; i++)
		RC_ASSERT_MATCH(rc_call(c, "{seq:%d, action:'set_value', "
		    "path:['v', %d], value:%d, nchain:0}", 100 + i, i, i),
		    "{seq:%d, changed:true, prev:nil, tock:_}", 100 + i);
}

static void
expect_values(struct rc_conn *c, int n)
{
	for (int i = 0; i < n; i++)
		RC_ASSERT_MATCH(rc_call(c, "{seq:%d, action:'get_value', "
		    "path:['v', %d]}", 300 + i, i), "{seq:%d, value:%d, "
		    "tock:_}", 300 + i, i);
}

/*
 * Item 13: an empty change log, or one cut inside its magic (a crash
 * right after creating it), is an empty log; a complete final record
 * that fails its checksum stops the start, naming the file and offset.
 */
Test(harden, change_log_empty_or_damaged_final_record, .timeout = 60)
{
	static const char magic[] = "DKVC\0\1\r\n";
	char logp[400], err[4096];
	const char *args[] = { "--standalone", "--node", "c1", "--socket",
	    ag.socket, "--shm", ag.shm, "--state-dir", ag.state_dir, NULL };
	struct rc_conn *c;
	struct stat st;
	off_t end;
	FILE *f;
	int fd, rc;

	snprintf(logp, sizeof(logp), "%s/changes.dkv", ag.state_dir);
	cr_assert(mkdir(ag.state_dir, 0750) == 0);
	for (size_t cut = 0; cut < 8; cut += 3) {
		f = fopen(logp, "w");
		cr_assert(f != NULL);
		cr_assert(fwrite(magic, 1, cut, f) == cut);
		fclose(f);
		RC_START(&ag, "--standalone", "--node", "c1", "--state-dir",
		    ag.state_dir);
		c = rc_open(ag.socket);
		cr_assert(c != NULL);
		set_values(c, 0, 3);
		rc_close(c);
		harness_kill9(&ag);
		/* what was acknowledged on the fresh log survives */
		RC_START(&ag, "--standalone", "--node", "c1", "--state-dir",
		    ag.state_dir);
		c = rc_open(ag.socket);
		cr_assert(c != NULL);
		expect_values(c, 3);
		rc_close(c);
		harness_kill9(&ag);
	}
	/* one byte of the last record's payload flipped, length intact */
	cr_assert(stat(logp, &st) == 0 && st.st_size > 16);
	end = logfile_records_end(logp);
	cr_assert(end > 16);
	fd = open(logp, O_RDWR);
	cr_assert(fd >= 0);
	{
		uint8_t b;

		cr_assert(pread(fd, &b, 1, end - 2) == 1);
		b ^= 0x55;
		cr_assert(pwrite(fd, &b, 1, end - 2) == 1);
	}
	close(fd);
	rc = run_agent(err, sizeof(err), args);
	cr_assert(rc == 1, "started over a damaged record: exit %d\n%s", rc,
	    err);
	cr_assert(strstr(err, "changes.dkv") != NULL &&
	    strstr(err, "offset") != NULL, "%s", err);
	cr_assert(stat(logp, &st) == 0 && st.st_size > 16, "the log was cut");
}

/*
 * Item 14: the change log cannot be written (a full disk).  The request
 * whose change could not be logged gets a clear error, nothing unlogged is
 * acknowledged, the agent stops, and a restart has every acknowledged
 * change.
 */
Test(harden, full_disk_answers_then_stops, .timeout = 60)
{
	enum { VLEN = 32768 };
	char small[320], state[340], copy[340], cmd[800], *val;
	struct rc_conn *c;
	struct rc_msg *m;
	int acked = 0, status;
	bool errored = false;

	snprintf(small, sizeof(small), "/tmp/distkv-full.%d", (int)getpid());
	cr_assert(mkdir(small, 0700) == 0 || errno == EEXIST);
	if (mount("tmpfs", small, "tmpfs", 0, "size=512k") != 0) {
		rmdir(small);
		cr_skip_test("cannot mount a small tmpfs (%s): needs root",
		    strerror(errno));
	}
	snprintf(mounted, sizeof(mounted), "%s", small);
	snprintf(state, sizeof(state), "%s/state", small);
	RC_START(&ag, "--standalone", "--node", "d1", "--state-dir", state);
	c = rc_open(ag.socket);
	cr_assert(c != NULL);
	val = malloc(VLEN + 1);
	cr_assert(val != NULL);
	memset(val, 'f', VLEN);
	val[VLEN] = '\0';
	for (int i = 0; i < 64 && !errored; i++) {
		rc_send(c, "{seq:%d, action:'set_value', path:['f', %d], "
		    "value:'%s', nchain:0}", 10 + i, i, val);
		m = rc_recv_seq(c, 10 + i, RC_TIMEOUT);
		cr_assert(m != NULL, "request %d: no reply (EOF) instead of "
		    "an error", i);
		if (rc_has(&m->obj, "error")) {
			cr_assert(rc_str_prefix(&m->obj, "error", "Not done: "
			    "the change log cannot be written"), "%s",
			    rc_show(&m->obj));
			errored = true;
		} else {
			cr_assert(rc_match(&m->obj, NULL, 0, "{seq:%d, "
			    "changed:true, prev:nil, tock:_}", 10 + i), "%s",
			    rc_show(&m->obj));
			acked++;
		}
		rc_msg_free(m);
	}
	cr_assert(errored, "512 KiB filled without an error");
	cr_assert(acked > 0);
	cr_assert(rc_wait_eof(c, RC_TIMEOUT), "the agent did not stop");
	rc_close(c);
	cr_assert(waitpid(ag.pid, &status, 0) == ag.pid);
	ag.pid = 0;
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1,
	    "status %d", status);
	/* move the state to room enough, as an operator would */
	snprintf(copy, sizeof(copy), "%s/state-copy", ag.dir);
	snprintf(cmd, sizeof(cmd), "cp -a '%s' '%s'", state, copy);
	cr_assert(system(cmd) == 0);
	RC_START(&ag, "--standalone", "--node", "d1", "--state-dir", copy);
	c = rc_open(ag.socket);
	cr_assert(c != NULL);
	for (int i = 0; i < acked; i++)
		RC_ASSERT_MATCH(rc_call(c, "{seq:%d, action:'get_value', "
		    "path:['f', %d]}", 500 + i, i), "{seq:%d, value:'%s', "
		    "tock:_}", 500 + i, val);
	rc_close(c);
	free(val);
}

/*
 * Item 19: after the agent replaced its region (growth), distkv_get still
 * reads shared memory, with no round trip: with the agent stopped
 * (SIGSTOP), a read over the socket would time out.
 */
Test(harden, get_reads_shm_after_region_replacement, .timeout = 60)
{
	enum { N = 20000 };
	distkv_path *p;
	distkv *k;
	struct distkv_entry e;
	uint64_t before;
	int rc;

	RC_START(&ag, "--standalone", "--node", "m1");
	cr_assert(distkv_connect(ag.socket, &k) == 0);
	cr_assert(distkv_shm_of(k) != NULL, "no region mapped");
	before = distkv_shm_changes(distkv_shm_of(k));
	/* the first read maps and uses the region as it is now */
	cr_assert(distkv_path_parse("probe", &p) == 0);
	{
		struct distkv_value v = { NULL, 0 };

		cr_assert(distkv_value_from_int(&v, 42) == 0);
		cr_assert(distkv_set(k, p, v.data, v.len, NULL, NULL) == 0);
		distkv_value_clear(&v);
	}
	memset(&e, 0, sizeof(e));
	cr_assert(distkv_get(k, p, 0, &e) == 0);
	distkv_entry_clear(&e);
	/* enough new keys to grow the region several times over */
	{
		struct rc_conn *c = rc_open(ag.socket);
		uint8_t *buf;
		size_t len;
		msgpack_sbuffer sb;

		cr_assert(c != NULL);
		msgpack_sbuffer_init(&sb);
		for (int i = 0; i < N; i++) {
			cr_assert(rc_build(&buf, &len, "{seq:%d, "
			    "action:'set_value', path:['grow', %d], "
			    "value:'%0100d', nchain:0}", i + 1, i, i) == 0);
			msgpack_sbuffer_write(&sb, (const char *)buf, len);
			free(buf);
		}
		cr_assert(rc_send_raw(c, sb.data, sb.size) == 0);
		msgpack_sbuffer_destroy(&sb);
		for (int i = 0; i < N; i++) {
			struct rc_msg *m = rc_recv(c, RC_TIMEOUT);

			cr_assert(m != NULL);
			rc_msg_free(m);
		}
		rc_close(c);
	}
	/* the agent stops answering; the region stays as it is */
	cr_assert(kill(ag.pid, SIGSTOP) == 0);
	distkv_set_timeout(k, 300);
	for (int i = 0; i < 1000; i++) {
		memset(&e, 0, sizeof(e));
		rc = distkv_get(k, p, 0, &e);
		cr_assert(rc == 0, "read %d after the region grew: %s (over "
		    "the socket?)", i, distkv_strerror(rc));
		distkv_entry_clear(&e);
	}
	cr_assert(distkv_shm_changes(distkv_shm_of(k)) >= before + N);
	kill(ag.pid, SIGCONT);
	distkv_path_free(p);
	distkv_close(k);
}

/*
 * Items 17 and 18: a stopped agent cannot make distkv-cli hang (--timeout,
 * DISTKV_TIMEOUT); a reader finds the region without the agent (--shm,
 * DISTKV_SHM); stale data only with --stale, with a warning and exit 5.
 */
Test(harden, cli_timeout_region_and_stale, .timeout = 90)
{
	char out[4096], err[4096];
	long long t0;
	int rc;
	struct rc_conn *c;

	RC_START(&ag, "--standalone", "--node", "t1");
	c = rc_open(ag.socket);
	cr_assert(c != NULL);
	RC_ASSERT_MATCH(rc_call(c, "{seq:1, action:'set_value', path:['cfg'], "
	    "value:'v1', nchain:0}"), "{seq:1, changed:true, prev:nil, "
	    "tock:_}");
	rc_close(c);
	cr_assert(kill(ag.pid, SIGSTOP) == 0);
	/* a stopped agent: the CLI gives up after --timeout */
	{
		const char *args[] = { "--socket", ag.socket, "--timeout", "1",
		    "get", "cfg", NULL };

		t0 = harness_now_ms();
		rc = run_prog("distkv-cli", out, sizeof(out), err, sizeof(err),
		    args);
		cr_assert(rc == 3, "exit %d: %s", rc, err);
		cr_assert(harness_now_ms() - t0 < 5000, "took %lld ms",
		    harness_now_ms() - t0);
		cr_assert(strstr(err, "no answer within 1 s") != NULL, "%s", err);
	}
	/* and after DISTKV_TIMEOUT from the environment */
	{
		const char *args[] = { "--socket", ag.socket, "get", "cfg",
		    NULL };

		setenv("DISTKV_TIMEOUT", "1", 1);
		t0 = harness_now_ms();
		rc = run_prog("distkv-cli", out, sizeof(out), err, sizeof(err),
		    args);
		unsetenv("DISTKV_TIMEOUT");
		cr_assert(rc == 3 && harness_now_ms() - t0 < 5000,
		    "exit %d after %lld ms: %s", rc, harness_now_ms() - t0,
		    err);
	}
	/* the region, named outright, answers while the agent is fresh */
	cr_assert(kill(ag.pid, SIGCONT) == 0);
	{
		const char *args[] = { "--shm", ag.shm, "--raw", "get", "cfg",
		    NULL };

		rc = run_prog("distkv-cli", out, sizeof(out), err, sizeof(err),
		    args);
		cr_assert(rc == 0, "exit %d: %s", rc, err);
		cr_assert(strncmp(out, "v1", 2) == 0, "%s", out);
	}
	/* the agent dies: no stale data without --stale */
	harness_kill9(&ag);
	{
		const char *args[] = { "--socket", ag.socket, "--shm", ag.shm,
		    "get", "cfg", NULL };

		rc = run_prog("distkv-cli", out, sizeof(out), err, sizeof(err),
		    args);
		cr_assert(rc == 3, "exit %d: %s / %s", rc, out, err);
		cr_assert(strstr(err, "not running") != NULL, "%s", err);
	}
	{
		const char *args[] = { "--socket", ag.socket, "--raw", "get",
		    "--stale", "cfg", NULL };

		setenv("DISTKV_SHM", ag.shm, 1);
		rc = run_prog("distkv-cli", out, sizeof(out), err, sizeof(err),
		    args);
		unsetenv("DISTKV_SHM");
		cr_assert(rc == 5, "exit %d: %s / %s", rc, out, err);
		cr_assert(strncmp(out, "v1", 2) == 0, "%s", out);
		cr_assert(strstr(err, "stale") != NULL, "%s", err);
	}
}
