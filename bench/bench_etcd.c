/*
 * bench_etcd: distkv-etcd (in front of a distkv-agent) vs a real etcd
 * --enable-v2, both on loopback, in one run (bench/README.md).
 *
 * Rows: GET and PUT latency p50/p99 and throughput with 1 and with 16
 * concurrent keep-alive connections, driven by wrk (Debian's HTTP load
 * generator, a few microseconds per request) or with --client curl by
 * threads here, one libcurl handle each (20-70 us per request: on two
 * cores the client then decides the 16-client rows); and the watch
 * delivery delay (a long-poll with waitIndex, woken by a PUT: from just
 * before the PUT is sent to the event's arrival).  Both servers fsync
 * every write: the agent runs with --fsync always, etcd fsyncs its WAL.
 * Every GET of the curl client checks the value it got; with wrk every
 * reply must be 2xx and every key is read back and checked after the
 * rows.  A wrong value or a failed request fails the run.
 *
 * The servers are started here, each in a temp dir, and killed by pid.
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>

#include "benchutil.h"

#define NCONC 16

struct server {
	const char *name;
	char url[128];
	pid_t pid;
	char log[300];
};

static long opt_keys = 1000, opt_ops = 4000, opt_watch = 200, opt_repeat = 1;
static long opt_seconds = 3;
static bool opt_curl;		/* --client curl: libcurl threads, not wrk */
static char tmpdir[256];
static struct server servers[2];
static pid_t agent_pid = -1;

/* ---- processes ---- */

static int
free_port(void)
{
	struct sockaddr_in a;
	socklen_t l = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &l) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

static pid_t
spawn(char *const argv[], const char *log)
{
	pid_t pid = fork();

	if (pid == 0) {
		FILE *f = freopen(log, "w", stderr);

		(void)f;
		dup2(2, 1);
		execvp(argv[0], argv);
		_exit(127);
	}
	return pid;
}

static void
stop(pid_t *pid)
{
	if (*pid > 0) {
		kill(*pid, SIGTERM);
		waitpid(*pid, NULL, 0);
		*pid = -1;
	}
}

/* ---- HTTP ---- */

struct buf {
	char *p;
	size_t n;
};

static size_t
buf_write(char *d, size_t sz, size_t nm, void *arg)
{
	struct buf *b = arg;
	size_t n = sz * nm;
	char *p = realloc(b->p, b->n + n + 1);

	if (p == NULL)
		return 0;
	memcpy(p + b->n, d, n);
	b->p = p;
	b->n += n;
	b->p[b->n] = '\0';
	return n;
}

/* One request; returns the HTTP status (0 on a transport error). */
static long
req(CURL *h, const char *method, const char *url, const char *body,
    struct buf *out)
{
	long code = 0;

	out->n = 0;
	if (out->p != NULL)
		out->p[0] = '\0';
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, buf_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
	if (body != NULL) {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	} else {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, NULL);
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
	}
	if (curl_easy_perform(h) != CURLE_OK)
		return 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	return code;
}

static int
wait_http(struct server *s, int ms)
{
	CURL *h = curl_easy_init();
	struct buf b = { NULL, 0 };
	char url[300];
	uint64_t end = now_ns() + (uint64_t)ms * 1000000;
	int rc = -1;

	snprintf(url, sizeof(url), "%s/v2/keys/", s->url);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 1000L);
	while (now_ns() < end) {
		if (req(h, "GET", url, NULL, &b) == 200) {
			rc = 0;
			break;
		}
		if (waitpid(s->pid, NULL, WNOHANG) == s->pid) {
			s->pid = -1;
			break;
		}
		usleep(20000);	/* poll interval of a deadline-bounded wait */
	}
	if (rc != 0) {
		fprintf(stderr, "bench: %s did not start\n", s->name);
		log_tail(s->log, s->name);
	}
	free(b.p);
	curl_easy_cleanup(h);
	return rc;
}

/* ---- workloads ---- */

