/*
 * userrec: what a user record (nil, "auth", METHOD, "user", IDENT) binds
 * its user to at login: an ACL (acl.h) or a converter set (xlate.h).
 * Both bindings have the same two forms, the later one first: an entry
 * named for the binding below the record, value {key: NAME} (or a bare
 * NAME), else the field of the same name in the record's _aux map.
 */
#ifndef DISTKV_USERREC_H
#define DISTKV_USERREC_H

#include <stdbool.h>
#include <stddef.h>

struct entry;

/*
 * The name field ("acl", "conv") of record rec binds to, into name (cap
 * bytes, NUL-terminated; *len its length).  False if rec binds nothing
 * (or to a name that is empty, no string, or longer than cap - 1).
 */
bool userrec_binding(const struct entry *rec, const char *field, char *name,
    size_t cap, size_t *len);

#endif
