/*
 * reply: the agent's replies decoded into the library's structs (entries,
 * chains, set results), for dispatch (client.c) and the calls (calls.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "client_impl.h"

static int	reply_value(struct distkv_value *, const msgpack_object *);

static int
decode_chain(const msgpack_object *o, struct distkv_chain *ch)
{
	const msgpack_object *node, *tick, *prev;

	/* not the 2 KiB of events: only ev[0..n) is ever read */
	ch->n = 0;
	ch->complete = true;
	while (o != NULL && o->type != MSGPACK_OBJECT_NIL) {
		struct distkv_event *ev;

		if (o->type != MSGPACK_OBJECT_MAP)
			return (DISTKV_EPROTO);
		if (ch->n == DISTKV_CHAIN_MAX) {
			ch->complete = false;
			break;
		}
		ev = &ch->ev[ch->n];
		node = proto_map_get(o, "node");
		tick = proto_map_get(o, "tick");
		if (node == NULL || node->type != MSGPACK_OBJECT_STR ||
		    node->via.str.size > DISTKV_NODE_MAX)
			return (DISTKV_EPROTO);
		memcpy(ev->node, node->via.str.ptr, node->via.str.size);
		ev->node[node->via.str.size] = '\0';
		if (tick != NULL && tick->type != MSGPACK_OBJECT_NIL &&
		    proto_get_uint(tick, &ev->tick) != 0)
			return (DISTKV_EPROTO);
		ch->n++;
		/* spec §1.4: no prev key = truncated, prev nil = the end */
		if ((prev = proto_map_get(o, "prev")) == NULL) {
			ch->complete = false;
			break;
		}
		o = prev;
	}
	return (0);
}

/* value, tock, chain and (if with_path and present) path of a reply map. */
int
client_decode_entry(const msgpack_object *m, struct distkv_entry *e,
    bool with_path)
{
	const msgpack_object *v, *tock, *chain, *path;
	int rc;

	entry_reset(e);
	v = proto_map_get(m, "value");
	tock = proto_map_get(m, "tock");
	chain = proto_map_get(m, "chain");
	path = with_path ? proto_map_get(m, "path") : NULL;
	if (tock != NULL && proto_get_uint(tock, &e->tock) != 0)
		return (DISTKV_EPROTO);
	if ((rc = decode_chain(chain, &e->chain)) != 0)
		return (rc);
	if (v != NULL)
		rc = reply_value(&e->value, v);
	else
		rc = distkv_value_from_nil(&e->value);
	if (rc != 0)
		return (rc);
	if (path != NULL) {
		if ((rc = distkv_path_new(&e->path)) != 0 ||
		    (rc = path_push_object(e->path, path)) != 0) {
			distkv_entry_clear(e);
			return (rc);
		}
	}
	return (0);
}

int
client_decode_entry_borrowed(const msgpack_object *m, struct distkv_entry *e,
    struct enc *keep)
{
	static const uint8_t nil = 0xc0;
	const msgpack_object *v, *tock;
	int rc;

	entry_reset(e);
	v = proto_map_get(m, "value");
	tock = proto_map_get(m, "tock");
	if (tock != NULL && proto_get_uint(tock, &e->tock) != 0)
		return (DISTKV_EPROTO);
	if ((rc = decode_chain(proto_map_get(m, "chain"), &e->chain)) != 0)
		return (rc);
	if (v == NULL || v->type == MSGPACK_OBJECT_NIL) {
		e->value.data = (uint8_t *)(uintptr_t)&nil;
		e->value.len = 1;
		return (0);
	}
	if (proto_pack_canonical(&keep->pk, v) != 0 || keep->err != 0)
		return (-ENOMEM);
	e->value.data = (uint8_t *)keep->sb.data;
	e->value.len = keep->sb.size;
	return (0);
}

