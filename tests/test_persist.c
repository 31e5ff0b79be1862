/* Unit tests of agent/persist.c: record framing, torn tails, snapshots,
 * tick continuity after a restore. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <ev.h>
#include <xxhash.h>

#include "agent.h"
#include "logfile.h"
#include "persist.h"
#include "reader.h"
#include "writer.h"

static char dir[64];

static void
setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/distkv-persist.XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void
teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
}

static void
start(struct agent *a, const char *state)
{
	struct agent_config cfg;

	memset(&cfg, 0, sizeof(cfg));
	cfg.node = "n1";
	cfg.change_length = CHAIN_DEFAULT_LENGTH;
	cfg.fsync = FSYNC_ALWAYS;
	cfg.snapshot_every = 0;
	cr_assert_eq(agent_init(a, ev_loop_new(0), &cfg), 0);
	if (state != NULL)
		cr_assert_eq(persist_open_state_dir(a, state), 0);
	if (!a->self->has_tick)
		node_raise_tick(a->self, 0);
}

/* A clean stop: final snapshot, then everything freed. */
static void
finish(struct agent *a)
{
	persist_close(a);
	ev_loop_destroy(a->loop);
	agent_fini(a);
}

/* What opening the state dir gives a fresh agent (that then goes). */
static int
open_state_rc(const char *state)
{
	struct agent_config cfg;
	struct agent b;
	int rc;

	memset(&cfg, 0, sizeof(cfg));
	cfg.node = "n1";
	cfg.change_length = CHAIN_DEFAULT_LENGTH;
	cr_assert_eq(agent_init(&b, ev_loop_new(0), &cfg), 0);
	rc = persist_open_state_dir(&b, state);
	if (rc == 0)
		persist_close(&b);
	ev_loop_destroy(b.loop);
	agent_fini(&b);
	return rc;
}

static struct entry *
key(struct agent *a, int i)
{
	char k[16];
	int n = snprintf(k + 1, sizeof(k) - 1, "key%d", i);

	k[0] = (char)(0xa0 | n);
	return tree_child(&a->tree, a->tree.root, (uint8_t *)k,
	    (size_t)n + 1, true);
}

static void
set_int(struct agent *a, int i, uint8_t v)
{
	cr_assert_eq(agent_change_local(a, key(a, i), &v, 1), 0);
}

/*
 * Run fn in a child process that then dies without any cleanup: what a
 * kill -9 right after the replies leaves behind (locks released by the
 * kernel, no final snapshot).
 */
