/*
 * keys: see keys.h.  The request flow follows etcd's: parse and check the
 * form fields in etcd's order (so the first bad field gives etcd's error),
 * then pick the store operation as etcd's v2 applier does (set, create,
 * update, compareAndSwap, create-unique, delete, compareAndDelete, get,
 * watch), then check the tree and write through libdistkv.
 *
 * Atomicity: a condition on the entry itself (prevValue, prevIndex,
 * prevExist) is checked by the agent: the write carries the chain head
 * read just before (or "must be new"), and a refused write is retried
 * from the read.  Checks of the shape around the entry (is it a
 * directory, is a parent a value) are read-then-write; docs/etcd.md says
 * so.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "fields.h"
#include "keys.h"
#include "keys_impl.h"
#include "v2err.h"
#include "v2node.h"

/* A write refused because the entry changed under it is retried. */
#define CAS_RETRIES 8

/* ---- per-thread agent connections ---- */

struct tconn {
	struct tconn *next;
	struct keys *k;
	distkv *c;
};


static __thread struct tconn *tls_conn;

static int
conn_get(struct keys *k, distkv **out)
{
	struct tconn *t = tls_conn;
	int rc;

	*out = NULL;
	if (t != NULL && t->k == k && t->c != NULL) {
		*out = t->c;
		return 0;
	}
	if (t == NULL || t->k != k) {
		if ((t = calloc(1, sizeof(*t))) == NULL)
			return -ENOMEM;
		t->k = k;
		pthread_mutex_lock(&k->mu);
		t->next = k->conns;
		k->conns = t;
		pthread_mutex_unlock(&k->mu);
		tls_conn = t;
	}
	if ((rc = distkv_connect(k->socket, &t->c)) != 0)
		return rc;
	*out = t->c;
	return 0;
}

/* After an error: a dead connection is closed, the next call reconnects. */
static void
conn_check(int rc)
{
	if (tls_conn != NULL && tls_conn->c != NULL &&
	    (rc == DISTKV_EDISCONNECTED || rc == DISTKV_EPROTO ||
	    rc == DISTKV_ETIMEDOUT)) {
		distkv_close(tls_conn->c);
		tls_conn->c = NULL;
	}
}

int
keys_open(const struct keys_cfg *cfg, struct keys **out)
{
	struct keys *k;
	int rc;

	*out = NULL;
	if ((k = calloc(1, sizeof(*k))) == NULL)
		return -ENOMEM;
	pthread_mutex_init(&k->mu, NULL);
	k->h = cfg->history;
	if ((cfg->socket != NULL && (k->socket = strdup(cfg->socket)) == NULL) ||
	    (rc = distkv_path_dup(cfg->prefix, &k->prefix)) != 0) {
		keys_close(k);
		return -ENOMEM;
	}
	k->plen = distkv_path_len(k->prefix);
	*out = k;
	return 0;
}

void
keys_close(struct keys *k)
{
	struct tconn *t, *n;

	if (k == NULL)
		return;
	for (t = k->conns; t != NULL; t = n) {
		n = t->next;
		distkv_close(t->c);
		free(t);
	}
	distkv_path_free(k->prefix);
	free(k->socket);
	pthread_mutex_destroy(&k->mu);
	free(k);
}

/* ---- replies ---- */

void
keys_reply_error(struct keys *k, struct keys_resp *rs, int code,
    const char *cause)
{
	rs->status = v2err_status(code);
	rs->index = history_index(k->h);
	rs->body = v2err_body(code, cause, rs->index);
	rs->blen = rs->body != NULL ? strlen(rs->body) : 0;
}

/* An agent failure: etcd's "Raft Internal Error" (500) says why. */
void
keys_reply_agent_error(struct keys *k, struct keys_resp *rs, distkv *c, int rc)
{
	char cause[512];

	snprintf(cause, sizeof(cause), "distkv agent: %s%s%s",
	    distkv_strerror(rc), DISTKV_IS_REFUSAL(rc) && c != NULL ? ": " : "",
	    DISTKV_IS_REFUSAL(rc) && c != NULL ? distkv_errmsg(c) : "");
	conn_check(rc);
	keys_reply_error(k, rs, V2E_RAFT_INTERNAL, cause);
}

