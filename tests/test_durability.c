/*
 * test_durability: what docs/operations.md promises about the state dir,
 * checked the way a power loss would check it (kill -9 alone cannot: the
 * page cache survives it).
 *
 * Suite "durability_order" runs the agent under tests/fsync_interpose.c
 * (LD_PRELOAD), which records, in order, every write and sync of the
 * change log and every write to a socket, with the log's synced size at
 * that moment.  Then:
 *   - `--fsync always`: "a change is acknowledged only after its log record
 *     is fsynced": the reply to every change leaves when the log is synced
 *     up to and including that change's record; a pipelined batch is
 *     covered by a few syncs (group commit), never by none;
 *   - `--fsync batch`: "fsynced once a second": each acknowledged change
 *     is synced within the second (plus scheduling slack);
 *   - snapshots and `save` ("written to a temp file, fsynced and
 *     renamed"): the temp file is fsynced after its last write and before
 *     the rename, and the directory after the rename.
 *
 * Suite "durability_crash" cuts the files as a power loss leaves them:
 *   - the change log at every record boundary and in the middle of every
 *     record (header and payload): the agent restores exactly the changes
 *     whose records are whole, i.e. every change acknowledged before the
 *     cut, and nothing else, with its tick;
 *   - a snapshot crash (DISTKV_TEST_CRASH_POINT, agent/persist.c) after
 *     the temp file is written and fsynced but before the rename, and after
 *     the rename but before the log is emptied: nothing acknowledged is
 *     lost, and ticks continue;
 *   - a half-written snapshot temp file is never loaded, and a snapshot cut
 *     in a record stops the start ("A damaged snapshot also stops the
 *     start").
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "harness.h"
#include "logfile.h"
#include "rawclient.h"

static struct harness_agent ag;

static void
setup(void)
{
	harness_init(&ag);
}

static void
teardown(void)
{
	harness_cleanup(&ag);
}

/* ---- small file helpers ---- */

/* Where the change log's records end (it is preallocated: not its size). */
static off_t
records_end(const char *path)
{
	off_t end = logfile_records_end(path);

	cr_assert(end >= 0, "%s: %s", path, strerror(errno));
	return end;
}

static uint8_t *
read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	long n;

	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	cr_assert_not_null(buf);
	cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static void
write_file(const char *path, const uint8_t *buf, size_t len)
{
	FILE *f = fopen(path, "wb");

	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	cr_assert_eq(fwrite(buf, 1, len, f), len);
	cr_assert_eq(fclose(f), 0);
}

/* ================= suite durability_order ================= */

#define INTERPOSER TOP_BUILDDIR "/tests/.libs/fsync_interpose.so"

static char trace[400];

/* Start ag under the interposer with the given --fsync policy. */
#define start_traced(policy) start_traced_args((policy), "--snapshot-every", \
	"0", (const char *)NULL, (const char *)NULL)

static void
start_traced_args(const char *policy, const char *o1, const char *v1,
    const char *o2, const char *v2)
{
	char asan[512];
	const char *old = getenv("ASAN_OPTIONS");

	cr_assert(access(INTERPOSER, R_OK) == 0, "%s not built", INTERPOSER);
	snprintf(trace, sizeof(trace), "%s/io.trace", ag.dir);
	/* in an ASan build the interposer comes before the ASan runtime */
	snprintf(asan, sizeof(asan), "%s%sverify_asan_link_order=0",
	    old != NULL ? old : "", old != NULL && old[0] != '\0' ? ":" : "");
	setenv("ASAN_OPTIONS", asan, 1);
	setenv("LD_PRELOAD", INTERPOSER, 1);
	setenv("DISTKV_IO_TRACE", trace, 1);
	RC_START(&ag, "--standalone", "--node", "d1", "--state-dir",
	    ag.state_dir, "--fsync", policy, o1, v1, o2, v2);
	unsetenv("LD_PRELOAD");
	unsetenv("DISTKV_IO_TRACE");
	if (old != NULL)
		setenv("ASAN_OPTIONS", old, 1);
	else
		unsetenv("ASAN_OPTIONS");
}

