/*
 * faults_split: the deterministic scenarios of distkv-faults, --split and
 * --wipe-split (faults.c's header describes both).
 */
#include "faults.h"

/* ---- the split scenario (--split) ---- */

/*
 * Does node i hold write w's event (its head, or a causal successor)?
 * For the cut probe: a node of the other side must not.
 */
static bool
holds_event(const struct cluster_dump *d, const struct write_rec *w)
{
	const struct cluster_item *it = key_item(d, w->key);
	struct link l[CLUSTER_MAX_ARGS];
	bool held = false;
	size_t n;

	if (it == NULL)
		return false;
	n = parse_chain(it->chain, it->chain_len, l, CLUSTER_MAX_ARGS);
	for (size_t j = 0; j < n && !held; j++)
		held = !strcmp(l[j].node, w->head) && l[j].tick >= w->tick;
	return held;
}

/*
 * Do the nodes of side s hold one tree, with every change made on that
 * side (writes from index w0 on)?  0, or -1 with the difference in why.
 */
static int
side_settled(struct run *r, const int *side, int s, size_t w0, char *why,
    size_t whylen)
{
	struct cluster_dump ref, d;
	char tmp[1400];
	int first = -1, rc = 0;

	for (int i = 0; i < r->n && rc == 0; i++) {
		if (side[i] != s)
			continue;
		if ((rc = cluster_dump(&r->c, i, first < 0 ? &ref : &d)) !=
		    0) {
			snprintf(why, whylen, "%s: dump: %s",
			    r->c.node[i].name, distkv_strerror(rc));
			rc = -1;
			break;
		}
		if (first < 0) {
			first = i;
			continue;
		}
		if (cluster_dump_cmp(&ref, &d, tmp, sizeof(tmp)) != 0) {
			snprintf(why, whylen, "%s vs %s: %s",
			    r->c.node[first].name, r->c.node[i].name, tmp);
			rc = -1;
		}
		cluster_dump_free(&d);
	}
	for (size_t k = w0; first >= 0 && rc == 0 && k < r->nw; k++) {
		const struct write_rec *w = &r->w[k];

		if (side[w->node] == s &&
		    !write_kept(&ref, w, tmp, sizeof(tmp))) {
			snprintf(why, whylen, "%s: fk/%d = %lld of %s: %s",
			    r->c.node[first].name, w->key,
			    (long long)w->value, r->c.node[w->node].name, tmp);
			rc = -1;
		}
	}
	if (first >= 0)
		cluster_dump_free(&ref);
	return rc;
}

/*
 * The cut probe: changes of the other side (writes from w0 on) that the
 * nodes hold although the cut is up.  Returns their number, -1 if a node
 * does not answer dump.
 */
static int
cut_leaks(struct run *r, const int *side, size_t w0)
{
	int leaks = 0;

	for (int i = 0; i < r->n; i++) {
		struct cluster_dump d;
		int rc;

		if ((rc = cluster_dump(&r->c, i, &d)) != 0) {
			complain("distkv-faults: split: %s: dump: %s\n",
			    r->c.node[i].name, distkv_strerror(rc));
			return -1;
		}
		for (size_t k = w0; k < r->nw; k++) {
			const struct write_rec *w = &r->w[k];

			if (side[w->node] == side[i] || !holds_event(&d, w))
				continue;
			if (leaks++ < 5)
				complain("distkv-faults: split: the cut "
				    "leaked: %s holds fk/%d = %lld (%s:%llu) "
				    "made on %s across the cut\n",
				    r->c.node[i].name, w->key,
				    (long long)w->value, w->head,
				    (unsigned long long)w->tick,
				    r->c.node[w->node].name);
		}
		cluster_dump_free(&d);
	}
	return leaks;
}

/* A counter sum for the summary: its value, or n/a (static ring). */
static const char *
fmt_counter(bool have, uint64_t v)
{
	static char ring[8][24];
	static unsigned next;
	char *b = ring[next++ % 8];

	if (!have)
		return "n/a";
	snprintf(b, sizeof(ring[0]), "%llu", (unsigned long long)v);
	return b;
}

