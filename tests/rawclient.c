/* rawclient: see rawclient.h. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "harness.h"
#include "proto.h"
#include "rawclient.h"

/* ---- notation parser ---- */

enum rv_type {
	RV_NIL, RV_BOOL, RV_INT, RV_UINT, RV_FLOAT, RV_STR, RV_BIN, RV_ARR, RV_MAP,
	RV_ANY, RV_ABSENT
};

/* Parsed notation value; maps hold 2*n items (key, value, ...). */
struct rv {
	enum rv_type t;
	bool b;
	bool open;		/* map: '...' seen */
	int64_t i;
	uint64_t u;		/* RV_UINT: above INT64_MAX */
	double d;
	char *s;
	size_t len;
	size_t n;
	struct rv *items;
};

struct rv_parser {
	const char *p;
	const char *start;
	char err[200];
};

static void *
xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n == 0 ? 1 : n);

	if (q == NULL)
		abort();
	return q;
}

static char *
vfmt(const char *fmt, va_list ap)
{
	va_list ap2;
	char *s;
	int n;

	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		abort();
	s = xrealloc(NULL, (size_t)n + 1);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	return s;
}

static void
rv_free(struct rv *v)
{
	size_t i, k;

	if (v == NULL)
		return;
	k = v->t == RV_MAP ? 2 * v->n : v->t == RV_ARR ? v->n : 0;
	for (i = 0; i < k; i++)
		rv_free(&v->items[i]);
	free(v->items);
	free(v->s);
}

static void
skip_ws(struct rv_parser *ps)
{
	while (isspace((unsigned char)*ps->p))
		ps->p++;
}

static int
perr(struct rv_parser *ps, const char *what)
{
	if (ps->err[0] == '\0')
		snprintf(ps->err, sizeof(ps->err), "%s at offset %ld: '%.20s'",
		    what, (long)(ps->p - ps->start), ps->p);
	return -1;
}

static int parse_value(struct rv_parser *ps, struct rv *out);

static int
parse_string(struct rv_parser *ps, struct rv *out)
{
	char q = *ps->p++;
	size_t cap = 16;

	out->s = xrealloc(NULL, cap);
	out->len = 0;
	while (*ps->p != q) {
		char c = *ps->p;

		if (c == '\0')
			return perr(ps, "unterminated string");
		if (c == '\\') {
			ps->p++;
			switch (*ps->p) {
			case 'n': c = '\n'; break;
			case 't': c = '\t'; break;
			case '0': c = '\0'; break;
			case 'x': {
				char hex[3] = { 0, 0, 0 };

				if (!isxdigit((unsigned char)ps->p[1]) ||
				    !isxdigit((unsigned char)ps->p[2]))
					return perr(ps, "bad \\x escape");
				hex[0] = ps->p[1];
				hex[1] = ps->p[2];
				c = (char)strtol(hex, NULL, 16);
				ps->p += 2;
				break;
			}
			case '\0':
				return perr(ps, "bad escape");
			default: c = *ps->p; break;
			}
		}
		if (out->len + 1 >= cap) {
			cap *= 2;
			out->s = xrealloc(out->s, cap);
		}
		out->s[out->len++] = c;
		ps->p++;
	}
	ps->p++;
	out->s[out->len] = '\0';
	return 0;
}

static int
parse_number(struct rv_parser *ps, struct rv *out)
{
	const char *s = ps->p;
	char *end;
	bool isfloat = false;

	if (*s == '-')
		s++;
	while (isdigit((unsigned char)*s))
		s++;
	if (*s == '.' || *s == 'e' || *s == 'E')
		isfloat = true;
	errno = 0;
	if (isfloat) {
		out->t = RV_FLOAT;
		out->d = strtod(ps->p, &end);
	} else {
		out->t = RV_INT;
		out->i = strtoll(ps->p, &end, 10);
		if (errno == ERANGE && *ps->p != '-') {
			errno = 0;
			out->t = RV_UINT;
			out->u = strtoull(ps->p, &end, 10);
		}
	}
	if (end == ps->p || errno != 0)
		return perr(ps, "bad number");
	ps->p = end;
	return 0;
}

