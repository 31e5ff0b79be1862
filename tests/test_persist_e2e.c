/*
 * test_persist_e2e: durability of a real distkv-agent.
 *
 * --state-dir with the default fsync policy (always): every acknowledged
 * change survives kill -9; the agent's tick continues and is never reused;
 * a damaged log tail is cut on restart without losing the records before
 * it.  `save` + `--load` reproduce the tree exactly (values, tocks,
 * chains) and the tick numbering continues from the file.
 *
 * The state dir holds snapshot.dkv and changes.dkv (agent/persist.c);
 * the damage tests write into changes.dkv, which must exist.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "harness.h"
#include "logfile.h"
#include "proto.h"
#include "rawclient.h"

static struct harness_agent ag;
static struct harness_agent b;	/* the second agent of the load tests */

static void
setup(void)
{
	harness_init(&ag);
}

static void
teardown(void)
{
	harness_cleanup(&ag);
	if (b.dir[0] != '\0')
		harness_cleanup(&b);
}

TestSuite(persist, .init = setup, .fini = teardown, .timeout = 60);

#define START_STATE() RC_START(&ag, "--standalone", "--node", "p1",	\
	"--state-dir", ag.state_dir)

struct acked {
	int64_t tick, tock;
};

/* Set ['k', i] = "v<i>-<gen>" for i in [from, to); remember tick/tock. */
static void
write_values(struct rc_conn *c, int from, int to, int gen, struct acked *out)
{
	int i;

	for (i = from; i < to; i++) {
		struct rc_msg *m = rc_call(c, "{seq:%d, action:'set_value', "
		    "path:['k', %d], value:'v%d-%d'}", i + 1, i, i, gen);

		RC_ASSERT_MATCH(m, "{seq:%d, changed:_, prev:_, "
		    "chain:{node:'p1', tick:_, prev:nil}, tock:_}", i + 1);
		out[i].tick = rc_int(&m->obj, "chain.tick");
		out[i].tock = rc_int(&m->obj, "tock");
		rc_msg_free(m);
	}
}

/* Every ['k', i] for i < n holds "v<i>-<gen>" with the acknowledged tock. */
static void
check_values(struct rc_conn *c, int n, int gen, const struct acked *a)
{
	int i;

	for (i = 0; i < n; i++) {
		struct rc_msg *m = rc_call(c, "{seq:%d, action:'get_value', "
		    "path:['k', %d], nchain:1}", 10000 + i, i);

		RC_ASSERT_MATCH(m, "{seq:%d, value:'v%d-%d', tock:%lld, "
		    "chain:{node:'p1', tick:%lld, prev:nil}}", 10000 + i, i,
		    gen, (long long)a[i].tock, (long long)a[i].tick);
		rc_msg_free(m);
	}
}

static off_t
file_size(const char *path)
{
	struct stat st;

	cr_assert(stat(path, &st) == 0, "%s does not exist", path);
	return st.st_size;
}

static void
log_path(char *out, size_t len)
{
	snprintf(out, len, "%s/changes.dkv", ag.state_dir);
}

/* ------------------------------------------------------------------ */

