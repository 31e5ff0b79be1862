/*
 * value: build and read msgpack values (struct distkv_value and raw bytes).
 *
 * Readers decode the type byte by hand instead of unpacking, so reading a
 * scalar costs no allocation; every reader first checks with proto_scan()
 * that the bytes are exactly one well-formed object, so a short or padded
 * buffer is DISTKV_EINVAL rather than a read past its end.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "distkv.h"
#include "proto.h"
#include "client_internal.h"

static int	value_take(struct distkv_value *, msgpack_sbuffer *, int);
static int	value_check(const void *, size_t);
static uint64_t	be(const uint8_t *, unsigned);

void
distkv_value_clear(struct distkv_value *v)
{
	if (v == NULL)
		return;
	free(v->data);
	v->data = NULL;
	v->len = 0;
}

/* Move the packed bytes of sb into v (sbuffer data is plain malloc'd). */
static int
value_take(struct distkv_value *v, msgpack_sbuffer *sb, int r)
{
	if (r != 0 || sb->data == NULL) {
		msgpack_sbuffer_destroy(sb);
		return (-ENOMEM);
	}
	v->len = sb->size;
	v->data = (uint8_t *)msgpack_sbuffer_release(sb);
	msgpack_sbuffer_destroy(sb);
	return (0);
}

int
distkv_value_from_str(struct distkv_value *v, const char *s, size_t len)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	int r;

	memset(v, 0, sizeof(*v));
	if (s == NULL && len != 0)
		return (DISTKV_EINVAL);
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	r = msgpack_pack_str(&pk, len);
	if (r == 0)
		r = msgpack_pack_str_body(&pk, s, len);
	return (value_take(v, &sb, r));
}

int
distkv_value_from_int(struct distkv_value *v, int64_t i)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;

	memset(v, 0, sizeof(*v));
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	return (value_take(v, &sb, msgpack_pack_int64(&pk, i)));
}

int
distkv_value_from_double(struct distkv_value *v, double d)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;

	memset(v, 0, sizeof(*v));
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	return (value_take(v, &sb, msgpack_pack_double(&pk, d)));
}

int
distkv_value_from_bool(struct distkv_value *v, bool b)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;

	memset(v, 0, sizeof(*v));
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	return (value_take(v, &sb,
	    b ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk)));
}

int
distkv_value_from_nil(struct distkv_value *v)
{
	memset(v, 0, sizeof(*v));
	if ((v->data = malloc(1)) == NULL)
		return (-ENOMEM);
	v->data[0] = 0xc0;
	v->len = 1;
	return (0);
}

int
distkv_value_from_msgpack(struct distkv_value *v, const void *data,
    size_t len)
{
	int rc;

	memset(v, 0, sizeof(*v));
	if ((rc = value_check(data, len)) != 0)
		return (rc);
	if ((v->data = malloc(len)) == NULL)
		return (-ENOMEM);
	memcpy(v->data, data, len);
	v->len = len;
	return (0);
}

int
value_from_object(struct distkv_value *v, const msgpack_object *o)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;

	memset(v, 0, sizeof(*v));
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	return (value_take(v, &sb, proto_pack_canonical(&pk, o)));
}

/* ---- readers ---- */

/*
 * The length of the object at p when its first bytes tell it: a scalar,
 * nil or bool (fixed length), or a str or bin (header + body).  0 for a
 * container or an ext, or a header cut short: proto_scan decides those.
 * What proto_scan would say of these objects, without its walk, which
 * cost more than the region read of a typed get (issue 14).
 */
static size_t
flat_len(const uint8_t *p, size_t len)
{
	uint8_t b = p[0];

	if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
		return (1);
	if ((b & 0xe0) == 0xa0)
		return (1 + (size_t)(b & 0x1f));
	switch (b) {
	case 0xcc: case 0xd0: return (2);
	case 0xcd: case 0xd1: return (3);
	case 0xca: case 0xce: case 0xd2: return (5);
	case 0xcb: case 0xcf: case 0xd3: return (9);
	case 0xc4: case 0xd9:
		return (len >= 2 ? 2 + (size_t)p[1] : 0);
	case 0xc5: case 0xda:
		return (len >= 3 ? 3 + (size_t)be(p + 1, 2) : 0);
	case 0xc6: case 0xdb:
		return (len >= 5 ? 5 + (size_t)be(p + 1, 4) : 0);
	}
	return (0);
}

