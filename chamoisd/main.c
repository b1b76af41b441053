/*
 * main.c - chamoisd, the composition root: read the config, bind, drop
 * privileges, wire the modules together, run the loop.
 *
 * chamoisd [-f FILE] [-d] [-n] [-v]   (chamoisd(8))
 *
 * Start-up (main): the config, tables and TLS contexts and the checks of
 * what they name (load_all), the
 * event base and the signals, the listeners and the local sockets (bound
 * while root), the outbound resolver and client TLS context, the
 * privilege drop, the queue, the worker threads, the loop probe
 * (common/loopwatch.c).  Each module gets what it needs at its init and
 * keeps its own state; the root holds the config, tables and TLS
 * contexts in force and hands them on.
 *
 * SIGHUP: the config, the tables and the TLS contexts are parsed on a
 * worker thread (reload_work: file reads and the hostname look-up never
 * stall the loop) and swapped in on the loop (reload_done): the engine,
 * the queue, the submit and admin sockets each get them through their
 * configure function, take their own reference (config_ref, tables_ref)
 * and let go of the old ones, which are freed once their last holder (a
 * session, a queue attempt, a connection) is done.  A config or tables
 * with errors keep the old ones; a broken certificate keeps the old
 * certificate ("reload done ... tls=kept-old").  A SIGHUP while a parse
 * runs makes one more run after it.  What only start-up reads (listen,
 * queue_dir, user, worker_threads, dns_server, metrics_listen,
 * srs_secret) keeps its value
 * in force, and a change to it is logged as needing a restart
 * (keep_start_settings).
 *
 * Checks (load_all): -n and the start run the same ones, each an error
 * for both or a warning for both (chamoisd(8), CHECKS).
 *
 * SIGTERM/SIGINT: stop accepting (listeners, submit socket), the queue
 * starts no new attempt, the admin socket answers 421, idle sessions get
 * 421; the rest finish, up to shutdown_grace, after which the remaining
 * sessions are closed.  A second signal closes them at once.
 *
 * Leaving the loop is decided here and nowhere else: while stopping, the
 * timer stop_ev asks every module whether it is idle (stop_check: no
 * session open, no worker job pending, and queue_idle, submit_idle,
 * admin_idle) every STOP_CHECK_MS; the first time all say yes the loop
 * ends.  No module ends the loop itself or calls back into the root.  A
 * poll, rather than a hook in each module, keeps the modules free of the
 * root; it runs only while stopping, and costs at most STOP_CHECK_MS of
 * delay at the exit.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>


#include <event2/event.h>
#include <event2/thread.h>
#include <openssl/err.h>

#include "../common/body.h"
#include "../common/loopwatch.h"
#include "../common/util.h"
#include "../common/worker.h"
#include "../config.h"
#include "../checks/engine.h"
#include "../filter/engine.h"
#include "../dkim/signer.h"
#include "../forward/forward.h"
#include "../local/lmtp.h"
#include "../maildir/maildir.h"
#include "../outbound/client.h"
#include "../outbound/mtasts.h"
#include "../outbound/resolver.h"
#include "../queue/admin.h"
#include "../queue/queue.h"
#include "../queue/route.h"
#include "../queue/submit.h"
#include "../submission/submission.h"
#include "metrics.h"
#include "../smtpd/smtpd.h"

#define STOP_CHECK_MS	25	/* while stopping: how often idleness is asked */
#define RELOAD_PROBLEMS_MAX 200	/* problems of one reload that are logged */

static const char *config_path = CHAMOIS_CONFIG_FILE;

/* what the root holds and hands on; loop thread only */
static struct {
	struct event_base *base;
	struct config *cfg;		/* in force (the root's reference) */
	struct tables *tables;
	SSL_CTX *tls_mx;		/* port 25: any version the library allows */
	SSL_CTX *tls_sub;		/* submission roles: TLS 1.2 or newer */
	struct resolver *resolver;	/* outbound: the queue and forwarding */
	SSL_CTX *tls_client;		/* outbound STARTTLS, opportunistic */
	struct sts *sts;		/* MTA-STS (outbound/mtasts.h); NULL: off */
	bool stopping;
	struct event *grace_ev;		/* shutdown_grace is over */
	struct event *stop_ev;		/* while stopping: stop_check */
	struct dkim_signer *signer;	/* the DKIM keys in force */
	bool reloading;			/* a parse job is on a worker */
	bool reload_again;		/* a SIGHUP came meanwhile */
} root;

static void
print_problem(void *arg, const char *line)
{
	fprintf(stderr, "%s\n", line);
}

static void
log_problem(void *arg, const char *line)
{
	log_warnx("config %s", line);
}

/*
 * unreadable_by_user - which of files the configured user cannot read
 * (bad[i] for files[i]): SIGHUP reloads them after privileges are
 * dropped.  A child takes the user's identity, tries, and writes one
 * octet a file to a pipe; -1 if that cannot be told, else how many.
 */
