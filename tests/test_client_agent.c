/*
 * Tests for libdistkv end to end through a real distkv-agent
 * (tests/harness): the calls, watches, the region read path, prepared
 * keys and typed getters.  The scripted stand-in agent's tests are in
 * test_client.c.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "clienttest.h"
#include "distkv.h"
#include "harness.h"
#include "proto.h"
#include "rawclient.h"

static struct harness_agent agent;

static void
agent_setup(void)
{
	harness_init(&agent);
	if (access(harness_bin("distkv-agent"), X_OK) != 0)
		cr_skip_test("distkv-agent not built");
	RC_START(&agent, "--standalone", "--node", "n1");
}

static void
agent_teardown(void)
{
	harness_cleanup(&agent);
}

static distkv *
agent_connect(void)
{
	distkv *c = NULL;
	int rc = distkv_connect(agent.socket, &c);

	cr_assert_eq(rc, 0, "connect: %s", distkv_strerror(rc));
	distkv_set_timeout(c, 5000);
	return c;
}

static void
set_int(distkv *c, const char *path, int64_t i)
{
	struct distkv_value v;
	distkv_path *p = P(path);
	int rc;

	cr_assert_eq(distkv_value_from_int(&v, i), 0);
	rc = distkv_set(c, p, v.data, v.len, NULL, NULL);
	cr_assert_eq(rc, 0, "set %s: %s (%s)", path, distkv_strerror(rc),
	    distkv_errmsg(c));
	distkv_value_clear(&v);
	distkv_path_free(p);
}

static int64_t
get_int(distkv *c, const char *path)
{
	struct distkv_entry e;
	distkv_path *p = P(path);
	int64_t i;
	int rc;

	rc = distkv_get(c, p, 0, &e);
	cr_assert_eq(rc, 0, "get %s: %s", path, distkv_strerror(rc));
	cr_assert_eq(distkv_value_get_int(e.value.data, e.value.len, &i), 0);
	distkv_entry_clear(&e);
	distkv_path_free(p);
	return i;
}

TestSuite(agent, .init = agent_setup, .fini = agent_teardown, .timeout = 30.);

Test(agent, greeting)
{
	distkv *c = agent_connect();

	cr_assert_str_eq(distkv_node(c), "n1");
	distkv_close(c);
}

Test(agent, set_get_preconditions)
{
	struct distkv_set_opts o;
	struct distkv_set_result r;
	struct distkv_value v, w;
	struct distkv_entry e;
	distkv_path *p = P("test");
	distkv *c = agent_connect();
	int64_t i;
	int rc;

	rc = distkv_get(c, p, 3, &e);
	cr_assert_eq(rc, DISTKV_ENOTFOUND, "%s", distkv_strerror(rc));
	cr_assert_gt(e.tock, 0);
	distkv_entry_clear(&e);

	memset(&o, 0, sizeof(o));
	o.pre = DISTKV_PRE_NEW;
	o.nchain = 2;
	cr_assert_eq(distkv_value_from_int(&v, 1234), 0);
	rc = distkv_set(c, p, v.data, v.len, &o, &r);
	cr_assert_eq(rc, 0, "%s: %s", distkv_strerror(rc), distkv_errmsg(c));
	cr_assert(r.changed);
	cr_assert_eq(r.chain.n, 1);
	cr_assert(r.chain.complete);
	cr_assert_str_eq(r.chain.ev[0].node, "n1");
	cr_assert_gt(r.chain.ev[0].tick, 0);
	cr_assert_gt(r.tock, 0);

	/* spec §2.7: chain nil on an existing entry */
	cr_assert_eq(distkv_set(c, p, v.data, v.len, &o, NULL),
	    DISTKV_ECONFLICT);
	cr_assert_str_eq(distkv_errmsg(c), "This entry already exists");

	/* right chain head */
	o.pre = DISTKV_PRE_CHAIN;
	o.chain_head = r.chain.ev[0];
	o.nchain = -1;
	cr_assert_eq(distkv_value_from_int(&w, 123), 0);
	rc = distkv_set(c, p, w.data, w.len, &o, NULL);
	cr_assert_eq(rc, 0, "%s: %s", distkv_strerror(rc), distkv_errmsg(c));
	/* the same head is stale now */
	cr_assert_eq(distkv_set(c, p, w.data, w.len, &o, NULL),
	    DISTKV_ECONFLICT);
	cr_assert(strncmp(distkv_errmsg(c), "Chain is", 8) == 0, "%s",
	    distkv_errmsg(c));
	distkv_set_result_clear(&r);

	/* prev mismatch */
	memset(&o, 0, sizeof(o));
	o.prev = v.data;	/* 1234, but 123 is stored */
	o.prev_len = v.len;
	o.nchain = -1;
	cr_assert_eq(distkv_set(c, p, v.data, v.len, &o, NULL),
	    DISTKV_ECONFLICT);
	cr_assert(strncmp(distkv_errmsg(c), "Data is", 7) == 0, "%s",
	    distkv_errmsg(c));

	/* no precondition: prev reported (spec §2.5.2 step 6) */
	rc = distkv_set(c, p, v.data, v.len, NULL, &r);
	cr_assert_eq(rc, 0);
	cr_assert(r.changed);
	cr_assert(r.has_prev);
	cr_assert_eq(distkv_value_get_int(r.prev.data, r.prev.len, &i), 0);
	cr_assert_eq(i, 123);
	distkv_set_result_clear(&r);
	cr_assert_eq(get_int(c, "test"), 1234);

	/* get with a chain */
	cr_assert_eq(distkv_get(c, p, 2, &e), 0);
	cr_assert_eq(e.chain.n, 1);
	cr_assert_str_eq(e.chain.ev[0].node, "n1");
	distkv_entry_clear(&e);

	/* delete: a tombstone, then not found */
	rc = distkv_delete(c, p, NULL, &r);
	cr_assert_eq(rc, 0, "%s: %s", distkv_strerror(rc), distkv_errmsg(c));
	cr_assert(r.changed);
	distkv_set_result_clear(&r);
	cr_assert_eq(distkv_get(c, p, 0, &e), DISTKV_ENOTFOUND);
	distkv_entry_clear(&e);

	distkv_value_clear(&v);
	distkv_value_clear(&w);
	distkv_path_free(p);
	distkv_close(c);
}

