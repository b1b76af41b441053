/*
 * opendkim_sign.c - OpenDKIM's signer (libopendkim, the library of
 * opendkim(8)) for tests/integration/test_checks_mx.py: reads a message
 * (CRLF form) on stdin, signs it relaxed/relaxed with rsa-sha256 and the
 * PEM key in KEY-FILE, and writes the DKIM-Signature field (CRLF form)
 * followed by the message to stdout; exit 0, or 1 with the library's
 * reason on stderr.
 *
 *     opendkim_sign DOMAIN SELECTOR KEY-FILE < message > signed
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dkim.h>

static unsigned char msg[1 << 20], key[16384], hdr[8192];

/* slurp - the whole of f into buf (NUL added); its length, or -1 */
static long
slurp(FILE *f, unsigned char *buf, size_t size)
{
	size_t n = fread(buf, 1, size - 1, f);

	if (ferror(f) || n == size - 1)
		return -1;
	buf[n] = '\0';
	return (long)n;
}

int
main(int argc, char **argv)
{
	DKIM_STAT st;
	DKIM_LIB *lib;
	DKIM *d;
	FILE *kf;
	long mlen;

	if (argc != 4) {
		fprintf(stderr, "usage: opendkim_sign DOMAIN SELECTOR KEY-FILE < message\n");
		return 2;
	}
	if ((kf = fopen(argv[3], "r")) == NULL || slurp(kf, key, sizeof(key)) < 0) {
		perror(argv[3]);
		return 2;
	}
	fclose(kf);
	if ((mlen = slurp(stdin, msg, sizeof(msg))) < 0)
		return 2;
	if ((lib = dkim_init(NULL, NULL)) == NULL)
		return 2;
	d = dkim_sign(lib, (unsigned char *)"test", NULL, key,
	    (unsigned char *)argv[2], (unsigned char *)argv[1],
	    DKIM_CANON_RELAXED, DKIM_CANON_RELAXED, DKIM_SIGN_RSASHA256, -1, &st);
	if (d == NULL) {
		fprintf(stderr, "dkim_sign: %s\n", dkim_getresultstr(st));
		return 1;
	}
	if ((st = dkim_chunk(d, msg, (size_t)mlen)) == DKIM_STAT_OK &&
	    (st = dkim_chunk(d, NULL, 0)) == DKIM_STAT_OK &&
	    (st = dkim_eom(d, NULL)) == DKIM_STAT_OK)
		st = dkim_getsighdr(d, hdr, sizeof(hdr), strlen(DKIM_SIGNHEADER) + 2);
	if (st != DKIM_STAT_OK) {
		fprintf(stderr, "signing: %s\n", dkim_getresultstr(st));
		return 1;
	}
	/* folded with CRLF: the library saw CRLF in the message */
	printf("%s: %s\r\n", DKIM_SIGNHEADER, (char *)hdr);
	fwrite(msg, 1, (size_t)mlen, stdout);
	dkim_free(d);
	dkim_close(lib);
	return 0;
}
