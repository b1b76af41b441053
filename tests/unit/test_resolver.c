/*
 * test_resolver.c - the MX resolver (outbound/resolver.c): the pure MX
 * order (mx_order, table-driven, with a fixed random sequence), then the
 * real resolver in a libevent loop against a real dnsmasq started here on
 * 127.0.0.1 and a free port, authoritative for .test and with no upstream.
 * Each dnsmasq case starts its own dnsmasq in its setup and kills it in its
 * teardown (and dies with this process: PR_SET_PDEATHSIG, kept because
 * -d never changes user), so a failing case leaves nothing running.
 * Without /usr/sbin/dnsmasq (or $DNSMASQ) those cases are skipped.  What
 * dnsmasq cannot serve (SERVFAIL, chosen TTLs, many records, answers held
 * back) comes from a scripted UDP server inside this process.
 * RESOLVER_TEST_VERBOSE=1 shows the resolver's debug log and dnsmasq's.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/clock.h"
#include "common/log.h"
#include "outbound/resolver.h"
#include "unit.h"

static const char *
status_name(enum dns_status st)
{
	switch (st) {
	case DNS_OK:		return "DNS_OK";
	case DNS_NXDOMAIN:	return "DNS_NXDOMAIN";
	case DNS_NULLMX:	return "DNS_NULLMX";
	case DNS_NOHOST:	return "DNS_NOHOST";
	case DNS_TEMPFAIL:	return "DNS_TEMPFAIL";
	}
	return "?";
}

#define assert_status(got, want) do {					\
	if ((got) != (want))						\
		fail_msg("status %s, want %s", status_name(got),	\
		    status_name(want));					\
} while (0)

/* ---- mx_order ---- */

#define MAXN 8

struct seq {
	const uint64_t *v;
	size_t n, next;
};

static uint64_t
seq_rnd(void *arg)
{
	struct seq *s = arg;

	if (s->next >= s->n)
		fail_msg("rnd called %zu times, the row has %zu values",
		    s->next + 1, s->n);
	return s->v[s->next++];
}

struct order_case {
	const char *label;
	size_t n;
	unsigned pref[MAXN];
	uint64_t rnd[MAXN];	/* one value per call, all used */
	size_t nrnd;
	size_t want[MAXN];	/* the input positions, in the order wanted */
};

/*
 * Fisher-Yates per run of equal preferences [lo, hi): for i = hi-1 down
 * to lo+1, swap i with lo + rnd % (i - lo + 1).
 */
static const struct order_case order_cases[] = {
	{ .label = "order: empty", .n = 0 },
	{ .label = "order: one host", .n = 1, .pref = { 10 }, .want = { 0 } },
	{ .label = "order: sorted distinct preferences, no randomness",
	  .n = 3, .pref = { 10, 20, 30 }, .want = { 0, 1, 2 } },
	{ .label = "order: reversed distinct preferences",
	  .n = 3, .pref = { 30, 20, 10 }, .want = { 2, 1, 0 } },
	{ .label = "order: preference 0 and 65535",
	  .n = 2, .pref = { 65535, 0 }, .want = { 1, 0 } },
	{ .label = "order: equal pair, rnd 0 swaps",
	  .n = 2, .pref = { 10, 10 }, .rnd = { 0 }, .nrnd = 1,
	  .want = { 1, 0 } },
	{ .label = "order: equal pair, rnd 1 keeps",
	  .n = 2, .pref = { 10, 10 }, .rnd = { 1 }, .nrnd = 1,
	  .want = { 0, 1 } },
	{ .label = "order: equal pair, large rnd taken modulo",
	  .n = 2, .pref = { 5, 5 }, .rnd = { UINT64_MAX }, .nrnd = 1,
	  .want = { 0, 1 } },
	{ .label = "order: three equal",
	  .n = 3, .pref = { 5, 5, 5 }, .rnd = { 0, 0 }, .nrnd = 2,
	  .want = { 1, 2, 0 } },
	{ .label = "order: three equal, rnd 1 then 1",
	  .n = 3, .pref = { 5, 5, 5 }, .rnd = { 1, 1 }, .nrnd = 2,
	  .want = { 0, 2, 1 } },	/* i=2 j=1: 0,2,1; i=1 j=1: kept */
	{ .label = "order: three equal, rnd 2 then 1 keeps",
	  .n = 3, .pref = { 5, 5, 5 }, .rnd = { 2, 1 }, .nrnd = 2,
	  .want = { 0, 1, 2 } },
	{ .label = "order: two runs of equals between distinct ones",
	  .n = 5, .pref = { 20, 10, 20, 10, 30 }, .rnd = { 0, 1 }, .nrnd = 2,
	  .want = { 3, 1, 0, 2, 4 } },
	{ .label = "order: runs shuffled independently",
	  .n = 6, .pref = { 1, 2, 1, 2, 1, 2 }, .rnd = { 0, 0, 5, 3 },
	  .nrnd = 4,
	  /* 1s at 0,2,4: i=2 j=0 -> 4,2,0; i=1 j=0 -> 2,4,0 */
	  /* 2s at 1,3,5: i=2 j=5%3=2 -> 1,3,5; i=1 j=3%2=1 -> 1,3,5 */
	  .want = { 2, 4, 0, 1, 3, 5 } },
};

static void
run_order_case(void **state)
{
	const struct order_case *c = *state;
	struct mx_rank v[MAXN];
	struct seq s = { .v = c->rnd, .n = c->nrnd };
	size_t i;

	for (i = 0; i < c->n; i++) {
		v[i].preference = c->pref[i];
		v[i].index = i;
	}
	mx_order(v, c->n, seq_rnd, &s);
	assert_int_equal(s.next, c->nrnd);
	for (i = 0; i < c->n; i++) {
		if (v[i].index != c->want[i])
			fail_msg("position %zu: entry %zu, want %zu", i,
			    v[i].index, c->want[i]);
		assert_int_equal(v[i].preference, c->pref[v[i].index]);
	}
}

static uint64_t
lcg_rnd(void *arg)
{
	uint64_t *x = arg;

	*x = *x * 6364136223846793005ULL + 1442695040888963407ULL;
	return *x >> 11;
}

/* every entry kept, preferences ascending, each equal one first sometimes */
static void
test_order_properties(void **state)
{
	static const unsigned pref[] = { 30, 10, 20, 10, 10, 30, 0, 20 };
	struct mx_rank v[nitems(pref)];
	bool seen[nitems(pref)], first[nitems(pref)] = { false };
	uint64_t x = 42;
	size_t i, run;

	for (run = 0; run < 200; run++) {
		for (i = 0; i < nitems(pref); i++) {
			v[i].preference = pref[i];
			v[i].index = i;
			seen[i] = false;
		}
		mx_order(v, nitems(pref), lcg_rnd, &x);
		for (i = 0; i < nitems(pref); i++) {
			assert_true(v[i].index < nitems(pref));
			assert_false(seen[v[i].index]);
			seen[v[i].index] = true;
			assert_int_equal(v[i].preference, pref[v[i].index]);
			if (i > 0)
				assert_true(v[i - 1].preference <= v[i].preference);
		}
		/* the run of preference 10 is at positions 1..3 */
		first[v[1].index] = true;
	}
	assert_true(first[1] && first[3] && first[4]);
}

