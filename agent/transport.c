/* transport: see transport.h. */
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "log.h"
#include "hostport.h"
#include "transport.h"

#define container_of(p, type, member) \
	((type *)(void *)((char *)(p) - offsetof(type, member)))

struct tls_server {
	SSL_CTX *ctx;
	double handshake_timeout;
	bool verify_clients;
};

/* ---- configuration ---- */

/* The reason of the newest OpenSSL error ("no start line"), or dflt. */
static const char *
ssl_reason(const char *dflt)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;

	return r != NULL ? r : dflt;
}

/* A file OpenSSL is about to read: a clear error if it cannot be read. */
static int
check_readable(const char *what, const char *path, char *err, size_t cap)
{
	FILE *f = fopen(path, "r");

	if (f == NULL) {
		snprintf(err, cap, "cannot read %s %s: %s", what, path,
		    strerror(errno));
		return -EINVAL;
	}
	fclose(f);
	return 0;
}

int
tls_server_new(const char *cert, const char *key, const char *client_ca,
    double handshake_timeout, char *err, size_t errcap,
    struct tls_server **out)
{
	struct tls_server *ts;
	SSL_CTX *ctx = NULL;
	X509 *x;
	int rc = -EINVAL;

	*out = NULL;
	err[0] = '\0';
	if ((rc = check_readable("--tls-cert", cert, err, errcap)) != 0 ||
	    (rc = check_readable("--tls-key", key, err, errcap)) != 0 ||
	    (client_ca != NULL && (rc = check_readable("--tls-client-ca",
	    client_ca, err, errcap)) != 0))
		return rc;
	if ((ts = calloc(1, sizeof(*ts))) == NULL ||
	    (ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		free(ts);
		return -ENOMEM;
	}
	ERR_clear_error();
	rc = -EINVAL;
	/* TLS 1.0 and 1.1 are broken; nothing of ours speaks them */
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/*
	 * No renegotiation (a client could make us do handshakes at will),
	 * an EOF without close_notify is a plain end of stream (the
	 * protocol has its own framing), no session tickets (nothing
	 * resumes: every connection logs in again).
	 */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_TICKET);
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	/* the output buffer may move between retries (realloc, compaction) */
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		snprintf(err, errcap, "--tls-cert %s: not a PEM certificate "
		    "(chain): %s", cert, ssl_reason("unreadable"));
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		unsigned long e = ERR_peek_last_error();

		/* OpenSSL checks the pair while loading the key */
		if (ERR_GET_LIB(e) == ERR_LIB_X509 &&
		    ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH)
			snprintf(err, errcap, "--tls-key %s does not match the "
			    "certificate in --tls-cert %s", key, cert);
		else
			snprintf(err, errcap, "--tls-key %s: not a PEM private "
			    "key: %s", key, ssl_reason("unreadable"));
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(err, errcap, "--tls-key %s does not match the "
		    "certificate in --tls-cert %s", key, cert);
		goto fail;
	}
	if ((x = SSL_CTX_get0_certificate(ctx)) != NULL &&
	    X509_cmp_current_time(X509_get0_notAfter(x)) < 0)
		log_warn("--tls-cert %s has expired: clients will refuse it",
		    cert);
	if (client_ca != NULL) {
		STACK_OF(X509_NAME) *names;

		if (SSL_CTX_load_verify_locations(ctx, client_ca, NULL) != 1 ||
		    (names = SSL_load_client_CA_file(client_ca)) == NULL) {
			snprintf(err, errcap, "--tls-client-ca %s: no PEM CA "
			    "certificate in it: %s", client_ca,
			    ssl_reason("unreadable"));
			goto fail;
		}
		/* the names tell clients which certificate to send */
		SSL_CTX_set_client_CA_list(ctx, names);
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER |
		    SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
		ts->verify_clients = true;
	}
	ERR_clear_error();
	ts->ctx = ctx;
	ts->handshake_timeout = handshake_timeout;
	*out = ts;
	return 0;
fail:
	ERR_clear_error();
	SSL_CTX_free(ctx);
	free(ts);
	return rc;
}

void
tls_server_free(struct tls_server *ts)
{
	if (ts == NULL)
		return;
	SSL_CTX_free(ts->ctx);
	free(ts);
}

/* ---- connections ---- */

const char *
transport_kind_name(enum transport_kind k)
{
	return k == TRANSPORT_UNIX ? "unix" : k == TRANSPORT_TCP ? "tcp" :
	    "tls";
}

