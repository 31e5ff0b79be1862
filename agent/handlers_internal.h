/*
 * handlers_internal: what the action files of the request handlers
 * (handlers*.c) share.  Not a public interface: handlers.h is.
 */
#ifndef DISTKV_HANDLERS_INTERNAL_H
#define DISTKV_HANDLERS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <msgpack.h>

#include "chain.h"

struct agent;
struct conn;
struct entry;
struct handlers_conn;
struct task;

/* the greeting's version is libdistkv's (one number for the project) */
#include "distkv.h"

/* Longest chain a client may ask for in a reply. */
#define HANDLERS_MAX_NCHAIN CHAIN_CAP

/* One request being handled. */
struct req {
	struct conn *c;
	struct handlers_conn *hc;
	struct agent *a;
	uint64_t seq;
	const msgpack_object *msg;
	bool streamed;		/* state: "start" */
	/* a set's path key, kept by req_path from its lookup for its
	 * create (NULL: none) */
	struct tree_key *key;
};

/*
 * A canonical value: small ones in place (a set should not cost an 8 KiB
 * sbuffer allocation), larger ones on the heap.
 */
struct valbuf {
	uint8_t small[512];
	uint8_t *data;
	size_t size, cap;
};

/*
 * A stored value as a connection sees it (xlate_read: its converter's
 * encoding): shown_init decides, then pack_shown packs the value (false:
 * it failed, err says why and nothing is packed).
 */
struct xlate_user;
struct shown {
	const struct entry *e;
	bool converted, failed;
	uint8_t *buf;		/* converted value, NULL: nil */
	size_t len;
	char err[1024];
};

/* handlers.c */
/* Inline: the keys are literals, so their strlen is a constant. */
static inline void
pack_key(msgpack_packer *pk, const char *k)
{
	msgpack_pack_str_with_body(pk, k, strlen(k));
}
void pack_value(struct conn *c, msgpack_packer *pk, const struct entry *e);
void shown_init(struct shown *s, struct agent *a,
    const struct xlate_user *conv, const struct entry *e);
void pack_shown(struct conn *c, msgpack_packer *pk, const struct shown *s);
void shown_fini(struct shown *s);
bool req_int_bad(struct req *r, const char *key);

/*
 * Optional integer field; returns false (and replies) if malformed.
 * Inline: with the key a literal, the lookup compares a known length
 * (a call with a strlen cost a get 70 instructions for its nchain).
 */
static inline bool
req_int(struct req *r, const char *key, int64_t dflt, int64_t lo, int64_t hi,
    int64_t *out)
{
	const msgpack_object *o = proto_map_get(r->msg, key);

	*out = dflt;
	if (o == NULL || o->type == MSGPACK_OBJECT_NIL)
		return true;
	if (proto_get_int(o, out) != 0)
		return req_int_bad(r, key);
	if (*out < lo)
		*out = lo;
	if (*out > hi)
		*out = hi;
	return true;
}
bool req_bool(struct req *r, const char *key, bool dflt, bool *out);
bool req_path(struct req *r, bool create, bool internal, struct entry **out);
/* How req_path_acl walks: find only (an absent entry ends the walk),
 * check as if creating ('n' for absent children), or create. */
enum path_mode { PATH_FIND, PATH_CHECK_NEW, PATH_CREATE };
bool req_path_acl(struct req *r, enum path_mode mode, char letter,
    struct entry **out);
void repr_bytes(char *buf, size_t cap, const uint8_t *p, size_t len);
void repr_chain(char *buf, size_t cap, const struct chain *c);
bool below(const struct entry *base, const struct entry *e);
void valbuf_init(struct valbuf *v);
void valbuf_fini(struct valbuf *v);
bool canonical(struct valbuf *v, const msgpack_object *o);
struct entry *child_str(struct agent *a, struct entry *e, const char *s,
    size_t len, bool create);
struct entry *auth_entry(struct agent *a);
const msgpack_object *auth_current(struct agent *a, msgpack_zone *zone,
    msgpack_object *val);
/* Whether this connection may be told the shm region at all. */
bool handlers_shm_allowed(struct conn *c);
/* handlers_values.c */
void act_get_value(struct req *r);
void act_get_internal(struct req *r);
void reply_change_error(struct req *r, int rc);
void set_common(struct req *r, bool internal, bool del);
void act_set_value(struct req *r);
void act_delete_value(struct req *r);
void act_set_internal(struct req *r);
void act_delete_internal(struct req *r);
/* handlers_tree.c */
void free_task(struct task *t);
void act_get_tree(struct req *r);
void act_watch(struct req *r);
void act_root(struct req *r);
void act_get_state(struct req *r);
void act_delete_tree(struct req *r);
/* handlers_files.c */
void act_save(struct req *r);
void act_log(struct req *r);
void act_update(struct req *r);
/* handlers_cluster.c */
void act_stop(struct req *r);
void act_serfsend(struct req *r);
void act_serfmon(struct req *r);
void act_peer_auth(struct req *r);
void act_dump(struct req *r);
void act_get_events(struct req *r);
/* handlers_auth.c */
void act_auth(struct req *r);
void act_auth_set(struct req *r);
void act_set_auth_typ(struct req *r);
void act_auth_list(struct req *r);
void act_auth_get(struct req *r);
void act_diffie_hellman(struct req *r);

/* handlers_acl.c */
void act_test_acl(struct req *r);
void act_get_shm(struct req *r);

/* handlers_ops.c: operator tooling (docs/cluster.md, operations.md) */
void act_get_members(struct req *r);
void act_get_metrics(struct req *r);
void act_kill_node(struct req *r);
void act_get_snapshot(struct req *r);

/* handlers_auth.c: what the login methods (auth_*.c) share */
struct entry *auth_user_entry(struct agent *a, const msgpack_object *typ,
    const msgpack_object *ident);
bool auth_data_empty(const msgpack_object *o);
void auth_write(struct req *r, const char **path, size_t npath,
    const msgpack_object *value, const msgpack_object *chain, bool has_chain);
void auth_set_generic(struct req *r, const char *method,
    const msgpack_object *ident);
void auth_get_generic(struct req *r, const struct entry *rec);

#endif
