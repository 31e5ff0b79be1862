/*
 * clustertest: what the cluster test programs share (test_cluster.c,
 * test_cluster_peer.c): one cluster of real agents on loopback
 * (tests/cluster.h), started, connected to, written and waited for with
 * a deadline, every failure with the agents' logs (DIAG).  Each program
 * defines clustertest_ipbase, the first loopback address of its nodes,
 * and declares its suite with .fini = teardown.
 */
#ifndef DISTKV_TESTS_CLUSTERTEST_H
#define DISTKV_TESTS_CLUSTERTEST_H

#include <stddef.h>
#include <stdint.h>

#include "cluster.h"
#include "distkv.h"

#define VISIBLE_MS 5000		/* a small write reaches every node */
#define CONVERGE_MS 30000	/* bursts and catch-up */
#define DIAG cluster_diag(&cl)

extern const int clustertest_ipbase;	/* 127.0.0.<this> is node 0 */
extern struct cluster cl;
extern char why[2048];

void teardown(void);
/* cl with n nodes, ports found free; started too (start_all) */
void start(int n);
void start_all(int n);
/* Every agent stops cleanly (exit 0: no crash, no sanitizer report). */
void stop_all(void);
/* A client of node i (the test fails if there is none). */
distkv *conn(int i);
void set_str(int node, const distkv_path *p, const char *s);
void set_raw(int node, const distkv_path *p, const void *v, size_t len);
/* msgpack bin of len bytes of a pattern (caller frees). */
uint8_t *big_value(size_t len, uint8_t seed, size_t *outlen);
/* s (NULL: deleted) on every node within timeout_ms */
void wait_str(const distkv_path *p, const char *s, int timeout_ms);
/* identical dumps, at least min_items, within timeout_ms */
void wait_same(size_t min_items, int timeout_ms);

#endif
