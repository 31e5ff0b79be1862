/*
 * distkv-cli's options: one table of every option (opts[]), the global
 * ones and each command's own list, parsed with getopt_long(3); and the
 * help texts built from the same tables.
 *
 * Global options stand before the command, or after it among its own
 * options and arguments; "--" ends the options.  An argument that is a
 * negative number ("-5", "-.5") is a value, not an option, so getopt_long
 * is given one option argument at a time ("+": stop at the first
 * non-option) and the positional arguments are collected here.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "distkv.h"
#include "cli.h"
#include "xlate.h"

#define MAX_OPTS	40	/* global and one command's options */
#define LONG_ONLY	256	/* getopt val of an option without a short form */

struct opt {
	enum optid	 id;
	char		 sname;		/* 0: no short form */
	const char	*lname;
	const char	*arg;		/* NULL: a flag */
	const char	*help;
};

static const struct opt *opt_of(enum optid);
static const struct opt *opt_by_val(const enum optid *, int);
static int	apply_opt(struct ctx *, const struct opt *, const char *);
static bool	is_negative_number(const char *);
static int	parse_seconds(const char *, const char *, int *);
static int	bad_option(const struct cli_cmd *, const enum optid *, int,
		    const char *);
static void	print_opt(const struct opt *);
static int	opt_val(const struct opt *);
static int	add_arg(struct ctx *, const struct cli_cmd *, char *);
static bool	long_known(const struct option *, const char *);

static const struct opt opts[] = {
	{ O_HELP, 'h', "help", NULL, "show help and exit" },
	{ O_SOCKET, 0, "socket", "PATH",
	    "the agent's socket (default: $DISTKV_SOCKET)" },
	{ O_CONNECT, 0, "connect", "URL",
	    "the agent at URL: unix:PATH, tls://HOST:PORT, tcp://HOST:PORT "
	    "(default: $DISTKV_CONNECT)" },
	{ O_TLSCA, 0, "tls-ca", "FILE",
	    "tls://: the CA (PEM) the agent's certificate must chain to "
	    "(default: $DISTKV_TLS_CA, else the system's)" },
	{ O_TLSCERT, 0, "tls-cert", "FILE",
	    "tls://: our client certificate (PEM; default: $DISTKV_TLS_CERT)" },
	{ O_TLSKEY, 0, "tls-key", "FILE",
	    "tls://: its private key (PEM; default: $DISTKV_TLS_KEY)" },
	{ O_JSON, 0, "json", NULL, "print one JSON object per line" },
	{ O_RAW, 0, "raw", NULL, "print bare values only" },
	{ O_VERSION, 0, "version", NULL, "print the version and exit" },
	{ O_NOSHM, 0, "no-shm", NULL,
	    "read over the socket, never the shared memory" },
	{ O_SHM, 0, "shm", "PATH",
	    "get reads the region at PATH itself, without the agent "
	    "(default: $DISTKV_SHM)" },
	{ O_NODE, 0, "node", "NAME",
	    "get reads node NAME's region (/dev/shm/distkv-NAME) itself" },
	{ O_AUTH, 'a', "auth", "METHOD",
	    "log in with METHOD (root, password, _test); default: the one "
	    "the agent asks for" },
	{ O_USER, 'u', "user", "NAME",
	    "the user to log in as (default: $DISTKV_USER)" },
	{ O_PWFILE, 0, "password-file", "FILE",
	    "read the password from FILE's first line (else "
	    "$DISTKV_PASSWORD, else asked on the terminal)" },
	{ O_JSONVAL, 'j', "json-value", NULL,
	    "VALUE (and --prev) is JSON, not a string" },
	{ O_NEW, 0, "new", NULL,
	    "fail if the entry has a value (a deleted one may be re-created)" },
	{ O_PRECHAIN, 0, "chain", "NODE:TICK",
	    "fail unless the last change was NODE:TICK" },
	{ O_PREV, 0, "prev", "VALUE",
	    "fail unless the current value is VALUE" },
	{ O_RECURSIVE, 'r', "recursive", NULL,
	    "delete PATH and everything below it" },
	{ O_NCHAIN, 'c', "chain", "N",
	    "show up to N links of the change chain" },
	{ O_MINDEPTH, 0, "min-depth", "N",
	    "skip entries less than N levels below PATH" },
	{ O_MAXDEPTH, 0, "max-depth", "N",
	    "skip entries more than N levels below PATH" },
	{ O_FETCH, 0, "fetch", NULL, "first print the current subtree" },
	{ O_COUNT, 'n', "count", "COUNT",
	    "stop after COUNT changes (not counting --fetch) or events" },
	{ O_TIMEOUT, 't', "timeout", "SECONDS",
	    "give up on the agent after SECONDS (fractions allowed; default "
	    "$DISTKV_TIMEOUT, else 30); watch and wait: stop after SECONDS" },
	{ O_EVENT, 'e', "event", "NODE:TICK",
	    "get the entry changed by NODE:TICK" },
	{ O_CHANGES, 0, "changes", NULL,
	    "return on any change anywhere; print nothing" },
	{ O_STALE, 0, "stale", NULL,
	    "if the agent is not running, print the last value it "
	    "published (exit 5, with a warning saying how old)" },
	{ O_ACL, 0, "acl", "NAME",
	    "test what ACL NAME allows (else your own login's ACL)" },
	{ O_GOOD, 'g', "good", "VALUE",
	    "a value the type accepts (JSON, else a string); repeat" },
	{ O_BAD, 'b', "bad", "VALUE",
	    "a value the type refuses (JSON, else a string); repeat" },
	{ O_SCHEMA, 0, "schema", "FILE",
	    "the type's JSON schema (docs/translator.md: the subset)" },
	{ O_CODE, 0, "code", "FILE", "the type's Lua check (\"-\": stdin)" },
	{ O_DECODE, 0, "decode", "FILE", "the codec's Lua decoder" },
	{ O_ENCODE, 0, "encode", "FILE", "the codec's Lua encoder" },
	{ O_IN, 0, "in", "SRC=RES",
	    "decoding SRC must give RES (JSON, else strings); repeat" },
	{ O_OUT, 0, "out", "SRC=RES",
	    "encoding SRC must give RES (JSON, else strings); repeat" },
	{ O_WAIT, 0, "wait", NULL,
	    "health: wait until healthy (at most -t SECONDS, default 60)" },
	{ O_FILE, 'f', "file", "FILE",
	    "read VALUE from FILE (\"-\": stdin); no VALUE argument" },
	{ O_KEYS, 'k', "keys", NULL, "print the paths only, one per line" },
	{ O_END, 0, NULL, NULL, NULL },
};

