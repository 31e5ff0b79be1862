/*
 * cli: what the files of distkv-cli share: exit statuses (docs/cli.md,
 * "Exit status") and the one error printer.
 */
#ifndef DISTKV_CLI_H
#define DISTKV_CLI_H

#define EXIT_NOTFOUND	1
#define EXIT_USAGE	2
#define EXIT_AGENT	3
#define EXIT_REFUSED	4
#define EXIT_STALE	5	/* get --stale printed data of a stopped agent */
#define EXIT_DENIED	6	/* not logged in, or the login was refused */
#define EXIT_UNHEALTHY	7	/* health: the agent is not healthy (why: stderr) */

/* "distkv-cli: MESSAGE" on stderr (stdout flushed first); returns code. */
int	cli_err(int code, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));

#endif
