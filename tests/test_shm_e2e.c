/*
 * End-to-end tests of the shared-memory read path: a real distkv-agent
 * (tests/harness, which passes --shm DIR/region) and libdistkv.
 *
 * Writes go over the socket, reads through the region: read-your-write,
 * the key encoding shared by agent and client, kill -9 and restart of the
 * agent under readers, wake-ups of distkv_shm_wait, consistent children
 * lists while another process writes, distkv_get after distkv_root.
 *
 * To show that distkv_get really reads the region (not the socket), some
 * tests SIGSTOP the agent (their own child) for a moment: a socket request
 * would then time out.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "distkv.h"
#include "harness.h"
#include "reader.h"

static struct harness_agent agent;

/* The agent's stderr, for failure messages. */
static const char *
agent_err(void)
{
	static char buf[4096];
	char path[320];
	size_t n = 0;
	FILE *f;

	buf[0] = '\0';
	snprintf(path, sizeof(path), "%s/agent.err", agent.dir);
	if ((f = fopen(path, "r")) != NULL) {
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
	}
	buf[n] = '\0';
	return buf;
}

#define START(...)							\
	cr_assert(harness_start(&agent, __VA_ARGS__, (const char *)NULL) \
	    == 0, "distkv-agent did not start; stderr:\n%s", agent_err())

static void
setup(void)
{
	harness_init(&agent);
	if (access(harness_bin("distkv-agent"), X_OK) != 0)
		cr_skip_test("distkv-agent not built");
}

static void
setup_started(void)
{
	setup();
	START("--standalone", "--node", "n1");
}

static void
teardown(void)
{
	harness_cleanup(&agent);
}

/* ---- helpers ---- */

static distkv_path *
P(const char *text)
{
	distkv_path *p = NULL;

	cr_assert_eq(distkv_path_parse(text, &p), 0, "path %s", text);
	return p;
}

static distkv *
connect_agent(void)
{
	distkv *c = NULL;
	int rc = distkv_connect(agent.socket, &c);

	cr_assert_eq(rc, 0, "connect: %s", distkv_strerror(rc));
	distkv_set_timeout(c, 5000);
	return c;
}

static distkv_shm *
shm_open_region(void)
{
	distkv_shm *s = NULL;
	int rc = distkv_shm_open(agent.shm, &s);

	cr_assert_eq(rc, 0, "distkv_shm_open %s: %s", agent.shm,
	    distkv_strerror(rc));
	return s;
}

static void
set_path(distkv *c, const distkv_path *p, const struct distkv_value *v,
    struct distkv_set_result *res)
{
	int rc = distkv_set(c, p, v->data, v->len, NULL, res);

	cr_assert_eq(rc, 0, "set: %s (%s)", distkv_strerror(rc),
	    distkv_errmsg(c));
}

static void
set_int(distkv *c, const char *path, int64_t i)
{
	struct distkv_value v;
	distkv_path *p = P(path);

	cr_assert_eq(distkv_value_from_int(&v, i), 0);
	set_path(c, p, &v, NULL);
	distkv_value_clear(&v);
	distkv_path_free(p);
}

static void
set_str(distkv *c, const char *path, const char *s)
{
	struct distkv_value v;
	distkv_path *p = P(path);

	cr_assert_eq(distkv_value_from_str(&v, s, strlen(s)), 0);
	set_path(c, p, &v, NULL);
	distkv_value_clear(&v);
	distkv_path_free(p);
}

/* distkv_shm_get_int on a path given as text; returns the rc. */
static int
shm_int(distkv_shm *s, const char *path, int64_t *out)
{
	distkv_path *p = P(path);
	int rc = distkv_shm_get_int(s, p, out);

	distkv_path_free(p);
	return rc;
}

#define ASSERT_SHM_INT(s, path, want) do {				\
	int64_t i_ = 0;							\
	int rc_ = shm_int((s), (path), &i_);				\
	cr_assert_eq(rc_, 0, "shm get %s: %s", (path),			\
	    distkv_strerror(rc_));					\
	cr_assert_eq(i_, (int64_t)(want), "shm get %s", (path));	\
} while (0)

#define ASSERT_SHM_MISS(s, path) do {					\
	int64_t i_ = 0;							\
	int rc_ = shm_int((s), (path), &i_);				\
	cr_assert_eq(rc_, DISTKV_ENOTFOUND, "shm get %s: %s (%" PRId64	\
	    ")", (path), distkv_strerror(rc_), i_);			\
} while (0)

