/*
 * http: the gateway's HTTP front, on libmicrohttpd.
 *
 * MHD runs a pool of polling threads (epoll, one per CPU, at most 4), each
 * serving many connections.  They answer what needs no agent round trip
 * themselves (keys_answer_local) and queue the rest for `threads` worker
 * threads, which block on the agent (libdistkv, through keys.c) while the
 * connection is suspended: a slow write never holds up other clients.
 * A long-poll watch (GET wait=true) sends its headers at once (chunked),
 * then its content reader suspends the connection
 * (MHD_suspend_connection) until the history has the event and resumes
 * it: hundreds or thousands of waiting watches hold a file descriptor and
 * a small struct each, no thread.
 *
 * Limits: request headers are bounded by MHD's per-connection memory
 * (MHD answers 431 itself), bodies by max_body (etcd error 210, nothing
 * written), connections by max_conns (MHD refuses more).
 *
 * Routes: /v2/keys[/...], /version, /health, /v2/members, /v2/machines;
 * anything else 404 as Go's net/http says it.  docs/etcd.md.
 */
#ifndef DKV_ETCD_HTTP_H
#define DKV_ETCD_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "history.h"
#include "keys.h"

struct http_cfg {
	const char *listen;		/* "ADDR:PORT", "[V6]:PORT"; port 0: any */
	unsigned threads;		/* agent workers */
	size_t max_body;
	unsigned max_conns;
	size_t conn_memory;		/* MHD per-connection memory (headers) */
	const char *advertise;		/* client URL for members/machines;
					 * NULL: http://ADDR:PORT as bound */
	const char *name;		/* member name */
	struct keys *keys;
	struct history *history;
};

struct http;

/* Bind and start serving.  Returns 0 or -errno (bad address, busy port). */
int http_start(const struct http_cfg *cfg, struct http **out);
/* The bound port (useful with port 0) and the advertised URL. */
unsigned http_port(const struct http *s);
const char *http_url(const struct http *s);
/* Stop: ends waiting watches first (history_stop_waiters), then MHD. */
void http_stop(struct http *s);

#endif
