/*
 * queue_db.c - the queue store: a transactional Berkeley DB environment in
 * queue_dir.  The only file in chamois that includes <db.h>; every DB_*
 * result is turned into 0, or -1 with errno set, here (STYLE practice 8):
 *
 *	DB_NOTFOUND, DB_KEYEMPTY	ENOENT
 *	DB_KEYEXIST			EEXIST (an id already stored)
 *	DB_LOCK_DEADLOCK (retried QDB_RETRIES times first), DB_LOCK_NOTGRANTED
 *					EAGAIN
 *	a system error (ENOSPC, EDQUOT, EIO, EACCES, ...)
 *					that errno, unchanged: the caller
 *					answers 452 4.3.1 for ENOSPC/EDQUOT
 *	DB_RUNRECOVERY			logged, then the process exits (below)
 *	anything else			EIO, with BDB's text in the log
 *
 * Layout: queue_dir holds envelopes.db (id -> the record of envelope.c)
 * and bodies.db (id -> the body, LF form), both btrees, the log files
 * (log.NNNNNNNNNN) and "lock".  The envelope and its body are written in
 * one transaction, so a single log flush makes both durable: no separate
 * body file to fsync, and no window in which one exists without the other.
 *
 * Durability: every transaction commits with the default flags, which is
 * DB_TXN_SYNC (the log is written and fsync'd before commit returns); the
 * environment never sets DB_TXN_NOSYNC or DB_TXN_WRITE_NOSYNC.  Several
 * worker threads committing at once share one flush (BDB's group commit:
 * a thread that finds its records already flushed by another returns
 * without a write), so commits per second grow with concurrency.
 *
 * Recovery: the environment is opened with DB_RECOVER every time, so a
 * crash or kill -9 is repaired at the next start.  That needs one process
 * only: qstore_open takes an exclusive flock on queue_dir/lock.  The
 * regions live in process memory (DB_PRIVATE): nothing survives a crash
 * that recovery would not rebuild, and the cache is not written back to
 * region files behind our back.  When BDB reports DB_RUNRECOVERY after the
 * open (the environment panicked: a failed log write, corruption), no
 * later call can succeed; queue_db.c logs that at LOG_CRIT and exits (1)
 * so that the service manager restarts chamoisd (Restart=on-failure in
 * chamoisd.service) and the restart runs recovery.  Everything committed
 * before the panic is in the log and survives.
 *
 * Concurrency: a transaction holds its page locks until its commit has
 * been flushed, so writers that touch the same page (the btree leaf that
 * receives the key, and above all the metadata page, locked by every
 * allocation of an overflow page for a body) run one after another,
 * fsync included, and never share a flush.  Both databases are therefore
 * partitioned in 16 by the first hex digit of the id (DB->set_partition:
 * one file, one metadata page and one tree per partition): commits that
 * land in different partitions overlap and share log flushes.  Measured
 * with bench/queue_commit (4 KiB bodies, 20 threads) this took the rate
 * from about 2,200 to 5,000-9,000 commits/s on the development VM.
 *
 * Deadlocks: several writers with page locks can deadlock on btree pages;
 * the detector (set_lk_detect(DB_LOCK_DEFAULT)) aborts one, and the
 * operation is retried as a whole in a new transaction.
 *
 * Files are made 0600 (the mode given to DB_ENV->open, DB->open and
 * set_lg_filemode); queue_dir itself 0700 when qstore_open makes it.
 */
#include <sys/file.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <db.h>
#include <event2/buffer.h>

#include "../common/body.h"
#include "../common/util.h"
#include "queue.h"

#define QDB_CACHE_BYTES		(32 * 1024 * 1024)
/*
 * one log file: recovery at start may need a whole one on disk, so it is
 * kept small enough to fit when the disk has just been full; BDB wants it
 * at least four times the in-memory log buffer
 */
#define QDB_LOG_BUFFER		(256 * 1024)	/* in-memory log buffer */
#define QDB_LOG_FILE		(1024 * 1024)	/* one log file */
#define QDB_BODY_PAGESIZE	(16 * 1024)		/* fewer overflow pages */
#define QDB_MAX_TXNS		1000	/* transactions at once (worker threads) */
#define QDB_MAX_LOCKS		50000
#define QDB_RETRIES		100	/* deadlock retries before EAGAIN */
#define QDB_WALK_BATCH		256	/* envelopes read per cursor pass */
#define QDB_PARTITIONS		16	/* by the first hex digit of the id */
#define QDB_ENVELOPES		"envelopes.db"
#define QDB_BODIES		"bodies.db"
#define QDB_LOCKFILE		"lock"

