/*
 * watch: subscriptions to an entry and its subtree (spec §2.5.5).  A watch
 * is a task of its connection, registered on the watched entry before the
 * optional fetch walk, so no change is lost; the walk skips entries changed
 * after its snapshot tock because those are reported live, so a client
 * never sees stale data after fresh data.
 *
 * A watcher whose connection's output passes the configured bound is
 * dropped with an error item and an end message; the agent and other
 * clients go on.
 */
#ifndef DISTKV_WATCH_H
#define DISTKV_WATCH_H

#include <stdbool.h>
#include <stdint.h>

struct agent;
struct conn;
struct entry;
struct acl_user;
struct xlate_user;

struct watch_opts {
	int min_depth;
	int max_depth;		/* < 0: unlimited; 0: the entry only */
	unsigned nchain;
	bool fetch;
	const struct acl_user *acl;	/* restricted connection: filter */
	const struct xlate_user *conv;	/* bound connection: encode */
};

/*
 * The watches of each watched entry: an entry keeps only a bit
 * (entry.watched), so that millions of unwatched entries do not each
 * carry a list head.  Open addressing by entry address (watch.c).
 */
struct watch_table {
	struct watch_head *slot;
	size_t n, cap;
};

/* Free the table (agent_fini: every watch ended with its connection). */
void watch_table_fini(struct watch_table *t);

/* Register a watch for request seq on c; replies start at once. */
int watch_start(struct conn *c, uint64_t seq, struct entry *e,
    const struct watch_opts *o);

/* Report a committed change of e to every watch on e or an ancestor. */
void watch_notify(struct agent *a, struct entry *e);

#endif
