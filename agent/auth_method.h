/*
 * auth_method: one interface for the login methods (spec §4), so that a
 * new method is one file: auth_root.c, auth_test.c, auth_password.c,
 * auth_unix.c, auth_cert.c.  handlers_auth.c runs the auth actions through it.
 */
#ifndef DISTKV_AUTH_METHOD_H
#define DISTKV_AUTH_METHOD_H

#include <stdbool.h>
#include <stddef.h>

#include <msgpack.h>

struct entry;
struct req;

struct auth_method {
	const char *name;
	/* login needs no ident: the method knows who connected (unix) */
	bool ident_optional;
	/*
	 * Check the login of r as ident (NULL only if ident_optional) whose
	 * record is *rec (NULL if there is none; methods that need one are
	 * refused "No such user" before this is called; a method that finds
	 * the record itself sets *rec).  NULL: logged in as *rec (its ACL
	 * binding is read from it); else the error text, built in buf if
	 * needed.
	 */
	const char *(*login)(struct req *r, const msgpack_object *ident,
	    const struct entry **rec, char *buf, size_t cap);
	/* auth_set: write ident's record (auth_write) or reply an error. */
	void (*set)(struct req *r, const msgpack_object *ident);
	/* auth_get: reply what may be shown of rec (a single reply). */
	void (*get)(struct req *r, const struct entry *rec);
	/* client-streamed auth_set/auth_get (spec §4.5), or NULL */
	void (*dialog)(struct req *r, bool get, const msgpack_object *ident);
};

extern const struct auth_method auth_method_root, auth_method_test,
    auth_method_password, auth_method_unix, auth_method_cert;

/* The method named typ (a msgpack str), or NULL. */
const struct auth_method *auth_method_find(const msgpack_object *typ);

#endif
