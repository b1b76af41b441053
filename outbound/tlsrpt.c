/*
 * tlsrpt.c - TLS-RPT counts (RFC 8460 4.3) and the JSON report (4.4).
 *
 * A period's counts are a list of policy domains, each with its policies
 * (policy-type and mx-host: DANE's TLSA are a host's, MTA-STS's policy
 * the domain's, applied to one MX host at a time) and each policy with
 * its successful and failed sessions and its failure-details rows (one a
 * result-type, sending and receiving address, MX host and reason).  The
 * caps (tlsrpt.h) bound the whole: past them a session is still counted
 * in its policy's totals where the policy is kept, never in a new row.
 *
 * The counts live in memory and in DIR/counts, rewritten whole on a disk
 * worker (tmp, fsync, rename) when they changed, at most as often as the
 * loop calls tlsrpt_save, and at exit; so a restart loses at most the
 * sessions since the last save.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/clock.h"
#include "../common/log.h"
#include "../common/util.h"
#include "../common/worker.h"
#include "tlsrpt.h"

#define TLSRPT_FILE_VERSION	1
#define TLSRPT_FILE_MAX		(4 * 1024 * 1024)	/* octets of counts loaded */
#define FIELD_MAX		256	/* octets of a text field kept */

struct tr_failure {
	enum tlsrpt_result result;
	uint64_t count;
	char *sending_ip, *receiving_ip, *mx, *reason;
};

struct tr_policy {
	enum tlsrpt_policy type;
	char *mx, *policy_string;	/* policy_string NULL: none */
	uint64_t ok, failed;
	struct tr_failure *f;
	size_t nf;
};

struct tr_domain {
	char *name;
	struct tr_policy *p;
	size_t np;
};

struct tlsrpt_counts {
	time_t start;
	struct tr_domain *d;
	size_t nd;
	bool capped;		/* something was left out (logged once) */
};

static const char *const result_names[TR_COUNT] = {
	[TR_STARTTLS_NOT_SUPPORTED] = "starttls-not-supported",
	[TR_CERTIFICATE_HOST_MISMATCH] = "certificate-host-mismatch",
	[TR_CERTIFICATE_EXPIRED] = "certificate-expired",
	[TR_CERTIFICATE_NOT_TRUSTED] = "certificate-not-trusted",
	[TR_VALIDATION_FAILURE] = "validation-failure",
	[TR_TLSA_INVALID] = "tlsa-invalid",
	[TR_DNSSEC_INVALID] = "dnssec-invalid",
	[TR_DANE_REQUIRED] = "dane-required",
	[TR_STS_POLICY_FETCH_ERROR] = "sts-policy-fetch-error",
	[TR_STS_POLICY_INVALID] = "sts-policy-invalid",
	[TR_STS_WEBPKI_INVALID] = "sts-webpki-invalid",
};

static struct {
	char *dir, *path, *tmp;
	struct tlsrpt_counts *t;
	bool dirty, writing;
} tr;

const char *
tlsrpt_result_name(enum tlsrpt_result r)
{
	return r < TR_COUNT ? result_names[r] : "validation-failure";
}

static bool
result_parse(const char *s, enum tlsrpt_result *r)
{
	for (int i = 0; i < TR_COUNT; i++)
		if (strcmp(s, result_names[i]) == 0) {
			*r = (enum tlsrpt_result)i;
			return true;
		}
	return false;
}

/* field_dup - s cut to FIELD_MAX octets ("" for NULL) */
static char *
field_dup(const char *s)
{
	return xstrndup(s ? s : "", FIELD_MAX);
}

static bool
same(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") == 0;
}

/* tlsrpt_counts_new - see tlsrpt.h */
struct tlsrpt_counts *
tlsrpt_counts_new(time_t start)
{
	struct tlsrpt_counts *t = xcalloc(1, sizeof(*t));

	t->start = start;
	return t;
}

void
tlsrpt_counts_free(struct tlsrpt_counts *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->nd; i++) {
		struct tr_domain *d = &t->d[i];

		for (size_t j = 0; j < d->np; j++) {
			struct tr_policy *p = &d->p[j];

			for (size_t k = 0; k < p->nf; k++) {
				free(p->f[k].sending_ip);
				free(p->f[k].receiving_ip);
				free(p->f[k].mx);
				free(p->f[k].reason);
			}
			free(p->f);
			free(p->mx);
			free(p->policy_string);
		}
		free(d->p);
		free(d->name);
	}
	free(t->d);
	free(t);
}

