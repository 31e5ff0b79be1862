/*
 * fuzz_path_json: libFuzzer harness for the text forms of distkv-cli and
 * libdistkv: the path syntax (libclient/path.c, distkv_path_parse and
 * distkv_path_format) and JSON values (libclient/mpjson.c, both ways),
 * plus the value readers of libclient/value.c.
 *
 * The first byte of an input picks what the rest is:
 *   0  path text: whatever parse accepts, format gives a text that parses
 *      to the same elements and formats to itself (format is canonical,
 *      format ∘ parse is the identity on parse's own output);
 *   1  JSON text: whatever mpjson_parse accepts, mpjson_format prints, and
 *      that text parses back to the same msgpack bytes;
 *   2  msgpack bytes: whatever mpjson_format_bytes prints parses back, and
 *      prints again to the very same text;
 *   3  msgpack bytes through distkv_value_from_msgpack and every getter.
 * Broken invariants abort with the texts involved.
 *
 * Built with -DFUZZ_MAKE_SEEDS this file is a program that writes seed
 * inputs, made by the formatters themselves, into the directory argv[1].
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "distkv.h"
#include "mpjson.h"
#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FAIL(...) do {							\
	fprintf(stderr, "fuzz_path_json: " __VA_ARGS__);		\
	fputc('\n', stderr);						\
	abort();							\
} while (0)

static char *
text_of(const uint8_t *p, size_t n)
{
	char *s = malloc(n + 1);

	if (s == NULL)
		abort();
	memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

static bool
elem_eq(const struct distkv_elem *a, const struct distkv_elem *b)
{
	if (a->type != b->type)
		return false;
	switch (a->type) {
	case DISTKV_ELEM_INT:
		return a->i == b->i;
	case DISTKV_ELEM_STR:
	case DISTKV_ELEM_BIN:
		return a->len == b->len && memcmp(a->s, b->s, a->len) == 0;
	case DISTKV_ELEM_NIL:
		return true;
	}
	return false;
}

static void
path_round_trip(const char *text)
{
	distkv_path *p, *q;
	char *f1, *f2;
	int rc;

	if (distkv_path_parse(text, &p) != 0)
		return;
	if ((rc = distkv_path_format(p, &f1)) != 0) {
		if (rc == -ENOMEM)
			abort();
		FAIL("format of parsed \"%s\" failed: %d", text, rc);
	}
	if ((rc = distkv_path_parse(f1, &q)) != 0)
		FAIL("\"%s\" parsed, its format \"%s\" does not: %d", text, f1,
		    rc);
	if (distkv_path_len(p) != distkv_path_len(q))
		FAIL("\"%s\" -> \"%s\": %zu elements, then %zu", text, f1,
		    distkv_path_len(p), distkv_path_len(q));
	for (size_t i = 0; i < distkv_path_len(p); i++) {
		struct distkv_elem a, b;

		if (distkv_path_elem(p, i, &a) != 0 ||
		    distkv_path_elem(q, i, &b) != 0 || !elem_eq(&a, &b))
			FAIL("\"%s\" -> \"%s\": element %zu differs", text, f1,
			    i);
	}
	if (distkv_path_format(q, &f2) != 0)
		abort();
	if (strcmp(f1, f2) != 0)
		FAIL("format not canonical: \"%s\" -> \"%s\" -> \"%s\"", text,
		    f1, f2);
	/* a copy is the same path */
	{
		distkv_path *d;
		char *f3;

		if (distkv_path_dup(p, &d) != 0 ||
		    distkv_path_format(d, &f3) != 0)
			abort();
		if (strcmp(f1, f3) != 0)
			FAIL("dup of \"%s\" formats as \"%s\"", f1, f3);
		free(f3);
		distkv_path_free(d);
	}
	free(f1);
	free(f2);
	distkv_path_free(p);
	distkv_path_free(q);
}

/* Parse JSON text into s (cleared first); returns mpjson_parse's code. */
static int
json_parse(msgpack_sbuffer *s, const char *text)
{
	msgpack_packer pk;
	char err[256];

	s->size = 0;
	msgpack_packer_init(&pk, s, msgpack_sbuffer_write);
	return mpjson_parse(&pk, text, err, sizeof(err));
}

static void msgpack_round_trip_exact(const uint8_t *, size_t);

static char *
sbuf_text(const msgpack_sbuffer *s)
{
	return text_of((const uint8_t *)s->data, s->size);
}

