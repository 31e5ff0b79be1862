/*
 * distkv-cli get, set, delete: one entry at a time (docs/cli.md).
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
#include "region.h"

static int	cmd_get(struct ctx *);
static int	cmd_get_check(struct ctx *, const struct cli_cmd *);
static int	cmd_set(struct ctx *);
static int	cmd_set_check(struct ctx *, const struct cli_cmd *);
static int	cmd_delete(struct ctx *);
static int	put_set_result(struct ctx *, const char *,
		    const struct distkv_set_result *);

static const enum optid get_opts[] = { O_NCHAIN, O_EVENT, O_STALE, O_END };
static const enum optid set_opts[] = {
	O_JSONVAL, O_FILE, O_NEW, O_PRECHAIN, O_PREV, O_END
};
static const enum optid delete_opts[] = {
	O_RECURSIVE, O_JSONVAL, O_NEW, O_PRECHAIN, O_PREV, O_END
};

const struct cli_cmd cmd_get_entry = {
	.name = "get",
	.usage = "get [-c N] PATH | get -e NODE:TICK",
	.summary = "print the value at PATH",
	.help =
	    "Print the value stored at PATH.  In the default output a string is\n"
	    "printed as it is, any other value as JSON.  A path without a\n"
	    "value (never set, or deleted) is \"not found\": exit status 1.\n"
	    "With -c N the change chain (newest change first) is printed on a\n"
	    "second line, \"chain: NODE:TICK ...\".  With -e the entry whose\n"
	    "chain holds that change is printed as \"PATH = VALUE\".\n"
	    "\n"
	    "The value is read from the agent's shared-memory region when the\n"
	    "agent has one (no round trip), else over the socket; --no-shm\n"
	    "always asks over the socket.  The output is the same either way.\n"
	    "\n"
	    "Examples:\n"
	    "  distkv-cli get svc/web/host\n"
	    "  distkv-cli get --json -c 3 svc/web/port\n"
	    "  {\"path\":\"svc/web/port\",\"value\":8080,\"tock\":12,"
	    "\"chain\":[{\"node\":\"n1\",\"tick\":4}]}\n"
	    "  distkv-cli get --raw certs/web.pem > web.pem\n"
	    "  distkv-cli get counters/:42        # integer path element 42\n"
	    "  distkv-cli get -e n1:4\n",
	.opts = get_opts,
	.minargs = 0,
	.maxargs = 1,
	.flags = CMD_CONNECT | CMD_PATH | CMD_REGION,
	.check = cmd_get_check,
	.exec = cmd_get,
};

const struct cli_cmd cmd_set_entry = {
	.name = "set",
	.usage = "set [-j] [--new | --chain NODE:TICK] [--prev VALUE] "
	    "PATH VALUE|-|@FILE | set [-j] ... --file FILE PATH",
	.summary = "store VALUE at PATH",
	.help =
	    "Store VALUE at PATH.  VALUE is a string unless -j is given; then it\n"
	    "is JSON and may be any type (integers, floats, true/false, arrays,\n"
	    "objects, {\"$bin\":\"HEX\"} for bytes; see docs/cli.md).  null is\n"
	    "not a value: use delete.  The preconditions make the write\n"
	    "conditional; when one fails the agent's message is printed and the\n"
	    "exit status is 4.  Prints nothing unless --json is given.\n"
	    "\n"
	    "VALUE \"-\" reads the value from stdin, \"@FILE\" (or --file FILE\n"
	    "and no VALUE) from FILE: with -j as JSON, else its bytes as they\n"
	    "are (a trailing newline included): a string if they are UTF-8,\n"
	    "else a byte string.  At most 4 MiB less 64 KiB.  A string\n"
	    "VALUE that starts with '@' or is \"-\" is given as JSON: -j '\"@x\"'.\n"
	    "\n"
	    "Examples:\n"
	    "  distkv-cli set svc/web/host www1.example.org\n"
	    "  distkv-cli set -j svc/web/port 8080\n"
	    "  distkv-cli set -j svc/web '{\"port\":8080,\"tags\":[\"a\",\"b\"]}'\n"
	    "  distkv-cli set --new locks/backup \"$(hostname)\"  # create only\n"
	    "  distkv-cli set --chain n1:4 -j svc/web/port 8081   # compare and "
	    "swap\n"
	    "  distkv-cli set --prev 8080 -j svc/web/port 8081\n"
	    "  distkv-cli set -j temp/min -5   # negative numbers are values\n"
	    "  distkv-cli set note -- --x      # '--' ends the options\n"
	    "  distkv-cli set certs/web.pem @web.pem\n"
	    "  jq -c . conf.json | distkv-cli set -j svc/web/conf -\n",
	.opts = set_opts,
	.minargs = 1,
	.maxargs = 2,
	.flags = CMD_CONNECT | CMD_PATH | CMD_PRECOND,
	.check = cmd_set_check,
	.exec = cmd_set,
};

const struct cli_cmd cmd_delete_entry = {
	.name = "delete",
	.usage = "delete [-r] [--new | --chain NODE:TICK] "
	    "[--prev VALUE] PATH",
	.summary = "delete the value at PATH",
	.help =
	    "Delete the value at PATH (the agent keeps a tombstone, so the\n"
	    "entry's chain stays usable with --chain).  Deleting a path that has\n"
	    "no value is not an error.  With -r PATH and every value below it\n"
	    "are deleted (each one as its own change); the preconditions cannot\n"
	    "be combined with -r.  With --json the reply is printed:\n"
	    "{\"path\":...,\"changed\":...} or, with -r, {\"path\":...,"
	    "\"deleted\":N}.\n"
	    "\n"
	    "Examples:\n"
	    "  distkv-cli delete svc/web/host\n"
	    "  distkv-cli delete --prev www1.example.org svc/web/host\n"
	    "  distkv-cli delete -r svc/web\n",
	.opts = delete_opts,
	.minargs = 1,
	.maxargs = 1,
	.flags = CMD_CONNECT | CMD_PATH | CMD_PRECOND,
	.check = NULL,
	.exec = cmd_delete,
};

/*
 * set PATH VALUE, set PATH - (stdin), set PATH @FILE, set --file FILE
 * PATH: the value is built here, before the agent is contacted.
 */
