/*
 * test_cluster: replication between real distkv-agents, each with its
 * embedded `serf agent`, on loopback (tests/cluster.h: 127.0.0.20+i,
 * ports from the pid, --clock 0.2).
 *
 * What is checked is what a user sees: values through each node's shm
 * region and client socket, and complete trees through the `dump` action
 * (values, chains and tocks, tombstones included).  Every wait has a
 * deadline; a failure message carries the agents' stderr and serf logs.
 * The tests run one at a time (clustertest.c's main); test_cluster_peer.c
 * has the cluster key's and hostile server messages' tests.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <msgpack.h>
#include <sodium.h>

#include "cluster.h"
#include "clustertest.h"
#include "distkv.h"
#include "proto.h"
#include "rawclient.h"

const int clustertest_ipbase = 20;

TestSuite(cluster, .fini = teardown, .timeout = 60.);

/* ---- helpers ---- */

/* Outstanding async replies of a batch of writes. */
struct batch {
	int left;
	int failed;
	int first_rc;
};

static void
batch_done(void *arg, int rc, const struct distkv_set_result *r)
{
	struct batch *b = arg;

	(void)r;
	b->left--;
	if (rc != 0 && b->failed++ == 0)
		b->first_rc = rc;
}

/* Drive the connections until every reply of b arrived. */
static void
pump(distkv **k, int n, struct batch *b, int timeout_ms)
{
	long long deadline = harness_now_ms() + timeout_ms;
	struct pollfd pfd[CLUSTER_MAX];

	for (int i = 0; i < n; i++)
		cr_assert(distkv_process(k[i]) == 0);
	while (b->left > 0) {
		cr_assert(harness_now_ms() < deadline,
		    "%d replies missing after %d ms", b->left, timeout_ms);
		for (int i = 0; i < n; i++) {
			pfd[i].fd = distkv_fd(k[i]);
			pfd[i].events = POLLIN |
			    (distkv_want_write(k[i]) ? POLLOUT : 0);
		}
		if (poll(pfd, (nfds_t)n, 100) <= 0)
			continue;
		for (int i = 0; i < n; i++)
			if (pfd[i].revents != 0)
				cr_assert(distkv_process(k[i]) == 0,
				    "connection %d failed", i);
	}
	cr_assert(b->failed == 0, "%d writes failed, first: %s", b->failed,
	    distkv_strerror(b->first_rc));
}

/* Queue set p = value (msgpack) on k. */
static void
queue_set(distkv *k, const distkv_path *p, const void *value, size_t len,
    struct batch *b)
{
	cr_assert(distkv_async_set(k, p, value, len, NULL, batch_done, b,
	    NULL) == 0);
	b->left++;
}

static void
queue_int(distkv *k, const char *name, int64_t key, int64_t val,
    struct batch *b)
{
	struct distkv_value v = { NULL, 0 };
	distkv_path *p = cluster_path(name, key);

	cr_assert(distkv_value_from_int(&v, val) == 0);
	queue_set(k, p, v.data, v.len, b);
	distkv_value_clear(&v);
	distkv_path_free(p);
}

/* Assert that every node's region holds [name, k] = k + add for k < n. */
static void
check_ints_in_shm(const char *name, int n, int64_t add)
{
	for (int i = 0; i < cl.n; i++) {
		distkv_shm *s;
		int rc, missing = 0, first = -1;

		if (cl.node[i].h.pid <= 0)
			continue;
		cr_assert(distkv_shm_open(cl.node[i].h.shm, &s) == 0);
		for (int key = 0; key < n; key++) {
			distkv_path *p = cluster_path(name, key);
			int64_t v = -1;

			rc = distkv_shm_get_int(s, p, &v);
			if (rc != 0 || v != key + add) {
				if (missing++ == 0)
					first = key;
			}
			distkv_path_free(p);
		}
		distkv_shm_close(s);
		cr_assert(missing == 0, "n%d: %d of %d values of '%s' wrong or "
		    "missing in shm (first: %d)\n%s", i, missing, n, name,
		    first, DIAG);
	}
}

/* ---- a write anywhere is seen everywhere ---- */

static void
write_anywhere(int n)
{
	char val[64];

	for (int i = 0; i < n; i++) {
		distkv_path *p = cluster_path("w", i);

		snprintf(val, sizeof(val), "from n%d", i);
		set_str(i, p, val);
		wait_str(p, val, VISIBLE_MS);
		distkv_path_free(p);
	}
	{
		/* an update of another node's entry, then a delete */
		distkv_path *p = cluster_path("w", 0);

		set_str(n - 1, p, "changed by the last node");
		wait_str(p, "changed by the last node", VISIBLE_MS);
		distkv_path_free(p);
		p = cluster_path("w", 1);
		{
			distkv *k = conn(0);

			cr_assert(distkv_delete(k, p, NULL, NULL) == 0);
			distkv_close(k);
		}
		wait_str(p, NULL, VISIBLE_MS);
		distkv_path_free(p);
	}
}

/* Every node writes per_node different keys at the same time. */
static void
concurrent_keys(int n, int per_node)
{
	distkv *k[CLUSTER_MAX];
	struct batch b = { 0, 0, 0 };

	for (int i = 0; i < n; i++)
		k[i] = conn(i);
	for (int j = 0; j < per_node; j++)
		for (int i = 0; i < n; i++)
			queue_int(k[i], "c", i * 1000 + j, i * 1000 + j, &b);
	pump(k, n, &b, 10000);
	for (int i = 0; i < n; i++)
		distkv_close(k[i]);
	/* root + w/0 + w/1 (tombstone) + w/2.. + the new keys */
	wait_same((size_t)(1 + n + n * per_node), CONVERGE_MS);
	{
		struct cluster_dump d;

		cr_assert(cluster_dump(&cl, 0, &d) == 0);
		for (int i = 0; i < n; i++)
			for (int j = 0; j < per_node; j++) {
				distkv_path *p = cluster_path("c", i * 1000 + j);

				cr_assert(cluster_dump_find_path(&d, p) != NULL,
				    "c/%d missing", i * 1000 + j);
				distkv_path_free(p);
			}
		cluster_dump_free(&d);
	}
}

