/*
 * keys: the etcd v2 keys API (/v2/keys/...) on top of libdistkv.
 *
 * keys_handle() takes one parsed request (method, cleaned key, the merged
 * form: body fields first, then the query, as Go's r.Form) and produces
 * the status, the JSON body and the X-Etcd-Index, or a history waiter for
 * a long-poll (GET wait=true) that the HTTP front then serves.
 *
 * Each worker thread gets its own agent connection on first use
 * (libdistkv handles are one thread at a time); keys_close() closes them
 * all once the HTTP daemon has stopped.  A lost connection is replaced on
 * the next request.  docs/etcd.md describes the mapping and every
 * deviation from etcd.
 */
#ifndef DKV_ETCD_KEYS_H
#define DKV_ETCD_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "distkv.h"
#include "form.h"
#include "history.h"

struct keys_cfg {
	const char *socket;		/* agent socket (NULL: default) */
	const distkv_path *prefix;	/* etcd "/" is this DistKV path */
	struct history *history;
};

struct keys;

int keys_open(const struct keys_cfg *cfg, struct keys **out);
void keys_close(struct keys *k);

struct keys_req {
	const char *method;		/* GET HEAD PUT POST DELETE */
	const char *key;		/* cleaned: "/" or "/a/b" */
	const struct form *form;
};

struct keys_resp {
	int status;
	char *body;			/* malloc'd JSON with "\n" */
	size_t blen;
	uint64_t index;			/* X-Etcd-Index */
	struct hwaiter *waiter;		/* set: a long-poll, body NULL */
};

/*
 * Serve one request; rs is always filled (errors are etcd error bodies).
 * May block on the agent.
 */
void keys_handle(struct keys *k, const struct keys_req *rq,
    struct keys_resp *rs);

/*
 * Serve the request if that needs no agent round trip (bad fields, a
 * long-poll, a plain value the history's mirror holds): true with rs
 * filled.  Never blocks, so the HTTP threads call it themselves and hand
 * the rest to workers (http.c).
 */
bool keys_answer_local(struct keys *k, const struct keys_req *rq,
    struct keys_resp *rs);

/*
 * A plain set (PUT without a condition or dir) of a key the mirror holds
 * as a plain value is one write, sent on the feed's connection
 * (history_async_set) so that no thread waits for the agent:
 *   KEYS_ASYNC_NO: not such a request, nothing done;
 *   KEYS_ASYNC_STARTED: suspend(arg) was called, and resume(arg) will be
 *     once rs is filled (on another thread, or before this returns);
 *   KEYS_ASYNC_SUSPENDED: suspend(arg) was called but the write could not
 *     start: serve the request the blocking way (keys_handle), then resume.
 */
struct keys_async {
	void (*suspend)(void *arg);
	void (*resume)(void *arg);
	void *arg;
};
enum { KEYS_ASYNC_NO, KEYS_ASYNC_STARTED, KEYS_ASYNC_SUSPENDED };
int keys_put_async(struct keys *k, const struct keys_req *rq,
    struct keys_resp *rs, const struct keys_async *cb);

#endif