static int
cmd_set_check(struct ctx *ctx, const struct cli_cmd *cmd)
{
	const char *v = ctx->argc == 2 ? ctx->argv[1] : NULL;

	if ((ctx->file != NULL) == (v != NULL))
		return (cli_err(EXIT_USAGE, "usage: distkv-cli %s",
		    cmd->usage));
	if (ctx->file != NULL)
		return (input_value(ctx, ctx->file, &ctx->val));
	if (strcmp(v, "-") == 0)
		return (input_value(ctx, "-", &ctx->val));
	if (v[0] == '@') {
		if (v[1] == '\0')
			return (cli_err(EXIT_USAGE, "set: '@' needs a file name "
			    "(@FILE)"));
		return (input_value(ctx, v + 1, &ctx->val));
	}
	return (build_value(ctx, v, false, &ctx->val));
}

/* get PATH, or get -e NODE:TICK without one. */
static int
cmd_get_check(struct ctx *ctx, const struct cli_cmd *cmd)
{
	if (ctx->has_event == (ctx->argc == 1))
		return (cli_err(EXIT_USAGE, "usage: distkv-cli %s",
		    cmd->usage));
	return (0);
}

static int
cmd_get(struct ctx *ctx)
{
	struct distkv_entry e;
	msgpack_sbuffer b;
	char what[DISTKV_NODE_MAX + 32];
	int rc;

	msgpack_sbuffer_init(&b);
	memset(&e, 0, sizeof(e));
	if (ctx->has_event) {
		snprintf(what, sizeof(what), "%s:%" PRIu64, ctx->event.node,
		    ctx->event.tick);
		rc = distkv_get_event(ctx->c, ctx->event.node,
		    ctx->event.tick, ctx->nchain, &e);
		/*
		 * The agent's only refusal here is an unknown or superseded
		 * event (its text is just the tick): report "not found".
		 */
		if (DISTKV_IS_REFUSAL(rc))
			rc = cli_err(EXIT_NOTFOUND, "%s: no such change (the "
			    "agent said: %s)", what, distkv_errmsg(ctx->c));
		else if (rc != 0)
			rc = lib_error(ctx, rc, what);
		else
			rc = put_entry(ctx, &b, e.path, &e, false);
		goto out;
	}
	if ((rc = distkv_get(ctx->c, ctx->path, ctx->nchain, &e)) != 0) {
		rc = lib_error(ctx, rc, ctx->label);
		goto out;
	}
	if (e.value.len == 0 || distkv_value_is_nil(e.value.data,
	    e.value.len)) {
		rc = cli_err(EXIT_NOTFOUND, "%s: not found", ctx->label);
		goto out;
	}
	rc = put_entry(ctx, &b, ctx->path, &e, true);
out:
	distkv_entry_clear(&e);
	msgpack_sbuffer_destroy(&b);
	return (rc);
}

/*
 * get from the region itself (--shm, --node, $DISTKV_SHM, or --stale once
 * the agent did not answer): no socket, so nothing can hang.  Data of an
 * agent that is not running is printed only with --stale, with a warning
 * saying how old it is, and exit status 5.
 */