/* ---- dnsmasq ---- */

#define TTL 300

/* the zone: every name under .test, nothing else */
static const char *const zone[] = {
	"--mx-host=multi.test,mx2.multi.test,20",
	"--mx-host=multi.test,mx1.multi.test,10",
	"--host-record=mx1.multi.test,127.0.0.2",
	"--host-record=mx2.multi.test,127.0.0.3",
	"--host-record=nomx.test,127.0.0.4",
	"--mx-host=eq.test,a.eq.test,10",
	"--mx-host=eq.test,b.eq.test,10",
	"--host-record=a.eq.test,127.0.0.5",
	"--host-record=b.eq.test,127.0.0.6",
	"--host-record=v6.test,127.0.0.7,::1",
	"--host-record=short.test,127.0.0.8,1",		/* TTL 1 */
	"--mx-host=nullmx.test,.,0",			/* RFC 7505 */
	"--dns-rr=rawnullmx.test,15,000000",		/* the same, raw */
	"--mx-host=nohost.test,gone.nohost.test,10",	/* NXDOMAIN host */
	"--txt-record=empty.test,nothing here",		/* no MX, no A */
	"--mx-host=half.test,gone.half.test,10",
	"--mx-host=half.test,mx.half.test,20",
	"--host-record=mx.half.test,127.0.0.9",
};

struct fake;

struct fixture {
	pid_t pid;			/* dnsmasq */
	int port;
	struct fake *fake;		/* or the scripted server */
	struct event_base *base;
	struct resolver *res;
};

static void fake_close(struct fake *);

static const char *
dnsmasq_path(void)
{
	const char *p = getenv("DNSMASQ");

	return p != NULL && *p != '\0' ? p : "/usr/sbin/dnsmasq";
}

/* free_port - a port free for UDP and TCP on 127.0.0.1 (bound, closed) */
static int
free_port(void)
{
	struct sockaddr_in sin;
	socklen_t len;
	int u, t, port = -1, tries;

	for (tries = 0; tries < 100 && port < 0; tries++) {
		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		u = socket(AF_INET, SOCK_DGRAM, 0);
		assert_true(u >= 0);
		assert_int_equal(bind(u, (struct sockaddr *)&sin, sizeof(sin)), 0);
		len = sizeof(sin);
		assert_int_equal(getsockname(u, (struct sockaddr *)&sin, &len), 0);
		t = socket(AF_INET, SOCK_STREAM, 0);
		assert_true(t >= 0);
		if (bind(t, (struct sockaddr *)&sin, sizeof(sin)) == 0)
			port = ntohs(sin.sin_port);
		close(t);
		close(u);
	}
	assert_true(port > 0);
	return port;
}

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * the resolver's clock (common/clock.h): the real monotonic clock plus
 * what advance_ms has added, so that a cache entry expires without a
 * sleep while c-ares and libevent keep their own real timers
 */
static int64_t clock_skip_ms;

static int64_t
test_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + clock_skip_ms;
}

static void
advance_ms(int64_t ms)
{
	clock_skip_ms += ms;
}

static bool
tcp_up(int port)
{
	struct sockaddr_in sin;
	int fd = socket(AF_INET, SOCK_STREAM, 0), rc;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons(port);
	rc = connect(fd, (struct sockaddr *)&sin, sizeof(sin));
	close(fd);
	return rc == 0;
}

static void
dnsmasq_stop(struct fixture *f)
{
	int st, i;

	if (f->pid <= 0)
		return;
	kill(f->pid, SIGTERM);
	for (i = 0; i < 200; i++) {
		if (waitpid(f->pid, &st, WNOHANG) == f->pid)
			break;
		sleep_ms(10);
	}
	if (i == 200) {
		kill(f->pid, SIGKILL);
		waitpid(f->pid, &st, 0);
	}
	f->pid = 0;
}

/*
 * dnsmasq_start - dnsmasq -d (foreground, no privilege change, so the
 * death signal set here survives), no config, no resolv.conf, no hosts
 * file, no upstream; authoritative for .test; records TTL unless given.
 */
static bool
dnsmasq_start(struct fixture *f)
{
	char port[32], ttl[32];
	const char *argv[32 + nitems(zone)];
	size_t n = 0, i;
	int attempt, st, fd;
	uint64_t until;

	for (attempt = 0; attempt < 5; attempt++) {
		f->port = free_port();
		snprintf(port, sizeof(port), "--port=%d", f->port);
		snprintf(ttl, sizeof(ttl), "--local-ttl=%d", TTL);
		n = 0;
		argv[n++] = dnsmasq_path();
		argv[n++] = "-d";
		argv[n++] = "--conf-file=/dev/null";
		argv[n++] = "--no-resolv";
		argv[n++] = "--no-hosts";
		argv[n++] = "--pid-file=";
		argv[n++] = "--log-facility=-";
		argv[n++] = "--listen-address=127.0.0.1";
		argv[n++] = "--bind-interfaces";
		argv[n++] = port;
		argv[n++] = ttl;
		argv[n++] = "--local=/test/";
		for (i = 0; i < nitems(zone); i++)
			argv[n++] = zone[i];
		argv[n] = NULL;

		f->pid = fork();
		assert_true(f->pid >= 0);
		if (f->pid == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getenv("RESOLVER_TEST_VERBOSE") == NULL &&
			    (fd = open("/dev/null", O_WRONLY)) >= 0) {
				dup2(fd, 1);
				dup2(fd, 2);
				close(fd);
			}
			execv(argv[0], (char *const *)argv);
			_exit(127);
		}
		until = now_ms() + 5000;
		while (now_ms() < until) {
			if (waitpid(f->pid, &st, WNOHANG) == f->pid) {
				f->pid = 0;	/* port taken meanwhile? */
				break;
			}
			if (tcp_up(f->port))
				return true;
			sleep_ms(10);
		}
		dnsmasq_stop(f);
	}
	return false;
}

static struct resolver *
resolver_on(struct event_base *base, int port)
{
	struct sockaddr_in sin;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons(port);
	return resolver_new(base, (struct sockaddr *)&sin, sizeof(sin));
}

static int
setup_dnsmasq(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	*state = f;
	if (access(dnsmasq_path(), X_OK) != 0)
		return 0;	/* the case skips */
	if (!dnsmasq_start(f)) {
		print_error("dnsmasq did not start\n");
		return -1;
	}
	f->base = event_base_new();
	assert_non_null(f->base);
	f->res = resolver_on(f->base, f->port);
	assert_non_null(f->res);
	return 0;
}

static int
teardown_fixture(void **state)
{
	struct fixture *f = *state;

	if (f == NULL)
		return 0;
	dnsmasq_stop(f);
	resolver_free(f->res);
	fake_close(f->fake);
	if (f->base != NULL)
		event_base_free(f->base);
	free(f);
	return 0;
}

static struct fixture *
fixture(void **state)
{
	struct fixture *f = *state;

	if (f->res == NULL) {
		print_message("[  SKIP    ] %s is not installed\n", dnsmasq_path());
		skip();
	}
	return f;
}

/* ---- answers ---- */

#define MAXT 16

