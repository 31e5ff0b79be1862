/*
 * bigtab: zeroed memory for the agent's large hash tables (the tree's
 * index, the per-node tick maps).  Their slots are probed at random, so
 * at millions of entries each probe is a TLB miss and each first touch a
 * page fault; from BIGTAB_HUGE bytes on they are mapped with transparent
 * huge pages asked for (madvise), which cuts both by 512.
 */
#ifndef DISTKV_BIGTAB_H
#define DISTKV_BIGTAB_H

#include <stddef.h>

#define BIGTAB_HUGE (4u << 20)

/* nmemb * size zeroed bytes, or NULL (overflow, out of memory). */
void *bigtab_calloc(size_t nmemb, size_t size);
/* Free p from bigtab_calloc(nmemb, size) (the same sizes). */
void bigtab_free(void *p, size_t nmemb, size_t size);

#endif
