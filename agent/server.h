/*
 * server: the listeners (the Unix socket, TCP and TLS client ports, the
 * peer port) and client connections.  How a connection's bytes travel is
 * its transport (transport.h); nothing past this file knows.  Bytes in are
 * framed with proto_scan and handed to handlers_dispatch(); replies are
 * packed straight into the connection's output buffer, which is flushed
 * once per loop iteration (ev_prepare), after the change logs are synced:
 * that is the group commit that makes fsync=always cheap under load.
 *
 * Long-running requests (tree walks, watches, client-streamed input) are
 * tasks owned by their connection; stop and disconnect cancel them.
 */
#ifndef DISTKV_SERVER_H
#define DISTKV_SERVER_H

#include <stdbool.h>
#include <sys/types.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

struct agent;
struct conn;
struct entry;
struct task;

struct task_ops {
	/* More output wanted (a walk); called when the output has room. */
	void (*pump)(struct task *t);
	/* A client-streamed message with this task's seq (may be NULL). */
	void (*input)(struct task *t, const msgpack_object *msg);
	/* Release the task's resources; the task is already unlinked. */
	void (*free)(struct task *t);
};

struct task {
	struct conn *conn;
	uint64_t seq;
	const struct task_ops *ops;
	bool wants_pump;
	/* client-streamed input (ops->input): messages so far, and when
	 * the last one came (a silent client's stream is ended) */
	uint64_t inputs;
	double last_input;
	struct task *next, *prev;
};

/* The server without listeners (replies and the per-iteration flush). */
int server_new(struct agent *a, struct server **out);
/*
 * Listen on the client socket (cfg.socket_path, cfg.socket_mode), and
 * on the TCP client ports bound before (server_bind_clients_tcp).
 */
int server_open_clients(struct server *s);
/* The TLS configuration of the --listen ports; s owns ts from now on. */
struct tls_server;
void server_set_tls(struct server *s, struct tls_server *ts);
/*
 * Bind a TCP client port on numeric "ADDR:PORT", with TLS (server_set_tls
 * first) or plain (--listen-insecure); it accepts from
 * server_open_clients on, as the Unix socket.  Binding at start-up makes
 * a bad address or a port in use a start-up error.  0, -EINVAL (bad
 * address, no TLS configuration), -errno; the reason is logged.
 */
int server_bind_clients_tcp(struct server *s, const char *hostport,
    bool tls);
/* Listen for peers on TCP ADDR:PORT; their greeting carries a challenge
 * and they must prove the cluster key first (peer_auth). */
int server_open_peers(struct server *s, const char *hostport);
/*
 * Serve fd, a connected non-blocking stream socket, as one client (or,
 * with peer, peer-port) connection: what accepting it would do, greeting
 * included.  Takes ownership of fd (closed on failure).  The listeners
 * use it; in-process tests and fuzzers hand it one end of a socketpair.
 * Returns 0 or -ENOMEM.
 */
int server_adopt(struct server *s, int fd, bool peer);
/* Stop accepting, close every connection, remove the socket file. */
void server_close(struct server *s);
/* Write out every pending reply (blocking briefly); used at shutdown. */
void server_drain(struct server *s);
/* Open connections (clients and peers), for the metrics. */
size_t server_nconns(const struct server *s);

/* The agent a connection belongs to. */
struct agent *conn_agent(const struct conn *c);
/* True for connections that came in on the peer port. */
bool conn_is_peer(const struct conn *c);
/* True for connections on the local Unix socket (SO_PEERCRED, shm). */
bool conn_is_local(const struct conn *c);
/* The connection's transport: its kind, the TLS client's name. */
struct transport;
const struct transport *conn_transport(const struct conn *c);
/*
 * The uid and gid of the process at the other end of a Unix socket
 * connection, as the kernel saw them at connect (SO_PEERCRED).  0, or
 * -ENOTSUP on TCP (the peer port, TCP and TLS client ports), -errno.
 */
