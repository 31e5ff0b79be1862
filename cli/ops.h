/*
 * ops: distkv-cli's operator commands (docs/cli.md, "Cluster and
 * operations"): members, health, forget, metrics, dump, restore.
 */
#ifndef DISTKV_CLI_OPS_H
#define DISTKV_CLI_OPS_H

#include <stdbool.h>

#include "distkv.h"

struct auth_opts;

struct ops_opts {
	bool json;			/* --json or -j */
	bool wait;			/* health --wait */
	int timeout_ms;			/* -t; -1: none */
	/* health connects by itself (with --wait, again and again) */
	const char *socket;
	const char *connect;		/* --connect URL, or NULL */
	const struct distkv_tls_opts *tls;
	const struct auth_opts *ao;
};

/*
 * Run command cmd with its positional arguments argv[0..argc); c is the
 * logged-in connection (NULL for health, which connects by itself).
 * Returns the exit status (docs/cli.md, "Exit status").
 */
int ops_command(distkv *c, const char *cmd, const struct ops_opts *o,
    int argc, char **argv);

#endif
