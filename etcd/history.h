/*
 * history: the gateway's event history, fed by ONE watch on the agent.
 *
 * A feed thread holds its own libdistkv connection with an asynchronous
 * watch (fetch) on the gateway's prefix.  The fetch fills a mirror of the
 * current etcd view (key -> value or dir marker, index), which gives every
 * later event its prevNode; live items become events in a ring of the
 * last `capacity` events (etcd keeps 1,000).  Writes made through the
 * socket, the CLI, other gateways or other nodes all arrive this way.
 *
 * Index: an event's index is the entry's tock, except that it is always
 * above the previous event's (a change from another node can carry an
 * older tock than this agent already handed out): max(tock, last + 1).
 *
 * Writes of the gateway itself label their event (create, update,
 * compareAndSwap, ...): history_write_begin() before the request,
 * history_write_end() after the reply.  An event of a key with a write
 * in flight is held (not shown to watchers) until the write ends, so a
 * watcher never sees a "set" that is then relabelled.
 *
 * Long-poll watchers (struct hwaiter) are matched under the history lock
 * and woken through a callback, which the HTTP front uses to resume a
 * suspended connection; no thread per watcher.  Once a second the feed
 * thread polls the sockets of waiting watchers for a hang-up, so clients
 * that vanish mid-watch are dropped.
 *
 * Threads: every function may be called from any thread; one mutex
 * guards everything; callbacks (wake) run with it held and must not call
 * back into this module.
 */
#ifndef DKV_ETCD_HISTORY_H
#define DKV_ETCD_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "distkv.h"

struct history;
struct hwaiter;

/*
 * Connect to the agent at socket, watch prefix (copied) with fetch, wait
 * up to timeout_ms for the fetch to finish, start the feed thread.
 * Returns 0 or a libdistkv error code.
 */
int history_open(const char *socket, const distkv_path *prefix,
    size_t capacity, int timeout_ms, struct history **out);
/*
 * Shutdown, step 1: end every waiter (suspended ones are woken) and make
 * new ones dead at once, so the HTTP daemon can stop.
 */
void history_stop_waiters(struct history *h);
/* Step 2, after the HTTP daemon stopped: stop the feed thread, free all. */
void history_close(struct history *h);
/* True once the feed has ended (agent gone): the gateway should stop. */
bool history_failed(struct history *h);
/* Block until the feed ends or timeout_ms passes (main thread). */
void history_wait_failed(struct history *h, int timeout_ms);

/* The current etcd index: the last event's index (at least the start). */
uint64_t history_index(struct history *h);

/*
 * The fast path of GET: if the mirror holds key as a value with nothing
 * below it, 1 with a copy of its text (*text, malloc'd), its tock and the
 * current index.  0: not known as a plain value here (ask the agent).
 * The mirror follows the agent through the feed; the gateway's own writes
 * are in it before they are answered (history_write_end).
 */
int history_get_file(struct history *h, const char *key, char **text,
    size_t *tlen, uint64_t *tock, uint64_t *index);

/* A write of the gateway: label its event with action (static string). */
void *history_write_begin(struct history *h, const char *key,
    const char *action);
/*
 * The write ended with the entry tock `tock` (0: it failed, no event).
 * Releases held events and waits up to 2 s until the feed has seen the
 * write, so that the reply's index is already in the history.
 */
void history_write_end(struct history *h, void *token, uint64_t tock);

/*
 * A write without precondition sent on the feed's own connection, so
 * that no thread waits for it: the agent sends a change's event before
 * its reply, so the event is in the history when done(arg, rc, tock)
 * runs (on the feed thread, or on the calling one).  Labels the event
 * with action as history_write_begin/end do.  0: started, done will be
 * called exactly once; else the error, and done is not called.
 */
typedef void history_set_done(void *arg, int rc, uint64_t tock);
int history_async_set(struct history *h, const char *key, const char *action,
    const distkv_path *p, const void *value, size_t len,
    history_set_done *done, void *arg);

/*
 * Start a wait for the first event at or after since (0: from now) on key
 * (recursive: also below it, hidden names skipped).  Returns:
 *   0 and *body (malloc'd event JSON): an event was in the history;
 *   0 and *w: wait; arm it with history_waiter_arm;
 *   V2E_EVENT_INDEX_CLEARED with *cause (malloc'd) when since is older
 *   than the oldest event kept; -ENOMEM.
 * *index: the X-Etcd-Index to send.
 */
int history_watch(struct history *h, const char *key, bool recursive,
    uint64_t since, char **body, size_t *blen, struct hwaiter **w,
    uint64_t *index, char **cause);
/*
 * Give the waiter the client's socket (checked for hang-ups) and the
 * wake-up callback, called with the lock held once the waiter has a
 * body or is dead while it is suspended.
 */
void history_waiter_arm(struct hwaiter *w, int fd, void (*wake)(void *),
    void *arg);
/*
 * Poll a waiter: 1 and *body (ownership passes) when its event came; -1
 * when it is dead (client gone, gateway stopping); else 0 after calling
 * suspend(arg) with the lock held (the waiter is then "suspended" and
 * its wake callback will run once).
 */
int history_waiter_take(struct hwaiter *w, char **body, size_t *blen,
    void (*suspend)(void *), void *arg);
/* Remove and free a waiter (NULL: nothing). */
void history_waiter_free(struct hwaiter *w);

#endif
