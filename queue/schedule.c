/*
 * schedule.c - when a deferred recipient is tried again (pure).
 *
 * The intervals grow with the number of failed attempts: 1, 5, 15 and 30
 * minutes, then 1 and 2 hours, then every 4 hours until queue_lifetime
 * (which the scheduler applies, not this file).  A jitter of up to +25%
 * taken from rnd spreads retries of messages that failed together (a
 * destination that was down) so they do not all come back at once.
 */
#include <stdint.h>
#include <time.h>

#include "../common/util.h"
#include "queue.h"

static const time_t retry_intervals[] = {
	1 * 60, 5 * 60, 15 * 60, 30 * 60,	/* attempts 1..4 */
	60 * 60, 2 * 60 * 60,			/* 5, 6 */
	4 * 60 * 60,				/* 7 and every one after */
};

/*
 * next_attempt - now + the interval for the attempts-th failure + up to 25%
 * of it by rnd in [0, 1).  attempts 0 counts as 1; rnd outside [0, 1) (or
 * NaN) is clamped; the sum saturates instead of overflowing.  created is
 * not used: the lifetime check belongs to the scheduler.
 */
time_t
next_attempt(time_t created, unsigned attempts, time_t now, double rnd)
{
	size_t i = attempts > 0 ? attempts - 1 : 0;
	time_t iv, jitter;

	(void)created;
	if (i >= nitems(retry_intervals))
		i = nitems(retry_intervals) - 1;
	iv = retry_intervals[i];
	if (!(rnd >= 0.0))		/* negative or NaN */
		rnd = 0.0;
	if (rnd >= 1.0)
		rnd = 0.999999;
	jitter = (time_t)((double)iv * 0.25 * rnd);
	if (now > INT64_MAX - iv - jitter)
		return INT64_MAX;
	return now + iv + jitter;
}
