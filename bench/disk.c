/*
 * disk.c - the disk's own limit for durable Maildir delivery (issue 8,
 * scenario e): how many full durable cycles a second THREADS threads get
 * out of the file system under DIR, each cycle being what a careful
 * Maildir delivery does (and what maildir/maildir.c does for one copy):
 *
 *	open DIR/tmp/NAME (O_CREAT|O_EXCL), write SIZE octets, fsync, close,
 *	rename to DIR/new/NAME, open DIR/new, fsync it, close it.
 *
 * Usage:
 *	disk DIR THREADS SECONDS [SIZE]
 * DIR must exist; DIR/tmp and DIR/new are made if missing (and removed at
 * the end if they were made here and are empty). SECONDS may be a
 * fraction; SIZE defaults to 4096 octets. Prints one line:
 *	threads=20 cycles=12345 seconds=5.00 per_second=2469.0 size=4096
 * The files are removed after the timed part. Exit status 1 on a failed
 * system call (named on stderr), 2 on bad arguments.
 *
 * Build: make -C bench disk (libc and pthreads only).
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS	1024
#define MAX_SIZE	(256L * 1024 * 1024)

struct worker {
	pthread_t	 tid;
	unsigned	 index;
	unsigned long	 cycles;	/* completed; also the names made */
};

static const char *dir;
static char *payload;
static size_t payload_size;
static atomic_bool stop;
static atomic_bool failed;
static pthread_barrier_t start_line;

static void usage(void) __attribute__((noreturn));

static void
usage(void)
{
	fprintf(stderr, "usage: disk DIR THREADS SECONDS [SIZE]\n"
	    "  full durable cycles (create in DIR/tmp, write SIZE octets"
	    " (default 4096),\n  fsync, close, rename into DIR/new, fsync"
	    " DIR/new) for SECONDS with THREADS threads\n");
	exit(2);
}

/* now - CLOCK_MONOTONIC in seconds */
static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* file_name - the unique path of cycle SEQ of worker W under SUB */
static void
file_name(char *out, size_t size, const char *sub, unsigned w,
    unsigned long seq)
{
	int n = snprintf(out, size, "%s/%s/disk.%ld.%u.%lu", dir, sub,
	    (long)getpid(), w, seq);

	if (n < 0 || (size_t)n >= size) {
		fprintf(stderr, "disk: path too long under %s\n", dir);
		exit(2);
	}
}

/* fail - report a failed step and make every worker stop */
static void
fail(const char *step, const char *path)
{
	int e = errno;

	if (!atomic_exchange(&failed, true))
		fprintf(stderr, "disk: %s %s: %s\n", step, path, strerror(e));
	atomic_store(&stop, true);
}

/* write_full - write all of BUF, across short writes */
static int
write_full(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* cycle - one durable delivery; 0 or -1 (reported) */
static int
cycle(struct worker *w)
{
	char tmp[PATH_MAX], new[PATH_MAX], newdir[PATH_MAX];
	int fd;

	file_name(tmp, sizeof(tmp), "tmp", w->index, w->cycles);
	file_name(new, sizeof(new), "new", w->index, w->cycles);
	snprintf(newdir, sizeof(newdir), "%s/new", dir);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd == -1) {
		fail("open", tmp);
		return -1;
	}
	if (write_full(fd, payload, payload_size) == -1) {
		fail("write", tmp);
		close(fd);
		return -1;
	}
	if (fsync(fd) == -1) {
		fail("fsync", tmp);
		close(fd);
		return -1;
	}
	if (close(fd) == -1) {
		fail("close", tmp);
		return -1;
	}
	if (rename(tmp, new) == -1) {
		fail("rename", tmp);
		unlink(tmp);
		return -1;
	}
	/* the file is in new/ from here: count it so that it is removed */
	w->cycles++;
	fd = open(newdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd == -1) {
		fail("open", newdir);
		return -1;
	}
	if (fsync(fd) == -1) {
		fail("fsync", newdir);
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;

	pthread_barrier_wait(&start_line);
	while (!atomic_load(&stop))
		if (cycle(w) == -1)
			break;
	return NULL;
}

/* make_sub - mkdir DIR/SUB if missing; true if made here */
static bool
make_sub(const char *sub)
{
	char path[PATH_MAX];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, sub);
	if (mkdir(path, 0700) == 0)
		return true;
	if (errno != EEXIST || stat(path, &st) == -1 || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "disk: mkdir %s: %s\n", path,
		    errno == EEXIST ? "exists and is not a directory" :
		    strerror(errno));
		exit(1);
	}
	return false;
}