void
keys_reply_json(struct keys_resp *rs, int status, json_t *o, uint64_t index)
{
	rs->status = status;
	rs->index = index;
	rs->body = v2node_dump(o, &rs->blen);
	if (rs->body == NULL)
		rs->status = 500;
}

/* ---- paths and probes ---- */

/* The DistKV path of an etcd key ("/" is the prefix itself). */
int
keys_key_path(struct keys *k, const char *key, distkv_path **out)
{
	distkv_path *p;
	const char *s = key, *e;
	int rc;

	*out = NULL;
	if ((rc = distkv_path_dup(k->prefix, &p)) != 0)
		return rc;
	while (*s != '\0') {
		while (*s == '/')
			s++;
		if (*s == '\0')
			break;
		e = strchr(s, '/');
		if (e == NULL)
			e = s + strlen(s);
		if ((rc = distkv_path_push_str(p, s, (size_t)(e - s))) != 0) {
			distkv_path_free(p);
			return rc;
		}
		s = e;
	}
	*out = p;
	return 0;
}

/* What the tree holds at one path, as etcd sees it. */
struct ent {
	bool exists;		/* a value, or something below */
	bool has_value;		/* any value, the dir marker included */
	bool marker;		/* the value is the dir marker */
	bool children;		/* something with a value below */
	char *text;		/* value text (not for the marker) */
	size_t tlen;
	uint64_t tock;
	struct distkv_event head;
	size_t depth0;		/* path length of the probed entry */
};

static void
ent_clear(struct ent *e)
{
	free(e->text);
	memset(e, 0, sizeof(*e));
}

static bool
ent_is_dir(const struct ent *e)
{
	return e->marker || e->children;
}

static int
probe_cb(void *arg, const struct distkv_entry *it)
{
	struct ent *e = arg;

	if (it->depth == 0) {
		if (distkv_value_is_nil(it->value.data, it->value.len))
			return 0;
		e->exists = e->has_value = true;
		e->tock = it->tock;
		if (it->chain.n > 0)
			e->head = it->chain.ev[0];
		if (v2node_value(it->value.data, it->value.len, &e->marker,
		    &e->text, &e->tlen) != 0)
			return 1;
		return 0;
	}
	e->exists = e->children = true;
	return 1;	/* one child is enough to know */
}

/* Read the entry at p and whether anything lies below it: one walk. */
static int
probe(distkv *c, const distkv_path *p, struct ent *e)
{
	struct distkv_tree_opts o = { 0, -1, 1, false };

	memset(e, 0, sizeof(*e));
	return distkv_get_tree(c, p, &o, probe_cb, e);
}

/* Is there anything with a value strictly below p? */
static int
has_below(distkv *c, const distkv_path *p, bool *yes)
{
	struct ent e;
	struct distkv_tree_opts o = { 1, -1, 0, false };
	int rc;

	memset(&e, 0, sizeof(e));
	rc = distkv_get_tree(c, p, &o, probe_cb, &e);
	*yes = e.children;
	ent_clear(&e);
	return rc;
}

/*
 * Creating something at key: a parent that holds a value (not the dir
 * marker) and nothing below is an etcd file: 104 with its key in *bad.
 * A parent with a value AND entries below is shown as a directory
 * (docs/etcd.md), so writing below it is fine.
 */
