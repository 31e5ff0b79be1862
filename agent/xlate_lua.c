/*
 * xlate_lua: see xlate_lua.h.
 *
 * Everything a script touches runs inside one lua_pcall: the conversion
 * of the arguments, the script and the conversion of its result, so a
 * memory or limit error anywhere unwinds to one place and leaves nothing
 * allocated behind (the result is built in a buffer the sandbox owns).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "proto.h"
#include "xlate_lua.h"

struct xl_lua {
	lua_State *L;
	size_t used;		/* bytes the state holds */
	size_t limit;		/* its allocator refuses past this */
	size_t base;		/* used after the last full collection */
	long steps;		/* hook calls left in this call */
	int mt_bytes, mt_array, mt_map;	/* registry refs of the marks */
	/* the result of a call, packed here (owned, reused) */
	uint8_t *out;
	size_t outlen, outcap;
};

/* The hook runs every HOOK_EVERY instructions. */
#define HOOK_EVERY 1000

/* `null`: a light userdata no other value can equal. */
static const char null_tag;
#define NULLP ((void *)&null_tag)

/* ---- allocator and hook ---- */

static void *
xl_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	struct xl_lua *x = ud;
	size_t old = ptr != NULL ? osize : 0;
	void *p;

	if (nsize == 0) {
		free(ptr);
		x->used -= old;
		return NULL;
	}
	/* Lua runs an emergency collection when this refuses, then
	 * raises "not enough memory" */
	if (nsize > old && x->used + (nsize - old) > x->limit)
		return NULL;
	if ((p = realloc(ptr, nsize)) == NULL)
		return NULL;
	x->used = x->used - old + nsize;
	return p;
}

static struct xl_lua *
xl_of(lua_State *L)
{
	void *ud;

	lua_getallocf(L, &ud);
	return ud;
}

static void
xl_hook(lua_State *L, lua_Debug *ar)
{
	struct xl_lua *x = xl_of(L);

	(void)ar;
	/* once over, every later hook raises again: nothing catches it
	 * for good (pcall is not in the sandbox anyway) */
	if (--x->steps < 0)
		luaL_error(L, "time limit exceeded (%d VM instructions)",
		    XL_LUA_INSTR);
}

/* ---- key order (pairs, map output) ---- */

struct key {
	int rank;		/* nil false true int float string bytes */
	lua_Integer i;
	lua_Number d;
	const char *s;
	size_t len;
	int idx;		/* position in the key table */
};

static int
key_cmp(const void *pa, const void *pb)
{
	const struct key *a = pa, *b = pb;
	int c;

	if (a->rank != b->rank)
		return a->rank < b->rank ? -1 : 1;
	switch (a->rank) {
	case 3:
		return a->i < b->i ? -1 : a->i > b->i;
	case 4:
		return a->d < b->d ? -1 : a->d > b->d;
	case 5:
	case 6:
		c = memcmp(a->s, b->s, a->len < b->len ? a->len : b->len);
		if (c != 0)
			return c;
		return a->len < b->len ? -1 : a->len > b->len;
	default:
		return 0;
	}
}

static bool
has_mark(lua_State *L, int idx, int ref)
{
	bool r;

	if (!lua_getmetatable(L, idx))
		return false;
	lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
	r = lua_rawequal(L, -1, -2);
	lua_pop(L, 2);
	return r;
}

/* Describe the key at idx; raises for a key that has no order. */
static void
key_of(lua_State *L, struct xl_lua *x, int idx, struct key *k)
{
	memset(k, 0, sizeof(*k));
	switch (lua_type(L, idx)) {
	case LUA_TBOOLEAN:
		k->rank = lua_toboolean(L, idx) ? 2 : 1;
		return;
	case LUA_TNUMBER:
		if (lua_isinteger(L, idx)) {
			k->rank = 3;
			k->i = lua_tointeger(L, idx);
		} else {
			k->rank = 4;
			k->d = lua_tonumber(L, idx);
		}
		return;
	case LUA_TSTRING:
		k->rank = 5;
		k->s = lua_tolstring(L, idx, &k->len);
		return;
	case LUA_TLIGHTUSERDATA:
		if (lua_touserdata(L, idx) == NULLP) {
			k->rank = 0;
			return;
		}
		break;
	case LUA_TTABLE:
		if (has_mark(L, idx, x->mt_bytes)) {
			lua_getfield(L, idx, "bytes");
			if (lua_type(L, -1) == LUA_TSTRING) {
				/* stays valid: the key table holds the
				 * object, the object its string */
				k->rank = 6;
				k->s = lua_tolstring(L, -1, &k->len);
				lua_pop(L, 1);
				return;
			}
			lua_pop(L, 1);
		}
		break;
	default:
		break;
	}
	luaL_error(L, "a %s cannot be a map key (keys: nil, booleans, "
	    "numbers, strings, bytes)", luaL_typename(L, idx));
}

