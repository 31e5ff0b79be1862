/* tree: see tree.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "bigtab.h"
#include "tree.h"

/* An index slot's entry address bits (index_slot). */
#define INDEX_PTR_BITS 48
#define INDEX_PTR_MASK ((UINT64_C(1) << INDEX_PTR_BITS) - 1)

static void
key_hdr_put(uint8_t *p, uint32_t n)
{
	if (n < 16)
		p[0] = (uint8_t)(0x90 | n);
	else {
		p[0] = 0xdc;
		p[1] = (uint8_t)(n >> 8);
		p[2] = (uint8_t)n;
	}
}

/*
 * Entries are never freed before tree_fini, so they come from slabs: no
 * allocator header and no rounding to 16 bytes on each of millions of
 * them, and no allocator call per entry.  Under AddressSanitizer each is
 * its own allocation, so that an overrun of one is still caught.
 */
#if defined(__SANITIZE_ADDRESS__)
#define TREE_SLABS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TREE_SLABS 0
#endif
#endif
#ifndef TREE_SLABS
#define TREE_SLABS 1
#endif
/*
 * Slabs double from TREE_SLAB_FIRST to TREE_SLAB_MAX: from BIGTAB_HUGE on
 * they are mappings with huge pages asked for (bigtab), so loading a
 * million keys takes a page fault per 2 MiB of entries rather than per
 * 4 KiB (a third of a load's time went to faults and zeroing, perf).
 * Their memory comes zeroed and is handed out once: no memset.
 */
#define TREE_SLAB_FIRST (256u << 10)
#define TREE_SLAB_MAX (16u << 20)

struct tree_slab {
	struct tree_slab *next;
	size_t bytes;			/* the whole slab, for bigtab_free */
	uint8_t mem[];
};

/* size zeroed bytes, 8-aligned, for an entry. */
static void *
entry_alloc(struct tree *t, size_t size)
{
	struct tree_slab *s;
	size_t cap;
	uint8_t *p;

	if (!TREE_SLABS)
		return calloc(1, size);
	size = (size + 7) & ~(size_t)7;
	if (size > t->slab_left) {
		cap = t->slabs == NULL ? TREE_SLAB_FIRST :
		    t->slabs->bytes >= TREE_SLAB_MAX / 2 ? TREE_SLAB_MAX :
		    t->slabs->bytes * 2;
		if (cap < sizeof(*s) + size)
			cap = sizeof(*s) + size;
		if ((s = bigtab_calloc(1, cap)) == NULL)
			return NULL;
		s->next = t->slabs;
		s->bytes = cap;
		t->slabs = s;
		t->slab_next = s->mem;
		t->slab_left = cap - sizeof(*s);
	}
	p = t->slab_next;
	t->slab_next += size;
	t->slab_left -= size;
	return p;
}

/* A new entry for the whole key key[0..klen) whose last element is
 * name_len bytes; a long key keeps only that element (tree.h). */
static struct entry *
entry_new(struct tree *t, const uint8_t *key, size_t klen, uint32_t depth,
    size_t name_len)
{
	bool whole = klen <= TREE_INLINE_KEY;
	size_t keep = whole ? klen : name_len;
	size_t size = offsetof(struct entry, key) + keep;
	struct entry *e;

	/* the key starts inside the struct's tail padding: never less than
	 * the struct itself */
	if (size < sizeof(*e))
		size = sizeof(*e);
	if ((e = entry_alloc(t, size)) == NULL)
		return NULL;
	if ((uintptr_t)e > INDEX_PTR_MASK) {
		if (!TREE_SLABS)
			free(e);
		return NULL;	/* cannot be indexed (index_slot) */
	}
	memcpy(e->key, key + klen - keep, keep);
	e->key_whole = whole;
	e->key_len = (uint16_t)klen;
	e->name_len = (uint16_t)name_len;
	e->depth = (uint8_t)depth;
	e->chain = &chain_none;
	return e;
}