static int
unreadable_by_user(const struct config *c, const char *const *files, size_t n,
    bool *bad)
{
	struct passwd *pw = getpwnam(c->user);
	int status, fds[2], count = 0;
	size_t got = 0;
	pid_t pid;

	if (pw == NULL || geteuid() != 0 || pipe(fds) == -1)
		return -1;
	if ((pid = fork()) == -1) {
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	if (pid == 0) {
		close(fds[0]);
		if (initgroups(pw->pw_name, pw->pw_gid) == -1 ||
		    setgid(pw->pw_gid) == -1 || setuid(pw->pw_uid) == -1)
			_exit(255);
		for (size_t i = 0; i < n; i++) {
			FILE *f = files[i] ? fopen(files[i], "r") : NULL;
			char r = files[i] && f == NULL ? '1' : '0';

			if (f)
				fclose(f);
			if (write_full(fds[1], &r, 1) == -1)
				_exit(255);
		}
		_exit(0);
	}
	close(fds[1]);
	while (got < n) {
		char r;
		ssize_t k = read(fds[0], &r, 1);

		if (k == -1 && errno == EINTR)
			continue;
		if (k != 1)
			break;
		bad[got++] = r == '1';
	}
	close(fds[0]);
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0 || got != n)
		return -1;
	for (size_t i = 0; i < n; i++)
		count += bad[i];
	return count;
}

/*
 * check_user_switch - an error for -n and the start alike: a chamoisd not
 * started as root can only stay the user it is (drop_privileges)
 */
static bool
check_user_switch(const struct config *c, config_problem_fn fn)
{
	struct passwd *pw;

	if (c->user == NULL || geteuid() == 0 ||
	    (pw = getpwnam(c->user)) == NULL ||
	    (pw->pw_uid == geteuid() && pw->pw_uid == getuid()))
		return true;
	config_problem(fn, NULL, c->path, config_line(c, "user"),
	    "user: chamoisd runs as uid %u, not root, so it cannot become '%s' "
	    "(start it as root or as that user)", (unsigned)geteuid(), c->user);
	return false;
}

/*
 * check_user_access - the files SIGHUP rereads, as the user will read
 * them; a warning (chamoisd(8), "CHECKS"): what was read at start stays
 * in force.  A file this process cannot read either is left to its own
 * check.
 */
static bool
check_user_access(const struct config *c, config_problem_fn fn)
{
	const char *const fixed[] = { c->mailboxes, c->aliases, c->tls_cert,
	    c->tls_key, c->sasl_db, c->relay_auth, c->tls_ca_file };
	const char *const fixed_keys[] = { "mailboxes", "aliases", "tls_cert",
	    "tls_key", "sasl_db", "relay_auth", "tls_ca_file" };
	size_t n = nitems(fixed) + c->ndkim_keys;
	const char **files = xreallocarray(NULL, n, sizeof(*files));
	bool *bad = xcalloc(n, sizeof(*bad));
	int count;

	/* then every dkim_key's file, named with its own line */
	memcpy(files, fixed, sizeof(fixed));
	for (size_t i = 0; i < c->ndkim_keys; i++)
		files[nitems(fixed) + i] = c->dkim_keys[i].file;
	if (c->user == NULL || (count = unreadable_by_user(c, files, n,
	    bad)) <= 0) {
		free(files);
		free(bad);
		return true;
	}
	for (size_t i = 0; i < n; i++) {
		bool dk = i >= nitems(fixed);
		const char *key = dk ? "dkim_key" : fixed_keys[i];
		int line = dk ? c->dkim_keys[i - nitems(fixed)].line :
		    config_line(c, key);

		if (bad[i] && access(files[i], R_OK) == 0)
			config_problem(fn, NULL, c->path, line,
			    "warning: %s: user '%s' cannot read %s, so SIGHUP "
			    "could not reload it (make it readable by the user "
			    "or its group; until then restart chamoisd to "
			    "apply a change)", key, c->user, files[i]);
	}
	free(files);
	free(bad);
	return false;
}

/*
 * check_dir - queue_dir or maildir_root: a directory, or creatable (its
 * nearest existing parent is a directory this process may write in);
 * prepare_dirs makes and chowns it at start
 */
static bool
check_dir(const struct config *c, const char *key, const char *path,
    config_problem_fn fn)
{
	char dir[4096];
	struct stat st;
	char *slash;

	if (!str_copy(dir, path, sizeof(dir))) {
		config_problem(fn, NULL, c->path, config_line(c, key),
		    "%s: path too long", key);
		return false;
	}
	while (stat(dir, &st) == -1) {
		if (errno != ENOENT || (slash = strrchr(dir, '/')) == NULL) {
			config_problem(fn, NULL, c->path, config_line(c, key),
			    "%s: %s: %s", key, dir, strerror(errno));
			return false;
		}
		if (slash == dir)
			slash[1] = '\0';
		else
			*slash = '\0';
	}
	if (!S_ISDIR(st.st_mode)) {
		config_problem(fn, NULL, c->path, config_line(c, key),
		    "%s: %s is not a directory", key, dir);
		return false;
	}
	if (strcmp(dir, path) != 0 && access(dir, W_OK | X_OK) == -1) {
		config_problem(fn, NULL, c->path, config_line(c, key),
		    "%s: cannot create %s in %s: %s", key, path, dir,
		    strerror(errno));
		return false;
	}
	return true;
}

/* has_submission - is a submission role listened on? */
static bool
has_submission(const struct config *c)
{
	for (size_t i = 0; i < c->nlistens; i++)
		if (c->listens[i].role != ROLE_MX)
			return true;
	return false;
}

/*
 * named_hosts - the address of each milter and of the LMTP target named
 * by its host, from /etc/hosts (chamois.conf(5) "milter",
 * "local_delivery"): the count of those not there, each told to fn
 */
