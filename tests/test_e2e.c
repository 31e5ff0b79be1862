/*
 * test_e2e: the client protocol of a real distkv-agent, end to end.
 *
 * Each test starts its own agent (--standalone) through the harness and
 * talks to it with the raw client, so what is checked is exactly what goes
 * over the socket.  Expected replies are written in the spec's notation;
 * section numbers refer to /work/shared/spec/protocol.md.  Tock and tick
 * numbers are asserted by their relations (spec §1.5: only the order and the
 * equalities are defined), never as absolute values.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <xxhash.h>

#include "harness.h"
#include "proto.h"
#include "rawclient.h"

static struct harness_agent ag;

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

TestSuite(e2e, .init = setup, .fini = teardown, .timeout = 30);

/* Assert m's tock is strictly greater than *last, then remember it. */
#define NEWER_TOCK(m, last) do {					\
	int64_t t_ = rc_int(&(m)->obj, "tock");				\
	cr_assert(t_ > *(last), "tock %lld not > %lld in %s",		\
	    (long long)t_, (long long)*(last), rc_show(&(m)->obj));	\
	*(last) = t_;							\
} while (0)

/* Full paths (lengthened) of the items of a get_tree reply, joined by ';'. */
static const char *
tree_paths(struct rc_msg **v, size_t n)
{
	static char out[4096];
	struct rc_paths L = { .n = 0 };
	size_t i, len = 0;

	out[0] = '\0';
	for (i = 0; i < n; i++) {
		if (rc_has(&v[i]->obj, "state"))
			continue;
		len += (size_t)snprintf(out + len, sizeof(out) - len, "%s%s",
		    len ? ";" : "", rc_lengthen(&L, &v[i]->obj));
		if (len >= sizeof(out))
			break;
	}
	return out;
}

/* ------------------------------------------------------------------ */
/* §2.7 worked examples, on a fresh agent: relations instead of numbers */

Test(e2e, worked_example)
{
	struct rc_conn *c, *c2;
	struct rc_msg *m, **v;
	int64_t t0, last, tk5, tk6, tk7, tk9, tk12;
	size_t n;

	RC_START(&ag, "--standalone", "--node", "n1");
	c = rc_open(ag.socket);
	cr_assert(c != NULL, "no greeting");

	/* §2.3 greeting: node, version (integer array), tick, tock */
	RC_ASSERT_MATCH(c->greeting,
	    "{seq:0, shm:_, node:'n1', version:_, tick:_, tock:_}");
	{
		const msgpack_object *ver = rc_get(&c->greeting->obj,
		    "version");
		uint32_t i;

		cr_assert(ver->type == MSGPACK_OBJECT_ARRAY &&
		    ver->via.array.size >= 1, "version %s", rc_show(ver));
		for (i = 0; i < ver->via.array.size; i++)
			cr_assert(ver->via.array.ptr[i].type ==
			    MSGPACK_OBJECT_POSITIVE_INTEGER,
			    "version %s", rc_show(ver));
	}
	t0 = rc_int(&c->greeting->obj, "tick");
	last = rc_int(&c->greeting->obj, "tock");
	cr_assert(t0 >= 0);

	m = rc_call(c, "{seq:1, action:'get_value', path:['test'], nchain:3}");
	RC_ASSERT_MATCH(m, "{seq:1, value:nil, tock:_}");
	NEWER_TOCK(m, &last);

	m = rc_call(c, "{seq:2, action:'set_value', path:['test'], "
	    "value:1234, chain:nil, nchain:2}");
	RC_ASSERT_MATCH(m, "{seq:2, changed:true, "
	    "chain:{node:'n1', tick:%lld, prev:nil}, tock:_}",
	    (long long)t0 + 1);
	NEWER_TOCK(m, &last);

	m = rc_call(c, "{seq:3, action:'set_value', path:['test'], "
	    "value:1234, chain:nil}");
	RC_ASSERT_MATCH(m, "{seq:3, error:'This entry already exists', "
	    "tock:_}");
	NEWER_TOCK(m, &last);

	m = rc_call(c, "{seq:4, action:'set_value', path:['test'], value:123,"
	    " chain:{node:'n1', tick:%lld}}", (long long)t0 + 1);
	RC_ASSERT_MATCH(m, "{seq:4, changed:true, "
	    "chain:{node:'n1', tick:%lld, prev:nil}, tock:_}",
	    (long long)t0 + 2);
	NEWER_TOCK(m, &last);

	m = rc_call(c, "{seq:5, action:'set_value', path:['test','foo'], "
	    "value:123, nchain:0}");
	RC_ASSERT_MATCH(m, "{seq:5, changed:true, prev:nil, tock:_}");
	NEWER_TOCK(m, &last);
	tk5 = last;

	m = rc_call(c, "{seq:6, action:'set_value', "
	    "path:['test','foo','bap'], value:12, nchain:0}");
	RC_ASSERT_MATCH(m, "{seq:6, changed:true, prev:nil, tock:_}");
	NEWER_TOCK(m, &last);
	tk6 = last;

	m = rc_call(c, "{seq:7, action:'set_value', "
	    "path:['test','foo','bar','baz'], value:1, nchain:0}");
	RC_ASSERT_MATCH(m, "{seq:7, changed:true, prev:nil, tock:_}");
	NEWER_TOCK(m, &last);
	tk7 = last;

	m = rc_call(c, "{seq:8, action:'set_value', path:['test'], "
	    "value:1234, nchain:0}");
	RC_ASSERT_MATCH(m, "{seq:8, changed:true, prev:123, tock:_}");
	NEWER_TOCK(m, &last);

	m = rc_call(c, "{seq:9, action:'set_value', path:['test'], "
	    "value:1234}");
	RC_ASSERT_MATCH(m, "{seq:9, changed:false, prev:1234, "
	    "chain:{node:'n1', tick:%lld, prev:nil}, tock:_}",
	    (long long)t0 + 7);
	NEWER_TOCK(m, &last);
	tk9 = last;

	/* get_value carries the entry's tock: equal to the set reply's */
	m = rc_call(c, "{seq:100, action:'get_value', path:['test']}");
	RC_ASSERT_MATCH(m, "{seq:100, value:1234, tock:%lld}",
	    (long long)tk9);
	m = rc_call(c, "{seq:101, action:'get_value', "
	    "path:['test','foo','bar']}");
	RC_ASSERT_MATCH(m, "{seq:101, value:nil, tock:%lld}",
	    (long long)tk5);

	/* Subtree: the value-less ['test','foo','bar'] is skipped */
	rc_send(c, "{seq:110, action:'get_tree', path:['test']}");
	v = rc_collect(c, 110, &n, RC_TIMEOUT);
	cr_assert_eq(n, 6, "get_tree: %zu messages, first %s", n,
	    rc_show(&v[0]->obj));
	RC_ASSERT_MATCH(v[0], "{seq:110, state:'start', tock:_}");
	RC_ASSERT_MATCH(v[1], "{seq:110, path:[], depth:0, value:1234, "
	    "tock:%lld}", (long long)tk9);
	RC_ASSERT_MATCH(v[2], "{seq:110, path:['foo'], depth:0, value:123, "
	    "tock:%lld}", (long long)tk5);
	RC_ASSERT_MATCH(v[3], "{seq:110, path:['bap'], depth:1, value:12, "
	    "tock:%lld}", (long long)tk6);
	RC_ASSERT_MATCH(v[4], "{seq:110, path:['bar','baz'], depth:1, "
	    "value:1, tock:%lld}", (long long)tk7);
	RC_ASSERT_MATCH(v[5], "{seq:110, state:'end', tock:_}");
	rc_msgs_free(v, n);

	/* Watch with fetch: value-less 'bar' included, then uptodate */
	rc_send(c, "{seq:111, action:'watch', path:['test'], fetch:true, "
	    "nchain:1}");
	RC_ASSERT_MATCH(rc_recv_seq(c, 111, RC_TIMEOUT),
	    "{seq:111, state:'start', tock:_}");
	RC_ASSERT_MATCH(rc_recv_seq(c, 111, RC_TIMEOUT),
	    "{seq:111, path:[], depth:0, value:1234, "
	    "chain:{node:'n1', tick:%lld, prev:nil}, tock:%lld}",
	    (long long)t0 + 7, (long long)tk9);
	RC_ASSERT_MATCH(rc_recv_seq(c, 111, RC_TIMEOUT),
	    "{seq:111, path:['foo'], depth:0, value:123, "
	    "chain:{node:'n1', tick:%lld, prev:nil}, tock:%lld}",
	    (long long)t0 + 3, (long long)tk5);
	RC_ASSERT_MATCH(rc_recv_seq(c, 111, RC_TIMEOUT),
	    "{seq:111, path:['bap'], depth:1, value:12, "
	    "chain:{node:'n1', tick:%lld, prev:nil}, tock:%lld}",
	    (long long)t0 + 4, (long long)tk6);
	RC_ASSERT_MATCH(rc_recv_seq(c, 111, RC_TIMEOUT),
	    "{seq:111, path:['bar'], depth:1, value:nil, tock:%lld}",
	    (long long)tk5);
	RC_ASSERT_MATCH(rc_recv_seq(c, 111, RC_TIMEOUT),
	    "{seq:111, path:['baz'], depth:2, value:1, "
	    "chain:{node:'n1', tick:%lld, prev:nil}, tock:%lld}",
	    (long long)t0 + 5, (long long)tk7);
	RC_ASSERT_MATCH(rc_recv_seq(c, 111, RC_TIMEOUT),
	    "{seq:111, state:'uptodate', tock:_}");

	/* A change from another connection arrives live */
	c2 = rc_open(ag.socket);
	cr_assert(c2 != NULL);
	m = rc_call(c2, "{seq:1, action:'set_value', path:['test','foo'], "
	    "value:5}");
	RC_ASSERT_MATCH(m, "{seq:1, changed:true, prev:123, "
	    "chain:{node:'n1', tick:%lld, prev:nil}, tock:_}",
	    (long long)t0 + 8);
	NEWER_TOCK(m, &last);
	tk12 = last;
	RC_ASSERT_MATCH(rc_recv_seq(c, 111, RC_TIMEOUT),
	    "{seq:111, path:[], depth:1, value:5, "
	    "chain:{node:'n1', tick:%lld, prev:nil}, tock:%lld}",
	    (long long)t0 + 8, (long long)tk12);

	/* stop → {result:true}; the stopped watch still ends (§8.15) */
	rc_send(c, "{seq:112, action:'stop', task:111}");
	RC_ASSERT_MATCH(rc_recv_seq(c, 112, RC_TIMEOUT),
	    "{seq:112, result:true, tock:_}");
	RC_ASSERT_MATCH(rc_recv_seq(c, 111, RC_TIMEOUT),
	    "{seq:111, state:'end', tock:_}");
	/* and sends nothing more: a later change is not reported */
	m = rc_call(c2, "{seq:2, action:'set_value', path:['test','foo'], "
	    "value:6}");
	RC_ASSERT_MATCH(m, "{seq:2, changed:true, prev:5, "
	    "chain:{node:'n1', tick:%lld, prev:nil}, tock:_}",
	    (long long)t0 + 9);
	m = rc_call(c, "{seq:113, action:'get_value', path:['test','foo']}");
	RC_ASSERT_MATCH(m, "{seq:113, value:6, tock:_}");
	m = rc_recv_seq(c, 111, 300);
	cr_assert(m == NULL, "stopped watch still sent %s", rc_show(&m->obj));

	/* Events: by node+tick, current value and full path */
	m = rc_call(c, "{seq:114, action:'get_value', node:'n1', tick:%lld}",
	    (long long)t0 + 4);
	RC_ASSERT_MATCH(m, "{seq:114, value:12, path:['test','foo','bap'], "
	    "tock:%lld}", (long long)tk6);
	/* superseded (tick t0+1 was replaced by t0+2 on the same entry) */
	m = rc_call(c, "{seq:115, action:'get_value', node:'n1', tick:%lld}",
	    (long long)t0 + 1);
	RC_ASSERT_MATCH(m, "{seq:115, error:_, tock:_}");
	cr_assert(rc_get(&m->obj, "error")->type == MSGPACK_OBJECT_STR &&
	    rc_get(&m->obj, "error")->via.str.size > 0);
	/* not yet happened */
	m = rc_call(c, "{seq:116, action:'get_value', node:'n1', tick:%lld}",
	    (long long)t0 + 1000);
	RC_ASSERT_MATCH(m, "{seq:116, error:_, tock:_}");
	/* unknown node */
	m = rc_call(c, "{seq:117, action:'get_value', node:'nobody', tick:1}");
	RC_ASSERT_MATCH(m, "{seq:117, error:_, tock:_}");

	/* delete_tree counts the cleared entries: foo, bap, baz */
	m = rc_call(c, "{seq:118, action:'delete_tree', path:['test','foo']}");
	RC_ASSERT_MATCH(m, "{seq:118, changed:3, tock:_}");
	m = rc_call(c, "{seq:119, action:'get_value', "
	    "path:['test','foo','bar','baz']}");
	RC_ASSERT_MATCH(m, "{seq:119, value:nil, tock:_}");
	cr_assert(rc_int(&m->obj, "tock") > tk12,
	    "deleted entry keeps its old tock: %s", rc_show(&m->obj));
	rc_send(c, "{seq:120, action:'get_tree', path:['test']}");
	v = rc_collect(c, 120, &n, RC_TIMEOUT);
	cr_assert_eq(n, 3, "after delete_tree only 'test' has a value; "
	    "got %zu messages", n);
	RC_ASSERT_MATCH(v[1], "{seq:120, path:[], depth:0, value:1234, "
	    "tock:%lld}", (long long)tk9);
	rc_msgs_free(v, n);

	/* 7 sets + 2 sets from c2 + 3 deletes */
	m = rc_call(c, "{seq:121, action:'get_state', nodes:true, "
	    "missing:true}");
	RC_ASSERT_MATCH(m, "{seq:121, nodes:{n1:%lld}, missing:{}, tock:_}",
	    (long long)t0 + 12);
	rc_close(c2);
	rc_close(c);
}

