/*
 * fuzz_dataphase - smtpd/dataphase.c: the DATA scanner (wire octets in,
 * LF-form message and a status out) and the header scanner behind it.
 *
 * Input: one octet n (0..15 chunk sizes follow), n chunk-size octets, then
 * the octets the client sends after DATA.  The octets are fed to
 * data_scan() in chunks of those sizes (cycled; 0 means 1 KiB), each into
 * an output buffer of exactly the chunk's size (smtpd_data_input's is as
 * large as what it passes in), until a status other than DATA_MORE, as
 * smtpd_data_input() does; every output chunk goes to header_scan() of
 * the message, as in the daemon.
 *
 * Checks (abort on failure):
 *  - output never longer than the input consumed; consumed <= offered;
 *  - no CR and no NUL in the output, no NUL consumed, and every LF of the
 *    output comes from a CRLF of the input (a bare CR or LF, or a NUL,
 *    stops the scan: SMTP smuggling, doc/protocol.md, "Message content");
 *  - DATA_END only when the consumed input ends with CRLF "." CRLF (or is
 *    "." CRLF: DATA's reply ended a line);
 *  - octets == output octets + one per LF (the CRLF form, stuffing undone);
 *  - everything equals a one-pass reference written from RFC 5321 4.1.1.4
 *    and 4.5.2 (status, consumed, output, octets, long_line), so chunking
 *    never changes the outcome;
 *  - header_scan gives the same whatever the chunks (Received count,
 *    Delivered-To and our own "for <...>" lists, non_ascii), within
 *    HEADER_KEEP_MAX;
 *  - header_filter (the Authentication-Results fields held back) gives
 *    the same whatever the chunks, each call's output fits len +
 *    HEADER_HOLD_MAX (an output buffer of exactly that size); keeping
 *    every field gives the message back unchanged unless a field was too
 *    long to hold; dropping every field leaves no Authentication-Results
 *    field in the header section.
 *
 * Forwarding's header rewriting is the Received field the engine puts in
 * front of the message plus this header_scan(); a Received field of ours,
 * made by the engine's own builder (smtpd_received_header), is prepended
 * to the header scan here so that the loop detection part (ours_for) is
 * exercised on every input.
 */
#include <strings.h>

#include "common/limits.h"
#include "fuzz.h"
#include "smtpd/smtpd.h"

#define HOST "mx.chamois.test"

/* ours - our Received field for one recipient, as the engine writes it */
static const char *
ours(void)
{
	static char *rcv;

	if (rcv == NULL)
		rcv = smtpd_received_header("client.example", "192.0.2.1", true,
		    false, false, NULL, HOST, "0123456789abcdef.1", "",
		    "fwd@chamois.test", "Mon, 1 Jan 2024 00:00:00 +0000");
	return rcv;
}

struct result {
	enum data_status st;
	size_t consumed;
	char *out;
	size_t outlen;
	uint64_t octets;
	bool long_line;
};

/* reference - the scan in one pass, from the RFCs rather than the code */
static void
reference(const uint8_t *in, size_t len, struct result *r)
{
	size_t i = 0, o = 0, linelen;
	bool bol = true;

	r->out = malloc(len + 1);
	r->octets = 0;
	r->long_line = false;
	for (;;) {
		size_t start = i, j;

		if (bol && len - i >= 3 && memcmp(in + i, ".\r\n", 3) == 0) {
			r->st = DATA_END;
			r->consumed = i + 3;
			break;
		}
		/* a line: up to its first CR, LF or NUL */
		for (j = i; j < len && in[j] != '\r' && in[j] != '\n' &&
		    in[j] != '\0'; j++)
			;
		/* a leading dot is stuffing; the rest is text */
		for (size_t k = i + (bol && j > i && in[i] == '.'); k < j; k++)
			r->out[o++] = (char)in[k];
		if (j == len) {
			/* no line end yet */
			r->st = DATA_MORE;
			r->consumed = len;
			linelen = len - start;
			if (linelen > TEXT_LINE_MAX)
				r->long_line = true;
			break;
		}
		if (in[j] == '\0') {
			r->st = DATA_NUL;
			r->consumed = j;
			if (j - start + 1 > TEXT_LINE_MAX)
				r->long_line = true;
			break;
		}
		if (in[j] == '\n') {
			r->st = DATA_BARE_LF;
			r->consumed = j;
			if (j - start + 1 > TEXT_LINE_MAX)
				r->long_line = true;
			break;
		}
		/* CR */
		if (j + 1 == len) {
			r->st = DATA_MORE;
			r->consumed = len;
			if (len - start > TEXT_LINE_MAX)
				r->long_line = true;
			break;
		}
		if (in[j + 1] != '\n') {
			r->st = DATA_BARE_CR;
			r->consumed = j + 1;
			if (j + 2 - start > TEXT_LINE_MAX)
				r->long_line = true;
			break;
		}
		r->out[o++] = '\n';
		if (j + 2 - start > TEXT_LINE_MAX)
			r->long_line = true;
		i = j + 2;
		bol = true;
	}
	r->outlen = o;
	for (size_t k = 0; k < o; k++)
		r->octets += r->out[k] == '\n' ? 2 : 1;
}

