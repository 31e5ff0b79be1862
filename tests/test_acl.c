/*
 * test_acl: ACLs (spec §4.7, issue "who may do what"): the reference's
 * test_feature_acl scenario, every letter on every action, wildcards,
 * get_tree/watch filtering, changes applied to open connections, the shm
 * region withheld, malformed entries refused, test_acl's answers.
 */
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "distkv.h"
#include "harness.h"
#include "rawclient.h"

static struct harness_agent ag;
static struct rc_conn *admin;
/* one counter for every connection: each sees its seqs grow */
static int64_t seqno = 10;

static void
start(const char *extra)
{
	harness_init(&ag);
	if (extra != NULL)
		RC_START(&ag, "--standalone", "--node", "n1", "--init", "1",
		    extra);
	else
		RC_START(&ag, "--standalone", "--node", "n1", "--init", "1");
	admin = rc_open(ag.socket);
	cr_assert_not_null(admin);
}

static void
setup(void)
{
	start(NULL);
}

static void
teardown(void)
{
	rc_close(admin);
	harness_cleanup(&ag);
}

TestSuite(acl, .init = setup, .fini = teardown, .timeout = 60);

/* An admin request that must succeed (no error field). */
static void
admin_ok(const char *req)
{
	char buf[1024];
	struct rc_msg *m;

	snprintf(buf, sizeof(buf), "{seq:%lld, %s}", (long long)++seqno, req);
	m = rc_call(admin, "%s", buf);
	cr_assert_not_null(m, "no reply to %s", req);
	cr_assert_not(rc_has(&m->obj, "error"), "%s: %s", req,
	    rc_show(&m->obj));
}

/* ACL entry (nil, acl, NAME, path...) = letters; path in notation. */
static void
acl_set(const char *name, const char *path, const char *letters)
{
	char buf[512];

	snprintf(buf, sizeof(buf), "action:'set_internal', path:['acl', "
	    "'%s'%s%s], value:'%s'", name, path[0] ? ", " : "", path, letters);
	admin_ok(buf);
}

/* A _test user bound to ACL acl (NULL: none), auth switched on. */
static void
user_add(const char *name, const char *acl)
{
	char buf[512];

	snprintf(buf, sizeof(buf), "action:'auth_set', typ:'_test', "
	    "kind:'user', ident:'%s', chain:nil, aux:{}", name);
	admin_ok(buf);
	if (acl != NULL) {
		snprintf(buf, sizeof(buf), "action:'set_internal', "
		    "path:['auth', '_test', 'user', '%s', 'acl'], "
		    "value:{key:'%s'}", name, acl);
		admin_ok(buf);
	}
}

static void
auth_on(void)
{
	admin_ok("action:'set_auth_typ', typ:'_test'");
}

static struct rc_conn *
login(const char *name)
{
	struct rc_conn *c = rc_open(ag.socket);
	struct rc_msg **v;
	size_t n;

	cr_assert_not_null(c);
	rc_send(c, "{seq:1, action:'auth', typ:'_test', ident:'%s', data:{}}",
	    name);
	v = rc_collect(c, 1, &n, RC_TIMEOUT);
	cr_assert_eq(n, 2, "login as %s failed: %s", name,
	    n > 1 ? rc_show(&v[1]->obj) : "?");
	rc_msgs_free(v, n);
	return c;
}

/* A request on c: returns its reply. */
static struct rc_msg *
call(struct rc_conn *c, const char *req)
{
	char buf[1024];

	snprintf(buf, sizeof(buf), "{seq:%lld, %s}", (long long)++seqno, req);
	return rc_call(c, "%s", buf);
}

static void
ok(struct rc_conn *c, const char *req)
{
	struct rc_msg *m = call(c, req);

	cr_assert_not_null(m, "no reply to %s", req);
	cr_assert_not(rc_has(&m->obj, "error"), "%s refused: %s", req,
	    rc_show(&m->obj));
}

/* Refused, and the error names the letter.  A multi-reply action
 * (get_tree, watch) frames its error with start and end. */
