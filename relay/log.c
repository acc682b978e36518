/*
 * log: see log.h.
 */
#include <stdarg.h>
#include <stdio.h>
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

int
log_level_parse(const char *name)
{
	for (int i = 0; i < (int) (sizeof(level_names) / sizeof(level_names[0]));
		 i++)
		if (strcmp(name, level_names[i]) == 0)
			return i;
	return -1;
}

void
log_msg(log_level level, const char *fmt, ...)
{
	struct timeval tv;
	struct tm tm;
	char line[1024];
	int n;
	va_list ap;

	if (level > current_level)
		return;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = (int) strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	n += snprintf(line + n, sizeof(line) - n,
				  ".%03dZ %s: ", (int) (tv.tv_usec / 1000), level_names[level]);
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	/* One write per line so that lines from a crash are never interleaved. */
	fprintf(stderr, "%s\n", line);
}
