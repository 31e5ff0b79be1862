/* distkv-agent: command line, start-up and shutdown.  The only globals of
 * the agent live here. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ev.h>
#include <msgpack.h>

#include "agent.h"
#include "distkv.h"
#include "log.h"
#include "mpjson.h"
#include "persist.h"
#include "proto.h"
#include "server.h"
#include "sync.h"
#include "transport.h"
#include "writer.h"

#include <sodium.h>

#define DEFAULT_SOCKET "/run/distkv/distkv.sock"

static const char usage_text[] =
"Usage: distkv-agent [OPTIONS]\n"
"\n"
"Run the DistKV-C agent: hold the whole key-value tree in memory and serve\n"
"local clients (libdistkv, distkv-cli) on a Unix socket.\n"
"\n"
"Options:\n"
"  --socket PATH        client socket (default " DEFAULT_SOCKET ",\n"
"                       or $DISTKV_SOCKET)\n"
"  --socket-mode MODE   permissions of the socket file, octal (default 0660)\n"
"  --node NAME          this node's name (default: the host name)\n"
"  --standalone         run without Serf: a single node, ready at once\n"
"\n"
"Cluster (without --standalone; docs/cluster.md):\n"
"  --bind ADDR:PORT     gossip address of the embedded serf agent\n"
"                       (default 127.0.0.1:7946)\n"
"  --serf-rpc ADDR:PORT RPC address of the embedded serf agent\n"
"                       (default 127.0.0.1:7373)\n"
"  --join ADDR:PORT     another node's gossip address (repeatable)\n"
"  --serf ADDR:PORT     use a running serf agent's RPC instead of starting\n"
"                       one; --serf-auth KEY if it has rpc_auth set\n"
"  --peer-bind ADDR:PORT peer port for downloads and catch-up (default:\n"
"                       the --bind address, port 27589)\n"
"  --cluster-key FILE   shared secret peers must prove (HMAC challenge) and\n"
"                       gossip encryption; required in a cluster\n"
"  --insecure-no-cluster-key  run a cluster node without a key: anyone\n"
"                       who reaches its ports owns the tree (tests only)\n"
"  --event-prefix NAME  Serf event names NAME.update, NAME.info (default\n"
"                       distkv)\n"
"  --clock SECONDS      the ping clock: info messages, catch-up, pings\n"
"                       (default 1)\n"
"  --ping-length N      links of a ping chain (default 4)\n"
"  --join-timeout SECONDS  a node without data that has joined nobody\n"
"                       after this long stops with an error (default 120;\n"
"                       0: wait forever); after 10 s alone it says why\n"
"  --tombstone-keep SECONDS  keep deleted entries' chains at least this long\n"
"                       before they may be purged, once every node has\n"
"                       seen the delete (default 300; 0: as soon as safe)\n"
"  --run-dir DIR        files of the embedded serf agent (default: the\n"
"                       state dir, else a temp dir)\n"
"  --serf-bin PATH      the serf program (default: serf in PATH)\n"
"\n"
"  --init VALUE         set the root entry to VALUE when the agent has no\n"
"                       data yet; VALUE is JSON (e.g. 123, '\"x\"',\n"
"                       '{\"a\":1}'), or else a string\n"
"  --load FILE          load a snapshot or log file before serving (refused\n"
"                       when the state dir already holds this node's data)\n"
"  --state-dir DIR      keep a change log and snapshots in DIR and restore\n"
"                       them at start\n"
"  --fsync POLICY       change log durability: always (default: fsync before\n"
"                       the reply), batch (once a second), none\n"
"  --snapshot-every N   snapshot the state dir after N changes (default 10000)\n"
"  --file-dir DIR       directory for the files of the save and log actions\n"
"                       (default: the state dir)\n"
"  --max-request BYTES  largest request accepted (default 4194304)\n"
"  --max-output BYTES   output queued to one client before its watches are\n"
"                       dropped and its reading paused (default 16777216)\n"
"  --change-length N    chain links stored and sent (default 5, max 16)\n"
"  --shm PATH           shared-memory region for local readers (default\n"
"                       /dev/shm/distkv-NODE)\n"
"  --shm-mode MODE      permissions of the region file, octal (default 0640:\n"
"                       readable by the agent's group)\n"
"  --no-shm             no shared-memory region\n"
"  --stream-timeout SECONDS  a client-streamed request (update, the _test\n"
"                       dialogs) with no input for this long is ended (60)\n"
"  --no-login           recovery: no connection on the Unix socket must log\n"
"                       in, whatever auth method is on (docs/operations.md,\n"
"                       Logins); TCP and TLS clients still must\n"
"  --acl-default-deny   a user bound to an ACL is refused where no entry of\n"
"                       the ACL matches (default: allowed, as the\n"
"                       reference does; docs/operations.md, ACLs)\n"
"\n"
"Remote clients (docs/operations.md, \"The TLS client port\"):\n"
"  --listen ADDR:PORT   serve clients over TLS on ADDR:PORT (repeatable;\n"
"                       numeric: 0.0.0.0:27586, [::]:27586); needs\n"
"                       --tls-cert and --tls-key\n"
"  --tls-cert FILE      the server's certificate (PEM, chain allowed)\n"
"  --tls-key FILE       its private key (PEM)\n"
"  --tls-client-ca FILE require a client certificate issued by a CA in\n"
"                       FILE (PEM); its CN is the cert method's user\n"
"  --tls-handshake-timeout SECONDS  a TLS client that has not finished\n"
"                       its handshake after this long is cut off (10)\n"
"  --listen-insecure ADDR:PORT  plain TCP without TLS (repeatable): FOR\n"
"                       TESTS ONLY, anyone on the path reads and forges\n"
"                       everything, logins included\n"
"  --listen-allow-anonymous  TCP/TLS clients need no login while no auth\n"
"                       method is on (default: they are refused)\n"
"  --metrics ADDR:PORT  serve Prometheus metrics at http://ADDR:PORT/metrics\n"
"                       (numeric address; default: off; docs/operations.md)\n"
"  --log-level LEVEL    debug, info (default), warn, error\n"
"  --log-file FILE      diagnostics to FILE (appended) instead of stderr;\n"
"                       reopened on SIGHUP (for logrotate)\n"
"  -h, --help           show this help and exit\n"
"  --version            print the version and exit\n"
"\n"

"See docs/operations.md.\n";

enum {
	OPT_SOCKET = 256, OPT_SOCKET_MODE, OPT_NODE, OPT_STANDALONE, OPT_INIT,
	OPT_LOAD, OPT_STATE_DIR, OPT_FSYNC, OPT_SNAPSHOT_EVERY, OPT_FILE_DIR,
	OPT_MAX_REQUEST, OPT_MAX_OUTPUT, OPT_CHANGE_LENGTH, OPT_LOG_LEVEL,
	OPT_LOG_FILE,
	OPT_SHM, OPT_SHM_MODE, OPT_NO_SHM, OPT_BIND, OPT_SERF_RPC, OPT_JOIN,
	OPT_SERF, OPT_SERF_AUTH, OPT_PEER_BIND, OPT_CLUSTER_KEY, OPT_NO_KEY,
	OPT_EVENT_PREFIX, OPT_CLOCK, OPT_RUN_DIR, OPT_SERF_BIN, OPT_PING_LENGTH,
	OPT_TOMBSTONE_KEEP, OPT_JOIN_TIMEOUT, OPT_NO_LOGIN, OPT_ACL_DEFAULT_DENY, OPT_STREAM_TIMEOUT,
	OPT_LISTEN, OPT_LISTEN_INSECURE, OPT_TLS_CERT, OPT_TLS_KEY,
	OPT_TLS_CLIENT_CA, OPT_TLS_HS_TIMEOUT, OPT_LISTEN_ANON,
	OPT_METRICS,
};

static const struct option long_opts[] = {
	{ "socket", required_argument, NULL, OPT_SOCKET },
	{ "socket-mode", required_argument, NULL, OPT_SOCKET_MODE },
	{ "node", required_argument, NULL, OPT_NODE },
	{ "standalone", no_argument, NULL, OPT_STANDALONE },
	{ "init", required_argument, NULL, OPT_INIT },
	{ "load", required_argument, NULL, OPT_LOAD },
	{ "state-dir", required_argument, NULL, OPT_STATE_DIR },
	{ "fsync", required_argument, NULL, OPT_FSYNC },
	{ "snapshot-every", required_argument, NULL, OPT_SNAPSHOT_EVERY },
	{ "file-dir", required_argument, NULL, OPT_FILE_DIR },
	{ "max-request", required_argument, NULL, OPT_MAX_REQUEST },
	{ "max-output", required_argument, NULL, OPT_MAX_OUTPUT },
	{ "change-length", required_argument, NULL, OPT_CHANGE_LENGTH },
	{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
	{ "log-file", required_argument, NULL, OPT_LOG_FILE },
	{ "shm", required_argument, NULL, OPT_SHM },
	{ "shm-mode", required_argument, NULL, OPT_SHM_MODE },
	{ "no-shm", no_argument, NULL, OPT_NO_SHM },
	{ "bind", required_argument, NULL, OPT_BIND },
	{ "serf-rpc", required_argument, NULL, OPT_SERF_RPC },
	{ "join", required_argument, NULL, OPT_JOIN },
	{ "serf", required_argument, NULL, OPT_SERF },
	{ "serf-auth", required_argument, NULL, OPT_SERF_AUTH },
	{ "peer-bind", required_argument, NULL, OPT_PEER_BIND },
	{ "cluster-key", required_argument, NULL, OPT_CLUSTER_KEY },
	{ "insecure-no-cluster-key", no_argument, NULL, OPT_NO_KEY },
	{ "event-prefix", required_argument, NULL, OPT_EVENT_PREFIX },
	{ "clock", required_argument, NULL, OPT_CLOCK },
	{ "run-dir", required_argument, NULL, OPT_RUN_DIR },
	{ "serf-bin", required_argument, NULL, OPT_SERF_BIN },
	{ "ping-length", required_argument, NULL, OPT_PING_LENGTH },
	{ "tombstone-keep", required_argument, NULL, OPT_TOMBSTONE_KEEP },
	{ "join-timeout", required_argument, NULL, OPT_JOIN_TIMEOUT },
	{ "no-login", no_argument, NULL, OPT_NO_LOGIN },
	{ "acl-default-deny", no_argument, NULL, OPT_ACL_DEFAULT_DENY },
	{ "stream-timeout", required_argument, NULL, OPT_STREAM_TIMEOUT },
	{ "listen", required_argument, NULL, OPT_LISTEN },
	{ "listen-insecure", required_argument, NULL, OPT_LISTEN_INSECURE },
	{ "tls-cert", required_argument, NULL, OPT_TLS_CERT },
	{ "tls-key", required_argument, NULL, OPT_TLS_KEY },
	{ "tls-client-ca", required_argument, NULL, OPT_TLS_CLIENT_CA },
	{ "tls-handshake-timeout", required_argument, NULL,
	    OPT_TLS_HS_TIMEOUT },
	{ "listen-allow-anonymous", no_argument, NULL, OPT_LISTEN_ANON },
	{ "metrics", required_argument, NULL, OPT_METRICS },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

static struct agent the_agent;
static char hostname[256];
static const char *joins[33];
static char peer_default[300];
static const char *log_file;	/* --log-file, reopened on SIGHUP */
static char file_dir_default[PATH_MAX];
static char shm_default[300];

