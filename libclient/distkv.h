/*
 * distkv.h - client library for the DistKV-C agent (libdistkv).
 *
 * A connection talks to the local distkv-agent over its Unix socket in the
 * msgpack client protocol (docs/protocol.md), or to a remote agent over
 * TCP or TLS (distkv_connect_url).  Two ways to use it:
 *
 *  - synchronous calls (distkv_get, distkv_set, ...): send one request and
 *    wait for its reply;
 *  - asynchronous calls (distkv_async_*): start a request and return at once;
 *    the application polls distkv_fd() for readability in its own event loop
 *    and calls distkv_process(), which runs the callbacks of the replies that
 *    arrived.  Synchronous calls may run callbacks of pending asynchronous
 *    requests while they wait.
 *
 * Values are msgpack bytes (any msgpack object); the distkv_value_* helpers
 * build and read the common scalar types.  Paths are lists of elements
 * (UTF-8 strings, byte strings, integers); see distkv_path_*.
 *
 * There is NO automatic reconnect, on purpose: once the agent connection is
 * lost every call on that handle fails with DISTKV_EDISCONNECTED; close the
 * handle and connect again when the agent is back.
 *
 * A handle is not thread-safe: use it from one thread at a time.
 *
 * Errors: every int-returning function returns 0 on success or a negative
 * code: -errno for system errors, DISTKV_E* (<= -1000) for library errors.
 * distkv_strerror() describes both; distkv_errmsg() gives the text of the
 * last error the agent sent on a handle.  A refusal of the agent has a code
 * of its kind (DISTKV_ECONFLICT: a precondition failed; DISTKV_EDENIED,
 * DISTKV_EBADREQ, DISTKV_ENOTREADY, DISTKV_ETOOLARGE, DISTKV_ENOTFOUND;
 * DISTKV_ESERVER for the rest): no caller needs to compare error text.
 *
 * Threads: a distkv handle and a distkv_shm handle are each for one
 * thread at a time (the library takes no locks); open one per thread.
 * Paths, values and prepared keys (distkv_key) may be shared between
 * threads for reading.  distkv_connect_errmsg() is per thread.
 *
 * A complete program (examples/ has three more; link with -ldistkv, or
 * pkg-config distkv):
 *
 *	#include <inttypes.h>
 *	#include <stdio.h>
 *	#include <distkv.h>
 *
 *	int
 *	main(void)
 *	{
 *		struct distkv_set_opts o = { .pre = DISTKV_PRE_CHAIN,
 *		    .nchain = -1 };
 *		struct distkv_entry e;
 *		struct distkv_value v;
 *		distkv_path *p;
 *		distkv_key *k;
 *		distkv_shm *s;
 *		distkv *c;
 *		int64_t port;
 *		int rc;
 *
 *		// connect: $DISTKV_SOCKET or /run/distkv/distkv.sock
 *		if ((rc = distkv_connect(NULL, &c)) != 0) {
 *			fprintf(stderr, "%s\n", distkv_strerror(rc));
 *			return 1;
 *		}
 *		// read by name: from shared memory when mapped (~ a hash
 *		// table lookup), else over the socket
 *		if (distkv_get_int(c, "svc/web/port", &port) == 0)
 *			printf("port %" PRId64 "\n", port);
 *
 *		// wait for a change: the change word first, then the read
 *		if ((s = distkv_shm_of(c)) != NULL &&
 *		    distkv_key_parse("svc/web/port", &k) == 0) {
 *			uint32_t seen = distkv_shm_counter(s);
 *
 *			while (distkv_shm_wait(s, seen, 5000) == 0) {
 *				seen = distkv_shm_counter(s);
 *				// a prepared key: no parse, no hash per read
 *				if (distkv_key_get_int(s, k, &port) == 0)
 *					break;
 *			}
 *			distkv_key_free(k);
 *		}
 *
 *		// compare-and-set: write port + 1 only if nobody changed it
 *		// since we read it (its chain head is still the same)
 *		distkv_path_parse("svc/web/port", &p);
 *		do {
 *			if ((rc = distkv_get(c, p, 1, &e)) != 0)
 *				break;
 *			distkv_value_get_int(e.value.data, e.value.len, &port);
 *			o.chain_head = e.chain.ev[0];
 *			distkv_entry_clear(&e);
 *			distkv_value_from_int(&v, port + 1);
 *			rc = distkv_set(c, p, v.data, v.len, &o, NULL);
 *			distkv_value_clear(&v);
 *		} while (rc == DISTKV_ECONFLICT);	// lost a race: again
 *		if (rc != 0)
 *			fprintf(stderr, "%s (%s)\n", distkv_strerror(rc),
 *			    distkv_errmsg(c));
 *		distkv_path_free(p);
 *		distkv_close(c);
 *		return rc != 0;
 *	}
 */
