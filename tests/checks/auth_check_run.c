/*
 * auth_check_run.c - the inbound checks (checks/checks.h) on one message,
 * for tests/integration/test_auth_checks.py: a libevent loop, the
 * resolver pointed at the test's dnsmasq, the CPU pool, and the message
 * (LF or CRLF lines) from stdin fed in chunks of CHUNK octets.  Prints
 * the Authentication-Results field, then what auth_policy says for a
 * local copy and for a forwarded one ("accept" or the reply).
 *
 *	auth_check_run [-m] [-d DOMAIN]... [-c CHUNK] [-w MS] [-x]
 *	    DNS_PORT CLIENT_IP HELO MAIL_FROM
 *
 * -m: dmarc_policy monitor; -d: one of our domains; -w: run the loop MS
 * milliseconds between the message and auth_check_finish (the look-ups
 * come in meanwhile); -x: auth_check_free at once after auth_check_finish,
 * then run the loop 500 ms more (what was in flight comes back to a freed
 * check: it must touch nothing) and print "freed"; -X: auth_check_free
 * from inside the callback; -p N: N more checks of the message at once
 * (their verifications on the CPU pool side by side), then print
 * "parallel: N, K differ" (K fields unlike the first check's); -n N: run the checks N
 * times more, one after another, and print "checks: N, p50 US us, p99 US
 * us" (the time from auth_check_start to the report, each look-up a
 * round trip to the DNS server: the resolver keeps no TXT cache).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "checks/checks.h"
#include "common/config.h"
#include "common/log.h"
#include "common/util.h"
#include "common/worker.h"
#include "outbound/resolver.h"

static struct event_base *base;
static struct config conf;
static const char *mail_from;
static int done, quiet, free_in_cb;
static struct auth_check *the_check;
static char *first_field;	/* the first report's field */

static void
time_up(evutil_socket_t fd, short what, void *arg)
{
	event_base_loopbreak(base);
}

/* run_loop - the loop for ms milliseconds (or until report breaks it) */
static void
run_loop(long ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	struct event *t = evtimer_new(base, time_up, NULL);

	evtimer_add(t, &tv);
	event_base_dispatch(base);
	event_free(t);
}

static void
report(void *arg, const struct auth_results *r)
{
	char reply[512];
	char *f = auth_results_field(r, "mx.chamois.test");

	if (first_field == NULL)
		first_field = strdup(f);
	done = 1;
	event_base_loopbreak(base);
	if (quiet) {
		free(f);
		return;
	}
	fputs(f, stdout);
	free(f);
	printf("local: %s\n", auth_policy(r, &conf, mail_from, false, reply,
	    sizeof(reply)) ? reply : "accept");
	printf("forward: %s\n", auth_policy(r, &conf, mail_from, true, reply,
	    sizeof(reply)) ? reply : "accept");
	/* what the engine may do: free it from its callback, r used up */
	if (free_in_cb) {
		auth_check_free(the_check);
		the_check = NULL;
	}
}

static int
cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;

	return x < y ? -1 : x > y;
}

static long long
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static long par_done, par_differ;
static long long now_us(void);

static void
par_report(void *arg, const struct auth_results *r)
{
	char *f = auth_results_field(r, "mx.chamois.test");

	par_differ += strcmp(f, first_field) != 0;
	par_done++;
	free(f);
}

/* parallel - n more checks of msg at once; how many reports differ */
static void
parallel(struct resolver *r, const struct auth_check_params *p,
    const struct strbuf *msg, size_t chunk, long n)
{
	struct auth_check **v = calloc((size_t)n, sizeof(*v));

	for (long i = 0; i < n; i++) {
		v[i] = auth_check_start(r, p);
		for (size_t o = 0, k; o < msg->len; o += k) {
			k = msg->len - o < chunk ? msg->len - o : chunk;
			auth_check_message(v[i], msg->p + o, k);
		}
	}
	for (long i = 0; i < n; i++)
		auth_check_finish(v[i], par_report, NULL);
	long long until = now_us() + 30000000;	/* bounded: 30 s */
	long spins = 0;

	while (par_done < n && now_us() < until) {
		event_base_loop(base, EVLOOP_ONCE);
		spins++;
	}
	if (getenv("CHECKS_VERBOSE") != NULL)
		fprintf(stderr, "parallel: %ld loop turns\n", spins);
	printf("parallel: %ld, %ld differ\n", par_done, par_differ);
	for (long i = 0; i < n; i++)
		auth_check_free(v[i]);
	free(v);
}

/* repeat - n more checks of msg, one after another; their times */
static void
repeat(struct resolver *r, const struct auth_check_params *p,
    const struct strbuf *msg, size_t chunk, long n)
{
	long long *t = calloc((size_t)n, sizeof(*t));

	quiet = 1;
	for (long i = 0; i < n; i++) {
		long long t0 = now_us();
		struct auth_check *ac = auth_check_start(r, p);

		for (size_t o = 0, k; o < msg->len; o += k) {
			k = msg->len - o < chunk ? msg->len - o : chunk;
			auth_check_message(ac, msg->p + o, k);
		}
		done = 0;
		auth_check_finish(ac, report, NULL);
		while (!done)
			event_base_loop(base, EVLOOP_ONCE);
		t[i] = now_us() - t0;
		auth_check_free(ac);
	}
	qsort(t, (size_t)n, sizeof(*t), cmp_ll);
	printf("checks: %ld, p50 %lld us, p99 %lld us\n", n, t[n / 2],
	    t[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1]);
	free(t);
}