static int
named_hosts(struct config *c, config_problem_fn fn, void *arg)
{
	int problems = 0;

	if (c->lmtp_host != NULL && !resolver_hosts_file(c->lmtp_host,
	    c->lmtp_port, &c->lmtp_ss, &c->lmtp_sslen)) {
		config_problem(fn, arg, c->path, config_line(c, "local_delivery"),
		    "local_delivery: '%s' is not in /etc/hosts (a name is looked "
		    "up there only: give its address)", c->lmtp_host);
		problems++;
	}
	for (size_t i = 0; i < c->nmilters; i++) {
		struct milter_conf *m = &c->milters[i];

		if (m->host != NULL &&
		    !resolver_hosts_file(m->host, m->port, &m->ss, &m->sslen)) {
			config_problem(fn, arg, c->path, m->line, "milter: '%s' is "
			    "not in /etc/hosts (a milter's name is looked up there "
			    "only: give its address)", m->host);
			problems++;
		}
	}
	return problems;
}

/*
 * load_all - config, tables and TLS contexts, and every check of what
 * they name, the same for -n and the daemon's start (chamoisd(8),
 * "CHECKS"): errors go to fn and make it false; warnings ("warning: "
 * messages) go to warn.  Config errors do not stop the checks of what
 * the keys that were read name; what could not be checked is said once.
 */
static bool
load_all(const char *path, config_problem_fn fn, config_problem_fn warn,
    struct config **cp, struct tables **tp, SSL_CTX **mx, SSL_CTX **sub,
    struct dkim_signer **sp)
{
	struct config *c;
	int problems, r, dkim_errors;
	bool ok = true, tables;
	char err[512];

	*cp = NULL;
	*tp = NULL;
	*mx = *sub = NULL;
	*sp = NULL;
	if ((c = config_load_checked(path, fn, NULL, &problems)) == NULL)
		return false;
	problems += config_read_relay_auth(c, fn, NULL);
	problems += named_hosts(c, fn, NULL);
	/* without domains every mailbox line would be reported */
	tables = c->mailboxes && (problems == 0 || c->ndomains > 0);
	if (problems)
		ok = false;
	if (tables && (*tp = tables_load(c, fn, NULL)) == NULL)
		ok = false;
	if (c->tls_cert && c->tls_key) {
		if ((*mx = smtpd_tls_ctx(c->tls_cert, c->tls_key, false, err,
		    sizeof(err))) == NULL ||
		    (*sub = smtpd_tls_ctx(c->tls_cert, c->tls_key, true, err,
		    sizeof(err))) == NULL) {
			config_problem(fn, NULL, c->path,
			    config_line(c, "tls_cert"), "%s", err);
			ok = false;
		}
	}
	/* relay_host's CAs: the file tls_ca_file names, or the system's */
	if (c->relay_host) {
		SSL_CTX *relay = relay_tls_new(c, err, sizeof(err));

		if (relay == NULL) {
			config_problem(fn, NULL, c->path, config_line(c,
			    c->tls_ca_file ? "tls_ca_file" : "relay_host"), "%s", err);
			ok = false;
		}
		SSL_CTX_free(relay);
	}
	/* every dkim_key: readable, a private key, RSA >= 2048 or Ed25519 */
	if ((*sp = dkim_signer_load(c, fn, NULL, &dkim_errors)) != NULL &&
	    dkim_errors)
		ok = false;
	if (c->queue_dir && !check_dir(c, "queue_dir", c->queue_dir, fn))
		ok = false;
	if (c->maildir_root &&
	    !check_dir(c, "maildir_root", c->maildir_root, fn))
		ok = false;
	/* missing: logins get 454 until saslpasswd2 makes it (doc/users.md) */
	if (c->sasl_db && has_submission(c) &&
	    (r = sub_sasl_check(c->sasl_db, err, sizeof(err))) != 0) {
		config_problem(r == -1 ? warn : fn, NULL, c->path,
		    config_line(c, "sasl_db"), "%s%s", r == -1 ? "warning: " :
		    "", err);
		if (r != -1)
			ok = false;
	}
	if (c->user && getpwnam(c->user) == NULL) {
		config_problem(fn, NULL, c->path, config_line(c, "user"),
		    "user: no such user '%s'",
		    c->user);
		ok = false;
	} else if (!check_user_switch(c, fn))
		ok = false;
	else
		check_user_access(c, warn);
	if (problems && (!tables || c->queue_dir == NULL ||
	    c->maildir_root == NULL))
		config_problem(fn, NULL, c->path, 0, "not checked for the "
		    "errors above:%s%s%s", tables ? "" : " the tables",
		    c->queue_dir ? "" : " queue_dir",
		    c->maildir_root ? "" : " maildir_root");
	*cp = c;
	return ok;
}

static void
free_loaded(struct config *c, struct tables *t, SSL_CTX *mx, SSL_CTX *sub,
    struct dkim_signer *signer)
{
	dkim_signer_free(signer);
	tables_free(t);
	SSL_CTX_free(mx);
	SSL_CTX_free(sub);
	config_free(c);
}

/*
 * modules_configure - the config, tables and server TLS contexts in force
 * go to every module that keeps them; each takes its own reference
 */
static void
modules_configure(struct config *c, struct tables *t, SSL_CTX *mx, SSL_CTX *sub)
{
	smtpd_configure(c, t, mx, sub);
	forward_configure(c);
	lmtp_configure(root.base, c);
	sub_configure(root.base, c, t);
	queue_configure(c, t);
	submit_configure(c, t);
	admin_configure(c);
}