#ifndef DISTKV_H
#define DISTKV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- version ---- */

/* The version of this header; distkv_version() gives the library's. */
#define DISTKV_VERSION_MAJOR 0
#define DISTKV_VERSION_MINOR 1
#define DISTKV_VERSION_PATCH 0
#define DISTKV_VERSION_STRING "0.1.0"

/* The library's version, "MAJOR.MINOR.PATCH" (static). */
const char *distkv_version(void);

/* ---- error codes ---- */
enum {
	DISTKV_ENOTFOUND = -1000,	/* the path holds no value */
	DISTKV_EPROTO = -1001,		/* malformed or unexpected data from the agent */
	DISTKV_EDISCONNECTED = -1002,	/* the connection to the agent is gone */
	DISTKV_ESERVER = -1003,		/* the agent answered with an error (distkv_errmsg) */
	DISTKV_EINVAL = -1004,		/* bad argument (bad path text, bad value bytes, ...) */
	DISTKV_ETOOSMALL = -1005,	/* caller's buffer too small */
	DISTKV_ETYPE = -1006,		/* the value is not of the requested type */
	DISTKV_ECANCELLED = -1007,	/* the request was stopped (distkv_cancel) */
	DISTKV_ECONNECT = -1008,	/* cannot reach the agent socket */
	DISTKV_ETIMEDOUT = -1009,	/* no answer within the timeout */
	DISTKV_EBUSY = -1010,		/* shm: the writer kept changing it; try again */
	DISTKV_ECORRUPT = -1011,	/* shm: the region is not a valid DistKV region */
	DISTKV_ESTALE = -1012,		/* shm: the agent behind the region is not running */
	DISTKV_ETLS = -1013,		/* TLS refused: a certificate, the name, the handshake
					 * (distkv_connect_errmsg says which) */
	/*
	 * The agent refused the request; distkv_errmsg() has its words.
	 * These replace DISTKV_ESERVER for the refusals of a known kind
	 * (docs/protocol.md, "Error kinds"); ESERVER is left for the rest
	 * (out of memory, a failed save, a value the translator refused).
	 */
	DISTKV_ECONFLICT = -1014,	/* a precondition failed: the entry exists
					 * (PRE_NEW), is new, or has another chain
					 * head (PRE_CHAIN) or value (prev) */
	DISTKV_EDENIED = -1015,		/* not allowed: an ACL, a missing or
					 * refused login */
	DISTKV_EBADREQ = -1016,		/* the agent cannot use the request
					 * (a bad field, an unknown action) */
	DISTKV_ENOTREADY = -1017,	/* the agent has not got its data yet */
	DISTKV_ETOOLARGE = -1018,	/* over a limit of the agent (request
					 * size, path length or depth) */
};

/*
 * The agent went away: DISTKV_EDISCONNECTED on the connection (every later
 * call on the handle gives it too), DISTKV_ESTALE for a region whose agent
 * stopped.  A request the agent did not answer in time: DISTKV_ETIMEDOUT.
 */

/* True for every code that means "the agent answered with an error" (its
 * text is in distkv_errmsg): ESERVER and ECONFLICT ... ETOOLARGE. */
#define DISTKV_IS_REFUSAL(rc) ((rc) == DISTKV_ESERVER || \
	((rc) <= DISTKV_ECONFLICT && (rc) >= DISTKV_ETOOLARGE))

/* Describe any code returned by this library (-errno or DISTKV_E*). */
const char *distkv_strerror(int rc);

/* ---- paths ---- */

typedef struct distkv_path distkv_path;

enum distkv_elem_type {
	DISTKV_ELEM_STR,
	DISTKV_ELEM_BIN,
	DISTKV_ELEM_INT,
	DISTKV_ELEM_NIL,	/* only as the first element: the meta root */
};

struct distkv_elem {
	enum distkv_elem_type type;
	int64_t i;		/* DISTKV_ELEM_INT */
	const char *s;		/* STR / BIN bytes, borrowed from the path */
	size_t len;
};

/* New empty path (the root).  Returns 0 or -ENOMEM. */
int distkv_path_new(distkv_path **out);
/* Deep copy. */
int distkv_path_dup(const distkv_path *p, distkv_path **out);
void distkv_path_free(distkv_path *p);
/* Append an element.  Strings must be UTF-8 (else DISTKV_EINVAL). */
int distkv_path_push_str(distkv_path *p, const char *s, size_t len);
int distkv_path_push_bin(distkv_path *p, const void *b, size_t len);
int distkv_path_push_int(distkv_path *p, int64_t v);
int distkv_path_push_nil(distkv_path *p);
/* Number of elements, and element i (borrowed until the path changes). */
size_t distkv_path_len(const distkv_path *p);
int distkv_path_elem(const distkv_path *p, size_t i, struct distkv_elem *out);
/* Remove the last n elements. */
void distkv_path_truncate(distkv_path *p, size_t n);

