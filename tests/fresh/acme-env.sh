# tests/fresh/acme-env.sh - sourced (`. tests/fresh/acme-env.sh`) after
# `tests/fresh/acme.sh start`: `certbot` becomes a function that runs the
# real certbot against that test CA, so the literal commands of
# doc/install.md (certbot certonly --standalone -d NAME --deploy-hook ...,
# certbot renew --force-renewal) run unchanged.  Added to every call:
#   --server https://127.0.0.1:14000/dir  the test CA, not Let's Encrypt
#   REQUESTS_CA_BUNDLE                     trusts its endpoint's certificate
#   --non-interactive --agree-tos --register-unsafely-without-email
#   --http-01-address 127.0.0.1            certbot --standalone on loopback
#   --no-random-sleep-on-renew             renew run without a terminal (a
#                                          script) sleeps up to 8 min first
# CHAMOIS_ACME_DIR (default /run/chamois-acme) is where acme.sh keeps ca.pem.
# With CHAMOIS_ACME_SH set (the path of acme.sh), the first call starts
# pebble itself: a walkthrough installs certbot, and with it the python3
# and openssl that acme.sh needs, only in the step that calls it.

CHAMOIS_ACME_DIR=${CHAMOIS_ACME_DIR:-/run/chamois-acme}

certbot() {
	if [ -n "${CHAMOIS_ACME_SH:-}" ] && [ ! -f /run/chamois-acme.pid ]; then
		sh "$CHAMOIS_ACME_SH" start || return 1
	fi
	env REQUESTS_CA_BUNDLE="$CHAMOIS_ACME_DIR/ca.pem" certbot \
		--server https://127.0.0.1:14000/dir \
		--non-interactive --agree-tos --register-unsafely-without-email \
		--http-01-address 127.0.0.1 --no-random-sleep-on-renew "$@"
}