static void
denied(struct rc_conn *c, const char *req, char letter)
{
	struct rc_msg *m = call(c, req);
	char want[16];
	const msgpack_object *e;

	cr_assert_not_null(m, "no reply to %s", req);
	if (rc_has(&m->obj, "state")) {
		m = rc_recv_seq(c, seqno, RC_TIMEOUT);
		cr_assert_not_null(m, "no reply to %s", req);
		RC_ASSERT_MATCH(rc_recv_seq(c, seqno, RC_TIMEOUT),
		    "{seq:_, tock:_, state:'end'}");
	}
	e = rc_get(&m->obj, "error");
	cr_assert(e != NULL && e->type == MSGPACK_OBJECT_STR,
	    "%s was allowed: %s", req, rc_show(&m->obj));
	snprintf(want, sizeof(want), "'%c'", letter);
	cr_assert(memmem(e->via.str.ptr, e->via.str.size, want, 3) != NULL &&
	    memmem(e->via.str.ptr, e->via.str.size, "Access denied", 13) !=
	    NULL, "%s: want a refusal naming %s, got %s", req, want,
	    rc_show(&m->obj));
}

/* The admin's view of a value, in notation. */
static const char *
value_of(const char *path)
{
	char buf[256];
	struct rc_msg *m;

	snprintf(buf, sizeof(buf), "action:'get_value', path:%s", path);
	m = call(admin, buf);
	cr_assert_not_null(m);
	return rc_show(rc_get(&m->obj, "value"));
}

/* The reference's test_feature_acl::test_81_basic, step by step. */
Test(acl, reference_scenario)
{
	struct rc_conn *c;

	acl_set("foo", "'one'", "rxnc");
	acl_set("foo", "'one', 'two'", "rc");
	user_add("std", NULL);
	user_add("aclix", "foo");
	auth_on();
	c = login("aclix");
	ok(c, "action:'set_value', path:['one'], value:10");
	ok(c, "action:'set_value', path:['one', 'two'], value:11");
	denied(c, "action:'set_value', path:['one', 'two', 'three'], "
	    "value:12", 'n');
	denied(c, "action:'set_value', path:['one', 'two'], value:22", 'w');
	/* a refusal changes nothing */
	cr_assert_str_eq(value_of("['one', 'two']"), "11");
	cr_assert_str_eq(value_of("['one', 'two', 'three']"), "nil");
	/* and reads back what it wrote */
	RC_ASSERT_MATCH(call(c, "action:'get_value', path:['one', 'two']"),
	    "{seq:_, value:11, tock:_}");
	rc_close(c);
	/* the unbound user is unrestricted */
	c = login("std");
	ok(c, "action:'set_value', path:['one', 'two'], value:22");
	ok(c, "action:'get_internal', path:['acl', 'foo', 'one']");
	rc_close(c);
}

/* Each letter, on the actions that need it: allowed with it, refused
 * without it. */
