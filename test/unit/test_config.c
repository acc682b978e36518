/*
 * Unit tests of config: every setting by flag (both forms) and by
 * environment, precedence, every error, --help/--version, and that no
 * message ever shows a secret.
 *
 * Usage: test_config PATH/cellcms_rt.control
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "unit.h"

#define SECRET "0123456789abcdef0123456789abcdef-s3cr3t"
#define DBURL  "postgresql://relay:pa55word@127.0.0.1/cms"

#define MAX_ARGS 16

static relay_config cfg;
static char err[256];

/*
 * Parse argv (NULL-terminated, without argv[0]) and env (NULL-terminated
 * or NULL).  Every error message is checked for leaked secrets here.
 */
static config_result
parse(const char *const *args, const char *const *env)
{
	char *argv[MAX_ARGS + 1] = {(char *) "cellcms-relay"};
	int argc = 1;
	config_result r;

	for (; args && *args && argc < MAX_ARGS; args++)
		argv[argc++] = (char *) *args;
	argv[argc] = NULL;
	memset(err, 'x', sizeof(err));
	r = config_parse(argc, argv, (char **) env, &cfg, err, sizeof(err));
	if (r == CONFIG_ERROR)
	{
		CHECK_MSG(err[0] != '\0' && strlen(err) < sizeof(err) &&
					  !strchr(err, '\n'),
				  "one-line message: %.80s", err);
		CHECK_MSG(!strstr(err, "s3cr3t") && !strstr(err, "pa55word"),
				  "secret in message: %s", err);
	}
	return r;
}

/* config_print(), one per line, between newlines: for "\nname = v\n". */
static char *
printed(void)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	fputc('\n', f);
	config_print(f, &cfg, "\n");
	fputc('\n', f);
	fclose(f);
	return buf;
}

static void
check_printed(const char *line)
{
	char *out = printed();
	char want[256];

	snprintf(want, sizeof(want), "\n%s\n", line);
	CHECK_MSG(strstr(out, want) != NULL, "want line \"%s\" in:%s", line, out);
	free(out);
}

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define BASE	  "--database-url", DBURL, "--jwt-secret", SECRET

static void
test_defaults(void)
{
	static const char *const lines[] = {
		"host = 127.0.0.1",
		"port = 8080",
		"database-url = (set)",
		"jwt-secret = (set)",
		"jwt-public-key = (unset)",
		"jwt-alg = HS256",
		"jwt-issuer = (unset)",
		"jwt-audience = (unset)",
		"jwt-leeway = 30",
		"jwt-require-exp = 1",
		"channel = cellcms_rt",
		"max-frame-bytes = 65536",
		"max-queue-bytes = 1048576",
		"max-subscriptions = 100",
		"max-presence-documents = 32",
		"max-query-bytes = 4096",
		"max-connections = 0",
		"max-refused-connections = 64",
		"ping-interval = 30",
		"ping-timeout = 10",
		"advance-interval-ms = 1000",
		"prune-interval = 3600",
		"log-level = info",
	};
	char *out;

	CHECK_INT(parse(ARGS(BASE), NULL), CONFIG_OK);
	CHECK_STR(cfg.database_url, DBURL);
	CHECK_STR(cfg.jwt_secret, SECRET);
	CHECK(cfg.jwt_public_key == NULL && cfg.jwt_issuer == NULL &&
		  cfg.jwt_audience == NULL);
	CHECK_INT(cfg.jwt_alg, CONFIG_JWT_HS256);
	CHECK_INT(cfg.log_level, CONFIG_LOG_INFO);
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
		check_printed(lines[i]);
	out = printed();
	CHECK(!strstr(out, "s3cr3t") && !strstr(out, "pa55word"));
	free(out);

	/* the form main logs: one line, the same items */
	{
		char *buf = NULL;
		size_t len = 0;
		FILE *f = open_memstream(&buf, &len);

		config_print(f, &cfg, ", ");
		fclose(f);
		CHECK(!strchr(buf, '\n'));
		CHECK(strstr(buf, "host = 127.0.0.1, port = 8080, database-url = "
						  "(set), jwt-secret = (set), ") == buf);
		CHECK(len > strlen(", log-level = info") &&
			  !strcmp(buf + len - strlen(", log-level = info"),
					  ", log-level = info"));
		CHECK(!strstr(buf, "s3cr3t") && !strstr(buf, "pa55word"));
		free(buf);
	}

	/* an empty environment and a NULL one are the same */
	CHECK_INT(parse(ARGS(BASE), ARGS("PATH=/bin")), CONFIG_OK);
	CHECK_INT(cfg.port, 8080);
}

