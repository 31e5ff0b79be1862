/* persist: see persist.h. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>
#include <xxhash.h>

#include "agent.h"
#include "bigtab.h"
#include "log.h"
#include "persist.h"
#include "proto.h"

#define SNAPSHOT_NAME "snapshot.dkv"
#define LOG_NAME "changes.dkv"
#define LOCK_NAME "lock"
/* Chain links kept in snapshot records (spec §2.8: 99; ours are shorter). */
#define SNAPSHOT_CHAIN CHAIN_CAP

/*
 * Preallocation step of the state dir's change log.  An fdatasync after
 * an append that grows the file must also commit the new size (a journal
 * commit on ext4); inside space allocated beforehand it need not, which
 * took its cost from about 160 to 110 us on the development VM.  etcd's
 * write-ahead log does the same (64 MiB segments).  A step costs one
 * size commit per 1 MiB of records, and little memory where the state
 * dir is on tmpfs (which fills preallocated space with pages).
 */
#define LOG_PREALLOC ((off_t)1 << 20)
/* The unit a disk writes whole: a crash tears a write at these offsets. */
#define LOG_SECTOR 512

/* An append-only framed file: records are packed into buf and written and
 * synced by logwriter_sync, so one fsync covers a whole loop iteration. */
struct logwriter {
	int fd;
	char *path;
	msgpack_sbuffer buf;
	bool unsynced;		/* written since the last fsync */
	bool prealloc;		/* grow the file ahead of the records */
	off_t end;		/* where the next record goes */
	off_t alloc;		/* the file's size: end, or more if prealloc */
};

struct persist {
	char *dir;
	int lock_fd;
	int failed;		/* -errno of a failed log write, sticky */
	struct logwriter log;
	uint64_t since_snapshot;
	uint64_t snapshots;		/* persist_get_stats */
	double snapshot_secs;
	ev_timer timer;
	struct agent *a;
};

/* ---- files the agent owns ---- */

static bool
same_file(const struct stat *st, const char *path)
{
	struct stat o;

	return path != NULL && stat(path, &o) == 0 && o.st_dev == st->st_dev &&
	    o.st_ino == st->st_ino;
}

bool
persist_is_own_file(const struct agent *a, const char *path)
{
	static const char *const owned[] = { SNAPSHOT_NAME, LOG_NAME,
	    LOCK_NAME };
	char dcopy[PATH_MAX], bcopy[PATH_MAX], dreal[PATH_MAX], sreal[PATH_MAX];
	const char *base;
	struct stat st;

	if (strlen(path) >= sizeof(dcopy))
		return true;
	strcpy(dcopy, path);
	strcpy(bcopy, path);
	base = basename(bcopy);
	/* by name in the state dir, temp files included, even if absent */
	if (a->cfg.state_dir != NULL &&
	    realpath(dirname(dcopy), dreal) != NULL &&
	    realpath(a->cfg.state_dir, sreal) != NULL &&
	    strcmp(dreal, sreal) == 0)
		for (size_t i = 0; i < sizeof(owned) / sizeof(owned[0]); i++) {
			size_t n = strlen(owned[i]);

			if (strncmp(base, owned[i], n) == 0 &&
			    (base[n] == '\0' || base[n] == '.'))
				return true;
		}
	/* by identity: links and other names of the same files */
	if (stat(path, &st) != 0)
		return false;
	if (a->persist != NULL) {
		struct stat o;

		if ((fstat(a->persist->lock_fd, &o) == 0 &&
		    o.st_dev == st.st_dev && o.st_ino == st.st_ino) ||
		    (a->persist->log.fd >= 0 && fstat(a->persist->log.fd,
		    &o) == 0 && o.st_dev == st.st_dev && o.st_ino == st.st_ino))
			return true;
	}
	return same_file(&st, a->cfg.socket_path) ||
	    same_file(&st, a->cfg.shm_path);
}

/* ---- framing ---- */

static void
put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static uint32_t
get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[3] << 24;
}

/* Frame the record that occupies sb->data[start..] (8 header bytes were
 * reserved at start). */
