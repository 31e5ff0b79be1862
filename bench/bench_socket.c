/*
 * bench_socket - distkv-agent against redis-server, both over a Unix socket.
 *
 * One run starts a standalone distkv-agent and a redis-server in one
 * temporary directory, both pinned to the same CPU, both with persistence
 * off, and measures against each of them:
 *
 *  - get and set round-trip latency, one request at a time (p50, p99 from
 *    per-operation clock_gettime(CLOCK_MONOTONIC) samples);
 *  - get and set throughput with --pipeline requests in flight;
 *  - the initial load of --keys keys (pipelined set of new keys);
 *  - the same agent's get and set round trips over its TCP port
 *    (--listen-insecure) and its TLS port (--listen, after the
 *    handshake), next to its Unix socket: what a remote client pays.
 *    The certificates are made with the openssl program in the temp dir.
 *
 * The clients are libdistkv (sync calls, and the async calls driven by a
 * poll() loop on distkv_fd()/distkv_process()) and hiredis (redisCommand,
 * and redisAppendCommand/redisGetReply).  Keys are svc/NNNNNN/config/port
 * (a four-element path for distkv, that string for Redis); values are 64
 * bytes of text (a msgpack str for distkv, a plain string for Redis).
 *
 * Both servers stay up for the whole run and each measurement runs on one
 * and then at once on the other (the order alternating between rounds), so
 * a change in background load hits both alike; with --rounds N the table
 * shows the median of the N rounds.
 *
 * A benchmark of a broken get must not look fast: every value read is
 * compared with the one last written to that key (the comparison happens
 * outside the timed call for the unpipelined runs), and a final pass reads
 * back a sample of keys.  Any mismatch fails the run.
 *
 * The servers are the only processes this program starts, and it stops them
 * by pid (they also get SIGTERM if this program dies: PR_SET_PDEATHSIG).
 * Everything it creates lives in one mkdtemp() directory that is removed at
 * the end.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE	/* sched_setaffinity, CPU_SET */
#endif

#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "benchutil.h"
#include "distkv.h"

#define VAL_LEN		64	/* value bytes, both servers */
#define VAL_WIRE	(2 + VAL_LEN)	/* as msgpack str 8: 0xd9, len, bytes */
#define KEY_MAX		40	/* "svc/NNNNNN/config/port" + NUL, with room */
#define MAX_PIPELINE	4096
#define MAX_KEYS	10000000L
#define MAX_ROUNDS	99
#define START_MS	10000	/* deadline for a server to accept connections */
#define STOP_MS		5000	/* SIGTERM grace before SIGKILL */
#define IO_MS		10000	/* longest wait for any reply */
#define VERIFY_SAMPLE	1000	/* keys read back at the end */
#define DIR_MAX		80	/* temp dir; DIR/agent.sock must fit sun_path */
#define NSIDES		2	/* distkv, redis */

enum op {
	OP_GET,
	OP_SET,
};

/* The numbers of one round, in table order. */
enum metric {
	M_GET_P50,		/* microseconds */
	M_GET_P99,
	M_SET_P50,
	M_SET_P99,
	M_GET_PIPE,		/* operations per second */
	M_SET_PIPE,
	/* distkv only: the same round trips over TCP and TLS */
	M_GET_TCP_P50,
	M_GET_TCP_P99,
	M_SET_TCP_P50,
	M_SET_TCP_P99,
	M_GET_TLS_P50,
	M_GET_TLS_P99,
	M_SET_TLS_P50,
	M_SET_TLS_P99,
	M_COUNT,
};

struct opts {
	long		 keys;
	long		 ops;
	long		 warmup;
	long		 rounds;
	int		 pipeline;
	int		 cpu_server;	/* -1: do not pin */
	int		 cpu_client;
	const char	*agent;
	const char	*redis;
};

/* Shared by both sides. */
struct bench {
	struct opts	 o;
	long		 stride;	/* coprime with keys: a full cycle */
	uint64_t	*lat;		/* per-operation latency, ns */
	char		 dir[DIR_MAX];
	char		 loadavg[32];	/* /proc/loadavg at start: other load */
};

/* A server process this program started. */
struct server {
	const char	*name;
	pid_t		 pid;
	char		 sock[DIR_MAX + 16];
	char		 log[DIR_MAX + 16];
};
_Static_assert(sizeof(((struct server *)0)->sock) <=
    sizeof(((struct sockaddr_un *)0)->sun_path), "socket path too long");

struct side;

/* One kind of server and its client library. */
struct backend {
	const char	*name;
	/* Prepare keys, start the server (s->srv), connect, fill s->version. */
	int		(*open)(struct side *s);
	/* Disconnect and free; the caller stops the server. */
	void		(*close)(struct side *s);
	/* One blocking request; *ns is the time of the call alone. */
	int		(*sync_op)(struct side *s, enum op op, long key,
			    uint64_t *ns);
	/* n requests, --pipeline in flight; keys from the walk, or 0..n-1. */
	int		(*pipe_run)(struct side *s, enum op op, long n, int walk);
};

/* One server under test, with what the benchmark knows about its data. */
struct side {
	struct bench		*b;
	int			 idx;		/* 0 distkv, 1 redis */
	const struct backend	*be;
	void			*h;		/* struct dkv or struct rds */
	struct server		 srv;
	uint32_t		*gen;		/* per key: sets issued so far */
	long			 cursor;	/* next key of the walk */
	long			 checked;	/* values read and compared */
	long			 bad;		/* ... that were wrong */
	double			 load;		/* ops/s loading new keys */
	double			(*res)[M_COUNT];	/* per round */
	char			 version[64];
};

/* For the signal handler only: what to stop and remove on SIGINT/SIGTERM. */
static volatile pid_t	 sig_pid[NSIDES] = { -1, -1 };
static char		 sig_files[2 * NSIDES][DIR_MAX + 16];
static char		 sig_dir[DIR_MAX];

