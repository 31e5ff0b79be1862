/*
 * test_badinput: hostile and broken clients against a real distkv-agent.
 *
 * Every test ends the same way: a fresh client must be greeted and served,
 * and the tree (every entry with its value, tock and chain) and the node
 * table must be exactly what they were before the bad input, unless the
 * test changed them on purpose.  House style §12: bad input becomes an
 * error reply or a closed connection, never a crash and never a change.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "harness.h"
#include "proto.h"
#include "rawclient.h"

static struct harness_agent ag;
static char baseline[65536];
static char baseline_tree[65536];

static void
setup(void)
{
	harness_init(&ag);
}

static void
teardown(void)
{
	harness_cleanup(&ag);
}

TestSuite(badinput, .init = setup, .fini = teardown, .timeout = 40);

/*
 * Everything observable about the data: each get_tree item (path, depth,
 * value, tock, chain) and the node table.  Taken on a fresh connection so
 * the seq numbers are always the same.
 */
static void
snapshot_part(char *out, size_t outlen, bool with_state)
{
	struct rc_conn *c = rc_open(ag.socket);
	struct rc_msg **v, *m;
	size_t i, n, len = 0;
	char tmp[8192];

	out[0] = '\0';
	cr_assert(c != NULL, "agent no longer greets a new client; "
	    "stderr:\n%s", rc_agent_err(&ag));
	rc_send(c, "{seq:1, action:'get_tree', path:[], nchain:5}");
	v = rc_collect(c, 1, &n, RC_TIMEOUT);
	for (i = 0; i < n; i++) {
		if (rc_has(&v[i]->obj, "state"))
			continue;
		len += (size_t)snprintf(out + len, outlen - len, "%s\n",
		    rc_render(&v[i]->obj, tmp, sizeof(tmp)));
		cr_assert(len < outlen);
	}
	rc_msgs_free(v, n);
	if (!with_state) {
		rc_close(c);
		return;
	}
	m = rc_call(c, "{seq:2, action:'get_state', nodes:true, known:true}");
	cr_assert(rc_has(&m->obj, "nodes"));
	len += (size_t)snprintf(out + len, outlen - len, "%s\n",
	    rc_render(rc_get(&m->obj, "nodes"), tmp, sizeof(tmp)));
	len += (size_t)snprintf(out + len, outlen - len, "%s\n",
	    rc_render(rc_get(&m->obj, "known"), tmp, sizeof(tmp)));
	cr_assert(len < outlen);
	rc_msg_free(m);
	rc_close(c);
}

static void
snapshot(char *out, size_t outlen)
{
	snapshot_part(out, outlen, true);
}

/* Only the get_tree items. */
static void
snapshot_tree(char *out, size_t outlen)
{
	snapshot_part(out, outlen, false);
}

/* Start the agent with extra args and seed some data. */
#define START(...) do {							\
	RC_START(&ag, "--standalone", "--node", "n1", ##__VA_ARGS__);	\
	seed();								\
} while (0)

static void
seed(void)
{
	struct rc_conn *c = rc_open(ag.socket);

	cr_assert(c != NULL, "no greeting");
	RC_ASSERT_MATCH(rc_call(c, "{seq:1, action:'set_value', "
	    "path:['canary'], value:'alive'}"), "{seq:1, changed:true, ...}");
	RC_ASSERT_MATCH(rc_call(c, "{seq:2, action:'set_value', "
	    "path:['canary', 'x'], value:[1, {a:b'z'}]}"),
	    "{seq:2, changed:true, ...}");
	RC_ASSERT_MATCH(rc_call(c, "{seq:3, action:'delete_value', "
	    "path:['canary', 7, '']}"), "{seq:3, changed:false, ...}");
	rc_close(c);
	snapshot(baseline, sizeof(baseline));
	snapshot_tree(baseline_tree, sizeof(baseline_tree));
}

/* The agent still serves a new client and nothing changed. */
static void
assert_alive_unchanged(void)
{
	static char now[65536];

	snapshot(now, sizeof(now));
	cr_assert_str_eq(now, baseline, "tree or node table changed");
}

/*
 * The agent must reject what was just sent on c: an error reply (with this
 * seq, or without seq when seq < 0) or a closed connection, within the
 * deadline.  Returns true if the connection was closed.
 */
