/*
 * conf: see conf.h.
 *
 * Everything read here comes from outside (argv, the environment, a file
 * anyone with write access to /etc may have edited): each value is parsed
 * strictly by its option's type, and an error stops the start with the
 * place it came from.  Nothing here trusts the file's structure either:
 * libyaml's event parser is driven by hand and anything but a flat
 * mapping of known keys to scalars (or lists of scalars, for the
 * repeatable options) is refused.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>
#include <yaml.h>

#include "conf.h"
#include "distkv.h"
#include "proto.h"

#define CONF_MAX_FILE (1 << 20)

#define XSTR(x) STR(x)
#define STR(x) #x

enum opt_type {
	T_STR,			/* any text (check: more rules) */
	T_BOOL,			/* a flag on the command line */
	T_UINT,			/* whole number lo..hi */
	T_SECONDS,		/* decimal number lo..hi */
	T_MODE,			/* octal file mode */
	T_ENUM,			/* one of words[]: the value is its index */
	T_LIST,			/* repeatable; at most hi values */
	T_ACTION,		/* --help, --version: command line only */
};

#define F_LIVE		0x1	/* SIGHUP applies a change */
#define F_NOFILE	0x2	/* not a key of the file (--config) */

enum opt_id {
	O_SOCKET, O_SOCKET_MODE, O_NODE, O_STANDALONE,
	/* cluster */
	O_BIND, O_SERF_RPC, O_JOIN, O_SERF, O_SERF_AUTH, O_PEER_BIND,
	O_CLUSTER_KEY, O_NO_KEY, O_EVENT_PREFIX, O_CLOCK, O_PING_LENGTH,
	O_JOIN_TIMEOUT, O_TOMBSTONE_KEEP, O_RUN_DIR, O_SERF_BIN,
	/* data */
	O_INIT, O_LOAD, O_STATE_DIR, O_FSYNC, O_SNAPSHOT_EVERY, O_FILE_DIR,
	O_MAX_REQUEST, O_MAX_OUTPUT, O_CHANGE_LENGTH, O_SHM, O_SHM_MODE,
	O_NO_SHM, O_STREAM_TIMEOUT, O_NO_LOGIN, O_ACL_DEFAULT_DENY,
	/* remote clients */
	O_LISTEN, O_TLS_CERT, O_TLS_KEY, O_TLS_CLIENT_CA, O_TLS_HS_TIMEOUT,
	O_LISTEN_INSECURE, O_LISTEN_ANON, O_METRICS,
	/* logs, the program */
	O_LOG_LEVEL, O_LOG_FORMAT, O_LOG_TARGET, O_LOG_FILE, O_CONFIG,
	O_HELP, O_VERSION,
	O_COUNT
};

struct opt {
	const char *name;	/* long option, file key; env DISTKV_NAME */
	enum opt_type type;
	unsigned flags;
	const char *def;	/* default, parsed as any value; NULL: none */
	double lo, hi;		/* T_UINT, T_SECONDS; T_LIST: hi = count */
	const char *const *words;	/* T_ENUM */
	/* more rules for a T_STR: NULL, or why s is refused */
	const char *(*check)(const char *s);
	const char *section;	/* --help: a heading before this option */
	const char *arg;	/* --help: the value's name */
	const char *help;	/* --help: lines joined by \n */
};

static const char *check_node(const char *);
static const char *check_event_prefix(const char *);

static const char *const fsync_words[] = { "always", "batch", "none", NULL };
static const char *const level_words[] = { "debug", "info", "warn", "error",
    NULL };
static const char *const format_words[] = { "text", "json", NULL };
static const char *const target_words[] = { "stderr", "syslog", "journal",
    NULL };

#define DAY 86400.0
#define YEAR (365 * DAY)