Test(cluster, three_nodes_write_anywhere)
{
	start_all(3);
	write_anywhere(3);
	concurrent_keys(3, 100);
	stop_all();
}

Test(cluster, five_nodes_write_anywhere)
{
	start_all(5);
	write_anywhere(5);
	concurrent_keys(5, 60);
	stop_all();
}

/* ---- concurrent writes of one key: one winner everywhere ---- */

Test(cluster, same_key_one_winner)
{
	enum { KEYS = 10, ROUNDS = 4 };
	distkv *k[3];
	struct cluster_dump d;

	start_all(3);
	for (int i = 0; i < 3; i++)
		k[i] = conn(i);
	for (int r = 0; r < ROUNDS; r++) {
		struct batch b = { 0, 0, 0 };

		/* every node writes every key, all requests in flight at once;
		 * before the last round n2 deletes instead (tombstones race) */
		for (int key = 0; key < KEYS; key++)
			for (int i = 0; i < 3; i++) {
				distkv_path *p = cluster_path("s", key);

				if (i == 2 && r < ROUNDS - 1) {
					cr_assert(distkv_async_delete(k[i], p,
					    NULL, batch_done, &b, NULL) == 0);
					b.left++;
				} else
					queue_int(k[i], "s", key, 100 * r + i,
					    &b);
				distkv_path_free(p);
			}
		pump(k, 3, &b, 10000);
		wait_same(1 + KEYS, CONVERGE_MS);
	}
	for (int i = 0; i < 3; i++)
		distkv_close(k[i]);
	/* the winner is one of the last round's writes, the same everywhere
	 * (wait_same compared the dumps; check the regions too) */
	cr_assert(cluster_dump(&cl, 0, &d) == 0);
	for (int key = 0; key < KEYS; key++) {
		distkv_path *p = cluster_path("s", key);
		const struct cluster_item *it = cluster_dump_find_path(&d, p);
		int64_t v = -1;

		cr_assert(it != NULL, "s/%d missing", key);
		cr_assert(distkv_value_get_int(it->value, it->value_len, &v)
		    == 0);
		cr_assert(v >= 100 * (ROUNDS - 1) && v <= 100 * (ROUNDS - 1) + 2,
		    "s/%d = %lld: not a last-round write", key, (long long)v);
		cr_assert(cluster_wait_value(&cl, 0, p, it->value,
		    it->value_len, VISIBLE_MS, why, sizeof(why)) == 0,
		    "s/%d: %s", key, why);
		distkv_path_free(p);
	}
	cluster_dump_free(&d);
	stop_all();
}

/* ---- the conflict rule picks the documented winner, not just one ---- */

/* One write of the race below: its reply (chain and tock). */
struct wrec {
	struct batch *b;
	int rc;
	struct distkv_chain chain;
	uint64_t tock;
};

static void
wrec_done(void *arg, int rc, const struct distkv_set_result *r)
{
	struct wrec *w = arg;

	w->b->left--;
	w->rc = rc;
	if (rc == 0 && r != NULL) {
		w->chain = r->chain;
		w->tock = r->tock;
	}
}

/* Does chain e hold c's head (node, tick or later)? */
static bool
chain_descends_from(const struct distkv_chain *e, const struct distkv_chain *c)
{
	for (size_t i = 0; i < e->n; i++)
		if (strcmp(e->ev[i].node, c->ev[0].node) == 0)
			return e->ev[i].tick >= c->ev[0].tick;
	return false;
}

/*
 * docs/cluster.md, "Conflicts": every node writes every key at once; the
 * value every node ends with must be the write that descends from the
 * others, or, between concurrent ones, the one with the higher tock, then
 * the higher head node name.  (same_key_one_winner checks agreement only;
 * tests/test_decide.c checks each tier alone.)
 */