/*
 * a SIGHUP's parse, on a worker thread: the job owns everything it
 * reads and makes, and touches nothing of the loop's
 */
struct reload_job {
	char *path;
	struct config *cfg;	/* NULL: the config has errors */
	struct tables *tables;	/* NULL: the tables have errors */
	SSL_CTX *mx, *sub;	/* NULL with tls_err set: a broken certificate */
	char tls_err[512];
	SSL_CTX *relay;		/* relay_host's CAs (relay_tls_new) */
	bool relay_failed;	/* ... could not be loaded: the old ones stay */
	struct dkim_signer *signer;	/* NULL: a key has errors */
	char **problems;	/* "FILE:LINE: message", logged on the loop */
	size_t nproblems, more;
};

static void
collect_problem(void *arg, const char *line)
{
	struct reload_job *j = arg;

	if (j->nproblems == RELOAD_PROBLEMS_MAX) {
		j->more++;
		return;
	}
	j->problems = xreallocarray(j->problems, j->nproblems + 1,
	    sizeof(*j->problems));
	j->problems[j->nproblems++] = xstrdup(line);
}

static void
reload_work(void *arg)
{
	struct reload_job *j = arg;
	struct config *c;
	int errors;

	if ((c = j->cfg = config_load(j->path, collect_problem, j)) == NULL)
		return;
	if (config_read_relay_auth(c, collect_problem, j) != 0 ||
	    named_hosts(c, collect_problem, j) != 0) {
		config_free(c);
		c = j->cfg = NULL;
		return;
	}
	if ((j->tables = tables_load(c, collect_problem, j)) == NULL)
		return;
	if ((j->signer = dkim_signer_load(c, collect_problem, j, &errors)) &&
	    errors) {
		dkim_signer_free(j->signer);
		j->signer = NULL;
	}
	if (c->sasl_db && has_submission(c) &&
	    sub_sasl_check(c->sasl_db, j->tls_err, sizeof(j->tls_err)) != 0)
		config_problem(collect_problem, j, c->path,
		    config_line(c, "sasl_db"), "warning: %s", j->tls_err);
	if (c->relay_host && (j->relay = relay_tls_new(c, j->tls_err,
	    sizeof(j->tls_err))) == NULL) {
		config_problem(collect_problem, j, c->path, config_line(c,
		    c->tls_ca_file ? "tls_ca_file" : "relay_host"), "warning: %s",
		    j->tls_err);
		j->relay_failed = true;
	}
	j->tls_err[0] = '\0';
	if (c->tls_cert &&
	    ((j->mx = smtpd_tls_ctx(c->tls_cert, c->tls_key, false, j->tls_err,
	    sizeof(j->tls_err))) == NULL ||
	    (j->sub = smtpd_tls_ctx(c->tls_cert, c->tls_key, true, j->tls_err,
	    sizeof(j->tls_err))) == NULL)) {
		SSL_CTX_free(j->mx);
		j->mx = NULL;
	}
}

static void reload_start(void);

