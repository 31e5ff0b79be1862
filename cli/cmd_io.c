/*
 * distkv-cli export, import: a subtree as JSON lines and back
 * (docs/cli.md, "export" and "import").
 *
 * One line per entry with a value: {"path":PATH,"value":VALUE}, PATH in
 * the command line's path syntax (integer and byte elements included),
 * VALUE in the JSON mapping of docs/cli.md.  When that JSON form does not
 * read back as the very same msgpack bytes (a 32-bit float, a string that
 * is not UTF-8, NaN, an integer in a longer encoding than needed) the line
 * also has "msgpack":HEX, the exact bytes, which import prefers.  So
 * export, import into an empty tree and export again give the same lines.
 *
 * import sends the sets pipelined (libdistkv's asynchronous calls, up to
 * IMPORT_WINDOW at a time) and reports how many were written.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "distkv.h"
#include "mpjson.h"
#include "cli.h"
#include "proto.h"

#define IMPORT_WINDOW	512	/* sets in flight */
#define IMPORT_LINE_MAX	(4 * CLI_VALUE_MAX)	/* a value as JSON and hex */
#define IMPORT_WAIT_MS	30000	/* no reply for this long: give up */

struct export_arg {
	struct ctx	*ctx;
	msgpack_sbuffer	 b;		/* the line */
	msgpack_sbuffer	 check;		/* JSON form read back */
	long		 n;
	int		 rc;
};

struct import_arg {
	struct ctx	*ctx;
	const char	*label;		/* the input, in messages */
	long		 inflight;
	long		 written;
	long		 failed;
	int		 rc;		/* a connection error */
};

struct import_req {
	struct import_arg *ia;
	long		 line;
};

static int	cmd_export(struct ctx *);
static int	cmd_import(struct ctx *);
static int	export_cb(void *, const struct distkv_entry *);
static bool	json_faithful(msgpack_sbuffer *, const msgpack_sbuffer *,
		    const void *, size_t);
static int	put_hex(msgpack_sbuffer *, const uint8_t *, size_t);
static int	parse_line(struct import_arg *, long, char *, distkv_path **,
		    msgpack_sbuffer *);
static int	unhex(const char *, size_t, msgpack_sbuffer *);
static void	import_cb(void *, int, const struct distkv_set_result *);
static int	import_pump(distkv *, struct import_arg *);
static int	read_line(FILE *, char **, size_t *, size_t *);

const struct cli_cmd cmd_export_entry = {
	.name = "export",
	.usage = "export [PATH]",
	.summary = "write PATH and everything below it as JSON lines",
	.help =
	    "Write every entry with a value at or below PATH (default: the\n"
	    "whole tree) to stdout, one JSON object per line:\n"
	    "{\"path\":PATH,\"value\":VALUE}, PATH in the path syntax of the\n"
	    "command line, VALUE as JSON (docs/cli.md, Values).  A value whose\n"
	    "JSON form would not read back as the same bytes (a 32-bit float,\n"
	    "a string that is not UTF-8) also gets \"msgpack\":HEX, its exact\n"
	    "bytes.  `import` reads this back.\n"
	    "\n"
	    "Examples:\n"
	    "  distkv-cli export > all.jsonl\n"
	    "  distkv-cli export svc/web | distkv-cli --socket /other import\n",
	.opts = cli_no_opts,
	.minargs = 0,
	.maxargs = 1,
	.flags = CMD_CONNECT | CMD_PATH,
	.check = NULL,
	.exec = cmd_export,
};

const struct cli_cmd cmd_import_entry = {
	.name = "import",
	.usage = "import [FILE|-]",
	.summary = "set the entries of an export (JSON lines)",
	.help =
	    "Read JSON lines as `export` writes them (or as `tree --json`\n"
	    "does) from FILE or stdin (\"-\", the default) and set each PATH\n"
	    "to its VALUE (\"msgpack\":HEX, if given, wins over \"value\").\n"
	    "The sets are pipelined: many are in flight at once.  Empty lines\n"
	    "are skipped.  At the end prints \"N written\" (--json:\n"
	    "{\"written\":N,\"failed\":M}).  A line that cannot be read stops\n"
	    "the import (exit 2, naming the line; what was sent before it is\n"
	    "written); a set the agent refuses is reported with its line and\n"
	    "the import goes on, exit status 4 at the end.\n"
	    "\n"
	    "Examples:\n"
	    "  distkv-cli import all.jsonl\n"
	    "  1000 written\n"
	    "  distkv-cli export svc | distkv-cli --socket /other import\n",
	.opts = cli_no_opts,
	.minargs = 0,
	.maxargs = 1,
	.flags = CMD_CONNECT,
	.check = NULL,
	.exec = cmd_import,
};

