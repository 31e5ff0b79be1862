/*
 * Hidden commands for the shell completions (contrib/completion/): what
 * to offer comes from distkv-cli itself, so the scripts never fall out of
 * step with the commands, the options and the tree.
 *
 *   distkv-cli __commands            the commands, one per line
 *   distkv-cli __options [COMMAND]   the options (global ones and COMMAND's)
 *   distkv-cli __paths [PREFIX]      the next path steps that extend PREFIX
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "distkv.h"
#include "cli.h"

struct paths_arg {
	const char	*prefix;	/* as typed */
	size_t		 dirlen;	/* prefix up to its last '/' */
	char		*last;		/* the last step printed */
};

static int	cmd_commands(struct ctx *);
static int	cmd_options(struct ctx *);
static int	cmd_paths(struct ctx *);
static int	paths_check(struct ctx *, const struct cli_cmd *);
static int	paths_cb(void *, const struct distkv_entry *);
static size_t	last_slash(const char *);

const struct cli_cmd cmd_commands_entry = {
	.name = "__commands",
	.usage = "__commands",
	.summary = "(for completion) the commands",
	.help = "Print the commands, one per line (for shell completion).\n",
	.opts = cli_no_opts,
	.minargs = 0,
	.maxargs = 0,
	.flags = CMD_HIDDEN,
	.check = NULL,
	.exec = cmd_commands,
};

const struct cli_cmd cmd_options_entry = {
	.name = "__options",
	.usage = "__options [COMMAND]",
	.summary = "(for completion) the options",
	.help = "Print the global options and COMMAND's, one per line.\n",
	.opts = cli_no_opts,
	.minargs = 0,
	.maxargs = 1,
	.flags = CMD_HIDDEN,
	.check = NULL,
	.exec = cmd_options,
};

const struct cli_cmd cmd_paths_entry = {
	.name = "__paths",
	.usage = "__paths [PREFIX]",
	.summary = "(for completion) paths",
	.help =
	    "Print the paths that extend PREFIX by one step, one per line, in\n"
	    "the path syntax; a step with entries below it also as \"STEP/\".\n",
	.opts = cli_no_opts,
	.minargs = 0,
	.maxargs = 1,
	.flags = CMD_CONNECT | CMD_HIDDEN,
	.check = paths_check,
	.exec = cmd_paths,
};

static int
cmd_commands(struct ctx *ctx)
{
	size_t i;

	(void)ctx;
	for (i = 0; cli_cmds[i] != NULL; i++)
		if (!(cli_cmds[i]->flags & CMD_HIDDEN))
			printf("%s\n", cli_cmds[i]->name);
	return (0);
}

static int
cmd_options(struct ctx *ctx)
{
	const struct cli_cmd *cmd = NULL;

	if (ctx->argc > 0 && (cmd = cli_find_cmd(ctx->argv[0])) == NULL)
		return (cli_err(EXIT_USAGE, "unknown command '%s'",
		    ctx->argv[0]));
	args_list_options(cmd);
	return (0);
}

/* Index just past the last '/' of s that is not escaped ("\/"); 0: none. */
static size_t
last_slash(const char *s)
{
	size_t i, at = 0;

	for (i = 0; s[i] != '\0'; i++) {
		if (s[i] == '\\' && s[i + 1] != '\0')
			i++;
		else if (s[i] == '/')
			at = i + 1;
	}
	return (at);
}

/* The directory part of PREFIX is the PATH whose tree is walked. */
static int
paths_check(struct ctx *ctx, const struct cli_cmd *cmd)
{
	const char *prefix = ctx->argc > 0 ? ctx->argv[0] : "";
	size_t dir = last_slash(prefix);
	char *text;
	int rc;

	(void)cmd;
	if ((text = strndup(prefix, dir > 0 ? dir - 1 : 0)) == NULL)
		return (cli_err(EXIT_AGENT, "out of memory"));
	ctx->pathtext = prefix;
	ctx->label = "/";
	rc = distkv_path_parse(text, &ctx->path) != 0 ? EXIT_USAGE : 0;
	free(text);
	return (rc);
}

/*
 * Every entry below the directory gives the step right after it; entries
 * arrive parents first, so equal steps follow each other.
 */
static int
paths_cb(void *arg, const struct distkv_entry *e)
{
	struct paths_arg *pa = arg;
	char *s = NULL, *step;
	size_t i, n, len;

	if (distkv_path_format(e->path, &s) != 0)
		return (0);
	len = strlen(s);
	if (len <= pa->dirlen || strncmp(s, pa->prefix, pa->dirlen) != 0 ||
	    strncmp(s, pa->prefix, strlen(pa->prefix)) != 0) {
		free(s);
		return (0);
	}
	/* the step: up to the next unescaped '/' (kept) or the end */
	step = s + pa->dirlen;
	for (i = 0; step[i] != '\0' && step[i] != '/'; i++)
		if (step[i] == '\\' && step[i + 1] != '\0')
			i++;
	n = pa->dirlen + i + (step[i] == '/');
	s[n] = '\0';
	if (pa->last == NULL || strcmp(pa->last, s) != 0) {
		printf("%s\n", s);
		free(pa->last);
		pa->last = s;
	} else
		free(s);
	return (0);
}

static int
cmd_paths(struct ctx *ctx)
{
	struct distkv_tree_opts to;
	struct paths_arg pa;
	int rc;

	memset(&pa, 0, sizeof(pa));
	pa.prefix = ctx->pathtext;
	pa.dirlen = last_slash(ctx->pathtext);
	memset(&to, 0, sizeof(to));
	to.max_depth = -1;
	to.min_depth = 1;
	rc = distkv_get_tree(ctx->c, ctx->path, &to, paths_cb, &pa);
	free(pa.last);
	return (rc != 0 ? lib_error(ctx, rc, "paths") : 0);
}
