/*
 * The seqlock of docs/shm.md, deterministically: "a reader that races with
 * any writer operation returns a whole old value, a whole new value, or
 * retry".  The torture test (test_shm.c) races for real, but a race it
 * needs may never happen in a run; here the race is forced.
 *
 * This program compiles shm/reader.c and shm/writer.c itself, with
 * SHM_TEST_HOOKS, which adds two hooks (and nothing else):
 *   - shm_reader_test_hook, between a lookup's loads of a slot's
 *     length/state word and its tag/offset word: a whole writer update
 *     run there leaves the reader holding an old length and a new offset,
 *     a torn pair that only the sequence re-check after the copy catches;
 *   - shm_writer_test_hook, inside a slot update between the odd and the
 *     even sequence store (new length written, offset not yet): a lookup
 *     run there must see the odd sequence and retry.
 * The library (libshm.la, libdistkv) is built without them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "reader.h"
#include "writer.h"

static char region[128];
static struct shm_writer *w;
static struct shm_reader *r;

static void
setup(void)
{
	struct stat st;
	const char *dir = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) &&
	    access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";

	snprintf(region, sizeof(region), "%s/distkv-hooks.%d", dir,
	    (int)getpid());
	cr_assert_eq(shm_writer_open(region, 0600, "n1", &w), 0);
	shm_reader_test_hook = NULL;
	shm_writer_test_hook = NULL;
}

static void
teardown(void)
{
	shm_reader_test_hook = NULL;
	shm_writer_test_hook = NULL;
	if (r != NULL)
		shm_reader_close(r);
	if (w != NULL)
		shm_writer_close(w, true);
	r = NULL;
	w = NULL;
	unlink(region);
}

TestSuite(shm_hooks, .init = setup, .fini = teardown, .timeout = 20.);

static const uint8_t key[] = "\x91\xa3key";
#define KLEN (sizeof(key) - 1)

static void
put(const uint8_t *v, size_t len, uint64_t tick)
{
	struct shm_meta m = { tick, tick, "n1", 2 };

	cr_assert_eq(shm_writer_put(w, key, KLEN, v, len, &m), 0);
}

/* A msgpack bin value of n payload bytes, all `fill`. */
static size_t
mkval(uint8_t *buf, size_t n, uint8_t fill)
{
	buf[0] = 0xc5;
	buf[1] = (uint8_t)(n >> 8);
	buf[2] = (uint8_t)n;
	memset(buf + 3, fill, n);
	return n + 3;
}

static uint8_t oldv[1024], newv[1024];
static size_t oldlen, newlen;
static int hook_calls;

/* ---- a whole update between the reader's two slot loads ---- */

static void
update_mid_read(void)
{
	if (hook_calls++ == 0)
		put(newv, newlen, 2);
}

Test(shm_hooks, reader_retries_a_pair_torn_by_an_update)
{
	uint8_t buf[1024];
	size_t len = 0;
	struct shm_read_meta m;

	/* the new record is much longer than the old one, so the old
	 * length with the new offset is no valid record at all */
	oldlen = mkval(oldv, 8, 'o');
	newlen = mkval(newv, 600, 'n');
	put(oldv, oldlen, 1);
	cr_assert_eq(shm_reader_open(region, &r), 0);
	hook_calls = 0;
	shm_reader_test_hook = update_mid_read;
	cr_assert_eq(shm_reader_get(r, key, KLEN, buf, sizeof(buf), &len, &m),
	    0, "a read torn by a whole update must be retried, not reported "
	    "as damage");
	shm_reader_test_hook = NULL;
	cr_assert_geq(hook_calls, 2, "the torn slot was not read again");
	cr_assert_eq(len, newlen);
	cr_assert_eq(memcmp(buf, newv, newlen), 0, "not the whole new value");
	cr_assert_eq(m.tick, 2);
}

/* The same with an update that makes the record shorter: whatever the
 * reader copied under the torn pair is thrown away. */
Test(shm_hooks, reader_retries_a_pair_torn_by_a_shrinking_update)
{
	uint8_t buf[1024];
	size_t len = 0;
	struct shm_read_meta m;

	oldlen = mkval(oldv, 600, 'o');
	newlen = mkval(newv, 8, 'n');
	put(oldv, oldlen, 1);
	cr_assert_eq(shm_reader_open(region, &r), 0);
	hook_calls = 0;
	shm_reader_test_hook = update_mid_read;
	cr_assert_eq(shm_reader_get(r, key, KLEN, buf, sizeof(buf), &len, &m),
	    0);
	shm_reader_test_hook = NULL;
	cr_assert_geq(hook_calls, 2, "the torn slot was not read again");
	cr_assert_eq(len, newlen);
	cr_assert_eq(memcmp(buf, newv, newlen), 0, "not the whole new value");
	cr_assert_eq(m.tick, 2, "value and metadata of different updates");
}

/* ---- a read while the writer stands between its two seq stores ---- */

static int mid_rc;
static size_t mid_len;

