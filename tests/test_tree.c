/* Unit tests of agent/tree.c, chain.c, nodes.c and the apply rules of
 * agent_commit (spec §1.4, §3.6). */
#include <string.h>

#include <criterion/criterion.h>
#include <ev.h>
#include <xxhash.h>

#include "agent.h"
#include "chain.h"
#include "nodes.h"
#include "tree.h"
#include "handlers_internal.h"

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

/* Follow a path given as msgpack bytes. */
static struct entry *
follow(const char *mp, size_t n, bool create)
{
	msgpack_zone z;
	msgpack_object o;
	struct entry *e = NULL;
	int rc;

	msgpack_zone_init(&z, 256);
	cr_assert_eq(msgpack_unpack(mp, n, NULL, &z, &o),
	    MSGPACK_UNPACK_SUCCESS);
	rc = tree_follow(&ag.tree, ag.tree.root, &o, create, true, NULL, &e);
	msgpack_zone_destroy(&z);
	return rc == 0 ? e : NULL;
}

static struct node *
node(const char *name)
{
	return nodes_get(&ag.nodes, name, strlen(name), true);
}

/* chain from "a:3 b:1" */
static struct chain
mkchain(const char *spec)
{
	struct chain c;
	char buf[128], *save, *tok;

	memset(&c, 0, sizeof(c));
	snprintf(buf, sizeof(buf), "%s", spec);
	for (tok = strtok_r(buf, " ", &save); tok != NULL;
	    tok = strtok_r(NULL, " ", &save)) {
		char *colon = strchr(tok, ':');

		*colon = '\0';
		c.l[c.n].node = node(tok);
		c.l[c.n].tick = strtoull(colon + 1, NULL, 10);
		c.n++;
	}
	return c;
}

static int
apply(struct entry *e, const char *chain, int value, uint64_t tock)
{
	uint8_t v = (uint8_t)value;
	struct update u;

	memset(&u, 0, sizeof(u));
	u.entry = e;
	u.value = &v;
	u.value_len = 1;
	u.chain = mkchain(chain);
	u.tock = tock;
	return agent_commit(&ag, &u, ORIGIN_REMOTE);
}

TestSuite(tree, .init = setup, .fini = teardown);

Test(tree, paths_canonical_and_reads_do_not_create)
{
	/* ["a", ""] and ["a", b""] are the same entry */
	struct entry *x = follow("\x92\xa1" "a\xa0", 4, true);
	struct entry *y = follow("\x92\xa1" "a\xc4\x00", 5, false);

	cr_assert_not_null(x);
	cr_assert_eq(x, y);
	/* [5] as uint64 and as fixint */
	x = follow("\x91\xcf\0\0\0\0\0\0\0\x05", 10, true);
	cr_assert_eq(x, follow("\x91\x05", 2, false));
	/* a read of a missing path creates nothing */
	size_t before = ag.tree.nentries;
	cr_assert_null(follow("\x92\xa1z\xa1y", 5, false));
	cr_assert_eq(ag.tree.nentries, before);
}

Test(tree, many_children_keep_creation_order_and_are_found)
{
	char key[16];
	struct entry *e;

	for (int i = 0; i < 1000; i++) {
		int n = snprintf(key + 1, sizeof(key) - 1, "k%d", 999 - i);

		key[0] = (char)(0xa0 | n);
		cr_assert_not_null(tree_child(&ag.tree, ag.tree.root,
		    (uint8_t *)key, (size_t)n + 1, true));
	}
	cr_assert_eq(ag.tree.root->nchild, 1000);
	for (int i = 0; i < 1000; i++) {
		int n = snprintf(key + 1, sizeof(key) - 1, "k%d", i);

		key[0] = (char)(0xa0 | n);
		e = tree_child(&ag.tree, ag.tree.root, (uint8_t *)key,
		    (size_t)n + 1, false);
		cr_assert_not_null(e);
		cr_assert_eq(entry_children(ag.tree.root)[999 - i], e);
	}
}

/* Key bytes of the root's child "t<i>" (tree keys: the canonical array
 * of the path's elements), its length. */