Test(cluster, conflict_winner_is_the_documented_one)
{
	enum { KEYS = 12 };
	static struct wrec w[KEYS][3];
	struct distkv_set_opts o;
	struct batch b = { 0, 0, 0 };
	distkv *k[3];
	int concurrent = 0;

	memset(&o, 0, sizeof(o));
	o.nchain = 5;
	start_all(3);
	for (int i = 0; i < 3; i++)
		k[i] = conn(i);
	for (int key = 0; key < KEYS; key++)
		for (int i = 0; i < 3; i++) {
			struct distkv_value v = { NULL, 0 };
			distkv_path *p = cluster_path("w", key);

			cr_assert(distkv_value_from_int(&v, 100 + i) == 0);
			w[key][i].b = &b;
			cr_assert(distkv_async_set(k[i], p, v.data, v.len, &o,
			    wrec_done, &w[key][i], NULL) == 0);
			b.left++;
			distkv_value_clear(&v);
			distkv_path_free(p);
		}
	pump(k, 3, &b, 10000);
	wait_same(1 + KEYS, CONVERGE_MS);
	for (int key = 0; key < KEYS; key++) {
		distkv_path *p = cluster_path("w", key);
		struct distkv_entry e;
		const struct wrec *win;
		int64_t v = -1;

		memset(&e, 0, sizeof(e));
		cr_assert(distkv_get(k[0], p, 5, &e) == 0);
		cr_assert(distkv_value_get_int(e.value.data, e.value.len, &v)
		    == 0 && v >= 100 && v <= 102, "w/%d: %lld", key,
		    (long long)v);
		win = &w[key][v - 100];
		cr_assert_eq(win->rc, 0);
		cr_assert(e.chain.n > 0 && win->chain.n > 0);
		cr_assert_str_eq(e.chain.ev[0].node, win->chain.ev[0].node);
		cr_assert_eq(e.chain.ev[0].tick, win->chain.ev[0].tick);
		cr_assert_eq(e.tock, win->tock, "w/%d: the stored tock is not "
		    "the winner's", key);
		for (int j = 0; j < 3; j++) {
			const struct wrec *x = &w[key][j];

			if (x == win || chain_descends_from(&win->chain,
			    &x->chain))
				continue;	/* tier 1: win is later */
			concurrent++;
			cr_assert(!chain_descends_from(&x->chain, &win->chain),
			    "w/%d: %s:%llu descends from the winner %s:%llu "
			    "and lost", key, x->chain.ev[0].node,
			    (unsigned long long)x->chain.ev[0].tick,
			    win->chain.ev[0].node,
			    (unsigned long long)win->chain.ev[0].tick);
			cr_assert(win->tock > x->tock || (win->tock ==
			    x->tock && strcmp(win->chain.ev[0].node,
			    x->chain.ev[0].node) > 0), "w/%d: %s:%llu (tock "
			    "%llu) won over the concurrent %s:%llu (tock %llu)",
			    key, win->chain.ev[0].node,
			    (unsigned long long)win->chain.ev[0].tick,
			    (unsigned long long)win->tock, x->chain.ev[0].node,
			    (unsigned long long)x->chain.ev[0].tick,
			    (unsigned long long)x->tock);
		}
		distkv_entry_clear(&e);
		distkv_path_free(p);
	}
	cr_log_info("%d concurrent pairs weighed by tock and name", concurrent);
	cr_assert_gt(concurrent, 0, "no write raced another: nothing tested");
	for (int i = 0; i < 3; i++)
		distkv_close(k[i]);
	stop_all();
}

/*
 * "With a state directory configured, the agent ... logs every change"
 * (DESIGN.md), at the end of the loop iteration that applied it: a change
 * that arrives from a peer reaches the receiving node's change log
 * without any client of that node asking for anything (a client's reply
 * would flush the log on its own).  Watched through n1's shm region and
 * its log file only.
 */
Test(cluster, replicated_change_is_logged_without_a_client)
{
	/* 123456789012345 as msgpack: uint64, big endian */
	static const uint8_t enc[] = { 0xcf, 0x00, 0x00, 0x70, 0x48, 0x86,
	    0x0d, 0xdf, 0x79 };
	const int64_t val = 123456789012345LL;
	distkv_path *p = cluster_path("logged", 1);
	struct distkv_value v = { NULL, 0 };
	char logp[400];
	long long deadline;
	distkv_shm *s;
	distkv *k;
	int rc;

	start(2);
	cluster_node_args(&cl, 1, "--state-dir", cl.node[1].h.state_dir,
	    (const char *)NULL);
	cr_assert(cluster_start(&cl) == 0, "%s", DIAG);
	snprintf(logp, sizeof(logp), "%s/changes.dkv", cl.node[1].h.state_dir);
	k = conn(0);
	cr_assert(distkv_value_from_int(&v, val) == 0);
	cr_assert_eq(v.len, sizeof(enc));
	cr_assert(memcmp(v.data, enc, sizeof(enc)) == 0);
	rc = distkv_set(k, p, v.data, v.len, NULL, NULL);
	cr_assert(rc == 0, "%s", distkv_strerror(rc));
	distkv_value_clear(&v);
	distkv_close(k);
	/* applied on n1 (its region shows it) ... */
	cr_assert(distkv_shm_open(cl.node[1].h.shm, &s) == 0);
	deadline = harness_now_ms() + VISIBLE_MS;
	for (;;) {
		int64_t got = 0;

		if (distkv_shm_get_int(s, p, &got) == 0 && got == val)
			break;
		cr_assert(harness_now_ms() < deadline, "not on n1\n%s", DIAG);
		usleep(10 * 1000);	/* poll interval of a bounded wait */
	}
	distkv_shm_close(s);
	/* ... and so in its change log, within a second */
	deadline = harness_now_ms() + 1000;
	for (;;) {
		FILE *f = fopen(logp, "rb");
		static uint8_t buf[1 << 20];
		size_t n = 0;

		if (f != NULL) {
			n = fread(buf, 1, sizeof(buf), f);
			fclose(f);
		}
		if (memmem(buf, n, enc, sizeof(enc)) != NULL)
			break;
		cr_assert(harness_now_ms() < deadline, "n1 applied the change "
		    "but did not log it (%zu bytes in %s)\n%s", n, logp, DIAG);
		usleep(10 * 1000);	/* poll interval of a bounded wait */
	}
	distkv_path_free(p);
	stop_all();
}

/* ---- a burst larger than Serf delivers ---- */

Test(cluster, burst_2000_arrives_everywhere)
{
	enum { N = 2000 };
	struct batch b = { 0, 0, 0 };
	distkv *k;
	long long t0;

	start_all(3);
	k = conn(0);
	t0 = harness_now_ms();
	for (int key = 0; key < N; key++)
		queue_int(k, "b", key, key + 7, &b);
	pump(&k, 1, &b, 20000);
	distkv_close(k);
	cr_log_info("2000 writes acknowledged in %lld ms",
	    harness_now_ms() - t0);
	wait_same(1 + N, CONVERGE_MS);
	cr_log_info("burst converged %lld ms after the first write",
	    harness_now_ms() - t0);
	check_ints_in_shm("b", N, 7);
	stop_all();
}

/* ---- a value too big for a Serf event ---- */

