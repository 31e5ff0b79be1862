/* mpjson: see mpjson.h. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "mpjson.h"
#include "proto.h"

/*
 * jansson cannot hold integers above INT64_MAX.  Before parsing, such
 * literals are rewritten into strings that start with this marker (a NUL
 * cannot come from the user's JSON unless written as \u0000, and then only
 * the exact form "\u0000U<digits>" would be mistaken), and turned back into
 * uint64 when the parsed tree is packed.
 */
#define BIGUINT_MARK "\\u0000U"

static int	putn(msgpack_sbuffer *, const char *, size_t);
static int	put(msgpack_sbuffer *, const char *);
static int	utf8_seq(const unsigned char *, size_t);
static int	put_hex(msgpack_sbuffer *, const char *, size_t);
static int	put_double(msgpack_sbuffer *, double, bool);
static bool	map_is_plain(const msgpack_object_map *);
static int	format_map(msgpack_sbuffer *, const msgpack_object_map *,
		    int);
static int	format_obj(msgpack_sbuffer *, const msgpack_object *, int,
		    int);
static int	hex_decode(const char *, size_t, char **, size_t *);
static int	pack_hex(msgpack_packer *, const json_t *, bool, int8_t,
		    char *, size_t);
static int	json_to_mp(msgpack_packer *, json_t *, int, bool, char *,
		    size_t);
static int	rewrite_big_ints(const char *, char **, bool *, char *,
		    size_t);

/* ---- text helpers ---- */

static int
putn(msgpack_sbuffer *out, const char *s, size_t len)
{
	if (len == 0)
		return (0);
	return (msgpack_sbuffer_write(out, s, len) == 0 ? 0 : -ENOMEM);
}

static int
put(msgpack_sbuffer *out, const char *s)
{
	return (putn(out, s, strlen(s)));
}

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0. */
static int
utf8_seq(const unsigned char *s, size_t n)
{
	uint32_t cp;
	int len, i;

	if (s[0] < 0x80)
		return (1);
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4, cp = s[0] & 0x07;
	else
		return (0);
	if ((size_t)len > n)
		return (0);
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return (0);
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	/* overlong forms, surrogates, beyond U+10FFFF */
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return (0);
	return (len);
}

int
mpjson_put_string(msgpack_sbuffer *out, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t mark = out->size, i = 0, start;
	char esc[8];
	int n, rc;

	if ((rc = putn(out, "\"", 1)) != 0)
		goto out;
	while (i < len) {
		/* copy the longest run that needs no escaping at once */
		start = i;
		while (i < len && p[i] >= 0x20 && p[i] != '"' &&
		    p[i] != '\\' && (n = utf8_seq(p + i, len - i)) != 0)
			i += (size_t)n;
		if ((rc = putn(out, s + start, i - start)) != 0)
			goto out;
		if (i == len)
			break;
		switch (p[i]) {
		case '"':  strcpy(esc, "\\\""); break;
		case '\\': strcpy(esc, "\\\\"); break;
		case '\n': strcpy(esc, "\\n"); break;
		case '\r': strcpy(esc, "\\r"); break;
		case '\t': strcpy(esc, "\\t"); break;
		case '\b': strcpy(esc, "\\b"); break;
		case '\f': strcpy(esc, "\\f"); break;
		default:
			if (p[i] < 0x20)
				snprintf(esc, sizeof(esc), "\\u%04x", p[i]);
			else
				strcpy(esc, "\xef\xbf\xbd");	/* U+FFFD */
			break;
		}
		if ((rc = put(out, esc)) != 0)
			goto out;
		i++;
	}
	rc = putn(out, "\"", 1);
out:
	if (rc != 0)
		out->size = mark;
	return (rc);
}

static int
put_hex(msgpack_sbuffer *out, const char *s, size_t len)
{
	static const char digits[] = "0123456789abcdef";
	char two[2];
	size_t i;

	for (i = 0; i < len; i++) {
		two[0] = digits[(unsigned char)s[i] >> 4];
		two[1] = digits[(unsigned char)s[i] & 0xf];
		if (putn(out, two, 2) != 0)
			return (-ENOMEM);
	}
	return (0);
}

/*
 * The shortest decimal that reads back as the same double (or float, for
 * values that were msgpack float32), always with a '.' or an exponent so
 * that it reads back as a float and not an integer.  NaN and infinities
 * have no JSON form: null.
 */
