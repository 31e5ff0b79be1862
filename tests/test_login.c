/*
 * test_login: the password method (spec §4.4): Diffie-Hellman against
 * vectors computed by an independent implementation (Python's pow), the
 * group primes checked against the RFC's known digits and for safety, the
 * peer key checks, the Argon2id record, and logins end to end.
 */
#include <errno.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <string.h>

#include <criterion/criterion.h>
#include <openssl/bn.h>
#include <sodium.h>

#include "dh.h"
#include "auth_password.h"
#include "distkv.h"
#include "harness.h"
#include "proto.h"
#include "rawclient.h"

/* RFC 3526: every MODP prime starts with 64 ones, then pi's digits. */
#define RFC3526_HEAD "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD1"

static void
hex2bin(const char *hex, uint8_t *out, size_t *len)
{
	size_t n = strlen(hex) / 2;

	for (size_t i = 0; i < n; i++)
		sscanf(hex + 2 * i, "%2hhx", &out[i]);
	*len = n;
}

Test(dh, group_primes_are_rfc3526)
{
	BIGNUM *p5 = BN_get_rfc3526_prime_1536(NULL);
	BIGNUM *p18 = BN_get_rfc3526_prime_8192(NULL);
	BIGNUM *q = BN_new();
	BN_CTX *ctx = BN_CTX_new();
	char *h5 = BN_bn2hex(p5), *h18 = BN_bn2hex(p18);

	cr_assert_eq(BN_num_bits(p5), 1536);
	cr_assert_eq(BN_num_bits(p18), 8192);
	cr_assert(strncmp(h5, RFC3526_HEAD, strlen(RFC3526_HEAD)) == 0);
	cr_assert(strncmp(h18, RFC3526_HEAD, strlen(RFC3526_HEAD)) == 0);
	cr_assert(strcmp(h5 + strlen(h5) - 16, "FFFFFFFFFFFFFFFF") == 0);
	cr_assert(strcmp(h18 + strlen(h18) - 16, "FFFFFFFFFFFFFFFF") == 0);
	/* group 5 is a safe prime: p and (p - 1) / 2 both prime */
	cr_assert(BN_check_prime(p5, ctx, NULL) == 1);
	cr_assert(BN_rshift1(q, p5) && BN_check_prime(q, ctx, NULL) == 1);
	OPENSSL_free(h5);
	OPENSSL_free(h18);
	BN_free(p5);
	BN_free(p18);
	BN_free(q);
	BN_CTX_free(ctx);
}

/* a = bytes 1..40, b = bytes 101..140, group 5: python3 pow() */
static const char vec_B[] =
    "201829c9a35cce7e16e7802b3a350e558f79e35187ec8fd02048c5b6938fb6c3"
    "5e0a1a4f9279affccaf3ab1377bf1b7d48b84fd15259af45061d92bb78e40518"
    "f56a0e892a3549b4be143a5bba5359ef9eda2446968cad3091aa4efa18d0557a"
    "4265116e479fa9df5916fb8600a53c032ff3711ba8b1afebb2d5f3a730ddadcd"
    "6020ec922a091098006d30c53a552f3d6c82e73f731406bfeb0571a586ab614d"
    "c81643466aa7692a3c92abf7932e08ff4f10f25cde64eef76ae494092be2e773";
static const char vec_A[] =
    "df99c078dd93f5093fc6e4b17c108c90b655ba8ced9470d0c9c65551a46609c0"
    "3801d450c9b91eb3b53a4c9a51762de828f5d4d74476edb85a6cc7b99689463c"
    "0f48b4c5ac9009a9be9e066e92fd6b4637495ae1687058dadf78917cd791c3e6"
    "010470fa8a650579cd9527361c02326fb8a052769c85a90a8e1f1a4cd7e72127"
    "285ad2e8daaf2ea99965249ae91cd7deb8aeca02468b7df92ccabd15bb3b9544"
    "d15eae62efe904205aa318052c36f41d288c3a59054e3f0f3ad1632c7793de30";
