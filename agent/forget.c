/* forget: see forget.h. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <msgpack.h>

#include "agent.h"
#include "forget.h"
#include "log.h"
#include "serf.h"
#include "sync.h"
#include "tree.h"

/* Canonical msgpack of the string s (the tree's element encoding). */
static size_t
str_elem(uint8_t *buf, size_t cap, const char *s, size_t len)
{
	size_t hdr = len < 32 ? 1 : 2;

	if (len > 255 || len > cap - 2)
		return 0;
	if (hdr == 1)
		buf[0] = (uint8_t)(0xa0 | len);
	else {
		buf[0] = 0xd9;
		buf[1] = (uint8_t)len;
	}
	memcpy(buf + hdr, s, len);
	return hdr + len;
}

/* (nil, "forgotten", name), created on demand. */
static struct entry *
forget_entry(struct agent *a, const char *name, size_t len, bool create)
{
	static const uint8_t nil = 0xc0;
	uint8_t buf[PROTO_MAX_NODE_NAME + 8];
	struct entry *e;
	size_t n;

	if ((n = str_elem(buf, sizeof(buf), name, len)) == 0)
		return NULL;
	e = tree_child(&a->tree, a->tree.root, &nil, 1, create);
	if (e != NULL)
		e = tree_child(&a->tree, e, (const uint8_t *)"\xa9" "forgotten",
		    10, create);
	if (e != NULL)
		e = tree_child(&a->tree, e, buf, n, create);
	return e;
}

bool
forget_is_marked(struct agent *a, const char *name, size_t len)
{
	const struct entry *e = forget_entry(a, name, len, false);

	return e != NULL && entry_has_value(e);
}

bool
forget_member_alive(const struct agent *a, const char *name, size_t len)
{
	const struct serf_member *m;
	size_t n;

	m = sync_members(a, &n);
	for (size_t i = 0; i < n; i++)
		if (strlen(m[i].name) == len &&
		    memcmp(m[i].name, name, len) == 0 &&
		    (strcmp(m[i].status, "alive") == 0 ||
		    strcmp(m[i].status, "leaving") == 0))
			return true;
	return false;
}

bool
forget_skips(struct agent *a, const char *name, size_t len)
{
	return forget_is_marked(a, name, len) &&
	    !forget_member_alive(a, name, len);
}

static bool
known_member(const struct agent *a, const char *name, size_t len)
{
	const struct serf_member *m;
	size_t n;

	m = sync_members(a, &n);
	for (size_t i = 0; i < n; i++)
		if (strlen(m[i].name) == len &&
		    memcmp(m[i].name, name, len) == 0)
			return true;
	return false;
}

int
forget_node(struct agent *a, const char *name, size_t len, char *err,
    size_t cap)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	struct entry *e;
	char cname[PROTO_MAX_NODE_NAME + 1];
	int rc;

	if (len == 0 || len > PROTO_MAX_NODE_NAME) {
		snprintf(err, cap, "Bad node name");
		return -EINVAL;
	}
	memcpy(cname, name, len);
	cname[len] = '\0';
	if (len == a->self->name_len && memcmp(name, a->self->name, len) == 0) {
		snprintf(err, cap, "Cannot forget node %s: it is this node",
		    cname);
		return -EINVAL;
	}
	if (forget_member_alive(a, name, len)) {
		snprintf(err, cap, "Node %s is alive: forget is for nodes that "
		    "are gone for good; stop it (and wait until Serf lists it "
		    "failed or left) first", cname);
		return -EINVAL;
	}
	if (nodes_get(&a->nodes, name, len, false) == NULL &&
	    !known_member(a, name, len)) {
		snprintf(err, cap, "Unknown node %s", cname);
		return -EINVAL;
	}
	if ((e = forget_entry(a, name, len, true)) == NULL) {
		snprintf(err, cap, "Out of memory");
		return -ENOMEM;
	}
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 2);
	msgpack_pack_str_with_body(&pk, "at", 2);
	msgpack_pack_int64(&pk, (int64_t)time(NULL));
	msgpack_pack_str_with_body(&pk, "by", 2);
	msgpack_pack_str_with_body(&pk, a->self->name, a->self->name_len);
	rc = agent_change_local(a, e, (const uint8_t *)sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
	if (rc != 0) {
		snprintf(err, cap, "Cannot record the forget: %s",
		    strerror(-rc));
		return rc;
	}
	/* Serf keeps a failed node listed for a day: drop it now */
	if (known_member(a, name, len) && sync_force_leave(a, cname) != 0)
		log_warn("forget %s: Serf not told (no connection); it drops "
		    "the node itself later", cname);
	log_info("node %s forgotten: tombstone purges no longer wait for it",
	    cname);
	return 0;
}
