/*
 * Unit tests of subs: the subscription registry, its (attribute, value)
 * index and the matching of events, as the hub sees them.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "groq.h"
#include "subs.h"
#include "unit.h"

static const uint8_t seed[16] = "0123456789abcdef";

/* Connection handles: subs never dereferences them. */
static char conns[10000];
#define C(i) ((void *) &conns[i])

/* ---- recording matches --------------------------------------------- */

#define MAX_CALLS 64

typedef struct call
{
	char query[256];
	size_t n;
	void **conns; /* copy */
} call;

typedef struct rec
{
	call calls[MAX_CALLS];
	size_t ncalls;
} rec;

static void
on_match(void *arg, const char *query, size_t query_len, void *const *cs,
		 size_t n)
{
	rec *r = arg;
	call *c;

	if (r->ncalls == MAX_CALLS)
		return;
	c = &r->calls[r->ncalls++];
	snprintf(c->query, sizeof(c->query), "%.*s", (int) query_len, query);
	CHECK_INT(strlen(query), query_len); /* NUL-terminated too */
	c->n = n;
	c->conns = malloc(n * sizeof(*cs));
	memcpy(c->conns, cs, n * sizeof(*cs));
}

static void
rec_reset(rec *r)
{
	for (size_t i = 0; i < r->ncalls; i++)
		free(r->calls[i].conns);
	r->ncalls = 0;
}

/* The call for query, or NULL. */
static const call *
rec_find(const rec *r, const char *query)
{
	for (size_t i = 0; i < r->ncalls; i++)
		if (!strcmp(r->calls[i].query, query))
			return &r->calls[i];
	return NULL;
}

static bool
call_has(const call *c, void *conn)
{
	for (size_t i = 0; c && i < c->n; i++)
		if (c->conns[i] == conn)
			return true;
	return false;
}

static rt_event
ev_make(const char *dataset, const char *id, const char *type)
{
	rt_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.position = 1;
	ev.txid = 1;
	ev.dataset = (char *) dataset;
	ev.document_id = (char *) id;
	ev.document_type = (char *) type;
	ev.operation = (char *) "update";
	ev.ts = (char *) "2025-01-15T12:00:00.000Z";
	return ev;
}

/* Match an event (doc: JSON text or NULL); returns the evaluations. */
static size_t
match(subs *s, rec *r, const char *dataset, const char *id, const char *type,
	  const char *doc_text)
{
	rt_event ev = ev_make(dataset, id, type);
	json_t *doc = doc_text ? json_loads(doc_text, 0, NULL) : NULL;
	size_t n;

	if (doc_text)
		CHECK(doc != NULL);
	rec_reset(r);
	n = subs_match(s, &ev, doc, on_match, r);
	json_decref(doc);
	return n;
}

static subs_status
sub(subs *s, void *conn, const char *dataset, const char *query,
	const char *params_text)
{
	json_t *params = params_text ? json_loads(params_text, 0, NULL) : NULL;
	groq_error err;
	subs_status st;

	st = subs_subscribe(s, conn, dataset, query, strlen(query), params, &err);
	json_decref(params);
	return st;
}

static void
unsub(subs *s, void *conn, const char *query)
{
	subs_unsubscribe(s, conn, query, strlen(query));
}

/* A registry, or the test binary stops: nothing can be checked without. */
static subs *
new_subs(const groq_limits *limits, size_t max_per_conn)
{
	subs *s = subs_new(limits, max_per_conn, seed);

	if (!s)
	{
		fprintf(stderr, "subs_new failed\n");
		exit(1);
	}
	return s;
}

/* ---- tests ----------------------------------------------------------- */

static void
test_basic(void)
{
	subs *s = new_subs(NULL, 0);
	rec r = {0};
	const char *q = "*[_type == \"post\"]";

	CHECK_INT(sub(s, C(1), "production", q, NULL), SUBS_OK);
	CHECK_INT(subs_conn_count(s, C(1)), 1);

	CHECK_INT(match(s, &r, "production", "d1", "post", NULL), 1);
	CHECK_INT(r.ncalls, 1);
	CHECK_STR(r.calls[0].query, q);
	CHECK_INT(r.calls[0].n, 1);
	CHECK(call_has(&r.calls[0], C(1)));

	/* another type never visits the indexed group */
	CHECK_INT(match(s, &r, "production", "d1", "page", NULL), 0);
	CHECK_INT(r.ncalls, 0);
	CHECK_INT(match(s, &r, "production", "d1", NULL, NULL), 0);

	/* the query text need not be NUL-terminated */
	{
		char buf[64];
		groq_error err;

		memcpy(buf, q, strlen(q));
		memset(buf + strlen(q), 'x', 8);
		CHECK_INT(
			subs_subscribe(s, C(2), "production", buf, strlen(q), NULL, &err),
			SUBS_OK);
		CHECK_INT(match(s, &r, "production", "d1", "post", NULL), 1);
		CHECK_INT(r.ncalls, 1);
		CHECK_STR(r.calls[0].query, q);
		CHECK_INT(r.calls[0].n, 2);
		subs_unsubscribe(s, C(2), buf, strlen(q));
		CHECK_INT(subs_conn_count(s, C(2)), 0);
	}

	rec_reset(&r);
	subs_free(s);
	subs_free(NULL);
}

