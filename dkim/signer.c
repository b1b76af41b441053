/*
 * signer.c - DKIM signatures for what the queue sends (RFC 6376; Ed25519
 * RFC 8463).  RSA goes through libopendkim (DKIM_SIGN_RSASHA256), which
 * canonicalises 8-bit bodies and lines of any length itself and gets the
 * key's PEM text.  Ed25519 is signed here with OpenSSL 3 directly
 * (sign_ed25519): libopendkim 2.11.0~beta2 can sign it
 * (DKIM_SIGN_ED25519SHA256) but never frees the key it loads for it
 * (dkim_free leaves the EVP_PKEY and its crypto state: about 1.3 kB per
 * signature, found by ASan), which a daemon cannot afford.  Our relaxed
 * canonicalisation (canon_header, canon_body) is checked against
 * libopendkim's: both signatures of a message carry the same bh=
 * (tests/unit/test_dkim.c), and both verify with dkimpy and OpenDKIM's
 * verifier (tests/integration/test_dkim_sign.py).  OpenSSL reads each key
 * once at load, to check it (type, size) and to say what is wrong with
 * FILE:LINE; an Ed25519 key stays loaded.
 *
 * What is signed (chamois.conf(5) "dkim_key", doc/queue.md "Signing"):
 * relaxed/relaxed, the fields of dkim_signed_headers that are present,
 * From once more than present (over-signed, RFC 6376 8.15, so that no
 * second From can be added); absent fields are not listed.  One
 * signature per key of the domain, in dkim_key order.
 *
 * The library handle is made once and shared: libopendkim keeps the
 * state of a signature in its own handle, so worker threads sign at once.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <time.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>	/* SHA256_DIGEST_LENGTH */

#include <dkim.h>

#include "../common/util.h"
#include "signer.h"

#define KEY_FILE_MAX	(64 * 1024)	/* a 16384-bit RSA PEM is 13 kB */
#define FEED_CHUNK	8192

const char *const dkim_signed_headers[] = {
	"From", "To", "Cc", "Subject", "Date", "Message-ID", "Reply-To",
	"In-Reply-To", "References", "MIME-Version", "Content-Type",
	"Content-Transfer-Encoding", NULL,
};

struct dkim_skey {
	char *domain;
	char *selector;
	char *pem;		/* the file's text, NUL-terminated */
	bool ed25519;		/* else RSA */
	EVP_PKEY *pkey;		/* Ed25519: the key, signed with here */
};

struct dkim_signer {
	struct dkim_skey *keys;
	size_t nkeys;
	unsigned refs;		/* holders beyond the first */
};

static DKIM_LIB *lib;
static pthread_once_t lib_once = PTHREAD_ONCE_INIT;

static void
lib_init(void)
{
	static const char *over[] = { "From", NULL };

	if ((lib = dkim_init(NULL, NULL)) == NULL)
		return;
	/* the length is that of the pointer to the array, not the array */
	if (dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_SIGNHDRS,
	    (void *)dkim_signed_headers,
	    sizeof(char **)) != DKIM_STAT_OK ||
	    dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_OVERSIGNHDRS, over,
	    sizeof(char **)) != DKIM_STAT_OK) {
		dkim_close(lib);
		lib = NULL;
	}
}

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
 * with; NULL, or what is wrong
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
		*keep = k;
		return NULL;
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
	EVP_PKEY_free(k);
	return err;
}

