/*
 * test_sasl.c - the Cyrus SASL adapter (submission/sasl_cyrus.c) in
 * process, against a real sasldb2 file made with saslpasswd2 in a
 * temporary directory.  The test plays the client: PLAIN and LOGIN by
 * hand (each row a script of lines and wanted results), SCRAM through
 * libsasl2's client API.
 *
 * Users: alice@example.test/secret and bob@other.test/hunter2 from the
 * start; carol@example.test is added while the adapter runs.
 */
#include <dirent.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sasl/sasl.h>
#include <sasl/saslutil.h>

#include "submission/submission.h"
#include "common/log.h"
#include "unit.h"

#define CB_FN(f)	((int (*)(void))(void (*)(void))(f))
#define HOST		"mail.example.test"
#define LOCAL		"127.0.0.1;587"
#define REMOTE		"127.0.0.1;40000"
#define TLS_SSF		256
#define OUT_MAX		1024

static char tmpdir[64];
static char db_path[128];	/* alice, bob */
static char db2_path[128];	/* dave only */
static char db_missing[128];
static bool have_saslpasswd2;

/* saslpasswd2 - add user@realm with pass to db; 0 on success */
static int
saslpasswd2(const char *db, const char *realm, const char *user, const char *pass)
{
	const char *prog = access("/usr/sbin/saslpasswd2", X_OK) == 0 ?
	    "/usr/sbin/saslpasswd2" : "saslpasswd2";
	char cmd[512];
	FILE *p;

	snprintf(cmd, sizeof(cmd), "%s -c -p -f '%s' -u '%s' '%s'", prog, db,
	    realm, user);
	if ((p = popen(cmd, "w")) == NULL)
		return -1;
	fputs(pass, p);
	return pclose(p) == 0 ? 0 : -1;
}

/* rm_tree - remove the temporary directory (flat) */
static void
rm_tree(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			unlinkat(dirfd(d), e->d_name, 0);
	closedir(d);
	rmdir(dir);
}

static int
group_setup(void **state)
{
	char err[256];

	log_init("test_sasl", 1, getenv("UNIT_VERBOSE") != NULL);
	strcpy(tmpdir, "/tmp/chamois-sasl-XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	snprintf(db_path, sizeof(db_path), "%s/sasldb2", tmpdir);
	snprintf(db2_path, sizeof(db2_path), "%s/sasldb2.other", tmpdir);
	snprintf(db_missing, sizeof(db_missing), "%s/no-such-sasldb2", tmpdir);
	have_saslpasswd2 = saslpasswd2(db_path, "example.test", "alice", "secret") == 0 &&
	    saslpasswd2(db_path, "other.test", "bob", "hunter2") == 0 &&
	    saslpasswd2(db2_path, "example.test", "dave", "dave-pw") == 0;
	if (sub_sasl_init(db_path, err, sizeof(err)) == -1) {
		fprintf(stderr, "sub_sasl_init: %s\n", err);
		return -1;
	}
	if (sasl_client_init(NULL) != SASL_OK)
		return -1;
	return 0;
}

static int
group_teardown(void **state)
{
	sub_sasl_shutdown();
	sasl_client_done();
	rm_tree(tmpdir);
	return 0;
}

/* need_db - skip when saslpasswd2 (sasl2-bin) could not make the files */
static void
need_db(void)
{
	if (!have_saslpasswd2) {
		print_message("[  SKIP    ] saslpasswd2 (sasl2-bin) is missing\n");
		skip();
	}
}

/*
 * wire - a client line from a table: "=" and "wire:TEXT" go as they are
 * (TEXT may be bad base64), anything else is base64-encoded first with
 * each '^' standing for a NUL octet
 */
static const char *
wire(const char *spec, char *buf, size_t size)
{
	char raw[256];
	size_t n = strlen(spec);
	unsigned len;

	if (strcmp(spec, "=") == 0)
		return spec;
	if (strncmp(spec, "wire:", 5) == 0)
		return spec + 5;
	assert_true(n < sizeof(raw));
	for (size_t i = 0; i < n; i++)
		raw[i] = spec[i] == '^' ? '\0' : spec[i];
	assert_int_equal(sasl_encode64(raw, (unsigned)n, buf, (unsigned)size, &len), SASL_OK);
	return buf;
}

/* unb64 - a challenge back to text (NUL-terminated by sasl_decode64) */
static const char *
unb64(const char *b64, char *buf, size_t size)
{
	unsigned len;

	assert_int_equal(sasl_decode64(b64, (unsigned)strlen(b64), buf,
	    (unsigned)size, &len), SASL_OK);
	return buf;
}

static const char *
result_name(enum sub_sasl_result r)
{
	static const char *names[] = { "CONTINUE", "OK", "FAIL", "TEMP",
	    "NOMECH", "BADPROT" };

	return (size_t)r < nitems(names) ? names[r] : "?";
}

#define assert_result(got, want) do {					\
	enum sub_sasl_result g_ = (got), w_ = (want);			\
	if (g_ != w_)							\
		fail_msg("result %s, want %s", result_name(g_), result_name(w_)); \
} while (0)

