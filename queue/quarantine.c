/*
 * quarantine.c - messages a content filter quarantined (SMFIR_QUARANTINE,
 * doc/filters.md): each one in queue_dir/quarantine/ID, a queue dump of
 * one message (admin.h, the format chamoisctl dump writes), with its
 * reason in ID.reason.  Nothing is delivered; chamoisctl quarantine lists
 * the folder and "chamoisctl quarantine release ID" restores the message
 * into the queue through the admin socket (RESTORE), which delivers it
 * as any queued message, then removes the files.
 *
 * The files are written on a worker thread: ID.reason, then the dump to
 * a temporary name, fsync, rename, fsync of the folder; only then does
 * the client get its 250 (nothing is acknowledged before it is durable).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/body.h"
#include "../common/util.h"
#include "../common/worker.h"
#include "admin.h"
#include "queue.h"

struct qjob {
	struct queue_msg *m;
	struct body *b;
	char *dir;			/* queue_dir/quarantine */
	char *reason;
	int error;
	void (*done)(void *, int, const char *);
	void *arg;
};

/* write_file - path's new content, synced (O_EXCL: a new name only) */
static int
write_file(const char *path, const char *head, size_t hlen, const struct body *b,
    const char *tail)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

	if (fd == -1)
		return -1;
	if (write_full(fd, head, hlen) == -1 ||
	    (b != NULL && body_write_fd(b, fd) == -1) ||
	    write_full(fd, tail, strlen(tail)) == -1 || fsync(fd) == -1) {
		int e = errno;

		close(fd);
		unlink(path);
		return (errno = e, -1);
	}
	return close(fd);
}

static void
quarantine_work(void *arg)
{
	struct qjob *j = arg;
	char path[4096], tmp[4096], rpath[4096], *env = NULL, *head = NULL;
	size_t elen;

	if (mkdir_synced(j->dir, 0700) == -1 && errno != EEXIST)
		goto fail;
	if (!bsnprintf(path, sizeof(path), "%s/%s", j->dir, j->m->id) ||
	    !bsnprintf(tmp, sizeof(tmp), "%s/.%s.tmp", j->dir, j->m->id) ||
	    !bsnprintf(rpath, sizeof(rpath), "%s/%s.reason", j->dir, j->m->id)) {
		errno = ENAMETOOLONG;
		goto fail;
	}
	if (write_file(rpath, j->reason, strlen(j->reason), NULL, "\n") == -1)
		goto fail;
	env = queue_msg_encode(j->m, &elen);
	head = xasprintf("%s %d\nmessage %s %zu %llu\n%.*s\n", ADMIN_DUMP_MAGIC,
	    ADMIN_DUMP_VERSION, j->m->id, elen, (unsigned long long)j->b->size,
	    (int)elen, env);
	if (write_file(tmp, head, strlen(head), j->b, "\nend 1\n") == -1 ||
	    rename(tmp, path) == -1 || fsync_dir(j->dir) == -1) {
		int e = errno;

		unlink(tmp);
		unlink(rpath);
		errno = e;
		goto fail;
	}
	free(env);
	free(head);
	return;
fail:
	j->error = errno ? errno : EIO;
	free(env);
	free(head);
}

static void
quarantine_done(void *arg)
{
	struct qjob *j = arg;

	j->done(j->arg, j->error, j->m->id);
	queue_msg_free(j->m);
	free(j->m);
	body_free(j->b);
	free(j->b);
	free(j->dir);
	free(j->reason);
	free(j);
}

/* queue_quarantine - see queue.h */
void
queue_quarantine(struct queue_msg *m, struct body *b, const char *queue_dir,
    const char *reason, void (*done)(void *, int, const char *), void *arg)
{
	struct qjob *j = xcalloc(1, sizeof(*j));

	/* a new id, the destinations as the queue makes them (kept on restore) */
	m->id[0] = '\0';
	queue_msg_prepare(m, b);
	j->m = m;
	j->b = b;
	j->dir = xasprintf("%s/%s", queue_dir, QUARANTINE_DIR);
	j->reason = xstrdup(reason);
	j->done = done;
	j->arg = arg;
	worker_submit(quarantine_work, quarantine_done, j);
}
