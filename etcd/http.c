/*
 * http: see http.h.  What a client sends is read by MHD (no hand-written
 * HTTP parser here); the raw request URI (from MHD's URI log callback) is
 * decoded by form.c, so a bad escape is refused as etcd refuses it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "form.h"
#include "hostport.h"
#include "http.h"
#include "v2err.h"

/* The cluster ID etcd clients see: fixed, "DistKV" in hex. */
#define CLUSTER_ID "446973744b56"
#define MEMBER_ID "64697374"
/* How long http_stop waits for plain sets the agent has not answered. */
#define ASYNC_STOP_WAIT_S 5
#define VERSION_JSON "{\"etcdserver\":\"3.4.23\",\"etcdcluster\":\"3.4.0\"}"

/* Requests that need the agent, waiting for a worker (FIFO). */
struct jobq {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct req *head, *tail;
	bool stop;
};

struct http {
	struct MHD_Daemon *d;
	struct http_cfg cfg;
	unsigned port;
	/*
	 * The port, so the URL, is known only once MHD has bound it, and its
	 * threads may serve /v2/members at once: url is written and read
	 * under url_mu, which http_start holds until it is written.
	 */
	pthread_mutex_t url_mu;
	char url[300];
	struct jobq q;
	pthread_t *workers;
	unsigned nworkers;
	/* plain sets on the feed's connection (keys_put_async) */
	pthread_mutex_t amu;
	pthread_cond_t acond;
	unsigned async_pending;
	bool stopping;
};

/*
 * Per connection: the request whose URI MHD has logged.  MHD calls the
 * completion callback only for requests that reached the handler, so a
 * request it refused itself (headers too large) is freed here instead:
 * by the next request's URI callback or when the connection closes.
 */
struct cctx {
	struct req *pending;
};

/* One request; lives from the URI callback to the completion callback. */
struct req {
	struct http *s;
	struct cctx *cctx;
	struct MHD_Connection *conn;
	char *uri;
	bool started, too_big;
	char *body;
	size_t blen;
	struct hwaiter *w;
	char *wbody;
	size_t wblen, woff;
	/* a request handed to a worker: its input, then its answer */
	struct req *qnext;
	const char *method;		/* MHD's, valid for the request */
	char *key;
	struct form form;
	bool queued;
	struct keys_resp rs;
};

static void
req_free(struct req *r)
{
	if (r == NULL)
		return;
	if (r->cctx != NULL && r->cctx->pending == r)
		r->cctx->pending = NULL;
	history_waiter_free(r->w);
	free(r->rs.body);
	free(r->key);
	form_free(&r->form);
	free(r->wbody);
	free(r->body);
	free(r->uri);
	free(r);
}

/*
 * Connections open on this HTTP thread: MHD's pool keeps a connection on
 * the thread that accepted it and tells us of its start and end there.
 */
static __thread unsigned conns_here;

static void
conn_cb(void *cls, struct MHD_Connection *conn, void **sctx,
    enum MHD_ConnectionNotificationCode toe)
{
	struct cctx *c = *sctx;

	(void)cls;
	(void)conn;
	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		conns_here++;
		*sctx = calloc(1, sizeof(struct cctx));
		return;
	}
	if (conns_here > 0)
		conns_here--;
	if (c == NULL)
		return;
	if (c->pending != NULL && !c->pending->started)
		req_free(c->pending);
	else if (c->pending != NULL)
		c->pending->cctx = NULL;
	free(c);
	*sctx = NULL;
}

static void *
uri_cb(void *cls, const char *uri, struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci;
	struct req *r = calloc(1, sizeof(*r));
	struct cctx *c;

	if (r == NULL)
		return NULL;
	r->s = cls;
	r->conn = conn;
	if ((r->uri = strdup(uri != NULL ? uri : "/")) == NULL) {
		free(r);
		return NULL;
	}
	ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	if (ci != NULL && (c = ci->socket_context) != NULL) {
		if (c->pending != NULL && !c->pending->started)
			req_free(c->pending);
		c->pending = r;
		r->cctx = c;
	}
	return r;
}