static int
put_double(msgpack_sbuffer *out, double d, bool is_f32)
{
	char buf[40];
	int prec;

	if (!isfinite(d))
		return (put(out, "null"));
	for (prec = 1; prec <= 17; prec++) {
		snprintf(buf, sizeof(buf), "%.*g", prec, d);
		if (is_f32 ? strtof(buf, NULL) == (float)d :
		    strtod(buf, NULL) == d)
			break;
	}
	if (strpbrk(buf, ".eE") == NULL)
		strcat(buf, ".0");
	return (put(out, buf));
}

/* ---- msgpack -> text ---- */

static int
key_cmp(const void *a, const void *b)
{
	const msgpack_object_str *x = *(const msgpack_object_str *const *)a;
	const msgpack_object_str *y = *(const msgpack_object_str *const *)b;
	uint32_t n = x->size < y->size ? x->size : y->size;
	int c = n > 0 ? memcmp(x->ptr, y->ptr, n) : 0;	/* "" may be NULL */

	return (c != 0 ? c : (x->size > y->size) - (x->size < y->size));
}

/* True if two keys of m (all strings) are the same bytes. */
static bool
keys_repeat(const msgpack_object_map *m)
{
	const msgpack_object_str **k;
	bool rep = false;
	uint32_t i;

	if (m->size < 2)
		return (false);
	if ((k = malloc(m->size * sizeof(*k))) == NULL)
		return (true);	/* the $map form is always right */
	for (i = 0; i < m->size; i++)
		k[i] = &m->ptr[i].key.via.str;
	qsort(k, m->size, sizeof(*k), key_cmp);
	for (i = 1; i < m->size && !rep; i++)
		rep = key_cmp(&k[i - 1], &k[i]) == 0;
	free(k);
	return (rep);
}

/*
 * A map prints as a JSON object when all keys are distinct valid UTF-8
 * strings without a NUL byte, unless it has a single key that would read
 * back as one of our tagged forms; otherwise as {"$map":[[k,v],...]}.
 */
static bool
map_is_plain(const msgpack_object_map *m)
{
	uint32_t i;

	for (i = 0; i < m->size; i++) {
		const msgpack_object *k = &m->ptr[i].key;

		if (k->type != MSGPACK_OBJECT_STR)
			return (false);
		/*
		 * jansson refuses a NUL in an object key (not in a value);
		 * invalid UTF-8 would print as U+FFFD and could make two
		 * keys one.
		 */
		if ((k->via.str.size > 0 &&
		    memchr(k->via.str.ptr, '\0', k->via.str.size) != NULL) ||
		    !proto_utf8_valid(k->via.str.ptr, k->via.str.size))
			return (false);
		if (m->size == 1 && (proto_str_eq(k, "$bin") ||
		    proto_str_eq(k, "$ext") || proto_str_eq(k, "$map")))
			return (false);
	}
	/* a JSON object keeps one value per key: repeated keys need $map */
	return (!keys_repeat(m));
}

static int
format_map(msgpack_sbuffer *out, const msgpack_object_map *m, int depth)
{
	bool plain = map_is_plain(m);
	uint32_t i;
	int rc;

	if ((rc = put(out, plain ? "{" : "{\"$map\":[")) != 0)
		return (rc);
	for (i = 0; i < m->size; i++) {
		if ((i > 0 && (rc = put(out, ",")) != 0) ||
		    (!plain && (rc = put(out, "[")) != 0) ||
		    (rc = format_obj(out, &m->ptr[i].key, depth - 1, 0)) != 0 ||
		    (rc = put(out, plain ? ":" : ",")) != 0 ||
		    (rc = format_obj(out, &m->ptr[i].val, depth - 1, 0)) != 0 ||
		    (!plain && (rc = put(out, "]")) != 0))
			return (rc);
	}
	return (put(out, plain ? "}" : "]}"));
}

