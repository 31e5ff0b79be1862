#!/bin/sh
# bench_split.sh: split recovery figures (issue 5), from the fault harness's
# deterministic split scenario (tests/distkv-faults --split): a cluster cut
# in two halves for 10 clocks, 10 changes made on both sides, then healed.
#
# For 3 and 5 nodes (or NODES="..."), RUNS runs each (default 5), it prints
# per size the median and worst of:
#   - convergence after the heal, in ping clocks, and its ratio to the goal
#     (3 clocks after Serf reports the members alive again: measured from
#     the heal, which comes first, so the figure is an upper bound): when
#     the last node applied the last change (a watch on every node, timed
#     as its items arrive), and when the harness's dumps of every node
#     first found them all the same (later: a pass of 20 dumps takes
#     60-100 ms, and passes are 50 ms apart);
#   - Serf update events sent to answer missing reports, and their ratio to
#     the spec's bound N+1;
#   - events delivered again per lost event: (retransmitted entries +
#     catch-up items) / (changes each node missed, summed over the nodes).
#
# CLOCK (0.2) is the agents' --clock: a clock shorter than Serf's gossip
# delay (100-200 ms on loopback) leaves the answer delays of spec 3.11 too
# short to hear another node's retransmission (bench/README.md).
#
# Needs root and iptables, and a build (make; make tests/distkv-faults).
# Usage: sudo bench/bench_split.sh            (from the build directory)
#        sudo RUNS=10 NODES="3 5 7" bench/bench_split.sh
#        sudo RUNS=3 NODES=20 CLOCK=1 bench/bench_split.sh
set -eu
top=${DISTKV_TOP_BUILDDIR:-$(pwd)}
runs=${RUNS:-5}
nodes=${NODES:-3 5}
clock=${CLOCK:-0.2}
faults="$top/tests/distkv-faults"
[ -x "$faults" ] || { echo "bench_split: build $faults first" >&2; exit 2; }
out=$(mktemp)
trap 'rm -f "$out"' EXIT INT TERM

for n in $nodes; do
	i=0
	while [ "$i" -lt "$runs" ]; do
		i=$((i + 1))
		line=$(DISTKV_TOP_BUILDDIR="$top" "$faults" --split --nodes "$n" \
		    --clock "$clock" 2>/dev/null | tail -n 1) || true
		echo "$n $line" >>"$out"
		printf '.' >&2
	done
done
echo >&2

# one row per size: median and max of each figure (awk: sort per column)
awk '
function val(k,   i, f) {
	for (i = 2; i <= NF; i++) {
		split($i, f, "=")
		if (f[1] == k)
			return f[2]
	}
	return ""
}
function med_max(list, n,   a, i, j, t) {
	split(list, a, " ")
	for (i = 1; i <= n; i++)
		for (j = i + 1; j <= n; j++)
			if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
	return sprintf("%s %s", a[int((n + 1) / 2)], a[n])
}
{
	n = $1
	# a run that failed but printed its figures (e.g. too many
	# retransmit events) still counts in them
	if ($NF != "PASS") fail[n]++
	cv = val("converge_clocks")
	if (cv == "" || cv == "n/a") next
	if ($NF == "PASS") good[n]++
	ok[n]++
	cc[n] = cc[n] " " val("converge_clocks")
	ac = val("applied_clocks")
	if (ac == "" || ac == "n/a") ac = val("converge_clocks")
	ca[n] = ca[n] " " ac
	re[n] = re[n] " " val("retransmit_events")
	rp[n] = rp[n] " " val("retransmitted_per_lost")
	sizes[n] = 1
}
END {
	printf "%-5s %-9s %-22s %-9s %-20s %-24s %-9s %-18s\n", "nodes",
	    "runs pass", "converge clocks p50/max", "vs goal 3",
	    "dumps agree p50/max", "retransmit events p50/max", "vs N+1",
	    "resent/lost p50/max"
	for (n in sizes) {
		split(med_max(ca[n], ok[n]), a, " ")
		split(med_max(cc[n], ok[n]), c, " ")
		split(med_max(re[n], ok[n]), r, " ")
		split(med_max(rp[n], ok[n]), p, " ")
		printf "%-5s %-9s %-22s %-9s %-20s %-24s %-9s %-18s\n", n,
		    sprintf("%d/%d", good[n], good[n] + fail[n]),
		    sprintf("%.1f / %.1f", a[1], a[2]),
		    sprintf("%.2fx", a[2] / 3),
		    sprintf("%.1f / %.1f", c[1], c[2]),
		    sprintf("%d / %d", r[1], r[2]),
		    sprintf("%.2fx", r[2] / (n + 1)),
		    sprintf("%.2f / %.2f", p[1], p[2])
	}
	for (n in fail)
		if (!(n in sizes))
			printf "%-5s 0/%d\n", n, fail[n]
}' "$out"