Test(acl, every_letter_on_every_action)
{
	static const struct {
		char letter;
		const char *req;
	} cases[] = {
		{ 'r', "action:'get_value', path:['t']" },
		{ 'w', "action:'set_value', path:['t'], value:5" },
		{ 'c', "action:'set_value', path:['t', 'new'], value:5" },
		{ 'd', "action:'delete_value', path:['t', 'k']" },
		{ 'x', "action:'get_value', path:['t', 'k']" },
		{ 'n', "action:'set_value', path:['t', 'fresh', 'v'], value:1" },
		{ 'e', "action:'get_tree', path:['t']" },
		{ 'x', "action:'watch', path:['t']" },
		{ 'x', "action:'root', path:['t']" },
		{ 'd', "action:'delete_tree', path:['t', 'k']" },
	};
	static const char all[] = "arwcdxen";

	admin_ok("action:'set_value', path:['t'], value:1");
	user_add("u", "lim");
	auth_on();
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char without[16], *o = without;
		struct rc_conn *c;
		bool ok_on_t = strchr("rwe", cases[i].letter) != NULL ||
		    strstr(cases[i].req, "'root'") != NULL ||
		    strstr(cases[i].req, "'watch'") != NULL;

		for (const char *l = all; *l; l++)
			if (*l != cases[i].letter)
				*o++ = *l;
		*o = 0;
		admin_ok("action:'set_value', path:['t', 'k'], value:2");
		admin_ok("action:'delete_value', path:['t', 'new']");
		/* the letter is asked at 't' itself, or at 't' for its
		 * children (x, n) and below it (c, d at the child) */
		acl_set("lim", "", "x");
		acl_set("lim", "'t'", ok_on_t ? without : all);
		acl_set("lim", "'t', '+'", ok_on_t ? all : without);
		if (cases[i].letter == 'x' || cases[i].letter == 'n') {
			acl_set("lim", "'t'", without);
			acl_set("lim", "'t', '+'", all);
		}
		c = login("u");
		denied(c, cases[i].req, cases[i].letter);
		rc_close(c);
		acl_set("lim", "'t'", all);
		acl_set("lim", "'t', '+'", all);
		c = login("u");
		if (strstr(cases[i].req, "get_tree") != NULL ||
		    strstr(cases[i].req, "'watch'") != NULL) {
			struct rc_msg *m = call(c, cases[i].req);

			RC_ASSERT_MATCH(m, "{seq:_, tock:_, state:'start'}");
		} else
			ok(c, cases[i].req);
		rc_close(c);
	}
}

/* '+' is one level, '#' one or more; literal before '+' before '#'. */
Test(acl, wildcards_and_specificity)
{
	struct rc_conn *c;

	acl_set("w", "'a', '+', 'v'", "rwc");
	acl_set("w", "'a', 'lit', 'v'", "r");
	acl_set("w", "'b', '#'", "rwcxn");
	acl_set("w", "'b', '#', 'ro'", "r");
	user_add("u", "w");
	auth_on();
	admin_ok("action:'set_value', path:['b', 'q', 'r', 'ro'], value:0");
	c = login("u");
	ok(c, "action:'set_value', path:['a', 'any', 'v'], value:1");
	denied(c, "action:'set_value', path:['a', 'lit', 'v'], value:1", 'c');
	ok(c, "action:'set_value', path:['b', 'x'], value:1");
	ok(c, "action:'set_value', path:['b', 'x', 'y', 'z'], value:1");
	/* '#' then a literal matches at any depth below */
	denied(c, "action:'set_value', path:['b', 'q', 'r', 'ro'], value:1",
	    'w');
	ok(c, "action:'get_value', path:['b', 'q', 'r', 'ro']");
	rc_close(c);
}

/* get_tree and watch report what the ACL lets one see. */
Test(acl, get_tree_and_watch_filtered)
{
	struct rc_conn *c;
	struct rc_msg **v;
	size_t n;
	char seen[4096] = "";
	struct rc_paths L = { .n = 0 };

	admin_ok("action:'set_value', path:['d', 'pub'], value:1");
	admin_ok("action:'set_value', path:['d', 'secret'], value:2");
	admin_ok("action:'set_value', path:['d', 'hid'], value:3");
	admin_ok("action:'set_value', path:['d', 'hid', 'sub'], value:4");
	admin_ok("action:'set_value', path:['d', 'noread'], value:5");
	admin_ok("action:'set_value', path:['d', 'noread', 'below'], value:6");
	acl_set("f", "'d'", "xe");
	acl_set("f", "'d', '+'", "rxe");
	acl_set("f", "'d', 'secret'", "xe");	/* no r: value withheld */
	acl_set("f", "'d', 'hid'", "rx");	/* no e: nothing below */
	acl_set("f", "'d', 'noread'", "re");	/* no x: no values below */
	acl_set("f", "'d', 'noread', '+'", "rxe");
	user_add("u", "f");
	auth_on();
	c = login("u");
	rc_send(c, "{seq:1050, action:'get_tree', path:['d']}");
	v = rc_collect(c, 1050, &n, RC_TIMEOUT);
	for (size_t i = 1; i + 1 < n; i++) {
		const char *p = rc_lengthen(&L, &v[i]->obj);
		const msgpack_object *val = rc_get(&v[i]->obj, "value");

		snprintf(seen + strlen(seen), sizeof(seen) - strlen(seen),
		    "%s=%s ", p, val ? rc_show(val) : "-");
	}
	rc_msgs_free(v, n);
	cr_assert_str_eq(seen, "['pub']=1 ['secret']=- ['hid']=3 "
	    "['noread']=5 ['noread', 'below']=- ", "got %s", seen);

	/* a watch shows the same */
	rc_send(c, "{seq:1051, action:'watch', path:['d']}");
	RC_ASSERT_MATCH(rc_recv_seq(c, 1051, RC_TIMEOUT), "{seq:1051, "
	    "tock:_, state:'start'}");
	admin_ok("action:'set_value', path:['d', 'hid', 'sub'], value:7");
	admin_ok("action:'set_value', path:['d', 'secret'], value:8");
	admin_ok("action:'set_value', path:['d', 'pub'], value:9");
	RC_ASSERT_MATCH(rc_recv_seq(c, 1051, RC_TIMEOUT), "{seq:1051, "
	    "path:['secret'], depth:0, tock:_}");
	RC_ASSERT_MATCH(rc_recv_seq(c, 1051, RC_TIMEOUT), "{seq:1051, "
	    "path:['pub'], depth:0, value:9, tock:_}");
	rc_close(c);
}

