/*
 * Unit tests of relay/htab: the table (insert, lookup, remove, growth and
 * shrink), its iterator and teardown, and the hash functions.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "htab.h"
#include "unit.h"

typedef struct item
{
	hnode hn; /* must be first */
	int key;
	int seen;
} item;

static const uint8_t key16[16] = {0, 1, 2,	3,	4,	5,	6,	7,
								  8, 9, 10, 11, 12, 13, 14, 15};

static uint64_t
key_hash(int key)
{
	return htab_siphash(key16, &key, sizeof(key));
}

static item *
lookup(const htab *t, int key, uint64_t hash)
{
	for (hnode *e = htab_first(t, hash); e; e = e->next)
		if (e->hash == hash && ((item *) e)->key == key)
			return (item *) e;
	return NULL;
}

static size_t
buckets(const htab *t)
{
	return t->mask + 1;
}

/* Every entry once: the count, and each item's mark, say so. */
static size_t
walk(const htab *t)
{
	htab_iter it;
	size_t n = 0;

	for (hnode *e = htab_iter_first(&it, t); e; e = htab_iter_next(&it))
	{
		((item *) e)->seen++;
		n++;
	}
	return n;
}

static void
test_grow_and_shrink(void)
{
	enum
	{
		N = 10000
	};
	item *v = calloc(N, sizeof(*v));
	htab t;
	int bad = 0;

	CHECK_INT(htab_init(&t), 0);
	CHECK_INT(buckets(&t), 16);
	CHECK(lookup(&t, 1, key_hash(1)) == NULL);
	for (int i = 0; i < N; i++)
	{
		v[i].key = i;
		htab_insert(&t, &v[i].hn, key_hash(i));
		/* never more entries than buckets */
		bad += t.n != (size_t) i + 1 || t.n > buckets(&t);
	}
	CHECK_INT(bad, 0);
	CHECK_INT(t.n, N);
	CHECK_INT(buckets(&t), 16384);

	bad = 0;
	for (int i = 0; i < N; i++)
		bad +=
			lookup(&t, i, key_hash(i)) != &v[i] || v[i].hn.hash != key_hash(i);
	CHECK_INT(bad, 0);
	CHECK(lookup(&t, N, key_hash(N)) == NULL);
	CHECK(lookup(&t, -1, key_hash(-1)) == NULL);

	/* remove the even keys: the odd ones stay findable */
	for (int i = 0; i < N; i += 2)
		htab_remove(&t, &v[i].hn);
	CHECK_INT(t.n, N / 2);
	bad = 0;
	for (int i = 0; i < N; i++)
		bad += lookup(&t, i, key_hash(i)) != (i % 2 ? &v[i] : NULL);
	CHECK_INT(bad, 0);
	/* 5000 entries in 16384 buckets is above the shrink threshold (1/8) */
	CHECK_INT(buckets(&t), 16384);

	/* remove the rest: the table shrinks back to its minimum */
	for (int i = 1; i < N; i += 2)
		htab_remove(&t, &v[i].hn);
	CHECK_INT(t.n, 0);
	CHECK_INT(buckets(&t), 16);
	CHECK_INT(walk(&t), 0);

	/* and works again */
	htab_insert(&t, &v[7].hn, key_hash(7));
	CHECK(lookup(&t, 7, key_hash(7)) == &v[7]);
	htab_remove(&t, &v[7].hn);
	CHECK(lookup(&t, 7, key_hash(7)) == NULL);
	htab_free(&t);
	CHECK(t.b == NULL);
	free(v);
}

/* Entries of one hash share a chain; removing from its middle and ends. */
static void
test_collisions(void)
{
	item v[6];
	htab t;

	htab_init(&t);
	for (int i = 0; i < 6; i++)
	{
		v[i].key = i;
		htab_insert(&t, &v[i].hn, 42);
	}
	for (int i = 0; i < 6; i++)
		CHECK(lookup(&t, i, 42) == &v[i]);
	htab_remove(&t, &v[2].hn); /* middle */
	htab_remove(&t, &v[5].hn); /* head: inserted last */
	htab_remove(&t, &v[0].hn); /* tail */
	CHECK_INT(t.n, 3);
	CHECK(lookup(&t, 2, 42) == NULL);
	CHECK(lookup(&t, 5, 42) == NULL);
	CHECK(lookup(&t, 0, 42) == NULL);
	CHECK(lookup(&t, 1, 42) == &v[1]);
	CHECK(lookup(&t, 3, 42) == &v[3]);
	CHECK(lookup(&t, 4, 42) == &v[4]);
	/* another hash in the same bucket is not confused with them */
	CHECK(lookup(&t, 1, 42 + 16) == NULL);
	htab_free(&t);
}

