/*
 * server_impl: the connection, listener and server structs shared by
 * server.c (connections: input, replies, output) and accept.c
 * (listeners, accepting, the penalties of failed logins).  Not a public
 * API: everything else uses server.h.
 */
#ifndef DISTKV_SERVER_IMPL_H
#define DISTKV_SERVER_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <ev.h>
#include <msgpack.h>

#include "handlers.h"
#include "penalty.h"
#include "server.h"
#include "transport.h"

#define container_of(p, type, member) \
	((type *)(void *)((char *)(p) - offsetof(type, member)))


#define SERVER_LOGIN_TRIES 5		/* failed logins before a close */
/* the Unix socket, the peer port, and 16 each of --listen(-insecure) */
#define SERVER_MAX_LISTENERS 34

struct conn {
	ev_io rio, wio;
	struct transport tr;	/* how its bytes travel (transport.h) */
	struct server *srv;
	uint8_t *in;
	size_t in_len, in_cap;
	msgpack_sbuffer out;
	size_t out_off;
	uint8_t *room_end;	/* conn_out_room's promise, checked */
	msgpack_packer pk;
	msgpack_zone zone;
	struct handlers_conn hs;
	struct entry *root;
	struct task *tasks;
	bool peer;		/* came in on the peer port */
	bool handshaking;	/* TLS: not greeted yet */
	bool reading;		/* rio active (off while output is full) */
	bool dirty;		/* on the flush list */
	bool want_pump;		/* some task waits for output room */
	bool input_held;	/* requests buffered while output was full */
	bool closing;		/* conn_end_after_reply */
	bool multi_pending;	/* conn_multi_begin: no reply for multi_seq yet */
	uint64_t multi_seq;
	unsigned login_failures;
	/*
	 * Replies past out_acked answer requests (seqs in unacked) whose
	 * changes are not durable yet; if the change log fails they are
	 * withheld and those requests get an error (server_log_failed).
	 */
	size_t out_acked;
	uint64_t *unacked;
	size_t nunacked, capunacked;
	struct sockaddr_storage addr;	/* peer port: the remote address */
	socklen_t addrlen;
	bool dead;
	struct conn *next, *prev;		/* all connections */
	struct conn *dnext;			/* flush list */
};

enum listen_kind { LISTEN_UNIX, LISTEN_PEER, LISTEN_TCP, LISTEN_TLS };

struct listener {
	int fd;
	ev_io io;
	enum listen_kind kind;
	bool listening;		/* listen(2) done (TCP clients: when ready) */
	bool paused;		/* out of descriptors: not accepting */
	ev_timer retry;		/* resume accepting after a pause */
	struct server *srv;
};

struct server {
	struct agent *a;
	struct listener lis[SERVER_MAX_LISTENERS];
	size_t nlis;
	struct tls_server *tls;	/* for LISTEN_TLS, or NULL */
	ev_prepare prep;
	ev_idle idle;		/* keeps the loop spinning while walks go on */
	struct conn *conns;
	struct conn *dirty;
	size_t nconns;
	bool draining;		/* server_drain: accept nothing more */
	bool log_failed;	/* the change log failed: stopping */
	ev_timer sweep;		/* silent client streams (5 s) */
	struct penalty_table pen;	/* failed peer_auth and logins */
};

/* server.c: a connection on fd from a listener of the given kind; addr
 * (may be NULL) keys the peer_auth and login penalties. */
int	server_conn_adopt(struct server *s, int fd, enum listen_kind kind,
	    const struct sockaddr_storage *addr, socklen_t addrlen);
/* accept.c: accept on l again (a descriptor was freed) */
void	accept_resume(struct listener *l);
/* accept.c: stop accepting everywhere (the fds stay open) */
void	accept_stop_all(struct server *s);

#endif