struct got {
	int calls;
	enum dns_status status;
	bool implicit;
	size_t n;
	struct {
		char host[256];
		unsigned pref;
		char addr[INET6_ADDRSTRLEN];
		int family;
		socklen_t len;
		unsigned port;
	} t[MAXT];
};

static void
got_cb(void *arg, const struct mx_answer *a)
{
	struct got *g = arg;
	const struct mx_target *t;
	const void *ip;
	size_t i;

	g->calls++;
	g->status = a->status;
	g->implicit = a->implicit;
	g->n = a->ntargets;
	for (i = 0; i < a->ntargets && i < MAXT; i++) {
		t = &a->targets[i];
		snprintf(g->t[i].host, sizeof(g->t[i].host), "%s", t->host);
		g->t[i].pref = t->preference;
		g->t[i].family = t->ss.ss_family;
		g->t[i].len = t->sslen;
		if (t->ss.ss_family == AF_INET6) {
			ip = &((const struct sockaddr_in6 *)&t->ss)->sin6_addr;
			g->t[i].port = ((const struct sockaddr_in6 *)&t->ss)->sin6_port;
		} else {
			ip = &((const struct sockaddr_in *)&t->ss)->sin_addr;
			g->t[i].port = ((const struct sockaddr_in *)&t->ss)->sin_port;
		}
		assert_non_null(inet_ntop(t->ss.ss_family, ip, g->t[i].addr,
		    sizeof(g->t[i].addr)));
	}
}

static void
loop_timeout(evutil_socket_t fd, short what, void *arg)
{
	*(bool *)arg = true;
}

/* run - the loop until every got has its call, or ms pass; false on timeout */
static bool
run(struct event_base *base, struct got **gots, size_t n, long ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	bool expired = false, all;
	struct event *t = evtimer_new(base, loop_timeout, &expired);
	size_t i;

	assert_non_null(t);
	evtimer_add(t, &tv);
	for (;;) {
		for (all = true, i = 0; i < n; i++)
			all = all && gots[i]->calls > 0;
		if (all || expired)
			break;
		event_base_loop(base, EVLOOP_ONCE);
	}
	event_free(t);
	return all;
}

/* ask - resolve domain on f's resolver, waiting at most 10 s */
static void
ask(struct fixture *f, const char *domain, struct got *g)
{
	struct got *gp = g;

	memset(g, 0, sizeof(*g));
	assert_non_null(resolver_mx(f->res, domain, got_cb, g));
	assert_int_equal(g->calls, 0);	/* never from inside resolver_mx */
	if (!run(f->base, &gp, 1, 10000))
		fail_msg("no answer for %s in 10 s", domain);
	assert_int_equal(g->calls, 1);
}

