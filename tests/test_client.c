/*
 * Tests for libclient/client.c.
 *
 * Suite "fake": the client against a scripted stand-in agent (a forked child
 * on a Unix socket, tests/rawclient for notation), so framing, hostile
 * input, timeouts and cancellation can be driven byte by byte.  The child
 * checks the requests it receives and reports through its exit status.
 *
 * Suite "agent": end to end through a real distkv-agent (tests/harness).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE	/* memmem */
#endif
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"

#include <dlfcn.h>

#include <criterion/criterion.h>

#include "distkv.h"
#include "harness.h"
#include "proto.h"
#include "rawclient.h"

/* ---- the scripted stand-in agent ---- */

struct fake {
	pid_t pid;
	char dir[64];
	char sock[128];
};

typedef void fake_script(struct rc_conn *);

#define GREETING "{seq:0, node:'fake', version:[0,1,0], tick:7, tock:1}"

static void
fk_fail(const char *what, const char *detail)
{
	fprintf(stderr, "fake agent: %s: %s\n", what, detail);
	_exit(10);
}

/* Send one message given in notation. */
#define FK_SEND(fc, ...) do {						\
	uint8_t *b_;							\
	size_t n_;							\
	if (rc_build(&b_, &n_, __VA_ARGS__) != 0)			\
		fk_fail("build", #__VA_ARGS__);				\
	if (rc_send_raw((fc), b_, n_) != 0)				\
		fk_fail("send", #__VA_ARGS__);				\
	free(b_);							\
} while (0)

/* Receive the next request and check it against a pattern. */
#define FK_EXPECT(fc, m, ...) do {					\
	char e_[4096];							\
	if (((m) = rc_recv((fc), 5000)) == NULL)			\
		fk_fail("recv", "timeout or EOF");			\
	if (!rc_match(&(m)->obj, e_, sizeof(e_), __VA_ARGS__))		\
		fk_fail("request", e_);					\
} while (0)

static void
fk_write(int fd, const void *b, size_t n)
{
	const uint8_t *p = b;

	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			_exit(0);	/* the client went away: fine here */
		p += w;
		n -= (size_t)w;
	}
}

