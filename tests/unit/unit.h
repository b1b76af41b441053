/*
 * unit.h - what every cmocka unit test shares.
 *
 * The tests are tables in the style of Postfix's ptest: an array of
 * cases, each with a label, the input and what is wanted, built with
 * designated initializers.  Every row becomes its own cmocka test named
 * after its label (UNIT_ROWS), so a failure names the row and the other
 * rows still run.  A row that documents a bug not yet fixed carries
 * .bug = "..." and is reported as skipped with that text; with UNIT_BUGS
 * set in the environment such rows run (and fail while the bug is there).
 */
#ifndef CHAMOIS_TEST_UNIT_H
#define CHAMOIS_TEST_UNIT_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

#ifndef nitems
#define nitems(a) (sizeof(a) / sizeof((a)[0]))
#endif

/* UNIT_ROWS - one test per row of table, each run by fn with the row as state */
#define UNIT_ROWS(tests, n, fn, table) do {				\
	for (size_t unit_i_ = 0; unit_i_ < nitems(table); unit_i_++)	\
		(tests)[(n)++] = (struct CMUnitTest){			\
			.name = (table)[unit_i_].label,			\
			.test_func = (fn),				\
			.initial_state = (void *)&(table)[unit_i_],	\
		};							\
} while (0)

/* UNIT_TEST - one plain test */
#define UNIT_TEST(tests, n, fn) do {					\
	(tests)[(n)++] = (struct CMUnitTest){				\
		.name = #fn,						\
		.test_func = (fn),					\
	};								\
} while (0)

/*
 * UNIT_RUN - run the group; tests must be an array of exactly n filled
 * entries (its size is computed from the tables it is built from).
 */
#define UNIT_RUN(tests, n) do {						\
	if ((n) != nitems(tests)) {					\
		fprintf(stderr, "%s: %zu tests registered, array has %zu\n", \
		    __FILE__, (size_t)(n), nitems(tests));		\
		return 1;						\
	}								\
	return cmocka_run_group_tests(tests, NULL, NULL);		\
} while (0)

/* UNIT_BUG - skip a row that documents a known bug (unless UNIT_BUGS is set) */
#define UNIT_BUG(row) do {						\
	if ((row)->bug != NULL && getenv("UNIT_BUGS") == NULL) {	\
		print_message("[  BUG     ] %s: %s\n", (row)->label, (row)->bug); \
		skip();							\
	}								\
} while (0)

#endif
