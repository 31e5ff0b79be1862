/*
 * fuzz_peer: libFuzzer harness for the peer port protocol as the client
 * side of agent/sync.c reads it: the greeting (with its challenge), the
 * peer_auth reply, and the replies to a dump (download) or get_events
 * (catch-up) request, through libdistkv's framing (distkv_connect_fd,
 * distkv_process) into peer_login() and peer_message() and from there
 * agent_apply_record().  sync.c is compiled in (fuzz_sync.h).
 *
 * The first byte of an input picks the situation:
 *   bit 0 set: a node without data downloads (dump); clear: a ready node
 *         catches up (get_events);
 *   bit 1 set: the cluster has a key, so a challenge is answered with
 *         peer_auth first.
 * The rest is every byte the peer sends, written to a socketpair whose
 * peer side is then shut down for writing: the client reads exactly that
 * stream, then end of file.  The stream is written in two parts, as a
 * real peer answers: the login part (the greeting and, if it has a
 * challenge and the next message answers seq 1, the peer_auth reply,
 * which peer_login() sends for but does not wait for: distkv_process
 * brings it to peer_auth_reply) before the login, the rest after it
 * (else replies to the dump
 * would arrive before the dump was asked for).  When the first part is
 * not what the client waits for, everything goes at once, so that the
 * client never waits for its timeout.
 *
 * The greeting may name a shared-memory region ("shm"), which libdistkv
 * maps: LLVMFuzzerInitialize makes a FIFO at FUZZ_FIFO (also in the
 * dictionary), where a blocking open(2) would wedge the agent's loop.
 *
 * Invariants: no tick or tock beyond FUZZ_TICK_CEILING is accepted (known
 * bug "tick-ceiling", fuzz_pending) and short of that tock and ticks only
 * grow; the tree stays walkable; a node that downloads becomes ready only
 * if the peer's stream ended the dump ({state: "end"}); nothing crashes,
 * leaks or hits undefined behaviour.
 *
 * Built with -DFUZZ_MAKE_SEEDS this file is a program that writes seed
 * streams, answered by a real agent's peer port (server.c, handlers.c)
 * in-process, into argv[1].
 */
#include <sys/socket.h>
#include <sys/stat.h>

#include "fuzz_sync.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_FIFO "/tmp/distkv-fuzz.fifo"

static struct ev_loop *loop;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (getenv("FUZZ_VERBOSE") == NULL)
		log_set_level((enum log_level)(LOG_ERROR + 1));
	if ((loop = ev_loop_new(EVFLAG_AUTO)) == NULL)
		abort();
	if (mkfifo(FUZZ_FIFO, 0600) != 0 && errno != EEXIST)
		perror("mkfifo " FUZZ_FIFO);
	return 0;
}

/* p[0..n) is a map with this seq that ends its request (no state). */
static bool
has_seq(const uint8_t *p, size_t n, uint64_t want)
{
	msgpack_zone zone;
	msgpack_object m;
	uint64_t seq;
	bool ok;

	msgpack_zone_init(&zone, 1024);
	ok = proto_unpack(p, n, &zone, &m) == 0 &&
	    m.type == MSGPACK_OBJECT_MAP &&
	    proto_get_uint(proto_map_get(&m, "seq"), &seq) == 0 &&
	    seq == want && proto_map_get(&m, "state") == NULL;
	msgpack_zone_destroy(&zone);
	return ok;
}

/*
 * Bytes of p[0..n) of the login part: the greeting (seq 0) and, if
 * keyed and it has a challenge, the reply to peer_auth (seq 1).  n when
 * that part is not well-formed: then everything is sent before the login.
 */
static size_t
login_part(const uint8_t *p, size_t n, bool keyed)
{
	size_t g, r;

	if (proto_scan(p, n, PROTO_MAX_NESTING, &g) != 0 ||
	    !has_seq(p, g, 0))
		return n;
	if (!keyed || memmem(p, g, "\xa9" "challenge", 10) == NULL)
		return g;
	if (proto_scan(p + g, n - g, PROTO_MAX_NESTING, &r) != 0 ||
	    !has_seq(p + g, r, 1))
		return n;
	return g + r;
}

static void
send_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w <= 0)
			break;		/* a full buffer: the rest is cut */
		p += w;
		n -= (size_t)w;
	}
}

/* The request sync.c would send: dump, or get_events for node n2. */
static void
pack_request(msgpack_sbuffer *sb, bool download)
{
	msgpack_packer pk;

	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	if (download) {
		msgpack_pack_map(&pk, 1);
		pack_str(&pk, "action");
		pack_str(&pk, "dump");
		return;
	}
	msgpack_pack_map(&pk, 2);
	pack_str(&pk, "action");
	pack_str(&pk, "get_events");
	pack_str(&pk, "n2");
	msgpack_pack_array(&pk, 1);
	msgpack_pack_array(&pk, 2);
	msgpack_pack_uint64(&pk, 1);
	msgpack_pack_uint64(&pk, 100);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_clocks fc;
	struct agent a;
	struct sync *s;
	msgpack_sbuffer req;
	bool download, ended = false;
	size_t off = 1, first;
	int sv[2], rc;

	if (size < 1)
		return 0;
	download = (data[0] & 1) != 0;
	s = fuzz_sync_new(&a, loop, "fuzz", !download);
	a.cfg.has_cluster_key = (data[0] & 2) != 0;
	fuzz_clocks_init(&fc);
	fuzz_check_clocks(&fc, &a, data, size);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
	    sv) != 0)
		abort();
	first = login_part(data + off, size - off, a.cfg.has_cluster_key);
	send_all(sv[1], data + off, first);
	off += first;
	if (off == size)
		shutdown(sv[1], SHUT_WR);

	snprintf(s->pname, sizeof(s->pname), "peer");
	s->downloading = download;
	s->catching_up = !download;
	s->peer_items = 0;
	s->peer_done = false;
	s->ctx.base = s->ctx.last = a.tree.root;
	s->peer_started = ev_now(loop);
	msgpack_sbuffer_init(&req);
	pack_request(&req, download);
	/* what peer_connected_cb does once the TCP connect is through */
	rc = peer_login(s, sv[0]);
	if (off < size) {
		send_all(sv[1], data + off, size - off);
		shutdown(sv[1], SHUT_WR);
	}
	if (rc == 0 && distkv_async_request(s->peer, req.data, req.size,
	    peer_message, s, NULL) == 0) {
		for (int i = 0; i < 100000 && !s->peer_done; i++)
			if (distkv_process(s->peer) != 0)
				break;
		ended = s->peer_done;
	}
	msgpack_sbuffer_destroy(&req);
	sync_peer_close(s);
	close(sv[1]);

	fuzz_check_clocks(&fc, &a, data, size);
	fuzz_check_tree(&a);
	if (download && a.ready && !ended)
		FUZZ_FAIL("ready after a download that did not end");
	fuzz_sync_free(&a);
	return 0;
}