static void
fake_start(struct fake *f, fake_script *script)
{
	struct sockaddr_un sun;
	int lfd, fd;

	memset(f, 0, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/distkv-test.XXXXXX");
	cr_assert_not_null(mkdtemp(f->dir));
	snprintf(f->sock, sizeof(f->sock), "%s/fake.sock", f->dir);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strcpy(sun.sun_path, f->sock);
	lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	cr_assert_geq(lfd, 0);
	cr_assert_eq(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	cr_assert_eq(listen(lfd, 4), 0);
	f->pid = fork();
	cr_assert_geq(f->pid, 0);
	if (f->pid == 0) {
		struct pollfd pfd = { lfd, POLLIN, 0 };
		struct rc_conn *fc;

		signal(SIGPIPE, SIG_IGN);
		alarm(20);	/* a stuck script must not outlive the test */
		if (poll(&pfd, 1, 10000) != 1 ||
		    (fd = accept(lfd, NULL, NULL)) < 0)
			_exit(12);
		close(lfd);
		if ((fc = calloc(1, sizeof(*fc))) == NULL)
			_exit(13);
		fc->fd = fd;
		script(fc);
		rc_close(fc);
		_exit(0);
	}
	close(lfd);
}

/* Exit status of the script (0 = all its checks passed). */
static int
fake_wait(struct fake *f)
{
	int status = -1;

	if (f->pid > 0) {
		/* bounded: the child has an alarm */
		waitpid(f->pid, &status, 0);
		f->pid = 0;
		unlink(f->sock);
		rmdir(f->dir);
		if (WIFEXITED(status))
			return WEXITSTATUS(status);
		return 100 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	}
	return -1;
}

static distkv *
fake_connect(struct fake *f)
{
	distkv *c = NULL;
	int rc = distkv_connect(f->sock, &c);

	cr_assert_eq(rc, 0, "connect: %s", distkv_strerror(rc));
	return c;
}

static distkv_path *
P(const char *text)
{
	distkv_path *p;

	cr_assert_eq(distkv_path_parse(text, &p), 0, "path %s", text);
	return p;
}

static char *
fmt_path(const distkv_path *p)
{
	char *s;

	cr_assert_eq(distkv_path_format(p, &s), 0);
	return s;
}

/* Run the async side until *flag is set or ms pass. */
static void
pump_until(distkv *c, const bool *flag, int ms)
{
	long long deadline = harness_now_ms() + ms;

	while (!*flag) {
		struct pollfd pfd = { distkv_fd(c), (short)(POLLIN |
		    (distkv_want_write(c) ? POLLOUT : 0)), 0 };
		long long left = deadline - harness_now_ms();
		int rc;

		cr_assert_gt(left, 0, "condition not reached within %d ms", ms);
		if (distkv_want_write(c))
			pfd.events |= POLLOUT;
		poll(&pfd, 1, (int)left);
		rc = distkv_process(c);
		if (rc != 0 && !*flag)
			cr_assert_fail("process: %s", distkv_strerror(rc));
	}
}

/* ---- fake: greeting and framing ---- */

static void
script_greeting_split(struct rc_conn *fc)
{
	uint8_t *b;
	size_t n, i;

	if (rc_build(&b, &n, GREETING) != 0)
		_exit(1);
	/* one byte per write: the client must reassemble */
	for (i = 0; i < n; i++) {
		fk_write(fc->fd, b + i, 1);
		usleep(1000);	/* separate reads likely, not needed */
	}
	free(b);
	rc_wait_eof(fc, 5000);
}

Test(fake, greeting_split_bytes)
{
	struct fake f;
	distkv *c;

	fake_start(&f, script_greeting_split);
	c = fake_connect(&f);
	cr_assert_str_eq(distkv_node(c), "fake");
	cr_assert_eq(distkv_greeting_tick(c), 7);
	cr_assert_str_eq(distkv_errmsg(c), "");
	distkv_close(c);
	cr_assert_eq(fake_wait(&f), 0);
}

static void
script_batched(struct rc_conn *fc)
{
	struct rc_msg *m1, *m2, *m3;
	uint8_t *a, *b, *d, *all;
	size_t na, nb, nd;

	FK_SEND(fc, GREETING);
	FK_EXPECT(fc, m1, "{seq:1, action:'get_value', path:['a'], ...}");
	FK_EXPECT(fc, m2, "{seq:2, action:'get_value', path:['b', 2], ...}");
	FK_EXPECT(fc, m3, "{seq:3, action:'get_value', path:[], ...}");
	rc_build(&a, &na, "{seq:3, value:'three', tock:9}");
	rc_build(&b, &nb, "{seq:1, value:1, tock:10}");
	rc_build(&d, &nd, "{seq:2, value:[1, {x:nil}], tock:11}");
	/* 3 and 1 in one write together with the first half of 2 */
	all = malloc(na + nb + nd);
	memcpy(all, a, na);
	memcpy(all + na, b, nb);
	memcpy(all + na + nb, d, nd);
	fk_write(fc->fd, all, na + nb + nd / 2);
	/* a split read is likely; correctness does not depend on it */
	usleep(20000);
	fk_write(fc->fd, all + na + nb + nd / 2, nd - nd / 2);
	free(all);
	free(a);
	free(b);
	free(d);
	rc_wait_eof(fc, 5000);
}

struct got {
	bool done;
	int calls;
	int rc;
	uint64_t tock;
	struct distkv_value v;
};

static void
get_cb(void *arg, int rc, const struct distkv_entry *e)
{
	struct got *g = arg;

	g->calls++;
	g->done = true;
	g->rc = rc;
	if (e != NULL) {
		g->tock = e->tock;
		distkv_value_from_msgpack(&g->v, e->value.data, e->value.len);
	}
}

Test(fake, batched_and_split_replies)
{
	struct fake f;
	struct got g1 = { 0 }, g2 = { 0 }, g3 = { 0 };
	distkv_path *pa = P("a"), *pb = P("b/:2"), *root = P("/");
	uint64_t s1, s2, s3;
	distkv *c;
	int64_t i;

	fake_start(&f, script_batched);
	c = fake_connect(&f);
	cr_assert_eq(distkv_async_get(c, pa, 0, get_cb, &g1, &s1), 0);
	cr_assert_eq(distkv_async_get(c, pb, 0, get_cb, &g2, &s2), 0);
	cr_assert_eq(distkv_async_get(c, root, 0, get_cb, &g3, &s3), 0);
	cr_assert_eq(s1, 1);
	cr_assert_eq(s3, 3);
	pump_until(c, &g2.done, 5000);
	pump_until(c, &g1.done, 5000);
	pump_until(c, &g3.done, 5000);
	cr_assert_eq(g1.rc, 0);
	cr_assert_eq(distkv_value_get_int(g1.v.data, g1.v.len, &i), 0);
	cr_assert_eq(i, 1);
	cr_assert_eq(g1.tock, 10);
	cr_assert_eq(g2.v.len, 6);	/* [1, {x: nil}] */
	cr_assert_arr_eq(g2.v.data, "\x92\x01\x81\xa1x\xc0", 6);
	cr_assert_eq(g3.tock, 9);
	cr_assert_eq(g1.calls + g2.calls + g3.calls, 3);
	distkv_value_clear(&g1.v);
	distkv_value_clear(&g2.v);
	distkv_value_clear(&g3.v);
	distkv_path_free(pa);
	distkv_path_free(pb);
	distkv_path_free(root);
	distkv_close(c);
	cr_assert_eq(fake_wait(&f), 0);
}

/*
 * Replies of every length around the client's framing: up to 256 bytes
 * are unpacked from a first copy, longer ones scanned first (into its
 * 1 KiB buffer, or the heap); together in one write with the long one
 * split, then one a byte at a time.
 */
static const size_t long_lens[] = { 200, 240, 250, 300, 1000, 5000, 70000 };
#define NLONG (sizeof(long_lens) / sizeof(long_lens[0]))

static void
script_long(struct rc_conn *fc)
{
	struct rc_msg *m;
	uint8_t *msg[NLONG], *all;
	size_t len[NLONG], total = 0, off = 0, pl;
	char *text;

	FK_SEND(fc, GREETING);
	for (size_t i = 0; i < NLONG + 1; i++)
		FK_EXPECT(fc, m, "{action:'get_value', ...}");
	for (size_t i = 0; i < NLONG; i++) {
		text = malloc(long_lens[i] + 64);
		cr_assert_not_null(text);
		memset(text, 'x', long_lens[i] + 64);
		pl = (size_t)snprintf(text, long_lens[i] + 64,
		    "{seq:%zu, tock:%zu, value:'", i + 1, i + 100);
		text[pl] = 'x';		/* snprintf's NUL */
		memcpy(text + pl + long_lens[i], "'}", 3);
		rc_build(&msg[i], &len[i], "%s", text);
		free(text);
		total += len[i];
	}
	all = malloc(total);
	for (size_t i = 0; i < NLONG; i++) {
		memcpy(all + off, msg[i], len[i]);
		off += len[i];
		free(msg[i]);
	}
	/* all but the last half of the last one, then the rest */
	fk_write(fc->fd, all, total - len[NLONG - 1] / 2);
	usleep(20000);
	fk_write(fc->fd, all + total - len[NLONG - 1] / 2,
	    len[NLONG - 1] / 2);
	free(all);
	/* the 300-byte one again, a byte at a time */
	text = malloc(400);
	memset(text, 'y', 400);
	pl = (size_t)snprintf(text, 400, "{seq:%zu, tock:7, value:'",
	    NLONG + 1);
	text[pl] = 'y';
	memcpy(text + pl + 300, "'}", 3);
	rc_build(&all, &total, "%s", text);
	free(text);
	for (size_t i = 0; i < total; i++)
		fk_write(fc->fd, all + i, 1);
	free(all);
	rc_wait_eof(fc, 5000);
}

Test(fake, replies_long_and_short_split_anywhere)
{
	struct fake f;
	struct got g[NLONG + 1];
	distkv_path *p = P("a");
	distkv *c;

	memset(g, 0, sizeof(g));
	fake_start(&f, script_long);
	c = fake_connect(&f);
	for (size_t i = 0; i < NLONG + 1; i++)
		cr_assert_eq(distkv_async_get(c, p, 0, get_cb, &g[i], NULL), 0);
	for (size_t i = 0; i < NLONG + 1; i++) {
		size_t want = i < NLONG ? long_lens[i] : 300, n;
		const char *str;

		pump_until(c, &g[i].done, 5000);
		cr_assert_eq(g[i].rc, 0, "reply %zu: %s", i,
		    distkv_strerror(g[i].rc));
		cr_assert_eq(g[i].tock, i < NLONG ? i + 100 : 7);
		cr_assert_eq(distkv_value_get_str(g[i].v.data, g[i].v.len, &str,
		    &n), 0);
		cr_assert_eq(n, want, "reply %zu: %zu bytes", i, n);
		for (size_t k = 0; k < n; k++)
			cr_assert_eq(str[k], i < NLONG ? 'x' : 'y');
		distkv_value_clear(&g[i].v);
	}
	distkv_path_free(p);
	distkv_close(c);
	cr_assert_eq(fake_wait(&f), 0);
}

/* ---- fake: hostile and broken peers ---- */

static void
script_noseq(struct rc_conn *fc)
{
	struct rc_msg *m;

	FK_SEND(fc, GREETING);
	FK_EXPECT(fc, m, "{seq:1, action:'get_value', ...}");
	FK_SEND(fc, "{error:'no seq here', tock:3}");
	rc_wait_eof(fc, 5000);
}

static void
script_garbage(struct rc_conn *fc)
{
	struct rc_msg *m;

	FK_SEND(fc, GREETING);
	FK_EXPECT(fc, m, "{seq:1, action:'get_value', ...}");
	fk_write(fc->fd, "\x81\xa3seq\xc1", 6);
	rc_wait_eof(fc, 5000);
}

static void
check_dead_with(fake_script *script, int code)
{
	struct fake f;
	struct distkv_entry e;
	struct got g = { 0 };
	distkv_path *p = P("x");
	distkv *c;

	fake_start(&f, script);
	c = fake_connect(&f);
	cr_assert_eq(distkv_async_get(c, p, 0, get_cb, &g, NULL), 0);
	cr_assert_eq(distkv_get(c, p, 0, &e), code, "got %s",
	    distkv_strerror(distkv_get(c, p, 0, &e)));
	cr_assert(g.done, "pending requests fail when the handle dies");
	cr_assert_eq(g.rc, code);
	/* dead for good */
	cr_assert_eq(distkv_get(c, p, 0, &e), code);
	cr_assert_eq(distkv_process(c), code);
	cr_assert_eq(distkv_async_get(c, p, 0, get_cb, &g, NULL), code);
	distkv_path_free(p);
	distkv_close(c);
	cr_assert_eq(fake_wait(&f), 0);
}

static void
script_noseq2(struct rc_conn *fc)
{
	struct rc_msg *m;

	FK_SEND(fc, GREETING);
	FK_EXPECT(fc, m, "{seq:1, action:'get_value', ...}");
	FK_EXPECT(fc, m, "{seq:2, action:'get_value', ...}");
	FK_SEND(fc, "{error:'no seq here', tock:3}");
	rc_wait_eof(fc, 5000);
}

static void
script_garbage2(struct rc_conn *fc)
{
	struct rc_msg *m;

	FK_SEND(fc, GREETING);
	FK_EXPECT(fc, m, "{seq:1, action:'get_value', ...}");
	FK_EXPECT(fc, m, "{seq:2, action:'get_value', ...}");
	fk_write(fc->fd, "\x81\xa3seq\xc1", 6);
	rc_wait_eof(fc, 5000);
}

Test(fake, reply_without_seq_is_fatal)
{
	struct fake f;
	struct distkv_entry e;
	distkv *c;
	distkv_path *p = P("x");

	fake_start(&f, script_noseq);
	c = fake_connect(&f);
	cr_assert_eq(distkv_get(c, p, 0, &e), DISTKV_EPROTO);
	cr_assert_eq(distkv_get(c, p, 0, &e), DISTKV_EPROTO);
	distkv_path_free(p);
	distkv_close(c);
	cr_assert_eq(fake_wait(&f), 0);
	check_dead_with(script_noseq2, DISTKV_EPROTO);
}

Test(fake, garbage_is_fatal)
{
	struct fake f;
	struct distkv_entry e;
	distkv *c;
	distkv_path *p = P("x");

	fake_start(&f, script_garbage);
	c = fake_connect(&f);
	cr_assert_eq(distkv_get(c, p, 0, &e), DISTKV_EPROTO);
	distkv_path_free(p);
	distkv_close(c);
	cr_assert_eq(fake_wait(&f), 0);
	check_dead_with(script_garbage2, DISTKV_EPROTO);
}

static void
script_bad_greeting(struct rc_conn *fc)
{
	FK_SEND(fc, "{seq:5, node:'fake', tock:1}");
	rc_wait_eof(fc, 5000);
}

Test(fake, bad_greeting)
{
	struct fake f;
	distkv *c = NULL;

	fake_start(&f, script_bad_greeting);
	cr_assert_eq(distkv_connect(f.sock, &c), DISTKV_EPROTO);
	cr_assert_null(c);
	cr_assert_eq(fake_wait(&f), 0);
}

Test(fake, no_socket)
{
	distkv *c = NULL;

	cr_assert_eq(distkv_connect("/nonexistent/distkv.sock", &c),
	    DISTKV_ECONNECT);
	cr_assert_null(c);
}

static void
script_oversize(struct rc_conn *fc)
{
	static uint8_t zeros[1 << 16];
	size_t sent;

	FK_SEND(fc, GREETING);
	/* a map whose str value claims almost 4 GiB */
	fk_write(fc->fd, "\x82\xa3seq\x01\xa5value\xdb\xff\xff\xff\xf0", 15);
	for (sent = 0; sent < 80u * 1024 * 1024; sent += sizeof(zeros))
		fk_write(fc->fd, zeros, sizeof(zeros));	/* ends on EPIPE */
	rc_wait_eof(fc, 5000);
}

Test(fake, oversized_reply_is_refused, .timeout = 20.)
{
	struct fake f;
	struct distkv_entry e;
	distkv *c;
	distkv_path *p = P("x");

	fake_start(&f, script_oversize);
	c = fake_connect(&f);
	cr_assert_eq(distkv_get(c, p, 0, &e), DISTKV_EPROTO);
	distkv_path_free(p);
	distkv_close(c);
	cr_assert_eq(fake_wait(&f), 0);
}

static void
script_close_after_greeting(struct rc_conn *fc)
{
	FK_SEND(fc, GREETING);
	/* return: the connection is closed */
}

Test(fake, eof_disconnects_without_sigpipe)
{
	struct fake f;
	struct distkv_entry e;
	struct distkv_value v;
	distkv *c;
	distkv_path *p = P("x");

	fake_start(&f, script_close_after_greeting);
	c = fake_connect(&f);
	cr_assert_eq(fake_wait(&f), 0);	/* the peer is gone now */
	cr_assert_eq(distkv_value_from_int(&v, 1), 0);
	/* writing to the closed socket must not raise SIGPIPE */
	cr_assert_eq(distkv_set(c, p, v.data, v.len, NULL, NULL),
	    DISTKV_EDISCONNECTED);
	cr_assert_eq(distkv_get(c, p, 0, &e), DISTKV_EDISCONNECTED);
	cr_assert_str_eq(distkv_strerror(DISTKV_EDISCONNECTED),
	    "connection to the agent lost; reconnect");
	cr_assert_eq(distkv_process(c), DISTKV_EDISCONNECTED);
	cr_assert_not(distkv_want_write(c));
	distkv_value_clear(&v);
	distkv_path_free(p);
	distkv_close(c);
}

/* ---- fake: request encoding and reply decoding ---- */

static void
script_set_fields(struct rc_conn *fc)
{
	struct rc_msg *m;

	FK_SEND(fc, GREETING);
	FK_EXPECT(fc, m, "{seq:1, action:'set_value', path:['test'], "
	    "value:1234, chain:nil, nchain:1}");
	FK_SEND(fc, "{seq:1, changed:true, chain:{node:'fake', tick:4, "
	    "prev:nil}, tock:16}");
	FK_EXPECT(fc, m, "{seq:2, action:'set_value', path:['test'], "
	    "value:'new', chain:{node:'fake', tick:4}, prev:1234, nchain:0}");
	FK_SEND(fc, "{seq:2, changed:true, tock:20}");
	FK_EXPECT(fc, m, "{seq:3, action:'set_value', path:[nil, b'\\x01', -3],"
	    " value:[true], nchain:1}");
	FK_SEND(fc, "{seq:3, changed:false, prev:[true], chain:{node:'b', "
	    "tick:9, prev:{node:'a', tick:2}}, tock:21}");
	FK_EXPECT(fc, m, "{seq:4, action:'delete_value', path:['test'], "
	    "nchain:1}");
	FK_SEND(fc, "{seq:4, error:'This entry is new', tock:22}");
	FK_EXPECT(fc, m, "{seq:5, action:'get_value', path:['test'], "
	    "nchain:3}");
	FK_SEND(fc, "{seq:5, value:nil, tock:13}");
	rc_wait_eof(fc, 5000);
}

Test(fake, set_request_fields_and_results)
{
	struct fake f;
	struct distkv_set_opts o;
	struct distkv_set_result r;
	struct distkv_value v, prev;
	struct distkv_entry e;
	distkv_path *p = P("test"), *q = P(":nil/:x01/:-3");
	distkv *c;

	fake_start(&f, script_set_fields);
	c = fake_connect(&f);

	memset(&o, 0, sizeof(o));
	o.pre = DISTKV_PRE_NEW;
	o.nchain = -1;
	cr_assert_eq(distkv_value_from_int(&v, 1234), 0);
	cr_assert_eq(distkv_set(c, p, v.data, v.len, &o, &r), 0);
	cr_assert(r.changed);
	cr_assert_not(r.has_prev);
	cr_assert_eq(r.tock, 16);
	cr_assert_eq(r.chain.n, 1);
	cr_assert(r.chain.complete);
	cr_assert_str_eq(r.chain.ev[0].node, "fake");
	cr_assert_eq(r.chain.ev[0].tick, 4);
	distkv_set_result_clear(&r);

	memset(&o, 0, sizeof(o));
	o.pre = DISTKV_PRE_CHAIN;
	strcpy(o.chain_head.node, "fake");
	o.chain_head.tick = 4;
	o.prev = v.data;
	o.prev_len = v.len;
	o.nchain = 0;
	cr_assert_eq(distkv_value_from_str(&prev, "new", 3), 0);
	cr_assert_eq(distkv_set(c, p, prev.data, prev.len, &o, &r), 0);
	cr_assert(r.changed);
	cr_assert_eq(r.chain.n, 0);
	distkv_set_result_clear(&r);

	cr_assert_eq(distkv_set(c, q, "\x91\xc3", 2, NULL, &r), 0);
	cr_assert_not(r.changed);
	cr_assert(r.has_prev);
	cr_assert_eq(r.prev.len, 2);
	cr_assert_arr_eq(r.prev.data, "\x91\xc3", 2);
	cr_assert_eq(r.chain.n, 2);
	cr_assert_not(r.chain.complete, "no prev key: truncated chain");
	cr_assert_str_eq(r.chain.ev[1].node, "a");
	cr_assert_eq(r.chain.ev[1].tick, 2);
	distkv_set_result_clear(&r);

	cr_assert_eq(distkv_delete(c, p, NULL, &r), DISTKV_ECONFLICT);
	cr_assert_str_eq(distkv_errmsg(c), "This entry is new");

	cr_assert_eq(distkv_get(c, p, 3, &e), DISTKV_ENOTFOUND);
	cr_assert_eq(e.tock, 13, "tock is filled in even without a value");
	cr_assert(distkv_value_is_nil(e.value.data, e.value.len));
	cr_assert_null(e.path);
	distkv_entry_clear(&e);

	/* bad value bytes never reach the wire */
	cr_assert_eq(distkv_set(c, p, "\x92\x01", 2, NULL, NULL),
	    DISTKV_EINVAL);

	distkv_value_clear(&v);
	distkv_value_clear(&prev);
	distkv_path_free(p);
	distkv_path_free(q);
	distkv_close(c);
	cr_assert_eq(fake_wait(&f), 0);
}

static void
script_tree(struct rc_conn *fc)
{
	struct rc_msg *m;

	FK_SEND(fc, GREETING);
	FK_EXPECT(fc, m, "{seq:1, action:'get_tree', path:['a', 'b'], "
	    "nchain:1, ...}");
	/* spec §2.6 table */
	FK_SEND(fc, "{seq:1, state:'start', tock:2}");
	FK_SEND(fc, "{seq:1, path:[], depth:0, value:0, tock:3}");
	FK_SEND(fc, "{seq:1, path:['c','d'], depth:0, value:1, tock:3, "
	    "chain:{node:'n', tick:1, prev:nil}}");
	FK_SEND(fc, "{seq:1, path:['e','f'], depth:1, value:2, tock:3}");
	FK_SEND(fc, "{seq:1, path:['g','h'], depth:2, value:3, tock:3}");
	FK_SEND(fc, "{seq:1, path:['i'], depth:1, value:4, tock:3}");
	FK_SEND(fc, "{seq:1, path:['j'], depth:0, value:5, tock:3}");
	FK_SEND(fc, "{seq:1, state:'end', tock:4}");
	rc_wait_eof(fc, 5000);
}

struct items {
	int n;
	char *path[16];
	int depth[16];
	int64_t val[16];
	int uptodate;
	int stop_after;
	bool final;
	int final_rc;
};

static int
item_fn(void *arg, const struct distkv_entry *e)
{
	struct items *it = arg;

	if (e == NULL) {
		it->uptodate++;
		return 0;
	}
	if (it->n < 16) {
		it->path[it->n] = fmt_path(e->path);
		it->depth[it->n] = e->depth;
		if (distkv_value_get_int(e->value.data, e->value.len,
		    &it->val[it->n]) != 0)
			it->val[it->n] = -999;
	}
	it->n++;
	return it->stop_after > 0 && it->n >= it->stop_after;
}

static void
items_free(struct items *it)
{
	for (int i = 0; i < it->n && i < 16; i++)
		free(it->path[i]);
}

Test(fake, tree_paths_are_lengthened)
{
	static const char *want[] = {
		"a/b", "a/b/c/d", "a/b/c/e/f", "a/b/c/e/g/h", "a/b/c/i",
		"a/b/j",
	};
	static const int depth[] = { 0, 2, 3, 4, 2, 1 };
	struct distkv_tree_opts o = { 0, -1, 1, false };
	struct items it = { 0 };
	struct fake f;
	distkv_path *p = P("a/b");
	distkv *c;
	int i;

	fake_start(&f, script_tree);
	c = fake_connect(&f);
	cr_assert_eq(distkv_get_tree(c, p, &o, item_fn, &it), 0);
	cr_assert_eq(it.n, 6);
	for (i = 0; i < 6; i++) {
		cr_expect_str_eq(it.path[i], want[i]);
		cr_expect_eq(it.depth[i], depth[i], "item %d", i);
		cr_expect_eq(it.val[i], i);
	}
	items_free(&it);
	distkv_path_free(p);
	distkv_close(c);
	cr_assert_eq(fake_wait(&f), 0);
}

static void
script_timeout(struct rc_conn *fc)
{
	struct rc_msg *m;

	FK_SEND(fc, GREETING);
	FK_EXPECT(fc, m, "{seq:1, action:'get_value', ...}");
	/* no answer until the client has given up and asked again */
	FK_EXPECT(fc, m, "{seq:2, action:'get_value', ...}");
	FK_SEND(fc, "{seq:1, value:1, tock:5}");
	FK_SEND(fc, "{seq:2, value:2, tock:6}");
	rc_wait_eof(fc, 5000);
}

Test(fake, timeout_then_late_reply_is_dropped)
{
	struct fake f;
	struct distkv_entry e;
	distkv_path *p = P("x");
	long long t0, dt;
	distkv *c;
	int64_t i;

	fake_start(&f, script_timeout);
	c = fake_connect(&f);
	distkv_set_timeout(c, 150);
	t0 = harness_now_ms();
	cr_assert_eq(distkv_get(c, p, 0, &e), DISTKV_ETIMEDOUT);
	dt = harness_now_ms() - t0;
	cr_assert_geq(dt, 140);
	cr_assert_lt(dt, 3000);
	distkv_set_timeout(c, 5000);
	cr_assert_eq(distkv_get(c, p, 0, &e), 0);
	cr_assert_eq(distkv_value_get_int(e.value.data, e.value.len, &i), 0);
	cr_assert_eq(i, 2, "the late reply to seq 1 is not taken for seq 2");
	cr_assert_eq(e.tock, 6);
	distkv_entry_clear(&e);
	distkv_path_free(p);
	distkv_close(c);
	cr_assert_eq(fake_wait(&f), 0);
}

static void
script_cancel(struct rc_conn *fc)
{
	struct rc_msg *m;
	int64_t stopseq;
	uint8_t *b;
	size_t n;

	FK_SEND(fc, GREETING);
	FK_EXPECT(fc, m, "{seq:1, action:'watch', path:['w'], fetch:true, "
	    "...}");
	FK_SEND(fc, "{seq:1, state:'start', tock:2}");
	FK_SEND(fc, "{seq:1, path:[], depth:0, value:5, tock:3}");
	FK_SEND(fc, "{seq:1, state:'uptodate', tock:4}");
	FK_EXPECT(fc, m, "{seq:2, action:'stop', task:1}");
	stopseq = rc_int(&m->obj, "seq");
	/* an item still in flight: must not reach the callback */
	FK_SEND(fc, "{seq:1, path:['x'], depth:0, value:6, tock:5}");
	FK_SEND(fc, "{seq:1, state:'end', tock:6}");
	/* the client may be gone already: it needs only the end */
	if (rc_build(&b, &n, "{seq:%lld, result:true, tock:7}",
	    (long long)stopseq) != 0)
		_exit(1);
	fk_write(fc->fd, b, n);
	free(b);
	rc_wait_eof(fc, 5000);
}

struct wstate {
	int items;
	int uptodate;
	bool ended;
	int rc;
	char *first;
};

static void
watch_cb(void *arg, int rc, const struct distkv_entry *e)
{
	struct wstate *w = arg;

	cr_assert_not(w->ended, "no call after the last one");
	if (rc != 0) {
		w->ended = true;
		w->rc = rc;
		cr_assert_null(e);
		return;
	}
	if (e == NULL) {
		w->uptodate++;
		return;
	}
	if (w->items++ == 0)
		w->first = fmt_path(e->path);
}

Test(fake, async_watch_cancel)
{
	struct distkv_tree_opts o = { 0, -1, 0, true };
	struct wstate w = { 0 };
	struct fake f;
	distkv_path *p = P("w");
	uint64_t seq;
	distkv *c;
	bool up = false;

	fake_start(&f, script_cancel);
	c = fake_connect(&f);
	cr_assert_eq(distkv_async_watch(c, p, &o, watch_cb, &w, &seq), 0);
	while (!up) {
		struct pollfd pfd = { distkv_fd(c), (short)(POLLIN |
		    (distkv_want_write(c) ? POLLOUT : 0)), 0 };

		cr_assert_eq(poll(&pfd, 1, 5000), 1, "uptodate never came");
		cr_assert_eq(distkv_process(c), 0);
		up = w.uptodate > 0;
	}
	cr_assert_eq(w.items, 1);
	cr_assert_str_eq(w.first, "w");
	cr_assert_eq(distkv_cancel(c, seq), 0);
	cr_assert_eq(distkv_cancel(c, 999), DISTKV_EINVAL);
	pump_until(c, &w.ended, 5000);
	cr_assert_eq(w.rc, DISTKV_ECANCELLED);
	cr_assert_eq(w.items, 1, "items after stop are not delivered");
	free(w.first);
	distkv_path_free(p);
	distkv_close(c);
	cr_assert_eq(fake_wait(&f), 0);
}

static void
script_interleave(struct rc_conn *fc)
{
	struct rc_msg *m;

	FK_SEND(fc, GREETING);
	FK_EXPECT(fc, m, "{seq:1, action:'get_value', path:['async'], ...}");
	FK_EXPECT(fc, m, "{seq:2, action:'get_value', path:['sync'], ...}");
	FK_SEND(fc, "{seq:1, value:'a', tock:5}");
	FK_SEND(fc, "{seq:2, value:'s', tock:6}");
	rc_wait_eof(fc, 5000);
}

Test(fake, sync_call_dispatches_async_callbacks)
{
	struct fake f;
	struct got g = { 0 };
	struct distkv_entry e;
	distkv_path *pa = P("async"), *ps = P("sync");
	distkv *c;

	fake_start(&f, script_interleave);
	c = fake_connect(&f);
	cr_assert_eq(distkv_async_get(c, pa, 0, get_cb, &g, NULL), 0);
	cr_assert_not(g.done, "callbacks never run inside async_*");
	cr_assert_eq(distkv_get(c, ps, 0, &e), 0);
	cr_assert(g.done, "the async reply was dispatched meanwhile");
	cr_assert_eq(g.tock, 5);
	cr_assert_eq(e.tock, 6);
	distkv_entry_clear(&e);
	distkv_value_clear(&g.v);
	distkv_path_free(pa);
	distkv_path_free(ps);
	distkv_close(c);
	cr_assert_eq(fake_wait(&f), 0);
}

static void
script_raw(struct rc_conn *fc)
{
	struct rc_msg *m;

	FK_SEND(fc, GREETING);
	FK_EXPECT(fc, m, "{seq:1, action:'serfmon', type:'foo'}");
	FK_SEND(fc, "{seq:1, state:'start', tock:2}");
	FK_SEND(fc, "{seq:1, type:'foo', data:42, tock:3}");
	FK_SEND(fc, "{seq:1, state:'end', tock:4}");
	FK_EXPECT(fc, m, "{seq:2, action:'nope'}");
	FK_SEND(fc, "{seq:2, error:'Unknown action: nope', tock:5}");
	rc_wait_eof(fc, 5000);
}

static int
raw_fn(void *arg, const uint8_t *msg, size_t len)
{
	int *n = arg;

	(void)msg;
	cr_assert_gt(len, 0);
	(*n)++;
	return 0;
}

Test(fake, raw_request)
{
	struct fake f;
	uint8_t *b;
	size_t n;
	int calls = 0;
	distkv *c;

	fake_start(&f, script_raw);
	c = fake_connect(&f);
	cr_assert_eq(rc_build(&b, &n, "{action:'serfmon', type:'foo'}"), 0);
	cr_assert_eq(distkv_request(c, b, n, raw_fn, &calls), 0);
	cr_assert_eq(calls, 3, "start, item, end");
	free(b);
	cr_assert_eq(rc_build(&b, &n, "{action:'nope'}"), 0);
	calls = 0;
	cr_assert_eq(distkv_request(c, b, n, raw_fn, &calls), DISTKV_EBADREQ);
	cr_assert_eq(calls, 1);
	cr_assert_str_eq(distkv_errmsg(c), "Unknown action: nope");
	free(b);
	cr_assert_eq(rc_build(&b, &n, "{seq:5, action:'x'}"), 0);
	cr_assert_eq(distkv_request(c, b, n, raw_fn, &calls), DISTKV_EINVAL);
	free(b);
	cr_assert_eq(distkv_request(c, "\x91\x01", 2, raw_fn, &calls),
	    DISTKV_EINVAL);
	distkv_close(c);
	cr_assert_eq(fake_wait(&f), 0);
}

/* ---- end to end through a real distkv-agent ---- */

static struct harness_agent agent;

static void
agent_setup(void)
{
	harness_init(&agent);
	if (access(harness_bin("distkv-agent"), X_OK) != 0)
		cr_skip_test("distkv-agent not built");
	RC_START(&agent, "--standalone", "--node", "n1");
}

static void
agent_teardown(void)
{
	harness_cleanup(&agent);
}

static distkv *
agent_connect(void)
{
	distkv *c = NULL;
	int rc = distkv_connect(agent.socket, &c);

	cr_assert_eq(rc, 0, "connect: %s", distkv_strerror(rc));
	distkv_set_timeout(c, 5000);
	return c;
}

static void
set_int(distkv *c, const char *path, int64_t i)
{
	struct distkv_value v;
	distkv_path *p = P(path);
	int rc;

	cr_assert_eq(distkv_value_from_int(&v, i), 0);
	rc = distkv_set(c, p, v.data, v.len, NULL, NULL);
	cr_assert_eq(rc, 0, "set %s: %s (%s)", path, distkv_strerror(rc),
	    distkv_errmsg(c));
	distkv_value_clear(&v);
	distkv_path_free(p);
}

static int64_t
get_int(distkv *c, const char *path)
{
	struct distkv_entry e;
	distkv_path *p = P(path);
	int64_t i;
	int rc;

	rc = distkv_get(c, p, 0, &e);
	cr_assert_eq(rc, 0, "get %s: %s", path, distkv_strerror(rc));
	cr_assert_eq(distkv_value_get_int(e.value.data, e.value.len, &i), 0);
	distkv_entry_clear(&e);
	distkv_path_free(p);
	return i;
}

TestSuite(agent, .init = agent_setup, .fini = agent_teardown, .timeout = 30.);

Test(agent, greeting)
{
	distkv *c = agent_connect();

	cr_assert_str_eq(distkv_node(c), "n1");
	distkv_close(c);
}

Test(agent, set_get_preconditions)
{
	struct distkv_set_opts o;
	struct distkv_set_result r;
	struct distkv_value v, w;
	struct distkv_entry e;
	distkv_path *p = P("test");
	distkv *c = agent_connect();
	int64_t i;
	int rc;

	rc = distkv_get(c, p, 3, &e);
	cr_assert_eq(rc, DISTKV_ENOTFOUND, "%s", distkv_strerror(rc));
	cr_assert_gt(e.tock, 0);
	distkv_entry_clear(&e);

	memset(&o, 0, sizeof(o));
	o.pre = DISTKV_PRE_NEW;
	o.nchain = 2;
	cr_assert_eq(distkv_value_from_int(&v, 1234), 0);
	rc = distkv_set(c, p, v.data, v.len, &o, &r);
	cr_assert_eq(rc, 0, "%s: %s", distkv_strerror(rc), distkv_errmsg(c));
	cr_assert(r.changed);
	cr_assert_eq(r.chain.n, 1);
	cr_assert(r.chain.complete);
	cr_assert_str_eq(r.chain.ev[0].node, "n1");
	cr_assert_gt(r.chain.ev[0].tick, 0);
	cr_assert_gt(r.tock, 0);

	/* spec §2.7: chain nil on an existing entry */
	cr_assert_eq(distkv_set(c, p, v.data, v.len, &o, NULL),
	    DISTKV_ECONFLICT);
	cr_assert_str_eq(distkv_errmsg(c), "This entry already exists");

	/* right chain head */
	o.pre = DISTKV_PRE_CHAIN;
	o.chain_head = r.chain.ev[0];
	o.nchain = -1;
	cr_assert_eq(distkv_value_from_int(&w, 123), 0);
	rc = distkv_set(c, p, w.data, w.len, &o, NULL);
	cr_assert_eq(rc, 0, "%s: %s", distkv_strerror(rc), distkv_errmsg(c));
	/* the same head is stale now */
	cr_assert_eq(distkv_set(c, p, w.data, w.len, &o, NULL),
	    DISTKV_ECONFLICT);
	cr_assert(strncmp(distkv_errmsg(c), "Chain is", 8) == 0, "%s",
	    distkv_errmsg(c));
	distkv_set_result_clear(&r);

	/* prev mismatch */
	memset(&o, 0, sizeof(o));
	o.prev = v.data;	/* 1234, but 123 is stored */
	o.prev_len = v.len;
	o.nchain = -1;
	cr_assert_eq(distkv_set(c, p, v.data, v.len, &o, NULL),
	    DISTKV_ECONFLICT);
	cr_assert(strncmp(distkv_errmsg(c), "Data is", 7) == 0, "%s",
	    distkv_errmsg(c));

	/* no precondition: prev reported (spec §2.5.2 step 6) */
	rc = distkv_set(c, p, v.data, v.len, NULL, &r);
	cr_assert_eq(rc, 0);
	cr_assert(r.changed);
	cr_assert(r.has_prev);
	cr_assert_eq(distkv_value_get_int(r.prev.data, r.prev.len, &i), 0);
	cr_assert_eq(i, 123);
	distkv_set_result_clear(&r);
	cr_assert_eq(get_int(c, "test"), 1234);

	/* get with a chain */
	cr_assert_eq(distkv_get(c, p, 2, &e), 0);
	cr_assert_eq(e.chain.n, 1);
	cr_assert_str_eq(e.chain.ev[0].node, "n1");
	distkv_entry_clear(&e);

	/* delete: a tombstone, then not found */
	rc = distkv_delete(c, p, NULL, &r);
	cr_assert_eq(rc, 0, "%s: %s", distkv_strerror(rc), distkv_errmsg(c));
	cr_assert(r.changed);
	distkv_set_result_clear(&r);
	cr_assert_eq(distkv_get(c, p, 0, &e), DISTKV_ENOTFOUND);
	distkv_entry_clear(&e);

	distkv_value_clear(&v);
	distkv_value_clear(&w);
	distkv_path_free(p);
	distkv_close(c);
}

Test(agent, get_tree_spec_example)
{
	static const char *want[] = {
		"test", "test/foo", "test/foo/bap", "test/foo/bar/baz",
	};
	static const int64_t val[] = { 1234, 123, 12, 1 };
	static const int depth[] = { 0, 1, 2, 3 };
	struct items it = { 0 };
	distkv_path *p = P("test");
	distkv *c = agent_connect();
	int i, rc;

	set_int(c, "test", 1234);
	set_int(c, "test/foo", 123);
	set_int(c, "test/foo/bap", 12);
	set_int(c, "test/foo/bar/baz", 1);
	set_int(c, "other", 9);
	rc = distkv_get_tree(c, p, NULL, item_fn, &it);
	cr_assert_eq(rc, 0, "%s: %s", distkv_strerror(rc), distkv_errmsg(c));
	cr_assert_eq(it.n, 4);
	for (i = 0; i < 4; i++) {
		cr_expect_str_eq(it.path[i], want[i]);
		cr_expect_eq(it.val[i], val[i]);
		cr_expect_eq(it.depth[i], depth[i]);
	}
	items_free(&it);

	/* a callback returning non-zero stops early; the handle stays usable */
	memset(&it, 0, sizeof(it));
	it.stop_after = 2;
	cr_assert_eq(distkv_get_tree(c, p, NULL, item_fn, &it), 0);
	cr_assert_eq(it.n, 2);
	items_free(&it);
	cr_assert_eq(get_int(c, "other"), 9);

	/* depth window */
	memset(&it, 0, sizeof(it));
	struct distkv_tree_opts o = { 1, 1, 0, false };
	cr_assert_eq(distkv_get_tree(c, p, &o, item_fn, &it), 0);
	cr_assert_eq(it.n, 1);
	cr_assert_str_eq(it.path[0], "test/foo");
	items_free(&it);
	distkv_path_free(p);
	distkv_close(c);
}

Test(agent, async_watch_sees_other_connection_then_cancel)
{
	struct distkv_tree_opts o = { 0, -1, 1, true };
	struct wstate w = { 0 };
	distkv_path *p = P("w");
	distkv *c = agent_connect(), *c2 = agent_connect();
	long long deadline;
	uint64_t seq;

	set_int(c2, "w/old", 1);
	cr_assert_eq(distkv_async_watch(c, p, &o, watch_cb, &w, &seq), 0);
	deadline = harness_now_ms() + 5000;
	while (w.uptodate == 0) {
		struct pollfd pfd = { distkv_fd(c), (short)(POLLIN |
		    (distkv_want_write(c) ? POLLOUT : 0)), 0 };

		cr_assert_lt(harness_now_ms(), deadline, "no uptodate");
		poll(&pfd, 1, 100);
		cr_assert_eq(distkv_process(c), 0);
	}
	cr_assert_eq(w.items, 2, "fetch: w (no value) and w/old");
	free(w.first);
	w.first = NULL;
	w.items = 0;
	set_int(c2, "w/new/x", 2);
	deadline = harness_now_ms() + 5000;
	while (w.items == 0) {
		struct pollfd pfd = { distkv_fd(c), (short)(POLLIN |
		    (distkv_want_write(c) ? POLLOUT : 0)), 0 };

		cr_assert_lt(harness_now_ms(), deadline, "no live item");
		poll(&pfd, 1, 100);
		cr_assert_eq(distkv_process(c), 0);
	}
	cr_assert_str_eq(w.first, "w/new/x");
	cr_assert_eq(distkv_cancel(c, seq), 0);
	pump_until(c, &w.ended, 5000);
	cr_assert_eq(w.rc, DISTKV_ECANCELLED);
	/* the handle still works after the cancel */
	cr_assert_eq(get_int(c, "w/new/x"), 2);
	free(w.first);
	distkv_path_free(p);
	distkv_close(c);
	distkv_close(c2);
}

Test(agent, sync_watch_stop_and_timeout)
{
	struct distkv_tree_opts o = { 0, -1, 0, true };
	struct items it = { 0 };
	distkv_path *p = P("sw");
	distkv *c = agent_connect();
	long long t0, dt;

	set_int(c, "sw/a", 1);
	set_int(c, "sw/b", 2);
	/* stop at the second fetched item */
	it.stop_after = 2;
	cr_assert_eq(distkv_watch(c, p, &o, 5000, item_fn, &it), 0);
	cr_assert_eq(it.n, 2);
	items_free(&it);

	/* nothing changes: the watch times out */
	memset(&it, 0, sizeof(it));
	o.fetch = false;
	t0 = harness_now_ms();
	cr_assert_eq(distkv_watch(c, p, &o, 200, item_fn, &it),
	    DISTKV_ETIMEDOUT);
	dt = harness_now_ms() - t0;
	cr_assert_geq(dt, 190);
	cr_assert_lt(dt, 3000);
	cr_assert_eq(it.n, 0);
	cr_assert_eq(get_int(c, "sw/b"), 2);
	distkv_path_free(p);
	distkv_close(c);
}

Test(agent, delete_tree_state_event_root)
{
	struct distkv_value st;
	struct distkv_entry e;
	struct distkv_set_result r;
	struct distkv_value v;
	distkv_path *p = P("dt"), *q = P("ev/x");
	distkv *c = agent_connect();
	char *s;
	uint64_t n;
	int rc;

	set_int(c, "dt/a", 1);
	set_int(c, "dt/a/b", 2);
	set_int(c, "dt/c", 3);
	rc = distkv_delete_tree(c, p, &n);
	cr_assert_eq(rc, 0, "%s: %s", distkv_strerror(rc), distkv_errmsg(c));
	cr_assert_eq(n, 3);

	rc = distkv_state(c, DISTKV_STATE_NODES, &st);
	cr_assert_eq(rc, 0, "%s: %s", distkv_strerror(rc), distkv_errmsg(c));
	cr_assert_gt(st.len, 0);
	/* {nodes: {n1: tick}} and nothing else */
	cr_assert_eq(st.data[0], 0x81);
	cr_assert(memmem(st.data, st.len, "\xa2n1", 3) != NULL);
	distkv_value_clear(&st);

	cr_assert_eq(distkv_value_from_int(&v, 7), 0);
	cr_assert_eq(distkv_set(c, q, v.data, v.len, NULL, &r), 0);
	cr_assert_eq(r.chain.n, 1);
	rc = distkv_get_event(c, "n1", r.chain.ev[0].tick, 0, &e);
	cr_assert_eq(rc, 0, "%s: %s", distkv_strerror(rc), distkv_errmsg(c));
	cr_assert_not_null(e.path);
	s = fmt_path(e.path);
	cr_assert_str_eq(s, "ev/x");
	free(s);
	distkv_entry_clear(&e);
	distkv_set_result_clear(&r);
	distkv_value_clear(&v);

	/* chroot: paths become relative */
	distkv_path_free(p);
	p = P("ev");
	rc = distkv_root(c, p, &e);
	cr_assert_eq(rc, 0, "%s: %s", distkv_strerror(rc), distkv_errmsg(c));
	distkv_entry_clear(&e);
	cr_assert_eq(get_int(c, "x"), 7);
	distkv_path_free(p);
	distkv_path_free(q);
	distkv_close(c);
}

Test(agent, unknown_action_raw)
{
	distkv *c = agent_connect();
	uint8_t *b;
	size_t n;
	int calls = 0;

	cr_assert_eq(rc_build(&b, &n, "{action:'no_such_action'}"), 0);
	cr_assert_eq(distkv_request(c, b, n, raw_fn, &calls), DISTKV_EBADREQ);
	cr_assert_eq(calls, 1);
	cr_assert_neq(distkv_errmsg(c)[0], '\0');
	free(b);
	cr_assert_eq(rc_build(&b, &n, "{action:'get_value', path:['none']}"),
	    0);
	calls = 0;
	cr_assert_eq(distkv_request(c, b, n, raw_fn, &calls), 0);
	cr_assert_eq(calls, 1);
	free(b);
	distkv_close(c);
}

Test(agent, agent_death_disconnects)
{
	struct distkv_entry e;
	struct wstate w = { 0 };
	struct distkv_tree_opts o = { 0, -1, 0, false };
	distkv_path *p = P("x");
	distkv *c;

	/*
	 * Reads through shm keep serving the last state for up to a second
	 * after a kill -9 (docs/shm.md); this test is about the socket.
	 */
	setenv("DISTKV_NO_SHM", "1", 1);
	c = agent_connect();
	set_int(c, "x", 1);
	cr_assert_eq(distkv_async_watch(c, p, &o, watch_cb, &w, NULL), 0);
	harness_kill9(&agent);
	cr_assert_eq(distkv_get(c, p, 0, &e), DISTKV_EDISCONNECTED);
	cr_assert(w.ended, "a pending watch hears about it");
	cr_assert_eq(w.rc, DISTKV_EDISCONNECTED);
	cr_assert_eq(distkv_get(c, p, 0, &e), DISTKV_EDISCONNECTED);
	cr_assert_str_eq(distkv_strerror(DISTKV_EDISCONNECTED),
	    "connection to the agent lost; reconnect");
	distkv_path_free(p);
	distkv_close(c);
}

/*
 * Every refusal of a known kind has its own code, from a real agent; the
 * text stays in distkv_errmsg but no caller needs it.
 */
Test(agent, typed_errors)
{
	struct distkv_set_opts o;
	struct distkv_value v;
	struct distkv_entry e;
	struct items it;
	distkv_path *p = P("k");
	distkv *c = agent_connect(), *k;
	char big[PROTO_MAX_ELEM_BYTES + 2];
	uint8_t *b;
	size_t n;
	int calls = 0;

	/* a precondition: DISTKV_ECONFLICT, for each of its four texts */
	set_int(c, "k", 1);
	memset(&o, 0, sizeof(o));
	o.pre = DISTKV_PRE_NEW;
	o.nchain = -1;
	cr_assert_eq(distkv_value_from_int(&v, 2), 0);
	cr_assert_eq(distkv_set(c, p, v.data, v.len, &o, NULL),
	    DISTKV_ECONFLICT);
	o.pre = DISTKV_PRE_CHAIN;
	snprintf(o.chain_head.node, sizeof(o.chain_head.node), "n1");
	o.chain_head.tick = 999999;
	cr_assert_eq(distkv_set(c, p, v.data, v.len, &o, NULL),
	    DISTKV_ECONFLICT);
	o.pre = DISTKV_PRE_NONE;
	o.prev = v.data;	/* 2, but 1 is stored */
	o.prev_len = v.len;
	cr_assert_eq(distkv_delete(c, p, &o, NULL), DISTKV_ECONFLICT);
	o.prev = NULL;
	o.pre = DISTKV_PRE_CHAIN;
	distkv_path_free(p);
	p = P("never/set");
	cr_assert_eq(distkv_delete(c, p, &o, NULL), DISTKV_ECONFLICT);
	cr_assert_str_eq(distkv_errmsg(c), "This entry is new");

	/* not found: a path without a value, an unknown node or change */
	memset(&e, 0, sizeof(e));
	cr_assert_eq(distkv_get(c, p, 0, &e), DISTKV_ENOTFOUND);
	distkv_entry_clear(&e);
	cr_assert_eq(distkv_get(c, p, 2, &e), DISTKV_ENOTFOUND);
	distkv_entry_clear(&e);
	cr_assert_eq(distkv_get_event(c, "nobody", 1, 0, &e),
	    DISTKV_ENOTFOUND);
	cr_assert_eq(distkv_get_event(c, "n1", 999999, 0, &e),
	    DISTKV_ENOTFOUND);

	/* a bad request: no path, an unknown action */
	cr_assert_eq(rc_build(&b, &n, "{action:'get_value'}"), 0);
	cr_assert_eq(distkv_request(c, b, n, raw_fn, &calls), DISTKV_EBADREQ);
	free(b);
	cr_assert_eq(rc_build(&b, &n, "{action:'frobnicate'}"), 0);
	cr_assert_eq(distkv_request(c, b, n, raw_fn, &calls), DISTKV_EBADREQ);
	free(b);

	/* over the agent's limits (the library refuses them itself, so
	 * they go raw): a path too deep, an element too long */
	{
		char req[64 + 8 * (PROTO_MAX_PATH_DEPTH + 1)];
		size_t off;

		off = (size_t)snprintf(req, sizeof(req),
		    "{action:'get_value', path:[");
		for (int i = 0; i <= PROTO_MAX_PATH_DEPTH; i++)
			off += (size_t)snprintf(req + off, sizeof(req) - off,
			    "%s%d", i > 0 ? "," : "", i);
		snprintf(req + off, sizeof(req) - off, "]}");
		cr_assert_eq(rc_build(&b, &n, "%s", req), 0);
		cr_assert_eq(distkv_request(c, b, n, raw_fn, &calls),
		    DISTKV_ETOOLARGE, "%s", distkv_errmsg(c));
		free(b);
	}
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	cr_assert_eq(rc_build(&b, &n, "{action:'get_value', path:['%s']}",
	    big), 0);
	cr_assert_eq(distkv_request(c, b, n, raw_fn, &calls),
	    DISTKV_ETOOLARGE, "%s", distkv_errmsg(c));
	free(b);

	/* a timeout of ours */
	memset(&it, 0, sizeof(it));
	cr_assert_eq(distkv_watch(c, p, NULL, 50, item_fn, &it),
	    DISTKV_ETIMEDOUT);
	items_free(&it);

	/* not allowed: no login where one is required, a wrong password */
	cr_assert_eq(distkv_auth_add_password(c, "ann", "s3cret!"), 0, "%s",
	    distkv_errmsg(c));
	cr_assert_eq(distkv_auth_add_password(c, "ann", "x"),
	    DISTKV_ECONFLICT);
	cr_assert_eq(distkv_auth_set_method(c, "password"), 0, "%s",
	    distkv_errmsg(c));
	cr_assert_eq(distkv_connect(agent.socket, &k), 0);
	distkv_set_timeout(k, 5000);
	cr_assert_eq(distkv_get(k, p, 0, &e), DISTKV_EDENIED, "%s",
	    distkv_errmsg(k));
	cr_assert_eq(distkv_login_password(k, "ann", "wrong"),
	    DISTKV_EDENIED);
	cr_assert_eq(distkv_login_password(k, "bob", "s3cret!"),
	    DISTKV_EDENIED, "an unknown user looks like a wrong password");
	distkv_close(k);

	/* every code has its own words */
	static const int codes[] = { DISTKV_ENOTFOUND, DISTKV_EPROTO,
	    DISTKV_EDISCONNECTED, DISTKV_ESERVER, DISTKV_EINVAL,
	    DISTKV_ETOOSMALL, DISTKV_ETYPE, DISTKV_ECANCELLED,
	    DISTKV_ECONNECT, DISTKV_ETIMEDOUT, DISTKV_EBUSY, DISTKV_ECORRUPT,
	    DISTKV_ESTALE, DISTKV_ETLS, DISTKV_ECONFLICT, DISTKV_EDENIED,
	    DISTKV_EBADREQ, DISTKV_ENOTREADY, DISTKV_ETOOLARGE };
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		cr_assert_str_neq(distkv_strerror(codes[i]), "unknown error");
		for (size_t j = 0; j < i; j++)
			cr_assert_str_neq(distkv_strerror(codes[i]),
			    distkv_strerror(codes[j]));
		cr_assert_eq(DISTKV_IS_REFUSAL(codes[i]),
		    codes[i] == DISTKV_ESERVER || (codes[i] <=
		    DISTKV_ECONFLICT && codes[i] >= DISTKV_ETOOLARGE));
	}
	cr_assert_eq(DISTKV_ECONFLICT, -1014, "public values never move");
	cr_assert_eq(DISTKV_ETLS, -1013);

	distkv_value_clear(&v);
	distkv_path_free(p);
	distkv_close(c);
}

static void
set_str(distkv *c, const char *path, const char *str, size_t len)
{
	struct distkv_value v;
	distkv_path *p = P(path);
	int rc;

	cr_assert_eq(distkv_value_from_str(&v, str, len), 0);
	rc = distkv_set(c, p, v.data, v.len, NULL, NULL);
	cr_assert_eq(rc, 0, "set %s: %s (%s)", path, distkv_strerror(rc),
	    distkv_errmsg(c));
	distkv_value_clear(&v);
	distkv_path_free(p);
}

static ino_t
region_ino(void)
{
	struct stat st;

	cr_assert_eq(stat(agent.shm, &st), 0, "%s", agent.shm);
	return st.st_ino;
}

/*
 * A prepared key reads what a path reads, through every typed getter;
 * it outlives the region it was first used on (the agent grows its
 * region into a new file) and reports a deleted entry as not found.
 */
Test(agent, prepared_key)
{
	struct distkv_value v;
	distkv *c = agent_connect();
	distkv_shm *s;
	distkv_key *ka, *ks, *kd, *kb, *knone;
	distkv_path *pa = P("pk/a"), *ps = P("pk/s");
	char str[64], big[32768];
	uint8_t raw[64], raw2[64];
	size_t len, len2;
	int64_t i;
	double d;
	bool b;
	ino_t ino;
	int n;

	set_int(c, "pk/a", 42);
	set_str(c, "pk/s", "hello", 5);
	cr_assert_eq(distkv_value_from_double(&v, 1.5), 0);
	distkv_path_truncate(pa, 1);	/* pk/d, pk/b through pa */
	cr_assert_eq(distkv_path_push_str(pa, "d", 1), 0);
	cr_assert_eq(distkv_set(c, pa, v.data, v.len, NULL, NULL), 0);
	distkv_value_clear(&v);
	cr_assert_eq(distkv_value_from_bool(&v, true), 0);
	distkv_path_truncate(pa, 1);
	cr_assert_eq(distkv_path_push_str(pa, "b", 1), 0);
	cr_assert_eq(distkv_set(c, pa, v.data, v.len, NULL, NULL), 0);
	distkv_value_clear(&v);
	distkv_path_truncate(pa, 1);
	cr_assert_eq(distkv_path_push_str(pa, "a", 1), 0);
	s = distkv_shm_of(c);
	cr_assert_not_null(s, "the agent's region is mapped");

	cr_assert_eq(distkv_key_new(pa, &ka), 0);
	cr_assert_eq(distkv_key_parse("pk/s", &ks), 0);
	cr_assert_eq(distkv_key_parse("pk/d", &kd), 0);
	cr_assert_eq(distkv_key_parse("pk/b", &kb), 0);
	cr_assert_eq(distkv_key_parse("pk/none", &knone), 0);
	cr_assert_eq(distkv_key_parse("pk//x", &knone), DISTKV_EINVAL);
	cr_assert_null(knone);
	cr_assert_eq(distkv_key_parse("pk/none", &knone), 0);

	/* every getter, and the same bytes as a read by path */
	cr_assert_eq(distkv_key_get_int(s, ka, &i), 0);
	cr_assert_eq(i, 42);
	cr_assert_eq(distkv_key_get_str(s, ks, str, sizeof(str)), 0);
	cr_assert_str_eq(str, "hello");
	cr_assert_eq(distkv_key_get_double(s, kd, &d), 0);
	cr_assert(d == 1.5);
	cr_assert_eq(distkv_key_get_bool(s, kb, &b), 0);
	cr_assert(b);
	cr_assert_eq(distkv_key_get(s, ks, raw, sizeof(raw), &len, NULL), 0);
	cr_assert_eq(distkv_shm_get(s, ps, raw2, sizeof(raw2), &len2, NULL),
	    0);
	cr_assert_eq(len, len2);
	cr_assert_arr_eq(raw, raw2, len);
	cr_assert_eq(distkv_key_get(s, knone, raw, sizeof(raw), &len, NULL),
	    DISTKV_ENOTFOUND);
	/* types and sizes: a string in 6 bytes, not 5; not an int */
	cr_assert_eq(distkv_key_get_str(s, ks, str, 5), DISTKV_ETOOSMALL);
	cr_assert_eq(distkv_key_get_str(s, ks, str, 6), 0);
	cr_assert_str_eq(str, "hello");
	cr_assert_eq(distkv_key_get_int(s, ks, &i), DISTKV_ETYPE);
	cr_assert_eq(distkv_key_get_str(s, ka, str, sizeof(str)),
	    DISTKV_ETYPE);
	cr_assert_eq(distkv_key_get(s, ks, raw, 3, &len, NULL),
	    DISTKV_ETOOSMALL);
	cr_assert_eq(len, 6, "the size needed");

	/* big values churn the arena until the agent builds a new region */
	ino = region_ino();
	memset(big, 'a', sizeof(big));
	for (n = 0; n < 1000 && region_ino() == ino; n++) {
		big[0] = (char)('a' + n % 26);
		set_str(c, "pk/big", big, sizeof(big));
	}
	cr_assert_neq(region_ino(), ino, "no new region after %d big sets", n);
	/* the old keys read the new region, old values and new ones */
	cr_assert_eq(distkv_key_get_int(s, ka, &i), 0);
	cr_assert_eq(i, 42);
	set_int(c, "pk/a", 43);
	cr_assert_eq(distkv_key_get_int(s, ka, &i), 0);
	cr_assert_eq(i, 43);
	cr_assert_eq(distkv_key_get_str(s, ks, str, sizeof(str)), 0);
	cr_assert_str_eq(str, "hello");

	/* a deleted entry: not found, and found again once set */
	cr_assert_eq(distkv_delete(c, pa, NULL, NULL), 0);
	cr_assert_eq(distkv_key_get_int(s, ka, &i), DISTKV_ENOTFOUND);
	cr_assert_eq(distkv_shm_get_int(s, pa, &i), DISTKV_ENOTFOUND);
	set_int(c, "pk/a", 44);
	cr_assert_eq(distkv_key_get_int(s, ka, &i), 0);
	cr_assert_eq(i, 44);

	distkv_key_free(ka);
	distkv_key_free(ks);
	distkv_key_free(kd);
	distkv_key_free(kb);
	distkv_key_free(knone);
	distkv_path_free(pa);
	distkv_path_free(ps);
	distkv_close(c);
}

/*
 * A path keeps its region key (and hash) for reads by path: a path that
 * is changed after a read reads its new key, a path too long for the
 * cache reads through an encoding each time, and both keep working on
 * a region the agent rebuilt (a new file); distkv_get by such paths
 * returns the region's values (and nil / not found for a deleted one)
 * with no chain, and a value too big for its first buffer too.
 */
Test(agent, path_cache_follows_the_path)
{
	distkv *c = agent_connect();
	struct distkv_entry e;
	distkv_shm *s;
	distkv_path *p = P("pc/a/x"), *lp;
	char longname[200], big[32768], str[64];
	int64_t i;
	ino_t ino;
	int n;

	set_int(c, "pc/a", 1);
	set_int(c, "pc/b", 2);
	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	cr_assert_eq(distkv_path_new(&lp), 0);
	cr_assert_eq(distkv_path_push_str(lp, "pc", 2), 0);
	cr_assert_eq(distkv_path_push_str(lp, longname, strlen(longname)),
	    0);
	{
		struct distkv_value v;

		cr_assert_eq(distkv_value_from_str(&v, "long", 4), 0);
		cr_assert_eq(distkv_set(c, lp, v.data, v.len, NULL, NULL), 0);
		distkv_value_clear(&v);
	}
	s = distkv_shm_of(c);
	cr_assert_not_null(s, "the agent's region is mapped");

	for (int round = 0; round < 2; round++) {
		/* a (re)built path: a/x, a (shortened), b, none, a again */
		cr_assert_eq(distkv_shm_get_int(s, p, &i), DISTKV_ENOTFOUND);
		distkv_path_truncate(p, 1);
		cr_assert_eq(distkv_shm_get_int(s, p, &i), 0);
		cr_assert_eq(i, 1);
		cr_assert_eq(distkv_get(c, p, 0, &e), 0);
		cr_assert_eq(distkv_value_get_int(e.value.data, e.value.len,
		    &i), 0);
		cr_assert_eq(i, 1);
		cr_assert_eq(e.chain.n, 0);
		cr_assert_null(e.path);
		distkv_entry_clear(&e);
		cr_assert_null(e.value.data);
		distkv_path_truncate(p, 1);
		cr_assert_eq(distkv_path_push_str(p, "b", 1), 0);
		cr_assert_eq(distkv_shm_get_int(s, p, &i), 0);
		cr_assert_eq(i, 2, "the cached key follows the path");
		cr_assert_eq(distkv_get(c, p, 0, &e), 0);
		cr_assert_eq(distkv_value_get_int(e.value.data, e.value.len,
		    &i), 0);
		cr_assert_eq(i, 2);
		distkv_entry_clear(&e);
		distkv_path_truncate(p, 1);
		cr_assert_eq(distkv_path_push_str(p, "none", 4), 0);
		cr_assert_eq(distkv_shm_get_int(s, p, &i), DISTKV_ENOTFOUND);
		cr_assert_eq(distkv_get(c, p, 0, &e), DISTKV_ENOTFOUND);
		cr_assert(distkv_value_is_nil(e.value.data, e.value.len));
		distkv_entry_clear(&e);
		distkv_path_truncate(p, 1);
		cr_assert_eq(distkv_path_push_str(p, "a", 1), 0);
		/* a key longer than the path's cache */
		cr_assert_eq(distkv_shm_get_str(s, lp, str, sizeof(str)), 0);
		cr_assert_str_eq(str, "long");
		cr_assert_eq(distkv_get(c, lp, 0, &e), 0);
		cr_assert_eq(e.value.len, 5);
		cr_assert_arr_eq(e.value.data, "\xa4long", 5);
		distkv_entry_clear(&e);
		if (round == 1)
			break;
		cr_assert_eq(distkv_path_push_str(p, "x", 1), 0);
		/* big values: distkv_get's second buffer, and a new region */
		ino = region_ino();
		memset(big, 'a', sizeof(big));
		for (n = 0; n < 1000 && region_ino() == ino; n++) {
			big[0] = (char)('a' + n % 26);
			set_str(c, "pc/big", big, sizeof(big));
		}
		cr_assert_neq(region_ino(), ino, "no new region after %d big "
		    "sets", n);
		{
			distkv_path *bp = P("pc/big");

			cr_assert_eq(distkv_get(c, bp, 0, &e), 0);
			cr_assert_eq(e.value.len, 3 + sizeof(big));
			cr_assert_eq(e.value.data[3], big[0]);
			distkv_entry_clear(&e);
			distkv_path_free(bp);
		}
	}
	/* deleted through the path, read by it: not found, nil value */
	cr_assert_eq(distkv_delete(c, p, NULL, NULL), 0);
	cr_assert_eq(distkv_shm_get_int(s, p, &i), DISTKV_ENOTFOUND);
	cr_assert_eq(distkv_get(c, p, 0, &e), DISTKV_ENOTFOUND);
	cr_assert(distkv_value_is_nil(e.value.data, e.value.len));
	distkv_entry_clear(&e);
	distkv_path_free(p);
	distkv_path_free(lp);
	distkv_close(c);
}

/* Reads by path text: through the region, then the socket; the same
 * answers, and a cached name sees a new value. */
Test(agent, get_by_text)
{
	distkv *c = agent_connect(), *conns[2];
	struct distkv_value v;
	distkv_path *p = P("svc/web/ratio");
	char str[16];
	int64_t i;
	double d;
	bool b;

	set_int(c, "svc/web/port", 8080);
	set_str(c, "svc/web/host", "example", 7);
	set_int(c, "svc/:5", 5);
	cr_assert_eq(distkv_value_from_double(&v, 0.25), 0);
	cr_assert_eq(distkv_set(c, p, v.data, v.len, NULL, NULL), 0);
	distkv_value_clear(&v);
	distkv_path_free(p);
	p = P("svc/web/tls");
	cr_assert_eq(distkv_value_from_bool(&v, false), 0);
	cr_assert_eq(distkv_set(c, p, v.data, v.len, NULL, NULL), 0);
	distkv_value_clear(&v);
	cr_assert_not_null(distkv_shm_of(c));
	conns[0] = c;
	setenv("DISTKV_NO_SHM", "1", 1);
	conns[1] = agent_connect();
	unsetenv("DISTKV_NO_SHM");
	cr_assert_null(distkv_shm_of(conns[1]));

	for (int n = 0; n < 2; n++) {
		distkv *k = conns[n];

		for (int again = 0; again < 2; again++) {
			cr_assert_eq(distkv_get_int(k, "svc/web/port", &i), 0);
			cr_assert_eq(i, 8080);
			cr_assert_eq(distkv_get_str(k, "/svc/web/host/", str,
			    sizeof(str)), 0);
			cr_assert_str_eq(str, "example");
			cr_assert_eq(distkv_get_double(k, "svc/web/ratio", &d),
			    0);
			cr_assert(d == 0.25);
			cr_assert_eq(distkv_get_bool(k, "svc/web/tls", &b), 0);
			cr_assert(!b);
			cr_assert_eq(distkv_get_int(k, "svc/:5", &i), 0);
			cr_assert_eq(i, 5);
		}
		cr_assert_eq(distkv_get_int(k, "svc/web/none", &i),
		    DISTKV_ENOTFOUND);
		cr_assert_eq(distkv_get_int(k, "svc/web/host", &i),
		    DISTKV_ETYPE);
		cr_assert_eq(distkv_get_str(k, "svc/web/host", str, 7),
		    DISTKV_ETOOSMALL);
		cr_assert_eq(distkv_get_int(k, "svc//port", &i),
		    DISTKV_EINVAL);
	}
	/* a cached name reads the new value */
	set_int(c, "svc/web/port", 8443);
	cr_assert_eq(distkv_get_int(c, "svc/web/port", &i), 0);
	cr_assert_eq(i, 8443);
	distkv_path_free(p);
	distkv_close(conns[1]);
	distkv_close(c);
}

/* A reply of a kind no real agent can be brought to send in a test: a
 * node without its data (it does not even open its client socket). */
static void
script_not_ready(struct rc_conn *fc)
{
	struct rc_msg *m;

	FK_SEND(fc, GREETING);
	FK_EXPECT(fc, m, "{seq:1, action:'dump'}");
	FK_SEND(fc, "{seq:1, error:'Not ready: this node has not got its "
	    "data yet', tock:5}");
	FK_EXPECT(fc, m, "{seq:2, action:'save', path:'x'}");
	FK_SEND(fc, "{seq:2, error:'Cannot save: No space left on device'}");
	rc_wait_eof(fc, 5000);
}

Test(fake, not_ready_and_unknown_kinds)
{
	struct fake f;
	uint8_t *b;
	size_t n;
	int calls = 0;
	distkv *c;

	fake_start(&f, script_not_ready);
	c = fake_connect(&f);
	cr_assert_eq(rc_build(&b, &n, "{action:'dump'}"), 0);
	cr_assert_eq(distkv_request(c, b, n, raw_fn, &calls),
	    DISTKV_ENOTREADY);
	free(b);
	/* a text of no known kind stays DISTKV_ESERVER */
	cr_assert_eq(distkv_save(c, "x"), DISTKV_ESERVER);
	cr_assert_str_eq(distkv_errmsg(c), "Cannot save: No space left on "
	    "device");
	distkv_close(c);
	cr_assert_eq(fake_wait(&f), 0);
}

/* Only the API leaves the shared library: a program with its own
 * proto_scan() must not get ours, and the version is one number. */
Test(library, exports_only_the_api)
{
	char so[4096];
	void *h;
	const char *(*version)(void);

	snprintf(so, sizeof(so), "%s/.libs/libdistkv.so", TOP_BUILDDIR);
	h = dlopen(so, RTLD_NOW | RTLD_LOCAL);
	cr_assert_not_null(h, "dlopen %s: %s", so, dlerror());
	cr_assert_not_null(dlsym(h, "distkv_connect"));
	cr_assert_null(dlsym(h, "proto_scan"), "proto_scan is exported");
	cr_assert_null(dlsym(h, "shm_reader_get"), "shm_reader_get is "
	    "exported");
	cr_assert_null(dlsym(h, "path_key"), "path_key is exported");
	version = (const char *(*)(void))dlsym(h, "distkv_version");
	cr_assert_not_null(version);
	cr_assert_str_eq(version(), DISTKV_VERSION_STRING);
	cr_assert_str_eq(distkv_version(), PACKAGE_VERSION);
	dlclose(h);
}
