/*
 * tree: the data tree of entries (spec §1.2).  Children are kept in
 * creation order with a hash index once an entry has many of them.
 * Entries are never removed (a delete leaves a tombstone with its chain;
 * a purge later drops only the chain), so a struct entry pointer stays
 * valid for the agent's lifetime; walkers and watchers rely on that.
 *
 * Only agent_commit() (agent.h) may change an entry's value, chain or tock;
 * this module creates entries, finds them, and allocates the payload
 * (chain and value) that agent_commit() hands to an entry.
 */
#ifndef DISTKV_TREE_H
#define DISTKV_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <msgpack.h>

#include "chain.h"
#include "proto.h"

/* tree_init returns 0 or -ENOMEM (the root entry and the index). */

/*
 * An entry's key is its whole path: the canonical msgpack array of its
 * elements (the same bytes the shm region uses).  One hash index over all
 * keys finds any entry with one probe, whatever its depth.
 *
 * Short keys (up to TREE_INLINE_KEY bytes, nearly all of them) are kept
 * whole in the entry, so a lookup compares one run of bytes.  A longer key
 * is not: the entry keeps only its own element and the key is rebuilt from
 * the ancestors when needed, so memory per entry stays proportional to its
 * own element, never to its depth times its path (a deep path of long
 * elements would otherwise cost its length squared).
 */
#define TREE_INLINE_KEY 128

/*
 * Memory per entry matters: a path of n elements makes n entries, and a
 * million keys make millions of them.  So the chain and the value share
 * one block allocated to their size (the payload: tree_payload_new; the
 * value is found after the chain, its length in the chain's header), an
 * entry with one child keeps it in the entry, its watches are found by
 * the entry in a table of the agent's (watch.h: a bit here), and the
 * small fields are as narrow as their bounds allow (key_len:
 * PROTO_MAX_PATH_BYTES plus a 3-byte header; depth: PROTO_MAX_PATH_DEPTH).
 * The header is 42 bytes on 64-bit systems; the key follows it.
 */
struct entry {
	struct entry *parent;
	union {
		struct entry *only;	/* nchild <= 1 */
		struct entry **many;	/* from 2 on: malloc'ed, power of 2 */
	} kids;				/* creation order: entry_children() */
	const struct chain *chain;	/* the payload; never NULL */
	uint64_t tock;
	uint32_t nchild;
	/* last, next to the key: a lookup compares length and bytes in
	 * one cache line, not the header's line and the key's */
	uint16_t key_len;		/* whole key, with the array header */
	uint16_t name_len;		/* own element (<= 4096 + header) */
	uint8_t depth;			/* root = 0 */
	bool key_whole : 1;		/* key[]: whole key, else own element */
	bool watched : 1;		/* a watch is on it (watch.h) */
	uint8_t key[];
};
_Static_assert(PROTO_MAX_PATH_BYTES + 3 <= UINT16_MAX &&
    PROTO_MAX_PATH_DEPTH <= UINT8_MAX, "struct entry's narrow fields");

/* e's children in creation order, entry_children(e)[0 .. nchild-1]. */
static inline struct entry *const *
entry_children(const struct entry *e)
{
	return e->nchild <= 1 ? &e->kids.only : e->kids.many;
}

static inline bool
entry_has_value(const struct entry *e)
{
	return e->chain->value_len != 0;
}

/* Bytes of the value's canonical msgpack, 0 for nil. */
static inline uint32_t
entry_value_len(const struct entry *e)
{
	return e->chain->value_len;
}

/* The value's canonical msgpack (entry_value_len bytes), NULL for nil. */
static inline const uint8_t *
entry_value(const struct entry *e)
{
	return e->chain->value_len != 0 ?
	    (const uint8_t *)e->chain + CHAIN_SIZE(e->chain->n) : NULL;
}

/* The entry's own element (canonical msgpack), e.g. for its name. */
static inline const uint8_t *
entry_name(const struct entry *e)
{
	return e->key_whole ? e->key + e->key_len - e->name_len : e->key;
}

static inline uint32_t
entry_name_len(const struct entry *e)
{
	return e->name_len;
}

/* Size of the canonical msgpack array header of a key of n elements
 * (paths are at most PROTO_MAX_PATH_DEPTH deep: never a 5-byte one). */
static inline uint32_t
tree_key_hdr_len(uint32_t n)
{
	return n < 16 ? 1 : 3;
}

/*
 * Is e in the meta root's subtree (its first path element nil: ACLs,
 * types, codecs, auth records)?  From e's own key when it is kept whole,
 * the common case: the checks every set makes (acl_entry_invalid, the
 * translator's) then touch no ancestor, each a cache miss in a big tree.
 */
static inline bool
entry_under_meta(const struct entry *e)
{
	const struct entry *x = e;

	if (e->depth == 0)
		return false;
	if (e->key_whole)
		return e->key[tree_key_hdr_len(e->depth)] == 0xc0;
	while (x->depth > 1)
		x = x->parent;
	return x->name_len == 1 && entry_name(x)[0] == 0xc0;
}

/* A new entry waiting for its index slot (tree.c, index_put_soon). */
struct tree_slot {
	uint64_t hash;
	struct entry *e;
};

struct tree_slab;

