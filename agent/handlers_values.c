/* handlers_values: get_value, set_value, delete_value and their
 * internal forms (spec §2.5.1-2.5.3). */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "handlers.h"
#include "log.h"
#include "persist.h"
#include "proto.h"
#include "server.h"
#include "sync.h"
#include "tree.h"
#include "watch.h"

#include <sodium.h>

#include "handlers_internal.h"

/* ---- get_value ---- */

static void
reply_entry(struct req *r, const struct entry *e, int64_t nchain,
    bool with_path)
{
	bool with_chain = nchain > 0 && e->chain->n > 0;
	msgpack_packer *pk;
	struct shown sh;
	uint8_t *p;

	/* the encode direction (xlate.h) */
	shown_init(&sh, r->a, handlers_conv(r->hc), e);
	if (sh.failed) {
		conn_reply_error(r->c, r->seq, "%s", sh.err);
		return;
	}
	/* the keys and the tock by hand (conn_reply_room), the value after
	 * them: "tock" 5 bytes, its value at most 9, "value" 6 */
	if ((p = conn_reply_room(r->c, r->seq, 2 + (with_chain ? 1 : 0) +
	    (with_path ? 1 : 0), 20)) == NULL) {
		shown_fini(&sh);
		return;
	}
	p = proto_put_key(p, "tock");
	p = proto_put_uint(p, e->tock);
	conn_out_advance(r->c, proto_put_key(p, "value"));
	pk = conn_packer(r->c);
	pack_shown(r->c, pk, &sh);
	shown_fini(&sh);
	if (with_chain) {
		pack_key(pk, "chain");
		chain_pack(pk, e->chain, (unsigned)nchain);
	}
	if (with_path) {
		pack_key(pk, "path");
		tree_pack_path(pk, conn_root(r->c), e, 0);
	}
}

static void
get_common(struct req *r, bool internal)
{
	const msgpack_object *node = proto_map_get(r->msg, "node");
	const msgpack_object *tick = proto_map_get(r->msg, "tick");
	struct entry *e;
	int64_t nchain;
	uint64_t t;
	char txt[1200];

	if (!req_int(r, "nchain", 0, 0, HANDLERS_MAX_NCHAIN, &nchain))
		return;
	if (!internal && proto_map_get(r->msg, "path") == NULL &&
	    node != NULL) {
		struct node *n;

		if (!chain_node_name_ok(node) || tick == NULL ||
		    proto_get_uint(tick, &t) != 0) {
			conn_reply_error(r->c, r->seq,
			    "get_value by event needs node (string) and tick (integer)");
			return;
		}
		n = nodes_get(&r->a->nodes, node->via.str.ptr,
		    node->via.str.size, false);
		if (n == NULL) {
			conn_reply_error(r->c, r->seq, "Unknown node: %.*s",
			    (int)node->via.str.size, node->via.str.ptr);
			return;
		}
		/* spec §2.7: the error text is the tick (a KeyError) */
		e = node_entry_get(n, t);
		if (e == NULL || !below(conn_root(r->c), e)) {
			conn_reply_error(r->c, r->seq, "%" PRIu64, t);
			return;
		}
		if (r->hc->acl.restricted && !acl_check_entry(r->a,
		    &r->hc->acl, e, 'r', txt, sizeof(txt))) {
			conn_reply_error(r->c, r->seq, "%s", txt);
			return;
		}
		reply_entry(r, e, nchain, true);
		return;
	}
	if (internal ? !req_path(r, false, true, &e) :
	    !req_path_acl(r, PATH_FIND, 'r', &e))
		return;
	if (e == NULL) {
		msgpack_packer *pk = conn_reply(r->c, r->seq, 1, true);

		pack_key(pk, "value");
		msgpack_pack_nil(pk);
		return;
	}
	reply_entry(r, e, nchain, false);
}

void
act_get_value(struct req *r)
{
	get_common(r, false);
}

void
act_get_internal(struct req *r)
{
	get_common(r, true);
}

/* ---- set_value / delete_value ---- */

static bool
same_bytes(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	if (a == NULL || b == NULL)
		return a == b;
	return alen == blen && memcmp(a, b, alen) == 0;
}

/* Why agent_change_local refused, in words (never a wrong cause). */
void
reply_change_error(struct req *r, int rc)
{
	if (rc == -ERANGE)
		conn_reply_error(r->c, r->seq, "Tick limit reached: node %s "
		    "cannot make more changes (ticks and tocks end at 2^53-1)",
		    r->a->self->name);
	else if (rc == -ENOMEM)
		conn_reply_error(r->c, r->seq, "Out of memory");
	else
		conn_reply_error(r->c, r->seq, "Change not applied: %s",
		    strerror(-rc));
}

