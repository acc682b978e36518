/*
 * Unit tests of relay/event.c: the NOTIFY payload parser, change log rows,
 * pg_snapshot text and visibility, and the set D.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "unit.h"

#define GOOD                                                                   \
	"{\"documentId\":\"d1\",\"documentType\":\"post\",\"operation\":"          \
	"\"update\",\"dataset\":\"production\",\"ts\":"                            \
	"\"2025-01-15T12:00:00.000Z\",\"position\":123,\"txid\":456}"

static int
parse(const char *s, rt_event *ev, char *err, size_t errlen)
{
	return event_from_notify(s, strlen(s), ev, err, errlen);
}

/* The payload must be refused, with a message, and leave *ev zeroed. */
static void
refused(const char *payload, const char *why)
{
	rt_event ev;
	char err[128] = "";
	static const rt_event zero;

	memset(&ev, 0x5a, sizeof(ev));
	CHECK_MSG(parse(payload, &ev, err, sizeof(err)) == -1, "accepted (%s): %s",
			  why, payload);
	CHECK_MSG(err[0] != '\0', "no error message (%s)", why);
	CHECK_MSG(!memcmp(&ev, &zero, sizeof(ev)), "event not zeroed (%s)", why);
	event_free(&ev);
}

static void
test_payload_ok(void)
{
	rt_event ev;
	char err[128] = "";

	CHECK_INT(parse(GOOD, &ev, err, sizeof(err)), 0);
	CHECK_INT(ev.position, 123);
	CHECK_INT(ev.txid, 456);
	CHECK_STR(ev.document_id, "d1");
	CHECK_STR(ev.document_type, "post");
	CHECK_STR(ev.operation, "update");
	CHECK_STR(ev.dataset, "production");
	CHECK_STR(ev.ts, "2025-01-15T12:00:00.000Z");
	CHECK(!ev.truncated);
	CHECK(ev.document == NULL);
	event_free(&ev);
	CHECK(ev.dataset == NULL && ev.document_id == NULL);
	event_free(&ev); /* twice is harmless */
	event_free(NULL);

	/* null type, truncated, other key order, unknown keys, escapes */
	CHECK_INT(parse("{\"txid\":9007199254740993,\"position\":"
					"9223372036854775807,\"extra\":{\"a\":[1,2]},"
					"\"truncated\":true,\"ts\":\"1999-12-31T23:59:59.999Z\","
					"\"dataset\":\"\\u00e9t\\u00e9\",\"operation\":\"delete\","
					"\"documentType\":null,\"documentId\":\"a\\\"b\\\\c\\n\"}",
					&ev, err, sizeof(err)),
			  0);
	CHECK(ev.document_type == NULL);
	CHECK(ev.truncated);
	CHECK_INT(ev.position, INT64_MAX);
	CHECK(ev.txid == UINT64_C(9007199254740993));
	CHECK_STR(ev.document_id, "a\"b\\c\n");
	CHECK_STR(ev.dataset, "\xc3\xa9t\xc3\xa9");
	CHECK_STR(ev.operation, "delete");
	event_free(&ev);

	CHECK_INT(
		parse("{\"documentId\":\"x\",\"documentType\":\"t\",\"operation\":"
			  "\"publish\",\"dataset\":\"p\",\"ts\":"
			  "\"2025-01-15T12:00:00.000Z\",\"position\":1,\"txid\":1,"
			  "\"truncated\":false}",
			  &ev, err, sizeof(err)),
		0);
	CHECK(!ev.truncated);
	CHECK_STR(ev.operation, "publish");
	event_free(&ev);

	/* the payload need not be NUL-terminated: only len bytes are read */
	{
		char buf[sizeof(GOOD) + 8];

		memcpy(buf, GOOD, strlen(GOOD));
		memcpy(buf + strlen(GOOD), "garbage", 8);
		CHECK_INT(event_from_notify(buf, strlen(GOOD), &ev, err, sizeof(err)),
				  0);
		CHECK_STR(ev.document_id, "d1");
		event_free(&ev);
	}

	for (size_t i = 0; i < 5; i++)
	{
		static const char *ops[] = {"create", "update", "delete", "publish",
									"unpublish"};
		char buf[512];

		snprintf(buf, sizeof(buf),
				 "{\"documentId\":\"d\",\"documentType\":\"t\",\"operation\":"
				 "\"%s\",\"dataset\":\"p\",\"ts\":\"2025-01-15T12:00:00.000Z\","
				 "\"position\":5,\"txid\":6}",
				 ops[i]);
		CHECK_INT(parse(buf, &ev, err, sizeof(err)), 0);
		CHECK_STR(ev.operation, ops[i]);
		event_free(&ev);
	}
}