Test(agent, get_tree_spec_example)
{
	static const char *want[] = {
		"test", "test/foo", "test/foo/bap", "test/foo/bar/baz",
	};
	static const int64_t val[] = { 1234, 123, 12, 1 };
	static const int depth[] = { 0, 1, 2, 3 };
	struct items it = { 0 };
	distkv_path *p = P("test");
	distkv *c = agent_connect();
	int i, rc;

	set_int(c, "test", 1234);
	set_int(c, "test/foo", 123);
	set_int(c, "test/foo/bap", 12);
	set_int(c, "test/foo/bar/baz", 1);
	set_int(c, "other", 9);
	rc = distkv_get_tree(c, p, NULL, item_fn, &it);
	cr_assert_eq(rc, 0, "%s: %s", distkv_strerror(rc), distkv_errmsg(c));
	cr_assert_eq(it.n, 4);
	for (i = 0; i < 4; i++) {
		cr_expect_str_eq(it.path[i], want[i]);
		cr_expect_eq(it.val[i], val[i]);
		cr_expect_eq(it.depth[i], depth[i]);
	}
	items_free(&it);

	/* a callback returning non-zero stops early; the handle stays usable */
	memset(&it, 0, sizeof(it));
	it.stop_after = 2;
	cr_assert_eq(distkv_get_tree(c, p, NULL, item_fn, &it), 0);
	cr_assert_eq(it.n, 2);
	items_free(&it);
	cr_assert_eq(get_int(c, "other"), 9);

	/* depth window */
	memset(&it, 0, sizeof(it));
	struct distkv_tree_opts o = { 1, 1, 0, false };
	cr_assert_eq(distkv_get_tree(c, p, &o, item_fn, &it), 0);
	cr_assert_eq(it.n, 1);
	cr_assert_str_eq(it.path[0], "test/foo");
	items_free(&it);
	distkv_path_free(p);
	distkv_close(c);
}

Test(agent, async_watch_sees_other_connection_then_cancel)
{
	struct distkv_tree_opts o = { 0, -1, 1, true };
	struct wstate w = { 0 };
	distkv_path *p = P("w");
	distkv *c = agent_connect(), *c2 = agent_connect();
	long long deadline;
	uint64_t seq;

	set_int(c2, "w/old", 1);
	cr_assert_eq(distkv_async_watch(c, p, &o, watch_cb, &w, &seq), 0);
	deadline = harness_now_ms() + 5000;
	while (w.uptodate == 0) {
		struct pollfd pfd = { distkv_fd(c), (short)(POLLIN |
		    (distkv_want_write(c) ? POLLOUT : 0)), 0 };

		cr_assert_lt(harness_now_ms(), deadline, "no uptodate");
		poll(&pfd, 1, 100);
		cr_assert_eq(distkv_process(c), 0);
	}
	cr_assert_eq(w.items, 2, "fetch: w (no value) and w/old");
	free(w.first);
	w.first = NULL;
	w.items = 0;
	set_int(c2, "w/new/x", 2);
	deadline = harness_now_ms() + 5000;
	while (w.items == 0) {
		struct pollfd pfd = { distkv_fd(c), (short)(POLLIN |
		    (distkv_want_write(c) ? POLLOUT : 0)), 0 };

		cr_assert_lt(harness_now_ms(), deadline, "no live item");
		poll(&pfd, 1, 100);
		cr_assert_eq(distkv_process(c), 0);
	}
	cr_assert_str_eq(w.first, "w/new/x");
	cr_assert_eq(distkv_cancel(c, seq), 0);
	pump_until(c, &w.ended, 5000);
	cr_assert_eq(w.rc, DISTKV_ECANCELLED);
	/* the handle still works after the cancel */
	cr_assert_eq(get_int(c, "w/new/x"), 2);
	free(w.first);
	distkv_path_free(p);
	distkv_close(c);
	distkv_close(c2);
}