struct ev {
	char kind;		/* W, T, S, R */
	long long ns;
	long long size;		/* W, T: log size; S: durable size */
	long long durable;	/* R */
	long long written;	/* R */
	char path[320];		/* X, F: the file; N: from */
	char to[320];		/* N */
};

/* Every event of the trace so far; *n set. */
static struct ev *
read_trace(size_t *n)
{
	FILE *f = fopen(trace, "r");
	struct ev *v = NULL;
	size_t cap = 0;
	char line[1024];

	*n = 0;
	cr_assert_not_null(f, "no trace %s: is the interposer loaded?", trace);
	while (fgets(line, sizeof(line), f) != NULL) {
		struct ev e;
		int fd;
		size_t bytes;

		memset(&e, 0, sizeof(e));
		e.kind = line[0];
		if (e.kind == 'R') {
			cr_assert_eq(sscanf(line + 2, "%lld %d %zu %lld %lld",
			    &e.ns, &fd, &bytes, &e.durable, &e.written), 5,
			    "bad trace line %s", line);
		} else if (e.kind == 'X' || e.kind == 'F')
			cr_assert_eq(sscanf(line + 2, "%lld %319s", &e.ns,
			    e.path), 2, "bad trace line %s", line);
		else if (e.kind == 'N')
			cr_assert_eq(sscanf(line + 2, "%lld %319s %319s", &e.ns,
			    e.path, e.to), 3, "bad trace line %s", line);
		else
			cr_assert_eq(sscanf(line + 2, "%lld %lld", &e.ns,
			    &e.size), 2, "bad trace line %s", line);
		if (*n == cap) {
			cap = cap ? cap * 2 : 256;
			v = realloc(v, cap * sizeof(*v));
			cr_assert_not_null(v);
		}
		v[(*n)++] = e;
	}
	fclose(f);
	return v;
}

/* The last R event of the trace (the reply just received). */
static struct ev
last_reply(void)
{
	size_t n;
	struct ev *v = read_trace(&n), r;

	memset(&r, 0, sizeof(r));
	for (size_t i = n; i-- > 0;)
		if (v[i].kind == 'R') {
			r = v[i];
			break;
		}
	free(v);
	cr_assert_eq(r.kind, 'R', "no socket write in the trace");
	return r;
}

/*
 * n sets in one write, so that one loop iteration reads them all, and
 * their replies, each checked.
 */
static void
send_batch(struct rc_conn *c, int n)
{
	uint8_t *all = NULL;
	size_t alllen = 0;

	for (int i = 0; i < n; i++) {
		uint8_t *b;
		size_t bl;

		cr_assert_eq(rc_build(&b, &bl, "{seq:%d, action:'set_value', "
		    "path:['p', %d], value:%d}", i + 1, i, i), 0);
		all = realloc(all, alllen + bl);
		cr_assert_not_null(all);
		memcpy(all + alllen, b, bl);
		alllen += bl;
		free(b);
	}
	cr_assert_eq(rc_send_raw(c, all, alllen), 0);
	free(all);
	for (int i = 0; i < n; i++) {
		struct rc_msg *m = rc_recv_seq(c, i + 1, RC_TIMEOUT);

		RC_ASSERT_MATCH(m, "{seq:%d, changed:true, ...}", i + 1);
		rc_msg_free(m);
	}
}

TestSuite(durability_order, .init = setup, .fini = teardown, .timeout = 60);

