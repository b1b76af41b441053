/*
 * addrlist.c - RFC 5322 address lists: a tokenizer (atoms, quoted strings,
 * domain literals, specials; comments and folds dropped) and a parser of
 * the address-list over its tokens.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "addrlist.h"
#include "util.h"

/* ---------------------------------------------------------------- lists */

void
addr_list_add(struct addr_list *a, const char *s)
{
	a->v = xreallocarray(a->v, a->n + 1, sizeof(*a->v));
	a->v[a->n++] = xstrdup(s);
}

void
addr_list_free(struct addr_list *a)
{
	for (size_t i = 0; i < a->n; i++)
		free(a->v[i]);
	free(a->v);
	a->v = NULL;
	a->n = 0;
}

/* -------------------------------------------------------- address lists */

enum tok_type {
	T_ATOM,		/* atext run (UTF-8 allowed, RFC 6532) */
	T_QSTR,		/* "quoted string", kept with its quotes */
	T_DLIT,		/* [domain literal] */
	T_SPECIAL,	/* one of < > : ; , @ . */
};

struct tok {
	enum tok_type type;
	char *text;
};

struct toks {
	struct tok *v;
	size_t n;
};

static void
toks_add(struct toks *t, enum tok_type type, const char *s, size_t n)
{
	t->v = xreallocarray(t->v, t->n + 1, sizeof(*t->v));
	t->v[t->n].type = type;
	t->v[t->n].text = xstrndup(s, n);
	t->n++;
}

static void
toks_free(struct toks *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->v[i].text);
	free(t->v);
}

