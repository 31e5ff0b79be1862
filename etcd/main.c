/*
 * distkv-etcd: the etcd v2 gateway.  Command line, start-up and shutdown;
 * the only globals of the program live here (none are mutable).
 *
 * Threads: the main thread only waits for a signal or the end of the
 * agent feed; libmicrohttpd's pool serves HTTP (http.c), one feed thread
 * keeps the history (history.c).  Signals are blocked before any thread
 * starts, so they all reach the main thread's sigtimedwait.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "config.h"
#include "distkv.h"
#include "history.h"
#include "http.h"
#include "keys.h"

static const char usage_text[] =
"Usage: distkv-etcd [OPTIONS]\n"
"\n"
"Serve the etcd v2 keys API (/v2/keys, as etcd 3.4 --enable-v2) over HTTP\n"
"on top of the local distkv-agent, so etcdctl (ETCDCTL_API=2),\n"
"python-etcd and confd-style tools work unchanged.  The gateway is a\n"
"client of the agent (libdistkv): it logs in as the agent asks.\n"
"\n"
"Options:\n"
"  --socket PATH          agent socket (default $DISTKV_SOCKET, else\n"
"                         " DISTKV_DEFAULT_SOCKET ")\n"
"  --listen ADDR:PORT     HTTP address (default 127.0.0.1:2379; [::1]:2379\n"
"                         for IPv6; port 0 picks a free port)\n"
"  --prefix PATH          DistKV path that etcd's \"/\" maps to, in\n"
"                         distkv-cli's path syntax (default: the root)\n"
"  --history N            events kept for waitIndex (default 1000, as etcd)\n"
"  --threads N            agent workers (default 16), each with its own\n"
"                         agent connection: writes and directory reads\n"
"                         wait for the agent there, not in HTTP threads\n"
"  --max-body BYTES       largest request body (default 1572864, etcd's\n"
"                         request limit); larger: error 210, nothing written\n"
"  --max-connections N    open HTTP connections at most, long-polls\n"
"                         included (default 10000)\n"
"  --advertise-client-url URL\n"
"                         URL /v2/members and /v2/machines give out\n"
"                         (default http://ADDR:PORT as bound); etcdctl\n"
"                         follows it\n"
"  --name NAME            member name in /v2/members (default: the agent's\n"
"                         node name)\n"
"  --ready-file FILE      once serving, write the URL to FILE\n"
"  -h, --help             this text\n"
"  --version              print the version\n"
"\n"
"Exit status: 0 on SIGTERM/SIGINT, 1 if the agent connection is lost or\n"
"start-up fails, 2 for bad options.  See docs/etcd.md.\n";

struct opts {
	const char *socket, *listen, *prefix, *advertise, *name, *ready_file;
	unsigned long history, threads, max_conns, max_body;
};

static int
num(const char *s, unsigned long lo, unsigned long hi, unsigned long *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || *s == '\0' || *s == '-' || v < lo ||
	    v > hi)
		return -1;
	*out = v;
	return 0;
}

static int
parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "listen", required_argument, NULL, 'l' },
		{ "prefix", required_argument, NULL, 'p' },
		{ "history", required_argument, NULL, 'H' },
		{ "threads", required_argument, NULL, 't' },
		{ "max-body", required_argument, NULL, 'b' },
		{ "max-connections", required_argument, NULL, 'c' },
		{ "advertise-client-url", required_argument, NULL, 'a' },
		{ "name", required_argument, NULL, 'n' },
		{ "ready-file", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int ch, li = 0;

	memset(o, 0, sizeof(*o));
	o->listen = "127.0.0.1:2379";
	o->prefix = "";
	o->history = 1000;
	o->threads = 16;
	o->max_conns = 10000;
	o->max_body = 1572864;
	while ((ch = getopt_long(argc, argv, "h", lo, &li)) != -1) {
		switch (ch) {
		case 's': o->socket = optarg; break;
		case 'l': o->listen = optarg; break;
		case 'p': o->prefix = optarg; break;
		case 'a': o->advertise = optarg; break;
		case 'n': o->name = optarg; break;
		case 'r': o->ready_file = optarg; break;
		case 'H':
			if (num(optarg, 1, 10000000, &o->history) != 0)
				goto bad;
			break;
		case 't':
			if (num(optarg, 1, 256, &o->threads) != 0)
				goto bad;
			break;
		case 'b':
			if (num(optarg, 1, 1UL << 30, &o->max_body) != 0)
				goto bad;
			break;
		case 'c':
			if (num(optarg, 1, 1000000, &o->max_conns) != 0)
				goto bad;
			break;
		case 'h':
			fputs(usage_text, stdout);
			exit(0);
		case 'V':
			puts("distkv-etcd " PACKAGE_VERSION
			    " (etcd v2 API as etcd 3.4)");
			exit(0);
		default:
			fputs("Try 'distkv-etcd --help'.\n", stderr);
			return -1;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "distkv-etcd: unexpected argument '%s'\n",
		    argv[optind]);
		return -1;
	}
	return 0;
bad:
	fprintf(stderr, "distkv-etcd: bad number '%s' for --%s\n", optarg,
	    lo[li].name);
	return -1;
}

/* Long-polls hold one descriptor each: use the hard limit. */
static void
raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static int
write_ready(const char *file, const char *url)
{
	char tmp[4096];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", file);
	if ((f = fopen(tmp, "w")) == NULL)
		return -1;
	fprintf(f, "%s\n", url);
	if (fclose(f) != 0 || rename(tmp, file) != 0)
		return -1;
	return 0;
}