static void
want_target(const struct got *g, size_t i, const char *host, unsigned pref,
    const char *addr)
{
	if (i >= g->n)
		fail_msg("%zu targets, want target %zu", g->n, i);
	assert_string_equal(g->t[i].host, host);
	assert_int_equal(g->t[i].pref, pref);
	assert_string_equal(g->t[i].addr, addr);
	assert_int_equal(g->t[i].port, 0);
	assert_int_equal(g->t[i].len, g->t[i].family == AF_INET6 ?
	    sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
}

/* ---- cases against dnsmasq ---- */

static void
test_mx_by_preference(void **state)
{
	struct fixture *f = fixture(state);
	struct got g;

	ask(f, "multi.test", &g);
	assert_status(g.status, DNS_OK);
	assert_false(g.implicit);
	assert_int_equal(g.n, 2);
	want_target(&g, 0, "mx1.multi.test", 10, "127.0.0.2");
	want_target(&g, 1, "mx2.multi.test", 20, "127.0.0.3");
}

static void
test_case_and_trailing_dot(void **state)
{
	struct fixture *f = fixture(state);
	struct got g;

	ask(f, "MULTI.Test.", &g);
	assert_status(g.status, DNS_OK);
	assert_int_equal(g.n, 2);
	want_target(&g, 0, "mx1.multi.test", 10, "127.0.0.2");
	want_target(&g, 1, "mx2.multi.test", 20, "127.0.0.3");
}

static void
test_implicit_mx(void **state)
{
	struct fixture *f = fixture(state);
	struct got g;

	ask(f, "nomx.test", &g);
	assert_status(g.status, DNS_OK);
	assert_true(g.implicit);
	assert_int_equal(g.n, 1);
	want_target(&g, 0, "nomx.test", 0, "127.0.0.4");
}

static void
test_ipv6_first(void **state)
{
	struct fixture *f = fixture(state);
	struct got g;

	ask(f, "v6.test", &g);
	assert_status(g.status, DNS_OK);
	assert_true(g.implicit);
	assert_int_equal(g.n, 2);
	assert_int_equal(g.t[0].family, AF_INET6);
	want_target(&g, 0, "v6.test", 0, "::1");
	want_target(&g, 1, "v6.test", 0, "127.0.0.7");
}

static void
test_nxdomain(void **state)
{
	struct fixture *f = fixture(state);
	struct got g;

	ask(f, "nxdomain.test", &g);
	assert_status(g.status, DNS_NXDOMAIN);
	assert_int_equal(g.n, 0);
}

static void
test_null_mx(void **state)
{
	struct fixture *f = fixture(state);
	struct got g;

	ask(f, "nullmx.test", &g);
	assert_status(g.status, DNS_NULLMX);
	assert_int_equal(g.n, 0);
	ask(f, "rawnullmx.test", &g);
	assert_status(g.status, DNS_NULLMX);
	assert_int_equal(g.n, 0);
}

static void
test_no_host(void **state)
{
	struct fixture *f = fixture(state);
	struct got g;

	/* the only MX host does not exist */
	ask(f, "nohost.test", &g);
	assert_status(g.status, DNS_NOHOST);
	assert_false(g.implicit);
	assert_int_equal(g.n, 0);
	/* no MX and no address */
	ask(f, "empty.test", &g);
	assert_status(g.status, DNS_NOHOST);
	assert_int_equal(g.n, 0);
	/* the better MX has no address: the other one is used */
	ask(f, "half.test", &g);
	assert_status(g.status, DNS_OK);
	assert_int_equal(g.n, 1);
	want_target(&g, 0, "mx.half.test", 20, "127.0.0.9");
}

static void
test_refused(void **state)
{
	struct fixture *f = fixture(state);
	struct got g;

	/* outside .test dnsmasq has no upstream: REFUSED */
	ask(f, "example.org", &g);
	assert_status(g.status, DNS_TEMPFAIL);
	assert_int_equal(g.n, 0);
}

static void
test_bad_domain(void **state)
{
	struct fixture *f = fixture(state);
	static const char *const bad[] = {
		"", ".", "a..test", ".test", "sp ace.test", "back\\slash.test",
		"b\xc3\xbc" "cher.test",
	};
	struct got g;
	size_t i;

	for (i = 0; i < nitems(bad); i++) {
		ask(f, bad[i], &g);
		assert_status(g.status, DNS_NXDOMAIN);
	}
}

/* equal preferences: both orders show up, from the network and the cache */
static void
test_equal_preferences(void **state)
{
	struct fixture *f = fixture(state);
	struct got g;
	int first_a = 0, first_b = 0, i;

	for (i = 0; i < 64; i++) {
		ask(f, "eq.test", &g);
		assert_status(g.status, DNS_OK);
		assert_int_equal(g.n, 2);
		assert_int_equal(g.t[0].pref, 10);
		assert_int_equal(g.t[1].pref, 10);
		if (strcmp(g.t[0].host, "a.eq.test") == 0) {
			want_target(&g, 0, "a.eq.test", 10, "127.0.0.5");
			want_target(&g, 1, "b.eq.test", 10, "127.0.0.6");
			first_a++;
		} else {
			want_target(&g, 0, "b.eq.test", 10, "127.0.0.6");
			want_target(&g, 1, "a.eq.test", 10, "127.0.0.5");
			first_b++;
		}
	}
	assert_true(first_a > 0 && first_b > 0);
}

/* cached answers come without dnsmasq; uncached ones then fail for now */
static void
test_cache(void **state)
{
	struct fixture *f = fixture(state);
	struct got g;

	ask(f, "multi.test", &g);
	assert_status(g.status, DNS_OK);
	ask(f, "nxdomain.test", &g);
	assert_status(g.status, DNS_NXDOMAIN);
	ask(f, "nullmx.test", &g);
	assert_status(g.status, DNS_NULLMX);
	ask(f, "example.org", &g);		/* REFUSED: not cached */
	assert_status(g.status, DNS_TEMPFAIL);

	dnsmasq_stop(f);

	ask(f, "Multi.Test", &g);
	assert_status(g.status, DNS_OK);
	assert_int_equal(g.n, 2);
	want_target(&g, 0, "mx1.multi.test", 10, "127.0.0.2");
	want_target(&g, 1, "mx2.multi.test", 20, "127.0.0.3");
	ask(f, "nxdomain.test", &g);
	assert_status(g.status, DNS_NXDOMAIN);
	ask(f, "nullmx.test", &g);
	assert_status(g.status, DNS_NULLMX);
	ask(f, "nomx.test", &g);		/* never asked */
	assert_status(g.status, DNS_TEMPFAIL);
	ask(f, "example.org", &g);
	assert_status(g.status, DNS_TEMPFAIL);
}

/* an answer is cached for its TTL only (short.test: 1 s) */
static void
test_cache_ttl(void **state)
{
	struct fixture *f = fixture(state);
	struct got g;

	ask(f, "short.test", &g);
	assert_status(g.status, DNS_OK);
	want_target(&g, 0, "short.test", 0, "127.0.0.8");
	dnsmasq_stop(f);
	advance_ms(700);
	ask(f, "short.test", &g);		/* still cached */
	assert_status(g.status, DNS_OK);
	want_target(&g, 0, "short.test", 0, "127.0.0.8");
	advance_ms(600);
	ask(f, "short.test", &g);		/* expired: dnsmasq is gone */
	assert_status(g.status, DNS_TEMPFAIL);
}

/* ---- resolver_records and its cache ---- */

struct rgot {
	int calls;
	enum dns_status status;
	size_t n;
	char first[256];
};

static void
rgot_cb(void *arg, enum dns_status st, char **texts, size_t n)
{
	struct rgot *g = arg;

	g->calls++;
	g->status = st;
	g->n = n;
	snprintf(g->first, sizeof(g->first), "%s", n > 0 ? texts[0] : "");
}

/* ask_records - resolver_records of name, waiting at most 10 s */
static void
ask_records(struct fixture *f, const char *name, enum dns_rr rr,
    struct rgot *g)
{
	struct timeval tv = { 10, 0 };
	bool expired = false;
	struct event *t = evtimer_new(f->base, loop_timeout, &expired);

	memset(g, 0, sizeof(*g));
	resolver_records(f->res, name, rr, rgot_cb, g);
	assert_int_equal(g->calls, 0);	/* from an event, cached or not */
	evtimer_add(t, &tv);
	while (g->calls == 0 && !expired)
		event_base_loop(f->base, EVLOOP_ONCE);
	event_free(t);
	assert_int_equal(g->calls, 1);
}

/*
 * answers are cached for their TTL (empty.test TXT: 300 s), in any case
 * of the name; dnsmasq's "no such name" and "no such record" come without
 * an SOA, so they are not (RFC 2308 5); failures never
 */
static void
test_records_cache(void **state)
{
	struct fixture *f = fixture(state);
	struct rgot g;

	ask_records(f, "empty.test", DNS_RR_TXT, &g);
	assert_status(g.status, DNS_OK);
	assert_string_equal(g.first, "nothing here");
	ask_records(f, "none.test", DNS_RR_TXT, &g);
	assert_status(g.status, DNS_NXDOMAIN);
	ask_records(f, "mx1.multi.test", DNS_RR_TXT, &g);
	assert_status(g.status, DNS_NOHOST);
	ask_records(f, "example.org", DNS_RR_TXT, &g);	/* REFUSED */
	assert_status(g.status, DNS_TEMPFAIL);

	dnsmasq_stop(f);

	ask_records(f, "Empty.TEST", DNS_RR_TXT, &g);
	assert_status(g.status, DNS_OK);
	assert_int_equal(g.n, 1);
	assert_string_equal(g.first, "nothing here");
	ask_records(f, "none.test", DNS_RR_TXT, &g);
	assert_status(g.status, DNS_TEMPFAIL);
	ask_records(f, "mx1.multi.test", DNS_RR_TXT, &g);
	assert_status(g.status, DNS_TEMPFAIL);
	ask_records(f, "empty.test", DNS_RR_A, &g);	/* another type */
	assert_status(g.status, DNS_TEMPFAIL);
	ask_records(f, "example.org", DNS_RR_TXT, &g);
	assert_status(g.status, DNS_TEMPFAIL);

	advance_ms((TTL - 1) * 1000);
	ask_records(f, "empty.test", DNS_RR_TXT, &g);
	assert_status(g.status, DNS_OK);
	advance_ms(2 * 1000);			/* past its TTL */
	ask_records(f, "empty.test", DNS_RR_TXT, &g);
	assert_status(g.status, DNS_TEMPFAIL);
}


static void
test_cancel(void **state)
{
	struct fixture *f = fixture(state);
	struct got a, b, c, d, *all[] = { &b, &d };
	struct resolver_query *q;

	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	memset(&d, 0, sizeof(d));
	/* cancelled at once, while its MX query is out */
	q = resolver_mx(f->res, "multi.test", got_cb, &a);
	assert_non_null(q);
	resolver_cancel(q);
	assert_non_null(resolver_mx(f->res, "nomx.test", got_cb, &b));
	/* cancelled once answered, before its callback ran (a cache hit) */
	ask(f, "v6.test", &c);
	q = resolver_mx(f->res, "v6.test", got_cb, &c);
	resolver_cancel(q);
	/* a bad domain, answered without DNS, cancelled */
	q = resolver_mx(f->res, "", got_cb, &c);
	resolver_cancel(q);
	assert_non_null(resolver_mx(f->res, "eq.test", got_cb, &d));
	assert_true(run(f->base, all, nitems(all), 10000));
	/* let anything stray arrive */
	run(f->base, (struct got *[]){ &a }, 1, 300);
	assert_int_equal(a.calls, 0);
	assert_int_equal(c.calls, 1);
	assert_int_equal(b.calls, 1);
	assert_status(b.status, DNS_OK);
	assert_int_equal(d.calls, 1);
	assert_status(d.status, DNS_OK);
}

struct chain {
	struct fixture *f;
	struct got *next;
	struct resolver_query *victim;
	int calls;
};

/* a callback may cancel another query and start a new one */
static void
chain_cb(void *arg, const struct mx_answer *ans)
{
	struct chain *ch = arg;

	ch->calls++;
	resolver_cancel(ch->victim);
	assert_non_null(resolver_mx(ch->f->res, "nomx.test", got_cb, ch->next));
}

static void
test_callback_reentry(void **state)
{
	struct fixture *f = fixture(state);
	struct got victim, next, *gp = &next;
	struct chain ch = { .f = f, .next = &next };

	memset(&victim, 0, sizeof(victim));
	memset(&next, 0, sizeof(next));
	/* a bad domain answers at once; the victim is still out */
	assert_non_null(resolver_mx(f->res, "", chain_cb, &ch));
	ch.victim = resolver_mx(f->res, "multi.test", got_cb, &victim);
	assert_true(run(f->base, &gp, 1, 10000));
	assert_int_equal(ch.calls, 1);
	assert_status(next.status, DNS_OK);
	run(f->base, (struct got *[]){ &victim }, 1, 300);
	assert_int_equal(victim.calls, 0);
}

/* resolver_free with queries out: no callback, nothing leaked (LSan) */
static void
test_free_in_flight(void **state)
{
	struct fixture *f = fixture(state);
	struct got a, b, c;
	int before;

	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	memset(&c, 0, sizeof(c));
	assert_non_null(resolver_mx(f->res, "multi.test", got_cb, &a));
	assert_non_null(resolver_mx(f->res, "eq.test", got_cb, &b));
	assert_non_null(resolver_mx(f->res, "", got_cb, &c));
	/* one turn: the MX answers may be in, the address look-ups not */
	event_base_loop(f->base, EVLOOP_NONBLOCK);
	sleep_ms(50);
	event_base_loop(f->base, EVLOOP_NONBLOCK);
	event_base_loop(f->base, EVLOOP_NONBLOCK);
	before = a.calls + b.calls + c.calls;
	resolver_free(f->res);
	f->res = NULL;
	/* whatever had not run by then never will */
	event_base_loop(f->base, EVLOOP_NONBLOCK);
	sleep_ms(50);
	event_base_loop(f->base, EVLOOP_NONBLOCK);
	assert_int_equal(a.calls + b.calls + c.calls, before);
	assert_true(a.calls <= 1 && b.calls <= 1 && c.calls <= 1);
}

/* ---- a scripted DNS server in this process, for what dnsmasq can't do ---- */

/*
 * fake_rr - one record (or, with rcode set, one failure) of the scripted
 * zone.  A name with no row of the asked type gets NODATA; a row with
 * type 0 answers every type with its rcode (NXDOMAIN, SERVFAIL); a row
 * with drop set is never answered.
 */
struct fake_rr {
	const char *name;
	int type;		/* 1 A, 28 AAAA, 15 MX, 0 any */
	int rcode;
	bool drop;
	unsigned ttl;
	unsigned pref;		/* MX */
	const char *data;	/* MX host ("" for the root), A or AAAA text */
};

#define FAKE_MAXRR 32

struct fake {
	int fd;
	int port;
	struct fake_rr rr[FAKE_MAXRR];
	size_t nrr;
	int queries[64];	/* per qtype */
	int nqueries;
	/* set: an SOA (this TTL and MINIMUM) in every answer without records */
	unsigned soa_ttl, soa_min;
	struct event *ev;	/* answers from inside the loop */
};

static void fake_serve(struct fake *);

static void
fake_ready(evutil_socket_t fd, short what, void *arg)
{
	fake_serve(arg);
}

static void
fake_open(struct fake *fk, struct event_base *base)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fk->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	assert_true(fk->fd >= 0);
	assert_int_equal(bind(fk->fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fk->fd, (struct sockaddr *)&sin, &len), 0);
	fk->port = ntohs(sin.sin_port);
	fk->ev = event_new(base, fk->fd, EV_READ | EV_PERSIST, fake_ready, fk);
	assert_non_null(fk->ev);
	assert_int_equal(event_add(fk->ev, NULL), 0);
}

