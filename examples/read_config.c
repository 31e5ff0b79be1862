/*
 * read_config: read a service's settings by name from the local agent.
 *
 *   read_config [PREFIX]      (default "svc/web")
 *
 * Prints PREFIX/host (a string) and PREFIX/port (an integer).  The reads
 * come from the agent's shared-memory region when it is mapped (no system
 * call), else over the socket; the program does not need to know which.
 * Exit 0, 1 if a setting is missing, 2 on any other error, 77 if no agent
 * answers (so `make check` skips it when run without one).
 */
#include <inttypes.h>
#include <stdio.h>

#include <distkv.h>

int
main(int argc, char **argv)
{
	const char *prefix = argc > 1 ? argv[1] : "svc/web";
	char path[256], host[256];
	int64_t port;
	distkv *c;
	int rc;

	/* NULL: $DISTKV_SOCKET, else the default socket */
	if ((rc = distkv_connect(NULL, &c)) != 0) {
		fprintf(stderr, "read_config: %s\n", distkv_strerror(rc));
		return rc == DISTKV_ECONNECT ? 77 : 2;
	}
	snprintf(path, sizeof(path), "%s/host", prefix);
	rc = distkv_get_str(c, path, host, sizeof(host));
	if (rc == 0) {
		snprintf(path, sizeof(path), "%s/port", prefix);
		rc = distkv_get_int(c, path, &port);
	}
	if (rc == 0)
		printf("%s:%" PRId64 "\n", host, port);
	else
		fprintf(stderr, "read_config: %s: %s\n", path,
		    distkv_strerror(rc));
	distkv_close(c);
	return rc == 0 ? 0 : rc == DISTKV_ENOTFOUND ? 1 : 2;
}