static void
test_resubscribe_replaces_params(void)
{
	subs *s = new_subs(NULL, 0);
	rec r = {0};
	const char *q = "*[_type == \"post\" && slug == $slug]";
	const call *c;

	CHECK_INT(sub(s, C(1), "production", q, "{\"slug\":\"a\"}"), SUBS_OK);
	CHECK_INT(sub(s, C(2), "production", q, "{\"slug\":\"a\"}"), SUBS_OK);
	CHECK_INT(match(s, &r, "production", "d", "post",
					"{\"_id\":\"d\",\"_type\":\"post\",\"slug\":\"a\"}"),
			  1);
	CHECK_INT(r.ncalls, 1);
	CHECK_INT(r.calls[0].n, 2);

	/* same text again: params replaced, still one subscription */
	CHECK_INT(sub(s, C(1), "production", q, "{\"slug\":\"b\"}"), SUBS_OK);
	CHECK_INT(subs_conn_count(s, C(1)), 1);
	/* groups are indexed by slug (the equality key): one evaluation */
	CHECK_INT(match(s, &r, "production", "d", "post",
					"{\"_id\":\"d\",\"_type\":\"post\",\"slug\":\"a\"}"),
			  1);
	c = rec_find(&r, q);
	CHECK_INT(r.ncalls, 1);
	CHECK(c && c->n == 1 && call_has(c, C(2)) && !call_has(c, C(1)));
	CHECK_INT(match(s, &r, "production", "d", "post",
					"{\"_id\":\"d\",\"_type\":\"post\",\"slug\":\"b\"}"),
			  1);
	c = rec_find(&r, q);
	CHECK_INT(r.ncalls, 1);
	CHECK(c && c->n == 1 && call_has(c, C(1)));

	/* re-subscribing with identical params changes nothing */
	CHECK_INT(sub(s, C(1), "production", q, "{\"slug\":\"b\"}"), SUBS_OK);
	CHECK_INT(subs_conn_count(s, C(1)), 1);
	CHECK_INT(match(s, &r, "production", "d", "post",
					"{\"_id\":\"d\",\"_type\":\"post\",\"slug\":\"b\"}"),
			  1);
	CHECK_INT(r.ncalls, 1);

	/* moving the last member away frees the old group: one group left */
	CHECK_INT(sub(s, C(2), "production", q, "{\"slug\":\"b\"}"), SUBS_OK);
	CHECK_INT(match(s, &r, "production", "d", "post",
					"{\"_id\":\"d\",\"_type\":\"post\",\"slug\":\"b\"}"),
			  1);
	CHECK_INT(r.ncalls, 1);
	CHECK_INT(r.calls[0].n, 2);

	/* key order and whitespace of params do not split groups */
	{
		const char *q2 = "*[a == $a && b.x == $b.x]";

		CHECK_INT(
			sub(s, C(3), "production", q2, "{\"a\":1,\"b\":{\"x\":1,\"y\":2}}"),
			SUBS_OK);
		CHECK_INT(sub(s, C(4), "production", q2,
					  "{ \"b\":{\"y\":2, \"x\":1}, \"a\":1 }"),
				  SUBS_OK);
		/* {} and no params are the same */
		CHECK_INT(sub(s, C(5), "production", "*[true]", "{}"), SUBS_OK);
		CHECK_INT(sub(s, C(6), "production", "*[true]", NULL), SUBS_OK);
		CHECK_INT(
			match(s, &r, "production", "d", "x", "{\"a\":1,\"b\":{\"x\":1}}"),
			2);
		CHECK_INT(r.ncalls, 2);
		c = rec_find(&r, q2);
		CHECK(c && c->n == 2 && call_has(c, C(3)) && call_has(c, C(4)));
		c = rec_find(&r, "*[true]");
		CHECK(c && c->n == 2 && call_has(c, C(5)) && call_has(c, C(6)));
	}

	/* the registry keeps its own copy of params */
	{
		json_t *p = json_pack("{s:s}", "slug", "z");
		groq_error err;

		CHECK_INT(subs_subscribe(s, C(7), "production", q, strlen(q), p, &err),
				  SUBS_OK);
		json_object_set_new(p, "slug", json_string("other"));
		json_decref(p);
		CHECK_INT(match(s, &r, "production", "d", "post",
						"{\"_type\":\"post\",\"slug\":\"z\"}"),
				  2); /* the slug "z" group + *[true]; q2 is filed under a */
		c = rec_find(&r, q);
		CHECK(c && c->n == 1 && call_has(c, C(7)));
	}

	rec_reset(&r);
	subs_free(s);
}