static void
in_dying_child(void (*fn)(const char *state), const char *state)
{
	int status;
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		fn(state);
		_exit(0);
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* Make every change durable as a reply would, then die. */
static void
crash(struct agent *a)
{
	persist_sync(a);
	_exit(0);
}

static char *
path_in(const char *name)
{
	static char p[128];

	snprintf(p, sizeof(p), "%s/state/%s", dir, name);
	return p;
}

TestSuite(persist, .init = setup, .fini = teardown);

static void
write_fifty(const char *state)
{
	struct agent a;

	start(&a, state);
	for (int i = 0; i < 50; i++)
		set_int(&a, i, (uint8_t)i);
	set_int(&a, 7, 100);
	crash(&a);
}

Test(persist, log_replay_restores_values_and_tick)
{
	struct agent b;
	char state[96];

	snprintf(state, sizeof(state), "%s/state", dir);
	in_dying_child(write_fifty, state);

	start(&b, state);
	cr_assert_eq(b.self->tick, 51);
	for (int i = 0; i < 50; i++) {
		struct entry *e = key(&b, i);

		cr_assert_not_null(entry_value(e));
		cr_assert_eq(entry_value(e)[0], i == 7 ? 100 : i);
	}
	cr_assert_eq(key(&b, 7)->chain->l[0].tick, 51);
	set_int(&b, 1, 1);
	cr_assert_eq(b.self->tick, 52);	/* never reused */
	finish(&b);
}

static void
write_ten(const char *state)
{
	struct agent a;

	start(&a, state);
	for (int i = 0; i < 10; i++)
		set_int(&a, i, (uint8_t)i);
	crash(&a);
}

/*
 * A log without preallocated space (an older agent's, or a file system
 * without fallocate) ends where its records end: a crash there leaves a
 * record cut short.
 */
Test(persist, torn_tail_is_cut_and_earlier_records_kept)
{
	struct agent b, c;
	char state[96];
	struct stat st;
	off_t end;
	int fd;

	snprintf(state, sizeof(state), "%s/state", dir);
	in_dying_child(write_ten, state);
	end = logfile_records_end(path_in("changes.dkv"));
	cr_assert_gt(end, PERSIST_MAGIC_LEN);
	/* a half-written record: a header promising more than follows */
	fd = open(path_in("changes.dkv"), O_WRONLY);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, end), 0);
	cr_assert_eq(pwrite(fd, "\x40\0\0\0\x12\x34\x56\x78\x81\xa1", 10,
	    end), 10);
	close(fd);

	start(&b, state);
	cr_assert_eq(b.self->tick, 10);
	for (int i = 0; i < 10; i++)
		cr_assert_eq(entry_value(key(&b, i))[0], i);
	cr_assert_eq(stat(path_in("changes.dkv"), &st), 0);
	cr_assert_eq(st.st_size, end, "tail cut");
	finish(&b);

	/* records written after the cut are read back too */
	start(&c, state);
	set_int(&c, 3, 33);
	finish(&c);
	start(&c, state);
	cr_assert_eq(entry_value(key(&c, 3))[0], 33);
	cr_assert_eq(c.self->tick, 11);
	finish(&c);
}

static void
write_three(const char *state)
{
	struct agent a;

	start(&a, state);
	for (int i = 0; i < 3; i++)
		set_int(&a, i, (uint8_t)(i + 1));
	crash(&a);
}

/*
 * A whole record whose checksum fails was written and synced in full, then
 * damaged: the start stops rather than drop an acknowledged change (only
 * a record cut short is a torn tail).  The file is left as it was.
 */
Test(persist, checksum_mismatch_of_a_whole_record_refuses)
{
	char state[96];
	struct stat st, st2;
	uint8_t byte;
	off_t end;
	int fd;

	snprintf(state, sizeof(state), "%s/state", dir);
	in_dying_child(write_three, state);
	/* flip one byte inside the last record's payload */
	cr_assert_eq(stat(path_in("changes.dkv"), &st), 0);
	end = logfile_records_end(path_in("changes.dkv"));
	fd = open(path_in("changes.dkv"), O_RDWR);
	cr_assert_eq(pread(fd, &byte, 1, end - 1), 1);
	byte ^= 0x01;
	cr_assert_eq(pwrite(fd, &byte, 1, end - 1), 1);
	close(fd);
	cr_assert_eq(open_state_rc(state), -EBADMSG);
	cr_assert_eq(stat(path_in("changes.dkv"), &st2), 0);
	cr_assert_eq(st2.st_size, st.st_size, "the damaged log was cut");
}