static bool
expect_rejected(struct rc_conn *c, int64_t seq, const char *what)
{
	long long deadline = harness_now_ms() + RC_TIMEOUT;
	bool multi = false;

	for (;;) {
		long long left = deadline - harness_now_ms();
		struct rc_msg *m;
		const msgpack_object *s;

		m = rc_recv(c, left < 0 ? 0 : (int)left);
		if (m == NULL) {
			cr_assert(c->eof, "%s: neither an error reply nor a "
			    "closed connection within %d ms", what,
			    RC_TIMEOUT);
			return true;
		}
		s = rc_get(&m->obj, "seq");
		if (seq >= 0 && s != NULL && rc_int(&m->obj, "seq") != seq)
			cr_assert_fail("%s: unexpected message %s", what,
			    rc_show(&m->obj));
		if (seq < 0)
			cr_assert(s == NULL, "%s: reply with a seq: %s", what,
			    rc_show(&m->obj));
		if (proto_str_eq(rc_get(&m->obj, "state"), "start")) {
			rc_msg_free(m);
			multi = true;
			continue;	/* multi reply: the error is an item */
		}
		cr_assert(rc_has(&m->obj, "error"), "%s: accepted: %s", what,
		    rc_show(&m->obj));
		cr_assert(rc_get(&m->obj, "error")->type ==
		    MSGPACK_OBJECT_STR, "%s: error is not a string", what);
		rc_msg_free(m);
		if (multi)	/* and then its end */
			RC_ASSERT_MATCH(rc_recv_seq(c, seq, RC_TIMEOUT),
			    "{seq:%lld, state:'end', tock:_}", (long long)seq);
		return false;
	}
}

/* Send raw bytes on a fresh, greeted connection. */
static struct rc_conn *
open_send(const void *buf, size_t len)
{
	struct rc_conn *c = rc_open(ag.socket);

	cr_assert(c != NULL, "no greeting; stderr:\n%s", rc_agent_err(&ag));
	(void)rc_send_raw(c, buf, len);	/* the agent may close early */
	return c;
}

/* Build a request in notation, or fail. */
static uint8_t *
build(size_t *len, const char *notation)
{
	uint8_t *buf;

	cr_assert(rc_build(&buf, len, "%s", notation) == 0);
	return buf;
}

/* ------------------------------------------------------------------ */

Test(badinput, reserved_byte_0xc1)
{
	static const uint8_t bad[] = { 0xc1 };
	static const uint8_t bad_inside[] = {	/* {seq: 1, 0xc1 ... */
		0x82, 0xa3, 's', 'e', 'q', 0x01, 0xc1, 0x01
	};
	struct rc_conn *c;

	START();
	c = open_send(bad, sizeof(bad));
	expect_rejected(c, -1, "0xc1");
	rc_close(c);
	c = open_send(bad_inside, sizeof(bad_inside));
	expect_rejected(c, -1, "0xc1 inside a map");
	rc_close(c);
	/* after a good request on the same connection */
	c = rc_open(ag.socket);
	cr_assert(c != NULL);
	RC_ASSERT_MATCH(rc_call(c, "{seq:1, action:'get_value', "
	    "path:['canary']}"), "{seq:1, value:'alive', tock:_}");
	rc_send_raw(c, bad, sizeof(bad));
	expect_rejected(c, -1, "0xc1 after a request");
	rc_close(c);
	assert_alive_unchanged();
}

Test(badinput, non_map_requests)
{
	static const char *const bad[] = {
		"[1, 2, 3]", "42", "'get_value'", "nil",
		("[{seq:1, action:'set_value', path:['canary'], "
		    "value:'evil'}]"),
		"b'\\x81\\xa3seq\\x01'",
	};
	size_t i, len;

	START();
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint8_t *buf = build(&len, bad[i]);
		struct rc_conn *c = open_send(buf, len);

		expect_rejected(c, -1, bad[i]);
		rc_close(c);
		free(buf);
	}
	assert_alive_unchanged();
}