Test(persist, kill9_keeps_every_acknowledged_value)
{
	enum { N = 60 };
	struct acked a[N];
	struct rc_conn *c;
	struct rc_msg *m;
	int64_t tick0, tick1, maxtock = 0;
	int i;

	START_STATE();
	c = rc_open(ag.socket);
	cr_assert(c != NULL);
	tick0 = rc_int(&c->greeting->obj, "tick");
	write_values(c, 0, N, 1, a);
	/* overwrite some: only the newest survives, superseded ticks too */
	for (i = 0; i < N; i += 3) {
		m = rc_call(c, "{seq:%d, action:'set_value', path:['k', %d], "
		    "value:'v%d-1'}", 1000 + i, i, i);
		RC_ASSERT_MATCH(m, "{seq:%d, changed:false, prev:'v%d-1', "
		    "chain:_, tock:_}", 1000 + i, i);
		a[i].tick = rc_int(&m->obj, "chain.tick");
		a[i].tock = rc_int(&m->obj, "tock");
	}
	m = rc_call(c, "{seq:2000, action:'delete_value', path:['k', 1]}");
	RC_ASSERT_MATCH(m, "{seq:2000, changed:true, ...}");
	tick1 = rc_int(&m->obj, "chain.tick");
	for (i = 0; i < N; i++)
		if (a[i].tock > maxtock)
			maxtock = a[i].tock;
	cr_assert_eq(tick1, tick0 + N + (N + 2) / 3 + 1);
	harness_kill9(&ag);	/* acknowledged == durable (fsync always) */
	rc_close(c);

	START_STATE();
	c = rc_open(ag.socket);
	cr_assert(c != NULL);
	RC_ASSERT_MATCH(c->greeting, "{seq:0, shm:_, node:'p1', version:_, "
	    "tick:%lld, tock:_}", (long long)tick1);
	cr_assert(rc_int(&c->greeting->obj, "tock") > maxtock,
	    "greeting tock %lld not above the restored tocks (max %lld)",
	    (long long)rc_int(&c->greeting->obj, "tock"),
	    (long long)maxtock);
	check_values(c, 1, 1, a);
	m = rc_call(c, "{seq:20001, action:'get_value', path:['k', 1], "
	    "nchain:1}");
	RC_ASSERT_MATCH(m, "{seq:20001, value:nil, tock:_, "
	    "chain:{node:'p1', tick:%lld, prev:nil}}", (long long)tick1);
	/* check_values skips i == 1 (deleted) */
	for (i = 2; i < N; i++) {
		m = rc_call(c, "{seq:%d, action:'get_value', path:['k', %d], "
		    "nchain:1}", 20010 + i, i);
		RC_ASSERT_MATCH(m, "{seq:%d, value:'v%d-1', tock:%lld, "
		    "chain:{node:'p1', tick:%lld, prev:nil}}", 20010 + i, i,
		    (long long)a[i].tock, (long long)a[i].tick);
		rc_msg_free(m);
	}
	/* superseded ticks stay superseded */
	m = rc_call(c, "{seq:20100, action:'get_value', node:'p1', tick:%lld}",
	    (long long)tick0 + 1);
	RC_ASSERT_MATCH(m, "{seq:20100, error:_, tock:_}");
	m = rc_call(c, "{seq:20101, action:'get_state', nodes:true, known:true, "
	    "missing:true}");
	RC_ASSERT_MATCH(m, "{seq:20101, nodes:{p1:%lld}, known:{p1:_}, "
	    "missing:{}, tock:_}", (long long)tick1);

	/* a new change gets a fresh tick */
	m = rc_call(c, "{seq:20102, action:'set_value', path:['new'], "
	    "value:1}");
	RC_ASSERT_MATCH(m, "{seq:20102, changed:true, prev:nil, "
	    "chain:{node:'p1', tick:%lld, prev:nil}, tock:_}",
	    (long long)tick1 + 1);
	cr_assert(rc_int(&m->obj, "tock") > maxtock);
	rc_close(c);

	/* a clean stop and a third start: still all there */
	cr_assert_eq(harness_stop(&ag), 0, "agent exit status; stderr:\n%s",
	    rc_agent_err(&ag));
	START_STATE();
	c = rc_open(ag.socket);
	cr_assert(c != NULL);
	RC_ASSERT_MATCH(c->greeting, "{seq:0, shm:_, node:'p1', version:_, "
	    "tick:%lld, tock:_}", (long long)tick1 + 1);
	check_values(c, 1, 1, a);
	RC_ASSERT_MATCH(rc_call(c, "{seq:20001, action:'get_value', "
	    "path:['new']}"), "{seq:20001, value:1, tock:_}");
	rc_close(c);
}