/* same_str - two optional strings equal? */
static bool
same_str(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

/* keep_str - the value in force stays in the new config */
static void
keep_str(char **to, const char *from)
{
	free(*to);
	*to = from ? xstrdup(from) : NULL;
}

/*
 * same_listens - the listen lines, as role and address text, in order:
 * the bound sockets are not rebound
 */
static bool
same_listens(const struct config *a, const struct config *b)
{
	if (a->nlistens != b->nlistens)
		return false;
	for (size_t i = 0; i < a->nlistens; i++)
		if (a->listens[i].role != b->listens[i].role ||
		    strcmp(a->listens[i].text, b->listens[i].text) != 0)
			return false;
	return true;
}

/* same_secrets - srs_secret lines, in order */
static bool
same_secrets(const struct config *a, const struct config *b)
{
	if (a->nsrs_secrets != b->nsrs_secrets)
		return false;
	for (size_t i = 0; i < a->nsrs_secrets; i++)
		if (strcmp(a->srs_secrets[i], b->srs_secrets[i]) != 0)
			return false;
	return true;
}

/*
 * keep_start_settings - what only start-up reads (chamoisd(8), SIGHUP):
 * a change is logged as needing a restart, and the new config keeps
 * the value in force, so that it tells what the daemon really does
 */
static void
keep_start_settings(struct config *c, const struct config *old)
{
	const char *changed[8];
	size_t n = 0;

	if (!same_listens(c, old)) {
		changed[n++] = "listen";
		free(c->listens);
		c->listens = xreallocarray(NULL, old->nlistens ? old->nlistens :
		    1, sizeof(*c->listens));
		memcpy(c->listens, old->listens, old->nlistens *
		    sizeof(*c->listens));
		c->nlistens = old->nlistens;
	}
	if (!same_str(c->queue_dir, old->queue_dir)) {
		changed[n++] = "queue_dir";
		keep_str(&c->queue_dir, old->queue_dir);
	}
	if (!same_str(c->user, old->user)) {
		changed[n++] = "user";
		keep_str(&c->user, old->user);
	}
	if (c->worker_threads != old->worker_threads) {
		changed[n++] = "worker_threads";
		c->worker_threads = old->worker_threads;
	}
	if (!same_str(c->dns_server_text, old->dns_server_text)) {
		changed[n++] = "dns_server";
		keep_str(&c->dns_server_text, old->dns_server_text);
		c->dns_server = old->dns_server;
		c->dns_server_len = old->dns_server_len;
	}
	if (!same_str(c->metrics_listen_text, old->metrics_listen_text)) {
		changed[n++] = "metrics_listen";
		keep_str(&c->metrics_listen_text, old->metrics_listen_text);
		c->metrics_listen = old->metrics_listen;
		c->metrics_listen_len = old->metrics_listen_len;
	}
	if (!same_secrets(c, old)) {
		changed[n++] = "srs_secret";
		for (size_t i = 0; i < c->nsrs_secrets; i++)
			free(c->srs_secrets[i]);
		free(c->srs_secrets);
		c->srs_secrets = xreallocarray(NULL, old->nsrs_secrets ?
		    old->nsrs_secrets : 1, sizeof(*c->srs_secrets));
		for (size_t i = 0; i < old->nsrs_secrets; i++)
			c->srs_secrets[i] = xstrdup(old->srs_secrets[i]);
		c->nsrs_secrets = old->nsrs_secrets;
	}
	for (size_t i = 0; i < n; i++)
		log_warnx("reload: %s changed; restart chamoisd to apply it",
		    changed[i]);
}

static void raise_fd_limit(const struct config *);

/* reload_done - on the loop: what parsed soundly goes into force */
static void
reload_done(void *arg)
{
	struct reload_job *j = arg;
	struct config *c = j->cfg;
	struct tables *t = j->tables;
	SSL_CTX *mx = j->mx, *sub = j->sub;
	const char *tls = NULL;	/* the certificate in force after it */

	root.reloading = false;
	for (size_t i = 0; i < j->nproblems; i++) {
		log_problem(NULL, j->problems[i]);
		free(j->problems[i]);
	}
	if (j->more)
		log_warnx("config ... and %zu more problems", j->more);
	free(j->problems);
	if (c == NULL)
		log_warnx("reload failed: config has errors; the old one stays");
	else if (t == NULL) {
		log_warnx("reload failed: tables have errors; the old ones stay");
		config_free(c);
	} else {
		/* messages already queued keep their signatures (doc/queue.md) */
		if (j->signer == NULL)
			log_warnx("reload: a dkim_key has errors; the old keys "
			    "stay");
		else {
			queue_set_signer(j->signer);
			dkim_signer_free(root.signer);
			root.signer = j->signer;
			j->signer = NULL;
			log_info("reload dkim keys=%zu",
			    dkim_signer_keys(root.signer));
		}
		keep_start_settings(c, root.cfg);
		if (c->tls_cert && mx == NULL) {
			tls = root.tls_mx ? "kept-old" : "no";
			log_warnx("reload: %s; the old certificate stays", j->tls_err);
			mx = root.tls_mx && SSL_CTX_up_ref(root.tls_mx) ?
			    root.tls_mx : NULL;
			sub = root.tls_sub && SSL_CTX_up_ref(root.tls_sub) ?
			    root.tls_sub : NULL;
		}
		body_spool_limit(c->spool_max_size);
		raise_fd_limit(c);
		if (c->sasl_db)
			sub_sasl_reconfigure(c->sasl_db);
		if (c->sasl_dovecot && root.cfg->sasl_dovecot)
			sub_dovecot_init(root.base, c->sasl_dovecot);
		if (j->relay_failed)
			log_warnx("reload: relay_host's CAs could not be loaded; "
			    "the old ones stay");
		else {
			queue_set_relay_tls(j->relay);
			j->relay = NULL;
		}
		modules_configure(c, t, mx, sub);
		/*
		 * the old ones go once their last holder lets go (the root
		 * is the last but for sessions and attempts still using the
		 * config; big tables are freed off the loop)
		 */
		tables_free_in_worker(root.tables);
		SSL_CTX_free(root.tls_mx);
		SSL_CTX_free(root.tls_sub);
		config_free(root.cfg);
		root.cfg = c;
		root.tables = t;
		root.tls_mx = mx;
		root.tls_sub = sub;
		if (tls == NULL)
			tls = mx ? "yes" : "no";
		log_info("reload done mailboxes=%zu tls=%s",
		    tables_mailbox_count(t), tls);
	}
	dkim_signer_free(j->signer);
	SSL_CTX_free(j->relay);
	free(j->path);
	free(j);
	if (root.reload_again && !root.stopping) {
		root.reload_again = false;
		reload_start();
		return;
	}
	if (!root.stopping)
		sd_notify(0, "READY=1\nSTATUS=running");
}

/* reload_start - SIGHUP: parse off the loop; one at a time, the next after */
static void
reload_start(void)
{
	struct reload_job *j;

	if (root.reloading) {
		root.reload_again = true;
		return;
	}
	log_info("reload config=%s", config_path);
	/* systemd (Type=notify): reloading until READY=1 in reload_done */
	sd_notify(0, "RELOADING=1\nSTATUS=reloading");
	j = xcalloc(1, sizeof(*j));
	j->path = xstrdup(config_path);
	root.reloading = true;
	worker_submit(reload_work, reload_done, j);
}

/* housekeeping: stale tmp/ files of interrupted deliveries, every 6 hours */
#define TMP_MAX_AGE	(36 * 3600)	/* the Maildir convention */
#define CLEAN_EVERY	(6 * 3600)

struct clean_job {
	char *root;
	unsigned removed;
};

static void
clean_work(void *arg)
{
	struct clean_job *j = arg;

	j->removed = maildir_clean_tmp(j->root, TMP_MAX_AGE);
}

static void
clean_done(void *arg)
{
	struct clean_job *j = arg;

	if (j->removed)
		log_info("maildir cleaned-tmp files=%u", j->removed);
	free(j->root);
	free(j);
}

static void
clean_cb(evutil_socket_t fd, short what, void *arg)
{
	struct clean_job *j;

	if (root.stopping)
		return;
	j = xcalloc(1, sizeof(*j));
	j->root = xstrdup(root.cfg->maildir_root);
	worker_submit(clean_work, clean_done, j);
}

static void
grace_cb(evutil_socket_t fd, short what, void *arg)
{
	log_warnx("shutdown grace period over; closing the remaining sessions");
	smtpd_sessions_kill();
}

/* stop_check - while stopping: leave the loop once every module is idle */
static void
stop_check(evutil_socket_t fd, short what, void *arg)
{
	if (smtpd_session_count() == 0 && worker_pending() == 0 &&
	    queue_idle() && submit_idle() && admin_idle())
		event_base_loopexit(root.base, NULL);
}

static void
signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct timeval grace = { root.cfg->shutdown_grace, 0 };
	struct timeval check = { 0, STOP_CHECK_MS * 1000 };

	if (sig == SIGHUP) {
		reload_start();
		return;
	}
	if (root.stopping) {
		log_warnx("second signal: closing every session now");
		smtpd_sessions_kill();
		return;
	}
	log_info("stopping signal=%d sessions=%u", (int)sig,
	    smtpd_session_count());
	root.stopping = true;
	sd_notify(0, "STOPPING=1\nSTATUS=stopping");
	smtpd_listeners_stop();
	submit_stop();
	admin_stop();
	metrics_listen_stop();
	queue_stop();
	root.grace_ev = evtimer_new(root.base, grace_cb, NULL);
	evtimer_add(root.grace_ev, &grace);
	root.stop_ev = event_new(root.base, -1, EV_PERSIST, stop_check, NULL);
	event_add(root.stop_ev, &check);
	smtpd_sessions_stop();
}

