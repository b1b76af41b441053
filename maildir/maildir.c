/*
 * maildir.c - local delivery.
 *
 * The Maildir convention (https://cr.yp.to/proto/maildir.html) with the
 * durability promised in doc/protocol.md, "Durability": each copy is
 * written to tmp/ and synced; only when every copy is on disk are they
 * renamed into new/ and the new/ directories synced, and only then does
 * the session answer 250.  A new Maildir's directories, and the parents
 * that gained them, are synced before its first message.  Any failure
 * removes every copy, so a message is in all its mailboxes or in none.
 * Runs on worker threads.
 */
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../common/body.h"
#include "../common/clock.h"
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

/* maildir_pid - getpid() once: it is a system call each time, and the
 * daemon forks (daemon()) before any delivery */
static pid_t
maildir_pid(void)
{
	static _Atomic pid_t pid;

	if (pid == 0)
		pid = getpid();
	return pid;
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
	/* the real clock, not clock_now: the name wants its microseconds */
	clock_gettime(CLOCK_REALTIME, &ts);
	return bsnprintf(out, size, "%lld.M%06ldP%dQ%uR%08x.%s,S=%llu",
	    (long long)ts.tv_sec, ts.tv_nsec / 1000, (int)maildir_pid(),
	    atomic_fetch_add(&counter, 1) + 1, (unsigned)random_u64(), host,
	    filesize);
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

#define FAIL(step) do { d->failed_step = (step); goto fail; } while (0)

static void
copy_clear(struct maildir_copy *c)
{
	free(c->tmp);
	free(c->dir);
	c->tmp = c->dir = NULL;
}

/* maildir_prepare - every copy written to tmp/ and synced */
void
maildir_prepare(struct maildir_delivery *d)
{
	size_t i;

	d->result = RES_OK;
	d->error = 0;
	d->failed_step = NULL;
	for (i = 0; i < d->ncopies; i++) {
		struct maildir_copy *c = &d->copies[i];
		size_t plen = strlen(c->prefix);
		char dir[4096], name[512];
		int fd;

		if (!maildir_dir(d->root, c->mailbox, dir, sizeof(dir))) {
			errno = ENAMETOOLONG;
			FAIL("path");
		}
		copy_clear(c);
		c->dir = xstrdup(dir);
		if (!maildir_unique(name, sizeof(name), d->hostname,
		    (unsigned long long)(plen + d->body->size))) {
			errno = ENAMETOOLONG;
			FAIL("name");
		}
		c->tmp = xasprintf("%s/tmp/%s", dir, name);
		free(c->path);
		c->path = xasprintf("%s/new/%s", dir, name);
		/* the Maildir is made (and synced) the first time it is missing */
		fd = open(c->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd == -1 && (errno == ENOENT || errno == ENOTDIR)) {
			if (maildir_make(dir) == -1)
				FAIL("mkdir");
			fd = open(c->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
			    0600);
		}
		if (fd == -1)
			FAIL("open");
		c->in_tmp = true;
		if (write_full(fd, c->prefix, plen) == -1 ||
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
	return;
fail:
	d->error = errno;
	d->result = RES_TEMPFAIL;
	maildir_abort(d);
}

/* maildir_commit - move the prepared copies into new/, sync new/ */
void
maildir_commit(struct maildir_delivery *d)
{
	size_t i;

	d->result = RES_OK;
	d->error = 0;
	d->failed_step = NULL;
	for (i = 0; i < d->ncopies; i++) {
		struct maildir_copy *c = &d->copies[i];

		if (rename(c->tmp, c->path) == -1 &&
		    (errno != ENOENT || maildir_make(c->dir) == -1 ||
		    rename(c->tmp, c->path) == -1))
			FAIL("rename");	/* (new/ may have gone since prepare) */
		c->in_tmp = false;
		c->in_new = true;
	}
	for (i = 0; i < d->ncopies; i++) {
		char newdir[4200];
		bool again = false;

		/* copies in one Maildir share new/: sync it once */
		for (size_t j = 0; j < i; j++)
			if (strcmp(d->copies[j].dir, d->copies[i].dir) == 0)
				again = true;
		if (again)
			continue;
		bsnprintf(newdir, sizeof(newdir), "%s/new", d->copies[i].dir);
		if (fsync_dir(newdir) == -1)
			FAIL("fsync new/");
	}
	/* committed: nothing is left to undo */
	for (i = 0; i < d->ncopies; i++) {
		d->copies[i].in_new = false;
		copy_clear(&d->copies[i]);
	}
	return;
fail:
	d->error = errno;
	d->result = RES_TEMPFAIL;
	maildir_abort(d);
}

void
maildir_abort_prepared(struct maildir_delivery *d)
{
	for (size_t i = 0; i < d->ncopies; i++)
		if (d->copies[i].in_tmp) {
			unlink(d->copies[i].tmp);
			d->copies[i].in_tmp = false;
		}
}

/* maildir_abort - remove every copy, in tmp/ or already in new/ */
void
maildir_abort(struct maildir_delivery *d)
{
	int e = errno;

	for (size_t i = 0; i < d->ncopies; i++) {
		struct maildir_copy *c = &d->copies[i];

		if (c->in_tmp)
			unlink(c->tmp);
		if (c->in_new) {
			char newdir[4200];

			unlink(c->path);
			bsnprintf(newdir, sizeof(newdir), "%s/new", c->dir);
			fsync_dir(newdir);
		}
		c->in_tmp = c->in_new = false;
		copy_clear(c);
	}
	errno = e;
}

void
maildir_deliver(struct maildir_delivery *d)
{
	maildir_prepare(d);
	if (d->result == RES_OK)
		maildir_commit(d);
}

void
maildir_delivery_free(struct maildir_delivery *d)
{
	if (d == NULL)
		return;
	for (size_t i = 0; i < d->ncopies; i++) {
		copy_clear(&d->copies[i]);
		free(d->copies[i].prefix);
		free(d->copies[i].path);
	}
	free(d->copies);
	free(d);
}

/* clean_dir - unlink the regular files in dir older than cutoff */
static unsigned
clean_dir(const char *dir, time_t cutoff)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	unsigned n = 0;

	if (d == NULL)
		return 0;
	while ((e = readdir(d)) != NULL) {
		struct stat st;

		if (e->d_name[0] == '.')
			continue;
		if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(st.st_mode) && st.st_mtime < cutoff &&
		    unlinkat(dirfd(d), e->d_name, 0) == 0)
			n++;
	}
	closedir(d);
	return n;
}

unsigned
maildir_clean_tmp(const char *root, time_t max_age)
{
	time_t cutoff = clock_now() - max_age;
	DIR *domains = opendir(root);
	struct dirent *de;
	unsigned n = 0;

	if (domains == NULL)
		return 0;
	while ((de = readdir(domains)) != NULL) {
		char path[4096];
		DIR *users;
		struct dirent *ue;

		if (de->d_name[0] == '.' ||
		    !bsnprintf(path, sizeof(path), "%s/%s", root, de->d_name) ||
		    (users = opendir(path)) == NULL)
			continue;
		while ((ue = readdir(users)) != NULL) {
			char tmp[4096];

			if (ue->d_name[0] != '.' && bsnprintf(tmp, sizeof(tmp),
			    "%s/%s/%s/tmp", root, de->d_name, ue->d_name))
				n += clean_dir(tmp, cutoff);
		}
		closedir(users);
	}
	closedir(domains);
	return n;
}
