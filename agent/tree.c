/* tree: see tree.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "tree.h"

/* Children above this count get a hash index. */
#define TREE_INDEX_MIN 8

void
tree_init(struct tree *t)
{
	memset(t, 0, sizeof(*t));
	t->nentries = 1;
}

static void
tree_free_entry(struct entry *e, bool self)
{
	for (uint32_t i = 0; i < e->nchild; i++)
		tree_free_entry(e->child[i], true);
	free(e->child);
	free(e->cidx);
	free(e->value);
	free(e->name);
	if (self)
		free(e);
}

void
tree_fini(struct tree *t)
{
	tree_free_entry(&t->root, false);
	memset(t, 0, sizeof(*t));
}

static size_t
tree_hash(const uint8_t *name, size_t len)
{
	return (size_t)XXH3_64bits(name, len);
}

static void
tree_index_put(struct entry *e, uint32_t pos)
{
	const struct entry *c = e->child[pos];
	size_t mask = e->cidx_cap - 1;
	size_t i = tree_hash(c->name, c->name_len) & mask;

	while (e->cidx[i] != 0)
		i = (i + 1) & mask;
	e->cidx[i] = pos + 1;
}

static int
tree_index_grow(struct entry *e)
{
	uint32_t cap = e->cidx_cap ? e->cidx_cap * 2 : 32;
	uint32_t *idx;

	while (cap < e->nchild * 2)
		cap *= 2;
	if ((idx = calloc(cap, sizeof(*idx))) == NULL)
		return -ENOMEM;
	free(e->cidx);
	e->cidx = idx;
	e->cidx_cap = cap;
	for (uint32_t i = 0; i < e->nchild; i++)
		tree_index_put(e, i);
	return 0;
}

static struct entry *
tree_find_child(const struct entry *e, const uint8_t *name, size_t len)
{
	if (e->cidx != NULL) {
		size_t mask = e->cidx_cap - 1;

		for (size_t i = tree_hash(name, len) & mask; e->cidx[i] != 0;
		    i = (i + 1) & mask) {
			struct entry *c = e->child[e->cidx[i] - 1];

			if (c->name_len == len &&
			    memcmp(c->name, name, len) == 0)
				return c;
		}
		return NULL;
	}
	for (uint32_t i = 0; i < e->nchild; i++) {
		struct entry *c = e->child[i];

		if (c->name_len == len && memcmp(c->name, name, len) == 0)
			return c;
	}
	return NULL;
}

