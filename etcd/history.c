/*
 * history: see history.h.  The feed thread is the only writer of the
 * mirror and the ring; HTTP threads read them under the same mutex.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "history.h"
#include "v2err.h"
#include "v2node.h"

/* How often waiting watchers' sockets are checked for a hang-up. */
#define SWEEP_MS 1000
/* How long a write waits for its own event before replying anyway. */
#define WRITE_WAIT_MS 2000

/* ---- the mirror: key -> current etcd node ---- */

struct mnode {
	struct mnode *next;
	char *key;
	bool dir;
	char *value;		/* NULL for a directory */
	size_t vlen;
	uint64_t index;		/* of the event that set it */
	uint64_t tock;		/* the entry's tock (its modifiedIndex) */
};

struct mirror {
	struct mnode **b;
	size_t nb, n;
};

static size_t
mirror_slot(const struct mirror *m, const char *key)
{
	return (size_t)(XXH3_64bits(key, strlen(key)) & (m->nb - 1));
}

static void
mnode_free(struct mnode *n)
{
	free(n->key);
	free(n->value);
	free(n);
}

/* Remove key; returns the node (caller frees) or NULL. */
static struct mnode *
mirror_take(struct mirror *m, const char *key)
{
	struct mnode **pp, *n;

	if (m->nb == 0)
		return NULL;
	for (pp = &m->b[mirror_slot(m, key)]; (n = *pp) != NULL; pp = &n->next)
		if (strcmp(n->key, key) == 0) {
			*pp = n->next;
			m->n--;
			return n;
		}
	return NULL;
}

static int
mirror_put(struct mirror *m, struct mnode *n)
{
	size_t s;

	if (m->n + 1 > m->nb) {
		size_t nb = m->nb ? m->nb * 2 : 1024, i;
		struct mnode **b = calloc(nb, sizeof(*b)), *x, *next;

		if (b == NULL)
			return -ENOMEM;
		for (i = 0; i < m->nb; i++)
			for (x = m->b[i]; x != NULL; x = next) {
				next = x->next;
				s = (size_t)(XXH3_64bits(x->key,
				    strlen(x->key)) & (nb - 1));
				x->next = b[s];
				b[s] = x;
			}
		free(m->b);
		m->b = b;
		m->nb = nb;
	}
	s = mirror_slot(m, n->key);
	n->next = m->b[s];
	m->b[s] = n;
	m->n++;
	return 0;
}

static void
mirror_free(struct mirror *m)
{
	size_t i;
	struct mnode *n, *next;

	for (i = 0; i < m->nb; i++)
		for (n = m->b[i]; n != NULL; n = next) {
			next = n->next;
			mnode_free(n);
		}
	free(m->b);
	memset(m, 0, sizeof(*m));
}

static struct mnode *
mirror_find(const struct mirror *m, const char *key)
{
	struct mnode *n;

	if (m->nb == 0)
		return NULL;
	for (n = m->b[mirror_slot(m, key)]; n != NULL; n = n->next)
		if (strcmp(n->key, key) == 0)
			return n;
	return NULL;
}

/*
 * The directory counts: for every prefix of a mirrored key ("/a" and
 * "/a/b" for "/a/b/c"), how many mirrored keys lie below it.  A key with
 * a count is a directory; GET answers a key without one from the mirror.
 */
static void
dirs_add(struct mirror *d, const char *key, int delta)
{
	const char *s;

	for (s = strchr(key + 1, '/'); s != NULL; s = strchr(s + 1, '/')) {
		char *pre = strndup(key, (size_t)(s - key));
		struct mnode *n;

		if (pre == NULL)
			return;
		if ((n = mirror_find(d, pre)) != NULL) {
			n->index += (uint64_t)(int64_t)delta;
			if (n->index == 0)
				mnode_free(mirror_take(d, pre));
			free(pre);
		} else if (delta > 0 && (n = calloc(1, sizeof(*n))) != NULL) {
			n->key = pre;
			n->index = 1;
			if (mirror_put(d, n) != 0)
				mnode_free(n);
		} else {
			free(pre);
		}
	}
}

/* ---- events, in-flight writes, waiters ---- */

struct hevent {
	uint64_t index, tock;
	const char *action;
	char *key;
	bool dir;		/* the node (and the deleted node) is a dir */
	char *value;		/* NULL for delete and dirs */
	size_t vlen;
	bool has_prev, prev_dir;
	char *prev_value;
	size_t prev_vlen;
	uint64_t prev_index;
	bool ready;		/* false while a write of the key is in flight */
};

