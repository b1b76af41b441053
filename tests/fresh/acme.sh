#!/bin/sh
# tests/fresh/acme.sh start|stop - a test ACME CA in place of Let's Encrypt,
# so that the certbot commands of doc/install.md run unchanged on a machine
# (or chroot) that no CA can reach.
#
# start: installs Debian's pebble if missing, makes a self-signed
# certificate for its HTTPS endpoint (Debian ships none of pebble's test
# certificates), and starts it in the background with
#   ACME directory   https://127.0.0.1:14000/dir
#   management       https://127.0.0.1:15000 (/roots/0, /intermediates/0)
# PEBBLE_VA_ALWAYS_VALID=1: every challenge is valid without a request, so
# neither DNS nor port 80 need to be reachable from outside; -dnsserver
# points at a loopback port nobody serves, so pebble can never ask the
# machine's resolver.  The pid is in /run/chamois-acme.pid, the log, the
# config and the endpoint's certificate (ca.pem, the bundle certbot
# trusts) in /run/chamois-acme/.  Waits until the directory answers.
# stop: kills it (by that pid) and removes the pid file.
#
# Then `. tests/fresh/acme-env.sh` makes `certbot` use it.  Run as root.
set -eu

dir=/run/chamois-acme
pidfile=/run/chamois-acme.pid
acme=127.0.0.1:14000
mgmt=127.0.0.1:15000

die() { printf 'acme.sh: %s\n' "$*" >&2; exit 1; }

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

start() {
	running && die "pebble already runs (pid $(cat "$pidfile"))"
	if ! command -v pebble >/dev/null; then
		# a fresh system may have no package lists yet
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends pebble ||
			{ apt-get update -qq &&
			  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends pebble; }
	fi
	command -v python3 >/dev/null || die "python3 is missing (certbot needs it anyway)"
	mkdir -p "$dir"
	chmod 0700 "$dir"
	if [ ! -s "$dir/ca.pem" ]; then
		openssl req -x509 -newkey rsa:2048 -nodes -days 30 \
			-keyout "$dir/key.pem" -out "$dir/ca.pem" \
			-subj "/CN=chamois test ACME endpoint" \
			-addext "subjectAltName=IP:127.0.0.1,DNS:localhost" 2>/dev/null
	fi
	cat >"$dir/pebble.json" <<EOF
{
  "pebble": {
    "listenAddress": "$acme",
    "managementListenAddress": "$mgmt",
    "certificate": "$dir/ca.pem",
    "privateKey": "$dir/key.pem",
    "httpPort": 80,
    "tlsPort": 443,
    "ocspResponderURL": "",
    "externalAccountBindingRequired": false
  }
}
EOF
	# nonce rejection off: certbot retries a bad nonce only once
	PEBBLE_VA_ALWAYS_VALID=1 PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 \
		nohup pebble -config "$dir/pebble.json" -dnsserver 127.0.0.1:9 \
		>"$dir/pebble.log" 2>&1 </dev/null &
	echo $! >"$pidfile"
	i=0
	until python3 - "$acme" "$dir/ca.pem" <<'EOF' 2>/dev/null
import ssl, sys, urllib.request
ctx = ssl.create_default_context(cafile=sys.argv[2])
urllib.request.urlopen("https://%s/dir" % sys.argv[1], context=ctx, timeout=2).read()
EOF
	do
		i=$((i + 1))
		if [ "$i" -ge 100 ] || ! running; then
			cat "$dir/pebble.log" >&2
			stop
			die "pebble did not answer on https://$acme/dir"
		fi
		sleep 0.1
	done
	echo "acme.sh: pebble (pid $(cat "$pidfile")) answers on https://$acme/dir"
}

stop() {
	[ -f "$pidfile" ] || return 0
	pid=$(cat "$pidfile")
	kill "$pid" 2>/dev/null || true
	i=0
	while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 50 ]; do
		i=$((i + 1))
		sleep 0.1
	done
	rm -f "$pidfile"
}

case ${1:-} in
start) start ;;
stop) stop ;;
*) die "usage: acme.sh start|stop" ;;
esac
