/*
 * results.c - what the checks' results say (checks.h): the
 * Authentication-Results field we prepend (RFC 8601), the test whether a
 * field from outside names us (RFC 8601 5: such a field is removed), and
 * the policy of the mx role (doc/forwarding.md "Checks"): which results
 * refuse a message, with which reply.  Pure functions, no I/O.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../common/addr.h"
#include "../common/util.h"
#include "eval.h"

#define AR_FOLD	78	/* RFC 5322 2.1.1: lines SHOULD be no longer */

const char *
auth_res_name(enum auth_res r)
{
	switch (r) {
	case AUTH_NONE:		return "none";
	case AUTH_PASS:		return "pass";
	case AUTH_FAIL:		return "fail";
	case AUTH_SOFTFAIL:	return "softfail";
	case AUTH_NEUTRAL:	return "neutral";
	case AUTH_TEMPERROR:	return "temperror";
	case AUTH_PERMERROR:	return "permerror";
	case AUTH_POLICY:	return "policy";
	}
	return "permerror";
}

static const char *
policy_name(enum dmarc_p p)
{
	switch (p) {
	case DMARC_P_NONE:		return "none";
	case DMARC_P_QUARANTINE:	return "quarantine";
	case DMARC_P_REJECT:		return "reject";
	case DMARC_P_ABSENT:		break;
	}
	return NULL;
}

/* ---- the field ---------------------------------------------------------- */

/* is_tspecial - RFC 2045 5.1 tspecials, which a token may not hold */
static bool
is_tspecial(int c)
{
	return c != 0 && strchr("()<>@,;:\\\"/[]?=", c) != NULL;
}

static bool
is_token_char(int c)
{
	return c > 0x20 && c != 0x7f && !is_tspecial(c);
}

/*
 * pvalue - v as an RFC 8601 pvalue: as it is when it is a token, a dotted
 * domain or local-part@domain made of token characters; else a
 * quoted-string (a control character becomes '?': it cannot be quoted)
 */
static void
add_pvalue(struct strbuf *b, const char *v)
{
	bool plain = *v != '\0';

	for (const char *s = v; *s && plain; s++)
		if (!is_token_char((unsigned char)*s) && *s != '@')
			plain = false;
	if (plain) {
		strbuf_add(b, v, strlen(v));
		return;
	}
	strbuf_add(b, "\"", 1);
	for (const char *s = v; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			strbuf_add(b, "\\", 1);
		if (c < 0x20 || c == 0x7f)
			c = '?';
		strbuf_add(b, &c, 1);
	}
	strbuf_add(b, "\"", 1);
}

/* add_comment - " (why)", parentheses and backslashes quoted (RFC 5322 3.2.2) */
static void
add_comment(struct strbuf *b, const char *why)
{
	if (why == NULL || *why == '\0')
		return;
	strbuf_add(b, " (", 2);
	for (const char *s = why; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '(' || c == ')' || c == '\\')
			strbuf_add(b, "\\", 1);
		if (c < 0x20 || c == 0x7f)
			c = ' ';
		strbuf_add(b, &c, 1);
	}
	strbuf_add(b, ")", 1);
}

/*
 * struct line - one resinfo being written: its words, each appended to
 * the field with a fold before it when the line would pass AR_FOLD
 */
struct line {
	struct strbuf *out;
	size_t col;		/* the current line's length so far */
};

static void
put_word(struct line *l, const char *w, size_t n, bool first)
{
	if (first) {
		strbuf_add(l->out, "\n\t", 2);
		l->col = 8;
	} else if (l->col + 1 + n > AR_FOLD) {
		strbuf_add(l->out, "\n\t  ", 4);
		l->col = 10;
	} else {
		strbuf_add(l->out, " ", 1);
		l->col++;
	}
	strbuf_add(l->out, w, n);
	l->col += n;
}

