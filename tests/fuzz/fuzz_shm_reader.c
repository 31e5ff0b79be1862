/*
 * fuzz_shm_reader: libFuzzer harness for shm/reader.c (run it with
 * scripts/fuzz.sh).
 *
 * Each input is a whole region file.  It is written to a memfd, opened by
 * path (/proc/self/fd/N) with shm_reader_open, and, if the header passes,
 * every reader call runs on it: info, changes, seq, fresh, alive, a scan,
 * gets of every key the scan found (with buffers too small, exact and
 * large) and of a few fixed keys, and a wait with a zero timeout.  Nothing
 * may crash, read out of bounds or leak; results are not judged beyond
 * "a known error code".
 *
 * Built with -DFUZZ_MAKE_SEEDS (and shm/writer.c) this file is instead a
 * program that writes seed regions into the directory given as argv[1]:
 * regions made by the writer (empty, a few keys, deletes, a grown one)
 * and the same contents re-laid out in tiny tables, which mutate faster.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "layout.h"
#include "reader.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int memfd = -1;
static char region_path[64];

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	memfd = memfd_create("fuzz-shm-region", MFD_CLOEXEC);
	if (memfd < 0) {
		perror("memfd_create");
		abort();
	}
	snprintf(region_path, sizeof(region_path), "/proc/self/fd/%d", memfd);
	return 0;
}

#define MAX_KEYS 16

struct keys {
	int n;
	uint8_t *k[MAX_KEYS];
	size_t len[MAX_KEYS];
	uint64_t sum;
};

static int
scan_cb(void *arg, const uint8_t *key, size_t klen, const uint8_t *val,
    size_t vlen)
{
	struct keys *ks = arg;

	/* touch every byte handed out, so ASan checks the bounds */
	for (size_t i = 0; i < klen; i++)
		ks->sum += key[i];
	for (size_t i = 0; i < vlen; i++)
		ks->sum += val[i];
	if (ks->n < MAX_KEYS && (ks->k[ks->n] = malloc(klen ? klen : 1)) !=
	    NULL) {
		memcpy(ks->k[ks->n], key, klen);
		ks->len[ks->n++] = klen;
	}
	return 0;
}

static void
check_rc(int rc)
{
	/* a reader only ever returns these on a file it accepted */
	if (rc != 0 && rc != -ENOENT && rc != -ENOBUFS && rc != -EAGAIN &&
	    rc != -EBADMSG) {
		fprintf(stderr, "unexpected reader rc %d\n", rc);
		abort();
	}
}

static void
get_one(struct shm_reader *r, const uint8_t *key, size_t klen)
{
	static const size_t caps[] = { 0, 1, 16, 4096 };
	uint8_t *buf = malloc(4096);
	struct shm_read_meta m;

	if (buf == NULL)
		return;
	for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
		size_t len = 0;
		int rc = shm_reader_get(r, key, klen, buf, caps[i], &len,
		    i % 2 ? &m : NULL);

		check_rc(rc);
		if (rc == 0 && len > caps[i])
			abort();	/* copied past the caller's buffer */
		if (rc == -ENOBUFS) {
			/* the size it asks for must then be enough */
			uint8_t *big = malloc(len ? len : 1);

			if (big == NULL)
				break;
			rc = shm_reader_get(r, key, klen, big, len, &len, &m);
			check_rc(rc);
			free(big);
		}
		/* the typed getters' read: body and NUL within caps[i] */
		if (caps[i] > 0) {
			rc = shm_reader_get_str_hashed(r, key, klen,
			    shm_key_hash(key, klen), (char *)buf, caps[i]);
			check_rc(rc);
			if (rc == 0 && memchr(buf, '\0', caps[i]) == NULL)
				abort();	/* no NUL inside the buffer */
		}
	}
	free(buf);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *fixed[] = { "key0", "key1", "key7", "", "missing" };
	struct shm_reader *r = NULL;
	struct shm_reader_info info;
	struct keys ks;
	int rc;

	if (ftruncate(memfd, 0) != 0 ||
	    pwrite(memfd, data, size, 0) != (ssize_t)size)
		abort();
	rc = shm_reader_open(region_path, &r);
	if (rc != 0) {
		if (r != NULL)
			abort();	/* out-param must stay cleared */
		return 0;
	}
	shm_reader_info(r, &info);
	(void)shm_reader_changes(r);
	(void)shm_reader_fresh(r, 1000);
	/* kill(pid, 0) with the file's pid: signal 0 only checks */
	rc = shm_reader_alive(r, 1000);
	if (rc != 0 && rc != 1)
		abort();
	memset(&ks, 0, sizeof(ks));
	rc = shm_reader_scan(r, scan_cb, &ks);
	if (rc != 0 && rc != -EAGAIN)
		check_rc(rc);
	for (int i = 0; i < ks.n; i++) {
		get_one(r, ks.k[i], ks.len[i]);
		free(ks.k[i]);
	}
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		get_one(r, (const uint8_t *)fixed[i], strlen(fixed[i]));
	rc = shm_reader_wait(r, shm_reader_seq(r), 0);
	if (rc != 0 && rc != -ETIMEDOUT)
		abort();
	shm_reader_close(r);
	return 0;
}

#ifdef FUZZ_MAKE_SEEDS
/* ---- seed regions ---- */
#include <sys/stat.h>

#include <xxhash.h>

#include "writer.h"

static uint8_t *
slurp(const char *path, size_t *n)
{
	struct stat st;
	uint8_t *buf;
	int fd = open(path, O_RDONLY);

	if (fd < 0 || fstat(fd, &st) != 0)
		abort();
	*n = (size_t)st.st_size;
	if ((buf = malloc(*n)) == NULL || read(fd, buf, *n) != (ssize_t)*n)
		abort();
	close(fd);
	return buf;
}

