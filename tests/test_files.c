/*
 * test_files: the `save` and `log` files, read back record by record
 * against docs/operations.md, "File format":
 *
 *	magic    8 bytes  "DKVC" 0x00 0x01 "\r\n"
 *	record*  u32 length (LE) | u32 XXH32(payload, seed 0) (LE) | payload
 *
 * each payload exactly one msgpack map: a state record first, then
 * snapshot entries {path, depth, value, tock, [chain]} (every entry, in
 * pre-order, paths shortened against the previous record) and/or change
 * records {node, tick, prev, path, value, tock} (full path, nil = delete).
 * The values, tocks and chain heads are the ones the agent acknowledged.
 *
 * The agent always gets an explicit --file-dir (a directory of its own).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <criterion/criterion.h>
#include <xxhash.h>

#include "harness.h"
#include "proto.h"
#include "rawclient.h"

static struct harness_agent ag;
static char filedir[400];

static void
setup(void)
{
	harness_init(&ag);
	snprintf(filedir, sizeof(filedir), "%s/files", ag.dir);
	cr_assert_eq(mkdir(filedir, 0750), 0);
	RC_START(&ag, "--standalone", "--node", "f1", "--file-dir", filedir);
}

static void
teardown(void)
{
	harness_cleanup(&ag);
}

TestSuite(files, .init = setup, .fini = teardown, .timeout = 60);

/* The records of a file, each checked against the framing. */
struct records {
	uint8_t *buf;
	size_t n;
	msgpack_zone zone;
	msgpack_object rec[64];
};

static uint32_t
le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[3] << 24;
}

static void
read_records(const char *name, struct records *r)
{
	char path[512];
	FILE *f;
	long len;
	size_t off = 8;

	snprintf(path, sizeof(path), "%s/%s", filedir, name);
	f = fopen(path, "rb");
	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	fseek(f, 0, SEEK_SET);
	r->buf = malloc((size_t)len + 1);
	cr_assert_eq(fread(r->buf, 1, (size_t)len, f), (size_t)len);
	fclose(f);
	r->n = 0;
	msgpack_zone_init(&r->zone, 4096);
	cr_assert_geq(len, 8);
	cr_assert(memcmp(r->buf, "DKVC\x00\x01\r\n", 8) == 0, "%s: bad magic",
	    name);
	while (off < (size_t)len) {
		uint32_t plen, sum;
		size_t used = 0;

		cr_assert_leq(off + 8, (size_t)len, "%s: torn header at %zu",
		    name, off);
		plen = le32(r->buf + off);
		sum = le32(r->buf + off + 4);
		cr_assert_leq(off + 8 + plen, (size_t)len, "%s: record at %zu "
		    "runs past the end", name, off);
		cr_assert_eq(XXH32(r->buf + off + 8, plen, 0), sum,
		    "%s: record at %zu: checksum", name, off);
		cr_assert_lt(r->n, sizeof(r->rec) / sizeof(r->rec[0]));
		cr_assert_eq(msgpack_unpack((const char *)r->buf + off + 8, plen,
		    &used, &r->zone, &r->rec[r->n]), MSGPACK_UNPACK_SUCCESS,
		    "%s: record at %zu is no msgpack object", name, off);
		cr_assert_eq(used, plen, "%s: record at %zu holds more than "
		    "one object", name, off);
		cr_assert_eq(r->rec[r->n].type, MSGPACK_OBJECT_MAP,
		    "%s: record %zu is no map", name, r->n);
		r->n++;
		off += 8 + plen;
	}
}

static void
free_records(struct records *r)
{
	msgpack_zone_destroy(&r->zone);
	free(r->buf);
}

#define REC_MATCH(o, ...) do {						\
	char err_[4096];						\
	cr_assert(rc_match((o), err_, sizeof(err_), __VA_ARGS__),	\
	    "%s", err_);						\
} while (0)

/* One acknowledged change: reply tick and tock. */
struct ack {
	int64_t tick, tock;
};

