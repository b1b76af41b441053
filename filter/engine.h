/* engine.h - the milters as the session engine's filters (filter/engine.c) */
#ifndef CHAMOIS_FILTER_ENGINE_H
#define CHAMOIS_FILTER_ENGINE_H

#include "../smtpd/route.h"

struct event_base;

/* milter_filters_init - the loop the milters' connections run on */
void milter_filters_init(struct event_base *);
/* milter_filters - the filter ops: the composition root sets them per role */
extern const struct smtpd_filter_ops milter_filters;

#endif
