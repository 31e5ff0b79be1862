/*
 * distkv-cli - the shell tool of DistKV-C (manual: docs/cli.md).
 *
 * One static function per subcommand, listed in the const table `cmds'
 * (tmux's cmd_entry idea).  The whole argv is parsed here: global options
 * may stand before or after the subcommand, "--" ends the options.  Usage
 * errors are found before the agent is contacted.  The agent is reached
 * only through libdistkv; values are built and read with msgpack-c and
 * converted from and to JSON by mpjson (libproto).
 *
 * Exit status: 0 ok, 1 not found (wait: timed out), 2 usage error, 3 agent
 * unreachable / protocol or I/O error, 4 the agent refused the request.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <msgpack.h>

#include "distkv.h"
#include "mpjson.h"
#include "acl.h"
#include "ops.h"
#include "xlate.h"
#include "auth.h"
#include "cli.h"
#include "region.h"
#include "proto.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "unknown"
#endif


#define MAX_ARGS	8	/* positional arguments any command takes */

enum output {
	OUT_TEXT,
	OUT_JSON,
	OUT_RAW,
};

enum optid {
	O_END = 0,
	/* global */
	O_HELP,
	O_SOCKET,
	O_JSON,
	O_RAW,
	O_VERSION,
	O_NOSHM,
	O_TIMEOUT,
	O_SHM,
	O_NODE,
	O_AUTH,
	O_USER,
	O_PWFILE,
	O_CONNECT,
	O_TLSCA,
	O_TLSCERT,
	O_TLSKEY,
	/* per command */
	O_JSONVAL,
	O_NEW,
	O_PRECHAIN,
	O_PREV,
	O_RECURSIVE,
	O_NCHAIN,
	O_MINDEPTH,
	O_MAXDEPTH,
	O_FETCH,
	O_COUNT,
	O_EVENT,
	O_CHANGES,
	O_STALE,
	O_ACL,
	O_GOOD,
	O_BAD,
	O_SCHEMA,
	O_CODE,
	O_DECODE,
	O_ENCODE,
	O_IN,
	O_OUT,
	O_WAIT,
};

struct opt {
	enum optid	 id;
	char		 sname;		/* 0: no short form */
	const char	*lname;
	const char	*arg;		/* NULL: a flag */
	const char	*help;
};

/* Everything the command line said, and the connection. */
struct ctx {
	const char	*socket;	/* resolved socket path (or URL) */
	const char	*connect;	/* --connect URL */
	struct distkv_tls_opts tls;	/* --tls-ca, --tls-cert, --tls-key */
	enum output	 out;
	bool		 help;
	bool		 version;
	bool		 no_shm;	/* --no-shm: no region reads */
	const char	*shm;		/* --shm: read this region directly */
	const char	*node;		/* --node: that node's region */
	bool		 stale;		/* get --stale */
	const char	*acl;		/* acl test --acl NAME */
	struct xlate_cli_opts xo;	/* type, codec: --good ... --out */
	struct auth_opts ao;		/* -a, -u, --password-file */
	distkv		*c;

	int		 argc;		/* positional arguments */
	char		*argv[MAX_ARGS];

	bool		 json_value;
	bool		 is_new;
	bool		 has_head;
	struct distkv_event head;
	const char	*prev;
	bool		 recursive;
	int		 nchain;
	int		 min_depth;
	int		 max_depth;
	bool		 fetch;
	long		 count;		/* -1: unlimited */
	int		 timeout_ms;	/* -1: none */
	bool		 has_event;
	struct distkv_event event;
	bool		 changes;	/* wait --changes */
	bool		 serf_send;	/* serf: send (else mon) */
	bool		 wait;		/* health --wait */

	long		 seen;		/* watch: entries printed */

	/* prepared by main() from the above, before connecting */
	const char	*pathtext;	/* as given ("" for the root) */
	const char	*label;		/* in messages; "/" for the root */
	distkv_path	*path;
	msgpack_sbuffer	 val;
	msgpack_sbuffer	 prev_val;
	struct distkv_set_opts so;
};

struct cmd {
	const char	*name;
	int		(*fn)(struct ctx *);
	const char	*usage;
	const char	*summary;
	const char	*help;		/* description and examples */
	const enum optid *opts;		/* O_END-terminated */
	int		 minargs;
	int		 maxargs;
	int		 flags;
};

/* cmd flags: what main() prepares before the command runs */
#define CMD_CONNECT	0x1	/* connect to the agent */
#define CMD_PATH	0x2	/* argv[0] is a PATH; none: the root */
#define CMD_VALUE	0x4	/* argv[1] is a VALUE */
#define CMD_PRECOND	0x8	/* --new, --chain, --prev */

static int	cmd_get(struct ctx *);
static int	cmd_set(struct ctx *);
static int	cmd_delete(struct ctx *);
static int	cmd_tree(struct ctx *);
static int	cmd_watch(struct ctx *);
static int	cmd_state(struct ctx *);
static int	cmd_save(struct ctx *);
static int	cmd_log(struct ctx *);
static int	cmd_wait(struct ctx *);
static int	cmd_serf(struct ctx *);
static int	cmd_auth(struct ctx *);
static int	cmd_acl(struct ctx *);
static int	cmd_type(struct ctx *);
static int	cmd_match(struct ctx *);
static int	cmd_codec(struct ctx *);
static int	cmd_conv(struct ctx *);
static int	cmd_help(struct ctx *);
static int	cmd_members(struct ctx *);
static int	cmd_health(struct ctx *);
static int	cmd_forget(struct ctx *);
static int	cmd_metrics(struct ctx *);
static int	cmd_dump(struct ctx *);
static int	cmd_restore(struct ctx *);

static int	lib_error(struct ctx *, int, const char *);
static const struct opt *find_opt(const enum optid *, const char *, char);
static int	apply_opt(struct ctx *, const struct opt *, const char *);
static int	parse_args(struct ctx *, const struct cmd *, int, char **,
		    int);
static int	parse_int(const char *, const char *, long, long, long *);
static int	parse_event(const char *, const char *,
		    struct distkv_event *);
static int	parse_path(const char *, distkv_path **);
static int	build_value(struct ctx *, const char *, bool,
		    msgpack_sbuffer *);
static int	put(msgpack_sbuffer *, const char *);
static int	putn(msgpack_sbuffer *, const char *, size_t);
static int	emit(msgpack_sbuffer *);
static int	put_path(msgpack_sbuffer *, const distkv_path *, bool);
static int	put_chain_json(msgpack_sbuffer *, const struct distkv_chain *);
static int	put_chain_text(msgpack_sbuffer *, const struct distkv_chain *);
static int	put_entry(struct ctx *, msgpack_sbuffer *, const distkv_path *,
		    const struct distkv_entry *, bool);
