/*
 * fuzz_persist: libFuzzer harness for the state-directory files as
 * agent/persist.c reads them: the 8-byte magic, the record framing
 * (length, XXH32 checksum), the msgpack records of spec §2.8 and their
 * application through agent_apply_record() (path lengthening, flat and
 * nested chains, state records).
 *
 * The first byte of an input picks the reader:
 *   bit 0 clear: the rest is one file, loaded with persist_load_file()
 *         (--load);
 *   bit 0 set: the rest is a state directory: a little-endian u16 length,
 *         that many bytes of snapshot.dkv, the rest changes.dkv, opened
 *         with persist_open_state_dir() and closed again (final snapshot);
 *   bit 1 set: the checksum of every record whose length fits is made
 *         right before the files are written, so that mutations reach
 *         the records behind the framing (bit 1 clear tests the framing).
 * Then, whether the load succeeded or not (a refused file may have
 * applied its first records):
 *   - the tree is walkable (fuzz_agent.h) and no tick or tock beyond the
 *     ceiling was accepted (known bug "tick-ceiling", fuzz_pending);
 *   - the loaded tree saved (persist_save), loaded into a fresh agent and
 *     saved again gives the very same file: save ∘ load is the identity
 *     on what save writes;
 *   - nothing crashes, leaks or hits undefined behaviour.
 * Files live in a private directory under /dev/shm (else /tmp), removed
 * at exit.
 *
 * Built with -DFUZZ_MAKE_SEEDS this file is a program that writes seed
 * files (snapshots and change logs made by persist.c) into argv[1].
 */
#include <errno.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ev.h>
#include <xxhash.h>

#include "agent.h"
#include "log.h"
#include "persist.h"

#include "fuzz_agent.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct ev_loop *loop;
static char dir[64];

static int
rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static void
rm_dir(void)
{
	if (dir[0] != '\0')
		nftw(dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_set_level(LOG_ERROR);
	/* the agent logs refused files as errors: keep the run quiet */
	if (getenv("FUZZ_VERBOSE") == NULL)
		log_set_level((enum log_level)(LOG_ERROR + 1));
	loop = ev_loop_new(EVFLAG_AUTO);
	snprintf(dir, sizeof(dir), "%s/distkv-fuzz.XXXXXX",
	    access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
	if (loop == NULL || mkdtemp(dir) == NULL)
		abort();
	atexit(rm_dir);
	return 0;
}

static void
start(struct agent *a)
{
	struct agent_config cfg;

	memset(&cfg, 0, sizeof(cfg));
	cfg.node = "fuzz";
	cfg.change_length = CHAIN_DEFAULT_LENGTH;
	cfg.fsync = FSYNC_NONE;
	if (agent_init(a, loop, &cfg) != 0)
		abort();
}

static uint32_t
le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[3] << 24;
}

/* Make the checksum of every whole record in p[0..n) right (a copy). */
static uint8_t *
fix_checksums(const uint8_t *p, size_t n)
{
	uint8_t *c = malloc(n + 1);
	size_t off = PERSIST_MAGIC_LEN;

	if (c == NULL)
		abort();
	memcpy(c, p, n);
	while (off + 8 <= n) {
		uint32_t len = le32(c + off), sum;

		if (len == 0 || len > n - off - 8)
			break;
		sum = XXH32(c + off + 8, len, 0);
		c[off + 4] = (uint8_t)sum;
		c[off + 5] = (uint8_t)(sum >> 8);
		c[off + 6] = (uint8_t)(sum >> 16);
		c[off + 7] = (uint8_t)(sum >> 24);
		off += 8 + (size_t)len;
	}
	return c;
}

static bool fixing;

static void
write_file(const char *path, const uint8_t *p, size_t n)
{
	uint8_t *fixed = fixing ? fix_checksums(p, n) : NULL;
	FILE *f = fopen(path, "wb");

	if (fixed != NULL)
		p = fixed;

	if (f == NULL || (n > 0 && fwrite(p, 1, n, f) != n) || fclose(f) != 0)
		abort();
	free(fixed);
}

static uint8_t *
read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	long n;

	if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) != 0 ||
	    (buf = malloc((size_t)n + 1)) == NULL ||
	    fread(buf, 1, (size_t)n, f) != (size_t)n)
		abort();
	fclose(f);
	*len = (size_t)n;
	return buf;
}

