/*
 * opendkim_verify.c - OpenDKIM's verifier (libopendkim, the library of
 * opendkim(8) and opendkim-testmsg(8)) for tests/integration/test_dkim_sign.py:
 * reads a message (CRLF form) on stdin, verifies every DKIM-Signature
 * and prints one line per signature in the order of the header:
 *
 *     pass d=DOMAIN s=SELECTOR a=rsa-sha256|ed25519-sha256
 *     fail d=DOMAIN s=SELECTOR a=... error=TEXT
 *
 * exit 0 when every signature passed (and there was one), 1 otherwise.
 *
 *     opendkim_verify DNS-PORT < message
 *
 * The keys are looked up in the test's dnsmasq on 127.0.0.1:DNS-PORT:
 * libopendkim's own resolver only asks port 53 (its nameserver list takes
 * addresses, not ports), so its query hooks are given a resolver of the
 * C library whose one server is that address and port.
 */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netinet/in.h>
#include <resolv.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dkim.h>

struct query {
	int len;		/* the reply's length, -1 for none */
};

static struct __res_state res;

static int
dns_init(void **srv)
{
	*srv = &res;
	return 0;
}

static void
dns_close(void *srv)
{
	(void)srv;
}

static int
dns_start(void *srv, int type, unsigned char *name, unsigned char *buf,
    size_t buflen, void **qh)
{
	struct query *q = malloc(sizeof(*q));

	(void)srv;
	if (q == NULL)
		return DKIM_DNS_ERROR;
	q->len = res_nquery(&res, (char *)name, C_IN, type, buf, (int)buflen);
	*qh = q;
	return DKIM_DNS_SUCCESS;
}

static int
dns_cancel(void *srv, void *qh)
{
	(void)srv;
	free(qh);
	return DKIM_DNS_SUCCESS;
}

static int
dns_wait(void *srv, void *qh, struct timeval *to, size_t *bytes, int *error,
    int *dnssec)
{
	struct query *q = qh;

	(void)srv;
	(void)to;
	if (bytes)
		*bytes = q->len > 0 ? (size_t)q->len : 0;
	if (error)
		*error = q->len > 0 ? 0 : -1;
	if (dnssec)
		*dnssec = DKIM_DNSSEC_UNKNOWN;
	return DKIM_DNS_SUCCESS;
}

int
main(int argc, char **argv)
{
	static unsigned char buf[1 << 20];
	DKIM_SIGINFO **sigs;
	DKIM_STAT st;
	DKIM_LIB *lib;
	DKIM *d;
	size_t n;
	int nsigs, bad = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: opendkim_verify DNS-PORT < message\n");
		return 2;
	}
	if (res_ninit(&res) == -1)
		return 2;
	res.nscount = 1;
	res.nsaddr_list[0].sin_family = AF_INET;
	res.nsaddr_list[0].sin_port = htons((unsigned short)atoi(argv[1]));
	inet_pton(AF_INET, "127.0.0.1", &res.nsaddr_list[0].sin_addr);
	if ((lib = dkim_init(NULL, NULL)) == NULL)
		return 2;
	dkim_dns_set_init(lib, dns_init);
	dkim_dns_set_close(lib, dns_close);
	dkim_dns_set_query_start(lib, dns_start);
	dkim_dns_set_query_cancel(lib, dns_cancel);
	dkim_dns_set_query_waitreply(lib, dns_wait);
	if ((d = dkim_verify(lib, (unsigned char *)"test", NULL, &st)) == NULL) {
		fprintf(stderr, "dkim_verify: %s\n", dkim_getresultstr(st));
		return 2;
	}
	while ((n = fread(buf, 1, sizeof(buf), stdin)) > 0)
		if ((st = dkim_chunk(d, buf, n)) != DKIM_STAT_OK)
			break;
	if (st == DKIM_STAT_OK)
		st = dkim_chunk(d, NULL, 0);
	/* the verdict of each signature is in its DKIM_SIGINFO, not here */
	(void)dkim_eom(d, NULL);
	if (dkim_getsiglist(d, &sigs, &nsigs) != DKIM_STAT_OK || nsigs == 0) {
		printf("no signature\n");
		return 1;
	}
	for (int i = 0; i < nsigs; i++) {
		dkim_alg_t alg = 0;
		const char *a;
		bool ok = DKIM_SIG_CHECK(sigs[i]);

		dkim_sig_getsignalg(sigs[i], &alg);
		a = alg == DKIM_SIGN_ED25519SHA256 ? "ed25519-sha256" :
		    alg == DKIM_SIGN_RSASHA256 ? "rsa-sha256" : "other";
		printf("%s d=%s s=%s a=%s", ok ? "pass" : "fail",
		    dkim_sig_getdomain(sigs[i]), dkim_sig_getselector(sigs[i]), a);
		if (!ok) {
			printf(" error=%s bh=%s", dkim_sig_geterrorstr(
			    dkim_sig_geterror(sigs[i])), dkim_sig_getbh(sigs[i]) ==
			    DKIM_SIGBH_MATCH ? "match" : "mismatch");
			bad++;
		}
		printf("\n");
	}
	dkim_free(d);
	dkim_close(lib);
	return bad ? 1 : 0;
}
