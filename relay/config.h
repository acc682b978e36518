/*
 * config: the relay's settings, from the command line and the environment.
 *
 * Every setting is one row of a table in config.c (name, type, default,
 * range, help): the parser, --help and config_print() all read that table,
 * so a setting documented is a setting parsed.  The table is the only
 * place that gives a setting its default: main passes every value on, over
 * whatever defaults the modules' own config structs have.
 *
 * Each `--NAME VALUE` (or `--NAME=VALUE`) can also be given as the
 * environment variable CELLCMS_RELAY_<NAME> (upper case, '-' -> '_'); the
 * command line wins.  Secrets (the JWT secret, a database URL holding a
 * password) are better passed by environment, where `ps` does not show
 * them.
 *
 * Pure: no I/O except writing help/settings to a stream the caller gives.
 * Reading the key file, computing the automatic connection limit and
 * exiting are main's.
 */
#ifndef RELAY_CONFIG_H
#define RELAY_CONFIG_H

#include <stddef.h>
#include <stdio.h>

/* Keep equal to default_version in cellcms_rt.control (test_config checks). */
#define RELAY_VERSION "1.0"

#define CONFIG_ENV_PREFIX "CELLCMS_RELAY_"

/* The exit status for a configuration that does not parse (--help says). */
#define CONFIG_EXIT_STATUS 2

/*
 * The largest --max-connections, also the cap of the limit main derives
 * from RLIMIT_NOFILE when the setting is 0.
 */
#define CONFIG_MAX_CONNECTIONS 1000000

typedef enum config_log_level
{
	CONFIG_LOG_ERROR = 0,
	CONFIG_LOG_WARN,
	CONFIG_LOG_INFO,
	CONFIG_LOG_DEBUG,
} config_log_level;

typedef enum config_jwt_alg
{
	CONFIG_JWT_HS256 = 0, /* jwt_secret */
	CONFIG_JWT_RS256,	  /* jwt_public_key */
	CONFIG_JWT_ES256,	  /* jwt_public_key */
} config_jwt_alg;

/*
 * The settings.  Strings are BORROWED from argv, envp or static storage
 * (valid as long as those are; nothing here needs freeing).  Optional
 * strings are NULL when unset.
 */
typedef struct relay_config
{
	const char *host; /* listen address */
	unsigned port;
	const char *database_url;	/* libpq connection string or URI */
	const char *jwt_secret;		/* HS256 secret, or NULL */
	const char *jwt_public_key; /* path of a PEM public key, or NULL */
	config_jwt_alg jwt_alg;		/* agrees with which of the two is set */
	const char *jwt_issuer;		/* NULL: `iss` not checked */
	const char *jwt_audience;	/* NULL: `aud` not checked */
	unsigned jwt_leeway;		/* seconds */
	unsigned jwt_require_exp;	/* 0 or 1 */
	const char *channel;		/* NOTIFY channel, 1..63 bytes */
	size_t max_frame_bytes;
	size_t max_queue_bytes;	  /* per connection */
	size_t max_subscriptions; /* per connection */
	size_t max_presence_documents;
	size_t max_query_bytes;
	unsigned max_connections; /* 0: derive from RLIMIT_NOFILE (main) */
	unsigned max_refused_connections;
	unsigned ping_interval; /* seconds */
	unsigned ping_timeout;	/* seconds */
	unsigned advance_interval_ms;
	unsigned prune_interval; /* seconds, 0: never prune */
	config_log_level log_level;
} relay_config;

typedef enum config_result
{
	CONFIG_OK = 0,	/* *out is complete and consistent */
	CONFIG_HELP,	/* --help: print config_help(), exit 0 */
	CONFIG_VERSION, /* --version: print RELAY_VERSION, exit 0 */
	CONFIG_ERROR,	/* err holds a one-line message: print it, exit
					 * CONFIG_EXIT_STATUS */
} config_result;

/*
 * Fill *out from argv[1..argc) and envp (a NULL-terminated "NAME=value"
 * array, or NULL), then defaults.  Per setting the command line wins over
 * the environment; an empty environment variable counts as unset, and
 * variables of the prefix that name no setting are ignored.  A repeated
 * option: the last one wins.  --help and --version stop the parse (options
 * before them must be valid; the environment is not read).
 *
 * On CONFIG_ERROR, err[0..errlen) holds one line without a trailing
 * newline, naming the option or variable; it never contains the value of a
 * secret setting.  *out is then unspecified.
 */
config_result config_parse(int argc, char **argv, char **envp,
						   relay_config *out, char *err, size_t errlen);

/* The --help text: usage and every setting with its variable, default and
 * range.  progname: argv[0] or NULL. */
void config_help(FILE *out, const char *progname);

/*
 * The effective settings as "name = value", in the table's order,
 * separated by sep ("\n": one per line; main logs them on one line).
 * Secret values are shown as "(set)", unset ones as "(unset)".  Nothing
 * follows the last one.
 */
void config_print(FILE *out, const relay_config *cfg, const char *sep);

/* "HS256"/"RS256"/"ES256" and "error"/"warn"/"info"/"debug" (static). */
const char *config_jwt_alg_name(config_jwt_alg alg);
const char *config_log_level_name(config_log_level level);

#endif
