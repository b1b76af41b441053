/*
 * maildir.c - local delivery.
 *
 * The Maildir convention (https://cr.yp.to/proto/maildir.html) with the
 * durability SPEC 4 asks for: each copy is written to tmp/ and synced;
 * only when every copy is on disk are they renamed into new/ and the new/
 * directories synced, and only then does the session answer 250.  A new
 * Maildir's directories, and the parents that gained them, are synced
 * before its first message.  Any failure removes every copy, so a message
 * is in all its mailboxes or in none.  Runs on worker threads.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../common/body.h"
#include "../common/util.h"
#include "maildir.h"

bool
maildir_dir(const char *root, const char *mailbox, char *out, size_t size)
{
	const char *at = strrchr(mailbox, '@');

	if (at == NULL)
		return false;
	return bsnprintf(out, size, "%s/%s/%.*s", root, at + 1,
	    (int)(at - mailbox), mailbox);
}

bool
maildir_unique(char *out, size_t size, const char *hostname,
    unsigned long long filesize)
{
	static atomic_uint counter;
	char host[256];
	size_t o = 0;
	struct timespec ts;

	/* '/' and ':' cannot appear in the host part (the convention's \057, \072) */
	for (const char *h = hostname; *h && o + 5 < sizeof(host); h++) {
		if (*h == '/') {
			memcpy(host + o, "\\057", 4);
			o += 4;
		} else if (*h == ':') {
			memcpy(host + o, "\\072", 4);
			o += 4;
		} else
			host[o++] = *h;
	}
	host[o] = '\0';
	clock_gettime(CLOCK_REALTIME, &ts);
	return bsnprintf(out, size, "%lld.M%06ldP%dQ%uR%08x.%s,S=%llu",
	    (long long)ts.tv_sec, ts.tv_nsec / 1000, (int)getpid(),
	    atomic_fetch_add(&counter, 1) + 1, (unsigned)random_u64(), host,
	    filesize);
}

const char *
maildir_reply(int error)
{
	if (error == ENOSPC || error == EDQUOT)
		return "452 4.3.1 Insufficient system storage";
	return "451 4.3.0 Local delivery failed, try again later";
}

/* maildir_make - tmp/ new/ cur/ under dir, synced when new */
static int
maildir_make(const char *dir)
{
	static const char *const sub[] = { "tmp", "new", "cur" };
	char path[4096];

	for (size_t i = 0; i < nitems(sub); i++) {
		if (!bsnprintf(path, sizeof(path), "%s/%s", dir, sub[i]))
			return (errno = ENAMETOOLONG, -1);
		if (mkdir_synced(path, 0700) == -1)
			return -1;
	}
	return 0;
}

static int
write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

struct copy_state {
	char dir[4096];
	char tmp[4096];
	bool in_tmp, in_new;
};

#define FAIL(step) do { d->failed_step = (step); goto fail; } while (0)

void
maildir_deliver(struct maildir_delivery *d)
{
	struct copy_state *cs = xcalloc(d->ncopies, sizeof(*cs));
	size_t i;

	d->result = RES_OK;
	d->error = 0;
	d->failed_step = NULL;
	for (i = 0; i < d->ncopies; i++) {
		struct maildir_copy *c = &d->copies[i];
		size_t plen = strlen(c->prefix);
		char name[512];
		int fd;

		if (!maildir_dir(d->root, c->mailbox, cs[i].dir, sizeof(cs[i].dir))) {
			errno = ENAMETOOLONG;
			FAIL("path");
		}
		if (maildir_make(cs[i].dir) == -1)
			FAIL("mkdir");
		if (!maildir_unique(name, sizeof(name), d->hostname,
		    (unsigned long long)(plen + d->body->size)) ||
		    !bsnprintf(cs[i].tmp, sizeof(cs[i].tmp), "%s/tmp/%s",
		    cs[i].dir, name)) {
			errno = ENAMETOOLONG;
			FAIL("name");
		}
		free(c->path);
		c->path = xasprintf("%s/new/%s", cs[i].dir, name);
		fd = open(cs[i].tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd == -1)
			FAIL("open");
		cs[i].in_tmp = true;
		if (write_all(fd, c->prefix, plen) == -1 ||
		    body_write_fd(d->body, fd) == -1) {
			int e = errno;

			close(fd);
			errno = e;
			FAIL("write");
		}
		if (fsync(fd) == -1) {
			int e = errno;

			close(fd);
			errno = e;
			FAIL("fsync");
		}
		if (close(fd) == -1)
			FAIL("close");
	}
	for (i = 0; i < d->ncopies; i++) {
		if (rename(cs[i].tmp, d->copies[i].path) == -1)
			FAIL("rename");
		cs[i].in_tmp = false;
		cs[i].in_new = true;
	}
	for (i = 0; i < d->ncopies; i++) {
		char newdir[4200];

		/* copies in one mailbox share new/: sync it once */
		bool again = false;

		for (size_t j = 0; j < i; j++)
			if (strcmp(cs[j].dir, cs[i].dir) == 0)
				again = true;
		if (again)
			continue;
		bsnprintf(newdir, sizeof(newdir), "%s/new", cs[i].dir);
		if (fsync_dir(newdir) == -1)
			FAIL("fsync new/");
	}
	free(cs);
	return;
fail:
	d->error = errno;
	d->result = RES_TEMPFAIL;
	for (i = 0; i < d->ncopies; i++) {
		if (cs[i].in_tmp)
			unlink(cs[i].tmp);
		if (cs[i].in_new) {
			char newdir[4200];

			unlink(d->copies[i].path);
			bsnprintf(newdir, sizeof(newdir), "%s/new", cs[i].dir);
			fsync_dir(newdir);
		}
	}
	free(cs);
}