static const char vec_key[] =
    "a26b21c472cc087451bdc8be7230ba7dddea8864ca67cd614609544d93dd5695";

Test(dh, matches_independent_vectors)
{
	uint8_t a[40], b[40], B[200], A[200], key[32], key2[32], want[32];
	uint8_t *pub, *pub2;
	size_t blen, alen, klen, publen, pub2len;

	for (int i = 0; i < 40; i++) {
		a[i] = (uint8_t)(1 + i);
		b[i] = (uint8_t)(101 + i);
	}
	hex2bin(vec_B, B, &blen);
	hex2bin(vec_A, A, &alen);
	hex2bin(vec_key, want, &klen);
	cr_assert(dh_compute(16, a, sizeof(a), B, blen, &pub, &publen,
	    key) == 0);
	cr_assert(publen == alen && memcmp(pub, A, alen) == 0,
	    "our public key differs from the vector");
	cr_assert(memcmp(key, want, 32) == 0, "shared key differs");
	/* and the other side agrees */
	cr_assert(dh_compute(16, b, sizeof(b), pub, publen, &pub2,
	    &pub2len, key2) == 0);
	cr_assert(pub2len == blen && memcmp(pub2, B, blen) == 0);
	cr_assert(memcmp(key2, key, 32) == 0);
	free(pub);
	free(pub2);
}

Test(dh, bad_peer_keys_refused)
{
	BIGNUM *p = BN_get_rfc3526_prime_1536(NULL);
	uint8_t pb[192], priv[40], key[32], *pub;
	size_t publen;
	static const uint8_t one = 1, two = 2, nonres = 31;

	memset(priv, 7, sizeof(priv));
	cr_assert(BN_bn2bin(p, pb) == 192);
	cr_assert(dh_compute(16, priv, 40, &one, 1, &pub, &publen,
	    key) == -EINVAL);
	cr_assert(dh_compute(16, priv, 40, &two, 1, &pub, &publen,
	    key) == -EINVAL);
	/* 31 is no square mod p: outside the prime-order subgroup */
	cr_assert(dh_compute(16, priv, 40, &nonres, 1, &pub, &publen,
	    key) == -EINVAL);
	cr_assert(dh_compute(16, priv, 40, pb, 192, &pub, &publen,
	    key) == -EINVAL);			/* p */
	pb[191] -= 1;				/* p - 1 */
	cr_assert(dh_compute(16, priv, 40, pb, 192, &pub, &publen,
	    key) == -EINVAL);
	cr_assert(pub == NULL);
	BN_free(p);
}