/* What an async set or delete callback saw of its borrowed result. */
struct setseen {
	int calls, rc;
	bool called, changed, has_prev;
	uint8_t prev[600];
	size_t prev_len;
	uint64_t tock;
};

static void
setseen_cb(void *arg, int rc, const struct distkv_set_result *r)
{
	struct setseen *s = arg;

	s->calls++;
	s->called = true;
	s->rc = rc;
	if (r == NULL)
		return;
	s->changed = r->changed;
	s->has_prev = r->has_prev;
	s->tock = r->tock;
	s->prev_len = r->prev.len;
	if (r->has_prev && r->prev.len <= sizeof(s->prev))
		memcpy(s->prev, r->prev.data, r->prev.len);
}

static void
async_set_wait(distkv *c, const distkv_path *p, const struct distkv_value *v,
    struct setseen *s)
{
	memset(s, 0, sizeof(*s));
	if (v != NULL)
		cr_assert_eq(distkv_async_set(c, p, v->data, v->len, NULL,
		    setseen_cb, s, NULL), 0);
	else
		cr_assert_eq(distkv_async_delete(c, p, NULL, setseen_cb, s,
		    NULL), 0);
	pump_until(c, &s->called, 5000);
	cr_assert_eq(s->calls, 1);
	cr_assert_eq(s->rc, 0, "%s", distkv_strerror(s->rc));
}

/* The async set/delete result (borrowed for the callback) carries the
 * previous value: short, longer than the library's stack buffer, none. */
Test(agent, async_set_reports_prev)
{
	distkv *c = agent_connect();
	distkv_path *p = P("as/key");
	struct distkv_value v1, v2, v3;
	struct setseen s;
	char big[500];
	uint64_t tock;

	memset(big, 'b', sizeof(big));
	cr_assert_eq(distkv_value_from_int(&v1, 41), 0);
	cr_assert_eq(distkv_value_from_str(&v2, big, sizeof(big)), 0);
	cr_assert_eq(distkv_value_from_str(&v3, "short", 5), 0);
	async_set_wait(c, p, &v1, &s);
	cr_assert(s.changed);
	cr_assert_not(s.has_prev && s.prev_len > 1, "a new key has no prev");
	tock = s.tock;
	async_set_wait(c, p, &v2, &s);
	cr_assert(s.changed && s.has_prev);
	cr_assert_gt(s.tock, tock);
	cr_assert_eq(s.prev_len, v1.len);
	cr_assert_arr_eq(s.prev, v1.data, v1.len);
	async_set_wait(c, p, &v3, &s);
	cr_assert(s.has_prev);
	cr_assert_eq(s.prev_len, v2.len);
	cr_assert_arr_eq(s.prev, v2.data, v2.len);
	async_set_wait(c, p, &v3, &s);
	cr_assert_not(s.changed);
	cr_assert_eq(s.prev_len, v3.len);
	cr_assert_arr_eq(s.prev, v3.data, v3.len);
	async_set_wait(c, p, NULL, &s);
	cr_assert(s.changed && s.has_prev);
	cr_assert_arr_eq(s.prev, v3.data, v3.len);
	distkv_value_clear(&v1);
	distkv_value_clear(&v2);
	distkv_value_clear(&v3);
	distkv_path_free(p);
	distkv_close(c);
}

Test(agent, sync_watch_stop_and_timeout)
{
	struct distkv_tree_opts o = { 0, -1, 0, true };
	struct items it = { 0 };
	distkv_path *p = P("sw");
	distkv *c = agent_connect();
	long long t0, dt;

	set_int(c, "sw/a", 1);
	set_int(c, "sw/b", 2);
	/* stop at the second fetched item */
	it.stop_after = 2;
	cr_assert_eq(distkv_watch(c, p, &o, 5000, item_fn, &it), 0);
	cr_assert_eq(it.n, 2);
	items_free(&it);

	/* nothing changes: the watch times out */
	memset(&it, 0, sizeof(it));
	o.fetch = false;
	t0 = harness_now_ms();
	cr_assert_eq(distkv_watch(c, p, &o, 200, item_fn, &it),
	    DISTKV_ETIMEDOUT);
	dt = harness_now_ms() - t0;
	cr_assert_geq(dt, 190);
	cr_assert_lt(dt, 3000);
	cr_assert_eq(it.n, 0);
	cr_assert_eq(get_int(c, "sw/b"), 2);
	distkv_path_free(p);
	distkv_close(c);
}

