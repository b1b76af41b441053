/*
 * signer.c - DKIM signatures for what the queue sends (RFC 6376; Ed25519
 * RFC 8463), made with OpenSSL 3 alone (doc/queue.md "Signing").
 *
 * Why not libopendkim, which the verifier of inbound mail uses: it reads
 * the key's PEM text again for every signature (about 0.7 ms of the 1 ms
 * an RSA signature cost through it, bench/dkim_sign.c), and its Ed25519
 * signer never frees the key it loads (about 1.3 kB lost per signature,
 * found by ASan).  Here each key is parsed once, at load, into an
 * EVP_PKEY that every worker thread signs with; a message is parsed once
 * and its relaxed body hash made once, however many keys sign it.  Our
 * canonicalisation is checked by libopendkim's verifier in
 * tests/unit/test_dkim.c and by dkimpy and OpenDKIM's verifier in
 * tests/integration/test_dkim_sign.py.
 *
 * What is signed (chamois.conf(5) "dkim_key"): relaxed/relaxed, the
 * fields of dkim_signed_headers that are present, From once more than
 * present (over-signed, RFC 6376 8.15, so that no second From can be
 * added); absent fields are not listed.  One signature per key of the
 * domain, in dkim_key order.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>	/* SHA256_DIGEST_LENGTH */

#include "../common/addr.h"
#include "../common/clock.h"
#include "../common/util.h"
#include "signer.h"

#define KEY_FILE_MAX	(64 * 1024)	/* a 16384-bit RSA PEM is 13 kB */
#define FOLD_AT		72		/* columns of b= and h= before a fold */

const char *const dkim_signed_headers[] = {
	"From", "To", "Cc", "Subject", "Date", "Message-ID", "Reply-To",
	"In-Reply-To", "References", "MIME-Version", "Content-Type",
	"Content-Transfer-Encoding", NULL,
};

struct dkim_skey {
	char *domain;
	char *selector;
	bool ed25519;		/* else RSA */
	EVP_PKEY *pkey;		/* parsed once; signing only reads it */
};

struct dkim_signer {
	struct dkim_skey *keys;
	size_t nkeys;
	unsigned refs;		/* holders beyond the first */
};

/* read_key - the file's text (bounded), NULL with errno set */
static char *
read_key(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf;
	size_t n;

	if (f == NULL)
		return NULL;
	buf = xmalloc(KEY_FILE_MAX + 1);
	n = fread(buf, 1, KEY_FILE_MAX + 1, f);
	if (ferror(f) || n > KEY_FILE_MAX) {
		int e = ferror(f) ? errno : EFBIG;

		fclose(f);
		free(buf);
		errno = e;
		return NULL;
	}
	fclose(f);
	buf[n] = '\0';
	return buf;
}

/*
 * check_key - the PEM text is a private key of a type and size we sign
 * with: NULL and the key in *keep, or what is wrong
 */
static const char *
check_key(const char *pem, bool *ed25519, EVP_PKEY **keep, char *why,
    size_t size)
{
	BIO *bio = BIO_new_mem_buf(pem, -1);
	EVP_PKEY *k = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
	const char *err = NULL;

	BIO_free(bio);
	if (k == NULL) {
		if (strstr(pem, "-----BEGIN PUBLIC KEY-----") ||
		    strstr(pem, "-----BEGIN RSA PUBLIC KEY-----"))
			return "is a public key; dkim_key needs the private key";
		return "is not a PEM private key (openssl genpkey makes one)";
	}
	switch (EVP_PKEY_get_base_id(k)) {
	case EVP_PKEY_ED25519:
		*ed25519 = true;
		break;
	case EVP_PKEY_RSA:
		*ed25519 = false;
		if (EVP_PKEY_get_bits(k) < DKIM_RSA_MIN_BITS) {
			snprintf(why, size, "is an RSA key of %d bits; at least "
			    "%d are needed", EVP_PKEY_get_bits(k),
			    DKIM_RSA_MIN_BITS);
			err = why;
		}
		break;
	default:
		err = "is neither an RSA nor an Ed25519 key";
	}
	if (err != NULL) {
		EVP_PKEY_free(k);
		return err;
	}
	*keep = k;
	return NULL;
}

