/*
 * memberlog: the Serf membership changes an operator acts on (a node
 * joined, failed, left, was reaped), logged at info (issue 13 item 3).
 */
#ifndef DISTKV_MEMBERLOG_H
#define DISTKV_MEMBERLOG_H

#include <stddef.h>

#include "serf.h"

/*
 * Log how the member list now[0..nnow) differs from the last one,
 * was[0..nwas) (NULL: none yet, log a summary); self is not logged.
 */
void memberlog_changes(const char *self, const struct serf_member *was,
    size_t nwas, const struct serf_member *now, size_t nnow);

#endif
