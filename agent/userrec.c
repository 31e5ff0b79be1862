/* userrec: see userrec.h. */
#include <string.h>

#include <msgpack.h>

#include "proto.h"
#include "tree.h"
#include "userrec.h"

static bool
name_is(const struct entry *e, const char *s)
{
	size_t len = strlen(s);
	const uint8_t *n = entry_name(e);

	return len < 32 && entry_name_len(e) == len + 1 &&
	    n[0] == (0xa0 | len) && memcmp(n + 1, s, len) == 0;
}

/* {key: NAME} or NAME */
static bool
take_name(const msgpack_object *o, char *name, size_t cap, size_t *len)
{
	if (o != NULL && o->type == MSGPACK_OBJECT_MAP)
		o = proto_map_get(o, "key");
	if (o == NULL || o->type != MSGPACK_OBJECT_STR ||
	    o->via.str.size == 0 || o->via.str.size >= cap)
		return false;
	memcpy(name, o->via.str.ptr, o->via.str.size);
	name[o->via.str.size] = 0;
	*len = o->via.str.size;
	return true;
}

bool
userrec_binding(const struct entry *rec, const char *field, char *name,
    size_t cap, size_t *len)
{
	msgpack_zone zone;
	msgpack_object o;
	bool found = false;

	if (rec == NULL)
		return false;
	msgpack_zone_init(&zone, 256);
	for (uint32_t i = 0; i < rec->nchild && !found; i++) {
		const struct entry *c = entry_children(rec)[i];

		found = name_is(c, field) && entry_has_value(c) &&
		    proto_unpack(entry_value(c), entry_value_len(c), &zone,
		    &o) == 0 &&
		    take_name(&o, name, cap, len);
	}
	if (!found && entry_has_value(rec) &&
	    proto_unpack(entry_value(rec), entry_value_len(rec), &zone, &o) == 0)
		found = take_name(proto_map_get(proto_map_get(&o, "_aux"),
		    field), name, cap, len);
	msgpack_zone_destroy(&zone);
	return found;
}