/* ---- export ---- */

/* Whether the JSON text of value reads back as exactly its bytes. */
static bool
json_faithful(msgpack_sbuffer *check, const msgpack_sbuffer *json,
    const void *value, size_t len)
{
	msgpack_packer pk;
	char err[128], *text;
	bool same;

	if ((text = malloc(json->size + 1)) == NULL)
		return (false);
	memcpy(text, json->data, json->size);
	text[json->size] = '\0';
	check->size = 0;
	msgpack_packer_init(&pk, check, msgpack_sbuffer_write);
	same = mpjson_parse(&pk, text, err, sizeof(err)) == 0 &&
	    check->size == len && memcmp(check->data, value, len) == 0;
	free(text);
	return (same);
}

static int
put_hex(msgpack_sbuffer *b, const uint8_t *p, size_t len)
{
	static const char digits[] = "0123456789abcdef";
	char two[2];
	size_t i;

	for (i = 0; i < len; i++) {
		two[0] = digits[p[i] >> 4];
		two[1] = digits[p[i] & 15];
		if (putn(b, two, 2) != 0)
			return (-ENOMEM);
	}
	return (0);
}

static int
export_cb(void *arg, const struct distkv_entry *e)
{
	struct export_arg *ea = arg;
	msgpack_sbuffer json;
	int rc;

	if (e->value.len == 0 || distkv_value_is_nil(e->value.data,
	    e->value.len))
		return (0);
	msgpack_sbuffer_init(&json);
	ea->b.size = 0;
	if ((rc = mpjson_format_bytes(&json, e->value.data, e->value.len,
	    0)) != 0) {
		msgpack_sbuffer_destroy(&json);
		ea->rc = cli_err(EXIT_AGENT, rc == -ENOMEM ? "out of memory" :
		    "protocol error: the agent sent a value that is not valid "
		    "msgpack");
		return (1);
	}
	if (put(&ea->b, "{\"path\":") != 0 ||
	    put_path(&ea->b, e->path, true) != 0 ||
	    put(&ea->b, ",\"value\":") != 0 ||
	    putn(&ea->b, json.data, json.size) != 0)
		goto oom;
	if (!json_faithful(&ea->check, &json, e->value.data, e->value.len) &&
	    (put(&ea->b, ",\"msgpack\":\"") != 0 ||
	    put_hex(&ea->b, e->value.data, e->value.len) != 0 ||
	    put(&ea->b, "\"") != 0))
		goto oom;
	if (put(&ea->b, "}\n") != 0)
		goto oom;
	msgpack_sbuffer_destroy(&json);
	if (emit(&ea->b) != 0) {
		ea->rc = cli_err(EXIT_AGENT, "write error: %s",
		    strerror(errno));
		return (1);
	}
	ea->n++;
	return (0);
oom:
	msgpack_sbuffer_destroy(&json);
	ea->rc = cli_err(EXIT_AGENT, "out of memory");
	return (1);
}

static int
cmd_export(struct ctx *ctx)
{
	struct distkv_tree_opts to;
	struct export_arg ea;
	int rc;

	memset(&ea, 0, sizeof(ea));
	ea.ctx = ctx;
	msgpack_sbuffer_init(&ea.b);
	msgpack_sbuffer_init(&ea.check);
	memset(&to, 0, sizeof(to));
	to.max_depth = -1;
	rc = distkv_get_tree(ctx->c, ctx->path, &to, export_cb, &ea);
	if (ea.rc != 0)
		rc = ea.rc;
	else if (rc != 0)
		rc = lib_error(ctx, rc, ctx->label);
	msgpack_sbuffer_destroy(&ea.b);
	msgpack_sbuffer_destroy(&ea.check);
	return (rc);
}

/* ---- import ---- */

static int
unhex(const char *s, size_t len, msgpack_sbuffer *out)
{
	char byte;
	size_t i;
	int hi, lo;

	if (len % 2 != 0)
		return (-EINVAL);
	for (i = 0; i < len; i += 2) {
		hi = s[i] >= '0' && s[i] <= '9' ? s[i] - '0' :
		    (s[i] | 0x20) >= 'a' && (s[i] | 0x20) <= 'f' ?
		    (s[i] | 0x20) - 'a' + 10 : -1;
		lo = s[i + 1] >= '0' && s[i + 1] <= '9' ? s[i + 1] - '0' :
		    (s[i + 1] | 0x20) >= 'a' && (s[i + 1] | 0x20) <= 'f' ?
		    (s[i + 1] | 0x20) - 'a' + 10 : -1;
		if (hi < 0 || lo < 0)
			return (-EINVAL);
		byte = (char)(hi << 4 | lo);
		if (msgpack_sbuffer_write(out, &byte, 1) != 0)
			return (-ENOMEM);
	}
	return (0);
}