/* The TCP client ports (--listen, --listen-insecure) and their TLS. */
#define MAX_LISTEN 16
static struct {
	const char *tls[MAX_LISTEN], *plain[MAX_LISTEN];
	size_t ntls, nplain;
	const char *cert, *key, *client_ca;
	double handshake_timeout;
} listen_cfg = { .handshake_timeout = 10.0 };

static void
usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "distkv-agent: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nTry 'distkv-agent --help'.\n");
	exit(2);
}

static unsigned long long
parse_number(const char *s, const char *what, unsigned long long lo,
    unsigned long long hi)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < lo ||
	    v > hi)
		usage_error("bad number for %s", what);
	return v;
}

/*
 * --init's value: JSON in distkv-cli's mapping (mpjson, docs/cli.md
 * "Values") if it parses, else the string itself.
 */
static void
pack_init_value(msgpack_packer *pk, const char *s)
{
	char err[128];
	int rc;

	if ((rc = mpjson_parse(pk, s, err, sizeof(err))) == -ENOMEM)
		fatal("out of memory");
	if (rc != 0)
		msgpack_pack_str_with_body(pk, s, strlen(s));
}

/*
 * SIGHUP: reopen the log file (logrotate) and say so; a signal that used
 * to kill the agent (and leave its socket behind) is now a no-op without
 * --log-file.
 */
