/*
 * signer.h - DKIM signing of what the queue sends (RFC 6376, RFC 8463;
 * chamois.conf(5) "dkim_key", doc/queue.md "Signing"): the keys of one
 * config, loaded and checked, and the signature header fields of one
 * message, signed with OpenSSL (signer.c says why not libopendkim).  A
 * leaf: uses common/ only.
 */
#ifndef CHAMOIS_DKIM_SIGNER_H
#define CHAMOIS_DKIM_SIGNER_H

#include <stdbool.h>
#include <stddef.h>

#include "../common/config.h"

/* the smallest RSA key accepted (RFC 8301 3.2 says 1024, receivers want 2048) */
#define DKIM_RSA_MIN_BITS	2048

struct dkim_signer;

/*
 * dkim_signer_load - read and check the key of every dkim_key line of c
 * (readable, a PEM private key, RSA of DKIM_RSA_MIN_BITS or more or
 * Ed25519); each problem goes to fn as "FILE:LINE: dkim_key: ..." and is
 * counted in *errors.  Returns the keys that loaded (none: an empty
 * signer, which signs nothing).  Blocking (file reads): off the loop.
 */
struct dkim_signer *dkim_signer_load(const struct config *c,
    config_problem_fn fn, void *arg, int *errors);
/*
 * dkim_signer_ref, dkim_signer_free - one more holder (a submission job
 * keeps the keys it started with across a SIGHUP), and its end; the last
 * one frees.  Loop thread only, or a thread that alone holds it.
 */
struct dkim_signer *dkim_signer_ref(struct dkim_signer *);
void dkim_signer_free(struct dkim_signer *);
/* dkim_signer_keys - how many keys are loaded */
size_t dkim_signer_keys(const struct dkim_signer *);

/*
 * dkim_signer_domain - the dkim_key domain that from_domain is, or is
 * under (domain_within, common/addr.h), the longest one; or NULL
 */
const char *dkim_signer_domain(const struct dkim_signer *, const char *from_domain);

/* the header fields signed when present (doc/queue.md, "Signing") */
extern const char *const dkim_signed_headers[];

/*
 * dkim_sign_message - the DKIM-Signature fields (LF form, one per key of
 * the domain that from_domain is under, in dkim_key order) for the
 * LF-form message msg[0..len), relaxed/relaxed, malloc'd in *out
 * (*outlen), *nsigs of them; NULL when no key is for that domain.  The
 * message is parsed and its body hashed once for all the keys.  A key
 * that fails leaves its signature out and is named in err (the others
 * still sign).  Thread-safe: worker threads sign at once with one signer
 * while the loop runs (the keys are only read).
 */
char *dkim_sign_message(const struct dkim_signer *, const char *from_domain,
    const char *msg, size_t len, size_t *outlen, size_t *nsigs, char *err,
    size_t errsize);

/* keygen.c */
/*
 * dkim_keygen - a new key (Ed25519, else RSA of DKIM_RSA_MIN_BITS) in PEM
 * into the new file path (mode 0600, owned by uid:gid unless uid is -1;
 * an existing file is an error); *txt (malloc'd) is its DNS record,
 * "v=DKIM1; k=rsa|ed25519; p=...".  -1 with err set on failure, and no
 * file left.
 */
int dkim_keygen(bool ed25519, const char *path, long uid, long gid, char **txt,
    char *err, size_t errsize);
/* dkim_key_record - the DNS record of the key in path; -1 with err set */
int dkim_key_record(const char *path, char **txt, char *err, size_t errsize);

#endif
