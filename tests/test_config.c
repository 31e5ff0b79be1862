/*
 * test_config: the agent's configuration and logs (agent/conf.c,
 * agent/log.c; docs/operations.md "Configuration" and "Logs").
 *
 * Real agents: precedence of flags over DISTKV_* over the file over the
 * defaults, every kind of bad input stopping the start with exit 2 and a
 * message that names its place, SIGHUP changing the log level of a
 * running agent, JSON log lines, and an idle cluster that keeps its ping
 * and recovery rounds out of the info level.  Every wait has a deadline.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <jansson.h>

#include "cluster.h"
#include "harness.h"

#define IPBASE 200
/* the machine is shared: starts take seconds under load */
#define WAIT_MS 30000

static struct harness_agent ag;

static void
setup(void)
{
	harness_init(&ag);
}

static void
teardown(void)
{
	harness_cleanup(&ag);
}

TestSuite(config, .init = setup, .fini = teardown, .timeout = 120);

/* dir/name, in a static ring of 32 buffers (a test's arguments) */
static const char *
in_dir(const char *name)
{
	static char buf[32][400];
	static int k;

	k = (k + 1) % 32;
	snprintf(buf[k], sizeof(buf[k]), "%s/%s", ag.dir, name);
	return buf[k];
}

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	fputs(text, f);
	cr_assert(fclose(f) == 0);
}