static int
parse_container(struct rv_parser *ps, struct rv *out, bool map)
{
	char close = map ? '}' : ']';
	size_t cap = 0;

	out->t = map ? RV_MAP : RV_ARR;
	ps->p++;
	for (;;) {
		skip_ws(ps);
		if (*ps->p == close) {
			ps->p++;
			return 0;
		}
		if (map && strncmp(ps->p, "...", 3) == 0) {
			ps->p += 3;
			out->open = true;
		} else {
			size_t need = (map ? 2 : 1) * (out->n + 1);

			if (need > cap) {
				cap = need * 2;
				out->items = xrealloc(out->items,
				    cap * sizeof(*out->items));
			}
			if (map) {
				struct rv *k = &out->items[2 * out->n];
				struct rv *v = k + 1;

				memset(k, 0, 2 * sizeof(*k));
				out->n++;
				skip_ws(ps);
				if (isalpha((unsigned char)*ps->p) ||
				    *ps->p == '_') {
					const char *b = ps->p;

					while (isalnum((unsigned char)*ps->p) ||
					    *ps->p == '_')
						ps->p++;
					k->t = RV_STR;
					k->len = (size_t)(ps->p - b);
					k->s = xrealloc(NULL, k->len + 1);
					memcpy(k->s, b, k->len);
					k->s[k->len] = '\0';
				} else if (parse_value(ps, k) != 0)
					return -1;
				skip_ws(ps);
				if (*ps->p != ':')
					return perr(ps, "expected ':'");
				ps->p++;
				if (parse_value(ps, v) != 0)
					return -1;
			} else {
				memset(&out->items[out->n], 0,
				    sizeof(*out->items));
				out->n++;
				if (parse_value(ps, &out->items[out->n - 1])
				    != 0)
					return -1;
			}
		}
		skip_ws(ps);
		if (*ps->p == ',')
			ps->p++;
		else if (*ps->p != close)
			return perr(ps, "expected ',' or end of container");
	}
}

static bool
word(struct rv_parser *ps, const char *w)
{
	size_t n = strlen(w);

	if (strncmp(ps->p, w, n) != 0 || isalnum((unsigned char)ps->p[n]) ||
	    ps->p[n] == '_')
		return false;
	ps->p += n;
	return true;
}

static int
parse_value(struct rv_parser *ps, struct rv *out)
{
	memset(out, 0, sizeof(*out));
	skip_ws(ps);
	switch (*ps->p) {
	case '{':
		return parse_container(ps, out, true);
	case '[':
		return parse_container(ps, out, false);
	case '\'':
	case '"':
		out->t = RV_STR;
		return parse_string(ps, out);
	case '~':
		ps->p++;
		out->t = RV_ABSENT;
		return 0;
	default:
		break;
	}
	if (ps->p[0] == 'b' && (ps->p[1] == '\'' || ps->p[1] == '"')) {
		ps->p++;
		out->t = RV_BIN;
		return parse_string(ps, out);
	}
	if (*ps->p == '-' || isdigit((unsigned char)*ps->p))
		return parse_number(ps, out);
	if (word(ps, "nil") || word(ps, "null")) {
		out->t = RV_NIL;
		return 0;
	}
	if (word(ps, "true")) {
		out->t = RV_BOOL;
		out->b = true;
		return 0;
	}
	if (word(ps, "false")) {
		out->t = RV_BOOL;
		return 0;
	}
	if (word(ps, "_")) {
		out->t = RV_ANY;
		return 0;
	}
	return perr(ps, "unexpected token");
}

static int
rv_parse(const char *text, struct rv *out, char *err, size_t errlen)
{
	struct rv_parser ps;

	memset(&ps, 0, sizeof(ps));
	ps.p = ps.start = text;
	if (parse_value(&ps, out) == 0) {
		skip_ws(&ps);
		if (*ps.p == '\0')
			return 0;
		perr(&ps, "trailing text");
	}
	if (err != NULL)
		snprintf(err, errlen, "notation: %s in \"%s\"", ps.err, text);
	rv_free(out);
	memset(out, 0, sizeof(*out));
	return -1;
}

