/* metrics: see metrics.h. */
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <ev.h>
#include <microhttpd.h>

#include "agent.h"
#include "distkv.h"
#include "log.h"
#include "hostport.h"
#include "metrics.h"
#include "persist.h"
#include "serf.h"
#include "server.h"
#include "writer.h"
#include "sync.h"

static const double bucket_le[METRICS_BUCKETS] = {
	0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001,
	0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5,
};

enum { CLS_READ, CLS_WRITE, CLS_STREAM, CLS_OTHER };
static const char *const cls_name[METRICS_CLASSES] = {
	"read", "write", "stream", "other",
};

/* An action's latency class, by its name (once per action). */
static unsigned
action_class(const char *name)
{
	static const char *const reads[] = {
		"get_value", "get_internal", "get_tree", "get_state", "root",
		"test_acl", "get_shm", "get_members", "get_metrics",
		"auth_list", "auth_get", NULL,
	};
	static const char *const writes[] = {
		"set_value", "delete_value", "set_internal",
		"delete_internal", "delete_tree", "update", "auth_set",
		"set_auth_typ", "kill_node", NULL,
	};
	static const char *const streams[] = {
		"watch", "serfmon", "dump", "get_events", NULL,
	};

	for (size_t i = 0; reads[i] != NULL; i++)
		if (strcmp(name, reads[i]) == 0)
			return CLS_READ;
	for (size_t i = 0; writes[i] != NULL; i++)
		if (strcmp(name, writes[i]) == 0)
			return CLS_WRITE;
	for (size_t i = 0; streams[i] != NULL; i++)
		if (strcmp(name, streams[i]) == 0)
			return CLS_STREAM;
	return CLS_OTHER;
}

void
metrics_request(struct metrics *m, size_t idx, const char *name, bool error,
    double secs)
{
	struct metrics_action *ac;
	struct metrics_latency *l;
	size_t b = 0;

	if (idx >= METRICS_ACTIONS)
		return;
	ac = &m->act[idx];
	if (ac->name == NULL) {
		ac->name = name;
		ac->cls = action_class(name);
	}
	if (error)
		ac->error++;
	else
		ac->ok++;
	l = &m->lat[ac->cls];
	while (b < METRICS_BUCKETS && secs > bucket_le[b])
		b++;
	l->bucket[b]++;
	l->count++;
	l->sum += secs;
}

/* ---- the text ---- */

struct out {
	char *buf;
	size_t len, cap;
	bool oom;
};

static void
put(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		if (o->oom)
			return;
		va_start(ap, fmt);
		n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			o->oom = true;
			return;
		}
		if ((size_t)n < o->cap - o->len) {
			o->len += (size_t)n;
			return;
		}
		{
			size_t cap = (o->cap + (size_t)n + 1) * 2 + 4096;
			char *b = realloc(o->buf, cap);

			if (b == NULL) {
				o->oom = true;
				return;
			}
			o->buf = b;
			o->cap = cap;
		}
	}
}

/* # HELP and # TYPE of one family. */
static void
family(struct out *o, const char *name, const char *type, const char *help)
{
	put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
one(struct out *o, const char *name, const char *type, const char *help,
    double v)
{
	family(o, name, type, help);
	put(o, "%s %.17g\n", name, v);
}

/* A label value with \, " and newline escaped (node names are UTF-8). */
static void
put_label(struct out *o, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '\\' || s[i] == '"')
			put(o, "\\%c", s[i]);
		else if (s[i] == '\n')
			put(o, "\\n");
		else
			put(o, "%c", s[i]);
	}
}

