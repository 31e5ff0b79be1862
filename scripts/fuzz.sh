#!/bin/sh
# Coverage-guided fuzzing of every decoder with libFuzzer (docs/fuzzing.md).
#
#   scripts/fuzz.sh [TARGET|all] [SECONDS] [libFuzzer options...]
#
# TARGET is one of: requests auth persist serf_events peer path_json
# shm_reader xlate_lua etcd_url
# (default: all); SECONDS per target (default 60).  The old form
# `scripts/fuzz.sh SECONDS` still fuzzes the shm reader alone.
#
# The project is built once with clang -fsanitize=fuzzer-no-link,address,
# undefined in $FUZZ_DIR/tree (default _build/fuzz/tree); each harness
# tests/fuzz/fuzz_TARGET.c is linked against it with -fsanitize=fuzzer.
# Seeds come from the harness's own -DFUZZ_MAKE_SEEDS program and from
# tests/fuzz/corpus/TARGET; the corpus grows in $FUZZ_DIR/TARGET/corpus
# and is kept between runs.  Crashes land in $FUZZ_DIR/TARGET/artifacts;
# for each one the replay command is printed.  Known, not yet fixed bugs
# (fuzz_common.h's fuzz_pending) are saved once in $FUZZ_DIR/TARGET/pending
# and do not stop the run.
#
# FUZZ_CPU_SECS=N stops each fuzzer after N seconds of CPU time (its own,
# user + system) instead of SECONDS of wall time; set SECONDS high then.
# FUZZ_TIMEOUT (default 10) is libFuzzer's -timeout, in wall seconds: on a
# busy machine a niced fuzzer can wait that long for the CPU, so long runs
# there want more (docs/fuzzing.md).
#
# Runs one fuzzer at a time, niced; exit status 0 if nothing crashed.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
all="requests auth persist serf_events peer path_json shm_reader xlate_lua etcd_url"
target=all
case "${1:-}" in
"") ;;
*[!0-9]*) target=$1; shift ;;
*) target=shm_reader ;;	# old usage: SECONDS first
esac
secs=${1:-60}
[ $# -gt 0 ] && shift
dir=${FUZZ_DIR:-$top/_build/fuzz}
cc=${FUZZ_CC:-clang}
[ "$target" = all ] && targets=$all || targets=$target
for t in $targets; do
	case " $all " in *" $t "*) ;; *)
		echo "fuzz.sh: unknown target '$t' (one of: $all, all)" >&2
		exit 2 ;;
	esac
done

pc() { pkg-config "$@" 2>/dev/null || true; }
mp=msgpack-c
pkg-config --exists msgpack-c 2>/dev/null || mp=msgpack
libs="$(pc --libs $mp) $(pc --libs libxxhash) $(pc --libs libsodium) \
$(pc --libs jansson) $(pc --libs libssl) $(pc --libs libcrypto) \
$(pc --libs libsystemd) $(pc --libs lua5.4) $(pc --libs libmicrohttpd) \
$(pc --libs yaml-0.1) -lev -lm"
incs="-I$top/tests/fuzz -I$top/libclient -I$top/shm -I$top/agent \
$(pc --cflags $mp) $(pc --cflags libxxhash) $(pc --cflags jansson) \
$(pc --cflags lua5.4)"
san="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
fuzzdef=-DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
cflags="-std=gnu11 -g -O1 -D_GNU_SOURCE -Wall -Wextra -Werror $fuzzdef"
tree=$dir/tree

# The project, instrumented for coverage, as static libraries.
build_tree() {
	[ -x "$top/configure" ] || (cd "$top" && autoreconf -fi)
	mkdir -p "$tree"
	# a tree configured before the fuzzing-only define is configured again
	if [ -f "$tree/Makefile" ] &&
	    ! grep -q FUZZING_BUILD_MODE "$tree/Makefile"; then
		rm -f "$tree/Makefile"
		find "$tree" -name '*.o' -o -name '*.lo' | xargs rm -f
	fi
	if [ ! -f "$tree/Makefile" ]; then
		echo "fuzz.sh: configuring $tree"
		# FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION: libFuzzer's usual
		# define; here it only makes Argon2id cheap (auth_password.h)
		(cd "$tree" && "$top/configure" -q --disable-shared \
			--enable-asan --enable-ubsan CC="$cc" \
			CFLAGS="-g -O1 -fsanitize=fuzzer-no-link $fuzzdef")
	fi
	echo "fuzz.sh: building $tree"
	make -s -C "$tree" -j2 libagent.la libdistkv.la libproto.la libshm.la
}
tree_libs() {
	echo "$tree/.libs/libagent.a $tree/.libs/libdistkv.a" \
		"$tree/.libs/libproto.a $tree/.libs/libshm.a"
}