/* Every setting by "--name value", "--name=value", the environment, and
 * the command line over the environment. */
static void
test_every_setting(void)
{
	static const struct
	{
		const char *name, *env, *value, *other, *line;
	} cases[] = {
		{"host", "CELLCMS_RELAY_HOST", "0.0.0.0", "::1", "host = 0.0.0.0"},
		{"port", "CELLCMS_RELAY_PORT", "9000", "9001", "port = 9000"},
		{"jwt-issuer", "CELLCMS_RELAY_JWT_ISSUER", "https://issuer.example",
		 "other", "jwt-issuer = https://issuer.example"},
		{"jwt-audience", "CELLCMS_RELAY_JWT_AUDIENCE", "cms", "other",
		 "jwt-audience = cms"},
		{"jwt-leeway", "CELLCMS_RELAY_JWT_LEEWAY", "0", "5", "jwt-leeway = 0"},
		{"jwt-alg", "CELLCMS_RELAY_JWT_ALG", "HS256", "RS256",
		 "jwt-alg = HS256"},
		{"channel", "CELLCMS_RELAY_CHANNEL", "my_channel", "other",
		 "channel = my_channel"},
		{"max-frame-bytes", "CELLCMS_RELAY_MAX_FRAME_BYTES", "1048576", "2048",
		 "max-frame-bytes = 1048576"},
		{"max-queue-bytes", "CELLCMS_RELAY_MAX_QUEUE_BYTES", "65536", "70000",
		 "max-queue-bytes = 65536"},
		{"max-subscriptions", "CELLCMS_RELAY_MAX_SUBSCRIPTIONS", "5", "6",
		 "max-subscriptions = 5"},
		{"max-presence-documents", "CELLCMS_RELAY_MAX_PRESENCE_DOCUMENTS", "1",
		 "2", "max-presence-documents = 1"},
		{"max-query-bytes", "CELLCMS_RELAY_MAX_QUERY_BYTES", "100", "200",
		 "max-query-bytes = 100"},
		{"max-connections", "CELLCMS_RELAY_MAX_CONNECTIONS", "500", "600",
		 "max-connections = 500"},
		{"ping-interval", "CELLCMS_RELAY_PING_INTERVAL", "5", "6",
		 "ping-interval = 5"},
		{"ping-timeout", "CELLCMS_RELAY_PING_TIMEOUT", "3", "4",
		 "ping-timeout = 3"},
		{"advance-interval-ms", "CELLCMS_RELAY_ADVANCE_INTERVAL_MS", "250",
		 "300", "advance-interval-ms = 250"},
		{"prune-interval", "CELLCMS_RELAY_PRUNE_INTERVAL", "0", "60",
		 "prune-interval = 0"},
		{"log-level", "CELLCMS_RELAY_LOG_LEVEL", "debug", "error",
		 "log-level = debug"},
		{"log-level", "CELLCMS_RELAY_LOG_LEVEL", "warn", "error",
		 "log-level = warn"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		char flag[64], joined[128], envvar[128], other[128];

		snprintf(flag, sizeof(flag), "--%s", cases[i].name);
		snprintf(joined, sizeof(joined), "--%s=%s", cases[i].name,
				 cases[i].value);
		snprintf(envvar, sizeof(envvar), "%s=%s", cases[i].env, cases[i].value);
		snprintf(other, sizeof(other), "%s=%s", cases[i].env, cases[i].other);

		CHECK_MSG(parse(ARGS(BASE, flag, cases[i].value), NULL) == CONFIG_OK,
				  "%s %s: %s", flag, cases[i].value, err);
		check_printed(cases[i].line);
		CHECK_MSG(parse(ARGS(BASE, joined), NULL) == CONFIG_OK, "%s: %s",
				  joined, err);
		check_printed(cases[i].line);
		CHECK_MSG(parse(ARGS(BASE), ARGS(envvar)) == CONFIG_OK, "%s: %s",
				  envvar, err);
		check_printed(cases[i].line);
		/* the command line wins over the environment */
		CHECK_MSG(parse(ARGS(BASE, joined), ARGS(other)) == CONFIG_OK,
				  "%s over %s: %s", joined, other, err);
		check_printed(cases[i].line);
		/* the last of repeated options wins */
		CHECK_MSG(parse(ARGS(BASE, flag, cases[i].other, joined), NULL) ==
					  CONFIG_OK,
				  "repeated %s: %s", flag, err);
		check_printed(cases[i].line);
	}

	/* enum values land in the struct */
	CHECK_INT(parse(ARGS(BASE, "--log-level", "error"), NULL), CONFIG_OK);
	CHECK_INT(cfg.log_level, CONFIG_LOG_ERROR);
	CHECK_STR(config_log_level_name(cfg.log_level), "error");
	CHECK_INT(parse(ARGS(BASE, "--port=1", "--max-queue-bytes", "70000",
						 "--max-frame-bytes", "2048", "--max-query-bytes",
						 "2047", "--jwt-leeway", "7"),
					NULL),
			  CONFIG_OK);
	CHECK(cfg.port == 1 && cfg.max_queue_bytes == 70000 &&
		  cfg.max_frame_bytes == 2048 && cfg.max_query_bytes == 2047 &&
		  cfg.jwt_leeway == 7);

	/* secrets and the URL by environment only (the recommended way) */
	CHECK_INT(parse(NULL, ARGS("CELLCMS_RELAY_DATABASE_URL=" DBURL,
							   "CELLCMS_RELAY_JWT_SECRET=" SECRET)),
			  CONFIG_OK);
	CHECK_STR(cfg.database_url, DBURL);
	CHECK_STR(cfg.jwt_secret, SECRET);
	CHECK_INT(parse(ARGS("--database-url=host=/tmp dbname=cms"),
					ARGS("CELLCMS_RELAY_DATABASE_URL=postgresql://other",
						 "CELLCMS_RELAY_JWT_SECRET=" SECRET)),
			  CONFIG_OK);
	CHECK_STR(cfg.database_url, "host=/tmp dbname=cms");

	/* empty variables count as unset; unknown ones are ignored */
	CHECK_INT(
		parse(ARGS(BASE),
			  ARGS("CELLCMS_RELAY_PORT=", "CELLCMS_RELAY_JWT_PUBLIC_KEY=",
				   "CELLCMS_RELAY_BIN=/usr/bin/x", "CELLCMS_RELAY_PORTX=1",
				   "CELLCMS_RELAY_", "CELLCMS_RELAY_PORT")),
		CONFIG_OK);
	CHECK_INT(cfg.port, 8080);
	CHECK(cfg.jwt_public_key == NULL);
	/* an empty issuer on the command line means "not checked" */
	CHECK_INT(
		parse(ARGS(BASE, "--jwt-issuer="), ARGS("CELLCMS_RELAY_JWT_ISSUER=x")),
		CONFIG_OK);
	CHECK(cfg.jwt_issuer == NULL);
}

static void
test_jwt_keys(void)
{
	CHECK_INT(parse(ARGS("--database-url", DBURL, "--jwt-public-key",
						 "/etc/k.pem", "--jwt-alg", "RS256"),
					NULL),
			  CONFIG_OK);
	CHECK_STR(cfg.jwt_public_key, "/etc/k.pem");
	CHECK(cfg.jwt_secret == NULL);
	CHECK_INT(cfg.jwt_alg, CONFIG_JWT_RS256);
	CHECK_STR(config_jwt_alg_name(cfg.jwt_alg), "RS256");
	check_printed("jwt-public-key = /etc/k.pem");

	CHECK_INT(parse(ARGS("--database-url", DBURL, "--jwt-alg=ES256"),
					ARGS("CELLCMS_RELAY_JWT_PUBLIC_KEY=/k.pem")),
			  CONFIG_OK);
	CHECK_INT(cfg.jwt_alg, CONFIG_JWT_ES256);
	CHECK_STR(cfg.jwt_public_key, "/k.pem");

	CHECK_INT(parse(ARGS(BASE, "--jwt-alg", "HS256"), NULL), CONFIG_OK);
	CHECK_INT(cfg.jwt_alg, CONFIG_JWT_HS256);
}

static void
test_errors(void)
{
	static const struct
	{
		const char *args[8];
		const char *env[4];
		const char *want; /* substring of the message */
	} cases[] = {
		/* values */
		{{BASE, "--port", "abc"}, {NULL}, "--port: \"abc\" is not a number"},
		{{BASE, "--port", "0"}, {NULL}, "--port: 0 is out of range (1..65535)"},
		{{BASE, "--port", "65536"}, {NULL}, "out of range (1..65535)"},
		{{BASE, "--port", "-1"}, {NULL}, "is not a number"},
		{{BASE, "--port", "+1"}, {NULL}, "is not a number"},
		{{BASE, "--port", " 1"}, {NULL}, "is not a number"},
		{{BASE, "--port", "1x"}, {NULL}, "is not a number"},
		{{BASE, "--port", "80.5"}, {NULL}, "is not a number"},
		{{BASE, "--port="}, {NULL}, "--port: \"\" is not a number"},
		{{BASE, "--port", "99999999999999999999999"}, {NULL}, "out of range"},
		{{BASE, "--max-connections", "4294967296"}, {NULL}, "out of range"},
		{{BASE, "--log-level", "verbose"},
		 {NULL},
		 "--log-level: \"verbose\" is not one of error, warn, info, debug"},
		{{BASE, "--log-level", "INFO"}, {NULL}, "is not one of"},
		{{BASE, "--jwt-alg", "hs256"}, {NULL}, "is not one of HS256"},
		{{BASE, "--jwt-alg", "none"}, {NULL}, "is not one of"},
		{{BASE, "--channel", ""}, {NULL}, "--channel must not be empty"},
		{{BASE, "--channel",
		  "c234567890123456789012345678901234567890123456789012345678901234"},
		 {NULL},
		 "--channel is too long (at most 63 bytes)"},
		{{BASE, "--host="}, {NULL}, "--host must not be empty"},
		{{"--database-url", DBURL, "--jwt-secret="},
		 {NULL},
		 "--jwt-secret must not be empty"},
		{{"--database-url=", "--jwt-secret", SECRET},
		 {NULL},
		 "--database-url must not be empty"},
		{{BASE, "--max-query-bytes", "65536"},
		 {NULL},
		 "--max-query-bytes (65536) must be smaller than --max-frame-bytes "
		 "(65536)"},
		/* environment */
		{{BASE},
		 {"CELLCMS_RELAY_PORT=abc"},
		 "CELLCMS_RELAY_PORT: \"abc\" is not a number"},
		{{BASE},
		 {"CELLCMS_RELAY_LOG_LEVEL=loud"},
		 "CELLCMS_RELAY_LOG_LEVEL: \"loud\" is not one of"},
		{{BASE},
		 {"CELLCMS_RELAY_PING_TIMEOUT=0"},
		 "CELLCMS_RELAY_PING_TIMEOUT: 0 is out of range (1..3600)"},
		/* syntax */
		{{BASE, "--port"}, {NULL}, "--port needs a value"},
		{{BASE, "--bogus"}, {NULL}, "unknown option --bogus (see --help)"},
		{{BASE, "--jwt-secretx=s3cr3t"},
		 {NULL},
		 "unknown option --jwt-secretx"},
		{{BASE, "stray"}, {NULL}, "unexpected argument #5"},
		{{BASE, "-p", "80"}, {NULL}, "unexpected argument #5"},
		{{"--", BASE}, {NULL}, "unexpected argument #1"},
		{{"--help=yes"}, {NULL}, "--help takes no value"},
		{{"--version=1"}, {NULL}, "--version takes no value"},
		/* required settings and key consistency */
		{{"--jwt-secret", SECRET}, {NULL}, "missing database URL"},
		{{"--database-url", DBURL}, {NULL}, "missing JWT key"},
		{{"--database-url", DBURL},
		 {"CELLCMS_RELAY_JWT_SECRET="},
		 "missing JWT"},
		{{BASE, "--jwt-public-key", "/k.pem"}, {NULL}, "mutually exclusive"},
		{{BASE},
		 {"CELLCMS_RELAY_JWT_PUBLIC_KEY=/k.pem"},
		 "--jwt-secret and --jwt-public-key are mutually exclusive"},
		{{"--database-url", DBURL, "--jwt-public-key", "/k.pem"},
		 {NULL},
		 "--jwt-public-key needs --jwt-alg RS256 or ES256"},
		{{BASE, "--jwt-alg", "RS256"},
		 {NULL},
		 "--jwt-alg RS256 needs --jwt-public-key"},
		{{BASE, "--jwt-alg", "ES256"},
		 {NULL},
		 "--jwt-alg ES256 needs --jwt-public-key"},
		{{"--database-url", DBURL, "--jwt-public-key", "/k.pem", "--jwt-alg",
		  "HS256"},
		 {NULL},
		 "--jwt-alg HS256 needs --jwt-secret"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		config_result r = parse(cases[i].args, cases[i].env);

		CHECK_MSG(r == CONFIG_ERROR && strstr(err, cases[i].want),
				  "case %zu: got %d \"%s\", want \"%s\"", i, (int) r, err,
				  cases[i].want);
	}

	/* a bad environment value the command line overrides is never read */
	CHECK_INT(parse(ARGS(BASE, "--port", "1"), ARGS("CELLCMS_RELAY_PORT=abc")),
			  CONFIG_OK);
	CHECK_INT(cfg.port, 1);

	/* a long secret is neither echoed nor overflows the message */
	{
		static char big[70000 + 16];
		char small[16];

		memcpy(big, "--jwt-secret=", 13);
		memset(big + 13, 'A', 70000);
		CHECK_INT(parse(ARGS("--database-url", DBURL, big), NULL),
				  CONFIG_ERROR);
		CHECK(strstr(err, "--jwt-secret is too long") != NULL);
		CHECK(!strstr(err, "AAAA"));
		/* truncated to the buffer given */
		CHECK_INT(config_parse(2, (char *[]){"x", "--bogus", NULL}, NULL, &cfg,
							   small, sizeof(small)),
				  CONFIG_ERROR);
		CHECK_INT(strlen(small), sizeof(small) - 1);
	}
}

/* Every numeric limit: both bounds accepted, one past each refused. */
static void
test_ranges(void)
{
	static const struct
	{
		const char *name;
		unsigned long long min, max;
	} cases[] = {
		{"port", 1, 65535},
		{"jwt-leeway", 0, 3600},
		{"max-frame-bytes", 1024, 16777216},
		{"max-queue-bytes", 65536, 1073741824},
		{"max-subscriptions", 1, 10000},
		{"max-presence-documents", 1, 10000},
		{"max-query-bytes", 16, 65536},
		{"max-connections", 0, 1000000},
		{"ping-interval", 1, 3600},
		{"ping-timeout", 1, 3600},
		{"advance-interval-ms", 10, 60000},
		{"prune-interval", 0, 2592000},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		char arg[96];
		/* max-query-bytes must stay below max-frame-bytes, and the reverse */
		const char *frame = "--max-frame-bytes=16777216";

		if (!strcmp(cases[i].name, "max-frame-bytes"))
			frame = "--max-query-bytes=16";
		snprintf(arg, sizeof(arg), "--%s=%llu", cases[i].name, cases[i].min);
		CHECK_MSG(parse(ARGS(BASE, frame, arg), NULL) == CONFIG_OK, "%s: %s",
				  arg, err);
		snprintf(arg, sizeof(arg), "--%s=%llu", cases[i].name, cases[i].max);
		CHECK_MSG(parse(ARGS(BASE, frame, arg), NULL) == CONFIG_OK, "%s: %s",
				  arg, err);
		snprintf(arg, sizeof(arg), "--%s=%llu", cases[i].name,
				 cases[i].max + 1);
		CHECK_MSG(parse(ARGS(BASE, frame, arg), NULL) == CONFIG_ERROR &&
					  strstr(err, "out of range"),
				  "%s: %s", arg, err);
		if (cases[i].min > 0)
		{
			snprintf(arg, sizeof(arg), "--%s=%llu", cases[i].name,
					 cases[i].min - 1);
			CHECK_MSG(parse(ARGS(BASE, frame, arg), NULL) == CONFIG_ERROR,
					  "%s: %s", arg, err);
		}
	}
	/* the smallest frame still fits a query */
	CHECK_INT(
		parse(ARGS(BASE, "--max-frame-bytes=1024", "--max-query-bytes=1023"),
			  NULL),
		CONFIG_OK);
}

static void
test_help_version(const char *control_path)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	CHECK_INT(parse(ARGS("--help"), NULL), CONFIG_HELP);
	CHECK_INT(parse(ARGS("--version"), NULL), CONFIG_VERSION);
	/* without any required setting, whatever the environment */
	CHECK_INT(
		parse(ARGS("--port", "1", "--help"), ARGS("CELLCMS_RELAY_PORT=x")),
		CONFIG_HELP);
	/* options before it must be valid */
	CHECK_INT(parse(ARGS("--port", "x", "--help"), NULL), CONFIG_ERROR);

	f = open_memstream(&buf, &len);
	config_help(f, "relay/cellcms-relay");
	fclose(f);
	CHECK(strstr(buf, "Usage: relay/cellcms-relay ") == buf);
	{
		static const char *const want[] = {
			"--host HOST\n",
			"env CELLCMS_RELAY_HOST; default 127.0.0.1\n",
			"--port PORT",
			"CELLCMS_RELAY_PORT; default 8080; 1..65535",
			"--database-url URL",
			"CELLCMS_RELAY_DATABASE_URL\n",
			"--jwt-secret SECRET",
			"CELLCMS_RELAY_JWT_SECRET\n",
			"--jwt-public-key FILE",
			"CELLCMS_RELAY_JWT_PUBLIC_KEY\n",
			"--jwt-alg ALG",
			"CELLCMS_RELAY_JWT_ALG\n",
			"--jwt-issuer ISS",
			"CELLCMS_RELAY_JWT_ISSUER\n",
			"--jwt-audience AUD",
			"CELLCMS_RELAY_JWT_AUDIENCE\n",
			"CELLCMS_RELAY_JWT_LEEWAY; default 30; 0..3600",
			"CELLCMS_RELAY_CHANNEL; default cellcms_rt",
			"CELLCMS_RELAY_MAX_FRAME_BYTES; default 65536",
			"CELLCMS_RELAY_MAX_QUEUE_BYTES; default 1048576",
			"CELLCMS_RELAY_MAX_SUBSCRIPTIONS; default 100",
			"CELLCMS_RELAY_MAX_PRESENCE_DOCUMENTS; default 32",
			"CELLCMS_RELAY_MAX_QUERY_BYTES; default 4096",
			"CELLCMS_RELAY_MAX_CONNECTIONS; default 0",
			"CELLCMS_RELAY_PING_INTERVAL; default 30",
			"CELLCMS_RELAY_PING_TIMEOUT; default 10",
			"CELLCMS_RELAY_ADVANCE_INTERVAL_MS; default 1000",
			"CELLCMS_RELAY_PRUNE_INTERVAL; default 3600",
			"CELLCMS_RELAY_LOG_LEVEL; default info",
			"`ps`",
			"--help",
			"--version",
			"exits with status 2.\n",
		};

		for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
			CHECK_MSG(strstr(buf, want[i]) != NULL, "help lacks \"%s\"",
					  want[i]);
	}
	/* fits a terminal */
	for (const char *line = buf, *nl; *line; line = nl + 1)
	{
		nl = strchr(line, '\n');
		if (!nl)
			break;
		CHECK_MSG(nl - line <= 80, "help line over 80 columns: %.*s",
				  (int) (nl - line), line);
	}
	free(buf);

	/* RELAY_VERSION follows the extension's version */
	f = control_path ? fopen(control_path, "r") : NULL;
	CHECK_MSG(f != NULL, "cannot open %s", control_path ? control_path : "");
	if (f)
	{
		char line[256], want[64];
		bool found = false;

		snprintf(want, sizeof(want), "default_version = '%s'\n", RELAY_VERSION);
		while (fgets(line, sizeof(line), f))
			found = found || !strcmp(line, want);
		fclose(f);
		CHECK_MSG(found, "%s lacks %s", control_path, want);
	}
}

int
main(int argc, char **argv)
{
	test_defaults();
	test_every_setting();
	test_jwt_keys();
	test_errors();
	test_ranges();
	test_help_version(argc > 1 ? argv[1] : NULL);
	return unit_summary();
}