static void
fake_close(struct fake *fk)
{
	if (fk == NULL)
		return;
	event_free(fk->ev);
	close(fk->fd);
	free(fk);
}

static void
fake_add(struct fake *fk, struct fake_rr rr)
{
	assert_true(fk->nrr < FAKE_MAXRR);
	fk->rr[fk->nrr++] = rr;
}

/* put_name - name as DNS labels at p; the length written */
static size_t
put_name(unsigned char *p, const char *name)
{
	size_t o = 0, l;
	const char *dot;

	while (*name != '\0') {
		dot = strchr(name, '.');
		l = dot != NULL ? (size_t)(dot - name) : strlen(name);
		p[o++] = (unsigned char)l;
		memcpy(p + o, name, l);
		o += l;
		name += l + (dot != NULL);
	}
	p[o++] = 0;
	return o;
}

static void
put16(unsigned char *p, unsigned v)
{
	p[0] = v >> 8;
	p[1] = v;
}

/* fake_serve - answer every query waiting on the socket */
static void
fake_serve(struct fake *fk)
{
	unsigned char q[512], a[2048];
	char name[256];
	struct sockaddr_storage from;
	socklen_t fromlen;
	ssize_t n;
	size_t off, qend, o, i, nl, an, rdpos;
	unsigned qtype;
	int rcode;
	bool drop;

	for (;;) {
		fromlen = sizeof(from);
		n = recvfrom(fk->fd, q, sizeof(q), 0, (struct sockaddr *)&from,
		    &fromlen);
		if (n < 0)
			return;
		assert_true(n > 12);
		/* the question: labels to a dotted lower-case name, then type */
		for (off = 12, nl = 0; off < (size_t)n && q[off] != 0;
		    off += 1 + q[off]) {
			if (nl > 0)
				name[nl++] = '.';
			for (i = 0; i < q[off]; i++)
				name[nl++] = (char)tolower(q[off + 1 + i]);
		}
		name[nl] = '\0';
		qend = off + 5;
		assert_true(qend <= (size_t)n);
		qtype = (unsigned)q[off + 1] << 8 | q[off + 2];
		if (qtype < nitems(fk->queries))
			fk->queries[qtype]++;
		fk->nqueries++;

		rcode = 0;
		drop = false;
		for (i = 0; i < fk->nrr; i++)
			if (strcmp(fk->rr[i].name, name) == 0 &&
			    (fk->rr[i].type == 0 || fk->rr[i].type == (int)qtype)) {
				rcode = fk->rr[i].rcode;
				drop = drop || fk->rr[i].drop;
			}
		if (drop)
			continue;
		memcpy(a, q, qend);
		put16(a + 2, 0x8180 | (unsigned)rcode);	/* QR RD RA */
		put16(a + 6, 0);
		put16(a + 8, 0);
		put16(a + 10, 0);
		o = qend;
		an = 0;
		for (i = 0; rcode == 0 && i < fk->nrr; i++) {
			const struct fake_rr *r = &fk->rr[i];

			if (strcmp(r->name, name) != 0 || r->type != (int)qtype)
				continue;
			put16(a + o, 0xc00c);
			put16(a + o + 2, qtype);
			put16(a + o + 4, 1);
			put16(a + o + 6, r->ttl >> 16);
			put16(a + o + 8, r->ttl & 0xffff);
			rdpos = o + 10;
			o += 12;
			if (qtype == 15) {
				put16(a + o, r->pref);
				o += 2;
				o += put_name(a + o, r->data);
			} else if (qtype == 1) {
				assert_int_equal(inet_pton(AF_INET, r->data, a + o), 1);
				o += 4;
			} else {
				assert_int_equal(inet_pton(AF_INET6, r->data, a + o), 1);
				o += 16;
			}
			put16(a + rdpos, o - rdpos - 2);
			an++;
		}
		put16(a + 6, an);
		if (an == 0 && fk->soa_ttl > 0 && (rcode == 0 || rcode == 3)) {
			/* test. SOA ns.test. host.test. 1 2 3 4 MINIMUM */
			o += put_name(a + o, "test");
			put16(a + o, 6);
			put16(a + o + 2, 1);
			put16(a + o + 4, fk->soa_ttl >> 16);
			put16(a + o + 6, fk->soa_ttl & 0xffff);
			rdpos = o + 8;
			o += 10;
			o += put_name(a + o, "ns.test");
			o += put_name(a + o, "host.test");
			for (i = 1; i <= 4; i++) {
				put16(a + o, 0);
				put16(a + o + 2, (unsigned)i);
				o += 4;
			}
			put16(a + o, fk->soa_min >> 16);
			put16(a + o + 2, fk->soa_min & 0xffff);
			o += 4;
			put16(a + rdpos, o - rdpos - 2);
			put16(a + 8, 1);
		}
		assert_true(sendto(fk->fd, a, o, 0, (struct sockaddr *)&from,
		    fromlen) == (ssize_t)o);
	}
}