static void
test_unsubscribe(void)
{
	subs *s = new_subs(NULL, 0);
	rec r = {0};

	/* unknown connection, unknown query: harmless */
	unsub(s, C(1), "*[true]");
	subs_drop_connection(s, C(1));
	CHECK_INT(sub(s, C(1), "production", "*[true]", NULL), SUBS_OK);
	unsub(s, C(1), "*[false]");
	unsub(s, C(1), "*[true] ");
	unsub(s, C(2), "*[true]");
	CHECK_INT(subs_conn_count(s, C(1)), 1);
	CHECK_INT(match(s, &r, "production", "d", "t", NULL), 1);
	CHECK_INT(r.ncalls, 1);

	unsub(s, C(1), "*[true]");
	CHECK_INT(subs_conn_count(s, C(1)), 0);
	CHECK_INT(match(s, &r, "production", "d", "t", NULL), 0);
	CHECK_INT(r.ncalls, 0);
	unsub(s, C(1), "*[true]"); /* twice */

	rec_reset(&r);
	subs_free(s);
}

static void
test_dataset_isolation(void)
{
	subs *s = new_subs(NULL, 0);
	rec r = {0};
	const char *q = "*[_type == \"post\"]";

	CHECK_INT(sub(s, C(1), "production", q, NULL), SUBS_OK);
	CHECK_INT(sub(s, C(2), "staging", q, NULL), SUBS_OK);
	CHECK_INT(sub(s, C(3), "staging", "*[true]", NULL), SUBS_OK);

	CHECK_INT(match(s, &r, "production", "d", "post", NULL), 1);
	CHECK_INT(r.ncalls, 1);
	CHECK(r.calls[0].n == 1 && call_has(&r.calls[0], C(1)));

	CHECK_INT(match(s, &r, "staging", "d", "post", NULL), 2);
	CHECK_INT(r.ncalls, 2);
	CHECK(call_has(rec_find(&r, q), C(2)) && !call_has(rec_find(&r, q), C(1)));

	/* a dataset nobody subscribed to costs nothing */
	CHECK_INT(match(s, &r, "other", "d", "post", NULL), 0);
	CHECK_INT(match(s, &r, "productio", "d", "post", NULL), 0);
	CHECK(!subs_needs_document(s, "other", "post"));

	/* re-subscribing in another dataset moves the subscription */
	CHECK_INT(sub(s, C(1), "staging", q, NULL), SUBS_OK);
	CHECK_INT(subs_conn_count(s, C(1)), 1);
	CHECK_INT(match(s, &r, "production", "d", "post", NULL), 0);
	CHECK_INT(match(s, &r, "staging", "d", "post", NULL), 2);
	CHECK(call_has(rec_find(&r, q), C(1)) && call_has(rec_find(&r, q), C(2)));

	rec_reset(&r);
	subs_free(s);
}