static const enum optid global_opts[] = {
	O_HELP, O_SOCKET, O_CONNECT, O_TLSCA, O_TLSCERT, O_TLSKEY, O_JSON,
	O_RAW, O_NOSHM, O_VERSION, O_TIMEOUT, O_SHM, O_NODE, O_AUTH, O_USER,
	O_PWFILE, O_END
};

const enum optid cli_no_opts[] = { O_END };

static const struct opt *
opt_of(enum optid id)
{
	const struct opt *o;

	for (o = opts; o->id != O_END; o++)
		if (o->id == id)
			return (o);
	return (NULL);
}

/* getopt_long's val of an option: its short letter, else LONG_ONLY + id. */
static int
opt_val(const struct opt *o)
{
	return (o->sname != 0 ? o->sname : LONG_ONLY + (int)o->id);
}

static const struct opt *
opt_by_val(const enum optid *allowed, int val)
{
	const struct opt *o;

	for (; *allowed != O_END; allowed++)
		if ((o = opt_of(*allowed)) != NULL && opt_val(o) == val)
			return (o);
	return (NULL);
}

int
args_parse_int(const char *name, const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || errno != 0 || v < min || v > max)
		return (cli_err(EXIT_USAGE, "invalid %s: '%s' (a number from "
		    "%ld to %ld)", name, s, min, max));
	*out = v;
	return (0);
}