static int64_t
get_int(distkv *c, const char *path)
{
	struct distkv_entry e;
	distkv_path *p = P(path);
	int64_t i = 0;
	int rc = distkv_get(c, p, 0, &e);

	cr_assert_eq(rc, 0, "get %s: %s", path, distkv_strerror(rc));
	cr_assert_eq(distkv_value_get_int(e.value.data, e.value.len, &i), 0);
	distkv_entry_clear(&e);
	distkv_path_free(p);
	return i;
}

/* Stop the agent (our own child) and let it go on again. */
static void
agent_pause(void)
{
	cr_assert_eq(kill(agent.pid, SIGSTOP), 0);
}

static void
agent_resume(void)
{
	cr_assert_eq(kill(agent.pid, SIGCONT), 0);
}

/* ---- read-your-write ---- */

TestSuite(shm_e2e, .init = setup_started, .fini = teardown, .timeout = 30.);

Test(shm_e2e, greeting_maps_the_region)
{
	distkv *c = connect_agent();
	distkv_shm *s = distkv_shm_of(c);
	struct stat st;

	cr_assert_not_null(s, "the agent named its region in the greeting");
	cr_assert_eq(distkv_shm_alive(s), 1);
	cr_assert_eq(stat(agent.shm, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0640, "default --shm-mode");
	distkv_close(c);

	setenv("DISTKV_NO_SHM", "1", 1);
	c = connect_agent();
	cr_assert_null(distkv_shm_of(c), "DISTKV_NO_SHM skips the mapping");
	distkv_close(c);
	unsetenv("DISTKV_NO_SHM");
}

/*
 * Tests that start the agent themselves live in their own suite: Criterion
 * runs a suite's .init as well as a test's, so overriding it would start
 * a second agent and lose the first.
 */
TestSuite(shm_e2e_own, .init = setup, .fini = teardown, .timeout = 30.);

Test(shm_e2e_own, no_shm_agent_reads_over_the_socket)
{
	distkv *c;

	START("--standalone", "--node", "n1", "--no-shm");
	c = connect_agent();
	cr_assert_null(distkv_shm_of(c));
	cr_assert_neq(access(agent.shm, F_OK), 0, "no region file");
	set_int(c, "a", 5);
	cr_assert_eq(get_int(c, "a"), 5);
	distkv_close(c);
}

Test(shm_e2e, read_your_write)
{
	distkv *c = connect_agent();
	distkv_shm *s = distkv_shm_of(c), *s2 = shm_open_region();
	struct distkv_set_result res;
	struct distkv_shm_meta m;
	struct distkv_value v;
	struct distkv_entry e;
	distkv_path *p = P("svc/web/port");
	char big[1200], out[2000];
	const char *str;
	size_t len, slen;

	cr_assert_not_null(s);
	for (int64_t i = 0; i < 50; i++) {
		memset(&res, 0, sizeof(res));
		cr_assert_eq(distkv_value_from_int(&v, 8000 + i), 0);
		set_path(c, p, &v, &res);
		distkv_value_clear(&v);
		/* no wait of any kind: visible as soon as the reply is */
		ASSERT_SHM_INT(s, "svc/web/port", 8000 + i);
		ASSERT_SHM_INT(s2, "svc/web/port", 8000 + i);
		cr_assert_eq(get_int(c, "svc/web/port"), 8000 + i);
		cr_assert_eq(distkv_shm_get(s, p, out, sizeof(out), &len, &m),
		    0);
		cr_assert_eq(m.tock, res.tock, "tock of the set");
		cr_assert_geq(res.chain.n, 1);
		cr_assert_eq(m.tick, res.chain.ev[0].tick, "tick of the set");
		cr_assert_str_eq(m.node, "n1");
		distkv_set_result_clear(&res);
	}

	/* a bigger value: the caller's buffer tells its size */
	memset(big, 'b', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	set_str(c, "svc/web/port", big);
	cr_assert_eq(distkv_shm_get(s, p, out, 16, &len, NULL),
	    DISTKV_ETOOSMALL);
	cr_assert_eq(len, sizeof(big) - 1 + 3, "str16 header + bytes");
	cr_assert_eq(distkv_shm_get(s, p, out, sizeof(out), &len, NULL), 0);
	cr_assert_eq(distkv_value_get_str(out, len, &str, &slen), 0);
	cr_assert_eq(slen, sizeof(big) - 1);
	cr_assert_eq(distkv_get(c, p, 0, &e), 0);
	cr_assert_eq(e.value.len, len);
	cr_assert_eq(memcmp(e.value.data, out, len), 0);
	distkv_entry_clear(&e);

	/* delete: gone from the region at once */
	cr_assert_eq(distkv_delete(c, p, NULL, NULL), 0);
	ASSERT_SHM_MISS(s, "svc/web/port");
	ASSERT_SHM_MISS(s2, "svc/web/port");
	cr_assert_eq(distkv_get(c, p, 0, &e), DISTKV_ENOTFOUND);
	distkv_entry_clear(&e);
	/* intermediate nodes have no value */
	ASSERT_SHM_MISS(s, "svc/web");
	ASSERT_SHM_MISS(s, "svc");

	distkv_path_free(p);
	distkv_shm_close(s2);
	distkv_close(c);
}

/* distkv_get answers from the region while the agent cannot answer. */
Test(shm_e2e, distkv_get_reads_the_region)
{
	distkv *c = connect_agent();
	struct distkv_entry e;
	distkv_path *p = P("x"), *q = P("nothing/here");
	long long t0;
	int rc;

	set_int(c, "x", 77);
	distkv_set_timeout(c, 2000);
	agent_pause();
	t0 = harness_now_ms();
	rc = distkv_get(c, p, 0, &e);
	agent_resume();
	cr_assert_eq(rc, 0, "get with the agent stopped: %s",
	    distkv_strerror(rc));
	cr_assert_lt(harness_now_ms() - t0, 1000, "no round trip");
	{
		int64_t i;

		cr_assert_eq(distkv_value_get_int(e.value.data, e.value.len,
		    &i), 0);
		cr_assert_eq(i, 77);
	}
	distkv_entry_clear(&e);

	agent_pause();
	rc = distkv_get(c, q, 0, &e);
	agent_resume();
	cr_assert_eq(rc, DISTKV_ENOTFOUND, "a miss is answered too: %s",
	    distkv_strerror(rc));
	cr_assert(distkv_value_is_nil(e.value.data, e.value.len));
	distkv_entry_clear(&e);

	/* nchain > 0 needs the chain: over the socket */
	cr_assert_eq(distkv_get(c, p, 1, &e), 0);
	cr_assert_geq(e.chain.n, 1);
	distkv_entry_clear(&e);
	distkv_path_free(p);
	distkv_path_free(q);
	distkv_close(c);
}

Test(shm_e2e, typed_getters)
{
	distkv *c = connect_agent();
	distkv_shm *s = distkv_shm_of(c);
	struct distkv_value v;
	distkv_path *p;
	char buf[64];
	int64_t i;
	double d;
	bool b;

	set_str(c, "t/str", "hello");
	set_int(c, "t/int", -123456789012LL);
	cr_assert_eq(distkv_value_from_double(&v, 2.5), 0);
	p = P("t/dbl");
	set_path(c, p, &v, NULL);
	distkv_value_clear(&v);
	distkv_path_free(p);
	cr_assert_eq(distkv_value_from_bool(&v, true), 0);
	p = P("t/bool");
	set_path(c, p, &v, NULL);
	distkv_value_clear(&v);
	distkv_path_free(p);

	p = P("t/str");
	cr_assert_eq(distkv_shm_get_str(s, p, buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "hello");
	cr_assert_eq(distkv_shm_get_str(s, p, buf, 5), DISTKV_ETOOSMALL,
	    "no room for the NUL");
	distkv_path_free(p);
	/* a buffer of exactly body + NUL takes a str of every header size
	 * (the header does not have to fit), one byte less does not */
	for (size_t n = 30; n <= 300; n += 9) {
		char *text = malloc(n + 1), *got = malloc(n + 1);

		cr_assert(text != NULL && got != NULL);
		for (size_t j = 0; j < n; j++)
			text[j] = (char)('a' + j % 26);
		text[n] = '\0';
		set_str(c, "t/long", text);
		p = P("t/long");
		cr_assert_eq(distkv_shm_get_str(s, p, got, n + 1), 0,
		    "%zu bytes", n);
		cr_assert_str_eq(got, text);
		cr_assert_eq(distkv_shm_get_str(s, p, got, n),
		    DISTKV_ETOOSMALL, "%zu bytes", n);
		distkv_path_free(p);
		free(text);
		free(got);
	}
	p = P("t/str");
	cr_assert_eq(distkv_shm_get_int(s, p, &i), DISTKV_ETYPE);
	distkv_path_free(p);
	p = P("t/int");
	cr_assert_eq(distkv_shm_get_int(s, p, &i), 0);
	cr_assert_eq(i, -123456789012LL);
	cr_assert_eq(distkv_shm_get_double(s, p, &d), 0, "ints read as double");
	cr_assert_eq(distkv_shm_get_str(s, p, buf, sizeof(buf)), DISTKV_ETYPE);
	distkv_path_free(p);
	p = P("t/dbl");
	cr_assert_eq(distkv_shm_get_double(s, p, &d), 0);
	cr_assert_eq(d, 2.5);
	cr_assert_eq(distkv_shm_get_bool(s, p, &b), DISTKV_ETYPE);
	distkv_path_free(p);
	p = P("t/bool");
	cr_assert_eq(distkv_shm_get_bool(s, p, &b), 0);
	cr_assert(b);
	distkv_path_free(p);
	p = P("t/none");
	cr_assert_eq(distkv_shm_get_int(s, p, &i), DISTKV_ENOTFOUND);
	distkv_path_free(p);
	distkv_close(c);
}

/*
 * The region key is the canonical msgpack of the path, built by the agent
 * (tree_pack_path) and by libdistkv (path_pack): every kind of element
 * and every header width must come out the same on both sides.
 */
Test(shm_e2e, keys_match_between_agent_and_client)
{
	static const int64_t ints[] = { 0, 1, 127, 128, 255, 256, 65535,
	    65536, 4294967295LL, 4294967296LL, INT64_MAX, -1, -32, -33, -128,
	    -129, -32768, -32769, -2147483648LL, -2147483649LL, INT64_MIN };
	distkv *c = connect_agent();
	distkv_shm *s = distkv_shm_of(c);
	struct distkv_value v;
	distkv_path *p;
	char longs[300];
	int n = 0;

	for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
		cr_assert_eq(distkv_path_new(&p), 0);
		cr_assert_eq(distkv_path_push_str(p, "ints", 4), 0);
		cr_assert_eq(distkv_path_push_int(p, ints[i]), 0);
		cr_assert_eq(distkv_value_from_int(&v, ++n), 0);
		set_path(c, p, &v, NULL);
		distkv_value_clear(&v);
		{
			int64_t got = 0;
			int rc = distkv_shm_get_int(s, p, &got);

			cr_assert_eq(rc, 0, "int element %" PRId64 ": %s",
			    ints[i], distkv_strerror(rc));
			cr_assert_eq(got, n);
		}
		distkv_path_free(p);
	}

	/* strings of each header width, byte strings, empty ones */
	memset(longs, 'L', sizeof(longs));
	{
		static const size_t lens[] = { 0, 1, 31, 32, 255, 256, 299 };

		for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
			for (int bin = 0; bin < 2; bin++) {
				int64_t got = 0;
				int rc;

				cr_assert_eq(distkv_path_new(&p), 0);
				cr_assert_eq(distkv_path_push_str(p, "s", 1), 0);
				rc = bin ? distkv_path_push_bin(p, longs,
				    lens[i]) : distkv_path_push_str(p, longs,
				    lens[i]);
				cr_assert_eq(rc, 0);
				cr_assert_eq(distkv_value_from_int(&v, ++n), 0);
				set_path(c, p, &v, NULL);
				distkv_value_clear(&v);
				rc = distkv_shm_get_int(s, p, &got);
				cr_assert_eq(rc, 0, "%s of %zu bytes: %s",
				    bin ? "bin" : "str", lens[i],
				    distkv_strerror(rc));
				/* "" and b"" are one key: the last set wins */
				cr_assert_eq(got, n);
				distkv_path_free(p);
			}
	}
	{
		static const uint8_t raw[] = { 0x00, 0xff, 0xc0, 0x93 };
		int64_t got = 0;

		cr_assert_eq(distkv_path_new(&p), 0);
		cr_assert_eq(distkv_path_push_bin(p, raw, sizeof(raw)), 0);
		cr_assert_eq(distkv_value_from_int(&v, ++n), 0);
		set_path(c, p, &v, NULL);
		distkv_value_clear(&v);
		cr_assert_eq(distkv_shm_get_int(s, p, &got), 0);
		cr_assert_eq(got, n);
		distkv_path_free(p);
	}

	/* depth 15 (fixarray) and 16, 20 (array 16) */
	{
		static const int depths[] = { 15, 16, 20 };

		for (size_t i = 0; i < 3; i++) {
			int64_t got = 0;

			cr_assert_eq(distkv_path_new(&p), 0);
			for (int d = 0; d < depths[i]; d++)
				cr_assert_eq(distkv_path_push_int(p, d), 0);
			cr_assert_eq(distkv_value_from_int(&v, ++n), 0);
			set_path(c, p, &v, NULL);
			distkv_value_clear(&v);
			cr_assert_eq(distkv_shm_get_int(s, p, &got), 0,
			    "depth %d", depths[i]);
			cr_assert_eq(got, n);
			distkv_path_free(p);
		}
	}
	distkv_close(c);
}

/* ---- kill -9 and restart ---- */

Test(shm_e2e, kill9_keeps_last_state_then_restart_remaps)
{
	distkv *c = connect_agent(), *c2;
	distkv_shm *s = shm_open_region();
	long long deadline;

	set_int(c, "a", 1);
	set_int(c, "b", 2);
	cr_assert_eq(distkv_shm_alive(s), 1);
	harness_kill9(&agent);

	/* the last state is served, and it is reported stale */
	ASSERT_SHM_INT(s, "a", 1);
	ASSERT_SHM_INT(s, "b", 2);
	cr_assert_eq(distkv_shm_alive(s), 0, "agent gone: stale");
	cr_assert_eq(distkv_shm_alive(distkv_shm_of(c)), 0);
	ASSERT_SHM_INT(s, "a", 1);
	distkv_close(c);

	/* a new agent on the same --shm path: readers re-map */
	START("--standalone", "--node", "n1");
	deadline = harness_now_ms() + 5000;
	while (distkv_shm_alive(s) != 1 && harness_now_ms() < deadline)
		usleep(2000);
	cr_assert_eq(distkv_shm_alive(s), 1, "the restarted agent is alive");
	/* no state dir: the new agent starts empty, and so does the view */
	ASSERT_SHM_MISS(s, "a");
	c2 = connect_agent();
	set_int(c2, "a", 10);
	set_int(c2, "c", 30);
	ASSERT_SHM_INT(s, "a", 10);
	ASSERT_SHM_INT(s, "c", 30);
	ASSERT_SHM_MISS(s, "b");
	cr_assert_eq(get_int(c2, "a"), 10);
	distkv_close(c2);
	distkv_shm_close(s);
}

Test(shm_e2e_own, clean_stop_then_restart_with_state)
{
	distkv *c;
	distkv_shm *s;
	long long deadline;

	START("--standalone", "--node", "n1", "--state-dir", agent.state_dir);
	c = connect_agent();
	set_int(c, "kept", 7);
	s = shm_open_region();
	cr_assert_eq(distkv_shm_alive(s), 1);
	distkv_close(c);
	cr_assert_eq(harness_stop(&agent), 0, "clean stop; stderr:\n%s",
	    agent_err());
	cr_assert_eq(distkv_shm_alive(s), 0, "closed: stale");
	ASSERT_SHM_INT(s, "kept", 7);

	/* the restored tree is in the new region before clients come */
	START("--standalone", "--node", "n1", "--state-dir", agent.state_dir);
	deadline = harness_now_ms() + 5000;
	while (distkv_shm_alive(s) != 1 && harness_now_ms() < deadline)
		usleep(2000);
	cr_assert_eq(distkv_shm_alive(s), 1);
	ASSERT_SHM_INT(s, "kept", 7);
	c = connect_agent();
	set_int(c, "kept", 8);
	ASSERT_SHM_INT(s, "kept", 8);
	distkv_close(c);
	distkv_shm_close(s);
}

/* ---- waiting ---- */

/* True once pid sleeps in a syscall (futex on x86-64), see test_shm.c. */
static bool
child_blocked(pid_t pid)
{
	char path[64], buf[256];
	FILE *f;
	bool ok = false;

	snprintf(path, sizeof(path), "/proc/%d/syscall", (int)pid);
	if ((f = fopen(path, "r")) != NULL) {
		buf[0] = '\0';
		if (fgets(buf, sizeof(buf), f) != NULL)
#if defined(__x86_64__)
			ok = strncmp(buf, "202 ", 4) == 0;
#else
			ok = buf[0] != 'r';
#endif
		fclose(f);
		if (ok || buf[0] != '\0')
			return ok;
	}
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((f = fopen(path, "r")) != NULL) {
		char *p;

		if (fgets(buf, sizeof(buf), f) != NULL &&
		    (p = strrchr(buf, ')')) != NULL)
			ok = p[1] == ' ' && p[2] == 'S';
		fclose(f);
	}
	return ok;
}

/*
 * A child maps the region and blocks in distkv_shm_wait; once it sleeps
 * in the futex, a set goes over the socket.  The child must wake (not at
 * its 5 s timeout) and see the new value at once.
 */
Test(shm_e2e, wait_wakes_on_a_socket_change)
{
	distkv *c = connect_agent();
	distkv_shm *s = distkv_shm_of(c);
	long long deadline, t0;
	int status, pfd[2];
	uint32_t counter;
	pid_t pid;
	char ch;

	set_int(c, "w", 1);
	/* nothing changes: a timeout */
	counter = distkv_shm_counter(s);
	t0 = harness_now_ms();
	cr_assert_eq(distkv_shm_wait(s, counter, 50), DISTKV_ETIMEDOUT);
	cr_assert_geq(harness_now_ms() - t0, 40);

	cr_assert_eq(pipe(pfd), 0);
	fflush(NULL);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		distkv_shm *cs = NULL;
		distkv_path *p = NULL;
		uint32_t cnt;
		int64_t i = 0;
		int rc;

		close(pfd[0]);
		alarm(20);
		if (distkv_shm_open(agent.shm, &cs) != 0 ||
		    distkv_path_parse("w", &p) != 0)
			_exit(10);
		cnt = distkv_shm_counter(cs);
		if (write(pfd[1], "x", 1) != 1)
			_exit(11);
		t0 = harness_now_ms();
		rc = distkv_shm_wait(cs, cnt, 5000);
		if (rc != 0)
			_exit(12);
		if (harness_now_ms() - t0 >= 4000)
			_exit(13);
		if (distkv_shm_get_int(cs, p, &i) != 0 || i != 2)
			_exit(14);
		_exit(0);
	}
	close(pfd[1]);
	cr_assert_eq(read(pfd[0], &ch, 1), 1, "child could not map");
	close(pfd[0]);
	deadline = harness_now_ms() + 3000;
	while (!child_blocked(pid) && harness_now_ms() < deadline)
		usleep(1000);
	cr_assert(child_blocked(pid), "the waiter never blocked");
	set_int(c, "w", 2);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status), "waiter killed by signal %d",
	    WTERMSIG(status));
	cr_assert_eq(WEXITSTATUS(status), 0, "waiter failed: %d (12: wait "
	    "error, 13: woke only at its timeout, 14: value not visible)",
	    WEXITSTATUS(status));

	/* an agent that stops wakes its waiters too */
	counter = distkv_shm_counter(s);
	cr_assert_eq(harness_stop(&agent), 0);
	t0 = harness_now_ms();
	cr_assert_eq(distkv_shm_wait(s, counter, 5000), 0);
	cr_assert_lt(harness_now_ms() - t0, 4000);
	distkv_close(c);
}