static void
json_round_trip(const char *text)
{
	msgpack_sbuffer m1, j1, m2;
	char *t1;
	int rc;

	msgpack_sbuffer_init(&m1);
	msgpack_sbuffer_init(&j1);
	msgpack_sbuffer_init(&m2);
	if (json_parse(&m1, text) != 0)
		goto out;
	if ((rc = mpjson_format_bytes(&j1, m1.data, m1.size, 0)) != 0)
		FAIL("JSON \"%s\" parsed but does not print: %d", text, rc);
	t1 = sbuf_text(&j1);
	if ((rc = json_parse(&m2, t1)) != 0)
		FAIL("JSON \"%s\" printed as \"%s\", which does not parse: %d",
		    text, t1, rc);
	if (m1.size != m2.size || memcmp(m1.data, m2.data, m1.size) != 0)
		FAIL("JSON \"%s\" -> \"%s\" reads back as another value", text,
		    t1);
	free(t1);
out:
	msgpack_sbuffer_destroy(&m1);
	msgpack_sbuffer_destroy(&j1);
	msgpack_sbuffer_destroy(&m2);
}

/* True if every string in o (keys too) is valid UTF-8. */
static bool
all_utf8(const msgpack_object *o)
{
	switch (o->type) {
	case MSGPACK_OBJECT_STR:
		return proto_utf8_valid(o->via.str.ptr, o->via.str.size);
	case MSGPACK_OBJECT_ARRAY:
		for (uint32_t i = 0; i < o->via.array.size; i++)
			if (!all_utf8(&o->via.array.ptr[i]))
				return false;
		return true;
	case MSGPACK_OBJECT_MAP:
		for (uint32_t i = 0; i < o->via.map.size; i++)
			if (!all_utf8(&o->via.map.ptr[i].key) ||
			    !all_utf8(&o->via.map.ptr[i].val))
				return false;
		return true;
	default:
		return true;
	}
}

static bool
bytes_all_utf8(const uint8_t *p, size_t n)
{
	msgpack_zone zone;
	msgpack_object o;
	size_t used;
	bool ok;


	/* proto_unpack trusts lengths: only after proto_scan */
	if (proto_scan(p, n, PROTO_MAX_NESTING, &used) != 0 || used != n)
		return true;	/* mpjson refuses it anyway */
	msgpack_zone_init(&zone, 4096);
	ok = proto_unpack(p, n, &zone, &o) == 0 && all_utf8(&o);
	msgpack_zone_destroy(&zone);
	return ok;
}

/*
 * msgpack -> JSON -> msgpack -> JSON prints the same text twice.  Strings
 * that are not UTF-8 print as U+FFFD (mpjson.h), so for them the first
 * round may lose bytes: then only the second round must be exact.
 */
static void
msgpack_round_trip(const uint8_t *p, size_t n)
{
	if (n > 0 && !bytes_all_utf8(p, n)) {
		msgpack_sbuffer j1;

		msgpack_sbuffer_init(&j1);
		if (mpjson_format_bytes(&j1, p, n, 0) == 0) {
			msgpack_sbuffer m1;
			char *t;

			msgpack_sbuffer_init(&m1);
			t = sbuf_text(&j1);
			if (json_parse(&m1, t) != 0)
				FAIL("msgpack printed as \"%s\", "
				    "which does not parse", t);
			free(t);
			msgpack_round_trip_exact((const uint8_t *)m1.data,
			    m1.size);
			msgpack_sbuffer_destroy(&m1);
		}
		msgpack_sbuffer_destroy(&j1);
		return;
	}
	msgpack_round_trip_exact(p, n);
}

static void
msgpack_round_trip_exact(const uint8_t *p, size_t n)
{
	msgpack_sbuffer j1, m2, j2;
	char *t1, *t2;
	int rc;

	msgpack_sbuffer_init(&j1);
	msgpack_sbuffer_init(&m2);
	msgpack_sbuffer_init(&j2);
	/* the bare forms must not crash either */
	(void)mpjson_format_bytes(&j1, p, n, MPJSON_BARE_STR | MPJSON_BARE_BIN);
	j1.size = 0;
	if (mpjson_format_bytes(&j1, p, n, 0) != 0)
		goto out;
	t1 = sbuf_text(&j1);
	if ((rc = json_parse(&m2, t1)) != 0)
		FAIL("msgpack printed as \"%s\", which does not parse: %d", t1,
		    rc);
	if ((rc = mpjson_format_bytes(&j2, m2.data, m2.size, 0)) != 0)
		FAIL("\"%s\" parsed but does not print again: %d", t1, rc);
	t2 = sbuf_text(&j2);
	if (strcmp(t1, t2) != 0)
		FAIL("msgpack printed as \"%s\", read back, printed as \"%s\"",
		    t1, t2);
	free(t1);
	free(t2);
out:
	msgpack_sbuffer_destroy(&j1);
	msgpack_sbuffer_destroy(&m2);
	msgpack_sbuffer_destroy(&j2);
}

