/*
 * schedule.c - when a deferred recipient is tried again, and when it gives
 * up (pure: the time comes in as an argument, so the unit tests need no
 * clock and no sleep).
 *
 * The intervals grow with the number of failed attempts: 1, 5, 15 and 30
 * minutes, then 1 and 2 hours, then every 4 hours until queue_lifetime
 * (retry_plan applies it and the delay notice; the scheduler's
 * attempt_finish asks retry_plan for each deferred recipient).  A jitter of up to +25%
 * taken from rnd spreads retries of messages that failed together (a
 * destination that was down) so they do not all come back at once.
 */
#include <stdbool.h>
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
 * not used: the lifetime check belongs to retry_plan.
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

/*
 * retry_plan - the end of an attempt at now for a deferred recipient of a
 * message created at created: expired once lifetime is over; else its
 * next attempt (next_attempt, brought forward to the end of the lifetime
 * and, while no delay notice has gone out and warning is not 0, to the
 * notice's time, so that both come on time), and whether the notice
 * (delay_warning_time, doc/queue.md) is due now.
 */
void
retry_plan(time_t created, unsigned attempts, bool reported, time_t lifetime,
    time_t warning, time_t now, double rnd, struct retry_plan *plan)
{
	time_t until = created + lifetime, warn = created + warning;

	plan->expired = now - created >= lifetime;
	plan->next = 0;
	plan->notify = false;
	if (plan->expired)
		return;
	plan->next = next_attempt(created, attempts, now, rnd);
	if (plan->next > until)
		plan->next = until;
	if (warning != 0 && !reported && warn > now && plan->next > warn)
		plan->next = warn;
	plan->notify = warning != 0 && !reported && now - created >= warning;
}
