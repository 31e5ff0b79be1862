/*
 * distkv-cli state, save, log, serf: the agent itself (docs/cli.md).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "distkv.h"
#include "mpjson.h"
#include "cli.h"
#include "proto.h"

struct serf_arg;

static int	cmd_state(struct ctx *);
static int	cmd_save(struct ctx *);
static int	cmd_log(struct ctx *);
static int	cmd_serf(struct ctx *);
static int	cmd_serf_check(struct ctx *, const struct cli_cmd *);
static int	put_ranges(msgpack_sbuffer *, const msgpack_object *);
static int	put_ping_chain(msgpack_sbuffer *, const msgpack_object *);
static int	put_state_section(msgpack_sbuffer *, const msgpack_object *);
static int	pack_cstr(msgpack_packer *, const char *);
static int	serf_pack(struct ctx *, msgpack_sbuffer *);
static int	serf_send_cb(void *, const uint8_t *, size_t);
static int	serf_mon_cb(void *, const uint8_t *, size_t);

static const enum optid log_opts[] = { O_FETCH, O_END };
static const enum optid serf_opts[] = {
	O_JSONVAL, O_COUNT, O_END
};

const struct cli_cmd cmd_state_entry = {
	.name = "state",
	.usage = "state",
	.summary = "show the agent's node table",
	.help =
	    "Print the agent's name and its node table: every node's tick and\n"
	    "the tick ranges this agent knows, misses, and others reported as\n"
	    "missing (\"1-3,7\" means ticks 1, 2, 3 and 7).\n"
	    "\n"
	    "Examples:\n"
	    "  distkv-cli state\n"
	    "  distkv-cli state --json\n",
	.opts = cli_no_opts,
	.minargs = 0,
	.maxargs = 0,
	.flags = CMD_CONNECT,
	.check = NULL,
	.exec = cmd_state,
};

const struct cli_cmd cmd_save_entry = {
	.name = "save",
	.usage = "save FILE",
	.summary = "write a snapshot on the agent's host",
	.help =
	    "Ask the agent to write a snapshot of the whole tree to FILE.  The\n"
	    "agent resolves FILE inside its own file directory (distkv-agent\n"
	    "--file-dir), not relative to the current directory.\n"
	    "\n"
	    "Example:\n"
	    "  distkv-cli save backup-2024-01-01.mp\n",
	.opts = cli_no_opts,
	.minargs = 1,
	.maxargs = 1,
	.flags = CMD_CONNECT,
	.check = NULL,
	.exec = cmd_save,
};

const struct cli_cmd cmd_log_entry = {
	.name = "log",
	.usage = "log [--fetch] FILE",
	.summary = "start a change log on the agent",
	.help = "Ask the agent to log every change to FILE (inside its file\n"
	    "directory); with --fetch a snapshot is written first.  A log that\n"
	    "was running before stops once the new one is in place.\n"
	    "\n"
	    "Example:\n"
	    "  distkv-cli log --fetch changes.mp\n",
	.opts = log_opts,
	.minargs = 1,
	.maxargs = 1,
	.flags = CMD_CONNECT,
	.check = NULL,
	.exec = cmd_log,
};

const struct cli_cmd cmd_serf_entry = {
	.name = "serf",
	.usage = "serf send [-j] TYPE DATA | serf mon [-n COUNT] "
	    "[-t SECONDS] TYPE",
	.summary = "send or monitor user events of the cluster",
	.help =
	    "serf send: have the agent broadcast the user event TYPE with DATA\n"
	    "through Serf.  DATA is a string unless -j is given (then JSON, as\n"
	    "for set; null is allowed); with --raw its bytes are sent as they\n"
	    "are, not msgpack-encoded.  Prints nothing unless --json.\n"
	    "serf mon: print one line per event TYPE that arrives: its data as\n"
	    "JSON (--json: {\"type\":TYPE,\"data\":...}; a payload that is not\n"
	    "msgpack as {\"$bin\":HEX}); with --raw the payload bytes as they\n"
	    "are, then a newline.  Runs until interrupted, COUNT events (-n) or\n"
	    "SECONDS (-t, exit 0).  TYPE may not start with ':' or the agents'\n"
	    "own prefix.  A --standalone agent is a cluster of one: its own\n"
	    "monitors get what is sent to it.\n"
	    "\n"
	    "Examples:\n"
	    "  distkv-cli serf send deploy web-1.4\n"
	    "  distkv-cli serf send -j deploy '{\"app\":\"web\",\"v\":\"1.4\"}'\n"
	    "  distkv-cli serf mon -n 1 deploy\n"
	    "  {\"app\":\"web\",\"v\":\"1.4\"}\n",
	.opts = serf_opts,
	.minargs = 2,
	.maxargs = 3,
	.flags = CMD_CONNECT,
	.check = cmd_serf_check,
	.exec = cmd_serf,
};


/*
 * A range list [t, [b, e], ...] as "t,b-(e-1)", "-" if empty; -EINVAL
 * (nothing written) if o is not of that shape.
 */