static void
sighup_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	const char *path = w->data;
	int rc;

	(void)loop;
	(void)revents;
	if (path == NULL) {
		log_info("SIGHUP: nothing to reload (no --log-file)");
		return;
	}
	if ((rc = log_open_file(path)) != 0)
		log_warn("SIGHUP: cannot reopen the log file %s: %s (still "
		    "logging to the old one)", path, strerror(-rc));
	else
		log_info("SIGHUP: reopened the log file %s", path);
}

static void
signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)revents;
	log_info("signal %d: shutting down", w->signum);
	ev_break(loop, EVBREAK_ALL);
}

static mode_t
parse_mode(const char *s, const char *what)
{
	char *end;
	long m = strtol(s, &end, 8);

	if (*s == '\0' || *end != '\0' || m < 0 || m > 0777)
		usage_error("bad mode for %s (octal, e.g. 0660)", what);
	return (mode_t)m;
}

/* /dev/shm/distkv-NODE, with '/' in the node name made harmless. */
static const char *
default_shm_path(const char *node)
{
	size_t n = (size_t)snprintf(shm_default, sizeof(shm_default),
	    "/dev/shm/distkv-%s", node);

	for (size_t i = strlen("/dev/shm/distkv-"); i < n &&
	    i < sizeof(shm_default); i++)
		if (shm_default[i] == '/')
			shm_default[i] = '_';
	return shm_default;
}

