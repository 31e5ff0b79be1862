/*
 * path: distkv_path, a list of path elements, and its text form.
 *
 * A path is kept as an array of owned elements rather than as msgpack bytes:
 * callers build paths one element at a time and read them back by index, and
 * the client packs them into requests itself (client.c).  An empty byte
 * string is stored as the empty string, because the agent treats the two as
 * one key (spec §1.1) and a path must compare and print the same way.
 */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "distkv.h"
#include "proto.h"
#include "client_internal.h"
#include "reader.h"

struct path_elem {
	enum distkv_elem_type type;
	int64_t i;
	char *s;		/* STR/BIN bytes, malloc'd, NUL-terminated */
	size_t len;
};

/*
 * The canonical key bytes are kept up to date in the path itself (when
 * they fit): a shm lookup by path then reads one object, with the key in
 * its first cache line, instead of walking the element array and every
 * element's string (each its own allocation, each a cache miss when a
 * service looks up many paths).  The cache is the path's first member
 * (client_internal.h, struct path_keycache), so that shmclient.c reads it
 * inline, without a call.
 */
struct distkv_path {
	struct path_keycache kc;	/* must stay first: path_keycache() */
	size_t n;
	size_t cap;
	struct path_elem *e;
};

_Static_assert(offsetof(struct distkv_path, kc) == 0,
    "path_keycache() casts a path to its first member");

#define PATH_ALIGN	64
/* aligned_alloc wants a multiple of the alignment */
#define PATH_ALLOC	((sizeof(struct distkv_path) + PATH_ALIGN - 1) & \
			    ~(size_t)(PATH_ALIGN - 1))

/*
 * After every change of the elements (path_push, distkv_path_truncate:
 * the only two places that change them), so a cached key is never that
 * of an older path.
 */
static void
path_key_refresh(distkv_path *p)
{
	/* path_key's room estimate is generous: encode, then see */
	uint8_t tmp[1024];
	size_t n = path_key(p, tmp, sizeof(tmp));

	p->kc.len = 0;
	if (n <= sizeof(p->kc.key)) {
		memcpy(p->kc.key, tmp, n);
		/* a lookup by this path then hashes nothing */
		p->kc.hash = shm_key_hash(p->kc.key, n);
		p->kc.len = (uint16_t)n;
	}
}

static int	path_push(distkv_path *, enum distkv_elem_type, const void *,
		    size_t, int64_t);
static int	parse_elem(distkv_path *, const char *, size_t, size_t);
static int	parse_special(distkv_path *, const char *, size_t, size_t);
static int	hexval(int);

int
distkv_path_new(distkv_path **out)
{
	distkv_path *p;

	*out = NULL;
	/*
	 * On a cache line of its own: the hash, the length and a key of up
	 * to 54 bytes are then one line, one miss for a lookup by a path
	 * that is not in cache (malloc's 16-byte alignment let the key
	 * straddle two).
	 */
	if ((p = aligned_alloc(PATH_ALIGN, PATH_ALLOC)) == NULL)
		return (-ENOMEM);
	memset(p, 0, sizeof(*p));
	path_key_refresh(p);
	*out = p;
	return (0);
}

int
distkv_path_dup(const distkv_path *p, distkv_path **out)
{
	distkv_path *d;
	size_t i;
	int rc;

	*out = NULL;
	if ((rc = distkv_path_new(&d)) != 0)
		return (rc);
	for (i = 0; i < p->n; i++) {
		const struct path_elem *e = &p->e[i];

		if ((rc = path_push(d, e->type, e->s, e->len, e->i)) != 0) {
			distkv_path_free(d);
			return (rc);
		}
	}
	*out = d;
	return (0);
}

void
distkv_path_free(distkv_path *p)
{
	if (p == NULL)
		return;
	distkv_path_truncate(p, p->n);
	free(p->e);
	free(p);
}

/* The one place elements are added; checks every rule once. */
static int
path_push(distkv_path *p, enum distkv_elem_type type, const void *b,
    size_t len, int64_t i)
{
	struct path_elem *e;

	if (p->n >= PROTO_MAX_PATH_DEPTH)
		return (DISTKV_EINVAL);
	if (type == DISTKV_ELEM_NIL && p->n != 0)
		return (DISTKV_EINVAL);
	if (type == DISTKV_ELEM_STR && !proto_utf8_valid(b, len))
		return (DISTKV_EINVAL);
	if (type == DISTKV_ELEM_BIN && len == 0)
		type = DISTKV_ELEM_STR;
	if (p->n == p->cap) {
		size_t ncap = p->cap == 0 ? 4 : p->cap * 2;

		e = reallocarray(p->e, ncap, sizeof(*e));
		if (e == NULL)
			return (-ENOMEM);
		p->e = e;
		p->cap = ncap;
	}
	e = &p->e[p->n];
	memset(e, 0, sizeof(*e));
	e->type = type;
	if (type == DISTKV_ELEM_STR || type == DISTKV_ELEM_BIN) {
		if ((e->s = malloc(len + 1)) == NULL)
			return (-ENOMEM);
		if (len > 0)
			memcpy(e->s, b, len);
		e->s[len] = '\0';
		e->len = len;
	} else if (type == DISTKV_ELEM_INT)
		e->i = i;
	p->n++;
	path_key_refresh(p);
	return (0);
}

