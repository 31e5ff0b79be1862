/*
 * xlate: see xlate.h.  The record rules of spec §5.2-5.5, the cache of
 * compiled code (by entry: entries live as long as the agent) and the
 * two directions of conversion.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "log.h"
#include "pattern.h"
#include "tree.h"
#include "userrec.h"
#include "xlate.h"
#include "xlate_lua.h"
#include "xlate_schema.h"

/* One compiled record: a type (fn[0] = code) or a codec (fn[0] =
 * decode, fn[1] = encode). */
struct item {
	const struct entry *e;
	int fn[2];
	char *err[2];		/* why fn[i] cannot run (NULL: fine) */
	bool has_schema;
};

enum kind { K_NONE, K_TYPE, K_MATCH, K_CODEC, K_CONV, K_COUNT };

struct xlate {
	struct xl_lua *lua;
	struct item *items;	/* open addressing by entry pointer */
	size_t cap, n;
	/* kind_root's answers: (nil) and (nil, kind) once found (entries
	 * live as long as the tree), else their parent's child count + 1
	 * when they were missing (0: never looked up) */
	struct entry *meta, *kind[K_COUNT];
	uint64_t meta_missed, kind_missed[K_COUNT];
};

static const char *const kind_names[] = { NULL, "type", "match", "codec",
    "conv" };

int
xlate_new(struct xlate **out)
{
	struct xlate *x;

	*out = NULL;
	if ((x = calloc(1, sizeof(*x))) == NULL)
		return -ENOMEM;
	if (xl_lua_new(&x->lua) != 0) {
		free(x);
		return -ENOMEM;
	}
	*out = x;
	return 0;
}

static void
item_clear(struct xlate *x, struct item *it)
{
	for (int i = 0; i < 2; i++) {
		xl_lua_release(x->lua, it->fn[i]);
		it->fn[i] = 0;
		free(it->err[i]);
		it->err[i] = NULL;
	}
	it->has_schema = false;
}

void
xlate_free(struct xlate *x)
{
	if (x == NULL)
		return;
	for (size_t i = 0; i < x->cap; i++)
		if (x->items[i].e != NULL)
			item_clear(x, &x->items[i]);
	free(x->items);
	xl_lua_free(x->lua);
	free(x);
}

/* ---- small helpers ---- */

static size_t
slot_of(const struct xlate *x, const struct entry *e)
{
	uint64_t h = (uint64_t)(uintptr_t)e * 0x9e3779b97f4a7c15ull;

	return (size_t)(h >> 20) & (x->cap - 1);
}

static struct item *
item_find(struct xlate *x, const struct entry *e)
{
	if (x->cap == 0)
		return NULL;
	for (size_t i = slot_of(x, e);; i = (i + 1) & (x->cap - 1)) {
		if (x->items[i].e == e)
			return &x->items[i];
		if (x->items[i].e == NULL)
			return NULL;
	}
}

static struct item *
item_add(struct xlate *x, const struct entry *e)
{
	struct item *it;
	size_t i;

	if ((it = item_find(x, e)) != NULL)
		return it;
	if ((x->n + 1) * 2 > x->cap) {
		size_t ncap = x->cap ? x->cap * 2 : 64;
		struct item *old = x->items, *nv = calloc(ncap, sizeof(*nv));
		size_t ocap = x->cap;

		if (nv == NULL)
			return NULL;
		x->items = nv;
		x->cap = ncap;
		for (size_t j = 0; j < ocap; j++)
			if (old[j].e != NULL) {
				for (i = slot_of(x, old[j].e);
				    x->items[i].e != NULL;
				    i = (i + 1) & (x->cap - 1))
					;
				x->items[i] = old[j];
			}
		free(old);
	}
	for (i = slot_of(x, e); x->items[i].e != NULL;
	    i = (i + 1) & (x->cap - 1))
		;
	x->items[i].e = e;
	x->n++;
	return &x->items[i];
}

/* Is the canonical element (p, len) the string s? */
static bool
elem_is(const uint8_t *p, size_t len, const char *s)
{
	size_t n = strlen(s);

	return n < 32 && len == n + 1 && p[0] == (0xa0 | n) &&
	    memcmp(p + 1, s, n) == 0;
}

static bool
elem_is_nil(const uint8_t *p, size_t len)
{
	return len == 1 && p[0] == 0xc0;
}

/* The kind of record at the absolute path p (K_NONE: not ours). */
static enum kind
path_kind(const struct xlate_path *p)
{
	if (p->n < 2 || !elem_is_nil(p->elem[0], p->len[0]))
		return K_NONE;
	for (int k = K_TYPE; k <= K_CONV; k++)
		if (elem_is(p->elem[1], p->len[1], kind_names[k]))
			return (enum kind)k;
	return K_NONE;
}

