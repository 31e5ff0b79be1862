/*
 * strget: reads by path text on a connection (distkv_get_str and
 * friends), for the common case of a program that reads a few settings
 * by name and wants no distkv_path object.
 *
 * The text is distkv_path_parse's.  Each handle keeps a small
 * direct-mapped cache from text to prepared key, so a name read again
 * costs one hash of the text, one compare and the region read; a miss
 * parses the text once.  The region serves the read when the handle
 * mapped it, it is fresh and no distkv_root is in force (its keys are full
 * paths); else, or if the region kept changing under the read, the agent
 * answers over the socket, as distkv_get does.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "distkv.h"
#include "client_internal.h"
#include "reader.h"

#define STRCACHE_SLOTS	64	/* a program's settings, not a table */
#define STRCACHE_TEXT	96	/* longer texts are parsed every time */

struct strslot {
	size_t len;			/* 0: empty */
	char text[STRCACHE_TEXT];
	distkv_key *key;
};

struct strcache {
	struct strslot slot[STRCACHE_SLOTS];
};

void
strcache_free(struct strcache *sc)
{
	if (sc == NULL)
		return;
	for (size_t i = 0; i < STRCACHE_SLOTS; i++)
		distkv_key_free(sc->slot[i].key);
	free(sc);
}

/* The prepared key of text (cached, borrowed), or NULL with *rc set. */
static const distkv_key *
key_for(distkv *c, const char *text, size_t len, int *rc)
{
	struct strcache **scp = client_strcache(c);
	struct strslot *sl;
	distkv_key *k;

	if (len >= STRCACHE_TEXT) {
		*rc = 1;	/* not cached: the caller parses */
		return (NULL);
	}
	if (*scp == NULL && (*scp = calloc(1, sizeof(**scp))) == NULL) {
		*rc = -ENOMEM;
		return (NULL);
	}
	sl = &(*scp)->slot[shm_key_hash((const uint8_t *)text, len) &
	    (STRCACHE_SLOTS - 1)];
	if (sl->len == len && memcmp(sl->text, text, len) == 0)
		return (sl->key);
	if ((*rc = distkv_key_parse(text, &k)) != 0)
		return (NULL);
	distkv_key_free(sl->key);
	sl->key = k;
	memcpy(sl->text, text, len);
	sl->len = len;
	return (k);
}

enum strget_type { SG_STR, SG_INT, SG_DOUBLE, SG_BOOL };

/* The typed read of one value's msgpack bytes (the socket path). */
static int
decode(const struct distkv_value *v, enum strget_type type, void *out,
    size_t cap)
{
	const char *s;
	size_t slen;
	int rc;

	switch (type) {
	case SG_STR:
		if ((rc = distkv_value_get_str(v->data, v->len, &s, &slen)) != 0)
			return (rc);
		if (slen >= cap)
			return (DISTKV_ETOOSMALL);
		memcpy(out, s, slen);
		((char *)out)[slen] = '\0';
		return (0);
	case SG_INT:
		return (distkv_value_get_int(v->data, v->len, out));
	case SG_DOUBLE:
		return (distkv_value_get_double(v->data, v->len, out));
	case SG_BOOL:
		return (distkv_value_get_bool(v->data, v->len, out));
	}
	return (DISTKV_EINVAL);
}

static int
shm_typed(distkv_shm *s, const distkv_key *k, enum strget_type type,
    void *out, size_t cap)
{
	switch (type) {
	case SG_STR:
		return (distkv_key_get_str(s, k, out, cap));
	case SG_INT:
		return (distkv_key_get_int(s, k, out));
	case SG_DOUBLE:
		return (distkv_key_get_double(s, k, out));
	case SG_BOOL:
		return (distkv_key_get_bool(s, k, out));
	}
	return (DISTKV_EINVAL);
}

static int
strget(distkv *c, const char *text, enum strget_type type, void *out,
    size_t cap)
{
	struct distkv_entry e;
	distkv_shm *s;
	distkv_path *p;
	int rc = 0;

	if (c == NULL || text == NULL || out == NULL)
		return (DISTKV_EINVAL);
	if (type == SG_STR && cap == 0)
		return (DISTKV_ETOOSMALL);
	s = distkv_shm_of(c);
	if (s != NULL && !client_has_root(c) && shm_client_fresh(s)) {
		const distkv_key *k = key_for(c, text, strlen(text), &rc);

		if (k != NULL) {
			rc = shm_typed(s, k, type, out, cap);
			/* a region that kept changing: ask the agent */
			if (rc != DISTKV_EBUSY && rc != DISTKV_ECORRUPT)
				return (rc);
		} else if (rc < 0)
			return (rc);
	}
	if ((rc = distkv_path_parse(text, &p)) != 0)
		return (rc);
	rc = distkv_get(c, p, 0, &e);
	distkv_path_free(p);
	if (rc == 0)
		rc = decode(&e.value, type, out, cap);
	distkv_entry_clear(&e);
	return (rc);
}

int
distkv_get_str(distkv *c, const char *path, char *buf, size_t cap)
{
	return (strget(c, path, SG_STR, buf, cap));
}

int
distkv_get_int(distkv *c, const char *path, int64_t *out)
{
	return (strget(c, path, SG_INT, out, 0));
}

int
distkv_get_double(distkv *c, const char *path, double *out)
{
	return (strget(c, path, SG_DOUBLE, out, 0));
}

int
distkv_get_bool(distkv *c, const char *path, bool *out)
{
	return (strget(c, path, SG_BOOL, out, 0));
}
