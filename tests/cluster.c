/* cluster: see cluster.h. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <msgpack.h>

#include "cluster.h"
#include "proto.h"

#define CLUSTER_POLL_US 2000	/* poll interval of deadline-bounded waits */

/* ---- addresses ---- */

/* True if ip:port is free for TCP and for UDP. */
static bool
port_free(const char *ip, int port)
{
	struct sockaddr_in sin;
	bool ok = true;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	inet_pton(AF_INET, ip, &sin.sin_addr);
	for (int k = 0; k < 2 && ok; k++) {
		int fd = socket(AF_INET, k == 0 ? SOCK_STREAM : SOCK_DGRAM, 0);

		if (fd < 0)
			return false;
		ok = bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0;
		close(fd);
	}
	return ok;
}

static bool
triple_free(int ipbase, int n, int port)
{
	char ip[32];

	for (int i = 0; i < n; i++) {
		snprintf(ip, sizeof(ip), "127.0.0.%d", ipbase + i);
		for (int k = 0; k < 3; k++)
			if (!port_free(ip, port + k))
				return false;
	}
	return true;
}

/* A cluster runs with a key, as every cluster should (docs/cluster.md). */
static int
write_key(const char *path)
{
	static const char secret[] = "distkv-test-cluster-secret-1\n";
	FILE *f = fopen(path, "w");

	if (f == NULL)
		return -1;
	fputs(secret, f);
	return fclose(f) == 0 ? 0 : -1;
}

static bool
names_a_key(const struct cluster_node *nd)
{
	for (size_t k = 0; nd->extra[k] != NULL; k++)
		if (strcmp(nd->extra[k], "--cluster-key") == 0 ||
		    strcmp(nd->extra[k], "--insecure-no-cluster-key") == 0)
			return true;
	return false;
}

int
cluster_init(struct cluster *c, int n, int ipbase)
{
	int port;

	memset(c, 0, sizeof(*c));
	if (n < 1 || n > CLUSTER_MAX || ipbase < 2 || ipbase + n > 254)
		return -1;
	c->n = n;
	c->ipbase = ipbase;
	c->clock = "0.2";
	c->log_level = "info";
	/*
	 * Away from Serf's defaults (7373, 7946), the peer default 27589 and
	 * the ephemeral range; test_serf uses 20000.. on 127.0.0.1-4, we use
	 * other addresses, so equal port numbers do not clash either.
	 */
	port = 20000 + (int)(getpid() % 3000) * 4;
	for (int tries = 0; !triple_free(ipbase, n, port); tries++) {
		if (tries > 200)
			return -1;
		port += 4;
		if (port > 32000)
			port = 20000;
	}
	c->port = port;
	for (int i = 0; i < n; i++) {
		struct cluster_node *nd = &c->node[i];

		harness_init(&nd->h);
		snprintf(nd->name, sizeof(nd->name), "n%d", i);
		snprintf(nd->bind, sizeof(nd->bind), "127.0.0.%d:%d",
		    ipbase + i, port);
		snprintf(nd->serf_rpc, sizeof(nd->serf_rpc), "127.0.0.%d:%d",
		    ipbase + i, port + 1);
		snprintf(nd->peer, sizeof(nd->peer), "127.0.0.%d:%d",
		    ipbase + i, port + 2);
		snprintf(nd->run_dir, sizeof(nd->run_dir), "%s/run",
		    nd->h.dir);
		snprintf(nd->keyfile, sizeof(nd->keyfile), "%s/cluster.key",
		    nd->h.dir);
		if (write_key(nd->keyfile) != 0)
			return -1;
	}
	return 0;
}

void
cluster_node_args(struct cluster *c, int i, ...)
{
	struct cluster_node *nd = &c->node[i];
	const char *arg;
	size_t k = 0;
	va_list ap;

	while (nd->extra[k] != NULL)
		k++;
	va_start(ap, i);
	while ((arg = va_arg(ap, const char *)) != NULL) {
		if (k >= CLUSTER_MAX_ARGS)
			abort();
		nd->extra[k++] = arg;
	}
	va_end(ap);
	nd->extra[k] = NULL;
}

/* ---- processes ---- */