static void
path_of_entry(struct xlate_path *p, const struct entry *e)
{
	const struct entry *chain[PROTO_MAX_PATH_DEPTH * 2 + 2];
	unsigned n = 0;

	for (; e != NULL && e->parent != NULL &&
	    n < sizeof(chain) / sizeof(chain[0]); e = e->parent)
		chain[n++] = e;
	p->n = 0;
	p->used = 0;
	while (n-- > 0) {
		p->elem[p->n] = entry_name(chain[n]);
		p->len[p->n++] = entry_name_len(chain[n]);
	}
}

int
xlate_path_init(struct xlate_path *p, const struct entry *base,
    const msgpack_object *path)
{
	path_of_entry(p, base);
	if (path == NULL || path->type != MSGPACK_OBJECT_ARRAY)
		return -EINVAL;
	for (uint32_t i = 0; i < path->via.array.size; i++) {
		const msgpack_object *o = &path->via.array.ptr[i];
		size_t need = 9 + (o->type == MSGPACK_OBJECT_STR ?
		    o->via.str.size : o->type == MSGPACK_OBJECT_BIN ?
		    o->via.bin.size : 0);
		int n;

		if (p->n >= sizeof(p->elem) / sizeof(p->elem[0]) ||
		    sizeof(p->buf) - p->used < need ||
		    (n = proto_put_path_elem(p->buf + p->used, o, true)) < 0)
			return -EINVAL;
		p->elem[p->n] = p->buf + p->used;
		p->len[p->n++] = (uint32_t)n;
		p->used += (size_t)n;
	}
	return 0;
}

/*
 * (nil, kind), or NULL.  Every set asks whether (nil, "match") has
 * children (xlate_write_trivial): two lookups that cost a tenth of the
 * set, so the answers are kept.  Entries are never removed from the tree
 * (tree.h), so one found stays valid; a missing one is looked up again
 * only once its parent (the root for (nil)) has gained a child.
 */
static struct entry *
kind_root(struct agent *a, enum kind k)
{
	static const uint8_t nil = 0xc0;
	struct xlate *x = a->xlate;
	uint8_t buf[8];
	size_t n = strlen(kind_names[k]);

	if (x->meta == NULL && x->meta_missed != a->tree.root->nchild + 1) {
		x->meta = tree_child(&a->tree, a->tree.root, &nil, 1, false);
		x->meta_missed = a->tree.root->nchild + 1;
	}
	if (x->meta == NULL)
		return NULL;
	if (x->kind[k] != NULL || x->kind_missed[k] == x->meta->nchild + 1)
		return x->kind[k];
	buf[0] = (uint8_t)(0xa0 | n);
	memcpy(buf + 1, kind_names[k], n);
	x->kind[k] = tree_child(&a->tree, x->meta, buf, n + 1, false);
	x->kind_missed[k] = x->meta->nchild + 1;
	return x->kind[k];
}

/* The entry (nil, kind, names...) for a record's name list (a string or
 * an array of strings); NULL if absent.  *bad: not a name list. */
static struct entry *
find_named(struct agent *a, enum kind k, const msgpack_object *names,
    bool *bad)
{
	struct entry *e = kind_root(a, k);
	const msgpack_object *v = names;
	uint32_t n = 1;
	uint8_t buf[PROTO_MAX_ELEM_BYTES + 9];

	*bad = false;
	if (names != NULL && names->type == MSGPACK_OBJECT_ARRAY) {
		v = names->via.array.ptr;
		n = names->via.array.size;
	}
	if (names == NULL || n == 0) {
		*bad = true;
		return NULL;
	}
	for (uint32_t i = 0; i < n; i++) {
		int len;

		if (v[i].type != MSGPACK_OBJECT_STR ||
		    v[i].via.str.size > PROTO_MAX_ELEM_BYTES ||
		    (len = proto_put_path_elem(buf, &v[i], true)) < 0) {
			*bad = true;
			return NULL;
		}
		if (e != NULL)
			e = tree_child(&a->tree, e, buf, (size_t)len, false);
	}
	return e;
}

/* "int/percent": the names of e below its kind root, for messages. */

/* Append "/name" (a string element, cut at 64 bytes; else "?") to buf. */
static bool
append_name(char *buf, size_t cap, size_t *off, const uint8_t *elem,
    size_t len, msgpack_zone *zone)
{
	msgpack_object o;
	int w;

	if (proto_unpack(elem, len, zone, &o) == 0 &&
	    o.type == MSGPACK_OBJECT_STR)
		w = snprintf(buf + *off, cap - *off, "%s%.*s", *off ? "/" : "",
		    (int)(o.via.str.size > 64 ? 64 : o.via.str.size),
		    o.via.str.ptr);
	else
		w = snprintf(buf + *off, cap - *off, "%s?", *off ? "/" : "");
	if (w < 0)
		return false;
	*off += (size_t)w;
	return true;
}

