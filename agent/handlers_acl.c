/* handlers_acl: test_acl (spec §4.7) and get_shm, the actions about what
 * a login may see; the checks themselves are acl.c's. */
#include <stdio.h>
#include <string.h>

#include "acl.h"
#include "agent.h"
#include "handlers.h"
#include "proto.h"
#include "server.h"

#include "handlers_internal.h"

static void
reply_access(struct req *r, const struct acl_pos *p, bool letters)
{
	msgpack_packer *pk = conn_reply(r->c, r->seq, 1, true);
	const char *s;
	size_t n;

	pack_key(pk, "access");
	if (p == NULL)
		msgpack_pack_false(pk);
	else if (letters && acl_result(p, &s, &n))
		msgpack_pack_str_with_body(pk, s, n);
	else
		msgpack_pack_true(pk);
}

/*
 * test_acl {path, [mode], [acl]}: as the reference answers.  Without acl:
 * whether the caller's own ACL allows 'a' at path (the letters there if
 * so; an unrestricted caller gets true).  With acl: whether the caller
 * may use mode at path and that ACL allows it: false, or its letters
 * when the caller's own ACL allows 'a' there, else true.
 */
void
act_test_acl(struct req *r)
{
	const msgpack_object *mo = proto_map_get(r->msg, "mode");
	const msgpack_object *ao = proto_map_get(r->msg, "acl");
	const msgpack_object *path = proto_map_get(r->msg, "path");
	const struct acl_user *own = handlers_acl(r->hc);
	struct acl_user other;
	struct acl_pos p;
	struct entry *e;
	char mode = 'x', err[1200];
	bool may_read_acl = false;

	if (mo != NULL && mo->type != MSGPACK_OBJECT_NIL) {
		if (mo->type != MSGPACK_OBJECT_STR || mo->via.str.size != 1 ||
		    strchr("arwcdxenW", mo->via.str.ptr[0]) == NULL) {
			conn_reply_error(r->c, r->seq,
			    "mode must be one of the letters arwcdxen or W");
			return;
		}
		mode = mo->via.str.ptr[0];
	}
	if (ao != NULL && ao->type != MSGPACK_OBJECT_NIL &&
	    (ao->type != MSGPACK_OBJECT_STR || ao->via.str.size == 0 ||
	    ao->via.str.size > ACL_MAX_NAME)) {
		conn_reply_error(r->c, r->seq, "acl must be an ACL's name");
		return;
	}
	if (ao != NULL && ao->type == MSGPACK_OBJECT_NIL)
		ao = NULL;
	/* validates the path; test_acl creates nothing */
	if (!req_path(r, false, false, &e))
		return;
	if (own != NULL) {
		if (!acl_check_path(r->a, own, conn_root(r->c), path, true,
		    ao == NULL ? 'a' : mode, &p, err, sizeof(err))) {
			reply_access(r, NULL, false);
			return;
		}
		if (ao == NULL) {
			reply_access(r, &p, true);
			return;
		}
		may_read_acl = acl_allows(&p, 'a');
	} else if (ao == NULL) {
		reply_access(r, &p, false);	/* unrestricted */
		return;
	}
	memset(&other, 0, sizeof(other));
	other.restricted = true;
	other.name_len = (uint16_t)ao->via.str.size;
	memcpy(other.name, ao->via.str.ptr, ao->via.str.size);
	acl_pos_init(&p, r->a, &other);
	if (p.pat.n == 0) {
		conn_reply_error(r->c, r->seq, "No such ACL: %s", other.name);
		return;
	}
	if (!acl_check_path(r->a, &other, conn_root(r->c), path, true, mode,
	    &p, err, sizeof(err))) {
		reply_access(r, NULL, false);
		return;
	}
	if (!may_read_acl)
		acl_block(&p, 'a');
	reply_access(r, &p, acl_allows(&p, 'a'));
}

/*
 * get_shm: where local readers map the tree, for a login that may read
 * all of it.  The region cannot filter by user, so a connection bound to
 * an ACL is refused and its library reads over the socket instead.
 */
void
act_get_shm(struct req *r)
{
	msgpack_packer *pk;

	if (r->hc->acl.restricted) {
		conn_reply_error(r->c, r->seq, "The shared-memory region holds "
		    "the whole tree: not given to a login bound to ACL %s",
		    r->hc->acl.name);
		return;
	}
	if (r->hc->conv.bound) {
		conn_reply_error(r->c, r->seq, "The shared-memory region holds "
		    "the stored form: not given to a login bound to converter "
		    "set %s", r->hc->conv.name);
		return;
	}
	if (!handlers_shm_allowed(r->c)) {
		conn_reply_error(r->c, r->seq,
		    "This agent has no shared-memory region for this connection");
		return;
	}
	pk = conn_reply(r->c, r->seq, 1, true);
	pack_key(pk, "shm");
	msgpack_pack_str_with_body(pk, r->a->cfg.shm_path,
	    strlen(r->a->cfg.shm_path));
}