/* The whole file at path: malloc'd bytes, *len. */
static uint8_t *
slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *b;
	long n;

	cr_assert_not_null(f, "%s", path);
	cr_assert_eq(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	cr_assert_geq(n, 0);
	rewind(f);
	b = malloc((size_t)n + 1);
	cr_assert_not_null(b);
	cr_assert_eq(fread(b, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return b;
}

static bool
zeros(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != 0)
			return false;
	return true;
}

/*
 * The log is allocated ahead of its records (so a sync need not commit a
 * new file size); the zeros after them are no damage: a restart reads
 * every record, writes after them, and the next restart reads those too.
 */
static void
set_33(const char *state)
{
	struct agent a;

	start(&a, state);
	set_int(&a, 3, 33);
	crash(&a);
}

Test(persist, preallocated_log_restarts_after_its_records)
{
	struct agent b, c;
	char state[96];
	struct stat st;
	uint8_t *log;
	size_t len;
	off_t end;

	snprintf(state, sizeof(state), "%s/state", dir);
	in_dying_child(write_ten, state);
	log = slurp(path_in("changes.dkv"), &len);
	end = logfile_records_end(path_in("changes.dkv"));
	cr_assert_gt(end, PERSIST_MAGIC_LEN);
	cr_assert_gt((off_t)len, end + 4096, "%zu bytes for records up to "
	    "%lld: not preallocated", len, (long long)end);
	cr_assert(zeros(log + end, len - (size_t)end));
	free(log);

	start(&b, state);
	cr_assert_eq(b.self->tick, 10);
	cr_assert_eq(logfile_records_end(path_in("changes.dkv")), end,
	    "the start cut or wrote records");
	b.ready = false;	/* no data of its own: no snapshot at the stop */
	persist_close(&b);
	ev_loop_destroy(b.loop);
	agent_fini(&b);
	cr_assert_eq(stat(path_in("changes.dkv"), &st), 0);
	cr_assert_eq(st.st_size, end, "the zeros were left");

	in_dying_child(set_33, state);
	cr_assert_gt(logfile_records_end(path_in("changes.dkv")), end);
	start(&c, state);
	cr_assert_eq(c.self->tick, 11);
	cr_assert_eq(entry_value(key(&c, 3))[0], 33);
	cr_assert_eq(entry_value(key(&c, 9))[0], 9);
	c.ready = true;		/* data of its own: a snapshot at the stop */
	finish(&c);
	/* a clean stop snapshots and empties the log, zeros and all */
	log = slurp(path_in("changes.dkv"), &len);
	cr_assert_eq(len, PERSIST_MAGIC_LEN);
	free(log);
}

/*
 * A crash while the last record was written into preallocated space
 * keeps some of its sectors and not others (zeros).  Nobody was told that
 * record is durable: the start cuts the log there and keeps every record
 * before it, even when a sector after the lost one was kept.
 */
static void
check_cut_write(bool lose_first_sector)
{
	struct agent b;
	char state[96];
	uint8_t *log;
	size_t len, off = PERSIST_MAGIC_LEN, rec = 0;
	struct stat st;
	int fd;

	snprintf(state, sizeof(state), "%s/state", dir);
	in_dying_child(write_fifty, state);
	log = slurp(path_in("changes.dkv"), &len);
	/* the first record that crosses a 512-byte boundary */
	for (;;) {
		uint32_t rlen = (uint32_t)log[off] | (uint32_t)log[off + 1] << 8 |
		    (uint32_t)log[off + 2] << 16 | (uint32_t)log[off + 3] << 24;

		cr_assert_neq(rlen, 0, "no record crosses a sector boundary");
		if ((off + 8 + rlen - 1) / 512 != off / 512 &&
		    (off + 8 + rlen) % 512 != 0)
			break;
		off += 8 + rlen;
		rec++;
	}
	rec = (off / 512 + 1) * 512;	/* the boundary inside it */
	fd = open(path_in("changes.dkv"), O_WRONLY);
	cr_assert_geq(fd, 0);
	if (lose_first_sector) {
		/* its first sector as it was before: the records before it,
		 * then zeros; its later sectors, and those after, kept */
		memset(log + off, 0, rec - off);
		cr_assert_eq(pwrite(fd, log + off, rec - off, (off_t)off),
		    (ssize_t)(rec - off));
	} else {
		/* the sectors from the boundary on never written */
		memset(log + rec, 0, len - rec);
		cr_assert_eq(pwrite(fd, log + rec, len - rec, (off_t)rec),
		    (ssize_t)(len - rec));
	}
	close(fd);
	free(log);

	start(&b, state);
	cr_assert_lt(b.self->tick, 51);
	cr_assert_gt(b.self->tick, 0);
	for (uint64_t i = 0; i < 50; i++)
		if (i < b.self->tick)
			cr_assert(entry_has_value(key(&b, (int)i)) &&
			    entry_value(key(&b, (int)i))[0] == i, "key %d",
			    (int)i);
		else
			cr_assert_null(entry_value(key(&b, (int)i)), "key %d",
			    (int)i);
	cr_assert_eq(stat(path_in("changes.dkv"), &st), 0);
	cr_assert_eq(st.st_size, (off_t)off, "cut at %zu, not there", off);
	finish(&b);
}

Test(persist, write_cut_by_a_crash_loses_only_itself)
{
	check_cut_write(false);
}

Test(persist, write_cut_by_a_crash_before_kept_sectors)
{
	check_cut_write(true);
}

/* A snapshot is written whole and renamed: zeros after its records are
 * damage there, not preallocated space. */
Test(persist, zeros_after_a_snapshot_refuse_the_start)
{
	struct agent a;
	char state[96];
	static const uint8_t zero[64];
	int fd;

	snprintf(state, sizeof(state), "%s/state", dir);
	start(&a, state);
	set_int(&a, 1, 1);
	a.ready = true;		/* data of its own: a snapshot at the stop */
	finish(&a);
	fd = open(path_in("snapshot.dkv"), O_WRONLY | O_APPEND);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, zero, sizeof(zero)), (ssize_t)sizeof(zero));
	close(fd);
	cr_assert_neq(open_state_rc(state), 0);
}