static size_t
t_key(int i, uint8_t *key)
{
	int n = snprintf((char *)key + 2, 14, "t%d", i);

	key[0] = 0x91;
	key[1] = (uint8_t)(0xa0 | n);
	return (size_t)n + 2;
}

/*
 * An index slot keeps 16 bits of its key's hash (tree.c, index_slot):
 * keys whose hashes share those bits all match a probe's first test, and
 * only the key tells them apart.  A tree of nothing but such keys (300
 * in the first index of 1,024 slots: runs of them): every key is found as
 * itself, and keys of the same 16 bits that were never made are not
 * found.  (The index's doublings hash every key again: the test above.)
 */
Test(tree, keys_whose_hash_tags_agree_are_told_apart_by_their_bytes)
{
	enum { N = 300, ABSENT = 40 };
	static int made_i[N], absent_i[ABSENT];
	static struct entry *made[N];
	uint8_t key[16];
	uint64_t tag = 0;
	int n = 0, a = 0;

	/* a tag of some key, then more keys of that tag (1 in 65,536) */
	for (int i = 0; n < N || a < ABSENT; i++) {
		size_t len = t_key(i, key);
		uint64_t top = XXH3_64bits(key, len) >> 48;

		cr_assert_lt(i, 1 << 26, "too few keys of one tag");
		if (i == 0)
			tag = top;
		if (top != tag)
			continue;
		if (n < N)
			made_i[n++] = i;
		else
			absent_i[a++] = i;
	}
	for (int j = 0; j < N; j++) {
		size_t len = t_key(made_i[j], key);

		made[j] = tree_child(&ag.tree, ag.tree.root, key + 1, len - 1,
		    true);
		cr_assert_not_null(made[j]);
	}
	tree_index_flush(&ag.tree);
	for (int j = 0; j < N; j++) {
		size_t len = t_key(made_i[j], key);

		cr_assert_eq(tree_child(&ag.tree, ag.tree.root, key + 1,
		    len - 1, false), made[j], "t%d", made_i[j]);
		cr_assert_eq(made[j]->key_len, len);
		cr_assert(memcmp(tree_entry_key(&ag.tree, made[j]), key,
		    len) == 0);
	}
	for (int j = 0; j < ABSENT; j++) {
		size_t len = t_key(absent_i[j], key);

		cr_assert_null(tree_child(&ag.tree, ag.tree.root, key + 1,
		    len - 1, false), "t%d", absent_i[j]);
	}
}

/*
 * A new entry goes into the index TREE_PUT_LEAD creations after it is
 * made (tree.c): before that, and after, and across the index's
 * doublings and a flush, a lookup finds it and a create of the same name
 * makes no second entry.
 */
Test(tree, new_entries_are_found_before_and_after_they_enter_the_index)
{
	enum { N = 3000 };
	static struct entry *made[N];
	char key[16];
	size_t cap0 = ag.tree.index_cap, before = ag.tree.nentries;

	for (int i = 0; i < N; i++) {
		int n = snprintf(key + 1, sizeof(key) - 1, "n%d", i);

		key[0] = (char)(0xa0 | n);
		made[i] = tree_child(&ag.tree, ag.tree.root, (uint8_t *)key,
		    (size_t)n + 1, true);
		cr_assert_not_null(made[i]);
		/* the newest ones wait in the ring, older ones are in the
		 * index: each is found, and made only once */
		for (int j = i < TREE_PUT_LEAD + 2 ? 0 : i - TREE_PUT_LEAD - 2;
		    j <= i; j++) {
			n = snprintf(key + 1, sizeof(key) - 1, "n%d", j);
			key[0] = (char)(0xa0 | n);
			cr_assert_eq(tree_child(&ag.tree, ag.tree.root,
			    (uint8_t *)key, (size_t)n + 1, false), made[j],
			    "n%d after n%d was made", j, i);
			cr_assert_eq(tree_child(&ag.tree, ag.tree.root,
			    (uint8_t *)key, (size_t)n + 1, true), made[j]);
		}
	}
	cr_assert_eq(ag.tree.nentries, before + N);
	cr_assert_gt(ag.tree.index_cap, cap0, "the index never doubled");
	tree_index_flush(&ag.tree);
	cr_assert_eq(ag.tree.put_n, 0);
	for (int i = 0; i < N; i++) {
		int n = snprintf(key + 1, sizeof(key) - 1, "n%d", i);

		key[0] = (char)(0xa0 | n);
		cr_assert_eq(tree_child(&ag.tree, ag.tree.root,
		    (uint8_t *)key, (size_t)n + 1, false), made[i]);
	}
	/* a deeper path through entries still in the ring */
	cr_assert_not_null(follow("\x93\xa2n7\xa1x\xa1y", 8, true));
	cr_assert_eq(follow("\x93\xa2n7\xa1x\xa1y", 8, false),
	    follow("\x93\xa2n7\xa1x\xa1y", 8, true));
	cr_assert_eq(ag.tree.nentries, before + N + 2);
}

