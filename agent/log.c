/* log: see log.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/uio.h>

/*
 * <syslog.h> (also pulled in by sd-journal.h) defines LOG_DEBUG and
 * LOG_INFO as macros, which would rewrite our enum: take its priorities
 * first, then drop the two names before log.h.
 */
#define SD_JOURNAL_SUPPRESS_LOCATION
#include <syslog.h>
#include <systemd/sd-journal.h>

static const int syslog_prio[] = { LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR };
#undef LOG_DEBUG
#undef LOG_INFO

#include "log.h"

/* where journald listens for sd_journal_sendv (native protocol) */
#define JOURNAL_SOCKET "/run/systemd/journal/socket"
/* room for a message past which it is cut (a peer's error text, a path) */
#define LOG_MAX_MESSAGE 8192

const char *const log_level_names[4] = { "debug", "info", "warn", "error" };

static enum log_level log_level = LOG_INFO;
static enum log_format log_format = LOG_FORMAT_TEXT;
static enum log_target log_target = LOG_TARGET_STDERR;

/* A growable line; on allocation failure it keeps what it has. */
struct line {
	char *p;
	size_t n, cap;
	bool oom;
};

void
log_set_level(enum log_level l)
{
	log_level = l;
}

void
log_set_format(enum log_format f)
{
	log_format = f;
}

int
log_set_target(enum log_target t)
{
	/* sd_journal_sendv drops lines silently when there is no journal */
	if (t == LOG_TARGET_JOURNAL && access(JOURNAL_SOCKET, W_OK) != 0)
		return -errno;
	if (t == LOG_TARGET_SYSLOG && log_target != LOG_TARGET_SYSLOG)
		openlog("distkv-agent", LOG_PID | LOG_NDELAY, LOG_DAEMON);
	else if (t != LOG_TARGET_SYSLOG && log_target == LOG_TARGET_SYSLOG)
		closelog();
	log_target = t;
	return 0;
}

int
log_open_file(const char *path)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);

	if (fd < 0)
		return -errno;
	fflush(stderr);
	if (dup2(fd, STDERR_FILENO) < 0) {
		int e = errno;

		close(fd);
		return -e;
	}
	close(fd);
	return 0;
}

int
log_parse_level(const char *s)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(s, log_level_names[i]) == 0)
			return i;
	return -1;
}

static void
line_add(struct line *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->n + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *p;

		while (cap < b->n + n + 1)
			cap *= 2;
		if ((p = realloc(b->p, cap)) == NULL) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = '\0';
}

static void
line_str(struct line *b, const char *s)
{
	line_add(b, s, strlen(s));
}

/*
 * Length of the valid UTF-8 sequence at s (at most n bytes), or 0 if the
 * bytes there are not one: overlong forms, surrogates and code points past
 * U+10FFFF included.
 */