int
keys_parents_check(struct keys *k, distkv *c, const char *key, char **bad)
{
	distkv_path *p = NULL;
	size_t n, i, deepest = 0;
	struct distkv_entry e;
	int rc;

	*bad = NULL;
	if ((rc = keys_key_path(k, key, &p)) != 0)
		return rc;
	n = distkv_path_len(p);
	for (i = k->plen + 1; i < n; i++) {
		distkv_path *a;
		bool dir = false;
		char *t = NULL;
		size_t tl;

		if ((rc = distkv_path_dup(p, &a)) != 0)
			goto out;
		distkv_path_truncate(a, n - i);
		memset(&e, 0, sizeof(e));
		rc = distkv_get(c, a, 0, &e);
		distkv_path_free(a);
		if (rc == DISTKV_ENOTFOUND) {
			distkv_entry_clear(&e);
			continue;
		}
		if (rc != 0) {
			distkv_entry_clear(&e);
			goto out;
		}
		if (!distkv_value_is_nil(e.value.data, e.value.len) &&
		    v2node_value(e.value.data, e.value.len, &dir, &t, &tl) == 0 &&
		    !dir)
			deepest = i;
		free(t);
		distkv_entry_clear(&e);
	}
	rc = 0;
	if (deepest > 0) {
		bool below;

		distkv_path_truncate(p, n - deepest);
		if ((rc = has_below(c, p, &below)) != 0)
			goto out;
		if (!below) {
			/* the key of that parent: the first `deepest` elements */
			const char *s = key;
			size_t el = deepest - k->plen;

			while (el > 0 && (s = strchr(s + 1, '/')) != NULL)
				el--;
			*bad = s != NULL ? strndup(key, (size_t)(s - key)) :
			    strdup(key);
			rc = *bad != NULL ? 0 : -ENOMEM;
		}
	}
out:
	distkv_path_free(p);
	return rc;
}

/* ---- writes ---- */

static json_t *
ent_node(const char *key, const struct ent *e)
{
	return v2node_new(key, ent_is_dir(e), e->text, e->tlen, e->tock,
	    e->tock);
}

/* The reply of a successful write: the new node, the previous one. */
static void
reply_write(struct keys_resp *rs, const char *action, const char *key,
    bool dir, const char *value, uint64_t tock, const struct ent *prev,
    bool novalue)
{
	bool created = strcmp(action, "create") == 0 ||
	    (strcmp(action, "set") == 0 && (prev == NULL || !prev->exists));
	bool deleted = strstr(action, "elete") != NULL;
	json_t *o = json_object();

	json_object_set_new(o, "action", json_string(action));
	if (!novalue) {
		json_object_set_new(o, "node", v2node_new(key, dir,
		    deleted ? NULL : value, value != NULL ? strlen(value) : 0,
		    tock, deleted && prev != NULL ? prev->tock : tock));
		if (prev != NULL && prev->exists)
			json_object_set_new(o, "prevNode", ent_node(key, prev));
	}
	keys_reply_json(rs, created ? 201 : 200, o, tock);
}

/* Did the agent refuse because the entry is not what we read? */
static bool
refused_changed(distkv *c, int rc)
{
	return rc == DISTKV_ECONFLICT &&
	    strncmp(distkv_errmsg(c), "This entry already exists", 25) != 0;
}

static bool
refused_exists(distkv *c, int rc)
{
	return rc == DISTKV_ECONFLICT &&
	    strncmp(distkv_errmsg(c), "This entry already exists", 25) == 0;
}

/*
 * Write value (NULL: the dir marker) at key with precondition pre (the
 * chain head of e for DISTKV_PRE_CHAIN) and label the event with action.
 * Returns 0 with *tock, or the libdistkv error.
 */
static int
write_value(struct keys *k, distkv *c, const char *key, const char *value,
    enum distkv_precond pre, const struct ent *e, const char *action,
    uint64_t *tock)
{
	struct distkv_set_opts o;
	struct distkv_set_result r;
	struct distkv_value v;
	distkv_path *p = NULL;
	void *tok;
	int rc;

	*tock = 0;
	memset(&o, 0, sizeof(o));
	memset(&r, 0, sizeof(r));
	memset(&v, 0, sizeof(v));
	o.pre = pre;
	o.nchain = 0;
	if (pre == DISTKV_PRE_CHAIN)
		o.chain_head = e->head;
	if ((rc = keys_key_path(k, key, &p)) != 0)
		return rc;
	if (value != NULL)
		rc = distkv_value_from_str(&v, value, strlen(value));
	else
		rc = distkv_value_from_msgpack(&v, "\x80", 1);
	if (rc != 0) {
		distkv_path_free(p);
		return rc;
	}
	tok = history_write_begin(k->h, key, action);
	rc = distkv_set(c, p, v.data, v.len, &o, &r);
	history_write_end(k->h, tok, rc == 0 ? r.tock : 0);
	if (rc == 0)
		*tock = r.tock;
	distkv_set_result_clear(&r);
	distkv_value_clear(&v);
	distkv_path_free(p);
	return rc;
}