static const struct opt opts[O_COUNT] = {
	[O_SOCKET] = { "socket", T_STR, 0, "/run/distkv/distkv.sock", 0, 0,
	    NULL, NULL, NULL, "PATH",
	    "client socket (default /run/distkv/distkv.sock)" },
	[O_SOCKET_MODE] = { "socket-mode", T_MODE, 0, "0660", 0, 0, NULL,
	    NULL, NULL, "MODE",
	    "permissions of the socket file, octal (default 0660)" },
	[O_NODE] = { "node", T_STR, 0, NULL, 0, 0, NULL, check_node, NULL,
	    "NAME", "this node's name (default: the host name)" },
	[O_STANDALONE] = { "standalone", T_BOOL, 0, "false", 0, 0, NULL,
	    NULL, NULL, NULL, "run without Serf: a single node, ready at once" },

	[O_BIND] = { "bind", T_STR, 0, "127.0.0.1:7946", 0, 0, NULL, NULL,
	    "Cluster (without --standalone; docs/cluster.md):", "ADDR:PORT",
	    "gossip address of the embedded serf agent\n"
	    "(default 127.0.0.1:7946)" },
	[O_SERF_RPC] = { "serf-rpc", T_STR, 0, "127.0.0.1:7373", 0, 0, NULL,
	    NULL, NULL, "ADDR:PORT", "RPC address of the embedded serf agent\n"
	    "(default 127.0.0.1:7373)" },
	[O_JOIN] = { "join", T_LIST, 0, NULL, 0, CONF_MAX_JOIN, NULL, NULL,
	    NULL, "ADDR:PORT", "another node's gossip address (repeatable)" },
	[O_SERF] = { "serf", T_STR, 0, NULL, 0, 0, NULL, NULL, NULL,
	    "ADDR:PORT", "use a running serf agent's RPC instead of starting\n"
	    "one; --serf-auth KEY if it has rpc_auth set" },
	[O_SERF_AUTH] = { "serf-auth", T_STR, 0, NULL, 0, 0, NULL, NULL, NULL,
	    "KEY", "the rpc_auth key of the --serf agent" },
	[O_PEER_BIND] = { "peer-bind", T_STR, 0, NULL, 0, 0, NULL, NULL, NULL,
	    "ADDR:PORT", "peer port for downloads and catch-up (default:\n"
	    "the --bind address, port 27589)" },
	[O_CLUSTER_KEY] = { "cluster-key", T_STR, 0, NULL, 0, 0, NULL, NULL,
	    NULL, "FILE", "shared secret peers must prove (HMAC challenge) and\n"
	    "gossip encryption; required in a cluster" },
	[O_NO_KEY] = { "insecure-no-cluster-key", T_BOOL, 0, "false", 0, 0,
	    NULL, NULL, NULL, NULL, "run a cluster node without a key: anyone\n"
	    "who reaches its ports owns the tree (tests only)" },
	[O_EVENT_PREFIX] = { "event-prefix", T_STR, 0, "distkv", 0, 0, NULL,
	    check_event_prefix, NULL, "NAME", "Serf event names NAME.update, "
	    "NAME.info (default\ndistkv)" },
	[O_CLOCK] = { "clock", T_SECONDS, 0, "1", 0.05, 3600, NULL, NULL,
	    NULL, "SECONDS", "the ping clock: info messages, catch-up, pings\n"
	    "(default 1)" },
	[O_PING_LENGTH] = { "ping-length", T_UINT, 0, "4", 2, 16, NULL, NULL,
	    NULL, "N", "links of a ping chain (default 4)" },
	[O_JOIN_TIMEOUT] = { "join-timeout", T_UINT, 0, "120", 0, YEAR, NULL,
	    NULL, NULL, "SECONDS", "a node without data that has joined nobody\n"
	    "after this long stops with an error (default 120;\n"
	    "0: wait forever); after 10 s alone it says why" },
	[O_TOMBSTONE_KEEP] = { "tombstone-keep", T_UINT, 0, "300", 0, YEAR,
	    NULL, NULL, NULL, "SECONDS", "keep deleted entries' chains at least "
	    "this long\nbefore they may be purged, once every node has\n"
	    "seen the delete (default 300; 0: as soon as safe)" },
	[O_RUN_DIR] = { "run-dir", T_STR, 0, NULL, 0, 0, NULL, NULL, NULL,
	    "DIR", "files of the embedded serf agent (default: the\n"
	    "state dir, else a temp dir)" },
	[O_SERF_BIN] = { "serf-bin", T_STR, 0, "serf", 0, 0, NULL, NULL, NULL,
	    "PATH", "the serf program (default: serf in PATH)" },

	[O_INIT] = { "init", T_STR, 0, NULL, 0, 0, NULL, NULL, "Data:",
	    "VALUE", "set the root entry to VALUE when the agent has no\n"
	    "data yet; VALUE is JSON (e.g. 123, '\"x\"',\n"
	    "'{\"a\":1}'), or else a string" },
	[O_LOAD] = { "load", T_STR, 0, NULL, 0, 0, NULL, NULL, NULL, "FILE",
	    "load a snapshot or log file before serving (refused\n"
	    "when the state dir already holds this node's data)" },
	[O_STATE_DIR] = { "state-dir", T_STR, 0, NULL, 0, 0, NULL, NULL, NULL,
	    "DIR", "keep a change log and snapshots in DIR and restore\n"
	    "them at start" },
	[O_FSYNC] = { "fsync", T_ENUM, 0, "always", 0, 0, fsync_words, NULL,
	    NULL, "POLICY", "change log durability: always (default: fsync "
	    "before\nthe reply), batch (once a second), none" },
	[O_SNAPSHOT_EVERY] = { "snapshot-every", T_UINT, F_LIVE, "10000", 0,
	    UINT_MAX, NULL, NULL, NULL, "N",
	    "snapshot the state dir after N changes (default 10000)" },
	[O_FILE_DIR] = { "file-dir", T_STR, 0, NULL, 0, 0, NULL, NULL, NULL,
	    "DIR", "directory for the files of the save and log actions\n"
	    "(default: the state dir's files/)" },
	[O_MAX_REQUEST] = { "max-request", T_UINT, F_LIVE, "4194304", 256,
	    1 << 30, NULL, NULL, NULL, "BYTES",
	    "largest request accepted (default 4194304)" },
	[O_MAX_OUTPUT] = { "max-output", T_UINT, F_LIVE, "16777216", 1024,
	    (double)(1ull << 34), NULL, NULL, NULL, "BYTES",
	    "output queued to one client before its watches are\n"
	    "dropped and its reading paused (default 16777216)" },
	[O_CHANGE_LENGTH] = { "change-length", T_UINT, 0,
	    XSTR(CHAIN_DEFAULT_LENGTH), 1, CHAIN_CAP, NULL, NULL, NULL, "N",
	    "chain links stored and sent (default "
	    XSTR(CHAIN_DEFAULT_LENGTH) ", max " XSTR(CHAIN_CAP) ")" },
	[O_SHM] = { "shm", T_STR, 0, NULL, 0, 0, NULL, NULL, NULL, "PATH",
	    "shared-memory region for local readers (default\n"
	    "/dev/shm/distkv-NODE)" },
	[O_SHM_MODE] = { "shm-mode", T_MODE, 0, "0640", 0, 0, NULL, NULL,
	    NULL, "MODE", "permissions of the region file, octal (default "
	    "0640:\nreadable by the agent's group)" },
	[O_NO_SHM] = { "no-shm", T_BOOL, 0, "false", 0, 0, NULL, NULL, NULL,
	    NULL, "no shared-memory region" },
	[O_STREAM_TIMEOUT] = { "stream-timeout", T_UINT, F_LIVE, "60", 1, DAY,
	    NULL, NULL, NULL, "SECONDS", "a client-streamed request (update, "
	    "the _test\ndialogs) with no input for this long is ended (60)" },
	[O_NO_LOGIN] = { "no-login", T_BOOL, 0, "false", 0, 0, NULL, NULL,
	    NULL, NULL, "recovery: no connection on the Unix socket must log\n"
	    "in, whatever auth method is on (docs/operations.md,\n"
	    "Logins); TCP and TLS clients still must" },
	[O_ACL_DEFAULT_DENY] = { "acl-default-deny", T_BOOL, F_LIVE, "false",
	    0, 0, NULL, NULL, NULL, NULL, "a user bound to an ACL is refused "
	    "where no entry of\nthe ACL matches (default: allowed, as the\n"
	    "reference does; docs/operations.md, ACLs)" },

	[O_LISTEN] = { "listen", T_LIST, 0, NULL, 0, CONF_MAX_LISTEN, NULL,
	    NULL, "Remote clients (docs/operations.md, \"The TLS client "
	    "port\"):", "ADDR:PORT", "serve clients over TLS on ADDR:PORT "
	    "(repeatable;\nnumeric: 0.0.0.0:27586, [::]:27586); needs\n"
	    "--tls-cert and --tls-key" },
	[O_TLS_CERT] = { "tls-cert", T_STR, 0, NULL, 0, 0, NULL, NULL, NULL,
	    "FILE", "the server's certificate (PEM, chain allowed)" },
	[O_TLS_KEY] = { "tls-key", T_STR, 0, NULL, 0, 0, NULL, NULL, NULL,
	    "FILE", "its private key (PEM)" },
	[O_TLS_CLIENT_CA] = { "tls-client-ca", T_STR, 0, NULL, 0, 0, NULL,
	    NULL, NULL, "FILE", "require a client certificate issued by a CA "
	    "in\nFILE (PEM); its CN is the cert method's user" },
	[O_TLS_HS_TIMEOUT] = { "tls-handshake-timeout", T_SECONDS, 0, "10",
	    0.1, 3600, NULL, NULL, NULL, "SECONDS", "a TLS client that has not "
	    "finished its handshake\nafter this long is cut off (10)" },
	[O_LISTEN_INSECURE] = { "listen-insecure", T_LIST, 0, NULL, 0,
	    CONF_MAX_LISTEN, NULL, NULL, NULL, "ADDR:PORT", "plain TCP "
	    "without TLS (repeatable): FOR TESTS\nONLY, anyone on the path "
	    "reads and forges\neverything, logins included" },
	[O_LISTEN_ANON] = { "listen-allow-anonymous", T_BOOL, 0, "false", 0,
	    0, NULL, NULL, NULL, NULL, "TCP/TLS clients need no login while "
	    "no auth\nmethod is on (default: they are refused)" },
	[O_METRICS] = { "metrics", T_STR, 0, NULL, 0, 0, NULL, NULL, NULL,
	    "ADDR:PORT", "serve Prometheus metrics at "
	    "http://ADDR:PORT/metrics\n(numeric address; default: off; "
	    "docs/operations.md)" },

	[O_LOG_LEVEL] = { "log-level", T_ENUM, F_LIVE, "info", 0, 0,
	    level_words, NULL, "Logs and configuration (docs/operations.md):",
	    "LEVEL", "debug, info (default), warn, error" },
	[O_LOG_FORMAT] = { "log-format", T_ENUM, F_LIVE, "text", 0, 0,
	    format_words, NULL, NULL, "FORMAT", "text (default) or json: one "
	    "object per line" },
	[O_LOG_TARGET] = { "log-target", T_ENUM, 0, "stderr", 0, 0,
	    target_words, NULL, NULL, "TARGET", "stderr (default; or "
	    "--log-file), syslog, journal" },
	[O_LOG_FILE] = { "log-file", T_STR, 0, NULL, 0, 0, NULL, NULL, NULL,
	    "FILE", "diagnostics to FILE (appended) instead of stderr;\n"
	    "reopened on SIGHUP (for logrotate)" },
	[O_CONFIG] = { "config", T_STR, F_NOFILE, NULL, 0, 0, NULL, NULL, NULL,
	    "FILE", "options from this YAML file (default\n"
	    CONF_DEFAULT_PATH ", if it exists); flags\n"
	    "beat DISTKV_* variables, which beat the file" },
	[O_HELP] = { "help", T_ACTION, F_NOFILE, NULL, 0, 0, NULL, NULL, NULL,
	    NULL, "show this help and exit" },
	[O_VERSION] = { "version", T_ACTION, F_NOFILE, NULL, 0, 0, NULL, NULL,
	    NULL, NULL, "print the version and exit" },
};