Test(durability_order, always_syncs_each_change_before_its_reply)
{
	char logp[400];
	struct rc_conn *c;
	off_t before, after;
	int syncs = 0;
	size_t n;
	struct ev *v;

	snprintf(logp, sizeof(logp), "%s/changes.dkv", ag.state_dir);
	start_traced("always");
	c = rc_open(ag.socket);
	cr_assert_not_null(c);
	before = records_end(logp);
	for (int i = 0; i < 30; i++) {
		struct rc_msg *m;
		struct ev r;

		if (i % 7 == 6)
			m = rc_call(c, "{seq:%d, action:'delete_value', "
			    "path:['k', %d]}", i + 1, i - 1);
		else
			m = rc_call(c, "{seq:%d, action:'set_value', "
			    "path:['k', %d], value:'v%d'}", i + 1, i % 5, i);
		RC_ASSERT_MATCH(m, "{seq:%d, changed:_, ...}", i + 1);
		rc_msg_free(m);
		/* the agent has answered: its record is in the file ... */
		after = records_end(logp);
		cr_assert_gt(after, before, "change %d: no log record", i);
		/* ... and was synced before the reply left */
		r = last_reply();
		cr_assert_geq(r.durable, (long long)after, "change %d was "
		    "acknowledged with the log synced up to %lld of %lld "
		    "bytes", i, r.durable, (long long)after);
		before = after;
	}
	/* no reply ever left while written log bytes were unsynced */
	v = read_trace(&n);
	for (size_t i = 0; i < n; i++) {
		if (v[i].kind == 'S')
			syncs++;
		if (v[i].kind == 'R')
			cr_assert_eq(v[i].durable, v[i].written, "a reply left "
			    "with log bytes %lld..%lld unsynced",
			    v[i].durable, v[i].written);
	}
	cr_assert_geq(syncs, 30, "%d syncs for 30 acknowledged changes", syncs);
	free(v);
	rc_close(c);
}

Test(durability_order, always_group_commit_covers_a_pipelined_batch)
{
	enum { N = 50 };
	char logp[400];
	size_t n, first;
	struct rc_conn *c;
	struct ev *v;
	int syncs = 0, replies = 0;

	snprintf(logp, sizeof(logp), "%s/changes.dkv", ag.state_dir);
	start_traced("always");
	c = rc_open(ag.socket);
	cr_assert_not_null(c);
	free(read_trace(&first));
	send_batch(c, N);
	v = read_trace(&n);
	for (size_t i = first; i < n; i++) {
		if (v[i].kind == 'S')
			syncs++;
		if (v[i].kind != 'R')
			continue;
		replies++;
		cr_assert_eq(v[i].durable, v[i].written, "a reply left with "
		    "log bytes %lld..%lld unsynced", v[i].durable,
		    v[i].written);
	}
	cr_assert_gt(replies, 0);
	cr_assert_geq(v[n - 1].kind == 'R' ? v[n - 1].durable : 0,
	    (long long)records_end(logp), "the last reply left before the "
	    "whole batch was synced");
	/* group commit: one sync per loop iteration, not one per change
	 * (nor one per part of the batch whose replies the agent sends
	 * before the batch ends: server.c sends none before its sync) */
	cr_assert_gt(syncs, 0);
	cr_assert_leq(syncs, 2, "%d syncs for one batch of %d changes",
	    syncs, N);
	free(v);
	rc_close(c);
}

/*
 * Without a sync per flush, a pipelined batch's replies leave as it goes
 * (every 16 requests, server.c), so the client works on them while the
 * agent works on the rest; all of them still come, in order.  However the
 * 50 requests arrive (one read, or several), that makes at least 4
 * writes; sent at the batch's end only, as many as the reads (1 or 2).
 */
Test(durability_order, batch_sends_a_pipelined_batch_s_replies_as_it_goes)
{
	enum { N = 50 };
	size_t n, first;
	struct rc_conn *c;
	struct ev *v;
	int writes = 0;

	start_traced("batch");
	c = rc_open(ag.socket);
	cr_assert_not_null(c);
	free(read_trace(&first));
	send_batch(c, N);
	v = read_trace(&n);
	for (size_t i = first; i < n; i++)
		writes += v[i].kind == 'R';
	cr_assert_geq(writes, 4, "%d socket writes for a batch of %d", writes,
	    N);
	free(v);
	rc_close(c);
}

