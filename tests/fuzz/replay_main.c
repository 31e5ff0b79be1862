/*
 * replay_main: run a libFuzzer harness without libFuzzer, for `make check`.
 *
 *   replay_<target> [DIR|FILE...]
 *
 * Without arguments it replays the checked-in inputs of its target:
 * FUZZ_SRCDIR/tests/fuzz/corpus/FUZZ_TARGET and .../regressions/FUZZ_TARGET
 * (both defined by Makefile.am), which is what `make check` runs.
 *
 * Every regular file named on the command line, or found (not recursively)
 * in a directory named there, is read and handed to the harness's
 * LLVMFuzzerTestOneInput once, in name order so that a failure reproduces
 * the same way each time.  A missing directory is not an error (a target
 * may have no regression inputs yet).  The harness reports a broken
 * invariant by aborting; this driver only prints which file runs, so the
 * log names the culprit.  Exit status 0, or 1 for an unreadable file.
 *
 * Links with any harness of tests/fuzz/ built without -fsanitize=fuzzer,
 * plain or under ASan/UBSan.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static int
run_file(const char *path, size_t *count)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	size_t len = 0, cap = 0, n;

	if (f == NULL) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return 1;
	}
	for (;;) {
		if (cap - len < 4096) {
			uint8_t *nb = realloc(buf, cap ? cap * 2 : 65536);

			if (nb == NULL) {
				fclose(f);
				free(buf);
				fprintf(stderr, "replay: out of memory\n");
				return 1;
			}
			buf = nb;
			cap = cap ? cap * 2 : 65536;
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
		if (n == 0)
			break;
	}
	fclose(f);
	if (getenv("FUZZ_REPLAY_VERBOSE") != NULL)
		fprintf(stderr, "replay: %s (%zu bytes)\n", path, len);
	/* an exact-size copy: ASan then catches a read past the input */
	{
		uint8_t *exact = malloc(len ? len : 1);

		if (exact == NULL) {
			free(buf);
			return 1;
		}
		memcpy(exact, buf, len);
		free(buf);
		LLVMFuzzerTestOneInput(exact, len);
		free(exact);
	}
	(*count)++;
	return 0;
}

static int
cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int
run_dir(const char *dir, size_t *count)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;

	if (d == NULL)
		return errno == ENOENT ? 0 : 1;
	while ((de = readdir(d)) != NULL) {
		char *p;

		if (de->d_name[0] == '.')
			continue;
		if (n == cap) {
			char **nn = realloc(names, (cap ? cap * 2 : 64) *
			    sizeof(*nn));

			if (nn == NULL) {
				rc = 1;
				break;
			}
			names = nn;
			cap = cap ? cap * 2 : 64;
		}
		if (asprintf(&p, "%s/%s", dir, de->d_name) < 0) {
			rc = 1;
			break;
		}
		names[n++] = p;
	}
	closedir(d);
	if (n > 0)
		qsort(names, n, sizeof(*names), cmp_names);
	for (size_t i = 0; i < n; i++) {
		struct stat st;

		if (rc == 0 && stat(names[i], &st) == 0 && S_ISREG(st.st_mode))
			rc = run_file(names[i], count);
		free(names[i]);
	}
	free(names);
	return rc;
}

int
main(int argc, char **argv)
{
	size_t count = 0;
	int rc = 0;

	if (LLVMFuzzerInitialize != NULL)
		LLVMFuzzerInitialize(&argc, &argv);
#if defined(FUZZ_SRCDIR) && defined(FUZZ_TARGET)
	if (argc < 2) {
		rc = run_dir(FUZZ_SRCDIR "/tests/fuzz/corpus/" FUZZ_TARGET,
		    &count);
		if (rc == 0)
			rc = run_dir(FUZZ_SRCDIR "/tests/fuzz/regressions/"
			    FUZZ_TARGET, &count);
	}
#endif
	for (int i = 1; i < argc && rc == 0; i++) {
		struct stat st;

		if (stat(argv[i], &st) == 0 && S_ISREG(st.st_mode))
			rc = run_file(argv[i], &count);
		else
			rc = run_dir(argv[i], &count);
	}
	printf("replay: %zu inputs\n", count);
	return rc;
}