static bool
is_wsp(int c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool
is_special(int c)
{
	return c != '\0' && strchr("<>:;,@.()\"[]", c) != NULL;
}

/*
 * quoted - a quoted string or domain literal starting at s[*i] (the
 * opening character), line folds removed, quoted pairs kept; false if it
 * is not closed
 */
static bool
quoted(const char *s, size_t len, size_t *i, char close, char **out, size_t *outlen)
{
	char *b = xmalloc(len - *i + 1);
	size_t n = 0, j = *i;

	b[n++] = s[j++];
	while (j < len && s[j] != close) {
		if (s[j] == '\r' || s[j] == '\n') {
			j++;
			continue;
		}
		if (s[j] == '\\' && j + 1 < len) {
			b[n++] = s[j++];
			if (s[j] == '\r' || s[j] == '\n')	/* not a real pair */
				continue;
		}
		b[n++] = s[j++];
	}
	if (j >= len) {
		free(b);
		return false;
	}
	b[n++] = s[j++];
	*i = j;
	*out = b;
	*outlen = n;
	return true;
}

/*
 * tokenize - the tokens of s[0..len), comments and folding white space
 * dropped.  A NUL is refused: no form of RFC 5322 but the obsolete
 * quoted-pair has one, and the tokens are C strings.
 */
static int
tokenize(const char *s, size_t len, struct toks *t, char *err, size_t errsize)
{
	size_t i = 0;

	if (memchr(s, '\0', len) != NULL) {
		snprintf(err, errsize, "a NUL octet");
		return -1;
	}
	while (i < len) {
		char c = s[i];

		if (is_wsp(c)) {
			i++;
		} else if (c == '(') {
			int depth = 0;

			for (; i < len; i++) {
				if (s[i] == '\\' && i + 1 < len)
					i++;
				else if (s[i] == '(')
					depth++;
				else if (s[i] == ')' && --depth == 0)
					break;
			}
			if (i >= len) {
				snprintf(err, errsize, "unterminated comment");
				return -1;
			}
			i++;
		} else if (c == ')') {
			snprintf(err, errsize, "unbalanced ')'");
			return -1;
		} else if (c == '"' || c == '[') {
			char *q;
			size_t qn;

			if (!quoted(s, len, &i, c == '"' ? '"' : ']', &q, &qn)) {
				snprintf(err, errsize, "unterminated %s",
				    c == '"' ? "quoted string" : "domain literal");
				return -1;
			}
			toks_add(t, c == '"' ? T_QSTR : T_DLIT, q, qn);
			free(q);
		} else if (c == ']') {
			snprintf(err, errsize, "unbalanced ']'");
			return -1;
		} else if (is_special(c)) {
			toks_add(t, T_SPECIAL, &s[i], 1);
			i++;
		} else {
			size_t start = i;

			while (i < len && !is_wsp(s[i]) && !is_special(s[i]))
				i++;
			toks_add(t, T_ATOM, s + start, i - start);
		}
	}
	return 0;
}

static bool
tok_is(const struct tok *t, char c)
{
	return t->type == T_SPECIAL && t->text[0] == c;
}

static bool
is_word(const struct tok *t)
{
	return t->type == T_ATOM || t->type == T_QSTR;
}

/*
 * addr_spec - the addr-spec of tokens v[0..n): local-part ["@" domain],
 * each a dot-separated run of words; appended (qualified) to out.  With
 * final_dot the domain may end in a dot ("a@example.org."), kept in out.
 */
static int
addr_spec(const struct tok *v, size_t n, const char *domain, bool final_dot,
    struct addr_list *out, char *err, size_t errsize)
{
	size_t i = 0, cap = 1, at = 0;
	bool want_word = true, has_at = false;
	char *b;

	for (size_t k = 0; k < n; k++)
		cap += strlen(v[k].text) + 1;	/* + a blank in the message */
	if (n == 0) {
		snprintf(err, errsize, "empty address");
		return -1;
	}
	b = xmalloc(cap);
	b[0] = '\0';
	for (i = 0; i < n; i++) {
		const struct tok *t = &v[i];

		if (want_word) {
			bool ok = has_at ? (t->type == T_ATOM || (t->type == T_DLIT &&
			    i == at + 1 && n == i + 1)) : is_word(t);

			if (!ok)
				goto bad;
			want_word = false;
		} else if (tok_is(t, '.')) {
			want_word = true;
		} else if (tok_is(t, '@') && !has_at) {
			has_at = true;
			at = i;
			want_word = true;
		} else
			goto bad;
		strcat(b, t->text);
	}
	if (want_word && !(final_dot && has_at && tok_is(&v[n - 1], '.')))
		goto bad;
	if (has_at)
		addr_list_add(out, b);
	else {
		char *q = addr_qualify(b, domain);

		addr_list_add(out, q);
		free(q);
	}
	free(b);
	return 0;
bad:
	b[0] = '\0';
	for (i = 0; i < n; i++) {
		if (i > 0 && is_word(&v[i]) && is_word(&v[i - 1]))
			strcat(b, " ");
		strcat(b, v[i].text);
	}
	snprintf(err, errsize, "bad address '%.200s'", b);
	free(b);
	return -1;
}

/* parse - addr_list_parse, a final dot in domains allowed or not */
static int
parse(const char *s, size_t len, const char *domain, bool final_dot,
    struct addr_list *out, char *err, size_t errsize)
{
	struct toks t = { 0 };
	size_t i, start;
	bool in_group = false, angle_done = false;
	int rc = -1;

	if (tokenize(s, len, &t, err, errsize) == -1)
		goto done;
	start = 0;
	for (i = 0; i <= t.n; i++) {
		struct tok *k = i < t.n ? &t.v[i] : NULL;

		if (k == NULL || tok_is(k, ',') || tok_is(k, ';')) {
			/* the end of one address (obs-addr-list: it may be empty) */
			if (!angle_done && i > start &&
			    addr_spec(&t.v[start], i - start, domain, final_dot,
			    out, err, errsize) == -1)
				goto done;
			if (k && tok_is(k, ';')) {
				if (!in_group) {
					snprintf(err, errsize, "';' outside a group");
					goto done;
				}
				in_group = false;
			}
			angle_done = false;
			start = i + 1;
		} else if (angle_done) {
			/* only comments (already gone) may follow "<...>" */
			snprintf(err, errsize, "'%.100s' after an angle address",
			    k->text);
			goto done;
		} else if (tok_is(k, ':')) {
			/* group: display-name ":" [mailbox-list] ";" */
			if (in_group) {
				snprintf(err, errsize, "group inside a group");
				goto done;
			}
			in_group = true;
			start = i + 1;
		} else if (tok_is(k, '<')) {
			/* the display name before it (start..i) is dropped */
			size_t a = i + 1, e;

			for (e = a; e < t.n && !tok_is(&t.v[e], '>'); e++)
				if (tok_is(&t.v[e], '<')) {
					snprintf(err, errsize, "'<' inside '<...>'");
					goto done;
				}
			if (e >= t.n) {
				snprintf(err, errsize, "missing '>'");
				goto done;
			}
			/* obs-route: "@a,@b:" before the addr-spec */
			if (a < e && tok_is(&t.v[a], '@')) {
				while (a < e && !tok_is(&t.v[a], ':'))
					a++;
				if (a >= e) {
					snprintf(err, errsize, "bad source route");
					goto done;
				}
				a++;
			}
			if (addr_spec(&t.v[a], e - a, domain, final_dot, out, err,
			    errsize) == -1)
				goto done;
			angle_done = true;
			i = e;
		} else if (tok_is(k, '>')) {
			snprintf(err, errsize, "'>' without '<'");
			goto done;
		}
	}
	/* an unterminated group ("undisclosed-recipients:") is taken as is */
	rc = 0;
done:
	toks_free(&t);
	return rc;
}

int
addr_list_parse(const char *s, size_t len, const char *domain,
    struct addr_list *out, char *err, size_t errsize)
{
	return parse(s, len, domain, false, out, err, errsize);
}

/* domain_of - what follows the '@' of addr that is outside quotes, or NULL */
static const char *
domain_of(const char *addr)
{
	bool inq = false;

	for (const char *p = addr; *p; p++) {
		if (*p == '\\' && inq && p[1])
			p++;
		else if (*p == '"')
			inq = !inq;
		else if (*p == '@' && !inq)
			return p + 1;
	}
	return NULL;
}

char *
addr_qualify(const char *addr, const char *domain)
{
	if (domain_of(addr) != NULL || domain == NULL || *domain == '\0')
		return xstrdup(addr);
	return xasprintf("%s@%s", addr, domain);
}

/*
 * dns_domain - the domain of addr as the name DNS knows, into key: no
 * final dot, a U-label as its A-label, lower case; false when addr has
 * no domain or one that is no DNS name
 */
static bool
dns_domain(const char *addr, char *key, size_t size)
{
	const char *d = domain_of(addr);
	char dom[DOMAIN_MAX + 2];
	size_t len;
	bool ok;

	if (d == NULL || !str_copy(dom, d, sizeof(dom)))
		return false;
	if ((len = strlen(dom)) > 0 && dom[len - 1] == '.')
		dom[--len] = '\0';
	ok = addr_domain_key(dom, key, size) && dns_name_ok(key);
	for (const char *p = key; ok && *p; p++)
		ok = (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
		    *p == '-' || *p == '.' || *p == '_';
	return ok;
}

enum from_domain
addr_list_from_domain(const char *v, size_t n, char *out, size_t size,
    const char **why)
{
	struct addr_list a = { 0 };
	const char *reason = NULL;
	char err[256], key[DOMAIN_MAX + 1], one[DOMAIN_MAX + 1] = "";
	enum from_domain st = FROM_DOMAIN_NONE;

	if (parse(v, n, NULL, true, &a, err, sizeof(err)) == -1) {
		st = FROM_DOMAIN_BAD;
		reason = "a From that does not parse";
	}
	for (size_t i = 0; st != FROM_DOMAIN_BAD && i < a.n; i++) {
		if (!dns_domain(a.v[i], key, sizeof(key)))
			continue;
		if (one[0] != '\0' && strcmp(one, key) != 0) {
			st = FROM_DOMAIN_SEVERAL;
			reason = "a From with addresses in several domains";
			break;
		}
		str_copy(one, key, sizeof(one));
		st = FROM_DOMAIN_ONE;
	}
	addr_list_free(&a);
	if (st == FROM_DOMAIN_ONE && !str_copy(out, one, size)) {
		st = FROM_DOMAIN_NONE;
		reason = "a From domain too long";
	}
	if (st == FROM_DOMAIN_NONE && reason == NULL)
		reason = "a From without an address with a valid domain";
	if (st != FROM_DOMAIN_ONE && why != NULL)
		*why = reason;
	return st;
}
