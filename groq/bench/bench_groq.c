/*
 * bench-groq: micro-benchmark of the GROQ filter engine.
 *
 * Prints nanoseconds per groq_match() for typical subscription filters,
 * then the cost of routing one event through 10, 1000 and 100000
 * subscriptions spread over 1000 types with an index on
 * groq_filter_type_key() (a small hash table here; the relay has its own).
 * Figures only, no assertions: timings depend on the machine.
 *
 *   make && build/bin/bench-groq
 */
#include "groq.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static groq_filter *
compile(const char *q)
{
	groq_error err;
	groq_filter *f = groq_compile(q, strlen(q), NULL, &err);

	if (!f)
	{
		fprintf(stderr, "bench-groq: %s: %s\n", q, err.message);
		exit(1);
	}
	return f;
}

static json_t *
make_doc(const char *type)
{
	json_t *tags = json_array();
	const char *names[] = {"tech", "c",		"postgres", "realtime", "cms",
						   "news", "relay", "groq",		"json",		"web"};

	for (int i = 0; i < 10; i++)
		json_array_append_new(
			tags, json_pack("{s:s,s:s}", "_key", names[i], "name", names[i]));
	return json_pack(
		"{s:s,s:s,s:{s:s},s:s,s:o,s:s,s:{s:s},s:i}", "_id", "drafts.8f4c2a",
		"_type", type, "slug", "current", "hello-world", "title",
		"Hello world: a real-time relay for the CMS", "tags", tags, "body",
		"Subscriptions are GROQ filters evaluated against one changed "
		"document at a time, so the relay must be fast and predictable.",
		"author", "_ref", "person-1", "views", 1234);
}

static void
bench_filter(const char *q, json_t *params, json_t *doc)
{
	groq_filter *f = compile(q);
	groq_error err;
	long iters = 200000;
	int matched = 0;
	double t0, t1;

	for (long i = 0; i < 1000; i++)
		matched = groq_match(f, doc, params, NULL, &err);
	t0 = now_ns();
	for (long i = 0; i < iters; i++)
		matched += groq_match(f, doc, params, NULL, &err) > 0;
	t1 = now_ns();
	printf("  %8.1f ns/eval  %-6s %s\n", (t1 - t0) / iters,
		   matched ? "match" : "-", q);
	groq_filter_unref(f);
}

/* ---- a subscription index by type key ---- */

typedef struct sub
{
	groq_filter *f;
	json_t *params;
} sub;

typedef struct bucket
{
	char *key;
	sub *subs;
	size_t n, cap;
} bucket;

typedef struct index
{
	bucket *b;
	size_t nb; /* power of two */
	sub *untyped;
	size_t nuntyped;
} index_t;

static uint64_t
hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s; s++)
		h = (h ^ (unsigned char) *s) * 1099511628211ULL;
	return h;
}

static bucket *
lookup(index_t *ix, const char *key, bool create)
{
	size_t i = hash(key) & (ix->nb - 1);

	for (;; i = (i + 1) & (ix->nb - 1))
	{
		if (!ix->b[i].key)
		{
			if (!create)
				return NULL;
			ix->b[i].key = strdup(key);
			return &ix->b[i];
		}
		if (!strcmp(ix->b[i].key, key))
			return &ix->b[i];
	}
}

static void
index_add(index_t *ix, groq_filter *f, json_t *params)
{
	const char *k = groq_filter_type_key(f);
	bucket *b;

	if (!k)
	{
		ix->untyped = realloc(ix->untyped, sizeof(sub) * (ix->nuntyped + 1));
		ix->untyped[ix->nuntyped++] = (sub){f, params};
		return;
	}
	b = lookup(ix, k, true);
	if (b->n == b->cap)
	{
		b->cap = b->cap ? b->cap * 2 : 4;
		b->subs = realloc(b->subs, sizeof(sub) * b->cap);
	}
	b->subs[b->n++] = (sub){f, params};
}