static void
test_type_index(void)
{
	subs *s = new_subs(NULL, 0);
	rec r = {0};
	char q[128];
	const char *scan = "*[_type == \"a\" || x == 1]";
	const call *c;

	/*
	 * 1000 groups of type b, each filed under (b, its n), 3 of type a, 1
	 * scan group
	 */
	for (int i = 0; i < 1000; i++)
	{
		snprintf(q, sizeof(q), "*[_type == \"b\" && n == %d]", i);
		CHECK_INT(sub(s, C(i), "production", q, NULL), SUBS_OK);
	}
	CHECK_INT(sub(s, C(1000), "production", "*[_type == \"a\"]", NULL),
			  SUBS_OK);
	CHECK_INT(sub(s, C(1001), "production", "*[\"a\" == _type && n > 1]", NULL),
			  SUBS_OK);
	CHECK_INT(sub(s, C(1002), "production", "*[n > 1 && _type == \"a\"]", NULL),
			  SUBS_OK);
	CHECK_INT(sub(s, C(1003), "production", scan, NULL), SUBS_OK);

	/* type a: 3 indexed + 1 scan evaluations, none of the 1000 */
	CHECK_INT(match(s, &r, "production", "d", "a",
					"{\"_id\":\"d\",\"_type\":\"a\",\"n\":2}"),
			  4);
	CHECK_INT(r.ncalls, 4);
	CHECK(rec_find(&r, "*[_type == \"a\"]") != NULL);
	CHECK(rec_find(&r, scan) != NULL);

	/* the || filter is not indexed: evaluated for another type too */
	CHECK_INT(match(s, &r, "production", "d", "c",
					"{\"_id\":\"d\",\"_type\":\"c\",\"x\":1}"),
			  1);
	CHECK_INT(r.ncalls, 1);
	CHECK(rec_find(&r, scan) != NULL);

	/* type b, n 517: one group of the 1000 + 1 scan evaluation */
	CHECK_INT(match(s, &r, "production", "d", "b",
					"{\"_id\":\"d\",\"_type\":\"b\",\"n\":517}"),
			  2);
	CHECK_INT(r.ncalls, 1);
	c = rec_find(&r, "*[_type == \"b\" && n == 517]");
	CHECK(c && c->n == 1 && call_has(c, C(517)));

	/* with a document, its own _type chooses the index entry */
	CHECK_INT(match(s, &r, "production", "d", "b",
					"{\"_id\":\"d\",\"_type\":\"a\",\"n\":0}"),
			  4);
	CHECK_INT(r.ncalls, 2);
	/* a document without a string _type: only scan groups */
	CHECK_INT(match(s, &r, "production", "d", "a", "{\"_id\":\"d\",\"x\":1}"),
			  1);
	CHECK_INT(r.ncalls, 1);

	/*
	 * Without a document and without a type: scan groups that read only
	 * _id/_type see _type null; the || filter reads x: skipped.
	 */
	CHECK_INT(sub(s, C(1004), "production", "*[_type == null]", NULL), SUBS_OK);
	CHECK_INT(match(s, &r, "production", "d", NULL, NULL), 1);
	CHECK_INT(r.ncalls, 1);
	CHECK(rec_find(&r, "*[_type == null]") != NULL);

	/* _id filters decide from the event alone */
	CHECK_INT(sub(s, C(1005), "production", "*[_id == \"d9\"]", NULL), SUBS_OK);
	CHECK_INT(match(s, &r, "production", "d9", "zz", NULL), 2);
	CHECK_INT(r.ncalls, 1);
	CHECK(rec_find(&r, "*[_id == \"d9\"]") != NULL);

	/*
	 * removing the indexed groups empties their type: back to no cost (the
	 * _id == "d9" group sits in the _id bucket of "d9", not visited here)
	 */
	for (int i = 0; i < 1000; i++)
		subs_drop_connection(s, C(i));
	CHECK_INT(match(s, &r, "production", "d", "b",
					"{\"_id\":\"d\",\"_type\":\"b\",\"n\":517}"),
			  2);
	CHECK_INT(r.ncalls, 0);

	rec_reset(&r);
	subs_free(s);
}

static void
test_needs_document(void)
{
	subs *s = new_subs(NULL, 0);
	rec r = {0};
	const char *slug = "*[_type == \"post\" && slug.current == \"x\"]";

	CHECK(!subs_needs_document(s, "production", "post"));
	CHECK_INT(sub(s, C(1), "production", "*[_type == \"post\"]", NULL),
			  SUBS_OK);
	CHECK_INT(sub(s, C(1), "production", "*[_id in [\"a\", \"b\"]]", NULL),
			  SUBS_OK);
	CHECK(!subs_needs_document(s, "production", "post"));
	CHECK(!subs_needs_document(s, "production", NULL));

	CHECK_INT(sub(s, C(2), "production", slug, NULL), SUBS_OK);
	CHECK(subs_needs_document(s, "production", "post"));
	CHECK(!subs_needs_document(s, "production", "page"));
	CHECK(!subs_needs_document(s, "production", NULL));
	CHECK(!subs_needs_document(s, "staging", "post"));

	/* without the document, the slug group cannot be decided: skipped */
	CHECK_INT(match(s, &r, "production", "a", "post", NULL), 2);
	CHECK_INT(r.ncalls, 2);
	CHECK(rec_find(&r, slug) == NULL);
	/* with it, evaluated */
	CHECK_INT(match(s, &r, "production", "a", "post",
					"{\"_id\":\"a\",\"_type\":\"post\","
					"\"slug\":{\"current\":\"x\"}}"),
			  3);
	CHECK_INT(r.ncalls, 3);
	CHECK(call_has(rec_find(&r, slug), C(2)));

	/* an unindexed filter reading the body: every type needs it */
	CHECK_INT(sub(s, C(3), "staging", "*[defined(title)]", NULL), SUBS_OK);
	CHECK(subs_needs_document(s, "staging", "post"));
	CHECK(subs_needs_document(s, "staging", "anything"));
	CHECK(subs_needs_document(s, "staging", NULL));
	CHECK(!subs_needs_document(s, "production", "page"));

	/* the whole document counts as more than _id/_type */
	CHECK_INT(sub(s, C(4), "other", "*[count(references(\"x\")) == 0]", NULL),
			  SUBS_OK);
	CHECK(subs_needs_document(s, "other", "post"));

	unsub(s, C(2), slug);
	CHECK(!subs_needs_document(s, "production", "post"));
	subs_drop_connection(s, C(3));
	CHECK(!subs_needs_document(s, "staging", NULL));

	/* a truncated event without its document is never matched */
	{
		rt_event ev = ev_make("production", "a", "post");

		ev.truncated = true;
		rec_reset(&r);
		CHECK_INT(subs_match(s, &ev, NULL, on_match, &r), 0);
		CHECK_INT(r.ncalls, 0);
	}

	rec_reset(&r);
	subs_free(s);
}

