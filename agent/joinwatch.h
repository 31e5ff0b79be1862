/*
 * joinwatch: tell the operator why a cluster node is alone.
 *
 * A wrong cluster key or an unreachable --join used to leave the agent
 * waiting without a word (the cause was only in the Serf child's log).
 * Once per start, if no other member is alive after a short while, the
 * agent logs why, quoting the Serf log's last warning; a node that has no
 * data (it waits for a peer to download from) gives up with an error
 * after --join-timeout.  A node with data keeps serving alone.
 */
#ifndef DISTKV_JOINWATCH_H
#define DISTKV_JOINWATCH_H

#include <stdbool.h>
#include <stddef.h>

struct agent;
struct serf_member;

/* Seconds alone before the warning. */
#define JOINWATCH_WARN_AFTER 10.0

struct joinwatch {
	double started;		/* ev_now at sync start */
	bool joined;		/* another member was alive once */
	bool warned;
};

void joinwatch_init(struct joinwatch *w, double now);
/*
 * One look, every clock: members as Serf lists them, serf_log the
 * embedded Serf agent's log file (NULL with --serf).  May exit the agent
 * (fatal) when it has no data and --join-timeout has passed.
 */
void joinwatch_step(struct joinwatch *w, struct agent *a, double now,
    const struct serf_member *m, size_t n, const char *serf_log);

#endif
