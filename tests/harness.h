/*
 * harness: start and stop a real distkv-agent for end-to-end tests.
 *
 * Each agent runs in its own temporary directory (socket, state dir) and is
 * killed only by the pid the harness started.  Every wait has a deadline;
 * nothing sleeps and hopes.
 */
#ifndef DISTKV_TEST_HARNESS_H
#define DISTKV_TEST_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct harness_agent {
	pid_t pid;
	char dir[256];		/* temp dir, removed by harness_cleanup */
	char socket[300];	/* dir/agent.sock */
	char state_dir[300];	/* dir/state (not created unless asked) */
	char shm[300];		/* dir/region: passed as --shm unless the
				 * test gives --shm or --no-shm itself */
};

/* Path of a built program, e.g. harness_bin("distkv-agent"). Static buffer. */
const char *harness_bin(const char *name);

/* Make the temp dir and fill in the paths; no process yet. */
void harness_init(struct harness_agent *a);

/*
 * Start distkv-agent --socket a->socket plus the NULL-terminated extra
 * arguments (e.g. "--standalone", "--node", "n1", NULL) and wait up to
 * 10 s until the socket accepts a connection.  Returns 0 or -1 (the agent
 * died or the deadline passed; its stderr is in dir/agent.err).
 */
int harness_start(struct harness_agent *a, ...);

/* SIGTERM and wait up to 10 s for exit; returns the exit status or -1. */
int harness_stop(struct harness_agent *a);
/* SIGKILL and reap. */
void harness_kill9(struct harness_agent *a);
/* Stop if running, remove the temp dir. */
void harness_cleanup(struct harness_agent *a);

/* Connect a raw Unix socket to path; returns fd or -1. */
int harness_connect(const char *path);

/* Milliseconds on the monotonic clock. */
long long harness_now_ms(void);

#endif