Test(password, argon2id_record_and_reference_record)
{
	uint8_t digest[32], other[32];
	char hash[crypto_pwhash_STRBYTES];
	msgpack_object_kv kv[1];
	msgpack_object rec;

	cr_assert(sodium_init() >= 0);
	crypto_hash_sha256(digest, (const uint8_t *)"hunter22", 8);
	crypto_hash_sha256(other, (const uint8_t *)"hunter23", 8);
	cr_assert(auth_password_hash(digest, hash) == 0);
	cr_assert(strncmp(hash, "$argon2id$", 10) == 0, "%s", hash);
	kv[0].key.type = MSGPACK_OBJECT_STR;
	kv[0].key.via.str.ptr = "password";
	kv[0].key.via.str.size = 8;
	kv[0].val.type = MSGPACK_OBJECT_STR;
	kv[0].val.via.str.ptr = hash;
	kv[0].val.via.str.size = (uint32_t)strlen(hash);
	rec.type = MSGPACK_OBJECT_MAP;
	rec.via.map.size = 1;
	rec.via.map.ptr = kv;
	cr_assert(auth_password_verify(&rec, digest));
	cr_assert(!auth_password_verify(&rec, other));
	/* a reference snapshot's record: the bare digest */
	kv[0].val.type = MSGPACK_OBJECT_BIN;
	kv[0].val.via.bin.ptr = (const char *)digest;
	kv[0].val.via.bin.size = 32;
	cr_assert(auth_password_verify(&rec, digest));
	cr_assert(!auth_password_verify(&rec, other));
	/* a stored string chooses its cost: at most AUTH_PASSWORD_MAX_* */
	kv[0].val.type = MSGPACK_OBJECT_STR;
	kv[0].val.via.str.ptr = hash;
	cr_assert(crypto_pwhash_str_alg(hash, (const char *)digest, 32,
	    AUTH_PASSWORD_MAX_OPSLIMIT, crypto_pwhash_MEMLIMIT_MIN,
	    crypto_pwhash_ALG_ARGON2ID13) == 0);
	kv[0].val.via.str.size = (uint32_t)strlen(hash);
	cr_assert(auth_password_verify(&rec, digest));
	cr_assert(crypto_pwhash_str_alg(hash, (const char *)digest, 32,
	    AUTH_PASSWORD_MAX_OPSLIMIT + 1, crypto_pwhash_MEMLIMIT_MIN,
	    crypto_pwhash_ALG_ARGON2ID13) == 0);
	kv[0].val.via.str.size = (uint32_t)strlen(hash);
	cr_assert(!auth_password_verify(&rec, digest), "%s", hash);
	cr_assert(auth_password_name_ok("joe_1", 5));
	cr_assert(!auth_password_name_ok("1joe", 4));
	cr_assert(!auth_password_name_ok("jo-e", 4));
	cr_assert(!auth_password_name_ok("", 0));
}

/* ---- end to end ---- */

static struct harness_agent ag;

static void
setup(void)
{
	harness_init(&ag);
}

static void
teardown(void)
{
	harness_cleanup(&ag);
}

TestSuite(login, .init = setup, .fini = teardown, .timeout = 60);

/* Send a request built with a msgpack packer (byte strings need it). */
static struct rc_msg *
call_packed(struct rc_conn *c, int64_t seq, msgpack_sbuffer *sb)
{
	cr_assert(rc_send_raw(c, sb->data, sb->size) == 0);
	msgpack_sbuffer_clear(sb);
	return rc_recv_seq(c, seq, RC_TIMEOUT);
}

static void
pack_str(msgpack_packer *pk, const char *s)
{
	msgpack_pack_str_with_body(pk, s, strlen(s));
}

/* The client's half of diffie_hellman on c; the shared key into key. */
static void
client_dh(struct rc_conn *c, int seq, uint8_t key[32])
{
	static const uint8_t four = 4;	/* g^2: any member of the group */
	uint8_t priv[40], *pub, *unused, junk[32];
	size_t publen, unusedlen;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	const msgpack_object *sp;
	struct rc_msg *m;

	randombytes_buf(priv, sizeof(priv));
	/* g^a comes out whatever the peer key: our public key */
	cr_assert(dh_compute(16, priv, sizeof(priv), &four, 1, &pub,
	    &publen, junk) == 0);
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 4);
	pack_str(&pk, "seq");
	msgpack_pack_int(&pk, seq);
	pack_str(&pk, "action");
	pack_str(&pk, "diffie_hellman");
	pack_str(&pk, "length");
	msgpack_pack_int(&pk, 16);
	pack_str(&pk, "pubkey");
	msgpack_pack_bin_with_body(&pk, pub, publen);
	m = call_packed(c, seq, &sb);
	cr_assert(m != NULL);
	sp = rc_get(&m->obj, "pubkey");
	cr_assert(sp != NULL && sp->type == MSGPACK_OBJECT_BIN, "%s",
	    rc_show(&m->obj));
	cr_assert(dh_compute(16, priv, sizeof(priv),
	    (const uint8_t *)sp->via.bin.ptr, sp->via.bin.size, &unused,
	    &unusedlen, key) == 0);
	free(unused);
	free(pub);
	rc_msg_free(m);
	msgpack_sbuffer_destroy(&sb);
}

