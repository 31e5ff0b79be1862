/*
 * auth_dh: the server side of the `diffie_hellman` action (spec §4.4), the
 * shared key that the `password` method's boxes are sealed with.
 *
 * Groups are RFC 3526's MODP primes as OpenSSL's libcrypto ships them
 * (BN_get_rfc3526_prime_*), generator 2: the 1536-bit group 5 when the
 * client's `length` is below 32, else the 8192-bit group 18.  The shared
 * key is the first 32 bytes of the big-endian, minimal encoding of g^ab.
 */
#ifndef DISTKV_AUTH_DH_H
#define DISTKV_AUTH_DH_H

#include <stddef.h>
#include <stdint.h>

#define AUTH_DH_KEY_BYTES 32
/* Largest `length` (bits of the private exponent) a client may ask for. */
#define AUTH_DH_MAX_LENGTH 8192

/*
 * With our private exponent priv (big-endian bytes) and the client's
 * public key peer: our public key (*pub, malloc'd, *pub_len bytes) and
 * the shared key.  Returns 0, -EINVAL for a peer key that is out of range
 * (it must be 2 < y < p-1) or not in the prime-order subgroup
 * (y^((p-1)/2) = 1 mod p), -ENOMEM.
 */
int auth_dh_compute(unsigned length, const uint8_t *priv, size_t priv_len,
    const uint8_t *peer, size_t peer_len, uint8_t **pub, size_t *pub_len,
    uint8_t key[AUTH_DH_KEY_BYTES]);

/* The same with a fresh random private exponent of the reference's size:
 * (max(200, length) / 8) + 8 bytes; -EINVAL above AUTH_DH_MAX_LENGTH. */
int auth_dh_respond(unsigned length, const uint8_t *peer, size_t peer_len,
    uint8_t **pub, size_t *pub_len, uint8_t key[AUTH_DH_KEY_BYTES]);

#endif
