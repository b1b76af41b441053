#!/bin/sh
# deps.sh - install the Debian packages chamois needs to build, run and
# pass its tests (Debian 12).  Uses sudo when not run as root.
# Installed without Recommends, so a Recommends that a test needs is named
# here: swaks speaks TLS only with libnet-ssleay-perl.
set -eu
pkgs="build-essential pkg-config openssl libssl-dev libevent-dev libdb5.3-dev
libsasl2-dev libsasl2-modules sasl2-bin libc-ares-dev libidn2-dev libopendkim-dev libsystemd-dev libcmocka-dev
python3 python3-pytest python3-pytest-xdist python3-aiosmtpd python3-dkim swaks libnet-ssleay-perl msmtp dnsmasq-base fail2ban
dovecot-imapd dovecot-lmtpd dovecot-sieve iproute2 libicu72 libnsl2 netbase clang-14 libclang-rt-14-dev"
# the inbound checks (checks/: SPF, DMARC) and their tests (pyspf, authres)
pkgs="$pkgs libspf2-dev libopendmarc-dev python3-spf python3-authres"
# dig and curl, for doc/install.md's checks (tests/integration/test_install_doc.py)
pkgs="$pkgs bind9-dnsutils curl"
# systemd-analyze and the unit's seccomp filter (tests/integration/test_systemd_unit.py)
pkgs="$pkgs systemd libseccomp2 util-linux"
# make deb and its check in tests/integration/test_package.py (doc/debian.md)
pkgs="$pkgs dpkg-dev debhelper fakeroot lintian"
# certbot against a test ACME CA (tests/integration/test_certbot.py, tests/fresh/acme.sh)
pkgs="$pkgs certbot pebble"
# DANE's signed test zones: ldns-keygen/ldns-signzone, nsd, unbound
# (tests/integration/peers/dnssec.py, test_dane.py)
pkgs="$pkgs ldnsutils nsd unbound"
# TLS-RPT reports are gzip'ed (outbound/tlsrpt.c, queue/tlsrpt.c)
pkgs="$pkgs zlib1g-dev"
# libraries of the Exim unpacked by tests/integration/peers/exim.py
pkgs="$pkgs libgnutls-dane0 libidn12 libpcre2-8-0"
# content filters over milter (tests/integration/test_milter.py, doc/filters.md)
pkgs="$pkgs python3-milter rspamd opendkim"
run() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
missing=
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
done
# apt-get download (the tests unpack Postfix) needs package lists
if [ -n "$missing" ] || [ -z "$(ls /var/lib/apt/lists/ 2>/dev/null | grep -v -e lock -e partial)" ]; then
	run env DEBIAN_FRONTEND=noninteractive apt-get update -qq
fi
if [ -n "$missing" ]; then
	echo "deps.sh: installing$missing"
	run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
fi