static int	tree_cb(void *, const struct distkv_entry *);
static int	watch_cb(void *, const struct distkv_entry *);
static int	put_ranges(msgpack_sbuffer *, const msgpack_object *);
static int	put_state_section(msgpack_sbuffer *, const msgpack_object *);
static int	put_set_result(struct ctx *, const char *,
		    const struct distkv_set_result *);
static int	prepare(struct ctx *, const struct cmd *);
static int	prepare_serf(struct ctx *, const struct cmd *);
static bool	is_negative_number(const char *);
static void	print_opt(const struct opt *);
static void	print_usage(FILE *);
static void	print_cmd_help(const struct cmd *);
static const struct cmd *find_cmd(const char *);

struct wstate;
struct wait_arg;
struct serf_arg;
static void	wstate_clear(struct wstate *);
static bool	wstate_differs(const struct wstate *, const struct wstate *);
static int	wstate_set(struct wstate *, const void *, size_t, uint64_t);
static int	wstate_read_shm(struct wstate *, distkv_shm *,
		    const distkv_path *);
static long long now_ms(void);
static int	wait_shm(struct ctx *, distkv_shm *, struct wstate *, bool *);
static int	wait_cb(void *, const struct distkv_entry *);
static int	wait_socket(struct ctx *, struct wstate *);
static int	wait_print(struct ctx *, const struct wstate *);
static int	pack_cstr(msgpack_packer *, const char *);
static int	serf_pack(struct ctx *, msgpack_sbuffer *);
static int	serf_send_cb(void *, const uint8_t *, size_t);
static int	serf_mon_cb(void *, const uint8_t *, size_t);

/* ---- options ---- */

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
	{ O_NEW, 0, "new", NULL, "fail unless the entry does not exist yet" },
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
	{ O_COUNT, 'n', "count", "COUNT", "stop after COUNT entries" },
	{ O_TIMEOUT, 't', "timeout", "SECONDS",
	    "give up on the agent after SECONDS (default $DISTKV_TIMEOUT, "
	    "else 30); watch and wait: stop after SECONDS" },
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
	{ O_END, 0, NULL, NULL, NULL },
};

static const enum optid global_opts[] = {
	O_HELP, O_SOCKET, O_CONNECT, O_TLSCA, O_TLSCERT, O_TLSKEY, O_JSON,
	O_RAW, O_NOSHM, O_VERSION, O_TIMEOUT, O_SHM, O_NODE, O_AUTH, O_USER,
	O_PWFILE, O_END
};

static const enum optid get_opts[] = { O_NCHAIN, O_EVENT, O_STALE, O_END };
static const enum optid set_opts[] = {
	O_JSONVAL, O_NEW, O_PRECHAIN, O_PREV, O_END
};
static const enum optid delete_opts[] = {
	O_RECURSIVE, O_JSONVAL, O_NEW, O_PRECHAIN, O_PREV, O_END
};
static const enum optid tree_opts[] = {
	O_NCHAIN, O_MINDEPTH, O_MAXDEPTH, O_END
};
static const enum optid watch_opts[] = {
	O_FETCH, O_NCHAIN, O_MINDEPTH, O_MAXDEPTH, O_COUNT, O_END
};
static const enum optid log_opts[] = { O_FETCH, O_END };
static const enum optid wait_opts[] = { O_CHANGES, O_END };
static const enum optid serf_opts[] = {
	O_JSONVAL, O_COUNT, O_END
};
static const enum optid acl_opts[] = { O_ACL, O_END };
static const enum optid type_opts[] = {
	O_GOOD, O_BAD, O_SCHEMA, O_CODE, O_END
};
static const enum optid codec_opts[] = {
	O_DECODE, O_ENCODE, O_IN, O_OUT, O_END
};
static const enum optid no_opts[] = { O_END };
static const enum optid ops_opts[] = { O_JSONVAL, O_END };
static const enum optid health_opts[] = { O_JSONVAL, O_WAIT, O_END };

/* ---- the command table ---- */

