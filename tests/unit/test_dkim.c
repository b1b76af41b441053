/*
 * test_dkim.c - what decides whether a message is DKIM-signed and with
 * which key (doc/queue.md "Signing"): the From domain the queue reads
 * (queue_from_domain, queue/headers.c), the domain-or-below match and the
 * longest matching dkim_key domain (dkim/signer.c), the fields one
 * signature lists, and our relaxed body canonicalisation (Ed25519) against
 * libopendkim's (RSA): both signatures of a message must carry the same
 * bh= (keys made here with OpenSSL).  Whether the signatures verify is
 * told by real verifiers in tests/integration/test_dkim_sign.py.
 */
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "common/config.h"
#include "common/util.h"
#include "dkim/signer.h"
#include "queue/queue.h"
#include "unit.h"

struct from_case {
	const char *label;
	const char *msg;
	const char *domain;	/* NULL: no signing domain */
};

static const struct from_case from_cases[] = {
	{ .label = "bare address",
	  .msg = "From: alice@example.org\nTo: b@x.org\n\nbody\n",
	  .domain = "example.org" },
	{ .label = "display name and angle address, any case",
	  .msg = "Subject: x\nfrom: \"Alice, A.\" <Alice@Mail.Example.ORG>\n\nb\n",
	  .domain = "mail.example.org" },
	{ .label = "folded field with a comment",
	  .msg = "From: Alice\n (work)\n <alice@example.org>\n\nb\n",
	  .domain = "example.org" },
	{ .label = "U-label becomes the A-label",
	  .msg = "From: jose@bücher.example\n\nb\n",
	  .domain = "xn--bcher-kva.example" },
	{ .label = "no From",
	  .msg = "To: b@x.org\n\nFrom: alice@example.org\n" },
	{ .label = "two From fields",
	  .msg = "From: a@example.org\nFrom: b@example.org\n\nb\n" },
	{ .label = "two addresses in one From",
	  .msg = "From: a@example.org, b@example.org\n\nb\n" },
	{ .label = "a group with no address",
	  .msg = "From: undisclosed:;\n\nb\n" },
	{ .label = "does not parse",
	  .msg = "From: <alice@example.org\n\nb\n" },
	{ .label = "no domain",
	  .msg = "From: alice\n\nb\n" },
	{ .label = "a From in the body does not count",
	  .msg = "Subject: x\n\nFrom: alice@example.org\n" },
};

static void
run_from_case(void **state)
{
	const struct from_case *c = *state;
	char out[256];
	const char *why = NULL, *got;

	got = queue_from_domain(c->msg, strlen(c->msg), out, sizeof(out), &why);
	if (c->domain == NULL) {
		assert_null(got);
		assert_non_null(why);
	} else {
		assert_non_null(got);
		assert_string_equal(got, c->domain);
	}
}

struct match_case {
	const char *label;
	const char *domain, *from;
	bool match;
};

static const struct match_case match_cases[] = {
	{ "the domain itself", "example.org", "example.org", true },
	{ "a subdomain", "example.org", "lists.example.org", true },
	{ "a deeper subdomain", "example.org", "a.b.example.org", true },
	{ "a name that only ends the same", "example.org", "badexample.org", false },
	{ "the parent", "lists.example.org", "example.org", false },
	{ "another domain", "example.org", "example.net", false },
	{ "empty from", "example.org", "", false },
};

static void
run_match_case(void **state)
{
	const struct match_case *c = *state;

	assert_int_equal(dkim_domain_matches(c->domain, c->from), c->match);
}

/* a config with dkim_key lines for keys made here */
struct keyed {
	struct config c;
	struct dkim_key_conf k[3];
	char dir[64];
};

static void
write_key(const char *path, bool rsa)
{
	EVP_PKEY *k = rsa ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048) :
	    EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	FILE *f = fopen(path, "w");

	assert_non_null(k);
	assert_non_null(f);
	assert_int_equal(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), 1);
	fclose(f);
	EVP_PKEY_free(k);
}

static void
keyed_init(struct keyed *t, bool rsa_first)
{
	static const char *const dom[] = { "example.org", "lists.example.org",
	    "example.org" };
	static const char *const sel[] = { "a", "l", "b" };

	memset(t, 0, sizeof(*t));
	strcpy(t->dir, "/tmp/chamois-test-dkim.XXXXXX");
	assert_non_null(mkdtemp(t->dir));
	t->c.path = "chamois.conf";
	t->c.dkim_keys = t->k;
	t->c.ndkim_keys = nitems(t->k);
	for (size_t i = 0; i < nitems(t->k); i++) {
		t->k[i].domain = (char *)dom[i];
		t->k[i].selector = (char *)sel[i];
		t->k[i].file = xasprintf("%s/%s.pem", t->dir, sel[i]);
		t->k[i].line = (int)i + 1;
		write_key(t->k[i].file, rsa_first && i == 0);
	}
}

static void
keyed_free(struct keyed *t)
{
	for (size_t i = 0; i < nitems(t->k); i++) {
		unlink(t->k[i].file);
		free(t->k[i].file);
	}
	rmdir(t->dir);
}

static void
no_problem(void *arg, const char *line)
{
	fail_msg("unexpected problem: %s", line);
}

