/*
 * test_groq: unit tests of the GROQ filter engine (groq/groq*.c).
 *
 * Most cases are data: one per line of the file named on the command line
 * (groq_cases.txt), tab-separated:
 *
 *   EXPECT <TAB> QUERY [<TAB> PARAMS [<TAB> DOCUMENT]]
 *
 * PARAMS and DOCUMENT are JSON ("-" or missing: none / {}).  EXPECT is one
 * of
 *   true | false     the filter compiles and does / does not match
 *   null             neither *[X] nor *[!(X)] matches: X yields null
 *   error[@POS][:TEXT] compiling fails (at byte POS, message containing TEXT)
 *   paramerr         compiles, but groq_params_check() refuses PARAMS
 *   abort            groq_match() aborts (-1)
 *   typekey:T        groq_filter_type_key() is T ("-" for NULL)
 *   reads:A,B        groq_filter_reads_only(A, B) is true
 *   !reads:A,B       ... is false
 * Lines starting with # and blank lines are ignored.
 *
 * What does not fit on a line of text (invalid UTF-8, 100000 parentheses,
 * custom limits, refcounting) is tested in code below.
 */
#include "groq.h"
#include "unit.h"

#include <stdlib.h>
#include <string.h>

static json_t *
parse_json(const char *s, int lineno)
{
	json_error_t jerr;
	json_t *j;

	if (!s || !strcmp(s, "-") || !*s)
		return NULL;
	j = json_loads(s, JSON_DECODE_ANY, &jerr);
	if (!j)
		fprintf(stderr, "line %d: bad JSON in case file: %s\n", lineno,
				jerr.text);
	return j;
}

/* 1, 0 or -1 (compile error or abort) */
static int
run(const char *query, json_t *params, json_t *doc, groq_error *err)
{
	groq_filter *f = groq_compile(query, strlen(query), NULL, err);
	int m;

	if (!f)
		return -2;
	if (!groq_params_check(f, params, err))
	{
		groq_filter_unref(f);
		return -3;
	}
	m = groq_match(f, doc, params, NULL, err);
	groq_filter_unref(f);
	return m;
}

static bool
reads_only(groq_filter *f, const char *list)
{
	char *copy = strdup(list);
	const char *attrs[32];
	size_t n = 0;
	bool r;

	for (char *tok = strtok(copy, ","); tok && n < 32; tok = strtok(NULL, ","))
		attrs[n++] = tok;
	r = groq_filter_reads_only(f, attrs, n);
	free(copy);
	return r;
}