/* Where a value came from: a later source replaces an earlier one. */
enum source { SRC_DEFAULT, SRC_FILE, SRC_ENV, SRC_ARGV };

struct conf_value {
	union {
		const char *s;
		bool b;
		unsigned long long u;
		double d;
		int e;
	} v;
	const char *items[CONF_MAX_JOIN + 1];	/* T_LIST, NULL-terminated */
	size_t n;
	enum source src;
	int line;			/* file line that set it, or 0 */
};

struct conf_argv {
	enum opt_id id;
	const char *arg;
};

static void
seterr(char *err, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
seterr(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
}

static const char *
check_node(const char *s)
{
	if (*s == '\0' || strlen(s) > PROTO_MAX_NODE_NAME ||
	    !proto_utf8_valid(s, strlen(s)))
		return "a node name is 1 to 128 bytes of UTF-8";
	return NULL;
}

static const char *
check_event_prefix(const char *s)
{
	if (*s == '\0' || strlen(s) > 64 || *s == ':')
		return "an event prefix is 1 to 64 bytes, not starting with ':'";
	return NULL;
}

/* A copy of s that c owns (freed by conf_free); NULL when out of memory. */
static const char *
own(struct conf *c, const char *s, size_t n)
{
	char *p;

	if (c->nowned == c->capowned) {
		size_t cap = c->capowned ? c->capowned * 2 : 32;
		char **o = realloc(c->owned, cap * sizeof(*o));

		if (o == NULL)
			return NULL;
		c->owned = o;
		c->capowned = cap;
	}
	if ((p = strndup(s, n)) == NULL)
		return NULL;
	c->owned[c->nowned++] = p;
	return p;
}

static bool
parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "true", "yes", "on", "1" };
	static const char *const no[] = { "false", "no", "off", "0" };

	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0)
			return *out = true, true;
		if (strcasecmp(s, no[i]) == 0)
			return *out = false, true;
	}
	return false;
}