int
cluster_spawn(struct cluster *c, int i, bool init)
{
	struct cluster_node *nd = &c->node[i];
	const char *argv[64];
	char errpath[320];
	int argc = 0;

	if (nd->h.pid > 0)
		return -1;
	argv[argc++] = harness_bin("distkv-agent");
	argv[argc++] = "--socket";
	argv[argc++] = nd->h.socket;
	argv[argc++] = "--node";
	argv[argc++] = nd->name;
	argv[argc++] = "--bind";
	argv[argc++] = nd->bind;
	argv[argc++] = "--serf-rpc";
	argv[argc++] = nd->serf_rpc;
	argv[argc++] = "--peer-bind";
	argv[argc++] = nd->peer;
	argv[argc++] = "--clock";
	argv[argc++] = c->clock;
	argv[argc++] = "--run-dir";
	argv[argc++] = nd->run_dir;
	argv[argc++] = "--shm";
	argv[argc++] = nd->h.shm;
	argv[argc++] = "--log-level";
	argv[argc++] = c->log_level;
	if (init) {
		argv[argc++] = "--init";
		argv[argc++] = "\"cluster\"";
	}
	if ((i != 0 || !init) && c->n > 1) {
		/* node 0 restarted without --init joins node 1 */
		argv[argc++] = "--join";
		argv[argc++] = c->node[i == 0 ? 1 : 0].bind;
	}
	if (!names_a_key(nd)) {
		argv[argc++] = "--cluster-key";
		argv[argc++] = nd->keyfile;
	}
	for (size_t k = 0; nd->extra[k] != NULL; k++)
		argv[argc++] = nd->extra[k];
	argv[argc] = NULL;

	snprintf(errpath, sizeof(errpath), "%s/agent.err", nd->h.dir);
	nd->h.pid = fork();
	if (nd->h.pid < 0) {
		nd->h.pid = 0;
		return -1;
	}
	if (nd->h.pid == 0) {
		int fd = open(errpath, O_WRONLY | O_CREAT | O_APPEND, 0644);

		if (fd >= 0) {
			dup2(fd, 2);
			close(fd);
		}
		if (nd->uid != 0 && (setgroups(0, NULL) != 0 ||
		    setresgid(nd->gid, nd->gid, nd->gid) != 0 ||
		    setresuid(nd->uid, nd->uid, nd->uid) != 0))
			_exit(126);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	nd->started = true;
	return 0;
}

int
cluster_wait_socket(struct cluster *c, int i, int timeout_ms)
{
	struct cluster_node *nd = &c->node[i];
	long long deadline = harness_now_ms() + timeout_ms;
	int status;

	while (nd->h.pid > 0) {
		int fd = harness_connect(nd->h.socket);

		if (fd >= 0) {
			close(fd);
			return 0;
		}
		if (waitpid(nd->h.pid, &status, WNOHANG) == nd->h.pid) {
			nd->h.pid = 0;
			return -1;
		}
		if (harness_now_ms() > deadline)
			return -1;
		usleep(CLUSTER_POLL_US);
	}
	return -1;
}

int
cluster_start(struct cluster *c)
{
	if (cluster_spawn(c, 0, true) != 0 ||
	    cluster_wait_socket(c, 0, 10000) != 0)
		return -1;
	/*
	 * In batches: fifty joiners at once would each start Go, join and
	 * download while the others do the same on two cores, and the
	 * deadline would measure the crowd, not the node.
	 */
	for (int first = 1; first < c->n; first += CLUSTER_SPAWN_BATCH) {
		int end = first + CLUSTER_SPAWN_BATCH;

		if (end > c->n)
			end = c->n;
		for (int i = first; i < end; i++)
			if (cluster_spawn(c, i, false) != 0)
				return -1;
		for (int i = first; i < end; i++)
			if (cluster_wait_socket(c, i, 30000) != 0)
				return -1;
	}
	return 0;
}

int
cluster_raise_fd_limit(int n)
{
	struct rlimit rl;
	/* per node: client, shm, a spare; plus stdio, logs, the harness */
	rlim_t need = (rlim_t)n * 4 + 64;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return -1;
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
		if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need)
			return -1;
		rl.rlim_cur = need;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			return -1;
	}
	return 0;
}

