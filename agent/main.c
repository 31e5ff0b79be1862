/* distkv-agent: command line, start-up and shutdown.  The only globals of
 * the agent live here. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ev.h>
#include <msgpack.h>

#include "agent.h"
#include "conf.h"
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

static struct agent the_agent;
/* the running configuration: the agent's cfg borrows its strings */
static struct conf the_config;

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

static void
apply_log_config(const struct log_config *l)
{
	log_set_level(l->level);
	log_set_format(l->format);
}

/* conf_diff's report of a SIGHUP: what changed, and what that needs */
static void
report_change(void *arg, const char *name, bool live, const char *value)
{
	struct log_field f[2] = { { "key", name }, { "value", value } };
	unsigned *n = arg;

	(*n)++;
	if (live)
		log_fields(LOG_INFO, f, 2, "SIGHUP: %s is now %s", name, value);
	else
		log_fields(LOG_WARN, f, 1, "SIGHUP: %s changed in the config "
		    "file; needs a restart", name);
}

/*
 * SIGHUP: reopen the log file (logrotate), then read the config file
 * again: what can change live (log level and format, limits) changes,
 * the rest is logged as needing a restart.  A file that no longer parses
 * changes nothing and the agent goes on.
 */
static void
sighup_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct agent *a = w->data;
	struct conf next;
	const char *path = the_config.log.file;
	char err[1024];
	unsigned changes = 0;
	int rc;

	(void)loop;
	(void)revents;
	if (path != NULL && (rc = log_open_file(path)) != 0)
		log_warn("SIGHUP: cannot reopen the log file %s: %s (still "
		    "logging to the old one)", path, strerror(-rc));
	else if (path != NULL)
		log_info("SIGHUP: reopened the log file %s", path);
	if (conf_reload(&the_config, &next, err, sizeof(err)) != 0) {
		log_error("SIGHUP: %s; the running configuration is kept", err);
		return;
	}
	/* the new level and format already govern the reload's own lines */
	apply_log_config(&next.log);
	conf_diff(&the_config, &next, report_change, &changes);
	conf_apply_live(&the_config, &next, &a->cfg);
	log_info("SIGHUP: reloaded %s: %u change(s)", next.path != NULL ?
	    next.path : "(no config file)", changes);
	conf_free(&next);
}

static void
signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)revents;
	log_info("signal %d: shutting down", w->signum);
	ev_break(loop, EVBREAK_ALL);
}

/* Options from the command line, DISTKV_* and the config file; a usage
 * error exits 2. */
static void
load_config(int argc, char **argv)
{
	char err[1024];
	int rc, e;
	struct conf *c = &the_config;

	if ((rc = conf_load(c, argc, argv, err, sizeof(err))) != 0) {
		conf_free(c);
		if (rc > 0)
			exit(0);
		fprintf(stderr, "distkv-agent: %s\nTry 'distkv-agent "
		    "--help'.\n", err);
		exit(2);
	}
	apply_log_config(&c->log);
	if (c->log.file != NULL && (e = log_open_file(c->log.file)) != 0) {
		fprintf(stderr, "distkv-agent: cannot open --log-file %s: %s\n",
		    c->log.file, strerror(-e));
		exit(2);
	}
	if ((e = log_set_target(c->log.target)) != 0)
		log_warn("--log-target journal: no journal here (%s): logging "
		    "to stderr", strerror(-e));
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
	const struct listen_config *lc = &the_config.listen;
	struct tls_server *ts;
	char err[512];
	int rc;

	if (lc->ntls == 0 && (lc->cert != NULL ||
	    lc->key != NULL || lc->client_ca != NULL))
		log_warn("--tls-cert, --tls-key and --tls-client-ca do "
		    "nothing without --listen");
	if (lc->ntls > 0) {
		if (lc->cert == NULL || lc->key == NULL)
			fatal("--listen needs --tls-cert FILE and --tls-key FILE "
			    "(docs/operations.md says how to make them); plain "
			    "TCP for tests is --listen-insecure");
		if ((rc = tls_server_new(lc->cert, lc->key,
		    lc->client_ca, lc->handshake_timeout, err,
		    sizeof(err), &ts)) != 0)
			fatal("TLS: %s", rc == -ENOMEM ? "out of memory" : err);
		server_set_tls(s, ts);
	}
	for (size_t i = 0; i < lc->ntls; i++)
		if (server_bind_clients_tcp(s, lc->tls[i], true) != 0)
			fatal("cannot serve TLS clients on %s (see above)",
			    lc->tls[i]);
	for (size_t i = 0; i < lc->nplain; i++) {
		if (server_bind_clients_tcp(s, lc->plain[i], false) != 0)
			fatal("cannot serve TCP clients on %s (see above)",
			    lc->plain[i]);
		log_warn("--listen-insecure %s: plain TCP, for tests only: "
		    "anyone on the path reads and forges everything",
		    lc->plain[i]);
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
	load_config(argc, argv);
	cfg = the_config.agent;
	log_info("distkv-agent %s starting (config file %s)",
	    distkv_version(), the_config.path != NULL ? the_config.path :
	    "none");
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
	sighup.data = a;
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
	conf_free(&the_config);
	return 0;
}