static const struct cmd cmds[] = {
	{ "get", cmd_get, "get [-c N] PATH | get -e NODE:TICK",
	    "print the value at PATH",
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
	    get_opts, 0, 1, CMD_CONNECT | CMD_PATH },
	{ "set", cmd_set, "set [-j] [--new | --chain NODE:TICK] [--prev VALUE] "
	    "PATH VALUE",
	    "store VALUE at PATH",
	    "Store VALUE at PATH.  VALUE is a string unless -j is given; then it\n"
	    "is JSON and may be any type (integers, floats, true/false, arrays,\n"
	    "objects, {\"$bin\":\"HEX\"} for bytes; see docs/cli.md).  null is\n"
	    "not a value: use delete.  The preconditions make the write\n"
	    "conditional; when one fails the agent's message is printed and the\n"
	    "exit status is 4.  Prints nothing unless --json is given.\n"
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
	    "  distkv-cli set note -- --x      # '--' ends the options\n",
	    set_opts, 2, 2,
	    CMD_CONNECT | CMD_PATH | CMD_VALUE | CMD_PRECOND },
	{ "delete", cmd_delete, "delete [-r] [--new | --chain NODE:TICK] "
	    "[--prev VALUE] PATH",
	    "delete the value at PATH",
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
	    delete_opts, 1, 1, CMD_CONNECT | CMD_PATH | CMD_PRECOND },
	{ "tree", cmd_tree, "tree [-c N] [--min-depth N] [--max-depth N] [PATH]",
	    "list PATH and everything below it",
	    "Print every entry with a value at or below PATH (default: the\n"
	    "whole tree), parents before children, one \"PATH = VALUE\" line\n"
	    "each with the value as JSON.  Depth 0 is PATH itself.  With -c N\n"
	    "the chain is appended as \"  [NODE:TICK ...]\".\n"
	    "\n"
	    "Examples:\n"
	    "  distkv-cli tree svc\n"
	    "  svc/web/host = \"www1.example.org\"\n"
	    "  svc/web/port = 8080\n"
	    "  distkv-cli tree --max-depth 1 svc\n"
	    "  distkv-cli tree --json svc | jq -r .path\n",
	    tree_opts, 0, 1, CMD_CONNECT | CMD_PATH },
	{ "watch", cmd_watch, "watch [--fetch] [-c N] [--min-depth N] "
	    "[--max-depth N] [-n COUNT] [-t SECONDS] [PATH]",
	    "print changes at or below PATH as they happen",
	    "Print one line for every change at or below PATH (default: the\n"
	    "whole tree), as \"PATH = VALUE\" or \"PATH (no value)\" for a\n"
	    "deletion.  With --fetch the current entries are printed first\n"
	    "(value-less ones included), then \"(up to date)\" (JSON:\n"
	    "{\"state\":\"uptodate\"}).  Runs until interrupted (Ctrl-C), until\n"
	    "COUNT entries were printed (-n) or SECONDS passed (-t, exit 0).\n"
	    "Output is flushed after every line.\n"
	    "\n"
	    "Examples:\n"
	    "  distkv-cli watch svc\n"
	    "  distkv-cli watch --fetch --json svc/web\n"
	    "  distkv-cli watch -n 1 -t 60 deploy/trigger  # wait for one change\n",
	    watch_opts, 0, 1, CMD_CONNECT | CMD_PATH },
	{ "wait", cmd_wait, "wait [-t SECONDS] PATH | wait --changes "
	    "[-t SECONDS]",
	    "block until the value at PATH changes",
	    "Block until the value at PATH differs from the one it had when wait\n"
	    "started (appearing and disappearing count; storing the value it\n"
	    "already has does not), then print the new value as get does and\n"
	    "exit 0.  A deletion prints nothing (--json: {\"path\":...,\n"
	    "\"value\":null}).  With -t, give up after SECONDS: a message and\n"
	    "exit status 1.  With --changes (no PATH) return, printing nothing,\n"
	    "as soon as anything in the tree changed.  Sleeps on the shared-\n"
	    "memory region's change word when the agent has one, else (or with\n"
	    "--no-shm) watches PATH over the socket; never polls.\n"
	    "\n"
	    "Examples:\n"
	    "  distkv-cli wait svc/web/port\n"
	    "  8081\n"
	    "  distkv-cli wait -t 60 deploy/trigger || echo \"nothing happened\"\n"
	    "  while distkv-cli wait --changes; do ./refresh-cache; done\n",
	    wait_opts, 0, 1, CMD_CONNECT | CMD_PATH },
	{ "state", cmd_state, "state", "show the agent's node table",
	    "Print the agent's name and its node table: every node's tick and\n"
	    "the tick ranges this agent knows, misses, and others reported as\n"
	    "missing (\"1-3,7\" means ticks 1, 2, 3 and 7).\n"
	    "\n"
	    "Examples:\n"
	    "  distkv-cli state\n"
	    "  distkv-cli state --json\n",
	    no_opts, 0, 0, CMD_CONNECT },
	{ "save", cmd_save, "save FILE", "write a snapshot on the agent's host",
	    "Ask the agent to write a snapshot of the whole tree to FILE.  The\n"
	    "agent resolves FILE inside its own file directory (distkv-agent\n"
	    "--file-dir), not relative to the current directory.\n"
	    "\n"
	    "Example:\n"
	    "  distkv-cli save backup-2024-01-01.mp\n",
	    no_opts, 1, 1, CMD_CONNECT },
	{ "log", cmd_log, "log [--fetch] FILE", "start a change log on the agent",
	    "Ask the agent to log every change to FILE (inside its file\n"
	    "directory); with --fetch a snapshot is written first.  A log that\n"
	    "was running before stops once the new one is in place.\n"
	    "\n"
	    "Example:\n"
	    "  distkv-cli log --fetch changes.mp\n",
	    log_opts, 1, 1, CMD_CONNECT },
	{ "auth", cmd_auth, "auth method [METHOD|off] | auth user "
	    "add|show|delete METHOD NAME | auth user list [METHOD] | "
	    "auth user acl METHOD NAME ACL | auth user conv METHOD NAME CONV",
	    "manage logins: the required method and the users",
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
	    no_opts, 1, 5, CMD_CONNECT },
	{ "acl", cmd_acl, "acl set NAME PATTERN MODES | acl get NAME PATTERN | "
	    "acl list [NAME] | acl delete NAME PATTERN | acl test [--acl NAME] "
	    "PATH MODE",
	    "manage ACLs: what a user bound to one may do where",
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
	    acl_opts, 1, 4, CMD_CONNECT },
	{ "type", cmd_type, "type set PATH --good V... --bad V... "
	    "[--schema FILE] [--code FILE] | type get PATH | type list | "
	    "type delete PATH",
	    "manage types: checks of values (docs/translator.md)",
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
	    type_opts, 1, 2, CMD_CONNECT },
	{ "match", cmd_match, "match set PATTERN TYPE | match get PATTERN | "
	    "match list | match delete PATTERN",
	    "say which type checks values at paths matching PATTERN",
	    "match set PATTERN TYPE: values set at paths matching PATTERN\n"
	    "must pass TYPE (a type path like int/percent).  In a pattern, +\n"
	    "matches one path element and # one or more; a literal element\n"
	    "wins over +, + over #, a shorter # over a longer one.\n"
	    "\n"
	    "Example:\n"
	    "  distkv-cli match set 'sensors/+/temp' float\n",
	    no_opts, 1, 3, CMD_CONNECT },
	{ "codec", cmd_codec, "codec set NAME [--decode FILE --in SRC=RES...] "
	    "[--encode FILE --out SRC=RES...] | codec get NAME | codec list | "
	    "codec delete NAME",
	    "manage codecs: conversions between a client's form and the "
	    "stored one",
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
	    codec_opts, 1, 2, CMD_CONNECT },
	{ "conv", cmd_conv, "conv set NAME PATTERN CODEC | conv get NAME "
	    "PATTERN | conv list [NAME] | conv delete NAME PATTERN",
	    "manage converter sets: which codec applies where, per user",
	    "conv set NAME PATTERN CODEC: users bound to converter set NAME\n"
	    "(auth user conv) write and read values at paths matching PATTERN\n"
	    "through CODEC: decoded before they are stored, encoded before\n"
	    "they are shown.\n"
	    "\n"
	    "Example:\n"
	    "  distkv-cli conv set foo 'inty/#' int\n"
	    "  distkv-cli auth user conv _test con foo\n",
	    no_opts, 1, 4, CMD_CONNECT },
	{ "serf", cmd_serf, "serf send [-j] TYPE DATA | serf mon [-n COUNT] "
	    "[-t SECONDS] TYPE",
	    "send or monitor user events of the cluster",
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
	    serf_opts, 2, 3, CMD_CONNECT },
	/* operator commands: cli/ops.c */
	{ "members", cmd_members, "members [-j]",
	    "list the cluster's nodes and how they are doing",
	    "One line per node: Serf status (alive, failed, left, ...), its\n"
	    "tick, whether it reported what it has seen (tombstone purges\n"
	    "wait for every node's report), when this agent last heard of it,\n"
	    "how many of its changes this agent misses, and how many changes\n"
	    "known here its last report did not include yet (lag).  -j or\n"
	    "--json: the agent's get_members reply as JSON.\n",
	    ops_opts, 0, 0, CMD_CONNECT },
	{ "health", cmd_health, "health [-j] [--wait [-t SECONDS]]",
	    "exit 0 if this agent is ready, joined and missing nothing",
	    "Exit 0 when the agent answers, has its data, is connected to\n"
	    "Serf and joined (or runs --standalone) and misses no change of\n"
	    "another node; else exit 7 with the reason on stderr (3: bad\n"
	    "usage of the connection).  -j: one JSON object for monitoring.\n"
	    "--wait: try again until healthy, for -t SECONDS (default 60).\n"
	    "\n"
	    "Example:\n"
	    "  distkv-cli health --wait -t 30 && echo up\n",
	    health_opts, 0, 0, 0 },
	{ "forget", cmd_forget, "forget NODE",
	    "forget a node that is gone for good",
	    "Tell the cluster that NODE will not come back, so tombstone\n"
	    "purges stop waiting for its report (DistKV's kill_node).  Refused\n"
	    "for this node and for a node Serf lists alive.  The forget is a\n"
	    "change of the meta tree and replicates (docs/cluster.md).\n",
	    ops_opts, 1, 1, CMD_CONNECT },
	{ "metrics", cmd_metrics, "metrics",
	    "print the agent's metrics (Prometheus text)",
	    "The text distkv-agent --metrics serves over HTTP\n"
	    "(docs/operations.md, Metrics).\n",
	    no_opts, 0, 0, CMD_CONNECT },
	{ "dump", cmd_dump, "dump FILE",
	    "write a snapshot of the agent's tree to FILE here",
	    "Stream a snapshot from the agent into FILE on this host (\"-\":\n"
	    "stdout), in the agent's snapshot format: distkv-agent --load FILE\n"
	    "and distkv-cli restore FILE read it (docs/operations.md).\n",
	    ops_opts, 1, 1, CMD_CONNECT },
	{ "restore", cmd_restore, "restore FILE",
	    "apply a dump (or snapshot or log file) to the agent",
	    "Send every record of FILE (\"-\": stdin) to the agent as an\n"
	    "update, with its original chain: the agent applies it like a\n"
	    "loaded file, and replicates it to its cluster by catch-up.  For\n"
	    "an empty node or a new cluster (docs/operations.md, Backup).\n",
	    ops_opts, 1, 1, CMD_CONNECT },
	{ "help", cmd_help, "help [COMMAND]", "show help for a command",
	    "Show the overview, or the help of COMMAND (same as COMMAND "
	    "--help).\n",
	    no_opts, 0, 1, 0 },
};

