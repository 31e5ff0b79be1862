/* auth: see auth.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <msgpack.h>

#include "xlate.h"
#include "auth.h"
#include "cli.h"
#include "mpjson.h"
#include "proto.h"

#define PASSWORD_MAX 1024

bool
auth_denied(const char *msg)
{
	return (strncmp(msg, "NoAuthError", 11) == 0 ||
	    strncmp(msg, "AuthFailedError", 15) == 0 ||
	    strncmp(msg, "Wrong auth type", 15) == 0 ||
	    strcmp(msg, "No such user") == 0 ||
	    strncmp(msg, "Access denied", 13) == 0);
}

/* One line of f without its newline into buf; false at EOF. */
static bool
read_line(FILE *f, char *buf, size_t cap)
{
	size_t n;

	if (fgets(buf, (int)cap, f) == NULL)
		return (false);
	n = strlen(buf);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	return (true);
}

/*
 * The password: $DISTKV_PASSWORD, else the first line of --password-file,
 * else asked on the terminal without echo.  Never a command-line word (it
 * would show in ps).  Returns 0 or an exit status.
 */
static int
get_password(const struct auth_opts *o, const char *user, char *buf,
    size_t cap)
{
	const char *env = getenv("DISTKV_PASSWORD");
	struct termios old, quiet;
	FILE *f;
	bool ok;

	if (env != NULL && *env != '\0') {
		if (strlen(env) >= cap)
			return (cli_err(EXIT_USAGE, "DISTKV_PASSWORD is too "
			    "long"));
		strcpy(buf, env);
		return (0);
	}
	if (o->password_file != NULL) {
		if ((f = fopen(o->password_file, "r")) == NULL)
			return (cli_err(EXIT_USAGE, "--password-file %s: %s",
			    o->password_file, strerror(errno)));
		ok = read_line(f, buf, cap);
		fclose(f);
		if (!ok || *buf == '\0')
			return (cli_err(EXIT_USAGE, "--password-file %s is "
			    "empty", o->password_file));
		return (0);
	}
	if (!isatty(STDIN_FILENO))
		return (cli_err(EXIT_USAGE, "a password is needed for %s: set "
		    "DISTKV_PASSWORD or give --password-file (stdin is no "
		    "terminal to ask on)", user));
	fprintf(stderr, "Password for %s: ", user);
	fflush(stderr);
	tcgetattr(STDIN_FILENO, &old);
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)ECHO;
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
	ok = read_line(stdin, buf, cap);
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
	fputc('\n', stderr);
	if (!ok || *buf == '\0')
		return (cli_err(EXIT_USAGE, "no password given"));
	return (0);
}

int
auth_refused(distkv *c, int rc, const char *what)
{
	const char *msg = distkv_errmsg(c);

	/* a name the request refers to that does not exist ("This type
	 * does not exist") is the agent refusing the request, too */
	if (!DISTKV_IS_REFUSAL(rc) && rc != DISTKV_ENOTFOUND)
		return (cli_err(EXIT_AGENT, "%s: %s", what,
		    distkv_strerror(rc)));
	return (cli_err(rc == DISTKV_EDENIED || auth_denied(msg) ?
	    EXIT_DENIED : EXIT_REFUSED, "%s: %s", what, msg));
}

int
auth_login(distkv *c, const struct auth_opts *o)
{
	const char *method = o->method, *user = o->user;
	char pw[PASSWORD_MAX];
	int rc;

	if (method == NULL)
		method = distkv_auth_method(c);
	if (method == NULL)
		return (0);		/* no login needed, none asked for */
	if (user == NULL)
		user = getenv("DISTKV_USER");
	if (strcmp(method, "password") == 0) {
		if (user == NULL)
			return (cli_err(EXIT_DENIED, "the agent wants a "
			    "password login: give -u USER (or DISTKV_USER)"));
		if ((rc = get_password(o, user, pw, sizeof(pw))) != 0)
			return (rc);
		rc = distkv_login_password(c, user, pw);
		memset(pw, 0, sizeof(pw));
	} else
		rc = distkv_login(c, method, strcmp(method, "root") == 0 ?
		    "*" : user);
	return (rc == 0 ? 0 : auth_refused(c, rc, "login"));
}

/* ---- the auth command ---- */

struct printer {
	bool json;
	int items;
	bool error;		/* an error reply came */
	bool quiet;		/* print nothing (writes) */
};