static int
format_obj(msgpack_sbuffer *out, const msgpack_object *o, int depth,
    int flags)
{
	char num[32];
	uint32_t i;
	int rc;

	if (depth <= 0)
		return (-EINVAL);
	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		return (put(out, "null"));
	case MSGPACK_OBJECT_BOOLEAN:
		return (put(out, o->via.boolean ? "true" : "false"));
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		snprintf(num, sizeof(num), "%" PRIu64, o->via.u64);
		return (put(out, num));
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		snprintf(num, sizeof(num), "%" PRId64, o->via.i64);
		return (put(out, num));
	case MSGPACK_OBJECT_FLOAT32:
		return (put_double(out, o->via.f64, true));
	case MSGPACK_OBJECT_FLOAT64:
		return (put_double(out, o->via.f64, false));
	case MSGPACK_OBJECT_STR:
		if (flags & MPJSON_BARE_STR)
			return (putn(out, o->via.str.ptr, o->via.str.size));
		return (mpjson_put_string(out, o->via.str.ptr,
		    o->via.str.size));
	case MSGPACK_OBJECT_BIN:
		if (flags & MPJSON_BARE_BIN)
			return (putn(out, o->via.bin.ptr, o->via.bin.size));
		if ((rc = put(out, "{\"$bin\":\"")) != 0 ||
		    (rc = put_hex(out, o->via.bin.ptr, o->via.bin.size)) != 0)
			return (rc);
		return (put(out, "\"}"));
	case MSGPACK_OBJECT_EXT:
		snprintf(num, sizeof(num), "{\"$ext\":[%d,\"",
		    o->via.ext.type);
		if ((rc = put(out, num)) != 0 ||
		    (rc = put_hex(out, o->via.ext.ptr, o->via.ext.size)) != 0)
			return (rc);
		return (put(out, "\"]}"));
	case MSGPACK_OBJECT_ARRAY:
		if ((rc = put(out, "[")) != 0)
			return (rc);
		for (i = 0; i < o->via.array.size; i++) {
			if ((i > 0 && (rc = put(out, ",")) != 0) ||
			    (rc = format_obj(out, &o->via.array.ptr[i],
			    depth - 1, 0)) != 0)
				return (rc);
		}
		return (put(out, "]"));
	case MSGPACK_OBJECT_MAP:
		return (format_map(out, &o->via.map, depth));
	}
	return (-EINVAL);
}

int
mpjson_format(msgpack_sbuffer *out, const msgpack_object *o, int flags)
{
	size_t mark = out->size;
	int rc;

	if ((rc = format_obj(out, o, MPJSON_MAX_DEPTH, flags)) != 0)
		out->size = mark;
	return (rc);
}

int
mpjson_format_bytes(msgpack_sbuffer *out, const void *data, size_t len,
    int flags)
{
	msgpack_zone zone;
	msgpack_object o;
	size_t objlen;
	int rc;

	if (len == 0 || proto_scan(data, len, PROTO_MAX_NESTING,
	    &objlen) != 0 || objlen != len)
		return (-EPROTO);
	if (!msgpack_zone_init(&zone, 2048))
		return (-ENOMEM);
	if ((rc = proto_unpack(data, len, &zone, &o)) == 0)
		rc = mpjson_format(out, &o, flags);
	msgpack_zone_destroy(&zone);
	return (rc);
}

/* ---- JSON -> msgpack ---- */

/* Decode hex text into a new buffer (*bytes, *n); caller frees. */
static int
hex_decode(const char *s, size_t len, char **bytes, size_t *n)
{
	size_t i;
	int hi, lo;

	*bytes = NULL;
	*n = 0;
	if (len % 2 != 0)
		return (-EINVAL);
	for (i = 0; i < len; i++)
		if (!isxdigit((unsigned char)s[i]))
			return (-EINVAL);
	if ((*bytes = malloc(len / 2 + 1)) == NULL)
		return (-ENOMEM);
	for (i = 0; i < len; i += 2) {
		hi = isdigit((unsigned char)s[i]) ? s[i] - '0' :
		    tolower((unsigned char)s[i]) - 'a' + 10;
		lo = isdigit((unsigned char)s[i + 1]) ? s[i + 1] - '0' :
		    tolower((unsigned char)s[i + 1]) - 'a' + 10;
		(*bytes)[i / 2] = (char)(hi << 4 | lo);
	}
	*n = len / 2;
	return (0);
}

/* Pack the hex string hex as bin, or as ext of type ty. */
static int
pack_hex(msgpack_packer *pk, const json_t *hex, bool ext, int8_t ty,
    char *err, size_t errlen)
{
	char *bytes;
	size_t n;
	int rc;

	if ((rc = hex_decode(json_string_value(hex), json_string_length(hex),
	    &bytes, &n)) != 0) {
		if (rc == -EINVAL)
			snprintf(err, errlen, "\"%s\" needs an even number of "
			    "hex digits", ext ? "$ext" : "$bin");
		return (rc);
	}
	if (ext)
		rc = msgpack_pack_ext_with_body(pk, bytes, n, ty);
	else
		rc = msgpack_pack_bin_with_body(pk, bytes, n);
	free(bytes);
	return (rc == 0 ? 0 : -ENOMEM);
}

