/* penalty: see penalty.h. */
#include <netinet/in.h>
#include <string.h>

#include "penalty.h"

bool
penalty_addr_key(const struct sockaddr_storage *ss, uint8_t out[16])
{
	memset(out, 0, 16);
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)ss;

		out[10] = out[11] = 0xff;
		memcpy(out + 12, &in->sin_addr, 4);
		return true;
	}
	if (ss->ss_family == AF_INET6) {
		memcpy(out, &((const struct sockaddr_in6 *)(const void *)ss)->
		    sin6_addr, 16);
		return true;
	}
	return false;
}

struct penalty *
penalty_lookup(struct penalty_table *t, const uint8_t k[16], double now,
    bool create)
{
	static const uint8_t zero[16];
	struct penalty *oldest = &t->slot[0];

	if (memcmp(k, zero, 16) == 0)
		return NULL;
	for (int i = 0; i < PENALTY_SLOTS; i++) {
		struct penalty *p = &t->slot[i];

		if (memcmp(p->key, k, 16) == 0) {
			if (now - p->last > PENALTY_FORGET)
				p->failures = 0;
			return p;
		}
		if (p->last < oldest->last)
			oldest = p;
	}
	if (!create)
		return NULL;
	memset(oldest, 0, sizeof(*oldest));
	memcpy(oldest->key, k, 16);
	return oldest;
}

void
penalty_add(struct penalty *p, double now, bool free_first)
{
	unsigned n;

	p->failures++;
	p->last = now;
	if (free_first && p->failures == 1) {
		p->until = p->last;
		return;
	}
	n = p->failures - (free_first ? 1 : 0);
	p->until = p->last + (n >= 10 ? PENALTY_MAX :
	    PENALTY_FIRST * (double)(1u << (n - 1)));
	if (p->until > p->last + PENALTY_MAX)
		p->until = p->last + PENALTY_MAX;
}

double
penalty_wait(const struct penalty *p, double now)
{
	return p != NULL && p->failures > 0 && now < p->until ?
	    p->until - now : 0;
}
