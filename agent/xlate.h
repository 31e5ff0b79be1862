/*
 * xlate: the translator of spec §5: types, matches, codecs, converters.
 *
 * Records live under the meta root (docs/translator.md has examples):
 *
 *   (nil,"type",t1..tn)      {good:[..], bad:[..], code, schema, lang}
 *   (nil,"match",p1..pn)     {type: "t1" or ["t1",..,"tn"]}
 *   (nil,"codec",c1..cn)     {decode, encode, in:[[src,res]..],
 *                             out:[[src,res]..], lang}
 *   (nil,"conv",NAME,p1..pn) {codec: "c1" or ["c1",..,"cn"]}
 *
 * code, decode and encode are Lua 5.4 function bodies run in the sandbox
 * of xlate_lua.h; a record carries lang: "lua".  A record with code but
 * without lang is the reference's Python: it is stored (a loaded
 * reference snapshot must not break a node) but every use fails with
 * "Python code cannot run here".  The containers (nil,"type"),
 * (nil,"match"), (nil,"codec"), (nil,"conv") and (nil,"conv",NAME) hold
 * no value.  Patterns are pattern.h's ("+" one level, "#" one or more).
 *
 * Who calls what:
 *   - agent_commit, for every applied change of any origin (client,
 *     Serf, peer, file, log replay): xlate_applied() compiles the code of
 *     a type or codec record once and caches it by entry; a later change
 *     recompiles.  Nothing is refused there (nodes would diverge): a
 *     record that does not compile is kept and fails its uses.
 *   - set_common, for a client's write of a meta entry, before anything
 *     changes: xlate_meta_check() applies the record rules of §5.2-5.5
 *     (examples run, codecs round-trip) and gives the reference's texts.
 *   - set_common, for every client write (set_value, delete_value,
 *     set_internal, delete_internal), before apply: xlate_write()
 *     decodes with the connection's converter, then, for set_value of a
 *     value (never nil), checks the decoded value against the matched
 *     type.  The check sees the stored form (spec §8.7: the reference
 *     checks the client's form).
 *   - every reply that carries a stored value to a client (get_value,
 *     get_tree and watch items, root, delete_tree's old values):
 *     xlate_read() encodes with the connection's converter.
 *   Replicated updates, files and auth records are never converted.
 *
 * A user is bound to a converter set NAME at login (xlate_user_bind):
 * the entry "conv" below its record, value {key: NAME}, or else its
 * record's _aux.conv.  The set's entries, codecs and types are read at
 * every use, so their changes apply at once.
 */
#ifndef DISTKV_XLATE_H
#define DISTKV_XLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "proto.h"

struct agent;
struct entry;

/* Longest converter set name. */
#define XLATE_MAX_NAME 255

/* A connection's converter binding, set at login. */
struct xlate_user {
	bool bound;
	uint16_t name_len;
	char name[XLATE_MAX_NAME + 1];
};

/* An absolute path as canonical elements (borrowed or in buf). */
struct xlate_path {
	unsigned n;
	const uint8_t *elem[PROTO_MAX_PATH_DEPTH * 2 + 2];
	uint32_t len[PROTO_MAX_PATH_DEPTH * 2 + 2];
	size_t used;
	uint8_t buf[PROTO_MAX_PATH_BYTES + 9 * PROTO_MAX_PATH_DEPTH];
};

struct xlate;

int xlate_new(struct xlate **out);
void xlate_free(struct xlate *x);

/* The path of base (an entry) followed by the wire path (validated by
 * the caller, e.g. tree_follow).  -EINVAL if it does not fit. */
int xlate_path_init(struct xlate_path *p, const struct entry *base,
    const msgpack_object *path);

/* A change of e was applied (agent_commit's fan-out, every origin). */
void xlate_applied(struct agent *a, struct entry *e);

/*
 * A client writes value (NULL: delete) at the meta path p: the record
 * rules.  True if fine, else false with the error text.
 */
bool xlate_meta_check(struct agent *a, const struct xlate_path *p,
    const msgpack_object *value, char *err, size_t cap);

/*
 * A client writes value (NULL: nil) at p; stored: the entry's value now
 * (NULL: nil).  Decodes (u may be NULL or unbound: no conversion), then
 * with typecheck and a non-nil result checks the matched type.  On
 * success returns 0; if the value was converted, *converted is set and
 * *out holds the value to store (malloc'ed canonical msgpack, NULL for
 * nil).  Else -1 with the error text.
 */
int xlate_write(struct agent *a, const struct xlate_user *u,
    const struct xlate_path *p, bool typecheck, const msgpack_object *value,
    const uint8_t *stored, size_t storedlen, bool *converted, uint8_t **out,
    size_t *outlen, char *err, size_t cap);

/*
 * True when xlate_write and xlate_meta_check have nothing to do for a
 * client's write of path (a wire array) below base: no converter is
 * bound, the path is not a meta record (its first absolute element is not
 * nil) and no match record exists.  The write path then skips building
 * an xlate_path (the common case costs a few lookups, not a path copy).
 */
bool xlate_write_trivial(struct agent *a, const struct xlate_user *u,
    const struct entry *base, const msgpack_object *path);

/*
 * The read direction: the stored value v of entry e as the user u sees
 * it.  0 with *converted and *out (malloc'ed, NULL for nil) set when a
 * codec applied, 0 with *converted false when none did (use v), or -1
 * with the error text.  nil is never encoded.
 */
int xlate_read(struct agent *a, const struct xlate_user *u,
    const struct entry *e, const uint8_t *v, size_t len, bool *converted,
    uint8_t **out, size_t *outlen, char *err, size_t cap);

/* Read a user's binding from its record entry (see above). */
void xlate_user_bind(struct xlate_user *u, const struct entry *rec);

#endif
