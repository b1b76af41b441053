/*
 * tables.c - the mailboxes and aliases files (chamois.conf(5)).
 *
 * mailboxes: one address a line.  aliases: "address: target, target" a
 * line; "@domain: target" is the domain's catch-all, kept under the key
 * "@domain" (no address key starts with '@') and used only when nothing
 * else, postmaster included, names the address.  Keys are folded with addr_key() so look-ups are case-insensitive
 * and IDNA-neutral; values keep the table's own spelling, which is what
 * Maildir paths are built from.  Everything that -n must report is found
 * here at load time, so a loaded table set is always consistent.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "hmap.h"
#include "tables.h"
#include "util.h"
#include "worker.h"

struct alias {
	char *spelling;
	char **targets;		/* as written */
	size_t ntargets;
	int line;
};

struct tables {
	struct config *cfg;	/* held (config_ref): look-ups read its domains */
	unsigned refs;		/* holders beyond the first (tables_ref) */
	struct hmap *mailboxes;	/* key -> spelling */
	struct hmap *aliases;	/* key -> struct alias */
	char *first_mailbox;
	char *postmaster;	/* target address of postmaster@ */
};

struct loader {
	struct tables *t;
	config_problem_fn fn;
	void *arg;
	const char *file;
	int problems;
};

#define TPROBLEM(l, line, ...) do {					\
	config_problem((l)->fn, (l)->arg, (l)->file, (line), __VA_ARGS__); \
	(l)->problems++;						\
} while (0)

static void
alias_free(void *p)
{
	struct alias *a = p;

	for (size_t i = 0; i < a->ntargets; i++)
		free(a->targets[i]);
	free(a->targets);
	free(a->spelling);
	free(a);
}

struct tables *
tables_ref(struct tables *t)
{
	t->refs++;
	return t;
}

/* tables_destroy - the maps and t; its config is the caller's to let go */
static void
tables_destroy(struct tables *t)
{
	hmap_free(t->mailboxes, free);
	hmap_free(t->aliases, alias_free);
	free(t->first_mailbox);
	free(t->postmaster);
	free(t);
}

void
tables_free(struct tables *t)
{
	if (t == NULL)
		return;
	if (t->refs > 0) {
		t->refs--;
		return;
	}
	config_free(t->cfg);
	tables_destroy(t);
}

/* freeing tables the last holder let go of: the maps on a worker thread */
struct free_job {
	struct tables *t;	/* nobody else holds it */
	struct config *cfg;	/* let go of on the loop (config_ref is the loop's) */
};

static void
free_work(void *arg)
{
	struct free_job *j = arg;

	tables_destroy(j->t);
}

static void
free_done(void *arg)
{
	struct free_job *j = arg;

	config_free(j->cfg);
	free(j);
}

void
tables_free_in_worker(struct tables *t)
{
	struct free_job *j;

	if (t == NULL)
		return;
	if (t->refs > 0) {
		t->refs--;
		return;
	}
	j = xmalloc(sizeof(*j));
	j->t = t;
	j->cfg = t->cfg;
	t->cfg = NULL;
	worker_submit(free_work, free_done, j);
}

/* safe_path_part - a local part or domain that can name a directory */
static bool
safe_path_part(const char *s)
{
	return s[0] != '\0' && s[0] != '.' && strchr(s, '/') == NULL &&
	    strchr(s, '"') == NULL && strchr(s, '\\') == NULL;
}

/*
 * table_key - parse an address from a table; false (reported) if bad.
 * Only a forwarding target may have an address literal (user@[192.0.2.1]).
 */
static bool
table_key(struct loader *l, int line, const char *s, struct mailaddr *a,
    char *key, size_t size, bool literal_ok)
{
	if (addr_parse(s, a, ADDR_F_UTF8) != ADDR_OK ||
	    (a->domain[0] == '[' && !literal_ok)) {
		TPROBLEM(l, line, "'%s' is not a valid address", s);
		return false;
	}
	if (!addr_key(a, key, size)) {
		TPROBLEM(l, line, "'%s': domain is not a valid IDNA name", s);
		return false;
	}
	return true;
}

static bool
is_local(const struct config *c, const struct mailaddr *a)
{
	char dom[DOMAIN_MAX + 1];

	return addr_domain_key(a->domain, dom, sizeof(dom)) &&
	    config_is_local_domain(c, dom);
}

/* next_line - getline wrapper that strips comments and blanks */
static char *
next_line(FILE *f, char **buf, size_t *cap, int *lineno)
{
	ssize_t n;

	while ((n = getline(buf, cap, f)) != -1) {
		char *hash, *s;

		(*lineno)++;
		if ((hash = strchr(*buf, '#')) != NULL)
			*hash = '\0';
		s = str_trim(*buf);
		if (*s)
			return s;
	}
	return NULL;
}