static void
test_one_evaluation_per_group(void)
{
	subs *s = new_subs(NULL, 0);
	rec r = {0};
	const char *q = "*[_type == \"post\"]";
	const call *c;
	size_t i;

	for (i = 0; i < 10000; i++)
		CHECK_MSG(sub(s, C(i), "production", q, NULL) == SUBS_OK, "sub %zu", i);
	CHECK_INT(match(s, &r, "production", "d", "post", NULL), 1);
	CHECK_INT(r.ncalls, 1);
	CHECK_INT(r.calls[0].n, 10000);

	/* swap-remove keeps exactly the members that stayed */
	for (i = 0; i < 10000; i++)
		if (i % 3 != 0)
			unsub(s, C(i), q);
	CHECK_INT(match(s, &r, "production", "d", "post", NULL), 1);
	c = rec_find(&r, q);
	CHECK(c != NULL);
	if (c)
	{
		bool ok = c->n == 3334;
		char seen[10000] = {0};

		for (i = 0; i < c->n; i++)
		{
			size_t k = (char *) c->conns[i] - conns;

			ok = ok && k < 10000 && k % 3 == 0 && !seen[k];
			seen[k] = 1;
		}
		CHECK_MSG(ok, "members after removals: %zu", c->n);
	}
	for (i = 0; i < 10000; i += 3)
		subs_drop_connection(s, C(i));
	CHECK_INT(match(s, &r, "production", "d", "post", NULL), 0);

	rec_reset(&r);
	subs_free(s);
}

static void
test_drop_connection(void)
{
	subs *s = new_subs(NULL, 0);
	rec r = {0};

	CHECK_INT(sub(s, C(1), "production", "*[_type == \"a\"]", NULL), SUBS_OK);
	CHECK_INT(sub(s, C(1), "production", "*[title == $t]", "{\"t\":\"x\"}"),
			  SUBS_OK);
	CHECK_INT(sub(s, C(1), "production", "*[true]", NULL), SUBS_OK);
	CHECK_INT(sub(s, C(2), "production", "*[true]", NULL), SUBS_OK);
	CHECK_INT(subs_conn_count(s, C(1)), 3);

	subs_drop_connection(s, C(1));
	CHECK_INT(subs_conn_count(s, C(1)), 0);
	CHECK_INT(subs_conn_count(s, C(2)), 1);
	CHECK(!subs_needs_document(s, "production", NULL));
	CHECK_INT(match(s, &r, "production", "d", "a",
					"{\"_type\":\"a\",\"title\":\"x\"}"),
			  1);
	CHECK_INT(r.ncalls, 1);
	CHECK(r.calls[0].n == 1 && call_has(&r.calls[0], C(2)));

	subs_drop_connection(s, C(2));
	CHECK_INT(match(s, &r, "production", "d", "a",
					"{\"_type\":\"a\",\"title\":\"x\"}"),
			  0);
	/* everything was released: a new subscription starts afresh */
	CHECK_INT(sub(s, C(2), "production", "*[true]", NULL), SUBS_OK);
	CHECK_INT(match(s, &r, "production", "d", "a", NULL), 1);

	/* free with subscriptions still in place (valgrind checks) */
	rec_reset(&r);
	subs_free(s);
}

