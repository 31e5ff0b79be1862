/*
 * fields: the form fields of a /v2/keys request, parsed and checked in
 * etcd's order (its parseKeyRequest), so that the first bad field gives
 * etcd's error code and cause.  TTLs are refused here (docs/etcd.md).
 * Pure functions; any thread.
 */
#ifndef DKV_ETCD_FIELDS_H
#define DKV_ETCD_FIELDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "form.h"

struct fields {
	bool has_prev_index, has_prev_value, has_prev_exist;
	uint64_t prev_index, wait_index;
	const char *prev_value;		/* borrowed from the form */
	const char *value;		/* "" when absent */
	bool prev_exist, recursive, wait, dir, novalue;
};

/*
 * Fill fl from the merged form f of a request with method.  Returns 0, or
 * an etcd error code (V2E_*) with its cause in cause[0..clen).
 */
int fields_parse(const struct form *f, const char *method, struct fields *fl,
    char *cause, size_t clen);

#endif