int
get_region(struct ctx *ctx, bool stale)
{
	struct distkv_entry e;
	struct region_read rr;
	msgpack_sbuffer b;
	int rc;

	rc = region_get(ctx->shm, ctx->node, stale, ctx->path, &e, &rr);
	if (rc == DISTKV_ESTALE) {
		rc = cli_err(EXIT_AGENT, "%s: the agent of %s is not running "
		    "(last heartbeat %.1f s ago); --stale prints its last "
		    "data anyway", ctx->label, rr.path,
		    (double)rr.age_ms / 1000.0);
		goto out;
	}
	if (rc != 0 && rc != DISTKV_ENOTFOUND) {
		rc = cli_err(EXIT_AGENT, "cannot read the region %s: %s",
		    rr.path, distkv_strerror(rc));
		goto out;
	}
	if (!rr.alive)
		fprintf(stderr, "distkv-cli: warning: stale data: the agent of "
		    "%s is not running; this is what it published %.1f s ago "
		    "or earlier\n", rr.path, (double)rr.age_ms / 1000.0);
	if (rc == DISTKV_ENOTFOUND) {
		rc = cli_err(EXIT_NOTFOUND, "%s: not found", ctx->label);
		goto out;
	}
	msgpack_sbuffer_init(&b);
	rc = put_entry(ctx, &b, ctx->path, &e, true);
	msgpack_sbuffer_destroy(&b);
	if (rc == 0 && !rr.alive)
		rc = EXIT_STALE;
out:
	distkv_entry_clear(&e);
	return (rc);
}

/* --json output of set and delete. */
static int
put_set_result(struct ctx *ctx, const char *path,
    const struct distkv_set_result *r)
{
	msgpack_sbuffer b;
	char num[48];
	int rc = 0;

	if (ctx->out != OUT_JSON)
		return (0);
	msgpack_sbuffer_init(&b);
	snprintf(num, sizeof(num), ",\"changed\":%s,\"tock\":%" PRIu64,
	    r->changed ? "true" : "false", r->tock);
	if (put(&b, "{\"path\":") != 0 ||
	    mpjson_put_string(&b, path, strlen(path)) != 0 ||
	    put(&b, num) != 0)
		rc = -1;
	if (rc == 0 && r->chain.n > 0 && (put(&b, ",\"chain\":") != 0 ||
	    put_chain_json(&b, &r->chain) != 0))
		rc = -1;
	if (rc == 0 && r->has_prev) {
		if (put(&b, ",\"prev\":") != 0)
			rc = -1;
		else if (r->prev.len == 0)
			rc = put(&b, "null");
		else if (mpjson_format_bytes(&b, r->prev.data, r->prev.len,
		    0) != 0)
			rc = put(&b, "null");
	}
	if (rc == 0 && put(&b, "}\n") != 0)
		rc = -1;
	if (rc != 0)
		rc = cli_err(EXIT_AGENT, "out of memory");
	else if (emit(&b) != 0)
		rc = cli_err(EXIT_AGENT, "write error: %s", strerror(errno));
	msgpack_sbuffer_destroy(&b);
	return (rc);
}

static int
cmd_set(struct ctx *ctx)
{
	struct distkv_set_result r;
	int rc;

	memset(&r, 0, sizeof(r));
	if ((rc = distkv_set(ctx->c, ctx->path, ctx->val.data, ctx->val.size,
	    &ctx->so, &r)) != 0)
		rc = lib_error(ctx, rc, ctx->label);
	else
		rc = put_set_result(ctx, ctx->pathtext, &r);
	distkv_set_result_clear(&r);
	return (rc);
}

static int
cmd_delete(struct ctx *ctx)
{
	struct distkv_set_result r;
	msgpack_sbuffer b;
	uint64_t count = 0;
	char num[48];
	int rc;

	memset(&r, 0, sizeof(r));
	if (!ctx->recursive) {
		if ((rc = distkv_delete(ctx->c, ctx->path, &ctx->so, &r)) != 0)
			rc = lib_error(ctx, rc, ctx->label);
		else
			rc = put_set_result(ctx, ctx->pathtext, &r);
		distkv_set_result_clear(&r);
		return (rc);
	}
	if ((rc = distkv_delete_tree(ctx->c, ctx->path, &count)) != 0)
		return (lib_error(ctx, rc, ctx->label));
	if (ctx->out != OUT_JSON)
		return (0);
	msgpack_sbuffer_init(&b);
	snprintf(num, sizeof(num), ",\"deleted\":%" PRIu64 "}\n", count);
	if (put(&b, "{\"path\":") != 0 ||
	    mpjson_put_string(&b, ctx->pathtext, strlen(ctx->pathtext)) != 0 ||
	    put(&b, num) != 0)
		rc = cli_err(EXIT_AGENT, "out of memory");
	else if (emit(&b) != 0)
		rc = cli_err(EXIT_AGENT, "write error: %s", strerror(errno));
	msgpack_sbuffer_destroy(&b);
	return (rc);
}
