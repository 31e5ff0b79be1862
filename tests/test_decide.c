/*
 * The conflict rule of docs/cluster.md ("Conflicts"), tier by tier, through
 * agent_commit() (the one apply path; agent_decide() is its first step):
 *
 *   1. an update that descends from the stored one wins;
 *   2. between concurrent ones, the higher tock wins;
 *   3. on equal tocks, the higher head node name wins, then the higher tick.
 *
 * Before those, spec §3.6: the same head is a duplicate, a head the stored
 * chain covers is stale, and (docs/cluster.md, "Tombstones") an update for
 * a chain-less entry whose head every node has seen is a late copy.
 *
 * Every row of the table is applied to a fresh entry holding the stored
 * update; every row where the two are concurrent is also applied in the
 * other order, and both orders must leave the same winner: that is what
 * makes every node agree whatever the arrival order.
 *
 * Node names are binary-safe (a name is 1..128 bytes of UTF-8, and U+0000
 * is UTF-8): in the table "~" stands for a NUL byte inside a name.
 */
#include <string.h>

#include <criterion/criterion.h>
#include <ev.h>

#include "agent.h"
#include "chain.h"
#include "nodes.h"
#include "tree.h"

static struct agent ag;

static void
setup(void)
{
	struct agent_config cfg;

	memset(&cfg, 0, sizeof(cfg));
	cfg.node = "me";
	cfg.change_length = CHAIN_DEFAULT_LENGTH;
	cr_assert_eq(agent_init(&ag, ev_default_loop(0), &cfg), 0);
	node_raise_tick(ag.self, 0);
}

static void
teardown(void)
{
	agent_fini(&ag);
}

TestSuite(decide, .init = setup, .fini = teardown);

static struct node *
node(const char *spec, size_t len)
{
	char name[64];

	cr_assert(len > 0 && len < sizeof(name));
	for (size_t i = 0; i < len; i++)
		name[i] = spec[i] == '~' ? '\0' : spec[i];
	return nodes_get(&ag.nodes, name, len, true);
}

/* chain from "a:3 b:1" ("~" is a NUL byte of a name) */
static struct chain
mkchain(const char *spec)
{
	struct chain c;
	const char *p = spec;

	memset(&c, 0, sizeof(c));
	while (*p != '\0') {
		const char *colon = strchr(p, ':');
		char *end;

		cr_assert_not_null(colon, "bad chain spec %s", spec);
		c.l[c.n].node = node(p, (size_t)(colon - p));
		c.l[c.n].tick = strtoull(colon + 1, &end, 10);
		c.n++;
		p = *end == ' ' ? end + 1 : end;
	}
	return c;
}

/* A fresh entry ["k", n] with no chain. */
static struct entry *
fresh_entry(void)
{
	static unsigned n;
	uint8_t key[8];
	struct entry *e;

	key[0] = 0xcd;		/* uint16 */
	key[1] = (uint8_t)(n >> 8);
	key[2] = (uint8_t)n;
	n++;
	e = tree_child(&ag.tree, ag.tree.root, key, 3, true);
	cr_assert_not_null(e);
	cr_assert_eq(e->chain->n, 0);
	return e;
}

static int
apply(struct entry *e, const char *chain, uint8_t value, uint64_t tock)
{
	struct update u;

	memset(&u, 0, sizeof(u));
	u.entry = e;
	u.value = &value;
	u.value_len = 1;
	u.chain = mkchain(chain);
	u.tock = tock;
	return agent_commit(&ag, &u, ORIGIN_REMOTE);
}

static const char *
result_name(int r)
{
	switch (r) {
	case APPLY_ACCEPTED: return "accepted";
	case APPLY_DUPLICATE: return "duplicate";
	case APPLY_STALE: return "stale";
	case APPLY_CONFLICT_LOST: return "conflict lost";
	default: return "error";
	}
}

struct row {
	const char *why;
	const char *stored;	/* chain of the stored update (value 1) */
	uint64_t stored_tock;
	const char *incoming;	/* chain of the incoming update (value 2) */
	uint64_t incoming_tock;
	int want;		/* apply_result of the incoming update */
	bool concurrent;	/* also apply in the other order */
};

