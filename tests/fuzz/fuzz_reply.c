/*
 * fuzz_reply - the remote-reply parser of the outbound client
 * (outbound/client.c smtp_reply_parse) and forwarding's mapping of a
 * remote reply for our own client (forward/proxy.c fwd_map_reply).
 *
 * Input: one flags octet (bit 0: the client said SMTPUTF8; bits 1..6: a
 * small output size for a second, truncating fwd_map_reply), then what
 * the remote sends.  It is cut into lines as client_read() does
 * (evbuffer_readln EVBUFFER_EOL_CRLF: LF, with one CR before it dropped)
 * and fed line by line, with the same SMTP_REPLY_MAX bound on a reply; a
 * complete reply is mapped, then the next one starts from zero.
 *
 * Checks: a parsed reply has a code in 200..599, an enhanced code that is
 * empty or digits and dots starting with the class, a bounded text; the
 * mapped reply is one line (no CR, LF or other control octet), at most
 * "NNN X.Y.Z " plus 400 octets of text, of class 2, 4 or 5 with a matching
 * enhanced code, ASCII unless SMTPUTF8 (then valid UTF-8, and a valid text
 * of at most 400 octets arrives whole, control octets as spaces), and a
 * smaller output buffer is never overrun.
 */
#include <ctype.h>

#include "common/addr.h"
#include "common/limits.h"
#include "common/util.h"
#include "forward/forward.h"
#include "fuzz.h"
#include "outbound/client.h"

static void
check_reply(const struct smtp_reply *r)
{
	size_t n = strnlen(r->esc, sizeof(r->esc));

	FUZZ_CHECK(r->code >= 200 && r->code <= 599);
	FUZZ_CHECK(n < sizeof(r->esc));
	if (n > 0) {
		FUZZ_CHECK(r->esc[0] == '0' + r->code / 100);
		for (size_t i = 0; i < n; i++)
			FUZZ_CHECK(isdigit((unsigned char)r->esc[i]) ||
			    r->esc[i] == '.');
	}
	FUZZ_CHECK(strnlen(r->text, sizeof(r->text)) < sizeof(r->text));
}

static void
check_mapped(const struct smtp_reply *r, bool utf8, size_t small)
{
	char out[SMTP_REPLY_TEXT_MAX + 32], *tiny;
	size_t n;
	int cls;

	/* proxy.c's buffers are SMTP_REPLY_TEXT_MAX + 32 */
	memset(out, 'X', sizeof(out));
	fwd_map_reply(r, utf8, out, sizeof(out));
	n = strnlen(out, sizeof(out));
	FUZZ_CHECK(n < sizeof(out));
	FUZZ_CHECK(n >= 4 + 6 && n <= 3 + 1 + 15 + 1 + 400);
	for (size_t i = 0; i < n; i++)
		FUZZ_CHECKF((unsigned char)out[i] >= 0x20 &&
		    (unsigned char)out[i] != 0x7f, "control octet %02x in %s",
		    (unsigned char)out[i], out);
	if (!utf8)
		FUZZ_CHECK(str_is_ascii(out, n));
	else
		FUZZ_CHECKF(utf8_valid(out, n), "invalid UTF-8: %s", out);
	FUZZ_CHECK(isdigit((unsigned char)out[0]) && isdigit((unsigned char)
	    out[1]) && isdigit((unsigned char)out[2]) && out[3] == ' ');
	cls = out[0] - '0';
	FUZZ_CHECK(cls == 2 || cls == 4 || cls == 5);
	FUZZ_CHECK(out[4] == out[0] && out[5] == '.');

	/*
	 * a short, valid text of a 2xx/4xx/5xx reply reaches an SMTPUTF8
	 * client whole (other classes become "451 4.4.2 Unexpected ...")
	 */
	{
		size_t tl = strlen(r->text);
		int rc = r->code / 100;

		if (utf8 && tl > 0 && tl <= 400 && utf8_valid(r->text, tl) &&
		    (rc == 2 || rc == 4 || rc == 5)) {
			char want[SMTP_REPLY_TEXT_MAX];

			for (size_t i = 0; i <= tl; i++)
				want[i] = ((unsigned char)r->text[i] < 0x20 &&
				    r->text[i] != '\0') || r->text[i] == 0x7f ?
				    ' ' : r->text[i];
			FUZZ_CHECKF(n >= tl && strcmp(out + n - tl, want) == 0,
			    "text [%s] mapped to [%s]", r->text, out);
		}
	}

	tiny = malloc(small);
	fwd_map_reply(r, utf8, tiny, small);
	FUZZ_CHECK(strnlen(tiny, small) < small);
	FUZZ_CHECK(strncmp(tiny, out, strlen(tiny)) == 0);
	free(tiny);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_reply r;
	const uint8_t *p, *end;
	size_t octets = 0, small;
	bool utf8;

	if (size < 1)
		return 0;
	utf8 = data[0] & 1;
	small = 1 + ((data[0] >> 1) & 63);
	p = data + 1;
	end = data + size;
	memset(&r, 0, sizeof(r));
	while (p < end) {
		const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len;
		char *line;
		enum smtp_parse st;

		if (nl == NULL)
			break;		/* no complete line: the client waits */
		len = (size_t)(nl - p);
		if (len > 0 && p[len - 1] == '\r')
			len--;
		/* evbuffer_readln gives a malloc'd copy, NUL-terminated */
		line = fuzz_str(p, len);
		p = nl + 1;
		octets += len;
		st = smtp_reply_parse(&r, line, len);
		free(line);
		if (st == SMTP_PARSE_ERROR || octets > SMTP_REPLY_MAX) {
			/* the client gives up on this server */
			memset(&r, 0, sizeof(r));
			octets = 0;
			continue;
		}
		check_reply(&r);
		if (st == SMTP_PARSE_DONE) {
			check_mapped(&r, utf8, small);
			memset(&r, 0, sizeof(r));
			octets = 0;
		}
	}
	/* a reply of class 1 or 3 (354 to DATA is handled before mapping) */
	memset(&r, 0, sizeof(r));
	r.code = (data[0] & 0x80) ? 354 : 199;
	check_mapped(&r, utf8, small);
	return 0;
}
