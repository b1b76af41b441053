/*
 * test_dataphase.c - the DATA phase (smtpd/dataphase.c): the only end of
 * data is <CRLF>.<CRLF>, dot-stuffing is undone, CRLF becomes LF, and a
 * bare CR or LF, or a NUL, stops the scan where it is (SMTP smuggling).  Every case
 * is fed whole, one octet at a time and split in two at every offset; the
 * results must be the same.  Then the header scanner.
 */
#include <string.h>

#include "common/limits.h"
#include "smtpd/dataphase.h"
#include "unit.h"

static const char *
status_name(enum data_status st)
{
	switch (st) {
	case DATA_MORE:		return "DATA_MORE";
	case DATA_END:		return "DATA_END";
	case DATA_BARE_CR:	return "DATA_BARE_CR";
	case DATA_BARE_LF:	return "DATA_BARE_LF";
	case DATA_NUL:		return "DATA_NUL";
	}
	return "?";
}

/* the outcome of scanning one input */
struct scan_result {
	enum data_status st;
	size_t consumed;
	char *out;
	size_t outlen;
	uint64_t octets;
	bool long_line;
};

/*
 * scan_chunks - feed in[0..len) in chunks of at most step octets (0: all
 * at once), or split at split if split_at is set, stopping at the first
 * status other than DATA_MORE, as the session does.
 */
static void
scan_chunks(const char *in, size_t len, size_t step, bool split_at, size_t split,
    struct scan_result *r)
{
	struct data_scanner sc;
	size_t off = 0;

	memset(r, 0, sizeof(*r));
	r->out = malloc(len + 1);
	assert_non_null(r->out);
	data_scanner_init(&sc);
	r->st = DATA_MORE;
	while (off < len) {
		size_t n = len - off, used, olen = 0;

		if (split_at)
			n = off < split ? split - off : len - off;
		else if (step && n > step)
			n = step;
		used = data_scan(&sc, in + off, n, r->out + r->outlen, &olen, &r->st);
		assert_true(used <= n);
		assert_true(olen <= used);
		r->outlen += olen;
		off += used;
		if (r->st != DATA_MORE)
			break;
		assert_int_equal(used, n);	/* DATA_MORE consumes everything */
	}
	r->consumed = off;
	r->octets = sc.octets;
	r->long_line = sc.long_line;
}

static void
assert_same_result(const struct scan_result *a, const struct scan_result *b,
    const char *how)
{
	if (a->st != b->st || a->consumed != b->consumed || a->outlen != b->outlen ||
	    memcmp(a->out, b->out, a->outlen) != 0 || a->octets != b->octets ||
	    a->long_line != b->long_line)
		fail_msg("%s differs from whole: %s/%zu/%zu/%llu/%d vs %s/%zu/%zu/%llu/%d",
		    how, status_name(b->st), b->consumed, b->outlen,
		    (unsigned long long)b->octets, b->long_line,
		    status_name(a->st), a->consumed, a->outlen,
		    (unsigned long long)a->octets, a->long_line);
}

/* check_scan - every way of feeding in gives the wanted result */
static void
check_scan(const char *in, size_t len, enum data_status want_st, size_t want_consumed,
    const char *want_out, size_t want_outlen, uint64_t want_octets, bool want_long)
{
	struct scan_result whole, r;
	char how[64];

	scan_chunks(in, len, 0, false, 0, &whole);
	if (whole.st != want_st)
		fail_msg("status %s, want %s", status_name(whole.st), status_name(want_st));
	assert_int_equal(whole.consumed, want_consumed);
	if (want_out != NULL) {
		assert_int_equal(whole.outlen, want_outlen);
		assert_memory_equal(whole.out, want_out, want_outlen);
	}
	assert_int_equal(whole.octets, want_octets);
	assert_int_equal(whole.long_line, want_long);

	scan_chunks(in, len, 1, false, 0, &r);
	assert_same_result(&r, &whole, "byte by byte");
	free(r.out);
	scan_chunks(in, len, 7, false, 0, &r);
	assert_same_result(&r, &whole, "7-octet chunks");
	free(r.out);
	for (size_t k = 1; k < len; k++) {
		scan_chunks(in, len, 0, true, k, &r);
		snprintf(how, sizeof(how), "split at %zu", k);
		assert_same_result(&r, &whole, how);
		free(r.out);
	}
	free(whole.out);
}

