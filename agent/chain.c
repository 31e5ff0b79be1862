/* chain: see chain.h. */
#include <errno.h>
#include <string.h>

#include "chain.h"
#include "proto.h"

const struct chain chain_none;

bool
chain_same(const struct chain *c, const struct chain *e)
{
	return c->n > 0 && e->n > 0 && c->l[0].node == e->l[0].node &&
	    c->l[0].tick == e->l[0].tick;
}

uint64_t
chain_tick_of(const struct chain *c, const struct node *n)
{
	for (unsigned i = 0; i < c->n; i++)
		if (c->l[i].node == n)
			return c->l[i].tick;
	return 0;
}

bool
chain_covers(const struct chain *c, const struct chain *e)
{
	if (e->n == 0)
		return true;
	return chain_tick_of(c, e->l[0].node) >= e->l[0].tick;
}

bool
chain_descends(const struct chain *e, const struct chain *c)
{
	if (c->n == 0)
		return true;
	return chain_tick_of(e, c->l[0].node) >= c->l[0].tick;
}

static void
chain_pack_link(msgpack_packer *pk, const struct chain_link *l)
{
	msgpack_pack_str_with_body(pk, "node", 4);
	msgpack_pack_str_with_body(pk, l->node->name, l->node->name_len);
	msgpack_pack_str_with_body(pk, "tick", 4);
	msgpack_pack_uint64(pk, l->tick);
}

static void
chain_pack_from(msgpack_packer *pk, const struct chain *c, unsigned i,
    unsigned limit)
{
	bool last = i + 1 >= c->n;
	bool cut = !last && i + 1 >= limit;

	msgpack_pack_map(pk, cut ? 2 : 3);
	chain_pack_link(pk, &c->l[i]);
	if (cut)
		return;
	msgpack_pack_str_with_body(pk, "prev", 4);
	if (last)
		msgpack_pack_nil(pk);
	else
		chain_pack_from(pk, c, i + 1, limit);
}

void
chain_pack(msgpack_packer *pk, const struct chain *c, unsigned limit)
{
	if (c->n == 0 || limit == 0) {
		msgpack_pack_nil(pk);
		return;
	}
	chain_pack_from(pk, c, 0, limit);
}

void
chain_pack_flat(msgpack_packer *pk, const struct chain *c, unsigned limit)
{
	chain_pack_link(pk, &c->l[0]);
	msgpack_pack_str_with_body(pk, "prev", 4);
	if (c->n <= 1 || limit <= 1)
		msgpack_pack_nil(pk);
	else
		chain_pack_from(pk, c, 1, limit);
}

bool
chain_node_name_ok(const msgpack_object *o)
{
	return o->type == MSGPACK_OBJECT_STR && o->via.str.size > 0 &&
	    o->via.str.size <= PROTO_MAX_NODE_NAME &&
	    proto_utf8_valid(o->via.str.ptr, o->via.str.size);
}

/* One link's fields from map m: node and tick. */
static int
chain_read_link(const msgpack_object *m, const msgpack_object **name,
    uint64_t *tick)
{
	const msgpack_object *n = proto_map_get(m, "node");
	const msgpack_object *t = proto_map_get(m, "tick");

	if (n == NULL || !chain_node_name_ok(n))
		return -EINVAL;
	if (t == NULL || proto_get_tick(t, tick) != 0 || *tick == 0)
		return -EINVAL;
	*name = n;
	return 0;
}

/*
 * Two passes: validate everything into names/ticks first, then touch the
 * node table, so a malformed chain changes nothing.
 */
static int
chain_unpack_links(struct nodes *ns, const msgpack_object *first,
    const msgpack_object *first_prev, unsigned max_len, struct chain *out)
{
	const msgpack_object *names[CHAIN_CAP];
	uint64_t ticks[CHAIN_CAP];
	const msgpack_object *m = first, *prev = first_prev;
	unsigned n = 0;
	int rc;

	if (max_len > CHAIN_CAP)
		max_len = CHAIN_CAP;
	for (;;) {
		const msgpack_object *name;
		uint64_t tick;

		if ((rc = chain_read_link(m, &name, &tick)) != 0)
			return rc;
		if (n < max_len) {
			for (unsigned i = 0; i < n; i++)
				if (names[i]->via.str.size ==
				    name->via.str.size &&
				    memcmp(names[i]->via.str.ptr,
				    name->via.str.ptr,
				    name->via.str.size) == 0)
					return -EINVAL;
			names[n] = name;
			ticks[n] = tick;
			n++;
		}
		if (prev == NULL || prev->type == MSGPACK_OBJECT_NIL)
			break;
		if (prev->type != MSGPACK_OBJECT_MAP)
			return -EINVAL;
		m = prev;
		prev = proto_map_get(m, "prev");
	}
	memset(out, 0, sizeof(*out));
	for (unsigned i = 0; i < n; i++) {
		struct node *nd = nodes_get(ns, names[i]->via.str.ptr,
		    names[i]->via.str.size, true);

		if (nd == NULL)
			return -ENOMEM;
		node_raise_tick(nd, ticks[i]);
		out->l[i].node = nd;
		out->l[i].tick = ticks[i];
	}
	out->n = n;
	return 0;
}

int
chain_unpack(struct nodes *ns, const msgpack_object *o, unsigned max_len,
    struct chain *out)
{
	if (o->type != MSGPACK_OBJECT_MAP)
		return -EINVAL;
	return chain_unpack_links(ns, o, proto_map_get(o, "prev"), max_len,
	    out);
}