Test(persist, snapshot_then_log_then_load_elsewhere)
{
	struct agent a, b, c;
	char state[96], file[96];

	snprintf(state, sizeof(state), "%s/state", dir);
	snprintf(file, sizeof(file), "%s/backup.dkv", dir);
	start(&a, state);
	for (int i = 0; i < 20; i++)
		set_int(&a, i, (uint8_t)i);
	finish(&a);		/* final snapshot, log emptied */

	start(&b, state);
	cr_assert_eq(b.self->tick, 20);
	set_int(&b, 5, 55);		/* lands in the log after the snapshot */
	cr_assert_eq(persist_save(&b, file), 0);

	start(&c, NULL);
	c.self->has_tick = false;
	cr_assert_eq(persist_load_file(&c, file), 0);
	cr_assert_eq(c.self->tick, 21);
	cr_assert_eq(entry_value(key(&c, 5))[0], 55);
	cr_assert_eq(key(&c, 5)->tock, key(&b, 5)->tock);
	cr_assert_eq(entry_value(key(&c, 19))[0], 19);
	cr_assert_eq(key(&c, 19)->chain->l[0].tick, 20);
	ev_loop_destroy(c.loop);
	agent_fini(&c);
	finish(&b);
}

Test(persist, second_agent_on_same_state_dir_is_refused)
{
	struct agent a;
	char state[96];

	snprintf(state, sizeof(state), "%s/state", dir);
	start(&a, state);
	cr_assert_neq(open_state_rc(state), 0);
	finish(&a);
}

Test(persist, damage_in_the_middle_refuses_instead_of_dropping)
{
	char state[96];
	uint8_t byte;
	int fd;

	snprintf(state, sizeof(state), "%s/state", dir);
	in_dying_child(write_three, state);
	/* one byte inside the first record (after magic and frame header) */
	fd = open(path_in("changes.dkv"), O_RDWR);
	cr_assert_eq(pread(fd, &byte, 1, PERSIST_MAGIC_LEN + 8 + 3), 1);
	byte ^= 0x01;
	cr_assert_eq(pwrite(fd, &byte, 1, PERSIST_MAGIC_LEN + 8 + 3), 1);
	close(fd);
	cr_assert_eq(open_state_rc(state), -EBADMSG);
}


/* A tree with nested paths, a tombstone and a second node's chains. */
static void
fill_mixed(struct agent *a)
{
	for (int i = 0; i < 30; i++)
		set_int(a, i, (uint8_t)i);
	for (int i = 0; i < 30; i += 3) {
		struct entry *c = tree_child(&a->tree, key(a, i),
		    (const uint8_t *)"\xa3sub", 4, true);
		uint8_t v = (uint8_t)(100 + i);

		cr_assert_eq(agent_change_local(a, c, &v, 1), 0);
	}
	cr_assert_eq(agent_change_local(a, key(a, 4), NULL, 0), 0);
	{
		/* a change by another node, on top of ours */
		struct update u;
		uint8_t v = 77;

		memset(&u, 0, sizeof(u));
		u.entry = key(a, 9);
		u.value = &v;
		u.value_len = 1;
		u.chain.l[0].node = nodes_get(&a->nodes, "n2", 2, true);
		u.chain.l[0].tick = 5;
		u.chain.l[1] = key(a, 9)->chain->l[0];
		u.chain.n = 2;
		u.tock = a->tock + 1;
		cr_assert_eq(agent_commit(a, &u, ORIGIN_REMOTE),
		    APPLY_ACCEPTED);
	}
}