static void
completed_cb(void *cls, struct MHD_Connection *conn, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct req *r = *con_cls;

	(void)cls;
	(void)conn;
	(void)toe;
	req_free(r);
	*con_cls = NULL;
}

static void
add_common(struct MHD_Response *resp, const char *ctype)
{
	MHD_add_response_header(resp, "Content-Type", ctype);
}

static enum MHD_Result
send_buf(struct MHD_Connection *conn, int status, const char *ctype,
    char *body, size_t len, uint64_t index, bool etcd)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;
	char ix[32];

	resp = MHD_create_response_from_buffer(len, body,
	    MHD_RESPMEM_MUST_FREE);
	if (resp == NULL) {
		free(body);
		return MHD_NO;
	}
	add_common(resp, ctype);
	if (etcd) {
		snprintf(ix, sizeof(ix), "%" PRIu64, index);
		MHD_add_response_header(resp, "X-Etcd-Cluster-Id", CLUSTER_ID);
		MHD_add_response_header(resp, "X-Etcd-Index", ix);
		MHD_add_response_header(resp, "X-Raft-Index", ix);
		MHD_add_response_header(resp, "X-Raft-Term", "1");
	}
	ret = MHD_queue_response(conn, (unsigned)status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result
send_text(struct MHD_Connection *conn, int status, const char *text)
{
	char *b = strdup(text);

	if (b == NULL)
		return MHD_NO;
	return send_buf(conn, status, "text/plain; charset=utf-8", b,
	    strlen(b), 0, false);
}

static enum MHD_Result
send_error(struct req *r, int code, const char *cause)
{
	uint64_t ix = history_index(r->s->cfg.history);
	char *b = v2err_body(code, cause, ix);

	if (b == NULL)
		return MHD_NO;
	return send_buf(r->conn, v2err_status(code), "application/json", b,
	    strlen(b), ix, true);
}

/* ---- long-poll watches ---- */

static void
suspend_cb(void *arg)
{
	struct req *r = arg;

	MHD_suspend_connection(r->conn);
}

static void
wake_cb(void *arg)
{
	struct req *r = arg;

	MHD_resume_connection(r->conn);
}

static ssize_t
watch_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct req *r = cls;
	size_t n;
	int t;

	(void)pos;
	if (r->wbody == NULL) {
		t = history_waiter_take(r->w, &r->wbody, &r->wblen, suspend_cb,
		    r);
		if (t == 0)
			return 0;	/* suspended until the event */
		if (t < 0)
			return MHD_CONTENT_READER_END_WITH_ERROR;
	}
	if (r->woff >= r->wblen)
		return MHD_CONTENT_READER_END_OF_STREAM;
	n = r->wblen - r->woff;
	if (n > max)
		n = max;
	memcpy(buf, r->wbody + r->woff, n);
	r->woff += n;
	return (ssize_t)n;
}

static enum MHD_Result
start_watch(struct req *r, uint64_t index)
{
	const union MHD_ConnectionInfo *ci;
	struct MHD_Response *resp;
	enum MHD_Result ret;
	char ix[32];

	ci = MHD_get_connection_info(r->conn,
	    MHD_CONNECTION_INFO_CONNECTION_FD);
	history_waiter_arm(r->w, ci != NULL ? ci->connect_fd : -1, wake_cb, r);
	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096,
	    watch_reader, r, NULL);
	if (resp == NULL)
		return MHD_NO;
	snprintf(ix, sizeof(ix), "%" PRIu64, index);
	add_common(resp, "application/json");
	MHD_add_response_header(resp, "X-Etcd-Cluster-Id", CLUSTER_ID);
	MHD_add_response_header(resp, "X-Etcd-Index", ix);
	MHD_add_response_header(resp, "X-Raft-Index", ix);
	MHD_add_response_header(resp, "X-Raft-Term", "1");
	ret = MHD_queue_response(r->conn, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* ---- routes ---- */

static bool
is_form(struct MHD_Connection *conn)
{
	const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_CONTENT_TYPE);

	return ct != NULL && strncasecmp(ct,
	    "application/x-www-form-urlencoded", 33) == 0;
}