static void
test_limits(void)
{
	subs *s = new_subs(NULL, 3);
	rec r = {0};

	CHECK_INT(sub(s, C(1), "production", "*[a == 1]", NULL), SUBS_OK);
	CHECK_INT(sub(s, C(1), "production", "*[a == 2]", NULL), SUBS_OK);
	CHECK_INT(sub(s, C(1), "production", "*[a == 3]", NULL), SUBS_OK);
	CHECK_INT(sub(s, C(1), "production", "*[a == 4]", NULL), SUBS_LIMIT);
	CHECK_INT(subs_conn_count(s, C(1)), 3);
	CHECK_INT(match(s, &r, "production", "d", "t", "{\"a\":4}"), 0);
	CHECK_INT(r.ncalls, 0);
	/* re-subscribing an existing text is not a new subscription */
	CHECK_INT(sub(s, C(1), "production", "*[a == 3]", "{\"x\":1}"), SUBS_OK);
	/* other connections have their own budget */
	CHECK_INT(sub(s, C(2), "production", "*[a == 4]", NULL), SUBS_OK);
	unsub(s, C(1), "*[a == 1]");
	CHECK_INT(sub(s, C(1), "production", "*[a == 4]", NULL), SUBS_OK);
	CHECK_INT(match(s, &r, "production", "d", "t", "{\"a\":4}"), 1);
	CHECK_INT(r.ncalls, 1);
	CHECK_INT(r.calls[0].n, 2);
	subs_free(s);

	/* default */
	s = new_subs(NULL, 0);
	for (int i = 0; i < SUBS_DEFAULT_MAX_PER_CONN; i++)
	{
		char q[64];

		snprintf(q, sizeof(q), "*[a == %d]", i);
		CHECK_MSG(sub(s, C(1), "production", q, NULL) == SUBS_OK, "%d", i);
	}
	CHECK_INT(sub(s, C(1), "production", "*[b == 1]", NULL), SUBS_LIMIT);
	subs_free(s);

	/* GROQ limits are applied: query length and evaluation steps */
	{
		groq_limits lim = groq_limits_default();
		groq_error err;
		char big[300];
		const char *heavy = "*[count(a[@ > 0]) > 0]";

		lim.max_query_len = 256;
		lim.max_steps = 50;
		s = new_subs(&lim, 0);
		memset(big, ' ', sizeof(big));
		memcpy(big, "*[true", 6);
		big[sizeof(big) - 1] = ']';
		CHECK_INT(
			subs_subscribe(s, C(1), "production", big, sizeof(big), NULL, &err),
			SUBS_INVALID_QUERY);
		CHECK(err.message[0] != '\0');
		CHECK_INT(sub(s, C(1), "production", heavy, NULL), SUBS_OK);
		/* a small array matches; a large one exceeds the steps: no match */
		CHECK_INT(match(s, &r, "production", "d", "t", "{\"a\":[1]}"), 1);
		CHECK_INT(r.ncalls, 1);
		{
			json_t *a = json_array(), *doc;
			rt_event ev = ev_make("production", "d", "t");

			for (int i = 0; i < 1000; i++)
				json_array_append_new(a, json_integer(1));
			doc = json_pack("{s:o}", "a", a);
			rec_reset(&r);
			CHECK_INT(subs_match(s, &ev, doc, on_match, &r), 1);
			CHECK_INT(r.ncalls, 0);
			json_decref(doc);
		}
		subs_free(s);
	}
	rec_reset(&r);
}

static void
test_invalid(void)
{
	subs *s = new_subs(NULL, 0);
	rec r = {0};
	groq_error err;
	const char *q = "*[slug == $slug]";
	json_t *p;

	memset(&err, 0, sizeof(err));
	CHECK_INT(subs_subscribe(s, C(1), "production", "*[", 2, NULL, &err),
			  SUBS_INVALID_QUERY);
	CHECK(err.message[0] != '\0');
	CHECK_INT(sub(s, C(1), "production", "*[_type == \"a\"] | order(x)", NULL),
			  SUBS_INVALID_QUERY);
	CHECK_INT(sub(s, C(1), "production", "", NULL), SUBS_INVALID_QUERY);
	CHECK_INT(subs_conn_count(s, C(1)), 0);
	/* err may be NULL */
	CHECK_INT(subs_subscribe(s, C(1), "production", "*[", 2, NULL, NULL),
			  SUBS_INVALID_QUERY);

	/* undefined $param */
	memset(&err, 0, sizeof(err));
	CHECK_INT(subs_subscribe(s, C(1), "production", q, strlen(q), NULL, &err),
			  SUBS_INVALID_QUERY);
	CHECK(strstr(err.message, "slug") != NULL);
	p = json_pack("{s:s}", "other", "x");
	CHECK_INT(subs_subscribe(s, C(1), "production", q, strlen(q), p, &err),
			  SUBS_INVALID_QUERY);
	json_decref(p);
	CHECK_INT(subs_conn_count(s, C(1)), 0);
	CHECK_INT(match(s, &r, "production", "d", "t", "{\"slug\":\"a\"}"), 0);

	/* a failed re-subscribe keeps the previous params */
	CHECK_INT(sub(s, C(1), "production", q, "{\"slug\":\"a\"}"), SUBS_OK);
	CHECK_INT(sub(s, C(1), "production", q, "{\"nope\":\"b\"}"),
			  SUBS_INVALID_QUERY);
	CHECK_INT(subs_conn_count(s, C(1)), 1);
	CHECK_INT(match(s, &r, "production", "d", "t", "{\"slug\":\"a\"}"), 1);
	CHECK_INT(r.ncalls, 1);

	rec_reset(&r);
	subs_free(s);
}

