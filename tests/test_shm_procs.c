/*
 * tests/test_shm (see test_shm.c): the writer seen from other processes.
 * Suite "shm": liveness (heartbeat, close, a writer that died) and
 * waiting for a change; suite "shm_torture": forked readers under a
 * writer that grows and compacts all the time.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <xxhash.h>

#include "shmtest.h"

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- reading the self-checking values (shmtest.h) ---- */

/* Parse a key made by tkey; UINT32_MAX if it is not one. */
static uint32_t
tkey_id(const uint8_t *k, size_t klen)
{
	uint8_t want[64];
	uint32_t id = 0;
	size_t i = 1;

	if (klen < 3 || k[0] != 'k')
		return UINT32_MAX;
	while (i < klen && k[i] >= '0' && k[i] <= '9' && i < 12)
		id = id * 10 + (uint32_t)(k[i++] - '0');
	if (tkey(id, want) != klen || memcmp(want, k, klen) != 0)
		return UINT32_MAX;
	return id;
}

enum tv_check { TV_OK, TV_TORN, TV_WRONG_KEY };

/* The round number of a chain key's value (see the torture). */
static uint32_t
tval_round(const uint8_t *v)
{
	struct tv_hdr h;

	memcpy(&h, v, sizeof(h));
	return h.pad;
}

static enum tv_check
tval_check(const uint8_t *v, size_t len, uint32_t id, uint64_t *version)
{
	struct tv_hdr h;

	if (len < TV_HDR)
		return TV_TORN;
	memcpy(&h, v, sizeof(h));
	if (h.magic != TV_MAGIC || h.len != len ||
	    XXH64(v + 8, len - 8, 0) != h.sum)
		return TV_TORN;
	*version = h.version;
	return h.id == id ? TV_OK : TV_WRONG_KEY;
}

/* Value sizes: mostly small, some medium, a few large (forcing growth). */
static size_t
tsize(uint64_t *s)
{
	uint64_t r = rnd(s) % 1000;

	if (r < 900)
		return TV_HDR + rnd(s) % 480;
	if (r < 990)
		return 512 + rnd(s) % 3584;
	return 4096 + rnd(s) % (TV_MAX - 4096);
}

/* ============== suite shm (declared in test_shm.c) ============== */

Test(shm, liveness_fresh_closed)
{
	struct shm_writer *w = wopen();
	struct shm_reader *r = ropen();
	struct shm_reader_info i;
	long long deadline;

	cr_assert_eq(shm_reader_alive(r, 60000), 1);
	cr_assert(shm_reader_fresh(r, 60000));
	/* no heartbeat: stale after stale_ms (condition with a deadline) */
	deadline = now_ms() + 5000;
	while (shm_reader_fresh(r, 30) && now_ms() < deadline)
		usleep(1000);
	cr_assert_not(shm_reader_fresh(r, 30), "heartbeat never aged");
	cr_assert_eq(shm_reader_alive(r, 30), 0, "old heartbeat: stale");
	cr_assert_eq(shm_reader_alive(r, 60000), 1);
	cr_assert_eq(shm_reader_alive(r, -1), 1, "-1: no heartbeat check");
	shm_writer_heartbeat(w);
	cr_assert(shm_reader_fresh(r, 30));
	cr_assert_eq(shm_reader_alive(r, 30), 1);

	put_str(w, "k", "last");
	shm_writer_close(w, false);
	cr_assert_eq(shm_reader_alive(r, 60000), 0, "closed: stale");
	cr_assert_not(shm_reader_fresh(r, 60000));
	shm_reader_info(r, &i);
	cr_assert(i.closed);
	ASSERT_GET(r, "k", "last");
	shm_reader_close(r);
}

/* A writer in a child that exits without closing (as kill -9 leaves it). */
static pid_t
writer_child_dies(const char *k, const char *v)
{
	int pfd[2];
	pid_t pid;
	char c;

	cr_assert_eq(pipe(pfd), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct shm_writer *w = NULL;
		struct shm_meta m = meta(1, 1, "dead");

		close(pfd[0]);
		if (shm_writer_open(region, 0600, "dead", &w) != 0 ||
		    shm_writer_put(w, (const uint8_t *)k, strlen(k),
		    (const uint8_t *)v, strlen(v), &m) != 0)
			_exit(1);
		if (write(pfd[1], "x", 1) != 1)
			_exit(1);
		_exit(0);	/* no shm_writer_close */
	}
	close(pfd[1]);
	cr_assert_eq(read(pfd[0], &c, 1), 1, "writer child failed");
	close(pfd[0]);
	return pid;
}

