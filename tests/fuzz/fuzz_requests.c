/*
 * fuzz_requests: libFuzzer harness for the client protocol as the agent
 * reads it: bytes on a client connection -> server.c's framing
 * (proto_scan, proto_unpack) -> handlers_dispatch() -> every action's
 * input checks -> agent_commit().
 *
 * Each input is a byte stream a client could send.  A fresh in-memory
 * agent (standalone, ready, no state dir, no shm) serves one end of a
 * socketpair through server_adopt(), as a local client.  An input that
 * starts with 0xc1 (never valid msgpack, not sent) is instead a peer on
 * the peer port (dump, get_events...); with two of them the agent has a
 * cluster key, so the peer must pass peer_auth first.  The harness cuts
 * the input into the
 * msgpack objects the server will see, sends them one at a time, runs the
 * loop until the agent is idle, reads every reply, and then checks:
 *   - tock and every node's tick only grow; no tick or tock beyond
 *     FUZZ_TICK_CEILING is ever accepted (a known bug until the agent has
 *     its ceiling: reported through fuzz_pending, "tick-ceiling");
 *   - a request whose replies carry an error changed nothing (the agent's
 *     count of accepted changes stays);
 *   - the tree stays walkable: parent/child links, depths, entry count,
 *     chain lengths, tombstone count, every value one msgpack object;
 *   - memory per request is bounded (under ASan: what the allocator holds
 *     grows by at most FUZZ_MEM_PER_BYTE per input byte plus a constant);
 *   - nothing crashes, leaks or hits undefined behaviour (sanitizers).
 * Whatever bytes are left after the last complete object (or after
 * FUZZ_MAX_FRAMES objects) are sent last, in one piece, to reach the
 * malformed-input and too-large paths.
 *
 * Built with -DFUZZ_MAKE_SEEDS this file is a program that writes seed
 * request streams into the directory argv[1].
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>
#include <msgpack.h>

#include "agent.h"
#include "log.h"
#include "proto.h"
#include "server.h"

#include "fuzz_agent.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Inputs beyond this are cut: the agent's limits are tested with
 * smaller ones (max_request below). */
#define FUZZ_MAX_INPUT (256u << 10)
#define FUZZ_MAX_REQUEST (4u << 10)
#define FUZZ_MAX_OUTPUT (1u << 20)
/* Loop iterations without progress before the agent counts as idle. */
#define FUZZ_IDLE_ROUNDS 2
#define FUZZ_MAX_ROUNDS 2000
/* Requests exchanged one at a time; the rest of an input goes in one
 * write (each round trip costs a few system calls). */
#define FUZZ_MAX_FRAMES 64
#define FUZZ_MEM_PER_BYTE 256
#define FUZZ_MEM_SLACK (8u << 20)

static struct ev_loop *loop;

struct state {
	struct agent a;
	int fd;				/* our end of the socketpair */
	msgpack_unpacker up;		/* replies */
	const uint8_t *input;
	size_t input_len;
	struct fuzz_clocks clocks;
	size_t mem_base;
};

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_set_level(LOG_ERROR);
	loop = ev_loop_new(EVFLAG_AUTO);
	if (loop == NULL)
		abort();
	return 0;
}

/* Read every reply available; count errors carrying seq (or none). */
static bool
drain(struct state *st, bool *saw_error)
{
	bool got = false;

	for (;;) {
		msgpack_unpacked u;
		ssize_t n;

		if (!msgpack_unpacker_reserve_buffer(&st->up, 8192))
			abort();
		n = read(st->fd, msgpack_unpacker_buffer(&st->up),
		    msgpack_unpacker_buffer_capacity(&st->up));
		if (n <= 0)
			break;
		got = true;
		msgpack_unpacker_buffer_consumed(&st->up, (size_t)n);
		msgpack_unpacked_init(&u);
		while (msgpack_unpacker_next(&st->up, &u) ==
		    MSGPACK_UNPACK_SUCCESS) {
			if (u.data.type != MSGPACK_OBJECT_MAP)
				FUZZ_FAIL("a reply that is not a map");
			if (proto_map_get(&u.data, "error") != NULL)
				*saw_error = true;
			/* every reply is stamped, except the two spec'd bare
			 * ones: the peer port's greeting before peer_auth
			 * (only the challenge) and the _test dialog's steps */
			if (proto_map_get(&u.data, "tock") == NULL &&
			    proto_map_get(&u.data, "challenge") == NULL &&
			    proto_map_get(&u.data, "step") == NULL)
				FUZZ_FAIL("a reply without tock");
		}
		msgpack_unpacked_destroy(&u);
	}
	return got;
}