/* resinfo - "method=result (comment) ptype.property=value ...", folded */
static void
put_resinfo(struct line *l, const char *method, enum auth_res res,
    const char *why, const char *const *props, size_t nprops)
{
	struct strbuf w = { 0 };

	strbuf_printf(&w, "%s=%s", method, auth_res_name(res));
	put_word(l, w.p, w.len, true);
	free(w.p);
	if (why != NULL && *why != '\0') {
		memset(&w, 0, sizeof(w));
		add_comment(&w, why);
		put_word(l, w.p + 1, w.len - 1, false);	/* without its blank */
		free(w.p);
	}
	for (size_t i = 0; i + 1 < nprops; i += 2) {
		if (props[i + 1] == NULL || props[i + 1][0] == '\0')
			continue;
		memset(&w, 0, sizeof(w));
		strbuf_printf(&w, "%s=", props[i]);
		add_pvalue(&w, props[i + 1]);
		put_word(l, w.p, w.len, false);
		free(w.p);
	}
}

char *
auth_results_field(const struct auth_results *r, const char *authserv_id)
{
	struct strbuf b = { 0 };
	struct line l = { &b, 0 };
	char why[64];

	strbuf_add(&b, "Authentication-Results: ", 24);
	add_pvalue(&b, authserv_id);
	strbuf_add(&b, ";", 1);

	{
		const char *props[] = { r->spf_helo ? "smtp.helo" :
		    "smtp.mailfrom", r->spf_identity };

		put_resinfo(&l, "spf", r->spf, NULL, props, nitems(props));
	}
	strbuf_add(&b, ";", 1);
	if (r->ndkim == 0) {
		put_resinfo(&l, "dkim", AUTH_NONE, NULL, NULL, 0);
		strbuf_add(&b, ";", 1);
	}
	for (size_t i = 0; i < r->ndkim && i < AUTH_DKIM_MAX; i++) {
		const struct auth_dkim_sig *s = &r->dkim[i];
		const char *props[] = { "header.d", s->d, "header.s", s->s,
		    "header.a", s->a, "header.b", s->b };

		put_resinfo(&l, "dkim", s->result, s->result == AUTH_PASS ? NULL :
		    s->why, props, nitems(props));
		strbuf_add(&b, ";", 1);
	}
	{
		const char *props[] = { "header.from", r->from_domain };
		const char *pn = policy_name(r->policy);

		why[0] = '\0';
		if (pn != NULL)
			snprintf(why, sizeof(why), "p=%s%s", pn,
			    r->testing ? " t=y" : "");
		put_resinfo(&l, "dmarc", r->dmarc, why, props, nitems(props));
	}
	strbuf_add(&b, "\n", 1);
	return b.p;
}

/* ---- does a field name us? ---------------------------------------------- */

/*
 * skip_cfws - past folding white space and (nested, quoted-pair holding)
 * comments (RFC 5322 3.2.2); NULL when a comment is not closed
 */
static const char *
skip_cfws(const char *p, const char *end)
{
	while (p < end) {
		if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') {
			p++;
			continue;
		}
		if (*p != '(')
			break;
		int depth = 0;

		do {
			if (*p == '\\') {
				if (++p == end)
					return NULL;
			} else if (*p == '(')
				depth++;
			else if (*p == ')')
				depth--;
			p++;
		} while (depth > 0 && p < end);
		if (depth > 0)
			return NULL;
	}
	return p;
}