/* ---- children ---- */

struct kids {
	int n;
	char path[64][64];
	int64_t val[64];
	bool bad;
};

static int
kids_cb(void *arg, const struct distkv_entry *e)
{
	struct kids *k = arg;
	char *text = NULL;

	if (k->n >= 64 || e->path == NULL ||
	    distkv_path_format(e->path, &text) != 0 ||
	    distkv_value_get_int(e->value.data, e->value.len,
	    &k->val[k->n]) != 0) {
		k->bad = true;
		free(text);
		return 0;
	}
	snprintf(k->path[k->n], sizeof(k->path[0]), "%s", text);
	free(text);
	k->n++;
	return 0;
}

static int64_t
kids_find(const struct kids *k, const char *path)
{
	for (int i = 0; i < k->n; i++)
		if (strcmp(k->path[i], path) == 0)
			return k->val[i];
	return -1;
}

Test(shm_e2e, children_match_the_agent)
{
	distkv *c = connect_agent();
	distkv_shm *s = distkv_shm_of(c);
	struct distkv_tree_opts o = { 1, 1, 0, false };
	struct kids viashm, viasock, viachildren;
	distkv_path *p = P("a");
	char path[64];

	for (int i = 0; i < 30; i++) {
		snprintf(path, sizeof(path), "a/k%d", i);
		set_int(c, path, i);
	}
	set_int(c, "a/:5", 105);		/* an integer element */
	set_int(c, "a/x/deep", 1);		/* depth 2: not a child */
	set_int(c, "a", 1000);			/* the parent itself */
	set_int(c, "ab/k1", 1);			/* a longer first element */
	set_int(c, "b/k1", 1);
	snprintf(path, sizeof(path), "a/k%d", 3);
	{
		distkv_path *d = P(path);

		cr_assert_eq(distkv_delete(c, d, NULL, NULL), 0);
		distkv_path_free(d);
	}

	memset(&viashm, 0, sizeof(viashm));
	memset(&viasock, 0, sizeof(viasock));
	memset(&viachildren, 0, sizeof(viachildren));
	cr_assert_eq(distkv_shm_children(s, p, kids_cb, &viashm), 0);
	cr_assert_eq(distkv_get_tree(c, p, &o, kids_cb, &viasock), 0);
	cr_assert_eq(distkv_children(c, p, kids_cb, &viachildren), 0);
	cr_assert_not(viashm.bad);
	cr_assert_not(viasock.bad);
	cr_assert_eq(viashm.n, 30, "29 k's and :5, got %d", viashm.n);
	cr_assert_eq(viasock.n, viashm.n);
	cr_assert_eq(viachildren.n, viashm.n);
	for (int i = 0; i < viasock.n; i++) {
		cr_assert_eq(kids_find(&viashm, viasock.path[i]),
		    viasock.val[i], "%s", viasock.path[i]);
		cr_assert_eq(kids_find(&viachildren, viasock.path[i]),
		    viasock.val[i], "%s", viasock.path[i]);
	}
	cr_assert_eq(kids_find(&viashm, "a/:5"), 105);
	cr_assert_eq(kids_find(&viashm, "a/k3"), -1, "deleted");
	cr_assert_eq(kids_find(&viashm, "a/k29"), 29);

	/* the root's children */
	{
		distkv_path *root = P("/");

		memset(&viashm, 0, sizeof(viashm));
		cr_assert_eq(distkv_shm_children(s, root, kids_cb, &viashm), 0);
		cr_assert_eq(viashm.n, 1, "only 'a' has a value at depth 1");
		cr_assert_str_eq(viashm.path[0], "a");
		distkv_path_free(root);
	}
	distkv_path_free(p);
	distkv_close(c);
}