static size_t
utf8_seq(const unsigned char *s, size_t n)
{
	size_t len;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4, cp = s[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return len;
}

/* s as a JSON string: quotes, escapes, and U+FFFD for bytes that are not
 * UTF-8 (a peer's error text may be anything). */
static void
line_json_str(struct line *b, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t n = strlen(str);
	char esc[8];

	line_add(b, "\"", 1);
	for (size_t i = 0; i < n;) {
		size_t k;

		if (s[i] == '"' || s[i] == '\\') {
			esc[0] = '\\';
			esc[1] = (char)s[i];
			line_add(b, esc, 2);
			i++;
		} else if (s[i] < 0x20 || s[i] == 0x7f) {
			snprintf(esc, sizeof(esc), "\\u%04x", s[i]);
			line_add(b, esc, 6);
			i++;
		} else if ((k = utf8_seq(s + i, n - i)) == 0) {
			line_str(b, "\\ufffd");
			i++;
		} else {
			line_add(b, (const char *)s + i, k);
			i += k;
		}
	}
	line_add(b, "\"", 1);
}

/* A text line's message or field value: one line, whatever it holds. */
static void
line_text(struct line *b, const char *s)
{
	for (const char *p = s; *p != '\0'; p++)
		line_add(b, *p == '\n' || *p == '\r' ? " " : p, 1);
}

static void
format_time(char *when, size_t len)
{
	struct timespec ts;
	struct tm tm;
	char sec[24];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(sec, sizeof(sec), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(when, len, "%s.%03ldZ", sec, ts.tv_nsec / 1000000);
}

/* The line of the text or JSON format; with_time false for syslog, which
 * stamps its own. */
static void
format_line(struct line *b, enum log_level l, const char *msg,
    const struct log_field *f, size_t nf, bool with_time)
{
	char when[40];

	format_time(when, sizeof(when));
	if (log_format == LOG_FORMAT_JSON) {
		line_str(b, "{");
		if (with_time) {
			line_str(b, "\"time\":\"");
			line_str(b, when);
			line_str(b, "\",");
		}
		line_str(b, "\"level\":\"");
		line_str(b, log_level_names[l]);
		line_str(b, "\",\"message\":");
		line_json_str(b, msg);
		for (size_t i = 0; i < nf; i++) {
			line_str(b, ",");
			line_json_str(b, f[i].key);
			line_str(b, ":");
			line_json_str(b, f[i].value != NULL ? f[i].value : "");
		}
		line_str(b, "}");
		return;
	}
	if (with_time) {
		line_str(b, when);
		line_str(b, " distkv-agent ");
		line_str(b, log_level_names[l]);
		line_str(b, ": ");
	}
	line_text(b, msg);
	for (size_t i = 0; i < nf; i++) {
		line_str(b, " ");
		line_str(b, f[i].key);
		line_str(b, "=");
		line_text(b, f[i].value != NULL ? f[i].value : "");
	}
}

static void
emit_stderr(enum log_level l, const char *msg, const struct log_field *f,
    size_t nf)
{
	struct line b = { 0 };

	format_line(&b, l, msg, f, nf, true);
	line_str(&b, "\n");
	if (b.oom || b.p == NULL)
		fprintf(stderr, "distkv-agent %s: %s\n", log_level_names[l],
		    msg);
	else {
		/* one write: lines of concurrent writers to the file stay
		 * whole */
		fflush(stderr);
		if (write(STDERR_FILENO, b.p, b.n) < 0) {
			/* nowhere left to say it */
		}
	}
	free(b.p);
}

/* Journal field names: DISTKV_ and the key in upper case. */
static int
emit_journal(enum log_level l, const char *msg, const struct log_field *f,
    size_t nf)
{
	struct iovec iov[3 + 16];
	char *s[3 + 16];
	size_t n = 0;
	int rc = -ENOMEM;

	if (nf > 16)
		nf = 16;
	if (asprintf(&s[n++], "MESSAGE=%s", msg) < 0 ||
	    asprintf(&s[n++], "PRIORITY=%d", syslog_prio[l]) < 0 ||
	    asprintf(&s[n++], "SYSLOG_IDENTIFIER=distkv-agent") < 0) {
		n--;
		goto out;
	}
	for (size_t i = 0; i < nf; i++) {
		if (asprintf(&s[n++], "DISTKV_%s=%s", f[i].key,
		    f[i].value != NULL ? f[i].value : "") < 0) {
			n--;
			goto out;
		}
		for (char *p = s[n - 1] + 7; *p != '='; p++)
			if (*p >= 'a' && *p <= 'z')
				*p = (char)(*p - 'a' + 'A');
			else if (!((*p >= 'A' && *p <= 'Z') ||
			    (*p >= '0' && *p <= '9')))
				*p = '_';
	}
	for (size_t i = 0; i < n; i++) {
		iov[i].iov_base = s[i];
		iov[i].iov_len = strlen(s[i]);
	}
	rc = sd_journal_sendv(iov, (int)n);
out:
	for (size_t i = 0; i < n; i++)
		free(s[i]);
	return rc;
}

static void
log_emit(enum log_level l, const struct log_field *f, size_t nf,
    const char *fmt, va_list ap)
{
	char msg[LOG_MAX_MESSAGE];
	struct line b = { 0 };
	int n;

	if (l < log_level || l > LOG_ERROR)
		return;
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (n >= (int)sizeof(msg))
		memcpy(msg + sizeof(msg) - 4, "...", 4);
	switch (log_target) {
	case LOG_TARGET_SYSLOG:
		format_line(&b, l, msg, f, nf, false);
		syslog(syslog_prio[l], "%s", b.p != NULL && !b.oom ? b.p : msg);
		free(b.p);
		break;
	case LOG_TARGET_JOURNAL:
		/* a journal that refuses the line: stderr, not lost */
		if (emit_journal(l, msg, f, nf) == 0)
			break;
		/* FALLTHROUGH */
	case LOG_TARGET_STDERR:
		emit_stderr(l, msg, f, nf);
		break;
	}
}

#define LOG_FN(name, level)				\
void							\
name(const char *fmt, ...)				\
{							\
	va_list ap;					\
	va_start(ap, fmt);				\
	log_emit(level, NULL, 0, fmt, ap);		\
	va_end(ap);					\
}
LOG_FN(log_debug, LOG_DEBUG)
LOG_FN(log_info, LOG_INFO)
LOG_FN(log_warn, LOG_WARN)
LOG_FN(log_error, LOG_ERROR)

void
log_fields(enum log_level l, const struct log_field *f, size_t nf,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emit(l, f, nf, fmt, ap);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emit(LOG_ERROR, NULL, 0, fmt, ap);
	va_end(ap);
	exit(1);
}
