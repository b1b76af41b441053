/*
 * dkim_sign.c - CPU per DKIM signature of a 4 KiB message, one thread
 * (issue 15; doc/performance.md "DKIM signing").
 *
 * Build (after `make` at the top, which makes build/libchamois.a):
 *	make -C bench dkim_sign
 * Run:
 *	bench/dkim_sign [-n signatures] [-l body-octets]
 * Defaults: 2000 signatures per case, a 4096-octet body.
 *
 * Each case signs the same message -n times and prints the thread's CPU
 * time (CLOCK_THREAD_CPUTIME_ID) per message, in µs (cpu_us_per_msg):
 *   ed25519      dkim_sign_message with one Ed25519 key
 *   rsa          dkim_sign_message with one RSA 2048 key
 *   rsa+ed25519  dkim_sign_message with both (two signatures)
 *   openssl-rsa  the floor of an RSA signature: SHA-256 of the message and
 *                an RSA 2048 PKCS#1 v1.5 signature with OpenSSL, the key
 *                loaded once
 *   openssl-rsa-pem  the same with the PEM key parsed for each signature,
 *                as libopendkim does (dkim_sign gets the key's PEM text):
 *                why dkim/signer.c signs with OpenSSL itself
 * The keys are made here, in a mkdtemp folder under /tmp (removed after).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "../common/config.h"
#include "../common/util.h"
#include "../dkim/signer.h"

static char dir[64];
static char rsa_path[96], ed_path[96];

static double
cpu_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void
write_key(const char *path, bool rsa)
{
	EVP_PKEY *k = rsa ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048) :
	    EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	FILE *f = fopen(path, "w");

	if (k == NULL || f == NULL ||
	    PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) != 1) {
		fprintf(stderr, "dkim_sign: cannot write %s\n", path);
		exit(1);
	}
	fclose(f);
	EVP_PKEY_free(k);
}

static void
problem(void *arg, const char *line)
{
	fprintf(stderr, "dkim_sign: %s\n", line);
}

/* a signer of the keys paths[0..n) for bench.test */
static struct dkim_signer *
signer(const char *const *paths, const char *const *sels, size_t n)
{
	struct dkim_key_conf k[2];
	struct config c;
	struct dkim_signer *s;
	int errors;

	memset(&c, 0, sizeof(c));
	c.path = "dkim_sign";
	c.dkim_keys = k;
	c.ndkim_keys = n;
	for (size_t i = 0; i < n; i++) {
		k[i].domain = (char *)"bench.test";
		k[i].selector = (char *)sels[i];
		k[i].file = (char *)paths[i];
		k[i].line = (int)i + 1;
	}
	s = dkim_signer_load(&c, problem, NULL, &errors);
	if (errors != 0 || dkim_signer_keys(s) != n)
		exit(1);
	return s;
}

static void
run_signer(const char *name, struct dkim_signer *s, size_t sigs,
    const char *msg, size_t len, unsigned n)
{
	char err[256];
	double t0 = cpu_us();

	for (unsigned i = 0; i < n; i++) {
		size_t outlen, got;
		char *out = dkim_sign_message(s, "bench.test", msg, len, &outlen,
		    &got, err, sizeof(err));

		if (out == NULL || err[0] != '\0' || got != sigs) {
			fprintf(stderr, "dkim_sign: %s: %s\n", name, err);
			exit(1);
		}
		free(out);
	}
	printf("%-16s signatures=%zu cpu_us_per_msg=%.1f\n", name, sigs,
	    (cpu_us() - t0) / n);
}

static char *
slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "r");
	char *p = xmalloc(16384);

	*len = f ? fread(p, 1, 16383, f) : 0;
	if (f)
		fclose(f);
	p[*len] = '\0';
	return p;
}

static void
run_openssl(bool pem_each, const char *msg, size_t len, unsigned n)
{
	size_t pemlen;
	char *pem = slurp(rsa_path, &pemlen);
	BIO *bio = BIO_new_mem_buf(pem, (int)pemlen);
	EVP_PKEY *key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	unsigned char sig[512];
	double t0;

	BIO_free(bio);
	if (key == NULL)
		exit(1);
	t0 = cpu_us();
	for (unsigned i = 0; i < n; i++) {
		EVP_MD_CTX *ctx = EVP_MD_CTX_new();
		EVP_PKEY *k = key;
		size_t siglen = sizeof(sig);

		if (pem_each) {
			bio = BIO_new_mem_buf(pem, (int)pemlen);
			k = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
			BIO_free(bio);
		}
		if (k == NULL || ctx == NULL ||
		    EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, k) != 1 ||
		    EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)msg,
		    len) != 1)
			exit(1);
		EVP_MD_CTX_free(ctx);
		if (pem_each)
			EVP_PKEY_free(k);
	}
	printf("%-16s signatures=1 cpu_us_per_msg=%.1f\n",
	    pem_each ? "openssl-rsa-pem" : "openssl-rsa", (cpu_us() - t0) / n);
	EVP_PKEY_free(key);
	free(pem);
}

int
main(int argc, char **argv)
{
	static const char *const rsa[] = { rsa_path }, *const ed[] = { ed_path },
	    *const both[] = { rsa_path, ed_path }, *const rsa_sel[] = { "r" },
	    *const ed_sel[] = { "e" }, *const both_sel[] = { "r", "e" };
	unsigned n = 2000;
	size_t body = 4096, len;
	struct strbuf m = { 0 };
	struct dkim_signer *s;
	int ch;

	while ((ch = getopt(argc, argv, "n:l:")) != -1) {
		switch (ch) {
		case 'n':
			n = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'l':
			body = strtoul(optarg, NULL, 10);
			break;
		default:
			fprintf(stderr, "usage: dkim_sign [-n signatures] "
			    "[-l body-octets]\n");
			return 2;
		}
	}
	if (n == 0)
		n = 1;
	strcpy(dir, "/tmp/chamois-dkim-bench.XXXXXX");
	if (mkdtemp(dir) == NULL)
		return 1;
	snprintf(rsa_path, sizeof(rsa_path), "%s/rsa.pem", dir);
	snprintf(ed_path, sizeof(ed_path), "%s/ed.pem", dir);
	write_key(rsa_path, true);
	write_key(ed_path, false);

	/* the queue's LF form, as bench.py's queue scenario sends it */
	strbuf_printf(&m, "%s", "Received: from localhost by mx.bench.test (chamois)\n"
	    "\tid 0123456789abcdef; Thu, 3 Dec 2026 00:00:00 +0000\n"
	    "From: sender <sender@bench.test>\nTo: <sink@sink.test>\n"
	    "Subject: bench\nDate: Thu, 3 Dec 2026 00:00:00 +0000\n"
	    "Message-ID: <0123456789abcdef@mx.bench.test>\n\n");
	while (m.len < body + 200) {
		static const char line[] = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n";

		strbuf_add(&m, line, sizeof(line) - 1);
	}
	len = m.len;
	printf("message octets=%zu signatures per case=%u\n", len, n);

	s = signer(ed, ed_sel, 1);
	run_signer("ed25519", s, 1, m.p, len, n);
	dkim_signer_free(s);
	s = signer(rsa, rsa_sel, 1);
	run_signer("rsa", s, 1, m.p, len, n);
	dkim_signer_free(s);
	s = signer(both, both_sel, 2);
	run_signer("rsa+ed25519", s, 2, m.p, len, n);
	dkim_signer_free(s);
	run_openssl(false, m.p, len, n);
	run_openssl(true, m.p, len, n);

	free(m.p);
	unlink(rsa_path);
	unlink(ed_path);
	rmdir(dir);
	return 0;
}