struct data_case {
	const char *label;
	const char *in;
	size_t len;		/* 0: strlen(in) */
	enum data_status st;
	size_t consumed;	/* (size_t)-1: all of in */
	const char *out;	/* LF form; NULL: "" */
	size_t outlen;		/* 0: strlen(out) */
	uint64_t octets;
	bool long_line;
	const char *bug;
};

#define ALL ((size_t)-1)

static const struct data_case data_cases[] = {
	{ .label = "data: simple message",
	  .in = "Subject: hi\r\n\r\nbody\r\n.\r\n", .st = DATA_END, .consumed = ALL,
	  .out = "Subject: hi\n\nbody\n", .octets = 21 },
	{ .label = "data: empty message", .in = ".\r\n", .st = DATA_END, .consumed = ALL,
	  .octets = 0 },
	{ .label = "data: one empty line", .in = "\r\n.\r\n", .st = DATA_END, .consumed = ALL,
	  .out = "\n", .octets = 2 },
	{ .label = "data: dot-stuffing undone",
	  .in = "..hidden\r\n...two\r\n.x\r\n.\r\n", .st = DATA_END, .consumed = ALL,
	  .out = ".hidden\n..two\nx\n", .octets = 19 },
	{ .label = "data: a lone stuffed dot line", .in = "..\r\n.\r\n", .st = DATA_END,
	  .consumed = ALL, .out = ".\n", .octets = 3 },
	{ .label = "data: dot not at line start kept", .in = "a.b\r\nc.\r\n.\r\n",
	  .st = DATA_END, .consumed = ALL, .out = "a.b\nc.\n", .octets = 9 },
	{ .label = "data: dot then space is text", .in = ". \r\n.\r\n", .st = DATA_END,
	  .consumed = ALL, .out = " \n", .octets = 3 },
	{ .label = "data: octets after the end not consumed",
	  .in = "a\r\n.\r\nQUIT\r\n", .st = DATA_END, .consumed = 6, .out = "a\n", .octets = 3 },
	{ .label = "data: a second end not consumed",
	  .in = "a\r\n.\r\n.\r\n", .st = DATA_END, .consumed = 6, .out = "a\n", .octets = 3 },
	{ .label = "data: pipelined MAIL after the end",
	  .in = ".\r\nMAIL FROM:<x@example.org>\r\n", .st = DATA_END, .consumed = 3, .octets = 0 },
	{ .label = "data: no end yet", .in = "a\r\nb\r\n", .st = DATA_MORE, .consumed = ALL,
	  .out = "a\nb\n", .octets = 6 },
	{ .label = "data: ends inside a line", .in = "a\r\nbc", .st = DATA_MORE,
	  .consumed = ALL, .out = "a\nbc", .octets = 5 },
	{ .label = "data: ends after CR", .in = "a\r", .st = DATA_MORE, .consumed = ALL,
	  .out = "a", .octets = 1 },
	{ .label = "data: ends after the dot", .in = "a\r\n.", .st = DATA_MORE,
	  .consumed = ALL, .out = "a\n", .octets = 3 },
	{ .label = "data: ends after dot CR", .in = "a\r\n.\r", .st = DATA_MORE,
	  .consumed = ALL, .out = "a\n", .octets = 3 },
	{ .label = "data: 8-bit octets pass", .in = "caf\xc3\xa9\x01\x7f\xff\r\n.\r\n",
	  .st = DATA_END, .consumed = ALL, .out = "caf\xc3\xa9\x01\x7f\xff\n", .octets = 10 },
	/*
	 * NUL stops the scan as a bare CR or LF does (doc/protocol.md,
	 * "Message content"): a next hop that drops NUL would read
	 * <CRLF>NUL.<CRLF> as the end of data
	 */
	{ .label = "nul: inside a line", .in = "caf\xc3\xa9\0x\r\n.\r\n", .len = 12,
	  .st = DATA_NUL, .consumed = 5, .out = "caf\xc3\xa9", .octets = 5 },
	{ .label = "nul: <CRLF>NUL.<CRLF> then MAIL",
	  .in = "a\r\n\0.\r\nMAIL FROM:<x@example.org>\r\n", .len = 34,
	  .st = DATA_NUL, .consumed = 3, .out = "a\n", .octets = 3 },
	{ .label = "nul: <CRLF>.NUL<CRLF>", .in = "a\r\n.\0\r\n.\r\n", .len = 10,
	  .st = DATA_NUL, .consumed = 4, .out = "a\n", .octets = 3 },
	{ .label = "nul: <CRLF>NUL.NUL<CRLF>", .in = "a\r\n\0.\0\r\n", .len = 8,
	  .st = DATA_NUL, .consumed = 3, .out = "a\n", .octets = 3 },
	{ .label = "nul: first octet", .in = "\0.\r\n", .len = 4, .st = DATA_NUL,
	  .consumed = 0, .octets = 0 },
	{ .label = "nul: after a stuffed dot", .in = "..\0\r\n.\r\n", .len = 8,
	  .st = DATA_NUL, .consumed = 2, .out = ".", .octets = 1 },
	{ .label = "nul: in the header section", .in = "Subject: a\0b\r\n\r\nx\r\n.\r\n",
	  .len = 22, .st = DATA_NUL, .consumed = 10, .out = "Subject: a", .octets = 10 },
	{ .label = "nul: after CR is a bare CR", .in = "a\r\0\n.\r\n", .len = 7,
	  .st = DATA_BARE_CR, .consumed = 2, .out = "a", .octets = 1 },
	{ .label = "nul: after <CRLF>.<CR> is a bare CR", .in = "a\r\n.\r\0\n", .len = 7,
	  .st = DATA_BARE_CR, .consumed = 5, .out = "a\n", .octets = 3 },
	{ .label = "nul: after the end not consumed", .in = "a\r\n.\r\n\0", .len = 7,
	  .st = DATA_END, .consumed = 6, .out = "a\n", .octets = 3 },
	/* smuggling: only <CRLF>.<CRLF> ends; a bare CR or LF stops at once */
	{ .label = "smuggling: <LF>.<LF>", .in = "a\n.\nMAIL FROM:<x@example.org>\r\n",
	  .st = DATA_BARE_LF, .consumed = 1, .out = "a", .octets = 1 },
	{ .label = "smuggling: <CRLF>.<LF>", .in = "a\r\n.\nMAIL FROM:<x@example.org>\r\n",
	  .st = DATA_BARE_LF, .consumed = 4, .out = "a\n", .octets = 3 },
	{ .label = "smuggling: <LF>.<CRLF>", .in = "a\n.\r\nMAIL FROM:<x@example.org>\r\n",
	  .st = DATA_BARE_LF, .consumed = 1, .out = "a", .octets = 1 },
	{ .label = "smuggling: <CR>.<CRLF>", .in = "a\r.\r\nMAIL FROM:<x@example.org>\r\n",
	  .st = DATA_BARE_CR, .consumed = 2, .out = "a", .octets = 1 },
	{ .label = "smuggling: <CRLF>.<CR> then text", .in = "a\r\n.\rMAIL FROM:<x@example.org>\r\n",
	  .st = DATA_BARE_CR, .consumed = 5, .out = "a\n", .octets = 3 },
	{ .label = "smuggling: <CRLF>.<CR><CR><LF>", .in = "a\r\n.\r\r\n",
	  .st = DATA_BARE_CR, .consumed = 5, .out = "a\n", .octets = 3 },
	{ .label = "smuggling: <CRLF>.<CR>.<CRLF>", .in = "a\r\n.\r.\r\n",
	  .st = DATA_BARE_CR, .consumed = 5, .out = "a\n", .octets = 3 },
	{ .label = "smuggling: <LF> first", .in = "\n.\r\n", .st = DATA_BARE_LF, .consumed = 0,
	  .octets = 0 },
	{ .label = "smuggling: <CR> first", .in = "\r.\r\n", .st = DATA_BARE_CR, .consumed = 1,
	  .octets = 0 },
	{ .label = "bare CR inside a line", .in = "ab\rcd\r\n.\r\n", .st = DATA_BARE_CR,
	  .consumed = 3, .out = "ab", .octets = 2 },
	{ .label = "bare CR before CRLF", .in = "ab\r\r\n.\r\n", .st = DATA_BARE_CR,
	  .consumed = 3, .out = "ab", .octets = 2 },
	{ .label = "bare LF after text", .in = "x\r\nab\ncd\r\n.\r\n", .st = DATA_BARE_LF,
	  .consumed = 5, .out = "x\nab", .octets = 5 },
	{ .label = "bare LF after a stuffed dot", .in = "..\n.\r\n", .st = DATA_BARE_LF,
	  .consumed = 2, .out = ".", .octets = 1 },
	{ .label = "bare CR after a stuffed dot", .in = "..\rx\r\n.\r\n", .st = DATA_BARE_CR,
	  .consumed = 3, .out = ".", .octets = 1 },
	{ .label = "bare LF after a bare-looking end", .in = "a\r\n\n.\r\n", .st = DATA_BARE_LF,
	  .consumed = 3, .out = "a\n", .octets = 3 },
};