static void
run_case(int lineno, char *line)
{
	char *fields[4] = {NULL, NULL, NULL, NULL};
	int nf = 0;
	json_t *params, *doc;
	groq_error err;
	const char *expect, *query;
	int m;

	for (char *p = line; nf < 4;)
	{
		char *tab = strchr(p, '\t');

		fields[nf++] = p;
		if (!tab)
			break;
		*tab = '\0';
		p = tab + 1;
	}
	expect = fields[0];
	query = fields[1];
	if (!query)
	{
		CHECK_MSG(0, "line %d: no query", lineno);
		return;
	}
	params = parse_json(fields[2], lineno);
	doc = parse_json(fields[3], lineno);
	if (!doc)
		doc = json_object();

	if (!strcmp(expect, "true") || !strcmp(expect, "false"))
	{
		m = run(query, params, doc, &err);
		CHECK_MSG(m == !strcmp(expect, "true"),
				  "line %d: %s: got %d (%s), want %s", lineno, query, m,
				  m < 0 ? err.message : "", expect);
	}
	else if (!strcmp(expect, "null"))
	{
		size_t len = strlen(query);
		char *neg = malloc(len + 8);
		int m2;

		/* *[X] -> *[!(X)] */
		snprintf(neg, len + 8, "*[!(%.*s)]", (int) (len - 3), query + 2);
		m = run(query, params, doc, &err);
		m2 = run(neg, params, doc, &err);
		CHECK_MSG(m == 0 && m2 == 0, "line %d: %s: want null, got %d / %d",
				  lineno, query, m, m2);
		free(neg);
	}
	else if (!strncmp(expect, "error", 5))
	{
		groq_filter *f = groq_compile(query, strlen(query), NULL, &err);
		const char *text = strchr(expect, ':');

		CHECK_MSG(!f, "line %d: %s: compiled, want an error", lineno, query);
		if (!f && expect[5] == '@')
			CHECK_MSG(err.pos == strtoul(expect + 6, NULL, 10),
					  "line %d: %s: error at %zu (%s), want %s", lineno, query,
					  err.pos, err.message, expect + 6);
		if (!f && text)
			CHECK_MSG(strstr(err.message, text + 1) != NULL,
					  "line %d: %s: message \"%s\" lacks \"%s\"", lineno, query,
					  err.message, text + 1);
		groq_filter_unref(f);
	}
	else if (!strcmp(expect, "paramerr"))
	{
		m = run(query, params, doc, &err);
		CHECK_MSG(m == -3, "line %d: %s: got %d, want a params error", lineno,
				  query, m);
	}
	else if (!strcmp(expect, "abort"))
	{
		m = run(query, params, doc, &err);
		CHECK_MSG(m == -1, "line %d: %s: got %d, want an abort", lineno, query,
				  m);
	}
	else if (!strncmp(expect, "typekey:", 8) || !strncmp(expect, "reads:", 6) ||
			 !strncmp(expect, "!reads:", 7))
	{
		groq_filter *f = groq_compile(query, strlen(query), NULL, &err);

		CHECK_MSG(f != NULL, "line %d: %s: %s", lineno, query,
				  f ? "" : err.message);
		if (f && expect[0] == 't')
		{
			const char *k = groq_filter_type_key(f);
			const char *want = expect + 8;

			if (!strcmp(want, "-"))
				CHECK_MSG(k == NULL, "line %d: %s: type key %s, want none",
						  lineno, query, k);
			else
				CHECK_MSG(k && !strcmp(k, want),
						  "line %d: %s: type key %s, want %s", lineno, query,
						  k ? k : "(none)", want);
		}
		else if (f)
		{
			bool want = expect[0] == 'r';

			CHECK_MSG(reads_only(f, strchr(expect, ':') + 1) == want,
					  "line %d: %s: reads_only(%s) is not %d", lineno, query,
					  strchr(expect, ':') + 1, want);
		}
		groq_filter_unref(f);
	}
	else
		CHECK_MSG(0, "line %d: unknown expectation \"%s\"", lineno, expect);
	json_decref(params);
	json_decref(doc);
}

static void
run_file(const char *path)
{
	FILE *fp = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int lineno = 0;

	CHECK_MSG(fp != NULL, "cannot open %s", path);
	if (!fp)
		return;
	while ((len = getline(&line, &cap, fp)) >= 0)
	{
		lineno++;
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		if (len == 0 || line[0] == '#')
			continue;
		run_case(lineno, line);
	}
	free(line);
	fclose(fp);
}

/* ---- cases that do not fit the file ---- */

static void
test_malformed(void)
{
	groq_error err;
	size_t n = 100000;
	char *q = malloc(n * 2 + 8);
	groq_limits lim = groq_limits_default();

	/* invalid UTF-8: a lone continuation byte, an overlong form, a
	 * surrogate, a truncated sequence */
	static const char *bad[] = {"*[a == \"\x80\"]", "*[a == \"\xC0\xAF\"]",
								"*[a == \"\xED\xA0\x80\"]",
								"*[a == \"\xE2\x82"};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
	{
		groq_filter *f = groq_compile(bad[i], strlen(bad[i]), NULL, &err);

		CHECK(f == NULL);
		CHECK_INT(err.pos, 8);
		CHECK(strstr(err.message, "UTF-8") != NULL);
	}
	CHECK(groq_compile("*[a == \"\0\"]", 10, NULL, &err) == NULL);

	/* 100000 nested parentheses: refused, with a bounded parser */
	memcpy(q, "*[", 2);
	memset(q + 2, '(', n);
	q[n + 2] = '\0';
	lim.max_query_len = n * 2 + 8;
	CHECK(groq_compile(q, strlen(q), &lim, &err) == NULL);
	CHECK(strstr(err.message, "nested too deeply") != NULL);
	memset(q + 2, '!', n);
	CHECK(groq_compile(q, strlen(q), &lim, &err) == NULL);
	CHECK(strstr(err.message, "nested too deeply") != NULL);
	/* balanced, too: a[0][0][0]... and a.b.c.d... chains */
	memset(q + 2, '(', n / 2);
	memset(q + 2 + n / 2, ')', n / 2);
	memcpy(q + 2 + n, "]", 2);
	CHECK(groq_compile(q, strlen(q), &lim, &err) == NULL);
	for (size_t i = 0; i < n / 2; i++)
		memcpy(q + 2 + 2 * i, i ? ".a" : "aa", 2);
	memcpy(q + 2 + n, "]", 2);
	CHECK(groq_compile(q, strlen(q), &lim, &err) == NULL);
	CHECK(strstr(err.message, "nested too deeply") != NULL);
	for (size_t i = 0; i < n / 3; i++)
		memcpy(q + 2 + 3 * i, i ? "[0]" : "a[]", 3);
	memcpy(q + 2 + n / 3 * 3, "]", 2);
	CHECK(groq_compile(q, strlen(q), &lim, &err) == NULL);

	/* the length limit */
	memset(q + 2, ' ', n);
	memcpy(q + 2 + n, "true]", 6);
	CHECK(groq_compile(q, strlen(q), NULL, &err) == NULL);
	CHECK(strstr(err.message, "longer than") != NULL);
	{
		groq_filter *f = groq_compile(q, strlen(q), &lim, &err);

		CHECK(f != NULL);
		groq_filter_unref(f);
	}
	free(q);
}