/* nonce ‖ secretbox(SHA-256(password)) under key, as the reference's
 * client sends it. */
static void
seal_password(const uint8_t key[32], const char *password,
    uint8_t box[AUTH_PASSWORD_BOX])
{
	uint8_t digest[32];

	crypto_hash_sha256(digest, (const uint8_t *)password,
	    strlen(password));
	randombytes_buf(box, crypto_secretbox_NONCEBYTES);
	cr_assert(crypto_secretbox_easy(box + crypto_secretbox_NONCEBYTES,
	    digest, 32, box, key) == 0);
}

/* {seq, action, typ:'password', [kind:'user'], ident, password: box} */
static struct rc_msg *
password_call(struct rc_conn *c, int64_t seq, const char *action,
    const char *ident, const uint8_t key[32], const char *password)
{
	uint8_t box[AUTH_PASSWORD_BOX];
	msgpack_sbuffer sb;
	msgpack_packer pk;
	struct rc_msg *m;
	bool set = strcmp(action, "auth_set") == 0;

	seal_password(key, password, box);
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 5 + set);
	pack_str(&pk, "seq");
	msgpack_pack_int64(&pk, seq);
	pack_str(&pk, "action");
	pack_str(&pk, action);
	pack_str(&pk, "typ");
	pack_str(&pk, "password");
	if (set) {
		pack_str(&pk, "kind");
		pack_str(&pk, "user");
	}
	pack_str(&pk, "ident");
	pack_str(&pk, ident);
	pack_str(&pk, "password");
	msgpack_pack_bin_with_body(&pk, box, sizeof(box));
	m = call_packed(c, seq, &sb);
	msgpack_sbuffer_destroy(&sb);
	cr_assert(m != NULL, "no reply to %s", action);
	return m;
}

/* The auth action's items up to end: the error item's text, or NULL. */
static char *
auth_result(struct rc_conn *c, int64_t seq, struct rc_msg *first)
{
	char *err = NULL;
	struct rc_msg *m = first;

	for (;;) {
		const msgpack_object *e;

		cr_assert(m != NULL, "auth reply incomplete");
		if ((e = rc_get(&m->obj, "error")) != NULL)
			err = strndup(e->via.str.ptr, e->via.str.size);
		if (proto_str_eq(rc_get(&m->obj, "state"), "end")) {
			rc_msg_free(m);
			return err;
		}
		rc_msg_free(m);
		m = rc_recv_seq(c, seq, RC_TIMEOUT);
	}
}

