/*
 * bench_shm (see bench_shm.c): the keys, their values and the streams of
 * keys the reads run through.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_shm.h"

/* The last element of the key paths: mean msgpack key about 29 bytes. */
static const char *const fields[NFIELDS] = {
	"port", "hostname", "timeout_ms", "listen_addr", "max_conns",
	"log_level", "tls_cert_path", "upstream",
};

/* splitmix64: the op streams, seeded per key count and thread. */
static uint64_t
rng_next(uint64_t *s)
{
	uint64_t	z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return (z ^ (z >> 31));
}

/* ---- keys and values ---- */

/*
 * The region key of svc/NNNNNN/config/<field>: the canonical msgpack array
 * of four strings, each shorter than 32 bytes and so a fixstr.  The agent
 * and libdistkv encode paths the same way (docs/shm.md); verify() checks it
 * by finding these keys with distkv_shm_get on paths and on the agent's
 * region.
 */
static size_t
key_encode(long i, uint8_t *out)
{
	const char	*f = fields[i % NFIELDS];
	char		 num[24];
	size_t		 nl, fl, o = 0;

	nl = (size_t)snprintf(num, sizeof(num), "%06ld", i);
	fl = strlen(f);
	out[o++] = 0x94;
	out[o++] = 0xa3;
	memcpy(out + o, "svc", 3);
	o += 3;
	out[o++] = (uint8_t)(0xa0 | nl);
	memcpy(out + o, num, nl);
	o += nl;
	out[o++] = 0xa6;
	memcpy(out + o, "config", 6);
	o += 6;
	out[o++] = (uint8_t)(0xa0 | fl);
	memcpy(out + o, f, fl);
	o += fl;
	return (o);
}

static int
path_make(long i, distkv_path **out)
{
	const char	*f = fields[i % NFIELDS];
	distkv_path	*p;
	char		 num[24];
	int		 rc;

	snprintf(num, sizeof(num), "%06ld", i);
	if ((rc = distkv_path_new(&p)) != 0)
		return (rc);
	if ((rc = distkv_path_push_str(p, "svc", 3)) != 0 ||
	    (rc = distkv_path_push_str(p, num, strlen(num))) != 0 ||
	    (rc = distkv_path_push_str(p, "config", 6)) != 0 ||
	    (rc = distkv_path_push_str(p, f, strlen(f))) != 0) {
		distkv_path_free(p);
		return (rc);
	}
	*out = p;
	return (0);
}

/*
 * The msgpack value of key's gen-th write: a str 8 of VAL_LEN bytes that
 * spell out key and generation, so reading another key's value or an older
 * one fails the comparison.
 */
void
value_make(long key, uint32_t gen, uint8_t *wire)
{
	char	text[VAL_LEN + 1];
	int	n, i;

	n = snprintf(text, sizeof(text), "k%07ld:g%010u:", key, gen);
	for (i = n; i < VAL_LEN; i++)
		text[i] = (char)('a' + (unsigned long)(key + gen + i) % 26);
	wire[0] = 0xd9;
	wire[1] = VAL_LEN;
	memcpy(wire + 2, text, VAL_LEN);
}

int
keyset_build(struct keyset *ks, long n, bool paths)
{
	long	i;
	double	total = 0;

	memset(ks, 0, sizeof(*ks));
	ks->n = n;
	if ((ks->key = calloc((size_t)n + 1, sizeof(*ks->key))) == NULL ||
	    (ks->klen = calloc((size_t)n + 1, 1)) == NULL ||
	    (ks->gen = calloc((size_t)n + 1, sizeof(*ks->gen))) == NULL)
		return (-ENOMEM);
	/* key n is never written: the missing-key check */
	for (i = 0; i <= n; i++) {
		ks->klen[i] = (uint8_t)key_encode(i, ks->key[i]);
		if (i < n)
			total += ks->klen[i];
	}
	ks->mean_klen = total / (double)n;
	if (!paths)
		return (0);
	if ((ks->paths = calloc((size_t)n + 1, sizeof(*ks->paths))) == NULL)
		return (-ENOMEM);
	if ((ks->keys = calloc((size_t)n + 1, sizeof(*ks->keys))) == NULL)
		return (-ENOMEM);
	for (i = 0; i <= n; i++)
		if (path_make(i, &ks->paths[i]) != 0 ||
		    distkv_key_new(ks->paths[i], &ks->keys[i]) != 0)
			return (-ENOMEM);
	return (0);
}

void
keyset_free(struct keyset *ks)
{
	long	i;

	if (ks->paths != NULL)
		for (i = 0; i <= ks->n; i++)
			distkv_path_free(ks->paths[i]);
	if (ks->keys != NULL)
		for (i = 0; i <= ks->n; i++)
			distkv_key_free(ks->keys[i]);
	free(ks->paths);
	free(ks->keys);
	free(ks->key);
	free(ks->klen);
	free(ks->gen);
	memset(ks, 0, sizeof(*ks));
}

/*
 * One stream of random keys per thread, long enough for the warm-up batch
 * and the timed ones.  Seeded by key count and thread only, so the agent
 * run reads the same keys in the same order as the in-process run.
 */
int
ops_build(struct target *tg)
{
	const struct bench	*b = tg->b;
	uint64_t		 seed, r;
	long			 i;
	int			 t;

	tg->nops = b->batch_ops * (b->o.batches + 1);
	for (t = 0; t < b->maxthreads; t++) {
		struct opkey	*ops;

		if ((ops = aligned_alloc(sizeof(*ops), (size_t)(tg->nops +
		    OPS_AHEAD) * sizeof(*ops))) == NULL)
			return (-ENOMEM);
		tg->ops[t] = ops;
		seed = 0x5eed0000ULL + (uint64_t)tg->ks.n * 131 + (uint64_t)t;
		for (i = 0; i < tg->nops + OPS_AHEAD; i++) {
			r = rng_next(&seed) % (uint64_t)tg->ks.n;
			ops[i].idx = (uint32_t)r;
			ops[i].klen = tg->ks.klen[r];
			memcpy(ops[i].key, tg->ks.key[r], KEY_MAX);
			ops[i].path = tg->ks.paths != NULL ?
			    tg->ks.paths[r] : NULL;
			ops[i].pkey = tg->ks.keys != NULL ?
			    tg->ks.keys[r] : NULL;
		}
	}
	return (0);
}