/*
 * One line: the whole object is read with mpjson (so that every value
 * keeps its exact type), then its "path" and "value" (or "msgpack") are
 * taken out.  Returns 0, or an exit status after a message.
 */
static int
parse_line(struct import_arg *ia, long line, char *text, distkv_path **path,
    msgpack_sbuffer *val)
{
	msgpack_sbuffer obj;
	msgpack_packer pk;
	msgpack_zone zone;
	msgpack_object o;
	const msgpack_object *p, *v, *hex;
	char err[256], *ptext = NULL;
	size_t objlen;
	int rc = 0, r;

	msgpack_sbuffer_init(&obj);
	msgpack_packer_init(&pk, &obj, msgpack_sbuffer_write);
	if (!msgpack_zone_init(&zone, 1024)) {
		msgpack_sbuffer_destroy(&obj);
		return (cli_err(EXIT_AGENT, "out of memory"));
	}
	val->size = 0;
	if ((r = mpjson_parse(&pk, text, err, sizeof(err))) != 0) {
		rc = r == -ENOMEM ? cli_err(EXIT_AGENT, "out of memory") :
		    cli_err(EXIT_USAGE, "%s:%ld: invalid JSON: %s", ia->label,
		    line, err);
		goto out;
	}
	if (proto_scan((const uint8_t *)obj.data, obj.size,
	    PROTO_MAX_NESTING + 1, &objlen) != 0 || objlen != obj.size ||
	    proto_unpack((const uint8_t *)obj.data, obj.size, &zone,
	    &o) != 0 || o.type != MSGPACK_OBJECT_MAP) {
		rc = cli_err(EXIT_USAGE, "%s:%ld: not a JSON object", ia->label,
		    line);
		goto out;
	}
	p = proto_map_get(&o, "path");
	v = proto_map_get(&o, "value");
	hex = proto_map_get(&o, "msgpack");
	if (p == NULL || p->type != MSGPACK_OBJECT_STR ||
	    (v == NULL && hex == NULL)) {
		rc = cli_err(EXIT_USAGE, "%s:%ld: needs \"path\" (a string) and "
		    "\"value\"", ia->label, line);
		goto out;
	}
	if ((ptext = strndup(p->via.str.ptr, p->via.str.size)) == NULL) {
		rc = cli_err(EXIT_AGENT, "out of memory");
		goto out;
	}
	if (strlen(ptext) != p->via.str.size ||
	    distkv_path_parse(ptext, path) != 0) {
		rc = cli_err(EXIT_USAGE, "%s:%ld: invalid path '%s'", ia->label,
		    line, ptext);
		goto out;
	}
	if (hex != NULL) {
		if (hex->type != MSGPACK_OBJECT_STR ||
		    unhex(hex->via.str.ptr, hex->via.str.size, val) != 0 ||
		    proto_scan((const uint8_t *)val->data, val->size,
		    PROTO_MAX_NESTING, &objlen) != 0 || objlen != val->size) {
			rc = cli_err(EXIT_USAGE, "%s:%ld: \"msgpack\" is not the "
			    "hex of one msgpack value", ia->label, line);
			goto out;
		}
	} else {
		msgpack_packer_init(&pk, val, msgpack_sbuffer_write);
		if (msgpack_pack_object(&pk, *v) != 0) {
			rc = cli_err(EXIT_AGENT, "out of memory");
			goto out;
		}
	}
	if (val->size == 1 && (uint8_t)val->data[0] == 0xc0)
		rc = cli_err(EXIT_USAGE, "%s:%ld: null is not a value",
		    ia->label, line);
out:
	if (rc != 0) {
		distkv_path_free(*path);
		*path = NULL;
	}
	free(ptext);
	msgpack_zone_destroy(&zone);
	msgpack_sbuffer_destroy(&obj);
	return (rc);
}

static void
import_cb(void *arg, int rc, const struct distkv_set_result *r)
{
	struct import_req *ir = arg;
	struct import_arg *ia = ir->ia;

	(void)r;
	ia->inflight--;
	if (rc == 0)
		ia->written++;
	else if (DISTKV_IS_REFUSAL(rc)) {
		ia->failed++;
		cli_err(0, "%s:%ld: %s", ia->label, ir->line,
		    distkv_errmsg(ia->ctx->c));
	} else if (ia->rc == 0)
		ia->rc = lib_error(ia->ctx, rc, "import");
	free(ir);
}

