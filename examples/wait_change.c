/*
 * wait_change: block until a value changes, without polling the agent.
 *
 *   wait_change [PATH [SECONDS]]      (default svc/web/port, 10)
 *
 * Reads PATH (any type, printed as its msgpack size), then sleeps in
 * distkv_shm_wait until the region's change word moves, and reads again;
 * prints the new value's size once PATH itself changed.  Exit 0 on a
 * change, 1 on a timeout, 2 on an error, 77 without an agent or region.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <distkv.h>

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The value at k as bytes, or len 0 if there is none. */
static int
read_value(distkv_shm *s, const distkv_key *k, unsigned char *buf,
    size_t cap, size_t *len)
{
	int rc = distkv_key_get(s, k, buf, cap, len, NULL);

	if (rc == DISTKV_ENOTFOUND) {
		*len = 0;
		return 0;
	}
	return rc;
}

int
main(int argc, char **argv)
{
	unsigned char old[4096], cur[4096];
	size_t oldlen, curlen;
	long long deadline;
	distkv_shm *s;
	distkv_key *k;
	distkv *c;
	int rc;

	const char *path = argc > 1 ? argv[1] : "svc/web/port";

	deadline = now_ms() + (argc > 2 ? atoi(argv[2]) : 10) * 1000LL;
	if ((rc = distkv_connect(NULL, &c)) != 0) {
		fprintf(stderr, "wait_change: %s\n", distkv_strerror(rc));
		return rc == DISTKV_ECONNECT ? 77 : 2;
	}
	if ((s = distkv_shm_of(c)) == NULL) {
		fprintf(stderr, "wait_change: the agent has no region\n");
		distkv_close(c);
		return 77;
	}
	if ((rc = distkv_key_parse(path, &k)) != 0) {
		fprintf(stderr, "wait_change: %s: %s\n", path,
		    distkv_strerror(rc));
		distkv_close(c);
		return 2;
	}
	/* the change word first, then the value: no change is missed */
	uint32_t seen = distkv_shm_counter(s);

	if ((rc = read_value(s, k, old, sizeof(old), &oldlen)) != 0)
		goto out;
	printf("now: %zu bytes\n", oldlen);
	fflush(stdout);
	for (;;) {
		long long left = deadline - now_ms();

		if (left <= 0) {
			rc = DISTKV_ETIMEDOUT;
			break;
		}
		/* anything in the tree changed (or the region was replaced) */
		if ((rc = distkv_shm_wait(s, seen, (int)left)) != 0)
			break;
		seen = distkv_shm_counter(s);
		if ((rc = read_value(s, k, cur, sizeof(cur), &curlen)) != 0)
			break;
		if (curlen != oldlen || memcmp(cur, old, curlen) != 0) {
			printf("changed: %zu bytes\n", curlen);
			break;
		}
	}
out:
	if (rc != 0)
		fprintf(stderr, "wait_change: %s\n", distkv_strerror(rc));
	distkv_key_free(k);
	distkv_close(c);
	return rc == 0 ? 0 : rc == DISTKV_ETIMEDOUT ? 1 : 2;
}
