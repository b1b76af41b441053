/*
 * dkim_verify.c - DKIM verification (RFC 6376, RSA; RFC 8463, Ed25519)
 * with libopendkim.
 *
 * The header goes to libopendkim field by field as it arrives; as soon as
 * a DKIM-Signature field is complete, the key record it names
 * (SELECTOR._domainkey.DOMAIN TXT) is looked up through the resolver on
 * the loop.  libopendkim never does DNS: its key look-up hook
 * (dkim_set_key_lookup) answers from the records fetched before.  The
 * body is canonicalised and hashed by libopendkim as it arrives (nothing
 * of it is kept); the verification proper (dkim_eom: RSA or Ed25519) runs
 * on the CPU pool once every key is in.  The job owns the DKIM handle and
 * the keys; when the check is freed while it runs, it is detached and
 * frees itself when it comes back.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <dkim.h>

#include "../common/addr.h"
#include "../common/log.h"
#include "../common/util.h"
#include "../common/worker.h"
#include "eval.h"

#define DKIM_MIN_BITS	1024	/* RFC 8301 3.2: shorter RSA keys are refused */

struct dkim_key {
	char d[DOMAIN_MAX + 1];
	char s[64];
	bool in;			/* the answer is here */
	enum dns_status st;
	char *text;			/* the key record */
	struct lookup *lk;
	struct dkim_eval *e;
};

struct dkim_eval {
	struct resolver *r;
	eval_done_cb done;
	void *arg;
	DKIM *dkim;			/* NULL: nothing to verify */
	bool eoh;
	bool finishing;			/* finish came: verify once keys are in */
	bool running;			/* on the CPU pool */
	bool detached;			/* freed by its check while running */
	struct auth_results *out;
	struct dkim_key keys[AUTH_DKIM_MAX];
	size_t nkeys;
	unsigned nsigs;			/* DKIM-Signature fields seen */
	unsigned pending;		/* key look-ups out */
	struct auth_dkim_sig res[AUTH_DKIM_MAX];
	size_t nres;
	struct strbuf crlf;		/* scratch: a chunk in CRLF form */
};

static DKIM_LIB *lib;

/* key_lookup - libopendkim's key look-up: the record fetched before */
static DKIM_CBSTAT
key_lookup(DKIM *dkim, DKIM_SIGINFO *sig, u_char *buf, size_t buflen)
{
	struct dkim_eval *e = dkim_get_user_context(dkim);
	const char *d = (const char *)dkim_sig_getdomain(sig);
	const char *s = (const char *)dkim_sig_getselector(sig);

	if (e == NULL || d == NULL || s == NULL)
		return DKIM_CBSTAT_ERROR;
	for (size_t i = 0; i < e->nkeys; i++) {
		struct dkim_key *k = &e->keys[i];

		if (strcasecmp(k->d, d) != 0 || strcmp(k->s, s) != 0)
			continue;
		if (!k->in || k->st == DNS_TEMPFAIL)
			return DKIM_CBSTAT_TRYAGAIN;
		if (k->st != DNS_OK || k->text == NULL)
			return DKIM_CBSTAT_NOTFOUND;
		if (strlen(k->text) >= buflen)
			return DKIM_CBSTAT_ERROR;
		memcpy(buf, k->text, strlen(k->text) + 1);
		return DKIM_CBSTAT_CONTINUE;
	}
	return DKIM_CBSTAT_NOTFOUND;	/* not fetched: d= or s= unusable */
}

/* prescreen - only the first AUTH_DKIM_MAX signatures are verified */
static DKIM_CBSTAT
prescreen(DKIM *dkim, DKIM_SIGINFO **sigs, int nsigs)
{
	for (int i = AUTH_DKIM_MAX; i < nsigs; i++)
		dkim_sig_ignore(sigs[i]);
	return DKIM_CBSTAT_CONTINUE;
}

