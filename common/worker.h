/* worker.h - a thread pool for blocking work (fsync, BDB commits). */
#ifndef CHAMOIS_WORKER_H
#define CHAMOIS_WORKER_H

#include <stdbool.h>

struct event_base;

/*
 * worker_init - start n threads; completions run on base's loop.
 * Needs evthread_use_pthreads() before the base was made.
 */
void worker_init(struct event_base *base, int n);
/*
 * worker_submit - run work(arg) on a worker thread, then done(arg) on the
 * event loop.  work must not touch loop-owned state: arg is what the job
 * owns (its data, a copy of what it needs); a job working for a session
 * keeps the session's id and looks it up in done.
 */
void worker_submit(void (*work)(void *), void (*done)(void *), void *arg);
/*
 * worker_thread - true on a worker thread: loop-only code asserts it is
 * false (the session engine's accessors do), so a job that reads
 * loop-owned state fails at once instead of racing
 */
bool worker_thread(void);
/* worker_pending - jobs submitted whose done has not run yet */
unsigned worker_pending(void);
/* worker_shutdown - finish queued jobs and join the threads */
void worker_shutdown(void);

#endif
