/*
 * Tests for libdistkv's connection (libclient/client.c, calls.c,
 * reply.c) against a scripted stand-in agent: a forked child on a Unix
 * socket (tests/rawclient for notation), so framing, hostile input,
 * timeouts and cancellation can be driven byte by byte.  The child checks
 * the requests it receives and reports through its exit status.  End to
 * end through a real agent: test_client_agent.c.
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

#include "clienttest.h"
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