/*
 * The cluster secret: the file's whole content, hashed to a 32-byte key
 * (so any length and format of secret works; trailing newlines count).
 */
static void
read_cluster_key(const char *path, struct agent_config *cfg)
{
	unsigned char buf[4096];
	size_t n;
	FILE *f = fopen(path, "rb");

	if (f == NULL)
		usage_error("cannot read --cluster-key %s", path);
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	if (n < 16)
		usage_error("--cluster-key %s: use a secret of at least 16 bytes",
		    path);
	crypto_generichash(cfg->cluster_key, sizeof(cfg->cluster_key), buf, n,
	    NULL, 0);
	sodium_memzero(buf, sizeof(buf));
	cfg->has_cluster_key = true;
}

static void
parse_args(int argc, char **argv, struct agent_config *cfg)
{
	bool no_shm = false, no_key = false;
	size_t njoin = 0;
	int c, lvl;
	const char *env = getenv("DISTKV_SOCKET");

	memset(cfg, 0, sizeof(*cfg));
	cfg->socket_path = env != NULL && *env != '\0' ? env : DEFAULT_SOCKET;
	cfg->socket_mode = 0660;
	cfg->fsync = FSYNC_ALWAYS;
	cfg->max_request = 4u << 20;
	cfg->max_output = 16u << 20;
	cfg->change_length = CHAIN_DEFAULT_LENGTH;
	cfg->snapshot_every = 10000;
	cfg->shm_mode = 0640;
	cfg->bind = "127.0.0.1:7946";
	cfg->serf_rpc = "127.0.0.1:7373";
	cfg->serf_bin = "serf";
	cfg->event_prefix = "distkv";
	cfg->clock = 1.0;
	cfg->ping_length = 4;
	cfg->tombstone_keep = 300;
	cfg->join_timeout = 120;
	cfg->stream_idle = 60;
	cfg->join = joins;
	if (gethostname(hostname, sizeof(hostname) - 1) != 0)
		snprintf(hostname, sizeof(hostname), "localhost");
	cfg->node = hostname;

	while ((c = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
		switch (c) {
		case OPT_SOCKET: cfg->socket_path = optarg; break;
		case OPT_SOCKET_MODE:
			cfg->socket_mode = parse_mode(optarg, "--socket-mode");
			break;
		case OPT_SHM_MODE:
			cfg->shm_mode = parse_mode(optarg, "--shm-mode");
			break;
		case OPT_SHM: cfg->shm_path = optarg; no_shm = false; break;
		case OPT_BIND: cfg->bind = optarg; break;
		case OPT_SERF_RPC: cfg->serf_rpc = optarg; break;
		case OPT_JOIN:
			if (njoin >= 32)
				usage_error("%s", "at most 32 --join");
			joins[njoin++] = optarg;
			break;
		case OPT_SERF: cfg->serf_addr = optarg; break;
		case OPT_SERF_AUTH: cfg->serf_auth = optarg; break;
		case OPT_PEER_BIND: cfg->peer_bind = optarg; break;
		case OPT_CLUSTER_KEY: read_cluster_key(optarg, cfg); break;
		case OPT_NO_KEY: no_key = true; break;
		case OPT_EVENT_PREFIX:
			if (*optarg == '\0' || strlen(optarg) > 64 ||
			    *optarg == ':')
				usage_error("bad --event-prefix '%s'", optarg);
			cfg->event_prefix = optarg;
			break;
		case OPT_CLOCK: {
			char *end;

			cfg->clock = strtod(optarg, &end);
			if (*end != '\0' || !(cfg->clock >= 0.05 &&
			    cfg->clock <= 3600))
				usage_error("bad --clock '%s' (seconds, 0.05 to 3600)",
				    optarg);
			break;
		}
		case OPT_NO_LOGIN: cfg->no_login = true; break;
		case OPT_ACL_DEFAULT_DENY: cfg->acl_default_deny = true; break;
		case OPT_LISTEN:
			if (listen_cfg.ntls == MAX_LISTEN)
				usage_error("%s", "at most 16 --listen");
			listen_cfg.tls[listen_cfg.ntls++] = optarg;
			break;
		case OPT_LISTEN_INSECURE:
			if (listen_cfg.nplain == MAX_LISTEN)
				usage_error("%s", "at most 16 --listen-insecure");
			listen_cfg.plain[listen_cfg.nplain++] = optarg;
			break;
		case OPT_TLS_CERT: listen_cfg.cert = optarg; break;
		case OPT_TLS_KEY: listen_cfg.key = optarg; break;
		case OPT_TLS_CLIENT_CA: listen_cfg.client_ca = optarg; break;
		case OPT_TLS_HS_TIMEOUT: {
			char *end;

			listen_cfg.handshake_timeout = strtod(optarg, &end);
			if (*optarg == '\0' || *end != '\0' ||
			    !(listen_cfg.handshake_timeout >= 0.1 &&
			    listen_cfg.handshake_timeout <= 3600))
				usage_error("bad --tls-handshake-timeout '%s' "
				    "(seconds, 0.1 to 3600)", optarg);
			break;
		}
		case OPT_LISTEN_ANON: cfg->listen_allow_anonymous = true; break;
		case OPT_METRICS: cfg->metrics_addr = optarg; break;
		case OPT_STREAM_TIMEOUT:
			cfg->stream_idle = (double)parse_number(optarg,
			    "--stream-timeout", 1, 86400);
			break;
		case OPT_JOIN_TIMEOUT:
			cfg->join_timeout = (double)parse_number(optarg,
			    "--join-timeout", 0, 365ULL * 86400);
			break;
		case OPT_TOMBSTONE_KEEP:
			cfg->tombstone_keep = (double)parse_number(optarg,
			    "--tombstone-keep", 0, 365ULL * 86400);
			break;
		case OPT_RUN_DIR: cfg->run_dir = optarg; break;
		case OPT_SERF_BIN: cfg->serf_bin = optarg; break;
		case OPT_PING_LENGTH:
			cfg->ping_length = (unsigned)parse_number(optarg,
			    "--ping-length", 2, 16);
			break;
		case OPT_NO_SHM: no_shm = true; break;
		case OPT_NODE:
			if (*optarg == '\0' ||
			    strlen(optarg) > PROTO_MAX_NODE_NAME ||
			    !proto_utf8_valid(optarg, strlen(optarg)))
				usage_error("bad node name '%s' (1-128 bytes UTF-8)",
				    optarg);
			cfg->node = optarg;
			break;
		case OPT_STANDALONE: cfg->standalone = true; break;
		case OPT_INIT: cfg->init_json = optarg; break;
		case OPT_LOAD: cfg->load_file = optarg; break;
		case OPT_STATE_DIR: cfg->state_dir = optarg; break;
		case OPT_FILE_DIR: cfg->file_dir = optarg; break;
		case OPT_FSYNC:
			if (strcmp(optarg, "always") == 0)
				cfg->fsync = FSYNC_ALWAYS;
			else if (strcmp(optarg, "batch") == 0)
				cfg->fsync = FSYNC_BATCH;
			else if (strcmp(optarg, "none") == 0)
				cfg->fsync = FSYNC_NONE;
			else
				usage_error("bad --fsync '%s' (always, batch, none)",
				    optarg);
			break;
		case OPT_SNAPSHOT_EVERY:
			cfg->snapshot_every = (unsigned)parse_number(optarg,
			    "--snapshot-every", 0, UINT_MAX);
			break;
		case OPT_MAX_REQUEST:
			cfg->max_request = parse_number(optarg, "--max-request",
			    256, 1ull << 30);
			break;
		case OPT_MAX_OUTPUT:
			cfg->max_output = parse_number(optarg, "--max-output",
			    1024, 1ull << 34);
			break;
		case OPT_CHANGE_LENGTH:
			cfg->change_length = (unsigned)parse_number(optarg,
			    "--change-length", 1, CHAIN_CAP);
			break;
		case OPT_LOG_FILE: log_file = optarg; break;
		case OPT_LOG_LEVEL:
			if ((lvl = log_parse_level(optarg)) < 0)
				usage_error("bad --log-level '%s'", optarg);
			log_set_level((enum log_level)lvl);
			break;
		case 'h':
			fputs(usage_text, stdout);
			exit(0);
		case 'V':
			printf("distkv-agent %s\n", distkv_version());
			exit(0);
		default:
			fprintf(stderr, "Try 'distkv-agent --help'.\n");
			exit(2);
		}
	}
	if (optind < argc)
		usage_error("unexpected argument '%s'", argv[optind]);
	if (log_file != NULL && log_open_file(log_file) != 0)
		usage_error("cannot open --log-file %s", log_file);
	/*
	 * Without a key, whoever reaches the peer port or the gossip can
	 * read and rewrite the whole tree: never by accident.
	 */
	if (!cfg->standalone && !cfg->has_cluster_key && !no_key)
		usage_error("a cluster node needs --cluster-key FILE (a shared "
		    "secret of at least 16 bytes): without it anyone who "
		    "reaches the peer port or the gossip owns the tree; "
		    "%s runs without one, for tests only",
		    "--insecure-no-cluster-key");
	if (cfg->has_cluster_key && no_key)
		usage_error("--cluster-key and %s exclude each other",
		    "--insecure-no-cluster-key");
	if (cfg->peer_bind == NULL) {
		/* the gossip address's host, the default peer port */
		const char *colon = strrchr(cfg->bind, ':');
		int hl = colon != NULL ? (int)(colon - cfg->bind) :
		    (int)strlen(cfg->bind);

		snprintf(peer_default, sizeof(peer_default), "%.*s:27589", hl,
		    cfg->bind);
		cfg->peer_bind = peer_default;
	}
	/* a subdirectory: save/log files never sit beside the state's own */
	if (cfg->file_dir == NULL && cfg->state_dir != NULL) {
		snprintf(file_dir_default, sizeof(file_dir_default), "%s/files",
		    cfg->state_dir);
		cfg->file_dir = file_dir_default;
	}
	if (no_shm)
		cfg->shm_path = NULL;
	else if (cfg->shm_path == NULL)
		cfg->shm_path = default_shm_path(cfg->node);
}

/*
 * Bind the TCP client ports now, so that a bad address, a port in use or
 * an unusable certificate stops the start with a clear error (exit 1)
 * instead of a node that looks fine and serves nobody.  They accept
 * clients once the node is ready, with the Unix socket.
 */
static void
open_tcp_clients(struct server *s)
{
	struct tls_server *ts;
	char err[512];
	int rc;

	if (listen_cfg.ntls == 0 && (listen_cfg.cert != NULL ||
	    listen_cfg.key != NULL || listen_cfg.client_ca != NULL))
		log_warn("--tls-cert, --tls-key and --tls-client-ca do "
		    "nothing without --listen");
	if (listen_cfg.ntls > 0) {
		if (listen_cfg.cert == NULL || listen_cfg.key == NULL)
			fatal("--listen needs --tls-cert FILE and --tls-key FILE "
			    "(docs/operations.md says how to make them); plain "
			    "TCP for tests is --listen-insecure");
		if ((rc = tls_server_new(listen_cfg.cert, listen_cfg.key,
		    listen_cfg.client_ca, listen_cfg.handshake_timeout, err,
		    sizeof(err), &ts)) != 0)
			fatal("TLS: %s", rc == -ENOMEM ? "out of memory" : err);
		server_set_tls(s, ts);
	}
	for (size_t i = 0; i < listen_cfg.ntls; i++)
		if (server_bind_clients_tcp(s, listen_cfg.tls[i], true) != 0)
			fatal("cannot serve TLS clients on %s (see above)",
			    listen_cfg.tls[i]);
	for (size_t i = 0; i < listen_cfg.nplain; i++) {
		if (server_bind_clients_tcp(s, listen_cfg.plain[i], false) != 0)
			fatal("cannot serve TCP clients on %s (see above)",
			    listen_cfg.plain[i]);
		log_warn("--listen-insecure %s: plain TCP, for tests only: "
		    "anyone on the path reads and forges everything",
		    listen_cfg.plain[i]);
	}
}

static void
apply_init_value(struct agent *a)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	pack_init_value(&pk, a->cfg.init_json);
	if (agent_change_local(a, a->tree.root,
	    sb.size == 1 && (uint8_t)sb.data[0] == 0xc0 ? NULL :
	    (const uint8_t *)sb.data, sb.size) != 0)
		fatal("cannot set the --init value");
	msgpack_sbuffer_destroy(&sb);
}