Test(durability_order, batch_syncs_every_change_within_a_second)
{
	enum { N = 5 };
	char logp[400];
	long long sent[N], size[N], deadline;
	struct rc_conn *c;
	struct ev *v = NULL;
	size_t n = 0;

	snprintf(logp, sizeof(logp), "%s/changes.dkv", ag.state_dir);
	start_traced("batch");
	c = rc_open(ag.socket);
	cr_assert_not_null(c);
	for (int i = 0; i < N; i++) {
		struct rc_msg *m = rc_call(c, "{seq:%d, action:'set_value', "
		    "path:['b', %d], value:%d}", i + 1, i, i);

		RC_ASSERT_MATCH(m, "{seq:%d, changed:true, ...}", i + 1);
		rc_msg_free(m);
		sent[i] = last_reply().ns;
		size[i] = records_end(logp);
	}
	/* wait (bounded) for the sync that covers the last change */
	deadline = harness_now_ms() + 5000;
	for (;;) {
		bool covered = false;

		free(v);
		v = read_trace(&n);
		for (size_t i = 0; i < n; i++)
			if (v[i].kind == 'S' && v[i].size >= size[N - 1])
				covered = true;
		if (covered)
			break;
		cr_assert_lt(harness_now_ms(), deadline, "the batch policy "
		    "never synced %lld log bytes", size[N - 1]);
		usleep(20000);	/* poll interval of a deadline-bounded wait */
	}
	for (int k = 0; k < N; k++) {
		long long synced_at = -1;

		for (size_t i = 0; i < n && synced_at < 0; i++)
			if (v[i].kind == 'S' && v[i].size >= size[k])
				synced_at = v[i].ns;
		cr_assert_geq(synced_at, 0);
		/* once a second; 0.5 s of slack for a loaded machine */
		cr_assert_leq(synced_at - sent[k], 1500000000LL, "change %d "
		    "was synced %lld ms after its reply", k,
		    (synced_at - sent[k]) / 1000000);
	}
	free(v);
	rc_close(c);
}

/*
 * "A snapshot is written to a temp file, fsynced and renamed" and `save`
 * writes "atomically": for every rename onto a snapshot or save file, the
 * temp file was fsynced after its last write and before the rename, and
 * the directory was fsynced after it (else a power loss may leave the old
 * name, or a new name on unwritten blocks).
 */
static void
check_atomic_renames(const char *target, int want)
{
	size_t n;
	struct ev *v = read_trace(&n);
	int seen = 0;

	for (size_t i = 0; i < n; i++) {
		char dir[320];
		long long last_write = -1, synced = -1, dir_synced = -1;
		char *slash;

		if (v[i].kind != 'N' || !(strlen(v[i].to) >= strlen(target) &&
		    strcmp(v[i].to + strlen(v[i].to) - strlen(target),
		    target) == 0))
			continue;
		seen++;
		for (size_t j = 0; j < i; j++) {
			if (v[j].kind == 'X' && strcmp(v[j].path, v[i].path) == 0)
				last_write = v[j].ns;
			if (v[j].kind == 'F' && strcmp(v[j].path, v[i].path) == 0)
				synced = v[j].ns;
		}
		snprintf(dir, sizeof(dir), "%s", v[i].to);
		slash = strrchr(dir, '/');
		cr_assert_not_null(slash);
		*slash = '\0';
		for (size_t j = i + 1; j < n && dir_synced < 0; j++)
			if (v[j].kind == 'F' && strcmp(v[j].path, dir) == 0)
				dir_synced = v[j].ns;
		cr_assert_geq(last_write, 0, "%s: no write to %s seen", target,
		    v[i].path);
		cr_assert_gt(synced, last_write, "%s was renamed to %s without "
		    "an fsync after its last write", v[i].path, v[i].to);
		cr_assert_geq(dir_synced, 0, "no fsync of %s after renaming %s "
		    "into it", dir, v[i].path);
	}
	cr_assert_eq(seen, want, "%d renames onto %s, want %d", seen, target,
	    want);
	free(v);
}