Test(tree, walk_preorder_with_depth_limit)
{
	struct entry *a = follow("\x91\xa1" "a", 3, true);
	struct entry *ab = follow("\x92\xa1" "a\xa1" "b", 5, true);
	struct entry *abc = follow("\x93\xa1" "a\xa1" "b\xa1" "c", 7, true);
	struct entry *d = follow("\x91\xa1" "d", 3, true);
	struct tree_walk w;

	tree_walk_init(&w, ag.tree.root, -1);
	cr_assert_eq(tree_walk_next(&w), ag.tree.root);
	cr_assert_eq(tree_walk_next(&w), a);
	cr_assert_eq(tree_walk_next(&w), ab);
	cr_assert_eq(tree_walk_next(&w), abc);
	cr_assert_eq(tree_walk_next(&w), d);
	cr_assert_null(tree_walk_next(&w));
	tree_walk_init(&w, ag.tree.root, 1);
	cr_assert_eq(tree_walk_next(&w), ag.tree.root);
	cr_assert_eq(tree_walk_next(&w), a);
	cr_assert_eq(tree_walk_next(&w), d);
	cr_assert_null(tree_walk_next(&w));
	cr_assert_eq(tree_common_depth(ag.tree.root, abc, d), 0);
	cr_assert_eq(tree_common_depth(ag.tree.root, abc, ab), 2);
	cr_assert_eq(tree_common_depth(a, abc, ab), 1);
}

Test(tree, chain_relations)
{
	struct chain c = mkchain("a:5 b:2"), e;

	e = mkchain("a:5 c:1");
	cr_assert(chain_same(&c, &e));
	e = mkchain("b:2");
	cr_assert(chain_covers(&c, &e));	/* old news */
	e = mkchain("b:1");
	cr_assert(chain_covers(&c, &e));
	e = mkchain("b:3 a:5");
	cr_assert(chain_descends(&e, &c));
	cr_assert_not(chain_covers(&c, &e));
	e = mkchain("c:1 a:4");
	cr_assert_not(chain_descends(&e, &c));	/* concurrent */
	cr_assert_not(chain_covers(&c, &e));
}

Test(tree, apply_rules_duplicate_stale_descend_conflict)
{
	struct entry *e = follow("\x91\xa1k", 3, true);

	cr_assert_eq(apply(e, "a:1", 1, 10), APPLY_ACCEPTED);
	cr_assert_eq(apply(e, "a:1", 1, 10), APPLY_DUPLICATE);
	cr_assert_eq(apply(e, "b:1 a:1", 2, 11), APPLY_ACCEPTED);
	cr_assert_eq(apply(e, "a:1", 1, 10), APPLY_STALE);
	/* concurrent with b:1, lower tock: loses */
	cr_assert_eq(apply(e, "c:1 a:1", 3, 5), APPLY_CONFLICT_LOST);
	cr_assert_eq(entry_value(e)[0], 2);
	/* concurrent, equal tock: the higher head node wins, wherever it
	 * arrives first (the reference: the incoming one) */
	cr_assert_eq(apply(e, "a:2", 5, 11), APPLY_CONFLICT_LOST);
	cr_assert_eq(apply(e, "d:1 a:1", 4, 11), APPLY_ACCEPTED);
	cr_assert_eq(entry_value(e)[0], 4);
	cr_assert_eq(e->tock, 11);
	cr_assert_eq(apply(e, "c:2 a:1", 6, 11), APPLY_CONFLICT_LOST);
	/* every link seen, even of the rejected update */
	cr_assert(ranges_contains(&node("c")->known, 1));
	/* b:1 was superseded: no entry holds it any more */
	cr_assert_null(node_entry_get(node("b"), 1));
	cr_assert_eq(node_entry_get(node("d"), 1), e);
	cr_assert_eq(node_entry_get(node("a"), 1), e);
}

