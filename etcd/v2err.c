/* v2err: see v2err.h. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "v2err.h"

static const struct {
	int code;
	const char *msg;
} messages[] = {
	{ 100, "Key not found" },
	{ 101, "Compare failed" },
	{ 102, "Not a file" },
	{ 103, "Reached the max number of peers in the cluster" },
	{ 104, "Not a directory" },
	{ 105, "Key already exists" },
	{ 106, "The prefix of given key is a keyword in etcd" },
	{ 107, "Root is read only" },
	{ 108, "Directory not empty" },
	{ 109, "Peer address has existed" },
	{ 110, "The request requires user authentication" },
	{ 200, "Value is Required in POST form" },
	{ 201, "PrevValue is Required in POST form" },
	{ 202, "The given TTL in POST form is not a number" },
	{ 203, "The given index in POST form is not a number" },
	{ 204, "Value or TTL is required in POST form" },
	{ 205, "The given timeout in POST form is not a number" },
	{ 206, "Name is required in POST form" },
	{ 207, "Index or value is required" },
	{ 208, "Index and value cannot both be specified" },
	{ 209, "Invalid field" },
	{ 210, "Invalid POST form" },
	{ 211, "Value provided on refresh" },
	{ 212, "A TTL must be provided on refresh" },
	{ 300, "Raft Internal Error" },
	{ 301, "During Leader Election" },
	{ 400, "watcher is cleared due to etcd recovery" },
	{ 401, "The event in requested index is outdated and cleared" },
};

const char *
v2err_message(int code)
{
	size_t i;

	for (i = 0; i < sizeof(messages) / sizeof(messages[0]); i++)
		if (messages[i].code == code)
			return messages[i].msg;
	return "";
}

int
v2err_status(int code)
{
	switch (code) {
	case V2E_KEY_NOT_FOUND:
		return 404;
	case V2E_NOT_FILE:
	case V2E_DIR_NOT_EMPTY:
		return 403;
	case V2E_UNAUTHORIZED:
		return 401;
	case V2E_TEST_FAILED:
	case V2E_NODE_EXIST:
		return 412;
	case V2E_RAFT_INTERNAL:
	case 301:
		return 500;
	default:
		return 400;
	}
}

char *
v2err_body(int code, const char *cause, uint64_t index)
{
	json_t *o = json_object();
	char *s, *out = NULL;
	size_t n;

	if (o == NULL)
		return NULL;
	json_object_set_new(o, "errorCode", json_integer(code));
	json_object_set_new(o, "message", json_string(v2err_message(code)));
	if (cause != NULL && *cause != '\0') {
		json_t *c = json_string(cause);

		/* a cause quoting client bytes may not be UTF-8 */
		json_object_set_new(o, "cause", c != NULL ? c :
		    json_string("(not valid UTF-8)"));
	}
	json_object_set_new(o, "index", json_integer((json_int_t)index));
	s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	if (s == NULL)
		return NULL;
	n = strlen(s);
	if ((out = malloc(n + 2)) != NULL) {
		memcpy(out, s, n);
		out[n] = '\n';
		out[n + 1] = '\0';
	}
	free(s);
	return out;
}
