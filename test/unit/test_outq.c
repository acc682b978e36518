/*
 * Unit tests of relay/outq: message lifetime, FIFO order across ring growth
 * and wrap-around, the byte limit, and the idle-memory behaviour.
 */
#include <stdlib.h>

#include "outq.h"
#include "unit.h"

static outmsg *
msg(const char *s)
{
	outmsg *m = outmsg_from(s, strlen(s));

	if (!m)
		abort();
	return m;
}

static void
test_outmsg(void)
{
	outmsg *m = msg("hello");
	outmsg *e = outmsg_new(0);

	CHECK_INT(outmsg_len(m), 5);
	CHECK(memcmp(outmsg_payload(m), "hello", 5) == 0);
	CHECK_STR((const char *) outmsg_payload(m), "hello");
	CHECK_INT(outmsg_refs(m), 1);
	CHECK(outmsg_ref(m) == m);
	CHECK_INT(outmsg_refs(m), 2);
	outmsg_unref(m);
	CHECK_INT(outmsg_refs(m), 1);

	/* The headroom is writable scratch space before the payload. */
	memset(outmsg_payload(m) - OUTMSG_HEADROOM, 0xAB, OUTMSG_HEADROOM);
	CHECK_STR((const char *) outmsg_payload(m), "hello");
	outmsg_unref(m);

	if (!e)
		abort();
	CHECK_INT(outmsg_len(e), 0);
	CHECK_STR((const char *) outmsg_payload(e), "");
	outmsg_unref(e);
	outmsg_unref(NULL);

	CHECK(outmsg_new((size_t) OUTMSG_MAX_LEN + 1) == NULL);
}

/* Push 0..n-1 while popping every `every`-th time, check strict FIFO. */
static void
test_fifo(void)
{
	outq q;
	char buf[16];
	int pushed = 0, popped = 0, ok = 1;

	outq_init(&q, 1 << 20);
	CHECK(outq_peek(&q) == NULL);
	CHECK(outq_pop(&q) == NULL);
	CHECK(q.ring == NULL); /* nothing allocated before the first push */

	/* Interleave so the ring wraps, then grows while wrapped. */
	for (int round = 0; round < 200; round++)
	{
		int npush = (round % 7) + 1, npop = round % 5;

		for (int i = 0; i < npush; i++)
		{
			outmsg *m;

			snprintf(buf, sizeof(buf), "m%d", pushed++);
			m = msg(buf);
			if (outq_push(&q, m) != OUTQ_OK)
				ok = 0;
			outmsg_unref(m); /* the queue holds its own reference */
		}
		for (int i = 0; i < npop && outq_count(&q); i++)
		{
			outmsg *m = outq_pop(&q);

			snprintf(buf, sizeof(buf), "m%d", popped++);
			if (strcmp((const char *) outmsg_payload(m), buf) != 0)
				ok = 0;
			if (outmsg_refs(m) != 1)
				ok = 0;
			outmsg_unref(m);
		}
	}
	CHECK_MSG(ok, "FIFO order or refcounts broken");
	CHECK_INT(outq_count(&q), pushed - popped);
	CHECK(outq_peek(&q) != NULL);
	snprintf(buf, sizeof(buf), "m%d", popped);
	CHECK_STR((const char *) outmsg_payload(outq_peek(&q)), buf);

	/* Drain: the grown ring is given back. */
	while (outq_count(&q))
		outmsg_unref(outq_pop(&q));
	CHECK_INT(outq_bytes(&q), 0);
	CHECK(q.ring == NULL);
	CHECK_INT(q.cap, 0);
	outq_clear(&q);
}