/*
 * A snapshot loaded (one bulk load: index sized from the file, region
 * filled at the end) and saved again is the same file, byte for byte:
 * nothing of the tree, the chains, the tocks or the node table is lost
 * or reordered by the load.
 */
Test(persist, load_then_save_gives_the_same_file)
{
	struct agent a, b;
	char f1[96], f2[96];
	uint8_t *b1, *b2;
	size_t l1, l2;

	snprintf(f1, sizeof(f1), "%s/one.dkv", dir);
	snprintf(f2, sizeof(f2), "%s/two.dkv", dir);
	start(&a, NULL);
	fill_mixed(&a);
	cr_assert_eq(persist_save(&a, f1), 0);

	start(&b, NULL);
	b.self->has_tick = false;
	cr_assert_eq(persist_load_file(&b, f1), 0);
	cr_assert_eq(b.tree.nentries, a.tree.nentries);
	cr_assert_eq(b.tombstones, a.tombstones);
	cr_assert_eq(persist_save(&b, f2), 0);
	b1 = slurp(f1, &l1);
	b2 = slurp(f2, &l2);
	cr_assert_eq(l1, l2, "%zu vs %zu bytes", l1, l2);
	cr_assert(memcmp(b1, b2, l1) == 0, "the files differ");
	free(b1);
	free(b2);
	ev_loop_destroy(b.loop);
	agent_fini(&b);
	ev_loop_destroy(a.loop);
	agent_fini(&a);
}

/*
 * An entry never updated carries the tock its parent had when it was made
 * (spec §1.2).  A snapshot records it; a load must restore it, not give
 * the entry its parent's later tock: found by the persist fuzzer as a
 * snapshot that changed when saved again after a load.
 */
Test(persist, never_updated_entry_keeps_its_tock_through_a_snapshot)
{
	struct agent a, b;
	struct entry *parent, *leaf;
	char f1[96], f2[96];
	uint8_t *s1, *s2, v = 7;
	size_t l1, l2;
	uint64_t made;

	snprintf(f1, sizeof(f1), "%s/one.dkv", dir);
	snprintf(f2, sizeof(f2), "%s/two.dkv", dir);
	start(&a, NULL);
	parent = key(&a, 1);		/* made now, with the root's tock */
	made = parent->tock;
	leaf = tree_child(&a.tree, parent, (const uint8_t *)"\xa1x", 2, true);
	cr_assert_not_null(leaf);
	cr_assert_eq(agent_change_local(&a, leaf, &v, 1), 0);
	/* the root's own value: its tock moves past the one parent took */
	cr_assert_eq(agent_change_local(&a, a.tree.root, &v, 1), 0);
	cr_assert_gt(a.tree.root->tock, made);
	cr_assert_eq(parent->tock, made);
	cr_assert_eq(persist_save(&a, f1), 0);

	start(&b, NULL);
	b.self->has_tick = false;
	cr_assert_eq(persist_load_file(&b, f1), 0);
	cr_assert_eq(key(&b, 1)->tock, made);
	cr_assert_eq(persist_save(&b, f2), 0);
	s1 = slurp(f1, &l1);
	s2 = slurp(f2, &l2);
	cr_assert(l1 == l2 && memcmp(s1, s2, l1) == 0,
	    "save, load, save gave another file");
	free(s1);
	free(s2);
	finish(&b);
	finish(&a);
}