Test(badinput, missing_or_bad_seq)
{
	struct rc_conn *c;
	struct rc_msg *m;

	START();
	/* §2.2: a message without seq gets {error} without seq */
	c = rc_open(ag.socket);
	cr_assert(c != NULL);
	rc_send(c, "{action:'set_value', path:['canary'], value:'evil'}");
	m = rc_recv_noseq(c, RC_TIMEOUT);
	cr_assert(m != NULL, "§2.2: no {error} reply for a request without "
	    "seq%s", c->eof ? " (connection closed instead)" : "");
	RC_ASSERT_MATCH(m, "{error:_, ..., seq:~}");
	rc_close(c);

	/* seq of the wrong type */
	c = rc_open(ag.socket);
	cr_assert(c != NULL);
	rc_send(c, "{seq:'1', action:'set_value', path:['canary'], "
	    "value:'evil'}");
	expect_rejected(c, -1, "string seq");
	rc_close(c);
	c = rc_open(ag.socket);
	cr_assert(c != NULL);
	rc_send(c, "{seq:1.5, action:'set_value', path:['canary'], "
	    "value:'evil'}");
	expect_rejected(c, -1, "float seq");
	rc_close(c);
	assert_alive_unchanged();
}

Test(badinput, seq_must_increase)
{
	struct rc_conn *c;

	START();
	c = rc_open(ag.socket);
	cr_assert(c != NULL);
	RC_ASSERT_MATCH(rc_call(c, "{seq:5, action:'get_value', "
	    "path:['canary']}"), "{seq:5, value:'alive', tock:_}");
	RC_ASSERT_MATCH(rc_call(c, "{seq:3, action:'set_value', "
	    "path:['canary'], value:'evil'}"), "{seq:3, "
	    "error:'Channel closed? Sequence error: 5 < 3', tock:_}");
	RC_ASSERT_MATCH(rc_call(c, "{seq:5, action:'set_value', "
	    "path:['canary'], value:'evil'}"), "{seq:5, "
	    "error:'Channel closed? Sequence error: 5 < 5', tock:_}");
	/* a rejected seq does not become the new "last" */
	RC_ASSERT_MATCH(rc_call(c, "{seq:4, action:'get_value', "
	    "path:['canary']}"), "{seq:4, "
	    "error:'Channel closed? Sequence error: 5 < 4', tock:_}");
	rc_close(c);
	assert_alive_unchanged();
}

Test(badinput, wrong_field_types)
{
	static const char *const bad[] = {
		"action:'get_value', path:'canary'",
		"action:'set_value', path:'canary', value:1",
		"action:'set_value', path:nil, value:1",
		"action:'set_value', path:['canary', 1.5], value:1",
		"action:'set_value', path:['canary', true], value:1",
		"action:'set_value', path:['canary', {a:1}], value:1",
		"action:'set_value', path:['canary', ['x']], value:1",
		"action:'set_value', path:['canary', '\\xff\\xfe'], value:1",
		"action:'set_value', path:['canary', nil], value:1",
		"action:'get_value', path:[1.0]",
		"action:'set_value', path:['canary'], value:2, nchain:'x'",
		"action:'set_value', path:['canary'], value:2, nchain:1.5",
		"action:'get_value', path:['canary'], nchain:'x'",
		"action:'set_value', path:['canary'], value:2, chain:'x'",
		("action:'set_value', path:['canary'], value:2, "
		    "chain:{node:1, tick:'x'}"),
		"action:'set_value', path:['canary'], value:2, chain:[1]",
		"action:'delete_value', path:['canary'], nchain:[]",
		"action:'get_value', node:5, tick:1",
		"action:'get_value', node:'n1', tick:'x'",
		"action:'get_value', node:'n1', tick:-1",
		"action:42, path:['canary']",
		"action:nil",
		"path:['canary']",
		"action:'watch', path:5",
		"action:'get_tree', path:{}",
		"action:'delete_tree', path:'canary'",
		"action:'root', path:'canary'",
		"action:'get_tree', path:['canary'], maxdepth:'x'",
	};
	struct rc_conn *c;
	size_t i;

	START();
	c = rc_open(ag.socket);
	cr_assert(c != NULL);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		rc_send(c, "{seq:%zu, %s}", i + 1, bad[i]);
		cr_assert(!expect_rejected(c, (int64_t)i + 1, bad[i]),
		    "connection closed after a well-formed request with a "
		    "bad field: %s", bad[i]);
	}
	/* the connection is still usable */
	RC_ASSERT_MATCH(rc_call(c, "{seq:1000, action:'get_value', "
	    "path:['canary']}"), "{seq:1000, value:'alive', tock:_}");
	rc_close(c);
	assert_alive_unchanged();
}