int
main(int argc, char **argv)
{
	struct agent_config cfg;
	struct agent *a = &the_agent;
	struct ev_loop *loop;
	ev_signal sigterm, sigint, sighup;
	int rc;

#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
	/* the fuzz build's password hashes are weak (auth_password.h) */
	fatal("this agent was built for fuzzing only; it does not run");
#endif
	if (sodium_init() < 0)
		fatal("libsodium cannot initialise");
	parse_args(argc, argv, &cfg);
	signal(SIGPIPE, SIG_IGN);
	loop = ev_default_loop(EVFLAG_AUTO);
	if (agent_init(a, loop, &cfg) != 0)
		fatal("out of memory");
	if (strcmp(cfg.socket_path, DEFAULT_SOCKET) == 0)
		mkdir("/run/distkv", 0755);

	/* opened first: restored and loaded changes are published too */
	if (cfg.shm_path != NULL && (rc = agent_shm_open(a)) == -EBUSY)
		fatal("the shared-memory region %s is in use by another agent "
		    "(pid %d): give this agent its own --node name or --shm "
		    "path", cfg.shm_path, shm_writer_lock_owner(cfg.shm_path));
	if (cfg.shm_path != NULL && rc != 0)
		fatal("cannot create the shared-memory region %s: %s",
		    cfg.shm_path, strerror(-rc));
	if (cfg.state_dir != NULL &&
	    (rc = persist_open_state_dir(a, cfg.state_dir)) != 0)
		fatal("cannot use state dir %s: %s", cfg.state_dir,
		    strerror(-rc));
	if (cfg.file_dir != NULL && mkdir(cfg.file_dir, 0750) != 0 &&
	    errno != EEXIST)
		log_warn("cannot create the file dir %s: %s (save and log "
		    "will fail)", cfg.file_dir, strerror(errno));
	if (cfg.load_file != NULL) {
		if (a->self->has_tick)
			fatal("--load refused: this node already has data (tick %llu)",
			    (unsigned long long)a->self->tick);
		if ((rc = persist_load_file(a, cfg.load_file)) != 0)
			fatal("cannot load %s: %s", cfg.load_file,
			    strerror(-rc));
	}
	/*
	 * Ready at once: standalone (spec §3.9: tick 0 = ready, no change),
	 * --init (the first node of a cluster), or data of our own from the
	 * state dir or --load.  Otherwise the node downloads the tree from a
	 * peer first and opens the client socket only then.
	 */
	if (!a->self->has_tick && (cfg.standalone || cfg.init_json != NULL)) {
		node_raise_tick(a->self, 0);
		a->ready = true;
		if (cfg.init_json != NULL)
			apply_init_value(a);
	} else if (cfg.init_json != NULL)
		log_info("--init ignored: this node has data (tick %llu)",
		    (unsigned long long)a->self->tick);
	/* our own tick from the state dir or --load: our data is here */
	if (a->self->has_tick)
		a->ready = true;

	if ((rc = server_new(a, &a->server)) != 0)
		fatal("out of memory");
	open_tcp_clients(a->server);
	if (!cfg.standalone) {
		if ((rc = server_open_peers(a->server, cfg.peer_bind)) != 0)
			fatal("cannot open the peer port %s: %s", cfg.peer_bind,
			    strerror(-rc));
		if (!cfg.has_cluster_key)
			log_warn("--insecure-no-cluster-key: the peer port %s "
			    "and the gossip accept anyone who can reach them",
			    cfg.peer_bind);
		if ((rc = sync_start(a)) != 0)
			fatal("cannot start replication");
	}
	if (cfg.metrics_addr != NULL) {
		if ((rc = metrics_http_start(a, cfg.metrics_addr)) != 0)
			fatal("cannot serve metrics on %s: %s", cfg.metrics_addr,
			    rc == -EINVAL ? "not a numeric ADDR:PORT" :
			    "cannot listen there");
		log_info("metrics at http://%s/metrics (port %u)",
		    cfg.metrics_addr, metrics_http_port(a));
	}
	ev_signal_init(&sigterm, signal_cb, SIGTERM);
	ev_signal_init(&sigint, signal_cb, SIGINT);
	ev_signal_start(loop, &sigterm);
	ev_signal_start(loop, &sigint);
	ev_signal_init(&sighup, sighup_cb, SIGHUP);
	sighup.data = (void *)log_file;
	ev_signal_start(loop, &sighup);
	if (agent_ready(a))
		agent_became_ready(a);
	else
		log_info("node %s has no data yet: waiting for a peer to "
		    "download from", a->self->name);

	ev_run(loop, 0);

	server_drain(a->server);
	metrics_http_stop(a);
	sync_stop(a);
	persist_close(a);
	agent_shm_close(a);
	server_close(a->server);
	agent_fini(a);
	log_info("stopped");
	return 0;
}