/* ------------------------------------------------------------------ */
/* §7 test_01_basic, one node */

Test(e2e, test_01_basic)
{
	struct rc_conn *c;
	struct rc_msg *m, **v;
	int64_t last, tk_foo, tk_bar, tk;
	size_t n;

	RC_START(&ag, "--standalone", "--node", "test_0", "--init", "123");
	c = rc_open(ag.socket);
	cr_assert(c != NULL);
	RC_ASSERT_MATCH(c->greeting,
	    "{seq:0, shm:_, node:'test_0', version:_, tick:1, tock:_}");
	last = rc_int(&c->greeting->obj, "tock");

	m = rc_call(c, "{seq:1, action:'get_value', path:[]}");
	RC_ASSERT_MATCH(m, "{seq:1, value:123, tock:_}");

	m = rc_call(c, "{seq:2, action:'set_value', path:['foo'], "
	    "value:'hello'}");
	RC_ASSERT_MATCH(m, "{seq:2, changed:true, prev:nil, "
	    "chain:{node:'test_0', tick:2, prev:nil}, tock:_}");
	NEWER_TOCK(m, &last);
	tk_foo = last;
	m = rc_call(c, "{seq:3, action:'set_value', path:['foo','bar'], "
	    "value:'baz'}");
	RC_ASSERT_MATCH(m, "{seq:3, changed:true, prev:nil, "
	    "chain:{node:'test_0', tick:3, prev:nil}, tock:_}");
	NEWER_TOCK(m, &last);
	tk_bar = last;

	/* get_tree depth windows, both spellings (§8.12) */
	rc_send(c, "{seq:4, action:'get_tree', path:[], maxdepth:2}");
	v = rc_collect(c, 4, &n, RC_TIMEOUT);
	cr_assert_str_eq(tree_paths(v, n), "[];['foo'];['foo', 'bar']");
	RC_ASSERT_MATCH(v[1], "{seq:4, path:[], depth:0, value:123, tock:_}");
	RC_ASSERT_MATCH(v[2], "{seq:4, path:['foo'], depth:0, "
	    "value:'hello', tock:%lld}", (long long)tk_foo);
	RC_ASSERT_MATCH(v[3], "{seq:4, path:['bar'], depth:1, value:'baz', "
	    "tock:%lld}", (long long)tk_bar);
	rc_msgs_free(v, n);
	rc_send(c, "{seq:5, action:'get_tree', path:[], maxdepth:1}");
	v = rc_collect(c, 5, &n, RC_TIMEOUT);
	cr_assert_str_eq(tree_paths(v, n), "[];['foo']");
	rc_msgs_free(v, n);
	rc_send(c, "{seq:6, action:'get_tree', path:[], maxdepth:0}");
	v = rc_collect(c, 6, &n, RC_TIMEOUT);
	cr_assert_str_eq(tree_paths(v, n), "[]");
	rc_msgs_free(v, n);
	rc_send(c, "{seq:7, action:'get_tree', path:[], max_depth:1}");
	v = rc_collect(c, 7, &n, RC_TIMEOUT);
	cr_assert_str_eq(tree_paths(v, n), "[];['foo']");
	rc_msgs_free(v, n);
	rc_send(c, "{seq:8, action:'get_tree', path:[], min_depth:1}");
	v = rc_collect(c, 8, &n, RC_TIMEOUT);
	cr_assert_str_eq(tree_paths(v, n), "['foo'];['foo', 'bar']");
	rc_msgs_free(v, n);
	rc_send(c, "{seq:9, action:'get_tree', path:[], mindepth:1, "
	    "maxdepth:1}");
	v = rc_collect(c, 9, &n, RC_TIMEOUT);
	cr_assert_str_eq(tree_paths(v, n), "['foo']");
	rc_msgs_free(v, n);
	rc_send(c, "{seq:10, action:'get_tree', path:['foo']}");
	v = rc_collect(c, 10, &n, RC_TIMEOUT);
	cr_assert_str_eq(tree_paths(v, n), "[];['bar']");
	rc_msgs_free(v, n);

	/* get_value tock == set reply tock */
	m = rc_call(c, "{seq:11, action:'get_value', path:['foo']}");
	RC_ASSERT_MATCH(m, "{seq:11, value:'hello', tock:%lld}",
	    (long long)tk_foo);
	m = rc_call(c, "{seq:12, action:'get_value', path:['foo','bar'], "
	    "nchain:1}");
	RC_ASSERT_MATCH(m, "{seq:12, value:'baz', tock:%lld, "
	    "chain:{node:'test_0', tick:3, prev:nil}}", (long long)tk_bar);

	m = rc_call(c, "{seq:13, action:'get_state', nodes:true, known:true, "
	    "missing:true, remote_missing:true}");
	RC_ASSERT_MATCH(m, "{seq:13, nodes:{test_0:3}, "
	    "known:{test_0:[[1,4]]}, missing:{}, remote_missing:{}, tock:_}");

	m = rc_call(c, "{seq:14, action:'get_value', node:'test_0', tick:1}");
	RC_ASSERT_MATCH(m, "{seq:14, value:123, path:[], tock:_}");
	m = rc_call(c, "{seq:15, action:'get_value', node:'test_0', tick:2}");
	RC_ASSERT_MATCH(m, "{seq:15, value:'hello', path:['foo'], "
	    "tock:%lld}", (long long)tk_foo);
	m = rc_call(c, "{seq:16, action:'get_value', node:'test_0', tick:3}");
	RC_ASSERT_MATCH(m, "{seq:16, value:'baz', path:['foo','bar'], "
	    "tock:%lld}", (long long)tk_bar);

	m = rc_call(c, "{seq:17, action:'set_value', path:[], value:1234}");
	RC_ASSERT_MATCH(m, "{seq:17, changed:true, prev:123, "
	    "chain:{node:'test_0', tick:4, prev:nil}, tock:_}");
	NEWER_TOCK(m, &last);

	m = rc_call(c, "{seq:18, action:'get_value', node:'test_0', tick:8}");
	RC_ASSERT_MATCH(m, "{seq:18, error:_, tock:_}");
	m = rc_call(c, "{seq:19, action:'get_value', node:'test_0', tick:1}");
	RC_ASSERT_MATCH(m, "{seq:19, error:_, tock:_}");
	m = rc_call(c, "{seq:20, action:'get_value', node:'test_0', tick:4}");
	RC_ASSERT_MATCH(m, "{seq:20, value:1234, path:[], tock:%lld}",
	    (long long)last);

	m = rc_call(c, "{seq:21, action:'set_value', path:[], value:12345}");
	RC_ASSERT_MATCH(m, "{seq:21, changed:true, prev:1234, "
	    "chain:{node:'test_0', tick:5, prev:nil}, tock:_}");
	NEWER_TOCK(m, &last);
	m = rc_call(c, "{seq:22, action:'get_state', nodes:true, known:true}");
	RC_ASSERT_MATCH(m, "{seq:22, nodes:{test_0:5}, "
	    "known:{test_0:[[1,6]]}, tock:_}");

	m = rc_call(c, "{seq:23, action:'delete_value', path:['foo']}");
	RC_ASSERT_MATCH(m, "{seq:23, changed:true, prev:'hello', "
	    "chain:{node:'test_0', tick:6, prev:nil}, tock:_}");
	NEWER_TOCK(m, &last);
	tk = last;
	m = rc_call(c, "{seq:24, action:'get_value', path:['foo']}");
	RC_ASSERT_MATCH(m, "{seq:24, value:nil, tock:%lld}", (long long)tk);
	m = rc_call(c, "{seq:25, action:'get_value', path:['foo','bar']}");
	RC_ASSERT_MATCH(m, "{seq:25, value:'baz', tock:%lld}",
	    (long long)tk_bar);
	rc_close(c);
}

