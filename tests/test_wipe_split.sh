#!/bin/sh
# Wipe during a split (tests/faults.c, --wipe-split): 5 nodes; the victim
# writes while cut off with K = 0, 1, 2 holders, is killed, loses its
# state dir, comes back on the other side of a moved cut, and everything
# heals.  With holders their copies must win on every node; without, the
# victim's writes are gone everywhere.  All three variants run; the test
# fails if any fails.  distkv-faults exits 77 (skip) without root or
# iptables.
top=${DISTKV_TOP_BUILDDIR:-.}
rc=0
for k in 0 1 2; do
	"$top/tests/distkv-faults" --wipe-split --nodes 5 --unique "$k" \
	    --converge-timeout 15
	r=$?
	[ "$r" -eq 77 ] && exit 77
	[ "$r" -ne 0 ] && rc=1
done
exit $rc
