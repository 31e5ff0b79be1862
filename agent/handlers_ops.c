/* handlers_ops: the operator actions (docs/protocol.md): get_members
 * (distkv-cli members and health), get_metrics and kill_node (forget). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "forget.h"
#include "handlers.h"
#include "metrics.h"
#include "persist.h"
#include "proto.h"
#include "serf.h"
#include "server.h"
#include "sync.h"

#include "handlers_internal.h"

/* Ticks of n that this agent has not got (its [1, tick] minus known). */
static uint64_t
missing_ticks(const struct node *n)
{
	struct ranges miss;
	uint64_t k;

	if (!n->has_tick || n->tick < 1)
		return 0;
	ranges_init(&miss);
	if (ranges_missing(&n->known, n->tick, &miss) != 0) {
		ranges_fini(&miss);
		return 0;
	}
	k = ranges_count(&miss);
	ranges_fini(&miss);
	return k;
}

/*
 * Ticks this agent has seen (every node's run from 1) that n's last
 * `done` report did not include yet: how far n is behind us.
 */
static uint64_t
lag_ticks(const struct agent *a, const struct node *n)
{
	uint64_t lag = 0;

	for (size_t x = 0; x < a->nodes.n; x++) {
		uint64_t here = ranges_prefix(&a->nodes.by_index[x]->known);
		uint64_t there = x < n->nreport ? n->report[x] : 0;

		if (here > there)
			lag += here - there;
	}
	return lag;
}

static void
pack_bool(msgpack_packer *pk, bool b)
{
	if (b)
		msgpack_pack_true(pk);
	else
		msgpack_pack_false(pk);
}

/* One member: m (Serf's view, or NULL) and n (the node table's, or NULL). */
static void
pack_member(struct req *r, msgpack_packer *pk, const struct serf_member *m,
    const struct node *n)
{
	struct agent *a = r->a;
	const char *name = m != NULL ? m->name : n->name;
	size_t len = m != NULL ? strlen(m->name) : n->name_len;
	bool self = n == a->self;
	const char *status;

	if (m != NULL)
		status = m->status;
	else if (self)
		status = a->sync == NULL ? "standalone" : "alive";
	else
		status = "unknown";	/* not (any more) in Serf's list */
	msgpack_pack_map(pk, 10);
	pack_key(pk, "name");
	msgpack_pack_str_with_body(pk, name, len);
	pack_key(pk, "status");
	pack_key(pk, status);
	pack_key(pk, "addr");
	pack_key(pk, m != NULL ? m->addr : "");
	pack_key(pk, "self");
	pack_bool(pk, self);
	pack_key(pk, "tick");
	if (n != NULL && n->has_tick)
		msgpack_pack_uint64(pk, n->tick);
	else
		msgpack_pack_nil(pk);
	/* has it sent its `done` report (purges wait for it) */
	pack_key(pk, "reported");
	pack_bool(pk, self || (n != NULL && n->has_report));
	pack_key(pk, "last_seen");
	if (self)
		msgpack_pack_double(pk, 0.0);
	else if (n != NULL && n->last_seen > 0)
		msgpack_pack_double(pk, ev_now(a->loop) - n->last_seen);
	else
		msgpack_pack_nil(pk);
	pack_key(pk, "missing");
	msgpack_pack_uint64(pk, n != NULL ? missing_ticks(n) : 0);
	pack_key(pk, "lag");
	if (self)
		msgpack_pack_uint64(pk, 0);
	else if (n != NULL && n->has_report)
		msgpack_pack_uint64(pk, lag_ticks(a, n));
	else
		msgpack_pack_nil(pk);
	pack_key(pk, "forgotten");
	pack_bool(pk, forget_is_marked(a, name, len));
}

static bool
in_members(const struct serf_member *m, size_t nm, const struct node *n)
{
	for (size_t i = 0; i < nm; i++)
		if (strlen(m[i].name) == n->name_len &&
		    memcmp(m[i].name, n->name, n->name_len) == 0)
			return true;
	return false;
}

