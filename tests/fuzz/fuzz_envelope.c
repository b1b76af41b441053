/*
 * fuzz_envelope - queue/envelope.c: queue_msg_decode() of arbitrary
 * records (what the queue store hands back, possibly damaged).
 *
 * Checks: a record that decodes is sane (version, a 16-hex-digit id,
 * every string set, states in range, status bounded); it encodes again,
 * and that record decodes to the same message and encodes to the same
 * octets (encode . decode is a fixed point); queue_msg_copy gives an
 * equal message; failures leave the message zeroed.
 */
#include "common/util.h"
#include "fuzz.h"
#include "queue/queue.h"

static bool
str_eq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static void
check_same(const struct queue_msg *a, const struct queue_msg *b)
{
	FUZZ_CHECK(a->version == b->version);
	FUZZ_CHECK(strcmp(a->id, b->id) == 0);
	FUZZ_CHECK(a->created == b->created);
	FUZZ_CHECK(str_eq(a->sender, b->sender));
	FUZZ_CHECK(str_eq(a->owner, b->owner));
	FUZZ_CHECK(a->uid == b->uid && a->size == b->size);
	FUZZ_CHECK(a->body8bit == b->body8bit && a->smtputf8 == b->smtputf8);
	FUZZ_CHECK(a->nrcpts == b->nrcpts);
	for (size_t i = 0; i < a->nrcpts; i++) {
		const struct queue_rcpt *x = &a->rcpts[i], *y = &b->rcpts[i];

		FUZZ_CHECK(str_eq(x->addr, y->addr));
		FUZZ_CHECK(str_eq(x->orig, y->orig));
		FUZZ_CHECK(x->local == y->local && x->state == y->state);
		FUZZ_CHECK(x->attempts == y->attempts);
		FUZZ_CHECK(x->next_attempt == y->next_attempt);
		FUZZ_CHECK(strcmp(x->status, y->status) == 0);
		FUZZ_CHECK(str_eq(x->last_reply, y->last_reply));
		FUZZ_CHECK(str_eq(x->remote_mta, y->remote_mta));
		FUZZ_CHECK(x->reported == y->reported);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct queue_msg m, m2, m3;
	char *rec, *rec2;
	size_t len, len2;

	if (queue_msg_decode((const char *)data, size, &m) == -1) {
		static const struct queue_msg zero;

		FUZZ_CHECK(memcmp(&m, &zero, sizeof(m)) == 0);
		return 0;
	}
	FUZZ_CHECK(m.version >= 1 && m.version <= QUEUE_RECORD_VERSION);
	FUZZ_CHECK(strlen(m.id) == QUEUE_ID_LEN);
	FUZZ_CHECK(m.sender && m.owner);
	for (size_t i = 0; i < m.nrcpts; i++) {
		FUZZ_CHECK(m.rcpts[i].addr && m.rcpts[i].orig);
		FUZZ_CHECK(m.rcpts[i].last_reply && m.rcpts[i].remote_mta);
		FUZZ_CHECK(m.rcpts[i].state <= RS_FAILED);
		FUZZ_CHECK(strlen(m.rcpts[i].status) < sizeof(m.rcpts[i].status));
	}
	queue_msg_done(&m);
	for (size_t i = 0; i < m.nrcpts; i++)
		queue_state_name(m.rcpts[i].state);

	rec = queue_msg_encode(&m, &len);
	FUZZ_CHECK(rec != NULL && strlen(rec) == len);
	FUZZ_CHECKF(queue_msg_decode(rec, len, &m2) == 0,
	    "encoded record does not decode:\n%s", rec);
	check_same(&m, &m2);
	rec2 = queue_msg_encode(&m2, &len2);
	FUZZ_CHECK(len2 == len && memcmp(rec, rec2, len) == 0);

	queue_msg_copy(&m3, &m);
	check_same(&m, &m3);

	free(rec);
	free(rec2);
	queue_msg_free(&m);
	queue_msg_free(&m2);
	queue_msg_free(&m3);
	return 0;
}
