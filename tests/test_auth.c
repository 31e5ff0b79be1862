/* End-to-end tests of login (spec §2.3, §2.4, §4) with the methods that
 * need no secret: root and _test. */
#include <criterion/criterion.h>

#include "harness.h"
#include "rawclient.h"

static struct harness_agent ag;

static void
setup(void)
{
	harness_init(&ag);
	RC_START(&ag, "--standalone", "--node", "n1", "--init", "42");
}

static void
teardown(void)
{
	harness_cleanup(&ag);
}

TestSuite(auth, .init = setup, .fini = teardown, .timeout = 30);

/* The root method: configure, switch on, gate, log in. */
Test(auth, root_method_gates_new_connections)
{
	struct rc_conn *admin = rc_open(ag.socket), *c;
	struct rc_msg **v;
	size_t n;

	cr_assert_not_null(admin);
	cr_assert_not(rc_has(&admin->greeting->obj, "auth"));
	/* switching to a method without users is refused */
	RC_ASSERT_MATCH(rc_call(admin, "{seq:1, action:'set_auth_typ', "
	    "typ:'root'}"), "{seq:1, error:\"You didn't configure this "
	    "method yet: root\", tock:_}");
	RC_ASSERT_MATCH(rc_call(admin, "{seq:2, action:'auth_set', typ:'root',"
	    " kind:'user', ident:'*', chain:nil, aux:{}, data:{}}"),
	    "{seq:2, changed:true, chain:{node:'n1', tick:2, prev:nil}, "
	    "tock:_}");
	/* chain: nil again: the record exists */
	RC_ASSERT_MATCH(rc_call(admin, "{seq:3, action:'auth_set', typ:'root',"
	    " kind:'user', ident:'*', chain:nil, aux:{}}"),
	    "{seq:3, error:'This entry already exists', tock:_}");
	/* configured but not active yet: still open */
	c = rc_open(ag.socket);
	RC_ASSERT_MATCH(c->greeting, "{seq:0, shm:_, node:'n1', version:_, tick:2, "
	    "tock:_, auth:[nil, 'root']}");
	RC_ASSERT_MATCH(rc_call(c, "{seq:1, action:'get_value', path:[]}"),
	    "{seq:1, value:42, tock:_}");
	rc_close(c);

	RC_ASSERT_MATCH(rc_call(admin, "{seq:4, action:'set_auth_typ', "
	    "typ:'root'}"), "{seq:4, changed:true, prev:nil, chain:_, tock:_}");
	/* the admin connection stays logged in (spec §4.6) */
	RC_ASSERT_MATCH(rc_call(admin, "{seq:5, action:'get_value', path:[]}"),
	    "{seq:5, value:42, tock:_}");

	c = rc_open(ag.socket);
	RC_ASSERT_MATCH(c->greeting, "{seq:0, node:'n1', version:_, tick:3, "
	    "tock:_, auth:['root']}");
	{
		struct rc_msg *m = rc_call(c,
		    "{seq:1, action:'set_value', path:['x'], value:1}");

		cr_assert_not_null(m);
		cr_assert(rc_str_prefix(&m->obj, "error", "NoAuthError"),
		    "got %s", rc_show(&m->obj));
	}
	/* wrong method */
	rc_send(c, "{seq:2, action:'auth', typ:'_test', ident:'*'}");
	v = rc_collect(c, 2, &n, RC_TIMEOUT);
	cr_assert_eq(n, 3);
	RC_ASSERT_MATCH(v[1], "{seq:2, error:'Wrong auth type: root', tock:_}");
	RC_ASSERT_MATCH(v[2], "{seq:2, state:'end', tock:_}");
	rc_msgs_free(v, n);
	/* the root method takes no data */
	rc_send(c, "{seq:3, action:'auth', typ:'root', ident:'*', data:{a:1}}");
	v = rc_collect(c, 3, &n, RC_TIMEOUT);
	cr_assert_eq(n, 3);
	cr_assert(rc_str_prefix(&v[1]->obj, "error", "AuthFailedError"));
	rc_msgs_free(v, n);
	/* right: start, end, then everything works */
	rc_send(c, "{seq:4, action:'auth', typ:'root', ident:'*', data:{}}");
	v = rc_collect(c, 4, &n, RC_TIMEOUT);
	cr_assert_eq(n, 2);
	RC_ASSERT_MATCH(v[0], "{seq:4, state:'start', tock:_}");
	RC_ASSERT_MATCH(v[1], "{seq:4, state:'end', tock:_}");
	rc_msgs_free(v, n);
	RC_ASSERT_MATCH(rc_call(c, "{seq:5, action:'set_value', path:['x'], "
	    "value:1, nchain:0}"), "{seq:5, changed:true, prev:nil, tock:_}");
	rc_close(c);
	rc_close(admin);
}