static void
value_of(long k, char *v, size_t len)
{
	snprintf(v, len, "value-%06ld-0123456789abcdef0123456789abcdef0123456789ab", k);
}

struct job {
	struct server *s;
	bool put, load;		/* load: keys first..first+ops-1 in order */
	long ops, first;	/* this thread's share; key stride start */
	uint64_t *lat;		/* ops samples */
	int err;
};

static void *
job_main(void *arg)
{
	struct job *j = arg;
	CURL *h = curl_easy_init();
	struct buf b = { NULL, 0 };
	char url[300], body[160], v[100];
	long i;

	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
	for (i = 0; i < j->ops; i++) {
		long k = j->load ? j->first + i :
		    (j->first + i * 7919) % opt_keys, code;
		uint64_t t0;

		if (k >= opt_keys)
			break;
		value_of(k, v, sizeof(v));
		snprintf(url, sizeof(url), "%s/v2/keys/bench/k%06ld", j->s->url, k);
		snprintf(body, sizeof(body), "value=%s", v);
		t0 = now_ns();
		code = req(h, j->put ? "PUT" : "GET", url, j->put ? body : NULL,
		    &b);
		j->lat[i] = now_ns() - t0;
		if (code != 200 && code != 201) {
			j->err = 1;
			break;
		}
		if (!j->put && (b.p == NULL || strstr(b.p, v) == NULL)) {
			fprintf(stderr, "bench: %s: wrong value for k%06ld\n",
			    j->s->name, k);
			j->err = 1;
			break;
		}
	}
	free(b.p);
	curl_easy_cleanup(h);
	return NULL;
}

struct result {
	double p50, p99, rate;
};

static int
run(struct server *s, bool put, int conc, long ops, bool load,
    struct result *r)
{
	struct job jobs[NCONC];
	pthread_t th[NCONC];
	uint64_t *lat = calloc((size_t)(ops + conc), sizeof(*lat)), t0, t;
	long per = load ? (ops + conc - 1) / conc : ops / conc, i;
	int err = 0;

	if (lat == NULL)
		return -1;
	t0 = now_ns();
	for (i = 0; i < conc; i++) {
		jobs[i] = (struct job){ s, put, load, per, i * per,
		    lat + i * per, 0 };
		pthread_create(&th[i], NULL, job_main, &jobs[i]);
	}
	for (i = 0; i < conc; i++) {
		pthread_join(th[i], NULL);
		err |= jobs[i].err;
	}
	t = now_ns() - t0;
	r->rate = (double)(per * conc) / ((double)t / 1e9);
	r->p50 = percentile_us(lat, per * conc, 0.50);
	r->p99 = percentile_us(lat, per * conc, 0.99);
	free(lat);
	if (err)
		fprintf(stderr, "bench: %s: a request failed\n", s->name);
	return err ? -1 : 0;
}

/*
 * The same stride walk and values as job_main, as a wrk script: each wrk
 * thread starts its walk at its own offset.
 */
static const char wrk_script[] =
"local counter = 0\n"
"function setup(thread)\n"
"  thread:set('tid', counter)\n"
"  counter = counter + 1\n"
"end\n"
"function init(args)\n"
"  keys = tonumber(args[1]); put = args[2] == 'put'\n"
"  i = (tid or 0) * 1009\n"
"end\n"
"function request()\n"
"  local k = (i * 7919) % keys\n"
"  i = i + 1\n"
"  local path = string.format('/v2/keys/bench/k%06d', k)\n"
"  if not put then return wrk.format('GET', path) end\n"
"  return wrk.format('PUT', path,\n"
"    { ['Content-Type'] = 'application/x-www-form-urlencoded' },\n"
"    string.format('value=value-%06d-0123456789abcdef0123456789abcdef"
"0123456789ab', k))\n"
"end\n";

