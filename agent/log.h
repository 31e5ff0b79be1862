/*
 * log: diagnostics of the agent on stderr (not the change log; that is
 * persist.h).  One global level, set once by main.
 */
#ifndef DISTKV_LOG_H
#define DISTKV_LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

void log_set_level(enum log_level l);
/*
 * Send diagnostics to path (appended, created 0640) instead of stderr, or
 * reopen it (after logrotate moved it away): the file becomes fd 2, so
 * whatever else writes to stderr lands there too.  Returns 0 or -errno
 * (stderr is then left as it was).
 */
int log_open_file(const char *path);
/* Parse "debug", "info", "warn", "error"; -1 if unknown. */
int log_parse_level(const char *s);

void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* log_error, then exit(1). */
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
