/*
 * reply_map.c - smtp_reply_map (reply_map.h): the one table by which a
 * next server's reply becomes ours (doc/forwarding.md), for forward/ and
 * for LMTP delivery (local/lmtp.c).
 */
#include <stdio.h>
#include <string.h>

#include "../common/addr.h"
#include "../common/util.h"
#include "reply_map.h"

void
smtp_reply_map(const struct smtp_reply *r, bool utf8, char *out, size_t size)
{
	char text[SMTP_REPLY_TEXT_MAX];
	char esc[16];
	size_t o = 0;

	if (smtp_reply_class(r) == SMTP_CLASS_ODD) {
		bsnprintf(out, size, "451 4.4.2 Unexpected reply from the "
		    "next server (%d)", r->code);
		return;
	}
	smtp_reply_status(r, esc, sizeof(esc));
	bool cut = false;

	for (const unsigned char *p = (const unsigned char *)r->text; *p; p++) {
		if (o + 1 >= sizeof(text) || o >= 400) {
			cut = true;
			break;
		}
		if (*p < 0x20 || *p == 0x7f)
			text[o++] = ' ';
		else if (*p >= 0x80 && !utf8)
			text[o++] = '?';
		else
			text[o++] = (char)*p;
	}
	/* a text cut at the bound may end inside a UTF-8 sequence: drop it */
	if (cut) {
		while (o > 0 && ((unsigned char)text[o - 1] & 0xc0) == 0x80)
			o--;
		if (o > 0 && ((unsigned char)text[o - 1] & 0xc0) == 0xc0)
			o--;
	}
	text[o] = '\0';
	if (!utf8_valid(text, o))
		for (size_t i = 0; i < o; i++)
			if ((unsigned char)text[i] >= 0x80)
				text[i] = '?';
	bsnprintf(out, size, "%d %s %s", r->code, esc, o ? text : "(no text)");
}