/*
 * Parse s as the value of option id from source src and store it.  where
 * names the place for an error ("--x", "DISTKV_X", "FILE:LINE: x").
 * Strings are stored as given: the caller makes them live long enough.
 */
static int
opt_set(struct conf *c, enum opt_id id, const char *s, enum source src,
    const char *where, char *err, size_t len)
{
	const struct opt *o = &opts[id];
	struct conf_value *v = &c->val[id];
	const char *why;
	char *end;

	switch (o->type) {
	case T_STR:
		if (o->check != NULL && (why = o->check(s)) != NULL) {
			seterr(err, len, "%s: bad value '%.100s': %s", where, s,
			    why);
			return -1;
		}
		v->v.s = s;
		break;
	case T_BOOL:
		if (!parse_bool(s, &v->v.b)) {
			seterr(err, len, "%s: '%.100s' is not true or false",
			    where, s);
			return -1;
		}
		break;
	case T_UINT: {
		unsigned long long u;

		errno = 0;
		u = strtoull(s, &end, 10);
		if (*s < '0' || *s > '9' || *end != '\0' || errno != 0 ||
		    (double)u < o->lo || (double)u > o->hi) {
			seterr(err, len, "%s: '%.100s' is not a whole number "
			    "from %.0f to %.0f", where, s, o->lo, o->hi);
			return -1;
		}
		v->v.u = u;
		break;
	}
	case T_SECONDS: {
		double d = strtod(s, &end);

		if (*s == '\0' || *end != '\0' || !(d >= o->lo && d <= o->hi)) {
			seterr(err, len, "%s: '%.100s' is not a number of "
			    "seconds from %g to %g", where, s, o->lo, o->hi);
			return -1;
		}
		v->v.d = d;
		break;
	}
	case T_MODE: {
		long m = strtol(s, &end, 8);

		if (*s < '0' || *s > '7' || *end != '\0' || m < 0 ||
		    m > 0777) {
			seterr(err, len, "%s: '%.100s' is not an octal file "
			    "mode (e.g. 0660)", where, s);
			return -1;
		}
		v->v.u = (unsigned long long)m;
		break;
	}
	case T_ENUM: {
		int i;

		for (i = 0; o->words[i] != NULL; i++)
			if (strcmp(s, o->words[i]) == 0)
				break;
		if (o->words[i] == NULL) {
			char all[128] = "";

			for (int k = 0; o->words[k] != NULL; k++)
				snprintf(all + strlen(all), sizeof(all) -
				    strlen(all), "%s%s", k ? ", " : "",
				    o->words[k]);
			seterr(err, len, "%s: '%.100s' is not one of: %s",
			    where, s, all);
			return -1;
		}
		v->v.e = i;
		break;
	}
	case T_LIST:
		/* a list from a stronger source replaces the whole list */
		if (v->src != src)
			v->n = 0;
		if (v->n >= (size_t)o->hi) {
			seterr(err, len, "%s: at most %.0f values", where, o->hi);
			return -1;
		}
		if (*s == '\0') {
			seterr(err, len, "%s: an empty address", where);
			return -1;
		}
		v->items[v->n++] = s;
		v->items[v->n] = NULL;
		break;
	case T_ACTION:
		break;
	}
	v->src = src;
	/* --shm PATH after --no-shm (or a stronger source's) turns it on */
	if (id == O_SHM)
		c->val[O_NO_SHM].v.b = false;
	return 0;
}

/* ---- the config file ---- */

struct yreader {
	struct conf *c;
	const char *path;
	yaml_parser_t p;
	yaml_event_t ev;
	bool have_ev;
	char *err;
	size_t len;
	int seen[O_COUNT];	/* line of a key already given, or 0 */
};

static int
ynext(struct yreader *y)
{
	if (y->have_ev)
		yaml_event_delete(&y->ev);
	y->have_ev = false;
	if (!yaml_parser_parse(&y->p, &y->ev)) {
		seterr(y->err, y->len, "%s:%zu: not valid YAML: %s", y->path,
		    y->p.problem_mark.line + 1, y->p.problem != NULL ?
		    y->p.problem : "unreadable");
		return -1;
	}
	y->have_ev = true;
	return 0;
}

static size_t
yline(const struct yreader *y)
{
	return y->ev.start_mark.line + 1;
}

/* A plain scalar that YAML reads as null: "key:" with nothing after it. */
static bool
yscalar_null(const yaml_event_t *ev)
{
	const char *s = (const char *)ev->data.scalar.value;

	return ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
	    (*s == '\0' || strcmp(s, "~") == 0 || strcasecmp(s, "null") == 0);
}

