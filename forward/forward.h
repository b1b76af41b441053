/*
 * forward.h - synchronous forwarding (SPEC 4): a forwarded recipient's
 * mail goes straight to the target's server while the sender waits, and
 * the sender gets the remote's own replies.  chamoisd never takes
 * responsibility for such mail, so it never bounces it.
 */
#ifndef CHAMOIS_FORWARD_H
#define CHAMOIS_FORWARD_H

#include <stdbool.h>
#include <stddef.h>

struct smtpd_session;
struct expansion;
struct smtp_reply;

/*
 * fwd_rcpt - RCPT for a forwarded address; exp->external is the target
 * and exp->mailboxes the local copies.  The session waits (ST_WAIT) until
 * the remote has answered, then the client gets that answer.
 */
void fwd_rcpt(struct smtpd_session *, const char *shown, const struct expansion *);
/* fwd_data - DATA: the client gets 354 once the remote has said 354 */
void fwd_data(struct smtpd_session *);
/* fwd_body - a chunk of the message (LF form, unstuffed) */
void fwd_body(struct smtpd_session *, const char *text, size_t len);
/*
 * fwd_end - the client's final dot: refusal is the reply when a check
 * failed (the remote then never gets a final dot), NULL when all is well.
 */
void fwd_end(struct smtpd_session *, const char *refusal);
/*
 * fwd_rset - the client's transaction ended (RSET, EHLO, the final dot's
 * reply...): QUIT to the remote, and the forwarding slot is free
 */
void fwd_rset(struct smtpd_session *);
/* fwd_session_free - the client is gone: close the remote session */
void fwd_session_free(struct smtpd_session *);
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
