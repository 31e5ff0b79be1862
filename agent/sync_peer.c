/*
 * sync_peer: requests to a peer's port: the download of a whole tree and
 * catch-up of missing ticks; see sync_impl.h.
 */
#include "sync_impl.h"

/* ---- peer requests: download and catch-up ---- */

/* An alive peer with a peer port, preferring the node named want. */
static const struct serf_member *
pick_peer(struct sync *s, const char *want)
{
	const struct serf_member *best = NULL;

	for (size_t k = 0; k < s->nmem; k++) {
		const struct serf_member *m = &s->mem[(s->rr + k) % s->nmem];

		if (strcmp(m->status, "alive") != 0 || m->peer[0] == '\0' ||
		    strcmp(m->name, s->a->self->name) == 0)
			continue;
		/* it just said it has no data: ask the others first */
		if (ev_now(s->a->loop) < s->refused_until &&
		    strcmp(m->name, s->refused) == 0)
			continue;
		if (want != NULL && strcmp(m->name, want) == 0)
			return m;
		if (best == NULL)
			best = m;
	}
	s->rr++;
	return best;
}

/* The peer refused this request: the timer asks another one later. */
static void
peer_refused(struct sync *s)
{
	snprintf(s->refused, sizeof(s->refused), "%s", s->pname);
	s->refused_until = ev_now(s->a->loop) + 2 * s->a->cfg.clock;
	s->peer_done = true;
	s->catching_up = false;
	s->downloading = false;
}

/* The reply to peer_auth: {} or an error (the request after it fails
 * too, or the peer closes). */
static int
peer_auth_reply(void *arg, const uint8_t *msg, size_t len)
{
	struct sync *s = arg;
	msgpack_zone zone;
	msgpack_object m;
	const msgpack_object *err = NULL;

	msgpack_zone_init(&zone, 1024);
	if (proto_unpack(msg, len, &zone, &m) == 0 &&
	    m.type == MSGPACK_OBJECT_MAP &&
	    (err = proto_map_get(&m, "error")) != NULL) {
		log_warn("peer %s refused our cluster key: %.*s", s->pname,
		    err->type == MSGPACK_OBJECT_STR ?
		    (int)err->via.str.size : 1,
		    err->type == MSGPACK_OBJECT_STR ? err->via.str.ptr : "?");
		peer_refused(s);
	}
	msgpack_zone_destroy(&zone);
	return 0;
}

/*
 * On a connected socket whose greeting has arrived: read it and, if the
 * peer asks for it, send the proof of the cluster key.  Nothing here waits
 * for the peer (the proof's answer comes to peer_auth_reply): two nodes
 * that ask each other at the same moment each wait in their loop for the
 * other's answer, and a wait outside the loop stalled both for the whole
 * SYNC_PEER_TIMEOUT_MS and then failed both logins.
 */
static int
peer_login(struct sync *s, int fd)
{
	const struct agent *a = s->a;
	const msgpack_object *chal;
	msgpack_zone zone;
	msgpack_object g;
	const void *gb;
	size_t glen;
	int rc;

	if ((rc = distkv_connect_fd(fd, SYNC_PEER_TIMEOUT_MS, &s->peer)) != 0) {
		log_debug("peer %s: %s", s->pname, distkv_strerror(rc));
		return rc;
	}
	distkv_set_timeout(s->peer, SYNC_PEER_TIMEOUT_MS);
	gb = distkv_greeting(s->peer, &glen);
	msgpack_zone_init(&zone, 1024);
	rc = proto_unpack(gb, glen, &zone, &g);
	chal = rc == 0 ? proto_map_get(&g, "challenge") : NULL;
	if (chal != NULL) {
		uint8_t mac[crypto_auth_hmacsha256_BYTES];
		msgpack_sbuffer sb;
		msgpack_packer pk;

		if (!a->cfg.has_cluster_key || chal->type != MSGPACK_OBJECT_BIN) {
			log_warn("peer %s wants a cluster key we do not have",
			    s->pname);
			rc = -EACCES;
		} else {
			crypto_auth_hmacsha256(mac,
			    (const uint8_t *)chal->via.bin.ptr,
			    chal->via.bin.size, a->cfg.cluster_key);
			msgpack_sbuffer_init(&sb);
			msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
			msgpack_pack_map(&pk, 3);
			pack_str(&pk, "action");
			pack_str(&pk, "peer_auth");
			pack_str(&pk, "node");
			msgpack_pack_str_with_body(&pk, a->self->name,
			    a->self->name_len);
			pack_str(&pk, "mac");
			msgpack_pack_bin_with_body(&pk, mac, sizeof(mac));
			rc = distkv_async_request(s->peer, sb.data, sb.size,
			    peer_auth_reply, s, NULL);
			msgpack_sbuffer_destroy(&sb);
		}
	}
	msgpack_zone_destroy(&zone);
	if (rc != 0) {
		distkv_close(s->peer);
		s->peer = NULL;
	}
	return rc;
}