static enum MHD_Result
send_answer(struct req *r, struct keys_resp *rs)
{
	char *body;

	if (rs->waiter != NULL) {
		r->w = rs->waiter;
		rs->waiter = NULL;
		return start_watch(r, rs->index);
	}
	if ((body = rs->body) == NULL)
		return MHD_NO;
	rs->body = NULL;	/* send_buf frees it, also when it fails */
	return send_buf(r->conn, rs->status, "application/json", body,
	    rs->blen, rs->index, true);
}

/* ---- workers: requests that wait for the agent ---- */

/* Queue lock held. */
static void
job_append(struct jobq *q, struct req *r)
{
	r->queued = true;
	r->qnext = NULL;
	if (q->tail != NULL)
		q->tail->qnext = r;
	else
		q->head = r;
	q->tail = r;
	pthread_cond_signal(&q->cond);
}

/*
 * The connection is suspended while a worker has its request, so an HTTP
 * thread never blocks on the agent and a slow write delays only its own
 * client; when the answer is in, the worker resumes the connection and MHD
 * calls access_cb again, which sends it.  Nothing touches r after the
 * resume but MHD's thread: r is freed by completed_cb, which MHD cannot
 * call while the connection is suspended.
 */
static enum MHD_Result
queue_job(struct req *r)
{
	struct jobq *q = &r->s->q;

	pthread_mutex_lock(&q->mu);
	if (q->stop) {
		/* shutting down: no worker may be left to resume it */
		pthread_mutex_unlock(&q->mu);
		return MHD_NO;
	}
	MHD_suspend_connection(r->conn);
	job_append(q, r);
	pthread_mutex_unlock(&q->mu);
	return MHD_YES;
}

/*
 * A request already suspended goes to the workers; if they have stopped,
 * it is answered "unavailable" at once, since nobody else would resume it.
 */
static void
job_push(struct req *r)
{
	struct jobq *q = &r->s->q;

	pthread_mutex_lock(&q->mu);
	if (!q->stop) {
		job_append(q, r);
		pthread_mutex_unlock(&q->mu);
		return;
	}
	pthread_mutex_unlock(&q->mu);
	r->rs.status = 503;
	r->rs.body = NULL;
	MHD_resume_connection(r->conn);
}

static void *
worker_main(void *arg)
{
	struct http *s = arg;
	struct jobq *q = &s->q;
	struct keys_req kr;
	struct req *r;

	for (;;) {
		pthread_mutex_lock(&q->mu);
		while (q->head == NULL && !q->stop)
			pthread_cond_wait(&q->cond, &q->mu);
		if ((r = q->head) == NULL) {
			pthread_mutex_unlock(&q->mu);
			break;
		}
		if ((q->head = r->qnext) == NULL)
			q->tail = NULL;
		pthread_mutex_unlock(&q->mu);
		kr.method = r->method;
		kr.key = r->key;
		kr.form = &r->form;
		keys_handle(s->cfg.keys, &kr, &r->rs);
		MHD_resume_connection(r->conn);
	}
	return NULL;
}

/* Start n workers; with the queue drained they stop in workers_stop. */
static int
workers_start(struct http *s, unsigned n)
{
	pthread_mutex_init(&s->q.mu, NULL);
	pthread_cond_init(&s->q.cond, NULL);
	if ((s->workers = calloc(n, sizeof(*s->workers))) == NULL)
		return -ENOMEM;
	for (s->nworkers = 0; s->nworkers < n; s->nworkers++)
		if (pthread_create(&s->workers[s->nworkers], NULL, worker_main,
		    s) != 0)
			return -EAGAIN;
	return 0;
}

