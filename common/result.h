/* result.h - every operation ends OK, TEMPFAIL or PERMFAIL. */
#ifndef CHAMOIS_RESULT_H
#define CHAMOIS_RESULT_H

enum result {
	RES_OK,
	RES_TEMPFAIL,
	RES_PERMFAIL,
};

#endif
