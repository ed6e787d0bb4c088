/* SPDX-License-Identifier: MIT */
/*
 * What a test's code writes to stderr (rxp's log), into a buffer: for
 * tests that check what an operator would read.
 */
#ifndef RXP_TEST_CAPTURE_H
#define RXP_TEST_CAPTURE_H

#include <stdio.h>
#include <unistd.h>

/* Run @fn(@arg) with fd 2 on a temporary file; its text into @out. */
static inline void capture_stderr(void (*fn)(void *), void *arg, char *out,
				  size_t cap)
{
	FILE *tmp = tmpfile();
	int saved = dup(2);
	size_t n = 0;

	out[0] = 0;
	if (!tmp || saved < 0) {
		fn(arg);
		return;
	}
	fflush(stderr);
	dup2(fileno(tmp), 2);
	fn(arg);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	rewind(tmp);
	n = fread(out, 1, cap - 1, tmp);
	out[n] = 0;
	fclose(tmp);
}

#endif