static struct ack
change(struct rc_conn *c, int seq, const char *req)
{
	struct rc_msg *m = rc_call(c, "{seq:%d, %s}", seq, req);
	struct ack a;

	RC_ASSERT_MATCH(m, "{seq:%d, changed:_, ...}", seq);
	a.tick = rc_int(&m->obj, "chain.tick");
	a.tock = rc_int(&m->obj, "tock");
	rc_msg_free(m);
	return a;
}

/*
 * The tree every test starts from, and what a snapshot of it holds, in
 * pre-order: [] (no value), a=1, a/b='x', a/b/c=2, d (deleted), e (an
 * intermediate entry: no value, no chain), e/f='y'.
 */
enum { A, AB, ABC, D_SET, D_DEL, EF, NACK };

static void
make_tree(struct rc_conn *c, struct ack *k)
{
	k[A] = change(c, 1, "action:'set_value', path:['a'], value:1");
	k[AB] = change(c, 2, "action:'set_value', path:['a', 'b'], value:'x'");
	k[ABC] = change(c, 3, "action:'set_value', path:['a', 'b', 'c'], "
	    "value:2");
	k[D_SET] = change(c, 4, "action:'set_value', path:['d'], value:3");
	k[D_DEL] = change(c, 5, "action:'delete_value', path:['d']");
	k[EF] = change(c, 6, "action:'set_value', path:['e', 'f'], "
	    "value:'y'");
}

/* Check records[first..] as the snapshot of make_tree's tree. */
static size_t
check_snapshot(struct records *r, size_t first, const struct ack *k)
{
	struct rc_paths L;
	static const char *paths[] = { "[]", "['a']", "['a', 'b']",
	    "['a', 'b', 'c']", "['d']", "['e']", "['e', 'f']" };
	size_t i = first;

	memset(&L, 0, sizeof(L));
	cr_assert_geq(r->n, first + 7, "%zu records", r->n);
	for (size_t j = 0; j < 7; j++)
		cr_assert_str_eq(rc_lengthen(&L, &r->rec[first + j]), paths[j],
		    "snapshot record %zu: not in pre-order", j);
	/* the root: no value, no chain */
	REC_MATCH(&r->rec[i++], "{path:[], depth:0, value:nil, tock:_}");
	REC_MATCH(&r->rec[i++], "{path:['a'], depth:0, value:1, tock:%lld, "
	    "chain:{node:'f1', tick:%lld, prev:nil}}", (long long)k[A].tock,
	    (long long)k[A].tick);
	/* shortened: the common prefix is left out (depth) */
	REC_MATCH(&r->rec[i++], "{path:['b'], depth:1, value:'x', tock:%lld, "
	    "chain:{node:'f1', tick:%lld, prev:nil}}", (long long)k[AB].tock,
	    (long long)k[AB].tick);
	REC_MATCH(&r->rec[i++], "{path:['c'], depth:2, value:2, tock:%lld, "
	    "chain:{node:'f1', tick:%lld, prev:nil}}", (long long)k[ABC].tock,
	    (long long)k[ABC].tick);
	/* a tombstone keeps its chain */
	REC_MATCH(&r->rec[i++], "{path:['d'], depth:0, value:nil, tock:%lld, "
	    "chain:{node:'f1', tick:%lld, prev:nil}}", (long long)k[D_DEL].tock,
	    (long long)k[D_DEL].tick);
	REC_MATCH(&r->rec[i++], "{path:['e'], depth:0, value:nil, tock:_}");
	REC_MATCH(&r->rec[i++], "{path:['f'], depth:1, value:'y', tock:%lld, "
	    "chain:{node:'f1', tick:%lld, prev:nil}}", (long long)k[EF].tock,
	    (long long)k[EF].tick);
	return i;
}

