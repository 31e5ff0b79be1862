/*
 * bench_xlate: what the translator costs (issue 11).  One agent over the
 * Unix socket, no shm:
 *   - set_value round trips at a path with a 3-level type (int ->
 *     int/nonneg -> int/nonneg/small, each a Lua check) vs a path no
 *     match covers;
 *   - get_value round trips by a login bound to a converter set whose
 *     codec encodes the value (tostring) vs a login without one, same
 *     keys;
 * in rounds that alternate which side goes first; and, in process, the
 * raw cost of one sandboxed script call (xl_lua_call) for a check and for
 * a codec.  Goals: a typed set <= 1.2 x an untyped set; a call <= 2 us.
 * Last, the script time budget: what one call of a runaway script
 * (`while true do end`) costs until the sandbox stops it, and the p99 of
 * another client's gets alone vs while a second client keeps writing a
 * type whose check runs away (issue 11: other clients' p99 moves by no
 * more than the budget).
 *
 *   bench_xlate [--keys N] [--ops N] [--rounds N] [--calls N]
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <msgpack.h>

#include "benchutil.h"
#include "distkv.h"
#include "xlate_lua.h"

struct conf {
	long keys, ops, rounds, calls;
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
	return (bench_agent_start(TOP_BUILDDIR, dir, "benchxl", sock, sizeof(sock),
	    &agent));
}

static int
must(distkv *c, int rc, const char *what)
{
	if (rc != 0)
		fprintf(stderr, "bench_xlate: %s: %s %s\n", what,
		    distkv_strerror(rc), c ? distkv_errmsg(c) : "");
	return (rc);
}

static void
pstr(msgpack_packer *pk, const char *s)
{
	msgpack_pack_str_with_body(pk, s, strlen(s));
}

/* set_internal path (strings, NULL-ended) = the record built by fn. */
static int
record(distkv *c, const char *const *path,
    void (*fn)(msgpack_packer *, const void *), const void *arg)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	bool failed = false;
	int n = 0, rc;

	while (path[n] != NULL)
		n++;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 3);
	pstr(&pk, "action");
	pstr(&pk, "set_internal");
	pstr(&pk, "path");
	msgpack_pack_array(&pk, (size_t)n);
	for (int i = 0; i < n; i++)
		pstr(&pk, path[i]);
	pstr(&pk, "value");
	fn(&pk, arg);
	rc = distkv_request(c, sb.data, sb.size, bench_error_cb, &failed);
	msgpack_sbuffer_destroy(&sb);
	if (rc == 0 && failed)
		rc = DISTKV_ESERVER;
	return (must(c, rc, path[n - 1]));
}

/* {good:[1,2], bad:[..], lang:lua, code:CODE} */
static void
type_rec(msgpack_packer *pk, const void *arg)
{
	const char *const *v = arg;	/* code, bad value kind */

	msgpack_pack_map(pk, 4);
	pstr(pk, "good");
	msgpack_pack_array(pk, 2);
	msgpack_pack_int(pk, 1);
	msgpack_pack_int(pk, 2);
	pstr(pk, "bad");
	msgpack_pack_array(pk, 1);
	if (strcmp(v[1], "str") == 0)
		pstr(pk, "x");
	else if (strcmp(v[1], "neg") == 0)
		msgpack_pack_int(pk, -1);
	else
		msgpack_pack_int(pk, 1000000);
	pstr(pk, "lang");
	pstr(pk, "lua");
	pstr(pk, "code");
	pstr(pk, v[0]);
}

static void
names_rec(msgpack_packer *pk, const void *arg)
{
	const char *const *v = arg;	/* field, names..., NULL */
	int n = 0;

	while (v[n + 1] != NULL)
		n++;
	msgpack_pack_map(pk, 1);
	pstr(pk, v[0]);
	msgpack_pack_array(pk, (size_t)n);
	for (int i = 1; i <= n; i++)
		pstr(pk, v[i]);
}

static void
codec_rec(msgpack_packer *pk, const void *arg)
{
	(void)arg;
	msgpack_pack_map(pk, 3);
	pstr(pk, "lang");
	pstr(pk, "lua");
	pstr(pk, "encode");
	pstr(pk, "return tostring(value)");
	pstr(pk, "out");
	msgpack_pack_array(pk, 1);
	msgpack_pack_array(pk, 2);
	msgpack_pack_int(pk, 1);
	pstr(pk, "1");
}