static int
yscalar_value(struct yreader *y, enum opt_id id)
{
	char where[PATH_MAX + 100];
	const char *s;

	snprintf(where, sizeof(where), "%s:%zu: %s", y->path, yline(y),
	    opts[id].name);
	if (yscalar_null(&y->ev)) {
		seterr(y->err, y->len, "%s: no value", where);
		return -1;
	}
	if ((s = own(y->c, (const char *)y->ev.data.scalar.value,
	    y->ev.data.scalar.length)) == NULL) {
		seterr(y->err, y->len, "out of memory");
		return -1;
	}
	if (strlen(s) != y->ev.data.scalar.length) {
		seterr(y->err, y->len, "%s: a value with a NUL byte", where);
		return -1;
	}
	return opt_set(y->c, id, s, SRC_FILE, where, y->err, y->len);
}

/* One "key: value" of the top mapping; the key's event is current. */
static int
yentry(struct yreader *y)
{
	const char *key;
	size_t kline = yline(y);
	int id;

	if (y->ev.type != YAML_SCALAR_EVENT) {
		seterr(y->err, y->len, "%s:%zu: a key must be an option name",
		    y->path, kline);
		return -1;
	}
	key = (const char *)y->ev.data.scalar.value;
	for (id = 0; id < O_COUNT; id++)
		if ((opts[id].flags & F_NOFILE) == 0 &&
		    strcmp(key, opts[id].name) == 0)
			break;
	if (id == O_COUNT) {
		seterr(y->err, y->len, "%s:%zu: unknown key '%.100s' (the keys "
		    "are the long options of distkv-agent --help, without "
		    "the dashes)", y->path, kline, key);
		return -1;
	}
	if (y->seen[id] != 0) {
		seterr(y->err, y->len, "%s:%zu: %s: given twice (first on line "
		    "%d)", y->path, kline, opts[id].name, y->seen[id]);
		return -1;
	}
	y->seen[id] = (int)kline;
	y->c->val[id].line = (int)kline;
	if (ynext(y) != 0)
		return -1;
	switch (y->ev.type) {
	case YAML_SCALAR_EVENT:
		return yscalar_value(y, (enum opt_id)id);
	case YAML_SEQUENCE_START_EVENT:
		if (opts[id].type != T_LIST) {
			seterr(y->err, y->len, "%s:%zu: %s: a list, but it "
			    "takes one value", y->path, yline(y), opts[id].name);
			return -1;
		}
		for (;;) {
			if (ynext(y) != 0)
				return -1;
			if (y->ev.type == YAML_SEQUENCE_END_EVENT)
				return 0;
			if (y->ev.type != YAML_SCALAR_EVENT) {
				seterr(y->err, y->len, "%s:%zu: %s: the items "
				    "of the list must be plain values", y->path,
				    yline(y), opts[id].name);
				return -1;
			}
			if (yscalar_value(y, (enum opt_id)id) != 0)
				return -1;
		}
	case YAML_MAPPING_START_EVENT:
		seterr(y->err, y->len, "%s:%zu: %s: a mapping, but it takes %s",
		    y->path, yline(y), opts[id].name, opts[id].type == T_LIST ?
		    "a value or a list of values" : "one value");
		return -1;
	default:
		seterr(y->err, y->len, "%s:%zu: %s: anchors and aliases are "
		    "not supported", y->path, yline(y), opts[id].name);
		return -1;
	}
}

static int
read_file(struct conf *c, const char *path, bool must_exist, char *err,
    size_t len)
{
	struct yreader y = { .c = c, .path = path, .err = err, .len = len };
	struct stat st;
	FILE *f;
	int rc = -1;

	if ((f = fopen(path, "r")) == NULL) {
		if (errno == ENOENT && !must_exist)
			return 0;
		seterr(err, len, "cannot read the config file %s: %s", path,
		    strerror(errno));
		return -1;
	}
	if (fstat(fileno(f), &st) != 0 || S_ISDIR(st.st_mode)) {
		seterr(err, len, "cannot read the config file %s: %s", path,
		    strerror(S_ISDIR(st.st_mode) ? EISDIR : errno));
		fclose(f);
		return -1;
	}
	/* every option set, commented at length, is a few KB */
	if (S_ISREG(st.st_mode) && st.st_size > CONF_MAX_FILE) {
		seterr(err, len, "the config file %s is larger than %d bytes",
		    path, CONF_MAX_FILE);
		fclose(f);
		return -1;
	}
	if (!yaml_parser_initialize(&y.p)) {
		seterr(err, len, "out of memory");
		fclose(f);
		return -1;
	}
	yaml_parser_set_input_file(&y.p, f);
	if (ynext(&y) != 0 || ynext(&y) != 0)	/* stream start, then */
		goto out;
	if (y.ev.type == YAML_STREAM_END_EVENT) {	/* an empty file */
		rc = 0;
		goto out;
	}
	if (ynext(&y) != 0)			/* inside the document */
		goto out;
	if (y.ev.type == YAML_SCALAR_EVENT && yscalar_null(&y.ev)) {
		/* only comments, or "---" alone */
	} else if (y.ev.type != YAML_MAPPING_START_EVENT) {
		seterr(err, len, "%s:%zu: the file must be a mapping of "
		    "option: value", path, yline(&y));
		goto out;
	} else {
		for (;;) {
			if (ynext(&y) != 0)
				goto out;
			if (y.ev.type == YAML_MAPPING_END_EVENT)
				break;
			if (yentry(&y) != 0)
				goto out;
		}
	}
	if (ynext(&y) != 0 || ynext(&y) != 0)	/* document end, then */
		goto out;
	if (y.ev.type != YAML_STREAM_END_EVENT) {
		seterr(err, len, "%s:%zu: a second document: the file holds one",
		    path, yline(&y));
		goto out;
	}
	rc = 0;
out:
	if (y.have_ev)
		yaml_event_delete(&y.ev);
	yaml_parser_delete(&y.p);
	fclose(f);
	return rc;
}