struct hdr_result {
	unsigned received;
	bool non_ascii, done;
	size_t ndelivered, nours;
};

static void
hdr_check(struct header_scanner *h)
{
	FUZZ_CHECK(h->ndelivered <= HEADER_KEEP_MAX);
	FUZZ_CHECK(h->nours <= HEADER_KEEP_MAX);
	FUZZ_CHECK(h->fieldlen <= HEADER_FIELD_KEEP);
}

/* scan_headers - ours + out through header_scan in the given chunks */
static void
scan_headers(struct header_scanner *h, const char *out, size_t outlen,
    const uint8_t *sizes, size_t nsizes)
{
	size_t off = 0, c = 0;

	header_scanner_init(h, HOST);
	header_scan(h, ours(), strlen(ours()));
	hdr_check(h);
	while (off < outlen) {
		size_t n = nsizes ? sizes[c++ % nsizes] : outlen;

		if (n == 0)
			n = 1024;
		if (n > outlen - off)
			n = outlen - off;
		header_scan(h, out + off, n);
		hdr_check(h);
		off += n;
	}
	header_scan_end(h);
	hdr_check(h);
	FUZZ_CHECK(h->done);
}

static bool
keep_all(void *arg, const char *f, size_t n)
{
	return false;
}

static bool
drop_all(void *arg, const char *f, size_t n)
{
	FUZZ_CHECK(n > strlen(HEADER_HOLD_NAME) && n <= HEADER_HOLD_MAX);
	FUZZ_CHECK(strncasecmp(f, HEADER_HOLD_NAME, strlen(HEADER_HOLD_NAME)) == 0);
	return true;
}

/* filter - out through header_filter in the given chunks; malloc'd result */
static char *
filter(const char *out, size_t outlen, const uint8_t *sizes, size_t nsizes,
    header_drop_fn drop, size_t *flen, struct header_filter *f)
{
	char *res = malloc(outlen + HEADER_HOLD_MAX + 1), *chunk;
	size_t off = 0, c = 0, o = 0;

	header_filter_init(f, drop, NULL);
	while (off < outlen) {
		size_t n = nsizes ? sizes[c++ % nsizes] : outlen, k;

		if (n == 0)
			n = 1024;
		if (n > outlen - off)
			n = outlen - off;
		chunk = malloc(n + HEADER_HOLD_MAX);	/* exactly the bound */
		k = header_filter(f, out + off, n, chunk);
		FUZZ_CHECK(k <= n + HEADER_HOLD_MAX);
		memcpy(res + o, chunk, k);
		o += k;
		FUZZ_CHECK(o <= off + n);
		free(chunk);
		off += n;
	}
	chunk = malloc(HEADER_HOLD_MAX);
	c = header_filter_end(f, chunk);
	FUZZ_CHECK(c <= HEADER_HOLD_MAX);
	memcpy(res + o, chunk, c);
	o += c;
	free(chunk);
	FUZZ_CHECK(o <= outlen);
	*flen = o;
	return res;
}

