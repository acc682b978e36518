/*
 * cellcms-groq: evaluates one GROQ subscription filter over documents.
 *
 *   cellcms-groq 'QUERY' [PARAMS_JSON] < documents.ndjson
 *
 * Reads one JSON document per line and prints the zero-based line numbers
 * of the documents the filter matches, one per line.  Exit status: 0 done;
 * 2 the query or the params are invalid or not supported (message with the
 * byte offset on stderr); 1 a document line is not a JSON object, or its
 * evaluation was aborted by a limit (message naming the line on stderr;
 * processing stops there, after the matches before it were printed).
 * Empty lines are skipped but counted.  Queries may be up to 1 MiB long
 * (the library default, meant for client frames, is 16 KiB).
 */
#include "groq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
usage(FILE *out)
{
	fputs("usage: cellcms-groq 'QUERY' [PARAMS_JSON] < documents.ndjson\n"
		  "\n"
		  "Evaluates the subscription filter QUERY (*[FILTER]) against each\n"
		  "line of standard input (one JSON document per line) and prints\n"
		  "the zero-based numbers of the matching lines.  PARAMS_JSON is an\n"
		  "object binding $names.\n"
		  "\n"
		  "Exit status: 0 ok; 1 bad document line or evaluation aborted;\n"
		  "2 invalid or unsupported query or params.\n",
		  out);
}

int
main(int argc, char **argv)
{
	groq_limits limits = groq_limits_default();
	groq_filter *f = NULL;
	json_t *params = NULL;
	groq_error err;
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	size_t lineno = 0;
	int status = 0;

	if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")))
	{
		usage(stdout);
		return 0;
	}
	if (argc < 2 || argc > 3)
	{
		usage(stderr);
		return 2;
	}
	/* a command-line query is not a client frame: allow long ones */
	limits.max_query_len = 1024 * 1024;
	f = groq_compile(argv[1], strlen(argv[1]), &limits, &err);
	if (!f)
	{
		fprintf(stderr, "cellcms-groq: invalid query at offset %zu: %s\n",
				err.pos, err.message);
		return 2;
	}
	if (argc == 3)
	{
		json_error_t jerr;

		params = json_loads(argv[2], JSON_DECODE_ANY, &jerr);
		if (!params || !json_is_object(params))
		{
			fprintf(stderr, "cellcms-groq: params must be a JSON object%s%s\n",
					params ? "" : ": ", params ? "" : jerr.text);
			status = 2;
			goto out;
		}
	}
	if (!groq_params_check(f, params, &err))
	{
		fprintf(stderr, "cellcms-groq: invalid query at offset %zu: %s\n",
				err.pos, err.message);
		status = 2;
		goto out;
	}
	for (; (len = getline(&line, &cap, stdin)) >= 0; lineno++)
	{
		json_error_t jerr;
		json_t *doc;
		int m;

		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			len--;
		if (len == 0)
			continue;
		doc = json_loadb(line, (size_t) len, 0, &jerr);
		if (!doc || !json_is_object(doc))
		{
			fprintf(stderr, "cellcms-groq: line %zu: %s\n", lineno,
					doc ? "not a JSON object" : jerr.text);
			json_decref(doc);
			status = 1;
			goto out;
		}
		m = groq_match(f, doc, params, NULL, &err);
		json_decref(doc);
		if (m < 0)
		{
			fprintf(stderr,
					"cellcms-groq: line %zu: evaluation aborted at offset "
					"%zu: %s\n",
					lineno, err.pos, err.message);
			status = 1;
			goto out;
		}
		if (m)
			printf("%zu\n", lineno);
	}
out:
	free(line);
	json_decref(params);
	groq_filter_unref(f);
	if (fflush(stdout) != 0 && !status)
		status = 1;
	return status;
}