static void
run_data_case(void **state)
{
	const struct data_case *c = *state;
	size_t len = c->len ? c->len : strlen(c->in);
	const char *out = c->out ? c->out : "";

	UNIT_BUG(c);
	check_scan(c->in, len, c->st, c->consumed == ALL ? len : c->consumed, out,
	    c->outlen ? c->outlen : strlen(out), c->octets, c->long_line);
}

/*
 * Line lengths (RFC 5321 4.5.3.1.6): 1000 octets with the CRLF.  Each
 * message is: lines of fill[i] octets of 'x' (a leading '.' stuffed when
 * dot is set), each with CRLF, then the end.
 */
struct long_case {
	const char *label;
	size_t fill[3];		/* 0 ends the list */
	bool dot;
	bool long_line;
	const char *bug;
};

static const struct long_case long_cases[] = {
	{ .label = "line: 1000 octets with CRLF", .fill = { 998 }, .long_line = false },
	{ .label = "line: 1001 octets with CRLF", .fill = { 999 }, .long_line = true },
	{ .label = "line: long, then short ones", .fill = { 999, 5, 5 }, .long_line = true },
	{ .label = "line: short, then 1000", .fill = { 5, 998 }, .long_line = false },
	{ .label = "line: several 1000-octet lines", .fill = { 998, 998, 998 },
	  .long_line = false },
	{ .label = "line: 100000 octets", .fill = { 100000 }, .long_line = true },
	{ .label = "line: stuffed, 1000 wire octets", .fill = { 997 }, .dot = true,
	  .long_line = false },
	{ .label = "line: stuffed, 1001 wire octets", .fill = { 998 }, .dot = true,
	  .long_line = true },
};

