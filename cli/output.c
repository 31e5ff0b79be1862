/*
 * distkv-cli's errors, value parsing and printers: one output format per
 * --json / --raw / text, the same for every command (docs/cli.md).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "distkv.h"
#include "mpjson.h"
#include "auth.h"
#include "cli.h"
#include "proto.h"

/* ---- errors ---- */

int
cli_err(int code, const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("distkv-cli: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return (code);
}

/* Report a libdistkv error about `what' and return the exit status. */
int
lib_error(struct ctx *ctx, int rc, const char *what)
{
	const char *msg;

	/* the agent said no (its words are in distkv_errmsg) */
	if (DISTKV_IS_REFUSAL(rc)) {
		msg = ctx->c != NULL ? distkv_errmsg(ctx->c) : "";
		if (msg == NULL || *msg == '\0')
			msg = distkv_strerror(rc);
		return (cli_err(rc == DISTKV_EDENIED || auth_denied(msg) ?
		    EXIT_DENIED : EXIT_REFUSED, "%s: %s", what, msg));
	}
	switch (rc) {
	case DISTKV_ENOTFOUND:
		return (cli_err(EXIT_NOTFOUND, "%s: not found", what));
	case DISTKV_EINVAL:
		return (cli_err(EXIT_USAGE, "%s: %s", what, distkv_strerror(rc)));
	case DISTKV_ECONNECT:
		return (cli_err(EXIT_AGENT, "cannot reach the agent at %s: %s",
		    ctx->socket, distkv_strerror(rc)));
	default:
		return (cli_err(EXIT_AGENT, "%s: %s", what, distkv_strerror(rc)));
	}
}

int
parse_path(const char *text, distkv_path **out)
{
	int rc;

	if ((rc = distkv_path_parse(text, out)) != 0)
		return (cli_err(EXIT_USAGE, "invalid path '%s': %s (see "
		    "distkv-cli help)", text, rc == DISTKV_EINVAL ?
		    "bad syntax" : distkv_strerror(rc)));
	return (0);
}

/* VALUE from the command line: a string, or JSON with -j. */
int
build_value(struct ctx *ctx, const char *text, bool allow_nil,
    msgpack_sbuffer *out)
{
	msgpack_packer pk;
	char err[256];
	int rc;

	msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
	if (!ctx->json_value) {
		if (!proto_utf8_valid(text, strlen(text)))
			return (cli_err(EXIT_USAGE, "value is not valid UTF-8 "
			    "(use -j '{\"$bin\":\"HEX\"}' for bytes)"));
		if (msgpack_pack_str_with_body(&pk, text, strlen(text)) != 0)
			return (cli_err(EXIT_AGENT, "out of memory"));
		return (0);
	}
	if ((rc = mpjson_parse(&pk, text, err, sizeof(err))) == -ENOMEM)
		return (cli_err(EXIT_AGENT, "out of memory"));
	if (rc != 0)
		return (cli_err(EXIT_USAGE, "invalid JSON value '%s': %s", text,
		    err));
	if (!allow_nil && out->size == 1 && (uint8_t)out->data[0] == 0xc0)
		return (cli_err(EXIT_USAGE, "null is not a value (to remove a "
		    "value use delete)"));
	return (0);
}

/* ---- output ---- */

/*
 * Text is collected in a msgpack_sbuffer used as a plain byte buffer (the
 * buffer mpjson writes to).  Both return 0 or -ENOMEM.
 */
int
putn(msgpack_sbuffer *b, const char *s, size_t len)
{
	if (len == 0)
		return (0);
	return (msgpack_sbuffer_write(b, s, len) == 0 ? 0 : -ENOMEM);
}

int
put(msgpack_sbuffer *b, const char *s)
{
	return (putn(b, s, strlen(s)));
}

/* Write and reset the buffer; flush so watchers see lines at once. */
int
emit(msgpack_sbuffer *b)
{
	if (b->size != 0 && fwrite(b->data, 1, b->size, stdout) != b->size)
		return (-1);
	b->size = 0;
	return (fflush(stdout) == 0 ? 0 : -1);
}

/* The text form of a path; the root is "/" in text output, "" in JSON. */
int
put_path(msgpack_sbuffer *b, const distkv_path *p, bool json)
{
	char *s = NULL;
	int rc;

	if (p == NULL || distkv_path_format(p, &s) != 0)
		return (-1);
	if (json)
		rc = mpjson_put_string(b, s, strlen(s));
	else
		rc = put(b, *s == '\0' ? "/" : s);
	free(s);
	return (rc);
}

int
put_chain_json(msgpack_sbuffer *b, const struct distkv_chain *ch)
{
	char num[32];
	size_t i;

	if (put(b, "[") != 0)
		return (-1);
	for (i = 0; i < ch->n && i < DISTKV_CHAIN_MAX; i++) {
		snprintf(num, sizeof(num), ",\"tick\":%" PRIu64 "}",
		    ch->ev[i].tick);
		if ((i > 0 && put(b, ",") != 0) ||
		    put(b, "{\"node\":") != 0 ||
		    mpjson_put_string(b, ch->ev[i].node,
		    strlen(ch->ev[i].node)) != 0 || put(b, num) != 0)
			return (-1);
	}
	return (put(b, "]"));
}

int
put_chain_text(msgpack_sbuffer *b, const struct distkv_chain *ch)
{
	char num[32];
	size_t i;

	for (i = 0; i < ch->n && i < DISTKV_CHAIN_MAX; i++) {
		snprintf(num, sizeof(num), ":%" PRIu64, ch->ev[i].tick);
		if ((i > 0 && put(b, " ") != 0) ||
		    put(b, ch->ev[i].node) != 0 ||
		    put(b, num) != 0)
			return (-1);
	}
	return (0);
}

/*
 * One entry in the current output mode.  path NULL: a single `get' (the
 * value alone in text and raw mode); else a list line (tree, watch).
 * Returns 0, or an exit status after printing the error.
 */
int
put_entry(struct ctx *ctx, msgpack_sbuffer *b, const distkv_path *path,
    const struct distkv_entry *e, bool single)
{
	char num[32];
	bool nil = e->value.len == 0 ||
	    distkv_value_is_nil(e->value.data, e->value.len);
	int rc = 0;

	switch (ctx->out) {
	case OUT_JSON:
		if (put(b, "{\"path\":") != 0 ||
		    put_path(b, path, true) != 0 ||
		    put(b, ",\"value\":") != 0)
			goto fail;
		rc = nil ? put(b, "null") : mpjson_format_bytes(b,
		    e->value.data, e->value.len, 0);
		if (rc != 0)
			goto bad;
		snprintf(num, sizeof(num), ",\"tock\":%" PRIu64, e->tock);
		if (put(b, num) != 0)
			goto fail;
		if (e->chain.n > 0 && (put(b, ",\"chain\":") != 0 ||
		    put_chain_json(b, &e->chain) != 0))
			goto fail;
		if (put(b, "}\n") != 0)
			goto fail;
		break;
	case OUT_RAW:
		/* a list line without a value (watch: a deletion) is marked */
		if (nil && !single && put(b, "(no value)") != 0)
			goto fail;
		if (!nil && (rc = mpjson_format_bytes(b, e->value.data,
		    e->value.len, MPJSON_BARE_STR | MPJSON_BARE_BIN)) != 0)
			goto bad;
		if (!single && put(b, "\n") != 0)
			goto fail;
		break;
	case OUT_TEXT:
		if (!single) {
			if (put_path(b, path, false) != 0)
				goto fail;
			if (nil) {
				if (put(b, " (no value)") != 0)
					goto fail;
			} else if ((rc = put(b, " = ")) != 0 ||
			    (rc = mpjson_format_bytes(b, e->value.data,
			    e->value.len, 0)) != 0)
				goto bad;
			if (e->chain.n > 0 && (put(b, "  [") != 0 ||
			    put_chain_text(b, &e->chain) != 0 ||
			    put(b, "]") != 0))
				goto fail;
		} else if ((rc = mpjson_format_bytes(b, e->value.data,
		    e->value.len, MPJSON_BARE_STR)) != 0)
			goto bad;
		if (put(b, "\n") != 0)
			goto fail;
		if (single && e->chain.n > 0 &&
		    (put(b, "chain: ") != 0 ||
		    put_chain_text(b, &e->chain) != 0 ||
		    put(b, "\n") != 0))
			goto fail;
		break;
	}
	if (emit(b) != 0)
		return (cli_err(EXIT_AGENT, "write error: %s",
		    strerror(errno)));
	return (0);
bad:
	if (rc == -ENOMEM)
		goto fail;
	return (cli_err(EXIT_AGENT, "protocol error: the agent sent a value "
	    "that is not valid msgpack"));
fail:
	return (cli_err(EXIT_AGENT, "out of memory"));
}