static void
render_requests(struct out *o, const struct metrics *m)
{
	family(o, "distkv_requests_total", "counter",
	    "Client requests by action and result (error: an error reply).");
	for (size_t i = 0; i < METRICS_ACTIONS; i++) {
		const struct metrics_action *ac = &m->act[i];

		if (ac->name == NULL)
			continue;
		put(o, "distkv_requests_total{action=\"%s\",result=\"ok\"} "
		    "%llu\n", ac->name, (unsigned long long)ac->ok);
		put(o, "distkv_requests_total{action=\"%s\",result=\"error\"} "
		    "%llu\n", ac->name, (unsigned long long)ac->error);
	}
	one(o, "distkv_requests_unknown_total", "counter",
	    "Requests naming no known action.", (double)m->unknown);
	family(o, "distkv_request_duration_seconds", "histogram",
	    "Time to handle a request (a stream: until it started), by "
	    "action class.");
	for (unsigned c = 0; c < METRICS_CLASSES; c++) {
		const struct metrics_latency *l = &m->lat[c];
		uint64_t cum = 0;

		for (size_t b = 0; b < METRICS_BUCKETS; b++) {
			cum += l->bucket[b];
			put(o, "distkv_request_duration_seconds_bucket{class="
			    "\"%s\",le=\"%g\"} %llu\n", cls_name[c],
			    bucket_le[b], (unsigned long long)cum);
		}
		put(o, "distkv_request_duration_seconds_bucket{class=\"%s\","
		    "le=\"+Inf\"} %llu\n", cls_name[c],
		    (unsigned long long)l->count);
		put(o, "distkv_request_duration_seconds_sum{class=\"%s\"} "
		    "%.9g\n", cls_name[c], l->sum);
		put(o, "distkv_request_duration_seconds_count{class=\"%s\"} "
		    "%llu\n", cls_name[c], (unsigned long long)l->count);
	}
	one(o, "distkv_error_replies_total", "counter",
	    "Error replies sent (every action, streams included).",
	    (double)m->errors);
}

static void
render_members(struct out *o, const struct agent *a)
{
	static const char *const st[] = {
		"alive", "leaving", "left", "failed", "none",
	};
	const struct serf_member *m;
	size_t n, k;

	m = sync_members(a, &n);
	family(o, "distkv_serf_members", "gauge",
	    "Serf members by status, as this node's Serf lists them.");
	for (size_t i = 0; i < sizeof(st) / sizeof(st[0]); i++) {
		k = 0;
		for (size_t j = 0; j < n; j++)
			k += strcmp(m[j].status, st[i]) == 0;
		put(o, "distkv_serf_members{status=\"%s\"} %zu\n", st[i], k);
	}
}

