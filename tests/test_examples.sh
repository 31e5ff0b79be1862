#!/bin/sh
# The programs in examples/ against a real standalone agent: read_config
# prints what was set, wait_change sees a change made while it waits,
# two cas_counter processes racing on one counter lose no increment.
set -u
top=${DISTKV_TOP_BUILDDIR:-.}
dir=$(mktemp -d /tmp/distkv-examples.XXXXXX)
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "test_examples: $*" >&2; exit 1; }
cli() { "$top/distkv-cli" "$@"; }

export DISTKV_SOCKET=$dir/agent.sock
"$top/distkv-agent" --standalone --node ex --socket "$DISTKV_SOCKET" \
	--shm "$dir/region" 2>"$dir/agent.err" &
pid=$!
i=0
until cli get x >/dev/null 2>&1 || [ $? -eq 1 ]; do
	i=$((i + 1))
	[ $i -lt 100 ] || fail "agent did not start: $(cat "$dir/agent.err")"
	sleep 0.1
done

cli set svc/web/host example.org >/dev/null || fail "set host"
cli set -j svc/web/port 8080 >/dev/null || fail "set port"
out=$("$top/examples/read_config" svc/web) || fail "read_config: $?"
[ "$out" = "example.org:8080" ] || fail "read_config printed '$out'"
"$top/examples/read_config" svc/none 2>/dev/null
[ $? -eq 1 ] || fail "read_config of a missing setting: not exit 1"

# the waiter says "now:" once it holds the change word; then change it
"$top/examples/wait_change" svc/web/port 20 >"$dir/wait.out" &
wpid=$!
i=0
until grep -q '^now:' "$dir/wait.out"; do
	i=$((i + 1))
	[ $i -lt 200 ] || fail "wait_change did not start"
	sleep 0.05
done
cli set -j svc/web/other 1 >/dev/null	# a change elsewhere: not enough
cli set -j svc/web/port 8443 >/dev/null
wait "$wpid" || fail "wait_change: exit $?"
grep -q '^changed:' "$dir/wait.out" || fail "wait_change: $(cat "$dir/wait.out")"

"$top/examples/cas_counter" ex/count 200 >"$dir/c1" &
c1=$!
"$top/examples/cas_counter" ex/count 200 >"$dir/c2" || fail "cas_counter 2"
wait "$c1" || fail "cas_counter 1"
out=$(cli get ex/count) || fail "get count"
[ "$out" = 400 ] || fail "counter is $out, not 400 ($(cat "$dir/c1" "$dir/c2"))"
exit 0
