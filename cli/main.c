/*
 * distkv-cli - the shell tool of DistKV-C (manual: docs/cli.md).
 *
 * The command table cli_cmds[] and main(): parse the global options and
 * the command's (args.c), check everything that can be a usage error
 * before the agent is contacted (prepare()), connect, log in, and run the
 * command.  Each command is an entry and a function in its own cmd_*.c
 * file (tmux's cmd_entry idea).  The agent is reached only through
 * libdistkv; values are built and read with msgpack-c and converted from
 * and to JSON by mpjson (libproto).
 *
 * Exit status: 0 ok, 1 not found (wait: timed out), 2 usage error, 3 agent
 * unreachable / protocol or I/O error, 4 the agent refused the request,
 * 5 stale region data, 6 not allowed.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <msgpack.h>

#include "distkv.h"
#include "auth.h"
#include "cli.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "unknown"
#endif

static int	cmd_help(struct ctx *);
static int	connect_error(struct ctx *, int, const char *);
static int	prepare(struct ctx *, const struct cli_cmd *);

static const struct cli_cmd cmd_help_entry = {
	.name = "help",
	.usage = "help [COMMAND]",
	.summary = "show help for a command",
	.help = "Show the overview, or the help of COMMAND (same as COMMAND "
	    "--help).\n",
	.opts = cli_no_opts,
	.minargs = 0,
	.maxargs = 1,
	.flags = 0,
	.check = NULL,
	.exec = cmd_help,
};

/* Every command, in the order of `distkv-cli --help'. */
const struct cli_cmd *const cli_cmds[] = {
	&cmd_get_entry,
	&cmd_set_entry,
	&cmd_delete_entry,
	&cmd_tree_entry,
	&cmd_watch_entry,
	&cmd_wait_entry,
	&cmd_export_entry,
	&cmd_import_entry,
	&cmd_state_entry,
	&cmd_save_entry,
	&cmd_log_entry,
	&cmd_auth_entry,
	&cmd_acl_entry,
	&cmd_type_entry,
	&cmd_match_entry,
	&cmd_codec_entry,
	&cmd_conv_entry,
	&cmd_serf_entry,
	&cmd_members_entry,
	&cmd_health_entry,
	&cmd_forget_entry,
	&cmd_metrics_entry,
	&cmd_dump_entry,
	&cmd_restore_entry,
	&cmd_help_entry,
	&cmd_commands_entry,
	&cmd_options_entry,
	&cmd_paths_entry,
	NULL
};

const struct cli_cmd *
cli_find_cmd(const char *name)
{
	size_t i;

	for (i = 0; cli_cmds[i] != NULL; i++)
		if (strcmp(cli_cmds[i]->name, name) == 0)
			return (cli_cmds[i]);
	return (NULL);
}

static int
cmd_help(struct ctx *ctx)
{
	const struct cli_cmd *cmd;

	if (ctx->argc == 0) {
		args_usage(stdout);
		return (0);
	}
	if ((cmd = cli_find_cmd(ctx->argv[0])) == NULL)
		return (cli_err(EXIT_USAGE, "unknown command '%s' (see "
		    "distkv-cli --help)", ctx->argv[0]));
	args_cmd_help(cmd);
	return (0);
}

/*
 * Why the agent could not be reached, in words that say what to do:
 * a missing socket, a path that is not a socket, permission denied, no
 * listener, and no answer in time are told apart (issue 13).  A local
 * socket is looked at with stat(2) and access(2) after the failure; for
 * the rest the library's own words (certificate, name, refused) are used,
 * the code's text as the fallback.
 */