Test(agent, delete_tree_state_event_root)
{
	struct distkv_value st;
	struct distkv_entry e;
	struct distkv_set_result r;
	struct distkv_value v;
	distkv_path *p = P("dt"), *q = P("ev/x");
	distkv *c = agent_connect();
	char *s;
	uint64_t n;
	int rc;

	set_int(c, "dt/a", 1);
	set_int(c, "dt/a/b", 2);
	set_int(c, "dt/c", 3);
	rc = distkv_delete_tree(c, p, &n);
	cr_assert_eq(rc, 0, "%s: %s", distkv_strerror(rc), distkv_errmsg(c));
	cr_assert_eq(n, 3);

	rc = distkv_state(c, DISTKV_STATE_NODES, &st);
	cr_assert_eq(rc, 0, "%s: %s", distkv_strerror(rc), distkv_errmsg(c));
	cr_assert_gt(st.len, 0);
	/* {nodes: {n1: tick}} and nothing else */
	cr_assert_eq(st.data[0], 0x81);
	cr_assert(memmem(st.data, st.len, "\xa2n1", 3) != NULL);
	distkv_value_clear(&st);

	cr_assert_eq(distkv_value_from_int(&v, 7), 0);
	cr_assert_eq(distkv_set(c, q, v.data, v.len, NULL, &r), 0);
	cr_assert_eq(r.chain.n, 1);
	rc = distkv_get_event(c, "n1", r.chain.ev[0].tick, 0, &e);
	cr_assert_eq(rc, 0, "%s: %s", distkv_strerror(rc), distkv_errmsg(c));
	cr_assert_not_null(e.path);
	s = fmt_path(e.path);
	cr_assert_str_eq(s, "ev/x");
	free(s);
	distkv_entry_clear(&e);
	distkv_set_result_clear(&r);
	distkv_value_clear(&v);

	/* chroot: paths become relative */
	distkv_path_free(p);
	p = P("ev");
	rc = distkv_root(c, p, &e);
	cr_assert_eq(rc, 0, "%s: %s", distkv_strerror(rc), distkv_errmsg(c));
	distkv_entry_clear(&e);
	cr_assert_eq(get_int(c, "x"), 7);
	distkv_path_free(p);
	distkv_path_free(q);
	distkv_close(c);
}

Test(agent, unknown_action_raw)
{
	distkv *c = agent_connect();
	uint8_t *b;
	size_t n;
	int calls = 0;

	cr_assert_eq(rc_build(&b, &n, "{action:'no_such_action'}"), 0);
	cr_assert_eq(distkv_request(c, b, n, raw_fn, &calls), DISTKV_EBADREQ);
	cr_assert_eq(calls, 1);
	cr_assert_neq(distkv_errmsg(c)[0], '\0');
	free(b);
	cr_assert_eq(rc_build(&b, &n, "{action:'get_value', path:['none']}"),
	    0);
	calls = 0;
	cr_assert_eq(distkv_request(c, b, n, raw_fn, &calls), 0);
	cr_assert_eq(calls, 1);
	free(b);
	distkv_close(c);
}

Test(agent, agent_death_disconnects)
{
	struct distkv_entry e;
	struct wstate w = { 0 };
	struct distkv_tree_opts o = { 0, -1, 0, false };
	distkv_path *p = P("x");
	distkv *c;

	/*
	 * Reads through shm keep serving the last state for up to a second
	 * after a kill -9 (docs/shm.md); this test is about the socket.
	 */
	setenv("DISTKV_NO_SHM", "1", 1);
	c = agent_connect();
	set_int(c, "x", 1);
	cr_assert_eq(distkv_async_watch(c, p, &o, watch_cb, &w, NULL), 0);
	harness_kill9(&agent);
	cr_assert_eq(distkv_get(c, p, 0, &e), DISTKV_EDISCONNECTED);
	cr_assert(w.ended, "a pending watch hears about it");
	cr_assert_eq(w.rc, DISTKV_EDISCONNECTED);
	cr_assert_eq(distkv_get(c, p, 0, &e), DISTKV_EDISCONNECTED);
	cr_assert_str_eq(distkv_strerror(DISTKV_EDISCONNECTED),
	    "connection to the agent lost; reconnect");
	distkv_path_free(p);
	distkv_close(c);
}

/*
 * Every refusal of a known kind has its own code, from a real agent; the
 * text stays in distkv_errmsg but no caller needs it.
 */
