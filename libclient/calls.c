/*
 * calls: the API's requests, synchronous (distkv_get, distkv_set, ...)
 * and asynchronous (distkv_async_*), each encoded here and run by the
 * request machinery of client.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "client_impl.h"

static int	enc_set(struct enc *, uint64_t, const char *,
		    const distkv_path *, const void *, size_t,
		    const struct distkv_set_opts *);
static int	enc_tree(struct enc *, uint64_t, const char *,
		    const distkv_path *, const struct distkv_tree_opts *);
static int	items_req(distkv *, const distkv_path *, struct req **);

/*
 * distkv_get through the mapped region: no round trip.  The agent
 * publishes a change before it replies, so a caller reads its own writes.
 */
static int
get_from_shm(distkv *c, const distkv_path *p, struct distkv_entry *out)
{
	distkv_path *full = NULL;
	int rc;

	if (c->root != NULL) {
		if ((rc = distkv_path_dup(c->root, &full)) != 0 ||
		    (rc = path_append(full, p, 0)) != 0) {
			distkv_path_free(full);
			return (rc);
		}
		p = full;
	}
	rc = shm_client_get_value(c->shm, p, &out->value, &out->tock);
	distkv_path_free(full);
	if (rc == DISTKV_ENOTFOUND)
		rc = distkv_value_from_nil(&out->value) == 0 ?
		    DISTKV_ENOTFOUND : -ENOMEM;
	return (rc);
}

/* Run the request e (r's) and decode its reply into out. */
static int
sync_entry(distkv *c, struct enc *e, struct req *r, struct distkv_entry *out,
    bool with_path)
{
	msgpack_zone zone;
	msgpack_object m;
	int rc;

	msgpack_zone_init(&zone, 2048);
	if ((rc = client_sync_single(c, e, &zone, &m, &r)) == 0)
		rc = client_decode_entry(&m, out, with_path);
	msgpack_zone_destroy(&zone);
	client_req_unref(r);
	return (rc);
}

int
distkv_get(distkv *c, const distkv_path *p, int nchain,
    struct distkv_entry *out)
{
	struct req *r;
	struct enc e;
	int rc;

	entry_reset(out);
	if (c->shm != NULL && nchain <= 0 && c->dead == 0 &&
	    shm_client_fresh(c->shm) &&
	    (rc = get_from_shm(c, p, out)) != DISTKV_EBUSY &&
	    rc != DISTKV_ECORRUPT)
		return (rc);
	if ((rc = client_sync_prepare(c, &r)) != 0)
		return (rc);
	enc_request(&e, nchain > 0 ? 4 : 3, r->seq, "get_value");
	enc_str(&e, "path");
	enc_path(&e, p);
	if (nchain > 0) {
		enc_str(&e, "nchain");
		enc_int(&e, nchain);
	}
	if ((rc = sync_entry(c, &e, r, out, false)) == 0 &&
	    distkv_value_is_nil(out->value.data, out->value.len))
		rc = DISTKV_ENOTFOUND;
	if (rc != 0 && rc != DISTKV_ENOTFOUND)
		distkv_entry_clear(out);
	return (rc);
}

int
distkv_get_event(distkv *c, const char *node, uint64_t tick, int nchain,
    struct distkv_entry *out)
{
	struct req *r;
	struct enc e;
	int rc;

	memset(out, 0, sizeof(*out));
	if (node == NULL || strlen(node) > DISTKV_NODE_MAX)
		return (DISTKV_EINVAL);
	if ((rc = client_sync_prepare(c, &r)) != 0)
		return (rc);
	enc_request(&e, nchain > 0 ? 5 : 4, r->seq, "get_value");
	enc_str(&e, "node");
	enc_str(&e, node);
	enc_str(&e, "tick");
	enc_uint(&e, tick);
	if (nchain > 0) {
		enc_str(&e, "nchain");
		enc_int(&e, nchain);
	}
	if ((rc = sync_entry(c, &e, r, out, true)) != 0)
		distkv_entry_clear(out);
	return (rc);
}