static void
peer_update_io(struct sync *s)
{
	int ev = EV_READ | (distkv_want_write(s->peer) ? EV_WRITE : 0);

	if (ev_is_active(&s->peer_io) && s->peer_io.events == ev)
		return;
	ev_io_stop(s->a->loop, &s->peer_io);
	ev_io_set(&s->peer_io, distkv_fd(s->peer), ev);
	ev_io_start(s->a->loop, &s->peer_io);
}

void
sync_peer_close(struct sync *s)
{
	if (s->peer == NULL)
		return;
	ev_io_stop(s->a->loop, &s->peer_io);
	distkv_close(s->peer);
	s->peer = NULL;
}

void
sync_download_done(struct sync *s)
{
	struct agent *a = s->a;

	s->downloading = false;
	/* spec §3.9, C recommendation: max(reported, 0), never reuse */
	if (!a->self->has_tick)
		node_raise_tick(a->self, 0);
	else if (a->self->tick > 0) {
		/*
		 * This node existed before and lost its data (no state dir):
		 * changes it made that no reachable peer saw have ticks above
		 * what the download says.  Jump past them so no tick is ever
		 * used twice, and announce the skipped ones as known (they
		 * hold nothing), so nobody waits for them.
		 */
		uint64_t from = a->self->tick + 1, to = from + SYNC_TICK_JUMP;

		ranges_add(&a->self->known, from, to);
		/* here too: "known" but not seen by all (agent_decide) */
		ranges_add(&a->self->skipped, from, to);
		node_raise_tick(a->self, to - 1);
		log_info("restarted without data: ticks %llu-%llu skipped",
		    (unsigned long long)from, (unsigned long long)(to - 1));
		s->announce_from = from;
		s->announce_to = to;
	}
	log_info("download complete: %llu records, tick %llu",
	    (unsigned long long)s->peer_items,
	    (unsigned long long)a->self->tick);
	agent_became_ready(a);
}

/* One reply message of the running peer request. */
static int
peer_message(void *arg, const uint8_t *msg, size_t len)
{
	struct sync *s = arg;
	struct agent *a = s->a;
	msgpack_zone zone;
	msgpack_object m;
	const msgpack_object *st, *err, *ticks;
	const char *why;
	bool applied, end = false;

	msgpack_zone_init(&zone, 4096);
	if (proto_unpack(msg, len, &zone, &m) != 0 ||
	    m.type != MSGPACK_OBJECT_MAP) {
		msgpack_zone_destroy(&zone);
		return 1;
	}
	st = proto_map_get(&m, "state");
	err = proto_map_get(&m, "error");
	if (err != NULL) {
		log_info("peer %s refused: %.*s", s->pname,
		    err->type == MSGPACK_OBJECT_STR ? (int)err->via.str.size : 1,
		    err->type == MSGPACK_OBJECT_STR ? err->via.str.ptr : "?");
		peer_refused(s);
	} else if (st != NULL) {
		end = proto_str_eq(st, "end");
	} else if ((ticks = proto_map_get(&m, "ticks")) != NULL) {
		if (ticks->type == MSGPACK_OBJECT_MAP)
			for (uint32_t i = 0; i < ticks->via.map.size; i++)
				sync_raise_node_tick(a,
				    &ticks->via.map.ptr[i].key,
				    &ticks->via.map.ptr[i].val);
	} else {
		sync_raise_tock(a, &m);
		if (agent_apply_record(a, &s->ctx, &m, ORIGIN_REMOTE, &applied,
		    &why) != 0)
			log_warn("bad record from peer: %s", why);
		else if (s->catching_up)
			sync_heard_record(s, &m);
		s->peer_items++;
		if (s->catching_up)
			s->stats.catchup_items++;
	}
	msgpack_zone_destroy(&zone);
	if (end) {
		/* the request is over: the connection goes with it, closed by
		 * peer_io_cb (not from inside the library's callback) */
		s->peer_done = true;
		if (s->catching_up && s->peer_items > 0)
			s->last_gained = true;
		s->catching_up = false;
		if (s->downloading)
			sync_download_done(s);
	}
	return 0;
}