static void
run_long_case(void **state)
{
	const struct long_case *c = *state;
	size_t cap = 16, len = 0, outlen = 0;
	uint64_t octets = 0;
	char *in, *out;

	UNIT_BUG(c);
	for (size_t i = 0; i < 3 && c->fill[i]; i++)
		cap += c->fill[i] + 3;
	in = malloc(cap);
	out = malloc(cap);
	assert_non_null(in);
	assert_non_null(out);
	for (size_t i = 0; i < 3 && c->fill[i]; i++) {
		if (c->dot)
			in[len++] = '.';
		memset(in + len, 'x', c->fill[i]);
		len += c->fill[i];
		memcpy(in + len, "\r\n", 2);
		len += 2;
		memset(out + outlen, 'x', c->fill[i]);
		outlen += c->fill[i];
		out[outlen++] = '\n';
		octets += c->fill[i] + 2;
	}
	memcpy(in + len, ".\r\n", 3);
	len += 3;
	if (c->fill[0] > 10000) {
		/* too big for every split; whole and byte by byte only */
		struct scan_result whole, r;

		scan_chunks(in, len, 0, false, 0, &whole);
		assert_int_equal(whole.st, DATA_END);
		assert_int_equal(whole.consumed, len);
		assert_int_equal(whole.outlen, outlen);
		assert_memory_equal(whole.out, out, outlen);
		assert_int_equal(whole.long_line, c->long_line);
		scan_chunks(in, len, 1, false, 0, &r);
		assert_same_result(&r, &whole, "byte by byte");
		free(r.out);
		free(whole.out);
	} else
		check_scan(in, len, DATA_END, len, out, outlen, octets, c->long_line);
	free(in);
	free(out);
}