struct inflight {
	struct inflight *next;
	char *key;
	const char *action;
	uint64_t tock;		/* set when the reply came */
	bool ended, seen;	/* reply came / feed labelled the event */
};

struct hwaiter {
	struct hwaiter *prev, *next;
	struct history *h;
	char *key;
	bool recursive;
	uint64_t since;
	int fd;
	void (*wake)(void *);
	void *arg;
	bool suspended, dead;
	char *body;
	size_t blen;
};

struct history {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	pthread_t thread;
	bool thread_started, stop, failed, uptodate;
	int stop_pipe[2];
	int wake_pipe[2];	/* history_async_set left output to send */
	/*
	 * Guards c: the feed thread reads it, and history_async_set sends
	 * the gateway's plain sets on it too.  Taken before mu, never
	 * while holding it.
	 */
	pthread_mutex_t cmu;
	distkv *c;
	distkv_path *prefix;
	size_t plen;		/* elements of the prefix */
	struct mirror mirror;
	struct mirror dirs;		/* prefix -> keys below (dirs_add) */
	struct hevent *ring;
	size_t cap, head, count;	/* head: oldest */
	bool dropped;			/* an event fell off the ring */
	uint64_t index;			/* last event index / start index */
	uint64_t offered;		/* events up to here went to waiters */
	struct inflight *inflight;
	struct hwaiter *waiters;
};

static struct hevent *
ring_at(struct history *h, size_t i)
{
	return &h->ring[(h->head + i) % h->cap];
}

static void
event_clear(struct hevent *e)
{
	free(e->key);
	free(e->value);
	free(e->prev_value);
	memset(e, 0, sizeof(*e));
}

/* Is the event's key key itself or (recursive) below it, not hidden? */
static bool
event_matches(const struct hevent *e, const char *key, bool recursive)
{
	size_t kl = strlen(key);
	const char *rest;

	if (strcmp(e->key, key) == 0)
		return true;
	if (!recursive)
		return false;
	if (strcmp(key, "/") == 0) {
		kl = 0;
	} else if (strncmp(e->key, key, kl) != 0 || e->key[kl] != '/')
		return false;
	/* etcd's recursive watchers skip hidden keys below the watched one */
	for (rest = e->key + kl; rest != NULL && *rest != '\0';
	    rest = strchr(rest + 1, '/'))
		if (rest[1] == '_')
			return false;
	return true;
}

static char *
event_body(const struct hevent *e, size_t *len)
{
	json_t *o = json_object();

	json_object_set_new(o, "action", json_string(e->action));
	json_object_set_new(o, "node", v2node_new(e->key, e->dir, e->value,
	    e->vlen, e->index, e->value != NULL || e->dir ? e->index :
	    (e->has_prev ? e->prev_index : e->index)));
	if (e->has_prev)
		json_object_set_new(o, "prevNode", v2node_new(e->key,
		    e->prev_dir, e->prev_value, e->prev_vlen, e->prev_index,
		    e->prev_index));
	return v2node_dump(o, len);
}

/*
 * Ring position of the oldest event not yet offered to waiters (count if
 * none).  Every event up to h->offered is ready, and only the newest few
 * are not, so this walks back from the newest: a write does not pay for
 * the whole history.
 */
static size_t
first_unoffered(struct history *h)
{
	size_t i = h->count;

	while (i > 0 && ring_at(h, i - 1)->index > h->offered)
		i--;
	return i;
}

/* Offer the ready events after h->offered to the waiters. Lock held. */
static void
offer_events(struct history *h)
{
	size_t i;

	for (i = first_unoffered(h); i < h->count; i++) {
		struct hevent *e = ring_at(h, i);
		struct hwaiter *w;

		if (!e->ready)
			break;	/* keep the order: nothing after a held one */
		h->offered = e->index;
		for (w = h->waiters; w != NULL; w = w->next) {
			if (w->body != NULL || w->dead || e->index < w->since ||
			    !event_matches(e, w->key, w->recursive))
				continue;
			w->body = event_body(e, &w->blen);
			if (w->body == NULL)
				w->dead = true;
			if (w->suspended && w->wake != NULL) {
				w->suspended = false;
				w->wake(w->arg);
			}
		}
	}
}

