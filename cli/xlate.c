/* xlate: see xlate.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "auth.h"
#include "cli.h"
#include "mpjson.h"
#include "proto.h"
#include "xlate.h"

/* Largest code or schema file. */
#define FILE_MAX (1 << 20)

static int
usage(const char *kind)
{
	if (strcmp(kind, "type") == 0)
		return (cli_err(EXIT_USAGE, "usage: distkv-cli type set PATH "
		    "--good V... --bad V... [--schema FILE] [--code FILE] | "
		    "type get PATH | type list | type delete PATH"));
	if (strcmp(kind, "match") == 0)
		return (cli_err(EXIT_USAGE, "usage: distkv-cli match set "
		    "PATTERN TYPE | match get PATTERN | match list | "
		    "match delete PATTERN"));
	if (strcmp(kind, "codec") == 0)
		return (cli_err(EXIT_USAGE, "usage: distkv-cli codec set NAME "
		    "[--decode FILE --in SRC=RES...] [--encode FILE "
		    "--out SRC=RES...] | codec get NAME | codec list | "
		    "codec delete NAME"));
	return (cli_err(EXIT_USAGE, "usage: distkv-cli conv set NAME PATTERN "
	    "CODEC | conv get NAME PATTERN | conv list [NAME] | "
	    "conv delete NAME PATTERN"));
}

int
xlate_cli_add(const char **v, int *n, const char *opt, const char *arg)
{
	if (*n == XLATE_CLI_MAX)
		return (cli_err(-1, "--%s: at most %d values", opt,
		    XLATE_CLI_MAX));
	v[(*n)++] = arg;
	return (0);
}

/* Append the elements of the path text to p. */
static int
push_text(distkv_path *p, const char *text, const char *what)
{
	distkv_path *t = NULL;
	struct distkv_elem el;
	int rc = 0;

	if (distkv_path_parse(text, &t) != 0)
		return (cli_err(EXIT_USAGE, "bad %s %s (docs/cli.md, Paths)",
		    what, text));
	for (size_t i = 0; i < distkv_path_len(t) && rc == 0; i++) {
		distkv_path_elem(t, i, &el);
		if (el.type == DISTKV_ELEM_STR)
			rc = distkv_path_push_str(p, el.s, el.len);
		else if (el.type == DISTKV_ELEM_BIN)
			rc = distkv_path_push_bin(p, el.s, el.len);
		else if (el.type == DISTKV_ELEM_INT)
			rc = distkv_path_push_int(p, el.i);
		else
			rc = DISTKV_EINVAL;
	}
	distkv_path_free(t);
	return (rc == 0 ? 0 : cli_err(EXIT_USAGE, "bad %s %s", what, text));
}

/* (nil, kind[, name][, text...]) */
static int
meta_path(const char *kind, const char *name, const char *text,
    const char *what, distkv_path **out)
{
	int rc;

	if ((rc = distkv_path_new(out)) != 0)
		return (cli_err(EXIT_AGENT, "%s", distkv_strerror(rc)));
	distkv_path_push_nil(*out);
	distkv_path_push_str(*out, kind, strlen(kind));
	if (name != NULL)
		distkv_path_push_str(*out, name, strlen(name));
	if (text != NULL && (rc = push_text(*out, text, what)) != 0) {
		distkv_path_free(*out);
		*out = NULL;
		return (rc);
	}
	return (0);
}

/* A value from the command line: JSON, or else the text as a string. */
static int
pack_arg(msgpack_packer *pk, const char *text)
{
	msgpack_sbuffer tmp;
	msgpack_packer tp;
	char err[256];
	int rc;

	msgpack_sbuffer_init(&tmp);
	msgpack_packer_init(&tp, &tmp, msgpack_sbuffer_write);
	rc = mpjson_parse(&tp, text, err, sizeof(err));
	if (rc == 0)
		rc = pk->callback(pk->data, tmp.data, tmp.size);
	else if (rc == -EINVAL && proto_utf8_valid(text, strlen(text)))
		rc = msgpack_pack_str_with_body(pk, text, strlen(text));
	msgpack_sbuffer_destroy(&tmp);
	return (rc == 0 ? 0 : cli_err(EXIT_USAGE, "bad value '%s'", text));
}