static groq_filter *
compile(const char *q, const groq_limits *lim)
{
	groq_error err;
	groq_filter *f = groq_compile(q, strlen(q), lim, &err);

	CHECK_MSG(f != NULL, "%s: %s", q, f ? "" : err.message);
	return f;
}

static void
test_limits(void)
{
	groq_error err;
	groq_limits lim = groq_limits_default();
	json_t *doc = json_object();
	json_t *arr = json_array();
	groq_filter *f;
	json_t *params;

	for (int i = 0; i < 1000; i++)
		json_array_append_new(arr, json_integer(i));
	json_object_set(doc, "a", arr);

	/* a quadratic filter over 1000 elements runs out of steps */
	params = json_pack("{s:O}", "a", arr);
	f = compile("*[count(a[@ in $a]) > 999]", NULL);
	CHECK_INT(groq_match(f, doc, params, NULL, &err), -1);
	CHECK(strstr(err.message, "step limit") != NULL);
	CHECK_INT(err.pos, 12);
	lim.max_steps = 10000000;
	CHECK_INT(groq_match(f, doc, params, &lim, &err), 1);

	/* the steps counted: all of them on an abort, fewer than the limit
	 * on a success, and a cheap filter takes few */
	{
		unsigned long used = 0;

		lim.max_steps = 5000;
		CHECK_INT(groq_match_counted(f, doc, params, &lim, &used, &err), -1);
		CHECK_INT(used, 5000);
		lim.max_steps = 10000000;
		CHECK_INT(groq_match_counted(f, doc, params, &lim, &used, &err), 1);
		CHECK(used > 500000 && used < 10000000);
		groq_filter_unref(f);
		f = compile("*[defined(a)]", NULL);
		CHECK_INT(groq_match_counted(f, doc, params, NULL, &used, &err), 1);
		CHECK(used >= 1 && used < 10);
	}
	groq_filter_unref(f);
	json_decref(params);

	/* memory: string concatenations */
	{
		char *big = malloc(1 << 20);

		memset(big, 'x', (1 << 20) - 1);
		big[(1 << 20) - 1] = '\0';
		json_object_set_new(doc, "s", json_string(big));
		free(big);
	}
	f = compile("*[length(s + s + s + s + s + s + s + s + s) > 0]", NULL);
	lim = groq_limits_default();
	lim.max_eval_memory = 1 << 20;
	CHECK_INT(groq_match(f, doc, NULL, &lim, &err), -1);
	CHECK(strstr(err.message, "memory") != NULL);
	lim.max_eval_memory = 64 << 20;
	CHECK_INT(groq_match(f, doc, NULL, &lim, &err), 1);
	groq_filter_unref(f);
	/* ... and in a map over 1000 elements: 1000 MiB, refused */
	f = compile("*[count(a[].x + s) > 0]", NULL);
	CHECK_INT(groq_match(f, doc, NULL, NULL, &err), 0);
	groq_filter_unref(f);
	f = compile("*[count(a[string(@) + $s == $s]) > 0]", NULL);
	params = json_pack("{s:O}", "s", json_object_get(doc, "s"));
	CHECK_INT(groq_match(f, doc, params, NULL, &err), -1);
	CHECK(strstr(err.message, "memory") != NULL);
	json_decref(params);
	groq_filter_unref(f);

	/* params size */
	lim = groq_limits_default();
	lim.max_params_size = 100;
	f = compile("*[a == $p]", &lim);
	params = json_pack("{s:s}", "p",
					   "0123456789012345678901234567890123456789012345678901"
					   "234567890123456789012345678901234567890123456789");
	CHECK(!groq_params_check(f, params, &err));
	CHECK(strstr(err.message, "params") != NULL);
	json_decref(params);
	params = json_pack("{s:i}", "p", 3);
	CHECK(groq_params_check(f, params, &err));
	CHECK(!groq_params_check(f, NULL, &err));
	CHECK_INT(err.pos, 7);
	CHECK(strstr(err.message, "$p") != NULL);
	/* an undefined param at match time aborts rather than guessing */
	CHECK_INT(groq_match(f, doc, NULL, NULL, &err), -1);
	CHECK_INT(err.pos, 7);
	json_decref(params);
	groq_filter_unref(f);

	/* references() on a deeply nested document */
	{
		json_t *deep = json_object();
		json_t *cur = deep;

		for (int i = 0; i < 2000; i++)
		{
			json_t *next = json_object();

			json_object_set_new(cur, "n", next);
			cur = next;
		}
		f = compile("*[references(\"x\")]", NULL);
		CHECK_INT(groq_match(f, deep, NULL, NULL, &err), -1);
		CHECK(strstr(err.message, "nested") != NULL);
		groq_filter_unref(f);
		json_decref(deep);
	}
	json_decref(arr);
	json_decref(doc);
}