static void
frame_finish(msgpack_sbuffer *sb, size_t start)
{
	uint8_t *h = (uint8_t *)sb->data + start;
	size_t len = sb->size - start - 8;

	put_le32(h, (uint32_t)len);
	put_le32(h + 4, XXH32(h + 8, len, 0));
}

static size_t
frame_begin(msgpack_sbuffer *sb)
{
	size_t start = sb->size;
	static const char zero[8];

	msgpack_sbuffer_write(sb, zero, 8);
	return start;
}

/* len bytes at offset at of fd (at < 0: at the file offset). */
static int
write_all_at(int fd, const void *p, size_t len, off_t at)
{
	const char *c = p;

	while (len > 0) {
		ssize_t n = at < 0 ? write(fd, c, len) : pwrite(fd, c, len, at);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		c += n;
		len -= (size_t)n;
		if (at >= 0)
			at += n;
	}
	return 0;
}

static int
write_all(int fd, const void *p, size_t len)
{
	return write_all_at(fd, p, len, -1);
}

/* ---- record packing ---- */

static void
pack_key(msgpack_packer *pk, const char *k)
{
	msgpack_pack_str_with_body(pk, k, strlen(k));
}

static void
pack_raw_value(msgpack_sbuffer *sb, msgpack_packer *pk, const struct entry *e)
{
	if (!entry_has_value(e))
		msgpack_pack_nil(pk);
	else
		msgpack_sbuffer_write(sb, (const char *)entry_value(e),
		    entry_value_len(e));
}

static void
pack_state_record(struct agent *a, msgpack_packer *pk)
{
	msgpack_pack_map(pk, 2);
	pack_key(pk, "nodes");
	agent_pack_nodes(a, pk);
	pack_key(pk, "known");
	agent_pack_ranges(a, pk, AGENT_KNOWN);
}

/* A change record: chain fields flat, full path (spec §2.8 log). */
static void
pack_change_record(struct agent *a, msgpack_sbuffer *sb, const struct entry *e)
{
	msgpack_packer pk;
	size_t start = frame_begin(sb);

	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	agent_pack_change(a, &pk, e);
	frame_finish(sb, start);
}

/* Snapshot into sb: magic, state record, every entry in pre-order. */
static void
pack_snapshot(struct agent *a, msgpack_sbuffer *sb, bool magic)
{
	struct tree_walk w;
	const struct entry *last = a->tree.root;
	struct entry *e;
	msgpack_packer pk;
	size_t start;

	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	if (magic)
		msgpack_sbuffer_write(sb, PERSIST_MAGIC, PERSIST_MAGIC_LEN);
	start = frame_begin(sb);
	pack_state_record(a, &pk);
	frame_finish(sb, start);
	tree_walk_init(&w, a->tree.root, -1);
	while ((e = tree_walk_next(&w)) != NULL) {
		uint32_t d = tree_common_depth(a->tree.root, last, e);

		start = frame_begin(sb);
		msgpack_pack_map(&pk, 4 + (e->chain->n > 0));
		pack_key(&pk, "path");
		tree_pack_path(&pk, a->tree.root, e, d);
		pack_key(&pk, "depth");
		msgpack_pack_uint32(&pk, d);
		pack_key(&pk, "value");
		pack_raw_value(sb, &pk, e);
		pack_key(&pk, "tock");
		msgpack_pack_uint64(&pk, e->tock);
		if (e->chain->n > 0) {
			pack_key(&pk, "chain");
			chain_pack(&pk, e->chain, SNAPSHOT_CHAIN);
		}
		frame_finish(sb, start);
		last = e;
	}
}

/* True if a whole, valid record starts at buf[0..len). */
static bool
frame_valid_at(const uint8_t *buf, size_t len)
{
	size_t rlen, objlen;

	if (len < 9)
		return false;
	rlen = get_le32(buf);
	if (rlen == 0 || rlen > len - 8 || rlen > PERSIST_MAX_RECORD ||
	    (buf[8] & 0xf0) != 0x80)	/* records are small maps */
		return false;
	return XXH32(buf + 8, rlen, 0) == get_le32(buf + 4) &&
	    proto_scan(buf + 8, rlen, PROTO_MAX_NESTING, &objlen) == 0 &&
	    objlen == rlen;
}

