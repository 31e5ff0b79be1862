/*
 * conf: every option of distkv-agent, from one table that drives the
 * command line (getopt_long), the DISTKV_* environment variables and the
 * YAML config file (docs/operations.md, "Configuration").
 *
 * Precedence: command line > environment > config file > defaults.  The
 * file is --config FILE, else $DISTKV_CONFIG, else CONF_DEFAULT_PATH,
 * which may be missing; a named file must exist.  Every value from any of
 * the three is hostile input and goes through the same checks; an error
 * names where the value came from ("FILE:LINE: key", "DISTKV_X", "--x").
 *
 * Called by main only (one thread).  A struct conf owns the strings it
 * read from the file; struct agent_config's pointers borrow from it, so
 * the config main runs with lives as long as the agent.
 */
#ifndef DISTKV_CONF_H
#define DISTKV_CONF_H

#include <stdbool.h>
#include <stddef.h>

#include "agent.h"
#include "log.h"

#define CONF_DEFAULT_PATH "/etc/distkv/agent.conf"
#define CONF_MAX_JOIN 32
#define CONF_MAX_LISTEN 16

/* The TCP client ports (--listen, --listen-insecure) and their TLS. */
struct listen_config {
	const char *const *tls, *const *plain;	/* tls[ntls], plain[nplain] */
	size_t ntls, nplain;
	const char *cert, *key, *client_ca;
	double handshake_timeout;
};

struct log_config {
	enum log_level level;
	enum log_format format;
	enum log_target target;
	const char *file;		/* --log-file, or NULL */
};

struct conf_value;
struct conf_argv;

struct conf {
	struct agent_config agent;
	struct listen_config listen;
	struct log_config log;
	const char *path;		/* the config file read, or NULL */
	/* internals (conf.c) */
	struct conf_value *val;	/* one per option */
	struct conf_argv *argv;	/* the command line, for reloads */
	size_t nargv;
	char **owned;			/* strings read from the file */
	size_t nowned, capowned;
	char hostname[256], peer_default[300], shm_default[300];
	char file_dir_default[4200];
};

/*
 * Fill c from the command line, the environment and the config file.
 * Returns 0; 1 when --help or --version printed what was asked (exit 0);
 * -1 with the reason in err (a usage error: exit 2).  c must be freed
 * with conf_free() in every case.
 */
int conf_load(struct conf *c, int argc, char **argv, char *err,
    size_t errlen);

/*
 * SIGHUP: read the config file (and the environment) again, with cur's
 * command line on top, into next.  0, or -1 with the reason in err (next
 * is then freed already).  The file read is cur's, re-resolved the same
 * way (a default file that appeared since is read).
 */
int conf_reload(const struct conf *cur, struct conf *next, char *err,
    size_t errlen);

/*
 * Call fn for each option whose value differs between a and b, with
 * whether it can change while the agent runs (conf_apply_live).
 */
void conf_diff(const struct conf *a, const struct conf *b,
    void (*fn)(void *arg, const char *name, bool live, const char *value),
    void *arg);

/*
 * Copy the values that can change while the agent runs (log level and
 * format, limits) from next into cur and into the agent's cfg.
 */
void conf_apply_live(struct conf *cur, const struct conf *next,
    struct agent_config *cfg);

void conf_free(struct conf *c);

#endif