/*
 * A tree/watch item: path shortened against the previous item (spec §2.6).
 * L = L[:depth] + path; the entry's path is the request path + L.
 */
int
client_decode_item(struct req *r, const msgpack_object *m,
    struct distkv_entry *e)
{
	const msgpack_object *path, *depth;
	int64_t d = 0;
	int rc;

	path = proto_map_get(m, "path");
	depth = proto_map_get(m, "depth");
	if (path == NULL)
		return (DISTKV_EPROTO);
	if (depth != NULL && (proto_get_int(depth, &d) != 0 || d < 0 ||
	    (uint64_t)d > distkv_path_len(r->last)))
		return (DISTKV_EPROTO);
	distkv_path_truncate(r->last, distkv_path_len(r->last) - (size_t)d);
	if ((rc = path_push_object(r->last, path)) != 0)
		return (rc);
	if ((rc = client_decode_entry(m, e, false)) != 0)
		return (rc);
	e->depth = (int)distkv_path_len(r->last);
	if ((rc = distkv_path_dup(r->base, &e->path)) != 0 ||
	    (rc = path_append(e->path, r->last, 0)) != 0) {
		distkv_entry_clear(e);
		return (rc == DISTKV_EINVAL ? DISTKV_EPROTO : rc);
	}
	return (0);
}

int
client_decode_set(const msgpack_object *m, struct distkv_set_result *r,
    struct enc *keep)
{
	const msgpack_object *changed, *prev, *tock, *chain;
	int rc;

	/* field by field, as entry_reset */
	r->changed = false;
	r->has_prev = false;
	r->prev.data = NULL;
	r->prev.len = 0;
	r->chain.n = 0;
	r->chain.complete = false;
	r->tock = 0;
	changed = proto_map_get(m, "changed");
	prev = proto_map_get(m, "prev");
	tock = proto_map_get(m, "tock");
	chain = proto_map_get(m, "chain");
	if (changed != NULL) {
		if (changed->type != MSGPACK_OBJECT_BOOLEAN)
			return (DISTKV_EPROTO);
		r->changed = changed->via.boolean;
	}
	if (tock != NULL && proto_get_uint(tock, &r->tock) != 0)
		return (DISTKV_EPROTO);
	if ((rc = decode_chain(chain, &r->chain)) != 0)
		return (rc);
	if (prev == NULL)
		return (0);
	if (keep == NULL) {
		if ((rc = reply_value(&r->prev, prev)) != 0)
			return (rc);
	} else {
		if (proto_pack_canonical(&keep->pk, prev) != 0 ||
		    keep->err != 0)
			return (-ENOMEM);
		r->prev.data = (uint8_t *)keep->sb.data;
		r->prev.len = keep->sb.size;
	}
	r->has_prev = true;
	return (0);
}

void
distkv_entry_clear(struct distkv_entry *e)
{
	if (e == NULL)
		return;
	distkv_path_free(e->path);
	distkv_value_clear(&e->value);
	entry_reset(e);
}

void
distkv_set_result_clear(struct distkv_set_result *r)
{
	if (r == NULL)
		return;
	distkv_value_clear(&r->prev);
	memset(r, 0, sizeof(*r));
}

/*
 * value_from_object's result (the canonical bytes of o) in an allocation
 * of their size: packed in struct enc's stack buffer first, where
 * value_from_object's sbuffer mallocs 8 KiB per reply.
 */
static int
reply_value(struct distkv_value *v, const msgpack_object *o)
{
	struct enc e;
	int rc = 0;

	v->data = NULL;
	v->len = 0;
	enc_init_raw(&e);
	if (proto_pack_canonical(&e.pk, o) != 0 || e.err != 0 ||
	    (v->data = malloc(e.sb.size)) == NULL)
		rc = -ENOMEM;
	else {
		memcpy(v->data, e.sb.data, e.sb.size);
		v->len = e.sb.size;
	}
	enc_free(&e);
	return (rc);
}
