/* acl: see acl.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "acl.h"
#include "auth.h"
#include "cli.h"
#include "proto.h"

static int
usage(void)
{
	return (cli_err(EXIT_USAGE, "usage: distkv-cli acl set NAME PATTERN "
	    "MODES | acl get NAME PATTERN | acl list [NAME] | acl delete "
	    "NAME PATTERN | acl test [--acl NAME] PATH MODE"));
}

/* (nil, "acl"[, name[, pattern...]]) as a path. */
static int
acl_path(const char *name, const char *pattern, distkv_path **out)
{
	distkv_path *pat = NULL;
	struct distkv_elem el;
	int rc;

	if ((rc = distkv_path_new(out)) != 0)
		return (cli_err(EXIT_AGENT, "%s", distkv_strerror(rc)));
	distkv_path_push_nil(*out);
	distkv_path_push_str(*out, "acl", 3);
	if (name != NULL && distkv_path_push_str(*out, name,
	    strlen(name)) != 0) {
		distkv_path_free(*out);
		return (cli_err(EXIT_USAGE, "bad ACL name %s", name));
	}
	if (pattern == NULL)
		return (0);
	if (distkv_path_parse(pattern, &pat) != 0) {
		distkv_path_free(*out);
		return (cli_err(EXIT_USAGE, "bad pattern %s (docs/cli.md, "
		    "Paths)", pattern));
	}
	for (size_t i = 0; i < distkv_path_len(pat); i++) {
		distkv_path_elem(pat, i, &el);
		if (el.type == DISTKV_ELEM_STR)
			rc = distkv_path_push_str(*out, el.s, el.len);
		else if (el.type == DISTKV_ELEM_BIN)
			rc = distkv_path_push_bin(*out, el.s, el.len);
		else if (el.type == DISTKV_ELEM_INT)
			rc = distkv_path_push_int(*out, el.i);
		else
			rc = DISTKV_EINVAL;
		if (rc != 0) {
			distkv_path_free(pat);
			distkv_path_free(*out);
			return (cli_err(EXIT_USAGE, "bad pattern %s", pattern));
		}
	}
	distkv_path_free(pat);
	return (0);
}

static int
acl_set(distkv *c, const char *name, const char *pattern, const char *modes)
{
	struct distkv_value v = { NULL, 0 };
	distkv_path *p;
	int rc;

	if ((rc = acl_path(name, pattern, &p)) != 0)
		return (rc);
	if (distkv_value_from_str(&v, modes, strlen(modes)) != 0) {
		distkv_path_free(p);
		return (cli_err(EXIT_AGENT, "out of memory"));
	}
	rc = distkv_set(c, p, v.data, v.len, NULL, NULL);
	distkv_value_clear(&v);
	distkv_path_free(p);
	return (rc == 0 ? 0 : auth_refused(c, rc, "acl set"));
}

static int
acl_get(distkv *c, const char *name, const char *pattern)
{
	struct distkv_entry e;
	const char *s;
	size_t n;
	distkv_path *p;
	int rc;

	if ((rc = acl_path(name, pattern, &p)) != 0)
		return (rc);
	memset(&e, 0, sizeof(e));
	rc = distkv_get(c, p, 0, &e);
	distkv_path_free(p);
	if (rc == DISTKV_ENOTFOUND) {
		distkv_entry_clear(&e);
		return (cli_err(EXIT_NOTFOUND, "ACL %s has no entry %s", name,
		    pattern));
	}
	if (rc != 0) {
		distkv_entry_clear(&e);
		return (auth_refused(c, rc, "acl get"));
	}
	if (distkv_value_get_str(e.value.data, e.value.len, &s, &n) == 0)
		printf("%.*s\n", (int)n, s);
	distkv_entry_clear(&e);
	return (0);
}

struct lister {
	size_t skip;		/* elements of the path before the ACL's */
	bool any;
};

/* One line per entry: NAME PATTERN MODES (the pattern "/" at the top). */
static int
list_cb(void *arg, const struct distkv_entry *e)
{
	struct lister *l = arg;
	distkv_path *rest = NULL;
	struct distkv_elem el, name;
	char *txt = NULL;
	const char *s;
	size_t n;

	if (e->path == NULL || distkv_path_len(e->path) < l->skip + 1 ||
	    distkv_value_get_str(e->value.data, e->value.len, &s, &n) != 0)
		return (0);
	distkv_path_elem(e->path, l->skip, &name);
	if (distkv_path_new(&rest) != 0)
		return (1);
	for (size_t i = l->skip + 1; i < distkv_path_len(e->path); i++) {
		distkv_path_elem(e->path, i, &el);
		if (el.type == DISTKV_ELEM_STR)
			distkv_path_push_str(rest, el.s, el.len);
		else if (el.type == DISTKV_ELEM_BIN)
			distkv_path_push_bin(rest, el.s, el.len);
		else if (el.type == DISTKV_ELEM_INT)
			distkv_path_push_int(rest, el.i);
	}
	if (distkv_path_format(rest, &txt) == 0)
		printf("%.*s %s %.*s\n", (int)name.len, name.s,
		    *txt != '\0' ? txt : "/", (int)n, s);
	l->any = true;
	free(txt);
	distkv_path_free(rest);
	return (0);
}

