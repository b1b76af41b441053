/*
 * loopwatch.c - the probe that shows a blocked event loop.
 *
 * Nothing may block the loop: one callback that runs long delays every
 * session's next reply.  libevent 2.1 cannot time its callbacks (2.2's
 * evwatch could), so a probe timer does it from outside: every
 * LOOPWATCH_EVERY_MS it notes when it is due and, when it runs, how late
 * it is on the monotonic clock.  A callback, or a run of callbacks, that
 * holds the loop past that time makes the probe late by about as much.
 * A blocker longer than the period is always seen; a shorter one of D ms
 * with the chance (D - LOOPWATCH_LATE_MS) / LOOPWATCH_EVERY_MS, so one
 * that repeats (a slow command served many times) soon shows.  The line
 * names no culprit: it says that one exists, and when.
 *
 * Cost: ten wake-ups a second, each a clock read and a timer re-arm
 * (measured in doc/chamoisd.8, "LOOP LATE").
 */
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <event2/event.h>

#include "log.h"
#include "loopwatch.h"

static struct {
	struct event_base *base;
	struct event *ev;
	int64_t due_us;		/* when the probe should run */
	int64_t logged_us;	/* the last line, 0 before the first */
	int64_t worst_us;	/* the worst lateness not logged yet */
	unsigned late;		/* late probes not logged yet */
} lw;

static int64_t
mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void
arm(void)
{
	struct timeval tv = { 0, LOOPWATCH_EVERY_MS * 1000 };

	/* libevent counts from its cached time, which may be this round's
	   start: refresh it so that the timer and due_us agree */
	event_base_update_cache_time(lw.base);
	lw.due_us = mono_us() + (int64_t)LOOPWATCH_EVERY_MS * 1000;
	evtimer_add(lw.ev, &tv);
}

static void
probe_cb(evutil_socket_t fd, short what, void *arg)
{
	int64_t now = mono_us(), late = now - lw.due_us;

	if (late >= (int64_t)LOOPWATCH_LATE_MS * 1000) {
		lw.late++;
		if (late > lw.worst_us)
			lw.worst_us = late;
	}
	if (lw.late > 0 && (lw.logged_us == 0 ||
	    now - lw.logged_us >= (int64_t)LOOPWATCH_LOG_EVERY_S * 1000000)) {
		log_warnx("loop late ms=%lld probes=%u",
		    (long long)(lw.worst_us / 1000), lw.late);
		lw.logged_us = now;
		lw.worst_us = 0;
		lw.late = 0;
	}
	arm();
}

void
loopwatch_start(struct event_base *base)
{
	lw.base = base;
	if ((lw.ev = evtimer_new(base, probe_cb, NULL)) == NULL)
		fatalx("loopwatch: evtimer_new");
	arm();
}

void
loopwatch_stop(void)
{
	if (lw.ev)
		event_free(lw.ev);
	lw.ev = NULL;
}
