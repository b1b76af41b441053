/* metrics.h - the metrics_listen endpoint (chamoisd/metrics.c) */
#ifndef CHAMOIS_ROOT_METRICS_H
#define CHAMOIS_ROOT_METRICS_H

#include <stddef.h>

struct event_base;
struct config;

/* metrics_listen_init - bind c->metrics_listen if set; -1 with err */
int metrics_listen_init(struct event_base *, const struct config *c,
    char *err, size_t errsize);
void metrics_listen_stop(void);		/* no new connection */
void metrics_listen_shutdown(void);	/* frees everything */

#endif
