/*
 * distkv-cli tree, watch, wait: subtrees and changes (docs/cli.md).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <msgpack.h>

#include "distkv.h"
#include "cli.h"

struct wstate;

static int	cmd_tree(struct ctx *);
static int	cmd_watch(struct ctx *);
static int	cmd_wait(struct ctx *);
static int	cmd_wait_check(struct ctx *, const struct cli_cmd *);
static int	tree_cb(void *, const struct distkv_entry *);
static int	watch_cb(void *, const struct distkv_entry *);
static void	wstate_clear(struct wstate *);
static bool	wstate_differs(const struct wstate *, const struct wstate *);
static int	wstate_set(struct wstate *, const void *, size_t, uint64_t);
static int	wstate_read_shm(struct wstate *, distkv_shm *,
		    const distkv_path *);
static long long now_ms(void);
static int	wait_shm(struct ctx *, distkv_shm *, struct wstate *, bool *);
static int	wait_cb(void *, const struct distkv_entry *);
static int	wait_socket(struct ctx *, struct wstate *);
static int	wait_print(struct ctx *, const struct wstate *);

static const enum optid tree_opts[] = {
	O_KEYS, O_NCHAIN, O_MINDEPTH, O_MAXDEPTH, O_END
};
static const enum optid watch_opts[] = {
	O_FETCH, O_NCHAIN, O_MINDEPTH, O_MAXDEPTH, O_COUNT, O_END
};
static const enum optid wait_opts[] = { O_CHANGES, O_END };

const struct cli_cmd cmd_tree_entry = {
	.name = "tree",
	.usage = "tree [-k] [-c N] [--min-depth N] [--max-depth N] [PATH]",
	.summary = "list PATH and everything below it",
	.help =
	    "Print every entry with a value at or below PATH (default: the\n"
	    "whole tree), parents before children, one \"PATH = VALUE\" line\n"
	    "each with the value as JSON.  Depth 0 is PATH itself.  With -c N\n"
	    "the chain is appended as \"  [NODE:TICK ...]\".  With -k (--keys)\n"
	    "only the paths are printed, one per line (--json: {\"path\":...}).\n"
	    "\n"
	    "Examples:\n"
	    "  distkv-cli tree svc\n"
	    "  svc/web/host = \"www1.example.org\"\n"
	    "  svc/web/port = 8080\n"
	    "  distkv-cli tree --max-depth 1 svc\n"
	    "  distkv-cli tree --json svc | jq -r .path\n"
	    "  distkv-cli tree --keys svc\n",
	.opts = tree_opts,
	.minargs = 0,
	.maxargs = 1,
	.flags = CMD_CONNECT | CMD_PATH,
	.check = NULL,
	.exec = cmd_tree,
};

const struct cli_cmd cmd_watch_entry = {
	.name = "watch",
	.usage = "watch [--fetch] [-c N] [--min-depth N] "
	    "[--max-depth N] [-n COUNT] [-t SECONDS] [PATH]",
	.summary = "print changes at or below PATH as they happen",
	.help =
	    "Print one line for every change at or below PATH (default: the\n"
	    "whole tree), as \"PATH = VALUE\" or \"PATH (no value)\" for a\n"
	    "deletion.  With --fetch the current entries are printed first\n"
	    "(value-less ones included), then \"(up to date)\" (JSON:\n"
	    "{\"state\":\"uptodate\"}).  Runs until interrupted (Ctrl-C), until\n"
	    "COUNT changes were printed (-n; the --fetch part does not count)\n"
	    "or SECONDS passed (-t, fractions allowed; exit 0).  With --raw a\n"
	    "deletion is the line \"(no value)\".  Output is flushed after every\n"
	    "line.\n"
	    "\n"
	    "Examples:\n"
	    "  distkv-cli watch svc\n"
	    "  distkv-cli watch --fetch --json svc/web\n"
	    "  distkv-cli watch -n 1 -t 60 deploy/trigger  # wait for one change\n",
	.opts = watch_opts,
	.minargs = 0,
	.maxargs = 1,
	.flags = CMD_CONNECT | CMD_PATH | CMD_OWNTIMEOUT,
	.check = NULL,
	.exec = cmd_watch,
};

const struct cli_cmd cmd_wait_entry = {
	.name = "wait",
	.usage = "wait [-t SECONDS] PATH | wait --changes "
	    "[-t SECONDS]",
	.summary = "block until the value at PATH changes",
	.help =
	    "Block until the value at PATH differs from the one it had when wait\n"
	    "started (appearing and disappearing count; storing the value it\n"
	    "already has does not), then print the new value as get does and\n"
	    "exit 0.  A deletion prints nothing (--json: {\"path\":...,\n"
	    "\"value\":null}).  With -t, give up after SECONDS (fractions\n"
	    "allowed: -t 0.5): a message and\n"
	    "exit status 1.  With --changes (no PATH) return, printing nothing,\n"
	    "as soon as anything in the tree changed.  Sleeps on the shared-\n"
	    "memory region's change word when the agent has one, else (or with\n"
	    "--no-shm) watches PATH over the socket; never polls.\n"
	    "\n"
	    "Examples:\n"
	    "  distkv-cli wait svc/web/port\n"
	    "  8081\n"
	    "  distkv-cli wait -t 60 deploy/trigger || echo \"nothing happened\"\n"
	    "  while distkv-cli wait --changes; do ./refresh-cache; done\n",
	.opts = wait_opts,
	.minargs = 0,
	.maxargs = 1,
	.flags = CMD_CONNECT | CMD_PATH | CMD_OWNTIMEOUT,
	.check = cmd_wait_check,
	.exec = cmd_wait,
};

/* wait PATH, or wait --changes without one. */
static int
cmd_wait_check(struct ctx *ctx, const struct cli_cmd *cmd)
{
	if (ctx->changes == (ctx->argc == 1))
		return (cli_err(EXIT_USAGE, "usage: distkv-cli %s",
		    cmd->usage));
	return (0);
}