static void
test_payload_bad(void)
{
	char big[EVENT_PAYLOAD_MAX + 64];
	rt_event ev;
	char err[64];

	refused("", "empty");
	refused("null", "null");
	refused("[]", "array");
	refused("\"x\"", "string");
	refused("{", "truncated JSON");
	refused(GOOD "x", "trailing garbage");
	refused(GOOD GOOD, "two objects");
	refused("{\"documentId\":\"d1\",\"documentType\":\"post\",\"operation\":"
			"\"update\",\"dataset\":\"production\",\"ts\":"
			"\"2025-01-15T12:00:00.000Z\",\"position\":123}",
			"missing txid");
	refused("{\"documentType\":\"post\",\"operation\":\"update\",\"dataset\":"
			"\"production\",\"ts\":\"2025-01-15T12:00:00.000Z\",\"position\":"
			"123,\"txid\":456}",
			"missing documentId");
	refused("{\"documentId\":\"d1\",\"operation\":\"update\",\"dataset\":"
			"\"production\",\"ts\":\"2025-01-15T12:00:00.000Z\",\"position\":"
			"123,\"txid\":456}",
			"missing documentType");
	refused("{\"documentId\":\"d1\",\"documentType\":\"post\",\"dataset\":"
			"\"production\",\"ts\":\"2025-01-15T12:00:00.000Z\",\"position\":"
			"123,\"txid\":456}",
			"missing operation");
	refused("{\"documentId\":\"d1\",\"documentType\":\"post\",\"operation\":"
			"\"update\",\"ts\":\"2025-01-15T12:00:00.000Z\",\"position\":123,"
			"\"txid\":456}",
			"missing dataset");
	refused("{\"documentId\":\"d1\",\"documentType\":\"post\",\"operation\":"
			"\"update\",\"dataset\":\"production\",\"position\":123,\"txid\":"
			"456}",
			"missing ts");
	refused("{\"documentId\":1,\"documentType\":\"post\",\"operation\":"
			"\"update\",\"dataset\":\"production\",\"ts\":"
			"\"2025-01-15T12:00:00.000Z\",\"position\":123,\"txid\":456}",
			"numeric documentId");
	refused("{\"documentId\":null,\"documentType\":\"post\",\"operation\":"
			"\"update\",\"dataset\":\"production\",\"ts\":"
			"\"2025-01-15T12:00:00.000Z\",\"position\":123,\"txid\":456}",
			"null documentId");
	refused("{\"documentId\":\"d\",\"documentType\":7,\"operation\":"
			"\"update\",\"dataset\":\"production\",\"ts\":"
			"\"2025-01-15T12:00:00.000Z\",\"position\":123,\"txid\":456}",
			"numeric documentType");
	refused("{\"documentId\":\"d\",\"documentType\":\"t\",\"operation\":"
			"\"upsert\",\"dataset\":\"production\",\"ts\":"
			"\"2025-01-15T12:00:00.000Z\",\"position\":123,\"txid\":456}",
			"unknown operation");
	refused("{\"documentId\":\"d\",\"documentType\":\"t\",\"operation\":"
			"\"Update\",\"dataset\":\"production\",\"ts\":"
			"\"2025-01-15T12:00:00.000Z\",\"position\":123,\"txid\":456}",
			"operation case");
	refused("{\"documentId\":\"d\",\"documentType\":\"t\",\"operation\":"
			"\"update\",\"dataset\":null,\"ts\":"
			"\"2025-01-15T12:00:00.000Z\",\"position\":123,\"txid\":456}",
			"null dataset");
	refused("{\"documentId\":\"d\",\"documentType\":\"t\",\"operation\":"
			"\"update\",\"dataset\":\"p\",\"ts\":"
			"\"2025-01-15 12:00:00.000Z\",\"position\":123,\"txid\":456}",
			"ts with a space");
	refused("{\"documentId\":\"d\",\"documentType\":\"t\",\"operation\":"
			"\"update\",\"dataset\":\"p\",\"ts\":"
			"\"2025-01-15T12:00:00.000\",\"position\":123,\"txid\":456}",
			"ts without Z");
	refused("{\"documentId\":\"d\",\"documentType\":\"t\",\"operation\":"
			"\"update\",\"dataset\":\"p\",\"ts\":"
			"\"2025-01-15T12:00:00.000Z \",\"position\":123,\"txid\":456}",
			"ts with trailing space");
	refused("{\"documentId\":\"d\",\"documentType\":\"t\",\"operation\":"
			"\"update\",\"dataset\":\"p\",\"ts\":1,\"position\":123,\"txid\":"
			"456}",
			"numeric ts");
	refused("{\"documentId\":\"d\",\"documentType\":\"t\",\"operation\":"
			"\"update\",\"dataset\":\"p\",\"ts\":"
			"\"2025-01-15T12:00:00.000Z\",\"position\":\"123\",\"txid\":456}",
			"string position");
	refused("{\"documentId\":\"d\",\"documentType\":\"t\",\"operation\":"
			"\"update\",\"dataset\":\"p\",\"ts\":"
			"\"2025-01-15T12:00:00.000Z\",\"position\":0,\"txid\":456}",
			"zero position");
	refused("{\"documentId\":\"d\",\"documentType\":\"t\",\"operation\":"
			"\"update\",\"dataset\":\"p\",\"ts\":"
			"\"2025-01-15T12:00:00.000Z\",\"position\":-5,\"txid\":456}",
			"negative position");
	refused("{\"documentId\":\"d\",\"documentType\":\"t\",\"operation\":"
			"\"update\",\"dataset\":\"p\",\"ts\":"
			"\"2025-01-15T12:00:00.000Z\",\"position\":1.5,\"txid\":456}",
			"real position");
	refused("{\"documentId\":\"d\",\"documentType\":\"t\",\"operation\":"
			"\"update\",\"dataset\":\"p\",\"ts\":"
			"\"2025-01-15T12:00:00.000Z\",\"position\":1,\"txid\":"
			"99999999999999999999}",
			"txid out of range");
	refused("{\"documentId\":\"d\",\"documentType\":\"t\",\"operation\":"
			"\"update\",\"dataset\":\"p\",\"ts\":"
			"\"2025-01-15T12:00:00.000Z\",\"position\":1,\"txid\":2,"
			"\"truncated\":1}",
			"numeric truncated");
	refused("{\"documentId\":\"d\",\"documentType\":\"t\",\"operation\":"
			"\"update\",\"dataset\":\"p\",\"dataset\":\"q\",\"ts\":"
			"\"2025-01-15T12:00:00.000Z\",\"position\":1,\"txid\":2}",
			"duplicate member");
	refused("{\"documentId\":\"a\\u0000b\",\"documentType\":\"t\","
			"\"operation\":\"update\",\"dataset\":\"p\",\"ts\":"
			"\"2025-01-15T12:00:00.000Z\",\"position\":1,\"txid\":2}",
			"NUL in a string");
	refused("{\"documentId\":\"\xff\xfe\",\"documentType\":\"t\","
			"\"operation\":\"update\",\"dataset\":\"p\",\"ts\":"
			"\"2025-01-15T12:00:00.000Z\",\"position\":1,\"txid\":2}",
			"invalid UTF-8");

	/* longer than the limit, even though valid JSON */
	memset(big, ' ', sizeof(big));
	memcpy(big, GOOD, strlen(GOOD));
	big[sizeof(big) - 1] = '\0';
	CHECK_INT(parse(big, &ev, err, sizeof(err)), -1);

	/* a NUL byte inside the given length */
	CHECK_INT(event_from_notify(GOOD, strlen(GOOD) + 1, &ev, err, sizeof(err)),
			  -1);

	/* deep nesting in an ignored member is still bounded by the parser */
	{
		size_t n = 3000;
		char *deep = malloc(2 * n + 3);

		deep[0] = '[';
		memset(deep + 1, '[', n);
		memset(deep + 1 + n, ']', n);
		deep[2 * n + 1] = ']';
		deep[2 * n + 2] = '\0';
		CHECK_INT(parse(deep, &ev, err, sizeof(err)), -1);
		free(deep);
	}

	/* err may be tiny or absent */
	CHECK_INT(event_from_notify("{", 1, &ev, NULL, 0), -1);
	CHECK_INT(event_from_notify("{", 1, &ev, err, 1), -1);
	CHECK_INT(err[0], 0);
}

