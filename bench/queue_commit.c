/*
 * queue_commit.c - how many messages a second the queue store commits
 * durably, with 1, 20 and 100 threads calling qstore_put at once (as the
 * worker pool does when many submissions end together).
 *
 * Build (after `make` at the top, which makes build/libchamois.a):
 *	make -C bench		(bench/Makefile)
 * or by hand from the top of the tree:
 *	cc -std=c11 -D_GNU_SOURCE -O2 -I. -o bench/queue_commit \
 *	    bench/queue_commit.c build/libchamois.a -levent -lcrypto -ldb -lpthread
 *
 * Run:
 *	bench/queue_commit [-s seconds] [-b body-octets] [-d parent-dir]
 *	    [-m db|files] [threads ...]
 * Defaults: 3 seconds per run, 4096-octet bodies, a fresh mkdtemp
 * directory under /tmp for each run (removed after), threads 1 20 100.
 *
 * -m files measures the alternative design for comparison: each body in
 * its own file (write, fsync, fsync of the directory) and only the
 * envelope in the store (with an empty body), i.e. two separate syncs.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../common/body.h"
#include "../common/util.h"
#include "../queue/queue.h"

static atomic_bool stop;
static atomic_long committed, failed;
static size_t body_octets = 4096;
static bool files_mode;
static const char *run_dir;

struct worker {
	pthread_t t;
	struct queue_store *qs;
	unsigned n;
};

static void
fill(struct queue_msg *m, struct queue_rcpt *r)
{
	memset(m, 0, sizeof(*m));
	memset(r, 0, sizeof(*r));
	m->version = QUEUE_RECORD_VERSION;
	m->created = time(NULL);
	m->sender = "bench@chamois.test";
	m->owner = "bench";
	m->uid = -1;
	m->size = body_octets;
	r->addr = "someone@example.net";
	r->orig = "rfc822;someone@example.net";
	r->last_reply = "";
	r->remote_mta = "";
	m->rcpts = r;
	m->nrcpts = 1;
}

/* put_file - the body in its own synced file (the -m files design) */
static int
put_file(const char *id, const char *data, size_t len)
{
	char path[4096];
	int fd, dfd;

	snprintf(path, sizeof(path), "%s/bodies/%s", run_dir, id);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) == -1)
		return -1;
	if (write(fd, data, len) != (ssize_t)len || fsync(fd) == -1) {
		close(fd);
		return -1;
	}
	close(fd);
	snprintf(path, sizeof(path), "%s/bodies", run_dir);
	if ((dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	if (fsync(dfd) == -1) {
		close(dfd);
		return -1;
	}
	close(dfd);
	return 0;
}

static void *
worker_run(void *arg)
{
	struct worker *w = arg;
	struct queue_msg m;
	struct queue_rcpt r;
	struct body b, empty;
	char *data = xmalloc(body_octets);
	char err[256];

	for (size_t i = 0; i < body_octets; i++)
		data[i] = (i % 77 == 76) ? '\n' : (char)('a' + (i + w->n) % 26);
	body_init(&b, "/tmp");
	body_init(&empty, "/tmp");
	if (body_append(&b, data, body_octets) == -1)
		fatal("body_append");
	fill(&m, &r);
	while (!atomic_load(&stop)) {
		queue_new_id(m.id);
		if (files_mode) {
			if (put_file(m.id, data, body_octets) == -1 ||
			    qstore_put(w->qs, &m, &empty, err, sizeof(err)) == -1) {
				atomic_fetch_add(&failed, 1);
				continue;
			}
		} else if (qstore_put(w->qs, &m, &b, err, sizeof(err)) == -1) {
			log_warnx("%s", err);
			atomic_fetch_add(&failed, 1);
			continue;
		}
		atomic_fetch_add(&committed, 1);
	}
	body_free(&b);
	body_free(&empty);
	free(data);
	return NULL;
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(path);
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
run(const char *parent, unsigned nthreads, unsigned seconds)
{
	char dir[4096], err[256], sub[4200];
	struct worker *w = xcalloc(nthreads, sizeof(*w));
	struct queue_store *qs;
	struct timespec ts = { seconds, 0 };
	double t0, t1;

	if (!bsnprintf(dir, sizeof(dir), "%s/chamois-bench-XXXXXX", parent) ||
	    mkdtemp(dir) == NULL)
		fatal("mkdtemp %s", parent);
	run_dir = dir;
	snprintf(sub, sizeof(sub), "%s/bodies", dir);
	if (files_mode && mkdir(sub, 0700) == -1)
		fatal("mkdir %s", sub);
	snprintf(sub, sizeof(sub), "%s/q", dir);
	if ((qs = qstore_open(sub, err, sizeof(err))) == NULL)
		fatalx("%s", err);
	atomic_store(&stop, false);
	atomic_store(&committed, 0);
	atomic_store(&failed, 0);
	t0 = now_s();
	for (unsigned i = 0; i < nthreads; i++) {
		w[i].qs = qs;
		w[i].n = i;
		if (pthread_create(&w[i].t, NULL, worker_run, &w[i]) != 0)
			fatalx("pthread_create");
	}
	nanosleep(&ts, NULL);
	atomic_store(&stop, true);
	for (unsigned i = 0; i < nthreads; i++)
		pthread_join(w[i].t, NULL);
	t1 = now_s();
	printf("%-6s threads %4u  body %7zu  committed %7ld  failed %ld  %9.1f msg/s\n",
	    files_mode ? "files" : "db", nthreads, body_octets,
	    atomic_load(&committed), atomic_load(&failed),
	    (double)atomic_load(&committed) / (t1 - t0));
	fflush(stdout);
	qstore_close(qs);
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(w);
}

int
main(int argc, char *argv[])
{
	static const unsigned defaults[] = { 1, 20, 100 };
	const char *parent = "/tmp";
	unsigned seconds = 3;
	int ch;

	log_init("queue_commit", 1, 0);
	while ((ch = getopt(argc, argv, "b:d:m:s:")) != -1) {
		switch (ch) {
		case 'b':
			body_octets = strtoul(optarg, NULL, 10);
			break;
		case 'd':
			parent = optarg;
			break;
		case 'm':
			files_mode = strcmp(optarg, "files") == 0;
			break;
		case 's':
			seconds = (unsigned)strtoul(optarg, NULL, 10);
			break;
		default:
			fprintf(stderr, "usage: queue_commit [-s seconds] [-b octets] "
			    "[-d dir] [-m db|files] [threads ...]\n");
			return 2;
		}
	}
	if (optind == argc)
		for (size_t i = 0; i < nitems(defaults); i++)
			run(parent, defaults[i], seconds);
	for (int i = optind; i < argc; i++)
		run(parent, (unsigned)strtoul(argv[i], NULL, 10), seconds);
	return 0;
}
