/*
 * log: see log.h.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "log.h"

static log_level current_level = LOG_INFO;
static const char *const level_names[] = {"error", "warn", "info", "debug"};

void
log_set_level(log_level level)
{
	current_level = level;
}

void
log_msg(log_level level, const char *fmt, ...)
{
	struct timeval tv;
	struct tm tm;
	char line[1024];
	char *big = NULL;
	int n, len;
	va_list ap, again;

	if (level > current_level)
		return;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = (int) strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	n += snprintf(line + n, sizeof(line) - n,
				  ".%03dZ %s: ", (int) (tv.tv_usec / 1000), level_names[level]);
	va_start(ap, fmt);
	va_copy(again, ap);
	len = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	/* Out of memory: the message stays cut at sizeof(line). */
	if (len >= 0 && (size_t) n + len >= sizeof(line) &&
		(big = malloc((size_t) n + len + 1)) != NULL)
	{
		memcpy(big, line, n);
		vsnprintf(big + n, (size_t) len + 1, fmt, again);
	}
	va_end(again);
	va_end(ap);
	/* One write per line so that lines from a crash are never interleaved. */
	fprintf(stderr, "%s\n", big ? big : line);
	free(big);
}