static DKIM_LIB *
dkim_lib(void)
{
	if (lib == NULL) {
		unsigned bits = DKIM_MIN_BITS;
		/* the keys are looked up at dkim_eom, not at dkim_eoh */
		unsigned flags = DKIM_LIBFLAGS_DELAYSIGPROC;

		if ((lib = dkim_init(NULL, NULL)) == NULL)
			fatalx("dkim_init failed");
		dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_MINKEYBITS, &bits,
		    sizeof(bits));
		dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_FLAGS, &flags,
		    sizeof(flags));
		dkim_set_key_lookup(lib, key_lookup);
		dkim_set_prescreen(lib, prescreen);
	}
	return lib;
}

/* to_crlf - text with LF line ends as CRLF, into e->crlf */
static void
to_crlf(struct dkim_eval *e, const char *t, size_t n)
{
	e->crlf.len = 0;
	for (size_t i = 0; i < n; i++) {
		const char *nl = memchr(t + i, '\n', n - i);
		size_t run = nl != NULL ? (size_t)(nl - (t + i)) : n - i;

		strbuf_add(&e->crlf, t + i, run);
		i += run;
		if (nl != NULL)
			strbuf_add(&e->crlf, "\r\n", 2);
	}
}

static void verify_start(struct dkim_eval *);

static void
key_answer(void *arg, enum dns_status st, char **texts, size_t n)
{
	struct dkim_key *k = arg;
	struct dkim_eval *e = k->e;

	k->lk = NULL;
	k->in = true;
	k->st = st;
	/* RFC 6376 3.6.2.2: one record; of several, the first DKIM key */
	for (size_t i = 0; st == DNS_OK && i < n && k->text == NULL; i++)
		if (strstr(texts[i], "p=") != NULL)
			k->text = xstrdup(texts[i]);
	if (st == DNS_OK && k->text == NULL)
		k->st = DNS_NOHOST;
	e->pending--;
	if (e->pending == 0 && e->finishing && !e->running)
		verify_start(e);
}

/* signature_seen - a complete DKIM-Signature field: fetch its key */
static void
signature_seen(struct dkim_eval *e, const char *v, size_t n)
{
	char d[DOMAIN_MAX + 1], s[64], name[DOMAIN_MAX + 80];
	struct dkim_key *k;

	if (e->nkeys == nitems(e->keys) || !tag_value(v, n, "d", d, sizeof(d)) ||
	    !tag_value(v, n, "s", s, sizeof(s)))
		return;
	str_lower(d);
	for (size_t i = 0; i < e->nkeys; i++)
		if (strcmp(e->keys[i].d, d) == 0 && strcmp(e->keys[i].s, s) == 0)
			return;
	k = &e->keys[e->nkeys++];
	str_copy(k->d, d, sizeof(k->d));
	str_copy(k->s, s, sizeof(k->s));
	k->e = e;
	if (!bsnprintf(name, sizeof(name), "%s._domainkey.%s", s, d) ||
	    !dns_name_ok(name)) {
		k->in = true;		/* no such key can exist: permerror */
		k->st = DNS_NXDOMAIN;
		return;
	}
	e->pending++;
	k->lk = lookup_start(e->r, name, DNS_RR_TXT, key_answer, k);
}

struct dkim_eval *
dkim_eval_new(struct resolver *r, eval_done_cb done, void *arg)
{
	struct dkim_eval *e = xcalloc(1, sizeof(*e));
	DKIM_STAT st;

	e->r = r;
	e->done = done;
	e->arg = arg;
	e->dkim = dkim_verify(dkim_lib(), (const u_char *)"chamois", NULL, &st);
	if (e->dkim != NULL)
		dkim_set_user_context(e->dkim, e);
	return e;
}

void
dkim_eval_header(struct dkim_eval *e, const char *f, size_t n)
{
	size_t nl = header_field_name(f, n);

	if (e->dkim == NULL || e->eoh)
		return;
	to_crlf(e, f, n);
	dkim_header(e->dkim, (u_char *)e->crlf.p, e->crlf.len);
	if (nl > 0 && header_field_is(f, n, "DKIM-Signature")) {
		const char *colon = memchr(f, ':', n);

		e->nsigs++;
		if (colon != NULL)
			signature_seen(e, colon + 1, n - (size_t)(colon + 1 - f));
	}
}