/* held_field_in_header - a line of the header section starts a held field */
static bool
held_field_in_header(const char *m, size_t n)
{
	size_t want = strlen(HEADER_HOLD_NAME);

	for (size_t i = 0; i < n; ) {
		const char *eol = memchr(m + i, '\n', n - i);
		size_t end = eol ? (size_t)(eol - m) : n, j;

		if (end == i)
			return false;		/* the empty line */
		if (end - i >= want && strncasecmp(m + i, HEADER_HOLD_NAME, want) == 0) {
			for (j = i + want; j < end && (m[j] == ' ' || m[j] == '\t'); j++)
				;
			if (j < end && m[j] == ':')
				return true;
		}
		i = end + 1;
	}
	return false;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct data_scanner sc;
	struct header_scanner h1, h2;
	struct result ref;
	const uint8_t *sizes, *in;
	size_t nsizes, len, off = 0, c = 0, o = 0, lf = 0, crlf = 0;
	enum data_status st = DATA_MORE;
	char *out;

	if (size < 1)
		return 0;
	nsizes = data[0] & 15;
	if (size < 1 + nsizes)
		return 0;
	sizes = data + 1;
	in = data + 1 + nsizes;
	len = size - 1 - nsizes;

	out = malloc(len + 1);
	data_scanner_init(&sc);
	while (off < len && st == DATA_MORE) {
		size_t n = nsizes ? sizes[c++ % nsizes] : len, used, olen = 0;
		char *chunk;

		if (n == 0)
			n = 1024;
		if (n > len - off)
			n = len - off;
		/* exactly n octets: ASan sees any write past the output */
		chunk = malloc(n);
		used = data_scan(&sc, (const char *)in + off, n, chunk, &olen,
		    &st);
		FUZZ_CHECK(used <= n);
		FUZZ_CHECK(olen <= used);
		if (st == DATA_MORE)
			FUZZ_CHECK(used == n);
		memcpy(out + o, chunk, olen);
		o += olen;
		off += used;
		free(chunk);
		FUZZ_CHECK(o <= off);
	}

	/* the invariants, on their own */
	FUZZ_CHECK(memchr(out, '\r', o) == NULL);
	FUZZ_CHECK(memchr(out, '\0', o) == NULL);
	FUZZ_CHECK(memchr(in, '\0', off) == NULL);
	for (size_t i = 0; i < o; i++)
		lf += out[i] == '\n';
	for (size_t i = 0; i < off; i++) {
		if (in[i] == '\n')
			FUZZ_CHECKF(i > 0 && in[i - 1] == '\r',
			    "bare LF at %zu consumed", i);
		if (in[i] == '\r' && i + 1 < off)
			FUZZ_CHECKF(in[i + 1] == '\n',
			    "bare CR at %zu consumed", i);
		if (i + 1 < off && in[i] == '\r' && in[i + 1] == '\n')
			crlf++;
	}
	if (st == DATA_END) {
		FUZZ_CHECK((off == 3 && memcmp(in, ".\r\n", 3) == 0) ||
		    (off >= 5 && memcmp(in + off - 5, "\r\n.\r\n", 5) == 0));
		FUZZ_CHECK(lf == crlf - 1);
	} else
		FUZZ_CHECK(lf == crlf);
	FUZZ_CHECK(sc.octets == o + lf);

	/* the reference */
	reference(in, len, &ref);
	FUZZ_CHECKF(ref.st == st, "status %d, reference %d", st, ref.st);
	FUZZ_CHECKF(ref.consumed == off, "consumed %zu, reference %zu", off,
	    ref.consumed);
	FUZZ_CHECK(ref.outlen == o && memcmp(ref.out, out, o) == 0);
	FUZZ_CHECKF(ref.octets == sc.octets, "octets %llu, reference %llu",
	    (unsigned long long)sc.octets, (unsigned long long)ref.octets);
	FUZZ_CHECKF(ref.long_line == sc.long_line, "long_line %d, reference %d",
	    sc.long_line, ref.long_line);
	free(ref.out);

	/* headers: in the input's chunks, and in one go */
	scan_headers(&h1, out, o, sizes, nsizes);
	scan_headers(&h2, out, o, NULL, 0);
	FUZZ_CHECK(h1.received >= 1 && h1.received == h2.received);
	FUZZ_CHECK(h1.non_ascii == h2.non_ascii);
	FUZZ_CHECK(h1.nours >= 1 && strcmp(h1.ours_for[0],
	    "fwd@chamois.test") == 0);
	FUZZ_CHECK(h1.ndelivered == h2.ndelivered && h1.nours == h2.nours);
	for (size_t i = 0; i < h1.ndelivered; i++)
		FUZZ_CHECK(strcmp(h1.delivered_to[i], h2.delivered_to[i]) == 0);
	for (size_t i = 0; i < h1.nours; i++)
		FUZZ_CHECK(strcmp(h1.ours_for[i], h2.ours_for[i]) == 0);
	header_scanner_free(&h1);
	header_scanner_free(&h2);

	/* the held fields: chunking changes nothing */
	{
		struct header_filter f1, f2;
		size_t n1, n2;
		char *k1 = filter(out, o, sizes, nsizes, keep_all, &n1, &f1);
		char *k2 = filter(out, o, NULL, 0, keep_all, &n2, &f2);

		FUZZ_CHECK(n1 == n2 && memcmp(k1, k2, n1) == 0);
		FUZZ_CHECK(f1.dropped == f1.overlong && f1.overlong == f2.overlong);
		if (f1.overlong == 0)
			FUZZ_CHECK(n1 == o && memcmp(k1, out, o) == 0);
		free(k1);
		free(k2);
		k1 = filter(out, o, sizes, nsizes, drop_all, &n1, &f1);
		k2 = filter(out, o, NULL, 0, drop_all, &n2, &f2);
		FUZZ_CHECK(n1 == n2 && memcmp(k1, k2, n1) == 0);
		FUZZ_CHECK(f1.dropped == f2.dropped);
		FUZZ_CHECK(!held_field_in_header(k1, n1));
		free(k1);
		free(k2);
	}
	free(out);
	return 0;
}