/* ------------------------------------------------------------------ */
/* Envelope details */

Test(e2e, every_message_carries_tock)
{
	static const char *const reqs[] = {
		"{seq:1, action:'get_value', path:['a']}",
		"{seq:2, action:'set_value', path:['a'], value:1}",
		"{seq:3, action:'set_value', path:['a'], value:2, chain:nil}",
		"{seq:4, action:'no_such_action'}",
		"{seq:5, action:'get_state', nodes:true}",
		"{seq:6, action:'stop', task:99}",
		"{seq:7, action:'delete_value', path:['a']}",
		"{seq:8, action:'delete_tree', path:['b']}",
		"{seq:9, action:'get_value', path:['a'], nchain:2}",
	};
	struct rc_conn *c;
	struct rc_msg *m, **v;
	size_t i, n;

	RC_START(&ag, "--standalone", "--node", "n1");
	c = rc_open(ag.socket);
	cr_assert(c != NULL);
	cr_assert(rc_has(&c->greeting->obj, "tock"));
	for (i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
		m = rc_call(c, "%s", reqs[i]);
		RC_ASSERT_MATCH(m, "{tock:_, ...}");
		cr_assert(rc_int(&m->obj, "tock") > 0);
		rc_msg_free(m);
	}
	m = rc_call(c, "{seq:10, action:'set_value', path:['a','b'], "
	    "value:1}");
	rc_send(c, "{seq:11, action:'get_tree', path:['a']}");
	v = rc_collect(c, 11, &n, RC_TIMEOUT);
	cr_assert_eq(n, 3);
	for (i = 0; i < n; i++)
		RC_ASSERT_MATCH(v[i], "{seq:11, tock:_, ...}");
	rc_send(c, "{seq:12, action:'watch', path:['a'], fetch:true}");
	for (i = 0; i < 4; i++)	/* start, a, b, uptodate */
		RC_ASSERT_MATCH(rc_recv_seq(c, 12, RC_TIMEOUT),
		    "{seq:12, tock:_, ...}");
	m = rc_call(c, "{seq:13, action:'stop', task:12}");
	RC_ASSERT_MATCH(m, "{seq:13, result:true, tock:_}");
	RC_ASSERT_MATCH(rc_recv_seq(c, 12, RC_TIMEOUT),
	    "{seq:12, state:'end', tock:_}");
	rc_close(c);
}