void
dkim_eval_eoh(struct dkim_eval *e)
{
	if (e->dkim == NULL || e->eoh)
		return;
	e->eoh = true;
	/* no signature, or none that parses (then permerror: verify_start) */
	if (dkim_eoh(e->dkim) != DKIM_STAT_OK) {
		dkim_free(e->dkim);
		e->dkim = NULL;
	}
}

void
dkim_eval_body(struct dkim_eval *e, const char *t, size_t n)
{
	if (e->dkim == NULL || !e->eoh || n == 0)
		return;
	to_crlf(e, t, n);
	dkim_body(e->dkim, (u_char *)e->crlf.p, e->crlf.len);
}

/* sig_result - one signature after dkim_eom (on the CPU pool) */
static void
sig_result(const struct dkim_eval *e, DKIM_SIGINFO *sig,
    struct auth_dkim_sig *out)
{
	const char *d = (const char *)dkim_sig_getdomain(sig);
	const char *s = (const char *)dkim_sig_getselector(sig);
	const char *b = (const char *)dkim_sig_gettagvalue(sig, false,
	    (u_char *)"b");
	dkim_alg_t alg = DKIM_SIGN_UNKNOWN;
	unsigned bits = 0;
	int err = dkim_sig_geterror(sig);

	memset(out, 0, sizeof(*out));
	str_copy(out->d, d != NULL ? d : "", sizeof(out->d));
	str_lower(out->d);
	str_copy(out->s, s != NULL ? s : "", sizeof(out->s));
	if (dkim_sig_getsignalg(sig, &alg) == DKIM_STAT_OK)
		str_copy(out->a, alg == DKIM_SIGN_ED25519SHA256 ? "ed25519-sha256" :
		    alg == DKIM_SIGN_RSASHA256 ? "rsa-sha256" : alg ==
		    DKIM_SIGN_RSASHA1 ? "rsa-sha1" : "", sizeof(out->a));
	for (size_t i = 0, o = 0; b != NULL && b[i] && o < 8; i++)
		if (strchr(" \t\r\n", b[i]) == NULL) {
			out->b[o++] = b[i];
			out->b[o] = '\0';
		}

	if ((dkim_sig_getflags(sig) & DKIM_SIGFLAG_IGNORE) != 0) {
		out->result = AUTH_NEUTRAL;
		snprintf(out->why, sizeof(out->why), "not checked: more than %d "
		    "signatures", AUTH_DKIM_MAX);
		return;
	}
	/*
	 * a key that could not be fetched: libopendkim stops at the first
	 * (DKIM_STAT_CBTRYAGAIN) and leaves the signature unprocessed
	 */
	for (size_t i = 0; i < e->nkeys; i++) {
		const struct dkim_key *k = &e->keys[i];

		if (strcmp(k->d, out->d) != 0 || strcmp(k->s, out->s) != 0)
			continue;
		if (!k->in || k->st == DNS_TEMPFAIL) {
			out->result = AUTH_TEMPERROR;
			str_copy(out->why, "key look-up failed", sizeof(out->why));
			return;
		}
		if (k->st != DNS_OK) {
			out->result = AUTH_PERMERROR;
			str_copy(out->why, "no key", sizeof(out->why));
			return;
		}
	}
	if (DKIM_SIG_CHECK(sig)) {
		if (strcmp(out->a, "rsa-sha1") == 0) {	/* RFC 8301 3.1 */
			out->result = AUTH_POLICY;
			str_copy(out->why, "rsa-sha1", sizeof(out->why));
		} else if (dkim_sig_getkeysize(sig, &bits) == DKIM_STAT_OK &&
		    alg != DKIM_SIGN_ED25519SHA256 && bits < DKIM_MIN_BITS) {
			out->result = AUTH_POLICY;
			snprintf(out->why, sizeof(out->why), "key of %u bits",
			    bits);
		} else
			out->result = AUTH_PASS;
		return;
	}
	switch (err) {
	case DKIM_SIGERROR_KEYFAIL:
		out->result = AUTH_TEMPERROR;
		str_copy(out->why, "key look-up failed", sizeof(out->why));
		return;
	case DKIM_SIGERROR_KEYTOOSMALL:
		out->result = AUTH_POLICY;
		str_copy(out->why, "key too short", sizeof(out->why));
		return;
	case DKIM_SIGERROR_BADSIG:
	case DKIM_SIGERROR_OK:
	case DKIM_SIGERROR_EXPIRED:
	case DKIM_SIGERROR_FUTURE:
		out->result = AUTH_FAIL;
		break;
	default:
		out->result = AUTH_PERMERROR;
		break;
	}
	if (dkim_sig_getbh(sig) == DKIM_SIGBH_MISMATCH) {
		out->result = AUTH_FAIL;
		str_copy(out->why, "body hash mismatch", sizeof(out->why));
	} else if (err != DKIM_SIGERROR_OK)
		str_copy(out->why, dkim_sig_geterrorstr(err) != NULL ?
		    dkim_sig_geterrorstr(err) : "error", sizeof(out->why));
	else
		str_copy(out->why, "signature does not verify", sizeof(out->why));
}