static void		 usage(FILE *f);
static void		 value_make(long key, uint32_t gen, uint8_t *out);
static int		 value_check(struct side *s, long key, const void *got,
			    size_t len);
static long		 walk_next(struct side *s);
static int		 server_start(struct side *s, char *const argv[]);
static int		 server_stop(struct side *s);
static void		 on_signal(int sig);
static int		 measure(struct side *s, enum metric m, long round);
static void		 dkv_use(struct side *s, int port);
static int		 verify(struct side *s);
static void		 print_table(const struct bench *b,
			    const struct side *d, const struct side *r);

/* ---- options, time, keys and values ---- */

static void
usage(FILE *f)
{
	fprintf(f,
"usage: bench_socket [options]\n"
"  Compare distkv-agent with redis-server over a Unix socket: get/set\n"
"  latency one request at a time (p50, p99) and pipelined throughput.\n"
"  --keys N         keys loaded before measuring (default 100000)\n"
"  --ops N          operations per measurement (default 100000)\n"
"  --warmup N       untimed operations before each measurement\n"
"                   (default ops/10)\n"
"  --pipeline N     requests in flight when pipelined (default 64)\n"
"  --rounds N       repeat every measurement N times, report the median\n"
"                   (default 1)\n"
"  --cpu-server N   CPU for both servers (default 0; -1: no pinning)\n"
"  --cpu-client M   CPU for this client (default 1; -1: no pinning)\n"
"  --agent PATH     distkv-agent binary (default: the build dir's)\n"
"  --redis PATH     redis-server binary (default: redis-server in $PATH)\n"
"  --help           this text\n"
"Progress goes to stderr, the table to stdout.\n");
}

/*
 * The 1, 5 and 15 minute load averages, printed with the results: the
 * numbers mean little if something else was running.
 */
/* Pin the calling process (or a child between fork and exec) to cpu. */
/*
 * The VAL_LEN bytes written to key by its gen-th set.  Key and generation
 * are spelled out in the value, so a get that returns another key's value,
 * or an older one, fails the comparison.
 */
static void
value_make(long key, uint32_t gen, uint8_t *out)
{
	int	 n, i;

	n = snprintf((char *)out, VAL_LEN, "k%06ld:g%010u:", key, gen);
	for (i = n; i < VAL_LEN; i++)
		out[i] = (uint8_t)('a' + (unsigned long)(key + gen + i) % 26);
}

/* Compare got with the value last written to key; count the check. */
static int
value_check(struct side *s, long key, const void *got, size_t len)
{
	uint8_t	want[VAL_LEN];

	value_make(key, s->gen[key], want);
	s->checked++;
	if (len == VAL_LEN && memcmp(got, want, VAL_LEN) == 0)
		return (0);
	if (s->bad++ < 5)
		fprintf(stderr, "%s: key %ld: read %zu bytes \"%.*s\", "
		    "want \"%.*s\"\n", s->be->name, key, len,
		    (int)(len < 80 ? len : 80), (const char *)got, VAL_LEN,
		    (const char *)want);
	return (-1);
}

/*
 * The next key of the walk: key += stride (mod keys).  The stride is
 * coprime with keys, so any keys consecutive operations touch distinct keys
 * (no two requests in flight share a key) and the order is spread over the
 * whole key space rather than sequential.  Each side walks the same keys.
 */
static long
walk_next(struct side *s)
{
	long	k;

	k = s->cursor;
	s->cursor = (s->cursor + s->b->stride) % s->b->o.keys;
	return (k);
}

/* Nearest-rank percentile p (0..1] of n samples in ns, in µs; sorts v. */
/* Median of n values (the mean of the middle two for even n); sorts v. */
static long
gcd(long a, long b)
{
	while (b != 0) {
		long t = a % b;
		a = b;
		b = t;
	}
	return (a);
}

/* ---- server processes ---- */

/*
 * Fork and exec argv with stdout/stderr to s->srv.log, pinned to the server
 * CPU, then wait until s->srv.sock accepts a connection.
 */
static int
server_start(struct side *s, char *const argv[])
{
	struct server	*srv = &s->srv;
	pid_t		 pid;
	int		 fd, rc, cpu = s->b->o.cpu_server;

	fd = open(srv->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		fprintf(stderr, "bench: %s: %s\n", srv->log, strerror(errno));
		return (-1);
	}
	fprintf(stderr, "%s: starting %s\n", s->be->name, argv[0]);
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "bench: fork: %s\n", strerror(errno));
		close(fd);
		return (-1);
	}
	if (pid == 0) {
		/* Do not outlive the benchmark, even after a crash. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		signal(SIGPIPE, SIG_DFL);	/* SIG_IGN would survive exec */
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		if ((rc = pin_cpu(cpu)) != 0) {
			fprintf(stderr, "bench: cpu %d: %s\n", cpu,
			    strerror(-rc));
			_exit(126);
		}
		execvp(argv[0], argv);
		fprintf(stderr, "bench: exec %s: %s\n", argv[0],
		    strerror(errno));
		_exit(127);
	}
	close(fd);
	srv->pid = pid;
	sig_pid[s->idx] = pid;
	if (wait_socket(srv->sock, &srv->pid, srv->name, START_MS) != 0) {
		server_stop(s);		/* the caller shows the log */
		return (-1);
	}
	return (0);
}


/*
 * SIGTERM the server by its pid, wait STOP_MS, then SIGKILL.  Returns 0 if
 * it exited after SIGTERM (status 0 or killed by SIGTERM), -1 otherwise: a
 * crash during the run, or a server that had to be killed, is a result
 * worth reporting.
 */
