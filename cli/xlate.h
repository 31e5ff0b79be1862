/*
 * xlate: distkv-cli's translator commands `type`, `match`, `codec` and
 * `conv` (docs/cli.md, "Types and converters"): the records of
 * (nil, "type"|"match"|"codec"|"conv", ...) written with the Lua code of
 * files, example values from the command line.
 */
#ifndef DISTKV_CLI_XLATE_H
#define DISTKV_CLI_XLATE_H

#include <stdbool.h>

#include "distkv.h"

#define XLATE_CLI_MAX 64

/* The repeatable options of these commands, collected by main. */
struct xlate_cli_opts {
	const char *good[XLATE_CLI_MAX], *bad[XLATE_CLI_MAX];
	const char *in[XLATE_CLI_MAX], *out[XLATE_CLI_MAX];
	int ngood, nbad, nin, nout;
	const char *schema, *code, *decode, *encode;	/* files */
};

/* Add a repeated option's value; -1 (after a message) when full. */
int xlate_cli_add(const char **v, int *n, const char *opt, const char *arg);

/* argv[0..argc) after the word kind ("type", "match", "codec", "conv"). */
int xlate_command(distkv *c, const char *kind, const struct xlate_cli_opts *o,
    bool json, int argc, char **argv);

/* auth user conv METHOD NAME CONV: bind a user to a converter set. */
int xlate_user_conv(distkv *c, const char *method, const char *name,
    const char *conv);

#endif