#define FAIL(...) do {							\
	snprintf(err, errlen, __VA_ARGS__);				\
	return (-EINVAL);						\
} while (0)
#define PACK(call) do {							\
	if ((call) != 0)						\
		return (-ENOMEM);					\
} while (0)

static int
json_to_mp(msgpack_packer *pk, json_t *j, int depth, bool big, char *err,
    size_t errlen)
{
	const char *key, *s;
	json_t *v, *item;
	size_t i, len;
	json_int_t ty;
	uint64_t u;
	char *end;
	int rc;

	if (depth <= 0)
		FAIL("nested deeper than %d levels", MPJSON_MAX_DEPTH);
	switch (json_typeof(j)) {
	case JSON_NULL:
		PACK(msgpack_pack_nil(pk));
		return (0);
	case JSON_TRUE:
		PACK(msgpack_pack_true(pk));
		return (0);
	case JSON_FALSE:
		PACK(msgpack_pack_false(pk));
		return (0);
	case JSON_INTEGER:
		PACK(msgpack_pack_int64(pk, json_integer_value(j)));
		return (0);
	case JSON_REAL:
		PACK(msgpack_pack_double(pk, json_real_value(j)));
		return (0);
	case JSON_STRING:
		s = json_string_value(j);
		len = json_string_length(j);
		if (big && len > 2 && s[0] == '\0' && s[1] == 'U') {
			errno = 0;
			u = strtoull(s + 2, &end, 10);
			if (errno == 0 && *end == '\0') {
				PACK(msgpack_pack_uint64(pk, u));
				return (0);
			}
		}
		PACK(msgpack_pack_str_with_body(pk, s, len));
		return (0);
	case JSON_ARRAY:
		if (json_array_size(j) > UINT32_MAX)
			FAIL("array too long");
		PACK(msgpack_pack_array(pk, json_array_size(j)));
		json_array_foreach(j, i, item) {
			if ((rc = json_to_mp(pk, item, depth - 1, big, err,
			    errlen)) != 0)
				return (rc);
		}
		return (0);
	case JSON_OBJECT:
		break;
	}

	/* the tagged single-key forms */
	if (json_object_size(j) == 1) {
		if ((v = json_object_get(j, "$bin")) != NULL &&
		    json_is_string(v))
			return (pack_hex(pk, v, false, 0, err, errlen));
		if ((v = json_object_get(j, "$ext")) != NULL &&
		    json_is_array(v)) {
			if (json_array_size(v) != 2 ||
			    !json_is_integer(json_array_get(v, 0)) ||
			    !json_is_string(json_array_get(v, 1)))
				FAIL("\"$ext\" needs [TYPE, \"HEX\"]");
			ty = json_integer_value(json_array_get(v, 0));
			if (ty < -128 || ty > 127)
				FAIL("\"$ext\" type must be -128..127");
			return (pack_hex(pk, json_array_get(v, 1), true,
			    (int8_t)ty, err, errlen));
		}
		if ((v = json_object_get(j, "$map")) != NULL &&
		    json_is_array(v)) {
			if (json_array_size(v) > UINT32_MAX)
				FAIL("map too long");
			PACK(msgpack_pack_map(pk, json_array_size(v)));
			json_array_foreach(v, i, item) {
				if (!json_is_array(item) ||
				    json_array_size(item) != 2)
					FAIL("\"$map\" needs [[KEY, VALUE], "
					    "...]");
				if ((rc = json_to_mp(pk,
				    json_array_get(item, 0), depth - 1, big,
				    err, errlen)) != 0 ||
				    (rc = json_to_mp(pk,
				    json_array_get(item, 1), depth - 1, big,
				    err, errlen)) != 0)
					return (rc);
			}
			return (0);
		}
	}
	if (json_object_size(j) > UINT32_MAX)
		FAIL("object too large");
	PACK(msgpack_pack_map(pk, json_object_size(j)));
	/* jansson keeps the keys in the order of the text */
	json_object_foreach(j, key, v) {
		PACK(msgpack_pack_str_with_body(pk, key, strlen(key)));
		if ((rc = json_to_mp(pk, v, depth - 1, big, err,
		    errlen)) != 0)
			return (rc);
	}
	return (0);
}

