/*
 * bench_shm (see bench_shm.c): the reads: one get through any method, the
 * check of every key, the timed batches, the one-key loop.  The lookups of
 * the hash table and of the region's copy, and the sums of what is read,
 * are in this file with the timed loops that call them, so that those
 * compile as they did when the bench was one file.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <lmdb.h>
#include <xxhash.h>

#include "benchutil.h"
#include "bench_shm.h"
#include "layout.h"

struct worker;

/* One measurement: nthreads workers, batches after one warm-up batch. */
struct measure {
	struct target		*tg;
	enum method		 m;
	int			 nthreads;
	long			 batch_ops;
	int			 batches;
	pthread_barrier_t	 bar;
	struct worker		*w;
};

struct worker {
	struct measure	*ms;
	int		 idx;
	pthread_t	 th;
	uint64_t	 sum;
	long		 errors;
	int		 rc;
	uint64_t	 t0[MAX_BATCHES + 1];
	uint64_t	 t1[MAX_BATCHES + 1];
};

/* ---- the lookups of the floor and of the copy; the sums of values ---- */

/* Not inlined: shm_reader_get is a call into another object too. */
static __attribute__((noinline)) int
ht_get(const struct ht *t, const uint8_t *key, size_t klen, void *buf,
    size_t cap, size_t *len)
{
	uint64_t	h = XXH3_64bits(key, klen), i;
	uint32_t	kl, vl;
	const uint8_t	*r;

	for (i = h & t->mask;; i = (i + 1) & t->mask) {
		const struct ht_slot	*s = &t->slot[i];

		if (!s->used)
			return (-ENOENT);
		if (s->hash != h)
			continue;
		r = t->arena + s->off;
		memcpy(&kl, r, 4);
		memcpy(&vl, r + 4, 4);
		if (kl != klen || memcmp(r + 8, key, klen) != 0)
			continue;
		*len = vl;
		if (vl > cap)
			return (-ENOBUFS);
		memcpy(buf, r + 8 + kl, vl);
		return (0);
	}
}

/*
 * A lookup on a private copy of the region (layout.h) with none of the
 * reader's protocol: no sequence words, no bounds checks, no re-map test.
 * Against ht_get it prices the region's layout (16-byte slots with a
 * 32-bit tag, records with an 8-byte header and the metadata after the
 * value, arena slack); against shm_reader_get what the lock-free protocol
 * and the checks cost.
 */
static __attribute__((noinline)) int
copy_get(const uint8_t *base, const uint8_t *key, size_t klen, void *buf,
    size_t cap, size_t *len)
{
	const struct shm_header	*h = (const struct shm_header *)base;
	const struct shm_slot	*tab, *s;
	const struct shm_record	*r;
	const uint8_t		*arena = base + h->arena_off;
	uint64_t		 hash = XXH3_64bits(key, klen), mask, i;
	uint32_t		 tag = shm_hash_tag(hash), state;

	tab = (const struct shm_slot *)(base + SHM_HEADER_SIZE);
	mask = h->table_slots - 1;
	for (i = hash & mask;; i = (i + 1) & mask) {
		s = &tab[i];
		state = shm_slot_state(s->len_state);
		if (state == SHM_SLOT_EMPTY)
			return (-ENOENT);
		if (state != SHM_SLOT_LIVE || shm_slot_tag(s->tag_off) != tag)
			continue;
		r = (const struct shm_record *)(arena +
		    shm_slot_off(s->tag_off));
		if (r->key_len != klen || memcmp(r + 1, key, klen) != 0)
			continue;
		*len = r->val_len;
		if (r->val_len > cap)
			return (-ENOBUFS);
		memcpy(buf, (const uint8_t *)(r + 1) + klen, r->val_len);
		return (0);
	}
}

/* What the timed loops add up per value: its first and last 8 bytes. */
static inline uint64_t
value_sum(const uint8_t *buf, size_t len)
{
	uint64_t	a = 0, z = 0;

	if (len >= 8) {
		memcpy(&a, buf, 8);
		memcpy(&z, buf + len - 8, 8);
	}
	return (a + (z ^ len));
}

