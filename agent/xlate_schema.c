/* xlate_schema: see xlate_schema.h. */
#include <stdio.h>

#include "xlate_schema.h"

const char *
xl_schema_invalid(const msgpack_object *s, char *err, size_t cap)
{
	(void)s;
	snprintf(err, cap, "JSON schemas are not supported yet");
	return err;
}

bool
xl_schema_check(const msgpack_object *s, const msgpack_object *v, char *err,
    size_t cap)
{
	(void)s;
	(void)v;
	snprintf(err, cap, "JSON schemas are not supported yet");
	return false;
}