Test(tree, local_change_builds_chain_and_supersedes_own_tick)
{
	struct entry *e = follow("\x91\xa1k", 3, true);
	uint8_t v = 7;
	uint64_t tock0;

	cr_assert_eq(apply(e, "x:4", 1, 3), APPLY_ACCEPTED);
	tock0 = ag.tock;
	cr_assert_eq(agent_change_local(&ag, e, &v, 1), 0);
	cr_assert_eq(e->chain->n, 2);
	cr_assert_eq(e->chain->l[0].node, ag.self);
	cr_assert_eq(e->chain->l[0].tick, 1);
	cr_assert_eq(e->chain->l[1].node, node("x"));
	cr_assert_eq(agent_change_local(&ag, e, &v, 1), 0);
	cr_assert_eq(e->chain->n, 2);		/* own old link dropped */
	cr_assert_eq(e->chain->l[0].tick, 2);
	cr_assert_null(node_entry_get(ag.self, 1));	/* superseded */
	cr_assert(ranges_contains(&ag.self->known, 1));
	/* spec §3.7: three tocks per local change */
	cr_assert_eq(ag.tock, tock0 + 6);
}

Test(tree, chain_capped_at_change_length)
{
	struct entry *e = follow("\x91\xa1k", 3, true);

	cr_assert_eq(apply(e, "a:1 b:1 c:1 d:1 e:1 f:1 g:1", 1, 1),
	    APPLY_ACCEPTED);
	cr_assert_eq(e->chain->n, CHAIN_DEFAULT_LENGTH);
	cr_assert_null(node_entry_get(node("g"), 1));
	cr_assert(ranges_contains(&node("g")->known, 1));
}

Test(tree, tickmap_survives_churn)
{
	struct node *n = node("churn");
	struct entry *e = follow("\x91\xa1k", 3, true);
	struct entry *f = follow("\x91\xa1j", 3, true);

	for (uint64_t t = 1; t <= 5000; t++)
		cr_assert_eq(node_entry_set(n, t, (t & 1) ? e : f), 0);
	for (uint64_t t = 1; t <= 5000; t += 3)
		node_entry_del(n, t, (t & 1) ? e : f);
	node_entry_del(n, 2, e);	/* maps to f: kept */
	for (uint64_t t = 1; t <= 5000; t++) {
		struct entry *want = (t - 1) % 3 == 0 ? NULL :
		    ((t & 1) ? e : f);

		cr_assert_eq(node_entry_get(n, t), want, "tick %llu",
		    (unsigned long long)t);
	}
}

/*
 * What an agent's map of its own node sees: consecutive new ticks, each
 * superseding a random key's older one, so the live ticks thin out with
 * age and wrap around the table many times over.  Every live tick must
 * be found, every superseded one gone, across the map's doublings and the
 * backward-shift deletes (runs of consecutive ticks share a line: nodes.c).
 */
Test(tree, tickmap_matches_a_model_under_random_churn)
{
	enum { KEYS = 3000, UPDATES = 60000 };
	struct node *n = node("model");
	struct entry *ent[2] = { follow("\x91\xa1k", 3, true),
	    follow("\x91\xa1j", 3, true) };
	static uint64_t last[KEYS];
	static uint8_t live[KEYS + UPDATES + 1];
	uint64_t t = 0, x = 0x9e3779b97f4a7c15ULL;

	for (int k = 0; k < KEYS; k++) {
		last[k] = ++t;
		live[t] = 1;
		cr_assert_eq(node_entry_set(n, t, ent[k & 1]), 0);
	}
	for (int u = 0; u < UPDATES; u++) {
		int k;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		k = (int)(x % KEYS);
		node_entry_del(n, last[k], ent[k & 1]);
		live[last[k]] = 0;
		last[k] = ++t;
		live[t] = 1;
		cr_assert_eq(node_entry_set(n, t, ent[k & 1]), 0);
	}
	cr_assert_eq(n->entries.n, (size_t)KEYS);
	for (int k = 0; k < KEYS; k++)
		cr_assert_eq(node_entry_get(n, last[k]), ent[k & 1], "key %d", k);
	for (uint64_t i = 1; i <= t; i++)
		if (!live[i])
			cr_assert_null(node_entry_get(n, i), "tick %llu",
			    (unsigned long long)i);
}