Test(persist, restart_without_writes_reuses_no_tick)
{
	struct rc_conn *c;
	struct rc_msg *m;
	int64_t t;
	int round;

	START_STATE();
	c = rc_open(ag.socket);
	cr_assert(c != NULL);
	m = rc_call(c, "{seq:1, action:'set_value', path:['a'], value:1}");
	t = rc_int(&m->obj, "chain.tick");
	rc_close(c);
	for (round = 0; round < 3; round++) {
		harness_kill9(&ag);
		START_STATE();
		c = rc_open(ag.socket);
		cr_assert(c != NULL);
		RC_ASSERT_MATCH(c->greeting, "{seq:0, shm:_, node:'p1', version:_, "
		    "tick:%lld, tock:_}", (long long)t);
		m = rc_call(c, "{seq:1, action:'set_value', path:['a'], "
		    "value:%d}", round + 2);
		RC_ASSERT_MATCH(m, "{seq:1, changed:true, prev:%d, "
		    "chain:{node:'p1', tick:%lld, prev:nil}, tock:_}",
		    round + 1, (long long)t + 1);
		t++;
		rc_close(c);
	}
}

Test(persist, torn_log_tail_is_cut)
{
	enum { N = 20 };
	static const uint8_t garbage[] = {
		0x31, 0x00, 0x00, 0x00, 0xde, 0xad, 0xbe, 0xef,	/* header */
		0x84, 0xa3, 's', 'e', 'q',			/* partial */
	};
	struct acked a[N + 1];
	char logp[400];
	struct rc_conn *c;
	struct rc_msg *m;
	off_t before;
	FILE *f;

	START_STATE();
	c = rc_open(ag.socket);
	cr_assert(c != NULL);
	write_values(c, 0, N, 1, a);
	harness_kill9(&ag);
	rc_close(c);

	log_path(logp, sizeof(logp));
	before = logfile_records_end(logp);
	cr_assert(before > 8, "changes.dkv holds no records after %d "
	    "acknowledged changes", N);
	/* as a log without preallocated space ends after a crash (torn
	 * writes into preallocated space: test_durability.c) */
	cr_assert(truncate(logp, before) == 0);
	f = fopen(logp, "ab");
	cr_assert(f != NULL);
	cr_assert_eq(fwrite(garbage, 1, sizeof(garbage), f),
	    sizeof(garbage));
	fclose(f);

	START_STATE();
	c = rc_open(ag.socket);
	cr_assert(c != NULL);
	RC_ASSERT_MATCH(c->greeting, "{seq:0, shm:_, node:'p1', version:_, "
	    "tick:%lld, tock:_}", (long long)a[N - 1].tick);
	check_values(c, N, 1, a);
	/* a change after the cut must land where the next restart finds it */
	m = rc_call(c, "{seq:20001, action:'set_value', path:['k', %d], "
	    "value:'v%d-1'}", N, N);
	RC_ASSERT_MATCH(m, "{seq:20001, changed:true, prev:nil, "
	    "chain:{node:'p1', tick:%lld, prev:nil}, tock:_}",
	    (long long)a[N - 1].tick + 1);
	a[N].tick = rc_int(&m->obj, "chain.tick");
	a[N].tock = rc_int(&m->obj, "tock");
	harness_kill9(&ag);
	rc_close(c);

	START_STATE();
	c = rc_open(ag.socket);
	cr_assert(c != NULL, "restart after cut failed; stderr:\n%s",
	    rc_agent_err(&ag));
	RC_ASSERT_MATCH(c->greeting, "{seq:0, shm:_, node:'p1', version:_, "
	    "tick:%lld, tock:_}", (long long)a[N].tick);
	check_values(c, N + 1, 1, a);
	rc_close(c);
}

