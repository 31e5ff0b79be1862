/*
 * bench_shm (see bench_shm.c): what the reads of one key count run on,
 * built over its keys: the in-process hash table (the floor), a private
 * copy of the region, LMDB, and the region, written in this process.
 */
#include <sys/mman.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lmdb.h>
#include <xxhash.h>

#include "benchutil.h"
#include "bench_shm.h"
#include "layout.h"

/* ---- the in-process floor ---- */

/*
 * As many slots as the region's table (so the same load factor and probe
 * lengths), linear probing on XXH3-64 of the key bytes, records in one
 * arena in insertion order like the region's bump allocator.
 */
int
ht_build(struct target *tg, uint64_t slots)
{
	const struct keyset	*ks = &tg->ks;
	struct ht		*t;
	size_t			 rec, cap;
	uint64_t		 total = 0, i, h, probe;
	long			 k;
	uint8_t			 val[VAL_WIRE];

	if ((t = calloc(1, sizeof(*t))) == NULL)
		return (-ENOMEM);
	tg->ht = t;
	if (slots < (uint64_t)ks->n * 4 / 3 + 1)
		return (-EINVAL);
	t->mask = slots - 1;
	cap = (size_t)ks->n * (8 + KEY_MAX + VAL_WIRE + 8);
	if ((t->slot = calloc(slots, sizeof(*t->slot))) == NULL ||
	    (t->arena = malloc(cap)) == NULL)
		return (-ENOMEM);
	for (k = 0; k < ks->n; k++) {
		uint32_t	kl = ks->klen[k], vl = VAL_WIRE;

		value_make(k, ks->gen[k], val);
		h = XXH3_64bits(ks->key[k], kl);
		for (i = h & t->mask, probe = 1; t->slot[i].used;
		    i = (i + 1) & t->mask)
			probe++;
		rec = (8 + kl + vl + 7) & ~(size_t)7;
		memcpy(t->arena + t->arena_used, &kl, 4);
		memcpy(t->arena + t->arena_used + 4, &vl, 4);
		memcpy(t->arena + t->arena_used + 8, ks->key[k], kl);
		memcpy(t->arena + t->arena_used + 8 + kl, val, vl);
		t->slot[i].hash = h;
		t->slot[i].off = (uint32_t)t->arena_used;
		t->slot[i].used = 1;
		t->arena_used += rec;
		total += probe;
		if (probe > t->max_probe)
			t->max_probe = probe;
	}
	t->mean_probe = (double)total / (double)ks->n;
	return (0);
}

void
ht_free(struct ht *t)
{
	if (t == NULL)
		return;
	free(t->slot);
	free(t->arena);
	free(t);
}

/* Copy the region file into private memory, for copy_get. */
int
copy_build(struct target *tg)
{
	struct stat	st;
	ssize_t		n;
	size_t		off = 0;
	int		fd;

	if ((fd = open(tg->region, O_RDONLY | O_CLOEXEC)) < 0)
		return (-errno);
	if (fstat(fd, &st) != 0 || (tg->copy = malloc((size_t)st.st_size)) ==
	    NULL) {
		close(fd);
		return (-ENOMEM);
	}
	while (off < (size_t)st.st_size && (n = read(fd, tg->copy + off,
	    (size_t)st.st_size - off)) > 0)
		off += (size_t)n;
	close(fd);
	return (off == (size_t)st.st_size ? 0 : -EIO);
}

/* ---- LMDB ---- */

/*
 * One file (MDB_NOSUBDIR) in the temp dir, loaded in key order (index order
 * is memcmp order for these keys) with MDB_NOSYNC, 100,000 puts per commit.
 */