/* ---- the feed ---- */

/* "/a/b" for the elements of p after the prefix; NULL if one is not a
 * string (such entries are hidden from the gateway, docs/etcd.md). */
static char *
item_key(struct history *h, const distkv_path *p)
{
	size_t n = distkv_path_len(p), i, len = 0;
	struct distkv_elem el;
	char *k, *q;

	if (n <= h->plen)
		return NULL;
	for (i = h->plen; i < n; i++) {
		if (distkv_path_elem(p, i, &el) != 0 ||
		    el.type != DISTKV_ELEM_STR || el.len == 0 ||
		    memchr(el.s, '/', el.len) != NULL ||
		    memchr(el.s, '\0', el.len) != NULL)
			return NULL;
		len += 1 + el.len;
	}
	if ((k = malloc(len + 1)) == NULL)
		return NULL;
	q = k;
	for (i = h->plen; i < n; i++) {
		distkv_path_elem(p, i, &el);
		*q++ = '/';
		memcpy(q, el.s, el.len);
		q += el.len;
	}
	*q = '\0';
	return k;
}

/* Label an event with an in-flight write of its key, or hold it. */
static void
event_label(struct history *h, struct hevent *e)
{
	struct inflight *f;

	e->ready = true;
	for (f = h->inflight; f != NULL; f = f->next) {
		if (strcmp(f->key, e->key) != 0 || f->seen)
			continue;
		if (f->ended && f->tock == e->tock) {
			if (e->value != NULL || e->dir ||
			    strcmp(f->action, "delete") == 0 ||
			    strcmp(f->action, "compareAndDelete") == 0)
				e->action = f->action;
			f->seen = true;
			pthread_cond_broadcast(&h->cond);
		} else if (!f->ended)
			e->ready = false;
	}
}

static void
feed_item(struct history *h, const struct distkv_entry *it)
{
	struct mnode *old, *nn = NULL;
	struct hevent ev;
	bool dir = false;
	char *key, *text = NULL;
	size_t tlen = 0;

	if ((key = item_key(h, it->path)) == NULL)
		return;
	if (!distkv_value_is_nil(it->value.data, it->value.len) &&
	    v2node_value(it->value.data, it->value.len, &dir, &text,
	    &tlen) != 0) {
		free(key);
		return;
	}
	if ((old = mirror_take(&h->mirror, key)) != NULL)
		dirs_add(&h->dirs, key, -1);
	if (text != NULL || dir) {
		if ((nn = calloc(1, sizeof(*nn))) == NULL ||
		    (nn->key = strdup(key)) == NULL) {
			free(nn);
			nn = NULL;
		} else {
			nn->dir = dir;
			nn->value = text;
			nn->vlen = tlen;
			text = NULL;
		}
	}
	if (!h->uptodate) {
		/* the fetch: the state before the gateway started */
		if (nn != NULL) {
			nn->index = nn->tock = it->tock;
			if (mirror_put(&h->mirror, nn) != 0)
				mnode_free(nn);
			else
				dirs_add(&h->dirs, key, 1);
		}
		if (it->tock > h->index)
			h->index = it->tock;
		h->offered = h->index;
		if (old != NULL)
			mnode_free(old);
		free(key);
		free(text);
		return;
	}
	if (nn == NULL && old == NULL) {
		/* an entry without value that etcd never saw: no event */
		free(key);
		free(text);
		return;
	}
	memset(&ev, 0, sizeof(ev));
	ev.tock = it->tock;
	ev.index = it->tock > h->index ? it->tock : h->index + 1;
	h->index = ev.index;
	ev.key = key;
	if (nn != NULL) {
		ev.action = "set";
		ev.dir = nn->dir;
		if (nn->value != NULL && (ev.value = malloc(nn->vlen + 1))) {
			memcpy(ev.value, nn->value, nn->vlen + 1);
			ev.vlen = nn->vlen;
		}
		nn->index = ev.index;
		nn->tock = it->tock;
	} else {
		ev.action = "delete";
		ev.dir = old->dir;
	}
	if (old != NULL) {
		ev.has_prev = true;
		ev.prev_dir = old->dir;
		ev.prev_value = old->value;
		ev.prev_vlen = old->vlen;
		ev.prev_index = old->index;
		old->value = NULL;
		mnode_free(old);
	}
	if (nn != NULL) {
		if (mirror_put(&h->mirror, nn) != 0)
			mnode_free(nn);
		else
			dirs_add(&h->dirs, ev.key, 1);
	}
	event_label(h, &ev);
	if (h->count == h->cap) {
		event_clear(ring_at(h, 0));
		h->head = (h->head + 1) % h->cap;
		h->count--;
		h->dropped = true;
	}
	*ring_at(h, h->count) = ev;
	h->count++;
	offer_events(h);
	free(text);
}