static void
name_of(const struct entry *e, unsigned from_depth, char *buf, size_t cap)
{
	const struct entry *chain[PROTO_MAX_PATH_DEPTH * 2 + 2];
	unsigned n = 0;
	size_t off = 0;
	msgpack_zone zone;

	buf[0] = 0;
	for (; e != NULL && e->depth >= from_depth &&
	    n < sizeof(chain) / sizeof(chain[0]); e = e->parent)
		chain[n++] = e;
	msgpack_zone_init(&zone, 256);
	while (n-- > 0 && off + 1 < cap) {
		if (!append_name(buf, cap, &off, entry_name(chain[n]),
		    entry_name_len(chain[n]), &zone))
			break;
	}
	msgpack_zone_destroy(&zone);
	proto_utf8_sanitize(buf, strlen(buf));
}

/* "int/percent": the names of p's elements from first on. */
static void
name_of_path(const struct xlate_path *p, unsigned first, char *buf,
    size_t cap)
{
	msgpack_zone zone;
	size_t off = 0;

	buf[0] = 0;
	msgpack_zone_init(&zone, 256);
	for (unsigned i = first; i < p->n && off + 1 < cap; i++) {
		if (!append_name(buf, cap, &off, p->elem[i], p->len[i],
		    &zone))
			break;
	}
	msgpack_zone_destroy(&zone);
	proto_utf8_sanitize(buf, strlen(buf));
}

static void
repr(char *buf, size_t cap, const msgpack_object *o)
{
	msgpack_object nil = { .type = MSGPACK_OBJECT_NIL };

	if (msgpack_object_print_buffer(buf, cap, o != NULL ? *o : nil) < 0)
		snprintf(buf, cap, "?");
	proto_utf8_sanitize(buf, strlen(buf));
}

/* Why a record's code cannot run in this language, or NULL. */
static const char *
lang_problem(const msgpack_object *rec)
{
	const msgpack_object *l = proto_map_get(rec, "lang");

	if (l == NULL || l->type == MSGPACK_OBJECT_NIL)
		return "Python code cannot run here (a record without "
		    "lang: \"lua\" is the reference's Python)";
	if (!proto_str_eq(l, "lua"))
		return "Unknown language: lang must be \"lua\"";
	return NULL;
}

static bool
is_nil(const msgpack_object *o)
{
	return o == NULL || o->type == MSGPACK_OBJECT_NIL;
}

/* ---- compiling records ---- */

/* Compile the code field of rec into *fn or set *why. */
static void
compile_field(struct xlate *x, const msgpack_object *rec, const char *field,
    const char *label, int *fn, char **why)
{
	const msgpack_object *c = proto_map_get(rec, field);
	const char *lp;
	char err[1024];

	*fn = 0;
	*why = NULL;
	if (is_nil(c))
		return;
	if ((lp = lang_problem(rec)) != NULL) {
		*why = strdup(lp);
		return;
	}
	if (c->type != MSGPACK_OBJECT_STR) {
		*why = strdup("code must be a string");
		return;
	}
	if ((*fn = xl_lua_compile(x->lua, c->via.str.ptr, c->via.str.size,
	    label, err, sizeof(err))) == 0) {
		size_t n = strlen(err) + 32;

		if ((*why = malloc(n)) != NULL)
			snprintf(*why, n, "Code does not compile: %s", err);
	}
}

static void
compile_item(struct agent *a, struct item *it, enum kind k)
{
	struct xlate *x = a->xlate;
	msgpack_zone zone;
	msgpack_object rec;
	char label[200], nm[160];

	item_clear(x, it);
	if (!entry_has_value(it->e))
		return;
	msgpack_zone_init(&zone, 1024);
	if (proto_unpack(entry_value(it->e), entry_value_len(it->e), &zone,
	    &rec) != 0 ||
	    rec.type != MSGPACK_OBJECT_MAP) {
		it->err[0] = strdup("The record is not a map");
		it->err[1] = strdup("The record is not a map");
		goto out;
	}
	name_of(it->e, 3, nm, sizeof(nm));
	if (k == K_TYPE) {
		snprintf(label, sizeof(label), "type %s", nm);
		compile_field(x, &rec, "code", label, &it->fn[0], &it->err[0]);
		it->has_schema = !is_nil(proto_map_get(&rec, "schema"));
	} else {
		snprintf(label, sizeof(label), "decode %s", nm);
		compile_field(x, &rec, "decode", label, &it->fn[0],
		    &it->err[0]);
		snprintf(label, sizeof(label), "encode %s", nm);
		compile_field(x, &rec, "encode", label, &it->fn[1],
		    &it->err[1]);
	}
out:
	msgpack_zone_destroy(&zone);
}