static int
delete_value(struct keys *k, distkv *c, const char *key,
    enum distkv_precond pre, const struct ent *e, const char *action,
    uint64_t *tock)
{
	struct distkv_set_opts o;
	struct distkv_set_result r;
	distkv_path *p = NULL;
	void *tok;
	int rc;

	*tock = 0;
	memset(&o, 0, sizeof(o));
	memset(&r, 0, sizeof(r));
	o.pre = pre;
	o.nchain = 0;
	if (pre == DISTKV_PRE_CHAIN)
		o.chain_head = e->head;
	if ((rc = keys_key_path(k, key, &p)) != 0)
		return rc;
	tok = history_write_begin(k->h, key, action);
	rc = distkv_delete(c, p, &o, &r);
	history_write_end(k->h, tok, rc == 0 ? r.tock : 0);
	if (rc == 0)
		*tock = r.tock;
	distkv_set_result_clear(&r);
	distkv_path_free(p);
	return rc;
}

/* delete_tree through a raw request: its reply's tock is the index. */
struct rawres {
	uint64_t tock;
	bool error;
};

static int
raw_cb(void *arg, const uint8_t *msg, size_t len)
{
	struct rawres *r = arg;
	msgpack_unpacked u;
	uint32_t i;

	msgpack_unpacked_init(&u);
	if (msgpack_unpack_next(&u, (const char *)msg, len, NULL) ==
	    MSGPACK_UNPACK_SUCCESS && u.data.type == MSGPACK_OBJECT_MAP) {
		for (i = 0; i < u.data.via.map.size; i++) {
			const msgpack_object *kk = &u.data.via.map.ptr[i].key;
			const msgpack_object *vv = &u.data.via.map.ptr[i].val;

			if (kk->type != MSGPACK_OBJECT_STR)
				continue;
			if (kk->via.str.size == 4 &&
			    memcmp(kk->via.str.ptr, "tock", 4) == 0 &&
			    vv->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
				r->tock = vv->via.u64;
			if (kk->via.str.size == 5 &&
			    memcmp(kk->via.str.ptr, "error", 5) == 0)
				r->error = true;
		}
	}
	msgpack_unpacked_destroy(&u);
	return 0;
}

static int
delete_tree(struct keys *k, distkv *c, const char *key, uint64_t *tock)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	distkv_path *p = NULL;
	struct rawres r = { 0, false };
	size_t i, n;
	void *tok;
	int rc;

	*tock = 0;
	if ((rc = keys_key_path(k, key, &p)) != 0)
		return rc;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 2);
	msgpack_pack_str_with_body(&pk, "action", 6);
	msgpack_pack_str_with_body(&pk, "delete_tree", 11);
	msgpack_pack_str_with_body(&pk, "path", 4);
	n = distkv_path_len(p);
	msgpack_pack_array(&pk, (uint32_t)n);
	for (i = 0; i < n; i++) {
		struct distkv_elem el;

		distkv_path_elem(p, i, &el);
		switch (el.type) {
		case DISTKV_ELEM_STR:
			msgpack_pack_str_with_body(&pk, el.s, el.len);
			break;
		case DISTKV_ELEM_BIN:
			msgpack_pack_bin_with_body(&pk, el.s, el.len);
			break;
		case DISTKV_ELEM_INT:
			msgpack_pack_int64(&pk, el.i);
			break;
		case DISTKV_ELEM_NIL:
			msgpack_pack_nil(&pk);
			break;
		}
	}
	tok = history_write_begin(k->h, key, "delete");
	rc = distkv_request(c, sb.data, sb.size, raw_cb, &r);
	if (rc == 0 && r.error)
		rc = DISTKV_ESERVER;
	/*
	 * The reply's tock is a fresh stamp, above every delete it made but
	 * no event's index: nothing to label or wait for.
	 */
	history_write_end(k->h, tok, 0);
	*tock = r.tock;
	msgpack_sbuffer_destroy(&sb);
	distkv_path_free(p);
	return rc;
}

