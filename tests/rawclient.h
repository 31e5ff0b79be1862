/*
 * rawclient: a tiny raw msgpack client for the end-to-end tests.
 *
 * It speaks the client protocol (spec §2) byte by byte, with no help from
 * libdistkv, so the tests see exactly what the agent sends.  Framing uses
 * proto_scan() (libclient/proto.h); every receive has a deadline.
 *
 * Requests and expected replies are written in the spec's own notation
 * (§ "Notation"), parsed at run time:
 *
 *	{seq:2, action:'set_value', path:['test'], value:1234, chain:nil}
 *
 * Keys may be bare identifiers; strings use '..' or "..", byte strings
 * b'..'; nil/null, true/false, integers, floats.  Pattern-only tokens:
 * `_` matches any value (the key must be present), `~` as a map value means
 * "this key is absent", and `...` inside a map allows keys not listed.
 * Maps in patterns are otherwise exact: no missing and no extra keys.
 * All text arguments are printf formats.
 *
 * Test-only code: allocation failures abort, helpers whose name ends in
 * nothing special return NULL/-1 on timeout or EOF; the rc_call family
 * fails the running Criterion test instead.
 */
#ifndef DISTKV_TEST_RAWCLIENT_H
#define DISTKV_TEST_RAWCLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "harness.h"

/* Default deadline of one receive, in milliseconds. */
#define RC_TIMEOUT 5000

/* One received message; owns its bytes (objects point into them). */
struct rc_msg {
	struct rc_msg *next;
	msgpack_zone *zone;
	uint8_t *raw;
	size_t rawlen;
	msgpack_object obj;
};

struct rc_conn {
	int fd;
	bool eof;		/* peer closed or the stream is unparseable */
	uint8_t *buf;		/* received, not yet framed */
	size_t len, cap;
	struct rc_msg *queue;	/* framed, not yet claimed by a receive */
	struct rc_msg *greeting;
};

/* Connect; with greet, also wait for the greeting (NULL on failure). */
struct rc_conn *rc_open(const char *sockpath);
struct rc_conn *rc_open_nogreet(const char *sockpath);
void rc_close(struct rc_conn *c);
void rc_msg_free(struct rc_msg *m);
void rc_msgs_free(struct rc_msg **v, size_t n);

/* Send bytes (reading whatever arrives meanwhile); 0 or -1. */
int rc_send_raw(struct rc_conn *c, const void *buf, size_t len);

/* Build msgpack bytes from notation text; caller frees *out. 0 or -1. */
int rc_build(uint8_t **out, size_t *outlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Send one request given in notation; returns its seq (or -1 if none). */
int64_t rc_send(struct rc_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * Next message from the connection (queued ones first) within timeout_ms;
 * NULL on timeout or EOF (then c->eof is set).
 */
struct rc_msg *rc_recv(struct rc_conn *c, int timeout_ms);
/* Next message carrying this seq; others stay queued. */
struct rc_msg *rc_recv_seq(struct rc_conn *c, int64_t seq, int timeout_ms);
/* Next item of watch seq, skipping {state:"uptodate"} (fails the test
 * on timeout). */
struct rc_msg *rc_next_item(struct rc_conn *c, int64_t seq);
/* Next message carrying no seq at all. */
struct rc_msg *rc_recv_noseq(struct rc_conn *c, int timeout_ms);
/*
 * Wait until the peer closes the connection (draining and dropping
 * anything it still sends).  True if it did within timeout_ms.
 */
bool rc_wait_eof(struct rc_conn *c, int timeout_ms);

/* Send a request and return its reply (fails the test on timeout). */
struct rc_msg *rc_call(struct rc_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/*
 * Collect the messages of a multi reply with this seq up to and including
 * {state:"end"} (fails the test on timeout).  Returns the array, *n set.
 */
struct rc_msg **rc_collect(struct rc_conn *c, int64_t seq, size_t *n,
    int timeout_ms);

/* Look up a dotted key path ("chain.prev.tick") in a map; NULL if absent. */
const msgpack_object *rc_get(const msgpack_object *o, const char *dotted);
/* Integer at a dotted path; fails the test if absent or not an integer. */
int64_t rc_int(const msgpack_object *o, const char *dotted);
/* True if the map has that (dotted) key. */
bool rc_has(const msgpack_object *o, const char *dotted);
/* True if the value at the dotted path is a str starting with prefix. */
bool rc_str_prefix(const msgpack_object *o, const char *dotted,
    const char *prefix);

/*
 * Match o against a pattern in notation.  On mismatch returns false and
 * writes "expected … got …" into err (may be NULL).
 */
bool rc_match(const msgpack_object *o, char *err, size_t errlen,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Render an object in notation (static ring of buffers; for messages). */
const char *rc_show(const msgpack_object *o);
/* Render into a caller buffer; returns buf. */
char *rc_render(const msgpack_object *o, char *buf, size_t len);

/*
 * Path lengthener (spec §2.6): feed the items of one multi reply in order;
 * each call returns the item's full path relative to the request base,
 * rendered like "['foo', 1]" (static ring of buffers).
 */
struct rc_paths {
	const msgpack_object *elem[160];
	size_t n;
};
const char *rc_lengthen(struct rc_paths *L, const msgpack_object *item);

/* The agent's stderr so far (static buffer; for failure messages). */
const char *rc_agent_err(const struct harness_agent *a);

/* Start an agent with extra arguments; fails the test with its stderr. */
#define RC_START(a, ...)						\
	cr_assert(harness_start((a), __VA_ARGS__, (const char *)NULL) == 0, \
	    "distkv-agent did not start; stderr:\n%s", rc_agent_err(a))

/* Assert that msg (struct rc_msg *) matches a pattern, at the caller's line. */
#define RC_ASSERT_MATCH(msg, ...) do {					\
	char rc_err_[8192];						\
	struct rc_msg *rc_m_ = (msg);					\
	cr_assert(rc_m_ != NULL, "no message (timeout or EOF)");	\
	cr_assert(rc_match(&rc_m_->obj, rc_err_, sizeof(rc_err_),	\
	    __VA_ARGS__), "%s", rc_err_);				\
} while (0)

#endif
