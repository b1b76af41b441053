/*
 * gen_envelope - write envelope seeds for fuzz_envelope with
 * queue_msg_encode itself (make seeds; not a fuzz target).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "queue/queue.h"

static void
write_rec(const char *dir, const char *name, const struct queue_msg *m)
{
	char path[4096];
	size_t len;
	char *rec = queue_msg_encode(m, &len);
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((f = fopen(path, "wb")) == NULL || fwrite(rec, 1, len, f) != len ||
	    fclose(f) != 0) {
		perror(path);
		exit(1);
	}
	free(rec);
}

int
main(int argc, char **argv)
{
	struct queue_rcpt r[3];
	struct queue_msg m;

	if (argc != 2) {
		fprintf(stderr, "usage: gen_envelope DIR\n");
		return 2;
	}
	memset(&m, 0, sizeof(m));
	memset(r, 0, sizeof(r));
	m.version = QUEUE_RECORD_VERSION;
	strcpy(m.id, "5f0c1e2d3a4b6c7d");
	m.created = 1700000000;
	m.sender = "alice@example.org";
	m.owner = "alice@chamois.test";
	m.uid = -1;
	m.size = 1234;
	r[0].addr = "bob@example.net";
	r[0].orig = "rfc822;bob@example.net";
	r[0].state = RS_DEFERRED;
	r[0].attempts = 2;
	r[0].next_attempt = 1700000300;
	strcpy(r[0].status, "4.4.1");
	r[0].last_reply = "451 4.4.1 try later\r\nsecond line";
	r[0].remote_mta = "mx.example.net";
	m.rcpts = r;
	m.nrcpts = 1;
	write_rec(argv[1], "one-deferred", &m);

	m.sender = "";
	m.owner = "postmaster";
	m.uid = 1000;
	m.body8bit = true;
	m.smtputf8 = true;
	r[1].addr = "demo@chamois.test";
	r[1].orig = "";
	r[1].local = true;
	r[1].state = RS_DELIVERED;
	r[1].last_reply = "";
	r[1].remote_mta = "";
	r[2].addr = " jürgen@münchen.example ";
	r[2].orig = "utf-8;jürgen@münchen.example";
	r[2].state = RS_FAILED;
	r[2].attempts = 4294967295u;
	r[2].next_attempt = -1;
	strcpy(r[2].status, "5.1.1");
	r[2].last_reply = "550 5.1.1 100% unknown\x7f";
	r[2].remote_mta = "[2001:db8::1]";
	r[2].reported = true;
	m.nrcpts = 3;
	write_rec(argv[1], "three-mixed", &m);

	m.nrcpts = 0;
	m.size = 18446744073709551615u;
	m.created = -5;
	write_rec(argv[1], "no-rcpts", &m);
	return 0;
}
