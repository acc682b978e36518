/*
 * Unit tests of relay/presence.
 *
 * 1. A script of operations, one per row, each with the diffs (or snapshot,
 *    or member list) it must produce, rendered as text.
 * 2. Random operations checked against a brute-force model.
 * 3. Scale: 15,000 connections on one document each, and churn.
 */
#include <stdint.h>
#include <stdlib.h>

#include "presence.h"
#include "unit.h"

static const uint8_t seed[16] = {1, 2,	3,	4,	5,	6,	7,	8,
								 9, 10, 11, 12, 13, 14, 15, 16};

/* Connection handles are opaque: any distinct addresses do. */
static char conns[16];
#define C(i) ((void *) &conns[i])

static void
render_diffs(presence_diffs d, char *buf, size_t size)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < d.n && used < size; i++)
		used +=
			snprintf(buf + used, size - used, "%s%c%s/%s/%s/%s", i ? " " : "",
					 d.v[i].kind == PRESENCE_JOINED ? '+' : '-', d.v[i].dataset,
					 d.v[i].document_id, d.v[i].user_id, d.v[i].user_name);
}

static void
render_snapshot(const presence *p, const char *ds, char *buf, size_t size)
{
	size_t used = 0;

	buf[0] = '\0';
	for (const presence_doc *d = presence_docs(p, ds); d && used < size;
		 d = presence_doc_next(d))
	{
		used += snprintf(buf + used, size - used, "%s%s[", used ? " " : "",
						 presence_doc_id(d));
		for (const presence_user *u = presence_doc_users(d); u && used < size;
			 u = presence_user_next(u))
			used += snprintf(buf + used, size - used, "%s%s:%s",
							 u == presence_doc_users(d) ? "" : ",",
							 presence_user_id(u), presence_user_name(u));
		if (used < size)
			used += snprintf(buf + used, size - used, "]");
	}
}

static void
render_members(const presence *p, const char *ds, const char *doc, char *buf,
			   size_t size)
{
	size_t used = 0;

	buf[0] = '\0';
	for (const presence_member *m = presence_members(p, ds, doc);
		 m && used < size; m = presence_member_next(m))
		used += snprintf(buf + used, size - used, "%sc%d", used ? " " : "",
						 (int) ((char *) presence_member_conn(m) - conns));
}

/*
 * op: J join, L leave, D drop connection, S snapshot of ds, M members of
 * (ds, doc), N number of docs of conn.  want: the rendering, or "LIMIT".
 * The presence under test allows 3 documents per connection.
 */