Test(shm, dead_writer_stale_then_restart_remaps)
{
	struct shm_reader *r;
	struct shm_writer *w;
	struct shm_reader_info i;
	int status;
	pid_t pid;

	pid = writer_child_dies("k", "from the dead");
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	r = ropen();
	/* the last state is served, and reported stale (pid gone) */
	ASSERT_GET(r, "k", "from the dead");
	cr_assert_eq(shm_reader_alive(r, 60000), 0);
	shm_reader_info(r, &i);
	cr_assert_eq(i.agent_pid, (uint32_t)pid);
	cr_assert_not(i.closed, "it died: nobody closed it");

	/* a new writer at the same path: alive() re-maps, new state shows */
	w = wopen();
	put_str(w, "k2", "new");
	cr_assert_eq(shm_reader_alive(r, 60000), 1);
	shm_reader_info(r, &i);
	cr_assert_eq(i.agent_pid, (uint32_t)getpid());
	ASSERT_MISS(r, "k");
	ASSERT_GET(r, "k2", "new");
	shm_reader_close(r);
	shm_writer_close(w, false);
}

/* ---- waiting ---- */

/*
 * True once pid sleeps in the futex syscall (202 on x86-64) or, where
 * /proc/PID/syscall is not readable, in state S.
 */
static bool
child_blocked(pid_t pid)
{
	char path[64], buf[256];
	FILE *f;
	bool ok = false;

	snprintf(path, sizeof(path), "/proc/%d/syscall", (int)pid);
	if ((f = fopen(path, "r")) != NULL) {
		buf[0] = '\0';
		if (fgets(buf, sizeof(buf), f) != NULL)
#if defined(__x86_64__)
			ok = strncmp(buf, "202 ", 4) == 0;
#else
			ok = buf[0] != 'r';	/* not "running" */
#endif
		fclose(f);
		if (ok || buf[0] != '\0')
			return ok;
	}
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((f = fopen(path, "r")) != NULL) {
		char *p;

		if (fgets(buf, sizeof(buf), f) != NULL &&
		    (p = strrchr(buf, ')')) != NULL)
			ok = p[1] == ' ' && p[2] == 'S';
		fclose(f);
	}
	return ok;
}

enum wake_how { WAKE_NOTIFY, WAKE_REPLACE, WAKE_CLOSE };

/*
 * A child blocks in shm_reader_wait (5 s timeout); once it is asleep in
 * the futex the parent changes the region; the child exits 0 if it woke
 * with rc 0 well before its timeout.
 */
static void
check_wakeup(enum wake_how how)
{
	struct shm_writer *w = wopen();
	long long deadline;
	int status, pfd[2];
	pid_t pid;
	char c;

	put_str(w, "k", "v");
	cr_assert_eq(pipe(pfd), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct shm_reader *r = NULL;
		long long t0;
		uint32_t seq;
		int rc;

		close(pfd[0]);
		alarm(20);
		if (shm_reader_open(region, &r) != 0)
			_exit(10);
		seq = shm_reader_seq(r);
		if (write(pfd[1], "x", 1) != 1)
			_exit(11);
		t0 = now_ms();
		rc = shm_reader_wait(r, seq, 5000);
		if (rc != 0)
			_exit(12);
		if (now_ms() - t0 >= 4000)
			_exit(13);
		_exit(0);
	}
	close(pfd[1]);
	cr_assert_eq(read(pfd[0], &c, 1), 1);
	close(pfd[0]);
	deadline = now_ms() + 3000;
	while (!child_blocked(pid) && now_ms() < deadline)
		usleep(1000);
	cr_assert(child_blocked(pid), "the waiter never blocked");
	switch (how) {
	case WAKE_NOTIFY:
		put_str(w, "k", "changed");
		shm_writer_notify(w);
		break;
	case WAKE_REPLACE: {
		char k[32], v[300];
		struct shm_writer_stats st;

		memset(v, 'v', sizeof(v) - 1);
		v[sizeof(v) - 1] = '\0';
		/* no notify: the replacement itself wakes the old word */
		for (int n = 0; n < 10000; n++) {
			snprintf(k, sizeof(k), "key%d", n);
			put_str(w, k, v);
			shm_writer_stats(w, &st);
			if (st.replacements > 0)
				break;
		}
		break;
	}
	case WAKE_CLOSE:
		shm_writer_close(w, false);
		w = NULL;
		break;
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status), "waiter died by signal %d",
	    WTERMSIG(status));
	cr_assert_eq(WEXITSTATUS(status), 0, "waiter failed with code %d "
	    "(12: wait rc != 0, 13: woke only at the timeout)",
	    WEXITSTATUS(status));
	shm_writer_close(w, false);
}