static struct tr_domain *
domain_get(struct tlsrpt_counts *t, const char *name, bool add)
{
	for (size_t i = 0; i < t->nd; i++)
		if (strcasecmp(t->d[i].name, name) == 0)
			return &t->d[i];
	if (!add || t->nd >= TLSRPT_DOMAINS_MAX)
		return NULL;
	t->d = xreallocarray(t->d, t->nd + 1, sizeof(*t->d));
	memset(&t->d[t->nd], 0, sizeof(t->d[0]));
	t->d[t->nd].name = field_dup(name);
	return &t->d[t->nd++];
}

static struct tr_policy *
policy_get(struct tr_domain *d, enum tlsrpt_policy type, const char *mx,
    const char *ps)
{
	struct tr_policy *p;

	for (size_t i = 0; i < d->np; i++)
		if (d->p[i].type == type && strcasecmp(d->p[i].mx, mx) == 0) {
			/* the policy now in force is the one reported */
			if (ps && !same(d->p[i].policy_string, ps)) {
				free(d->p[i].policy_string);
				d->p[i].policy_string = xstrndup(ps, 4096);
			}
			return &d->p[i];
		}
	if (d->np >= TLSRPT_POLICIES_MAX)
		return NULL;
	d->p = xreallocarray(d->p, d->np + 1, sizeof(*d->p));
	p = &d->p[d->np++];
	memset(p, 0, sizeof(*p));
	p->type = type;
	p->mx = field_dup(mx);
	p->policy_string = ps ? xstrndup(ps, 4096) : NULL;
	return p;
}

static struct tr_failure *
failure_get(struct tr_policy *p, enum tlsrpt_result r, const char *sip,
    const char *rip, const char *mx, const char *reason)
{
	struct tr_failure *f;

	for (size_t i = 0; i < p->nf; i++) {
		f = &p->f[i];
		if (f->result == r && same(f->sending_ip, sip) &&
		    same(f->receiving_ip, rip) && same(f->mx, mx) &&
		    strncmp(f->reason, reason ? reason : "", FIELD_MAX) == 0)
			return f;
	}
	if (p->nf >= TLSRPT_FAILURES_MAX)
		return NULL;
	p->f = xreallocarray(p->f, p->nf + 1, sizeof(*p->f));
	f = &p->f[p->nf++];
	memset(f, 0, sizeof(*f));
	f->result = r;
	f->sending_ip = field_dup(sip);
	f->receiving_ip = field_dup(rip);
	f->mx = field_dup(mx);
	f->reason = field_dup(reason);
	return f;
}

/* tlsrpt_counts_add - see tlsrpt.h; false when a cap left something out */
bool
tlsrpt_counts_add(struct tlsrpt_counts *t, const struct tlsrpt_session *s)
{
	struct tr_domain *d = domain_get(t, s->domain, true);
	struct tr_policy *p;
	struct tr_failure *f;

	if (d == NULL || (p = policy_get(d, s->type, s->mx_host ? s->mx_host : "",
	    s->policy_string)) == NULL)
		return false;
	if (s->ok) {
		p->ok++;
		return true;
	}
	p->failed++;
	if ((f = failure_get(p, s->result, s->sending_ip, s->receiving_ip,
	    s->mx_host, s->reason)) == NULL)
		return false;
	f->count++;
	return true;
}

time_t
tlsrpt_counts_start(const struct tlsrpt_counts *t)
{
	return t->start;
}

size_t
tlsrpt_domains(const struct tlsrpt_counts *t)
{
	return t ? t->nd : 0;
}

const char *
tlsrpt_domain(const struct tlsrpt_counts *t, size_t i)
{
	return t->d[i].name;
}

/* ---- the file's form ---- */

/* put_word - s as one word: "-" for "", %XX for blanks, controls, '%', 8-bit */
static void
put_word(struct strbuf *b, const char *s)
{
	if (s == NULL || *s == '\0' || strcmp(s, "-") == 0) {
		strbuf_printf(b, " %s", s && *s ? "%2D" : "-");
		return;
	}
	strbuf_add(b, " ", 1);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p <= ' ' || *p == '%' || *p >= 0x7f)
			strbuf_printf(b, "%%%02X", *p);
		else
			strbuf_add(b, (const char *)p, 1);
}

