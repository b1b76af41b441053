/*
 * body.c - message bodies as they arrive.
 *
 * A body stays in an evbuffer up to BODY_SPILL_BYTES; past that it is
 * written to an unlinked temporary file in spool_dir, so a session holds at
 * most that much memory whatever the client sends.  Writing to the page
 * cache happens on the loop; nothing here syncs: the final copies (Maildir
 * files, the queue) are the durable ones.
 *
 * The octets in all spool files together are bounded (spool_max_size,
 * doc/chamois.conf.5; doc/security.md "Spool space"): a spill that would go
 * past the bound writes nothing and fails with ENOSPC, which the callers
 * answer as a full disk (452 4.3.1, store_error_reply(), which the engine
 * and every route give for a body that could not be kept).  Spills and
 * frees all happen on the loop thread (workers only read a body,
 * body_write_fd), so the count is a plain counter.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "body.h"
#include "limits.h"
#include "util.h"

static uint64_t spool_in_use;			/* octets in spool files */
static uint64_t spool_max = UINT64_MAX;	/* until body_spool_limit */

void
body_spool_limit(uint64_t max)
{
	spool_max = max;
}

uint64_t
body_spool_in_use(void)
{
	return spool_in_use;
}

bool
body_spool_full(void)
{
	return spool_in_use >= spool_max ||
	    spool_max - spool_in_use < BODY_SPILL_BYTES;
}

void
body_init(struct body *b, const char *spool_dir)
{
	memset(b, 0, sizeof(*b));
	b->mem = evbuffer_new();
	if (b->mem == NULL)
		fatalx("evbuffer_new");
	b->spool_fd = -1;
	b->spool_dir = spool_dir;
}

