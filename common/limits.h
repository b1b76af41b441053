/* limits.h - every protocol limit, with the RFC that sets it. */
#ifndef CHAMOIS_LIMITS_H
#define CHAMOIS_LIMITS_H

/*
 * RFC 5321 4.5.3.1.1-3: local part 64, domain 255, path 256 octets.  The
 * local part limit is not enforced: 4.5.3.1 asks servers to accept longer
 * objects where they can, and real senders (SRS, VERP) exceed it; the
 * path limit bounds it anyway.
 */
#define DOMAIN_MAX		255
#define PATH_MAX_OCTETS		256
/* RFC 5321 4.5.3.1.4 says 512; 2048 for long parameter lists
 * (doc/protocol.md, "Limits"). */
#define COMMAND_LINE_MAX	2048
/* RFC 4954 4: AUTH lines up to 12288 octets (doc/protocol.md, "Limits"). */
#define AUTH_LINE_MAX		12288
/* RFC 5321 4.5.3.1.6: text line 1000 octets including CRLF. */
#define TEXT_LINE_MAX		1000
/* RFC 5321 4.5.3.1.5: a reply line is at most 512 octets. */
#define REPLY_LINE_MAX		512
/* RFC 5321 4.5.3.2.7: server timeout 5 minutes. */
#define SERVER_TIMEOUT_SEC	300
/* RFC 5321 6.3: more than 100 Received is a loop (doc/protocol.md,
 * "Message content"). */
#define RECEIVED_MAX		100
/* HELO argument kept for logs and Received */
#define HELO_MAX		255

/* Session defaults (chamois.conf keys of the same name override them). */
#define DEF_MAX_ERRORS		20
#define DEF_MAX_CONNECTIONS	1000
#define DEF_MAX_CONN_PER_ADDR	50
#define DEF_SHUTDOWN_GRACE_SEC	60
/* past half of max_errors each error reply delays the next command */
#define TARPIT_DELAY_MS		1000

/* Messages up to this size are kept in memory; larger ones spill to disk. */
#define BODY_SPILL_BYTES	(256 * 1024)

#endif