bool
auth_results_names(const char *f, size_t n, const char *authserv_id)
{
	static const char name[] = "Authentication-Results";
	const char *p = f, *end = f + n;
	char id[DOMAIN_MAX + 1];
	size_t len = 0;

	if (n < sizeof(name) || strncasecmp(f, name, sizeof(name) - 1) != 0)
		return false;
	p += sizeof(name) - 1;
	while (p < end && (*p == ' ' || *p == '\t'))	/* RFC 5322 4.5.3 */
		p++;
	if (p == end || *p++ != ':')
		return false;
	if ((p = skip_cfws(p, end)) == NULL || p == end)
		return false;
	if (*p == '"') {		/* a quoted-string authserv-id */
		for (p++; p < end && *p != '"'; p++) {
			if (*p == '\\' && ++p == end)
				return false;
			if (*p == '\n' || *p == '\r')
				continue;	/* a fold inside the quotes */
			if (len == sizeof(id) - 1)
				return false;
			id[len++] = *p;
		}
		if (p == end)
			return false;
		p++;
	} else {
		for (; p < end && is_token_char((unsigned char)*p); p++) {
			if (len == sizeof(id) - 1)
				return false;
			id[len++] = *p;
		}
	}
	id[len] = '\0';
	if (len == 0)
		return false;
	/* [CFWS authres-version] then ";": anything else does not parse */
	if ((p = skip_cfws(p, end)) == NULL)
		return false;
	if (p < end && isdigit((unsigned char)*p)) {
		while (p < end && isdigit((unsigned char)*p))
			p++;
		if ((p = skip_cfws(p, end)) == NULL)
			return false;
	}
	if (p == end || *p != ';')
		return false;
	return strcasecmp(id, authserv_id) == 0;
}

/* ---- tag lists ---------------------------------------------------------- */

/*
 * tag_value - the value of tag name in a tag list (RFC 6376 3.2: DKIM
 * signatures and keys, RFC 9989 4.7: DMARC records; FWS anywhere), FWS
 * removed, into buf; false when absent, empty or too long
 */
bool
tag_value(const char *v, size_t n, const char *name, char *buf, size_t size)
{
	size_t nl = strlen(name), i = 0;

	while (i < n) {
		size_t start, len = 0;

		while (i < n && strchr(" \t\r\n", v[i]) != NULL)
			i++;
		start = i;
		while (i < n && v[i] != '=' && v[i] != ';')
			i++;
		len = i - start;
		while (len > 0 && strchr(" \t\r\n", v[start + len - 1]) != NULL)
			len--;
		if (i < n && v[i] == '=' && len == nl &&
		    memcmp(v + start, name, nl) == 0) {
			size_t o = 0;

			for (i++; i < n && v[i] != ';'; i++) {
				if (strchr(" \t\r\n", v[i]) != NULL)
					continue;
				if (o + 1 >= size)
					return false;
				buf[o++] = v[i];
			}
			buf[o] = '\0';
			return o > 0;
		}
		while (i < n && v[i] != ';')
			i++;
		i++;
	}
	return false;
}

/* ---- the policy --------------------------------------------------------- */

/* own_domain - the entry of domains that d is in (or under), or NULL */
static const char *
own_domain(const struct config *c, const char *d)
{
	if (d == NULL || *d == '\0')
		return NULL;
	for (size_t i = 0; i < c->ndomains; i++)
		if (domain_within(d, c->domains[i]))
			return c->domains[i];
	return NULL;
}

/* mail_domain - the lower-case domain of an address into buf, "" for none */
static const char *
mail_domain(const char *addr, char *buf, size_t size)
{
	const char *at = addr != NULL ? strrchr(addr, '@') : NULL;

	buf[0] = '\0';
	if (at == NULL || !str_copy(buf, at + 1, size))
		return buf;
	str_lower(buf);
	return buf;
}

/*
 * dkim_for - the best DKIM result of a signature with d= within dom:
 * PASS, else TEMPERROR when one could still pass, else FAIL; NULL dom:
 * any signature
 */
static enum auth_res
dkim_for(const struct auth_results *r, const char *dom)
{
	enum auth_res best = AUTH_FAIL;

	for (size_t i = 0; i < r->ndkim && i < AUTH_DKIM_MAX; i++) {
		if (dom != NULL && !domain_within(r->dkim[i].d, dom))
			continue;
		if (r->dkim[i].result == AUTH_PASS)
			return AUTH_PASS;
		if (r->dkim[i].result == AUTH_TEMPERROR)
			best = AUTH_TEMPERROR;
	}
	return best;
}

