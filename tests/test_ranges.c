/* Unit tests of agent/ranges.c (spec §1.7). */
#include <string.h>

#include <criterion/criterion.h>

#include "ranges.h"

/* Encode rs and compare with the expected msgpack (built by hand). */
static void
assert_wire(const struct ranges *rs, const char *expect, size_t n)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	ranges_pack(&pk, rs);
	cr_assert_eq(sb.size, n);
	cr_assert_eq(memcmp(sb.data, expect, n), 0);
	msgpack_sbuffer_destroy(&sb);
}

Test(ranges, spec_encodings)
{
	struct ranges rs;

	ranges_init(&rs);
	assert_wire(&rs, "\x90", 1);				/* {} */
	ranges_add(&rs, 1, 2);
	assert_wire(&rs, "\x91\x01", 2);			/* [1] */
	ranges_add(&rs, 2, 4);
	assert_wire(&rs, "\x91\x92\x01\x04", 4);		/* [[1,4]] */
	ranges_clear(&rs);
	ranges_add(&rs, 9, 10);
	ranges_add(&rs, 3, 4);
	ranges_add(&rs, 1, 2);
	ranges_add(&rs, 4, 5);
	assert_wire(&rs, "\x93\x01\x92\x03\x05\x09", 6);	/* [1,[3,5],9] */
	ranges_fini(&rs);
}

Test(ranges, add_merges_and_remove_splits)
{
	struct ranges rs;

	ranges_init(&rs);
	ranges_add(&rs, 10, 20);
	ranges_add(&rs, 30, 40);
	ranges_add(&rs, 15, 35);	/* bridges both */
	cr_assert_eq(rs.n, 1);
	cr_assert(rs.r[0].b == 10 && rs.r[0].e == 40);
	ranges_remove(&rs, 20, 25);
	cr_assert_eq(rs.n, 2);
	cr_assert(ranges_contains(&rs, 19) && !ranges_contains(&rs, 20) &&
	    !ranges_contains(&rs, 24) && ranges_contains(&rs, 25));
	ranges_remove(&rs, 0, 12);
	cr_assert(rs.r[0].b == 12);
	ranges_remove(&rs, 12, 100);
	cr_assert(ranges_empty(&rs));
	ranges_fini(&rs);
}

Test(ranges, overlap_needs_a_shared_tick)
{
	struct ranges a, b;

	ranges_init(&a);
	ranges_init(&b);
	cr_assert(!ranges_overlap(&a, &b), "both empty");
	ranges_add(&a, 10, 20);
	ranges_add(&a, 30, 40);
	cr_assert(!ranges_overlap(&a, &b) && !ranges_overlap(&b, &a));
	ranges_add(&b, 20, 30);		/* the gap exactly: ends are open */
	cr_assert(!ranges_overlap(&a, &b) && !ranges_overlap(&b, &a));
	ranges_add(&b, 39, 40);		/* the last tick of a's second run */
	cr_assert(ranges_overlap(&a, &b) && ranges_overlap(&b, &a));
	ranges_clear(&b);
	ranges_add(&b, 1, 10);
	ranges_add(&b, 45, 50);
	cr_assert(!ranges_overlap(&a, &b));
	ranges_add(&b, 5, 11);		/* a's first tick */
	cr_assert(ranges_overlap(&a, &b));
	ranges_fini(&a);
	ranges_fini(&b);
}

Test(ranges, missing_is_complement_up_to_tick)
{
	struct ranges known, miss;

	ranges_init(&known);
	ranges_init(&miss);
	ranges_add(&known, 2, 4);
	ranges_add(&known, 6, 7);
	ranges_missing(&known, 8, &miss);
	/* [1,8] - {2,3,6} = {1,4,5,7,8} */
	cr_assert_eq(miss.n, 3);
	cr_assert(miss.r[0].b == 1 && miss.r[0].e == 2);
	cr_assert(miss.r[1].b == 4 && miss.r[1].e == 6);
	cr_assert(miss.r[2].b == 7 && miss.r[2].e == 9);
	cr_assert_eq(ranges_count(&miss), 5);
	ranges_missing(&known, 3, &miss);
	cr_assert(miss.n == 1 && miss.r[0].b == 1 && miss.r[0].e == 2);
	ranges_fini(&known);
	ranges_fini(&miss);
}

/* The run of ticks from 1 that a node has all seen (info `done`). */
Test(ranges, prefix_is_the_run_from_one)
{
	struct ranges rs;

	ranges_init(&rs);
	cr_assert_eq(ranges_prefix(&rs), 0, "empty set");
	ranges_add(&rs, 2, 5);
	cr_assert_eq(ranges_prefix(&rs), 0, "1 missing");
	ranges_add(&rs, 1, 2);
	cr_assert_eq(ranges_prefix(&rs), 4, "1..4 merged");
	ranges_add(&rs, 6, 9);
	cr_assert_eq(ranges_prefix(&rs), 4, "a gap at 5 ends the run");
	ranges_add(&rs, 5, 6);
	cr_assert_eq(ranges_prefix(&rs), 8);
	ranges_remove(&rs, 3, 4);
	cr_assert_eq(ranges_prefix(&rs), 2);
	ranges_fini(&rs);
}

Test(ranges, unpack_normalises_and_rejects_garbage)
{
	/* [[5,7], 1, [2,4], 3]: unsorted and overlapping */
	const char good[] = "\x94\x92\x05\x07\x01\x92\x02\x04\x03";
	const char zero[] = "\x91\x00";
	const char inverted[] = "\x91\x92\x05\x03";
	const char notarray[] = "\x05";
	msgpack_zone z;
	msgpack_object o;
	struct ranges rs;

	msgpack_zone_init(&z, 256);
	ranges_init(&rs);
	cr_assert_eq(msgpack_unpack(good, sizeof(good) - 1, NULL, &z, &o),
	    MSGPACK_UNPACK_SUCCESS);
	cr_assert_eq(ranges_unpack(&o, &rs), 0);
	/* {5,6} + {1} + {2,3} + {3} */
	cr_assert(rs.n == 2 && rs.r[0].b == 1 && rs.r[0].e == 4 &&
	    rs.r[1].b == 5 && rs.r[1].e == 7);
	msgpack_unpack(zero, 2, NULL, &z, &o);
	cr_assert_neq(ranges_unpack(&o, &rs), 0);
	msgpack_unpack(inverted, 4, NULL, &z, &o);
	cr_assert_neq(ranges_unpack(&o, &rs), 0);
	msgpack_unpack(notarray, 1, NULL, &z, &o);
	cr_assert_neq(ranges_unpack(&o, &rs), 0);
	ranges_fini(&rs);
	msgpack_zone_destroy(&z);
}