static void
user_rec(msgpack_packer *pk, const void *arg)
{
	const char *conv = arg;

	msgpack_pack_map(pk, 1);
	pstr(pk, "_aux");
	msgpack_pack_map(pk, conv != NULL);
	if (conv != NULL) {
		pstr(pk, "conv");
		pstr(pk, conv);
	}
}

static int
setup(distkv *c)
{
	static const char *const t1[] = { "type", "int", NULL };
	static const char *const t2[] = { "type", "int", "nonneg", NULL };
	static const char *const t3[] = { "type", "int", "nonneg", "small",
	    NULL };
	static const char *const c1[] = { "int", "str" };
	static const char *const c2[] = { "if value < 0 then "
	    "error('negative') end", "neg" };
	static const char *const c3[] = { "if value >= 1000000 then "
	    "error('too big') end", "big" };
	static const char *const m[] = { "match", "typed", "+", NULL };
	static const char *const mv[] = { "type", "int", "nonneg", "small",
	    NULL };
	static const char *const cd[] = { "codec", "str", NULL };
	static const char *const cv[] = { "conv", "show", "coded", "+", NULL };
	static const char *const cvv[] = { "codec", "str", NULL };
	static const char *const u1[] = { "auth", "_test", "user", "plain",
	    NULL };
	static const char *const u2[] = { "auth", "_test", "user", "conv",
	    NULL };
	char code1[128];
	const char *c1v[2];

	snprintf(code1, sizeof(code1), "if math.type(value) ~= 'integer' "
	    "then error('not an int') end");
	c1v[0] = code1;
	c1v[1] = c1[1];
	return (record(c, t1, type_rec, c1v) || record(c, t2, type_rec, c2) ||
	    record(c, t3, type_rec, c3) || record(c, m, names_rec, mv) ||
	    record(c, cd, codec_rec, NULL) || record(c, cv, names_rec, cvv) ||
	    record(c, u1, user_rec, NULL) || record(c, u2, user_rec, "show"));
}

static distkv_path *
key_path(const char *top, long k)
{
	distkv_path *p;
	char num[32];

	snprintf(num, sizeof(num), "%06ld", k);
	if (distkv_path_new(&p) != 0)
		return (NULL);
	distkv_path_push_str(p, top, strlen(top));
	distkv_path_push_str(p, num, strlen(num));
	return (p);
}

/* ops round trips; latencies into lat. */
static int
run(distkv *c, const struct conf *cf, const char *top, bool set,
    uint64_t *lat)
{
	struct distkv_entry e;
	uint8_t val[9];
	size_t vlen;

	for (long i = 0; i < cf->ops; i++) {
		long k = (i * 7919) % cf->keys;
		distkv_path *p = key_path(top, k);
		uint64_t t0;
		int rc;

		/* a positive fixint or uint16: the value changes each time */
		val[0] = 0xcd;
		val[1] = (uint8_t)(i >> 8);
		val[2] = (uint8_t)i;
		vlen = 3;
		memset(&e, 0, sizeof(e));
		t0 = now_ns();
		rc = set ? distkv_set(c, p, val, vlen, NULL, NULL) :
		    distkv_get(c, p, 0, &e);
		lat[i] = now_ns() - t0;
		distkv_entry_clear(&e);
		distkv_path_free(p);
		if (must(c, rc, set ? "set" : "get") != 0)
			return (-1);
	}
	return (0);
}

static double
mean_us(const uint64_t *v, long n)
{
	double s = 0;

	for (long i = 0; i < n; i++)
		s += (double)v[i];
	return (s / (double)n / 1000.0);
}

/* ns per xl_lua_call of code on the integer 42 (median of rounds). */
static double
raw_call(const char *code, bool want, long calls, long rounds)
{
	struct xl_lua *x;
	msgpack_object o = { .type = MSGPACK_OBJECT_POSITIVE_INTEGER };
	double per[32];
	char err[256];
	int ref;

	o.via.u64 = 42;
	if (xl_lua_new(&x) != 0 || (ref = xl_lua_compile(x, code,
	    strlen(code), "bench", err, sizeof(err))) == 0)
		return (-1);
	for (long r = 0; r < rounds; r++) {
		uint64_t t0 = now_ns();

		for (long i = 0; i < calls; i++) {
			uint8_t *res = NULL;
			size_t len;

			if (xl_lua_call(x, ref, &o, NULL, want ? &res : NULL,
			    want ? &len : NULL, err, sizeof(err)) != 0)
				return (-1);
			free(res);
		}
		per[r] = (double)(now_ns() - t0) / (double)calls;
	}
	xl_lua_free(x);
	return (median(per, rounds));
}

