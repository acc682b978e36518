/*
 * config: see config.h.
 *
 * One table of settings, in the pgbouncer way.  Defaults are text parsed by
 * the same code as user values, so a default can never be out of its own
 * range (test_config parses them all).
 */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

typedef enum setting_kind
{
	K_STRING,
	K_UINT,	 /* unsigned */
	K_SIZE,	 /* size_t */
	K_CHOICE /* int: index into choices */
} setting_kind;

typedef struct setting
{
	const char *name; /* option without "--" */
	setting_kind kind;
	size_t offset; /* in relay_config */
	const char *def;
	/* numbers: the range; strings: bounds on the length in bytes, where
	 * min 0 means "empty leaves the setting unset (NULL)" */
	unsigned long long min, max;
	const char *const *choices; /* K_CHOICE, NULL-terminated */
	bool secret;				/* never echo the value */
	const char *metavar;
	const char *help;
} setting;

static const char *const log_levels[] = {"error", "warn", "info", "debug",
										 NULL};
static const char *const jwt_algs[] = {"HS256", "RS256", "ES256", NULL};

#define OFF(field) offsetof(relay_config, field)
#define MiB		   (1024ULL * 1024)

static const setting settings[] = {
	{"host", K_STRING, OFF(host), "127.0.0.1", 1, 255, NULL, false, "HOST",
	 "address to listen on"},
	{"port", K_UINT, OFF(port), "8080", 1, 65535, NULL, false, "PORT",
	 "TCP port to listen on"},
	{"database-url", K_STRING, OFF(database_url), NULL, 1, 65535, NULL, true,
	 "URL", "PostgreSQL connection string or URI (required)"},
	{"jwt-secret", K_STRING, OFF(jwt_secret), NULL, 1, 65535, NULL, true,
	 "SECRET", "HS256 shared secret (at least 32 bytes)"},
	{"jwt-public-key", K_STRING, OFF(jwt_public_key), NULL, 1, 4096, NULL,
	 false, "FILE", "PEM public key file for RS256 or ES256"},
	{"jwt-alg", K_CHOICE, OFF(jwt_alg), NULL, 0, 0, jwt_algs, false, "ALG",
	 "HS256 (default, --jwt-secret), RS256 or ES256 (--jwt-public-key)"},
	{"jwt-issuer", K_STRING, OFF(jwt_issuer), NULL, 0, 4096, NULL, false, "ISS",
	 "required `iss` claim (default: not checked)"},
	{"jwt-audience", K_STRING, OFF(jwt_audience), NULL, 0, 4096, NULL, false,
	 "AUD", "required `aud` claim (default: not checked)"},
	{"jwt-leeway", K_UINT, OFF(jwt_leeway), "30", 0, 3600, NULL, false, "SEC",
	 "clock skew allowed on `exp` and `nbf`, in seconds"},
	{"jwt-require-exp", K_UINT, OFF(jwt_require_exp), "1", 0, 1, NULL, false,
	 "0|1", "1: refuse a token without an `exp` claim (valid for ever)"},
	{"channel", K_STRING, OFF(channel), "cellcms_rt", 1, 63, NULL, false,
	 "NAME", "NOTIFY channel to LISTEN on (the extension's GUC)"},
	{"max-frame-bytes", K_SIZE, OFF(max_frame_bytes), "65536", 1024, 16 * MiB,
	 NULL, false, "N", "largest client message; larger closes with 1009"},
	{"max-queue-bytes", K_SIZE, OFF(max_queue_bytes), "1048576", 65536,
	 1024 * MiB, NULL, false, "N",
	 "bytes queued to one connection; past it, close with 4008"},
	{"max-subscriptions", K_SIZE, OFF(max_subscriptions), "100", 1, 10000, NULL,
	 false, "N", "subscriptions per connection"},
	{"max-presence-documents", K_SIZE, OFF(max_presence_documents), "32", 1,
	 10000, NULL, false, "N", "documents one connection may have joined"},
	{"max-query-bytes", K_SIZE, OFF(max_query_bytes), "4096", 16, 65536, NULL,
	 false, "N", "longest subscription query (below --max-frame-bytes)"},
	{"max-connections", K_UINT, OFF(max_connections), "0", 0,
	 CONFIG_MAX_CONNECTIONS, NULL, false, "N",
	 "simultaneous WebSocket connections; 0: from the open file limit"},
	{"max-refused-connections", K_UINT, OFF(max_refused_connections), "64", 1,
	 CONFIG_MAX_CONNECTIONS, NULL, false, "N",
	 "refused connections awaiting their close; past it, dropped at once"},
	{"ping-interval", K_UINT, OFF(ping_interval), "30", 1, 3600, NULL, false,
	 "SEC", "ping a connection idle this long, in seconds"},
	{"ping-timeout", K_UINT, OFF(ping_timeout), "10", 1, 3600, NULL, false,
	 "SEC", "drop a connection that does not answer a ping within this"},
	{"advance-interval-ms", K_UINT, OFF(advance_interval_ms), "1000", 10, 60000,
	 NULL, false, "MS",
	 "how often to read the change log for events NOTIFY missed"},
	{"prune-interval", K_UINT, OFF(prune_interval), "3600", 0, 30 * 86400, NULL,
	 false, "SEC",
	 "how often to call cellcms_rt.prune(), in seconds; 0: never"},
	{"log-level", K_CHOICE, OFF(log_level), "info", 0, 0, log_levels, false,
	 "LEVEL", "error, warn, info or debug"},
};

