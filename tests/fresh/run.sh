#!/bin/sh
# tests/fresh/run.sh - chamois on machines that have never seen it.
#
# Builds pristine Debian 12 (bookworm) chroots with debootstrap and, in
# them, does what a new user does:
#   1. in chroot "dev": the README's two commands - `make run` (and a
#      message sent to it with swaks, read back from its Maildir), then
#      `sh .ci/deps.sh && ./configure && make check` - and `make deb`;
#   2. in tree "pkg", booted under its own systemd (systemd-nspawn -b):
#      `apt-get install ./chamois_*.deb` (the package enables and starts
#      the unit), systemctl is-active / status, systemd-analyze security,
#      one message over SMTP to root (the package's alias) and one through
#      /usr/sbin/sendmail, both read back from the Maildir, systemctl
#      reload (its line in the journal) and stop; then doc/install.md's
#      commands when the tree has that file (run_install_doc).
# Not part of .ci/run: it needs the Debian mirror and root.  Run as root:
#   sh tests/fresh/run.sh [WORKDIR]
# WORKDIR (default /var/tmp/chamois-fresh) holds the trees; MIRROR and
# SUITE may be set; FRESH_DEB=FILE skips the developer's path and installs
# FILE (a package an earlier run kept in WORKDIR).  Exit 0 when every step passed; the log of each step is
# printed.  The trees share the machine's network namespace; every test
# and daemon in them uses loopback only.
set -eu

