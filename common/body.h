/* body.h - a message body: in memory while small, spilled to disk beyond. */
#ifndef CHAMOIS_BODY_H
#define CHAMOIS_BODY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct evbuffer;

/*
 * The spool file is written and read on the loop thread: it is an
 * unlinked file that nothing syncs, so a write or a read is a copy to or
 * from the page cache, which still holds what was written moments
 * before; only under memory pressure could one wait for the disk.  What
 * waits for the disk (fsync, the Maildir's and the queue's writes) runs
 * on the disk pool (common/worker.h).
 */

struct body {
	struct evbuffer *mem;	/* the tail not yet in the spool file */
	int spool_fd;		/* unlinked temporary file, or -1 */
	off_t spool_len;
	uint64_t size;		/* octets in all */
	const char *spool_dir;
	/* body_replace: edit_old octets at edit_at read as edit instead */
	char *edit;
	size_t edit_len;
	uint64_t edit_at, edit_old;
};

void body_init(struct body *, const char *spool_dir);
/* body_append - add octets; -1 with errno set when spilling failed */
int body_append(struct body *, const void *, size_t);
/*
 * body_write_fd - write the whole body to fd (safe on a worker thread while
 * nothing else touches the body); -1 with errno set on failure.
 */
int body_write_fd(const struct body *, int fd);
/*
 * body_read_at - up to len octets from offset off into buf: the count, 0 at
 * the end, -1 with errno set (loop thread, or a worker as body_write_fd)
 */
ssize_t body_read_at(const struct body *, uint64_t off, void *buf, size_t len);
/*
 * body_replace - from now on the old octets at offset at read as the len
 * octets of text (a header section a filter changed): every reader
 * (body_write_fd, body_read_at) and size see the new body.  Once per
 * body, after the last body_append; -1 (EINVAL) when out of range or
 * done before.
 */
int body_replace(struct body *, uint64_t at, uint64_t old, const char *text,
    size_t len);
/* body_reset - drop everything (memory and spool) */
void body_reset(struct body *);
void body_free(struct body *);

/*
 * The spool files of all bodies together (spool_max_size,
 * doc/chamois.conf.5): body_spool_limit sets the bound (at start and on
 * reload), a spill past it fails with ENOSPC; body_spool_full - less than
 * one spill (BODY_SPILL_BYTES) is left.  Loop thread only.
 */
void body_spool_limit(uint64_t);
/*
 * store_error_reply - the reply for a message that could not be kept
 * (errno of the failure): 452 4.3.1 for a full disk (ENOSPC, EDQUOT),
 * else 451 4.3.0
 */
const char *store_error_reply(int error);
uint64_t body_spool_in_use(void);
bool body_spool_full(void);

#endif
