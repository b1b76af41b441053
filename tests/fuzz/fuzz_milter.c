/*
 * fuzz_milter - the milter reply parser (filter/milter.c milter_parse,
 * milter_reply_line) and the header change a parsed reply leads to
 * (smtpd/headedit.c head_edit), on what a milter sends.
 *
 * Input: the octets a milter sends, cut into packets as read_cb does
 * (four octets of length, at most MILTER_PACKET_MAX, then the command and
 * its data); each packet is parsed on its own copy.
 *
 * Checks: a parsed header change has a non-empty name of printable ASCII
 * without a colon, and head_edit on a small header section either
 * refuses it or gives a section of whole fields (every line ends in LF,
 * a line is a "name:" field or starts with a space or tab, no CR, no
 * empty line); a parsed SMFIR_REPLYCODE becomes one printable line
 * "4xx 4.y.z text" or "5xx 5.y.z text" that fits its buffer; nothing is
 * read past a packet.
 */
#include <ctype.h>

#include "filter/milter.h"
#include "fuzz.h"
#include "smtpd/headedit.h"

static const char head[] = "Received: from a\n\tby b\nSubject: hello\n"
    "X-Two: 1\nx-two: 2\nFrom: <a@b.example>\n";

static void
check_section(const char *h, size_t len)
{
	size_t p = 0;

	FUZZ_CHECK(strlen(h) == len);
	FUZZ_CHECK(memchr(h, '\r', len) == NULL);
	while (p < len) {
		const char *nl = memchr(h + p, '\n', len - p);
		size_t e;

		FUZZ_CHECK(nl != NULL);
		e = (size_t)(nl - h);
		FUZZ_CHECK(e > p);		/* no empty line */
		if (h[p] != ' ' && h[p] != '\t') {
			const char *colon = memchr(h + p, ':', e - p);

			FUZZ_CHECK(colon != NULL && colon > h + p);
			for (const char *c = h + p; c < colon; c++)
				FUZZ_CHECK(*c > ' ' && *c <= '~');
		} else
			FUZZ_CHECK(p > 0);
		p = e + 1;
	}
}

static void
check_edit(const struct milter_msg *m)
{
	enum head_op op = m->cmd == SMFIR_ADDHEADER ? HEAD_ADD :
	    m->cmd == SMFIR_INSHEADER ? HEAD_INSERT : HEAD_CHANGE;
	size_t len;
	char *out;

	FUZZ_CHECK(m->name[0] != '\0');
	for (const char *c = m->name; *c; c++)
		FUZZ_CHECK(*c > ' ' && *c <= '~' && *c != ':');
	out = head_edit(head, sizeof(head) - 1, op, m->index, m->name,
	    op == HEAD_CHANGE && m->value[0] == '\0' ? NULL : m->value, &len);
	if (out != NULL) {
		check_section(out, len);
		free(out);
	}
}

static void
check_reply(const struct milter_msg *m)
{
	char out[REPLY_LINE_MAX], small[24];

	FUZZ_CHECK(m->text[0] == '4' || m->text[0] == '5');
	milter_reply_line(m->text, out, sizeof(out));
	FUZZ_CHECK(strlen(out) < sizeof(out));
	FUZZ_CHECK(out[0] == m->text[0] && isdigit((unsigned char)out[1]) &&
	    isdigit((unsigned char)out[2]) && out[3] == ' ');
	FUZZ_CHECK(out[4] == out[0] && out[5] == '.');
	for (const char *c = out; *c; c++)
		FUZZ_CHECK(*c >= ' ' && *c <= '~');
	milter_reply_line(m->text, small, sizeof(small));
	FUZZ_CHECK(strlen(small) < sizeof(small));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0;

	while (size - off >= 4) {
		uint32_t len = (uint32_t)data[off] << 24 |
		    (uint32_t)data[off + 1] << 16 |
		    (uint32_t)data[off + 2] << 8 | data[off + 3];
		struct milter_msg m;
		char *pkt;

		off += 4;
		if (len == 0 || len > MILTER_PACKET_MAX || len > size - off)
			break;		/* read_cb fails the milter here */
		/* exactly len octets (+ the NUL read_cb adds), so ASan sees overreads */
		pkt = malloc(len + 1);
		memcpy(pkt, data + off, len);
		pkt[len] = '\0';
		off += len;
		if (milter_parse(pkt, len, &m)) {
			switch (m.cmd) {
			case SMFIR_ADDHEADER:
			case SMFIR_INSHEADER:
			case SMFIR_CHGHEADER:
				check_edit(&m);
				break;
			case SMFIR_REPLYCODE:
				check_reply(&m);
				break;
			}
		}
		free(pkt);
	}
	return 0;
}