/* The fields of set_value / delete_value (value NULL: delete). */
/* On success e holds the encoding; on failure nothing is allocated. */
static int
enc_set(struct enc *e, uint64_t seq, const char *action,
    const distkv_path *p, const void *value, size_t len,
    const struct distkv_set_opts *o)
{
	size_t n = 4;
	int nchain = 1;
	int rc;

	if (value != NULL && (rc = client_check_msgpack(value, len)) != 0)
		return (rc);
	if (o != NULL) {
		if (o->prev != NULL &&
		    (rc = client_check_msgpack(o->prev, o->prev_len)) != 0)
			return (rc);
		if (o->pre == DISTKV_PRE_CHAIN &&
		    strlen(o->chain_head.node) > DISTKV_NODE_MAX)
			return (DISTKV_EINVAL);
		if (o->pre != DISTKV_PRE_NONE && o->pre != DISTKV_PRE_NEW &&
		    o->pre != DISTKV_PRE_CHAIN)
			return (DISTKV_EINVAL);
		if (o->nchain >= 0)
			nchain = o->nchain;
		n += o->pre != DISTKV_PRE_NONE;
		n += o->prev != NULL;
	}
	n += value != NULL;
	enc_request(e, n, seq, action);
	enc_str(e, "path");
	enc_path(e, p);
	if (value != NULL) {
		enc_str(e, "value");
		enc_raw(e, value, len);
	}
	enc_str(e, "nchain");
	enc_int(e, nchain);
	if (o != NULL && o->pre == DISTKV_PRE_NEW) {
		/* the key present with nil: "must not exist" (§2.5.2) */
		enc_str(e, "chain");
		enc_nil(e);
	} else if (o != NULL && o->pre == DISTKV_PRE_CHAIN) {
		enc_str(e, "chain");
		if (msgpack_pack_map(&e->pk, 2) != 0)
			e->err = -ENOMEM;
		enc_str(e, "node");
		enc_str(e, o->chain_head.node);
		enc_str(e, "tick");
		enc_uint(e, o->chain_head.tick);
	}
	if (o != NULL && o->prev != NULL) {
		enc_str(e, "prev");
		enc_raw(e, o->prev, o->prev_len);
	}
	return (0);
}

static int
set_common(distkv *c, const char *action, const distkv_path *p,
    const void *value, size_t len, const struct distkv_set_opts *opts,
    struct distkv_set_result *out)
{
	msgpack_zone zone;
	msgpack_object m;
	struct distkv_set_result tmp;
	struct req *r;
	struct enc e;
	int rc;

	if (out != NULL)
		memset(out, 0, sizeof(*out));
	if ((rc = client_sync_prepare(c, &r)) != 0)
		return (rc);
	if ((rc = enc_set(&e, r->seq, action, p, value, len, opts)) != 0) {
		client_req_unref(r);
		return (rc);
	}
	msgpack_zone_init(&zone, 2048);
	if ((rc = client_sync_single(c, &e, &zone, &m, &r)) == 0 &&
	    (rc = client_decode_set(&m, &tmp, NULL)) == 0) {
		if (out != NULL)
			*out = tmp;
		else
			distkv_set_result_clear(&tmp);
	}
	msgpack_zone_destroy(&zone);
	client_req_unref(r);
	return (rc);
}

int
distkv_set(distkv *c, const distkv_path *p, const void *value, size_t len,
    const struct distkv_set_opts *opts, struct distkv_set_result *out)
{
	if (value == NULL)
		return (DISTKV_EINVAL);
	return (set_common(c, "set_value", p, value, len, opts, out));
}

int
distkv_delete(distkv *c, const distkv_path *p,
    const struct distkv_set_opts *opts, struct distkv_set_result *out)
{
	return (set_common(c, "delete_value", p, NULL, 0, opts, out));
}

int
distkv_delete_tree(distkv *c, const distkv_path *p, uint64_t *count)
{
	msgpack_zone zone;
	msgpack_object m;
	struct req *r;
	struct enc e;
	int rc;

	if (count != NULL)
		*count = 0;
	if ((rc = client_sync_prepare(c, &r)) != 0)
		return (rc);
	enc_request(&e, 3, r->seq, "delete_tree");
	enc_str(&e, "path");
	enc_path(&e, p);
	msgpack_zone_init(&zone, 2048);
	if ((rc = client_sync_single(c, &e, &zone, &m, &r)) == 0) {
		uint64_t n = 0;
		const msgpack_object *ch = proto_map_get(&m, "changed");

		if (ch != NULL && proto_get_uint(ch, &n) != 0)
			rc = DISTKV_EPROTO;
		else if (count != NULL)
			*count = n;
	}
	msgpack_zone_destroy(&zone);
	client_req_unref(r);
	return (rc);
}

/*
 * get_tree and watch fields.  get_tree is sent both depth spellings
 * (spec §2.5.4: mindepth at c326411, min_depth later); unknown fields are
 * ignored by the agent.
 */