/* has_word - is w one of the space-separated words of list? */
static bool
has_word(const char *list, const char *w)
{
	size_t n = strlen(w);

	for (const char *p = list; (p = strstr(p, w)) != NULL; p += n)
		if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
			return true;
	return false;
}

/*
 * Scripted exchanges: AUTH mech [initial], then each step's line; each
 * line has the result it must give and, for a 334, the decoded challenge.
 */
struct line {
	const char *send;		/* see wire(); NULL ends the script */
	enum sub_sasl_result want;
	const char *challenge;		/* decoded 334 text (NULL: not checked) */
};

struct script_case {
	const char *label;
	bool no_tls;			/* ssf 0 instead of TLS_SSF */
	const char *mech;
	const char *initial;		/* NULL: no initial response */
	enum sub_sasl_result want;
	const char *challenge;
	struct line steps[4];
	const char *user;		/* after OK: sub_sasl_user() */
	const char *bug;
};

#define ALICE	"^alice@example.test^secret"

static const struct script_case script_cases[] = {
	/* PLAIN (RFC 4616): authzid NUL authcid NUL password */
	{ .label = "PLAIN: initial response, right password", .mech = "PLAIN",
	    .initial = ALICE, .want = SUB_SASL_OK, .user = "alice@example.test" },
	{ .label = "PLAIN: mechanism name is case-insensitive", .mech = "plain",
	    .initial = ALICE, .want = SUB_SASL_OK, .user = "alice@example.test" },
	{ .label = "PLAIN: a second realm in the same sasldb", .mech = "PLAIN",
	    .initial = "^bob@other.test^hunter2", .want = SUB_SASL_OK,
	    .user = "bob@other.test" },
	{ .label = "PLAIN: no initial response, then the response", .mech = "PLAIN",
	    .want = SUB_SASL_CONTINUE, .challenge = "",
	    .steps = { { ALICE, SUB_SASL_OK } }, .user = "alice@example.test" },
	{ .label = "PLAIN: authzid equal to the login", .mech = "PLAIN",
	    .initial = "alice@example.test^alice@example.test^secret",
	    .want = SUB_SASL_OK, .user = "alice@example.test" },
	{ .label = "PLAIN: wrong password", .mech = "PLAIN",
	    .initial = "^alice@example.test^Secret", .want = SUB_SASL_FAIL },
	{ .label = "PLAIN: empty password", .mech = "PLAIN",
	    .initial = "^alice@example.test^", .want = SUB_SASL_FAIL },
	{ .label = "PLAIN: password of another user", .mech = "PLAIN",
	    .initial = "^alice@example.test^hunter2", .want = SUB_SASL_FAIL },
	{ .label = "PLAIN: unknown user is a plain failure", .mech = "PLAIN",
	    .initial = "^nobody@example.test^secret", .want = SUB_SASL_FAIL },
	{ .label = "PLAIN: unknown realm is a plain failure", .mech = "PLAIN",
	    .initial = "^alice@nowhere.test^secret", .want = SUB_SASL_FAIL },
	{ .label = "PLAIN: user in the wrong realm", .mech = "PLAIN",
	    .initial = "^bob@example.test^hunter2", .want = SUB_SASL_FAIL },
	{ .label = "PLAIN: local part alone (realm is the host name)", .mech = "PLAIN",
	    .initial = "^alice^secret", .want = SUB_SASL_FAIL },
	{ .label = "PLAIN: authzid of another user", .mech = "PLAIN",
	    .initial = "bob@other.test^alice@example.test^secret",
	    .want = SUB_SASL_FAIL },
	{ .label = "PLAIN: wrong password after a 334", .mech = "PLAIN",
	    .want = SUB_SASL_CONTINUE, .challenge = "",
	    .steps = { { "^alice@example.test^nope", SUB_SASL_FAIL } } },
	{ .label = "PLAIN: empty initial response \"=\"", .mech = "PLAIN",
	    .initial = "=", .want = SUB_SASL_BADPROT },
	{ .label = "PLAIN: no NUL separators", .mech = "PLAIN",
	    .initial = "alice@example.test secret", .want = SUB_SASL_BADPROT },
	{ .label = "PLAIN: bad base64 initial response", .mech = "PLAIN",
	    .initial = "wire:not*base64", .want = SUB_SASL_BADPROT },
	{ .label = "PLAIN: truncated base64 initial response", .mech = "PLAIN",
	    .initial = "wire:AGFsaWNl", .want = SUB_SASL_BADPROT },
	{ .label = "PLAIN: base64 with a partial quantum", .mech = "PLAIN",
	    .initial = "wire:AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ", .want = SUB_SASL_BADPROT },
	{ .label = "PLAIN: bad base64 response", .mech = "PLAIN",
	    .want = SUB_SASL_CONTINUE, .challenge = "",
	    .steps = { { "wire:%%%%", SUB_SASL_BADPROT } } },
	{ .label = "PLAIN: cancel \"*\" is not base64", .mech = "PLAIN",
	    .want = SUB_SASL_CONTINUE, .challenge = "",
	    .steps = { { "wire:*", SUB_SASL_BADPROT } } },
	{ .label = "PLAIN: refused without TLS", .no_tls = true, .mech = "PLAIN",
	    .initial = ALICE, .want = SUB_SASL_NOMECH },

	/* LOGIN (draft-murchison-sasl-login): two 334 prompts */
	{ .label = "LOGIN: user name and password prompts", .mech = "LOGIN",
	    .want = SUB_SASL_CONTINUE, .challenge = "Username:",
	    .steps = { { "alice@example.test", SUB_SASL_CONTINUE, "Password:" },
	    { "secret", SUB_SASL_OK } }, .user = "alice@example.test" },
	{ .label = "LOGIN: user name as initial response", .mech = "LOGIN",
	    .initial = "alice@example.test", .want = SUB_SASL_CONTINUE,
	    .challenge = "Password:", .steps = { { "secret", SUB_SASL_OK } },
	    .user = "alice@example.test" },
	{ .label = "LOGIN: wrong password", .mech = "LOGIN",
	    .want = SUB_SASL_CONTINUE, .challenge = "Username:",
	    .steps = { { "alice@example.test", SUB_SASL_CONTINUE, "Password:" },
	    { "wrong", SUB_SASL_FAIL } } },
	{ .label = "LOGIN: unknown user is a plain failure", .mech = "LOGIN",
	    .want = SUB_SASL_CONTINUE, .challenge = "Username:",
	    .steps = { { "mallory@example.test", SUB_SASL_CONTINUE, "Password:" },
	    { "secret", SUB_SASL_FAIL } } },
	{ .label = "LOGIN: bad base64 user name", .mech = "LOGIN",
	    .want = SUB_SASL_CONTINUE, .challenge = "Username:",
	    .steps = { { "wire:!!!!", SUB_SASL_BADPROT } } },
	{ .label = "LOGIN: refused without TLS", .no_tls = true, .mech = "LOGIN",
	    .want = SUB_SASL_NOMECH },

	/* mechanisms that are not offered */
	{ .label = "NOMECH: ANONYMOUS", .mech = "ANONYMOUS",
	    .initial = "wire:", .want = SUB_SASL_NOMECH },
	{ .label = "NOMECH: CRAM-MD5", .mech = "CRAM-MD5", .want = SUB_SASL_NOMECH },
	{ .label = "NOMECH: DIGEST-MD5", .mech = "DIGEST-MD5", .want = SUB_SASL_NOMECH },
	{ .label = "NOMECH: NTLM", .mech = "NTLM", .want = SUB_SASL_NOMECH },
	{ .label = "NOMECH: GSSAPI", .mech = "GSSAPI", .want = SUB_SASL_NOMECH },
	{ .label = "NOMECH: EXTERNAL", .mech = "EXTERNAL", .want = SUB_SASL_NOMECH },
	{ .label = "NOMECH: SCRAM-SHA-256-PLUS (no channel binding)",
	    .mech = "SCRAM-SHA-256-PLUS", .want = SUB_SASL_NOMECH },
	{ .label = "NOMECH: unknown name", .mech = "X-NO-SUCH-MECH", .want = SUB_SASL_NOMECH },
	{ .label = "empty mechanism name is malformed", .mech = "", .want = SUB_SASL_BADPROT },
};