/*
 * Parse the text form used by distkv-cli (docs/cli.md): elements separated
 * by '/', a leading or trailing '/' ignored, "" or "/" is the root.
 *   \/ and \\ escape a slash and a backslash inside an element;
 *   \: at the start of an element makes a string starting with ':'.
 *   :123 and :-5 are integer elements; :xDEADBEEF is a byte string (hex);
 *   ':' alone is the empty string; :nil is the meta root (first only).
 * An empty element between two slashes is an error (DISTKV_EINVAL).
 */
int distkv_path_parse(const char *text, distkv_path **out);
/* The text form of p in a new malloc'd string (*out), parseable again. */
int distkv_path_format(const distkv_path *p, char **out);

/* ---- values (msgpack bytes) ---- */

/* A malloc'd msgpack value; free with distkv_value_clear. */
struct distkv_value {
	uint8_t *data;
	size_t len;
};

void distkv_value_clear(struct distkv_value *v);
/* Build a value.  Returns 0 or -ENOMEM. */
int distkv_value_from_str(struct distkv_value *v, const char *s, size_t len);
int distkv_value_from_int(struct distkv_value *v, int64_t i);
int distkv_value_from_double(struct distkv_value *v, double d);
int distkv_value_from_bool(struct distkv_value *v, bool b);
int distkv_value_from_nil(struct distkv_value *v);
/* Copy msgpack bytes; DISTKV_EINVAL unless they are exactly one object. */
int distkv_value_from_msgpack(struct distkv_value *v, const void *data,
    size_t len);
/*
 * Read a value.  DISTKV_ETYPE if it is of another type.  get_str returns a
 * pointer into the value's bytes (not NUL-terminated) and its length.
 * get_int accepts any integer that fits int64; get_double accepts floats
 * and integers.
 */
int distkv_value_get_str(const void *data, size_t len, const char **s,
    size_t *slen);
int distkv_value_get_int(const void *data, size_t len, int64_t *out);
int distkv_value_get_double(const void *data, size_t len, double *out);
int distkv_value_get_bool(const void *data, size_t len, bool *out);
bool distkv_value_is_nil(const void *data, size_t len);

/* ---- chains ---- */

#define DISTKV_NODE_MAX 128	/* longest node name, bytes */
#define DISTKV_CHAIN_MAX 16	/* most chain links a reply is decoded to */

struct distkv_event {
	char node[DISTKV_NODE_MAX + 1];	/* NUL-terminated */
	uint64_t tick;
};

/* A change chain (spec §1.4), newest event first. */
struct distkv_chain {
	size_t n;			/* 0: no chain */
	bool complete;			/* false: the agent sent a truncated chain */
	struct distkv_event ev[DISTKV_CHAIN_MAX];
};

/* ---- connection ---- */

typedef struct distkv distkv;

/* Default socket path when NULL is passed (also $DISTKV_SOCKET). */
#define DISTKV_DEFAULT_SOCKET "/run/distkv/distkv.sock"

/*
 * Connect to the agent at socket_path and read its greeting.  NULL:
 * $DISTKV_CONNECT (a URL, as distkv_connect_url with tls NULL) if set,
 * else $DISTKV_SOCKET, else DISTKV_DEFAULT_SOCKET.  If the agent asks for
 * the `unix` login (no secret: the kernel names the caller's uid), it is
 * done here.
 * Errors: DISTKV_ECONNECT, DISTKV_EPROTO (no valid greeting), -ENOMEM.
 */
int distkv_connect(const char *socket_path, distkv **out);

/* TLS settings of distkv_connect_url; every field may be NULL. */
struct distkv_tls_opts {
	/* CA certificates (PEM) the agent's certificate must chain to;
	 * NULL: $DISTKV_TLS_CA, else the system's trust store */
	const char *ca_file;
	/* our certificate (PEM) for agents that ask for one (--tls-client-ca,
	 * the cert login); NULL: $DISTKV_TLS_CERT, else none */
	const char *cert_file;
	/* its private key (PEM); NULL: $DISTKV_TLS_KEY, else in cert_file */
	const char *key_file;
};