static int
acl_list(distkv *c, const char *name)
{
	struct distkv_tree_opts o;
	struct lister l = { 2, false };	/* nil, "acl", then the name */
	distkv_path *p;
	int rc;

	memset(&o, 0, sizeof(o));
	o.max_depth = -1;
	if ((rc = acl_path(name, NULL, &p)) != 0)
		return (rc);
	rc = distkv_get_tree(c, p, &o, list_cb, &l);
	distkv_path_free(p);
	if (rc != 0)
		return (auth_refused(c, rc, "acl list"));
	if (!l.any && name != NULL)
		return (cli_err(EXIT_NOTFOUND, "no ACL %s", name));
	return (0);
}

static int
acl_delete(distkv *c, const char *name, const char *pattern)
{
	distkv_path *p;
	int rc;

	if ((rc = acl_path(name, pattern, &p)) != 0)
		return (rc);
	rc = distkv_delete(c, p, NULL, NULL);
	distkv_path_free(p);
	return (rc == 0 ? 0 : auth_refused(c, rc, "acl delete"));
}

struct tester {
	int result;		/* -1 error, 0 false, 1 true */
};

static int
test_cb(void *arg, const uint8_t *msg, size_t len)
{
	struct tester *t = arg;
	msgpack_zone zone;
	msgpack_object m;
	const msgpack_object *a;

	msgpack_zone_init(&zone, 256);
	if (proto_unpack(msg, len, &zone, &m) == 0 &&
	    (a = proto_map_get(&m, "access")) != NULL) {
		if (a->type == MSGPACK_OBJECT_STR) {
			printf("%.*s\n", (int)a->via.str.size, a->via.str.ptr);
			t->result = 1;
		} else if (a->type == MSGPACK_OBJECT_BOOLEAN) {
			printf("%s\n", a->via.boolean ? "true" : "false");
			t->result = a->via.boolean;
		}
	}
	msgpack_zone_destroy(&zone);
	return (0);
}

/* acl test PATH MODE [--acl NAME]: exit 0 if allowed, 6 if not. */
static int
acl_test(distkv *c, const char *path, const char *mode, const char *acl)
{
	struct tester t = { -1 };
	distkv_path *p = NULL;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	struct distkv_elem el;
	int rc;

	if (distkv_path_parse(path, &p) != 0)
		return (cli_err(EXIT_USAGE, "bad path %s", path));
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 3 + (acl != NULL));
	msgpack_pack_str_with_body(&pk, "action", 6);
	msgpack_pack_str_with_body(&pk, "test_acl", 8);
	msgpack_pack_str_with_body(&pk, "mode", 4);
	msgpack_pack_str_with_body(&pk, mode, strlen(mode));
	if (acl != NULL) {
		msgpack_pack_str_with_body(&pk, "acl", 3);
		msgpack_pack_str_with_body(&pk, acl, strlen(acl));
	}
	msgpack_pack_str_with_body(&pk, "path", 4);
	msgpack_pack_array(&pk, (uint32_t)distkv_path_len(p));
	for (size_t i = 0; i < distkv_path_len(p); i++) {
		distkv_path_elem(p, i, &el);
		if (el.type == DISTKV_ELEM_STR)
			msgpack_pack_str_with_body(&pk, el.s, el.len);
		else if (el.type == DISTKV_ELEM_BIN)
			msgpack_pack_bin_with_body(&pk, el.s, el.len);
		else if (el.type == DISTKV_ELEM_INT)
			msgpack_pack_int64(&pk, el.i);
		else
			msgpack_pack_nil(&pk);
	}
	distkv_path_free(p);
	rc = distkv_request(c, sb.data, sb.size, test_cb, &t);
	msgpack_sbuffer_destroy(&sb);
	if (rc == 0 && t.result < 0)
		rc = distkv_errmsg(c) != NULL && *distkv_errmsg(c) ?
		    DISTKV_ESERVER : DISTKV_EPROTO;
	if (rc != 0)
		return (auth_refused(c, rc, "acl test"));
	return (t.result ? 0 : EXIT_DENIED);
}

int
acl_command(distkv *c, const char *acl, int argc, char **argv)
{
	if (argc < 1)
		return (usage());
	if (strcmp(argv[0], "set") == 0 && argc == 4)
		return (acl_set(c, argv[1], argv[2], argv[3]));
	if (strcmp(argv[0], "get") == 0 && argc == 3)
		return (acl_get(c, argv[1], argv[2]));
	if (strcmp(argv[0], "list") == 0 && argc <= 2)
		return (acl_list(c, argc == 2 ? argv[1] : NULL));
	if (strcmp(argv[0], "delete") == 0 && argc == 3)
		return (acl_delete(c, argv[1], argv[2]));
	if (strcmp(argv[0], "test") == 0 && argc == 3)
		return (acl_test(c, argv[1], argv[2], acl));
	return (usage());
}
