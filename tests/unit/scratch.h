/*
 * scratch.h - a temporary directory per test, removed after it even when
 * the test fails (scratch_teardown as the cmocka teardown).
 */
#ifndef CHAMOIS_TEST_SCRATCH_H
#define CHAMOIS_TEST_SCRATCH_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "unit.h"

/* the current test's directory, removed by scratch_teardown if it fails */
static char *scratch_current;

static inline int
scratch_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(path);
}

/* scratch_dir - a new directory, as realpath spells it (config_load does) */
static inline char *
scratch_dir(void)
{
	char tmpl[] = "/tmp/chamois-unit-XXXXXX", *real;

	assert_non_null(mkdtemp(tmpl));
	real = realpath(tmpl, NULL);
	assert_non_null(real);
	scratch_current = real;
	return real;
}

static inline void
scratch_remove(char *dir)
{
	nftw(dir, scratch_rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(dir);
	scratch_current = NULL;
}

static inline int
scratch_teardown(void **state)
{
	(void)state;
	if (scratch_current != NULL)
		scratch_remove(scratch_current);
	return 0;
}

#endif
