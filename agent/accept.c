/*
 * accept: the listeners (the Unix socket, the peer port, the TCP and TLS
 * client ports), the accept loop with its pause when descriptors run
 * out, and the penalties that slow down failed logins and peer_auths.
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent.h"
#include "log.h"
#include "server_impl.h"

/*
 * Out of descriptors (or kernel memory): the pending connection stays in
 * the backlog and the listener would be readable at once again, so stop
 * watching it (no spin, no log flood) until a connection closes or a
 * second has passed.  One warning per episode.
 */
static void
listener_pause(struct listener *l, int err)
{
	struct ev_loop *loop = l->srv->a->loop;

	if (!l->paused)
		log_warn("accept: %s: not accepting %s connections until one "
		    "closes (%zu open; raise the limit with ulimit -n or "
		    "LimitNOFILE=)", strerror(err), l->kind == LISTEN_PEER ?
		    "peer" : "client", l->srv->nconns);
	l->paused = true;
	ev_io_stop(loop, &l->io);
	ev_timer_stop(loop, &l->retry);
	ev_timer_set(&l->retry, 1.0, 0.0);
	ev_timer_start(loop, &l->retry);
}

void
accept_resume(struct listener *l)
{
	struct ev_loop *loop = l->srv->a->loop;

	if (l->fd < 0 || ev_is_active(&l->io) || l->srv->draining)
		return;
	ev_timer_stop(loop, &l->retry);
	ev_io_start(loop, &l->io);
}

static void
listener_retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	accept_resume(container_of(w, struct listener, retry));
}

/* A login's key: 'u' and the uid on the Unix socket, else the address. */
static struct penalty *
login_penalty(struct conn *c, bool create)
{
	uint8_t k[16];
	uid_t uid;
	gid_t gid;

	if (conn_peer_cred(c, &uid, &gid) != 0) {
		if (!penalty_addr_key(&c->addr, k))
			return NULL;
	} else {
		memset(k, 0, sizeof(k));
		k[0] = 'u';
		memcpy(k + 4, &uid, sizeof(uid));
	}
	return penalty_lookup(&c->srv->pen, k, ev_now(c->srv->a->loop),
	    create);
}

/* The penalty slot of an address, or NULL. */
static struct penalty *
addr_penalty(struct server *s, const struct sockaddr_storage *ss,
    bool create)
{
	uint8_t k[16];

	return penalty_addr_key(ss, k) ? penalty_lookup(&s->pen, k,
	    ev_now(s->a->loop), create) : NULL;
}

double
conn_login_wait(struct conn *c)
{
	return penalty_wait(login_penalty(c, false), ev_now(c->srv->a->loop));
}

bool
conn_login_failed(struct conn *c)
{
	struct penalty *p = login_penalty(c, true);

	if (p != NULL)
		penalty_add(p, ev_now(c->srv->a->loop), true);
	if (++c->login_failures < SERVER_LOGIN_TRIES)
		return false;
	conn_end_after_reply(c);
	return true;
}

static bool
penalty_waiting(struct server *s, const struct sockaddr_storage *ss)
{
	return penalty_wait(addr_penalty(s, ss, false), ev_now(s->a->loop)) > 0;
}

void
conn_peer_auth_failed(struct conn *c)
{
	struct penalty *p = addr_penalty(c->srv, &c->addr, true);

	conn_end_after_reply(c);
	if (p != NULL)
		penalty_add(p, ev_now(c->srv->a->loop), false);
}

static void
server_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct listener *l = container_of(w, struct listener, io);
	struct server *s = l->srv;

	(void)loop;
	(void)revents;
	for (int i = 0; i < 64; i++) {
		struct sockaddr_storage addr;
		socklen_t addrlen = sizeof(addr);
		int fd = accept4(l->fd, (struct sockaddr *)&addr, &addrlen,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM)
				listener_pause(l, errno);
			else if (errno != EAGAIN && errno != EWOULDBLOCK &&
			    errno != EINTR)
				log_warn("accept: %s", strerror(errno));
			return;
		}
		if (l->paused) {
			l->paused = false;
			log_info("accepting %s connections again (%zu open)",
			    l->kind == LISTEN_PEER ? "peer" : "client",
			    s->nconns);
		}
		if (l->kind == LISTEN_PEER && penalty_waiting(s, &addr)) {
			/* still waiting after a failed peer_auth: nothing */
			close(fd);
			continue;
		}
		(void)server_conn_adopt(s, fd, l->kind, &addr, addrlen);
	}
}

