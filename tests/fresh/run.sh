#!/bin/sh
# tests/fresh/run.sh - chamois on machines that have never seen it.
#
# Builds pristine Debian 12 (bookworm) chroots with debootstrap and, in
# them, does what a new user does:
#   1. in chroot "dev": the README's two commands - `make run` (and a
#      message sent to it with swaks, read back from its Maildir), then
#      `sh .ci/deps.sh && ./configure && make check` - and `make deb`;
#   2. in chroot "pkg": `apt-get install ./chamois_*.deb`, chamoisd started
#      as its unit starts it, one message over SMTP to root (the package's
#      alias) and one through /usr/sbin/sendmail, both read back from the
#      Maildir.
# Not part of .ci/run: it needs the Debian mirror and root.  Run as root:
#   sh tests/fresh/run.sh [WORKDIR]
# WORKDIR (default /var/tmp/chamois-fresh) holds the chroots; MIRROR and
# SUITE may be set; FRESH_DEB=FILE skips the developer's path and installs
# FILE (a package an earlier run kept in WORKDIR).  Exit 0 when every step passed; the log of each step is
# printed.  The chroots share the machine's network namespace; every test
# and daemon in them uses loopback only.
set -eu

top=$(cd "$(dirname "$0")/../.." && pwd)
work=${1:-/var/tmp/chamois-fresh}
mirror=${MIRROR:-http://deb.debian.org/debian}
suite=${SUITE:-bookworm}
mounted=

say() { printf '\n=== %s\n' "$*"; }
die() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (debootstrap and chroot need it)"
command -v debootstrap >/dev/null ||
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap

cleanup() {
	for m in $mounted; do
		umount -l "$m" 2>/dev/null || true
	done
}
trap cleanup EXIT INT TERM

# chroot_make DIR - a pristine minbase bookworm with /proc, /sys, /dev
chroot_make() {
	# never rm -rf a tree with /dev or /proc still bound into it
	if awk -v d="$1" 'index($2, d) == 1 { found = 1 } END { exit !found }' /proc/mounts; then
		die "something is still mounted under $1 (umount it first)"
	fi
	rm -rf "$1"
	say "debootstrap $suite into $1"
	debootstrap --variant=minbase "$suite" "$1" "$mirror" >"$1.debootstrap.log" 2>&1 ||
		{ tail -20 "$1.debootstrap.log"; die "debootstrap"; }
	# a mount point of its own, as / is on a real machine (unshare, as the
	# tests of the unit use it, changes the propagation of /)
	mount --bind "$1" "$1"
	mounted="$1 $mounted"
	for m in proc sys dev dev/pts; do
		mkdir -p "$1/$m"
		mount --bind "/$m" "$1/$m"
		mounted="$1/$m $mounted"
	done
	cp /etc/resolv.conf "$1/etc/resolv.conf"
	echo "fresh-$(basename "$1").example.test" >"$1/etc/hostname"
}

# in DIR CMD - run a shell command in the chroot, as root, in a login-ish env
in_chroot() {
	d=$1
	shift
	chroot "$d" /usr/bin/env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin \
	    LANG=C.UTF-8 TERM=dumb /bin/sh -c "$*"
}

mkdir -p "$work"
dev=$work/dev
pkg=$work/pkg

# FRESH_DEB=FILE: only the operator's path, with a package made before
if [ -n "${FRESH_DEB:-}" ]; then
	deb=$FRESH_DEB
else

# 1. the developer's path
chroot_make "$dev"
say "copy the tree (git archive HEAD) into $dev/root/chamois"
mkdir -p "$dev/root/chamois"
git -C "$top" archive HEAD | tar -x -C "$dev/root/chamois"

say "README command 2: sh .ci/deps.sh && ./configure && make check"
in_chroot "$dev" 'apt-get update -qq && apt-get install -y -qq --no-install-recommends git ca-certificates procps >/dev/null'
in_chroot "$dev" 'cd /root/chamois && sh .ci/deps.sh && ./configure && make check' ||
	die "make check in a fresh chroot"

say "README command 1: make run, then a message to demo@chamois.test"
in_chroot "$dev" 'cd /root/chamois && (make run >run.log 2>&1 &) &&
	i=0; while ! grep -q "ready version" run.log 2>/dev/null; do
		i=$((i + 1)); [ $i -lt 100 ] || { cat run.log; exit 1; }; sleep 0.2; done &&
	swaks --server 127.0.0.1:2525 --to demo@chamois.test --silent 2 &&
	ls run/maildir/chamois.test/demo/new/ | grep -q . &&
	pkill -x chamoisd' ||
	die "make run did not receive the message"

say "make deb"
in_chroot "$dev" 'cd /root/chamois && apt-get install -y -qq --no-install-recommends debhelper devscripts fakeroot lintian >/dev/null && make deb && lintian --no-tag-display-limit -I chamois_*.deb || true'
deb=$(ls "$dev"/root/chamois/chamois_*.deb 2>/dev/null | head -1)
[ -n "$deb" ] || die "make deb made no package"
saved=$work/$(basename "$deb")
cp "$deb" "$saved"
deb=$saved
fi

# 2. the operator's path
chroot_make "$pkg"
cp "$deb" "$pkg/root/"
say "apt-get install ./$(basename "$deb") on a pristine system"
in_chroot "$pkg" "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ./root/$(basename "$deb") swaks procps" ||
	die "the package does not install"

say "chamoisd as its unit starts it; mail to root over SMTP and through sendmail"
in_chroot "$pkg" 'set -e
	conf=/etc/chamois/chamois.conf
	chamoisd -n -f $conf
	unit=/lib/systemd/system/chamoisd.service
	cmd=$(sed -n "s/^ExecStart=//p" $unit)
	user=$(sed -n "s/^User=//p" $unit)
	# the unit runs it as User= with CAP_NET_BIND_SERVICE for port 25
	if [ -n "$user" ]; then
		setpriv --reuid="$user" --regid="$user" --init-groups \
		    --inh-caps=+net_bind_service --ambient-caps=+net_bind_service \
		    $cmd >/var/tmp/chamoisd.log 2>&1 &
	else
		$cmd >/var/tmp/chamoisd.log 2>&1 &
	fi
	domain=$(sed -n "s/^domains  *\([^ ]*\).*/\1/p" $conf)
	i=0; while ! grep -q "ready version" /var/tmp/chamoisd.log; do
		i=$((i + 1)); [ $i -lt 100 ] || { cat /var/tmp/chamoisd.log; exit 1; }; sleep 0.2; done
	swaks --server 127.0.0.1:25 --to root@$domain --silent 2
	printf "Subject: cron\n\nfrom cron\n" | /usr/sbin/sendmail root
	i=0; while [ "$(find /var/mail/chamois -path "*/new/*" -type f | wc -l)" -lt 2 ]; do
		i=$((i + 1)); [ $i -lt 100 ] || { cat /var/tmp/chamoisd.log; exit 1; }; sleep 0.2; done
	find /var/mail/chamois -path "*/new/*" -type f
	pkill -x chamoisd' ||
	die "the installed package did not receive mail"

say "every step passed"
