/*
 * bench_shm: what the files of bench/bench_shm share.  bench_shm.c has the
 * options, one in-process size, the table and main; bench_shm_keys.c the
 * keys, values and op streams; bench_shm_build.c what the reads run on
 * (the hash table, LMDB, the region); bench_shm_read.c the reads, timed
 * and not; bench_shm_wake.c the writer's cost and the wake-ups;
 * bench_shm_agent.c the run through a real agent.
 */
#ifndef DISTKV_BENCH_SHM_H
#define DISTKV_BENCH_SHM_H

#include <sys/types.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lmdb.h>

#include "distkv.h"
#include "reader.h"
#include "writer.h"

#define VAL_LEN		64	/* value text bytes */
#define VAL_WIRE	(2 + VAL_LEN)	/* as msgpack str 8: 0xd9, len, text */
#define KEY_MAX		40	/* msgpack key: at most 35 bytes */
#define NFIELDS		8
#define MAX_SIZES	8
#define MAX_THREADS	16
#define MAX_TC		4	/* thread counts in --threads */
#define MAX_BATCHES	99
#define MAX_ROUNDS	15
#define HOT_OPS		1000000	/* gets of one key, API overhead */
#define MAX_KEYS	10000000L
#define MAX_OPS		100000000L
#define START_MS	10000	/* deadline for the agent to accept */
#define STOP_MS		5000	/* SIGTERM grace before SIGKILL */
#define IO_MS		10000	/* longest wait for any reply */
#define WAIT_MS		2000	/* longest wait for a wake-up */
#define SOCKET_DIV	100	/* socket gets: ops / SOCKET_DIV */
#define PIPELINE	64	/* agent load: sets in flight */
#define VERIFY_SAMPLE	1000	/* socket get: keys read back */
#define DIR_MAX		80	/* temp dir; DIR/agent.sock fits sun_path */
#define FILE_MAX	(DIR_MAX + 32)
#define NFILES		(4 + 4 * MAX_SIZES)

#define LOAD_ACQ(p)	__atomic_load_n((p), __ATOMIC_ACQUIRE)
#define STORE_REL(p, v)	__atomic_store_n((p), (v), __ATOMIC_RELEASE)

/* What one measurement reads through. */
enum method {
	M_HT,		/* in-process hash table, key bytes */
	M_COPY,		/* private copy of the region, plain lookup */
	M_SHM,		/* shm_reader_get, key bytes */
	M_SHM_PATH,	/* distkv_shm_get, distkv_path */
	M_KEY,		/* distkv_key_get, a prepared distkv_key */
	M_KEY_STR,	/* distkv_key_get_str: the typed getter */
	M_LMDB,		/* mdb_get, one read txn per batch */
	M_LMDB_TXN,	/* mdb_txn_renew + mdb_get + mdb_txn_reset per op */
	M_DKV_GET,	/* distkv_get on a connection that mapped the region */
	M_SOCKET,	/* distkv_get on a DISTKV_NO_SHM connection */
	M_COUNT,
};

extern const char *const method_name[M_COUNT];

struct opts {
	long		 keys[MAX_SIZES];
	int		 nkeys;
	long		 ops;		/* per thread and measurement */
	long		 batches;
	long		 threads[MAX_TC];
	int		 ntc;
	long		 cpu_client[MAX_THREADS];	/* thread i: [i % n] */
	int		 ncpu_client;
	long		 cpu_server;
	long		 agent_keys;	/* 0: no agent run */
	long		 wake_rounds;
	long		 rounds;
	const char	*agent;
	const char	*dir;		/* parent of the temp dir */
	unsigned	 only;		/* PART_* to run */
	bool		 cold_keys;	/* no fetch ahead of key objects */
};

struct bench {
	struct opts	 o;
	int		 maxthreads;
	long		 batch_ops;
	char		 dir[DIR_MAX];
	char		 loadavg[32];
	bool		 tmpfs;		/* the temp dir is on /dev/shm */
	uint64_t	 checksum;	/* of every value read */
	long		 verified;	/* values read and compared */
};

/*
 * One operation: the key, in the order the operations run.  The floor and
 * shm_reader_get read the key bytes from here, a sequential stream the
 * hardware fetches ahead.  The rows of the user-facing calls take the
 * caller's own object instead (a path, a prepared key), one of ks.n heap
 * objects: the stream names it, and the loop fetches it OPS_AHEAD
 * operations ahead, so that those rows too start with the caller's key in
 * cache and measure the call, not a cache miss on a random key object
 * (which --cold-keys measures).  One op is one cache line.
 */
struct opkey {
	uint8_t			 key[KEY_MAX];
	uint32_t		 idx;
	uint32_t		 klen;
	const distkv_path	*path;
	const distkv_key	*pkey;
};
_Static_assert(sizeof(struct opkey) == 64, "one op, one cache line");

#define OPS_AHEAD	8	/* ops past the end of a stream, for the fetch */