static int
server_stop(struct side *s)
{
	struct server	*srv = &s->srv;
	uint64_t	 deadline;
	int		 status = 0;
	pid_t		 r;

	if (srv->pid <= 0)
		return (0);
	kill(srv->pid, SIGTERM);
	deadline = now_ns() + (uint64_t)STOP_MS * 1000000u;
	while ((r = waitpid(srv->pid, &status, WNOHANG)) == 0 &&
	    now_ns() < deadline)
		usleep(5000);
	if (r == 0) {
		fprintf(stderr, "bench: %s (pid %d) ignored SIGTERM for %d ms, "
		    "killing it\n", srv->name, (int)srv->pid, STOP_MS);
		kill(srv->pid, SIGKILL);
		waitpid(srv->pid, &status, 0);
	}
	srv->pid = -1;
	sig_pid[s->idx] = -1;
	if (r == 0)
		return (-1);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return (0);
	if (WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM)
		return (0);
	if (WIFEXITED(status))
		fprintf(stderr, "bench: %s exited with status %d\n", srv->name,
		    WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		fprintf(stderr, "bench: %s died of signal %d\n", srv->name,
		    WTERMSIG(status));
	return (-1);
}

/* Remove the flat temp dir: whatever the servers left there, then it. */
/* SIGINT/SIGTERM: kill our servers, remove the known files, leave. */
static void
on_signal(int sig)
{
	size_t	i;

	for (i = 0; i < NSIDES; i++)
		if (sig_pid[i] > 0) {
			kill(sig_pid[i], SIGKILL);
			waitpid(sig_pid[i], NULL, 0);
		}
	for (i = 0; i < sizeof(sig_files) / sizeof(sig_files[0]); i++)
		if (sig_files[i][0] != '\0')
			unlink(sig_files[i]);
	if (sig_dir[0] != '\0')
		rmdir(sig_dir);
	_exit(128 + sig);
}

/* ---- measurements, the same for both sides ---- */

/* n blocking requests along the walk; lat (if not NULL) gets each time. */
static int
phase_sync(struct side *s, enum op op, long n, uint64_t *lat)
{
	uint64_t	ns;
	long		i;
	int		rc;

	for (i = 0; i < n; i++) {
		if ((rc = s->be->sync_op(s, op, walk_next(s), &ns)) != 0)
			return (rc);
		if (lat != NULL)
			lat[i] = ns;
	}
	return (0);
}

/* Throughput of n pipelined operations, in ops/s; < 0 on failure. */
static double
phase_pipe(struct side *s, enum op op, long n, int walk)
{
	uint64_t	t0, t1;

	t0 = now_ns();
	if (s->be->pipe_run(s, op, n, walk) != 0)
		return (-1);
	t1 = now_ns();
	return ((double)n * 1e9 / (double)(t1 > t0 ? t1 - t0 : 1));
}

/* Warm up, then p50 and p99 of op one at a time, in microseconds. */
static int
measure_sync(struct side *s, enum op op, double *p50, double *p99)
{
	const struct opts	*o = &s->b->o;

	if (phase_sync(s, op, o->warmup, NULL) != 0 ||
	    phase_sync(s, op, o->ops, s->b->lat) != 0)
		return (-1);
	*p50 = percentile_us(s->b->lat, o->ops, 0.50);
	*p99 = percentile_us(s->b->lat, o->ops, 0.99);
	return (0);
}

/*
 * Warm up, then measure: unpipelined p50/p99 (M_GET_P50, M_SET_P50 also
 * give the p99) or pipelined throughput, into s->res[round].
 */
static int
measure(struct side *s, enum metric m, long round)
{
	const struct opts	*o = &s->b->o;
	double			*res = s->res[round], t;
	enum op			 op;

	if (m >= M_GET_TCP_P50) {
		int		 rc;

		if (s->idx != 0)
			return (0);	/* a distkv-only row */
		/* the same calls, on the agent's other ports */
		dkv_use(s, m >= M_GET_TLS_P50 ? 2 : 1);
		op = m == M_GET_TCP_P50 || m == M_GET_TLS_P50 ? OP_GET : OP_SET;
		fprintf(stderr, "%s: %s over %s, one at a time\n", s->be->name,
		    op == OP_GET ? "get" : "set", m >= M_GET_TLS_P50 ? "TLS" :
		    "TCP");
		rc = measure_sync(s, op, &res[m], &res[m + 1]);
		dkv_use(s, 0);
		return (rc);
	}
	op = m == M_SET_P50 || m == M_SET_PIPE ? OP_SET : OP_GET;
	if (m == M_GET_P50 || m == M_SET_P50) {
		fprintf(stderr, "%s: %s, one at a time\n", s->be->name,
		    op == OP_GET ? "get" : "set");
		return (measure_sync(s, op, &res[m], &res[m + 1]));
	}
	fprintf(stderr, "%s: %s, %d in flight\n", s->be->name,
	    op == OP_GET ? "get" : "set", o->pipeline);
	if (phase_pipe(s, op, o->warmup, 1) < 0 ||
	    (t = phase_pipe(s, op, o->ops, 1)) < 0)
		return (-1);
	res[m] = t;
	return (0);
}

/*
 * Read back VERIFY_SAMPLE keys spread over the key space (and the last
 * one); sync_op compares each with the last value written.
 */
static int
verify(struct side *s)
{
	long		keys = s->b->o.keys, i, step;
	uint64_t	ns;

	step = keys > VERIFY_SAMPLE ? keys / VERIFY_SAMPLE : 1;
	for (i = 0; i < keys; i += step)
		if (s->be->sync_op(s, OP_GET, i, &ns) != 0)
			return (-1);
	if (s->be->sync_op(s, OP_GET, keys - 1, &ns) != 0)
		return (-1);
	if (s->bad != 0) {
		fprintf(stderr, "%s: %ld of %ld values read back were wrong\n",
		    s->be->name, s->bad, s->checked);
		return (-1);
	}
	return (0);
}

/* ---- distkv (libdistkv) ---- */

struct dkv {
	distkv		 *c;		/* the one measured now */
	distkv		 *unix_c, *tcp, *tls;
	distkv_path	**paths;	/* one per key, built before timing */
	long		  npaths;
};

/* One pipelined request in flight. */
struct dslot {
	struct dpipe	*p;
	long		 key;
	uint8_t		 val[VAL_WIRE];	/* kept until the reply, to be safe */
};

struct dpipe {
	struct side	 *s;
	struct dslot	 *slots;
	struct dslot	**free;
	int		  nfree;
	long		  done;
	int		  rc;
};

/* Measure over the agent's port: 0 Unix socket, 1 TCP, 2 TLS. */
static void
dkv_use(struct side *s, int port)
{
	struct dkv	*d = s->h;

	d->c = port == 2 ? d->tls : port == 1 ? d->tcp : d->unix_c;
}

/* Set requests ask for no chain in the reply, like get (nchain 0). */
static const struct distkv_set_opts dkv_set_opts = {
	.pre = DISTKV_PRE_NONE,
	.nchain = 0,
};

/* Encode the key's gen-th value as a msgpack str 8. */
static void
dkv_value(long key, uint32_t gen, uint8_t *wire)
{
	wire[0] = 0xd9;
	wire[1] = VAL_LEN;
	value_make(key, gen, wire + 2);
}

static int
dkv_check(struct side *s, long key, const struct distkv_entry *e)
{
	const char	*str;
	size_t		 len;

	if (distkv_value_get_str(e->value.data, e->value.len, &str, &len) != 0)
		return (value_check(s, key, "(not a string)", 14));
	return (value_check(s, key, str, len));
}

static int
dkv_sync_op(struct side *s, enum op op, long key, uint64_t *ns)
{
	struct dkv		*d = s->h;
	struct distkv_entry	 e;
	uint8_t			 wire[VAL_WIRE];
	uint64_t		 t0;
	int			 rc;

	if (op == OP_GET) {
		memset(&e, 0, sizeof(e));
		t0 = now_ns();
		rc = distkv_get(d->c, d->paths[key], 0, &e);
		*ns = now_ns() - t0;
		if (rc == 0)
			rc = dkv_check(s, key, &e);
		else
			fprintf(stderr, "distkv: get key %ld: %s (%s)\n", key,
			    distkv_strerror(rc), distkv_errmsg(d->c));
		distkv_entry_clear(&e);
		return (rc);
	}
	dkv_value(key, ++s->gen[key], wire);
	t0 = now_ns();
	rc = distkv_set(d->c, d->paths[key], wire, sizeof(wire), &dkv_set_opts,
	    NULL);
	*ns = now_ns() - t0;
	if (rc != 0)
		fprintf(stderr, "distkv: set key %ld: %s (%s)\n", key,
		    distkv_strerror(rc), distkv_errmsg(d->c));
	return (rc);
}

static void
dslot_done(struct dslot *sl, int rc, const char *what)
{
	struct dpipe	*p = sl->p;

	if (rc != 0 && p->rc == 0) {
		fprintf(stderr, "distkv: async %s key %ld: %s\n", what,
		    sl->key, distkv_strerror(rc));
		p->rc = rc;
	}
	p->free[p->nfree++] = sl;
	p->done++;
}

static void
dkv_get_cb(void *arg, int rc, const struct distkv_entry *e)
{
	struct dslot	*sl = arg;

	if (rc == 0 && dkv_check(sl->p->s, sl->key, e) != 0)
		rc = DISTKV_EPROTO;
	dslot_done(sl, rc, "get");
}

static void
dkv_set_cb(void *arg, int rc, const struct distkv_set_result *r)
{
	(void)r;
	dslot_done(arg, rc, "set");
}

/*
 * n async requests with up to --pipeline in flight: top up, poll the
 * socket (POLLOUT too while the library has queued bytes), distkv_process()
 * to run the callbacks, repeat.
 */
static int
dkv_pipe_run(struct side *s, enum op op, long n, int walk)
{
	struct dkv	*d = s->h;
	struct dpipe	 p;
	struct dslot	*sl;
	struct pollfd	 pfd;
	long		 issued = 0;
	int		 i, depth = s->b->o.pipeline, rc = -1;

	memset(&p, 0, sizeof(p));
	p.s = s;
	p.slots = calloc((size_t)depth, sizeof(*p.slots));
	p.free = calloc((size_t)depth, sizeof(*p.free));
	if (p.slots == NULL || p.free == NULL)
		goto out;
	for (i = 0; i < depth; i++) {
		p.slots[i].p = &p;
		p.free[p.nfree++] = &p.slots[i];
	}
	while (p.done < n) {
		while (p.nfree > 0 && issued < n) {
			sl = p.free[--p.nfree];
			sl->key = walk ? walk_next(s) : issued;
			issued++;
			if (op == OP_GET)
				rc = distkv_async_get(d->c, d->paths[sl->key],
				    0, dkv_get_cb, sl, NULL);
			else {
				dkv_value(sl->key, ++s->gen[sl->key], sl->val);
				rc = distkv_async_set(d->c, d->paths[sl->key],
				    sl->val, sizeof(sl->val), &dkv_set_opts,
				    dkv_set_cb, sl, NULL);
			}
			if (rc != 0) {
				fprintf(stderr, "distkv: async start: %s\n",
				    distkv_strerror(rc));
				goto out;
			}
		}
		pfd.fd = distkv_fd(d->c);
		pfd.events = POLLIN | (distkv_want_write(d->c) ? POLLOUT : 0);
		pfd.revents = 0;
		if ((rc = poll(&pfd, 1, IO_MS)) < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "distkv: poll: %s\n", strerror(errno));
			goto out;
		}
		if (rc == 0) {
			fprintf(stderr, "distkv: no reply for %d ms (%ld of "
			    "%ld done)\n", IO_MS, p.done, n);
			rc = -1;
			goto out;
		}
		if ((rc = distkv_process(d->c)) != 0) {
			fprintf(stderr, "distkv: process: %s\n",
			    distkv_strerror(rc));
			goto out;
		}
		if ((rc = p.rc) != 0)
			goto out;
	}
	rc = 0;
out:
	free(p.slots);
	free(p.free);
	return (rc != 0 ? -1 : 0);
}

