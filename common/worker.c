/*
 * worker.c - blocking work off the event loop.
 *
 * Durable writes (fsync of files and directories, later BDB commits) must
 * never stall other sessions, so they run here: a fixed set of threads takes
 * jobs from one queue; a finished job goes onto a done list and one event,
 * activated from the worker thread, runs every done callback on the loop.
 * A job owns what it works on (worker.h); worker_thread() lets loop-only
 * code refuse to run on a worker.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include <event2/event.h>

#include "util.h"
#include "worker.h"

struct job {
	struct job *next;
	void (*work)(void *);
	void (*done)(void *);
	void *arg;
};

static pthread_mutex_t wk_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wk_cond = PTHREAD_COND_INITIALIZER;
static struct job *wk_head, **wk_tail = &wk_head;
static struct job *wk_done, **wk_done_tail = &wk_done;
static pthread_t *wk_threads;
static int wk_nthreads;
static bool wk_stopping;
static unsigned wk_pending;
static struct event *wk_done_ev;
static _Thread_local bool wk_on_worker;

static void *
worker_main(void *unused)
{
	wk_on_worker = true;
	for (;;) {
		struct job *j;

		pthread_mutex_lock(&wk_lock);
		while (wk_head == NULL && !wk_stopping)
			pthread_cond_wait(&wk_cond, &wk_lock);
		if (wk_head == NULL) {
			pthread_mutex_unlock(&wk_lock);
			return NULL;
		}
		j = wk_head;
		if ((wk_head = j->next) == NULL)
			wk_tail = &wk_head;
		pthread_mutex_unlock(&wk_lock);

		j->work(j->arg);

		pthread_mutex_lock(&wk_lock);
		j->next = NULL;
		*wk_done_tail = j;
		wk_done_tail = &j->next;
		pthread_mutex_unlock(&wk_lock);
		event_active(wk_done_ev, EV_READ, 0);
	}
}

static void
worker_done_cb(evutil_socket_t fd, short what, void *unused)
{
	struct job *list, *j;

	pthread_mutex_lock(&wk_lock);
	list = wk_done;
	wk_done = NULL;
	wk_done_tail = &wk_done;
	pthread_mutex_unlock(&wk_lock);
	while ((j = list) != NULL) {
		list = j->next;
		wk_pending--;
		j->done(j->arg);
		free(j);
	}
}


void
worker_init(struct event_base *base, int n)
{
	wk_stopping = false;	/* a pool may start again after worker_shutdown */
	wk_done_ev = event_new(base, -1, 0, worker_done_cb, NULL);
	if (wk_done_ev == NULL)
		fatalx("worker: event_new");
	wk_threads = xcalloc((size_t)n, sizeof(*wk_threads));
	for (wk_nthreads = 0; wk_nthreads < n; wk_nthreads++)
		if (pthread_create(&wk_threads[wk_nthreads], NULL, worker_main, NULL))
			fatalx("worker: pthread_create");
}

void
worker_submit(void (*work)(void *), void (*done)(void *), void *arg)
{
	struct job *j = xmalloc(sizeof(*j));

	j->next = NULL;
	j->work = work;
	j->done = done;
	j->arg = arg;
	wk_pending++;
	pthread_mutex_lock(&wk_lock);
	*wk_tail = j;
	wk_tail = &j->next;
	pthread_cond_signal(&wk_cond);
	pthread_mutex_unlock(&wk_lock);
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

void
worker_shutdown(void)
{
	pthread_mutex_lock(&wk_lock);
	wk_stopping = true;
	pthread_cond_broadcast(&wk_cond);
	pthread_mutex_unlock(&wk_lock);
	for (int i = 0; i < wk_nthreads; i++)
		pthread_join(wk_threads[i], NULL);
	free(wk_threads);
	wk_threads = NULL;
	wk_nthreads = 0;
	if (wk_done_ev) {
		worker_done_cb(-1, 0, NULL);
		event_free(wk_done_ev);
		wk_done_ev = NULL;
	}
}