/* "nK:K ... n1:1" (K links, newest first), after a head link if head. */
static void
chain_spec(char *buf, size_t cap, const char *head, int k)
{
	size_t off = 0;

	buf[0] = '\0';
	if (head != NULL)
		off += (size_t)snprintf(buf, cap, "%s ", head);
	for (int i = k; i >= 1; i--)
		off += (size_t)snprintf(buf + off, cap - off, "n%d:%d ", i, i);
}

/*
 * An entry's chain lives out of line, allocated to its length with the
 * value after it (tree.h): it grows from 1 link to CHAIN_CAP and shrinks
 * back to 1, each time holding exactly the links of the update, the value
 * intact next to it, and the tick map pointing at the entry for exactly
 * the links it holds.
 */
Test(tree, chain_grows_to_cap_and_shrinks_with_its_value)
{
	struct entry *e = follow("\x91\xa1" "c", 3, true);
	char spec[512], name[8];

	cr_assert_not_null(e);
	cr_assert_eq(e->chain, &chain_none);
	ag.cfg.change_length = CHAIN_CAP;
	for (int k = 1; k <= CHAIN_CAP; k++) {
		chain_spec(spec, sizeof(spec), NULL, k);
		cr_assert_eq(apply(e, spec, k, (uint64_t)k), APPLY_ACCEPTED);
		cr_assert_eq(e->chain->n, (unsigned)k);
		for (int i = 0; i < k; i++) {
			snprintf(name, sizeof(name), "n%d", k - i);
			cr_assert_eq(e->chain->l[i].node, node(name));
			cr_assert_eq(e->chain->l[i].tick, (uint64_t)(k - i));
		}
		cr_assert_eq(entry_value_len(e), 1);
		cr_assert_eq(entry_value(e)[0], k);
	}
	/* shorter chains: a new head h, then the newest k - 1 links of the
	 * stored chain (the first shrink descends from its head n16:16,
	 * each later one from the stored h) */
	for (int k = CHAIN_CAP - 1; k >= 1; k--) {
		size_t off = (size_t)snprintf(spec, sizeof(spec), "h:%d ",
		    100 + CHAIN_CAP - k);

		for (int i = CHAIN_CAP; i > CHAIN_CAP - (k - 1); i--)
			off += (size_t)snprintf(spec + off, sizeof(spec) - off,
			    "n%d:%d ", i, i);
		cr_assert_eq(apply(e, spec, 200 + k, 100 + (uint64_t)k),
		    APPLY_ACCEPTED, "shrink to %d: %s", k, spec);
		cr_assert_eq(e->chain->n, (unsigned)k);
		cr_assert_eq(e->chain->l[0].node, node("h"));
		cr_assert_eq(entry_value_len(e), 1);
		cr_assert_eq(entry_value(e)[0], (uint8_t)(200 + k));
		for (unsigned i = 0; i < e->chain->n; i++)
			cr_assert_eq(node_entry_get(e->chain->l[i].node,
			    e->chain->l[i].tick), e);
	}
	/* the last update had h only: no nX link maps to e any more */
	cr_assert_eq(e->chain->n, 1);
	for (int i = 1; i <= CHAIN_CAP; i++) {
		snprintf(name, sizeof(name), "n%d", i);
		cr_assert_null(node_entry_get(node(name), (uint64_t)i),
		    "%s:%d still maps to the entry", name, i);
	}
	cr_assert_eq(node_entry_get(node("h"), 100 + CHAIN_CAP - 1), e);
}

/*
 * One child is kept in the entry, more in an array grown by powers of
 * two (tree.h): creation order and lookups hold across each step.
 */