static int
rv_pack(msgpack_packer *pk, const struct rv *v)
{
	size_t i;

	switch (v->t) {
	case RV_NIL: return msgpack_pack_nil(pk);
	case RV_BOOL:
		return v->b ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
	case RV_INT: return msgpack_pack_int64(pk, v->i);
	case RV_UINT: return msgpack_pack_uint64(pk, v->u);
	case RV_FLOAT: return msgpack_pack_double(pk, v->d);
	case RV_STR:
		msgpack_pack_str(pk, v->len);
		return msgpack_pack_str_body(pk, v->s, v->len);
	case RV_BIN:
		msgpack_pack_bin(pk, v->len);
		return msgpack_pack_bin_body(pk, v->s, v->len);
	case RV_ARR:
		msgpack_pack_array(pk, v->n);
		for (i = 0; i < v->n; i++)
			if (rv_pack(pk, &v->items[i]) != 0)
				return -1;
		return 0;
	case RV_MAP:
		msgpack_pack_map(pk, v->n);
		for (i = 0; i < 2 * v->n; i++)
			if (rv_pack(pk, &v->items[i]) != 0)
				return -1;
		return 0;
	default:
		return -1;	/* patterns only */
	}
}

/* ---- rendering ---- */

struct sbuf {
	char *p;
	size_t len, cap;
};

static void
sb_add(struct sbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
sb_add(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->len >= b->cap)
		return;
	va_start(ap, fmt);
	n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		b->len += (size_t)n;
	if (b->len >= b->cap)
		b->len = b->cap;
}

static void
sb_str(struct sbuf *b, const char *s, size_t n, bool bin)
{
	size_t i;

	sb_add(b, "%s'", bin ? "b" : "");
	for (i = 0; i < n && i < 200; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\'' || c == '\\')
			sb_add(b, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			sb_add(b, "\\x%02x", c);
		else
			sb_add(b, "%c", c);
	}
	if (i < n)
		sb_add(b, "...(%zu bytes)", n);
	sb_add(b, "'");
}

static bool
is_ident(const msgpack_object *o)
{
	uint32_t i;

	if (o->type != MSGPACK_OBJECT_STR || o->via.str.size == 0)
		return false;
	if (!isalpha((unsigned char)o->via.str.ptr[0]) &&
	    o->via.str.ptr[0] != '_')
		return false;
	for (i = 0; i < o->via.str.size; i++)
		if (!isalnum((unsigned char)o->via.str.ptr[i]) &&
		    o->via.str.ptr[i] != '_')
			return false;
	return !(o->via.str.size == 1 && o->via.str.ptr[0] == '_');
}

static void
render(struct sbuf *b, const msgpack_object *o)
{
	uint32_t i;

	switch (o->type) {
	case MSGPACK_OBJECT_NIL: sb_add(b, "nil"); break;
	case MSGPACK_OBJECT_BOOLEAN:
		sb_add(b, "%s", o->via.boolean ? "true" : "false");
		break;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		sb_add(b, "%llu", (unsigned long long)o->via.u64);
		break;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		sb_add(b, "%lld", (long long)o->via.i64);
		break;
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		sb_add(b, "%.17g", o->via.f64);
		break;
	case MSGPACK_OBJECT_STR:
		sb_str(b, o->via.str.ptr, o->via.str.size, false);
		break;
	case MSGPACK_OBJECT_BIN:
		sb_str(b, o->via.bin.ptr, o->via.bin.size, true);
		break;
	case MSGPACK_OBJECT_EXT:
		sb_add(b, "ext(%d, %u bytes)", o->via.ext.type,
		    o->via.ext.size);
		break;
	case MSGPACK_OBJECT_ARRAY:
		sb_add(b, "[");
		for (i = 0; i < o->via.array.size; i++) {
			if (i > 0)
				sb_add(b, ", ");
			render(b, &o->via.array.ptr[i]);
		}
		sb_add(b, "]");
		break;
	case MSGPACK_OBJECT_MAP:
		sb_add(b, "{");
		for (i = 0; i < o->via.map.size; i++) {
			const msgpack_object *k = &o->via.map.ptr[i].key;

			if (i > 0)
				sb_add(b, ", ");
			if (is_ident(k))
				sb_add(b, "%.*s", (int)k->via.str.size,
				    k->via.str.ptr);
			else
				render(b, k);
			sb_add(b, ":");
			render(b, &o->via.map.ptr[i].val);
		}
		sb_add(b, "}");
		break;
	}
}