Test(e2e, unknown_action_and_stop_unknown)
{
	struct rc_conn *c;

	RC_START(&ag, "--standalone", "--node", "n1");
	c = rc_open(ag.socket);
	cr_assert(c != NULL);
	RC_ASSERT_MATCH(rc_call(c, "{seq:1, action:'frobnicate', path:[]}"),
	    "{seq:1, error:'Unknown action: frobnicate', tock:_}");
	RC_ASSERT_MATCH(rc_call(c, "{seq:2, action:'stop', task:1}"),
	    "{seq:2, result:false, tock:_}");
	RC_ASSERT_MATCH(rc_call(c, "{seq:3, action:'stop', task:12345}"),
	    "{seq:3, result:false, tock:_}");
	/* unknown request fields are ignored (§2.2) */
	RC_ASSERT_MATCH(rc_call(c, "{seq:4, action:'get_value', path:['x'], "
	    "iter:false, from_server:nil}"), "{seq:4, value:nil, tock:_}");
	rc_close(c);
}

Test(e2e, save_and_log_need_a_file_dir)
{
	struct rc_conn *c;

	RC_START(&ag, "--standalone", "--node", "n1");
	c = rc_open(ag.socket);
	cr_assert(c != NULL);
	RC_ASSERT_MATCH(rc_call(c, "{seq:1, action:'save', path:'x.dkv'}"),
	    "{seq:1, error:_, tock:_}");
	RC_ASSERT_MATCH(rc_call(c, "{seq:2, action:'log', path:'x.dkv'}"),
	    "{seq:2, error:_, tock:_}");
	rc_close(c);
}

/*
 * serfsend/serfmon on a standalone agent: a one-node Serf cluster.  The
 * event reaches this agent's monitors of its type (on any connection, the
 * sender's included) in the shape an event back from Serf has; the
 * validation and Serf's size limit stay.  Nothing is waited for by
 * sleeping: a monitor of another type is shown to have got nothing by the
 * marker event sent to it last, which arrives behind anything else.
 */
static char *
serf_filler(size_t n)
{
	char *s = malloc(n + 1);

	cr_assert(s != NULL);
	memset(s, 'x', n);
	s[n] = '\0';
	return s;
}

Test(e2e, serf_passthrough_standalone)
{
	/* SYNC_SERF_EVENT_LIMIT 9216 - 40 overhead - strlen("foo") */
	enum { FITS = 9216 - 40 - 3 };
	struct rc_conn *mon, *snd;
	char *big;

	RC_START(&ag, "--standalone", "--node", "n1");
	mon = rc_open(ag.socket);
	snd = rc_open(ag.socket);
	cr_assert(mon != NULL && snd != NULL);
	rc_send(mon, "{seq:1, action:'serfmon', type:'foo'}");
	RC_ASSERT_MATCH(rc_recv_seq(mon, 1, RC_TIMEOUT),
	    "{seq:1, state:'start', tock:_}");
	rc_send(mon, "{seq:2, action:'serfmon', type:'foo', raw:true}");
	RC_ASSERT_MATCH(rc_recv_seq(mon, 2, RC_TIMEOUT),
	    "{seq:2, state:'start', tock:_}");
	rc_send(mon, "{seq:3, action:'serfmon', type:'bar'}");
	RC_ASSERT_MATCH(rc_recv_seq(mon, 3, RC_TIMEOUT),
	    "{seq:3, state:'start', tock:_}");
	/* the sender monitors too: Serf hands an event to its sender */
	rc_send(snd, "{seq:1, action:'serfmon', type:'foo'}");
	RC_ASSERT_MATCH(rc_recv_seq(snd, 1, RC_TIMEOUT),
	    "{seq:1, state:'start', tock:_}");

	/* data: msgpack of the value; raw monitors get those bytes */
	RC_ASSERT_MATCH(rc_call(snd, "{seq:2, action:'serfsend', type:'foo', "
	    "data:['Hello', 42]}"), "{seq:2, tock:_}");
	RC_ASSERT_MATCH(rc_recv_seq(mon, 1, RC_TIMEOUT),
	    "{seq:1, type:'foo', data:['Hello', 42], tock:_}");
	RC_ASSERT_MATCH(rc_recv_seq(mon, 2, RC_TIMEOUT),
	    "{seq:2, type:'foo', raw:b'\\x92\\xa5Hello\\x2a', tock:_}");
	RC_ASSERT_MATCH(rc_recv_seq(snd, 1, RC_TIMEOUT),
	    "{seq:1, type:'foo', data:['Hello', 42], tock:_}");
	/* test_passthru's second event: bytes as data */
	RC_ASSERT_MATCH(rc_call(snd, "{seq:3, action:'serfsend', type:'foo', "
	    "data:b'duh'}"), "{seq:3, tock:_}");
	RC_ASSERT_MATCH(rc_recv_seq(mon, 1, RC_TIMEOUT),
	    "{seq:1, type:'foo', data:b'duh', tock:_}");
	RC_ASSERT_MATCH(rc_recv_seq(mon, 2, RC_TIMEOUT),
	    "{seq:2, type:'foo', raw:b'\\xc4\\x03duh', tock:_}");
	/* raw: the bytes as they are; not one msgpack object: an error */
	RC_ASSERT_MATCH(rc_call(snd, "{seq:4, action:'serfsend', type:'foo', "
	    "raw:b'duh'}"), "{seq:4, tock:_}");
	RC_ASSERT_MATCH(rc_recv_seq(mon, 1, RC_TIMEOUT),
	    "{seq:1, type:'foo', raw:b'duh', error:_, tock:_}");
	RC_ASSERT_MATCH(rc_recv_seq(mon, 2, RC_TIMEOUT),
	    "{seq:2, type:'foo', raw:b'duh', tock:_}");
	/* raw bytes that are one msgpack object read as data */
	RC_ASSERT_MATCH(rc_call(snd, "{seq:5, action:'serfsend', type:'foo', "
	    "raw:'\\x2a'}"), "{seq:5, tock:_}");
	RC_ASSERT_MATCH(rc_recv_seq(mon, 1, RC_TIMEOUT),
	    "{seq:1, type:'foo', data:42, tock:_}");
	RC_ASSERT_MATCH(rc_recv_seq(mon, 2, RC_TIMEOUT),
	    "{seq:2, type:'foo', raw:b'\\x2a', tock:_}");

	/* Serf's size limit (name + payload) holds here too */
	big = serf_filler(FITS);
	RC_ASSERT_MATCH(rc_call(snd, "{seq:6, action:'serfsend', type:'foo', "
	    "raw:'%s'}", big), "{seq:6, tock:_}");
	free(big);
	big = serf_filler(FITS + 1);
	RC_ASSERT_MATCH(rc_call(snd, "{seq:7, action:'serfsend', type:'foo', "
	    "raw:'%s'}", big), "{seq:7, error:'Serf event not sent: "
	    "too large for Serf', tock:_}");
	free(big);
	/* the servers' names and colon types stay refused */
	RC_ASSERT_MATCH(rc_call(snd, "{seq:8, action:'serfsend', "
	    "type:'distkv.update', data:1}"), "{seq:8, error:_, tock:_}");
	RC_ASSERT_MATCH(rc_call(snd, "{seq:9, action:'serfsend', "
	    "type:':foo', data:1}"), "{seq:9, error:_, tock:_}");
	rc_send(snd, "{seq:10, action:'serfmon', type:'distkv.ping'}");
	RC_ASSERT_MATCH(rc_recv_seq(snd, 10, RC_TIMEOUT),
	    "{seq:10, state:'start', tock:_}");
	RC_ASSERT_MATCH(rc_recv_seq(snd, 10, RC_TIMEOUT),
	    "{seq:10, error:_, tock:_}");
	RC_ASSERT_MATCH(rc_recv_seq(snd, 10, RC_TIMEOUT),
	    "{seq:10, state:'end', tock:_}");

	/* the marker: bar's first event; foo's events went to foo only */
	RC_ASSERT_MATCH(rc_call(snd, "{seq:11, action:'serfsend', type:'bar', "
	    "data:'marker'}"), "{seq:11, tock:_}");
	RC_ASSERT_MATCH(rc_recv_seq(mon, 3, RC_TIMEOUT),
	    "{seq:3, type:'bar', data:'marker', tock:_}");
	/* the fitting big event came, the refused ones did not, nor bar */
	big = serf_filler(FITS);
	RC_ASSERT_MATCH(rc_recv_seq(mon, 2, RC_TIMEOUT),
	    "{seq:2, type:'foo', raw:b'%s', tock:_}", big);
	free(big);
	rc_send(snd, "{seq:12, action:'serfsend', type:'foo', data:'last'}");
	RC_ASSERT_MATCH(rc_recv_seq(mon, 2, RC_TIMEOUT),
	    "{seq:2, type:'foo', raw:b'\\xa4last', tock:_}");
	rc_close(mon);
	rc_close(snd);
}

