/*
 * fuzz_xlate_lua: libFuzzer harness for the translator's msgpack <-> Lua
 * conversion (agent/xlate_lua.c): the value going into a script and the
 * result coming out of it.
 *
 * The first byte of an input picks a script, the rest is one msgpack
 * value (inputs that are not exactly one value are skipped):
 *   0  return value                   (both conversions)
 *   1  return msgtype(value)          (the kinds)
 *   2  copy every pair with pairs()   (sorted iteration)
 *   3  return {value, value}          (nesting, an unmarked sequence)
 * Invariants: a call either fails with an error text or returns valid
 * msgpack; a successful result run through the same script again gives
 * the very same bytes (the conversion reaches a fixed point at once: Lua
 * normalises float keys, sorts keys and widens floats once, never
 * again); the sandbox survives every input.
 *
 * Built with -DFUZZ_MAKE_SEEDS this file is a program that writes seed
 * inputs into the directory argv[1].
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "proto.h"
#include "xlate_lua.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FAIL(...) do {							\
	fprintf(stderr, "fuzz_xlate_lua: " __VA_ARGS__);		\
	fputc('\n', stderr);						\
	abort();							\
} while (0)

static const char *const scripts[] = {
	"return value",
	"return msgtype(value)",
	"if msgtype(value) ~= 'map' and msgtype(value) ~= 'array' then "
	    "return value end local t = {} for k, v in pairs(value) do "
	    "t[k] = v end return t",
	"return {value, value}",
};
#define NSCRIPTS (sizeof(scripts) / sizeof(scripts[0]))

static struct xl_lua *lua;
static int refs[NSCRIPTS];

static void
init(void)
{
	char err[512];

	if (lua != NULL)
		return;
	if (xl_lua_new(&lua) != 0)
		FAIL("no sandbox");
	for (size_t i = 0; i < NSCRIPTS; i++)
		if ((refs[i] = xl_lua_compile(lua, scripts[i],
		    strlen(scripts[i]), "fuzz", err, sizeof(err))) == 0)
			FAIL("script %zu: %s", i, err);
}

/* Run script s on the msgpack bytes; 0 with *out, or -1. */
static int
run(int s, const uint8_t *in, size_t len, uint8_t **out, size_t *outlen)
{
	msgpack_zone zone;
	msgpack_object o;
	char err[1024];
	int rc;

	msgpack_zone_init(&zone, 1024);
	if (proto_unpack(in, len, &zone, &o) != 0) {
		msgpack_zone_destroy(&zone);
		return -2;
	}
	rc = xl_lua_call(lua, refs[s], &o, NULL, out, outlen, err,
	    sizeof(err));
	msgpack_zone_destroy(&zone);
	if (rc != 0 && err[0] == 0)
		FAIL("a failed call without an error text");
	return rc;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *a = NULL, *b = NULL;
	size_t alen = 0, blen = 0, used;
	int s;

	if (size < 2)
		return 0;
	init();
	s = data[0] % NSCRIPTS;
	data++;
	size--;
	if (proto_scan(data, size, PROTO_MAX_NESTING, &used) != 0 ||
	    used != size)
		return 0;
	if (run(s, data, size, &a, &alen) != 0)
		return 0;
	if (a == NULL)
		return 0;	/* nil */
	if (proto_scan(a, alen, PROTO_MAX_NESTING, &used) != 0 ||
	    used != alen)
		FAIL("script %d returned bytes that are no msgpack value", s);
	if (s == 0 || s == 2) {
		if (run(s, a, alen, &b, &blen) != 0)
			FAIL("script %d refused its own result", s);
		if (b == NULL || blen != alen || memcmp(a, b, alen) != 0)
			FAIL("script %d: no fixed point (%zu bytes, then %zu)",
			    s, alen, blen);
	}
	free(a);
	free(b);
	return 0;
}

#ifdef FUZZ_MAKE_SEEDS
static void
seed(const char *dir, int n, int script, const char *hex)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/seed%02d", dir, n);
	if ((f = fopen(path, "wb")) == NULL)
		FAIL("cannot write %s", path);
	fputc(script, f);
	for (; hex[0] != 0 && hex[1] != 0; hex += 2) {
		unsigned v;

		sscanf(hex, "%2x", &v);
		fputc((int)v, f);
	}
	fclose(f);
}

int
main(int argc, char **argv)
{
	/* nil, int, uint64 max, float32, str, bin, array with nil, map with
	 * int/str/float keys, nested */
	static const char *const vals[] = { "c0", "2a", "cfffffffffffffffff",
	    "ca3fc00000", "a3616263", "c40201ff", "93c001c0",
	    "8301a178a17901cb3ff0000000000000c3", "9181a16191c0" };
	int n = 0;

	if (argc != 2)
		return 2;
	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++)
		for (int s = 0; s < (int)NSCRIPTS; s++)
			seed(argv[1], n++, s, vals[i]);
	return 0;
}
#endif