struct chain *
tree_payload_new(const struct chain *c, const uint8_t *value, size_t len)
{
	size_t links = CHAIN_SIZE(c->n);
	struct chain *p;

	if (value == NULL)
		len = 0;
	if ((p = malloc(links + len)) == NULL)
		return NULL;
	p->n = c->n;
	p->value_len = (uint32_t)len;
	p->shm_hint = 0;
	memcpy(p->l, c->l, c->n * sizeof(c->l[0]));
	if (len > 0)
		memcpy((uint8_t *)p + links, value, len);
	return p;
}

static void
payload_free(struct entry *e)
{
	if (e->chain != &chain_none)
		free((void *)(uintptr_t)e->chain);
}

void
tree_entry_set_payload(struct entry *e, struct chain *p, bool has_value,
    size_t len)
{
	payload_free(e);
	if (p == NULL) {
		e->chain = &chain_none;
		return;
	}
	e->chain = p;
	/* a value is canonical msgpack, never empty: len 0 means nil */
	p->value_len = has_value ? (uint32_t)len : 0;
}

int
tree_init(struct tree *t)
{
	static const uint8_t root_key = 0x90;	/* [] */

	memset(t, 0, sizeof(*t));
	t->index_cap = 1024;
	if ((t->index = bigtab_calloc(t->index_cap,
	    sizeof(*t->index))) == NULL ||
	    (t->keybuf = malloc(PROTO_MAX_PATH_BYTES)) == NULL ||
	    (t->root = entry_new(t, &root_key, 1, 0, 0)) == NULL) {
		bigtab_free(t->index, t->index_cap, sizeof(*t->index));
		free(t->keybuf);
		return -ENOMEM;
	}
	t->nentries = 1;
	return 0;
}

static void
tree_free_entry(struct entry *e)
{
	for (uint32_t i = 0; i < e->nchild; i++)
		tree_free_entry(entry_children(e)[i]);
	if (e->nchild > 1)
		free(e->kids.many);
	payload_free(e);
	if (!TREE_SLABS)
		free(e);
}

void
tree_fini(struct tree *t)
{
	if (t->root != NULL)
		tree_free_entry(t->root);
	while (t->slabs != NULL) {
		struct tree_slab *s = t->slabs;

		t->slabs = s->next;
		bigtab_free(s, 1, s->bytes);
	}
	bigtab_free(t->index, t->index_cap, sizeof(*t->index));
	free(t->keybuf);
	memset(t, 0, sizeof(*t));
}

const uint8_t *
tree_entry_key(struct tree *t, const struct entry *e)
{
	size_t end = e->key_len;
	const struct entry *c;

	if (e->key_whole)
		return e->key;
	/* elements from the last backwards, up to an ancestor kept whole
	 * (the root is) */
	for (c = e; !c->key_whole; c = c->parent) {
		end -= c->name_len;
		memcpy(t->keybuf + end, c->key, c->name_len);
	}
	memcpy(t->keybuf + end - (c->key_len - tree_key_hdr_len(c->depth)),
	    c->key + tree_key_hdr_len(c->depth), c->key_len - tree_key_hdr_len(c->depth));
	key_hdr_put(t->keybuf, e->depth);
	return t->keybuf;
}

/*
 * An index slot is one word: the entry's address in the low 48 bits (user
 * space addresses fit: entry_new refuses one that would not) and the top
 * 16 bits of its key's hash above them; 0 is an empty slot.  So a probe
 * compares a key only when 16 bits of the hash agree (1 in 65,536 for
 * another key), and a slot costs 8 bytes where hash and pointer took 16:
 * 32 MiB less at 1M keys of 3 elements (bench/README.md, session 14).
 * The full hash is computed again from the key when the index grows.
 */
static inline uint64_t
index_slot(uint64_t h, const struct entry *e)
{
	return (h & ~INDEX_PTR_MASK) | (uint64_t)(uintptr_t)e;
}

