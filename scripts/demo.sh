#!/bin/sh
# Quick start 1: install what is missing, build, start an agent and show
# distkv-cli at work.  The agent keeps running afterwards; stop it with
#   kill $(cat _build/demo/agent.pid)
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/deps.sh"
"$top/scripts/build.sh" "$top/_build/plain"
B="$top/_build/plain"
D="$top/_build/demo"
mkdir -p "$D"
if [ -f "$D/agent.pid" ] && kill -0 "$(cat "$D/agent.pid")" 2>/dev/null; then
	kill "$(cat "$D/agent.pid")"
	while kill -0 "$(cat "$D/agent.pid")" 2>/dev/null; do sleep 0.1; done
fi
export DISTKV_SOCKET="$D/agent.sock"
# The cluster secret every node of this cluster shares (docs/cluster.md).
if [ ! -s "$D/cluster.key" ]; then
	(umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$D/cluster.key")
fi
# The default mode: the agent starts and supervises its own serf agent
# (docs/cluster.md).  --init makes this first node of a new cluster ready.
"$B/distkv-agent" --node demo --init '{}' --state-dir "$D/state" \
	--socket "$DISTKV_SOCKET" --shm "$D/region" \
	--bind 127.0.0.1:17946 --serf-rpc 127.0.0.1:17373 \
	--peer-bind 127.0.0.1:17589 --cluster-key "$D/cluster.key" \
	--log-level warn &
echo $! > "$D/agent.pid"
# wait (bounded) until the agent answers
i=0
until "$B/distkv-cli" state >/dev/null 2>&1; do
	i=$((i + 1)); [ $i -lt 100 ] || { echo "agent did not start" >&2; exit 1; }
	sleep 0.05
done
cli() { echo "\$ distkv-cli $*"; "$B/distkv-cli" "$@"; }
"$B/distkv-cli" watch --fetch -n 3 svc > "$D/watch.out" 2>&1 &
wpid=$!
cli set svc/web/port -j 8080
cli set svc/web/host web1.example.org
cli get svc/web/port
cli set svc/db/url "postgres://db1/app"
cli tree svc
cli --json get svc/web/host
wait $wpid || true
echo "\$ distkv-cli watch --fetch -n 3 svc   (ran in the background meanwhile)"
cat "$D/watch.out"
cli state
echo
echo "Agent running (pid $(cat "$D/agent.pid")), socket $DISTKV_SOCKET,"
echo "shared-memory region $D/region, its serf agent gossiping on 127.0.0.1:17946."
echo "Add a second node: $B/distkv-agent --node two --join 127.0.0.1:17946 \\"
echo "    --bind 127.0.0.1:17947 --serf-rpc 127.0.0.1:17374 --peer-bind 127.0.0.1:17590 \\"
echo "    --cluster-key $D/cluster.key --socket $D/two.sock --shm $D/two.region &"
echo "Try: DISTKV_SOCKET=$DISTKV_SOCKET $B/distkv-cli --help"
