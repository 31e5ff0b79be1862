/*
 * cli: what the files of distkv-cli share (manual: docs/cli.md).
 *
 * main.c holds the command table and main(); args.c the options
 * (getopt_long) and the help; output.c the printers; each cmd_*.c file
 * one group of commands, each exporting a `const struct cli_cmd' per
 * command (tmux's cmd_entry idea).  A new command is a function and its
 * entry in its own file, plus one line in cli_cmds[] (main.c).
 */
#ifndef DISTKV_CLI_H
#define DISTKV_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <msgpack.h>

#include "distkv.h"
#include "auth.h"
#include "xlate.h"

/* Exit statuses (docs/cli.md, "Exit status"). */
#define EXIT_NOTFOUND	1
#define EXIT_USAGE	2
#define EXIT_AGENT	3
#define EXIT_REFUSED	4
#define EXIT_STALE	5	/* get --stale printed data of a stopped agent */
#define EXIT_DENIED	6	/* not logged in, or the login was refused */
#define EXIT_UNHEALTHY	7	/* health: the agent is not healthy (why: stderr) */

#define MAX_ARGS	8	/* positional arguments any command takes */

/*
 * The largest VALUE read from a file or stdin: the agent's default
 * --max-request (4 MiB) less 64 KiB for the request around it.
 */
#define CLI_VALUE_MAX	((4u << 20) - (64u << 10))

enum output {
	OUT_TEXT,
	OUT_JSON,
	OUT_RAW,
};

/* Every option of every command; the table is opts[] in args.c. */
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
	O_FILE,
	O_KEYS,
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
	const char	*file;		/* set --file FILE */
	bool		 keys;		/* tree --keys */

	long		 seen;		/* watch: entries printed */

	/* prepared by main() from the above, before connecting */
	const char	*pathtext;	/* as given ("" for the root) */
	const char	*label;		/* in messages; "/" for the root */
	distkv_path	*path;
	msgpack_sbuffer	 val;
	msgpack_sbuffer	 prev_val;
	struct distkv_set_opts so;
};

struct cli_cmd {
	const char	*name;
	const char	*usage;
	const char	*summary;
	const char	*help;		/* description and examples */
	const enum optid *opts;		/* O_END-terminated */
	int		 minargs;
	int		 maxargs;
	int		 flags;
	/* usage checks of its own before the agent is contacted, or NULL */
	int		(*check)(struct ctx *, const struct cli_cmd *);
	int		(*exec)(struct ctx *);
};

/* cli_cmd flags: what main() prepares before the command runs */
#define CMD_CONNECT	0x1	/* connect to the agent */
#define CMD_PATH	0x2	/* argv[0] is a PATH; none: the root */
#define CMD_VALUE	0x4	/* argv[1] is a VALUE */
#define CMD_PRECOND	0x8	/* --new, --chain, --prev */
#define CMD_OWNTIMEOUT	0x10	/* -t is its own limit, not the socket's */
#define CMD_REGION	0x20	/* may read a region without the agent */
#define CMD_HIDDEN	0x40	/* not in --help (cmd_complete.c) */

/* main.c */
extern const struct cli_cmd *const cli_cmds[];
const struct cli_cmd *cli_find_cmd(const char *);

/* args.c */
extern const enum optid cli_no_opts[];
int	args_parse(struct ctx *, const struct cli_cmd *, int, char **);
int	args_parse_int(const char *, const char *, long, long, long *);
int	args_parse_event(const char *, const char *, struct distkv_event *);
void	args_usage(FILE *);
void	args_cmd_help(const struct cli_cmd *);
void	args_list_options(const struct cli_cmd *);

/* output.c */
/* "distkv-cli: MESSAGE" on stderr (stdout flushed first); returns code. */
int	cli_err(int code, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
int	lib_error(struct ctx *, int, const char *);
int	parse_path(const char *, distkv_path **);
int	build_value(struct ctx *, const char *, bool, msgpack_sbuffer *);
int	put(msgpack_sbuffer *, const char *);
int	putn(msgpack_sbuffer *, const char *, size_t);
int	emit(msgpack_sbuffer *);
int	put_path(msgpack_sbuffer *, const distkv_path *, bool);
int	put_chain_json(msgpack_sbuffer *, const struct distkv_chain *);
int	put_chain_text(msgpack_sbuffer *, const struct distkv_chain *);
int	put_entry(struct ctx *, msgpack_sbuffer *, const distkv_path *,
	    const struct distkv_entry *, bool);

/* input.c */
int	input_read(const char *, size_t, char **, size_t *);
int	input_value(struct ctx *, const char *, msgpack_sbuffer *);

/* cmd_get.c */
extern const struct cli_cmd cmd_get_entry;
extern const struct cli_cmd cmd_set_entry;
extern const struct cli_cmd cmd_delete_entry;
int	get_region(struct ctx *, bool);

/* cmd_tree.c */
extern const struct cli_cmd cmd_tree_entry;
extern const struct cli_cmd cmd_watch_entry;
extern const struct cli_cmd cmd_wait_entry;

/* cmd_io.c */
extern const struct cli_cmd cmd_export_entry;
extern const struct cli_cmd cmd_import_entry;

/* cmd_complete.c */
extern const struct cli_cmd cmd_commands_entry;
extern const struct cli_cmd cmd_options_entry;
extern const struct cli_cmd cmd_paths_entry;

/* cmd_admin.c */
extern const struct cli_cmd cmd_state_entry;
extern const struct cli_cmd cmd_save_entry;
extern const struct cli_cmd cmd_log_entry;
extern const struct cli_cmd cmd_serf_entry;

/* cmd_access.c */
extern const struct cli_cmd cmd_auth_entry;
extern const struct cli_cmd cmd_acl_entry;
extern const struct cli_cmd cmd_type_entry;
extern const struct cli_cmd cmd_match_entry;
extern const struct cli_cmd cmd_codec_entry;
extern const struct cli_cmd cmd_conv_entry;

/* cmd_ops.c */
extern const struct cli_cmd cmd_members_entry;
extern const struct cli_cmd cmd_health_entry;
extern const struct cli_cmd cmd_forget_entry;
extern const struct cli_cmd cmd_metrics_entry;
extern const struct cli_cmd cmd_dump_entry;
extern const struct cli_cmd cmd_restore_entry;

#endif