/* the octets counter carries across calls and counts the wire form */
static void
test_data_octets_across_calls(void **state)
{
	struct data_scanner sc;
	enum data_status st;
	char out[64];
	size_t olen, used;

	(void)state;
	data_scanner_init(&sc);
	used = data_scan(&sc, "abc\r", 4, out, &olen, &st);
	assert_int_equal(used, 4);
	assert_int_equal(st, DATA_MORE);
	assert_int_equal(olen, 3);
	used = data_scan(&sc, "\n..d\r\n.", 7, out, &olen, &st);
	assert_int_equal(used, 7);
	assert_int_equal(st, DATA_MORE);
	assert_int_equal(olen, 4);
	assert_memory_equal(out, "\n.d\n", 4);
	used = data_scan(&sc, "\r\nrest", 6, out, &olen, &st);
	assert_int_equal(used, 2);
	assert_int_equal(st, DATA_END);
	assert_int_equal(olen, 0);
	assert_int_equal(sc.octets, 9);
	/* an empty call changes nothing */
	data_scanner_init(&sc);
	used = data_scan(&sc, "", 0, out, &olen, &st);
	assert_int_equal(used, 0);
	assert_int_equal(olen, 0);
	assert_int_equal(st, DATA_MORE);
}

/* header_scan */

struct header_case {
	const char *label;
	const char *in;		/* LF form */
	unsigned received;
	const char *delivered[4];	/* NULL-terminated */
	bool done;
	bool non_ascii;
	const char *bug;
};

static const struct header_case header_cases[] = {
	{ .label = "header: Received counted",
	  .in = "Received: from a\nReceived: from b\nSubject: x\n\nbody\n",
	  .received = 2, .done = true },
	{ .label = "header: Received in any case",
	  .in = "RECEIVED: a\nreceived: b\nReCeIvEd:c\n\n", .received = 3, .done = true },
	{ .label = "header: look-alike fields not counted",
	  .in = "Received-SPF: pass\nX-Received: y\nReceivedx: z\nSubject: Received: no\n\n",
	  .received = 0, .done = true },
	{ .label = "header: blanks before the colon are the same field (RFC 5322 4.5.3)",
	  .in = "Received : a\nReceived\t: b\nDelivered-To :  <c@example.org>\n\n",
	  .received = 2, .delivered = { "c@example.org" }, .done = true },
	{ .label = "header: folded Received counted once",
	  .in = "Received: from a\n\tby b\n    with ESMTP\n\n", .received = 1, .done = true },
	{ .label = "header: Received in the body not counted",
	  .in = "Received: a\n\nReceived: b\nReceived: c\n", .received = 1, .done = true },
	{ .label = "header: no blank line before the end",
	  .in = "Received: a\nReceived: b\n", .received = 2, .done = true },
	{ .label = "header: folded field counted once",
	  .in = "Received: a\n\tb\nReceived: c\n  d\n\n", .received = 2, .done = true },
	{ .label = "header: empty message", .in = "\n", .done = true },
	{ .label = "header: Delivered-To values",
	  .in = "Delivered-To: alice@example.org\nDelivered-To: <bob@example.org>\n"
	      "delivered-to:   carol@example.org  \nDELIVERED-TO:<dave@example.org>\n\n",
	  .delivered = { "alice@example.org", "bob@example.org", "carol@example.org",
	      "dave@example.org" }, .done = true },
	{ .label = "header: Delivered-To in the body ignored",
	  .in = "Delivered-To: alice@example.org\n\nDelivered-To: bob@example.org\n",
	  .delivered = { "alice@example.org" }, .done = true },
	{ .label = "header: X-Delivered-To ignored",
	  .in = "X-Delivered-To: alice@example.org\nDelivered-Top: x\n\n", .done = true },
	{ .label = "header: non-ASCII in the header",
	  .in = "Subject: caf\xc3\xa9\n\n", .done = true, .non_ascii = true },
	{ .label = "header: non-ASCII in the body only",
	  .in = "Subject: cafe\n\ncaf\xc3\xa9\n", .done = true, .non_ascii = false },
};