static inline struct entry *
index_slot_entry(uint64_t s)
{
	return (struct entry *)(uintptr_t)(s & INDEX_PTR_MASK);
}

static inline bool
index_slot_may_be(uint64_t s, uint64_t h)
{
	return ((s ^ h) & ~INDEX_PTR_MASK) == 0;
}

static void
index_put(uint64_t *tab, size_t cap, uint64_t h, const struct entry *e)
{
	size_t i;

	for (i = (size_t)h & (cap - 1); tab[i] != 0; i = (i + 1) & (cap - 1))
		;
	tab[i] = index_slot(h, e);
}

/*
 * The index is the largest table of the agent (one slot per entry at
 * least): it fills up to 4/5 before it doubles.  Linear probing there
 * costs about 3 slots for a hit and 13 for a miss, all in a few
 * consecutive cache lines (8 slots a line), and a miss compares no key
 * but by chance (index_slot).
 */
static bool
index_full(const struct tree *t, size_t n)
{
	return n * 5 > t->index_cap * 4;
}

/*
 * A new entry's index slot is a cache miss in a big index (a random
 * probe), and loading new keys makes one per path element.  So the slot
 * is fetched when the entry is made, and the entry goes into the index
 * TREE_PUT_LEAD creations later, when the line has arrived; until then
 * index_find looks in the ring too.
 */
/* The ring's oldest entry into the index. */
static void
index_put_oldest(struct tree *t)
{
	const struct tree_slot *r = &t->put_ring[t->put_head];

	index_put(t->index, t->index_cap, r->hash, r->e);
	t->put_head = (t->put_head + 1) % TREE_PUT_LEAD;
	t->put_n--;
}

static void
index_put_soon(struct tree *t, uint64_t h, struct entry *e)
{
	struct tree_slot *r;

	__builtin_prefetch(&t->index[(size_t)h & (t->index_cap - 1)], 1);
	if (t->put_n == TREE_PUT_LEAD)
		index_put_oldest(t);
	r = &t->put_ring[(t->put_head + t->put_n) % TREE_PUT_LEAD];
	r->hash = h;
	r->e = e;
	t->put_n++;
}

void
tree_index_flush(struct tree *t)
{
	while (t->put_n > 0)
		index_put_oldest(t);
}

/* Entries whose key the resize hashes ahead of the one it moves. */
#define INDEX_RESIZE_AHEAD 8

static int
index_resize(struct tree *t, size_t cap)
{
	uint64_t *tab = bigtab_calloc(cap, sizeof(*tab));

	if (tab == NULL)
		return -ENOMEM;
	/* the slots hold 16 bits of each hash: every key is hashed again,
	 * its entry fetched a few slots ahead (they lie all over the heap) */
	for (size_t i = 0; i < t->index_cap; i++) {
		const struct entry *e;

		if (i + INDEX_RESIZE_AHEAD < t->index_cap &&
		    t->index[i + INDEX_RESIZE_AHEAD] != 0)
			__builtin_prefetch(index_slot_entry(
			    t->index[i + INDEX_RESIZE_AHEAD]));
		if (t->index[i] == 0)
			continue;
		e = index_slot_entry(t->index[i]);
		index_put(tab, cap, XXH3_64bits(tree_entry_key(t, e),
		    e->key_len), e);
	}
	bigtab_free(t->index, t->index_cap, sizeof(*t->index));
	t->index = tab;
	t->index_cap = cap;
	return 0;
}

int
tree_reserve(struct tree *t, size_t n)
{
	size_t cap = t->index_cap;

	while (n * 5 > cap * 4)
		cap *= 2;
	return cap == t->index_cap ? 0 : index_resize(t, cap);
}