/* ---- Serf membership (RPC `members`, serf-notes.md sections 1-3) ---- */

static void
pack_cstr(msgpack_packer *pk, const char *s)
{
	msgpack_pack_str_with_body(pk, s, strlen(s));
}

/* Send {Command: cmd, Seq: seq} and, for handshake, {Version: 1}. */
static int
serf_rpc_send(int fd, const char *cmd, uint64_t seq)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	ssize_t w;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 2);
	pack_cstr(&pk, "Command");
	pack_cstr(&pk, cmd);
	pack_cstr(&pk, "Seq");
	msgpack_pack_uint64(&pk, seq);
	if (strcmp(cmd, "handshake") == 0) {
		msgpack_pack_map(&pk, 1);
		pack_cstr(&pk, "Version");
		msgpack_pack_int32(&pk, 1);
	}
	w = write(fd, sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
	return w == (ssize_t)sb.size ? 0 : -1;
}

/* Read the next msgpack object from fd into up (deadline-bounded). */
static int
serf_rpc_next(int fd, msgpack_unpacker *u, msgpack_unpacked *up,
    long long deadline)
{
	for (;;) {
		msgpack_unpack_return r = msgpack_unpacker_next(u, up);
		ssize_t n;

		if (r == MSGPACK_UNPACK_SUCCESS)
			return 0;
		if (r != MSGPACK_UNPACK_CONTINUE)
			return -1;
		if (harness_now_ms() > deadline ||
		    !msgpack_unpacker_reserve_buffer(u, 65536))
			return -1;
		n = read(fd, msgpack_unpacker_buffer(u), 65536);
		if (n <= 0)
			return -1;
		msgpack_unpacker_buffer_consumed(u, (size_t)n);
	}
}

/* Alive members in node i's Serf agent, or -1. */
static int
serf_alive(const struct cluster *c, int i)
{
	const char *rpc = c->node[i].serf_rpc, *colon = strrchr(rpc, ':');
	long long deadline = harness_now_ms() + 2000;
	struct sockaddr_in sin;
	struct timeval tv = { 2, 0 };
	msgpack_unpacker u;
	msgpack_unpacked up;
	const msgpack_object *err, *mem;
	char ip[32];
	int fd, alive = -1;

	if (colon == NULL || (size_t)(colon - rpc) >= sizeof(ip))
		return -1;
	memcpy(ip, rpc, (size_t)(colon - rpc));
	ip[colon - rpc] = '\0';
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)atoi(colon + 1));
	if (inet_pton(AF_INET, ip, &sin.sin_addr) != 1 ||
	    (fd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
		close(fd);
		return -1;
	}
	if (!msgpack_unpacker_init(&u, 65536))
		abort();
	msgpack_unpacked_init(&up);
	/* handshake: a header; members: a header, then {Members: [...]} */
	if (serf_rpc_send(fd, "handshake", 1) != 0 ||
	    serf_rpc_next(fd, &u, &up, deadline) != 0 ||
	    (err = proto_map_get(&up.data, "Error")) == NULL ||
	    err->type != MSGPACK_OBJECT_STR || err->via.str.size != 0 ||
	    serf_rpc_send(fd, "members", 2) != 0 ||
	    serf_rpc_next(fd, &u, &up, deadline) != 0 ||
	    (err = proto_map_get(&up.data, "Error")) == NULL ||
	    err->type != MSGPACK_OBJECT_STR || err->via.str.size != 0 ||
	    serf_rpc_next(fd, &u, &up, deadline) != 0 ||
	    (mem = proto_map_get(&up.data, "Members")) == NULL ||
	    mem->type != MSGPACK_OBJECT_ARRAY)
		goto out;
	alive = 0;
	for (uint32_t k = 0; k < mem->via.array.size; k++) {
		const msgpack_object *st = proto_map_get(&mem->via.array.ptr[k],
		    "Status");

		if (st != NULL && st->type == MSGPACK_OBJECT_STR &&
		    st->via.str.size == 5 &&
		    memcmp(st->via.str.ptr, "alive", 5) == 0)
			alive++;
	}
out:
	msgpack_unpacked_destroy(&up);
	msgpack_unpacker_destroy(&u);
	close(fd);
	return alive;
}