/* word_take - the next word of *line, undone from put_word (NULL: none) */
static char *
word_take(char **line)
{
	char *w = *line, *o, *r;

	while (*w == ' ')
		w++;
	if (*w == '\0')
		return NULL;
	for (r = w; *r && *r != ' '; r++)
		;
	if (*r)
		*r++ = '\0';
	*line = r;
	if (strcmp(w, "-") == 0)
		return w + 1;		/* "" */
	for (o = r = w; *r; r++) {
		unsigned v;

		if (*r == '%' && sscanf(r + 1, "%2x", &v) == 1 && v > 0) {
			*o++ = (char)v;
			r += 2;
		} else
			*o++ = *r;
	}
	*o = '\0';
	return w;
}

char *
tlsrpt_counts_text(const struct tlsrpt_counts *t, size_t *len)
{
	struct strbuf b = { 0 };

	strbuf_printf(&b, "tlsrpt %d %lld\n", TLSRPT_FILE_VERSION,
	    (long long)t->start);
	for (size_t i = 0; i < t->nd; i++) {
		const struct tr_domain *d = &t->d[i];

		strbuf_add(&b, "d", 1);
		put_word(&b, d->name);
		strbuf_add(&b, "\n", 1);
		for (size_t j = 0; j < d->np; j++) {
			const struct tr_policy *p = &d->p[j];

			strbuf_printf(&b, "p %s %llu %llu", p->type == TLSRPT_TLSA ?
			    "tlsa" : "sts", (unsigned long long)p->ok,
			    (unsigned long long)p->failed);
			put_word(&b, p->mx);
			if (p->policy_string)
				put_word(&b, p->policy_string);
			strbuf_add(&b, "\n", 1);
			for (size_t k = 0; k < p->nf; k++) {
				const struct tr_failure *f = &p->f[k];

				strbuf_printf(&b, "f %s %llu",
				    result_names[f->result],
				    (unsigned long long)f->count);
				put_word(&b, f->sending_ip);
				put_word(&b, f->receiving_ip);
				put_word(&b, f->mx);
				put_word(&b, f->reason);
				strbuf_add(&b, "\n", 1);
			}
		}
	}
	*len = b.len;
	return b.len ? b.p : xstrdup("");
}

struct tlsrpt_counts *
tlsrpt_counts_parse(const char *text, size_t len)
{
	char *copy = xstrndup(text, len), *line, *next;
	struct tlsrpt_counts *t = NULL;
	struct tr_domain *d = NULL;
	struct tr_policy *p = NULL;
	int version;
	long long start;

	if (sscanf(copy, "tlsrpt %d %lld", &version, &start) != 2 ||
	    version != TLSRPT_FILE_VERSION)
		goto bad;
	t = tlsrpt_counts_new((time_t)start);
	if ((line = strchr(copy, '\n')) == NULL)
		goto bad;
	for (line++; *line; line = next + 1) {
		char *w[7] = { 0 }, *rest;
		size_t n = 0;

		if ((next = strchr(line, '\n')) == NULL)
			goto bad;
		*next = '\0';
		rest = line;
		while (n < 7 && (w[n] = word_take(&rest)) != NULL)
			n++;
		if (n == 2 && strcmp(w[0], "d") == 0 && *w[1]) {
			if (t->nd >= TLSRPT_DOMAINS_MAX)
				goto bad;
			d = domain_get(t, w[1], true);
			p = NULL;
		} else if ((n == 5 || n == 6) && strcmp(w[0], "p") == 0 && d &&
		    (strcmp(w[1], "tlsa") == 0 || strcmp(w[1], "sts") == 0)) {
			if ((p = policy_get(d, strcmp(w[1], "tlsa") == 0 ?
			    TLSRPT_TLSA : TLSRPT_STS, w[4], n == 6 ? w[5] :
			    NULL)) == NULL)
				goto bad;
			p->ok = strtoull(w[2], NULL, 10);
			p->failed = strtoull(w[3], NULL, 10);
		} else if (n == 7 && strcmp(w[0], "f") == 0 && p) {
			enum tlsrpt_result r;
			struct tr_failure *f;

			if (!result_parse(w[1], &r) || (f = failure_get(p, r, w[3],
			    w[4], w[5], w[6])) == NULL)
				goto bad;
			f->count = strtoull(w[2], NULL, 10);
		} else
			goto bad;
	}
	free(copy);
	return t;
bad:
	free(copy);
	tlsrpt_counts_free(t);
	return NULL;
}

/* ---- the report (RFC 8460 4.4) ---- */