Test(agent, typed_errors)
{
	struct distkv_set_opts o;
	struct distkv_value v;
	struct distkv_entry e;
	struct items it;
	distkv_path *p = P("k");
	distkv *c = agent_connect(), *k;
	char big[PROTO_MAX_ELEM_BYTES + 2];
	uint8_t *b;
	size_t n;
	int calls = 0;

	/* a precondition: DISTKV_ECONFLICT, for each of its four texts */
	set_int(c, "k", 1);
	memset(&o, 0, sizeof(o));
	o.pre = DISTKV_PRE_NEW;
	o.nchain = -1;
	cr_assert_eq(distkv_value_from_int(&v, 2), 0);
	cr_assert_eq(distkv_set(c, p, v.data, v.len, &o, NULL),
	    DISTKV_ECONFLICT);
	o.pre = DISTKV_PRE_CHAIN;
	snprintf(o.chain_head.node, sizeof(o.chain_head.node), "n1");
	o.chain_head.tick = 999999;
	cr_assert_eq(distkv_set(c, p, v.data, v.len, &o, NULL),
	    DISTKV_ECONFLICT);
	o.pre = DISTKV_PRE_NONE;
	o.prev = v.data;	/* 2, but 1 is stored */
	o.prev_len = v.len;
	cr_assert_eq(distkv_delete(c, p, &o, NULL), DISTKV_ECONFLICT);
	o.prev = NULL;
	o.pre = DISTKV_PRE_CHAIN;
	distkv_path_free(p);
	p = P("never/set");
	cr_assert_eq(distkv_delete(c, p, &o, NULL), DISTKV_ECONFLICT);
	cr_assert_str_eq(distkv_errmsg(c), "This entry is new");

	/* not found: a path without a value, an unknown node or change */
	memset(&e, 0, sizeof(e));
	cr_assert_eq(distkv_get(c, p, 0, &e), DISTKV_ENOTFOUND);
	distkv_entry_clear(&e);
	cr_assert_eq(distkv_get(c, p, 2, &e), DISTKV_ENOTFOUND);
	distkv_entry_clear(&e);
	cr_assert_eq(distkv_get_event(c, "nobody", 1, 0, &e),
	    DISTKV_ENOTFOUND);
	cr_assert_eq(distkv_get_event(c, "n1", 999999, 0, &e),
	    DISTKV_ENOTFOUND);

	/* a bad request: no path, an unknown action */
	cr_assert_eq(rc_build(&b, &n, "{action:'get_value'}"), 0);
	cr_assert_eq(distkv_request(c, b, n, raw_fn, &calls), DISTKV_EBADREQ);
	free(b);
	cr_assert_eq(rc_build(&b, &n, "{action:'frobnicate'}"), 0);
	cr_assert_eq(distkv_request(c, b, n, raw_fn, &calls), DISTKV_EBADREQ);
	free(b);

	/* over the agent's limits (the library refuses them itself, so
	 * they go raw): a path too deep, an element too long */
	{
		char req[64 + 8 * (PROTO_MAX_PATH_DEPTH + 1)];
		size_t off;

		off = (size_t)snprintf(req, sizeof(req),
		    "{action:'get_value', path:[");
		for (int i = 0; i <= PROTO_MAX_PATH_DEPTH; i++)
			off += (size_t)snprintf(req + off, sizeof(req) - off,
			    "%s%d", i > 0 ? "," : "", i);
		snprintf(req + off, sizeof(req) - off, "]}");
		cr_assert_eq(rc_build(&b, &n, "%s", req), 0);
		cr_assert_eq(distkv_request(c, b, n, raw_fn, &calls),
		    DISTKV_ETOOLARGE, "%s", distkv_errmsg(c));
		free(b);
	}
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	cr_assert_eq(rc_build(&b, &n, "{action:'get_value', path:['%s']}",
	    big), 0);
	cr_assert_eq(distkv_request(c, b, n, raw_fn, &calls),
	    DISTKV_ETOOLARGE, "%s", distkv_errmsg(c));
	free(b);

	/* a timeout of ours */
	memset(&it, 0, sizeof(it));
	cr_assert_eq(distkv_watch(c, p, NULL, 50, item_fn, &it),
	    DISTKV_ETIMEDOUT);
	items_free(&it);

	/* not allowed: no login where one is required, a wrong password */
	cr_assert_eq(distkv_auth_add_password(c, "ann", "s3cret!"), 0, "%s",
	    distkv_errmsg(c));
	cr_assert_eq(distkv_auth_add_password(c, "ann", "x"),
	    DISTKV_ECONFLICT);
	cr_assert_eq(distkv_auth_set_method(c, "password"), 0, "%s",
	    distkv_errmsg(c));
	cr_assert_eq(distkv_connect(agent.socket, &k), 0);
	distkv_set_timeout(k, 5000);
	cr_assert_eq(distkv_get(k, p, 0, &e), DISTKV_EDENIED, "%s",
	    distkv_errmsg(k));
	cr_assert_eq(distkv_login_password(k, "ann", "wrong"),
	    DISTKV_EDENIED);
	cr_assert_eq(distkv_login_password(k, "bob", "s3cret!"),
	    DISTKV_EDENIED, "an unknown user looks like a wrong password");
	distkv_close(k);

	/* every code has its own words */
	static const int codes[] = { DISTKV_ENOTFOUND, DISTKV_EPROTO,
	    DISTKV_EDISCONNECTED, DISTKV_ESERVER, DISTKV_EINVAL,
	    DISTKV_ETOOSMALL, DISTKV_ETYPE, DISTKV_ECANCELLED,
	    DISTKV_ECONNECT, DISTKV_ETIMEDOUT, DISTKV_EBUSY, DISTKV_ECORRUPT,
	    DISTKV_ESTALE, DISTKV_ETLS, DISTKV_ECONFLICT, DISTKV_EDENIED,
	    DISTKV_EBADREQ, DISTKV_ENOTREADY, DISTKV_ETOOLARGE };
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		cr_assert_str_neq(distkv_strerror(codes[i]), "unknown error");
		for (size_t j = 0; j < i; j++)
			cr_assert_str_neq(distkv_strerror(codes[i]),
			    distkv_strerror(codes[j]));
		cr_assert_eq(DISTKV_IS_REFUSAL(codes[i]),
		    codes[i] == DISTKV_ESERVER || (codes[i] <=
		    DISTKV_ECONFLICT && codes[i] >= DISTKV_ETOOLARGE));
	}
	cr_assert_eq(DISTKV_ECONFLICT, -1014, "public values never move");
	cr_assert_eq(DISTKV_ETLS, -1013);

	distkv_value_clear(&v);
	distkv_path_free(p);
	distkv_close(c);
}

