/*
 * fuzz_etcd_url: libFuzzer harness for the text edges of distkv-etcd: the
 * URL path's percent-decoding, the query string and urlencoded body
 * (etcd/form.c), etcd's key cleaning, Go's ParseBool and ParseUint, and
 * the field checks of a /v2/keys request (etcd/fields.c).
 *
 * Input: byte 0 picks the method (GET HEAD PUT POST DELETE PATCH, modulo
 * 6); the rest is "URI\nBODY": the request target as the HTTP server hands
 * it over (path, then '?' and the query) and the form body.  The harness
 * does what etcd/http.c does with them (route() and serve_keys()): decode
 * the path, strip "/v2/keys", parse the body's fields and then the query's
 * into one form, clean the key, run fields_parse().  Besides "no crash,
 * leak or UB" it checks:
 *   - path decoding agrees with a plain reference decoder (accepts
 *     exactly what it accepts, same bytes); the result has no NUL and is
 *     never longer than the input; every byte string, percent-encoded,
 *     decodes back to itself unless it holds a NUL (refused);
 *   - form parsing is all or nothing (a refused text leaves the form as
 *     it was), yields at most one pair per '&'-separated piece, and a
 *     form re-encoded pair by pair parses back to the same pairs;
 *     form_get returns the first value of a repeated name;
 *   - a cleaned key starts with '/', has no empty, "." or ".." element,
 *     no trailing '/' (but the root), is never longer than the key plus
 *     one, and cleaning it again changes nothing;
 *   - ParseUint accepts exactly the digit strings up to 2^64-1 and its
 *     value prints back as the digits without leading zeros; ParseBool
 *     accepts exactly Go's twelve words;
 *   - fields_parse returns 0 or one of etcd's codes, with a NUL-terminated
 *     cause; on 0 the fields agree with the form (a present prevValue is
 *     not empty, wait only on GET/HEAD, no ttl on a write while TTLs are
 *     refused, value "" when absent).
 *
 * Built with -DFUZZ_MAKE_SEEDS this file is a program that writes seed
 * inputs (requests etcdctl, python-etcd and curl send) into argv[1].
 *
 * form.c and fields.c are compiled into the harness (they are part of the
 * distkv-etcd program, not of a library), as fuzz_sync.h does with sync.c.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../etcd/form.c"
#include "../../etcd/fields.c"
#include "../../etcd/v2err.c"

#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const methods[] = { "GET", "HEAD", "PUT", "POST",
    "DELETE", "PATCH" };

static char *
xstrndup(const char *s, size_t n)
{
	char *d = malloc(n + 1);

	if (d == NULL)
		abort();
	memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

/* ---- percent-decoding ---- */

/* The reference: decode s[0..len), -1 for a bad escape or a NUL. */
static long
ref_unescape(const char *s, size_t len, bool plus, char *out)
{
	size_t i, j = 0;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '%') {
			char hex[3];
			unsigned long v;

			if (len - i < 3 || !isxdigit((unsigned char)s[i + 1]) ||
			    !isxdigit((unsigned char)s[i + 2]))
				return -1;
			hex[0] = s[i + 1];
			hex[1] = s[i + 2];
			hex[2] = '\0';
			v = strtoul(hex, NULL, 16);
			c = (unsigned char)v;
			i += 2;
		} else if (plus && c == '+')
			c = ' ';
		if (c == '\0')
			return -1;
		out[j++] = (char)c;
	}
	return (long)j;
}

/* Every byte as %XX (also the unreserved ones: decoding must not care). */
static char *
escape_all(const char *s, size_t len, size_t *olen)
{
	static const char hexd[] = "0123456789abcdef";
	char *d = malloc(3 * len + 1);
	size_t i;

	if (d == NULL)
		abort();
	for (i = 0; i < len; i++) {
		d[3 * i] = '%';
		d[3 * i + 1] = hexd[(unsigned char)s[i] >> 4];
		d[3 * i + 2] = hexd[(unsigned char)s[i] & 15];
	}
	d[3 * len] = '\0';
	*olen = 3 * len;
	return d;
}