struct entry *
tree_child(struct tree *t, struct entry *e, const uint8_t *name, size_t len,
    bool create)
{
	struct entry *c = tree_find_child(e, name, len);

	if (c != NULL || !create)
		return c;
	if (e->nchild == e->capchild) {
		uint32_t cap = e->capchild ? e->capchild * 2 : 4;
		struct entry **ch = realloc(e->child, cap * sizeof(*ch));

		if (ch == NULL)
			return NULL;
		e->child = ch;
		e->capchild = cap;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	if ((c->name = malloc(len)) == NULL) {
		free(c);
		return NULL;
	}
	memcpy(c->name, name, len);
	c->name_len = (uint32_t)len;
	c->parent = e;
	c->depth = e->depth + 1;
	/* spec §1.2: a never-updated entry carries its parent's tock */
	c->tock = e->tock;
	e->child[e->nchild++] = c;
	t->nentries++;
	if (e->nchild > TREE_INDEX_MIN) {
		if (e->cidx == NULL || e->nchild * 2 > e->cidx_cap) {
			if (tree_index_grow(e) != 0) {
				/* fall back to the linear scan */
				free(e->cidx);
				e->cidx = NULL;
				e->cidx_cap = 0;
			}
		} else
			tree_index_put(e, e->nchild - 1);
	}
	return c;
}

/* msgpack_packer callback into a fixed buffer; overflow is reported by
 * returning -1, which the packer passes back. */
struct fixbuf {
	uint8_t *p;
	size_t len, cap;
};

static int
fixbuf_write(void *data, const char *buf, size_t len)
{
	struct fixbuf *f = data;

	if (len > f->cap - f->len)
		return -1;
	memcpy(f->p + f->len, buf, len);
	f->len += len;
	return 0;
}

int
tree_follow(struct tree *t, struct entry *base, const msgpack_object *path,
    bool create, bool allow_nil, bool *bad_nil, struct entry **out)
{
	struct entry *e = base;
	msgpack_packer pk;
	struct fixbuf fb;
	uint8_t *tmp = NULL;
	uint8_t small[256];

	*out = NULL;
	if (bad_nil != NULL)
		*bad_nil = false;
	if (path->type != MSGPACK_OBJECT_ARRAY)
		return -EINVAL;
	/* absolute depth bound: walkers and path packers use fixed stacks */
	if (base->depth + path->via.array.size > PROTO_MAX_PATH_DEPTH)
		return -E2BIG;
	for (uint32_t i = 0; i < path->via.array.size; i++) {
		const msgpack_object *el = &path->via.array.ptr[i];
		size_t need = 16;
		int rc;

		if (el->type == MSGPACK_OBJECT_STR)
			need += el->via.str.size;
		else if (el->type == MSGPACK_OBJECT_BIN)
			need += el->via.bin.size;
		fb.len = 0;
		if (need <= sizeof(small)) {
			fb.p = small;
			fb.cap = sizeof(small);
		} else {
			free(tmp);
			if ((tmp = malloc(need)) == NULL)
				return -ENOMEM;
			fb.p = tmp;
			fb.cap = need;
		}
		msgpack_packer_init(&pk, &fb, fixbuf_write);
		if (el->type == MSGPACK_OBJECT_NIL && !(allow_nil && i == 0)) {
			if (bad_nil != NULL)
				*bad_nil = true;
			free(tmp);
			return -EINVAL;
		}
		if ((rc = proto_pack_path_elem(&pk, el, true)) != 0) {
			free(tmp);
			return -EINVAL;
		}
		/* once absent, go on only to validate the other elements */
		if (e != NULL)
			e = tree_child(t, e, fb.p, fb.len, create);
		if (e == NULL && create) {
			free(tmp);
			return -ENOMEM;
		}
	}
	free(tmp);
	*out = e;
	return 0;
}

void
tree_pack_path(msgpack_packer *pk, const struct entry *base,
    const struct entry *e, uint32_t skip)
{
	const struct entry *stack[PROTO_MAX_PATH_DEPTH + 2];
	uint32_t n = 0;

	for (const struct entry *p = e; p != base && p != NULL &&
	    n < PROTO_MAX_PATH_DEPTH + 2; p = p->parent)
		stack[n++] = p;
	if (skip > n)
		skip = n;
	msgpack_pack_array(pk, n - skip);
	/* stack holds e's ancestors deepest first */
	for (uint32_t i = n - skip; i > 0; i--) {
		const struct entry *p = stack[i - 1];

		pk->callback(pk->data, (const char *)p->name, p->name_len);
	}
}

void
tree_walk_init(struct tree_walk *w, struct entry *start, int max_depth)
{
	memset(w, 0, sizeof(*w));
	w->start = start;
	w->max_depth = max_depth;
}

struct entry *
tree_walk_next(struct tree_walk *w)
{
	if (w->done)
		return NULL;
	if (!w->started) {
		w->started = true;
		w->stack[0].e = w->start;
		w->stack[0].next = 0;
		w->sp = 1;
		return w->start;
	}
	while (w->sp > 0) {
		unsigned top = w->sp - 1;
		struct entry *e = w->stack[top].e;

		/* depth of e's children relative to start is top + 1 */
		if ((w->max_depth < 0 || (int)top < w->max_depth) &&
		    w->stack[top].next < e->nchild &&
		    w->sp < PROTO_MAX_PATH_DEPTH + 2) {
			struct entry *c = e->child[w->stack[top].next++];

			w->stack[w->sp].e = c;
			w->stack[w->sp].next = 0;
			w->sp++;
			return c;
		}
		w->sp--;
	}
	w->done = true;
	return NULL;
}

uint32_t
tree_common_depth(const struct entry *base, const struct entry *a,
    const struct entry *b)
{
	while (a->depth > b->depth)
		a = a->parent;
	while (b->depth > a->depth)
		b = b->parent;
	while (a != b) {
		a = a->parent;
		b = b->parent;
	}
	return a->depth - base->depth;
}