int
run_split(struct run *r)
{
	static struct recov before[CLUSTER_MAX], after[CLUSTER_MAX];
	int side[CLUSTER_MAX], nside[2] = { 0, 0 }, made[2] = { 0, 0 };
	int half = (r->n + 1) / 2, violations = 0, expected = 0, leaks = -1;
	int have[RV_N], have_running = 0, running = 0, checked_on;
	uint64_t sum[RV_N], lost = 0;
	long long t0, t_cut, t_sides = -1, t_heal, t_conv = -1, t_applied = -1;
	struct applied ap;
	bool watching = false;
	int last_node = -1;
	struct cluster_dump final;
	bool failed = false;
	size_t w0;
	int64_t id = 0;
	char why[2048];

	/* every node writes, so that every node knows every node's ticks */
	for (int i = 0; i < r->n; i++) {
		int rc = do_write(r, i, SPLIT_MARK_KEY + i, false, ++id);

		if (rc != 0) {
			complain("distkv-faults: split: marker on %s "
			    "not acknowledged: %s\n", r->c.node[i].name,
			    rc == 1 ? "nothing changed" : distkv_strerror(rc));
			goto early;
		}
	}
	if (wait_same(r, (size_t)r->n, harness_now_ms(), r->converge_ms,
	    why, sizeof(why)) < 0) {
		complain("distkv-faults: split: TIMEOUT: no convergence "
		    "before the cut in %d s: %s\n", r->converge_ms / 1000, why);
		print_divergence(r);
		goto early;
	}
	/*
	 * Counted from here, so that the start does not count: once no node
	 * runs a recovery (the start's ping collisions start some), if the
	 * agents report that.
	 */
	if (wait_no_recovery(r, before, "split", false) != 0)
		goto early;

	for (int i = 0; i < r->n; i++)
		nside[side[i] = i < half ? 0 : 1]++;
	if (partition_apply(r, side, 2) != 0) {
		complain("distkv-faults: split: could not cut\n");
		goto early;
	}
	t_cut = harness_now_ms();
	w0 = r->nw;
	/* alternately on the two sides, each time on the next node there */
	for (int j = 0; j < r->changes; j++) {
		int s = j % 2, nth = (j / 2) % nside[s], i = -1, rc;

		for (int x = 0; x < r->n && nth >= 0; x++)
			if (side[x] == s && nth-- == 0)
				i = x;
		if ((rc = do_write(r, i, j, false, ++id)) != 0) {
			complain("distkv-faults: split: change %d "
			    "(fk/%d) on %s not acknowledged: %s\n", j, j,
			    r->c.node[i].name, rc == 1 ? "nothing changed" :
			    distkv_strerror(rc));
			goto early;
		}
		made[s]++;
	}
	logf_(r, "%d changes made (%d, %d)", r->changes, made[0], made[1]);
	t0 = harness_now_ms();
	while (!g_stop && t_sides < 0) {
		int s = 0;

		while (s < 2 && side_settled(r, side, s, w0, why,
		    sizeof(why)) == 0)
			s++;
		if (s == 2)
			t_sides = harness_now_ms() - t0;
		else if (harness_now_ms() - t0 > r->converge_ms)
			break;
		else
			usleep(50000);	/* dumps are not free */
	}
	if (g_stop)
		return 1;
	if (t_sides < 0) {
		complain("distkv-faults: split: TIMEOUT: the sides did "
		    "not settle in %d s: %s\n", r->converge_ms / 1000, why);
		failed = true;
	} else if ((leaks = cut_leaks(r, side, w0)) != 0)
		failed = true;
	/*
	 * The split lasts SPLIT_HOLD_CLOCKS at least: long enough for each
	 * side to ping on its own (so the chains collide at the heal) and
	 * for Serf to stop re-gossiping the split's events, which would
	 * otherwise repair it without any recovery.
	 */
	while (!failed && !g_stop && harness_now_ms() - t_cut <
	    (long long)(SPLIT_HOLD_CLOCKS * clock_s(r) * 1000.0))
		usleep(20000);
	logf_(r, "sides settled in %lld ms; healing %lld ms after the cut",
	    t_sides, harness_now_ms() - t_cut);

	/* watches time each node's last change; the dumps confirm it */
	if (!failed && (watching = true, applied_start(r, &ap) != 0))
		complain("distkv-faults: split: the watches did not start: "
		    "applied_ms=n/a\n");
	/* from the start of the heal: the rules go one by one */
	t_heal = harness_now_ms();
	do_heal(r);
	logf_(r, "healed in %lld ms", harness_now_ms() - t_heal);
	t_conv = wait_same(r, (size_t)(r->n + r->changes), t_heal,
	    r->converge_ms, why, sizeof(why));
	if (watching && (t_applied = applied_stop(&ap, &last_node)) >= 0)
		t_applied = t_applied > t_heal ? t_applied - t_heal : 0;
	if (g_stop)
		return 1;
	if (t_conv < 0) {
		complain("distkv-faults: split: TIMEOUT: no convergence "
		    "in %d s after the heal: %s\n", r->converge_ms / 1000, why);
		print_divergence(r);
		failed = true;
	}
	logf_(r, "converged %lld ms after the heal (the last change applied "
	    "after %lld ms, on %s)", t_conv, t_applied, last_node >= 0 ?
	    r->c.node[last_node].name : "none");
	/*
	 * Late answers count too: the counters are read once no node answers
	 * missing reports, not at convergence.  Recoveries may go on: at a
	 * clock as short as Serf's gossip, pings cross and collide, but once
	 * converged their missing reports are empty and start no answers.
	 */
	if (!failed && wait_no_recovery(r, NULL, "split: after the heal",
	    true) != 0)
		failed = true;
	for (checked_on = 0; checked_on < r->n; checked_on++)
		if (cluster_dump(&r->c, checked_on, &final) == 0)
			break;
	if (checked_on == r->n) {
		complain("distkv-faults: split: no node answers dump\n");
		failed = true;
	} else {
		violations = check_writes(r, &final, &expected);
		cluster_dump_free(&final);
	}

	memset(have, 0, sizeof(have));
	memset(sum, 0, sizeof(sum));
	for (int i = 0; i < r->n; i++) {
		if (recov_query(r, i, &after[i], why, sizeof(why)) != 0) {
			complain("distkv-faults: split: %s\n", why);
			failed = true;
			continue;
		}
		for (int f = 0; f < RV_N; f++) {
			if (!after[i].have[f])
				continue;
			have[f]++;
			sum[f] += after[i].v[f] -
			    (before[i].have[f] ? before[i].v[f] : 0);
		}
		have_running += after[i].have_running;
		running += after[i].have_running && after[i].running;
	}
	for (int i = 0; i < r->n; i++)
		lost += (uint64_t)made[1 - side[i]];
	if (have[RV_RETRANSMIT_EVENTS] > 0 && r->changes <= 10 &&
	    sum[RV_RETRANSMIT_EVENTS] > (uint64_t)r->n + 1) {
		complain("distkv-faults: split: %llu retransmit events "
		    "for %d changes, more than N+1 = %d\n",
		    (unsigned long long)sum[RV_RETRANSMIT_EVENTS], r->changes,
		    r->n + 1);
		failed = true;
	}
	failed |= violations > 0;

	{
		bool per = have[RV_RETRANSMIT_ENTRIES] > 0 ||
		    have[RV_CATCHUP_ITEMS] > 0;
		double rpl = lost > 0 ? (double)(sum[RV_RETRANSMIT_ENTRIES] +
		    sum[RV_CATCHUP_ITEMS]) / (double)lost : 0.0;
		char runs[32], rpls[32] = "n/a", cut[32] = "unprobed";

		snprintf(runs, sizeof(runs), "%d/%d", running, r->n);
		if (per)
			snprintf(rpls, sizeof(rpls), "%.2f", rpl);
		if (leaks == 0)
			snprintf(cut, sizeof(cut), "held");
		else if (leaks > 0)
			snprintf(cut, sizeof(cut), "leaked(%d)", leaks);
		printf("distkv-faults: split nodes=%d sides=%d+%d changes=%d "
		    "acked=%zu lost_events=%llu violations=%d cut=%s "
		    "sides_ms=%lld converge_ms=%lld %s %s recoveries=%s "
		    "retransmit_events=%s retransmit_entries=%s "
		    "missing_reports=%s known_reports=%s catchup_items=%s "
		    "retransmitted_per_lost=%s recovery_running=%s %s\n",
		    r->n, nside[0], nside[1], r->changes, r->nw - w0,
		    (unsigned long long)lost, violations, cut, t_sides,
		    t_conv, fmt_converge(r, t_conv), fmt_applied(r, t_applied),
		    fmt_counter(have[RV_RECOVERIES] > 0,
		    sum[RV_RECOVERIES]),
		    fmt_counter(have[RV_RETRANSMIT_EVENTS] > 0,
		    sum[RV_RETRANSMIT_EVENTS]),
		    fmt_counter(have[RV_RETRANSMIT_ENTRIES] > 0,
		    sum[RV_RETRANSMIT_ENTRIES]),
		    fmt_counter(have[RV_MISSING_REPORTS] > 0,
		    sum[RV_MISSING_REPORTS]),
		    fmt_counter(have[RV_KNOWN_REPORTS] > 0,
		    sum[RV_KNOWN_REPORTS]),
		    fmt_counter(have[RV_CATCHUP_ITEMS] > 0,
		    sum[RV_CATCHUP_ITEMS]),
		    rpls,
		    have_running > 0 ? runs : "n/a",
		    failed ? "FAIL" : "PASS");
		fflush(stdout);
	}
	if (failed && !r->keep)
		print_diag(&r->c);
	return failed ? 1 : 0;
early:
	/* no figures to give */
	printf("distkv-faults: split nodes=%d changes=%d FAIL\n", r->n,
	    r->changes);
	if (!r->keep && !g_stop)
		print_diag(&r->c);
	return 1;
}

