/* watch: see watch.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "handlers.h"
#include "log.h"
#include "server.h"
#include "tree.h"
#include "watch.h"

struct watch {
	struct task task;		/* first: tasks are cast back */
	struct entry *entry;
	struct watch_opts o;
	bool fetching;
	uint64_t snap_tock;		/* fetch sends entries older than this */
	struct tree_walk walk;
	const struct entry *last;	/* path shortener state */
	struct watch *enext, *eprev;	/* the entry's, from its watch_head */
};

/* A watched entry and the first of its watches. */
struct watch_head {
	const struct entry *e;		/* NULL: a free slot */
	struct watch *first;
};

static size_t
table_home(const struct watch_table *t, const struct entry *e)
{
	/* entries are 8-aligned: the multiply spreads the other bits */
	return (size_t)(((uint64_t)(uintptr_t)e * 0x9e3779b97f4a7c15ULL) >>
	    32) & (t->cap - 1);
}

static struct watch_head *
table_find(const struct watch_table *t, const struct entry *e)
{
	if (t->cap == 0)
		return NULL;
	for (size_t i = table_home(t, e);; i = (i + 1) & (t->cap - 1)) {
		if (t->slot[i].e == e)
			return &t->slot[i];
		if (t->slot[i].e == NULL)
			return NULL;
	}
}

/* e's head, made (no watch yet) if e has none; NULL if out of memory. */
static struct watch_head *
table_get(struct watch_table *t, const struct entry *e)
{
	struct watch_head *h = table_find(t, e);
	size_t i;

	if (h != NULL)
		return h;
	if ((t->n + 1) * 2 > t->cap) {
		struct watch_table old = *t;
		size_t cap = t->cap ? t->cap * 2 : 16;

		if ((t->slot = calloc(cap, sizeof(*t->slot))) == NULL) {
			*t = old;
			return NULL;
		}
		t->cap = cap;
		for (size_t j = 0; j < old.cap; j++)
			if (old.slot[j].e != NULL) {
				for (i = table_home(t, old.slot[j].e);
				    t->slot[i].e != NULL; i = (i + 1) & (cap - 1))
					;
				t->slot[i] = old.slot[j];
			}
		free(old.slot);
	}
	for (i = table_home(t, e); t->slot[i].e != NULL;
	    i = (i + 1) & (t->cap - 1))
		;
	t->slot[i].e = e;
	t->slot[i].first = NULL;
	t->n++;
	return &t->slot[i];
}

/* Empty h's slot; the slots after it move back (no tombstones). */
static void
table_remove(struct watch_table *t, struct watch_head *h)
{
	size_t mask = t->cap - 1, hole = (size_t)(h - t->slot), i = hole;

	for (;;) {
		size_t home;

		i = (i + 1) & mask;
		if (t->slot[i].e == NULL)
			break;
		home = table_home(t, t->slot[i].e);
		/* it may fill the hole if its home is not in (hole, i] */
		if (((i - home) & mask) >= ((i - hole) & mask)) {
			t->slot[hole] = t->slot[i];
			hole = i;
		}
	}
	t->slot[hole].e = NULL;
	t->slot[hole].first = NULL;
	t->n--;
}

void
watch_table_fini(struct watch_table *t)
{
	free(t->slot);
	memset(t, 0, sizeof(*t));
}

static void
watch_unlink(struct watch *w)
{
	struct watch_table *t = &conn_agent(w->task.conn)->watched;

	if (w->eprev != NULL)
		w->eprev->enext = w->enext;
	else {
		struct watch_head *h = table_find(t, w->entry);

		h->first = w->enext;
		if (h->first == NULL) {
			table_remove(t, h);
			w->entry->watched = false;
		}
	}
	if (w->enext != NULL)
		w->enext->eprev = w->eprev;
	w->enext = w->eprev = NULL;
}

static void
watch_free(struct task *t)
{
	struct watch *w = (struct watch *)t;

	watch_unlink(w);
	conn_agent(t->conn)->watches--;
	free(w);
}

static void
watch_abort_overflow(struct watch *w)
{
	log_warn("dropping a watch (seq %llu): the client does not read",
	    (unsigned long long)w->task.seq);
	conn_reply_error(w->task.conn, w->task.seq,
	    "Watch dropped: the client does not read its replies fast enough");
	conn_task_end(&w->task, true);
}

static void
watch_pump(struct task *t)
{
	struct watch *w = (struct watch *)t;
	struct entry *e;

	if (!w->fetching)
		return;
	while (!conn_output_busy(t->conn)) {
		if ((e = tree_walk_next(&w->walk)) == NULL) {
			w->fetching = false;
			conn_reply_state(t->conn, t->seq, "uptodate");
			return;
		}
		if ((int)(e->depth - w->entry->depth) < w->o.min_depth)
			continue;
		/* changed after the snapshot: reported live instead */
		if (e->tock >= w->snap_tock)
			continue;
		handlers_send_item(t->conn, t->seq, w->entry, &w->last, e,
		    w->o.nchain, w->o.acl, w->o.conv);
	}
	conn_task_want_pump(t);
}

static const struct task_ops watch_ops = {
	.pump = watch_pump,
	.input = NULL,
	.free = watch_free,
};

int
watch_start(struct conn *c, uint64_t seq, struct entry *e,
    const struct watch_opts *o)
{
	struct watch *w = calloc(1, sizeof(*w));
	struct watch_head *h;

	if (w == NULL ||
	    (h = table_get(&conn_agent(c)->watched, e)) == NULL) {
		free(w);
		return -ENOMEM;
	}
	w->task.seq = seq;
	w->task.ops = &watch_ops;
	w->entry = e;
	w->o = *o;
	w->last = e;
	conn_agent(c)->watches++;
	/* registration first: nothing committed from now on is lost */
	w->enext = h->first;
	if (h->first != NULL)
		h->first->eprev = w;
	h->first = w;
	e->watched = true;
	conn_task_add(c, &w->task);
	conn_reply_state(c, seq, "start");
	if (o->fetch) {
		w->snap_tock = agent_stamp(conn_agent(c));
		w->fetching = true;
		tree_walk_init(&w->walk, e, o->max_depth);
		watch_pump(&w->task);
	}
	return 0;
}

void
watch_notify(struct agent *a, struct entry *e)
{
	/* without any watch, do not touch every ancestor (cache misses) */
	if (a->watches == 0)
		return;
	for (struct entry *p = e; p != NULL; p = p->parent) {
		struct watch *w, *next;
		int depth = (int)(e->depth - p->depth);

		if (!p->watched)
			continue;
		/* the slot may move as watches end in the loop: only its
		 * first watch is read from it */
		for (w = table_find(&a->watched, p)->first; w != NULL;
		    w = next) {
			next = w->enext;
			if (depth < w->o.min_depth ||
			    (w->o.max_depth >= 0 && depth > w->o.max_depth))
				continue;
			if (conn_output_full(w->task.conn)) {
				watch_abort_overflow(w);
				continue;
			}
			handlers_send_item(w->task.conn, w->task.seq, w->entry,
			    &w->last, e, w->o.nchain, w->o.acl, w->o.conv);
		}
	}
}
