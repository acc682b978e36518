/*
 * unit.h: the few macros every unit-test binary of the relay shares.
 *
 * A test binary calls CHECK* as often as it likes and ends main() with
 * `return unit_summary();`, which prints the one line test runners read,
 * "N passed, M failed", and returns non-zero when anything failed.
 */
#ifndef UNIT_H
#define UNIT_H

#include <stdio.h>
#include <string.h>

static int unit_passed;
static int unit_failed;

#define CHECK(cond) CHECK_MSG(cond, "%s", #cond)

#define CHECK_MSG(cond, ...)                                                   \
	do                                                                         \
	{                                                                          \
		if (cond)                                                              \
			unit_passed++;                                                     \
		else                                                                   \
		{                                                                      \
			unit_failed++;                                                     \
			fprintf(stderr, "%s:%d: FAIL: ", __FILE__, __LINE__);              \
			fprintf(stderr, __VA_ARGS__);                                      \
			fputc('\n', stderr);                                               \
		}                                                                      \
	} while (0)

#define CHECK_STR(got, want)                                                   \
	do                                                                         \
	{                                                                          \
		const char *unit_g_ = (got);                                           \
		const char *unit_w_ = (want);                                          \
		CHECK_MSG(unit_g_ != NULL && unit_w_ != NULL &&                        \
					  !strcmp(unit_g_, unit_w_),                               \
				  "%s: got \"%s\", want \"%s\"", #got,                         \
				  unit_g_ ? unit_g_ : "(null)", unit_w_ ? unit_w_ : "(null)"); \
	} while (0)

#define CHECK_INT(got, want)                                                   \
	do                                                                         \
	{                                                                          \
		long long unit_g_ = (got);                                             \
		long long unit_w_ = (want);                                            \
		CHECK_MSG(unit_g_ == unit_w_, "%s: got %lld, want %lld", #got,         \
				  unit_g_, unit_w_);                                           \
	} while (0)

static inline int
unit_summary(void)
{
	printf("%d passed, %d failed\n", unit_passed, unit_failed);
	return unit_failed ? 1 : 0;
}

#endif
