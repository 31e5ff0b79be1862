/* mp: see mp.h. */
#include <stdlib.h>
#include <string.h>

#include "mp.h"

static int	need(struct mp_reader *, size_t);
static uint64_t	be(const uint8_t *, size_t);
static int	put(struct mp_buf *, const void *, size_t);
static int	put_be(struct mp_buf *, uint8_t, uint64_t, size_t);
static int	put_len(struct mp_buf *, uint32_t, uint8_t, uint8_t, uint8_t,
		    uint8_t);

/* ---- reader ---- */

void
mp_reader_init(struct mp_reader *r, const void *data, size_t len)
{
	r->p = data;
	r->end = r->p + len;
}

static int
need(struct mp_reader *r, size_t n)
{
	return ((size_t)(r->end - r->p) >= n ? 0 : -1);
}

static uint64_t
be(const uint8_t *p, size_t n)
{
	uint64_t v = 0;
	size_t i;

	for (i = 0; i < n; i++)
		v = (v << 8) | p[i];
	return (v);
}

int
mp_next(struct mp_reader *r, struct mp_tok *t)
{
	uint8_t c;
	size_t w = 0, lw = 0;
	uint64_t v;
	uint32_t f32;
	float fl;

	memset(t, 0, sizeof(*t));
	if (need(r, 1) != 0)
		return (-1);
	c = *r->p++;
	if (c <= 0x7f) {
		t->type = MP_UINT;
		t->u = c;
		return (0);
	}
	if (c >= 0xe0) {
		t->type = MP_INT;
		t->i = (int8_t)c;
		return (0);
	}
	if ((c & 0xf0) == 0x80 || (c & 0xf0) == 0x90) {
		t->type = (c & 0xf0) == 0x80 ? MP_MAP : MP_ARRAY;
		t->n = c & 0x0f;
		return (0);
	}
	if ((c & 0xe0) == 0xa0) {
		t->type = MP_STR;
		t->len = c & 0x1f;
		goto bytes;
	}
	switch (c) {
	case 0xc0:
		t->type = MP_NIL;
		return (0);
	case 0xc2:
	case 0xc3:
		t->type = MP_BOOL;
		t->b = c == 0xc3;
		return (0);
	case 0xc4: case 0xc5: case 0xc6:
		t->type = MP_BIN;
		lw = (size_t)1 << (c - 0xc4);
		break;
	case 0xd9: case 0xda: case 0xdb:
		t->type = MP_STR;
		lw = (size_t)1 << (c - 0xd9);
		break;
	case 0xc7: case 0xc8: case 0xc9:
		t->type = MP_EXT;
		lw = (size_t)1 << (c - 0xc7);
		break;
	case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
		t->type = MP_EXT;
		t->len = (size_t)1 << (c - 0xd4);
		if (need(r, 1) != 0)
			return (-1);
		t->ext_type = (int8_t)*r->p++;
		goto bytes;
	case 0xca:
		if (need(r, 4) != 0)
			return (-1);
		f32 = (uint32_t)be(r->p, 4);
		memcpy(&fl, &f32, sizeof(fl));
		r->p += 4;
		t->type = MP_FLOAT;
		t->d = fl;
		t->len = 4;
		return (0);
	case 0xcb:
		if (need(r, 8) != 0)
			return (-1);
		v = be(r->p, 8);
		memcpy(&t->d, &v, sizeof(t->d));
		r->p += 8;
		t->type = MP_FLOAT;
		t->len = 8;
		return (0);
	case 0xcc: case 0xcd: case 0xce: case 0xcf:
		w = (size_t)1 << (c - 0xcc);
		if (need(r, w) != 0)
			return (-1);
		t->type = MP_UINT;
		t->u = be(r->p, w);
		r->p += w;
		return (0);
	case 0xd0: case 0xd1: case 0xd2: case 0xd3:
		w = (size_t)1 << (c - 0xd0);
		if (need(r, w) != 0)
			return (-1);
		v = be(r->p, w);
		r->p += w;
		/* sign-extend from w bytes */
		if (w < 8 && (v & ((uint64_t)1 << (w * 8 - 1))))
			v |= ~(uint64_t)0 << (w * 8);
		t->i = (int64_t)v;
		if (t->i >= 0) {
			t->type = MP_UINT;
			t->u = (uint64_t)t->i;
		} else
			t->type = MP_INT;
		return (0);
	case 0xdc: case 0xdd:
		w = c == 0xdc ? 2 : 4;
		if (need(r, w) != 0)
			return (-1);
		t->type = MP_ARRAY;
		t->n = (uint32_t)be(r->p, w);
		r->p += w;
		return (0);
	case 0xde: case 0xdf:
		w = c == 0xde ? 2 : 4;
		if (need(r, w) != 0)
			return (-1);
		t->type = MP_MAP;
		t->n = (uint32_t)be(r->p, w);
		r->p += w;
		return (0);
	default:		/* 0xc1: never used */
		return (-1);
	}
	/* variable length str / bin / ext with an lw-byte length */
	if (need(r, lw) != 0)
		return (-1);
	t->len = (size_t)be(r->p, lw);
	r->p += lw;
	if (t->type == MP_EXT) {
		if (need(r, 1) != 0)
			return (-1);
		t->ext_type = (int8_t)*r->p++;
	}
bytes:
	if (need(r, t->len) != 0)
		return (-1);
	t->s = (const char *)r->p;
	r->p += t->len;
	return (0);
}

