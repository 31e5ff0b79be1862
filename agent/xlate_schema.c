/*
 * xlate_schema: see xlate_schema.h.  The schema and the value are both
 * msgpack objects here; nothing is converted to JSON.  A schema is
 * checked for shape when its record is written (xl_schema_invalid), so
 * the checker may assume the shape but still never trusts it blindly:
 * a replicated record was not checked.
 */
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "xlate_schema.h"

/* Nesting of schemas (items, properties, additionalProperties). */
#define SCHEMA_DEPTH 32

static const char *const type_names[] = { "null", "boolean", "integer",
    "number", "string", "bytes", "array", "object", NULL };

static bool
key_is(const msgpack_object *k, const char *s)
{
	return proto_str_eq(k, s);
}

static bool
is_number(const msgpack_object *o)
{
	return o->type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
	    o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER ||
	    o->type == MSGPACK_OBJECT_FLOAT32 ||
	    o->type == MSGPACK_OBJECT_FLOAT64;
}

static bool
is_int(const msgpack_object *o)
{
	return o->type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
	    o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER;
}

static bool
type_known(const msgpack_object *t)
{
	for (int i = 0; type_names[i] != NULL; i++)
		if (proto_str_eq(t, type_names[i]))
			return true;
	return false;
}

static const char *
invalid(const msgpack_object *s, char *err, size_t cap, int depth);

static const char *
fail(char *err, size_t cap, const char *what)
{
	snprintf(err, cap, "Bad JSON schema: %s", what);
	return err;
}

static const char *
invalid_kw(const msgpack_object *k, const msgpack_object *v, char *err,
    size_t cap, int depth)
{
	regex_t re;
	char *pat;
	int rc;

	if (key_is(k, "type")) {
		if (v->type == MSGPACK_OBJECT_STR)
			return type_known(v) ? NULL :
			    fail(err, cap, "unknown type name");
		if (v->type != MSGPACK_OBJECT_ARRAY || v->via.array.size == 0)
			return fail(err, cap, "type must be a name or a list");
		for (uint32_t i = 0; i < v->via.array.size; i++)
			if (!type_known(&v->via.array.ptr[i]))
				return fail(err, cap, "unknown type name");
		return NULL;
	}
	if (key_is(k, "enum"))
		return v->type == MSGPACK_OBJECT_ARRAY ? NULL :
		    fail(err, cap, "enum must be a list");
	if (key_is(k, "const") || key_is(k, "title") ||
	    key_is(k, "description") || key_is(k, "$comment"))
		return NULL;
	if (key_is(k, "minimum") || key_is(k, "maximum") ||
	    key_is(k, "exclusiveMinimum") || key_is(k, "exclusiveMaximum"))
		return is_number(v) && !(!is_int(v) && isnan(v->via.f64)) ?
		    NULL : fail(err, cap, "a bound must be a number");
	if (key_is(k, "minLength") || key_is(k, "maxLength"))
		return v->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? NULL :
		    fail(err, cap, "a length must be a non-negative integer");
	if (key_is(k, "pattern")) {
		if (v->type != MSGPACK_OBJECT_STR || v->via.str.size > 4096)
			return fail(err, cap, "pattern must be a string");
		if ((pat = strndup(v->via.str.ptr, v->via.str.size)) == NULL)
			return fail(err, cap, "out of memory");
		rc = regcomp(&re, pat, REG_EXTENDED | REG_NOSUB);
		free(pat);
		if (rc != 0)
			return fail(err, cap, "pattern is no POSIX extended "
			    "regular expression");
		regfree(&re);
		return NULL;
	}
	if (key_is(k, "items"))
		return invalid(v, err, cap, depth + 1);
	if (key_is(k, "properties")) {
		if (v->type != MSGPACK_OBJECT_MAP)
			return fail(err, cap, "properties must be a map");
		for (uint32_t i = 0; i < v->via.map.size; i++) {
			if (v->via.map.ptr[i].key.type != MSGPACK_OBJECT_STR)
				return fail(err, cap, "property names are "
				    "strings");
			if (invalid(&v->via.map.ptr[i].val, err, cap,
			    depth + 1) != NULL)
				return err;
		}
		return NULL;
	}
	if (key_is(k, "required")) {
		if (v->type != MSGPACK_OBJECT_ARRAY)
			return fail(err, cap, "required must be a list");
		for (uint32_t i = 0; i < v->via.array.size; i++)
			if (v->via.array.ptr[i].type != MSGPACK_OBJECT_STR)
				return fail(err, cap, "required names are "
				    "strings");
		return NULL;
	}
	if (key_is(k, "additionalProperties"))
		return v->type == MSGPACK_OBJECT_BOOLEAN ? NULL :
		    invalid(v, err, cap, depth + 1);
	snprintf(err, cap, "Bad JSON schema: keyword %.*s is not supported "
	    "(see docs/translator.md)", k->type == MSGPACK_OBJECT_STR ?
	    (int)(k->via.str.size > 64 ? 64 : k->via.str.size) : 1,
	    k->type == MSGPACK_OBJECT_STR ? k->via.str.ptr : "?");
	proto_utf8_sanitize(err, strlen(err));
	return err;
}

