/*
 * shmtest: the helpers the files of tests/test_shm share (shmtest.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <xxhash.h>

#include "shmtest.h"

/* ---- fixture: one temp dir per test ---- */

static char tdir[128];
char region[192];

void
tdir_setup(void)
{
	struct stat st;

	if (stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) &&
	    access("/dev/shm", W_OK) == 0)
		snprintf(tdir, sizeof(tdir), "/dev/shm/distkv-test.XXXXXX");
	else
		snprintf(tdir, sizeof(tdir), "/tmp/distkv-test.XXXXXX");
	cr_assert_not_null(mkdtemp(tdir), "mkdtemp: %s", strerror(errno));
	snprintf(region, sizeof(region), "%s/region", tdir);
}

void
tdir_teardown(void)
{
	DIR *d;
	struct dirent *de;

	if (tdir[0] == '\0' || (d = opendir(tdir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			unlinkat(dirfd(d), de->d_name, 0);
	closedir(d);
	rmdir(tdir);
	tdir[0] = '\0';
}

/* ---- helpers ---- */

/* xorshift64*: reproducible, seeded per test. */
uint64_t
rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ULL;
}

uint64_t
test_seed(void)
{
	const char *e = getenv("DISTKV_SHM_SEED");

	return e != NULL ? strtoull(e, NULL, 0) | 1 : 0x9e3779b97f4a7c15ULL;
}

struct shm_meta
meta(uint64_t tick, uint64_t tock, const char *node)
{
	struct shm_meta m = { tick, tock, node, strlen(node) };

	return m;
}

struct shm_writer *
wopen(void)
{
	struct shm_writer *w = NULL;
	int rc = shm_writer_open(region, 0600, "n1", &w);

	cr_assert_eq(rc, 0, "shm_writer_open: %s", strerror(-rc));
	return w;
}

struct shm_reader *
ropen(void)
{
	struct shm_reader *r = NULL;
	int rc = shm_reader_open(region, &r);

	cr_assert_eq(rc, 0, "shm_reader_open: %s", strerror(-rc));
	return r;
}

void
put_str(struct shm_writer *w, const char *k, const char *v)
{
	struct shm_meta m = meta(1, 1, "n1");
	int rc = shm_writer_put(w, (const uint8_t *)k, strlen(k),
	    (const uint8_t *)v, strlen(v), &m);

	cr_assert_eq(rc, 0, "put %s: %s", k, strerror(-rc));
}

/* Get k as a string; returns the reader's rc, *out NUL-terminated. */
int
get_str(struct shm_reader *r, const char *k, char *out, size_t cap)
{
	size_t len = 0;
	int rc = shm_reader_get(r, (const uint8_t *)k, strlen(k), out,
	    cap - 1, &len, NULL);

	out[rc == 0 ? len : 0] = '\0';
	return rc;
}

void
peek_file(const char *path, struct peek *pk)
{
	struct stat st;
	const uint8_t *base;
	int fd = open(path, O_RDONLY);

	cr_assert_geq(fd, 0, "open %s", path);
	cr_assert_eq(fstat(fd, &st), 0);
	base = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	cr_assert_neq(base, MAP_FAILED);
	memcpy(&pk->h, base, sizeof(pk->h));
	pk->used_slots = pk->live_slots = 0;
	for (uint64_t i = 0; i < pk->h.table_slots; i++) {
		const struct shm_slot *s = (const struct shm_slot *)(const void *)
		    (base + SHM_HEADER_SIZE + i * SHM_SLOT_SIZE);

		uint32_t state = shm_slot_state(s->len_state);

		pk->used_slots += state != SHM_SLOT_EMPTY;
		pk->live_slots += state == SHM_SLOT_LIVE;
	}
	munmap((void *)base, (size_t)st.st_size);
	close(fd);
}

/* ---- self-checking values (shmtest.h) ---- */

size_t
tkey(uint32_t id, uint8_t *buf)
{
	/* keys of varying length: "k<id>:" and id % 23 filler bytes */
	int n = snprintf((char *)buf, 32, "k%" PRIu32 ":", id);

	for (uint32_t i = 0; i < id % 23; i++)
		buf[n++] = (uint8_t)('a' + (id + i) % 26);
	return (size_t)n;
}

size_t
tval(uint8_t *buf, uint32_t id, uint64_t version, size_t len, uint32_t round)
{
	struct tv_hdr h = { 0, TV_MAGIC, id, version, (uint32_t)len, round };
	uint64_t s = version * 0x100000001b3ULL + id + 1;

	for (size_t i = TV_HDR; i < len; i += 8) {
		uint64_t x = rnd(&s);

		memcpy(buf + i, &x, len - i < 8 ? len - i : 8);
	}
	memcpy(buf, &h, sizeof(h));
	h.sum = XXH64(buf + 8, len - 8, 0);
	memcpy(buf, &h.sum, sizeof(h.sum));
	return len;
}

int
scan_cb(void *arg, const uint8_t *key, size_t klen, const uint8_t *val,
    size_t vlen)
{
	struct scan_acc *a = arg;
	char k[32], want[32];
	int n;

	a->calls++;
	if (klen >= sizeof(k) || klen < 4) {
		a->bad++;
		return 0;
	}
	memcpy(k, key, klen);
	k[klen] = '\0';
	n = atoi(k + 3);
	snprintf(want, sizeof(want), "v%d", n);
	if (n < 0 || n >= 1000 || a->seen[n]++ != 0 ||
	    vlen != strlen(want) || memcmp(val, want, vlen) != 0)
		a->bad++;
	return a->stop_after != 0 && a->calls >= a->stop_after;
}
