/*
 * textparse: the two idioms the change-log readers (event, snapshot,
 * delivery) share: an error message into a caller's buffer, and the
 * decimal text PostgreSQL prints for bigint and xid8.  Header-only: each is
 * a few lines, and linking a module for them would put an edge into the
 * link table that says nothing about the design.
 */
#ifndef RELAY_TEXTPARSE_H
#define RELAY_TEXTPARSE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* printf into err[0..errlen); nothing when errlen is 0. */
static inline void seterr(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static inline void
seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/*
 * Decimal text of an integer in [1, max]: digits only (no sign, no space),
 * as PostgreSQL prints bigint and xid8.  Returns 0 with *out set, or -1.
 */
static inline int
parse_decimal(const char *s, size_t len, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (len == 0 || len > 20)
		return -1;
	for (size_t i = 0; i < len; i++)
	{
		unsigned d;

		if (s[i] < '0' || s[i] > '9')
			return -1;
		d = (unsigned) (s[i] - '0');
		if (v > (max - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	if (v == 0)
		return -1;
	*out = v;
	return 0;
}

#endif
