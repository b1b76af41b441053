/*
 * headedit.h - one change to a message's header section (LF form): the
 * engine's smtpd_tx_header_* (route.h), kept apart so the unit tests
 * can drive it.
 */
#ifndef CHAMOIS_HEADEDIT_H
#define CHAMOIS_HEADEDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* a header section that may be changed: at most this long (octets) */
#define HEADER_EDIT_MAX		(256 * 1024)

enum head_op { HEAD_ADD, HEAD_INSERT, HEAD_CHANGE };

/*
 * head_edit - head (len octets: whole fields, each ending in LF, no blank
 * line) with one change (route.h, smtpd_tx_header_add/_insert/_change):
 * the new section (malloc'd, NUL-terminated, its length in *outlen), or
 * NULL for a bad name (not printable ASCII without the colon) or value
 * (a bare CR or a NUL), or a result over HEADER_EDIT_MAX.  A value line
 * that does not start with a space or a tab gets a tab, so no value
 * makes a field of its own or ends the header section.
 */
char *head_edit(const char *head, size_t len, enum head_op, unsigned index,
    const char *name, const char *value, size_t *outlen);

/*
 * head_section_len - the length of the header section at the start of
 * text (its fields, without the blank line): true with *hlen, false when
 * the blank line is not within len octets and more follows (more)
 */
bool head_section_len(const char *text, size_t len, bool more, size_t *hlen);

struct body;
/*
 * head_read - the header section of the message in b from offset off (its
 * fields, no blank line; malloc'd, NUL-terminated, its length in *hlen),
 * read a piece at a time until the blank line: NULL when b does not hold
 * all of it yet (more is to come unless complete), or when it is over
 * HEADER_EDIT_MAX (*toolong set) or b cannot be read
 */
char *head_read(const struct body *b, uint64_t off, bool complete, size_t *hlen,
    bool *toolong);

#endif
