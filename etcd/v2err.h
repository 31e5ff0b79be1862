/*
 * v2err: etcd v2 error codes, their messages and HTTP statuses, exactly as
 * etcd 3.4 sends them (codes and texts checked against a real etcd
 * --enable-v2; docs/etcd.md lists the ones the gateway uses).
 *
 * The error body is {"errorCode":N,"message":M,"cause":C,"index":I} plus a
 * newline; cause is left out when empty, as etcd's omitempty does.
 * Pure functions; any thread.
 */
#ifndef DKV_ETCD_V2ERR_H
#define DKV_ETCD_V2ERR_H

#include <stdint.h>

enum {
	V2E_KEY_NOT_FOUND = 100,
	V2E_TEST_FAILED = 101,
	V2E_NOT_FILE = 102,
	V2E_NOT_DIR = 104,
	V2E_NODE_EXIST = 105,
	V2E_ROOT_RONLY = 107,
	V2E_DIR_NOT_EMPTY = 108,
	V2E_UNAUTHORIZED = 110,
	V2E_VALUE_REQUIRED = 200,
	V2E_PREV_VALUE_REQUIRED = 201,
	V2E_TTL_NAN = 202,
	V2E_INDEX_NAN = 203,
	V2E_INVALID_FIELD = 209,
	V2E_INVALID_FORM = 210,
	V2E_REFRESH_VALUE = 211,
	V2E_REFRESH_TTL_REQUIRED = 212,
	V2E_RAFT_INTERNAL = 300,
	V2E_EVENT_INDEX_CLEARED = 401,
};

/* etcd's message for code ("" for a code it does not know). */
const char *v2err_message(int code);
/* etcd's HTTP status for code: 404, 412, 403, 401, 500, else 400. */
int v2err_status(int code);
/* The JSON body with its newline, malloc'd; NULL only without memory. */
char *v2err_body(int code, const char *cause, uint64_t index);

#endif