/* ---- the wipe-during-a-split scenario (--wipe-split) ---- */

#define WIPE_WRITES 5		/* "v1".."v5" on the victim during the cut */
#define WIPE_HOLD_CLOCKS 10	/* the least from the victim's last write
				 * to the heal (see run_wipe_split) */
#define WIPE_CONVERGE_CLOCKS 30	/* the healed cluster's deadline */

/* pv/<name of node victim>/<leaf> (aborts on ENOMEM). */
static distkv_path *
wipe_path(const struct run *r, int victim, const char *leaf)
{
	const char *name = r->c.node[victim].name;
	distkv_path *p;

	if (distkv_path_new(&p) != 0 ||
	    distkv_path_push_str(p, "pv", 2) != 0 ||
	    distkv_path_push_str(p, name, strlen(name)) != 0 ||
	    distkv_path_push_str(p, leaf, strlen(leaf)) != 0)
		abort();
	return p;
}

/* The item of pv/<victim>/<leaf> in d, or NULL. */
static const struct cluster_item *
wipe_item(const struct run *r, int victim, const struct cluster_dump *d,
    const char *leaf)
{
	distkv_path *p = wipe_path(r, victim, leaf);
	const struct cluster_item *it = cluster_dump_find_path(d, p);

	distkv_path_free(p);
	return it;
}

/*
 * The value of item it as text in buf: "-" without an entry, "(deleted)"
 * for a tombstone, else the string (other types as msgpack text).
 */