/* Send what is queued, run the callbacks of what arrived. */
static int
import_pump(distkv *c, struct import_arg *ia)
{
	struct pollfd pf;
	int n, rc;

	pf.fd = distkv_fd(c);
	pf.events = POLLIN | (distkv_want_write(c) ? POLLOUT : 0);
	n = poll(&pf, 1, IMPORT_WAIT_MS);
	if (n < 0 && errno != EINTR)
		return (cli_err(EXIT_AGENT, "poll: %s", strerror(errno)));
	if (n == 0)
		return (cli_err(EXIT_AGENT, "import: no reply from the agent "
		    "within %d s", IMPORT_WAIT_MS / 1000));
	if ((rc = distkv_process(c)) != 0)
		return (lib_error(ia->ctx, rc, "import"));
	return (ia->rc);
}

/*
 * One line of f into *buf (NUL-terminated, without its newline).
 * Returns 1 for a line, 0 at the end, -1 after a read error, -2 for a
 * line longer than IMPORT_LINE_MAX.
 */
static int
read_line(FILE *f, char **buf, size_t *cap, size_t *len)
{
	ssize_t n;

	errno = 0;
	if ((n = getline(buf, cap, f)) < 0)
		return (errno != 0 ? -1 : 0);
	if ((size_t)n > IMPORT_LINE_MAX)
		return (-2);
	if (n > 0 && (*buf)[n - 1] == '\n')
		(*buf)[--n] = '\0';
	*len = (size_t)n;
	return (1);
}

static int
cmd_import(struct ctx *ctx)
{
	const char *name = ctx->argc > 0 ? ctx->argv[0] : "-";
	struct import_arg ia;
	struct import_req *ir;
	msgpack_sbuffer val;
	distkv_path *path = NULL;
	struct distkv_set_opts so;
	FILE *f = stdin;
	char *buf = NULL;
	size_t cap = 0, len;
	long line = 0;
	int rc = 0, got;

	memset(&ia, 0, sizeof(ia));
	ia.ctx = ctx;
	ia.label = strcmp(name, "-") == 0 ? "stdin" : name;
	if (strcmp(name, "-") != 0 && (f = fopen(name, "r")) == NULL)
		return (cli_err(EXIT_USAGE, "cannot read %s: %s", name,
		    strerror(errno)));
	memset(&so, 0, sizeof(so));
	so.nchain = -1;
	msgpack_sbuffer_init(&val);
	while ((got = read_line(f, &buf, &cap, &len)) == 1) {
		line++;
		if (strspn(buf, " \t\r") == len)
			continue;
		if (strlen(buf) != len) {
			rc = cli_err(EXIT_USAGE, "%s:%ld: a NUL byte", ia.label,
			    line);
			break;
		}
		if ((rc = parse_line(&ia, line, buf, &path, &val)) != 0)
			break;
		while (ia.inflight >= IMPORT_WINDOW && rc == 0)
			rc = import_pump(ctx->c, &ia);
		if (rc != 0)
			break;
		if ((ir = malloc(sizeof(*ir))) == NULL) {
			rc = cli_err(EXIT_AGENT, "out of memory");
			break;
		}
		ir->ia = &ia;
		ir->line = line;
		rc = distkv_async_set(ctx->c, path, val.data, val.size, &so,
		    import_cb, ir, NULL);
		distkv_path_free(path);
		path = NULL;
		if (rc != 0) {
			free(ir);
			rc = lib_error(ctx, rc, "import");
			break;
		}
		ia.inflight++;
	}
	if (got == -1)
		rc = cli_err(EXIT_AGENT, "cannot read %s: %s", ia.label,
		    strerror(errno));
	else if (got == -2)
		rc = cli_err(EXIT_USAGE, "%s:%ld: line longer than %u bytes",
		    ia.label, line + 1, IMPORT_LINE_MAX);
	/* what was sent is waited for, even after an error */
	while (ia.inflight > 0 && ia.rc == 0)
		if (import_pump(ctx->c, &ia) != 0 && ia.rc == 0)
			break;
	if (ia.inflight > 0 && rc == 0)
		rc = ia.rc != 0 ? ia.rc : EXIT_AGENT;
	if (ctx->out == OUT_JSON)
		printf("{\"written\":%ld,\"failed\":%ld}\n", ia.written,
		    ia.failed);
	else
		printf("%ld written\n", ia.written);
	if (rc == 0 && ia.rc != 0)
		rc = ia.rc;
	if (rc == 0 && ia.failed > 0)
		rc = EXIT_REFUSED;
	free(buf);
	msgpack_sbuffer_destroy(&val);
	if (f != stdin)
		fclose(f);
	return (rc);
}
