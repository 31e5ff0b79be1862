/*
 * bench_memory - what the agent's memory costs next to the data it holds,
 * and how fast a snapshot of it loads (issue 14, item 4).
 *
 * One run starts a standalone distkv-agent with a shared-memory region in
 * a temporary directory and measures:
 *
 *  - the agent's resident memory (VmRSS, and its anonymous and shared
 *    parts from /proc/PID/status) after loading --keys keys, next to the
 *    raw data: the path and value bytes as msgpack (what a client sends);
 *    the text form of the path is printed too;
 *  - the region file's size, and the memory it holds (st_blocks: the
 *    file is sparse), next to its live data (keys + values) after the
 *    load and again after --churn rounds of overwrites with values of
 *    other sizes and deletes of every other key;
 *  - the time to save a snapshot, and the time a new agent started with
 *    --load on it takes until it accepts clients, minus the time the same
 *    agent takes with no data (the difference is the load).
 *
 * With --connect SOCK it only drives a running agent: --ops pipelined
 * requests of one kind (--drive load|set|get), timed, and nothing else.
 * That is the fixed workload for profiling the agent's write path
 * (valgrind --tool=callgrind on the agent; bench/README.md).
 *
 * Keys are svc/NNNNNNN/config/port (a four-element path); values are
 * --value bytes of text (a msgpack str).  Every value is read back for a
 * sample of keys at the end of each phase; a wrong value fails the run.
 * The agents are the only processes started, stopped by pid; the temp dir
 * is removed at the end.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "benchutil.h"
#include "distkv.h"

extern char **environ;

#define VAL_MAX		1024
#define IO_MS		60000
#define START_MS	300000	/* a 1M-key --load on a busy machine */
#define SAMPLE		1000	/* keys read back after each phase */

struct opts {
	long		 keys;
	long		 churn;
	long		 value;
	long		 pipeline;
	long		 ops;
	long		 cpu_server;
	const char	*agent;
	const char	*connect;
	const char	*drive;
};

struct mem {
	struct opts	 o;
	char		 dir[64];
	char		 sock[128];
	char		 shm[128];
	pid_t		 pid;
	distkv		*c;
	distkv_path	*path;		/* reused: one key at a time */
	uint8_t		*gen;		/* per key: 0 deleted, else value gen */
	long		 issued, done;
	int		 err;
};

/* One pipelined request in flight. */
struct slot {
	struct mem	*m;
	uint8_t		 val[VAL_MAX + 3];
};

static void
usage(FILE *f)
{
	fprintf(f,
"usage: bench_memory [options]\n"
"  Agent memory next to the raw data, region size after churn, snapshot\n"
"  load time (bench/README.md).\n"
"  --keys N         keys loaded (default 1000000)\n"
"  --value N        value bytes (default 64)\n"
"  --churn N        rounds of overwrite + delete churn (default 3)\n"
"  --pipeline N     requests in flight (default 64)\n"
"  --cpu-server N   CPU for the agent (default -1: no pinning)\n"
"  --agent PATH     distkv-agent binary (default: the build dir's)\n"
"  --connect SOCK   only drive a running agent: --ops requests of\n"
"  --drive OP       load (new keys), set (overwrite) or get (default set)\n"
"  --ops N          requests for --connect (default 100000)\n"
"  --help           this text\n");
}

/* Key i's path, in m->path. */
static int
key_path(struct mem *m, long i)
{
	char num[24];
	int rc;

	distkv_path_truncate(m->path, distkv_path_len(m->path) - 1);
	snprintf(num, sizeof(num), "%07ld", i);
	if ((rc = distkv_path_push_str(m->path, num, strlen(num))) != 0 ||
	    (rc = distkv_path_push_str(m->path, "config", 6)) != 0 ||
	    (rc = distkv_path_push_str(m->path, "port", 4)) != 0)
		return (rc);
	return (0);
}

/* The msgpack bytes of key i's path: fixarray, "svc", NNNNNNN, ... */
static size_t
key_wire_len(void)
{
	return (1 + 4 + 8 + 7 + 5);
}

/* Value length for key i at generation g: 64, 32, 128, ... by g. */
static size_t
value_len(const struct mem *m, uint8_t g)
{
	static const int mul[] = { 2, 1, 4, 2 };	/* /2: 1x, .5x, 2x, 1x */

	return ((size_t)m->o.value * (size_t)mul[(g - 1) % 4] / 2);
}