#define NCMDS (sizeof(cmds) / sizeof(cmds[0]))

/* ---- errors ---- */

int
cli_err(int code, const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("distkv-cli: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return (code);
}

/* Report a libdistkv error about `what' and return the exit status. */
static int
lib_error(struct ctx *ctx, int rc, const char *what)
{
	const char *msg;

	switch (rc) {
	case DISTKV_ENOTFOUND:
		return (cli_err(EXIT_NOTFOUND, "%s: not found", what));
	case DISTKV_ESERVER:
		msg = ctx->c != NULL ? distkv_errmsg(ctx->c) : "";
		if (msg == NULL || *msg == '\0')
			msg = distkv_strerror(rc);
		return (cli_err(auth_denied(msg) ? EXIT_DENIED : EXIT_REFUSED,
		    "%s: %s", what, msg));
	case DISTKV_EINVAL:
		return (cli_err(EXIT_USAGE, "%s: %s", what, distkv_strerror(rc)));
	case DISTKV_ECONNECT:
		return (cli_err(EXIT_AGENT, "cannot reach the agent at %s: %s",
		    ctx->socket, distkv_strerror(rc)));
	default:
		return (cli_err(EXIT_AGENT, "%s: %s", what, distkv_strerror(rc)));
	}
}

/* ---- argument parsing ---- */

static const struct opt *
find_opt(const enum optid *allowed, const char *lname, char sname)
{
	const enum optid *a;
	const struct opt *o;

	for (a = allowed; *a != O_END; a++)
		for (o = opts; o->id != O_END; o++) {
			if (o->id != *a)
				continue;
			if (lname != NULL ? strcmp(o->lname, lname) == 0 :
			    (sname != 0 && o->sname == sname))
				return (o);
		}
	return (NULL);
}

static int
parse_int(const char *name, const char *s, long min, long max, long *out)
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
static int
parse_event(const char *name, const char *s, struct distkv_event *ev)
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
	case O_JSONVAL:
		ctx->json_value = true;
		break;
	case O_NEW:
		ctx->is_new = true;
		break;
	case O_PRECHAIN:
		if (parse_event("--chain", arg, &ctx->head) != 0)
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
		if (parse_int("chain length", arg, 0, DISTKV_CHAIN_MAX,
		    &v) != 0)
			return (-1);
		ctx->nchain = (int)v;
		break;
	case O_MINDEPTH:
		if (parse_int("--min-depth", arg, 0, INT_MAX, &v) != 0)
			return (-1);
		ctx->min_depth = (int)v;
		break;
	case O_MAXDEPTH:
		if (parse_int("--max-depth", arg, 0, INT_MAX, &v) != 0)
			return (-1);
		ctx->max_depth = (int)v;
		break;
	case O_FETCH:
		ctx->fetch = true;
		break;
	case O_COUNT:
		if (parse_int("count", arg, 1, LONG_MAX, &v) != 0)
			return (-1);
		ctx->count = v;
		break;
	case O_TIMEOUT:
		if (parse_int("timeout", arg, 1, INT_MAX / 1000, &v) != 0)
			return (-1);
		ctx->timeout_ms = (int)v * 1000;
		break;
	case O_EVENT:
		if (parse_event("--event", arg, &ctx->event) != 0)
			return (-1);
		ctx->has_event = true;
		break;
	case O_WAIT:
		ctx->wait = true;
		break;
	case O_END:
		break;
	}
	return (0);
}

/* An argument that is a negative number is a value, not an option. */
static bool
is_negative_number(const char *a)
{
	return (a[0] == '-' && (isdigit((unsigned char)a[1]) ||
	    (a[1] == '.' && isdigit((unsigned char)a[2]))));
}

/*
 * Parse argv[i..argc).  Without cmd only the global options are known and
 * parsing stops at the first positional argument (the subcommand), whose
 * index is returned.  With cmd, options and positionals mix freely until
 * "--".  Returns the index reached, or -1 after printing a usage error.
 */
