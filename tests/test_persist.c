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

#include "agent.h"
#include "persist.h"

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

		cr_assert_not_null(e->value);
		cr_assert_eq(e->value[0], i == 7 ? 100 : i);
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

Test(persist, torn_tail_is_cut_and_earlier_records_kept)
{
	struct agent b, c;
	char state[96];
	struct stat st1, st2;
	int fd;

	snprintf(state, sizeof(state), "%s/state", dir);
	in_dying_child(write_ten, state);
	cr_assert_eq(stat(path_in("changes.dkv"), &st1), 0);
	/* a half-written record: a header promising more than follows */
	fd = open(path_in("changes.dkv"), O_WRONLY | O_APPEND);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, "\x40\0\0\0\x12\x34\x56\x78\x81\xa1", 10), 10);
	close(fd);

	start(&b, state);
	cr_assert_eq(b.self->tick, 10);
	for (int i = 0; i < 10; i++)
		cr_assert_eq(key(&b, i)->value[0], i);
	cr_assert_eq(stat(path_in("changes.dkv"), &st2), 0);
	cr_assert_eq(st2.st_size, st1.st_size, "tail cut");
	finish(&b);

	/* records written after the cut are read back too */
	start(&c, state);
	set_int(&c, 3, 33);
	finish(&c);
	start(&c, state);
	cr_assert_eq(key(&c, 3)->value[0], 33);
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
	struct agent_config cfg;
	struct agent b;
	char state[96];
	struct stat st, st2;
	uint8_t byte;
	int fd;

	snprintf(state, sizeof(state), "%s/state", dir);
	in_dying_child(write_three, state);
	/* flip one byte inside the last record's payload */
	cr_assert_eq(stat(path_in("changes.dkv"), &st), 0);
	fd = open(path_in("changes.dkv"), O_RDWR);
	cr_assert_eq(pread(fd, &byte, 1, st.st_size - 1), 1);
	byte ^= 0x01;
	cr_assert_eq(pwrite(fd, &byte, 1, st.st_size - 1), 1);
	close(fd);
	memset(&cfg, 0, sizeof(cfg));
	cfg.node = "n1";
	cfg.change_length = CHAIN_DEFAULT_LENGTH;
	cfg.fsync = FSYNC_ALWAYS;
	cr_assert_eq(agent_init(&b, ev_loop_new(0), &cfg), 0);
	cr_assert_eq(persist_open_state_dir(&b, state), -EBADMSG);
	cr_assert_eq(stat(path_in("changes.dkv"), &st2), 0);
	cr_assert_eq(st2.st_size, st.st_size, "the damaged log was cut");
	ev_loop_destroy(b.loop);
	agent_fini(&b);
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
	cr_assert_eq(key(&c, 5)->value[0], 55);
	cr_assert_eq(key(&c, 5)->tock, key(&b, 5)->tock);
	cr_assert_eq(key(&c, 19)->value[0], 19);
	cr_assert_eq(key(&c, 19)->chain->l[0].tick, 20);
	ev_loop_destroy(c.loop);
	agent_fini(&c);
	finish(&b);
}

Test(persist, second_agent_on_same_state_dir_is_refused)
{
	struct agent a, b;
	struct agent_config cfg;
	char state[96];

	snprintf(state, sizeof(state), "%s/state", dir);
	start(&a, state);
	memset(&cfg, 0, sizeof(cfg));
	cfg.node = "n1";
	cfg.change_length = CHAIN_DEFAULT_LENGTH;
	cr_assert_eq(agent_init(&b, ev_loop_new(0), &cfg), 0);
	cr_assert_neq(persist_open_state_dir(&b, state), 0);
	ev_loop_destroy(b.loop);
	agent_fini(&b);
	finish(&a);
}

Test(persist, damage_in_the_middle_refuses_instead_of_dropping)
{
	struct agent b;
	struct agent_config cfg;
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
	memset(&cfg, 0, sizeof(cfg));
	cfg.node = "n1";
	cfg.change_length = CHAIN_DEFAULT_LENGTH;
	cr_assert_eq(agent_init(&b, ev_loop_new(0), &cfg), 0);
	cr_assert_eq(persist_open_state_dir(&b, state), -EBADMSG);
	ev_loop_destroy(b.loop);
	agent_fini(&b);
}