/*
 * Push a table of t's keys (t at idx) in key order and return how many;
 * the C array of struct key lives in a userdata pushed below it (GC'd).
 */
static int
sorted_keys(lua_State *L, struct xl_lua *x, int idx)
{
	struct key *ks;
	lua_Integer n = 0;
	int kt;

	idx = lua_absindex(L, idx);
	lua_newtable(L);
	kt = lua_gettop(L);
	lua_pushnil(L);
	while (lua_next(L, idx) != 0) {
		lua_pop(L, 1);
		lua_pushvalue(L, -1);
		lua_rawseti(L, kt, ++n);
	}
	if (n > 1) {
		ks = lua_newuserdatauv(L, sizeof(*ks) * (size_t)n, 0);
		for (lua_Integer i = 0; i < n; i++) {
			lua_rawgeti(L, kt, i + 1);
			key_of(L, x, -1, &ks[i]);
			ks[i].idx = (int)i + 1;
			lua_pop(L, 1);
		}
		qsort(ks, (size_t)n, sizeof(*ks), key_cmp);
		/* equal keys are distinct Lua keys only as bytes objects;
		 * their order would follow addresses, which differ from
		 * node to node */
		for (lua_Integer i = 1; i < n; i++)
			if (key_cmp(&ks[i - 1], &ks[i]) == 0)
				luaL_error(L, "two byte-string keys hold the "
				    "same bytes");
		/* a new table in that order replaces the first */
		lua_newtable(L);
		for (lua_Integer i = 0; i < n; i++) {
			lua_rawgeti(L, kt, ks[i].idx);
			lua_rawseti(L, -2, i + 1);
		}
		lua_replace(L, kt);
		lua_pop(L, 1);		/* the userdata */
	} else if (n == 1) {
		struct key k;

		lua_rawgeti(L, kt, 1);
		key_of(L, x, -1, &k);
		lua_pop(L, 1);
	}
	return (int)n;
}

/* pairs(t): keys in a fixed order (upvalues: t, keys, position). */
static int
pairs_next(lua_State *L)
{
	lua_Integer i = lua_tointeger(L, lua_upvalueindex(3)) + 1;

	lua_pushinteger(L, i);
	lua_replace(L, lua_upvalueindex(3));
	if (lua_rawgeti(L, lua_upvalueindex(2), i) == LUA_TNIL)
		return 1;
	lua_pushvalue(L, -1);
	lua_rawget(L, lua_upvalueindex(1));
	return 2;
}

static int
sb_pairs(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_settop(L, 1);
	sorted_keys(L, xl_of(L), 1);
	lua_pushinteger(L, 0);
	lua_pushcclosure(L, pairs_next, 3);
	return 1;
}

/* ---- value helpers of the sandbox ---- */

static void
set_mark(lua_State *L, int idx, int ref)
{
	idx = lua_absindex(L, idx);
	lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
	lua_setmetatable(L, idx);
}

static int
sb_bytes(lua_State *L)
{
	size_t n;
	const char *s = luaL_checklstring(L, 1, &n);

	lua_createtable(L, 0, 1);
	lua_pushlstring(L, s, n);
	lua_setfield(L, -2, "bytes");
	set_mark(L, -1, xl_of(L)->mt_bytes);
	return 1;
}

static int
sb_isbytes(lua_State *L)
{
	lua_pushboolean(L, lua_type(L, 1) == LUA_TTABLE &&
	    has_mark(L, 1, xl_of(L)->mt_bytes));
	return 1;
}

static int
mark_fn(lua_State *L, bool array)
{
	struct xl_lua *x = xl_of(L);

	if (lua_isnoneornil(L, 1)) {
		lua_settop(L, 0);
		lua_newtable(L);
	}
	luaL_checktype(L, 1, LUA_TTABLE);
	if (has_mark(L, 1, x->mt_bytes))
		return luaL_error(L, "bytes cannot become an %s",
		    array ? "array" : "map");
	lua_settop(L, 1);
	set_mark(L, 1, array ? x->mt_array : x->mt_map);
	return 1;
}