static void
run_script_case(void **state)
{
	const struct script_case *c = *state;
	char out[OUT_MAX], buf[512], text[OUT_MAX];
	struct sub_sasl *s;
	enum sub_sasl_result r;

	UNIT_BUG(c);
	need_db();
	s = sub_sasl_new(HOST, LOCAL, REMOTE, c->no_tls ? 0 : TLS_SSF);
	assert_non_null(s);
	r = sub_sasl_start(s, c->mech, c->initial != NULL ?
	    wire(c->initial, buf, sizeof(buf)) : NULL, out, sizeof(out));
	assert_result(r, c->want);
	if (c->challenge != NULL)
		assert_string_equal(unb64(out, text, sizeof(text)), c->challenge);
	for (size_t i = 0; i < nitems(c->steps) && c->steps[i].send != NULL; i++) {
		const struct line *l = &c->steps[i];

		assert_result(r, SUB_SASL_CONTINUE);
		r = sub_sasl_step(s, wire(l->send, buf, sizeof(buf)), out, sizeof(out));
		assert_result(r, l->want);
		if (l->challenge != NULL)
			assert_string_equal(unb64(out, text, sizeof(text)), l->challenge);
	}
	if (r == SUB_SASL_OK)
		assert_string_equal(sub_sasl_user(s), c->user);
	else
		assert_null(sub_sasl_user(s));
	if (r != SUB_SASL_CONTINUE)	/* the exchange is over: no more steps */
		assert_result(sub_sasl_step(s, "", out, sizeof(out)), SUB_SASL_BADPROT);
	sub_sasl_free(s);
}

