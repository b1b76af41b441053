#!/bin/sh
# run.sh [bench.py options] - what `make bench` runs (issue 8).
#
# 1. installs what the bench needs from Debian's packages (never an MTA:
#    Postfix, OpenSMTPD and chasquid are unpacked into bench/.peers/);
# 2. builds chamois and the bench's programs;
# 3. makes a network namespace with only loopback (and a veth pair that
#    stays down, for OpenSMTPD, see below), whose /etc/resolv.conf
#    names the bench's own dnsmasq on 127.0.0.1, and runs bench.py in it,
#    so no look-up or connection can leave the machine;
# 4. removes the namespace, whatever happened.
# Needs root (ip netns); uses sudo otherwise.
set -eu
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
	exec sudo -E sh "$0" "$@"
fi
sh .ci/deps.sh
pkgs="gnuplot-nox iproute2 dnsmasq-base procps python3-nacl"
missing=
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "bench: installing$missing"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
fi
[ -f config.mk ] || ./configure
make -s
make -s -C bench all
/usr/bin/python3 bench/bench.py prepare
make -s -C bench milter_pass    # needs prepare's libmilter-dev

ns=chamois-bench-$$
cleanup() {
	ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
	ip netns del "$ns" 2>/dev/null || true
	rm -rf "/etc/netns/$ns"
}
trap cleanup EXIT INT TERM
ip netns add "$ns"
mkdir -p "/etc/netns/$ns"
echo "nameserver 127.0.0.1" > "/etc/netns/$ns/resolv.conf"
printf '127.0.0.1 localhost\n::1 localhost\n' > "/etc/netns/$ns/hosts"
ip netns exec "$ns" ip link set lo up
# OpenSMTPD's resolver (libasr, AI_ADDRCONFIG) asks for no A record while
# the namespace has no IPv4 address besides loopback: give it one on a veth
# pair whose both ends stay inside the namespace and DOWN (no route, no
# traffic; TEST-NET-1)
ip netns exec "$ns" ip link add bchaddr0 type veth peer name bchaddr1
ip netns exec "$ns" ip addr add 192.0.2.1/32 dev bchaddr0
ip netns exec "$ns" env CHAMOIS_BENCH_NETNS="$ns" /usr/bin/python3 bench/bench.py run "$@"