# build TARGET: $dir/fuzz_TARGET and $dir/fuzz_TARGET_seeds
build() {
	t=$1 src=$top/tests/fuzz/fuzz_$1.c
	if [ "$t" = shm_reader ]; then
		# shellcheck disable=SC2086
		$cc $cflags $incs $san -fsanitize=fuzzer -o "$dir/fuzz_$t" \
			"$src" "$top/shm/reader.c" $libs
		# shellcheck disable=SC2086
		$cc $cflags $incs $san -DFUZZ_MAKE_SEEDS -o "$dir/fuzz_${t}_seeds" \
			"$src" "$top/shm/reader.c" "$top/shm/writer.c" "$top/shm/holes.c" $libs
		return
	fi
	# shellcheck disable=SC2046,SC2086
	$cc $cflags $incs $san -fsanitize=fuzzer -o "$dir/fuzz_$t" "$src" \
		$(tree_libs) $libs
	# shellcheck disable=SC2046,SC2086
	$cc $cflags $incs $san -fsanitize=fuzzer-no-link -DFUZZ_MAKE_SEEDS \
		-o "$dir/fuzz_${t}_seeds" "$src" $(tree_libs) $libs
}

# Run "$@", then print its CPU time (the fuzzer's alone, for the notes).
timed() {
	if [ -x /usr/bin/time ]; then
		/usr/bin/time -f "fuzz.sh: $t: fuzzer CPU %U s user + %S s system, %e s wall" "$@"
	else
		"$@"
	fi
}

# cpu_watch PIDFILE SECS: interrupt the fuzzer whose pid PIDFILE holds once
# it has used SECS seconds of CPU (user + system), however long that takes
# on a busy machine; libFuzzer prints its final stats on SIGINT.
cpu_watch() {
	hz=$(getconf CLK_TCK)
	while [ ! -s "$1" ]; do sleep 1; done
	p=$(cat "$1")
	while [ -r "/proc/$p/stat" ]; do
		# fields 14, 15: utime, stime in clock ticks (after "(comm)")
		used=$(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12 + $13}')
		if [ "$used" -ge $(($2 * hz)) ]; then
			echo "fuzz.sh: $t: $2 CPU seconds used, stopping" >&2
			touch "$(dirname "$1")/.cpu-limit"
			kill -INT "$p" 2>/dev/null || true
			return 0
		fi
		sleep 5
	done
}

# Largest input per target (bytes).
max_len() {
	case $1 in
	shm_reader) echo 400000 ;;
	persist) echo 131072 ;;
	path_json|etcd_url) echo 4096 ;;
	requests|auth) echo 16384 ;;
	*) echo 65536 ;;
	esac
}

mkdir -p "$dir"

[ "$targets" = shm_reader ] || build_tree
status=0
for t in $targets; do
	td=$dir/$t
	mkdir -p "$td/corpus" "$td/seeds" "$td/artifacts" "$td/pending"
	echo "fuzz.sh: building $t"
	build "$t"
	rm -f "$td/seeds"/*
	"$dir/fuzz_${t}_seeds" "$td/seeds"
	dict= kept=
	[ -d "$top/tests/fuzz/corpus/$t" ] && kept=$top/tests/fuzz/corpus/$t
	[ -f "$top/tests/fuzz/$t.dict" ] && dict="-dict=$top/tests/fuzz/$t.dict"
	echo "fuzz.sh: fuzzing $t for $secs s"
	rc=0
	touch "$td/.start"
	DISTKV_FUZZ_PENDING_DIR=$td/pending
	export DISTKV_FUZZ_PENDING_DIR
	rm -f "$td/.pid"
	[ -n "${FUZZ_CPU_SECS:-}" ] && cpu_watch "$td/.pid" "$FUZZ_CPU_SECS" &
	# shellcheck disable=SC2086
	timed nice -n 19 sh -c 'echo $$ >"$0"; exec "$@"' "$td/.pid" \
		"$dir/fuzz_$t" \
		-max_total_time="$secs" -max_len="$(max_len "$t")" \
		-timeout="${FUZZ_TIMEOUT:-10}" \
		-rss_limit_mb=2048 -malloc_limit_mb=1024 \
		-artifact_prefix="$td/artifacts/" -print_final_stats=1 \
		$dict "$@" "$td/corpus" "$td/seeds" $kept || rc=$?
	wait
	# interrupted by cpu_watch: libFuzzer exits 72 after its final stats
	[ $rc -eq 72 ] && [ -f "$td/.cpu-limit" ] && rc=0
	rm -f "$td/.cpu-limit"
	for f in "$td/pending"/*; do
		[ -f "$f" ] || continue
		echo "fuzz.sh: $t: known bug, input kept: $f"
		echo "  keep it as tests/fuzz/pending/$t/$(basename "$f")"
	done
	found=0
	for f in $(find "$td/artifacts" -type f -newer "$td/.start"); do
		found=1
		echo "fuzz.sh: $t: FINDING $f"
		echo "  replay: $dir/fuzz_$t $f"
		echo "  or:     _build/plain/tests/fuzz/replay_$t $f"
		echo "  then keep it: cp $f tests/fuzz/regressions/$t/"
	done
	if [ $rc -ne 0 ] || [ $found -ne 0 ]; then
		status=1
	fi
done

exit $status