/* "187.00us", "6.14ms", "1.20s" -> microseconds; -1 if not a latency */
static double
wrk_latency_us(const char *s)
{
	char *end;
	double v = strtod(s, &end);

	if (end == s)
		return -1;
	if (strncmp(end, "us", 2) == 0)
		return v;
	if (strncmp(end, "ms", 2) == 0)
		return v * 1e3;
	if (*end == 's')
		return v * 1e6;
	return -1;
}

/* Parse wrk --latency output: p50, p99, Requests/sec; errors fail. */
static int
wrk_parse(const char *path, struct result *r)
{
	FILE *f = fopen(path, "r");
	char line[512];
	bool rate = false;
	int err = 0;

	r->p50 = r->p99 = -1;
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		const char *p = line + strspn(line, " \t");

		if (strncmp(p, "50%", 3) == 0)
			r->p50 = wrk_latency_us(p + 3 + strspn(p + 3, " "));
		else if (strncmp(p, "99%", 3) == 0)
			r->p99 = wrk_latency_us(p + 3 + strspn(p + 3, " "));
		else if (strncmp(p, "Requests/sec:", 13) == 0)
			rate = sscanf(p + 13, "%lf", &r->rate) == 1;
		else if (strncmp(p, "Non-2xx", 7) == 0 ||
		    (strncmp(p, "Socket errors:", 14) == 0 &&
		    strstr(p, "connect 0, read 0, write 0, timeout 0") ==
		    NULL))
			err = 1;
	}
	fclose(f);
	if (err || !rate || r->p50 < 0 || r->p99 < 0)
		return -1;
	return 0;
}

static int
run_wrk(struct server *s, bool put, int conc, struct result *r)
{
	char script[300], out[300], c[16], t[16], d[16], keys[24];
	pid_t pid;
	int st;

	snprintf(script, sizeof(script), "%s/bench.lua", tmpdir);
	snprintf(out, sizeof(out), "%s/wrk.out", tmpdir);
	snprintf(c, sizeof(c), "%d", conc);
	snprintf(t, sizeof(t), "%d", conc > 1 ? 2 : 1);
	snprintf(d, sizeof(d), "%lds", opt_seconds);
	snprintf(keys, sizeof(keys), "%ld", opt_keys);
	char *av[] = { "wrk", "-t", t, "-c", c, "-d", d, "--latency", "-s",
	    script, s->url, "--", keys, put ? "put" : "get", NULL };
	if ((pid = spawn(av, out)) < 0 || waitpid(pid, &st, 0) != pid ||
	    !WIFEXITED(st) || WEXITSTATUS(st) != 0 || wrk_parse(out, r) != 0) {
		fprintf(stderr, "bench: %s: wrk failed or saw errors\n",
		    s->name);
		log_tail(out, "wrk");
		return -1;
	}
	return 0;
}

/* After the rows: every key still holds the value the load wrote. */
static int
verify_keys(struct server *s)
{
	CURL *h = curl_easy_init();
	struct buf b = { NULL, 0 };
	char url[300], v[100];
	long k;
	int err = 0;

	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
	for (k = 0; k < opt_keys && !err; k++) {
		value_of(k, v, sizeof(v));
		snprintf(url, sizeof(url), "%s/v2/keys/bench/k%06ld", s->url, k);
		if (req(h, "GET", url, NULL, &b) != 200 || b.p == NULL ||
		    strstr(b.p, v) == NULL) {
			fprintf(stderr, "bench: %s: wrong value for k%06ld\n",
			    s->name, k);
			err = 1;
		}
	}
	free(b.p);
	curl_easy_cleanup(h);
	return err ? -1 : 0;
}

struct watcher {
	struct server *s;
	long index;
	uint64_t got;
	int err;
};