static const char *
invalid(const msgpack_object *s, char *err, size_t cap, int depth)
{
	if (depth > SCHEMA_DEPTH)
		return fail(err, cap, "nested too deeply");
	if (s->type != MSGPACK_OBJECT_MAP)
		return fail(err, cap, "a schema must be a map");
	for (uint32_t i = 0; i < s->via.map.size; i++)
		if (invalid_kw(&s->via.map.ptr[i].key, &s->via.map.ptr[i].val,
		    err, cap, depth) != NULL)
			return err;
	return NULL;
}

const char *
xl_schema_invalid(const msgpack_object *s, char *err, size_t cap)
{
	return invalid(s, err, cap, 0);
}

/* ---- checking ---- */

static bool
type_matches(const msgpack_object *t, const msgpack_object *v)
{
	switch (v->type) {
	case MSGPACK_OBJECT_NIL:
		return proto_str_eq(t, "null");
	case MSGPACK_OBJECT_BOOLEAN:
		return proto_str_eq(t, "boolean");
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		return proto_str_eq(t, "integer") || proto_str_eq(t, "number");
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		return proto_str_eq(t, "number");
	case MSGPACK_OBJECT_STR:
		return proto_str_eq(t, "string");
	case MSGPACK_OBJECT_BIN:
		return proto_str_eq(t, "bytes");
	case MSGPACK_OBJECT_ARRAY:
		return proto_str_eq(t, "array");
	case MSGPACK_OBJECT_MAP:
		return proto_str_eq(t, "object");
	default:
		return false;
	}
}

/* -1, 0, 1: integers exactly, anything with a float as doubles. */
static int
num_cmp(const msgpack_object *a, const msgpack_object *b)
{
	if (is_int(a) && is_int(b)) {
		bool an = a->type == MSGPACK_OBJECT_NEGATIVE_INTEGER;
		bool bn = b->type == MSGPACK_OBJECT_NEGATIVE_INTEGER;

		if (an != bn)
			return an ? -1 : 1;
		if (an)
			return a->via.i64 < b->via.i64 ? -1 :
			    a->via.i64 > b->via.i64;
		return a->via.u64 < b->via.u64 ? -1 : a->via.u64 > b->via.u64;
	} else {
		double x = is_int(a) ? (a->type ==
		    MSGPACK_OBJECT_NEGATIVE_INTEGER ? (double)a->via.i64 :
		    (double)a->via.u64) : a->via.f64;
		double y = is_int(b) ? (b->type ==
		    MSGPACK_OBJECT_NEGATIVE_INTEGER ? (double)b->via.i64 :
		    (double)b->via.u64) : b->via.f64;

		/* NaN is outside every bound */
		if (isnan(x) || isnan(y))
			return 2;
		return x < y ? -1 : x > y;
	}
}

static bool
equal(const msgpack_object *a, const msgpack_object *b)
{
	return msgpack_object_equal(*a, *b);
}

static void
show(char *buf, size_t cap, const msgpack_object *o)
{
	if (msgpack_object_print_buffer(buf, cap, *o) < 0)
		snprintf(buf, cap, "?");
	proto_utf8_sanitize(buf, strlen(buf));
}

