/*
 * bench-subs: micro-benchmark of the subscription registry.
 *
 * Prints the cost of matching one event, of subscribing and of dropping
 * connections, for the shapes the design promises to keep cheap: 10,000
 * connections sharing one query, 10,000 connections each with its own
 * indexed query of another type, and a few unindexed (scan) queries.
 * Figures only, no assertions: timings depend on the machine.
 *
 *   make && build/bin/bench-subs
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "event.h"
#include "subs.h"

#define NCONN 10000

static char conns[2 * NCONN];

static double
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static void
must(subs_status st, const char *q)
{
	if (st != SUBS_OK)
	{
		fprintf(stderr, "bench-subs: subscribe %s failed (%d)\n", q, (int) st);
		exit(1);
	}
}

static size_t delivered;

static void
count(void *arg, const char *query, size_t query_len, void *const *cs, size_t n)
{
	delivered += n;
}

int
main(void)
{
	static const uint8_t seed[16] = "bench-subs-seed";
	subs *s = subs_new(NULL, 0, seed);
	const char *shared = "*[_type == \"post\"]";
	char q[128];
	double t0, t1;
	size_t evals = 0;
	int rounds = 100000;
	rt_event ev = {.position = 1,
				   .txid = 1,
				   .dataset = "production",
				   .document_id = "doc-1",
				   .document_type = "post",
				   .operation = "update",
				   .ts = "2025-01-15T12:00:00.000Z"};

	if (!s)
		return 1;
	t0 = now_ns();
	for (int i = 0; i < NCONN; i++)
		must(subs_subscribe(s, &conns[i], "production", shared, strlen(shared),
							NULL, NULL),
			 shared);
	t1 = now_ns();
	printf("subscribe, shared query:        %8.0f ns each\n",
		   (t1 - t0) / NCONN);

	t0 = now_ns();
	for (int i = 0; i < NCONN; i++)
	{
		snprintf(q, sizeof(q), "*[_type == \"t%d\" && n > %d]", i, i);
		must(subs_subscribe(s, &conns[NCONN + i], "production", q, strlen(q),
							NULL, NULL),
			 q);
	}
	t1 = now_ns();
	printf("subscribe, distinct queries:    %8.0f ns each\n",
		   (t1 - t0) / NCONN);
	for (int i = 0; i < 5; i++)
	{
		snprintf(q, sizeof(q), "*[_id == \"doc-%d\" || _type == \"x\"]", i);
		must(subs_subscribe(s, &conns[i], "production", q, strlen(q), NULL,
							NULL),
			 q);
	}

	t0 = now_ns();
	for (int i = 0; i < rounds; i++)
		evals += subs_match(s, &ev, NULL, count, NULL);
	t1 = now_ns();
	printf("match (%d conns on the type, %d other types, 5 scan): "
		   "%.0f ns/event, %.1f evaluations/event, %zu deliveries/event\n",
		   NCONN, NCONN, (t1 - t0) / rounds, (double) evals / rounds,
		   delivered / rounds);

	t0 = now_ns();
	for (int i = 0; i < NCONN; i++)
		subs_drop_connection(s, &conns[i]);
	t1 = now_ns();
	printf("drop_connection from a %d-member group: %.0f ns each\n", NCONN,
		   (t1 - t0) / NCONN);
	subs_free(s);
	return 0;
}