struct queue_store {
	DB_ENV *env;
	DB *envelopes;
	DB *bodies;
	int lock_fd;
};

/*
 * qdb_errno - a BDB result as -1 with errno set (the table above).
 * DB_RUNRECOVERY does not return.
 */
static int
qdb_errno(int ret)
{
	switch (ret) {
	case 0:
		return 0;
	case DB_NOTFOUND:
	case DB_KEYEMPTY:
		errno = ENOENT;
		break;
	case DB_KEYEXIST:
		errno = EEXIST;
		break;
	case DB_LOCK_DEADLOCK:
	case DB_LOCK_NOTGRANTED:
		errno = EAGAIN;
		break;
	case DB_RUNRECOVERY:
		fatalx("queue: Berkeley DB environment needs recovery (%s): "
		    "exiting so that the restart recovers it", db_strerror(ret));
	default:
		if (ret > 0)
			errno = ret;	/* a system error, passed through */
		else {
			log_warnx("queue: db: %s", db_strerror(ret));
			errno = EIO;
		}
		break;
	}
	return -1;
}

/* qdb_errcall - BDB's own diagnostics go to our log */
static void
qdb_errcall(const DB_ENV *env, const char *pfx, const char *msg)
{
	(void)env;
	(void)pfx;
	log_warnx("queue: db: %s", msg);
}

static void
qdb_event(DB_ENV *env, u_int32_t event, void *info)
{
	(void)env;
	(void)info;
	if (event == DB_EVENT_PANIC)
		log_warnx("queue: Berkeley DB panic: the queue store is "
		    "unusable until chamoisd restarts and recovers it");
}

static void
qdb_key(DBT *k, const char *id)
{
	memset(k, 0, sizeof(*k));
	k->data = (void *)(uintptr_t)id;
	k->size = (u_int32_t)strlen(id);
}

static bool
qdb_valid_id(const char *id)
{
	size_t n = strlen(id);

	if (n != QUEUE_ID_LEN)
		return false;
	return strspn(id, "0123456789abcdef") == n;
}

/*
 * qdb_run - fn in a new transaction, committed durably; a deadlock aborts
 * it and runs it again.  Returns a BDB result.
 */
static int
qdb_run(struct queue_store *qs, int (*fn)(struct queue_store *, DB_TXN *, void *),
    void *arg)
{
	for (unsigned tries = 0;; tries++) {
		DB_TXN *txn;
		int ret, aret;

		if ((ret = qs->env->txn_begin(qs->env, NULL, &txn, 0)) != 0)
			return ret;
		if ((ret = fn(qs, txn, arg)) == 0)
			return txn->commit(txn, 0);	/* DB_TXN_SYNC: the default */
		if ((aret = txn->abort(txn)) == DB_RUNRECOVERY)
			return aret;
		if (ret != DB_LOCK_DEADLOCK || tries >= QDB_RETRIES)
			return ret;
		if (tries > 2) {
			/* back off a little, at random, so the losers spread out */
			struct timespec ts = { 0, (long)(random_u64() % 1000000) * (long)tries };

			if (ts.tv_nsec > 50000000)
				ts.tv_nsec = 50000000;
			nanosleep(&ts, NULL);
		}
	}
}

/*
 * The partition boundaries: "1" .. "f", so partition i holds the ids that
 * start with hex digit i.  Ids are random, so the partitions fill evenly.
 */
static DBT qdb_bounds[QDB_PARTITIONS - 1];

static void
qdb_bounds_init(void)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < nitems(qdb_bounds); i++) {
		memset(&qdb_bounds[i], 0, sizeof(qdb_bounds[i]));
		qdb_bounds[i].data = (void *)(uintptr_t)&digits[(i + 1) * 16 / QDB_PARTITIONS];
		qdb_bounds[i].size = 1;
	}
}