/*
 * SCRAM through libsasl2's client API: the client's callbacks give the
 * login and password; the client checks the server's signature too.
 */
struct client_creds {
	const char *user;
	const char *pass;
	sasl_secret_t *secret;
};

static int
cb_simple(void *context, int id, const char **result, unsigned *len)
{
	const struct client_creds *cr = context;

	*result = id == SASL_CB_AUTHNAME ? cr->user : "";	/* no authzid */
	if (len != NULL)
		*len = (unsigned)strlen(*result);
	return SASL_OK;
}

static int
cb_secret(sasl_conn_t *conn, void *context, int id, sasl_secret_t **psecret)
{
	struct client_creds *cr = context;
	size_t n = strlen(cr->pass);

	if (cr->secret == NULL) {
		cr->secret = calloc(1, sizeof(sasl_secret_t) + n + 1);
		if (cr->secret == NULL)
			return SASL_NOMEM;
		cr->secret->len = n;
		memcpy(cr->secret->data, cr->pass, n);
	}
	*psecret = cr->secret;
	return SASL_OK;
}

/*
 * client_login - a whole exchange of mech between libsasl2's client and
 * the adapter's session s; returns the adapter's last result
 */
static enum sub_sasl_result
client_login(struct sub_sasl *s, const char *mech, const char *user,
    const char *pass, bool initial)
{
	struct client_creds cr = { .user = user, .pass = pass };
	sasl_callback_t cbs[] = {
		{ SASL_CB_AUTHNAME, CB_FN(cb_simple), &cr },
		{ SASL_CB_USER, CB_FN(cb_simple), &cr },
		{ SASL_CB_PASS, CB_FN(cb_secret), &cr },
		{ SASL_CB_LIST_END, NULL, NULL },
	};
	char out[OUT_MAX], line[OUT_MAX], chal[OUT_MAX];
	const char *cout = NULL, *chosen = NULL;
	unsigned coutlen = 0, len;
	sasl_conn_t *c = NULL;
	enum sub_sasl_result r;
	int cr_r;

	assert_int_equal(sasl_client_new("smtp", HOST, NULL, NULL, cbs, 0, &c), SASL_OK);
	cr_r = sasl_client_start(c, mech, NULL, &cout, &coutlen, &chosen);
	assert_true(cr_r == SASL_OK || cr_r == SASL_CONTINUE);
	assert_string_equal(chosen, mech);
	assert_int_equal(sasl_encode64(cout, coutlen, line, sizeof(line), &len), SASL_OK);
	if (initial) {
		r = sub_sasl_start(s, mech, coutlen > 0 ? line : "=", out, sizeof(out));
	} else {
		r = sub_sasl_start(s, mech, NULL, out, sizeof(out));
		assert_result(r, SUB_SASL_CONTINUE);
		assert_string_equal(out, "");
		r = sub_sasl_step(s, line, out, sizeof(out));
	}
	while (r == SUB_SASL_CONTINUE) {
		assert_int_equal(sasl_decode64(out, (unsigned)strlen(out), chal,
		    sizeof(chal), &len), SASL_OK);
		cr_r = sasl_client_step(c, chal, len, NULL, &cout, &coutlen);
		/* SASL_OK: the client checked the server's final message */
		assert_true(cr_r == SASL_OK || cr_r == SASL_CONTINUE);
		assert_int_equal(sasl_encode64(cout, coutlen, line, sizeof(line),
		    &len), SASL_OK);
		r = sub_sasl_step(s, line, out, sizeof(out));
	}
	sasl_dispose(&c);
	free(cr.secret);
	return r;
}