Test(tree, one_child_in_the_entry_then_an_array)
{
	struct entry *p = follow("\x91\xa1p", 3, true), *made[40];
	struct tree_walk w;

	cr_assert_not_null(p);
	for (int i = 0; i < 40; i++) {
		char name[8];
		int n = snprintf(name + 1, sizeof(name) - 1, "c%d", 39 - i);

		name[0] = (char)(0xa0 | n);
		made[i] = tree_child(&ag.tree, p, (uint8_t *)name,
		    (size_t)n + 1, true);
		cr_assert_not_null(made[i]);
		cr_assert_eq(p->nchild, (uint32_t)i + 1);
		/* one child lives in the entry, more in an array */
		if (i == 0)
			cr_assert_eq(entry_children(p), &p->kids.only);
		else
			cr_assert_neq(entry_children(p), &p->kids.only);
		for (int j = 0; j <= i; j++) {
			cr_assert_eq(entry_children(p)[j], made[j]);
			cr_assert_eq(tree_child(&ag.tree, p,
			    entry_name(made[j]), entry_name_len(made[j]),
			    false), made[j]);
		}
	}
	tree_walk_init(&w, p, -1);
	cr_assert_eq(tree_walk_next(&w), p);
	for (int i = 0; i < 40; i++)
		cr_assert_eq(tree_walk_next(&w), made[i]);
	cr_assert_null(tree_walk_next(&w));
}

/* A path of n integer elements, 100 * tag + i, in the caller's storage. */
static msgpack_object
int_path(msgpack_object *el, uint32_t n, int tag)
{
	msgpack_object o = { .type = MSGPACK_OBJECT_ARRAY };

	for (uint32_t i = 0; i < n; i++) {
		el[i].type = MSGPACK_OBJECT_POSITIVE_INTEGER;
		el[i].via.u64 = (uint64_t)(100 * tag) + i;
	}
	o.via.array.size = n;
	o.via.array.ptr = el;
	return o;
}

/*
 * tree_key_create writes each level's key header in place over the whole
 * key's: paths of 20 elements (a 3-byte header from 16 elements on) below
 * prefixes of every length that already exist.
 */
Test(tree, a_kept_key_creates_every_missing_level_at_any_depth)
{
	static const uint32_t have[] = { 0, 1, 5, 14, 15, 16, 17, 19 };
	msgpack_object el[20], path, pre;

	for (size_t t = 0; t < sizeof(have) / sizeof(have[0]); t++) {
		struct tree_key k;
		struct entry *e, *up, *got;

		path = int_path(el, 20, (int)t + 1);
		pre = path;
		pre.via.array.size = have[t];
		cr_assert_eq(tree_follow(&ag.tree, ag.tree.root, &pre, true,
		    false, NULL, &up), 0);
		tree_key_init(&k);
		cr_assert_eq(tree_key_build(&ag.tree, ag.tree.root, &path,
		    false, NULL, &k), 0);
		cr_assert_null(tree_key_find(&ag.tree, &k));
		e = tree_key_create(&ag.tree, &k);
		tree_key_fini(&k);
		cr_assert_not_null(e);
		cr_assert_eq(e->depth, 20u);
		/* every level is the one a lookup of its prefix finds */
		for (uint32_t d = 20; d > 0; d--) {
			pre.via.array.size = d;
			cr_assert_eq(tree_follow(&ag.tree, ag.tree.root, &pre,
			    false, false, NULL, &got), 0);
			cr_assert_eq(got, e, "depth %u below %u existing", d,
			    have[t]);
			cr_assert_eq(e->depth, d);
			e = e->parent;
		}
		cr_assert_eq(e, ag.tree.root);
		(void)up;
	}
}

/* An entry created between the lookup and the create is found, not made
 * twice. */
Test(tree, a_kept_key_finds_what_was_created_after_its_lookup)
{
	msgpack_object el[4], path = int_path(el, 4, 7);
	struct tree_key k;
	struct entry *other, *e;
	size_t n;

	tree_key_init(&k);
	cr_assert_eq(tree_key_build(&ag.tree, ag.tree.root, &path, false, NULL,
	    &k), 0);
	cr_assert_null(tree_key_find(&ag.tree, &k));
	cr_assert_eq(tree_follow(&ag.tree, ag.tree.root, &path, true, false,
	    NULL, &other), 0);
	n = ag.tree.nentries;
	e = tree_key_create(&ag.tree, &k);
	tree_key_fini(&k);
	cr_assert_eq(e, other);
	cr_assert_eq(ag.tree.nentries, n);
	cr_assert_eq(other->parent->nchild, 1u);
}