/* save a, load that into a fresh agent, save again: the same bytes. */
static void
check_round_trip(struct agent *a)
{
	char p1[128], p2[128];
	struct agent b;
	uint8_t *f1, *f2;
	size_t l1, l2;
	int rc;

	snprintf(p1, sizeof(p1), "%s/save1", dir);
	snprintf(p2, sizeof(p2), "%s/save2", dir);
	if ((rc = persist_save(a, p1)) != 0)
		FUZZ_FAIL("cannot save a loaded tree: %d", rc);
	start(&b);
	if ((rc = persist_load_file(&b, p1)) != 0)
		FUZZ_FAIL("a saved snapshot does not load: %d", rc);
	fuzz_check_tree(&b);
	if ((rc = persist_save(&b, p2)) != 0)
		FUZZ_FAIL("cannot save a reloaded tree: %d", rc);
	f1 = read_file(p1, &l1);
	f2 = read_file(p2, &l2);
	if (l1 != l2 || memcmp(f1, f2, l1) != 0)
		FUZZ_FAIL("save, load, save: %zu bytes, then %zu other bytes",
		    l1, l2);
	free(f1);
	free(f2);
	agent_fini(&b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_clocks fc;
	struct agent a;
	char path[256], sd[128];
	int rc;

	if (size < 1)
		return 0;
	fixing = (data[0] & 2) != 0;
	start(&a);
	fuzz_clocks_init(&fc);
	fuzz_check_clocks(&fc, &a, data, size);
	if ((data[0] & 1) == 0) {
		snprintf(path, sizeof(path), "%s/file", dir);
		write_file(path, data + 1, size - 1);
		rc = persist_load_file(&a, path);
	} else {
		size_t slen = size >= 3 ? (size_t)data[1] | (size_t)data[2] << 8
		    : 0;
		const uint8_t *p = data + (size >= 3 ? 3 : size);
		size_t n = size >= 3 ? size - 3 : 0;

		if (slen > n)
			slen = n;
		snprintf(sd, sizeof(sd), "%s/state", dir);
		mkdir(sd, 0700);
		snprintf(path, sizeof(path), "%s/snapshot.dkv", sd);
		if (slen > 0)
			write_file(path, p, slen);
		else
			unlink(path);
		snprintf(path, sizeof(path), "%s/changes.dkv", sd);
		if (n - slen > 0)
			write_file(path, p + slen, n - slen);
		else
			unlink(path);
		rc = persist_open_state_dir(&a, sd);
		if (rc == 0) {
			/* the final snapshot, then a restart from it */
			persist_close(&a);
			fuzz_check_tree(&a);
			agent_fini(&a);
			start(&a);
			if ((rc = persist_open_state_dir(&a, sd)) != 0)
				FUZZ_FAIL("a state dir this agent closed does "
				    "not open again: %d", rc);
			persist_close(&a);
		}
	}
	(void)rc;
	fuzz_check_clocks(&fc, &a, data, size);
	fuzz_check_tree(&a);
	if (!fc.wedged)
		check_round_trip(&a);
	agent_fini(&a);
	return 0;
}

#ifdef FUZZ_MAKE_SEEDS
static int nseed;

static void
seed_file(const char *out, uint8_t mode, const char *path)
{
	size_t len;
	uint8_t *f = read_file(path, &len), *s = malloc(len + 1);

	s[0] = mode;
	memcpy(s + 1, f, len);
	fuzz_write_seed(out, "seed", nseed++, s, len + 1);
	s[0] = mode | 2;
	fuzz_write_seed(out, "seed", nseed++, s, len + 1);
	free(s);
	free(f);
}

static void
set(struct agent *a, const char *k1, const char *k2, uint8_t v)
{
	uint8_t n1[16], n2[16];
	struct entry *e;

	n1[0] = (uint8_t)(0xa0 | strlen(k1));
	memcpy(n1 + 1, k1, strlen(k1));
	e = tree_child(&a->tree, a->tree.root, n1, strlen(k1) + 1, true);
	if (k2 != NULL) {
		n2[0] = (uint8_t)(0xa0 | strlen(k2));
		memcpy(n2 + 1, k2, strlen(k2));
		e = tree_child(&a->tree, e, n2, strlen(k2) + 1, true);
	}
	if (agent_change_local(a, e, v == 0 ? NULL : &v, 1) != 0)
		abort();
}

int
main(int argc, char **argv)
{
	struct agent a;
	char sd[128], p[160];
	uint8_t *snap, *logb, *both;
	size_t sl, ll;

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	LLVMFuzzerInitialize(NULL, NULL);
	/* a state dir: changes logged, then a final snapshot */
	snprintf(sd, sizeof(sd), "%s/state", dir);
	start(&a);
	if (persist_open_state_dir(&a, sd) != 0)
		return 1;
	node_raise_tick(a.self, 0);
	a.ready = true;		/* it has its data: a snapshot at close */
	set(&a, "a", "b", 1);
	set(&a, "a", "c", 2);
	set(&a, "x", NULL, 3);
	set(&a, "a", "b", 0);		/* a tombstone */
	set(&a, "x", NULL, 4);
	persist_sync(&a);
	snprintf(p, sizeof(p), "%s/changes.dkv", sd);
	seed_file(argv[1], 0, p);	/* the change log alone */
	logb = read_file(p, &ll);
	persist_close(&a);
	snprintf(p, sizeof(p), "%s/snapshot.dkv", sd);
	seed_file(argv[1], 0, p);	/* the snapshot alone */
	snap = read_file(p, &sl);
	agent_fini(&a);
	/* snapshot + a log as a state dir */
	both = malloc(3 + sl + ll);
	both[0] = 1;
	both[1] = (uint8_t)sl;
	both[2] = (uint8_t)(sl >> 8);
	memcpy(both + 3, snap, sl);
	memcpy(both + 3 + sl, logb, ll);
	fuzz_write_seed(argv[1], "seed", nseed++, both, 3 + sl + ll);
	both[0] = 3;
	fuzz_write_seed(argv[1], "seed", nseed++, both, 3 + sl + ll);
	/* the snapshot with a torn tail */
	both[0] = 0;
	memcpy(both + 1, snap, sl);
	fuzz_write_seed(argv[1], "seed", nseed++, both, 1 + sl - 3);
	free(both);
	free(snap);
	free(logb);
	/* a `save` of a second node's tree */
	start(&a);
	node_raise_tick(a.self, 7);
	set(&a, "n", "m", 9);
	set(&a, "n", "o", 10);
	snprintf(p, sizeof(p), "%s/save", dir);
	if (persist_save(&a, p) != 0)
		return 1;
	seed_file(argv[1], 0, p);
	agent_fini(&a);
	return 0;
}
#endif
