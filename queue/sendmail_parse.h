/*
 * sendmail_parse.h - the pure parts of chamois-sendmail (queue/sendmail.c)
 * and of the submit socket (queue/submit.c): reading a message from stdin
 * into LF form, the header section, the addresses of To, Cc and Bcc
 * (for -t, parsed by common/addrlist.c) and the From: field
 * chamois-sendmail adds.  No I/O, no globals.
 */
#ifndef CHAMOIS_SENDMAIL_PARSE_H
#define CHAMOIS_SENDMAIL_PARSE_H

#include <stdbool.h>
#include <stddef.h>

#include "../common/addrlist.h"

/*
 * Reading stdin: CRLF becomes LF; unless ignore_dots, a line holding only
 * "." ends the message (what follows is not read); a leading mbox
 * "From " line is dropped; a last line without a line end gets one.  A
 * line with a NUL octet sets nul (its number in nul_line) and nothing more
 * is taken: the message is refused (doc/chamois-sendmail.8), since a
 * server that drops NUL could read <LF>NUL.<LF> as the end of data.
 */
struct sm_input {
	char *buf;		/* the message so far, LF form */
	size_t len, cap;
	char *line;		/* a line not complete yet */
	size_t linelen, linecap;
	bool ignore_dots;	/* -i, -oi */
	bool done;		/* the "." line was seen */
	bool first;		/* no line was taken yet */
	size_t max;		/* more than this: too_big (0: no limit) */
	bool too_big;		/* input past max was dropped */
	size_t lines;		/* lines taken so far */
	bool nul;		/* a line held a NUL octet */
	size_t nul_line;	/* its number, from 1 */
};

void sm_input_init(struct sm_input *, bool ignore_dots, size_t max);
/* sm_input_feed - n octets of input; true once the message is complete */
bool sm_input_feed(struct sm_input *, const char *, size_t n);
/* sm_input_finish - end of input: take a last line without a line end */
void sm_input_finish(struct sm_input *);
void sm_input_free(struct sm_input *);

/* what one line of a message is, seen from the header section */
enum sm_hline {
	SM_H_FIELD,	/* "Name: value" */
	SM_H_CONT,	/* a continuation line of the field before */
	SM_H_BLANK,	/* the empty line that ends the header section */
	SM_H_OTHER,	/* not a header line: the body starts here */
};

/*
 * sm_line_kind - classify line[0..len) (its LF excluded); in_field tells
 * whether a field came before (a line starting with a blank is then a
 * continuation, else body)
 */
enum sm_hline sm_line_kind(const char *line, size_t len, bool in_field);

/*
 * sm_header_len - octets of the header section of msg[0..len), the blank
 * line after it included; *blank says whether there was one (false: the
 * message has no body, or its body starts with a line that is no header)
 */
size_t sm_header_len(const char *msg, size_t len, bool *blank);

/* sm_header_has - a field called name (any case) in hdr[0..len) */
bool sm_header_has(const char *hdr, size_t len, const char *name);

/*
 * sm_header_rcpts - the addresses of every To, Cc and Bcc field of the
 * header section hdr[0..len), as addr_list_parse gives them (-t)
 */
int sm_header_rcpts(const char *hdr, size_t len, const char *domain,
    struct addr_list *out, char *err, size_t errsize);

/*
 * sm_remove_field - msg[0..len) without the fields called name in its
 * header section (continuation lines included); everything else byte for
 * byte.  Returns a malloc'd buffer and *outlen.
 */
char *sm_remove_field(const char *msg, size_t len, const char *name,
    size_t *outlen);

/*
 * sm_from_field - "From: Full Name <addr>\n" (malloc'd): the name made
 * safe (control characters dropped), quoted when it holds specials and
 * RFC 2047-encoded when it is not ASCII; "From: addr\n" without a name
 */
char *sm_from_field(const char *fullname, const char *addr);

#endif
