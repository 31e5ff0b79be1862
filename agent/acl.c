/* acl: see acl.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acl.h"
#include "agent.h"
#include "distkv.h"
#include "proto.h"
#include "tree.h"
#include "userrec.h"

static const char acl_letters[] = "arwcdxen";

static const char *
letter_meaning(char l)
{
	switch (l) {
	case 'a': return "read the ACL";
	case 'r': return "read the value";
	case 'w': return "change the value";
	case 'c': return "create a value";
	case 'd': return "delete the value";
	case 'x': return "step to a child entry";
	case 'e': return "enumerate the children";
	case 'n': return "create a child entry";
	default: return "?";
	}
}

static uint16_t
letter_bit(char l)
{
	const char *p = l != 0 ? strchr(acl_letters, l) : NULL;

	return p != NULL ? (uint16_t)(1u << (p - acl_letters)) : 0;
}

/* The text of a canonical msgpack str value, or false if it is none. */
static bool
value_str(const uint8_t *v, size_t len, const char **s, size_t *slen)
{
	size_t hdr, n;

	if (v == NULL || len == 0)
		return false;
	if ((v[0] & 0xe0) == 0xa0) {
		hdr = 1;
		n = v[0] & 0x1f;
	} else if (v[0] == 0xd9 && len >= 2) {
		hdr = 2;
		n = v[1];
	} else if (v[0] == 0xda && len >= 3) {
		hdr = 3;
		n = (size_t)v[1] << 8 | v[2];
	} else
		return false;
	if (hdr + n != len)
		return false;
	*s = (const char *)v + hdr;
	*slen = n;
	return true;
}

/* Child of e named by the string s (canonical element bytes). */
static struct entry *
child_named(struct agent *a, struct entry *e, const char *s, size_t len)
{
	uint8_t buf[ACL_MAX_NAME + 9];
	uint8_t *o;

	if (e == NULL || len > ACL_MAX_NAME)
		return NULL;
	o = proto_put_strhdr(buf, false, len);
	memcpy(o, s, len);
	return tree_child(&a->tree, e, buf, (size_t)(o - buf) + len, false);
}

static bool
name_is(const struct entry *e, const char *s)
{
	size_t len = strlen(s);
	const uint8_t *n = entry_name(e);

	return len < 32 && entry_name_len(e) == len + 1 &&
	    n[0] == (0xa0 | len) && memcmp(n + 1, s, len) == 0;
}

void
acl_pos_init(struct acl_pos *p, struct agent *a, const struct acl_user *u)
{
	static const uint8_t nil = 0xc0;
	struct entry *top;

	p->a = a;
	p->u = u;
	p->blocked = 0;
	top = tree_child(&a->tree, a->tree.root, &nil, 1, false);
	top = child_named(a, top, "acl", 3);
	top = child_named(a, top, u->name, u->name_len);
	pattern_init(&p->pat, &a->tree, top);
}

void
acl_step(struct acl_pos *p, const uint8_t *name, size_t len)
{
	pattern_step(&p->pat, name, len);
}

static const struct entry *
pos_result(const struct acl_pos *p)
{
	return pattern_result(&p->pat);
}

bool
acl_result(const struct acl_pos *p, const char **letters, size_t *len)
{
	const struct entry *r = pos_result(p);

	if (r == NULL ||
	    !value_str(entry_value(r), entry_value_len(r), letters, len)) {
		*letters = "";
		*len = 0;
		return r != NULL;
	}
	return true;
}

bool
acl_allows(const struct acl_pos *p, char letter)
{
	const struct entry *r;
	const char *s;
	size_t n;

	if ((p->blocked & letter_bit(letter)) != 0 || p->pat.overflow)
		return false;
	if ((r = pos_result(p)) == NULL)
		return !p->a->cfg.acl_default_deny;
	/* a value that is no string allows nothing (fail closed: writes
	 * are checked, but a replicated or loaded entry is not) */
	if (!value_str(entry_value(r), entry_value_len(r), &s, &n))
		return false;
	return memchr(s, letter, n) != NULL;
}

void
acl_block(struct acl_pos *p, char letter)
{
	p->blocked |= letter_bit(letter);
}

/* ---- walking a request's path ---- */

/* The elements walked so far, for the refusal text. */
struct walked {
	const uint8_t *elem[PROTO_MAX_PATH_DEPTH * 2 + 2];
	size_t len[PROTO_MAX_PATH_DEPTH * 2 + 2];
	unsigned n;
};

static void
walked_add(struct walked *w, const uint8_t *p, size_t len)
{
	if (w->n < sizeof(w->elem) / sizeof(w->elem[0])) {
		w->elem[w->n] = p;
		w->len[w->n++] = len;
	}
}

