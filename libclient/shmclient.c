/*
 * shmclient: the distkv_shm_* part of libdistkv, a thin layer over
 * shm/reader.c that turns paths into region keys and reader errors into
 * DISTKV_E* codes.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_internal.h"
#include "distkv.h"
#include "proto.h"
#include "reader.h"

/* Readers consider the agent gone after this long without a heartbeat. */
#define SHM_STALE_MS 3000

struct distkv_shm {
	struct shm_reader *r;
};

/*
 * A prepared key: the region key of a path (its canonical msgpack array,
 * the agent's bytes) and its hash, made once.  It holds nothing of any
 * region (no slot, no offset): the hash depends on the bytes alone
 * (shm_reader_get_hashed), so a key stays good across region
 * replacements, agent restarts and any number of regions.
 */
struct distkv_key {
	uint64_t hash;
	size_t len;
	uint8_t bytes[];
};

/* A key: the one kept in the path, else built on the stack or the heap. */
struct keybuf {
	uint8_t small[512];
	const uint8_t *p;
	uint8_t *heap;
	size_t len;
	uint64_t hash;
};

/* The region key of p and its hash. */
static int
key_of(const distkv_path *p, struct keybuf *k)
{
	const struct path_keycache *kc = p != NULL ? path_keycache(p) : NULL;
	size_t n;

	k->heap = NULL;
	if (kc != NULL && kc->len != 0) {
		k->p = kc->key;
		k->len = kc->len;
		k->hash = kc->hash;
		return 0;
	}
	n = path_key(p, k->small, sizeof(k->small));
	k->p = k->small;
	if (n > sizeof(k->small)) {
		if ((k->heap = malloc(n)) == NULL)
			return -ENOMEM;
		n = path_key(p, k->heap, n);
		k->p = k->heap;
	}
	k->len = n;
	k->hash = shm_key_hash(k->p, n);
	return 0;
}

static void
key_free(struct keybuf *k)
{
	free(k->heap);
}

static int
shm_err(int rc)
{
	switch (rc) {
	case 0:
		return 0;
	case -ENOENT:
		return DISTKV_ENOTFOUND;
	case -ENOBUFS:
		return DISTKV_ETOOSMALL;
	case -EAGAIN:
		return DISTKV_EBUSY;
	case -EBADMSG:
		return DISTKV_ECORRUPT;
	default:
		return rc;
	}
}

int
distkv_shm_open(const char *path, distkv_shm **out)
{
	distkv_shm *s;
	int rc;

	*out = NULL;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return -ENOMEM;
	if ((rc = shm_reader_open(path, &s->r)) != 0) {
		free(s);
		return shm_err(rc);
	}
	*out = s;
	return 0;
}

void
distkv_shm_close(distkv_shm *s)
{
	if (s == NULL)
		return;
	shm_reader_close(s->r);
	free(s);
}

/*
 * Every read of this file ends here: one lookup of key bytes whose hash
 * is known.  The region's rules (never torn, bounds-checked, re-mapped
 * when replaced) are shm_reader_get_hashed's; nothing here touches the
 * mapping.  The hit returns before any error mapping.
 */
static inline int
get_hashed(distkv_shm *s, const uint8_t *key, size_t klen, uint64_t hash,
    void *buf, size_t cap, size_t *len, struct distkv_shm_meta *m)
{
	struct shm_read_meta rm;
	int rc;

	*len = 0;
	rc = shm_reader_get_hashed(s->r, key, klen, hash, buf, cap, len,
	    m != NULL ? &rm : NULL);
	if (__builtin_expect(rc != 0, 0))
		return shm_err(rc);
	if (m != NULL) {
		m->tick = rm.tick;
		m->tock = rm.tock;
		memcpy(m->node, rm.node, sizeof(m->node));
	}
	return 0;
}

/*
 * get_str's other cases: a value that is no str, a str too long for cap,
 * one that was read but does not fit with its header (rc
 * DISTKV_ETOOSMALL, *len its size), and every error.  Out of line, so
 * the hit path carries no 256-byte buffer.
 */
static int __attribute__((noinline))
get_str_other(distkv_shm *s, const uint8_t *key, size_t klen, uint64_t hash,
    char *buf, size_t cap, int rc, size_t len)
{
	uint8_t stack[256], *tmp = (uint8_t *)buf;
	const char *str;
	size_t slen;

	if (rc == DISTKV_ETOOSMALL) {
		/* the msgpack str header takes at most 5 bytes */
		if (len > cap + 5)
			return DISTKV_ETOOSMALL;
		tmp = len <= sizeof(stack) ? stack : malloc(len);
		if (tmp == NULL)
			return -ENOMEM;
		rc = get_hashed(s, key, klen, hash, tmp, len, &len, NULL);
	}
	/* not a str, or a long one: the reader says which error */
	if (rc == 0 && (rc = distkv_value_get_str(tmp, len, &str, &slen)) ==
	    0) {
		if (slen >= cap)
			rc = DISTKV_ETOOSMALL;
		else {
			memmove(buf, str, slen);
			buf[slen] = '\0';
		}
	}
	if (tmp != (uint8_t *)buf && tmp != stack)
		free(tmp);
	return rc;
}

