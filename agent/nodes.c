/* nodes: see nodes.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "bigtab.h"
#include "nodes.h"
#include "proto.h"

void
nodes_init(struct nodes *ns)
{
	memset(ns, 0, sizeof(*ns));
}

void
nodes_fini(struct nodes *ns)
{
	for (size_t i = 0; i < ns->n; i++) {
		struct node *n = ns->by_index[i];

		free(n->name);
		ranges_fini(&n->known);
		ranges_fini(&n->remote_missing);
		ranges_fini(&n->seen_missing);
		ranges_fini(&n->heard[0]);
		ranges_fini(&n->heard[1]);
		ranges_fini(&n->skipped);
		bigtab_free(n->entries.slot, n->entries.cap,
		    sizeof(*n->entries.slot));
		free(n->report);
		free(n);
	}
	free(ns->by_index);
	free(ns->hash);
	memset(ns, 0, sizeof(*ns));
}

static size_t
nodes_bucket(const struct nodes *ns, const char *name, size_t len)
{
	return XXH3_64bits(name, len) & (ns->hcap - 1);
}

static int
nodes_rehash(struct nodes *ns)
{
	size_t hcap = ns->hcap ? ns->hcap * 2 : 16;
	struct node **h = calloc(hcap, sizeof(*h));

	if (h == NULL)
		return -ENOMEM;
	free(ns->hash);
	ns->hash = h;
	ns->hcap = hcap;
	for (size_t i = 0; i < ns->n; i++) {
		struct node *n = ns->by_index[i];
		size_t b = nodes_bucket(ns, n->name, n->name_len);

		n->hnext = h[b];
		h[b] = n;
	}
	return 0;
}

struct node *
nodes_get(struct nodes *ns, const char *name, size_t len, bool create)
{
	struct node *n;

	if (ns->hcap != 0) {
		for (n = ns->hash[nodes_bucket(ns, name, len)]; n != NULL;
		    n = n->hnext)
			if (n->name_len == len &&
			    memcmp(n->name, name, len) == 0)
				return n;
	}
	if (!create)
		return NULL;
	if (ns->n == ns->cap) {
		size_t cap = ns->cap ? ns->cap * 2 : 8;
		struct node **bi = realloc(ns->by_index, cap * sizeof(*bi));

		if (bi == NULL)
			return NULL;
		ns->by_index = bi;
		ns->cap = cap;
	}
	if ((n = calloc(1, sizeof(*n))) == NULL ||
	    (n->name = malloc(len + 1)) == NULL) {
		free(n);
		return NULL;
	}
	memcpy(n->name, name, len);
	n->name[len] = '\0';
	n->name_len = len;
	ranges_init(&n->known);
	ranges_init(&n->remote_missing);
	ranges_init(&n->seen_missing);
	ranges_init(&n->heard[0]);
	ranges_init(&n->heard[1]);
	ranges_init(&n->skipped);
	n->index = ns->n;
	ns->by_index[ns->n++] = n;
	if (ns->n * 2 > ns->hcap) {
		if (nodes_rehash(ns) != 0) {
			/* keep the record; lookups fall back after next rehash */
			ns->n--;
			free(n->name);
			free(n);
			return NULL;
		}
	} else {
		size_t b = nodes_bucket(ns, name, len);

		n->hnext = ns->hash[b];
		ns->hash[b] = n;
	}
	return n;
}

void
node_raise_tick(struct node *n, uint64_t t)
{
	/* every decoder refuses such ticks; this is the last line */
	if (t > PROTO_MAX_TICK)
		return;
	if (!n->has_tick || t > n->tick) {
		n->tick = t;
		n->has_tick = true;
	}
}

void
nodes_pack_ticks(const struct nodes *ns, msgpack_packer *pk)
{
	uint32_t n = 0;

	for (size_t i = 0; i < ns->n; i++)
		n += ns->by_index[i]->has_tick;
	msgpack_pack_map(pk, n);
	for (size_t i = 0; i < ns->n; i++) {
		const struct node *nd = ns->by_index[i];

		if (!nd->has_tick)
			continue;
		msgpack_pack_str_with_body(pk, nd->name, nd->name_len);
		msgpack_pack_uint64(pk, nd->tick);
	}
}