Test(login, password_end_to_end)
{
	uint8_t key[32];
	struct rc_conn *c;
	struct rc_msg *m;
	char *err;

	cr_assert(sodium_init() >= 0);
	RC_START(&ag, "--standalone", "--node", "l1");
	c = rc_open(ag.socket);
	cr_assert(c != NULL);
	/* a password user needs the shared key first */
	m = password_call(c, 1, "auth_set", "joe", (uint8_t[32]){ 0 },
	    "hunter22");
	cr_assert(rc_str_prefix(&m->obj, "error", "No shared key yet"), "%s",
	    rc_show(&m->obj));
	rc_msg_free(m);
	client_dh(c, 2, key);
	RC_ASSERT_MATCH(rc_call(c, "{seq:3, action:'diffie_hellman', "
	    "pubkey:b'x', length:16}"), "{seq:3, error:'Can\\'t call dh twice', "
	    "tock:_}");
	m = password_call(c, 4, "auth_set", "1bad", key, "hunter22");
	cr_assert(rc_str_prefix(&m->obj, "error", "A password user's name"));
	rc_msg_free(m);
	m = password_call(c, 5, "auth_set", "joe", key, "hunter22");
	cr_assert(rc_match(&m->obj, NULL, 0, "{seq:5, changed:true, ...}"),
	    "%s", rc_show(&m->obj));
	rc_msg_free(m);
	m = password_call(c, 6, "auth_set", "joe", key, "other");
	cr_assert(rc_str_prefix(&m->obj, "error", "This entry already exists"),
	    "%s", rc_show(&m->obj));
	rc_msg_free(m);
	/* stored: an Argon2id hash, never the digest; auth_get shows none */
	m = rc_call(c, "{seq:7, action:'get_internal', "
	    "path:['auth', 'password', 'user', 'joe']}");
	cr_assert(rc_str_prefix(&m->obj, "value.password", "$argon2id$"), "%s",
	    rc_show(&m->obj));
	rc_msg_free(m);
	RC_ASSERT_MATCH(rc_call(c, "{seq:8, action:'auth_get', typ:'password', "
	    "kind:'user', ident:'joe'}"), "{seq:8, tock:_}");
	RC_ASSERT_MATCH(rc_call(c, "{seq:9, action:'set_auth_typ', "
	    "typ:'password'}"), "{seq:9, changed:true, ...}");
	rc_close(c);

	/* a new connection must log in */
	c = rc_open(ag.socket);
	cr_assert(c != NULL);
	cr_assert(rc_match(&c->greeting->obj, NULL, 0, "{auth:['password'], "
	    "...}"), "%s", rc_show(&c->greeting->obj));
	m = rc_call(c, "{seq:1, action:'get_value', path:['x']}");
	cr_assert(rc_str_prefix(&m->obj, "error", "NoAuthError"));
	rc_msg_free(m);
	client_dh(c, 2, key);
	m = password_call(c, 3, "auth", "joe", key, "wrong-one");
	err = auth_result(c, 3, m);
	cr_assert(err != NULL && strcmp(err, "AuthFailedError('Password "
	    "hashes do not match', 'joe')") == 0, "%s", err);
	free(err);
	m = rc_call(c, "{seq:4, action:'get_value', path:['x']}");
	cr_assert(rc_str_prefix(&m->obj, "error", "NoAuthError"),
	    "a failed login unlocked the connection");
	rc_msg_free(m);
	/* the first failure costs nothing: the right password works */
	m = password_call(c, 6, "auth", "joe", key, "hunter22");
	err = auth_result(c, 6, m);
	cr_assert(err == NULL, "right password refused: %s", err);
	RC_ASSERT_MATCH(rc_call(c, "{seq:7, action:'get_value', path:['x']}"),
	    "{seq:7, value:nil, tock:_}");
	/* logged in, a login is still checked (and changes nothing) */
	m = password_call(c, 8, "auth", "nobody", key, "hunter22");
	err = auth_result(c, 8, m);
	cr_assert(err != NULL, "an unknown user logged in");
	free(err);
	rc_close(c);
}

/*
 * A login storm: failures make the uid wait (0.1 s, doubling), and a
 * connection is closed after 5 failures; then the right login works
 * once the wait is over.
 */
