#!/bin/sh
# Build DistKV-C out of tree: scripts/build.sh BUILDDIR [configure args...]
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
bdir=$1; shift
if [ -f "$top/config.status" ]; then
	echo "build.sh: $top is configured in-tree; run 'make distclean' there first" >&2
	exit 1
fi
[ -x "$top/configure" ] || (cd "$top" && autoreconf -fi)
mkdir -p "$bdir"
cd "$bdir"
[ -f Makefile ] || "$top/configure" -q "$@"
make -j"$(nproc)"