int
distkv_path_push_str(distkv_path *p, const char *s, size_t len)
{
	if (s == NULL && len != 0)
		return (DISTKV_EINVAL);
	return (path_push(p, DISTKV_ELEM_STR, s, len, 0));
}

int
distkv_path_push_bin(distkv_path *p, const void *b, size_t len)
{
	if (b == NULL && len != 0)
		return (DISTKV_EINVAL);
	return (path_push(p, DISTKV_ELEM_BIN, b, len, 0));
}

int
distkv_path_push_int(distkv_path *p, int64_t v)
{
	return (path_push(p, DISTKV_ELEM_INT, NULL, 0, v));
}

int
distkv_path_push_nil(distkv_path *p)
{
	return (path_push(p, DISTKV_ELEM_NIL, NULL, 0, 0));
}

size_t
distkv_path_len(const distkv_path *p)
{
	return (p == NULL ? 0 : p->n);
}

int
distkv_path_elem(const distkv_path *p, size_t i, struct distkv_elem *out)
{
	const struct path_elem *e;

	memset(out, 0, sizeof(*out));
	if (p == NULL || i >= p->n)
		return (DISTKV_EINVAL);
	e = &p->e[i];
	out->type = e->type;
	out->i = e->i;
	out->s = e->s;
	out->len = e->len;
	return (0);
}

void
distkv_path_truncate(distkv_path *p, size_t n)
{
	if (p == NULL)
		return;
	if (n > p->n)
		n = p->n;
	while (n-- > 0) {
		p->n--;
		free(p->e[p->n].s);
		p->e[p->n].s = NULL;
	}
	path_key_refresh(p);
}

/* ---- internal helpers for client.c ---- */

int
path_append(distkv_path *dst, const distkv_path *src, size_t from)
{
	size_t i;
	int rc;

	for (i = from; src != NULL && i < src->n; i++) {
		const struct path_elem *e = &src->e[i];

		if ((rc = path_push(dst, e->type, e->s, e->len, e->i)) != 0)
			return (rc);
	}
	return (0);
}

int
path_pack(msgpack_packer *pk, const distkv_path *p)
{
	size_t i;
	int r;

	r = msgpack_pack_array(pk, p == NULL ? 0 : p->n);
	for (i = 0; p != NULL && i < p->n && r == 0; i++) {
		const struct path_elem *e = &p->e[i];

		switch (e->type) {
		case DISTKV_ELEM_STR:
			r = msgpack_pack_str(pk, e->len);
			if (r == 0)
				r = msgpack_pack_str_body(pk, e->s, e->len);
			break;
		case DISTKV_ELEM_BIN:
			r = msgpack_pack_bin(pk, e->len);
			if (r == 0)
				r = msgpack_pack_bin_body(pk, e->s, e->len);
			break;
		case DISTKV_ELEM_INT:
			r = msgpack_pack_int64(pk, e->i);
			break;
		case DISTKV_ELEM_NIL:
			r = msgpack_pack_nil(pk);
			break;
		}
	}
	return (r == 0 ? 0 : -ENOMEM);
}

/*
 * Append the elements of a msgpack array.  Anything the agent may not send
 * as a path element is a protocol error, not a bad argument: the bytes came
 * from the wire.
 */