/*
 * A bad record at offset bad: a crash can only tear the end of the file,
 * so if any valid record follows it, the damage is in the middle and
 * cutting would silently drop acknowledged changes.
 */
static bool
damage_is_mid_file(const char *path, off_t bad)
{
	uint8_t *buf;
	size_t len;
	bool mid = false;
	FILE *f = fopen(path, "rb");
	long end;

	if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (end = ftell(f)) < 0 ||
	    end <= bad + 1) {
		if (f != NULL)
			fclose(f);
		return false;
	}
	len = (size_t)(end - bad - 1);
	if ((buf = malloc(len)) == NULL ||
	    fseek(f, bad + 1, SEEK_SET) != 0 || fread(buf, 1, len, f) != len) {
		free(buf);
		fclose(f);
		return true;	/* cannot tell: assume the worst */
	}
	for (size_t i = 0; i < len && !mid; i++)
		mid = frame_valid_at(buf + i, len - i);
	free(buf);
	fclose(f);
	return mid;
}

static bool
all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != 0)
			return false;
	return true;
}

/*
 * True if buf[from..to), cut at sector boundaries of the file, has a
 * piece that is all zeros: what a write into preallocated space leaves
 * when a crash kept some of its sectors and not others (the rule etcd's
 * write-ahead log uses to tell a torn write from damage).
 */
static bool
has_zero_sector(const uint8_t *buf, size_t from, size_t to)
{
	while (from < to) {
		size_t next = (from / LOG_SECTOR + 1) * LOG_SECTOR;

		if (next > to)
			next = to;
		if (all_zero(buf + from, next - from))
			return true;
		from = next;
	}
	return false;
}

/*
 * The whole file f into *buf, *len bytes, in *cap bytes from
 * bigtab_calloc (free with bigtab_free(*buf, 1, *cap)).  0 or -errno.
 * A big file's buffer is asked for in huge pages: in 4 KiB pages a
 * 225 MB snapshot took 55,000 page faults to read.
 */
static int
read_whole(FILE *f, uint8_t **buf, size_t *len, size_t *cap)
{
	size_t c = 1 << 16, n = 0, r;
	struct stat st;
	uint8_t *b, *nb;

	/* the size is a hint: the file may still grow or shrink */
	if (fstat(fileno(f), &st) == 0 && st.st_size > 0)
		c = (size_t)st.st_size + 1;
	if ((b = bigtab_calloc(1, c)) == NULL)
		return -ENOMEM;
	for (;;) {
		if (n == c) {
			if (c > SIZE_MAX / 2 ||
			    (nb = bigtab_calloc(1, c * 2)) == NULL) {
				bigtab_free(b, 1, c);
				return -ENOMEM;
			}
			memcpy(nb, b, n);
			bigtab_free(b, 1, c);
			b = nb;
			c *= 2;
		}
		if ((r = fread(b + n, 1, c - n, f)) == 0)
			break;
		n += r;
	}
	if (ferror(f)) {
		bigtab_free(b, 1, c);
		return -EIO;
	}
	*buf = b;
	*len = n;
	*cap = c;
	return 0;
}

/* Records framed in buf[0..len) before the first bad header: what the
 * tree's index is sized for (entries are at most that many). */
static size_t
count_frames(const uint8_t *buf, size_t len)
{
	size_t off = 0, n = 0, rlen;

	while (len - off >= 8 && (rlen = get_le32(buf + off)) != 0 &&
	    rlen <= PERSIST_MAX_RECORD && rlen <= len - off - 8) {
		off += 8 + rlen;
		n++;
	}
	return n;
}

/*
 * Read the records of a framed file and apply them.  *good_end is the
 * offset after the last whole, valid record; *torn tells whether bytes
 * follow it (a torn tail, or garbage).  The file is read whole first,
 * then applied as one bulk load (agent_bulk_begin).
 *
 * log_tail: a change log, written into preallocated space.  Zeros after
 * the records are that space, not damage.  A crash during the last
 * write, which nobody was told is durable, leaves it with sectors of
 * zeros: a record with a zero header, or one whose checksum fails and
 * that has a sector of zeros, is where such a write begins.  The rest
 * of the file belongs to that write, so valid records after it (sectors
 * of it the crash kept) do not make the damage "mid-file".
 */
