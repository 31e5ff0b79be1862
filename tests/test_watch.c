/*
 * test_watch: watches of a real distkv-agent (spec §2.5.5), end to end:
 * depth windows, many watched entries, a watch beside other requests,
 * order under load, and a fetch that is never staler than what came
 * live.  Each test starts its own agent (--standalone) through the
 * harness and talks to it with the raw client, as test_e2e does.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

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

TestSuite(watch, .init = setup, .fini = teardown, .timeout = 30);

Test(watch, watch_depth_window)
{
	struct rc_conn *c, *w;
	struct rc_msg *m;

	RC_START(&ag, "--standalone", "--node", "n1");
	c = rc_open(ag.socket);
	w = rc_open(ag.socket);
	cr_assert(c != NULL && w != NULL);
	rc_call(c, "{seq:1, action:'set_value', path:['d'], value:0}");
	rc_call(c, "{seq:2, action:'set_value', path:['d','a'], value:1}");
	rc_call(c, "{seq:3, action:'set_value', path:['d','a','b'], "
	    "value:2}");

	/* max_depth 0 = the entry only, in the walk and live (§8.13) */
	rc_send(w, "{seq:1, action:'watch', path:['d'], fetch:true, "
	    "max_depth:0}");
	RC_ASSERT_MATCH(rc_recv_seq(w, 1, RC_TIMEOUT),
	    "{seq:1, state:'start', tock:_}");
	RC_ASSERT_MATCH(rc_recv_seq(w, 1, RC_TIMEOUT),
	    "{seq:1, path:[], depth:0, value:0, tock:_}");
	RC_ASSERT_MATCH(rc_recv_seq(w, 1, RC_TIMEOUT),
	    "{seq:1, state:'uptodate', tock:_}");
	/* min_depth 1: children only */
	rc_send(w, "{seq:2, action:'watch', path:['d'], fetch:true, "
	    "min_depth:1, max_depth:1}");
	RC_ASSERT_MATCH(rc_recv_seq(w, 2, RC_TIMEOUT),
	    "{seq:2, state:'start', tock:_}");
	RC_ASSERT_MATCH(rc_recv_seq(w, 2, RC_TIMEOUT),
	    "{seq:2, path:['a'], depth:0, value:1, tock:_}");
	RC_ASSERT_MATCH(rc_recv_seq(w, 2, RC_TIMEOUT),
	    "{seq:2, state:'uptodate', tock:_}");

	/* live: deeper change seen by neither, then a child, then the entry */
	rc_call(c, "{seq:4, action:'set_value', path:['d','a','b'], "
	    "value:20}");
	rc_call(c, "{seq:5, action:'set_value', path:['d','a'], value:10}");
	rc_call(c, "{seq:6, action:'delete_value', path:['d']}");
	m = rc_next_item(w, 1);
	RC_ASSERT_MATCH(m, "{seq:1, path:[], depth:0, value:nil, tock:_}");
	m = rc_next_item(w, 2);
	/* same path as the last item sent: all shared (§2.6) */
	RC_ASSERT_MATCH(m, "{seq:2, path:[], depth:1, value:10, tock:_}");
	/* stop both; each ends */
	RC_ASSERT_MATCH(rc_call(w, "{seq:3, action:'stop', task:1}"),
	    "{seq:3, result:true, tock:_}");
	RC_ASSERT_MATCH(rc_recv_seq(w, 1, RC_TIMEOUT),
	    "{seq:1, state:'end', tock:_}");
	RC_ASSERT_MATCH(rc_call(w, "{seq:4, action:'stop', task:2}"),
	    "{seq:4, result:true, tock:_}");
	RC_ASSERT_MATCH(rc_recv_seq(w, 2, RC_TIMEOUT),
	    "{seq:2, state:'end', tock:_}");
	/* a stopped task is gone */
	RC_ASSERT_MATCH(rc_call(w, "{seq:5, action:'stop', task:2}"),
	    "{seq:5, result:false, tock:_}");
	rc_close(w);
	rc_close(c);
}

/*
 * Watches on many entries, a third of the entries watched twice, the
 * first watches of odd entries ended (last first): each watch still
 * running sees exactly the changes of its own entry, the ended ones none.
 * Entries carry only a bit; their watches are in a table by entry
 * (watch.c) that grows and closes its gaps as watches end.
 */
