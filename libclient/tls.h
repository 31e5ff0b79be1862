/*
 * tls: the client side of tls:// connections in libdistkv (OpenSSL).
 * Not installed; distkv.h's distkv_connect_url is the public face.
 *
 * The handshake blocks the caller up to a deadline (polling the
 * non-blocking socket), as every libdistkv connect does.  Afterwards
 * client.c moves bytes through tls_read/tls_write, which never block;
 * the socket stays the one to poll (distkv_fd).
 *
 * OpenSSL writes to the socket with write(2): a vanished agent would
 * raise SIGPIPE and kill the application.  Every call that may write
 * holds SIGPIPE blocked for the calling thread and swallows a pending
 * one, so an application that never heard of SIGPIPE is safe.
 */
#ifndef DISTKV_CLIENT_TLS_H
#define DISTKV_CLIENT_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "distkv.h"

struct tls_conn;

/*
 * Handshake on fd (connected, non-blocking) with the agent at host (its
 * name or IP literal, checked against the certificate), within
 * timeout_ms (<0: none).  CA, client certificate and key from o, else
 * $DISTKV_TLS_CA, $DISTKV_TLS_CERT, $DISTKV_TLS_KEY; no CA: the system's
 * store.  Returns 0, DISTKV_ETLS (refused; err says why: "certificate
 * verify failed: ..."), DISTKV_EINVAL (an unusable file; err says
 * which), DISTKV_ETIMEDOUT, -ENOMEM.  fd stays the caller's.
 */
int tls_connect(int fd, const char *host, const struct distkv_tls_opts *o,
    int timeout_ms, struct tls_conn **out, char *err, size_t errcap);
/* True if a client certificate was presented (for the cert login). */
bool tls_has_client_cert(const struct tls_conn *t);
/*
 * Read up to n bytes: the count, 0 at end of stream, -EAGAIN (poll for
 * input, or for output if *want_write), -EPROTO (a TLS error; err, if
 * not NULL, says which), or another -errno.
 */
ssize_t tls_read(struct tls_conn *t, void *buf, size_t n, bool *want_write,
    char *err, size_t errcap);
/* Write up to n bytes: the count, -EAGAIN, -EPROTO, -errno. */
ssize_t tls_write(struct tls_conn *t, const void *buf, size_t n);
/* Decrypted bytes wait inside the TLS layer: read before polling. */
bool tls_pending(const struct tls_conn *t);
/* Say goodbye if it fits now, and free.  NULL is a no-op.  Not fd. */
void tls_close(struct tls_conn *t);

#endif