char *
rc_render(const msgpack_object *o, char *buf, size_t len)
{
	struct sbuf b = { buf, 0, len };

	if (len == 0)
		return buf;
	buf[0] = '\0';
	render(&b, o);
	if (b.len >= len)
		b.len = len - 1;
	buf[b.len] = '\0';
	return buf;
}

const char *
rc_show(const msgpack_object *o)
{
	static char ring[8][4096];
	static unsigned next;

	if (o == NULL)
		return "(none)";
	return rc_render(o, ring[next++ % 8], sizeof(ring[0]));
}

/* ---- matching ---- */

static bool
obj_int(const msgpack_object *o, int64_t *v)
{
	if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
	    o->via.u64 <= INT64_MAX) {
		*v = (int64_t)o->via.u64;
		return true;
	}
	if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
		*v = o->via.i64;
		return true;
	}
	return false;
}

static bool
rv_match(const struct rv *p, const msgpack_object *o)
{
	int64_t iv;
	size_t i;
	uint32_t j;

	switch (p->t) {
	case RV_ANY: return true;
	case RV_ABSENT: return false;
	case RV_NIL: return o->type == MSGPACK_OBJECT_NIL;
	case RV_BOOL:
		return o->type == MSGPACK_OBJECT_BOOLEAN &&
		    o->via.boolean == p->b;
	case RV_INT: return obj_int(o, &iv) && iv == p->i;
	case RV_UINT:
		return o->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
		    o->via.u64 == p->u;
	case RV_FLOAT:
		return (o->type == MSGPACK_OBJECT_FLOAT32 ||
		    o->type == MSGPACK_OBJECT_FLOAT64) && o->via.f64 == p->d;
	case RV_STR:
		return o->type == MSGPACK_OBJECT_STR &&
		    o->via.str.size == p->len &&
		    memcmp(o->via.str.ptr, p->s, p->len) == 0;
	case RV_BIN:
		return o->type == MSGPACK_OBJECT_BIN &&
		    o->via.bin.size == p->len &&
		    memcmp(o->via.bin.ptr, p->s, p->len) == 0;
	case RV_ARR:
		if (o->type != MSGPACK_OBJECT_ARRAY ||
		    o->via.array.size != p->n)
			return false;
		for (i = 0; i < p->n; i++)
			if (!rv_match(&p->items[i], &o->via.array.ptr[i]))
				return false;
		return true;
	case RV_MAP: {
		size_t present = 0;

		if (o->type != MSGPACK_OBJECT_MAP)
			return false;
		for (i = 0; i < p->n; i++) {
			const struct rv *pk = &p->items[2 * i];
			const struct rv *pv = pk + 1;
			const msgpack_object *found = NULL;

			for (j = 0; j < o->via.map.size; j++)
				if (rv_match(pk, &o->via.map.ptr[j].key)) {
					found = &o->via.map.ptr[j].val;
					break;
				}
			if (pv->t == RV_ABSENT) {
				if (found != NULL)
					return false;
				continue;
			}
			if (found == NULL || !rv_match(pv, found))
				return false;
			present++;
		}
		return p->open || present == o->via.map.size;
	}
	}
	return false;
}

bool
rc_match(const msgpack_object *o, char *err, size_t errlen,
    const char *fmt, ...)
{
	struct rv pat;
	va_list ap;
	char *text;
	bool ok;

	va_start(ap, fmt);
	text = vfmt(fmt, ap);
	va_end(ap);
	if (rv_parse(text, &pat, err, errlen) != 0) {
		free(text);
		return false;
	}
	ok = o != NULL && rv_match(&pat, o);
	if (!ok && err != NULL)
		snprintf(err, errlen, "expected %s\n     got %s", text,
		    rc_show(o));
	rv_free(&pat);
	free(text);
	return ok;
}

/* ---- building ---- */

static int
vbuild(uint8_t **out, size_t *outlen, const char *fmt, va_list ap)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	char err[400];
	struct rv v;
	char *text;
	int rc;

	text = vfmt(fmt, ap);
	if (rv_parse(text, &v, err, sizeof(err)) != 0) {
		fprintf(stderr, "rawclient: %s\n", err);
		free(text);
		return -1;
	}
	free(text);
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	rc = rv_pack(&pk, &v);
	rv_free(&v);
	if (rc != 0) {
		msgpack_sbuffer_destroy(&sb);
		return -1;
	}
	*out = (uint8_t *)sb.data;
	*outlen = sb.size;
	return 0;
}