/*
 * drop_privileges - become user; a daemon started as user already (the
 * systemd unit's User=, doc/chamoisd.8 "SYSTEMD") keeps its identity
 */
static void
drop_privileges(const char *user)
{
	struct passwd *pw = getpwnam(user);

	if (pw == NULL)
		fatalx("user: no such user '%s'", user);
	if (geteuid() != 0 && pw->pw_uid == geteuid() && pw->pw_uid == getuid()) {
		log_info("running as user=%s uid=%u", user, (unsigned)pw->pw_uid);
		return;
	}
	if (initgroups(pw->pw_name, pw->pw_gid) == -1 ||
	    setgid(pw->pw_gid) == -1 || setuid(pw->pw_uid) == -1)
		fatal("dropping privileges to %s", user);
	if (setuid(0) != -1)
		fatalx("privileges could be regained after dropping them");
	log_info("running as user=%s uid=%u", user, (unsigned)pw->pw_uid);
}

/*
 * prepare_dirs - queue_dir, queue_dir/mta-sts and maildir_root exist,
 * owned by user;
 * queue_dir is 0711 so that every local user reaches the submit socket
 * in it (the store below it, queue_dir/db, is 0700).  Modes and owners
 * are set through a descriptor opened with O_NOFOLLOW, never by path:
 * root must not follow a symlink that user put in place of either
 * (doc/security.md, "Least privilege").
 */
