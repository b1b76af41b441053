/*
 * dataphase.c - scanning the octets that follow DATA.
 *
 * data_scan() is a byte-at-a-time state machine over the wire form: it
 * finds <CRLF>.<CRLF>, undoes dot-stuffing (RFC 5321 4.5.2), turns CRLF
 * into LF for Maildir, measures lines against RFC 5321 4.5.3.1.6 and
 * stops at the first bare CR, bare LF or NUL (NUL is obsolete syntax,
 * RFC 5322 4.1, and not allowed in 8bit data, RFC 2045 2.8).  header_scan() reads the LF form
 * of the header section for loop detection (RFC 5321 6.3); header_filter()
 * holds back the Authentication-Results fields of that section until each
 * is complete, to remove those that name our host (RFC 8601 5).
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "../common/limits.h"
#include "../common/util.h"
#include "dataphase.h"

enum {
	DS_BOL,		/* at the start of a line */
	DS_TEXT,	/* inside a line */
	DS_CR,		/* CR seen inside a line */
	DS_DOT,		/* '.' at the start of a line */
	DS_DOT_CR,	/* ".\r" at the start of a line */
};

void
data_scanner_init(struct data_scanner *sc)
{
	memset(sc, 0, sizeof(*sc));
	/* DATA's reply ends a line, so the message starts at a line start */
	sc->state = DS_BOL;
}

static inline void
line_octet(struct data_scanner *sc)
{
	if (++sc->line_len > TEXT_LINE_MAX)
		sc->long_line = true;
}

size_t
data_scan(struct data_scanner *sc, const char *in, size_t len, char *out,
    size_t *outlen, enum data_status *st)
{
	size_t i, o = 0;

	*st = DATA_MORE;
	for (i = 0; i < len; i++) {
		char c = in[i];

		switch (sc->state) {
		case DS_BOL:
			sc->line_len = 0;
			if (c == '.') {
				line_octet(sc);
				sc->state = DS_DOT;
				continue;
			}
			sc->state = DS_TEXT;
			/* FALLTHROUGH */
		case DS_TEXT:
			line_octet(sc);
			if (c == '\r') {
				sc->state = DS_CR;
			} else if (c == '\n') {
				*st = DATA_BARE_LF;
				goto out;
			} else if (c == '\0') {
				*st = DATA_NUL;
				goto out;
			} else {
				out[o++] = c;
				sc->octets++;
			}
			break;
		case DS_CR:
			line_octet(sc);
			if (c != '\n') {
				*st = DATA_BARE_CR;
				goto out;
			}
			out[o++] = '\n';
			sc->octets += 2;
			sc->state = DS_BOL;
			break;
		case DS_DOT:
			line_octet(sc);
			if (c == '\r') {
				sc->state = DS_DOT_CR;
			} else if (c == '\n') {
				*st = DATA_BARE_LF;
				goto out;
			} else if (c == '\0') {
				*st = DATA_NUL;
				goto out;
			} else {
				/* the stuffed dot is dropped */
				out[o++] = c;
				sc->octets++;
				sc->state = DS_TEXT;
			}
			break;
		case DS_DOT_CR:
			if (c != '\n') {
				*st = DATA_BARE_CR;
				goto out;
			}
			*st = DATA_END;
			i++;
			goto out;
		}
	}
out:
	*outlen = o;
	return i;
}

void
header_scanner_init(struct header_scanner *h, const char *hostname)
{
	memset(h, 0, sizeof(*h));
	h->hostname = hostname;
	h->at_bol = true;
}

void
header_scanner_free(struct header_scanner *h)
{
	for (size_t i = 0; i < h->ndelivered; i++)
		free(h->delivered_to[i]);
	for (size_t i = 0; i < h->nours; i++)
		free(h->ours_for[i]);
	h->ndelivered = h->nours = 0;
}

/* header_value - the value of field name in line, or NULL */
static const char *
header_value(const char *line, size_t len, const char *name)
{
	if (!header_field_is(line, len, name))
		return NULL;
	return strchr(line, ':') + 1;
}

/*
 * angle_addr - the address inside the first <...> at or after s; a '>'
 * inside a quoted local part ("a>b"@x) does not end it
 */
static char *
angle_addr(const char *s)
{
	const char *lt = strchr(s, '<'), *p;
	bool quoted = false;

	if (lt == NULL)
		return NULL;
	for (p = lt + 1; *p; p++) {
		if (quoted && *p == '\\' && p[1] != '\0')
			p++;
		else if (*p == '"')
			quoted = !quoted;
		else if (*p == '>' && !quoted)
			return xstrndup(lt + 1, (size_t)(p - lt - 1));
	}
	return NULL;
}

/* ours - a Received field written by this server: "by HOSTNAME (chamois)" */
static bool
ours(const struct header_scanner *h, const char *v)
{
	char mark[300];

	return h->hostname && bsnprintf(mark, sizeof(mark), "by %s (chamois)",
	    h->hostname) && strcasestr(v, mark) != NULL;
}

/* header_field - one whole (unfolded) field has been read */
static void
header_field(struct header_scanner *h)
{
	const char *v;

	h->field[h->fieldlen] = '\0';
	if ((v = header_value(h->field, h->fieldlen, "Received")) != NULL) {
		const char *f;
		char *a;

		h->received++;
		if (ours(h, v) && h->nours < HEADER_KEEP_MAX &&
		    (f = strstr(v, " for <")) != NULL && (a = angle_addr(f)) != NULL)
			h->ours_for[h->nours++] = a;
	} else if ((v = header_value(h->field, h->fieldlen, "Delivered-To")) != NULL &&
	    h->ndelivered < HEADER_KEEP_MAX) {
		char *val = xstrdup(v), *s = str_trim(val);
		size_t n = strlen(s);

		if (s[0] == '<' && n > 1 && s[n - 1] == '>') {
			s[n - 1] = '\0';
			s++;
		}
		h->delivered_to[h->ndelivered++] = xstrdup(s);
		free(val);
	}
	h->fieldlen = 0;
}