void
transport_init_plain(struct transport *t, enum transport_kind kind, int fd)
{
	memset(t, 0, sizeof(*t));
	t->kind = kind;
	t->fd = fd;
}

int
transport_init_tls(struct transport *t, struct tls_server *ts, int fd)
{
	SSL *ssl;

	transport_init_plain(t, TRANSPORT_TLS, fd);
	if ((ssl = SSL_new(ts->ctx)) == NULL || SSL_set_fd(ssl, fd) != 1) {
		SSL_free(ssl);
		ERR_clear_error();
		return -ENOMEM;
	}
	SSL_set_accept_state(ssl);
	t->ssl = ssl;
	t->timeout = ts->handshake_timeout;
	return 0;
}

/*
 * Why the handshake or a record failed, in words: a refused client
 * certificate names the verification error ("certificate has
 * expired"), anything else OpenSSL's reason ("wrong version number"
 * for plaintext, "packet length too long" for garbage).
 */
static void
tls_failure(SSL *ssl, char *buf, size_t cap)
{
	long v = SSL_get_verify_result(ssl);

	if (v != X509_V_OK)
		snprintf(buf, cap, "client certificate refused: %s",
		    X509_verify_cert_error_string(v));
	else
		snprintf(buf, cap, "%s", ssl_reason("protocol error"));
	ERR_clear_error();
}

/* The verified client certificate's one subject CN, as UTF-8. */
static void
record_peer_cn(struct transport *t)
{
	SSL *ssl = t->ssl;
	X509 *x = SSL_get0_peer_certificate(ssl);
	X509_NAME *nm;
	ASN1_STRING *s;
	unsigned char *u = NULL;
	int i, n;

	t->peer_cn[0] = '\0';
	if (x == NULL || SSL_get_verify_result(ssl) != X509_V_OK ||
	    (nm = X509_get_subject_name(x)) == NULL)
		return;
	/* two CNs: which one is the user?  Neither. */
	if ((i = X509_NAME_get_index_by_NID(nm, NID_commonName, -1)) < 0 ||
	    X509_NAME_get_index_by_NID(nm, NID_commonName, i) >= 0)
		return;
	s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(nm, i));
	n = ASN1_STRING_to_UTF8(&u, s);
	if (n > 0 && (size_t)n < sizeof(t->peer_cn) &&
	    memchr(u, '\0', (size_t)n) == NULL) {
		memcpy(t->peer_cn, u, (size_t)n);
		t->peer_cn[n] = '\0';
	}
	OPENSSL_free(u);
}

static void
hs_finish(struct transport *t, int rc)
{
	ev_io_stop(t->loop, &t->hio);
	ev_timer_stop(t->loop, &t->htimer);
	t->done(t->arg, rc);
}

/* Wait for the socket to become readable or writable, as OpenSSL asks. */
static void
hs_wait(struct transport *t, int events)
{
	if (ev_is_active(&t->hio) && (t->hio.events & (EV_READ | EV_WRITE)) ==
	    events)
		return;
	ev_io_stop(t->loop, &t->hio);
	ev_io_set(&t->hio, t->fd, events);
	ev_io_start(t->loop, &t->hio);
}

static void
hs_step(struct transport *t)
{
	char why[256];
	int r, e;

	ERR_clear_error();
	if ((r = SSL_do_handshake(t->ssl)) == 1) {
		record_peer_cn(t);
		log_debug("TLS handshake with %s done (%s%s%s)", t->who,
		    SSL_get_version(t->ssl), t->peer_cn[0] ? ", client " : "",
		    t->peer_cn);
		hs_finish(t, 0);
		return;
	}
	switch ((e = SSL_get_error(t->ssl, r))) {
	case SSL_ERROR_WANT_READ:
		hs_wait(t, EV_READ);
		return;
	case SSL_ERROR_WANT_WRITE:
		hs_wait(t, EV_WRITE);
		return;
	case SSL_ERROR_ZERO_RETURN:
	case SSL_ERROR_SYSCALL:
		if (e == SSL_ERROR_SYSCALL && errno == EINTR)
			return;	/* the watcher comes back */
		t->broken = true;
		ERR_clear_error();
		log_info("TLS handshake with %s: the client hung up", t->who);
		hs_finish(t, -ECONNRESET);
		return;
	default:
		t->broken = true;
		tls_failure(t->ssl, why, sizeof(why));
		/* a refused certificate (ours by the client: an alert) is
		 * worth the operator's attention; scanners and plaintext
		 * clients ("wrong version number") are not */
		if (strstr(why, "certificate") != NULL ||
		    strstr(why, "alert") != NULL)
			log_warn("TLS handshake with %s failed: %s", t->who, why);
		else
			log_info("TLS handshake with %s failed: %s", t->who, why);
		hs_finish(t, -EPROTO);
	}
}

