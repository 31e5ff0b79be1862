/*
 * clienttest: helpers shared by the libdistkv tests (test_client.c, the
 * scripted stand-in agent; test_client_agent.c, a real agent).
 */
#include <poll.h>
#include <stdlib.h>

#include <criterion/criterion.h>

#include "clienttest.h"
#include "harness.h"

distkv_path *
P(const char *text)
{
	distkv_path *p;

	cr_assert_eq(distkv_path_parse(text, &p), 0, "path %s", text);
	return p;
}

char *
fmt_path(const distkv_path *p)
{
	char *s;

	cr_assert_eq(distkv_path_format(p, &s), 0);
	return s;
}

/* Run the async side until *flag is set or ms pass. */
void
pump_until(distkv *c, const bool *flag, int ms)
{
	long long deadline = harness_now_ms() + ms;

	while (!*flag) {
		struct pollfd pfd = { distkv_fd(c), (short)(POLLIN |
		    (distkv_want_write(c) ? POLLOUT : 0)), 0 };
		long long left = deadline - harness_now_ms();
		int rc;

		cr_assert_gt(left, 0, "condition not reached within %d ms", ms);
		if (distkv_want_write(c))
			pfd.events |= POLLOUT;
		poll(&pfd, 1, (int)left);
		rc = distkv_process(c);
		if (rc != 0 && !*flag)
			cr_assert_fail("process: %s", distkv_strerror(rc));
	}
}

int
item_fn(void *arg, const struct distkv_entry *e)
{
	struct items *it = arg;

	if (e == NULL) {
		it->uptodate++;
		return 0;
	}
	if (it->n < 16) {
		it->path[it->n] = fmt_path(e->path);
		it->depth[it->n] = e->depth;
		if (distkv_value_get_int(e->value.data, e->value.len,
		    &it->val[it->n]) != 0)
			it->val[it->n] = -999;
	}
	it->n++;
	return it->stop_after > 0 && it->n >= it->stop_after;
}

void
items_free(struct items *it)
{
	for (int i = 0; i < it->n && i < 16; i++)
		free(it->path[i]);
}

void
watch_cb(void *arg, int rc, const struct distkv_entry *e)
{
	struct wstate *w = arg;

	cr_assert_not(w->ended, "no call after the last one");
	if (rc != 0) {
		w->ended = true;
		w->rc = rc;
		cr_assert_null(e);
		return;
	}
	if (e == NULL) {
		w->uptodate++;
		return;
	}
	if (w->items++ == 0)
		w->first = fmt_path(e->path);
}

int
raw_fn(void *arg, const uint8_t *msg, size_t len)
{
	int *n = arg;

	(void)msg;
	cr_assert_gt(len, 0);
	(*n)++;
	return 0;
}
