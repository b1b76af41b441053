/*
 * test_hmap.c - the string-keyed hash map (common/hmap.c): each case is a
 * script of operations on a fresh map, each with what it must return; the
 * counter maps (hmap_count_add/_release/_of) the same way.
 */
#include <stdint.h>
#include <string.h>

#include "common/hmap.h"
#include "unit.h"

enum op { END, PUT, GET, DEL, COUNT };

struct step {
	enum op op;
	const char *key;
	const char *val;	/* PUT: the value */
	const char *want;	/* PUT: old value, GET/DEL: the value (NULL: none) */
	size_t count;		/* COUNT */
};

struct hmap_case {
	const char *label;
	struct step steps[12];
	const char *bug;
};

static const struct hmap_case hmap_cases[] = {
	{ .label = "hmap: empty", .steps = {
	    { COUNT, .count = 0 }, { GET, "a" }, { DEL, "a" }, { COUNT, .count = 0 } } },
	{ .label = "hmap: put and get", .steps = {
	    { PUT, "a", "1" }, { PUT, "b", "2" }, { GET, "a", .want = "1" },
	    { GET, "b", .want = "2" }, { GET, "c" }, { COUNT, .count = 2 } } },
	{ .label = "hmap: replace returns the old value", .steps = {
	    { PUT, "a", "1" }, { PUT, "a", "2", "1" }, { GET, "a", .want = "2" },
	    { COUNT, .count = 1 } } },
	{ .label = "hmap: keys are exact", .steps = {
	    { PUT, "Alice", "1" }, { GET, "alice" }, { GET, "Alice ", }, { GET, "Alic" },
	    { GET, "Alice", .want = "1" } } },
	{ .label = "hmap: empty key", .steps = {
	    { PUT, "", "e" }, { GET, "", .want = "e" }, { DEL, "", .want = "e" },
	    { GET, "" }, { COUNT, .count = 0 } } },
	{ .label = "hmap: delete", .steps = {
	    { PUT, "a", "1" }, { PUT, "b", "2" }, { DEL, "a", .want = "1" }, { GET, "a" },
	    { GET, "b", .want = "2" }, { DEL, "a" }, { COUNT, .count = 1 },
	    { PUT, "a", "3" }, { GET, "a", .want = "3" }, { COUNT, .count = 2 } } },
};

static void
run_hmap_case(void **state)
{
	const struct hmap_case *c = *state;
	struct hmap *m = hmap_new();

	UNIT_BUG(c);
	for (size_t i = 0; i < nitems(c->steps) && c->steps[i].op != END; i++) {
		const struct step *s = &c->steps[i];
		const char *got = NULL;

		switch (s->op) {
		case PUT:
			got = hmap_put(m, s->key, (void *)(uintptr_t)s->val);
			break;
		case GET:
			got = hmap_get(m, s->key);
			break;
		case DEL:
			got = hmap_del(m, s->key);
			break;
		case COUNT:
			assert_int_equal(hmap_count(m), s->count);
			continue;
		case END:
			break;
		}
		if (s->want == NULL) {
			if (got != NULL)
				fail_msg("step %zu (%s): got '%s', want nothing", i, s->key, got);
		} else {
			if (got == NULL)
				fail_msg("step %zu (%s): got nothing, want '%s'", i, s->key, s->want);
			assert_string_equal(got, s->want);
		}
	}
	hmap_free(m, NULL);
}

enum cop { C_END, C_ADD, C_REL, C_OF, C_KEYS };

struct cstep {
	enum cop op;
	const char *key;
	size_t n;		/* ADD: the bound; OF: the count; KEYS: keys */
	bool want;		/* ADD: admitted */
};

struct count_case {
	const char *label;
	struct cstep steps[14];
	const char *bug;
};

static const struct count_case count_cases[] = {
	{ .label = "counts: absent is zero", .steps = {
	    { C_OF, "a", 0 }, { C_KEYS, .n = 0 } } },
	{ .label = "counts: add up to the bound, then refuse", .steps = {
	    { C_ADD, "a", 2, true }, { C_ADD, "a", 2, true }, { C_ADD, "a", 2, false },
	    { C_OF, "a", 2 }, { C_ADD, "b", 2, true }, { C_OF, "b", 1 },
	    { C_KEYS, .n = 2 } } },
	{ .label = "counts: a bound of zero admits nothing", .steps = {
	    { C_ADD, "a", 0, false }, { C_OF, "a", 0 }, { C_KEYS, .n = 0 } } },
	{ .label = "counts: no bound", .steps = {
	    { C_ADD, "a", SIZE_MAX, true }, { C_ADD, "a", SIZE_MAX, true },
	    { C_ADD, "a", SIZE_MAX, true }, { C_OF, "a", 3 } } },
	{ .label = "counts: release to zero removes the key", .steps = {
	    { C_ADD, "a", 5, true }, { C_ADD, "a", 5, true }, { C_REL, "a" },
	    { C_OF, "a", 1 }, { C_KEYS, .n = 1 }, { C_REL, "a" }, { C_OF, "a", 0 },
	    { C_KEYS, .n = 0 } } },
	{ .label = "counts: release of an absent key changes nothing", .steps = {
	    { C_REL, "a" }, { C_OF, "a", 0 }, { C_KEYS, .n = 0 },
	    { C_ADD, "a", 1, true }, { C_OF, "a", 1 } } },
	{ .label = "counts: a released slot can be taken again", .steps = {
	    { C_ADD, "a", 1, true }, { C_ADD, "a", 1, false }, { C_REL, "a" },
	    { C_ADD, "a", 1, true }, { C_OF, "a", 1 } } },
};

