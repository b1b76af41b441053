/* maildir.h - durable Maildir delivery (doc/protocol.md, "Durability"). */
#ifndef CHAMOIS_MAILDIR_H
#define CHAMOIS_MAILDIR_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "../common/result.h"

struct body;

/* one copy: a mailbox and the header lines written before the body */
struct maildir_copy {
	const char *mailbox;	/* table spelling: local@domain */
	char *prefix;		/* e.g. "Return-Path: <a@b>\nDelivered-To: c@d\n" */
	char *path;		/* out: the file in new/ */
	char *tmp;		/* the file in tmp/ while prepared */
	char *dir;		/* the Maildir */
	bool in_tmp, in_new;
};

struct maildir_delivery {
	const char *root;	/* maildir_root */
	const char *hostname;
	struct maildir_copy *copies;
	size_t ncopies;
	const struct body *body;
	enum result result;	/* out */
	int error;		/* out: errno of the failure */
	const char *failed_step; /* out: what failed, for the log */
};

/*
 * maildir_deliver - write every copy to tmp/, sync each, move them all
 * into new/ and sync the directories; on any failure no copy is left in
 * new/.  Blocking: runs on a worker thread.  It is maildir_prepare()
 * then maildir_commit(); forwarding keeps local copies prepared in tmp/
 * until the remote has accepted the message, and calls maildir_abort()
 * if it does not.
 */
void maildir_deliver(struct maildir_delivery *);
void maildir_prepare(struct maildir_delivery *);
void maildir_commit(struct maildir_delivery *);
void maildir_abort(struct maildir_delivery *);
/* maildir_abort_prepared - remove copies still in tmp/ (never those in new/) */
void maildir_abort_prepared(struct maildir_delivery *);
/*
 * maildir_clean_tmp - remove files older than max_age seconds from every
 * root/domain/user/tmp/ (the Maildir convention says 36 hours); returns
 * how many.  Blocking: runs on a worker thread.
 */
unsigned maildir_clean_tmp(const char *root, time_t max_age);
/* maildir_delivery_free - the copies' strings and the delivery itself */
void maildir_delivery_free(struct maildir_delivery *);
/* maildir_dir - "root/domain/local" for a table spelling; false if too long */
bool maildir_dir(const char *root, const char *mailbox, char *out, size_t size);
/* maildir_unique - a Maildir file name: time.M<usec>P<pid>Q<n>R<rnd>.host,S=size */
bool maildir_unique(char *out, size_t size, const char *hostname,
    unsigned long long filesize);

#endif
