/* tls: see tls.h. */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "tls.h"

struct tls_conn {
	SSL *ssl;
	bool client_cert;
	bool broken;		/* a fatal TLS error: no close_notify */
};

/* ---- SIGPIPE (see tls.h) ---- */

struct nopipe {
	sigset_t old;
	bool pending_before;
};

static void
nopipe_begin(struct nopipe *np)
{
	sigset_t set, pend;

	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	sigpending(&pend);
	np->pending_before = sigismember(&pend, SIGPIPE) == 1;
	pthread_sigmask(SIG_BLOCK, &set, &np->old);
}

static void
nopipe_end(struct nopipe *np)
{
	sigset_t set, pend;
	struct timespec zero = { 0, 0 };

	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	sigpending(&pend);
	/* ours, not one that was waiting before: swallow it */
	if (!np->pending_before && sigismember(&pend, SIGPIPE) == 1)
		(void)sigtimedwait(&set, NULL, &zero);
	pthread_sigmask(SIG_SETMASK, &np->old, NULL);
}

/* ---- errors ---- */

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

static const char *
ssl_reason(const char *dflt)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;

	return (r != NULL ? r : dflt);
}

/* Why the agent's certificate was refused, in words. */
static void
verify_failure(SSL *ssl, const char *host, char *err, size_t cap)
{
	long v = SSL_get_verify_result(ssl);

	if (v == X509_V_ERR_HOSTNAME_MISMATCH || v == X509_V_ERR_IP_ADDRESS_MISMATCH)
		snprintf(err, cap, "certificate verify failed: the agent's "
		    "certificate is not for %s (name mismatch)", host);
	else if (v != X509_V_OK)
		snprintf(err, cap, "certificate verify failed: %s",
		    X509_verify_cert_error_string(v));
	else
		snprintf(err, cap, "TLS handshake failed: %s",
		    ssl_reason("protocol error"));
}

/* ---- the handshake ---- */

static const char *
opt_or_env(const char *v, const char *env)
{
	const char *e;

	if (v != NULL && *v != '\0')
		return (v);
	e = getenv(env);
	return (e != NULL && *e != '\0' ? e : NULL);
}

/* The context of one connection: verification and our certificate. */
static int
make_ctx(const struct distkv_tls_opts *o, SSL_CTX **out, bool *client_cert,
    char *err, size_t cap)
{
	const char *ca = opt_or_env(o != NULL ? o->ca_file : NULL,
	    "DISTKV_TLS_CA");
	const char *cert = opt_or_env(o != NULL ? o->cert_file : NULL,
	    "DISTKV_TLS_CERT");
	const char *key = opt_or_env(o != NULL ? o->key_file : NULL,
	    "DISTKV_TLS_KEY");
	SSL_CTX *ctx;

	*out = NULL;
	*client_cert = false;
	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL)
		return (-ENOMEM);
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (ca != NULL ? SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1 :
	    SSL_CTX_set_default_verify_paths(ctx) != 1) {
		snprintf(err, cap, "cannot use the CA file %s: %s",
		    ca != NULL ? ca : "(system default)",
		    ssl_reason("unreadable"));
		goto bad;
	}
	if (cert == NULL && key != NULL) {
		snprintf(err, cap, "a client key (%s) without a client "
		    "certificate ($DISTKV_TLS_CERT, --tls-cert)", key);
		goto bad;
	}
	if (cert != NULL) {
		if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
			snprintf(err, cap, "cannot use the client certificate "
			    "%s: %s", cert, ssl_reason("unreadable"));
			goto bad;
		}
		if (SSL_CTX_use_PrivateKey_file(ctx, key != NULL ? key : cert,
		    SSL_FILETYPE_PEM) != 1 ||
		    SSL_CTX_check_private_key(ctx) != 1) {
			snprintf(err, cap, "cannot use the client key %s: %s",
			    key != NULL ? key : cert,
			    ssl_reason("it does not match the certificate"));
			goto bad;
		}
		*client_cert = true;
	}
	ERR_clear_error();
	*out = ctx;
	return (0);
bad:
	ERR_clear_error();
	SSL_CTX_free(ctx);
	return (DISTKV_EINVAL);
}

/* The name check: an IP literal against the IP SANs, else the DNS name
 * (and SNI). */
static int
set_host(SSL *ssl, const char *host)
{
	unsigned char a[16];

	SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (inet_pton(AF_INET, host, a) == 1 ||
	    inet_pton(AF_INET6, host, a) == 1)
		return (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl),
		    host) == 1 ? 0 : -ENOMEM);
	if (SSL_set_tlsext_host_name(ssl, host) != 1 ||
	    SSL_set1_host(ssl, host) != 1)
		return (-ENOMEM);
	return (0);
}