int
cluster_wait_members(struct cluster *c, int want, int timeout_ms, char *why,
    size_t whylen)
{
	long long deadline = harness_now_ms() + timeout_ms;
	bool done[CLUSTER_MAX] = { false };
	int left = 0;

	if (want <= 0)
		for (int i = 0; i < c->n; i++)
			want += c->node[i].h.pid > 0;
	for (int i = 0; i < c->n; i++)
		if (c->node[i].h.pid > 0)
			left++;
		else
			done[i] = true;
	snprintf(why, whylen, "no running node");
	while (left > 0) {
		for (int i = 0; i < c->n; i++) {
			int got;

			if (done[i])
				continue;
			if ((got = serf_alive(c, i)) == want) {
				done[i] = true;
				left--;
				continue;
			}
			snprintf(why, whylen, "%s: serf lists %d alive, want "
			    "%d", c->node[i].name, got, want);
		}
		if (left == 0)
			break;
		if (harness_now_ms() > deadline)
			return -1;
		usleep(20000);	/* every poll is a connection per node */
	}
	return 0;
}

pid_t
cluster_serf_pid(const struct cluster *c, int i)
{
	pid_t parent = c->node[i].h.pid, found = 0;
	struct dirent *de;
	DIR *d;

	if (parent <= 0 || (d = opendir("/proc")) == NULL)
		return 0;
	while (found == 0 && (de = readdir(d)) != NULL) {
		char path[300], buf[512], *p;
		long ppid;
		ssize_t n;
		int fd;

		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		if ((fd = open(path, O_RDONLY)) < 0)
			continue;
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		/* pid (comm) state ppid ...: comm may hold spaces */
		if ((p = strrchr(buf, ')')) == NULL ||
		    sscanf(p + 1, " %*c %ld", &ppid) != 1 || ppid != parent)
			continue;
		if (strstr(buf, "(serf)") != NULL)
			found = (pid_t)atol(de->d_name);
	}
	closedir(d);
	return found;
}

/* Reap node i within the deadline; exit status, or -1 (then killed). */
static int
reap(struct cluster_node *nd, long long deadline)
{
	int status;

	while (nd->h.pid > 0) {
		pid_t r = waitpid(nd->h.pid, &status, WNOHANG);

		if (r == nd->h.pid) {
			nd->h.pid = 0;
			return WIFEXITED(status) ? WEXITSTATUS(status) :
			    128 + WTERMSIG(status);
		}
		if (r < 0) {
			nd->h.pid = 0;
			return -1;
		}
		if (harness_now_ms() > deadline) {
			fprintf(stderr, "cluster: %s did not stop; killing\n",
			    nd->name);
			harness_kill9(&nd->h);
			return -1;
		}
		usleep(CLUSTER_POLL_US);
	}
	return -1;
}

/* SIGTERM the serf child (exits at once, no leave), then the agent. */
static void
signal_stop(struct cluster *c, int i)
{
	pid_t serf = cluster_serf_pid(c, i);

	if (serf > 0)
		kill(serf, SIGTERM);
	if (c->node[i].h.pid > 0)
		kill(c->node[i].h.pid, SIGTERM);
}

int
cluster_stop_node(struct cluster *c, int i)
{
	if (c->node[i].h.pid <= 0)
		return -1;
	signal_stop(c, i);
	return reap(&c->node[i], harness_now_ms() + 10000);
}

int
cluster_stop(struct cluster *c)
{
	long long deadline = harness_now_ms() + 10000;
	int bad = 0;

	for (int i = 0; i < c->n; i++)
		if (c->node[i].h.pid > 0)
			signal_stop(c, i);
	for (int i = 0; i < c->n; i++) {
		int st;

		if (c->node[i].h.pid <= 0)
			continue;
		if ((st = reap(&c->node[i], deadline)) != 0) {
			fprintf(stderr, "cluster: %s exited with %d\n",
			    c->node[i].name, st);
			bad++;
		}
	}
	return bad;
}