int
main(int argc, char **argv)
{
	struct opts o;
	struct history *h = NULL;
	struct keys *k = NULL;
	struct http *s = NULL;
	struct keys_cfg kc;
	struct http_cfg hc;
	distkv_path *prefix = NULL;
	distkv *probe = NULL;
	char name[DISTKV_NODE_MAX + 1];
	sigset_t set;
	int rc, status = 1, sig;

	if (parse_args(argc, argv, &o) != 0)
		return 2;
	if (distkv_path_parse(o.prefix, &prefix) != 0) {
		fprintf(stderr, "distkv-etcd: bad --prefix '%s'\n", o.prefix);
		return 2;
	}
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	raise_nofile();

	/* one connection up front: a clear error if the agent is not there */
	if ((rc = distkv_connect(o.socket, &probe)) != 0) {
		fprintf(stderr, "distkv-etcd: cannot connect to the agent: %s\n",
		    distkv_strerror(rc));
		goto out;
	}
	snprintf(name, sizeof(name), "%s", o.name != NULL ? o.name :
	    distkv_node(probe) != NULL ? distkv_node(probe) : "distkv");
	distkv_close(probe);
	if ((rc = history_open(o.socket, prefix, o.history, 30000, &h)) != 0) {
		fprintf(stderr, "distkv-etcd: cannot watch the agent: %s\n",
		    distkv_strerror(rc));
		goto out;
	}
	kc.socket = o.socket;
	kc.prefix = prefix;
	kc.history = h;
	if ((rc = keys_open(&kc, &k)) != 0)
		goto out;
	memset(&hc, 0, sizeof(hc));
	hc.listen = o.listen;
	hc.threads = (unsigned)o.threads;
	hc.max_body = o.max_body;
	hc.max_conns = (unsigned)o.max_conns;
	/*
	 * MHD clears the whole pool after every request: at 64 KiB that
	 * was 70% of a GET's instructions.  16 KiB still holds a 12 KiB key
	 * in the URL (docs/etcd.md).
	 */
	hc.conn_memory = 16 * 1024;
	hc.advertise = o.advertise;
	hc.name = name;
	hc.keys = k;
	hc.history = h;
	if ((rc = http_start(&hc, &s)) != 0) {
		fprintf(stderr, "distkv-etcd: cannot listen on %s: %s\n",
		    o.listen, strerror(-rc));
		goto out;
	}
	fprintf(stderr, "distkv-etcd: serving %s (agent node %s)\n",
	    http_url(s), name);
	if (o.ready_file != NULL && write_ready(o.ready_file, http_url(s)) != 0)
		fprintf(stderr, "distkv-etcd: cannot write %s\n", o.ready_file);
	for (;;) {
		struct timespec ts = { 1, 0 };

		sig = sigtimedwait(&set, NULL, &ts);
		if (sig == SIGINT || sig == SIGTERM) {
			status = 0;
			break;
		}
		if (history_failed(h)) {
			fprintf(stderr, "distkv-etcd: lost the agent "
			    "connection; stopping\n");
			break;
		}
	}
out:
	http_stop(s);
	history_close(h);
	keys_close(k);
	distkv_path_free(prefix);
	return status;
}