static int
put_ranges(msgpack_sbuffer *b, const msgpack_object *o)
{
	const msgpack_object *it, *lo, *hi;
	size_t mark = b->size;
	char num[64];
	uint32_t i;
	int rc = 0;

	if (o->type != MSGPACK_OBJECT_ARRAY)
		return (-EINVAL);
	if (o->via.array.size == 0)
		return (put(b, "-"));
	for (i = 0; i < o->via.array.size && rc == 0; i++) {
		it = &o->via.array.ptr[i];
		lo = hi = NULL;
		if (it->type == MSGPACK_OBJECT_ARRAY &&
		    it->via.array.size == 2) {
			lo = &it->via.array.ptr[0];
			hi = &it->via.array.ptr[1];
		}
		if (it->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
			snprintf(num, sizeof(num), "%" PRIu64, it->via.u64);
		else if (lo != NULL &&
		    lo->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
		    hi->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
		    hi->via.u64 > lo->via.u64) {
			if (hi->via.u64 - 1 == lo->via.u64)
				snprintf(num, sizeof(num), "%" PRIu64,
				    lo->via.u64);
			else
				snprintf(num, sizeof(num), "%" PRIu64 "-%"
				    PRIu64, lo->via.u64, hi->via.u64 - 1);
		} else {
			rc = -EINVAL;
			break;
		}
		if (i > 0)
			rc = put(b, ",");
		if (rc == 0)
			rc = put(b, num);
	}
	if (rc != 0)
		b->size = mark;
	return (rc);
}

/*
 * The ping chain [{node, tick}, ...], newest first, as one line
 * "  n1:5 n0:3 n2:-" (- : that node had no tick yet); "  -" when empty.
 */
static int
put_ping_chain(msgpack_sbuffer *b, const msgpack_object *o)
{
	char num[24];
	int rc = put(b, " ");

	for (uint32_t i = 0; i < o->via.array.size && rc == 0; i++) {
		const msgpack_object *l = &o->via.array.ptr[i];
		const msgpack_object *name = NULL, *tick = NULL;

		for (uint32_t j = 0; l->type == MSGPACK_OBJECT_MAP &&
		    j < l->via.map.size; j++) {
			const msgpack_object *k = &l->via.map.ptr[j].key;

			if (k->type != MSGPACK_OBJECT_STR)
				continue;
			if (k->via.str.size == 4 &&
			    memcmp(k->via.str.ptr, "node", 4) == 0)
				name = &l->via.map.ptr[j].val;
			else if (k->via.str.size == 4 &&
			    memcmp(k->via.str.ptr, "tick", 4) == 0)
				tick = &l->via.map.ptr[j].val;
		}
		if (name == NULL || name->type != MSGPACK_OBJECT_STR)
			return (-EINVAL);
		if (tick != NULL && tick->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
			snprintf(num, sizeof(num), ":%" PRIu64, tick->via.u64);
		else
			snprintf(num, sizeof(num), ":-");
		if ((rc = put(b, " ")) == 0 &&
		    (rc = putn(b, name->via.str.ptr, name->via.str.size)) == 0)
			rc = put(b, num);
	}
	if (rc == 0 && o->via.array.size == 0)
		rc = put(b, " -");
	return (rc != 0 ? rc : put(b, "\n"));
}

/*
 * One section of the text form of `state': a line per node with its tick
 * or its tick ranges, or the whole value as JSON if it is not a map.
 * Returns 0, -ENOMEM or -EINVAL.
 */
static int
put_state_section(msgpack_sbuffer *b, const msgpack_object *o)
{
	const msgpack_object_kv *kv;
	uint32_t i;
	int rc;

	if (o->type == MSGPACK_OBJECT_ARRAY)
		return (put_ping_chain(b, o));
	if (o->type != MSGPACK_OBJECT_MAP) {
		if ((rc = put(b, "  ")) != 0 ||
		    (rc = mpjson_format(b, o, 0)) != 0)
			return (rc);
		return (put(b, "\n"));
	}
	for (i = 0; i < o->via.map.size; i++) {
		kv = &o->via.map.ptr[i];
		if ((rc = put(b, "  ")) != 0 ||
		    (rc = kv->key.type == MSGPACK_OBJECT_STR ?
		    putn(b, kv->key.via.str.ptr, kv->key.via.str.size) :
		    put(b, "?")) != 0 ||
		    (rc = put(b, " ")) != 0)
			return (rc);
		if (put_ranges(b, &kv->val) != 0 &&
		    (rc = mpjson_format(b, &kv->val, 0)) != 0)
			return (rc);
		if ((rc = put(b, "\n")) != 0)
			return (rc);
	}
	return (0);
}

static int
cmd_state(struct ctx *ctx)
{
	struct distkv_value v = { NULL, 0 };
	const msgpack_object_kv *kv;
	msgpack_sbuffer b;
	msgpack_zone zone;
	msgpack_object o;
	const char *node;
	size_t objlen;
	uint32_t i;
	int rc;

	if ((rc = distkv_state(ctx->c, DISTKV_STATE_ALL, &v)) != 0)
		return (lib_error(ctx, rc, "state"));
	msgpack_sbuffer_init(&b);
	if (!msgpack_zone_init(&zone, 2048)) {
		distkv_value_clear(&v);
		return (cli_err(EXIT_AGENT, "out of memory"));
	}
	if ((node = distkv_node(ctx->c)) == NULL)
		node = "";
	if (v.len == 0 || proto_scan(v.data, v.len, PROTO_MAX_NESTING,
	    &objlen) != 0 || objlen != v.len ||
	    proto_unpack(v.data, v.len, &zone, &o) != 0 ||
	    o.type != MSGPACK_OBJECT_MAP)
		goto bad;
	if (ctx->out == OUT_JSON) {
		/* {"node":NAME, then the reply's keys} */
		if (put(&b, "{\"node\":") != 0 ||
		    mpjson_put_string(&b, node, strlen(node)) != 0)
			goto oom;
		for (i = 0; i < o.via.map.size; i++) {
			kv = &o.via.map.ptr[i];
			if (kv->key.type != MSGPACK_OBJECT_STR)
				goto bad;
			if (put(&b, ",") != 0 ||
			    mpjson_put_string(&b, kv->key.via.str.ptr,
			    kv->key.via.str.size) != 0 ||
			    put(&b, ":") != 0)
				goto oom;
			if ((rc = mpjson_format(&b, &kv->val, 0)) == -ENOMEM)
				goto oom;
			if (rc != 0)
				goto bad;
		}
		if (put(&b, "}\n") != 0)
			goto oom;
		goto print;
	}
	/*
	 * Text: "agent NAME", then per section ("nodes", "known", ...) one
	 * line per node: its tick, or its tick ranges.
	 */
	if (put(&b, "agent ") != 0 || put(&b, node) != 0 ||
	    put(&b, "\n") != 0)
		goto oom;
	for (i = 0; i < o.via.map.size; i++) {
		kv = &o.via.map.ptr[i];
		if (kv->key.type != MSGPACK_OBJECT_STR)
			goto bad;
		if (putn(&b, kv->key.via.str.ptr, kv->key.via.str.size) != 0 ||
		    put(&b, ":\n") != 0)
			goto oom;
		if ((rc = put_state_section(&b, &kv->val)) == -ENOMEM)
			goto oom;
		if (rc != 0)
			goto bad;
	}
print:
	rc = 0;
	if (emit(&b) != 0)
		rc = cli_err(EXIT_AGENT, "write error: %s", strerror(errno));
	goto out;
bad:
	rc = cli_err(EXIT_AGENT, "protocol error: malformed state reply");
	goto out;
oom:
	rc = cli_err(EXIT_AGENT, "out of memory");
out:
	msgpack_zone_destroy(&zone);
	distkv_value_clear(&v);
	msgpack_sbuffer_destroy(&b);
	return (rc);
}

static int
cmd_save(struct ctx *ctx)
{
	int rc;

	if ((rc = distkv_save(ctx->c, ctx->argv[0])) != 0)
		return (lib_error(ctx, rc, ctx->argv[0]));
	if (ctx->out == OUT_JSON)
		printf("{\"result\":true}\n");
	return (0);
}

static int
cmd_log(struct ctx *ctx)
{
	int rc;

	if ((rc = distkv_log(ctx->c, ctx->argv[0], ctx->fetch)) != 0)
		return (lib_error(ctx, rc, ctx->argv[0]));
	if (ctx->out == OUT_JSON)
		printf("{\"result\":true}\n");
	return (0);
}

/* ---- serf ---- */

static int
pack_cstr(msgpack_packer *pk, const char *s)
{
	return (msgpack_pack_str_with_body(pk, s, strlen(s)));
}

/*
 * The request: {action: "serfsend", type, data | raw} or
 * {action: "serfmon", type, raw}.  0 or -ENOMEM.
 */
static int
serf_pack(struct ctx *ctx, msgpack_sbuffer *req)
{
	msgpack_packer pk;
	const char *data = ctx->argv[2];
	bool raw = ctx->out == OUT_RAW;

	msgpack_packer_init(&pk, req, msgpack_sbuffer_write);
	if (msgpack_pack_map(&pk, 3) != 0 ||
	    pack_cstr(&pk, "action") != 0 ||
	    pack_cstr(&pk, ctx->serf_send ? "serfsend" : "serfmon") != 0 ||
	    pack_cstr(&pk, "type") != 0 ||
	    pack_cstr(&pk, ctx->argv[1]) != 0)
		return (-ENOMEM);
	if (!ctx->serf_send) {
		if (pack_cstr(&pk, "raw") != 0 || (raw ?
		    msgpack_pack_true(&pk) : msgpack_pack_false(&pk)) != 0)
			return (-ENOMEM);
		return (0);
	}
	if (raw) {
		if (pack_cstr(&pk, "raw") != 0 ||
		    msgpack_pack_bin_with_body(&pk, data, strlen(data)) != 0)
			return (-ENOMEM);
		return (0);
	}
	/* the value prepare() built, as it is */
	if (pack_cstr(&pk, "data") != 0 ||
	    msgpack_sbuffer_write(req, ctx->val.data, ctx->val.size) != 0)
		return (-ENOMEM);
	return (0);
}

static int
serf_send_cb(void *arg, const uint8_t *msg, size_t len)
{
	(void)arg;
	(void)msg;
	(void)len;
	return (0);	/* the library turns an error reply into rc */
}

struct serf_arg {
	struct ctx	*ctx;
	msgpack_sbuffer	 b;
	msgpack_zone	 zone;
	int		 rc;	/* exit status of a failed print */
};

/* One serfmon reply: an event {type, data | raw [, error]} or a state. */
static int
serf_mon_cb(void *arg, const uint8_t *msg, size_t len)
{
	struct serf_arg *sa = arg;
	struct ctx *ctx = sa->ctx;
	const msgpack_object *type, *data, *raw, *err;
	msgpack_object m;
	msgpack_sbuffer *b = &sa->b;
	int rc = 0;

	msgpack_zone_clear(&sa->zone);
	if (proto_unpack(msg, len, &sa->zone, &m) != 0 ||
	    m.type != MSGPACK_OBJECT_MAP)
		goto bad;
	/* states, and an error reply (the library reports it) */
	if ((type = proto_map_get(&m, "type")) == NULL)
		return (0);
	data = proto_map_get(&m, "data");
	raw = proto_map_get(&m, "raw");
	err = proto_map_get(&m, "error");
	if (type->type != MSGPACK_OBJECT_STR || (data == NULL &&
	    (raw == NULL || raw->type != MSGPACK_OBJECT_BIN)))
		goto bad;
	switch (ctx->out) {
	case OUT_RAW:
		if (raw != NULL && raw->type == MSGPACK_OBJECT_BIN)
			rc = putn(b, raw->via.bin.ptr, raw->via.bin.size);
		else
			rc = mpjson_format(b, data, MPJSON_BARE_STR |
			    MPJSON_BARE_BIN);
		break;
	case OUT_JSON:
		if ((rc = put(b, "{\"type\":")) != 0 ||
		    (rc = mpjson_put_string(b, type->via.str.ptr,
		    type->via.str.size)) != 0 ||
		    (rc = put(b, data != NULL ? ",\"data\":" :
		    ",\"raw\":")) != 0 ||
		    (rc = mpjson_format(b, data != NULL ? data : raw, 0)) != 0)
			break;
		if (data == NULL && err != NULL &&
		    err->type == MSGPACK_OBJECT_STR &&
		    ((rc = put(b, ",\"error\":")) != 0 ||
		    (rc = mpjson_put_string(b, err->via.str.ptr,
		    err->via.str.size)) != 0))
			break;
		rc = put(b, "}");
		break;
	case OUT_TEXT:
		rc = mpjson_format(b, data != NULL ? data : raw, 0);
		break;
	}
	if (rc == 0)
		rc = put(b, "\n");
	if (rc == -ENOMEM) {
		sa->rc = cli_err(EXIT_AGENT, "out of memory");
		return (1);
	}
	if (rc != 0)
		goto bad;
	if (emit(b) != 0) {
		sa->rc = cli_err(EXIT_AGENT, "write error: %s",
		    strerror(errno));
		return (1);
	}
	ctx->seen++;
	return (ctx->count > 0 && ctx->seen >= ctx->count);
bad:
	sa->rc = cli_err(EXIT_AGENT, "protocol error: malformed serfmon "
	    "reply");
	return (1);
}

static int
cmd_serf(struct ctx *ctx)
{
	const char *what = ctx->serf_send ? "serf send" : "serf mon";
	struct serf_arg sa;
	msgpack_sbuffer req;
	int rc;

	msgpack_sbuffer_init(&req);
	if (serf_pack(ctx, &req) != 0) {
		msgpack_sbuffer_destroy(&req);
		return (cli_err(EXIT_AGENT, "out of memory"));
	}
	if (ctx->serf_send) {
		rc = distkv_request(ctx->c, req.data, req.size, serf_send_cb,
		    NULL);
		if (rc != 0)
			rc = lib_error(ctx, rc, what);
		else if (ctx->out == OUT_JSON)
			printf("{\"result\":true}\n");
		msgpack_sbuffer_destroy(&req);
		return (rc);
	}
	memset(&sa, 0, sizeof(sa));
	sa.ctx = ctx;
	msgpack_sbuffer_init(&sa.b);
	if (!msgpack_zone_init(&sa.zone, 2048)) {
		msgpack_sbuffer_destroy(&req);
		return (cli_err(EXIT_AGENT, "out of memory"));
	}
	/* events come when they come: -t is the only limit */
	distkv_set_timeout(ctx->c, ctx->timeout_ms);
	rc = distkv_request(ctx->c, req.data, req.size, serf_mon_cb, &sa);
	if (sa.rc != 0)
		rc = sa.rc;
	else if (rc == DISTKV_ETIMEDOUT && ctx->timeout_ms >= 0)
		rc = 0;		/* -t: stopping is what was asked for */
	else if (rc != 0)
		rc = lib_error(ctx, rc, what);
	msgpack_zone_destroy(&sa.zone);
	msgpack_sbuffer_destroy(&sa.b);
	msgpack_sbuffer_destroy(&req);
	return (rc);
}

/* serf send|mon: the subcommand, TYPE, and for send the DATA value. */
static int
cmd_serf_check(struct ctx *ctx, const struct cli_cmd *cmd)
{
	const char *type = ctx->argv[1];

	if (strcmp(ctx->argv[0], "send") == 0 && ctx->argc == 3) {
		ctx->serf_send = true;
		if (ctx->count != -1 || ctx->timeout_ms != -1)
			return (cli_err(EXIT_USAGE, "serf send takes no -n or "
			    "-t"));
		if (ctx->json_value && ctx->out == OUT_RAW)
			return (cli_err(EXIT_USAGE, "serf send: -j and --raw "
			    "exclude each other"));
	} else if (strcmp(ctx->argv[0], "mon") == 0 && ctx->argc == 2) {
		if (ctx->json_value)
			return (cli_err(EXIT_USAGE, "serf mon takes no -j"));
	} else
		return (cli_err(EXIT_USAGE, "usage: distkv-cli %s",
		    cmd->usage));
	if (*type == '\0' || !proto_utf8_valid(type, strlen(type)))
		return (cli_err(EXIT_USAGE, "serf: TYPE must be a non-empty "
		    "UTF-8 string"));
	if (ctx->serf_send && ctx->out != OUT_RAW)
		return (build_value(ctx, ctx->argv[2], true, &ctx->val));
	return (0);
}