static int
parse_args(struct ctx *ctx, const struct cmd *cmd, int argc, char **argv,
    int i)
{
	enum optid allowed[32];
	const struct opt *o;
	const char *a, *val, *eq;
	char lname[64];
	size_t n = 0, k;
	bool dashdash = false;

	for (k = 0; global_opts[k] != O_END; k++)
		allowed[n++] = global_opts[k];
	for (k = 0; cmd != NULL && cmd->opts[k] != O_END; k++)
		allowed[n++] = cmd->opts[k];
	allowed[n] = O_END;

	for (; i < argc; i++) {
		a = argv[i];
		if (dashdash || a[0] != '-' || a[1] == '\0' ||
		    is_negative_number(a)) {
			if (cmd == NULL)
				return (i);
			if (ctx->argc == MAX_ARGS)
				return (cli_err(-1, "%s: too many arguments",
				    cmd->name));
			ctx->argv[ctx->argc++] = argv[i];
			continue;
		}
		if (strcmp(a, "--") == 0) {
			if (cmd == NULL)
				return (i + 1);
			dashdash = true;
			continue;
		}
		if (a[1] == '-') {
			/* --name, --name=value, --name value */
			eq = strchr(a + 2, '=');
			k = eq != NULL ? (size_t)(eq - a - 2) : strlen(a + 2);
			if (k >= sizeof(lname))
				k = sizeof(lname) - 1;
			memcpy(lname, a + 2, k);
			lname[k] = '\0';
			if ((o = find_opt(allowed, lname, 0)) == NULL)
				goto unknown;
			if (o->arg == NULL) {
				if (eq != NULL)
					return (cli_err(-1, "option --%s takes "
					    "no value", o->lname));
				val = NULL;
			} else if (eq != NULL)
				val = eq + 1;
			else if (i + 1 < argc)
				val = argv[++i];
			else
				return (cli_err(-1, "option --%s needs %s",
				    o->lname, o->arg));
			if (apply_opt(ctx, o, val) != 0)
				return (-1);
			continue;
		}
		/* -x, -xVALUE, -x VALUE, -abc (flags) */
		for (a++; *a != '\0'; a++) {
			if ((o = find_opt(allowed, NULL, *a)) == NULL) {
				if (cmd == NULL)
					return (cli_err(-1, "unknown option "
					    "'-%c' (see distkv-cli --help)",
					    *a));
				return (cli_err(-1, "%s: unknown option '-%c' "
				    "(see distkv-cli %s --help)", cmd->name,
				    *a, cmd->name));
			}
			if (o->arg == NULL) {
				if (apply_opt(ctx, o, NULL) != 0)
					return (-1);
				continue;
			}
			if (a[1] != '\0')
				val = a + 1;
			else if (i + 1 < argc)
				val = argv[++i];
			else
				return (cli_err(-1, "option -%c needs %s",
				    o->sname, o->arg));
			if (apply_opt(ctx, o, val) != 0)
				return (-1);
			break;
		}
		continue;
unknown:
		if (cmd == NULL)
			return (cli_err(-1, "unknown option '%s' (see "
			    "distkv-cli --help)", argv[i]));
		return (cli_err(-1, "%s: unknown option '%s' (see "
		    "distkv-cli %s --help)", cmd->name, argv[i], cmd->name));
	}
	return (i);
}

static int
parse_path(const char *text, distkv_path **out)
{
	int rc;

	if ((rc = distkv_path_parse(text, out)) != 0)
		return (cli_err(EXIT_USAGE, "invalid path '%s': %s (see "
		    "distkv-cli help)", text, rc == DISTKV_EINVAL ?
		    "bad syntax" : distkv_strerror(rc)));
	return (0);
}

/* VALUE from the command line: a string, or JSON with -j. */
static int
build_value(struct ctx *ctx, const char *text, bool allow_nil,
    msgpack_sbuffer *out)
{
	msgpack_packer pk;
	char err[256];
	int rc;

	msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
	if (!ctx->json_value) {
		if (!proto_utf8_valid(text, strlen(text)))
			return (cli_err(EXIT_USAGE, "value is not valid UTF-8 "
			    "(use -j '{\"$bin\":\"HEX\"}' for bytes)"));
		if (msgpack_pack_str_with_body(&pk, text, strlen(text)) != 0)
			return (cli_err(EXIT_AGENT, "out of memory"));
		return (0);
	}
	if ((rc = mpjson_parse(&pk, text, err, sizeof(err))) == -ENOMEM)
		return (cli_err(EXIT_AGENT, "out of memory"));
	if (rc != 0)
		return (cli_err(EXIT_USAGE, "invalid JSON value '%s': %s", text,
		    err));
	if (!allow_nil && out->size == 1 && (uint8_t)out->data[0] == 0xc0)
		return (cli_err(EXIT_USAGE, "null is not a value (to remove a "
		    "value use delete)"));
	return (0);
}

/* ---- output ---- */

/*
 * Text is collected in a msgpack_sbuffer used as a plain byte buffer (the
 * buffer mpjson writes to).  Both return 0 or -ENOMEM.
 */
static int
putn(msgpack_sbuffer *b, const char *s, size_t len)
{
	if (len == 0)
		return (0);
	return (msgpack_sbuffer_write(b, s, len) == 0 ? 0 : -ENOMEM);
}

static int
put(msgpack_sbuffer *b, const char *s)
{
	return (putn(b, s, strlen(s)));
}

/* Write and reset the buffer; flush so watchers see lines at once. */
static int
emit(msgpack_sbuffer *b)
{
	if (b->size != 0 && fwrite(b->data, 1, b->size, stdout) != b->size)
		return (-1);
	b->size = 0;
	return (fflush(stdout) == 0 ? 0 : -1);
}

/* The text form of a path; the root is "/" in text output, "" in JSON. */
static int
put_path(msgpack_sbuffer *b, const distkv_path *p, bool json)
{
	char *s = NULL;
	int rc;

	if (p == NULL || distkv_path_format(p, &s) != 0)
		return (-1);
	if (json)
		rc = mpjson_put_string(b, s, strlen(s));
	else
		rc = put(b, *s == '\0' ? "/" : s);
	free(s);
	return (rc);
}

static int
put_chain_json(msgpack_sbuffer *b, const struct distkv_chain *ch)
{
	char num[32];
	size_t i;

	if (put(b, "[") != 0)
		return (-1);
	for (i = 0; i < ch->n && i < DISTKV_CHAIN_MAX; i++) {
		snprintf(num, sizeof(num), ",\"tick\":%" PRIu64 "}",
		    ch->ev[i].tick);
		if ((i > 0 && put(b, ",") != 0) ||
		    put(b, "{\"node\":") != 0 ||
		    mpjson_put_string(b, ch->ev[i].node,
		    strlen(ch->ev[i].node)) != 0 || put(b, num) != 0)
			return (-1);
	}
	return (put(b, "]"));
}

static int
put_chain_text(msgpack_sbuffer *b, const struct distkv_chain *ch)
{
	char num[32];
	size_t i;

	for (i = 0; i < ch->n && i < DISTKV_CHAIN_MAX; i++) {
		snprintf(num, sizeof(num), ":%" PRIu64, ch->ev[i].tick);
		if ((i > 0 && put(b, " ") != 0) ||
		    put(b, ch->ev[i].node) != 0 ||
		    put(b, num) != 0)
			return (-1);
	}
	return (0);
}

/*
 * One entry in the current output mode.  path NULL: a single `get' (the
 * value alone in text and raw mode); else a list line (tree, watch).
 * Returns 0, or an exit status after printing the error.
 */
