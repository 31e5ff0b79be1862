/*
 * sync_tomb: tombstones (docs/cluster.md, "Tombstones"), and the timers
 * that look for what is missing; see sync_impl.h.
 */
#include "sync_impl.h"

/* ---- tombstones (docs/cluster.md, "Tombstones") ---- */

/* Remember (time, tock) now and then: which tock is "keep seconds ago". */
static void
sample_tock(struct sync *s)
{
	ev_tstamp now = ev_now(s->a->loop);
	double every = s->a->cfg.tombstone_keep / (SYNC_TOCK_SAMPLES / 2);
	unsigned last = (s->nsamples + SYNC_TOCK_SAMPLES - 1) %
	    SYNC_TOCK_SAMPLES;

	if (s->nsamples > 0 && now - s->samples[last].at < every)
		return;
	s->samples[s->nsamples % SYNC_TOCK_SAMPLES].at = now;
	s->samples[s->nsamples % SYNC_TOCK_SAMPLES].tock = s->a->tock;
	s->nsamples++;
}

/* The tock this node had keep seconds ago (0: not running that long). */
static uint64_t
tock_keep_ago(const struct sync *s)
{
	ev_tstamp then = ev_now(s->a->loop) - s->a->cfg.tombstone_keep;
	unsigned n = s->nsamples < SYNC_TOCK_SAMPLES ? s->nsamples :
	    SYNC_TOCK_SAMPLES;
	uint64_t best = 0;

	if (s->a->cfg.tombstone_keep <= 0)
		return s->a->tock;
	for (unsigned i = 0; i < n; i++)
		if (s->samples[i].at <= then && s->samples[i].tock > best)
			best = s->samples[i].tock;
	return best;
}

/*
 * Raise every node's purge floor: the ticks every node has reported seen.
 * Only when every node that may hold data has reported: every node that
 * ever had a tick and every Serf member, whatever its status (one that is
 * down or left may come back with its state dir).  And only when this
 * node has seen everything each of them had made when it reported: a
 * change made concurrently with a delete, before its maker saw the
 * delete, is then here already and was weighed against the tombstone.
 * Returns false when the floors could not be raised.
 */
static bool
raise_floors(struct sync *s)
{
	struct nodes *ns = &s->a->nodes;
	uint64_t *f;

	for (size_t i = 0; i < s->nmem; i++) {
		const struct serf_member *m = &s->mem[i];
		const struct node *r = nodes_get(ns, m->name, strlen(m->name),
		    false);

		if (r != s->a->self && (r == NULL || !r->has_report) &&
		    !forget_skips(s->a, m->name, strlen(m->name)))
			return false;
	}
	if ((f = calloc(ns->n ? ns->n : 1, sizeof(*f))) == NULL)
		return false;
	for (size_t x = 0; x < ns->n; x++)
		f[x] = ranges_prefix(&ns->by_index[x]->known);
	for (size_t i = 0; i < ns->n; i++) {
		const struct node *r = ns->by_index[i];

		if (r == s->a->self || (!r->has_tick && !r->has_report) ||
		    forget_skips(s->a, r->name, r->name_len))
			continue;
		if (!r->has_report || ranges_prefix(&r->known) <
		    (r->index < r->nreport ? r->report[r->index] : 0)) {
			free(f);
			return false;
		}
		for (size_t x = 0; x < ns->n; x++) {
			uint64_t d = x < r->nreport ? r->report[x] : 0;

			if (d < f[x])
				f[x] = d;
		}
	}
	for (size_t x = 0; x < ns->n; x++)
		if (f[x] > ns->by_index[x]->floor)
			ns->by_index[x]->floor = f[x];
	free(f);
	return true;
}

/*
 * Forget tombstones whose delete every node has seen (head tick at or
 * below its node's floor) and that are older than --tombstone-keep.  A
 * late copy of anything they superseded is stale by the same floor
 * (agent_decide), so nothing comes back to life.
 */
void
sync_purge_tombstones(struct sync *s)
{
	struct agent *a = s->a;
	struct tree_walk w;
	struct entry *e;
	uint64_t limit, n = 0;

	sample_tock(s);
	if (!agent_ready(a) || !raise_floors(s) || a->tombstones == 0 ||
	    (limit = tock_keep_ago(s)) == 0)
		return;
	/*
	 * The walk visits the whole tree: not every clock when tombstones
	 * must be kept long anyway (a tenth of --tombstone-keep late at
	 * most).
	 */
	if (ev_now(a->loop) < s->next_purge)
		return;
	s->next_purge = ev_now(a->loop) + a->cfg.tombstone_keep / 10;
	tree_walk_init(&w, a->tree.root, -1);
	while ((e = tree_walk_next(&w)) != NULL) {
		struct update u;

		if (entry_has_value(e) || e->chain->n == 0 || e->tock > limit ||
		    e->chain->l[0].tick > e->chain->l[0].node->floor)
			continue;
		memset(&u, 0, sizeof(u));
		u.entry = e;
		if (agent_commit(a, &u, ORIGIN_PURGE) == APPLY_ACCEPTED)
			n++;
	}
	if (n > 0) {
		s->stats.purged += n;
		log_info("purged %llu tombstones every node has seen",
		    (unsigned long long)n);
	}
}

/*
 * Clocks until this node's next periodic info: about alive members /
 * SYNC_INFOS_PER_CLOCK on average, drawn at random so that the nodes do
 * not fall into step; 1 in small clusters.
 */
static unsigned
next_info_wait(const struct sync *s)
{
	double m;
	size_t alive = 0;

	for (size_t i = 0; i < s->nmem; i++)
		alive += strcmp(s->mem[i].status, "alive") == 0;
	m = (double)alive / SYNC_INFOS_PER_CLOCK;
	if (m <= 1.0)
		return 1;
	return 1 + (unsigned)(rand01() * (2.0 * m - 1.0));
}

void
sync_info_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct sync *s = container_of(w, struct sync, info_timer);

	(void)loop;
	(void)revents;
	if (s->info_wait > 1)
		s->info_wait--;
	else {
		sync_send_info(s);
		s->info_wait = next_info_wait(s);
	}
	sync_purge_tombstones(s);
}

void
sync_catchup_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct sync *s = container_of(w, struct sync, catchup_timer);

	(void)loop;
	(void)revents;
	{
		char serf_log[600];

		snprintf(serf_log, sizeof(serf_log), "%s/serf.log", s->run_dir);
		joinwatch_step(&s->joinwatch, s->a, ev_now(s->a->loop), s->mem,
		    s->nmem, s->a->cfg.serf_addr == NULL ? serf_log : NULL);
	}
	if (s->pfd >= 0) {
		if (ev_now(s->a->loop) - s->peer_started >
		    SYNC_PEER_TIMEOUT_MS / 1000.0) {
			log_info("peer %s unreachable; trying another later",
			    s->pname);
			sync_peer_connect_abort(s);
		}
		return;
	}
	if (s->peer != NULL) {
		/* a peer that stalls is given up on after 30 s */
		if (ev_now(s->a->loop) - s->peer_started > 30.0) {
			log_warn("peer request stalled; dropping it");
			sync_peer_close(s);
			s->downloading = false;
		}
		return;
	}
	if (!agent_ready(s->a))
		sync_start_download(s);
	else
		sync_start_catchup(s);
}