struct dkim_signer *
dkim_signer_load(const struct config *c, config_problem_fn fn, void *arg,
    int *errors)
{
	struct dkim_signer *s = xcalloc(1, sizeof(*s));

	*errors = 0;
	if (c->ndkim_keys == 0)
		return s;
	pthread_once(&lib_once, lib_init);
	if (lib == NULL) {
		config_problem(fn, arg, c->path, c->dkim_keys[0].line,
		    "dkim_key: libopendkim could not be set up");
		(*errors)++;
		return s;
	}
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
		if ((bad = check_key(pem, &k->ed25519, &k->pkey, why,
		    sizeof(why))) != NULL) {
			config_problem(fn, arg, c->path, kc->line,
			    "dkim_key: %s %s", kc->file, bad);
			(*errors)++;
			free(pem);
			continue;
		}
		k->pem = pem;
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
		free(s->keys[i].pem);
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

bool
dkim_domain_matches(const char *domain, const char *from_domain)
{
	size_t d = strlen(domain), f = strlen(from_domain);

	if (d == 0 || f < d || strcmp(from_domain + f - d, domain) != 0)
		return false;
	return f == d || from_domain[f - d - 1] == '.';
}

const char *
dkim_signer_domain(const struct dkim_signer *s, const char *from_domain)
{
	const char *best = NULL;

	/* the longest match: a key for a subdomain wins over its parent's */
	for (size_t i = 0; s && i < s->nkeys; i++)
		if (dkim_domain_matches(s->keys[i].domain, from_domain) &&
		    (best == NULL || strlen(s->keys[i].domain) > strlen(best)))
			best = s->keys[i].domain;
	return best;
}

/*
 * feed - the LF-form message to a signing handle as the outbound client
 * puts it on the wire (outbound/client.c): each header field
 * (continuation lines joined with CRLF, no line end after it), the end of
 * the header section, then the body with every LF made CRLF and a CRLF
 * after a last line without one.  The queue's LF form holds no CR (both
 * ways in refuse or convert it, doc/protocol.md), so every CRLF here is
 * a line end of the wire.
 */
static DKIM_STAT
feed(DKIM *d, const char *msg, size_t len)
{
	struct strbuf f = { 0 };
	char chunk[FEED_CHUNK + 2];
	size_t i = 0, n = 0;
	DKIM_STAT st = DKIM_STAT_OK;

	while (i < len && st == DKIM_STAT_OK) {
		const char *nl = memchr(msg + i, '\n', len - i);
		size_t e = nl ? (size_t)(nl - msg) : len;

		if (e == i) {			/* the empty line */
			i = e + 1;
			break;
		}
		if (msg[i] == ' ' || msg[i] == '\t') {
			if (f.len > 0) {
				strbuf_add(&f, "\r\n", 2);
				strbuf_add(&f, msg + i, e - i);
			}
		} else if (header_field_name(msg + i, e - i) == 0) {
			break;			/* the body, no empty line */
		} else {
			if (f.len > 0)
				st = dkim_header(d, (u_char *)f.p, f.len);
			f.len = 0;
			strbuf_add(&f, msg + i, e - i);
		}
		i = e + 1;
	}
	if (st == DKIM_STAT_OK && f.len > 0)
		st = dkim_header(d, (u_char *)f.p, f.len);
	free(f.p);
	if (st != DKIM_STAT_OK || (st = dkim_eoh(d)) != DKIM_STAT_OK)
		return st;
	for (; i < len && st == DKIM_STAT_OK; i++) {
		if (msg[i] == '\n')
			chunk[n++] = '\r';
		chunk[n++] = msg[i];
		if (n >= FEED_CHUNK) {
			st = dkim_body(d, (u_char *)chunk, n);
			n = 0;
		}
	}
	if (st == DKIM_STAT_OK && i > 0 && i == len && msg[len - 1] != '\n') {
		chunk[n++] = '\r';
		chunk[n++] = '\n';
	}
	if (st == DKIM_STAT_OK && n > 0)
		st = dkim_body(d, (u_char *)chunk, n);
	return st;
}

/* sign_one - one key's DKIM-Signature field (LF form) onto out */
static int
sign_one(const struct dkim_skey *k, const char *msg, size_t len,
    struct strbuf *out, char *err, size_t errsize)
{
	DKIM_STAT st;
	DKIM *d;
	u_char *hdr;
	size_t hlen;
	int r = -1;

	d = dkim_sign(lib, (u_char *)"chamois", NULL, (u_char *)k->pem,
	    (u_char *)k->selector, (u_char *)k->domain, DKIM_CANON_RELAXED,
	    DKIM_CANON_RELAXED, k->ed25519 ? DKIM_SIGN_ED25519SHA256 :
	    DKIM_SIGN_RSASHA256, -1, &st);
	if (d == NULL) {
		snprintf(err, errsize, "s=%s: %s", k->selector,
		    dkim_getresultstr(st));
		return -1;
	}
	if ((st = feed(d, msg, len)) != DKIM_STAT_OK ||
	    (st = dkim_eom(d, NULL)) != DKIM_STAT_OK ||
	    (st = dkim_getsighdr_d(d, strlen("DKIM-Signature: "), &hdr,
	    &hlen)) != DKIM_STAT_OK) {
		const char *why = dkim_geterror(d);

		snprintf(err, errsize, "s=%s: %s", k->selector,
		    why ? why : dkim_getresultstr(st));
		goto done;
	}
	strbuf_add(out, "DKIM-Signature: ", strlen("DKIM-Signature: "));
	for (size_t i = 0; i < hlen; i++)	/* the library folds with CRLF */
		if (hdr[i] != '\r')
			strbuf_add(out, &hdr[i], 1);
	strbuf_add(out, "\n", 1);
	r = 0;
done:
	dkim_free(d);
	return r;
}

/* ---- Ed25519 (RFC 8463) with OpenSSL ---------------------------------- */

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

/* sha256 - of p[0..n) into md; -1 if OpenSSL fails */
static int
sha256(const void *p, size_t n, unsigned char md[SHA256_DIGEST_LENGTH])
{
	return EVP_Digest(p, n, md, NULL, EVP_sha256(), NULL) == 1 ? 0 : -1;
}

/* b64 - base64 of p[0..n) onto out */
static void
b64(struct strbuf *out, const unsigned char *p, size_t n)
{
	char buf[4 * ((SHA256_DIGEST_LENGTH + 64) / 3) + 8];
	int len;

	if (n > 64)
		return;
	len = EVP_EncodeBlock((unsigned char *)buf, p, (int)n);
	strbuf_add(out, buf, (size_t)len);
}

/* one header field of the message: where it is and whether h= took it */
struct hfield {
	const char *p;
	size_t n;
	bool used;
};

/*
 * sign_ed25519 - one Ed25519 DKIM-Signature field (LF form) onto out:
 * the fields of dkim_signed_headers present, in message order, then From
 * once more (over-signed); each h= name takes the last instance not yet
 * taken (RFC 6376 5.4.2); the hash is SHA-256 of the canonical fields and
 * of this signature's own field with b= empty (3.7), signed with
 * PureEdDSA (RFC 8463 3)
 */
static int
sign_ed25519(const struct dkim_skey *k, const char *msg, size_t len,
    struct strbuf *out, char *err, size_t errsize)
{
	struct hfield *f = NULL;
	size_t nf = 0, i = 0, body = len, siglen = 64;
	struct strbuf sig = { 0 }, hashed = { 0 }, h = { 0 };
	unsigned char bh[SHA256_DIGEST_LENGTH], md[SHA256_DIGEST_LENGTH];
	unsigned char b[64];
	EVP_MD_CTX *ctx = NULL;
	int r = -1;

	/* the header fields, each with its continuation lines */
	while (i < len) {
		const char *nl = memchr(msg + i, '\n', len - i);
		size_t e = nl ? (size_t)(nl - msg) : len;

		if (e == i || (e == i + 1 && msg[i] == '\r')) {
			body = e + 1 <= len ? e + 1 : len;
			break;
		}
		if (wsp(msg[i]) && nf > 0)
			f[nf - 1].n = e - (size_t)(f[nf - 1].p - msg);
		else if (header_field_name(msg + i, e - i) == 0) {
			body = i;
			break;
		} else {
			f = xreallocarray(f, nf + 1, sizeof(*f));
			f[nf++] = (struct hfield){ msg + i, e - i, false };
		}
		i = e + 1;
		body = len;
	}
	if (canon_body(msg + body, len - body, bh) == -1) {
		snprintf(err, errsize, "s=%s: SHA-256 failed", k->selector);
		goto done;
	}

	/* h=: the signed fields present, top to bottom, then From again */
	for (size_t j = 0; j < nf; j++)
		for (size_t s = 0; dkim_signed_headers[s]; s++)
			if (header_field_is(f[j].p, f[j].n, dkim_signed_headers[s])) {
				strbuf_printf(&h, "%s%s", h.len ? ":" : "",
				    dkim_signed_headers[s]);
				break;
			}
	strbuf_printf(&h, "%sFrom", h.len ? ":" : "");

	/* the fields named, each name taking its last unused instance */
	for (const char *p = h.p; *p; ) {
		const char *colon = strchr(p, ':');
		size_t nl = colon ? (size_t)(colon - p) : strlen(p);
		char name[64];

		snprintf(name, sizeof(name), "%.*s", (int)nl, p);
		for (size_t j = nf; j-- > 0; )
			if (!f[j].used && header_field_is(f[j].p, f[j].n, name)) {
				f[j].used = true;
				canon_header(&hashed, f[j].p, f[j].n, true);
				break;
			}
		p += nl + (colon != NULL);
	}

	strbuf_printf(&sig, "DKIM-Signature: v=1; a=ed25519-sha256; "
	    "c=relaxed/relaxed; d=%s;\n\ts=%s; t=%lld; bh=", k->domain,
	    k->selector, (long long)time(NULL));
	b64(&sig, bh, sizeof(bh));
	strbuf_printf(&sig, ";\n\th=%s;\n\tb=", h.p);
	canon_header(&hashed, sig.p, sig.len, false);
	if (sha256(hashed.p, hashed.len, md) == -1 ||
	    (ctx = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestSignInit(ctx, NULL, NULL, NULL, k->pkey) != 1 ||
	    EVP_DigestSign(ctx, b, &siglen, md, sizeof(md)) != 1) {
		snprintf(err, errsize, "s=%s: Ed25519 signing failed", k->selector);
		goto done;
	}
	b64(&sig, b, siglen);
	strbuf_add(out, sig.p, sig.len);
	strbuf_add(out, "\n", 1);
	r = 0;
done:
	EVP_MD_CTX_free(ctx);
	free(sig.p);
	free(hashed.p);
	free(h.p);
	free(f);
	return r;
}

char *
dkim_sign_message(const struct dkim_signer *s, const char *from_domain,
    const char *msg, size_t len, size_t *outlen, char *err, size_t errsize)
{
	const char *domain = dkim_signer_domain(s, from_domain);
	struct strbuf out = { 0 };
	size_t el = 0;

	err[0] = '\0';
	if (domain == NULL || lib == NULL)
		return NULL;
	for (size_t i = 0; i < s->nkeys; i++) {
		char one[256];

		if (strcmp(s->keys[i].domain, domain) != 0)
			continue;
		if ((s->keys[i].ed25519 ? sign_ed25519(&s->keys[i], msg, len,
		    &out, one, sizeof(one)) : sign_one(&s->keys[i], msg, len,
		    &out, one, sizeof(one))) == -1 &&
		    el < errsize) {
			snprintf(err + el, errsize - el, "%s%s", el ? "; " : "", one);
			el = strlen(err);
		}
	}
	*outlen = out.len;
	if (out.len == 0) {
		free(out.p);
		return xstrdup("");
	}
	return out.p;
}