/* etcd's "[a != b] [c != d]" cause of a failed compare. */
static bool
compare(const struct fields *fl, const struct ent *e, char *cause,
    size_t len)
{
	bool im = !fl->has_prev_index || fl->prev_index == e->tock;
	bool vm = !fl->has_prev_value || (e->text != NULL &&
	    strcmp(fl->prev_value, e->text) == 0);
	const char *cur = e->text != NULL ? e->text : "";

	if (im && vm)
		return true;
	if (!im && vm)
		snprintf(cause, len, "[%" PRIu64 " != %" PRIu64 "]",
		    fl->prev_index, e->tock);
	else if (im && !vm)
		snprintf(cause, len, "[%s != %s]", fl->prev_value, cur);
	else
		snprintf(cause, len, "[%s != %s] [%" PRIu64 " != %" PRIu64 "]",
		    fl->has_prev_value ? fl->prev_value : "", cur,
		    fl->prev_index, e->tock);
	return false;
}

static void
do_put(struct keys *k, distkv *c, const char *key, const struct fields *fl,
    struct keys_resp *rs)
{
	distkv_path *p = NULL;
	const char *action, *val = fl->dir ? NULL : fl->value;
	enum distkv_precond pre;
	char cause[1024], *bad = NULL;
	struct ent e;
	uint64_t tock;
	int rc = 0, tries;
	bool cas = fl->has_prev_index || fl->has_prev_value;

	if (fl->has_prev_exist && !fl->prev_exist)
		action = "create";
	else if (fl->has_prev_exist && !cas)
		action = "update";
	else if (cas)
		action = "compareAndSwap";
	else
		action = "set";
	if ((rc = keys_key_path(k, key, &p)) != 0) {
		keys_reply_error(k, rs, V2E_INVALID_FIELD,
		    "key is not valid UTF-8");
		return;
	}
	memset(&e, 0, sizeof(e));
	for (tries = 0; tries < CAS_RETRIES; tries++) {
		uint64_t idx;

		ent_clear(&e);
		/*
		 * A plain set of a key the mirror knows as a plain value needs
		 * no probe: the write has no precondition, and the mirror
		 * gives its prevNode (history_get_file).  The shape check is
		 * then as fresh as the feed, not the agent: the read-then-write
		 * race of docs/etcd.md ("CAS in a cluster") either way.
		 */
		if (tries == 0 && strcmp(action, "set") == 0 && !fl->dir &&
		    history_get_file(k->h, key, &e.text, &e.tlen, &e.tock,
		    &idx)) {
			e.exists = e.has_value = true;
		} else if ((rc = probe(c, p, &e)) != 0)
			break;
		if (strcmp(action, "create") == 0) {
			if (e.exists) {
				keys_reply_error(k, rs, V2E_NODE_EXIST, key);
				goto out;
			}
			pre = DISTKV_PRE_NEW;
		} else if (strcmp(action, "set") == 0) {
			if (ent_is_dir(&e)) {
				keys_reply_error(k, rs, V2E_NOT_FILE, key);
				goto out;
			}
			pre = DISTKV_PRE_NONE;
		} else {
			/* update and compareAndSwap need the key */
			if (!e.exists) {
				keys_reply_error(k, rs, V2E_KEY_NOT_FOUND, key);
				goto out;
			}
			if (ent_is_dir(&e)) {
				if (strcmp(action, "update") == 0 &&
				    *fl->value == '\0') {
					/* etcd: updating a dir's TTL; no TTLs
					 * here, so nothing changes */
					reply_write(rs, action, key, true,
					    NULL, e.tock, &e, fl->novalue);
					goto out;
				}
				keys_reply_error(k, rs, V2E_NOT_FILE, key);
				goto out;
			}
			if (cas && !compare(fl, &e, cause, sizeof(cause))) {
				keys_reply_error(k, rs, V2E_TEST_FAILED, cause);
				goto out;
			}
			pre = DISTKV_PRE_CHAIN;
			/* update and CAS write plain values, never a dir */
			val = fl->value;
		}
		if (!e.exists) {
			if ((rc = keys_parents_check(k, c, key, &bad)) != 0)
				break;
			if (bad != NULL) {
				keys_reply_error(k, rs, V2E_NOT_DIR, bad);
				goto out;
			}
		}
		rc = write_value(k, c, key, val, pre, &e, action, &tock);
		if (rc == 0) {
			reply_write(rs, action, key, val == NULL, val, tock,
			    &e, fl->novalue);
			goto out;
		}
		if (refused_exists(c, rc)) {
			keys_reply_error(k, rs, V2E_NODE_EXIST, key);
			goto out;
		}
		if (!refused_changed(c, rc))
			break;
		/* changed under us: read again */
	}
	keys_reply_agent_error(k, rs, c, rc);
out:
	free(bad);
	ent_clear(&e);
	distkv_path_free(p);
}