static int
sb_array(lua_State *L)
{
	return mark_fn(L, true);
}

static int
sb_map(lua_State *L)
{
	return mark_fn(L, false);
}

static const char *
kind_of(lua_State *L, struct xl_lua *x, int idx)
{
	switch (lua_type(L, idx)) {
	case LUA_TNONE:
	case LUA_TNIL:
		return "nil";
	case LUA_TBOOLEAN:
		return "boolean";
	case LUA_TNUMBER:
		return lua_isinteger(L, idx) ? "integer" : "float";
	case LUA_TSTRING:
		return "string";
	case LUA_TLIGHTUSERDATA:
		return lua_touserdata(L, idx) == NULLP ? "nil" : "userdata";
	case LUA_TTABLE:
		if (has_mark(L, idx, x->mt_bytes))
			return "bytes";
		if (has_mark(L, idx, x->mt_array))
			return "array";
		if (has_mark(L, idx, x->mt_map))
			return "map";
		return "table";
	default:
		return luaL_typename(L, idx);
	}
}

static int
sb_msgtype(lua_State *L)
{
	lua_pushstring(L, kind_of(L, xl_of(L), 1));
	return 1;
}

/* tostring without addresses: they differ from node to node. */
static int
sb_tostring(lua_State *L)
{
	luaL_checkany(L, 1);
	switch (lua_type(L, 1)) {
	case LUA_TNIL:
	case LUA_TBOOLEAN:
	case LUA_TNUMBER:
	case LUA_TSTRING:
		luaL_tolstring(L, 1, NULL);
		return 1;
	default:
		lua_pushstring(L, kind_of(L, xl_of(L), 1));
		return 1;
	}
}

/* ---- bounded versions of string functions that loop in C ---- */

static int
sb_format(lua_State *L)
{
	size_t n;
	const char *f = luaL_checklstring(L, 1, &n);
	int top = lua_gettop(L);

	for (size_t i = 0; i + 1 < n; i++)
		if (f[i] == '%') {
			size_t j = i + 1;

			while (j < n && strchr("-+ #0123456789.", f[j]) != NULL)
				j++;
			if (j < n && f[j] == 'p')
				return luaL_error(L, "string.format: %%p shows "
				    "an address (refused: nodes differ)");
			i = j;
		}
	for (int i = 2; i <= top; i++) {
		int t = lua_type(L, i);

		if (t != LUA_TNIL && t != LUA_TBOOLEAN && t != LUA_TNUMBER &&
		    t != LUA_TSTRING)
			return luaL_error(L, "string.format: cannot format a "
			    "%s", luaL_typename(L, i));
	}
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, top, LUA_MULTRET);
	return lua_gettop(L);
}

static int
sb_rep(lua_State *L)
{
	size_t l, lsep = 0;
	lua_Integer n;

	luaL_checklstring(L, 1, &l);
	n = luaL_checkinteger(L, 2);
	luaL_optlstring(L, 3, "", &lsep);
	/* an empty piece repeated 2^62 times loops in C with no hook */
	if (n <= 0 || l + lsep == 0) {
		lua_pushliteral(L, "");
		return 1;
	}
	if ((double)n * (double)(l + lsep) > (double)XL_LUA_MEM)
		return luaL_error(L, "string.rep: result too large (limit %d "
		    "bytes per call)", (int)XL_LUA_MEM);
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, lua_gettop(L) - 1, 1);
	return 1;
}

/*
 * A Lua pattern backtracks at each quantifier: the worst case of one call
 * is about (subject+1)^(quantifiers+1) * (pattern+1) steps.
 */
static int
sb_patfn(lua_State *L)
{
	size_t n, m;
	const char *pat;
	double cost;
	int q = 0;

	luaL_checklstring(L, 1, &n);
	pat = luaL_checklstring(L, 2, &m);
	/* string.find(s, p, init, true): a plain search, linear */
	if (!(lua_toboolean(L, lua_upvalueindex(2)) && lua_toboolean(L, 4))) {
		for (size_t i = 0; i < m; i++) {
			if (pat[i] == '%') {
				i++;
				continue;
			}
			q += strchr("*+-?", pat[i]) != NULL;
		}
		cost = (double)(m + 1);
		for (int i = 0; i <= q && cost <= XL_LUA_PATTERN_STEPS; i++)
			cost *= (double)(n + 1);
		if (cost > XL_LUA_PATTERN_STEPS)
			return luaL_error(L, "pattern too costly for this "
			    "subject (%I bytes, %d quantifiers)",
			    (lua_Integer)n, q);
	}
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
	return lua_gettop(L);
}

