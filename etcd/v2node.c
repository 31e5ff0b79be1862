/* v2node: see v2node.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "mpjson.h"
#include "proto.h"
#include "v2node.h"

/* The directory marker is exactly the one-byte empty fixmap. */
static const unsigned char dir_marker = 0x80;

int
v2node_value(const void *mp, size_t len, bool *dir, char **text, size_t *tlen)
{
	msgpack_sbuffer sb;
	const unsigned char *p = mp;
	int rc;

	*dir = false;
	*text = NULL;
	*tlen = 0;
	if (len == 1 && p[0] == dir_marker) {
		*dir = true;
		return 0;
	}
	msgpack_sbuffer_init(&sb);
	/* a string as its bytes, everything else as JSON text */
	if ((rc = mpjson_format_bytes(&sb, mp, len, MPJSON_BARE_STR)) != 0) {
		msgpack_sbuffer_destroy(&sb);
		return rc;
	}
	if ((*text = malloc(sb.size + 1)) == NULL) {
		msgpack_sbuffer_destroy(&sb);
		return -ENOMEM;
	}
	if (sb.size > 0)
		memcpy(*text, sb.data, sb.size);
	(*text)[sb.size] = '\0';
	*tlen = sb.size;
	msgpack_sbuffer_destroy(&sb);
	return 0;
}

json_t *
v2node_string(const char *s, size_t len)
{
	json_t *j;
	char *copy;

	if ((j = json_stringn(s, len)) != NULL)
		return j;
	/* not UTF-8 (a value another client wrote as raw bytes) */
	if ((copy = malloc(len + 1)) == NULL)
		return NULL;
	memcpy(copy, s, len);
	len = proto_utf8_sanitize(copy, len);
	j = json_stringn(copy, len);
	free(copy);
	return j;
}

json_t *
v2node_new(const char *key, bool dir, const char *value, size_t vlen,
    uint64_t modified, uint64_t created)
{
	json_t *o = json_object();

	if (o == NULL)
		return NULL;
	if (key != NULL)
		json_object_set_new(o, "key", v2node_string(key, strlen(key)));
	if (dir)
		json_object_set_new(o, "dir", json_true());
	else if (value != NULL)
		json_object_set_new(o, "value", v2node_string(value, vlen));
	if (modified != 0)
		json_object_set_new(o, "modifiedIndex",
		    json_integer((json_int_t)modified));
	if (created != 0)
		json_object_set_new(o, "createdIndex",
		    json_integer((json_int_t)created));
	return o;
}

char *
v2node_dump(json_t *o, size_t *len)
{
	char *s, *out;
	size_t n;

	*len = 0;
	if (o == NULL)
		return NULL;
	s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	if (s == NULL)
		return NULL;
	n = strlen(s);
	if ((out = realloc(s, n + 2)) == NULL) {
		free(s);
		return NULL;
	}
	out[n] = '\n';
	out[n + 1] = '\0';
	*len = n + 1;
	return out;
}

bool
v2node_hidden(const char *name)
{
	return name[0] == '_';
}