static int
load_framed(struct agent *a, const char *path, bool log_tail,
    off_t *good_end, bool *torn)
{
	bool cut_write = false;	/* a write cut by a crash starts at good_end */
	struct record_ctx ctx = { a->tree.root, a->tree.root };
	uint8_t *buf = NULL;
	size_t len, off, cap;
	msgpack_zone zone;
	uint64_t nrec = 0;
	int rc = 0, rc2;
	FILE *f;

	*good_end = 0;
	*torn = false;
	if ((f = fopen(path, "rb")) == NULL)
		return -errno;
	rc = read_whole(f, &buf, &len, &cap);
	fclose(f);
	if (rc != 0)
		return rc;
	if (len < PERSIST_MAGIC_LEN ||
	    memcmp(buf, PERSIST_MAGIC, PERSIST_MAGIC_LEN) != 0) {
		/* what a crash between creating and writing it leaves */
		rc = len < PERSIST_MAGIC_LEN &&
		    memcmp(buf, PERSIST_MAGIC, len) == 0 ? -ENODATA : -EINVAL;
		if (rc == -EINVAL)
			log_error("%s: not a distkv file (bad magic)", path);
		bigtab_free(buf, 1, cap);
		return rc;
	}
	off = PERSIST_MAGIC_LEN;
	*good_end = (off_t)off;
	if ((rc = agent_bulk_begin(a, count_frames(buf + off,
	    len - off))) != 0) {
		bigtab_free(buf, 1, cap);
		return rc;
	}
	msgpack_zone_init(&zone, 4096);
	while (off < len) {
		const uint8_t *rec = buf + off + 8;
		size_t rlen;
		msgpack_object obj;
		const char *why;
		bool applied;

		if (len - off < 8 || (rlen = get_le32(buf + off)) == 0) {
			if (log_tail && all_zero(buf + off, len - off))
				break;		/* the preallocated space */
			*torn = true;
			cut_write = log_tail && len - off >= 8;
			break;
		}
		if (rlen > PERSIST_MAX_RECORD) {
			*torn = true;
			break;
		}
		if (rlen > len - off - 8) {
			*torn = true;	/* cut short by a crash */
			break;
		}
		/* proto_unpack checks all proto_scan does (the whole record
		 * one object, nesting, no 0xc1): a second pass cost 15% */
		if (XXH32(rec, rlen, 0) != get_le32(buf + off + 4) ||
		    proto_unpack(rec, rlen, &zone, &obj) != 0) {
			if (log_tail && has_zero_sector(buf, off,
			    off + 8 + rlen)) {
				*torn = cut_write = true;
				break;
			}
			/*
			 * Whole but wrong: this record was written and synced
			 * in full, then damaged.  Dropping it would drop an
			 * acknowledged change without a word.
			 */
			log_error("%s: the record at offset %lld is complete "
			    "but damaged (checksum or msgpack): refusing to "
			    "drop it; repair or move the file aside to start "
			    "without it", path, (long long)off);
			rc = -EBADMSG;
			break;
		}
		if ((rc = agent_apply_record(a, &ctx, &obj, ORIGIN_LOAD, &applied,
		    &why)) != 0) {
			log_error("%s: record %llu: %s", path,
			    (unsigned long long)nrec, why);
			break;
		}
		msgpack_zone_clear(&zone);
		off += 8 + rlen;
		*good_end = (off_t)off;
		nrec++;
	}
	msgpack_zone_destroy(&zone);
	bigtab_free(buf, 1, cap);
	/* what was applied is in the tree: the region gets it either way */
	if ((rc2 = agent_bulk_end(a)) != 0 && rc == 0)
		rc = rc2;
	log_info("%s: %llu records loaded%s", path, (unsigned long long)nrec,
	    *torn ? " (damaged bytes after them)" : "");
	if (cut_write)
		log_warn("%s: the write at offset %lld was cut by a crash "
		    "(sectors of zeros): it was never acknowledged", path,
		    (long long)*good_end);
	else if (rc == 0 && *torn && damage_is_mid_file(path, *good_end)) {
		log_error("%s: record at offset %lld is damaged but valid records "
		    "follow it: the file is corrupt, not torn; refusing to drop "
		    "them (move the file aside to start without it)", path,
		    (long long)*good_end);
		rc = -EBADMSG;
	}
	return rc;
}