int
rc_build(uint8_t **out, size_t *outlen, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = vbuild(out, outlen, fmt, ap);
	va_end(ap);
	return rc;
}

/* ---- connection ---- */

void
rc_msg_free(struct rc_msg *m)
{
	if (m == NULL)
		return;
	msgpack_zone_free(m->zone);
	free(m->raw);
	free(m);
}

void
rc_msgs_free(struct rc_msg **v, size_t n)
{
	size_t i;

	if (v == NULL)
		return;
	for (i = 0; i < n; i++)
		rc_msg_free(v[i]);
	free(v);
}

/* Frame every complete message in c->buf onto the queue. */
static void
frame(struct rc_conn *c)
{
	for (;;) {
		struct rc_msg *m, **tail;
		size_t n;
		int rc;

		if (c->len == 0)
			return;
		rc = proto_scan(c->buf, c->len, PROTO_MAX_NESTING, &n);
		if (rc == -EAGAIN)
			return;
		if (rc != 0) {
			fprintf(stderr, "rawclient: unparseable bytes from "
			    "agent (first 0x%02x)\n", c->buf[0]);
			c->eof = true;
			c->len = 0;
			return;
		}
		m = calloc(1, sizeof(*m));
		if (m == NULL)
			abort();
		m->raw = xrealloc(NULL, n);
		memcpy(m->raw, c->buf, n);
		m->rawlen = n;
		m->zone = msgpack_zone_new(4096);
		if (m->zone == NULL ||
		    proto_unpack(m->raw, n, m->zone, &m->obj) != 0) {
			fprintf(stderr, "rawclient: unpack failed\n");
			c->eof = true;
			rc_msg_free(m);
			return;
		}
		memmove(c->buf, c->buf + n, c->len - n);
		c->len -= n;
		for (tail = &c->queue; *tail != NULL; tail = &(*tail)->next)
			;
		*tail = m;
	}
}

/* Read once (data must be ready or arrive within timeout). 1 data, 0 none. */
static int
fill(struct rc_conn *c, int timeout_ms)
{
	struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
	ssize_t r;
	int pr;

	if (c->eof)
		return -1;
	pr = poll(&pfd, 1, timeout_ms < 0 ? 0 : timeout_ms);
	if (pr < 0 && errno == EINTR)
		return 0;
	if (pr <= 0)
		return 0;
	if (c->cap - c->len < 65536) {
		c->cap = c->cap * 2 + 65536;
		c->buf = xrealloc(c->buf, c->cap);
	}
	r = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (r <= 0) {
		c->eof = true;
		return -1;
	}
	c->len += (size_t)r;
	frame(c);
	return 1;
}

static struct rc_msg *
take(struct rc_conn *c, bool (*want)(const struct rc_msg *, int64_t),
    int64_t arg)
{
	struct rc_msg **pp;

	for (pp = &c->queue; *pp != NULL; pp = &(*pp)->next) {
		if (want == NULL || want(*pp, arg)) {
			struct rc_msg *m = *pp;

			*pp = m->next;
			m->next = NULL;
			return m;
		}
	}
	return NULL;
}

static struct rc_msg *
recv_until(struct rc_conn *c, bool (*want)(const struct rc_msg *, int64_t),
    int64_t arg, int timeout_ms)
{
	long long deadline = harness_now_ms() + timeout_ms;
	struct rc_msg *m;

	for (;;) {
		long long left;

		if ((m = take(c, want, arg)) != NULL)
			return m;
		left = deadline - harness_now_ms();
		if (left < 0 || c->eof)
			return NULL;
		if (fill(c, (int)left) < 0)
			return take(c, want, arg);
	}
}

struct rc_msg *
rc_recv(struct rc_conn *c, int timeout_ms)
{
	return recv_until(c, NULL, 0, timeout_ms);
}

static bool
want_seq(const struct rc_msg *m, int64_t seq)
{
	const msgpack_object *s = proto_map_get(&m->obj, "seq");
	int64_t v;

	return s != NULL && obj_int(s, &v) && v == seq;
}

static bool
want_noseq(const struct rc_msg *m, int64_t unused)
{
	(void)unused;
	return proto_map_get(&m->obj, "seq") == NULL;
}

