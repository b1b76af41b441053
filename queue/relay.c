/*
 * relay.c - the queue's next hop for a remote domain (doc/queue.md
 * "Relay host" and "Routes"): a route line for the domain comes first,
 * then relay_host, then the domain's own MX hosts; and the TLS context
 * that checks the relay's certificate.
 */
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "../common/config.h"
#include "../common/util.h"
#include "queue.h"

/* queue_next_hop - see queue.h */
void
queue_next_hop(const struct config *cfg, const char *domain, struct next_hop *h)
{
	const struct route_conf *r = config_route(cfg, domain);

	memset(h, 0, sizeof(*h));
	if (r != NULL) {
		h->kind = HOP_ROUTE;
		str_copy(h->host, r->host, sizeof(h->host));
		h->port = r->port;
	} else if (cfg->relay_host != NULL) {
		h->kind = HOP_RELAY;
		str_copy(h->host, cfg->relay_host, sizeof(h->host));
		h->port = cfg->relay_port;
	} else {
		h->kind = HOP_MX;
		h->port = cfg->remote_port;
	}
}

/* relay_tls_new - see queue.h */
SSL_CTX *
relay_tls_new(const struct config *cfg, char *err, size_t errsize)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	int ok;

	if (ctx == NULL) {
		bsnprintf(err, errsize, "SSL_CTX_new failed");
		return NULL;
	}
	/* the relay sees our password: modern TLS and a verified peer only */
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	ok = cfg->tls_ca_file ? SSL_CTX_load_verify_locations(ctx, cfg->tls_ca_file,
	    NULL) : SSL_CTX_set_default_verify_paths(ctx);
	if (ok != 1) {
		unsigned long e = ERR_get_error();
		char buf[256];

		ERR_error_string_n(e, buf, sizeof(buf));
		ERR_clear_error();
		bsnprintf(err, errsize, "tls_ca_file %s: %s", cfg->tls_ca_file ?
		    cfg->tls_ca_file : "(system)", buf);
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}
