/*
 * clustertest: the helpers of the cluster test programs (clustertest.h),
 * and their main: one test at a time.
 */
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "clustertest.h"
#include "harness.h"

struct cluster cl;
char why[2048];

void
teardown(void)
{
	cluster_cleanup(&cl);
}

void
start(int n)
{
	cr_assert(cluster_init(&cl, n, clustertest_ipbase) == 0, "no free ports");
}

void
start_all(int n)
{
	start(n);
	cr_assert(cluster_start(&cl) == 0, "cluster did not start\n%s", DIAG);
}

/* Every agent stops cleanly (exit 0: no crash, no sanitizer report). */
void
stop_all(void)
{
	int bad = cluster_stop(&cl);

	cr_assert(bad == 0, "%d agent(s) did not exit cleanly\n%s", bad, DIAG);
}

distkv *
conn(int i)
{
	distkv *k = cluster_connect(&cl, i);

	cr_assert(k != NULL, "cannot connect to n%d\n%s", i, DIAG);
	return k;
}

void
set_str(int node, const distkv_path *p, const char *s)
{
	struct distkv_value v = { NULL, 0 };
	distkv *k = conn(node);
	int rc;

	cr_assert(distkv_value_from_str(&v, s, strlen(s)) == 0);
	rc = distkv_set(k, p, v.data, v.len, NULL, NULL);
	cr_assert(rc == 0, "set on n%d: %s", node, distkv_strerror(rc));
	distkv_value_clear(&v);
	distkv_close(k);
}

void
wait_str(const distkv_path *p, const char *s, int timeout_ms)
{
	struct distkv_value v = { NULL, 0 };

	if (s != NULL)
		cr_assert(distkv_value_from_str(&v, s, strlen(s)) == 0);
	cr_assert(cluster_wait_value(&cl, 0, p, v.data, v.len, timeout_ms,
	    why, sizeof(why)) == 0, "'%s' not on every node within %d ms: "
	    "%s\n%s", s != NULL ? s : "(deleted)", timeout_ms, why, DIAG);
	distkv_value_clear(&v);
}

void
wait_same(size_t min_items, int timeout_ms)
{
	long long t0 = harness_now_ms();

	cr_assert(cluster_wait_same(&cl, min_items, timeout_ms, why,
	    sizeof(why)) == 0, "trees differ after %d ms: %s\n%s", timeout_ms,
	    why, DIAG);
	cr_log_info("trees identical after %lld ms", harness_now_ms() - t0);
}

/* msgpack bin of len bytes of a pattern (caller frees). */
uint8_t *
big_value(size_t len, uint8_t seed, size_t *outlen)
{
	uint8_t *b = malloc(len + 5);

	cr_assert(b != NULL);
	b[0] = 0xc6;
	b[1] = (uint8_t)(len >> 24);
	b[2] = (uint8_t)(len >> 16);
	b[3] = (uint8_t)(len >> 8);
	b[4] = (uint8_t)len;
	for (size_t i = 0; i < len; i++)
		b[5 + i] = (uint8_t)(i * 31 + seed + (i >> 10));
	*outlen = len + 5;
	return b;
}

void
set_raw(int node, const distkv_path *p, const void *v, size_t len)
{
	distkv *k = conn(node);
	int rc = distkv_set(k, p, v, len, NULL, NULL);

	cr_assert(rc == 0, "set on n%d: %s", node, distkv_strerror(rc));
	distkv_close(k);
}

/*
 * One test at a time: real clusters on a 2-core machine are less jittery
 * that way, and libcriterion 2.4's runner leaks a timeout record when tests
 * with .timeout end concurrently (fails the ASan build).  --jobs on the
 * command line still overrides this.
 */
int
main(int argc, char *argv[])
{
	struct criterion_test_set *tests = criterion_initialize();
	int rc = 0;

	criterion_options.jobs = 1;
	if (criterion_handle_args(argc, argv, true))
		rc = !criterion_run_all_tests(tests);
	criterion_finalize(tests);
	return rc;
}