/* The whole file ("-": standard input) as a malloc'ed NUL-ended text. */
static int
read_file(const char *name, char **out, size_t *len)
{
	FILE *f = strcmp(name, "-") == 0 ? stdin : fopen(name, "r");
	char *buf;
	size_t n;

	*out = NULL;
	if (f == NULL)
		return (cli_err(EXIT_USAGE, "cannot open %s: %s", name,
		    strerror(errno)));
	if ((buf = malloc(FILE_MAX + 1)) == NULL) {
		if (f != stdin)
			fclose(f);
		return (cli_err(EXIT_AGENT, "out of memory"));
	}
	n = fread(buf, 1, FILE_MAX + 1, f);
	if (f != stdin)
		fclose(f);
	if (n > FILE_MAX) {
		free(buf);
		return (cli_err(EXIT_USAGE, "%s: larger than %d bytes", name,
		    FILE_MAX));
	}
	buf[n] = 0;
	*out = buf;
	*len = n;
	return (0);
}

static int
pack_key(msgpack_packer *pk, const char *k)
{
	return (msgpack_pack_str_with_body(pk, k, strlen(k)));
}

static int
pack_file_str(msgpack_packer *pk, const char *file)
{
	char *text;
	size_t n;
	int rc;

	if ((rc = read_file(file, &text, &n)) != 0)
		return (rc);
	if (!proto_utf8_valid(text, n)) {
		free(text);
		return (cli_err(EXIT_USAGE, "%s is not UTF-8 text", file));
	}
	msgpack_pack_str_with_body(pk, text, n);
	free(text);
	return (0);
}

/* Write the record with set_value; the agent checks it (xlate.h). */
static int
write_record(distkv *c, const distkv_path *p, msgpack_sbuffer *sb,
    bool json, const char *what)
{
	char *txt = NULL;
	int rc;

	rc = distkv_set(c, p, sb->data, sb->size, NULL, NULL);
	if (rc != 0)
		return (auth_refused(c, rc, what));
	if (json && distkv_path_format(p, &txt) == 0) {
		msgpack_sbuffer out;

		msgpack_sbuffer_init(&out);
		mpjson_put_string(&out, txt, strlen(txt));
		printf("{\"path\":%.*s,\"ok\":true}\n", (int)out.size,
		    out.data);
		msgpack_sbuffer_destroy(&out);
	}
	free(txt);
	return (0);
}

static int
type_set(distkv *c, const struct xlate_cli_opts *o, const char *path,
    bool json)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	distkv_path *p;
	char *text;
	size_t n;
	int rc;

	if ((rc = meta_path("type", NULL, path, "type", &p)) != 0)
		return (rc);
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 3 + (o->schema != NULL) + (o->code != NULL));
	pack_key(&pk, "good");
	msgpack_pack_array(&pk, (size_t)o->ngood);
	for (int i = 0; i < o->ngood && rc == 0; i++)
		rc = pack_arg(&pk, o->good[i]);
	pack_key(&pk, "bad");
	msgpack_pack_array(&pk, (size_t)o->nbad);
	for (int i = 0; i < o->nbad && rc == 0; i++)
		rc = pack_arg(&pk, o->bad[i]);
	pack_key(&pk, "lang");
	pack_key(&pk, "lua");
	if (rc == 0 && o->schema != NULL &&
	    (rc = read_file(o->schema, &text, &n)) == 0) {
		char err[256];

		pack_key(&pk, "schema");
		if (mpjson_parse(&pk, text, err, sizeof(err)) != 0)
			rc = cli_err(EXIT_USAGE, "%s: bad JSON: %s", o->schema,
			    err);
		free(text);
	}
	if (rc == 0 && o->code != NULL) {
		pack_key(&pk, "code");
		rc = pack_file_str(&pk, o->code);
	}
	if (rc == 0)
		rc = write_record(c, p, &sb, json, "type set");
	msgpack_sbuffer_destroy(&sb);
	distkv_path_free(p);
	return (rc);
}

/* SRC=RES: split at the first '=' outside a JSON string. */
static int
pack_pair(msgpack_packer *pk, const char *arg)
{
	bool quoted = false;
	char *src;
	const char *s;
	int rc;

	for (s = arg; *s != 0; s++) {
		if (*s == '\\' && quoted && s[1] != 0)
			s++;
		else if (*s == '"')
			quoted = !quoted;
		else if (*s == '=' && !quoted)
			break;
	}
	if (*s != '=')
		return (cli_err(EXIT_USAGE, "'%s': expected SRC=RES", arg));
	if ((src = strndup(arg, (size_t)(s - arg))) == NULL)
		return (cli_err(EXIT_AGENT, "out of memory"));
	msgpack_pack_array(pk, 2);
	rc = pack_arg(pk, src);
	if (rc == 0)
		rc = pack_arg(pk, s + 1);
	free(src);
	return (rc);
}