static void
peer_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct sync *s = container_of(w, struct sync, peer_io);
	int rc;

	(void)loop;
	(void)revents;
	rc = distkv_process(s->peer);
	if (rc != 0 || s->peer_done) {
		if (rc != 0)
			log_info("peer request ended: %s", distkv_strerror(rc));
		if (rc != 0 && s->downloading)
			s->downloading = false;	/* retried by the timer */
		sync_peer_close(s);
		return;
	}
	peer_update_io(s);
}

/* Give up a connection that is being made. */
void
sync_peer_connect_abort(struct sync *s)
{
	if (s->pfd < 0)
		return;
	ev_io_stop(s->a->loop, &s->connect_io);
	close(s->pfd);
	s->pfd = -1;
	s->downloading = false;
}

static void peer_greeted_cb(struct ev_loop *loop, ev_io *w, int revents);

/* The non-blocking connect finished: wait for the greeting. */
static void
peer_connected_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct sync *s = container_of(w, struct sync, connect_io);
	int fd = s->pfd, err = 0;
	socklen_t elen = sizeof(err);

	(void)revents;
	ev_io_stop(loop, w);
	s->pfd = -1;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0 ||
	    err != 0) {
		log_debug("peer %s: connect: %s", s->pname,
		    strerror(err != 0 ? err : errno));
		close(fd);
		s->downloading = false;
		return;
	}
	/* the greeting next, on the loop (the connect's deadline holds) */
	s->pfd = fd;
	ev_io_init(&s->connect_io, peer_greeted_cb, fd, EV_READ);
	ev_io_start(loop, &s->connect_io);
}

/* The greeting has arrived: log in, send the request. */
static void
peer_greeted_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct sync *s = container_of(w, struct sync, connect_io);
	int fd = s->pfd, rc;

	(void)revents;
	ev_io_stop(loop, w);
	s->pfd = -1;
	/* peer_login owns fd now */
	if (peer_login(s, fd) != 0 ||
	    (rc = distkv_async_request(s->peer, s->preq.data, s->preq.size,
	    peer_message, s, NULL)) != 0) {
		sync_peer_close(s);
		s->downloading = false;
		return;
	}
	ev_io_init(&s->peer_io, peer_io_cb, distkv_fd(s->peer), EV_READ);
	peer_update_io(s);
}

/*
 * Start a request to a peer; replies go to peer_message.  The TCP connect
 * runs on the loop: an unreachable peer (a partition) costs the local
 * clients nothing, and is given up after SYNC_PEER_TIMEOUT_MS.
 */
static int
peer_request(struct sync *s, const struct serf_member *m,
    const msgpack_sbuffer *req)
{
	struct addrinfo *ai;
	int fd, rc;

	if ((fd = transport_tcp_socket(m->peer, false, &ai)) < 0)
		return fd;
	rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
	freeaddrinfo(ai);
	if (rc != 0 && errno != EINPROGRESS) {
		rc = -errno;
		close(fd);
		return rc;
	}
	snprintf(s->pname, sizeof(s->pname), "%s", m->name);
	s->preq.size = 0;
	msgpack_sbuffer_write(&s->preq, req->data, req->size);
	s->peer_items = 0;
	s->peer_done = false;
	s->ctx.base = s->a->tree.root;
	s->ctx.last = s->a->tree.root;
	s->peer_started = ev_now(s->a->loop);
	s->pfd = fd;
	ev_io_init(&s->connect_io, peer_connected_cb, fd, EV_WRITE);
	ev_io_start(s->a->loop, &s->connect_io);
	return 0;
}

void
sync_start_download(struct sync *s)
{
	const struct serf_member *m = pick_peer(s, NULL);
	msgpack_sbuffer sb;
	msgpack_packer pk;

	if (m == NULL)
		return;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 1);
	pack_str(&pk, "action");
	pack_str(&pk, "dump");
	s->downloading = true;
	log_info("downloading the tree from %s (%s)", m->name, m->peer);
	if (peer_request(s, m, &sb) != 0)
		s->downloading = false;
	msgpack_sbuffer_destroy(&sb);
}

/*
 * Whom to ask for want's ticks: a random alive peer whose last `done`
 * report is ahead of ours for want (it holds ticks we lack), else want
 * itself.  Asking want first made every node ask the writer of a bulk
 * load at once, which then served N-1 catch-ups of every key
 * (bench/README.md, 20 and 50 nodes).
 */