void
act_get_members(struct req *r)
{
	struct agent *a = r->a;
	const struct serf_member *m;
	msgpack_packer *pk;
	uint64_t missing = 0;
	size_t nm, extra = 0;

	m = sync_members(a, &nm);
	for (size_t i = 0; i < a->nodes.n; i++) {
		const struct node *n = a->nodes.by_index[i];

		missing += missing_ticks(n);
		/* nodes Serf does not list: known from data, or reaped */
		if (!in_members(m, nm, n) && (n == a->self || n->has_tick))
			extra++;
	}
	pk = conn_reply(r->c, r->seq, 7, true);
	pack_key(pk, "node");
	msgpack_pack_str_with_body(pk, a->self->name, a->self->name_len);
	pack_key(pk, "ready");
	pack_bool(pk, agent_ready(a));
	pack_key(pk, "standalone");
	pack_bool(pk, a->sync == NULL);
	pack_key(pk, "serf");
	pack_bool(pk, sync_serf_connected(a));
	pack_key(pk, "joined");
	pack_bool(pk, a->sync == NULL || sync_joined(a));
	pack_key(pk, "missing");
	msgpack_pack_uint64(pk, missing);
	pack_key(pk, "members");
	msgpack_pack_array(pk, (uint32_t)(nm + extra));
	for (size_t i = 0; i < nm; i++)
		pack_member(r, pk, &m[i], nodes_get(&a->nodes, m[i].name,
		    strlen(m[i].name), false));
	for (size_t i = 0; i < a->nodes.n; i++) {
		const struct node *n = a->nodes.by_index[i];

		if (!in_members(m, nm, n) && (n == a->self || n->has_tick))
			pack_member(r, pk, NULL, n);
	}
}

void
act_get_metrics(struct req *r)
{
	msgpack_packer *pk;
	char *text;
	size_t len;

	if (metrics_render(r->a, &text, &len) != 0) {
		conn_reply_error(r->c, r->seq, "Out of memory");
		return;
	}
	pk = conn_reply(r->c, r->seq, 1, true);
	pack_key(pk, "text");
	msgpack_pack_str_with_body(pk, text, len);
	free(text);
}

void
act_kill_node(struct req *r)
{
	const msgpack_object *node = proto_map_get(r->msg, "node");
	char err[512];

	if (node == NULL || !chain_node_name_ok(node)) {
		conn_reply_error(r->c, r->seq,
		    "kill_node needs node (a node name)");
		return;
	}
	if (forget_node(r->a, node->via.str.ptr, node->via.str.size, err,
	    sizeof(err)) != 0) {
		conn_reply_error(r->c, r->seq, "%s", err);
		return;
	}
	conn_reply(r->c, r->seq, 0, true);
}

/*
 * get_snapshot: the bytes of a snapshot file (persist_save's format, so
 * distkv-agent --load reads it) as items {data: bin}, at most
 * SNAPSHOT_CHUNK each, sent as fast as the client reads.  The snapshot is
 * taken at once: later changes are not in it.
 */
#define SNAPSHOT_CHUNK (256u << 10)

struct snapshot_task {
	struct task task;		/* first */
	msgpack_sbuffer sb;
	size_t off;
};

static void
snapshot_pump(struct task *t)
{
	struct snapshot_task *st = (struct snapshot_task *)t;

	while (!conn_output_busy(t->conn)) {
		size_t n = st->sb.size - st->off;
		msgpack_packer *pk;

		if (n == 0) {
			conn_task_end(t, true);
			return;
		}
		if (n > SNAPSHOT_CHUNK)
			n = SNAPSHOT_CHUNK;
		pk = conn_reply(t->conn, t->seq, 1, true);
		pack_key(pk, "data");
		msgpack_pack_bin_with_body(pk, st->sb.data + st->off, n);
		st->off += n;
	}
	conn_task_want_pump(t);
}

static void
snapshot_free(struct task *t)
{
	struct snapshot_task *st = (struct snapshot_task *)t;

	msgpack_sbuffer_destroy(&st->sb);
	free(st);
}

static const struct task_ops snapshot_ops = {
	.pump = snapshot_pump,
	.free = snapshot_free,
};

void
act_get_snapshot(struct req *r)
{
	struct snapshot_task *st;
	msgpack_packer *pk;

	if (!agent_ready(r->a)) {
		conn_reply_error(r->c, r->seq,
		    "Not ready: this node has not got its data yet");
		return;
	}
	if ((st = calloc(1, sizeof(*st))) == NULL) {
		conn_reply_error(r->c, r->seq, "Out of memory");
		return;
	}
	msgpack_sbuffer_init(&st->sb);
	persist_snapshot_bytes(r->a, &st->sb);
	conn_reply_state(r->c, r->seq, "start");
	/* what the CLI checks the file against */
	pk = conn_reply(r->c, r->seq, 2, true);
	pack_key(pk, "size");
	msgpack_pack_uint64(pk, st->sb.size);
	pack_key(pk, "entries");
	msgpack_pack_uint64(pk, r->a->tree.nentries);
	st->task.seq = r->seq;
	st->task.ops = &snapshot_ops;
	conn_task_add(r->c, &st->task);
	snapshot_pump(&st->task);
}
