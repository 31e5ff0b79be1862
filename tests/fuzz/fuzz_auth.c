/*
 * fuzz_auth: libFuzzer harness for the logins (spec §4): the auth actions
 * (auth, auth_set, auth_get, auth_list, set_auth_typ, diffie_hellman),
 * every method's decoders (root, _test with its client-streamed dialogs,
 * password with its DH key and secretbox, unix) and the login gate of
 * handlers_dispatch(), on a fresh in-memory agent as fuzz_requests.c
 * drives one (server_adopt() on a socketpair, one request at a time).
 *
 * Input: up to FUZZ_MAX_CONNS client connections, one after the other.
 * A 0xc1 byte (never valid msgpack) between requests closes the current
 * connection and opens the next one, so that a method activated with
 * set_auth_typ guards the connections after it.  Whatever does not scan
 * as one msgpack object is sent as it is, up to the next 0xc1.
 *
 * Randomness is made deterministic (libsodium's randombytes, replaced in
 * LLVMFuzzerInitialize and restarted per input), so that the agent's
 * Diffie-Hellman key is the same each time an input runs: a password box
 * sealed for it in a seed opens every time, and a finding replays.  The
 * fuzz build (scripts/fuzz.sh) also makes Argon2id cheap
 * (FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION, agent/auth_password.h).
 *
 * Checks, besides no crash, leak or undefined behaviour:
 *   - a request whose replies carry an error left the tree as it was
 *     (no value, chain or tombstone changed: a digest of the tree), so a
 *     failed login, auth_set or dialog step stores nothing;
 *   - the login gate: on a connection that is not logged in (an auth
 *     method was active when it connected and no auth request succeeded
 *     on it yet), every request but auth and diffie_hellman (and
 *     peer_auth, which a client connection answers "nothing to prove")
 *     gets only errors and changes nothing;
 *   - a connection is logged in exactly when it needed no login or an
 *     auth request's replies (start, end, no error) said so: checked at
 *     the end of each connection with one more request;
 *   - memory per request is bounded (under ASan), as in fuzz_requests;
 *   - no request keeps the agent busy for FUZZ_SLOW_SECS of CPU (a stored
 *     Argon2id string may not choose its own cost);
 *   - the tree stays walkable; ticks and tock only grow (fuzz_agent.h).
 * A tail (bytes that do not scan, or everything after FUZZ_MAX_FRAMES
 * requests) may hold several requests: it gets no per-request checks and
 * leaves the connection's login state unknown (no probe).
 *
 * Built with -DFUZZ_MAKE_SEEDS this file is a program that writes seeds
 * into the directory argv[1]: login and dialog sequences packed as
 * libdistkv's login.c and the reference's _test client pack them, with
 * password boxes sealed under the key this harness's agent agrees on.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>
#include <msgpack.h>
#include <sodium.h>

#include "agent.h"
#include "dh.h"
#include "handlers.h"
#include "handlers_internal.h"
#include "log.h"
#include "proto.h"
#include "server.h"

#include "fuzz_agent.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_INPUT (64u << 10)
#define FUZZ_MAX_REQUEST (4u << 10)
#define FUZZ_MAX_OUTPUT (1u << 20)
#define FUZZ_IDLE_ROUNDS 2
#define FUZZ_MAX_ROUNDS 2000
#define FUZZ_MAX_FRAMES 64		/* per input */
#define FUZZ_MAX_CONNS 8
#define FUZZ_MEM_PER_BYTE 256
#define FUZZ_MEM_SLACK (8u << 20)
#define FUZZ_CONN_SEP 0xc1
#define FUZZ_SLOW_SECS 5.0
/* the probe's seq: above what a fuzzed request is likely to use */
#define FUZZ_PROBE_SEQ ((uint64_t)1 << 52)

static struct ev_loop *loop;

/* ---- deterministic randombytes (splitmix64), restarted per input ---- */

static uint64_t rng_state;