/* Print what an auth_list / auth_get reply holds. */
static int
print_cb(void *arg, const uint8_t *msg, size_t len)
{
	struct printer *p = arg;
	msgpack_zone zone;
	msgpack_object m;
	const msgpack_object *id;
	msgpack_sbuffer out;
	msgpack_object_kv kv[32];
	msgpack_object shown;
	uint32_t n = 0;

	msgpack_zone_init(&zone, 1024);
	if (proto_unpack(msg, len, &zone, &m) != 0 ||
	    m.type != MSGPACK_OBJECT_MAP) {
		msgpack_zone_destroy(&zone);
		return (0);
	}
	if (proto_map_get(&m, "error") != NULL)
		p->error = true;
	if (p->error || p->quiet || proto_map_get(&m, "state") != NULL) {
		msgpack_zone_destroy(&zone);
		return (0);
	}
	p->items++;
	id = proto_map_get(&m, "ident");
	if (!p->json && id != NULL && id->type == MSGPACK_OBJECT_STR)
		printf("%.*s\n", (int)id->via.str.size, id->via.str.ptr);
	else {
		/* the reply without its envelope */
		for (uint32_t i = 0; i < m.via.map.size && n < 32; i++)
			if (!proto_str_eq(&m.via.map.ptr[i].key, "seq") &&
			    !proto_str_eq(&m.via.map.ptr[i].key, "tock"))
				kv[n++] = m.via.map.ptr[i];
		shown.type = MSGPACK_OBJECT_MAP;
		shown.via.map.size = n;
		shown.via.map.ptr = kv;
		msgpack_sbuffer_init(&out);
		if (mpjson_format(&out, &shown, 0) == 0)
			printf("%.*s\n", (int)out.size, out.data);
		msgpack_sbuffer_destroy(&out);
	}
	msgpack_zone_destroy(&zone);
	return (0);
}

static void
pack_str(msgpack_packer *pk, const char *s)
{
	msgpack_pack_str_with_body(pk, s, strlen(s));
}

static int
usage(void)
{
	return (cli_err(EXIT_USAGE, "usage: distkv-cli auth method "
	    "[METHOD|off] | auth user add|show|delete METHOD NAME | "
	    "auth user list [METHOD] | auth user acl METHOD NAME ACL|* | "
	    "auth user conv METHOD NAME CONV"));
}

/* auth user list|show: auth_list / auth_get, printed. */
static int
user_query(distkv *c, bool json, const char *action, const char *method,
    const char *name)
{
	static const char *const all[] = { "password", "root", "_test", "cert",
	    NULL };
	struct printer p = { json, 0, false, false };
	msgpack_sbuffer sb;
	msgpack_packer pk;
	int rc = 0;

	msgpack_sbuffer_init(&sb);
	for (size_t i = 0; rc == 0 && (method != NULL ? i == 0 :
	    all[i] != NULL); i++) {
		msgpack_sbuffer_clear(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		msgpack_pack_map(&pk, 3 + (name != NULL));
		pack_str(&pk, "action");
		pack_str(&pk, action);
		pack_str(&pk, "typ");
		pack_str(&pk, method != NULL ? method : all[i]);
		pack_str(&pk, "kind");
		pack_str(&pk, "user");
		if (name != NULL) {
			pack_str(&pk, "ident");
			pack_str(&pk, name);
		}
		rc = distkv_request(c, sb.data, sb.size, print_cb, &p);
		if (rc == 0 && p.error)
			rc = DISTKV_ESERVER;
	}
	msgpack_sbuffer_destroy(&sb);
	return (rc == 0 ? 0 : auth_refused(c, rc, action));
}

static int
user_add(distkv *c, const struct auth_opts *o, const char *method,
    const char *name)
{
	char pw[PASSWORD_MAX];
	msgpack_sbuffer sb;
	msgpack_packer pk;
	struct printer p = { false, 0, false, true };
	int rc;

	if (strcmp(method, "password") == 0) {
		if ((rc = get_password(o, name, pw, sizeof(pw))) != 0)
			return (rc);
		rc = distkv_auth_add_password(c, name, pw);
		memset(pw, 0, sizeof(pw));
		return (rc == 0 ? 0 : auth_refused(c, rc, "auth user add"));
	}
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 6);
	pack_str(&pk, "action");
	pack_str(&pk, "auth_set");
	pack_str(&pk, "typ");
	pack_str(&pk, method);
	pack_str(&pk, "kind");
	pack_str(&pk, "user");
	pack_str(&pk, "ident");
	pack_str(&pk, strcmp(method, "root") == 0 ? "*" : name);
	pack_str(&pk, "chain");
	msgpack_pack_nil(&pk);
	pack_str(&pk, "aux");
	msgpack_pack_map(&pk, 0);
	rc = distkv_request(c, sb.data, sb.size, print_cb, &p);
	msgpack_sbuffer_destroy(&sb);
	if (rc == 0 && p.error)
		rc = DISTKV_ESERVER;
	return (rc == 0 ? 0 : auth_refused(c, rc, "auth user add"));
}