/* ns of one call of a runaway script, stopped by the sandbox. */
static double
runaway_ns(long rounds)
{
	static const char code[] = "while true do end";
	struct xl_lua *x;
	msgpack_object o = { .type = MSGPACK_OBJECT_POSITIVE_INTEGER };
	double per[32];
	char err[256];
	int ref;

	if (xl_lua_new(&x) != 0 || (ref = xl_lua_compile(x, code,
	    sizeof(code) - 1, "bench", err, sizeof(err))) == 0)
		return (-1);
	for (long r = 0; r < rounds; r++) {
		uint64_t t0 = now_ns();

		if (xl_lua_call(x, ref, &o, NULL, NULL, NULL, err,
		    sizeof(err)) == 0)
			return (-1);	/* it must be stopped */
		per[r] = (double)(now_ns() - t0);
	}
	xl_lua_free(x);
	return (median(per, rounds));
}

struct runaway {
	distkv *c;
	volatile bool stop;
	long writes;
};

static int
ignore_cb(void *arg, const uint8_t *msg, size_t len)
{
	(void)arg;
	(void)msg;
	(void)len;
	return (0);
}

/* Keep writing a type whose check runs into the time limit (each write
 * is refused after one budget). */
static void *
runaway_writer(void *arg)
{
	struct runaway *rw = arg;
	msgpack_sbuffer sb;
	msgpack_packer pk;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 3);
	pstr(&pk, "action");
	pstr(&pk, "set_internal");
	pstr(&pk, "path");
	msgpack_pack_array(&pk, 2);
	pstr(&pk, "type");
	pstr(&pk, "runaway");
	pstr(&pk, "value");
	{
		static const char *const v[2] = { "while true do end", "str" };

		type_rec(&pk, v);
	}
	/* every write is refused: the check runs into the limit */
	while (!rw->stop) {
		int rc = distkv_request(rw->c, sb.data, sb.size, ignore_cb,
		    NULL);

		if (rc != 0 && !DISTKV_IS_REFUSAL(rc))
			break;
		rw->writes++;
	}
	msgpack_sbuffer_destroy(&sb);
	return (NULL);
}