static uint64_t
rng_next(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static const char *
rng_name(void)
{
	return "fuzz-splitmix64";
}

static uint32_t
rng_random(void)
{
	return (uint32_t)rng_next();
}

static void
rng_buf(void *buf, size_t n)
{
	uint8_t *p = buf;

	while (n > 0) {
		uint64_t v = rng_next();
		size_t k = n < 8 ? n : 8;

		memcpy(p, &v, k);
		p += k;
		n -= k;
	}
}

static struct randombytes_implementation rng_impl = {
	.implementation_name = rng_name,
	.random = rng_random,
	.buf = rng_buf,
};

/* ---- one session: the agent and its connections ---- */

struct reply {
	bool error, noauth, seqerr, start, end;
	size_t n;
};

struct state {
	struct agent a;
	int fd;				/* our end of the current connection */
	msgpack_unpacker up;
	struct fuzz_clocks clocks;
	size_t mem_base;
	const uint8_t *input;
	size_t input_len;
};

/* Seed writer: called with every reply the agent sends. */
static void (*reply_hook)(const msgpack_object *);
/* FUZZ_AUTH_TRACE set: print every reply (to see what a seed does) */
static bool trace;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (getenv("FUZZ_VERBOSE") == NULL)
		log_set_level(LOG_ERROR);
	trace = getenv("FUZZ_AUTH_TRACE") != NULL;
	if (randombytes_set_implementation(&rng_impl) != 0 ||
	    sodium_init() < 0)
		abort();
	loop = ev_loop_new(EVFLAG_AUTO);
	if (loop == NULL)
		abort();
	return 0;
}

static bool
str_starts(const msgpack_object *o, const char *prefix)
{
	size_t n = strlen(prefix);

	return o != NULL && o->type == MSGPACK_OBJECT_STR &&
	    o->via.str.size >= n && memcmp(o->via.str.ptr, prefix, n) == 0;
}

/* Read every reply available into *rp. */
static bool
drain(struct state *st, struct reply *rp)
{
	bool got = false;

	if (st->fd < 0)
		return false;
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
			const msgpack_object *e, *s;

			if (u.data.type != MSGPACK_OBJECT_MAP)
				FUZZ_FAIL("a reply that is not a map");
			if (reply_hook != NULL)
				reply_hook(&u.data);
			if (trace) {
				msgpack_object_print(stderr, u.data);
				fputc('\n', stderr);
			}
			rp->n++;
			if ((e = proto_map_get(&u.data, "error")) != NULL) {
				rp->error = true;
				rp->noauth |= str_starts(e, "NoAuthError");
				rp->seqerr |= str_starts(e, "Channel closed");
			}
			s = proto_map_get(&u.data, "state");
			rp->start |= s != NULL && proto_str_eq(s, "start");
			rp->end |= s != NULL && proto_str_eq(s, "end");
			if (proto_map_get(&u.data, "tock") == NULL &&
			    proto_map_get(&u.data, "step") == NULL)
				FUZZ_FAIL("a reply without tock");
		}
		msgpack_unpacked_destroy(&u);
	}
	return got;
}

static double
now_secs(void)
{
	struct timespec ts;

	/* CPU time, not wall: a niced fuzzer on a busy machine waits */
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Send p[0..n) and run the agent until it is idle. */
static void
exchange(struct state *st, const uint8_t *p, size_t n, struct reply *rp)
{
	size_t off = 0;
	int idle = 0;
	double t0 = now_secs();

	memset(rp, 0, sizeof(*rp));
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
		progress |= drain(st, rp);
		if (progress)
			idle = 0;
		else if (off == n && ++idle >= FUZZ_IDLE_ROUNDS)
			break;
	}
	/* a login is dear (Argon2id, DH) but not this dear: the event loop
	 * serves every client (make check has no libFuzzer -timeout) */
	if (now_secs() - t0 > FUZZ_SLOW_SECS)
		FUZZ_FAIL("one request kept the agent busy for %.1f s CPU",
		    now_secs() - t0);
}

/*
 * What a failed request must not change: every entry's path, value and
 * chain, summed so that the order of children does not matter; empty
 * entries (no value, no chain: a lookup's leftovers) do not count.
 */
static uint64_t
mix(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ULL;
	return h;
}

