/*
 * forget: `distkv-cli forget NODE` (DistKV's kill_node): a node that is
 * gone for good stops blocking tombstone purges.
 *
 * Purges wait until every node that may hold data has reported what it
 * has seen (sync.c, raise_floors); a node that never comes back would
 * block them forever.  Forgetting it is a change to the meta tree,
 * (nil, "forgotten", NODE) = {by, at}, made through agent_change_local:
 * it replicates to every node like any change, survives restarts in the
 * state dir and reaches nodes that join later with their download.  A
 * node skips a forgotten node's report only while Serf does not list it
 * alive, so a node wrongly forgotten, or a new one with the old name,
 * counts again as soon as it is back.
 */
#ifndef DISTKV_FORGET_H
#define DISTKV_FORGET_H

#include <stdbool.h>
#include <stddef.h>

struct agent;

/* NODE was forgotten (its meta entry has a value). */
bool forget_is_marked(struct agent *a, const char *name, size_t len);
/* ... and Serf does not list it alive now: purges need not wait for it. */
bool forget_skips(struct agent *a, const char *name, size_t len);
/* Serf lists NODE as alive or leaving. */
bool forget_member_alive(const struct agent *a, const char *name,
    size_t len);

/*
 * Forget NODE: refused (a message in err, -EINVAL) for this node itself,
 * a node Serf lists alive, and a name nobody knows; else the meta entry
 * is written (0, or -ENOMEM / -ERANGE from agent_change_local) and Serf
 * is asked to drop the node from its member lists.
 */
int forget_node(struct agent *a, const char *name, size_t len, char *err,
    size_t cap);

#endif