static void
test_longest_domain_wins(void **state)
{
	struct keyed t;
	struct dkim_signer *s;
	int errors;

	(void)state;
	keyed_init(&t, false);
	s = dkim_signer_load(&t.c, no_problem, NULL, &errors);
	assert_int_equal(errors, 0);
	assert_int_equal(dkim_signer_keys(s), 3);
	assert_string_equal(dkim_signer_domain(s, "example.org"), "example.org");
	assert_string_equal(dkim_signer_domain(s, "x.example.org"), "example.org");
	assert_string_equal(dkim_signer_domain(s, "lists.example.org"),
	    "lists.example.org");
	assert_string_equal(dkim_signer_domain(s, "a.lists.example.org"),
	    "lists.example.org");
	assert_null(dkim_signer_domain(s, "example.net"));
	dkim_signer_free(s);
	keyed_free(&t);
}

static void
test_signature_fields(void **state)
{
	static const char msg[] = "Received: by mx.example.org; x\n"
	    "From: alice@example.org\nTo: bob@example.net\nSubject: hi\n"
	    "X-Mailer: not signed\n\nbody\n";
	struct keyed t;
	struct dkim_signer *s;
	char err[256];
	size_t len;
	char *h, *second;
	int errors;

	(void)state;
	keyed_init(&t, false);
	s = dkim_signer_load(&t.c, no_problem, NULL, &errors);
	h = dkim_sign_message(s, "example.org", msg, strlen(msg), &len, err,
	    sizeof(err));
	assert_non_null(h);
	assert_string_equal(err, "");
	/* both keys of example.org, in dkim_key order, none of lists. */
	assert_true(strncmp(h, "DKIM-Signature: v=1; a=ed25519-sha256;", 38) == 0);
	assert_non_null(strstr(h, "s=a;"));
	assert_non_null(second = strstr(h + 1, "\nDKIM-Signature: "));
	assert_non_null(strstr(second, "s=b;"));
	assert_null(strstr(h, "s=l;"));
	assert_non_null(strstr(h, "c=relaxed/relaxed;"));
	assert_non_null(strstr(h, "d=example.org;"));
	/* present fields only, From over-signed; ours and unknown ones not */
	assert_non_null(strstr(h, "h=From:To:Subject:From;"));
	assert_null(strstr(h, "\r"));
	assert_int_equal(h[len - 1], '\n');
	free(h);
	assert_null(dkim_sign_message(s, "example.net", msg, strlen(msg), &len,
	    err, sizeof(err)));
	dkim_signer_free(s);
	keyed_free(&t);
}

/* bodies whose relaxed forms are easy to get wrong (RFC 6376 3.4.4) */
struct body_case {
	const char *label;
	const char *body;
};

static const struct body_case body_cases[] = {
	{ "empty body", "" },
	{ "one empty line", "\n" },
	{ "empty lines at the end", "text\n\n\n\n" },
	{ "blank-only lines at the end", "text\n \n\t\n  \t \n" },
	{ "blank-only line inside", "a\n \t \nb\n" },
	{ "runs of blanks", "a  b\t\tc \t d\n" },
	{ "leading blanks", "  lead\n\tlead\n" },
	{ "trailing blanks", "trail   \n\ttrail\t\n" },
	{ "no line end at the end", "last line" },
	{ "no line end after blanks", "last  " },
	{ "dot lines", ".\n..\n.a\n" },
	{ "8-bit", "Gr\xc3\xbc\xc3\x9f" "e \xff\xfe\n" },
	{ "a 990-octet line",
	  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n" },
};

/* the value of tag (e.g. "bh=") in a signature field at f */
static void
tag(const char *f, const char *name, char *out, size_t size)
{
	const char *p = strstr(f, name), *e;

	assert_non_null(p);
	p += strlen(name);
	e = strchr(p, ';');
	assert_non_null(e);
	snprintf(out, size, "%.*s", (int)(e - p), p);
}

static void
run_body_case(void **state)
{
	const struct body_case *c = *state;
	static const char head[] = "From: alice@example.org\nSubject: x\n\n";
	char msg[2048], err[256], rsa_bh[64], ed_bh[64];
	struct keyed t;
	struct dkim_signer *s;
	size_t len;
	char *h, *second;
	int errors;

	keyed_init(&t, true);
	s = dkim_signer_load(&t.c, no_problem, NULL, &errors);
	len = (size_t)snprintf(msg, sizeof(msg), "%s%s", head, c->body);
	h = dkim_sign_message(s, "example.org", msg, len, &len, err, sizeof(err));
	assert_non_null(h);
	assert_string_equal(err, "");
	assert_non_null(strstr(h, "a=rsa-sha256"));
	assert_non_null(second = strstr(h, "\nDKIM-Signature: "));
	assert_non_null(strstr(second, "a=ed25519-sha256"));
	tag(h, "bh=", rsa_bh, sizeof(rsa_bh));
	tag(second, "bh=", ed_bh, sizeof(ed_bh));
	assert_string_equal(ed_bh, rsa_bh);
	free(h);
	dkim_signer_free(s);
	keyed_free(&t);
}

int
main(void)
{
	struct CMUnitTest tests[nitems(from_cases) + nitems(match_cases) +
	    nitems(body_cases) + 2];
	size_t n = 0;

	UNIT_ROWS(tests, n, run_from_case, from_cases);
	UNIT_ROWS(tests, n, run_match_case, match_cases);
	UNIT_ROWS(tests, n, run_body_case, body_cases);
	UNIT_TEST(tests, n, test_longest_domain_wins);
	UNIT_TEST(tests, n, test_signature_fields);
	UNIT_RUN(tests, n);
}