/*
 * A string value as a C string in the caller's buffer: the reader copies
 * the str's body out of the region and adds the NUL, in one lookup.  If
 * the value is no str or does not fit, it is read whole to say which
 * (the rare path, two lookups).
 */
static inline int
get_str(distkv_shm *s, const uint8_t *key, size_t klen, uint64_t hash,
    char *buf, size_t cap)
{
	size_t len, hdr, body;
	int rc;

	if (cap == 0)
		return DISTKV_ETOOSMALL;
	rc = shm_reader_get_str_hashed(s->r, key, klen, hash, buf, cap);
	if (__builtin_expect(rc == 0, 1))
		return 0;
	if (rc != -ENOBUFS)
		return shm_err(rc);
	rc = get_hashed(s, key, klen, hash, buf, cap, &len, NULL);
	if (rc == 0 && shm_str_body((const uint8_t *)buf, len, &hdr, &body) &&
	    body < cap) {
		/* changed into a str that fits since the first read */
		memmove(buf, buf + hdr, body);
		buf[body] = '\0';
		return 0;
	}
	return get_str_other(s, key, klen, hash, buf, cap, rc, len);
}

/* The scalar types: read into a small buffer, then decode; a value too
 * long for it is no number or bool. */
enum scalar { SC_INT, SC_DOUBLE, SC_BOOL };

static int
get_scalar(distkv_shm *s, const uint8_t *key, size_t klen, uint64_t hash,
    enum scalar type, void *out)
{
	uint8_t buf[16];
	size_t len;
	int rc = get_hashed(s, key, klen, hash, buf, sizeof(buf), &len, NULL);

	if (rc != 0)
		return rc == DISTKV_ETOOSMALL ? DISTKV_ETYPE : rc;
	switch (type) {
	case SC_INT:
		return distkv_value_get_int(buf, len, out);
	case SC_DOUBLE:
		return distkv_value_get_double(buf, len, out);
	case SC_BOOL:
		return distkv_value_get_bool(buf, len, out);
	}
	return DISTKV_EINVAL;
}

/* ---- by path ---- */

int
distkv_shm_get(distkv_shm *s, const distkv_path *p, void *buf, size_t cap,
    size_t *len, struct distkv_shm_meta *m)
{
	const struct path_keycache *kc = p != NULL ? path_keycache(p) : NULL;
	struct keybuf k;
	int rc;

	/* a path's cached key: no encoding, no hash, nothing to free */
	if (__builtin_expect(kc != NULL && kc->len != 0, 1))
		return get_hashed(s, kc->key, kc->len, kc->hash, buf, cap, len,
		    m);
	*len = 0;
	if ((rc = key_of(p, &k)) != 0)
		return rc;
	rc = get_hashed(s, k.p, k.len, k.hash, buf, cap, len, m);
	key_free(&k);
	return rc;
}

/*
 * distkv_get's region read (client.c): the value, copied into v, and the
 * tock.  Reads the reader's metadata directly (no copy into a public
 * distkv_shm_meta) and the value into a stack buffer first, so the only
 * allocation is v's own bytes, which the caller owns.
 */
int
shm_client_get_value(distkv_shm *s, const distkv_path *p,
    struct distkv_value *v, uint64_t *tock)
{
	const struct path_keycache *kc = p != NULL ? path_keycache(p) : NULL;
	struct shm_read_meta rm;
	struct keybuf k;
	uint8_t small[256], *big = NULL;
	size_t len = 0;
	int rc;

	if (__builtin_expect(kc != NULL && kc->len != 0, 1)) {
		k.p = kc->key;
		k.len = kc->len;
		k.hash = kc->hash;
		k.heap = NULL;
	} else if ((rc = key_of(p, &k)) != 0)
		return rc;
	rc = shm_reader_get_hashed(s->r, k.p, k.len, k.hash, small,
	    sizeof(small), &len, &rm);
	if (__builtin_expect(rc == 0, 1))
		rc = distkv_value_from_msgpack(v, small, len);
	else if (rc == -ENOBUFS) {
		if ((big = malloc(len)) == NULL)
			rc = -ENOMEM;
		else if ((rc = shm_reader_get_hashed(s->r, k.p, k.len, k.hash,
		    big, len, &len, &rm)) == 0)
			rc = distkv_value_from_msgpack(v, big, len);
		else if (rc == -ENOBUFS)
			rc = DISTKV_EBUSY;	/* grew again: ask the agent */
		else
			rc = shm_err(rc);
		free(big);
	} else
		rc = shm_err(rc);
	key_free(&k);
	if (rc == 0)
		*tock = rm.tock;
	return rc;
}