int
main(int argc, char **argv)
{
	struct conf cf = { 2000, 10000, 5, 200000 };
	distkv *admin = NULL, *c[2] = { NULL, NULL };
	uint64_t *lat;
	/* [row][side][round]: rows set, get */
	double p50[2][2][32], avg[2][2][32];
	static const char *const rows[2] = { "set", "get" };
	static const char *const sides[2][2] = { { "untyped", "3-level type" },
	    { "no codec", "encoding codec" } };
	char load[64];
	double rc_check, rc_codec;
	int rc = 1;

	for (int i = 1; i < argc; i++) {
		long *dst = NULL;

		if (strcmp(argv[i], "--keys") == 0)
			dst = &cf.keys;
		else if (strcmp(argv[i], "--ops") == 0)
			dst = &cf.ops;
		else if (strcmp(argv[i], "--rounds") == 0)
			dst = &cf.rounds;
		else if (strcmp(argv[i], "--calls") == 0)
			dst = &cf.calls;
		if (dst == NULL || i + 1 >= argc ||
		    parse_long(argv[++i], 1, 100000000, dst) != 0 ||
		    cf.rounds > 32) {
			fprintf(stderr, "usage: bench_xlate [--keys N] "
			    "[--ops N] [--rounds N (<= 32)] [--calls N]\n");
			return (2);
		}
	}
	rc_check = raw_call("if math.type(value) ~= 'integer' then "
	    "error('not an int') end", false, cf.calls, cf.rounds);
	rc_codec = raw_call("return tostring(value)", true, cf.calls,
	    cf.rounds);
	snprintf(dir, sizeof(dir), "/tmp/bench_xlate.XXXXXX");
	if (mkdtemp(dir) == NULL || start_agent() != 0 ||
	    (lat = calloc((size_t)cf.ops, sizeof(*lat))) == NULL)
		goto out;
	if (must(NULL, distkv_connect(sock, &admin), "connect") != 0 ||
	    setup(admin) != 0)
		goto out;
	for (long k = 0; k < cf.keys; k++) {
		static const uint8_t val[] = { 0x07 };

		for (int t = 0; t < 3; t++) {
			distkv_path *p = key_path(t == 0 ? "plain" :
			    t == 1 ? "typed" : "coded", k);

			rc = distkv_set(admin, p, val, sizeof(val), NULL, NULL);
			distkv_path_free(p);
			if (must(admin, rc, "load") != 0)
				goto out;
		}
	}
	rc = 1;
	{
		static const uint8_t on[] = "\x82\xa6" "action" "\xac"
		    "set_auth_typ" "\xa3" "typ" "\xa5" "_test";
		bool failed = false;

		if (must(admin, distkv_request(admin, on, sizeof(on) - 1,
		    bench_error_cb, &failed), "set_auth_typ") != 0 || failed)
			goto out;
	}
	for (int s = 0; s < 2; s++)
		if (must(NULL, distkv_connect(sock, &c[s]), "connect") != 0 ||
		    must(c[s], distkv_login(c[s], "_test", s == 0 ? "plain" :
		    "conv"), "login") != 0)
			goto out;
	for (long r = 0; r < cf.rounds; r++)
		for (int row = 0; row < 2; row++)
			for (int k = 0; k < 2; k++) {
				int s = (int)((k + r) % 2);
				/* set: one login, two paths; get: one path
				 * ("coded"), two logins */
				distkv *cc = row == 0 ? c[0] : c[s];
				const char *top = row == 0 ?
				    (s ? "typed" : "plain") : "coded";

				if (run(cc, &cf, top, row == 0, lat) != 0)
					goto out;
				avg[row][s][r] = mean_us(lat, cf.ops);
				p50[row][s][r] = percentile_us(lat, cf.ops,
				    0.5);
			}
	loadavg_read(load, sizeof(load));
	printf("bench_xlate: %ld keys, %ld ops x %ld rounds (medians), "
	    "load %s\n\n", cf.keys, cf.ops, cf.rounds, load);
	printf("| row | without | with | ratio |\n|---|---|---|---|\n");
	for (int row = 0; row < 2; row++) {
		double a50 = median(p50[row][0], cf.rounds);
		double b50 = median(p50[row][1], cf.rounds);
		double am = median(avg[row][0], cf.rounds);
		double bm = median(avg[row][1], cf.rounds);

		printf("| %s p50 (us): %s vs %s | %.2f | %.2f | %.3f |\n",
		    rows[row], sides[row][0], sides[row][1], a50, b50,
		    b50 / a50);
		printf("| %s mean (us) | %.2f | %.2f | %.3f |\n", rows[row],
		    am, bm, bm / am);
	}
	printf("\n| one script call, in process | ns |\n|---|---|\n");
	printf("| type check (math.type) | %.0f |\n", rc_check);
	printf("| codec (tostring, result packed) | %.0f |\n", rc_codec);
	{
		struct runaway rw = { NULL, false, 0 };
		pthread_t th;
		double alone, busy, budget = runaway_ns(cf.rounds);

		if (run(c[0], &cf, "plain", false, lat) != 0)
			goto out;
		alone = percentile_us(lat, cf.ops, 0.99);
		if (must(NULL, distkv_connect(sock, &rw.c), "connect") != 0 ||
		    must(rw.c, distkv_login(rw.c, "_test", "plain"),
		    "login") != 0 ||
		    pthread_create(&th, NULL, runaway_writer, &rw) != 0)
			goto out;
		rc = run(c[0], &cf, "plain", false, lat);
		rw.stop = true;
		pthread_join(th, NULL);
		distkv_close(rw.c);
		if (rc != 0)
			goto out;
		busy = percentile_us(lat, cf.ops, 0.99);
		printf("\n| the script time budget | us |\n|---|---|\n");
		printf("| one runaway call until the sandbox stops it | %.0f |\n",
		    budget / 1000.0);
		printf("| get p99 alone | %.1f |\n", alone);
		printf("| get p99 while another client's %ld writes each ran "
		    "into the limit | %.1f |\n", rw.writes, busy);
		printf("| p99 moved by (goal: at most the budget) | %.1f |\n",
		    busy - alone);
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