static void
test_comments(void)
{
	groq_error err;
	json_t *doc = json_pack("{s:s}", "_type", "post");
	groq_filter *f = compile("// leading\n*[ // the type\n"
							 "  _type == \"post\" // done\n] // end",
							 NULL);

	CHECK_INT(groq_match(f, doc, NULL, NULL, &err), 1);
	groq_filter_unref(f);
	f = compile("*[_type == \"x\" // ]\n]", NULL);
	CHECK_INT(groq_match(f, doc, NULL, NULL, &err), 0);
	groq_filter_unref(f);
	CHECK(groq_compile("*[true // ]", 11, NULL, &err) == NULL);
	CHECK(groq_compile("*[a == \x01]", 9, NULL, &err) == NULL);
	CHECK_STR(err.message, "unexpected byte 0x01");
	CHECK_INT(err.pos, 7);
	json_decref(doc);
}

static void
test_api(void)
{
	groq_error err;
	groq_filter *f =
		groq_compile("*[_type == \"post\"] trailing", 27, NULL, &err);
	json_t *doc = json_pack("{s:s}", "_type", "post");

	CHECK(f == NULL);
	CHECK_INT(err.pos, 19);
	/* not NUL-terminated: only len bytes are read */
	f = groq_compile("*[_type == \"post\"]XYZ", 18, NULL, &err);
	CHECK(f != NULL);
	if (!f)
	{
		json_decref(doc);
		return;
	}
	CHECK_STR(groq_filter_text(f), "*[_type == \"post\"]");
	CHECK_STR(groq_filter_type_key(f), "post");
	CHECK(groq_filter_ref(f) == f);
	groq_filter_unref(f);
	/* still alive after one unref */
	CHECK_INT(groq_match(f, doc, NULL, NULL, &err), 1);
	CHECK(groq_params_check(f, NULL, &err));
	groq_filter_unref(f);
	groq_filter_unref(NULL);
	/* params that are not an object */
	f = groq_compile("*[true]", 7, NULL, &err);
	{
		json_t *arr = json_array();

		CHECK(!groq_params_check(f, arr, &err));
		json_decref(arr);
	}
	/* params nested 2000 deep are refused for their depth, not their size */
	{
		json_t *deep = json_integer(1), *params;

		for (int i = 0; i < 2000; i++)
		{
			json_t *wrap = json_array();

			json_array_append_new(wrap, deep);
			deep = wrap;
		}
		params = json_pack("{s:o}", "p", deep);
		CHECK(!groq_params_check(f, params, &err));
		CHECK_STR(err.message, "params nested deeper than 64");
		json_decref(params);
	}
	/* a document that is not an object still evaluates */
	{
		json_t *s = json_string("x");

		CHECK_INT(groq_match(f, s, NULL, NULL, &err), 1);
		json_decref(s);
	}
	groq_filter_unref(f);
	json_decref(doc);
}