/* Routes one event; returns how many subscriptions matched. */
static int
route(index_t *ix, json_t *doc, const char *type, size_t *evaluated)
{
	bucket *b = lookup(ix, type, false);
	groq_error err;
	int matched = 0;

	*evaluated = ix->nuntyped + (b ? b->n : 0);
	for (size_t i = 0; b && i < b->n; i++)
		matched +=
			groq_match(b->subs[i].f, doc, b->subs[i].params, NULL, &err) > 0;
	for (size_t i = 0; i < ix->nuntyped; i++)
		matched += groq_match(ix->untyped[i].f, doc, ix->untyped[i].params,
							  NULL, &err) > 0;
	return matched;
}

static void
bench_index(size_t nsubs)
{
	index_t ix = {0};
	groq_filter *filters[1000];
	json_t *doc = make_doc("t7");
	json_t *other = make_doc("unsubscribed");
	json_t **params = calloc(nsubs, sizeof(*params));
	size_t evaluated = 0, evaluated_other = 0;
	long iters = nsubs >= 100000 ? 20000 : 200000;
	int matched = 0;
	double t0, t1, t2;

	ix.nb = 4096;
	ix.b = calloc(ix.nb, sizeof(bucket));
	/* one compiled filter per distinct text, shared by its subscriptions */
	for (int t = 0; t < 1000; t++)
	{
		char q[128];

		snprintf(q, sizeof(q), "*[_type == \"t%d\" && slug.current == $slug]",
				 t);
		filters[t] = compile(q);
	}
	for (size_t i = 0; i < nsubs; i++)
	{
		char slug[32];

		/* one subscriber in 10 of each type wants this document */
		snprintf(slug, sizeof(slug), "%s",
				 i / 1000 % 10 == 0 ? "hello-world" : "x");
		params[i] = json_pack("{s:s}", "slug", slug);
		index_add(&ix, groq_filter_ref(filters[i % 1000]), params[i]);
	}
	t0 = now_ns();
	for (long i = 0; i < iters; i++)
		matched = route(&ix, doc, "t7", &evaluated);
	t1 = now_ns();
	for (long i = 0; i < iters; i++)
		route(&ix, other, "unsubscribed", &evaluated_other);
	t2 = now_ns();
	printf("  %6zu subs: %8.1f ns/event (%zu same-type evaluated, %d "
		   "matched, %.1f ns each); other type: %6.1f ns/event\n",
		   nsubs, (t1 - t0) / iters, evaluated, matched,
		   evaluated ? (t1 - t0) / iters / evaluated : 0.0, (t2 - t1) / iters);
	for (size_t i = 0; i < ix.nb; i++)
	{
		for (size_t k = 0; k < ix.b[i].n; k++)
			groq_filter_unref(ix.b[i].subs[k].f);
		free(ix.b[i].subs);
		free(ix.b[i].key);
	}
	for (size_t i = 0; i < nsubs; i++)
		json_decref(params[i]);
	for (int t = 0; t < 1000; t++)
		groq_filter_unref(filters[t]);
	free(params);
	free(ix.b);
	free(ix.untyped);
	json_decref(doc);
	json_decref(other);
}

int
main(void)
{
	json_t *doc = make_doc("post");
	json_t *params = json_pack("{s:s}", "slug", "hello-world");

	printf("per evaluation (one document, 200000 runs each):\n");
	bench_filter("*[_type == \"post\"]", NULL, doc);
	bench_filter("*[_type == \"page\"]", NULL, doc);
	bench_filter("*[_type == \"post\" && slug.current == $slug]", params, doc);
	bench_filter("*[_id in path(\"drafts.**\")]", NULL, doc);
	bench_filter("*[title match \"relay*\"]", NULL, doc);
	bench_filter("*[title match \"hello world\" && body match \"fast\"]", NULL,
				 doc);
	bench_filter("*[\"groq\" in tags[].name]", NULL, doc);
	bench_filter("*[count(tags[name in [\"c\", \"json\"]]) == 2]", NULL, doc);
	bench_filter("*[references(\"person-1\")]", NULL, doc);
	bench_filter("*[views > 1000 && defined(slug.current) && "
				 "!(_id in path(\"drafts.**\"))]",
				 NULL, doc);
	printf("routing one event with a type index (1000 types):\n");
	bench_index(10);
	bench_index(1000);
	bench_index(100000);
	json_decref(params);
	json_decref(doc);
	return 0;
}