static void
test_row(void)
{
	rt_event ev;
	char err[128];

	CHECK_INT(event_from_row("42", "18446744073709551615", "production", "doc",
							 NULL, "create", "2025-01-15T12:00:00.000Z", &ev,
							 err, sizeof(err)),
			  0);
	CHECK_INT(ev.position, 42);
	CHECK(ev.txid == UINT64_MAX);
	CHECK(ev.document_type == NULL);
	CHECK_STR(ev.document_id, "doc");
	event_free(&ev);

	CHECK_INT(event_from_row("9223372036854775807", "1", "p", "d", "t",
							 "unpublish", "2025-01-15T12:00:00.000Z", &ev, err,
							 sizeof(err)),
			  0);
	CHECK_INT(ev.position, INT64_MAX);
	CHECK_STR(ev.document_type, "t");
	event_free(&ev);

	CHECK_INT(event_from_row("9223372036854775808", "1", "p", "d", "t",
							 "create", "2025-01-15T12:00:00.000Z", &ev, err,
							 sizeof(err)),
			  -1);
	CHECK_INT(event_from_row("18446744073709551616", "1", "p", "d", "t",
							 "create", "2025-01-15T12:00:00.000Z", &ev, err,
							 sizeof(err)),
			  -1);
	CHECK_INT(event_from_row("1", "18446744073709551616", "p", "d", "t",
							 "create", "2025-01-15T12:00:00.000Z", &ev, err,
							 sizeof(err)),
			  -1);
	CHECK_INT(event_from_row("0", "1", "p", "d", "t", "create",
							 "2025-01-15T12:00:00.000Z", &ev, err, sizeof(err)),
			  -1);
	CHECK_INT(event_from_row("-1", "1", "p", "d", "t", "create",
							 "2025-01-15T12:00:00.000Z", &ev, err, sizeof(err)),
			  -1);
	CHECK_INT(event_from_row("", "1", "p", "d", "t", "create",
							 "2025-01-15T12:00:00.000Z", &ev, err, sizeof(err)),
			  -1);
	CHECK_INT(event_from_row(" 1", "1", "p", "d", "t", "create",
							 "2025-01-15T12:00:00.000Z", &ev, err, sizeof(err)),
			  -1);
	CHECK_INT(event_from_row("1", "x", "p", "d", "t", "create",
							 "2025-01-15T12:00:00.000Z", &ev, err, sizeof(err)),
			  -1);
	CHECK_INT(event_from_row("1", "1", "p", "d", "t", "insert",
							 "2025-01-15T12:00:00.000Z", &ev, err, sizeof(err)),
			  -1);
	CHECK_INT(event_from_row("1", "1", "p", "d", "t", "create",
							 "2025-01-15T12:00:00Z", &ev, err, sizeof(err)),
			  -1);
	CHECK(ev.dataset == NULL);
}