Test(login, failed_logins_are_rate_limited)
{
	struct rc_conn *c;
	long long deadline;
	int waits = 0, seq = 1;
	char *err;

	RC_START(&ag, "--standalone", "--node", "l4");
	c = rc_open(ag.socket);
	RC_ASSERT_MATCH(rc_call(c, "{seq:1, action:'auth_set', typ:'_test', "
	    "kind:'user', ident:'ok', chain:nil, aux:{}}"), "{seq:1, "
	    "changed:true, ...}");
	RC_ASSERT_MATCH(rc_call(c, "{seq:2, action:'set_auth_typ', "
	    "typ:'_test'}"), "{seq:2, changed:true, ...}");
	rc_close(c);
	c = rc_open(ag.socket);
	deadline = harness_now_ms() + 10000;
	while (!c->eof) {
		struct rc_msg *m;

		cr_assert(harness_now_ms() < deadline, "still open after "
		    "%d login attempts", seq);
		rc_send(c, "{seq:%d, action:'auth', typ:'_test', ident:'nope', "
		    "data:{}}", seq);
		m = rc_recv_seq(c, seq, RC_TIMEOUT);
		if (m == NULL)
			break;		/* closed */
		err = auth_result(c, seq, m);
		cr_assert(err != NULL, "nope logged in");
		waits += strstr(err, "too many failed logins") != NULL;
		free(err);
		seq++;
	}
	cr_assert(waits > 0, "no attempt was made to wait");
	rc_close(c);
	/* the right login, on a new connection, once the wait is over */
	deadline = harness_now_ms() + 15000;
	for (;;) {
		c = rc_open(ag.socket);
		rc_send(c, "{seq:1, action:'auth', typ:'_test', ident:'ok', "
		    "data:{}}");
		err = auth_result(c, 1, rc_recv_seq(c, 1, RC_TIMEOUT));
		rc_close(c);
		if (err == NULL)
			break;
		cr_assert(strstr(err, "too many failed logins") != NULL, "%s",
		    err);
		free(err);
		cr_assert(harness_now_ms() < deadline, "never let in again");
		usleep(100 * 1000);	/* poll interval of a bounded wait */
	}
}

/* libdistkv's calls: the same dialog as the reference's client. */
Test(login, libdistkv_password_login)
{
	distkv *k;
	distkv_path *p;
	struct distkv_entry e;
	int rc;

	RC_START(&ag, "--standalone", "--node", "l2");
	cr_assert(distkv_connect(ag.socket, &k) == 0);
	cr_assert(distkv_auth_method(k) == NULL);
	cr_assert(distkv_auth_set_method(k, "password") == DISTKV_EBADREQ);
	cr_assert(strstr(distkv_errmsg(k), "You didn't configure this method "
	    "yet") != NULL, "%s", distkv_errmsg(k));
	cr_assert(distkv_auth_add_password(k, "ann", "s3cret!") == 0,
	    "%s", distkv_errmsg(k));
	cr_assert(distkv_auth_add_password(k, "ann", "x") == DISTKV_ECONFLICT);
	cr_assert(strstr(distkv_errmsg(k), "already exists") != NULL);
	cr_assert(distkv_auth_set_method(k, "password") == 0,
	    "%s", distkv_errmsg(k));
	distkv_close(k);

	cr_assert(distkv_connect(ag.socket, &k) == 0);
	cr_assert(distkv_auth_method(k) != NULL &&
	    strcmp(distkv_auth_method(k), "password") == 0);
	cr_assert(distkv_path_parse("a", &p) == 0);
	memset(&e, 0, sizeof(e));
	rc = distkv_get(k, p, 1, &e);
	cr_assert(rc == DISTKV_EDENIED && strncmp(distkv_errmsg(k),
	    "NoAuthError", 11) == 0, "%d %s", rc, distkv_errmsg(k));
	distkv_entry_clear(&e);
	rc = distkv_login_password(k, "ann", "wrong");
	cr_assert(rc == DISTKV_EDENIED && strncmp(distkv_errmsg(k),
	    "AuthFailedError", 15) == 0, "%d %s", rc, distkv_errmsg(k));
	cr_assert(distkv_login_password(k, "ann", "s3cret!") == 0,
	    "%s", distkv_errmsg(k));
	memset(&e, 0, sizeof(e));
	cr_assert(distkv_get(k, p, 1, &e) == DISTKV_ENOTFOUND);
	distkv_entry_clear(&e);
	/* a second diffie_hellman on the connection is refused */
	cr_assert(distkv_dh(k) == 0, "the key is kept: no second exchange");
	distkv_path_free(p);
	distkv_close(k);
}

/* A child as uid/gid 65534: does a read through a fresh connection work
 * (after an explicit unix login if it was not done by itself)? */
