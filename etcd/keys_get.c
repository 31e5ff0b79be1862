/*
 * keys_get: GET of the v2 keys API (see keys.h): a plain value from the
 * history's mirror, anything else as a listing built from one walk of the
 * agent's tree.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys_impl.h"
#include "v2err.h"
#include "v2node.h"

struct gnode {
	char *name;
	bool has_value, marker;
	char *text;
	size_t tlen;
	uint64_t tock, min_below;
	struct gnode *kids;
	size_t nk, capk;
};

static void
gnode_free(struct gnode *g)
{
	size_t i;

	for (i = 0; i < g->nk; i++)
		gnode_free(&g->kids[i]);
	free(g->kids);
	free(g->name);
	free(g->text);
}

static struct gnode *
gnode_child(struct gnode *g, const char *s, size_t len)
{
	size_t i;
	struct gnode *n;

	for (i = 0; i < g->nk; i++)
		if (strlen(g->kids[i].name) == len &&
		    memcmp(g->kids[i].name, s, len) == 0)
			return &g->kids[i];
	if (g->nk == g->capk) {
		size_t cap = g->capk ? g->capk * 2 : 4;
		struct gnode *kk = realloc(g->kids, cap * sizeof(*kk));

		if (kk == NULL)
			return NULL;
		g->kids = kk;
		g->capk = cap;
	}
	n = &g->kids[g->nk];
	memset(n, 0, sizeof(*n));
	if ((n->name = strndup(s, len)) == NULL)
		return NULL;
	g->nk++;
	return n;
}

struct walk {
	struct gnode root;
	size_t base;		/* path length of the requested key */
	int err;
};

static int
walk_cb(void *arg, const struct distkv_entry *it)
{
	struct walk *w = arg;
	struct gnode *g = &w->root;
	size_t n = distkv_path_len(it->path), i;
	struct distkv_elem el;

	if (distkv_value_is_nil(it->value.data, it->value.len))
		return 0;
	/* entries below a non-string element are not etcd keys: skip */
	for (i = w->base; i < n; i++)
		if (distkv_path_elem(it->path, i, &el) != 0 ||
		    el.type != DISTKV_ELEM_STR || el.len == 0 ||
		    memchr(el.s, '/', el.len) != NULL ||
		    memchr(el.s, '\0', el.len) != NULL)
			return 0;
	for (i = w->base; i < n; i++) {
		if (g->min_below == 0 || it->tock < g->min_below)
			g->min_below = it->tock;
		distkv_path_elem(it->path, i, &el);
		if ((g = gnode_child(g, el.s, el.len)) == NULL) {
			w->err = -ENOMEM;
			return 1;
		}
	}
	g->has_value = true;
	g->tock = it->tock;
	if (v2node_value(it->value.data, it->value.len, &g->marker, &g->text,
	    &g->tlen) != 0) {
		w->err = -EPROTO;
		return 1;
	}
	return 0;
}

static int
gnode_cmp(const void *a, const void *b)
{
	return strcmp(((const struct gnode *)a)->name,
	    ((const struct gnode *)b)->name);
}

static bool
gnode_dir(const struct gnode *g)
{
	return g->marker || g->nk > 0;
}

/*
 * A directory's index: its marker's tock, else (a directory that only
 * exists through the keys below it) the smallest tock below it.
 */
static uint64_t
gnode_index(const struct gnode *g)
{
	return g->has_value ? g->tock : g->min_below;
}

static json_t *
gnode_json(struct gnode *g, const char *key, bool top, bool recursive,
    uint64_t *maxidx)
{
	uint64_t idx = gnode_index(g);
	json_t *o;
	size_t i;

	if (idx > *maxidx)
		*maxidx = idx;
	o = v2node_new(strcmp(key, "/") == 0 ? NULL : key, gnode_dir(g),
	    g->text, g->tlen, idx, idx);
	if (o == NULL || !gnode_dir(g) || (!top && !recursive))
		return o;
	if (g->nk > 1)
		qsort(g->kids, g->nk, sizeof(*g->kids), gnode_cmp);
	if (g->nk > 0) {
		json_t *a = json_array();
		size_t kl = strlen(key);

		for (i = 0; i < g->nk; i++) {
			char *ck;

			if (v2node_hidden(g->kids[i].name))
				continue;
			if ((ck = malloc(kl + strlen(g->kids[i].name) + 2)) ==
			    NULL)
				continue;
			sprintf(ck, "%s/%s", kl == 1 ? "" : key,
			    g->kids[i].name);
			json_array_append_new(a, gnode_json(&g->kids[i], ck,
			    false, recursive, maxidx));
			free(ck);
		}
		if (json_array_size(a) > 0)
			json_object_set_new(o, "nodes", a);
		else
			json_decref(a);
	}
	return o;
}

/* A plain value: from the mirror, without asking the agent. */
bool
keys_get_from_mirror(struct keys *k, const char *key, struct keys_resp *rs)
{
	char *text;
	size_t tlen;
	uint64_t tock, idx;
	json_t *o;

	if (!history_get_file(k->h, key, &text, &tlen, &tock, &idx))
		return false;
	o = json_object();
	json_object_set_new(o, "action", json_string("get"));
	json_object_set_new(o, "node", v2node_new(key, false, text, tlen,
	    tock, tock));
	free(text);
	keys_reply_json(rs, 200, o, idx > tock ? idx : tock);
	return true;
}

void
keys_do_get(struct keys *k, distkv *c, const char *key, bool recursive,
    struct keys_resp *rs)
{
	struct walk w;
	distkv_path *p = NULL;
	uint64_t maxidx = 0, hidx;
	json_t *o;
	int rc;

	memset(&w, 0, sizeof(w));
	if (keys_get_from_mirror(k, key, rs))
		return;
	if ((rc = keys_key_path(k, key, &p)) != 0) {
		keys_reply_error(k, rs, V2E_KEY_NOT_FOUND, key);
		return;
	}
	w.base = distkv_path_len(p);
	w.root.name = NULL;
	rc = distkv_get_tree(c, p, NULL, walk_cb, &w);
	distkv_path_free(p);
	if (rc == 0 && w.err != 0)
		rc = w.err;
	if (rc != 0) {
		gnode_free(&w.root);
		keys_reply_agent_error(k, rs, c, rc);
		return;
	}
	if (!w.root.has_value && w.root.nk == 0 && strcmp(key, "/") != 0) {
		char *bad = NULL;

		/* below a value etcd says "Not a directory", naming it */
		gnode_free(&w.root);
		if (keys_parents_check(k, c, key, &bad) == 0 && bad != NULL)
			keys_reply_error(k, rs, V2E_NOT_DIR, bad);
		else
			keys_reply_error(k, rs, V2E_KEY_NOT_FOUND, key);
		free(bad);
		return;
	}
	if (strcmp(key, "/") == 0) {
		/* etcd's root is always a directory without indexes */
		w.root.marker = true;
		w.root.has_value = false;
		w.root.min_below = 0;
	}
	o = json_object();
	json_object_set_new(o, "action", json_string("get"));
	json_object_set_new(o, "node", gnode_json(&w.root, key, true,
	    recursive, &maxidx));
	gnode_free(&w.root);
	hidx = history_index(k->h);
	keys_reply_json(rs, 200, o, hidx > maxidx ? hidx : maxidx);
}