static void
value_getters(const uint8_t *p, size_t n)
{
	struct distkv_value v = { NULL, 0 };
	const char *s;
	size_t slen;
	int64_t i;
	double d;
	bool b;

	if (distkv_value_from_msgpack(&v, p, n) != 0)
		return;
	if (v.len != n || memcmp(v.data, p, n) != 0)
		FAIL("distkv_value_from_msgpack changed the bytes");
	if (distkv_value_get_str(v.data, v.len, &s, &slen) == 0 &&
	    (s < (const char *)v.data || s + slen > (const char *)v.data +
	    v.len))
		FAIL("get_str points outside the value");
	(void)distkv_value_get_int(v.data, v.len, &i);
	(void)distkv_value_get_double(v.data, v.len, &d);
	(void)distkv_value_get_bool(v.data, v.len, &b);
	(void)distkv_value_is_nil(v.data, v.len);
	distkv_value_clear(&v);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text;

	if (size < 1 || size > 65536)
		return 0;
	switch (data[0] & 3) {
	case 0:
		text = text_of(data + 1, size - 1);
		path_round_trip(text);
		free(text);
		break;
	case 1:
		text = text_of(data + 1, size - 1);
		json_round_trip(text);
		free(text);
		break;
	case 2:
		msgpack_round_trip(data + 1, size - 1);
		break;
	case 3:
		value_getters(data + 1, size - 1);
		break;
	}
	return 0;
}

#ifdef FUZZ_MAKE_SEEDS
static int nseed;

static void
seed(const char *dir, uint8_t mode, const void *p, size_t n)
{
	char name[512];
	FILE *f;

	snprintf(name, sizeof(name), "%s/seed-%03d", dir, nseed++);
	if ((f = fopen(name, "wb")) == NULL) {
		perror(name);
		exit(1);
	}
	fputc(mode, f);
	fwrite(p, 1, n, f);
	fclose(f);
}

int
main(int argc, char **argv)
{
	static const char *paths[] = {
		"", "/", "a", "a/b/c", "/svc/web/port/", ":123/:-5/x",
		":xdeadbeef/:x", ":nil/auth", "a\\/b/c\\\\d", "\\:colon/:",
		"ünïcode/ключ", ":9223372036854775807/:-9223372036854775808",
	};
	static const char *jsons[] = {
		"null", "true", "8080", "-1", "18446744073709551615", "1.5",
		"1e300", "\"text\"", "[1,[2,[3]]]", "{\"a\":{\"b\":null}}",
		"{\"$bin\":\"00ff\"}", "{\"$ext\":[5,\"abcd\"]}",
		"{\"$map\":[[1,2],[null,\"x\"]]}", "\"\\u00e9\\ud83d\\ude00\"",
	};

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	for (size_t i = 0; i < sizeof(paths) / sizeof(*paths); i++) {
		distkv_path *p;
		char *f;

		seed(argv[1], 0, paths[i], strlen(paths[i]));
		if (distkv_path_parse(paths[i], &p) == 0 &&
		    distkv_path_format(p, &f) == 0) {
			seed(argv[1], 0, f, strlen(f));
			free(f);
			distkv_path_free(p);
		}
	}
	for (size_t i = 0; i < sizeof(jsons) / sizeof(*jsons); i++) {
		msgpack_sbuffer m, j;

		msgpack_sbuffer_init(&m);
		msgpack_sbuffer_init(&j);
		seed(argv[1], 1, jsons[i], strlen(jsons[i]));
		if (json_parse(&m, jsons[i]) == 0) {
			seed(argv[1], 2, m.data, m.size);
			seed(argv[1], 3, m.data, m.size);
			if (mpjson_format_bytes(&j, m.data, m.size, 0) == 0)
				seed(argv[1], 1, j.data, j.size);
		}
		msgpack_sbuffer_destroy(&m);
		msgpack_sbuffer_destroy(&j);
	}
	return 0;
}
#endif