static void
set_str(distkv *c, const char *path, const char *str, size_t len)
{
	struct distkv_value v;
	distkv_path *p = P(path);
	int rc;

	cr_assert_eq(distkv_value_from_str(&v, str, len), 0);
	rc = distkv_set(c, p, v.data, v.len, NULL, NULL);
	cr_assert_eq(rc, 0, "set %s: %s (%s)", path, distkv_strerror(rc),
	    distkv_errmsg(c));
	distkv_value_clear(&v);
	distkv_path_free(p);
}

static ino_t
region_ino(void)
{
	struct stat st;

	cr_assert_eq(stat(agent.shm, &st), 0, "%s", agent.shm);
	return st.st_ino;
}

/*
 * A prepared key reads what a path reads, through every typed getter;
 * it outlives the region it was first used on (the agent grows its
 * region into a new file) and reports a deleted entry as not found.
 */
Test(agent, prepared_key)
{
	struct distkv_value v;
	distkv *c = agent_connect();
	distkv_shm *s;
	distkv_key *ka, *ks, *kd, *kb, *knone;
	distkv_path *pa = P("pk/a"), *ps = P("pk/s");
	char str[64], big[32768];
	uint8_t raw[64], raw2[64];
	size_t len, len2;
	int64_t i;
	double d;
	bool b;
	ino_t ino;
	int n;

	set_int(c, "pk/a", 42);
	set_str(c, "pk/s", "hello", 5);
	cr_assert_eq(distkv_value_from_double(&v, 1.5), 0);
	distkv_path_truncate(pa, 1);	/* pk/d, pk/b through pa */
	cr_assert_eq(distkv_path_push_str(pa, "d", 1), 0);
	cr_assert_eq(distkv_set(c, pa, v.data, v.len, NULL, NULL), 0);
	distkv_value_clear(&v);
	cr_assert_eq(distkv_value_from_bool(&v, true), 0);
	distkv_path_truncate(pa, 1);
	cr_assert_eq(distkv_path_push_str(pa, "b", 1), 0);
	cr_assert_eq(distkv_set(c, pa, v.data, v.len, NULL, NULL), 0);
	distkv_value_clear(&v);
	distkv_path_truncate(pa, 1);
	cr_assert_eq(distkv_path_push_str(pa, "a", 1), 0);
	s = distkv_shm_of(c);
	cr_assert_not_null(s, "the agent's region is mapped");

	cr_assert_eq(distkv_key_new(pa, &ka), 0);
	cr_assert_eq(distkv_key_parse("pk/s", &ks), 0);
	cr_assert_eq(distkv_key_parse("pk/d", &kd), 0);
	cr_assert_eq(distkv_key_parse("pk/b", &kb), 0);
	cr_assert_eq(distkv_key_parse("pk/none", &knone), 0);
	cr_assert_eq(distkv_key_parse("pk//x", &knone), DISTKV_EINVAL);
	cr_assert_null(knone);
	cr_assert_eq(distkv_key_parse("pk/none", &knone), 0);

	/* every getter, and the same bytes as a read by path */
	cr_assert_eq(distkv_key_get_int(s, ka, &i), 0);
	cr_assert_eq(i, 42);
	cr_assert_eq(distkv_key_get_str(s, ks, str, sizeof(str)), 0);
	cr_assert_str_eq(str, "hello");
	cr_assert_eq(distkv_key_get_double(s, kd, &d), 0);
	cr_assert(d == 1.5);
	cr_assert_eq(distkv_key_get_bool(s, kb, &b), 0);
	cr_assert(b);
	cr_assert_eq(distkv_key_get(s, ks, raw, sizeof(raw), &len, NULL), 0);
	cr_assert_eq(distkv_shm_get(s, ps, raw2, sizeof(raw2), &len2, NULL),
	    0);
	cr_assert_eq(len, len2);
	cr_assert_arr_eq(raw, raw2, len);
	cr_assert_eq(distkv_key_get(s, knone, raw, sizeof(raw), &len, NULL),
	    DISTKV_ENOTFOUND);
	/* types and sizes: a string in 6 bytes, not 5; not an int */
	cr_assert_eq(distkv_key_get_str(s, ks, str, 5), DISTKV_ETOOSMALL);
	cr_assert_eq(distkv_key_get_str(s, ks, str, 6), 0);
	cr_assert_str_eq(str, "hello");
	cr_assert_eq(distkv_key_get_int(s, ks, &i), DISTKV_ETYPE);
	cr_assert_eq(distkv_key_get_str(s, ka, str, sizeof(str)),
	    DISTKV_ETYPE);
	cr_assert_eq(distkv_key_get(s, ks, raw, 3, &len, NULL),
	    DISTKV_ETOOSMALL);
	cr_assert_eq(len, 6, "the size needed");

	/*
	 * big values churn the arena until the agent builds a new region:
	 * each a little longer than the last, so that no old value's space
	 * (which the agent reuses) holds it
	 */
	ino = region_ino();
	memset(big, 'a', sizeof(big));
	for (n = 0; n < 1000 && region_ino() == ino; n++) {
		big[0] = (char)('a' + n % 26);
		set_str(c, "pk/big", big, sizeof(big) / 2 + 16 * (size_t)n);
	}
	cr_assert_neq(region_ino(), ino, "no new region after %d big sets", n);
	/* the old keys read the new region, old values and new ones */
	cr_assert_eq(distkv_key_get_int(s, ka, &i), 0);
	cr_assert_eq(i, 42);
	set_int(c, "pk/a", 43);
	cr_assert_eq(distkv_key_get_int(s, ka, &i), 0);
	cr_assert_eq(i, 43);
	cr_assert_eq(distkv_key_get_str(s, ks, str, sizeof(str)), 0);
	cr_assert_str_eq(str, "hello");

	/* a deleted entry: not found, and found again once set */
	cr_assert_eq(distkv_delete(c, pa, NULL, NULL), 0);
	cr_assert_eq(distkv_key_get_int(s, ka, &i), DISTKV_ENOTFOUND);
	cr_assert_eq(distkv_shm_get_int(s, pa, &i), DISTKV_ENOTFOUND);
	set_int(c, "pk/a", 44);
	cr_assert_eq(distkv_key_get_int(s, ka, &i), 0);
	cr_assert_eq(i, 44);

	distkv_key_free(ka);
	distkv_key_free(ks);
	distkv_key_free(kd);
	distkv_key_free(kb);
	distkv_key_free(knone);
	distkv_path_free(pa);
	distkv_path_free(ps);
	distkv_close(c);
}

