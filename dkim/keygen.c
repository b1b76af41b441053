/*
 * keygen.c - a new DKIM key and the DNS record of its public half
 * (chamoisctl dkim-keygen and dns, chamoisctl(8)): RSA of DKIM_RSA_MIN_BITS bits
 * or Ed25519 (RFC 8463), written in PEM to a new file of mode 0600; the
 * record's p= is the base64 of the SubjectPublicKeyInfo for RSA (RFC 6376
 * 3.6.1) and of the raw 32-octet key for Ed25519 (RFC 8463 4.2).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "../common/util.h"
#include "signer.h"

/* record - "v=DKIM1; k=...; p=..." of k's public half, malloc'd; NULL on failure */
static char *
record(EVP_PKEY *k, bool ed25519)
{
	unsigned char raw[32], *der = NULL;
	size_t rawlen = sizeof(raw);
	int len;
	char *b64, *out;

	if (ed25519) {
		if (EVP_PKEY_get_raw_public_key(k, raw, &rawlen) != 1)
			return NULL;
		der = raw;
		len = (int)rawlen;
	} else if ((len = i2d_PUBKEY(k, &der)) <= 0)
		return NULL;
	b64 = xmalloc(4 * ((size_t)len / 3 + 1) + 1);
	EVP_EncodeBlock((unsigned char *)b64, der, len);
	if (!ed25519)
		OPENSSL_free(der);
	out = xasprintf("v=DKIM1; k=%s; p=%s", ed25519 ? "ed25519" : "rsa", b64);
	free(b64);
	return out;
}

int
dkim_key_record(const char *path, char **txt, char *err, size_t errsize)
{
	FILE *f = fopen(path, "r");
	EVP_PKEY *k = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
	int type = k ? EVP_PKEY_get_base_id(k) : 0;

	*txt = NULL;
	if (f == NULL)
		snprintf(err, errsize, "%s: %s", path, strerror(errno));
	else if (k == NULL || (type != EVP_PKEY_RSA && type != EVP_PKEY_ED25519))
		snprintf(err, errsize, "%s: not an RSA or Ed25519 private key",
		    path);
	else if ((*txt = record(k, type == EVP_PKEY_ED25519)) == NULL)
		snprintf(err, errsize, "%s: cannot encode the public key", path);
	if (f)
		fclose(f);
	EVP_PKEY_free(k);
	return *txt ? 0 : -1;
}

int
dkim_keygen(bool ed25519, const char *path, long uid, long gid, char **txt,
    char *err, size_t errsize)
{
	EVP_PKEY *k = ed25519 ? EVP_PKEY_Q_keygen(NULL, NULL, "ED25519") :
	    EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)DKIM_RSA_MIN_BITS);
	FILE *f = NULL;
	int fd = -1, ok = 0;
	bool created = false;

	*txt = NULL;
	if (k == NULL) {
		snprintf(err, errsize, "cannot make the key");
		return -1;
	}
	/* a new file only: an old key is never overwritten */
	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    0600)) == -1) {
		snprintf(err, errsize, "%s: %s", path, strerror(errno));
		goto done;
	}
	created = true;
	if (uid >= 0 && fchown(fd, (uid_t)uid, (gid_t)gid) == -1) {
		snprintf(err, errsize, "%s: chown: %s", path, strerror(errno));
		goto done;
	}
	if ((f = fdopen(fd, "w")) == NULL) {
		snprintf(err, errsize, "%s: %s", path, strerror(errno));
		goto done;
	}
	fd = -1;
	if (PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) != 1 ||
	    fflush(f) != 0 || fsync(fileno(f)) == -1) {
		snprintf(err, errsize, "%s: cannot write the key", path);
		goto done;
	}
	if ((*txt = record(k, ed25519)) == NULL) {
		snprintf(err, errsize, "cannot encode the public key");
		goto done;
	}
	ok = 1;
done:
	if (f != NULL && fclose(f) != 0 && ok) {
		snprintf(err, errsize, "%s: %s", path, strerror(errno));
		ok = 0;
	}
	if (fd != -1)
		close(fd);
	if (!ok && created)
		unlink(path);	/* no half-written key left behind */
	if (!ok) {
		free(*txt);
		*txt = NULL;
	}
	EVP_PKEY_free(k);
	return ok ? 0 : -1;
}