/* The keys of one size, and what was last written to each. */
struct keyset {
	long		  n;
	uint8_t		(*key)[KEY_MAX];
	uint8_t		 *klen;
	distkv_path	**paths;
	distkv_key	**keys;		/* prepared from paths */
	uint32_t	 *gen;		/* value generation last written */
	double		  mean_klen;
};

/* The in-process floor: slots point into one arena of records. */
struct ht_slot {
	uint64_t	 hash;
	uint32_t	 off;		/* record offset in the arena */
	uint32_t	 used;		/* 0: empty */
};

struct ht {
	struct ht_slot	*slot;
	uint64_t	 mask;
	uint8_t		*arena;		/* u32 klen, u32 vlen, key, value */
	size_t		 arena_used;
	double		 mean_probe;
	uint64_t	 max_probe;
};

/* What a region's slot table looks like for these keys. */
struct regioninfo {
	uint64_t	 slots;
	uint64_t	 live;
	uint64_t	 size;
	double		 mean_probe;
	uint64_t	 max_probe;
};

struct result {
	bool		 done;
	double		 ns;		/* per op and thread, median batch */
	double		 rn[MAX_ROUNDS];	/* ... of each round */
	int		 nr;
	uint64_t	 sum;
	long		 ops;		/* per thread, all batches */
};

/* One key count with everything built over it. */
struct target {
	struct bench		*b;
	const char		*label;
	struct keyset		 ks;
	long			 n;		/* kept after ks is freed */
	double			 mean_klen;
	double			 ht_mean_probe;
	uint64_t		 ht_max_probe;
	char			 lmdb[FILE_MAX];
	long			 nops;		/* entries per op stream */
	struct opkey		*ops[MAX_THREADS];
	struct ht		*ht;
	uint8_t			*copy;		/* private copy of the region */
	double			 hot[M_COUNT];	/* one key, ns/op */
	MDB_env			*env;
	MDB_dbi			 dbi;
	struct shm_writer	*w;
	char			 region[FILE_MAX];
	struct regioninfo	 ri;
	struct shm_reader	*rd[MAX_THREADS];
	distkv_shm		*ds[MAX_THREADS];
	distkv			*conn;		/* mapped the region */
	distkv			*sock;		/* DISTKV_NO_SHM */
	struct result		 res[M_COUNT][MAX_TC];
	uint64_t		*lat;		/* M_SOCKET per-op ns */
	long			 nlat;
	double			 sock_p50, sock_p99;	/* us */
	/* build */
	double			 load_ns;	/* per key: region or agent */
	uint64_t		 load_rebuilds;
	double			 lmdb_load_ns;
	/* writer */
	double			 put_ns, put_mean_ns, put_notify_ns;
	uint64_t		 put_rebuilds;
	/* wake-ups, us */
	double			 wake_thr[2], wake_proc[2], pub_waiter[2];
	double			 set_lat[2], wake_set[2];
	long			 wake_late;	/* waiter not seen asleep */
	bool			 wake_done, set_done;
	/* distkv_get on conn before and after a re-map, ns/op */
	double			 stale_get_ns, fresh_get_ns;
	uint64_t		 agent_generation;
};

/* Shared by the writer and a waiter (thread, or process: MAP_SHARED). */
struct waitshare {
	uint32_t	 round;		/* writer: go */
	uint32_t	 ready;		/* waiter: about to block */
	uint32_t	 done;		/* waiter: woke up */
	uint32_t	 quit;
	int32_t		 tid;
	int32_t		 rc;
	uint64_t	 woke_ns;
};

struct waiter_arg {
	struct waitshare	*ws;
	struct shm_reader	*r;
	distkv_shm		*ds;
	long			 cpu;
};

/* For the signal handler: what to stop (set where it is started). */
extern volatile pid_t sig_pid[2];	/* agent, waiter */

static inline void
cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

/* bench_shm.c */
long client_cpu(const struct bench *b, int thread);
void on_signal(int sig);

/* bench_shm_keys.c */
void value_make(long key, uint32_t gen, uint8_t *wire);
int keyset_build(struct keyset *ks, long n, bool paths);
void keyset_free(struct keyset *ks);
int ops_build(struct target *tg);

/* bench_shm_build.c */
int ht_build(struct target *tg, uint64_t slots);
void ht_free(struct ht *t);
int copy_build(struct target *tg);
int lmdb_build(struct target *tg, const char *path);
int region_build(struct target *tg);
int region_inspect(const char *path, const struct keyset *ks,
    struct regioninfo *ri);

/* bench_shm_read.c */
int verify(struct target *tg, enum method m, int t, bool sample);
int measure(struct target *tg, enum method m, int tci, long batch_ops);
double hot_measure(struct target *tg, enum method m);

/* bench_shm_wake.c */
int measure_writer(struct target *tg);
int measure_wake(struct target *tg);
/* the waiters, for agent_writes too */
void *waiter_thread(void *arg);
int wake_rounds(struct target *tg, struct waitshare *ws, bool process,
    bool set, uint64_t *delay, uint64_t *pub);
void waiter_quit(struct waitshare *ws);

/* bench_shm_agent.c */
int agent_run(struct bench *b, struct target *tg);

#endif