static void
check_header(const struct header_case *c, size_t step)
{
	struct header_scanner h;
	size_t len = strlen(c->in), n = 0;

	header_scanner_init(&h, "mx.example.test");
	for (size_t off = 0; off < len; off += step)
		header_scan(&h, c->in + off, len - off < step ? len - off : step);
	header_scan_end(&h);
	assert_int_equal(h.received, c->received);
	assert_int_equal(h.done, c->done);
	assert_int_equal(h.non_ascii, c->non_ascii);
	while (n < nitems(c->delivered) && c->delivered[n])
		n++;
	assert_int_equal(h.ndelivered, n);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(h.delivered_to[i], c->delivered[i]);
	header_scanner_free(&h);
}

static void
run_header_case(void **state)
{
	const struct header_case *c = *state;

	UNIT_BUG(c);
	check_header(c, strlen(c->in) ? strlen(c->in) : 1);
	check_header(c, 1);
	check_header(c, 5);
}

/* many Received fields: all counted; Delivered-To: the first 64 kept */
static void
test_header_many(void **state)
{
	struct header_scanner h;
	char line[64];

	(void)state;
	header_scanner_init(&h, "mx.example.test");
	for (int i = 0; i < 150; i++) {
		snprintf(line, sizeof(line), "Received: from h%d\n", i);
		header_scan(&h, line, strlen(line));
	}
	for (int i = 0; i < HEADER_KEEP_MAX + 6; i++) {
		snprintf(line, sizeof(line), "Delivered-To: u%d@example.org\n", i);
		header_scan(&h, line, strlen(line));
	}
	header_scan(&h, "\nReceived: x\n", 13);
	assert_true(h.done);
	assert_int_equal(h.received, 150);
	assert_true(h.received > RECEIVED_MAX);
	assert_int_equal(h.ndelivered, HEADER_KEEP_MAX);
	assert_string_equal(h.delivered_to[0], "u0@example.org");
	assert_string_equal(h.delivered_to[HEADER_KEEP_MAX - 1], "u63@example.org");
	header_scanner_free(&h);
	assert_int_equal(h.ndelivered, 0);
}

/* a very long header line is cut, not overflowed, and later lines still count */
static void
test_header_long_line(void **state)
{
	struct header_scanner h;
	char *big = malloc(5000);

	(void)state;
	assert_non_null(big);
	memcpy(big, "X-Long: ", 8);
	memset(big + 8, 'y', 5000 - 9);
	big[4999] = '\n';
	header_scanner_init(&h, "mx.example.test");
	header_scan(&h, big, 5000);
	header_scan(&h, "Received: a\n\n", 14);
	assert_int_equal(h.received, 1);
	assert_true(h.done);
	header_scanner_free(&h);
	free(big);
}

/* header_filter: the message as every copy gets it */
static const struct filter_case {
	const char *label;
	const char *in, *out;
	unsigned dropped;
	const char *bug;
} filter_cases[] = {
	{ .label = "filter: a field naming us goes, folded lines with it",
	  .in = "Authentication-Results: mx.example.test;\n\tspf=pass\n  dkim=pass\n"
	      "Subject: x\n\nbody\n",
	  .out = "Subject: x\n\nbody\n", .dropped = 1 },
	{ .label = "filter: another host's field stays, byte for byte",
	  .in = "Authentication-Results: other.example;\n\tspf=fail\nSubject: x\n\n",
	  .out = "Authentication-Results: other.example;\n\tspf=fail\nSubject: x\n\n" },
	{ .label = "filter: any case, blanks before the colon (RFC 5322 4.5.3)",
	  .in = "AUTHENTICATION-RESULTS : mx.example.test; x\n"
	      "authentication-results:mx.example.test;y\nTo: a\n\n",
	  .out = "To: a\n\n", .dropped = 2 },
	{ .label = "filter: look-alike names pass",
	  .in = "Authentication-Results-X: mx.example.test;\nX-Authentication-Results: "
	      "mx.example.test;\nAuthentication: mx.example.test;\n\n",
	  .out = "Authentication-Results-X: mx.example.test;\nX-Authentication-Results: "
	      "mx.example.test;\nAuthentication: mx.example.test;\n\n" },
	{ .label = "filter: the body is never touched",
	  .in = "To: a\n\nAuthentication-Results: mx.example.test; x\n",
	  .out = "To: a\n\nAuthentication-Results: mx.example.test; x\n" },
	{ .label = "filter: the last field before the end of the message",
	  .in = "To: a\nAuthentication-Results: mx.example.test; x\n",
	  .out = "To: a\n", .dropped = 1 },
	{ .label = "filter: a kept field at the end of the message",
	  .in = "To: a\nAuthentication-Results: b.example; x",
	  .out = "To: a\nAuthentication-Results: b.example; x" },
	{ .label = "filter: a name cut by the end of the message",
	  .in = "To: a\nAuthentica", .out = "To: a\nAuthentica" },
	{ .label = "filter: a line without a colon passes",
	  .in = "Authentication-Results\nTo: a\n\n",
	  .out = "Authentication-Results\nTo: a\n\n" },
	{ .label = "filter: the one field of several that names us",
	  .in = "Authentication-Results: a.example; x\nAuthentication-Results: "
	      "mx.example.test; y\nAuthentication-Results: b.example; z\n\nq\n",
	  .out = "Authentication-Results: a.example; x\nAuthentication-Results: "
	      "b.example; z\n\nq\n", .dropped = 1 },
};

