#!/bin/sh
# Deterministic split (tests/faults.c, --split): 4 nodes cut 2+2, 10
# changes on both sides, heal; fails on a leaking cut, a lost change, no
# convergence within 15 s of a phase, or more than N+1 retransmit events.
# distkv-faults exits 77 (skip) without root or iptables.
top=${DISTKV_TOP_BUILDDIR:-.}
exec "$top/tests/distkv-faults" --split --nodes 4 --converge-timeout 15