Test(shm, wait_times_out_without_change)
{
	struct shm_writer *w = wopen();
	struct shm_reader *r = ropen();
	long long t0;
	uint32_t seq;

	seq = shm_reader_seq(r);
	t0 = now_ms();
	cr_assert_eq(shm_reader_wait(r, seq, 50), -ETIMEDOUT);
	cr_assert_geq(now_ms() - t0, 40);
	cr_assert_eq(shm_reader_wait(r, seq, 0), -ETIMEDOUT);
	/* a change before the wait: no sleep at all */
	put_str(w, "k", "v");
	cr_assert_eq(shm_reader_wait(r, seq, 5000), 0);
	cr_assert_neq(shm_reader_seq(r), seq);
	shm_reader_close(r);
	shm_writer_close(w, false);
}

Test(shm, wait_wakes_on_notify)
{
	check_wakeup(WAKE_NOTIFY);
}

Test(shm, wait_wakes_on_replacement)
{
	check_wakeup(WAKE_REPLACE);
}

Test(shm, wait_wakes_on_close)
{
	check_wakeup(WAKE_CLOSE);
}

/* ================= suite shm_torture ================= */

#define T_READERS 4
#define T_KEYS 6000
/*
 * Chain keys (ids T_KEYS ..): after every batch the writer puts round r
 * into chain key 0, 1, ... in that order.  A consistent scan therefore
 * shows rounds that never increase along the chain and differ by at most
 * one; a scan that mixes moments shows otherwise.
 */
#define T_CHAIN 10

struct t_stats {
	uint64_t gets, hits, misses, busy, other;
	uint64_t torn, wrong_key, backwards, small;
	uint64_t scans, scan_entries, scan_busy, scan_bad, scan_torn_view;
	uint64_t waits, generations, last_gen;
	char first_error[160];
};

struct t_shared {
	uint32_t stop;
	struct t_stats r[T_READERS];
};