static void
read_mid_write(void)
{
	uint8_t buf[1024];

	hook_calls++;
	mid_len = 0;
	mid_rc = shm_reader_get(r, key, KLEN, buf, sizeof(buf), &mid_len,
	    NULL);
}

Test(shm_hooks, reader_retries_while_the_writer_is_mid_slot)
{
	uint8_t buf[1024];
	size_t len = 0;

	/* the new length with the old offset is no valid record */
	oldlen = mkval(oldv, 600, 'o');
	newlen = mkval(newv, 8, 'n');
	put(oldv, oldlen, 1);
	cr_assert_eq(shm_reader_open(region, &r), 0);
	hook_calls = 0;
	shm_writer_test_hook = read_mid_write;
	put(newv, newlen, 2);
	shm_writer_test_hook = NULL;
	cr_assert_eq(hook_calls, 1, "the update wrote one slot");
	cr_assert_eq(mid_rc, -EAGAIN, "a slot in the middle of an update "
	    "gave rc %d (len %zu): it must only be retried", mid_rc, mid_len);
	/* and once the writer is done, the whole new value */
	cr_assert_eq(shm_reader_get(r, key, KLEN, buf, sizeof(buf), &len,
	    NULL), 0);
	cr_assert_eq(len, newlen);
	cr_assert_eq(memcmp(buf, newv, newlen), 0);
}

/* A delete is a slot update too. */
Test(shm_hooks, reader_retries_while_a_delete_is_mid_slot)
{
	uint8_t buf[1024];
	size_t len = 0;

	oldlen = mkval(oldv, 600, 'o');
	put(oldv, oldlen, 1);
	cr_assert_eq(shm_reader_open(region, &r), 0);
	hook_calls = 0;
	shm_writer_test_hook = read_mid_write;
	cr_assert_eq(shm_writer_del(w, key, KLEN), 0);
	shm_writer_test_hook = NULL;
	cr_assert_eq(hook_calls, 1);
	cr_assert_eq(mid_rc, -EAGAIN, "mid-delete read gave rc %d", mid_rc);
	cr_assert_eq(shm_reader_get(r, key, KLEN, buf, sizeof(buf), &len,
	    NULL), -ENOENT);
}

/*
 * ---- a record's space reused for another key under a reader ----
 *
 * The writer hands an overwritten or deleted record's space to the next
 * record of its size (shm/holes.h).  A reader that matched the key and
 * is about to copy the value from there must not return the other key's
 * value: the slot's seq, changed by the overwrite, sends it round again.
 */
static const uint8_t key2[] = "\x91\xa4key2";
static bool reuse_deletes;

static void
reuse_mid_read(void)
{
	struct shm_meta m = { 3, 3, "n1", 2 };
	uint8_t other[1024];
	/* key2 is a byte longer, its value a byte shorter */
	size_t olen = mkval(other, 599, 'x');

	if (hook_calls++ != 0)
		return;
	if (reuse_deletes)
		cr_assert_eq(shm_writer_del(w, key, KLEN), 0);
	else
		put(newv, newlen, 2);
	/* the same size as the old record: it takes that space */
	cr_assert_eq(shm_writer_put(w, key2, sizeof(key2) - 1, other, olen,
	    &m), 0);
}

static void
read_while_space_is_reused(bool deletes)
{
	struct shm_writer_stats before, after;
	uint8_t buf[1024];
	size_t len = 0;
	int rc;

	oldlen = mkval(oldv, 600, 'o');
	newlen = mkval(newv, 8, 'n');
	put(oldv, oldlen, 1);
	cr_assert_eq(shm_reader_open(region, &r), 0);
	shm_writer_stats(w, &before);
	hook_calls = 0;
	reuse_deletes = deletes;
	shm_reader_test_hook_matched = reuse_mid_read;
	rc = shm_reader_get(r, key, KLEN, buf, sizeof(buf), &len, NULL);
	shm_reader_test_hook_matched = NULL;
	shm_writer_stats(w, &after);
	/* key2 went into the old record's space, not the arena's end */
	cr_assert_eq(after.arena_used, before.arena_used + (deletes ? 0 :
	    shm_writer_record_bytes(KLEN, newlen, 2)),
	    "the old record's space was not reused: this test tests nothing");
	cr_assert_eq(after.replacements, 0);
	if (deletes) {
		cr_assert_eq(rc, -ENOENT, "rc %d, len %zu", rc, len);
		return;
	}
	cr_assert_eq(rc, 0);
	cr_assert_geq(hook_calls, 2, "the slot was not read again");
	cr_assert_eq(len, newlen, "a value of %zu bytes: another key's", len);
	cr_assert_eq(memcmp(buf, newv, newlen), 0, "not the whole new value");
}

Test(shm_hooks, reader_retries_when_an_overwrite_reuses_the_space)
{
	read_while_space_is_reused(false);
}

Test(shm_hooks, reader_retries_when_a_delete_reuses_the_space)
{
	read_while_space_is_reused(true);
}