static void
workers_stop(struct http *s)
{
	unsigned i;

	pthread_mutex_lock(&s->q.mu);
	s->q.stop = true;
	pthread_cond_broadcast(&s->q.cond);
	pthread_mutex_unlock(&s->q.mu);
	for (i = 0; i < s->nworkers; i++)
		pthread_join(s->workers[i], NULL);
	free(s->workers);
	pthread_cond_destroy(&s->q.cond);
	pthread_mutex_destroy(&s->q.mu);
}

/* ---- plain sets: no worker, no thread waits (keys_put_async) ---- */

static void
async_end(struct http *s)
{
	pthread_mutex_lock(&s->amu);
	if (--s->async_pending == 0)
		pthread_cond_broadcast(&s->acond);
	pthread_mutex_unlock(&s->amu);
}

static void
async_suspend(void *arg)
{
	struct req *r = arg;

	r->queued = true;	/* resumed: r->rs is the answer */
	MHD_suspend_connection(r->conn);
}

static void
async_resume(void *arg)
{
	struct req *r = arg;
	struct http *s = r->s;

	MHD_resume_connection(r->conn);
	async_end(s);
}

/*
 * The plain-set path: true when it took the request (key and f are then
 * its), false when the caller serves it as before.
 */
static bool
try_put_async(struct req *r, const struct keys_req *kr, char *key,
    struct form *f)
{
	struct http *s = r->s;
	struct keys_async cb = { async_suspend, async_resume, r };
	int rc;

	pthread_mutex_lock(&s->amu);
	if (s->stopping) {
		pthread_mutex_unlock(&s->amu);
		return false;
	}
	s->async_pending++;
	pthread_mutex_unlock(&s->amu);
	rc = keys_put_async(s->cfg.keys, kr, &r->rs, &cb);
	if (rc == KEYS_ASYNC_STARTED) {
		form_free(f);
		free(key);
		return true;
	}
	async_end(s);
	if (rc == KEYS_ASYNC_SUSPENDED) {
		/* rare (out of memory, the feed gone): a worker's job */
		r->method = kr->method;
		r->key = key;
		r->form = *f;
		job_push(r);
		return true;
	}
	return false;
}

static void
http_free(struct http *s)
{
	pthread_mutex_destroy(&s->url_mu);
	pthread_cond_destroy(&s->acond);
	pthread_mutex_destroy(&s->amu);
	free(s);
}

/*
 * No new plain set goes the async way; wait for those under way (each
 * ends with the agent's reply or with the feed's failure).
 */
static void
async_stop(struct http *s)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ASYNC_STOP_WAIT_S;
	pthread_mutex_lock(&s->amu);
	s->stopping = true;
	while (s->async_pending > 0 &&
	    pthread_cond_timedwait(&s->acond, &s->amu, &ts) == 0)
		;
	pthread_mutex_unlock(&s->amu);
}

