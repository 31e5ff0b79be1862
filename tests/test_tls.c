/*
 * test_tls: the agent's TCP and TLS client ports end to end (--listen,
 * --listen-insecure), through libdistkv's distkv_connect_url, distkv-cli
 * --connect and raw sockets: certificates refused for each reason, the
 * cert login, hostile bytes on the TLS port, a stalled handshake, the
 * login rule on TCP and the request limit.
 *
 * Certificates are made by each test with the openssl program in the
 * agent's temp dir.  Ports: the kernel picks a free one (bind to port
 * 0), the agent gets it; a lost race makes the agent exit at start, and
 * the start is retried with new ports.  Every wait has a deadline; the
 * agents are killed by pid and their dirs removed.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <criterion/criterion.h>
#include <msgpack.h>

#include "distkv.h"
#include "harness.h"
#include "rawclient.h"

#define CLI_DEADLINE_MS 10000

static struct harness_agent agent;
static char certs[300];		/* agent.dir/certs */
static int tls_port, tcp_port;

static void make_certs(void);

static void
init(void)
{
	harness_init(&agent);
	make_certs();
}

static void
fini(void)
{
	harness_cleanup(&agent);
}

/* ---- certificates ---- */

static void
sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	cr_assert(system(cmd) == 0, "failed: %s", cmd);
}

/* A P-256 key and a CSR for cn in DIR/name.{key,csr}. */
static void
make_csr(const char *name, const char *cn)
{
	sh("cd '%s' && openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
	    "-nodes -keyout %s.key -out %s.csr -subj /CN=%s 2>/dev/null",
	    certs, name, name, cn);
}

/* Sign name.csr with CA ca for days (negative: expired), SANs san. */
static void
sign(const char *name, const char *ca, int days, const char *san)
{
	if (san != NULL)
		sh("cd '%s' && printf 'subjectAltName=%s\\n' > %s.ext", certs,
		    san, name);
	sh("cd '%s' && openssl x509 -req -in %s.csr -CA %s.pem -CAkey %s.key "
	    "-CAcreateserial -out %s.pem -days %d %s%s%s 2>/dev/null", certs,
	    name, ca, ca, name, days, san != NULL ? "-extfile " : "",
	    san != NULL ? name : "", san != NULL ? ".ext" : "");
}

/*
 * ca, ca2 (trusted by nobody); srv (localhost, 127.0.0.1; by ca), srv2
 * (the same names, by ca2), other (only "otherhost", by ca); clients
 * alice (by ca), mallory (CN alice, by ca2), old (CN alice, expired).
 */
static void
make_certs(void)
{
	snprintf(certs, sizeof(certs), "%s/certs", agent.dir);
	sh("mkdir -p '%s'", certs);
	for (int i = 0; i < 2; i++)
		sh("cd '%s' && openssl req -x509 -newkey ec -pkeyopt "
		    "ec_paramgen_curve:P-256 -nodes -keyout %s.key -out %s.pem "
		    "-days 2 -subj /CN=test-%s 2>/dev/null", certs,
		    i ? "ca2" : "ca", i ? "ca2" : "ca", i ? "ca2" : "ca");
	make_csr("srv", "localhost");
	sign("srv", "ca", 2, "DNS:localhost,IP:127.0.0.1");
	make_csr("srv2", "localhost");
	sign("srv2", "ca2", 2, "DNS:localhost,IP:127.0.0.1");
	make_csr("other", "otherhost");
	sign("other", "ca", 2, "DNS:otherhost");
	make_csr("alice", "alice");
	sign("alice", "ca", 2, NULL);
	make_csr("mallory", "alice");
	sign("mallory", "ca2", 2, NULL);
	make_csr("old", "alice");
	sign("old", "ca", -1, NULL);
}

static const char *
cpath(const char *file)
{
	static char buf[4][400];
	static int i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", certs, file);
	return buf[i];
}

/* ---- agents ---- */

/* A port the kernel says is free now. */
static int
free_port(void)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert(fd >= 0 && bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0);
	cr_assert(getsockname(fd, (struct sockaddr *)&sin, &len) == 0);
	port = ntohs(sin.sin_port);
	close(fd);
	return port;
}

/*
 * Start a standalone agent with a TLS port (server certificate srv
 * unless cert names another) and an insecure TCP port, plus extra
 * arguments (NULL-terminated).  Retried with new ports if one was taken.
 */
