/* handlers_cluster: stop, the Serf pass-through (serfsend,
 * serfmon) and the peer actions (peer_auth, dump, get_events). */
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
#include "serf.h"
#include "server.h"
#include "sync.h"
#include "tree.h"
#include "watch.h"

#include <sodium.h>

#include "handlers_internal.h"

/* ---- stop ---- */

void
act_stop(struct req *r)
{
	const msgpack_object *to = proto_map_get(r->msg, "task");
	struct task *t;
	msgpack_packer *pk;
	uint64_t seq;

	if (to == NULL || proto_get_uint(to, &seq) != 0) {
		conn_reply_error(r->c, r->seq, "stop needs task (integer)");
		return;
	}
	t = conn_task_find(r->c, seq);
	/* spec §8.15: the stopped request still ends with state "end" */
	if (t != NULL)
		conn_task_end(t, true);
	pk = conn_reply(r->c, r->seq, 1, true);
	pack_key(pk, "result");
	if (t != NULL)
		msgpack_pack_true(pk);
	else
		msgpack_pack_false(pk);
}

/* ---- replication: pass-through and peer actions ---- */

static bool
req_serf_type(struct req *r, const msgpack_object **type)
{
	*type = proto_map_get(r->msg, "type");
	if (*type == NULL || (*type)->type != MSGPACK_OBJECT_STR ||
	    (*type)->via.str.size == 0 || (*type)->via.str.size > 200) {
		conn_reply_error(r->c, r->seq, "type must be a non-empty string");
		return false;
	}
	/* spec §2.5.11: clients may not forge server messages */
	if ((*type)->via.str.ptr[0] == ':' ||
	    sync_name_reserved(r->a, (*type)->via.str.ptr,
	    (*type)->via.str.size)) {
		conn_reply_error(r->c, r->seq,
		    "Types may not start with a colon or the servers' prefix \"%s\"",
		    r->a->cfg.event_prefix);
		return false;
	}
	return true;
}

void
act_serfsend(struct req *r)
{
	const msgpack_object *type, *data, *raw;
	msgpack_sbuffer sb;
	const uint8_t *p;
	size_t len;
	int rc;

	if (!req_serf_type(r, &type))
		return;
	data = proto_map_get(r->msg, "data");
	raw = proto_map_get(r->msg, "raw");
	msgpack_sbuffer_init(&sb);
	if (raw != NULL && raw->type == MSGPACK_OBJECT_BIN) {
		p = (const uint8_t *)raw->via.bin.ptr;
		len = raw->via.bin.size;
	} else if (raw != NULL && raw->type == MSGPACK_OBJECT_STR) {
		p = (const uint8_t *)raw->via.str.ptr;
		len = raw->via.str.size;
	} else {
		msgpack_packer pk;

		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		if (data != NULL)
			msgpack_pack_object(&pk, *data);
		else
			msgpack_pack_nil(&pk);
		p = (const uint8_t *)sb.data;
		len = sb.size;
	}
	/* standalone: a one-node cluster, with the limit Serf would have */
	if (r->a->sync == NULL)
		rc = serf_event_check(SYNC_SERF_EVENT_LIMIT,
		    type->via.str.size, len);
	else
		rc = sync_serf_send(r->a, type->via.str.ptr,
		    type->via.str.size, p, len);
	if (rc != 0)
		conn_reply_error(r->c, r->seq, "Serf event not sent: %s",
		    rc == -EMSGSIZE ? "too large for Serf" : strerror(-rc));
	else
		conn_reply(r->c, r->seq, 0, true);
	/* Serf hands the event back to its sender later; here it is now */
	if (rc == 0 && r->a->sync == NULL)
		sync_monitor_deliver(r->a, type->via.str.ptr,
		    type->via.str.size, p, len);
	msgpack_sbuffer_destroy(&sb);
}

struct serfmon_task {
	struct task task;		/* first */
	struct sync_monitor mon;
	bool raw;
	struct agent *a;
};

static void
serfmon_event(struct sync_monitor *m, const uint8_t *payload, size_t len)
{
	struct serfmon_task *st = (struct serfmon_task *)(void *)
	    ((char *)m - offsetof(struct serfmon_task, mon));
	struct conn *c = st->task.conn;
	msgpack_packer *pk;
	size_t objlen;
	bool ok;

	if (conn_output_full(c))
		return;	/* a monitor that does not read misses events */
	ok = !st->raw && len > 0 &&
	    proto_scan(payload, len, PROTO_MAX_NESTING, &objlen) == 0 &&
	    objlen == len;
	pk = conn_reply(c, st->task.seq, 2 + (!st->raw && !ok), true);
	pack_key(pk, "type");
	msgpack_pack_str_with_body(pk, m->name, m->nlen);
	if (ok) {
		pack_key(pk, "data");
		conn_pack_raw(c, payload, len);
	} else {
		pack_key(pk, "raw");
		msgpack_pack_bin_with_body(pk, payload, len);
		if (!st->raw) {
			pack_key(pk, "error");
			msgpack_pack_str_with_body(pk,
			    "payload is not one msgpack object", 33);
		}
	}
}