/* A TCP port on 127.0.0.1 the kernel says is free now, or -1. */
static int
free_port(void)
{
	struct sockaddr_in	sin;
	socklen_t		len = sizeof(sin);
	int			fd, port = -1;

	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
		return (-1);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sin, &len) == 0)
		port = ntohs(sin.sin_port);
	close(fd);
	return (port);
}

/* A CA and a server certificate for 127.0.0.1 in dir (openssl CLI). */
static int
make_certs(const char *dir)
{
	char	cmd[1024];

	snprintf(cmd, sizeof(cmd), "cd '%s' && exec >/dev/null 2>&1 && "
	    "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
	    "-nodes -keyout ca.key -out ca.pem -days 1 -subj /CN=bench-ca && "
	    "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
	    "-keyout srv.key -out srv.csr -subj /CN=127.0.0.1 && "
	    "printf 'subjectAltName=IP:127.0.0.1\\n' > srv.ext && "
	    "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key "
	    "-CAcreateserial -out srv.pem -days 1 -extfile srv.ext", dir);
	if (system(cmd) != 0) {
		fprintf(stderr, "bench: cannot make certificates with "
		    "openssl (is it installed?)\n");
		return (-1);
	}
	return (0);
}

/* Build the key paths, start the agent, connect. */
static int
dkv_open(struct side *s)
{
	struct dkv	*d;
	char		 num[24];
	/*
	 * --no-shm: with a shared-memory region distkv_get() would read it
	 * instead of the socket (and the region would live outside our
	 * temp dir).  Shared-memory reads are another benchmark's subject.
	 */
	char		 tls[32], tcp[32], u[48], crt[DIR_MAX + 16],
			 key[DIR_MAX + 16], ca[DIR_MAX + 16];
	char		*argv[] = { (char *)s->b->o.agent, "--standalone",
			    "--socket", s->srv.sock, "--node", "bench",
			    "--no-shm", "--listen", tls, "--listen-insecure", tcp,
			    "--listen-allow-anonymous", "--tls-cert", crt,
			    "--tls-key", key, NULL };
	struct distkv_tls_opts	 to = { .ca_file = ca };
	int		 tls_port, tcp_port;
	long		 i;
	int		 rc;

	if ((d = calloc(1, sizeof(*d))) == NULL)
		return (-1);
	s->h = d;
	if ((d->paths = calloc((size_t)s->b->o.keys, sizeof(*d->paths))) ==
	    NULL)
		return (-1);
	for (i = 0; i < s->b->o.keys; i++) {
		snprintf(num, sizeof(num), "%06ld", i);
		if ((rc = distkv_path_new(&d->paths[i])) != 0)
			goto fail;
		d->npaths = i + 1;
		if ((rc = distkv_path_push_str(d->paths[i], "svc", 3)) != 0 ||
		    (rc = distkv_path_push_str(d->paths[i], num,
		    strlen(num))) != 0 ||
		    (rc = distkv_path_push_str(d->paths[i], "config", 6)) != 0 ||
		    (rc = distkv_path_push_str(d->paths[i], "port", 4)) != 0)
			goto fail;
	}
	if (make_certs(s->b->dir) != 0 || (tls_port = free_port()) < 0 ||
	    (tcp_port = free_port()) < 0)
		return (-1);
	snprintf(tls, sizeof(tls), "127.0.0.1:%d", tls_port);
	snprintf(tcp, sizeof(tcp), "127.0.0.1:%d", tcp_port);
	snprintf(crt, sizeof(crt), "%s/srv.pem", s->b->dir);
	snprintf(key, sizeof(key), "%s/srv.key", s->b->dir);
	snprintf(ca, sizeof(ca), "%s/ca.pem", s->b->dir);
	if (server_start(s, argv) != 0)
		return (-1);
	if ((rc = distkv_connect(s->srv.sock, &d->unix_c)) != 0) {
		fprintf(stderr, "distkv: connect %s: %s\n", s->srv.sock,
		    distkv_strerror(rc));
		return (-1);
	}
	d->c = d->unix_c;
	snprintf(u, sizeof(u), "tcp://%s", tcp);
	if ((rc = distkv_connect_url(u, NULL, &d->tcp)) != 0) {
		fprintf(stderr, "distkv: connect %s: %s\n", u,
		    distkv_connect_errmsg());
		return (-1);
	}
	snprintf(u, sizeof(u), "tls://%s", tls);
	if ((rc = distkv_connect_url(u, &to, &d->tls)) != 0) {
		fprintf(stderr, "distkv: connect %s: %s\n", u,
		    distkv_connect_errmsg());
		return (-1);
	}
	distkv_set_timeout(d->tcp, IO_MS);
	distkv_set_timeout(d->tls, IO_MS);
	if (distkv_shm_of(d->c) != NULL) {
		fprintf(stderr, "distkv: the agent published a shared-memory "
		    "region; gets would not use the socket\n");
		return (-1);
	}
	distkv_set_timeout(d->c, IO_MS);
	snprintf(s->version, sizeof(s->version), "distkv-agent, node %s",
	    distkv_node(d->c));
	return (0);
fail:
	fprintf(stderr, "distkv: path: %s\n", distkv_strerror(rc));
	return (-1);
}