int
metrics_render(struct agent *a, char **out, size_t *len)
{
	struct out o = { NULL, 0, 16384, false };
	struct persist_stats ps;
	struct sync_stats ss;
	struct shm_writer_stats ws;
	uint64_t missing = 0;

	*out = NULL;
	*len = 0;
	if ((o.buf = malloc(o.cap)) == NULL)
		return -ENOMEM;
	family(&o, "distkv_info", "gauge", "This agent: node name and version.");
	put(&o, "distkv_info{node=\"");
	put_label(&o, a->self->name, a->self->name_len);
	put(&o, "\",version=\"%s\"} 1\n", distkv_version());
	one(&o, "distkv_ready", "gauge", "1 when the agent has its data and "
	    "serves clients.", agent_ready(a) ? 1 : 0);
	render_requests(&o, &a->metrics);
	one(&o, "distkv_connections", "gauge",
	    "Open connections (clients and peers).",
	    (double)server_nconns(a->server));
	one(&o, "distkv_connections_accepted_total", "counter",
	    "Connections accepted since start.",
	    (double)a->metrics.conns_accepted);
	one(&o, "distkv_watches", "gauge", "Running watch requests.",
	    (double)a->watches);
	one(&o, "distkv_entries", "gauge",
	    "Entries in the tree (inner nodes and tombstones included).",
	    (double)a->tree.nentries);
	one(&o, "distkv_tombstones", "gauge",
	    "Deleted entries kept for replication.", (double)a->tombstones);
	one(&o, "distkv_changes_total", "counter",
	    "Changes accepted since start (local and replicated).",
	    (double)a->changes);
	one(&o, "distkv_tick", "gauge", "This node's tick.",
	    a->self->has_tick ? (double)a->self->tick : 0);
	one(&o, "distkv_tock", "gauge", "The cluster clock as seen here.",
	    (double)a->tock);
	for (size_t i = 0; i < a->nodes.n; i++) {
		const struct node *n = a->nodes.by_index[i];
		struct ranges miss;

		if (!n->has_tick || n->tick < 1)
			continue;
		ranges_init(&miss);
		if (ranges_missing(&n->known, n->tick, &miss) == 0)
			missing += ranges_count(&miss);
		ranges_fini(&miss);
	}
	one(&o, "distkv_missing_ticks", "gauge",
	    "Changes of other nodes this node knows it has not got yet.",
	    (double)missing);

	memset(&ws, 0, sizeof(ws));
	if (a->shm != NULL)
		shm_writer_stats(a->shm, &ws);
	one(&o, "distkv_region_bytes", "gauge",
	    "Size of the shared-memory region (0: none).",
	    (double)ws.region_size);
	one(&o, "distkv_region_live_bytes", "gauge",
	    "Bytes of live entries in the region.", (double)ws.live_bytes);
	one(&o, "distkv_region_generation", "gauge",
	    "Generation of the region (grows when it is replaced).",
	    (double)ws.generation);
	one(&o, "distkv_region_replacements_total", "counter",
	    "Regions built by growth or compaction.",
	    (double)ws.replacements);

	persist_get_stats(a, &ps);
	one(&o, "distkv_log_bytes", "gauge",
	    "Bytes of records in the state dir's change log (0: no state dir).",
	    (double)ps.log_bytes);
	one(&o, "distkv_snapshot_bytes", "gauge",
	    "Size of the state dir's snapshot.", (double)ps.snapshot_bytes);
	one(&o, "distkv_snapshots_total", "counter",
	    "Snapshots written to the state dir since start.",
	    (double)ps.snapshots);
	one(&o, "distkv_snapshot_timestamp_seconds", "gauge",
	    "When the state dir's snapshot was written (Unix time).",
	    ps.snapshot_at);
	one(&o, "distkv_snapshot_duration_seconds", "gauge",
	    "How long writing the last snapshot took.", ps.snapshot_secs);

	sync_get_stats(a, &ss);
	one(&o, "distkv_serf_connected", "gauge",
	    "1 when the agent is connected to its Serf agent.",
	    sync_serf_connected(a) ? 1 : 0);
	render_members(&o, a);
	one(&o, "distkv_serf_events_received_total", "counter",
	    "Serf user events received.", (double)ss.serf.events_in);
	one(&o, "distkv_serf_events_sent_total", "counter",
	    "Serf user events handed to the Serf agent.",
	    (double)ss.serf.events_out);
	one(&o, "distkv_serf_events_lost_total", "counter",
	    "Serf user events not sent (no connection, too large, output "
	    "full) or refused by the Serf agent; catch-up repairs them.",
	    (double)(ss.serf.events_lost + ss.serf.events_rejected));
	one(&o, "distkv_catchup_items_total", "counter",
	    "Entries received from peers by catch-up.",
	    (double)ss.catchup_items);
	one(&o, "distkv_recoveries_total", "counter",
	    "Split recoveries run.", (double)ss.recoveries);
	one(&o, "distkv_recovery_running", "gauge",
	    "1 while a split recovery runs.", ss.recovery_running ? 1 : 0);
	one(&o, "distkv_retransmit_events_total", "counter",
	    "Serf events sent again to answer missing reports.",
	    (double)ss.retransmit_events);
	one(&o, "distkv_retransmit_entries_total", "counter",
	    "Entries sent again to answer missing reports.",
	    (double)ss.retransmit_entries);
	one(&o, "distkv_missing_reports_total", "counter",
	    "Missing reports sent during recoveries.",
	    (double)ss.missing_reports);
	one(&o, "distkv_known_reports_total", "counter",
	    "Superseded-tick reports sent.", (double)ss.known_reports);
	one(&o, "distkv_tombstones_purged_total", "counter",
	    "Tombstones purged after every node saw them.",
	    (double)ss.purged);
	if (o.oom) {
		free(o.buf);
		return -ENOMEM;
	}
	*out = o.buf;
	*len = o.len;
	return 0;
}