static int
qdb_open_db(DB_ENV *env, DB **dbp, const char *name, u_int32_t pagesize)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	DB *db;
	int ret;

	pthread_once(&once, qdb_bounds_init);
	if ((ret = db_create(&db, env, 0)) != 0)
		return ret;
	if ((ret = db->set_partition(db, QDB_PARTITIONS, qdb_bounds, NULL)) != 0 ||
	    (pagesize != 0 && (ret = db->set_pagesize(db, pagesize)) != 0)) {
		db->close(db, 0);
		return ret;
	}
	ret = db->open(db, NULL, name, NULL, DB_BTREE,
	    DB_CREATE | DB_THREAD | DB_AUTO_COMMIT, 0600);
	if (ret != 0) {
		db->close(db, 0);
		return ret;
	}
	*dbp = db;
	return 0;
}

static void
qdb_free(struct queue_store *qs)
{
	if (qs->envelopes != NULL)
		qs->envelopes->close(qs->envelopes, 0);
	if (qs->bodies != NULL)
		qs->bodies->close(qs->bodies, 0);
	if (qs->env != NULL)
		qs->env->close(qs->env, 0);
	if (qs->lock_fd != -1)
		close(qs->lock_fd);
	free(qs);
}

/*
 * qstore_open - open (making it if needed) the store in dir and run
 * recovery; NULL with err filled and errno set on failure.
 */
struct queue_store *
qstore_open(const char *dir, char *err, size_t errsize)
{
	struct queue_store *qs = xcalloc(1, sizeof(*qs));
	const char *what;
	char path[4096];
	DB_ENV *env;
	int ret, e;

	qs->lock_fd = -1;
	what = "mkdir";
	if (mkdir(dir, 0700) == -1 && errno != EEXIST)
		goto syserr;
	what = "lock file";
	if (!bsnprintf(path, sizeof(path), "%s/%s", dir, QDB_LOCKFILE)) {
		errno = ENAMETOOLONG;
		goto syserr;
	}
	if ((qs->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) == -1)
		goto syserr;
	if (flock(qs->lock_fd, LOCK_EX | LOCK_NB) == -1) {
		if (errno == EWOULDBLOCK)
			what = "in use by another process; lock file";
		goto syserr;
	}

	what = "db_env_create";
	if ((ret = db_env_create(&env, 0)) != 0)
		goto dberr;
	qs->env = env;
	env->set_errcall(env, qdb_errcall);
	what = "environment settings";
	if ((ret = env->set_event_notify(env, qdb_event)) != 0 ||
	    (ret = env->set_cachesize(env, 0, QDB_CACHE_BYTES, 1)) != 0 ||
	    (ret = env->set_lg_bsize(env, QDB_LOG_BUFFER)) != 0 ||
	    (ret = env->set_lg_max(env, QDB_LOG_FILE)) != 0 ||
	    (ret = env->set_lg_filemode(env, 0600)) != 0 ||
	    (ret = env->set_lk_detect(env, DB_LOCK_DEFAULT)) != 0 ||
	    (ret = env->set_tx_max(env, QDB_MAX_TXNS)) != 0 ||
	    (ret = env->set_lk_max_lockers(env, QDB_MAX_TXNS * 2)) != 0 ||
	    (ret = env->set_lk_max_locks(env, QDB_MAX_LOCKS)) != 0 ||
	    (ret = env->set_lk_max_objects(env, QDB_MAX_LOCKS)) != 0)
		goto dberr;
	what = "opening the environment (recovery)";
	ret = env->open(env, dir, DB_CREATE | DB_INIT_TXN | DB_INIT_LOCK |
	    DB_INIT_LOG | DB_INIT_MPOOL | DB_THREAD | DB_RECOVER | DB_PRIVATE,
	    0600);
	if (ret != 0)
		goto dberr;
	what = QDB_ENVELOPES;
	if ((ret = qdb_open_db(env, &qs->envelopes, QDB_ENVELOPES, 0)) != 0)
		goto dberr;
	what = QDB_BODIES;
	if ((ret = qdb_open_db(env, &qs->bodies, QDB_BODIES, QDB_BODY_PAGESIZE)) != 0)
		goto dberr;
	return qs;

dberr:
	/* DB_RUNRECOVERY at open is reported, not fatal: a restart cannot help */
	snprintf(err, errsize, "queue %s: %s: %s", dir, what, db_strerror(ret));
	e = ret > 0 ? ret : EIO;
	qdb_free(qs);
	errno = e;
	return NULL;
syserr:
	e = errno;
	snprintf(err, errsize, "queue %s: %s: %s", dir, what, strerror(e));
	qdb_free(qs);
	errno = e;
	return NULL;
}