/* True if e's whole key is key[0..len) (lengths already equal). */
static bool
entry_key_eq(const struct entry *e, const uint8_t *key, size_t len)
{
	uint32_t hdr = tree_key_hdr_len(e->depth), chdr;
	uint8_t h[3];
	size_t end = len;

	if (e->key_whole)
		return memcmp(e->key, key, len) == 0;
	key_hdr_put(h, e->depth);
	if (memcmp(h, key, hdr) != 0)
		return false;
	/* the last elements one by one, then an ancestor's whole key */
	for (; !e->key_whole; e = e->parent) {
		if (e->name_len > end - hdr || memcmp(e->key,
		    key + end - e->name_len, e->name_len) != 0)
			return false;
		end -= e->name_len;
	}
	chdr = tree_key_hdr_len(e->depth);
	return e->key_len - chdr == end - hdr &&
	    memcmp(e->key + chdr, key + hdr, end - hdr) == 0;
}

/* The entry with exactly this key, or NULL. */
static struct entry *
index_find(const struct tree *t, const uint8_t *key, size_t len, uint64_t h)
{
	size_t mask = t->index_cap - 1;

	for (unsigned n = 0; n < t->put_n; n++) {
		const struct tree_slot *r =
		    &t->put_ring[(t->put_head + n) % TREE_PUT_LEAD];

		if (r->hash == h && r->e->key_len == len &&
		    entry_key_eq(r->e, key, len))
			return r->e;
	}
	for (size_t i = (size_t)h & mask; t->index[i] != 0;
	    i = (i + 1) & mask) {
		struct entry *e;

		if (!index_slot_may_be(t->index[i], h))
			continue;
		e = index_slot_entry(t->index[i]);
		if (e->key_len == len && entry_key_eq(e, key, len))
			return e;
	}
	return NULL;
}

/*
 * The child of e whose whole key is key[0..klen) (e's elements plus one
 * of name_len bytes), hash h; created if create.  absent: the caller
 * knows there is none (no probe).
 */
static struct entry *
child_by_key(struct tree *t, struct entry *e, const uint8_t *key,
    size_t klen, uint64_t h, size_t name_len, bool create, bool absent)
{
	struct entry *c;

	/* a childless parent (one just created, on a new deep path) has no
	 * such child, nor has one the caller looked up already: no probe */
	c = e->nchild > 0 && !absent ? index_find(t, key, klen, h) : NULL;
	if (c != NULL || !create)
		return c;
	/* one child lives in the entry; from two on, an array of a power
	 * of two slots, grown when full */
	if (e->nchild >= 1 && (e->nchild & (e->nchild - 1)) == 0) {
		uint32_t cap = e->nchild * 2;
		struct entry **ch = malloc(cap * sizeof(*ch));

		if (ch == NULL)
			return NULL;
		memcpy(ch, entry_children(e), e->nchild * sizeof(*ch));
		if (e->nchild > 1)
			free(e->kids.many);
		e->kids.many = ch;
	}
	if (index_full(t, t->nentries + 1) &&
	    index_resize(t, t->index_cap * 2) != 0)
		return NULL;
	if ((c = entry_new(t, key, klen, e->depth + 1, name_len)) == NULL)
		return NULL;
	c->parent = e;
	/* spec §1.2: a never-updated entry carries its parent's tock */
	c->tock = e->tock;
	if (e->nchild == 0)
		e->kids.only = c;
	else
		e->kids.many[e->nchild] = c;
	e->nchild++;
	index_put_soon(t, h, c);
	t->nentries++;
	return c;
}

struct entry *
tree_child(struct tree *t, struct entry *e, const uint8_t *name, size_t len,
    bool create)
{
	uint32_t phdr = tree_key_hdr_len(e->depth), hdr = tree_key_hdr_len(e->depth + 1);
	size_t pel = e->key_len - phdr, klen = hdr + pel + len;
	uint8_t small[256], *key = small;
	struct entry *c;

	if (klen > PROTO_MAX_PATH_BYTES)
		return NULL;
	if (klen > sizeof(small) && (key = malloc(klen)) == NULL)
		return NULL;
	key_hdr_put(key, e->depth + 1);
	memcpy(key + hdr, tree_entry_key(t, e) + phdr, pel);
	memcpy(key + hdr + pel, name, len);
	c = child_by_key(t, e, key, klen, XXH3_64bits(key, klen), len, create,
	    false);
	if (key != small)
		free(key);
	return c;
}