/* ------------------------------------------------------------------ */
/* set_value preconditions and reply shapes (§2.5.2, §2.5.3, §8.10) */

Test(e2e, set_value_preconditions)
{
	struct rc_conn *c;
	struct rc_msg *m;
	int64_t t0;

	RC_START(&ag, "--standalone", "--node", "n1");
	c = rc_open(ag.socket);
	cr_assert(c != NULL);
	t0 = rc_int(&c->greeting->obj, "tick");

	/* chain given for a new entry */
	m = rc_call(c, "{seq:1, action:'set_value', path:['p'], value:1, "
	    "chain:{node:'n1', tick:1}}");
	RC_ASSERT_MATCH(m, "{seq:1, error:'This entry is new', tock:_}");
	m = rc_call(c, "{seq:2, action:'get_value', path:['p']}");
	RC_ASSERT_MATCH(m, "{seq:2, value:nil, tock:_}");

	/* chain:nil creates; prev is not reported when chain was sent */
	m = rc_call(c, "{seq:3, action:'set_value', path:['p'], value:1, "
	    "chain:nil}");
	RC_ASSERT_MATCH(m, "{seq:3, changed:true, "
	    "chain:{node:'n1', tick:%lld, prev:nil}, tock:_}",
	    (long long)t0 + 1);

	/* wrong head */
	m = rc_call(c, "{seq:4, action:'set_value', path:['p'], value:2, "
	    "chain:{node:'n1', tick:%lld}}", (long long)t0 + 99);
	RC_ASSERT_MATCH(m, "{seq:4, error:_, tock:_}");
	cr_assert(rc_str_prefix(&m->obj, "error", "Chain is "),
	    "§2.5.2 step 4: %s", rc_show(&m->obj));
	m = rc_call(c, "{seq:5, action:'set_value', path:['p'], value:2, "
	    "chain:{node:'other', tick:%lld}}", (long long)t0 + 1);
	cr_assert(rc_str_prefix(&m->obj, "error", "Chain is "),
	    "§2.5.2 step 4: %s", rc_show(&m->obj));

	/* prev mismatch */
	m = rc_call(c, "{seq:6, action:'set_value', path:['p'], value:2, "
	    "prev:999}");
	RC_ASSERT_MATCH(m, "{seq:6, error:_, tock:_}");
	cr_assert(rc_str_prefix(&m->obj, "error", "Data is "),
	    "§2.5.2 step 3: %s", rc_show(&m->obj));
	/* type + value equality: "1" is not 1 (§8.26) */
	m = rc_call(c, "{seq:7, action:'set_value', path:['p'], value:2, "
	    "prev:'1'}");
	cr_assert(rc_str_prefix(&m->obj, "error", "Data is "),
	    "§8.26: %s", rc_show(&m->obj));
	/* none of the failed requests consumed a tick (§8.8, §8.9) */
	m = rc_call(c, "{seq:8, action:'get_state', nodes:true, known:true}");
	RC_ASSERT_MATCH(m, "{seq:8, nodes:{n1:%lld}, known:{n1:_}, tock:_}",
	    (long long)t0 + 1);

	/* prev matches: applied, no prev in the reply */
	m = rc_call(c, "{seq:9, action:'set_value', path:['p'], value:2, "
	    "prev:1, nchain:0}");
	RC_ASSERT_MATCH(m, "{seq:9, changed:true, tock:_}");
	/* both preconditions together */
	m = rc_call(c, "{seq:10, action:'set_value', path:['p'], value:3, "
	    "prev:2, chain:{node:'n1', tick:%lld}}", (long long)t0 + 2);
	RC_ASSERT_MATCH(m, "{seq:10, changed:true, "
	    "chain:{node:'n1', tick:%lld, prev:nil}, tock:_}",
	    (long long)t0 + 3);

	/* missing value is an error, not a delete */
	m = rc_call(c, "{seq:11, action:'set_value', path:['p']}");
	RC_ASSERT_MATCH(m, "{seq:11, error:_, tock:_}");

	/* delete_value with a value */
	m = rc_call(c, "{seq:12, action:'delete_value', path:['p'], "
	    "value:1}");
	RC_ASSERT_MATCH(m, "{seq:12, error:\"A deleted entry can't have a "
	    "value\", tock:_}");

	/* delete: the tombstone keeps a chain */
	m = rc_call(c, "{seq:13, action:'delete_value', path:['p']}");
	RC_ASSERT_MATCH(m, "{seq:13, changed:true, prev:3, "
	    "chain:{node:'n1', tick:%lld, prev:nil}, tock:_}",
	    (long long)t0 + 4);
	m = rc_call(c, "{seq:14, action:'get_value', path:['p'], nchain:1}");
	RC_ASSERT_MATCH(m, "{seq:14, value:nil, tock:_, "
	    "chain:{node:'n1', tick:%lld, prev:nil}}", (long long)t0 + 4);
	/* §8.10: chain:nil is allowed on a tombstone */
	m = rc_call(c, "{seq:15, action:'set_value', path:['p'], value:4, "
	    "chain:nil}");
	RC_ASSERT_MATCH(m, "{seq:15, changed:true, "
	    "chain:{node:'n1', tick:%lld, prev:nil}, tock:_}",
	    (long long)t0 + 5);

	/* deleting a non-existent path: tombstone, a tick, changed:false */
	m = rc_call(c, "{seq:16, action:'delete_value', path:['q','r']}");
	RC_ASSERT_MATCH(m, "{seq:16, changed:false, prev:nil, "
	    "chain:{node:'n1', tick:%lld, prev:nil}, tock:_}",
	    (long long)t0 + 6);

	/* empty bin and empty str are one key (§8.4) */
	m = rc_call(c, "{seq:17, action:'set_value', path:['e', b''], "
	    "value:7}");
	RC_ASSERT_MATCH(m, "{seq:17, changed:true, prev:nil, chain:_, "
	    "tock:_}");
	m = rc_call(c, "{seq:18, action:'get_value', path:['e', '']}");
	RC_ASSERT_MATCH(m, "{seq:18, value:7, tock:_}");
	/* integers and strings are different keys */
	m = rc_call(c, "{seq:19, action:'set_value', path:['i', 1], "
	    "value:'int'}");
	m = rc_call(c, "{seq:20, action:'get_value', path:['i', '1']}");
	RC_ASSERT_MATCH(m, "{seq:20, value:nil, tock:_}");
	m = rc_call(c, "{seq:21, action:'get_value', path:['i', 1]}");
	RC_ASSERT_MATCH(m, "{seq:21, value:'int', tock:_}");
	rc_close(c);
}

/* ------------------------------------------------------------------ */
/* Chain shapes with a two-node chain, via --load of a crafted snapshot */

/*
 * Files the agent loads are framed (agent/persist.h, DESIGN.md
 * "Persistence"): an 8-byte magic, then per record u32le length,
 * u32le XXH32(payload, 0), payload = one §2.8 record.
 */
#define FILE_MAGIC "DKVC\x00\x01\r\n"