/*
 * Connect to the agent named by url and read its greeting, within the
 * default timeout ($DISTKV_TIMEOUT, see distkv_set_timeout):
 *   unix:PATH or a bare PATH   the local socket (as distkv_connect)
 *   tcp://HOST[:PORT]          plain TCP (an agent's --listen-insecure:
 *                              tests only, nothing is protected)
 *   tls://HOST[:PORT]          TLS (an agent's --listen): the agent's
 *                              certificate must chain to the CA and name
 *                              HOST (a DNS name, or an IP address in an
 *                              IP SAN); IPv6 literals as [::1]
 * PORT defaults to 27586.  Over TCP and TLS there is no shared memory:
 * every read goes over the connection.  If the agent asks for the `cert`
 * login and a client certificate is set, it is done here (as `unix` is
 * on the local socket).  tls may be NULL (the environment then decides).
 * Errors: DISTKV_EINVAL (bad URL, unusable CA/certificate/key file),
 * DISTKV_ECONNECT (name unknown, connection refused), DISTKV_ETLS,
 * DISTKV_ETIMEDOUT, DISTKV_EPROTO, -ENOMEM; distkv_connect_errmsg()
 * then says what exactly.
 */
int distkv_connect_url(const char *url, const struct distkv_tls_opts *tls,
    distkv **out);
/*
 * Why the last failed distkv_connect* of this thread failed, in words
 * ("certificate verify failed: certificate has expired", "connection
 * refused by 192.0.2.7:27586"), or "".  Static per thread.
 */
const char *distkv_connect_errmsg(void);
/*
 * Connect to an agent's peer port over TCP ("127.0.0.1:27589", "[::1]:27589")
 * and read its greeting, all within timeout_ms.  Agents use this among
 * themselves; peer ports may demand a login (docs/cluster.md).
 */
int distkv_connect_tcp(const char *hostport, int timeout_ms, distkv **out);
/*
 * Take over a connected stream socket (e.g. from the caller's own
 * non-blocking connect) and read the greeting within timeout_ms.  The
 * handle owns fd from then on, also when this fails (it is closed).
 */
int distkv_connect_fd(int fd, int timeout_ms, distkv **out);
/* The greeting map as received (msgpack bytes, borrowed). */
const void *distkv_greeting(const distkv *c, size_t *len);
/* Close the connection; cancels everything it started.  NULL is a no-op. */
void distkv_close(distkv *c);
/* From the greeting: the agent's node name, its tick then. */
const char *distkv_node(const distkv *c);
uint64_t distkv_greeting_tick(const distkv *c);
/* Text of the last error reply of the agent on this handle ("" if none). */
const char *distkv_errmsg(const distkv *c);
/*
 * Timeout for synchronous calls in milliseconds (<0: none).  The default,
 * also for reading the greeting in distkv_connect, is $DISTKV_TIMEOUT
 * (seconds, e.g. "2.5") when set, else DISTKV_DEFAULT_TIMEOUT_MS: a stopped
 * agent costs at most that, never a hang.
 */
#define DISTKV_DEFAULT_TIMEOUT_MS 30000
void distkv_set_timeout(distkv *c, int ms);

/* ---- synchronous calls ---- */

/* One entry as the agent reports it. Free with distkv_entry_clear. */
struct distkv_entry {
	distkv_path *path;		/* full path (below the connection root); NULL for distkv_get */
	struct distkv_value value;	/* msgpack; a nil value means "no value" */
	uint64_t tock;
	struct distkv_chain chain;	/* n == 0 unless asked for (nchain); only ev[0 .. n-1] are set */
	int depth;			/* tree/watch items: depth below the request path */
};

void distkv_entry_clear(struct distkv_entry *e);

/*
 * Read the value at p.  nchain: how many chain links to ask for (0: none).
 * Errors: DISTKV_ENOTFOUND if the path has no value (out->value is then nil,
 * out->tock set), DISTKV_EDENIED, DISTKV_EDISCONNECTED, DISTKV_ETIMEDOUT,
 * DISTKV_EPROTO, DISTKV_ESERVER.
 * With nchain 0 on a handle that mapped the agent's region (and the region
 * is fresh: see distkv_shm_age_ms), the value comes from the region: no
 * system call, the cost of distkv_shm_get plus one allocation for the
 * value's bytes, which out owns.  A loop that reads the same keys again
 * and again reads them cheaper into its own buffer with distkv_shm_get or
 * a prepared key (distkv_key_get and its typed forms).  A region that
 * cannot answer (replaced and not re-mappable, changing under every
 * retry, corrupt) sends the read to the agent over the socket.
 */
int distkv_get(distkv *c, const distkv_path *p, int nchain,
    struct distkv_entry *out);

