/*
 * auth_cert: the `cert` method (new; no reference client has it).  On a
 * TLS client port started with --tls-client-ca, the handshake verified
 * the client's certificate against that CA; the certificate's subject CN
 * names the user.  A record (nil, "auth", "cert", "user", NAME) lets the
 * holder of a certificate with CN NAME in.  No secret crosses the
 * connection: the TLS handshake is the proof.  Not on the Unix socket or
 * plain TCP, which have no certificate.
 *
 * Login: {action: "auth", typ: "cert", ident: NAME}; ident may be left
 * out (or "*"): the CN is the name, as the unix method does with uids.
 */
#include <stdio.h>
#include <string.h>

#include "agent.h"
#include "auth_method.h"
#include "handlers.h"
#include "handlers_internal.h"
#include "proto.h"
#include "server.h"
#include "transport.h"
#include "tree.h"

static const char *
cert_login(struct req *r, const msgpack_object *ident,
    const struct entry **found, char *buf, size_t cap)
{
	static const msgpack_object typ = { .type = MSGPACK_OBJECT_STR,
	    .via.str = { 4, "cert" } };
	const struct transport *t = conn_transport(r->c);
	const char *cn = transport_peer_cn(t);
	const struct entry *rec;
	msgpack_object id;

	if (t->kind != TRANSPORT_TLS)
		return "AuthFailedError: the cert method needs a TLS "
		    "connection with a client certificate";
	if (cn == NULL)
		return "AuthFailedError: no verified client certificate with "
		    "one CN on this connection (the agent verifies them only "
		    "with --tls-client-ca)";
	if (ident != NULL && !proto_str_eq(ident, "*") &&
	    !proto_str_eq(ident, cn)) {
		snprintf(buf, cap, "AuthFailedError: the client certificate "
		    "is for %s, not %.*s", cn, (int)(ident->via.str.size > 200 ?
		    200 : ident->via.str.size), ident->via.str.ptr);
		return buf;
	}
	id.type = MSGPACK_OBJECT_STR;
	id.via.str.ptr = cn;
	id.via.str.size = (uint32_t)strlen(cn);
	rec = auth_user_entry(r->a, &typ, &id);
	if (rec == NULL || !entry_has_value(rec)) {
		snprintf(buf, cap, "AuthFailedError: no cert user %s", cn);
		return buf;
	}
	*found = rec;		/* its ACL binding applies */
	return NULL;
}

static void
cert_set(struct req *r, const msgpack_object *ident)
{
	auth_set_generic(r, "cert", ident);
}

const struct auth_method auth_method_cert = {
	.name = "cert",
	.ident_optional = true,
	.login = cert_login,
	.set = cert_set,
	.get = auth_get_generic,
};
