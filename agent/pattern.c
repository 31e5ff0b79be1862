/* pattern: see pattern.h. */
#include <string.h>

#include "pattern.h"
#include "tree.h"

static const uint8_t plus[2] = { 0xa1, '+' }, hash[2] = { 0xa1, '#' };

void
pattern_init(struct pattern_pos *p, struct tree *t, struct entry *top)
{
	p->t = t;
	p->n = 0;
	p->overflow = false;
	if (top != NULL) {
		p->c[0].node = top;
		p->c[0].keep = false;
		p->n = 1;
	}
}

static void
pos_add(struct pattern_pos *p, struct entry *node, bool keep)
{
	if (node == NULL)
		return;
	for (unsigned i = 0; i < p->n; i++)
		if (p->c[i].node == node && p->c[i].keep == keep)
			return;
	if (p->n == PATTERN_MAX_CANDS) {
		p->overflow = true;
		return;
	}
	p->c[p->n].node = node;
	p->c[p->n].keep = keep;
	p->n++;
}

void
pattern_step(struct pattern_pos *p, const uint8_t *name, size_t len)
{
	struct {
		struct entry *node;
		bool keep;
	} old[PATTERN_MAX_CANDS];
	unsigned n = p->n;
	bool is_nil = len == 1 && name[0] == 0xc0;

	memcpy(old, p->c, sizeof(old[0]) * n);
	p->n = 0;
	/* this order is the depth-first order of spec §5.3 (pattern.h) */
	for (unsigned i = 0; i < n; i++) {
		struct entry *node = old[i].node;

		pos_add(p, tree_child(p->t, node, name, len, false), false);
		if (is_nil)
			continue;	/* wildcards never match the meta root */
		pos_add(p, tree_child(p->t, node, plus, sizeof(plus), false),
		    false);
		pos_add(p, tree_child(p->t, node, hash, sizeof(hash), false),
		    true);
		if (old[i].keep)
			pos_add(p, node, true);
	}
}

struct entry *
pattern_result(const struct pattern_pos *p)
{
	for (unsigned i = 0; i < p->n; i++)
		if (entry_has_value(p->c[i].node))
			return p->c[i].node;
	return NULL;
}

struct entry *
pattern_lookup(struct tree *t, struct entry *top, const struct entry *e,
    bool *overflow)
{
	const struct entry *chain[PROTO_MAX_PATH_DEPTH + 2];
	struct pattern_pos p;
	unsigned n = 0;

	if (overflow != NULL)
		*overflow = false;
	if (top == NULL)
		return NULL;
	for (const struct entry *x = e; x != NULL && x->parent != NULL &&
	    n < sizeof(chain) / sizeof(chain[0]); x = x->parent)
		chain[n++] = x;
	pattern_init(&p, t, top);
	while (n-- > 0 && p.n > 0)
		pattern_step(&p, entry_name(chain[n]),
		    entry_name_len(chain[n]));
	if (overflow != NULL)
		*overflow = p.overflow;
	return pattern_result(&p);
}

static bool
elem_is(const struct entry *e, const uint8_t *name)
{
	return entry_name_len(e) == 2 && memcmp(entry_name(e), name, 2) == 0;
}

const char *
pattern_invalid(const struct entry *top, const struct entry *e, bool whole)
{
	for (const struct entry *x = e; x != NULL && x != top; x = x->parent) {
		const uint8_t *nm = entry_name(x);
		size_t nl = entry_name_len(x), hdr = 0, sl = 0;

		if (nl > 0 && (nm[0] & 0xe0) == 0xa0) {
			hdr = 1;
			sl = nm[0] & 0x1f;
		} else if (nl > 1 && nm[0] == 0xd9) {
			hdr = 2;
			sl = nm[1];
		} else if (nl > 2 && nm[0] == 0xda) {
			hdr = 3;
			sl = (size_t)nm[1] << 8 | nm[2];
		}
		if (whole && hdr > 0 && sl > 1 && hdr + sl <= nl &&
		    (memchr(nm + hdr, '#', sl) != NULL ||
		    memchr(nm + hdr, '+', sl) != NULL))
			return "# and + must be a whole path element";
		if (elem_is(x, hash) && x->parent != NULL &&
		    x->parent != top && elem_is(x->parent, hash))
			return "# directly after # matches nothing more: "
			    "use one #";
	}
	return NULL;
}
