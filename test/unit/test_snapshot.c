/*
 * Unit tests of relay/snapshot.c: pg_snapshot text and visibility, and the
 * set D.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "snapshot.h"
#include "unit.h"

/* Parse `text`, expecting success. */
static int
snap(const char *text, snapshot *s)
{
	char err[128];
	int r = snapshot_parse(text, strlen(text), s, err, sizeof(err));

	CHECK_MSG(r == 0, "snapshot \"%s\" refused: %s", text, err);
	return r;
}

static void
snap_bad(const char *text)
{
	snapshot s;
	char err[128] = "";

	CHECK_MSG(snapshot_parse(text, strlen(text), &s, err, sizeof(err)) == -1,
			  "snapshot \"%s\" accepted", text);
	CHECK(err[0] != '\0');
	CHECK(s.xip == NULL && s.nxip == 0 && s.xmin == 0 && s.xmax == 0);
}

static void
test_snapshot(void)
{
	snapshot s;

	if (snap("100:100:", &s) == 0)
	{
		CHECK(s.xmin == 100 && s.xmax == 100 && s.nxip == 0 && !s.xip);
		CHECK(snapshot_visible(&s, 1));
		CHECK(snapshot_visible(&s, 99));
		CHECK(!snapshot_visible(&s, 100));
		CHECK(!snapshot_visible(&s, 101));
		CHECK(!snapshot_visible(&s, UINT64_MAX));
		snapshot_free(&s);
	}
	if (snap("10:20:10,12,12,19", &s) == 0)
	{
		CHECK_INT(s.nxip, 3);
		CHECK(snapshot_visible(&s, 9));
		CHECK(!snapshot_visible(&s, 10));
		CHECK(snapshot_visible(&s, 11));
		CHECK(!snapshot_visible(&s, 12));
		for (uint64_t x = 13; x < 19; x++)
			CHECK(snapshot_visible(&s, x));
		CHECK(!snapshot_visible(&s, 19));
		CHECK(!snapshot_visible(&s, 20));
		CHECK(!snapshot_visible(&s, 21));
		snapshot_free(&s);
	}
	if (snap("18446744073709551614:18446744073709551615:18446744073709551614",
			 &s) == 0)
	{
		CHECK(!snapshot_visible(&s, UINT64_C(18446744073709551614)));
		CHECK(snapshot_visible(&s, 1));
		snapshot_free(&s);
	}
	/* many in-progress transactions: the binary search against a scan */
	{
		char *text = malloc(20 * 1000 + 64);
		size_t n = (size_t) sprintf(text, "1000:5000:");

		for (int i = 0; i < 1000; i++)
			n += (size_t) sprintf(text + n, "%s%d", i ? "," : "",
								  1000 + i * 4 + (i % 3));
		if (snap(text, &s) == 0)
		{
			int bad = 0;

			CHECK_INT(s.nxip, 1000);
			for (uint64_t x = 900; x < 5100; x++)
			{
				bool in = false;

				for (size_t i = 0; i < s.nxip; i++)
					in |= s.xip[i] == x;
				if (snapshot_visible(&s, x) != (x < 1000 || (x < 5000 && !in)))
					bad++;
			}
			CHECK_INT(bad, 0);
			snapshot_free(&s);
		}
		free(text);
	}

	snap_bad("");
	snap_bad("100");
	snap_bad("100:");
	snap_bad("100:200"); /* PostgreSQL always prints the second colon */
	snap_bad(":100:");
	snap_bad("100::");
	snap_bad("0:0:");		 /* txid 0 is invalid */
	snap_bad("200:100:");	 /* xmin > xmax */
	snap_bad("10:20:9");	 /* xip below xmin */
	snap_bad("10:20:20");	 /* xip at xmax */
	snap_bad("10:20:15,12"); /* not ascending */
	snap_bad("10:20:12,");
	snap_bad("10:20:,12");
	snap_bad("10:20:12,,13");
	snap_bad("10:20:12 ");
	snap_bad(" 10:20:");
	snap_bad("10:20:+12");
	snap_bad("-1:20:");
	snap_bad("10:20:12:13");
	snap_bad("10:18446744073709551616:");
	snap_bad("10:20:x");
	snap_bad("0x10:0x20:");

	/* a length shorter than the string: only len bytes count */
	CHECK_INT(snapshot_parse("100:100:5", 8, &s, NULL, 0), 0);
	CHECK_INT(s.nxip, 0);
	snapshot_free(&s);
	snapshot_free(&s);
	snapshot_free(NULL);
}