/* NODE:TICK, split at the last ':' so node names may contain colons. */
int
args_parse_event(const char *name, const char *s, struct distkv_event *ev)
{
	const char *colon = strrchr(s, ':');
	unsigned long long tick;
	char *end;
	size_t n;

	if (colon == NULL || colon == s || colon[1] == '\0')
		return (cli_err(EXIT_USAGE, "invalid %s: '%s' (expected "
		    "NODE:TICK)", name, s));
	n = (size_t)(colon - s);
	if (n > DISTKV_NODE_MAX)
		return (cli_err(EXIT_USAGE, "invalid %s: node name longer than "
		    "%d bytes", name, DISTKV_NODE_MAX));
	errno = 0;
	tick = strtoull(colon + 1, &end, 10);
	if (*end != '\0' || errno != 0 || !isdigit((unsigned char)colon[1]))
		return (cli_err(EXIT_USAGE, "invalid %s: '%s' (TICK must be a "
		    "number)", name, s));
	memset(ev, 0, sizeof(*ev));
	memcpy(ev->node, s, n);
	ev->tick = tick;
	return (0);
}

static int
apply_opt(struct ctx *ctx, const struct opt *o, const char *arg)
{
	long v = 0;	/* gcc -O3 cannot see parse_int set it */

	switch (o->id) {
	case O_HELP:
		ctx->help = true;
		break;
	case O_VERSION:
		ctx->version = true;
		break;
	case O_SOCKET:
		ctx->socket = arg;
		break;
	case O_CONNECT:
		ctx->connect = arg;
		break;
	case O_TLSCA:
		ctx->tls.ca_file = arg;
		break;
	case O_TLSCERT:
		ctx->tls.cert_file = arg;
		break;
	case O_TLSKEY:
		ctx->tls.key_file = arg;
		break;
	case O_JSON:
		ctx->out = OUT_JSON;
		break;
	case O_RAW:
		ctx->out = OUT_RAW;
		break;
	case O_NOSHM:
		ctx->no_shm = true;
		break;
	case O_SHM:
		ctx->shm = arg;
		break;
	case O_NODE:
		ctx->node = arg;
		break;
	case O_ACL:
		ctx->acl = arg;
		break;
	case O_STALE:
		ctx->stale = true;
		break;
	case O_GOOD:
		return (xlate_cli_add(ctx->xo.good, &ctx->xo.ngood, "good",
		    arg));
	case O_BAD:
		return (xlate_cli_add(ctx->xo.bad, &ctx->xo.nbad, "bad", arg));
	case O_IN:
		return (xlate_cli_add(ctx->xo.in, &ctx->xo.nin, "in", arg));
	case O_OUT:
		return (xlate_cli_add(ctx->xo.out, &ctx->xo.nout, "out", arg));
	case O_SCHEMA:
		ctx->xo.schema = arg;
		break;
	case O_CODE:
		ctx->xo.code = arg;
		break;
	case O_DECODE:
		ctx->xo.decode = arg;
		break;
	case O_ENCODE:
		ctx->xo.encode = arg;
		break;
	case O_AUTH:
		ctx->ao.method = arg;
		break;
	case O_USER:
		ctx->ao.user = arg;
		break;
	case O_PWFILE:
		ctx->ao.password_file = arg;
		break;
	case O_CHANGES:
		ctx->changes = true;
		break;
	case O_WAIT:
		ctx->wait = true;
		break;
	case O_JSONVAL:
		ctx->json_value = true;
		break;
	case O_NEW:
		ctx->is_new = true;
		break;
	case O_PRECHAIN:
		if (args_parse_event("--chain", arg, &ctx->head) != 0)
			return (-1);
		ctx->has_head = true;
		break;
	case O_PREV:
		ctx->prev = arg;
		break;
	case O_RECURSIVE:
		ctx->recursive = true;
		break;
	case O_NCHAIN:
		if (args_parse_int("chain length", arg, 0, DISTKV_CHAIN_MAX,
		    &v) != 0)
			return (-1);
		ctx->nchain = (int)v;
		break;
	case O_MINDEPTH:
		if (args_parse_int("--min-depth", arg, 0, INT_MAX, &v) != 0)
			return (-1);
		ctx->min_depth = (int)v;
		break;
	case O_MAXDEPTH:
		if (args_parse_int("--max-depth", arg, 0, INT_MAX, &v) != 0)
			return (-1);
		ctx->max_depth = (int)v;
		break;
	case O_FETCH:
		ctx->fetch = true;
		break;
	case O_COUNT:
		if (args_parse_int("count", arg, 1, LONG_MAX, &v) != 0)
			return (-1);
		ctx->count = v;
		break;
	case O_TIMEOUT:
		if (parse_seconds("timeout", arg, &ctx->timeout_ms) != 0)
			return (-1);
		break;
	case O_EVENT:
		if (args_parse_event("--event", arg, &ctx->event) != 0)
			return (-1);
		ctx->has_event = true;
		break;
	case O_FILE:
		ctx->file = arg;
		break;
	case O_KEYS:
		ctx->keys = true;
		break;
	case O_END:
		break;
	}
	return (0);
}

