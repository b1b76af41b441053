#!/bin/sh
# setup.sh DIR - the development setup that `make run` uses: a config on
# loopback high ports with its state under DIR (git-ignored), a demo
# mailbox, and a self-signed certificate, each made only if missing.
set -eu
dir=${1:-run}
mkdir -p "$dir"
cd "$dir"
if [ ! -f chamois.conf ]; then
	cat > chamois.conf <<CONF
# chamois development config, made by etc/dev/setup.sh (edit freely)
hostname mx.chamois.test
listen mx 127.0.0.1:2525
listen mx [::1]:2525
listen submission 127.0.0.1:2587
listen submissions 127.0.0.1:2465
domains chamois.test
mailboxes mailboxes
aliases aliases
maildir_root maildir
queue_dir queue
tls_cert cert.pem
tls_key key.pem
sasl_db sasldb2
# no DNS look-up may leave the machine from a development setup
dns_server 127.0.0.1:5353
# forwarded mail goes to port 2526 (fwd@chamois.test -> sink@[127.0.0.1])
remote_port 2526
forward_rcpt_budget 10s
CONF
	# ::1 may be missing (containers without IPv6)
	if ! (python3 -c 'import socket; s=socket.socket(socket.AF_INET6); s.bind(("::1",0))') 2>/dev/null; then
		sed -i '/\[::1\]/d' chamois.conf
	fi
fi
[ -f mailboxes ] || printf 'demo@chamois.test\n' > mailboxes
[ -f aliases ] || cat > aliases <<'ALIASES'
# address: target, target
hello@chamois.test: demo@chamois.test
# a forwarded address: passed through, while the sender waits, to the
# server on 127.0.0.1:2526 (remote_port); start one with
#   python3 -m aiosmtpd -n -l 127.0.0.1:2526
fwd@chamois.test: sink@[127.0.0.1]
ALIASES
# the demo user logs in as demo@chamois.test with the password "demo"
if [ ! -f sasldb2 ]; then
	echo demo | saslpasswd2 -c -p -f sasldb2 -u chamois.test demo
	chmod 600 sasldb2
fi
if [ ! -f cert.pem ]; then
	openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=mx.chamois.test" \
		-addext "subjectAltName=DNS:mx.chamois.test,DNS:localhost" \
		-keyout key.pem -out cert.pem 2>/dev/null
	chmod 600 key.pem
fi