Test(durability_order, snapshot_and_save_sync_the_temp_file_then_the_dir)
{
	struct rc_conn *c;

	cr_assert_eq(mkdir(ag.state_dir, 0750), 0);
	start_traced_args("always", "--snapshot-every", "3", "--file-dir",
	    ag.state_dir);
	c = rc_open(ag.socket);
	cr_assert_not_null(c);
	for (int i = 0; i < 3; i++) {
		struct rc_msg *m = rc_call(c, "{seq:%d, action:'set_value', "
		    "path:['s', %d], value:%d}", i + 1, i, i);

		RC_ASSERT_MATCH(m, "{seq:%d, changed:true, ...}", i + 1);
		rc_msg_free(m);
	}
	/* the third change made a snapshot before its reply */
	check_atomic_renames("/snapshot.dkv", 1);
	RC_ASSERT_MATCH(rc_call(c, "{seq:10, action:'save', path:'b.dkv'}"),
	    "{seq:10, result:true, tock:_}");
	check_atomic_renames("/b.dkv", 1);
	rc_close(c);
	/* and the final snapshot of a clean stop */
	cr_assert_eq(harness_stop(&ag), 0);
	check_atomic_renames("/snapshot.dkv", 2);
}

/* ================= suite durability_crash ================= */

TestSuite(durability_crash, .init = setup, .fini = teardown, .timeout = 180);

enum { K = 12, NKEYS = 6 };

/* The changes, in order: key, value (NULL: delete). */
static const struct {
	int key;
	const char *value;
} changes[K] = {
	{ 0, "a0" }, { 1, "a1" }, { 0, "b0" }, { 1, NULL }, { 2, "a2" },
	{ 1, "c1" }, { 3, "a3" }, { 0, NULL }, { 4, "a4" }, { 5, "a5" },
	{ 2, "b2" }, { 4, NULL },
};

/* The model after the first p changes. */
static void
model_at(int p, const char *out[NKEYS])
{
	for (int k = 0; k < NKEYS; k++)
		out[k] = NULL;
	for (int i = 0; i < p; i++)
		out[changes[i].key] = changes[i].value;
}

static int64_t
do_change(struct rc_conn *c, int i)
{
	struct rc_msg *m;
	int64_t tick;

	if (changes[i].value == NULL)
		m = rc_call(c, "{seq:%d, action:'delete_value', path:['c', %d]}",
		    i + 1, changes[i].key);
	else
		m = rc_call(c, "{seq:%d, action:'set_value', path:['c', %d], "
		    "value:'%s'}", i + 1, changes[i].key, changes[i].value);
	RC_ASSERT_MATCH(m, "{seq:%d, changed:_, ...}", i + 1);
	tick = rc_int(&m->obj, "chain.tick");
	rc_msg_free(m);
	return tick;
}

/* Every key of the node holds exactly the model (nil for none). */
static void
check_model(struct rc_conn *c, const char *const want[NKEYS],
    const char *what)
{
	for (int k = 0; k < NKEYS; k++) {
		struct rc_msg *m = rc_call(c, "{seq:%d, action:'get_value', "
		    "path:['c', %d]}", 900 + k, k);
		char err[512];

		if (want[k] == NULL)
			cr_assert(rc_match(&m->obj, err, sizeof(err),
			    "{seq:%d, value:nil, ...}", 900 + k),
			    "%s: key %d: %s", what, k, err);
		else
			cr_assert(rc_match(&m->obj, err, sizeof(err),
			    "{seq:%d, value:'%s', ...}", 900 + k, want[k]),
			    "%s: key %d: %s", what, k, err);
		rc_msg_free(m);
	}
}

/* Restore from a state dir holding just this log; check the model. */
static void
restore_log(const uint8_t *log, size_t cut, int prefix, int64_t tick,
    const char *what)
{
	struct harness_agent b;
	char path[400];
	const char *want[NKEYS];
	struct rc_conn *c;

	harness_init(&b);
	cr_assert_eq(mkdir(b.state_dir, 0750), 0);
	snprintf(path, sizeof(path), "%s/changes.dkv", b.state_dir);
	write_file(path, log, cut);
	cr_assert(harness_start(&b, "--standalone", "--node", "c1",
	    "--state-dir", b.state_dir, NULL) == 0,
	    "%s: the agent did not start; stderr:\n%s", what,
	    rc_agent_err(&b));
	c = rc_open(b.socket);
	cr_assert_not_null(c, "%s", what);
	if (prefix > 0)
		cr_assert_eq(rc_int(&c->greeting->obj, "tick"), tick,
		    "%s: tick %lld after restoring %d changes (want %lld)",
		    what, (long long)rc_int(&c->greeting->obj, "tick"), prefix,
		    (long long)tick);
	model_at(prefix, want);
	check_model(c, want, what);
	rc_close(c);
	harness_kill9(&b);
	harness_cleanup(&b);
}