/* POST: a new key below key named by a fresh index (in-order keys). */
static void
do_post(struct keys *k, distkv *c, const char *key, const struct fields *fl,
    struct keys_resp *rs)
{
	distkv_path *p = NULL, *q = NULL;
	struct distkv_entry fresh;
	char *bad = NULL, *child = NULL;
	struct ent e;
	uint64_t tock;
	int rc, tries;

	memset(&e, 0, sizeof(e));
	memset(&fresh, 0, sizeof(fresh));
	if ((rc = keys_key_path(k, key, &p)) != 0) {
		keys_reply_error(k, rs, V2E_INVALID_FIELD, "key is not valid UTF-8");
		return;
	}
	if ((rc = probe(c, p, &e)) != 0)
		goto fail;
	if (e.exists && !ent_is_dir(&e)) {
		keys_reply_error(k, rs, V2E_NOT_DIR, key);
		goto out;
	}
	if (!e.exists && strcmp(key, "/") != 0) {
		if ((rc = keys_parents_check(k, c, key, &bad)) != 0)
			goto fail;
		if (bad != NULL) {
			keys_reply_error(k, rs, V2E_NOT_DIR, bad);
			goto out;
		}
	}
	for (tries = 0; tries < CAS_RETRIES; tries++) {
		/*
		 * The name: a fresh tock of the agent, read as the reply to
		 * a read of a missing entry (over the socket: nchain 1).
		 * Tocks only grow, so names sort in creation order.
		 */
		if ((rc = distkv_path_dup(p, &q)) != 0 ||
		    (rc = distkv_path_push_str(q, "", 0)) != 0)
			goto fail;
		rc = distkv_get(c, q, 1, &fresh);
		distkv_path_free(q);
		q = NULL;
		if (rc != 0 && rc != DISTKV_ENOTFOUND)
			goto fail;
		free(child);
		if (asprintf(&child, "%s/%020" PRIu64,
		    strcmp(key, "/") == 0 ? "" : key, fresh.tock) < 0) {
			child = NULL;
			rc = -ENOMEM;
			goto fail;
		}
		distkv_entry_clear(&fresh);
		rc = write_value(k, c, child, fl->dir ? NULL : fl->value,
		    DISTKV_PRE_NEW, NULL, "create", &tock);
		if (rc == 0) {
			reply_write(rs, "create", child, fl->dir,
			    fl->dir ? NULL : fl->value, tock, NULL,
			    fl->novalue);
			goto out;
		}
		if (!refused_exists(c, rc))
			break;
	}
fail:
	keys_reply_agent_error(k, rs, c, rc);
out:
	distkv_entry_clear(&fresh);
	free(child);
	free(bad);
	ent_clear(&e);
	distkv_path_free(p);
}

