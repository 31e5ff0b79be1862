/*
 * bench_shm (see bench_shm.c): the cost of a change: shm_writer_put per
 * update, and the delay until a reader blocked in a wait runs again.  The
 * waiters serve the agent run's distkv_shm_wait too (agent_writes).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE	/* gettid */
#endif

#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "benchutil.h"
#include "bench_shm.h"

/* ---- writes and wake-ups ---- */

/*
 * shm_writer_put of existing keys in stream order with the next value of
 * each (built before each batch), then the same with shm_writer_notify
 * after every put (no reader waits: the futex call alone).
 */
int
measure_writer(struct target *tg)
{
	struct bench		*b = tg->b;
	struct shm_writer_stats	 st0, st1;
	struct shm_meta		 m;
	const struct opkey	*k;
	uint8_t			*vals;
	double			 ns[MAX_BATCHES], total = 0;
	uint64_t		 t0;
	long			 n = b->batch_ops, bi, i, pass, from;
	int			 rc;

	if ((vals = malloc((size_t)n * VAL_WIRE)) == NULL)
		return (-1);
	m.node = "bench";
	m.node_len = 5;
	m.tick = m.tock = (uint64_t)tg->ks.n + 1;
	shm_writer_stats(tg->w, &st0);
	for (pass = 0; pass < 2; pass++) {
		fprintf(stderr, "%s: shm_writer_put%s\n", tg->label,
		    pass ? " + shm_writer_notify" : "");
		for (bi = 0; bi <= b->o.batches; bi++) {
			from = (bi + pass * b->o.batches) % (b->o.batches + 1) *
			    n;
			for (i = 0; i < n; i++) {
				k = &tg->ops[0][from + i];
				value_make(k->idx, ++tg->ks.gen[k->idx],
				    vals + i * VAL_WIRE);
			}
			t0 = now_ns();
			for (i = 0; i < n; i++) {
				k = &tg->ops[0][from + i];
				m.tick++;
				m.tock++;
				if ((rc = shm_writer_put(tg->w, k->key, k->klen,
				    vals + i * VAL_WIRE, VAL_WIRE, &m)) != 0) {
					fprintf(stderr, "bench: shm_writer_put: "
					    "%s\n", strerror(-rc));
					free(vals);
					return (-1);
				}
				if (pass)
					shm_writer_notify(tg->w);
			}
			if (bi > 0) {
				ns[bi - 1] = (double)(now_ns() - t0) /
				    (double)n;
				if (!pass)
					total += ns[bi - 1];
			}
		}
		if (!pass) {
			tg->put_mean_ns = total / (double)b->o.batches;
			tg->put_ns = median(ns, b->o.batches);
			shm_writer_stats(tg->w, &st1);
			tg->put_rebuilds = st1.replacements - st0.replacements;
		} else
			tg->put_notify_ns = median(ns, b->o.batches);
	}
	free(vals);
	return (0);
}

static pid_t
my_tid(void)
{
	return ((pid_t)gettid());
}

/*
 * Block, round after round, in shm_reader_wait (r) or distkv_shm_wait (ds)
 * and note when it returned.
 */
static void
waiter_loop(struct waitshare *ws, struct shm_reader *r, distkv_shm *ds)
{
	uint32_t	round = 0, since;
	int		rc;

	STORE_REL(&ws->tid, (int32_t)my_tid());
	for (;;) {
		while (LOAD_ACQ(&ws->round) == round &&
		    LOAD_ACQ(&ws->quit) == 0)
			cpu_relax();
		if (LOAD_ACQ(&ws->quit) != 0)
			break;
		round = LOAD_ACQ(&ws->round);
		since = r != NULL ? shm_reader_seq(r) : distkv_shm_counter(ds);
		STORE_REL(&ws->ready, round);
		rc = r != NULL ? shm_reader_wait(r, since, WAIT_MS) :
		    distkv_shm_wait(ds, since, WAIT_MS);
		ws->woke_ns = now_ns();
		ws->rc = rc;
		STORE_REL(&ws->done, round);
	}
}