static void
dkv_close(struct side *s)
{
	struct dkv	*d = s->h;
	long		 i;

	if (d == NULL)
		return;
	distkv_close(d->unix_c);
	distkv_close(d->tcp);
	distkv_close(d->tls);
	for (i = 0; i < d->npaths; i++)
		distkv_path_free(d->paths[i]);
	free(d->paths);
	free(d);
	s->h = NULL;
}

static const struct backend distkv_backend = {
	.name = "distkv",
	.open = dkv_open,
	.close = dkv_close,
	.sync_op = dkv_sync_op,
	.pipe_run = dkv_pipe_run,
};

/* ---- Redis (hiredis) ---- */

struct rds {
	redisContext	 *c;
	char		(*keys)[KEY_MAX];	/* built before timing */
};

/* Check a reply to GET or SET for key, and free it. */
static int
rds_reply(struct side *s, enum op op, long key, redisReply *rep)
{
	int	rc = -1;

	if (rep == NULL)
		return (-1);
	if (op == OP_GET && rep->type == REDIS_REPLY_STRING)
		rc = value_check(s, key, rep->str, (size_t)rep->len);
	else if (op == OP_SET && rep->type == REDIS_REPLY_STATUS &&
	    strcmp(rep->str, "OK") == 0)
		rc = 0;
	else
		fprintf(stderr, "redis: %s key %ld: reply type %d \"%s\"\n",
		    op == OP_GET ? "GET" : "SET", key, rep->type,
		    rep->str != NULL ? rep->str : "");
	freeReplyObject(rep);
	return (rc);
}

