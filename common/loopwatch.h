/*
 * loopwatch.h - a log line when the event loop runs late (common/loopwatch.c;
 * what the line means: chamoisd(8), "LOOP LATE").
 */
#ifndef CHAMOIS_LOOPWATCH_H
#define CHAMOIS_LOOPWATCH_H

#define LOOPWATCH_EVERY_MS	100	/* the probe's period */
#define LOOPWATCH_LATE_MS	5	/* lateness that is logged */
#define LOOPWATCH_LOG_EVERY_S	10	/* at most one line this often */

struct event_base;

/*
 * loopwatch_start - start the probe on base: a timer every
 * LOOPWATCH_EVERY_MS that measures how late it runs and logs
 * "loop late ms=N probes=K" when it was LOOPWATCH_LATE_MS or more late
 * (N the worst lateness, K the late probes since the last line; at most
 * one line every LOOPWATCH_LOG_EVERY_S seconds).  Loop thread only.
 */
void loopwatch_start(struct event_base *);
/* loopwatch_stop - stop and free the probe (after the loop, or before) */
void loopwatch_stop(void);

#endif
