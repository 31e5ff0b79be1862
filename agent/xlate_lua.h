/*
 * xlate_lua: the translator's embedded language, a sandboxed Lua 5.4.
 *
 * A code string of a type or codec record is the body of a function whose
 * parameters are `value` and `prev` (decoders get the stored value in prev,
 * everything else nil).  A check passes by returning and fails by raising
 * (error("not an int")); a codec returns the converted value or raises.
 * Every node runs the same code on the same data, so a script must give
 * the same answer everywhere; the sandbox makes that so:
 *
 *   - globals: assert error ipairs pairs select tonumber tostring type
 *     rawequal rawget rawlen, the libraries math (without random and
 *     randomseed), string (without dump, pack, unpack, packsize), table
 *     (concat insert remove sort unpack) and utf8, and the value helpers
 *     below.  No I/O, no os, io, load, require, debug, coroutine,
 *     collectgarbage, setmetatable, getmetatable, rawset, next, pcall.
 *     Globals and libraries are read only: a script cannot leave state
 *     behind for the next call.
 *   - pairs() walks keys in a fixed order (nil < false < true <
 *     integers < floats < strings < bytes, each by value), so what a
 *     script builds from it does not depend on hash order; tostring()
 *     and string.format never show addresses ("%p" is refused).
 *   - limits per call: XL_LUA_INSTR VM instructions (a count hook) and
 *     XL_LUA_MEM bytes of new allocation (the state's allocator); the
 *     pattern functions (find, match, gmatch, gsub) refuse a subject and
 *     pattern whose worst case exceeds XL_LUA_PATTERN_STEPS, because C
 *     code runs without the hook; string.rep is bounded alike.  A script
 *     past a limit fails its operation with a clear error.
 *
 * Values (msgpack <-> Lua):
 *   nil <-> nil (inside arrays and maps: the light value `null`);
 *   booleans; integers <-> integers and floats <-> floats (math.type tells
 *   them apart; an unsigned integer above 2^63-1 is refused, never
 *   wrapped); str <-> string (a returned string must be valid UTF-8);
 *   bin <-> a bytes object: isbytes(v) is true, v.bytes is the raw string,
 *   bytes(s) makes one; array <-> table marked as array; map <-> table
 *   marked as map.  A returned table without a mark is an array if its
 *   keys are exactly 1..n (n >= 1), else a map ({} is an empty map);
 *   array(t) and map(t) mark a table.  msgtype(v) names the msgpack kind:
 *   "nil" "boolean" "integer" "float" "string" "bytes" "array" "map".
 *   Map keys come back sorted (pairs' order).  Float map keys with an
 *   integral value become integers (Lua's rule); a NaN key is refused;
 *   equal byte-string keys merge coming in, and two bytes objects with
 *   equal content as keys of one table are refused going out (or by
 *   pairs): their order would follow addresses.
 *   Functions, tables as keys, cycles and nesting deeper than
 *   XL_LUA_DEPTH are refused.
 *
 * One state per agent (single-threaded, like the agent).  Compiled
 * functions live in the state's registry until released.
 */
#ifndef DISTKV_XLATE_LUA_H
#define DISTKV_XLATE_LUA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "proto.h"

/* VM instructions of one call: a few milliseconds (bench/README.md). */
#define XL_LUA_INSTR 1000000
/* Bytes one call may allocate beyond what the state holds at its start. */
#define XL_LUA_MEM (8u << 20)
/* Worst-case steps of one pattern function call (no hook runs in C). */
#define XL_LUA_PATTERN_STEPS 20000000.0
/* Nested containers of values in and out: what the agent accepts from a
 * client (a result must be storable). */
#define XL_LUA_DEPTH PROTO_MAX_NESTING
/* Bytes of compiled code and cached state, all records together. */
#define XL_LUA_TOTAL (256u << 20)

struct xl_lua;

/* A new sandbox; 0 or -ENOMEM. */
int xl_lua_new(struct xl_lua **out);
void xl_lua_free(struct xl_lua *x);

/*
 * Compile code (text only: bytecode is refused) as the body of
 * function(value, prev).  name labels its error messages ("type int").
 * Returns a reference (> 0), or 0 with the syntax error in err.
 */
int xl_lua_compile(struct xl_lua *x, const char *code, size_t len,
    const char *name, char *err, size_t cap);

/* Drop a compiled function (0: nothing). */
void xl_lua_release(struct xl_lua *x, int ref);

/*
 * Call a compiled function with value and prev (NULL: nil).  With res
 * set, the result is packed (canonical msgpack) into a malloc'ed *res of
 * *reslen bytes, *res NULL for nil; without, the result is ignored.
 * Returns 0, or -1 with the script's error (or the limit it hit) in err.
 */
int xl_lua_call(struct xl_lua *x, int ref, const msgpack_object *value,
    const msgpack_object *prev, uint8_t **res, size_t *reslen, char *err,
    size_t cap);

#endif