static const struct step
{
	char op;
	int conn;
	const char *ds, *doc, *user, *name;
	const char *want;
} script[] = {
	{'S', 0, "prod", NULL, NULL, NULL, ""},
	{'M', 0, "prod", "d1", NULL, NULL, ""},
	/* first connection of a user announces, the second tab does not */
	{'J', 1, "prod", "d1", "u1", "Alice", "+prod/d1/u1/Alice"},
	{'J', 2, "prod", "d1", "u1", "Alice (tab 2)", ""},
	{'J', 1, "prod", "d1", "u1", "Alice", ""}, /* twice: harmless */
	{'N', 1, NULL, NULL, NULL, NULL, "1"},
	{'S', 0, "prod", NULL, NULL, NULL, "d1[u1:Alice]"},
	{'M', 0, "prod", "d1", NULL, NULL, "c2 c1"},
	/* another user, another document, another dataset with the same id */
	{'J', 3, "prod", "d1", "u2", "Bob", "+prod/d1/u2/Bob"},
	{'J', 3, "prod", "d2", "u2", "Bob", "+prod/d2/u2/Bob"},
	{'J', 4, "staging", "d1", "u3", "Carol", "+staging/d1/u3/Carol"},
	{'S', 0, "prod", NULL, NULL, NULL, "d1[u1:Alice,u2:Bob] d2[u2:Bob]"},
	{'S', 0, "staging", NULL, NULL, NULL, "d1[u3:Carol]"},
	{'S', 0, "Prod", NULL, NULL, NULL, ""}, /* names are exact */
	{'M', 0, "staging", "d1", NULL, NULL, "c4"},
	/* leaving what was not joined says nothing */
	{'L', 1, "prod", "d2", NULL, NULL, ""},
	{'L', 1, "staging", "d1", NULL, NULL, ""},
	{'L', 9, "prod", "d1", NULL, NULL, ""},
	{'L', 1, "nowhere", "d1", NULL, NULL, ""},
	/* the last tab leaving announces */
	{'L', 1, "prod", "d1", NULL, NULL, ""},
	{'M', 0, "prod", "d1", NULL, NULL, "c3 c2"},
	{'L', 2, "prod", "d1", NULL, NULL, "-prod/d1/u1/Alice"},
	{'L', 2, "prod", "d1", NULL, NULL, ""},
	{'S', 0, "prod", NULL, NULL, NULL, "d1[u2:Bob] d2[u2:Bob]"},
	/* a document that empties and comes back goes last */
	{'J', 1, "prod", "d0", "u1", "Alice", "+prod/d0/u1/Alice"},
	{'L', 3, "prod", "d1", NULL, NULL, "-prod/d1/u2/Bob"},
	{'J', 2, "prod", "d1", "u1", "Alice 2", "+prod/d1/u1/Alice 2"},
	{'S', 0, "prod", NULL, NULL, NULL,
	 "d2[u2:Bob] d0[u1:Alice] d1[u1:Alice 2]"},
	/* per-connection limit (3), re-joining at the limit is fine */
	{'J', 5, "prod", "a", "u5", "Eve", "+prod/a/u5/Eve"},
	{'J', 5, "prod", "b", "u5", "Eve", "+prod/b/u5/Eve"},
	{'J', 5, "staging", "c", "u5", "Eve", "+staging/c/u5/Eve"},
	{'J', 5, "prod", "x", "u5", "Eve", "LIMIT"},
	{'J', 5, "prod", "b", "u5", "Eve", ""},
	{'N', 5, NULL, NULL, NULL, NULL, "3"},
	{'M', 0, "prod", "x", NULL, NULL, ""},
	{'L', 5, "prod", "a", NULL, NULL, "-prod/a/u5/Eve"},
	{'J', 5, "prod", "x", "u5", "Eve", "+prod/x/u5/Eve"},
	/* dropping a connection leaves everything, newest first */
	{'D', 5, NULL, NULL, NULL, NULL,
	 "-prod/x/u5/Eve -staging/c/u5/Eve -prod/b/u5/Eve"},
	{'N', 5, NULL, NULL, NULL, NULL, "0"},
	{'D', 5, NULL, NULL, NULL, NULL, ""},
	/* a user still present through another tab is not announced */
	{'J', 6, "prod", "d2", "u2", "Bob", ""},
	{'D', 3, NULL, NULL, NULL, NULL, ""},
	{'D', 6, NULL, NULL, NULL, NULL, "-prod/d2/u2/Bob"},
	{'D', 4, NULL, NULL, NULL, NULL, "-staging/d1/u3/Carol"},
	{'S', 0, "staging", NULL, NULL, NULL, ""},
	{'D', 1, NULL, NULL, NULL, NULL, "-prod/d0/u1/Alice"},
	{'D', 2, NULL, NULL, NULL, NULL, "-prod/d1/u1/Alice 2"},
	{'S', 0, "prod", NULL, NULL, NULL, ""},
	/* everything is gone: the same ids work again from scratch */
	{'J', 1, "prod", "d1", "u1", "Alice", "+prod/d1/u1/Alice"},
	/* a NULL name falls back to the user id */
	{'J', 2, "prod", "d1", "u7", NULL, "+prod/d1/u7/u7"},
	/* strings are exact: no trimming or case folding, long ids fine */
	{'J', 3, "prod", "D1", "u1", "Alice", "+prod/D1/u1/Alice"},
	{'J', 3, "prod", "", "u1", "Alice", "+prod//u1/Alice"},
};