static int
enc_tree(struct enc *e, uint64_t seq, const char *action,
    const distkv_path *p, const struct distkv_tree_opts *o)
{
	bool watch = strcmp(action, "watch") == 0;
	size_t n = 3;

	if (o != NULL) {
		n += o->nchain > 0;
		n += (o->min_depth > 0) * (watch ? 1 : 2);
		n += (o->max_depth >= 0) * (watch ? 1 : 2);
		n += watch && o->fetch;
	}
	enc_request(e, n, seq, action);
	enc_str(e, "path");
	enc_path(e, p);
	if (o == NULL)
		return (e->err);
	if (o->nchain > 0) {
		enc_str(e, "nchain");
		enc_int(e, o->nchain);
	}
	if (o->min_depth > 0) {
		enc_str(e, "min_depth");
		enc_int(e, o->min_depth);
		if (!watch) {
			enc_str(e, "mindepth");
			enc_int(e, o->min_depth);
		}
	}
	if (o->max_depth >= 0) {
		enc_str(e, "max_depth");
		enc_int(e, o->max_depth);
		if (!watch) {
			enc_str(e, "maxdepth");
			enc_int(e, o->max_depth);
		}
	}
	if (watch && o->fetch) {
		enc_str(e, "fetch");
		enc_bool(e, true);
	}
	return (e->err);
}

static int
items_req(distkv *c, const distkv_path *p, struct req **out)
{
	struct req *r;
	int rc;

	*out = NULL;
	if ((r = client_req_new(c, REQ_ITEMS)) == NULL)
		return (-ENOMEM);
	if (p != NULL)
		rc = distkv_path_dup(p, &r->base);
	else
		rc = distkv_path_new(&r->base);
	if (rc != 0 || (rc = distkv_path_new(&r->last)) != 0) {
		client_req_unref(r);
		return (rc);
	}
	*out = r;
	return (0);
}

/* get_tree and the synchronous watch: a multi reply of items to fn. */
static int
sync_items(distkv *c, const char *action, const distkv_path *p,
    const struct distkv_tree_opts *opts, int timeout_ms, distkv_entry_fn *fn,
    void *arg)
{
	struct req *r;
	struct enc e;
	int rc;

	if (c->dead != 0)
		return (c->dead);
	if (fn == NULL)
		return (DISTKV_EINVAL);
	if ((rc = items_req(c, p, &r)) != 0)
		return (rc);
	if ((rc = enc_tree(&e, r->seq, action, p, opts)) != 0) {
		enc_free(&e);
		client_req_unref(r);
		return (rc);
	}
	r->entry_fn = fn;
	r->arg = arg;
	return (client_sync_multi(c, &e, r, timeout_ms));
}

int
distkv_get_tree(distkv *c, const distkv_path *p,
    const struct distkv_tree_opts *opts, distkv_entry_fn *fn, void *arg)
{
	return (sync_items(c, "get_tree", p, opts, c->timeout_ms, fn, arg));
}

int
distkv_watch(distkv *c, const distkv_path *p,
    const struct distkv_tree_opts *opts, int timeout_ms, distkv_entry_fn *fn,
    void *arg)
{
	return (sync_items(c, "watch", p, opts, timeout_ms, fn, arg));
}

int
distkv_state(distkv *c, int flags, struct distkv_value *out)
{
	static const struct {
		int flag;
		const char *key;
	} keys[] = {
		{ DISTKV_STATE_NODES, "nodes" },
		{ DISTKV_STATE_KNOWN, "known" },
		{ DISTKV_STATE_MISSING, "missing" },
		{ DISTKV_STATE_REMOTE_MISSING, "remote_missing" },
		{ DISTKV_STATE_PING, "ping" },
		{ DISTKV_STATE_RECOVERY, "recovery" },
	};
	msgpack_zone zone;
	msgpack_object m;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	struct req *r;
	struct enc e;
	size_t i, n = 2;
	uint32_t k, keep;
	int rc;

	memset(out, 0, sizeof(*out));
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		n += (flags & keys[i].flag) != 0;
	if ((rc = client_sync_prepare(c, &r)) != 0)
		return (rc);
	enc_request(&e, n, r->seq, "get_state");
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		if (flags & keys[i].flag) {
			enc_str(&e, keys[i].key);
			enc_bool(&e, true);
		}
	}
	msgpack_zone_init(&zone, 2048);
	if ((rc = client_sync_single(c, &e, &zone, &m, &r)) == 0) {
		keep = 0;
		for (k = 0; k < m.via.map.size; k++) {
			const msgpack_object *key = &m.via.map.ptr[k].key;

			keep += !proto_str_eq(key, "seq") &&
			    !proto_str_eq(key, "tock");
		}
		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		rc = msgpack_pack_map(&pk, keep) == 0 ? 0 : -ENOMEM;
		for (k = 0; k < m.via.map.size && rc == 0; k++) {
			const msgpack_object_kv *kv = &m.via.map.ptr[k];

			if (proto_str_eq(&kv->key, "seq") ||
			    proto_str_eq(&kv->key, "tock"))
				continue;
			if (proto_pack_canonical(&pk, &kv->key) != 0 ||
			    proto_pack_canonical(&pk, &kv->val) != 0)
				rc = -ENOMEM;
		}
		if (rc == 0 && sb.data != NULL) {
			out->len = sb.size;
			out->data = (uint8_t *)msgpack_sbuffer_release(&sb);
		} else if (rc == 0)
			rc = -ENOMEM;
		msgpack_sbuffer_destroy(&sb);
	}
	msgpack_zone_destroy(&zone);
	client_req_unref(r);
	return (rc);
}