/* A small ring is kept when drained: steady traffic allocates nothing. */
static void
test_keep_small_ring(void)
{
	outq q;
	outmsg *m = msg("x");
	outmsg **ring;
	int same = 1;

	outq_init(&q, 100);
	CHECK_INT(outq_push(&q, m), OUTQ_OK);
	ring = q.ring;
	outmsg_unref(outq_pop(&q));
	for (int i = 0; i < 100; i++)
	{
		if (outq_push(&q, m) != OUTQ_OK || q.ring != ring)
			same = 0;
		outmsg_unref(outq_pop(&q));
	}
	CHECK_MSG(same, "ring reallocated in steady state");
	CHECK(q.cap <= OUTQ_KEEP_SLOTS);
	outq_clear(&q);
	CHECK(q.ring == NULL);
	CHECK_INT(outmsg_refs(m), 1);
	outmsg_unref(m);
}

/* One message shared by many queues: one reference per queue. */
static void
test_shared(void)
{
	outq qs[50];
	outmsg *m = msg("{\"type\":\"mutation\"}");

	for (int i = 0; i < 50; i++)
	{
		outq_init(&qs[i], 1000);
		CHECK_INT(outq_push(&qs[i], m), OUTQ_OK);
	}
	CHECK_INT(outmsg_refs(m), 51);
	outmsg_unref(m); /* the encoder's reference */
	CHECK_INT(outmsg_refs(outq_peek(&qs[0])), 50);
	for (int i = 0; i < 50; i++)
		outq_clear(&qs[i]); /* the last clear frees it (checked by asan) */
}

static const struct limit_case
{
	size_t limit;
	int n;
	size_t sizes[6];
	int want[6]; /* outq_result per push, in order */
} limit_cases[] = {
	/* exactly reaching the limit is fine, one byte more is not */
	{10, 3, {4, 6, 1}, {OUTQ_OK, OUTQ_OK, OUTQ_OVERFLOW}},
	/* a refused push leaves room for a smaller one */
	{10, 4, {4, 7, 6, 0}, {OUTQ_OK, OUTQ_OVERFLOW, OUTQ_OK, OUTQ_OK}},
	/* a message larger than the limit is refused even on an empty queue */
	{10, 2, {11, 10}, {OUTQ_OVERFLOW, OUTQ_OK}},
	/* limit 0: only empty messages */
	{0, 2, {0, 1}, {OUTQ_OK, OUTQ_OVERFLOW}},
	/* huge limit does not overflow the arithmetic */
	{(size_t) -1, 2, {5, 5}, {OUTQ_OK, OUTQ_OK}},
};

static void
test_limits(void)
{
	for (size_t c = 0; c < sizeof(limit_cases) / sizeof(limit_cases[0]); c++)
	{
		const struct limit_case *lc = &limit_cases[c];
		outq q;
		size_t expect_bytes = 0, expect_count = 0;

		outq_init(&q, lc->limit);
		for (int i = 0; i < lc->n; i++)
		{
			outmsg *m = outmsg_new(lc->sizes[i]);
			outq_result r;

			memset(outmsg_payload(m), 'a', lc->sizes[i]);
			r = outq_push(&q, m);
			CHECK_MSG(r == (outq_result) lc->want[i],
					  "case %zu push %d: got %d want %d", c, i, r, lc->want[i]);
			if (r == OUTQ_OK)
			{
				expect_bytes += lc->sizes[i];
				expect_count++;
				CHECK_INT(outmsg_refs(m), 2);
			}
			else
				CHECK_INT(outmsg_refs(m), 1);
			outmsg_unref(m);
		}
		CHECK_INT(outq_bytes(&q), expect_bytes);
		CHECK_INT(outq_count(&q), expect_count);
		outq_clear(&q);
		CHECK_INT(outq_bytes(&q), 0);
		CHECK_INT(outq_count(&q), 0);
		/* still usable after clear */
		if (lc->limit)
		{
			outmsg *m = msg("z");

			CHECK_INT(outq_push(&q, m), OUTQ_OK);
			outmsg_unref(m);
			outq_clear(&q);
		}
	}
}

int
main(void)
{
	test_outmsg();
	test_fifo();
	test_keep_small_ring();
	test_shared();
	test_limits();
	return unit_summary();
}
