/*
 * log: one line per message on stderr, with a UTC timestamp and a level.
 * Never pass a token, a password or a secret to these functions.
 */
#ifndef RELAY_LOG_H
#define RELAY_LOG_H

/* The values of config_log_level, which main checks. */
typedef enum log_level
{
	LOG_ERROR = 0,
	LOG_WARN,
	LOG_INFO,
	LOG_DEBUG,
} log_level;

/* Messages above this level are dropped (default LOG_INFO). */
void log_set_level(log_level level);

/*
 * A message is written whole, however long (the startup line lists every
 * setting), in one write when it fits stdio's buffer.
 */
void log_msg(log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