/* ---- msgpack -> Lua ---- */

static void push_obj(lua_State *L, struct xl_lua *x,
    const msgpack_object *o, int depth);

static void
push_elem(lua_State *L, struct xl_lua *x, const msgpack_object *o,
    int depth)
{
	if (o->type == MSGPACK_OBJECT_NIL)
		lua_pushlightuserdata(L, NULLP);
	else
		push_obj(L, x, o, depth);
}

/*
 * A map key: a byte string becomes the one bytes object of its content
 * (interned for the call, table at stack index 1), so equal keys merge
 * as equal strings do (the last one wins).
 */
static void
push_key(lua_State *L, struct xl_lua *x, const msgpack_object *o, int depth)
{
	if (o->type != MSGPACK_OBJECT_BIN) {
		push_elem(L, x, o, depth);
		return;
	}
	lua_pushlstring(L, o->via.bin.ptr, o->via.bin.size);
	if (lua_rawget(L, 1) != LUA_TNIL)
		return;
	lua_pop(L, 1);
	push_obj(L, x, o, depth);
	lua_pushlstring(L, o->via.bin.ptr, o->via.bin.size);
	lua_pushvalue(L, -2);
	lua_rawset(L, 1);
}

static void
push_obj(lua_State *L, struct xl_lua *x, const msgpack_object *o, int depth)
{
	if (depth > XL_LUA_DEPTH)
		luaL_error(L, "value nested deeper than %d levels",
		    XL_LUA_DEPTH);
	luaL_checkstack(L, 4, "value nested too deeply");
	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		lua_pushnil(L);
		break;
	case MSGPACK_OBJECT_BOOLEAN:
		lua_pushboolean(L, o->via.boolean);
		break;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		if (o->via.u64 > (uint64_t)INT64_MAX) {
			char num[24];

			/* lua_pushfstring knows no unsigned conversions */
			snprintf(num, sizeof(num), "%llu",
			    (unsigned long long)o->via.u64);
			luaL_error(L, "integer %s is beyond Lua's range "
			    "(at most 2^63-1)", num);
		}
		lua_pushinteger(L, (lua_Integer)o->via.u64);
		break;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		lua_pushinteger(L, (lua_Integer)o->via.i64);
		break;
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		lua_pushnumber(L, o->via.f64);
		break;
	case MSGPACK_OBJECT_STR:
		lua_pushlstring(L, o->via.str.ptr, o->via.str.size);
		break;
	case MSGPACK_OBJECT_BIN:
		lua_createtable(L, 0, 1);
		lua_pushlstring(L, o->via.bin.ptr, o->via.bin.size);
		lua_setfield(L, -2, "bytes");
		set_mark(L, -1, x->mt_bytes);
		break;
	case MSGPACK_OBJECT_ARRAY:
		lua_createtable(L, (int)o->via.array.size, 0);
		for (uint32_t i = 0; i < o->via.array.size; i++) {
			push_elem(L, x, &o->via.array.ptr[i], depth + 1);
			lua_rawseti(L, -2, (lua_Integer)i + 1);
		}
		set_mark(L, -1, x->mt_array);
		break;
	case MSGPACK_OBJECT_MAP:
		lua_createtable(L, 0, (int)o->via.map.size);
		for (uint32_t i = 0; i < o->via.map.size; i++) {
			const msgpack_object *k = &o->via.map.ptr[i].key;

			if ((k->type == MSGPACK_OBJECT_FLOAT32 ||
			    k->type == MSGPACK_OBJECT_FLOAT64) &&
			    isnan(k->via.f64))
				luaL_error(L, "a map key is NaN: no Lua table "
				    "can hold it");
			push_key(L, x, k, depth + 1);
			push_elem(L, x, &o->via.map.ptr[i].val, depth + 1);
			lua_rawset(L, -3);
		}
		set_mark(L, -1, x->mt_map);
		break;
	default:
		luaL_error(L, "msgpack extension values cannot be converted");
	}
}

/* ---- Lua -> msgpack ---- */