/* fake_wait - run the loop until the fake has seen nq queries in all */
static void
fake_wait(struct fake *fk, struct event_base *base, int nq)
{
	uint64_t until = now_ms() + 5000;
	struct timeval tv = { 0, 10000 };

	while (fk->nqueries < nq && now_ms() < until) {
		event_base_loopexit(base, &tv);
		event_base_loop(base, EVLOOP_ONCE);
	}
	assert_true(fk->nqueries >= nq);
}

/*
 * with an SOA, "no such name" and "no such record" are kept for the
 * smaller of its TTL and MINIMUM, at most RES_NEG_TTL (60 s)
 */
static void
test_fake_records_negative_ttl(void **state)
{
	struct fixture *f = *state;
	struct fake *fk = f->fake;
	struct rgot g;

	fake_add(fk, (struct fake_rr){ .name = "gone.test", .rcode = 3 });
	fake_add(fk, (struct fake_rr){ .name = "host.test", .type = 1,
	    .ttl = 600, .data = "127.0.0.9" });
	fk->soa_ttl = 3600;
	fk->soa_min = 30;
	ask_records(f, "gone.test", DNS_RR_TXT, &g);
	assert_status(g.status, DNS_NXDOMAIN);
	ask_records(f, "host.test", DNS_RR_TXT, &g);
	assert_status(g.status, DNS_NOHOST);
	assert_int_equal(fk->nqueries, 2);
	advance_ms(29 * 1000);
	ask_records(f, "gone.test", DNS_RR_TXT, &g);	/* from the cache */
	assert_status(g.status, DNS_NXDOMAIN);
	ask_records(f, "host.test", DNS_RR_TXT, &g);
	assert_status(g.status, DNS_NOHOST);
	assert_int_equal(fk->nqueries, 2);
	advance_ms(2 * 1000);				/* MINIMUM passed */
	ask_records(f, "gone.test", DNS_RR_TXT, &g);
	assert_int_equal(fk->nqueries, 3);

	fk->soa_min = 86400;				/* capped at 60 s */
	ask_records(f, "other.test", DNS_RR_TXT, &g);
	assert_status(g.status, DNS_NOHOST);
	advance_ms(59 * 1000);
	ask_records(f, "other.test", DNS_RR_TXT, &g);
	assert_int_equal(fk->nqueries, 4);
	advance_ms(2 * 1000);
	ask_records(f, "other.test", DNS_RR_TXT, &g);
	assert_int_equal(fk->nqueries, 5);
	ask_records(f, "host.test", DNS_RR_A, &g);	/* a positive answer */
	assert_status(g.status, DNS_OK);
	assert_string_equal(g.first, "127.0.0.9");
}

static int
setup_fake(void **state)
{
	struct fake *fk = calloc(1, sizeof(*fk));
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(fk);
	assert_non_null(f);
	f->base = event_base_new();
	assert_non_null(f->base);
	fake_open(fk, f->base);
	f->res = resolver_on(f->base, fk->port);
	assert_non_null(f->res);
	f->fake = fk;
	*state = f;
	return 0;
}


#define RR_MX(n, p, h, t)	{ .name = (n), .type = 15, .pref = (p), .data = (h), .ttl = (t) }
#define RR_A(n, a, t)		{ .name = (n), .type = 1, .data = (a), .ttl = (t) }
#define RR_AAAA(n, a, t)	{ .name = (n), .type = 28, .data = (a), .ttl = (t) }
#define RR_FAIL(n, ty, rc)	{ .name = (n), .type = (ty), .rcode = (rc) }
#define RR_DROP(n, ty)		{ .name = (n), .type = (ty), .drop = true }

/* SERVFAIL is a temporary failure (c-ares asks twice), never cached */
static void
test_fake_servfail(void **state)
{
	struct fixture *f = *state;
	struct got g;

	fake_add(f->fake, (struct fake_rr)RR_FAIL("fail.test", 0, 2));
	ask(f, "fail.test", &g);
	assert_status(g.status, DNS_TEMPFAIL);
	assert_int_equal(f->fake->queries[15], 2);
	ask(f, "fail.test", &g);
	assert_status(g.status, DNS_TEMPFAIL);
	assert_int_equal(f->fake->queries[15], 4);
}

/* an address look-up failing for now: the answer stands, uncached */
static void
test_fake_partial_tempfail(void **state)
{
	struct fixture *f = *state;
	struct got g;

	fake_add(f->fake, (struct fake_rr)RR_MX("part.test", 10, "mx1.part.test", 300));
	fake_add(f->fake, (struct fake_rr)RR_MX("part.test", 20, "mx2.part.test", 300));
	fake_add(f->fake, (struct fake_rr)RR_FAIL("mx1.part.test", 1, 2));
	fake_add(f->fake, (struct fake_rr)RR_A("mx2.part.test", "127.0.0.3", 300));
	ask(f, "part.test", &g);
	assert_status(g.status, DNS_OK);
	assert_int_equal(g.n, 1);
	want_target(&g, 0, "mx2.part.test", 20, "127.0.0.3");
	ask(f, "part.test", &g);
	assert_status(g.status, DNS_OK);
	assert_int_equal(f->fake->queries[15], 2);	/* asked again */
	/* and when it is the only host, the whole answer fails for now */
	fake_add(f->fake, (struct fake_rr)RR_MX("one.test", 10, "mx1.part.test", 300));
	ask(f, "one.test", &g);
	assert_status(g.status, DNS_TEMPFAIL);
}

