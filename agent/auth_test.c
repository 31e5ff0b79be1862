/*
 * auth_test: the `_test` method (spec §4.5, used by the reference's
 * tests): any recorded name logs in, no secret; auth_set and auth_get have
 * chatty client-streamed dialogs.
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

struct test_dialog {
	struct task task;		/* first */
	struct handlers_conn *hc;
	bool get;			/* auth_get, else auth_set */
	bool done;			/* the last step was sent */
	char ident[256];		/* auth_get: the user */
};

static void
test_dialog_free(struct task *t)
{
	free(t);
}

/* {seq, step: STEP[, name, chain]} */
static msgpack_packer *
reply_step(struct task *t, const char *step, uint32_t more)
{
	msgpack_packer *pk = conn_reply(t->conn, t->seq, 1 + more, true);

	pack_key(pk, "step");
	msgpack_pack_str_with_body(pk, step, strlen(step));
	return pk;
}

static void
test_dialog_input(struct task *t, const msgpack_object *msg)
{
	struct test_dialog *d = (struct test_dialog *)t;
	const msgpack_object *step = proto_map_get(msg, "step");
	const msgpack_object *st = proto_map_get(msg, "state");
	struct req r;

	if (proto_map_get(msg, "error") != NULL) {
		conn_reply_error(t->conn, t->seq, "Dialog aborted by the "
		    "client");
		conn_task_end(t, !d->done || d->get);
		return;
	}
	if (st != NULL && proto_str_eq(st, "end")) {
		/* the client ends its input: auth_get reports the end of
		 * the dialog as an error item (spec §4.5), auth_set had
		 * already ended */
		if (d->get)
			conn_reply_error(t->conn, t->seq, "The dialog is over");
		conn_task_end(t, d->get || !d->done);
		return;
	}
	if (d->done || step == NULL ||
	    !proto_str_eq(step, d->get ? "WantName" : "HasName")) {
		conn_reply_error(t->conn, t->seq, "Unexpected step in the "
		    "_test dialog (expected %s)", d->done ? "the end" :
		    d->get ? "WantName" : "HasName");
		conn_task_end(t, true);
		return;
	}
	d->done = true;
	memset(&r, 0, sizeof(r));
	r.c = t->conn;
	r.hc = d->hc;
	r.a = conn_agent(t->conn);
	r.seq = t->seq;
	r.msg = msg;
	if (d->get) {
		msgpack_object id;
		struct entry *rec;
		msgpack_packer *pk;
		static const msgpack_object typ = { .type = MSGPACK_OBJECT_STR,
		    .via.str = { 5, "_test" } };

		id.type = MSGPACK_OBJECT_STR;
		id.via.str.ptr = d->ident;
		id.via.str.size = (uint32_t)strlen(d->ident);
		rec = auth_user_entry(r.a, &typ, &id);
		pk = reply_step(t, "SendName", 2);
		pack_key(pk, "name");
		msgpack_pack_str_with_body(pk, d->ident, strlen(d->ident));
		pack_key(pk, "chain");
		if (rec != NULL)
			chain_pack(pk, rec->chain, CHAIN_CAP);
		else
			msgpack_pack_nil(pk);
		return;
	}
	/* HasName {name, chain, aux}: written like set_value, then end */
	auth_set_generic(&r, "_test", proto_map_get(msg, "name"));
	conn_reply_state(t->conn, t->seq, "end");
}

static const struct task_ops test_dialog_ops = {
	.input = test_dialog_input,
	.free = test_dialog_free,
};

/* Open a _test dialog: start, then its first step. */
static void
test_dialog(struct req *r, bool get, const msgpack_object *ident)
{
	struct test_dialog *d = calloc(1, sizeof(*d));

	if (d == NULL) {
		conn_reply_error(r->c, r->seq, "Out of memory");
		return;
	}
	d->task.seq = r->seq;
	d->task.ops = &test_dialog_ops;
	d->hc = r->hc;
	d->get = get;
	if (ident != NULL)
		snprintf(d->ident, sizeof(d->ident), "%.*s",
		    (int)ident->via.str.size, ident->via.str.ptr);
	conn_task_add(r->c, &d->task);
	conn_reply_state(r->c, r->seq, "start");
	reply_step(&d->task, get ? "SendWant" : "GiveName", 0);
}

static const char *
test_login(struct req *r, const msgpack_object *ident,
    const struct entry **rec, char *buf, size_t cap)
{
	(void)r;
	(void)ident;
	(void)rec;
	(void)buf;
	(void)cap;
	return NULL;		/* the record exists: that is all */
}

static void
test_set(struct req *r, const msgpack_object *ident)
{
	auth_set_generic(r, "_test", ident);
}

const struct auth_method auth_method_test = {
	.name = "_test",
	.login = test_login,
	.set = test_set,
	.get = auth_get_generic,
	.dialog = test_dialog,
};