/* names_us - the test's drop(): the field's value starts with our name */
static bool
names_us(void *arg, const char *f, size_t n)
{
	const char *colon = memchr(f, ':', n);
	const char *v = colon + 1;

	while (*v == ' ')
		v++;
	return strncmp(v, "mx.example.test;", 16) == 0;
}

static void
check_filter(const struct filter_case *c, size_t step)
{
	static char out[HEADER_HOLD_MAX * 4 + 4096];
	struct header_filter f;
	size_t len = strlen(c->in), o = 0;

	header_filter_init(&f, names_us, NULL);
	for (size_t off = 0; off < len; off += step)
		o += header_filter(&f, c->in + off, len - off < step ? len - off : step,
		    out + o);
	o += header_filter_end(&f, out + o);
	out[o] = '\0';
	assert_string_equal(out, c->out);
	assert_int_equal(f.dropped, c->dropped);
}

static void
run_filter_case(void **state)
{
	const struct filter_case *c = *state;

	UNIT_BUG(c);
	check_filter(c, strlen(c->in));
	check_filter(c, 1);
	check_filter(c, 7);
}

/* a held field past HEADER_HOLD_MAX goes whole; what follows passes */
static void
test_filter_overlong(void **state)
{
	static char in[HEADER_HOLD_MAX * 2], out[HEADER_HOLD_MAX * 4];
	struct header_filter f;
	size_t o = 0, n;

	n = (size_t)snprintf(in, sizeof(in), "Authentication-Results: b.example;\n");
	while (n < HEADER_HOLD_MAX + 100)
		n += (size_t)snprintf(in + n, sizeof(in) - n, "\tdkim=pass (a comment)\n");
	n += (size_t)snprintf(in + n, sizeof(in) - n, "Subject: x\n\nbody\n");
	header_filter_init(&f, names_us, NULL);
	for (size_t off = 0; off < n; off += 1000)
		o += header_filter(&f, in + off, n - off < 1000 ? n - off : 1000, out + o);
	o += header_filter_end(&f, out + o);
	out[o] = '\0';
	assert_string_equal(out, "Subject: x\n\nbody\n");
	assert_int_equal(f.dropped, 1);
	assert_int_equal(f.overlong, 1);
}

int
main(void)
{
	struct CMUnitTest tests[nitems(data_cases) + nitems(long_cases) +
	    nitems(header_cases) + nitems(filter_cases) + 4];
	size_t n = 0;

	UNIT_ROWS(tests, n, run_data_case, data_cases);
	UNIT_TEST(tests, n, test_data_octets_across_calls);
	UNIT_ROWS(tests, n, run_long_case, long_cases);
	UNIT_ROWS(tests, n, run_header_case, header_cases);
	UNIT_TEST(tests, n, test_header_many);
	UNIT_TEST(tests, n, test_header_long_line);
	UNIT_ROWS(tests, n, run_filter_case, filter_cases);
	UNIT_TEST(tests, n, test_filter_overlong);
	UNIT_RUN(tests, n);
}