top=$(cd "$(dirname "$0")/../.." && pwd)
work=${1:-/var/tmp/chamois-fresh}
mirror=${MIRROR:-http://deb.debian.org/debian}
suite=${SUITE:-bookworm}
mounted=

say() { printf '\n=== %s\n' "$*"; }
die() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
# bad WHAT - a failed check after which the next ones still run
failed=
bad() { printf 'FAIL: %s\n' "$*" >&2; failed="$failed
	$*"; }

[ "$(id -u)" = 0 ] || die "run as root (debootstrap and chroot need it)"
command -v debootstrap >/dev/null ||
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap

cleanup() {
	for m in $mounted; do
		umount -l "$m" 2>/dev/null || true
	done
}
trap cleanup EXIT INT TERM

# chroot_make DIR [DEBOOTSTRAP-ARG...] - a pristine minbase bookworm
# with /proc, /sys, /dev (tree_make: the same without the mounts)
tree_make() {
	d=$1
	shift
	# never rm -rf a tree with /dev or /proc still bound into it
	if awk -v d="$d" 'index($2, d) == 1 { found = 1 } END { exit !found }' /proc/mounts; then
		die "something is still mounted under $d (umount it first)"
	fi
	rm -rf "$d"
	say "debootstrap $suite into $d $*"
	debootstrap --variant=minbase "$@" "$suite" "$d" "$mirror" >"$d.debootstrap.log" 2>&1 ||
		{ tail -20 "$d.debootstrap.log"; die "debootstrap"; }
	cp /etc/resolv.conf "$d/etc/resolv.conf"
}
chroot_make() {
	tree_make "$1"
	# a mount point of its own, as / is on a real machine (unshare, as the
	# tests of the unit use it, changes the propagation of /)
	mount --bind "$1" "$1"
	mounted="$1 $mounted"
	for m in proc sys dev dev/pts; do
		mkdir -p "$1/$m"
		mount --bind "/$m" "$1/$m"
		mounted="$1/$m $mounted"
	done
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

# 2. the operator's path, on a system booted under real systemd: the
# pristine tree (with systemd, systemd-sysv and dbus, as a server has
# them) booted with systemd-nspawn -b.  The host need not run systemd:
# --register=no (no systemd-machined) and --keep-unit (no scope from the
# host's manager: without it nspawn fails with "Failed to open system bus:
# No such file or directory"); commands run in it by nsenter into its init.
# The container keeps the host's network namespace: apt-get in it fetches
# from the mirror as on a server, and every daemon in it listens on
# loopback only (port 25 of the host's loopback must be free).
command -v systemd-nspawn >/dev/null ||
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd-container
if ss -Hltn 'sport = :25' 2>/dev/null | grep -q .; then
	die "port 25 is taken on this machine (the container shares its network)"
fi
tree_make "$pkg" --include=systemd,systemd-sysv,dbus
echo mail.example.org >"$pkg/etc/hostname"
echo example.org >"$pkg/etc/mailname"
printf '127.0.1.1\tmail.example.org mail\n' >>"$pkg/etc/hosts"
cp "$deb" "$pkg/root/"
say "copy the tree (git archive HEAD) into $pkg/root/chamois"
mkdir -p "$pkg/root/chamois"
git -C "$top" archive HEAD | tar -x -C "$pkg/root/chamois"

nspawn_pid=
leader=
ct_stop() {
	[ -n "$nspawn_pid" ] || return 0
	# SIGTERM: nspawn asks the container's systemd to power off
	kill -TERM "$nspawn_pid" 2>/dev/null || true
	i=0
	while kill -0 "$nspawn_pid" 2>/dev/null && [ $i -lt 100 ]; do
		i=$((i + 1))
		sleep 0.3
	done
	kill -KILL "$nspawn_pid" 2>/dev/null || true
	wait "$nspawn_pid" 2>/dev/null || true
	nspawn_pid=
}
trap 'ct_stop; cleanup' EXIT
trap 'exit 1' INT TERM

say "boot $pkg with systemd-nspawn -b (console in $work/pkg.console.log)"
systemd-nspawn -q -D "$pkg" -b --register=no --keep-unit \
    --machine=chamois-fresh --hostname=mail.example.org \
    </dev/null >"$work/pkg.console.log" 2>&1 &
nspawn_pid=$!
# the container's init: the child of nspawn that runs systemd
i=0
while :; do
	leader=$(ps -o pid= -o comm= --ppid "$nspawn_pid" 2>/dev/null |
	    awk '$2 == "systemd" { print $1; exit }')
	[ -z "$leader" ] || break
	kill -0 "$nspawn_pid" 2>/dev/null && [ $i -lt 100 ] ||
		{ cat "$work/pkg.console.log"; die "systemd-nspawn -b did not start systemd"; }
	i=$((i + 1))
	sleep 0.2
done

# in_ct CMD - run a shell command in the booted container, as root
in_ct() {
	nsenter --target "$leader" --mount --uts --ipc --net --pid -- \
	    /usr/bin/env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin \
	    LANG=C.UTF-8 TERM=dumb SYSTEMD_PAGER= SYSTEMD_COLORS=0 \
	    /bin/sh -c "cd /root && $*"
}

state=$(in_ct 'timeout 120 systemctl is-system-running --wait') || true
say "booted: $state (hostname $(in_ct hostname))"
case $state in
running|degraded) ;;
*) tail -40 "$work/pkg.console.log"; die "the container did not boot" ;;
esac
[ "$state" = running ] || in_ct 'systemctl --failed --no-pager'

say "apt-get install ./$(basename "$deb") on a pristine booted system"
in_ct "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ./$(basename "$deb") swaks" ||
	die "the package does not install"

say "the unit, enabled and started by the package"
in_ct 'systemctl is-enabled chamoisd && systemctl is-active chamoisd' || {
	in_ct 'systemctl status --no-pager -l chamoisd; journalctl -u chamoisd --no-pager'
	die "chamoisd is not enabled and running after the install"
}
in_ct 'systemctl status --no-pager -l chamoisd' || true

say "systemd-analyze security chamoisd (the running unit)"
in_ct 'systemd-analyze security --no-pager chamoisd | tail -1'

say "mail to root over SMTP and through /usr/sbin/sendmail"
in_ct 'set -e
	domain=$(cat /etc/mailname)
	swaks --server 127.0.0.1:25 --to root@$domain --silent 2
	printf "Subject: cron\n\nfrom cron\n" | /usr/sbin/sendmail root
	i=0; while [ "$(find /var/mail/chamois -path "*/new/*" -type f | wc -l)" -lt 2 ]; do
		i=$((i + 1)); [ $i -lt 100 ] || { journalctl -u chamoisd --no-pager; exit 1; }; sleep 0.2; done
	find /var/mail/chamois -path "*/new/*" -type f
	grep -l "^Subject: cron" $(find /var/mail/chamois -path "*/new/*" -type f) >/dev/null' ||
	bad "the installed package did not receive mail"

say "systemctl reload chamoisd: its reload line in the journal"
in_ct 'systemctl reload chamoisd &&
	i=0; while ! journalctl -u chamoisd --no-pager -o cat | grep -q "reload done"; do
		i=$((i + 1)); [ $i -lt 100 ] || exit 1; sleep 0.2; done &&
	journalctl -u chamoisd --no-pager -o cat | grep "reload"' || {
	in_ct 'systemctl status --no-pager -l -n 0 chamoisd; journalctl -u chamoisd --no-pager -n 20'
	bad "systemctl reload chamoisd logged no reload"
}

# run_install_doc - doc/install.md's commands, as an operator types them,
# with two stand-ins for the world: certbot asks a local pebble instead of
# Let's Encrypt (tests/fresh/acme*.sh), and apt-get answers yes by itself
# (an operator types y). The blocks that need DNS or another mail server
# are marked in the doc for tests/integration/ and left out here
# (doc-commands.py). sh -e stops at the first command that fails: the
# doc's own checks (grep, doveadm auth test, curl) are checks here too.
# Then what the walkthrough promises is checked from outside it.
run_install_doc() {
	t=/root/chamois/tests/fresh
	in_ct '[ -f chamois/doc/install.md ]' || {
		say "doc/install.md: not in the tree, skipped"
		return 0
	}
	for f in acme.sh acme-env.sh doc-commands.py; do
		in_ct "[ -f $t/$f ]" || {
			bad "doc/install.md present but tests/fresh/$f is not"
			return 1
		}
	done
	say "doc/install.md: its commands under sh -ex (certbot against pebble)"
	# the host's python3: the pristine system has none
	python3 "$pkg$t/doc-commands.py" "$pkg/root/chamois/doc/install.md" \
	    >"$pkg/root/install-doc.sh" || { bad "doc-commands.py"; return 1; }
	echo 'APT::Get::Assume-Yes "true";' >"$pkg/etc/apt/apt.conf.d/90fresh-yes"
	# one shell: certbot is a function of acme-env.sh, which starts pebble
	# on its first call (after the doc installed certbot)
	in_ct "DEBIAN_FRONTEND=noninteractive CHAMOIS_ACME_SH=$t/acme.sh sh -ex -c '. $t/acme-env.sh; . /root/install-doc.sh'" ||
		bad "a command of doc/install.md failed"
	in_ct "sh $t/acme.sh stop" || true
	rm -f "$pkg/etc/apt/apt.conf.d/90fresh-yes"

	say "doc/install.md: what it promises"
	# the hook's copy of the certificate, readable by group chamois
	in_ct 'stat -c "%U:%G %a %n" /etc/chamois/tls/mail.example.org/privkey.pem |
		grep -x "root:chamois 640 .*"' ||
		bad "install.md: the deploy hook made no key copy for chamois"
	# chamoisd took the new key and the two DKIM keys
	in_ct 'journalctl -u chamoisd --no-pager -o cat | grep "reload done.*tls=yes" | tail -1 &&
		journalctl -u chamoisd --no-pager -o cat | grep "dkim keys=2" | tail -1' ||
		bad "install.md: chamoisd did not load the certificate and the DKIM keys"
	# alice's own message (submission, through the queue) and info@'s
	in_ct 'i=0; while [ "$(find /var/mail/chamois/example.org/alice -path "*/new/*" -o -path "*/cur/*" -type f 2>/dev/null | wc -l)" -lt 2 ]; do
		i=$((i + 1)); [ $i -lt 100 ] || exit 1; sleep 0.2; done;
		ls -l /var/mail/chamois/example.org/alice/new /var/mail/chamois/example.org/alice/cur' ||
		bad "install.md: alice did not get her two messages"
	# over IMAP as her mail program reads them, through Dovecot
	in_ct "for uid in 1 2; do curl -s --insecure -u alice@example.org:alice-password \\
		\"imaps://mail.example.org/INBOX;UID=\$uid\"; done | grep '^To: .*info@example.org'" ||
		bad "install.md: Dovecot did not serve info@'s message to alice"
	in_ct "! curl -s --insecure -u alice@example.org:wrong 'imaps://mail.example.org/INBOX;UID=1' >/dev/null" ||
		bad "install.md: Dovecot let a wrong password in"
	# the Maildirs stay chamois's, whoever wrote into them
	in_ct '[ -z "$(find /var/mail/chamois ! -user chamois)" ]' ||
		bad "install.md: a file under /var/mail/chamois is not chamois's"
}
run_install_doc || true

say "systemctl stop chamoisd"
in_ct 'systemctl stop chamoisd; ! systemctl is-active chamoisd' ||
	bad "chamoisd did not stop"

ct_stop
[ -z "$failed" ] || die "these checks failed:$failed"
say "every step passed"