/* The kind of a stored record entry (depth 3 or more). */
static enum kind
entry_kind(const struct entry *e)
{
	const struct entry *x = e;

	while (x != NULL && x->depth > 2)
		x = x->parent;
	if (x == NULL || x == e || x->depth != 2 ||
	    !elem_is_nil(entry_name(x->parent), entry_name_len(x->parent)))
		return K_NONE;
	if (elem_is(entry_name(x), entry_name_len(x), "type"))
		return K_TYPE;
	if (elem_is(entry_name(x), entry_name_len(x), "codec"))
		return K_CODEC;
	return K_NONE;
}

void
xlate_applied(struct agent *a, struct entry *e)
{
	enum kind k;
	struct item *it;

	if (a->xlate == NULL || e->depth < 3 || !entry_under_meta(e) ||
	    (k = entry_kind(e)) == K_NONE)
		return;
	if ((it = item_add(a->xlate, e)) == NULL) {
		log_warn("translator: out of memory caching a record");
		return;
	}
	compile_item(a, it, k);
}

/* The cached item of a record entry (compiled now if it was not). */
static struct item *
item_of(struct agent *a, const struct entry *e, enum kind k)
{
	struct item *it = item_find(a->xlate, e);

	if (it == NULL && (it = item_add(a->xlate, e)) != NULL)
		compile_item(a, it, k);
	return it;
}

/* ---- running records ---- */

/* Check v (NULL: nil) against one type level (a record entry). */
static bool
level_check(struct agent *a, const struct entry *t, const msgpack_object *v,
    char *err, size_t cap)
{
	struct item *it;
	char e2[1024];
	bool ok = true;

	if (!entry_has_value(t))
		return true;	/* a waypoint: nothing to check */
	if ((it = item_of(a, t, K_TYPE)) == NULL) {
		snprintf(err, cap, "Out of memory");
		return false;
	}
	if (it->err[0] != NULL) {
		snprintf(err, cap, "%s", it->err[0]);
		return false;
	}
	if (it->has_schema) {
		msgpack_zone zone;
		msgpack_object rec;

		msgpack_zone_init(&zone, 1024);
		if (proto_unpack(entry_value(t), entry_value_len(t), &zone,
		    &rec) == 0 &&
		    !xl_schema_check(proto_map_get(&rec, "schema"), v, e2,
		    sizeof(e2))) {
			char nm[160];

			name_of(t, 3, nm, sizeof(nm));
			snprintf(err, cap, "type %s: %s", nm, e2);
			ok = false;
		}
		msgpack_zone_destroy(&zone);
		if (!ok)
			return false;
	}
	if (it->fn[0] != 0 && xl_lua_call(a->xlate->lua, it->fn[0], v, NULL,
	    NULL, NULL, e2, sizeof(e2)) != 0) {
		char nm[160];

		name_of(t, 3, nm, sizeof(nm));
		if (strncmp(e2, "type ", 5) == 0)
			snprintf(err, cap, "%s", e2);
		else
			snprintf(err, cap, "type %s: %s", nm, e2);
		return false;
	}
	return true;
}

/* Check v against the type entry t: every level from the top down. */
static bool
type_check(struct agent *a, const struct entry *t, const msgpack_object *v,
    char *err, size_t cap)
{
	const struct entry *chain[PROTO_MAX_PATH_DEPTH + 2];
	unsigned n = 0;

	for (; t != NULL && t->depth >= 3 &&
	    n < sizeof(chain) / sizeof(chain[0]); t = t->parent)
		chain[n++] = t;
	while (n-- > 0)
		if (!level_check(a, chain[n], v, err, cap))
			return false;
	return true;
}

/* The record that a pattern set below top holds for path p, or NULL. */
static struct entry *
lookup(struct agent *a, struct entry *top, const struct xlate_path *p,
    char *err, size_t cap, bool *failed)
{
	struct pattern_pos pos;

	*failed = false;
	if (top == NULL)
		return NULL;
	pattern_init(&pos, &a->tree, top);
	for (unsigned i = 0; i < p->n && pos.n > 0; i++)
		pattern_step(&pos, p->elem[i], p->len[i]);
	if (pos.overflow) {
		snprintf(err, cap, "Too many wildcard patterns apply here "
		    "(more than %d candidates)", PATTERN_MAX_CANDS);
		*failed = true;
		return NULL;
	}
	return pattern_result(&pos);
}