/*
 * tree_key_create finds each level's element in the key it built by the
 * element's first byte (short strings, small integers) or by scanning
 * it: every kind and width of element, each level then found by its
 * prefix, and the leaf's key the canonical path.
 */
Test(tree, a_created_path_of_every_element_kind_is_found_level_by_level)
{
	static char s40[40], s300[300];
	static const char bin[2] = { 1, 2 };
	msgpack_object el[9], path, pre;
	msgpack_sbuffer want;
	msgpack_packer pk;
	struct entry *e, *got;

	memset(s40, 's', sizeof(s40));
	memset(s300, 't', sizeof(s300));
	memset(el, 0, sizeof(el));
	el[0].type = MSGPACK_OBJECT_STR;
	el[0].via.str.ptr = "a";
	el[0].via.str.size = 1;
	el[1].type = MSGPACK_OBJECT_STR;	/* str8 */
	el[1].via.str.ptr = s40;
	el[1].via.str.size = sizeof(s40);
	el[2].type = MSGPACK_OBJECT_STR;	/* str16 */
	el[2].via.str.ptr = s300;
	el[2].via.str.size = sizeof(s300);
	el[3].type = MSGPACK_OBJECT_BIN;
	el[3].via.bin.ptr = bin;
	el[3].via.bin.size = sizeof(bin);
	el[4].type = MSGPACK_OBJECT_POSITIVE_INTEGER;	/* uint16 */
	el[4].via.u64 = 1000;
	el[5].type = MSGPACK_OBJECT_NEGATIVE_INTEGER;	/* negative fixint */
	el[5].via.i64 = -5;
	el[6].type = MSGPACK_OBJECT_NEGATIVE_INTEGER;	/* int8 */
	el[6].via.i64 = -100;
	el[7].type = MSGPACK_OBJECT_POSITIVE_INTEGER;	/* fixint */
	el[7].via.u64 = 7;
	el[8].type = MSGPACK_OBJECT_STR;	/* the empty string */
	el[8].via.str.ptr = "";
	el[8].via.str.size = 0;
	path.type = MSGPACK_OBJECT_ARRAY;
	path.via.array.ptr = el;
	path.via.array.size = 9;
	cr_assert_eq(tree_follow(&ag.tree, ag.tree.root, &path, true, false,
	    NULL, &e), 0);
	cr_assert_not_null(e);
	msgpack_sbuffer_init(&want);
	msgpack_packer_init(&pk, &want, msgpack_sbuffer_write);
	cr_assert_eq(proto_pack_canonical(&pk, &path), 0);
	cr_assert_eq(e->key_len, want.size);
	cr_assert_eq(memcmp(tree_entry_key(&ag.tree, e), want.data,
	    want.size), 0, "the leaf's key is not the canonical path");
	msgpack_sbuffer_destroy(&want);
	pre = path;
	for (uint32_t d = 9; d > 0; d--) {
		pre.via.array.size = d;
		cr_assert_eq(tree_follow(&ag.tree, ag.tree.root, &pre, false,
		    false, NULL, &got), 0);
		cr_assert_eq(got, e, "depth %u", d);
		cr_assert_eq(e->depth, d);
		cr_assert_eq(e->parent->nchild, 1u, "depth %u made twice", d);
		e = e->parent;
	}
	cr_assert_eq(e, ag.tree.root);
}

/*
 * canonical() packs strings, byte strings and integers by hand when they
 * fit its buffer, the rest through msgpack-c: both give msgpack-c's
 * bytes, at every width and on both sides of the buffer's end.
 */
