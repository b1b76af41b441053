/*
 * signer.c - DKIM signatures for what the queue sends (RFC 6376; Ed25519
 * RFC 8463), through libopendkim: it signs both key types with OpenSSL 3
 * (DKIM_SIGN_RSASHA256, DKIM_SIGN_ED25519SHA256) and does the relaxed
 * canonicalisation of 8-bit bodies and lines of any length itself.
 * OpenSSL reads each key once at load, to check it (type, size) and to
 * say what is wrong with FILE:LINE; libopendkim gets the PEM text.
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

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

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
check_key(const char *pem, bool *ed25519, char *why, size_t size)
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
		if ((bad = check_key(pem, &k->ed25519, why, sizeof(why))) != NULL) {
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
 * feed - the LF-form message to a signing handle: each header field
 * (continuation lines joined with CRLF, no line end after it), the end of
 * the header section, then the body with every LF made CRLF
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
		if (sign_one(&s->keys[i], msg, len, &out, one, sizeof(one)) == -1 &&
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
