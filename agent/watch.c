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
	struct watch *enext, *eprev;	/* on entry->watchers */
};

static void
watch_unlink(struct watch *w)
{
	if (w->eprev != NULL)
		w->eprev->enext = w->enext;
	else
		w->entry->watchers = w->enext;
	if (w->enext != NULL)
		w->enext->eprev = w->eprev;
	w->enext = w->eprev = NULL;
}

static void
watch_free(struct task *t)
{
	struct watch *w = (struct watch *)t;

	conn_agent(t->conn)->watches--;
	watch_unlink(w);
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

	if (w == NULL)
		return -ENOMEM;
	w->task.seq = seq;
	w->task.ops = &watch_ops;
	w->entry = e;
	w->o = *o;
	w->last = e;
	conn_agent(c)->watches++;
	/* registration first: nothing committed from now on is lost */
	w->enext = e->watchers;
	if (e->watchers != NULL)
		e->watchers->eprev = w;
	e->watchers = w;
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

		for (w = p->watchers; w != NULL; w = next) {
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