/* parse_ulong - a decimal in [min, max] or usage() */
static unsigned long
parse_ulong(const char *s, const char *what, unsigned long min,
    unsigned long max)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || *s == '-' || v < min ||
	    v > max) {
		fprintf(stderr, "disk: %s must be a whole number from %lu to"
		    " %lu, not \"%s\"\n", what, min, max, s);
		usage();
	}
	return v;
}

int
main(int argc, char **argv)
{
	struct worker *workers;
	struct stat st;
	struct timespec nap;
	unsigned long nthreads, total = 0;
	double seconds, t0, elapsed;
	char *end;
	bool made_tmp, made_new;

	if (argc < 4 || argc > 5)
		usage();
	dir = argv[1];
	if (stat(dir, &st) == -1) {
		fprintf(stderr, "disk: %s: %s\n", dir, strerror(errno));
		exit(2);
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "disk: %s: not a directory\n", dir);
		exit(2);
	}
	nthreads = parse_ulong(argv[2], "THREADS", 1, MAX_THREADS);
	errno = 0;
	seconds = strtod(argv[3], &end);
	if (errno != 0 || end == argv[3] || *end != '\0' || !(seconds > 0) ||
	    seconds > 86400) {
		fprintf(stderr, "disk: SECONDS must be a number above 0 and at"
		    " most 86400, not \"%s\"\n", argv[3]);
		usage();
	}
	payload_size = argc == 5 ?
	    parse_ulong(argv[4], "SIZE", 0, MAX_SIZE) : 4096;

	if ((payload = malloc(payload_size + 1)) == NULL ||
	    (workers = calloc(nthreads, sizeof(*workers))) == NULL) {
		fprintf(stderr, "disk: out of memory\n");
		exit(1);
	}
	for (size_t i = 0; i < payload_size; i++)
		payload[i] = (i % 78 == 77) ? '\n' : (char)('a' + i % 26);
	made_tmp = make_sub("tmp");
	made_new = make_sub("new");

	pthread_barrier_init(&start_line, NULL, (unsigned)nthreads + 1);
	for (unsigned long i = 0; i < nthreads; i++) {
		int e;

		workers[i].index = (unsigned)i;
		if ((e = pthread_create(&workers[i].tid, NULL, worker_main,
		    &workers[i])) != 0) {
			fprintf(stderr, "disk: pthread_create: %s\n",
			    strerror(e));
			exit(1);
		}
	}
	pthread_barrier_wait(&start_line);
	t0 = now();
	nap.tv_sec = (time_t)seconds;
	nap.tv_nsec = (long)((seconds - (double)nap.tv_sec) * 1e9);
	while (nanosleep(&nap, &nap) == -1 && errno == EINTR &&
	    !atomic_load(&stop))
		;
	atomic_store(&stop, true);
	/* each worker ends its cycle in progress: counted, and timed */
	for (unsigned long i = 0; i < nthreads; i++) {
		pthread_join(workers[i].tid, NULL);
		total += workers[i].cycles;
	}
	elapsed = now() - t0;

	/* untimed: remove what was made */
	for (unsigned long i = 0; i < nthreads; i++)
		for (unsigned long s = 0; s < workers[i].cycles; s++) {
			char path[PATH_MAX];

			file_name(path, sizeof(path), "new", (unsigned)i, s);
			if (unlink(path) == -1 && errno != ENOENT)
				fprintf(stderr, "disk: unlink %s: %s\n", path,
				    strerror(errno));
		}
	if (made_tmp || made_new) {
		char path[PATH_MAX];

		if (made_tmp) {
			snprintf(path, sizeof(path), "%s/tmp", dir);
			rmdir(path);
		}
		if (made_new) {
			snprintf(path, sizeof(path), "%s/new", dir);
			rmdir(path);
		}
	}
	if (atomic_load(&failed))
		return 1;
	printf("threads=%lu cycles=%lu seconds=%.2f per_second=%.1f"
	    " size=%zu\n", nthreads, total, elapsed, (double)total / elapsed,
	    payload_size);
	return 0;
}
