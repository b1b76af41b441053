/*
 * test_log.c - escaping outside data for log lines (common/log.c): what a
 * field value and a quoted or trailing text keep and what becomes \xHH,
 * that no escaped value can end its field or its line, the cut with "...",
 * and that a line written with a raw CR/LF/NUL still stays one line.
 */
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "unit.h"

enum kind { FIELD, TEXT };

struct esc_case {
	const char *label;
	enum kind kind;
	const char *in;
	size_t len;		/* 0: strlen(in) */
	const char *want;
};

static const struct esc_case esc_cases[] = {
	{ .label = "field: plain address", .kind = FIELD,
	  .in = "alice@example.test", .want = "alice@example.test" },
	{ .label = "field: space", .kind = FIELD,
	  .in = "a b", .want = "a\\x20b" },
	{ .label = "field: a whole forged auth line",
	  .kind = FIELD, .in = "x auth failed address=1.2.3.4 user=x",
	  .want = "x\\x20auth\\x20failed\\x20address=1.2.3.4\\x20user=x" },
	{ .label = "field: closing angle bracket then a field",
	  .kind = FIELD, .in = "\"x> relay=evil\"@d",
	  .want = "\\x22x\\x3e\\x20relay=evil\\x22@d" },
	{ .label = "field: < ( ) and backslash", .kind = FIELD,
	  .in = "<(\\)>", .want = "\\x3c\\x28\\x5c\\x29\\x3e" },
	{ .label = "field: CR LF", .kind = FIELD,
	  .in = "a\r\nb", .want = "a\\x0d\\x0ab" },
	{ .label = "field: NUL inside", .kind = FIELD,
	  .in = "a\0b", .len = 3, .want = "a\\x00b" },
	{ .label = "field: DEL and UTF-8", .kind = FIELD,
	  .in = "\x7f\xc3\xa9", .want = "\\x7f\\xc3\\xa9" },
	{ .label = "field: tab", .kind = FIELD,
	  .in = "a\tb", .want = "a\\x09b" },
	{ .label = "field: empty", .kind = FIELD, .in = "", .want = "" },
	{ .label = "text: spaces stay", .kind = TEXT,
	  .in = "550 5.1.1 no such user", .want = "550 5.1.1 no such user" },
	{ .label = "text: angle brackets and = stay", .kind = TEXT,
	  .in = "250 2.1.5 <a@b> ok=yes", .want = "250 2.1.5 <a@b> ok=yes" },
	{ .label = "text: closing parenthesis and fake fields", .kind = TEXT,
	  .in = "250 ok) status=sent relay=x (", .want =
	  "250 ok\\x29 status=sent relay=x \\x28" },
	{ .label = "text: quote cannot close key=\"...\"", .kind = TEXT,
	  .in = "x\" result=\"ok", .want = "x\\x22 result=\\x22ok" },
	{ .label = "text: backslash", .kind = TEXT,
	  .in = "a\\x0a", .want = "a\\x5cx0a" },
	{ .label = "text: CR LF NUL", .kind = TEXT,
	  .in = "a\r\n\0b", .len = 5, .want = "a\\x0d\\x0a\\x00b" },
};

static void
run_esc_case(void **state)
{
	const struct esc_case *c = *state;
	size_t len = c->len ? c->len : strlen(c->in);
	char buf[256];
	const char *got;

	if (c->kind == FIELD)
		got = log_escape(buf, sizeof(buf), c->in, len);
	else
		got = log_escape_text(buf, sizeof(buf), c->in, len);
	assert_ptr_equal(got, buf);
	assert_string_equal(got, c->want);
}

/* every byte value: what each escape keeps is exactly its documented set */
static void
test_every_byte(void **state)
{
	(void)state;
	for (int b = 0; b < 256; b++) {
		char in[1] = { (char)b }, f[8], t[8];
		bool printable = b >= 0x20 && b < 0x7f;
		bool delim = b == '"' || b == '(' || b == ')' || b == '\\';

		log_escape(f, sizeof(f), in, 1);
		log_escape_text(t, sizeof(t), in, 1);
		if (printable && !delim && b != ' ' && b != '<' && b != '>')
			assert_int_equal(strlen(f), 1);
		else
			assert_int_equal(strlen(f), 4);
		if (printable && !delim)
			assert_int_equal(strlen(t), 1);
		else
			assert_int_equal(strlen(t), 4);
		for (const char *p = f; *p; p++)
			assert_true(*p > 0x20 && *p < 0x7f && !strchr("\"()<>", *p));
		for (const char *p = t; *p; p++)
			assert_true(*p >= 0x20 && *p < 0x7f && !strchr("\"()", *p));
	}
}

/* a buffer too small: cut whole escapes, "..." when it fits, always a string */
static void
test_cut(void **state)
{
	char buf[12];

	(void)state;
	assert_string_equal(log_escape(buf, sizeof(buf), "abcdefghijklmnop", 16),
	    "abcdefg...");
	assert_string_equal(log_escape(buf, sizeof(buf), "\r\r\r\r", 4),
	    "\\x0d\\x0d...");
	assert_string_equal(log_escape(buf, 1, "abc", 3), "");
	assert_string_equal(log_field(buf, sizeof(buf), NULL), "");
	assert_string_equal(log_text(buf, sizeof(buf), "a b"), "a b");
	assert_int_equal(LOG_ESC(3), 16);
	/* LOG_ESC(n) fits n bytes all escaped, no cut */
	{
		char big[LOG_ESC(3)];

		assert_string_equal(log_escape(big, sizeof(big), "\n\n\n", 3),
		    "\\x0a\\x0a\\x0a");
	}
}

/* a raw CR/LF that missed the escapes still gives one line on stderr */
static void
test_one_line(void **state)
{
	char path[] = "/tmp/test_log.XXXXXX", got[512];
	int fd = mkstemp(path), saved = dup(2);
	FILE *f;
	size_t n;

	(void)state;
	assert_true(fd >= 0 && saved >= 0);
	fflush(stderr);
	assert_int_equal(dup2(fd, 2), 2);
	log_init("test_log", 1, 0);
	log_info("a\r\nchamoisd: 0123456789abcdef auth failed address=1.2.3.4 "
	    "user=x\x7f\tend");
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	f = fdopen(fd, "r");
	assert_non_null(f);
	rewind(f);
	n = fread(got, 1, sizeof(got) - 1, f);
	fclose(f);
	unlink(path);
	got[n] = '\0';
	assert_non_null(strstr(got, "test_log: a??chamoisd: 0123456789abcdef"));
	assert_non_null(strstr(got, "user=x??end\n"));
	assert_ptr_equal(strchr(got, '\n'), got + n - 1);
	assert_null(strchr(got, '\r'));
}

int
main(void)
{
	struct CMUnitTest tests[nitems(esc_cases) + 3];
	size_t n = 0;

	UNIT_ROWS(tests, n, run_esc_case, esc_cases);
	UNIT_TEST(tests, n, test_every_byte);
	UNIT_TEST(tests, n, test_cut);
	UNIT_TEST(tests, n, test_one_line);
	UNIT_RUN(tests, n);
}
