/*
 * xlate_schema: the JSON-schema subset of type records (spec §5.6),
 * checked on msgpack values directly, before a type's code runs.
 *
 * Keywords: type (a name or a list of names: "null", "boolean",
 * "integer", "number" (integers and floats), "string", "bytes" (ours: a
 * msgpack bin), "array", "object"), enum, const, minimum, maximum,
 * exclusiveMinimum, exclusiveMaximum (numbers), minLength, maxLength
 * (strings, in code points; bytes, in bytes), pattern (strings; a POSIX
 * extended regular expression, unanchored as in JSON Schema), items (one
 * schema for every element), properties, required, additionalProperties
 * (true, false or a schema).  Other keywords are refused when the record
 * is written (a typo must not pass as "no constraint").
 *
 * Values compare as msgpack values (type and value: 1 and 1.0 differ, as
 * do a string and a byte string).  properties and required name string
 * keys; a non-string map key is never a named property, so it is checked
 * by additionalProperties.
 */
#ifndef DISTKV_XLATE_SCHEMA_H
#define DISTKV_XLATE_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>

#include <msgpack.h>

/* Whether s is a schema of the subset: NULL, or why not. */
const char *xl_schema_invalid(const msgpack_object *s, char *err,
    size_t cap);

/* Check v (NULL: nil) against the schema s: true, or false with why. */
bool xl_schema_check(const msgpack_object *s, const msgpack_object *v,
    char *err, size_t cap);

#endif