/*
 * value_sum of the msgpack form (str 8) of a VAL_LEN-byte text read by the
 * typed getter, without rebuilding it: a wrong length or text gives
 * another sum, and the sums of all methods must agree.
 */
static inline uint64_t
str_sum(const char *text)
{
	uint8_t		head[8] = { 0xd9, VAL_LEN };
	uint64_t	a, z;

	memcpy(head + 2, text, 6);
	memcpy(&a, head, 8);
	memcpy(&z, text + VAL_LEN - 8, 8);
	return (a + (z ^ VAL_WIRE));
}

/* ---- reads ---- */

/*
 * One get of key idx through m with thread slot t's handle, untimed:
 * 0, 1 for "no such key", or < 0.  For verify() only.
 */
static int
get_one(struct target *tg, enum method m, int t, long idx, uint8_t *buf,
    size_t cap, size_t *len)
{
	const uint8_t		*key = tg->ks.key[idx];
	size_t			 klen = tg->ks.klen[idx];
	struct distkv_entry	 e;
	MDB_txn			*txn;
	MDB_val			 k, v;
	int			 rc;

	*len = 0;
	switch (m) {
	case M_HT:
		rc = ht_get(tg->ht, key, klen, buf, cap, len);
		return (rc == -ENOENT ? 1 : rc);
	case M_COPY:
		rc = copy_get(tg->copy, key, klen, buf, cap, len);
		return (rc == -ENOENT ? 1 : rc);
	case M_SHM:
		rc = shm_reader_get(tg->rd[t], key, klen, buf, cap, len, NULL);
		return (rc == -ENOENT ? 1 : rc);
	case M_SHM_PATH:
		rc = distkv_shm_get(tg->ds[t], tg->ks.paths[idx], buf, cap, len,
		    NULL);
		return (rc == DISTKV_ENOTFOUND ? 1 : rc);
	case M_KEY:
		rc = distkv_key_get(tg->ds[t], tg->ks.keys[idx], buf, cap, len,
		    NULL);
		return (rc == DISTKV_ENOTFOUND ? 1 : rc);
	case M_KEY_STR:
		/* the msgpack form again, for the byte comparison */
		rc = distkv_key_get_str(tg->ds[t], tg->ks.keys[idx],
		    (char *)buf + 2, cap - 2);
		if (rc == 0) {
			*len = strlen((char *)buf + 2);
			buf[0] = 0xd9;
			buf[1] = (uint8_t)*len;
			*len += 2;
		}
		return (rc == DISTKV_ENOTFOUND ? 1 : rc);
	case M_LMDB:
	case M_LMDB_TXN:
		if ((rc = mdb_txn_begin(tg->env, NULL, MDB_RDONLY, &txn)) != 0)
			return (-EIO);
		k.mv_data = (void *)(uintptr_t)key;
		k.mv_size = klen;
		rc = mdb_get(txn, tg->dbi, &k, &v);
		if (rc == 0 && v.mv_size <= cap) {
			memcpy(buf, v.mv_data, v.mv_size);
			*len = v.mv_size;
		}
		mdb_txn_abort(txn);
		return (rc == MDB_NOTFOUND ? 1 : rc == 0 ? 0 : -EIO);
	case M_DKV_GET:
	case M_SOCKET:
		rc = distkv_get(m == M_DKV_GET ? tg->conn : tg->sock,
		    tg->ks.paths[idx], 0, &e);
		if (rc == 0 && e.value.len <= cap) {
			memcpy(buf, e.value.data, e.value.len);
			*len = e.value.len;
		}
		distkv_entry_clear(&e);
		return (rc == DISTKV_ENOTFOUND ? 1 : rc);
	default:
		return (-EINVAL);
	}
}

/*
 * Read every key (or VERIFY_SAMPLE of them) through m and handle slot t
 * and compare it with the last value written; the never-written key n must
 * be missing.  Reading every key also faults the mapping in before timing.
 */