/*
 * Make the K changes on a fresh agent, noting after each where the log's
 * records end and the change's tick, then kill -9 it.  fsync always:
 * when change i is acknowledged, the log ends with its record (no other
 * change runs meanwhile).
 */
static void
log_changes_then_crash(const char *logp, off_t end[K + 1],
    int64_t tick[K + 1])
{
	struct rc_conn *c;

	RC_START(&ag, "--standalone", "--node", "c1", "--state-dir",
	    ag.state_dir, "--snapshot-every", "0");
	c = rc_open(ag.socket);
	cr_assert_not_null(c);
	end[0] = records_end(logp);
	tick[0] = 0;
	for (int i = 0; i < K; i++) {
		tick[i + 1] = do_change(c, i);
		end[i + 1] = records_end(logp);
		cr_assert_gt(end[i + 1], end[i]);
	}
	harness_kill9(&ag);
	rc_close(c);
}

Test(durability_crash, log_cut_anywhere_restores_the_acknowledged_prefix)
{
	off_t end[K + 1];
	int64_t tick[K + 1];
	char logp[400], what[128];
	uint8_t *log;
	size_t len;

	snprintf(logp, sizeof(logp), "%s/changes.dkv", ag.state_dir);
	log_changes_then_crash(logp, end, tick);
	log = read_file(logp, &len);
	cr_assert_geq((off_t)len, end[K]);
	for (size_t i = (size_t)end[K]; i < len; i++)
		cr_assert_eq(log[i], 0, "not zeros after the records");
	/* as an append-only log would be (no preallocated zeros after) */
	len = (size_t)end[K];

	for (int p = 0; p <= K; p++) {
		/* the boundary after change p: exactly p changes */
		snprintf(what, sizeof(what), "cut after record %d", p);
		restore_log(log, (size_t)end[p], p, tick[p], what);
		if (p == K)
			break;
		/* inside record p+1: its header, then its payload */
		snprintf(what, sizeof(what), "cut in the header of record %d",
		    p + 1);
		restore_log(log, (size_t)end[p] + 5, p, tick[p], what);
		snprintf(what, sizeof(what), "cut in the payload of record %d",
		    p + 1);
		restore_log(log, (size_t)(end[p] + end[p + 1]) / 2, p, tick[p],
		    what);
		snprintf(what, sizeof(what), "record %d short of its last "
		    "byte", p + 1);
		restore_log(log, (size_t)end[p + 1] - 1, p, tick[p], what);
	}
	free(log);
}

/*
 * The agent preallocates its log: a crash while record p+1 was written
 * leaves zeros where its lost sectors are, and zeros after it.  Nobody
 * was told record p+1 is durable; every record before it was.
 */
