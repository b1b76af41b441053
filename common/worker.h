/*
 * worker.h - thread pools for blocking work: one for the disk (fsync,
 * BDB commits), one for CPU-bound work (SASL exchanges).
 */
#ifndef CHAMOIS_WORKER_H
#define CHAMOIS_WORKER_H

#include <stdbool.h>

struct event_base;

/*
 * the CPU pool's threads: SCRAM's PBKDF2 is pure CPU, so more threads
 * than a small machine's cores would not log anyone in sooner
 */
#define WORKER_CPU_THREADS	2

/*
 * worker_init - start n threads for the disk pool and WORKER_CPU_THREADS
 * for the CPU pool; completions run on base's loop.
 * Needs evthread_use_pthreads() before the base was made.
 */
void worker_init(struct event_base *base, int n);
/*
 * worker_submit - run work(arg) on a disk pool thread, then done(arg) on
 * the event loop.  work must not touch loop-owned state: arg is what the
 * job owns (its data, a copy of what it needs); a job working for a
 * session keeps the session's id and looks it up in done.
 */
void worker_submit(void (*work)(void *), void (*done)(void *), void *arg);
/*
 * worker_submit_cpu - the same on the CPU pool, which has its own queue:
 * its jobs never wait behind disk jobs, nor disk jobs behind them.
 */
void worker_submit_cpu(void (*work)(void *), void (*done)(void *), void *arg);
/*
 * worker_thread - true on a worker thread (either pool): loop-only code
 * asserts it is false (the session engine's accessors do), so a job that
 * reads loop-owned state fails at once instead of racing
 */
bool worker_thread(void);
/* worker_pending - jobs submitted (both pools) whose done has not run yet */
unsigned worker_pending(void);
/* worker_shutdown - finish queued jobs, join the threads, run the dones */
void worker_shutdown(void);

#endif
