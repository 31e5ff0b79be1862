/* ranges: see ranges.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "ranges.h"

void
ranges_init(struct ranges *rs)
{
	memset(rs, 0, sizeof(*rs));
}

void
ranges_fini(struct ranges *rs)
{
	free(rs->r);
	memset(rs, 0, sizeof(*rs));
}

void
ranges_clear(struct ranges *rs)
{
	rs->n = 0;
}

static int
ranges_reserve(struct ranges *rs, size_t n)
{
	struct range *r;
	size_t cap;

	if (n <= rs->cap)
		return 0;
	cap = rs->cap ? rs->cap * 2 : 4;
	while (cap < n)
		cap *= 2;
	if ((r = realloc(rs->r, cap * sizeof(*r))) == NULL)
		return -ENOMEM;
	rs->r = r;
	rs->cap = cap;
	return 0;
}

/* Index of the first range with e >= t (ranges ending before t come first). */
static size_t
ranges_lower(const struct ranges *rs, uint64_t t)
{
	size_t lo = 0, hi = rs->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (rs->r[mid].e < t)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int
ranges_add(struct ranges *rs, uint64_t b, uint64_t e)
{
	size_t i, j;

	if (b >= e)
		return 0;
	/* first range that touches or follows [b, e) */
	i = ranges_lower(rs, b);
	j = i;
	while (j < rs->n && rs->r[j].b <= e) {
		if (rs->r[j].b < b)
			b = rs->r[j].b;
		if (rs->r[j].e > e)
			e = rs->r[j].e;
		j++;
	}
	if (j == i) {
		if (ranges_reserve(rs, rs->n + 1) != 0)
			return -ENOMEM;
		memmove(&rs->r[i + 1], &rs->r[i], (rs->n - i) * sizeof(*rs->r));
		rs->n++;
	} else if (j > i + 1) {
		memmove(&rs->r[i + 1], &rs->r[j], (rs->n - j) * sizeof(*rs->r));
		rs->n -= j - i - 1;
	}
	rs->r[i].b = b;
	rs->r[i].e = e;
	return 0;
}

int
ranges_remove(struct ranges *rs, uint64_t b, uint64_t e)
{
	size_t i;

	if (b >= e)
		return 0;
	for (i = ranges_lower(rs, b + 1); i < rs->n && rs->r[i].b < e;) {
		struct range *r = &rs->r[i];

		if (r->b >= b && r->e <= e) {
			memmove(r, r + 1, (rs->n - i - 1) * sizeof(*r));
			rs->n--;
		} else if (r->b < b && r->e > e) {
			if (ranges_reserve(rs, rs->n + 1) != 0)
				return -ENOMEM;
			r = &rs->r[i];
			memmove(r + 1, r, (rs->n - i) * sizeof(*r));
			rs->n++;
			r[0].e = b;
			r[1].b = e;
			return 0;
		} else if (r->b < b) {
			r->e = b;
			i++;
		} else {
			r->b = e;
			i++;
		}
	}
	return 0;
}

int
ranges_add_all(struct ranges *rs, const struct ranges *other)
{
	for (size_t i = 0; i < other->n; i++)
		if (ranges_add(rs, other->r[i].b, other->r[i].e) != 0)
			return -ENOMEM;
	return 0;
}

int
ranges_remove_all(struct ranges *rs, const struct ranges *other)
{
	for (size_t i = 0; i < other->n; i++)
		if (ranges_remove(rs, other->r[i].b, other->r[i].e) != 0)
			return -ENOMEM;
	return 0;
}

bool
ranges_contains(const struct ranges *rs, uint64_t t)
{
	size_t i = ranges_lower(rs, t + 1);

	return i < rs->n && rs->r[i].b <= t && t < rs->r[i].e;
}

bool
ranges_overlap(const struct ranges *a, const struct ranges *b)
{
	size_t i = 0, j = 0;

	/* both sorted and disjoint: walk them together */
	while (i < a->n && j < b->n) {
		if (a->r[i].e <= b->r[j].b)
			i++;
		else if (b->r[j].e <= a->r[i].b)
			j++;
		else
			return true;
	}
	return false;
}

int
ranges_missing(const struct ranges *known, uint64_t upto, struct ranges *out)
{
	uint64_t next = 1;

	ranges_clear(out);
	for (size_t i = 0; i < known->n && next <= upto; i++) {
		if (known->r[i].b > next &&
		    ranges_add(out, next, known->r[i].b < upto + 1 ?
		    known->r[i].b : upto + 1) != 0)
			return -ENOMEM;
		if (known->r[i].e > next)
			next = known->r[i].e;
	}
	if (next <= upto && ranges_add(out, next, upto + 1) != 0)
		return -ENOMEM;
	return 0;
}

uint64_t
ranges_prefix(const struct ranges *rs)
{
	/* ranges are sorted and merged: only the first can start at 1 */
	return rs->n > 0 && rs->r[0].b <= 1 ? rs->r[0].e - 1 : 0;
}

uint64_t
ranges_count(const struct ranges *rs)
{
	uint64_t n = 0;

	for (size_t i = 0; i < rs->n; i++)
		n += rs->r[i].e - rs->r[i].b;
	return n;
}

int
ranges_pack(msgpack_packer *pk, const struct ranges *rs)
{
	msgpack_pack_array(pk, rs->n);
	for (size_t i = 0; i < rs->n; i++) {
		if (rs->r[i].e == rs->r[i].b + 1) {
			msgpack_pack_uint64(pk, rs->r[i].b);
		} else {
			msgpack_pack_array(pk, 2);
			msgpack_pack_uint64(pk, rs->r[i].b);
			msgpack_pack_uint64(pk, rs->r[i].e);
		}
	}
	return 0;
}

int
ranges_unpack(const msgpack_object *o, struct ranges *rs)
{
	if (o->type != MSGPACK_OBJECT_ARRAY)
		return -EINVAL;
	for (uint32_t i = 0; i < o->via.array.size; i++) {
		const msgpack_object *it = &o->via.array.ptr[i];
		uint64_t b, e;

		if (it->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
			b = it->via.u64;
			if (b == 0 || b > PROTO_MAX_TICK)
				return -EINVAL;
			e = b + 1;
		} else if (it->type == MSGPACK_OBJECT_ARRAY &&
		    it->via.array.size == 2 &&
		    it->via.array.ptr[0].type ==
		    MSGPACK_OBJECT_POSITIVE_INTEGER &&
		    it->via.array.ptr[1].type ==
		    MSGPACK_OBJECT_POSITIVE_INTEGER) {
			b = it->via.array.ptr[0].via.u64;
			e = it->via.array.ptr[1].via.u64;
			/* [b, e): e may be one past the ceiling */
			if (b == 0 || e <= b || e > PROTO_MAX_TICK + 1)
				return -EINVAL;
		} else
			return -EINVAL;
		if (ranges_add(rs, b, e) != 0)
			return -ENOMEM;
	}
	return 0;
}