static uint64_t
tree_digest(struct agent *a)
{
	uint64_t path[PROTO_MAX_PATH_DEPTH + 2], sum = 0;
	struct tree_walk w;
	struct entry *e;

	tree_walk_init(&w, a->tree.root, -1);
	while ((e = tree_walk_next(&w)) != NULL) {
		uint32_t vl = entry_value_len(e);
		uint64_t h;

		if (e->depth >= PROTO_MAX_PATH_DEPTH + 2)
			continue;
		h = e->depth == 0 ? 0xcbf29ce484222325ULL :
		    mix(path[e->depth - 1], entry_name(e), entry_name_len(e));
		path[e->depth] = h;
		if (!entry_has_value(e) && e->chain->n == 0)
			continue;
		h = mix(h, &vl, sizeof(vl));
		if (entry_has_value(e))
			h = mix(h, entry_value(e), entry_value_len(e));
		for (unsigned i = 0; i < e->chain->n; i++) {
			h = mix(h, &e->chain->l[i].node,
			    sizeof(e->chain->l[i].node));
			h = mix(h, &e->chain->l[i].tick,
			    sizeof(e->chain->l[i].tick));
		}
		sum += h;
	}
	return sum + a->tombstones;
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

/* An auth method is active: a new connection must log in. */
static bool
login_needed(struct agent *a)
{
	msgpack_zone zone;
	msgpack_object val;
	bool need;

	msgpack_zone_init(&zone, 256);
	need = auth_current(a, &zone, &val) != NULL;
	msgpack_zone_destroy(&zone);
	return need;
}

static void
conn_open(struct state *st)
{
	struct reply rp;
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
	    sv) != 0)
		abort();
	if (server_adopt(st->a.server, sv[0], false) != 0)
		abort();
	st->fd = sv[1];
	if (!msgpack_unpacker_init(&st->up, 8192))
		abort();
	exchange(st, NULL, 0, &rp);		/* the greeting */
}

/*
 * End the current connection: ask once more whether it is logged in
 * (unless it is closed, the seq is taken or a tail of several requests
 * left the state unknown), compare, close.
 */
static void
conn_close(struct state *st, bool known, bool logged_in)
{
	static const uint8_t probe[] = {
		0x82, 0xa3, 's', 'e', 'q', 0xcf, 0, 0x10, 0, 0, 0, 0, 0, 0,
		0xa6, 'a', 'c', 't', 'i', 'o', 'n',
		0xa9, 'g', 'e', 't', '_', 's', 't', 'a', 't', 'e',
	};
	struct reply rp;
	uint64_t d;

	if (known) {
		d = tree_digest(&st->a);
		exchange(st, probe, sizeof(probe), &rp);
		if (rp.n > 0 && !rp.seqerr) {
			if (rp.noauth && logged_in)
				FUZZ_FAIL("a successful login did not log in");
			if (!rp.error && !logged_in)
				FUZZ_FAIL("logged in without a successful "
				    "auth reply");
		}
		if (tree_digest(&st->a) != d)
			FUZZ_FAIL("get_state changed the tree");
	}
	close(st->fd);
	st->fd = -1;
	msgpack_unpacker_destroy(&st->up);
	ev_run(loop, EVRUN_NOWAIT);		/* the agent sees EOF */
}