struct dkim_signer *
dkim_signer_load(const struct config *c, config_problem_fn fn, void *arg,
    int *errors)
{
	struct dkim_signer *s = xcalloc(1, sizeof(*s));

	*errors = 0;
	if (c->ndkim_keys == 0)
		return s;
	s->keys = xreallocarray(NULL, c->ndkim_keys, sizeof(*s->keys));
	for (size_t i = 0; i < c->ndkim_keys; i++) {
		const struct dkim_key_conf *kc = &c->dkim_keys[i];
		struct dkim_skey *k = &s->keys[s->nkeys];
		const char *bad;
		char why[128];
		char *pem;

		if ((pem = read_key(kc->file)) == NULL) {
			config_problem(fn, arg, c->path, kc->line,
			    "dkim_key: cannot read %s: %s", kc->file,
			    strerror(errno));
			(*errors)++;
			continue;
		}
		k->pkey = NULL;
		bad = check_key(pem, &k->ed25519, &k->pkey, why, sizeof(why));
		OPENSSL_cleanse(pem, strlen(pem));
		free(pem);
		if (bad != NULL) {
			config_problem(fn, arg, c->path, kc->line,
			    "dkim_key: %s %s", kc->file, bad);
			(*errors)++;
			continue;
		}
		k->domain = xstrdup(kc->domain);
		k->selector = xstrdup(kc->selector);
		s->nkeys++;
	}
	return s;
}

struct dkim_signer *
dkim_signer_ref(struct dkim_signer *s)
{
	s->refs++;
	return s;
}

void
dkim_signer_free(struct dkim_signer *s)
{
	if (s == NULL)
		return;
	if (s->refs > 0) {
		s->refs--;
		return;
	}
	for (size_t i = 0; i < s->nkeys; i++) {
		free(s->keys[i].domain);
		free(s->keys[i].selector);
		EVP_PKEY_free(s->keys[i].pkey);
	}
	free(s->keys);
	free(s);
}

size_t
dkim_signer_keys(const struct dkim_signer *s)
{
	return s ? s->nkeys : 0;
}

const char *
dkim_signer_domain(const struct dkim_signer *s, const char *from_domain)
{
	const char *best = NULL;

	/* the longest match: a key for a subdomain wins over its parent's */
	for (size_t i = 0; s && i < s->nkeys; i++)
		if (domain_within(from_domain, s->keys[i].domain) &&
		    (best == NULL || strlen(s->keys[i].domain) > strlen(best)))
			best = s->keys[i].domain;
	return best;
}

/* ---- canonicalisation (RFC 6376 3.4) ----------------------------------- */

static bool
wsp(char c)
{
	return c == ' ' || c == '\t';
}

/*
 * canon_header - the relaxed form of one header field f[0..n) (LF form,
 * continuation lines included) onto out, RFC 6376 3.4.2: the name in
 * lower case, no blanks around the colon, line ends of folding removed,
 * each run of blanks one space, none at the end; crlf adds the CRLF
 */
static void
canon_header(struct strbuf *out, const char *f, size_t n, bool crlf)
{
	size_t i = 0, name = header_field_name(f, n);
	bool blank = false, any = false;

	for (; i < name; i++) {
		char c = f[i] >= 'A' && f[i] <= 'Z' ? (char)(f[i] - 'A' + 'a') : f[i];

		strbuf_add(out, &c, 1);
	}
	while (i < n && wsp(f[i]))	/* the obsolete "name :" */
		i++;
	strbuf_add(out, ":", 1);
	for (i++; i < n; i++) {
		if (f[i] == '\n')	/* unfolding: the CRLF before a blank */
			continue;
		if (wsp(f[i])) {
			blank = true;
			continue;
		}
		if (blank && any)
			strbuf_add(out, " ", 1);
		blank = false;
		any = true;
		strbuf_add(out, &f[i], 1);
	}
	if (crlf)
		strbuf_add(out, "\r\n", 2);
}

/*
 * canon_body - SHA-256 of the relaxed form of the LF-form body b[0..n),
 * RFC 6376 3.4.4: blanks at line ends removed, runs of blanks one space,
 * empty lines at the end removed, lines ended with CRLF (an empty body
 * stays empty); -1 if OpenSSL fails
 */