/*
 * Another process sets chain/0 .. chain/9 to round r, in that order, round
 * after round, over the socket.  Every children list taken meanwhile must
 * show one moment: rounds never increase along the chain and differ by at
 * most one.
 */
#define CHAIN 10

Test(shm_e2e, children_are_one_consistent_view, .timeout = 60.)
{
	distkv *c = connect_agent();
	distkv_shm *s = distkv_shm_of(c);
	distkv_path *p = P("chain");
	int lists = 0, busy = 0, status = 0, moving = 0;
	long long deadline;
	char path[64];
	pid_t pid, got;

	for (int i = 0; i < CHAIN; i++) {
		snprintf(path, sizeof(path), "chain/:%d", i);
		set_int(c, path, 0);
	}
	fflush(NULL);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		distkv *wc = NULL;

		alarm(30);
		if (distkv_connect(agent.socket, &wc) != 0)
			_exit(10);
		for (int r = 1; r <= 300; r++)
			for (int i = 0; i < CHAIN; i++) {
				struct distkv_value v;
				distkv_path *q = NULL;

				if (distkv_path_parse("chain", &q) != 0 ||
				    distkv_path_push_int(q, i) != 0 ||
				    distkv_value_from_int(&v, r) != 0 ||
				    distkv_set(wc, q, v.data, v.len, NULL,
				    NULL) != 0)
					_exit(11);
				distkv_value_clear(&v);
				distkv_path_free(q);
			}
		distkv_close(wc);
		_exit(0);
	}
	deadline = harness_now_ms() + 40000;
	while ((got = waitpid(pid, &status, WNOHANG)) == 0 &&
	    harness_now_ms() < deadline) {
		struct kids k;
		int64_t first, prev;
		int rc;

		memset(&k, 0, sizeof(k));
		rc = distkv_shm_children(s, p, kids_cb, &k);
		if (rc == DISTKV_EBUSY) {
			busy++;
			continue;
		}
		cr_assert_eq(rc, 0, "children: %s", distkv_strerror(rc));
		cr_assert_not(k.bad);
		cr_assert_eq(k.n, CHAIN);
		lists++;
		first = prev = kids_find(&k, "chain/:0");
		for (int i = 1; i < CHAIN; i++) {
			int64_t r;

			snprintf(path, sizeof(path), "chain/:%d", i);
			r = kids_find(&k, path);
			cr_assert(r <= prev && first - r <= 1,
			    "not one moment: chain/:0 = %" PRId64 ", %s = %"
			    PRId64, first, path, r);
			prev = r;
		}
		moving += first != prev;
	}
	if (got == 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		cr_assert_fail("the writer did not finish");
	}
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "writer failed (status %d)", status);
	cr_log_info("children under writes: %d lists, %d busy, %d mid-round",
	    lists, busy, moving);
	cr_assert_gt(lists, 10);
	cr_assert_gt(moving, 0, "some lists were taken in the middle of a "
	    "round (else this test shows nothing)");
	{
		struct kids k;

		memset(&k, 0, sizeof(k));
		cr_assert_eq(distkv_shm_children(s, p, kids_cb, &k), 0);
		for (int i = 0; i < CHAIN; i++)
			cr_assert_eq(k.val[i], 300);
	}
	distkv_path_free(p);
	distkv_close(c);
}