Test(persist, torn_record_loses_only_itself)
{
	enum { N = 10 };
	struct acked a[N];
	char logp[400];
	struct rc_conn *c;
	struct rc_msg *m;
	off_t size;

	START_STATE();
	c = rc_open(ag.socket);
	cr_assert(c != NULL);
	write_values(c, 0, N, 1, a);
	harness_kill9(&ag);
	rc_close(c);

	/* as if the machine died while the last record was appended (a log
	 * without preallocated space) */
	log_path(logp, sizeof(logp));
	size = logfile_records_end(logp);
	cr_assert(size > 8);
	cr_assert(truncate(logp, size - 3) == 0);

	START_STATE();
	c = rc_open(ag.socket);
	cr_assert(c != NULL, "no restart after a torn record; stderr:\n%s",
	    rc_agent_err(&ag));
	check_values(c, N - 1, 1, a);
	m = rc_call(c, "{seq:20001, action:'get_value', path:['k', %d]}",
	    N - 1);
	RC_ASSERT_MATCH(m, "{seq:20001, value:nil, tock:_}");
	rc_close(c);
}

Test(persist, garbage_log_does_not_start_empty_silently)
{
	char logp[400];
	struct rc_conn *c;
	struct acked a[5];
	FILE *f;
	off_t size;
	uint8_t *buf;

	START_STATE();
	c = rc_open(ag.socket);
	cr_assert(c != NULL);
	write_values(c, 0, 5, 1, a);
	harness_kill9(&ag);
	rc_close(c);
	/* flip a byte in the middle of the first record's payload */
	log_path(logp, sizeof(logp));
	size = file_size(logp);
	buf = malloc((size_t)size);
	cr_assert(buf != NULL);
	f = fopen(logp, "r+b");
	cr_assert(f != NULL);
	cr_assert_eq(fread(buf, 1, (size_t)size, f), (size_t)size);
	buf[8 + 8 + 2] ^= 0x55;
	rewind(f);
	cr_assert_eq(fwrite(buf, 1, (size_t)size, f), (size_t)size);
	fclose(f);
	free(buf);
	/*
	 * The checksum catches it; what follows is cut.  The agent must not
	 * hand out ticks it already used: either it refuses to start, or it
	 * starts with a tick that is not below the last acknowledged one.
	 */
	if (harness_start(&ag, "--standalone", "--node", "p1", "--state-dir",
	    ag.state_dir, (const char *)NULL) != 0)
		return;	/* refused: fine */
	c = rc_open(ag.socket);
	cr_assert(c != NULL);
	cr_assert(rc_int(&c->greeting->obj, "tick") >= a[4].tick,
	    "tick %lld after losing the log would reuse ticks up to %lld "
	    "(DESIGN.md: never reused)",
	    (long long)rc_int(&c->greeting->obj, "tick"),
	    (long long)a[4].tick);
	rc_close(c);
}

/* ------------------------------------------------------------------ */
/* save + --load (§2.8, §7 test_21_load_save) */

/* get_tree [] with chains, items rendered without seq: the whole tree. */
static void
tree_text(struct rc_conn *c, int64_t seq, char *out, size_t outlen)
{
	struct rc_msg **v;
	size_t i, n, len = 0;
	char tmp[4096];

	out[0] = '\0';
	rc_send(c, "{seq:%lld, action:'get_tree', path:[], nchain:9}",
	    (long long)seq);
	v = rc_collect(c, seq, &n, RC_TIMEOUT);
	for (i = 0; i < n; i++) {
		if (rc_has(&v[i]->obj, "state"))
			continue;
		len += (size_t)snprintf(out + len, outlen - len, "%s\n",
		    rc_render(&v[i]->obj, tmp, sizeof(tmp)));
		cr_assert(len < outlen);
	}
	rc_msgs_free(v, n);
}

