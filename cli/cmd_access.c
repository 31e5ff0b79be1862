/*
 * distkv-cli auth, acl, type, match, codec, conv: logins, ACLs and the
 * translator's records (docs/cli.md, docs/translator.md).  The work is
 * done in auth.c, acl.c and xlate.c; here are the entries.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdbool.h>
#include <stddef.h>

#include "distkv.h"
#include "acl.h"
#include "auth.h"
#include "cli.h"
#include "xlate.h"

static int	cmd_auth(struct ctx *);
static int	cmd_acl(struct ctx *);
static int	cmd_type(struct ctx *);
static int	cmd_match(struct ctx *);
static int	cmd_codec(struct ctx *);
static int	cmd_conv(struct ctx *);

static const enum optid acl_opts[] = { O_ACL, O_END };
static const enum optid type_opts[] = {
	O_GOOD, O_BAD, O_SCHEMA, O_CODE, O_END
};
static const enum optid codec_opts[] = {
	O_DECODE, O_ENCODE, O_IN, O_OUT, O_END
};

const struct cli_cmd cmd_auth_entry = {
	.name = "auth",
	.usage = "auth method [METHOD|off] | auth user "
	    "add|show|delete METHOD NAME | auth user list [METHOD] | "
	    "auth user acl METHOD NAME ACL | auth user conv METHOD NAME CONV",
	.summary = "manage logins: the required method and the users",
	.help =
	    "auth method: print the login method the agent requires (\"off\":\n"
	    "none); auth method METHOD: require it from now on (new\n"
	    "connections; the method needs a user first); auth method off:\n"
	    "no login.  auth user add METHOD NAME: create a user (password:\n"
	    "the password comes from $DISTKV_PASSWORD, --password-file, or\n"
	    "the terminal, never the command line; root: NAME is ignored,\n"
	    "its user is \"*\").  auth user list [METHOD]: the users' names.\n"
	    "auth user show METHOD NAME: the record (never a secret).  auth\n"
	    "user delete METHOD NAME: remove it; it cannot log in any more.\n"
	    "auth user acl METHOD NAME ACL: bind the user to ACL (\"*\": no\n"
	    "restriction) from its next login on (see `acl`).  auth user conv\n"
	    "METHOD NAME CONV: bind the user to converter set CONV from its\n"
	    "next login on (see `conv`).\n"
	    "\n"
	    "Logging in: -a METHOD [-u USER] on any command; without -a,\n"
	    "distkv-cli logs in with the method the agent asks for.  A\n"
	    "refused login, or a command refused for want of one, exits 6.\n"
	    "\n"
	    "Examples:\n"
	    "  DISTKV_PASSWORD=s3cret distkv-cli auth user add password joe\n"
	    "  distkv-cli auth method password\n"
	    "  distkv-cli -u joe --password-file ~/.distkv-pw get svc/web\n",
	.opts = cli_no_opts,
	.minargs = 1,
	.maxargs = 5,
	.flags = CMD_CONNECT,
	.check = NULL,
	.exec = cmd_auth,
};

const struct cli_cmd cmd_acl_entry = {
	.name = "acl",
	.usage = "acl set NAME PATTERN MODES | acl get NAME PATTERN | "
	    "acl list [NAME] | acl delete NAME PATTERN | acl test [--acl NAME] "
	    "PATH MODE",
	.summary = "manage ACLs: what a user bound to one may do where",
	.help =
	    "An ACL is a set of PATTERN = MODES entries; a user is bound to one\n"
	    "with `auth user acl`.  MODES are letters: a (read the ACL), r\n"
	    "(read), w (change), c (create a value), d (delete), x (step to a\n"
	    "child), e (enumerate children), n (create child entries).  In a\n"
	    "PATTERN, + matches one path element, # one or more; the most\n"
	    "specific entry decides.  PATTERN / is the ACL's top (the root).\n"
	    "acl test PATH MODE: whether your login (or ACL NAME) allows MODE\n"
	    "(or W: w if PATH has a value, else c) at PATH: prints true, false\n"
	    "or the letters; exit 0 if allowed, 6 if not.\n"
	    "\n"
	    "Examples:\n"
	    "  distkv-cli acl set web / x\n"
	    "  distkv-cli acl set web svc/web/# rwcdxen\n"
	    "  distkv-cli auth user acl password joe web\n"
	    "  distkv-cli acl test --acl web svc/db r\n",
	.opts = acl_opts,
	.minargs = 1,
	.maxargs = 4,
	.flags = CMD_CONNECT,
	.check = NULL,
	.exec = cmd_acl,
};

const struct cli_cmd cmd_type_entry = {
	.name = "type",
	.usage = "type set PATH --good V... --bad V... "
	    "[--schema FILE] [--code FILE] | type get PATH | type list | "
	    "type delete PATH",
	.summary = "manage types: checks of values (docs/translator.md)",
	.help =
	    "type set PATH: write the type record (nil, type, PATH...): Lua\n"
	    "code from --code FILE (the body of function(value), failing by\n"
	    "error(...)), a JSON schema from --schema FILE, at least two\n"
	    "--good and one --bad example values (JSON, else strings).  The\n"
	    "agent runs every example through this type and its ancestors\n"
	    "(int/percent is checked by int first) and refuses the record\n"
	    "otherwise.  Values are checked on set when a `match` names the\n"
	    "type.\n"
	    "\n"
	    "Examples:\n"
	    "  echo \"if math.type(value) ~= 'integer' then error('not an int')"
	    " end\" > int.lua\n"
	    "  distkv-cli type set int --code int.lua -g 0 -g 2 -b '\"x\"' "
	    "-b 1.5\n"
	    "  distkv-cli type set int/percent --code pct.lua -g 0 -g 100 "
	    "-b -1 -b 555\n"
	    "  distkv-cli match set foo/+/bar int/percent\n",
	.opts = type_opts,
	.minargs = 1,
	.maxargs = 2,
	.flags = CMD_CONNECT,
	.check = NULL,
	.exec = cmd_type,
};

const struct cli_cmd cmd_match_entry = {
	.name = "match",
	.usage = "match set PATTERN TYPE | match get PATTERN | "
	    "match list | match delete PATTERN",
	.summary = "say which type checks values at paths matching PATTERN",
	.help = "match set PATTERN TYPE: values set at paths matching PATTERN\n"
	    "must pass TYPE (a type path like int/percent).  In a pattern, +\n"
	    "matches one path element and # one or more; a literal element\n"
	    "wins over +, + over #, a shorter # over a longer one.\n"
	    "\n"
	    "Example:\n"
	    "  distkv-cli match set 'sensors/+/temp' float\n",
	.opts = cli_no_opts,
	.minargs = 1,
	.maxargs = 3,
	.flags = CMD_CONNECT,
	.check = NULL,
	.exec = cmd_match,
};

const struct cli_cmd cmd_codec_entry = {
	.name = "codec",
	.usage = "codec set NAME [--decode FILE --in SRC=RES...] "
	    "[--encode FILE --out SRC=RES...] | codec get NAME | codec list | "
	    "codec delete NAME",
	.summary = "manage codecs: conversions between a client's form and the "
	    "stored one",
	.help =
	    "codec set NAME: a decoder (client form to stored form, Lua, the\n"
	    "body of function(value, prev)) tested by every --in SRC=RES pair,\n"
	    "and/or an encoder (stored form to client form) tested by every\n"
	    "--out pair.  The agent runs the tests and refuses a codec that\n"
	    "fails one.\n"
	    "\n"
	    "Example:\n"
	    "  distkv-cli codec set int --decode dec.lua --encode enc.lua \\\n"
	    "      --in '\"1\"=1' --in '\"2\"=2' --out '1=\"1\"' "
	    "--out '-3=\"-3\"'\n",
	.opts = codec_opts,
	.minargs = 1,
	.maxargs = 2,
	.flags = CMD_CONNECT,
	.check = NULL,
	.exec = cmd_codec,
};

const struct cli_cmd cmd_conv_entry = {
	.name = "conv",
	.usage = "conv set NAME PATTERN CODEC | conv get NAME "
	    "PATTERN | conv list [NAME] | conv delete NAME PATTERN",
	.summary = "manage converter sets: which codec applies where, per user",
	.help =
	    "conv set NAME PATTERN CODEC: users bound to converter set NAME\n"
	    "(auth user conv) write and read values at paths matching PATTERN\n"
	    "through CODEC: decoded before they are stored, encoded before\n"
	    "they are shown.\n"
	    "\n"
	    "Example:\n"
	    "  distkv-cli conv set foo 'inty/#' int\n"
	    "  distkv-cli auth user conv _test con foo\n",
	.opts = cli_no_opts,
	.minargs = 1,
	.maxargs = 4,
	.flags = CMD_CONNECT,
	.check = NULL,
	.exec = cmd_conv,
};

static int
cmd_acl(struct ctx *ctx)
{
	return (acl_command(ctx->c, ctx->acl, ctx->argc, ctx->argv));
}

static int
cmd_type(struct ctx *ctx)
{
	return (xlate_command(ctx->c, "type", &ctx->xo, ctx->out == OUT_JSON,
	    ctx->argc, ctx->argv));
}

static int
cmd_match(struct ctx *ctx)
{
	return (xlate_command(ctx->c, "match", &ctx->xo, ctx->out == OUT_JSON,
	    ctx->argc, ctx->argv));
}

static int
cmd_codec(struct ctx *ctx)
{
	return (xlate_command(ctx->c, "codec", &ctx->xo, ctx->out == OUT_JSON,
	    ctx->argc, ctx->argv));
}

static int
cmd_conv(struct ctx *ctx)
{
	return (xlate_command(ctx->c, "conv", &ctx->xo, ctx->out == OUT_JSON,
	    ctx->argc, ctx->argv));
}

static int
cmd_auth(struct ctx *ctx)
{
	return (auth_command(ctx->c, &ctx->ao, ctx->out == OUT_JSON,
	    ctx->argc, ctx->argv));
}