/* The action of one request frame, if it is a map with one. */
static bool
frame_action(const uint8_t *p, size_t n, char *out, size_t cap)
{
	msgpack_zone zone;
	msgpack_object m;
	const msgpack_object *a;
	bool ok = false;

	msgpack_zone_init(&zone, 1024);
	if (proto_unpack(p, n, &zone, &m) == 0 &&
	    (a = proto_map_get(&m, "action")) != NULL &&
	    a->type == MSGPACK_OBJECT_STR && a->via.str.size < cap) {
		memcpy(out, a->via.str.ptr, a->via.str.size);
		out[a->via.str.size] = '\0';
		ok = true;
	}
	msgpack_zone_destroy(&zone);
	return ok;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct state st;
	struct agent_config cfg;
	struct agent *a = &st.a;
	size_t off = 0;
	int frames = 0, conns = 0;
	bool logged_in, known;

	if (size > FUZZ_MAX_INPUT)
		size = FUZZ_MAX_INPUT;
	rng_state = 0x5eed;
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
	st.input = data;
	st.input_len = size;
	if (agent_init(a, loop, &cfg) != 0)
		abort();
	node_raise_tick(a->self, 0);
	a->ready = true;
	if (server_new(a, &a->server) != 0)
		abort();
	fuzz_clocks_init(&st.clocks);
	st.fd = -1;

	while (off < size && conns < FUZZ_MAX_CONNS) {
		logged_in = !login_needed(a);
		known = true;
		conn_open(&st);
		conns++;
		while (off < size && data[off] != FUZZ_CONN_SEP) {
			char action[32];
			struct reply rp;
			size_t len;
			uint64_t changes = a->changes, d = tree_digest(a);
			bool gated, tail = false;

			if (frames++ >= FUZZ_MAX_FRAMES || proto_scan(
			    data + off, size - off, PROTO_MAX_NESTING,
			    &len) != 0) {
				/* the tail, maybe malformed: up to the next
				 * connection */
				const uint8_t *sep = memchr(data + off,
				    FUZZ_CONN_SEP, size - off);

				len = sep != NULL ? (size_t)(sep -
				    (data + off)) : size - off;
				/* maybe several requests: no per-request
				 * checks, and the login state is unknown */
				tail = true;
			}
			/* only what proto_scan accepted is unpacked (as the
			 * agent does: msgpack-c trusts the counts) */
			action[0] = '\0';
			if (!tail)
				frame_action(data + off, len, action,
				    sizeof(action));
			/* before a login only auth and diffie_hellman (and
			 * peer_auth, which a client connection answers with
			 * "nothing to prove", not a login) */
			gated = !logged_in && !tail &&
			    strcmp(action, "auth") != 0 &&
			    strcmp(action, "diffie_hellman") != 0 &&
			    strcmp(action, "peer_auth") != 0;
			if (trace)
				fprintf(stderr, "> %s (%zu bytes%s)\n", action,
				    len, tail ? ", tail" : "");
			exchange(&st, data + off, len, &rp);
			off += len;
			if (tail) {
				known = false;
				rp.error = false;
			}
			if (rp.error && (a->changes != changes ||
			    tree_digest(a) != d))
				FUZZ_FAIL("a request failed and changed the "
				    "tree");
			if (gated && (a->changes != changes ||
			    tree_digest(a) != d))
				FUZZ_FAIL("a request before the login changed "
				    "the tree");
			if (gated && rp.n > 0 && !rp.error)
				FUZZ_FAIL("a request before the login was "
				    "answered");
			if (!logged_in && strcmp(action, "auth") == 0 &&
			    rp.start && rp.end && !rp.error)
				logged_in = true;
			fuzz_check_clocks(&st.clocks, a, data, size);
			fuzz_check_tree(a);
			check_memory(&st, off);
		}
		conn_close(&st, known, logged_in);
		if (off < size)
			off++;			/* the separator */
	}

	server_close(a->server);
	a->server = NULL;
	agent_fini(a);
	return 0;
}

#ifdef FUZZ_MAKE_SEEDS
/* ---- seeds: login and dialog sequences ---- */

static msgpack_sbuffer sb;
static msgpack_packer pk;
static uint64_t seq;
static int nseed;
static const char *seed_dir;

static void
str(const char *s)
{
	msgpack_pack_str_with_body(&pk, s, strlen(s));
}

static void
req(const char *action, uint32_t n)
{
	msgpack_pack_map(&pk, n + 2);
	str("seq");
	msgpack_pack_uint64(&pk, ++seq);
	str("action");
	str(action);
}

/* the next connection (its seqs start again) */
static void
next_conn(void)
{
	msgpack_sbuffer_write(&sb, "\xc1", 1);
	seq = 0;
}

static void
emit(void)
{
	fuzz_write_seed(seed_dir, "seed", nseed++, sb.data, sb.size);
	sb.size = 0;
	seq = 0;
}

/* The agent's public key: the last `pubkey` of the replies. */
static uint8_t agent_pub[1100];
static size_t agent_pub_len;

static void
pub_hook(const msgpack_object *m)
{
	const msgpack_object *p = proto_map_get(m, "pubkey");

	if (p != NULL && p->type == MSGPACK_OBJECT_BIN &&
	    p->via.bin.size <= sizeof(agent_pub)) {
		memcpy(agent_pub, p->via.bin.ptr, p->via.bin.size);
		agent_pub_len = p->via.bin.size;
	}
}

/*
 * diffie_hellman as libdistkv's distkv_dh packs it (with a fixed client
 * exponent), then the shared key: the input so far runs through the
 * harness, whose agent answers the same way every time.
 */
static void
dh(unsigned length, uint8_t key[DH_KEY_BYTES])
{
	uint8_t priv[DH_MAX_LENGTH / 8 + 8], *pub, *unused;
	size_t publen, n = (length > 200 ? length : 200) / 8 + 8, ulen;

	memset(priv, 0x3c, sizeof(priv));
	if (dh_public(length, priv, n, &pub, &publen) != 0)
		exit(1);
	req("diffie_hellman", 2);
	str("pubkey");
	msgpack_pack_bin_with_body(&pk, pub, publen);
	str("length");
	msgpack_pack_int(&pk, (int)length);
	free(pub);
	agent_pub_len = 0;
	reply_hook = pub_hook;
	LLVMFuzzerTestOneInput((const uint8_t *)sb.data, sb.size);
	reply_hook = NULL;
	if (agent_pub_len == 0 || dh_compute(length, priv, n, agent_pub,
	    agent_pub_len, &unused, &ulen, key) != 0) {
		fprintf(stderr, "fuzz_auth seeds: no DH key\n");
		exit(1);
	}
	free(unused);
}

