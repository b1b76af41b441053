/*
 * checks.h - what the mx role checks on a message from the world
 * (doc/forwarding.md "Checks", chamois.conf(5) "dmarc_policy"): SPF
 * (RFC 7208), DKIM (RFC 6376, RFC 8463), DMARC (RFC 9989) and the
 * Authentication-Results field (RFC 8601) that records them.
 *
 * Everything here runs on the event loop and never blocks it: every DNS
 * question goes through the root's resolver (outbound/resolver.h, so to
 * dns_server); CPU-heavy steps (a DKIM signature's verification) run on
 * the CPU pool (common/worker.h).
 */
#ifndef CHAMOIS_CHECKS_H
#define CHAMOIS_CHECKS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "../common/config.h"
#include "../common/limits.h"

struct resolver;

/* a method's result, as RFC 8601 2.7 names them */
enum auth_res {
	AUTH_NONE,		/* "none": nothing to check */
	AUTH_PASS,
	AUTH_FAIL,
	AUTH_SOFTFAIL,		/* SPF only */
	AUTH_NEUTRAL,		/* SPF; DKIM: a signature not checked */
	AUTH_TEMPERROR,		/* a DNS failure: may pass later */
	AUTH_PERMERROR,
	AUTH_POLICY,		/* DKIM: valid, but not acceptable (key too short) */
};

/* auth_res_name - "pass", "fail", ... (RFC 8601) */
const char *auth_res_name(enum auth_res);

#define AUTH_DKIM_MAX	8	/* signatures checked per message; more: neutral */

struct auth_dkim_sig {
	enum auth_res result;
	char d[DOMAIN_MAX + 1];		/* header.d, lower case */
	char s[64];			/* header.s */
	char a[32];			/* header.a: rsa-sha256, ed25519-sha256 */
	char b[16];			/* header.b: the first 8 characters of b= */
	char why[96];			/* a reason, for the log and the comment */
};

enum dmarc_p {
	DMARC_P_ABSENT,		/* no record found */
	DMARC_P_NONE,
	DMARC_P_QUARANTINE,
	DMARC_P_REJECT,
};

struct auth_results {
	enum auth_res spf;
	bool spf_helo;				/* checked the HELO identity (MAIL FROM:<>) */
	char spf_identity[PATH_MAX_OCTETS + 1];	/* smtp.mailfrom (the address) or smtp.helo */
	char spf_domain[DOMAIN_MAX + 1];	/* the domain SPF checked */
	struct auth_dkim_sig dkim[AUTH_DKIM_MAX];
	size_t ndkim;
	enum auth_res dmarc;			/* NONE: no From domain or no record */
	char from_domain[DOMAIN_MAX + 1];	/* header.from; "" when not exactly one */
	/*
	 * from_problem - "" or why the author is ambiguous: several From
	 * fields, addresses in several domains, a From that does not parse
	 */
	char from_problem[64];
	enum dmarc_p policy;			/* what applies to from_domain (p=, sp=, np=) */
	bool testing;				/* the record says t=y (RFC 9989) */
};

struct auth_check_params {
	const struct sockaddr *client;	/* the client's address */
	socklen_t clientlen;
	const char *helo;		/* as the client gave it */
	const char *mail_from;		/* the envelope sender, "" for <> */
	const char *hostname;		/* ours: SPF's receiving host (%{r}) */
};

struct auth_check;

/*
 * auth_check_start - the checks of one message, at MAIL: SPF starts at
 * once; p is copied.  NULL only when r is NULL (no resolver).
 */
struct auth_check *auth_check_start(struct resolver *r,
    const struct auth_check_params *p);
/*
 * auth_check_message - the next chunk of the message as the client sent
 * it (LF line ends, dot-stuffing undone, without our Received field); a
 * header's DNS look-ups (the DKIM key of each DKIM-Signature, the DMARC
 * record of the From domain) start as soon as the field is complete.
 * Memory is bounded: past the header section only the body hash grows.
 */
void auth_check_message(struct auth_check *, const char *text, size_t len);
/*
 * auth_check_finish - the message is complete: cb(arg, results) runs once,
 * on the loop, never from inside this call, when every look-up and
 * verification is done (each look-up under its own timeout).  results is
 * valid only during cb.  After cb, only auth_check_free.
 */
typedef void (*auth_check_cb)(void *arg, const struct auth_results *);
void auth_check_finish(struct auth_check *, auth_check_cb cb, void *arg);
/* auth_check_free - the end (cancels what is still running; cb never runs) */
void auth_check_free(struct auth_check *);

/*
 * auth_results_field - "Authentication-Results: AUTHSERV-ID;\n\tspf=...
 * smtp.mailfrom=...;\n\tdkim=... header.d=... header.s=... header.b=...;
 * \n\tdmarc=... header.from=...\n" (RFC 8601, LF form, folded under 78
 * columns where it can be), malloc'd
 */
char *auth_results_field(const struct auth_results *, const char *authserv_id);
/*
 * auth_results_names - the Authentication-Results field f[0..n) (LF form,
 * folded or not, its name included) has authserv_id as its authserv-id
 * (RFC 8601 5: such a field from outside is removed); a field that cannot
 * be parsed does not
 */
bool auth_results_names(const char *f, size_t n, const char *authserv_id);

/*
 * auth_policy - SPEC'd policy of the mx role (doc/forwarding.md "Checks"):
 * the reply refusing the message into reply (a whole line: "550 5.7.1 ...",
 * or a 4xx when a DNS failure leaves the answer open) and true, or false
 * when it may go on.  c gives domains and dmarc_policy; mail_from is the
 * envelope sender ("" for <>); forwarded: a copy goes to another server.
 */
bool auth_policy(const struct auth_results *, const struct config *c,
    const char *mail_from, bool forwarded, char *reply, size_t size);

#endif