int
distkv_shm_get_str(distkv_shm *s, const distkv_path *p, char *buf,
    size_t cap)
{
	struct keybuf k;
	int rc;

	if ((rc = key_of(p, &k)) != 0)
		return rc;
	rc = get_str(s, k.p, k.len, k.hash, buf, cap);
	key_free(&k);
	return rc;
}

static int
path_scalar(distkv_shm *s, const distkv_path *p, enum scalar type, void *out)
{
	struct keybuf k;
	int rc;

	if ((rc = key_of(p, &k)) != 0)
		return rc;
	rc = get_scalar(s, k.p, k.len, k.hash, type, out);
	key_free(&k);
	return rc;
}

int
distkv_shm_get_int(distkv_shm *s, const distkv_path *p, int64_t *out)
{
	return path_scalar(s, p, SC_INT, out);
}

int
distkv_shm_get_double(distkv_shm *s, const distkv_path *p, double *out)
{
	return path_scalar(s, p, SC_DOUBLE, out);
}

int
distkv_shm_get_bool(distkv_shm *s, const distkv_path *p, bool *out)
{
	return path_scalar(s, p, SC_BOOL, out);
}

/* ---- by prepared key ---- */

int
distkv_key_new(const distkv_path *p, distkv_key **out)
{
	struct keybuf kb;
	distkv_key *k;
	int rc;

	*out = NULL;
	if (p == NULL)
		return DISTKV_EINVAL;
	if ((rc = key_of(p, &kb)) != 0)
		return rc;
	if ((k = malloc(sizeof(*k) + kb.len)) == NULL) {
		key_free(&kb);
		return -ENOMEM;
	}
	k->hash = kb.hash;
	k->len = kb.len;
	memcpy(k->bytes, kb.p, kb.len);
	key_free(&kb);
	*out = k;
	return 0;
}

int
distkv_key_parse(const char *text, distkv_key **out)
{
	distkv_path *p;
	int rc;

	*out = NULL;
	if ((rc = distkv_path_parse(text, &p)) != 0)
		return rc;
	rc = distkv_key_new(p, out);
	distkv_path_free(p);
	return rc;
}

void
distkv_key_free(distkv_key *k)
{
	free(k);
}

int
distkv_key_get(distkv_shm *s, const distkv_key *k, void *buf, size_t cap,
    size_t *len, struct distkv_shm_meta *m)
{
	return get_hashed(s, k->bytes, k->len, k->hash, buf, cap, len, m);
}

int
distkv_key_get_str(distkv_shm *s, const distkv_key *k, char *buf,
    size_t cap)
{
	return get_str(s, k->bytes, k->len, k->hash, buf, cap);
}

int
distkv_key_get_int(distkv_shm *s, const distkv_key *k, int64_t *out)
{
	return get_scalar(s, k->bytes, k->len, k->hash, SC_INT, out);
}

int
distkv_key_get_double(distkv_shm *s, const distkv_key *k, double *out)
{
	return get_scalar(s, k->bytes, k->len, k->hash, SC_DOUBLE, out);
}

int
distkv_key_get_bool(distkv_shm *s, const distkv_key *k, bool *out)
{
	return get_scalar(s, k->bytes, k->len, k->hash, SC_BOOL, out);
}

uint64_t
distkv_shm_changes(distkv_shm *s)
{
	return shm_reader_changes(s->r);
}

uint32_t
distkv_shm_counter(distkv_shm *s)
{
	return shm_reader_seq(s->r);
}

int
distkv_shm_wait(distkv_shm *s, uint32_t counter, int timeout_ms)
{
	int rc = shm_reader_wait(s->r, counter, timeout_ms);

	return rc == -ETIMEDOUT ? DISTKV_ETIMEDOUT : rc;
}

bool
shm_client_fresh(distkv_shm *s)
{
	/* the agent beats every 250 ms: 1 s without one means trouble */
	if (shm_reader_fresh(s->r, 1000))
		return true;
	/* replaced by a grown or compacted region: map that one and ask
	 * again (the only system calls on this path) */
	(void)shm_reader_seq(s->r);
	return shm_reader_fresh(s->r, 1000);
}