#define NSETTINGS (sizeof(settings) / sizeof(settings[0]))

/* K_CHOICE fields are enums written through an int pointer. */
_Static_assert(sizeof(config_jwt_alg) == sizeof(int) &&
				   sizeof(config_log_level) == sizeof(int),
			   "enum settings are int-sized");

const char *
config_jwt_alg_name(config_jwt_alg alg)
{
	return (unsigned) alg < 3 ? jwt_algs[alg] : "?";
}

const char *
config_log_level_name(config_log_level level)
{
	return (unsigned) level < 4 ? log_levels[level] : "?";
}

/* "CELLCMS_RELAY_MAX_FRAME_BYTES" for "max-frame-bytes". */
static void
env_name(const setting *st, char *buf, size_t len)
{
	size_t n = snprintf(buf, len, "%s%s", CONFIG_ENV_PREFIX, st->name);

	for (size_t i = strlen(CONFIG_ENV_PREFIX); i < n && i < len; i++)
		buf[i] = buf[i] == '-' ? '_' : toupper((unsigned char) buf[i]);
}

/* Who set a value, for error messages: "--port" or "CELLCMS_RELAY_PORT". */
static void
source_name(const setting *st, bool from_env, char *buf, size_t len)
{
	if (from_env)
		env_name(st, buf, len);
	else
		snprintf(buf, len, "--%s", st->name);
}

/*
 * Parse value into the field of st.  Returns 0, or -1 with err set.  A
 * secret value is never copied into err.
 */
static int
apply(const setting *st, bool from_env, const char *value, relay_config *out,
	  char *err, size_t errlen)
{
	char *field = (char *) out + st->offset;
	char src[64];
	const char *shown = st->secret ? "(secret)" : value;
	unsigned long long v;
	char *end;

	source_name(st, from_env, src, sizeof(src));
	switch (st->kind)
	{
		case K_STRING:
		{
			size_t len = strlen(value);

			if (len == 0 && st->min == 0)
			{
				*(const char **) field = NULL;
				return 0;
			}
			if (len < st->min)
			{
				snprintf(err, errlen, "%s must not be empty", src);
				return -1;
			}
			if (len > st->max)
			{
				snprintf(err, errlen, "%s is too long (at most %llu bytes)",
						 src, st->max);
				return -1;
			}
			*(const char **) field = value;
			return 0;
		}
		case K_UINT:
		case K_SIZE:
			/* strtoull alone would accept " 1", "+1" and "-1" (wrapped) */
			if (!isdigit((unsigned char) value[0]))
				goto not_a_number;
			errno = 0;
			v = strtoull(value, &end, 10);
			if (*end != '\0')
				goto not_a_number;
			if (errno == ERANGE || v < st->min || v > st->max)
			{
				snprintf(err, errlen, "%s: %.32s is out of range (%llu..%llu)",
						 src, shown, st->min, st->max);
				return -1;
			}
			if (st->kind == K_UINT)
				*(unsigned *) field = (unsigned) v;
			else
				*(size_t *) field = (size_t) v;
			return 0;
		case K_CHOICE:
			for (int i = 0; st->choices[i]; i++)
				if (!strcmp(value, st->choices[i]))
				{
					*(int *) field = i;
					return 0;
				}
			{
				int n = snprintf(err, errlen, "%s: \"%.32s\" is not one of",
								 src, shown);

				for (int i = 0; st->choices[i] && n >= 0 && (size_t) n < errlen;
					 i++)
					n += snprintf(err + n, errlen - n, "%s %s", i ? "," : "",
								  st->choices[i]);
			}
			return -1;
	}
	return -1;

not_a_number:
	snprintf(err, errlen, "%s: \"%.32s\" is not a number", src, shown);
	return -1;
}

