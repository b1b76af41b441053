/*
 * engine.h - the checks of the mx role as the session engine sees them
 * (smtpd/route.h, struct smtpd_check_ops; doc/forwarding.md "Checks"):
 * the DNS block lists (dnsbl.c) at RCPT; SPF, DKIM and DMARC (checks.h)
 * on each message, their Authentication-Results field and the policy's
 * verdict at the final dot.
 */
#ifndef CHAMOIS_CHECKS_ENGINE_H
#define CHAMOIS_CHECKS_ENGINE_H

struct resolver;
struct smtpd_check_ops;

/* mx_checks - the ops the composition root sets for the mx role */
extern const struct smtpd_check_ops mx_checks;
/* mx_checks_init - at start: the root's resolver (borrowed for the daemon's life) */
void mx_checks_init(struct resolver *);

#endif