struct scram_case {
	const char *label;
	const char *mech;
	const char *user;
	const char *pass;
	bool initial;		/* client-first message with AUTH (RFC 4954 4) */
	bool no_tls;
	enum sub_sasl_result want;
	const char *bug;
};

static const struct scram_case scram_cases[] = {
	{ .label = "SCRAM-SHA-256: initial response", .mech = "SCRAM-SHA-256",
	    .user = "alice@example.test", .pass = "secret",
	    .initial = true, .want = SUB_SASL_OK },
	{ .label = "SCRAM-SHA-256: no initial response (empty 334 first)", .mech = "SCRAM-SHA-256",
	    .user = "alice@example.test", .pass = "secret",
	    .want = SUB_SASL_OK },
	{ .label = "SCRAM-SHA-256: second realm", .mech = "SCRAM-SHA-256",
	    .user = "bob@other.test", .pass = "hunter2",
	    .initial = true, .want = SUB_SASL_OK },
	{ .label = "SCRAM-SHA-256: allowed without TLS", .mech = "SCRAM-SHA-256",
	    .user = "alice@example.test", .pass = "secret",
	    .initial = true, .no_tls = true, .want = SUB_SASL_OK },
	{ .label = "SCRAM-SHA-256: wrong password", .mech = "SCRAM-SHA-256",
	    .user = "alice@example.test", .pass = "secret2",
	    .initial = true, .want = SUB_SASL_FAIL },
	{ .label = "SCRAM-SHA-256: unknown user is a plain failure", .mech = "SCRAM-SHA-256",
	    .user = "nobody@example.test", .pass = "secret",
	    .initial = true, .want = SUB_SASL_FAIL },
	{ .label = "SCRAM-SHA-256: user in the wrong realm", .mech = "SCRAM-SHA-256",
	    .user = "alice@other.test", .pass = "secret",
	    .initial = true, .want = SUB_SASL_FAIL },
	{ .label = "SCRAM-SHA-1: initial response", .mech = "SCRAM-SHA-1",
	    .user = "alice@example.test", .pass = "secret",
	    .initial = true, .want = SUB_SASL_OK },
	{ .label = "PLAIN via the client API", .mech = "PLAIN",
	    .user = "alice@example.test", .pass = "secret",
	    .initial = true, .want = SUB_SASL_OK },
};

static void
run_scram_case(void **state)
{
	const struct scram_case *c = *state;
	struct sub_sasl *s;

	UNIT_BUG(c);
	need_db();
	s = sub_sasl_new(HOST, LOCAL, REMOTE, c->no_tls ? 0 : TLS_SSF);
	assert_non_null(s);
	assert_result(client_login(s, c->mech, c->user, c->pass, c->initial), c->want);
	if (c->want == SUB_SASL_OK)
		assert_string_equal(sub_sasl_user(s), c->user);
	else
		assert_null(sub_sasl_user(s));
	sub_sasl_free(s);
}

