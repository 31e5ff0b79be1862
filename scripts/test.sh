#!/bin/sh
# Quick start 2: install what is missing, build, run the whole test suite,
# then again under AddressSanitizer + UndefinedBehaviorSanitizer.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
# Test programs at once: most of their time is agents waiting on timers
# and Serf, and each cluster test program has loopback addresses of its
# own.  On 2 cores the sanitizer suite took 226 s with 2.
test_jobs=${DISTKV_TEST_JOBS:-2}
"$top/scripts/deps.sh"

run_suite() {
	name=$1; shift
	echo "==== $name build"
	"$top/scripts/build.sh" "$top/_build/$name" "$@"
	echo "==== $name: make check -j$test_jobs"
	if ! make -C "$top/_build/$name" check -j"$test_jobs"; then
		for f in "$top/_build/$name"/tests/*.log; do
			grep -q "^FAIL\|^ERROR" "$f" 2>/dev/null || continue
			echo "---- $f"; tail -n 60 "$f"
		done
		return 1
	fi
}

run_suite plain
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export LSAN_OPTIONS=suppressions="$top/tests/lsan.supp":print_suppressions=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
run_suite sanitize --enable-asan --enable-ubsan CC=clang
summary() {
	grep -h "^# \(PASS\|FAIL\|ERROR\)" "$top/_build/$1/test-suite.log" | tr '\n' ' '
	echo
}
echo "==== plain:    $(summary plain)"
echo "==== sanitize: $(summary sanitize)"