Test(durability_crash, write_cut_in_preallocated_space_restores_the_prefix)
{
	enum { TAIL = 65536 };
	off_t end[K + 1];
	int64_t tick[K + 1];
	char logp[400], what[128];
	uint8_t *log, *buf;
	size_t len;
	int crossing = 0;

	snprintf(logp, sizeof(logp), "%s/changes.dkv", ag.state_dir);
	log_changes_then_crash(logp, end, tick);
	log = read_file(logp, &len);
	buf = calloc(1, (size_t)end[K] + TAIL);
	cr_assert_not_null(buf);
	for (int p = 0; p < K; p++) {
		size_t b = ((size_t)end[p] / 512 + 1) * 512;

		/* nothing of record p+1 reached the disk */
		memset(buf, 0, (size_t)end[K] + TAIL);
		memcpy(buf, log, (size_t)end[p]);
		snprintf(what, sizeof(what), "record %d not written, zeros "
		    "after record %d", p + 1, p);
		restore_log(buf, (size_t)end[p] + TAIL, p, tick[p], what);
		if (b >= (size_t)end[p + 1])
			continue;
		crossing++;
		/* its sectors from the boundary on lost */
		memcpy(buf, log, b);
		snprintf(what, sizeof(what), "record %d lost from offset %zu",
		    p + 1, b);
		restore_log(buf, (size_t)end[K] + TAIL, p, tick[p], what);
		/* its first sector lost, the later ones kept */
		memset(buf, 0, (size_t)end[K] + TAIL);
		memcpy(buf, log, (size_t)end[p]);
		memcpy(buf + b, log + b, (size_t)end[K] - b);
		snprintf(what, sizeof(what), "record %d lost before offset %zu, "
		    "kept after", p + 1, b);
		restore_log(buf, (size_t)end[K] + TAIL, p, tick[p], what);
	}
	cr_assert_gt(crossing, 0, "no record crosses a 512-byte boundary");
	free(buf);
	free(log);
}

#define START_SNAP(...) RC_START(&ag, "--standalone", "--node", "s1",	\
	"--state-dir", ag.state_dir, __VA_ARGS__)

/* ['s', i] = "g<gen>-<i>" for i in [from, to); returns the last tick. */
static int64_t
write_gen(struct rc_conn *c, int from, int to, int gen)
{
	int64_t tick = 0;

	for (int i = from; i < to; i++) {
		struct rc_msg *m = rc_call(c, "{seq:%d, action:'set_value', "
		    "path:['s', %d], value:'g%d-%d'}", 100000 * gen + i, i, gen, i);

		RC_ASSERT_MATCH(m, "{seq:%d, changed:_, ...}", 100000 * gen + i);
		tick = rc_int(&m->obj, "chain.tick");
		rc_msg_free(m);
	}
	return tick;
}

/* ['s', i] holds generation gens[i] for i < n. */
static void
check_gens(struct rc_conn *c, int n, const int *gens, const char *what)
{
	for (int i = 0; i < n; i++) {
		struct rc_msg *m = rc_call(c, "{seq:%d, action:'get_value', "
		    "path:['s', %d]}", 5000 + i, i);
		char err[512];

		cr_assert(rc_match(&m->obj, err, sizeof(err),
		    "{seq:%d, value:'g%d-%d', ...}", 5000 + i, gens[i], i),
		    "%s: ['s', %d]: %s", what, i, err);
		rc_msg_free(m);
	}
}

/*
 * Generation 1 in a clean snapshot; then with the crash point armed and
 * a snapshot due after 5 changes, generation 2 of keys 0..4: the fifth
 * change triggers the snapshot, which kills the agent at the point.
 * Returns the tick of the fourth (last acknowledged) change.
 */
static int64_t
crash_in_snapshot(const char *point)
{
	char tmp[400], snap[400];
	struct rc_conn *c;
	struct rc_msg *m;
	int64_t tick;
	int status;

	START_SNAP("--snapshot-every", "0");
	c = rc_open(ag.socket);
	cr_assert_not_null(c);
	write_gen(c, 0, 10, 1);
	rc_close(c);
	cr_assert_eq(harness_stop(&ag), 0);	/* snapshot, log emptied */
	snprintf(snap, sizeof(snap), "%s/snapshot.dkv", ag.state_dir);
	snprintf(tmp, sizeof(tmp), "%s/snapshot.dkv.tmp", ag.state_dir);
	cr_assert(access(snap, F_OK) == 0);

	setenv("DISTKV_TEST_CRASH_POINT", point, 1);
	START_SNAP("--snapshot-every", "5");
	unsetenv("DISTKV_TEST_CRASH_POINT");
	c = rc_open(ag.socket);
	cr_assert_not_null(c);
	tick = write_gen(c, 0, 4, 2);
	/* the fifth change: logged, then the snapshot kills the agent */
	rc_send(c, "{seq:999999, action:'set_value', path:['s', 4], "
	    "value:'g2-4'}");
	m = rc_recv_seq(c, 999999, RC_TIMEOUT);
	cr_assert_null(m, "the agent answered: the crash point %s was not "
	    "reached", point);
	cr_assert(rc_wait_eof(c, RC_TIMEOUT));
	rc_close(c);
	cr_assert_eq(waitpid(ag.pid, &status, 0), ag.pid);
	ag.pid = 0;
	cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
	    "the agent did not die at %s (status %d); stderr:\n%s", point,
	    status, rc_agent_err(&ag));
	if (strcmp(point, "save-before-rename") == 0)
		cr_assert(access(tmp, F_OK) == 0, "no temp snapshot");
	return tick;
}

