#!/bin/sh
# Short fault-injection run (tests/faults.c): 3 nodes, 30 s, seed 1.
# distkv-faults exits 77 (skip) without root or iptables.
top=${DISTKV_TOP_BUILDDIR:-.}
exec "$top/tests/distkv-faults" --nodes 3 --seconds 30 --seed 1
