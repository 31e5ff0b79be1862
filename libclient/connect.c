/*
 * connect: distkv_connect_url (distkv.h): parse the URL, dial TCP within
 * the deadline, run the TLS handshake (tls.h), hand the socket to
 * client.c; and the per-thread text of why a connect failed.
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "client_internal.h"
#include "distkv.h"
#include "tls.h"

/* The reference's client port (spec §1.9 server.port). */
#define CONNECT_DEFAULT_PORT "27586"

static __thread char connect_err[512];

void
client_connect_err(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(connect_err, sizeof(connect_err), fmt, ap);
	va_end(ap);
}

const char *
distkv_connect_errmsg(void)
{
	return (connect_err);
}

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

/* Milliseconds left until deadline (<0: none): -1, or at least 1. */
static int
left_ms(long long deadline)
{
	long long left;

	if (deadline < 0)
		return (-1);
	left = deadline - now_ms();
	return (left < 1 ? 1 : left > 1000000000 ? 1000000000 : (int)left);
}

/*
 * "HOST[:PORT]" after the scheme: host (brackets of an IPv6 literal
 * removed) and port.  0 or DISTKV_EINVAL.
 */
static int
split_hostport(const char *s, char *host, size_t hcap, char *port,
    size_t pcap)
{
	const char *colon, *hend;
	size_t hl;

	if (*s == '[') {
		if ((hend = strchr(s, ']')) == NULL)
			return (DISTKV_EINVAL);
		s++;
		colon = hend[1] == ':' ? hend + 1 : NULL;
		if (hend[1] != '\0' && colon == NULL)
			return (DISTKV_EINVAL);
	} else {
		colon = strchr(s, ':');
		if (colon != NULL && strchr(colon + 1, ':') != NULL)
			return (DISTKV_EINVAL);	/* IPv6 needs brackets */
		hend = colon != NULL ? colon : s + strlen(s);
	}
	hl = (size_t)(hend - s);
	if (hl == 0 || hl >= hcap || strchr(s, '/') != NULL)
		return (DISTKV_EINVAL);
	memcpy(host, s, hl);
	host[hl] = '\0';
	if (colon == NULL)
		snprintf(port, pcap, "%s", CONNECT_DEFAULT_PORT);
	else if (colon[1] == '\0' || strlen(colon + 1) >= pcap ||
	    strspn(colon + 1, "0123456789") != strlen(colon + 1))
		return (DISTKV_EINVAL);
	else
		snprintf(port, pcap, "%s", colon + 1);
	return (0);
}

/* One address, non-blocking connect, within the deadline. */
static int
dial_one(const struct addrinfo *ai, long long deadline, int *fdp, int *err)
{
	struct pollfd pfd;
	socklen_t elen = sizeof(*err);
	int fd, rc;

	*err = 0;
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
	    0);
	if (fd < 0) {
		*err = errno;
		return (-1);
	}
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
		if (errno != EINPROGRESS) {
			*err = errno;
			close(fd);
			return (-1);
		}
		pfd.fd = fd;
		pfd.events = POLLOUT;
		do
			rc = poll(&pfd, 1, left_ms(deadline));
		while (rc < 0 && errno == EINTR);
		if (rc == 0) {
			close(fd);
			return (DISTKV_ETIMEDOUT);
		}
		if (rc < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, err,
		    &elen) != 0 || *err != 0) {
			if (*err == 0)
				*err = errno;
			close(fd);
			return (-1);
		}
	}
	*fdp = fd;
	return (0);
}

/* Resolve host and connect to the first address that answers. */
static int
dial(const char *host, const char *port, long long deadline, int *fdp)
{
	struct addrinfo hints, *res = NULL, *ai;
	int rc, err = 0, grc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG;
	if ((grc = getaddrinfo(host, port, &hints, &res)) != 0 ||
	    res == NULL) {
		client_connect_err("cannot resolve %s: %s", host,
		    gai_strerror(grc));
		return (DISTKV_ECONNECT);
	}
	rc = DISTKV_ECONNECT;
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if ((rc = dial_one(ai, deadline, fdp, &err)) == 0)
			break;
		if (rc == DISTKV_ETIMEDOUT)
			break;
		rc = DISTKV_ECONNECT;
	}
	freeaddrinfo(res);
	if (rc == DISTKV_ETIMEDOUT)
		client_connect_err("no answer from %s port %s within the "
		    "timeout", host, port);
	else if (rc != 0)
		client_connect_err("cannot connect to %s port %s: %s", host,
		    port, strerror(err));
	return (rc);
}

int
distkv_connect_url(const char *url, const struct distkv_tls_opts *tls,
    distkv **out)
{
	char host[256], port[8], why[512];
	struct tls_conn *t = NULL;
	const char *rest, *m;
	long long deadline;
	bool use_tls;
	int fd, rc, timeout = client_default_timeout_ms();

	*out = NULL;
	client_connect_err("%s", "");
	if (url == NULL || *url == '\0') {
		client_connect_err("empty URL");
		return (DISTKV_EINVAL);
	}
	if (strncmp(url, "unix:", 5) == 0 || strstr(url, "://") == NULL) {
		rest = strncmp(url, "unix:", 5) == 0 ? url + 5 : url;
		if (strncmp(rest, "//", 2) == 0)
			rest += 2;	/* unix:///run/x.sock */
		if (*rest == '\0') {
			client_connect_err("no socket path in %s", url);
			return (DISTKV_EINVAL);
		}
		return (distkv_connect(rest, out));
	}
	if (strncmp(url, "tcp://", 6) == 0)
		use_tls = false;
	else if (strncmp(url, "tls://", 6) == 0)
		use_tls = true;
	else {
		client_connect_err("unknown URL scheme in %s (unix:PATH, "
		    "tcp://HOST:PORT, tls://HOST:PORT)", url);
		return (DISTKV_EINVAL);
	}
	if (split_hostport(url + 6, host, sizeof(host), port,
	    sizeof(port)) != 0) {
		client_connect_err("bad address in %s (HOST:PORT, [IPv6]:PORT)",
		    url);
		return (DISTKV_EINVAL);
	}
	deadline = timeout < 0 ? -1 : now_ms() + timeout;
	if ((rc = dial(host, port, deadline, &fd)) != 0)
		return (rc);
	if (use_tls && (rc = tls_connect(fd, host, tls, left_ms(deadline), &t,
	    why, sizeof(why))) != 0) {
		client_connect_err("%s (%s port %s)", why, host, port);
		close(fd);
		return (rc);
	}
	if ((rc = client_adopt(fd, t, left_ms(deadline), out)) != 0) {
		if (distkv_connect_errmsg()[0] == '\0')
			client_connect_err("%s port %s: %s", host, port,
			    rc == DISTKV_ECONNECT ? "the agent closed the "
			    "connection before its greeting" :
			    distkv_strerror(rc));
		return (rc);
	}
	/* the cert method needs no secret beyond the handshake */
	if ((m = distkv_auth_method(*out)) != NULL && strcmp(m, "cert") == 0 &&
	    client_has_cert(*out))
		(void)distkv_login(*out, "cert", NULL);
	return (0);
}