int
persist_load_file(struct agent *a, const char *path)
{
	off_t end;
	bool torn;
	int rc = load_framed(a, path, true, &end, &torn);

	if (rc == -ENODATA)
		log_error("%s: empty or cut inside its header", path);
	if (rc == 0 && torn)
		log_warn("%s: ignored damaged bytes after offset %lld", path,
		    (long long)end);
	return rc;
}

/* ---- writing files ---- */

/*
 * Test-only crash points (tests/test_durability.c): with
 * DISTKV_TEST_CRASH_POINT=NAME in the environment the agent kills itself
 * with SIGKILL at the point called NAME, where a power loss could stop it,
 * so that a test can check that the files left there lose nothing.
 * Points: "save-before-rename" (temp file written and fsynced, not yet
 * renamed; snapshots and `save`), "snapshot-before-truncate" (snapshot
 * renamed into place, change log not yet emptied).
 */
static void
crash_point(const char *name)
{
	static const char *want;
	static bool looked;

	if (!looked) {
		want = getenv("DISTKV_TEST_CRASH_POINT");
		looked = true;
	}
	if (want != NULL && strcmp(want, name) == 0)
		raise(SIGKILL);
}

static int
fsync_dir_of(const char *path)
{
	char dir[PATH_MAX];
	char *slash;
	int fd, rc = 0;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash == NULL)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -errno;
	if (fsync(fd) != 0)
		rc = -errno;
	close(fd);
	return rc;
}

int
persist_save(struct agent *a, const char *path)
{
	char tmp[PATH_MAX + 16];
	msgpack_sbuffer sb;
	int fd, rc;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
		return -ENAMETOOLONG;
	msgpack_sbuffer_init(&sb);
	pack_snapshot(a, &sb, true);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	if ((rc = write_all(fd, sb.data, sb.size)) == 0 && fsync(fd) != 0)
		rc = -errno;
	close(fd);
	if (rc == 0)
		crash_point("save-before-rename");
	if (rc == 0 && rename(tmp, path) != 0)
		rc = -errno;
	if (rc == 0)
		rc = fsync_dir_of(path);
	if (rc != 0)
		unlink(tmp);
out:
	msgpack_sbuffer_destroy(&sb);
	return rc;
}

static void
logwriter_close(struct logwriter *w)
{
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
	free(w->path);
	w->path = NULL;
	msgpack_sbuffer_destroy(&w->buf);
}

/*
 * Room for len more bytes at w->end, allocated in LOG_PREALLOC steps.
 * Where the file system cannot (no fallocate, or no space for a whole
 * step), the records are appended as they come.
 */
static void
logwriter_reserve(struct logwriter *w, size_t len)
{
	off_t want = w->end + (off_t)len;

	if (!w->prealloc || want <= w->alloc)
		return;
	want = (want / LOG_PREALLOC + 1) * LOG_PREALLOC;
	if (fallocate(w->fd, 0, w->alloc, want - w->alloc) == 0) {
		w->alloc = want;
		return;
	}
	log_warn("%s: cannot preallocate (%s): appending instead", w->path,
	    strerror(errno));
	w->prealloc = false;
}

/* The records end at end: the file too (the preallocation goes). */
static int
logwriter_cut(struct logwriter *w, off_t end)
{
	if (ftruncate(w->fd, end) != 0)
		return -errno;
	w->end = w->alloc = end;
	return 0;
}