int
path_push_object(distkv_path *p, const msgpack_object *o)
{
	uint32_t i;
	int rc;

	if (o->type != MSGPACK_OBJECT_ARRAY)
		return (DISTKV_EPROTO);
	for (i = 0; i < o->via.array.size; i++) {
		const msgpack_object *e = &o->via.array.ptr[i];

		switch (e->type) {
		case MSGPACK_OBJECT_STR:
			rc = path_push(p, DISTKV_ELEM_STR, e->via.str.ptr,
			    e->via.str.size, 0);
			break;
		case MSGPACK_OBJECT_BIN:
			rc = path_push(p, DISTKV_ELEM_BIN, e->via.bin.ptr,
			    e->via.bin.size, 0);
			break;
		case MSGPACK_OBJECT_POSITIVE_INTEGER:
			if (e->via.u64 > INT64_MAX)
				return (DISTKV_EPROTO);
			rc = path_push(p, DISTKV_ELEM_INT, NULL, 0,
			    (int64_t)e->via.u64);
			break;
		case MSGPACK_OBJECT_NEGATIVE_INTEGER:
			rc = path_push(p, DISTKV_ELEM_INT, NULL, 0,
			    e->via.i64);
			break;
		case MSGPACK_OBJECT_NIL:
			rc = path_push(p, DISTKV_ELEM_NIL, NULL, 0, 0);
			break;
		default:
			return (DISTKV_EPROTO);
		}
		if (rc == DISTKV_EINVAL)
			return (DISTKV_EPROTO);
		if (rc != 0)
			return (rc);
	}
	return (0);
}

/* ---- text form ---- */

static int
hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return (ch - '0');
	if (ch >= 'a' && ch <= 'f')
		return (ch - 'a' + 10);
	if (ch >= 'A' && ch <= 'F')
		return (ch - 'A' + 10);
	return (-1);
}

/* An element starting with an unescaped ':' (s points after the colon). */
static int
parse_special(distkv_path *p, const char *s, size_t len, size_t index)
{
	char num[32], *end;
	uint8_t *bin;
	long long v;
	size_t i;
	int rc;

	if (len == 0)
		return (distkv_path_push_str(p, "", 0));
	if (len == 3 && memcmp(s, "nil", 3) == 0) {
		if (index != 0)
			return (DISTKV_EINVAL);
		return (distkv_path_push_nil(p));
	}
	if (s[0] == 'x') {
		s++;
		len--;
		if (len % 2 != 0)
			return (DISTKV_EINVAL);
		if ((bin = malloc(len / 2 + 1)) == NULL)
			return (-ENOMEM);
		for (i = 0; i < len; i += 2) {
			int hi = hexval((unsigned char)s[i]);
			int lo = hexval((unsigned char)s[i + 1]);

			if (hi < 0 || lo < 0) {
				free(bin);
				return (DISTKV_EINVAL);
			}
			bin[i / 2] = (uint8_t)(hi << 4 | lo);
		}
		rc = distkv_path_push_bin(p, bin, len / 2);
		free(bin);
		return (rc);
	}
	/* Integer: optional '-', then digits only (no '+', no blanks). */
	if (len >= sizeof(num))
		return (DISTKV_EINVAL);
	for (i = (s[0] == '-') ? 1 : 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return (DISTKV_EINVAL);
	}
	if (len == (s[0] == '-' ? 1u : 0u))
		return (DISTKV_EINVAL);
	memcpy(num, s, len);
	num[len] = '\0';
	errno = 0;
	v = strtoll(num, &end, 10);
	if (errno != 0 || *end != '\0')
		return (DISTKV_EINVAL);
	return (distkv_path_push_int(p, (int64_t)v));
}

/* One element's raw text s[0..len), escapes still in place. */
static int
parse_elem(distkv_path *p, const char *s, size_t len, size_t index)
{
	char *buf;
	size_t i, n = 0;
	int rc;

	if (len == 0)
		return (DISTKV_EINVAL);
	if (s[0] == ':')
		return (parse_special(p, s + 1, len - 1, index));
	if ((buf = malloc(len)) == NULL)
		return (-ENOMEM);
	for (i = 0; i < len; i++) {
		if (s[i] != '\\') {
			buf[n++] = s[i];
			continue;
		}
		if (i + 1 == len || (s[i + 1] != '/' && s[i + 1] != '\\' &&
		    s[i + 1] != ':')) {
			free(buf);
			return (DISTKV_EINVAL);
		}
		buf[n++] = s[++i];
	}
	rc = distkv_path_push_str(p, buf, n);
	free(buf);
	return (rc);
}

int
distkv_path_parse(const char *text, distkv_path **out)
{
	distkv_path *p;
	size_t len, start, i;
	int rc;

	*out = NULL;
	if (text == NULL)
		return (DISTKV_EINVAL);
	if ((rc = distkv_path_new(&p)) != 0)
		return (rc);
	len = strlen(text);
	start = 0;
	if (len > 0 && text[0] == '/')
		start = 1;
	i = start;
	while (i < len) {
		size_t end = i;

		while (end < len && text[end] != '/') {
			if (text[end] == '\\' && end + 1 < len)
				end++;
			end++;
		}
		if (end > len)
			end = len;
		/* A single trailing '/' is ignored; "a//" is still an error. */
		if ((rc = parse_elem(p, text + i, end - i, p->n)) != 0)
			goto fail;
		i = end + 1;
		if (end + 1 == len)
			break;
	}
	*out = p;
	return (0);
fail:
	distkv_path_free(p);
	return (rc);
}