/* mechanism lists, with and without TLS */
static void
test_mechs(void **state)
{
	static const char *never[] = { "ANONYMOUS", "CRAM-MD5", "DIGEST-MD5",
	    "NTLM", "GSSAPI", "EXTERNAL", "OTP", "SCRAM-SHA-256-PLUS" };
	struct sub_sasl *s = sub_sasl_new(HOST, LOCAL, REMOTE, TLS_SSF);
	struct sub_sasl *plain = sub_sasl_new(HOST, LOCAL, REMOTE, 0);
	const char *m;

	assert_non_null(s);
	assert_non_null(plain);
	m = sub_sasl_mechs(s);
	print_message("[          ] with TLS: %s\n", m);
	assert_true(has_word(m, "PLAIN"));
	assert_true(has_word(m, "LOGIN"));
	assert_true(has_word(m, "SCRAM-SHA-256"));
	assert_true(has_word(m, "SCRAM-SHA-1"));
	for (size_t i = 0; i < nitems(never); i++)
		assert_false(has_word(m, never[i]));
	m = sub_sasl_mechs(plain);
	print_message("[          ] without TLS: %s\n", m);
	assert_false(has_word(m, "PLAIN"));
	assert_false(has_word(m, "LOGIN"));
	assert_true(has_word(m, "SCRAM-SHA-256"));
	for (size_t i = 0; i < nitems(never); i++)
		assert_false(has_word(m, never[i]));
	sub_sasl_free(s);
	sub_sasl_free(plain);
}

/* a failed AUTH, then a good one, in one session (RFC 4954 4: may retry) */
static void
test_retry_in_session(void **state)
{
	char out[OUT_MAX], buf[256];
	struct sub_sasl *s;

	need_db();
	s = sub_sasl_new(HOST, LOCAL, REMOTE, TLS_SSF);
	assert_non_null(s);
	assert_result(sub_sasl_start(s, "PLAIN", wire("^alice@example.test^bad", buf,
	    sizeof(buf)), out, sizeof(out)), SUB_SASL_FAIL);
	assert_result(client_login(s, "SCRAM-SHA-256", "alice@example.test", "nope",
	    true), SUB_SASL_FAIL);
	assert_result(sub_sasl_start(s, "X-NOPE", NULL, out, sizeof(out)), SUB_SASL_NOMECH);
	assert_result(client_login(s, "SCRAM-SHA-256", "alice@example.test", "secret",
	    true), SUB_SASL_OK);
	assert_string_equal(sub_sasl_user(s), "alice@example.test");
	sub_sasl_free(s);
}

/* step before any AUTH, and a challenge that does not fit the buffer */
static void
test_misuse(void **state)
{
	char out[OUT_MAX], small[4];
	struct sub_sasl *s;

	need_db();
	s = sub_sasl_new(HOST, LOCAL, REMOTE, TLS_SSF);
	assert_non_null(s);
	assert_null(sub_sasl_user(s));
	assert_result(sub_sasl_step(s, "", out, sizeof(out)), SUB_SASL_BADPROT);
	/* "Username:" is 12 base64 characters */
	assert_result(sub_sasl_start(s, "LOGIN", NULL, small, sizeof(small)), SUB_SASL_TEMP);
	assert_string_equal(small, "");
	assert_result(sub_sasl_step(s, "", out, sizeof(out)), SUB_SASL_BADPROT);
	sub_sasl_free(s);
	/* malformed "IP;PORT" addresses: no session */
	assert_null(sub_sasl_new(HOST, "not-an-address", REMOTE, TLS_SSF));
	assert_null(sub_sasl_new(HOST, LOCAL, "127.0.0.1:587", TLS_SSF));
	assert_null(sub_sasl_new(HOST, LOCAL, "127.0.0.1;", TLS_SSF));
	assert_null(sub_sasl_new(HOST, "mail.example.test;587", REMOTE, TLS_SSF));
	/* IPv6 as libsasl2 wants it, and no addresses at all */
	s = sub_sasl_new(HOST, "::1;587", "2001:db8::1;40000", TLS_SSF);
	assert_non_null(s);
	sub_sasl_free(s);
	s = sub_sasl_new(HOST, NULL, NULL, TLS_SSF);
	assert_non_null(s);
	sub_sasl_free(s);
}