struct list_arg {
	struct ctx	*ctx;
	msgpack_sbuffer	 b;
	int		 rc;	/* exit status of a failed print */
	bool		 uptodate;	/* watch: the --fetch part is over */
};

static int
tree_cb(void *arg, const struct distkv_entry *e)
{
	struct list_arg *la = arg;
	struct ctx *ctx = la->ctx;
	int rc;

	if (!ctx->keys)
		la->rc = put_entry(ctx, &la->b, e->path, e, false);
	else {
		/* --keys: the path alone (--json: {"path":PATH}) */
		if (ctx->out == OUT_JSON)
			rc = put(&la->b, "{\"path\":") != 0 ||
			    put_path(&la->b, e->path, true) != 0 ||
			    put(&la->b, "}\n") != 0;
		else
			rc = put_path(&la->b, e->path, false) != 0 ||
			    put(&la->b, "\n") != 0;
		if (rc != 0)
			la->rc = cli_err(EXIT_AGENT, "out of memory");
		else if (emit(&la->b) != 0)
			la->rc = cli_err(EXIT_AGENT, "write error: %s",
			    strerror(errno));
	}
	return (la->rc != 0);
}

static int
cmd_tree(struct ctx *ctx)
{
	struct distkv_tree_opts to;
	struct list_arg la;
	int rc;

	memset(&la, 0, sizeof(la));
	la.ctx = ctx;
	memset(&to, 0, sizeof(to));
	to.min_depth = ctx->min_depth;
	to.max_depth = ctx->max_depth;
	to.nchain = ctx->nchain;
	rc = distkv_get_tree(ctx->c, ctx->path, &to, tree_cb, &la);
	if (la.rc != 0)
		rc = la.rc;
	else if (rc != 0)
		rc = lib_error(ctx, rc, ctx->label);
	msgpack_sbuffer_destroy(&la.b);
	return (rc);
}

static int
watch_cb(void *arg, const struct distkv_entry *e)
{
	struct list_arg *la = arg;
	struct ctx *ctx = la->ctx;

	if (e == NULL) {
		/* end of the --fetch part: from now on, changes */
		la->uptodate = true;
		if (ctx->out == OUT_RAW)
			return (0);
		if (put(&la->b, ctx->out == OUT_JSON ?
		    "{\"state\":\"uptodate\"}\n" : "(up to date)\n") != 0 ||
		    emit(&la->b) != 0) {
			la->rc = cli_err(EXIT_AGENT, "write error");
			return (1);
		}
		return (0);
	}
	if ((la->rc = put_entry(ctx, &la->b, e->path, e, false)) != 0)
		return (1);
	/* -n counts changes; what --fetch printed first is none */
	if (ctx->fetch && !la->uptodate)
		return (0);
	ctx->seen++;
	return (ctx->count > 0 && ctx->seen >= ctx->count);
}

static int
cmd_watch(struct ctx *ctx)
{
	struct distkv_tree_opts to;
	struct list_arg la;
	int rc;

	memset(&la, 0, sizeof(la));
	la.ctx = ctx;
	memset(&to, 0, sizeof(to));
	to.min_depth = ctx->min_depth;
	to.max_depth = ctx->max_depth;
	to.nchain = ctx->nchain;
	to.fetch = ctx->fetch;
	rc = distkv_watch(ctx->c, ctx->path, &to, ctx->timeout_ms, watch_cb,
	    &la);
	if (la.rc != 0)
		rc = la.rc;
	else if (rc == DISTKV_ETIMEDOUT && ctx->timeout_ms >= 0)
		rc = 0;		/* -t: stopping is what was asked for */
	else if (rc != 0)
		rc = lib_error(ctx, rc, ctx->label);
	msgpack_sbuffer_destroy(&la.b);
	return (rc);
}
/* ---- wait ---- */