/* cached for the smallest TTL, be it the MX's or an address's */
static void
test_fake_ttl(void **state)
{
	struct fixture *f = *state;
	struct got g;
	int mx;

	fake_add(f->fake, (struct fake_rr)RR_MX("mxttl.test", 10, "h.mxttl.test", 1));
	fake_add(f->fake, (struct fake_rr)RR_A("h.mxttl.test", "127.0.0.2", 300));
	fake_add(f->fake, (struct fake_rr)RR_MX("attl.test", 10, "h.attl.test", 300));
	fake_add(f->fake, (struct fake_rr)RR_A("h.attl.test", "127.0.0.2", 300));
	fake_add(f->fake, (struct fake_rr)RR_AAAA("h.attl.test", "::2", 1));
	fake_add(f->fake, (struct fake_rr)RR_MX("long.test", 10, "h.long.test", 300));
	fake_add(f->fake, (struct fake_rr)RR_A("h.long.test", "127.0.0.2", 300));
	ask(f, "mxttl.test", &g);
	assert_status(g.status, DNS_OK);
	ask(f, "attl.test", &g);
	assert_status(g.status, DNS_OK);
	assert_int_equal(g.n, 2);
	want_target(&g, 0, "h.attl.test", 10, "::2");
	want_target(&g, 1, "h.attl.test", 10, "127.0.0.2");
	ask(f, "long.test", &g);
	mx = f->fake->queries[15];
	assert_int_equal(mx, 3);
	ask(f, "mxttl.test", &g);		/* cached */
	ask(f, "attl.test", &g);
	ask(f, "long.test", &g);
	assert_int_equal(f->fake->queries[15], mx);
	advance_ms(1300);
	ask(f, "mxttl.test", &g);		/* expired */
	assert_status(g.status, DNS_OK);
	ask(f, "attl.test", &g);
	assert_status(g.status, DNS_OK);
	assert_int_equal(f->fake->queries[15], mx + 2);
	ask(f, "long.test", &g);		/* still cached */
	assert_int_equal(f->fake->queries[15], mx + 2);
}

/*
 * a long TTL is cut to an hour (RES_MAX_TTL), a negative answer's to a
 * minute (RES_NEG_TTL), as seen through the clock: no sleep
 */
static void
test_fake_ttl_caps(void **state)
{
	struct fixture *f = *state;
	struct got g;
	int mx;

	fake_add(f->fake, (struct fake_rr)RR_MX("day.test", 10, "h.day.test", 86400));
	fake_add(f->fake, (struct fake_rr)RR_A("h.day.test", "127.0.0.2", 86400));
	ask(f, "day.test", &g);
	assert_status(g.status, DNS_OK);
	ask(f, "nothing.test", &g);		/* no MX, no address */
	assert_status(g.status, DNS_NOHOST);
	mx = f->fake->queries[15];
	advance_ms(30 * 1000);
	ask(f, "day.test", &g);			/* both cached */
	ask(f, "nothing.test", &g);
	assert_status(g.status, DNS_NOHOST);
	assert_int_equal(f->fake->queries[15], mx);
	advance_ms(31 * 1000);			/* 61 s */
	ask(f, "nothing.test", &g);		/* the negative one expired */
	assert_status(g.status, DNS_NOHOST);
	assert_int_equal(f->fake->queries[15], mx + 1);
	ask(f, "day.test", &g);
	assert_int_equal(f->fake->queries[15], mx + 1);
	advance_ms(3600 * 1000 - 62 * 1000);	/* 3599 s */
	ask(f, "day.test", &g);			/* still cached */
	assert_status(g.status, DNS_OK);
	assert_int_equal(f->fake->queries[15], mx + 1);
	advance_ms(2 * 1000);			/* 3601 s: an hour at most */
	ask(f, "day.test", &g);
	assert_status(g.status, DNS_OK);
	want_target(&g, 0, "h.day.test", 10, "127.0.0.2");
	assert_int_equal(f->fake->queries[15], mx + 2);
}

/* at most 10 hosts, 4 addresses a host, IPv4 keeping half of them */
static void
test_fake_bounds(void **state)
{
	struct fixture *f = *state;
	static char names[12][32];
	struct got g;
	size_t i;

	for (i = 0; i < 12; i++) {
		snprintf(names[i], sizeof(names[i]), "h%02zu.many.test", i);
		fake_add(f->fake, (struct fake_rr)RR_MX("many.test",
		    (unsigned)(100 - i), names[i], 300));
	}
	fake_add(f->fake, (struct fake_rr)RR_A("h11.many.test", "127.0.1.1", 300));
	fake_add(f->fake, (struct fake_rr)RR_A("h11.many.test", "127.0.1.2", 300));
	fake_add(f->fake, (struct fake_rr)RR_A("h11.many.test", "127.0.1.3", 300));
	fake_add(f->fake, (struct fake_rr)RR_A("h11.many.test", "127.0.1.4", 300));
	fake_add(f->fake, (struct fake_rr)RR_A("h11.many.test", "127.0.1.5", 300));
	fake_add(f->fake, (struct fake_rr)RR_A("h11.many.test", "127.0.1.6", 300));
	fake_add(f->fake, (struct fake_rr)RR_AAAA("h10.many.test", "::a", 300));
	fake_add(f->fake, (struct fake_rr)RR_AAAA("h10.many.test", "::b", 300));
	fake_add(f->fake, (struct fake_rr)RR_AAAA("h10.many.test", "::c", 300));
	fake_add(f->fake, (struct fake_rr)RR_A("h10.many.test", "127.0.2.1", 300));
	fake_add(f->fake, (struct fake_rr)RR_A("h10.many.test", "127.0.2.2", 300));
	fake_add(f->fake, (struct fake_rr)RR_A("h10.many.test", "127.0.2.3", 300));
	fake_add(f->fake, (struct fake_rr)RR_A("h00.many.test", "127.0.0.100", 300));
	ask(f, "many.test", &g);
	assert_status(g.status, DNS_OK);
	/* 20 look-ups for the 10 best hosts: h00 (preference 100) is out */
	assert_int_equal(f->fake->queries[1] + f->fake->queries[28], 20);
	assert_int_equal(g.n, 8);
	for (i = 0; i < 4; i++) {
		char want[32];

		snprintf(want, sizeof(want), "127.0.1.%zu", i + 1);
		want_target(&g, i, "h11.many.test", 89, want);
	}
	want_target(&g, 4, "h10.many.test", 90, "::a");
	want_target(&g, 5, "h10.many.test", 90, "::b");
	want_target(&g, 6, "h10.many.test", 90, "127.0.2.1");
	want_target(&g, 7, "h10.many.test", 90, "127.0.2.2");
}

