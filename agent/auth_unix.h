/*
 * auth_unix: the `unix` method (new; no reference client has it).  The
 * kernel tells who connected to the Unix socket (SO_PEERCRED); a user
 * record (nil, "auth", "unix", "user", NAME) lets that uid in, NAME being
 * its login name or its uid in decimal.  No secret crosses the socket:
 * the natural login for local services.  Not on the TCP peer port.
 */
#ifndef DISTKV_AUTH_UNIX_H
#define DISTKV_AUTH_UNIX_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/*
 * The names a uid's record may have: its login name (empty if the uid
 * has none) and its decimal number.
 */
void auth_unix_names(uid_t uid, char name[256], char num[24]);

#endif