static void
load_mailboxes(struct loader *l, const char *path)
{
	struct tables *t = l->t;
	char *buf = NULL, *s;
	size_t cap = 0;
	int line = 0;
	FILE *f;

	l->file = path;
	if ((f = fopen(path, "r")) == NULL) {
		config_problem(l->fn, l->arg, t->cfg->path, t->cfg->mailboxes_line,
		    "mailboxes: cannot open %s: %s", path, strerror(errno));
		l->problems++;
		return;
	}
	while ((s = next_line(f, &buf, &cap, &line)) != NULL) {
		struct mailaddr a;
		char key[PATH_MAX_OCTETS + 1];

		if (!table_key(l, line, s, &a, key, sizeof(key), false))
			continue;
		if (!is_local(t->cfg, &a)) {
			TPROBLEM(l, line, "mailbox '%s' is not in a local domain "
			    "(domains)", s);
			continue;
		}
		if (!safe_path_part(a.local) || !safe_path_part(a.domain)) {
			TPROBLEM(l, line, "mailbox '%s' cannot name a Maildir "
			    "(no quotes, '/', or leading '.')", s);
			continue;
		}
		if (hmap_get(t->mailboxes, key)) {
			TPROBLEM(l, line, "mailbox '%s' is listed twice", s);
			continue;
		}
		hmap_put(t->mailboxes, key, xstrdup(s));
		if (t->first_mailbox == NULL)
			t->first_mailbox = xstrdup(s);
	}
	free(buf);
	fclose(f);
}

static void
load_aliases(struct loader *l, const char *path)
{
	struct tables *t = l->t;
	char *buf = NULL, *s;
	size_t cap = 0;
	int line = 0;
	FILE *f;

	l->file = path;
	if ((f = fopen(path, "r")) == NULL) {
		config_problem(l->fn, l->arg, t->cfg->path, t->cfg->aliases_line,
		    "aliases: cannot open %s: %s", path, strerror(errno));
		l->problems++;
		return;
	}
	while ((s = next_line(f, &buf, &cap, &line)) != NULL) {
		struct mailaddr a;
		char key[PATH_MAX_OCTETS + 1], *colon, *tok, *save;
		struct alias *al;

		if ((colon = strchr(s, ':')) == NULL) {
			TPROBLEM(l, line, "expected 'address: target[, target...]'");
			continue;
		}
		*colon = '\0';
		s = str_trim(s);
		if (s[0] == '@') {
			/* a catch-all: "@domain" */
			char dom[DOMAIN_MAX + 1];

			if (s[1] == '[' || !addr_domain_key(s + 1, dom, sizeof(dom))) {
				TPROBLEM(l, line, "'%s' is not a valid catch-all "
				    "(@domain)", s);
				continue;
			}
			if (!config_is_local_domain(t->cfg, dom)) {
				TPROBLEM(l, line, "catch-all '%s' is not for a local "
				    "domain", s);
				continue;
			}
			snprintf(key, sizeof(key), "@%s", dom);
		} else if (!table_key(l, line, s, &a, key, sizeof(key), false))
			continue;
		else if (!is_local(t->cfg, &a)) {
			TPROBLEM(l, line, "alias '%s' is not in a local domain", s);
			continue;
		}
		if (hmap_get(t->aliases, key)) {
			TPROBLEM(l, line, "alias '%s' is listed twice", s);
			continue;
		}
		al = xcalloc(1, sizeof(*al));
		al->spelling = xstrdup(s);
		al->line = line;
		for (tok = strtok_r(colon + 1, ",", &save); tok;
		    tok = strtok_r(NULL, ",", &save)) {
			struct mailaddr ta;
			char tkey[PATH_MAX_OCTETS + 1];

			tok = str_trim(tok);
			if (*tok == '\0')
				continue;
			if (!table_key(l, line, tok, &ta, tkey, sizeof(tkey), true))
				continue;
			al->targets = xreallocarray(al->targets, al->ntargets + 1,
			    sizeof(char *));
			al->targets[al->ntargets++] = xstrdup(tok);
		}
		if (al->ntargets == 0) {
			TPROBLEM(l, line, "alias '%s' has no target", s);
			alias_free(al);
			continue;
		}
		hmap_put(t->aliases, key, al);
	}
	free(buf);
	fclose(f);
}

/* exact or +tag-stripped key of an address that exists in a table */
static bool
find_key(const struct tables *t, const char *key, char *out, size_t size)
{
	const char *plus, *at;

	if (hmap_get(t->aliases, key) || hmap_get(t->mailboxes, key))
		return str_copy(out, key, size);
	plus = strchr(key, '+');
	at = strrchr(key, '@');
	if (plus && at && plus < at) {
		if (!bsnprintf(out, size, "%.*s%s", (int)(plus - key), key, at))
			return false;
		return hmap_get(t->aliases, out) || hmap_get(t->mailboxes, out);
	}
	return false;
}

