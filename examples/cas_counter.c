/*
 * cas_counter: add to a shared counter with compare-and-set, so that any
 * number of processes on any nodes can count without losing an update.
 *
 *   cas_counter [PATH [TIMES]]      (default examples/counter, 1)
 *
 * Each round reads the counter and its chain head (the last change), then
 * sets counter + 1 on condition that the head is still the same: if
 * someone else changed it meanwhile the agent refuses with
 * DISTKV_ECONFLICT and the round starts over.  A counter that does not
 * exist yet is created with DISTKV_PRE_NEW (conflicts the same way).
 * Prints the last value written.  Exit 0, 2 on an error, 77 without an
 * agent.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include <distkv.h>

/* One increment; DISTKV_ECONFLICT means "lost the race, read again". */
static int
increment(distkv *c, const distkv_path *p, int64_t *now)
{
	struct distkv_set_opts o = { .nchain = -1 };
	struct distkv_entry e;
	struct distkv_value v;
	int64_t n = 0;
	int rc;

	/* nchain 1: the chain head comes with the value (over the socket) */
	rc = distkv_get(c, p, 1, &e);
	if (rc == DISTKV_ENOTFOUND && e.chain.n == 0)
		o.pre = DISTKV_PRE_NEW;
	else if (rc == 0 && e.chain.n > 0) {
		if ((rc = distkv_value_get_int(e.value.data, e.value.len,
		    &n)) != 0) {
			distkv_entry_clear(&e);
			return rc;
		}
		o.pre = DISTKV_PRE_CHAIN;
		o.chain_head = e.chain.ev[0];
	} else if (rc == DISTKV_ENOTFOUND) {
		/* deleted: a tombstone with a chain; its head guards it */
		o.pre = DISTKV_PRE_CHAIN;
		o.chain_head = e.chain.ev[0];
	} else {
		distkv_entry_clear(&e);
		return rc;
	}
	distkv_entry_clear(&e);
	if ((rc = distkv_value_from_int(&v, n + 1)) != 0)
		return rc;
	rc = distkv_set(c, p, v.data, v.len, &o, NULL);
	distkv_value_clear(&v);
	if (rc == 0)
		*now = n + 1;
	return rc;
}

int
main(int argc, char **argv)
{
	long times = argc > 2 ? atol(argv[2]) : 1, conflicts = 0;
	distkv_path *p;
	int64_t now = 0;
	distkv *c;
	int rc;

	const char *path = argc > 1 ? argv[1] : "examples/counter";

	if ((rc = distkv_connect(NULL, &c)) != 0) {
		fprintf(stderr, "cas_counter: %s\n", distkv_strerror(rc));
		return rc == DISTKV_ECONNECT ? 77 : 2;
	}
	if ((rc = distkv_path_parse(path, &p)) != 0) {
		fprintf(stderr, "cas_counter: %s: %s\n", path,
		    distkv_strerror(rc));
		distkv_close(c);
		return 2;
	}
	for (long i = 0; i < times && rc == 0; ) {
		rc = increment(c, p, &now);
		if (rc == DISTKV_ECONFLICT) {
			conflicts++;	/* someone else counted: again */
			rc = 0;
		} else if (rc == 0)
			i++;
	}
	if (rc == 0)
		printf("%" PRId64 " (%ld conflicts)\n", now, conflicts);
	else
		fprintf(stderr, "cas_counter: %s\n", distkv_strerror(rc));
	distkv_path_free(p);
	distkv_close(c);
	return rc == 0 ? 0 : 2;
}