/* ACL contents apply at once, to connections already open. */
Test(acl, change_applies_to_open_connection)
{
	struct rc_conn *c;

	acl_set("g", "'k'", "rwc");
	user_add("u", "g");
	auth_on();
	c = login("u");
	ok(c, "action:'set_value', path:['k'], value:1");
	acl_set("g", "'k'", "r");
	denied(c, "action:'set_value', path:['k'], value:2", 'w');
	ok(c, "action:'get_value', path:['k']");
	admin_ok("action:'delete_internal', path:['acl', 'g', 'k']");
	/* no entry matches now: allowed, as the reference does */
	ok(c, "action:'set_value', path:['k'], value:3");
	rc_close(c);
}

/* The region holds everything: a restricted login does not get it. */
Test(acl, shm_withheld_from_restricted_users)
{
	struct rc_conn *c;

	acl_set("s", "'k'", "r");
	user_add("u", "s");
	user_add("boss", NULL);
	auth_on();
	c = rc_open(ag.socket);
	/* before a login nobody knows the ACL: no region in the greeting */
	cr_assert_not(rc_has(&c->greeting->obj, "shm"));
	rc_close(c);
	c = login("u");
	RC_ASSERT_MATCH(call(c, "action:'get_shm'"), "{seq:_, error:_, "
	    "tock:_}");
	rc_close(c);
	c = login("boss");
	RC_ASSERT_MATCH(call(c, "action:'get_shm'"), "{seq:_, shm:_, tock:_}");
	rc_close(c);
}

/* Only unrestricted users reach the meta root and the agent's controls. */
Test(acl, admin_actions_need_unrestricted_user)
{
	static const char *reqs[] = {
		"action:'get_internal', path:['acl']",
		"action:'set_internal', path:['acl', 'r', 'x'], value:'r'",
		"action:'delete_internal', path:['acl', 'r']",
		"action:'save', filename:'x'",
		"action:'log', filename:'x'",
		"action:'stop'",
		"action:'serfsend', type:'x', data:1",
		"action:'dump'",
		"action:'get_events', node:'n1'",
		"action:'auth_list', typ:'_test', kind:'user'",
		"action:'set_auth_typ', typ:nil",
	};
	struct rc_conn *c;
	struct rc_msg *m;

	acl_set("r", "", "rwcdxen");
	user_add("u", "r");
	auth_on();
	c = login("u");
	for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
		m = call(c, reqs[i]);
		if (m != NULL && rc_has(&m->obj, "state"))
			m = rc_recv_seq(c, seqno, RC_TIMEOUT);	/* framed */
		cr_assert(m != NULL && rc_str_prefix(&m->obj, "error",
		    "Access denied"), "%s: %s", reqs[i],
		    m ? rc_show(&m->obj) : "no reply");
	}
	m = call(c, "action:'get_value', path:[nil, 'auth']");
	cr_assert(m != NULL && rc_str_prefix(&m->obj, "error",
	    "Access denied"), "nil path: %s", m ? rc_show(&m->obj) :
	    "no reply");
	ok(c, "action:'set_value', path:['fine'], value:1");
	rc_close(c);
}