static int
rds_sync_op(struct side *s, enum op op, long key, uint64_t *ns)
{
	struct rds	*d = s->h;
	redisReply	*rep;
	uint8_t		 val[VAL_LEN];
	uint64_t	 t0;

	if (op == OP_GET) {
		t0 = now_ns();
		rep = redisCommand(d->c, "GET %s", d->keys[key]);
		*ns = now_ns() - t0;
	} else {
		value_make(key, ++s->gen[key], val);
		t0 = now_ns();
		rep = redisCommand(d->c, "SET %s %b", d->keys[key], val,
		    (size_t)VAL_LEN);
		*ns = now_ns() - t0;
	}
	if (rep == NULL)
		fprintf(stderr, "redis: %s\n", d->c->errstr);
	return (rds_reply(s, op, key, rep));
}

/*
 * n commands with up to --pipeline in flight.  Replies come in order, so a
 * ring of the keys sent is enough to match them.  redisGetReply() flushes
 * the commands appended so far when it has to wait for a reply.
 */
static int
rds_pipe_run(struct side *s, enum op op, long n, int walk)
{
	struct rds	*d = s->h;
	uint8_t		 val[VAL_LEN];
	long		*ring, issued = 0, done = 0, key;
	void		*rep;
	int		 depth = s->b->o.pipeline, rc = -1;

	if ((ring = calloc((size_t)depth, sizeof(*ring))) == NULL)
		return (-1);
	while (done < n) {
		while (issued - done < depth && issued < n) {
			key = walk ? walk_next(s) : issued;
			ring[issued % depth] = key;
			issued++;
			if (op == OP_GET)
				rc = redisAppendCommand(d->c, "GET %s",
				    d->keys[key]);
			else {
				value_make(key, ++s->gen[key], val);
				rc = redisAppendCommand(d->c, "SET %s %b",
				    d->keys[key], val, (size_t)VAL_LEN);
			}
			if (rc != REDIS_OK) {
				fprintf(stderr, "redis: append: %s\n",
				    d->c->errstr);
				rc = -1;
				goto out;
			}
		}
		if (redisGetReply(d->c, &rep) != REDIS_OK) {
			fprintf(stderr, "redis: %s\n", d->c->errstr);
			rc = -1;
			goto out;
		}
		if ((rc = rds_reply(s, op, ring[done % depth], rep)) != 0)
			goto out;
		done++;
	}
	rc = 0;
out:
	free(ring);
	return (rc);
}

/* "redis-server 7.0.15" from INFO server. */
static void
rds_version(struct side *s)
{
	struct rds	*d = s->h;
	redisReply	*rep;
	const char	*p;
	size_t		 n;

	snprintf(s->version, sizeof(s->version), "redis-server");
	rep = redisCommand(d->c, "INFO server");
	if (rep != NULL && rep->type == REDIS_REPLY_STRING &&
	    (p = strstr(rep->str, "redis_version:")) != NULL) {
		p += strlen("redis_version:");
		n = strcspn(p, "\r\n");
		snprintf(s->version, sizeof(s->version), "redis-server %.*s",
		    (int)(n < 32 ? n : 32), p);
	}
	if (rep != NULL)
		freeReplyObject(rep);
}

/* Build the keys, start redis-server, connect and PING. */
static int
rds_open(struct side *s)
{
	struct rds	*d;
	struct timeval	 tv = { IO_MS / 1000, 0 };
	char		*argv[] = { (char *)s->b->o.redis, "--port", "0",
			    "--unixsocket", s->srv.sock, "--save", "",
			    "--appendonly", "no", "--daemonize", "no", NULL };
	redisReply	*rep;
	long		 i;
	int		 ok;

	if ((d = calloc(1, sizeof(*d))) == NULL)
		return (-1);
	s->h = d;
	if ((d->keys = calloc((size_t)s->b->o.keys, sizeof(*d->keys))) == NULL)
		return (-1);
	for (i = 0; i < s->b->o.keys; i++)
		snprintf(d->keys[i], KEY_MAX, "svc/%06ld/config/port", i);
	if (server_start(s, argv) != 0)
		return (-1);
	d->c = redisConnectUnixWithTimeout(s->srv.sock, tv);
	if (d->c == NULL || d->c->err != 0) {
		fprintf(stderr, "redis: connect %s: %s\n", s->srv.sock,
		    d->c != NULL ? d->c->errstr : "out of memory");
		return (-1);
	}
	redisSetTimeout(d->c, tv);
	rep = redisCommand(d->c, "PING");
	ok = rep != NULL && rep->type == REDIS_REPLY_STATUS &&
	    strcmp(rep->str, "PONG") == 0;
	if (rep != NULL)
		freeReplyObject(rep);
	if (!ok) {
		fprintf(stderr, "redis: PING failed\n");
		return (-1);
	}
	rds_version(s);
	return (0);
}