Test(cluster, value_100k_replicates)
{
	size_t len;
	uint8_t *v = big_value(100 * 1024, 1, &len);
	distkv_path *p = cluster_path("big", 0);

	start_all(3);
	set_raw(1, p, v, len);
	cr_assert(cluster_wait_value(&cl, 0, p, v, len, 10000, why,
	    sizeof(why)) == 0, "100 KiB value: %s\n%s", why, DIAG);
	free(v);
	/* and a change of it made elsewhere */
	v = big_value(100 * 1024, 2, &len);
	set_raw(2, p, v, len);
	cr_assert(cluster_wait_value(&cl, 0, p, v, len, 10000, why,
	    sizeof(why)) == 0, "changed 100 KiB value: %s\n%s", why, DIAG);
	free(v);
	distkv_path_free(p);
	wait_same(2, VISIBLE_MS);
	stop_all();
}

/* ---- a late node serves no read before it has the tree ---- */

Test(cluster, late_node_downloads_before_serving)
{
	enum { N = 500 };
	struct batch b = { 0, 0, 0 };
	struct cluster_dump d0, d2;
	distkv_path *bigp = cluster_path("big", 1), *last;
	struct distkv_entry e;
	long long deadline;
	size_t len;
	uint8_t *big = big_value(100 * 1024, 3, &len);
	distkv *k;
	int rc;

	start(3);
	cr_assert(cluster_spawn(&cl, 0, true) == 0);
	cr_assert(cluster_wait_socket(&cl, 0, 10000) == 0, "%s", DIAG);
	cr_assert(cluster_spawn(&cl, 1, false) == 0);
	cr_assert(cluster_wait_socket(&cl, 1, 15000) == 0, "%s", DIAG);
	k = conn(0);
	for (int key = 0; key < N; key++)
		queue_int(k, "late", key, key, &b);
	pump(&k, 1, &b, 10000);
	distkv_close(k);
	set_raw(1, bigp, big, len);
	cr_assert(cluster_wait_value(&cl, 0, bigp, big, len, 10000, why,
	    sizeof(why)) == 0, "%s\n%s", why, DIAG);
	wait_same(1 + N + 1, CONVERGE_MS);
	cr_assert(cluster_dump(&cl, 0, &d0) == 0);

	cr_assert(cluster_spawn(&cl, 2, false) == 0);
	deadline = harness_now_ms() + 15000;
	while ((rc = distkv_connect(cl.node[2].h.socket, &k)) != 0) {
		cr_assert(harness_now_ms() < deadline && cl.node[2].h.pid > 0,
		    "late node never served: %s\n%s", distkv_strerror(rc),
		    DIAG);
		usleep(1000);
	}
	/* the first read after connect: over the socket, then the region */
	last = cluster_path("late", N - 1);
	memset(&e, 0, sizeof(e));
	rc = distkv_get(k, last, 1, &e);
	cr_assert(rc == 0, "first get on the late node: %s\n%s",
	    distkv_strerror(rc), DIAG);
	cr_assert(distkv_value_get_int(e.value.data, e.value.len,
	    &(int64_t){ 0 }) == 0);
	distkv_entry_clear(&e);
	memset(&e, 0, sizeof(e));
	rc = distkv_get(k, bigp, 1, &e);
	cr_assert(rc == 0 && e.value.len == len &&
	    memcmp(e.value.data, big, len) == 0,
	    "big value on the late node: %s", distkv_strerror(rc));
	distkv_entry_clear(&e);
	distkv_close(k);
	check_ints_in_shm("late", N, 0);
	/* the whole tree, at once: no waiting */
	cr_assert(cluster_dump(&cl, 2, &d2) == 0);
	cr_assert(cluster_dump_cmp(&d0, &d2, why, sizeof(why)) == 0,
	    "late node's first dump: %s", why);
	cluster_dump_free(&d0);
	cluster_dump_free(&d2);
	distkv_path_free(last);
	distkv_path_free(bigp);
	free(big);
	stop_all();
}

/* A node that joins while another node is writing gets every write. */
Test(cluster, late_node_joins_during_writes)
{
	enum { N = 1500 };
	struct batch b = { 0, 0, 0 };
	distkv *k;

	start(3);
	cr_assert(cluster_spawn(&cl, 0, true) == 0);
	cr_assert(cluster_wait_socket(&cl, 0, 10000) == 0, "%s", DIAG);
	cr_assert(cluster_spawn(&cl, 1, false) == 0);
	cr_assert(cluster_wait_socket(&cl, 1, 15000) == 0, "%s", DIAG);
	k = conn(1);
	for (int key = 0; key < N / 3; key++)
		queue_int(k, "j", key, key, &b);
	pump(&k, 1, &b, 10000);
	/* n2 downloads while the rest is being written, in slices */
	cr_assert(cluster_spawn(&cl, 2, false) == 0);
	for (int key = N / 3; key < N; key++) {
		queue_int(k, "j", key, key, &b);
		if (key % 50 == 49) {
			pump(&k, 1, &b, 10000);
			usleep(2000);	/* spread the writes over the start */
		}
	}
	pump(&k, 1, &b, 10000);
	distkv_close(k);
	cr_assert(cluster_wait_socket(&cl, 2, 15000) == 0, "%s", DIAG);
	wait_same(1 + N, CONVERGE_MS);
	check_ints_in_shm("j", N, 0);
	stop_all();
}

/* ---- a restarted node catches up ---- */