static size_t
codepoints(const char *s, size_t n)
{
	size_t c = 0;

	for (size_t i = 0; i < n; i++)
		c += ((unsigned char)s[i] & 0xc0) != 0x80;
	return c;
}

static bool check(const msgpack_object *s, const msgpack_object *v,
    char *err, size_t cap, int depth);

static bool
check_kw(const msgpack_object *s, const msgpack_object *k,
    const msgpack_object *kv, const msgpack_object *v, char *err, size_t cap,
    int depth)
{
	char a[200], b[200];
	int c;

	if (key_is(k, "type")) {
		if (kv->type == MSGPACK_OBJECT_ARRAY) {
			for (uint32_t i = 0; i < kv->via.array.size; i++)
				if (type_matches(&kv->via.array.ptr[i], v))
					return true;
		} else if (type_matches(kv, v))
			return true;
		show(a, sizeof(a), v);
		show(b, sizeof(b), kv);
		snprintf(err, cap, "%s is not of type %s", a, b);
		return false;
	}
	if (key_is(k, "enum") && kv->type == MSGPACK_OBJECT_ARRAY) {
		for (uint32_t i = 0; i < kv->via.array.size; i++)
			if (equal(&kv->via.array.ptr[i], v))
				return true;
		show(a, sizeof(a), v);
		snprintf(err, cap, "%s is not one of the enum", a);
		return false;
	}
	if (key_is(k, "const")) {
		if (equal(kv, v))
			return true;
		show(a, sizeof(a), v);
		show(b, sizeof(b), kv);
		snprintf(err, cap, "%s is not %s", a, b);
		return false;
	}
	if (is_number(kv) && is_number(v) && (key_is(k, "minimum") ||
	    key_is(k, "maximum") || key_is(k, "exclusiveMinimum") ||
	    key_is(k, "exclusiveMaximum"))) {
		c = num_cmp(v, kv);
		if (c != 2 && (key_is(k, "minimum") ? c >= 0 :
		    key_is(k, "maximum") ? c <= 0 :
		    key_is(k, "exclusiveMinimum") ? c > 0 : c < 0))
			return true;
		show(a, sizeof(a), v);
		show(b, sizeof(b), kv);
		snprintf(err, cap, "%s is outside %.*s %s", a,
		    (int)k->via.str.size, k->via.str.ptr, b);
		return false;
	}
	if ((key_is(k, "minLength") || key_is(k, "maxLength")) &&
	    kv->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
	    (v->type == MSGPACK_OBJECT_STR || v->type == MSGPACK_OBJECT_BIN)) {
		size_t n = v->type == MSGPACK_OBJECT_STR ?
		    codepoints(v->via.str.ptr, v->via.str.size) :
		    v->via.bin.size;

		if (key_is(k, "minLength") ? n >= kv->via.u64 :
		    n <= kv->via.u64)
			return true;
		snprintf(err, cap, "length %zu is outside %.*s %llu", n,
		    (int)k->via.str.size, k->via.str.ptr,
		    (unsigned long long)kv->via.u64);
		return false;
	}
	if (key_is(k, "pattern") && kv->type == MSGPACK_OBJECT_STR &&
	    v->type == MSGPACK_OBJECT_STR) {
		regex_t re;
		char *pat = strndup(kv->via.str.ptr, kv->via.str.size);
		char *str = strndup(v->via.str.ptr, v->via.str.size);
		bool ok = false;

		/* a string with a NUL byte never matches: regexec would
		 * see only its start */
		if (pat != NULL && str != NULL &&
		    memchr(v->via.str.ptr, 0, v->via.str.size) == NULL &&
		    regcomp(&re, pat, REG_EXTENDED | REG_NOSUB) == 0) {
			ok = regexec(&re, str, 0, NULL, 0) == 0;
			regfree(&re);
		}
		free(pat);
		free(str);
		if (ok)
			return true;
		show(a, sizeof(a), v);
		snprintf(err, cap, "%s does not match pattern %.*s", a,
		    (int)(kv->via.str.size > 100 ? 100 : kv->via.str.size),
		    kv->via.str.ptr);
		return false;
	}
	if (key_is(k, "items") && v->type == MSGPACK_OBJECT_ARRAY) {
		for (uint32_t i = 0; i < v->via.array.size; i++)
			if (!check(kv, &v->via.array.ptr[i], b, sizeof(b),
			    depth + 1)) {
				snprintf(err, cap, "item %u: %s", i, b);
				return false;
			}
		return true;
	}
	if (key_is(k, "properties") && kv->type == MSGPACK_OBJECT_MAP &&
	    v->type == MSGPACK_OBJECT_MAP) {
		for (uint32_t i = 0; i < v->via.map.size; i++) {
			const msgpack_object *vk = &v->via.map.ptr[i].key;
			const msgpack_object *ps;

			if (vk->type != MSGPACK_OBJECT_STR)
				continue;
			for (uint32_t j = 0; j < kv->via.map.size; j++) {
				ps = &kv->via.map.ptr[j].val;
				if (!equal(&kv->via.map.ptr[j].key, vk))
					continue;
				if (!check(ps, &v->via.map.ptr[i].val, b,
				    sizeof(b), depth + 1)) {
					snprintf(err, cap, "property %.*s: %s",
					    (int)(vk->via.str.size > 64 ? 64 :
					    vk->via.str.size), vk->via.str.ptr,
					    b);
					return false;
				}
			}
		}
		return true;
	}
	if (key_is(k, "required") && kv->type == MSGPACK_OBJECT_ARRAY &&
	    v->type == MSGPACK_OBJECT_MAP) {
		for (uint32_t i = 0; i < kv->via.array.size; i++) {
			bool found = false;

			for (uint32_t j = 0; j < v->via.map.size && !found; j++)
				found = equal(&v->via.map.ptr[j].key,
				    &kv->via.array.ptr[i]);
			if (!found) {
				show(a, sizeof(a), &kv->via.array.ptr[i]);
				snprintf(err, cap, "required property %s is "
				    "missing", a);
				return false;
			}
		}
		return true;
	}
	if (key_is(k, "additionalProperties") &&
	    v->type == MSGPACK_OBJECT_MAP) {
		const msgpack_object *props = NULL;

		for (uint32_t i = 0; i < s->via.map.size; i++)
			if (key_is(&s->via.map.ptr[i].key, "properties") &&
			    s->via.map.ptr[i].val.type == MSGPACK_OBJECT_MAP)
				props = &s->via.map.ptr[i].val;
		for (uint32_t i = 0; i < v->via.map.size; i++) {
			const msgpack_object *vk = &v->via.map.ptr[i].key;
			bool named = false;

			/* a non-string key is never a named property */
			for (uint32_t j = 0; props != NULL &&
			    vk->type == MSGPACK_OBJECT_STR &&
			    j < props->via.map.size && !named; j++)
				named = equal(&props->via.map.ptr[j].key, vk);
			if (named)
				continue;
			show(a, sizeof(a), vk);
			if (kv->type == MSGPACK_OBJECT_BOOLEAN) {
				if (kv->via.boolean)
					continue;
				snprintf(err, cap, "property %s is not "
				    "allowed", a);
				return false;
			}
			if (!check(kv, &v->via.map.ptr[i].val, b, sizeof(b),
			    depth + 1)) {
				snprintf(err, cap, "property %s: %s", a, b);
				return false;
			}
		}
		return true;
	}
	return true;	/* a keyword for other kinds of values */
}

static bool
check(const msgpack_object *s, const msgpack_object *v, char *err,
    size_t cap, int depth)
{
	if (depth > SCHEMA_DEPTH || s->type != MSGPACK_OBJECT_MAP) {
		snprintf(err, cap, "Bad JSON schema in the type record");
		return false;
	}
	for (uint32_t i = 0; i < s->via.map.size; i++)
		if (!check_kw(s, &s->via.map.ptr[i].key,
		    &s->via.map.ptr[i].val, v, err, cap, depth))
			return false;
	return true;
}

bool
xl_schema_check(const msgpack_object *s, const msgpack_object *v, char *err,
    size_t cap)
{
	msgpack_object nil = { .type = MSGPACK_OBJECT_NIL };

	return check(s, v != NULL ? v : &nil, err, cap, 0);
}