static void *
watch_main(void *arg)
{
	struct watcher *w = arg;
	CURL *h = curl_easy_init();
	struct buf b = { NULL, 0 };
	char url[300];

	snprintf(url, sizeof(url), "%s/v2/keys/bench/w?wait=true&waitIndex=%ld",
	    w->s->url, w->index);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
	if (req(h, "GET", url, NULL, &b) != 200 || b.p == NULL ||
	    strstr(b.p, "\"key\":\"/bench/w\"") == NULL)
		w->err = 1;
	w->got = now_ns();
	free(b.p);
	curl_easy_cleanup(h);
	return NULL;
}

/* The modifiedIndex in a write's reply. */
static long
reply_index(const char *body)
{
	const char *p = body != NULL ? strstr(body, "\"modifiedIndex\":") : NULL;

	return p != NULL ? strtol(p + 16, NULL, 10) : -1;
}

static int
watch_delay(struct server *s, long rounds, struct result *r)
{
	CURL *h = curl_easy_init();
	struct buf b = { NULL, 0 };
	uint64_t *lat = calloc((size_t)rounds, sizeof(*lat));
	char url[300];
	long i, idx;
	int err = 0;

	snprintf(url, sizeof(url), "%s/v2/keys/bench/w", s->url);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
	if (req(h, "PUT", url, "value=0", &b) / 100 != 2)
		err = 1;
	idx = reply_index(b.p);
	for (i = 0; i < rounds && !err; i++) {
		struct watcher w = { s, idx + 1, 0, 0 };
		pthread_t th;
		uint64_t t0;

		pthread_create(&th, NULL, watch_main, &w);
		/*
		 * Let the long-poll reach the server, so the live path is
		 * measured; if it is late, waitIndex still finds the event
		 * in the history: nothing is lost either way.
		 */
		usleep(5000);
		t0 = now_ns();
		if (req(h, "PUT", url, "value=1", &b) / 100 != 2)
			err = 1;
		idx = reply_index(b.p);
		pthread_join(th, NULL);
		err |= w.err;
		lat[i] = w.got > t0 ? w.got - t0 : 0;
	}
	r->p50 = percentile_us(lat, rounds, 0.5);
	r->p99 = percentile_us(lat, rounds, 0.99);
	r->rate = 0;
	free(lat);
	free(b.p);
	curl_easy_cleanup(h);
	if (err)
		fprintf(stderr, "bench: %s: watch failed\n", s->name);
	return err ? -1 : 0;
}

/* ---- main ---- */

static int
cmp_rate(const void *a, const void *b)
{
	double x = ((const struct result *)a)->rate;
	double y = ((const struct result *)b)->rate;

	return (x > y) - (x < y);
}

static int
cmp_p50(const void *a, const void *b)
{
	double x = ((const struct result *)a)->p50;
	double y = ((const struct result *)b)->p50;

	return (x > y) - (x < y);
}

static int
start_servers(const char *top)
{
	char agent[300], gw[300], sock[300], state[300], region[300], lg[300];
	char listen[64], curl1[64], curl2[64], cluster[96], data[300];
	int gp = free_port(), cp = free_port(), pp = free_port();

	snprintf(agent, sizeof(agent), "%s/distkv-agent", top);
	snprintf(gw, sizeof(gw), "%s/distkv-etcd", top);
	snprintf(sock, sizeof(sock), "%s/agent.sock", tmpdir);
	snprintf(state, sizeof(state), "%s/state", tmpdir);
	snprintf(region, sizeof(region), "%s/region", tmpdir);
	snprintf(data, sizeof(data), "%s/etcd", tmpdir);
	snprintf(lg, sizeof(lg), "%s/agent.log", tmpdir);
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", gp);
	snprintf(curl1, sizeof(curl1), "http://127.0.0.1:%d", cp);
	snprintf(curl2, sizeof(curl2), "http://127.0.0.1:%d", pp);
	snprintf(cluster, sizeof(cluster), "b=http://127.0.0.1:%d", pp);

	char *av[] = { agent, "--standalone", "--socket", sock, "--node",
	    "bench", "--state-dir", state, "--fsync", "always", "--shm",
	    region, NULL };
	agent_pid = spawn(av, lg);
	if (wait_socket(sock, &agent_pid, "distkv-agent", 10000) != 0)
		return -1;

	/* the default 16 workers: one per client that writes at once */
	char *gv[] = { gw, "--socket", sock, "--listen", listen, NULL };
	servers[0].name = "distkv-etcd";
	snprintf(servers[0].url, sizeof(servers[0].url), "http://%s", listen);
	snprintf(servers[0].log, sizeof(servers[0].log), "%s/gw.log", tmpdir);
	servers[0].pid = spawn(gv, servers[0].log);
	if (wait_http(&servers[0], 30000) != 0)
		return -1;

	char *ev[] = { "etcd", "--name", "b", "--data-dir", data,
	    "--enable-v2", "--listen-client-urls", curl1,
	    "--advertise-client-urls", curl1, "--listen-peer-urls", curl2,
	    "--initial-advertise-peer-urls", curl2, "--initial-cluster",
	    cluster, NULL };
	servers[1].name = "etcd";
	snprintf(servers[1].url, sizeof(servers[1].url), "%s", curl1);
	snprintf(servers[1].log, sizeof(servers[1].log), "%s/etcd.log", tmpdir);
	servers[1].pid = spawn(ev, servers[1].log);
	return wait_http(&servers[1], 30000);
}