/* {password: box} field: SHA-256 of pw sealed as login.c seals it */
static void
box(const uint8_t key[DH_KEY_BYTES], const char *pw)
{
	uint8_t digest[32], b[72];

	crypto_hash_sha256(digest, (const uint8_t *)pw, strlen(pw));
	memset(b, 0x42, crypto_secretbox_NONCEBYTES);
	crypto_secretbox_easy(b + crypto_secretbox_NONCEBYTES, digest,
	    sizeof(digest), b, key);
	str("password");
	msgpack_pack_bin_with_body(&pk, b, sizeof(b));
}

/* password auth_set or auth: {typ, [kind], ident, password} */
static void
password_req(const char *action, const uint8_t key[32], const char *user,
    const char *pw)
{
	bool set = strcmp(action, "auth_set") == 0;

	req(action, 3 + set);
	str("typ");
	str("password");
	if (set) {
		str("kind");
		str("user");
	}
	str("ident");
	str(user);
	box(key, pw);
}

static void
typ_ident(const char *action, const char *typ, const char *ident)
{
	req(action, 1 + (ident != NULL));
	str("typ");
	str(typ);
	if (ident != NULL) {
		str("ident");
		str(ident);
	}
}

static void
set_typ(const char *typ)
{
	req("set_auth_typ", 1);
	str("typ");
	if (typ != NULL)
		str(typ);
	else
		msgpack_pack_nil(&pk);
}

/* the _test auth_set dialog of the reference's client: start, HasName */
static void
test_set_dialog(const char *name, bool with_aux)
{
	uint64_t s;

	req("auth_set", 3);
	str("typ");
	str("_test");
	str("kind");
	str("user");
	str("state");
	str("start");
	s = seq;
	msgpack_pack_map(&pk, 4 + with_aux);
	str("seq");
	msgpack_pack_uint64(&pk, s);
	str("step");
	str("HasName");
	str("name");
	str(name);
	str("chain");
	msgpack_pack_nil(&pk);
	if (with_aux) {
		str("aux");
		msgpack_pack_map(&pk, 1);
		str("foo");
		msgpack_pack_int(&pk, 1);
	}
}

/* the _test auth_get dialog: start, WantName, end */
static void
test_get_dialog(const char *name)
{
	uint64_t s;

	req("auth_get", 4);
	str("typ");
	str("_test");
	str("kind");
	str("user");
	str("ident");
	str(name);
	str("state");
	str("start");
	s = seq;
	msgpack_pack_map(&pk, 2);
	str("seq");
	msgpack_pack_uint64(&pk, s);
	str("step");
	str("WantName");
	msgpack_pack_map(&pk, 2);
	str("seq");
	msgpack_pack_uint64(&pk, s);
	str("state");
	str("end");
}