/* put_json - s as a JSON string (RFC 8259 7); 8-bit octets become '?' */
static void
put_json(struct strbuf *b, const char *s)
{
	strbuf_add(b, "\"", 1);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p == '"' || *p == '\\')
			strbuf_printf(b, "\\%c", *p);
		else if (*p < ' ')
			strbuf_printf(b, "\\u%04x", *p);
		else if (*p >= 0x7f)
			strbuf_add(b, "?", 1);
		else
			strbuf_add(b, (const char *)p, 1);
	strbuf_add(b, "\"", 1);
}

static void
put_time(struct strbuf *b, time_t t)
{
	struct tm tm;
	char s[32];

	gmtime_r(&t, &tm);
	strftime(s, sizeof(s), "%Y-%m-%dT%H:%M:%SZ", &tm);
	put_json(b, s);
}

/* put_policy_string - the lines of ps as a JSON array */
static void
put_policy_string(struct strbuf *b, const char *ps)
{
	const char *s = ps;

	strbuf_add(b, "[", 1);
	while (*s) {
		size_t n = strcspn(s, "\n");
		char *line = xstrndup(s, n);

		if (s != ps)
			strbuf_add(b, ",", 1);
		put_json(b, line);
		free(line);
		s += n;
		if (*s)
			s++;
	}
	strbuf_add(b, "]", 1);
}

char *
tlsrpt_json(const struct tlsrpt_counts *t, size_t i, const char *org,
    const char *contact, const char *id, time_t start, time_t end, size_t *len)
{
	const struct tr_domain *d = &t->d[i];
	struct strbuf b = { 0 };

	strbuf_add(&b, "{\"organization-name\":", 21);
	put_json(&b, org);
	strbuf_add(&b, ",\"date-range\":{\"start-datetime\":", 32);
	put_time(&b, start);
	strbuf_add(&b, ",\"end-datetime\":", 16);
	put_time(&b, end);
	strbuf_add(&b, "},\"contact-info\":", 17);
	put_json(&b, contact);
	strbuf_add(&b, ",\"report-id\":", 13);
	put_json(&b, id);
	strbuf_add(&b, ",\"policies\":[", 13);
	for (size_t j = 0; j < d->np; j++) {
		const struct tr_policy *p = &d->p[j];

		strbuf_printf(&b, "%s{\"policy\":{\"policy-type\":\"%s\"",
		    j ? "," : "", p->type == TLSRPT_TLSA ? "tlsa" : "sts");
		if (p->policy_string) {
			strbuf_add(&b, ",\"policy-string\":", 17);
			put_policy_string(&b, p->policy_string);
		}
		strbuf_add(&b, ",\"policy-domain\":", 17);
		put_json(&b, d->name);
		if (*p->mx) {
			strbuf_add(&b, ",\"mx-host\":", 11);
			put_json(&b, p->mx);
		}
		strbuf_printf(&b, "},\"summary\":{\"total-successful-session-count\":"
		    "%llu,\"total-failure-session-count\":%llu}",
		    (unsigned long long)p->ok, (unsigned long long)p->failed);
		if (p->nf)
			strbuf_add(&b, ",\"failure-details\":[", 20);
		for (size_t k = 0; k < p->nf; k++) {
			const struct tr_failure *f = &p->f[k];

			strbuf_printf(&b, "%s{\"result-type\":\"%s\"", k ? "," : "",
			    result_names[f->result]);
			if (*f->sending_ip) {
				strbuf_add(&b, ",\"sending-mta-ip\":", 18);
				put_json(&b, f->sending_ip);
			}
			if (*f->receiving_ip) {
				strbuf_add(&b, ",\"receiving-ip\":", 16);
				put_json(&b, f->receiving_ip);
			}
			if (*f->mx) {
				strbuf_add(&b, ",\"receiving-mx-hostname\":", 25);
				put_json(&b, f->mx);
			}
			strbuf_printf(&b, ",\"failed-session-count\":%llu",
			    (unsigned long long)f->count);
			if (*f->reason) {
				strbuf_add(&b, ",\"failure-reason-code\":", 23);
				put_json(&b, f->reason);
			}
			strbuf_add(&b, "}", 1);
		}
		strbuf_add(&b, p->nf ? "]}" : "}", p->nf ? 2 : 1);
	}
	strbuf_add(&b, "]}\n", 3);
	*len = b.len;
	return b.p;
}

/* ---- the daemon's counts and their file ---- */