/*
 * Read the value at a path given as text (distkv_path_parse's syntax:
 * "svc/web/port", ":5" an integer element, "\\/" a slash inside one),
 * typed, without a distkv_path object.  Served from the region when the
 * handle mapped it and it is fresh (and no distkv_root is in force), else
 * over the socket; a name read again costs no parsing (the handle caches
 * the prepared keys of 64 names).  get_str copies a NUL-terminated
 * string.  Errors: DISTKV_ENOTFOUND, DISTKV_ETYPE (another type),
 * DISTKV_ETOOSMALL (get_str: cap too small), DISTKV_EINVAL (bad text),
 * and those of distkv_get.
 */
int distkv_get_str(distkv *c, const char *path, char *buf, size_t cap);
int distkv_get_int(distkv *c, const char *path, int64_t *out);
int distkv_get_double(distkv *c, const char *path, double *out);
int distkv_get_bool(distkv *c, const char *path, bool *out);

/* Read the entry whose chain holds event (node, tick); out->path is set. */
int distkv_get_event(distkv *c, const char *node, uint64_t tick, int nchain,
    struct distkv_entry *out);

/* Preconditions for set/delete. */
enum distkv_precond {
	DISTKV_PRE_NONE = 0,
	DISTKV_PRE_NEW,		/* chain: nil - the entry must not exist yet */
	DISTKV_PRE_CHAIN,	/* the entry's chain head must equal opts.chain_head */
};

struct distkv_set_opts {
	enum distkv_precond pre;
	struct distkv_event chain_head;	/* for DISTKV_PRE_CHAIN */
	const void *prev;		/* if not NULL: expected old value (msgpack) */
	size_t prev_len;
	int nchain;			/* chain links in the reply; -1 = default (1) */
};

struct distkv_set_result {
	bool changed;
	bool has_prev;			/* the agent reported the old value */
	struct distkv_value prev;
	struct distkv_chain chain;
	uint64_t tock;
};

void distkv_set_result_clear(struct distkv_set_result *r);

/*
 * Set p to the msgpack value (value, len).  opts and out may be NULL.
 * Errors: DISTKV_ECONFLICT when a precondition fails (the agent's text in
 * distkv_errmsg: "This entry already exists", "This entry is new", "Chain
 * is ...", "Data is ..."), DISTKV_EDENIED (ACL, login), DISTKV_EBADREQ,
 * DISTKV_ETOOLARGE, DISTKV_ESERVER (e.g. refused by the value's type),
 * DISTKV_EDISCONNECTED, DISTKV_ETIMEDOUT, DISTKV_EINVAL (bad value bytes).
 */
int distkv_set(distkv *c, const distkv_path *p, const void *value, size_t len,
    const struct distkv_set_opts *opts, struct distkv_set_result *out);
/* Delete the value at p (keeps a tombstone).  Same options and errors. */
int distkv_delete(distkv *c, const distkv_path *p,
    const struct distkv_set_opts *opts, struct distkv_set_result *out);
/* Delete p and every value below it; *count = entries cleared. */
int distkv_delete_tree(distkv *c, const distkv_path *p, uint64_t *count);

/* Depth window and chain length for tree walks and watches. */
struct distkv_tree_opts {
	int min_depth;		/* 0 = from the entry itself */
	int max_depth;		/* -1 = unlimited, 0 = the entry only */
	int nchain;
	bool fetch;		/* watch only: first send the current subtree */
};

/*
 * Item callback of get_tree and watch.  The entry is borrowed for the call.
 * Return 0 to go on, non-zero to stop (get_tree returns early; a watch is
 * cancelled).
 */
typedef int distkv_entry_fn(void *arg, const struct distkv_entry *e);

/* Every entry with a value below p, in pre-order.  opts may be NULL. */
int distkv_get_tree(distkv *c, const distkv_path *p,
    const struct distkv_tree_opts *opts, distkv_entry_fn *fn, void *arg);

/*
 * Watch p and its subtree, blocking: calls fn for every item until fn returns
 * non-zero (then the watch is stopped and 0 returned), the connection fails,
 * or timeout_ms passes (-1: forever; returns DISTKV_ETIMEDOUT).  With fetch,
 * an "uptodate" marker is reported as a call with e == NULL.
 */
int distkv_watch(distkv *c, const distkv_path *p,
    const struct distkv_tree_opts *opts, int timeout_ms, distkv_entry_fn *fn,
    void *arg);

/* Agent state flags for distkv_state. */
enum {
	DISTKV_STATE_NODES = 1,
	DISTKV_STATE_KNOWN = 2,
	DISTKV_STATE_MISSING = 4,
	DISTKV_STATE_REMOTE_MISSING = 8,
	DISTKV_STATE_PING = 16,		/* the last ping chain */
	DISTKV_STATE_RECOVERY = 32,	/* split recovery state, counters */
	DISTKV_STATE_ALL = 63,
};