void
header_scan(struct header_scanner *h, const char *text, size_t len)
{
	for (size_t i = 0; i < len && !h->done; i++) {
		unsigned char c = (unsigned char)text[i];

		if (h->at_bol) {
			h->at_bol = false;
			if (c == ' ' || c == '\t') {
				/* a continuation line: unfold into the field */
				if (h->fieldlen < HEADER_FIELD_KEEP)
					h->field[h->fieldlen++] = ' ';
				h->in_field = true;
				continue;
			} else if (h->in_field) {
				header_field(h);
				h->in_field = false;
			}
			if (c == '\n') {
				/* the empty line: end of the header section */
				h->done = true;
				return;
			}
			h->in_field = true;
		}
		if (c == '\n') {
			h->at_bol = true;
			continue;
		}
		if (c >= 0x80)
			h->non_ascii = true;
		if (h->fieldlen < HEADER_FIELD_KEEP)
			h->field[h->fieldlen++] = c == '\t' ? ' ' : (char)c;
	}
}

void
header_scan_end(struct header_scanner *h)
{
	if (!h->done && h->in_field)
		header_field(h);
	h->in_field = false;
	h->done = true;
}

/* the field being read, for header_filter */
enum {
	HF_NONE,	/* no field yet, or one that passed and is over */
	HF_NAME,	/* a field's name is being read into hold[] */
	HF_PASS,	/* a field that is not held: it passes */
	HF_HOLD,	/* an Authentication-Results field, in hold[] */
	HF_DROP,	/* one that outgrew hold[]: removed */
};

void
header_filter_init(struct header_filter *f, header_drop_fn drop, void *arg)
{
	memset(f, 0, sizeof(*f));
	f->drop = drop;
	f->arg = arg;
	f->at_bol = true;
}

/*
 * name_state - hold[] is the start of a field line: HF_HOLD once it is
 * "Authentication-Results" and its colon (WSP before the colon is the
 * obsolete syntax, RFC 5322 4.5.3), HF_NAME while it may still become
 * that, HF_PASS when it cannot
 */
static int
name_state(const struct header_filter *f)
{
	static const char want[] = HEADER_HOLD_NAME;
	size_t n = f->holdlen, i;

	for (i = 0; i < n && i < sizeof(want) - 1; i++)
		if (tolower((unsigned char)f->hold[i]) != tolower((unsigned char)want[i]))
			return HF_PASS;
	if (i < sizeof(want) - 1)
		return HF_NAME;
	for (; i < n; i++) {
		if (f->hold[i] == ':')
			return i == n - 1 ? HF_HOLD : HF_PASS;
		if (f->hold[i] != ' ' && f->hold[i] != '\t')
			return HF_PASS;
	}
	return HF_NAME;
}

/* held_done - the held field is complete: it passes or goes */
static size_t
held_done(struct header_filter *f, char *out)
{
	size_t n = 0;

	if (f->mode == HF_HOLD) {
		if (f->drop(f->arg, f->hold, f->holdlen))
			f->dropped++;
		else {
			memcpy(out, f->hold, f->holdlen);
			n = f->holdlen;
		}
	} else if (f->mode == HF_NAME) {
		memcpy(out, f->hold, f->holdlen);
		n = f->holdlen;
	}
	f->holdlen = 0;
	f->mode = HF_NONE;
	return n;
}

/*
 * hold - one more octet of a held field (or of a name): past the room the
 * field is removed whole (a name that long matched the whole name, then
 * blanks before its colon)
 */
static void
hold(struct header_filter *f, char c)
{
	if (f->holdlen == sizeof(f->hold)) {
		f->mode = HF_DROP;
		f->dropped++;
		f->overlong++;
		f->holdlen = 0;
		return;
	}
	f->hold[f->holdlen++] = c;
}

size_t
header_filter(struct header_filter *f, const char *in, size_t len, char *out)
{
	size_t o = 0, i;

	for (i = 0; i < len && !f->done; i++) {
		char c = in[i];

		if (f->at_bol) {
			f->at_bol = false;
			if (c != ' ' && c != '\t') {
				/* not a continuation: the field before is complete */
				o += held_done(f, out + o);
				if (c == '\n') {
					/* the empty line: the header section is over */
					f->done = true;
					out[o++] = c;
					continue;
				}
				f->mode = HF_NAME;
			}
		}
		if (c == '\n')
			f->at_bol = true;
		switch (f->mode) {
		case HF_NAME:
			hold(f, c);
			if (f->mode != HF_NAME)
				break;
			if (c == '\n' || name_state(f) == HF_PASS) {
				memcpy(out + o, f->hold, f->holdlen);
				o += f->holdlen;
				f->holdlen = 0;
				f->mode = HF_PASS;
			} else if (name_state(f) == HF_HOLD)
				f->mode = HF_HOLD;
			break;
		case HF_HOLD:
			hold(f, c);
			break;
		case HF_DROP:
			break;
		default:
			out[o++] = c;
			break;
		}
	}
	memcpy(out + o, in + i, len - i);
	return o + (len - i);
}

size_t
header_filter_end(struct header_filter *f, char *out)
{
	size_t n = f->done ? 0 : held_done(f, out);

	f->done = true;
	return n;
}