static void
prepare_dirs(const struct config *c)
{
	char sts[4096];
	const char *dirs[] = { c->queue_dir, c->maildir_root, sts };
	const unsigned modes[] = { 0711, 0700, 0700 };
	struct passwd *pw = c->user ? getpwnam(c->user) : NULL;

	/* MTA-STS's policy cache (outbound/mtasts.c) */
	if (!bsnprintf(sts, sizeof(sts), "%s/mta-sts", c->queue_dir))
		fatalx("queue_dir is too long");

	for (size_t i = 0; i < nitems(dirs); i++) {
		int fd;

		if (mkdir_synced(dirs[i], modes[i]) == -1)
			fatal("mkdir %s", dirs[i]);
		if ((fd = open(dirs[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC)) == -1)
			fatal("open %s (a directory, not a symlink)", dirs[i]);
		if (fchmod(fd, modes[i]) == -1)
			fatal("chmod %s", dirs[i]);
		if (pw && geteuid() == 0 && fchown(fd, pw->pw_uid, pw->pw_gid) == -1)
			fatal("chown %s", dirs[i]);
		close(fd);
	}
}

/*
 * sts_init - MTA-STS (RFC 8461): policies fetched over HTTPS verified by
 * tls_ca_file or the system's CAs, which also verify an enforce policy's
 * MX hosts (the client context keeps VERIFY_NONE: per session, the
 * client asks for the check)
 */
static bool
sts_init(const struct config *c, char *err, size_t errsize)
{
	SSL_CTX *https = relay_tls_new(c, err, errsize);
	char dir[4096];

	if (https == NULL)
		return false;
	if ((c->tls_ca_file ? SSL_CTX_load_verify_locations(root.tls_client,
	    c->tls_ca_file, NULL) : SSL_CTX_set_default_verify_paths(
	    root.tls_client)) != 1) {
		ERR_clear_error();
		bsnprintf(err, errsize, "mta_sts: cannot load the CAs");
		SSL_CTX_free(https);
		return false;
	}
	if (!bsnprintf(dir, sizeof(dir), "%s/mta-sts", c->queue_dir)) {
		bsnprintf(err, errsize, "queue_dir is too long");
		SSL_CTX_free(https);
		return false;
	}
	root.sts = sts_new(root.base, root.resolver, https,
	    c->testing_mta_sts_port, dir);
	SSL_CTX_free(https);
	return true;
}

/*
 * outbound_init - the resolver and the client TLS context, shared by the
 * queue and forwarding; then forwarding's own state (SRS, the addresses
 * of our mx role)
 */
static bool
outbound_init(const struct config *c)
{
	char err[1024];

	root.resolver = resolver_new(root.base, c->dns_server_len ?
	    (const struct sockaddr *)&c->dns_server : NULL, c->dns_server_len);
	if (root.resolver == NULL) {
		fprintf(stderr, "%s: cannot set up the DNS resolver\n", c->path);
		return false;
	}
	if ((root.tls_client = SSL_CTX_new(TLS_client_method())) == NULL)
		return false;
	/* opportunistic (RFC 7435): no verification, any version */
	SSL_CTX_set_verify(root.tls_client, SSL_VERIFY_NONE, NULL);
	/* DANE (RFC 7672): a host with secure TLSA is verified by them */
	if (c->dane && resolver_dane(root.resolver, c->remote_port) &&
	    SSL_CTX_dane_enable(root.tls_client) <= 0) {
		fprintf(stderr, "%s: SSL_CTX_dane_enable failed\n", c->path);
		return false;
	}
	SSL_CTX_set_options(root.tls_client, SSL_OP_NO_COMPRESSION |
	    SSL_OP_NO_RENEGOTIATION);
	if (c->mta_sts && !sts_init(c, err, sizeof(err))) {
		fprintf(stderr, "%s: %s\n", c->path, err);
		return false;
	}
	if (forward_init(root.base, c, root.resolver, root.tls_client, root.sts,
	    err, sizeof(err)) == -1) {
		fprintf(stderr, "%s\n", err);
		return false;
	}
	/* local_delivery lmtp: connections are made when a delivery needs one */
	lmtp_configure(root.base, c);
	return true;
}

/* usage - to stdout and exit 0 for -h, to stderr and exit 2 otherwise */
static noreturn void
usage(int code)
{
	fprintf(code ? stderr : stdout,
	    "usage: chamoisd [-f FILE] [-d] [-n] [-v] [-V] [-h]\n");
	exit(code);
}

/*
 * raise_fd_limit - room for every connection the limits allow: a session
 * each, its forwarding connection, the queue's deliveries, and some for
 * listeners, the store, DNS and Maildir files.  Raised before the drop,
 * while root may still raise the hard limit, and on reload, when only the
 * soft limit can grow (up to the hard one).
 */
static void
raise_fd_limit(const struct config *c)
{
	rlim_t need = (rlim_t)c->max_connections + c->forward_max_sessions +
	    c->queue_max_deliveries + c->worker_threads + 128;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1 || rl.rlim_cur >= need)
		return;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
		struct rlimit up = { need, need };

		if (setrlimit(RLIMIT_NOFILE, &up) == 0)
			return;
	}
	rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need ?
	    need : rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1 || rl.rlim_cur < need)
		log_warnx("open-file limit %llu is below the %llu that "
		    "max_connections, forward_max_sessions and "
		    "queue_max_deliveries may need",
		    (unsigned long long)rl.rlim_cur, (unsigned long long)need);
}