static void t_note(struct t_stats *st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Keep the first problem a reader saw, for the failure message. */
static void
t_note(struct t_stats *st, const char *fmt, ...)
{
	va_list ap;

	if (st->first_error[0] != '\0')
		return;
	va_start(ap, fmt);
	vsnprintf(st->first_error, sizeof(st->first_error), fmt, ap);
	va_end(ap);
}

struct t_scan {
	struct t_stats *st;
	uint64_t *last;
	uint32_t chain[T_CHAIN];
	bool chain_seen[T_CHAIN];
};

static int
t_scan_cb(void *arg, const uint8_t *key, size_t klen, const uint8_t *val,
    size_t vlen)
{
	struct t_scan *ts = arg;
	uint32_t id = tkey_id(key, klen);
	uint64_t version;

	ts->st->scan_entries++;
	if (id == UINT32_MAX || id >= T_KEYS + T_CHAIN ||
	    tval_check(val, vlen, id, &version) != TV_OK) {
		ts->st->scan_bad++;
		t_note(ts->st, "scan: bad entry for key %" PRIu32
		    " (len %zu)", id, vlen);
		return 0;
	}
	if (version < ts->last[id]) {
		ts->st->backwards++;
		t_note(ts->st, "scan: key %" PRIu32 " went back from %" PRIu64
		    " to %" PRIu64, id, ts->last[id], version);
	}
	ts->last[id] = version;
	if (id >= T_KEYS) {
		ts->chain[id - T_KEYS] = tval_round(val);
		ts->chain_seen[id - T_KEYS] = true;
	}
	return 0;
}

/* A consistent scan sees the chain at one moment of the writer. */
static void
t_check_chain(struct t_scan *ts)
{
	for (int i = 0; i < T_CHAIN; i++)
		if (!ts->chain_seen[i]) {
			ts->st->scan_torn_view++;
			t_note(ts->st, "scan: chain key %d missing", i);
			return;
		}
	for (int i = 1; i < T_CHAIN; i++)
		if (ts->chain[i] > ts->chain[i - 1] ||
		    ts->chain[0] - ts->chain[i] > 1) {
			ts->st->scan_torn_view++;
			t_note(ts->st, "scan: chain rounds %" PRIu32 " .. %"
			    PRIu32 " at key %d: not one moment", ts->chain[0],
			    ts->chain[i], i);
			return;
		}
}

/* One forked reader: random gets, now and then a scan and a short wait. */
static void
t_reader(struct t_shared *sh, int idx, uint64_t seed)
{
	struct t_stats *st = &sh->r[idx];
	struct shm_reader *r = NULL;
	uint64_t *last = calloc(T_KEYS + T_CHAIN, sizeof(*last));
	uint8_t *buf = malloc(TV_MAX), key[64];
	struct shm_reader_info info;
	uint64_t batch = 0;

	if (last == NULL || buf == NULL || shm_reader_open(region, &r) != 0)
		_exit(3);
	while (!__atomic_load_n(&sh->stop, __ATOMIC_ACQUIRE)) {
		for (int i = 0; i < 256; i++) {
			uint32_t id = (uint32_t)(rnd(&seed) %
			    (T_KEYS + T_CHAIN));
			size_t klen = tkey(id, key), len = 0;
			/* now and then a buffer that is too small */
			size_t cap = rnd(&seed) % 64 == 0 ? 100 : TV_MAX;
			uint64_t version;
			int rc;

			rc = shm_reader_get(r, key, klen, buf, cap, &len, NULL);
			st->gets++;
			if (rc == -ENOENT) {
				st->misses++;
				continue;
			}
			if (rc == -EAGAIN) {
				st->busy++;
				continue;
			}
			if (rc == -ENOBUFS && cap < TV_MAX && len > cap &&
			    len <= TV_MAX) {
				st->small++;
				continue;
			}
			if (rc != 0) {
				st->other++;
				t_note(st, "get key %" PRIu32 ": rc %d, len "
				    "%zu", id, rc, len);
				continue;
			}
			st->hits++;
			switch (tval_check(buf, len, id, &version)) {
			case TV_TORN:
				st->torn++;
				t_note(st, "key %" PRIu32 ": torn value, len "
				    "%zu", id, len);
				continue;
			case TV_WRONG_KEY:
				st->wrong_key++;
				t_note(st, "key %" PRIu32 ": value of another "
				    "key, len %zu", id, len);
				continue;
			case TV_OK:
				break;
			}
			if (version < last[id]) {
				st->backwards++;
				t_note(st, "key %" PRIu32 " went back from %"
				    PRIu64 " to %" PRIu64, id, last[id],
				    version);
			}
			last[id] = version;
		}
		if (++batch % 16 == 0) {
			struct t_scan ts;
			int rc;

			memset(&ts, 0, sizeof(ts));
			ts.st = st;
			ts.last = last;
			rc = shm_reader_scan(r, t_scan_cb, &ts);
			if (rc == 0) {
				st->scans++;
				t_check_chain(&ts);
			} else if (rc == -EAGAIN)
				st->scan_busy++;
			else {
				st->other++;
				t_note(st, "scan rc %d", rc);
			}
		}
		if (batch % 64 == 0) {
			int rc = shm_reader_wait(r, shm_reader_seq(r), 1);

			st->waits++;
			if (rc != 0 && rc != -ETIMEDOUT) {
				st->other++;
				t_note(st, "wait rc %d", rc);
			}
		}
		shm_reader_info(r, &info);
		if (info.generation != st->last_gen) {
			st->generations++;
			st->last_gen = info.generation;
		}
	}
	shm_reader_close(r);
	free(last);
	free(buf);
	_exit(0);
}

/* Put round r into every chain key, in chain order. */
static void
t_chain_round(struct shm_writer *w, uint64_t *model, uint64_t *version,
    uint32_t r)
{
	uint8_t key[64], val[64];

	for (uint32_t id = T_KEYS; id < T_KEYS + T_CHAIN; id++) {
		size_t klen = tkey(id, key);
		size_t vlen = tval(val, id, ++*version, sizeof(val), r);
		struct shm_meta m = meta(*version, *version, "n1");

		cr_assert_eq(shm_writer_put(w, key, klen, val, vlen, &m), 0);
		model[id] = *version;
	}
}

static int
torture_secs(void)
{
	const char *e = getenv("DISTKV_SHM_TORTURE_SECS");
	int s = e != NULL ? atoi(e) : 10;

	return s > 0 ? s : 10;
}

/*
 * T_READERS forked readers, each with its own handle, read random keys
 * for DISTKV_SHM_TORTURE_SECS while this process writes.  A reader counts
 * a value that fails its checksum (torn), that belongs to another key,
 * or whose version is older than one it already saw for that key (values
 * going back in time, e.g. across a re-map); its scans must each be one
 * consistent view (the chain keys).  Crashes show in the exit status.
 * At the end a fresh reader must see exactly the writer's model.
 */
Test(shm_torture, forked_readers_never_see_torn_values, .init = tdir_setup,
    .fini = tdir_teardown, .timeout = 120.)
{
	struct t_shared *sh;
	struct shm_writer *w = wopen();
	struct shm_writer_stats st;
	uint64_t *model = calloc(T_KEYS + T_CHAIN, sizeof(*model));
	uint32_t round = 0;
	uint8_t *val = malloc(TV_MAX), key[64];
	uint64_t seed = test_seed(), version = 0, ops = 0, puts = 0, dels = 0;
	uint64_t max_gen_seen = 0;
	pid_t pids[T_READERS];
	long long start, deadline, wait_deadline;
	int secs = torture_secs();

	cr_assert_not_null(model);
	cr_assert_not_null(val);
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(sh, MAP_FAILED);
	memset(sh, 0, sizeof(*sh));
	cr_log_info("torture: %d s, seed 0x%" PRIx64, secs, seed);

	/* a first population so readers hit from the start */
	for (uint32_t id = 0; id < T_KEYS; id += 2) {
		size_t klen = tkey(id, key), vlen = tval(val, id, ++version,
		    tsize(&seed), 0);
		struct shm_meta m = meta(version, version, "n1");

		cr_assert_eq(shm_writer_put(w, key, klen, val, vlen, &m), 0);
		model[id] = version;
	}
	t_chain_round(w, model, &version, round);
	for (int i = 0; i < T_READERS; i++) {
		uint64_t rs = seed + 0x1000003ULL * (uint64_t)(i + 1);

		fflush(NULL);
		pids[i] = fork();
		cr_assert_geq(pids[i], 0);
		if (pids[i] == 0) {
			alarm((unsigned)secs + 60);	/* never outlive us */
			t_reader(sh, i, rs);
		}
	}

	/*
	 * Writer: phases of one second alternately fill (85% puts) and
	 * drain (30% puts), so the table grows and shrinks and the arena
	 * fills with garbage: growth and compaction all the time.
	 */
	start = now_ms();
	deadline = start + secs * 1000LL;
	for (long long t = start; t < deadline; t = now_ms()) {
		bool fill = ((t - start) / 1000) % 2 == 0;

		for (int i = 0; i < 512; i++) {
			uint32_t id = (uint32_t)(rnd(&seed) % T_KEYS);
			size_t klen = tkey(id, key);
			int rc;

			ops++;
			if (rnd(&seed) % 100 < (fill ? 85u : 30u)) {
				size_t vlen = tval(val, id, ++version,
				    tsize(&seed), 0);
				struct shm_meta m = meta(version, version,
				    "n1");

				rc = shm_writer_put(w, key, klen, val, vlen, &m);
				cr_assert_eq(rc, 0, "put: %s", strerror(-rc));
				model[id] = version;
				puts++;
			} else {
				rc = shm_writer_del(w, key, klen);
				cr_assert_eq(rc, 0, "del: %s", strerror(-rc));
				model[id] = 0;
				dels++;
			}
		}
		t_chain_round(w, model, &version, ++round);
		shm_writer_heartbeat(w);
		shm_writer_notify(w);
	}
	__atomic_store_n(&sh->stop, 1, __ATOMIC_RELEASE);

	/* reap every reader; a stuck one is killed by its pid */
	wait_deadline = now_ms() + 20000;
	for (int i = 0; i < T_READERS; i++) {
		int status = 0;
		pid_t got = 0;

		while ((got = waitpid(pids[i], &status, WNOHANG)) == 0 &&
		    now_ms() < wait_deadline)
			usleep(2000);
		if (got == 0) {
			kill(pids[i], SIGKILL);
			waitpid(pids[i], &status, 0);
			cr_assert_fail("reader %d did not stop", i);
		}
		cr_assert(WIFEXITED(status), "reader %d crashed: signal %d", i,
		    WIFSIGNALED(status) ? WTERMSIG(status) : 0);
		cr_assert_eq(WEXITSTATUS(status), 0, "reader %d exit %d", i,
		    WEXITSTATUS(status));
	}

	shm_writer_stats(w, &st);
	cr_log_info("torture writer: %" PRIu64 " ops (%" PRIu64 " puts, %"
	    PRIu64 " deletes), %" PRIu64 " replacements, region %" PRIu64
	    " bytes, %" PRIu64 " live", ops, puts, dels, st.replacements,
	    st.region_size, st.live_entries);
	for (int i = 0; i < T_READERS; i++) {
		struct t_stats *s = &sh->r[i];

		cr_log_info("reader %d: %" PRIu64 " gets, %" PRIu64 " hits, %"
		    PRIu64 " misses, %" PRIu64 " busy, %" PRIu64 " small, %"
		    PRIu64 " scans (%" PRIu64 " entries, %" PRIu64 " busy), %"
		    PRIu64 " generations seen", i, s->gets, s->hits,
		    s->misses, s->busy, s->small, s->scans, s->scan_entries,
		    s->scan_busy, s->generations);
		cr_expect_eq(s->torn, 0, "reader %d: %" PRIu64 " torn reads; "
		    "first: %s", i, s->torn, s->first_error);
		cr_expect_eq(s->wrong_key, 0, "reader %d: %" PRIu64 " reads of "
		    "another key; first: %s", i, s->wrong_key, s->first_error);
		cr_expect_eq(s->backwards, 0, "reader %d: %" PRIu64 " values "
		    "went back in time; first: %s", i, s->backwards,
		    s->first_error);
		cr_expect_eq(s->scan_bad, 0, "reader %d: bad scan entries; "
		    "first: %s", i, s->first_error);
		cr_expect_eq(s->scan_torn_view, 0, "reader %d: %" PRIu64
		    " scans were no consistent view; first: %s", i,
		    s->scan_torn_view, s->first_error);
		cr_expect_eq(s->other, 0, "reader %d: %" PRIu64 " unexpected "
		    "errors; first: %s", i, s->other, s->first_error);
		/* the readers really ran through the replacements */
		cr_expect_gt(s->hits, 10000, "reader %d barely read", i);
		cr_expect_gt(s->scans, 0, "reader %d never scanned", i);
		cr_expect_lt(s->busy, s->gets / 100, "reader %d mostly busy",
		    i);
		if (s->generations > max_gen_seen)
			max_gen_seen = s->generations;
	}
	cr_assert_geq(st.replacements, 10, "growth and compaction happened");
	cr_assert_geq(max_gen_seen, 3, "readers followed replacements");

	/* the final state, through a fresh reader, is exactly the model */
	{
		struct shm_reader *r = ropen();
		uint64_t live = 0;

		for (uint32_t id = 0; id < T_KEYS + T_CHAIN; id++) {
			size_t klen = tkey(id, key), len;
			uint64_t v;
			int rc = shm_reader_get(r, key, klen, val, TV_MAX, &len,
			    NULL);

			if (model[id] == 0) {
				cr_assert_eq(rc, -ENOENT, "key %" PRIu32, id);
				continue;
			}
			live++;
			cr_assert_eq(rc, 0, "key %" PRIu32 ": %d", id, rc);
			cr_assert_eq(tval_check(val, len, id, &v), TV_OK);
			cr_assert_eq(v, model[id], "key %" PRIu32, id);
		}
		cr_assert_eq(st.live_entries, live);
		shm_reader_close(r);
	}
	munmap(sh, sizeof(*sh));
	free(model);
	free(val);
	shm_writer_close(w, false);
}