/*
 * The translator's write direction, at one point (xlate.h): decode with
 * the connection's converter, type-check a set_value, apply the record
 * rules to a meta write.  On success *nv and *nvlen may point to the decoded
 * value, then owned by *owned.  Replies and returns false on refusal.
 */
static bool
translate_write(struct req *r, bool internal, bool del,
    const msgpack_object *vo, const struct entry *e, const uint8_t **nv,
    size_t *nvlen, uint8_t **owned)
{
	static struct xlate_path p;	/* large; the agent is single-threaded */
	static const uint8_t nil = 0xc0;
	const struct entry *base = internal ? tree_child(&r->a->tree,
	    r->a->tree.root, &nil, 1, false) : conn_root(r->c);
	const msgpack_object *fv = vo;
	msgpack_zone zone;
	msgpack_object dv;
	char err[1200];
	bool converted, ok = true;
	uint8_t *out;
	size_t outlen;

	if (base == NULL || xlate_path_init(&p, base,
	    proto_map_get(r->msg, "path")) != 0) {
		conn_reply_error(r->c, r->seq, "Path too long");
		return false;
	}
	if (xlate_write(r->a, handlers_conv(r->hc), &p, !internal && !del, vo,
	    e != NULL ? entry_value(e) : NULL, e != NULL ? entry_value_len(e) : 0,
	    &converted, &out, &outlen, err, sizeof(err)) != 0) {
		conn_reply_error(r->c, r->seq, "%s", err);
		return false;
	}
	msgpack_zone_init(&zone, 256);
	if (converted) {
		*owned = out;
		*nv = out;
		*nvlen = outlen;
		fv = NULL;
		if (out != NULL && proto_unpack(out, outlen, &zone, &dv) == 0)
			fv = &dv;
	}
	if (!xlate_meta_check(r->a, &p, fv, err, sizeof(err))) {
		conn_reply_error(r->c, r->seq, "%s", err);
		ok = false;
	}
	msgpack_zone_destroy(&zone);
	return ok;
}