int
verify(struct target *tg, enum method m, int t, bool sample)
{
	long		n = tg->ks.n, i, step, bad = 0, checked = 0;
	uint8_t		want[VAL_WIRE], buf[256];
	size_t		len;
	int		rc;

	step = sample && n > VERIFY_SAMPLE ? n / VERIFY_SAMPLE : 1;
	for (i = 0; i < n; i += step) {
		value_make(i, tg->ks.gen[i], want);
		rc = get_one(tg, m, t, i, buf, sizeof(buf), &len);
		checked++;
		if (rc == 0 && len == VAL_WIRE && memcmp(buf, want,
		    VAL_WIRE) == 0)
			continue;
		if (bad++ < 5)
			fprintf(stderr, "%s: %s: key %ld: rc %d, read %zu bytes "
			    "\"%.*s\", want \"%.*s\"\n", tg->label,
			    method_name[m], i, rc, len,
			    len > 2 ? (int)(len < 80 ? len - 2 : 78) : 0,
			    (const char *)buf + 2, VAL_LEN,
			    (const char *)want + 2);
	}
	if ((rc = get_one(tg, m, t, n, buf, sizeof(buf), &len)) != 1) {
		fprintf(stderr, "%s: %s: a key never written: rc %d, not "
		    "\"not found\"\n", tg->label, method_name[m], rc);
		bad++;
	}
	tg->b->verified += checked;
	if (bad != 0) {
		fprintf(stderr, "%s: %s: %ld of %ld values wrong\n", tg->label,
		    method_name[m], bad, checked);
		return (-1);
	}
	return (0);
}

