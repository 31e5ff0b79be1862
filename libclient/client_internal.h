/*
 * client_internal: helpers shared by the libdistkv source files (path.c,
 * value.c, client.c).  Not installed; nothing here is exported API.
 */
#ifndef DISTKV_CLIENT_INTERNAL_H
#define DISTKV_CLIENT_INTERNAL_H

#include <msgpack.h>

#include "distkv.h"

/* Append src's elements from index 'from' on to dst. */
int	path_append(distkv_path *dst, const distkv_path *src, size_t from);
/* Pack p as a msgpack array (NULL packs the root, []). */
int	path_pack(msgpack_packer *pk, const distkv_path *p);
/*
 * The canonical key bytes of p (what path_pack writes) into buf, without
 * a packer: returns the length, or, if cap is too small, a size that is
 * enough (call again with a buffer that big).
 */
size_t	path_key(const distkv_path *p, uint8_t *buf, size_t cap);
/* The key bytes kept in p (NULL if they did not fit): borrowed; *hash
 * (if not NULL) their shm_key_hash, computed when p last changed. */
const uint8_t *path_key_cached(const distkv_path *p, size_t *len,
	    uint64_t *hash);
/*
 * The same, read inline: a path's first member is its key cache, kept by
 * path.c (refreshed on every change of the elements: a cached key is
 * never an older path's).  len 0: the key did not fit key[] (then
 * path_key encodes it).  The shm read path by distkv_path reads this
 * with no call, no encoding and no hashing.
 */
#define PATH_KEY_CACHE 110
struct path_keycache {
	uint64_t hash;			/* shm_key_hash(key, len) */
	uint16_t len;			/* 0: the key does not fit key[] */
	uint8_t key[PATH_KEY_CACHE];
};

static inline const struct path_keycache *
path_keycache(const distkv_path *p)
{
	return ((const struct path_keycache *)(const void *)p);
}
/* Append the elements of a msgpack array from the agent; DISTKV_EPROTO if
 * it is not a valid path. */
int	path_push_object(distkv_path *p, const msgpack_object *o);

/* Copy one msgpack object into v in packed form.  Returns 0 or -ENOMEM. */
int	value_from_object(struct distkv_value *v, const msgpack_object *o);

/* errors.c: the DISTKV_E* code of the agent's error text (len bytes);
 * DISTKV_ESERVER for a text of no known kind. */
int	client_error_code(const char *text, size_t len);
/* shmclient.c: the region is not closed and its heartbeat is recent (no
 * system call); distkv_get only trusts a fresh region. */
bool	shm_client_fresh(distkv_shm *s);
/* shmclient.c: distkv_get's read of p in the region: the value (owned
 * by v) and its tock; DISTKV_ENOTFOUND, DISTKV_EBUSY, DISTKV_ECORRUPT
 * as distkv_shm_get. */
int	shm_client_get_value(distkv_shm *s, const distkv_path *p,
	    struct distkv_value *v, uint64_t *tock);
/* client.c: the connection's diffie_hellman key (32 bytes) and whether
 * it is set (login.c). */
uint8_t	*client_dh_key(distkv *c, bool **done);
/* client.c: a login succeeded: ask for the shm region again. */
void	client_login_done(distkv *c);
/* client.c: the handle's cache of strget.c (NULL until first used);
 * strget.c: free it. */
struct strcache;
struct strcache **client_strcache(distkv *c);
void	strcache_free(struct strcache *sc);
/* client.c: true after distkv_root changed the connection's root. */
bool	client_has_root(const distkv *c);
/* client.c: the handle of a connected socket, greeting read (see the
 * comment there); connect.c dials, client.c runs it. */
struct tls_conn;
int	client_adopt(int fd, struct tls_conn *tls, int timeout_ms,
	    distkv **out);
/* client.c: $DISTKV_TIMEOUT or the default, in ms (<0: none). */
int	client_default_timeout_ms(void);
/* client.c: true if the handle speaks TLS with a client certificate. */
bool	client_has_cert(const distkv *c);
/* connect.c: set the text distkv_connect_errmsg() reports. */
void	client_connect_err(const char *fmt, ...)
	    __attribute__((format(printf, 1, 2)));

#endif