Test(files, save_holds_the_state_then_every_entry_in_preorder)
{
	struct ack k[NACK];
	struct records r;
	struct rc_conn *c = rc_open(ag.socket);
	size_t end;

	cr_assert_not_null(c);
	make_tree(c, k);
	RC_ASSERT_MATCH(rc_call(c, "{seq:10, action:'save', path:'s.dkv'}"),
	    "{seq:10, result:true, tock:_}");
	read_records("s.dkv", &r);
	REC_MATCH(&r.rec[0], "{nodes:{f1:%lld}, known:{f1:_}, ...}",
	    (long long)k[EF].tick);
	end = check_snapshot(&r, 1, k);
	cr_assert_eq(end, r.n, "%zu records after the last entry", r.n - end);
	free_records(&r);
	rc_close(c);
}

Test(files, log_holds_the_state_then_each_change_as_acknowledged)
{
	struct ack k[NACK], x[3];
	struct records r;
	struct rc_conn *c = rc_open(ag.socket);

	cr_assert_not_null(c);
	make_tree(c, k);
	RC_ASSERT_MATCH(rc_call(c, "{seq:10, action:'log', path:'l.dkv'}"),
	    "{seq:10, result:true, tock:_}");
	x[0] = change(c, 11, "action:'set_value', path:['a', 'b'], "
	    "value:'z'");
	x[1] = change(c, 12, "action:'delete_value', path:['e', 'f']");
	x[2] = change(c, 13, "action:'set_value', path:['g', 1, b'\\x00'], "
	    "value:[1, 'two']");
	/* acknowledged under --fsync always: the records are in the file */
	read_records("l.dkv", &r);
	cr_assert_eq(r.n, 4, "%zu records: want the state and 3 changes",
	    r.n);
	REC_MATCH(&r.rec[0], "{nodes:{f1:%lld}, known:{f1:_}, ...}",
	    (long long)k[EF].tick);
	/* full paths, flat chain fields, nil for a delete */
	REC_MATCH(&r.rec[1], "{node:'f1', tick:%lld, prev:nil, "
	    "path:['a', 'b'], value:'z', tock:%lld}", (long long)x[0].tick,
	    (long long)x[0].tock);
	REC_MATCH(&r.rec[2], "{node:'f1', tick:%lld, prev:nil, "
	    "path:['e', 'f'], value:nil, tock:%lld}", (long long)x[1].tick,
	    (long long)x[1].tock);
	REC_MATCH(&r.rec[3], "{node:'f1', tick:%lld, prev:nil, "
	    "path:['g', 1, b'\\x00'], value:[1, 'two'], tock:%lld}",
	    (long long)x[2].tick, (long long)x[2].tock);
	free_records(&r);
	rc_close(c);
}

Test(files, log_fetch_holds_a_snapshot_then_the_changes)
{
	struct ack k[NACK], x;
	struct records r;
	struct rc_conn *c = rc_open(ag.socket);
	size_t end;

	cr_assert_not_null(c);
	make_tree(c, k);
	RC_ASSERT_MATCH(rc_call(c, "{seq:10, action:'log', path:'lf.dkv', "
	    "fetch:true}"), "{seq:10, result:true, tock:_}");
	x = change(c, 11, "action:'set_value', path:['a'], value:5");
	read_records("lf.dkv", &r);
	/* the snapshot (its own state record first), the log's state
	 * record, then the change */
	REC_MATCH(&r.rec[0], "{nodes:{f1:%lld}, known:{f1:_}, ...}",
	    (long long)k[EF].tick);
	end = check_snapshot(&r, 1, k);
	cr_assert_eq(r.n, end + 2, "%zu records after the snapshot",
	    r.n - end);
	REC_MATCH(&r.rec[end], "{nodes:{f1:%lld}, known:{f1:_}, ...}",
	    (long long)k[EF].tick);
	REC_MATCH(&r.rec[end + 1], "{node:'f1', tick:%lld, prev:nil, "
	    "path:['a'], value:5, tock:%lld}", (long long)x.tick,
	    (long long)x.tock);
	free_records(&r);
	rc_close(c);
}