/* ---- environment and command line ---- */

static void
env_name(enum opt_id id, char *buf, size_t len)
{
	size_t n = (size_t)snprintf(buf, len, "DISTKV_%s", opts[id].name);

	for (size_t i = 7; i < n && i < len; i++)
		buf[i] = buf[i] == '-' ? '_' : (char)(buf[i] & ~0x20);
}

/* DISTKV_NAME for every option; an empty variable counts as unset.  A
 * list is comma-separated. */
static int
read_env(struct conf *c, char *err, size_t len)
{
	char name[64];
	const char *s;

	for (int id = 0; id < O_COUNT; id++) {
		if (opts[id].type == T_ACTION)
			continue;
		env_name((enum opt_id)id, name, sizeof(name));
		if ((s = getenv(name)) == NULL || *s == '\0')
			continue;
		if (opts[id].type != T_LIST) {
			if (opt_set(c, (enum opt_id)id, s, SRC_ENV, name, err,
			    len) != 0)
				return -1;
			continue;
		}
		for (const char *p = s;;) {
			size_t n = strcspn(p, ",");
			const char *item;

			while (n > 0 && *p == ' ')
				p++, n--;
			while (n > 0 && p[n - 1] == ' ')
				n--;
			if ((item = own(c, p, n)) == NULL) {
				seterr(err, len, "out of memory");
				return -1;
			}
			if (opt_set(c, (enum opt_id)id, item, SRC_ENV, name,
			    err, len) != 0)
				return -1;
			p += strcspn(p, ",");
			if (*p++ == '\0')
				break;
		}
	}
	return 0;
}

static void
usage(FILE *f)
{
	fputs("Usage: distkv-agent [OPTIONS]\n\n"
	    "Run the DistKV-C agent: hold the whole key-value tree in memory "
	    "and serve\nlocal clients (libdistkv, distkv-cli) on a Unix "
	    "socket.\n\nOptions (each also DISTKV_NAME in the environment and "
	    "name: in the\nconfig file; see docs/operations.md, "
	    "\"Configuration\"):\n", f);
	for (int id = 0; id < O_COUNT; id++) {
		const struct opt *o = &opts[id];
		char left[64];
		int n;

		if (o->section != NULL)
			fprintf(f, "\n%s\n", o->section);
		n = snprintf(left, sizeof(left), "  %s--%s%s%s",
		    id == O_HELP ? "-h, " : "", o->name, o->arg ? " " : "",
		    o->arg ? o->arg : "");
		if (n > 21)
			fprintf(f, "%s\n%23s", left, "");
		else
			fprintf(f, "%-23s", left);
		for (const char *p = o->help; *p != '\0';) {
			size_t k = strcspn(p, "\n");

			fprintf(f, "%.*s\n", (int)k, p);
			p += k;
			if (*p == '\n' && *++p != '\0')
				fprintf(f, "%23s", "");
		}
	}
	fputs("\nSee docs/operations.md.\n", f);
}

/*
 * The command line, without applying it: --help, --version and the
 * file to read come first, and reloads apply it again.  0, 1 (help or
 * version done), -1 (err).
 */
static int
read_argv(struct conf *c, int argc, char **argv, char *err, size_t len)
{
	struct option lo[O_COUNT + 1];
	int ch, idx;

	memset(lo, 0, sizeof(lo));
	for (int id = 0; id < O_COUNT; id++) {
		lo[id].name = opts[id].name;
		lo[id].has_arg = opts[id].type == T_BOOL ||
		    opts[id].type == T_ACTION ? no_argument : required_argument;
		lo[id].val = 256 + id;
	}
	if ((c->argv = calloc((size_t)argc + 1, sizeof(*c->argv))) == NULL) {
		seterr(err, len, "out of memory");
		return -1;
	}
	optind = 1;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":h", lo, &idx)) != -1) {
		if (ch == 'h' || ch == 256 + O_HELP) {
			usage(stdout);
			return 1;
		}
		if (ch == 256 + O_VERSION) {
			printf("distkv-agent %s\n", distkv_version());
			return 1;
		}
		if (ch == ':') {
			seterr(err, len, "option '%s' needs a value",
			    argv[optind - 1]);
			return -1;
		}
		if (ch < 256 || ch >= 256 + O_COUNT) {
			seterr(err, len, "unknown option '%s'",
			    argv[optind - 1]);
			return -1;
		}
		c->argv[c->nargv].id = (enum opt_id)(ch - 256);
		c->argv[c->nargv++].arg = optarg != NULL ? optarg : "true";
	}
	if (optind < argc) {
		seterr(err, len, "unexpected argument '%s'", argv[optind]);
		return -1;
	}
	return 0;
}

/* ---- putting it together ---- */

/*
 * The cluster secret: the file's whole content, hashed to a 32-byte key
 * (so any length and format of secret works; trailing newlines count).
 */
static int
read_cluster_key(const char *path, struct agent_config *cfg, char *err,
    size_t len)
{
	unsigned char buf[4096];
	size_t n;
	FILE *f = fopen(path, "rb");

	if (f == NULL) {
		seterr(err, len, "cannot read --cluster-key %s: %s", path,
		    strerror(errno));
		return -1;
	}
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	if (n < 16) {
		seterr(err, len, "--cluster-key %s: use a secret of at least "
		    "16 bytes", path);
		return -1;
	}
	crypto_generichash(cfg->cluster_key, sizeof(cfg->cluster_key), buf, n,
	    NULL, 0);
	sodium_memzero(buf, sizeof(buf));
	cfg->has_cluster_key = true;
	return 0;
}

#define S(id) (c->val[id].v.s)
#define B(id) (c->val[id].v.b)
#define U(id) (c->val[id].v.u)
#define D(id) (c->val[id].v.d)
#define E(id) (c->val[id].v.e)

