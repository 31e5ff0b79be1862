/*
 * penalty: the back-off table of failed proofs and logins.  Each failure
 * of a key (a remote address, or a local uid) doubles the wait before
 * that key is heard again, from 0.1 s up to 60 s; failures are forgotten
 * after 10 minutes.  A small fixed table whose oldest slot is replaced:
 * an attacker with many addresses only evicts itself.  server.c owns one
 * table and feeds it the loop's time; nothing here does I/O.
 */
#ifndef DISTKV_PENALTY_H
#define DISTKV_PENALTY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#define PENALTY_SLOTS 64
#define PENALTY_FIRST 0.1	/* seconds after the first counted failure */
#define PENALTY_MAX 60.0
#define PENALTY_FORGET 600.0	/* failures forgotten after this */

struct penalty {
	uint8_t key[16];	/* IPv4 mapped or IPv6, or 'u' + uid; zero: free */
	unsigned failures;
	double last, until;
};

struct penalty_table {
	struct penalty slot[PENALTY_SLOTS];
};

/* The 16-byte key of an address (IPv4 mapped into IPv6); false if it is
 * neither IPv4 nor IPv6 (then it has no slot). */
bool penalty_addr_key(const struct sockaddr_storage *ss, uint8_t out[16]);
/*
 * The slot of key k at time now, or NULL (k all zero, or absent and not
 * create).  With create an absent key takes the oldest slot.
 */
struct penalty *penalty_lookup(struct penalty_table *t, const uint8_t k[16],
    double now, bool create);
/* One more failure at now; with free_first the first one costs nothing
 * (a mistyped password). */
void penalty_add(struct penalty *p, double now, bool free_first);
/* Seconds p must still wait at now (0: none; p may be NULL). */
double penalty_wait(const struct penalty *p, double now);

#endif