/*
 * get_state: *out receives the reply map as msgpack bytes (keys nodes,
 * known, missing, remote_missing, ping, recovery as asked; seq and tock
 * removed).
 */
int distkv_state(distkv *c, int flags, struct distkv_value *out);
/* Change the connection's root to p (irreversible). */
int distkv_root(distkv *c, const distkv_path *p, struct distkv_entry *out);
/* Write a snapshot to file (agent side, under its state directory). */
int distkv_save(distkv *c, const char *file);
/* Start logging changes to file (agent side); with fetch, snapshot first. */
int distkv_log(distkv *c, const char *file, bool fetch);

/*
 * Send any request: fields is a msgpack map without seq (action, ...).  The
 * reply map(s) are passed to fn as msgpack bytes, borrowed for the call;
 * for a multi reply fn is called once per message including the state
 * messages.  Return non-zero from fn to stop the request.
 */
typedef int distkv_raw_fn(void *arg, const uint8_t *msg, size_t len);
int distkv_request(distkv *c, const void *fields, size_t len,
    distkv_raw_fn *fn, void *arg);

/* ---- the translator (docs/translator.md) ---- */

/*
 * Write the records of spec §5 under the meta root (an unrestricted login
 * is needed).  Names and patterns are path texts (distkv_path_parse: "int",
 * "int/percent", "foo/+/bar", "inty/#"); code is Lua 5.4, the body of a
 * function of `value` (docs/translator.md).  good, bad, in and out are
 * msgpack arrays (in/out: arrays of [src, res] pairs), schema a msgpack
 * map; NULL leaves one out.  The agent checks a record before it stores
 * it: a refusal ("Must have check-good values", "failed on 3 with ...",
 * "Decoding ... got ...", "Codec is not a string or list", ...) is
 * DISTKV_ESERVER with its text in distkv_errmsg(), an unknown type
 * ("This type does not exist") DISTKV_ENOTFOUND; a bad argument is
 * DISTKV_EINVAL.
 */
int distkv_type_set(distkv *c, const char *type, const char *code,
    const void *good, size_t good_len, const void *bad, size_t bad_len,
    const void *schema, size_t schema_len);
/* Values at paths matching pattern must pass type. */
int distkv_match_set(distkv *c, const char *pattern, const char *type);
/* A codec: decode (client form -> stored) and encode (stored -> client),
 * either may be NULL, with the example pairs that must hold. */
int distkv_codec_set(distkv *c, const char *codec, const char *decode,
    const char *encode, const void *in, size_t in_len, const void *out,
    size_t out_len);
/* In converter set conv, paths matching pattern go through codec; a
 * user is bound to conv by its record (distkv-cli auth user conv). */
int distkv_conv_set(distkv *c, const char *conv, const char *pattern,
    const char *codec);
/* Delete a record: kind "type", "match" or "codec" and its name or
 * pattern, or kind "conv" and "NAME/PATTERN". */
int distkv_translator_delete(distkv *c, const char *kind, const char *name);

/* ---- logins (docs/protocol.md, "Authentication") ---- */

/*
 * The login method the agent asked for in its greeting ("password",
 * "root", ...), or NULL when no login is needed.  Static per thread.
 */
const char *distkv_auth_method(const distkv *c);
/*
 * Log in with a method that needs no secret ("root" with ident "*" or
 * NULL, "_test").  Errors: DISTKV_EDENIED with distkv_errmsg(c) saying why
 * ("Wrong auth type: password", "No such user", ...): every refused login
 * is DISTKV_EDENIED, whatever the reason.  Logging in again
 * on a logged-in connection checks the login but changes nothing.
 */
int distkv_login(distkv *c, const char *method, const char *ident);
/*
 * Run diffie_hellman with the agent once per connection (RFC 3526 group
 * 18, as the reference's client): the key the password boxes use.  Later
 * calls do nothing.  DISTKV_ESERVER ("Can't call dh twice" if someone else
 * ran it on this connection), DISTKV_EPROTO for a bad agent key.
 */
int distkv_dh(distkv *c);
/*
 * Log in as a password user: diffie_hellman if not done yet, then the
 * password's SHA-256 in a secretbox.  A wrong password or unknown user is
 * DISTKV_EDENIED (distkv_errmsg starts "AuthFailedError" or says "No such
 * user").
 */
