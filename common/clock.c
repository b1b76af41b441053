/*
 * clock.c - the wall and monotonic clocks behind clock.h, each replaceable
 * by a unit test (clock_set_for_tests); the real ones by default.
 */
#include <stdint.h>
#include <time.h>

#include "clock.h"

static time_t (*fake_now)(void);
static int64_t (*fake_mono_ms)(void);

/* clock_now - the wall clock in seconds, or the test's */
time_t
clock_now(void)
{
	if (fake_now != NULL)
		return fake_now();
	return time(NULL);
}

/* clock_mono_ms - CLOCK_MONOTONIC in milliseconds, or the test's */
int64_t
clock_mono_ms(void)
{
	struct timespec ts;

	if (fake_mono_ms != NULL)
		return fake_mono_ms();
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* clock_set_for_tests - the test's clocks in place of the real ones */
void
clock_set_for_tests(time_t (*now)(void), int64_t (*mono_ms)(void))
{
	fake_now = now;
	fake_mono_ms = mono_ms;
}
