/* benchutil: see benchutil.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "benchutil.h"

int
parse_long(const char *s, long lo, long hi, long *out)
{
	char	*end;
	long	 v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
		return (-1);
	*out = v;
	return (0);
}

uint64_t
now_ns(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
}

void
loadavg_read(char *buf, size_t len)
{
	double	 l1, l5, l15;
	FILE	*f;

	snprintf(buf, len, "unknown");
	if ((f = fopen("/proc/loadavg", "r")) == NULL)
		return;
	if (fscanf(f, "%lf %lf %lf", &l1, &l5, &l15) == 3)
		snprintf(buf, len, "%.2f %.2f %.2f", l1, l5, l15);
	fclose(f);
}

int
pin_cpu(long cpu)
{
	cpu_set_t	set;

	if (cpu < 0)
		return (0);
	CPU_ZERO(&set);
	CPU_SET((int)cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) != 0)
		return (-errno);
	return (0);
}

int
dblcmp(const void *a, const void *b)
{
	double	x = *(const double *)a, y = *(const double *)b;

	return ((x > y) - (x < y));
}

int
u64cmp(const void *a, const void *b)
{
	uint64_t	x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return ((x > y) - (x < y));
}

double
percentile_us(uint64_t *v, long n, double p)
{
	long	i;

	if (n <= 0)
		return (0);
	qsort(v, (size_t)n, sizeof(*v), u64cmp);
	i = (long)(p * (double)n + 0.999999) - 1;
	if (i < 0)
		i = 0;
	if (i >= n)
		i = n - 1;
	return ((double)v[i] / 1000.0);
}

double
median(double *v, long n)
{
	qsort(v, (size_t)n, sizeof(*v), dblcmp);
	if (n % 2 == 1)
		return (v[n / 2]);
	return ((v[n / 2 - 1] + v[n / 2]) / 2);
}

void
log_tail(const char *path, const char *name)
{
	char	buf[4096];
	ssize_t	n;
	off_t	size;
	int	fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return;
	size = lseek(fd, 0, SEEK_END);
	lseek(fd, size > (off_t)sizeof(buf) ? size - (off_t)sizeof(buf) : 0,
	    SEEK_SET);
	if ((n = read(fd, buf, sizeof(buf))) > 0) {
		fprintf(stderr, "---- last output of %s ----\n", name);
		fwrite(buf, 1, (size_t)n, stderr);
		fprintf(stderr, "---- end ----\n");
	}
	close(fd);
}

void
dir_remove(const char *dir)
{
	char		 path[PATH_MAX];
	struct dirent	*de;
	DIR		*d;

	if (dir[0] == '\0' || (d = opendir(dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (unlink(path) != 0)
			fprintf(stderr, "bench: cannot remove %s: %s\n", path,
			    strerror(errno));
	}
	closedir(d);
	if (rmdir(dir) != 0)
		fprintf(stderr, "bench: cannot remove %s: %s\n", dir,
		    strerror(errno));
}

int
wait_socket(const char *sock, pid_t *pid, const char *name, int ms)
{
	struct sockaddr_un	sun;
	uint64_t		deadline;
	int			fd, status;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(sock) >= sizeof(sun.sun_path))
		return (-1);
	memcpy(sun.sun_path, sock, strlen(sock) + 1);
	deadline = now_ns() + (uint64_t)ms * 1000000u;
	for (;;) {
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return (-1);
		if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
			close(fd);
			return (0);
		}
		close(fd);
		if (waitpid(*pid, &status, WNOHANG) == *pid) {
			fprintf(stderr, "bench: %s exited during start-up "
			    "(status 0x%x)\n", name, status);
			*pid = -1;
			return (-1);
		}
		if (now_ns() > deadline) {
			fprintf(stderr, "bench: %s: no connection on %s after "
			    "%d ms\n", name, sock, ms);
			return (-1);
		}
		usleep(10000);	/* poll interval of a deadline-bounded wait */
	}
}

extern char **environ;

int
bench_agent_start(const char *top, const char *dir, const char *node,
    char *sock, size_t cap, pid_t *pid)
{
	char bin[PATH_MAX];
	char *argv[] = { bin, "--standalone", "--socket", sock, "--node",
	    (char *)node, "--no-shm", "--init", "0", NULL };

	snprintf(bin, sizeof(bin), "%s/distkv-agent", top);
	snprintf(sock, cap, "%s/agent.sock", dir);
	if (posix_spawn(pid, bin, NULL, NULL, argv, environ) != 0) {
		fprintf(stderr, "cannot start %s\n", bin);
		*pid = -1;
		return (-1);
	}
	return (wait_socket(sock, pid, "distkv-agent", 10000));
}

void
bench_agent_stop(pid_t *pid)
{
	if (*pid > 0) {
		kill(*pid, SIGTERM);
		waitpid(*pid, NULL, 0);
		*pid = -1;
	}
}

int
bench_error_cb(void *arg, const uint8_t *msg, size_t len)
{
	if (memmem(msg, len, "\xa5" "error", 6) != NULL)
		*(bool *)arg = true;
	return (0);
}