int
main(int argc, char **argv)
{
	uint8_t key[DH_KEY_BYTES], key2[DH_KEY_BYTES];

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	seed_dir = argv[1];
	LLVMFuzzerInitialize(&argc, &argv);
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);

	/* 0: _test users by both dialogs, list, get, activate, log in */
	test_set_dialog("joe", true);
	test_get_dialog("joe");
	test_set_dialog("eve", false);
	typ_ident("auth_set", "_test", "ann");
	req("auth_list", 2); str("typ"); str("_test"); str("nchain");
	msgpack_pack_int(&pk, 2);
	typ_ident("auth_get", "_test", "ann");
	set_typ("_test");
	next_conn();
	typ_ident("get_value", "x", NULL);	/* refused: not logged in */
	typ_ident("auth", "_test", "nobody");	/* No such user */
	typ_ident("auth", "_test", "joe");
	req("get_state", 0);
	set_typ(NULL);
	emit();

	/* 1: root: the record, a login with data {} and one with data */
	req("auth_set", 3); str("typ"); str("root"); str("kind"); str("user");
	str("ident"); str("*");
	set_typ("root");
	next_conn();
	req("auth", 3); str("typ"); str("root"); str("ident"); str("*");
	str("data"); msgpack_pack_map(&pk, 1); str("x"); msgpack_pack_int(&pk, 1);
	req("auth", 3); str("typ"); str("root"); str("ident"); str("*");
	str("data"); msgpack_pack_map(&pk, 0);
	typ_ident("auth_list", "root", NULL);
	emit();

	/* 2: password: DH (group 5), a user, activate, log in right and wrong */
	dh(16, key);
	password_req("auth_set", key, "alice", "secret");
	password_req("auth_set", key, "bob", "hunter2");
	typ_ident("auth_get", "password", "alice");
	set_typ("password");
	next_conn();
	dh(16, key2);
	/* the first failure costs no wait (the rate limit), a second would */
	password_req("auth", key2, "alice", "wrong");
	password_req("auth", key2, "alice", "secret");
	req("get_value", 1); str("path"); msgpack_pack_array(&pk, 0);
	next_conn();
	typ_ident("auth", "password", "bob");	/* no DH yet */
	emit();

	/* 3: password: a box under another key, a bad name, DH twice */
	dh(16, key);
	password_req("auth_set", key2, "carol", "x");
	password_req("auth_set", key, "9bad", "x");
	req("diffie_hellman", 2); str("pubkey");
	msgpack_pack_bin_with_body(&pk, "\x02", 1);
	str("length"); msgpack_pack_int(&pk, 16);
	emit();

	/* 4: DH with bad public keys: 1, p-1, too long, group 18 length */
	req("diffie_hellman", 2); str("pubkey");
	msgpack_pack_bin_with_body(&pk, "\x01", 1);
	str("length"); msgpack_pack_int(&pk, 16);
	next_conn();
	{
		uint8_t big[192];

		memset(big, 0xff, sizeof(big));
		req("diffie_hellman", 2); str("pubkey");
		msgpack_pack_bin_with_body(&pk, big, sizeof(big));
		str("length"); msgpack_pack_int(&pk, 16);
	}
	emit();

	/* 5: unix: the connecting uid's names, "*" and a wrong one */
	typ_ident("auth_set", "unix", "root");
	typ_ident("auth_set", "unix", "0");
	set_typ("unix");
	next_conn();
	typ_ident("auth", "unix", "nosuchuser");
	req("auth", 1); str("typ"); str("unix");
	typ_ident("auth_get", "unix", "root");
	emit();

	/* 6: bad kind, wrong method, unknown method, the rate limit */
	req("auth_set", 3); str("typ"); str("_test"); str("kind");
	str("group"); str("ident"); str("x");
	typ_ident("auth_set", "_test", "joe");
	set_typ("_test");
	set_typ("nosuch");
	next_conn();
	typ_ident("auth", "root", "*");		/* Wrong auth type */
	for (int i = 0; i < 6; i++)
		typ_ident("auth", "_test", "nobody");
	emit();

	/* 7: dialogs broken off: an error from the client, a wrong step */
	req("auth_set", 3); str("typ"); str("_test"); str("kind"); str("user");
	str("state"); str("start");
	msgpack_pack_map(&pk, 2); str("seq"); msgpack_pack_uint64(&pk, seq);
	str("error"); str("no");
	req("auth_get", 4); str("typ"); str("_test"); str("kind"); str("user");
	str("ident"); str("joe"); str("state"); str("start");
	msgpack_pack_map(&pk, 2); str("seq"); msgpack_pack_uint64(&pk, seq);
	str("step"); str("HasName");
	emit();

	/* 8: password with DH group 18 (the reference's length, slower) */
	dh(1024, key);
	password_req("auth_set", key, "dave", "pw");
	emit();

	/* 9: a stored Argon2id string that asks for a high cost (written
	 * with set_internal, as a logged-in client can), then its login */
	{
		static const char h[] = "$argon2id$v=19$m=4194304,t=100000,"
		    "p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2h"
		    "oYXNoaGFzaGhhc2g";

		req("set_internal", 2); str("path"); msgpack_pack_array(&pk, 4);
		str("auth"); str("password"); str("user"); str("mallory");
		str("value"); msgpack_pack_map(&pk, 2); str("_aux");
		msgpack_pack_nil(&pk); str("password"); str(h);
		dh(16, key);
		password_req("auth", key, "mallory", "x");
		emit();
	}

	msgpack_sbuffer_destroy(&sb);
	return 0;
}
#endif
