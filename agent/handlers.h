/*
 * handlers: the client actions of spec §2.5.  handlers_dispatch() takes one
 * decoded request map of a connection, checks the envelope and runs the
 * action; every reply goes through server.h's conn_reply*.
 */
#ifndef DISTKV_HANDLERS_H
#define DISTKV_HANDLERS_H

#include <stdbool.h>
#include <stdint.h>

#include <msgpack.h>

#include "acl.h"
#include "xlate.h"

struct conn;
struct entry;

/* Per-connection state of the dispatcher: seq order and login. */
struct handlers_conn {
	bool have_last;
	int64_t last;
	bool need_login;	/* an auth method was active at connect */
	bool logged_in;
	bool user_set;		/* a login succeeded: the user is fixed */
	/* a TCP/TLS client while no method is on (and no
	 * --listen-allow-anonymous): nothing but a login gets in */
	bool remote_no_method;
	bool need_peer_auth;	/* peer port with a cluster key */
	uint8_t challenge[32];	/* sent in the greeting, for peer_auth */
	bool dh_done;		/* diffie_hellman ran: dh_key holds the key */
	uint8_t dh_key[32];	/* shared key of the password method's boxes */
	struct acl_user acl;	/* the logged-in user's ACL binding */
	struct xlate_user conv;	/* its converter set (xlate.h) */
};

/* Send the greeting (spec §2.3) to a new connection; sets hc's login
 * state from the active auth method. */
void handlers_greet(struct conn *c, struct handlers_conn *hc);

void handlers_dispatch(struct conn *c, struct handlers_conn *hs,
    const msgpack_object *msg);

/*
 * Send one tree/watch item {seq, path, depth, value, tock, [chain]} for
 * entry e, its path shortened relative to base against *last (updated).
 * acl: the connection's binding if restricted (else NULL): an item it
 * hides is not sent, one it may not read is sent without its value.
 * conv: the connection's converter binding (or NULL): the value is
 * encoded for it; an item whose encoding fails carries {error} instead.
 */
void handlers_send_item(struct conn *c, uint64_t seq, struct entry *base,
    const struct entry **last, struct entry *e, unsigned nchain,
    const struct acl_user *acl, const struct xlate_user *conv);

/* The converter binding of a bound connection, else NULL (for tasks). */
const struct xlate_user *handlers_conv(const struct handlers_conn *hc);

/* The binding of a restricted connection, else NULL (for tasks). */
const struct acl_user *handlers_acl(const struct handlers_conn *hc);

#endif