/* Encode key i's value at generation g as a msgpack str; its length. */
static size_t
value_make(const struct mem *m, long i, uint8_t g, uint8_t *out)
{
	size_t len = value_len(m, g), hdr;

	if (len < 32) {
		out[0] = (uint8_t)(0xa0 | len);
		hdr = 1;
	} else if (len < 256) {
		out[0] = 0xd9;
		out[1] = (uint8_t)len;
		hdr = 2;
	} else {
		out[0] = 0xda;
		out[1] = (uint8_t)(len >> 8);
		out[2] = (uint8_t)len;
		hdr = 3;
	}
	for (size_t j = 0; j < len; j++)
		out[hdr + j] = (uint8_t)('a' + (i * 7 + g * 3 + (long)j) % 26);
	return (hdr + len);
}

static void
set_cb(void *arg, int rc, const struct distkv_set_result *r)
{
	struct slot *s = arg;

	(void)r;
	if (rc != 0 && s->m->err == 0)
		s->m->err = rc;
	s->m->done++;
	free(s);
}

static void
get_cb(void *arg, int rc, const struct distkv_entry *e)
{
	struct slot *s = arg;

	(void)e;
	if (rc != 0 && s->m->err == 0)
		s->m->err = rc;
	s->m->done++;
	free(s);
}

/*
 * n pipelined requests: op 'l'/'s' sets key (first + k) to its next
 * generation, 'd' deletes every other key, 'g' gets.  Keys wrap at
 * o.keys.  Returns 0 or -1 (said).
 */
static int
pipe_run(struct mem *m, int op, long first, long n, long step)
{
	static const struct distkv_set_opts so = { .nchain = 0 };
	struct pollfd pfd;
	long issued = 0;
	int rc;

	m->done = 0;
	m->err = 0;
	while (m->done < n) {
		while (issued < n && issued - m->done < m->o.pipeline) {
			long k = (first + issued * step) % m->o.keys;
			struct slot *s = malloc(sizeof(*s));

			if (s == NULL || (rc = key_path(m, k)) != 0) {
				fprintf(stderr, "key %ld: %s\n", k, s == NULL ?
				    "out of memory" : distkv_strerror(rc));
				free(s);
				return (-1);
			}
			s->m = m;
			issued++;
			if (op == 'g')
				rc = distkv_async_get(m->c, m->path, 0,
				    get_cb, s, NULL);
			else if (op == 'd') {
				m->gen[k] = 0;
				rc = distkv_async_delete(m->c, m->path, &so,
				    set_cb, s, NULL);
			} else {
				size_t len;

				m->gen[k] = (uint8_t)(m->gen[k] % 250 + 1);
				len = value_make(m, k, m->gen[k], s->val);
				rc = distkv_async_set(m->c, m->path, s->val,
				    len, &so, set_cb, s, NULL);
			}
			if (rc != 0) {
				fprintf(stderr, "async start: %s\n",
				    distkv_strerror(rc));
				return (-1);
			}
		}
		pfd.fd = distkv_fd(m->c);
		pfd.events = POLLIN | (distkv_want_write(m->c) ? POLLOUT : 0);
		if ((rc = poll(&pfd, 1, IO_MS)) <= 0) {
			if (rc < 0 && errno == EINTR)
				continue;
			fprintf(stderr, "no reply (%ld of %ld done)\n",
			    m->done, n);
			return (-1);
		}
		if ((rc = distkv_process(m->c)) != 0 || m->err != 0) {
			fprintf(stderr, "request failed: %s\n",
			    distkv_strerror(rc != 0 ? rc : m->err));
			return (-1);
		}
	}
	return (0);
}

/* Read back a sample of keys and compare with what was written. */
static int
verify(struct mem *m)
{
	uint8_t want[VAL_MAX + 3];

	for (long j = 0; j < SAMPLE && j < m->o.keys; j++) {
		long k = (j * 7919) % m->o.keys;
		struct distkv_entry e;
		int rc;

		memset(&e, 0, sizeof(e));
		if (key_path(m, k) != 0)
			return (-1);
		rc = distkv_get(m->c, m->path, 0, &e);
		if (m->gen[k] == 0) {
			if (rc != DISTKV_ENOTFOUND) {
				fprintf(stderr, "key %ld: deleted but found\n",
				    k);
				distkv_entry_clear(&e);
				return (-1);
			}
		} else {
			size_t len = value_make(m, k, m->gen[k], want);

			if (rc != 0 || e.value.len != len ||
			    memcmp(e.value.data, want, len) != 0) {
				fprintf(stderr, "key %ld: wrong value\n", k);
				distkv_entry_clear(&e);
				return (-1);
			}
		}
		distkv_entry_clear(&e);
	}
	return (0);
}