static const char *
wipe_value(const struct cluster_item *it, char *buf, size_t len)
{
	const char *s;
	size_t slen;

	if (it == NULL)
		snprintf(buf, len, "-");
	else if (it->value == NULL || it->value_len == 0 ||
	    distkv_value_is_nil(it->value, it->value_len))
		snprintf(buf, len, "(deleted)");
	else if (distkv_value_get_str(it->value, it->value_len, &s,
	    &slen) == 0)
		snprintf(buf, len, "%.*s", (int)slen, s);
	else
		snprintf(buf, len, "%s", cluster_show(it->value,
		    it->value_len));
	return buf;
}

/*
 * Does d hold pv/<victim>/x = x, and pv/<victim>/new = "new" if with_new
 * (no such entry otherwise)?  If not, why gives both values.
 */
static bool
wipe_holds(const struct run *r, int victim, const struct cluster_dump *d,
    const char *x, bool with_new, char *why, size_t whylen)
{
	char xv[64], nv[64];

	wipe_value(wipe_item(r, victim, d, "x"), xv, sizeof(xv));
	wipe_value(wipe_item(r, victim, d, "new"), nv, sizeof(nv));
	if (!strcmp(xv, x) && !strcmp(nv, with_new ? "new" : "-"))
		return true;
	snprintf(why, whylen, "x = %s, new = %s (want x = %s, new = %s)", xv,
	    nv, x, with_new ? "new" : "-");
	return false;
}

/*
 * Set pv/<victim>/<leaf> to the string val through the victim; 0 if the
 * agent acknowledged a change (*tick: its head tick), else -1 (said on
 * stderr).
 */
static int
wipe_set(struct run *r, int victim, const char *leaf, const char *val,
    uint64_t *tick)
{
	struct distkv_set_result res;
	struct distkv_set_opts opts;
	struct distkv_value v = { NULL, 0 };
	distkv_path *p;
	distkv *k;
	int rc = -1;

	memset(&res, 0, sizeof(res));
	memset(&opts, 0, sizeof(opts));
	opts.nchain = 1;
	if ((k = client(r, victim)) == NULL) {
		complain("distkv-faults: wipe-split: %s: no connection "
		    "for pv/%s/%s = %s\n", r->c.node[victim].name,
		    r->c.node[victim].name, leaf, val);
		return -1;
	}
	if (distkv_value_from_str(&v, val, strlen(val)) != 0)
		abort();
	p = wipe_path(r, victim, leaf);
	rc = distkv_set(k, p, v.data, v.len, &opts, &res);
	distkv_path_free(p);
	distkv_value_clear(&v);
	if (rc != 0 || !res.changed || res.chain.n == 0) {
		complain("distkv-faults: wipe-split: pv/%s/%s = %s on "
		    "%s not acknowledged: %s %s\n", r->c.node[victim].name,
		    leaf, val, r->c.node[victim].name, rc != 0 ?
		    distkv_strerror(rc) : "nothing changed", rc != 0 ?
		    distkv_errmsg(k) : "");
		if (rc != 0)
			call_failed(r, victim, rc);
		distkv_set_result_clear(&res);
		return -1;
	}
	*tick = res.chain.ev[0].tick;
	logf_(r, "pv/%s/%s = %s: %s:%llu tock %llu", r->c.node[victim].name,
	    leaf, val, res.chain.ev[0].node, (unsigned long long)*tick,
	    (unsigned long long)res.tock);
	distkv_set_result_clear(&res);
	return 0;
}

/*
 * Wait (within --converge-timeout) until the running nodes of side s
 * (side[i] == s) hold one tree in which pv/<victim>/x = x and
 * pv/<victim>/new is as wipe_holds() says.  Returns the ms it took, or -1
 * (why: the last difference).
 */
static long long
wipe_wait_side(struct run *r, const int *side, int s, int victim,
    const char *x, bool with_new, char *why, size_t whylen)
{
	long long t0 = harness_now_ms();
	struct cluster_dump d;
	char tmp[256];
	int first = -1;

	for (int i = 0; i < r->n && first < 0; i++)
		if (side[i] == s)
			first = i;
	snprintf(why, whylen, "interrupted");
	while (!g_stop) {
		if (side_settled(r, side, s, r->nw, why, whylen) == 0 &&
		    cluster_dump(&r->c, first, &d) == 0) {
			bool ok = wipe_holds(r, victim, &d, x, with_new, tmp,
			    sizeof(tmp));

			cluster_dump_free(&d);
			if (ok)
				return harness_now_ms() - t0;
			snprintf(why, whylen, "%s: %s", r->c.node[first].name,
			    tmp);
		}
		if (harness_now_ms() - t0 > r->converge_ms)
			break;
		usleep(50000);	/* dumps are not free */
	}
	return -1;
}

/*
 * The cut probe: nodes of side 1 (side[i] == 1) that hold anything but
 * pv/<victim>/x = "before" and no pv/<victim>/new.  Returns their number,
 * -1 if a node does not answer dump.
 */