void
set_common(struct req *r, bool internal, bool del)
{
	const msgpack_object *vo = proto_map_get(r->msg, "value");
	const msgpack_object *prev = proto_map_get(r->msg, "prev");
	const msgpack_object *ch = proto_map_get(r->msg, "chain");
	struct valbuf val, pv;
	const uint8_t *nv = NULL;
	size_t nvlen = 0;
	struct entry *e;
	int64_t nchain;
	bool changed, report_prev;
	uint8_t *old = NULL, *decoded = NULL;
	uint8_t oldbuf[256];	/* most old values: no malloc */
	size_t oldlen = 0;
	char txt[256];
	const char *why;
	msgpack_packer *pk;
	struct tree_key key;
	uint8_t *p;
	int rc;

	valbuf_init(&val);
	valbuf_init(&pv);
	/* a new key is looked up before the checks and created after them:
	 * its path is built once (req_path) */
	tree_key_init(&key);
	r->key = &key;
	if (del && vo != NULL) {
		conn_reply_error(r->c, r->seq,
		    "A deleted entry can't have a value");
		goto out;
	}
	if (!del && vo == NULL) {
		conn_reply_error(r->c, r->seq,
		    "Missing value (use delete_value to delete)");
		goto out;
	}
	if (!req_int(r, "nchain", 1, 0, HANDLERS_MAX_NCHAIN, &nchain))
		goto out;
	if (vo != NULL && vo->type != MSGPACK_OBJECT_NIL) {
		if (!canonical(&val, vo)) {
			conn_reply_error(r->c, r->seq, "Out of memory");
			goto out;
		}
		nv = (const uint8_t *)val.data;
		nvlen = val.size;
	}
	if (ch != NULL && ch->type != MSGPACK_OBJECT_NIL) {
		const msgpack_object *cn = proto_map_get(ch, "node");
		const msgpack_object *ct = proto_map_get(ch, "tick");
		uint64_t t;

		if (ch->type != MSGPACK_OBJECT_MAP || cn == NULL ||
		    !chain_node_name_ok(cn) || ct == NULL ||
		    proto_get_uint(ct, &t) != 0) {
			conn_reply_error(r->c, r->seq,
			    "chain must be nil or a map {node: string, tick: integer}");
			goto out;
		}
	}
	/* every check before anything changes (spec §8.8) */
	if (internal ? !req_path(r, false, true, &e) :
	    !req_path_acl(r, PATH_CHECK_NEW, del ? 'd' : 'W', &e))
		goto out;
	if (prev != NULL) {
		if (!canonical(&pv, prev)) {
			conn_reply_error(r->c, r->seq, "Out of memory");
			goto out;
		}
		if (prev->type == MSGPACK_OBJECT_NIL ?
		    e != NULL && entry_has_value(e) :
		    e == NULL || !same_bytes(entry_value(e), entry_value_len(e),
		    (const uint8_t *)pv.data, pv.size)) {
			repr_bytes(txt, sizeof(txt), e ? entry_value(e) : NULL,
			    e ? entry_value_len(e) : 0);
			conn_reply_error(r->c, r->seq, "Data is %s", txt);
			goto out;
		}
	}
	if (ch != NULL) {
		bool has_chain = e != NULL && e->chain->n > 0;

		if (ch->type == MSGPACK_OBJECT_NIL) {
			/* spec §8.10: a tombstone may be re-created */
			if (has_chain && entry_has_value(e)) {
				conn_reply_error(r->c, r->seq,
				    "This entry already exists");
				goto out;
			}
		} else if (!has_chain) {
			conn_reply_error(r->c, r->seq, "This entry is new");
			goto out;
		} else {
			/* a pure comparison: the node table is not touched */
			const msgpack_object *cn = proto_map_get(ch, "node");
			uint64_t t;

			proto_get_uint(proto_map_get(ch, "tick"), &t);
			if (e->chain->l[0].tick != t ||
			    e->chain->l[0].node->name_len != cn->via.str.size ||
			    memcmp(e->chain->l[0].node->name, cn->via.str.ptr,
			    cn->via.str.size) != 0) {
				repr_chain(txt, sizeof(txt), e->chain);
				conn_reply_error(r->c, r->seq, "Chain is %s",
				    txt);
				goto out;
			}
		}
	}
	if (!(!internal && xlate_write_trivial(r->a, handlers_conv(r->hc),
	    conn_root(r->c), proto_map_get(r->msg, "path"))) &&
	    !translate_write(r, internal, del, vo, e, &nv, &nvlen, &decoded))
		goto out;
	if (e == NULL && !req_path(r, true, internal, &e))
		goto out;
	/* an ACL is checked when it is written, not when it is used */
	if ((why = acl_entry_invalid(e, nv, nvlen)) != NULL) {
		conn_reply_error(r->c, r->seq, "%s", why);
		goto out;
	}
	changed = !same_bytes(entry_value(e), entry_value_len(e), nv, nvlen);
	report_prev = prev == NULL && ch == NULL;
	if (report_prev && entry_has_value(e)) {
		if (entry_value_len(e) <= sizeof(oldbuf))
			old = oldbuf;
		else if ((old = malloc(entry_value_len(e))) == NULL) {
			conn_reply_error(r->c, r->seq, "Out of memory");
			goto out;
		}
		memcpy(old, entry_value(e), entry_value_len(e));
		oldlen = entry_value_len(e);
	}
	if ((rc = agent_change_local(r->a, e, nv, nvlen)) != 0) {
		reply_change_error(r, rc);
		goto out;
	}
	/* by hand (conn_reply_room): "changed" 8 bytes and its value 1,
	 * "prev" 5 and nil 1 or the old value, "tock" 5 and its value at
	 * most 9: 29 bytes and the old value */
	if ((p = conn_reply_room(r->c, r->seq, 2 + (report_prev ? 1 : 0) +
	    (nchain > 0 ? 1 : 0), 32 + oldlen)) == NULL)
		goto out;
	p = proto_put_key(p, "changed");
	*p++ = changed ? 0xc3 : 0xc2;
	if (report_prev) {
		p = proto_put_key(p, "prev");
		if (old != NULL) {
			memcpy(p, old, oldlen);
			p += oldlen;
		} else
			*p++ = 0xc0;
	}
	p = proto_put_key(p, "tock");
	conn_out_advance(r->c, proto_put_uint(p, e->tock));
	if (nchain > 0) {
		pk = conn_packer(r->c);
		pack_key(pk, "chain");
		chain_pack(pk, e->chain, (unsigned)nchain);
	}
out:
	r->key = NULL;
	tree_key_fini(&key);
	if (old != oldbuf)
		free(old);
	free(decoded);
	valbuf_fini(&val);
	valbuf_fini(&pv);
}

void
act_set_value(struct req *r)
{
	set_common(r, false, false);
}

void
act_delete_value(struct req *r)
{
	set_common(r, false, true);
}

void
act_set_internal(struct req *r)
{
	set_common(r, true, false);
}

void
act_delete_internal(struct req *r)
{
	set_common(r, true, true);
}
