/* handlers_files: save, log, update (files and record streams). */
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

/* ---- save / log ---- */

/*
 * Map a client file name into the configured file directory: relative,
 * no "..", no empty name (spec §2.5.10, C recommendation).
 */
static bool
req_file(struct req *r, char *out, size_t cap)
{
	const msgpack_object *p = proto_map_get(r->msg, "path");
	const char *dir = r->a->cfg.file_dir;

	if (dir == NULL) {
		conn_reply_error(r->c, r->seq,
		    "No file directory configured (start the agent with --file-dir or --state-dir)");
		return false;
	}
	if (p == NULL || p->type != MSGPACK_OBJECT_STR ||
	    p->via.str.size == 0 || p->via.str.size > 255) {
		conn_reply_error(r->c, r->seq,
		    "path must be a file name (string)");
		return false;
	}
	if (p->via.str.ptr[0] == '/' ||
	    memchr(p->via.str.ptr, '\0', p->via.str.size) != NULL) {
		conn_reply_error(r->c, r->seq,
		    "File names are relative to the agent's file directory");
		return false;
	}
	for (uint32_t i = 0; i + 1 < p->via.str.size; i++)
		if (p->via.str.ptr[i] == '.' && p->via.str.ptr[i + 1] == '.' &&
		    (i == 0 || p->via.str.ptr[i - 1] == '/')) {
			conn_reply_error(r->c, r->seq,
			    "File names may not contain '..'");
			return false;
		}
	if ((size_t)snprintf(out, cap, "%s/%.*s", dir, (int)p->via.str.size,
	    p->via.str.ptr) >= cap) {
		conn_reply_error(r->c, r->seq, "File name too long");
		return false;
	}
	if (persist_is_own_file(r->a, out)) {
		conn_reply_error(r->c, r->seq, "Refusing to write %.*s: the "
		    "agent itself owns that file", (int)p->via.str.size,
		    p->via.str.ptr);
		return false;
	}
	return true;
}

static void
reply_result_true(struct req *r)
{
	msgpack_packer *pk = conn_reply(r->c, r->seq, 1, true);

	pack_key(pk, "result");
	msgpack_pack_true(pk);
}

void
act_save(struct req *r)
{
	char path[PATH_MAX];
	int rc;

	if (!req_file(r, path, sizeof(path)))
		return;
	if ((rc = persist_save(r->a, path)) != 0) {
		conn_reply_error(r->c, r->seq, "Cannot save: %s", strerror(-rc));
		return;
	}
	reply_result_true(r);
}

void
act_log(struct req *r)
{
	char path[PATH_MAX];
	bool fetch;
	int rc;

	if (!req_bool(r, "fetch", false, &fetch) ||
	    !req_file(r, path, sizeof(path)))
		return;
	if ((rc = persist_start_log(r->a, path, fetch)) != 0) {
		conn_reply_error(r->c, r->seq, "Cannot log: %s", strerror(-rc));
		return;
	}
	reply_result_true(r);
}

/* ---- update ---- */

struct update_task {
	struct task task;		/* first */
	struct record_ctx ctx;
	uint64_t count;
};

static void
reply_count(struct conn *c, uint64_t seq, uint64_t count)
{
	msgpack_packer *pk = conn_reply(c, seq, 1, true);

	pack_key(pk, "count");
	msgpack_pack_uint64(pk, count);
}

static void
update_input(struct task *t, const msgpack_object *msg)
{
	struct update_task *ut = (struct update_task *)t;
	const msgpack_object *st = proto_map_get(msg, "state");
	const msgpack_object *err = proto_map_get(msg, "error");
	const char *why = NULL;
	bool applied;

	if (err != NULL) {
		conn_reply_error(t->conn, t->seq, "Update aborted by the client");
		conn_task_end(t, false);
		return;
	}
	if (st != NULL && proto_str_eq(st, "end")) {
		reply_count(t->conn, t->seq, ut->count);
		conn_task_end(t, false);
		return;
	}
	if (agent_apply_record(conn_agent(t->conn), &ut->ctx, msg, ORIGIN_LOAD,
	    &applied,
	    &why) != 0) {
		conn_reply_error(t->conn, t->seq, "Bad update record: %s", why);
		conn_task_end(t, false);
		return;
	}
	ut->count += applied;
}

static const struct task_ops update_task_ops = {
	.input = update_input,
	.free = free_task,
};

void
act_update(struct req *r)
{
	struct record_ctx ctx;
	struct update_task *ut;
	struct entry *base = conn_root(r->c);
	const char *why = NULL;
	bool applied;

	if (proto_map_get(r->msg, "path") != NULL && r->streamed &&
	    !req_path(r, true, false, &base))
		return;
	ctx.base = base;
	ctx.last = base;
	if (!r->streamed) {
		if (agent_apply_record(r->a, &ctx, r->msg, ORIGIN_LOAD, &applied,
		    &why) != 0) {
			conn_reply_error(r->c, r->seq, "Bad update record: %s",
			    why);
			return;
		}
		reply_count(r->c, r->seq, applied);
		return;
	}
	if ((ut = calloc(1, sizeof(*ut))) == NULL) {
		conn_reply_error(r->c, r->seq, "Out of memory");
		return;
	}
	ut->task.seq = r->seq;
	ut->task.ops = &update_task_ops;
	ut->ctx = ctx;
	conn_task_add(r->c, &ut->task);
}