struct rc_msg *
rc_recv_seq(struct rc_conn *c, int64_t seq, int timeout_ms)
{
	return recv_until(c, want_seq, seq, timeout_ms);
}

struct rc_msg *
rc_next_item(struct rc_conn *c, int64_t seq)
{
	for (;;) {
		struct rc_msg *m = rc_recv_seq(c, seq, RC_TIMEOUT);

		cr_assert(m != NULL, "watch %lld: no item within %d ms",
		    (long long)seq, RC_TIMEOUT);
		if (!proto_str_eq(proto_map_get(&m->obj, "state"),
		    "uptodate"))
			return m;
		rc_msg_free(m);
	}
}

struct rc_msg *
rc_recv_noseq(struct rc_conn *c, int timeout_ms)
{
	return recv_until(c, want_noseq, 0, timeout_ms);
}

bool
rc_wait_eof(struct rc_conn *c, int timeout_ms)
{
	long long deadline = harness_now_ms() + timeout_ms;

	while (!c->eof) {
		long long left = deadline - harness_now_ms();

		if (left < 0)
			return false;
		fill(c, (int)left);
		c->len = 0;	/* drop whatever it still sends */
		while (c->queue != NULL)
			rc_msg_free(take(c, NULL, 0));
	}
	return true;
}

