/*
 * pattern: the pattern lookup shared by ACLs (acl.h), matches and
 * converters (xlate.h): spec §5.3.
 *
 * A pattern set is a subtree of the meta root, e.g. (nil, "match", ...),
 * (nil, "conv", NAME, ...) or (nil, "acl", NAME, ...).  Its elements are
 * literal path elements or the wildcards "+" (exactly one level) and "#"
 * (ONE or more levels, not zero as in MQTT: spec §8.5).  Entries without
 * a value are waypoints only.
 *
 * The spec describes the lookup as a depth-first search with
 * backtracking: literal child first, then "+", then "#" consuming 1, 2,
 * ... elements, the first entry with a value at the end of the path
 * wins.  This module computes the same answer breadth-first, as the
 * reference's ACL NodeFinder does: a position is the ordered list of
 * candidate pattern entries for the path so far; a step replaces each
 * candidate by its literal child, its "+" child, its "#" child (which
 * stays a candidate for later steps too) and, for a "#" candidate, the
 * candidate itself, in that order.  The list in order is the depth-first
 * order of the spec's search, so its first entry holding a value is the
 * spec's answer; dropping a later duplicate (same entry, same "#" state)
 * loses nothing, because both have the same future.  Unlike the search,
 * the cost is bounded: depth times PATTERN_MAX_CANDS child lookups,
 * whatever "#" a writer placed in odd places.
 *
 * Wildcards never match nil (the meta root is reached only by name).
 * No state besides the position; the tree is only read.
 */
#ifndef DISTKV_PATTERN_H
#define DISTKV_PATTERN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct entry;
struct tree;

/* Candidates a position keeps; a pattern set that needs more (many
 * nested "#") overflows: the caller fails closed. */
#define PATTERN_MAX_CANDS 32

struct pattern_pos {
	struct tree *t;
	unsigned n;
	bool overflow;
	struct {
		struct entry *node;
		bool keep;		/* a "#" match: stays for later steps */
	} c[PATTERN_MAX_CANDS];
};

/* Start at the top of a pattern set (NULL: an empty set). */
void pattern_init(struct pattern_pos *p, struct tree *t, struct entry *top);

/* Step to the child named by the canonical element bytes. */
void pattern_step(struct pattern_pos *p, const uint8_t *name, size_t len);

/* The deciding entry here (the first candidate with a value), or NULL. */
struct entry *pattern_result(const struct pattern_pos *p);

/*
 * The pattern entry of the set below top that applies to the data entry
 * e (its absolute path): NULL if none.  *overflow (may be NULL) tells a
 * position that overflowed on the way (the answer is then unreliable).
 */
struct entry *pattern_lookup(struct tree *t, struct entry *top,
    const struct entry *e, bool *overflow);

/*
 * Whether the pattern entry e (below top, top excluded) is well formed:
 * NULL, or why not.  "#" directly below "#" is refused: it only repeats
 * what one "#" matches.  whole: "#" and "+" must also be whole elements
 * (ACLs; a match or converter pattern treats "a+b" as a literal).
 */
const char *pattern_invalid(const struct entry *top, const struct entry *e,
    bool whole);

#endif