void
cluster_cleanup(struct cluster *c)
{
	const char *keep = getenv("DISTKV_KEEP");

	cluster_stop(c);
	for (int i = 0; i < c->n; i++) {
		if (keep != NULL && *keep != '\0') {
			fprintf(stderr, "cluster: kept %s\n", c->node[i].h.dir);
			continue;
		}
		harness_cleanup(&c->node[i].h);
	}
	c->n = 0;
}

/* ---- logs ---- */

/* Append the last max bytes of file to buf. */
static size_t
append_tail(char *buf, size_t off, size_t cap, const char *file, size_t max)
{
	char tmp[4096];
	struct stat st;
	size_t n;
	FILE *f;

	if (off >= cap || (f = fopen(file, "r")) == NULL)
		return off;
	if (max > sizeof(tmp) - 1)
		max = sizeof(tmp) - 1;
	if (fstat(fileno(f), &st) == 0 && (size_t)st.st_size > max)
		fseek(f, (long)((size_t)st.st_size - max), SEEK_SET);
	n = fread(tmp, 1, max, f);
	fclose(f);
	tmp[n] = '\0';
	n = (size_t)snprintf(buf + off, cap - off, "---- %s (tail)\n%s", file,
	    tmp);
	off += n;
	return off < cap ? off : cap;
}

const char *
cluster_diag(const struct cluster *c)
{
	static char buf[24576];
	char path[400];
	size_t off = 0;

	buf[0] = '\0';
	for (int i = 0; i < c->n; i++) {
		snprintf(path, sizeof(path), "%s/agent.err", c->node[i].h.dir);
		off = append_tail(buf, off, sizeof(buf), path, 1500);
		snprintf(path, sizeof(path), "%s/serf.log", c->node[i].run_dir);
		off = append_tail(buf, off, sizeof(buf), path, 600);
	}
	return buf;
}

int
cluster_log_count(const struct cluster *c, int i, const char *needle)
{
	char path[400], line[2048];
	int count = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/agent.err", c->node[i].h.dir);
	if ((f = fopen(path, "r")) == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strstr(line, needle) != NULL)
			count++;
	fclose(f);
	return count;
}

distkv *
cluster_connect(const struct cluster *c, int i)
{
	distkv *k;

	if (distkv_connect(c->node[i].h.socket, &k) != 0)
		return NULL;
	distkv_set_timeout(k, 10000);
	return k;
}

/* ---- paths ---- */

distkv_path *
cluster_path(const char *s, int64_t i)
{
	distkv_path *p;

	if (distkv_path_new(&p) != 0 ||
	    distkv_path_push_str(p, s, strlen(s)) != 0 ||
	    distkv_path_push_int(p, i) != 0)
		abort();
	return p;
}

uint8_t *
cluster_path_bytes(const distkv_path *p, size_t *len)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	size_t n = distkv_path_len(p);

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, (uint32_t)n);
	for (size_t k = 0; k < n; k++) {
		struct distkv_elem e;

		distkv_path_elem(p, k, &e);
		switch (e.type) {
		case DISTKV_ELEM_STR:
			msgpack_pack_str_with_body(&pk, e.s, e.len);
			break;
		case DISTKV_ELEM_BIN:
			msgpack_pack_bin_with_body(&pk, e.s, e.len);
			break;
		case DISTKV_ELEM_INT:
			msgpack_pack_int64(&pk, e.i);
			break;
		case DISTKV_ELEM_NIL:
			msgpack_pack_nil(&pk);
			break;
		}
	}
	*len = sb.size;
	return (uint8_t *)sb.data;	/* malloc'd by the sbuffer */
}

/* ---- waiting for a value ---- */

