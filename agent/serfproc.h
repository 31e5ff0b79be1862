/*
 * serfproc: the embedded Serf agent.  Without --serf ADDR, distkv-agent
 * starts its own `serf agent` child on loopback, supervises it (restart on
 * exit with backoff) and stops it when the agent exits.
 *
 * The child gets a config file written into a private directory (event
 * size limit, reconnect_interval, reconnect_timeout), its node name, bind
 * address, RPC address, join addresses (-retry-join, so a seed that is not
 * up yet is not fatal) and tags.  Its stdout/stderr go to a log file in
 * that directory.
 */
#ifndef DISTKV_SERFPROC_H
#define DISTKV_SERFPROC_H

#include <stdbool.h>
#include <stddef.h>

#include <ev.h>

struct serfproc;

struct serfproc_config {
	const char *serf_bin;		/* default "serf" from PATH */
	const char *node;		/* -node */
	const char *bind;		/* -bind ADDR:PORT */
	const char *rpc_addr;		/* -rpc-addr ADDR:PORT (loopback) */
	const char *const *join;	/* -retry-join, NULL-terminated */
	const char *const *tags;	/* "key=value", NULL-terminated */
	const char *dir;		/* config file and log live here */
	size_t event_size_limit;	/* user_event_size_limit (<= 9216) */
	const char *reconnect_interval;	/* Go duration, e.g. "1s" */
	const char *reconnect_timeout;	/* e.g. "30s" */
	const char *profile;		/* lan (default), local, wan */
	const char *encrypt_key;	/* gossip key, base64 (or NULL) */
};

/* Spawn the child and supervise it.  Returns 0 or -errno. */
int serfproc_start(struct ev_loop *loop, const struct serfproc_config *c,
    struct serfproc **out);
/* Stop it (SIGINT: a graceful leave, SIGKILL after 3 s) and free. */
void serfproc_stop(struct serfproc *p);
/* pid of the running child, 0 while restarting. */
int serfproc_pid(const struct serfproc *p);

#endif