/*
 * Equality keys: `_id == $id` per editor, `slug == $slug` per page.  A
 * group sits in the bucket of its key's value and is evaluated only for
 * documents with that value, however many others exist.
 */
static void
test_equality_index(void)
{
	subs *s = new_subs(NULL, 0);
	rec r = {0};
	const char *qid = "*[_id == $id]";
	const char *qslug = "*[_type == \"page\" && slug == $slug]";
	char params[64];
	const call *c;

	for (int i = 0; i < 1000; i++)
	{
		snprintf(params, sizeof(params), "{\"id\":\"doc-%d\"}", i);
		CHECK_INT(sub(s, C(i), "production", qid, params), SUBS_OK);
	}
	/* _id keys are decided from the event: no document needed */
	CHECK(!subs_needs_document(s, "production", "post"));
	CHECK_INT(match(s, &r, "production", "doc-7", "post", NULL), 1);
	c = rec_find(&r, qid);
	CHECK(r.ncalls == 1 && c && c->n == 1 && call_has(c, C(7)));
	CHECK_INT(match(s, &r, "production", "nobody", "post", NULL), 0);
	CHECK_INT(r.ncalls, 0);

	for (int i = 0; i < 1000; i++)
	{
		snprintf(params, sizeof(params), "{\"slug\":\"s%d\"}", i);
		CHECK_INT(sub(s, C(i), "production", qslug, params), SUBS_OK);
	}

	/*
	 * With the document, both keys apply: one _id bucket and one (page,
	 * slug) bucket are visited.  A post with the same slug visits none.
	 */
	CHECK_INT(match(s, &r, "production", "doc-3", "page",
					"{\"_id\":\"doc-3\",\"_type\":\"page\","
					"\"slug\":\"s3\"}"),
			  2);
	CHECK_INT(r.ncalls, 2);
	c = rec_find(&r, qslug);
	CHECK(c && c->n == 1 && call_has(c, C(3)));
	CHECK_INT(match(s, &r, "production", "doc-x", "post",
					"{\"_id\":\"doc-x\",\"_type\":\"post\","
					"\"slug\":\"s3\"}"),
			  0);
	CHECK_INT(r.ncalls, 0);
	/* a value of another JSON type is another key: no bucket */
	CHECK_INT(match(s, &r, "production", "doc-x", "page",
					"{\"_id\":\"doc-x\",\"_type\":\"page\",\"slug\":3}"),
			  0);

	/*
	 * slug buckets need the document; their filters only match pages, so
	 * only pages are loaded.  A keyed filter without a type key needs it
	 * for every type.
	 */
	CHECK(subs_needs_document(s, "production", "page"));
	CHECK(!subs_needs_document(s, "production", "post"));
	CHECK(!subs_needs_document(s, "production", NULL));
	CHECK_INT(sub(s, C(3000), "production", "*[slug == \"x\"]", NULL), SUBS_OK);
	CHECK(subs_needs_document(s, "production", "post"));
	subs_drop_connection(s, C(3000));
	CHECK(!subs_needs_document(s, "production", "post"));
	for (int i = 0; i < 1000; i++)
		subs_unsubscribe(s, C(i), qslug, strlen(qslug));
	CHECK(!subs_needs_document(s, "production", "page"));

	/* a parameter that cannot be a key (an array): scan list */
	CHECK_INT(sub(s, C(2000), "production", qid, "{\"id\":[5]}"), SUBS_OK);
	CHECK_INT(match(s, &r, "production", "doc-7", "post", NULL), 2);
	c = rec_find(&r, qid);
	CHECK(r.ncalls == 1 && c && c->n == 1 && call_has(c, C(7)));

	/* a literal key, and re-subscribing moves between buckets */
	CHECK_INT(sub(s, C(2001), "production", "*[_id == \"fixed\"]", NULL),
			  SUBS_OK);
	CHECK_INT(match(s, &r, "production", "fixed", NULL, NULL), 2);
	CHECK(rec_find(&r, "*[_id == \"fixed\"]") != NULL);
	CHECK_INT(sub(s, C(7), "production", qid, "{\"id\":\"doc-8\"}"), SUBS_OK);
	CHECK_INT(match(s, &r, "production", "doc-8", NULL, NULL), 2);
	c = rec_find(&r, qid);
	CHECK(c && c->n == 2 && call_has(c, C(7)) && call_has(c, C(8)));
	CHECK_INT(match(s, &r, "production", "doc-7", NULL, NULL), 1);
	CHECK_INT(r.ncalls, 0);

	/* numbers are keys by value: 3 and 3.0 are one bucket */
	for (int i = 0; i < 100; i++)
	{
		snprintf(params, sizeof(params), "{\"slot\":%d}", i);
		CHECK_INT(sub(s, C(i), "production",
					  "*[_type == \"t\" && slot == $slot]", params),
				  SUBS_OK);
	}
	CHECK_INT(match(s, &r, "production", "x", "t",
					"{\"_id\":\"x\",\"_type\":\"t\",\"slot\":3.0}"),
			  2); /* its slot bucket and the [5] scan group */
	c = rec_find(&r, "*[_type == \"t\" && slot == $slot]");
	CHECK(r.ncalls == 1 && c && c->n == 1 && call_has(c, C(3)));

	for (int i = 0; i < 2002; i++)
		subs_drop_connection(s, C(i));
	CHECK_INT(match(s, &r, "production", "doc-8", NULL, NULL), 0);
	subs_free(s);
}

