/*
 * clock.h - the one place chamois reads the time from: the wall clock in
 * seconds (message dates, queue lifetimes, retry times) and a monotonic
 * clock in milliseconds (cache TTLs, budgets).  A unit test replaces both
 * with its own functions, so that an expiry needs no real sleep; the daemon
 * never does (it has no way to: nothing outside tests calls
 * clock_set_for_tests).  Three readers of the real clock stay outside it,
 * wanting sub-second real time and no limit: log timestamps (log.c), the
 * loop watch (loopwatch.c) and Maildir file names (maildir_unique).
 */
#ifndef CHAMOIS_CLOCK_H
#define CHAMOIS_CLOCK_H

#include <stdint.h>
#include <time.h>

/* clock_now - the wall clock, seconds since the epoch, as time(NULL) */
time_t clock_now(void);
/*
 * clock_mono_ms - a monotonic clock in milliseconds (CLOCK_MONOTONIC):
 * never steps back when the wall clock is set; only differences mean
 * anything.
 */
int64_t clock_mono_ms(void);
/*
 * clock_set_for_tests - make clock_now and clock_mono_ms call now and
 * mono_ms instead; NULL for either restores the real clock.  For unit
 * tests only: call it before any worker thread starts (the pointers are
 * read without a lock).
 */
void clock_set_for_tests(time_t (*now)(void), int64_t (*mono_ms)(void));

#endif