int
distkv_root(distkv *c, const distkv_path *p, struct distkv_entry *out)
{
	struct distkv_entry tmp;
	struct req *r;
	struct enc e;
	int rc;

	if (out != NULL)
		memset(out, 0, sizeof(*out));
	if ((rc = client_sync_prepare(c, &r)) != 0)
		return (rc);
	enc_request(&e, 3, r->seq, "root");
	enc_str(&e, "path");
	enc_path(&e, p);
	if ((rc = sync_entry(c, &e, r, &tmp, true)) == 0) {
		if (out != NULL)
			*out = tmp;
		else
			distkv_entry_clear(&tmp);
		/* shm keys are absolute: remember the new prefix */
		if (c->root == NULL)
			rc = distkv_path_dup(p, &c->root);
		else
			rc = path_append(c->root, p, 0);
	}
	return (rc);
}

/* save and log: {path: file[, fetch]} answered by {result: true}. */
static int
file_action(distkv *c, const char *action, const char *file, int fetch)
{
	msgpack_zone zone;
	msgpack_object m;
	struct req *r;
	struct enc e;
	int rc;

	if (file == NULL)
		return (DISTKV_EINVAL);
	if ((rc = client_sync_prepare(c, &r)) != 0)
		return (rc);
	enc_request(&e, fetch >= 0 ? 4 : 3, r->seq, action);
	enc_str(&e, "path");
	enc_str(&e, file);
	if (fetch >= 0) {
		enc_str(&e, "fetch");
		enc_bool(&e, fetch != 0);
	}
	msgpack_zone_init(&zone, 2048);
	rc = client_sync_single(c, &e, &zone, &m, &r);
	msgpack_zone_destroy(&zone);
	client_req_unref(r);
	return (rc);
}

int
distkv_save(distkv *c, const char *file)
{
	return (file_action(c, "save", file, -1));
}

int
distkv_log(distkv *c, const char *file, bool fetch)
{
	return (file_action(c, "log", file, fetch));
}

/*
 * The caller's map gets our seq in front: a new map header with one more
 * pair, our seq pair, then the caller's pairs verbatim.
 */
/*
 * The caller's map gets our seq in front: a new map header with one more
 * pair, our seq pair, then the caller's pairs verbatim.
 */
static int
raw_prepare(distkv *c, const void *fields, size_t len, distkv_raw_fn *fn,
    void *arg, struct req **rp, struct enc *e)
{
	const uint8_t *b = fields;
	msgpack_zone zone;
	msgpack_object m;
	struct req *r;
	size_t hdr;
	int rc;

	if (c->dead != 0)
		return (c->dead);
	if (fn == NULL || (rc = client_check_msgpack(fields, len)) != 0)
		return (DISTKV_EINVAL);
	if (b[0] >= 0x80 && b[0] <= 0x8f)
		hdr = 1;
	else if (b[0] == 0xde)
		hdr = 3;
	else if (b[0] == 0xdf)
		hdr = 5;
	else
		return (DISTKV_EINVAL);
	msgpack_zone_init(&zone, 2048);
	rc = proto_unpack(b, len, &zone, &m);
	if (rc == 0 && proto_map_get(&m, "seq") != NULL)
		rc = DISTKV_EINVAL;	/* the seq is ours to choose */
	msgpack_zone_destroy(&zone);
	if (rc != 0)
		return (DISTKV_EINVAL);
	if ((r = client_req_new(c, REQ_RAW)) == NULL)
		return (-ENOMEM);
	r->raw_fn = fn;
	r->arg = arg;
	enc_init_raw(e);
	if (msgpack_pack_map(&e->pk, m.via.map.size + 1) != 0)
		e->err = -ENOMEM;
	enc_str(e, "seq");
	enc_uint(e, r->seq);
	enc_raw(e, b + hdr, len - hdr);
	*rp = r;
	return (0);
}