static void
put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static void
append_record(const char *path, const char *notation)
{
	uint8_t *buf, hdr[8];
	size_t len;
	FILE *f;
	bool fresh = access(path, F_OK) != 0;

	cr_assert(rc_build(&buf, &len, "%s", notation) == 0);
	f = fopen(path, "ab");
	cr_assert(f != NULL, "cannot write %s", path);
	if (fresh)
		cr_assert_eq(fwrite(FILE_MAGIC, 1, 8, f), 8);
	put_le32(hdr, (uint32_t)len);
	put_le32(hdr + 4, XXH32(buf, len, 0));
	cr_assert_eq(fwrite(hdr, 1, 8, f), 8);
	cr_assert_eq(fwrite(buf, 1, len, f), len);
	fclose(f);
	free(buf);
}

Test(e2e, nchain_chain_shapes)
{
	char file[400];
	struct rc_conn *c;
	struct rc_msg *m;

	snprintf(file, sizeof(file), "%s/crafted.mp", ag.dir);
	/* §2.8 snapshot: state record, then entries with depth/path */
	append_record(file, "{nodes:{n1:6, n2:3}, "
	    "known:{n1:[[1,7]], n2:[[1,4]]}}");
	append_record(file, "{path:[], depth:0, value:nil, tock:1}");
	append_record(file, "{path:['x'], depth:0, value:5, tock:50, "
	    "chain:{node:'n2', tick:3, prev:{node:'n1', tick:6, prev:nil}}}");
	RC_START(&ag, "--standalone", "--node", "n1", "--load", file);
	c = rc_open(ag.socket);
	cr_assert(c != NULL);
	RC_ASSERT_MATCH(c->greeting, "{seq:0, shm:_, node:'n1', version:_, tick:6, "
	    "tock:_}");
	cr_assert(rc_int(&c->greeting->obj, "tock") > 50,
	    "greeting tock must follow the loaded tocks (§1.5): %s",
	    rc_show(&c->greeting->obj));

	m = rc_call(c, "{seq:1, action:'get_value', path:['x']}");
	RC_ASSERT_MATCH(m, "{seq:1, value:5, tock:50}");
	m = rc_call(c, "{seq:2, action:'get_value', path:['x'], nchain:0}");
	RC_ASSERT_MATCH(m, "{seq:2, value:5, tock:50}");
	/* truncated: no prev key */
	m = rc_call(c, "{seq:3, action:'get_value', path:['x'], nchain:1}");
	RC_ASSERT_MATCH(m, "{seq:3, value:5, tock:50, "
	    "chain:{node:'n2', tick:3}}");
	/* complete: prev:nil at the end */
	m = rc_call(c, "{seq:4, action:'get_value', path:['x'], nchain:2}");
	RC_ASSERT_MATCH(m, "{seq:4, value:5, tock:50, "
	    "chain:{node:'n2', tick:3, prev:{node:'n1', tick:6, prev:nil}}}");
	m = rc_call(c, "{seq:5, action:'get_value', path:['x'], nchain:3}");
	RC_ASSERT_MATCH(m, "{seq:5, value:5, tock:50, "
	    "chain:{node:'n2', tick:3, prev:{node:'n1', tick:6, prev:nil}}}");
	/* by event, either tick of the chain finds the entry */
	m = rc_call(c, "{seq:6, action:'get_value', node:'n2', tick:3}");
	RC_ASSERT_MATCH(m, "{seq:6, value:5, path:['x'], tock:50}");
	m = rc_call(c, "{seq:7, action:'get_value', node:'n1', tick:6}");
	RC_ASSERT_MATCH(m, "{seq:7, value:5, path:['x'], tock:50}");

	/* precondition compares heads only */
	m = rc_call(c, "{seq:8, action:'set_value', path:['x'], value:6, "
	    "chain:{node:'n1', tick:6}}");
	cr_assert(rc_str_prefix(&m->obj, "error", "Chain is "),
	    "head is (n2,3): %s", rc_show(&m->obj));

	/* local change: (n1,7) + old chain minus n1's element */
	m = rc_call(c, "{seq:9, action:'set_value', path:['x'], value:6, "
	    "chain:{node:'n2', tick:3}, nchain:3}");
	RC_ASSERT_MATCH(m, "{seq:9, changed:true, chain:{node:'n1', tick:7, "
	    "prev:{node:'n2', tick:3, prev:nil}}, tock:_}");
	m = rc_call(c, "{seq:10, action:'set_value', path:['x'], value:7}");
	RC_ASSERT_MATCH(m, "{seq:10, changed:true, prev:6, "
	    "chain:{node:'n1', tick:8}, tock:_}");
	/* (n1,6) left the chain with the first change (§1.8) */
	m = rc_call(c, "{seq:11, action:'get_value', node:'n1', tick:6}");
	RC_ASSERT_MATCH(m, "{seq:11, error:_, tock:_}");
	m = rc_call(c, "{seq:12, action:'get_value', node:'n1', tick:7}");
	RC_ASSERT_MATCH(m, "{seq:12, error:_, tock:_}");
	m = rc_call(c, "{seq:13, action:'get_value', node:'n2', tick:3}");
	RC_ASSERT_MATCH(m, "{seq:13, value:7, path:['x'], tock:_}");
	m = rc_call(c, "{seq:14, action:'get_state', nodes:true, known:true, "
	    "missing:true}");
	RC_ASSERT_MATCH(m, "{seq:14, nodes:{n1:8, n2:3}, "
	    "known:{n1:[[1,9]], n2:[[1,4]]}, missing:{}, tock:_}");
	rc_close(c);
}

/* ------------------------------------------------------------------ */
/* get_tree details (watches: test_watch.c) */

Test(e2e, get_tree_missing_path_is_empty)
{
	struct rc_conn *c;
	struct rc_msg **v;
	size_t n;

	RC_START(&ag, "--standalone", "--node", "n1");
	c = rc_open(ag.socket);
	cr_assert(c != NULL);
	rc_send(c, "{seq:1, action:'get_tree', path:['nope','deeper']}");
	v = rc_collect(c, 1, &n, RC_TIMEOUT);
	cr_assert_eq(n, 2, "§8.11: start + end, no items; first item %s",
	    n > 1 ? rc_show(&v[1]->obj) : "-");
	RC_ASSERT_MATCH(v[0], "{seq:1, state:'start', tock:_}");
	RC_ASSERT_MATCH(v[1], "{seq:1, state:'end', tock:_}");
	rc_msgs_free(v, n);
	/* reads do not create entries: a watch fetch of [] sees nothing */
	rc_send(c, "{seq:2, action:'get_tree', path:[], nchain:2}");
	v = rc_collect(c, 2, &n, RC_TIMEOUT);
	cr_assert_eq(n, 2);
	rc_msgs_free(v, n);
	rc_close(c);
}

/* ------------------------------------------------------------------ */
/* root (§2.5.6, §8.30) */