static void
do_delete(struct keys *k, distkv *c, const char *key, const struct fields *fl,
    struct keys_resp *rs)
{
	distkv_path *p = NULL;
	char cause[1024];
	bool cas = fl->has_prev_index || fl->has_prev_value;
	bool dir = fl->dir || fl->recursive;
	struct ent e;
	uint64_t tock;
	int rc = 0, tries;

	memset(&e, 0, sizeof(e));
	if ((rc = keys_key_path(k, key, &p)) != 0) {
		keys_reply_error(k, rs, V2E_INVALID_FIELD, "key is not valid UTF-8");
		return;
	}
	for (tries = 0; tries < CAS_RETRIES; tries++) {
		ent_clear(&e);
		if ((rc = probe(c, p, &e)) != 0)
			break;
		if (!e.exists) {
			keys_reply_error(k, rs, V2E_KEY_NOT_FOUND, key);
			goto out;
		}
		if (cas) {
			if (ent_is_dir(&e)) {
				keys_reply_error(k, rs, V2E_NOT_FILE, key);
				goto out;
			}
			if (!compare(fl, &e, cause, sizeof(cause))) {
				keys_reply_error(k, rs, V2E_TEST_FAILED, cause);
				goto out;
			}
			rc = delete_value(k, c, key, DISTKV_PRE_CHAIN, &e,
			    "compareAndDelete", &tock);
		} else if (ent_is_dir(&e)) {
			if (!dir) {
				keys_reply_error(k, rs, V2E_NOT_FILE, key);
				goto out;
			}
			if (e.children && !fl->recursive) {
				keys_reply_error(k, rs, V2E_DIR_NOT_EMPTY, key);
				goto out;
			}
			if (e.children)
				rc = delete_tree(k, c, key, &tock);
			else
				rc = delete_value(k, c, key, DISTKV_PRE_CHAIN,
				    &e, "delete", &tock);
		} else {
			rc = delete_value(k, c, key, DISTKV_PRE_CHAIN, &e,
			    "delete", &tock);
		}
		if (rc == 0) {
			if (e.children && !e.has_value)
				e.tock = tock;	/* no own index to show */
			reply_write(rs, cas ? "compareAndDelete" : "delete",
			    key, ent_is_dir(&e), NULL, tock, &e, false);
			goto out;
		}
		if (!refused_changed(c, rc))
			break;
	}
	keys_reply_agent_error(k, rs, c, rc);
out:
	ent_clear(&e);
	distkv_path_free(p);
}

static void
do_wait(struct keys *k, const char *key, const struct fields *fl,
    struct keys_resp *rs)
{
	char *cause = NULL;
	int rc;

	rc = history_watch(k->h, key, fl->recursive, fl->wait_index,
	    &rs->body, &rs->blen, &rs->waiter, &rs->index, &cause);
	if (rc == V2E_EVENT_INDEX_CLEARED) {
		keys_reply_error(k, rs, rc, cause);
		rs->index = history_index(k->h);
	} else if (rc != 0) {
		keys_reply_error(k, rs, V2E_RAFT_INTERNAL, "out of memory");
	} else {
		rs->status = 200;
	}
	free(cause);
}

/*
 * What needs no agent round trip: bad fields, long-polls, writes to the
 * root, plain values the mirror holds.  True when rs is filled.
 */
static bool
answer_local(struct keys *k, const struct keys_req *rq, struct fields *fl,
    struct keys_resp *rs)
{
	char cause[128];
	bool get = strcmp(rq->method, "GET") == 0 ||
	    strcmp(rq->method, "HEAD") == 0;
	int rc;

	memset(rs, 0, sizeof(*rs));
	if ((rc = fields_parse(rq->form, rq->method, fl, cause,
	    sizeof(cause))) != 0) {
		keys_reply_error(k, rs, rc, cause);
		return true;
	}
	if (get && fl->wait) {
		do_wait(k, rq->key, fl, rs);
		return true;
	}
	if (!get && strcmp(rq->key, "/") == 0 &&
	    strcmp(rq->method, "POST") != 0) {
		keys_reply_error(k, rs, V2E_ROOT_RONLY, "/");
		return true;
	}
	return get && keys_get_from_mirror(k, rq->key, rs);
}

