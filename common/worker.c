/*
 * worker.c - blocking work off the event loop.
 *
 * Durable writes (fsync of files and directories, later BDB commits) must
 * never stall other sessions, so they run here: a fixed set of threads takes
 * jobs from one queue; a finished job goes onto a done list and one event,
 * activated from the worker thread, runs every done callback on the loop.
 * A job owns what it works on (worker.h); worker_thread() lets loop-only
 * code refuse to run on a worker.
 *
 * CPU-bound work (SASL exchanges, whose SCRAM key derivation takes
 * milliseconds) has a pool of its own, WORKER_CPU_THREADS threads with
 * their own queue, so that a burst of logins never delays a Maildir sync
 * or a queue commit, and a slow disk never delays a login
 * (doc/performance.md "Logins and the event loop").  Both pools share the
 * done list and its event.
 */
#include <sys/resource.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "util.h"
#include "worker.h"

struct job {
	struct job *next;
	void (*work)(void *);
	void (*done)(void *);
	void *arg;
};

/* one queue and the threads that take from it */
struct pool {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct job *head, **tail;
	pthread_t *threads;
	int nthreads;
	int nice;		/* added to the threads' nice value */
	bool stopping;
};

static struct pool wk_io = {
	PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, &wk_io.head,
	NULL, 0, 0, false
};
/*
 * CPU jobs yield to the loop: on a machine whose cores they fill, the
 * loop's thread, at the default nice 0, still gets a core at once when it
 * wakes (a nice 10 thread weighs a tenth of it)
 */
static struct pool wk_cpu = {
	PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, &wk_cpu.head,
	NULL, 0, 10, false
};
static pthread_mutex_t wk_done_lock = PTHREAD_MUTEX_INITIALIZER;
static struct job *wk_done, **wk_done_tail = &wk_done;
static unsigned wk_pending;
static struct event *wk_done_ev;
static _Thread_local bool wk_on_worker;

static void *
worker_main(void *arg)
{
	wk_on_worker = true;
	struct pool *p = arg;

	/* Linux: the nice value of this thread alone (setpriority(2)) */
	if (p->nice != 0) {
		int nice = getpriority(PRIO_PROCESS, (id_t)gettid()) + p->nice;

		if (setpriority(PRIO_PROCESS, (id_t)gettid(), nice > 19 ? 19 : nice) == -1)
			log_warn("worker: setpriority");
	}
	for (;;) {
		struct job *j;

		pthread_mutex_lock(&p->lock);
		while (p->head == NULL && !p->stopping)
			pthread_cond_wait(&p->cond, &p->lock);
		if (p->head == NULL) {
			pthread_mutex_unlock(&p->lock);
			return NULL;
		}
		j = p->head;
		if ((p->head = j->next) == NULL)
			p->tail = &p->head;
		pthread_mutex_unlock(&p->lock);

		j->work(j->arg);

		pthread_mutex_lock(&wk_done_lock);
		j->next = NULL;
		*wk_done_tail = j;
		wk_done_tail = &j->next;
		pthread_mutex_unlock(&wk_done_lock);
		event_active(wk_done_ev, EV_READ, 0);
	}
}

static void
worker_done_cb(evutil_socket_t fd, short what, void *unused)
{
	struct job *list, *j;

	pthread_mutex_lock(&wk_done_lock);
	list = wk_done;
	wk_done = NULL;
	wk_done_tail = &wk_done;
	pthread_mutex_unlock(&wk_done_lock);
	while ((j = list) != NULL) {
		list = j->next;
		wk_pending--;
		j->done(j->arg);
		free(j);
	}
}

static void
pool_start(struct pool *p, int n)
{
	p->threads = xcalloc((size_t)n, sizeof(*p->threads));
	for (p->nthreads = 0; p->nthreads < n; p->nthreads++)
		if (pthread_create(&p->threads[p->nthreads], NULL, worker_main, p))
			fatalx("worker: pthread_create");
}

void
worker_init(struct event_base *base, int n)
{
	/* a pool may start again after worker_shutdown (the engine's tests) */
	wk_io.stopping = wk_cpu.stopping = false;
	wk_done_ev = event_new(base, -1, 0, worker_done_cb, NULL);
	if (wk_done_ev == NULL)
		fatalx("worker: event_new");
	pool_start(&wk_io, n);
	pool_start(&wk_cpu, WORKER_CPU_THREADS);
}

static void
pool_submit(struct pool *p, void (*work)(void *), void (*done)(void *),
    void *arg)
{
	struct job *j = xmalloc(sizeof(*j));

	j->next = NULL;
	j->work = work;
	j->done = done;
	j->arg = arg;
	wk_pending++;
	pthread_mutex_lock(&p->lock);
	*p->tail = j;
	p->tail = &j->next;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

void
worker_submit(void (*work)(void *), void (*done)(void *), void *arg)
{
	pool_submit(&wk_io, work, done, arg);
}

void
worker_submit_cpu(void (*work)(void *), void (*done)(void *), void *arg)
{
	pool_submit(&wk_cpu, work, done, arg);
}

bool
worker_thread(void)
{
	return wk_on_worker;
}

unsigned
worker_pending(void)
{
	return wk_pending;
}

static void
pool_stop(struct pool *p)
{
	pthread_mutex_lock(&p->lock);
	p->stopping = true;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	for (int i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	free(p->threads);
	p->threads = NULL;
	p->nthreads = 0;
}

void
worker_shutdown(void)
{
	pool_stop(&wk_io);
	pool_stop(&wk_cpu);
	if (wk_done_ev) {
		worker_done_cb(-1, 0, NULL);
		event_free(wk_done_ev);
		wk_done_ev = NULL;
	}
}