/* Malformed ACL entries are refused when written. */
Test(acl, malformed_entries_refused)
{
	static const char *bad[] = {
		"path:['acl', 'm', 'k'], value:5",
		"path:['acl', 'm', 'k'], value:'rwq'",
		"path:['acl', 'm', 'k'], value:'W'",
		"path:['acl', 'm', 'a#'], value:'r'",
		"path:['acl', 'm', 'x+'], value:'r'",
		"path:['acl', 'm', '#', '#'], value:'r'",
		"path:['acl'], value:'r'",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char buf[256];
		struct rc_msg *m;

		snprintf(buf, sizeof(buf), "action:'set_internal', %s",
		    bad[i]);
		m = call(admin, buf);
		cr_assert(m != NULL && rc_has(&m->obj, "error"),
		    "%s accepted: %s", bad[i], m ? rc_show(&m->obj) : "-");
	}
	/* the same through the meta root path of set_value */
	cr_assert(rc_has(&call(admin, "action:'set_value', path:[nil, 'acl', "
	    "'m', 'k'], value:'zz'")->obj, "error"));
	cr_assert_str_eq(value_of("[nil, 'acl', 'm', 'k']"), "nil");
	admin_ok("action:'set_internal', path:['acl', 'm', '#', 'k'], "
	    "value:'rx'");
	admin_ok("action:'set_internal', path:['acl', 'm', 'k'], value:''");
}

/* test_acl answers as the reference does. */
Test(acl, test_acl_answers)
{
	struct rc_conn *c;

	acl_set("t", "'p'", "arx");
	acl_set("t", "'q'", "rx");
	acl_set("o", "'p'", "rwc");
	user_add("u", "t");
	auth_on();
	/* unrestricted: true, or whether the named ACL allows the mode */
	RC_ASSERT_MATCH(call(admin, "action:'test_acl', path:['p']"),
	    "{seq:_, access:true, tock:_}");
	RC_ASSERT_MATCH(call(admin, "action:'test_acl', path:['p'], "
	    "mode:'w', acl:'o'"), "{seq:_, access:true, tock:_}");
	RC_ASSERT_MATCH(call(admin, "action:'test_acl', path:['p'], "
	    "mode:'d', acl:'o'"), "{seq:_, access:false, tock:_}");
	c = login("u");
	/* own ACL: the letters where 'a' is allowed, false where not */
	RC_ASSERT_MATCH(call(c, "action:'test_acl', path:['p']"),
	    "{seq:_, access:'arx', tock:_}");
	RC_ASSERT_MATCH(call(c, "action:'test_acl', path:['q']"),
	    "{seq:_, access:false, tock:_}");
	/* another ACL: whether it allows the mode; its letters only where
	 * it allows 'a' itself */
	RC_ASSERT_MATCH(call(c, "action:'test_acl', path:['p'], mode:'r', "
	    "acl:'o'"), "{seq:_, access:true, tock:_}");
	RC_ASSERT_MATCH(call(c, "action:'test_acl', path:['p'], mode:'d', "
	    "acl:'o'"), "{seq:_, access:false, tock:_}");
	RC_ASSERT_MATCH(call(c, "action:'test_acl', path:['p'], mode:'x', "
	    "acl:'t'"), "{seq:_, access:'arx', tock:_}");
	RC_ASSERT_MATCH(call(c, "action:'test_acl', path:['p'], mode:'q'"),
	    "{seq:_, error:_, tock:_}");
	rc_close(c);
}