static bool
same_bytes(const void *a, size_t alen, const void *b, size_t blen)
{
	return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

/* Does node i hold value at p?  In its region, then over its socket. */
static bool
node_has(struct cluster *c, int i, distkv_shm **shm, distkv **k,
    const distkv_path *p, const void *value, size_t len, char *why,
    size_t whylen)
{
	static uint8_t buf[1 << 20];
	struct distkv_entry e;
	size_t got = 0;
	int rc;

	if (*shm == NULL &&
	    (rc = distkv_shm_open(c->node[i].h.shm, shm)) != 0) {
		snprintf(why, whylen, "%s: shm open: %s", c->node[i].name,
		    distkv_strerror(rc));
		return false;
	}
	rc = distkv_shm_get(*shm, p, buf, sizeof(buf), &got, NULL);
	if (value == NULL ? rc != DISTKV_ENOTFOUND :
	    rc != 0 || !same_bytes(buf, got, value, len)) {
		snprintf(why, whylen, "%s: shm get: %s (%zu bytes, want %zu)",
		    c->node[i].name, rc == 0 ? "other value" :
		    distkv_strerror(rc), got, len);
		return false;
	}
	if (*k == NULL && (*k = cluster_connect(c, i)) == NULL) {
		snprintf(why, whylen, "%s: cannot connect", c->node[i].name);
		return false;
	}
	memset(&e, 0, sizeof(e));
	rc = distkv_get(*k, p, 1, &e);	/* nchain 1: over the socket */
	if (value == NULL ? rc != DISTKV_ENOTFOUND :
	    rc != 0 || !same_bytes(e.value.data, e.value.len, value, len)) {
		snprintf(why, whylen, "%s: socket get: %s (%zu bytes, want "
		    "%zu)", c->node[i].name, rc == 0 ? "other value" :
		    distkv_strerror(rc), rc == 0 ? e.value.len : 0, len);
		if (rc == DISTKV_EDISCONNECTED) {
			distkv_close(*k);
			*k = NULL;
		}
		distkv_entry_clear(&e);
		return false;
	}
	distkv_entry_clear(&e);
	return true;
}

int
cluster_wait_value(struct cluster *c, uint64_t mask, const distkv_path *p,
    const void *value, size_t len, int timeout_ms, char *why, size_t whylen)
{
	long long deadline = harness_now_ms() + timeout_ms;
	distkv_shm *shm[CLUSTER_MAX] = { NULL };
	distkv *k[CLUSTER_MAX] = { NULL };
	bool done[CLUSTER_MAX] = { false };
	int left = 0, rc = -1;

	for (int i = 0; i < c->n; i++)
		if (c->node[i].h.pid > 0 && (mask == 0 ||
		    (i < 64 && (mask & (UINT64_C(1) << i)))))
			left++;
		else
			done[i] = true;
	snprintf(why, whylen, "no running node");
	for (;;) {
		for (int i = 0; i < c->n; i++)
			if (!done[i] && node_has(c, i, &shm[i], &k[i], p, value,
			    len, why, whylen)) {
				done[i] = true;
				left--;
			}
		if (left == 0) {
			rc = 0;
			break;
		}
		if (harness_now_ms() > deadline)
			break;
		usleep(CLUSTER_POLL_US);
	}
	for (int i = 0; i < c->n; i++) {
		distkv_shm_close(shm[i]);
		distkv_close(k[i]);
	}
	return rc;
}

/* ---- dumps ---- */

struct dump_ctx {
	struct cluster_dump *d;
	struct {
		uint8_t *b;		/* one path element, msgpack */
		size_t n;
	} stack[256];			/* the previous item's full path */
	size_t depth;
	int err;
};

static uint8_t *
pack_obj(const msgpack_object *o, size_t *len)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_object(&pk, *o);
	*len = sb.size;
	return (uint8_t *)sb.data;
}

