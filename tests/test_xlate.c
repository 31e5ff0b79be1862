/*
 * test_xlate: the translator (spec §5, issue 11) end to end over the raw
 * protocol: the reference's typecheck and convert scenarios with Lua
 * code, every record rule's error text, the pattern precedence, the
 * sandbox's limits, and an agent that stays responsive meanwhile.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "distkv.h"
#include "harness.h"
#include "rawclient.h"

static struct harness_agent ag;
static struct rc_conn *admin;
static int64_t seqno = 10;

static void
setup(void)
{
	harness_init(&ag);
	RC_START(&ag, "--standalone", "--node", "n1", "--init", "123");
	admin = rc_open(ag.socket);
	cr_assert_not_null(admin);
}

static void
teardown(void)
{
	rc_close(admin);
	harness_cleanup(&ag);
}

TestSuite(xlate, .init = setup, .fini = teardown, .timeout = 60);

static struct rc_msg *
vcall(struct rc_conn *c, const char *fmt, va_list ap)
{
	char req[4096], buf[4200];

	vsnprintf(req, sizeof(req), fmt, ap);
	snprintf(buf, sizeof(buf), "{seq:%lld, %s}", (long long)++seqno, req);
	return rc_call(c, "%s", buf);
}

/* A request that must succeed; returns its reply. */
static struct rc_msg *
ok(struct rc_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static struct rc_msg *
ok(struct rc_conn *c, const char *fmt, ...)
{
	struct rc_msg *m;
	va_list ap;

	va_start(ap, fmt);
	m = vcall(c, fmt, ap);
	va_end(ap);
	cr_assert_not_null(m, "no reply");
	cr_assert_not(rc_has(&m->obj, "error"), "refused: %s",
	    rc_show(&m->obj));
	return m;
}

/* A request that must fail with an error containing want. */
static void
fails(struct rc_conn *c, const char *want, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void
fails(struct rc_conn *c, const char *want, const char *fmt, ...)
{
	const msgpack_object *e;
	struct rc_msg *m;
	va_list ap;

	va_start(ap, fmt);
	m = vcall(c, fmt, ap);
	va_end(ap);
	cr_assert_not_null(m, "no reply");
	e = rc_get(&m->obj, "error");
	cr_assert(e != NULL && e->type == MSGPACK_OBJECT_STR,
	    "accepted, wanted an error with \"%s\": %s", want,
	    rc_show(&m->obj));
	cr_assert(memmem(e->via.str.ptr, e->via.str.size, want,
	    strlen(want)) != NULL, "wanted \"%s\" in the error, got %s", want,
	    rc_show(&m->obj));
}

#define INT_CODE "code:\"if math.type(value) ~= 'integer' then " \
	"error('not an int') end\", lang:'lua'"
#define PCT_CODE "code:\"if not (value >= 0 and value <= 100) then " \
	"error('not a percentage') end\", lang:'lua'"

static void
types_int_percent(void)
{
	ok(admin, "action:'set_internal', path:['type', 'int'], "
	    "value:{bad:['foo', nil], good:[0, 1, 2], " INT_CODE "}");
	ok(admin, "action:'set_internal', path:['type', 'int', 'percent'], "
	    "value:{bad:[-1, 101], good:[0, 55, 100], " PCT_CODE "}");
}

/* test_feature_typecheck.py::test_71_basic, with Lua code. */
Test(xlate, reference_typecheck)
{
	/* a syntax error ("rise"), a good value that fails, a bad one that
	 * passes, too few bad and too few good values */
	fails(admin, "Code does not compile", "action:'set_internal', "
	    "path:['type', 'int'], value:{bad:['foo', nil], good:[0, 1, 2], "
	    "code:\"if math.type(value) ~= 'integer' then rise "
	    "error('not an int') end\", lang:'lua'}");
	fails(admin, "failed on \"dud\" with", "action:'set_internal', "
	    "path:['type', 'int'], value:{bad:['foo', nil], "
	    "good:[0, 1, 'dud'], " INT_CODE "}");
	fails(admin, "did not fail on 4", "action:'set_internal', "
	    "path:['type', 'int'], value:{bad:['foo', 4], good:[0, 1, 2], "
	    INT_CODE "}");
	fails(admin, "Must have check-bad values", "action:'set_internal', "
	    "path:['type', 'int'], value:{bad:[], good:[0, 1, 2], "
	    INT_CODE "}");
	fails(admin, "Must have check-good values", "action:'set_internal', "
	    "path:['type', 'int'], value:{bad:['foo', nil], good:[1], "
	    INT_CODE "}");
	ok(admin, "action:'set_internal', path:['type', 'int'], "
	    "value:{bad:['foo', nil], good:[0, 1, 2], " INT_CODE "}");
	/* "fuf" fails the ancestor int, so it is no bad percentage */
	fails(admin, "not an int", "action:'set_internal', "
	    "path:['type', 'int', 'percent'], value:{bad:['fuf', 101], "
	    "good:[0, 55, 100], " PCT_CODE "}");
	fails(admin, "not an int", "action:'set_internal', "
	    "path:['type', 'int', 'percent'], value:{bad:[-1, 101], "
	    "good:[0, 5.5, 100], " PCT_CODE "}");
	ok(admin, "action:'set_internal', path:['type', 'int', 'percent'], "
	    "value:{bad:[-1, 101], good:[0, 55, 100], " PCT_CODE "}");
	fails(admin, "Type is not a list", "action:'set_internal', "
	    "path:['match', 'one', '+', 'two'], value:{tope:['int', "
	    "'percent']}");
	ok(admin, "action:'set_internal', path:['match', 'one', '+', 'two'], "
	    "value:{type:['int', 'percent']}");

	ok(admin, "action:'set_value', path:['one', 'x', 'two'], value:99");
	fails(admin, "not an int", "action:'set_value', "
	    "path:['one', 'y', 'two'], value:9.9");
	fails(admin, "not an int", "action:'set_value', "
	    "path:['one', 'y', 'two'], value:'zoz'");
	fails(admin, "not a percentage", "action:'set_value', "
	    "path:['one', 'y', 'two'], value:101");
	ok(admin, "action:'set_value', path:['one', 'y'], value:'zoz'");
	/* nothing of a refused write stays behind */
	RC_ASSERT_MATCH(ok(admin, "action:'get_value', "
	    "path:['one', 'y', 'two']"), "{seq:_, tock:_, value:nil}");
	/* nil is never type-checked: a typed entry can be deleted */
	ok(admin, "action:'delete_value', path:['one', 'x', 'two']");
	/* and a match entry can be deleted (the reference crashes) */
	ok(admin, "action:'delete_internal', "
	    "path:['match', 'one', '+', 'two']");
	ok(admin, "action:'set_value', path:['one', 'y', 'two'], value:9.9");
}

/* The record rules' texts not covered above. */
Test(xlate, record_errors)
{
	types_int_percent();
	fails(admin, "This type does not exist", "action:'set_internal', "
	    "path:['match', 'a'], value:{type:['int', 'nope']}");
	fails(admin, "Type is not a list", "action:'set_internal', "
	    "path:['match', 'a'], value:{type:5}");
	ok(admin, "action:'set_internal', path:['match', 'a'], "
	    "value:{type:'int'}");
	fails(admin, "This node can't have data.", "action:'set_internal', "
	    "path:['type'], value:1");
	fails(admin, "This node can't have data.", "action:'set_internal', "
	    "path:['match'], value:1");
	fails(admin, "This node can't have data.", "action:'set_internal', "
	    "path:['codec'], value:1");
	fails(admin, "This node can't have data.", "action:'set_internal', "
	    "path:['conv'], value:1");
	fails(admin, "This node can't have data.", "action:'set_internal', "
	    "path:['conv', 'foo'], value:1");
	/* a record without lang is the reference's Python */
	fails(admin, "Python code cannot run here", "action:'set_internal', "
	    "path:['type', 'py'], value:{good:[1, 2], bad:[3], "
	    "code:'if value: pass'}");
	fails(admin, "Must have tests for decoding", "action:'set_internal', "
	    "path:['codec', 'c'], value:{decode:'return value', "
	    "lang:'lua', in:[]}");
	fails(admin, "Must have tests for encoding", "action:'set_internal', "
	    "path:['codec', 'c'], value:{encode:'return value', "
	    "lang:'lua'}");
	fails(admin, "Decoding \"1\" got \"1\", not 1", "action:'set_internal', "
	    "path:['codec', 'c'], value:{decode:'return value', lang:'lua', "
	    "in:[['1', 1]]}");
	fails(admin, "Encoding 1 got 1, not \"1\"", "action:'set_internal', "
	    "path:['codec', 'c'], value:{encode:'return value', lang:'lua', "
	    "out:[[1, '1']]}");
	fails(admin, "failed decoder on 1 with", "action:'set_internal', "
	    "path:['codec', 'c'], value:{decode:\"error('no')\", lang:'lua', "
	    "in:[[1, 1]]}");
	fails(admin, "failed encoder on 1 with", "action:'set_internal', "
	    "path:['codec', 'c'], value:{encode:\"error('no')\", lang:'lua', "
	    "out:[[1, 1]]}");
	fails(admin, "This codec does not exist", "action:'set_internal', "
	    "path:['conv', 'foo', 'x'], value:{codec:'nope'}");
	fails(admin, "Codec is not a string or list", "action:'set_internal', "
	    "path:['conv', 'foo', 'x'], value:{codec:5}");
	fails(admin, "# directly after #", "action:'set_internal', "
	    "path:['match', '#', '#'], value:{type:'int'}");
	/* an error raised with a table, a result that cannot convert */
	fails(admin, "failed on 1 with error raised with a table",
	    "action:'set_internal', path:['type', 'e'], value:{good:[1, 2], "
	    "bad:[3], lang:'lua', code:'if value == 1 then error({}) end'}");
	fails(admin, "cannot convert a function", "action:'set_internal', "
	    "path:['codec', 'f'], value:{decode:'return print or ipairs', "
	    "lang:'lua', in:[[1, 1]]}");
}

/* Literal beats "+", which beats "#"; a shorter "#" beats a longer one;
 * "#" needs one level at least. */
Test(xlate, pattern_precedence)
{
	ok(admin, "action:'set_internal', path:['type', 'str'], "
	    "value:{good:['a', 'b'], bad:[1], lang:'lua', "
	    "code:\"assert(type(value) == 'string', 'not a string')\"}");
	ok(admin, "action:'set_internal', path:['type', 'int'], "
	    "value:{bad:['foo', nil], good:[0, 1, 2], " INT_CODE "}");
	ok(admin, "action:'set_internal', path:['type', 'bool'], "
	    "value:{good:[true, false], bad:[1], lang:'lua', "
	    "code:\"assert(type(value) == 'boolean', 'not a bool')\"}");
	ok(admin, "action:'set_internal', path:['match', 'p', 'x'], "
	    "value:{type:'str'}");
	ok(admin, "action:'set_internal', path:['match', 'p', '+'], "
	    "value:{type:'int'}");
	ok(admin, "action:'set_internal', path:['match', 'p', '#'], "
	    "value:{type:'bool'}");
	ok(admin, "action:'set_internal', path:['match', 'q', '#', 'z'], "
	    "value:{type:'int'}");
	ok(admin, "action:'set_internal', path:['match', 'q', '#'], "
	    "value:{type:'str'}");
	ok(admin, "action:'set_value', path:['p', 'x'], value:'s'");
	fails(admin, "not a string", "action:'set_value', path:['p', 'x'], "
	    "value:1");
	ok(admin, "action:'set_value', path:['p', 'y'], value:1");
	fails(admin, "not an int", "action:'set_value', path:['p', 'y'], "
	    "value:true");
	ok(admin, "action:'set_value', path:['p', 'y', 'z'], value:true");
	fails(admin, "not a bool", "action:'set_value', path:['p', 'x', 'z'], "
	    "value:1");
	/* "#" is one or more: p itself has no type */
	ok(admin, "action:'set_value', path:['p'], value:1.5");
	/* q/a/z: "#" over one level then z (int) wins over "#" (str) */
	ok(admin, "action:'set_value', path:['q', 'a', 'z'], value:3");
	ok(admin, "action:'set_value', path:['q', 'a', 'b', 'z'], value:3");
	fails(admin, "not a string", "action:'set_value', "
	    "path:['q', 'a', 'b'], value:3");
}

static void
type_with_code(const char *code)
{
	fails(admin, "", "action:'set_internal', path:['type', 'x'], "
	    "value:{good:[1, 2], bad:[3], lang:'lua', code:\"%s\"}", code);
}

/* Scripts that misbehave fail with a clear error; the agent goes on. */
Test(xlate, sandbox_limits)
{
	static const struct {
		const char *code, *want;
	} cases[] = {
		{ "while true do end", "time limit exceeded" },
		{ "local function f(n) return f(n + 1) + 1 end f(1)",
		  "limit exceeded" },
		{ "local s = 'x' for i = 1, 40 do s = s .. s end",
		  "memory limit exceeded" },
		{ "local s = string.rep('x', 1 << 30)", "too large" },
		{ "local t = {} for i = 1, 1e9 do t[i] = i end", "limit" },
		{ "os.execute('true')", "global 'os'" },
		{ "io.open('/etc/passwd')", "global 'io'" },
		{ "require('os')", "global 'require'" },
		{ "load('return 1')", "global 'load'" },
		{ "string.dump(print)", "field 'dump'" },
		/* precompiled code (the bytecode signature): the record is
		 * compiled as text, so it never loads */
		{ "\x1b" "LuaT return 1", "does not compile" },
		{ "string.upper = nil", "read only" },
		{ "x = 1", "read only" },
		{ "collectgarbage()", "global 'collectgarbage'" },
		{ "string.find(string.rep('a', 5000), '.-.-.-b')",
		  "pattern too costly" },
		{ "string.rep('', 1 << 62)", "" },
	};
	char want[256];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (cases[i].want[0] == 0)
			continue;
		snprintf(want, sizeof(want), "%s", cases[i].want);
		fails(admin, want, "action:'set_internal', path:['type', 'x'], "
		    "value:{good:[1, 2], bad:[3], lang:'lua', code:\"%s\"}",
		    cases[i].code);
		/* still answering */
		RC_ASSERT_MATCH(ok(admin, "action:'get_value', path:[]"),
		    "{seq:_, value:123, tock:_}");
	}
	/* an empty piece repeated 2^62 times is empty, at once */
	type_with_code("assert(string.rep('', 1 << 62) == ''); "
	    "error('fine')");
}

/* The msgpack <-> Lua mapping as codecs see it. */
Test(xlate, value_mapping)
{
	ok(admin, "action:'set_internal', path:['codec', 'id'], "
	    "value:{decode:'return value', encode:'return value', lang:'lua', "
	    "in:[[1, 1], [1.5, 1.5], ['s', 's'], [b'b', b'b'], [[], []], "
	    "[{}, {}], [[1, nil, 3], [1, nil, 3]], [{a:nil}, {a:nil}], "
	    "[true, true], [nil, nil]], out:[[1, 1]]}");
	ok(admin, "action:'set_internal', path:['codec', 'kind'], "
	    "value:{decode:'return msgtype(value)', lang:'lua', "
	    "in:[[1, 'integer'], [1.0, 'float'], ['s', 'string'], "
	    "[b'b', 'bytes'], [[], 'array'], [{}, 'map'], [nil, 'nil'], "
	    "[true, 'boolean']]}");
	/* keys come back sorted; unmarked sequences are arrays */
	ok(admin, "action:'set_internal', path:['codec', 'mk'], "
	    "value:{decode:\"return {z = 1, a = 2, [3] = 'i'}\", lang:'lua', "
	    "in:[[1, {3:'i', a:2, z:1}]]}");
	ok(admin, "action:'set_internal', path:['codec', 'seq'], "
	    "value:{decode:\"return {value, value}\", lang:'lua', "
	    "in:[[1, [1, 1]]]}");
	fails(admin, "beyond Lua's range", "action:'set_internal', "
	    "path:['codec', 'big'], value:{decode:'return value', lang:'lua', "
	    "in:[[18446744073709551615, 1]]}");
	fails(admin, "not valid UTF-8", "action:'set_internal', "
	    "path:['codec', 'u'], value:{decode:'return string.char(255)', "
	    "lang:'lua', in:[[1, 1]]}");
	ok(admin, "action:'set_internal', path:['codec', 'b'], "
	    "value:{decode:'return bytes(string.char(255))', lang:'lua', "
	    "in:[[1, b'\\xff']]}");
}

/* test_feature_convert.py::test_71_basic, with Lua code. */
Test(xlate, reference_convert)
{
	struct rc_conn *std, *con;
	struct rc_msg **v, *m;
	struct rc_paths L;
	char seen[1024] = "";
	size_t n;

	ok(admin, "action:'set_internal', path:['codec', 'int'], "
	    "value:{in:[['1', 1], ['2', 2], ['3', 3]], "
	    "out:[[1, '1'], [2, '2'], [-3, '-3']], "
	    "encode:'return tostring(value)', "
	    "decode:\"assert(type(value) == 'string', 'not a string') "
	    "return tonumber(value)\", lang:'lua'}");
	ok(admin, "action:'set_internal', path:['conv', 'foo', 'inty', '#'], "
	    "value:{codec:'int'}");
	ok(admin, "action:'auth_set', typ:'_test', kind:'user', ident:'std', "
	    "chain:nil, aux:{}");
	ok(admin, "action:'auth_set', typ:'_test', kind:'user', ident:'con', "
	    "chain:nil, aux:{conv:'foo'}");
	ok(admin, "action:'set_auth_typ', typ:'_test'");

	std = rc_open(ag.socket);
	cr_assert_not_null(std);
	rc_send(std, "{seq:1, action:'auth', typ:'_test', ident:'std', "
	    "data:{}}");
	v = rc_collect(std, 1, &n, RC_TIMEOUT);
	cr_assert_eq(n, 2);
	rc_msgs_free(v, n);
	rc_send(std, "{seq:2, action:'watch', path:['inty']}");
	RC_ASSERT_MATCH(rc_recv_seq(std, 2, RC_TIMEOUT),
	    "{seq:2, tock:_, state:'start'}");

	con = rc_open(ag.socket);
	cr_assert_not_null(con);
	rc_send(con, "{seq:1, action:'auth', typ:'_test', ident:'con', "
	    "data:{}}");
	v = rc_collect(con, 1, &n, RC_TIMEOUT);
	cr_assert_eq(n, 2);
	rc_msgs_free(v, n);
	ok(con, "action:'set_value', path:['inty', 'ten'], value:'10'");
	fails(con, "decode int:1: not a string", "action:'set_value', "
	    "path:['inty', 'nope'], value:11");
	ok(con, "action:'set_value', path:['inty', 'yep', 'yepyepyep'], "
	    "value:'13'");
	fails(con, "not a string", "action:'set_value', "
	    "path:['inty', 'nope', 'nopenope'], value:12");
	ok(con, "action:'set_value', path:['inty', 'yep', 'yepyepyep', "
	    "'yep'], value:'99'");
	ok(con, "action:'set_value', path:['inty'], value:'hello'");
	RC_ASSERT_MATCH(ok(con, "action:'get_value', path:['inty']"),
	    "{seq:_, value:'hello', tock:_}");
	RC_ASSERT_MATCH(ok(con, "action:'get_value', path:['inty', 'ten']"),
	    "{seq:_, value:'10', tock:_}");
	RC_ASSERT_MATCH(ok(con, "action:'get_value', "
	    "path:['inty', 'yep', 'yepyepyep']"), "{seq:_, value:'13', tock:_}");
	/* the stored form, as an unconverted user sees it */
	RC_ASSERT_MATCH(ok(admin, "action:'get_value', path:['inty', 'ten']"),
	    "{seq:_, value:10, tock:_}");

	memset(&L, 0, sizeof(L));
	for (int i = 0; i < 4; i++) {
		const msgpack_object *val;

		m = rc_recv_seq(std, 2, RC_TIMEOUT);
		cr_assert_not_null(m, "watch item %d missing (%s)", i, seen);
		val = rc_get(&m->obj, "value");
		snprintf(seen + strlen(seen), sizeof(seen) - strlen(seen),
		    "%s=%s ", rc_lengthen(&L, &m->obj),
		    val ? rc_show(val) : "-");
	}
	/* paths relative to the watched ['inty'] */
	cr_assert_str_eq(seen, "['ten']=10 ['yep', 'yepyepyep']=13 "
	    "['yep', 'yepyepyep', 'yep']=99 []='hello' ",
	    "got %s", seen);

	/* get_tree of the converted user encodes each item */
	rc_send(con, "{seq:500, action:'get_tree', path:['inty', 'yep']}");
	v = rc_collect(con, 500, &n, RC_TIMEOUT);
	cr_assert_eq(n, 4, "got %zu messages", n);
	RC_ASSERT_MATCH(v[1], "{seq:500, path:['yepyepyep'], depth:0, "
	    "value:'13', tock:_}");
	rc_msgs_free(v, n);
	rc_close(con);
	rc_close(std);
}

/* The JSON-schema subset, alone and before code. */
Test(xlate, schema_subset)
{
	ok(admin, "action:'set_internal', path:['type', 'person'], "
	    "value:{good:[{name:'a'}, {name:'b', age:3}], "
	    "bad:[{age:3}, {name:''}, {name:'c', age:151}, {name:'d', x:1}, "
	    "{name:'e', 1:2}, 'str'], "
	    "schema:{type:'object', properties:{name:{type:'string', "
	    "minLength:1}, age:{type:'integer', minimum:0, maximum:150}}, "
	    "required:['name'], additionalProperties:false}}");
	ok(admin, "action:'set_internal', path:['match', 'people', '+'], "
	    "value:{type:'person'}");
	ok(admin, "action:'set_value', path:['people', 'x'], "
	    "value:{name:'x', age:150}");
	fails(admin, "required property \"name\" is missing",
	    "action:'set_value', path:['people', 'y'], value:{age:1}");
	fails(admin, "property \"q\" is not allowed",
	    "action:'set_value', path:['people', 'y'], value:{name:'y', q:1}");
	fails(admin, "property age: 151 is outside maximum 150",
	    "action:'set_value', path:['people', 'y'], "
	    "value:{name:'y', age:151}");
	/* schema first, then code; bytes are no strings */
	ok(admin, "action:'set_internal', path:['type', 'hex'], "
	    "value:{good:['00', 'ff'], bad:[b'00', 'xyz', 'abc'], lang:'lua', "
	    "schema:{type:'string', pattern:'^[0-9a-f]+$'}, "
	    "code:\"if #value %% 2 ~= 0 then error('odd length') end\"}");
	ok(admin, "action:'set_internal', path:['type', 'color'], "
	    "value:{good:['red', 'blue'], bad:['pink', 1], "
	    "schema:{enum:['red', 'blue']}}");
	ok(admin, "action:'set_internal', path:['type', 'blob'], "
	    "value:{good:[b'ab', b''], bad:['ab', b'abc'], "
	    "schema:{type:'bytes', maxLength:2}}");
	fails(admin, "keyword oneOf is not supported", "action:'set_internal', "
	    "path:['type', 'x'], value:{good:[1, 2], bad:[3], "
	    "schema:{oneOf:[]}}");
	fails(admin, "failed on 2 with 2 is not 1", "action:'set_internal', "
	    "path:['type', 'x'], value:{good:[1, 2], bad:[3], "
	    "schema:{const:1}}");
}

/*
 * Records that arrive as loaded or replicated updates are never refused
 * (nodes would diverge): a reference Python type and a Lua type that does
 * not compile are stored, and their uses fail clearly.
 */
Test(xlate, loaded_records_fail_at_use)
{
	ok(admin, "action:'update', path:[nil, 'type', 'py'], "
	    "value:{good:[1, 2], bad:['x'], code:\"if not isinstance(value, "
	    "int): raise ValueError('no')\"}, node:'ref', tick:1, tock:1");
	ok(admin, "action:'update', path:[nil, 'type', 'broken'], "
	    "value:{good:[1, 2], bad:['x'], lang:'lua', code:'if then'}, "
	    "node:'ref', tick:2, tock:2");
	ok(admin, "action:'update', path:[nil, 'match', 'a'], "
	    "value:{type:'py'}, node:'ref', tick:3, tock:3");
	ok(admin, "action:'update', path:[nil, 'match', 'b'], "
	    "value:{type:['broken']}, node:'ref', tick:4, tock:4");
	RC_ASSERT_MATCH(ok(admin, "action:'get_internal', path:['type', 'py']"),
	    "{seq:_, value:{...}, tock:_, ...}");
	fails(admin, "Python code cannot run here", "action:'set_value', "
	    "path:['a'], value:1");
	fails(admin, "Code does not compile", "action:'set_value', "
	    "path:['b'], value:1");
	/* a later good write of the same entry recompiles it */
	ok(admin, "action:'set_internal', path:['type', 'broken'], "
	    "value:{good:[1, 2], bad:['x'], " INT_CODE "}");
	ok(admin, "action:'set_value', path:['b'], value:1");
	fails(admin, "not an int", "action:'set_value', path:['b'], "
	    "value:'x'");
}

/* libdistkv's translator calls write the same records, and the agent's
 * refusals come back as DISTKV_ESERVER with its text. */
Test(xlate, library_calls)
{
	/* [0, 2], ["x"], [[1, 1], [2, 2]] as msgpack */
	static const uint8_t good[] = { 0x92, 0x00, 0x02 };
	static const uint8_t bad[] = { 0x91, 0xa1, 'x' };
	static const uint8_t one[] = { 0x91, 0x00 };
	static const uint8_t in[] = { 0x92, 0x92, 0xa1, '1', 0x01,
	    0x92, 0xa1, '2', 0x02 };
	static const uint8_t out[] = { 0x91, 0x92, 0x01, 0xa1, '1' };
	static const uint8_t seven[] = { 0xa1, '7' }, str[] = { 0xa1, 'q' };
	distkv *c;
	distkv_path *p;
	struct distkv_entry e;
	int64_t v;

	cr_assert_eq(distkv_connect(ag.socket, &c), 0);
	cr_assert_eq(distkv_type_set(c, "int", "if math.type(value) ~= "
	    "'integer' then error('not an int') end", one, sizeof(one), bad,
	    sizeof(bad), NULL, 0), DISTKV_ESERVER);
	cr_assert_str_eq(distkv_errmsg(c), "Must have check-good values");
	cr_assert_eq(distkv_type_set(c, "int", "if math.type(value) ~= "
	    "'integer' then error('not an int') end", good, sizeof(good), bad,
	    sizeof(bad), NULL, 0), 0);
	cr_assert_eq(distkv_match_set(c, "lib/#", "nope"), DISTKV_ENOTFOUND);
	cr_assert_str_eq(distkv_errmsg(c), "This type does not exist");
	cr_assert_eq(distkv_match_set(c, "lib/#", "int"), 0);
	cr_assert_eq(distkv_codec_set(c, "int", "return tonumber(value)",
	    "return tostring(value)", in, sizeof(in), out, sizeof(out)), 0);
	cr_assert_eq(distkv_conv_set(c, "cv", "lib/#", "int"), 0);
	cr_assert_eq(distkv_path_parse("lib/a", &p), 0);
	cr_assert_eq(distkv_set(c, p, str, sizeof(str), NULL, NULL),
	    DISTKV_ESERVER);
	cr_assert(strstr(distkv_errmsg(c), "not an int") != NULL, "%s",
	    distkv_errmsg(c));
	cr_assert_eq(distkv_set(c, p, seven + 1, 0, NULL, NULL),
	    DISTKV_EINVAL);
	{
		static const uint8_t seven_int[] = { 0x07 };

		cr_assert_eq(distkv_set(c, p, seven_int, 1, NULL, NULL), 0);
	}
	memset(&e, 0, sizeof(e));
	cr_assert_eq(distkv_get(c, p, 0, &e), 0);
	cr_assert_eq(distkv_value_get_int(e.value.data, e.value.len, &v), 0);
	cr_assert_eq(v, 7);
	distkv_entry_clear(&e);
	distkv_path_free(p);
	cr_assert_eq(distkv_translator_delete(c, "match", "lib/#"), 0);
	cr_assert_eq(distkv_translator_delete(c, "conv", "cv/lib/#"), 0);
	cr_assert_eq(distkv_translator_delete(c, "bogus", "x"), DISTKV_EINVAL);
	(void)seven;
	distkv_close(c);
}
