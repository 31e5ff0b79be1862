/* memberlog: Serf membership changes at info (memberlog.h). */
#include <string.h>

#include "log.h"
#include "memberlog.h"

static const struct serf_member *
find_member(const struct serf_member *m, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(m[i].name, name) == 0)
			return &m[i];
	return NULL;
}

/*
 * The agent re-reads the whole member list on every Serf member event,
 * so the change is found by comparing lists: quadratic in the members,
 * but only when membership changes.
 */
void
memberlog_changes(const char *self, const struct serf_member *was,
    size_t nwas, const struct serf_member *now, size_t nnow)
{
	const struct serf_member *old;
	size_t alive = 0;

	if (was == NULL) {
		for (size_t i = 0; i < nnow; i++)
			alive += strcmp(now[i].status, "alive") == 0;
		log_info("Serf lists %zu member%s, %zu alive", nnow,
		    nnow == 1 ? "" : "s", alive);
		return;
	}
	for (size_t i = 0; i < nnow; i++) {
		if (strcmp(now[i].name, self) == 0)
			continue;
		if ((old = find_member(was, nwas, now[i].name)) == NULL)
			log_info("node %s joined (%s, %s)", now[i].name,
			    now[i].status, now[i].addr);
		else if (strcmp(old->status, now[i].status) != 0)
			log_info("node %s is %s (was %s)", now[i].name,
			    now[i].status, old->status);
	}
	for (size_t i = 0; i < nwas; i++)
		if (find_member(now, nnow, was[i].name) == NULL)
			log_info("node %s is no longer a Serf member",
			    was[i].name);
}