static void
feed_cb(void *arg, int rc, const struct distkv_entry *e)
{
	struct history *h = arg;

	pthread_mutex_lock(&h->mu);
	if (rc != 0) {
		h->failed = true;
	} else if (e == NULL) {
		h->uptodate = true;
		h->offered = h->index;
	} else {
		feed_item(h, e);
	}
	pthread_cond_broadcast(&h->cond);
	pthread_mutex_unlock(&h->mu);
}

/* Mark waiters whose client hung up as dead and wake them. Lock held. */
static void
sweep_waiters(struct history *h)
{
	struct hwaiter *w;

	for (w = h->waiters; w != NULL; w = w->next) {
		struct pollfd pfd;

		if (!w->suspended || w->fd < 0)
			continue;
		pfd.fd = w->fd;
		pfd.events = POLLRDHUP;
		pfd.revents = 0;
		if (poll(&pfd, 1, 0) == 1 &&
		    (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))) {
			w->dead = true;
			w->suspended = false;
			if (w->wake != NULL)
				w->wake(w->arg);
		}
	}
}

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
feed_failed(struct history *h)
{
	pthread_mutex_lock(&h->mu);
	h->failed = true;
	pthread_cond_broadcast(&h->cond);
	pthread_mutex_unlock(&h->mu);
}

/* Read and send what the agent socket allows, under cmu; false: dead. */
static bool
feed_process(struct history *h, bool *want_write)
{
	int rc;

	pthread_mutex_lock(&h->cmu);
	rc = distkv_process(h->c);
	*want_write = rc == 0 && distkv_want_write(h->c);
	pthread_mutex_unlock(&h->cmu);
	if (rc != 0)
		feed_failed(h);
	return rc == 0;
}

/*
 * One poll round on the agent socket, the stop pipe and the wake pipe;
 * false: stop.
 */
static bool
feed_round(struct history *h, int timeout)
{
	struct pollfd p[3];
	bool want;
	char drain[64];

	pthread_mutex_lock(&h->cmu);
	p[0].fd = distkv_fd(h->c);
	p[0].events = POLLIN | (distkv_want_write(h->c) ? POLLOUT : 0);
	pthread_mutex_unlock(&h->cmu);
	p[1].fd = h->stop_pipe[0];
	p[1].events = POLLIN;
	p[2].fd = h->wake_pipe[0];
	p[2].events = POLLIN;
	p[0].revents = p[1].revents = p[2].revents = 0;
	if (poll(p, 3, timeout) < 0 && errno != EINTR)
		return false;
	if (p[1].revents != 0)
		return false;
	if (p[2].revents != 0)
		while (read(h->wake_pipe[0], drain, sizeof(drain)) > 0)
			;
	if ((p[0].revents != 0 || p[2].revents != 0) &&
	    !feed_process(h, &want))
		return false;
	return !history_failed(h);
}

static void *
feed_main(void *arg)
{
	struct history *h = arg;
	long long next = now_ms() + SWEEP_MS;

	for (;;) {
		long long t = now_ms();

		if (t >= next) {
			pthread_mutex_lock(&h->mu);
			sweep_waiters(h);
			pthread_mutex_unlock(&h->mu);
			next = t + SWEEP_MS;
		}
		if (!feed_round(h, (int)(next - t)))
			break;
	}
	/* wake everything that waits for the feed */
	pthread_mutex_lock(&h->mu);
	h->failed = true;
	pthread_cond_broadcast(&h->cond);
	pthread_mutex_unlock(&h->mu);
	return NULL;
}

/* ---- public ---- */