static void
test_ts(void)
{
	CHECK(event_ts_valid("2025-01-15T12:00:00.000Z"));
	CHECK(event_ts_valid("0001-12-31T23:59:59.999Z"));
	CHECK(!event_ts_valid(""));
	CHECK(!event_ts_valid("2025-01-15T12:00:00.000"));
	CHECK(!event_ts_valid("2025-01-15T12:00:00.0000Z"));
	CHECK(!event_ts_valid("2025-01-15T12:00:00.00Z"));
	CHECK(!event_ts_valid("2025-1-15T12:00:00.000Z"));
	CHECK(!event_ts_valid("2025-01-15t12:00:00.000Z"));
	CHECK(!event_ts_valid("2025-01-15T12:00:00+000Z"));
	CHECK(!event_ts_valid("a025-01-15T12:00:00.000Z"));
}

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

	CHECK_INT(dset_init(&d, 0, 1), -1);
	CHECK_INT(dset_init(&d, 4, 12345), 0);
	CHECK(!dset_contains(&d, 1));
	CHECK_INT(dset_add(&d, 1, 100), DSET_ADDED);
	CHECK_INT(dset_add(&d, 1, 999), DSET_PRESENT);
	CHECK_INT(dset_add(&d, 2, 101), DSET_ADDED);
	CHECK_INT(dset_add(&d, 3, 150), DSET_ADDED);
	CHECK_INT(dset_add(&d, INT64_MAX, 160), DSET_ADDED);
	CHECK_INT(dset_add(&d, 5, 170), DSET_FULL);
	CHECK_INT(dset_count(&d), 4);
	CHECK(dset_contains(&d, 1) && dset_contains(&d, 2) &&
		  dset_contains(&d, 3) && dset_contains(&d, INT64_MAX));
	CHECK(!dset_contains(&d, 5));

	/* 100 and 150 committed before the snapshot; 101 and 160 did not */
	if (snap("101:200:101,160", &s) == 0)
	{
		CHECK_INT(dset_remove_visible(&d, &s), 2);
		snapshot_free(&s);
	}
	CHECK_INT(dset_count(&d), 2);
	CHECK(!dset_contains(&d, 1) && dset_contains(&d, 2) &&
		  !dset_contains(&d, 3) && dset_contains(&d, INT64_MAX));
	CHECK_INT(dset_add(&d, 5, 170), DSET_ADDED);
	if (snap("300:300:", &s) == 0)
	{
		CHECK_INT(dset_remove_visible(&d, &s), 3);
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
 * Random operations on a dset and on a plain array model; a small table
 * so that probe runs are long and wrap around the end.
 */
static void
test_dset_model(void)
{
	enum
	{
		MAX = 50,
		RANGE = 400
	};
	uint64_t model[RANGE + 1] = {0}; /* position -> txid, 0 = absent */
	size_t count = 0;
	int mismatches = 0;
	dset d;

	CHECK_INT(dset_init(&d, MAX, 7), 0);
	for (int round = 0; round < 20000; round++)
	{
		uint64_t r = next_rand();
		int64_t pos = (int64_t) (r % RANGE) + 1;

		if (r % 97 == 0)
		{
			/* everything below a random horizon becomes visible */
			snapshot s = {.xmin = 1 + (next_rand() % 1000), .xmax = 0};
			size_t want = 0;

			s.xmax = s.xmin;
			for (int p = 1; p <= RANGE; p++)
			{
				if (model[p] && model[p] < s.xmin)
				{
					model[p] = 0;
					want++;
				}
			}
			if (dset_remove_visible(&d, &s) != want)
				mismatches++;
			count -= want;
		}
		else
		{
			uint64_t txid = 1 + next_rand() % 1000;
			dset_result res = dset_add(&d, pos, txid);
			dset_result want = model[pos]	  ? DSET_PRESENT
							   : count == MAX ? DSET_FULL
											  : DSET_ADDED;

			if (res != want)
				mismatches++;
			if (want == DSET_ADDED)
			{
				model[pos] = txid;
				count++;
			}
		}
		if (dset_count(&d) != count)
			mismatches++;
		for (int p = 1; p <= RANGE; p++)
		{
			if (dset_contains(&d, p) != (model[p] != 0))
				mismatches++;
		}
	}
	CHECK_INT(mismatches, 0);
	dset_free(&d);
}

int
main(void)
{
	test_payload_ok();
	test_payload_bad();
	test_row();
	test_ts();
	test_snapshot();
	test_dset_basic();
	test_dset_model();
	return unit_summary();
}
