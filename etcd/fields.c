/* fields: see fields.h. */
#include <stdio.h>
#include <string.h>

#include "fields.h"
#include "v2err.h"

static int
fail(char *cause, size_t clen, int code, const char *text)
{
	snprintf(cause, clen, "%s", text);
	return code;
}

/* Go's getBool: absent is false, present must parse. */
static int
get_bool(const struct form *f, const char *name, bool *out)
{
	const char *v = form_get(f, name);

	*out = false;
	return v == NULL ? 0 : form_parse_bool(v, out);
}

int
fields_parse(const struct form *f, const char *method, struct fields *fl,
    char *cause, size_t clen)
{
	static const char *const bools[] = { "recursive", "sorted", "wait",
	    "dir", "quorum", "stream" };
	const char *v;
	bool b[6], refresh = false, has_refresh;
	size_t i;

	memset(fl, 0, sizeof(*fl));
	if ((v = form_get(f, "prevIndex")) != NULL) {
		if (form_parse_uint64(v, &fl->prev_index) != 0) {
			return fail(cause, clen, V2E_INDEX_NAN,
			    "invalid value for \"prevIndex\"");
		}
		fl->has_prev_index = fl->prev_index > 0;
	}
	if ((v = form_get(f, "waitIndex")) != NULL &&
	    form_parse_uint64(v, &fl->wait_index) != 0) {
		return fail(cause, clen, V2E_INDEX_NAN,
		    "invalid value for \"waitIndex\"");
	}
	for (i = 0; i < 6; i++)
		if (get_bool(f, bools[i], &b[i]) != 0) {
			snprintf(cause, clen, "invalid value for \"%s\"",
			    bools[i]);
			return V2E_INVALID_FIELD;
		}
	fl->recursive = b[0];
	fl->wait = b[2];
	fl->dir = b[3];
	if (b[5]) {
		/* etcd streams events on one response; we do not */
		return fail(cause, clen, V2E_INVALID_FIELD,
		    "\"stream\" is not supported by distkv-etcd");
	}
	if (fl->wait && strcmp(method, "GET") != 0 &&
	    strcmp(method, "HEAD") != 0) {
		return fail(cause, clen, V2E_INVALID_FIELD,
		    "\"wait\" can only be used with GET requests");
	}
	fl->prev_value = form_get(f, "prevValue");
	if (fl->prev_value != NULL && *fl->prev_value == '\0') {
		return fail(cause, clen, V2E_PREV_VALUE_REQUIRED,
		    "\"prevValue\" cannot be empty");
	}
	fl->has_prev_value = fl->prev_value != NULL;
	if (get_bool(f, "noValueOnSuccess", &fl->novalue) != 0) {
		return fail(cause, clen, V2E_INVALID_FIELD,
		    "invalid value for \"noValueOnSuccess\"");
	}
	if ((v = form_get(f, "ttl")) != NULL && *v != '\0') {
		uint64_t ttl;

		if (form_parse_uint64(v, &ttl) != 0) {
			return fail(cause, clen, V2E_TTL_NAN,
			    "invalid value for \"ttl\"");
		}
	}
	if ((v = form_get(f, "prevExist")) != NULL) {
		if (form_parse_bool(v, &fl->prev_exist) != 0) {
			return fail(cause, clen, V2E_INVALID_FIELD,
			    "invalid value for prevExist");
		}
		fl->has_prev_exist = true;
	}
	has_refresh = (v = form_get(f, "refresh")) != NULL;
	if (has_refresh) {
		if (form_parse_bool(v, &refresh) != 0) {
			return fail(cause, clen, V2E_INVALID_FIELD,
			    "invalid value for refresh");
		}
		if (refresh) {
			v = form_get(f, "value");
			if (v != NULL && *v != '\0') {
				return fail(cause, clen, V2E_REFRESH_VALUE,
				    "A value was provided on a refresh");
			}
			v = form_get(f, "ttl");
			if (v == NULL || *v == '\0') {
				return fail(cause, clen, V2E_REFRESH_TTL_REQUIRED,
				    "No TTL value set");
			}
		}
	}
	/*
	 * TTLs are refused, never ignored: a key the client meant to expire
	 * must not be stored for ever (docs/etcd.md, "TTL").
	 */
	if ((v = form_get(f, "ttl")) != NULL && *v != '\0' &&
	    strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		return fail(cause, clen, V2E_INVALID_FIELD,
		    "ttl is not supported by distkv-etcd: keys never expire");
	}
	fl->value = form_get(f, "value");
	if (fl->value == NULL)
		fl->value = "";
	return 0;
}