/* The whole of a file (static buffer; "" if missing). */
static const char *
read_all(const char *path)
{
	static char buf[1 << 16];
	size_t n = 0;
	FILE *f = fopen(path, "r");

	buf[0] = '\0';
	if (f == NULL)
		return buf;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/*
 * Start the agent with argv (NULL-terminated, without the program) and
 * "NAME=VALUE" environment settings (NULL-terminated) on top of ours,
 * stderr to dir/agent.err, and remember its pid in ag for cleanup.
 */
static void
spawn(const char *const *args, const char *const *env)
{
	const char *argv[64];
	char errpath[400];
	int argc = 0;

	argv[argc++] = harness_bin("distkv-agent");
	for (size_t i = 0; args[i] != NULL; i++)
		argv[argc++] = args[i];
	argv[argc] = NULL;
	snprintf(errpath, sizeof(errpath), "%s/agent.err", ag.dir);
	unlink(errpath);
	ag.pid = fork();
	cr_assert(ag.pid >= 0);
	if (ag.pid == 0) {
		int fd = open(errpath, O_WRONLY | O_CREAT | O_APPEND, 0644);

		if (fd >= 0) {
			dup2(fd, 2);
			close(fd);
		}
		for (size_t i = 0; env != NULL && env[i] != NULL; i++)
			putenv((char *)env[i]);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
}

/* Run the agent to its exit; returns the exit status (-1: killed after
 * the deadline); its stderr is in dir/agent.err. */
static int
run(const char *const *args, const char *const *env)
{
	long long deadline;
	int status;

	spawn(args, env);
	deadline = harness_now_ms() + WAIT_MS;
	while (harness_now_ms() < deadline) {
		if (waitpid(ag.pid, &status, WNOHANG) == ag.pid) {
			ag.pid = 0;
			return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
		}
		usleep(10000);
	}
	harness_kill9(&ag);
	return -1;
}

/* Wait until dir/agent.err holds needle at least n times; false if the
 * deadline passed or the agent died first. */
static bool
wait_log(const char *needle, int n)
{
	long long deadline = harness_now_ms() + WAIT_MS;

	while (harness_now_ms() < deadline) {
		const char *p = read_all(in_dir("agent.err"));
		int k = 0;

		while ((p = strstr(p, needle)) != NULL && ++k < n)
			p++;
		if (k >= n)
			return true;
		if (ag.pid > 0 && waitpid(ag.pid, NULL, WNOHANG) == ag.pid) {
			ag.pid = 0;
			return false;
		}
		usleep(10000);
	}
	return false;
}

static int
count(const char *hay, const char *needle)
{
	int k = 0;

	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
		k++;
	return k;
}

/* ---- precedence: flags > DISTKV_* > file > defaults ---- */

/*
 * The node name and the socket, from the four places; the agent's ready
 * line says which won ("node NAME ready on SOCKET").
 */
static void
check_winner(const char *const *args, const char *const *env,
    const char *want)
{
	spawn(args, env);
	cr_assert(wait_log("ready on", 1), "no start:\n%s",
	    read_all(in_dir("agent.err")));
	cr_assert(strstr(read_all(in_dir("agent.err")), want) != NULL,
	    "want '%s':\n%s", want, read_all(in_dir("agent.err")));
	cr_assert(harness_stop(&ag) == 0);
}

Test(config, precedence_flag_env_file_default)
{
	char conf[1000], want[600], sock_env[400], node_env[] =
	    "DISTKV_NODE=from-env";
	const char *const env[] = { node_env, sock_env, NULL };

	snprintf(conf, sizeof(conf), "# every option of --help is a key\n"
	    "standalone: true\nno-shm: true\nnode: from-file\n"
	    "socket: %s\n", in_dir("file.sock"));
	write_file(in_dir("agent.conf"), conf);
	snprintf(sock_env, sizeof(sock_env), "DISTKV_SOCKET=%s",
	    in_dir("env.sock"));

	/* the file beats the defaults */
	snprintf(want, sizeof(want), "node from-file ready on %s",
	    in_dir("file.sock"));
	check_winner((const char *const[]){ "--config", in_dir("agent.conf"),
	    NULL }, NULL, want);
	/* the environment beats the file */
	snprintf(want, sizeof(want), "node from-env ready on %s",
	    in_dir("env.sock"));
	check_winner((const char *const[]){ "--config", in_dir("agent.conf"),
	    NULL }, env, want);
	/* flags beat both (and may come before or after --config) */
	snprintf(want, sizeof(want), "node from-flag ready on %s",
	    in_dir("flag.sock"));
	check_winner((const char *const[]){ "--node", "from-flag", "--config",
	    in_dir("agent.conf"), "--socket", in_dir("flag.sock"), NULL }, env,
	    want);
	/* DISTKV_CONFIG names the file when --config does not */
	{
		char cenv[500];
		const char *const e2[] = { cenv, NULL };

		snprintf(cenv, sizeof(cenv), "DISTKV_CONFIG=%s",
		    in_dir("agent.conf"));
		snprintf(want, sizeof(want), "node from-file ready on %s",
		    in_dir("file.sock"));
		check_winner((const char *const[]){ NULL }, e2, want);
	}
}

/* ---- bad input: exit 2, a message naming the place, no agent ---- */

static void
expect_refused(const char *conf, const char *const *extra,
    const char *const *env, const char *msg)
{
	const char *args[32];
	int n = 0, rc;

	if (conf != NULL)
		write_file(in_dir("bad.conf"), conf);
	args[n++] = "--config";
	args[n++] = in_dir("bad.conf");
	args[n++] = "--socket";
	args[n++] = in_dir("bad.sock");
	for (size_t i = 0; extra != NULL && extra[i] != NULL; i++)
		args[n++] = extra[i];
	args[n] = NULL;
	rc = run(args, env);
	cr_assert(rc == 2, "exit %d, want 2 for '%s':\n%s", rc, msg,
	    read_all(in_dir("agent.err")));
	cr_assert(strstr(read_all(in_dir("agent.err")), msg) != NULL,
	    "want '%s':\n%s", msg, read_all(in_dir("agent.err")));
	cr_assert(access(in_dir("bad.sock"), F_OK) != 0,
	    "the agent started anyway");
}

Test(config, bad_file_input_names_file_line_and_key)
{
	char want[600], f[400];

	snprintf(f, sizeof(f), "%s", in_dir("bad.conf"));

#define WANT(fmt, ...) (snprintf(want, sizeof(want), fmt, __VA_ARGS__), want)
	/* unknown key, at its line */
	expect_refused("standalone: true\n\n# comment\nmax-requests: 10\n",
	    NULL, NULL, WANT("%s:4: unknown key 'max-requests'", f));
	/* a command-line-only option is no key */
	expect_refused("config: /x\n", NULL, NULL,
	    WANT("%s:1: unknown key 'config'", f));
	/* wrong types: a list, a mapping, a word for a flag */
	expect_refused("standalone: true\nmax-output: [1, 2]\n", NULL, NULL,
	    WANT("%s:2: max-output: a list, but it takes one value", f));
	expect_refused("standalone: true\njoin: {a: b}\n", NULL, NULL,
	    WANT("%s:2: join: a mapping, but it takes a value or a list", f));
	expect_refused("standalone: maybe\n", NULL, NULL,
	    WANT("%s:1: standalone: 'maybe' is not true or false", f));
	expect_refused("standalone: true\nsocket:\n", NULL, NULL,
	    WANT("%s:2: socket: no value", f));
	/* bad values */
	expect_refused("standalone: true\nmax-request: 12\n", NULL, NULL,
	    WANT("%s:2: max-request: '12' is not a whole number from 256 "
	    "to 1073741824", f));
	expect_refused("standalone: true\nclock: fast\n", NULL, NULL,
	    WANT("%s:2: clock: 'fast' is not a number of seconds", f));
	expect_refused("standalone: true\nsocket-mode: 999\n", NULL, NULL,
	    WANT("%s:2: socket-mode: '999' is not an octal file mode", f));
	expect_refused("standalone: true\nlog-level: loud\n", NULL, NULL,
	    WANT("%s:2: log-level: 'loud' is not one of: debug, info, warn, "
	    "error", f));
	expect_refused("standalone: true\nfsync: sometimes\n", NULL, NULL,
	    WANT("%s:2: fsync: 'sometimes' is not one of", f));
	expect_refused("standalone: true\nnode: \"\"\n", NULL, NULL,
	    WANT("%s:2: node: bad value '': a node name is 1 to 128", f));
	/* the same key twice; YAML that does not parse; not a mapping */
	expect_refused("standalone: true\nsocket: /a\nsocket: /b\n", NULL,
	    NULL, WANT("%s:3: socket: given twice (first on line 2)", f));
	expect_refused("standalone: true\njoin: [a\n", NULL, NULL,
	    WANT("%s:3: not valid YAML", f));
	expect_refused("- standalone\n", NULL, NULL,
	    WANT("%s:1: the file must be a mapping of option: value", f));
	expect_refused("standalone: true\n---\nsocket: /b\n", NULL, NULL,
	    WANT("%s:2: a second document", f));
	/* too many values of a list */
	{
		char big[4096] = "standalone: true\njoin:\n";

		for (int i = 0; i < 33; i++)
			snprintf(big + strlen(big), sizeof(big) - strlen(big),
			    "  - 10.0.0.%d:7946\n", i);
		expect_refused(big, NULL, NULL,
		    WANT("%s:35: join: at most 32 values", f));
	}
	/* a cross check names the options */
	expect_refused("standalone: true\nlog-target: syslog\nlog-file: /x\n",
	    NULL, NULL, "log-file and log-target syslog exclude each other");
#undef WANT
}

Test(config, bad_env_and_flag_values_name_their_source)
{
	expect_refused("standalone: true\n", NULL,
	    (const char *const[]){ "DISTKV_MAX_OUTPUT=lots", NULL },
	    "DISTKV_MAX_OUTPUT: 'lots' is not a whole number");
	expect_refused("standalone: true\n", NULL,
	    (const char *const[]){ "DISTKV_STANDALONE=perhaps", NULL },
	    "DISTKV_STANDALONE: 'perhaps' is not true or false");
	expect_refused("standalone: true\n", (const char *const[]){
	    "--ping-length", "1", NULL }, NULL,
	    "--ping-length: '1' is not a whole number from 2 to 16");
	expect_refused("standalone: true\n", (const char *const[]){
	    "--log-format", "xml", NULL }, NULL,
	    "--log-format: 'xml' is not one of: text, json");
	expect_refused("standalone: true\n", (const char *const[]){
	    "--no-such-option", NULL }, NULL,
	    "unknown option '--no-such-option'");
	/* an explicit bad value beats a good one below it: still refused */
	expect_refused("standalone: true\nmax-request: 4096\n", NULL,
	    (const char *const[]){ "DISTKV_MAX_REQUEST=-1", NULL },
	    "DISTKV_MAX_REQUEST: '-1' is not a whole number");
}

Test(config, unreadable_files_are_refused)
{
	const char *const none[] = { NULL };
	char env[500];

	/* --config naming a missing file, or a directory */
	expect_refused(NULL, (const char *const[]){ "--config",
	    in_dir("missing.conf"), NULL }, NULL, "cannot read the config "
	    "file");
	cr_assert(strstr(read_all(in_dir("agent.err")),
	    "missing.conf: No such file or directory") != NULL);
	expect_refused(NULL, (const char *const[]){ "--config", ag.dir, NULL },
	    NULL, "Is a directory");
	/* a file past 1 MiB is no config file */
	{
		FILE *f = fopen(in_dir("huge.conf"), "w");

		cr_assert_not_null(f);
		for (int i = 0; i < 40000; i++)
			fputs("# a comment line of some thirty bytes\n", f);
		cr_assert(fclose(f) == 0);
		expect_refused(NULL, (const char *const[]){ "--config",
		    in_dir("huge.conf"), NULL }, NULL, "is larger than 1048576 "
		    "bytes");
	}
	/* so does DISTKV_CONFIG */
	snprintf(env, sizeof(env), "DISTKV_CONFIG=%s", in_dir("gone.conf"));
	cr_assert(run((const char *const[]){ "--standalone", "--socket",
	    in_dir("s"), NULL }, (const char *const[]){ env, NULL }) == 2);
	cr_assert(strstr(read_all(in_dir("agent.err")), "gone.conf: No such "
	    "file or directory") != NULL, "%s", read_all(in_dir("agent.err")));
	/* an empty file is a valid one: the defaults */
	write_file(in_dir("empty.conf"), "# nothing set here\n");
	spawn((const char *const[]){ "--config", in_dir("empty.conf"),
	    "--standalone", "--no-shm", "--socket", in_dir("s"), NULL }, none);
	cr_assert(wait_log("ready on", 1), "%s", read_all(in_dir("agent.err")));
	cr_assert(harness_stop(&ag) == 0);
}

/* ---- the shipped example (dist/agent.conf) ---- */

/*
 * It holds every option of --help as a key (set or commented out), and
 * it starts a standalone node as it is (socket and state dir moved by
 * flags, which win).
 */
Test(config, shipped_example_is_complete_and_valid)
{
	char cmd[600], line[256], conf[400], example[256 * 1024];
	FILE *p, *f;
	size_t n;
	int opts = 0;

	snprintf(conf, sizeof(conf), "%s/dist/agent.conf", TOP_SRCDIR);
	cr_assert_not_null(f = fopen(conf, "r"), "%s", conf);
	n = fread(example, 1, sizeof(example) - 1, f);
	example[n] = '\0';
	fclose(f);
	snprintf(cmd, sizeof(cmd), "%s --help", harness_bin("distkv-agent"));
	cr_assert_not_null(p = popen(cmd, "r"));
	while (fgets(line, sizeof(line), p) != NULL) {
		char name[64], key[80], ckey[80];

		if (sscanf(line, "  --%63[a-z-]", name) != 1 &&
		    sscanf(line, "  -h, --%63[a-z-]", name) != 1)
			continue;
		if (strcmp(name, "help") == 0 || strcmp(name, "version") == 0 ||
		    strcmp(name, "config") == 0)
			continue;
		snprintf(key, sizeof(key), "\n%s:", name);
		snprintf(ckey, sizeof(ckey), "\n#%s:", name);
		cr_assert(strstr(example, key) != NULL ||
		    strstr(example, ckey) != NULL, "%s: no key %s", conf, name);
		opts++;
	}
	cr_assert(pclose(p) == 0);
	cr_assert(opts >= 45, "only %d options in --help", opts);

	spawn((const char *const[]){ "--config", conf, "--socket", in_dir("s"),
	    "--state-dir", in_dir("state"), "--no-shm", NULL }, NULL);
	cr_assert(wait_log("ready on", 1), "%s", read_all(in_dir("agent.err")));
	cr_assert(harness_stop(&ag) == 0);
}

/* ---- SIGHUP ---- */

static void
hup_and_wait(const char *conf, const char *needle, int n)
{
	write_file(in_dir("agent.conf"), conf);
	cr_assert(kill(ag.pid, SIGHUP) == 0);
	cr_assert(wait_log(needle, n), "no '%s' (%d) after SIGHUP:\n%s",
	    needle, n, read_all(in_dir("agent.err")));
}

Test(config, sighup_changes_the_log_level_and_names_what_needs_a_restart)
{
	char base[600], conf[800];
	const char *log;

	snprintf(base, sizeof(base), "standalone: true\nno-shm: true\n"
	    "socket: %s\n", in_dir("s"));
	snprintf(conf, sizeof(conf), "%slog-level: warn\nserf-rpc: "
	    "127.0.0.1:1\n", base);
	write_file(in_dir("agent.conf"), conf);
	spawn((const char *const[]){ "--config", in_dir("agent.conf"), NULL },
	    NULL);
	{
		long long deadline = harness_now_ms() + WAIT_MS;
		int fd;

		while ((fd = harness_connect(in_dir("s"))) < 0) {
			cr_assert(harness_now_ms() < deadline, "no socket:\n%s",
			    read_all(in_dir("agent.err")));
			usleep(10000);
		}
		close(fd);
	}
	/* at warn, the start's info lines were not written */
	cr_assert(strstr(read_all(in_dir("agent.err")), "ready on") == NULL);

	/* a change that needs a restart is a warning; the reload's own
	 * info line is not written at warn */
	snprintf(conf, sizeof(conf), "%slog-level: warn\nserf-rpc: "
	    "127.0.0.1:2\n", base);
	hup_and_wait(conf, "SIGHUP: serf-rpc changed in the config file; "
	    "needs a restart", 1);
	snprintf(conf, sizeof(conf), "%slog-level: warn\nserf-rpc: "
	    "127.0.0.1:3\n", base);
	hup_and_wait(conf, "SIGHUP: serf-rpc changed", 2);
	/* both reloads are over: neither logged at info */
	cr_assert(strstr(read_all(in_dir("agent.err")), "SIGHUP: reloaded")
	    == NULL, "%s", read_all(in_dir("agent.err")));

	/* info again: the reload says so, at info */
	snprintf(conf, sizeof(conf), "%slog-level: info\nserf-rpc: "
	    "127.0.0.1:3\n", base);
	hup_and_wait(conf, "SIGHUP: reloaded", 1);
	log = read_all(in_dir("agent.err"));
	cr_assert(strstr(log, "SIGHUP: log-level is now info") != NULL, "%s",
	    log);
	/* the agent still runs with the first serf-rpc: every reload
	 * says so again */
	cr_assert(count(log, "SIGHUP: serf-rpc changed") == 3, "%s", log);

	/* a broken file changes nothing and the agent goes on */
	hup_and_wait("standalone: [\n", "the running configuration is kept", 1);
	cr_assert(waitpid(ag.pid, NULL, WNOHANG) == 0, "SIGHUP stopped it");
	cr_assert(harness_stop(&ag) == 0);
}

/* ---- logs ---- */

/* Every line of dir/agent.err is one JSON object with time, level and
 * message; returns the number of lines. */
static int
check_json_lines(const char *text)
{
	char *copy = strdup(text), *save = NULL;
	int n = 0;

	cr_assert_not_null(copy);
	for (char *l = strtok_r(copy, "\n", &save); l != NULL;
	    l = strtok_r(NULL, "\n", &save)) {
		json_error_t e;
		json_t *o = json_loads(l, 0, &e);

		cr_assert(o != NULL && json_is_object(o), "not JSON: %s (%s)",
		    l, o == NULL ? e.text : "not an object");
		cr_assert(json_is_string(json_object_get(o, "time")), "%s", l);
		cr_assert(json_is_string(json_object_get(o, "level")), "%s", l);
		cr_assert(json_is_string(json_object_get(o, "message")), "%s",
		    l);
		json_decref(o);
		n++;
	}
	free(copy);
	return n;
}

Test(config, json_log_lines_parse_with_fields)
{
	char conf[600];
	const char *log;

	/* a node name with a quote, a backslash and a newline-free UTF-8
	 * character must come out as valid JSON */
	snprintf(conf, sizeof(conf), "standalone: true\nno-shm: true\n"
	    "log-format: json\nnode: \"q\\\"b\\\\s\xc3\xa9\"\nsocket: %s\n",
	    in_dir("s"));
	write_file(in_dir("agent.conf"), conf);
	spawn((const char *const[]){ "--config", in_dir("agent.conf"), NULL },
	    NULL);
	cr_assert(wait_log("ready on", 1), "%s", read_all(in_dir("agent.err")));
	/* a SIGHUP line carries structured fields */
	snprintf(conf, sizeof(conf), "standalone: true\nno-shm: true\n"
	    "log-format: json\nnode: \"q\\\"b\\\\s\xc3\xa9\"\nsocket: %s\n"
	    "max-output: 65536\n", in_dir("s"));
	hup_and_wait(conf, "SIGHUP: reloaded", 1);
	cr_assert(harness_stop(&ag) == 0);
	log = read_all(in_dir("agent.err"));
	cr_assert(check_json_lines(log) >= 4, "%s", log);
	cr_assert(strstr(log, "\"message\":\"node q\\\"b\\\\s\xc3\xa9 ready "
	    "on ") != NULL, "%s", log);
	cr_assert(strstr(log, "\"key\":\"max-output\",\"value\":\"65536\"")
	    != NULL, "%s", log);
}

Test(config, text_to_json_on_sighup)
{
	char conf[600];
	const char *log, *json;

	snprintf(conf, sizeof(conf), "standalone: true\nno-shm: true\n"
	    "socket: %s\n", in_dir("s"));
	write_file(in_dir("agent.conf"), conf);
	spawn((const char *const[]){ "--config", in_dir("agent.conf"), NULL },
	    NULL);
	cr_assert(wait_log("ready on", 1), "%s", read_all(in_dir("agent.err")));
	strcat(conf, "log-format: json\n");
	hup_and_wait(conf, "\"message\":\"SIGHUP: reloaded", 1);
	log = read_all(in_dir("agent.err"));
	json = strstr(log, "\n{");
	cr_assert_not_null(json, "%s", log);
	cr_assert(check_json_lines(json + 1) >= 1);
	cr_assert(harness_stop(&ag) == 0);
}

Test(config, journal_without_a_journal_falls_back_to_stderr)
{
	if (access("/run/systemd/journal/socket", F_OK) == 0)
		cr_skip_test("a journal runs here: lines go there");
	spawn((const char *const[]){ "--standalone", "--no-shm", "--socket",
	    in_dir("s"), "--log-target", "journal", NULL }, NULL);
	cr_assert(wait_log("ready on", 1), "%s", read_all(in_dir("agent.err")));
	cr_assert(strstr(read_all(in_dir("agent.err")), "--log-target journal: "
	    "no journal here") != NULL, "%s", read_all(in_dir("agent.err")));
	cr_assert(harness_stop(&ag) == 0);
}

/* ---- an idle cluster is quiet at info ---- */

/*
 * Two nodes at debug, as JSON: their ping rounds go on (collisions and
 * recovery rounds are logged at debug), but no info line speaks of
 * pings or recovery rounds.  The wait is for a debug recovery line: the
 * chatter must have happened for the check to mean anything.  The other
 * node's arrival is at info.
 */
Test(config, idle_cluster_keeps_ping_and_recovery_at_debug, .timeout = 240)
{
	struct cluster cl;
	char path[400], *copy, *save = NULL;
	long long deadline;
	int info = 0, debug = 0;

	cr_assert(cluster_init(&cl, 2, IPBASE) == 0, "no free ports");
	cl.log_level = "debug";
	cluster_node_args(&cl, 0, "--log-format", "json", NULL);
	cluster_node_args(&cl, 1, "--log-format", "json", NULL);
	cr_assert(cluster_start(&cl) == 0, "%s", cluster_diag(&cl));
	deadline = harness_now_ms() + 60000;
	while (cluster_log_count(&cl, 0, "recovery: done") +
	    cluster_log_count(&cl, 1, "recovery: done") < 1) {
		cr_assert(harness_now_ms() < deadline, "no recovery round in "
		    "60 s\n%s", cluster_diag(&cl));
		usleep(50000);
	}
	/* Serf hands member events on 1-3 s late (serf-notes.md) */
	for (int i = 0; i < 2; i++)
		while (cluster_log_count(&cl, i, "Serf lists 2 members") +
		    cluster_log_count(&cl, i, " joined (alive") < 1) {
			cr_assert(harness_now_ms() < deadline, "node %d: no "
			    "member list of 2 nor a join in 60 s\n%s", i,
			    cluster_diag(&cl));
			usleep(50000);
		}
	cr_assert(cluster_stop(&cl) == 0, "%s", cluster_diag(&cl));
	for (int i = 0; i < 2; i++) {
		/* what an operator acts on is there: the other node, either
		 * in the first member list or as a join */
		bool other = false;

		snprintf(path, sizeof(path), "%s/agent.err", cl.node[i].h.dir);
		copy = strdup(read_all(path));
		for (char *l = strtok_r(copy, "\n", &save); l != NULL;
		    l = strtok_r(NULL, "\n", &save)) {
			json_t *o = json_loads(l, 0, NULL);
			const char *lvl, *msg;

			cr_assert_not_null(o, "not JSON: %s", l);
			lvl = json_string_value(json_object_get(o, "level"));
			msg = json_string_value(json_object_get(o, "message"));
			cr_assert(lvl != NULL && msg != NULL, "%s", l);
			if (strcmp(lvl, "debug") == 0)
				debug++;
			if (strcmp(lvl, "info") == 0) {
				info++;
				cr_assert(strstr(msg, "ping") == NULL &&
				    strstr(msg, "recovery step") == NULL &&
				    strstr(msg, "recovery: started") == NULL &&
				    strstr(msg, "recovery: done") == NULL,
				    "chatter at info: %s", l);
				if (strstr(msg, "Serf lists 2 members") !=
				    NULL || (strncmp(msg, "node ", 5) == 0 &&
				    strstr(msg, " joined (alive") != NULL))
					other = true;
			}
			json_decref(o);
		}
		free(copy);
		cr_assert(other, "node %d logged no member list of 2 nor a "
		    "join at info\n%s", i, read_all(path));
	}
	cr_assert(debug > 0 && info > 0);
	cluster_cleanup(&cl);
}