/*
 * Orders under removal from the middle of every list: documents keep the
 * order of their first user, users their join order, members are newest
 * first; whatever leaves and comes back goes to its list's end.
 */
static const struct step orders[] = {
	{'J', 1, "prod", "d1", "u1", "A", "+prod/d1/u1/A"},
	{'J', 2, "prod", "d1", "u2", "B", "+prod/d1/u2/B"},
	{'J', 3, "prod", "d1", "u3", "C", "+prod/d1/u3/C"},
	{'J', 1, "prod", "d2", "u1", "A", "+prod/d2/u1/A"},
	{'J', 1, "prod", "d3", "u1", "A", "+prod/d3/u1/A"},
	{'S', 0, "prod", NULL, NULL, NULL, "d1[u1:A,u2:B,u3:C] d2[u1:A] d3[u1:A]"},
	{'M', 0, "prod", "d1", NULL, NULL, "c3 c2 c1"},
	/* the middle user and member go */
	{'L', 2, "prod", "d1", NULL, NULL, "-prod/d1/u2/B"},
	{'S', 0, "prod", NULL, NULL, NULL, "d1[u1:A,u3:C] d2[u1:A] d3[u1:A]"},
	{'M', 0, "prod", "d1", NULL, NULL, "c3 c1"},
	/* and come back last (users) / first (members) */
	{'J', 2, "prod", "d1", "u2", "B", "+prod/d1/u2/B"},
	{'S', 0, "prod", NULL, NULL, NULL, "d1[u1:A,u3:C,u2:B] d2[u1:A] d3[u1:A]"},
	{'M', 0, "prod", "d1", NULL, NULL, "c2 c3 c1"},
	/* the first and last users; a second tab of u3 keeps it present */
	{'J', 4, "prod", "d1", "u3", "C", ""},
	{'L', 1, "prod", "d1", NULL, NULL, "-prod/d1/u1/A"},
	{'L', 2, "prod", "d1", NULL, NULL, "-prod/d1/u2/B"},
	{'M', 0, "prod", "d1", NULL, NULL, "c4 c3"},
	{'L', 3, "prod", "d1", NULL, NULL, ""},
	{'S', 0, "prod", NULL, NULL, NULL, "d1[u3:C] d2[u1:A] d3[u1:A]"},
	/* the middle document empties and comes back last */
	{'L', 1, "prod", "d2", NULL, NULL, "-prod/d2/u1/A"},
	{'S', 0, "prod", NULL, NULL, NULL, "d1[u3:C] d3[u1:A]"},
	{'J', 2, "prod", "d2", "u2", "B", "+prod/d2/u2/B"},
	{'S', 0, "prod", NULL, NULL, NULL, "d1[u3:C] d3[u1:A] d2[u2:B]"},
	/* the first document empties */
	{'D', 4, NULL, NULL, NULL, NULL, "-prod/d1/u3/C"},
	{'S', 0, "prod", NULL, NULL, NULL, "d3[u1:A] d2[u2:B]"},
	{'D', 1, NULL, NULL, NULL, NULL, "-prod/d3/u1/A"},
	{'D', 2, NULL, NULL, NULL, NULL, "-prod/d2/u2/B"},
	{'S', 0, "prod", NULL, NULL, NULL, ""},
};

