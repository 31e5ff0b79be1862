/*
 * serf: a client of the local Serf agent's RPC protocol (msgpack over
 * TCP, ../shared/serf-notes.md §1-§4), on the agent's libev loop.
 *
 * It connects in the background and keeps reconnecting with backoff
 * (100 ms doubling to 5 s) when the Serf agent is not there or goes away;
 * the caller keeps serving local clients meanwhile.  Once connected it
 * performs handshake (and auth with a key), opens one stream of user and
 * member events, and reads the member list.  Replies and stream records
 * are dispatched by Seq.  Input from the Serf agent is untrusted: framed
 * with proto_scan, every field type-checked, bounded buffers.
 *
 * Single-threaded; callbacks run from the loop, never re-entrantly from
 * inside serf_send_event.
 */
#ifndef DISTKV_SERF_H
#define DISTKV_SERF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

struct serf;

#define SERF_NAME_MAX 128
#define SERF_TAG_MAX 256

struct serf_member {
	char name[SERF_NAME_MAX + 1];
	char addr[64];			/* IPv4/IPv6 text of Addr */
	uint16_t port;
	char status[16];		/* alive, leaving, left, failed, none */
	char peer[SERF_TAG_MAX + 1];	/* the "distkv" tag ("" if none) */
};

/* Counters for the metrics (docs/operations.md, "Metrics"). */
struct serf_stats {
	uint64_t events_in;		/* user events received */
	uint64_t events_out;		/* handed to the Serf agent */
	uint64_t events_lost;		/* not sent: no connection, too big,
					 * output full */
	uint64_t events_rejected;	/* refused by the Serf agent */
};

struct serf_callbacks {
	/* A user event (any name: the caller filters). */
	void (*user_event)(void *arg, const char *name, size_t name_len,
	    const uint8_t *payload, size_t len, uint64_t ltime);
	/* The full member list: after each (re)connect and after member
	 * events (which are only hints, so the list is re-read). */
	void (*members)(void *arg, const struct serf_member *m, size_t n);
	/* Connected (stream open, members read) or lost. */
	void (*state)(void *arg, bool connected);
};

/*
 * Start connecting to rpc_addr ("127.0.0.1:7373").  auth_key may be NULL.
 * cb and arg are kept.  Returns 0 or -errno (bad address only: a missing
 * Serf agent is retried, not an error).
 */
int serf_open(struct ev_loop *loop, const char *rpc_addr, const char *auth_key,
    const struct serf_callbacks *cb, void *arg, struct serf **out);
void serf_close(struct serf *s);
bool serf_connected(const struct serf *s);
/*
 * Fire a user event (Coalesce false).  Returns 0 when handed to the RPC
 * connection, -ENOTCONN when not connected, -EMSGSIZE when name + payload
 * exceed the limit the agent was configured with (serf_set_size_limit).
 * A later RPC error for it is logged (the caller's catch-up repairs).
 */
int serf_send_event(struct serf *s, const char *name, const uint8_t *payload,
    size_t len);
/* The Serf agent's user_event_size_limit, for the size check above. */
void serf_set_size_limit(struct serf *s, size_t limit);
/*
 * serf_send_event's checks of a name and payload length against a size
 * limit, without a connection: 0, -EINVAL (bad name) or -EMSGSIZE.
 */
int serf_event_check(size_t limit, size_t nlen, size_t len);

/*
 * force-leave NODE with Prune (serf-notes §3): a failed node becomes left
 * and leaves the member lists at once.  Returns 0 when queued, -ENOTCONN,
 * -EINVAL; a refusal by the Serf agent is logged.
 */
int serf_force_leave(struct serf *s, const char *node);
/*
 * Re-read the member list (the members callback gets it) when a message
 * shows it is stale: Serf hands member events on 1-3 s late.  Nothing
 * while not connected; one request at a time.
 */
void serf_refresh_members(struct serf *s);
/* The counters above (all zero for NULL). */
void serf_get_stats(const struct serf *s, struct serf_stats *out);

#endif
