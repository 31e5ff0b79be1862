/*
 * requests: a connection's requests in flight (client_impl.h): made,
 * found by seq, ended once with their owner told, their references
 * counted, and the finished ones kept in a small pool for the next.
 */
#include <stdlib.h>
#include <string.h>

#include "client_impl.h"

/* Finished requests kept for reuse per connection: a pipeline's worth. */
#define REQ_POOL_MAX 64

struct req *
client_req_new(distkv *c, enum req_kind kind)
{
	struct req *r;

	if ((r = c->req_pool) != NULL) {
		c->req_pool = r->next;
		c->req_pooled--;
		memset(r, 0, sizeof(*r));
	} else if ((r = calloc(1, sizeof(*r))) == NULL)
		return (NULL);
	r->kind = kind;
	r->seq = c->next_seq++;
	r->refs = 1;		/* the list's, taken in client_start() */
	return (r);
}

/* Drop a reference; true when it was the last (r's parts are freed,
 * r itself is the caller's to free or keep). */
static bool
req_unref_last(struct req *r)
{
	if (r == NULL || --r->refs > 0)
		return (false);
	free(r->reply);
	distkv_path_free(r->base);
	distkv_path_free(r->last);
	return (true);
}

/* not inlined: gcc 12's -Wuse-after-free misreads the refcount */
__attribute__((noinline)) void
client_req_unref(struct req *r)
{
	if (req_unref_last(r))
		free(r);
}

/*
 * client_req_unref where c is known to live on (its own dispatch): the
 * last reference puts r in c's pool instead of freeing it.
 */
void
client_req_release(distkv *c, struct req *r)
{
	if (!req_unref_last(r))
		return;
	if (c->req_pooled >= REQ_POOL_MAX) {
		free(r);
		return;
	}
	r->next = c->req_pool;
	c->req_pool = r;
	c->req_pooled++;
}

struct req *
client_req_find(distkv *c, uint64_t seq)
{
	struct req *r;

	for (r = c->reqs; r != NULL; r = r->next) {
		if (r->seq == seq)
			return (r);
	}
	return (NULL);
}

void
client_req_unlink(distkv *c, struct req *r)
{
	struct req **pp;

	for (pp = &c->reqs; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == r) {
			*pp = r->next;
			if (c->reqs_tail == &r->next)
				c->reqs_tail = pp;
			r->next = NULL;
			return;
		}
	}
}

/*
 * End a request: it leaves the list (so later messages with its seq are
 * ignored), its owner hears about it once, and the list's reference goes.
 */
void
client_req_finish(distkv *c, struct req *r, int rc)
{
	if (r->finished)
		return;
	r->finished = true;
	r->rc = rc;
	client_req_unlink(c, r);
	if (!r->orphan) {
		r->refs++;
		switch (r->kind) {
		case REQ_GET:
			r->get_cb(r->arg, rc, NULL);
			break;
		case REQ_SET:
			r->set_cb(r->arg, rc, NULL);
			break;
		case REQ_ITEMS:
			if (r->watch_cb != NULL)
				r->watch_cb(r->arg, rc, NULL);
			break;
		default:
			break;
		}
		r->refs--;
	}
	client_req_unref(r);
}

void
client_req_pool_free(distkv *c)
{
	struct req *r;

	while ((r = c->req_pool) != NULL) {
		c->req_pool = r->next;
		free(r);
	}
	c->req_pooled = 0;
}