/* a "." among real MX hosts is skipped; alone, it is a null MX */
static void
test_fake_null_among_others(void **state)
{
	struct fixture *f = *state;
	struct got g;

	fake_add(f->fake, (struct fake_rr)RR_MX("mixed.test", 0, "", 300));
	fake_add(f->fake, (struct fake_rr)RR_MX("mixed.test", 10, "mx.mixed.test", 300));
	fake_add(f->fake, (struct fake_rr)RR_A("mx.mixed.test", "127.0.0.2", 300));
	fake_add(f->fake, (struct fake_rr)RR_MX("null10.test", 10, "", 300));
	ask(f, "mixed.test", &g);
	assert_status(g.status, DNS_OK);
	assert_int_equal(g.n, 1);
	want_target(&g, 0, "mx.mixed.test", 10, "127.0.0.2");
	ask(f, "null10.test", &g);
	assert_status(g.status, DNS_NULLMX);
}

/* cancelled while its address look-ups are out, then freed with one out */
static void
test_fake_cancel_mid_lookup(void **state)
{
	struct fixture *f = *state;
	struct resolver_query *q;
	struct got g, other;

	memset(&g, 0, sizeof(g));
	fake_add(f->fake, (struct fake_rr)RR_MX("mid.test", 10, "mx.mid.test", 300));
	fake_add(f->fake, (struct fake_rr)RR_A("mx.mid.test", "127.0.0.2", 300));
	fake_add(f->fake, (struct fake_rr)RR_DROP("mx.mid.test", 28));
	fake_add(f->fake, (struct fake_rr)RR_A("other.test", "127.0.0.5", 300));
	q = resolver_mx(f->res, "mid.test", got_cb, &g);
	assert_non_null(q);
	fake_wait(f->fake, f->base, 3);		/* MX, AAAA, A */
	assert_int_equal(f->fake->queries[28], 1);
	assert_int_equal(f->fake->queries[1], 1);
	resolver_cancel(q);
	/* the A answer comes in for a cancelled query; the loop goes on */
	ask(f, "other.test", &other);
	assert_status(other.status, DNS_OK);
	assert_int_equal(g.calls, 0);
	/* its AAAA is still out: resolver_free ends it (teardown, LSan) */
}

/* freed with look-ups of a live query out: no callback, no leak */
static void
test_fake_free_mid_lookup(void **state)
{
	struct fixture *f = *state;
	struct got g;

	memset(&g, 0, sizeof(g));
	fake_add(f->fake, (struct fake_rr)RR_MX("mid.test", 10, "mx.mid.test", 300));
	fake_add(f->fake, (struct fake_rr)RR_DROP("mx.mid.test", 0));
	assert_non_null(resolver_mx(f->res, "mid.test", got_cb, &g));
	fake_wait(f->fake, f->base, 3);
	resolver_free(f->res);
	f->res = NULL;
	event_base_loop(f->base, EVLOOP_NONBLOCK);
	assert_int_equal(g.calls, 0);
}

/* the cache holds a bounded number of domains, the oldest go first */
static void
test_fake_cache_bound(void **state)
{
	struct fixture *f = *state;
	char name[64];
	struct got g;
	int i, mx;

	for (i = 0; i < 1100; i++) {
		snprintf(name, sizeof(name), "n%04d.bulk.test", i);
		ask(f, name, &g);		/* no MX, no address */
		assert_status(g.status, DNS_NOHOST);
	}
	mx = f->fake->queries[15];
	assert_int_equal(mx, 1100);
	ask(f, "n1099.bulk.test", &g);		/* cached */
	assert_status(g.status, DNS_NOHOST);
	assert_int_equal(f->fake->queries[15], mx);
	ask(f, "n0000.bulk.test", &g);		/* gone */
	assert_status(g.status, DNS_NOHOST);
	assert_int_equal(f->fake->queries[15], mx + 1);
}

/* a DNS port nobody listens on: a temporary failure, quickly */
static void
test_dead_server(void **state)
{
	struct event_base *base = event_base_new();
	struct fixture f = { .base = base };
	struct got g;
	uint64_t t0;

	assert_non_null(base);
	f.res = resolver_on(base, free_port());
	assert_non_null(f.res);
	t0 = now_ms();
	ask(&f, "multi.test", &g);
	assert_status(g.status, DNS_TEMPFAIL);
	assert_int_equal(g.n, 0);
	assert_true(now_ms() - t0 < 8000);
	/* not cached: asked again, it fails again (and is not a hit) */
	ask(&f, "multi.test", &g);
	assert_status(g.status, DNS_TEMPFAIL);
	resolver_free(f.res);
	event_base_free(base);
}

static void
test_new_bad_server(void **state)
{
	struct event_base *base = event_base_new();
	struct sockaddr sa;

	assert_non_null(base);
	memset(&sa, 0, sizeof(sa));
	sa.sa_family = AF_UNIX;
	assert_null(resolver_new(base, &sa, sizeof(sa)));
	event_base_free(base);
}

#define DNS_TEST(fn) { .name = #fn, .test_func = (fn),			\
	.setup_func = setup_dnsmasq, .teardown_func = teardown_fixture }
#define FAKE_TEST(fn) { .name = #fn, .test_func = (fn),			\
	.setup_func = setup_fake, .teardown_func = teardown_fixture }

int
main(void)
{
	static const struct CMUnitTest dns_tests[] = {
		DNS_TEST(test_mx_by_preference),
		DNS_TEST(test_case_and_trailing_dot),
		DNS_TEST(test_implicit_mx),
		DNS_TEST(test_ipv6_first),
		DNS_TEST(test_nxdomain),
		DNS_TEST(test_null_mx),
		DNS_TEST(test_no_host),
		DNS_TEST(test_refused),
		DNS_TEST(test_bad_domain),
		DNS_TEST(test_equal_preferences),
		DNS_TEST(test_cache),
		DNS_TEST(test_cache_ttl),
		DNS_TEST(test_records_cache),
		DNS_TEST(test_cancel),
		DNS_TEST(test_callback_reentry),
		DNS_TEST(test_free_in_flight),
	};
	static const struct CMUnitTest fake_tests[] = {
		FAKE_TEST(test_fake_servfail),
		FAKE_TEST(test_fake_partial_tempfail),
		FAKE_TEST(test_fake_ttl),
		FAKE_TEST(test_fake_ttl_caps),
		FAKE_TEST(test_fake_bounds),
		FAKE_TEST(test_fake_null_among_others),
		FAKE_TEST(test_fake_cancel_mid_lookup),
		FAKE_TEST(test_fake_free_mid_lookup),
		FAKE_TEST(test_fake_cache_bound),
		FAKE_TEST(test_fake_records_negative_ttl),
	};
	struct CMUnitTest tests[nitems(order_cases) + nitems(dns_tests) +
	    nitems(fake_tests) + 3];
	size_t n = 0, i;

	signal(SIGPIPE, SIG_IGN);
	clock_set_for_tests(NULL, test_mono_ms);
	if (getenv("RESOLVER_TEST_VERBOSE") != NULL)
		log_init("test_resolver", 1, 1);
	UNIT_ROWS(tests, n, run_order_case, order_cases);
	UNIT_TEST(tests, n, test_order_properties);
	for (i = 0; i < nitems(dns_tests); i++)
		tests[n++] = dns_tests[i];
	for (i = 0; i < nitems(fake_tests); i++)
		tests[n++] = fake_tests[i];
	UNIT_TEST(tests, n, test_dead_server);
	UNIT_TEST(tests, n, test_new_bad_server);
	UNIT_RUN(tests, n);
}