/* The codec entry the user's converter set applies at p, or NULL. */
static struct entry *
codec_for(struct agent *a, const struct xlate_user *u,
    const struct xlate_path *p, char *err, size_t cap, bool *failed)
{
	uint8_t buf[XLATE_MAX_NAME + 9];
	struct entry *top = kind_root(a, K_CONV), *ce, *codec;
	msgpack_zone zone;
	msgpack_object rec;
	bool bad;

	*failed = false;
	if (top == NULL)
		return NULL;
	memcpy(proto_put_strhdr(buf, false, u->name_len), u->name,
	    u->name_len);
	top = tree_child(&a->tree, top, buf, u->name_len +
	    (u->name_len < 32 ? 1 : 2), false);
	if ((ce = lookup(a, top, p, err, cap, failed)) == NULL)
		return NULL;
	msgpack_zone_init(&zone, 256);
	codec = NULL;
	if (proto_unpack(entry_value(ce), entry_value_len(ce), &zone, &rec) != 0 ||
	    rec.type != MSGPACK_OBJECT_MAP) {
		snprintf(err, cap, "Converter entry is not a map");
		*failed = true;
	} else if ((codec = find_named(a, K_CODEC,
	    proto_map_get(&rec, "codec"), &bad)) == NULL ||
	    !entry_has_value(codec)) {
		snprintf(err, cap, bad ? "Codec is not a string or list" :
		    "This codec does not exist");
		*failed = true;
		codec = NULL;
	}
	msgpack_zone_destroy(&zone);
	return codec;
}

/* Run fn i (0 decode, 1 encode) of codec entry c. */
static int
run_codec(struct agent *a, const struct entry *c, int i,
    const msgpack_object *v, const msgpack_object *prev, bool *ran,
    uint8_t **out, size_t *outlen, char *err, size_t cap)
{
	struct item *it = item_of(a, c, K_CODEC);
	char e2[1024], nm[160];

	*ran = false;
	if (it == NULL) {
		snprintf(err, cap, "Out of memory");
		return -1;
	}
	name_of(c, 3, nm, sizeof(nm));
	if (it->err[i] != NULL) {
		snprintf(err, cap, "Codec %s: %s", nm, it->err[i]);
		return -1;
	}
	if (it->fn[i] == 0)
		return 0;	/* no procedure for this direction */
	if (xl_lua_call(a->xlate->lua, it->fn[i], v, prev, out, outlen, e2,
	    sizeof(e2)) != 0) {
		const char *dir = i == 0 ? "decode" : "encode";

		/* a message with a position names the codec already */
		if (strncmp(e2, dir, 6) == 0 && e2[6] == ' ')
			snprintf(err, cap, "%s", e2);
		else
			snprintf(err, cap, "%s %s: %s", dir, nm, e2);
		return -1;
	}
	*ran = true;
	return 0;
}

int
xlate_write(struct agent *a, const struct xlate_user *u,
    const struct xlate_path *p, bool typecheck, const msgpack_object *value,
    const uint8_t *stored, size_t storedlen, bool *converted, uint8_t **out,
    size_t *outlen, char *err, size_t cap)
{
	const msgpack_object *v = is_nil(value) ? NULL : value;
	msgpack_zone zone;
	msgpack_object dv, prev;
	struct entry *codec, *m, *t;
	bool failed, ran;
	int rc = -1;

	*converted = false;
	*out = NULL;
	*outlen = 0;
	msgpack_zone_init(&zone, 1024);
	/* auth records are never converted (spec §5.5) */
	if (u != NULL && u->bound && !(path_kind(p) == K_NONE && p->n >= 2 &&
	    elem_is_nil(p->elem[0], p->len[0]) &&
	    elem_is(p->elem[1], p->len[1], "auth"))) {
		if ((codec = codec_for(a, u, p, err, cap, &failed)) == NULL &&
		    failed)
			goto out;
		if (codec != NULL) {
			const msgpack_object *pv = NULL;

			if (stored != NULL && proto_unpack(stored, storedlen,
			    &zone, &prev) == 0)
				pv = &prev;
			if (run_codec(a, codec, 0, v, pv, &ran, out, outlen,
			    err, cap) != 0) {
				/* spec §5.4: a delete a decoder cannot take
				 * stays a delete */
				if (v == NULL)
					goto ok;
				goto out;
			}
			if (ran) {
				*converted = true;
				v = NULL;
				if (*out != NULL) {
					if (proto_unpack(*out, *outlen, &zone,
					    &dv) != 0) {
						snprintf(err, cap, "Decoder "
						    "result unreadable");
						goto out;
					}
					v = &dv;
				}
			}
		}
	}
	/* nil is never type-checked (spec §8.6) */
	if (typecheck && v != NULL) {
		m = lookup(a, kind_root(a, K_MATCH), p, err, cap, &failed);
		if (failed)
			goto out;
		if (m != NULL) {
			msgpack_object rec;
			bool bad;

			if (proto_unpack(entry_value(m), entry_value_len(m), &zone,
			    &rec) != 0 || rec.type != MSGPACK_OBJECT_MAP) {
				snprintf(err, cap, "Match entry is not a map");
				goto out;
			}
			t = find_named(a, K_TYPE, proto_map_get(&rec, "type"),
			    &bad);
			if (bad) {
				snprintf(err, cap, "Type is not a list");
				goto out;
			}
			if (t == NULL || !entry_has_value(t)) {
				snprintf(err, cap, "This type does not exist");
				goto out;
			}
			if (!type_check(a, t, v, err, cap))
				goto out;
		}
	}
ok:
	rc = 0;
out:
	if (rc != 0 && *converted) {
		free(*out);
		*out = NULL;
		*outlen = 0;
		*converted = false;
	}
	msgpack_zone_destroy(&zone);
	return rc;
}