/* VmRSS, RssAnon, RssShmem of pid in KiB (0 when absent). */
static void
rss_read(pid_t pid, long *rss, long *anon, long *shmem)
{
	char fn[64], line[256];
	FILE *f;

	*rss = *anon = *shmem = 0;
	snprintf(fn, sizeof(fn), "/proc/%ld/status", (long)pid);
	if ((f = fopen(fn, "r")) == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL) {
		sscanf(line, "VmRSS: %ld", rss);
		sscanf(line, "RssAnon: %ld", anon);
		sscanf(line, "RssShmem: %ld", shmem);
	}
	fclose(f);
}

static long
file_size(const char *path)
{
	struct stat st;

	return (stat(path, &st) == 0 ? (long)st.st_size : -1);
}

/*
 * The region is a sparse file on tmpfs: pages the agent never wrote (an
 * arena's room to grow) take no memory.  What it holds is st_blocks.
 */
static long
file_allocated(const char *path)
{
	struct stat st;

	return (stat(path, &st) == 0 ? (long)st.st_blocks * 512 : -1);
}


/* Start the agent with extra arguments; *ms: until it accepts. */
static int
agent_start(struct mem *m, const char *load, bool shm, double *ms)
{
	char *argv[16];
	int n = 0;
	uint64_t t0;
	posix_spawnattr_t at;

	argv[n++] = (char *)m->o.agent;
	argv[n++] = "--standalone";
	argv[n++] = "--socket";
	argv[n++] = m->sock;
	argv[n++] = "--node";
	argv[n++] = "mem";
	argv[n++] = "--file-dir";
	argv[n++] = m->dir;
	if (shm) {
		argv[n++] = "--shm";
		argv[n++] = m->shm;
	} else
		argv[n++] = "--no-shm";
	if (load != NULL) {
		argv[n++] = "--load";
		argv[n++] = (char *)load;
	}
	argv[n] = NULL;
	unlink(m->sock);
	posix_spawnattr_init(&at);
	t0 = now_ns();
	if (posix_spawn(&m->pid, m->o.agent, NULL, &at, argv, environ) != 0) {
		fprintf(stderr, "cannot start %s\n", m->o.agent);
		m->pid = -1;
		return (-1);
	}
	posix_spawnattr_destroy(&at);
	if (m->o.cpu_server >= 0) {
		cpu_set_t cs;

		CPU_ZERO(&cs);
		CPU_SET((int)m->o.cpu_server, &cs);
		sched_setaffinity(m->pid, sizeof(cs), &cs);
	}
	if (wait_socket(m->sock, &m->pid, "distkv-agent", START_MS) != 0)
		return (-1);
	if (ms != NULL)
		*ms = (double)(now_ns() - t0) / 1e6;
	if (distkv_connect(m->sock, &m->c) != 0) {
		fprintf(stderr, "cannot connect to %s\n", m->sock);
		return (-1);
	}
	distkv_set_timeout(m->c, IO_MS);
	return (0);
}

static void
agent_stop(struct mem *m)
{
	if (m->c != NULL)
		distkv_close(m->c);
	m->c = NULL;
	bench_agent_stop(&m->pid);
}

/* Sum of live key + value bytes. */
static double
live_bytes(const struct mem *m)
{
	double b = 0;

	for (long k = 0; k < m->o.keys; k++)
		if (m->gen[k] != 0) {
			size_t len = value_len(m, m->gen[k]);

			b += (double)(key_wire_len() + len +
			    (len < 32 ? 1 : len < 256 ? 2 : 3));
		}
	return (b);
}

static void
row(const char *what, double v, const char *unit, double base,
    const char *basewhat)
{
	if (base > 0)
		printf("| %-40s | %12.1f %-3s | %6.2fx %-20s |\n", what, v,
		    unit, v / base, basewhat);
	else
		printf("| %-40s | %12.1f %-3s | %-28s |\n", what, v, unit, "");
}

/* The region's file size and the memory it holds, next to live. */
static void
region_rows(const char *when, const char *path, double live)
{
	char label[64];

	snprintf(label, sizeof(label), "region file %s", when);
	row(label, (double)file_size(path) / 1048576, "MiB", live / 1048576,
	    "of live");
	snprintf(label, sizeof(label), "  its memory (allocated) %s", when);
	row(label, (double)file_allocated(path) / 1048576, "MiB",
	    live / 1048576, "of live");
}