/*
 * Matching order is deterministic: the dataset's indexed attributes in the
 * order they were first indexed, inside a bucket its groups in creation
 * order, then the scan groups in creation order.  A group that goes and
 * comes back is last of its list, an attribute last of the attributes.
 */
static const char *const order_q[] = {
	"*[_type == \"post\" && n > 0]", /* the (_type, post) bucket */
	"*[_type == \"post\" && n > 1]",
	"*[_id == \"d\"]", /* the (_id, d) bucket */
	"*[_type == \"post\" && n > 2]",
	"*[n > 0]", /* scan */
	"*[n > 1]",
};
#define NORDER (sizeof(order_q) / sizeof(order_q[0]))

/* The order of the calls of the last match, as indexes into order_q. */
static const char *
order_of(subs *s, rec *r)
{
	static char buf[64];
	size_t used = 0;

	match(s, r, "production", "d", "post",
		  "{\"_id\":\"d\",\"_type\":\"post\",\"n\":5}");
	buf[0] = '\0';
	for (size_t i = 0; i < r->ncalls; i++)
		for (size_t k = 0; k < NORDER; k++)
			if (!strcmp(r->calls[i].query, order_q[k]))
				used += snprintf(buf + used, sizeof(buf) - used, "%s%zu",
								 used ? " " : "", k);
	return buf;
}

static void
test_match_order(void)
{
	subs *s = new_subs(NULL, 0);
	rec r = {0};

	for (size_t k = 0; k < NORDER; k++)
		CHECK_INT(sub(s, C(k), "production", order_q[k], NULL), SUBS_OK);
	CHECK_STR(order_of(s, &r), "0 1 3 2 4 5");

	/* from the middle of a bucket, from the head of the scan list */
	unsub(s, C(1), order_q[1]);
	unsub(s, C(4), order_q[4]);
	CHECK_STR(order_of(s, &r), "0 3 2 5");
	CHECK_INT(sub(s, C(1), "production", order_q[1], NULL), SUBS_OK);
	CHECK_INT(sub(s, C(4), "production", order_q[4], NULL), SUBS_OK);
	CHECK_STR(order_of(s, &r), "0 3 1 2 5 4");

	/* a second connection joins its group where it is */
	CHECK_INT(sub(s, C(10), "production", order_q[3], NULL), SUBS_OK);
	CHECK_STR(order_of(s, &r), "0 3 1 2 5 4");

	/* the _type attribute empties, then comes back after _id */
	unsub(s, C(0), order_q[0]);
	unsub(s, C(1), order_q[1]);
	subs_drop_connection(s, C(3));
	subs_drop_connection(s, C(10));
	CHECK_STR(order_of(s, &r), "2 5 4");
	CHECK_INT(sub(s, C(0), "production", order_q[0], NULL), SUBS_OK);
	CHECK_STR(order_of(s, &r), "2 0 5 4");

	rec_reset(&r);
	subs_free(s);
}

int
main(void)
{
	test_basic();
	test_resubscribe_replaces_params();
	test_unsubscribe();
	test_dataset_isolation();
	test_type_index();
	test_equality_index();
	test_match_order();
	test_needs_document();
	test_one_evaluation_per_group();
	test_drop_connection();
	test_limits();
	test_invalid();
	return unit_summary();
}