/* ---- root ---- */

Test(shm_e2e, get_after_root_reads_the_region)
{
	distkv *c = connect_agent(), *cr = connect_agent();
	struct distkv_entry e;
	distkv_path *svc = P("svc"), *web = P("web"), *nope = P("nope");
	struct kids k;
	int64_t i;
	int rc;

	set_int(c, "svc/web", 1);
	set_int(c, "svc/db", 2);
	set_int(c, "web", 99);		/* the same last element, elsewhere */
	cr_assert_eq(distkv_root(cr, svc, NULL), 0);

	distkv_set_timeout(cr, 2000);
	agent_pause();
	rc = distkv_get(cr, web, 0, &e);
	agent_resume();
	cr_assert_eq(rc, 0, "get below the root, agent stopped: %s",
	    distkv_strerror(rc));
	cr_assert_eq(distkv_value_get_int(e.value.data, e.value.len, &i), 0);
	cr_assert_eq(i, 1, "svc/web, not /web");
	distkv_entry_clear(&e);
	agent_pause();
	rc = distkv_get(cr, nope, 0, &e);
	agent_resume();
	cr_assert_eq(rc, DISTKV_ENOTFOUND, "%s", distkv_strerror(rc));
	distkv_entry_clear(&e);

	/* a change through the rooted connection, read back through it */
	set_int(cr, "web", 2);
	cr_assert_eq(get_int(cr, "web"), 2);
	cr_assert_eq(get_int(c, "svc/web"), 2);
	cr_assert_eq(get_int(c, "web"), 99);

	/* children below a root (the socket does it) */
	{
		distkv_path *root = P("/");

		memset(&k, 0, sizeof(k));
		cr_assert_eq(distkv_children(cr, root, kids_cb, &k), 0);
		cr_assert_eq(k.n, 2);
		distkv_path_free(root);
	}
	distkv_path_free(svc);
	distkv_path_free(web);
	distkv_path_free(nope);
	distkv_close(cr);
	distkv_close(c);
}

