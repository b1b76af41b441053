/*
 * fuzz_srs - forward/srs.c with two fixed secrets ([0] signs, both
 * verify).
 *
 * Input: one mode octet, one octet of days, then text (cut at a NUL).
 *  mode & 1 == 0: srs_reverse() of the text as a local part, into an
 *    output of strlen + 1 octets (srs.h: always enough for a local part
 *    spelled as addr.c spells it) and into a large one; both must agree
 *    for such a local part.
 *  mode & 1 == 1: round trip.  The text is a sender as MAIL FROM gives it
 *    (parsed by addr_parse, then addr_format: tx->sender).  When
 *    srs_forward() takes it into PATH_MAX_OCTETS + 1 octets, the result
 *    must be an address addr.c takes (the bounce comes back through RCPT),
 *    and srs_reverse() of its local part must give the sender back: at
 *    any age up to SRS_MAX_AGE_DAYS, in any letter case; older it is
 *    SRS_STALE, and a forged hash is SRS_BAD_HASH.
 */
#include <ctype.h>
#include <strings.h>

#include "common/addr.h"
#include "common/limits.h"
#include "common/util.h"
#include "forward/srs.h"
#include "fuzz.h"

#define NOW	((time_t)1700000000)	/* a fixed clock: no state in time */
#define DAY	86400

static struct srs srs;
static const char *our_domains[] = {
	"chamois.test", "fwd.example.org", "xn--bcher-kva.example",
	"a-rather-long-forwarding-domain-name.mail.example.com",
};

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char *const secrets[] = {
		"fuzz-secret-0123456789abcdef", "older-secret-fedcba9876543210",
	};
	char err[256];

	if (srs_init(&srs, secrets, 2, NULL, err, sizeof(err)) == -1) {
		fprintf(stderr, "srs_init: %s\n", err);
		abort();
	}
	return 0;
}

static void
reverse_only(const char *local, unsigned days)
{
	size_t n = strlen(local);
	char *small = malloc(n + 1), big[4096];
	enum srs_status s1, s2;
	struct mailaddr a;
	char *addr;

	s1 = srs_reverse(&srs, local, NOW + (time_t)days * DAY, small, n + 1);
	s2 = srs_reverse(&srs, local, NOW + (time_t)days * DAY, big,
	    sizeof(big));
	FUZZ_CHECK(s1 <= SRS_SYNTAX && s2 <= SRS_SYNTAX);
	if (s1 == SRS_OK) {
		FUZZ_CHECK(s2 == SRS_OK && strcmp(small, big) == 0);
		FUZZ_CHECK(strchr(small, '@') != NULL);
	}
	/* srs.h: enough for a local part as addr.c spells it */
	addr = xasprintf("%s@chamois.test", local);
	if (s2 == SRS_OK && addr_parse(addr, &a, ADDR_F_UTF8) == ADDR_OK &&
	    strcmp(a.local, local) == 0)
		FUZZ_CHECKF(s1 == SRS_OK, "%s: orig of %zu octets too small "
		    "for %s", local, n + 1, big);
	free(addr);
	free(small);
}

static void
round_trip(const char *text, unsigned mode, unsigned days)
{
	char sender[PATH_MAX_OCTETS + 1], out[PATH_MAX_OCTETS + 1];
	char orig[PATH_MAX_OCTETS + 1], *upper;
	const char *dom = our_domains[(mode >> 1) % 4];
	struct mailaddr a, b;
	enum srs_status st;
	unsigned age = days % (SRS_MAX_AGE_DAYS + 1);

	/* tx->sender: what MAIL FROM left, as commands.c formats it */
	if (addr_parse(text, &a, ADDR_F_UTF8) != ADDR_OK)
		return;
	addr_format(&a, sender, sizeof(sender));
	if (!srs_forward(&srs, sender, dom, NOW, out, sizeof(out)))
		return;
	FUZZ_CHECK(strlen(out) < sizeof(out));

	/* the bounce comes back: RCPT TO:<out>, as cmd_rcpt reads it */
	FUZZ_CHECKF(addr_parse(out, &b, ADDR_F_UTF8) == ADDR_OK,
	    "srs_forward gave %s (%zu octets), which addr.c refuses (%d)",
	    out, strlen(out), addr_parse(out, &b, ADDR_F_UTF8));
	FUZZ_CHECK(strcasecmp(b.domain, dom) == 0);

	/* commands.c srs_rcpt: orig of PATH_MAX_OCTETS + 1 */
	st = srs_reverse(&srs, b.local, NOW + (time_t)age * DAY, orig,
	    sizeof(orig));
	FUZZ_CHECKF(st == SRS_OK, "srs_reverse(%s) = %d for sender %s",
	    b.local, st, sender);
	FUZZ_CHECKF(strcmp(orig, sender) == 0, "sender %s came back as %s",
	    sender, orig);
	/* srs.h: strlen(local_part) + 1 octets always do */
	{
		size_t n = strlen(b.local) + 1;
		char *tight = malloc(n);

		st = srs_reverse(&srs, b.local, NOW, tight, n);
		FUZZ_CHECKF(st == SRS_OK && strcmp(tight, sender) == 0,
		    "srs_reverse(%s) into %zu octets: %d", b.local, n, st);
		free(tight);
	}

	/* servers on the way back may fold case */
	upper = xstrdup(b.local);
	for (char *p = upper; *p; p++)
		*p = (char)toupper((unsigned char)*p);
	st = srs_reverse(&srs, upper, NOW + (time_t)age * DAY, orig,
	    sizeof(orig));
	FUZZ_CHECKF(st == SRS_OK, "srs_reverse(%s) = %d", upper, st);
	FUZZ_CHECK(strcasecmp(orig, sender) == 0);

	/* too old */
	st = srs_reverse(&srs, b.local, NOW + (time_t)(SRS_MAX_AGE_DAYS + 1 +
	    days % 900) * DAY, orig, sizeof(orig));
	FUZZ_CHECKF(st == SRS_STALE, "%s: %d days old gives %d", b.local,
	    SRS_MAX_AGE_DAYS + 1 + days % 900, st);

	/* one character of the hash changed: forged */
	{
		char *h = strchr(upper, '=') + 1;	/* after SRS0= */

		*h = *h == 'A' ? 'B' : 'A';
		st = srs_reverse(&srs, upper, NOW, orig, sizeof(orig));
		FUZZ_CHECKF(st == SRS_BAD_HASH, "forged %s gives %d", upper, st);
	}
	free(upper);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text;

	if (size < 2)
		return 0;
	text = fuzz_str(data + 2, size - 2);
	if (data[0] & 1)
		round_trip(text, data[0], data[1]);
	else
		reverse_only(text, data[1]);
	free(text);
	return 0;
}