static int
child_reads_as_nobody(const char *sock)
{
	pid_t pid = fork();
	int status;

	cr_assert(pid >= 0);
	if (pid == 0) {
		distkv *k;
		distkv_path *p;
		struct distkv_entry e;
		int rc;

		if (setresgid(65534, 65534, 65534) != 0 ||
		    setresuid(65534, 65534, 65534) != 0)
			_exit(90);
		if (distkv_connect(sock, &k) != 0)
			_exit(91);
		if (distkv_path_parse("u", &p) != 0)
			_exit(92);
		memset(&e, 0, sizeof(e));
		rc = distkv_get(k, p, 1, &e);
		_exit(rc == DISTKV_ENOTFOUND ? 0 : rc == DISTKV_EDENIED &&
		    strncmp(distkv_errmsg(k), "NoAuthError", 11) == 0 ? 1 : 93);
	}
	cr_assert(waitpid(pid, &status, 0) == pid);
	cr_assert(WIFEXITED(status));
	return WEXITSTATUS(status);
}

/* The unix method: the kernel names the uid; no secret; automatic. */
Test(login, unix_method_two_uids)
{
	distkv *k;
	distkv_path *p;
	struct distkv_entry e;
	struct rc_conn *c;

	RC_START(&ag, "--standalone", "--node", "l3", "--socket-mode", "0666");
	cr_assert(chmod(ag.dir, 0755) == 0);
	c = rc_open(ag.socket);
	cr_assert(c != NULL);
	RC_ASSERT_MATCH(rc_call(c, "{seq:1, action:'auth_set', typ:'unix', "
	    "kind:'user', ident:'%d', chain:nil, aux:{}}", (int)geteuid()),
	    "{seq:1, changed:true, ...}");
	RC_ASSERT_MATCH(rc_call(c, "{seq:2, action:'set_auth_typ', "
	    "typ:'unix'}"), "{seq:2, changed:true, ...}");
	rc_close(c);
	/* our uid has a record: distkv_connect logs in by itself */
	cr_assert(distkv_connect(ag.socket, &k) == 0);
	cr_assert(distkv_path_parse("u", &p) == 0);
	memset(&e, 0, sizeof(e));
	cr_assert(distkv_get(k, p, 1, &e) == DISTKV_ENOTFOUND, "%s",
	    distkv_errmsg(k));
	distkv_entry_clear(&e);
	/* a raw client names a user that is not its own: refused */
	c = rc_open(ag.socket);
	rc_send(c, "{seq:1, action:'auth', typ:'unix', ident:'someone'}");
	RC_ASSERT_MATCH(rc_recv_seq(c, 1, RC_TIMEOUT), "{seq:1, state:'start', "
	    "tock:_}");
	{
		struct rc_msg *m = rc_recv_seq(c, 1, RC_TIMEOUT);

		cr_assert(m != NULL && rc_str_prefix(&m->obj, "error",
		    "AuthFailedError"), "%s", m ? rc_show(&m->obj) : "-");
		rc_msg_free(m);
	}
	rc_close(c);
	if (geteuid() != 0) {
		distkv_path_free(p);
		distkv_close(k);
		cr_skip_test("a second uid needs root");
	}
	/* another uid without a record stays out ... */
	cr_assert_eq(child_reads_as_nobody(ag.socket), 1);
	/* ... until it has one, by number */
	c = rc_open(ag.socket);
	cr_assert(c != NULL);
	rc_send(c, "{seq:1, action:'auth', typ:'unix'}");
	rc_msg_free(rc_recv_seq(c, 1, RC_TIMEOUT));
	rc_msg_free(rc_recv_seq(c, 1, RC_TIMEOUT));
	RC_ASSERT_MATCH(rc_call(c, "{seq:2, action:'auth_set', typ:'unix', "
	    "kind:'user', ident:'65534', chain:nil, aux:{}}"),
	    "{seq:2, changed:true, ...}");
	rc_close(c);
	cr_assert_eq(child_reads_as_nobody(ag.socket), 0);
	distkv_path_free(p);
	distkv_close(k);
}
