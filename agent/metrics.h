/*
 * metrics: counters of one agent and their Prometheus text form
 * (docs/operations.md, "Metrics"), served by `get_metrics` and, with
 * --metrics ADDR:PORT, over HTTP.
 *
 * Everything runs on the agent's loop: the request path adds to plain
 * counters (no atomics, no locks), and the HTTP server (libmicrohttpd,
 * no thread of its own: its epoll descriptor is watched by the loop)
 * renders the text there too, so every number of one scrape is read at
 * one instant.
 */
#ifndef DISTKV_METRICS_H
#define DISTKV_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct agent;

/* Actions counted by their place in the dispatcher's table. */
#define METRICS_ACTIONS 64
/* Latency classes: read, write, stream (start of), other. */
#define METRICS_CLASSES 4
/* Upper bounds (seconds) of the histogram buckets, then +Inf. */
#define METRICS_BUCKETS 14

struct metrics_http;

struct metrics {
	struct metrics_action {
		const char *name;	/* NULL: never requested */
		uint64_t ok, error;
		unsigned cls;
	} act[METRICS_ACTIONS];
	uint64_t unknown;		/* requests of no known action */
	struct metrics_latency {
		uint64_t bucket[METRICS_BUCKETS + 1];	/* not cumulative */
		uint64_t count;
		double sum;
	} lat[METRICS_CLASSES];
	uint64_t errors;		/* error replies sent (server.c) */
	uint64_t conns_accepted;	/* (server.c) */
	/* within one batch of pipelined requests (server.c), when the last
	 * one ended: the next one's start, which saves a clock read per
	 * request (26 ns idle, 85-130 ns busy on a kvm-clock VM); 0
	 * between batches */
	double batch_stamp;
	struct metrics_http *http;	/* --metrics, or NULL */
};

static inline double
metrics_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* A request of the action at index idx (named name) took secs. */
void metrics_request(struct metrics *m, size_t idx, const char *name,
    bool error, double secs);

/*
 * The Prometheus text (format 0.0.4) of agent a: *out (malloc'd, NUL
 * terminated) and *len.  Returns 0 or -ENOMEM.
 */
int metrics_render(struct agent *a, char **out, size_t *len);

/*
 * Serve GET /metrics on addr ("HOST:PORT", numeric; port 0 picks one)
 * from a's loop.  Returns 0, -EINVAL (bad address) or -EADDRINUSE (could
 * not listen).
 */
int metrics_http_start(struct agent *a, const char *addr);
/* The port it listens on (0: not running). */
unsigned metrics_http_port(const struct agent *a);
void metrics_http_stop(struct agent *a);

#endif