/* Growing output buffer for distkv_path_format. */
struct sbuf {
	char *b;
	size_t len, cap;
	int err;
};

static void
sbuf_add(struct sbuf *sb, const char *s, size_t n)
{
	if (sb->err != 0)
		return;
	if (sb->len + n + 1 > sb->cap) {
		size_t ncap = sb->cap == 0 ? 64 : sb->cap;
		char *nb;

		while (sb->len + n + 1 > ncap)
			ncap *= 2;
		if ((nb = realloc(sb->b, ncap)) == NULL) {
			sb->err = -ENOMEM;
			return;
		}
		sb->b = nb;
		sb->cap = ncap;
	}
	memcpy(sb->b + sb->len, s, n);
	sb->len += n;
	sb->b[sb->len] = '\0';
}

/*
 * Elements are joined by '/' with no leading slash; the root is "/" so that
 * it is visible when printed.  A string holding a NUL byte has no text form
 * (the result is a C string) and gives DISTKV_EINVAL.
 */
int
distkv_path_format(const distkv_path *p, char **out)
{
	struct sbuf sb = { NULL, 0, 0, 0 };
	char num[32];
	size_t i, k;

	*out = NULL;
	if (p == NULL || p->n == 0) {
		if ((*out = strdup("/")) == NULL)
			return (-ENOMEM);
		return (0);
	}
	for (i = 0; i < p->n; i++) {
		const struct path_elem *e = &p->e[i];

		if (i > 0)
			sbuf_add(&sb, "/", 1);
		switch (e->type) {
		case DISTKV_ELEM_NIL:
			sbuf_add(&sb, ":nil", 4);
			break;
		case DISTKV_ELEM_INT:
			snprintf(num, sizeof(num), ":%" PRId64, e->i);
			sbuf_add(&sb, num, strlen(num));
			break;
		case DISTKV_ELEM_BIN:
			sbuf_add(&sb, ":x", 2);
			for (k = 0; k < e->len; k++) {
				snprintf(num, sizeof(num), "%02x",
				    (unsigned char)e->s[k]);
				sbuf_add(&sb, num, 2);
			}
			break;
		case DISTKV_ELEM_STR:
			if (e->len == 0) {
				sbuf_add(&sb, ":", 1);
				break;
			}
			if (memchr(e->s, '\0', e->len) != NULL) {
				free(sb.b);
				return (DISTKV_EINVAL);
			}
			if (e->s[0] == ':')
				sbuf_add(&sb, "\\", 1);
			for (k = 0; k < e->len; k++) {
				if (e->s[k] == '/' || e->s[k] == '\\')
					sbuf_add(&sb, "\\", 1);
				sbuf_add(&sb, &e->s[k], 1);
			}
			break;
		}
	}
	if (sb.err != 0) {
		free(sb.b);
		return (sb.err);
	}
	*out = sb.b;
	return (0);
}

const uint8_t *
path_key_cached(const distkv_path *p, size_t *len, uint64_t *hash)
{
	if (p == NULL || p->kc.len == 0)
		return (NULL);
	*len = p->kc.len;
	if (hash != NULL)
		*hash = p->kc.hash;
	return (p->kc.key);
}

size_t
path_key(const distkv_path *p, uint8_t *buf, size_t cap)
{
	size_t need = 3, n = p == NULL ? 0 : p->n;
	uint8_t *o = buf;

	for (size_t i = 0; i < n; i++)
		need += 9 + p->e[i].len;
	if (need > cap)
		return (need);
	if (n < 16)
		*o++ = (uint8_t)(0x90 | n);
	else {
		*o++ = 0xdc;
		o = proto_put_be(o, n, 2);
	}
	for (size_t i = 0; i < n; i++) {
		const struct path_elem *e = &p->e[i];

		switch (e->type) {
		case DISTKV_ELEM_STR:
		case DISTKV_ELEM_BIN:
			o = proto_put_strhdr(o, e->type == DISTKV_ELEM_BIN,
			    e->len);
			memcpy(o, e->s, e->len);
			o += e->len;
			break;
		case DISTKV_ELEM_INT:
			o = proto_put_int(o, e->i);
			break;
		case DISTKV_ELEM_NIL:
			*o++ = 0xc0;
			break;
		}
	}
	return ((size_t)(o - buf));
}