static void
check_path_decode(const char *s, size_t len, bool plus_too)
{
	char *out = NULL, *ref = malloc(len + 1), *esc, *back = NULL;
	long rlen;
	size_t elen;
	int rc;

	if (ref == NULL)
		abort();
	rc = form_unescape_path(s, len, &out);
	rlen = ref_unescape(s, len, false, ref);
	if (rc == -ENOMEM)
		abort();
	if ((rc == 0) != (rlen >= 0))
		FUZZ_FAIL("path decode of \"%.*s\": %d, reference %ld",
		    (int)len, s, rc, rlen);
	if (rc == 0) {
		if (out == NULL || strlen(out) != (size_t)rlen ||
		    memcmp(out, ref, (size_t)rlen) != 0)
			FUZZ_FAIL("path decode of \"%.*s\" differs from the "
			    "reference", (int)len, s);
		if ((size_t)rlen > len)
			FUZZ_FAIL("decoded path longer than its text");
		/* encode ∘ decode: the decoded bytes, escaped, decode back */
		esc = escape_all(out, (size_t)rlen, &elen);
		if (form_unescape_path(esc, elen, &back) != 0 ||
		    strcmp(back, out) != 0)
			FUZZ_FAIL("\"%s\" escaped as \"%s\" does not decode "
			    "back", out, esc);
		free(esc);
		free(back);
	} else if (out != NULL)
		FUZZ_FAIL("refused path decode left an output");
	free(out);
	free(ref);
	if (!plus_too)
		return;
	/* the raw bytes themselves, escaped: identity unless a NUL is there */
	esc = escape_all(s, len, &elen);
	rc = form_unescape_path(esc, elen, &back);
	if (memchr(s, '\0', len) != NULL) {
		if (rc != -EINVAL)
			FUZZ_FAIL("an escaped NUL byte was not refused: %d", rc);
	} else if (rc != 0 || strlen(back) != len || memcmp(back, s, len) != 0)
		FUZZ_FAIL("bytes escaped as \"%s\" do not decode back (%d)",
		    esc, rc);
	free(esc);
	free(back);
}

/* ---- forms ---- */

/* Append name=value, every byte escaped. */
static void
append_pair(char **buf, size_t *len, const char *k, const char *v)
{
	size_t kl, vl;
	char *ke = escape_all(k, strlen(k), &kl);
	char *ve = escape_all(v, strlen(v), &vl);
	char *nb = realloc(*buf, *len + kl + vl + 3);

	if (nb == NULL)
		abort();
	*buf = nb;
	if (*len > 0)
		nb[(*len)++] = '&';
	memcpy(nb + *len, ke, kl);
	*len += kl;
	nb[(*len)++] = '=';
	memcpy(nb + *len, ve, vl);
	*len += vl;
	nb[*len] = '\0';
	free(ke);
	free(ve);
}

static size_t
pieces(const char *s, size_t len)
{
	size_t n = 0, i, start = 0;

	for (i = 0; i <= len; i++)
		if (i == len || s[i] == '&') {
			if (i > start)
				n++;
			start = i + 1;
		}
	return n;
}

/* Parse s into f (which may hold pairs already); check the invariants. */
static int
check_form_parse(struct form *f, const char *s, size_t len)
{
	size_t before = f->n, i;
	struct form_kv *snap = NULL;
	const char *bad;
	int rc;

	if (before > 0) {
		if ((snap = malloc(before * sizeof(*snap))) == NULL)
			abort();
		memcpy(snap, f->kv, before * sizeof(*snap));
	}
	rc = form_parse(f, s, len, &bad);
	if (rc == -ENOMEM)
		abort();
	if (rc != 0) {
		if (rc != -EINVAL || bad == NULL)
			FUZZ_FAIL("form_parse: %d without a reason", rc);
		if (f->n != before)
			FUZZ_FAIL("refused form text added %zu pairs",
			    f->n - before);
	} else if (f->n - before > pieces(s, len))
		FUZZ_FAIL("%zu pairs from %zu pieces", f->n - before,
		    pieces(s, len));
	for (i = 0; i < before; i++)
		if (f->kv[i].key != snap[i].key || f->kv[i].val != snap[i].val)
			FUZZ_FAIL("form_parse changed an earlier pair");
	for (i = before; i < f->n; i++)
		if (strlen(f->kv[i].key) + strlen(f->kv[i].val) > len)
			FUZZ_FAIL("a pair longer than its text");
	free(snap);
	return rc;
}

