/* serfproc: see serfproc.h. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>

#include "log.h"
#include "serfproc.h"

#define container_of(p, type, member) \
	((type *)(void *)((char *)(p) - offsetof(type, member)))

#define SERFPROC_BACKOFF_MIN	1.0
#define SERFPROC_BACKOFF_MAX	30.0
/* A child that ran this long was healthy: the next restart is quick. */
#define SERFPROC_STABLE_UPTIME	60.0
/* Graceful leave takes ~1.5 s (serf-notes §6). */
#define SERFPROC_STOP_GRACE_MS	3000
/* Serf refuses to start above this (serf-notes §5). */
#define SERFPROC_EVENT_LIMIT_MAX 9216

struct serfproc {
	ev_child child;
	ev_timer restart;
	struct ev_loop *loop;
	char *bin;		/* resolved path of the serf binary */
	char **argv;		/* NULL-terminated, owned */
	size_t argc;
	char *log_path;
	pid_t pid;
	ev_tstamp backoff;
	ev_tstamp started;
};

static char *
serfproc_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *
serfproc_printf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	return n < 0 ? NULL : s;
}

static int
serfproc_push(struct serfproc *p, size_t cap, char *arg)
{
	if (arg == NULL)
		return -ENOMEM;
	if (p->argc + 1 >= cap) {
		free(arg);
		return -E2BIG;
	}
	p->argv[p->argc++] = arg;
	p->argv[p->argc] = NULL;
	return 0;
}

/* Go durations and the like: keep them to characters JSON needs no escape
 * for. */
static bool
serfproc_plain(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'z') ||
		    (*s >= 'A' && *s <= 'Z') || *s == '.'))
			return false;
	return true;
}

/* Standard base64 only: it goes into the JSON config verbatim. */
static bool
serfproc_base64(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'z') ||
		    (*s >= 'A' && *s <= 'Z') || *s == '+' || *s == '/' ||
		    *s == '='))
			return false;
	return true;
}

static int
serfproc_write_config(const char *dir, const struct serfproc_config *c,
    char **pathp)
{
	char *path = NULL, *tmp = NULL;
	const char *sep = "";
	FILE *f = NULL;
	int rc;

	*pathp = NULL;
	rc = -ENOMEM;
	if ((path = serfproc_printf("%s/serf.json", dir)) == NULL ||
	    (tmp = serfproc_printf("%s/serf.json.tmp", dir)) == NULL)
		goto out;
	if ((f = fopen(tmp, "we")) == NULL) {
		rc = -errno;
		goto out;
	}
	/* it may hold the gossip key: for the agent's user only */
	if (fchmod(fileno(f), 0600) != 0) {
		rc = -errno;
		goto out;
	}
	fputc('{', f);
	if (c->encrypt_key != NULL) {
		fprintf(f, "\"encrypt_key\": \"%s\"", c->encrypt_key);
		sep = ", ";
	}
	if (c->event_size_limit > 0) {
		fprintf(f, "%s\"user_event_size_limit\": %zu", sep,
		    c->event_size_limit);
		sep = ", ";
	}
	if (c->reconnect_interval != NULL) {
		fprintf(f, "%s\"reconnect_interval\": \"%s\"", sep,
		    c->reconnect_interval);
		sep = ", ";
	}
	if (c->reconnect_timeout != NULL)
		fprintf(f, "%s\"reconnect_timeout\": \"%s\"", sep,
		    c->reconnect_timeout);
	fputs("}\n", f);
	if (ferror(f) | fflush(f)) {
		rc = -EIO;
		goto out;
	}
	if (fclose(f) != 0) {
		f = NULL;
		rc = -EIO;
		goto out;
	}
	f = NULL;
	if (rename(tmp, path) != 0) {
		rc = -errno;
		goto out;
	}
	*pathp = path;
	path = NULL;
	rc = 0;
out:
	if (f != NULL)
		fclose(f);
	if (rc != 0 && tmp != NULL)
		unlink(tmp);
	free(tmp);
	free(path);
	return rc;
}

/* Resolve name through PATH now, so the child only calls execv(). */
static int
serfproc_which(const char *name, char **out)
{
	const char *path = getenv("PATH");
	char *copy, *dir, *save = NULL;
	int rc = -ENOENT;

	*out = NULL;
	if (strchr(name, '/') != NULL) {
		if (access(name, X_OK) != 0)
			return -errno;
		return (*out = strdup(name)) == NULL ? -ENOMEM : 0;
	}
	if ((copy = strdup(path != NULL ? path : "/usr/bin:/bin")) == NULL)
		return -ENOMEM;
	for (dir = strtok_r(copy, ":", &save); dir != NULL;
	    dir = strtok_r(NULL, ":", &save)) {
		char *cand = serfproc_printf("%s/%s", *dir ? dir : ".", name);

		if (cand == NULL) {
			rc = -ENOMEM;
			break;
		}
		if (access(cand, X_OK) == 0) {
			*out = cand;
			rc = 0;
			break;
		}
		free(cand);
	}
	free(copy);
	return rc;
}