Test(e2e, root_makes_paths_relative)
{
	struct rc_conn *c, *r;
	struct rc_msg *m, **v;
	int64_t tk;
	size_t n;

	RC_START(&ag, "--standalone", "--node", "n1");
	c = rc_open(ag.socket);
	r = rc_open(ag.socket);
	cr_assert(c != NULL && r != NULL);
	m = rc_call(c, "{seq:1, action:'set_value', path:['t','u'], "
	    "value:7}");
	tk = rc_int(&m->obj, "tock");

	m = rc_call(r, "{seq:1, action:'root', path:['t','u']}");
	RC_ASSERT_MATCH(m, "{seq:1, value:7, tock:%lld, path:[], "
	    "chain:{node:'n1', tick:_, prev:nil}}", (long long)tk);
	m = rc_call(r, "{seq:2, action:'set_value', path:['x'], value:5}");
	RC_ASSERT_MATCH(m, "{seq:2, changed:true, prev:nil, chain:_, "
	    "tock:_}");
	m = rc_call(c, "{seq:2, action:'get_value', path:['t','u','x']}");
	RC_ASSERT_MATCH(m, "{seq:2, value:5, tock:_}");
	m = rc_call(c, "{seq:3, action:'get_value', path:['x']}");
	RC_ASSERT_MATCH(m, "{seq:3, value:nil, tock:_}");
	m = rc_call(r, "{seq:3, action:'get_value', path:[]}");
	RC_ASSERT_MATCH(m, "{seq:3, value:7, tock:%lld}", (long long)tk);

	rc_send(r, "{seq:4, action:'get_tree', path:[]}");
	v = rc_collect(r, 4, &n, RC_TIMEOUT);
	cr_assert_eq(n, 4, "get_tree after root: %zu messages", n);
	RC_ASSERT_MATCH(v[1], "{seq:4, path:[], depth:0, value:7, tock:_}");
	RC_ASSERT_MATCH(v[2], "{seq:4, path:['x'], depth:0, value:5, "
	    "tock:_}");
	rc_msgs_free(v, n);

	/* by event: path relative to the new root */
	m = rc_call(r, "{seq:5, action:'get_value', node:'n1', tick:%lld}",
	    (long long)rc_int(&rc_call(c, "{seq:4, action:'get_value', "
	    "path:['t','u','x'], nchain:1}")->obj, "chain.tick"));
	RC_ASSERT_MATCH(m, "{seq:5, value:5, path:['x'], tock:_}");

	/* watch: relative paths, live changes from outside */
	rc_send(r, "{seq:6, action:'watch', path:['x'], fetch:true}");
	RC_ASSERT_MATCH(rc_recv_seq(r, 6, RC_TIMEOUT),
	    "{seq:6, state:'start', tock:_}");
	RC_ASSERT_MATCH(rc_recv_seq(r, 6, RC_TIMEOUT),
	    "{seq:6, path:[], depth:0, value:5, tock:_}");
	RC_ASSERT_MATCH(rc_recv_seq(r, 6, RC_TIMEOUT),
	    "{seq:6, state:'uptodate', tock:_}");
	rc_call(c, "{seq:5, action:'set_value', path:['t','u','x','y'], "
	    "value:9}");
	RC_ASSERT_MATCH(rc_next_item(r, 6),
	    "{seq:6, path:['y'], depth:0, value:9, tock:_}");

	/* nil may no longer appear (§2.5.6) */
	m = rc_call(r, "{seq:7, action:'get_value', path:[nil]}");
	RC_ASSERT_MATCH(m, "{seq:7, error:_, tock:_}");
	m = rc_call(r, "{seq:8, action:'set_value', path:[nil, 'a'], "
	    "value:1}");
	RC_ASSERT_MATCH(m, "{seq:8, error:_, tock:_}");

	/* an empty root path changes nothing (§2.5.6) */
	{
		struct rc_conn *e = rc_open(ag.socket);

		cr_assert(e != NULL);
		RC_ASSERT_MATCH(rc_call(e, "{seq:1, action:'root', path:[]}"),
		    "{seq:1, value:nil, tock:_, path:[]}");
		RC_ASSERT_MATCH(rc_call(e, "{seq:2, action:'get_value', "
		    "path:['t','u']}"), "{seq:2, value:7, tock:%lld}",
		    (long long)tk);
		rc_close(e);
	}

	/* a second root is relative to the first */
	m = rc_call(r, "{seq:9, action:'root', path:['x']}");
	RC_ASSERT_MATCH(m, "{seq:9, value:5, tock:_, path:[], chain:_}");
	m = rc_call(r, "{seq:10, action:'get_value', path:['y']}");
	RC_ASSERT_MATCH(m, "{seq:10, value:9, tock:_}");
	rc_close(r);
	rc_close(c);
}

/* ------------------------------------------------------------------ */
/* Concurrency (§2.2) */

Test(e2e, two_connections_interleaved)
{
	enum { N = 40 };
	struct rc_conn *a, *b;
	struct rc_msg *m;
	bool seen[N + 1];
	int i;

	RC_START(&ag, "--standalone", "--node", "n1");
	a = rc_open(ag.socket);
	b = rc_open(ag.socket);
	cr_assert(a != NULL && b != NULL);
	/* both pipeline without waiting; seq spaces are per connection */
	for (i = 1; i <= N; i++) {
		cr_assert(rc_send(a, "{seq:%d, action:'set_value', "
		    "path:['c', %d], value:%d}", i, i, i * 10) == i);
		cr_assert(rc_send(b, "{seq:%d, action:'get_value', "
		    "path:['c', %d]}", i, i) == i);
	}
	memset(seen, 0, sizeof(seen));
	for (i = 1; i <= N; i++) {
		m = rc_recv(a, RC_TIMEOUT);
		cr_assert(m != NULL, "a: reply %d missing", i);
		RC_ASSERT_MATCH(m, "{seq:_, changed:true, prev:nil, chain:_, "
		    "tock:_}");
		seen[rc_int(&m->obj, "seq")] = true;
		rc_msg_free(m);
	}
	for (i = 1; i <= N; i++)
		cr_assert(seen[i], "a: no reply for seq %d", i);
	for (i = 1; i <= N; i++) {
		char err[4096];

		m = rc_recv_seq(b, i, RC_TIMEOUT);
		cr_assert(m != NULL, "b: reply %d missing", i);
		cr_assert(rc_match(&m->obj, err, sizeof(err),
		    "{seq:%d, value:%d, tock:_}", i, i * 10) ||
		    rc_match(&m->obj, err, sizeof(err),
		    "{seq:%d, value:nil, tock:_}", i), "%s", err);
		rc_msg_free(m);
	}
	/* after both are done, every value is visible to b */
	for (i = 1; i <= N; i++)
		RC_ASSERT_MATCH(rc_call(b, "{seq:%d, action:'get_value', "
		    "path:['c', %d]}", 100 + i, i),
		    "{seq:%d, value:%d, tock:_}", 100 + i, i * 10);
	rc_close(a);
	rc_close(b);
}

/* ------------------------------------------------------------------ */
/* §2.6 path shortening: the spec's own table, base ['a','b'] */

Test(e2e, path_shortening_table)
{
	static const char *const paths[] = {
		"['a','b']", "['a','b','c','d']", "['a','b','c','e','f']",
		"['a','b','c','e','g','h']", "['a','b','c','i']",
		"['a','b','j']",
	};
	static const char *const sent[] = {
		"depth:0, path:[]", "depth:0, path:['c','d']",
		"depth:1, path:['e','f']", "depth:2, path:['g','h']",
		"depth:1, path:['i']", "depth:0, path:['j']",
	};
	struct rc_conn *c;
	struct rc_msg **v;
	size_t i, n;

	RC_START(&ag, "--standalone", "--node", "n1");
	c = rc_open(ag.socket);
	cr_assert(c != NULL);
	for (i = 0; i < 6; i++)
		RC_ASSERT_MATCH(rc_call(c, "{seq:%zu, action:'set_value', "
		    "path:%s, value:%zu, nchain:0}", i + 1, paths[i], i),
		    "{seq:%zu, changed:true, prev:nil, tock:_}", i + 1);
	rc_send(c, "{seq:10, action:'get_tree', path:['a','b']}");
	v = rc_collect(c, 10, &n, RC_TIMEOUT);
	cr_assert_eq(n, 8, "6 items expected, got %zu messages", n);
	for (i = 0; i < 6; i++)
		RC_ASSERT_MATCH(v[i + 1], "{seq:10, %s, value:%zu, tock:_}",
		    sent[i], i);
	rc_msgs_free(v, n);
	/* watch fetch also sends the value-less c and c/e in between */
	rc_send(c, "{seq:11, action:'watch', path:['a','b'], fetch:true}");
	RC_ASSERT_MATCH(rc_recv_seq(c, 11, RC_TIMEOUT),
	    "{seq:11, state:'start', tock:_}");
	RC_ASSERT_MATCH(rc_recv_seq(c, 11, RC_TIMEOUT),
	    "{seq:11, depth:0, path:[], value:0, tock:_}");
	RC_ASSERT_MATCH(rc_recv_seq(c, 11, RC_TIMEOUT),
	    "{seq:11, depth:0, path:['c'], value:nil, tock:_}");
	RC_ASSERT_MATCH(rc_recv_seq(c, 11, RC_TIMEOUT),
	    "{seq:11, depth:1, path:['d'], value:1, tock:_}");
	RC_ASSERT_MATCH(rc_recv_seq(c, 11, RC_TIMEOUT),
	    "{seq:11, depth:1, path:['e'], value:nil, tock:_}");
	RC_ASSERT_MATCH(rc_recv_seq(c, 11, RC_TIMEOUT),
	    "{seq:11, depth:2, path:['f'], value:2, tock:_}");
	RC_ASSERT_MATCH(rc_recv_seq(c, 11, RC_TIMEOUT),
	    "{seq:11, depth:2, path:['g'], value:nil, tock:_}");
	RC_ASSERT_MATCH(rc_recv_seq(c, 11, RC_TIMEOUT),
	    "{seq:11, depth:3, path:['h'], value:3, tock:_}");
	RC_ASSERT_MATCH(rc_recv_seq(c, 11, RC_TIMEOUT),
	    "{seq:11, depth:1, path:['i'], value:4, tock:_}");
	RC_ASSERT_MATCH(rc_recv_seq(c, 11, RC_TIMEOUT),
	    "{seq:11, depth:0, path:['j'], value:5, tock:_}");
	RC_ASSERT_MATCH(rc_recv_seq(c, 11, RC_TIMEOUT),
	    "{seq:11, state:'uptodate', tock:_}");
	rc_close(c);
}