static void
run_count_case(void **state)
{
	const struct count_case *c = *state;
	struct hmap *m = hmap_new();

	UNIT_BUG(c);
	for (size_t i = 0; i < nitems(c->steps) && c->steps[i].op != C_END; i++) {
		const struct cstep *s = &c->steps[i];

		switch (s->op) {
		case C_ADD:
			if (hmap_count_add(m, s->key, s->n) != s->want)
				fail_msg("step %zu: add %s (max %zu) should %s", i,
				    s->key, s->n, s->want ? "admit" : "refuse");
			break;
		case C_REL:
			hmap_count_release(m, s->key);
			break;
		case C_OF:
			assert_int_equal(hmap_count_of(m, s->key), s->n);
			break;
		case C_KEYS:
			assert_int_equal(hmap_count(m), s->n);
			break;
		case C_END:
			break;
		}
	}
	hmap_free(m, NULL);
}

static void
count_walk(const char *key, void *val, void *arg)
{
	size_t *sum = arg;

	/* every key "kN" carries the value N + 1 */
	assert_int_equal(strtoul(key + 1, NULL, 10) + 1, (uintptr_t)val);
	sum[0]++;
	sum[1] += (uintptr_t)val;
}

/* many keys: the map grows and loses nothing; walk sees each once */
static void
test_hmap_grow_walk(void **state)
{
	enum { N = 5000 };
	struct hmap *m = hmap_new();
	char key[32];
	size_t sum[2] = { 0, 0 };

	(void)state;
	for (uintptr_t i = 0; i < N; i++) {
		snprintf(key, sizeof(key), "k%zu", (size_t)i);
		assert_null(hmap_put(m, key, (void *)(i + 1)));
	}
	assert_int_equal(hmap_count(m), N);
	for (uintptr_t i = 0; i < N; i++) {
		snprintf(key, sizeof(key), "k%zu", (size_t)i);
		assert_int_equal((uintptr_t)hmap_get(m, key), i + 1);
	}
	hmap_walk(m, count_walk, sum);
	assert_int_equal(sum[0], N);
	assert_int_equal(sum[1], (size_t)N * (N + 1) / 2);
	for (uintptr_t i = 0; i < N; i += 2) {
		snprintf(key, sizeof(key), "k%zu", (size_t)i);
		assert_int_equal((uintptr_t)hmap_del(m, key), i + 1);
	}
	assert_int_equal(hmap_count(m), N / 2);
	for (uintptr_t i = 0; i < N; i++) {
		snprintf(key, sizeof(key), "k%zu", (size_t)i);
		assert_int_equal((uintptr_t)hmap_get(m, key), i % 2 ? i + 1 : 0);
	}
	hmap_free(m, NULL);
}

/* hmap_free calls free_val on every value still in the map */
static void
test_hmap_free_values(void **state)
{
	struct hmap *m = hmap_new();
	char key[32];

	(void)state;
	for (int i = 0; i < 100; i++) {
		snprintf(key, sizeof(key), "v%d", i);
		assert_null(hmap_put(m, key, strdup(key)));
	}
	free(hmap_del(m, "v7"));
	free(hmap_put(m, "v8", strdup("new")));
	assert_string_equal(hmap_get(m, "v8"), "new");
	hmap_free(m, free);	/* the leak checker sees anything missed */
	hmap_free(NULL, free);
}

int
main(void)
{
	struct CMUnitTest tests[nitems(hmap_cases) + nitems(count_cases) + 2];
	size_t n = 0;

	UNIT_ROWS(tests, n, run_hmap_case, hmap_cases);
	UNIT_ROWS(tests, n, run_count_case, count_cases);
	UNIT_TEST(tests, n, test_hmap_grow_walk);
	UNIT_TEST(tests, n, test_hmap_free_values);
	UNIT_RUN(tests, n);
}
