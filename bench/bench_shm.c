/*
 * bench_shm - the shared-memory read path against an in-process hash
 * table, LMDB and a get over the agent's socket.
 *
 * For every --keys size one run builds, over the same keys and values:
 *
 *  - a region, populated in this process with shm_writer_put (the reader
 *    cannot tell who wrote it; the agent path is measured separately);
 *  - an in-process open-addressing table keyed by the same msgpack key
 *    bytes, XXH3-64 like the region, with as many slots as the region's
 *    table, whose lookup copies the value out like shm_reader_get: the
 *    floor that any shared-memory design can at best reach;
 *  - an LMDB database (liblmdb, MDB_NOSYNC for the load);
 *
 * and measures random-key gets on each with 1 and 2 threads (--threads):
 * ns/op as the median of --batches timed batches, each after the same
 * untimed warm-up batch.  The keys of each operation come from a stream
 * generated before timing (key bytes, laid out in operation order, so
 * neither the RNG nor a cache miss on a key table is measured); every
 * method reads the same stream, and every value read is summed into a
 * checksum that must be equal across methods (and is printed, so the
 * reads cannot be optimized away).
 *
 * Then the cost of a change: shm_writer_put per update of an existing key
 * (and with shm_writer_notify after each), and the delay from the start of
 * a publish until a reader blocked in shm_reader_wait (a thread, and a
 * forked process) runs again.
 *
 * Last, a real distkv-agent with its region, loaded through the socket with
 * pipelined distkv_async_set (--agent-keys): the same shm reads on the
 * agent's region, distkv_shm_get and distkv_get (shm), distkv_get over the
 * socket (a second connection made with DISTKV_NO_SHM=1), the end-to-end
 * distkv_set latency, and the delay from a distkv_set until a reader
 * blocked in distkv_shm_wait wakes.
 *
 * Correctness: before any timing every key is read once through every
 * handle (this also faults the mappings in) and compared with the value
 * written; a key that was never written must be reported missing.  After
 * the updates every key is read again.  One wrong value fails the run.
 *
 * Everything lives in one mkdtemp() directory (on /dev/shm by default, like
 * the agent's region) that is removed at the end; the agent and the waiter
 * process are the only processes started, and are stopped by pid.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE	/* sched_setaffinity, CPU_SET, gettid */
#endif

#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>
#include <xxhash.h>

#include "benchutil.h"
#include "distkv.h"
#include "layout.h"
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

static const char *const method_name[M_COUNT] = {
	"in-process hash (floor)",
	"region layout, plain lookup",
	"shm_reader_get (key bytes)",
	"distkv_shm_get (path)",
	"distkv_key_get (prepared)",
	"distkv_key_get_str (typed)",
	"LMDB mdb_get (txn/batch)",
	"LMDB txn+mdb_get per op",
	"distkv_get (via shm)",
	"distkv_get (socket)",
};

/* The last element of the key paths: mean msgpack key about 29 bytes. */
static const char *const fields[NFIELDS] = {
	"port", "hostname", "timeout_ms", "listen_addr", "max_conns",
	"log_level", "tls_cert_path", "upstream",
};

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
};

/* Parts of a run, for --only (profiling one path with perf). */
enum {
	PART_HT = 1 << M_HT,
	PART_COPY = 1 << M_COPY,
	PART_SHM = 1 << M_SHM,
	PART_PATH = 1 << M_SHM_PATH,
	PART_KEY = 1 << M_KEY,
	PART_KEY_STR = 1 << M_KEY_STR,
	PART_LMDB = 1 << M_LMDB,
	PART_LMDB_TXN = 1 << M_LMDB_TXN,
	PART_PUT = 1 << M_COUNT,
	PART_WAKE = 2 << M_COUNT,
	PART_AGENT = 4 << M_COUNT,
	PART_ALL = (8 << M_COUNT) - 1,
};