/* sasldb is read on every look-up: a user added now logs in at once */
static void
test_user_added_later(void **state)
{
	char out[OUT_MAX], buf[256];
	struct sub_sasl *before, *after;

	need_db();
	before = sub_sasl_new(HOST, LOCAL, REMOTE, TLS_SSF);
	assert_non_null(before);
	assert_result(sub_sasl_start(before, "PLAIN", wire("^carol@example.test^c-pw",
	    buf, sizeof(buf)), out, sizeof(out)), SUB_SASL_FAIL);
	assert_int_equal(saslpasswd2(db_path, "example.test", "carol", "c-pw"), 0);
	/* a session that was open before the change sees it too */
	assert_result(sub_sasl_start(before, "PLAIN", wire("^carol@example.test^c-pw",
	    buf, sizeof(buf)), out, sizeof(out)), SUB_SASL_OK);
	assert_string_equal(sub_sasl_user(before), "carol@example.test");
	after = sub_sasl_new(HOST, LOCAL, REMOTE, TLS_SSF);
	assert_non_null(after);
	assert_result(client_login(after, "SCRAM-SHA-256", "carol@example.test", "c-pw",
	    true), SUB_SASL_OK);
	assert_string_equal(sub_sasl_user(after), "carol@example.test");
	sub_sasl_free(before);
	sub_sasl_free(after);
}

/*
 * SIGHUP: a new sasl_db applies to sessions made after it; sessions made
 * before keep theirs.  A sasldb that cannot be read is a back-end failure
 * (454 4.7.0), not 535: every user would otherwise be counted as failing.
 */
static void
test_reconfigure(void **state)
{
	char out[OUT_MAX], buf[256];
	struct sub_sasl *old, *other, *missing;

	need_db();
	old = sub_sasl_new(HOST, LOCAL, REMOTE, TLS_SSF);
	sub_sasl_reconfigure(db2_path);
	other = sub_sasl_new(HOST, LOCAL, REMOTE, TLS_SSF);
	sub_sasl_reconfigure(db_missing);
	missing = sub_sasl_new(HOST, LOCAL, REMOTE, TLS_SSF);
	sub_sasl_reconfigure(db_path);
	assert_non_null(old);
	assert_non_null(other);
	assert_non_null(missing);

	assert_result(sub_sasl_start(old, "PLAIN", wire(ALICE, buf, sizeof(buf)),
	    out, sizeof(out)), SUB_SASL_OK);
	assert_result(sub_sasl_start(other, "PLAIN", wire(ALICE, buf, sizeof(buf)),
	    out, sizeof(out)), SUB_SASL_FAIL);
	assert_result(sub_sasl_start(other, "PLAIN", wire("^dave@example.test^dave-pw",
	    buf, sizeof(buf)), out, sizeof(out)), SUB_SASL_OK);
	assert_string_equal(sub_sasl_user(other), "dave@example.test");

	assert_result(sub_sasl_start(missing, "PLAIN", wire(ALICE, buf, sizeof(buf)),
	    out, sizeof(out)), SUB_SASL_TEMP);
	assert_result(client_login(missing, "SCRAM-SHA-256", "alice@example.test",
	    "secret", true), SUB_SASL_TEMP);
	assert_result(sub_sasl_start(missing, "LOGIN", NULL, out, sizeof(out)),
	    SUB_SASL_CONTINUE);
	assert_result(sub_sasl_step(missing, wire("alice@example.test", buf, sizeof(buf)),
	    out, sizeof(out)), SUB_SASL_CONTINUE);
	assert_result(sub_sasl_step(missing, wire("secret", buf, sizeof(buf)),
	    out, sizeof(out)), SUB_SASL_TEMP);
	sub_sasl_free(old);
	sub_sasl_free(other);
	sub_sasl_free(missing);
}

int
main(void)
{
	struct CMUnitTest tests[nitems(script_cases) + nitems(scram_cases) + 5];
	size_t n = 0;

	UNIT_TEST(tests, n, test_mechs);
	UNIT_ROWS(tests, n, run_script_case, script_cases);
	UNIT_ROWS(tests, n, run_scram_case, scram_cases);
	UNIT_TEST(tests, n, test_retry_in_session);
	UNIT_TEST(tests, n, test_misuse);
	UNIT_TEST(tests, n, test_user_added_later);
	UNIT_TEST(tests, n, test_reconfigure);
	if (n != nitems(tests)) {
		fprintf(stderr, "%s: %zu tests registered, array has %zu\n",
		    __FILE__, n, nitems(tests));
		return 1;
	}
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