struct expand_ctx {
	const struct tables *t;
	struct hmap *visiting;	/* keys on the current path: a cycle */
	struct hmap *seen;	/* mailboxes already added */
	struct expansion *exp;
	int nexternal;
	const char *cycle;	/* key where a cycle was found */
	const char *unknown;	/* a local target that is nothing */
	char unknown_buf[PATH_MAX_OCTETS + 1];
};

static void
expand_add_external(struct expand_ctx *x, const char *target)
{
	if (x->exp->external && strcasecmp(x->exp->external, target) == 0)
		return;
	x->nexternal++;
	if (x->exp->external == NULL)
		x->exp->external = xstrdup(target);
}

/*
 * postmaster_key - the table key of the postmaster address into found, or
 * "" after adding it as the external target; false if it is nothing
 */
static bool
postmaster_key(const struct tables *t, char *found, size_t size,
    struct expand_ctx *x)
{
	struct mailaddr a;
	char pkey[PATH_MAX_OCTETS + 1];

	if (t->postmaster == NULL ||
	    addr_parse(t->postmaster, &a, ADDR_F_UTF8) != ADDR_OK ||
	    !addr_key(&a, pkey, sizeof(pkey)))
		return false;
	if (!is_local(t->cfg, &a)) {
		expand_add_external(x, t->postmaster);
		found[0] = '\0';
		return true;
	}
	return find_key(t, pkey, found, size);
}

static void
expand_add_mailbox(struct expand_ctx *x, const char *key, const char *mb)
{
	if (hmap_get(x->seen, key))
		return;
	hmap_put(x->seen, key, (void *)1);
	x->exp->mailboxes = xreallocarray(x->exp->mailboxes,
	    x->exp->nmailboxes + 1, sizeof(char *));
	x->exp->mailboxes[x->exp->nmailboxes++] = xstrdup(mb);
}

/* expand_key - depth-first expansion of a key that exists in a table */
static void
expand_key(struct expand_ctx *x, const char *key)
{
	const struct tables *t = x->t;
	struct alias *al = hmap_get(t->aliases, key);
	const char *mb = hmap_get(t->mailboxes, key);

	if (al == NULL) {
		if (mb)
			expand_add_mailbox(x, key, mb);
		return;
	}
	hmap_put(x->visiting, key, (void *)1);
	for (size_t i = 0; i < al->ntargets && x->cycle == NULL; i++) {
		struct mailaddr a;
		char tkey[PATH_MAX_OCTETS + 1], found[PATH_MAX_OCTETS + 1];
		const char *tmb;

		if (addr_parse(al->targets[i], &a, ADDR_F_UTF8) != ADDR_OK ||
		    !addr_key(&a, tkey, sizeof(tkey)))
			continue;
		if (!is_local(t->cfg, &a)) {
			expand_add_external(x, al->targets[i]);
			continue;
		}
		if (!find_key(t, tkey, found, sizeof(found))) {
			/* postmaster@ every local domain exists (RFC 5321 4.5.1) */
			if (strncmp(tkey, "postmaster@", 11) == 0 &&
			    postmaster_key(t, found, sizeof(found), x))
				;
			else {
				str_copy(x->unknown_buf, al->targets[i],
				    sizeof(x->unknown_buf));
				x->unknown = x->unknown_buf;
				continue;
			}
			if (found[0] == '\0')
				continue;	/* the postmaster is external */
		}
		if (hmap_get(x->visiting, found)) {
			/* "alice: alice, bob" keeps a copy in alice's own mailbox */
			if ((tmb = hmap_get(t->mailboxes, found)) != NULL)
				expand_add_mailbox(x, found, tmb);
			else
				x->cycle = al->spelling;
			continue;
		}
		expand_key(x, found);
	}
	hmap_del(x->visiting, key);
}

/* expand - full expansion of key; returns a problem text or NULL */
static const char *
expand(const struct tables *t, const char *key, struct expansion *exp,
    char *why, size_t whysize)
{
	struct expand_ctx x;

	memset(&x, 0, sizeof(x));
	memset(exp, 0, sizeof(*exp));
	x.t = t;
	x.visiting = hmap_new();
	x.seen = hmap_new();
	x.exp = exp;
	expand_key(&x, key);
	hmap_free(x.visiting, NULL);
	hmap_free(x.seen, NULL);
	if (x.cycle) {
		bsnprintf(why, whysize, "alias cycle through '%s'", x.cycle);
		return why;
	}
	if (x.nexternal > 1) {
		bsnprintf(why, whysize, "expands to %d external targets (at "
		    "most one is allowed)", x.nexternal);
		return why;
	}
	if (x.unknown) {
		bsnprintf(why, whysize, "target '%s' is neither a mailbox nor "
		    "an alias", x.unknown);
		return why;
	}
	return NULL;
}

