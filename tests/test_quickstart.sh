#!/bin/sh
# docs/cluster.md's quick start works when pasted: the block marked
# "```sh quickstart" is extracted and run as it is, by bash, with the
# built programs first in PATH and DIR a temp dir, inside a private
# network and mount namespace (its fixed loopback ports and /dev/shm
# regions cannot meet anything else on the machine).  Bounded in time;
# the agents it starts are stopped by their pids.  Needs root (unshare);
# skipped (77) without it.
set -u
top=${DISTKV_TOP_BUILDDIR:-.}
src=$(sed -n 's/^abs_top_srcdir = //p' "$top/Makefile")
top=$(cd "$top" && pwd)
doc=$src/docs/cluster.md
fail() { echo "test_quickstart: $*" >&2; exit 1; }

[ -f "$doc" ] || fail "no $doc"
command -v serf >/dev/null 2>&1 || { echo "no serf: skipped"; exit 77; }
if ! unshare -n -m true 2>/dev/null; then
	echo "cannot unshare (not root?): skipped"
	exit 77
fi
tmp=$(mktemp -d /tmp/distkv-quickstart.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# the block, exactly as the reader sees it
awk '/^```sh quickstart$/ {on = 1; next} on && /^```$/ {exit} on {print}' \
    "$doc" >"$tmp/block.sh"
[ -s "$tmp/block.sh" ] || fail "no \`\`\`sh quickstart block in $doc"
grep -q 'health --wait' "$tmp/block.sh" || fail "the block does not wait with health --wait"

# run it; stop whatever it started in the background, by pid
cat >"$tmp/run.sh" <<'EOS'
set -e
ip link set lo up
mount -t tmpfs tmpfs /dev/shm
stop() {
	for p in $(jobs -p); do kill "$p" 2>/dev/null || true; done
	wait
}
trap stop EXIT
. "$QS_BLOCK"
echo "QUICKSTART-DONE"
# The block's own `members` may show a node that joined a moment ago as
# unknown (Serf hands member events on 1-3 s late): every node must be
# listed alive on n2 within 15 s.
i=0
until [ "$(distkv-cli --socket "$DIR/n2.sock" members | grep -Ec '^n[123] +alive ')" = 3 ]; do
	i=$((i + 1))
	[ $i -le 75 ] || { distkv-cli --socket "$DIR/n2.sock" members; exit 1; }
	sleep 0.2
done
echo "ALL-ALIVE"
EOS
out=$(cd "$tmp" && DIR="$tmp/demo" HOME="$tmp" QS_BLOCK="$tmp/block.sh" \
    PATH="$top:$PATH" timeout 300 unshare -n -m --propagation private \
    bash "$tmp/run.sh" 2>&1)
rc=$?
echo "$out"
[ $rc -eq 0 ] || { cat "$tmp"/demo/n*.log >&2 2>/dev/null; fail "the quick start failed (exit $rc)"; }
echo "$out" | grep -q '^QUICKSTART-DONE$' || fail "the block did not run to its end"
echo "$out" | grep -q '^8080$' || fail "n3 did not show the value 8080"
echo "$out" | grep -q '^ALL-ALIVE$' || fail "members did not list n1, n2 and n3 alive within 15 s"
[ "$(echo "$out" | grep -c '^healthy: ')" -eq 3 ] || fail "not three healthy nodes"
# the state dirs' parents did not exist before: the agent made them
for n in n1 n2 n3; do
	[ -d "$tmp/demo/state/$n" ] || fail "no state dir for $n"
done
exit 0