static int
wipe_cut_leaks(struct run *r, const int *side, int victim)
{
	int leaks = 0;

	for (int i = 0; i < r->n; i++) {
		struct cluster_dump d;
		char why[256];
		int rc;

		if (side[i] != 1)
			continue;
		if ((rc = cluster_dump(&r->c, i, &d)) != 0) {
			complain("distkv-faults: wipe-split: %s: dump: "
			    "%s\n", r->c.node[i].name, distkv_strerror(rc));
			return -1;
		}
		if (!wipe_holds(r, victim, &d, "before", false, why,
		    sizeof(why))) {
			complain("distkv-faults: wipe-split: the cut "
			    "leaked: %s holds %s\n", r->c.node[i].name, why);
			leaks++;
		}
		cluster_dump_free(&d);
	}
	return leaks;
}

/*
 * The last "restarted without data: ticks A-B skipped" of node i's
 * agent.err (kept across restarts): 0 with *from = A and *to = B, or -1.
 */
static int
log_skipped(const struct run *r, int i, uint64_t *from, uint64_t *to)
{
	static const char needle[] = "restarted without data: ticks ";
	char path[400], line[2048];
	unsigned long long a, b;
	int found = -1;
	FILE *f;

	snprintf(path, sizeof(path), "%s/agent.err", r->c.node[i].h.dir);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		const char *p = strstr(line, needle);

		if (p != NULL && sscanf(p + sizeof(needle) - 1, "%llu-%llu",
		    &a, &b) == 2) {
			*from = a;
			*to = b;
			found = 0;
		}
	}
	fclose(f);
	return found;
}

/* A get_state reply: its bytes and the map unpacked from them (whose
 * strings point into the bytes). */
struct state_reply {
	struct distkv_value raw;
	msgpack_unpacked up;
};

static void
state_reply_fini(struct state_reply *sr)
{
	msgpack_unpacked_destroy(&sr->up);
	distkv_value_clear(&sr->raw);
}

/*
 * Node i's get_state with the given DISTKV_STATE_* flags into *sr
 * (state_reply_fini() it in any case); 0 with the reply map in
 * sr->up.data, or -1 (why).
 */
static int
state_get(struct run *r, int i, int flags, struct state_reply *sr,
    char *why, size_t whylen)
{
	distkv *k;
	int rc;

	memset(&sr->raw, 0, sizeof(sr->raw));
	msgpack_unpacked_init(&sr->up);
	if ((k = client(r, i)) == NULL) {
		snprintf(why, whylen, "%s: no connection", r->c.node[i].name);
		return -1;
	}
	if ((rc = distkv_state(k, flags, &sr->raw)) != 0) {
		snprintf(why, whylen, "%s: get_state: %s %s",
		    r->c.node[i].name, distkv_strerror(rc), distkv_errmsg(k));
		call_failed(r, i, rc);
		return -1;
	}
	if (msgpack_unpack_next(&sr->up, (const char *)sr->raw.data,
	    sr->raw.len, NULL) != MSGPACK_UNPACK_SUCCESS ||
	    sr->up.data.type != MSGPACK_OBJECT_MAP) {
		snprintf(why, whylen, "%s: get_state: not a map",
		    r->c.node[i].name);
		return -1;
	}
	return 0;
}

/* The value of key in map m, or NULL. */
static const msgpack_object *
map_get(const msgpack_object *m, const char *key)
{
	for (uint32_t j = 0; m->type == MSGPACK_OBJECT_MAP &&
	    j < m->via.map.size; j++) {
		const msgpack_object *k = &m->via.map.ptr[j].key;

		if (k->type == MSGPACK_OBJECT_STR &&
		    k->via.str.size == strlen(key) &&
		    !memcmp(k->via.str.ptr, key, k->via.str.size))
			return &m->via.map.ptr[j].val;
	}
	return NULL;
}

/*
 * Node i's get_state with the given DISTKV_STATE_* flags: the reply map
 * as text in text (may be cut short).  *nmiss (if not NULL): the number
 * of nodes whose ticks it reports missing.  0, or -1 (why in text).
 */
static int
state_query(struct run *r, int i, int flags, int *nmiss, char *text,
    size_t textlen)
{
	struct state_reply sr;
	const msgpack_object *miss;
	int rc;

	if (nmiss != NULL)
		*nmiss = 0;
	if ((rc = state_get(r, i, flags, &sr, text, textlen)) == 0) {
		msgpack_object_print_buffer(text, textlen, sr.up.data);
		if (nmiss != NULL && (miss = map_get(&sr.up.data,
		    "missing")) != NULL && miss->type == MSGPACK_OBJECT_MAP)
			*nmiss = (int)miss->via.map.size;
	}
	state_reply_fini(&sr);
	return rc;
}

/*
 * Does node i know (get_state {known}) all ticks of node owner from
 * `from` to `to` (both included), and miss no tick of any node?  0, or -1
 * (why).  Known ranges come as [b, e) pairs or single ticks.
 */