static int
dump_item(void *arg, const uint8_t *msg, size_t len)
{
	struct dump_ctx *x = arg;
	const msgpack_object *path, *depth, *value, *tock, *chain;
	msgpack_unpacked up;
	struct cluster_item it;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	size_t d;

	msgpack_unpacked_init(&up);
	if (msgpack_unpack_next(&up, (const char *)msg, len, NULL) !=
	    MSGPACK_UNPACK_SUCCESS) {
		x->err = DISTKV_EPROTO;
		goto out;
	}
	path = proto_map_get(&up.data, "path");
	if (path == NULL)
		goto out;		/* state messages, the state item */
	depth = proto_map_get(&up.data, "depth");
	value = proto_map_get(&up.data, "value");
	tock = proto_map_get(&up.data, "tock");
	chain = proto_map_get(&up.data, "chain");
	if (path->type != MSGPACK_OBJECT_ARRAY || depth == NULL ||
	    depth->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
	    depth->via.u64 > x->depth || value == NULL || tock == NULL ||
	    tock->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
		x->err = DISTKV_EPROTO;
		goto out;
	}
	/* lengthen: keep depth elements of the previous path, add these */
	d = (size_t)depth->via.u64;
	for (uint32_t k = 0; k < path->via.array.size; k++, d++) {
		if (d >= sizeof(x->stack) / sizeof(x->stack[0])) {
			x->err = DISTKV_EPROTO;
			goto out;
		}
		free(x->stack[d].b);
		x->stack[d].b = pack_obj(&path->via.array.ptr[k],
		    &x->stack[d].n);
	}
	x->depth = d;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, (uint32_t)d);
	for (size_t k = 0; k < d; k++)
		msgpack_sbuffer_write(&sb, (const char *)x->stack[k].b,
		    x->stack[k].n);
	it.path = (uint8_t *)sb.data;
	it.path_len = sb.size;
	it.value = pack_obj(value, &it.value_len);
	if (chain != NULL)
		it.chain = pack_obj(chain, &it.chain_len);
	else {
		it.chain = NULL;
		it.chain_len = 0;
	}
	it.tock = tock->via.u64;
	if (x->d->n == x->d->cap) {
		x->d->cap = x->d->cap ? x->d->cap * 2 : 256;
		x->d->it = realloc(x->d->it, x->d->cap * sizeof(it));
		if (x->d->it == NULL)
			abort();
	}
	x->d->it[x->d->n++] = it;
out:
	msgpack_unpacked_destroy(&up);
	return 0;
}

static int
cmp_bytes(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	int r = memcmp(a, b, alen < blen ? alen : blen);

	if (r != 0)
		return r;
	return alen < blen ? -1 : alen > blen;
}

static int
cmp_item(const void *a, const void *b)
{
	const struct cluster_item *x = a, *y = b;

	return cmp_bytes(x->path, x->path_len, y->path, y->path_len);
}

int
cluster_dump(const struct cluster *c, int i, struct cluster_dump *out)
{
	static const uint8_t req[] = {
		0x81, 0xa6, 'a', 'c', 't', 'i', 'o', 'n',
		0xa4, 'd', 'u', 'm', 'p',
	};
	struct dump_ctx *x;
	distkv *k;
	int rc;

	memset(out, 0, sizeof(*out));
	if ((k = cluster_connect(c, i)) == NULL)
		return DISTKV_ECONNECT;
	/* 100k entries from an agent on a loaded box take more than 10 s */
	distkv_set_timeout(k, 60000);
	x = calloc(1, sizeof(*x));
	if (x == NULL)
		abort();
	x->d = out;
	rc = distkv_request(k, req, sizeof(req), dump_item, x);
	if (rc == 0)
		rc = x->err;
	for (size_t j = 0; j < sizeof(x->stack) / sizeof(x->stack[0]); j++)
		free(x->stack[j].b);
	free(x);
	distkv_close(k);
	if (rc != 0) {
		cluster_dump_free(out);
		return rc;
	}
	if (out->n > 0)		/* qsort(NULL, 0, ...) is undefined */
		qsort(out->it, out->n, sizeof(out->it[0]), cmp_item);
	return 0;
}

void
cluster_dump_free(struct cluster_dump *d)
{
	for (size_t i = 0; i < d->n; i++) {
		free(d->it[i].path);
		free(d->it[i].value);
		free(d->it[i].chain);
	}
	free(d->it);
	memset(d, 0, sizeof(*d));
}

const struct cluster_item *
cluster_dump_find(const struct cluster_dump *d, const void *path, size_t len)
{
	struct cluster_item key;

	memset(&key, 0, sizeof(key));
	key.path = (uint8_t *)(uintptr_t)path;
	key.path_len = len;
	if (d->n == 0)
		return NULL;
	return bsearch(&key, d->it, d->n, sizeof(key), cmp_item);
}

const struct cluster_item *
cluster_dump_find_path(const struct cluster_dump *d, const distkv_path *p)
{
	size_t len;
	uint8_t *pb = cluster_path_bytes(p, &len);
	const struct cluster_item *it = cluster_dump_find(d, pb, len);

	free(pb);
	return it;
}

