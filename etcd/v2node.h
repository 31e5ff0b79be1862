/*
 * v2node: how a DistKV entry looks as an etcd v2 node, in one place.
 *
 * Values: a msgpack string is the etcd value as it is; the empty map {}
 * is the marker of an explicit (empty) directory that mkdir / PUT dir=true
 * stores; any other value (numbers, bools, arrays, maps, byte strings) is
 * shown as its JSON text in distkv-cli's mapping (docs/cli.md, "Values"),
 * e.g. 8080, true, {"$bin":"00ff"}.  The gateway writes strings only.
 *
 * Node JSON: {key, value | dir:true, nodes, modifiedIndex, createdIndex}
 * with etcd's omitempty rules.  Pure functions; any thread.
 */
#ifndef DKV_ETCD_V2NODE_H
#define DKV_ETCD_V2NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/*
 * The etcd view of a msgpack value: *dir true for the directory marker
 * (then *text NULL), else a new NUL-terminated *text (*tlen bytes, may
 * hold NULs only if the string did).  -ENOMEM, -EPROTO.
 */
int v2node_value(const void *mp, size_t len, bool *dir, char **text,
    size_t *tlen);

/* A JSON string of s[0..len); invalid UTF-8 bytes become '?'. */
json_t *v2node_string(const char *s, size_t len);

/*
 * New node object.  key NULL leaves "key" out (etcd's root); value NULL
 * and !dir leaves "value" out (a deleted node); index 0 leaves the index
 * fields out.
 */
json_t *v2node_new(const char *key, bool dir, const char *value,
    size_t vlen, uint64_t modified, uint64_t created);

/* Dump o (taking it) as compact JSON plus "\n": a malloc'd string. */
char *v2node_dump(json_t *o, size_t *len);

/* True if a path element (a key component) is hidden: starts with '_'. */
bool v2node_hidden(const char *name);

#endif