#ifdef FUZZ_MAKE_SEEDS
/* ---- seeds: what a real agent's peer port sends ---- */

/* Run the serving agent's loop and collect what it sends into out. */
static void
pump(int fd, msgpack_sbuffer *out)
{
	char buf[65536];

	for (int idle = 0, i = 0; idle < 3 && i < 1000; i++) {
		ssize_t n;

		ev_run(loop, EVRUN_NOWAIT);
		n = read(fd, buf, sizeof(buf));
		if (n > 0) {
			msgpack_sbuffer_write(out, buf, (size_t)n);
			idle = 0;
		} else
			idle++;
	}
}

static void
send_map(int fd, uint64_t seq, const char *action, const uint8_t *mac)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	if (strcmp(action, "get_events") == 0) {
		msgpack_pack_map(&pk, 3);
		pack_str(&pk, "seq");
		msgpack_pack_uint64(&pk, seq);
		pack_str(&pk, "action");
		pack_str(&pk, action);
		pack_str(&pk, "n2");
		msgpack_pack_array(&pk, 1);
		msgpack_pack_array(&pk, 2);
		msgpack_pack_uint64(&pk, 1);
		msgpack_pack_uint64(&pk, 100);
	} else {
		msgpack_pack_map(&pk, mac != NULL ? 4 : 2);
		pack_str(&pk, "seq");
		msgpack_pack_uint64(&pk, seq);
		pack_str(&pk, "action");
		pack_str(&pk, action);
		if (mac != NULL) {
			pack_str(&pk, "node");
			pack_str(&pk, "fuzz");
			pack_str(&pk, "mac");
			msgpack_pack_bin_with_body(&pk, mac,
			    crypto_auth_hmacsha256_BYTES);
		}
	}
	if (write(fd, sb.data, sb.size) != (ssize_t)sb.size)
		abort();
	msgpack_sbuffer_destroy(&sb);
}

/* One conversation with the serving agent a; the stream it answered. */
static void
converse(struct agent *a, bool keyed, const char *action, const char *dir,
    int n)
{
	msgpack_sbuffer got;
	int sv[2];
	uint64_t seq = 1;
	uint8_t mode = (uint8_t)((strcmp(action, "dump") == 0) |
	    (keyed ? 2 : 0));

	a->cfg.has_cluster_key = keyed;
	msgpack_sbuffer_init(&got);
	msgpack_sbuffer_write(&got, (const char *)&mode, 1);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0 ||
	    server_adopt(a->server, sv[0], true) != 0)
		abort();
	pump(sv[1], &got);
	if (keyed) {
		/* the challenge is the greeting's 32-byte bin */
		uint8_t mac[crypto_auth_hmacsha256_BYTES];
		const char *p = memmem(got.data, got.size, "challenge", 9);

		if (p == NULL || (uint8_t)p[9] != 0xc4 || p[10] != 32)
			abort();
		crypto_auth_hmacsha256(mac, (const uint8_t *)p + 11, 32,
		    a->cfg.cluster_key);
		send_map(sv[1], seq++, "peer_auth", mac);
		pump(sv[1], &got);
	}
	send_map(sv[1], seq, action, NULL);
	pump(sv[1], &got);
	fuzz_write_seed(dir, "seed", n, got.data, got.size);
	msgpack_sbuffer_destroy(&got);
	close(sv[1]);
}

int
main(int argc, char **argv)
{
	struct agent a;
	static const uint8_t v1 = 1, v2 = 2;
	struct node *n3;

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	LLVMFuzzerInitialize(NULL, NULL);
	(void)fuzz_sync_new(&a, loop, "n2", true);
	sync_stop(&a);		/* the serving side needs no replication */
	if (server_new(&a, &a.server) != 0)
		abort();
	agent_change_local(&a, fuzz_seed_key(&a, "a", "b"), &v1, 1);
	agent_change_local(&a, fuzz_seed_key(&a, "a", "c"), &v2, 1);
	agent_change_local(&a, fuzz_seed_key(&a, "d", NULL), &v1, 1);
	agent_change_local(&a, fuzz_seed_key(&a, "a", "b"), NULL, 0);
	n3 = nodes_get(&a.nodes, "n3", 2, true);
	node_raise_tick(n3, 9);
	converse(&a, false, "dump", argv[1], 0);
	converse(&a, true, "dump", argv[1], 1);
	converse(&a, false, "get_events", argv[1], 2);
	converse(&a, true, "get_events", argv[1], 3);
	server_close(a.server);
	a.server = NULL;
	agent_fini(&a);
	return 0;
}
#endif