/*
 * own_rule - our own domain dom is claimed: an SPF pass for a MAIL FROM
 * in dom or a DKIM pass with d= in dom, else refused (SPEC'd in
 * doc/forwarding.md "Checks"); true and the reply when refused
 */
static bool
own_rule(const struct auth_results *r, const char *dom, const char *mf_dom,
    char *reply, size_t size)
{
	bool spf_in = !r->spf_helo && domain_within(mf_dom, dom);
	enum auth_res dk = dkim_for(r, dom);

	if ((spf_in && r->spf == AUTH_PASS) || dk == AUTH_PASS)
		return false;
	if (spf_in && r->spf == AUTH_TEMPERROR)
		snprintf(reply, size, "451 4.7.24 SPF of %s could not be checked "
		    "(DNS); try again later", dom);
	else if (dk == AUTH_TEMPERROR)
		snprintf(reply, size, "451 4.7.0 DKIM signature of %s could not "
		    "be checked (DNS); try again later", dom);
	else
		snprintf(reply, size, "550 5.7.1 Message claims to be from %s "
		    "but is not authenticated (no SPF or DKIM pass)", dom);
	return true;
}

bool
auth_policy(const struct auth_results *r, const struct config *c,
    const char *mail_from, bool forwarded, char *reply, size_t size)
{
	char mf[DOMAIN_MAX + 1];
	const char *mf_dom = mail_domain(mail_from, mf, sizeof(mf));
	const char *own;
	bool enforce = !c->dmarc_monitor;

	/*
	 * 0. one author (both modes): who the reader takes for the author
	 * is what DMARC and the rule below judge, so it must be one domain
	 */
	if (r->from_problem[0] != '\0') {
		snprintf(reply, size, "550 5.7.1 Message refused: %s (RFC 5322 "
		    "3.6: one From field, one author domain)", r->from_problem);
		return true;
	}

	/* 1. our own domains, envelope and header (both modes) */
	if ((own = own_domain(c, mf_dom)) != NULL &&
	    own_rule(r, own, mf_dom, reply, size))
		return true;
	if ((own = own_domain(c, r->from_domain)) != NULL &&
	    own_rule(r, own, mf_dom, reply, size))
		return true;

	/* 2. DMARC (enforce only); t=y lowers reject to quarantine (RFC 9989) */
	if (enforce && r->dmarc == AUTH_FAIL && (forwarded ||
	    (r->policy == DMARC_P_REJECT && !r->testing))) {
		if (forwarded)
			snprintf(reply, size, "550 5.7.1 Message not forwarded: "
			    "it fails DMARC for %s", r->from_domain);
		else
			snprintf(reply, size, "550 5.7.1 Message refused: it "
			    "fails DMARC for %s, whose policy is reject",
			    r->from_domain);
		return true;
	}
	if (enforce && r->dmarc == AUTH_TEMPERROR && (forwarded ||
	    r->policy == DMARC_P_REJECT || r->policy == DMARC_P_ABSENT)) {
		snprintf(reply, size, "451 4.7.0 DMARC of %s could not be checked "
		    "(DNS); try again later", r->from_domain);
		return true;
	}

	/* 3. before a forward: SPF fail with no DKIM pass (both modes) */
	if (forwarded && (r->spf == AUTH_FAIL || r->spf == AUTH_TEMPERROR)) {
		enum auth_res dk = dkim_for(r, NULL);

		if (dk == AUTH_PASS)
			return false;
		if (r->spf == AUTH_TEMPERROR)
			snprintf(reply, size, "451 4.7.24 SPF of %s could not be "
			    "checked (DNS); try again later", r->spf_domain);
		else if (dk == AUTH_TEMPERROR)
			snprintf(reply, size, "451 4.7.0 DKIM could not be checked "
			    "(DNS); try again later");
		else
			snprintf(reply, size, "550 5.7.1 Message not forwarded: "
			    "SPF of %s fails and no DKIM signature passes",
			    r->spf_domain);
		return true;
	}
	return false;
}
