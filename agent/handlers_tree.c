/* handlers_tree: get_tree, watch, root, get_state, delete_tree. */
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

/* ---- get_tree ---- */

struct tree_task {
	struct task task;		/* first */
	struct entry *base;
	struct tree_walk walk;
	const struct entry *last;
	int min_depth;
	unsigned nchain;
	const struct acl_user *acl;
	const struct xlate_user *conv;
};

static void
tree_task_pump(struct task *t)
{
	struct tree_task *tt = (struct tree_task *)t;
	struct entry *e;

	while (!conn_output_busy(t->conn)) {
		if ((e = tree_walk_next(&tt->walk)) == NULL) {
			conn_task_end(t, true);
			return;
		}
		if (!entry_has_value(e) ||
		    (int)(e->depth - tt->base->depth) < tt->min_depth)
			continue;
		handlers_send_item(t->conn, t->seq, tt->base, &tt->last, e,
		    tt->nchain, tt->acl, tt->conv);
	}
	conn_task_want_pump(t);
}

void
free_task(struct task *t)
{
	free(t);
}

static const struct task_ops tree_task_ops = {
	.pump = tree_task_pump,
	.free = free_task,
};

/* Depth window: both spellings (spec §8.12). */
static bool
req_depths(struct req *r, int *min_depth, int *max_depth)
{
	int64_t lo, hi;

	if (proto_map_get(r->msg, "min_depth") != NULL) {
		if (!req_int(r, "min_depth", 0, 0, INT_MAX, &lo))
			return false;
	} else if (!req_int(r, "mindepth", 0, 0, INT_MAX, &lo))
		return false;
	if (proto_map_get(r->msg, "max_depth") != NULL) {
		if (!req_int(r, "max_depth", -1, -1, INT_MAX, &hi))
			return false;
	} else if (!req_int(r, "maxdepth", -1, -1, INT_MAX, &hi))
		return false;
	*min_depth = (int)lo;
	*max_depth = (int)hi;
	return true;
}

void
act_get_tree(struct req *r)
{
	struct tree_task *tt;
	struct entry *e;
	int64_t nchain;
	int lo, hi;

	if (!req_int(r, "nchain", 0, 0, HANDLERS_MAX_NCHAIN, &nchain) ||
	    !req_depths(r, &lo, &hi) || !req_path_acl(r, PATH_FIND, 'e', &e))
		return;
	if (conn_task_find(r->c, r->seq) != NULL) {
		conn_reply_error(r->c, r->seq, "Request %" PRIu64 " runs already",
		    r->seq);
		return;
	}
	conn_reply_state(r->c, r->seq, "start");
	if (e == NULL) {
		/* spec §8.11: a missing path is an empty tree */
		conn_reply_state(r->c, r->seq, "end");
		return;
	}
	if ((tt = calloc(1, sizeof(*tt))) == NULL) {
		conn_reply_error(r->c, r->seq, "Out of memory");
		conn_reply_state(r->c, r->seq, "end");
		return;
	}
	tt->task.seq = r->seq;
	tt->task.ops = &tree_task_ops;
	tt->base = e;
	tt->last = e;
	tt->min_depth = lo;
	tt->nchain = (unsigned)nchain;
	tt->acl = handlers_acl(r->hc);
	tt->conv = handlers_conv(r->hc);
	tree_walk_init(&tt->walk, e, hi);
	conn_task_add(r->c, &tt->task);
	tree_task_pump(&tt->task);
}

/* ---- watch ---- */

void
act_watch(struct req *r)
{
	struct watch_opts o;
	struct entry *e;
	int64_t nchain;

	memset(&o, 0, sizeof(o));
	if (!req_int(r, "nchain", 0, 0, HANDLERS_MAX_NCHAIN, &nchain) ||
	    !req_bool(r, "fetch", false, &o.fetch) ||
	    !req_depths(r, &o.min_depth, &o.max_depth))
		return;
	o.nchain = (unsigned)nchain;
	o.acl = handlers_acl(r->hc);
	o.conv = handlers_conv(r->hc);
	if (conn_task_find(r->c, r->seq) != NULL) {
		conn_reply_error(r->c, r->seq, "Request %" PRIu64 " runs already",
		    r->seq);
		return;
	}
	if (!req_path_acl(r, PATH_CREATE, 'x', &e))
		return;
	if (watch_start(r->c, r->seq, e, &o) != 0)
		conn_reply_error(r->c, r->seq, "Out of memory");
}

/* ---- root ---- */

