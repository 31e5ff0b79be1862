/*
 * faults_converge: how distkv-faults waits for the end of a run: the
 * agents' clock, identical dumps on every node (wait_same), and the
 * recovery counters of get_state {recovery: true} until no node runs a
 * recovery or answers missing reports (wait_no_recovery).
 */
#include <poll.h>

#include "faults.h"

/* The agents' --clock in seconds. */
double
clock_s(const struct run *r)
{
	double c = strtod(r->c.clock, NULL);

	return c > 0 ? c : 1.0;
}

/* "converge_s=1.80 converge_clocks=9.0" for ms (n/a if negative);
 * static buffer. */
const char *
fmt_converge(const struct run *r, long long ms)
{
	static char buf[96];

	if (ms < 0)
		snprintf(buf, sizeof(buf), "converge_s=n/a "
		    "converge_clocks=n/a");
	else
		snprintf(buf, sizeof(buf), "converge_s=%.2f "
		    "converge_clocks=%.1f", (double)ms / 1000.0,
		    (double)ms / 1000.0 / clock_s(r));
	return buf;
}

/* "applied_ms=380 applied_clocks=1.9" (n/a if negative); static
 * buffer. */
const char *
fmt_applied(const struct run *r, long long ms)
{
	static char buf[96];

	if (ms < 0)
		snprintf(buf, sizeof(buf), "applied_ms=n/a applied_clocks=n/a");
	else
		snprintf(buf, sizeof(buf), "applied_ms=%lld applied_clocks=%.1f",
		    ms, (double)ms / 1000.0 / clock_s(r));
	return buf;
}

/*
 * Wait until every running node holds the same tree with at least
 * min_items items, until timeout_ms after since, in slices so that a
 * signal does not wait for the deadline.  Returns the ms from since to
 * convergence, or -1 (why: the last difference).
 */
long long
wait_same(struct run *r, size_t min_items, long long since, int timeout_ms,
    char *why, size_t whylen)
{
	long long left;

	snprintf(why, whylen, "interrupted");
	while (!g_stop &&
	    (left = timeout_ms - (harness_now_ms() - since)) > 0)
		if (cluster_wait_same(&r->c, min_items,
		    left < 1000 ? (int)left : 1000, why, whylen) == 0)
			return harness_now_ms() - since;
	return -1;
}

/* ---- when each node last applied a change: a watch on each ---- */

struct applied_arg {
	struct applied *ap;
	int i;
};

static struct applied_arg applied_args[CLUSTER_MAX];

static void
applied_item(void *arg, int rc, const struct distkv_entry *e)
{
	struct applied_arg *x = arg;
	struct applied *ap = x->ap;

	if (rc != 0)
		ap->failed++;
	else if (e == NULL)
		ap->uptodate[x->i] = true;
	else if (ap->uptodate[x->i])	/* not the fetch's items */
		ap->last_ms[x->i] = harness_now_ms();
}

/* The thread: each watch's items timed as they arrive, not when the
 * harness gets round to them between dumps. */
static void *
applied_loop(void *arg)
{
	struct applied *ap = arg;
	struct pollfd pfd[CLUSTER_MAX];

	while (!ap->stop && !g_stop) {
		for (int i = 0; i < ap->n; i++) {
			pfd[i].fd = ap->k[i] != NULL ? distkv_fd(ap->k[i]) : -1;
			pfd[i].events = POLLIN | (ap->k[i] != NULL &&
			    distkv_want_write(ap->k[i]) ? POLLOUT : 0);
		}
		if (poll(pfd, (nfds_t)ap->n, 20) < 0 && errno != EINTR)
			break;
		for (int i = 0; i < ap->n; i++)
			if (pfd[i].fd >= 0 && pfd[i].revents != 0 &&
			    distkv_process(ap->k[i]) != 0) {
				ap->failed++;
				distkv_close(ap->k[i]);
				ap->k[i] = NULL;
			}
	}
	return NULL;
}

/*
 * Watch every running node's whole tree from now on.  0 once every watch
 * is in place (its fetch ended), -1 if one could not be set up in 10 s.
 */
int
applied_start(struct run *r, struct applied *ap)
{
	struct distkv_tree_opts o = { 0, -1, 0, true };
	distkv_path *root;
	long long t0;
	bool all;

	memset(ap, 0, sizeof(*ap));
	ap->n = r->n;
	if (distkv_path_new(&root) != 0)
		return -1;
	for (int i = 0; i < r->n; i++) {
		ap->last_ms[i] = -1;
		applied_args[i].ap = ap;
		applied_args[i].i = i;
		if (r->c.node[i].h.pid <= 0) {
			ap->uptodate[i] = true;
			continue;
		}
		if ((ap->k[i] = cluster_connect(&r->c, i)) == NULL ||
		    distkv_async_watch(ap->k[i], root, &o, applied_item,
		    &applied_args[i], NULL) != 0) {
			complain("distkv-faults: no watch on %s\n",
			    r->c.node[i].name);
			ap->failed++;
		}
	}
	distkv_path_free(root);
	if (pthread_create(&ap->thread, NULL, applied_loop, ap) != 0)
		abort();
	for (t0 = harness_now_ms(); ; usleep(10000)) {
		all = ap->failed == 0;
		for (int i = 0; i < r->n && all; i++)
			all = ap->uptodate[i];
		if (all || ap->failed || harness_now_ms() - t0 > 10000)
			break;
	}
	return all ? 0 : -1;
}