Test(auth, test_method_users_list_get_and_switch_back_off)
{
	struct rc_conn *admin = rc_open(ag.socket), *c;
	struct rc_msg **v;
	size_t n;

	RC_ASSERT_MATCH(rc_call(admin, "{seq:1, action:'auth_set', "
	    "typ:'_test', kind:'user', ident:'fubar', chain:nil, "
	    "aux:{conv:'x'}}"), "{seq:1, changed:true, chain:_, tock:_}");
	RC_ASSERT_MATCH(rc_call(admin, "{seq:2, action:'auth_set', "
	    "typ:'_test', kind:'user', ident:'joe', chain:nil}"),
	    "{seq:2, changed:true, chain:_, tock:_}");
	rc_send(admin, "{seq:3, action:'auth_list', typ:'_test', kind:'user'}");
	v = rc_collect(admin, 3, &n, RC_TIMEOUT);
	cr_assert_eq(n, 4);
	RC_ASSERT_MATCH(v[1], "{seq:3, typ:'_test', kind:'user', "
	    "ident:'fubar', tock:_}");
	RC_ASSERT_MATCH(v[2], "{seq:3, typ:'_test', kind:'user', "
	    "ident:'joe', tock:_}");
	rc_msgs_free(v, n);
	RC_ASSERT_MATCH(rc_call(admin, "{seq:4, action:'auth_list', "
	    "typ:'_test', ident:'joe', nchain:1}"), "{seq:4, typ:'_test', "
	    "kind:'user', ident:'joe', chain:{node:'n1', tick:3, prev:nil}, "
	    "tock:_}");
	RC_ASSERT_MATCH(rc_call(admin, "{seq:5, action:'auth_get', "
	    "typ:'_test', ident:'fubar'}"), "{seq:5, conv:'x', "
	    "chain:{node:'n1', tick:2, prev:nil}, tock:_}");
	RC_ASSERT_MATCH(rc_call(admin, "{seq:6, action:'auth_get', "
	    "typ:'_test', ident:'nobody'}"),
	    "{seq:6, error:'No such user', tock:_}");
	RC_ASSERT_MATCH(rc_call(admin, "{seq:7, action:'set_auth_typ', "
	    "typ:'_test'}"), "{seq:7, changed:true, prev:nil, chain:_, "
	    "tock:_}");

	c = rc_open(ag.socket);
	rc_send(c, "{seq:1, action:'auth', typ:'_test', ident:'nobody'}");
	v = rc_collect(c, 1, &n, RC_TIMEOUT);
	cr_assert_eq(n, 3);
	RC_ASSERT_MATCH(v[1], "{seq:1, error:'No such user', tock:_}");
	rc_msgs_free(v, n);
	rc_send(c, "{seq:2, action:'auth', typ:'_test', ident:'fubar'}");
	v = rc_collect(c, 2, &n, RC_TIMEOUT);
	cr_assert_eq(n, 2);
	rc_msgs_free(v, n);
	RC_ASSERT_MATCH(rc_call(c, "{seq:3, action:'get_value', path:[]}"),
	    "{seq:3, value:42, tock:_}");
	rc_close(c);

	/* typ nil switches login off again */
	RC_ASSERT_MATCH(rc_call(admin, "{seq:8, action:'set_auth_typ', "
	    "typ:nil}"), "{seq:8, changed:true, prev:{current:'_test'}, "
	    "chain:_, tock:_}");
	c = rc_open(ag.socket);
	RC_ASSERT_MATCH(c->greeting, "{seq:0, shm:_, node:'n1', version:_, tick:_, "
	    "tock:_, auth:[nil, '_test']}");
	RC_ASSERT_MATCH(rc_call(c, "{seq:1, action:'get_value', path:[]}"),
	    "{seq:1, value:42, tock:_}");
	rc_close(c);
	rc_close(admin);
}

