/*
 * reply_map.h - a remote server's reply made safe to give our own client
 * (doc/forwarding.md, the reply table): forward/'s RCPT and DATA replies,
 * and the LMTP server's (local/lmtp.c, local_delivery lmtp).
 */
#ifndef CHAMOIS_REPLY_MAP_H
#define CHAMOIS_REPLY_MAP_H

#include <stdbool.h>
#include <stddef.h>

#include "client.h"

/*
 * smtp_reply_map - r for our client (pure): its code and enhanced code
 * (X.0.0 of its class when it has none), the text without control
 * characters, non-ASCII only for an SMTPUTF8 client (utf8), bounded; a
 * class other than 2, 4 or 5 becomes "451 4.4.2"
 */
void smtp_reply_map(const struct smtp_reply *r, bool utf8, char *out,
    size_t size);

#endif
