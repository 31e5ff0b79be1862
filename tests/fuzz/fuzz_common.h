/*
 * fuzz_common: what the harnesses of tests/fuzz/ share.  Header only (each
 * harness is one program); included by harnesses, never by the project.
 *
 * A harness reports a broken invariant with FUZZ_FAIL(), which aborts: a
 * libFuzzer run stops there and saves the input, the replay driver dies
 * with the message.  An invariant that a known, not yet fixed bug breaks
 * goes through fuzz_pending() instead: with DISTKV_FUZZ_PENDING_DIR set
 * (scripts/fuzz.sh sets it) the first input per kind is saved there and the
 * run goes on, so the fuzzer keeps looking for new bugs; without it the
 * harness aborts as for any other finding.
 */
#ifndef DISTKV_FUZZ_COMMON_H
#define DISTKV_FUZZ_COMMON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FUZZ_HAVE_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define FUZZ_HAVE_ASAN 1
#endif
#ifdef FUZZ_HAVE_ASAN
#include <sanitizer/allocator_interface.h>
#endif

/* The highest tick or tock an agent accepts or makes (proto.h). */
#define FUZZ_TICK_CEILING PROTO_MAX_TICK

#define FUZZ_FAIL(...) do {						\
	fprintf(stderr, "fuzz: invariant broken: " __VA_ARGS__);	\
	fputc('\n', stderr);						\
	abort();							\
} while (0)

/* Bytes the allocator holds for the program now (0 without ASan). */
static inline size_t
fuzz_allocated(void)
{
#ifdef FUZZ_HAVE_ASAN
	return __sanitizer_get_current_allocated_bytes();
#else
	return 0;
#endif
}

/*
 * A known bug broke an invariant (kind: a short file-name-safe word).
 * Saves the input once per kind under $DISTKV_FUZZ_PENDING_DIR and
 * returns, or aborts when that variable is not set.
 */
static inline void
fuzz_pending(const char *kind, const char *msg, const uint8_t *data,
    size_t size)
{
	static char seen[8][32];
	const char *dir = getenv("DISTKV_FUZZ_PENDING_DIR");
	char path[4096];
	FILE *f;
	int i;

	if (dir == NULL || *dir == '\0')
		FUZZ_FAIL("%s (known: %s)", msg, kind);
	for (i = 0; i < 8 && seen[i][0] != '\0'; i++)
		if (strcmp(seen[i], kind) == 0)
			return;
	if (i == 8)
		return;
	snprintf(seen[i], sizeof(seen[i]), "%s", kind);
	snprintf(path, sizeof(path), "%s/%s", dir, kind);
	if ((f = fopen(path, "wb")) != NULL) {
		fwrite(data, 1, size, f);
		fclose(f);
	}
	fprintf(stderr, "fuzz: known bug (%s): %s; input saved as %s\n", kind,
	    msg, path);
}

/* ---- seed writing (-DFUZZ_MAKE_SEEDS programs) ---- */

static inline void
fuzz_write_seed(const char *dir, const char *prefix, int n, const void *p,
    size_t len)
{
	char name[4096];
	FILE *f;

	snprintf(name, sizeof(name), "%s/%s-%03d", dir, prefix, n);
	if ((f = fopen(name, "wb")) == NULL) {
		perror(name);
		exit(1);
	}
	if (len > 0 && fwrite(p, 1, len, f) != len) {
		perror(name);
		exit(1);
	}
	fclose(f);
}

#endif
