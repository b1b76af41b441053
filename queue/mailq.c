/*
 * mailq.c - mailq, as Postfix and sendmail print it, from the admin
 * socket's QUEUE listing (chamoisctl(8) documents its lines):
 *
 *	-Queue ID-------  --Size-- ----Arrival Time---- -Sender/Recipient-------
 *	0123456789abcdef      1234 Wed Dec  2 21:00:00  joe@example.test
 *	                                                (the last reply)
 *	                                                dan@remote.test
 *
 *	-- 2 Kbytes in 1 Request.
 *
 * Only the recipients still to go (pending or deferred) are listed, each
 * after its last reply; an empty queue prints "Mail queue is empty".  The
 * admin socket serves only root and the daemon's user: anyone else gets a
 * message saying so (chamois-sendmail(8)).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "../common/util.h"
#include "admin.h"

#define MAILQ_LINE_MAX	16384	/* the longest listing line we take */
#define MAILQ_TIMEOUT	330	/* seconds without a byte (chamoisctl's) */
#define MAILQ_INDENT	48	/* the Sender/Recipient column */

struct mailq {
	const char *prog;
	unsigned long nmsgs;
	uint64_t kbytes;
};

/* arrival - "2026-12-02T21:00:00Z" as local "Wed Dec  2 21:00:00" */
static void
arrival(const char *iso, char *out, size_t size)
{
	struct tm tm = { 0 };
	time_t t;

	if (strptime(iso, "%Y-%m-%dT%H:%M:%SZ", &tm) == NULL ||
	    (t = timegm(&tm)) == (time_t)-1 || localtime_r(&t, &tm) == NULL ||
	    strftime(out, size, "%a %b %e %H:%M:%S", &tm) == 0)
		str_copy(out, iso, size);
}

/* message - "ID ISO-TIME SIZE <sender>" */
static bool
message(struct mailq *q, const char *line)
{
	char id[32], iso[32], when[64];
	unsigned long long size;
	const char *lt, *gt;

	if (sscanf(line, "%31s %31s %llu", id, iso, &size) != 3 ||
	    (lt = strchr(line, '<')) == NULL || (gt = strrchr(line, '>')) == NULL ||
	    gt < lt)
		return false;
	arrival(iso, when, sizeof(when));
	if (q->nmsgs++ == 0)
		printf("-Queue ID-------  --Size-- ----Arrival Time---- "
		    "-Sender/Recipient-------\n");
	else
		printf("\n");
	printf("%-16s  %8llu %-20.20s  %.*s\n", id, size, when, (int)(gt - lt - 1),
	    lt + 1);
	q->kbytes += (size + 1023) / 1024;
	return true;
}

/* recipient - "    ADDR STATE attempts=N next=TIME reply=TEXT" */
static bool
recipient(struct mailq *q, const char *line)
{
	const char *att = strstr(line, " attempts="), *reply, *st;
	size_t addrlen;

	if (q->nmsgs == 0 || att == NULL || (reply = strstr(att, " reply=")) == NULL)
		return false;
	for (st = att; st > line + 4 && st[-1] != ' '; st--)
		;
	if (st <= line + 5)
		return false;
	addrlen = (size_t)(st - 1 - (line + 4));
	if (strncmp(st, "pending ", 8) != 0 && strncmp(st, "deferred ", 9) != 0)
		return true;		/* delivered or failed: not waiting */
	reply += 7;
	if (strcmp(reply, "-") != 0)
		printf("%*s(%s)\n", MAILQ_INDENT, "", reply);
	printf("%*s%.*s\n", MAILQ_INDENT, "", (int)addrlen, line + 4);
	return true;
}

static int
refused(const struct mailq *q, const char *path)
{
	fprintf(stderr, "%s: permission denied: only root and chamoisd's user "
	    "may list the queue (%s)\n", q->prog, path);
	return EX_NOPERM;
}

int
mailq_run(const char *prog, const char *queue_dir)
{
	struct mailq q = { prog, 0, 0 };
	struct timeval tv = { MAILQ_TIMEOUT, 0 };
	char path[4096 + 32], line[MAILQ_LINE_MAX];
	FILE *f;
	int fd;

	if ((fd = admin_connect(queue_dir, path, sizeof(path))) == -1) {
		if (errno == EACCES || errno == EPERM)
			return refused(&q, path);
		fprintf(stderr, "%s: chamoisd is not running (no admin socket "
		    "answers at %s): %s\n", prog, path, strerror(errno));
		return EX_TEMPFAIL;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (write_full(fd, "QUEUE\n", 6) == -1 || (f = fdopen(fd, "r")) == NULL) {
		fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
		close(fd);
		return EX_TEMPFAIL;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		size_t n = strlen(line);

		if (n == 0 || line[n - 1] != '\n')
			break;		/* too long, or cut: not the status */
		line[n - 1] = '\0';
		if (strcmp(line, "OK") == 0) {
			fclose(f);
			if (q.nmsgs == 0)
				printf("Mail queue is empty\n");
			else
				printf("\n-- %" PRIu64 " Kbytes in %lu Request%s.\n",
				    q.kbytes, q.nmsgs, q.nmsgs == 1 ? "" : "s");
			return fflush(stdout) == 0 ? 0 : EX_IOERR;
		}
		if (strncmp(line, "ERR 530 ", 8) == 0) {
			fclose(f);
			return refused(&q, path);
		}
		if (strncmp(line, "ERR ", 4) == 0) {
			fprintf(stderr, "%s: %s\n", prog, line + 4);
			fclose(f);
			return EX_TEMPFAIL;
		}
		if (strncmp(line, "total: ", 7) == 0)
			continue;
		if (!(strncmp(line, "    ", 4) == 0 ? recipient(&q, line) :
		    message(&q, line))) {
			fprintf(stderr, "%s: unexpected line from chamoisd: %s\n",
			    prog, line);
			fclose(f);
			return EX_PROTOCOL;
		}
	}
	fprintf(stderr, "%s: chamoisd closed the connection in the middle of "
	    "its answer\n", prog);
	fclose(f);
	return EX_TEMPFAIL;
}