static void
serfmon_free(struct task *t)
{
	struct serfmon_task *st = (struct serfmon_task *)t;

	sync_monitor_remove(st->a, &st->mon);
	free(st);
}

static const struct task_ops serfmon_ops = {
	.free = serfmon_free,
};

void
act_serfmon(struct req *r)
{
	const msgpack_object *type;
	struct serfmon_task *st;
	bool raw;

	if (!req_serf_type(r, &type) || !req_bool(r, "raw", false, &raw))
		return;
	if ((st = calloc(1, sizeof(*st))) == NULL) {
		conn_reply_error(r->c, r->seq, "Out of memory");
		return;
	}
	st->task.seq = r->seq;
	st->task.ops = &serfmon_ops;
	st->a = r->a;
	st->raw = raw;
	memcpy(st->mon.name, type->via.str.ptr, type->via.str.size);
	st->mon.nlen = type->via.str.size;
	st->mon.fn = serfmon_event;
	sync_monitor_add(r->a, &st->mon);
	conn_task_add(r->c, &st->task);
	conn_reply_state(r->c, r->seq, "start");
}

void
act_peer_auth(struct req *r)
{
	const msgpack_object *mac = proto_map_get(r->msg, "mac");
	const msgpack_object *node = proto_map_get(r->msg, "node");

	if (!r->hc->need_peer_auth) {
		conn_reply(r->c, r->seq, 0, true);	/* nothing to prove */
		return;
	}
	if (mac == NULL || mac->type != MSGPACK_OBJECT_BIN ||
	    mac->via.bin.size != crypto_auth_hmacsha256_BYTES ||
	    crypto_auth_hmacsha256_verify((const uint8_t *)mac->via.bin.ptr,
	    r->hc->challenge, sizeof(r->hc->challenge),
	    r->a->cfg.cluster_key) != 0) {
		log_warn("peer %.*s failed to prove the cluster key",
		    node != NULL && node->type == MSGPACK_OBJECT_STR ?
		    (int)node->via.str.size : 1,
		    node != NULL && node->type == MSGPACK_OBJECT_STR ?
		    node->via.str.ptr : "?");
		conn_reply_error(r->c, r->seq,
		    "AuthFailedError: wrong cluster key");
		/* one guess per connection, and the address waits */
		conn_peer_auth_failed(r->c);
		return;
	}
	r->hc->need_peer_auth = false;
	r->hc->logged_in = true;
	conn_reply(r->c, r->seq, 0, true);
}

/*
 * dump: the whole tree for a joining node (spec §3.9, with the paths
 * shortened and lengthened correctly): first the node table, then every
 * entry that has a chain, tombstones included, so deletes survive.
 */
struct dump_task {
	struct task task;		/* first */
	struct tree_walk walk;
	const struct entry *last;
	struct agent *a;
};

static void
dump_pump(struct task *t)
{
	struct dump_task *dt = (struct dump_task *)t;
	struct entry *e;

	while (!conn_output_busy(t->conn)) {
		msgpack_packer *pk;
		uint32_t d;

		if ((e = tree_walk_next(&dt->walk)) == NULL) {
			conn_task_end(t, true);
			return;
		}
		if (e->chain->n == 0)
			continue;
		d = tree_common_depth(dt->a->tree.root, dt->last, e);
		pk = conn_reply(t->conn, t->seq, 5, false);
		pack_key(pk, "path");
		tree_pack_path(pk, dt->a->tree.root, e, d);
		pack_key(pk, "depth");
		msgpack_pack_uint32(pk, d);
		pack_key(pk, "value");
		pack_value(t->conn, pk, e);
		pack_key(pk, "tock");
		msgpack_pack_uint64(pk, e->tock);
		pack_key(pk, "chain");
		chain_pack(pk, e->chain, CHAIN_CAP);
		dt->last = e;
	}
	conn_task_want_pump(t);
}

static const struct task_ops dump_ops = {
	.pump = dump_pump,
	.free = free_task,
};

/*
 * A node without its data yet must not hand out its empty tree: a joining
 * node that downloaded it would call itself ready with nothing, and serve
 * that to its clients.  The asker tries another peer.
 */
static bool
refuse_not_ready(struct req *r)
{
	if (agent_ready(r->a))
		return false;
	conn_reply_error(r->c, r->seq,
	    "Not ready: this node has not got its data yet");
	return true;
}