int
lmdb_build(struct target *tg, const char *path)
{
	const struct keyset	*ks = &tg->ks;
	MDB_txn			*txn = NULL;
	MDB_val			 k, v;
	uint8_t			 val[VAL_WIRE];
	uint64_t		 t0;
	long			 i;
	int			 rc;

	t0 = now_ns();
	if ((rc = mdb_env_create(&tg->env)) != 0 ||
	    (rc = mdb_env_set_mapsize(tg->env, (size_t)ks->n * 400 +
	    (64u << 20))) != 0 ||
	    (rc = mdb_env_set_maxreaders(tg->env, MAX_THREADS + 8)) != 0 ||
	    (rc = mdb_env_open(tg->env, path, MDB_NOSUBDIR | MDB_NOSYNC |
	    MDB_NOMETASYNC, 0600)) != 0)
		goto fail;
	for (i = 0; i < ks->n; i++) {
		if (txn == NULL && ((rc = mdb_txn_begin(tg->env, NULL, 0,
		    &txn)) != 0 || (i == 0 && (rc = mdb_dbi_open(txn, NULL, 0,
		    &tg->dbi)) != 0)))
			goto fail;
		value_make(i, ks->gen[i], val);
		k.mv_data = ks->key[i];
		k.mv_size = ks->klen[i];
		v.mv_data = val;
		v.mv_size = sizeof(val);
		if ((rc = mdb_put(txn, tg->dbi, &k, &v, 0)) != 0)
			goto fail;
		if (i % 100000 == 99999 || i == ks->n - 1) {
			rc = mdb_txn_commit(txn);
			txn = NULL;
			if (rc != 0)
				goto fail;
		}
	}
	tg->lmdb_load_ns = (double)(now_ns() - t0) / (double)ks->n;
	return (0);
fail:
	if (txn != NULL)
		mdb_txn_abort(txn);
	fprintf(stderr, "bench: lmdb %s: %s\n", path, mdb_strerror(rc));
	return (-1);
}

/* ---- the region, written in this process ---- */

int
region_build(struct target *tg)
{
	const struct keyset	*ks = &tg->ks;
	struct shm_writer_stats	 st;
	struct shm_meta		 m;
	uint8_t			 val[VAL_WIRE];
	uint64_t		 t0;
	long			 i;
	int			 rc;

	if ((rc = shm_writer_open(tg->region, 0600, "bench", &tg->w)) != 0) {
		fprintf(stderr, "bench: shm_writer_open %s: %s\n", tg->region,
		    strerror(-rc));
		return (-1);
	}
	m.node = "bench";
	m.node_len = 5;
	t0 = now_ns();
	for (i = 0; i < ks->n; i++) {
		value_make(i, ks->gen[i], val);
		m.tick = m.tock = (uint64_t)i + 1;
		if ((rc = shm_writer_put(tg->w, ks->key[i], ks->klen[i], val,
		    sizeof(val), &m)) != 0) {
			fprintf(stderr, "bench: shm_writer_put: %s\n",
			    strerror(-rc));
			return (-1);
		}
	}
	shm_writer_notify(tg->w);
	tg->load_ns = (double)(now_ns() - t0) / (double)ks->n;
	shm_writer_stats(tg->w, &st);
	tg->load_rebuilds = st.replacements;
	return (0);
}

/*
 * Read the slot table of the region at path (its own read-only mapping,
 * layout.h) and count the slots a lookup of each key visits.  The writer
 * does not run meanwhile.
 */
int
region_inspect(const char *path, const struct keyset *ks,
    struct regioninfo *ri)
{
	const struct shm_header	*h;
	const struct shm_slot	*tab;
	struct stat		 st;
	uint64_t		 total = 0, mask, i, hash, probe;
	uint32_t		 state;
	void			*base;
	long			 k;
	int			 fd;

	memset(ri, 0, sizeof(*ri));
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return (-errno);
	if (fstat(fd, &st) != 0 || st.st_size < SHM_HEADER_SIZE) {
		close(fd);
		return (-EBADMSG);
	}
	base = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (base == MAP_FAILED)
		return (-errno);
	h = base;
	ri->slots = h->table_slots;
	ri->live = h->live_entries;
	ri->size = h->region_size;
	if (h->magic != SHM_MAGIC || h->region_size != (uint64_t)st.st_size ||
	    ri->slots == 0 || (ri->slots & (ri->slots - 1)) != 0) {
		munmap(base, (size_t)st.st_size);
		return (-EBADMSG);
	}
	tab = (const struct shm_slot *)((const uint8_t *)base +
	    SHM_HEADER_SIZE);
	mask = ri->slots - 1;
	for (k = 0; k < ks->n; k++) {
		hash = XXH3_64bits(ks->key[k], ks->klen[k]);
		for (i = hash & mask, probe = 1; probe <= ri->slots;
		    i = (i + 1) & mask, probe++) {
			state = shm_slot_state(tab[i].len_state);
			if (state == SHM_SLOT_EMPTY ||
			    (state == SHM_SLOT_LIVE &&
			    shm_slot_tag(tab[i].tag_off) == shm_hash_tag(hash)))
				break;
		}
		total += probe;
		if (probe > ri->max_probe)
			ri->max_probe = probe;
	}
	ri->mean_probe = (double)total / (double)ks->n;
	munmap(base, (size_t)st.st_size);
	return (0);
}