/*
 * SECONDS: a decimal number, fractions allowed ("0.5", "2", "1.25"), from
 * 0.001 to INT_MAX / 1000; *ms is it in milliseconds, rounded.
 */
static int
parse_seconds(const char *name, const char *s, int *ms)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	/* digits and one '.' only: no "inf", hex, exponents or blanks */
	if (*s == '\0' || strspn(s, "0123456789.") != strlen(s) ||
	    strchr(s, '.') != strrchr(s, '.') || *end != '\0' || errno != 0 ||
	    !(v >= 0.0005) || v > INT_MAX / 1000)
		return (cli_err(EXIT_USAGE, "invalid %s: '%s' (seconds, from "
		    "0.001 to %d)", name, s, INT_MAX / 1000));
	*ms = (int)(v * 1000.0 + 0.5);
	return (0);
}

/* An argument that is a negative number is a value, not an option. */
static bool
is_negative_number(const char *a)
{
	return (a[0] == '-' && (isdigit((unsigned char)a[1]) ||
	    (a[1] == '.' && isdigit((unsigned char)a[2]))));
}

/* getopt_long said '?' or ':' about arg; print why.  Returns -1. */
static int
bad_option(const struct cli_cmd *cmd, const enum optid *allowed, int c,
    const char *arg)
{
	const struct opt *o = optopt != 0 ? opt_by_val(allowed, optopt) : NULL;
	bool islong = strncmp(arg, "--", 2) == 0;

	if (o != NULL && c == ':') {
		if (islong)
			return (cli_err(-1, "option --%s needs %s", o->lname,
			    o->arg));
		return (cli_err(-1, "option -%c needs %s", o->sname, o->arg));
	}
	if (o != NULL && islong && o->arg == NULL)
		return (cli_err(-1, "option --%s takes no value", o->lname));
	if (!islong && optopt != 0) {
		if (cmd == NULL)
			return (cli_err(-1, "unknown option '-%c' (see "
			    "distkv-cli --help)", optopt));
		return (cli_err(-1, "%s: unknown option '-%c' (see distkv-cli "
		    "%s --help)", cmd->name, optopt, cmd->name));
	}
	if (cmd == NULL)
		return (cli_err(-1, "unknown option '%s' (see distkv-cli "
		    "--help)", arg));
	return (cli_err(-1, "%s: unknown option '%s' (see distkv-cli %s "
	    "--help)", cmd->name, arg, cmd->name));
}

/* "NAME" or "NAME=VALUE" names an option of lopts exactly. */
static bool
long_known(const struct option *lopts, const char *a)
{
	size_t n = strcspn(a, "=");

	for (; lopts->name != NULL; lopts++)
		if (strlen(lopts->name) == n && strncmp(lopts->name, a, n) == 0)
			return (true);
	return (false);
}

static int
add_arg(struct ctx *ctx, const struct cli_cmd *cmd, char *arg)
{
	if (ctx->argc == MAX_ARGS)
		return (cli_err(-1, "%s: too many arguments", cmd->name));
	ctx->argv[ctx->argc++] = arg;
	return (0);
}