int
rc_send_raw(struct rc_conn *c, const void *buf, size_t len)
{
	long long deadline = harness_now_ms() + 20000;
	const uint8_t *p = buf;

	while (len > 0) {
		struct pollfd pfd = { .fd = c->fd, .events = POLLOUT | POLLIN };
		ssize_t w;

		if (harness_now_ms() > deadline)
			return -1;
		if (poll(&pfd, 1, 100) <= 0)
			continue;
		if (pfd.revents & POLLIN)
			fill(c, 0);	/* keep the agent's replies moving */
		if (!(pfd.revents & (POLLOUT | POLLERR | POLLHUP)))
			continue;
		w = send(c->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (w <= 0)
			return -1;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

static struct rc_conn *
open_conn(const char *sockpath, bool greet)
{
	struct rc_conn *c;
	int fd = harness_connect(sockpath);

	if (fd < 0)
		return NULL;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		abort();
	c->fd = fd;
	if (greet) {
		c->greeting = rc_recv_seq(c, 0, RC_TIMEOUT);
		if (c->greeting == NULL) {
			rc_close(c);
			return NULL;
		}
	}
	return c;
}

struct rc_conn *
rc_open(const char *sockpath)
{
	return open_conn(sockpath, true);
}

struct rc_conn *
rc_open_nogreet(const char *sockpath)
{
	return open_conn(sockpath, false);
}

void
rc_close(struct rc_conn *c)
{
	if (c == NULL)
		return;
	if (c->fd >= 0)
		close(c->fd);
	while (c->queue != NULL)
		rc_msg_free(take(c, NULL, 0));
	rc_msg_free(c->greeting);
	free(c->buf);
	free(c);
}

static int64_t
vsend(struct rc_conn *c, const char *fmt, va_list ap)
{
	msgpack_unpacked up;
	uint8_t *buf;
	size_t len;
	int64_t seq = -1;
	const msgpack_object *s;

	if (vbuild(&buf, &len, fmt, ap) != 0)
		cr_assert_fail("rawclient: bad request notation: %s", fmt);
	msgpack_unpacked_init(&up);
	if (msgpack_unpack_next(&up, (const char *)buf, len, NULL) ==
	    MSGPACK_UNPACK_SUCCESS && (s = proto_map_get(&up.data, "seq"))
	    != NULL)
		obj_int(s, &seq);
	msgpack_unpacked_destroy(&up);
	if (rc_send_raw(c, buf, len) != 0)
		seq = -2;
	free(buf);
	return seq;
}

int64_t
rc_send(struct rc_conn *c, const char *fmt, ...)
{
	va_list ap;
	int64_t seq;

	va_start(ap, fmt);
	seq = vsend(c, fmt, ap);
	va_end(ap);
	return seq;
}

struct rc_msg *
rc_call(struct rc_conn *c, const char *fmt, ...)
{
	struct rc_msg *m;
	va_list ap;
	int64_t seq;

	va_start(ap, fmt);
	seq = vsend(c, fmt, ap);
	va_end(ap);
	cr_assert(seq >= 0, "rc_call: request has no seq or send failed");
	m = rc_recv_seq(c, seq, RC_TIMEOUT);
	cr_assert(m != NULL, "no reply to seq %lld within %d ms%s",
	    (long long)seq, RC_TIMEOUT, c->eof ? " (connection closed)" : "");
	return m;
}

struct rc_msg **
rc_collect(struct rc_conn *c, int64_t seq, size_t *n, int timeout_ms)
{
	long long deadline = harness_now_ms() + timeout_ms;
	struct rc_msg **v = NULL;
	size_t k = 0;

	for (;;) {
		long long left = deadline - harness_now_ms();
		struct rc_msg *m;
		const msgpack_object *st;

		m = rc_recv_seq(c, seq, left < 0 ? 0 : (int)left);
		cr_assert(m != NULL, "multi reply %lld: no 'end' within %d ms "
		    "after %zu messages%s", (long long)seq, timeout_ms, k,
		    c->eof ? " (connection closed)" : "");
		v = xrealloc(v, (k + 1) * sizeof(*v));
		v[k++] = m;
		st = proto_map_get(&m->obj, "state");
		if (proto_str_eq(st, "end"))
			break;
	}
	*n = k;
	return v;
}

/* ---- lookups ---- */

const msgpack_object *
rc_get(const msgpack_object *o, const char *dotted)
{
	char key[128];
	const char *p = dotted;

	while (o != NULL && *p != '\0') {
		size_t n = strcspn(p, ".");

		if (n >= sizeof(key))
			return NULL;
		memcpy(key, p, n);
		key[n] = '\0';
		o = proto_map_get(o, key);
		p += n;
		if (*p == '.')
			p++;
	}
	return o;
}

int64_t
rc_int(const msgpack_object *o, const char *dotted)
{
	const msgpack_object *v = rc_get(o, dotted);
	int64_t i = 0;

	cr_assert(v != NULL && obj_int(v, &i), "expected an integer at '%s' "
	    "in %s", dotted, rc_show(o));
	return i;
}

bool
rc_has(const msgpack_object *o, const char *dotted)
{
	return rc_get(o, dotted) != NULL;
}

bool
rc_str_prefix(const msgpack_object *o, const char *dotted,
    const char *prefix)
{
	const msgpack_object *v = rc_get(o, dotted);
	size_t n = strlen(prefix);

	return v != NULL && v->type == MSGPACK_OBJECT_STR &&
	    v->via.str.size >= n && memcmp(v->via.str.ptr, prefix, n) == 0;
}

const char *
rc_lengthen(struct rc_paths *L, const msgpack_object *item)
{
	static char ring[8][1024];
	static unsigned next;
	const msgpack_object *path = proto_map_get(item, "path");
	const msgpack_object *depth = proto_map_get(item, "depth");
	char *out = ring[next++ % 8];
	struct sbuf b = { out, 0, sizeof(ring[0]) };
	int64_t d = 0;
	size_t i;

	if (depth == NULL)
		L->n = 0;	/* full path */
	else if (!obj_int(depth, &d) || d < 0 || (size_t)d > L->n)
		return "(bad depth)";
	else
		L->n = (size_t)d;
	if (path == NULL || path->type != MSGPACK_OBJECT_ARRAY)
		return "(bad path)";
	for (i = 0; i < path->via.array.size &&
	    L->n < sizeof(L->elem) / sizeof(L->elem[0]); i++)
		L->elem[L->n++] = &path->via.array.ptr[i];
	sb_add(&b, "[");
	for (i = 0; i < L->n; i++) {
		if (i > 0)
			sb_add(&b, ", ");
		render(&b, L->elem[i]);
	}
	sb_add(&b, "]");
	if (b.len >= b.cap)
		b.len = b.cap - 1;
	out[b.len] = '\0';
	return out;
}

const char *
rc_agent_err(const struct harness_agent *a)
{
	static char buf[8192];
	char path[320];
	size_t n = 0;
	FILE *f;

	buf[0] = '\0';
	snprintf(path, sizeof(path), "%s/agent.err", a->dir);
	if ((f = fopen(path, "r")) != NULL) {
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
	}
	buf[n] = '\0';
	return buf;
}