Test(badinput, unknown_actions_and_stops)
{
	char name[2000];
	struct rc_conn *c;

	START();
	c = rc_open(ag.socket);
	cr_assert(c != NULL);
	RC_ASSERT_MATCH(rc_call(c, "{seq:1, action:'frobnicate'}"),
	    "{seq:1, error:'Unknown action: frobnicate', tock:_}");
	RC_ASSERT_MATCH(rc_call(c, "{seq:2, action:''}"),
	    "{seq:2, error:'Unknown action: ', tock:_}");
	memset(name, 'z', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	RC_ASSERT_MATCH(rc_call(c, "{seq:3, action:'%s'}", name),
	    "{seq:3, error:_, tock:_}");
	RC_ASSERT_MATCH(rc_call(c, "{seq:4, action:'stop', task:77}"),
	    "{seq:4, result:false, tock:_}");
	RC_ASSERT_MATCH(rc_call(c, "{seq:5, action:'stop', task:5}"),
	    "{seq:5, result:false, tock:_}");
	/* a negative task can never run: result false or an error */
	{
		struct rc_msg *m = rc_call(c, "{seq:6, action:'stop', "
		    "task:-1}");

		cr_assert(rc_match(&m->obj, NULL, 0, "{seq:6, result:false, "
		    "tock:_}") || rc_match(&m->obj, NULL, 0, "{seq:6, "
		    "error:_, tock:_}"), "%s", rc_show(&m->obj));
	}
	/* a streamed start for an action without a streaming handler */
	RC_ASSERT_MATCH(rc_call(c, "{seq:7, action:'set_value', "
	    "state:'start', path:['canary'], value:'evil'}"),
	    "{seq:7, error:_, ...}");
	rc_close(c);
	assert_alive_unchanged();
}

/*
 * A multi-reply request refused outright still gets start, {error}, end,
 * as the reference's streaming commands send it: the ACL-era Python
 * client's _stream (watch, serfmon, the _test dialogs) waits for "start"
 * and would hang on a lone error.  Single-reply actions, unknown actions
 * and auth_list with an ident keep the lone error.
 */
Test(badinput, multi_reply_errors_are_framed)
{
	static const char *const multi[] = {
		"action:'get_tree', path:['a', nil]",
		"action:'get_tree', path:{}",
		"action:'watch', path:5",
		"action:'watch', path:['canary', 1.5]",
		"action:'serfmon'",
		"action:'auth'",
		"action:'auth_list', typ:7",
		"action:'auth_set', state:'start', typ:'_test', kind:'nope'",
		"action:'auth_get', state:'start', typ:'_test', kind:'nope'",
	};
	static const char *const single[] = {
		"action:'get_value', path:['a', nil]",
		"action:'auth_list', typ:'_test', ident:'nobody'",
		"action:'auth_get', typ:'_test', ident:'nobody'",
		"action:'frobnicate', path:[]",
	};
	struct rc_conn *c;
	struct rc_msg *m;
	int64_t seq = 0;
	size_t i;

	START();
	c = rc_open(ag.socket);
	cr_assert(c != NULL);
	for (i = 0; i < sizeof(multi) / sizeof(multi[0]); i++) {
		seq++;
		rc_send(c, "{seq:%lld, %s}", (long long)seq, multi[i]);
		m = rc_recv_seq(c, seq, RC_TIMEOUT);
		cr_assert(m != NULL && rc_match(&m->obj, NULL, 0,
		    "{seq:%lld, state:'start', tock:_}", (long long)seq),
		    "%s: %s", multi[i], m ? rc_show(&m->obj) : "nothing");
		rc_msg_free(m);
		m = rc_recv_seq(c, seq, RC_TIMEOUT);
		cr_assert(m != NULL && rc_match(&m->obj, NULL, 0,
		    "{seq:%lld, error:_, tock:_}", (long long)seq),
		    "%s: %s", multi[i], m ? rc_show(&m->obj) : "nothing");
		rc_msg_free(m);
		RC_ASSERT_MATCH(rc_recv_seq(c, seq, RC_TIMEOUT),
		    "{seq:%lld, state:'end', tock:_}", (long long)seq);
	}
	for (i = 0; i < sizeof(single) / sizeof(single[0]); i++) {
		seq++;
		rc_send(c, "{seq:%lld, %s}", (long long)seq, single[i]);
		m = rc_recv_seq(c, seq, RC_TIMEOUT);
		cr_assert(m != NULL && rc_match(&m->obj, NULL, 0,
		    "{seq:%lld, error:_, tock:_}", (long long)seq),
		    "%s: %s", single[i], m ? rc_show(&m->obj) : "nothing");
		rc_msg_free(m);
	}
	/* nothing else was sent for any of them */
	RC_ASSERT_MATCH(rc_call(c, "{seq:%lld, action:'get_value', "
	    "path:['canary']}", (long long)seq + 1), "{seq:%lld, "
	    "value:'alive', tock:_}", (long long)seq + 1);
	rc_close(c);
	assert_alive_unchanged();
}

Test(badinput, request_larger_than_max_request)
{
	enum { LIMIT = 65536 };
	struct rc_conn *c;
	char *big;
	size_t n;

	START("--max-request", "65536");
	/* just below the limit: accepted */
	big = malloc(LIMIT);
	cr_assert(big != NULL);
	n = LIMIT - 200;
	memset(big, 'a', n);
	big[n] = '\0';
	c = rc_open(ag.socket);
	cr_assert(c != NULL);
	RC_ASSERT_MATCH(rc_call(c, "{seq:1, action:'set_value', "
	    "path:['fits'], value:'%s', nchain:0}", big),
	    "{seq:1, changed:true, prev:nil, tock:_}");
	rc_close(c);
	snapshot(baseline, sizeof(baseline));

	/* over the limit: error or closed, and not stored */
	memset(big, 'b', LIMIT - 1);
	big[LIMIT - 1] = '\0';
	c = rc_open(ag.socket);
	cr_assert(c != NULL);
	rc_send(c, "{seq:1, action:'set_value', path:['big'], value:'%s%s'}",
	    big, big);
	expect_rejected(c, 1, "request of 128 KiB with --max-request 64 KiB");
	rc_close(c);
	free(big);
	assert_alive_unchanged();
}

Test(badinput, nesting_deeper_than_32)
{
	char deep[200];
	uint8_t *raw;
	struct rc_conn *c;
	size_t i, n = 1000000;

	START();
	/* 40 levels inside a well-formed request */
	memset(deep, 0, sizeof(deep));
	for (i = 0; i < 40; i++)
		deep[i] = '[';
	for (i = 0; i < 40; i++)
		deep[40 + i] = ']';
	c = rc_open(ag.socket);
	cr_assert(c != NULL);
	rc_send(c, "{seq:1, action:'set_value', path:['deep'], value:%s}",
	    deep);
	expect_rejected(c, -1, "value nested 40 deep");
	rc_close(c);
	/* a million fixarray-1 headers: must not recurse or allocate */
	raw = malloc(n);
	cr_assert(raw != NULL);
	memset(raw, 0x91, n);
	c = open_send(raw, n);
	expect_rejected(c, -1, "1e6 nested arrays");
	rc_close(c);
	/* same with maps */
	memset(raw, 0x81, n);
	c = open_send(raw, n);
	expect_rejected(c, -1, "1e6 nested maps");
	rc_close(c);
	free(raw);
	assert_alive_unchanged();
}

Test(badinput, huge_declared_lengths)
{
	/* {seq:1, action:'set_value', path:['h'], value:<header> ab} */
	static const uint8_t prefix[] = {
		0x84, 0xa3, 's', 'e', 'q', 0x01,
		0xa6, 'a', 'c', 't', 'i', 'o', 'n',
		0xa9, 's', 'e', 't', '_', 'v', 'a', 'l', 'u', 'e',
		0xa4, 'p', 'a', 't', 'h', 0x91, 0xa1, 'h',
		0xa5, 'v', 'a', 'l', 'u', 'e',
	};
	static const uint8_t headers[][5] = {
		{ 0xdb, 0xff, 0xff, 0xff, 0xff },	/* str32 */
		{ 0xc6, 0xff, 0xff, 0xff, 0xff },	/* bin32 */
		{ 0xdd, 0xff, 0xff, 0xff, 0xff },	/* array32 */
		{ 0xdf, 0xff, 0xff, 0xff, 0xff },	/* map32 */
		{ 0xc9, 0xff, 0xff, 0xff, 0xfe },	/* ext32 */
	};
	size_t i;

	START();
	for (i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
		uint8_t buf[sizeof(prefix) + 5 + 2];
		struct rc_conn *c;

		memcpy(buf, prefix, sizeof(prefix));
		memcpy(buf + sizeof(prefix), headers[i], 5);
		buf[sizeof(prefix) + 5] = 'a';
		buf[sizeof(prefix) + 6] = 'b';
		c = open_send(buf, sizeof(buf));
		/* while this client hangs, others are served */
		assert_alive_unchanged();
		rc_close(c);
		/* and as a bare top-level object */
		c = open_send(headers[i], 5);
		assert_alive_unchanged();
		rc_close(c);
	}
	assert_alive_unchanged();
}

Test(badinput, half_frame_then_disconnect)
{
	struct rc_conn *c;
	uint8_t *buf;
	size_t len;

	START();
	buf = build(&len, "{seq:1, action:'set_value', path:['canary'], "
	    "value:'half-written value that must never be applied'}");
	c = open_send(buf, len / 2);
	assert_alive_unchanged();	/* not blocked by the partial frame */
	rc_close(c);
	/* the missing half arriving on another connection is garbage there */
	c = open_send(buf + len / 2, len - len / 2);
	rc_close(c);
	free(buf);
	assert_alive_unchanged();
}

Test(badinput, split_and_concatenated_frames)
{
	struct rc_conn *c;
	uint8_t *a, *b, *d, *both;
	size_t alen, blen, dlen, i;

	START();
	a = build(&alen, "{seq:1, action:'get_value', path:['canary']}");
	b = build(&blen, "{seq:2, action:'get_value', path:['canary','x']}");
	d = build(&dlen, "{seq:3, action:'get_value', path:['canary']}");
	c = rc_open(ag.socket);
	cr_assert(c != NULL);
	/* one byte per write */
	for (i = 0; i < alen; i++)
		cr_assert(rc_send_raw(c, a + i, 1) == 0);
	RC_ASSERT_MATCH(rc_recv_seq(c, 1, RC_TIMEOUT),
	    "{seq:1, value:'alive', tock:_}");
	/* seq 2 whole and the head of seq 3 in one write, then the rest */
	both = malloc(blen + dlen);
	cr_assert(both != NULL);
	memcpy(both, b, blen);
	memcpy(both + blen, d, dlen);
	cr_assert(rc_send_raw(c, both, blen + 3) == 0);
	RC_ASSERT_MATCH(rc_recv_seq(c, 2, RC_TIMEOUT),
	    "{seq:2, value:[1, {a:b'z'}], tock:_}");
	cr_assert(rc_send_raw(c, both + blen + 3, dlen - 3) == 0);
	RC_ASSERT_MATCH(rc_recv_seq(c, 3, RC_TIMEOUT),
	    "{seq:3, value:'alive', tock:_}");
	free(both);
	free(a);
	free(b);
	free(d);
	rc_close(c);
	assert_alive_unchanged();
}

Test(badinput, disconnect_with_running_watch)
{
	struct rc_conn *c, *w;
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	int i;

	START();
	w = rc_open(ag.socket);
	cr_assert(w != NULL);
	rc_send(w, "{seq:1, action:'watch', path:['canary'], fetch:true, "
	    "nchain:3}");
	RC_ASSERT_MATCH(rc_recv_seq(w, 1, RC_TIMEOUT),
	    "{seq:1, state:'start', tock:_}");
	rc_send(w, "{seq:2, action:'watch', path:[], fetch:true}");
	/* abort with RST while replies are still queued */
	setsockopt(w->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	rc_close(w);
	c = rc_open(ag.socket);
	cr_assert(c != NULL);
	for (i = 1; i <= 50; i++)
		RC_ASSERT_MATCH(rc_call(c, "{seq:%d, action:'set_value', "
		    "path:['other', %d], value:%d}", i, i % 3, i),
		    "{seq:%d, changed:_, ...}", i);
	RC_ASSERT_MATCH(rc_call(c, "{seq:100, action:'delete_tree', "
	    "path:['other']}"), "{seq:100, changed:3, tock:_}");
	rc_close(c);
	/* ['other'] now holds only tombstones: the items are as before */
	{
		static char now[65536];

		snapshot_tree(now, sizeof(now));
		cr_assert_str_eq(now, baseline_tree);
	}
}

Test(badinput, slow_watcher_is_dropped, .timeout = 90)
{
	enum { N = 1000, VLEN = 2048 };
	struct rc_conn *wr, *slow, *good;
	int rcvbuf = 4096, items = 0, i;
	bool ended = false, errored = false;
	char *val;

	START("--max-output", "65536");
	slow = rc_open(ag.socket);
	cr_assert(slow != NULL);
	setsockopt(slow->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	rc_send(slow, "{seq:1, action:'watch', path:['big']}");
	good = rc_open(ag.socket);
	cr_assert(good != NULL);
	rc_send(good, "{seq:1, action:'watch', path:['big']}");
	RC_ASSERT_MATCH(rc_recv_seq(good, 1, RC_TIMEOUT),
	    "{seq:1, state:'start', tock:_}");
	wr = rc_open(ag.socket);
	cr_assert(wr != NULL);

	val = malloc(VLEN + 1);
	cr_assert(val != NULL);
	for (i = 1; i <= N; i++) {
		struct rc_msg *m;

		memset(val, 'a' + i % 26, VLEN);
		val[VLEN] = '\0';
		/* the writer is served promptly while slow never reads */
		m = rc_call(wr, "{seq:%d, action:'set_value', "
		    "path:['big', %d], value:'%s', nchain:0}", i, i % 10, val);
		RC_ASSERT_MATCH(m, "{seq:%d, changed:true, prev:_, tock:_}",
		    i);
		rc_msg_free(m);
		/* and the reading watcher sees every change */
		m = rc_recv_seq(good, 1, RC_TIMEOUT);
		cr_assert(m != NULL, "good watcher missed change %d", i);
		cr_assert(rc_match(&m->obj, NULL, 0, "{seq:1, path:_, "
		    "depth:_, value:'%s', tock:_}", val),
		    "good watcher, change %d: %.200s", i, rc_show(&m->obj));
		rc_msg_free(m);
	}
	free(val);

	/* now drain slow: its watch must have been aborted or closed */
	for (;;) {
		struct rc_msg *m = rc_recv(slow, RC_TIMEOUT);

		if (m == NULL) {
			cr_assert(slow->eof, "slow watcher: %d items, neither "
			    "ended nor closed", items);
			break;
		}
		if (rc_has(&m->obj, "error"))
			errored = true;
		else if (proto_str_eq(rc_get(&m->obj, "state"), "end"))
			ended = true;
		else if (rc_has(&m->obj, "value"))
			items++;
		rc_msg_free(m);
		if (ended)
			break;
	}
	cr_assert(items < N, "slow watcher got all %d items: the agent "
	    "buffered ~%d KiB for it despite --max-output 64 KiB", items,
	    N * VLEN / 1024);
	cr_assert(slow->eof || errored, "aborted watch without an error "
	    "item (§2.2: error item, then end)");
	rc_close(slow);
	/* the others keep working */
	RC_ASSERT_MATCH(rc_call(wr, "{seq:%d, action:'get_value', "
	    "path:['canary']}", N + 1), "{seq:%d, value:'alive', tock:_}",
	    N + 1);
	rc_close(good);
	rc_close(wr);
}

Test(badinput, path_deeper_than_64)
{
	char path[1024];
	struct rc_conn *c;
	size_t len = 0;
	int i;

	START();
	c = rc_open(ag.socket);
	cr_assert(c != NULL);
	for (i = 0; i < 64; i++)
		len += (size_t)snprintf(path + len, sizeof(path) - len,
		    "%s%d", i ? "," : "", i);
	RC_ASSERT_MATCH(rc_call(c, "{seq:1, action:'set_value', "
	    "path:[%s], value:'deep', nchain:0}", path),
	    "{seq:1, changed:true, prev:nil, tock:_}");
	RC_ASSERT_MATCH(rc_call(c, "{seq:2, action:'get_value', "
	    "path:[%s]}", path), "{seq:2, value:'deep', tock:_}");
	rc_close(c);
	snapshot(baseline, sizeof(baseline));

	c = rc_open(ag.socket);
	cr_assert(c != NULL);
	snprintf(path + len, sizeof(path) - len, ",64");
	rc_send(c, "{seq:3, action:'set_value', path:[%s], value:'deeper'}",
	    path);
	cr_assert(!expect_rejected(c, 3, "set_value, 65 elements"));
	rc_send(c, "{seq:4, action:'watch', path:[%s]}", path);
	cr_assert(!expect_rejected(c, 4, "watch, 65 elements"));
	rc_send(c, "{seq:5, action:'root', path:[%s]}", path);
	cr_assert(!expect_rejected(c, 5, "root, 65 elements"));
	rc_close(c);
	assert_alive_unchanged();
}

Test(badinput, many_connections)
{
	enum { N = 300 };
	struct rc_conn *c[N];
	int i;

	START();
	for (i = 0; i < N; i++) {
		c[i] = rc_open(ag.socket);
		cr_assert(c[i] != NULL, "connection %d not greeted", i);
	}
	for (i = 0; i < N; i += 37)
		RC_ASSERT_MATCH(rc_call(c[i], "{seq:1, action:'get_value', "
		    "path:['canary']}"), "{seq:1, value:'alive', tock:_}");
	for (i = 0; i < N; i++)
		rc_close(c[i]);
	/* and again, to catch descriptor leaks */
	for (i = 0; i < 3 * N; i++) {
		struct rc_conn *x = rc_open(ag.socket);

		cr_assert(x != NULL, "connection %d not greeted", i);
		rc_close(x);
	}
	assert_alive_unchanged();
}

/*
 * A client that pipelines requests whose replies exceed --max-output but
 * keeps reading is slowed down (backpressure), not dropped: only clients
 * that stop reading may be cut off.
 */
Test(badinput, pipelining_reader_is_not_dropped, .timeout = 60)
{
	enum { N = 300, VLEN = 10000 };
	msgpack_sbuffer sb;
	struct rc_conn *c;
	char *val;
	int i;

	START("--max-output", "65536");
	val = malloc(VLEN + 1);
	cr_assert(val != NULL);
	memset(val, 'q', VLEN);
	val[VLEN] = '\0';
	c = rc_open(ag.socket);
	cr_assert(c != NULL);
	RC_ASSERT_MATCH(rc_call(c, "{seq:1, action:'set_value', "
	    "path:['bigval'], value:'%s', nchain:0}", val),
	    "{seq:1, changed:true, prev:nil, tock:_}");
	msgpack_sbuffer_init(&sb);
	for (i = 2; i <= N; i++) {
		uint8_t *buf;
		size_t len;

		cr_assert(rc_build(&buf, &len, "{seq:%d, action:'get_value', "
		    "path:['bigval']}", i) == 0);
		msgpack_sbuffer_write(&sb, (const char *)buf, len);
		free(buf);
	}
	/* rc_send_raw reads replies while it sends */
	cr_assert(rc_send_raw(c, sb.data, sb.size) == 0);
	msgpack_sbuffer_destroy(&sb);
	for (i = 2; i <= N; i++) {
		struct rc_msg *m = rc_recv_seq(c, i, RC_TIMEOUT);

		cr_assert(m != NULL, "reply %d missing (%s): ~%d KiB of "
		    "replies to a reading client", i, c->eof ?
		    "connection closed" : "timeout", N * VLEN / 1024);
		cr_assert(rc_match(&m->obj, NULL, 0, "{seq:%d, value:'%s', "
		    "tock:_}", i, val), "reply %d wrong", i);
		rc_msg_free(m);
	}
	free(val);
	rc_close(c);
	snapshot(baseline, sizeof(baseline));
	assert_alive_unchanged();
}