/* Write out buffered records; fsync when sync (the policy asks for it). */
static int
logwriter_sync(struct logwriter *w, bool sync)
{
	int rc;

	if (w->buf.size > 0) {
		logwriter_reserve(w, w->buf.size);
		if ((rc = write_all_at(w->fd, w->buf.data, w->buf.size,
		    w->end)) != 0) {
			log_error("%s: write failed: %s", w->path,
			    strerror(-rc));
			return rc;
		}
		w->end += (off_t)w->buf.size;
		if (w->end > w->alloc)
			w->alloc = w->end;
		w->buf.size = 0;
		w->unsynced = true;
	}
	if (sync && w->unsynced) {
		if (fdatasync(w->fd) != 0) {
			rc = -errno;
			log_error("%s: fsync failed: %s", w->path,
			    strerror(-rc));
			return rc;
		}
		w->unsynced = false;
	}
	return 0;
}

int
persist_start_log(struct agent *a, const char *path, bool fetch)
{
	struct logwriter *w = calloc(1, sizeof(*w));
	msgpack_packer pk;
	size_t start;
	int rc;

	if (w == NULL)
		return -ENOMEM;
	msgpack_sbuffer_init(&w->buf);
	w->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (w->fd < 0 || (w->path = strdup(path)) == NULL) {
		rc = w->fd < 0 ? -errno : -ENOMEM;
		logwriter_close(w);
		free(w);
		return rc;
	}
	msgpack_sbuffer_write(&w->buf, PERSIST_MAGIC, PERSIST_MAGIC_LEN);
	if (fetch)
		pack_snapshot(a, &w->buf, false);
	msgpack_packer_init(&pk, &w->buf, msgpack_sbuffer_write);
	start = frame_begin(&w->buf);
	pack_state_record(a, &pk);
	frame_finish(&w->buf, start);
	if ((rc = logwriter_sync(w, true)) != 0) {
		logwriter_close(w);
		free(w);
		return rc;
	}
	/* the new writer has its initial state: the old one may stop */
	if (a->logw != NULL) {
		logwriter_sync(a->logw, true);
		logwriter_close(a->logw);
		free(a->logw);
	}
	a->logw = w;
	return 0;
}

/* ---- state dir ---- */

static void persist_snapshot_state(struct agent *a);

void
persist_record_change(struct agent *a, const struct entry *e)
{
	if (a->persist != NULL) {
		pack_change_record(a, &a->persist->log.buf, e);
		a->persist->since_snapshot++;
	}
	if (a->logw != NULL)
		pack_change_record(a, &a->logw->buf, e);
}

void
persist_record_ready(struct agent *a)
{
	msgpack_sbuffer *sb;
	msgpack_packer pk;
	size_t start;

	if (a->persist == NULL || !a->self->has_tick)
		return;
	sb = &a->persist->log.buf;
	start = frame_begin(sb);
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 1);
	msgpack_pack_str_with_body(&pk, "nodes", 5);
	msgpack_pack_map(&pk, 1);
	msgpack_pack_str_with_body(&pk, a->self->name, a->self->name_len);
	msgpack_pack_uint64(&pk, a->self->tick);
	frame_finish(sb, start);
}

int
persist_sync(struct agent *a)
{
	bool sync = a->cfg.fsync == FSYNC_ALWAYS;
	int rc;

	if (a->persist != NULL) {
		/* a failure sticks: nothing after it may be acknowledged */
		if (a->persist->failed != 0)
			return a->persist->failed;
		if ((rc = logwriter_sync(&a->persist->log, sync)) != 0) {
			a->persist->failed = rc;
			return rc;
		}
		if (a->cfg.snapshot_every > 0 &&
		    a->persist->since_snapshot >= a->cfg.snapshot_every)
			persist_snapshot_state(a);
	}
	if (a->logw != NULL && logwriter_sync(a->logw, sync) != 0) {
		log_error("stopping the change log %s", a->logw->path);
		logwriter_close(a->logw);
		free(a->logw);
		a->logw = NULL;
	}
	return 0;
}

void
persist_tick(struct agent *a)
{
	if (a->cfg.fsync != FSYNC_BATCH)
		return;
	if (a->persist != NULL)
		logwriter_sync(&a->persist->log, true);
	if (a->logw != NULL)
		logwriter_sync(a->logw, true);
}