/* tree_key_build's body, inlined into tree_follow: a get is mostly this
 * (a call in between cost a get 50 instructions) */
static inline __attribute__((always_inline)) int
key_build(struct tree *t, struct entry *base, const msgpack_object *path,
    bool allow_nil, bool *bad_nil, struct tree_key *k)
{
	uint32_t n, bhdr = tree_key_hdr_len(base->depth);
	size_t cap;

	tree_key_fini(k);
	if (bad_nil != NULL)
		*bad_nil = false;
	if (path->type != MSGPACK_OBJECT_ARRAY)
		return -EINVAL;
	n = path->via.array.size;
	/* absolute depth bound: walkers and path packers use fixed stacks */
	if (base->depth + n > PROTO_MAX_PATH_DEPTH)
		return -E2BIG;
	/* the key: header, base's elements, the canonical new elements */
	k->hdr = tree_key_hdr_len(base->depth + n);
	cap = k->hdr + base->key_len + 16 * (size_t)n;
	for (uint32_t i = 0; i < n; i++) {
		const msgpack_object *el = &path->via.array.ptr[i];

		uint32_t sz = el->type == MSGPACK_OBJECT_STR ? el->via.str.size :
		    el->type == MSGPACK_OBJECT_BIN ? el->via.bin.size : 0;

		if (sz > PROTO_MAX_ELEM_BYTES)
			return -ENAMETOOLONG;
		cap += sz;
	}
	if (cap > PROTO_MAX_PATH_BYTES + 16 * (size_t)n)
		return -ENAMETOOLONG;
	if (cap > sizeof(k->small) && (k->p = malloc(cap)) == NULL) {
		k->p = k->small;
		return -ENOMEM;
	}
	key_hdr_put(k->p, base->depth + n);
	memcpy(k->p + k->hdr, tree_entry_key(t, base) + bhdr,
	    base->key_len - bhdr);
	k->len = k->hdr + base->key_len - bhdr;
	for (uint32_t i = 0; i < n; i++) {
		const msgpack_object *el = &path->via.array.ptr[i];
		int w;

		if (el->type == MSGPACK_OBJECT_NIL && !(allow_nil && i == 0)) {
			if (bad_nil != NULL)
				*bad_nil = true;
			return -EINVAL;
		}
		/* cap reserved 16 bytes + the string per element */
		if ((w = proto_put_short_ascii_elem(k->p + k->len, el)) == 0 &&
		    (w = proto_put_path_elem(k->p + k->len, el, true)) < 0)
			return -EINVAL;
		k->len += (size_t)w;
	}
	if (k->len > PROTO_MAX_PATH_BYTES)
		return -ENAMETOOLONG;
	k->hash = XXH3_64bits(k->p, k->len);
	k->n = n;
	k->missed_at = SIZE_MAX;
	k->base = base;
	return 0;
}

int
tree_key_build(struct tree *t, struct entry *base, const msgpack_object *path,
    bool allow_nil, bool *bad_nil, struct tree_key *k)
{
	return key_build(t, base, path, allow_nil, bad_nil, k);
}

static inline __attribute__((always_inline)) struct entry *
key_find(struct tree *t, struct tree_key *k)
{
	struct entry *e;

	/* every path, however deep, is one probe when it exists; none
	 * below a childless base (a snapshot's next record, mostly) */
	e = k->n == 0 ? k->base : k->base->nchild == 0 ? NULL :
	    index_find(t, k->p, k->len, k->hash);
	k->missed_at = e == NULL ? t->nentries : SIZE_MAX;
	return e;
}

