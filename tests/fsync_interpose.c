/*
 * fsync_interpose: an LD_PRELOAD library for tests/test_durability.c.  It
 * records, in the order the agent makes them, the calls that decide
 * whether an acknowledged change is durable:
 *
 *	W <ns> <end>                      a write to the change log (the end
 *	                                  of its data after it)
 *	T <ns> <size>                     ftruncate of the change log
 *	S <ns> <durable>                  fdatasync/fsync of the change log
 *	R <ns> <fd> <bytes> <durable> <written>   a write/send on a socket
 *	X <ns> <path>                     a write to a file named *.tmp
 *	F <ns> <path>                     fsync/fdatasync of any other file
 *	                                  or directory
 *	N <ns> <old> <new>                rename(2)
 *
 * <ns> is CLOCK_MONOTONIC; <durable> is the end of the log's data at its
 * last successful sync (what a power loss leaves: the page cache is gone),
 * and <written> that end after the last write.  The agent preallocates
 * the log, so the end is the highest offset written, not the file size.
 * The log is the file whose name ends in "/changes.dkv".  Lines go to the
 * file named by DISTKV_IO_TRACE, one write(2) each (O_APPEND), so a reader
 * that received a reply finds the reply's R line already there.  Without DISTKV_IO_TRACE it records nothing.
 *
 * Built by `make check` as a libtool module without sanitizers; in an ASan
 * build the test sets ASAN_OPTIONS=verify_asan_link_order=0.  Test code
 * only: it assumes a single-threaded agent.
 */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define LOG_SUFFIX "/changes.dkv"

static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_send)(int, const void *, size_t, int);
static ssize_t (*real_sendto)(int, const void *, size_t, int,
    const struct sockaddr *, socklen_t);
static ssize_t (*real_sendmsg)(int, const struct msghdr *, int);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_ftruncate)(int, off_t);
static int (*real_rename)(const char *, const char *);

static int trace_fd = -2;		/* -2: not opened yet, -1: off */
static long long durable = -1, written = -1;

static void
resolve(void)
{
	if (real_write != NULL)
		return;
	real_write = (ssize_t (*)(int, const void *, size_t))
	    dlsym(RTLD_NEXT, "write");
	real_writev = (ssize_t (*)(int, const struct iovec *, int))
	    dlsym(RTLD_NEXT, "writev");
	real_pwrite = (ssize_t (*)(int, const void *, size_t, off_t))
	    dlsym(RTLD_NEXT, "pwrite64");
	real_send = (ssize_t (*)(int, const void *, size_t, int))
	    dlsym(RTLD_NEXT, "send");
	real_sendto = (ssize_t (*)(int, const void *, size_t, int,
	    const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "sendto");
	real_sendmsg = (ssize_t (*)(int, const struct msghdr *, int))
	    dlsym(RTLD_NEXT, "sendmsg");
	real_fsync = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
	real_fdatasync = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
	real_ftruncate = (int (*)(int, off_t))dlsym(RTLD_NEXT, "ftruncate");
	real_rename = (int (*)(const char *, const char *))
	    dlsym(RTLD_NEXT, "rename");
}

static bool
tracing(void)
{
	const char *path;

	resolve();
	if (trace_fd == -2) {
		path = getenv("DISTKV_IO_TRACE");
		trace_fd = path == NULL ? -1 : open(path,
		    O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	}
	return trace_fd >= 0;
}

static long long
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void
emit(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
emit(const char *fmt, ...)
{
	char line[8300];
	va_list ap;
	int n;
	int saved = errno;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n > 0 && (size_t)n < sizeof(line))
		(void)real_write(trace_fd, line, (size_t)n);
	errno = saved;
}

/* The file name of fd into path (cap bytes); false if it has none. */
static bool
fd_path(int fd, char *path, size_t cap)
{
	char link[64];
	ssize_t n;

	if (fd < 0 || fd == trace_fd)
		return false;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, path, cap - 1);
	if (n <= 0)
		return false;
	path[n] = '\0';
	return true;
}

static bool
ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), sl = strlen(suffix);

	return n >= sl && strcmp(s + n - sl, suffix) == 0;
}

static bool
is_log(int fd)
{
	char path[4096];

	return fd_path(fd, path, sizeof(path)) && ends_with(path, LOG_SUFFIX);
}