static const struct row rows[] = {
	/* spec §3.6 before the rule */
	{ "same head: duplicate, whatever the tock",
	    "a:2 b:1", 10, "a:2", 99, APPLY_DUPLICATE, false },
	{ "stored chain covers the incoming head: stale",
	    "a:3", 10, "a:2 c:1", 99, APPLY_STALE, false },
	{ "covered by a later link of the stored chain: stale",
	    "b:1 a:3", 10, "a:2", 99, APPLY_STALE, false },
	{ "a later link of the stored chain is the incoming head: stale",
	    "b:1 a:3", 10, "a:3", 99, APPLY_STALE, false },
	/* tier 1: descent beats tock */
	{ "descends (other head), lower tock: wins",
	    "a:1", 10, "b:1 a:1", 5, APPLY_ACCEPTED, false },
	{ "descends through a later link, lower tock: wins",
	    "a:1", 10, "c:4 b:2 a:1", 1, APPLY_ACCEPTED, false },
	{ "same head node, higher tick, lower tock: descends, wins",
	    "a:3 b:1", 10, "a:4 c:1", 2, APPLY_ACCEPTED, false },
	/*
	 * Same head node, different ticks, equal tocks: decided by tier 1
	 * (or as stale), never by the tick tie-break of tier 3, because a
	 * chain holds each node once.
	 */
	{ "same head node, higher tick, equal tock: descends, wins",
	    "a:3 b:1", 10, "a:4 c:1", 10, APPLY_ACCEPTED, false },
	{ "same head node, lower tick, equal tock: stale",
	    "a:3 b:1", 10, "a:2 c:1", 10, APPLY_STALE, false },
	/* tier 2: concurrent, tock decides (before names and ticks) */
	{ "concurrent, higher tock: wins",
	    "a:1", 10, "b:1", 11, APPLY_ACCEPTED, true },
	{ "concurrent, lower tock: loses",
	    "b:1", 11, "a:5", 10, APPLY_CONFLICT_LOST, true },
	{ "concurrent, higher tock beats a higher name",
	    "z:1", 10, "a:1", 11, APPLY_ACCEPTED, true },
	{ "concurrent, higher tock beats a higher tick",
	    "a:1", 11, "b:9", 10, APPLY_CONFLICT_LOST, true },
	{ "concurrent with shared history, higher tock: wins",
	    "b:2 a:1", 10, "c:1 a:1", 12, APPLY_ACCEPTED, true },
	/* tier 3: equal tocks, the head node name, then the tick */
	{ "equal tocks, higher name: wins",
	    "a:1", 10, "b:1", 10, APPLY_ACCEPTED, true },
	{ "equal tocks, lower name: loses",
	    "b:1", 10, "a:1", 10, APPLY_CONFLICT_LOST, true },
	{ "equal tocks, the name beats a higher tick",
	    "a:9", 10, "b:1", 10, APPLY_ACCEPTED, true },
	{ "equal tocks, the name beats a lower tick",
	    "b:1", 10, "a:9", 10, APPLY_CONFLICT_LOST, true },
	{ "equal tocks, a longer name with the same prefix is higher",
	    "n:5", 10, "nn:1", 10, APPLY_ACCEPTED, true },
	{ "equal tocks, names compare as bytes (UTF-8 above ASCII)",
	    "z:1", 10, "\xc3\xa9:1", 10, APPLY_ACCEPTED, true },
	{ "equal tocks, names that differ after a NUL byte",
	    "n~a:5", 10, "n~b:3", 10, APPLY_ACCEPTED, true },
	{ "equal tocks and ticks, names that differ after a NUL byte",
	    "n~b:3", 10, "n~a:3", 10, APPLY_CONFLICT_LOST, true },
	{ "equal tocks, a name that is a prefix up to a NUL byte",
	    "n~:3", 10, "n:3", 10, APPLY_CONFLICT_LOST, true },
};

