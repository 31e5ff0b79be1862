/* region: see region.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "region.h"

int
region_get(const char *shm_path, const char *node, bool stale,
    const distkv_path *p, struct distkv_entry *out, struct region_read *rr)
{
	struct distkv_shm_meta m;
	distkv_shm *s = NULL;
	uint8_t small[512], *buf = small;
	char host[256];
	size_t len = 0;
	int rc;

	memset(out, 0, sizeof(*out));
	memset(rr, 0, sizeof(*rr));
	if (shm_path == NULL || *shm_path == '\0')
		shm_path = getenv("DISTKV_SHM");
	if (shm_path != NULL && *shm_path != '\0') {
		snprintf(rr->path, sizeof(rr->path), "%s", shm_path);
		rc = distkv_shm_open(shm_path, &s);
	} else {
		/* the agent's default node name is the host name */
		if ((node == NULL || *node == '\0') &&
		    gethostname(host, sizeof(host)) == 0) {
			host[sizeof(host) - 1] = '\0';
			node = host;
		}
		snprintf(rr->path, sizeof(rr->path), "/dev/shm/distkv-%s",
		    node != NULL ? node : "?");
		rc = distkv_shm_open_node(node, &s);
	}
	if (rc != 0)
		return rc;
	rr->alive = distkv_shm_alive(s) == 1;
	rr->age_ms = distkv_shm_age_ms(s);
	if (!rr->alive && !stale) {
		distkv_shm_close(s);
		return DISTKV_ESTALE;
	}
	rc = distkv_shm_get(s, p, small, sizeof(small), &len, &m);
	if (rc == DISTKV_ETOOSMALL) {
		if ((buf = malloc(len)) == NULL) {
			distkv_shm_close(s);
			return -ENOMEM;
		}
		rc = distkv_shm_get(s, p, buf, len, &len, &m);
	}
	if (rc == 0) {
		rc = distkv_value_from_msgpack(&out->value, buf, len);
		out->tock = m.tock;
	} else if (rc == DISTKV_ENOTFOUND &&
	    distkv_value_from_nil(&out->value) != 0)
		rc = -ENOMEM;
	if (buf != small)
		free(buf);
	distkv_shm_close(s);
	return rc;
}