static bool
is_socket(int fd)
{
	struct stat st;

	return fd >= 0 && fd != trace_fd && fstat(fd, &st) == 0 &&
	    S_ISSOCK(st.st_mode);
}

/* Before a call that may send bytes on fd. */
static void
before_send(int fd, size_t len)
{
	if (tracing() && is_socket(fd))
		emit("R %lld %d %zu %lld %lld\n", now_ns(), fd, len, durable,
		    written);
}

/* After a call that wrote r bytes to fd, ending at offset end (-1: the
 * file offset). */
static void
after_write(int fd, ssize_t r, off_t end)
{
	char path[4096];

	if (r < 0 || !tracing() || !fd_path(fd, path, sizeof(path)))
		return;
	if (ends_with(path, LOG_SUFFIX)) {
		/* the log is preallocated: its size is not where data ends */
		if (end < 0)
			end = lseek(fd, 0, SEEK_CUR);
		if (end > written)
			written = end;
		emit("W %lld %lld\n", now_ns(), written);
	} else if (ends_with(path, ".tmp"))
		emit("X %lld %s\n", now_ns(), path);
}

ssize_t
write(int fd, const void *buf, size_t len)
{
	ssize_t r;

	before_send(fd, len);
	r = real_write(fd, buf, len);
	after_write(fd, r, -1);
	return r;
}

static ssize_t
traced_pwrite(int fd, const void *buf, size_t len, off_t at)
{
	ssize_t r;

	before_send(fd, len);
	r = real_pwrite(fd, buf, len, at);
	after_write(fd, r, r < 0 ? -1 : at + r);
	return r;
}

ssize_t
pwrite(int fd, const void *buf, size_t len, off_t at)
{
	return traced_pwrite(fd, buf, len, at);
}

ssize_t
pwrite64(int fd, const void *buf, size_t len, off_t at)
{
	return traced_pwrite(fd, buf, len, at);
}

ssize_t
writev(int fd, const struct iovec *iov, int n)
{
	size_t len = 0;
	ssize_t r;

	for (int i = 0; i < n; i++)
		len += iov[i].iov_len;
	before_send(fd, len);
	r = real_writev(fd, iov, n);
	after_write(fd, r, -1);
	return r;
}

ssize_t
send(int fd, const void *buf, size_t len, int flags)
{
	before_send(fd, len);
	return real_send(fd, buf, len, flags);
}

ssize_t
sendto(int fd, const void *buf, size_t len, int flags,
    const struct sockaddr *to, socklen_t tolen)
{
	before_send(fd, len);
	return real_sendto(fd, buf, len, flags, to, tolen);
}

ssize_t
sendmsg(int fd, const struct msghdr *m, int flags)
{
	size_t len = 0;

	for (size_t i = 0; i < m->msg_iovlen; i++)
		len += m->msg_iov[i].iov_len;
	before_send(fd, len);
	return real_sendmsg(fd, m, flags);
}

static int
synced(int fd, int r)
{
	char path[4096];

	if (r != 0 || !tracing() || !fd_path(fd, path, sizeof(path)))
		return r;
	if (ends_with(path, LOG_SUFFIX)) {
		/* fdatasync makes every byte written so far durable */
		durable = written;
		emit("S %lld %lld\n", now_ns(), durable);
	} else
		emit("F %lld %s\n", now_ns(), path);
	return r;
}

int
rename(const char *from, const char *to)
{
	int r;

	resolve();
	r = real_rename(from, to);
	if (r == 0 && tracing())
		emit("N %lld %s %s\n", now_ns(), from, to);
	return r;
}

int
fsync(int fd)
{
	resolve();
	return synced(fd, real_fsync(fd));
}

int
fdatasync(int fd)
{
	resolve();
	return synced(fd, real_fdatasync(fd));
}

int
ftruncate(int fd, off_t len)
{
	int r;

	resolve();
	r = real_ftruncate(fd, len);
	if (r == 0 && tracing() && is_log(fd)) {
		/* bytes cut off are no longer durable nor written */
		if (written > len)
			written = len;
		if (durable > len)
			durable = len;
		emit("T %lld %lld\n", now_ns(), (long long)len);
	}
	return r;
}