/* The first n walked elements in the CLI's path syntax. */
static void
walked_format(const struct walked *w, unsigned n, char *out, size_t cap)
{
	distkv_path *p = NULL;
	char *txt = NULL;
	msgpack_zone zone;
	msgpack_object o;

	msgpack_zone_init(&zone, 256);
	snprintf(out, cap, "?");
	if (distkv_path_new(&p) != 0)
		goto out;
	for (unsigned i = 0; i < n; i++) {
		if (proto_unpack(w->elem[i], w->len[i], &zone, &o) != 0)
			goto out;
		if (o.type == MSGPACK_OBJECT_STR)
			distkv_path_push_str(p, o.via.str.ptr, o.via.str.size);
		else if (o.type == MSGPACK_OBJECT_BIN)
			distkv_path_push_bin(p, o.via.bin.ptr, o.via.bin.size);
		else if (o.type == MSGPACK_OBJECT_POSITIVE_INTEGER)
			distkv_path_push_int(p, (int64_t)o.via.u64);
		else if (o.type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
			distkv_path_push_int(p, o.via.i64);
		else
			distkv_path_push_nil(p);
	}
	if (n == 0)
		snprintf(out, cap, "the root");
	else if (distkv_path_format(p, &txt) == 0)
		snprintf(out, cap, "%s", txt);
out:
	free(txt);
	distkv_path_free(p);
	msgpack_zone_destroy(&zone);
}

static bool
refuse(const struct acl_pos *p, const struct walked *w, unsigned at,
    char letter, char *err, size_t cap)
{
	char where[512], child[512];

	walked_format(w, at, where, sizeof(where));
	if (letter == 'x' || letter == 'n') {
		walked_format(w, at + 1, child, sizeof(child));
		snprintf(err, cap, "Access denied: ACL %s does not allow '%c' "
		    "(%s) at %s, on the way to %s", p->u->name, letter,
		    letter_meaning(letter), where, child);
	} else
		snprintf(err, cap, "Access denied: ACL %s does not allow '%c' "
		    "(%s) at %s", p->u->name, letter, letter_meaning(letter),
		    where);
	proto_utf8_sanitize(err, strlen(err));
	return false;
}

/* Step from cur (may be NULL: absent) into the child named name. */
static bool
walk_step(struct acl_pos *p, struct walked *w, struct entry **cur,
    const uint8_t *name, size_t len, bool check_new, bool *stop, char *err,
    size_t cap)
{
	struct entry *child = *cur != NULL ?
	    tree_child(&p->a->tree, *cur, name, len, false) : NULL;
	char l = child != NULL ? 'x' : 'n';

	walked_add(w, name, len);
	if (child == NULL && !check_new) {
		*stop = true;
		return true;
	}
	if (!acl_allows(p, l))
		return refuse(p, w, w->n - 1, l, err, cap);
	acl_step(p, name, len);
	*cur = child;
	return true;
}

static bool
walk_ancestors(struct acl_pos *p, struct walked *w, struct entry *base,
    char *err, size_t cap)
{
	struct entry *chain[PROTO_MAX_PATH_DEPTH + 2];
	unsigned n = 0;
	struct entry *cur = p->a->tree.root;
	bool stop = false;

	for (struct entry *e = base; e != NULL && e->parent != NULL &&
	    n < sizeof(chain) / sizeof(chain[0]); e = e->parent)
		chain[n++] = e;
	while (n-- > 0)
		if (!walk_step(p, w, &cur, entry_name(chain[n]),
		    entry_name_len(chain[n]), false, &stop, err, cap))
			return false;
	return true;
}

static bool
check_target(struct acl_pos *p, const struct walked *w,
    const struct entry *target, char letter, char *err, size_t cap)
{
	if (letter == 'W')
		letter = target != NULL && entry_has_value(target) ? 'w' : 'c';
	if (letter == 0 || acl_allows(p, letter))
		return true;
	return refuse(p, w, w->n, letter, err, cap);
}

bool
acl_check_path(struct agent *a, const struct acl_user *u, struct entry *base,
    const msgpack_object *path, bool check_new, char letter,
    struct acl_pos *pos, char *err, size_t cap)
{
	struct acl_pos local, *p = pos != NULL ? pos : &local;
	static struct walked w;	/* large; the agent is single-threaded */
	/* every element's canonical bytes, kept for the refusal text */
	static uint8_t buf[PROTO_MAX_PATH_BYTES + 9 * PROTO_MAX_PATH_DEPTH];
	size_t used = 0;
	struct entry *cur = base;
	bool stop = false;

	acl_pos_init(p, a, u);
	w.n = 0;
	if (!walk_ancestors(p, &w, base, err, cap))
		return false;
	for (uint32_t i = 0; path->type == MSGPACK_OBJECT_ARRAY &&
	    i < path->via.array.size; i++) {
		const msgpack_object *o = &path->via.array.ptr[i];
		int n;

		/* validated by req_path: fits, but stay safe */
		if (sizeof(buf) - used < 9 + (o->type == MSGPACK_OBJECT_STR ?
		    o->via.str.size : o->type == MSGPACK_OBJECT_BIN ?
		    o->via.bin.size : 0))
			return refuse(p, &w, w.n, 'x', err, cap);
		if ((n = proto_put_path_elem(buf + used, o, true)) < 0)
			return refuse(p, &w, w.n, 'x', err, cap);
		if (!walk_step(p, &w, &cur, buf + used, (size_t)n, check_new,
		    &stop, err, cap))
			return false;
		used += (size_t)n;
		if (stop)
			return true;	/* absent: nothing to check */
	}
	return check_target(p, &w, cur, letter, err, cap);
}

bool
acl_check_entry(struct agent *a, const struct acl_user *u, struct entry *e,
    char letter, char *err, size_t cap)
{
	struct acl_pos p;
	static struct walked w;

	acl_pos_init(&p, a, u);
	w.n = 0;
	if (!walk_ancestors(&p, &w, e, err, cap))
		return false;
	return check_target(&p, &w, e, letter, err, cap);
}

/* Position p (at base) down to e's parent, stepping into e: false if an
 * entry on the way lacks 'e' (or 'x' when need_x); a missing 'x' blocks
 * 'r' below otherwise. */
static bool
walk_below(struct acl_pos *p, struct entry *base, struct entry *e,
    bool need_x)
{
	struct entry *chain[PROTO_MAX_PATH_DEPTH + 2];
	unsigned n = 0;

	for (struct entry *x = e; x != base && x != NULL &&
	    n < sizeof(chain) / sizeof(chain[0]); x = x->parent)
		chain[n++] = x;
	while (n-- > 0) {
		if (!acl_allows(p, 'e') || (need_x && !acl_allows(p, 'x')))
			return false;
		if (!acl_allows(p, 'x'))
			acl_block(p, 'r');
		acl_step(p, entry_name(chain[n]), entry_name_len(chain[n]));
	}
	return true;
}

/* The position at base (its walk from the root was checked when the
 * request started); false if that no longer passes. */
static bool
pos_at(struct acl_pos *p, struct agent *a, const struct acl_user *u,
    struct entry *base)
{
	static struct walked w;
	char err[8];

	acl_pos_init(p, a, u);
	w.n = 0;
	return walk_ancestors(p, &w, base, err, sizeof(err));
}

enum acl_view
acl_view(struct agent *a, const struct acl_user *u, struct entry *base,
    struct entry *e)
{
	struct acl_pos p;

	if (!pos_at(&p, a, u, base) || !walk_below(&p, base, e, false))
		return ACL_HIDE;
	return acl_allows(&p, 'r') ? ACL_FULL : ACL_NO_VALUE;
}

bool
acl_may_delete(struct agent *a, const struct acl_user *u, struct entry *base,
    struct entry *e)
{
	struct acl_pos p;

	return pos_at(&p, a, u, base) && walk_below(&p, base, e, true) &&
	    acl_allows(&p, 'd');
}

/* ---- writes and bindings ---- */

const char *
acl_entry_invalid(const struct entry *e, const uint8_t *value, size_t len)
{
	const struct entry *x, *top = NULL;
	const char *s, *why;
	size_t n;

	/* (nil, "acl", NAME, ...): find the "acl" entry below the meta root */
	if (!entry_under_meta(e))
		return NULL;
	for (x = e; x != NULL && x->depth > 2; x = x->parent)
		;
	if (x == NULL || x->depth != 2 || x->parent->depth != 1 ||
	    entry_name_len(x->parent) != 1 || entry_name(x->parent)[0] != 0xc0 ||
	    !name_is(x, "acl"))
		return NULL;		/* not an ACL */
	top = x;
	if (e == top)
		return value == NULL ? NULL :
		    "(nil, acl) holds the ACLs and has no value";
	for (x = e; x->depth > 3; x = x->parent)
		;
	if ((why = pattern_invalid(x, e, true)) != NULL)
		return strncmp(why, "# and", 5) == 0 ?
		    "In an ACL pattern, # and + must be a whole path element" :
		    "In an ACL pattern, # directly after # matches nothing "
		    "more: use one #";
	if (value == NULL)
		return NULL;
	if (!value_str(value, len, &s, &n))
		return "An ACL entry's value must be a string of the letters "
		    "arwcdxen";
	for (size_t i = 0; i < n; i++)
		if (s[i] == 0 || strchr(acl_letters, s[i]) == NULL)
			return "An ACL entry's value must be a string of the "
			    "letters arwcdxen";
	return NULL;
}

void
acl_user_bind(struct acl_user *u, const struct entry *rec)
{
	size_t len;

	memset(u, 0, sizeof(*u));
	if (!userrec_binding(rec, "acl", u->name, sizeof(u->name), &len) ||
	    strcmp(u->name, "*") == 0) {
		memset(u, 0, sizeof(*u));	/* unrestricted */
		return;
	}
	u->restricted = true;
	u->name_len = (uint16_t)len;
}