bool
xlate_write_trivial(struct agent *a, const struct xlate_user *u,
    const struct entry *base, const msgpack_object *path)
{
	const struct entry *first = base, *m;

	if (u != NULL && u->bound)
		return false;
	if (path == NULL || path->type != MSGPACK_OBJECT_ARRAY)
		return false;
	/* the first absolute element: base's top ancestor, else the path's */
	if (base->depth > 0) {
		while (first->depth > 1)
			first = first->parent;
		if (entry_name_len(first) == 1 && entry_name(first)[0] == 0xc0)
			return false;
	} else if (path->via.array.size > 0 &&
	    path->via.array.ptr[0].type == MSGPACK_OBJECT_NIL)
		return false;
	m = kind_root(a, K_MATCH);
	return m == NULL || m->nchild == 0;
}

int
xlate_read(struct agent *a, const struct xlate_user *u,
    const struct entry *e, const uint8_t *v, size_t len, bool *converted,
    uint8_t **out, size_t *outlen, char *err, size_t cap)
{
	static struct xlate_path p;	/* large; the agent is single-threaded */
	struct entry *codec;
	msgpack_zone zone;
	msgpack_object o;
	bool failed, ran;
	int rc;

	*converted = false;
	*out = NULL;
	*outlen = 0;
	if (u == NULL || !u->bound || v == NULL)
		return 0;
	path_of_entry(&p, e);
	if (p.n >= 2 && elem_is_nil(p.elem[0], p.len[0]) &&
	    elem_is(p.elem[1], p.len[1], "auth"))
		return 0;
	if ((codec = codec_for(a, u, &p, err, cap, &failed)) == NULL)
		return failed ? -1 : 0;
	msgpack_zone_init(&zone, 1024);
	if (proto_unpack(v, len, &zone, &o) != 0) {
		msgpack_zone_destroy(&zone);
		snprintf(err, cap, "Stored value unreadable");
		return -1;
	}
	rc = run_codec(a, codec, 1, &o, NULL, &ran, out, outlen, err, cap);
	msgpack_zone_destroy(&zone);
	if (rc == 0 && ran)
		*converted = true;
	return rc;
}

/* ---- record rules (client writes) ---- */

static int
pack_canonical(const msgpack_object *o, msgpack_sbuffer *sb)
{
	msgpack_packer pk;

	msgpack_sbuffer_init(sb);
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	return proto_pack_canonical(&pk, o);
}

/* Run a record's own checks (schema, then the compiled code fn). */
static bool
own_check(struct agent *a, const msgpack_object *schema, int fn,
    const msgpack_object *v, char *err, size_t cap)
{
	if (!is_nil(schema) && !xl_schema_check(schema, v, err, cap))
		return false;
	if (fn != 0 && xl_lua_call(a->xlate->lua, fn, v, NULL, NULL, NULL,
	    err, cap) != 0)
		return false;
	return true;
}

/* The ancestors of a type record at p: (nil,"type",t1..t(n-1)). */
static bool
ancestors_check(struct agent *a, const struct xlate_path *p,
    const msgpack_object *v, char *err, size_t cap)
{
	struct entry *e = kind_root(a, K_TYPE);

	for (unsigned i = 2; i + 1 < p->n && e != NULL; i++) {
		e = tree_child(&a->tree, e, p->elem[i], p->len[i], false);
		if (e != NULL && !level_check(a, e, v, err, cap))
			return false;
	}
	return true;
}