/*
 * Parse argv[1..argc).  Without cmd only the global options are known and
 * parsing stops at the first positional argument (the command), whose
 * index is returned ("--" before it is skipped).  With cmd (argv[0] is its
 * name) options and positionals mix freely until "--"; positionals go to
 * ctx->argv.  Returns the index reached, or -1 after printing a usage
 * error.
 */
int
args_parse(struct ctx *ctx, const struct cli_cmd *cmd, int argc, char **argv)
{
	enum optid allowed[MAX_OPTS + 1];
	struct option lopts[MAX_OPTS + 1];
	char sopts[3 * MAX_OPTS + 3], *sp = sopts;
	const struct opt *o;
	const char *a;
	size_t n = 0, k;
	int c, i, at;
	bool mid;

	for (k = 0; global_opts[k] != O_END; k++)
		allowed[n++] = global_opts[k];
	for (k = 0; cmd != NULL && cmd->opts[k] != O_END && n < MAX_OPTS; k++)
		allowed[n++] = cmd->opts[k];
	allowed[n] = O_END;

	*sp++ = '+';	/* stop at non-options: we collect them */
	*sp++ = ':';	/* a missing value is ':', not '?' */
	for (k = 0; k < n; k++) {
		o = opt_of(allowed[k]);
		lopts[k].name = o->lname;
		lopts[k].has_arg = o->arg != NULL ? required_argument :
		    no_argument;
		lopts[k].flag = NULL;
		lopts[k].val = opt_val(o);
		if (o->sname != 0) {
			*sp++ = o->sname;
			if (o->arg != NULL)
				*sp++ = ':';
		}
	}
	memset(&lopts[n], 0, sizeof(lopts[n]));
	*sp = '\0';

	opterr = 0;
	/* glibc starts afresh at optind 0: on an empty list, so it is done */
	optind = 0;
	(void)getopt_long(1, argv, sopts, lopts, NULL);
	for (i = 1, mid = false;;) {
		if (!mid) {
			/* between two arguments: is the next one an option? */
			if (i >= argc)
				break;
			a = argv[i];
			if (strcmp(a, "--") == 0) {
				if (cmd == NULL)
					return (i + 1);
				while (++i < argc)
					if (add_arg(ctx, cmd, argv[i]) != 0)
						return (-1);
				break;
			}
			if (a[0] != '-' || a[1] == '\0' ||
			    is_negative_number(a)) {
				if (cmd == NULL)
					return (i);
				if (add_arg(ctx, cmd, argv[i]) != 0)
					return (-1);
				i++;
				continue;
			}
			/* long names in full: no abbreviations, as before */
			if (a[1] == '-' && !long_known(lopts, a + 2)) {
				optopt = 0;
				return (bad_option(cmd, allowed, '?', a));
			}
			optind = i;
		}
		at = optind;
		optopt = 0;
		c = getopt_long(argc, argv, sopts, lopts, NULL);
		if (c == '?' || c == ':')
			return (bad_option(cmd, allowed, c, argv[at]));
		if (c == -1 || (o = opt_by_val(allowed, c)) == NULL)
			return (cli_err(-1, "cannot parse '%s'", argv[at]));
		if (apply_opt(ctx, o, o->arg != NULL ? optarg : NULL) != 0)
			return (-1);
		/* getopt_long stays on an argument until its last letter */
		mid = optind == at;
		i = optind;
	}
	return (i);
}

/* ---- help ---- */

static void
print_opt(const struct opt *o)
{
	char left[64];

	if (o->sname != 0)
		snprintf(left, sizeof(left), "-%c, --%s%s%s", o->sname,
		    o->lname, o->arg != NULL ? " " : "",
		    o->arg != NULL ? o->arg : "");
	else
		snprintf(left, sizeof(left), "    --%s%s%s", o->lname,
		    o->arg != NULL ? " " : "", o->arg != NULL ? o->arg : "");
	printf("  %-22s %s\n", left, o->help);
}