static int
put_entry(struct ctx *ctx, msgpack_sbuffer *b, const distkv_path *path,
    const struct distkv_entry *e, bool single)
{
	char num[32];
	bool nil = e->value.len == 0 ||
	    distkv_value_is_nil(e->value.data, e->value.len);
	int rc = 0;

	switch (ctx->out) {
	case OUT_JSON:
		if (put(b, "{\"path\":") != 0 ||
		    put_path(b, path, true) != 0 ||
		    put(b, ",\"value\":") != 0)
			goto fail;
		rc = nil ? put(b, "null") : mpjson_format_bytes(b,
		    e->value.data, e->value.len, 0);
		if (rc != 0)
			goto bad;
		snprintf(num, sizeof(num), ",\"tock\":%" PRIu64, e->tock);
		if (put(b, num) != 0)
			goto fail;
		if (e->chain.n > 0 && (put(b, ",\"chain\":") != 0 ||
		    put_chain_json(b, &e->chain) != 0))
			goto fail;
		if (put(b, "}\n") != 0)
			goto fail;
		break;
	case OUT_RAW:
		if (!nil && (rc = mpjson_format_bytes(b, e->value.data,
		    e->value.len, MPJSON_BARE_STR | MPJSON_BARE_BIN)) != 0)
			goto bad;
		if (!single && put(b, "\n") != 0)
			goto fail;
		break;
	case OUT_TEXT:
		if (!single) {
			if (put_path(b, path, false) != 0)
				goto fail;
			if (nil) {
				if (put(b, " (no value)") != 0)
					goto fail;
			} else if ((rc = put(b, " = ")) != 0 ||
			    (rc = mpjson_format_bytes(b, e->value.data,
			    e->value.len, 0)) != 0)
				goto bad;
			if (e->chain.n > 0 && (put(b, "  [") != 0 ||
			    put_chain_text(b, &e->chain) != 0 ||
			    put(b, "]") != 0))
				goto fail;
		} else if ((rc = mpjson_format_bytes(b, e->value.data,
		    e->value.len, MPJSON_BARE_STR)) != 0)
			goto bad;
		if (put(b, "\n") != 0)
			goto fail;
		if (single && e->chain.n > 0 &&
		    (put(b, "chain: ") != 0 ||
		    put_chain_text(b, &e->chain) != 0 ||
		    put(b, "\n") != 0))
			goto fail;
		break;
	}
	if (emit(b) != 0)
		return (cli_err(EXIT_AGENT, "write error: %s",
		    strerror(errno)));
	return (0);
bad:
	if (rc == -ENOMEM)
		goto fail;
	return (cli_err(EXIT_AGENT, "protocol error: the agent sent a value "
	    "that is not valid msgpack"));
fail:
	return (cli_err(EXIT_AGENT, "out of memory"));
}

/* ---- subcommands ---- */

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
		if (rc == DISTKV_ESERVER)
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
static int
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

static int
cmd_acl(struct ctx *ctx)
{
	return (acl_command(ctx->c, ctx->acl, ctx->argc, ctx->argv));
}

/* The operator commands (cli/ops.c). */
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

static int cmd_members(struct ctx *ctx) { return (run_ops(ctx, "members")); }
static int cmd_health(struct ctx *ctx) { return (run_ops(ctx, "health")); }
static int cmd_forget(struct ctx *ctx) { return (run_ops(ctx, "forget")); }
static int cmd_metrics(struct ctx *ctx) { return (run_ops(ctx, "metrics")); }
static int cmd_dump(struct ctx *ctx) { return (run_ops(ctx, "dump")); }
static int cmd_restore(struct ctx *ctx) { return (run_ops(ctx, "restore")); }

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

struct list_arg {
	struct ctx	*ctx;
	msgpack_sbuffer	 b;
	int		 rc;	/* exit status of a failed print */
};

static int
tree_cb(void *arg, const struct distkv_entry *e)
{
	struct list_arg *la = arg;

	if ((la->rc = put_entry(la->ctx, &la->b, e->path, e, false)) != 0)
		return (1);
	return (0);
}

static int
cmd_tree(struct ctx *ctx)
{
	struct distkv_tree_opts to;
	struct list_arg la;
	int rc;

	memset(&la, 0, sizeof(la));
	la.ctx = ctx;
	memset(&to, 0, sizeof(to));
	to.min_depth = ctx->min_depth;
	to.max_depth = ctx->max_depth;
	to.nchain = ctx->nchain;
	rc = distkv_get_tree(ctx->c, ctx->path, &to, tree_cb, &la);
	if (la.rc != 0)
		rc = la.rc;
	else if (rc != 0)
		rc = lib_error(ctx, rc, ctx->label);
	msgpack_sbuffer_destroy(&la.b);
	return (rc);
}

static int
watch_cb(void *arg, const struct distkv_entry *e)
{
	struct list_arg *la = arg;
	struct ctx *ctx = la->ctx;

	if (e == NULL) {
		/* end of the --fetch part */
		if (ctx->out == OUT_RAW)
			return (0);
		if (put(&la->b, ctx->out == OUT_JSON ?
		    "{\"state\":\"uptodate\"}\n" : "(up to date)\n") != 0 ||
		    emit(&la->b) != 0) {
			la->rc = cli_err(EXIT_AGENT, "write error");
			return (1);
		}
		return (0);
	}
	if ((la->rc = put_entry(ctx, &la->b, e->path, e, false)) != 0)
		return (1);
	ctx->seen++;
	return (ctx->count > 0 && ctx->seen >= ctx->count);
}

static int
cmd_watch(struct ctx *ctx)
{
	struct distkv_tree_opts to;
	struct list_arg la;
	int rc;

	memset(&la, 0, sizeof(la));
	la.ctx = ctx;
	memset(&to, 0, sizeof(to));
	to.min_depth = ctx->min_depth;
	to.max_depth = ctx->max_depth;
	to.nchain = ctx->nchain;
	to.fetch = ctx->fetch;
	rc = distkv_watch(ctx->c, ctx->path, &to, ctx->timeout_ms, watch_cb,
	    &la);
	if (la.rc != 0)
		rc = la.rc;
	else if (rc == DISTKV_ETIMEDOUT && ctx->timeout_ms >= 0)
		rc = 0;		/* -t: stopping is what was asked for */
	else if (rc != 0)
		rc = lib_error(ctx, rc, ctx->label);
	msgpack_sbuffer_destroy(&la.b);
	return (rc);
}

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

/* ---- wait ---- */

/*
 * What wait compares: whether PATH has a value, and its bytes.  The tock
 * only goes into the output.  The buffer is reused between reads.
 */
struct wstate {
	bool		 has;		/* false: unset or deleted */
	uint8_t		*buf;		/* the value (msgpack) */
	size_t		 len;
	size_t		 cap;
	uint64_t	 tock;
};

static void
wstate_clear(struct wstate *w)
{
	free(w->buf);
	memset(w, 0, sizeof(*w));
}