static int
state_knows(struct run *r, int i, const char *owner, uint64_t from,
    uint64_t to, char *why, size_t whylen)
{
	struct state_reply sr;
	const msgpack_object *kn, *miss;
	bool covered = false;
	int rc;

	if ((rc = state_get(r, i, DISTKV_STATE_KNOWN | DISTKV_STATE_MISSING,
	    &sr, why, whylen)) != 0)
		goto out;
	if ((kn = map_get(&sr.up.data, "known")) != NULL &&
	    (kn = map_get(kn, owner)) != NULL &&
	    kn->type == MSGPACK_OBJECT_ARRAY)
		for (uint32_t j = 0; j < kn->via.array.size; j++) {
			const msgpack_object *o = &kn->via.array.ptr[j];
			uint64_t b, e;

			if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
				b = o->via.u64;
				e = b + 1;
			} else if (o->type == MSGPACK_OBJECT_ARRAY &&
			    o->via.array.size == 2 &&
			    o->via.array.ptr[0].type ==
			    MSGPACK_OBJECT_POSITIVE_INTEGER &&
			    o->via.array.ptr[1].type ==
			    MSGPACK_OBJECT_POSITIVE_INTEGER) {
				b = o->via.array.ptr[0].via.u64;
				e = o->via.array.ptr[1].via.u64;
			} else
				continue;
			covered |= b <= from && e > to;
		}
	miss = map_get(&sr.up.data, "missing");
	rc = -1;
	if (!covered)
		snprintf(why, whylen, "%s does not know %s's ticks %llu-%llu "
		    "yet", r->c.node[i].name, owner, (unsigned long long)from,
		    (unsigned long long)to);
	else if (miss != NULL && miss->type == MSGPACK_OBJECT_MAP &&
	    miss->via.map.size > 0)
		snprintf(why, whylen, "%s still misses ticks",
		    r->c.node[i].name);
	else
		rc = 0;
out:
	state_reply_fini(&sr);
	return rc;
}

/*
 * For a failed run: every node's entries of the victim (value, tock,
 * chain) and its get_state {nodes, known, missing, remote_missing}.
 */
static void
wipe_print_state(struct run *r, int victim)
{
	static const char *const leaf[2] = { "x", "new" };
	static char text[8192];

	for (int i = 0; i < r->n; i++) {
		struct cluster_dump d;
		int rc;

		if ((rc = cluster_dump(&r->c, i, &d)) != 0) {
			complain("distkv-faults: %s: dump: %s\n",
			    r->c.node[i].name, distkv_strerror(rc));
			continue;
		}
		for (int l = 0; l < 2; l++) {
			const struct cluster_item *it = wipe_item(r, victim,
			    &d, leaf[l]);

			if (it == NULL)
				complain("distkv-faults: %s: pv/%s/%s: "
				    "(no entry)\n", r->c.node[i].name,
				    r->c.node[victim].name, leaf[l]);
			else
				complain("distkv-faults: %s: pv/%s/%s: "
				    "value %s tock %llu chain %s\n",
				    r->c.node[i].name, r->c.node[victim].name,
				    leaf[l], cluster_show(it->value,
				    it->value_len), (unsigned long long)it->tock,
				    cluster_show(it->chain, it->chain_len));
		}
		cluster_dump_free(&d);
		(void)state_query(r, i, DISTKV_STATE_NODES | DISTKV_STATE_KNOWN |
		    DISTKV_STATE_MISSING | DISTKV_STATE_REMOTE_MISSING, NULL,
		    text, sizeof(text));
		complain("distkv-faults: %s: get_state: %s\n",
		    r->c.node[i].name, text);
	}
}

/*
 * The scenario of the wipe-during-a-split issue (see the header comment
 * and docs/cluster.md).  The victim is node n/2, its K = --unique
 * holders the K nodes after it (modulo n), the rest the majority.
 */