/*
 * A path keeps its region key (and hash) for reads by path: a path that
 * is changed after a read reads its new key, a path too long for the
 * cache reads through an encoding each time, and both keep working on
 * a region the agent rebuilt (a new file); distkv_get by such paths
 * returns the region's values (and nil / not found for a deleted one)
 * with no chain, and a value too big for its first buffer too.
 */
Test(agent, path_cache_follows_the_path)
{
	distkv *c = agent_connect();
	struct distkv_entry e;
	distkv_shm *s;
	distkv_path *p = P("pc/a/x"), *lp;
	char longname[200], big[32768], str[64];
	size_t blen = 0;
	int64_t i;
	ino_t ino;
	int n;

	set_int(c, "pc/a", 1);
	set_int(c, "pc/b", 2);
	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	cr_assert_eq(distkv_path_new(&lp), 0);
	cr_assert_eq(distkv_path_push_str(lp, "pc", 2), 0);
	cr_assert_eq(distkv_path_push_str(lp, longname, strlen(longname)),
	    0);
	{
		struct distkv_value v;

		cr_assert_eq(distkv_value_from_str(&v, "long", 4), 0);
		cr_assert_eq(distkv_set(c, lp, v.data, v.len, NULL, NULL), 0);
		distkv_value_clear(&v);
	}
	s = distkv_shm_of(c);
	cr_assert_not_null(s, "the agent's region is mapped");

	for (int round = 0; round < 2; round++) {
		/* a (re)built path: a/x, a (shortened), b, none, a again */
		cr_assert_eq(distkv_shm_get_int(s, p, &i), DISTKV_ENOTFOUND);
		distkv_path_truncate(p, 1);
		cr_assert_eq(distkv_shm_get_int(s, p, &i), 0);
		cr_assert_eq(i, 1);
		cr_assert_eq(distkv_get(c, p, 0, &e), 0);
		cr_assert_eq(distkv_value_get_int(e.value.data, e.value.len,
		    &i), 0);
		cr_assert_eq(i, 1);
		cr_assert_eq(e.chain.n, 0);
		cr_assert_null(e.path);
		distkv_entry_clear(&e);
		cr_assert_null(e.value.data);
		distkv_path_truncate(p, 1);
		cr_assert_eq(distkv_path_push_str(p, "b", 1), 0);
		cr_assert_eq(distkv_shm_get_int(s, p, &i), 0);
		cr_assert_eq(i, 2, "the cached key follows the path");
		cr_assert_eq(distkv_get(c, p, 0, &e), 0);
		cr_assert_eq(distkv_value_get_int(e.value.data, e.value.len,
		    &i), 0);
		cr_assert_eq(i, 2);
		distkv_entry_clear(&e);
		distkv_path_truncate(p, 1);
		cr_assert_eq(distkv_path_push_str(p, "none", 4), 0);
		cr_assert_eq(distkv_shm_get_int(s, p, &i), DISTKV_ENOTFOUND);
		cr_assert_eq(distkv_get(c, p, 0, &e), DISTKV_ENOTFOUND);
		cr_assert(distkv_value_is_nil(e.value.data, e.value.len));
		distkv_entry_clear(&e);
		distkv_path_truncate(p, 1);
		cr_assert_eq(distkv_path_push_str(p, "a", 1), 0);
		/* a key longer than the path's cache */
		cr_assert_eq(distkv_shm_get_str(s, lp, str, sizeof(str)), 0);
		cr_assert_str_eq(str, "long");
		cr_assert_eq(distkv_get(c, lp, 0, &e), 0);
		cr_assert_eq(e.value.len, 5);
		cr_assert_arr_eq(e.value.data, "\xa4long", 5);
		distkv_entry_clear(&e);
		if (round == 1)
			break;
		cr_assert_eq(distkv_path_push_str(p, "x", 1), 0);
		/* big values: distkv_get's second buffer, and a new region
		 * (growing values: the agent reuses an old value's space) */
		ino = region_ino();
		memset(big, 'a', sizeof(big));
		for (n = 0; n < 1000 && region_ino() == ino; n++) {
			big[0] = (char)('a' + n % 26);
			blen = sizeof(big) / 2 + 16 * (size_t)n;
			set_str(c, "pc/big", big, blen);
		}
		cr_assert_neq(region_ino(), ino, "no new region after %d big "
		    "sets", n);
		{
			distkv_path *bp = P("pc/big");

			cr_assert_eq(distkv_get(c, bp, 0, &e), 0);
			cr_assert_eq(e.value.len, 3 + blen);
			cr_assert_eq(e.value.data[3], big[0]);
			distkv_entry_clear(&e);
			distkv_path_free(bp);
		}
	}
	/* deleted through the path, read by it: not found, nil value */
	cr_assert_eq(distkv_delete(c, p, NULL, NULL), 0);
	cr_assert_eq(distkv_shm_get_int(s, p, &i), DISTKV_ENOTFOUND);
	cr_assert_eq(distkv_get(c, p, 0, &e), DISTKV_ENOTFOUND);
	cr_assert(distkv_value_is_nil(e.value.data, e.value.len));
	distkv_entry_clear(&e);
	distkv_path_free(p);
	distkv_path_free(lp);
	distkv_close(c);
}