static enum MHD_Result
serve_keys(struct req *r, const char *method, const char *keypath,
    const char *query)
{
	struct form f = { 0, 0, NULL };
	struct keys_req kr;
	struct keys_resp rs;
	const char *bad;
	char *key = NULL;
	enum MHD_Result ret;

	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0 &&
	    strcmp(method, "PUT") != 0 && strcmp(method, "POST") != 0 &&
	    strcmp(method, "DELETE") != 0) {
		struct MHD_Response *resp = MHD_create_response_from_buffer(
		    19, (void *)"Method Not Allowed\n", MHD_RESPMEM_PERSISTENT);

		if (resp == NULL)
			return MHD_NO;
		MHD_add_response_header(resp, "Allow",
		    "GET, HEAD, PUT, POST, DELETE");
		ret = MHD_queue_response(r->conn, 405, resp);
		MHD_destroy_response(resp);
		return ret;
	}
	if (r->too_big)
		return send_error(r, V2E_INVALID_FORM, "http: POST too large");
	/* Go's r.Form: the body's fields first (PUT and POST only) */
	if ((strcmp(method, "PUT") == 0 || strcmp(method, "POST") == 0) &&
	    r->blen > 0 && is_form(r->conn) &&
	    form_parse(&f, r->body, r->blen, &bad) != 0) {
		form_free(&f);
		return send_error(r, V2E_INVALID_FORM, bad != NULL ? bad :
		    "out of memory");
	}
	if (query != NULL && form_parse(&f, query, strlen(query), &bad) != 0) {
		form_free(&f);
		return send_error(r, V2E_INVALID_FORM, bad != NULL ? bad :
		    "out of memory");
	}
	if ((key = form_clean_key(keypath)) == NULL) {
		form_free(&f);
		return MHD_NO;
	}
	kr.method = method;
	kr.key = key;
	kr.form = &f;
	if (conns_here <= 1) {
		/*
		 * Alone on this thread: blocking here holds up no other
		 * client, and saves the thread hand-offs of a worker or of
		 * the feed thread (one client's plain sets: p50 464 us here
		 * against 537 us through try_put_async, wrk -c 1).
		 */
		keys_handle(r->s->cfg.keys, &kr, &rs);
	} else if (strcmp(method, "PUT") == 0 &&
	    try_put_async(r, &kr, key, &f)) {
		return MHD_YES;
	} else if (!keys_answer_local(r->s->cfg.keys, &kr, &rs)) {
		r->method = method;
		r->key = key;
		r->form = f;
		return queue_job(r);
	}
	form_free(&f);
	free(key);
	return send_answer(r, &rs);
}

static void
url_copy(struct http *s, char *out, size_t len)
{
	pthread_mutex_lock(&s->url_mu);
	snprintf(out, len, "%s", s->url);
	pthread_mutex_unlock(&s->url_mu);
}

static enum MHD_Result
serve_members(struct req *r)
{
	char url[sizeof(r->s->url)], *b;

	url_copy(r->s, url, sizeof(url));
	if (asprintf(&b, "{\"members\":[{\"id\":\"" MEMBER_ID "\","
	    "\"name\":\"%s\",\"peerURLs\":[\"%s\"],\"clientURLs\":[\"%s\"]}]}"
	    "\n", r->s->cfg.name, url, url) < 0)
		return MHD_NO;
	return send_buf(r->conn, 200, "application/json", b, strlen(b), 0,
	    false);
}

static enum MHD_Result
route(struct req *r, const char *method)
{
	char *path = NULL, *q;
	enum MHD_Result ret;

	q = strchr(r->uri, '?');
	if (form_unescape_path(r->uri, q != NULL ? (size_t)(q - r->uri) :
	    strlen(r->uri), &path) != 0)
		return send_text(r->conn, 400, "400 Bad Request");
	if (q != NULL)
		q++;
	if (strcmp(path, "/v2/keys") == 0 || strncmp(path, "/v2/keys/", 9) == 0)
		ret = serve_keys(r, method, path + 8, q);
	else if (strcmp(path, "/version") == 0)
		ret = send_text(r->conn, 200, VERSION_JSON);
	else if (strcmp(path, "/health") == 0)
		ret = send_text(r->conn, history_failed(r->s->cfg.history) ?
		    503 : 200, history_failed(r->s->cfg.history) ?
		    "{\"health\":\"false\"}" : "{\"health\":\"true\"}");
	else if (strcmp(path, "/v2/members") == 0 ||
	    strcmp(path, "/v2/members/") == 0)
		ret = serve_members(r);
	else if (strcmp(path, "/v2/machines") == 0) {
		char url[sizeof(r->s->url)];

		url_copy(r->s, url, sizeof(url));
		ret = send_text(r->conn, 200, url);
	}
	else
		ret = send_text(r->conn, 404, "404 page not found\n");
	free(path);
	return ret;
}