static bool
wstate_differs(const struct wstate *a, const struct wstate *b)
{
	if (a->has != b->has)
		return (true);
	return (a->has && (a->len != b->len ||
	    memcmp(a->buf, b->buf, a->len) != 0));
}

/* Copy a value (len 0 or msgpack nil: no value).  0 or -ENOMEM. */
static int
wstate_set(struct wstate *w, const void *data, size_t len, uint64_t tock)
{
	uint8_t *nb;

	w->tock = tock;
	w->has = len > 0 && !distkv_value_is_nil(data, len);
	w->len = 0;
	if (!w->has)
		return (0);
	if (len > w->cap) {
		if ((nb = realloc(w->buf, len)) == NULL)
			return (-ENOMEM);
		w->buf = nb;
		w->cap = len;
	}
	memcpy(w->buf, data, len);
	w->len = len;
	return (0);
}

/* PATH's state from the region: 0, or a distkv_shm_get() error. */
static int
wstate_read_shm(struct wstate *w, distkv_shm *s, const distkv_path *p)
{
	struct distkv_shm_meta m;
	size_t need;
	uint8_t *nb;
	int rc;

	if (w->cap == 0) {
		if ((w->buf = malloc(256)) == NULL)
			return (-ENOMEM);
		w->cap = 256;
	}
	while ((rc = distkv_shm_get(s, p, w->buf, w->cap, &need, &m)) ==
	    DISTKV_ETOOSMALL) {
		/* the value may grow again before the next try */
		if ((nb = realloc(w->buf, need)) == NULL)
			return (-ENOMEM);
		w->buf = nb;
		w->cap = need;
	}
	if (rc == DISTKV_ENOTFOUND) {
		w->has = false;
		w->len = 0;
		w->tock = 0;
		return (0);
	}
	if (rc != 0)
		return (rc);
	w->len = need;
	w->tock = m.tock;
	w->has = !distkv_value_is_nil(w->buf, w->len);
	return (0);
}

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

/* Longest single futex sleep: how soon an agent killed -9 is noticed. */
#define WAIT_SLICE_MS	1000

/*
 * wait through the shared-memory region: sleep on its change word, look
 * at PATH after every wake-up.  The word is read before the value, so a
 * change between the two ends the next sleep at once.  The sleep is cut
 * into slices only to notice an agent that died without closing the
 * region (kill -9); a closed region wakes us at once.  Returns 0 with *now
 * filled (changed), DISTKV_ETIMEDOUT, DISTKV_EDISCONNECTED (the agent is
 * gone) or a distkv_shm_get() error; *started false: the start value could
 * not be read (the caller may use the socket instead).
 */
static int
wait_shm(struct ctx *ctx, distkv_shm *s, struct wstate *now, bool *started)
{
	struct wstate start;
	long long deadline = -1, left;
	uint32_t seq, nseq;
	int rc, slice;

	memset(&start, 0, sizeof(start));
	*started = false;
	if (ctx->timeout_ms >= 0)
		deadline = now_ms() + ctx->timeout_ms;
	seq = distkv_shm_counter(s);
	if (!ctx->changes &&
	    (rc = wstate_read_shm(&start, s, ctx->path)) != 0)
		goto out;
	*started = true;
	for (;;) {
		slice = WAIT_SLICE_MS;
		if (deadline >= 0) {
			if ((left = deadline - now_ms()) <= 0) {
				rc = DISTKV_ETIMEDOUT;
				goto out;
			}
			if (left < slice)
				slice = (int)left;
		}
		rc = distkv_shm_wait(s, seq, slice);
		if (rc == DISTKV_ETIMEDOUT) {
			if (distkv_shm_alive(s) != 1) {
				rc = DISTKV_EDISCONNECTED;
				goto out;
			}
			continue;
		}
		if (rc != 0)
			goto out;
		nseq = distkv_shm_counter(s);
		/* closing the region counts as a change: is it one? */
		if (distkv_shm_alive(s) != 1) {
			rc = DISTKV_EDISCONNECTED;
			goto out;
		}
		if (ctx->changes) {
			if (nseq != seq) {
				rc = 0;
				goto out;
			}
			continue;
		}
		seq = nseq;
		rc = wstate_read_shm(now, s, ctx->path);
		if (rc == DISTKV_EBUSY)
			continue;	/* the writer's next change wakes us */
		if (rc != 0)
			goto out;
		if (wstate_differs(&start, now))
			goto out;
	}
out:
	wstate_clear(&start);
	return (rc);
}

struct wait_arg {
	struct ctx	*ctx;
	struct wstate	 start;		/* PATH as fetched */
	struct wstate	*now;
	bool		 uptodate;
	int		 rc;		/* -ENOMEM from a copy */
};

static int
wait_cb(void *arg, const struct distkv_entry *e)
{
	struct wait_arg *wa = arg;

	if (wa->ctx->changes)
		return (e != NULL);	/* any live item */
	if (e == NULL) {
		wa->uptodate = true;
		return (0);
	}
	if (e->depth != 0)
		return (0);
	if ((wa->rc = wstate_set(wa->uptodate ? wa->now : &wa->start,
	    e->value.data, e->value.len, e->tock)) != 0)
		return (1);
	return (wa->uptodate && wstate_differs(&wa->start, wa->now));
}

/*
 * wait over the socket: a watch of PATH alone whose fetch part gives the
 * start state; the first live item that differs ends it.  --changes: a
 * watch of the whole tree without fetch, ended by its first item.
 */
static int
wait_socket(struct ctx *ctx, struct wstate *now)
{
	struct distkv_tree_opts to;
	struct wait_arg wa;
	distkv_path *root = NULL;
	int rc;

	memset(&wa, 0, sizeof(wa));
	wa.ctx = ctx;
	wa.now = now;
	memset(&to, 0, sizeof(to));
	to.max_depth = ctx->changes ? -1 : 0;
	to.fetch = !ctx->changes;
	if (ctx->changes && (rc = distkv_path_new(&root)) != 0)
		return (rc);
	rc = distkv_watch(ctx->c, ctx->changes ? root : ctx->path, &to,
	    ctx->timeout_ms, wait_cb, &wa);
	if (wa.rc != 0)
		rc = wa.rc;
	distkv_path_free(root);
	wstate_clear(&wa.start);
	return (rc);
}

/* The new state as get prints it; a deletion only in --json. */
static int
wait_print(struct ctx *ctx, const struct wstate *w)
{
	struct distkv_entry e;
	msgpack_sbuffer b;
	int rc = 0;

	if (ctx->changes || (!w->has && ctx->out != OUT_JSON))
		return (0);
	msgpack_sbuffer_init(&b);
	if (w->has) {
		memset(&e, 0, sizeof(e));
		e.value.data = w->buf;
		e.value.len = w->len;
		e.tock = w->tock;
		rc = put_entry(ctx, &b, ctx->path, &e, true);
	} else if (put(&b, "{\"path\":") != 0 ||
	    put_path(&b, ctx->path, true) != 0 ||
	    put(&b, ",\"value\":null}\n") != 0)
		rc = cli_err(EXIT_AGENT, "out of memory");
	else if (emit(&b) != 0)
		rc = cli_err(EXIT_AGENT, "write error: %s", strerror(errno));
	msgpack_sbuffer_destroy(&b);
	return (rc);
}