int
mp_skip(struct mp_reader *r, int depth)
{
	struct mp_tok t;
	uint64_t i, n;

	if (depth <= 0 || mp_next(r, &t) != 0)
		return (-1);
	if (t.type != MP_ARRAY && t.type != MP_MAP)
		return (0);
	n = t.type == MP_MAP ? 2 * (uint64_t)t.n : t.n;
	for (i = 0; i < n; i++)
		if (mp_skip(r, depth - 1) != 0)
			return (-1);
	return (0);
}

/* ---- writer ---- */

void
mp_buf_free(struct mp_buf *b)
{
	free(b->buf);
	memset(b, 0, sizeof(*b));
}

static int
put(struct mp_buf *b, const void *s, size_t n)
{
	uint8_t *nb;
	size_t ncap;

	if (n > SIZE_MAX / 2 - b->len)
		return (-1);
	if (b->len + n > b->cap) {
		ncap = b->cap != 0 ? b->cap : 64;
		while (ncap < b->len + n)
			ncap *= 2;
		if ((nb = realloc(b->buf, ncap)) == NULL)
			return (-1);
		b->buf = nb;
		b->cap = ncap;
	}
	if (n != 0)
		memcpy(b->buf + b->len, s, n);
	b->len += n;
	return (0);
}

/* Write the tag byte, then v big-endian in w bytes (w may be 0). */
static int
put_be(struct mp_buf *b, uint8_t tag, uint64_t v, size_t w)
{
	uint8_t tmp[9];
	size_t i;

	tmp[0] = tag;
	for (i = 0; i < w; i++)
		tmp[1 + i] = (uint8_t)(v >> (8 * (w - 1 - i)));
	return (put(b, tmp, 1 + w));
}

/*
 * Header of a length-prefixed item: fix (fixmask | n if n < fixlim, unless
 * fixlim is 0), else the 8/16/32-bit tags t8 (0: no 8-bit form), t8+1, t8+2.
 */
static int
put_len(struct mp_buf *b, uint32_t n, uint8_t fixmask, uint8_t fixlim,
    uint8_t t8, uint8_t t16)
{
	if (fixlim != 0 && n < fixlim)
		return (put_be(b, (uint8_t)(fixmask | n), 0, 0));
	if (t8 != 0 && n <= UINT8_MAX)
		return (put_be(b, t8, n, 1));
	if (n <= UINT16_MAX)
		return (put_be(b, t16, n, 2));
	return (put_be(b, (uint8_t)(t16 + 1), n, 4));
}

int
mp_put_nil(struct mp_buf *b)
{
	return (put_be(b, 0xc0, 0, 0));
}

int
mp_put_bool(struct mp_buf *b, bool v)
{
	return (put_be(b, v ? 0xc3 : 0xc2, 0, 0));
}

int
mp_put_uint(struct mp_buf *b, uint64_t v)
{
	if (v <= 0x7f)
		return (put_be(b, (uint8_t)v, 0, 0));
	if (v <= UINT8_MAX)
		return (put_be(b, 0xcc, v, 1));
	if (v <= UINT16_MAX)
		return (put_be(b, 0xcd, v, 2));
	if (v <= UINT32_MAX)
		return (put_be(b, 0xce, v, 4));
	return (put_be(b, 0xcf, v, 8));
}

int
mp_put_int(struct mp_buf *b, int64_t v)
{
	if (v >= 0)
		return (mp_put_uint(b, (uint64_t)v));
	if (v >= -32)
		return (put_be(b, (uint8_t)(int8_t)v, 0, 0));
	if (v >= INT8_MIN)
		return (put_be(b, 0xd0, (uint64_t)v, 1));
	if (v >= INT16_MIN)
		return (put_be(b, 0xd1, (uint64_t)v, 2));
	if (v >= INT32_MIN)
		return (put_be(b, 0xd2, (uint64_t)v, 4));
	return (put_be(b, 0xd3, (uint64_t)v, 8));
}

int
mp_put_double(struct mp_buf *b, double v)
{
	uint64_t u;

	memcpy(&u, &v, sizeof(u));
	return (put_be(b, 0xcb, u, 8));
}

int
mp_put_str(struct mp_buf *b, const char *s, size_t len)
{
	if (len > UINT32_MAX)
		return (-1);
	if (put_len(b, (uint32_t)len, 0xa0, 32, 0xd9, 0xda) != 0)
		return (-1);
	return (put(b, s, len));
}

int
mp_put_bin(struct mp_buf *b, const void *s, size_t len)
{
	if (len > UINT32_MAX)
		return (-1);
	if (put_len(b, (uint32_t)len, 0, 0, 0xc4, 0xc5) != 0)
		return (-1);
	return (put(b, s, len));
}

int
mp_put_ext(struct mp_buf *b, int8_t type, const void *s, size_t len)
{
	uint8_t ty = (uint8_t)type;
	int rc;

	if (len > UINT32_MAX)
		return (-1);
	switch (len) {
	case 1: rc = put_be(b, 0xd4, ty, 1); break;
	case 2: rc = put_be(b, 0xd5, ty, 1); break;
	case 4: rc = put_be(b, 0xd6, ty, 1); break;
	case 8: rc = put_be(b, 0xd7, ty, 1); break;
	case 16: rc = put_be(b, 0xd8, ty, 1); break;
	default:
		if ((rc = put_len(b, (uint32_t)len, 0, 0, 0xc7, 0xc8)) == 0)
			rc = put(b, &ty, 1);
		break;
	}
	if (rc != 0)
		return (-1);
	return (put(b, s, len));
}

int
mp_put_array(struct mp_buf *b, uint32_t n)
{
	return (put_len(b, n, 0x90, 16, 0, 0xdc));
}

int
mp_put_map(struct mp_buf *b, uint32_t n)
{
	return (put_len(b, n, 0x80, 16, 0, 0xde));
}
