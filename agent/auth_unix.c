/* auth_unix: see auth_unix.h. */
#include <pwd.h>
#include <stdio.h>
#include <string.h>

#include <stdlib.h>

#include "agent.h"
#include "auth_method.h"
#include "auth_unix.h"
#include "handlers.h"
#include "handlers_internal.h"
#include "proto.h"
#include "server.h"
#include "tree.h"

void
auth_unix_names(uid_t uid, char name[256], char num[24])
{
	struct passwd pw, *res = NULL;
	char buf[1024];

	name[0] = '\0';
	snprintf(num, 24, "%lu", (unsigned long)uid);
	if (getpwuid_r(uid, &pw, buf, sizeof(buf), &res) == 0 && res != NULL &&
	    strlen(res->pw_name) < 256)
		strcpy(name, res->pw_name);
}

/* ---- the method (auth_method.h) ---- */

/*
 * The unix method: the connecting uid, by login name or number, must have
 * a record; ident, if given and not "*", must be one of those names.
 * NULL on success, else the error text (in buf).
 */
static const char *
unix_login(struct req *r, const msgpack_object *ident,
    const struct entry **found, char *buf, size_t cap)
{
	static const msgpack_object typ = { .type = MSGPACK_OBJECT_STR,
	    .via.str = { 4, "unix" } };
	char name[256], num[24];
	const char *cand[2] = { name, num };
	msgpack_object id;
	uid_t uid;
	gid_t gid;

	if (conn_peer_cred(r->c, &uid, &gid) != 0)
		return "AuthFailedError: the unix method works only on the "
		    "local Unix socket, not over TCP or TLS (use cert or "
		    "password there)";
	auth_unix_names(uid, name, num);
	for (int i = 0; i < 2; i++) {
		const struct entry *rec;

		if (cand[i][0] == '\0')
			continue;
		if (ident != NULL && !proto_str_eq(ident, "*") &&
		    !proto_str_eq(ident, cand[i]))
			continue;
		id.type = MSGPACK_OBJECT_STR;
		id.via.str.ptr = cand[i];
		id.via.str.size = (uint32_t)strlen(cand[i]);
		rec = auth_user_entry(r->a, &typ, &id);
		if (rec != NULL && entry_has_value(rec)) {
			*found = rec;
			return NULL;
		}
	}
	snprintf(buf, cap, "AuthFailedError: uid %s%s%s%s has no unix user%s",
	    num, name[0] ? " (" : "", name, name[0] ? ")" : "",
	    ident != NULL && !proto_str_eq(ident, "*") ? " by that name" : "");
	return buf;
}

static void
unix_set(struct req *r, const msgpack_object *ident)
{
	auth_set_generic(r, "unix", ident);
}

const struct auth_method auth_method_unix = {
	.name = "unix",
	.ident_optional = true,
	.login = unix_login,
	.set = unix_set,
	.get = auth_get_generic,
};