static int
canon_body(const char *b, size_t n, unsigned char md[SHA256_DIGEST_LENGTH])
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	size_t empty = 0;	/* empty lines held back: they may end the body */
	char line[1024];
	int ok;

	ok = c != NULL && EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1;
	for (size_t i = 0; ok && i < n; ) {
		const char *nl = memchr(b + i, '\n', n - i);
		size_t e = nl ? (size_t)(nl - b) : n, next = nl ? e + 1 : n, o = 0;
		bool blank = false;

		while (e > i && wsp(b[e - 1]))
			e--;
		if (e == i) {
			empty++;
			i = next;
			continue;
		}
		for (; ok && empty; empty--)
			ok = EVP_DigestUpdate(c, "\r\n", 2);
		for (size_t k = i; ok && k < e; k++) {
			if (wsp(b[k])) {
				blank = true;
				continue;
			}
			if (o + 2 > sizeof(line)) {
				ok = EVP_DigestUpdate(c, line, o);
				o = 0;
			}
			if (blank)
				line[o++] = ' ';
			blank = false;
			line[o++] = b[k];
		}
		ok = ok && EVP_DigestUpdate(c, line, o) && EVP_DigestUpdate(c,
		    "\r\n", 2);
		i = next;
	}
	ok = ok && EVP_DigestFinal_ex(c, md, NULL);
	EVP_MD_CTX_free(c);
	return ok ? 0 : -1;
}

/* b64 - base64 of p[0..n) onto out, a fold (LF, tab) every FOLD_AT columns */
static void
b64(struct strbuf *out, const unsigned char *p, size_t n, bool fold)
{
	unsigned char buf[4 * 48 / 3 + 1];	/* 48 octets: 64 characters */
	size_t col = 0;

	for (size_t i = 0; i < n; i += 48) {
		size_t k = n - i < 48 ? n - i : 48;
		int len = EVP_EncodeBlock(buf, p + i, (int)k);

		for (int j = 0; j < len; j++) {
			if (fold && col == FOLD_AT) {
				strbuf_add(out, "\n\t", 2);
				col = 0;
			}
			strbuf_add(out, (char *)&buf[j], 1);
			col++;
		}
	}
}

/*
 * struct parsed - what every signature of one message shares: h= (the
 * signed fields present, in message order, then From again), the
 * canonical form of the fields h= names (each name taking the last
 * instance not yet taken, RFC 6376 5.4.2), and bh=
 */
struct parsed {
	struct strbuf h;
	struct strbuf fields;
	unsigned char bh[SHA256_DIGEST_LENGTH];
};

/* one header field of the message: where it is and whether h= took it */
struct hfield {
	const char *p;
	size_t n;
	bool used;
};

/* parse - msg[0..len) (LF form) into p; -1 if OpenSSL fails */
static int
parse(const char *msg, size_t len, struct parsed *p)
{
	struct hfield *f = NULL;
	size_t nf = 0, i = 0, body = len, col;
	int r;

	/* the header fields, each with its continuation lines */
	while (i < len) {
		const char *nl = memchr(msg + i, '\n', len - i);
		size_t e = nl ? (size_t)(nl - msg) : len;

		if (e == i) {			/* the empty line */
			body = e + 1;
			break;
		}
		if (wsp(msg[i]) && nf > 0)
			f[nf - 1].n = e - (size_t)(f[nf - 1].p - msg);
		else if (header_field_name(msg + i, e - i) == 0) {
			body = i;		/* the body, no empty line */
			break;
		} else {
			f = xreallocarray(f, nf + 1, sizeof(*f));
			f[nf++] = (struct hfield){ msg + i, e - i, false };
		}
		i = e + 1;
	}
	if (body > len)
		body = len;

	/* h=, folded at a colon past FOLD_AT columns */
	col = strlen("\th=");
	for (size_t j = 0; j <= nf; j++) {
		const char *name = NULL;

		if (j == nf)
			name = "From";
		else
			for (size_t s = 0; dkim_signed_headers[s] && !name; s++)
				if (header_field_is(f[j].p, f[j].n,
				    dkim_signed_headers[s]))
					name = dkim_signed_headers[s];
		if (name == NULL)
			continue;
		if (p->h.len > 0) {
			strbuf_add(&p->h, ":", 1);
			col++;
		}
		if (col + strlen(name) > FOLD_AT) {
			strbuf_add(&p->h, "\n\t", 2);
			col = 1;
		}
		strbuf_add(&p->h, name, strlen(name));
		col += strlen(name);
	}

	/* the fields h= names, bottom-up per name */
	for (const char *s = p->h.p; *s; ) {
		size_t nl;
		char name[64];

		while (*s == ':' || *s == '\n' || *s == '\t')
			s++;
		nl = strcspn(s, ":\n");
		snprintf(name, sizeof(name), "%.*s", (int)nl, s);
		for (size_t j = nf; j-- > 0; )
			if (!f[j].used && header_field_is(f[j].p, f[j].n, name)) {
				f[j].used = true;
				canon_header(&p->fields, f[j].p, f[j].n, true);
				break;
			}
		s += nl;
	}
	free(f);
	r = canon_body(msg + body, len - body, p->bh);
	return r;
}

