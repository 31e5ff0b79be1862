/*
 * clienttest: helpers shared by the libdistkv tests: test_client.c (a
 * scripted stand-in agent) and test_client_agent.c (a real agent).
 */
#ifndef DISTKV_CLIENTTEST_H
#define DISTKV_CLIENTTEST_H

#include <stdbool.h>
#include <stdint.h>

#include "distkv.h"

/* The path of text (the test fails if it does not parse). */
distkv_path *P(const char *text);
/* p as text, malloc'ed. */
char *fmt_path(const distkv_path *p);
/* Run the async side until *flag is set or ms pass (then the test
 * fails). */
void pump_until(distkv *c, const bool *flag, int ms);

/* What a tree walk or a synchronous watch handed to item_fn. */
struct items {
	int n;
	char *path[16];
	int depth[16];
	int64_t val[16];
	int uptodate;
	int stop_after;
	bool final;
	int final_rc;
};
int item_fn(void *arg, const struct distkv_entry *e);
void items_free(struct items *it);

/* What an async watch handed to watch_cb. */
struct wstate {
	int items;
	int uptodate;
	bool ended;
	int rc;
	char *first;
};
void watch_cb(void *arg, int rc, const struct distkv_entry *e);

/* distkv_request's callback: counts the messages (arg: int *). */
int raw_fn(void *arg, const uint8_t *msg, size_t len);

#endif
