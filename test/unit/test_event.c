/*
 * Unit tests of relay/event.c: the NOTIFY payload parser, change log rows
 * and the validators.
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

int
main(void)
{
	test_payload_ok();
	test_payload_bad();
	test_row();
	test_ts();
	return unit_summary();
}