Test(watch, watches_of_many_entries_see_their_own_changes)
{
	enum { K = 300 };
	struct rc_conn *c, *w;

	RC_START(&ag, "--standalone", "--node", "n1");
	c = rc_open(ag.socket);
	w = rc_open(ag.socket);
	cr_assert(c != NULL && w != NULL);
	for (int i = 0; i < K; i++)
		rc_msg_free(rc_call(c, "{seq:%d, action:'set_value', "
		    "path:['k', %d], value:%d}", 1 + i, i, i));
	/* a connection's seqs only grow: first watches 1000.., second
	 * 2000.., stops 3000.. */
	for (int twice = 0; twice <= 1; twice++)
		for (int i = 0; i < K; i++) {
			int seq = (twice ? 2000 : 1000) + i;

			if (twice && i % 3 != 0)
				continue;
			rc_send(w, "{seq:%d, action:'watch', path:['k', %d], "
			    "max_depth:0}", seq, i);
			RC_ASSERT_MATCH(rc_recv_seq(w, seq, RC_TIMEOUT),
			    "{seq:%d, state:'start', tock:_}", seq);
		}
	for (int i = K - 1; i >= 0; i--) {
		if (i % 2 == 0)
			continue;
		RC_ASSERT_MATCH(rc_call(w, "{seq:%d, action:'stop', "
		    "task:%d}", 3000 + K - i, 1000 + i),
		    "{seq:%d, result:true, tock:_}", 3000 + K - i);
		RC_ASSERT_MATCH(rc_recv_seq(w, 1000 + i, RC_TIMEOUT),
		    "{seq:%d, state:'end', tock:_}", 1000 + i);
	}
	for (int i = 0; i < K; i++)
		rc_msg_free(rc_call(c, "{seq:%d, action:'set_value', "
		    "path:['k', %d], value:%d}", 1000 + i, i, 1000 + i));
	/* running: the first watches of even keys, every second watch */
	for (int i = 0; i < K; i++)
		for (int twice = 0; twice <= 1; twice++) {
			int seq = (twice ? 2000 : 1000) + i;

			if (twice ? i % 3 != 0 : i % 2 != 0)
				continue;
			RC_ASSERT_MATCH(rc_next_item(w, seq), "{seq:%d, path:[], "
			    "depth:0, value:%d, tock:_}", seq, 1000 + i);
		}
	/* the items came before this reply: nothing else is queued */
	rc_msg_free(rc_call(w, "{seq:9999, action:'get_value', "
	    "path:['k', 0]}"));
	for (int i = 0; i < K; i++) {
		cr_assert_null(rc_recv_seq(w, 1000 + i, 0), "watch %d",
		    1000 + i);
		cr_assert_null(rc_recv_seq(w, 2000 + i, 0), "watch %d",
		    2000 + i);
	}
	rc_close(w);
	rc_close(c);
}

Test(watch, watch_does_not_block_other_requests)
{
	struct rc_conn *c;
	struct rc_msg *m, **v;
	int64_t tk;
	size_t n;

	RC_START(&ag, "--standalone", "--node", "n1");
	c = rc_open(ag.socket);
	cr_assert(c != NULL);
	rc_send(c, "{seq:1, action:'watch', path:['w']}");
	RC_ASSERT_MATCH(rc_recv_seq(c, 1, RC_TIMEOUT),
	    "{seq:1, state:'start', tock:_}");
	m = rc_call(c, "{seq:2, action:'set_value', path:['w','a'], "
	    "value:1}");
	RC_ASSERT_MATCH(m, "{seq:2, changed:true, prev:nil, chain:_, "
	    "tock:_}");
	tk = rc_int(&m->obj, "tock");
	RC_ASSERT_MATCH(rc_next_item(c, 1),
	    "{seq:1, path:['a'], depth:0, value:1, tock:%lld}", (long long)tk);
	RC_ASSERT_MATCH(rc_call(c, "{seq:3, action:'get_value', "
	    "path:['w','a']}"), "{seq:3, value:1, tock:%lld}", (long long)tk);
	rc_send(c, "{seq:4, action:'get_tree', path:['w']}");
	v = rc_collect(c, 4, &n, RC_TIMEOUT);
	cr_assert_eq(n, 3);
	rc_msgs_free(v, n);
	/* a second watch on the same connection runs alongside */
	rc_send(c, "{seq:5, action:'watch', path:['w','a']}");
	RC_ASSERT_MATCH(rc_recv_seq(c, 5, RC_TIMEOUT),
	    "{seq:5, state:'start', tock:_}");
	m = rc_call(c, "{seq:6, action:'set_value', path:['w','a','b'], "
	    "value:2}");
	tk = rc_int(&m->obj, "tock");
	RC_ASSERT_MATCH(rc_next_item(c, 1),
	    "{seq:1, path:['b'], depth:1, value:2, tock:%lld}",
	    (long long)tk);
	RC_ASSERT_MATCH(rc_next_item(c, 5),
	    "{seq:5, path:['b'], depth:0, value:2, tock:%lld}",
	    (long long)tk);
	rc_close(c);
}

