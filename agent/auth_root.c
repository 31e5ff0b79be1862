/*
 * auth_root: the `root` method (spec §4.3): the one user "*", no secret;
 * the login's data must be an empty map.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "auth_method.h"
#include "handlers.h"
#include "handlers_internal.h"
#include "proto.h"
#include "server.h"
#include "tree.h"

static const char *
root_login(struct req *r, const msgpack_object *ident,
    const struct entry **rec, char *buf, size_t cap)
{
	(void)ident;
	(void)rec;
	(void)buf;
	(void)cap;
	if (!auth_data_empty(proto_map_get(r->msg, "data")))
		return "AuthFailedError: the root method takes no data";
	return NULL;
}

static void
root_set(struct req *r, const msgpack_object *ident)
{
	if (!proto_str_eq(ident, "*")) {
		conn_reply_error(r->c, r->seq, "The root method's ident is \"*\"");
		return;
	}
	if (!auth_data_empty(proto_map_get(r->msg, "data"))) {
		conn_reply_error(r->c, r->seq, "The root method takes no data");
		return;
	}
	auth_set_generic(r, "root", ident);
}

const struct auth_method auth_method_root = {
	.name = "root",
	.login = root_login,
	.set = root_set,
	.get = auth_get_generic,
};
