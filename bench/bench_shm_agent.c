/*
 * bench_shm (see bench_shm.c): the run through a real distkv-agent with its
 * region: loaded through the socket, read through the region and over the
 * socket, then the sets and their wake-ups.
 */
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "benchutil.h"
#include "bench_shm.h"

/* The agent process. */
struct agentproc {
	pid_t		 pid;
	char		 sock[FILE_MAX];
	char		 log[FILE_MAX];
	char		 shm[FILE_MAX];
};
_Static_assert(DIR_MAX + sizeof("/agent.sock") <=
    sizeof(((struct sockaddr_un *)0)->sun_path), "socket path too long");

/* ---- the agent ---- */

/* Wait until the agent accepts; forget its pid if it died. */
static int
agent_wait(struct agentproc *ap, int ms)
{
	int rc = wait_socket(ap->sock, &ap->pid, "distkv-agent", ms);

	if (ap->pid < 0)
		sig_pid[0] = -1;
	return (rc);
}

/* SIGTERM by pid, SIGKILL after STOP_MS; 0 if it stopped cleanly. */
static int
agent_stop(struct agentproc *ap)
{
	uint64_t	deadline;
	int		status = 0;
	pid_t		r;

	if (ap->pid <= 0)
		return (0);
	kill(ap->pid, SIGTERM);
	deadline = now_ns() + (uint64_t)STOP_MS * 1000000u;
	while ((r = waitpid(ap->pid, &status, WNOHANG)) == 0 &&
	    now_ns() < deadline)
		usleep(5000);
	if (r == 0) {
		fprintf(stderr, "bench: distkv-agent (pid %d) ignored SIGTERM "
		    "for %d ms, killing it\n", (int)ap->pid, STOP_MS);
		kill(ap->pid, SIGKILL);
		waitpid(ap->pid, &status, 0);
	}
	ap->pid = -1;
	sig_pid[0] = -1;
	if (r == 0)
		return (-1);
	if ((WIFEXITED(status) && WEXITSTATUS(status) == 0) ||
	    (WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM))
		return (0);
	fprintf(stderr, "bench: distkv-agent ended with status 0x%x\n",
	    status);
	return (-1);
}

/* Fork and exec the agent, pinned to --cpu-server, and wait for it. */
static int
agent_start(struct bench *b, struct agentproc *ap)
{
	char	*argv[] = { (char *)b->o.agent, "--standalone", "--socket",
		    ap->sock, "--node", "bench", "--shm", ap->shm, "--shm-mode",
		    "0600", NULL };
	pid_t	 pid;
	int	 fd, rc;

	fd = open(ap->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		fprintf(stderr, "bench: %s: %s\n", ap->log, strerror(errno));
		return (-1);
	}
	fprintf(stderr, "agent: starting %s\n", argv[0]);
	if ((pid = fork()) < 0) {
		fprintf(stderr, "bench: fork: %s\n", strerror(errno));
		close(fd);
		return (-1);
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		signal(SIGPIPE, SIG_DFL);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		if ((rc = pin_cpu(b->o.cpu_server)) != 0) {
			fprintf(stderr, "bench: cpu %ld: %s\n",
			    b->o.cpu_server, strerror(-rc));
			_exit(126);
		}
		execvp(argv[0], argv);
		fprintf(stderr, "bench: exec %s: %s\n", argv[0],
		    strerror(errno));
		_exit(127);
	}
	close(fd);
	ap->pid = pid;
	sig_pid[0] = pid;
	return (agent_wait(ap, START_MS));
}

struct loadpipe {
	long	done;
	int	rc;
};

static void
load_cb(void *arg, int rc, const struct distkv_set_result *r)
{
	struct loadpipe	*p = arg;

	(void)r;
	if (rc != 0 && p->rc == 0)
		p->rc = rc;
	p->done++;
}

/* Set every key once through the socket, PIPELINE sets in flight. */
static int
agent_load(struct target *tg)
{
	static const struct distkv_set_opts	opts = { .nchain = 0 };
	struct loadpipe				p = { 0, 0 };
	struct pollfd				pfd;
	uint8_t					vals[PIPELINE][VAL_WIRE];
	uint64_t				t0;
	long					issued = 0, n = tg->ks.n;
	int					rc;

	t0 = now_ns();
	while (p.done < n) {
		while (issued - p.done < PIPELINE && issued < n) {
			uint8_t	*v = vals[issued % PIPELINE];

			value_make(issued, tg->ks.gen[issued], v);
			if ((rc = distkv_async_set(tg->conn,
			    tg->ks.paths[issued], v, VAL_WIRE, &opts, load_cb,
			    &p, NULL)) != 0) {
				fprintf(stderr, "agent: async set: %s\n",
				    distkv_strerror(rc));
				return (-1);
			}
			issued++;
		}
		pfd.fd = distkv_fd(tg->conn);
		pfd.events = POLLIN | (distkv_want_write(tg->conn) ? POLLOUT :
		    0);
		pfd.revents = 0;
		if ((rc = poll(&pfd, 1, IO_MS)) < 0 && errno != EINTR) {
			fprintf(stderr, "agent: poll: %s\n", strerror(errno));
			return (-1);
		}
		if (rc == 0) {
			fprintf(stderr, "agent: no reply for %d ms\n", IO_MS);
			return (-1);
		}
		if ((rc = distkv_process(tg->conn)) != 0 || (rc = p.rc) != 0) {
			fprintf(stderr, "agent: load: %s\n",
			    distkv_strerror(rc));
			return (-1);
		}
	}
	tg->load_ns = (double)(now_ns() - t0) / (double)n;
	return (0);
}