static void
stop_servers(void)
{
	char cmd[300];

	stop(&servers[0].pid);
	stop(&servers[1].pid);
	stop(&agent_pid);
	/* etcd's data dir has subdirectories: dir_remove takes plain files */
	if (strncmp(tmpdir, "/tmp/distkv-bench-etcd.", 23) == 0) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
		if (system(cmd) != 0)
			fprintf(stderr, "bench: could not remove %s\n", tmpdir);
	}
}

static void
usage(void)
{
	puts("Usage: bench_etcd [--keys N] [--seconds N] [--watch N] "
	    "[--repeat N]\n"
	    "                  [--client wrk|curl] [--ops N]\n"
	    "distkv-etcd (+ distkv-agent --fsync always) vs etcd --enable-v2 on\n"
	    "loopback: GET/PUT p50/p99 and throughput with 1 and 16 clients,\n"
	    "watch delivery delay.  --repeat N runs every row N times on each\n"
	    "server (alternating) and reports the median run by throughput\n"
	    "(by p50 for the watch row).  The GET and PUT rows run wrk for\n"
	    "--seconds each (default 3); --client curl drives them with\n"
	    "libcurl threads instead, --ops requests per row.  Needs etcd\n"
	    "(etcd-server) and wrk in PATH.");
}

int
main(int argc, char **argv)
{
	static const char *rows[] = {
		"GET 1 client", "GET 16 clients", "PUT 1 client",
		"PUT 16 clients", "watch delay",
	};
	struct result res[2][5], *rep[2] = { NULL, NULL };
	const char *top = TOP_BUILDDIR;
	char load[64], load_end[64];
	long k;
	int i, si, rc = 1;

	for (i = 1; i < argc; i++) {
		long *dst = NULL;

		if (strcmp(argv[i], "--client") == 0 && i + 1 < argc &&
		    (strcmp(argv[i + 1], "wrk") == 0 ||
		    strcmp(argv[i + 1], "curl") == 0)) {
			opt_curl = strcmp(argv[++i], "curl") == 0;
			continue;
		}
		if (strcmp(argv[i], "--keys") == 0)
			dst = &opt_keys;
		else if (strcmp(argv[i], "--seconds") == 0)
			dst = &opt_seconds;
		else if (strcmp(argv[i], "--ops") == 0)
			dst = &opt_ops;
		else if (strcmp(argv[i], "--watch") == 0)
			dst = &opt_watch;
		else if (strcmp(argv[i], "--repeat") == 0)
			dst = &opt_repeat;
		else {
			usage();
			return strcmp(argv[i], "--help") == 0 ? 0 : 2;
		}
		if (i + 1 >= argc || parse_long(argv[++i],
		    dst == &opt_repeat || dst == &opt_seconds ? 1 : 16,
		    100000000, dst) != 0) {
			usage();
			return 2;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/distkv-bench-etcd.XXXXXX");
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	loadavg_read(load, sizeof(load));
	{
		char script[300];
		FILE *f;

		snprintf(script, sizeof(script), "%s/bench.lua", tmpdir);
		if ((f = fopen(script, "w")) == NULL ||
		    fputs(wrk_script, f) == EOF || fclose(f) != 0) {
			perror(script);
			goto out;
		}
	}
	if (start_servers(top) != 0)
		goto out;
	for (si = 0; si < 2; si++) {
		struct result pre;

		fprintf(stderr, "bench: %s: loading %ld keys\n",
		    servers[si].name, opt_keys);
		if (run(&servers[si], true, NCONC, opt_keys, true, &pre) != 0)
			goto out;
	}
	if ((rep[0] = calloc((size_t)opt_repeat, sizeof(**rep))) == NULL ||
	    (rep[1] = calloc((size_t)opt_repeat, sizeof(**rep))) == NULL)
		goto out;
	/*
	 * Each row on one server and right after on the other, alternating
	 * which goes first; --repeat times each, and the median run is
	 * reported (the machine is shared: one run can be hit by someone
	 * else's burst).
	 */
	for (i = 0; i < 5; i++) {
		for (k = 0; k < 2 * opt_repeat; k++) {
			int s2 = (int)((i + k) % 2), r;
			struct result *out = &rep[s2][k / 2];

			fprintf(stderr, "bench: %s: %s\n", servers[s2].name,
			    rows[i]);
			if (i == 4)
				r = watch_delay(&servers[s2], opt_watch, out);
			else if (!opt_curl)
				r = run_wrk(&servers[s2], i >= 2,
				    i % 2 ? NCONC : 1, out);
			else
				r = run(&servers[s2], i >= 2, i % 2 ? NCONC : 1,
				    opt_ops, false, out);
			if (r != 0)
				goto out;
		}
		for (si = 0; si < 2; si++) {
			qsort(rep[si], (size_t)opt_repeat, sizeof(**rep),
			    i == 4 ? cmp_p50 : cmp_rate);
			res[si][i] = rep[si][opt_repeat / 2];
		}
	}
	for (si = 0; si < 2; si++)
		if (verify_keys(&servers[si]) != 0)
			goto out;
	loadavg_read(load_end, sizeof(load_end));
	if (opt_curl)
		printf("bench_etcd: client libcurl threads, %ld ops per row",
		    opt_ops);
	else
		printf("bench_etcd: client wrk, %ld s per row", opt_seconds);
	printf(", keys %ld, watch rounds %ld, repeat %ld (median run), "
	    "load %s at start, %s at end\n\n", opt_keys, opt_watch,
	    opt_repeat, load, load_end);
	printf("| row | distkv-etcd p50 / p99 us | etcd p50 / p99 us | "
	    "distkv-etcd ops/s | etcd ops/s | throughput ratio |\n");
	printf("|---|---|---|---|---|---|\n");
	for (i = 0; i < 5; i++) {
		if (i == 4)
			printf("| %s | %.0f / %.0f | %.0f / %.0f | | | |\n",
			    rows[i], res[0][i].p50, res[0][i].p99,
			    res[1][i].p50, res[1][i].p99);
		else
			printf("| %s | %.0f / %.0f | %.0f / %.0f | %.0f | %.0f | "
			    "%.2f |\n", rows[i], res[0][i].p50,
			    res[0][i].p99, res[1][i].p50, res[1][i].p99,
			    res[0][i].rate, res[1][i].rate,
			    res[0][i].rate / res[1][i].rate);
	}
	rc = 0;
out:
	free(rep[0]);
	free(rep[1]);
	stop_servers();
	curl_global_cleanup();
	return rc;
}