/* delete_tree deletes only what the ACL lets one delete. */
Test(acl, delete_tree_per_entry)
{
	struct rc_conn *c;

	admin_ok("action:'set_value', path:['z'], value:1");
	admin_ok("action:'set_value', path:['z', 'a'], value:2");
	admin_ok("action:'set_value', path:['z', 'keep'], value:3");
	acl_set("dt", "'z'", "dxe");
	acl_set("dt", "'z', '+'", "dxe");
	acl_set("dt", "'z', 'keep'", "xe");
	user_add("u", "dt");
	auth_on();
	c = login("u");
	RC_ASSERT_MATCH(call(c, "action:'delete_tree', path:['z']"),
	    "{seq:_, changed:2, tock:_}");
	rc_close(c);
	cr_assert_str_eq(value_of("['z']"), "nil");
	cr_assert_str_eq(value_of("['z', 'a']"), "nil");
	cr_assert_str_eq(value_of("['z', 'keep']"), "3");
}

static void
setup_deny(void)
{
	start("--acl-default-deny");
}

TestSuite(acl_deny, .init = setup_deny, .fini = teardown, .timeout = 60);

/* --acl-default-deny: where nothing matches, refuse. */
Test(acl_deny, nothing_matches_is_refused)
{
	struct rc_conn *c;

	acl_set("dd", "'open'", "rwcx");
	user_add("u", "dd");
	auth_on();
	c = login("u");
	/* the ACL's top has no value: nothing matches at the root itself */
	denied(c, "action:'set_value', path:['open'], value:1", 'n');
	acl_set("dd", "", "xn");
	ok(c, "action:'set_value', path:['open'], value:1");
	denied(c, "action:'set_value', path:['other'], value:1", 'c');
	rc_close(c);
}

/* ---- through libdistkv and distkv-cli ---- */

/* Run distkv-cli with args (NULL-terminated) as env says; stdout into
 * out; returns the exit status (fails the test after 20 s). */