static void
test_dset_basic(void)
{
	dset d;
	snapshot s;
	size_t forged = 99;

	CHECK_INT(dset_init(&d, 0, 1), -1);
	CHECK_INT(dset_init(&d, 5, 12345), 0);
	CHECK(!dset_contains(&d, 1, 100));
	CHECK_INT(dset_add(&d, 1, 100, 0), DSET_ADDED);
	CHECK_INT(dset_add(&d, 1, 100, 0), DSET_PRESENT);
	/* the same position with another txid is another pair: a forged
	 * NOTIFY cannot make the real one a duplicate */
	CHECK_INT(dset_add(&d, 2, 1ULL << 62, 0), DSET_ADDED);
	CHECK_INT(dset_add(&d, 2, 101, 1), DSET_ADDED);
	CHECK_INT(dset_add(&d, 3, 150, 1), DSET_ADDED);
	CHECK_INT(dset_add(&d, INT64_MAX, 160, 1), DSET_ADDED);
	CHECK_INT(dset_add(&d, 5, 170, 1), DSET_FULL);
	CHECK_INT(dset_count(&d), 5);
	CHECK(dset_contains(&d, 1, 100) && dset_contains(&d, 2, 101) &&
		  dset_contains(&d, 2, 1ULL << 62) && dset_contains(&d, 3, 150) &&
		  dset_contains(&d, INT64_MAX, 160));
	CHECK(!dset_contains(&d, 1, 101) && !dset_contains(&d, 5, 170));

	/*
	 * 100 and 150 committed before the snapshot; 101 and 160 did not.  The
	 * snapshot was asked for in generation 1: what arrived in generation 0
	 * and it does not see (txid 2^62) cannot be real.
	 */
	if (snap("101:200:101,160", &s) == 0)
	{
		CHECK_INT(dset_settle(&d, &s, 1, &forged), 3);
		CHECK_INT(forged, 1);
		snapshot_free(&s);
	}
	CHECK_INT(dset_count(&d), 2);
	CHECK(!dset_contains(&d, 1, 100) && dset_contains(&d, 2, 101) &&
		  !dset_contains(&d, 2, 1ULL << 62) && !dset_contains(&d, 3, 150) &&
		  dset_contains(&d, INT64_MAX, 160));
	/* arrived in the snapshot's own generation: kept while unseen */
	CHECK_INT(dset_add(&d, 5, 999, 1), DSET_ADDED);
	if (snap("300:300:", &s) == 0)
	{
		CHECK_INT(dset_settle(&d, &s, 1, NULL), 2);
		CHECK_INT(dset_settle(&d, &s, 2, &forged), 1);
		CHECK_INT(forged, 1);
		snapshot_free(&s);
	}
	CHECK_INT(dset_count(&d), 0);
	dset_free(&d);
	dset_free(&d);
	dset_free(NULL);
}

/* xorshift64*: reproducible pseudo-random numbers for the model test */
static uint64_t rng = 88172645463325252ULL;

static uint64_t
next_rand(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * UINT64_C(2685821657736338717);
}

/*
 * Random operations on a dset and on a plain array model of its pairs; a
 * small table so that probe runs are long and wrap around the end, and few
 * txids so that positions repeat with several of them.
 */
static void
test_dset_model(void)
{
	enum
	{
		MAX = 50,
		RANGE = 200,
		TXIDS = 8
	};
	/* (position, txid) -> generation + 1, 0 = absent */
	unsigned model[RANGE + 1][TXIDS + 1] = {{0}};
	size_t count = 0;
	unsigned gen = 0;
	int mismatches = 0;
	dset d;

	CHECK_INT(dset_init(&d, MAX, 7), 0);
	for (int round = 0; round < 20000; round++)
	{
		uint64_t r = next_rand();
		int64_t pos = (int64_t) (r % RANGE) + 1;

		if (r % 97 == 0)
		{
			/* txids below a random horizon become visible; the snapshot
			 * is of this generation or the next */
			snapshot s = {.xmin = 1 + (next_rand() % (TXIDS + 1))};
			unsigned sgen = gen + (unsigned) (next_rand() % 2);
			size_t want = 0, want_forged = 0, forged;

			s.xmax = s.xmin;
			for (int p = 1; p <= RANGE; p++)
				for (unsigned t = 1; t <= TXIDS; t++)
				{
					bool visible = t < s.xmin;

					if (model[p][t] && (visible || model[p][t] - 1 < sgen))
					{
						model[p][t] = 0;
						want++;
						want_forged += !visible;
					}
				}
			if (dset_settle(&d, &s, sgen, &forged) != want ||
				forged != want_forged)
				mismatches++;
			count -= want;
			gen = sgen;
		}
		else
		{
			uint64_t txid = 1 + next_rand() % TXIDS;
			dset_result res = dset_add(&d, pos, txid, gen);
			dset_result want = model[pos][txid] ? DSET_PRESENT
							   : count == MAX	? DSET_FULL
												: DSET_ADDED;

			if (res != want)
				mismatches++;
			if (want == DSET_ADDED)
			{
				model[pos][txid] = gen + 1;
				count++;
			}
		}
		if (dset_count(&d) != count)
			mismatches++;
		for (int p = 1; p <= RANGE; p++)
			for (unsigned t = 1; t <= TXIDS; t++)
				if (dset_contains(&d, p, t) != (model[p][t] != 0))
					mismatches++;
	}
	CHECK_INT(mismatches, 0);
	dset_free(&d);
}

int
main(void)
{
	test_snapshot();
	test_dset_basic();
	test_dset_model();
	return unit_summary();
}