/* qstore_close - checkpoint (a short recovery next time) and close */
void
qstore_close(struct queue_store *qs)
{
	if (qs == NULL)
		return;
	qs->env->txn_checkpoint(qs->env, 0, 0, 0);
	qdb_free(qs);
}

/*
 * qstore_body_read - the whole body in one buffer, read as body_write_fd
 * does: the spool file with pread, then the evbuffer without draining it.
 */
int
qstore_body_read(const struct body *b, char **out, size_t *outlen)
{
	size_t memlen = evbuffer_get_length(b->mem);
	size_t spool = b->spool_fd != -1 ? (size_t)b->spool_len : 0;
	size_t off = 0;
	struct evbuffer_ptr pos;
	struct evbuffer_iovec v;
	char *buf;

	if (spool + memlen > UINT32_MAX || b->size > UINT32_MAX)
		return (errno = EFBIG, -1);	/* a DBT's size is 32 bits */
	if (b->edit != NULL) {
		/* a header section a filter changed (body_replace) */
		ssize_t r;

		buf = xmalloc(b->size + 1);
		while (off < b->size &&
		    (r = body_read_at(b, off, buf + off, b->size - off)) > 0)
			off += (size_t)r;
		if (off != b->size) {
			free(buf);
			return (errno = EIO, -1);
		}
		*out = buf;
		*outlen = off;
		return 0;
	}
	buf = xmalloc(spool + memlen + 1);
	while (off < spool) {
		ssize_t r = pread(b->spool_fd, buf + off, spool - off, (off_t)off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = EIO;
			free(buf);
			return -1;
		}
		off += (size_t)r;
	}
	evbuffer_ptr_set(b->mem, &pos, 0, EVBUFFER_PTR_SET);
	while (off < spool + memlen && evbuffer_peek(b->mem, -1, &pos, &v, 1) > 0) {
		size_t n = v.iov_len;

		if (n > spool + memlen - off)
			n = spool + memlen - off;
		memcpy(buf + off, v.iov_base, n);
		off += n;
		if (evbuffer_ptr_set(b->mem, &pos, v.iov_len, EVBUFFER_PTR_ADD) == -1)
			break;
	}
	if (off != spool + memlen) {
		free(buf);
		return (errno = EIO, -1);
	}
	*out = buf;
	*outlen = off;
	return 0;
}

struct qdb_put {
	const char *id;
	const char *rec, *body;
	size_t reclen, bodylen;
};

static int
qdb_put_txn(struct queue_store *qs, DB_TXN *txn, void *arg)
{
	const struct qdb_put *p = arg;
	DBT k, d;
	int ret;

	qdb_key(&k, p->id);
	memset(&d, 0, sizeof(d));
	d.data = (void *)(uintptr_t)p->rec;
	d.size = (u_int32_t)p->reclen;
	if ((ret = qs->envelopes->put(qs->envelopes, txn, &k, &d, DB_NOOVERWRITE)) != 0)
		return ret;
	memset(&d, 0, sizeof(d));
	d.data = (void *)(uintptr_t)p->body;
	d.size = (u_int32_t)p->bodylen;
	return qs->bodies->put(qs->bodies, txn, &k, &d, 0);
}

/*
 * qstore_put_buf - the envelope and head[0..headlen) then body[0..len) as
 * its body, in one transaction, durable on return; -1 with errno set (and
 * err filled) on failure, EEXIST for an id already in the store, EINVAL
 * for an id that is not 16 hex digits.
 */
int
qstore_put_buf(struct queue_store *qs, const struct queue_msg *m,
    const char *head, size_t headlen, const char *body, size_t len,
    char *err, size_t errsize)
{
	struct qdb_put p = { .id = m->id };
	char *joined = NULL, *rec;
	int e;

	if (!qdb_valid_id(m->id)) {
		snprintf(err, errsize, "queue: bad message id");
		return (errno = EINVAL, -1);
	}
	if (headlen > UINT32_MAX - len) {
		snprintf(err, errsize, "queue %s: body too big", m->id);
		return (errno = EFBIG, -1);
	}
	if (headlen > 0) {
		joined = xmalloc(headlen + len + 1);
		memcpy(joined, head, headlen);
		memcpy(joined + headlen, body, len);
		body = joined;
		len += headlen;
	}
	rec = queue_msg_encode(m, &p.reclen);
	p.rec = rec;
	p.body = body;
	p.bodylen = len;
	e = qdb_errno(qdb_run(qs, qdb_put_txn, &p)) == -1 ? errno : 0;
	free(rec);
	free(joined);
	if (e != 0) {
		snprintf(err, errsize, "queue %s: storing: %s", m->id, strerror(e));
		return (errno = e, -1);
	}
	return 0;
}