int conn_peer_cred(const struct conn *c, uid_t *uid, gid_t *gid);
/* Root entry of the connection (after the `root` action). */
struct entry *conn_root(const struct conn *c);
void conn_set_root(struct conn *c, struct entry *root);

/*
 * Start a reply message: a map of nfields + 1 (seq) + (stamp ? 1 : 0)
 * entries, with seq packed and, if stamp, a fresh tock.  The caller packs
 * exactly nfields key/value pairs with the returned packer.
 */
msgpack_packer *conn_reply(struct conn *c, uint64_t seq, uint32_t nfields,
    bool stamp);
/*
 * A reply packed by hand (proto_put_*), for the calls made most: through
 * the packer a set's reply was a dozen calls of its write function, a
 * tenth of the set.  conn_reply_room starts it as conn_reply does (a map
 * of nfields + 1 entries, seq packed) and returns where the caller
 * writes, with room for `more` bytes; conn_out_advance(c, end) then
 * takes them.  Nothing else may write to c in between; after it the
 * packer (conn_packer) may add fields.  conn_out_room: room for n bytes
 * at the end of c's output.  NULL: out of memory, the connection closes.
 */
uint8_t *conn_reply_room(struct conn *c, uint64_t seq, uint32_t nfields,
    size_t more);
uint8_t *conn_out_room(struct conn *c, size_t n);
void conn_out_advance(struct conn *c, const uint8_t *end);
msgpack_packer *conn_packer(struct conn *c);
/* Start a message without seq (for input whose seq is unknown). */
msgpack_packer *conn_reply_noseq(struct conn *c, uint32_t nfields);
/* A whole single reply {seq, error, tock}. */
void conn_reply_error(struct conn *c, uint64_t seq, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* {seq, state: st, tock} */
void conn_reply_state(struct conn *c, uint64_t seq, const char *st);
/*
 * Around the handler of a multi-reply request (spec §2.2): an error that
 * is the request's first reply goes out as start, {error}, end, as the
 * reference's streaming commands send it; clients that wait for "start"
 * (the ACL-era Python client's _stream) would otherwise hang.
 */
void conn_multi_begin(struct conn *c, uint64_t seq);
void conn_multi_end(struct conn *c);
/* Pack already-encoded msgpack bytes as one object. */
void conn_pack_raw(struct conn *c, const uint8_t *p, size_t len);

/* Read no more requests; close once the replies so far are written. */
void conn_end_after_reply(struct conn *c);
/*
 * A peer failed to prove the cluster key: the connection ends after the
 * error reply, and its address waits before its next connection is
 * accepted (0.1 s, doubling per failure up to 60 s; docs/cluster.md).
 */
void conn_peer_auth_failed(struct conn *c);
/*
 * A client login failed: from the second failure on, its uid (the
 * address on TCP) waits before its next attempt is heard, 0.1 s doubling
 * to 60 s; after 5 failures on one connection it ends after the reply.
 * Returns true if it ends.
 */
bool conn_login_failed(struct conn *c);
/* Seconds c's uid (or address) must still wait before a login (0: none). */
double conn_login_wait(struct conn *c);

/* Output beyond the configured bound: producers must stop or abort. */
bool conn_output_full(const struct conn *c);
/* Half full: walks pause here and resume when the output drains. */
bool conn_output_busy(const struct conn *c);

/* Link a task to its connection (seq must not run already). */
void conn_task_add(struct conn *c, struct task *t);
/*
 * A client-streamed message arrived for t: false (after an error reply
 * and the end of t) if the stream is over its message cap.
 */
#define SERVER_STREAM_MAX_INPUTS 16000000
bool conn_task_input(struct task *t);
struct task *conn_task_find(struct conn *c, uint64_t seq);
/* Unlink and free t; with send_end, first reply {seq, state: "end"}. */
void conn_task_end(struct task *t, bool send_end);
/* Ask for t->ops->pump to run when the output has room. */
void conn_task_want_pump(struct task *t);

#endif