int distkv_login_password(distkv *c, const char *user, const char *password);
/*
 * Create a password user (names: ^[a-zA-Z][a-zA-Z0-9_]*$).  A user that
 * exists already: DISTKV_ECONFLICT, "This entry already exists".
 */
int distkv_auth_add_password(distkv *c, const char *user,
    const char *password);
/*
 * Require logins with method from now on (new connections), or none with
 * NULL.  DISTKV_EBADREQ ("You didn't configure this method yet: M") until
 * it has a user.
 */
int distkv_auth_set_method(distkv *c, const char *method);

/* ---- shared-memory reads (docs/shm.md) ---- */

/*
 * The agent mirrors the tree into a read-only shared-memory region.  A
 * distkv_shm handle reads it without a system call and without a lock;
 * values are copied out whole (never torn).  distkv_connect() maps the
 * region the agent names in its greeting, and distkv_get() then reads it
 * instead of asking over the socket (for nchain == 0).  A distkv_shm
 * handle is for one thread at a time; open one per thread.
 */
typedef struct distkv_shm distkv_shm;

struct distkv_shm_meta {
	uint64_t tick;			/* of the chain head: the last change */
	uint64_t tock;
	char node[65];			/* node that made it, NUL-terminated */
};

/* Map the region at path (the agent's --shm).  DISTKV_ECORRUPT, -errno. */
int distkv_shm_open(const char *path, distkv_shm **out);
void distkv_shm_close(distkv_shm *s);
/* The region distkv_connect mapped for c, or NULL (borrowed). */
distkv_shm *distkv_shm_of(const distkv *c);

/*
 * Copy the value (msgpack) at p into buf.  *len: its size.  m may be NULL.
 * Errors: DISTKV_ENOTFOUND, DISTKV_ETOOSMALL (*len = size needed),
 * DISTKV_EBUSY (changed under every retry), DISTKV_ECORRUPT, -errno.
 * No system call unless the agent replaced the region (then it re-maps).
 * A distkv_path keeps its region key (the canonical bytes, up to 110 of
 * them, and their hash) up to date as it is built, pushed to or
 * truncated, so a read by a path costs no encoding, hashing or
 * allocation; only a path whose key is longer is encoded per read.
 */
int distkv_shm_get(distkv_shm *s, const distkv_path *p, void *buf, size_t cap,
    size_t *len, struct distkv_shm_meta *m);
/* Typed getters: DISTKV_ETYPE if the value has another type.  get_str
 * copies a NUL-terminated string (DISTKV_ETOOSMALL if it does not fit). */
int distkv_shm_get_str(distkv_shm *s, const distkv_path *p, char *buf,
    size_t cap);
int distkv_shm_get_int(distkv_shm *s, const distkv_path *p, int64_t *out);
int distkv_shm_get_double(distkv_shm *s, const distkv_path *p, double *out);
int distkv_shm_get_bool(distkv_shm *s, const distkv_path *p, bool *out);

/*
 * A prepared key: the region key of a path (its canonical msgpack bytes)
 * and their hash, made once, so that a read by it costs one table probe
 * and one copy, as the raw region reader does.  A key holds nothing of a
 * region: it stays good when the agent replaces (grows, compacts) its
 * region or restarts, and one key can read any number of regions, from
 * any number of threads at once (it is never written after it is made).
 * A key names a full path: on a connection that used distkv_root, prepare
 * the root's path followed by the relative one.
 * distkv_key_new / distkv_key_parse (distkv_path_parse's text): 0,
 * DISTKV_EINVAL (bad text), -ENOMEM.
 */
typedef struct distkv_key distkv_key;

int distkv_key_new(const distkv_path *p, distkv_key **out);
int distkv_key_parse(const char *text, distkv_key **out);
void distkv_key_free(distkv_key *k);
/*
 * As distkv_shm_get and the typed getters, by a prepared key: no
 * allocation, no encoding, no hashing.  A deleted (or never set) key is
 * DISTKV_ENOTFOUND.  On an error buf's contents are unspecified.
 */
int distkv_key_get(distkv_shm *s, const distkv_key *k, void *buf, size_t cap,
    size_t *len, struct distkv_shm_meta *m);
int distkv_key_get_str(distkv_shm *s, const distkv_key *k, char *buf,
    size_t cap);
int distkv_key_get_int(distkv_shm *s, const distkv_key *k, int64_t *out);
int distkv_key_get_double(distkv_shm *s, const distkv_key *k, double *out);
int distkv_key_get_bool(distkv_shm *s, const distkv_key *k, bool *out);