Test(persist, save_then_load)
{
	static char before[65536], after[65536];
	char filedir[400], file[500];
	struct rc_conn *c;
	struct rc_msg *m;
	int64_t last_tick;
	struct stat st;

	snprintf(filedir, sizeof(filedir), "%s/files", ag.dir);
	cr_assert(mkdir(filedir, 0700) == 0);
	RC_START(&ag, "--standalone", "--node", "s1", "--init", "123",
	    "--file-dir", filedir);
	c = rc_open(ag.socket);
	cr_assert(c != NULL);
	rc_call(c, "{seq:1, action:'set_value', path:['foo'], value:'hello'}");
	rc_call(c, "{seq:2, action:'set_value', path:['foo','bar'], "
	    "value:'baz'}");
	rc_call(c, "{seq:3, action:'set_value', path:['a','b','c'], "
	    "value:{x:[1, 2.5, b'\\x00\\xff', nil, true]}}");
	rc_call(c, "{seq:4, action:'set_value', path:['a', 7, b'bin'], "
	    "value:-5}");
	rc_call(c, "{seq:5, action:'set_value', path:['gone'], value:1}");
	rc_call(c, "{seq:6, action:'delete_value', path:['gone']}");
	m = rc_call(c, "{seq:7, action:'set_value', path:['foo'], "
	    "value:'hello2'}");
	last_tick = rc_int(&m->obj, "chain.tick");
	cr_assert_eq(last_tick, 8);
	tree_text(c, 8, before, sizeof(before));

	/* file names stay inside --file-dir */
	RC_ASSERT_MATCH(rc_call(c, "{seq:9, action:'save', "
	    "path:'/tmp/x.dkv'}"), "{seq:9, error:_, tock:_}");
	RC_ASSERT_MATCH(rc_call(c, "{seq:10, action:'save', "
	    "path:'../x.dkv'}"), "{seq:10, error:_, tock:_}");
	RC_ASSERT_MATCH(rc_call(c, "{seq:11, action:'save', "
	    "path:'snap.dkv'}"), "{seq:11, result:true, tock:_}");
	snprintf(file, sizeof(file), "%s/snap.dkv", filedir);
	cr_assert(stat(file, &st) == 0 && st.st_size > 8,
	    "save did not write %s", file);
	rc_close(c);

	/* a fresh agent loads it */
	harness_init(&b);
	RC_START(&b, "--standalone", "--node", "s1", "--load", file);
	c = rc_open(b.socket);
	cr_assert(c != NULL);
	RC_ASSERT_MATCH(c->greeting, "{seq:0, shm:_, node:'s1', version:_, "
	    "tick:%lld, tock:_}", (long long)last_tick);
	tree_text(c, 8, after, sizeof(after));
	cr_assert_str_eq(after, before, "loaded tree differs");
	m = rc_call(c, "{seq:20, action:'get_state', nodes:true, known:true, "
	    "missing:true}");
	RC_ASSERT_MATCH(m, "{seq:20, nodes:{s1:%lld}, known:{s1:[[1,%lld]]},"
	    " missing:{}, tock:_}", (long long)last_tick,
	    (long long)last_tick + 1);
	/* the tombstone came along with its chain */
	m = rc_call(c, "{seq:21, action:'get_value', path:['gone'], "
	    "nchain:1}");
	RC_ASSERT_MATCH(m, "{seq:21, value:nil, tock:_, "
	    "chain:{node:'s1', tick:7, prev:nil}}");
	/* superseded stays superseded; live ticks are readable */
	RC_ASSERT_MATCH(rc_call(c, "{seq:22, action:'get_value', "
	    "node:'s1', tick:2}"), "{seq:22, error:_, tock:_}");
	RC_ASSERT_MATCH(rc_call(c, "{seq:23, action:'get_value', "
	    "node:'s1', tick:3}"), "{seq:23, value:'baz', "
	    "path:['foo','bar'], tock:_}");
	/* the next change continues the numbering */
	m = rc_call(c, "{seq:24, action:'set_value', path:['foo'], "
	    "value:'hello3'}");
	RC_ASSERT_MATCH(m, "{seq:24, changed:true, prev:'hello2', "
	    "chain:{node:'s1', tick:%lld, prev:nil}, tock:_}",
	    (long long)last_tick + 1);
	rc_close(c);
}

