/*
 * forward.h - synchronous forwarding (doc/forwarding.md): a forwarded
 * recipient's mail goes straight to the target's server while the sender
 * waits, and the sender gets the remote's own replies.  chamoisd never
 * takes responsibility for such mail, so it never bounces it.
 */
#ifndef CHAMOIS_FORWARD_H
#define CHAMOIS_FORWARD_H

#include <stdbool.h>
#include <stddef.h>

struct config;
struct event_base;
struct mailaddr;
struct resolver;
struct smtp_reply;
struct smtpd_route_ops;
struct smtpd_route_pick;
struct smtpd_session;
typedef struct ssl_ctx_st SSL_CTX;

/*
 * forward_init - at start, after the listeners are known: the loop, the
 * outbound resolver, client TLS context and MTA-STS (NULL: off; the composition root's,
 * borrowed for the daemon's life), the SRS secrets (srs.c: from
 * srs_secret lines or a key file in queue_dir) and the addresses our mx
 * role answers on.  -1 and err ("FILE:LINE: srs_secret: ...") on failure.
 */
struct sts;
int forward_init(struct event_base *, const struct config *,
    struct resolver *, SSL_CTX *tls_client, struct sts *sts, char *err,
    size_t errsize);
/* forward_configure - the config in force (at init and on SIGHUP): limits, budgets */
void forward_configure(struct config *);
/* forward_shutdown - after the loop: free the counters, SRS, the config */
void forward_shutdown(void);

/*
 * forward_route - the route of a forwarded address (smtpd/route.h):
 * each RCPT is asked of the target's server while the client waits, and
 * answered with that server's reply (fwd_map_reply); DATA gets 354 once
 * the remote said 354; the engine holds the message (forwards) until the
 * checks' verdict, then it goes to the remote, the Authentication-Results
 * field and our Received first, paced by the remote; the final dot goes
 * once every check passed and the local copies (if any) are synced in
 * tmp/, which move into new/ only after the remote's 2xx.  Every end of the transaction ends the remote
 * session with QUIT.
 */
extern const struct smtpd_route_ops forward_route;
/*
 * forward_mx_router - the router of the mx role (smtpd_set_router): a
 * domain of ours or 554 5.7.1 (no relay); an SRS address of ours goes
 * to its original sender (from <> only); a table address to
 * local_route (local mailboxes only) or forward_route (an external
 * target; its local mailboxes ride along); else 550 5.1.1.
 */
bool forward_mx_router(struct smtpd_session *, const struct mailaddr *,
    const char *key, const char *shown, struct smtpd_route_pick *);
/*
 * fwd_map_reply - a remote reply made safe for our client (pure): its code
 * and enhanced code (X.0.0 of its class when it has none), the text
 * without control characters, non-ASCII only for an SMTPUTF8 client,
 * bounded; a class other than 2, 4 or 5 becomes "451 4.4.2".
 */
void fwd_map_reply(const struct smtp_reply *, bool utf8, char *out, size_t size);
/*
 * fwd_hide_address - in text (NUL-terminated, size octets of room), every
 * occurrence of addr, compared case-insensitively, becomes shown: a remote
 * that echoes the forwarding target never shows it to our client (pure;
 * a result longer than size is cut).
 */
void fwd_hide_address(char *text, size_t size, const char *addr, const char *shown);

#endif