static int
codec_set(distkv *c, const struct xlate_cli_opts *o, const char *name,
    bool json)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	distkv_path *p;
	int rc;

	if (o->decode == NULL && o->encode == NULL)
		return (cli_err(EXIT_USAGE, "codec set: give --decode FILE "
		    "and/or --encode FILE"));
	if ((rc = meta_path("codec", NULL, name, "codec name", &p)) != 0)
		return (rc);
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 5);
	pack_key(&pk, "lang");
	pack_key(&pk, "lua");
	pack_key(&pk, "decode");
	if (o->decode != NULL)
		rc = pack_file_str(&pk, o->decode);
	else
		msgpack_pack_nil(&pk);
	pack_key(&pk, "encode");
	if (rc == 0 && o->encode != NULL)
		rc = pack_file_str(&pk, o->encode);
	else if (rc == 0)
		msgpack_pack_nil(&pk);
	pack_key(&pk, "in");
	msgpack_pack_array(&pk, (size_t)o->nin);
	for (int i = 0; i < o->nin && rc == 0; i++)
		rc = pack_pair(&pk, o->in[i]);
	pack_key(&pk, "out");
	msgpack_pack_array(&pk, (size_t)o->nout);
	for (int i = 0; i < o->nout && rc == 0; i++)
		rc = pack_pair(&pk, o->out[i]);
	if (rc == 0)
		rc = write_record(c, p, &sb, json, "codec set");
	msgpack_sbuffer_destroy(&sb);
	distkv_path_free(p);
	return (rc);
}

/* {field: [elements of text]} for match (type) and conv (codec). */
static int
names_set(distkv *c, distkv_path *p, const char *field, const char *text,
    bool json, const char *what)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	distkv_path *t = NULL;
	struct distkv_elem el;
	int rc;

	if (distkv_path_parse(text, &t) != 0 || distkv_path_len(t) == 0) {
		distkv_path_free(t);
		return (cli_err(EXIT_USAGE, "bad name %s", text));
	}
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 1);
	pack_key(&pk, field);
	msgpack_pack_array(&pk, distkv_path_len(t));
	for (size_t i = 0; i < distkv_path_len(t); i++) {
		distkv_path_elem(t, i, &el);
		if (el.type == DISTKV_ELEM_STR)
			msgpack_pack_str_with_body(&pk, el.s, el.len);
		else if (el.type == DISTKV_ELEM_INT)
			msgpack_pack_int64(&pk, el.i);
		else
			msgpack_pack_nil(&pk);
	}
	distkv_path_free(t);
	rc = write_record(c, p, &sb, json, what);
	msgpack_sbuffer_destroy(&sb);
	return (rc);
}

static int
record_get(distkv *c, distkv_path *p, bool json, const char *what)
{
	struct distkv_entry e;
	msgpack_sbuffer out;
	char *txt = NULL;
	int rc;

	memset(&e, 0, sizeof(e));
	rc = distkv_get(c, p, 0, &e);
	if (rc == DISTKV_ENOTFOUND) {
		distkv_entry_clear(&e);
		return (cli_err(EXIT_NOTFOUND, "%s: no such record", what));
	}
	if (rc != 0) {
		distkv_entry_clear(&e);
		return (auth_refused(c, rc, what));
	}
	msgpack_sbuffer_init(&out);
	if (json && distkv_path_format(p, &txt) == 0) {
		msgpack_sbuffer_write(&out, "{\"path\":", 8);
		mpjson_put_string(&out, txt, strlen(txt));
		msgpack_sbuffer_write(&out, ",\"value\":", 9);
	}
	rc = mpjson_format_bytes(&out, e.value.data, e.value.len, 0);
	if (json)
		msgpack_sbuffer_write(&out, "}", 1);
	if (rc == 0)
		printf("%.*s\n", (int)out.size, out.data);
	msgpack_sbuffer_destroy(&out);
	free(txt);
	distkv_entry_clear(&e);
	return (rc == 0 ? 0 : cli_err(EXIT_AGENT, "%s: unprintable", what));
}

struct lister {
	size_t skip;		/* elements before the record's name */
	bool json, any;
};