static void
start(const char *cert, ...)
{
	const char *extra[16];
	char tls[32], tcp[32], crt[16], key[16];
	size_t n = 0;
	va_list ap;
	const char *a;

	va_start(ap, cert);
	while ((a = va_arg(ap, const char *)) != NULL && n < 15)
		extra[n++] = a;
	va_end(ap);
	extra[n] = NULL;
	snprintf(crt, sizeof(crt), "%s.pem", cert != NULL ? cert : "srv");
	snprintf(key, sizeof(key), "%s.key", cert != NULL ? cert : "srv");
	for (int tries = 0; tries < 5; tries++) {
		tls_port = free_port();
		tcp_port = free_port();
		snprintf(tls, sizeof(tls), "127.0.0.1:%d", tls_port);
		snprintf(tcp, sizeof(tcp), "127.0.0.1:%d", tcp_port);
		if (harness_start(&agent, "--standalone", "--node", "t1",
		    "--listen", tls, "--listen-insecure", tcp, "--tls-cert",
		    cpath(crt), "--tls-key", cpath(key), extra[0], extra[1],
		    extra[2], extra[3], extra[4], extra[5], extra[6], extra[7],
		    (const char *)NULL) == 0)
			return;
	}
	cr_assert_fail("distkv-agent did not start; stderr:\n%s",
	    rc_agent_err(&agent));
}

static void
url(char *buf, size_t cap, const char *scheme, const char *host, int port)
{
	snprintf(buf, cap, "%s://%s:%d", scheme, host, port);
}

/* Connect over TLS with the test CA and optionally a client cert. */
static int
tls_connect(const char *host, const char *client, distkv **c)
{
	struct distkv_tls_opts o = { 0 };
	char u[128], crt[32], key[32];

	o.ca_file = cpath("ca.pem");
	if (client != NULL) {
		snprintf(crt, sizeof(crt), "%s.pem", client);
		snprintf(key, sizeof(key), "%s.key", client);
		o.cert_file = cpath(crt);
		o.key_file = cpath(key);
	}
	url(u, sizeof(u), "tls", host, tls_port);
	return distkv_connect_url(u, &o, c);
}

static void
set_get(distkv *c, const char *key, const char *val)
{
	struct distkv_value v = { 0 };
	struct distkv_entry e = { 0 };
	distkv_path *p;
	const char *s;
	size_t len;

	cr_assert(distkv_path_parse(key, &p) == 0);
	cr_assert(distkv_value_from_str(&v, val, strlen(val)) == 0);
	cr_assert_eq(distkv_set(c, p, v.data, v.len, NULL, NULL), 0, "set: %s",
	    distkv_errmsg(c));
	cr_assert_eq(distkv_get(c, p, 0, &e), 0, "get: %s", distkv_errmsg(c));
	cr_assert(distkv_value_get_str(e.value.data, e.value.len, &s, &len) ==
	    0 && len == strlen(val) && memcmp(s, val, len) == 0);
	distkv_entry_clear(&e);
	distkv_value_clear(&v);
	distkv_path_free(p);
}