static const char *
catchup_source(struct sync *s, const struct node *want)
{
	uint64_t mine = ranges_prefix(&want->known);
	const char *pick = NULL;
	uint32_t seen = 0;

	for (size_t k = 0; k < s->nmem; k++) {
		const struct serf_member *m = &s->mem[k];
		const struct node *nd;

		if (strcmp(m->status, "alive") != 0 || m->peer[0] == '\0' ||
		    strcmp(m->name, s->a->self->name) == 0 ||
		    strcmp(m->name, want->name) == 0)
			continue;
		nd = nodes_get(&s->a->nodes, m->name, strlen(m->name), false);
		if (nd == NULL || !nd->has_report ||
		    want->index >= nd->nreport ||
		    nd->report[want->index] <= mine)
			continue;
		/* each candidate equally likely (reservoir sampling) */
		if (randombytes_uniform(++seen) == 0)
			pick = m->name;
	}
	return pick != NULL ? pick : want->name;
}

/*
 * Ask a peer for every tick we know exists but have not seen.  The peer
 * answers with the entries that hold them (their current state, which
 * descends from the missing change) and reports superseded ones as known.
 */
void
sync_start_catchup(struct sync *s)
{
	struct agent *a = s->a;
	struct ranges miss;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	const struct serf_member *m;
	const struct node *want = NULL;
	uint64_t most = 0, total = 0;
	uint32_t nn = 0;

	ranges_init(&miss);
	for (size_t i = 0; i < a->nodes.n; i++) {
		struct node *nd = a->nodes.by_index[i];
		uint64_t c;

		if (!nd->has_tick || nd->tick == 0)
			continue;
		ranges_missing(&nd->known, nd->tick, &miss);
		if ((c = ranges_count(&miss)) == 0)
			continue;
		nn++;
		total += c;
		if (c > most) {
			most = c;
			want = nd;
		}
	}
	if (nn == 0) {
		s->backoff = 0;
		s->missing_since = 0;
		ranges_fini(&miss);
		return;
	}
	/* during a split recovery, Serf retransmissions get the first
	 * chance; other losses are pulled at once */
	if (s->missing_since == 0)
		s->missing_since = ev_now(a->loop);
	if (s->rec.running && ev_now(a->loop) - s->missing_since <
	    SYNC_CATCHUP_GRACE * a->cfg.clock) {
		ranges_fini(&miss);
		return;
	}
	/*
	 * Ticks nobody holds (lost with a node's disk) would be asked for
	 * forever: after a round that brought nothing, wait longer, up to
	 * SYNC_CATCHUP_MAX_BACKOFF; any progress resets the wait.
	 */
	if (ev_now(a->loop) < s->next_catchup) {
		ranges_fini(&miss);
		return;
	}
	if (s->last_gained)
		s->backoff = 0;
	else
		s->backoff = s->backoff == 0 ? a->cfg.clock :
		    s->backoff * 2 > SYNC_CATCHUP_MAX_BACKOFF ?
		    SYNC_CATCHUP_MAX_BACKOFF : s->backoff * 2;
	s->next_catchup = ev_now(a->loop) + s->backoff;
	s->last_gained = false;
	if ((m = pick_peer(s, catchup_source(s, want))) == NULL) {
		ranges_fini(&miss);
		return;
	}
	log_info("catch-up: %llu missing events of %u nodes, asking %s",
	    (unsigned long long)total, nn, m->name);
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 3);
	pack_str(&pk, "action");
	pack_str(&pk, "get_events");
	/* the peer's ticks too: events neither side knew this one lacks
	 * are asked for in the next round, not after the next info */
	pack_str(&pk, "ticks");
	pack_bool(&pk, true);
	pack_str(&pk, "ranges");
	msgpack_pack_map(&pk, nn);
	for (size_t i = 0; i < a->nodes.n; i++) {
		struct node *nd = a->nodes.by_index[i];

		if (!nd->has_tick || nd->tick == 0)
			continue;
		ranges_missing(&nd->known, nd->tick, &miss);
		if (ranges_empty(&miss))
			continue;
		msgpack_pack_str_with_body(&pk, nd->name, nd->name_len);
		ranges_pack(&pk, &miss);
	}
	ranges_fini(&miss);
	if (peer_request(s, m, &sb) == 0)
		s->catching_up = true;
	msgpack_sbuffer_destroy(&sb);
}
