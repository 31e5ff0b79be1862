/* bigtab: see bigtab.h. */
#include <sys/mman.h>

#include <stdint.h>
#include <stdlib.h>

#include "bigtab.h"

#define HUGE_PAGE (2u << 20)

void *
bigtab_calloc(size_t nmemb, size_t size)
{
	size_t bytes, map;
	uint8_t *p, *aligned;

	if (size != 0 && nmemb > SIZE_MAX / size)
		return NULL;
	bytes = nmemb * size;
	if (bytes < BIGTAB_HUGE)
		return calloc(nmemb, size);
	/* whole pages, and one huge page more to start on its boundary */
	bytes = (bytes + 4095) & ~(size_t)4095;
	map = bytes + HUGE_PAGE;
	p = mmap(NULL, map, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	aligned = (uint8_t *)(((uintptr_t)p + HUGE_PAGE - 1) &
	    ~(uintptr_t)(HUGE_PAGE - 1));
	/* give back the head and tail around the aligned table */
	if (aligned > p)
		munmap(p, (size_t)(aligned - p));
	if (aligned + bytes < p + map)
		munmap(aligned + bytes, (size_t)(p + map - (aligned + bytes)));
	/* a hint: without huge pages the table works the same */
	(void)madvise(aligned, bytes, MADV_HUGEPAGE);
	return aligned;
}

void
bigtab_free(void *p, size_t nmemb, size_t size)
{
	if (p == NULL)
		return;
	if (nmemb * size < BIGTAB_HUGE)
		free(p);
	else
		munmap(p, nmemb * size);
}