/* Re-encode every pair of f, parse that, compare. */
static void
check_form_round_trip(const struct form *f)
{
	struct form g = { 0, 0, NULL };
	char *buf = NULL;
	size_t blen = 0, i;
	const char *bad;

	for (i = 0; i < f->n; i++)
		append_pair(&buf, &blen, f->kv[i].key, f->kv[i].val);
	if (form_parse(&g, buf != NULL ? buf : "", blen, &bad) != 0)
		FUZZ_FAIL("re-encoded form \"%s\" refused", buf);
	/* empty names and values survive too: "=" is a piece */
	if (g.n != f->n)
		FUZZ_FAIL("re-encoded form: %zu pairs, then %zu", f->n, g.n);
	for (i = 0; i < f->n; i++) {
		if (strcmp(f->kv[i].key, g.kv[i].key) != 0 ||
		    strcmp(f->kv[i].val, g.kv[i].val) != 0)
			FUZZ_FAIL("re-encoded pair %zu differs", i);
		/* form_get: the first value of a name */
		{
			const char *v = form_get(f, f->kv[i].key);
			size_t j;

			for (j = 0; strcmp(f->kv[j].key, f->kv[i].key) != 0; j++)
				;
			if (v != f->kv[j].val)
				FUZZ_FAIL("form_get(\"%s\") is not the first "
				    "value", f->kv[i].key);
		}
	}
	form_free(&g);
	free(buf);
}

/* ---- keys ---- */

static void
check_clean_key(const char *key)
{
	char *c = form_clean_key(key), *c2;
	size_t n, i;

	if (c == NULL)
		abort();
	n = strlen(c);
	if (c[0] != '/')
		FUZZ_FAIL("clean(\"%s\") = \"%s\": no leading '/'", key, c);
	if (n > strlen(key) + 1)
		FUZZ_FAIL("clean(\"%s\") = \"%s\": longer", key, c);
	if (n > 1 && c[n - 1] == '/')
		FUZZ_FAIL("clean(\"%s\") = \"%s\": trailing '/'", key, c);
	for (i = 0; i < n; i++) {
		if (c[i] != '/')
			continue;
		if (c[i + 1] == '/')
			FUZZ_FAIL("clean(\"%s\") = \"%s\": empty element", key,
			    c);
		if (c[i + 1] == '.' && (c[i + 2] == '/' || c[i + 2] == '\0' ||
		    (c[i + 2] == '.' && (c[i + 3] == '/' || c[i + 3] == '\0'))))
			FUZZ_FAIL("clean(\"%s\") = \"%s\": a . or .. left", key,
			    c);
	}
	if ((c2 = form_clean_key(c)) == NULL)
		abort();
	if (strcmp(c, c2) != 0)
		FUZZ_FAIL("clean not idempotent: \"%s\" -> \"%s\" -> \"%s\"",
		    key, c, c2);
	/* a key without '.', empty elements or a trailing '/' is kept */
	if (strstr(key, ".") == NULL && strstr(key, "//") == NULL &&
	    key[0] == '/' && (key[1] == '\0' || key[strlen(key) - 1] != '/') &&
	    strcmp(c, key) != 0)
		FUZZ_FAIL("clean changed a clean key \"%s\" to \"%s\"", key, c);
	free(c);
	free(c2);
}

/* ---- numbers and bools ---- */

static void
check_numbers(const char *s)
{
	static const char *const words[] = { "1", "t", "T", "TRUE", "true",
	    "True", "0", "f", "F", "FALSE", "false", "False" };
	uint64_t v = 12345;
	bool b, word = false;
	size_t i, n = strlen(s);
	int rc = form_parse_uint64(s, &v);
	bool digits = n > 0 && strspn(s, "0123456789") == n;

	if (!digits && rc == 0)
		FUZZ_FAIL("ParseUint accepted \"%s\"", s);
	if (digits) {
		const char *d = s + strspn(s, "0");
		size_t dl = strlen(d);
		bool fits = dl < 20 || (dl == 20 &&
		    strcmp(d, "18446744073709551615") <= 0);

		if (fits != (rc == 0))
			FUZZ_FAIL("ParseUint(\"%s\"): %d", s, rc);
		if (rc == 0) {
			char back[24];

			snprintf(back, sizeof(back), "%" PRIu64, v);
			if (strcmp(back, dl > 0 ? d : "0") != 0)
				FUZZ_FAIL("ParseUint(\"%s\") = %s", s, back);
		} else if (rc != -ERANGE)
			FUZZ_FAIL("ParseUint(\"%s\") overflow as %d", s, rc);
	}
	for (i = 0; i < 12; i++)
		if (strcmp(s, words[i]) == 0)
			word = true;
	rc = form_parse_bool(s, &b);
	if (word != (rc == 0))
		FUZZ_FAIL("ParseBool(\"%s\"): %d", s, rc);
	if (rc == 0 && b != (strchr("1tT", s[0]) != NULL))
		FUZZ_FAIL("ParseBool(\"%s\") = %d", s, b);
}