const char *
cluster_show(const uint8_t *b, size_t len)
{
	static char ring[4][512];
	static unsigned next;
	char *out = ring[next++ % 4];
	msgpack_unpacked up;

	if (b == NULL)
		return "(none)";
	msgpack_unpacked_init(&up);
	if (msgpack_unpack_next(&up, (const char *)b, len, NULL) ==
	    MSGPACK_UNPACK_SUCCESS)
		msgpack_object_print_buffer(out, sizeof(ring[0]), up.data);
	else
		snprintf(out, sizeof(ring[0]), "(%zu bad bytes)", len);
	msgpack_unpacked_destroy(&up);
	return out;
}

int
cluster_dump_cmp(const struct cluster_dump *a, const struct cluster_dump *b,
    char *why, size_t whylen)
{
	size_t i = 0, j = 0;

	while (i < a->n || j < b->n) {
		const struct cluster_item *x = i < a->n ? &a->it[i] : NULL;
		const struct cluster_item *y = j < b->n ? &b->it[j] : NULL;
		int r = x == NULL ? 1 : y == NULL ? -1 :
		    cmp_bytes(x->path, x->path_len, y->path, y->path_len);

		if (r < 0) {
			snprintf(why, whylen, "only in the first: %s = %s",
			    cluster_show(x->path, x->path_len),
			    cluster_show(x->value, x->value_len));
			return -1;
		}
		if (r > 0) {
			snprintf(why, whylen, "only in the second: %s = %s",
			    cluster_show(y->path, y->path_len),
			    cluster_show(y->value, y->value_len));
			return -1;
		}
		if (!same_bytes(x->value, x->value_len, y->value,
		    y->value_len) || x->tock != y->tock ||
		    !same_bytes(x->chain, x->chain_len, y->chain,
		    y->chain_len)) {
			snprintf(why, whylen, "%s differs: %s tock %llu chain %s"
			    " / %s tock %llu chain %s",
			    cluster_show(x->path, x->path_len),
			    x->value_len > 64 ? "(long value)" :
			    cluster_show(x->value, x->value_len),
			    (unsigned long long)x->tock,
			    cluster_show(x->chain, x->chain_len),
			    y->value_len > 64 ? "(long value)" :
			    cluster_show(y->value, y->value_len),
			    (unsigned long long)y->tock,
			    cluster_show(y->chain, y->chain_len));
			return -1;
		}
		i++;
		j++;
	}
	return 0;
}

int
cluster_wait_same(struct cluster *c, size_t min_items, int timeout_ms,
    char *why, size_t whylen)
{
	long long deadline = harness_now_ms() + timeout_ms;

	snprintf(why, whylen, "no running node");
	for (;;) {
		struct cluster_dump first, d;
		int ref = -1, rc = 0;
		char tmp[1400];

		for (int i = 0; i < c->n && rc == 0; i++) {
			if (c->node[i].h.pid <= 0)
				continue;
			if ((rc = cluster_dump(c, i, ref < 0 ? &first : &d))
			    != 0) {
				snprintf(why, whylen, "%s: dump: %s",
				    c->node[i].name, distkv_strerror(rc));
				rc = -1;
				break;
			}
			if (ref < 0) {
				ref = i;
				if (first.n < min_items) {
					snprintf(why, whylen, "%s: %zu items, "
					    "want at least %zu",
					    c->node[i].name, first.n,
					    min_items);
					rc = -1;
				}
				continue;
			}
			if (cluster_dump_cmp(&first, &d, tmp, sizeof(tmp))
			    != 0) {
				snprintf(why, whylen, "%s (%zu items) vs %s "
				    "(%zu items): %s", c->node[ref].name,
				    first.n, c->node[i].name, d.n, tmp);
				rc = -1;
			}
			cluster_dump_free(&d);
		}
		if (ref >= 0)
			cluster_dump_free(&first);
		if (ref >= 0 && rc == 0)
			return 0;
		if (harness_now_ms() > deadline)
			return -1;
		usleep(50000);	/* a dump of every node is not free */
	}
}