/* The typed structs from the values, derived defaults, cross checks. */
static int
finish(struct conf *c, char *err, size_t len)
{
	struct agent_config *a = &c->agent;
	const char *shm;

	memset(a, 0, sizeof(*a));
	a->socket_path = S(O_SOCKET);
	a->socket_mode = (mode_t)U(O_SOCKET_MODE);
	a->node = S(O_NODE) != NULL ? S(O_NODE) : c->hostname;
	a->standalone = B(O_STANDALONE);
	a->init_json = S(O_INIT);
	a->load_file = S(O_LOAD);
	a->state_dir = S(O_STATE_DIR);
	a->file_dir = S(O_FILE_DIR);
	a->fsync = E(O_FSYNC) == 0 ? FSYNC_ALWAYS : E(O_FSYNC) == 1 ?
	    FSYNC_BATCH : FSYNC_NONE;
	a->max_request = (size_t)U(O_MAX_REQUEST);
	a->max_output = (size_t)U(O_MAX_OUTPUT);
	a->change_length = (unsigned)U(O_CHANGE_LENGTH);
	a->snapshot_every = (unsigned)U(O_SNAPSHOT_EVERY);
	a->shm_mode = (mode_t)U(O_SHM_MODE);
	a->serf_addr = S(O_SERF);
	a->serf_auth = S(O_SERF_AUTH);
	a->serf_rpc = S(O_SERF_RPC);
	a->serf_bin = S(O_SERF_BIN);
	a->bind = S(O_BIND);
	a->join = c->val[O_JOIN].items;
	a->peer_bind = S(O_PEER_BIND);
	a->run_dir = S(O_RUN_DIR);
	a->event_prefix = S(O_EVENT_PREFIX);
	a->clock = D(O_CLOCK);
	a->ping_length = (unsigned)U(O_PING_LENGTH);
	a->tombstone_keep = (double)U(O_TOMBSTONE_KEEP);
	a->join_timeout = (double)U(O_JOIN_TIMEOUT);
	a->no_login = B(O_NO_LOGIN);
	a->acl_default_deny = B(O_ACL_DEFAULT_DENY);
	a->listen_allow_anonymous = B(O_LISTEN_ANON);
	a->metrics_addr = S(O_METRICS);
	a->stream_idle = (double)U(O_STREAM_TIMEOUT);

	c->listen.tls = c->val[O_LISTEN].items;
	c->listen.ntls = c->val[O_LISTEN].n;
	c->listen.plain = c->val[O_LISTEN_INSECURE].items;
	c->listen.nplain = c->val[O_LISTEN_INSECURE].n;
	c->listen.cert = S(O_TLS_CERT);
	c->listen.key = S(O_TLS_KEY);
	c->listen.client_ca = S(O_TLS_CLIENT_CA);
	c->listen.handshake_timeout = D(O_TLS_HS_TIMEOUT);

	c->log.level = (enum log_level)E(O_LOG_LEVEL);
	c->log.format = (enum log_format)E(O_LOG_FORMAT);
	c->log.target = (enum log_target)E(O_LOG_TARGET);
	c->log.file = S(O_LOG_FILE);
	if (c->log.file != NULL && c->log.target != LOG_TARGET_STDERR) {
		seterr(err, len, "log-file and log-target %s exclude each "
		    "other (a log file replaces stderr)",
		    target_words[c->log.target]);
		return -1;
	}

	if (S(O_CLUSTER_KEY) != NULL &&
	    read_cluster_key(S(O_CLUSTER_KEY), a, err, len) != 0)
		return -1;
	/*
	 * Without a key, whoever reaches the peer port or the gossip can
	 * read and rewrite the whole tree: never by accident.
	 */
	if (!a->standalone && !a->has_cluster_key && !B(O_NO_KEY)) {
		seterr(err, len, "a cluster node needs --cluster-key FILE (a "
		    "shared secret of at least 16 bytes): without it anyone "
		    "who reaches the peer port or the gossip owns the tree; "
		    "--insecure-no-cluster-key runs without one, for tests "
		    "only");
		return -1;
	}
	if (a->has_cluster_key && B(O_NO_KEY)) {
		seterr(err, len, "--cluster-key and --insecure-no-cluster-key "
		    "exclude each other");
		return -1;
	}
	if (a->peer_bind == NULL) {
		/* the gossip address's host, the default peer port */
		const char *colon = strrchr(a->bind, ':');
		int hl = colon != NULL ? (int)(colon - a->bind) :
		    (int)strlen(a->bind);

		snprintf(c->peer_default, sizeof(c->peer_default),
		    "%.*s:27589", hl, a->bind);
		a->peer_bind = c->peer_default;
	}
	/* a subdirectory: save/log files never sit beside the state's own */
	if (a->file_dir == NULL && a->state_dir != NULL) {
		snprintf(c->file_dir_default, sizeof(c->file_dir_default),
		    "%s/files", a->state_dir);
		a->file_dir = c->file_dir_default;
	}
	shm = S(O_SHM);
	if (B(O_NO_SHM))
		a->shm_path = NULL;
	else if (shm != NULL)
		a->shm_path = shm;
	else {
		/* /dev/shm/distkv-NODE, with '/' in the name made harmless */
		size_t n = (size_t)snprintf(c->shm_default,
		    sizeof(c->shm_default), "/dev/shm/distkv-%s", a->node);

		for (size_t i = strlen("/dev/shm/distkv-"); i < n &&
		    i < sizeof(c->shm_default); i++)
			if (c->shm_default[i] == '/')
				c->shm_default[i] = '_';
		a->shm_path = c->shm_default;
	}
	return 0;
}

