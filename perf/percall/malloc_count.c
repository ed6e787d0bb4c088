/* SPDX-License-Identifier: MIT */
/*
 * LD_PRELOAD allocation counter for perf/percall.sh (issue 10: "0 mallocs
 * per call"). Counts every malloc, calloc, realloc, posix_memalign,
 * aligned_alloc, memalign and valloc of the process, from any thread, and
 * writes "allocs <n>" to $RXP_MALLOC_COUNT_OUT when the process exits
 * (appending "<pid> allocs <n>" when several processes share the file).
 * Allocation itself is glibc's (the __libc_* entry points), so nothing
 * about the program's behaviour changes except one relaxed atomic add per
 * allocation. Not part of the library; never installed.
 *
 * RXP_MALLOC_COUNT_TRACE=n: print the call stack of allocations
 * n+1 .. n+32 to stderr as "<object>+0x<offset>" lines (dladdr; nothing
 * allocated), to find what still allocates in steady state: feed the
 * offsets to addr2line -f -e <object> (perf/README.md).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t nmemb, size_t n);
extern void *__libc_realloc(void *p, size_t n);
extern void *__libc_memalign(size_t align, size_t n);

static atomic_ulong n_allocs;
static unsigned long trace_from = (unsigned long)-1;
static _Thread_local int in_trace;

static void trace(unsigned long nth)
{
	void *pcs[24];
	char line[320];
	int n, len;

	in_trace = 1;
	n = backtrace(pcs, 24);
	len = snprintf(line, sizeof(line), "--- allocation %lu\n", nth);
	for (int i = 1; i < n; i++) { /* [0] is trace() itself */
		Dl_info di;

		if (write(2, line, (size_t)len) != len)
			break;
		if (dladdr(pcs[i], &di) && di.dli_fname)
			len = snprintf(line, sizeof(line), "%s+0x%lx\n",
				       di.dli_fname,
				       (unsigned long)((char *)pcs[i] -
						       (char *)di.dli_fbase) -
					       1);
		else
			len = snprintf(line, sizeof(line), "?+%p\n", pcs[i]);
	}
	if (write(2, line, (size_t)len) != len)
		(void)0;
	in_trace = 0;
}

static inline void count(void)
{
	unsigned long nth =
		atomic_fetch_add_explicit(&n_allocs, 1, memory_order_relaxed);

	if (nth >= trace_from && nth < trace_from + 32 && !in_trace)
		trace(nth + 1);
}

__attribute__((constructor)) static void setup(void)
{
	const char *t = getenv("RXP_MALLOC_COUNT_TRACE");
	void *pc;

	if (!t || !*t)
		return;
	in_trace = 1;
	backtrace(&pc, 1); /* loads libgcc now, not inside an allocation */
	in_trace = 0;
	trace_from = strtoul(t, NULL, 10);
}

void *malloc(size_t n)
{
	count();
	return __libc_malloc(n);
}

void *calloc(size_t nmemb, size_t n)
{
	count();
	return __libc_calloc(nmemb, n);
}

void *realloc(void *p, size_t n)
{
	count();
	return __libc_realloc(p, n);
}

void *memalign(size_t align, size_t n)
{
	count();
	return __libc_memalign(align, n);
}

void *aligned_alloc(size_t align, size_t n)
{
	count();
	return __libc_memalign(align, n);
}

void *valloc(size_t n)
{
	count();
	return __libc_memalign((size_t)sysconf(_SC_PAGESIZE), n);
}

int posix_memalign(void **out, size_t align, size_t n)
{
	void *p;

	if (align < sizeof(void *) || (align & (align - 1)))
		return EINVAL;
	count();
	p = __libc_memalign(align, n);
	if (!p && n)
		return ENOMEM;
	*out = p;
	return 0;
}

__attribute__((destructor)) static void report(void)
{
	const char *path = getenv("RXP_MALLOC_COUNT_OUT");
	char line[64];
	int fd, len;

	if (!path || !*path)
		return;
	len = snprintf(line, sizeof(line), "%ld allocs %lu\n", (long)getpid(),
		       atomic_load(&n_allocs));
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	if (write(fd, line, (size_t)len) != len)
		(void)0; /* nothing to do about it at exit */
	close(fd);
}