/* The setting named name[0..len), or NULL. */
static const setting *
find_option(const char *name, size_t len)
{
	for (size_t i = 0; i < NSETTINGS; i++)
		if (strlen(settings[i].name) == len &&
			!memcmp(settings[i].name, name, len))
			return &settings[i];
	return NULL;
}

/* Key material and algorithm must agree; the algorithm is never guessed
 * from a key file. */
static int
check_jwt(relay_config *out, bool alg_set, char *err, size_t errlen)
{
	if (out->jwt_secret && out->jwt_public_key)
	{
		snprintf(err, errlen,
				 "--jwt-secret and --jwt-public-key are mutually exclusive");
		return -1;
	}
	if (!out->jwt_secret && !out->jwt_public_key)
	{
		snprintf(err, errlen,
				 "missing JWT key: set --jwt-secret (better: " CONFIG_ENV_PREFIX
				 "JWT_SECRET) or --jwt-public-key");
		return -1;
	}
	if (!alg_set)
	{
		if (out->jwt_public_key)
		{
			snprintf(err, errlen,
					 "--jwt-public-key needs --jwt-alg RS256 or ES256");
			return -1;
		}
		out->jwt_alg = CONFIG_JWT_HS256;
	}
	if (out->jwt_alg == CONFIG_JWT_HS256 && !out->jwt_secret)
	{
		snprintf(err, errlen, "--jwt-alg HS256 needs --jwt-secret");
		return -1;
	}
	if (out->jwt_alg != CONFIG_JWT_HS256 && !out->jwt_public_key)
	{
		snprintf(err, errlen, "--jwt-alg %s needs --jwt-public-key",
				 config_jwt_alg_name(out->jwt_alg));
		return -1;
	}
	return 0;
}