/* Run the steps against a presence allowing 3 documents per connection. */
static void
run_script(const struct step *steps, size_t nsteps)
{
	presence *p = presence_new(3, seed);
	char buf[512];

	for (size_t i = 0; i < nsteps; i++)
	{
		const struct step *s = &steps[i];
		presence_diffs d;

		switch (s->op)
		{
			case 'J':
				if (presence_join(p, C(s->conn), s->ds, s->doc, s->user,
								  s->name, &d) == PRESENCE_LIMIT)
				{
					snprintf(buf, sizeof(buf), "LIMIT");
					CHECK_INT(d.n, 0);
				}
				else
					render_diffs(d, buf, sizeof(buf));
				break;
			case 'L':
				presence_leave(p, C(s->conn), s->ds, s->doc, &d);
				render_diffs(d, buf, sizeof(buf));
				break;
			case 'D':
				presence_drop_connection(p, C(s->conn), &d);
				render_diffs(d, buf, sizeof(buf));
				break;
			case 'S':
				render_snapshot(p, s->ds, buf, sizeof(buf));
				break;
			case 'M':
				render_members(p, s->ds, s->doc, buf, sizeof(buf));
				break;
			case 'N':
				snprintf(buf, sizeof(buf), "%zu",
						 presence_conn_docs(p, C(s->conn)));
				break;
		}
		CHECK_MSG(!strcmp(buf, s->want),
				  "step %zu (%c): got \"%s\" want \"%s\"", i, s->op, buf,
				  s->want);
	}
	presence_free(p);
}

static void
test_script(void)
{
	run_script(script, sizeof(script) / sizeof(script[0]));
	run_script(orders, sizeof(orders) / sizeof(orders[0]));
	presence_free(NULL);
}

/*
 * Random joins, leaves and drops over a small universe (conn c is user
 * c % 5), compared with a model that is just a membership matrix.
 */
#define RC	 12
#define RDS	 2
#define RDOC 4
#define RMAX 3

static unsigned long rng = 12345;

static unsigned
rnd(unsigned n)
{
	rng = rng * 6364136223846793005UL + 1442695040888963407UL;
	return (unsigned) (rng >> 33) % n;
}

static char model[RC][RDS][RDOC];

static int
model_user_present(int user, int ds, int doc)
{
	for (int c = 0; c < RC; c++)
		if (c % 5 == user && model[c][ds][doc])
			return 1;
	return 0;
}

static int
model_conn_docs(int c)
{
	int n = 0;

	for (int ds = 0; ds < RDS; ds++)
		for (int doc = 0; doc < RDOC; doc++)
			n += model[c][ds][doc];
	return n;
}

static void
test_random(void)
{
	presence *p = presence_new(RMAX, seed);
	const char *dsn[RDS] = {"a", "b"}, *docn[RDOC] = {"w", "x", "y", "z"};
	const char *usern[5] = {"u0", "u1", "u2", "u3", "u4"};
	int bad = 0;

	for (int step = 0; step < 20000 && bad < 5; step++)
	{
		int c = rnd(RC), ds = rnd(RDS), doc = rnd(RDOC), op = rnd(10);
		int user = c % 5;
		presence_diffs d;

		if (op < 5)
		{
			int was_member = model[c][ds][doc];
			int was_present = model_user_present(user, ds, doc);
			int full = model_conn_docs(c) >= RMAX;
			presence_status st = presence_join(p, C(c), dsn[ds], docn[doc],
											   usern[user], usern[user], &d);

			if (!was_member && full)
				bad += st != PRESENCE_LIMIT || d.n != 0;
			else
			{
				model[c][ds][doc] = 1;
				bad += st != PRESENCE_OK || d.n != (size_t) !was_present;
				if (d.n)
					bad += d.v[0].kind != PRESENCE_JOINED ||
						   strcmp(d.v[0].user_id, usern[user]) ||
						   strcmp(d.v[0].document_id, docn[doc]) ||
						   strcmp(d.v[0].dataset, dsn[ds]);
			}
		}
		else if (op < 9)
		{
			int was_member = model[c][ds][doc];

			model[c][ds][doc] = 0;
			presence_leave(p, C(c), dsn[ds], docn[doc], &d);
			bad += d.n !=
				   (size_t) (was_member && !model_user_present(user, ds, doc));
		}
		else
		{
			size_t want = 0;

			for (int s = 0; s < RDS; s++)
				for (int o = 0; o < RDOC; o++)
					if (model[c][s][o])
					{
						model[c][s][o] = 0;
						want += !model_user_present(user, s, o);
					}
			presence_drop_connection(p, C(c), &d);
			bad += d.n != want;
			for (size_t i = 0; i < d.n; i++)
				bad += d.v[i].kind != PRESENCE_LEFT ||
					   strcmp(d.v[i].user_id, usern[user]);
		}

		/* The whole observable state must match the model. */
		for (int s = 0; s < RDS; s++)
		{
			int ndocs = 0;

			for (int o = 0; o < RDOC; o++)
			{
				int nmembers = 0, want_members = 0;

				for (const presence_member *m =
						 presence_members(p, dsn[s], docn[o]);
					 m; m = presence_member_next(m))
					nmembers++;
				for (int k = 0; k < RC; k++)
					want_members += model[k][s][o];
				bad += nmembers != want_members;
				ndocs += want_members > 0;
			}
			for (const presence_doc *pd = presence_docs(p, dsn[s]); pd;
				 pd = presence_doc_next(pd))
			{
				int o = presence_doc_id(pd)[0] - 'w';
				int nusers = 0, want_users = 0;

				for (const presence_user *u = presence_doc_users(pd); u;
					 u = presence_user_next(u))
				{
					nusers++;
					bad +=
						!model_user_present(presence_user_id(u)[1] - '0', s, o);
				}
				for (int k = 0; k < 5; k++)
					want_users += model_user_present(k, s, o);
				bad += nusers != want_users;
				ndocs--;
			}
			bad += ndocs != 0;
		}
		for (int k = 0; k < RC; k++)
			bad += presence_conn_docs(p, C(k)) != (size_t) model_conn_docs(k);
		if (bad)
			fprintf(stderr, "random step %d diverged from the model\n", step);
	}
	CHECK_INT(bad, 0);
	presence_free(p); /* with state left in it: asan/valgrind check */
}

