#!/bin/sh
# distkv-etcd end to end: a standalone agent, the gateway in front of it,
# Debian's etcdctl (v2) and python3-etcd as real clients, raw HTTP for the
# error codes and headers (tests/etcd_check.py), and - when etcd-server is
# installed - the same raw requests against a real etcd --enable-v2 on
# loopback, which must answer alike except for the listed deviations.
# Every process is started here and killed by its pid; every wait has a
# deadline.  Exit 77 (skip) without etcdctl or python3-etcd.
set -u
top=${DISTKV_TOP_BUILDDIR:-.}
src=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
command -v etcdctl >/dev/null 2>&1 || { echo "no etcdctl: skip"; exit 77; }
$PY -c 'import etcd' 2>/dev/null || { echo "no python3-etcd: skip"; exit 77; }

dir=$(mktemp -d /tmp/distkv-test.XXXXXX)
agent_pid= gw_pid= etcd_pid=
fail=0
cleanup() {
	for p in $gw_pid $agent_pid $etcd_pid; do
		kill -9 "$p" 2>/dev/null
	done
	wait 2>/dev/null
	case $dir in /tmp/distkv-test.*) rm -rf "$dir" ;; esac
}
trap cleanup EXIT
trap 'exit 1' INT TERM

ok() { echo "ok: $1"; }
bad() { echo "FAIL: $1"; fail=1; }
# wait_for SECONDS COMMAND...: poll a condition until the deadline
wait_for() {
	t=$1; shift
	end=$(($(date +%s) + t))
	while [ "$(date +%s)" -le "$end" ]; do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.05
	done
	return 1
}
free_port() {
	$PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

"$top/distkv-agent" --standalone --socket "$dir/agent.sock" --node etcdtest \
	--shm "$dir/region" 2>"$dir/agent.err" &
agent_pid=$!
wait_for 10 test -S "$dir/agent.sock" || { bad "agent start"; cat "$dir/agent.err"; exit 1; }
"$top/distkv-cli" --socket "$dir/agent.sock" set -j cli/num 8080 >/dev/null ||
	bad "distkv-cli set"

"$top/distkv-etcd" --socket "$dir/agent.sock" --listen 127.0.0.1:0 --history 20 \
	--ready-file "$dir/ready" 2>"$dir/gw.err" &
gw_pid=$!
wait_for 10 test -s "$dir/ready" || { bad "gateway start"; cat "$dir/gw.err"; exit 1; }
GW=$(cat "$dir/ready")
echo "gateway at $GW"

real=
if command -v etcd >/dev/null 2>&1; then
	cp=$(free_port); pp=$(free_port)
	etcd --name t --data-dir "$dir/etcd" --enable-v2 \
		--listen-client-urls "http://127.0.0.1:$cp" \
		--advertise-client-urls "http://127.0.0.1:$cp" \
		--listen-peer-urls "http://127.0.0.1:$pp" \
		--initial-advertise-peer-urls "http://127.0.0.1:$pp" \
		--initial-cluster "t=http://127.0.0.1:$pp" >"$dir/etcd.log" 2>&1 &
	etcd_pid=$!
	if wait_for 20 curl -sf "http://127.0.0.1:$cp/health"; then
		real="http://127.0.0.1:$cp"
	else
		echo "real etcd did not start: comparing skipped"
	fi
fi

# ---- etcdctl (API v2) ----
export ETCDCTL_API=2
E="timeout 10 etcdctl --endpoints $GW"
[ "$($E set /cfg/a 1)" = 1 ] && ok "etcdctl set" || bad "etcdctl set"
[ "$($E get /cfg/a)" = 1 ] && ok "etcdctl get" || bad "etcdctl get"
$E mk /cfg/b 2 >/dev/null && ok "etcdctl mk" || bad "etcdctl mk"
$E mk /cfg/b 3 >/dev/null 2>&1; rc=$?
[ $rc -ne 0 ] && ok "etcdctl mk of an existing key fails" || bad "etcdctl mk existing"
$E mkdir /cfg/d && ok "etcdctl mkdir" || bad "etcdctl mkdir"
[ "$($E update /cfg/a 5)" = 5 ] && ok "etcdctl update" || bad "etcdctl update"
$E update /cfg/none 5 >/dev/null 2>&1 && bad "etcdctl update of a missing key" ||
	ok "etcdctl update of a missing key fails"
out=$($E ls -r /cfg | tr '\n' ' ')
[ "$out" = "/cfg/a /cfg/b /cfg/d " ] && ok "etcdctl ls -r" || bad "etcdctl ls -r: $out"
$E set /cfg/a 6 --swap-with-value 5 >/dev/null && ok "etcdctl set --swap-with-value" ||
	bad "etcdctl swap"
$E rm /cfg/b >/dev/null && ok "etcdctl rm" || bad "etcdctl rm"
$E rmdir /cfg/d && ok "etcdctl rmdir" || bad "etcdctl rmdir"
$E rm /cfg/d >/dev/null 2>&1 && bad "etcdctl rm of a removed dir" || ok "etcdctl rm missing fails"

# watch: one event, then exit
$E watch /cfg/w >"$dir/watch.out" 2>&1 &
wpid=$!
# exec-watch: etcdctl reads its key as the LAST argument when no "--"
# survives its flag parser
printf '#!/bin/sh\necho "$ETCD_WATCH_ACTION $ETCD_WATCH_KEY $ETCD_WATCH_VALUE" >> "%s/exec.out"\n' \
	"$dir" >"$dir/hook.sh"
chmod +x "$dir/hook.sh"
$E exec-watch "$dir/hook.sh" /cfg/x >/dev/null 2>&1 &
xpid=$!
# the watches are registered once the gateway has them; writes until seen
wait_for 10 sh -c "$E set /cfg/w hello >/dev/null && grep -q hello '$dir/watch.out'" &&
	ok "etcdctl watch" || bad "etcdctl watch: $(cat "$dir/watch.out")"
wait $wpid 2>/dev/null
wait_for 10 sh -c "$E set /cfg/x one >/dev/null && grep -q 'set /cfg/x one' '$dir/exec.out'" ||
	bad "etcdctl exec-watch set"
$E set /cfg/x two --swap-with-value one >/dev/null
$E rm /cfg/x >/dev/null
wait_for 10 grep -q "delete /cfg/x" "$dir/exec.out" &&
	grep -q "compareAndSwap /cfg/x two" "$dir/exec.out" &&
	ok "etcdctl exec-watch: set, compareAndSwap, delete" ||
	bad "etcdctl exec-watch: $(cat "$dir/exec.out")"
kill "$xpid" 2>/dev/null; wait "$xpid" 2>/dev/null

# ---- writes from another client (distkv-cli) reach reads and watches ----
CLI="$top/distkv-cli --socket $dir/agent.sock"
curl -s "$GW/v2/keys/fromcli/y?wait=true" >"$dir/cliwatch.out" &
cpid=$!
wait_for 10 sh -c "$CLI set fromcli/y hello >/dev/null && grep -q hello '$dir/cliwatch.out'" &&
	grep -q '"action":"set"' "$dir/cliwatch.out" &&
	ok "a distkv-cli write wakes a gateway long-poll" ||
	bad "cli write not seen by a watch: $(cat "$dir/cliwatch.out")"
kill "$cpid" 2>/dev/null; wait "$cpid" 2>/dev/null
$CLI set fromcli/y again >/dev/null
wait_for 10 sh -c "curl -s '$GW/v2/keys/fromcli/y' | grep -q '\"value\":\"again\"'" &&
	ok "a distkv-cli write shows in GET" || bad "cli write not seen by GET"
$CLI set fromcli/y/child c >/dev/null
wait_for 10 sh -c "curl -s '$GW/v2/keys/fromcli/y' | grep -q '\"dir\":true'" &&
	ok "a value that gets a child (from distkv-cli) reads as a directory" ||
	bad "value + child not shown as a dir"
# a plain set skips the agent when the mirror knows a plain value: once
# the mirror has the child, the key is a directory and the set is refused.
# The GET may come from the agent; a wait from the child's own index
# returns once the feed (and so the mirror) has the child.
m=$(curl -s "$GW/v2/keys/fromcli/y/child" |
	$PY -c 'import json,sys; print(json.load(sys.stdin)["node"]["modifiedIndex"])')
curl -s -m 10 "$GW/v2/keys/fromcli/y/child?wait=true&waitIndex=$m" >/dev/null
code=$(curl -s -o "$dir/setdir.out" -w '%{http_code}' -X PUT \
	-d value=z "$GW/v2/keys/fromcli/y")
[ "$code" = 403 ] && grep -q '"errorCode":102' "$dir/setdir.out" &&
	ok "a plain set on a key that got a child (from distkv-cli) is 102" ||
	bad "plain set on a value + child: $code $(cat "$dir/setdir.out")"

# ---- python-etcd and raw HTTP ----
timeout 300 $PY "$src/etcd_check.py" "$GW" $real || fail=1
kill -0 "$gw_pid" 2>/dev/null || { bad "the gateway died"; gw_pid=; }

# ---- clean stop: exit status 0 (under ASan: no leak) ----
if [ -n "$gw_pid" ]; then
	kill -TERM "$gw_pid"
	end=$(($(date +%s) + 10))
	while kill -0 "$gw_pid" 2>/dev/null && [ "$(date +%s)" -le "$end" ]; do
		sleep 0.05
	done
	if kill -0 "$gw_pid" 2>/dev/null; then
		bad "gateway did not stop on SIGTERM"
	else
		wait "$gw_pid"; rc=$?
		[ $rc -eq 0 ] && ok "gateway stops cleanly" || bad "gateway exit $rc"
	fi
fi
gw_pid=
if [ $fail -ne 0 ]; then
	echo "---- gateway stderr"; tail -n 80 "$dir/gw.err"
	echo "FAILED"
else
	echo "PASS"
fi
exit $fail