/*
 * End the watches.  Returns the latest change applied on any node
 * (harness_now_ms), -1 if none or a watch failed; *node: that node.
 */
long long
applied_stop(struct applied *ap, int *node)
{
	long long last = -1;

	ap->stop = 1;
	pthread_join(ap->thread, NULL);
	*node = -1;
	for (int i = 0; i < ap->n; i++) {
		if (ap->k[i] != NULL)
			distkv_close(ap->k[i]);
		if (ap->last_ms[i] > last) {
			last = ap->last_ms[i];
			*node = i;
		}
	}
	return ap->failed ? -1 : last;
}

/* ---- recovery counters: get_state {recovery: true} ---- */

static const char *const rv_key[RV_N] = {
	"recoveries", "retransmit_events", "retransmit_entries",
	"missing_reports", "known_reports", "catchup_items",
};

/* distkv_request callback: pick the recovery map out of the reply. */
static int
recov_reply(void *arg, const uint8_t *msg, size_t len)
{
	struct recov *rv = arg;
	msgpack_unpacked up;
	const msgpack_object *m = &up.data;

	msgpack_unpacked_init(&up);
	if (msgpack_unpack_next(&up, (const char *)msg, len, NULL) !=
	    MSGPACK_UNPACK_SUCCESS || m->type != MSGPACK_OBJECT_MAP)
		goto out;
	for (uint32_t k = 0; k < m->via.map.size; k++) {
		const msgpack_object *rec = &m->via.map.ptr[k].val;

		if (!proto_str_eq(&m->via.map.ptr[k].key, "recovery") ||
		    rec->type != MSGPACK_OBJECT_MAP)
			continue;
		for (uint32_t j = 0; j < rec->via.map.size; j++) {
			const msgpack_object *key = &rec->via.map.ptr[j].key;
			const msgpack_object *v = &rec->via.map.ptr[j].val;

			if (v->type == MSGPACK_OBJECT_BOOLEAN) {
				if (proto_str_eq(key, "running")) {
					rv->have_running = true;
					rv->running = v->via.boolean;
				} else if (proto_str_eq(key, "answering")) {
					rv->have_answering = true;
					rv->answering = v->via.boolean;
				}
				continue;
			}
			if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
				continue;
			for (int f = 0; f < RV_N; f++)
				if (proto_str_eq(key, rv_key[f])) {
					rv->have[f] = true;
					rv->v[f] = v->via.u64;
				}
		}
	}
out:
	msgpack_unpacked_destroy(&up);
	return 0;
}

/* Ask node i for its recovery counters; -1 (why) if it does not answer. */
int
recov_query(struct run *r, int i, struct recov *rv, char *why,
    size_t whylen)
{
	/* {action: "get_state", recovery: true} */
	static const uint8_t req[] = {
		0x82, 0xa6, 'a', 'c', 't', 'i', 'o', 'n',
		0xa9, 'g', 'e', 't', '_', 's', 't', 'a', 't', 'e',
		0xa8, 'r', 'e', 'c', 'o', 'v', 'e', 'r', 'y', 0xc3,
	};
	distkv *k;
	int rc;

	memset(rv, 0, sizeof(*rv));
	if ((k = client(r, i)) == NULL) {
		snprintf(why, whylen, "%s: no connection", r->c.node[i].name);
		return -1;
	}
	if ((rc = distkv_request(k, req, sizeof(req), recov_reply, rv)) !=
	    0) {
		snprintf(why, whylen, "%s: get_state: %s %s",
		    r->c.node[i].name, distkv_strerror(rc), distkv_errmsg(k));
		call_failed(r, i, rc);
		return -1;
	}
	return 0;
}

/*
 * Wait (within --converge-timeout) until no node runs a split recovery
 * (answering: until no node answers missing reports), as far as the
 * agents report that; rv[i] (rv may be NULL) receives node i's last
 * answer.  0, or -1 (said on stderr, after "distkv-faults: what: ").
 */
int
wait_no_recovery(struct run *r, struct recov *rv, const char *what,
    bool answering)
{
	static struct recov tmp[CLUSTER_MAX];
	long long t0 = harness_now_ms();
	char why[512];

	if (rv == NULL)
		rv = tmp;
	for (;;) {
		int busy = 0;

		for (int i = 0; i < r->n; i++) {
			if (recov_query(r, i, &rv[i], why, sizeof(why)) != 0) {
				complain("distkv-faults: %s: %s\n", what,
				    why);
				return -1;
			}
			busy += answering ? rv[i].have_answering &&
			    rv[i].answering : rv[i].have_running &&
			    rv[i].running;
		}
		if (busy == 0)
			return 0;
		if (g_stop || harness_now_ms() - t0 > r->converge_ms) {
			complain("distkv-faults: %s: TIMEOUT: %d "
			    "node(s) still %s after %d s\n", what, busy,
			    answering ? "answer missing reports" :
			    "run a recovery", r->converge_ms / 1000);
			return -1;
		}
		usleep(50000);
	}
}