/* Send p[0..n) and run the agent until it is idle. */
static void
exchange(struct state *st, const uint8_t *p, size_t n, bool *saw_error)
{
	size_t off = 0;
	int idle = 0;

	for (int round = 0; round < FUZZ_MAX_ROUNDS; round++) {
		bool progress = false;

		if (off < n) {
			ssize_t w = send(st->fd, p + off, n - off,
			    MSG_NOSIGNAL | MSG_DONTWAIT);

			if (w > 0) {
				off += (size_t)w;
				progress = true;
			} else if (w < 0 && errno != EAGAIN &&
			    errno != EWOULDBLOCK)
				off = n;	/* the agent closed */
		}
		ev_run(loop, EVRUN_NOWAIT);
		progress |= drain(st, saw_error);
		if (progress)
			idle = 0;
		else if (off == n && ++idle >= FUZZ_IDLE_ROUNDS)
			return;
	}
}

static void
check_clocks(struct state *st)
{
	fuzz_check_clocks(&st->clocks, &st->a, st->input, st->input_len);
}

static void
check_memory(struct state *st, size_t sent)
{
	size_t now = fuzz_allocated();

	if (st->mem_base == 0 || now <= st->mem_base)
		return;
	if (now - st->mem_base > FUZZ_MEM_PER_BYTE * sent + FUZZ_MEM_SLACK)
		FUZZ_FAIL("%zu bytes of requests hold %zu bytes of memory",
		    sent, now - st->mem_base);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct state st;
	struct agent_config cfg;
	struct agent *a = &st.a;
	int sv[2];
	size_t off = 0;
	bool err = false, peer;

	if (size > FUZZ_MAX_INPUT)
		size = FUZZ_MAX_INPUT;
	memset(&cfg, 0, sizeof(cfg));
	cfg.node = "fuzz";
	cfg.standalone = true;
	cfg.max_request = FUZZ_MAX_REQUEST;
	cfg.max_output = FUZZ_MAX_OUTPUT;
	cfg.change_length = CHAIN_DEFAULT_LENGTH;
	cfg.event_prefix = "distkv";
	cfg.clock = 1.0;
	cfg.ping_length = 4;
	cfg.tombstone_keep = 300;
	st.mem_base = fuzz_allocated();
	if (agent_init(a, loop, &cfg) != 0)
		abort();
	node_raise_tick(a->self, 0);
	a->ready = true;
	if (server_new(a, &a->server) != 0)
		abort();
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
	    sv) != 0)
		abort();
	st.input = data;		/* the whole input, for fuzz_pending */
	st.input_len = size;
	peer = size > 0 && data[0] == 0xc1;
	if (peer) {
		data++;
		size--;
		if (size > 0 && data[0] == 0xc1) {
			a->cfg.has_cluster_key = true;
			memset(a->cfg.cluster_key, 0x5a,
			    sizeof(a->cfg.cluster_key));
			data++;
			size--;
		}
	}
	if (server_adopt(a->server, sv[0], peer) != 0)
		abort();
	st.fd = sv[1];
	fuzz_clocks_init(&st.clocks);
	if (!msgpack_unpacker_init(&st.up, 8192))
		abort();
	exchange(&st, NULL, 0, &err);		/* the greeting */
	check_clocks(&st);

	for (int frames = 0; off < size; frames++) {
		size_t len;
		uint64_t changes = a->changes;

		if (frames == FUZZ_MAX_FRAMES || proto_scan(data + off,
		    size - off, PROTO_MAX_NESTING, &len) != 0)
			len = size - off;	/* the tail, maybe malformed */
		err = false;
		exchange(&st, data + off, len, &err);
		off += len;
		if (err && a->changes != changes && frames < FUZZ_MAX_FRAMES)
			FUZZ_FAIL("a request failed and changed the tree "
			    "(%llu changes)", (unsigned long long)(a->changes -
			    changes));
		check_clocks(&st);
		fuzz_check_tree(a);
		check_memory(&st, off);
	}

	server_close(a->server);
	a->server = NULL;
	close(st.fd);
	msgpack_unpacker_destroy(&st.up);
	agent_fini(a);
	return 0;
}