/*
 * fork + exec the child.  A close-on-exec pipe reports an exec failure
 * (missing binary) synchronously instead of as an exit status 127.
 */
static int
serfproc_spawn(struct serfproc *p)
{
	int logfd = -1, nullfd = -1, pfd[2] = { -1, -1 }, err = 0, rc;
	ssize_t n;
	pid_t pid, parent;

	if ((logfd = open(p->log_path, O_WRONLY | O_CREAT | O_APPEND |
	    O_CLOEXEC, 0600)) < 0 ||
	    (nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0 ||
	    pipe2(pfd, O_CLOEXEC) != 0) {
		rc = -errno;
		goto out;
	}
	parent = getpid();
	if ((pid = fork()) < 0) {
		rc = -errno;
		goto out;
	}
	if (pid == 0) {
		sigset_t none;

		/* Ignored signals survive exec: give serf the defaults. */
		for (int sig = 1; sig < NSIG; sig++)
			if (sig != SIGKILL && sig != SIGSTOP)
				(void)signal(sig, SIG_DFL);
		sigemptyset(&none);
		(void)sigprocmask(SIG_SETMASK, &none, NULL);
		/*
		 * If the agent dies without serfproc_stop (SIGKILL, crash),
		 * take serf down too: an orphan would hold the ports and the
		 * restarted agent's own child could not bind them.
		 */
		if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0)
			goto child_fail;
		if (getppid() != parent) {
			errno = ECHILD;		/* the agent is gone already */
			goto child_fail;
		}
		if (dup2(nullfd, 0) < 0 || dup2(logfd, 1) < 0 ||
		    dup2(logfd, 2) < 0)
			goto child_fail;
		/* Don't leak the agent's sockets into serf. */
		for (int fd = 3; fd < 1024; fd++)
			if (fd != pfd[1])
				(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
		execv(p->bin, p->argv);
child_fail:
		err = errno;
		(void)!write(pfd[1], &err, sizeof(err));
		_exit(127);
	}
	close(pfd[1]);
	pfd[1] = -1;
	do
		n = read(pfd[0], &err, sizeof(err));
	while (n < 0 && errno == EINTR);
	if (n == (ssize_t)sizeof(err)) {
		/* exec failed: reap the child ourselves */
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		rc = -err;
		goto out;
	}
	p->pid = pid;
	p->started = ev_now(p->loop);
	ev_child_set(&p->child, pid, 0);
	ev_child_start(p->loop, &p->child);
	log_info("serf agent started (pid %d), log %s", (int)pid,
	    p->log_path);
	rc = 0;
out:
	if (pfd[0] >= 0)
		close(pfd[0]);
	if (pfd[1] >= 0)
		close(pfd[1]);
	if (nullfd >= 0)
		close(nullfd);
	if (logfd >= 0)
		close(logfd);
	return rc;
}

static void
serfproc_schedule(struct serfproc *p)
{
	ev_timer_set(&p->restart, p->backoff, 0.);
	ev_timer_start(p->loop, &p->restart);
	p->backoff *= 2;
	if (p->backoff > SERFPROC_BACKOFF_MAX)
		p->backoff = SERFPROC_BACKOFF_MAX;
}

static void
serfproc_restart_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct serfproc *p = container_of(w, struct serfproc, restart);
	int rc;

	(void)loop;
	(void)revents;
	if ((rc = serfproc_spawn(p)) != 0) {
		log_error("serf agent: cannot start %s: %s; retrying in "
		    "%.0f s", p->bin, strerror(-rc), p->backoff);
		serfproc_schedule(p);
	}
}

static void
serfproc_child_cb(struct ev_loop *loop, ev_child *w, int revents)
{
	struct serfproc *p = container_of(w, struct serfproc, child);
	int st = w->rstatus;

	(void)revents;
	ev_child_stop(loop, w);
	if (ev_now(loop) - p->started >= SERFPROC_STABLE_UPTIME)
		p->backoff = SERFPROC_BACKOFF_MIN;
	if (WIFSIGNALED(st))
		log_warn("serf agent (pid %d) killed by signal %d; "
		    "restarting in %.0f s (see %s)", (int)p->pid,
		    WTERMSIG(st), p->backoff, p->log_path);
	else
		log_warn("serf agent (pid %d) exited with status %d; "
		    "restarting in %.0f s (see %s)", (int)p->pid,
		    WEXITSTATUS(st), p->backoff, p->log_path);
	p->pid = 0;
	serfproc_schedule(p);
}

static void
serfproc_free(struct serfproc *p)
{
	if (p->argv != NULL)
		for (size_t i = 0; i < p->argc; i++)
			free(p->argv[i]);
	free(p->argv);
	free(p->bin);
	free(p->log_path);
	free(p);
}

int
serfproc_start(struct ev_loop *loop, const struct serfproc_config *c,
    struct serfproc **out)
{
	struct serfproc *p = NULL;
	char *conf = NULL;
	size_t cap;
	int rc;