/* Changes published so far: a plain memory load, free to poll. */
uint64_t distkv_shm_changes(distkv_shm *s);
/* The wait word: pass it to distkv_shm_wait. */
uint32_t distkv_shm_counter(distkv_shm *s);
/*
 * Block until anything changed since counter (as read before), or
 * timeout_ms passed (-1: forever).  Returns 0 or DISTKV_ETIMEDOUT.
 * Wakes up also when the agent stops or replaces the region.
 */
int distkv_shm_wait(distkv_shm *s, uint32_t counter, int timeout_ms);
/*
 * 1 if the agent is alive (process exists, heartbeat fresh), 0 if the data
 * is stale.  If the agent restarted with a new region, re-maps it first.
 * Makes system calls; call it now and then, not per read.
 */
int distkv_shm_alive(distkv_shm *s);
/*
 * Milliseconds since the agent's last heartbeat in the region (about 250
 * ms apart while it runs): how old the data may be once the agent is
 * gone.  distkv_shm_get reads a region whatever its age; a caller that
 * opened one with distkv_shm_open has opted in to stale data and should
 * check distkv_shm_alive and say how old it is (distkv-cli get --stale).
 * distkv_get never serves stale data: it asks the agent instead.
 */
uint64_t distkv_shm_age_ms(distkv_shm *s);
/*
 * Map the region of the agent whose node name is node, at the agent's
 * default path /dev/shm/distkv-NODE ('/' in NODE becomes '_'), without
 * asking the agent (it may be stopped or gone).  As distkv_shm_open.
 */
int distkv_shm_open_node(const char *node, distkv_shm **out);

/*
 * Every child of p that has a value (depth 1 below p), from one consistent
 * view of the region; e->path is the child's full path.  DISTKV_EBUSY if
 * the writer changed the region under every retry.
 */
int distkv_shm_children(distkv_shm *s, const distkv_path *p,
    distkv_entry_fn *fn, void *arg);
/*
 * Children of p through shm when mapped and consistent, else over the
 * socket (get_tree with depth 1).
 */
int distkv_children(distkv *c, const distkv_path *p, distkv_entry_fn *fn,
    void *arg);

/* ---- asynchronous interface ---- */

/*
 * distkv_request without waiting: fn gets every reply message of the
 * request from distkv_process (for a multi reply up to and including the
 * {state: "end"} message).  A non-zero return from fn stops the request.
 */
int distkv_async_request(distkv *c, const void *fields, size_t len,
    distkv_raw_fn *fn, void *arg, uint64_t *seq);

/* The socket to poll for readability (POLLIN) in the caller's loop. */
int distkv_fd(const distkv *c);
/*
 * Read what arrived, without blocking, and run the callbacks of completed
 * replies and watch items.  Also sends queued requests.  Returns 0,
 * DISTKV_EDISCONNECTED or DISTKV_EPROTO (the handle is then dead).
 */
int distkv_process(distkv *c);
/* True while requests are queued for sending (poll for POLLOUT too). */
bool distkv_want_write(const distkv *c);

/*
 * Completion callback of a single-reply async request: rc is 0 or an error;
 * e (get) / r (set, delete) borrowed for the call, NULL on error.
 */
typedef void distkv_get_cb(void *arg, int rc, const struct distkv_entry *e);
typedef void distkv_set_cb(void *arg, int rc,
    const struct distkv_set_result *r);
/* Watch item callback: e NULL means "uptodate"; rc != 0 means the watch
 * ended (DISTKV_ECANCELLED after distkv_cancel, or an error) and is the last
 * call. */
typedef void distkv_watch_cb(void *arg, int rc, const struct distkv_entry *e);

/*
 * Start a request; *seq (may be NULL) identifies it for distkv_cancel.
 * The request is queued, not written: requests started together leave in
 * one write on the next distkv_process() (poll for POLLOUT while
 * distkv_want_write() is true), or when more than 64 KiB are queued.
 */
int distkv_async_get(distkv *c, const distkv_path *p, int nchain,
    distkv_get_cb *cb, void *arg, uint64_t *seq);
int distkv_async_set(distkv *c, const distkv_path *p, const void *value,
    size_t len, const struct distkv_set_opts *opts, distkv_set_cb *cb,
    void *arg, uint64_t *seq);
int distkv_async_delete(distkv *c, const distkv_path *p,
    const struct distkv_set_opts *opts, distkv_set_cb *cb, void *arg,
    uint64_t *seq);
int distkv_async_watch(distkv *c, const distkv_path *p,
    const struct distkv_tree_opts *opts, distkv_watch_cb *cb, void *arg,
    uint64_t *seq);
/* Stop a running request (a watch); its callback then gets
 * DISTKV_ECANCELLED once the agent confirms. */
int distkv_cancel(distkv *c, uint64_t seq);

#ifdef __cplusplus
}
#endif
#endif