/* New entries wait this many creations before they go into the index. */
#define TREE_PUT_LEAD 8

struct tree {
	size_t nentries;
	struct tree_slab *slabs;	/* where entries live (tree.c) */
	uint8_t *slab_next;
	size_t slab_left;
	uint8_t *keybuf;		/* tree_entry_key's scratch */
	uint64_t *index;		/* open addressing over every entry:
					 * tree.c, index_slot */
	size_t index_cap;
	/* new entries not yet in the index (a ring, oldest at put_head):
	 * their slots were fetched when they were made (tree.c) */
	struct tree_slot put_ring[TREE_PUT_LEAD];
	unsigned put_head, put_n;
	struct entry *root;
};

int tree_init(struct tree *t);
void tree_fini(struct tree *t);
/* Put the new entries that wait into the index (the end of a batch:
 * lookups then probe the index alone).  Lookups find them either way. */
void tree_index_flush(struct tree *t);
/* Room in the index for n entries in all, so that loading that many
 * rebuilds it no more (a snapshot's record count).  0 or -ENOMEM. */
int tree_reserve(struct tree *t, size_t n);

/*
 * An entry's payload: chain c (its n links only) and, when value is not
 * NULL, the value bytes after it, in one allocation.  NULL if out of
 * memory.  Only agent_commit() gives it to an entry
 * (tree_entry_set_payload), which frees the old one; NULL there means no
 * chain and no value (a purged tombstone).
 */
struct chain *tree_payload_new(const struct chain *c, const uint8_t *value,
    size_t len);
void tree_entry_set_payload(struct entry *e, struct chain *p,
    bool has_value, size_t len);

/*
 * The whole key of e (e->key_len bytes).  Valid until the next call: a
 * long key is rebuilt in a buffer of the tree's.
 */
const uint8_t *tree_entry_key(struct tree *t, const struct entry *e);

/* Child of e named by canonical element bytes; created (with e's tock)
 * if create.  NULL if absent or out of memory. */
struct entry *tree_child(struct tree *t, struct entry *e,
    const uint8_t *name, size_t len, bool create);

/*
 * Follow a wire path (msgpack array) from base.  Each element is
 * canonicalised (proto_pack_path_elem); nil is allowed only as the first
 * element when allow_nil.  Returns 0 with *out (NULL if absent and not
 * create), -EINVAL for a bad element (*bad_nil set when the element was a
 * misplaced nil), -E2BIG for more than PROTO_MAX_PATH_DEPTH elements,
 * -ENAMETOOLONG for an element or a whole path over PROTO_MAX_ELEM_BYTES
 * or PROTO_MAX_PATH_BYTES.
 */
int tree_follow(struct tree *t, struct entry *base, const msgpack_object *path,
    bool create, bool allow_nil, bool *bad_nil, struct entry **out);

/*
 * tree_follow in steps, for a caller that checks something between the
 * lookup and the create (a set: the ACL, prev, the translator) and should
 * build, validate and hash the path once.  tree_key_build: the canonical
 * key of path below base, errors as tree_follow's; tree_key_find: the
 * entry (base for an empty path) or NULL; tree_key_create, after a find:
 * the entry, created with whatever is missing above it, NULL if out of
 * memory.  It uses the key up: build again to reuse k.
 */
struct tree_key {
	struct entry *base;		/* NULL: nothing built */
	uint32_t n;			/* elements below base */
	uint32_t hdr;			/* header bytes of the whole key */
	size_t len;
	uint64_t hash;
	size_t missed_at;		/* nentries at a miss, else SIZE_MAX */
	uint8_t *p;			/* small, or malloc'ed */
	uint8_t small[512];
};
static inline void
tree_key_init(struct tree_key *k)
{
	k->base = NULL;
	k->p = k->small;
}

static inline void
tree_key_fini(struct tree_key *k)
{
	if (k->p != k->small)
		free(k->p);
	tree_key_init(k);
}

int tree_key_build(struct tree *t, struct entry *base,
    const msgpack_object *path, bool allow_nil, bool *bad_nil,
    struct tree_key *k);
struct entry *tree_key_find(struct tree *t, struct tree_key *k);
struct entry *tree_key_create(struct tree *t, struct tree_key *k);

/* Pack the path of e relative to its ancestor base, elements from index
 * skip on (as an array).  For base = root and skip 0 that is e->key. */
void tree_pack_path(msgpack_packer *pk, const struct entry *base,
    const struct entry *e, uint32_t skip);

/*
 * Pre-order walker that survives changes between steps (entries are never
 * removed and children are only appended, so (entry, next child) positions
 * stay valid).  max_depth < 0: unlimited; depth relative to the start.
 */
struct tree_walk {
	struct entry *start;
	int max_depth;
	unsigned sp;
	bool started, done;
	struct {
		struct entry *e;
		uint32_t next;
	} stack[PROTO_MAX_PATH_DEPTH + 2];
};

void tree_walk_init(struct tree_walk *w, struct entry *start, int max_depth);
/* Next entry in pre-order, or NULL when done. */
struct entry *tree_walk_next(struct tree_walk *w);

/* Depth of the deepest common ancestor of a and b, relative to base (both
 * must be base or below it). */
uint32_t tree_common_depth(const struct entry *base, const struct entry *a,
    const struct entry *b);

#endif