static void
rds_close(struct side *s)
{
	struct rds	*d = s->h;

	if (d == NULL)
		return;
	if (d->c != NULL)
		redisFree(d->c);
	free(d->keys);
	free(d);
	s->h = NULL;
}

static const struct backend redis_backend = {
	.name = "redis",
	.open = rds_open,
	.close = rds_close,
	.sync_op = rds_sync_op,
	.pipe_run = rds_pipe_run,
};

/* ---- output ---- */

static void
row(const char *what, double d, double r, const char *fmt)
{
	char	a[32], c[32];

	snprintf(a, sizeof(a), fmt, d);
	snprintf(c, sizeof(c), fmt, r);
	printf("%-26s %12s %12s %13.2f\n", what, a, c, r > 0 ? d / r : 0.0);
}

/* The median over the rounds of metric m of side s. */
static double
side_median(const struct side *s, enum metric m, long rounds)
{
	double	v[MAX_ROUNDS];
	long	i;

	for (i = 0; i < rounds; i++)
		v[i] = s->res[i][m];
	return (median(v, rounds));
}

/* The agent's TCP and TLS ports next to its Unix socket. */
static void
print_transports(const struct opts *o, const struct side *d)
{
	static const struct {
		enum metric	 unix_m, tcp, tls;
		const char	*what;
	} rows[] = {
		{ M_GET_P50, M_GET_TCP_P50, M_GET_TLS_P50, "get latency p50 (us)" },
		{ M_GET_P99, M_GET_TCP_P99, M_GET_TLS_P99, "get latency p99 (us)" },
		{ M_SET_P50, M_SET_TCP_P50, M_SET_TLS_P50, "set latency p50 (us)" },
		{ M_SET_P99, M_SET_TCP_P99, M_SET_TLS_P99, "set latency p99 (us)" },
	};
	size_t	i;

	printf("\ndistkv-agent over its other ports (loopback; TLS 1.3 after "
	    "the handshake), one at a time\n\n");
	printf("%-26s %9s %9s %9s %9s %9s\n", "", "unix", "tcp", "tls",
	    "tcp/unix", "tls/unix");
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		double	u = side_median(d, rows[i].unix_m, o->rounds);
		double	t = side_median(d, rows[i].tcp, o->rounds);
		double	l = side_median(d, rows[i].tls, o->rounds);

		printf("%-26s %9.1f %9.1f %9.1f %9.2f %9.2f\n", rows[i].what,
		    u, t, l, u > 0 ? t / u : 0.0, u > 0 ? l / u : 0.0);
	}
}

static void
print_table(const struct bench *b, const struct side *d,
    const struct side *r)
{
	static const struct {
		enum metric	 m;
		const char	*what;
		const char	*fmt;
	} rows[] = {
		{ M_GET_P50, "get latency p50 (us)", "%.1f" },
		{ M_GET_P99, "get latency p99 (us)", "%.1f" },
		{ M_SET_P50, "set latency p50 (us)", "%.1f" },
		{ M_SET_P99, "set latency p99 (us)", "%.1f" },
		{ M_GET_PIPE, "get pipelined (ops/s)", "%.0f" },
		{ M_SET_PIPE, "set pipelined (ops/s)", "%.0f" },
	};
	const struct opts	*o = &b->o;
	char			 cs[16], cc[16];
	size_t			 i;

	snprintf(cs, sizeof(cs), "CPU %d", o->cpu_server);
	snprintf(cc, sizeof(cc), "CPU %d", o->cpu_client);
	printf("\n%s vs %s, Unix socket, persistence off\n", d->version,
	    r->version);
	printf("keys %ld (svc/NNNNNN/config/port), values %d B, %ld ops per "
	    "measurement after %ld warm-up, pipeline %d\n", o->keys, VAL_LEN,
	    o->ops, o->warmup, o->pipeline);
	printf("servers on %s, client on %s; %ld round%s%s; load average at "
	    "start %s\n\n", o->cpu_server < 0 ? "any CPU" : cs,
	    o->cpu_client < 0 ? "any CPU" : cc, o->rounds,
	    o->rounds > 1 ? "s" : "", o->rounds > 1 ? " (median)" : "",
	    b->loadavg);
	printf("%-26s %12s %12s %13s\n", "", "distkv", "redis",
	    "distkv/redis");
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		row(rows[i].what, side_median(d, rows[i].m, o->rounds),
		    side_median(r, rows[i].m, o->rounds), rows[i].fmt);
	row("load new keys (ops/s)", d->load, r->load, "%.0f");
	printf("\nratio: latency > 1 or throughput < 1 means distkv is "
	    "slower.\n");
	print_transports(o, d);
	printf("values read back and verified: distkv %ld, redis %ld (all "
	    "equal to the last write)\n", d->checked, r->checked);
}