Test(cluster, restarted_node_catches_up)
{
	struct batch b = { 0, 0, 0 };
	distkv *k[2];

	start(3);
	for (int i = 0; i < 3; i++) {
		cr_assert(mkdir(cl.node[i].h.state_dir, 0700) == 0);
		cluster_node_args(&cl, i, "--state-dir", cl.node[i].h.state_dir,
		    "--fsync", "batch", (const char *)NULL);
	}
	cr_assert(cluster_start(&cl) == 0, "%s", DIAG);
	k[0] = conn(0);
	for (int key = 0; key < 50; key++)
		queue_int(k[0], "r", key, key, &b);
	pump(k, 1, &b, 10000);
	distkv_close(k[0]);
	wait_same(1 + 50, CONVERGE_MS);

	cr_assert(cluster_stop_node(&cl, 2) == 0, "n2 did not stop cleanly\n%s",
	    DIAG);
	/* while n2 is down: new keys on n0 and n1, changes, deletes */
	k[0] = conn(0);
	k[1] = conn(1);
	for (int key = 50; key < 250; key++)
		queue_int(k[key % 2], "r", key, key, &b);
	for (int key = 0; key < 20; key++)
		queue_int(k[1], "r", key, key + 1000, &b);
	pump(k, 2, &b, 10000);
	{
		distkv_path *p = cluster_path("r", 30);

		cr_assert(distkv_delete(k[0], p, NULL, NULL) == 0);
		distkv_path_free(p);
	}
	distkv_close(k[0]);
	distkv_close(k[1]);

	cr_assert(cluster_spawn(&cl, 2, false) == 0);
	cr_assert(cluster_wait_socket(&cl, 2, 10000) == 0,
	    "restarted n2 did not serve\n%s", DIAG);
	wait_same(1 + 250, CONVERGE_MS);
	{
		distkv_path *p = cluster_path("r", 30);

		wait_str(p, NULL, VISIBLE_MS);
		distkv_path_free(p);
	}
	stop_all();
}

/* ---- the Serf agent of a node dies ---- */

Test(cluster, serf_killed_no_change_lost)
{
	struct batch b = { 0, 0, 0 };
	distkv *k[2];
	pid_t serf, again = 0;
	long long deadline;

	start_all(3);
	serf = cluster_serf_pid(&cl, 1);
	cr_assert(serf > 0, "no serf child of n1");
	cr_assert(kill(serf, SIGKILL) == 0);
	/* writes on both sides while n1 has no Serf */
	k[0] = conn(0);
	k[1] = conn(1);
	for (int key = 0; key < 200; key++)
		queue_int(k[key % 2], "k", key, key, &b);
	pump(k, 2, &b, 10000);
	distkv_close(k[0]);
	distkv_close(k[1]);
	/* the agent restarts its serf (backoff 1 s) */
	deadline = harness_now_ms() + 10000;
	while ((again = cluster_serf_pid(&cl, 1)) == 0 || again == serf) {
		cr_assert(harness_now_ms() < deadline,
		    "n1's serf was not restarted\n%s", DIAG);
		usleep(20000);
	}
	wait_same(1 + 200, CONVERGE_MS);
	check_ints_in_shm("k", 200, 0);
	/* and replication through the new serf works as before */
	{
		distkv_path *p = cluster_path("k", 1000);

		set_str(1, p, "after the restart");
		wait_str(p, "after the restart", VISIBLE_MS);
		distkv_path_free(p);
	}
	stop_all();
}

/* ---- serfsend / serfmon ---- */

Test(cluster, serfsend_serfmon_round_trip)
{
	struct rc_conn *a, *b;
	struct rc_msg *m;

	start(2);
	cr_assert(cluster_start(&cl) == 0, "%s", DIAG);
	a = rc_open(cl.node[0].h.socket);
	b = rc_open(cl.node[1].h.socket);
	cr_assert(a != NULL && b != NULL);
	rc_send(b, "{seq:1, action:'serfmon', type:'test'}");
	RC_ASSERT_MATCH(rc_recv_seq(b, 1, RC_TIMEOUT),
	    "{seq:1, state:'start', ...}");
	rc_send(b, "{seq:2, action:'serfmon', type:'test', raw:true}");
	RC_ASSERT_MATCH(rc_recv_seq(b, 2, RC_TIMEOUT),
	    "{seq:2, state:'start', ...}");

	m = rc_call(a, "{seq:1, action:'serfsend', type:'test', "
	    "data:['Hello', 42]}");
	cr_assert(!rc_has(&m->obj, "error"), "serfsend: %s", rc_show(&m->obj));
	rc_msg_free(m);
	RC_ASSERT_MATCH(rc_recv_seq(b, 1, VISIBLE_MS),
	    "{seq:1, type:'test', data:['Hello', 42], ...}");
	/* raw: the payload bytes, i.e. msgpack of ['Hello', 42] */
	RC_ASSERT_MATCH(rc_recv_seq(b, 2, VISIBLE_MS),
	    "{seq:2, type:'test', raw:b'\\x92\\xa5Hello\\x2a', ...}");

	m = rc_call(a, "{seq:2, action:'serfsend', type:'test', raw:b'duh'}");
	cr_assert(!rc_has(&m->obj, "error"), "serfsend raw: %s",
	    rc_show(&m->obj));
	rc_msg_free(m);
	/* b'duh' is not one msgpack object: raw plus an error */
	RC_ASSERT_MATCH(rc_recv_seq(b, 1, VISIBLE_MS),
	    "{seq:1, type:'test', raw:b'duh', error:_, ...}");
	RC_ASSERT_MATCH(rc_recv_seq(b, 2, VISIBLE_MS),
	    "{seq:2, type:'test', raw:b'duh', ...}");

	/* the servers' own names stay closed to clients */
	m = rc_call(a, "{seq:3, action:'serfsend', type:'distkv.update', "
	    "data:1}");
	cr_assert(rc_has(&m->obj, "error"), "serfsend into the servers' "
	    "namespace accepted: %s", rc_show(&m->obj));
	rc_msg_free(m);
	rc_close(a);
	rc_close(b);
	stop_all();
}

/* ---- tombstones are purged once every node has seen the delete ---- */