#ifdef FUZZ_MAKE_SEEDS
/* ---- seed streams, packed the way libdistkv packs requests ---- */

static msgpack_sbuffer sb;
static msgpack_packer pk;
static uint64_t seq;

static void
str(const char *s)
{
	msgpack_pack_str_with_body(&pk, s, strlen(s));
}

/* Start a request map of n fields besides seq and action. */
static void
req(const char *action, uint32_t n)
{
	msgpack_pack_map(&pk, n + 2);
	str("seq");
	msgpack_pack_uint64(&pk, ++seq);
	str("action");
	str(action);
}

static void
path2(const char *a, const char *b)
{
	str("path");
	msgpack_pack_array(&pk, b != NULL ? 2 : 1);
	str(a);
	if (b != NULL)
		str(b);
}

static int nseed;

static void
emit(const char *dir)
{
	fuzz_write_seed(dir, "seed", nseed++, sb.data, sb.size);
	sb.size = 0;
	seq = 0;
}

int
main(int argc, char **argv)
{
	struct agent_config cfg;
	struct agent a;
	struct entry *e;
	static const uint8_t v42 = 42;

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);

	/* set, get (with chain), delete, get again */
	req("set_value", 2); path2("a", "b"); str("value"); str("hello");
	req("get_value", 2); path2("a", "b"); str("nchain"); msgpack_pack_int(&pk, 3);
	req("delete_value", 1); path2("a", "b");
	req("get_value", 1); path2("a", "b");
	emit(argv[1]);
	/* preconditions: prev value, chain; an idem set */
	req("set_value", 2); path2("k", NULL); str("value"); msgpack_pack_int(&pk, 1);
	req("set_value", 3); path2("k", NULL); str("value"); msgpack_pack_int(&pk, 2);
	str("prev"); msgpack_pack_int(&pk, 1);
	req("set_value", 3); path2("k", NULL); str("value"); msgpack_pack_int(&pk, 3);
	str("chain"); msgpack_pack_map(&pk, 2); str("node"); str("fuzz");
	str("tick"); msgpack_pack_uint64(&pk, 2);
	req("set_value", 3); path2("k", NULL); str("value"); msgpack_pack_int(&pk, 3);
	str("idem"); msgpack_pack_true(&pk);
	emit(argv[1]);
	/* a tree, walked several ways, then deleted */
	for (int i = 0; i < 4; i++) {
		char k[8];

		snprintf(k, sizeof(k), "x%d", i);
		req("set_value", 2); path2("t", k); str("value");
		msgpack_pack_int(&pk, i);
	}
	req("get_tree", 3); path2("t", NULL); str("min_depth"); msgpack_pack_int(&pk, 1);
	str("max_depth"); msgpack_pack_int(&pk, 2);
	req("get_tree", 2); path2("t", NULL); str("nchain"); msgpack_pack_int(&pk, 2);
	req("delete_tree", 1); path2("t", NULL);
	emit(argv[1]);
	/* watch, a change under it, stop */
	req("watch", 2); path2("w", NULL); str("fetch"); msgpack_pack_true(&pk);
	req("set_value", 2); path2("w", "x"); str("value"); msgpack_pack_int(&pk, 7);
	req("stop", 1); str("task"); msgpack_pack_uint64(&pk, 1);
	emit(argv[1]);
	/* root, state, internal entries */
	req("root", 1); path2("r", NULL);
	req("set_value", 2); path2("below", NULL); str("value"); msgpack_pack_nil(&pk);
	req("get_state", 6); str("nodes"); msgpack_pack_true(&pk);
	str("known"); msgpack_pack_true(&pk); str("missing"); msgpack_pack_true(&pk);
	str("remote_missing"); msgpack_pack_true(&pk); str("present"); msgpack_pack_true(&pk);
	str("debug"); msgpack_pack_true(&pk);
	req("set_internal", 2); path2("conf", NULL); str("value"); msgpack_pack_int(&pk, 1);
	req("get_internal", 1); path2("conf", NULL);
	req("delete_internal", 1); path2("conf", NULL);
	emit(argv[1]);
	/* auth: set a method, list, get, switch */
	req("auth_set", 3); str("typ"); str("_test"); str("kind"); str("user");
	str("ident"); str("joe");
	req("auth_list", 1); str("typ"); str("_test");
	req("auth_get", 3); str("typ"); str("_test"); str("kind"); str("user");
	str("ident"); str("joe");
	req("set_auth_typ", 1); str("typ"); str("_test");
	req("auth", 2); str("typ"); str("_test"); str("ident"); str("joe");
	emit(argv[1]);
	/* replication and pass-through actions on a standalone agent */
	req("serfsend", 2); str("type"); str("user.x"); str("data"); str("d");
	req("serfmon", 1); str("type"); str("user.x");
	req("dump", 0);
	req("get_events", 1); str("fuzz"); msgpack_pack_array(&pk, 1);
	msgpack_pack_array(&pk, 2); msgpack_pack_int(&pk, 1); msgpack_pack_int(&pk, 3);
	req("peer_auth", 2); str("node"); str("n2"); str("mac");
	msgpack_pack_bin_with_body(&pk, "0123456789abcdef0123456789abcdef", 32);
	req("save", 1); str("path"); str("snap");
	req("diffie_hellman", 0);
	emit(argv[1]);

	/* update records made by the agent's own packer (spec §2.8) */
	memset(&cfg, 0, sizeof(cfg));
	cfg.node = "n2";
	cfg.change_length = CHAIN_DEFAULT_LENGTH;
	if (agent_init(&a, ev_default_loop(0), &cfg) != 0)
		return 1;
	node_raise_tick(a.self, 0);
	e = tree_child(&a.tree, a.tree.root, (const uint8_t *)"\xa1u", 2, true);
	agent_change_local(&a, e, &v42, 1);
	agent_change_local(&a, e, &v42, 1);
	{
		msgpack_sbuffer rb;
		msgpack_packer rpk;
		msgpack_zone zone;
		msgpack_object rec;

		msgpack_sbuffer_init(&rb);
		msgpack_packer_init(&rpk, &rb, msgpack_sbuffer_write);
		agent_pack_change(&a, &rpk, e);
		msgpack_zone_init(&zone, 4096);
		if (proto_unpack((uint8_t *)rb.data, rb.size, &zone, &rec) != 0)
			return 1;
		/* the single form: the record's fields are the request */
		req("update", rec.via.map.size);
		for (uint32_t i = 0; i < rec.via.map.size; i++) {
			msgpack_pack_object(&pk, rec.via.map.ptr[i].key);
			msgpack_pack_object(&pk, rec.via.map.ptr[i].val);
		}
		emit(argv[1]);
		/* the streamed form: start, records, end */
		req("update", 1); str("state"); str("start");
		msgpack_pack_map(&pk, rec.via.map.size + 1);
		str("seq");
		msgpack_pack_uint64(&pk, seq);
		for (uint32_t i = 0; i < rec.via.map.size; i++) {
			msgpack_pack_object(&pk, rec.via.map.ptr[i].key);
			msgpack_pack_object(&pk, rec.via.map.ptr[i].val);
		}
		msgpack_pack_map(&pk, 2);
		str("seq");
		msgpack_pack_uint64(&pk, seq);
		str("state");
		str("end");
		/* a state record */
		req("update", 1); str("nodes");
		agent_pack_nodes(&a, &pk);
		emit(argv[1]);
		msgpack_zone_destroy(&zone);
		msgpack_sbuffer_destroy(&rb);
	}
	agent_fini(&a);
	/* the peer port: what a catching-up or joining node asks */
	msgpack_sbuffer_write(&sb, "\xc1", 1);
	req("get_state", 2); str("nodes"); msgpack_pack_true(&pk);
	str("known"); msgpack_pack_true(&pk);
	req("dump", 0);
	req("get_events", 1); str("fuzz"); msgpack_pack_array(&pk, 1);
	msgpack_pack_array(&pk, 2); msgpack_pack_int(&pk, 1); msgpack_pack_int(&pk, 3);
	emit(argv[1]);
	msgpack_sbuffer_write(&sb, "\xc1\xc1", 2);
	req("peer_auth", 2); str("node"); str("n2"); str("mac");
	msgpack_pack_bin_with_body(&pk, "0123456789abcdef0123456789abcdef", 32);
	req("dump", 0);
	emit(argv[1]);
	/* bad envelopes */
	msgpack_pack_array(&pk, 0);
	msgpack_pack_map(&pk, 1); str("action"); str("get_value");
	req("no_such_action", 0);
	emit(argv[1]);
	msgpack_sbuffer_destroy(&sb);
	return 0;
}
#endif