static int
connect_error(struct ctx *ctx, int rc, const char *why)
{
	const char *path = NULL, *env;
	struct stat st;
	double secs = 30;
	int saved;

	if (rc == DISTKV_ETIMEDOUT) {
		if ((env = getenv("DISTKV_TIMEOUT")) != NULL && *env != '\0')
			secs = strtod(env, NULL);
		return (cli_err(EXIT_AGENT, "cannot reach the agent at %s: no "
		    "answer within %g s (is it stopped or hung? --timeout "
		    "sets the limit)", ctx->socket, secs));
	}
	if (ctx->connect == NULL)
		path = ctx->socket;
	else if (strncmp(ctx->connect, "unix:", 5) == 0)
		path = ctx->connect + 5;
	if (path != NULL && rc != DISTKV_EINVAL) {
		if (stat(path, &st) != 0) {
			saved = errno;
			if (saved == ENOENT || saved == ENOTDIR)
				return (cli_err(EXIT_AGENT, "cannot reach the "
				    "agent at %s: no such socket (is "
				    "distkv-agent running? --socket or "
				    "$DISTKV_SOCKET name another)", ctx->socket));
			if (saved == EACCES)
				return (cli_err(EXIT_AGENT, "cannot reach the "
				    "agent at %s: permission denied (on a "
				    "directory of the path)", ctx->socket));
		} else if (!S_ISSOCK(st.st_mode))
			return (cli_err(EXIT_AGENT, "cannot reach the agent at "
			    "%s: not a socket (a %s)", ctx->socket,
			    S_ISDIR(st.st_mode) ? "directory" : S_ISREG(
			    st.st_mode) ? "regular file" : "special file"));
		else if (access(path, W_OK) != 0 && errno == EACCES)
			return (cli_err(EXIT_AGENT, "cannot reach the agent at "
			    "%s: permission denied (the socket's group may "
			    "connect: ls -l %s)", ctx->socket, path));
		else if (strstr(why, "refused") != NULL)
			return (cli_err(EXIT_AGENT, "cannot reach the agent at "
			    "%s: connection refused (nothing listens there: "
			    "the agent stopped and left its socket?)",
			    ctx->socket));
	}
	return (cli_err(rc == DISTKV_EINVAL ? EXIT_USAGE : EXIT_AGENT,
	    "cannot reach the agent at %s: %s", ctx->socket,
	    why[0] != '\0' ? why : distkv_strerror(rc)));
}

/*
 * Everything that can be a usage error is checked here, before the agent
 * is contacted: PATH syntax, VALUE syntax, option combinations.
 */
static int
prepare(struct ctx *ctx, const struct cli_cmd *cmd)
{
	struct distkv_set_opts *so = &ctx->so;
	int rc;

	if (cmd->check != NULL && (rc = cmd->check(ctx, cmd)) != 0)
		return (rc);
	if (cmd->flags & CMD_PATH) {
		ctx->pathtext = ctx->argc > 0 ? ctx->argv[0] : "";
		ctx->label = *ctx->pathtext != '\0' ? ctx->pathtext : "/";
		if ((rc = parse_path(ctx->pathtext, &ctx->path)) != 0)
			return (rc);
	}
	if ((cmd->flags & CMD_VALUE) &&
	    (rc = build_value(ctx, ctx->argv[1], false, &ctx->val)) != 0)
		return (rc);
	if (!(cmd->flags & CMD_PRECOND))
		return (0);
	if (ctx->recursive && (ctx->is_new || ctx->has_head ||
	    ctx->prev != NULL))
		return (cli_err(EXIT_USAGE, "delete -r takes no preconditions "
		    "(--new, --chain, --prev)"));
	if (ctx->is_new && ctx->has_head)
		return (cli_err(EXIT_USAGE, "--new and --chain exclude each "
		    "other"));
	memset(so, 0, sizeof(*so));
	so->nchain = -1;
	if (ctx->is_new)
		so->pre = DISTKV_PRE_NEW;
	else if (ctx->has_head) {
		so->pre = DISTKV_PRE_CHAIN;
		so->chain_head = ctx->head;
	}
	if (ctx->prev != NULL) {
		rc = build_value(ctx, ctx->prev, true, &ctx->prev_val);
		if (rc != 0)
			return (rc);
		so->prev = ctx->prev_val.data;
		so->prev_len = ctx->prev_val.size;
	}
	return (0);
}


