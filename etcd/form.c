/*
 * form: see form.h.  Everything here reads bytes a client chose: every
 * length is checked before use and a malformed escape is refused, never
 * passed through, because etcd (Go's net/url) refuses it too.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "form.h"

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decode s[0..len) into a new string; plus: '+' means a space. */
static int
unescape(const char *s, size_t len, bool plus, char **out)
{
	char *d;
	size_t i, j = 0;

	*out = NULL;
	if ((d = malloc(len + 1)) == NULL)
		return -ENOMEM;
	for (i = 0; i < len; i++) {
		if (s[i] == '%') {
			int hi, lo;

			if (i + 2 >= len || (hi = hexval((unsigned char)s[i + 1])) < 0 ||
			    (lo = hexval((unsigned char)s[i + 2])) < 0) {
				free(d);
				return -EINVAL;
			}
			d[j++] = (char)(hi << 4 | lo);
			i += 2;
		} else if (plus && s[i] == '+')
			d[j++] = ' ';
		else
			d[j++] = s[i];
	}
	d[j] = '\0';
	if (memchr(d, '\0', j) != NULL) {
		/* a %00 would cut the C string: refuse instead */
		free(d);
		return -EINVAL;
	}
	*out = d;
	return 0;
}

int
form_unescape_path(const char *s, size_t len, char **out)
{
	return unescape(s, len, false, out);
}

static int
form_add(struct form *f, char *k, char *v)
{
	if (f->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 8;
		struct form_kv *kv = realloc(f->kv, cap * sizeof(*kv));

		if (kv == NULL)
			return -ENOMEM;
		f->kv = kv;
		f->cap = cap;
	}
	f->kv[f->n].key = k;
	f->kv[f->n].val = v;
	f->n++;
	return 0;
}

int
form_parse(struct form *f, const char *s, size_t len, const char **bad)
{
	size_t start = f->n, i = 0;
	int rc;

	*bad = NULL;
	while (i < len) {
		const char *p = s + i, *amp, *eq;
		size_t plen;
		char *k = NULL, *v = NULL;

		amp = memchr(p, '&', len - i);
		plen = amp != NULL ? (size_t)(amp - p) : len - i;
		i += plen + 1;
		if (plen == 0)
			continue;
		eq = memchr(p, '=', plen);
		if ((rc = unescape(p, eq != NULL ? (size_t)(eq - p) : plen,
		    true, &k)) != 0 ||
		    (rc = unescape(eq != NULL ? eq + 1 : "", eq != NULL ?
		    plen - (size_t)(eq - p) - 1 : 0, true, &v)) != 0 ||
		    (rc = form_add(f, k, v)) != 0) {
			free(k);
			free(v);
			/* all or nothing: drop what this call added */
			while (f->n > start) {
				f->n--;
				free(f->kv[f->n].key);
				free(f->kv[f->n].val);
			}
			if (rc == -EINVAL)
				*bad = "invalid URL escape";
			return rc;
		}
	}
	return 0;
}

const char *
form_get(const struct form *f, const char *key)
{
	size_t i;

	for (i = 0; i < f->n; i++)
		if (strcmp(f->kv[i].key, key) == 0)
			return f->kv[i].val;
	return NULL;
}

void
form_free(struct form *f)
{
	size_t i;

	for (i = 0; i < f->n; i++) {
		free(f->kv[i].key);
		free(f->kv[i].val);
	}
	free(f->kv);
	memset(f, 0, sizeof(*f));
}

char *
form_clean_key(const char *key)
{
	size_t len = strlen(key), i = 0, j;
	char *out = malloc(len + 2);

	if (out == NULL)
		return NULL;
	out[0] = '/';
	j = 1;
	while (i < len) {
		size_t e;

		while (i < len && key[i] == '/')
			i++;
		e = i;
		while (e < len && key[e] != '/')
			e++;
		if (e - i == 1 && key[i] == '.') {
			/* "." names the current directory: drop it */
		} else if (e - i == 2 && key[i] == '.' && key[i + 1] == '.') {
			/* "..": back to the previous slash, never above root */
			if (j > 1) {
				j--;
				while (j > 1 && out[j - 1] != '/')
					j--;
			}
		} else if (e > i) {
			if (j > 1 && out[j - 1] != '/')
				out[j++] = '/';
			memcpy(out + j, key + i, e - i);
			j += e - i;
		}
		i = e;
	}
	/* a ".." may leave a trailing slash behind */
	while (j > 1 && out[j - 1] == '/')
		j--;
	out[j] = '\0';
	return out;
}

int
form_parse_bool(const char *s, bool *out)
{
	static const char *const t[] = { "1", "t", "T", "TRUE", "true", "True" };
	static const char *const f[] = { "0", "f", "F", "FALSE", "false", "False" };
	size_t i;

	for (i = 0; i < 6; i++) {
		if (strcmp(s, t[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcmp(s, f[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

int
form_parse_uint64(const char *s, uint64_t *out)
{
	uint64_t v = 0;

	if (*s == '\0')
		return -EINVAL;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		if (v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return -ERANGE;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	return 0;
}