struct entry *
tree_key_find(struct tree *t, struct tree_key *k)
{
	return key_find(t, k);
}

/*
 * Length of the one canonical element at p (key bytes the tree built
 * itself): short strings and small integers, nearly every path element,
 * by their first byte; the rest by proto_scan, which cost a load of new
 * keys 60 instructions an element.
 */
static inline size_t
canon_elem_len(const uint8_t *p, size_t left)
{
	size_t len = 0;

	if (p[0] <= 0x7f || p[0] >= 0xe0 || p[0] == 0xc0)
		return 1;
	if ((p[0] & 0xe0) == 0xa0)
		return 1 + (size_t)(p[0] & 0x1f);
	if (p[0] == 0xd9 && left >= 2)
		return 2 + (size_t)p[1];
	proto_scan(p, left, 1, &len);
	return len;
}

struct entry *
tree_key_create(struct tree *t, struct tree_key *k)
{
	size_t off = k->hdr + k->base->key_len - tree_key_hdr_len(k->base->depth);
	struct entry *e = k->base;
	/* entries are never removed: no entry created since the miss means
	 * the whole path is still absent (its last entry is new) */
	bool missed = k->missed_at == t->nentries;

	/* create level by level below the deepest existing entry */
	for (uint32_t i = 0; i < k->n && e != NULL; i++) {
		/* the key of this level in place: its elements are a prefix
		 * of the whole key's, its header no longer than that one */
		uint32_t hl = tree_key_hdr_len(e->depth + 1);
		uint8_t *key = k->p + k->hdr - hl;
		bool last = i == k->n - 1;
		size_t elen, klen;

		/* our own canonical bytes: always one whole element */
		elen = canon_elem_len(k->p + off, k->len - off);
		klen = hl + off + elen - k->hdr;
		key_hdr_put(key, e->depth + 1);
		e = child_by_key(t, e, key, klen, last ? k->hash :
		    XXH3_64bits(key, klen), elen, true, missed && last);
		off += elen;
	}
	/* the header bytes are another level's now: build again to reuse */
	k->base = NULL;
	return e;
}

int
tree_follow(struct tree *t, struct entry *base, const msgpack_object *path,
    bool create, bool allow_nil, bool *bad_nil, struct entry **out)
{
	struct tree_key k;
	int rc;

	*out = NULL;
	k.p = k.small;
	if ((rc = key_build(t, base, path, allow_nil, bad_nil, &k)) == 0 &&
	    (*out = key_find(t, &k)) == NULL && create &&
	    (*out = tree_key_create(t, &k)) == NULL)
		rc = -ENOMEM;
	if (k.p != k.small)
		free(k.p);
	return rc;
}

void
tree_pack_path(msgpack_packer *pk, const struct entry *base,
    const struct entry *e, uint32_t skip)
{
	const struct entry *from = e, *el[PROTO_MAX_PATH_DEPTH];
	uint32_t n, fhdr, start;

	/* the first element to pack belongs to the ancestor at this depth */
	if (e->depth < base->depth + skip)
		skip = e->depth - base->depth;
	n = e->depth - base->depth - skip;
	msgpack_pack_array(pk, n);
	if (e->key_whole) {
		/* from's elements are a prefix of e's: skip that many bytes */
		while (from->depth > base->depth + skip)
			from = from->parent;
		fhdr = tree_key_hdr_len(from->depth);
		start = tree_key_hdr_len(e->depth) + (from->key_len - fhdr);
		pk->callback(pk->data, (const char *)e->key + start,
		    e->key_len - start);
		return;
	}
	for (uint32_t i = n; i > 0; i--, from = from->parent)
		el[i - 1] = from;
	for (uint32_t i = 0; i < n; i++)
		pk->callback(pk->data, (const char *)entry_name(el[i]),
		    el[i]->name_len);
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
			struct entry *c =
			    entry_children(e)[w->stack[top].next++];

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