void
act_root(struct req *r)
{
	struct entry *e;
	msgpack_packer *pk;
	bool with_chain;
	struct shown sh;

	if (!req_path_acl(r, PATH_CREATE, 'x', &e))
		return;
	shown_init(&sh, r->a, handlers_conv(r->hc), e);
	if (sh.failed) {
		conn_reply_error(r->c, r->seq, "%s", sh.err);
		return;
	}
	conn_set_root(r->c, e);
	with_chain = e->chain->n > 0;
	pk = conn_reply(r->c, r->seq, 3 + (with_chain ? 1 : 0), false);
	pack_key(pk, "value");
	pack_shown(r->c, pk, &sh);
	shown_fini(&sh);
	pack_key(pk, "tock");
	msgpack_pack_uint64(pk, e->tock);
	pack_key(pk, "path");
	msgpack_pack_array(pk, 0);
	if (with_chain) {
		pack_key(pk, "chain");
		chain_pack(pk, e->chain, 2);
	}
}

/* ---- get_state ---- */


void
act_get_state(struct req *r)
{
	bool f[6];
	static const char *keys[6] = { "nodes", "known", "missing",
	    "remote_missing", "ping", "recovery" };
	msgpack_packer *pk;
	uint32_t n = 0;

	for (int i = 0; i < 6; i++) {
		if (!req_bool(r, keys[i], false, &f[i]))
			return;
		n += f[i];
	}
	pk = conn_reply(r->c, r->seq, n, true);
	if (f[0]) {
		pack_key(pk, "nodes");
		agent_pack_nodes(r->a, pk);
	}
	if (f[1]) {
		pack_key(pk, "known");
		agent_pack_ranges(r->a, pk, AGENT_KNOWN);
	}
	if (f[2]) {
		pack_key(pk, "missing");
		agent_pack_ranges(r->a, pk, AGENT_MISSING);
	}
	if (f[3]) {
		pack_key(pk, "remote_missing");
		agent_pack_ranges(r->a, pk, AGENT_REMOTE_MISSING);
	}
	if (f[4]) {
		/* the last accepted ping chain, newest first (spec §3.8) */
		pack_key(pk, "ping");
		sync_pack_ping(r->a, pk);
	}
	if (f[5]) {
		/* split recovery (spec §3.10, §3.11): state and counters */
		pack_key(pk, "recovery");
		sync_pack_recovery(r->a, pk);
	}
}

/* ---- delete_tree ---- */

void
act_delete_tree(struct req *r)
{
	struct tree_walk w;
	struct entry *e, *base;
	const struct entry *last;
	int64_t nchain;
	uint64_t count = 0;
	msgpack_packer *pk;
	int rc;

	const struct acl_user *acl = handlers_acl(r->hc);

	if (!req_int(r, "nchain", 0, 0, HANDLERS_MAX_NCHAIN, &nchain) ||
	    !req_path_acl(r, PATH_CREATE, 'd', &base))
		return;
	if (nchain > 0)
		conn_reply_state(r->c, r->seq, "start");
	last = base;
	tree_walk_init(&w, base, -1);
	/* parent before children, each its own change (spec §2.5.9) */
	while ((e = tree_walk_next(&w)) != NULL) {
		uint8_t *old = NULL, *enc = NULL;
		uint32_t oldlen, d;
		size_t enclen;
		bool conv;
		char cerr[1024];

		if (!entry_has_value(e) ||
		    (acl != NULL && !acl_may_delete(r->a, acl, base, e)))
			continue;
		oldlen = entry_value_len(e);
		if (nchain > 0) {
			/* the reply reports the value the change removes */
			if ((old = malloc(oldlen)) == NULL) {
				conn_reply_error(r->c, r->seq, "Out of memory");
				break;
			}
			memcpy(old, entry_value(e), oldlen);
		}
		if ((rc = agent_change_local(r->a, e, NULL, 0)) != 0) {
			free(old);
			reply_change_error(r, rc);
			break;
		}
		count++;
		if (nchain == 0)
			continue;
		d = tree_common_depth(base, last, e);
		pk = conn_reply(r->c, r->seq, 7, false);
		chain_pack_flat(pk, e->chain, (unsigned)nchain);
		pack_key(pk, "path");
		tree_pack_path(pk, base, e, d);
		pack_key(pk, "depth");
		msgpack_pack_uint32(pk, d);
		if (xlate_read(r->a, handlers_conv(r->hc), e, old, oldlen,
		    &conv, &enc, &enclen, cerr, sizeof(cerr)) != 0) {
			pack_key(pk, "error");
			msgpack_pack_str_with_body(pk, cerr, strlen(cerr));
		} else {
			pack_key(pk, "old_value");
			if (!conv)
				conn_pack_raw(r->c, old, oldlen);
			else if (enc == NULL)
				msgpack_pack_nil(pk);
			else
				conn_pack_raw(r->c, enc, enclen);
			free(enc);
		}
		pack_key(pk, "tock");
		msgpack_pack_uint64(pk, e->tock);
		last = e;
		free(old);
	}
	if (nchain > 0) {
		conn_reply_state(r->c, r->seq, "end");
		return;
	}
	pk = conn_reply(r->c, r->seq, 1, true);
	pack_key(pk, "changed");
	msgpack_pack_uint64(pk, count);
}