Test(watch, watchers_see_every_change_in_order, .timeout = 60)
{
	enum { W = 3, N = 300, BATCH = 20, KEYS = 7 };
	struct rc_conn *wr, *w[W];
	int64_t tocks[N + 1], wlast[W];
	int i, j, k;

	RC_START(&ag, "--standalone", "--node", "n1");
	wr = rc_open(ag.socket);
	cr_assert(wr != NULL);
	for (k = 0; k < W; k++) {
		w[k] = rc_open(ag.socket);
		cr_assert(w[k] != NULL);
		rc_send(w[k], "{seq:1, action:'watch', path:['m'], nchain:1}");
		RC_ASSERT_MATCH(rc_recv_seq(w[k], 1, RC_TIMEOUT),
		    "{seq:1, state:'start', tock:_}");
		wlast[k] = 0;
	}
	for (i = 1; i <= N; i += BATCH) {
		for (j = i; j < i + BATCH; j++)
			rc_send(wr, "{seq:%d, action:'set_value', "
			    "path:['m', %d], value:%d}", j, j % KEYS, j);
		for (j = i; j < i + BATCH; j++) {
			struct rc_msg *m = rc_recv_seq(wr, j, RC_TIMEOUT);

			RC_ASSERT_MATCH(m, "{seq:%d, changed:true, prev:_, "
			    "chain:_, tock:_}", j);
			tocks[j] = rc_int(&m->obj, "tock");
			rc_msg_free(m);
		}
		for (k = 0; k < W; k++) {
			for (j = i; j < i + BATCH; j++) {
				struct rc_msg *m = rc_next_item(w[k], 1);
				char err[4096];

				cr_assert(rc_match(&m->obj, err, sizeof(err),
				    "{seq:1, path:_, depth:_, value:%d, "
				    "chain:{node:'n1', tick:_, prev:nil}, "
				    "tock:%lld}", j, (long long)tocks[j]),
				    "watcher %d, change %d: %s", k, j, err);
				cr_assert(tocks[j] > wlast[k]);
				wlast[k] = tocks[j];
				rc_msg_free(m);
			}
		}
	}
	for (k = 0; k < W; k++)
		rc_close(w[k]);
	rc_close(wr);
}

Test(watch, watch_fetch_never_stale_after_newer, .timeout = 60)
{
	enum { N = 400 };
	struct rc_conn *wr, *w;
	struct rc_msg *m;
	int64_t lastval = 0;
	bool up = false;
	int i;

	RC_START(&ag, "--standalone", "--node", "n1");
	wr = rc_open(ag.socket);
	w = rc_open(ag.socket);
	cr_assert(wr != NULL && w != NULL);
	for (i = 1; i <= N; i++) {
		rc_send(wr, "{seq:%d, action:'set_value', path:['s','k'], "
		    "value:%d, nchain:0}", i, i);
		if (i == N / 2)
			rc_send(w, "{seq:1, action:'watch', path:['s'], "
			    "fetch:true}");
	}
	for (i = 1; i <= N; i++) {
		m = rc_recv_seq(wr, i, RC_TIMEOUT);
		cr_assert(m != NULL, "writer reply %d", i);
		rc_msg_free(m);
	}
	RC_ASSERT_MATCH(rc_recv_seq(w, 1, RC_TIMEOUT),
	    "{seq:1, state:'start', tock:_}");
	/* values of ['s','k'] must never go backwards; the last is N */
	while (lastval < N) {
		const msgpack_object *val;
		int64_t x;

		m = rc_recv_seq(w, 1, RC_TIMEOUT);
		cr_assert(m != NULL, "watcher stalled at value %lld",
		    (long long)lastval);
		if (proto_str_eq(rc_get(&m->obj, "state"), "uptodate")) {
			cr_assert(!up, "two uptodate messages");
			up = true;
			continue;
		}
		val = rc_get(&m->obj, "value");
		cr_assert(val != NULL, "item without value: %s",
		    rc_show(&m->obj));
		if (val->type == MSGPACK_OBJECT_NIL)
			continue;	/* ['s'] itself, value-less */
		x = rc_int(&m->obj, "value");
		cr_assert(x >= lastval, "stale value %lld after %lld",
		    (long long)x, (long long)lastval);
		lastval = x;
		rc_msg_free(m);
	}
	cr_assert_eq(lastval, N);
	rc_close(w);
	rc_close(wr);
}