static const struct {
	const char	*name;
	unsigned	 part;
} part_names[] = {
	{ "ht", PART_HT }, { "copy", PART_COPY }, { "shm", PART_SHM }, { "path", PART_PATH },
	{ "key", PART_KEY }, { "keystr", PART_KEY_STR },
	{ "lmdb", PART_LMDB }, { "lmdb-txn", PART_LMDB_TXN },
	{ "put", PART_PUT }, { "wake", PART_WAKE }, { "agent", PART_AGENT },
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

/* One operation: the key, in the order the operations run. */
struct opkey {
	uint8_t		 key[KEY_MAX];
	uint32_t	 idx;
	uint32_t	 klen;
};

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

struct worker;

/* One measurement: nthreads workers, batches after one warm-up batch. */
struct measure {
	struct target		*tg;
	enum method		 m;
	int			 nthreads;
	long			 batch_ops;
	int			 batches;
	pthread_barrier_t	 bar;
	struct worker		*w;
};

struct worker {
	struct measure	*ms;
	int		 idx;
	pthread_t	 th;
	uint64_t	 sum;
	long		 errors;
	int		 rc;
	uint64_t	 t0[MAX_BATCHES + 1];
	uint64_t	 t1[MAX_BATCHES + 1];
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

/* The agent process. */
struct agentproc {
	pid_t		 pid;
	char		 sock[FILE_MAX];
	char		 log[FILE_MAX];
	char		 shm[FILE_MAX];
};
_Static_assert(DIR_MAX + sizeof("/agent.sock") <=
    sizeof(((struct sockaddr_un *)0)->sun_path), "socket path too long");

/* For the signal handler only: what to stop and remove. */
static volatile pid_t	 sig_pid[2] = { -1, -1 };	/* agent, waiter */
static char		 sig_files[NFILES][DIR_MAX + 72];
static char		 sig_dir[DIR_MAX];

static void		 usage(FILE *f);
static int		 parse_list(const char *s, long lo, long hi, long *out,
			    int max);
static long		 client_cpu(const struct bench *b, int thread);
static size_t		 key_encode(long i, uint8_t *out);
static void		 value_make(long key, uint32_t gen, uint8_t *wire);
static int		 keyset_build(struct keyset *ks, long n, bool paths);
static void		 keyset_free(struct keyset *ks);
static int		 ops_build(struct target *tg);
static int		 ht_build(struct target *tg, uint64_t slots);
static int		 ht_get(const struct ht *t, const uint8_t *key,
			    size_t klen, void *buf, size_t cap, size_t *len);
static int		 copy_build(struct target *tg);
static int		 copy_get(const uint8_t *base, const uint8_t *key,
			    size_t klen, void *buf, size_t cap, size_t *len);
static int		 lmdb_build(struct target *tg, const char *path);
static int		 region_build(struct target *tg);
static int		 region_inspect(const char *path, const struct keyset *ks,
			    struct regioninfo *ri);
static int		 get_one(struct target *tg, enum method m, int t,
			    long idx, uint8_t *buf, size_t cap, size_t *len);
static int		 verify(struct target *tg, enum method m, int t,
			    bool sample);
static int		 measure(struct target *tg, enum method m, int tci,
			    long batch_ops);
static double		 hot_measure(struct target *tg, enum method m);
static int		 measure_writer(struct target *tg);
static int		 measure_wake(struct target *tg);
static int		 agent_run(struct bench *b, struct target *tg);
static void		 target_free(struct target *tg);
static void		 on_signal(int sig);
static void		 print_results(const struct bench *b,
			    struct target *tgs, int ntg, struct target *ag);

/* ---- options, time, statistics ---- */

static void
usage(FILE *f)
{
	fprintf(f,
"usage: bench_shm [options]\n"
"  Random-key gets through the shared-memory region against an in-process\n"
"  hash table, LMDB and the agent's socket; writer publish cost and the\n"
"  wake-up delay of blocked readers.\n"
"  --keys LIST       key counts, comma separated (default 100000,1000000)\n"
"  --ops N           operations per thread and measurement (default\n"
"                    1000000; socket gets: N/%d)\n"
"  --batches N       timed batches per measurement, median reported\n"
"                    (default 10; one more untimed warm-up batch)\n"
"  --threads LIST    reader thread counts (default 1,2)\n"
"  --cpu-client LIST CPUs of the reader threads: thread i on LIST[i %% n]\n"
"                    (default 1,0; -1: no pinning)\n"
"  --cpu-server N    CPU of the agent (default 0; -1: no pinning)\n"
"  --agent-keys N    keys set through a real agent (default 100000; 0: no\n"
"                    agent run)\n"
"  --wake-rounds N   rounds of each wake-up measurement (default 1000)\n"
"  --agent PATH      distkv-agent binary (default: the build dir's)\n"
"  --dir DIR         where the temp dir goes (default /dev/shm, else\n"
"                    $TMPDIR or /tmp)\n"
"  --rounds N        repeat the read measurements N times, interleaved,\n"
"                    and report the median (default 3)\n"
"  --only LIST       run only these parts (for perf): ht, copy, shm, path,\n"
"                    lmdb, lmdb-txn, put, wake, agent (default: all)\n"
"  --help            this text\n"
"Progress goes to stderr, the table to stdout.\n", SOCKET_DIV);
}

/* --only: comma-separated part names; returns 0 or -1. */
static int
parse_parts(const char *s, unsigned *out)
{
	char	 buf[256], *tok, *save = NULL;
	size_t	 i;

	if (strlen(s) >= sizeof(buf))
		return (-1);
	memcpy(buf, s, strlen(s) + 1);
	*out = 0;
	for (tok = strtok_r(buf, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save)) {
		for (i = 0; i < sizeof(part_names) / sizeof(part_names[0]); i++)
			if (strcmp(tok, part_names[i].name) == 0)
				break;
		if (i == sizeof(part_names) / sizeof(part_names[0]))
			return (-1);
		*out |= part_names[i].part;
	}
	return (*out != 0 ? 0 : -1);
}

/* A comma-separated list of at most max numbers; returns the count. */
static int
parse_list(const char *s, long lo, long hi, long *out, int max)
{
	char	 buf[256], *tok, *save = NULL;
	int	 n = 0;

	if (strlen(s) >= sizeof(buf))
		return (-1);
	memcpy(buf, s, strlen(s) + 1);
	for (tok = strtok_r(buf, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save)) {
		if (n == max || parse_long(tok, lo, hi, &out[n]) != 0)
			return (-1);
		n++;
	}
	return (n > 0 ? n : -1);
}

/* Pin the calling thread (or a child between fork and exec) to cpu. */
static long
client_cpu(const struct bench *b, int thread)
{
	return (b->o.cpu_client[thread % b->o.ncpu_client]);
}

static inline void
cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

/* Nearest-rank percentile p (0..1] of n samples in ns, in us; sorts v. */
/* Median of n values (the mean of the middle two for even n); sorts v. */
/* splitmix64: the op streams, seeded per key count and thread. */
static uint64_t
rng_next(uint64_t *s)
{
	uint64_t	z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return (z ^ (z >> 31));
}

/* ---- keys and values ---- */

/*
 * The region key of svc/NNNNNN/config/<field>: the canonical msgpack array
 * of four strings, each shorter than 32 bytes and so a fixstr.  The agent
 * and libdistkv encode paths the same way (docs/shm.md); verify() checks it
 * by finding these keys with distkv_shm_get on paths and on the agent's
 * region.
 */
static size_t
key_encode(long i, uint8_t *out)
{
	const char	*f = fields[i % NFIELDS];
	char		 num[24];
	size_t		 nl, fl, o = 0;

	nl = (size_t)snprintf(num, sizeof(num), "%06ld", i);
	fl = strlen(f);
	out[o++] = 0x94;
	out[o++] = 0xa3;
	memcpy(out + o, "svc", 3);
	o += 3;
	out[o++] = (uint8_t)(0xa0 | nl);
	memcpy(out + o, num, nl);
	o += nl;
	out[o++] = 0xa6;
	memcpy(out + o, "config", 6);
	o += 6;
	out[o++] = (uint8_t)(0xa0 | fl);
	memcpy(out + o, f, fl);
	o += fl;
	return (o);
}

static int
path_make(long i, distkv_path **out)
{
	const char	*f = fields[i % NFIELDS];
	distkv_path	*p;
	char		 num[24];
	int		 rc;

	snprintf(num, sizeof(num), "%06ld", i);
	if ((rc = distkv_path_new(&p)) != 0)
		return (rc);
	if ((rc = distkv_path_push_str(p, "svc", 3)) != 0 ||
	    (rc = distkv_path_push_str(p, num, strlen(num))) != 0 ||
	    (rc = distkv_path_push_str(p, "config", 6)) != 0 ||
	    (rc = distkv_path_push_str(p, f, strlen(f))) != 0) {
		distkv_path_free(p);
		return (rc);
	}
	*out = p;
	return (0);
}

/*
 * The msgpack value of key's gen-th write: a str 8 of VAL_LEN bytes that
 * spell out key and generation, so reading another key's value or an older
 * one fails the comparison.
 */
static void
value_make(long key, uint32_t gen, uint8_t *wire)
{
	char	text[VAL_LEN + 1];
	int	n, i;

	n = snprintf(text, sizeof(text), "k%07ld:g%010u:", key, gen);
	for (i = n; i < VAL_LEN; i++)
		text[i] = (char)('a' + (unsigned long)(key + gen + i) % 26);
	wire[0] = 0xd9;
	wire[1] = VAL_LEN;
	memcpy(wire + 2, text, VAL_LEN);
}

/* What the timed loops add up per value: its first and last 8 bytes. */
static inline uint64_t
value_sum(const uint8_t *buf, size_t len)
{
	uint64_t	a = 0, z = 0;

	if (len >= 8) {
		memcpy(&a, buf, 8);
		memcpy(&z, buf + len - 8, 8);
	}
	return (a + (z ^ len));
}

/*
 * value_sum of the msgpack form (str 8) of a VAL_LEN-byte text read by the
 * typed getter, without rebuilding it: a wrong length or text gives
 * another sum, and the sums of all methods must agree.
 */
static inline uint64_t
str_sum(const char *text)
{
	uint8_t		head[8] = { 0xd9, VAL_LEN };
	uint64_t	a, z;

	memcpy(head + 2, text, 6);
	memcpy(&a, head, 8);
	memcpy(&z, text + VAL_LEN - 8, 8);
	return (a + (z ^ VAL_WIRE));
}

static int
keyset_build(struct keyset *ks, long n, bool paths)
{
	long	i;
	double	total = 0;

	memset(ks, 0, sizeof(*ks));
	ks->n = n;
	if ((ks->key = calloc((size_t)n + 1, sizeof(*ks->key))) == NULL ||
	    (ks->klen = calloc((size_t)n + 1, 1)) == NULL ||
	    (ks->gen = calloc((size_t)n + 1, sizeof(*ks->gen))) == NULL)
		return (-ENOMEM);
	/* key n is never written: the missing-key check */
	for (i = 0; i <= n; i++) {
		ks->klen[i] = (uint8_t)key_encode(i, ks->key[i]);
		if (i < n)
			total += ks->klen[i];
	}
	ks->mean_klen = total / (double)n;
	if (!paths)
		return (0);
	if ((ks->paths = calloc((size_t)n + 1, sizeof(*ks->paths))) == NULL)
		return (-ENOMEM);
	if ((ks->keys = calloc((size_t)n + 1, sizeof(*ks->keys))) == NULL)
		return (-ENOMEM);
	for (i = 0; i <= n; i++)
		if (path_make(i, &ks->paths[i]) != 0 ||
		    distkv_key_new(ks->paths[i], &ks->keys[i]) != 0)
			return (-ENOMEM);
	return (0);
}

static void
keyset_free(struct keyset *ks)
{
	long	i;

	if (ks->paths != NULL)
		for (i = 0; i <= ks->n; i++)
			distkv_path_free(ks->paths[i]);
	if (ks->keys != NULL)
		for (i = 0; i <= ks->n; i++)
			distkv_key_free(ks->keys[i]);
	free(ks->paths);
	free(ks->keys);
	free(ks->key);
	free(ks->klen);
	free(ks->gen);
	memset(ks, 0, sizeof(*ks));
}

/*
 * One stream of random keys per thread, long enough for the warm-up batch
 * and the timed ones.  Seeded by key count and thread only, so the agent
 * run reads the same keys in the same order as the in-process run.
 */
static int
ops_build(struct target *tg)
{
	const struct bench	*b = tg->b;
	uint64_t		 seed, r;
	long			 i;
	int			 t;

	tg->nops = b->batch_ops * (b->o.batches + 1);
	for (t = 0; t < b->maxthreads; t++) {
		struct opkey	*ops;

		if ((ops = malloc((size_t)tg->nops * sizeof(*ops))) == NULL)
			return (-ENOMEM);
		tg->ops[t] = ops;
		seed = 0x5eed0000ULL + (uint64_t)tg->ks.n * 131 + (uint64_t)t;
		for (i = 0; i < tg->nops; i++) {
			r = rng_next(&seed) % (uint64_t)tg->ks.n;
			ops[i].idx = (uint32_t)r;
			ops[i].klen = tg->ks.klen[r];
			memcpy(ops[i].key, tg->ks.key[r], KEY_MAX);
		}
	}
	return (0);
}

/* ---- the in-process floor ---- */

/*
 * As many slots as the region's table (so the same load factor and probe
 * lengths), linear probing on XXH3-64 of the key bytes, records in one
 * arena in insertion order like the region's bump allocator.
 */
static int
ht_build(struct target *tg, uint64_t slots)
{
	const struct keyset	*ks = &tg->ks;
	struct ht		*t;
	size_t			 rec, cap;
	uint64_t		 total = 0, i, h, probe;
	long			 k;
	uint8_t			 val[VAL_WIRE];

	if ((t = calloc(1, sizeof(*t))) == NULL)
		return (-ENOMEM);
	tg->ht = t;
	if (slots < (uint64_t)ks->n * 4 / 3 + 1)
		return (-EINVAL);
	t->mask = slots - 1;
	cap = (size_t)ks->n * (8 + KEY_MAX + VAL_WIRE + 8);
	if ((t->slot = calloc(slots, sizeof(*t->slot))) == NULL ||
	    (t->arena = malloc(cap)) == NULL)
		return (-ENOMEM);
	for (k = 0; k < ks->n; k++) {
		uint32_t	kl = ks->klen[k], vl = VAL_WIRE;

		value_make(k, ks->gen[k], val);
		h = XXH3_64bits(ks->key[k], kl);
		for (i = h & t->mask, probe = 1; t->slot[i].used;
		    i = (i + 1) & t->mask)
			probe++;
		rec = (8 + kl + vl + 7) & ~(size_t)7;
		memcpy(t->arena + t->arena_used, &kl, 4);
		memcpy(t->arena + t->arena_used + 4, &vl, 4);
		memcpy(t->arena + t->arena_used + 8, ks->key[k], kl);
		memcpy(t->arena + t->arena_used + 8 + kl, val, vl);
		t->slot[i].hash = h;
		t->slot[i].off = (uint32_t)t->arena_used;
		t->slot[i].used = 1;
		t->arena_used += rec;
		total += probe;
		if (probe > t->max_probe)
			t->max_probe = probe;
	}
	t->mean_probe = (double)total / (double)ks->n;
	return (0);
}

/* Not inlined: shm_reader_get is a call into another object too. */
static __attribute__((noinline)) int
ht_get(const struct ht *t, const uint8_t *key, size_t klen, void *buf,
    size_t cap, size_t *len)
{
	uint64_t	h = XXH3_64bits(key, klen), i;
	uint32_t	kl, vl;
	const uint8_t	*r;

	for (i = h & t->mask;; i = (i + 1) & t->mask) {
		const struct ht_slot	*s = &t->slot[i];

		if (!s->used)
			return (-ENOENT);
		if (s->hash != h)
			continue;
		r = t->arena + s->off;
		memcpy(&kl, r, 4);
		memcpy(&vl, r + 4, 4);
		if (kl != klen || memcmp(r + 8, key, klen) != 0)
			continue;
		*len = vl;
		if (vl > cap)
			return (-ENOBUFS);
		memcpy(buf, r + 8 + kl, vl);
		return (0);
	}
}

static void
ht_free(struct ht *t)
{
	if (t == NULL)
		return;
	free(t->slot);
	free(t->arena);
	free(t);
}

/*
 * A lookup on a private copy of the region (layout.h) with none of the
 * reader's protocol: no sequence words, no bounds checks, no re-map test.
 * Against ht_get it prices the region's layout (16-byte slots with a
 * 32-bit tag, records with an 8-byte header and the metadata after the
 * value, arena slack); against shm_reader_get what the lock-free protocol
 * and the checks cost.
 */
static __attribute__((noinline)) int
copy_get(const uint8_t *base, const uint8_t *key, size_t klen, void *buf,
    size_t cap, size_t *len)
{
	const struct shm_header	*h = (const struct shm_header *)base;
	const struct shm_slot	*tab, *s;
	const struct shm_record	*r;
	const uint8_t		*arena = base + h->arena_off;
	uint64_t		 hash = XXH3_64bits(key, klen), mask, i;
	uint32_t		 tag = shm_hash_tag(hash), state;

	tab = (const struct shm_slot *)(base + SHM_HEADER_SIZE);
	mask = h->table_slots - 1;
	for (i = hash & mask;; i = (i + 1) & mask) {
		s = &tab[i];
		state = shm_slot_state(s->len_state);
		if (state == SHM_SLOT_EMPTY)
			return (-ENOENT);
		if (state != SHM_SLOT_LIVE || shm_slot_tag(s->tag_off) != tag)
			continue;
		r = (const struct shm_record *)(arena +
		    shm_slot_off(s->tag_off));
		if (r->key_len != klen || memcmp(r + 1, key, klen) != 0)
			continue;
		*len = r->val_len;
		if (r->val_len > cap)
			return (-ENOBUFS);
		memcpy(buf, (const uint8_t *)(r + 1) + klen, r->val_len);
		return (0);
	}
}

/* Copy the region file into private memory, for copy_get. */
static int
copy_build(struct target *tg)
{
	struct stat	st;
	ssize_t		n;
	size_t		off = 0;
	int		fd;

	if ((fd = open(tg->region, O_RDONLY | O_CLOEXEC)) < 0)
		return (-errno);
	if (fstat(fd, &st) != 0 || (tg->copy = malloc((size_t)st.st_size)) ==
	    NULL) {
		close(fd);
		return (-ENOMEM);
	}
	while (off < (size_t)st.st_size && (n = read(fd, tg->copy + off,
	    (size_t)st.st_size - off)) > 0)
		off += (size_t)n;
	close(fd);
	return (off == (size_t)st.st_size ? 0 : -EIO);
}

/* ---- LMDB ---- */

/*
 * One file (MDB_NOSUBDIR) in the temp dir, loaded in key order (index order
 * is memcmp order for these keys) with MDB_NOSYNC, 100,000 puts per commit.
 */
static int
lmdb_build(struct target *tg, const char *path)
{
	const struct keyset	*ks = &tg->ks;
	MDB_txn			*txn = NULL;
	MDB_val			 k, v;
	uint8_t			 val[VAL_WIRE];
	uint64_t		 t0;
	long			 i;
	int			 rc;

	t0 = now_ns();
	if ((rc = mdb_env_create(&tg->env)) != 0 ||
	    (rc = mdb_env_set_mapsize(tg->env, (size_t)ks->n * 400 +
	    (64u << 20))) != 0 ||
	    (rc = mdb_env_set_maxreaders(tg->env, MAX_THREADS + 8)) != 0 ||
	    (rc = mdb_env_open(tg->env, path, MDB_NOSUBDIR | MDB_NOSYNC |
	    MDB_NOMETASYNC, 0600)) != 0)
		goto fail;
	for (i = 0; i < ks->n; i++) {
		if (txn == NULL && ((rc = mdb_txn_begin(tg->env, NULL, 0,
		    &txn)) != 0 || (i == 0 && (rc = mdb_dbi_open(txn, NULL, 0,
		    &tg->dbi)) != 0)))
			goto fail;
		value_make(i, ks->gen[i], val);
		k.mv_data = ks->key[i];
		k.mv_size = ks->klen[i];
		v.mv_data = val;
		v.mv_size = sizeof(val);
		if ((rc = mdb_put(txn, tg->dbi, &k, &v, 0)) != 0)
			goto fail;
		if (i % 100000 == 99999 || i == ks->n - 1) {
			rc = mdb_txn_commit(txn);
			txn = NULL;
			if (rc != 0)
				goto fail;
		}
	}
	tg->lmdb_load_ns = (double)(now_ns() - t0) / (double)ks->n;
	return (0);
fail:
	if (txn != NULL)
		mdb_txn_abort(txn);
	fprintf(stderr, "bench: lmdb %s: %s\n", path, mdb_strerror(rc));
	return (-1);
}

/* ---- the region, written in this process ---- */

static int
region_build(struct target *tg)
{
	const struct keyset	*ks = &tg->ks;
	struct shm_writer_stats	 st;
	struct shm_meta		 m;
	uint8_t			 val[VAL_WIRE];
	uint64_t		 t0;
	long			 i;
	int			 rc;

	if ((rc = shm_writer_open(tg->region, 0600, "bench", &tg->w)) != 0) {
		fprintf(stderr, "bench: shm_writer_open %s: %s\n", tg->region,
		    strerror(-rc));
		return (-1);
	}
	m.node = "bench";
	m.node_len = 5;
	t0 = now_ns();
	for (i = 0; i < ks->n; i++) {
		value_make(i, ks->gen[i], val);
		m.tick = m.tock = (uint64_t)i + 1;
		if ((rc = shm_writer_put(tg->w, ks->key[i], ks->klen[i], val,
		    sizeof(val), &m)) != 0) {
			fprintf(stderr, "bench: shm_writer_put: %s\n",
			    strerror(-rc));
			return (-1);
		}
	}
	shm_writer_notify(tg->w);
	tg->load_ns = (double)(now_ns() - t0) / (double)ks->n;
	shm_writer_stats(tg->w, &st);
	tg->load_rebuilds = st.replacements;
	return (0);
}

/*
 * Read the slot table of the region at path (its own read-only mapping,
 * layout.h) and count the slots a lookup of each key visits.  The writer
 * does not run meanwhile.
 */
static int
region_inspect(const char *path, const struct keyset *ks,
    struct regioninfo *ri)
{
	const struct shm_header	*h;
	const struct shm_slot	*tab;
	struct stat		 st;
	uint64_t		 total = 0, mask, i, hash, probe;
	uint32_t		 state;
	void			*base;
	long			 k;
	int			 fd;

	memset(ri, 0, sizeof(*ri));
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return (-errno);
	if (fstat(fd, &st) != 0 || st.st_size < SHM_HEADER_SIZE) {
		close(fd);
		return (-EBADMSG);
	}
	base = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (base == MAP_FAILED)
		return (-errno);
	h = base;
	ri->slots = h->table_slots;
	ri->live = h->live_entries;
	ri->size = h->region_size;
	if (h->magic != SHM_MAGIC || h->region_size != (uint64_t)st.st_size ||
	    ri->slots == 0 || (ri->slots & (ri->slots - 1)) != 0) {
		munmap(base, (size_t)st.st_size);
		return (-EBADMSG);
	}
	tab = (const struct shm_slot *)((const uint8_t *)base +
	    SHM_HEADER_SIZE);
	mask = ri->slots - 1;
	for (k = 0; k < ks->n; k++) {
		hash = XXH3_64bits(ks->key[k], ks->klen[k]);
		for (i = hash & mask, probe = 1; probe <= ri->slots;
		    i = (i + 1) & mask, probe++) {
			state = shm_slot_state(tab[i].len_state);
			if (state == SHM_SLOT_EMPTY ||
			    (state == SHM_SLOT_LIVE &&
			    shm_slot_tag(tab[i].tag_off) == shm_hash_tag(hash)))
				break;
		}
		total += probe;
		if (probe > ri->max_probe)
			ri->max_probe = probe;
	}
	ri->mean_probe = (double)total / (double)ks->n;
	munmap(base, (size_t)st.st_size);
	return (0);
}

/* ---- reads ---- */

/*
 * One get of key idx through m with thread slot t's handle, untimed:
 * 0, 1 for "no such key", or < 0.  For verify() only.
 */
static int
get_one(struct target *tg, enum method m, int t, long idx, uint8_t *buf,
    size_t cap, size_t *len)
{
	const uint8_t		*key = tg->ks.key[idx];
	size_t			 klen = tg->ks.klen[idx];
	struct distkv_entry	 e;
	MDB_txn			*txn;
	MDB_val			 k, v;
	int			 rc;

	*len = 0;
	switch (m) {
	case M_HT:
		rc = ht_get(tg->ht, key, klen, buf, cap, len);
		return (rc == -ENOENT ? 1 : rc);
	case M_COPY:
		rc = copy_get(tg->copy, key, klen, buf, cap, len);
		return (rc == -ENOENT ? 1 : rc);
	case M_SHM:
		rc = shm_reader_get(tg->rd[t], key, klen, buf, cap, len, NULL);
		return (rc == -ENOENT ? 1 : rc);
	case M_SHM_PATH:
		rc = distkv_shm_get(tg->ds[t], tg->ks.paths[idx], buf, cap, len,
		    NULL);
		return (rc == DISTKV_ENOTFOUND ? 1 : rc);
	case M_KEY:
		rc = distkv_key_get(tg->ds[t], tg->ks.keys[idx], buf, cap, len,
		    NULL);
		return (rc == DISTKV_ENOTFOUND ? 1 : rc);
	case M_KEY_STR:
		/* the msgpack form again, for the byte comparison */
		rc = distkv_key_get_str(tg->ds[t], tg->ks.keys[idx],
		    (char *)buf + 2, cap - 2);
		if (rc == 0) {
			*len = strlen((char *)buf + 2);
			buf[0] = 0xd9;
			buf[1] = (uint8_t)*len;
			*len += 2;
		}
		return (rc == DISTKV_ENOTFOUND ? 1 : rc);
	case M_LMDB:
	case M_LMDB_TXN:
		if ((rc = mdb_txn_begin(tg->env, NULL, MDB_RDONLY, &txn)) != 0)
			return (-EIO);
		k.mv_data = (void *)(uintptr_t)key;
		k.mv_size = klen;
		rc = mdb_get(txn, tg->dbi, &k, &v);
		if (rc == 0 && v.mv_size <= cap) {
			memcpy(buf, v.mv_data, v.mv_size);
			*len = v.mv_size;
		}
		mdb_txn_abort(txn);
		return (rc == MDB_NOTFOUND ? 1 : rc == 0 ? 0 : -EIO);
	case M_DKV_GET:
	case M_SOCKET:
		rc = distkv_get(m == M_DKV_GET ? tg->conn : tg->sock,
		    tg->ks.paths[idx], 0, &e);
		if (rc == 0 && e.value.len <= cap) {
			memcpy(buf, e.value.data, e.value.len);
			*len = e.value.len;
		}
		distkv_entry_clear(&e);
		return (rc == DISTKV_ENOTFOUND ? 1 : rc);
	default:
		return (-EINVAL);
	}
}

/*
 * Read every key (or VERIFY_SAMPLE of them) through m and handle slot t
 * and compare it with the last value written; the never-written key n must
 * be missing.  Reading every key also faults the mapping in before timing.
 */
static int
verify(struct target *tg, enum method m, int t, bool sample)
{
	long		n = tg->ks.n, i, step, bad = 0, checked = 0;
	uint8_t		want[VAL_WIRE], buf[256];
	size_t		len;
	int		rc;

	step = sample && n > VERIFY_SAMPLE ? n / VERIFY_SAMPLE : 1;
	for (i = 0; i < n; i += step) {
		value_make(i, tg->ks.gen[i], want);
		rc = get_one(tg, m, t, i, buf, sizeof(buf), &len);
		checked++;
		if (rc == 0 && len == VAL_WIRE && memcmp(buf, want,
		    VAL_WIRE) == 0)
			continue;
		if (bad++ < 5)
			fprintf(stderr, "%s: %s: key %ld: rc %d, read %zu bytes "
			    "\"%.*s\", want \"%.*s\"\n", tg->label,
			    method_name[m], i, rc, len,
			    len > 2 ? (int)(len < 80 ? len - 2 : 78) : 0,
			    (const char *)buf + 2, VAL_LEN,
			    (const char *)want + 2);
	}
	if ((rc = get_one(tg, m, t, n, buf, sizeof(buf), &len)) != 1) {
		fprintf(stderr, "%s: %s: a key never written: rc %d, not "
		    "\"not found\"\n", tg->label, method_name[m], rc);
		bad++;
	}
	tg->b->verified += checked;
	if (bad != 0) {
		fprintf(stderr, "%s: %s: %ld of %ld values wrong\n", tg->label,
		    method_name[m], bad, checked);
		return (-1);
	}
	return (0);
}

/* batch_ops gets of thread w's stream, from entry `from`. */
static void
run_batch(struct worker *w, long from, long count)
{
	struct measure		*ms = w->ms;
	struct target		*tg = ms->tg;
	const struct opkey	*ops = tg->ops[w->idx] + from, *k;
	struct distkv_entry	 e;
	MDB_txn			*txn = NULL;
	MDB_val			 mk, mv;
	uint8_t			 buf[256] __attribute__((aligned(8)));
	uint64_t		 sum = 0, t0 = 0;
	size_t			 len;
	long			 i, bad = 0;

	switch (ms->m) {
	case M_HT:
		for (i = 0; i < count; i++) {
			k = &ops[i];
			if (ht_get(tg->ht, k->key, k->klen, buf, sizeof(buf),
			    &len) != 0)
				bad++;
			else
				sum += value_sum(buf, len);
		}
		break;
	case M_COPY:
		for (i = 0; i < count; i++) {
			k = &ops[i];
			if (copy_get(tg->copy, k->key, k->klen, buf,
			    sizeof(buf), &len) != 0)
				bad++;
			else
				sum += value_sum(buf, len);
		}
		break;
	case M_SHM:
		for (i = 0; i < count; i++) {
			k = &ops[i];
			if (shm_reader_get(tg->rd[w->idx], k->key, k->klen, buf,
			    sizeof(buf), &len, NULL) != 0)
				bad++;
			else
				sum += value_sum(buf, len);
		}
		break;
	case M_SHM_PATH:
		for (i = 0; i < count; i++) {
			k = &ops[i];
			if (distkv_shm_get(tg->ds[w->idx],
			    tg->ks.paths[k->idx], buf, sizeof(buf), &len,
			    NULL) != 0)
				bad++;
			else
				sum += value_sum(buf, len);
		}
		break;
	case M_KEY:
		for (i = 0; i < count; i++) {
			k = &ops[i];
			if (distkv_key_get(tg->ds[w->idx], tg->ks.keys[k->idx],
			    buf, sizeof(buf), &len, NULL) != 0)
				bad++;
			else
				sum += value_sum(buf, len);
		}
		break;
	case M_KEY_STR:
		for (i = 0; i < count; i++) {
			k = &ops[i];
			if (distkv_key_get_str(tg->ds[w->idx],
			    tg->ks.keys[k->idx], (char *)buf, sizeof(buf)) != 0)
				bad++;
			else
				sum += str_sum((const char *)buf);
		}
		break;
	case M_LMDB:
		if (mdb_txn_begin(tg->env, NULL, MDB_RDONLY, &txn) != 0) {
			bad = count;
			break;
		}
		for (i = 0; i < count; i++) {
			k = &ops[i];
			mk.mv_data = (void *)(uintptr_t)k->key;
			mk.mv_size = k->klen;
			if (mdb_get(txn, tg->dbi, &mk, &mv) != 0 ||
			    mv.mv_size > sizeof(buf))
				bad++;
			else {
				memcpy(buf, mv.mv_data, mv.mv_size);
				sum += value_sum(buf, mv.mv_size);
			}
		}
		mdb_txn_abort(txn);
		break;
	case M_LMDB_TXN:
		if (mdb_txn_begin(tg->env, NULL, MDB_RDONLY, &txn) != 0) {
			bad = count;
			break;
		}
		mdb_txn_reset(txn);
		for (i = 0; i < count; i++) {
			k = &ops[i];
			mk.mv_data = (void *)(uintptr_t)k->key;
			mk.mv_size = k->klen;
			if (mdb_txn_renew(txn) != 0)
				bad++;
			else if (mdb_get(txn, tg->dbi, &mk, &mv) != 0 ||
			    mv.mv_size > sizeof(buf)) {
				bad++;
				mdb_txn_reset(txn);
			} else {
				memcpy(buf, mv.mv_data, mv.mv_size);
				mdb_txn_reset(txn);
				sum += value_sum(buf, mv.mv_size);
			}
		}
		mdb_txn_abort(txn);
		break;
	case M_DKV_GET:
	case M_SOCKET:
		for (i = 0; i < count; i++) {
			k = &ops[i];
			/* only the socket row keeps latencies: a clock read
			 * per get would be a third of a region read */
			if (ms->m == M_SOCKET)
				t0 = now_ns();
			if (distkv_get(ms->m == M_DKV_GET ? tg->conn : tg->sock,
			    tg->ks.paths[k->idx], 0, &e) != 0)
				bad++;
			else
				sum += value_sum(e.value.data, e.value.len);
			if (ms->m == M_SOCKET && tg->lat != NULL &&
			    tg->nlat < tg->nops)
				tg->lat[tg->nlat++] = now_ns() - t0;
			distkv_entry_clear(&e);
		}
		break;
	default:
		bad = count;
		break;
	}
	w->sum += sum;
	w->errors += bad;
}

static void *
worker_main(void *arg)
{
	struct worker	*w = arg;
	struct measure	*ms = w->ms;
	int		 b;

	w->rc = pin_cpu(client_cpu(ms->tg->b, w->idx));
	/* every worker passes every barrier, even after an error */
	for (b = 0; b <= ms->batches; b++) {
		pthread_barrier_wait(&ms->bar);
		w->t0[b] = now_ns();
		if (w->rc == 0)
			run_batch(w, (long)b * ms->batch_ops, ms->batch_ops);
		w->t1[b] = now_ns();
		/* latencies of the timed batches only */
		if (b == 0 && ms->m == M_SOCKET)
			ms->tg->nlat = 0;
	}
	return (NULL);
}

/*
 * Measure m with --threads[tci] threads: one warm-up batch, then the
 * timed batches, all threads starting each batch together.  A batch
 * lasts from the first thread's start to the last one's end; the result
 * is the median batch as ns per operation and thread.
 */
static int
measure(struct target *tg, enum method m, int tci, long batch_ops)
{
	struct bench	*b = tg->b;
	struct measure	 ms;
	struct worker	 w[MAX_THREADS];
	struct result	*res = &tg->res[m][tci];
	double		 ns[MAX_BATCHES];
	uint64_t	 lo, hi, sum = 0;
	long		 errors = 0;
	int		 t, bi, nt = (int)b->o.threads[tci], rc = 0;

	memset(&ms, 0, sizeof(ms));
	memset(w, 0, sizeof(w));
	ms.tg = tg;
	ms.m = m;
	ms.nthreads = nt;
	ms.batch_ops = batch_ops;
	ms.batches = (int)b->o.batches;
	ms.w = w;
	fprintf(stderr, "%s: %s, %d thread%s\n", tg->label, method_name[m], nt,
	    nt > 1 ? "s" : "");
	if (pthread_barrier_init(&ms.bar, NULL, (unsigned)nt) != 0)
		return (-1);
	for (t = 0; t < nt; t++) {
		w[t].ms = &ms;
		w[t].idx = t;
		if (pthread_create(&w[t].th, NULL, worker_main, &w[t]) != 0) {
			/* the others wait at the barrier for good */
			fprintf(stderr, "bench: pthread_create failed\n");
			on_signal(SIGABRT);
		}
	}
	for (t = 0; t < nt; t++)
		pthread_join(w[t].th, NULL);
	pthread_barrier_destroy(&ms.bar);
	for (t = 0; t < nt; t++) {
		if (w[t].rc != 0) {
			fprintf(stderr, "bench: thread %d on cpu %ld: %s\n", t,
			    client_cpu(b, t), strerror(-w[t].rc));
			rc = -1;
		}
		errors += w[t].errors;
		sum += w[t].sum;
	}
	if (errors != 0) {
		fprintf(stderr, "%s: %s: %ld gets failed\n", tg->label,
		    method_name[m], errors);
		rc = -1;
	}
	if (rc != 0)
		return (rc);
	for (bi = 1; bi <= ms.batches; bi++) {
		lo = w[0].t0[bi];
		hi = w[0].t1[bi];
		for (t = 1; t < nt; t++) {
			if (w[t].t0[bi] < lo)
				lo = w[t].t0[bi];
			if (w[t].t1[bi] > hi)
				hi = w[t].t1[bi];
		}
		ns[bi - 1] = (double)(hi - lo) / (double)batch_ops;
	}
	if (res->nr < MAX_ROUNDS)
		res->rn[res->nr++] = median(ns, ms.batches);
	memcpy(ns, res->rn, (size_t)res->nr * sizeof(ns[0]));
	res->ns = median(ns, res->nr);
	res->sum = sum;
	res->ops = batch_ops * (ms.batches + 1);
	res->done = true;
	b->checksum += sum;
	return (0);
}

/* ---- writes and wake-ups ---- */

/*
 * shm_writer_put of existing keys in stream order with the next value of
 * each (built before each batch), then the same with shm_writer_notify
 * after every put (no reader waits: the futex call alone).
 */
static int
measure_writer(struct target *tg)
{
	struct bench		*b = tg->b;
	struct shm_writer_stats	 st0, st1;
	struct shm_meta		 m;
	const struct opkey	*k;
	uint8_t			*vals;
	double			 ns[MAX_BATCHES], total = 0;
	uint64_t		 t0;
	long			 n = b->batch_ops, bi, i, pass, from;
	int			 rc;

	if ((vals = malloc((size_t)n * VAL_WIRE)) == NULL)
		return (-1);
	m.node = "bench";
	m.node_len = 5;
	m.tick = m.tock = (uint64_t)tg->ks.n + 1;
	shm_writer_stats(tg->w, &st0);
	for (pass = 0; pass < 2; pass++) {
		fprintf(stderr, "%s: shm_writer_put%s\n", tg->label,
		    pass ? " + shm_writer_notify" : "");
		for (bi = 0; bi <= b->o.batches; bi++) {
			from = (bi + pass * b->o.batches) % (b->o.batches + 1) *
			    n;
			for (i = 0; i < n; i++) {
				k = &tg->ops[0][from + i];
				value_make(k->idx, ++tg->ks.gen[k->idx],
				    vals + i * VAL_WIRE);
			}
			t0 = now_ns();
			for (i = 0; i < n; i++) {
				k = &tg->ops[0][from + i];
				m.tick++;
				m.tock++;
				if ((rc = shm_writer_put(tg->w, k->key, k->klen,
				    vals + i * VAL_WIRE, VAL_WIRE, &m)) != 0) {
					fprintf(stderr, "bench: shm_writer_put: "
					    "%s\n", strerror(-rc));
					free(vals);
					return (-1);
				}
				if (pass)
					shm_writer_notify(tg->w);
			}
			if (bi > 0) {
				ns[bi - 1] = (double)(now_ns() - t0) /
				    (double)n;
				if (!pass)
					total += ns[bi - 1];
			}
		}
		if (!pass) {
			tg->put_mean_ns = total / (double)b->o.batches;
			tg->put_ns = median(ns, b->o.batches);
			shm_writer_stats(tg->w, &st1);
			tg->put_rebuilds = st1.replacements - st0.replacements;
		} else
			tg->put_notify_ns = median(ns, b->o.batches);
	}
	free(vals);
	return (0);
}

static pid_t
my_tid(void)
{
	return ((pid_t)gettid());
}

/*
 * Block, round after round, in shm_reader_wait (r) or distkv_shm_wait (ds)
 * and note when it returned.
 */
static void
waiter_loop(struct waitshare *ws, struct shm_reader *r, distkv_shm *ds)
{
	uint32_t	round = 0, since;
	int		rc;

	STORE_REL(&ws->tid, (int32_t)my_tid());
	for (;;) {
		while (LOAD_ACQ(&ws->round) == round &&
		    LOAD_ACQ(&ws->quit) == 0)
			cpu_relax();
		if (LOAD_ACQ(&ws->quit) != 0)
			break;
		round = LOAD_ACQ(&ws->round);
		since = r != NULL ? shm_reader_seq(r) : distkv_shm_counter(ds);
		STORE_REL(&ws->ready, round);
		rc = r != NULL ? shm_reader_wait(r, since, WAIT_MS) :
		    distkv_shm_wait(ds, since, WAIT_MS);
		ws->woke_ns = now_ns();
		ws->rc = rc;
		STORE_REL(&ws->done, round);
	}
}

static void *
waiter_thread(void *arg)
{
	struct waiter_arg	*a = arg;

	pin_cpu(a->cpu);
	waiter_loop(a->ws, a->r, a->ds);
	return (NULL);
}

/*
 * Wait (at most 100 ms) until thread or process tid sleeps, i.e. is in the
 * futex wait rather than on its way to it.  Returns 0 if it was seen
 * asleep.
 */
static int
wait_asleep(pid_t tid, bool process)
{
	char		 path[64], buf[512], *p;
	uint64_t	 deadline = now_ns() + 100000000u;
	ssize_t		 n;
	int		 fd;

	if (process)
		snprintf(path, sizeof(path), "/proc/%d/stat", (int)tid);
	else
		snprintf(path, sizeof(path), "/proc/self/task/%d/stat",
		    (int)tid);
	while (now_ns() < deadline) {
		if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
			return (-1);
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n <= 0)
			return (-1);
		buf[n] = '\0';
		if ((p = strrchr(buf, ')')) != NULL && p[1] == ' ' &&
		    p[2] == 'S')
			return (0);
	}
	return (-1);
}

/* Spin until *word == want; -1 after ms. */
static int
spin_until(uint32_t *word, uint32_t want, int ms)
{
	uint64_t	deadline = now_ns() + (uint64_t)ms * 1000000u;
	unsigned	i = 0;

	while (LOAD_ACQ(word) != want) {
		cpu_relax();
		if (++i % 1024 == 0 && now_ns() > deadline)
			return (-1);
	}
	return (0);
}

/*
 * The wake-up rounds with a waiter already running: the writer side
 * (publish) is a shm_writer_put + shm_writer_notify when set is false, a
 * distkv_set through the agent otherwise.  delay[i]: from just before the
 * publish to the waiter's clock reading after its wait returned; pub[i]:
 * the publish call itself.
 */
static int
wake_rounds(struct target *tg, struct waitshare *ws, bool process, bool set,
    uint64_t *delay, uint64_t *pub)
{
	struct shm_meta		 m;
	const struct opkey	*k;
	uint8_t			 val[VAL_WIRE];
	uint64_t		 t0, t1;
	long			 r, rounds = tg->b->o.wake_rounds;
	int			 rc;

	m.node = "bench";
	m.node_len = 5;
	m.tick = m.tock = 1u << 30;
	for (r = 0; r < rounds; r++) {
		k = &tg->ops[0][r % tg->nops];
		value_make(k->idx, ++tg->ks.gen[k->idx], val);
		STORE_REL(&ws->round, (uint32_t)r + 1);
		if (spin_until(&ws->ready, (uint32_t)r + 1, WAIT_MS) != 0) {
			fprintf(stderr, "bench: waiter not ready\n");
			return (-1);
		}
		if (wait_asleep(LOAD_ACQ(&ws->tid), process) != 0)
			tg->wake_late++;
		t0 = now_ns();
		if (set)
			rc = distkv_set(tg->conn, tg->ks.paths[k->idx], val,
			    sizeof(val), NULL, NULL);
		else {
			m.tick++;
			m.tock++;
			rc = shm_writer_put(tg->w, k->key, k->klen, val,
			    sizeof(val), &m);
			shm_writer_notify(tg->w);
		}
		t1 = now_ns();
		if (rc != 0) {
			fprintf(stderr, "bench: publish: %s\n",
			    distkv_strerror(rc));
			return (-1);
		}
		if (spin_until(&ws->done, (uint32_t)r + 1, 2 * WAIT_MS) != 0 ||
		    ws->rc != 0) {
			fprintf(stderr, "bench: the waiter did not wake "
			    "(rc %d)\n", ws->rc);
			return (-1);
		}
		delay[r] = ws->woke_ns > t0 ? ws->woke_ns - t0 : 0;
		pub[r] = t1 - t0;
	}
	return (0);
}

/* Ask a waiter to leave (it may be spinning or blocked). */
static void
waiter_quit(struct waitshare *ws)
{
	STORE_REL(&ws->quit, 1u);
	STORE_REL(&ws->round, LOAD_ACQ(&ws->round) + 1);
}

/*
 * Wake-up delay from an in-process publish to a waiter in another thread,
 * then in a forked process (each with its own reader mapping).
 */
static int
measure_wake(struct target *tg)
{
	struct bench		*b = tg->b;
	struct waitshare	*ws;
	struct waiter_arg	 wa;
	struct shm_reader	*r = NULL;
	pthread_t		 th;
	uint64_t		*delay, *pub;
	long			 n = b->o.wake_rounds;
	pid_t			 pid;
	int			 rc = -1, status;

	delay = calloc((size_t)n, sizeof(*delay));
	pub = calloc((size_t)n, sizeof(*pub));
	ws = mmap(NULL, sizeof(*ws), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (delay == NULL || pub == NULL || ws == MAP_FAILED)
		goto out;

	/* a thread */
	fprintf(stderr, "%s: wake-up of a thread in shm_reader_wait\n",
	    tg->label);
	memset(ws, 0, sizeof(*ws));
	ws->tid = -1;
	if (shm_reader_open(tg->region, &r) != 0)
		goto out;
	memset(&wa, 0, sizeof(wa));
	wa.ws = ws;
	wa.r = r;
	wa.cpu = client_cpu(b, 1);
	if (pthread_create(&th, NULL, waiter_thread, &wa) != 0)
		goto out;
	while (LOAD_ACQ(&ws->tid) == -1)
		cpu_relax();
	rc = wake_rounds(tg, ws, false, false, delay, pub);
	waiter_quit(ws);
	pthread_join(th, NULL);
	if (rc != 0)
		goto out;
	tg->wake_thr[0] = percentile_us(delay, n, 0.50);
	tg->wake_thr[1] = percentile_us(delay, n, 0.99);
	tg->pub_waiter[0] = percentile_us(pub, n, 0.50);
	tg->pub_waiter[1] = percentile_us(pub, n, 0.99);

	/* a process: no threads run now, so fork is safe */
	fprintf(stderr, "%s: wake-up of a process in shm_reader_wait\n",
	    tg->label);
	rc = -1;
	memset(ws, 0, sizeof(*ws));
	ws->tid = -1;
	if ((pid = fork()) < 0)
		goto out;
	if (pid == 0) {
		struct shm_reader	*cr;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		pin_cpu(client_cpu(b, 1));
		if (shm_reader_open(tg->region, &cr) != 0)
			_exit(1);
		waiter_loop(ws, cr, NULL);
		_exit(0);
	}
	sig_pid[1] = pid;
	while (LOAD_ACQ(&ws->tid) == -1 && waitpid(pid, &status, WNOHANG) == 0)
		cpu_relax();
	if (LOAD_ACQ(&ws->tid) != -1)
		rc = wake_rounds(tg, ws, true, false, delay, pub);
	waiter_quit(ws);
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0) {
		fprintf(stderr, "bench: waiter process failed (0x%x)\n",
		    status);
		rc = -1;
	}
	sig_pid[1] = -1;
	if (rc != 0)
		goto out;
	tg->wake_proc[0] = percentile_us(delay, n, 0.50);
	tg->wake_proc[1] = percentile_us(delay, n, 0.99);
	tg->wake_done = true;
	rc = 0;
out:
	if (rc != 0)
		fprintf(stderr, "%s: wake-up measurement failed\n", tg->label);
	shm_reader_close(r);
	if (ws != MAP_FAILED)
		munmap(ws, sizeof(*ws));
	free(delay);
	free(pub);
	return (rc);
}

/* ---- the agent ---- */

/* Wait until the agent accepts; forget its pid if it died. */
static int
agent_wait(struct agentproc *ap, int ms)
{
	int rc = wait_socket(ap->sock, &ap->pid, "distkv-agent", ms);

	if (ap->pid < 0)
		sig_pid[0] = -1;
	return (rc);
}

/* SIGTERM by pid, SIGKILL after STOP_MS; 0 if it stopped cleanly. */
static int
agent_stop(struct agentproc *ap)
{
	uint64_t	deadline;
	int		status = 0;
	pid_t		r;

	if (ap->pid <= 0)
		return (0);
	kill(ap->pid, SIGTERM);
	deadline = now_ns() + (uint64_t)STOP_MS * 1000000u;
	while ((r = waitpid(ap->pid, &status, WNOHANG)) == 0 &&
	    now_ns() < deadline)
		usleep(5000);
	if (r == 0) {
		fprintf(stderr, "bench: distkv-agent (pid %d) ignored SIGTERM "
		    "for %d ms, killing it\n", (int)ap->pid, STOP_MS);
		kill(ap->pid, SIGKILL);
		waitpid(ap->pid, &status, 0);
	}
	ap->pid = -1;
	sig_pid[0] = -1;
	if (r == 0)
		return (-1);
	if ((WIFEXITED(status) && WEXITSTATUS(status) == 0) ||
	    (WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM))
		return (0);
	fprintf(stderr, "bench: distkv-agent ended with status 0x%x\n",
	    status);
	return (-1);
}

/* Fork and exec the agent, pinned to --cpu-server, and wait for it. */
static int
agent_start(struct bench *b, struct agentproc *ap)
{
	char	*argv[] = { (char *)b->o.agent, "--standalone", "--socket",
		    ap->sock, "--node", "bench", "--shm", ap->shm, "--shm-mode",
		    "0600", NULL };
	pid_t	 pid;
	int	 fd, rc;

	fd = open(ap->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		fprintf(stderr, "bench: %s: %s\n", ap->log, strerror(errno));
		return (-1);
	}
	fprintf(stderr, "agent: starting %s\n", argv[0]);
	if ((pid = fork()) < 0) {
		fprintf(stderr, "bench: fork: %s\n", strerror(errno));
		close(fd);
		return (-1);
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		signal(SIGPIPE, SIG_DFL);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		if ((rc = pin_cpu(b->o.cpu_server)) != 0) {
			fprintf(stderr, "bench: cpu %ld: %s\n",
			    b->o.cpu_server, strerror(-rc));
			_exit(126);
		}
		execvp(argv[0], argv);
		fprintf(stderr, "bench: exec %s: %s\n", argv[0],
		    strerror(errno));
		_exit(127);
	}
	close(fd);
	ap->pid = pid;
	sig_pid[0] = pid;
	return (agent_wait(ap, START_MS));
}

struct loadpipe {
	long	done;
	int	rc;
};

static void
load_cb(void *arg, int rc, const struct distkv_set_result *r)
{
	struct loadpipe	*p = arg;

	(void)r;
	if (rc != 0 && p->rc == 0)
		p->rc = rc;
	p->done++;
}

/* Set every key once through the socket, PIPELINE sets in flight. */
static int
agent_load(struct target *tg)
{
	static const struct distkv_set_opts	opts = { .nchain = 0 };
	struct loadpipe				p = { 0, 0 };
	struct pollfd				pfd;
	uint8_t					vals[PIPELINE][VAL_WIRE];
	uint64_t				t0;
	long					issued = 0, n = tg->ks.n;
	int					rc;

	t0 = now_ns();
	while (p.done < n) {
		while (issued - p.done < PIPELINE && issued < n) {
			uint8_t	*v = vals[issued % PIPELINE];

			value_make(issued, tg->ks.gen[issued], v);
			if ((rc = distkv_async_set(tg->conn,
			    tg->ks.paths[issued], v, VAL_WIRE, &opts, load_cb,
			    &p, NULL)) != 0) {
				fprintf(stderr, "agent: async set: %s\n",
				    distkv_strerror(rc));
				return (-1);
			}
			issued++;
		}
		pfd.fd = distkv_fd(tg->conn);
		pfd.events = POLLIN | (distkv_want_write(tg->conn) ? POLLOUT :
		    0);
		pfd.revents = 0;
		if ((rc = poll(&pfd, 1, IO_MS)) < 0 && errno != EINTR) {
			fprintf(stderr, "agent: poll: %s\n", strerror(errno));
			return (-1);
		}
		if (rc == 0) {
			fprintf(stderr, "agent: no reply for %d ms\n", IO_MS);
			return (-1);
		}
		if ((rc = distkv_process(tg->conn)) != 0 || (rc = p.rc) != 0) {
			fprintf(stderr, "agent: load: %s\n",
			    distkv_strerror(rc));
			return (-1);
		}
	}
	tg->load_ns = (double)(now_ns() - t0) / (double)n;
	return (0);
}

/* The generation of the region now at path (0 if it cannot be read). */
static uint64_t
region_generation(const char *path)
{
	struct shm_reader_info	 info;
	struct shm_reader	*r;

	if (shm_reader_open(path, &r) != 0)
		return (0);
	shm_reader_info(r, &info);
	shm_reader_close(r);
	return (info.generation);
}

/* Mean ns of distkv_get on tg->conn over the first n keys. */
static double
conn_get_ns(struct target *tg, long n)
{
	struct distkv_entry	e;
	uint64_t		t0;
	long			i;

	if (n > tg->ks.n)
		n = tg->ks.n;
	t0 = now_ns();
	for (i = 0; i < n; i++) {
		distkv_get(tg->conn, tg->ks.paths[i], 0, &e);
		distkv_entry_clear(&e);
	}
	return ((double)(now_ns() - t0) / (double)n);
}

/* distkv_set latency, and set -> distkv_shm_wait wake-up delay. */
static int
agent_writes(struct target *tg)
{
	struct bench		*b = tg->b;
	struct waitshare	 ws;
	struct waiter_arg	 wa;
	pthread_t		 th;
	uint64_t		*delay, *pub;
	long			 n = b->o.wake_rounds;
	int			 rc = -1;

	delay = calloc((size_t)n, sizeof(*delay));
	pub = calloc((size_t)n, sizeof(*pub));
	if (delay == NULL || pub == NULL)
		goto out;
	fprintf(stderr, "%s: distkv_set, reader blocked in distkv_shm_wait\n",
	    tg->label);
	memset(&ws, 0, sizeof(ws));
	ws.tid = -1;
	memset(&wa, 0, sizeof(wa));
	wa.ws = &ws;
	wa.ds = tg->ds[0];
	wa.cpu = client_cpu(b, 1);
	if (pthread_create(&th, NULL, waiter_thread, &wa) != 0)
		goto out;
	while (LOAD_ACQ(&ws.tid) == -1)
		cpu_relax();
	rc = wake_rounds(tg, &ws, false, true, delay, pub);
	waiter_quit(&ws);
	pthread_join(th, NULL);
	if (rc != 0)
		goto out;
	tg->wake_set[0] = percentile_us(delay, n, 0.50);
	tg->wake_set[1] = percentile_us(delay, n, 0.99);
	tg->set_lat[0] = percentile_us(pub, n, 0.50);
	tg->set_lat[1] = percentile_us(pub, n, 0.99);
	tg->set_done = true;
out:
	free(delay);
	free(pub);
	return (rc);
}

/*
 * The agent run: load --agent-keys keys through the socket, then read them
 * through the agent's region and over the socket, then the writes.
 */
static int
agent_run(struct bench *b, struct target *tg)
{
	struct agentproc	 ap;
	long			 n = b->o.agent_keys, round;
	int			 t, tci, rc, status = -1;
	enum method		 m;

	memset(&ap, 0, sizeof(ap));
	ap.pid = -1;
	snprintf(ap.sock, sizeof(ap.sock), "%s/agent.sock", b->dir);
	snprintf(ap.log, sizeof(ap.log), "%s/agent.log", b->dir);
	snprintf(ap.shm, sizeof(ap.shm), "%s/agent.shm", b->dir);
	tg->b = b;
	tg->n = n;
	tg->label = "agent";
	fprintf(stderr, "agent: building %ld keys\n", n);
	if (keyset_build(&tg->ks, n, true) != 0 || ops_build(tg) != 0) {
		fprintf(stderr, "bench: out of memory\n");
		return (-1);
	}
	if (agent_start(b, &ap) != 0)
		goto out;
	if ((rc = distkv_connect(ap.sock, &tg->conn)) != 0) {
		fprintf(stderr, "agent: connect: %s\n", distkv_strerror(rc));
		goto out;
	}
	if (distkv_shm_of(tg->conn) == NULL) {
		fprintf(stderr, "agent: the connection mapped no region\n");
		goto out;
	}
	/* the socket-only connection: DISTKV_NO_SHM for this connect only */
	setenv("DISTKV_NO_SHM", "1", 1);
	rc = distkv_connect(ap.sock, &tg->sock);
	unsetenv("DISTKV_NO_SHM");
	if (rc != 0 || distkv_shm_of(tg->sock) != NULL) {
		fprintf(stderr, "agent: socket-only connection: %s\n",
		    rc != 0 ? distkv_strerror(rc) : "mapped a region");
		goto out;
	}
	distkv_set_timeout(tg->conn, IO_MS);
	distkv_set_timeout(tg->sock, IO_MS);
	fprintf(stderr, "agent: loading %ld keys (pipelined distkv_async_set)"
	    "\n", n);
	if (agent_load(tg) != 0)
		goto out;
	snprintf(tg->region, sizeof(tg->region), "%s", ap.shm);
	tg->agent_generation = region_generation(ap.shm);
	if (region_inspect(ap.shm, &tg->ks, &tg->ri) != 0)
		fprintf(stderr, "agent: cannot inspect %s\n", ap.shm);
	for (t = 0; t < b->maxthreads; t++) {
		if ((rc = shm_reader_open(ap.shm, &tg->rd[t])) != 0 ||
		    (rc = distkv_shm_open(ap.shm, &tg->ds[t])) != 0) {
			fprintf(stderr, "agent: open %s: %s\n", ap.shm,
			    distkv_strerror(rc));
			goto out;
		}
		if (verify(tg, M_SHM, t, false) != 0 ||
		    verify(tg, M_SHM_PATH, t, false) != 0 ||
		    verify(tg, M_KEY, t, false) != 0 ||
		    verify(tg, M_KEY_STR, t, false) != 0)
			goto out;
	}
	/*
	 * The connection mapped the region the greeting named; the load may
	 * have replaced it (growth).  distkv_get re-maps it on its first
	 * read; the first reads of the new mapping pay its page faults: note
	 * that cost as is, then go on.
	 */
	tg->stale_get_ns = conn_get_ns(tg, 200);
	(void)distkv_shm_counter(distkv_shm_of(tg->conn));
	tg->fresh_get_ns = conn_get_ns(tg, 200);
	if (verify(tg, M_DKV_GET, 0, false) != 0 ||
	    verify(tg, M_SOCKET, 0, true) != 0)
		goto out;
	for (round = 0; round < b->o.rounds; round++)
		for (tci = 0; tci < b->o.ntc; tci++)
			for (m = M_SHM; m <= M_KEY_STR; m++)
				if (measure(tg, m, tci, b->batch_ops) != 0)
					goto out;
	tg->hot[M_SHM] = hot_measure(tg, M_SHM);
	tg->hot[M_SHM_PATH] = hot_measure(tg, M_SHM_PATH);
	tg->hot[M_KEY] = hot_measure(tg, M_KEY);
	tg->hot[M_KEY_STR] = hot_measure(tg, M_KEY_STR);
	tg->hot[M_DKV_GET] = hot_measure(tg, M_DKV_GET);
	/* one handle each: single-threaded */
	for (tci = 0; tci < b->o.ntc && b->o.threads[tci] != 1; tci++)
		;
	if (tci < b->o.ntc) {
		if (measure(tg, M_DKV_GET, tci, b->batch_ops) != 0)
			goto out;
		tg->lat = calloc((size_t)tg->nops, sizeof(*tg->lat));
		if (tg->lat == NULL || measure(tg, M_SOCKET, tci,
		    b->batch_ops / SOCKET_DIV > 0 ? b->batch_ops / SOCKET_DIV :
		    1) != 0)
			goto out;
		tg->sock_p50 = percentile_us(tg->lat, tg->nlat, 0.50);
		tg->sock_p99 = percentile_us(tg->lat, tg->nlat, 0.99);
	}
	for (tci = 0; tci < b->o.ntc; tci++)
		for (m = M_SHM_PATH; m <= M_DKV_GET; m++)
			if (tg->res[m][tci].done && tg->res[m][tci].sum !=
			    tg->res[M_SHM][tci].sum) {
				fprintf(stderr, "agent: %s read other values "
				    "than shm_reader_get\n", method_name[m]);
				goto out;
			}
	if (b->o.wake_rounds > 0 && agent_writes(tg) != 0)
		goto out;
	/* every key once more, after the sets */
	if (verify(tg, M_SHM, 0, false) != 0 ||
	    verify(tg, M_SOCKET, 0, true) != 0)
		goto out;
	status = 0;
out:
	distkv_close(tg->conn);
	distkv_close(tg->sock);
	tg->conn = tg->sock = NULL;
	for (t = 0; t < MAX_THREADS; t++) {
		shm_reader_close(tg->rd[t]);
		distkv_shm_close(tg->ds[t]);
		tg->rd[t] = NULL;
		tg->ds[t] = NULL;
	}
	if (agent_stop(&ap) != 0)
		status = -1;
	if (status != 0)
		log_tail(ap.log, "distkv-agent");
	return (status);
}

/*
 * HOT_OPS gets of key 0 through m (after a warm-up), median of five runs,
 * ns/op: everything in cache, so this is the cost of the calls alone.
 */
static double
hot_measure(struct target *tg, enum method m)
{
	double		ns[5];
	uint8_t		buf[256];
	uint64_t	t0;
	size_t		len;
	long		i;
	int		r;

	for (i = 0; i < HOT_OPS / 10; i++)
		(void)get_one(tg, m, 0, 0, buf, sizeof(buf), &len);
	for (r = 0; r < 5; r++) {
		t0 = now_ns();
		for (i = 0; i < HOT_OPS / 5; i++)
			if (get_one(tg, m, 0, 0, buf, sizeof(buf), &len) != 0)
				return (-1);
		ns[r] = (double)(now_ns() - t0) / (HOT_OPS / 5);
		tg->b->checksum += value_sum(buf, len);
	}
	return (median(ns, 5));
}

/* ---- one in-process size ---- */

static int
size_run(struct bench *b, struct target *tg, long n, bool wake)
{
	static char	 labels[MAX_SIZES][32];
	static int	 nlabels;
	int		 t, tci, rc;
	long		 round;
	enum method	 m;

	tg->b = b;
	tg->n = n;
	snprintf(labels[nlabels % MAX_SIZES], sizeof(labels[0]), "%ld keys",
	    n);
	tg->label = labels[nlabels++ % MAX_SIZES];
	snprintf(tg->region, sizeof(tg->region), "%s/region-%ld.shm", b->dir,
	    n);
	snprintf(tg->lmdb, sizeof(tg->lmdb), "%s/lmdb-%ld.mdb", b->dir, n);
	fprintf(stderr, "%s: building keys, paths, op streams\n", tg->label);
	if (keyset_build(&tg->ks, n, true) != 0 || ops_build(tg) != 0) {
		fprintf(stderr, "bench: out of memory\n");
		return (-1);
	}
	fprintf(stderr, "%s: region (shm_writer_put, in-process)\n",
	    tg->label);
	if (region_build(tg) != 0)
		return (-1);
	if ((rc = region_inspect(tg->region, &tg->ks, &tg->ri)) != 0) {
		fprintf(stderr, "bench: inspect %s: %s\n", tg->region,
		    strerror(-rc));
		return (-1);
	}
	fprintf(stderr, "%s: in-process hash table, LMDB\n", tg->label);
	if ((rc = ht_build(tg, tg->ri.slots)) != 0) {
		fprintf(stderr, "bench: hash table: %s\n", strerror(-rc));
		return (-1);
	}
	if ((rc = copy_build(tg)) != 0) {
		fprintf(stderr, "bench: copy of %s: %s\n", tg->region,
		    strerror(-rc));
		return (-1);
	}
	tg->mean_klen = tg->ks.mean_klen;
	tg->ht_mean_probe = tg->ht->mean_probe;
	tg->ht_max_probe = tg->ht->max_probe;
	if ((b->o.only & (PART_LMDB | PART_LMDB_TXN)) != 0 &&
	    lmdb_build(tg, tg->lmdb) != 0)
		return (-1);
	/* every key through every handle: checks, and faults the maps in */
	fprintf(stderr, "%s: verifying every key through every handle\n",
	    tg->label);
	if (verify(tg, M_HT, 0, false) != 0 ||
	    verify(tg, M_COPY, 0, false) != 0 || (tg->env != NULL &&
	    verify(tg, M_LMDB, 0, false) != 0))
		return (-1);
	for (t = 0; t < b->maxthreads; t++) {
		if ((rc = shm_reader_open(tg->region, &tg->rd[t])) != 0 ||
		    (rc = distkv_shm_open(tg->region, &tg->ds[t])) != 0) {
			fprintf(stderr, "bench: open %s: %s\n", tg->region,
			    distkv_strerror(rc));
			return (-1);
		}
		if (verify(tg, M_SHM, t, false) != 0 ||
		    verify(tg, M_SHM_PATH, t, false) != 0 ||
		    verify(tg, M_KEY, t, false) != 0 ||
		    verify(tg, M_KEY_STR, t, false) != 0)
			return (-1);
	}
	/* rounds interleaved, so that a change in other load hits all */
	for (round = 0; round < b->o.rounds; round++)
		for (tci = 0; tci < b->o.ntc; tci++)
			for (m = M_HT; m <= M_LMDB_TXN; m++)
				if ((b->o.only & (1u << m)) != 0 &&
				    measure(tg, m, tci, b->batch_ops) != 0)
					return (-1);
	for (m = M_HT; m <= M_KEY_STR; m++)
		if ((b->o.only & (1u << m)) != 0)
			tg->hot[m] = hot_measure(tg, m);
	/* the same keys in the same order: the same sum, whatever the method */
	for (tci = 0; tci < b->o.ntc; tci++)
		for (m = M_COPY; m <= M_LMDB_TXN; m++)
			if (tg->res[m][tci].done && tg->res[M_HT][tci].done &&
			    tg->res[m][tci].sum != tg->res[M_HT][tci].sum) {
				fprintf(stderr, "%s: %s read other values than "
				    "the hash table\n", tg->label,
				    method_name[m]);
				return (-1);
			}
	if ((b->o.only & PART_PUT) != 0 && measure_writer(tg) != 0)
		return (-1);
	if (wake && (b->o.only & PART_WAKE) != 0 && b->o.wake_rounds > 0 &&
	    measure_wake(tg) != 0)
		return (-1);
	/* after the updates (and any region rebuild): every key again */
	for (t = 0; t < b->maxthreads; t++)
		if (verify(tg, M_SHM, t, false) != 0)
			return (-1);
	return (0);
}

static void
target_free(struct target *tg)
{
	char	lock[FILE_MAX + 8];
	int	t;

	for (t = 0; t < MAX_THREADS; t++) {
		shm_reader_close(tg->rd[t]);
		distkv_shm_close(tg->ds[t]);
		free(tg->ops[t]);
		tg->rd[t] = NULL;
		tg->ds[t] = NULL;
		tg->ops[t] = NULL;
	}
	if (tg->w != NULL)
		shm_writer_close(tg->w, true);
	tg->w = NULL;
	if (tg->env != NULL) {
		mdb_env_close(tg->env);
		unlink(tg->lmdb);
		snprintf(lock, sizeof(lock), "%s-lock", tg->lmdb);
		unlink(lock);
	}
	tg->env = NULL;
	ht_free(tg->ht);
	tg->ht = NULL;
	free(tg->copy);
	tg->copy = NULL;
	keyset_free(&tg->ks);
	free(tg->lat);
	tg->lat = NULL;
}

/* ---- files ---- */

/* Remove the flat temp dir: whatever is left in it, then it. */
/* SIGINT/SIGTERM: kill what we started, remove the known files, leave. */
static void
on_signal(int sig)
{
	size_t	i;

	for (i = 0; i < 2; i++)
		if (sig_pid[i] > 0) {
			kill(sig_pid[i], SIGKILL);
			waitpid(sig_pid[i], NULL, 0);
		}
	for (i = 0; i < NFILES; i++)
		if (sig_files[i][0] != '\0')
			unlink(sig_files[i]);
	if (sig_dir[0] != '\0')
		rmdir(sig_dir);
	_exit(128 + sig);
}

/* Every file the run may create, for on_signal. */
static void
sig_files_set(const struct bench *b)
{
	static const char *const agent[] = { "agent.sock", "agent.log",
	    "agent.shm", "agent.shm.new" };
	static const char *const per[] = { "region-%ld.shm",
	    "region-%ld.shm.new", "lmdb-%ld.mdb", "lmdb-%ld.mdb-lock" };
	size_t	i, j, f = 0;
	char	name[64];

	for (i = 0; i < 4; i++)
		snprintf(sig_files[f++], sizeof(sig_files[0]), "%s/%s", b->dir,
		    agent[i]);
	for (j = 0; j < (size_t)b->o.nkeys; j++)
		for (i = 0; i < 4; i++) {
			snprintf(name, sizeof(name), per[i], b->o.keys[j]);
			snprintf(sig_files[f++], sizeof(sig_files[0]), "%s/%s",
			    b->dir, name);
		}
	snprintf(sig_dir, sizeof(sig_dir), "%s", b->dir);
}

/* ---- output ---- */

static const char *
pass(bool ok)
{
	return (ok ? "PASS" : "FAIL");
}

/* A table cell: value v with fmt, or "-" if there is none. */
static const char *
cell(char *buf, size_t len, bool ok, const char *fmt, double v)
{
	if (ok)
		snprintf(buf, len, fmt, v);
	else
		snprintf(buf, len, "-");
	return (buf);
}

static void
print_size(const struct bench *b, const struct target *tg)
{
	const struct opts	*o = &b->o;
	const struct result	*r, *ht, *shm;
	char			 c[32];
	int			 tci, one = -1;
	enum method		 m;

	for (tci = 0; tci < o->ntc; tci++)
		if (o->threads[tci] == 1)
			one = tci;
	printf("\n== %s: region populated in-process (shm_writer_put) ==\n",
	    tg->label);
	printf("region %.1f MB, %" PRIu64 " slots, load %.2f, probe length "
	    "mean %.2f max %" PRIu64 "; in-process table: same slots, probe "
	    "mean %.2f max %" PRIu64 "\n", (double)tg->ri.size / 1e6,
	    tg->ri.slots, (double)tg->ri.live / (double)tg->ri.slots,
	    tg->ri.mean_probe, tg->ri.max_probe, tg->ht_mean_probe,
	    tg->ht_max_probe);
	printf("load: shm_writer_put %.0f ns/key (new keys, %" PRIu64 " region "
	    "rebuilds), LMDB %s ns/key\n\n", tg->load_ns, tg->load_rebuilds,
	    cell(c, sizeof(c), tg->lmdb_load_ns > 0, "%.0f", tg->lmdb_load_ns));
	printf("%-28s", "ns/op per thread (median)");
	for (tci = 0; tci < o->ntc; tci++) {
		snprintf(c, sizeof(c), "%ld thr", o->threads[tci]);
		printf(" %9s", c);
	}
	for (tci = 0; tci < o->ntc; tci++)
		if (tci != one && one >= 0) {
			snprintf(c, sizeof(c), "x%ld thrpt", o->threads[tci]);
			printf(" %9s", c);
		}
	printf(" %9s %9s\n", "vs floor", "vs shm");
	for (m = M_HT; m <= M_LMDB_TXN; m++) {
		printf("%-28s", method_name[m]);
		for (tci = 0; tci < o->ntc; tci++) {
			r = &tg->res[m][tci];
			printf(" %9s", cell(c, sizeof(c), r->done, "%.1f",
			    r->ns));
		}
		if (one < 0) {
			printf("\n");
			continue;
		}
		r = &tg->res[m][one];
		for (tci = 0; tci < o->ntc; tci++)
			if (tci != one)
				printf(" %9s", cell(c, sizeof(c), r->done &&
				    tg->res[m][tci].done, "%.2fx",
				    (double)o->threads[tci] * r->ns /
				    tg->res[m][tci].ns));
		ht = &tg->res[M_HT][one];
		shm = &tg->res[M_SHM][one];
		printf(" %9s", cell(c, sizeof(c), r->done && ht->done, "%.2fx",
		    r->ns / ht->ns));
		printf(" %9s\n", cell(c, sizeof(c), r->done && shm->done,
		    "%.2fx", r->ns / shm->ns));
	}
	printf("one key, all in cache (the calls alone): in-process %.1f, "
	    "region layout %.1f, shm_reader_get %.1f, distkv_shm_get %.1f, "
	    "distkv_key_get %.1f, distkv_key_get_str %.1f ns/op\n",
	    tg->hot[M_HT], tg->hot[M_COPY], tg->hot[M_SHM],
	    tg->hot[M_SHM_PATH], tg->hot[M_KEY], tg->hot[M_KEY_STR]);
	if (tg->put_ns > 0) {
		printf("shm_writer_put, update of a random key: %.0f ns/op "
		    "median batch, %.0f mean incl. %" PRIu64 " region "
		    "rebuild%s\n", tg->put_ns, tg->put_mean_ns,
		    tg->put_rebuilds, tg->put_rebuilds == 1 ? "" : "s");
		printf("shm_writer_put + shm_writer_notify per update (nobody "
		    "waiting): %.0f ns/op\n", tg->put_notify_ns);
	}
	if (tg->wake_done) {
		printf("wake-up, publish (put + notify) -> shm_reader_wait "
		    "returns, %ld rounds, waiter on CPU %ld:\n",
		    o->wake_rounds, client_cpu(b, 1));
		printf("  thread  p50 %6.1f us  p99 %6.1f us   (put + notify "
		    "with a waiter: p50 %.1f us, p99 %.1f us)\n",
		    tg->wake_thr[0], tg->wake_thr[1], tg->pub_waiter[0],
		    tg->pub_waiter[1]);
		printf("  process p50 %6.1f us  p99 %6.1f us\n",
		    tg->wake_proc[0], tg->wake_proc[1]);
	}
}

static void
print_agent(const struct bench *b, const struct target *ag,
    const struct target *same)
{
	const struct opts	*o = &b->o;
	int			 tci;
	enum method		 m;

	printf("\n== %s through a real distkv-agent (--shm, pinned to CPU "
	    "%ld): keys set with pipelined distkv_async_set, %d in flight, "
	    "%.0f ns/key ==\n", ag->label, o->cpu_server, PIPELINE,
	    ag->load_ns);
	printf("agent region %.1f MB, %" PRIu64 " slots, load %.2f, probe "
	    "length mean %.2f max %" PRIu64 "\n\n", (double)ag->ri.size / 1e6,
	    ag->ri.slots, (double)ag->ri.live / (double)ag->ri.slots,
	    ag->ri.mean_probe, ag->ri.max_probe);
	printf("%-28s %9s %9s %14s\n", "ns/op per thread (median)", "threads",
	    "agent", "in-process");
	for (m = M_SHM; m <= M_SOCKET; m++)
		for (tci = 0; tci < o->ntc; tci++) {
			if (!ag->res[m][tci].done)
				continue;
			printf("%-28s %9ld %9.1f", method_name[m],
			    o->threads[tci], ag->res[m][tci].ns);
			if (same != NULL && same->res[m][tci].done)
				printf(" %9.1f %4.2fx", same->res[m][tci].ns,
				    ag->res[m][tci].ns / same->res[m][tci].ns);
			printf("\n");
		}
	if (ag->stale_get_ns > 5 * ag->fresh_get_ns)
		printf("NOTE: distkv_get on the connection opened before the "
		    "load took %.0f ns/op: the agent had replaced its region "
		    "(now generation %" PRIu64 "), the first read re-mapped "
		    "it and every read took a page fault on each page of the "
		    "new mapping it touched first (no socket request: strace); "
		    "the same gets again: %.0f ns/op\n",
		    ag->stale_get_ns, ag->agent_generation, ag->fresh_get_ns);
	printf("one key, all in cache (the calls alone): shm_reader_get %.1f, "
	    "distkv_shm_get %.1f, distkv_key_get %.1f, distkv_key_get_str "
	    "%.1f, distkv_get (shm) %.1f ns/op\n", ag->hot[M_SHM],
	    ag->hot[M_SHM_PATH], ag->hot[M_KEY], ag->hot[M_KEY_STR],
	    ag->hot[M_DKV_GET]);
	printf("distkv_get over the socket: p50 %.1f us, p99 %.1f us (%ld "
	    "gets)\n", ag->sock_p50, ag->sock_p99, ag->nlat);
	if (ag->set_done) {
		printf("distkv_set (sync, region on, a reader waiting): p50 %.1f "
		    "us, p99 %.1f us\n", ag->set_lat[0], ag->set_lat[1]);
		printf("wake-up, distkv_set start -> distkv_shm_wait returns "
		    "(reader thread on CPU %ld): p50 %.1f us, p99 %.1f us\n",
		    client_cpu(b, 1), ag->wake_set[0], ag->wake_set[1]);
	}
}

static void
print_results(const struct bench *b, struct target *tgs, int ntg,
    struct target *ag)
{
	const struct opts	*o = &b->o;
	const struct target	*same = NULL, *t100 = NULL;
	double			 r;
	char			 cpus[64];
	int			 i, tci, one = -1, two = -1, len = 0;

	for (tci = 0; tci < o->ntc; tci++) {
		if (o->threads[tci] == 1)
			one = tci;
		if (o->threads[tci] == 2)
			two = tci;
	}
	for (i = 0; i < o->ncpu_client && len < (int)sizeof(cpus) - 8; i++)
		len += snprintf(cpus + len, sizeof(cpus) - (size_t)len, "%s%ld",
		    i ? "," : "", o->cpu_client[i]);
	printf("\nbench_shm: shared-memory gets vs an in-process hash table, "
	    "%s and the agent socket\n", MDB_VERSION_STRING);
	printf("keys svc/NNNNNN/config/<field> (msgpack key %.1f B mean), "
	    "values %d B text (%d B as msgpack str 8)\n", tgs[0].mean_klen,
	    VAL_LEN, VAL_WIRE);
	printf("random key per op from a pre-generated stream; per "
	    "measurement 1 warm-up + %ld timed batches of %ld ops per thread, "
	    "median batch\n", o->batches, b->batch_ops);
	printf("reader threads on CPUs %s (-1: not pinned), agent on CPU "
	    "%ld; files in %s (%s); load average at start %s\n", cpus,
	    o->cpu_server, b->dir, b->tmpfs ? "tmpfs" : "not /dev/shm",
	    b->loadavg);
	for (i = 0; i < ntg; i++) {
		print_size(b, &tgs[i]);
		if (ag != NULL && tgs[i].n == ag->n)
			same = &tgs[i];
		if (tgs[i].n == 100000)
			t100 = &tgs[i];
	}
	if (ag != NULL)
		print_agent(b, ag, same);

	printf("\ngoals (shm get = shm_reader_get on key bytes, 1 thread):\n");
	for (i = 0; i < ntg && one >= 0; i++) {
		if (!tgs[i].res[M_SHM][one].done || !tgs[i].res[M_HT][one].done)
			continue;
		r = tgs[i].res[M_SHM][one].ns / tgs[i].res[M_HT][one].ns;
		printf("  %s  shm get <= 1.3x the in-process hash table at %ld "
		    "keys: %.2fx  (distkv_shm_get with a path: %.2fx)\n",
		    pass(r <= 1.3), tgs[i].n, r,
		    tgs[i].res[M_SHM_PATH][one].ns / tgs[i].res[M_HT][one].ns);
	}
	/* issue 14: the calls users make, against the same floor */
	for (i = 0; i < ntg; i++)
		for (tci = 0; tci < o->ntc; tci++) {
			const struct result *ht = &tgs[i].res[M_HT][tci];
			enum method m;

			if (!ht->done)
				continue;
			for (m = M_SHM_PATH; m <= M_KEY_STR; m++) {
				if (!tgs[i].res[m][tci].done)
					continue;
				r = tgs[i].res[m][tci].ns / ht->ns;
				printf("  %s  %s <= 1.5x the floor at %ld keys, "
				    "%ld thr: %.2fx\n", pass(r <= 1.5),
				    method_name[m], tgs[i].n,
				    o->threads[tci], r);
			}
		}
	if (ag != NULL && same != NULL)
		for (tci = 0; tci < o->ntc; tci++) {
			const struct result *ht = &same->res[M_HT][tci];
			enum method m;

			if (!ht->done)
				continue;
			for (m = M_SHM_PATH; m <= M_DKV_GET; m++) {
				if (!ag->res[m][tci].done ||
				    (m > M_KEY_STR && m < M_DKV_GET))
					continue;
				r = ag->res[m][tci].ns / ht->ns;
				printf("  %s  agent's region: %s <= 1.5x the "
				    "floor at %ld keys, %ld thr: %.2fx\n",
				    pass(r <= 1.5), method_name[m], ag->n,
				    o->threads[tci], r);
			}
		}
	if (t100 == NULL && ntg > 0)
		t100 = &tgs[0];
	if (t100 != NULL && one >= 0 && t100->res[M_SHM][one].done &&
	    t100->res[M_LMDB][one].done && t100->res[M_LMDB_TXN][one].done) {
		r = t100->res[M_LMDB][one].ns / t100->res[M_SHM][one].ns;
		printf("  %s  shm get >= 3x faster than LMDB mdb_get at %ld "
		    "keys: %.1fx  (LMDB with a txn per get: %.1fx)\n",
		    pass(r >= 3), t100->n, r,
		    t100->res[M_LMDB_TXN][one].ns / t100->res[M_SHM][one].ns);
	}
	if (ag != NULL && one >= 0 && ag->res[M_SOCKET][one].done) {
		r = ag->res[M_SOCKET][one].ns / ag->res[M_SHM][one].ns;
		printf("  %s  shm get >= 500x faster than a socket get (agent, "
		    "%ld keys): %.0fx  (distkv_get via shm vs socket: %.0fx)\n",
		    pass(r >= 500), ag->n, r, ag->res[M_SOCKET][one].ns /
		    ag->res[M_DKV_GET][one].ns);
	}
	for (i = 0; i < ntg && one >= 0 && two >= 0; i++) {
		if (!tgs[i].res[M_SHM][one].done)
			continue;
		r = 2 * tgs[i].res[M_SHM][one].ns / tgs[i].res[M_SHM][two].ns;
		printf("  %s  2 threads >= 1.8x one thread's throughput at %ld "
		    "keys: %.2fx\n", pass(r >= 1.8), tgs[i].n, r);
	}
	printf("\nchecksum of all values read 0x%016" PRIx64 "; %ld values "
	    "verified (all equal to the last write, missing keys reported "
	    "missing)\n", b->checksum, b->verified);
}

/* ---- main ---- */

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "keys", required_argument, NULL, 'k' },
		{ "ops", required_argument, NULL, 'o' },
		{ "batches", required_argument, NULL, 'b' },
		{ "threads", required_argument, NULL, 't' },
		{ "cpu-client", required_argument, NULL, 'c' },
		{ "cpu-server", required_argument, NULL, 's' },
		{ "agent-keys", required_argument, NULL, 'K' },
		{ "wake-rounds", required_argument, NULL, 'w' },
		{ "agent", required_argument, NULL, 'a' },
		{ "dir", required_argument, NULL, 'd' },
		{ "only", required_argument, NULL, 'O' },
		{ "rounds", required_argument, NULL, 'R' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct target	 tgs[MAX_SIZES], ag;
	struct bench		 b;
	struct sigaction	 sa;
	struct stat		 st;
	const char		*parent;
	int			 ch, i, n, rc, ntg = 0, status = 1;
	bool			 agent_done = false;

	memset(&b, 0, sizeof(b));
	b.o.keys[0] = 100000;
	b.o.keys[1] = 1000000;
	b.o.nkeys = 2;
	b.o.ops = 1000000;
	b.o.batches = 10;
	b.o.threads[0] = 1;
	b.o.threads[1] = 2;
	b.o.ntc = 2;
	b.o.cpu_client[0] = 1;
	b.o.cpu_client[1] = 0;
	b.o.ncpu_client = 2;
	b.o.cpu_server = 0;
	b.o.agent_keys = 100000;
	b.o.wake_rounds = 1000;
	b.o.only = PART_ALL;
	b.o.rounds = 3;
#ifdef TOP_BUILDDIR
	b.o.agent = TOP_BUILDDIR "/distkv-agent";
#else
	b.o.agent = "./distkv-agent";
#endif

	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		n = 0;
		switch (ch) {
		case 'k':
			n = b.o.nkeys = parse_list(optarg, 1, MAX_KEYS,
			    b.o.keys, MAX_SIZES);
			break;
		case 't':
			n = b.o.ntc = parse_list(optarg, 1, MAX_THREADS,
			    b.o.threads, MAX_TC);
			break;
		case 'c':
			n = b.o.ncpu_client = parse_list(optarg, -1,
			    CPU_SETSIZE - 1, b.o.cpu_client, MAX_THREADS);
			break;
		case 'o':
			n = parse_long(optarg, 1, MAX_OPS, &b.o.ops);
			break;
		case 'b':
			n = parse_long(optarg, 1, MAX_BATCHES, &b.o.batches);
			break;
		case 's':
			n = parse_long(optarg, -1, CPU_SETSIZE - 1,
			    &b.o.cpu_server);
			break;
		case 'K':
			n = parse_long(optarg, 0, MAX_KEYS, &b.o.agent_keys);
			break;
		case 'w':
			n = parse_long(optarg, 0, 1000000, &b.o.wake_rounds);
			break;
		case 'a':
			b.o.agent = optarg;
			break;
		case 'd':
			b.o.dir = optarg;
			break;
		case 'O':
			n = parse_parts(optarg, &b.o.only);
			break;
		case 'R':
			n = parse_long(optarg, 1, MAX_ROUNDS, &b.o.rounds);
			break;
		case 'h':
			usage(stdout);
			return (0);
		default:
			usage(stderr);
			return (2);
		}
		if (n < 0) {
			for (i = 0; longopts[i].val != ch; i++)
				;
			fprintf(stderr, "bench: bad value for --%s: %s\n",
			    longopts[i].name, optarg);
			return (2);
		}
	}
	if (optind != argc) {
		usage(stderr);
		return (2);
	}
	for (i = 0; i < b.o.ntc; i++)
		if (b.o.threads[i] > b.maxthreads)
			b.maxthreads = (int)b.o.threads[i];
	b.batch_ops = b.o.ops / b.o.batches;
	if (b.batch_ops < 1) {
		fprintf(stderr, "bench: --ops must be at least --batches\n");
		return (2);
	}

	loadavg_read(b.loadavg, sizeof(b.loadavg));
	if ((rc = pin_cpu(b.o.cpu_client[0])) != 0) {
		fprintf(stderr, "bench: cpu %ld: %s\n", b.o.cpu_client[0],
		    strerror(-rc));
		return (1);
	}
	if ((parent = b.o.dir) == NULL) {
		if (stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) &&
		    access("/dev/shm", W_OK) == 0)
			parent = "/dev/shm";
		else if ((parent = getenv("TMPDIR")) == NULL || *parent == '\0')
			parent = "/tmp";
	}
	b.tmpfs = strncmp(parent, "/dev/shm", 8) == 0;
	if (strlen(parent) + sizeof("/distkv-bench-shm.XXXXXX") > sizeof(b.dir)) {
		fprintf(stderr, "bench: %s: too long for a socket path\n",
		    parent);
		return (2);
	}
	snprintf(b.dir, sizeof(b.dir), "%s/distkv-bench-shm.XXXXXX", parent);
	if (mkdtemp(b.dir) == NULL) {
		fprintf(stderr, "bench: mkdtemp %s: %s\n", b.dir,
		    strerror(errno));
		return (1);
	}
	sig_files_set(&b);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	for (i = 0; i < b.o.nkeys; i++) {
		rc = size_run(&b, &tgs[i], b.o.keys[i], i == 0);
		ntg++;
		/* keep the numbers, free the data (and the files) */
		target_free(&tgs[i]);
		if (rc != 0)
			goto out;
	}
	if (b.o.agent_keys > 0 && (b.o.only & PART_AGENT) != 0) {
		if (agent_run(&b, &ag) != 0)
			goto out;
		agent_done = true;
		/* same keys, order and values as the in-process region */
		for (i = 0; i < ntg; i++)
			if (tgs[i].n == ag.n && tgs[i].res[M_SHM][0].sum !=
			    ag.res[M_SHM][0].sum) {
				fprintf(stderr, "bench: the agent's region "
				    "returned other values than the "
				    "in-process one\n");
				goto out;
			}
	}
	status = 0;
out:
	if (status == 0)
		print_results(&b, tgs, ntg, agent_done ? &ag : NULL);
	for (i = 0; i < ntg; i++)
		target_free(&tgs[i]);
	target_free(&ag);
	dir_remove(b.dir);
	return (status);
}