int
run_wipe_split(struct run *r)
{
	static const char *const vals[WIPE_WRITES] = {
		"v1", "v2", "v3", "v4", "v5",
	};
	int side[CLUSTER_MAX], side2[CLUSTER_MAX], all[CLUSTER_MAX];
	int v = r->n / 2, mark, leaks = -1, n_ok = 0, nmiss = -1, rc;
	uint64_t tick_before = 0, tick[WIPE_WRITES], tick_new = 0;
	uint64_t skip_from = 0, skip_to = 0;
	long long t_cut, t_last, t_side, t_restart, t_ready, t_known, t_heal;
	long long t_conv = -1, t_miss = -1, deadline;
	bool failed = false, have_skip, in_skip;
	const char *want_x = r->unique > 0 ? "v5" : "before";
	bool want_new = r->unique > 0;
	char why[2048], xs[160], news[160], holders[64], text[1024];
	size_t xoff = 0, noff = 0, hoff = 0;

	holders[0] = '\0';
	for (int i = 0; i < r->n; i++) {
		side[i] = 1;		/* first cut: the rest */
		side2[i] = 0;		/* second cut: the rest and the victim */
		all[i] = 0;
	}
	side[v] = 0;
	for (int h = 1; h <= r->unique; h++) {
		int j = (v + h) % r->n;

		side[j] = 0;
		side2[j] = 1;
		hoff += (size_t)snprintf(holders + hoff, sizeof(holders) -
		    hoff, "%s%s", h > 1 ? "," : "", r->c.node[j].name);
	}
	if (r->unique == 0)
		snprintf(holders, sizeof(holders), "none");

	/* 1. the initial value, everywhere, and a quiet cluster */
	if (wipe_set(r, v, "x", "before", &tick_before) != 0)
		goto early;
	if (wipe_wait_side(r, all, 0, v, "before", false, why,
	    sizeof(why)) < 0) {
		complain("distkv-faults: wipe-split: TIMEOUT: no "
		    "convergence on x = before in %d s: %s\n",
		    r->converge_ms / 1000, why);
		print_divergence(r);
		goto early;
	}
	if (wait_no_recovery(r, NULL, "wipe-split", false) != 0)
		goto early;

	/* 2. cut {victim, holders} | {rest}; the victim writes */
	if (partition_apply(r, side, 2) != 0) {
		complain("distkv-faults: wipe-split: could not cut\n");
		goto early;
	}
	t_cut = harness_now_ms();
	for (int j = 0; j < WIPE_WRITES; j++)
		if (wipe_set(r, v, "x", vals[j], &tick[j]) != 0)
			goto early;
	if (wipe_set(r, v, "new", "new", &tick_new) != 0)
		goto early;
	t_last = harness_now_ms();
	if ((t_side = wipe_wait_side(r, side, 0, v, "v5", true, why,
	    sizeof(why))) < 0) {
		complain("distkv-faults: wipe-split: TIMEOUT: the "
		    "victim's side did not settle in %d s: %s\n",
		    r->converge_ms / 1000, why);
		goto early;
	}
	if ((leaks = wipe_cut_leaks(r, side, v)) != 0)
		goto early;
	logf_(r, "victim's side settled in %lld ms; the other side has "
	    "none of it", t_side);

	/* 3. kill -9 the victim, empty its state dir */
	kill_agent(r, v);
	if (empty_state_dir(r, v) != 0) {
		complain("distkv-faults: wipe-split: cannot empty %s\n",
		    r->c.node[v].h.state_dir);
		goto early;
	}
	r->epoch[v]++;

	/*
	 * 4. move the cut: {rest, victim} | {holders}.  The new rules go in
	 * before the old ones go, so no packet crosses while it moves.
	 * Without holders the new cut is empty: the victim simply comes
	 * back to the rest.
	 */
	mark = g_nrules;
	if (r->unique > 0 && partition_apply(r, side2, 2) != 0) {
		complain("distkv-faults: wipe-split: could not cut the "
		    "holders off\n");
		goto early;
	}
	if (rules_delete_before("filter", mark) != 0) {
		complain("distkv-faults: wipe-split: could not lift "
		    "the first cut\n");
		goto early;
	}
	r->partitioned = r->unique > 0;
	t_restart = harness_now_ms();
	if (restart_node(r, v, false) != 0 ||
	    cluster_wait_socket(&r->c, v, r->converge_ms) != 0) {
		complain("distkv-faults: wipe-split: %s not ready "
		    "within %d s of its restart without data\n",
		    r->c.node[v].name, r->converge_ms / 1000);
		goto early;
	}
	t_ready = harness_now_ms() - t_restart;
	have_skip = log_skipped(r, v, &skip_from, &skip_to) == 0;
	in_skip = have_skip && tick[WIPE_WRITES - 1] >= skip_from &&
	    tick[WIPE_WRITES - 1] <= skip_to;
	logf_(r, "%s ready %lld ms after its restart without data; skipped "
	    "%llu-%llu", r->c.node[v].name, t_ready,
	    (unsigned long long)skip_from, (unsigned long long)skip_to);
	if (wipe_wait_side(r, side2, 0, v, "before", false, why,
	    sizeof(why)) < 0) {
		complain("distkv-faults: wipe-split: TIMEOUT: the "
		    "majority side with the restarted %s did not settle in "
		    "%d s: %s\n", r->c.node[v].name, r->converge_ms / 1000,
		    why);
		goto early;
	}
	/*
	 * The heal comes only once every node of the majority side knows the
	 * skipped ticks (the victim announces them in its info) and misses
	 * nothing: the state of the issue, in which nobody waits for the
	 * holders' ticks.  Healing earlier races that announcement: a node
	 * that hears of the holders' ticks first still misses them and asks
	 * for them, which repairs the split by chance.
	 */
	if (!have_skip) {
		complain("distkv-faults: wipe-split: no \"restarted "
		    "without data: ticks A-B skipped\" in %s's log\n",
		    r->c.node[v].name);
		goto early;
	}
	t_known = harness_now_ms();
	for (;;) {
		int i = 0;

		while (i < r->n && (side2[i] != 0 || state_knows(r, i,
		    r->c.node[v].name, skip_from, skip_to, why,
		    sizeof(why)) == 0))
			i++;
		if (i == r->n)
			break;
		if (g_stop || harness_now_ms() - t_known > r->converge_ms) {
			complain("distkv-faults: wipe-split: TIMEOUT: "
			    "the skipped ticks were not known on the majority "
			    "side within %d s: %s\n", r->converge_ms / 1000,
			    why);
			goto early;
		}
		usleep(50000);
	}
	t_known = harness_now_ms() - t_known;
	/*
	 * The victim's events must be gone from Serf's gossip queues before
	 * the heal (as in --split): the holders' entries then come back only
	 * through DistKV's own repair, which is what the scenario tests.
	 */
	while (!g_stop && harness_now_ms() - t_last <
	    (long long)(WIPE_HOLD_CLOCKS * clock_s(r) * 1000.0))
		usleep(20000);

	/* 5. heal; identical dumps within WIPE_CONVERGE_CLOCKS */
	do_heal(r);
	t_heal = harness_now_ms();
	deadline = t_heal + (long long)(WIPE_CONVERGE_CLOCKS * clock_s(r) *
	    1000.0);
	t_conv = wait_same(r, 0, t_heal, (int)(deadline - t_heal), why,
	    sizeof(why));
	if (g_stop)
		return 1;
	if (t_conv < 0) {
		complain("distkv-faults: wipe-split: TIMEOUT: no "
		    "convergence within %d clocks after the heal: %s\n",
		    WIPE_CONVERGE_CLOCKS, why);
		print_divergence(r);
		failed = true;
	}
	for (int i = 0; i < r->n; i++) {
		struct cluster_dump d;
		char xv[64], nv[64];

		if ((rc = cluster_dump(&r->c, i, &d)) != 0) {
			complain("distkv-faults: wipe-split: %s: dump: "
			    "%s\n", r->c.node[i].name, distkv_strerror(rc));
			snprintf(xv, sizeof(xv), "?");
			snprintf(nv, sizeof(nv), "?");
		} else {
			n_ok += wipe_holds(r, v, &d, want_x, want_new, why,
			    sizeof(why));
			wipe_value(wipe_item(r, v, &d, "x"), xv, sizeof(xv));
			wipe_value(wipe_item(r, v, &d, "new"), nv,
			    sizeof(nv));
			cluster_dump_free(&d);
		}
		xoff += (size_t)snprintf(xs + xoff, sizeof(xs) - xoff, "%s%s",
		    i > 0 ? "," : "", xv);
		noff += (size_t)snprintf(news + noff, sizeof(news) - noff,
		    "%s%s", i > 0 ? "," : "", nv);
	}
	if (n_ok < r->n) {
		complain("distkv-faults: wipe-split: %d of %d nodes "
		    "do not hold pv/%s/x = %s with%s pv/%s/new\n",
		    r->n - n_ok, r->n, r->c.node[v].name, want_x,
		    want_new ? "" : "out", r->c.node[v].name);
		failed = true;
	}
	/*
	 * Nothing missing anywhere (get_state {missing}): the known ticks
	 * may trail the dumps a little, so within the same deadline (after
	 * a failure: asked once, for the report).
	 */
	while (!g_stop) {
		int bad = 0, nm;

		for (int i = 0; i < r->n; i++) {
			if (state_query(r, i, DISTKV_STATE_MISSING, &nm,
			    text, sizeof(text)) != 0 || nm > 0) {
				bad++;
				snprintf(why, sizeof(why), "%s: %s",
				    r->c.node[i].name, text);
			}
		}
		if (bad == 0) {
			nmiss = 0;
			if (!failed)
				t_miss = harness_now_ms() - t_heal;
			break;
		}
		nmiss = bad;
		if (failed)
			break;
		if (harness_now_ms() > deadline) {
			complain("distkv-faults: wipe-split: %d node(s) "
			    "still report missing ticks %d clocks after the "
			    "heal, e.g. %s\n", bad, WIPE_CONVERGE_CLOCKS, why);
			failed = true;
			break;
		}
		usleep(50000);
	}
	if (g_stop)
		return 1;

	printf("distkv-faults: wipe-split nodes=%d victim=%s unique=%d "
	    "holders=%s tick_before=%llu tick_v5=%llu tick_new=%llu "
	    "skipped=%llu-%llu v5_in_skipped=%s side_ms=%lld ready_ms=%lld "
	    "known_ms=%lld heal_after_ms=%lld converge_ms=%lld %s want=%s/%s "
	    "x=%s new=%s "
	    "ok_nodes=%d/%d missing_nodes=%s missing_clear_ms=%s %s\n",
	    r->n, r->c.node[v].name, r->unique, holders,
	    (unsigned long long)tick_before,
	    (unsigned long long)tick[WIPE_WRITES - 1],
	    (unsigned long long)tick_new, (unsigned long long)skip_from,
	    (unsigned long long)skip_to, in_skip ? "yes" : "no", t_side,
	    t_ready, t_known, t_heal - t_cut, t_conv,
	    fmt_converge(r, t_conv), want_x, want_new ? "new" : "-", xs,
	    news, n_ok, r->n, nmiss < 0 ? "n/a" : fmt_counter(true,
	    (uint64_t)nmiss), t_miss < 0 ? "n/a" : fmt_counter(true,
	    (uint64_t)t_miss), failed ? "FAIL" : "PASS");
	fflush(stdout);
	if (failed) {
		wipe_print_state(r, v);
		if (!r->keep)
			print_diag(&r->c);
	}
	return failed ? 1 : 0;
early:
	printf("distkv-faults: wipe-split nodes=%d unique=%d cut=%s FAIL\n",
	    r->n, r->unique, leaks < 0 ? "unprobed" : leaks == 0 ? "held" :
	    "leaked");
	if (!r->keep && !g_stop)
		print_diag(&r->c);
	return 1;
}
