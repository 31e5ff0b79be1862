/*
 * acl: distkv-cli's `acl` command (docs/cli.md, "ACLs"): the entries of
 * (nil, "acl", NAME, pattern...) and test_acl.
 */
#ifndef DISTKV_CLI_ACL_H
#define DISTKV_CLI_ACL_H

#include "distkv.h"

/* argv[0..argc) after the word `acl`; acl: --acl NAME or NULL. */
int acl_command(distkv *c, const char *acl, int argc, char **argv);

#endif
