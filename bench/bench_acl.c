/*
 * bench_acl: what ACL checks cost on the Unix socket.  One agent, two
 * connections: an unrestricted user and a user bound to an ACL of
 * --entries entries (literal, "+" and "#" patterns); both read and write
 * the same keys, in rounds that alternate who goes first.  The table gives
 * get and set round trips (p50, mean) and the ratio restricted /
 * unrestricted.  Goal (issue 10): ACL checks cost at most 10% of a get.
 *
 *   bench_acl [--keys N] [--ops N] [--rounds N] [--entries N]
 */
#include <errno.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "benchutil.h"
#include "distkv.h"

struct conf {
	long keys, ops, rounds, entries;
};

static char dir[256], sock[300];
static pid_t agent = -1;

static void
stop_agent(void)
{
	bench_agent_stop(&agent);
	if (dir[0] != '\0')
		dir_remove(dir);
}

static int
start_agent(void)
{
	return (bench_agent_start(TOP_BUILDDIR, dir, "benchacl", sock, sizeof(sock),
	    &agent));
}

static int
must(distkv *c, int rc, const char *what)
{
	if (rc != 0)
		fprintf(stderr, "bench_acl: %s: %s %s\n", what,
		    distkv_strerror(rc), c ? distkv_errmsg(c) : "");
	return (rc);
}

static int
request(distkv *c, const char *what, const uint8_t *req, size_t len)
{
	bool failed = false;
	int rc = distkv_request(c, req, len, bench_error_cb, &failed);

	if (rc == 0 && failed)
		rc = DISTKV_ESERVER;
	return (must(c, rc, what));
}

/* set_internal of path elements (strings) = value string, as msgpack. */
static int
set_internal(distkv *c, const char **path, int n, const char *value,
    bool map_key)
{
	uint8_t buf[1024], *o = buf;

	*o++ = 0x83;
	o += sprintf((char *)o, "%c%s", 0xa6, "action");
	o += sprintf((char *)o, "%c%s", 0xac, "set_internal");
	o += sprintf((char *)o, "%c%s", 0xa4, "path");
	*o++ = (uint8_t)(0x90 | n);
	for (int i = 0; i < n; i++)
		o += sprintf((char *)o, "%c%s", (char)(0xa0 | strlen(path[i])),
		    path[i]);
	o += sprintf((char *)o, "%c%s", 0xa5, "value");
	if (map_key)
		o += sprintf((char *)o, "%c%c%s", 0x81, 0xa3, "key");
	o += sprintf((char *)o, "%c%s", (char)(0xa0 | strlen(value)), value);
	return (request(c, "set_internal", buf, (size_t)(o - buf)));
}

/* An ACL "big" of n entries that still grants the keys' subtree. */
static int
make_acl(distkv *c, long n)
{
	char a[32], b[32];
	const char *p[6];
	int rc = 0;

	p[0] = "acl";
	p[1] = "big";
	for (long i = 0; rc == 0 && i < n - 3; i++) {
		snprintf(a, sizeof(a), "other%ld", i % 10);
		snprintf(b, sizeof(b), "k%ld", i);
		p[2] = a;
		p[3] = i % 3 == 0 ? "+" : b;
		p[4] = i % 5 == 0 ? "#" : "v";
		rc = set_internal(c, p, 5, "rx", false);
	}
	p[2] = "svc";
	if (rc == 0)
		rc = set_internal(c, p, 3, "xn", false);
	p[3] = "+";
	if (rc == 0)
		rc = set_internal(c, p, 4, "xn", false);
	p[4] = "#";
	if (rc == 0)
		rc = set_internal(c, p, 5, "rwcxen", false);
	return (rc);
}

static distkv_path *
key_path(long k)
{
	distkv_path *p;
	char num[32];

	snprintf(num, sizeof(num), "%06ld", k);
	if (distkv_path_new(&p) != 0)
		return (NULL);
	distkv_path_push_str(p, "svc", 3);
	distkv_path_push_str(p, num, strlen(num));
	distkv_path_push_str(p, "config", 6);
	distkv_path_push_str(p, "port", 4);
	return (p);
}

/* ops round trips of get (set if set) on c; latencies into lat. */
static int
run(distkv *c, const struct conf *cf, bool set, uint64_t *lat)
{
	static const uint8_t val[] = { 0xa4, '8', '0', '8', '0' };
	struct distkv_entry e;

	for (long i = 0; i < cf->ops; i++) {
		distkv_path *p = key_path((i * 7919) % cf->keys);
		uint64_t t0 = now_ns();
		int rc;

		memset(&e, 0, sizeof(e));
		rc = set ? distkv_set(c, p, val, sizeof(val), NULL, NULL) :
		    distkv_get(c, p, 0, &e);
		lat[i] = now_ns() - t0;
		distkv_entry_clear(&e);
		distkv_path_free(p);
		if (must(c, rc, set ? "set" : "get") != 0)
			return (-1);
	}
	return (0);
}

/* The agent's time on a CPU so far, ns (/proc/PID/schedstat): unlike a
 * round trip, barely moved by a busy machine. */
static uint64_t
agent_cpu_ns(void)
{
	char path[64];
	unsigned long long ns = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/schedstat", (int)agent);
	if ((f = fopen(path, "r")) != NULL) {
		if (fscanf(f, "%llu", &ns) != 1)
			ns = 0;
		fclose(f);
	}
	return (ns);
}