int
distkv_request(distkv *c, const void *fields, size_t len,
    distkv_raw_fn *fn, void *arg)
{
	struct req *r;
	struct enc e;
	int rc;

	if ((rc = raw_prepare(c, fields, len, fn, arg, &r, &e)) != 0)
		return (rc);
	return (client_sync_multi(c, &e, r, c->timeout_ms));
}

/* The checks every async call starts with; *seq (may be NULL) is 0 until
 * the request is queued. */
static int
async_check(distkv *c, bool has_cb, uint64_t *seq)
{
	if (seq != NULL)
		*seq = 0;
	if (c->dead != 0)
		return (c->dead);
	return (has_cb ? 0 : DISTKV_EINVAL);
}

/* Queue r (encoded in e); *seq its seq once queued. */
static int
async_start(distkv *c, struct enc *e, struct req *r, uint64_t *seq)
{
	uint64_t s = r->seq;
	int rc = client_start(c, e, r);

	if (rc == 0 && seq != NULL)
		*seq = s;
	return (rc);
}

int
distkv_async_request(distkv *c, const void *fields, size_t len,
    distkv_raw_fn *fn, void *arg, uint64_t *seq)
{
	struct req *r;
	struct enc e;
	int rc;

	if (seq != NULL)
		*seq = 0;
	if ((rc = raw_prepare(c, fields, len, fn, arg, &r, &e)) != 0)
		return (rc);
	return (async_start(c, &e, r, seq));
}

int
distkv_async_get(distkv *c, const distkv_path *p, int nchain,
    distkv_get_cb *cb, void *arg, uint64_t *seq)
{
	struct req *r;
	struct enc e;
	int rc;

	if ((rc = async_check(c, cb != NULL, seq)) != 0)
		return (rc);
	if ((r = client_req_new(c, REQ_GET)) == NULL)
		return (-ENOMEM);
	r->get_cb = cb;
	r->arg = arg;
	enc_request(&e, nchain > 0 ? 4 : 3, r->seq, "get_value");
	enc_str(&e, "path");
	enc_path(&e, p);
	if (nchain > 0) {
		enc_str(&e, "nchain");
		enc_int(&e, nchain);
	}
	return (async_start(c, &e, r, seq));
}

static int
async_set_common(distkv *c, const char *action, const distkv_path *p,
    const void *value, size_t len, const struct distkv_set_opts *opts,
    distkv_set_cb *cb, void *arg, uint64_t *seq)
{
	struct req *r;
	struct enc e;
	int rc;

	if ((rc = async_check(c, cb != NULL, seq)) != 0)
		return (rc);
	if ((r = client_req_new(c, REQ_SET)) == NULL)
		return (-ENOMEM);
	if ((rc = enc_set(&e, r->seq, action, p, value, len, opts)) != 0) {
		client_req_unref(r);
		return (rc);
	}
	r->set_cb = cb;
	r->arg = arg;
	return (async_start(c, &e, r, seq));
}

int
distkv_async_set(distkv *c, const distkv_path *p, const void *value,
    size_t len, const struct distkv_set_opts *opts, distkv_set_cb *cb,
    void *arg, uint64_t *seq)
{
	if (value == NULL)
		return (DISTKV_EINVAL);
	return (async_set_common(c, "set_value", p, value, len, opts, cb, arg,
	    seq));
}

int
distkv_async_delete(distkv *c, const distkv_path *p,
    const struct distkv_set_opts *opts, distkv_set_cb *cb, void *arg,
    uint64_t *seq)
{
	return (async_set_common(c, "delete_value", p, NULL, 0, opts, cb, arg,
	    seq));
}

int
distkv_async_watch(distkv *c, const distkv_path *p,
    const struct distkv_tree_opts *opts, distkv_watch_cb *cb, void *arg,
    uint64_t *seq)
{
	struct req *r;
	struct enc e;
	int rc;

	if ((rc = async_check(c, cb != NULL, seq)) != 0)
		return (rc);
	if ((rc = items_req(c, p, &r)) != 0)
		return (rc);
	if ((rc = enc_tree(&e, r->seq, "watch", p, opts)) != 0) {
		enc_free(&e);
		client_req_unref(r);
		return (rc);
	}
	r->watch_cb = cb;
	r->arg = arg;
	return (async_start(c, &e, r, seq));
}