/* 15,000 connections on one document each, 5,000 on a shared one, churn. */
static void
test_scale(void)
{
	enum
	{
		N = 15000
	};
	presence *p = presence_new(0, seed);
	char *handles = malloc(N);
	char id[32], user[32];
	presence_diffs d;
	size_t joined = 0, left = 0, members = 0, docs = 0;

	for (int i = 0; i < N; i++)
	{
		snprintf(id, sizeof(id), "doc-%d", i);
		snprintf(user, sizeof(user), "user-%d", i);
		if (presence_join(p, handles + i, "prod", id, user, user, &d) ==
				PRESENCE_OK &&
			d.n == 1)
			joined++;
		/* every third connection also edits the shared document */
		if (i % 3 == 0 && presence_join(p, handles + i, "prod", "shared", user,
										user, &d) == PRESENCE_OK)
			joined += d.n;
	}
	CHECK_INT(joined, N + N / 3);
	for (const presence_member *m = presence_members(p, "prod", "shared"); m;
		 m = presence_member_next(m))
		members++;
	CHECK_INT(members, N / 3);
	for (const presence_doc *pd = presence_docs(p, "prod"); pd;
		 pd = presence_doc_next(pd))
		docs++;
	CHECK_INT(docs, N + 1);

	/* churn: 5,000 connections leave and rejoin 20 times */
	for (int round = 0; round < 20; round++)
		for (int i = 0; i < 5000; i++)
		{
			snprintf(id, sizeof(id), "doc-%d", i);
			snprintf(user, sizeof(user), "user-%d", i);
			presence_leave(p, handles + i, "prod", id, &d);
			left += d.n;
			presence_join(p, handles + i, "prod", id, user, user, &d);
		}
	CHECK_INT(left, 20 * 5000);

	left = 0;
	for (int i = 0; i < N; i++)
	{
		presence_drop_connection(p, handles + i, &d);
		left += d.n;
	}
	CHECK_INT(left, N + N / 3);
	CHECK(presence_docs(p, "prod") == NULL);
	presence_free(p);
	free(handles);
}

int
main(void)
{
	test_script();
	test_random();
	test_scale();
	return unit_summary();
}