/*
 * sign_key - one key's DKIM-Signature field (LF form) onto out: the
 * data signed is the canonical fields, then this field with b= empty
 * (RFC 6376 3.7); RSA signs it as RSASSA-PKCS1-v1_5 with SHA-256 (3.3.1),
 * Ed25519 signs its SHA-256 hash with PureEdDSA (RFC 8463 3)
 */
static int
sign_key(const struct dkim_skey *k, const struct parsed *p,
    struct strbuf *out, char *err, size_t errsize)
{
	struct strbuf sig = { 0 }, data = { 0 };
	unsigned char md[SHA256_DIGEST_LENGTH], *b = NULL;
	const unsigned char *tbs;
	size_t tbslen, blen = 0;
	EVP_MD_CTX *ctx = NULL;
	int r = -1;

	strbuf_printf(&sig, "DKIM-Signature: v=1; a=%s; c=relaxed/relaxed; "
	    "d=%s;\n\ts=%s; t=%lld; bh=", k->ed25519 ? "ed25519-sha256" :
	    "rsa-sha256", k->domain, k->selector, (long long)clock_now());
	b64(&sig, p->bh, sizeof(p->bh), false);
	strbuf_printf(&sig, ";\n\th=%s;\n\tb=", p->h.p);
	strbuf_add(&data, p->fields.p, p->fields.len);
	canon_header(&data, sig.p, sig.len, false);
	tbs = (const unsigned char *)data.p;
	tbslen = data.len;
	if (k->ed25519) {
		if (EVP_Digest(data.p, data.len, md, NULL, EVP_sha256(),
		    NULL) != 1)
			goto fail;
		tbs = md;
		tbslen = sizeof(md);
	}
	if ((ctx = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestSignInit(ctx, NULL, k->ed25519 ? NULL : EVP_sha256(),
	    NULL, k->pkey) != 1 ||
	    EVP_DigestSign(ctx, NULL, &blen, tbs, tbslen) != 1)
		goto fail;
	b = xmalloc(blen);
	if (EVP_DigestSign(ctx, b, &blen, tbs, tbslen) != 1)
		goto fail;
	b64(&sig, b, blen, true);
	strbuf_add(out, sig.p, sig.len);
	strbuf_add(out, "\n", 1);
	r = 0;
	goto done;
fail:
	snprintf(err, errsize, "s=%s: %s signing failed", k->selector,
	    k->ed25519 ? "Ed25519" : "RSA");
done:
	EVP_MD_CTX_free(ctx);
	free(b);
	free(sig.p);
	free(data.p);
	return r;
}

char *
dkim_sign_message(const struct dkim_signer *s, const char *from_domain,
    const char *msg, size_t len, size_t *outlen, size_t *nsigs, char *err,
    size_t errsize)
{
	const char *domain = dkim_signer_domain(s, from_domain);
	struct parsed p = { 0 };
	struct strbuf out = { 0 };
	size_t el = 0;

	err[0] = '\0';
	*nsigs = 0;
	*outlen = 0;
	if (domain == NULL)
		return NULL;
	if (parse(msg, len, &p) == -1) {
		snprintf(err, errsize, "SHA-256 of the message failed");
		goto done;
	}
	for (size_t i = 0; i < s->nkeys; i++) {
		char one[256];

		if (strcmp(s->keys[i].domain, domain) != 0)
			continue;
		if (sign_key(&s->keys[i], &p, &out, one, sizeof(one)) == 0)
			(*nsigs)++;
		else if (el < errsize) {
			snprintf(err + el, errsize - el, "%s%s", el ? "; " : "", one);
			el = strlen(err);
		}
	}
done:
	free(p.h.p);
	free(p.fields.p);
	*outlen = out.len;
	if (out.len == 0) {
		free(out.p);
		return xstrdup("");
	}
	return out.p;
}