/* {nodes: {name: tick}, known: {name: ranges}} as an item of seq */
static void
send_state_item(struct req *r)
{
	msgpack_packer *pk = conn_reply(r->c, r->seq, 3, false);

	pack_key(pk, "tock");
	msgpack_pack_uint64(pk, r->a->tock);
	pack_key(pk, "nodes");
	agent_pack_nodes(r->a, pk);
	pack_key(pk, "known");
	agent_pack_ranges(r->a, pk, AGENT_KNOWN);
}

void
act_dump(struct req *r)
{
	struct dump_task *dt;

	if (refuse_not_ready(r))
		return;
	if ((dt = calloc(1, sizeof(*dt))) == NULL) {
		conn_reply_error(r->c, r->seq, "Out of memory");
		return;
	}
	conn_reply_state(r->c, r->seq, "start");
	send_state_item(r);
	dt->task.seq = r->seq;
	dt->task.ops = &dump_ops;
	dt->a = r->a;
	dt->last = r->a->tree.root;
	tree_walk_init(&dt->walk, r->a->tree.root, -1);
	conn_task_add(r->c, &dt->task);
	dump_pump(&dt->task);
}

/*
 * get_events {ranges: {node: ranges}, ticks}: for each asked tick this
 * node knows, the entry that holds it (its current state, full path) or,
 * if it was superseded, a `known` item; ticks this node never saw are left
 * out.  With `ticks: true`, last an item {ticks: {node: tick}}: every tick
 * this node knows of, so that the asker learns at once of events it did
 * not know it lacks (after a split heals, an info saying so may take a
 * while).  Bounded: at most HANDLERS_MAX_EVENT_TICKS ticks per request.
 */
#define HANDLERS_MAX_EVENT_TICKS 100000

static void
pack_ticks_item(struct req *r)
{
	msgpack_packer *pk = conn_reply(r->c, r->seq, 1, false);

	pack_key(pk, "ticks");
	nodes_pack_ticks(&r->a->nodes, pk);
}

void
act_get_events(struct req *r)
{
	const msgpack_object *rs = proto_map_get(r->msg, "ranges");
	uint64_t budget = HANDLERS_MAX_EVENT_TICKS;
	msgpack_packer *pk;
	bool ticks;

	if (refuse_not_ready(r))
		return;
	if (rs == NULL || rs->type != MSGPACK_OBJECT_MAP) {
		conn_reply_error(r->c, r->seq,
		    "ranges must be a map {node: range list}");
		return;
	}
	if (!req_bool(r, "ticks", false, &ticks))
		return;
	conn_reply_state(r->c, r->seq, "start");
	for (uint32_t i = 0; i < rs->via.map.size && budget > 0; i++) {
		const msgpack_object *name = &rs->via.map.ptr[i].key;
		struct ranges want, super;
		const struct entry *last = NULL;
		struct node *n;

		if (!chain_node_name_ok(name))
			continue;
		n = nodes_get(&r->a->nodes, name->via.str.ptr,
		    name->via.str.size, false);
		ranges_init(&want);
		ranges_init(&super);
		if (n == NULL ||
		    ranges_unpack(&rs->via.map.ptr[i].val, &want) != 0) {
			ranges_fini(&want);
			continue;
		}
		for (size_t k = 0; k < want.n && budget > 0; k++) {
			for (uint64_t t = want.r[k].b; t < want.r[k].e &&
			    budget > 0; t++, budget--) {
				const struct entry *e;

				if (!ranges_contains(&n->known, t))
					continue;
				e = node_entry_get(n, t);
				if (e == NULL) {
					ranges_add(&super, t, t + 1);
					continue;
				}
				if (e == last)
					continue;	/* one entry, several ticks */
				pk = conn_reply(r->c, r->seq, 4, false);
				pack_key(pk, "path");
				tree_pack_path(pk, r->a->tree.root, e, 0);
				pack_key(pk, "value");
				pack_value(r->c, pk, e);
				pack_key(pk, "tock");
				msgpack_pack_uint64(pk, e->tock);
				pack_key(pk, "chain");
				chain_pack(pk, e->chain, CHAIN_CAP);
				last = e;
			}
		}
		if (!ranges_empty(&super)) {
			pk = conn_reply(r->c, r->seq, 1, false);
			pack_key(pk, "known");
			msgpack_pack_map(pk, 1);
			msgpack_pack_str_with_body(pk, n->name, n->name_len);
			ranges_pack(pk, &super);
		}
		ranges_fini(&want);
		ranges_fini(&super);
	}
	if (ticks)
		pack_ticks_item(r);
	conn_reply_state(r->c, r->seq, "end");
}