	*out = NULL;
	/* libev delivers child exits only on the default loop. */
	if (loop == NULL || !ev_is_default_loop(loop) || c == NULL ||
	    c->node == NULL || c->bind == NULL || c->rpc_addr == NULL ||
	    c->dir == NULL || c->event_size_limit > SERFPROC_EVENT_LIMIT_MAX)
		return -EINVAL;
	if ((c->reconnect_interval != NULL &&
	    !serfproc_plain(c->reconnect_interval)) ||
	    (c->reconnect_timeout != NULL &&
	    !serfproc_plain(c->reconnect_timeout)) ||
	    (c->profile != NULL && !serfproc_plain(c->profile)) ||
	    (c->encrypt_key != NULL && !serfproc_base64(c->encrypt_key)))
		return -EINVAL;
	if (mkdir(c->dir, 0700) != 0 && errno != EEXIST)
		return -errno;
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return -ENOMEM;
	p->loop = loop;
	p->backoff = SERFPROC_BACKOFF_MIN;
	ev_child_init(&p->child, serfproc_child_cb, 0, 0);
	ev_timer_init(&p->restart, serfproc_restart_cb, 0., 0.);

	if ((rc = serfproc_which(c->serf_bin != NULL ? c->serf_bin : "serf",
	    &p->bin)) != 0)
		goto fail;
	rc = -ENOMEM;
	if ((p->log_path = serfproc_printf("%s/serf.log", c->dir)) == NULL)
		goto fail;
	if ((rc = serfproc_write_config(c->dir, c, &conf)) != 0)
		goto fail;

	cap = 16;
	for (size_t i = 0; c->join != NULL && c->join[i] != NULL; i++)
		cap++;
	for (size_t i = 0; c->tags != NULL && c->tags[i] != NULL; i++)
		cap += 2;
	rc = -ENOMEM;
	if ((p->argv = calloc(cap, sizeof(*p->argv))) == NULL)
		goto fail;
	if ((rc = serfproc_push(p, cap, strdup(p->bin))) != 0 ||
	    (rc = serfproc_push(p, cap, strdup("agent"))) != 0 ||
	    (rc = serfproc_push(p, cap, serfproc_printf("-node=%s",
	    c->node))) != 0 ||
	    (rc = serfproc_push(p, cap, serfproc_printf("-bind=%s",
	    c->bind))) != 0 ||
	    (rc = serfproc_push(p, cap, serfproc_printf("-rpc-addr=%s",
	    c->rpc_addr))) != 0 ||
	    (rc = serfproc_push(p, cap, serfproc_printf("-config-file=%s",
	    conf))) != 0 ||
	    (rc = serfproc_push(p, cap, strdup("-log-level=warn"))) != 0)
		goto fail;
	if (c->profile != NULL && (rc = serfproc_push(p, cap,
	    serfproc_printf("-profile=%s", c->profile))) != 0)
		goto fail;
	for (size_t i = 0; c->tags != NULL && c->tags[i] != NULL; i++)
		if ((rc = serfproc_push(p, cap, strdup("-tag"))) != 0 ||
		    (rc = serfproc_push(p, cap, strdup(c->tags[i]))) != 0)
			goto fail;
	for (size_t i = 0; c->join != NULL && c->join[i] != NULL; i++)
		if ((rc = serfproc_push(p, cap, serfproc_printf(
		    "-retry-join=%s", c->join[i]))) != 0)
			goto fail;
	/* -join failure is fatal; -retry-join waits for a late seed. */
	if (c->join != NULL && c->join[0] != NULL &&
	    (rc = serfproc_push(p, cap, strdup("-retry-interval=1s"))) != 0)
		goto fail;

	if ((rc = serfproc_spawn(p)) != 0)
		goto fail;
	free(conf);
	*out = p;
	return 0;
fail:
	free(conf);
	serfproc_free(p);
	return rc;
}

static void
serfproc_sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000,
	    .tv_nsec = (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Wait for pid until deadline_ms; true once it is reaped (or gone). */
static bool
serfproc_reap(pid_t pid, long deadline_ms)
{
	for (long waited = 0;; waited += 10) {
		pid_t r = waitpid(pid, NULL, WNOHANG);

		if (r == pid || (r < 0 && errno == ECHILD))
			return true;
		if (r < 0 && errno != EINTR)
			return true;
		if (waited >= deadline_ms)
			return false;
		serfproc_sleep_ms(10);
	}
}

void
serfproc_stop(struct serfproc *p)
{
	pid_t pid;

	if (p == NULL)
		return;
	ev_timer_stop(p->loop, &p->restart);
	/* Already reaped by libev (callback pending): the pid may be reused,
	 * so don't signal it. */
	pid = ev_is_pending(&p->child) ? 0 : p->pid;
	ev_child_stop(p->loop, &p->child);
	if (pid > 0) {
		(void)kill(pid, SIGINT);	/* graceful leave */
		if (!serfproc_reap(pid, SERFPROC_STOP_GRACE_MS)) {
			log_warn("serf agent (pid %d) ignored SIGINT; killing",
			    (int)pid);
			(void)kill(pid, SIGKILL);
			while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
				;
		}
	}
	serfproc_free(p);
}

int
serfproc_pid(const struct serfproc *p)
{
	return p != NULL ? (int)p->pid : 0;
}