/*
 * What wait compares: whether PATH has a value, and its bytes.  The tock
 * only goes into the output.  The buffer is reused between reads.
 */
struct wstate {
	bool		 has;		/* false: unset or deleted */
	uint8_t		*buf;		/* the value (msgpack) */
	size_t		 len;
	size_t		 cap;
	uint64_t	 tock;
};

static void
wstate_clear(struct wstate *w)
{
	free(w->buf);
	memset(w, 0, sizeof(*w));
}

static bool
wstate_differs(const struct wstate *a, const struct wstate *b)
{
	if (a->has != b->has)
		return (true);
	return (a->has && (a->len != b->len ||
	    memcmp(a->buf, b->buf, a->len) != 0));
}

/* Copy a value (len 0 or msgpack nil: no value).  0 or -ENOMEM. */
static int
wstate_set(struct wstate *w, const void *data, size_t len, uint64_t tock)
{
	uint8_t *nb;

	w->tock = tock;
	w->has = len > 0 && !distkv_value_is_nil(data, len);
	w->len = 0;
	if (!w->has)
		return (0);
	if (len > w->cap) {
		if ((nb = realloc(w->buf, len)) == NULL)
			return (-ENOMEM);
		w->buf = nb;
		w->cap = len;
	}
	memcpy(w->buf, data, len);
	w->len = len;
	return (0);
}

/* PATH's state from the region: 0, or a distkv_shm_get() error. */
static int
wstate_read_shm(struct wstate *w, distkv_shm *s, const distkv_path *p)
{
	struct distkv_shm_meta m;
	size_t need;
	uint8_t *nb;
	int rc;

	if (w->cap == 0) {
		if ((w->buf = malloc(256)) == NULL)
			return (-ENOMEM);
		w->cap = 256;
	}
	while ((rc = distkv_shm_get(s, p, w->buf, w->cap, &need, &m)) ==
	    DISTKV_ETOOSMALL) {
		/* the value may grow again before the next try */
		if ((nb = realloc(w->buf, need)) == NULL)
			return (-ENOMEM);
		w->buf = nb;
		w->cap = need;
	}
	if (rc == DISTKV_ENOTFOUND) {
		w->has = false;
		w->len = 0;
		w->tock = 0;
		return (0);
	}
	if (rc != 0)
		return (rc);
	w->len = need;
	w->tock = m.tock;
	w->has = !distkv_value_is_nil(w->buf, w->len);
	return (0);
}

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

/* Longest single futex sleep: how soon an agent killed -9 is noticed. */
#define WAIT_SLICE_MS	1000

/*
 * wait through the shared-memory region: sleep on its change word, look
 * at PATH after every wake-up.  The word is read before the value, so a
 * change between the two ends the next sleep at once.  The sleep is cut
 * into slices only to notice an agent that died without closing the
 * region (kill -9); a closed region wakes us at once.  Returns 0 with *now
 * filled (changed), DISTKV_ETIMEDOUT, DISTKV_EDISCONNECTED (the agent is
 * gone) or a distkv_shm_get() error; *started false: the start value could
 * not be read (the caller may use the socket instead).
 */
static int
wait_shm(struct ctx *ctx, distkv_shm *s, struct wstate *now, bool *started)
{
	struct wstate start;
	long long deadline = -1, left;
	uint32_t seq, nseq;
	int rc, slice;

	memset(&start, 0, sizeof(start));
	*started = false;
	if (ctx->timeout_ms >= 0)
		deadline = now_ms() + ctx->timeout_ms;
	seq = distkv_shm_counter(s);
	if (!ctx->changes &&
	    (rc = wstate_read_shm(&start, s, ctx->path)) != 0)
		goto out;
	*started = true;
	for (;;) {
		slice = WAIT_SLICE_MS;
		if (deadline >= 0) {
			if ((left = deadline - now_ms()) <= 0) {
				rc = DISTKV_ETIMEDOUT;
				goto out;
			}
			if (left < slice)
				slice = (int)left;
		}
		rc = distkv_shm_wait(s, seq, slice);
		if (rc == DISTKV_ETIMEDOUT) {
			if (distkv_shm_alive(s) != 1) {
				rc = DISTKV_EDISCONNECTED;
				goto out;
			}
			continue;
		}
		if (rc != 0)
			goto out;
		nseq = distkv_shm_counter(s);
		/* closing the region counts as a change: is it one? */
		if (distkv_shm_alive(s) != 1) {
			rc = DISTKV_EDISCONNECTED;
			goto out;
		}
		if (ctx->changes) {
			if (nseq != seq) {
				rc = 0;
				goto out;
			}
			continue;
		}
		seq = nseq;
		rc = wstate_read_shm(now, s, ctx->path);
		if (rc == DISTKV_EBUSY)
			continue;	/* the writer's next change wakes us */
		if (rc != 0)
			goto out;
		if (wstate_differs(&start, now))
			goto out;
	}
out:
	wstate_clear(&start);
	return (rc);
}

