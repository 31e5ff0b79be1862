/* harness: see harness.h. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define HARNESS_MAX_ARGS 64

long long
harness_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *
harness_bin(const char *name)
{
	static char buf[PATH_MAX];
	const char *top = getenv("DISTKV_TOP_BUILDDIR");

	snprintf(buf, sizeof(buf), "%s/%s", top != NULL ? top : ".", name);
	return buf;
}

void
harness_init(struct harness_agent *a)
{
	memset(a, 0, sizeof(*a));
	snprintf(a->dir, sizeof(a->dir), "/tmp/distkv-test.XXXXXX");
	if (mkdtemp(a->dir) == NULL) {
		perror("mkdtemp");
		abort();
	}
	snprintf(a->socket, sizeof(a->socket), "%s/agent.sock", a->dir);
	snprintf(a->state_dir, sizeof(a->state_dir), "%s/state", a->dir);
	snprintf(a->shm, sizeof(a->shm), "%s/region", a->dir);
}

int
harness_connect(const char *path)
{
	struct sockaddr_un sun;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path))
		return -1;
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int
harness_start(struct harness_agent *a, ...)
{
	const char *argv[HARNESS_MAX_ARGS + 6];
	char errpath[320];
	int argc = 0, status;
	bool own_shm = false;
	long long deadline;
	const char *arg;
	va_list ap;

	argv[argc++] = harness_bin("distkv-agent");
	argv[argc++] = "--socket";
	argv[argc++] = a->socket;
	va_start(ap, a);
	while ((arg = va_arg(ap, const char *)) != NULL &&
	    argc < HARNESS_MAX_ARGS) {
		if (strcmp(arg, "--shm") == 0 || strcmp(arg, "--no-shm") == 0)
			own_shm = true;
		argv[argc++] = arg;
	}
	va_end(ap);
	/* the default region is named after the node: keep tests apart */
	if (!own_shm) {
		argv[argc++] = "--shm";
		argv[argc++] = a->shm;
	}
	argv[argc] = NULL;

	snprintf(errpath, sizeof(errpath), "%s/agent.err", a->dir);
	a->pid = fork();
	if (a->pid < 0)
		return -1;
	if (a->pid == 0) {
		int fd = open(errpath, O_WRONLY | O_CREAT | O_APPEND, 0644);

		/*
		 * Whatever happens to the test (a timeout, a crash, a test
		 * that lost track of its agent), the agent does not outlive
		 * the process that started it.
		 */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() == 1)
			_exit(127);

		if (fd >= 0) {
			dup2(fd, 2);
			close(fd);
		}
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	deadline = harness_now_ms() + 10000;
	while (harness_now_ms() < deadline) {
		int fd = harness_connect(a->socket);

		if (fd >= 0) {
			close(fd);
			return 0;
		}
		if (waitpid(a->pid, &status, WNOHANG) == a->pid) {
			a->pid = 0;
			return -1;
		}
		usleep(5000);	/* poll interval of a deadline-bounded wait */
	}
	return -1;
}

int
harness_stop(struct harness_agent *a)
{
	long long deadline;
	int status;

	if (a->pid <= 0)
		return -1;
	kill(a->pid, SIGTERM);
	deadline = harness_now_ms() + 10000;
	while (harness_now_ms() < deadline) {
		pid_t r = waitpid(a->pid, &status, WNOHANG);

		if (r == a->pid) {
			a->pid = 0;
			return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
		}
		usleep(2000);
	}
	harness_kill9(a);
	return -1;
}

void
harness_kill9(struct harness_agent *a)
{
	if (a->pid <= 0)
		return;
	kill(a->pid, SIGKILL);
	waitpid(a->pid, NULL, 0);
	a->pid = 0;
}

void
harness_cleanup(struct harness_agent *a)
{
	char cmd[400];

	if (a->pid > 0)
		harness_kill9(a);
	if (a->dir[0] != '\0' && strncmp(a->dir, "/tmp/distkv-test.", 17) == 0) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", a->dir);
		if (system(cmd) != 0)
			fprintf(stderr, "harness: could not remove %s\n", a->dir);
	}
}
