/*
 * srs.h - the Sender Rewriting Scheme for forwarded mail.
 *
 * A forwarded message leaves with the envelope sender
 * SRS0=HHHHHH=TT=orig-domain=orig-local@our-domain, so that SPF checks of
 * the next server pass and a late bounce comes back to us, to be forwarded
 * (synchronously) to the original sender.  HHHHHH is an HMAC-SHA256
 * (OpenSSL) over the lower-cased timestamp, domain and local part, in
 * base32 (case-insensitive, since servers may fold case) truncated to 6
 * characters; TT is the day number modulo 1024 in base32 (2 characters).
 */
#ifndef CHAMOIS_SRS_H
#define CHAMOIS_SRS_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define SRS_MAX_SECRETS	8
#define SRS_MAX_AGE_DAYS 21

struct srs {
	char *secrets[SRS_MAX_SECRETS];	/* [0] signs; every one verifies */
	size_t nsecrets;
};

enum srs_status {
	SRS_OK,
	SRS_NOT_SRS,	/* not an SRS address at all */
	SRS_BAD_HASH,	/* forged, or signed with a secret we no longer have */
	SRS_STALE,	/* timestamp older than SRS_MAX_AGE_DAYS (or in the future) */
	SRS_LITERAL,	/* a good hash, but the original domain is an address literal */
	SRS_SYNTAX,	/* looks like SRS0 but is malformed */
};

/*
 * srs_init - secrets from srs_secret lines; with none, read (or make, 0600,
 * 32 random bytes as hex) the file queue_dir/srs.secret.  -1 on failure.
 */
int srs_init(struct srs *, char *const *secrets, size_t n, const char *queue_dir,
    char *err, size_t errsize);
void srs_free(struct srs *);
/*
 * srs_forward - rewrite sender (local@domain, not empty) into out as
 * SRS0=...@our_domain; false if out is too small, or if domain is an
 * address literal (doc/forwarding.md: an SRS address never leads to one).
 */
bool srs_forward(const struct srs *, const char *sender, const char *our_domain,
    time_t now, char *out, size_t size);
/*
 * srs_reverse - decode the local part of an address (case-insensitively:
 * servers may fold case) into the original sender "local@domain".  An
 * original domain that is an address literal gives SRS_LITERAL, also for
 * an address minted before srs_forward refused them.
 */
enum srs_status srs_reverse(const struct srs *, const char *local_part,
    time_t now, char *orig, size_t size);

#endif
