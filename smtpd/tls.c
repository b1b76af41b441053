/*
 * tls.c - server TLS contexts.
 *
 * Port 25 is opportunistic (RFC 7435): any version the library allows,
 * since the alternative is plaintext.  The submission roles require
 * TLS 1.2 or newer (doc/protocol.md, "TLS") and forward-secret AEAD
 * ciphers only (what Mozilla's "intermediate" profile allows; TLS 1.3's
 * suites all are).  Compression and renegotiation are off.  A client's TCP
 * half-close without close_notify is an end of input, not an error that
 * kills the session before its last replies are sent (doc/protocol.md,
 * "Ending a session"; SMTP has its own end markers, so truncation is not a
 * risk).
 */
#include <stdio.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "smtpd.h"

/* TLS 1.2 ciphers for the submission roles: ECDHE/DHE key exchange only */
#define SUBMISSION_CIPHERS \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:" \
	"DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:" \
	"DHE-RSA-CHACHA20-POLY1305"

static void
tls_error(char *err, size_t size, const char *what, const char *file)
{
	char buf[256];

	ERR_error_string_n(ERR_get_error(), buf, sizeof(buf));
	snprintf(err, size, "%s %s: %s", what, file, buf);
	ERR_clear_error();
}

SSL_CTX *
smtpd_tls_ctx(const char *cert, const char *key, bool strict, char *err,
    size_t errsize)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (ctx == NULL) {
		tls_error(err, errsize, "SSL_CTX_new", "");
		return NULL;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_IGNORE_UNEXPECTED_EOF);
	if (strict) {
		SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
		SSL_CTX_set_dh_auto(ctx, 1);
		if (SSL_CTX_set_cipher_list(ctx, SUBMISSION_CIPHERS) != 1) {
			tls_error(err, errsize, "cipher list", "");
			goto fail;
		}
	} else {
		/*
		 * RFC 7435: on port 25 any encryption beats the plaintext that
		 * refusing would leave; OpenSSL 3 needs security level 0 for
		 * TLS 1.0/1.1 and old ciphers
		 */
		SSL_CTX_set_min_proto_version(ctx, 0);
		SSL_CTX_set_security_level(ctx, 0);
	}
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		tls_error(err, errsize, "tls_cert", cert);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		tls_error(err, errsize, "tls_key", key);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		tls_error(err, errsize, "tls_key does not match tls_cert", key);
		goto fail;
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}