/* ---- plain sets without a worker ---- */

struct put_async {
	struct keys *k;
	struct keys_resp *rs;
	struct keys_async cb;
	char *key, *value;
	bool novalue;
	struct ent prev;
};

static void
put_async_free(struct put_async *x)
{
	ent_clear(&x->prev);
	free(x->key);
	free(x->value);
	free(x);
}

static void
put_async_done(void *arg, int rc, uint64_t tock)
{
	struct put_async *x = arg;
	struct keys_async cb = x->cb;

	if (rc == 0)
		reply_write(x->rs, "set", x->key, false, x->value, tock,
		    &x->prev, x->novalue);
	else
		keys_reply_agent_error(x->k, x->rs, NULL, rc);
	put_async_free(x);
	cb.resume(cb.arg);
}

int
keys_put_async(struct keys *k, const struct keys_req *rq,
    struct keys_resp *rs, const struct keys_async *cb)
{
	struct distkv_value v;
	struct put_async *x;
	struct fields fl;
	distkv_path *p = NULL;
	char cause[128];
	uint64_t idx;
	int rc;

	/* only what do_put does in one write: a set of a known plain value */
	if (strcmp(rq->method, "PUT") != 0 || strcmp(rq->key, "/") == 0 ||
	    fields_parse(rq->form, rq->method, &fl, cause, sizeof(cause)) !=
	    0 || fl.dir || fl.has_prev_exist || fl.has_prev_index ||
	    fl.has_prev_value)
		return KEYS_ASYNC_NO;
	if ((x = calloc(1, sizeof(*x))) == NULL)
		return KEYS_ASYNC_NO;
	x->k = k;
	x->rs = rs;
	x->cb = *cb;
	x->novalue = fl.novalue;
	memset(&v, 0, sizeof(v));
	if (!history_get_file(k->h, rq->key, &x->prev.text, &x->prev.tlen,
	    &x->prev.tock, &idx) || (x->key = strdup(rq->key)) == NULL ||
	    (x->value = strdup(fl.value)) == NULL ||
	    keys_key_path(k, rq->key, &p) != 0 ||
	    distkv_value_from_str(&v, fl.value, strlen(fl.value)) != 0) {
		distkv_path_free(p);
		put_async_free(x);
		return KEYS_ASYNC_NO;
	}
	x->prev.exists = x->prev.has_value = true;
	memset(rs, 0, sizeof(*rs));
	cb->suspend(cb->arg);
	rc = history_async_set(k->h, rq->key, "set", p, v.data, v.len,
	    put_async_done, x);
	distkv_value_clear(&v);
	distkv_path_free(p);
	if (rc != 0) {
		put_async_free(x);
		return KEYS_ASYNC_SUSPENDED;
	}
	return KEYS_ASYNC_STARTED;
}

bool
keys_answer_local(struct keys *k, const struct keys_req *rq,
    struct keys_resp *rs)
{
	struct fields fl;

	return answer_local(k, rq, &fl, rs);
}

void
keys_handle(struct keys *k, const struct keys_req *rq, struct keys_resp *rs)
{
	struct fields fl;
	distkv *c = NULL;
	bool get = strcmp(rq->method, "GET") == 0 ||
	    strcmp(rq->method, "HEAD") == 0;
	int rc;

	if (answer_local(k, rq, &fl, rs))
		return;
	if ((rc = conn_get(k, &c)) != 0) {
		keys_reply_agent_error(k, rs, NULL, rc);
		return;
	}
	if (get)
		keys_do_get(k, c, rq->key, fl.recursive, rs);
	else if (strcmp(rq->method, "PUT") == 0)
		do_put(k, c, rq->key, &fl, rs);
	else if (strcmp(rq->method, "POST") == 0)
		do_post(k, c, rq->key, &fl, rs);
	else
		do_delete(k, c, rq->key, &fl, rs);
}