static int
out_write(void *data, const char *buf, size_t len)
{
	struct xl_lua *x = data;

	if (len > x->outcap - x->outlen) {
		size_t cap = (x->outcap + len) * 2;
		uint8_t *p;

		if (cap > XL_LUA_MEM * 2 || (p = realloc(x->out, cap)) == NULL)
			return -1;
		x->out = p;
		x->outcap = cap;
	}
	memcpy(x->out + x->outlen, buf, len);
	x->outlen += len;
	return 0;
}

static void
ck(lua_State *L, int rc)
{
	if (rc != 0)
		luaL_error(L, "result too large");
}

static void pack_lua(lua_State *L, struct xl_lua *x, msgpack_packer *pk,
    int idx, int depth);

/* A table without a mark: an array if its keys are exactly 1..n. */
static bool
is_sequence(lua_State *L, int idx, lua_Integer *len)
{
	lua_Integer n = (lua_Integer)lua_rawlen(L, idx), count = 0;

	lua_pushnil(L);
	while (lua_next(L, idx) != 0) {
		lua_pop(L, 1);
		if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 ||
		    lua_tointeger(L, -1) > n) {
			lua_pop(L, 1);
			return false;
		}
		count++;
	}
	*len = n;
	return n > 0 && count == n;
}

static void
pack_table(lua_State *L, struct xl_lua *x, msgpack_packer *pk, int idx,
    int depth)
{
	lua_Integer n = 0;
	int kt, cnt;
	bool array;

	if (has_mark(L, idx, x->mt_bytes)) {
		size_t len;
		const char *s;

		if (lua_getfield(L, idx, "bytes") != LUA_TSTRING)
			luaL_error(L, "a bytes object must hold a string");
		s = lua_tolstring(L, -1, &len);
		ck(L, msgpack_pack_bin_with_body(pk, s, len));
		lua_pop(L, 1);
		return;
	}
	if (has_mark(L, idx, x->mt_map))
		array = false;
	else if (has_mark(L, idx, x->mt_array)) {
		n = (lua_Integer)lua_rawlen(L, idx);
		array = true;
	} else
		array = is_sequence(L, idx, &n);
	if (array) {
		ck(L, msgpack_pack_array(pk, (size_t)n));
		for (lua_Integer i = 1; i <= n; i++) {
			lua_rawgeti(L, idx, i);
			pack_lua(L, x, pk, lua_gettop(L), depth + 1);
			lua_pop(L, 1);
		}
		return;
	}
	cnt = sorted_keys(L, x, idx);
	kt = lua_gettop(L);
	ck(L, msgpack_pack_map(pk, (size_t)cnt));
	for (int i = 1; i <= cnt; i++) {
		lua_rawgeti(L, kt, i);
		pack_lua(L, x, pk, lua_gettop(L), depth + 1);
		lua_rawget(L, idx);
		pack_lua(L, x, pk, lua_gettop(L), depth + 1);
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
}

static void
pack_lua(lua_State *L, struct xl_lua *x, msgpack_packer *pk, int idx,
    int depth)
{
	size_t len;
	const char *s;

	/* a container here is level depth + 1 */
	if (depth >= XL_LUA_DEPTH && lua_type(L, idx) == LUA_TTABLE &&
	    !has_mark(L, idx, x->mt_bytes))
		luaL_error(L, "result nested deeper than %d levels (or a "
		    "cycle)", XL_LUA_DEPTH);
	luaL_checkstack(L, 6, "result nested too deeply");
	switch (lua_type(L, idx)) {
	case LUA_TNIL:
		ck(L, msgpack_pack_nil(pk));
		return;
	case LUA_TBOOLEAN:
		ck(L, lua_toboolean(L, idx) ? msgpack_pack_true(pk) :
		    msgpack_pack_false(pk));
		return;
	case LUA_TNUMBER:
		if (lua_isinteger(L, idx))
			ck(L, msgpack_pack_int64(pk, lua_tointeger(L, idx)));
		else
			ck(L, msgpack_pack_double(pk, lua_tonumber(L, idx)));
		return;
	case LUA_TSTRING:
		s = lua_tolstring(L, idx, &len);
		if (!proto_utf8_valid(s, len))
			luaL_error(L, "returned a string that is not valid "
			    "UTF-8 (use bytes(s) for a byte string)");
		ck(L, msgpack_pack_str_with_body(pk, s, len));
		return;
	case LUA_TLIGHTUSERDATA:
		if (lua_touserdata(L, idx) == NULLP) {
			ck(L, msgpack_pack_nil(pk));
			return;
		}
		break;
	case LUA_TTABLE:
		pack_table(L, x, pk, lua_absindex(L, idx), depth);
		return;
	default:
		break;
	}
	luaL_error(L, "cannot convert a %s to a value", luaL_typename(L, idx));
}

/* ---- calls ---- */

struct call_args {
	struct xl_lua *x;
	int ref;
	const msgpack_object *value, *prev;
	bool want;
};

static int
do_call(lua_State *L)
{
	struct call_args *ca = lua_touserdata(L, 1);
	struct xl_lua *x = ca->x;
	msgpack_packer pk;

	lua_settop(L, 0);
	lua_newtable(L);		/* 1: byte-string keys (push_key) */
	lua_rawgeti(L, LUA_REGISTRYINDEX, ca->ref);
	if (ca->value != NULL)
		push_obj(L, x, ca->value, 0);
	else
		lua_pushnil(L);
	if (ca->prev != NULL)
		push_obj(L, x, ca->prev, 0);
	else
		lua_pushnil(L);
	lua_call(L, 2, 1);
	if (ca->want) {
		x->outlen = 0;
		msgpack_packer_init(&pk, x, out_write);
		pack_lua(L, x, &pk, 2, 0);
	}
	return 0;
}

/* The error at the top of the stack, as text. */
static void
error_text(lua_State *L, int status, char *err, size_t cap)
{
	const char *m;

	if (status == LUA_ERRMEM)
		snprintf(err, cap, "memory limit exceeded (%u bytes per call)",
		    XL_LUA_MEM);
	else if ((m = lua_tostring(L, -1)) != NULL)
		snprintf(err, cap, "%s", m);
	else if (lua_isnil(L, -1))
		snprintf(err, cap, "error raised with nil");
	else
		snprintf(err, cap, "error raised with a %s, not a string",
		    luaL_typename(L, -1));
	proto_utf8_sanitize(err, strlen(err));
}

int
xl_lua_call(struct xl_lua *x, int ref, const msgpack_object *value,
    const msgpack_object *prev, uint8_t **res, size_t *reslen, char *err,
    size_t cap)
{
	lua_State *L = x->L;
	struct call_args ca = { x, ref, value, prev, res != NULL };
	int status, rc = 0;

	if (res != NULL) {
		*res = NULL;
		*reslen = 0;
	}
	lua_settop(L, 0);
	x->limit = x->used + XL_LUA_MEM;
	x->steps = XL_LUA_INSTR / HOOK_EVERY;
	lua_sethook(L, xl_hook, LUA_MASKCOUNT, HOOK_EVERY);
	lua_pushcfunction(L, do_call);
	lua_pushlightuserdata(L, &ca);
	status = lua_pcall(L, 1, 0, 0);
	lua_sethook(L, NULL, 0, 0);
	if (status != LUA_OK) {
		error_text(L, status, err, cap);
		rc = -1;
	} else if (res != NULL && !(x->outlen == 1 && x->out[0] == 0xc0)) {
		if ((*res = malloc(x->outlen)) == NULL) {
			snprintf(err, cap, "out of memory");
			rc = -1;
		} else {
			memcpy(*res, x->out, x->outlen);
			*reslen = x->outlen;
		}
	}
	lua_settop(L, 0);
	x->limit = XL_LUA_TOTAL;
	/* garbage of a call must not crowd out the next one */
	if (x->used > x->base + XL_LUA_MEM / 2) {
		lua_gc(L, LUA_GCCOLLECT);
		x->base = x->used;
	}
	if (x->outcap > 65536) {
		free(x->out);
		x->out = NULL;
		x->outcap = x->outlen = 0;
	}
	return rc;
}

struct compile_args {
	const char *code, *name;
	size_t len;
	int ref;
};

static int
do_compile(lua_State *L)
{
	struct compile_args *ca = lua_touserdata(L, 1);
	static const char pre[] = "local value, prev = ...; ";
	char chunk[80];
	luaL_Buffer b;
	int rc;

	snprintf(chunk, sizeof(chunk), "=%s", ca->name);
	lua_settop(L, 0);
	/* one line: the script's line numbers stay its own */
	luaL_buffinit(L, &b);
	luaL_addlstring(&b, pre, sizeof(pre) - 1);
	luaL_addlstring(&b, ca->code, ca->len);
	luaL_pushresult(&b);
	/* "t": text only, a bytecode string is refused */
	rc = luaL_loadbufferx(L, lua_tostring(L, -1), lua_rawlen(L, -1),
	    chunk, "t");
	if (rc != LUA_OK)
		return lua_error(L);
	/* the environment: the read-only globals (upvalue 1, _ENV) */
	lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
	lua_getfield(L, -1, "\x01sandbox");
	lua_remove(L, -2);
	lua_setupvalue(L, -2, 1);
	ca->ref = luaL_ref(L, LUA_REGISTRYINDEX);
	return 0;
}

int
xl_lua_compile(struct xl_lua *x, const char *code, size_t len,
    const char *name, char *err, size_t cap)
{
	lua_State *L = x->L;
	struct compile_args ca = { code, name, len, 0 };
	int status;

	if (len > XL_LUA_MEM) {
		snprintf(err, cap, "code too long (limit %u bytes)",
		    XL_LUA_MEM);
		return 0;
	}
	lua_settop(L, 0);
	lua_pushcfunction(L, do_compile);
	lua_pushlightuserdata(L, &ca);
	status = lua_pcall(L, 1, 0, 0);
	if (status != LUA_OK) {
		error_text(L, status, err, cap);
		ca.ref = 0;
	} else if (ca.ref <= 0) {
		snprintf(err, cap, "cannot keep the compiled code");
		ca.ref = 0;
	}
	lua_settop(L, 0);
	return ca.ref;
}

void
xl_lua_release(struct xl_lua *x, int ref)
{
	if (x != NULL && ref > 0)
		luaL_unref(x->L, LUA_REGISTRYINDEX, ref);
}

/* ---- setup ---- */

static int
readonly(lua_State *L)
{
	return luaL_error(L, "globals and libraries are read only (use "
	    "local variables)");
}

/* Replace the table at the top by a read-only proxy of it. */
static void
make_proxy(lua_State *L)
{
	lua_newtable(L);		/* proxy */
	lua_createtable(L, 0, 3);	/* its metatable */
	lua_pushvalue(L, -3);
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, readonly);
	lua_setfield(L, -2, "__newindex");
	lua_pushliteral(L, "locked");
	lua_setfield(L, -2, "__metatable");
	lua_setmetatable(L, -2);
	lua_remove(L, -2);
}

