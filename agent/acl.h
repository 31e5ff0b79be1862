/*
 * acl: who may do what where (spec §4.7, DistKV 0.57's semantics).
 *
 * An ACL is a subtree of the meta root: (nil, "acl", NAME, pattern...).
 * Each entry's value is a string of mode letters:
 *
 *   a  read the ACL itself (test_acl answers the letters)
 *   r  read the value          w  change an existing value
 *   c  create a value          d  delete the value
 *   x  step to a named child   e  enumerate children
 *   n  create a new child entry
 *
 * and 'W', which only a check uses: 'w' if the entry has a value, else
 * 'c'.  Pattern elements "+" (one level) and "#" (one or more levels) are
 * wildcards.  Patterns are paths from the root of the tree, whatever root
 * a connection has set.
 *
 * Matching is pattern.h's lookup (the reference's NodeFinder, shared with
 * matches and converters), applied at every step of a path: the first
 * candidate that holds a value decides.  Where none holds one, the
 * reference allows; an agent started with --acl-default-deny refuses.
 *
 * A user is bound to an ACL by the "acl" entry below its record, value
 * {key: NAME} ("*": unrestricted), or else its record's _aux.acl; the
 * binding is read at login, the ACL's contents at every check, so a
 * change applies at once to open connections too.
 *
 * The request handlers call acl_check_path (or acl_view for items of a
 * walk) at one point per action; nothing else here touches a connection.
 */
#ifndef DISTKV_ACL_H
#define DISTKV_ACL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "pattern.h"

struct agent;
struct entry;

/* Longest ACL name (a msgpack str element). */
#define ACL_MAX_NAME 255


/* A connection's binding, set at login. */
struct acl_user {
	bool restricted;		/* bound to a named ACL */
	uint16_t name_len;
	char name[ACL_MAX_NAME + 1];
};

/* A position while walking a path through one ACL. */
struct acl_pos {
	struct agent *a;
	const struct acl_user *u;
	uint16_t blocked;		/* letters blocked from here down */
	/* the pattern lookup (pattern.h); an overflow fails closed: such
	 * a position allows nothing */
	struct pattern_pos pat;
};

/* Start at the top of u's ACL (the entry (nil,"acl",NAME)). */
void acl_pos_init(struct acl_pos *p, struct agent *a,
    const struct acl_user *u);

/* Step to the child named by the canonical element bytes. */
void acl_step(struct acl_pos *p, const uint8_t *name, size_t len);

/* Whether the letter is allowed here (mode letters above, not 'W'). */
bool acl_allows(const struct acl_pos *p, char letter);

/* Block a letter here and below (a missing 'x' hides values below). */
void acl_block(struct acl_pos *p, char letter);

/* The letters of the deciding entry: a pointer into its value and the
 * length, or false when no entry decides. */
bool acl_result(const struct acl_pos *p, const char **letters, size_t *len);

/*
 * Walk the path (msgpack array, already validated) from base (the
 * connection's root; the tree root's descendants above it are walked
 * first) and check the letter at the end: at each step 'x' if the child
 * exists, else 'n' if check_new, else the walk stops there (an absent
 * entry, nothing to check).  letter 'W': 'w' if the target has a value,
 * else 'c'; 0: no letter at the end.  Returns true if allowed; else
 * false with the refusal in err (naming the path and the letter).
 * *pos (if not NULL) is left at the target.
 */
bool acl_check_path(struct agent *a, const struct acl_user *u,
    struct entry *base, const msgpack_object *path, bool check_new,
    char letter, struct acl_pos *pos, char *err, size_t cap);

/* As acl_check_path, for an existing entry e (all steps check 'x'). */
bool acl_check_entry(struct agent *a, const struct acl_user *u,
    struct entry *e, char letter, char *err, size_t cap);

/*
 * What a walk below base (get_tree, watch) may report of e, as the
 * reference filters: every ancestor from base down (base included, e
 * excluded) must allow 'e', else e is hidden; one without 'x' blocks 'r'
 * below it; e's value is reported only if 'r' is allowed at e.
 */
enum acl_view { ACL_HIDE, ACL_NO_VALUE, ACL_FULL };
enum acl_view acl_view(struct agent *a, const struct acl_user *u,
    struct entry *base, struct entry *e);

/* delete_tree below base: whether e may be deleted: every entry from
 * base down to e's parent allows 'e' and 'x', e allows 'd'. */
bool acl_may_delete(struct agent *a, const struct acl_user *u,
    struct entry *base, struct entry *e);

/*
 * Check a value written at (nil, "acl", ...): path is the element list
 * below the meta root as entries (e is the target).  NULL if fine, else
 * why not (a constant text).
 */
const char *acl_entry_invalid(const struct entry *e, const uint8_t *value,
    size_t len);

/* Read a user's binding from its record entry (see above). */
void acl_user_bind(struct acl_user *u, const struct entry *rec);

#endif