/* batch_ops gets of thread w's stream, from entry `from`. */
static void
run_batch(struct worker *w, long from, long count)
{
	struct measure		*ms = w->ms;
	struct target		*tg = ms->tg;
	const struct opkey	*ops = tg->ops[w->idx] + from, *k;
	/* the caller's key object OPS_AHEAD ops ahead (struct opkey);
	 * 0: each call finds its own cold */
	const long		 ahead = tg->b->o.cold_keys ? 0 : OPS_AHEAD;
	struct distkv_entry	 e;
	MDB_txn			*txn = NULL;
	MDB_val			 mk, mv;
	uint8_t			 buf[256] __attribute__((aligned(8)));
	uint64_t		 sum = 0, t0 = 0;
	size_t			 len;
	long			 i, bad = 0;

	switch (ms->m) {
	case M_HT:
		for (i = 0; i < count; i++) {
			k = &ops[i];
			if (ht_get(tg->ht, k->key, k->klen, buf, sizeof(buf),
			    &len) != 0)
				bad++;
			else
				sum += value_sum(buf, len);
		}
		break;
	case M_COPY:
		for (i = 0; i < count; i++) {
			k = &ops[i];
			if (copy_get(tg->copy, k->key, k->klen, buf,
			    sizeof(buf), &len) != 0)
				bad++;
			else
				sum += value_sum(buf, len);
		}
		break;
	case M_SHM:
		for (i = 0; i < count; i++) {
			k = &ops[i];
			if (shm_reader_get(tg->rd[w->idx], k->key, k->klen, buf,
			    sizeof(buf), &len, NULL) != 0)
				bad++;
			else
				sum += value_sum(buf, len);
		}
		break;
	case M_SHM_PATH:
		for (i = 0; i < count; i++) {
			k = &ops[i];
			__builtin_prefetch(k[ahead].path);
			if (distkv_shm_get(tg->ds[w->idx], k->path, buf,
			    sizeof(buf), &len, NULL) != 0)
				bad++;
			else
				sum += value_sum(buf, len);
		}
		break;
	case M_KEY:
		for (i = 0; i < count; i++) {
			k = &ops[i];
			__builtin_prefetch(k[ahead].pkey);
			if (distkv_key_get(tg->ds[w->idx], k->pkey, buf,
			    sizeof(buf), &len, NULL) != 0)
				bad++;
			else
				sum += value_sum(buf, len);
		}
		break;
	case M_KEY_STR:
		for (i = 0; i < count; i++) {
			k = &ops[i];
			__builtin_prefetch(k[ahead].pkey);
			if (distkv_key_get_str(tg->ds[w->idx], k->pkey,
			    (char *)buf, sizeof(buf)) != 0)
				bad++;
			else
				sum += str_sum((const char *)buf);
		}
		break;
	case M_LMDB:
		if (mdb_txn_begin(tg->env, NULL, MDB_RDONLY, &txn) != 0) {
			bad = count;
			break;
		}
		for (i = 0; i < count; i++) {
			k = &ops[i];
			mk.mv_data = (void *)(uintptr_t)k->key;
			mk.mv_size = k->klen;
			if (mdb_get(txn, tg->dbi, &mk, &mv) != 0 ||
			    mv.mv_size > sizeof(buf))
				bad++;
			else {
				memcpy(buf, mv.mv_data, mv.mv_size);
				sum += value_sum(buf, mv.mv_size);
			}
		}
		mdb_txn_abort(txn);
		break;
	case M_LMDB_TXN:
		if (mdb_txn_begin(tg->env, NULL, MDB_RDONLY, &txn) != 0) {
			bad = count;
			break;
		}
		mdb_txn_reset(txn);
		for (i = 0; i < count; i++) {
			k = &ops[i];
			mk.mv_data = (void *)(uintptr_t)k->key;
			mk.mv_size = k->klen;
			if (mdb_txn_renew(txn) != 0)
				bad++;
			else if (mdb_get(txn, tg->dbi, &mk, &mv) != 0 ||
			    mv.mv_size > sizeof(buf)) {
				bad++;
				mdb_txn_reset(txn);
			} else {
				memcpy(buf, mv.mv_data, mv.mv_size);
				mdb_txn_reset(txn);
				sum += value_sum(buf, mv.mv_size);
			}
		}
		mdb_txn_abort(txn);
		break;
	case M_DKV_GET:
	case M_SOCKET:
		for (i = 0; i < count; i++) {
			k = &ops[i];
			/* only the socket row keeps latencies: a clock read
			 * per get would be a third of a region read */
			if (ms->m == M_SOCKET)
				t0 = now_ns();
			__builtin_prefetch(k[ahead].path);
			if (distkv_get(ms->m == M_DKV_GET ? tg->conn : tg->sock,
			    k->path, 0, &e) != 0)
				bad++;
			else
				sum += value_sum(e.value.data, e.value.len);
			if (ms->m == M_SOCKET && tg->lat != NULL &&
			    tg->nlat < tg->nops)
				tg->lat[tg->nlat++] = now_ns() - t0;
			distkv_entry_clear(&e);
		}
		break;
	default:
		bad = count;
		break;
	}
	w->sum += sum;
	w->errors += bad;
}

static void *
worker_main(void *arg)
{
	struct worker	*w = arg;
	struct measure	*ms = w->ms;
	int		 b;

	w->rc = pin_cpu(client_cpu(ms->tg->b, w->idx));
	/* every worker passes every barrier, even after an error */
	for (b = 0; b <= ms->batches; b++) {
		pthread_barrier_wait(&ms->bar);
		w->t0[b] = now_ns();
		if (w->rc == 0)
			run_batch(w, (long)b * ms->batch_ops, ms->batch_ops);
		w->t1[b] = now_ns();
		/* latencies of the timed batches only */
		if (b == 0 && ms->m == M_SOCKET)
			ms->tg->nlat = 0;
	}
	return (NULL);
}

/*
 * Measure m with --threads[tci] threads: one warm-up batch, then the
 * timed batches, all threads starting each batch together.  A batch
 * lasts from the first thread's start to the last one's end; the result
 * is the median batch as ns per operation and thread.
 */