struct check_ctx {
	struct loader *l;
	const char *aliases_path;
};

static void
check_alias(const char *key, void *val, void *arg)
{
	struct check_ctx *cc = arg;
	struct alias *al = val;
	struct expansion exp;
	char why[512];

	if (expand(cc->l->t, key, &exp, why, sizeof(why)) != NULL) {
		config_problem(cc->l->fn, cc->l->arg, cc->aliases_path, al->line,
		    "alias '%s': %s", al->spelling, why);
		cc->l->problems++;
	}
	expansion_free(&exp);
}

struct tables *
tables_load(struct config *c, config_problem_fn fn, void *arg)
{
	struct tables *t = xcalloc(1, sizeof(*t));
	struct loader l = { .t = t, .fn = fn, .arg = arg };

	t->cfg = config_ref(c);
	t->mailboxes = hmap_new();
	t->aliases = hmap_new();
	load_mailboxes(&l, c->mailboxes);
	if (c->aliases)
		load_aliases(&l, c->aliases);
	t->postmaster = xstrdup(c->postmaster ? c->postmaster :
	    t->first_mailbox ? t->first_mailbox : "");
	if (l.problems == 0) {
		struct check_ctx cc = { &l, c->aliases };

		hmap_walk(t->aliases, check_alias, &cc);
	}
	if (l.problems == 0 && t->postmaster[0] == '\0') {
		config_problem(fn, arg, c->path, c->mailboxes_line,
		    "mailboxes: the table is empty, so postmaster has nowhere to go");
		l.problems++;
	} else if (l.problems == 0) {
		struct mailaddr a;
		char key[PATH_MAX_OCTETS + 1], found[PATH_MAX_OCTETS + 1];

		if (addr_parse(t->postmaster, &a, ADDR_F_UTF8) == ADDR_OK &&
		    addr_key(&a, key, sizeof(key)) && is_local(c, &a) &&
		    !find_key(t, key, found, sizeof(found))) {
			config_problem(fn, arg, c->path, c->postmaster_line,
			    "postmaster: '%s' is neither a mailbox nor an alias",
			    t->postmaster);
			l.problems++;
		}
	}
	if (l.problems) {
		tables_free(t);
		return NULL;
	}
	return t;
}

/* resolve_found - the expansion of a key that is in a table */
static bool
resolve_found(const struct tables *t, const char *found, struct expansion *exp)
{
	bool catchall = exp->catchall;
	char why[512];

	if (expand(t, found, exp, why, sizeof(why)) != NULL && exp->nmailboxes == 0
	    && exp->external == NULL) {
		expansion_free(exp);
		return false;
	}
	exp->catchall = catchall;
	return exp->nmailboxes > 0 || exp->external != NULL;
}

bool
tables_resolve(const struct tables *t, const char *key, struct expansion *exp)
{
	char found[PATH_MAX_OCTETS + 1];
	const char *at = strrchr(key, '@');
	size_t ll = at ? (size_t)(at - key) : strlen(key);

	memset(exp, 0, sizeof(*exp));
	if (at && !config_is_local_domain(t->cfg, at + 1))
		return false;
	if (!find_key(t, key, found, sizeof(found))) {
		struct mailaddr a;
		char pkey[PATH_MAX_OCTETS + 1];

		/* RFC 5321 4.5.1: postmaster@ every local domain, and <postmaster> */
		if (ll != 10 || strncmp(key, "postmaster", 10) != 0) {
			/* the domain's catch-all, below every other entry */
			if (at == NULL || !bsnprintf(found, sizeof(found), "@%s",
			    at + 1) || hmap_get(t->aliases, found) == NULL)
				return false;
			exp->catchall = true;
			return resolve_found(t, found, exp);
		}
		if (addr_parse(t->postmaster, &a, ADDR_F_UTF8) != ADDR_OK ||
		    !addr_key(&a, pkey, sizeof(pkey)))
			return false;
		if (!is_local(t->cfg, &a)) {
			exp->external = xstrdup(t->postmaster);
			return true;
		}
		if (!find_key(t, pkey, found, sizeof(found)))
			return false;
	}
	return resolve_found(t, found, exp);
}

void
expansion_free(struct expansion *exp)
{
	for (size_t i = 0; i < exp->nmailboxes; i++)
		free(exp->mailboxes[i]);
	free(exp->mailboxes);
	free(exp->external);
	memset(exp, 0, sizeof(*exp));
}

size_t
tables_mailbox_count(const struct tables *t)
{
	return hmap_count(t->mailboxes);
}
