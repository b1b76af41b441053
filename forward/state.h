/*
 * state.h - forward/'s own state (private to forward/): what the
 * composition root gives it at forward_init()/forward_configure(), the
 * SRS secrets, where our mx role listens, and the forward counters.
 */
#ifndef CHAMOIS_FORWARD_STATE_H
#define CHAMOIS_FORWARD_STATE_H

#include <stddef.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

#include "srs.h"

struct config;
struct event_base;
struct hmap;
struct resolver;
struct sts;

struct forward_state {
	struct event_base *base;
	struct config *cfg;		/* the config in force (forward_configure) */
	struct resolver *resolver;	/* MX look-ups (outbound/) */
	SSL_CTX *tls_client;		/* outbound STARTTLS, opportunistic */
	struct sts *sts;		/* MTA-STS (outbound/mtasts.h); NULL: off */
	struct srs srs;			/* srs.c */
	struct sockaddr_storage *self;	/* where our mx role listens (loops) */
	size_t nself;
	unsigned nfwd;			/* forward sessions open */
	struct hmap *per_domain;	/* target domain -> forward sessions */
	struct hmap *per_client;	/* client address key -> forward sessions */
};

extern struct forward_state fwd_g;

#endif