/* ---- fields ---- */

static bool
known_code(int code)
{
	static const int codes[] = { V2E_PREV_VALUE_REQUIRED, V2E_TTL_NAN,
	    V2E_INDEX_NAN, V2E_INVALID_FIELD, V2E_REFRESH_VALUE,
	    V2E_REFRESH_TTL_REQUIRED };
	size_t i;

	for (i = 0; i < sizeof(codes) / sizeof(*codes); i++)
		if (code == codes[i])
			return true;
	return false;
}

static void
check_fields(const struct form *f, const char *method)
{
	struct fields fl;
	char cause[64];
	const char *v;
	bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
	int rc;

	memset(cause, 'x', sizeof(cause));
	rc = fields_parse(f, method, &fl, cause, sizeof(cause));
	if (rc != 0) {
		if (!known_code(rc))
			FUZZ_FAIL("fields_parse: code %d", rc);
		if (memchr(cause, '\0', sizeof(cause)) == NULL)
			FUZZ_FAIL("fields_parse: cause not terminated");
		if (v2err_status(rc) != 400)
			FUZZ_FAIL("field error %d is not a 400", rc);
		return;
	}
	if (fl.has_prev_value && (fl.prev_value == NULL ||
	    *fl.prev_value == '\0' || fl.prev_value != form_get(f, "prevValue")))
		FUZZ_FAIL("prevValue accepted empty or not the form's");
	if (fl.wait && !get)
		FUZZ_FAIL("wait accepted on %s", method);
	if (!get && (v = form_get(f, "ttl")) != NULL && *v != '\0')
		FUZZ_FAIL("a ttl on %s was accepted (TTLs are refused)",
		    method);
	if (fl.value == NULL || ((v = form_get(f, "value")) != NULL ?
	    fl.value != v : strcmp(fl.value, "") != 0))
		FUZZ_FAIL("value is not the form's");
	if ((v = form_get(f, "prevIndex")) != NULL) {
		uint64_t n;

		if (form_parse_uint64(v, &n) != 0 || n != fl.prev_index ||
		    fl.has_prev_index != (n > 0))
			FUZZ_FAIL("prevIndex \"%s\" taken as %" PRIu64, v,
			    fl.prev_index);
	} else if (fl.has_prev_index)
		FUZZ_FAIL("prevIndex without a field");
	if ((v = form_get(f, "stream")) != NULL) {
		bool b;

		if (form_parse_bool(v, &b) != 0 || b)
			FUZZ_FAIL("stream=\"%s\" accepted", v);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *method, *s = (const char *)data + 1, *nl, *q, *body;
	size_t len, ulen, plen, blen, i;
	struct form f = { 0, 0, NULL };
	char *path = NULL, *key;

	if (size < 1)
		return 0;
	method = methods[data[0] % 6];
	len = size - 1;
	nl = memchr(s, '\n', len);
	ulen = nl != NULL ? (size_t)(nl - s) : len;
	body = nl != NULL ? nl + 1 : s + len;
	blen = nl != NULL ? len - ulen - 1 : 0;

	/* the URI as http.c's route() takes it: a C string, '?' ends the path */
	{
		char *uri = xstrndup(s, ulen);

		ulen = strlen(uri);	/* the HTTP server's URI has no NUL */
		q = strchr(uri, '?');
		plen = q != NULL ? (size_t)(q - uri) : ulen;
		check_path_decode(uri, plen, false);
		check_path_decode(s, len < 256 ? len : 256, true);
		if (form_unescape_path(uri, plen, &path) == 0 &&
		    (strcmp(path, "/v2/keys") == 0 ||
		    strncmp(path, "/v2/keys/", 9) == 0)) {
			/* serve_keys(): body fields first, then the query */
			int brc = 0, qrc = 0;

			if (strcmp(method, "PUT") == 0 ||
			    strcmp(method, "POST") == 0)
				brc = check_form_parse(&f, body, blen);
			if (brc == 0 && q != NULL)
				qrc = check_form_parse(&f, q + 1, strlen(q + 1));
			if (brc == 0 && qrc == 0) {
				check_form_round_trip(&f);
				if ((key = form_clean_key(path + 8)) == NULL)
					abort();
				check_clean_key(path + 8);
				check_clean_key(key);
				free(key);
				check_fields(&f, method);
				for (i = 0; i < f.n && i < 16; i++) {
					check_numbers(f.kv[i].key);
					check_numbers(f.kv[i].val);
				}
			}
		} else if (path != NULL) {
			/* not a keys path: the decoded text as a key anyway */
			check_clean_key(path);
		}
		free(uri);
	}
	/* the body alone, as a form and as a key and a number */
	form_free(&f);
	check_form_parse(&f, body, blen);
	check_form_round_trip(&f);
	form_free(&f);
	{
		char *b = xstrndup(body, blen < 64 ? blen : 64);

		check_numbers(b);
		check_clean_key(b);
		free(b);
	}
	free(path);
	return 0;
}

#ifdef FUZZ_MAKE_SEEDS
int
main(int argc, char **argv)
{
	/* method index, URI, body: what etcdctl, python-etcd and curl send */
	static const struct {
		int m;
		const char *uri, *body;
	} seeds[] = {
		{ 0, "/v2/keys/foo?quorum=false&recursive=false&sorted=false", "" },
		{ 0, "/v2/keys/dir?recursive=true&sorted=true", "" },
		{ 0, "/v2/keys/foo?wait=true&waitIndex=0&recursive=true", "" },
		{ 0, "/v2/keys/foo?wait=true&waitIndex=18446744073709551615", "" },
		{ 0, "/v2/keys/foo?waitIndex=18446744073709551616", "" },
		{ 0, "/v2/keys/a%2Fb/%E2%82%AC/./../c//d/", "" },
		{ 0, "/v2/keys/%zz", "" },
		{ 0, "/v2/keys/%00", "" },
		{ 0, "/v2/keys", "" },
		{ 1, "/v2/keys/x?stream=true&wait=1", "" },
		{ 2, "/v2/keys/foo", "value=bar" },
		{ 2, "/v2/keys/foo?prevExist=false", "value=a+b%20c&ttl=" },
		{ 2, "/v2/keys/foo", "value=new&prevValue=old&prevIndex=7" },
		{ 2, "/v2/keys/foo", "prevValue=&value=x" },
		{ 2, "/v2/keys/dir?dir=true", "" },
		{ 2, "/v2/keys/foo", "ttl=5&value=x" },
		{ 2, "/v2/keys/foo", "ttl=abc" },
		{ 2, "/v2/keys/foo", "refresh=true&ttl=5" },
		{ 2, "/v2/keys/foo", "refresh=true&value=x" },
		{ 2, "/v2/keys/foo", "refresh=T" },
		{ 2, "/v2/keys/foo", "value=1&value=2&noValueOnSuccess=True" },
		{ 2, "/v2/keys/foo?value=q", "value=%" },
		{ 3, "/v2/keys/queue", "value=job1" },
		{ 4, "/v2/keys/dir?dir=true&recursive=true", "" },
		{ 4, "/v2/keys/foo?prevValue=bar&prevIndex=00012", "" },
		{ 4, "/v2/keys/foo?wait=true", "" },
		{ 5, "/v2/keys/foo", "" },
		{ 0, "/version", "" },
		{ 0, "/v2/members/", "" },
		{ 0, "/v2/keys/_hidden/a?sorted=FALSE&quorum=f", "" },
	};
	size_t i;

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	for (i = 0; i < sizeof(seeds) / sizeof(*seeds); i++) {
		size_t ul = strlen(seeds[i].uri), bl = strlen(seeds[i].body);
		char *b = malloc(ul + bl + 2);

		if (b == NULL)
			return 1;
		b[0] = (char)seeds[i].m;
		memcpy(b + 1, seeds[i].uri, ul);
		b[1 + ul] = '\n';
		memcpy(b + 2 + ul, seeds[i].body, bl);
		/* every seed must pass the harness itself */
		LLVMFuzzerTestOneInput((const uint8_t *)b, ul + bl + 2);
		fuzz_write_seed(argv[1], "seed", (int)i, b, ul + bl + 2);
		free(b);
	}
	return 0;
}
#endif
