/*
 * keys_impl: what the two halves of the v2 keys API share (keys.c:
 * connections, writes and the request flow; keys_get.c: GET's listing).
 * Not an API: keys.h is.
 */
#ifndef DKV_ETCD_KEYS_IMPL_H
#define DKV_ETCD_KEYS_IMPL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "distkv.h"
#include "history.h"
#include "keys.h"

struct tconn;

struct keys {
	char *socket;
	distkv_path *prefix;
	size_t plen;
	struct history *h;
	pthread_mutex_t mu;	/* guards conns */
	struct tconn *conns;
};

/* An etcd error body with the history's index. */
void keys_reply_error(struct keys *k, struct keys_resp *rs, int code,
    const char *cause);
/* An agent failure: etcd's "Raft Internal Error" (500) says why. */
void keys_reply_agent_error(struct keys *k, struct keys_resp *rs, distkv *c,
    int rc);
/* o as the body (taken), with status and X-Etcd-Index. */
void keys_reply_json(struct keys_resp *rs, int status, json_t *o,
    uint64_t index);
/* The DistKV path of an etcd key ("/" is the prefix itself). */
int keys_key_path(struct keys *k, const char *key, distkv_path **out);
/* *bad: the deepest parent of key that holds a value (malloc'd), or NULL. */
int keys_parents_check(struct keys *k, distkv *c, const char *key,
    char **bad);

/* keys_get.c: a plain value from the history's mirror (true: answered). */
bool keys_get_from_mirror(struct keys *k, const char *key,
    struct keys_resp *rs);
/* keys_get.c: GET of key, the listing from the agent's tree. */
void keys_do_get(struct keys *k, distkv *c, const char *key, bool recursive,
    struct keys_resp *rs);

#endif