static int
cmd_wait(struct ctx *ctx)
{
	struct wstate now;
	distkv_shm *s = distkv_shm_of(ctx->c);
	bool started = false;
	int rc;

	memset(&now, 0, sizeof(now));
	/* a stale region (agent hung or gone) cannot tell us anything */
	if (s != NULL && distkv_shm_alive(s) == 1)
		rc = wait_shm(ctx, s, &now, &started);
	if (!started) {
		/* no region, or PATH unreadable in it (busy writer) */
		s = NULL;
		rc = wait_socket(ctx, &now);
	}
	if (rc == 0)
		rc = wait_print(ctx, &now);
	else if (rc == DISTKV_ETIMEDOUT && ctx->timeout_ms >= 0) {
		if (ctx->changes)
			rc = cli_err(EXIT_NOTFOUND, "no change within %d s",
			    ctx->timeout_ms / 1000);
		else
			rc = cli_err(EXIT_NOTFOUND, "%s: no change within "
			    "%d s", ctx->label, ctx->timeout_ms / 1000);
	} else if (rc == DISTKV_EDISCONNECTED && s != NULL)
		rc = cli_err(EXIT_AGENT, "%s: the agent stopped",
		    ctx->label);
	else
		rc = lib_error(ctx, rc, ctx->label);
	wstate_clear(&now);
	return (rc);
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

static int
cmd_help(struct ctx *ctx)
{
	const struct cmd *cmd;

	if (ctx->argc == 0) {
		print_usage(stdout);
		return (0);
	}
	if ((cmd = find_cmd(ctx->argv[0])) == NULL)
		return (cli_err(EXIT_USAGE, "unknown command '%s' (see "
		    "distkv-cli --help)", ctx->argv[0]));
	print_cmd_help(cmd);
	return (0);
}

/*
 * Everything that can be a usage error is checked here, before the agent
 * is contacted: PATH syntax, VALUE syntax, option combinations.
 */
static int
prepare(struct ctx *ctx, const struct cmd *cmd)
{
	struct distkv_set_opts *so = &ctx->so;
	int rc;

	if ((cmd->fn == cmd_get && ctx->has_event == (ctx->argc == 1)) ||
	    (cmd->fn == cmd_wait && ctx->changes == (ctx->argc == 1)))
		return (cli_err(EXIT_USAGE, "usage: distkv-cli %s",
		    cmd->usage));
	if (cmd->fn == cmd_serf)
		return (prepare_serf(ctx, cmd));
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

/* serf send|mon: the subcommand, TYPE, and for send the DATA value. */
static int
prepare_serf(struct ctx *ctx, const struct cmd *cmd)
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

static void
print_usage(FILE *f)
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
	for (i = 0; i < NCMDS; i++)
		printf("  %-8s %s\n", cmds[i].name, cmds[i].summary);
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
	    "(e.g. a failed precondition, or serf on a standalone agent).\n"
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

static void
print_cmd_help(const struct cmd *cmd)
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

static const struct cmd *
find_cmd(const char *name)
{
	size_t i;

	for (i = 0; i < NCMDS; i++)
		if (strcmp(cmds[i].name, name) == 0)
			return (&cmds[i]);
	return (NULL);
}

int
main(int argc, char **argv)
{
	struct ctx ctx;
	const struct cmd *cmd;
	const char *env;
	int i, rc;

	memset(&ctx, 0, sizeof(ctx));
	ctx.max_depth = -1;
	ctx.count = -1;
	ctx.timeout_ms = -1;

	if ((i = parse_args(&ctx, NULL, argc, argv, 1)) < 0)
		return (EXIT_USAGE);
	if (ctx.version) {
		printf("distkv-cli %s\n", PACKAGE_VERSION);
		return (0);
	}
	if (i >= argc) {
		if (ctx.help) {
			print_usage(stdout);
			return (0);
		}
		print_usage(stderr);
		return (EXIT_USAGE);
	}
	if ((cmd = find_cmd(argv[i])) == NULL)
		return (cli_err(EXIT_USAGE, "unknown command '%s' (see "
		    "distkv-cli --help)", argv[i]));
	if (parse_args(&ctx, cmd, argc, argv, i + 1) < 0)
		return (EXIT_USAGE);
	if (ctx.help) {
		print_cmd_help(cmd);
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
	if (ctx.timeout_ms > 0 && cmd->fn != cmd_watch &&
	    cmd->fn != cmd_wait) {
		char secs[32];

		snprintf(secs, sizeof(secs), "%d", ctx.timeout_ms / 1000);
		if (setenv("DISTKV_TIMEOUT", secs, 1) != 0) {
			rc = cli_err(EXIT_AGENT, "setenv: %s", strerror(errno));
			goto out;
		}
	}
	/* a region named outright is read without the agent */
	env = getenv("DISTKV_SHM");
	if (cmd->fn == cmd_get && !ctx.has_event && ctx.nchain == 0 &&
	    !ctx.no_shm && (ctx.shm != NULL || ctx.node != NULL ||
	    (env != NULL && *env != '\0'))) {
		rc = get_region(&ctx, ctx.stale);
		goto out;
	}
	if ((cmd->flags & CMD_CONNECT) && (rc = ctx.connect != NULL ?
	    distkv_connect_url(ctx.connect, &ctx.tls, &ctx.c) :
	    distkv_connect(ctx.socket, &ctx.c)) != 0) {
		const char *why = distkv_connect_errmsg();

		if (cmd->fn == cmd_get && ctx.stale && ctx.nchain == 0 &&
		    !ctx.has_event) {
			rc = get_region(&ctx, true);
			goto out;
		}
		/* the library's own words name the reason (certificate,
		 * name, refused); the code's text is the fallback */
		rc = cli_err(rc == DISTKV_EINVAL ? EXIT_USAGE : EXIT_AGENT,
		    "cannot reach the agent at %s: %s", ctx.socket,
		    why[0] != '\0' ? why : distkv_strerror(rc));
		goto out;
	}
	if ((cmd->flags & CMD_CONNECT) && (rc = auth_login(ctx.c, &ctx.ao)) != 0)
		goto out;
	rc = cmd->fn(&ctx);
	if (fflush(stdout) != 0 || ferror(stdout))
		rc = cli_err(EXIT_AGENT, "write error: %s", strerror(errno));
out:
	distkv_close(ctx.c);
	distkv_path_free(ctx.path);
	msgpack_sbuffer_destroy(&ctx.val);
	msgpack_sbuffer_destroy(&ctx.prev_val);
	return (rc);
}