void *
waiter_thread(void *arg)
{
	struct waiter_arg	*a = arg;

	pin_cpu(a->cpu);
	waiter_loop(a->ws, a->r, a->ds);
	return (NULL);
}

/*
 * Wait (at most 100 ms) until thread or process tid sleeps, i.e. is in the
 * futex wait rather than on its way to it.  Returns 0 if it was seen
 * asleep.
 */
static int
wait_asleep(pid_t tid, bool process)
{
	char		 path[64], buf[512], *p;
	uint64_t	 deadline = now_ns() + 100000000u;
	ssize_t		 n;
	int		 fd;

	if (process)
		snprintf(path, sizeof(path), "/proc/%d/stat", (int)tid);
	else
		snprintf(path, sizeof(path), "/proc/self/task/%d/stat",
		    (int)tid);
	while (now_ns() < deadline) {
		if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
			return (-1);
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n <= 0)
			return (-1);
		buf[n] = '\0';
		if ((p = strrchr(buf, ')')) != NULL && p[1] == ' ' &&
		    p[2] == 'S')
			return (0);
	}
	return (-1);
}

/* Spin until *word == want; -1 after ms. */
static int
spin_until(uint32_t *word, uint32_t want, int ms)
{
	uint64_t	deadline = now_ns() + (uint64_t)ms * 1000000u;
	unsigned	i = 0;

	while (LOAD_ACQ(word) != want) {
		cpu_relax();
		if (++i % 1024 == 0 && now_ns() > deadline)
			return (-1);
	}
	return (0);
}

/*
 * The wake-up rounds with a waiter already running: the writer side
 * (publish) is a shm_writer_put + shm_writer_notify when set is false, a
 * distkv_set through the agent otherwise.  delay[i]: from just before the
 * publish to the waiter's clock reading after its wait returned; pub[i]:
 * the publish call itself.
 */
int
wake_rounds(struct target *tg, struct waitshare *ws, bool process, bool set,
    uint64_t *delay, uint64_t *pub)
{
	struct shm_meta		 m;
	const struct opkey	*k;
	uint8_t			 val[VAL_WIRE];
	uint64_t		 t0, t1;
	long			 r, rounds = tg->b->o.wake_rounds;
	int			 rc;

	m.node = "bench";
	m.node_len = 5;
	m.tick = m.tock = 1u << 30;
	for (r = 0; r < rounds; r++) {
		k = &tg->ops[0][r % tg->nops];
		value_make(k->idx, ++tg->ks.gen[k->idx], val);
		STORE_REL(&ws->round, (uint32_t)r + 1);
		if (spin_until(&ws->ready, (uint32_t)r + 1, WAIT_MS) != 0) {
			fprintf(stderr, "bench: waiter not ready\n");
			return (-1);
		}
		if (wait_asleep(LOAD_ACQ(&ws->tid), process) != 0)
			tg->wake_late++;
		t0 = now_ns();
		if (set)
			rc = distkv_set(tg->conn, tg->ks.paths[k->idx], val,
			    sizeof(val), NULL, NULL);
		else {
			m.tick++;
			m.tock++;
			rc = shm_writer_put(tg->w, k->key, k->klen, val,
			    sizeof(val), &m);
			shm_writer_notify(tg->w);
		}
		t1 = now_ns();
		if (rc != 0) {
			fprintf(stderr, "bench: publish: %s\n",
			    distkv_strerror(rc));
			return (-1);
		}
		if (spin_until(&ws->done, (uint32_t)r + 1, 2 * WAIT_MS) != 0 ||
		    ws->rc != 0) {
			fprintf(stderr, "bench: the waiter did not wake "
			    "(rc %d)\n", ws->rc);
			return (-1);
		}
		delay[r] = ws->woke_ns > t0 ? ws->woke_ns - t0 : 0;
		pub[r] = t1 - t0;
	}
	return (0);
}