/* diffie_hellman refuses what is no key, clearly, and only once. */
Test(auth, diffie_hellman_bad_input)
{
	struct rc_conn *c = rc_open(ag.socket);
	struct rc_msg *m;

	m = rc_call(c, "{seq:1, action:'diffie_hellman', pubkey:'x', "
	    "length:1024}");
	cr_assert(rc_str_prefix(&m->obj, "error", "pubkey must be a byte "
	    "string"), "%s", rc_show(&m->obj));
	rc_msg_free(m);
	/* 1 and 2 are out of range */
	m = rc_call(c, "{seq:2, action:'diffie_hellman', pubkey:b'\x02', "
	    "length:16}");
	cr_assert(rc_str_prefix(&m->obj, "error", "Bad pubkey"), "%s",
	    rc_show(&m->obj));
	rc_msg_free(m);
	/* 31 is no square mod p: outside the prime-order subgroup */
	m = rc_call(c, "{seq:3, action:'diffie_hellman', pubkey:b'\x1f', "
	    "length:16}");
	cr_assert(rc_str_prefix(&m->obj, "error", "Bad pubkey"), "%s",
	    rc_show(&m->obj));
	rc_msg_free(m);
	/* a password user without a key exchange */
	m = rc_call(c, "{seq:4, action:'auth_set', typ:'password', "
	    "kind:'user', ident:'joe', password:b'x', chain:nil}");
	cr_assert(rc_str_prefix(&m->obj, "error", "No shared key yet"), "%s",
	    rc_show(&m->obj));
	rc_msg_free(m);
	rc_close(c);
}