Test(tree, canonical_values_are_msgpack_c_s_bytes)
{
	static char body[70000];
	static const int64_t ints[] = { 0, 1, 127, 128, 255, 256, 65535,
	    65536, 4294967295LL, 4294967296LL, INT64_MAX, -1, -32, -33, -128,
	    -129, -32768, -32769, INT32_MIN, (int64_t)INT32_MIN - 1,
	    INT64_MIN };
	static const size_t lens[] = { 0, 1, 31, 32, 255, 256, 500, 505, 506,
	    507, 511, 512, 65535, 65536 };
	msgpack_object o[2 * sizeof(lens) / sizeof(lens[0]) +
	    sizeof(ints) / sizeof(ints[0]) + 1];
	size_t n = 0;

	memset(body, 'x', sizeof(body));
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
		for (int bin = 0; bin < 2; bin++) {
			memset(&o[n], 0, sizeof(o[n]));
			o[n].type = bin ? MSGPACK_OBJECT_BIN :
			    MSGPACK_OBJECT_STR;
			o[n].via.str.ptr = body;
			o[n++].via.str.size = (uint32_t)lens[i];
		}
	for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
		memset(&o[n], 0, sizeof(o[n]));
		o[n].type = ints[i] < 0 ? MSGPACK_OBJECT_NEGATIVE_INTEGER :
		    MSGPACK_OBJECT_POSITIVE_INTEGER;
		if (ints[i] < 0)
			o[n++].via.i64 = ints[i];
		else
			o[n++].via.u64 = (uint64_t)ints[i];
	}
	memset(&o[n], 0, sizeof(o[n]));
	o[n].type = MSGPACK_OBJECT_POSITIVE_INTEGER;
	o[n++].via.u64 = UINT64_MAX;
	for (size_t i = 0; i < n; i++) {
		/* alone, and after 500 bytes (little room left) */
		for (int pre = 0; pre < 2; pre++) {
			struct valbuf v;
			msgpack_sbuffer want;
			msgpack_packer pk;

			valbuf_init(&v);
			msgpack_sbuffer_init(&want);
			msgpack_packer_init(&pk, &want, msgpack_sbuffer_write);
			if (pre) {
				/* 497 bytes first: 15 left in v's 512 */
				msgpack_object s = { 0 };

				s.type = MSGPACK_OBJECT_STR;
				s.via.str.ptr = body;
				s.via.str.size = 495;
				cr_assert(canonical(&v, &s));
				msgpack_pack_object(&pk, s);
			}
			cr_assert(canonical(&v, &o[i]));
			msgpack_pack_object(&pk, o[i]);
			cr_assert_eq(v.size, want.size, "object %zu, pre %d",
			    i, pre);
			cr_assert_eq(memcmp(v.data, want.data, want.size), 0,
			    "object %zu, pre %d", i, pre);
			valbuf_fini(&v);
			msgpack_sbuffer_destroy(&want);
		}
	}
}

/*
 * entry_under_meta reads the first element from an entry's own key when
 * it is kept whole, else walks up: both answers, at every depth, for
 * short keys and for keys too long to keep whole (TREE_INLINE_KEY), and
 * past a 3-byte array header.
 */
Test(tree, entry_under_meta_from_the_key_or_the_parents)
{
	static char longel[200];
	msgpack_object el[20], path;

	memset(longel, 'l', sizeof(longel));
	for (int meta = 0; meta < 2; meta++)
		for (int longkey = 0; longkey < 2; longkey++) {
			struct entry *e;

			path = int_path(el, 20, 3 + meta * 2 + longkey);
			if (meta)
				el[0].type = MSGPACK_OBJECT_NIL;
			if (longkey) {
				el[2].type = MSGPACK_OBJECT_STR;
				el[2].via.str.ptr = longel;
				el[2].via.str.size = sizeof(longel);
			}
			cr_assert_eq(tree_follow(&ag.tree, ag.tree.root, &path,
			    true, true, NULL, &e), 0);
			cr_assert_not(entry_under_meta(ag.tree.root));
			for (; e != ag.tree.root; e = e->parent) {
				cr_assert_eq(e->key_whole, !(longkey &&
				    e->depth >= 3 && e->key_len >
				    TREE_INLINE_KEY), "depth %u", e->depth);
				cr_assert_eq(entry_under_meta(e), meta == 1,
				    "depth %u, long %d", e->depth, longkey);
			}
		}
}