/* Frame one record (persist.c's format: le32 length, le32 XXH32). */
static void
frame(FILE *f, const char *data, size_t len)
{
	uint8_t h[8];
	uint32_t sum = XXH32(data, len, 0);

	for (int i = 0; i < 4; i++) {
		h[i] = (uint8_t)(len >> (8 * i));
		h[4 + i] = (uint8_t)(sum >> (8 * i));
	}
	cr_assert_eq(fwrite(h, 1, 8, f), 8);
	cr_assert_eq(fwrite(data, 1, len, f), len);
}

/*
 * A record's checksum covers its bytes, but they must also be exactly one
 * msgpack object: one followed by a stray byte, or cut inside, is damage
 * (the loader decodes each record once, without a separate scan).
 */
Test(persist, record_of_more_or_less_than_one_object_refuses)
{
	static const char *const bodies[] = {
		"\x81\xa5value\x01\x02",	/* a map, then a stray byte */
		"\x82\xa5value\x01",		/* a map missing its 2nd pair */
	};
	struct agent a;
	char file[96];
	FILE *f;

	snprintf(file, sizeof(file), "%s/one.dkv", dir);
	for (size_t i = 0; i < 2; i++) {
		cr_assert_not_null(f = fopen(file, "wb"));
		cr_assert_eq(fwrite(PERSIST_MAGIC, 1, PERSIST_MAGIC_LEN, f),
		    PERSIST_MAGIC_LEN);
		frame(f, bodies[i], i == 0 ? 9 : 8);
		cr_assert_eq(fclose(f), 0);
		start(&a, NULL);
		cr_assert_eq(persist_load_file(&a, file), -EBADMSG, "body %zu",
		    i);
		finish(&a);
	}
}

/*
 * Records of a file in any order (a log's records: full paths, chains
 * flat; children before their parents, entries before the state record):
 * the loaded tree holds the same values, chains and tocks.
 */
Test(persist, records_in_any_order_load_the_same_tree)
{
	struct agent a, b;
	struct tree_walk w;
	struct entry *e, *rec[128];
	msgpack_sbuffer sb;
	msgpack_packer pk;
	uint64_t seed = 0x9e3779b97f4a7c15ULL;
	char file[96];
	size_t n = 0;
	FILE *f;

	snprintf(file, sizeof(file), "%s/shuffled.dkv", dir);
	start(&a, NULL);
	fill_mixed(&a);
	tree_walk_init(&w, a.tree.root, -1);
	while ((e = tree_walk_next(&w)) != NULL)
		if (e->chain->n > 0) {
			cr_assert_lt(n, 128);
			rec[n++] = e;
		}
	/* reversed, then shuffled: deepest first, parents later */
	for (size_t i = 0; i < n / 2; i++) {
		e = rec[i];
		rec[i] = rec[n - 1 - i];
		rec[n - 1 - i] = e;
	}
	for (size_t i = n - 1; i > 0; i--) {
		size_t j;

		seed ^= seed << 13;
		seed ^= seed >> 7;
		seed ^= seed << 17;
		j = (size_t)(seed % (i + 1));
		e = rec[i];
		rec[i] = rec[j];
		rec[j] = e;
	}
	cr_assert_not_null(f = fopen(file, "wb"));
	cr_assert_eq(fwrite(PERSIST_MAGIC, 1, PERSIST_MAGIC_LEN, f),
	    PERSIST_MAGIC_LEN);
	for (size_t i = 0; i <= n; i++) {
		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		if (i == n) {
			/* the node table last */
			msgpack_pack_map(&pk, 1);
			msgpack_pack_str_with_body(&pk, "nodes", 5);
			agent_pack_nodes(&a, &pk);
		} else
			agent_pack_change(&a, &pk, rec[i]);
		frame(f, sb.data, sb.size);
		msgpack_sbuffer_destroy(&sb);
	}
	cr_assert_eq(fclose(f), 0);

	start(&b, NULL);
	b.self->has_tick = false;
	cr_assert_eq(persist_load_file(&b, file), 0);
	cr_assert_eq(b.self->tick, a.self->tick);
	cr_assert_eq(b.tombstones, a.tombstones);
	for (size_t i = 0; i < n; i++) {
		struct entry *x = rec[i], *y;
		msgpack_zone z;
		msgpack_object o;
		const uint8_t *k = tree_entry_key(&a.tree, x);

		msgpack_zone_init(&z, 256);
		cr_assert_eq(msgpack_unpack((const char *)k, x->key_len, NULL,
		    &z, &o), MSGPACK_UNPACK_SUCCESS);
		cr_assert_eq(tree_follow(&b.tree, b.tree.root, &o, false,
		    true, NULL, &y), 0);
		msgpack_zone_destroy(&z);
		cr_assert_not_null(y);
		cr_assert_eq(y->tock, x->tock);
		cr_assert_eq(entry_value_len(y), entry_value_len(x));
		cr_assert_eq(!entry_has_value(y), !entry_has_value(x));
		if (entry_has_value(x))
			cr_assert(memcmp(entry_value(y), entry_value(x),
			    entry_value_len(x)) == 0);
		cr_assert_eq(y->chain->n, x->chain->n);
		for (unsigned l = 0; l < x->chain->n; l++) {
			cr_assert_str_eq(y->chain->l[l].node->name,
			    x->chain->l[l].node->name);
			cr_assert_eq(y->chain->l[l].tick,
			    x->chain->l[l].tick);
			cr_assert_eq(node_entry_get(y->chain->l[l].node,
			    y->chain->l[l].tick), y);
		}
	}
	ev_loop_destroy(b.loop);
	agent_fini(&b);
	ev_loop_destroy(a.loop);
	agent_fini(&a);
}