static int
cli(char *out, size_t cap, const char *user, ...)
{
	const char *argv[24];
	int n = 0, fds[2], status;
	size_t got = 0;
	long long deadline = harness_now_ms() + 20000;
	va_list ap;
	pid_t pid;

	argv[n++] = harness_bin("distkv-cli");
	argv[n++] = "--socket";
	argv[n++] = ag.socket;
	if (user != NULL) {
		argv[n++] = "-a";
		argv[n++] = "_test";
		argv[n++] = "-u";
		argv[n++] = user;
	}
	va_start(ap, user);
	for (const char *a; n < 23 && (a = va_arg(ap, const char *)) != NULL;)
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;
	cr_assert(pipe(fds) == 0);
	if ((pid = fork()) == 0) {
		dup2(fds[1], 1);
		close(fds[0]);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(fds[1]);
	for (;;) {
		struct pollfd pf = { fds[0], POLLIN, 0 };
		long long left = deadline - harness_now_ms();
		ssize_t r;

		cr_assert(left > 0, "distkv-cli %s did not finish", argv[7]);
		if (poll(&pf, 1, (int)left) <= 0)
			continue;
		r = read(fds[0], out + got, cap - 1 - got);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	out[got] = 0;
	close(fds[0]);
	cr_assert(waitpid(pid, &status, 0) == pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

Test(acl, cli_commands)
{
	char out[4096];

	cr_assert_eq(cli(out, sizeof(out), NULL, "acl", "set", "web", "/",
	    "xn", NULL), 0);
	cr_assert_eq(cli(out, sizeof(out), NULL, "acl", "set", "web",
	    "svc/web/#", "rwcdxen", NULL), 0);
	cr_assert_eq(cli(out, sizeof(out), NULL, "acl", "set", "web", "svc",
	    "x", NULL), 0);
	/* refused when written: exit 4, nothing stored */
	cr_assert_eq(cli(out, sizeof(out), NULL, "acl", "set", "web", "x",
	    "rq", NULL), 4);
	cr_assert_eq(cli(out, sizeof(out), NULL, "acl", "list", "web", NULL),
	    0);
	cr_assert_str_eq(out, "web / xn\nweb svc x\nweb svc/web/# rwcdxen\n");
	cr_assert_eq(cli(out, sizeof(out), NULL, "acl", "get", "web", "svc",
	    NULL), 0);
	cr_assert_str_eq(out, "x\n");
	cr_assert_eq(cli(out, sizeof(out), NULL, "acl", "get", "web", "nope",
	    NULL), 1);
	cr_assert_eq(cli(out, sizeof(out), NULL, "auth", "user", "add",
	    "_test", "joe", NULL), 0);
	cr_assert_eq(cli(out, sizeof(out), NULL, "auth", "user", "acl",
	    "_test", "joe", "web", NULL), 0);
	cr_assert_eq(cli(out, sizeof(out), NULL, "auth", "user", "add",
	    "_test", "root2", NULL), 0);
	cr_assert_eq(cli(out, sizeof(out), NULL, "set", "svc/web/port", "1",
	    NULL), 0);
	cr_assert_eq(cli(out, sizeof(out), NULL, "auth", "method", "_test",
	    NULL), 0);
	cr_assert_eq(cli(out, sizeof(out), "joe", "set", "svc/web/port", "80",
	    NULL), 0);
	/* a refusal exits 6, "not allowed" */
	cr_assert_eq(cli(out, sizeof(out), "joe", "set", "svc/db/port", "1",
	    NULL), 6);
	cr_assert_eq(cli(out, sizeof(out), "joe", "get", "svc/web/port",
	    NULL), 0);
	cr_assert_str_eq(out, "80\n");
	cr_assert_eq(cli(out, sizeof(out), "root2", "acl", "test", "--acl",
	    "web", "svc/db", "r", NULL), 6);
	cr_assert_str_eq(out, "false\n");
	cr_assert_eq(cli(out, sizeof(out), "root2", "acl", "test", "--acl",
	    "web", "svc/web/a", "W", NULL), 0);
	cr_assert_str_eq(out, "true\n");
	cr_assert_eq(cli(out, sizeof(out), "joe", "acl", "list", NULL), 6);
	cr_assert_eq(cli(out, sizeof(out), "root2", "acl", "set", "web",
	    "svc", "xn", NULL), 0);
	cr_assert_eq(cli(out, sizeof(out), "root2", "acl", "delete", "web",
	    "svc/web/#", NULL), 0);
	/* no entry below svc matches: allowed, the reference's default */
	cr_assert_eq(cli(out, sizeof(out), "joe", "set", "svc/db/port", "1",
	    NULL), 0);
}

/* libdistkv: a restricted login gives up the region and reads over the
 * socket, through the ACL. */
Test(acl, library_reads_through_the_acl)
{
	distkv *c;
	distkv_path *p;
	struct distkv_entry e;

	admin_ok("action:'set_value', path:['k'], value:1");
	admin_ok("action:'set_value', path:['h'], value:2");
	acl_set("lib", "'k'", "r");
	acl_set("lib", "'h'", "x");
	user_add("u", "lib");
	user_add("boss", NULL);
	auth_on();
	cr_assert_eq(distkv_connect(ag.socket, &c), 0);
	cr_assert_null(distkv_shm_of(c));
	cr_assert_eq(distkv_login(c, "_test", "boss"), 0);
	cr_assert_not_null(distkv_shm_of(c), "an unrestricted login maps "
	    "the region");
	distkv_close(c);
	cr_assert_eq(distkv_connect(ag.socket, &c), 0);
	cr_assert_eq(distkv_login(c, "_test", "u"), 0);
	cr_assert_null(distkv_shm_of(c));
	cr_assert_eq(distkv_path_parse("k", &p), 0);
	memset(&e, 0, sizeof(e));
	cr_assert_eq(distkv_get(c, p, 0, &e), 0);
	distkv_entry_clear(&e);
	distkv_path_free(p);
	cr_assert_eq(distkv_path_parse("h", &p), 0);
	cr_assert_eq(distkv_get(c, p, 0, &e), DISTKV_EDENIED);
	cr_assert(strstr(distkv_errmsg(c), "Access denied") != NULL, "%s",
	    distkv_errmsg(c));
	distkv_entry_clear(&e);
	distkv_path_free(p);
	distkv_close(c);
}
