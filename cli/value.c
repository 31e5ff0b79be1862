/* value: see value.h. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "value.h"

/*
 * jansson cannot hold integers above INT64_MAX.  Before parsing, such
 * literals are rewritten into strings that start with this marker (a NUL
 * cannot come from the user's JSON unless written as \u0000, and then only
 * the exact form "\u0000U<digits>" would be mistaken), and turned back into
 * uint64 when the parsed tree is converted.
 */
#define BIGUINT_MARK "\\u0000U"

static int	utf8_seq(const unsigned char *, size_t);
static int	put_hex(struct mp_buf *, const char *, size_t);
static int	put_double(struct mp_buf *, double, bool);
static int	format_obj(struct mp_buf *, struct mp_reader *, int, int);
static int	format_map(struct mp_buf *, struct mp_reader *, uint32_t,
		    int);
static int	map_is_plain(struct mp_reader, uint32_t, int);
static int	hex_decode(const char *, size_t, struct mp_buf *);
static int	json_to_mp(json_t *, struct mp_buf *, int, bool, char *,
		    size_t);
static char	*rewrite_big_ints(const char *, bool *, char *, size_t);

/* ---- text helpers ---- */

int
value_putn(struct mp_buf *out, const char *s, size_t len)
{
	uint8_t *nb;
	size_t ncap;

	if (len > SIZE_MAX / 2 - out->len)
		return (-1);
	if (out->len + len > out->cap) {
		ncap = out->cap != 0 ? out->cap : 128;
		while (ncap < out->len + len)
			ncap *= 2;
		if ((nb = realloc(out->buf, ncap)) == NULL)
			return (-1);
		out->buf = nb;
		out->cap = ncap;
	}
	if (len != 0)
		memcpy(out->buf + out->len, s, len);
	out->len += len;
	return (0);
}

int
value_puts(struct mp_buf *out, const char *s)
{
	return (value_putn(out, s, strlen(s)));
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

bool
value_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	int n;

	while (i < len) {
		if ((n = utf8_seq(p + i, len - i)) == 0)
			return (false);
		i += (size_t)n;
	}
	return (true);
}

int
value_json_string(struct mp_buf *out, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	char esc[8];
	size_t i = 0, start;
	int n;

	if (value_putn(out, "\"", 1) != 0)
		return (-1);
	while (i < len) {
		/* copy the longest run that needs no escaping at once */
		start = i;
		while (i < len && p[i] >= 0x20 && p[i] != '"' &&
		    p[i] != '\\' && (n = utf8_seq(p + i, len - i)) != 0)
			i += (size_t)n;
		if (value_putn(out, s + start, i - start) != 0)
			return (-1);
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
		if (value_puts(out, esc) != 0)
			return (-1);
		i++;
	}
	return (value_putn(out, "\"", 1));
}

