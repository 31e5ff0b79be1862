/*
 * benchutil: the small helpers every benchmark program in bench/ uses:
 * clocks, CPU pinning, number parsing, percentiles, temp dir removal.
 */
#ifndef DISTKV_BENCHUTIL_H
#define DISTKV_BENCHUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Parse a decimal in [lo, hi] into *out; -1 if it is not one. */
int parse_long(const char *s, long lo, long hi, long *out);
/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t now_ns(void);
/* /proc/loadavg's first three fields, for the table header. */
void loadavg_read(char *buf, size_t len);
/* Pin the calling thread to cpu (< 0: leave it). 0 or -errno. */
int pin_cpu(long cpu);
/* qsort comparators. */
int dblcmp(const void *a, const void *b);
int u64cmp(const void *a, const void *b);
/* The p-quantile (0..1) of n nanosecond samples, in microseconds; sorts v. */
double percentile_us(uint64_t *v, long n, double p);
/* The median of n doubles; sorts v. */
double median(double *v, long n);
/*
 * Wait until the server *pid started accepts on the Unix socket sock, it
 * exits (*pid is then -1), or ms pass.  0 or -1 (said on stderr).
 */
int wait_socket(const char *sock, pid_t *pid, const char *name, int ms);
/* Copy the last 4 KiB of a server's log file to stderr, under name. */
void log_tail(const char *path, const char *name);
/* Remove a temp dir this program made and the plain files in it. */
void dir_remove(const char *dir);

/*
 * A benchmark's own agent: top/distkv-agent --standalone --socket
 * dir/agent.sock --node node --no-shm --init 0 (no region: every read
 * goes over the socket), started and waited for until it serves.  sock
 * (cap bytes) gets the socket path, *pid the pid.  0 or -1 (said).
 */
int bench_agent_start(const char *top, const char *dir, const char *node,
    char *sock, size_t cap, pid_t *pid);
/* SIGTERM the agent by its pid and reap it; *pid becomes -1. */
void bench_agent_stop(pid_t *pid);
/* A libdistkv raw reply callback: sets *(bool *)arg if a reply carries
 * an error field. */
int bench_error_cb(void *arg, const uint8_t *msg, size_t len);

#endif