/* Reads by path text: through the region, then the socket; the same
 * answers, and a cached name sees a new value. */
Test(agent, get_by_text)
{
	distkv *c = agent_connect(), *conns[2];
	struct distkv_value v;
	distkv_path *p = P("svc/web/ratio");
	char str[16];
	int64_t i;
	double d;
	bool b;

	set_int(c, "svc/web/port", 8080);
	set_str(c, "svc/web/host", "example", 7);
	set_int(c, "svc/:5", 5);
	cr_assert_eq(distkv_value_from_double(&v, 0.25), 0);
	cr_assert_eq(distkv_set(c, p, v.data, v.len, NULL, NULL), 0);
	distkv_value_clear(&v);
	distkv_path_free(p);
	p = P("svc/web/tls");
	cr_assert_eq(distkv_value_from_bool(&v, false), 0);
	cr_assert_eq(distkv_set(c, p, v.data, v.len, NULL, NULL), 0);
	distkv_value_clear(&v);
	cr_assert_not_null(distkv_shm_of(c));
	conns[0] = c;
	setenv("DISTKV_NO_SHM", "1", 1);
	conns[1] = agent_connect();
	unsetenv("DISTKV_NO_SHM");
	cr_assert_null(distkv_shm_of(conns[1]));

	for (int n = 0; n < 2; n++) {
		distkv *k = conns[n];

		for (int again = 0; again < 2; again++) {
			cr_assert_eq(distkv_get_int(k, "svc/web/port", &i), 0);
			cr_assert_eq(i, 8080);
			cr_assert_eq(distkv_get_str(k, "/svc/web/host/", str,
			    sizeof(str)), 0);
			cr_assert_str_eq(str, "example");
			cr_assert_eq(distkv_get_double(k, "svc/web/ratio", &d),
			    0);
			cr_assert(d == 0.25);
			cr_assert_eq(distkv_get_bool(k, "svc/web/tls", &b), 0);
			cr_assert(!b);
			cr_assert_eq(distkv_get_int(k, "svc/:5", &i), 0);
			cr_assert_eq(i, 5);
		}
		cr_assert_eq(distkv_get_int(k, "svc/web/none", &i),
		    DISTKV_ENOTFOUND);
		cr_assert_eq(distkv_get_int(k, "svc/web/host", &i),
		    DISTKV_ETYPE);
		cr_assert_eq(distkv_get_str(k, "svc/web/host", str, 7),
		    DISTKV_ETOOSMALL);
		cr_assert_eq(distkv_get_int(k, "svc//port", &i),
		    DISTKV_EINVAL);
	}
	/* a cached name reads the new value */
	set_int(c, "svc/web/port", 8443);
	cr_assert_eq(distkv_get_int(c, "svc/web/port", &i), 0);
	cr_assert_eq(i, 8443);
	distkv_path_free(p);
	distkv_close(conns[1]);
	distkv_close(c);
}

/* A reply of a kind no real agent can be brought to send in a test: a
 * node without its data (it does not even open its client socket). */
