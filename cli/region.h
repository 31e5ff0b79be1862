/*
 * region: distkv-cli reads the agent's shared-memory region itself, for
 * `get --shm PATH`, `get --node NAME` and `get --stale`: no socket, no
 * greeting, so a stopped or dead agent cannot make it hang.
 */
#ifndef DISTKV_CLI_REGION_H
#define DISTKV_CLI_REGION_H

#include <stdbool.h>
#include <stdint.h>

#include "distkv.h"

/* What a region read found out about the agent behind it. */
struct region_read {
	bool alive;		/* the agent runs and beats */
	uint64_t age_ms;	/* since its last heartbeat */
	char path[512];		/* the region read */
};

/*
 * Read p from the region at shm_path, else the one of node (its default
 * path), else the one of this host's default node name.  Unless stale,
 * a region whose agent is not alive is an error (DISTKV_ESTALE).  out gets
 * the value (nil and DISTKV_ENOTFOUND if there is none) and its tock.
 */
int region_get(const char *shm_path, const char *node, bool stale,
    const distkv_path *p, struct distkv_entry *out, struct region_read *rr);

#endif
