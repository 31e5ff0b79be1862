/*
 * auth_password: the `password` method (spec §4.4).
 *
 * The client never sends its password: after `diffie_hellman` it seals the
 * SHA-256 of it in a NaCl secretbox under the shared key (nonce ‖ MAC ‖
 * ciphertext, 72 bytes).  The reference stores that bare digest ("TODO
 * Argon2"); we store an Argon2id hash of it (libsodium crypto_pwhash_str),
 * so a stolen snapshot does not hand out logins, while reference clients
 * log in unchanged.  A record loaded from a reference snapshot (a 32-byte
 * `password` byte string) still verifies.
 */
#ifndef DISTKV_AUTH_PASSWORD_H
#define DISTKV_AUTH_PASSWORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include <sodium.h>

#define AUTH_PASSWORD_DIGEST 32
/* What the box holds: 24-byte nonce, 16-byte MAC, the 32-byte digest. */
#define AUTH_PASSWORD_BOX 72
/*
 * Argon2id cost: 2 passes over 16 MiB, about 30 ms here.  It runs in the
 * event loop at every password login and user creation, so it is kept
 * below libsodium's "interactive" 64 MiB (docs/protocol.md).
 */
#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
#define AUTH_PASSWORD_OPSLIMIT 2
#define AUTH_PASSWORD_MEMLIMIT (16u << 20)
#else
/*
 * Fuzzing only (scripts/fuzz.sh defines this for its instrumented build,
 * configure never does, and such an agent refuses to start: main.c):
 * libsodium's minimum cost, 1 pass over 8 KiB, so that the fuzzer spends
 * its time in the decoders and not in Argon2id (docs/fuzzing.md).  The
 * hash is still a valid Argon2id string; verifying reads its cost from it.
 */
#define AUTH_PASSWORD_OPSLIMIT crypto_pwhash_OPSLIMIT_MIN
#define AUTH_PASSWORD_MEMLIMIT crypto_pwhash_MEMLIMIT_MIN
#endif

/*
 * The most a stored Argon2 string may ask for (libsodium's "interactive"
 * memory, twice our passes): the verifier takes the cost from the string,
 * and a record can come from set_internal, a peer or a loaded file
 * (auth_password_verify).
 */
#define AUTH_PASSWORD_MAX_OPSLIMIT 4
#define AUTH_PASSWORD_MAX_MEMLIMIT (64u << 20)

/*
 * Open the client's box o (a 72-byte byte string) with the DH key.
 * Returns 0 with the password's digest, or -EINVAL (wrong type or size,
 * or it does not open: another key, a tampered box).
 */
int auth_password_open(const uint8_t key[32], const msgpack_object *o,
    uint8_t digest[AUTH_PASSWORD_DIGEST]);

/* The stored form of a digest: an Argon2id string (NUL-terminated). */
int auth_password_hash(const uint8_t digest[AUTH_PASSWORD_DIGEST],
    char out[crypto_pwhash_STRBYTES]);

/*
 * Does the stored record (its `password` field) accept this digest?  An
 * Argon2id string is verified (refused if it asks for more than the
 * AUTH_PASSWORD_MAX_* cost); a reference record's bare 32-byte digest is
 * compared in constant time.
 */
bool auth_password_verify(const msgpack_object *record,
    const uint8_t digest[AUTH_PASSWORD_DIGEST]);

/* A user name the reference's client accepts: ^[a-zA-Z][a-zA-Z0-9_]*$ */
bool auth_password_name_ok(const char *s, size_t len);

#endif