/* ---- main ---- */

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "keys", required_argument, NULL, 'k' },
		{ "ops", required_argument, NULL, 'o' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "rounds", required_argument, NULL, 'n' },
		{ "pipeline", required_argument, NULL, 'p' },
		{ "cpu-server", required_argument, NULL, 's' },
		{ "cpu-client", required_argument, NULL, 'c' },
		{ "agent", required_argument, NULL, 'a' },
		{ "redis", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const enum metric order[] = {
		M_GET_P50, M_SET_P50, M_GET_PIPE, M_SET_PIPE,
		M_GET_TCP_P50, M_SET_TCP_P50, M_GET_TLS_P50, M_SET_TLS_P50,
	};
	static const struct backend *backends[NSIDES] = {
		&distkv_backend, &redis_backend,
	};
	static const char *const files[NSIDES][2] = {
		{ "agent.sock", "agent.log" }, { "redis.sock", "redis.log" },
	};
	struct bench		 b;
	struct side		 sides[NSIDES], *s;
	struct sigaction	 sa;
	const char		*tmp;
	long			 v, lo, hi, round;
	size_t			 m;
	int			 ch, i, rc, warmup_set = 0, status = 1;

	memset(&b, 0, sizeof(b));
	memset(sides, 0, sizeof(sides));
	b.o.keys = 100000;
	b.o.ops = 100000;
	b.o.rounds = 1;
	b.o.pipeline = 64;
	b.o.cpu_server = 0;
	b.o.cpu_client = 1;
#ifdef TOP_BUILDDIR
	b.o.agent = TOP_BUILDDIR "/distkv-agent";
#else
	b.o.agent = "./distkv-agent";
#endif
	b.o.redis = "redis-server";

	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'k': case 'o': case 'w': case 'n': case 'p':
		case 's': case 'c':
			lo = ch == 's' || ch == 'c' ? -1 : ch == 'w' ? 0 : 1;
			hi = ch == 'p' ? MAX_PIPELINE : ch == 'n' ? MAX_ROUNDS :
			    ch == 's' || ch == 'c' ? CPU_SETSIZE - 1 : MAX_KEYS;
			if (parse_long(optarg, lo, hi, &v) != 0) {
				fprintf(stderr, "bench: bad number: %s (%ld "
				    "to %ld)\n", optarg, lo, hi);
				return (2);
			}
			if (ch == 'k')
				b.o.keys = v;
			else if (ch == 'o')
				b.o.ops = v;
			else if (ch == 'w') {
				b.o.warmup = v;
				warmup_set = 1;
			} else if (ch == 'n')
				b.o.rounds = v;
			else if (ch == 'p')
				b.o.pipeline = (int)v;
			else if (ch == 's')
				b.o.cpu_server = (int)v;
			else
				b.o.cpu_client = (int)v;
			break;
		case 'a':
			b.o.agent = optarg;
			break;
		case 'r':
			b.o.redis = optarg;
			break;
		case 'h':
			usage(stdout);
			return (0);
		default:
			usage(stderr);
			return (2);
		}
	}
	if (optind != argc) {
		usage(stderr);
		return (2);
	}
	if (!warmup_set)
		b.o.warmup = b.o.ops / 10;

	b.stride = (long)((double)b.o.keys * 0.6180339887) | 1;
	while (gcd(b.stride, b.o.keys) != 1)
		b.stride++;
	if ((b.lat = calloc((size_t)b.o.ops, sizeof(*b.lat))) == NULL)
		goto nomem;
	for (i = 0; i < NSIDES; i++) {
		s = &sides[i];
		s->b = &b;
		s->idx = i;
		s->be = backends[i];
		s->srv.name = i == 0 ? "distkv-agent" : "redis-server";
		s->srv.pid = -1;
		s->gen = calloc((size_t)b.o.keys, sizeof(*s->gen));
		s->res = calloc((size_t)b.o.rounds, sizeof(*s->res));
		if (s->gen == NULL || s->res == NULL)
			goto nomem;
	}

	loadavg_read(b.loadavg, sizeof(b.loadavg));
	if ((rc = pin_cpu(b.o.cpu_client)) != 0) {
		fprintf(stderr, "bench: client on cpu %d: %s\n",
		    b.o.cpu_client, strerror(-rc));
		goto out;
	}
	if ((tmp = getenv("TMPDIR")) == NULL || *tmp == '\0')
		tmp = "/tmp";
	if (strlen(tmp) + sizeof("/distkv-bench.XXXXXX") > sizeof(b.dir)) {
		fprintf(stderr, "bench: TMPDIR too long for a socket path\n");
		goto out;
	}
	snprintf(b.dir, sizeof(b.dir), "%s/distkv-bench.XXXXXX", tmp);
	if (mkdtemp(b.dir) == NULL) {
		fprintf(stderr, "bench: mkdtemp %s: %s\n", b.dir,
		    strerror(errno));
		b.dir[0] = '\0';
		goto out;
	}
	snprintf(sig_dir, sizeof(sig_dir), "%s", b.dir);
	for (i = 0; i < NSIDES; i++) {
		s = &sides[i];
		snprintf(s->srv.sock, sizeof(s->srv.sock), "%s/%s", b.dir,
		    files[i][0]);
		snprintf(s->srv.log, sizeof(s->srv.log), "%s/%s", b.dir,
		    files[i][1]);
		memcpy(sig_files[2 * i], s->srv.sock, sizeof(s->srv.sock));
		memcpy(sig_files[2 * i + 1], s->srv.log, sizeof(s->srv.log));
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	/* Both servers up, each loaded with every key. */
	for (i = 0; i < NSIDES; i++) {
		s = &sides[i];
		if (s->be->open(s) != 0)
			goto out;
	}
	for (i = 0; i < NSIDES; i++) {
		s = &sides[i];
		fprintf(stderr, "%s: loading %ld keys\n", s->be->name,
		    b.o.keys);
		if ((s->load = phase_pipe(s, OP_SET, b.o.keys, 0)) < 0)
			goto out;
	}
	/* Each measurement on both sides back to back; who goes first
	 * alternates between rounds. */
	for (round = 0; round < b.o.rounds; round++)
		for (m = 0; m < sizeof(order) / sizeof(order[0]); m++)
			for (i = 0; i < NSIDES; i++) {
				s = &sides[(i + round) % NSIDES];
				if (measure(s, order[m], round) != 0)
					goto out;
			}
	for (i = 0; i < NSIDES; i++)
		if (verify(&sides[i]) != 0)
			goto out;
	status = 0;
	goto out;
nomem:
	fprintf(stderr, "bench: out of memory\n");
out:
	for (i = 0; i < NSIDES; i++) {
		s = &sides[i];
		if (s->be == NULL)
			continue;
		s->be->close(s);
		if (server_stop(s) != 0)
			status = 1;
		if (status != 0)
			log_tail(s->srv.log, s->srv.name);
	}
	if (status == 0)
		print_table(&b, &sides[0], &sides[1]);
	dir_remove(b.dir);
	for (i = 0; i < NSIDES; i++) {
		free(sides[i].gen);
		free(sides[i].res);
	}
	free(b.lat);
	return (status);
}
