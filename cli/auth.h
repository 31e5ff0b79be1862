/*
 * auth: distkv-cli's logins (-a/--auth, -u/--user, the password sources)
 * and the `auth` command (docs/cli.md, "Logins").
 */
#ifndef DISTKV_CLI_AUTH_H
#define DISTKV_CLI_AUTH_H

#include <stdbool.h>

#include "distkv.h"

struct auth_opts {
	const char *method;		/* -a/--auth, or NULL */
	const char *user;		/* -u/--user, or NULL */
	const char *password_file;	/* --password-file, or NULL */
};

/* An agent error text that means "not allowed" (exit status 6). */
bool auth_denied(const char *msg);

/* Report a failed libdistkv call rc of `what`; returns the exit status
 * (6 for a refusal: not logged in, login refused, access denied). */
int auth_refused(distkv *c, int rc, const char *what);

/*
 * Log in on c as o says, or as the agent's greeting asks when o names no
 * method (root needs nothing; password needs a user).  Returns 0 or the
 * exit status, after a message.
 */
int auth_login(distkv *c, const struct auth_opts *o);

/*
 * Bind a user to target by the entry field below its record (value
 * {key: target}): "acl" (an ACL), "conv" (a converter set); read at the
 * user's next login.  Returns 0 or the exit status, after a message.
 */
int auth_user_bind(distkv *c, const char *method, const char *name,
    const char *field, const char *target, const char *what);

/* The `auth` command: argv[0..argc) after the word `auth`. */
int auth_command(distkv *c, const struct auth_opts *o, bool json, int argc,
    char **argv);

#endif
