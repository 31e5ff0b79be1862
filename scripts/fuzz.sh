#!/bin/sh
# Fuzz the shared-memory reader (tests/fuzz_shm_reader.c) with libFuzzer.
#
#   scripts/fuzz.sh [SECONDS] [libFuzzer options...]     (default 60 s)
#
# Builds the harness with clang -fsanitize=fuzzer,address,undefined, writes
# seed regions made by shm/writer.c, and fuzzes for SECONDS.  The corpus and
# any crash artifacts stay in $FUZZ_DIR (default _build/fuzz), so a second
# run goes on from where the first stopped.  To replay a crash:
#   _build/fuzz/fuzz_shm_reader _build/fuzz/artifacts/crash-...
# Exit status: 0 if no crash was found.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-60}
[ $# -gt 0 ] && shift
dir=${FUZZ_DIR:-$top/_build/fuzz}
cc=${FUZZ_CC:-clang}
xxlibs=$(pkg-config --libs libxxhash 2>/dev/null || echo -lxxhash)
xxcflags=$(pkg-config --cflags libxxhash 2>/dev/null || true)
cflags="-std=gnu11 -g -O1 -D_GNU_SOURCE -I$top/shm $xxcflags -Wall -Wextra -Werror"

mkdir -p "$dir/corpus" "$dir/seeds" "$dir/artifacts"
echo "fuzz.sh: building in $dir"
# shellcheck disable=SC2086
$cc $cflags -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	-o "$dir/fuzz_shm_reader" "$top/tests/fuzz_shm_reader.c" "$top/shm/reader.c" $xxlibs
# shellcheck disable=SC2086
$cc $cflags -DFUZZ_MAKE_SEEDS -fsanitize=address,undefined -fno-sanitize-recover=undefined \
	-o "$dir/fuzz_shm_seeds" "$top/tests/fuzz_shm_reader.c" "$top/shm/reader.c" \
	"$top/shm/writer.c" $xxlibs
"$dir/fuzz_shm_seeds" "$dir/seeds"

echo "fuzz.sh: fuzzing for $secs s"
# max_len: room for the ~300 KiB regions the writer makes
exec "$dir/fuzz_shm_reader" -max_total_time="$secs" -max_len=400000 \
	-artifact_prefix="$dir/artifacts/" -print_final_stats=1 "$@" \
	"$dir/corpus" "$dir/seeds"
