/*
 * ranges: sets of ticks as sorted, disjoint half-open intervals [b, e)
 * (spec §1.7).  Used for a node's known, missing and remote-missing ticks.
 * Pure data structure; the wire encoding lives here too because every
 * decoder must normalise untrusted input the same way.
 */
#ifndef DISTKV_RANGES_H
#define DISTKV_RANGES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

struct range {
	uint64_t b, e;		/* b <= t < e */
};

struct ranges {
	struct range *r;
	size_t n, cap;
};

void ranges_init(struct ranges *rs);
void ranges_fini(struct ranges *rs);
void ranges_clear(struct ranges *rs);
/* Add [b, e); b < e.  Returns 0 or -ENOMEM. */
int ranges_add(struct ranges *rs, uint64_t b, uint64_t e);
/* Remove [b, e). Returns 0 or -ENOMEM (a split may need room). */
int ranges_remove(struct ranges *rs, uint64_t b, uint64_t e);
/* Add every range of other. */
int ranges_add_all(struct ranges *rs, const struct ranges *other);
/* Remove every range of other. */
int ranges_remove_all(struct ranges *rs, const struct ranges *other);
bool ranges_contains(const struct ranges *rs, uint64_t t);
/* Do a and b share a tick? */
bool ranges_overlap(const struct ranges *a, const struct ranges *b);
static inline bool ranges_empty(const struct ranges *rs) { return rs->n == 0; }
/* out := [1, upto] - known (out is cleared first). */
int ranges_missing(const struct ranges *known, uint64_t upto,
    struct ranges *out);
/* The largest t with [1, t] in the set (0 if 1 is not in it). */
uint64_t ranges_prefix(const struct ranges *rs);
/* Number of ticks in the set. */
uint64_t ranges_count(const struct ranges *rs);

/* Wire form: [t, [b, e], ...] with a plain integer where e == b + 1. */
int ranges_pack(msgpack_packer *pk, const struct ranges *rs);
/*
 * Decode a wire range list into rs (added to what rs holds), accepting
 * unsorted and overlapping input.  -EINVAL on anything else (tick 0,
 * empty or inverted pairs, non-integers).
 */
int ranges_unpack(const msgpack_object *o, struct ranges *rs);

#endif