static enum MHD_Result
access_cb(void *cls, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload,
    size_t *upload_size, void **con_cls)
{
	struct req *r = *con_cls;

	(void)cls;
	(void)conn;
	(void)url;
	(void)version;
	if (r == NULL)
		return MHD_NO;	/* out of memory in uri_cb: close */
	if (!r->started) {
		r->started = true;
		return MHD_YES;
	}
	if (*upload_size > 0) {
		size_t n = *upload_size;

		/* bounded: past max_body the rest is read and dropped */
		if (!r->too_big && r->blen + n <= r->s->cfg.max_body) {
			char *b = realloc(r->body, r->blen + n + 1);

			if (b == NULL)
				return MHD_NO;
			memcpy(b + r->blen, upload, n);
			r->body = b;
			r->blen += n;
		} else {
			r->too_big = true;
			free(r->body);
			r->body = NULL;
			r->blen = 0;
		}
		*upload_size = 0;
		return MHD_YES;
	}
	if (r->w != NULL)
		return MHD_YES;	/* resumed long-poll: the reader goes on */
	if (r->queued)		/* resumed: the worker's answer is in */
		return send_answer(r, &r->rs);
	return route(r, method);
}

int
http_start(const struct http_cfg *cfg, struct http **out)
{
	struct sockaddr_storage ss;
	const union MHD_DaemonInfo *di;
	struct http *s;
	bool v6 = false;
	char host[INET6_ADDRSTRLEN];
	unsigned flags;
	long ncpu;

	*out = NULL;
	if (hostport_bind_addr(cfg->listen, &ss, &v6) != 0)
		return -EINVAL;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return -ENOMEM;
	s->cfg = *cfg;
	pthread_mutex_init(&s->amu, NULL);
	pthread_cond_init(&s->acond, NULL);
	pthread_mutex_init(&s->url_mu, NULL);
	if (workers_start(s, cfg->threads) != 0) {
		workers_stop(s);
		http_free(s);
		return -ENOMEM;
	}
	/* HTTP threads never wait for the agent: one per CPU is enough */
	if ((ncpu = sysconf(_SC_NPROCESSORS_ONLN)) < 1)
		ncpu = 1;
	flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
	    MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG |
	    (v6 ? MHD_USE_IPv6 : 0);
	pthread_mutex_lock(&s->url_mu);
	s->d = MHD_start_daemon(flags, 0, NULL, NULL, access_cb, s,
	    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
	    MHD_OPTION_THREAD_POOL_SIZE, (unsigned)(ncpu < 4 ? ncpu : 4),
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->max_conns,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)cfg->conn_memory,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)300,
	    MHD_OPTION_URI_LOG_CALLBACK, uri_cb, s,
	    MHD_OPTION_NOTIFY_COMPLETED, completed_cb, s,
	    MHD_OPTION_NOTIFY_CONNECTION, conn_cb, s,
	    MHD_OPTION_END);
	if (s->d == NULL) {
		pthread_mutex_unlock(&s->url_mu);
		workers_stop(s);
		http_free(s);
		return -EADDRINUSE;
	}
	di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
	s->port = di != NULL ? di->port : 0;
	if (cfg->advertise != NULL) {
		snprintf(s->url, sizeof(s->url), "%s", cfg->advertise);
	} else {
		if (v6)
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->
			    sin6_addr, host, sizeof(host));
		else
			inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->
			    sin_addr, host, sizeof(host));
		snprintf(s->url, sizeof(s->url), v6 ? "http://[%s]:%u" :
		    "http://%s:%u", host, s->port);
	}
	pthread_mutex_unlock(&s->url_mu);
	*out = s;
	return 0;
}

unsigned
http_port(const struct http *s)
{
	return s->port;
}

const char *
http_url(const struct http *s)
{
	return s->url;
}

void
http_stop(struct http *s)
{
	if (s == NULL)
		return;
	history_stop_waiters(s->cfg.history);
	/* MHD must not stop with a connection suspended: answer them all */
	workers_stop(s);
	async_stop(s);
	MHD_stop_daemon(s->d);
	http_free(s);
}