/* verify_work - on the CPU pool: touches only e's DKIM handle and results */
static void
verify_work(void *arg)
{
	struct dkim_eval *e = arg;
	DKIM_SIGINFO **sigs = NULL;
	int nsigs = 0;

	dkim_eom(e->dkim, NULL);
	if (dkim_getsiglist(e->dkim, &sigs, &nsigs) != DKIM_STAT_OK)
		nsigs = 0;
	for (int i = 0; i < nsigs && e->nres < nitems(e->res); i++)
		sig_result(e, sigs[i], &e->res[e->nres++]);
}

static void eval_destroy(struct dkim_eval *);

static void
verify_done(void *arg)
{
	struct dkim_eval *e = arg;

	e->running = false;
	if (e->detached) {
		eval_destroy(e);
		return;
	}
	memcpy(e->out->dkim, e->res, e->nres * sizeof(e->res[0]));
	e->out->ndkim = e->nres;
	e->done(e->arg);
}

static void
verify_start(struct dkim_eval *e)
{
	if (e->dkim == NULL || !e->eoh) {
		e->out->ndkim = 0;
		if (e->nsigs > 0) {	/* signatures, but libopendkim took none */
			struct auth_dkim_sig *s = &e->out->dkim[0];

			memset(s, 0, sizeof(*s));
			s->result = AUTH_PERMERROR;
			str_copy(s->why, "signature does not parse", sizeof(s->why));
			if (e->nkeys > 0) {
				str_copy(s->d, e->keys[0].d, sizeof(s->d));
				str_copy(s->s, e->keys[0].s, sizeof(s->s));
			}
			e->out->ndkim = 1;
		}
		e->done(e->arg);
		return;
	}
	e->running = true;
	worker_submit_cpu(verify_work, verify_done, e);
}

void
dkim_eval_finish(struct dkim_eval *e, struct auth_results *out)
{
	e->out = out;
	e->finishing = true;
	if (e->pending == 0)
		verify_start(e);
}

static void
eval_destroy(struct dkim_eval *e)
{
	for (size_t i = 0; i < e->nkeys; i++) {
		lookup_cancel(e->keys[i].lk);
		free(e->keys[i].text);
	}
	if (e->dkim != NULL)
		dkim_free(e->dkim);
	free(e->crlf.p);
	free(e);
}

void
dkim_eval_free(struct dkim_eval *e)
{
	if (e == NULL)
		return;
	if (e->running) {
		/* the key look-ups are all in: only the job holds it now */
		e->detached = true;
		return;
	}
	eval_destroy(e);
}