static void
test_iterator(void)
{
	item v[1000];
	htab t, zero = {0};
	htab_iter it;
	int bad = 0;

	CHECK(htab_iter_first(&it, &zero) == NULL);
	CHECK(htab_iter_next(&it) == NULL);

	htab_init(&t);
	CHECK(htab_iter_first(&it, &t) == NULL);
	CHECK(htab_iter_next(&it) == NULL);

	/* at every size, including collisions and grown tables */
	for (int n = 1; n <= 1000; n = n * 3 + 1)
	{
		for (int i = 0; i < n; i++)
		{
			v[i].key = i;
			v[i].seen = 0;
			htab_insert(&t, &v[i].hn, i % 7 == 0 ? 7 : key_hash(i));
		}
		bad += walk(&t) != (size_t) n;
		for (int i = 0; i < n; i++)
			bad += v[i].seen != 1;
		for (int i = 0; i < n; i++)
			htab_remove(&t, &v[i].hn);
	}
	CHECK_INT(bad, 0);

	/* a walk after removals sees what is left, once */
	for (int i = 0; i < 100; i++)
	{
		v[i].key = i;
		v[i].seen = 0;
		htab_insert(&t, &v[i].hn, key_hash(i));
	}
	for (int i = 0; i < 100; i += 3)
		htab_remove(&t, &v[i].hn);
	CHECK_INT(walk(&t), 100 - 34);
	bad = 0;
	for (int i = 0; i < 100; i++)
		bad += v[i].seen != (i % 3 ? 1 : 0);
	CHECK_INT(bad, 0);
	/* past the end stays there */
	for (hnode *e = htab_iter_first(&it, &t); e; e = htab_iter_next(&it))
		;
	CHECK(htab_iter_next(&it) == NULL);
	CHECK(htab_iter_next(&it) == NULL);
	htab_free(&t);
}

static void
free_item(hnode *e, void *arg)
{
	(*(int *) arg)++;
	free(e);
}

static void
test_free_entries(void)
{
	htab t, zero = {0};
	int calls = 0;

	/* a table that was never initialised (or whose init failed) */
	htab_free_entries(&zero, free_item, &calls);
	CHECK_INT(calls, 0);
	htab_free(&zero);

	htab_init(&t);
	htab_free_entries(&t, free_item, &calls);
	CHECK_INT(calls, 0);
	for (int i = 0; i < 500; i++)
	{
		item *x = calloc(1, sizeof(*x));

		x->key = i;
		htab_insert(&t, &x->hn, i < 250 ? key_hash(i) : 3);
	}
	htab_free_entries(&t, free_item, &calls);
	CHECK_INT(calls, 500);
	CHECK_INT(t.n, 0);
	CHECK(t.b != NULL);
	CHECK(htab_first(&t, 3) == NULL);
	{
		htab_iter it;

		CHECK(htab_iter_first(&it, &t) == NULL);
	}
	/* still usable: the bucket array was kept */
	{
		item *x = calloc(1, sizeof(*x));

		x->key = 9;
		htab_insert(&t, &x->hn, key_hash(9));
		CHECK(lookup(&t, 9, key_hash(9)) == x);
	}
	calls = 0;
	htab_free_entries(&t, free_item, &calls);
	CHECK_INT(calls, 1);
	htab_free(&t);
}

static void
test_hashes(void)
{
	uint8_t msg[64];
	int a, b;

	for (int i = 0; i < 64; i++)
		msg[i] = (uint8_t) i;
	/* SipHash-2-4 reference vectors (key 00..0f, message 00..len-1) */
	CHECK(htab_siphash(key16, msg, 15) == UINT64_C(0xa129ca6149be45e5));
	CHECK(htab_siphash(key16, msg, 0) == UINT64_C(0x726fdb47dd0e0e31));
	CHECK(htab_siphash(key16, msg, 8) == UINT64_C(0x93f5f5799a932462));
	CHECK(htab_siphash(key16, msg, 63) == UINT64_C(0x958a324ceb064572));

	/* the key matters */
	{
		uint8_t other[16];

		memcpy(other, key16, 16);
		other[15] ^= 1;
		CHECK(htab_siphash(other, msg, 15) != htab_siphash(key16, msg, 15));
	}

	CHECK(htab_ptrhash(&a) == htab_ptrhash(&a));
	CHECK(htab_ptrhash(&a) != htab_ptrhash(&b));
}

int
main(void)
{
	test_grow_and_shrink();
	test_collisions();
	test_iterator();
	test_free_entries();
	test_hashes();
	return unit_summary();
}