config_result
config_parse(int argc, char **argv, char **envp, relay_config *out, char *err,
			 size_t errlen)
{
	bool set[NSETTINGS] = {false};
	char name[64];

	memset(out, 0, sizeof(*out));
	if (errlen)
		err[0] = '\0';

	for (int i = 1; i < argc; i++)
	{
		const char *arg = argv[i], *eq, *value;
		const setting *st;
		size_t len;

		if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0')
		{
			/* not echoed: a misplaced argument may well be a secret */
			snprintf(err, errlen,
					 "unexpected argument #%d (options start with --; see "
					 "--help)",
					 i);
			return CONFIG_ERROR;
		}
		arg += 2;
		eq = strchr(arg, '=');
		len = eq ? (size_t) (eq - arg) : strlen(arg);
		if ((len == 4 && !memcmp(arg, "help", 4)) ||
			(len == 7 && !memcmp(arg, "version", 7)))
		{
			if (eq)
			{
				snprintf(err, errlen, "--%.*s takes no value", (int) len, arg);
				return CONFIG_ERROR;
			}
			return len == 4 ? CONFIG_HELP : CONFIG_VERSION;
		}
		st = find_option(arg, len);
		if (!st)
		{
			/* the name only: what follows '=' may be a secret */
			snprintf(err, errlen, "unknown option --%.*s (see --help)",
					 (int) (len > 40 ? 40 : len), arg);
			return CONFIG_ERROR;
		}
		if (eq)
			value = eq + 1;
		else if (i + 1 < argc)
			value = argv[++i];
		else
		{
			snprintf(err, errlen, "--%s needs a value", st->name);
			return CONFIG_ERROR;
		}
		if (apply(st, false, value, out, err, errlen) < 0)
			return CONFIG_ERROR;
		set[st - settings] = true;
	}

	for (size_t k = 0; k < NSETTINGS; k++)
	{
		const setting *st = &settings[k];
		size_t nlen;

		if (set[k] || !envp)
			continue;
		env_name(st, name, sizeof(name));
		nlen = strlen(name);
		for (char **e = envp; *e; e++)
		{
			const char *value = *e + nlen + 1;

			if (strncmp(*e, name, nlen) != 0 || (*e)[nlen] != '=' || !*value)
				continue;
			if (apply(st, true, value, out, err, errlen) < 0)
				return CONFIG_ERROR;
			set[k] = true;
		}
	}

	for (size_t k = 0; k < NSETTINGS; k++)
		if (!set[k] && settings[k].def &&
			apply(&settings[k], false, settings[k].def, out, err, errlen) < 0)
			return CONFIG_ERROR; /* a bad default: test_config catches it */

	if (!out->database_url)
	{
		snprintf(
			err, errlen,
			"missing database URL: set --database-url or " CONFIG_ENV_PREFIX
			"DATABASE_URL");
		return CONFIG_ERROR;
	}
	if (check_jwt(out, set[find_option("jwt-alg", 7) - settings], err, errlen) <
		0)
		return CONFIG_ERROR;
	if (out->max_query_bytes >= out->max_frame_bytes)
	{
		snprintf(err, errlen,
				 "--max-query-bytes (%zu) must be smaller than "
				 "--max-frame-bytes (%zu)",
				 out->max_query_bytes, out->max_frame_bytes);
		return CONFIG_ERROR;
	}
	return CONFIG_OK;
}

void
config_help(FILE *out, const char *progname)
{
	char env[64];

	fprintf(out,
			"Usage: %s --database-url URL\n"
			"         (--jwt-secret SECRET | --jwt-public-key FILE --jwt-alg "
			"ALG) [OPTION]...\n"
			"Serve changes of CellCMS documents from PostgreSQL (cellcms_rt) "
			"to WebSocket\nclients: presence and live GROQ subscriptions.\n\n"
			"Every option can also be set by the environment variable shown "
			"under it;\nthe command line wins, and an empty variable counts as "
			"unset.  Pass secrets\n(" CONFIG_ENV_PREFIX
			"JWT_SECRET, a database URL with a password) by environment:\n"
			"command-line arguments are visible to every user in `ps`.\n"
			"Both --NAME VALUE and --NAME=VALUE are accepted.\n\n",
			progname ? progname : "cellcms-relay");
	for (size_t k = 0; k < NSETTINGS; k++)
	{
		const setting *st = &settings[k];

		env_name(st, env, sizeof(env));
		fprintf(out, "  --%s %s\n      %s\n      env %s", st->name, st->metavar,
				st->help, env);
		if (st->def)
			fprintf(out, "; default %s", st->def);
		if (st->kind == K_UINT || st->kind == K_SIZE)
			fprintf(out, "; %llu..%llu", st->min, st->max);
		fputc('\n', out);
	}
	fprintf(out,
			"  --help\n      print this help and exit\n"
			"  --version\n      print the version and exit\n"
			"\nA bad configuration exits with status %d.\n",
			CONFIG_EXIT_STATUS);
}

void
config_print(FILE *out, const relay_config *cfg, const char *sep)
{
	for (size_t k = 0; k < NSETTINGS; k++)
	{
		const setting *st = &settings[k];
		const char *field = (const char *) cfg + st->offset;

		fprintf(out, "%s%s = ", k ? sep : "", st->name);
		switch (st->kind)
		{
			case K_STRING:
			{
				const char *v = *(const char *const *) field;

				fputs(!v ? "(unset)" : st->secret ? "(set)" : v, out);
				break;
			}
			case K_UINT:
				fprintf(out, "%u", *(const unsigned *) field);
				break;
			case K_SIZE:
				fprintf(out, "%zu", *(const size_t *) field);
				break;
			case K_CHOICE:
				fputs(st->choices[*(const int *) field], out);
				break;
		}
	}
}