/* ---- HTTP: libmicrohttpd driven by the agent's loop ---- */

struct metrics_http {
	struct MHD_Daemon *d;
	struct agent *a;
	ev_io io;		/* MHD's epoll descriptor */
	ev_timer timer;		/* its connection timeouts */
	unsigned port;
};

static void
http_run(struct metrics_http *h)
{
	MHD_run(h->d);
}

static void
http_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	http_run(w->data);
}

static void
http_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	http_run(w->data);
}

static enum MHD_Result
http_reply(struct MHD_Connection *conn, unsigned status, const char *body,
    size_t len, enum MHD_ResponseMemoryMode mode)
{
	struct MHD_Response *resp;
	enum MHD_Result r;

	resp = MHD_create_response_from_buffer(len, (void *)body, mode);
	if (resp == NULL)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
	    status == MHD_HTTP_OK ? "text/plain; version=0.0.4; "
	    "charset=utf-8" : "text/plain; charset=utf-8");
	r = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return r;
}

static enum MHD_Result
http_access(void *cls, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_size, void **req_cls)
{
	static const char notfound[] = "only /metrics is here\n";
	static const char badmethod[] = "GET only\n";
	struct metrics_http *h = cls;
	char *text;
	size_t len;

	(void)version;
	(void)upload_data;
	if (*req_cls == NULL) {
		*req_cls = h;	/* first call: headers only */
		return MHD_YES;
	}
	if (*upload_size != 0) {
		*upload_size = 0;	/* a body is read and ignored */
		return MHD_YES;
	}
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return http_reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, badmethod,
		    sizeof(badmethod) - 1, MHD_RESPMEM_PERSISTENT);
	if (strcmp(url, "/metrics") != 0)
		return http_reply(conn, MHD_HTTP_NOT_FOUND, notfound,
		    sizeof(notfound) - 1, MHD_RESPMEM_PERSISTENT);
	if (metrics_render(h->a, &text, &len) != 0)
		return MHD_NO;
	return http_reply(conn, MHD_HTTP_OK, text, len,
	    MHD_RESPMEM_MUST_FREE);
}

int
metrics_http_start(struct agent *a, const char *addr)
{
	struct sockaddr_storage ss;
	const union MHD_DaemonInfo *di;
	struct metrics_http *h;
	bool v6 = false;

	if (hostport_bind_addr(addr, &ss, &v6) != 0)
		return -EINVAL;
	if ((h = calloc(1, sizeof(*h))) == NULL)
		return -ENOMEM;
	h->a = a;
	/* no thread: MHD_run from the loop when its epoll fd is ready */
	h->d = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_ERROR_LOG |
	    (v6 ? MHD_USE_IPv6 : 0), 0, NULL, NULL, http_access, h,
	    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned)64,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)32768,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
	    MHD_OPTION_END);
	if (h->d == NULL) {
		free(h);
		return -EADDRINUSE;
	}
	di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
	h->port = di != NULL ? di->port : 0;
	di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_EPOLL_FD);
	if (di == NULL) {
		MHD_stop_daemon(h->d);
		free(h);
		return -EADDRINUSE;
	}
	ev_io_init(&h->io, http_io_cb, di->epoll_fd, EV_READ);
	h->io.data = h;
	ev_io_start(a->loop, &h->io);
	ev_timer_init(&h->timer, http_timer_cb, 1.0, 1.0);
	h->timer.data = h;
	ev_timer_start(a->loop, &h->timer);
	a->metrics.http = h;
	return 0;
}

unsigned
metrics_http_port(const struct agent *a)
{
	return a->metrics.http != NULL ? a->metrics.http->port : 0;
}

void
metrics_http_stop(struct agent *a)
{
	struct metrics_http *h = a->metrics.http;

	if (h == NULL)
		return;
	ev_io_stop(a->loop, &h->io);
	ev_timer_stop(a->loop, &h->timer);
	MHD_stop_daemon(h->d);
	free(h);
	a->metrics.http = NULL;
}
