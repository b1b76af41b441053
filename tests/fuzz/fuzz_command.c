/*
 * fuzz_command - smtpd/parse.c: the arguments of MAIL, RCPT and HELO/EHLO
 * as smtpd_command() hands them over (no NUL, at most COMMAND_LINE_MAX,
 * the verb and its spaces already gone).
 *
 * Input: one selector octet (low bits: MAIL, RCPT, HELO; 0x10: a 1 KiB
 * message size limit; 0x20: AUTH offered; 0x40: DSN offered), then the
 * argument.  Checks:
 * an error is a whole SMTP reply; an accepted path passes check_mailaddr;
 * MAIL's SIZE is within the limit and a non-ASCII sender needs SMTPUTF8;
 * the DSN parameters (RFC 3461) come only where offered, decode to
 * printable ASCII within their limits and round-trip through xtext;
 * HELO's word is 1..HELO_MAX printable octets, a prefix of the argument;
 * an accepted recipient, written into our Received field by the engine's
 * own builder (smtpd_received_header, with or without TLS and a login as
 * the selector's 0x40 and 0x80 bits say), is found again by header_scan()
 * (forwarding loop detection).
 */
#include <ctype.h>
#include <strings.h>

#include "fuzz_addrcheck.h"
#include "smtpd/smtpd.h"

static void
check_reply(const char *err)
{
	size_t n = strlen(err);

	FUZZ_CHECK(n >= 4 && n < 512);
	FUZZ_CHECK(err[0] == '5' && isdigit((unsigned char)err[1]) &&
	    isdigit((unsigned char)err[2]) && err[3] == ' ');
	FUZZ_CHECK(strpbrk(err, "\r\n") == NULL);
}

/*
 * check_loop_detection - forwarding's header rewriting: the Received
 * field the engine writes for a one-recipient transaction ("for <shown>")
 * must be read back by header_scan() as ours, naming that recipient, or
 * forwarded_loop() cannot see the loop.
 */
static void
check_loop_detection(const struct mailaddr *a, uint8_t sel)
{
	struct header_scanner h;
	char shown[PATH_MAX_OCTETS + 1], *rcv;
	bool tls = (sel & 0x40) != 0;

	addr_format(a, shown, sizeof(shown));
	rcv = smtpd_received_header("client.example", "192.0.2.1", true, tls,
	    !str_is_ascii(shown, strlen(shown)), (sel & 0x80) ? "user@chamois.test" :
	    NULL, "mx.chamois.test", "0123456789abcdef.1",
	    "TLSv1.3 TLS_AES_256_GCM_SHA384", shown,
	    "Mon, 1 Jan 2024 00:00:00 +0000");
	header_scanner_init(&h, "mx.chamois.test");
	header_scan(&h, rcv, strlen(rcv));
	header_scan(&h, "\n", 1);
	header_scan_end(&h);
	FUZZ_CHECK(h.received == 1);
	FUZZ_CHECKF(h.nours == 1 && strcasecmp(h.ours_for[0], shown) == 0,
	    "Received ... for <%s> read back as %s", shown,
	    h.nours ? h.ours_for[0] : "(nothing)");
	header_scanner_free(&h);
	free(rcv);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtpd_mail_args m;
	struct mailaddr a;
	struct smtpd_rcpt_dsn d;
	const char *err;
	char *arg, *orig, helo[HELO_MAX + 1];
	uint64_t max;
	uint8_t sel;

	if (size < 1 || size - 1 > COMMAND_LINE_MAX ||
	    memchr(data + 1, '\0', size - 1) != NULL)
		return 0;
	sel = data[0];
	arg = fuzz_str(data + 1, size - 1);
	orig = fuzz_str(data + 1, size - 1);
	switch (sel % 3) {
	case 0:
		max = (sel & 0x10) ? 1024 : 26214400;
		err = smtpd_parse_mail(arg, &m, max, (sel & 0x20) != 0,
		    (sel & 0x40) != 0);
		if (err != NULL) {
			check_reply(err);
			break;
		}
		FUZZ_CHECK(m.size <= max);
		/* DSN (RFC 3461 4.4): only where offered; printable, bounded */
		FUZZ_CHECK((sel & 0x40) || (m.ret == DSN_RET_DEFAULT &&
		    m.envid[0] == '\0'));
		FUZZ_CHECK(strlen(m.envid) <= DSN_ENVID_MAX);
		for (const char *q = m.envid; *q; q++)
			FUZZ_CHECK(*q >= 0x20 && *q <= 0x7e);
		if (m.envid[0] != '\0') {
			/* xtext round-trips */
			char *x = dsn_xtext_encode(m.envid), back[DSN_ENVID_MAX + 1];

			FUZZ_CHECK(dsn_xtext_decode(x, back, sizeof(back)) &&
			    strcmp(back, m.envid) == 0);
			free(x);
		}
		FUZZ_CHECK(strncasecmp(orig, "FROM:", 5) == 0);
		if (!m.null_sender) {
			check_mailaddr(&m.addr, ADDR_F_UTF8);
			if (!m.smtputf8)
				FUZZ_CHECK(str_is_ascii(m.addr.local,
				    strlen(m.addr.local)) && str_is_ascii(
				    m.addr.domain, strlen(m.addr.domain)));
		}
		break;
	case 1:
		err = smtpd_parse_rcpt(arg, &a, (sel & 0x40) ? &d : NULL);
		if (err != NULL) {
			check_reply(err);
			break;
		}
		FUZZ_CHECK(strncasecmp(orig, "TO:", 3) == 0);
		check_mailaddr(&a, ADDR_F_UTF8 | ADDR_F_NODOMAIN);
		if (sel & 0x40) {
			FUZZ_CHECK((d.notify & DSN_NOTIFY_NEVER) == 0 ||
			    d.notify == DSN_NOTIFY_NEVER);
			FUZZ_CHECK(d.orcpt[0] == '\0' || strchr(d.orcpt, ';'));
			for (const char *q = d.orcpt; *q; q++)
				FUZZ_CHECK(*q >= 0x20 && *q <= 0x7e);
		}
		check_loop_detection(&a, sel);
		break;
	case 2:
		/* commands.c passes s->helo, HELO_MAX + 1 octets */
		if (smtpd_parse_helo(arg, helo, sizeof(helo))) {
			size_t n = strlen(helo);

			FUZZ_CHECK(n > 0 && n <= HELO_MAX);
			FUZZ_CHECK(strncmp(helo, orig, n) == 0);
			FUZZ_CHECK(orig[n] == '\0' || orig[n] == ' ');
			for (size_t i = 0; i < n; i++)
				FUZZ_CHECK((unsigned char)helo[i] > 0x20 &&
				    (unsigned char)helo[i] < 0x7f);
		}
		/* a smaller buffer never overflows */
		{
			size_t hs = 1 + (sel >> 2) % 16;
			char *small = malloc(hs);

			if (smtpd_parse_helo(arg, small, hs))
				FUZZ_CHECK(strlen(small) < hs);
			free(small);
		}
		break;
	}
	free(arg);
	free(orig);
	return 0;
}