/* --init: JSON if it parses, else a string */

/* Start an agent with --init text; assert the root value. */
static void
check_init(const char *init, const char *expect)
{
	struct rc_conn *c;

	harness_cleanup(&ag);
	harness_init(&ag);
	RC_START(&ag, "--standalone", "--node", "n1", "--init", init);
	c = rc_open(ag.socket);
	cr_assert(c != NULL);
	RC_ASSERT_MATCH(rc_call(c, "{seq:1, action:'get_value', path:[], "
	    "nchain:1}"), "{seq:1, value:%s, tock:_, "
	    "chain:{node:'n1', tick:1, prev:nil}}", expect);
	rc_close(c);
}

Test(e2e, init_value_scalars)
{
	check_init("123", "123");
	check_init("-5", "-5");
	check_init("true", "true");
	check_init("hello world", "'hello world'");
}

Test(e2e, init_value_json_structured)
{
	check_init("{\"a\": [1, -2, \"x\", null, true]}",
	    "{a:[1, -2, 'x', nil, true]}");
	check_init("[1, 2]", "[1, 2]");
	check_init("\"quoted\"", "'quoted'");
}

/* §2.5.8: *_internal = the same actions below [nil] */

Test(e2e, internal_actions)
{
	struct rc_conn *c;
	struct rc_msg *m;

	RC_START(&ag, "--standalone", "--node", "n1");
	c = rc_open(ag.socket);
	cr_assert(c != NULL);
	m = rc_call(c, "{seq:1, action:'set_internal', path:['cfg', 'x'], "
	    "value:5}");
	RC_ASSERT_MATCH(m, "{seq:1, changed:true, prev:nil, chain:_, "
	    "tock:_}");
	RC_ASSERT_MATCH(rc_call(c, "{seq:2, action:'get_value', "
	    "path:[nil, 'cfg', 'x']}"), "{seq:2, value:5, tock:_}");
	RC_ASSERT_MATCH(rc_call(c, "{seq:3, action:'get_internal', "
	    "path:['cfg', 'x']}"), "{seq:3, value:5, tock:_}");
	RC_ASSERT_MATCH(rc_call(c, "{seq:4, action:'get_internal', "
	    "path:['cfg', nil]}"), "{seq:4, error:_, tock:_}");
	m = rc_call(c, "{seq:5, action:'delete_internal', path:['cfg', 'x']}");
	RC_ASSERT_MATCH(m, "{seq:5, changed:true, prev:5, chain:_, tock:_}");
	RC_ASSERT_MATCH(rc_call(c, "{seq:6, action:'get_value', "
	    "path:[nil, 'cfg', 'x']}"), "{seq:6, value:nil, tock:_}");
	/* not visible at the user path ['cfg','x'] */
	RC_ASSERT_MATCH(rc_call(c, "{seq:7, action:'get_value', "
	    "path:['cfg', 'x']}"), "{seq:7, value:nil, tock:_}");
	rc_close(c);
}

/* §2.5.9 delete_tree with nchain > 0: one item per cleared entry */

Test(e2e, delete_tree_with_nchain_is_multi)
{
	struct rc_conn *c;
	struct rc_msg **v;
	struct rc_paths L = { .n = 0 };
	size_t n;

	RC_START(&ag, "--standalone", "--node", "n1");
	c = rc_open(ag.socket);
	cr_assert(c != NULL);
	rc_call(c, "{seq:1, action:'set_value', path:['dt'], value:'top'}");
	rc_call(c, "{seq:2, action:'set_value', path:['dt','a','b'], "
	    "value:'deep'}");
	rc_call(c, "{seq:3, action:'set_value', path:['dt','c'], value:3}");
	rc_send(c, "{seq:4, action:'delete_tree', path:['dt'], nchain:1}");
	v = rc_collect(c, 4, &n, RC_TIMEOUT);
	cr_assert_eq(n, 5, "start, 3 items, end; got %zu, first %s", n,
	    rc_show(&v[0]->obj));
	RC_ASSERT_MATCH(v[0], "{seq:4, state:'start', tock:_}");
	RC_ASSERT_MATCH(v[1], "{seq:4, node:'n1', tick:_, path:_, depth:_, "
	    "old_value:'top', tock:_, ...}");
	cr_assert_str_eq(rc_lengthen(&L, &v[1]->obj), "[]");
	RC_ASSERT_MATCH(v[2], "{seq:4, node:'n1', tick:_, path:_, depth:_, "
	    "old_value:'deep', tock:_, ...}");
	cr_assert_str_eq(rc_lengthen(&L, &v[2]->obj), "['a', 'b']");
	RC_ASSERT_MATCH(v[3], "{seq:4, node:'n1', tick:_, path:_, depth:_, "
	    "old_value:3, tock:_, ...}");
	cr_assert_str_eq(rc_lengthen(&L, &v[3]->obj), "['c']");
	cr_assert(!rc_has(&v[1]->obj, "changed"), "no count in multi mode");
	RC_ASSERT_MATCH(v[4], "{seq:4, state:'end', tock:_}");
	rc_msgs_free(v, n);
	RC_ASSERT_MATCH(rc_call(c, "{seq:5, action:'get_value', "
	    "path:['dt','a','b']}"), "{seq:5, value:nil, tock:_}");
	rc_close(c);
}

/* Many requests in one write; replies for all, none lost */

Test(e2e, pipelined_burst)
{
	enum { N = 3000 };
	msgpack_sbuffer sb;
	struct rc_conn *c;
	int i;

	RC_START(&ag, "--standalone", "--node", "n1");
	c = rc_open(ag.socket);
	cr_assert(c != NULL);
	msgpack_sbuffer_init(&sb);
	for (i = 1; i <= N; i++) {
		uint8_t *buf;
		size_t len;

		cr_assert(rc_build(&buf, &len, "{seq:%d, action:'%s', "
		    "path:['p', %d], value:%d}", i, i % 2 ? "set_value" :
		    "get_value", (i + 1) / 2, i) == 0);
		msgpack_sbuffer_write(&sb, (const char *)buf, len);
		free(buf);
	}
	cr_assert(rc_send_raw(c, sb.data, sb.size) == 0);
	msgpack_sbuffer_destroy(&sb);
	for (i = 1; i <= N; i++) {
		struct rc_msg *m = rc_recv_seq(c, i, RC_TIMEOUT);

		cr_assert(m != NULL, "reply %d of %d missing", i, N);
		if (i % 2)
			RC_ASSERT_MATCH(m, "{seq:%d, changed:true, prev:nil, "
			    "chain:_, tock:_}", i);
		else	/* even i reads the key odd i-1 wrote before it */
			RC_ASSERT_MATCH(m, "{seq:%d, value:%d, tock:_}", i,
			    i - 1);
		rc_msg_free(m);
	}
	rc_close(c);
}