struct save_job {
	char *path, *tmp, *data;
	size_t len;
	int err;
};

static int
write_file(const char *path, const char *tmp, const char *data, size_t len)
{
	int fd, err = 0;

	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd == -1 || write_full(fd, data, len) == -1 || fsync(fd) == -1 ||
	    rename(tmp, path) == -1)
		err = errno ? errno : EIO;
	if (fd != -1)
		close(fd);
	if (err)
		unlink(tmp);
	return err;
}

static void
save_work(void *arg)
{
	struct save_job *j = arg;

	errno = 0;
	j->err = write_file(j->path, j->tmp, j->data, j->len);
}

static void
save_done(void *arg)
{
	struct save_job *j = arg;

	if (j->err)
		log_warnx("tlsrpt: cannot write %s: %s", j->path, strerror(j->err));
	tr.writing = false;
	free(j->path);
	free(j->tmp);
	free(j->data);
	free(j);
}

int
tlsrpt_open(const char *dir, char *err, size_t errsize)
{
	char *text = NULL;
	struct stat st;
	int fd;

	if (mkdir(dir, 0700) == -1 && errno != EEXIST) {
		bsnprintf(err, errsize, "%s: %s", dir, strerror(errno));
		return -1;
	}
	tr.dir = xstrdup(dir);
	tr.path = xasprintf("%s/counts", dir);
	tr.tmp = xasprintf("%s/.counts.tmp", dir);
	if ((fd = open(tr.path, O_RDONLY | O_CLOEXEC)) != -1) {
		if (fstat(fd, &st) == 0 && st.st_size > 0 &&
		    st.st_size <= TLSRPT_FILE_MAX) {
			text = xmalloc((size_t)st.st_size);
			if (read(fd, text, (size_t)st.st_size) == st.st_size)
				tr.t = tlsrpt_counts_parse(text, (size_t)st.st_size);
			if (tr.t == NULL)
				log_warnx("tlsrpt: %s is not a counts file: "
				    "counting anew", tr.path);
			free(text);
		}
		close(fd);
	}
	return 0;
}

void
tlsrpt_close(void)
{
	if (tr.path && tr.dirty && tr.t) {
		size_t len;
		char *data = tlsrpt_counts_text(tr.t, &len);
		int e = write_file(tr.path, tr.tmp, data, len);

		if (e)
			log_warnx("tlsrpt: cannot write %s: %s", tr.path, strerror(e));
		free(data);
	}
	tlsrpt_counts_free(tr.t);
	free(tr.dir);
	free(tr.path);
	free(tr.tmp);
	memset(&tr, 0, sizeof(tr));
}

void
tlsrpt_count(const struct tlsrpt_session *s)
{
	if (tr.path == NULL || s->domain == NULL || *s->domain == '\0')
		return;
	if (tr.t == NULL)
		tr.t = tlsrpt_counts_new(clock_now());
	if (!tlsrpt_counts_add(tr.t, s) && !tr.t->capped) {
		char esc[LOG_ESC(FIELD_MAX)];

		tr.t->capped = true;
		log_warnx("tlsrpt: counts full (%d domains, %d policies a domain, "
		    "%d failure rows a policy): domain=%s left out of this period",
		    TLSRPT_DOMAINS_MAX, TLSRPT_POLICIES_MAX, TLSRPT_FAILURES_MAX,
		    log_field(esc, sizeof(esc), s->domain));
	}
	tr.dirty = true;
}

void
tlsrpt_save(void)
{
	struct save_job *j;

	if (tr.path == NULL || !tr.dirty || tr.writing)
		return;
	j = xcalloc(1, sizeof(*j));
	j->path = xstrdup(tr.path);
	j->tmp = xstrdup(tr.tmp);
	if (tr.t)
		j->data = tlsrpt_counts_text(tr.t, &j->len);
	else
		j->data = xasprintf("tlsrpt %d %lld\n", TLSRPT_FILE_VERSION,
		    (long long)clock_now());
	if (tr.t == NULL)
		j->len = strlen(j->data);
	tr.dirty = false;
	tr.writing = true;
	worker_submit(save_work, save_done, j);
}

time_t
tlsrpt_period_start(void)
{
	return tr.t ? tr.t->start : 0;
}

struct tlsrpt_counts *
tlsrpt_take(void)
{
	struct tlsrpt_counts *t = tr.t;

	tr.t = NULL;
	if (t != NULL) {
		tr.dirty = true;
		tlsrpt_save();
	}
	return t;
}