/* Exactly one complete object, nothing after it. */
static int
value_check(const void *data, size_t len)
{
	size_t objlen;

	if (data == NULL || len == 0)
		return (DISTKV_EINVAL);
	if ((objlen = flat_len(data, len)) != 0)
		return (objlen == len ? 0 : DISTKV_EINVAL);
	if (proto_scan(data, len, PROTO_MAX_NESTING, &objlen) != 0 ||
	    objlen != len)
		return (DISTKV_EINVAL);
	return (0);
}

static uint64_t
be(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	while (n-- > 0)
		v = (v << 8) | *p++;
	return (v);
}

int
distkv_value_get_str(const void *data, size_t len, const char **s,
    size_t *slen)
{
	const uint8_t *p = data;
	unsigned hdr;
	uint64_t body;
	int rc;

	*s = NULL;
	*slen = 0;
	if (data == NULL || len == 0)
		return (DISTKV_EINVAL);
	/*
	 * A str is its header and its bytes, nothing to scan: checking the
	 * length here instead of value_check's proto_scan is what makes a
	 * typed read cost little more than the lookup (issue 14).
	 */
	if (p[0] >= 0xa0 && p[0] <= 0xbf) {
		hdr = 1;
		body = p[0] & 0x1f;
	} else if (p[0] >= 0xd9 && p[0] <= 0xdb) {
		hdr = p[0] == 0xd9 ? 2 : p[0] == 0xda ? 3 : 5;
		if (len < hdr)
			return (DISTKV_EINVAL);
		body = be(p + 1, hdr - 1);
	} else
		return ((rc = value_check(data, len)) != 0 ? rc : DISTKV_ETYPE);
	if (len - hdr != body)
		return (DISTKV_EINVAL);
	*s = (const char *)p + hdr;
	*slen = len - hdr;
	return (0);
}

int
distkv_value_get_int(const void *data, size_t len, int64_t *out)
{
	const uint8_t *p = data;
	uint64_t u;
	int rc;

	*out = 0;
	if ((rc = value_check(data, len)) != 0)
		return (rc);
	if (p[0] <= 0x7f) {
		*out = p[0];
		return (0);
	}
	if (p[0] >= 0xe0) {
		*out = (int8_t)p[0];
		return (0);
	}
	switch (p[0]) {
	case 0xcc: *out = p[1]; break;
	case 0xcd: *out = (int64_t)be(p + 1, 2); break;
	case 0xce: *out = (int64_t)be(p + 1, 4); break;
	case 0xcf:
		u = be(p + 1, 8);
		if (u > INT64_MAX)
			return (-ERANGE);
		*out = (int64_t)u;
		break;
	case 0xd0: *out = (int8_t)p[1]; break;
	case 0xd1: *out = (int16_t)be(p + 1, 2); break;
	case 0xd2: *out = (int32_t)be(p + 1, 4); break;
	case 0xd3: *out = (int64_t)be(p + 1, 8); break;
	default:
		return (DISTKV_ETYPE);
	}
	return (0);
}

int
distkv_value_get_double(const void *data, size_t len, double *out)
{
	const uint8_t *p = data;
	uint64_t u;
	int64_t i;
	uint32_t u32;
	float f;
	int rc;

	*out = 0;
	if ((rc = value_check(data, len)) != 0)
		return (rc);
	if (p[0] == 0xca) {
		u32 = (uint32_t)be(p + 1, 4);
		memcpy(&f, &u32, sizeof(f));
		*out = f;
		return (0);
	}
	if (p[0] == 0xcb) {
		u = be(p + 1, 8);
		memcpy(out, &u, sizeof(*out));
		return (0);
	}
	if (p[0] == 0xcf) {
		*out = (double)be(p + 1, 8);
		return (0);
	}
	if ((rc = distkv_value_get_int(data, len, &i)) != 0)
		return (rc);
	*out = (double)i;
	return (0);
}

int
distkv_value_get_bool(const void *data, size_t len, bool *out)
{
	const uint8_t *p = data;
	int rc;

	*out = false;
	if ((rc = value_check(data, len)) != 0)
		return (rc);
	if (p[0] == 0xc2 || p[0] == 0xc3) {
		*out = p[0] == 0xc3;
		return (0);
	}
	return (DISTKV_ETYPE);
}

bool
distkv_value_is_nil(const void *data, size_t len)
{
	return (data != NULL && len == 1 && ((const uint8_t *)data)[0] == 0xc0);
}