/*
 * A load into an agent with an empty region publishes nothing record by
 * record and fills the region once at the end (agent_bulk_end): every
 * value is there, read back through a reader, with its head tick, and
 * the region was built once rather than grown by doublings; deleted
 * entries are absent.
 */
Test(persist, bulk_load_fills_the_region_once)
{
	struct agent a, b;
	struct shm_writer_stats st;
	struct shm_reader *r;
	struct tree_walk w;
	struct entry *e;
	char file[96], shm[96];
	uint64_t values = 0;
	uint8_t buf[64];

	snprintf(file, sizeof(file), "%s/bulk.dkv", dir);
	snprintf(shm, sizeof(shm), "%s/region", dir);
	start(&a, NULL);
	/* enough records to outgrow the smallest region a few times */
	for (int i = 0; i < 3000; i++)
		set_int(&a, i, (uint8_t)(i % 128));	/* a positive fixint */
	fill_mixed(&a);
	cr_assert_eq(persist_save(&a, file), 0);

	start(&b, NULL);
	b.self->has_tick = false;
	b.cfg.shm_path = shm;
	b.cfg.shm_mode = 0600;
	cr_assert_eq(agent_shm_open(&b), 0);
	cr_assert_eq(persist_load_file(&b, file), 0);
	shm_writer_stats(b.shm, &st);
	cr_assert_leq(st.replacements, 1, "%llu regions built",
	    (unsigned long long)st.replacements);
	cr_assert_eq(shm_reader_open(shm, &r), 0);
	tree_walk_init(&w, b.tree.root, -1);
	while ((e = tree_walk_next(&w)) != NULL) {
		struct shm_read_meta m;
		size_t len;
		int rc = shm_reader_get(r, tree_entry_key(&b.tree, e),
		    e->key_len, buf, sizeof(buf), &len, &m);

		if (!entry_has_value(e)) {
			cr_assert_neq(rc, 0, "an entry without value is in "
			    "the region");
			continue;
		}
		values++;
		cr_assert_eq(rc, 0);
		cr_assert_eq(len, entry_value_len(e));
		cr_assert(memcmp(buf, entry_value(e), len) == 0);
		cr_assert_eq(m.tick, e->chain->l[0].tick);
	}
	cr_assert_eq(st.live_entries, values);
	cr_assert_gt(values, 3000);
	shm_reader_close(r);
	agent_shm_close(&b);
	ev_loop_destroy(b.loop);
	agent_fini(&b);
	ev_loop_destroy(a.loop);
	agent_fini(&a);
}