int
distkv_shm_alive(distkv_shm *s)
{
	return shm_reader_alive(s->r, SHM_STALE_MS);
}

uint64_t
distkv_shm_age_ms(distkv_shm *s)
{
	struct shm_reader_info i;

	shm_reader_info(s->r, &i);
	return i.heartbeat_age_ms;
}

int
distkv_shm_open_node(const char *node, distkv_shm **out)
{
	char path[PATH_MAX];
	size_t n;

	*out = NULL;
	if (node == NULL || *node == '\0')
		return -EINVAL;
	/* the agent's default --shm (agent/main.c, default_shm_path) */
	n = (size_t)snprintf(path, sizeof(path), "/dev/shm/distkv-%s", node);
	if (n >= sizeof(path))
		return -ENAMETOOLONG;
	for (size_t i = strlen("/dev/shm/distkv-"); i < n; i++)
		if (path[i] == '/')
			path[i] = '_';
	return distkv_shm_open(path, out);
}

/* ---- children ---- */

struct children {
	const distkv_path *parent;
	struct keybuf prefix;		/* the parent's element bytes */
	size_t depth;			/* elements in the parent */
	distkv_entry_fn *fn;
	void *arg;
	int rc;
	bool stopped;
};

/* Length of a msgpack array header and its count; 0 if not an array. */
static size_t
array_header(const uint8_t *k, size_t len, uint32_t *n)
{
	if (len >= 1 && (k[0] & 0xf0) == 0x90) {
		*n = k[0] & 0x0f;
		return 1;
	}
	if (len >= 3 && k[0] == 0xdc) {
		*n = (uint32_t)k[1] << 8 | k[2];
		return 3;
	}
	if (len >= 5 && k[0] == 0xdd) {
		*n = (uint32_t)k[1] << 24 | (uint32_t)k[2] << 16 |
		    (uint32_t)k[3] << 8 | k[4];
		return 5;
	}
	return 0;
}

static int
child_cb(void *arg, const uint8_t *key, size_t klen, const uint8_t *val,
    size_t vlen)
{
	struct children *ch = arg;
	size_t ph, kh;
	uint32_t pn, kn;
	struct distkv_entry e;
	msgpack_zone zone;
	msgpack_object o;
	int rc;

	/* a child's key: header of depth+1, the parent's elements, one more */
	ph = array_header(ch->prefix.p, ch->prefix.len, &pn);
	kh = array_header(key, klen, &kn);
	if (kh == 0 || kn != ch->depth + 1 ||
	    klen - kh < ch->prefix.len - ph ||
	    memcmp(key + kh, ch->prefix.p + ph, ch->prefix.len - ph) != 0)
		return 0;
	memset(&e, 0, sizeof(e));
	msgpack_zone_init(&zone, 256);
	if (proto_unpack(key, klen, &zone, &o) != 0 ||
	    o.type != MSGPACK_OBJECT_ARRAY ||
	    (rc = distkv_path_new(&e.path)) != 0 ||
	    (rc = path_push_object(e.path, &o)) != 0 ||
	    (rc = distkv_value_from_msgpack(&e.value, val, vlen)) != 0) {
		msgpack_zone_destroy(&zone);
		distkv_entry_clear(&e);
		ch->rc = DISTKV_ECORRUPT;
		return 1;
	}
	msgpack_zone_destroy(&zone);
	e.depth = 1;
	if (ch->fn(ch->arg, &e) != 0)
		ch->stopped = true;
	distkv_entry_clear(&e);
	return ch->stopped;
}

int
distkv_shm_children(distkv_shm *s, const distkv_path *p,
    distkv_entry_fn *fn, void *arg)
{
	struct children ch;
	int rc;

	memset(&ch, 0, sizeof(ch));
	ch.parent = p;
	ch.depth = distkv_path_len(p);
	ch.fn = fn;
	ch.arg = arg;
	if ((rc = key_of(p, &ch.prefix)) != 0)
		return rc;
	rc = shm_err(shm_reader_scan(s->r, child_cb, &ch));
	key_free(&ch.prefix);
	return rc != 0 ? rc : ch.rc;
}

int
distkv_children(distkv *c, const distkv_path *p, distkv_entry_fn *fn,
    void *arg)
{
	struct distkv_tree_opts o = { 1, 1, 0, false };
	distkv_shm *s = distkv_shm_of(c);

	/* below a root the shm keys need the prefix: ask the agent */
	if (s != NULL && shm_client_fresh(s) && !client_has_root(c)) {
		int rc = distkv_shm_children(s, p, fn, arg);

		if (rc != DISTKV_EBUSY && rc != DISTKV_ECORRUPT)
			return rc;
	}
	return distkv_get_tree(c, p, &o, fn, arg);
}
