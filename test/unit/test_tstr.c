/*
 * Unit tests of relay/tstr: a struct and its strings in one block.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tstr.h"
#include "unit.h"

/* The flexible array starts inside the struct's tail padding. */
typedef struct padded
{
	uint64_t a;
	char c;
	char s[];
} padded;

typedef struct pair
{
	void *p;
	const char *second;
	int n;
	char first[];
} pair;

/* A block, or the test binary stops: nothing can be checked without. */
static void *
must(void *p)
{
	if (!p)
	{
		fprintf(stderr, "tstr_alloc failed\n");
		exit(1);
	}
	return p;
}

static void
test_one_string(void)
{
	padded *x = must(TSTR_NEW(padded, s, "hello"));
	padded *e = must(TSTR_NEW(padded, s, ""));

	CHECK(offsetof(padded, s) < sizeof(padded));
	CHECK_STR(x->s, "hello");
	CHECK_INT(x->a, 0);
	CHECK_INT(x->c, 0);
	CHECK_STR(e->s, "");
	CHECK_INT(e->a, 0);
	free(x);
	free(e);

	/* a longer string than the struct */
	{
		char big[1000];
		padded *b;

		memset(big, 'x', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		b = must(TSTR_NEW(padded, s, big));
		CHECK_STR(b->s, big);
		CHECK_INT(b->a, 0);
		free(b);
	}
}

static void
test_two_strings(void)
{
	char *copies[2] = {NULL, NULL};
	const char *src = "user-1";
	pair *x =
		must(TSTR_ALLOC(pair, first, copies, tstr_of(src), tstr_of("Alice")));

	CHECK(copies[0] == x->first);
	CHECK(copies[1] == x->first + strlen(src) + 1);
	CHECK(copies[0] != src);
	CHECK_STR(copies[0], "user-1");
	CHECK_STR(copies[1], "Alice");
	CHECK(x->p == NULL && x->second == NULL && x->n == 0);
	free(x);

	/* empty strings still take their NUL */
	x = must(TSTR_ALLOC(pair, first, copies, tstr_of(""), tstr_of("")));
	CHECK(copies[0] == x->first && copies[1] == x->first + 1);
	CHECK_STR(copies[0], "");
	CHECK_STR(copies[1], "");
	free(x);
}

static void
test_counted(void)
{
	/* lengths, not NULs, delimit the sources */
	const char text[] = {'a', 'b', 'c', 'd', 'e', 'f'};
	char *copies[3];
	pair *x = must(TSTR_ALLOC(pair, first, copies, ((tstr){text, 3}),
							  ((tstr){text + 3, 3}), ((tstr){"zzz", 0})));

	CHECK_STR(x->first, "abc");
	CHECK_STR(copies[1], "def");
	CHECK_STR(copies[2], "");
	CHECK(copies[2] == x->first + 8);
	free(x);

	/* embedded NULs are copied as they are */
	x = must(TSTR_ALLOC(pair, first, NULL, ((tstr){"a\0b", 3})));
	CHECK(memcmp(x->first, "a\0b", 4) == 0);
	free(x);
}

static void
test_limits(void)
{
	tstr huge = {"", SIZE_MAX - 4};
	tstr two[2] = {{"", SIZE_MAX / 2}, {"", SIZE_MAX / 2}};

	/* sizes that do not add up fail without allocating */
	CHECK(tstr_alloc(sizeof(pair), offsetof(pair, first), &huge, 1, NULL) ==
		  NULL);
	CHECK(tstr_alloc(sizeof(pair), offsetof(pair, first), two, 2, NULL) ==
		  NULL);
	/* no strings: just the zeroed struct */
	{
		pair *x = must(
			tstr_alloc(sizeof(pair), offsetof(pair, first), NULL, 0, NULL));

		CHECK(x->p == NULL && x->n == 0);
		free(x);
	}
}

int
main(void)
{
	test_one_string();
	test_two_strings();
	test_counted();
	test_limits();
	return unit_summary();
}