int
history_open(const char *socket, const distkv_path *prefix, size_t capacity,
    int timeout_ms, struct history **out)
{
	struct distkv_tree_opts o = { 0, -1, 0, true };
	struct history *h;
	long long deadline = now_ms() + timeout_ms;
	int rc;

	*out = NULL;
	if ((h = calloc(1, sizeof(*h))) == NULL)
		return -ENOMEM;
	pthread_mutex_init(&h->mu, NULL);
	pthread_mutex_init(&h->cmu, NULL);
	pthread_cond_init(&h->cond, NULL);
	h->stop_pipe[0] = h->stop_pipe[1] = -1;
	h->wake_pipe[0] = h->wake_pipe[1] = -1;
	h->cap = capacity > 0 ? capacity : 1;
	if ((h->ring = calloc(h->cap, sizeof(*h->ring))) == NULL ||
	    pipe2(h->stop_pipe, O_CLOEXEC) != 0 ||
	    pipe2(h->wake_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
		rc = -ENOMEM;
		goto out;
	}
	if ((rc = distkv_path_dup(prefix, &h->prefix)) != 0 ||
	    (rc = distkv_connect(socket, &h->c)) != 0)
		goto out;
	h->plen = distkv_path_len(prefix);
	if ((rc = distkv_async_watch(h->c, prefix, &o, feed_cb, h, NULL)) != 0)
		goto out;
	/* the fetch, on this thread: nobody else uses h yet */
	while (!h->uptodate && !h->failed) {
		long long left = deadline - now_ms();

		if (left <= 0) {
			rc = DISTKV_ETIMEDOUT;
			goto out;
		}
		if (!feed_round(h, (int)left) && !h->uptodate) {
			rc = DISTKV_EDISCONNECTED;
			goto out;
		}
	}
	if (h->failed) {
		rc = DISTKV_EDISCONNECTED;
		goto out;
	}
	if (pthread_create(&h->thread, NULL, feed_main, h) != 0) {
		rc = -EAGAIN;
		goto out;
	}
	h->thread_started = true;
	*out = h;
	return 0;
out:
	history_close(h);
	return rc;
}

void
history_close(struct history *h)
{
	struct hwaiter *w;
	struct inflight *f, *fn;
	size_t i;

	if (h == NULL)
		return;
	if (h->thread_started) {
		if (write(h->stop_pipe[1], "x", 1) < 0) {
			/* the thread also stops on the failed flag below */
		}
		pthread_mutex_lock(&h->mu);
		h->stop = true;
		pthread_mutex_unlock(&h->mu);
		pthread_join(h->thread, NULL);
	}
	pthread_mutex_lock(&h->mu);
	for (w = h->waiters; w != NULL; w = w->next) {
		w->dead = true;
		w->h = NULL;
	}
	h->waiters = NULL;
	pthread_mutex_unlock(&h->mu);
	for (f = h->inflight; f != NULL; f = fn) {
		fn = f->next;
		free(f->key);
		free(f);
	}
	for (i = 0; i < h->count; i++)
		event_clear(ring_at(h, i));
	free(h->ring);
	mirror_free(&h->mirror);
	mirror_free(&h->dirs);
	distkv_close(h->c);
	distkv_path_free(h->prefix);
	for (i = 0; i < 2; i++) {
		if (h->stop_pipe[i] >= 0)
			close(h->stop_pipe[i]);
		if (h->wake_pipe[i] >= 0)
			close(h->wake_pipe[i]);
	}
	pthread_cond_destroy(&h->cond);
	pthread_mutex_destroy(&h->cmu);
	pthread_mutex_destroy(&h->mu);
	free(h);
}

bool
history_failed(struct history *h)
{
	bool f;

	pthread_mutex_lock(&h->mu);
	f = h->failed || h->stop;
	pthread_mutex_unlock(&h->mu);
	return f;
}

static void
deadline_ts(struct timespec *ts, int ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

void
history_wait_failed(struct history *h, int timeout_ms)
{
	struct timespec ts;

	deadline_ts(&ts, timeout_ms);
	pthread_mutex_lock(&h->mu);
	while (!h->failed &&
	    pthread_cond_timedwait(&h->cond, &h->mu, &ts) == 0)
		;
	pthread_mutex_unlock(&h->mu);
}

uint64_t
history_index(struct history *h)
{
	uint64_t i;

	pthread_mutex_lock(&h->mu);
	i = h->index;
	pthread_mutex_unlock(&h->mu);
	return i;
}

void *
history_write_begin(struct history *h, const char *key, const char *action)
{
	struct inflight *f = calloc(1, sizeof(*f));

	if (f == NULL || (f->key = strdup(key)) == NULL) {
		free(f);
		return NULL;
	}
	f->action = action;
	pthread_mutex_lock(&h->mu);
	f->next = h->inflight;
	h->inflight = f;
	pthread_mutex_unlock(&h->mu);
	return f;
}

/*
 * End write f (see history_write_end); wait: until the feed has its
 * event, else (the feed's own connection carried the write) the event
 * came before the reply.
 */
static void
write_end(struct history *h, struct inflight *f, uint64_t tock, bool wait)
{
	struct inflight **pp, *o;
	struct timespec ts;
	size_t i;

	if (f == NULL)
		return;
	pthread_mutex_lock(&h->mu);
	f->ended = true;
	f->tock = tock;
	/* label our event if it came already, release held events */
	for (i = first_unoffered(h); i < h->count; i++) {
		struct hevent *e = ring_at(h, i);
		bool other = false;

		if (e->ready || strcmp(e->key, f->key) != 0)
			continue;
		if (tock != 0 && e->tock == tock && !f->seen) {
			if (e->value != NULL || e->dir ||
			    strstr(f->action, "elete") != NULL)
				e->action = f->action;
			f->seen = true;
		}
		for (o = h->inflight; o != NULL; o = o->next)
			if (o != f && !o->ended && strcmp(o->key, f->key) == 0)
				other = true;
		if (!other)
			e->ready = true;
	}
	offer_events(h);
	/* the reply's index must be in the history before the reply goes */
	deadline_ts(&ts, WRITE_WAIT_MS);
	while (wait && tock != 0 && !f->seen && !h->failed &&
	    h->index < tock &&
	    pthread_cond_timedwait(&h->cond, &h->mu, &ts) == 0)
		;
	for (pp = &h->inflight; *pp != NULL; pp = &(*pp)->next)
		if (*pp == f) {
			*pp = f->next;
			break;
		}
	pthread_mutex_unlock(&h->mu);
	free(f->key);
	free(f);
}

void
history_write_end(struct history *h, void *token, uint64_t tock)
{
	write_end(h, token, tock, true);
}

/* One plain set on the feed's connection (history_async_set). */
struct async_set {
	struct history *h;
	struct inflight *f;
	history_set_done *done;
	void *arg;
};

static void
async_set_cb(void *arg, int rc, const struct distkv_set_result *r)
{
	struct async_set *x = arg;
	uint64_t tock = rc == 0 && r != NULL ? r->tock : 0;

	/*
	 * The agent queues a change's watch item in its apply, before the
	 * reply, and both came on this connection: the feed has the event.
	 */
	write_end(x->h, x->f, tock, false);
	x->done(x->arg, rc, tock);
	free(x);
}

int
history_async_set(struct history *h, const char *key, const char *action,
    const distkv_path *p, const void *value, size_t len,
    history_set_done *done, void *arg)
{
	struct distkv_set_opts o;
	struct async_set *x;
	bool want = false;
	int rc;

	memset(&o, 0, sizeof(o));
	if ((x = calloc(1, sizeof(*x))) == NULL)
		return -ENOMEM;
	x->h = h;
	x->done = done;
	x->arg = arg;
	if ((x->f = history_write_begin(h, key, action)) == NULL) {
		free(x);
		return -ENOMEM;
	}
	pthread_mutex_lock(&h->cmu);
	rc = distkv_async_set(h->c, p, value, len, &o, async_set_cb, x, NULL);
	pthread_mutex_unlock(&h->cmu);
	if (rc != 0) {
		write_end(h, x->f, 0, false);
		free(x);
		return rc;
	}
	/*
	 * Send it now, not when the feed thread next wakes; what the socket
	 * did not take, the feed thread sends once woken (its poll waits for
	 * POLLOUT only if it saw output queued when it started).
	 */
	if (feed_process(h, &want) && want &&
	    write(h->wake_pipe[1], "w", 1) < 0) {
		/* a full pipe: the feed thread is awake already */
	}
	return 0;
}

int
history_watch(struct history *h, const char *key, bool recursive,
    uint64_t since, char **body, size_t *blen, struct hwaiter **wout,
    uint64_t *index, char **cause)
{
	struct hwaiter *w;
	size_t i;

	*body = NULL;
	*blen = 0;
	*wout = NULL;
	*cause = NULL;
	pthread_mutex_lock(&h->mu);
	*index = h->index;
	if (since == 0)
		since = h->index + 1;
	if (h->dropped && h->count > 0 && since < ring_at(h, 0)->index) {
		uint64_t start = ring_at(h, 0)->index;

		pthread_mutex_unlock(&h->mu);
		if (asprintf(cause, "the requested history has been cleared "
		    "[%" PRIu64 "/%" PRIu64 "]", start, since) < 0)
			*cause = NULL;
		return V2E_EVENT_INDEX_CLEARED;
	}
	for (i = 0; i < h->count; i++) {
		struct hevent *e = ring_at(h, i);

		if (!e->ready)
			break;
		if (e->index >= since && event_matches(e, key, recursive)) {
			*body = event_body(e, blen);
			pthread_mutex_unlock(&h->mu);
			return *body != NULL ? 0 : -ENOMEM;
		}
	}
	if ((w = calloc(1, sizeof(*w))) == NULL ||
	    (w->key = strdup(key)) == NULL) {
		free(w);
		pthread_mutex_unlock(&h->mu);
		return -ENOMEM;
	}
	w->h = h;
	w->recursive = recursive;
	w->since = since;
	w->fd = -1;
	w->next = h->waiters;
	if (h->waiters != NULL)
		h->waiters->prev = w;
	h->waiters = w;
	if (h->failed || h->stop)
		w->dead = true;
	pthread_mutex_unlock(&h->mu);
	*wout = w;
	return 0;
}

/*
 * A waiter whose history is gone (history_close ran) has w->h NULL and is
 * dead; it only needs freeing.  That happens after the HTTP daemon has
 * stopped, so no lock is needed for those.
 */
void
history_waiter_arm(struct hwaiter *w, int fd, void (*wake)(void *), void *arg)
{
	if (w->h == NULL)
		return;
	pthread_mutex_lock(&w->h->mu);
	w->fd = fd;
	w->wake = wake;
	w->arg = arg;
	pthread_mutex_unlock(&w->h->mu);
}

int
history_waiter_take(struct hwaiter *w, char **body, size_t *blen,
    void (*suspend)(void *), void *arg)
{
	struct history *h = w->h;
	int r = 0;

	*body = NULL;
	*blen = 0;
	if (h == NULL)
		return -1;
	pthread_mutex_lock(&h->mu);
	if (w->body != NULL) {
		*body = w->body;
		*blen = w->blen;
		w->body = NULL;
		w->dead = true;	/* one event per long-poll */
		r = 1;
	} else if (w->dead || h->failed || h->stop) {
		r = -1;
	} else {
		w->suspended = true;
		suspend(arg);
	}
	pthread_mutex_unlock(&h->mu);
	return r;
}

void
history_waiter_free(struct hwaiter *w)
{
	struct history *h;

	if (w == NULL)
		return;
	if ((h = w->h) != NULL) {
		pthread_mutex_lock(&h->mu);
		if (w->prev != NULL)
			w->prev->next = w->next;
		else
			h->waiters = w->next;
		if (w->next != NULL)
			w->next->prev = w->prev;
		pthread_mutex_unlock(&h->mu);
	}
	free(w->key);
	free(w->body);
	free(w);
}

void
history_stop_waiters(struct history *h)
{
	struct hwaiter *w;

	pthread_mutex_lock(&h->mu);
	h->stop = true;
	for (w = h->waiters; w != NULL; w = w->next) {
		w->dead = true;
		if (w->suspended && w->wake != NULL) {
			w->suspended = false;
			w->wake(w->arg);
		}
	}
	pthread_mutex_unlock(&h->mu);
}

int
history_get_file(struct history *h, const char *key, char **text,
    size_t *tlen, uint64_t *tock, uint64_t *index)
{
	struct mnode *n;
	int r = 0;

	*text = NULL;
	pthread_mutex_lock(&h->mu);
	n = mirror_find(&h->mirror, key);
	if (n != NULL && !n->dir && n->value != NULL &&
	    mirror_find(&h->dirs, key) == NULL &&
	    (*text = malloc(n->vlen + 1)) != NULL) {
		memcpy(*text, n->value, n->vlen + 1);
		*tlen = n->vlen;
		*tock = n->tock;
		*index = h->index;
		r = 1;
	}
	pthread_mutex_unlock(&h->mu);
	return r;
}