struct wait_arg {
	struct ctx	*ctx;
	struct wstate	 start;		/* PATH as fetched */
	struct wstate	*now;
	bool		 uptodate;
	int		 rc;		/* -ENOMEM from a copy */
};

static int
wait_cb(void *arg, const struct distkv_entry *e)
{
	struct wait_arg *wa = arg;

	if (wa->ctx->changes)
		return (e != NULL);	/* any live item */
	if (e == NULL) {
		wa->uptodate = true;
		return (0);
	}
	if (e->depth != 0)
		return (0);
	if ((wa->rc = wstate_set(wa->uptodate ? wa->now : &wa->start,
	    e->value.data, e->value.len, e->tock)) != 0)
		return (1);
	return (wa->uptodate && wstate_differs(&wa->start, wa->now));
}

/*
 * wait over the socket: a watch of PATH alone whose fetch part gives the
 * start state; the first live item that differs ends it.  --changes: a
 * watch of the whole tree without fetch, ended by its first item.
 */
static int
wait_socket(struct ctx *ctx, struct wstate *now)
{
	struct distkv_tree_opts to;
	struct wait_arg wa;
	distkv_path *root = NULL;
	int rc;

	memset(&wa, 0, sizeof(wa));
	wa.ctx = ctx;
	wa.now = now;
	memset(&to, 0, sizeof(to));
	to.max_depth = ctx->changes ? -1 : 0;
	to.fetch = !ctx->changes;
	if (ctx->changes && (rc = distkv_path_new(&root)) != 0)
		return (rc);
	rc = distkv_watch(ctx->c, ctx->changes ? root : ctx->path, &to,
	    ctx->timeout_ms, wait_cb, &wa);
	if (wa.rc != 0)
		rc = wa.rc;
	distkv_path_free(root);
	wstate_clear(&wa.start);
	return (rc);
}

/* The new state as get prints it; a deletion only in --json. */
static int
wait_print(struct ctx *ctx, const struct wstate *w)
{
	struct distkv_entry e;
	msgpack_sbuffer b;
	int rc = 0;

	if (ctx->changes || (!w->has && ctx->out != OUT_JSON))
		return (0);
	msgpack_sbuffer_init(&b);
	if (w->has) {
		memset(&e, 0, sizeof(e));
		e.value.data = w->buf;
		e.value.len = w->len;
		e.tock = w->tock;
		rc = put_entry(ctx, &b, ctx->path, &e, true);
	} else if (put(&b, "{\"path\":") != 0 ||
	    put_path(&b, ctx->path, true) != 0 ||
	    put(&b, ",\"value\":null}\n") != 0)
		rc = cli_err(EXIT_AGENT, "out of memory");
	else if (emit(&b) != 0)
		rc = cli_err(EXIT_AGENT, "write error: %s", strerror(errno));
	msgpack_sbuffer_destroy(&b);
	return (rc);
}

static int
cmd_wait(struct ctx *ctx)
{
	struct wstate now;
	distkv_shm *s = distkv_shm_of(ctx->c);
	bool started = false;
	int rc;

	memset(&now, 0, sizeof(now));
	/* a stale region (agent hung or gone) cannot tell us anything */
	if (s != NULL && distkv_shm_alive(s) == 1)
		rc = wait_shm(ctx, s, &now, &started);
	if (!started) {
		/* no region, or PATH unreadable in it (busy writer) */
		s = NULL;
		rc = wait_socket(ctx, &now);
	}
	if (rc == 0)
		rc = wait_print(ctx, &now);
	else if (rc == DISTKV_ETIMEDOUT && ctx->timeout_ms >= 0) {
		if (ctx->changes)
			rc = cli_err(EXIT_NOTFOUND, "no change within %g s",
			    ctx->timeout_ms / 1000.0);
		else
			rc = cli_err(EXIT_NOTFOUND, "%s: no change within "
			    "%g s", ctx->label, ctx->timeout_ms / 1000.0);
	} else if (rc == DISTKV_EDISCONNECTED && s != NULL)
		rc = cli_err(EXIT_AGENT, "%s: the agent stopped",
		    ctx->label);
	else
		rc = lib_error(ctx, rc, ctx->label);
	wstate_clear(&now);
	return (rc);
}