/* A new listener of kind on fd (bound); NULL when the table is full. */
static struct listener *
listener_add(struct server *s, enum listen_kind kind, int fd)
{
	struct listener *l;

	if (s->nlis == SERVER_MAX_LISTENERS)
		return NULL;
	l = &s->lis[s->nlis++];
	memset(l, 0, sizeof(*l));
	l->fd = fd;
	l->kind = kind;
	l->srv = s;
	ev_timer_init(&l->retry, listener_retry_cb, 1.0, 0.0);
	ev_io_init(&l->io, server_accept_cb, fd, EV_READ);
	return l;
}

/* listen(2) and accept from now on. */
static int
listener_start(struct listener *l, int backlog)
{
	if (!l->listening && listen(l->fd, backlog) != 0)
		return -errno;
	l->listening = true;
	ev_io_start(l->srv->a->loop, &l->io);
	return 0;
}

int
server_open_clients(struct server *s)
{
	struct sockaddr_un sun;
	const char *path = s->a->cfg.socket_path;
	int fd, probe;

	/*
	 * The TCP client ports listen first: whoever sees the socket (the
	 * sign that the agent is up) may connect to them at once.  With
	 * the socket first, a test that connected right after it was
	 * refused on the TCP port now and then.
	 */
	for (size_t i = 0; i < s->nlis; i++) {
		struct listener *l = &s->lis[i];
		int rc;

		if ((l->kind == LISTEN_TCP || l->kind == LISTEN_TLS) &&
		    (rc = listener_start(l, 128)) != 0) {
			log_error("cannot listen on a TCP client port: %s",
			    strerror(-rc));
			return rc;
		}
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		log_error("socket path too long: %s", path);
		return -ENAMETOOLONG;
	}
	strcpy(sun.sun_path, path);
	/* replace only a stale socket, never another kind of file */
	{
		struct stat st;

		if (lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode)) {
			log_error("%s exists and is not a socket: refusing to "
			    "replace it (check --socket)", path);
			return -EEXIST;
		}
	}
	/* a live agent answers on the socket: never steal it */
	probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (probe >= 0) {
		if (connect(probe, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
			close(probe);
			log_error("another agent is listening on %s", path);
			return -EADDRINUSE;
		}
		close(probe);
	}
	unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0 ||
	    chmod(path, s->a->cfg.socket_mode) != 0 || listen(fd, 128) != 0) {
		int e = errno;

		log_error("cannot listen on %s: %s", path, strerror(e));
		close(fd);
		return -e;
	}
	if (listener_add(s, LISTEN_UNIX, fd) == NULL ||
	    listener_start(&s->lis[s->nlis - 1], 128) != 0) {
		close(fd);
		return -EMFILE;
	}
	return 0;
}

/* Bind a TCP listener; it listens (and accepts) from listener_start. */
static int
tcp_bind(struct server *s, const char *hostport, enum listen_kind kind,
    const char *what)
{
	struct addrinfo *ai;
	int fd, one = 1, rc;

	if ((fd = transport_tcp_socket(hostport, true, &ai)) < 0) {
		if (fd == -EINVAL)
			log_error("bad %s address '%s': use a numeric ADDR:PORT "
			    "(127.0.0.1:27586, [::1]:27586, 0.0.0.0:27586)",
			    what, hostport);
		return fd;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
		rc = -errno;
		log_error("cannot listen on the %s %s: %s%s", what, hostport,
		    strerror(errno), rc == -EADDRINUSE ? " (another program "
		    "has that port)" : "");
		close(fd);
		freeaddrinfo(ai);
		return rc;
	}
	freeaddrinfo(ai);
	if (listener_add(s, kind, fd) == NULL) {
		log_error("too many listeners (at most %d)",
		    SERVER_MAX_LISTENERS);
		close(fd);
		return -EMFILE;
	}
	return 0;
}

int
server_bind_clients_tcp(struct server *s, const char *hostport, bool tls)
{
	if (tls && s->tls == NULL)
		return -EINVAL;
	return tcp_bind(s, hostport, tls ? LISTEN_TLS : LISTEN_TCP,
	    tls ? "TLS client port" : "insecure TCP client port");
}

int
server_open_peers(struct server *s, const char *hostport)
{
	int rc;

	if ((rc = tcp_bind(s, hostport, LISTEN_PEER, "peer port")) != 0)
		return rc;
	if ((rc = listener_start(&s->lis[s->nlis - 1], 64)) != 0)
		log_error("cannot listen on the peer port %s: %s", hostport,
		    strerror(-rc));
	return rc;
}

/* Stop accepting everywhere (the fds stay open until server_close). */
void
accept_stop_all(struct server *s)
{
	for (size_t i = 0; i < s->nlis; i++) {
		ev_io_stop(s->a->loop, &s->lis[i].io);
		ev_timer_stop(s->a->loop, &s->lis[i].retry);
	}
}