/* groq_filter_eq_key(): which conjunct the relay may index by. */
static void
check_eq_key(const char *query, const char *attr, const char *literal,
			 const char *param)
{
	groq_error err;
	groq_filter *f = groq_compile(query, strlen(query), NULL, &err);
	const char *a = NULL, *l = NULL, *p = NULL;

	CHECK_MSG(f != NULL, "%s: %s", query, f ? "" : err.message);
	if (!f)
		return;
	if (!attr)
		CHECK_MSG(!groq_filter_eq_key(f, &a, &l, &p), "%s: unexpected key %s",
				  query, a ? a : "?");
	else
	{
		CHECK_MSG(groq_filter_eq_key(f, &a, &l, &p), "%s: no key", query);
		CHECK_STR(a, attr);
		if (literal)
			CHECK_STR(l, literal);
		else
			CHECK(l == NULL);
		if (param)
			CHECK_STR(p, param);
		else
			CHECK(p == NULL);
	}
	groq_filter_unref(f);
}

/* groq_eq_key_text(): equal keys exactly for GROQ-equal values. */
static void
check_key_text(const char *json, const char *want)
{
	json_t *v = json_loads(json, JSON_DECODE_ANY, NULL);
	char buf[8];
	size_t n;

	CHECK_MSG(v != NULL, "bad JSON %s", json);
	if (!v)
		return;
	n = groq_eq_key_text(v, buf, sizeof(buf));
	if (!want)
		CHECK_MSG(n == 0, "%s: want no key, got %zu bytes", json, n);
	else if (n < sizeof(buf))
		CHECK_STR(buf, want);
	else
	{
		char *big = malloc(n + 1);

		CHECK_INT(groq_eq_key_text(v, big, n + 1), n);
		CHECK_STR(big, want);
		free(big);
	}
	json_decref(v);
}

static void
test_eq_key(void)
{
	check_key_text("\"post\"", "spost");
	check_key_text("\"a longer string than the buffer\"",
				   "sa longer string than the buffer");
	check_key_text("3", "n3");
	check_key_text("3.0", "n3");
	check_key_text("-0.0", "n0");
	check_key_text("1e2", "n100");
	check_key_text("true", "b1");
	check_key_text("false", "b0");
	check_key_text("null", NULL);
	check_key_text("[1]", NULL);
	check_key_text("{}", NULL);
	check_eq_key("*[_id == $id]", "_id", NULL, "id");
	check_eq_key("*[$id == _id]", "_id", NULL, "id");
	check_eq_key("*[_id == \"a\"]", "_id", "sa", NULL);
	check_eq_key("*[_type == \"post\" && slug == $slug]", "slug", NULL, "slug");
	check_eq_key("*[slot == 3 && _type == \"t\" && kind == \"k\"]", "slot",
				 "n3", NULL);
	check_eq_key("*[_type == \"t\" && kind == \"k\"]", "kind", "sk", NULL);
	check_eq_key("*[(a == \"x\" && b == 1) && c > 2]", "a", "sx", NULL);
	check_eq_key("*[n == 3.0]", "n", "n3", NULL);
	check_eq_key("*[n == 0]", "n", "n0", NULL);
	check_eq_key("*[n == 0.5]", "n", "n0.5", NULL);
	check_eq_key("*[flag == true]", "flag", "b1", NULL);
	/* not a key: _type (the type index), nested or null values,
	 * disjunctions, negations, attributes of something else */
	check_eq_key("*[_type == \"post\"]", NULL, NULL, NULL);
	check_eq_key("*[slug.current == $s]", NULL, NULL, NULL);
	check_eq_key("*[a == null]", NULL, NULL, NULL);
	check_eq_key("*[a == \"x\" || b]", NULL, NULL, NULL);
	check_eq_key("*[!(a == \"x\")]", NULL, NULL, NULL);
	check_eq_key("*[a != \"x\"]", NULL, NULL, NULL);
	check_eq_key("*[a == b]", NULL, NULL, NULL);
	check_eq_key("*[tags[0] == \"x\"]", NULL, NULL, NULL);
}

int
main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		run_file(argv[i]);
	test_malformed();
	test_limits();
	test_comments();
	test_api();
	test_eq_key();
	return unit_summary();
}
