/*
 * admin.h - the admin socket of chamoisctl(8): queue_dir/admin.sock.
 *
 * Protocol (one command per connection, chamoisctl(8) documents it):
 * the client sends one line, QUEUE, SHOW <id>, FLUSH, DELETE <id>, DUMP or
 * RESTORE (followed by a dump), and reads text until the server closes;
 * the last line is "OK" or "ERR <code> <text>".  Only uid 0 and the
 * daemon's own uid are served (SO_PEERCRED); others get
 * "ERR 530 permission denied".
 *
 * The dump format (DUMP writes it before its final line, RESTORE reads it):
 *
 *	chamois-queue-dump 1
 *	message <id> <envelope-octets> <body-octets>
 *	<the envelope record (queue_msg_encode)> LF
 *	<the body, LF line ends> LF
 *	... one such block per message ...
 *	end <number of messages>
 */
#ifndef CHAMOIS_ADMIN_H
#define CHAMOIS_ADMIN_H

#include <stdbool.h>
#include <stddef.h>

#define ADMIN_SOCKET_NAME	"admin.sock"
#define ADMIN_DUMP_MAGIC	"chamois-queue-dump"
#define ADMIN_DUMP_VERSION	1
#define ADMIN_LINE_MAX		512	/* a command or a dump framing line */
#define ADMIN_ENVELOPE_MAX	(4 * 1024 * 1024)	/* one envelope record */
#define ADMIN_BODY_FLOOR	(64ULL * 1024 * 1024)	/* restore: body limit is
						   max(this, 2 * max_message_size) */

struct event_base;
struct config;

/* admin_client.c */
/*
 * admin_connect - a socket connected to queue_dir's admin socket, its
 * path in path; -1 with errno (EACCES: not root or the daemon's user)
 */
int admin_connect(const char *queue_dir, char *path, size_t pathsize);
/* mailq.c */
/*
 * mailq_run - the queue in the Postfix/sendmail mailq form on stdout,
 * from the admin socket's QUEUE listing (chamois-sendmail(8)); problems
 * on stderr, prefixed with prog.  Returns a sysexits.h code.
 */
int mailq_run(const char *prog, const char *queue_dir);

/*
 * admin_init - bind queue_dir/admin.sock (mode 0600, owned by cfg->user
 * when running as root) and serve it on base; keeps cfg (config_ref).
 * Call after the event base exists and before privileges are dropped; the
 * queue must be initialised before the loop runs.  -1 with a message in
 * err.
 */
int admin_init(struct event_base *, struct config *, char *err,
    size_t errsize);
/*
 * admin_configure - SIGHUP: connections from now on use cfg (held:
 * config_ref; admin_init took the first); the old one is let go
 */
void admin_configure(struct config *);
/* admin_stop - the daemon stops: commands from now on get ERR 421 */
void admin_stop(void);
/*
 * admin_idle - no admin connection waits for a worker job or the queue
 * (an idle or answering connection does not hold the daemon's exit)
 */
bool admin_idle(void);
/* admin_shutdown - close the socket and every admin connection, unlink it */
void admin_shutdown(void);

#endif