static int
conf_init(struct conf *c, char *err, size_t len)
{
	char where[80];

	memset(c, 0, sizeof(*c));
	if ((c->val = calloc(O_COUNT, sizeof(*c->val))) == NULL) {
		seterr(err, len, "out of memory");
		return -1;
	}
	for (int id = 0; id < O_COUNT; id++) {
		if (opts[id].def == NULL)
			continue;
		snprintf(where, sizeof(where), "default of %s", opts[id].name);
		if (opt_set(c, (enum opt_id)id, opts[id].def, SRC_DEFAULT,
		    where, err, len) != 0)
			return -1;		/* a bug in the table */
	}
	if (gethostname(c->hostname, sizeof(c->hostname) - 1) != 0 ||
	    check_node(c->hostname) != NULL)
		snprintf(c->hostname, sizeof(c->hostname), "localhost");
	return 0;
}

/* File, environment, then the saved command line on top. */
static int
load_sources(struct conf *c, char *err, size_t len)
{
	const char *path = CONF_DEFAULT_PATH, *env;
	bool must = false;
	char where[80];

	if ((env = getenv("DISTKV_CONFIG")) != NULL && *env != '\0')
		path = env, must = true;
	for (size_t i = 0; i < c->nargv; i++)
		if (c->argv[i].id == O_CONFIG)
			path = c->argv[i].arg, must = true;
	if (read_file(c, path, must, err, len) != 0)
		return -1;
	if (access(path, F_OK) == 0)
		c->path = path;
	if (read_env(c, err, len) != 0)
		return -1;
	for (size_t i = 0; i < c->nargv; i++) {
		snprintf(where, sizeof(where), "--%s",
		    opts[c->argv[i].id].name);
		if (opt_set(c, c->argv[i].id, c->argv[i].arg, SRC_ARGV, where,
		    err, len) != 0)
			return -1;
	}
	return finish(c, err, len);
}

int
conf_load(struct conf *c, int argc, char **argv, char *err,
    size_t errlen)
{
	int rc;

	if (conf_init(c, err, errlen) != 0)
		return -1;
	if ((rc = read_argv(c, argc, argv, err, errlen)) != 0)
		return rc;
	return load_sources(c, err, errlen);
}

int
conf_reload(const struct conf *cur, struct conf *next, char *err,
    size_t errlen)
{
	if (conf_init(next, err, errlen) != 0)
		goto fail;
	if ((next->argv = calloc(cur->nargv + 1, sizeof(*next->argv))) == NULL) {
		seterr(err, errlen, "out of memory");
		goto fail;
	}
	memcpy(next->argv, cur->argv, cur->nargv * sizeof(*next->argv));
	next->nargv = cur->nargv;
	if (load_sources(next, err, errlen) != 0)
		goto fail;
	return 0;
fail:
	conf_free(next);
	return -1;
}

static bool
same_str(const char *a, const char *b)
{
	return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

void
conf_diff(const struct conf *a, const struct conf *b,
    void (*fn)(void *, const char *, bool, const char *), void *arg)
{
	for (int id = 0; id < O_COUNT; id++) {
		const struct conf_value *x = &a->val[id], *y = &b->val[id];
		bool same = true;
		char text[64] = "";

		switch (opts[id].type) {
		case T_STR:
			same = same_str(x->v.s, y->v.s);
			break;
		case T_BOOL:
			same = x->v.b == y->v.b;
			snprintf(text, sizeof(text), "%s",
			    y->v.b ? "true" : "false");
			break;
		case T_UINT:
			same = x->v.u == y->v.u;
			snprintf(text, sizeof(text), "%llu", y->v.u);
			break;
		case T_MODE:
			same = x->v.u == y->v.u;
			snprintf(text, sizeof(text), "%04llo", y->v.u);
			break;
		case T_SECONDS:
			same = x->v.d == y->v.d;
			snprintf(text, sizeof(text), "%g", y->v.d);
			break;
		case T_ENUM:
			same = x->v.e == y->v.e;
			snprintf(text, sizeof(text), "%s",
			    opts[id].words[y->v.e]);
			break;
		case T_LIST:
			same = x->n == y->n;
			for (size_t i = 0; same && i < x->n; i++)
				same = strcmp(x->items[i], y->items[i]) == 0;
			break;
		case T_ACTION:
			break;
		}
		/* a live change shows its new value; others may be secrets */
		if (!same)
			fn(arg, opts[id].name, (opts[id].flags & F_LIVE) != 0,
			    (opts[id].flags & F_LIVE) != 0 ? text : NULL);
	}
}

void
conf_apply_live(struct conf *cur, const struct conf *next,
    struct agent_config *cfg)
{
	for (int id = 0; id < O_COUNT; id++)
		if (opts[id].flags & F_LIVE)
			cur->val[id].v = next->val[id].v;
	cur->log.level = next->log.level;
	cur->log.format = next->log.format;
	cur->agent.max_request = cfg->max_request = next->agent.max_request;
	cur->agent.max_output = cfg->max_output = next->agent.max_output;
	cur->agent.stream_idle = cfg->stream_idle = next->agent.stream_idle;
	cur->agent.snapshot_every = cfg->snapshot_every =
	    next->agent.snapshot_every;
	cur->agent.acl_default_deny = cfg->acl_default_deny =
	    next->agent.acl_default_deny;
}

void
conf_free(struct conf *c)
{
	for (size_t i = 0; i < c->nowned; i++)
		free(c->owned[i]);
	free(c->owned);
	free(c->argv);
	free(c->val);
	sodium_memzero(c->agent.cluster_key, sizeof(c->agent.cluster_key));
	c->owned = NULL;
	c->argv = NULL;
	c->val = NULL;
	c->nowned = c->capowned = c->nargv = 0;
}