int
main(int argc, char **argv)
{
	int ch, foreground = 0, verbose = 0;
	bool check_only = false;
	struct event *sigs[4], *clean_ev;
	const int signums[] = { SIGTERM, SIGINT, SIGHUP };
	char err[1024];
	bool ok;

	while ((ch = getopt(argc, argv, "f:dnvVh")) != -1) {
		switch (ch) {
		case 'f': config_path = optarg; break;
		case 'd': foreground = 1; break;
		case 'n': check_only = true; break;
		case 'v': verbose++; break;
		case 'V': printf("chamoisd %s\n", CHAMOIS_VERSION); exit(0);
		case 'h': usage(0);
		default: usage(2);
		}
	}
	if (optind != argc)
		usage(2);
	log_init("chamoisd", foreground || check_only, verbose);

	ok = load_all(config_path, print_problem,
	    check_only ? print_problem : log_problem, &root.cfg, &root.tables,
	    &root.tls_mx, &root.tls_sub, &root.signer);
	if (check_only) {
		if (ok)
			printf("%s: configuration OK\n", config_path);
		free_loaded(root.cfg, root.tables, root.tls_mx, root.tls_sub,
		    root.signer);
		return ok ? 0 : 1;
	}
	if (!ok)
		return 1;

	signal(SIGPIPE, SIG_IGN);
	umask(077);
	prepare_dirs(root.cfg);
	body_spool_limit(root.cfg->spool_max_size);
	if (evthread_use_pthreads() == -1)
		fatalx("evthread_use_pthreads");
	if ((root.base = event_base_new()) == NULL)
		fatalx("event_base_new");
	/* at once: a signal during the slower start-up steps waits for the loop */
	for (size_t i = 0; i < nitems(signums); i++) {
		sigs[i] = evsignal_new(root.base, signums[i], signal_cb, NULL);
		evsignal_add(sigs[i], NULL);
	}
	smtpd_init(root.base);
	smtpd_configure(root.cfg, root.tables, root.tls_mx, root.tls_sub);
	raise_fd_limit(root.cfg);
	if (smtpd_listeners_bind(root.cfg, err, sizeof(err)) == -1) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	if (!outbound_init(root.cfg))
		return 1;
	/* the routes and the auth ops the engine runs (smtpd/route.h) */
	smtpd_set_router(ROLE_MX, forward_mx_router);
	smtpd_set_router(ROLE_SUBMISSION, queue_router);
	smtpd_set_router(ROLE_SUBMISSIONS, queue_router);
	/* local_delivery lmtp: a partial failure's copy goes into the queue */
	lmtp_set_requeue(queue_lmtp_requeue, NULL);
	/* what the world sends is checked (doc/forwarding.md "Checks") */
	mx_checks_init(root.resolver);
	smtpd_set_checks(ROLE_MX, &mx_checks);
	/* the milters, on every role (doc/filters.md); none without milter lines */
	milter_filters_init(root.base);
	smtpd_set_filters(ROLE_MX, &milter_filters);
	smtpd_set_filters(ROLE_SUBMISSION, &milter_filters);
	smtpd_set_filters(ROLE_SUBMISSIONS, &milter_filters);
	smtpd_set_auth(&sub_auth_ops);
	sub_configure(root.base, root.cfg, root.tables);
	if (root.cfg->sasl_db &&
	    sub_sasl_init(root.cfg->sasl_db, err, sizeof(err)) == -1) {
		fprintf(stderr, "%s:%d: sasl_db: %s\n", root.cfg->path,
		    config_line(root.cfg, "sasl_db"), err);
		return 1;
	}
	/* Dovecot's auth service: connected on the loop (doc/users.md "Dovecot") */
	if (root.cfg->sasl_dovecot)
		sub_dovecot_init(root.base, root.cfg->sasl_dovecot);
	/* relay_auth: libsasl2's client half, loaded before the privilege drop */
	if (sub_sasl_client_init(err, sizeof(err)) == 0)
		queue_set_relay_auth(&sub_sasl_client_ops);
	else if (root.cfg->relay_auth) {
		fprintf(stderr, "%s:%d: relay_auth: %s\n", root.cfg->path,
		    config_line(root.cfg, "relay_auth"), err);
		return 1;
	}
	/* the local sockets are bound before privileges are dropped */
	if (submit_init(root.base, root.cfg, root.tables, err, sizeof(err)) == -1 ||
	    admin_init(root.base, root.cfg, err, sizeof(err)) == -1 ||
	    metrics_listen_init(root.base, root.cfg, err, sizeof(err)) == -1) {
		fprintf(stderr, "%s: %s\n", root.cfg->path, err);
		return 1;
	}
	if (root.cfg->user)
		drop_privileges(root.cfg->user);
	if (queue_init(root.base, root.cfg, root.tables, root.resolver,
	    root.tls_client, root.sts, err, sizeof(err)) == -1) {
		fprintf(stderr, "%s: queue: %s\n", root.cfg->path, err);
		return 1;
	}
	queue_set_signer(root.signer);
	if (!foreground && daemon(0, 0) == -1)
		fatal("daemon");
	/* threads start after daemon(): fork keeps only the calling thread */
	worker_init(root.base, (int)root.cfg->worker_threads);
	loopwatch_start(root.base);
	clean_ev = event_new(root.base, -1, EV_PERSIST, clean_cb, NULL);
	event_add(clean_ev, &(struct timeval){ CLEAN_EVERY, 0 });
	clean_cb(-1, 0, NULL);
	smtpd_listeners_start();
	for (size_t i = 0; i < root.cfg->nlistens; i++)
		log_info("listening role=%s address=%s",
		    config_role_name(root.cfg->listens[i].role),
		    root.cfg->listens[i].text);
	log_info("ready version=%s hostname=%s domains=%zu mailboxes=%zu",
	    CHAMOIS_VERSION, root.cfg->hostname, root.cfg->ndomains,
	    tables_mailbox_count(root.tables));
	/*
	 * systemd (Type=notify, doc/chamoisd.8 "SYSTEMD"): started once every
	 * listener accepts; a no-op without NOTIFY_SOCKET
	 */
	sd_notify(0, "READY=1\nSTATUS=running");

	event_base_dispatch(root.base);

	log_info("stopped");
	loopwatch_stop();
	worker_shutdown();
	submit_shutdown();
	admin_shutdown();
	metrics_listen_shutdown();
	queue_shutdown();
	if (root.cfg->sasl_db)
		sub_sasl_shutdown();
	sub_dovecot_shutdown();
	sub_limits_shutdown();
	smtpd_listeners_stop();
	for (size_t i = 0; i < nitems(signums); i++)
		event_free(sigs[i]);
	event_free(clean_ev);
	if (root.grace_ev)
		event_free(root.grace_ev);
	if (root.stop_ev)
		event_free(root.stop_ev);
	forward_shutdown();
	lmtp_shutdown();
	sub_configure(NULL, NULL, NULL);
	smtpd_shutdown();
	smtp_clients_shutdown();
	sts_free(root.sts);	/* before the resolver it asks */
	resolver_free(root.resolver);
	SSL_CTX_free(root.tls_client);
	free_loaded(root.cfg, root.tables, root.tls_mx, root.tls_sub,
	    root.signer);
	event_base_free(root.base);
	libevent_global_shutdown();
	return 0;
}