/* qstore_put_head - qstore_put_buf of head and the whole body b */
int
qstore_put_head(struct queue_store *qs, const struct queue_msg *m,
    const char *head, size_t headlen, const struct body *b, char *err,
    size_t errsize)
{
	char *body;
	size_t len;
	int r, e;

	if (qstore_body_read(b, &body, &len) == -1) {
		e = errno;
		snprintf(err, errsize, "queue %s: reading the body: %s", m->id,
		    strerror(e));
		return (errno = e, -1);
	}
	r = qstore_put_buf(qs, m, head, headlen, body, len, err, errsize);
	e = errno;
	free(body);
	errno = e;
	return r;
}

/* qstore_put - qstore_put_head without a head */
int
qstore_put(struct queue_store *qs, const struct queue_msg *m, const struct body *b,
    char *err, size_t errsize)
{
	return qstore_put_head(qs, m, NULL, 0, b, err, errsize);
}

static int
qdb_update_txn(struct queue_store *qs, DB_TXN *txn, void *arg)
{
	const struct qdb_put *p = arg;
	DBT k, d;
	int ret;

	qdb_key(&k, p->id);
	if ((ret = qs->envelopes->exists(qs->envelopes, txn, &k, DB_RMW)) != 0)
		return ret;
	memset(&d, 0, sizeof(d));
	d.data = (void *)(uintptr_t)p->rec;
	d.size = (u_int32_t)p->reclen;
	return qs->envelopes->put(qs->envelopes, txn, &k, &d, 0);
}

/* qstore_update - replace the envelope of a stored message (ENOENT if none) */
int
qstore_update(struct queue_store *qs, const struct queue_msg *m)
{
	struct qdb_put p = { .id = m->id };
	char *rec;
	int r, e;

	if (!qdb_valid_id(m->id))
		return (errno = ENOENT, -1);
	rec = queue_msg_encode(m, &p.reclen);
	p.rec = rec;
	r = qdb_errno(qdb_run(qs, qdb_update_txn, &p));
	e = errno;
	free(rec);
	errno = e;
	return r;
}

static int
qdb_delete_txn(struct queue_store *qs, DB_TXN *txn, void *arg)
{
	const char *id = arg;
	DBT k;
	int ret;

	qdb_key(&k, id);
	if ((ret = qs->envelopes->del(qs->envelopes, txn, &k, 0)) != 0)
		return ret;
	ret = qs->bodies->del(qs->bodies, txn, &k, 0);
	return ret == DB_NOTFOUND ? 0 : ret;
}

/* qstore_delete - the envelope and the body (ENOENT if not stored) */
int
qstore_delete(struct queue_store *qs, const char *id)
{
	if (!qdb_valid_id(id))
		return (errno = ENOENT, -1);
	return qdb_errno(qdb_run(qs, qdb_delete_txn, (void *)(uintptr_t)id));
}

struct qdb_batch {
	char last[QUEUE_ID_LEN + 1];	/* the last key read; "" before the first */
	char *recs[QDB_WALK_BATCH];
	size_t lens[QDB_WALK_BATCH];
	char ids[QDB_WALK_BATCH][QUEUE_ID_LEN + 1];
	size_t n;
	bool end;			/* the cursor reached the last record */
};

static void
qdb_batch_clear(struct qdb_batch *bt)
{
	for (size_t i = 0; i < bt->n; i++)
		free(bt->recs[i]);
	bt->n = 0;
}

