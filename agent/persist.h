/*
 * persist: files.  One file format for everything (docs/operations.md):
 * an 8-byte magic, then records, each framed as
 *   u32 little-endian length | u32 little-endian XXH32(payload) | payload
 * where the payload is one msgpack map (spec §2.8 records).  A reader
 * stops at the first record that is incomplete or fails its checksum: a
 * torn tail is detected and cut, never misread.
 *
 * - save: a snapshot written to a temp file, fsynced, renamed.
 * - log: change records appended, fsynced by the agent's policy before the
 *   replies they acknowledge leave (server.c calls persist_sync).
 * - state dir: snapshot + log; restored before clients are accepted;
 *   snapshotted every cfg.snapshot_every changes and at exit.
 */
#ifndef DISTKV_PERSIST_H
#define DISTKV_PERSIST_H

#include <stdbool.h>
#include <stddef.h>

struct agent;
struct entry;

#define PERSIST_MAGIC "DKVC\x00\x01\r\n"
#define PERSIST_MAGIC_LEN 8
/* Largest record accepted when reading (a value plus its path). */
#define PERSIST_MAX_RECORD (64u << 20)

/* Open (creating) the state dir, restore snapshot + log into a, and keep
 * logging there.  Returns 0 or a negative errno (logged). */
int persist_open_state_dir(struct agent *a, const char *dir);
/* Final snapshot (if a state dir is open) and close everything. */
void persist_close(struct agent *a);

/* Load a file (snapshot or log) through agent_commit: --load. */
int persist_load_file(struct agent *a, const char *path);
/* Write a snapshot of the whole tree to path atomically. */
int persist_save(struct agent *a, const char *path);
/*
 * True if path names a file the agent itself owns: its state dir's lock,
 * snapshot and change log (or their temp files, existing or not), or
 * whatever is the same file as one of them, its socket or its region.
 * `save` and `log` must never write those.
 */
bool persist_is_own_file(const struct agent *a, const char *path);
/* Start (replace) the `log` action writer; with fetch, snapshot first. */
int persist_start_log(struct agent *a, const char *path, bool fetch);

/*
 * The node has its data (ready): record its own tick in the state dir's
 * log, so that a restart finds data of its own and serves at once even if
 * it never made a change itself (a node that only received replicas).
 */
void persist_record_ready(struct agent *a);
/* Record a committed change of e in every open change log. */
void persist_record_change(struct agent *a, const struct entry *e);
/*
 * Make recorded changes durable as the fsync policy demands; cheap when
 * nothing is pending.  Called before any reply is written.  Returns 0, or
 * the -errno of a failed state-dir log write, which sticks: the caller
 * must not acknowledge anything after it (server.c withholds the replies
 * and stops the agent).
 */
int persist_sync(struct agent *a);
/* Timer work: batch fsync, periodic snapshot. */
void persist_tick(struct agent *a);

/*
 * A whole snapshot file's bytes (magic, state record, every entry), as
 * persist_save writes it, appended to sb: get_snapshot (distkv-cli dump).
 */
#include <msgpack.h>
void persist_snapshot_bytes(struct agent *a, msgpack_sbuffer *sb);

/* For the metrics: sizes and times of the state dir's files. */
struct persist_stats {
	bool state_dir;			/* false: the rest is zero */
	uint64_t log_bytes;
	uint64_t snapshot_bytes;
	uint64_t snapshots;		/* written since start */
	double snapshot_at;		/* Unix time of the last one, 0: none */
	double snapshot_secs;		/* how long the last one took */
};
void persist_get_stats(const struct agent *a, struct persist_stats *out);

#endif