/* A copy of library lib with only the names listed. */
static void
copy_lib(lua_State *L, int G, const char *lib, const char *const *names)
{
	lua_getfield(L, G, lib);
	lua_newtable(L);
	for (; *names != NULL; names++) {
		lua_getfield(L, -2, *names);
		lua_setfield(L, -2, *names);
	}
	lua_remove(L, -2);
}

static void
wrap(lua_State *L, int lib, const char *name, lua_CFunction fn, bool plain)
{
	lua_getfield(L, lib, name);
	lua_pushboolean(L, plain);
	lua_pushcclosure(L, fn, 2);
	lua_setfield(L, lib, name);
}

static int
setup(lua_State *L)
{
	struct xl_lua *x = lua_touserdata(L, 1);
	static const char *const base[] = { "assert", "error", "ipairs",
	    "select", "tonumber", "type", "rawequal", "rawget", "rawlen",
	    NULL };
	static const char *const strf[] = { "byte", "char", "find", "format",
	    "gmatch", "gsub", "len", "lower", "match", "rep", "reverse",
	    "sub", "upper", NULL };
	static const char *const tabf[] = { "concat", "insert", "remove",
	    "sort", "unpack", NULL };
	static const char *const mathf[] = { "abs", "ceil", "cos", "deg",
	    "exp", "floor", "fmod", "huge", "log", "max", "maxinteger", "min",
	    "mininteger", "modf", "pi", "rad", "sin", "sqrt", "tan",
	    "tointeger", "type", "ult", "acos", "asin", "atan", NULL };
	static const char *const utf8f[] = { "char", "charpattern",
	    "codepoint", "codes", "len", "offset", NULL };
	static const char *const drop[] = { "dump", "pack", "unpack",
	    "packsize", NULL };
	int G, S, strlib;

	luaL_requiref(L, LUA_GNAME, luaopen_base, 1);
	luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 1);
	luaL_requiref(L, LUA_TABLIBNAME, luaopen_table, 1);
	luaL_requiref(L, LUA_MATHLIBNAME, luaopen_math, 1);
	luaL_requiref(L, LUA_UTF8LIBNAME, luaopen_utf8, 1);
	lua_settop(L, 1);
	lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
	G = lua_gettop(L);
	/* the real string table is every string's __index: bound it there
	 * ("s:rep(n)" must meet the same limits as string.rep) */
	lua_getfield(L, G, LUA_STRLIBNAME);
	strlib = lua_gettop(L);
	for (const char *const *d = drop; *d != NULL; d++) {
		lua_pushnil(L);
		lua_setfield(L, strlib, *d);
	}
	wrap(L, strlib, "find", sb_patfn, true);
	wrap(L, strlib, "match", sb_patfn, false);
	wrap(L, strlib, "gmatch", sb_patfn, false);
	wrap(L, strlib, "gsub", sb_patfn, false);
	wrap(L, strlib, "rep", sb_rep, false);
	wrap(L, strlib, "format", sb_format, false);
	lua_pop(L, 1);

	/* the marks of bytes, arrays and maps */
	lua_createtable(L, 0, 1);
	lua_pushliteral(L, "locked");
	lua_setfield(L, -2, "__metatable");
	x->mt_bytes = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_createtable(L, 0, 1);
	lua_pushliteral(L, "locked");
	lua_setfield(L, -2, "__metatable");
	x->mt_array = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_createtable(L, 0, 1);
	lua_pushliteral(L, "locked");
	lua_setfield(L, -2, "__metatable");
	x->mt_map = luaL_ref(L, LUA_REGISTRYINDEX);

	lua_newtable(L);
	S = lua_gettop(L);
	for (const char *const *n = base; *n != NULL; n++) {
		lua_getfield(L, G, *n);
		lua_setfield(L, S, *n);
	}
	copy_lib(L, G, LUA_STRLIBNAME, strf);
	make_proxy(L);
	lua_setfield(L, S, LUA_STRLIBNAME);
	copy_lib(L, G, LUA_TABLIBNAME, tabf);
	make_proxy(L);
	lua_setfield(L, S, LUA_TABLIBNAME);
	copy_lib(L, G, LUA_MATHLIBNAME, mathf);
	make_proxy(L);
	lua_setfield(L, S, LUA_MATHLIBNAME);
	copy_lib(L, G, LUA_UTF8LIBNAME, utf8f);
	make_proxy(L);
	lua_setfield(L, S, LUA_UTF8LIBNAME);
	lua_pushcfunction(L, sb_pairs);
	lua_setfield(L, S, "pairs");
	lua_pushcfunction(L, sb_tostring);
	lua_setfield(L, S, "tostring");
	lua_pushcfunction(L, sb_bytes);
	lua_setfield(L, S, "bytes");
	lua_pushcfunction(L, sb_isbytes);
	lua_setfield(L, S, "isbytes");
	lua_pushcfunction(L, sb_array);
	lua_setfield(L, S, "array");
	lua_pushcfunction(L, sb_map);
	lua_setfield(L, S, "map");
	lua_pushcfunction(L, sb_msgtype);
	lua_setfield(L, S, "msgtype");
	lua_pushlightuserdata(L, NULLP);
	lua_setfield(L, S, "null");
	make_proxy(L);
	/* kept in the real globals under a name no script can spell:
	 * scripts never see the real globals (their _ENV is the proxy) */
	lua_setfield(L, G, "\x01sandbox");
	return 0;
}

int
xl_lua_new(struct xl_lua **out)
{
	struct xl_lua *x;

	*out = NULL;
	if ((x = calloc(1, sizeof(*x))) == NULL)
		return -ENOMEM;
	x->limit = XL_LUA_TOTAL;
	if ((x->L = lua_newstate(xl_alloc, x)) == NULL) {
		free(x);
		return -ENOMEM;
	}
	lua_pushcfunction(x->L, setup);
	lua_pushlightuserdata(x->L, x);
	if (lua_pcall(x->L, 1, 0, 0) != LUA_OK) {
		lua_close(x->L);
		free(x);
		return -ENOMEM;
	}
	lua_gc(x->L, LUA_GCGEN, 0, 0);
	*out = x;
	return 0;
}

void
xl_lua_free(struct xl_lua *x)
{
	if (x == NULL)
		return;
	lua_close(x->L);
	free(x->out);
	free(x);
}
