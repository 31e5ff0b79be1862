/*
 * test_ops: what operators rely on (issue 13): the agent reports
 * readiness to systemd (Type=notify) once it serves, and its version.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "harness.h"

static struct harness_agent ag;

static void
teardown(void)
{
	harness_cleanup(&ag);
}

TestSuite(ops, .fini = teardown, .timeout = 30);

/* READY=1 arrives on $NOTIFY_SOCKET, and only when the socket serves. */
Test(ops, tells_systemd_when_it_serves)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char buf[512], path[300];
	struct pollfd pf;
	ssize_t n;
	int fd;

	harness_init(&ag);
	snprintf(path, sizeof(path), "%s/notify", ag.dir);
	cr_assert(strlen(path) < sizeof(sun.sun_path), "temp dir too long");
	memcpy(sun.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	cr_assert(fd >= 0);
	cr_assert(bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0);
	setenv("NOTIFY_SOCKET", path, 1);
	cr_assert(harness_start(&ag, "--standalone", "--node", "n1",
	    (const char *)NULL) == 0);
	unsetenv("NOTIFY_SOCKET");
	/* harness_start returned once the socket accepts: READY=1 must be
	 * there already or arrive within the deadline */
	pf.fd = fd;
	pf.events = POLLIN;
	cr_assert(poll(&pf, 1, 10000) == 1, "no notification from the agent");
	n = recv(fd, buf, sizeof(buf) - 1, 0);
	cr_assert(n > 0);
	buf[n] = 0;
	cr_assert(strstr(buf, "READY=1") != NULL, "got '%s'", buf);
	cr_assert(strstr(buf, ag.socket) != NULL, "STATUS names the socket: "
	    "'%s'", buf);
	close(fd);
}

Test(ops, prints_its_version)
{
	char cmd[600], out[128] = "";
	FILE *p;

	snprintf(cmd, sizeof(cmd), "%s --version", harness_bin("distkv-agent"));
	p = popen(cmd, "r");
	cr_assert_not_null(p);
	cr_assert_not_null(fgets(out, sizeof(out), p));
	cr_assert_eq(pclose(p), 0);
	cr_assert(strncmp(out, "distkv-agent 0.", 15) == 0, "got '%s'", out);
}
