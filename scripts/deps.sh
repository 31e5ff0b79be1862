#!/bin/sh
# Install the Debian 12 packages DistKV-C needs to build, test and run.
# Installs only what is missing; needs root (or sudo) for apt-get.
set -eu

PKGS="build-essential autoconf automake libtool pkg-config
libmsgpack-dev libev-dev libcriterion-dev libxxhash-dev libjansson-dev
libhiredis-dev liblmdb-dev libsodium-dev libssl-dev openssl liblua5.4-dev redis-server serf clang iptables
libsystemd-dev systemd man-db groff-base zsh libyaml-dev
libmicrohttpd-dev etcd-client etcd-server python3-etcd curl libcurl4-openssl-dev wrk"

missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "deps.sh: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing
