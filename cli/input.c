/*
 * Values from files and stdin (set PATH -, set PATH @FILE, set --file
 * FILE): read whole, bounded, then packed as set packs a VALUE.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "mpjson.h"
#include "cli.h"
#include "proto.h"

/*
 * Read all of name ("-": stdin) into *out (NUL-terminated, free() it),
 * at most max bytes.  Returns 0, or an exit status after a message.
 */
int
input_read(const char *name, size_t max, char **out, size_t *outlen)
{
	FILE *f = stdin;
	const char *label = strcmp(name, "-") == 0 ? "stdin" : name;
	char *buf = NULL, *nb;
	size_t len = 0, cap = 0, got;
	int rc = 0;

	*out = NULL;
	*outlen = 0;
	if (strcmp(name, "-") != 0 && (f = fopen(name, "rb")) == NULL)
		return (cli_err(EXIT_USAGE, "cannot read %s: %s", name,
		    strerror(errno)));
	for (;;) {
		if (cap - len < 2) {
			cap = cap == 0 ? 4096 : cap * 2;
			if (cap > max + 2)
				cap = max + 2;
			if ((nb = realloc(buf, cap)) == NULL) {
				rc = cli_err(EXIT_AGENT, "out of memory");
				goto out;
			}
			buf = nb;
		}
		got = fread(buf + len, 1, cap - len - 1, f);
		len += got;
		if (len > max) {
			rc = cli_err(EXIT_USAGE, "%s: larger than %zu bytes (the "
			    "agent's default --max-request, 4 MiB, less 64 KiB)",
			    label, max);
			goto out;
		}
		if (got == 0)
			break;
	}
	if (ferror(f)) {
		rc = cli_err(EXIT_USAGE, "cannot read %s: %s", label,
		    strerror(errno));
		goto out;
	}
	buf[len] = '\0';
	*out = buf;
	*outlen = len;
	buf = NULL;
out:
	free(buf);
	if (f != stdin)
		fclose(f);
	return (rc);
}

/*
 * The VALUE of set from a file: with -j its JSON text, else its bytes as
 * they are, a string if they are UTF-8, else a byte string (so that
 * get --raw gives back exactly these bytes).
 */
int
input_value(struct ctx *ctx, const char *name, msgpack_sbuffer *out)
{
	const char *label = strcmp(name, "-") == 0 ? "stdin" : name;
	msgpack_packer pk;
	char *data, err[256];
	size_t len;
	int rc;

	if ((rc = input_read(name, CLI_VALUE_MAX, &data, &len)) != 0)
		return (rc);
	msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
	if (!ctx->json_value) {
		if (proto_utf8_valid(data, len))
			rc = msgpack_pack_str_with_body(&pk, data, len);
		else
			rc = msgpack_pack_bin_with_body(&pk, data, len);
		if (rc != 0)
			rc = cli_err(EXIT_AGENT, "out of memory");
		goto out;
	}
	if (strlen(data) != len) {
		rc = cli_err(EXIT_USAGE, "invalid JSON value in %s: it holds a "
		    "NUL byte", label);
		goto out;
	}
	if ((rc = mpjson_parse(&pk, data, err, sizeof(err))) == -ENOMEM)
		rc = cli_err(EXIT_AGENT, "out of memory");
	else if (rc != 0)
		rc = cli_err(EXIT_USAGE, "invalid JSON value in %s: %s", label,
		    err);
	else if (out->size == 1 && (uint8_t)out->data[0] == 0xc0)
		rc = cli_err(EXIT_USAGE, "null is not a value (to remove a "
		    "value use delete)");
out:
	free(data);
	return (rc);
}
