#!/bin/sh
# make install DESTDIR=...: every file operators and developers expect is
# installed (binaries, library, header, pc file, man pages, the systemd
# unit, sysusers and tmpfiles files, /etc/default/distkv, the config file
# and its example, the bash and zsh completions, which parse); the man pages
# render without a warning; the unit passes systemd-analyze verify; the
# shared library exports only the API.
set -u
top=${DISTKV_TOP_BUILDDIR:-.}
dest=$(mktemp -d /tmp/distkv-install.XXXXXX)
trap 'rm -rf "$dest"' EXIT
fail() { echo "test_install: $*" >&2; exit 1; }

make -s -C "$top" install DESTDIR="$dest" >"$dest.log" 2>&1 ||
	{ cat "$dest.log" >&2; rm -f "$dest.log"; fail "make install failed"; }
rm -f "$dest.log"
prefix=$(sed -n 's/^prefix = //p' "$top/Makefile")
sysconf=$(sed -n 's/^sysconfdir = //p' "$top/Makefile" | sed "s|\${prefix}|$prefix|")
root=$dest$prefix
for f in bin/distkv-agent bin/distkv-cli include/distkv.h \
    lib/libdistkv.so lib/pkgconfig/distkv.pc \
    share/man/man8/distkv-agent.8 share/man/man1/distkv-cli.1 \
    share/man/man3/libdistkv.3 share/man/man8/distkv-etcd.8 bin/distkv-etcd \
    lib/systemd/system/distkv-agent.service \
    lib/sysusers.d/distkv.conf lib/tmpfiles.d/distkv.conf \
    share/bash-completion/completions/distkv-cli \
    share/zsh/vendor-completions/_distkv-cli; do
	[ -e "$root/$f" ] || fail "not installed: $prefix/$f"
done
[ -f "$dest$sysconf/default/distkv" ] || fail "not installed: $sysconf/default/distkv"
[ -f "$dest$sysconf/distkv/agent.conf" ] || fail "not installed: $sysconf/distkv/agent.conf"
[ -f "$root/share/doc/distkv-c/agent.conf.example" ] ||
	fail "not installed: $prefix/share/doc/distkv-c/agent.conf.example"
LD_LIBRARY_PATH=$root/lib "$root/bin/distkv-agent" --version | grep -q '^distkv-agent [0-9]' ||
	fail "distkv-agent --version"

# the completion scripts parse (zsh: scripts/deps.sh installs it)
bash -n "$root/share/bash-completion/completions/distkv-cli" ||
	fail "bash -n: the bash completion does not parse"
if command -v zsh >/dev/null 2>&1; then
	zsh -n "$root/share/zsh/vendor-completions/_distkv-cli" ||
		fail "zsh -n: the zsh completion does not parse"
else
	echo "test_install: zsh not installed: zsh -n skipped" >&2
fi

for m in "$root"/share/man/man*/*; do
	out=$(LC_ALL=C.UTF-8 groff -mandoc -ww -z "$m" 2>&1)
	[ -z "$out" ] || fail "$m: $out"
	LC_ALL=C.UTF-8 MANWIDTH=80 man -l "$m" 2>/dev/null | grep -q NAME ||
		fail "man -l $m shows nothing"
done

unit=$root/lib/systemd/system/distkv-agent.service
grep -q "^ExecStart=$prefix/bin/distkv-agent " "$unit" ||
	fail "the unit does not start $prefix/bin/distkv-agent"
grep -q '^Type=notify' "$unit" || fail "the unit is not Type=notify"
grep -q "^ExecStart=.* --config $sysconf/distkv/agent.conf" "$unit" ||
	fail "the unit does not read $sysconf/distkv/agent.conf"
if command -v systemd-analyze >/dev/null 2>&1; then
	# verify the unit as installed, pointed at the DESTDIR binary
	sed "s|$prefix/bin/|$root/bin/|" "$unit" >"$dest/distkv-agent.service"
	out=$(MANPATH=$root/share/man systemd-analyze verify \
	    "$dest/distkv-agent.service" 2>&1) ||
		fail "systemd-analyze verify: $out"
fi

if command -v nm >/dev/null 2>&1; then
	leaked=$(nm -D --defined-only "$root/lib/libdistkv.so" |
	    awk '$2 ~ /^[TDBR]$/ && $3 !~ /^distkv_/ {print $3}')
	[ -z "$leaked" ] || fail "libdistkv exports: $leaked"
fi
exit 0