Test(persist, load_under_another_name_keeps_foreign_chains)
{
	static char before[65536], after[65536];
	char filedir[400], file[500];
	struct rc_conn *c;
	struct rc_msg *m;

	snprintf(filedir, sizeof(filedir), "%s/files", ag.dir);
	cr_assert(mkdir(filedir, 0700) == 0);
	RC_START(&ag, "--standalone", "--node", "s1", "--file-dir", filedir);
	c = rc_open(ag.socket);
	cr_assert(c != NULL);
	rc_call(c, "{seq:1, action:'set_value', path:['x'], value:1}");
	rc_call(c, "{seq:2, action:'set_value', path:['x'], value:2}");
	tree_text(c, 3, before, sizeof(before));
	RC_ASSERT_MATCH(rc_call(c, "{seq:4, action:'save', path:'s.dkv'}"),
	    "{seq:4, result:true, tock:_}");
	rc_close(c);
	snprintf(file, sizeof(file), "%s/s.dkv", filedir);

	harness_init(&b);
	RC_START(&b, "--standalone", "--node", "s2", "--load", file);
	c = rc_open(b.socket);
	cr_assert(c != NULL);
	tree_text(c, 3, after, sizeof(after));
	cr_assert_str_eq(after, before);
	/* s2 changes x on top of s1's chain */
	m = rc_call(c, "{seq:5, action:'set_value', path:['x'], value:3, "
	    "chain:{node:'s1', tick:%lld}, nchain:2}",
	    (long long)rc_int(&rc_call(c, "{seq:4, action:'get_value', "
	    "path:['x'], nchain:1}")->obj, "chain.tick"));
	RC_ASSERT_MATCH(m, "{seq:5, changed:true, chain:{node:'s2', tick:_, "
	    "prev:{node:'s1', tick:_, prev:nil}}, tock:_}");
	m = rc_call(c, "{seq:6, action:'get_state', nodes:true}");
	RC_ASSERT_MATCH(m, "{seq:6, nodes:{s1:_, s2:_}, tock:_}");
	rc_close(c);
}

/* `log` with fetch (§2.5.10): snapshot + every later change; loadable */
Test(persist, log_then_load)
{
	static char before[65536], after[65536];
	char filedir[400], file[500];
	struct rc_conn *c;
	struct rc_msg *m;
	int64_t last_tick;
	int i;

	snprintf(filedir, sizeof(filedir), "%s/files", ag.dir);
	cr_assert(mkdir(filedir, 0700) == 0);
	RC_START(&ag, "--standalone", "--node", "l1", "--file-dir", filedir);
	c = rc_open(ag.socket);
	cr_assert(c != NULL);
	rc_call(c, "{seq:1, action:'set_value', path:['before'], value:1}");
	RC_ASSERT_MATCH(rc_call(c, "{seq:2, action:'log', path:'l.dkv', "
	    "fetch:true}"), "{seq:2, result:true, tock:_}");
	for (i = 0; i < 10; i++)
		rc_call(c, "{seq:%d, action:'set_value', path:['after', %d], "
		    "value:%d}", 3 + i, i % 4, i);
	m = rc_call(c, "{seq:20, action:'delete_value', path:['before']}");
	last_tick = rc_int(&m->obj, "chain.tick");
	tree_text(c, 21, before, sizeof(before));
	rc_close(c);
	/* the log is complete once the change was acknowledged */
	harness_kill9(&ag);
	snprintf(file, sizeof(file), "%s/l.dkv", filedir);

	harness_init(&b);
	RC_START(&b, "--standalone", "--node", "l1", "--load", file);
	c = rc_open(b.socket);
	cr_assert(c != NULL);
	RC_ASSERT_MATCH(c->greeting, "{seq:0, shm:_, node:'l1', version:_, "
	    "tick:%lld, tock:_}", (long long)last_tick);
	tree_text(c, 21, after, sizeof(after));
	cr_assert_str_eq(after, before, "tree loaded from the log differs");
	RC_ASSERT_MATCH(rc_call(c, "{seq:22, action:'get_value', "
	    "path:['before'], nchain:1}"), "{seq:22, value:nil, tock:_, "
	    "chain:{node:'l1', tick:%lld, prev:nil}}", (long long)last_tick);
	rc_close(c);
}