/* After the crash: the acknowledged changes are all there; the fifth was
 * logged before the snapshot began, so it is there too; ticks go on. */
static void
check_after_crash(int64_t tick4, const char *what)
{
	int gens[10] = { 2, 2, 2, 2, 2, 1, 1, 1, 1, 1 };
	struct rc_conn *c;
	int64_t t;

	START_SNAP("--snapshot-every", "0");
	c = rc_open(ag.socket);
	cr_assert_not_null(c, "%s: restart: %s", what, rc_agent_err(&ag));
	check_gens(c, 10, gens, what);
	cr_assert_eq(rc_int(&c->greeting->obj, "tick"), tick4 + 1, "%s", what);
	t = write_gen(c, 5, 6, 3);
	cr_assert_eq(t, tick4 + 2, "%s: tick reused or skipped", what);
	rc_close(c);
	/* and once more through a clean snapshot */
	cr_assert_eq(harness_stop(&ag), 0);
	START_SNAP("--snapshot-every", "0");
	c = rc_open(ag.socket);
	cr_assert_not_null(c);
	gens[5] = 3;
	check_gens(c, 10, gens, what);
	rc_close(c);
}

Test(durability_crash, snapshot_crash_before_rename_loses_nothing)
{
	int64_t tick4 = crash_in_snapshot("save-before-rename");

	check_after_crash(tick4, "crash before the rename");
}

Test(durability_crash, snapshot_crash_before_the_log_is_emptied_loses_nothing)
{
	int64_t tick4 = crash_in_snapshot("snapshot-before-truncate");

	check_after_crash(tick4, "crash between rename and emptying the log");
}

/*
 * A snapshot temp file cut anywhere (a power loss while it was written)
 * is never loaded; the snapshot proper, cut in a record, stops the start.
 */
Test(durability_crash, torn_snapshot_files)
{
	char snap[400], tmp[400];
	uint8_t *s;
	size_t len;
	struct rc_conn *c;
	int gens[10] = { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1 };

	snprintf(snap, sizeof(snap), "%s/snapshot.dkv", ag.state_dir);
	snprintf(tmp, sizeof(tmp), "%s/snapshot.dkv.tmp", ag.state_dir);
	START_SNAP("--snapshot-every", "0");
	c = rc_open(ag.socket);
	cr_assert_not_null(c);
	write_gen(c, 0, 10, 1);
	rc_close(c);
	cr_assert_eq(harness_stop(&ag), 0);
	s = read_file(snap, &len);
	/* a newer snapshot, half written, next to the old one */
	for (size_t cut = 8; cut < len; cut += len / 7 + 1) {
		write_file(tmp, s, cut);
		START_SNAP("--snapshot-every", "0");
		c = rc_open(ag.socket);
		cr_assert_not_null(c);
		check_gens(c, 10, gens, "with a torn temp snapshot");
		rc_close(c);
		harness_kill9(&ag);
	}
	unlink(tmp);
	/* the snapshot itself cut inside its last record: refused */
	write_file(snap, s, len - 3);
	cr_assert(harness_start(&ag, "--standalone", "--node", "s1",
	    "--state-dir", ag.state_dir, NULL) != 0,
	    "the agent started from a damaged snapshot");
	free(s);
}