void
args_usage(FILE *f)
{
	const enum optid *a;
	const struct opt *o;
	size_t i;

	fprintf(f, "usage: distkv-cli [--socket PATH | --connect URL] "
	    "[--json | --raw] [--no-shm] COMMAND [ARGS...]\n");
	if (f != stdout) {
		fprintf(f, "Run 'distkv-cli --help' for the commands.\n");
		return;
	}
	printf("\nRead and write the DistKV tree through the local "
	    "distkv-agent.\n\nCommands:\n");
	for (i = 0; cli_cmds[i] != NULL; i++)
		if (!(cli_cmds[i]->flags & CMD_HIDDEN))
			printf("  %-8s %s\n", cli_cmds[i]->name,
			    cli_cmds[i]->summary);
	printf("\nGlobal options (before or after COMMAND; '--' ends the "
	    "options):\n");
	for (a = global_opts; *a != O_END; a++)
		for (o = opts; o->id != O_END; o++)
			if (o->id == *a)
				print_opt(o);
	printf("\n"
	    "Paths: elements separated by '/', e.g. svc/web/port.  '\\/' and\n"
	    "'\\\\' escape a slash and a backslash; ':42' and ':-5' are integer\n"
	    "elements, ':xCAFE' bytes, '\\:x' a string starting with ':'.\n"
	    "\n"
	    "Output: text by default (get: strings bare, other values as JSON;\n"
	    "tree/watch: \"PATH = JSON\" lines); --json: one JSON object per\n"
	    "line; --raw: bare values (get adds no newline).\n"
	    "\n"
	    "The agent is --socket PATH or --connect URL, else $DISTKV_CONNECT\n"
	    "(a URL), else $DISTKV_SOCKET, else " DISTKV_DEFAULT_SOCKET ".\n"
	    "Remote agents: --connect tls://HOST:PORT with --tls-ca FILE (and\n"
	    "--tls-cert/--tls-key for the cert login); over TCP and TLS every\n"
	    "read goes over the connection (no shared memory).\n"
	    "\n"
	    "Reads: get and wait use the agent's shared-memory region when it\n"
	    "has one; --no-shm (or DISTKV_NO_SHM=1) asks over the socket.\n"
	    "\n"
	    "Exit status: 0 ok, 1 not found (wait: timed out), 2 usage error,\n"
	    "3 agent unreachable, protocol or I/O error, 4 refused by the agent\n"
	    "(e.g. a failed precondition, or serf on a standalone agent),\n"
	    "5 get --stale printed a stopped agent's data, 6 not logged in or\n"
	    "the login was refused, 7 health: the agent is not healthy.\n"
	    "\n"
	    "Examples:\n"
	    "  distkv-cli set svc/web/host www1.example.org\n"
	    "  distkv-cli set -j svc/web/port 8080\n"
	    "  distkv-cli get svc/web/port\n"
	    "  distkv-cli tree svc --json\n"
	    "  distkv-cli watch --fetch svc\n"
	    "  distkv-cli wait -t 60 svc/web/port\n"
	    "\n"
	    "Run 'distkv-cli help COMMAND' for the options of a command; the\n"
	    "manual is docs/cli.md.\n");
}

void
args_cmd_help(const struct cli_cmd *cmd)
{
	const enum optid *a;
	const struct opt *o;

	printf("usage: distkv-cli %s\n\n%s", cmd->usage, cmd->help);
	if (cmd->opts[0] != O_END) {
		printf("\nOptions:\n");
		for (a = cmd->opts; *a != O_END; a++)
			for (o = opts; o->id != O_END; o++)
				if (o->id == *a)
					print_opt(o);
	}
	printf("\nGlobal options: --socket PATH, --connect URL, --tls-ca FILE, "
	    "--json, --raw,\n--no-shm, -h/--help (see distkv-cli --help).\n");
}


/* For completion: "--long" and "-s" of the global options and cmd's. */
void
args_list_options(const struct cli_cmd *cmd)
{
	const enum optid *lists[2] = { global_opts, NULL };
	const enum optid *a;
	const struct opt *o;
	size_t i;

	if (cmd != NULL)
		lists[1] = cmd->opts;
	for (i = 0; i < 2 && lists[i] != NULL; i++)
		for (a = lists[i]; *a != O_END; a++) {
			if ((o = opt_of(*a)) == NULL)
				continue;
			printf("--%s\n", o->lname);
			if (o->sname != 0)
				printf("-%c\n", o->sname);
		}
}
