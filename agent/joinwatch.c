/* joinwatch: see joinwatch.h. */
#include <stdio.h>
#include <string.h>

#include "agent.h"
#include "joinwatch.h"
#include "log.h"
#include "serf.h"

void
joinwatch_init(struct joinwatch *w, double now)
{
	memset(w, 0, sizeof(*w));
	w->started = now;
}

/* The last [ERR] or [WARN] line of the Serf log's tail, or a pointer. */
static void
serf_log_hint(const char *path, char *out, size_t cap)
{
	char buf[8192], *line = NULL;
	FILE *f;
	size_t n;
	long end;

	snprintf(out, cap, "%s", path != NULL ? "nothing in the Serf log" :
	    "see the Serf agent's own log");
	if (path == NULL || (f = fopen(path, "r")) == NULL)
		return;
	if (fseek(f, 0, SEEK_END) == 0 && (end = ftell(f)) > 0)
		fseek(f, end > (long)sizeof(buf) - 1 ?
		    end - (long)sizeof(buf) + 1 : 0, SEEK_SET);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	for (char *p = strtok(buf, "\n"); p != NULL; p = strtok(NULL, "\n"))
		if (strstr(p, "[ERR]") != NULL || strstr(p, "[WARN]") != NULL)
			line = p;
	if (line != NULL)
		snprintf(out, cap, "serf: %s", line);
}

static bool
another_alive(const struct agent *a, const struct serf_member *m, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(m[i].status, "alive") == 0 &&
		    strcmp(m[i].name, a->self->name) != 0)
			return true;
	return false;
}

void
joinwatch_step(struct joinwatch *w, struct agent *a, double now,
    const struct serf_member *m, size_t n, const char *serf_log)
{
	const char *const *join = a->cfg.join;
	double alone = now - w->started, warn_after = JOINWATCH_WARN_AFTER;
	char hint[600];

	/* a short --join-timeout gets its warning first */
	if (a->cfg.join_timeout > 0 && a->cfg.join_timeout / 2 < warn_after)
		warn_after = a->cfg.join_timeout / 2;
	if (w->joined)
		return;		/* later partitions are recovery's business */
	if (another_alive(a, m, n)) {
		w->joined = true;
		if (w->warned)
			log_info("joined the cluster after %.0f s", alone);
		return;
	}
	if (join == NULL || join[0] == NULL) {
		/* the first node: alone is normal once it has its data */
		if (!w->warned && !agent_ready(a) &&
		    alone >= warn_after) {
			log_warn("no --join and no data: this node waits until "
			    "another node joins it (start the first node of a "
			    "cluster with --init)");
			w->warned = true;
		}
		return;
	}
	if (!w->warned && alone >= warn_after) {
		serf_log_hint(serf_log, hint, sizeof(hint));
		log_warn("not joined after %.0f s: no member reachable through "
		    "--join %s%s (a wrong --cluster-key or an unreachable "
		    "address?); %s", alone, join[0], join[1] != NULL ?
		    " ..." : "", hint);
		w->warned = true;
	}
	if (!agent_ready(a) && a->cfg.join_timeout > 0 &&
	    alone >= a->cfg.join_timeout) {
		serf_log_hint(serf_log, hint, sizeof(hint));
		fatal("no peer to download the tree from: nothing joined "
		    "through --join %s in %.0f s (--join-timeout); %s",
		    join[0], alone, hint);
	}
}