/* The generation of the region now at path (0 if it cannot be read). */
static uint64_t
region_generation(const char *path)
{
	struct shm_reader_info	 info;
	struct shm_reader	*r;

	if (shm_reader_open(path, &r) != 0)
		return (0);
	shm_reader_info(r, &info);
	shm_reader_close(r);
	return (info.generation);
}

/* Mean ns of distkv_get on tg->conn over the first n keys. */
static double
conn_get_ns(struct target *tg, long n)
{
	struct distkv_entry	e;
	uint64_t		t0;
	long			i;

	if (n > tg->ks.n)
		n = tg->ks.n;
	t0 = now_ns();
	for (i = 0; i < n; i++) {
		distkv_get(tg->conn, tg->ks.paths[i], 0, &e);
		distkv_entry_clear(&e);
	}
	return ((double)(now_ns() - t0) / (double)n);
}

/* distkv_set latency, and set -> distkv_shm_wait wake-up delay. */
static int
agent_writes(struct target *tg)
{
	struct bench		*b = tg->b;
	struct waitshare	 ws;
	struct waiter_arg	 wa;
	pthread_t		 th;
	uint64_t		*delay, *pub;
	long			 n = b->o.wake_rounds;
	int			 rc = -1;

	delay = calloc((size_t)n, sizeof(*delay));
	pub = calloc((size_t)n, sizeof(*pub));
	if (delay == NULL || pub == NULL)
		goto out;
	fprintf(stderr, "%s: distkv_set, reader blocked in distkv_shm_wait\n",
	    tg->label);
	memset(&ws, 0, sizeof(ws));
	ws.tid = -1;
	memset(&wa, 0, sizeof(wa));
	wa.ws = &ws;
	wa.ds = tg->ds[0];
	wa.cpu = client_cpu(b, 1);
	if (pthread_create(&th, NULL, waiter_thread, &wa) != 0)
		goto out;
	while (LOAD_ACQ(&ws.tid) == -1)
		cpu_relax();
	rc = wake_rounds(tg, &ws, false, true, delay, pub);
	waiter_quit(&ws);
	pthread_join(th, NULL);
	if (rc != 0)
		goto out;
	tg->wake_set[0] = percentile_us(delay, n, 0.50);
	tg->wake_set[1] = percentile_us(delay, n, 0.99);
	tg->set_lat[0] = percentile_us(pub, n, 0.50);
	tg->set_lat[1] = percentile_us(pub, n, 0.99);
	tg->set_done = true;
out:
	free(delay);
	free(pub);
	return (rc);
}

/*
 * The agent run: load --agent-keys keys through the socket, then read them
 * through the agent's region and over the socket, then the writes.
 */