/* (nil, "auth", method, "user", name[, field]): root's user is "*". */
static int
user_path(const char *method, const char *name, const char *field,
    distkv_path **out)
{
	distkv_path *p;
	int rc;

	if ((rc = distkv_path_new(&p)) != 0)
		return (cli_err(EXIT_AGENT, "%s", distkv_strerror(rc)));
	if (strcmp(method, "root") == 0)
		name = "*";
	if (distkv_path_push_nil(p) != 0 ||
	    distkv_path_push_str(p, "auth", 4) != 0 ||
	    distkv_path_push_str(p, method, strlen(method)) != 0 ||
	    distkv_path_push_str(p, "user", 4) != 0 ||
	    distkv_path_push_str(p, name, strlen(name)) != 0 ||
	    (field != NULL &&
	    distkv_path_push_str(p, field, strlen(field)) != 0)) {
		distkv_path_free(p);
		return (cli_err(EXIT_USAGE, "bad method or user name"));
	}
	*out = p;
	return (0);
}

static int
user_delete(distkv *c, const char *method, const char *name)
{
	distkv_path *p;
	int rc;

	if ((rc = user_path(method, name, NULL, &p)) != 0)
		return (rc);
	rc = distkv_delete(c, p, NULL, NULL);
	distkv_path_free(p);
	return (rc == 0 ? 0 : auth_refused(c, rc, "auth user delete"));
}

int
auth_user_bind(distkv *c, const char *method, const char *name,
    const char *field, const char *target, const char *what)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	distkv_path *p;
	int rc;

	if ((rc = user_path(method, name, field, &p)) != 0)
		return (rc);
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 1);
	pack_str(&pk, "key");
	pack_str(&pk, target);
	rc = distkv_set(c, p, sb.data, sb.size, NULL, NULL);
	msgpack_sbuffer_destroy(&sb);
	distkv_path_free(p);
	return (rc == 0 ? 0 : auth_refused(c, rc, what));
}

int
auth_command(distkv *c, const struct auth_opts *o, bool json, int argc,
    char **argv)
{
	int rc;

	if (argc >= 1 && strcmp(argv[0], "method") == 0) {
		if (argc == 1) {
			const char *m = distkv_auth_method(c);

			printf("%s\n", m != NULL ? m : "off");
			return (0);
		}
		if (argc != 2)
			return (usage());
		rc = distkv_auth_set_method(c, strcmp(argv[1], "off") == 0 ?
		    NULL : argv[1]);
		return (rc == 0 ? 0 : auth_refused(c, rc, "auth method"));
	}
	if (argc < 2 || strcmp(argv[0], "user") != 0)
		return (usage());
	if (strcmp(argv[1], "list") == 0 && argc <= 3)
		return (user_query(c, json, "auth_list", argc == 3 ? argv[2] :
		    NULL, NULL));
	if (strcmp(argv[1], "acl") == 0 && argc == 5)
		return (auth_user_bind(c, argv[2], argv[3], "acl", argv[4],
		    "auth user acl"));
	if (strcmp(argv[1], "conv") == 0 && argc == 5)
		return (xlate_user_conv(c, argv[2], argv[3], argv[4]));
	if (argc != 4)
		return (usage());
	if (strcmp(argv[1], "add") == 0)
		return (user_add(c, o, argv[2], argv[3]));
	if (strcmp(argv[1], "show") == 0)
		return (user_query(c, true, "auth_get", argv[2], argv[3]));
	if (strcmp(argv[1], "delete") == 0)
		return (user_delete(c, argv[2], argv[3]));
	return (usage());
}