/* A raw TCP connection to port (blocking), or -1. */
static int
tcp_fd(int port)
{
	struct sockaddr_in sin;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* rawclient on the insecure TCP port, greeting read. */
static struct rc_conn *
tcp_rc(void)
{
	struct rc_conn *c = calloc(1, sizeof(*c));

	cr_assert(c != NULL);
	cr_assert((c->fd = tcp_fd(tcp_port)) >= 0);
	c->greeting = rc_recv_seq(c, 0, RC_TIMEOUT);
	cr_assert(c->greeting != NULL, "no greeting on TCP");
	return c;
}

/*
 * Milliseconds until the agent closes fd (EOF or reset), draining what
 * it sends; -1 if it is still open after deadline_ms.
 */
static long long
ms_until_closed(int fd, int deadline_ms)
{
	long long t0 = harness_now_ms(), end = t0 + deadline_ms;
	char buf[4096];

	for (;;) {
		struct pollfd pfd = { fd, POLLIN, 0 };
		long long left = end - harness_now_ms();
		ssize_t n;

		if (left <= 0)
			return -1;
		if (poll(&pfd, 1, (int)left) <= 0)
			continue;
		n = recv(fd, buf, sizeof(buf), 0);
		if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
			return harness_now_ms() - t0;
	}
}

/* ---- distkv-cli ---- */

struct run {
	int status;
	char out[4096];
	char err[4096];
};

static void
drain(int fd, char *buf, size_t cap, size_t *len)
{
	ssize_t n = read(fd, buf + *len, cap - 1 - *len);

	if (n > 0)
		*len += (size_t)n;
	buf[*len] = '\0';
}

/* Run the built program prog with argv (NULL-terminated), within
 * CLI_DEADLINE_MS; it is killed and the test fails past that. */
static void
run(struct run *r, const char *prog, const char **argv)
{
	const char *av[24];
	int po[2], pe[2], status, n = 0;
	size_t ol = 0, el = 0;
	long long end = harness_now_ms() + CLI_DEADLINE_MS;
	pid_t pid;

	av[n++] = harness_bin(prog);
	while (*argv != NULL && n < 23)
		av[n++] = *argv++;
	av[n] = NULL;
	memset(r, 0, sizeof(*r));
	cr_assert(pipe(po) == 0 && pipe(pe) == 0);
	if ((pid = fork()) == 0) {
		dup2(po[1], 1);
		dup2(pe[1], 2);
		close(po[0]);
		close(pe[0]);
		execv(av[0], (char *const *)av);
		_exit(127);
	}
	cr_assert(pid > 0);
	close(po[1]);
	close(pe[1]);
	for (;;) {
		struct pollfd pfd[2] = { { po[0], POLLIN, 0 },
		    { pe[0], POLLIN, 0 } };
		long long left = end - harness_now_ms();

		if (left <= 0) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			cr_assert_fail("%s ran past its deadline", prog);
		}
		if (poll(pfd, 2, (int)left) <= 0)
			continue;
		if (pfd[0].revents)
			drain(po[0], r->out, sizeof(r->out), &ol);
		if (pfd[1].revents)
			drain(pe[0], r->err, sizeof(r->err), &el);
		if (waitpid(pid, &status, WNOHANG) == pid) {
			drain(po[0], r->out, sizeof(r->out), &ol);
			drain(pe[0], r->err, sizeof(r->err), &el);
			break;
		}
	}
	close(po[0]);
	close(pe[0]);
	r->status = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static void
cli(struct run *r, const char **argv)
{
	run(r, "distkv-cli", argv);
}

/* ---- the tests ---- */

TestSuite(tls, .init = init, .fini = fini, .timeout = 60);

/* The same tree over TLS (by IP and by name) and plain TCP; no shm. */
Test(tls, get_set_over_tls_and_tcp)
{
	distkv *c = NULL, *d = NULL;
	char u[64];
	size_t glen;
	const void *g;

	start(NULL, "--listen-allow-anonymous", NULL);
	cr_assert_eq(tls_connect("127.0.0.1", NULL, &c), 0, "%s",
	    distkv_connect_errmsg());
	set_get(c, "a/tls", "over TLS");
	/* a remote client cannot map the region: none offered, none used */
	g = distkv_greeting(c, &glen);
	cr_assert(glen > 0 && memmem(g, glen, "shm", 3) == NULL);
	cr_assert_null(distkv_shm_of(c));
	distkv_close(c);
	cr_assert_eq(tls_connect("localhost", NULL, &c), 0, "%s",
	    distkv_connect_errmsg());
	set_get(c, "a/name", "by name");
	url(u, sizeof(u), "tcp", "127.0.0.1", tcp_port);
	cr_assert_eq(distkv_connect_url(u, NULL, &d), 0, "%s",
	    distkv_connect_errmsg());
	set_get(d, "a/tcp", "over TCP");
	cr_assert_null(distkv_shm_of(d));
	distkv_close(c);
	distkv_close(d);
	/* the same data on the local socket, where the region is offered */
	cr_assert_eq(distkv_connect_url(agent.socket, NULL, &c), 0);
	cr_assert_not_null(distkv_shm_of(c));
	set_get(c, "a/tls", "over TLS");
	distkv_close(c);
}

/* distkv-cli --connect (and $DISTKV_CONNECT) over TLS and TCP. */
Test(tls, cli_connect)
{
	struct run r;
	char tu[64], cu[64];

	start(NULL, "--listen-allow-anonymous", NULL);
	url(tu, sizeof(tu), "tls", "localhost", tls_port);
	url(cu, sizeof(cu), "tcp", "127.0.0.1", tcp_port);
	cli(&r, (const char *[]){ "--connect", tu, "--tls-ca", cpath("ca.pem"),
	    "set", "cli/x", "hello", NULL });
	cr_assert_eq(r.status, 0, "%s", r.err);
	cli(&r, (const char *[]){ "--connect", cu, "get", "cli/x", NULL });
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert_str_eq(r.out, "hello\n");
	cr_assert(setenv("DISTKV_CONNECT", tu, 1) == 0);
	cr_assert(setenv("DISTKV_TLS_CA", cpath("ca.pem"), 1) == 0);
	cli(&r, (const char *[]){ "get", "cli/x", NULL });
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert_str_eq(r.out, "hello\n");
	/* --socket wins over the environment's URL */
	cli(&r, (const char *[]){ "--socket", agent.socket, "get", "cli/x",
	    NULL });
	cr_assert_eq(r.status, 0, "%s", r.err);
	/* refused: a clear message and exit 3 */
	unsetenv("DISTKV_TLS_CA");
	cli(&r, (const char *[]){ "get", "cli/x", NULL });
	cr_assert_eq(r.status, 3);
	cr_assert(strstr(r.err, "certificate verify failed") != NULL, "%s",
	    r.err);
	unsetenv("DISTKV_CONNECT");
	cli(&r, (const char *[]){ "--connect", "tcp://127.0.0.1:1", "get",
	    "cli/x", NULL });
	cr_assert_eq(r.status, 3);
	cr_assert(strstr(r.err, "Connection refused") != NULL, "%s", r.err);
}

/* An agent whose certificate comes from a CA the client does not trust. */
Test(tls, untrusted_server_refused)
{
	distkv *c = NULL;

	start("srv2", "--listen-allow-anonymous", NULL);
	cr_assert_eq(tls_connect("127.0.0.1", NULL, &c), DISTKV_ETLS);
	cr_assert_null(c);
	cr_assert(strstr(distkv_connect_errmsg(), "certificate verify "
	    "failed") != NULL, "%s", distkv_connect_errmsg());
}

/* A certificate for another name: refused, and the message says so. */
Test(tls, name_mismatch_refused)
{
	distkv *c = NULL;
	struct run r;
	char u[64];

	start("other", "--listen-allow-anonymous", NULL);
	cr_assert_eq(tls_connect("127.0.0.1", NULL, &c), DISTKV_ETLS);
	cr_assert(strstr(distkv_connect_errmsg(), "name mismatch") != NULL,
	    "%s", distkv_connect_errmsg());
	cr_assert_eq(tls_connect("localhost", NULL, &c), DISTKV_ETLS);
	cr_assert(strstr(distkv_connect_errmsg(), "not for localhost") != NULL,
	    "%s", distkv_connect_errmsg());
	url(u, sizeof(u), "tls", "localhost", tls_port);
	cli(&r, (const char *[]){ "--connect", u, "--tls-ca", cpath("ca.pem"),
	    "get", "x", NULL });
	cr_assert_eq(r.status, 3);
	cr_assert(strstr(r.err, "name mismatch") != NULL, "%s", r.err);
}

/* --tls-client-ca: no certificate, an untrusted one, an expired one. */
Test(tls, client_certificate_required)
{
	distkv *c = NULL;

	start(NULL, "--tls-client-ca", cpath("ca.pem"),
	    "--listen-allow-anonymous", NULL);
	cr_assert_eq(tls_connect("127.0.0.1", NULL, &c), DISTKV_ETLS);
	cr_assert(strstr(distkv_connect_errmsg(), "certificate required") !=
	    NULL, "%s", distkv_connect_errmsg());
	cr_assert_eq(tls_connect("127.0.0.1", "mallory", &c), DISTKV_ETLS,
	    "%s", distkv_connect_errmsg());
	cr_assert_eq(tls_connect("127.0.0.1", "old", &c), DISTKV_ETLS, "%s",
	    distkv_connect_errmsg());
	cr_assert(strstr(distkv_connect_errmsg(), "expired") != NULL, "%s",
	    distkv_connect_errmsg());
	cr_assert_null(c);
	cr_assert_eq(tls_connect("127.0.0.1", "alice", &c), 0, "%s",
	    distkv_connect_errmsg());
	set_get(c, "who", "alice");
	distkv_close(c);
	/* the agent says why, for the operator */
	cr_assert(strstr(rc_agent_err(&agent), "certificate has expired") !=
	    NULL, "%s", rc_agent_err(&agent));
	cr_assert(strstr(rc_agent_err(&agent), "did not return a "
	    "certificate") != NULL, "%s", rc_agent_err(&agent));
}

/* distkv_request callback: remember whether an error came. */
static int
note_error(void *arg, const uint8_t *msg, size_t len)
{
	bool *err = arg;

	if (memmem(msg, len, "\xa5" "error", 6) != NULL)
		*err = true;
	return 0;
}

/* The cert method: the CN is the user; nothing else gets in. */
Test(tls, cert_login_by_cn)
{
	distkv *c = NULL, *l = NULL;
	struct rc_conn *t;
	struct rc_msg **v;
	size_t n, reqlen;
	int64_t seq;
	uint8_t *req;
	bool err = false;

	start(NULL, "--tls-client-ca", cpath("ca.pem"), NULL);
	cr_assert_eq(distkv_connect(agent.socket, &l), 0);
	cr_assert(rc_build(&req, &reqlen, "{action:'auth_set', typ:'cert', "
	    "kind:'user', ident:'alice', chain:nil}") == 0);
	cr_assert_eq(distkv_request(l, req, reqlen, note_error, &err), 0,
	    "%s", distkv_errmsg(l));
	cr_assert(!err, "auth_set cert alice failed");
	free(req);
	cr_assert_eq(distkv_auth_set_method(l, "cert"), 0, "%s",
	    distkv_errmsg(l));
	/* alice's certificate logs her in by itself */
	cr_assert_eq(tls_connect("127.0.0.1", "alice", &c), 0, "%s",
	    distkv_connect_errmsg());
	cr_assert_str_eq(distkv_auth_method(c), "cert");
	set_get(c, "by/alice", "yes");
	/* claiming another name is refused, however logged in */
	cr_assert_eq(distkv_login(c, "cert", "bob"), DISTKV_EDENIED);
	cr_assert(strstr(distkv_errmsg(c), "is for alice, not bob") != NULL,
	    "%s", distkv_errmsg(c));
	cr_assert_eq(distkv_login(c, "cert", "alice"), 0, "%s",
	    distkv_errmsg(c));
	distkv_close(c);
	/* no certificate to show on the local socket or plain TCP */
	cr_assert_eq(distkv_login(l, "cert", "alice"), DISTKV_EDENIED);
	cr_assert(strstr(distkv_errmsg(l), "needs a TLS connection") != NULL,
	    "%s", distkv_errmsg(l));
	distkv_close(l);
	t = tcp_rc();
	seq = rc_send(t, "{seq:1, action:'auth', typ:'cert', ident:'alice'}");
	v = rc_collect(t, seq, &n, RC_TIMEOUT);
	cr_assert(n == 3 && rc_str_prefix(&v[1]->obj, "error",
	    "AuthFailedError: the cert method needs a TLS"), "%s",
	    rc_show(&v[1]->obj));
	rc_msgs_free(v, n);
	/* still not logged in: refused */
	{
		struct rc_msg *m = rc_call(t, "{seq:2, action:'get_value', "
		    "path:['by','alice']}");

		cr_assert(rc_str_prefix(&m->obj, "error", "NoAuthError"), "%s",
		    rc_show(&m->obj));
		rc_msg_free(m);
	}
	rc_close(t);
}

/* Plaintext msgpack and garbage on the TLS port: closed at once. */
Test(tls, plaintext_and_garbage_closed)
{
	static const uint8_t junk[] = "\x16\x03\x01\x00\x05" "hello, world";
	uint8_t *req;
	size_t reqlen;
	long long ms;
	int fd;

	start(NULL, "--listen-allow-anonymous", NULL);
	cr_assert(rc_build(&req, &reqlen, "{seq:1, action:'get_state'}") == 0);
	cr_assert((fd = tcp_fd(tls_port)) >= 0);
	cr_assert(write(fd, req, reqlen) == (ssize_t)reqlen);
	free(req);
	ms = ms_until_closed(fd, 5000);
	cr_assert(ms >= 0 && ms < 2000, "plaintext: closed after %lld ms", ms);
	close(fd);
	cr_assert((fd = tcp_fd(tls_port)) >= 0);
	cr_assert(write(fd, junk, sizeof(junk) - 1) == (ssize_t)sizeof(junk) - 1);
	ms = ms_until_closed(fd, 5000);
	cr_assert(ms >= 0 && ms < 2000, "garbage: closed after %lld ms", ms);
	close(fd);
	/* each left a line in the log; the agent serves on */
	cr_assert(strstr(rc_agent_err(&agent), "TLS handshake with 127.0.0.1")
	    != NULL, "%s", rc_agent_err(&agent));
	{
		distkv *c = NULL;

		cr_assert_eq(tls_connect("127.0.0.1", NULL, &c), 0, "%s",
		    distkv_connect_errmsg());
		set_get(c, "still", "here");
		distkv_close(c);
	}
}

/*
 * A client that stops mid-handshake: others are served meanwhile, and it
 * is cut off once --tls-handshake-timeout (1 s here) has passed.
 */
Test(tls, stalled_handshake_times_out)
{
	static const uint8_t part[] = "\x16\x03\x01\x02\x00\x01";
	distkv *c = NULL;
	long long t0, ms, served;
	int fd, idle;

	start(NULL, "--listen-allow-anonymous", "--tls-handshake-timeout", "1",
	    NULL);
	t0 = harness_now_ms();
	cr_assert((fd = tcp_fd(tls_port)) >= 0);	/* says nothing */
	cr_assert((idle = tcp_fd(tls_port)) >= 0);
	cr_assert(write(fd, part, sizeof(part) - 1) == (ssize_t)sizeof(part) - 1);
	cr_assert_eq(tls_connect("127.0.0.1", NULL, &c), 0, "%s",
	    distkv_connect_errmsg());
	set_get(c, "busy", "no");
	served = harness_now_ms() - t0;
	distkv_close(c);
	ms = ms_until_closed(fd, 5000);
	cr_assert(ms >= 0, "a stalled handshake was never closed");
	ms += served;
	cr_assert(served < 900, "another client waited %lld ms", served);
	cr_assert(ms >= 900 && ms < 4000, "closed after %lld ms", ms);
	cr_assert(ms_until_closed(idle, 4000) >= 0, "a silent client stayed");
	close(fd);
	close(idle);
	cr_assert(strstr(rc_agent_err(&agent), "not done after 1.0 s") != NULL,
	    "%s", rc_agent_err(&agent));
}

/* No auth method on: TCP clients are refused unless anonymous is allowed. */
Test(tls, tcp_login_required_without_method)
{
	struct rc_conn *t, *u;
	struct rc_msg *m;

	start(NULL, NULL);
	t = tcp_rc();
	cr_assert(!rc_has(&t->greeting->obj, "shm"), "%s",
	    rc_show(&t->greeting->obj));
	m = rc_call(t, "{seq:1, action:'get_value', path:['x']}");
	cr_assert(rc_str_prefix(&m->obj, "error", "NoAuthError: Login "
	    "required on TCP connections, but no auth method is on"), "%s",
	    rc_show(&m->obj));
	rc_msg_free(m);
	/* unix names the local socket's uid: not over TCP */
	{
		size_t n;
		int64_t seq = rc_send(t, "{seq:2, action:'auth', typ:'unix'}");
		struct rc_msg **v = rc_collect(t, seq, &n, RC_TIMEOUT);

		cr_assert(n == 3 && rc_str_prefix(&v[1]->obj, "error",
		    "AuthFailedError: the unix method works only on the local"),
		    "%s", rc_show(&v[1]->obj));
		rc_msgs_free(v, n);
	}
	rc_close(t);
	/* the local socket is unchanged: no method, no login */
	u = rc_open(agent.socket);
	cr_assert_not_null(u);
	cr_assert(rc_has(&u->greeting->obj, "shm"));
	m = rc_call(u, "{seq:1, action:'get_value', path:['x']}");
	cr_assert(!rc_has(&m->obj, "error"), "%s", rc_show(&m->obj));
	rc_msg_free(m);
	rc_close(u);
	harness_stop(&agent);
	start(NULL, "--listen-allow-anonymous", NULL);
	t = tcp_rc();
	m = rc_call(t, "{seq:1, action:'get_value', path:['x']}");
	cr_assert(!rc_has(&m->obj, "error"), "%s", rc_show(&m->obj));
	rc_msg_free(m);
	rc_close(t);
}

/* --max-request holds on TCP and TLS as on the Unix socket. */
Test(tls, request_size_limit)
{
	struct rc_conn *t;
	struct rc_msg *m;
	struct distkv_value v = { 0 };
	distkv *c = NULL;
	distkv_path *p;
	char big[8192];

	start(NULL, "--listen-allow-anonymous", "--max-request", "4096", NULL);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	t = tcp_rc();
	rc_send(t, "{seq:1, action:'set_value', path:['big'], value:'%s'}",
	    big);
	m = rc_recv_noseq(t, RC_TIMEOUT);
	cr_assert_not_null(m, "no error reply");
	cr_assert(rc_str_prefix(&m->obj, "error", "Request too large"), "%s",
	    rc_show(&m->obj));
	rc_msg_free(m);
	cr_assert(rc_wait_eof(t, RC_TIMEOUT));
	rc_close(t);
	cr_assert_eq(tls_connect("127.0.0.1", NULL, &c), 0, "%s",
	    distkv_connect_errmsg());
	cr_assert(distkv_path_parse("big", &p) == 0);
	cr_assert(distkv_value_from_str(&v, big, strlen(big)) == 0);
	cr_assert_neq(distkv_set(c, p, v.data, v.len, NULL, NULL), 0);
	distkv_value_clear(&v);
	distkv_path_free(p);
	distkv_close(c);
	/* a request within the limit is fine */
	cr_assert_eq(tls_connect("127.0.0.1", NULL, &c), 0);
	set_get(c, "small", "ok");
	distkv_close(c);
}

/*
 * Start-up errors of the TLS and TCP ports: a clear line and exit 1,
 * before the agent serves anything.
 */
Test(tls, startup_errors)
{
	struct run r;
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	char busy[32], sock[320];
	int lfd;

	snprintf(sock, sizeof(sock), "%s/agent.sock", agent.dir);
#define AGENT(...) run(&r, "distkv-agent", (const char *[]){ "--socket", \
	sock, "--standalone", "--no-shm", __VA_ARGS__, NULL })
	AGENT("--listen", "127.0.0.1:1");
	cr_assert_eq(r.status, 1);
	cr_assert(strstr(r.err, "--listen needs --tls-cert FILE and --tls-key "
	    "FILE") != NULL, "%s", r.err);
	AGENT("--listen", "127.0.0.1:1", "--tls-cert", cpath("nope.pem"),
	    "--tls-key", cpath("srv.key"));
	cr_assert_eq(r.status, 1);
	cr_assert(strstr(r.err, "cannot read --tls-cert") != NULL &&
	    strstr(r.err, "No such file") != NULL, "%s", r.err);
	AGENT("--listen", "127.0.0.1:1", "--tls-cert", cpath("srv.pem"),
	    "--tls-key", cpath("alice.key"));
	cr_assert_eq(r.status, 1);
	cr_assert(strstr(r.err, "does not match the certificate") != NULL,
	    "%s", r.err);
	AGENT("--listen", "127.0.0.1:1", "--tls-cert", cpath("srv.pem"),
	    "--tls-key", cpath("srv.key"), "--tls-client-ca",
	    cpath("srv.key"));
	cr_assert_eq(r.status, 1);
	cr_assert(strstr(r.err, "--tls-client-ca") != NULL, "%s", r.err);
	AGENT("--listen-insecure", "localhost:27586");
	cr_assert_eq(r.status, 1);
	cr_assert(strstr(r.err, "bad insecure TCP client port address") !=
	    NULL, "%s", r.err);
	/* a port someone listens on already */
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert((lfd = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
	cr_assert(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
	    listen(lfd, 1) == 0 &&
	    getsockname(lfd, (struct sockaddr *)&sin, &len) == 0);
	snprintf(busy, sizeof(busy), "127.0.0.1:%d", ntohs(sin.sin_port));
	AGENT("--listen", busy, "--tls-cert", cpath("srv.pem"), "--tls-key",
	    cpath("srv.key"));
	cr_assert_eq(r.status, 1);
	cr_assert(strstr(r.err, "Address already in use") != NULL, "%s",
	    r.err);
	close(lfd);
#undef AGENT
}
