/*
 * transport: how the bytes of one client connection travel, so that
 * server.c and the request handlers never know: plain (the Unix socket,
 * TCP) or TLS through OpenSSL.  Every call is non-blocking.
 *
 * The threat: whatever connects to a TCP port may send anything, or
 * nothing.  A TLS connection is handshaken on the event loop before the
 * server sees it (transport_handshake_start), with its own watchers and
 * a deadline; garbage, plaintext, a refused certificate or a silent
 * client each end it with one log line, never blocking anyone else.
 *
 * After the handshake a TLS read may need the socket writable and a
 * write may need it readable (TLS 1.3 key updates): read_wants_write and
 * write_wants_read say so, and the server arms its watchers accordingly.
 */
#ifndef DISTKV_TRANSPORT_H
#define DISTKV_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <ev.h>

enum transport_kind {
	TRANSPORT_UNIX,		/* the local socket: SO_PEERCRED, shm */
	TRANSPORT_TCP,		/* plain TCP (peer port, --listen-insecure) */
	TRANSPORT_TLS,		/* TCP with TLS (--listen) */
};

/* One TLS configuration: certificate, key, client CA, handshake limit. */
struct tls_server;

/*
 * Load and check cert (a PEM chain), key (PEM, must match cert) and, if
 * client_ca is not NULL, the CA file whose certificates client
 * certificates must chain to (then every client must present one).
 * TLS 1.2 is the minimum.  On failure the reason, naming the file, is in
 * err.  Returns 0, -EINVAL (bad file or contents) or -ENOMEM.
 */
int tls_server_new(const char *cert, const char *key, const char *client_ca,
    double handshake_timeout, char *err, size_t errcap,
    struct tls_server **out);
void tls_server_free(struct tls_server *ts);

typedef void transport_done_fn(void *arg, int rc);

struct transport {
	enum transport_kind kind;
	int fd;
	void *ssl;		/* SSL *, TLS only */
	bool read_wants_write;	/* the last read waits for POLLOUT */
	bool write_wants_read;	/* the last write waits for POLLIN */
	/* the handshake (TLS) */
	struct ev_loop *loop;
	ev_io hio;
	ev_timer htimer;
	double timeout;
	transport_done_fn *done;
	void *arg;
	bool broken;		/* a TLS error: no goodbye on close */
	char who[64];		/* the remote address, for log lines */
	char peer_cn[256];	/* verified client certificate's CN, or "" */
};

/* A plain transport on fd (kind TRANSPORT_UNIX or TRANSPORT_TCP). */
void transport_init_plain(struct transport *t, enum transport_kind kind,
    int fd);
/* A TLS transport on fd (accepting side).  0 or -ENOMEM; fd is not
 * closed on failure. */
int transport_init_tls(struct transport *t, struct tls_server *ts, int fd);
/*
 * Run the TLS handshake on loop; who names the client in log lines.
 * done(arg, 0) once it succeeded, done(arg, rc < 0) when it failed, the
 * client sent no handshake within the configured timeout, or it hung up
 * (after a log line); done is called from a callback of loop, never from
 * here.  The caller then uses or closes the transport.
 */
void transport_handshake_start(struct transport *t, struct ev_loop *loop,
    const char *who, transport_done_fn *done, void *arg);
/*
 * Read up to n bytes: the count, 0 at end of stream, -EAGAIN (see
 * read_wants_write), or another -errno (-EPROTO: a TLS error).
 */
ssize_t transport_read(struct transport *t, void *buf, size_t n);
/* Write up to n bytes: the count, -EAGAIN (see write_wants_read), -errno. */
ssize_t transport_write(struct transport *t, const void *buf, size_t n);
/* True if a read would return bytes already received (TLS buffering). */
bool transport_pending(const struct transport *t);
/* Stop the handshake, say goodbye (TLS, best effort) and close fd. */
void transport_close(struct transport *t);
/* The subject CN of the client certificate the handshake verified, or
 * NULL (plain, no certificate asked for, none sent). */
const char *transport_peer_cn(const struct transport *t);
/* "unix", "tcp" or "tls". */
const char *transport_kind_name(enum transport_kind k);

/*
 * A non-blocking TCP socket for numeric "HOST:PORT" (passive: to bind);
 * returns the fd with *ai to use and free, or -EINVAL / -errno.
 */
struct addrinfo;
int transport_tcp_socket(const char *hostport, bool passive,
    struct addrinfo **ai);

#endif