/* ---- growth under a mapped reader ---- */

Test(shm_e2e, region_growth_through_the_agent)
{
	distkv *c = connect_agent();
	distkv_shm *s = shm_open_region();
	struct shm_reader *r = NULL;
	struct shm_reader_info info;
	char path[64];

	uint64_t changes0;

	cr_assert_eq(shm_reader_open(agent.shm, &r), 0);
	changes0 = distkv_shm_changes(s);
	for (int i = 0; i < 1500; i++) {
		snprintf(path, sizeof(path), "g/%d", i);
		set_int(c, path, i);
	}
	for (int i = 0; i < 1500; i++) {
		snprintf(path, sizeof(path), "g/%d", i);
		ASSERT_SHM_INT(s, path, i);
	}
	shm_reader_info(r, &info);
	cr_assert_gt(info.generation, 1, "the region was replaced");
	cr_assert_eq(info.live_entries, 1500);
	cr_assert_eq(info.agent_pid, (uint32_t)agent.pid);
	cr_assert_eq(distkv_shm_alive(s), 1);
	/* a poller of the change count follows the replacements */
	cr_assert_geq(distkv_shm_changes(s), changes0 + 1500);

	/*
	 * The connection mapped the first region; distkv_get must follow
	 * the replacement and still read the region, not fall back to the
	 * socket for good.
	 */
	{
		struct distkv_entry e;
		distkv_path *p = P("g/1234");
		int64_t i = 0;
		int rc;

		distkv_set_timeout(c, 2000);
		agent_pause();
		rc = distkv_get(c, p, 0, &e);
		agent_resume();
		cr_assert_eq(rc, 0, "get after growth, agent stopped: %s",
		    distkv_strerror(rc));
		cr_assert_eq(distkv_value_get_int(e.value.data, e.value.len,
		    &i), 0);
		cr_assert_eq(i, 1234);
		distkv_entry_clear(&e);
		distkv_path_free(p);
	}
	shm_reader_close(r);
	distkv_shm_close(s);
	distkv_close(c);
}
