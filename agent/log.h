/*
 * log: diagnostics of the agent (not the change log; that is persist.h).
 * One global level, format and target, set by main at start and changed
 * by its SIGHUP handler: the agent is one thread, so no locking.
 *
 * A line has a time, a level, a message and optional structured fields
 * (log_fields).  As text it is "TIME distkv-agent LEVEL: MESSAGE k=v ...";
 * as JSON one object per line {"time", "level", "message", fields...};
 * to the journal the message, PRIORITY and the fields as DISTKV_KEY=.
 * Level policy: info is for what an operator acts on (start, stop, ready,
 * reloads, a node that lost its data, a download, a catch-up); routine
 * protocol traffic (pings, recovery rounds that found nothing) is debug.
 */
#ifndef DISTKV_LOG_H
#define DISTKV_LOG_H

#include <stddef.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };
enum log_format { LOG_FORMAT_TEXT, LOG_FORMAT_JSON };
/* stderr: standard error, or the --log-file that replaced it (fd 2) */
enum log_target { LOG_TARGET_STDERR, LOG_TARGET_SYSLOG, LOG_TARGET_JOURNAL };

/* A structured field of a line; value is any text (escaped as needed). */
struct log_field {
	const char *key;	/* [a-z0-9_]: also a journal field name */
	const char *value;
};

void log_set_level(enum log_level l);
void log_set_format(enum log_format f);
/*
 * syslog: openlog(3) with LOG_DAEMON; journal: sd_journal_sendv, and a
 * line the journal refuses goes to stderr instead.  Returns 0, or -errno
 * when there is no journal to write to (the target is then unchanged).
 */
int log_set_target(enum log_target t);
/*
 * Send diagnostics to path (appended, created 0640) instead of stderr, or
 * reopen it (after logrotate moved it away): the file becomes fd 2, so
 * whatever else writes to stderr lands there too.  Returns 0 or -errno
 * (stderr is then left as it was).
 */
int log_open_file(const char *path);
/* Parse "debug", "info", "warn", "error"; -1 if unknown. */
int log_parse_level(const char *s);
/* The names of the levels, indexed by enum log_level. */
extern const char *const log_level_names[4];

void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A line with nf structured fields (f may be NULL when nf is 0). */
void log_fields(enum log_level l, const struct log_field *f, size_t nf,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* log_error, then exit(1). */
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
