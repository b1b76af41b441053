/*
 * submit.h - the submit socket: how chamois-sendmail hands a message to
 * the running daemon's queue (queue/submit.c; doc/protocol.md,
 * "The submit socket").
 *
 * The socket is queue_dir/submit.sock (mode 0666; queue_dir is made 0711:
 * traversable, not listable).  One message per connection; every line
 * ends with LF:
 *
 *	client: SENDER <address>	("SENDER " alone, or "SENDER <>", is <>)
 *	client: DSN [NOTIFY=..] [RET=..] [ENVID=..]
 *					optional, once, before the first RCPT:
 *					RFC 3461's syntax (ENVID in xtext),
 *					the NOTIFY every recipient's
 *	client: RCPT <address>		1 to max_recipients times
 *	client: DATA <octets>		then exactly that many octets of the
 *					message (LF line ends)
 *	server: OK <queue id>
 *	    or: ERR <code> <enhanced code> <text>
 *
 * The server answers ERR as soon as something is wrong (a bad address,
 * too many recipients, DATA over max_message_size, a NUL octet in the
 * message) and closes; else once
 * the queue has made the message durable.  The caller's uid is taken from
 * SO_PEERCRED, never from what it sends.
 */
#ifndef CHAMOIS_SUBMIT_H
#define CHAMOIS_SUBMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define SUBMIT_SOCKET		"submit.sock"
#define SUBMIT_LINE_MAX		2048	/* a protocol line, LF included */
#define SUBMIT_TIMEOUT_SEC	60	/* idle: between two reads */
#define SUBMIT_DEADLINE_SEC	600	/* a whole submission */
#define SUBMIT_MAX_CONNECTIONS	32	/* at once; more get ERR 421 */
/* at once per uid, root included, so one user cannot take every slot
   (doc/chamois-sendmail.8); more get ERR 421 */
#define SUBMIT_MAX_PER_UID	(SUBMIT_MAX_CONNECTIONS / 4)
#define SUBMIT_HEADER_MAX	(1024 * 1024)	/* the header section */

struct config;
struct event_base;
struct tables;

/*
 * submit_init - bind queue_dir/submit.sock (a stale socket is removed
 * first) and listen on base; call it before privileges are dropped, after
 * queue_dir exists.  Keeps cfg and tables (config_ref, tables_ref).
 * Connections are served once the loop runs.  -1 with err set on failure.
 */
int submit_init(struct event_base *, struct config *, struct tables *,
    char *err, size_t errsize);
/*
 * submit_configure - SIGHUP: connections from now on use cfg, and the
 * owner of what they send is looked up in tables (both held: config_ref,
 * tables_ref; submit_init took the first); the old ones are let go
 */
void submit_configure(struct config *, struct tables *);
/*
 * submit_idle - no connection waits for its caller's name (a worker job)
 * or for the queue's answer.  A connection still sending does not hold
 * the daemon's exit: it is closed with the rest at the end.
 */
bool submit_idle(void);
/*
 * submit_stop - stop accepting and remove the socket (daemon stopping);
 * submissions already being read go on while the daemon still runs (they
 * do not hold it: submit_idle), those the queue holds are answered when
 * it calls back
 */
void submit_stop(void);
/* submit_shutdown - after the loop: close what is left, free everything */
void submit_shutdown(void);

/*
 * submit_owner - the local mailbox that gets the reports about what a
 * caller sends: USER@first-local-domain when that resolves to a local
 * mailbox (its table spelling), else the postmaster's mailbox.  user is
 * the caller's login name (looked up off the loop), NULL if its uid has
 * none.  No look-up of its own: safe on the loop.  malloc'd.
 */
char *submit_owner(const struct config *, const struct tables *,
    const char *user);

#endif