static int
drive(struct mem *m)
{
	int op = strcmp(m->o.drive, "load") == 0 ? 'l' :
	    strcmp(m->o.drive, "get") == 0 ? 'g' : 's';
	uint64_t t0;
	double s;
	int rc;

	snprintf(m->sock, sizeof(m->sock), "%s", m->o.connect);
	if (distkv_connect(m->sock, &m->c) != 0) {
		fprintf(stderr, "cannot connect to %s\n", m->sock);
		return (1);
	}
	distkv_set_timeout(m->c, IO_MS);
	m->o.keys = m->o.ops;
	if ((m->gen = calloc((size_t)m->o.keys, 1)) == NULL)
		return (1);
	/* set and get run on existing keys: load them first, untimed */
	if (op != 'l' && pipe_run(m, 'l', 0, m->o.ops, 1) != 0)
		return (1);
	t0 = now_ns();
	if (pipe_run(m, op, 0, m->o.ops, 1) != 0)
		return (1);
	s = (double)(now_ns() - t0) / 1e9;
	printf("%s: %ld requests, %.3f s, %.0f/s\n", m->o.drive, m->o.ops, s,
	    (double)m->o.ops / s);
	rc = verify(m);
	distkv_close(m->c);
	return (rc == 0 ? 0 : 1);
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "keys", required_argument, NULL, 'k' },
		{ "value", required_argument, NULL, 'v' },
		{ "churn", required_argument, NULL, 'c' },
		{ "pipeline", required_argument, NULL, 'p' },
		{ "cpu-server", required_argument, NULL, 'S' },
		{ "agent", required_argument, NULL, 'a' },
		{ "connect", required_argument, NULL, 'C' },
		{ "drive", required_argument, NULL, 'd' },
		{ "ops", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct mem m;
	char agent[PATH_MAX], la[64], snap[192];
	long rss0, anon0, shm0, rss, anon, shmem;
	double t_load, raw, rawtext, live, ms_empty, ms_load, t_save;
	uint64_t t0;
	int ch, rc = 1;

	memset(&m, 0, sizeof(m));
	m.pid = -1;
	m.o.keys = 1000000;
	m.o.value = 64;
	m.o.churn = 3;
	m.o.pipeline = 64;
	m.o.ops = 100000;
	m.o.cpu_server = -1;
	m.o.drive = "set";
	snprintf(agent, sizeof(agent), "%s/distkv-agent", TOP_BUILDDIR);
	m.o.agent = agent;
	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (ch) {
		case 'k':
			if (parse_long(optarg, 1, 9999999, &m.o.keys) != 0)
				goto bad;
			break;
		case 'v':
			if (parse_long(optarg, 2, VAL_MAX / 2, &m.o.value) != 0)
				goto bad;
			break;
		case 'c':
			if (parse_long(optarg, 0, 100, &m.o.churn) != 0)
				goto bad;
			break;
		case 'p':
			if (parse_long(optarg, 1, 4096, &m.o.pipeline) != 0)
				goto bad;
			break;
		case 'S':
			if (parse_long(optarg, -1, 1023, &m.o.cpu_server) != 0)
				goto bad;
			break;
		case 'o':
			if (parse_long(optarg, 1, 9999999, &m.o.ops) != 0)
				goto bad;
			break;
		case 'a':
			m.o.agent = optarg;
			break;
		case 'C':
			m.o.connect = optarg;
			break;
		case 'd':
			if (strcmp(optarg, "load") != 0 &&
			    strcmp(optarg, "set") != 0 &&
			    strcmp(optarg, "get") != 0)
				goto bad;
			m.o.drive = optarg;
			break;
		case 'h':
			usage(stdout);
			return (0);
		default:
			goto bad;
		}
	}
	if (optind != argc)
		goto bad;
	if (distkv_path_new(&m.path) != 0 ||
	    distkv_path_push_str(m.path, "svc", 3) != 0)
		return (1);
	signal(SIGPIPE, SIG_IGN);
	if (m.o.connect != NULL)
		return (drive(&m));

	if ((m.gen = calloc((size_t)m.o.keys, 1)) == NULL)
		return (1);
	snprintf(m.dir, sizeof(m.dir), "%s/bench_memory.XXXXXX",
	    access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
	if (mkdtemp(m.dir) == NULL) {
		fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
		return (1);
	}
	snprintf(m.sock, sizeof(m.sock), "%s/agent.sock", m.dir);
	snprintf(m.shm, sizeof(m.shm), "%s/agent.shm", m.dir);
	snprintf(snap, sizeof(snap), "%s/snap", m.dir);
	loadavg_read(la, sizeof(la));

	/* 1. load: RSS next to the raw data */
	if (agent_start(&m, NULL, true, NULL) != 0)
		goto out;
	rss_read(m.pid, &rss0, &anon0, &shm0);
	fprintf(stderr, "loading %ld keys\n", m.o.keys);
	t0 = now_ns();
	if (pipe_run(&m, 'l', 0, m.o.keys, 1) != 0)
		goto out;
	t_load = (double)(now_ns() - t0) / 1e9;
	if (verify(&m) != 0)
		goto out;
	rss_read(m.pid, &rss, &anon, &shmem);
	live = live_bytes(&m);
	raw = live;
	/* the path as text: svc/NNNNNNN/config/port */
	rawtext = (double)m.o.keys * (3 + 1 + 7 + 1 + 6 + 1 + 4 +
	    (double)m.o.value);

	printf("bench_memory: %ld keys, %ld-byte values, churn %ld rounds; "
	    "load average %s\n\n", m.o.keys, m.o.value, m.o.churn, la);
	printf("| %-40s | %16s | %-28s |\n", "figure", "value", "ratio");
	printf("|%s|%s|%s|\n", "------------------------------------------",
	    "------------------", "------------------------------");
	row("raw data: msgpack paths + values", raw / 1048576, "MiB", 0, "");
	row("raw data: text paths + values", rawtext / 1048576, "MiB", 0, "");
	row("load rate (pipelined sets, new keys)", (double)m.o.keys /
	    t_load / 1000, "k/s", 0, "");
	row("agent RSS, empty", (double)rss0 / 1024, "MiB", 0, "");
	row("agent RSS after load", (double)rss / 1024, "MiB", raw / 1048576,
	    "of raw (msgpack)");
	row("  of which heap (RssAnon)", (double)anon / 1024, "MiB",
	    raw / 1048576, "of raw (msgpack)");
	row("  of which region (RssShmem)", (double)shmem / 1024, "MiB",
	    raw / 1048576, "of raw (msgpack)");
	row("agent RSS after load", (double)rss / 1024, "MiB",
	    rawtext / 1048576, "of raw (text)");
	region_rows("after load", m.shm, live);
	fflush(stdout);

	/* 2. churn: overwrites with other sizes, deletes of every other */
	for (long r = 0; r < m.o.churn; r++) {
		fprintf(stderr, "churn round %ld\n", r + 1);
		if (pipe_run(&m, 's', 0, m.o.keys, 1) != 0 ||
		    pipe_run(&m, 's', 0, m.o.keys, 1) != 0 ||
		    pipe_run(&m, 'd', r % 2, (m.o.keys + 1) / 2, 2) != 0 ||
		    pipe_run(&m, 's', 0, m.o.keys, 1) != 0)
			goto out;
	}
	/* and half of them gone at the end */
	if (m.o.churn > 0 && pipe_run(&m, 'd', 1, m.o.keys / 2, 2) != 0)
		goto out;
	if (verify(&m) != 0)
		goto out;
	rss_read(m.pid, &rss, &anon, &shmem);
	live = live_bytes(&m);
	row("live data after churn", live / 1048576, "MiB", 0, "");
	region_rows("after churn", m.shm, live);
	row("agent RSS after churn", (double)rss / 1024, "MiB",
	    live / 1048576, "of live");
	fflush(stdout);

	/* 3. snapshot: save, then a new agent loads it */
	if (pipe_run(&m, 's', 0, m.o.keys, 1) != 0)
		goto out;
	t0 = now_ns();
	if ((rc = distkv_save(m.c, "snap")) != 0) {
		fprintf(stderr, "save: %s (%s)\n", distkv_strerror(rc),
		    distkv_errmsg(m.c));
		rc = 1;
		goto out;
	}
	rc = 1;
	t_save = (double)(now_ns() - t0) / 1e9;
	agent_stop(&m);
	unlink(m.shm);
	if (agent_start(&m, NULL, true, &ms_empty) != 0)
		goto out;
	agent_stop(&m);
	unlink(m.shm);
	if (agent_start(&m, snap, true, &ms_load) != 0)
		goto out;
	if (verify(&m) != 0)
		goto out;
	rss_read(m.pid, &rss, &anon, &shmem);
	live = live_bytes(&m);
	row("snapshot file", (double)file_size(snap) / 1048576, "MiB",
	    live / 1048576, "of live");
	row("snapshot save", t_save * 1000, "ms", 0, "");
	row("agent start, no data", ms_empty, "ms", 0, "");
	row("agent start with --load snapshot", ms_load, "ms", 0, "");
	row("  the load (difference)", ms_load - ms_empty, "ms", 0, "");
	row("agent RSS after snapshot load", (double)rss / 1024, "MiB",
	    live / 1048576, "of live");
	rc = 0;
out:
	agent_stop(&m);
	dir_remove(m.dir);
	free(m.gen);
	distkv_path_free(m.path);
	return (rc);
bad:
	usage(stderr);
	return (2);
}