static double
mean_us(const uint64_t *v, long n)
{
	double s = 0;

	for (long i = 0; i < n; i++)
		s += (double)v[i];
	return (s / (double)n / 1000.0);
}

int
main(int argc, char **argv)
{
	struct conf cf = { 10000, 20000, 5, 50 };
	distkv *admin = NULL, *c[2] = { NULL, NULL };
	uint64_t *lat;
	/* [side][op][round] medians, means, agent CPU per request */
	double p50[2][2][32], avg[2][2][32], cpu[2][2][32];
	char load[64];
	int rc = 1;

	for (int i = 1; i < argc; i++) {
		long *dst = NULL;

		if (strcmp(argv[i], "--keys") == 0)
			dst = &cf.keys;
		else if (strcmp(argv[i], "--ops") == 0)
			dst = &cf.ops;
		else if (strcmp(argv[i], "--rounds") == 0)
			dst = &cf.rounds;
		else if (strcmp(argv[i], "--entries") == 0)
			dst = &cf.entries;
		if (dst == NULL || i + 1 >= argc ||
		    parse_long(argv[++i], 1, 100000000, dst) != 0 ||
		    cf.rounds > 32 || cf.entries < 3) {
			fprintf(stderr, "usage: bench_acl [--keys N] [--ops N] "
			    "[--rounds N (<= 32)] [--entries N (>= 3)]\n");
			return (2);
		}
	}
	snprintf(dir, sizeof(dir), "/tmp/bench_acl.XXXXXX");
	if (mkdtemp(dir) == NULL || start_agent() != 0 ||
	    (lat = calloc((size_t)cf.ops, sizeof(*lat))) == NULL)
		goto out;
	if (must(NULL, distkv_connect(sock, &admin), "connect") != 0)
		goto out;
	{
		const char *u[] = { "auth", "_test", "user", "boss" };
		const char *v[] = { "auth", "_test", "user", "limited" };
		const char *va[] = { "auth", "_test", "user", "limited", "acl" };
		static const uint8_t on[] = "\x82\xa6" "action" "\xac"
		    "set_auth_typ" "\xa3" "typ" "\xa5" "_test";

		if (set_internal(admin, u, 4, "x", false) != 0 ||
		    set_internal(admin, v, 4, "x", false) != 0 ||
		    set_internal(admin, va, 5, "big", true) != 0 ||
		    make_acl(admin, cf.entries) != 0)
			goto out;
		/* the keys exist: both users read and overwrite them */
		for (long k = 0; k < cf.keys; k++) {
			distkv_path *p = key_path(k);
			static const uint8_t val[] = { 0xa2, '8', '0' };

			rc = distkv_set(admin, p, val, sizeof(val), NULL, NULL);
			distkv_path_free(p);
			if (must(admin, rc, "load") != 0)
				goto out;
		}
		rc = 1;
		if (request(admin, "set_auth_typ", on, sizeof(on) - 1) != 0)
			goto out;
	}
	for (int s = 0; s < 2; s++)
		if (must(NULL, distkv_connect(sock, &c[s]), "connect") != 0 ||
		    must(c[s], distkv_login(c[s], "_test", s == 0 ? "boss" :
		    "limited"), "login") != 0)
			goto out;
	for (long r = 0; r < cf.rounds; r++)
		for (int op = 0; op < 2; op++)
			for (int k = 0; k < 2; k++) {
				int s = (int)((k + r) % 2);
				uint64_t c0 = agent_cpu_ns();

				if (run(c[s], &cf, op == 1, lat) != 0)
					goto out;
				cpu[s][op][r] = (double)(agent_cpu_ns() - c0) /
				    (double)cf.ops / 1000.0;
				avg[s][op][r] = mean_us(lat, cf.ops);
				p50[s][op][r] = percentile_us(lat, cf.ops, 0.5);
			}
	loadavg_read(load, sizeof(load));
	printf("bench_acl: %ld keys, %ld ops x %ld rounds (medians), ACL of "
	    "%ld entries, load %s\n\n", cf.keys, cf.ops, cf.rounds, cf.entries,
	    load);
	printf("| row | unrestricted | ACL of %ld entries | ratio |\n",
	    cf.entries);
	printf("|---|---|---|---|\n");
	for (int op = 0; op < 2; op++) {
		double u50 = median(p50[0][op], cf.rounds);
		double a50 = median(p50[1][op], cf.rounds);
		double um = median(avg[0][op], cf.rounds);
		double am = median(avg[1][op], cf.rounds);

		printf("| %s p50 (us) | %.2f | %.2f | %.3f |\n",
		    op ? "set" : "get", u50, a50, a50 / u50);
		double uc = median(cpu[0][op], cf.rounds);
		double ac = median(cpu[1][op], cf.rounds);

		printf("| %s mean (us) | %.2f | %.2f | %.3f |\n",
		    op ? "set" : "get", um, am, am / um);
		printf("| %s: agent CPU per request (us) | %.2f | %.2f | %.3f |\n",
		    op ? "set" : "get", uc, ac, ac / uc);
	}
	rc = 0;
out:
	for (int s = 0; s < 2; s++)
		if (c[s] != NULL)
			distkv_close(c[s]);
	if (admin != NULL)
		distkv_close(admin);
	stop_agent();
	return (rc);
}