int
tls_connect(int fd, const char *host, const struct distkv_tls_opts *o,
    int timeout_ms, struct tls_conn **out, char *err, size_t errcap)
{
	long long deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
	struct tls_conn *t;
	struct nopipe np;
	SSL_CTX *ctx;
	int rc, r;

	*out = NULL;
	err[0] = '\0';
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return (-ENOMEM);
	if ((rc = make_ctx(o, &ctx, &t->client_cert, err, errcap)) != 0) {
		free(t);
		return (rc);
	}
	t->ssl = SSL_new(ctx);
	SSL_CTX_free(ctx);		/* the SSL holds its own reference */
	if (t->ssl == NULL || SSL_set_fd(t->ssl, fd) != 1 ||
	    set_host(t->ssl, host) != 0) {
		rc = -ENOMEM;
		goto fail;
	}
	for (;;) {
		struct pollfd pfd;
		int e, wait = -1;

		ERR_clear_error();
		nopipe_begin(&np);
		r = SSL_connect(t->ssl);
		nopipe_end(&np);
		if (r == 1)
			break;
		e = SSL_get_error(t->ssl, r);
		if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
			t->broken = true;
			if (e == SSL_ERROR_SYSCALL || e == SSL_ERROR_ZERO_RETURN)
				snprintf(err, errcap, "TLS handshake failed: the "
				    "agent closed the connection (is it a TLS "
				    "port?)");
			else
				verify_failure(t->ssl, host, err, errcap);
			rc = DISTKV_ETLS;
			goto fail;
		}
		if (deadline >= 0) {
			long long left = deadline - now_ms();

			if (left <= 0) {
				snprintf(err, errcap, "TLS handshake: no answer "
				    "within the timeout");
				rc = DISTKV_ETIMEDOUT;
				goto fail;
			}
			wait = left > INT_MAX ? INT_MAX : (int)left;
		}
		pfd.fd = fd;
		pfd.events = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
		if (poll(&pfd, 1, wait) < 0 && errno != EINTR) {
			rc = -errno;
			goto fail;
		}
	}
	ERR_clear_error();
	*out = t;
	return (0);
fail:
	ERR_clear_error();
	tls_close(t);
	return (rc);
}

bool
tls_has_client_cert(const struct tls_conn *t)
{
	return (t != NULL && t->client_cert);
}

/* ---- after the handshake ---- */

static ssize_t
io_error(struct tls_conn *t, int r, bool *want_write, char *err,
    size_t errcap)
{
	int e = SSL_get_error(t->ssl, r), sys = errno;

	switch (e) {
	case SSL_ERROR_WANT_READ:
		return (-EAGAIN);
	case SSL_ERROR_WANT_WRITE:
		if (want_write != NULL)
			*want_write = true;
		return (-EAGAIN);
	case SSL_ERROR_ZERO_RETURN:
		return (0);
	case SSL_ERROR_SYSCALL:
		ERR_clear_error();
		if (sys == EINTR)
			return (-EINTR);
		t->broken = true;
		return (sys != 0 ? -sys : 0);
	default:
		t->broken = true;
		/* e.g. "tlsv13 alert certificate required": the agent
		 * refused our certificate after the handshake (TLS 1.3) */
		if (err != NULL)
			snprintf(err, errcap, "the agent ended the TLS "
			    "connection: %s", ssl_reason("protocol error"));
		ERR_clear_error();
		return (-EPROTO);
	}
}

ssize_t
tls_read(struct tls_conn *t, void *buf, size_t n, bool *want_write,
    char *err, size_t errcap)
{
	struct nopipe np;
	int r;

	*want_write = false;
	ERR_clear_error();
	/* a read may answer a key update: it may write */
	nopipe_begin(&np);
	r = SSL_read(t->ssl, buf, n > INT_MAX ? INT_MAX : (int)n);
	nopipe_end(&np);
	return (r > 0 ? r : io_error(t, r, want_write, err, errcap));
}

ssize_t
tls_write(struct tls_conn *t, const void *buf, size_t n)
{
	struct nopipe np;
	int r;

	ERR_clear_error();
	nopipe_begin(&np);
	r = SSL_write(t->ssl, buf, n > INT_MAX ? INT_MAX : (int)n);
	nopipe_end(&np);
	return (r > 0 ? r : io_error(t, r, NULL, NULL, 0));
}

bool
tls_pending(const struct tls_conn *t)
{
	return (t != NULL && SSL_has_pending(t->ssl) == 1);
}

void
tls_close(struct tls_conn *t)
{
	struct nopipe np;

	if (t == NULL)
		return;
	if (t->ssl != NULL) {
		if (!t->broken && SSL_is_init_finished(t->ssl)) {
			nopipe_begin(&np);
			(void)SSL_shutdown(t->ssl);
			nopipe_end(&np);
		}
		ERR_clear_error();
		SSL_free(t->ssl);
	}
	free(t);
}
