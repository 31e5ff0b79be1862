/*
 * form: the text edges of an etcd v2 request, parsed strictly.
 *
 * Percent-decoding of the URL path, application/x-www-form-urlencoded
 * query strings and bodies (as Go's url.ParseQuery: '&' separates pairs,
 * '+' is a space, a bad %XX escape is an error, the first value of a
 * repeated name wins), etcd's key cleaning (path.Clean("/" + key)) and
 * Go's strconv.ParseBool / ParseUint(s, 10, 64), so that the gateway
 * accepts and refuses exactly what etcd accepts and refuses.
 *
 * Pure functions, no globals; any thread.
 */
#ifndef DKV_ETCD_FORM_H
#define DKV_ETCD_FORM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct form_kv {
	char *key;
	char *val;
};

/* Name/value pairs in arrival order; zero-initialise before use. */
struct form {
	size_t n, cap;
	struct form_kv *kv;
};

/*
 * Append the pairs of the urlencoded text s[0..len).  Returns 0, -ENOMEM,
 * or -EINVAL for a bad escape (nothing appended then), with *bad set to a
 * static text naming the problem.
 */
int form_parse(struct form *f, const char *s, size_t len, const char **bad);
/* First value of key, or NULL when absent. */
const char *form_get(const struct form *f, const char *key);
void form_free(struct form *f);

/*
 * Percent-decode a URL path (no '+' rule) into a new NUL-terminated
 * string.  -EINVAL for a bad escape or a decoded NUL byte, -ENOMEM.
 */
int form_unescape_path(const char *s, size_t len, char **out);

/*
 * etcd's key: path.Clean("/" + key) - duplicate slashes dropped, "." and
 * ".." resolved, no trailing slash; the root is "/".  New string or NULL.
 */
char *form_clean_key(const char *key);

/* Go's strconv.ParseBool: 1 t T TRUE true True 0 f F FALSE false False. */
int form_parse_bool(const char *s, bool *out);
/* Go's strconv.ParseUint(s, 10, 64): digits only, no sign, no overflow. */
int form_parse_uint64(const char *s, uint64_t *out);

#endif