static int
body_spill(struct body *b)
{
	size_t pending = evbuffer_get_length(b->mem);

	/* nothing is written when the whole would not fit: the body stays whole */
	if (spool_in_use > spool_max || pending > spool_max - spool_in_use)
		return (errno = ENOSPC, -1);
	if (b->spool_fd == -1) {
		b->spool_fd = open(b->spool_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
		if (b->spool_fd == -1) {
			char path[4096];

			if (!bsnprintf(path, sizeof(path), "%s/spool.XXXXXX",
			    b->spool_dir))
				return (errno = ENAMETOOLONG, -1);
			if ((b->spool_fd = mkostemp(path, O_CLOEXEC)) == -1)
				return -1;
			unlink(path);
		}
	}
	while (evbuffer_get_length(b->mem) > 0) {
		struct evbuffer_iovec v[16];
		int n = evbuffer_peek(b->mem, -1, NULL, v, 16);
		struct iovec iov[16];
		ssize_t w;

		if (n > 16)
			n = 16;
		for (int i = 0; i < n; i++) {
			iov[i].iov_base = v[i].iov_base;
			iov[i].iov_len = v[i].iov_len;
		}
		w = pwritev(b->spool_fd, iov, n, b->spool_len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		b->spool_len += w;
		spool_in_use += (uint64_t)w;
		evbuffer_drain(b->mem, (size_t)w);
	}
	return 0;
}

int
body_append(struct body *b, const void *p, size_t n)
{
	if (evbuffer_add(b->mem, p, n) == -1)
		return (errno = ENOMEM, -1);
	b->size += n;
	if (evbuffer_get_length(b->mem) >= BODY_SPILL_BYTES)
		return body_spill(b);
	return 0;
}

/* stored_read_at - body_read_at of the octets as appended */
static ssize_t stored_read_at(const struct body *, uint64_t, void *, size_t);

int
body_replace(struct body *b, uint64_t at, uint64_t old, const char *text,
    size_t len)
{
	if (b->edit != NULL || at > b->size || old > b->size - at)
		return (errno = EINVAL, -1);
	b->edit = xmalloc(len + 1);
	memcpy(b->edit, text, len);
	b->edit_len = len;
	b->edit_at = at;
	b->edit_old = old;
	b->size = b->size - old + len;
	return 0;
}

/* write_replaced - body_write_fd of a body with a replacement */
static int
write_replaced(const struct body *b, int fd)
{
	char buf[65536];
	uint64_t off = 0;
	ssize_t n;

	while ((n = body_read_at(b, off, buf, sizeof(buf))) > 0) {
		if (write_full(fd, buf, (size_t)n) == -1)
			return -1;
		off += (uint64_t)n;
	}
	return n < 0 ? -1 : 0;
}

int
body_write_fd(const struct body *b, int fd)
{
	struct evbuffer_ptr pos;
	struct evbuffer_iovec v;

	if (b->edit != NULL)
		return write_replaced(b, fd);
	if (b->spool_fd != -1) {
		char buf[65536];
		off_t off = 0;

		while (off < b->spool_len) {
			ssize_t r = pread(b->spool_fd, buf, sizeof(buf), off);

			if (r < 0) {
				if (errno == EINTR)
					continue;
				return -1;
			}
			if (r == 0)
				return (errno = EIO, -1);
			if (write_full(fd, buf, (size_t)r) == -1)
				return -1;
			off += r;
		}
	}
	/* walk the evbuffer without draining it: several copies are written */
	evbuffer_ptr_set(b->mem, &pos, 0, EVBUFFER_PTR_SET);
	while (evbuffer_peek(b->mem, -1, &pos, &v, 1) > 0) {
		if (write_full(fd, v.iov_base, v.iov_len) == -1)
			return -1;
		if (evbuffer_ptr_set(b->mem, &pos, v.iov_len, EVBUFFER_PTR_ADD) == -1)
			break;
	}
	return 0;
}

ssize_t
body_read_at(const struct body *b, uint64_t off, void *buf, size_t len)
{
	uint64_t left;

	if (b->edit == NULL)
		return stored_read_at(b, off, buf, len);
	if (off >= b->size || len == 0)
		return 0;
	if (off < b->edit_at) {
		left = b->edit_at - off;
		return stored_read_at(b, off, buf, left < len ? (size_t)left : len);
	}
	if (off < b->edit_at + b->edit_len) {
		left = b->edit_at + b->edit_len - off;
		if (left < len)
			len = (size_t)left;
		memcpy(buf, b->edit + (off - b->edit_at), len);
		return (ssize_t)len;
	}
	return stored_read_at(b, off - b->edit_len + b->edit_old, buf, len);
}

static ssize_t
stored_read_at(const struct body *b, uint64_t off, void *buf, size_t len)
{
	struct evbuffer_ptr pos;
	uint64_t stored = b->size;

	if (b->edit != NULL)
		stored = b->size - b->edit_len + b->edit_old;
	if (off >= stored || len == 0)
		return 0;
	if (off < (uint64_t)b->spool_len) {
		uint64_t left = (uint64_t)b->spool_len - off;
		size_t n = left < len ? (size_t)left : len;
		ssize_t r;

		while ((r = pread(b->spool_fd, buf, n, (off_t)off)) < 0 &&
		    errno == EINTR)
			;
		if (r == 0)
			return (errno = EIO, -1);
		return r;
	}
	off -= (uint64_t)b->spool_len;
	if (evbuffer_ptr_set(b->mem, &pos, (size_t)off, EVBUFFER_PTR_SET) == -1)
		return (errno = EIO, -1);
	return evbuffer_copyout_from(b->mem, &pos, buf, len);
}

void
body_reset(struct body *b)
{
	evbuffer_drain(b->mem, evbuffer_get_length(b->mem));
	if (b->spool_fd != -1)
		close(b->spool_fd);
	spool_in_use -= (uint64_t)b->spool_len <= spool_in_use ?
	    (uint64_t)b->spool_len : spool_in_use;
	b->spool_fd = -1;
	b->spool_len = 0;
	b->size = 0;
	free(b->edit);
	b->edit = NULL;
	b->edit_len = 0;
}

void
body_free(struct body *b)
{
	if (b->mem == NULL)
		return;
	body_reset(b);
	evbuffer_free(b->mem);
	b->mem = NULL;
}

/* store_error_reply - see body.h */
const char *
store_error_reply(int error)
{
	if (error == ENOSPC || error == EDQUOT)
		return "452 4.3.1 Insufficient system storage";
	return "451 4.3.0 Local delivery failed, try again later";
}