/* Does node i's dump hold path (msgpack bytes)?  -1 if it cannot dump. */
static int
dump_has(int i, const uint8_t *path, size_t len, struct cluster_item *copy)
{
	struct cluster_dump d;
	const struct cluster_item *it;
	int has;

	if (cluster_dump(&cl, i, &d) != 0)
		return -1;
	it = cluster_dump_find(&d, path, len);
	has = it != NULL;
	if (it != NULL && copy != NULL) {
		*copy = *it;
		copy->path = malloc(it->path_len);
		copy->value = malloc(it->value_len);
		copy->chain = malloc(it->chain_len);
		cr_assert(copy->path && copy->value && copy->chain);
		memcpy(copy->path, it->path, it->path_len);
		memcpy(copy->value, it->value, it->value_len);
		memcpy(copy->chain, it->chain, it->chain_len);
	}
	cluster_dump_free(&d);
	return has;
}

static int
count_reply(void *arg, const uint8_t *msg, size_t len)
{
	const char *p = memmem(msg, len, "\xa5" "count", 6);

	/* {count: n} with a small n: the byte after the key */
	*(int *)arg = p != NULL && p + 6 < (const char *)msg + len ?
	    (uint8_t)p[6] : -1;
	return 0;
}

/* Does node i's node table hold name, with a tick? */
static bool
node_known(int i, const char *name)
{
	struct distkv_value v = { NULL, 0 };
	msgpack_zone zone;
	msgpack_object o;
	const msgpack_object *n, *t;
	bool known = false;
	distkv *k = conn(i);

	msgpack_zone_init(&zone, 1024);
	if (distkv_state(k, DISTKV_STATE_NODES, &v) == 0 &&
	    proto_unpack(v.data, v.len, &zone, &o) == 0 &&
	    (n = proto_map_get(&o, "nodes")) != NULL &&
	    (t = proto_map_get(n, name)) != NULL)
		known = t->type == MSGPACK_OBJECT_POSITIVE_INTEGER;
	msgpack_zone_destroy(&zone);
	distkv_value_clear(&v);
	distkv_close(k);
	return known;
}

/*
 * docs/operations.md, --tombstone-keep: "a deleted entry keeps its chain
 * at least this long", and cluster.md: purged once every node has seen it
 * and it is older than the keep time (checked up to a tenth of it late).
 * Two deletes on n0: one at once, one when the agents have run for more
 * than the keep time (before that, no tock is "keep seconds old" yet, so
 * only the second delete shows the rule alone); n0's dump is watched
 * all along: neither tombstone may go before its keep time
 * (measured from when its delete was sent, a lower bound of the delete's
 * own time), and both must be gone from every node after it.  The strict
 * bound is on the deleting node: elsewhere "older" is measured in that
 * node's tocks and is approximate (cluster.md).
 */
Test(cluster, tombstone_kept_for_tombstone_keep_then_purged)
{
	enum { KEEP = 3 };
	distkv_path *p[2];
	uint8_t *pb[2];
	size_t pl[2];
	long long sent[2], gone[2] = { -1, -1 }, deadline;
	distkv *k;

	for (int t = 0; t < 2; t++) {
		p[t] = cluster_path("keep", t);
		pb[t] = cluster_path_bytes(p[t], &pl[t]);
	}
	start(2);
	for (int i = 0; i < 2; i++)
		cluster_node_args(&cl, i, "--tombstone-keep", "3",
		    (const char *)NULL);
	cr_assert(cluster_start(&cl) == 0, "%s", DIAG);
	for (int t = 0; t < 2; t++)
		set_str(0, p[t], "v");
	wait_str(p[1], "v", VISIBLE_MS);

	k = conn(0);
	sent[0] = harness_now_ms();
	cr_assert(distkv_delete(k, p[0], NULL, NULL) == 0);
	sent[1] = -1;
	deadline = harness_now_ms() + (2 * KEEP + 8) * 1000;
	while (gone[0] < 0 || gone[1] < 0) {
		long long t0 = harness_now_ms(), t1;
		int has[2];

		if (sent[1] < 0 && t0 >= sent[0] + KEEP * 1000 + 500) {
			sent[1] = harness_now_ms();
			cr_assert(distkv_delete(k, p[1], NULL, NULL) == 0);
		}
		for (int t = 0; t < 2; t++)
			has[t] = dump_has(0, pb[t], pl[t], NULL);
		t1 = harness_now_ms();
		for (int t = 0; t < 2; t++) {
			cr_assert(has[t] >= 0, "n0 cannot dump\n%s", DIAG);
			if (has[t] == 1 || gone[t] >= 0)
				continue;
			/* the dump was answered before t1 */
			cr_assert(sent[t] >= 0 && t1 >= sent[t] + KEEP * 1000,
			    "keep/%d purged %lld ms after its delete was sent "
			    "(--tombstone-keep %d s)\n%s", t, t1 - sent[t],
			    KEEP, DIAG);
			gone[t] = t1;
		}
		cr_assert(harness_now_ms() < deadline, "tombstones still there "
		    "%d s after the first delete (%s %s)\n%s", 2 * KEEP + 8,
		    gone[0] < 0 ? "keep/0" : "", gone[1] < 0 ? "keep/1" : "",
		    DIAG);
		usleep(50 * 1000);	/* poll interval of a bounded wait */
	}
	distkv_close(k);
	cr_log_info("tombstones purged %lld and %lld ms after their deletes",
	    gone[0] - sent[0], gone[1] - sent[1]);
	/* the other node purges them too */
	deadline = harness_now_ms() + 5000;
	while (dump_has(1, pb[0], pl[0], NULL) != 0 ||
	    dump_has(1, pb[1], pl[1], NULL) != 0) {
		cr_assert(harness_now_ms() < deadline, "n1 keeps the "
		    "tombstones\n%s", DIAG);
		usleep(50 * 1000);
	}
	for (int t = 0; t < 2; t++) {
		free(pb[t]);
		distkv_path_free(p[t]);
	}
	stop_all();
}

