/*
 * sockdrive - pipelined load, set and get against a running agent, for
 * profiling the request path (not a benchmark: bench_socket is that).
 *
 *	sockdrive SOCKET NKEYS NOPS [PHASES]
 *
 * PHASES is a string of l (load: NKEYS new keys in order), s (NOPS sets
 * of existing keys, a stride walk) and g (NOPS gets), default "lsg";
 * keys and values are bench_socket's (svc/NNNNNN/config/port, 64-byte
 * str), 64 requests in flight, nchain 0.  Under valgrind --tool=callgrind
 * each phase is a dump of its own (CALLGRIND_ZERO_STATS before,
 * CALLGRIND_DUMP_STATS after: the client's count per phase); with
 * CG_PID set to a callgrind'ed agent's pid it runs callgrind_control -z
 * and -d around each phase (the agent's count).  bench/README.md has the
 * commands.  Not built by make (it needs valgrind's header):
 *
 *	gcc -O2 -g -Ilibclient -o sockdrive bench/sockdrive.c \
 *	    BUILD/.libs/libdistkv.a -ljansson -lmsgpackc -lxxhash -lsodium \
 *	    -lssl -lcrypto -lpthread
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <valgrind/callgrind.h>

#include "distkv.h"

#define DEPTH	64

static int inflight, err;
static long done;

static const struct distkv_set_opts set_opts = {
	.pre = DISTKV_PRE_NONE,
	.nchain = 0,
};

static void
get_cb(void *arg, int rc, const struct distkv_entry *e)
{
	(void)arg;
	(void)e;
	if (rc != 0)
		err = rc;
	inflight--;
	done++;
}

static void
set_cb(void *arg, int rc, const struct distkv_set_result *r)
{
	(void)arg;
	(void)r;
	if (rc != 0)
		err = rc;
	inflight--;
	done++;
}

static double
now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec + t.tv_nsec / 1e9);
}

static void
run(distkv *c, distkv_path **p, long n, int get, long stride)
{
	uint8_t v[66];
	long issued = 0, k;
	struct pollfd pf;
	int rc;

	v[0] = 0xd9;
	v[1] = 64;
	memset(v + 2, 'x', 64);
	done = 0;
	while (done < n) {
		while (inflight < DEPTH && issued < n) {
			k = (issued * stride) % n;
			rc = get ? distkv_async_get(c, p[k], 0, get_cb, NULL,
			    NULL) : distkv_async_set(c, p[k], v, sizeof(v),
			    &set_opts, set_cb, NULL, NULL);
			if (rc != 0) {
				fprintf(stderr, "start: %s\n",
				    distkv_strerror(rc));
				exit(1);
			}
			issued++;
			inflight++;
		}
		pf.fd = distkv_fd(c);
		pf.events = POLLIN | (distkv_want_write(c) ? POLLOUT : 0);
		pf.revents = 0;
		if (poll(&pf, 1, 60000) <= 0 || distkv_process(c) != 0 ||
		    err != 0) {
			fprintf(stderr, "failed after %ld of %ld\n", done, n);
			exit(1);
		}
	}
}

int
main(int argc, char **argv)
{
	const char *phases, *cg = getenv("CG_PID"), *ph;
	distkv_path **p;
	distkv *c;
	char num[24], cmd[128];
	long n, m, cnt;
	double t0;

	if (argc < 4 || (n = atol(argv[2])) <= 0 || (m = atol(argv[3])) <= 0 ||
	    m > n) {
		fprintf(stderr, "usage: sockdrive SOCKET NKEYS NOPS [lsg]\n");
		return (2);
	}
	phases = argc > 4 ? argv[4] : "lsg";
	if ((p = calloc((size_t)n, sizeof(*p))) == NULL ||
	    distkv_connect(argv[1], &c) != 0) {
		fprintf(stderr, "cannot connect to %s\n", argv[1]);
		return (1);
	}
	for (long i = 0; i < n; i++) {
		snprintf(num, sizeof(num), "%06ld", i);
		if (distkv_path_new(&p[i]) != 0 ||
		    distkv_path_push_str(p[i], "svc", 3) != 0 ||
		    distkv_path_push_str(p[i], num, strlen(num)) != 0 ||
		    distkv_path_push_str(p[i], "config", 6) != 0 ||
		    distkv_path_push_str(p[i], "port", 4) != 0)
			return (1);
	}
	for (ph = phases; *ph != '\0'; ph++) {
		if (cg != NULL) {
			snprintf(cmd, sizeof(cmd),
			    "callgrind_control -z %s >/dev/null", cg);
			if (system(cmd) != 0)
				return (1);
		}
		CALLGRIND_ZERO_STATS;
		t0 = now();
		cnt = *ph == 'l' ? n : m;
		run(c, p, cnt, *ph == 'g', *ph == 'l' ? 1 : 7919);
		t0 = now() - t0;
		CALLGRIND_DUMP_STATS;
		printf("%c: %ld ops, %.0f ops/s\n", *ph, cnt, cnt / t0);
		if (cg != NULL) {
			snprintf(cmd, sizeof(cmd),
			    "callgrind_control -d %c %s >/dev/null", *ph, cg);
			if (system(cmd) != 0)
				return (1);
		}
	}
	distkv_close(c);
	for (long i = 0; i < n; i++)
		distkv_path_free(p[i]);
	free(p);
	return (0);
}
