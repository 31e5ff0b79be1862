/* auth_dh: see auth_dh.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <sodium.h>

#include "auth_dh.h"

int
auth_dh_compute(unsigned length, const uint8_t *priv, size_t priv_len,
    const uint8_t *peer, size_t peer_len, uint8_t **pub, size_t *pub_len,
    uint8_t key[AUTH_DH_KEY_BYTES])
{
	BN_CTX *ctx = BN_CTX_new();
	BIGNUM *p = NULL, *g = NULL, *a = NULL, *y = NULL, *t = NULL,
	    *gy = NULL;
	uint8_t *buf = NULL;
	int rc = -ENOMEM, n;

	*pub = NULL;
	*pub_len = 0;
	if (ctx == NULL)
		return -ENOMEM;
	p = length < 32 ? BN_get_rfc3526_prime_1536(NULL) :
	    BN_get_rfc3526_prime_8192(NULL);
	if (p == NULL || (g = BN_new()) == NULL || !BN_set_word(g, 2) ||
	    (a = BN_bin2bn(priv, (int)priv_len, NULL)) == NULL ||
	    (y = BN_bin2bn(peer, (int)peer_len, NULL)) == NULL ||
	    (t = BN_new()) == NULL || (gy = BN_new()) == NULL)
		goto out;
	BN_set_flags(a, BN_FLG_CONSTTIME);
	/* 2 < y < p - 1 */
	if (!BN_sub(t, p, BN_value_one()))
		goto out;
	rc = -EINVAL;
	if (BN_cmp(y, g) <= 0 || BN_cmp(y, t) >= 0)
		goto out;
	/*
	 * y in the subgroup of order q = (p - 1) / 2, i.e. y^q = 1: for a
	 * safe prime that is "y is a square mod p", which the Jacobi symbol
	 * tells at the cost of a gcd, not of an 8192-bit exponentiation in
	 * the event loop.
	 */
	if (BN_kronecker(y, p, ctx) != 1)
		goto out;
	rc = -ENOMEM;
	/* our public key g^a, then the shared secret y^a */
	if (!BN_mod_exp_mont_consttime(t, g, a, p, ctx, NULL) ||
	    (*pub = malloc((size_t)BN_num_bytes(t))) == NULL)
		goto out;
	*pub_len = (size_t)BN_bn2bin(t, *pub);
	if (!BN_mod_exp_mont_consttime(gy, y, a, p, ctx, NULL) ||
	    (buf = malloc((size_t)BN_num_bytes(p))) == NULL)
		goto out;
	n = BN_bn2bin(gy, buf);
	rc = -EINVAL;
	if (n < AUTH_DH_KEY_BYTES)	/* a degenerate secret: refuse */
		goto out;
	memcpy(key, buf, AUTH_DH_KEY_BYTES);
	sodium_memzero(buf, (size_t)n);
	rc = 0;
out:
	if (rc != 0) {
		free(*pub);
		*pub = NULL;
		*pub_len = 0;
	}
	free(buf);
	BN_clear_free(a);
	BN_clear_free(gy);
	BN_free(p);
	BN_free(g);
	BN_free(y);
	BN_free(t);
	BN_CTX_free(ctx);
	return rc;
}

int
auth_dh_respond(unsigned length, const uint8_t *peer, size_t peer_len,
    uint8_t **pub, size_t *pub_len, uint8_t key[AUTH_DH_KEY_BYTES])
{
	size_t n = (length > 200 ? length : 200) / 8 + 8;
	uint8_t priv[AUTH_DH_MAX_LENGTH / 8 + 8];
	int rc;

	if (length > AUTH_DH_MAX_LENGTH)
		return -EINVAL;
	randombytes_buf(priv, n);
	rc = auth_dh_compute(length, priv, n, peer, peer_len, pub, pub_len,
	    key);
	sodium_memzero(priv, sizeof(priv));
	return rc;
}