Test(cluster, tombstone_purged_when_every_node_saw_it)
{
	distkv_path *p = cluster_path("t", 1);
	struct cluster_item old;
	uint8_t *pb;
	size_t pl;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	long long deadline;
	distkv *k;
	int count = -2, rc;

	pb = cluster_path_bytes(p, &pl);
	start(3);
	for (int i = 0; i < 3; i++)
		cluster_node_args(&cl, i, "--tombstone-keep", "0",
		    (const char *)NULL);
	cr_assert(cluster_start(&cl) == 0, "%s", DIAG);
	set_str(0, p, "old");
	wait_str(p, "old", VISIBLE_MS);
	cr_assert(dump_has(0, pb, pl, &old) == 1);

	/*
	 * n0 and n1 know n2 (its tick or a report reached them): a node that
	 * stops before anybody heard from it at all is the Serf member list's
	 * case, timing-dependent under the sanitizers, not this test's.
	 */
	for (int i = 0; i < 2; i++) {
		deadline = harness_now_ms() + 10000;
		while (!node_known(i, "n2")) {
			cr_assert(harness_now_ms() < deadline, "n%d never "
			    "heard from n2\n%s", i, DIAG);
			usleep(50 * 1000);
		}
	}
	/* n2 down: it cannot report the delete, so nobody may purge it */
	cr_assert(cluster_stop_node(&cl, 2) == 0, "%s", DIAG);
	k = conn(0);
	cr_assert(distkv_delete(k, p, NULL, NULL) == 0);
	distkv_close(k);
	wait_str(p, NULL, VISIBLE_MS);
	/* a bounded look: 15 clocks of info rounds with n0, n1 alive */
	deadline = harness_now_ms() + 3000;
	while (harness_now_ms() < deadline) {
		cr_assert(dump_has(0, pb, pl, NULL) == 1 &&
		    dump_has(1, pb, pl, NULL) == 1, "tombstone purged while "
		    "n2, which never saw the delete, was down\n%s", DIAG);
		usleep(200 * 1000);
	}

	/* n2 back (without data: it downloads): now everybody has seen it */
	cr_assert(cluster_spawn(&cl, 2, false) == 0);
	cr_assert(cluster_wait_socket(&cl, 2, 10000) == 0, "%s", DIAG);
	deadline = harness_now_ms() + 15000;
	for (;;) {
		int left = 0;

		for (int i = 0; i < 3; i++)
			left += dump_has(i, pb, pl, NULL) != 0;
		if (left == 0)
			break;
		cr_assert(harness_now_ms() < deadline, "tombstone still on %d "
		    "node(s) 15 s after n2 came back\n%s", left, DIAG);
		usleep(100 * 1000);
	}

	/* a late copy of the overwritten set must not bring it back */
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 5);
	msgpack_pack_str_with_body(&pk, "action", 6);
	msgpack_pack_str_with_body(&pk, "update", 6);
	msgpack_pack_str_with_body(&pk, "path", 4);
	msgpack_sbuffer_write(&sb, (const char *)old.path, old.path_len);
	msgpack_pack_str_with_body(&pk, "value", 5);
	msgpack_sbuffer_write(&sb, (const char *)old.value, old.value_len);
	msgpack_pack_str_with_body(&pk, "chain", 5);
	msgpack_sbuffer_write(&sb, (const char *)old.chain, old.chain_len);
	msgpack_pack_str_with_body(&pk, "tock", 4);
	msgpack_pack_uint64(&pk, old.tock);
	k = conn(1);
	rc = distkv_request(k, sb.data, sb.size, count_reply, &count);
	distkv_close(k);
	msgpack_sbuffer_destroy(&sb);
	cr_assert(rc == 0, "update: %s", distkv_strerror(rc));
	cr_assert(count == 0, "the late copy was applied (count %d)", count);
	cr_assert(dump_has(1, pb, pl, NULL) == 0, "purged entry came back");

	/* and the path can be written again, everywhere */
	set_str(1, p, "new");
	wait_str(p, "new", VISIBLE_MS);
	wait_same(2, CONVERGE_MS);
	free(old.path);
	free(old.value);
	free(old.chain);
	free(pb);
	distkv_path_free(p);
	stop_all();
}

/* ---- a node alone: it serves its own data, or says why it waits ---- */

/* kill -9 node i's agent and its serf child, as a power cut would. */
static void
crash_node(int i)
{
	pid_t serf = cluster_serf_pid(&cl, i);

	harness_kill9(&cl.node[i].h);
	if (serf > 0) {
		kill(serf, SIGKILL);
		waitpid(serf, NULL, WNOHANG);
	}
}

/*
 * Hardening 15: a node that only ever received replicas (no change of its
 * own), killed and restarted with its state dir while no peer is up,
 * serves its data at once instead of waiting for a peer.
 */
Test(cluster, restarted_node_with_data_serves_alone)
{
	distkv_path *p = cluster_path("alone", 1);

	start(2);
	for (int i = 0; i < 2; i++) {
		cr_assert(mkdir(cl.node[i].h.state_dir, 0700) == 0);
		cluster_node_args(&cl, i, "--state-dir", cl.node[i].h.state_dir,
		    (const char *)NULL);
	}
	cr_assert(cluster_start(&cl) == 0, "%s", DIAG);
	set_str(0, p, "replicated");
	wait_str(p, "replicated", VISIBLE_MS);
	crash_node(0);
	crash_node(1);
	cr_assert(cluster_spawn(&cl, 1, false) == 0);
	cr_assert(cluster_wait_socket(&cl, 1, 10000) == 0,
	    "n1, restarted with its data and no peer, does not serve\n%s",
	    DIAG);
	{
		distkv *k = conn(1);
		struct distkv_entry e;
		const char *s = NULL;
		size_t n = 0;

		memset(&e, 0, sizeof(e));
		cr_assert(distkv_get(k, p, 0, &e) == 0);
		cr_assert(distkv_value_get_str(e.value.data, e.value.len, &s,
		    &n) == 0 && n == 10 && memcmp(s, "replicated", 10) == 0,
		    "n1 holds '%.*s'", (int)n, s);
		distkv_entry_clear(&e);
		distkv_close(k);
	}
	distkv_path_free(p);
	stop_all();
}