Test(decide, table)
{
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct row *r = &rows[i];
		struct entry *e = fresh_entry();
		int got;
		uint8_t want_value;

		cr_assert_eq(apply(e, r->stored, 1, r->stored_tock),
		    APPLY_ACCEPTED, "row %zu (%s): stored update", i, r->why);
		got = apply(e, r->incoming, 2, r->incoming_tock);
		cr_assert_eq(got, r->want, "row %zu (%s): %s, want %s", i,
		    r->why, result_name(got), result_name(r->want));
		want_value = got == APPLY_ACCEPTED ? 2 : 1;
		cr_assert_eq(entry_value(e)[0], want_value,
		    "row %zu (%s): value", i, r->why);
		cr_assert_eq(e->tock, got == APPLY_ACCEPTED ?
		    r->incoming_tock : r->stored_tock, "row %zu: tock", i);
		if (!r->concurrent)
			continue;
		/* the other arrival order picks the same winner */
		e = fresh_entry();
		cr_assert_eq(apply(e, r->incoming, 2, r->incoming_tock),
		    APPLY_ACCEPTED, "row %zu (%s): reversed, first", i, r->why);
		got = apply(e, r->stored, 1, r->stored_tock);
		cr_assert_eq(got, want_value == 1 ? APPLY_ACCEPTED :
		    APPLY_CONFLICT_LOST, "row %zu (%s): reversed order: %s", i,
		    r->why, result_name(got));
		cr_assert_eq(entry_value(e)[0], want_value,
		    "row %zu (%s): reversed order keeps another winner", i,
		    r->why);
	}
}

/* Three concurrent writes in all six arrival orders: one winner. */
Test(decide, three_way_every_order_same_winner)
{
	static const char *chains[3] = { "a:7", "c:2", "b:5" };
	static const uint64_t tocks[3] = { 20, 20, 19 };
	static const int perm[6][3] = { { 0, 1, 2 }, { 0, 2, 1 }, { 1, 0, 2 },
	    { 1, 2, 0 }, { 2, 0, 1 }, { 2, 1, 0 } };

	for (int p = 0; p < 6; p++) {
		struct entry *e = fresh_entry();

		for (int k = 0; k < 3; k++) {
			int w = perm[p][k];

			cr_assert_geq(apply(e, chains[w], (uint8_t)(w + 1),
			    tocks[w]), 0);
		}
		/* tock 20 beats 19; between the two 20s, "c" beats "a" */
		cr_assert_eq(entry_value(e)[0], 2, "order %d: winner %d", p,
		    entry_value(e)[0]);
		cr_assert_eq(e->chain->l[0].tick, 2);
	}
}

/* A chain-less entry: an update whose head every node has seen is a late
 * copy (its tombstone was purged), not news; only once ready. */
Test(decide, late_copy_below_the_floor_is_stale)
{
	struct entry *e = fresh_entry();

	node("f", 1)->floor = 5;
	ag.ready = true;
	cr_assert_eq(apply(e, "f:5", 1, 10), APPLY_STALE);
	cr_assert_eq(e->chain->n, 0);
	cr_assert_null(entry_value(e));
	cr_assert_eq(apply(e, "f:6", 1, 10), APPLY_ACCEPTED);
	/* while downloading (not ready), the same copy is news */
	e = fresh_entry();
	ag.ready = false;
	cr_assert_eq(apply(e, "f:4", 1, 10), APPLY_ACCEPTED);
}

/* spec §8.21: chains are cut to --change-length links everywhere, also
 * one link over the length (test_tree cuts a chain far over it). */
Test(decide, chain_one_link_over_the_length_is_cut)
{
	struct entry *e = fresh_entry();

	cr_assert_eq(apply(e, "a:1 b:1 c:1 d:1 e:1 f:1", 1, 1), APPLY_ACCEPTED);
	cr_assert_eq(e->chain->n, CHAIN_DEFAULT_LENGTH);
	cr_assert_null(node_entry_get(node("f", 1), 1));
	cr_assert_eq(node_entry_get(node("e", 1), 1), e);
	/* exactly the length: kept whole */
	e = fresh_entry();
	cr_assert_eq(apply(e, "a:2 b:2 c:2 d:2 e:2", 1, 2), APPLY_ACCEPTED);
	cr_assert_eq(e->chain->n, CHAIN_DEFAULT_LENGTH);
	cr_assert_eq(node_entry_get(node("e", 1), 2), e);
}