#undef FAIL
#undef PACK

/*
 * Copy text into a new string *copy, replacing integer literals above
 * INT64_MAX by marked strings (see BIGUINT_MARK).  Sets *changed if it did.
 * Returns 0, -EINVAL (an integer outside int64/uint64) or -ENOMEM, with a
 * message in err.
 */
static int
rewrite_big_ints(const char *text, char **copy, bool *changed, char *err,
    size_t errlen)
{
	msgpack_sbuffer out;
	const char *p = text, *tok = text;
	bool in_str = false, neg;
	size_t n, i;

	msgpack_sbuffer_init(&out);
	*copy = NULL;
	*changed = false;
	while (*p != '\0') {
		if (in_str) {
			if (*p == '\\' && p[1] != '\0') {
				if (putn(&out, p, 2) != 0)
					goto oom;
				p += 2;
				continue;
			}
			if (*p == '"')
				in_str = false;
		} else if (*p == '"')
			in_str = true;
		else if (*p == '-' || isdigit((unsigned char)*p)) {
			tok = p;
			while (*p != '\0' && (isdigit((unsigned char)*p) ||
			    strchr("+-.eE", *p) != NULL))
				p++;
			n = (size_t)(p - tok);
			neg = tok[0] == '-';
			for (i = neg ? 1 : 0; i < n; i++)
				if (!isdigit((unsigned char)tok[i]))
					break;
			if (i == n && n > (neg ? 1u : 0u) &&
			    n - (neg ? 1 : 0) >= 19) {
				/* maybe out of int64 range */
				char num[64];
				uint64_t u;

				if (n >= sizeof(num))
					goto range;
				memcpy(num, tok, n);
				num[n] = '\0';
				errno = 0;
				if (neg) {
					(void)strtoll(num, NULL, 10);
					if (errno != 0)
						goto range;
				} else {
					u = strtoull(num, NULL, 10);
					if (errno != 0)
						goto range;
					if (u > INT64_MAX) {
						if (put(&out, "\""
						    BIGUINT_MARK) != 0 ||
						    putn(&out, tok, n) != 0 ||
						    put(&out, "\"") != 0)
							goto oom;
						*changed = true;
						continue;
					}
				}
			}
			if (putn(&out, tok, n) != 0)
				goto oom;
			continue;
		}
		if (putn(&out, p, 1) != 0)
			goto oom;
		p++;
	}
	if (msgpack_sbuffer_write(&out, "", 1) != 0)
		goto oom;
	*copy = msgpack_sbuffer_release(&out);
	return (0);
range:
	snprintf(err, errlen, "integer %.*s out of range (int64/uint64)",
	    (int)(p - tok > 40 ? 40 : p - tok), tok);
	msgpack_sbuffer_destroy(&out);
	return (-EINVAL);
oom:
	snprintf(err, errlen, "out of memory");
	msgpack_sbuffer_destroy(&out);
	return (-ENOMEM);
}

/*
 * The value is packed into a scratch buffer first and handed to pk only
 * once complete, so a failure half-way (bad hex deep inside) packs nothing.
 */
int
mpjson_parse(msgpack_packer *pk, const char *text, char *err, size_t errlen)
{
	msgpack_sbuffer sb;
	msgpack_packer tmp;
	json_error_t jerr;
	json_t *j;
	char *copy;
	bool big;
	int rc;

	if ((rc = rewrite_big_ints(text, &copy, &big, err, errlen)) != 0)
		return (rc);
	j = json_loads(copy, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
	free(copy);
	if (j == NULL) {
		/* positions refer to the rewritten text only if it changed */
		if (big)
			snprintf(err, errlen, "%s", jerr.text);
		else
			snprintf(err, errlen, "%s (at column %d)", jerr.text,
			    jerr.column);
#if JANSSON_VERSION_HEX >= 0x020b00	/* json_error_code() */
		if (json_error_code(&jerr) == json_error_out_of_memory)
			return (-ENOMEM);
#endif
		return (-EINVAL);
	}
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&tmp, &sb, msgpack_sbuffer_write);
	if ((rc = json_to_mp(&tmp, j, MPJSON_MAX_DEPTH, big, err,
	    errlen)) == 0 && (*pk->callback)(pk->data, sb.data, sb.size) != 0)
		rc = -ENOMEM;
	if (rc == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	msgpack_sbuffer_destroy(&sb);
	json_decref(j);
	return (rc);
}
