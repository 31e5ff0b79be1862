/*
 * distkv-cli members, health, forget, metrics, dump, restore: the
 * operator commands (docs/cli.md, "Cluster and operations").  The work
 * is done in ops.c; here are the entries.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdbool.h>
#include <stddef.h>

#include "distkv.h"
#include "auth.h"
#include "cli.h"
#include "ops.h"

static int	cmd_members(struct ctx *);
static int	cmd_health(struct ctx *);
static int	cmd_forget(struct ctx *);
static int	cmd_metrics(struct ctx *);
static int	cmd_dump(struct ctx *);
static int	cmd_restore(struct ctx *);

static const enum optid ops_opts[] = { O_JSONVAL, O_END };
static const enum optid health_opts[] = { O_JSONVAL, O_WAIT, O_END };

const struct cli_cmd cmd_members_entry = {
	.name = "members",
	.usage = "members [-j]",
	.summary = "list the cluster's nodes and how they are doing",
	.help =
	    "One line per node: Serf status (alive, failed, left, ...), its\n"
	    "tick, whether it reported what it has seen (tombstone purges\n"
	    "wait for every node's report), when this agent last heard of it,\n"
	    "how many of its changes this agent misses, and how many changes\n"
	    "known here its last report did not include yet (lag).  -j or\n"
	    "--json: the agent's get_members reply as JSON.\n",
	.opts = ops_opts,
	.minargs = 0,
	.maxargs = 0,
	.flags = CMD_CONNECT,
	.check = NULL,
	.exec = cmd_members,
};

const struct cli_cmd cmd_health_entry = {
	.name = "health",
	.usage = "health [-j] [--wait [-t SECONDS]]",
	.summary = "exit 0 if this agent is ready, joined and missing nothing",
	.help =
	    "Exit 0 when the agent answers, has its data, is connected to\n"
	    "Serf and joined (or runs --standalone) and misses no change of\n"
	    "another node; else exit 7 with the reason on stderr (3: bad\n"
	    "usage of the connection).  -j: one JSON object for monitoring.\n"
	    "--wait: try again until healthy, for -t SECONDS (default 60).\n"
	    "\n"
	    "Example:\n"
	    "  distkv-cli health --wait -t 30 && echo up\n",
	.opts = health_opts,
	.minargs = 0,
	.maxargs = 0,
	.flags = 0,		/* connects by itself, again with --wait */
	.check = NULL,
	.exec = cmd_health,
};

const struct cli_cmd cmd_forget_entry = {
	.name = "forget",
	.usage = "forget NODE",
	.summary = "forget a node that is gone for good",
	.help =
	    "Tell the cluster that NODE will not come back, so tombstone\n"
	    "purges stop waiting for its report (DistKV's kill_node).  Refused\n"
	    "for this node and for a node Serf lists alive.  The forget is a\n"
	    "change of the meta tree and replicates (docs/cluster.md).\n",
	.opts = ops_opts,
	.minargs = 1,
	.maxargs = 1,
	.flags = CMD_CONNECT,
	.check = NULL,
	.exec = cmd_forget,
};

const struct cli_cmd cmd_metrics_entry = {
	.name = "metrics",
	.usage = "metrics",
	.summary = "print the agent's metrics (Prometheus text)",
	.help =
	    "The text distkv-agent --metrics serves over HTTP\n"
	    "(docs/operations.md, Metrics).\n",
	.opts = cli_no_opts,
	.minargs = 0,
	.maxargs = 0,
	.flags = CMD_CONNECT,
	.check = NULL,
	.exec = cmd_metrics,
};

const struct cli_cmd cmd_dump_entry = {
	.name = "dump",
	.usage = "dump FILE",
	.summary = "write a snapshot of the agent's tree to FILE here",
	.help =
	    "Stream a snapshot from the agent into FILE on this host (\"-\":\n"
	    "stdout), in the agent's snapshot format: distkv-agent --load FILE\n"
	    "and distkv-cli restore FILE read it (docs/operations.md).\n",
	.opts = ops_opts,
	.minargs = 1,
	.maxargs = 1,
	.flags = CMD_CONNECT,
	.check = NULL,
	.exec = cmd_dump,
};

const struct cli_cmd cmd_restore_entry = {
	.name = "restore",
	.usage = "restore FILE",
	.summary = "apply a dump (or snapshot or log file) to the agent",
	.help =
	    "Send every record of FILE (\"-\": stdin) to the agent as an\n"
	    "update, with its original chain: the agent applies it like a\n"
	    "loaded file, and replicates it to its cluster by catch-up.  For\n"
	    "an empty node or a new cluster (docs/operations.md, Backup).\n",
	.opts = ops_opts,
	.minargs = 1,
	.maxargs = 1,
	.flags = CMD_CONNECT,
	.check = NULL,
	.exec = cmd_restore,
};

static int
run_ops(struct ctx *ctx, const char *cmd)
{
	struct ops_opts o = {
		.json = ctx->out == OUT_JSON || ctx->json_value,
		.wait = ctx->wait,
		.timeout_ms = ctx->timeout_ms,
		.socket = ctx->socket,
		.connect = ctx->connect,
		.tls = &ctx->tls,
		.ao = &ctx->ao,
	};

	return (ops_command(ctx->c, cmd, &o, ctx->argc, ctx->argv));
}

static int
cmd_members(struct ctx *ctx)
{
	return (run_ops(ctx, "members"));
}

static int
cmd_health(struct ctx *ctx)
{
	return (run_ops(ctx, "health"));
}

static int
cmd_forget(struct ctx *ctx)
{
	return (run_ops(ctx, "forget"));
}

static int
cmd_metrics(struct ctx *ctx)
{
	return (run_ops(ctx, "metrics"));
}

static int
cmd_dump(struct ctx *ctx)
{
	return (run_ops(ctx, "dump"));
}

static int
cmd_restore(struct ctx *ctx)
{
	return (run_ops(ctx, "restore"));
}
