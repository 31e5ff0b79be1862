/* Free space of the writer's arena: see holes.h. */
#include <stdlib.h>
#include <string.h>

#include "holes.h"
#include "layout.h"

/* A long hole is looked for among this many of the latest only. */
#define SHM_HOLES_BIG_SCAN 256u

static void
class_mark(struct shm_holes *h, uint32_t c, bool nonempty)
{
	uint64_t bit = (uint64_t)1 << (c % 64);

	if (nonempty)
		h->nonempty[c / 64] |= bit;
	else
		h->nonempty[c / 64] &= ~bit;
}

/* The first class >= c with a hole, or SHM_HOLES_CLASSES. */
static uint32_t
class_next(const struct shm_holes *h, uint32_t c)
{
	while (c < SHM_HOLES_CLASSES) {
		uint64_t w = h->nonempty[c / 64] >> (c % 64);

		if (w != 0)
			return c + (uint32_t)__builtin_ctzll(w);
		c = (c / 64 + 1) * 64;
	}
	return SHM_HOLES_CLASSES;
}

static bool
grow(void **p, uint32_t *cap, size_t elem)
{
	uint32_t ncap = *cap != 0 ? *cap * 2 : 16;
	void *np;

	if (ncap < *cap || (np = realloc(*p, (size_t)ncap * elem)) == NULL)
		return false;
	*p = np;
	*cap = ncap;
	return true;
}

void
shm_holes_add(struct shm_holes *h, uint64_t off, uint64_t len)
{
	if (len <= SHM_HOLES_EXACT_MAX) {
		uint32_t c = (uint32_t)(len / 8);
		struct shm_hole_list *l = &h->exact[c];

		if (l->n == l->cap && !grow((void **)&l->off8, &l->cap,
		    sizeof(*l->off8)))
			return;
		l->off8[l->n++] = (uint32_t)(off >> SHM_OFF_SHIFT);
		class_mark(h, c, true);
	} else {
		if (h->nbig == h->capbig && !grow((void **)&h->big,
		    &h->capbig, sizeof(*h->big)))
			return;
		h->big[h->nbig++] = (struct shm_big_hole){ off, len };
	}
	h->bytes += len;
}

static uint64_t
class_pop(struct shm_holes *h, uint32_t c)
{
	struct shm_hole_list *l = &h->exact[c];
	uint64_t off = (uint64_t)l->off8[--l->n] << SHM_OFF_SHIFT;

	if (l->n == 0)
		class_mark(h, c, false);
	h->bytes -= (uint64_t)c * 8;
	return off;
}

bool
shm_holes_take_exact(struct shm_holes *h, uint64_t len, uint64_t *off)
{
	if (len > SHM_HOLES_EXACT_MAX || h->exact[len / 8].n == 0)
		return false;
	*off = class_pop(h, (uint32_t)(len / 8));
	return true;
}

bool
shm_holes_take_split(struct shm_holes *h, uint64_t len, uint64_t *off)
{
	uint64_t hoff, hlen;
	uint32_t c = SHM_HOLES_CLASSES;

	/* new keys into a region without holes: the common case of a load */
	if (h->bytes < len)
		return false;
	if (len < SHM_HOLES_EXACT_MAX)
		c = class_next(h, (uint32_t)(len / 8) + 1);
	if (c < SHM_HOLES_CLASSES) {
		hlen = (uint64_t)c * 8;
		hoff = class_pop(h, c);
	} else {
		uint32_t i, stop = h->nbig > SHM_HOLES_BIG_SCAN ?
		    h->nbig - SHM_HOLES_BIG_SCAN : 0;

		for (i = h->nbig; i > stop; i--)
			if (h->big[i - 1].len >= len)
				break;
		if (i == stop)
			return false;
		hoff = h->big[i - 1].off;
		hlen = h->big[i - 1].len;
		h->big[i - 1] = h->big[--h->nbig];
		h->bytes -= hlen;
	}
	*off = hoff;
	/* a rest too short for a record stays garbage until a compaction */
	if (hlen - len >= SHM_RECORD_MIN)
		shm_holes_add(h, hoff + len, hlen - len);
	return true;
}

void
shm_holes_clear(struct shm_holes *h)
{
	for (uint32_t c = 0; c < SHM_HOLES_CLASSES; c++)
		h->exact[c].n = 0;
	memset(h->nonempty, 0, sizeof(h->nonempty));
	h->nbig = 0;
	h->bytes = 0;
}

void
shm_holes_free(struct shm_holes *h)
{
	for (uint32_t c = 0; c < SHM_HOLES_CLASSES; c++)
		free(h->exact[c].off8);
	free(h->big);
	memset(h, 0, sizeof(*h));
}