static int
put_hex(struct mp_buf *out, const char *s, size_t len)
{
	static const char digits[] = "0123456789abcdef";
	char two[2];
	size_t i;

	for (i = 0; i < len; i++) {
		two[0] = digits[(unsigned char)s[i] >> 4];
		two[1] = digits[(unsigned char)s[i] & 0xf];
		if (value_putn(out, two, 2) != 0)
			return (-1);
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
put_double(struct mp_buf *out, double d, bool is_f32)
{
	char buf[40];
	int prec;

	if (!isfinite(d))
		return (value_puts(out, "null"));
	for (prec = 1; prec <= 17; prec++) {
		snprintf(buf, sizeof(buf), "%.*g", prec, d);
		if (is_f32 ? strtof(buf, NULL) == (float)d :
		    strtod(buf, NULL) == d)
			break;
	}
	if (strpbrk(buf, ".eE") == NULL)
		strcat(buf, ".0");
	return (value_puts(out, buf));
}

/* ---- msgpack -> text ---- */

/*
 * A map prints as a JSON object when all keys are strings, unless it has a
 * single key that would read back as one of our tagged forms.
 */
static int
map_is_plain(struct mp_reader r, uint32_t n, int depth)
{
	struct mp_tok t;
	uint32_t i;

	for (i = 0; i < n; i++) {
		if (mp_next(&r, &t) != 0)
			return (-1);
		if (t.type != MP_STR)
			return (0);
		if (n == 1 && ((t.len == 4 && memcmp(t.s, "$bin", 4) == 0) ||
		    (t.len == 4 && memcmp(t.s, "$ext", 4) == 0) ||
		    (t.len == 4 && memcmp(t.s, "$map", 4) == 0)))
			return (0);
		if (mp_skip(&r, depth) != 0)
			return (-1);
	}
	return (1);
}

static int
format_map(struct mp_buf *out, struct mp_reader *r, uint32_t n, int depth)
{
	uint32_t i;
	int plain;

	if ((plain = map_is_plain(*r, n, depth)) < 0)
		return (-1);
	if (value_puts(out, plain ? "{" : "{\"$map\":[") != 0)
		return (-1);
	for (i = 0; i < n; i++) {
		if (i > 0 && value_puts(out, ",") != 0)
			return (-1);
		if (!plain && value_puts(out, "[") != 0)
			return (-1);
		if (format_obj(out, r, depth - 1, 0) != 0)
			return (-1);
		if (value_puts(out, plain ? ":" : ",") != 0)
			return (-1);
		if (format_obj(out, r, depth - 1, 0) != 0)
			return (-1);
		if (!plain && value_puts(out, "]") != 0)
			return (-1);
	}
	return (value_puts(out, plain ? "}" : "]}"));
}

static int
format_obj(struct mp_buf *out, struct mp_reader *r, int depth, int flags)
{
	struct mp_tok t;
	char num[32];
	uint32_t i;

	if (depth <= 0 || mp_next(r, &t) != 0)
		return (-1);
	switch (t.type) {
	case MP_NIL:
		return (value_puts(out, "null"));
	case MP_BOOL:
		return (value_puts(out, t.b ? "true" : "false"));
	case MP_INT:
		snprintf(num, sizeof(num), "%" PRId64, t.i);
		return (value_puts(out, num));
	case MP_UINT:
		snprintf(num, sizeof(num), "%" PRIu64, t.u);
		return (value_puts(out, num));
	case MP_FLOAT:
		return (put_double(out, t.d, t.len == 4));
	case MP_STR:
		if (flags & VALUE_BARE_STR)
			return (value_putn(out, t.s, t.len));
		return (value_json_string(out, t.s, t.len));
	case MP_BIN:
		if (flags & VALUE_BARE_BIN)
			return (value_putn(out, t.s, t.len));
		if (value_puts(out, "{\"$bin\":\"") != 0 ||
		    put_hex(out, t.s, t.len) != 0)
			return (-1);
		return (value_puts(out, "\"}"));
	case MP_EXT:
		snprintf(num, sizeof(num), "{\"$ext\":[%d,\"", t.ext_type);
		if (value_puts(out, num) != 0 ||
		    put_hex(out, t.s, t.len) != 0)
			return (-1);
		return (value_puts(out, "\"]}"));
	case MP_ARRAY:
		if (value_puts(out, "[") != 0)
			return (-1);
		for (i = 0; i < t.n; i++) {
			if (i > 0 && value_puts(out, ",") != 0)
				return (-1);
			if (format_obj(out, r, depth - 1, 0) != 0)
				return (-1);
		}
		return (value_puts(out, "]"));
	case MP_MAP:
		return (format_map(out, r, t.n, depth));
	}
	return (-1);
}

int
value_format(struct mp_buf *out, const void *data, size_t len, int flags)
{
	struct mp_reader r;
	size_t mark = out->len;

	mp_reader_init(&r, data, len);
	if (format_obj(out, &r, VALUE_MAX_DEPTH, flags) != 0 || r.p != r.end) {
		out->len = mark;
		return (-1);
	}
	return (0);
}

/* ---- JSON -> msgpack ---- */

static int
hex_decode(const char *s, size_t len, struct mp_buf *out)
{
	uint8_t *bytes;
	size_t i;
	int hi, lo, rc;

	if (len % 2 != 0)
		return (-1);
	if ((bytes = malloc(len / 2 + 1)) == NULL)
		return (-1);
	for (i = 0; i < len; i += 2) {
		if (!isxdigit((unsigned char)s[i]) ||
		    !isxdigit((unsigned char)s[i + 1])) {
			free(bytes);
			return (-1);
		}
		hi = isdigit((unsigned char)s[i]) ? s[i] - '0' :
		    tolower((unsigned char)s[i]) - 'a' + 10;
		lo = isdigit((unsigned char)s[i + 1]) ? s[i + 1] - '0' :
		    tolower((unsigned char)s[i + 1]) - 'a' + 10;
		bytes[i / 2] = (uint8_t)(hi << 4 | lo);
	}
	out->len = 0;
	rc = value_putn(out, (const char *)bytes, len / 2);
	free(bytes);
	return (rc);
}

#define FAIL(...) do {							\
	snprintf(err, errlen, __VA_ARGS__);				\
	return (-1);							\
} while (0)

static int
json_to_mp(json_t *j, struct mp_buf *out, int depth, bool big, char *err,
    size_t errlen)
{
	struct mp_buf tmp = { NULL, 0, 0 };
	const char *key, *s;
	json_t *v, *item;
	size_t i, len;
	json_int_t ty;
	uint64_t u;
	char *end;
	int rc;

	if (depth <= 0)
		FAIL("nested deeper than %d levels", VALUE_MAX_DEPTH);
	switch (json_typeof(j)) {
	case JSON_NULL:
		return (mp_put_nil(out));
	case JSON_TRUE:
		return (mp_put_bool(out, true));
	case JSON_FALSE:
		return (mp_put_bool(out, false));
	case JSON_INTEGER:
		return (mp_put_int(out, json_integer_value(j)));
	case JSON_REAL:
		return (mp_put_double(out, json_real_value(j)));
	case JSON_STRING:
		s = json_string_value(j);
		len = json_string_length(j);
		if (big && len > 2 && s[0] == '\0' && s[1] == 'U') {
			errno = 0;
			u = strtoull(s + 2, &end, 10);
			if (errno == 0 && *end == '\0')
				return (mp_put_uint(out, u));
		}
		return (mp_put_str(out, s, len));
	case JSON_ARRAY:
		if (json_array_size(j) > UINT32_MAX)
			FAIL("array too long");
		if (mp_put_array(out, (uint32_t)json_array_size(j)) != 0)
			FAIL("out of memory");
		json_array_foreach(j, i, item)
			if (json_to_mp(item, out, depth - 1, big, err,
			    errlen) != 0)
				return (-1);
		return (0);
	case JSON_OBJECT:
		break;
	}

	/* the tagged single-key forms */
	if (json_object_size(j) == 1) {
		if ((v = json_object_get(j, "$bin")) != NULL &&
		    json_is_string(v)) {
			if (hex_decode(json_string_value(v),
			    json_string_length(v), &tmp) != 0) {
				mp_buf_free(&tmp);
				FAIL("\"$bin\" needs an even number of hex "
				    "digits");
			}
			rc = mp_put_bin(out, tmp.buf, tmp.len);
			mp_buf_free(&tmp);
			return (rc);
		}
		if ((v = json_object_get(j, "$ext")) != NULL &&
		    json_is_array(v)) {
			if (json_array_size(v) != 2 ||
			    !json_is_integer(json_array_get(v, 0)) ||
			    !json_is_string(json_array_get(v, 1)))
				FAIL("\"$ext\" needs [TYPE, \"HEX\"]");
			ty = json_integer_value(json_array_get(v, 0));
			if (ty < -128 || ty > 127)
				FAIL("\"$ext\" type must be -128..127");
			item = json_array_get(v, 1);
			if (hex_decode(json_string_value(item),
			    json_string_length(item), &tmp) != 0) {
				mp_buf_free(&tmp);
				FAIL("\"$ext\" needs an even number of hex "
				    "digits");
			}
			rc = mp_put_ext(out, (int8_t)ty, tmp.buf, tmp.len);
			mp_buf_free(&tmp);
			return (rc);
		}
		if ((v = json_object_get(j, "$map")) != NULL &&
		    json_is_array(v)) {
			if (json_array_size(v) > UINT32_MAX)
				FAIL("map too long");
			if (mp_put_map(out, (uint32_t)json_array_size(v)) != 0)
				FAIL("out of memory");
			json_array_foreach(v, i, item) {
				if (!json_is_array(item) ||
				    json_array_size(item) != 2)
					FAIL("\"$map\" needs [[KEY, VALUE], "
					    "...]");
				if (json_to_mp(json_array_get(item, 0), out,
				    depth - 1, big, err, errlen) != 0 ||
				    json_to_mp(json_array_get(item, 1), out,
				    depth - 1, big, err, errlen) != 0)
					return (-1);
			}
			return (0);
		}
	}
	if (json_object_size(j) > UINT32_MAX)
		FAIL("object too large");
	if (mp_put_map(out, (uint32_t)json_object_size(j)) != 0)
		FAIL("out of memory");
	/* jansson keeps the keys in the order of the text */
	json_object_foreach(j, key, v) {
		if (mp_put_str(out, key, strlen(key)) != 0)
			FAIL("out of memory");
		if (json_to_mp(v, out, depth - 1, big, err, errlen) != 0)
			return (-1);
	}
	return (0);
}

/*
 * Copy text, replacing integer literals above INT64_MAX by marked strings
 * (see BIGUINT_MARK).  Sets *changed if it did.  NULL on error (message in
 * err).
 */
static char *
rewrite_big_ints(const char *text, bool *changed, char *err, size_t errlen)
{
	struct mp_buf out = { NULL, 0, 0 };
	const char *p = text, *tok;
	bool in_str = false, neg;
	size_t n, i;

	*changed = false;
	while (*p != '\0') {
		if (in_str) {
			if (*p == '\\' && p[1] != '\0') {
				if (value_putn(&out, p, 2) != 0)
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
						if (value_puts(&out, "\""
						    BIGUINT_MARK) != 0 ||
						    value_putn(&out, tok, n) != 0 ||
						    value_puts(&out, "\"") != 0)
							goto oom;
						*changed = true;
						continue;
					}
				}
			}
			if (value_putn(&out, tok, n) != 0)
				goto oom;
			continue;
		}
		if (value_putn(&out, p, 1) != 0)
			goto oom;
		p++;
	}
	if (value_putn(&out, "", 1) != 0)
		goto oom;
	return ((char *)out.buf);
range:
	snprintf(err, errlen, "integer %.*s out of range (int64/uint64)",
	    (int)(p - tok > 40 ? 40 : p - tok), tok);
	mp_buf_free(&out);
	return (NULL);
oom:
	snprintf(err, errlen, "out of memory");
	mp_buf_free(&out);
	return (NULL);
}

int
value_parse_json(const char *text, struct mp_buf *out, char *err,
    size_t errlen)
{
	json_error_t jerr;
	json_t *j;
	char *copy;
	bool big;
	size_t mark = out->len;
	int rc;

	if ((copy = rewrite_big_ints(text, &big, err, errlen)) == NULL)
		return (-1);
	j = json_loads(copy, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
	free(copy);
	if (j == NULL) {
		/* positions refer to the rewritten text only if it changed */
		if (big)
			snprintf(err, errlen, "%s", jerr.text);
		else
			snprintf(err, errlen, "%s (at column %d)", jerr.text,
			    jerr.column);
		return (-1);
	}
	snprintf(err, errlen, "out of memory");
	rc = json_to_mp(j, out, VALUE_MAX_DEPTH, big, err, errlen);
	json_decref(j);
	if (rc != 0)
		out->len = mark;
	return (rc);
}