static void
spit(const char *dir, const char *name, const uint8_t *buf, size_t n)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, buf, n) != (ssize_t)n)
		abort();
	close(fd);
	/* every seed must pass the harness itself */
	LLVMFuzzerTestOneInput(buf, n);
}

/*
 * The live records of a writer region, re-laid out in the smallest table
 * that holds them (load <= 1/2) and an arena of just those records, plus
 * one tombstone: a valid region of a few hundred bytes.
 */
static void
spit_compact(const char *dir, const char *name, const uint8_t *src)
{
	const struct shm_header *sh = (const struct shm_header *)(const void *)
	    src;
	const struct shm_slot *stab = (const struct shm_slot *)(const void *)
	    (src + SHM_HEADER_SIZE);
	uint64_t n = 0, bytes = 0, slots = 4, size, off = 0;
	struct shm_header *h;
	struct shm_slot *tab;
	uint8_t *buf;

	for (uint64_t i = 0; i < sh->table_slots; i++)
		if (shm_slot_state(stab[i].len_state) == SHM_SLOT_LIVE) {
			n++;
			bytes += shm_slot_len(stab[i].len_state);
		}
	while (slots < 2 * (n + 1))
		slots <<= 1;
	size = SHM_HEADER_SIZE + slots * SHM_SLOT_SIZE + bytes;
	if ((buf = calloc(1, size)) == NULL)
		abort();
	h = (struct shm_header *)(void *)buf;
	memcpy(h, sh, sizeof(*h));
	h->region_size = size;
	h->table_slots = slots;
	h->arena_off = SHM_HEADER_SIZE + slots * SHM_SLOT_SIZE;
	h->arena_size = bytes;
	h->arena_used = bytes;
	h->superseded = 0;
	tab = (struct shm_slot *)(void *)(buf + SHM_HEADER_SIZE);
	for (uint64_t i = 0; i < sh->table_slots; i++) {
		const struct shm_slot *s = &stab[i];
		const struct shm_record *r;
		uint32_t len = shm_slot_len(s->len_state);
		uint64_t j, hash;

		if (shm_slot_state(s->len_state) != SHM_SLOT_LIVE)
			continue;
		/* the probe starts at the low bits of the hash, which the
		 * slot does not keep */
		r = (const struct shm_record *)(const void *)(src +
		    sh->arena_off + shm_slot_off(s->tag_off));
		hash = XXH3_64bits(r + 1, r->key_len);
		j = hash & (slots - 1);
		while (shm_slot_state(tab[j].len_state) != SHM_SLOT_EMPTY)
			j = (j + 1) & (slots - 1);
		memcpy(buf + h->arena_off + off, r, len);
		tab[j].seq = 2;
		tab[j].len_state = len | SHM_SLOT_LIVE;
		tab[j].tag_off = shm_tag_off(hash, off);
		off += len;
	}
	/* a tombstone where a probe for "gone" starts */
	{
		uint64_t j = XXH3_64bits("gone", 4) & (slots - 1);

		while (shm_slot_state(tab[j].len_state) != SHM_SLOT_EMPTY)
			j = (j + 1) & (slots - 1);
		tab[j].len_state = SHM_RECORD_MIN | SHM_SLOT_DELETED;
		tab[j].tag_off = shm_tag_off(XXH3_64bits("gone", 4), 0);
	}
	spit(dir, name, buf, size);
	free(buf);
}

static void
put(struct shm_writer *w, const char *k, const char *v)
{
	struct shm_meta m = { 3, 5, "seed", 4 };

	if (shm_writer_put(w, (const uint8_t *)k, strlen(k),
	    (const uint8_t *)v, strlen(v), &m) != 0)
		abort();
}

int
main(int argc, char **argv)
{
	char path[4096], name[64];
	struct shm_writer *w;
	uint8_t *buf;
	size_t n;

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	LLVMFuzzerInitialize(&argc, &argv);
	snprintf(path, sizeof(path), "%s/.region", argv[1]);
	for (int variant = 0; variant < 4; variant++) {
		static const int nkeys[] = { 0, 3, 40, 900 };

		if (shm_writer_open(path, 0600, "seed", &w) != 0)
			abort();
		for (int i = 0; i < nkeys[variant]; i++) {
			char k[32], v[64];

			snprintf(k, sizeof(k), "key%d", i);
			/* msgpack-ish values of a few shapes */
			snprintf(v, sizeof(v), "%c%.*s", 0xa0 + i % 32, i % 32,
			    "abcdefghijklmnopqrstuvwxyz012345");
			put(w, k, v);
		}
		if (nkeys[variant] > 3)
			for (int i = 0; i < nkeys[variant]; i += 4) {
				char k[32];

				snprintf(k, sizeof(k), "key%d", i);
				shm_writer_del(w, (const uint8_t *)k, strlen(k));
			}
		if (variant == 2)
			put(w, "key1", "updated value");
		/* only the live region: the writer may have replaced it */
		buf = slurp(path, &n);
		snprintf(name, sizeof(name), "writer-%d", variant);
		if (variant < 3)
			spit(argv[1], name, buf, n);	/* ~300 KiB each */
		snprintf(name, sizeof(name), "compact-%d", variant);
		spit_compact(argv[1], name, buf);
		free(buf);
		shm_writer_close(w, true);
	}
	printf("seeds written to %s\n", argv[1]);
	return 0;
}
#endif