int
main(int argc, char **argv)
{
	struct sockaddr_in dns;
	struct sockaddr_storage client;
	struct auth_check_params p;
	struct auth_check *ac;
	struct resolver *r;
	struct strbuf msg = { 0 };
	char buf[65536], *domains[16];
	size_t chunk = 1000, n, o;
	int c, nd = 0, free_early = 0;
	long wait_ms = 0, times = 0, npar = 0;

	while ((c = getopt(argc, argv, "md:c:w:xXn:p:")) != -1) {
		switch (c) {
		case 'm':
			conf.dmarc_monitor = true;
			break;
		case 'd':
			if (nd < 16)
				domains[nd++] = optarg;
			break;
		case 'c':
			chunk = (size_t)atoi(optarg);
			break;
		case 'w':
			wait_ms = atol(optarg);
			break;
		case 'x':
			free_early = 1;
			break;
		case 'X':
			free_in_cb = 1;
			break;
		case 'n':
			times = atol(optarg);
			break;
		case 'p':
			npar = atol(optarg);
			break;
		default:
			return 2;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc != 4 || chunk == 0) {
		fprintf(stderr, "usage: auth_check_run [-m] [-d DOMAIN]... "
		    "[-c CHUNK] DNS_PORT CLIENT_IP HELO MAIL_FROM\n");
		return 2;
	}
	conf.domains = domains;
	conf.ndomains = (size_t)nd;
	log_init("auth_check_run", 1, getenv("CHECKS_VERBOSE") != NULL);

	evthread_use_pthreads();
	base = event_base_new();
	worker_init(base, 1);
	/*
	 * a timer far off keeps the loop waiting (not spinning) while a job
	 * is on the CPU pool: the daemon's listeners do that for it
	 */
	struct timeval far = { 3600, 0 };
	struct event *keep = evtimer_new(base, time_up, NULL);

	evtimer_add(keep, &far);
	memset(&dns, 0, sizeof(dns));
	dns.sin_family = AF_INET;
	dns.sin_port = htons((uint16_t)atoi(argv[0]));
	inet_pton(AF_INET, "127.0.0.1", &dns.sin_addr);
	if ((r = resolver_new(base, (struct sockaddr *)&dns, sizeof(dns))) == NULL)
		return 1;

	memset(&client, 0, sizeof(client));
	if (inet_pton(AF_INET, argv[1], &((struct sockaddr_in *)&client)->sin_addr) == 1) {
		client.ss_family = AF_INET;
		p.clientlen = sizeof(struct sockaddr_in);
	} else if (inet_pton(AF_INET6, argv[1], &((struct sockaddr_in6 *)&client)->sin6_addr) == 1) {
		client.ss_family = AF_INET6;
		p.clientlen = sizeof(struct sockaddr_in6);
	} else
		return 2;
	p.client = (struct sockaddr *)&client;
	p.helo = argv[2];
	p.mail_from = mail_from = argv[3];
	p.hostname = "mx.chamois.test";

	/* the message, CRLF made LF as the engine hands it over */
	while ((n = fread(buf, 1, sizeof(buf), stdin)) > 0)
		for (size_t i = 0; i < n; i++)
			if (!(buf[i] == '\r' && i + 1 < n && buf[i + 1] == '\n'))
				strbuf_add(&msg, &buf[i], 1);

	ac = the_check = auth_check_start(r, &p);
	for (o = 0; o < msg.len; o += n) {
		n = msg.len - o < chunk ? msg.len - o : chunk;
		auth_check_message(ac, msg.p + o, n);
	}
	if (wait_ms > 0)
		run_loop(wait_ms);
	auth_check_finish(ac, report, NULL);
	if (done)
		fprintf(stderr, "auth_check_run: the callback ran inside auth_check_finish\n");
	if (free_early) {
		auth_check_free(ac);
		run_loop(500);
		printf("freed\n");
		ac = NULL;
		done = !done;	/* the callback must not have run */
	} else {
		/* bounded: the loop stays alive while a job is on the CPU pool */
		run_loop(30000);
		if (!done)
			fprintf(stderr, "auth_check_run: no report in 30s\n");
		ac = the_check;		/* NULL when the callback freed it */
	}
	auth_check_free(ac);
	if (done && times > 0)
		repeat(r, &p, &msg, chunk, times);
	if (done && npar > 0)
		parallel(r, &p, &msg, chunk, npar);
	free(first_field);
	resolver_free(r);
	event_free(keep);
	worker_shutdown();
	event_base_free(base);
	free(msg.p);
	return done ? 0 : 1;
}