static void
hs_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	hs_step(container_of(w, struct transport, hio));
}

static void
hs_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct transport *t = container_of(w, struct transport, htimer);

	(void)loop;
	(void)revents;
	t->broken = true;
	log_info("TLS handshake with %s: not done after %.1f s "
	    "(--tls-handshake-timeout): closed", t->who, t->timeout);
	hs_finish(t, -ETIMEDOUT);
}

void
transport_handshake_start(struct transport *t, struct ev_loop *loop,
    const char *who, transport_done_fn *done, void *arg)
{
	t->loop = loop;
	t->done = done;
	t->arg = arg;
	snprintf(t->who, sizeof(t->who), "%s", who);
	/* the client speaks first (ClientHello): nothing to do before */
	ev_io_init(&t->hio, hs_io_cb, t->fd, EV_READ);
	ev_io_start(loop, &t->hio);
	ev_timer_init(&t->htimer, hs_timeout_cb, t->timeout, 0.0);
	ev_timer_start(loop, &t->htimer);
}

/* After a failed SSL_read/SSL_write: -EAGAIN, 0 (EOF) or an error. */
static ssize_t
tls_io_error(struct transport *t, int r, bool reading)
{
	char why[256];
	int e = SSL_get_error(t->ssl, r);

	switch (e) {
	case SSL_ERROR_WANT_READ:
		if (!reading)
			t->write_wants_read = true;
		return -EAGAIN;
	case SSL_ERROR_WANT_WRITE:
		if (reading)
			t->read_wants_write = true;
		return -EAGAIN;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		e = errno;
		ERR_clear_error();
		if (e == EINTR)
			return -EINTR;
		t->broken = true;
		return e != 0 ? -e : reading ? 0 : -EPIPE;
	default:
		t->broken = true;
		tls_failure(t->ssl, why, sizeof(why));
		log_info("TLS connection %s: %s: closing", t->who, why);
		return -EPROTO;
	}
}

ssize_t
transport_read(struct transport *t, void *buf, size_t n)
{
	ssize_t r;
	int k;

	if (t->kind != TRANSPORT_TLS) {
		r = read(t->fd, buf, n);
		return r >= 0 ? r : -errno;
	}
	t->read_wants_write = false;
	ERR_clear_error();
	k = SSL_read(t->ssl, buf, n > INT_MAX ? INT_MAX : (int)n);
	return k > 0 ? k : tls_io_error(t, k, true);
}

ssize_t
transport_write(struct transport *t, const void *buf, size_t n)
{
	ssize_t r;
	int k;

	if (t->kind != TRANSPORT_TLS) {
		r = send(t->fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		return r >= 0 ? r : -errno;
	}
	t->write_wants_read = false;
	ERR_clear_error();
	k = SSL_write(t->ssl, buf, n > INT_MAX ? INT_MAX : (int)n);
	return k > 0 ? k : tls_io_error(t, k, false);
}

bool
transport_pending(const struct transport *t)
{
	return t->kind == TRANSPORT_TLS && SSL_has_pending(t->ssl) == 1;
}

void
transport_close(struct transport *t)
{
	if (t->loop != NULL) {
		ev_io_stop(t->loop, &t->hio);
		ev_timer_stop(t->loop, &t->htimer);
	}
	if (t->ssl != NULL) {
		/* close_notify, if it fits into the socket now; no waiting */
		if (!t->broken && SSL_is_init_finished((SSL *)t->ssl))
			(void)SSL_shutdown(t->ssl);
		ERR_clear_error();
		SSL_free(t->ssl);
		t->ssl = NULL;
	}
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
}

const char *
transport_peer_cn(const struct transport *t)
{
	return t->kind == TRANSPORT_TLS && t->peer_cn[0] != '\0' ?
	    t->peer_cn : NULL;
}

int
transport_tcp_socket(const char *hostport, bool passive, struct addrinfo **out)
{
	struct addrinfo *ai;
	int fd, rc;

	*out = NULL;
	if (hostport_resolve(hostport, passive, &ai) != 0)
		return -EINVAL;
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd < 0) {
		rc = -errno;
		freeaddrinfo(ai);
		return rc;
	}
	*out = ai;
	return fd;
}