int
node_see(struct node *n, uint64_t t)
{
	if (ranges_add(&n->known, t, t + 1) != 0)
		return -ENOMEM;
	return ranges_remove(&n->remote_missing, t, t + 1);
}

/*
 * Ticks go in runs of TICKMAP_RUN consecutive ones (a cache line of
 * slots), the runs spread over the table by Fibonacci hashing.  A node's
 * new ticks are consecutive, so three puts in four land in the line the
 * one before fetched (the put was a cache miss per update in a big map);
 * the spread keeps the runs of live ticks that churn leaves from piling
 * up into long probes, as tick % cap would.
 */
#define TICKMAP_RUN 4

static size_t
tickmap_home(const struct tickmap *m, uint64_t tick)
{
	uint64_t run = tick / TICKMAP_RUN;

	return (size_t)((((run * 0x9e3779b97f4a7c15ULL) >> 17) *
	    TICKMAP_RUN) + tick % TICKMAP_RUN) & (m->cap - 1);
}

struct entry *
node_entry_get(const struct node *n, uint64_t tick)
{
	const struct tickmap *m = &n->entries;

	if (m->cap == 0 || tick == 0)
		return NULL;
	for (size_t i = tickmap_home(m, tick);; i = (i + 1) & (m->cap - 1)) {
		if (m->slot[i].tick == tick)
			return m->slot[i].entry;
		if (m->slot[i].tick == 0)
			return NULL;
	}
}

static void
tickmap_put(struct tickmap *m, uint64_t tick, struct entry *e)
{
	size_t i;

	for (i = tickmap_home(m, tick); m->slot[i].tick != 0 &&
	    m->slot[i].tick != tick; i = (i + 1) & (m->cap - 1))
		;
	if (m->slot[i].tick == 0)
		m->n++;
	m->slot[i].tick = tick;
	m->slot[i].entry = e;
}

int
node_entry_set(struct node *n, uint64_t tick, struct entry *e)
{
	struct tickmap *m = &n->entries;

	if (tick == 0)
		return -EINVAL;
	if ((m->n + 1) * 4 > m->cap * 3) {
		struct tickmap old = *m;
		size_t cap = m->cap ? m->cap * 2 : 16;

		if ((m->slot = bigtab_calloc(cap, sizeof(*m->slot))) ==
		    NULL) {
			*m = old;
			return -ENOMEM;
		}
		m->cap = cap;
		m->n = 0;
		for (size_t i = 0; i < old.cap; i++)
			if (old.slot[i].tick != 0)
				tickmap_put(m, old.slot[i].tick,
				    old.slot[i].entry);
		bigtab_free(old.slot, old.cap, sizeof(*old.slot));
	}
	tickmap_put(m, tick, e);
	return 0;
}

void
node_entry_del(struct node *n, uint64_t tick, const struct entry *e)
{
	struct tickmap *m = &n->entries;
	size_t i, j;

	if (m->cap == 0 || tick == 0)
		return;
	for (i = tickmap_home(m, tick); m->slot[i].tick != tick;
	    i = (i + 1) & (m->cap - 1))
		if (m->slot[i].tick == 0)
			return;
	if (m->slot[i].entry != e)
		return;
	/* backward-shift deletion keeps every probe sequence unbroken */
	for (j = (i + 1) & (m->cap - 1); m->slot[j].tick != 0;
	    j = (j + 1) & (m->cap - 1)) {
		size_t h = tickmap_home(m, m->slot[j].tick);

		if ((j > i && (h <= i || h > j)) ||
		    (j < i && (h <= i && h > j))) {
			m->slot[i] = m->slot[j];
			i = j;
		}
	}
	m->slot[i].tick = 0;
	m->slot[i].entry = NULL;
	m->n--;
}