static void
persist_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct persist *p = (struct persist *)((char *)w -
	    offsetof(struct persist, timer));

	(void)loop;
	(void)revents;
	persist_tick(p->a);
}

static int
state_path(char *buf, size_t cap, const char *dir, const char *name)
{
	return (size_t)snprintf(buf, cap, "%s/%s", dir, name) >= cap ?
	    -ENAMETOOLONG : 0;
}

/*
 * Snapshot, then empty the log.  A crash between the two replays old log
 * records onto the newer snapshot, which the chain rules ignore as
 * duplicates or stale, so no order of crashes loses or reorders a change.
 */
static void
persist_snapshot_state(struct agent *a)
{
	struct persist *p = a->persist;
	char path[PATH_MAX];
	struct timespec t0, t1;
	int rc;

	if (logwriter_sync(&p->log, true) != 0)
		return;
	state_path(path, sizeof(path), p->dir, SNAPSHOT_NAME);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if ((rc = persist_save(a, path)) != 0) {
		log_error("snapshot %s failed: %s", path, strerror(-rc));
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	p->snapshots++;
	p->snapshot_secs = (double)(t1.tv_sec - t0.tv_sec) +
	    (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
	crash_point("snapshot-before-truncate");
	if ((rc = logwriter_cut(&p->log, PERSIST_MAGIC_LEN)) == 0 &&
	    fdatasync(p->log.fd) != 0)
		rc = -errno;
	if (rc != 0) {
		log_error("cannot empty %s: %s", p->log.path, strerror(-rc));
		return;
	}
	p->since_snapshot = 0;
	log_debug("snapshot written to %s", path);
}

/*
 * Create the missing parents of path (mkdir -p of its dirname, mode 0755
 * as mkdir(1) makes them), so a quick start's --state-dir
 * /var/lib/distkv/n1 works on a fresh host.  Returns 0 or -errno.
 */
static int
mkdir_parents(const char *path)
{
	char buf[PATH_MAX];
	size_t len = strlen(path);

	if (len >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, len + 1);
	while (len > 1 && buf[len - 1] == '/')
		buf[--len] = '\0';
	for (char *p = buf + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) != 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	return 0;
}

int
persist_open_state_dir(struct agent *a, const char *dir)
{
	char snap[PATH_MAX], logp[PATH_MAX], lockp[PATH_MAX];
	struct persist *p;
	struct stat st;
	off_t end;
	bool torn;
	int rc;

	if ((rc = mkdir_parents(dir)) != 0 ||
	    (mkdir(dir, 0750) != 0 && errno != EEXIST)) {
		if (rc == 0)
			rc = -errno;
		log_error("cannot create state dir %s: %s", dir, strerror(-rc));
		return rc;
	}
	if ((rc = state_path(snap, sizeof(snap), dir, SNAPSHOT_NAME)) != 0 ||
	    (rc = state_path(logp, sizeof(logp), dir, LOG_NAME)) != 0 ||
	    (rc = state_path(lockp, sizeof(lockp), dir, LOCK_NAME)) != 0)
		return rc;
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return -ENOMEM;
	p->a = a;
	p->log.fd = -1;
	msgpack_sbuffer_init(&p->log.buf);
	if ((p->dir = strdup(dir)) == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	p->lock_fd = open(lockp, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
	if (p->lock_fd < 0 || flock(p->lock_fd, LOCK_EX | LOCK_NB) != 0) {
		rc = -errno;
		log_error("state dir %s is in use by another agent", dir);
		goto fail;
	}
	/* restore before a client is accepted: snapshot, then the log */
	if (access(snap, F_OK) == 0 &&
	    (rc = load_framed(a, snap, false, &end, &torn)) != 0) {
		/* written whole and renamed into place: never legitimately */
		if (rc == -ENODATA)
			log_error("%s: empty or cut inside its header; refusing "
			    "to start", snap);
		goto fail;
	}
	if (access(snap, F_OK) == 0 && torn) {
		log_error("%s is damaged after offset %lld; refusing to start",
		    snap, (long long)end);
		rc = -EINVAL;
		goto fail;
	}
	rc = access(logp, F_OK) == 0 ? load_framed(a, logp, true, &end,
	    &torn) : -ENOENT;
	if (rc == -ENODATA) {
		/* empty, or cut inside its magic: it holds no change */
		log_warn("%s: empty or cut inside its header (a crash while "
		    "it was created): starting it anew", logp);
		if (unlink(logp) != 0) {
			rc = -errno;
			goto fail;
		}
		rc = -ENOENT;
	}
	if (rc != 0 && rc != -ENOENT)
		goto fail;
	if (rc == 0) {
		p->log.fd = open(logp, O_WRONLY | O_CLOEXEC);
		if (p->log.fd < 0) {
			rc = -errno;
			goto fail;
		}
		p->log.end = end;
		p->log.alloc = fstat(p->log.fd, &st) == 0 ? st.st_size : end;
		if (torn) {
			log_warn("%s: cutting a torn tail at offset %lld", logp,
			    (long long)end);
			if ((rc = logwriter_cut(&p->log, end)) == 0 &&
			    fdatasync(p->log.fd) != 0)
				rc = -errno;
			if (rc != 0)
				goto fail;
		}
	} else {
		p->log.fd = open(logp, O_WRONLY | O_CREAT | O_CLOEXEC, 0640);
		if (p->log.fd < 0 ||
		    write_all(p->log.fd, PERSIST_MAGIC, PERSIST_MAGIC_LEN) != 0 ||
		    fdatasync(p->log.fd) != 0 || fsync_dir_of(logp) != 0) {
			rc = -errno;
			goto fail;
		}
		p->log.end = p->log.alloc = PERSIST_MAGIC_LEN;
	}
	p->log.prealloc = true;
	if ((p->log.path = strdup(logp)) == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	a->persist = p;
	ev_timer_init(&p->timer, persist_timer_cb, 1.0, 1.0);
	ev_timer_start(a->loop, &p->timer);
	ev_unref(a->loop);	/* the timer alone keeps no loop alive */
	return 0;
fail:
	if (p->lock_fd > 0)
		close(p->lock_fd);
	logwriter_close(&p->log);
	free(p->dir);
	free(p);
	return rc;
}

void
persist_close(struct agent *a)
{
	struct persist *p = a->persist;

	if (a->logw != NULL) {
		logwriter_sync(a->logw, true);
		logwriter_close(a->logw);
		free(a->logw);
		a->logw = NULL;
	}
	if (p == NULL)
		return;
	/* a node that never got its data has none to keep: a snapshot of
	 * its table would pass for data of its own at the next start */
	if (agent_ready(a))
		persist_snapshot_state(a);
	else if (logwriter_sync(&p->log, true) == 0 &&
	    p->log.alloc > p->log.end)
		logwriter_cut(&p->log, p->log.end);	/* tidy: no zeros */
	ev_ref(a->loop);
	ev_timer_stop(a->loop, &p->timer);
	logwriter_close(&p->log);
	close(p->lock_fd);
	free(p->dir);
	free(p);
	a->persist = NULL;
}

void
persist_get_stats(const struct agent *a, struct persist_stats *out)
{
	const struct persist *p = a->persist;
	char path[PATH_MAX];
	struct stat st;

	memset(out, 0, sizeof(*out));
	if (p == NULL)
		return;
	out->state_dir = true;
	out->log_bytes = (uint64_t)p->log.end;
	state_path(path, sizeof(path), p->dir, SNAPSHOT_NAME);
	if (stat(path, &st) == 0) {
		out->snapshot_bytes = (uint64_t)st.st_size;
		out->snapshot_at = (double)st.st_mtim.tv_sec +
		    (double)st.st_mtim.tv_nsec * 1e-9;
	}
	out->snapshots = p->snapshots;
	out->snapshot_secs = p->snapshot_secs;
}

void
persist_snapshot_bytes(struct agent *a, msgpack_sbuffer *sb)
{
	pack_snapshot(a, sb, true);
}