/*
 * Hardening 15: a node without data whose --join reaches nobody says why
 * in its own log, then gives up after --join-timeout.
 */
Test(cluster, unreachable_join_says_why_and_gives_up)
{
	long long deadline;
	int status = 0;

	start(2);
	/* n0 is never started: n1's --join points at nothing */
	cluster_node_args(&cl, 1, "--join-timeout", "3", (const char *)NULL);
	cr_assert(cluster_spawn(&cl, 1, false) == 0);
	deadline = harness_now_ms() + 15000;
	while (waitpid(cl.node[1].h.pid, &status, WNOHANG) == 0) {
		cr_assert(harness_now_ms() < deadline, "n1 still waits after "
		    "15 s with --join-timeout 3\n%s", DIAG);
		usleep(50000);	/* poll interval of a deadline-bounded wait */
	}
	cl.node[1].h.pid = 0;
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1, "status %d",
	    status);
	cr_assert(cluster_log_count(&cl, 1, "not joined after") == 1,
	    "no warning\n%s", DIAG);
	cr_assert(cluster_log_count(&cl, 1, "nothing joined") == 1,
	    "no final error\n%s", DIAG);
}

/* Logins replicate: a password user made on n0 logs in on n1. */
Test(cluster, password_user_logs_in_on_another_node)
{
	distkv *k;
	long long deadline;
	int rc;

	start_all(2);
	k = conn(0);
	cr_assert(distkv_auth_add_password(k, "joe", "s3cret!") == 0, "%s",
	    distkv_errmsg(k));
	cr_assert(distkv_auth_set_method(k, "password") == 0, "%s",
	    distkv_errmsg(k));
	distkv_close(k);
	/* n1 asks for the password login once the switch reached it */
	deadline = harness_now_ms() + VISIBLE_MS;
	for (;;) {
		const char *m;

		cr_assert(distkv_connect(cl.node[1].h.socket, &k) == 0);
		m = distkv_auth_method(k);
		if (m != NULL && strcmp(m, "password") == 0)
			break;
		distkv_close(k);
		cr_assert(harness_now_ms() < deadline, "the method never "
		    "reached n1\n%s", DIAG);
		usleep(50 * 1000);
	}
	rc = distkv_login_password(k, "joe", "wrong");
	cr_assert(rc == DISTKV_EDENIED && strncmp(distkv_errmsg(k),
	    "AuthFailedError", 15) == 0, "%s", distkv_errmsg(k));
	cr_assert(distkv_login_password(k, "joe", "s3cret!") == 0, "%s",
	    distkv_errmsg(k));
	distkv_close(k);
	/* stop_all's own connections would need a login: none are made */
	stop_all();
}

/*
 * The translator (issue 11): a type and a match written on n0 replicate,
 * n1 compiles them when it applies them and enforces them on its own
 * clients' writes.
 */
Test(cluster, replicated_type_enforced)
{
	struct rc_conn *a, *b;
	struct rc_msg *m;
	long long deadline;

	start_all(2);
	a = rc_open(cl.node[0].h.socket);
	b = rc_open(cl.node[1].h.socket);
	cr_assert(a != NULL && b != NULL, "%s", DIAG);
	m = rc_call(a, "{seq:1, action:'set_internal', path:['type', 'int'], "
	    "value:{good:[1, 2], bad:['x'], lang:'lua', code:\"if "
	    "math.type(value) ~= 'integer' then error('not an int') end\"}}");
	cr_assert(m != NULL && !rc_has(&m->obj, "error"), "%s",
	    m ? rc_show(&m->obj) : "-");
	m = rc_call(a, "{seq:2, action:'set_internal', path:['match', 'v', "
	    "'+'], value:{type:'int'}}");
	cr_assert(m != NULL && !rc_has(&m->obj, "error"), "%s",
	    m ? rc_show(&m->obj) : "-");
	/* wait until n1 has the match entry */
	deadline = harness_now_ms() + VISIBLE_MS;
	for (int64_t seq = 10;; seq++) {
		m = rc_call(b, "{seq:%lld, action:'get_internal', "
		    "path:['match', 'v', '+']}", (long long)seq);
		cr_assert_not_null(m);
		if (rc_get(&m->obj, "value") != NULL &&
		    rc_get(&m->obj, "value")->type == MSGPACK_OBJECT_MAP)
			break;
		cr_assert(harness_now_ms() < deadline, "not on n1\n%s", DIAG);
		usleep(10 * 1000);	/* poll interval of a bounded wait */
	}
	m = rc_call(b, "{seq:100000, action:'set_value', path:['v', 'a'], "
	    "value:'str'}");
	cr_assert(m != NULL && rc_str_prefix(&m->obj, "error", "type int:"),
	    "n1 did not check: %s", m ? rc_show(&m->obj) : "-");
	m = rc_call(b, "{seq:100001, action:'set_value', path:['v', 'a'], "
	    "value:5}");
	cr_assert(m != NULL && !rc_has(&m->obj, "error"), "%s",
	    m ? rc_show(&m->obj) : "-");
	rc_close(a);
	rc_close(b);
	stop_all();
}