/* The _test method's chatty client-streamed dialogs, exactly (§4.5). */
Test(auth, test_method_dialogs)
{
	struct rc_conn *c = rc_open(ag.socket);
	struct rc_msg *m;

	cr_assert_not_null(c);
	rc_send(c, "{seq:5, action:'auth_set', state:'start', typ:'_test', "
	    "kind:'user'}");
	RC_ASSERT_MATCH(rc_recv_seq(c, 5, RC_TIMEOUT), "{seq:5, state:'start', "
	    "tock:_}");
	RC_ASSERT_MATCH(rc_recv_seq(c, 5, RC_TIMEOUT), "{seq:5, "
	    "step:'GiveName', tock:_}");
	rc_send(c, "{seq:5, step:'HasName', name:'fubar', chain:nil, aux:{}}");
	RC_ASSERT_MATCH(rc_recv_seq(c, 5, RC_TIMEOUT), "{seq:5, changed:true, "
	    "chain:{node:'n1', tick:2, prev:nil}, tock:_}");
	RC_ASSERT_MATCH(rc_recv_seq(c, 5, RC_TIMEOUT), "{seq:5, state:'end', "
	    "tock:_}");
	rc_send(c, "{seq:5, state:'end'}");
	/* the client's end is swallowed: the next request is served */
	RC_ASSERT_MATCH(rc_call(c, "{seq:6, action:'auth_list', typ:'_test', "
	    "kind:'user', ident:'fubar'}"), "{seq:6, typ:'_test', "
	    "kind:'user', ident:'fubar', tock:_}");

	rc_send(c, "{seq:7, action:'auth_get', state:'start', typ:'_test', "
	    "kind:'user', ident:'fubar'}");
	RC_ASSERT_MATCH(rc_recv_seq(c, 7, RC_TIMEOUT), "{seq:7, state:'start', "
	    "tock:_}");
	RC_ASSERT_MATCH(rc_recv_seq(c, 7, RC_TIMEOUT), "{seq:7, "
	    "step:'SendWant', tock:_}");
	rc_send(c, "{seq:7, step:'WantName'}");
	RC_ASSERT_MATCH(rc_recv_seq(c, 7, RC_TIMEOUT), "{seq:7, "
	    "step:'SendName', name:'fubar', chain:{node:'n1', tick:2, "
	    "prev:nil}, tock:_}");
	rc_send(c, "{seq:7, state:'end'}");
	m = rc_recv_seq(c, 7, RC_TIMEOUT);
	cr_assert(m != NULL && rc_has(&m->obj, "error"), "no error item");
	rc_msg_free(m);
	RC_ASSERT_MATCH(rc_recv_seq(c, 7, RC_TIMEOUT), "{seq:7, state:'end', "
	    "tock:_}");
	/* a wrong step ends the dialog with an error */
	rc_send(c, "{seq:8, action:'auth_set', state:'start', typ:'_test', "
	    "kind:'user'}");
	RC_ASSERT_MATCH(rc_recv_seq(c, 8, RC_TIMEOUT), "{seq:8, state:'start', "
	    "tock:_}");
	RC_ASSERT_MATCH(rc_recv_seq(c, 8, RC_TIMEOUT), "{seq:8, "
	    "step:'GiveName', tock:_}");
	rc_send(c, "{seq:8, step:'Nonsense'}");
	m = rc_recv_seq(c, 8, RC_TIMEOUT);
	cr_assert(m != NULL && rc_str_prefix(&m->obj, "error", "Unexpected "
	    "step"), "%s", m ? rc_show(&m->obj) : "-");
	rc_msg_free(m);
	RC_ASSERT_MATCH(rc_recv_seq(c, 8, RC_TIMEOUT), "{seq:8, state:'end', "
	    "tock:_}");
	/* and the _test user logs in */
	rc_close(c);
	c = rc_open(ag.socket);
	rc_send(c, "{seq:1, action:'auth', typ:'_test', ident:'fubar', "
	    "data:{}}");
	RC_ASSERT_MATCH(rc_recv_seq(c, 1, RC_TIMEOUT), "{seq:1, state:'start', "
	    "tock:_}");
	RC_ASSERT_MATCH(rc_recv_seq(c, 1, RC_TIMEOUT), "{seq:1, state:'end', "
	    "tock:_}");
	rc_close(c);
}

/* A client-streamed request whose client falls silent is ended. */
Test(auth, silent_stream_is_ended, .timeout = 30)
{
	struct harness_agent s2;
	struct rc_conn *c;
	struct rc_msg *m;

	harness_init(&s2);
	RC_START(&s2, "--standalone", "--node", "s2", "--stream-timeout", "1");
	c = rc_open(s2.socket);
	rc_send(c, "{seq:1, action:'auth_set', state:'start', typ:'_test', "
	    "kind:'user'}");
	RC_ASSERT_MATCH(rc_recv_seq(c, 1, RC_TIMEOUT), "{seq:1, state:'start', "
	    "tock:_}");
	RC_ASSERT_MATCH(rc_recv_seq(c, 1, RC_TIMEOUT), "{seq:1, "
	    "step:'GiveName', tock:_}");
	/* nothing more from us: within a few seconds, an error and end */
	m = rc_recv_seq(c, 1, 5000);
	cr_assert(m != NULL && rc_str_prefix(&m->obj, "error", "No input for"),
	    "%s", m != NULL ? rc_show(&m->obj) : "nothing");
	rc_msg_free(m);
	RC_ASSERT_MATCH(rc_recv_seq(c, 1, RC_TIMEOUT), "{seq:1, state:'end', "
	    "tock:_}");
	/* the connection goes on */
	RC_ASSERT_MATCH(rc_call(c, "{seq:2, action:'get_value', path:[]}"),
	    "{seq:2, value:_, tock:_}");
	rc_close(c);
	harness_cleanup(&s2);
}