int
measure(struct target *tg, enum method m, int tci, long batch_ops)
{
	struct bench	*b = tg->b;
	struct measure	 ms;
	struct worker	 w[MAX_THREADS];
	struct result	*res = &tg->res[m][tci];
	double		 ns[MAX_BATCHES];
	uint64_t	 lo, hi, sum = 0;
	long		 errors = 0;
	int		 t, bi, nt = (int)b->o.threads[tci], rc = 0;

	memset(&ms, 0, sizeof(ms));
	memset(w, 0, sizeof(w));
	ms.tg = tg;
	ms.m = m;
	ms.nthreads = nt;
	ms.batch_ops = batch_ops;
	ms.batches = (int)b->o.batches;
	ms.w = w;
	fprintf(stderr, "%s: %s, %d thread%s\n", tg->label, method_name[m], nt,
	    nt > 1 ? "s" : "");
	if (pthread_barrier_init(&ms.bar, NULL, (unsigned)nt) != 0)
		return (-1);
	for (t = 0; t < nt; t++) {
		w[t].ms = &ms;
		w[t].idx = t;
		if (pthread_create(&w[t].th, NULL, worker_main, &w[t]) != 0) {
			/* the others wait at the barrier for good */
			fprintf(stderr, "bench: pthread_create failed\n");
			on_signal(SIGABRT);
		}
	}
	for (t = 0; t < nt; t++)
		pthread_join(w[t].th, NULL);
	pthread_barrier_destroy(&ms.bar);
	for (t = 0; t < nt; t++) {
		if (w[t].rc != 0) {
			fprintf(stderr, "bench: thread %d on cpu %ld: %s\n", t,
			    client_cpu(b, t), strerror(-w[t].rc));
			rc = -1;
		}
		errors += w[t].errors;
		sum += w[t].sum;
	}
	if (errors != 0) {
		fprintf(stderr, "%s: %s: %ld gets failed\n", tg->label,
		    method_name[m], errors);
		rc = -1;
	}
	if (rc != 0)
		return (rc);
	for (bi = 1; bi <= ms.batches; bi++) {
		lo = w[0].t0[bi];
		hi = w[0].t1[bi];
		for (t = 1; t < nt; t++) {
			if (w[t].t0[bi] < lo)
				lo = w[t].t0[bi];
			if (w[t].t1[bi] > hi)
				hi = w[t].t1[bi];
		}
		ns[bi - 1] = (double)(hi - lo) / (double)batch_ops;
	}
	if (res->nr < MAX_ROUNDS)
		res->rn[res->nr++] = median(ns, ms.batches);
	memcpy(ns, res->rn, (size_t)res->nr * sizeof(ns[0]));
	res->ns = median(ns, res->nr);
	res->sum = sum;
	res->ops = batch_ops * (ms.batches + 1);
	res->done = true;
	b->checksum += sum;
	return (0);
}

/*
 * HOT_OPS gets of key 0 through m (after a warm-up), median of five runs,
 * ns/op: everything in cache, so this is the cost of the calls alone.
 */
double
hot_measure(struct target *tg, enum method m)
{
	double		ns[5];
	uint8_t		buf[256];
	uint64_t	t0;
	size_t		len;
	long		i;
	int		r;

	for (i = 0; i < HOT_OPS / 10; i++)
		(void)get_one(tg, m, 0, 0, buf, sizeof(buf), &len);
	for (r = 0; r < 5; r++) {
		t0 = now_ns();
		if (m == M_KEY_STR) {
			/* as the timed loop does: get_one's rebuild of the
			 * msgpack form (a strlen) is for comparing values */
			for (i = 0; i < HOT_OPS / 5; i++)
				if (distkv_key_get_str(tg->ds[0], tg->ks.keys[0],
				    (char *)buf, sizeof(buf)) != 0)
					return (-1);
		} else
			for (i = 0; i < HOT_OPS / 5; i++)
				if (get_one(tg, m, 0, 0, buf, sizeof(buf),
				    &len) != 0)
					return (-1);
		ns[r] = (double)(now_ns() - t0) / (HOT_OPS / 5);
		tg->b->checksum += m == M_KEY_STR ?
		    str_sum((const char *)buf) : value_sum(buf, len);
	}
	return (median(ns, 5));
}