int
agent_run(struct bench *b, struct target *tg)
{
	struct agentproc	 ap;
	long			 n = b->o.agent_keys, round;
	int			 t, tci, rc, status = -1;
	enum method		 m;

	memset(&ap, 0, sizeof(ap));
	ap.pid = -1;
	snprintf(ap.sock, sizeof(ap.sock), "%s/agent.sock", b->dir);
	snprintf(ap.log, sizeof(ap.log), "%s/agent.log", b->dir);
	snprintf(ap.shm, sizeof(ap.shm), "%s/agent.shm", b->dir);
	tg->b = b;
	tg->n = n;
	tg->label = "agent";
	fprintf(stderr, "agent: building %ld keys\n", n);
	if (keyset_build(&tg->ks, n, true) != 0 || ops_build(tg) != 0) {
		fprintf(stderr, "bench: out of memory\n");
		return (-1);
	}
	if (agent_start(b, &ap) != 0)
		goto out;
	if ((rc = distkv_connect(ap.sock, &tg->conn)) != 0) {
		fprintf(stderr, "agent: connect: %s\n", distkv_strerror(rc));
		goto out;
	}
	if (distkv_shm_of(tg->conn) == NULL) {
		fprintf(stderr, "agent: the connection mapped no region\n");
		goto out;
	}
	/* the socket-only connection: DISTKV_NO_SHM for this connect only */
	setenv("DISTKV_NO_SHM", "1", 1);
	rc = distkv_connect(ap.sock, &tg->sock);
	unsetenv("DISTKV_NO_SHM");
	if (rc != 0 || distkv_shm_of(tg->sock) != NULL) {
		fprintf(stderr, "agent: socket-only connection: %s\n",
		    rc != 0 ? distkv_strerror(rc) : "mapped a region");
		goto out;
	}
	distkv_set_timeout(tg->conn, IO_MS);
	distkv_set_timeout(tg->sock, IO_MS);
	fprintf(stderr, "agent: loading %ld keys (pipelined distkv_async_set)"
	    "\n", n);
	if (agent_load(tg) != 0)
		goto out;
	snprintf(tg->region, sizeof(tg->region), "%s", ap.shm);
	tg->agent_generation = region_generation(ap.shm);
	if (region_inspect(ap.shm, &tg->ks, &tg->ri) != 0)
		fprintf(stderr, "agent: cannot inspect %s\n", ap.shm);
	for (t = 0; t < b->maxthreads; t++) {
		if ((rc = shm_reader_open(ap.shm, &tg->rd[t])) != 0 ||
		    (rc = distkv_shm_open(ap.shm, &tg->ds[t])) != 0) {
			fprintf(stderr, "agent: open %s: %s\n", ap.shm,
			    distkv_strerror(rc));
			goto out;
		}
		if (verify(tg, M_SHM, t, false) != 0 ||
		    verify(tg, M_SHM_PATH, t, false) != 0 ||
		    verify(tg, M_KEY, t, false) != 0 ||
		    verify(tg, M_KEY_STR, t, false) != 0)
			goto out;
	}
	/*
	 * The connection mapped the region the greeting named; the load may
	 * have replaced it (growth).  distkv_get re-maps it on its first
	 * read; the first reads of the new mapping pay its page faults: note
	 * that cost as is, then go on.
	 */
	tg->stale_get_ns = conn_get_ns(tg, 200);
	(void)distkv_shm_counter(distkv_shm_of(tg->conn));
	tg->fresh_get_ns = conn_get_ns(tg, 200);
	if (verify(tg, M_DKV_GET, 0, false) != 0 ||
	    verify(tg, M_SOCKET, 0, true) != 0)
		goto out;
	for (round = 0; round < b->o.rounds; round++)
		for (tci = 0; tci < b->o.ntc; tci++)
			for (m = M_SHM; m <= M_KEY_STR; m++)
				if (measure(tg, m, tci, b->batch_ops) != 0)
					goto out;
	tg->hot[M_SHM] = hot_measure(tg, M_SHM);
	tg->hot[M_SHM_PATH] = hot_measure(tg, M_SHM_PATH);
	tg->hot[M_KEY] = hot_measure(tg, M_KEY);
	tg->hot[M_KEY_STR] = hot_measure(tg, M_KEY_STR);
	tg->hot[M_DKV_GET] = hot_measure(tg, M_DKV_GET);
	/* one handle each: single-threaded */
	for (tci = 0; tci < b->o.ntc && b->o.threads[tci] != 1; tci++)
		;
	if (tci < b->o.ntc) {
		if (measure(tg, M_DKV_GET, tci, b->batch_ops) != 0)
			goto out;
		tg->lat = calloc((size_t)tg->nops, sizeof(*tg->lat));
		if (tg->lat == NULL || measure(tg, M_SOCKET, tci,
		    b->batch_ops / SOCKET_DIV > 0 ? b->batch_ops / SOCKET_DIV :
		    1) != 0)
			goto out;
		tg->sock_p50 = percentile_us(tg->lat, tg->nlat, 0.50);
		tg->sock_p99 = percentile_us(tg->lat, tg->nlat, 0.99);
	}
	for (tci = 0; tci < b->o.ntc; tci++)
		for (m = M_SHM_PATH; m <= M_DKV_GET; m++)
			if (tg->res[m][tci].done && tg->res[m][tci].sum !=
			    tg->res[M_SHM][tci].sum) {
				fprintf(stderr, "agent: %s read other values "
				    "than shm_reader_get\n", method_name[m]);
				goto out;
			}
	if (b->o.wake_rounds > 0 && agent_writes(tg) != 0)
		goto out;
	/* every key once more, after the sets */
	if (verify(tg, M_SHM, 0, false) != 0 ||
	    verify(tg, M_SOCKET, 0, true) != 0)
		goto out;
	status = 0;
out:
	distkv_close(tg->conn);
	distkv_close(tg->sock);
	tg->conn = tg->sock = NULL;
	for (t = 0; t < MAX_THREADS; t++) {
		shm_reader_close(tg->rd[t]);
		distkv_shm_close(tg->ds[t]);
		tg->rd[t] = NULL;
		tg->ds[t] = NULL;
	}
	if (agent_stop(&ap) != 0)
		status = -1;
	if (status != 0)
		log_tail(ap.log, "distkv-agent");
	return (status);
}