static bool
type_rules(struct agent *a, const struct xlate_path *p,
    const msgpack_object *rec, char *err, size_t cap)
{
	const msgpack_object *code = proto_map_get(rec, "code");
	const msgpack_object *schema = proto_map_get(rec, "schema");
	const msgpack_object *good = proto_map_get(rec, "good");
	const msgpack_object *bad = proto_map_get(rec, "bad");
	const msgpack_object *v;
	char e2[1024], rv[256], label[200], nm[160];
	const char *lp;
	int fn = 0;
	bool ok = false;

	if (is_nil(code) && is_nil(schema))
		return true;	/* a grouping level, stored unchecked */
	if (!is_nil(code)) {
		if ((lp = lang_problem(rec)) != NULL) {
			snprintf(err, cap, "%s", lp);
			return false;
		}
		if (code->type != MSGPACK_OBJECT_STR) {
			snprintf(err, cap, "code must be a string");
			return false;
		}
	}
	if (!is_nil(schema) && xl_schema_invalid(schema, err, cap) != NULL)
		return false;
	if (good == NULL || good->type != MSGPACK_OBJECT_ARRAY ||
	    good->via.array.size < 2) {
		snprintf(err, cap, "Must have check-good values");
		return false;
	}
	if (bad == NULL || bad->type != MSGPACK_OBJECT_ARRAY ||
	    bad->via.array.size < 1) {
		snprintf(err, cap, "Must have check-bad values");
		return false;
	}
	name_of_path(p, 2, nm, sizeof(nm));
	snprintf(label, sizeof(label), "type %s", nm);
	if (!is_nil(code) && (fn = xl_lua_compile(a->xlate->lua,
	    code->via.str.ptr, code->via.str.size, label, e2,
	    sizeof(e2))) == 0) {
		snprintf(err, cap, "Code does not compile: %s", e2);
		return false;
	}
	/* the examples always run, nil included (spec §5.2) */
	for (uint32_t i = 0; i < good->via.array.size; i++) {
		v = &good->via.array.ptr[i];
		if (!ancestors_check(a, p, is_nil(v) ? NULL : v, err, cap))
			goto out;
		if (!own_check(a, schema, fn, is_nil(v) ? NULL : v, e2,
		    sizeof(e2))) {
			repr(rv, sizeof(rv), v);
			snprintf(err, cap, "failed on %s with %s", rv, e2);
			goto out;
		}
	}
	for (uint32_t i = 0; i < bad->via.array.size; i++) {
		v = &bad->via.array.ptr[i];
		if (!ancestors_check(a, p, is_nil(v) ? NULL : v, err, cap))
			goto out;
		if (own_check(a, schema, fn, is_nil(v) ? NULL : v, e2,
		    sizeof(e2))) {
			repr(rv, sizeof(rv), v);
			snprintf(err, cap, "did not fail on %s", rv);
			goto out;
		}
	}
	ok = true;
out:
	xl_lua_release(a->xlate->lua, fn);
	return ok;
}

