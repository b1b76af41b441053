/* tables.h - mailboxes and aliases: loading, checks and look-ups. */
#ifndef CHAMOIS_TABLES_H
#define CHAMOIS_TABLES_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

struct tables;

/* what one recipient address delivers to, aliases expanded */
struct expansion {
	char **mailboxes;	/* table spellings, each once */
	size_t nmailboxes;
	char *external;		/* the one external target, or NULL */
	bool catchall;		/* found through the domain's "@domain" line */
};

/*
 * tables_load - read the mailboxes and aliases files named by c and check
 * them (chamois.conf(5), aliases: cycles, more than one external target,
 * local targets that are neither mailbox nor alias); every problem goes to
 * fn as FILE:LINE.  NULL if there was any.  The tables hold c (config_ref)
 * until they go: look-ups read its domains.  Blocking (file reads):
 * chamoisd runs it on a worker thread on SIGHUP, where the job alone holds
 * c.
 */
struct tables *tables_load(struct config *c, config_problem_fn fn, void *arg);
/*
 * tables_ref - one more holder of t (a module that keeps it across a
 * SIGHUP: the engine, the queue, the submit socket); each holder ends with
 * tables_free, and the last one frees it (and lets go of its config).
 * Event-loop thread only, or a thread that alone holds t.
 */
struct tables *tables_ref(struct tables *);
void tables_free(struct tables *);
/*
 * tables_free_in_worker - let go of t as tables_free does, but when that
 * was the last hold the maps are freed on a worker thread (200,000
 * aliases take some 50 ms to free); needs worker_init.  Loop thread only.
 */
void tables_free_in_worker(struct tables *);
/*
 * tables_resolve - expand key (from addr_key(): "local@domain" folded, or
 * "postmaster") into exp; false if the address is not a local recipient.
 * user+tag@domain resolves as user@domain unless it is in a table itself,
 * and postmaster@ every local domain is always a recipient; an address
 * nothing of that names takes its domain's catch-all ("@domain: ...").
 */
bool tables_resolve(const struct tables *, const char *key, struct expansion *exp);
void expansion_free(struct expansion *);
size_t tables_mailbox_count(const struct tables *);

#endif