/* Ask a waiter to leave (it may be spinning or blocked). */
void
waiter_quit(struct waitshare *ws)
{
	STORE_REL(&ws->quit, 1u);
	STORE_REL(&ws->round, LOAD_ACQ(&ws->round) + 1);
}

/*
 * Wake-up delay from an in-process publish to a waiter in another thread,
 * then in a forked process (each with its own reader mapping).
 */
int
measure_wake(struct target *tg)
{
	struct bench		*b = tg->b;
	struct waitshare	*ws;
	struct waiter_arg	 wa;
	struct shm_reader	*r = NULL;
	pthread_t		 th;
	uint64_t		*delay, *pub;
	long			 n = b->o.wake_rounds;
	pid_t			 pid;
	int			 rc = -1, status;

	delay = calloc((size_t)n, sizeof(*delay));
	pub = calloc((size_t)n, sizeof(*pub));
	ws = mmap(NULL, sizeof(*ws), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (delay == NULL || pub == NULL || ws == MAP_FAILED)
		goto out;

	/* a thread */
	fprintf(stderr, "%s: wake-up of a thread in shm_reader_wait\n",
	    tg->label);
	memset(ws, 0, sizeof(*ws));
	ws->tid = -1;
	if (shm_reader_open(tg->region, &r) != 0)
		goto out;
	memset(&wa, 0, sizeof(wa));
	wa.ws = ws;
	wa.r = r;
	wa.cpu = client_cpu(b, 1);
	if (pthread_create(&th, NULL, waiter_thread, &wa) != 0)
		goto out;
	while (LOAD_ACQ(&ws->tid) == -1)
		cpu_relax();
	rc = wake_rounds(tg, ws, false, false, delay, pub);
	waiter_quit(ws);
	pthread_join(th, NULL);
	if (rc != 0)
		goto out;
	tg->wake_thr[0] = percentile_us(delay, n, 0.50);
	tg->wake_thr[1] = percentile_us(delay, n, 0.99);
	tg->pub_waiter[0] = percentile_us(pub, n, 0.50);
	tg->pub_waiter[1] = percentile_us(pub, n, 0.99);

	/* a process: no threads run now, so fork is safe */
	fprintf(stderr, "%s: wake-up of a process in shm_reader_wait\n",
	    tg->label);
	rc = -1;
	memset(ws, 0, sizeof(*ws));
	ws->tid = -1;
	if ((pid = fork()) < 0)
		goto out;
	if (pid == 0) {
		struct shm_reader	*cr;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		pin_cpu(client_cpu(b, 1));
		if (shm_reader_open(tg->region, &cr) != 0)
			_exit(1);
		waiter_loop(ws, cr, NULL);
		_exit(0);
	}
	sig_pid[1] = pid;
	while (LOAD_ACQ(&ws->tid) == -1 && waitpid(pid, &status, WNOHANG) == 0)
		cpu_relax();
	if (LOAD_ACQ(&ws->tid) != -1)
		rc = wake_rounds(tg, ws, true, false, delay, pub);
	waiter_quit(ws);
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0) {
		fprintf(stderr, "bench: waiter process failed (0x%x)\n",
		    status);
		rc = -1;
	}
	sig_pid[1] = -1;
	if (rc != 0)
		goto out;
	tg->wake_proc[0] = percentile_us(delay, n, 0.50);
	tg->wake_proc[1] = percentile_us(delay, n, 0.99);
	tg->wake_done = true;
	rc = 0;
out:
	if (rc != 0)
		fprintf(stderr, "%s: wake-up measurement failed\n", tg->label);
	shm_reader_close(r);
	if (ws != MAP_FAILED)
		munmap(ws, sizeof(*ws));
	free(delay);
	free(pub);
	return (rc);
}