int
main(int argc, char **argv)
{
	struct ctx ctx;
	const struct cli_cmd *cmd;
	const char *env;
	int i, rc;

	memset(&ctx, 0, sizeof(ctx));
	ctx.max_depth = -1;
	ctx.count = -1;
	ctx.timeout_ms = -1;

	if ((i = args_parse(&ctx, NULL, argc, argv)) < 0)
		return (EXIT_USAGE);
	if (ctx.version) {
		printf("distkv-cli %s\n", PACKAGE_VERSION);
		return (0);
	}
	if (i >= argc) {
		if (ctx.help) {
			args_usage(stdout);
			return (0);
		}
		args_usage(stderr);
		return (EXIT_USAGE);
	}
	if ((cmd = cli_find_cmd(argv[i])) == NULL)
		return (cli_err(EXIT_USAGE, "unknown command '%s' (see "
		    "distkv-cli --help)", argv[i]));
	if (args_parse(&ctx, cmd, argc - i, argv + i) < 0)
		return (EXIT_USAGE);
	if (ctx.help) {
		args_cmd_help(cmd);
		return (0);
	}
	if (ctx.argc < cmd->minargs || ctx.argc > cmd->maxargs)
		return (cli_err(EXIT_USAGE, "usage: distkv-cli %s",
		    cmd->usage));
	if ((rc = prepare(&ctx, cmd)) != 0)
		goto out;

	if (ctx.socket != NULL && ctx.connect != NULL) {
		rc = cli_err(EXIT_USAGE, "--socket and --connect exclude each "
		    "other");
		goto out;
	}
	/* --socket names the local agent outright: $DISTKV_CONNECT yields */
	if (ctx.connect == NULL && ctx.socket == NULL &&
	    (env = getenv("DISTKV_CONNECT")) != NULL && *env != '\0')
		ctx.connect = env;
	if (ctx.connect != NULL)
		ctx.socket = ctx.connect;	/* for messages */
	if (ctx.socket == NULL) {
		env = getenv("DISTKV_SOCKET");
		ctx.socket = env != NULL && *env != '\0' ? env :
		    DISTKV_DEFAULT_SOCKET;
	}
	/* libdistkv maps the region unless told not to */
	if (ctx.no_shm && setenv("DISTKV_NO_SHM", "1", 1) != 0) {
		rc = cli_err(EXIT_AGENT, "setenv: %s", strerror(errno));
		goto out;
	}
	/* every socket operation gives up after --timeout */
	if (ctx.timeout_ms > 0 && !(cmd->flags & CMD_OWNTIMEOUT)) {
		char secs[32];

		snprintf(secs, sizeof(secs), "%d.%03d", ctx.timeout_ms / 1000,
		    ctx.timeout_ms % 1000);
		if (setenv("DISTKV_TIMEOUT", secs, 1) != 0) {
			rc = cli_err(EXIT_AGENT, "setenv: %s", strerror(errno));
			goto out;
		}
	}
	/* a region named outright is read without the agent */
	env = getenv("DISTKV_SHM");
	if ((cmd->flags & CMD_REGION) && !ctx.has_event && ctx.nchain == 0 &&
	    !ctx.no_shm && (ctx.shm != NULL || ctx.node != NULL ||
	    (env != NULL && *env != '\0'))) {
		rc = get_region(&ctx, ctx.stale);
		goto out;
	}
	if ((cmd->flags & CMD_CONNECT) && (rc = ctx.connect != NULL ?
	    distkv_connect_url(ctx.connect, &ctx.tls, &ctx.c) :
	    distkv_connect(ctx.socket, &ctx.c)) != 0) {
		const char *why = distkv_connect_errmsg();

		if ((cmd->flags & CMD_REGION) && ctx.stale && ctx.nchain == 0 &&
		    !ctx.has_event) {
			rc = get_region(&ctx, true);
			goto out;
		}
		rc = connect_error(&ctx, rc, why);
		goto out;
	}
	if ((cmd->flags & CMD_CONNECT) && (rc = auth_login(ctx.c, &ctx.ao)) != 0)
		goto out;
	rc = cmd->exec(&ctx);
	if (fflush(stdout) != 0 || ferror(stdout))
		rc = cli_err(EXIT_AGENT, "write error: %s", strerror(errno));
out:
	distkv_close(ctx.c);
	distkv_path_free(ctx.path);
	msgpack_sbuffer_destroy(&ctx.val);
	msgpack_sbuffer_destroy(&ctx.prev_val);
	return (rc);
}