static int
list_cb(void *arg, const struct distkv_entry *e)
{
	struct lister *l = arg;
	distkv_path *rest = NULL;
	struct distkv_elem el;
	msgpack_sbuffer out;
	char *txt = NULL;

	if (e->path == NULL || distkv_path_len(e->path) <= l->skip ||
	    distkv_path_new(&rest) != 0)
		return (0);
	for (size_t i = l->skip; i < distkv_path_len(e->path); i++) {
		distkv_path_elem(e->path, i, &el);
		if (el.type == DISTKV_ELEM_STR)
			distkv_path_push_str(rest, el.s, el.len);
		else if (el.type == DISTKV_ELEM_BIN)
			distkv_path_push_bin(rest, el.s, el.len);
		else if (el.type == DISTKV_ELEM_INT)
			distkv_path_push_int(rest, el.i);
	}
	msgpack_sbuffer_init(&out);
	if (distkv_path_format(rest, &txt) == 0) {
		if (l->json) {
			msgpack_sbuffer_write(&out, "{\"name\":", 8);
			mpjson_put_string(&out, txt, strlen(txt));
			msgpack_sbuffer_write(&out, ",\"value\":", 9);
		} else {
			msgpack_sbuffer_write(&out, txt, strlen(txt));
			msgpack_sbuffer_write(&out, " ", 1);
		}
		if (mpjson_format_bytes(&out, e->value.data, e->value.len,
		    0) == 0) {
			if (l->json)
				msgpack_sbuffer_write(&out, "}", 1);
			printf("%.*s\n", (int)out.size, out.data);
			l->any = true;
		}
	}
	msgpack_sbuffer_destroy(&out);
	free(txt);
	distkv_path_free(rest);
	return (0);
}

static int
record_list(distkv *c, distkv_path *p, size_t skip, bool json,
    const char *what)
{
	struct distkv_tree_opts o;
	struct lister l = { skip, json, false };
	int rc;

	memset(&o, 0, sizeof(o));
	o.max_depth = -1;
	rc = distkv_get_tree(c, p, &o, list_cb, &l);
	return (rc == 0 ? 0 : auth_refused(c, rc, what));
}

static int
record_delete(distkv *c, distkv_path *p, const char *what)
{
	int rc = distkv_delete(c, p, NULL, NULL);

	return (rc == 0 ? 0 : auth_refused(c, rc, what));
}

int
xlate_command(distkv *c, const char *kind, const struct xlate_cli_opts *o,
    bool json, int argc, char **argv)
{
	bool conv = strcmp(kind, "conv") == 0;
	const char *verb = argc > 0 ? argv[0] : "";
	/* conv takes NAME PATTERN, the others one PATH */
	int nargs = conv && strcmp(verb, "list") != 0 ? 2 : 1;
	char what[32];
	distkv_path *p = NULL;
	int rc;

	snprintf(what, sizeof(what), "%s %s", kind, verb);
	if (strcmp(verb, "set") == 0) {
		if (strcmp(kind, "type") == 0 && argc == 2)
			return (type_set(c, o, argv[1], json));
		if (strcmp(kind, "codec") == 0 && argc == 2)
			return (codec_set(c, o, argv[1], json));
		if (strcmp(kind, "match") == 0 && argc == 3) {
			if ((rc = meta_path("match", NULL, argv[1], "pattern",
			    &p)) != 0)
				return (rc);
			rc = names_set(c, p, "type", argv[2], json, what);
		} else if (conv && argc == 4) {
			if ((rc = meta_path("conv", argv[1], argv[2],
			    "pattern", &p)) != 0)
				return (rc);
			rc = names_set(c, p, "codec", argv[3], json, what);
		} else
			return (usage(kind));
		distkv_path_free(p);
		return (rc);
	}
	if (strcmp(verb, "list") == 0 && argc <= 1 + conv) {
		if ((rc = meta_path(kind, conv && argc == 2 ? argv[1] : NULL,
		    NULL, NULL, &p)) != 0)
			return (rc);
		rc = record_list(c, p, 2, json, what);
		distkv_path_free(p);
		return (rc);
	}
	if ((strcmp(verb, "get") != 0 && strcmp(verb, "delete") != 0) ||
	    argc != 1 + nargs)
		return (usage(kind));
	if ((rc = meta_path(kind, conv ? argv[1] : NULL, argv[nargs],
	    conv ? "pattern" : "path", &p)) != 0)
		return (rc);
	rc = strcmp(verb, "get") == 0 ? record_get(c, p, json, what) :
	    record_delete(c, p, what);
	distkv_path_free(p);
	return (rc);
}

int
xlate_user_conv(distkv *c, const char *method, const char *name,
    const char *conv)
{
	return (auth_user_bind(c, method, name, "conv", conv,
	    "auth user conv"));
}