/* qdb_walk_txn - up to QDB_WALK_BATCH envelopes after bt->last */
static int
qdb_walk_txn(struct queue_store *qs, DB_TXN *txn, void *arg)
{
	struct qdb_batch *bt = arg;
	char kbuf[256];
	DBC *c;
	DBT k, d;
	u_int32_t op;
	int ret, cret;

	qdb_batch_clear(bt);	/* a deadlock retry starts the batch again */
	bt->end = false;
	if ((ret = qs->envelopes->cursor(qs->envelopes, txn, &c, DB_READ_COMMITTED)) != 0)
		return ret;
	memset(&k, 0, sizeof(k));
	k.data = kbuf;
	k.ulen = sizeof(kbuf);
	k.flags = DB_DBT_USERMEM;
	op = DB_FIRST;
	if (bt->last[0] != '\0') {
		k.size = (u_int32_t)strlen(bt->last);
		memcpy(kbuf, bt->last, k.size);
		op = DB_SET_RANGE;
	}
	for (;;) {
		memset(&d, 0, sizeof(d));
		d.flags = DB_DBT_MALLOC;
		ret = c->get(c, &k, &d, op);
		op = DB_NEXT;
		if (ret == DB_NOTFOUND) {
			bt->end = true;
			ret = 0;
			break;
		}
		if (ret != 0)
			break;
		if (k.size == strlen(bt->last) &&
		    memcmp(kbuf, bt->last, k.size) == 0) {
			free(d.data);	/* the last one of the previous batch */
			continue;
		}
		if (k.size != QUEUE_ID_LEN) {
			log_warnx("queue: envelope with a bad key (%u octets) skipped",
			    k.size);
			free(d.data);
			continue;
		}
		memcpy(bt->ids[bt->n], kbuf, QUEUE_ID_LEN);
		bt->ids[bt->n][QUEUE_ID_LEN] = '\0';
		bt->recs[bt->n] = d.data;
		bt->lens[bt->n] = d.size;
		bt->n++;
		if (bt->n == QDB_WALK_BATCH)
			break;
	}
	if ((cret = c->close(c)) != 0 && ret == 0)
		ret = cret;
	return ret;
}

/*
 * qstore_walk - every envelope in id order.  The envelopes are read in
 * batches and fn runs with no lock held, so fn may call qstore_update or
 * qstore_delete.  A record that does not decode is logged and skipped
 * (it stays in the store for a human to look at).
 */
int
qstore_walk(struct queue_store *qs, int (*fn)(const struct queue_msg *, void *),
    void *arg)
{
	struct qdb_batch *bt = xcalloc(1, sizeof(*bt));
	int r = 0, e;

	for (;;) {
		if (qdb_errno(qdb_run(qs, qdb_walk_txn, bt)) == -1) {
			e = errno;
			qdb_batch_clear(bt);
			free(bt);
			return (errno = e, -1);
		}
		for (size_t i = 0; i < bt->n && r == 0; i++) {
			struct queue_msg m;

			if (queue_msg_decode(bt->recs[i], bt->lens[i], &m) == -1 ||
			    strcmp(m.id, bt->ids[i]) != 0) {
				log_warnx("queue: envelope %s unreadable, skipped",
				    bt->ids[i]);
				queue_msg_free(&m);
				continue;
			}
			r = fn(&m, arg);
			queue_msg_free(&m);
		}
		if (bt->n > 0)
			memcpy(bt->last, bt->ids[bt->n - 1], sizeof(bt->last));
		qdb_batch_clear(bt);
		if (r != 0 || bt->end)
			break;
	}
	free(bt);
	return 0;
}

/* qstore_get_body - the body into *buf (malloc'd, NUL-terminated), *len */
int
qstore_get_body(struct queue_store *qs, const char *id, char **buf, size_t *len)
{
	DBT k, d;
	int ret;

	if (!qdb_valid_id(id))
		return (errno = ENOENT, -1);
	qdb_key(&k, id);
	for (unsigned tries = 0;; tries++) {
		memset(&d, 0, sizeof(d));
		d.flags = DB_DBT_MALLOC;
		ret = qs->bodies->get(qs->bodies, NULL, &k, &d, 0);
		if (ret != DB_LOCK_DEADLOCK || tries >= QDB_RETRIES)
			break;
	}
	if (ret != 0)
		return qdb_errno(ret);
	/* DB_DBT_MALLOC memory comes from malloc(3): grow it for the NUL */
	*buf = xreallocarray(d.data, (size_t)d.size + 1, 1);
	(*buf)[d.size] = '\0';
	*len = d.size;
	return 0;
}

/*
 * qstore_checkpoint - flush the cache to the databases, write a checkpoint
 * (recovery starts from it) and remove the log files it no longer needs.
 */
int
qstore_checkpoint(struct queue_store *qs)
{
	int ret;

	if ((ret = qs->env->txn_checkpoint(qs->env, 0, 0, 0)) != 0)
		return qdb_errno(ret);
	return qdb_errno(qs->env->log_archive(qs->env, NULL, DB_ARCH_REMOVE));
}