/* One direction of a codec record: compile, then every pair. */
static bool
codec_dir(struct agent *a, const struct xlate_path *p,
    const msgpack_object *rec, bool dec, char *err, size_t cap)
{
	const msgpack_object *code = proto_map_get(rec, dec ? "decode" :
	    "encode");
	const msgpack_object *tests = proto_map_get(rec, dec ? "in" : "out");
	const char *what = dec ? "decod" : "encod";
	char e2[1024], rs[256], rr[256], rx[256], label[200], nm[160];
	const char *lp;
	int fn;
	bool ok = false;

	if (is_nil(code))
		return true;
	if ((lp = lang_problem(rec)) != NULL) {
		snprintf(err, cap, "%s", lp);
		return false;
	}
	if (code->type != MSGPACK_OBJECT_STR) {
		snprintf(err, cap, "%sing code must be a string", what);
		return false;
	}
	if (tests == NULL || tests->type != MSGPACK_OBJECT_ARRAY ||
	    tests->via.array.size == 0) {
		snprintf(err, cap, "Must have tests for %sing", what);
		return false;
	}
	name_of_path(p, 2, nm, sizeof(nm));
	snprintf(label, sizeof(label), "%s %s", dec ? "decode" : "encode", nm);
	if ((fn = xl_lua_compile(a->xlate->lua, code->via.str.ptr,
	    code->via.str.size, label, e2, sizeof(e2))) == 0) {
		snprintf(err, cap, "Code does not compile: %s", e2);
		return false;
	}
	for (uint32_t i = 0; i < tests->via.array.size; i++) {
		const msgpack_object *t = &tests->via.array.ptr[i], *src, *res;
		msgpack_sbuffer want;
		uint8_t *got = NULL;
		size_t gotlen = 0;
		bool same;

		if (t->type != MSGPACK_OBJECT_ARRAY ||
		    t->via.array.size != 2) {
			snprintf(err, cap, "Tests for %sing must be pairs "
			    "[source, result]", what);
			goto out;
		}
		src = &t->via.array.ptr[0];
		res = &t->via.array.ptr[1];
		repr(rs, sizeof(rs), src);
		if (xl_lua_call(a->xlate->lua, fn, is_nil(src) ? NULL : src,
		    NULL, &got, &gotlen, e2, sizeof(e2)) != 0) {
			snprintf(err, cap, "failed %ser on %s with %s", what,
			    rs, e2);
			goto out;
		}
		if (pack_canonical(res, &want) != 0) {
			msgpack_sbuffer_destroy(&want);
			free(got);
			snprintf(err, cap, "Out of memory");
			goto out;
		}
		same = got != NULL ? want.size == gotlen &&
		    memcmp(want.data, got, gotlen) == 0 :
		    want.size == 1 && (uint8_t)want.data[0] == 0xc0;
		msgpack_sbuffer_destroy(&want);
		if (!same) {
			msgpack_zone zone;
			msgpack_object go;

			msgpack_zone_init(&zone, 256);
			if (got != NULL && proto_unpack(got, gotlen, &zone,
			    &go) == 0)
				repr(rx, sizeof(rx), &go);
			else
				snprintf(rx, sizeof(rx), "nil");
			msgpack_zone_destroy(&zone);
			repr(rr, sizeof(rr), res);
			snprintf(err, cap, "%s %s got %s, not %s",
			    dec ? "Decoding" : "Encoding", rs, rx, rr);
			free(got);
			goto out;
		}
		free(got);
	}
	ok = true;
out:
	xl_lua_release(a->xlate->lua, fn);
	return ok;
}

/* "#" directly after "#" in a pattern below p's element first. */
static bool
pattern_ok(const struct xlate_path *p, unsigned first, char *err,
    size_t cap)
{
	for (unsigned i = first + 1; i < p->n; i++)
		if (elem_is(p->elem[i], p->len[i], "#") &&
		    elem_is(p->elem[i - 1], p->len[i - 1], "#")) {
			snprintf(err, cap, "In a pattern, # directly after # "
			    "matches nothing more: use one #");
			return false;
		}
	return true;
}

bool
xlate_meta_check(struct agent *a, const struct xlate_path *p,
    const msgpack_object *value, char *err, size_t cap)
{
	enum kind k = path_kind(p);
	struct entry *t;
	bool bad;

	if (k == K_NONE)
		return true;
	if (p->n == 2 || (k == K_CONV && p->n == 3)) {
		if (is_nil(value))
			return true;
		snprintf(err, cap, "This node can't have data.");
		return false;
	}
	if (is_nil(value))
		return true;	/* deleting a record always works */
	if (value->type != MSGPACK_OBJECT_MAP) {
		snprintf(err, cap, "A %s record must be a map",
		    kind_names[k]);
		return false;
	}
	switch (k) {
	case K_TYPE:
		return type_rules(a, p, value, err, cap);
	case K_MATCH:
		if (!pattern_ok(p, 2, err, cap))
			return false;
		t = find_named(a, K_TYPE, proto_map_get(value, "type"), &bad);
		if (bad) {
			snprintf(err, cap, "Type is not a list");
			return false;
		}
		if (t == NULL || !entry_has_value(t)) {
			snprintf(err, cap, "This type does not exist");
			return false;
		}
		return true;
	case K_CODEC:
		return codec_dir(a, p, value, true, err, cap) &&
		    codec_dir(a, p, value, false, err, cap);
	case K_CONV:
		if (!pattern_ok(p, 3, err, cap))
			return false;
		t = find_named(a, K_CODEC, proto_map_get(value, "codec"),
		    &bad);
		if (bad) {
			snprintf(err, cap, "Codec is not a string or list");
			return false;
		}
		if (t == NULL || !entry_has_value(t)) {
			snprintf(err, cap, "This codec does not exist");
			return false;
		}
		return true;
	default:
		return true;
	}
}

/* ---- bindings ---- */


void
xlate_user_bind(struct xlate_user *u, const struct entry *rec)
{
	size_t len;

	memset(u, 0, sizeof(*u));
	if (userrec_binding(rec, "conv", u->name, sizeof(u->name), &len)) {
		u->bound = true;
		u->name_len = (uint16_t)len;
	} else
		memset(u, 0, sizeof(*u));
}
