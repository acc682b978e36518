/*
 * Unit tests of relay/protocol: a table of client frames with the parse
 * result each must give, limit edges, exact encodings of every server
 * message, escaping round trips through jansson, and a fuzz loop.
 */
#include <jansson.h>
#include <stdlib.h>

#include "outq.h"
#include "presence.h"
#include "protocol.h"
#include "unit.h"

/*
 * want: "join:<documentId>", "leave:<documentId>",
 * "subscribe:<query>|<dataset or ->|<params as compact JSON or ->",
 * "unsubscribe:<query>", or "error:<code>|<query or ->".
 * len 0 means strlen(frame).
 */
static const struct parse_case
{
	const char *frame;
	size_t len;
	const char *want;
} parse_cases[] = {
	{"{\"type\":\"presence.join\",\"documentId\":\"d1\"}", 0, "join:d1"},
	{"{\"type\":\"presence.leave\",\"documentId\":\"d1\"}", 0, "leave:d1"},
	{" {\"documentId\" : \"d\\u00e9\", \"type\":\"presence.join\",\"x\":[1]} ",
	 0, "join:d\xc3\xa9"},
	{"{\"type\":\"subscribe\",\"query\":\"*[_type == \\\"post\\\"]\"}", 0,
	 "subscribe:*[_type == \"post\"]|-|-"},
	{"{\"type\":\"subscribe\",\"query\":\"*[a==$a]\",\"dataset\":\"prod\","
	 "\"params\":{\"a\": 1}}",
	 0, "subscribe:*[a==$a]|prod|{\"a\":1}"},
	{"{\"type\":\"subscribe\",\"query\":\"q\",\"dataset\":null,\"params\":null}",
	 0, "subscribe:q|-|-"},
	{"{\"type\":\"subscribe\",\"query\":\"\"}", 0, "subscribe:|-|-"},
	{"{\"type\":\"unsubscribe\",\"query\":\"q\",\"params\":7}", 0,
	 "unsubscribe:q"},

	/* invalid_json */
	{"", 0, "error:invalid_json|-"},
	{"{", 0, "error:invalid_json|-"},
	{"not json", 0, "error:invalid_json|-"},
	{"[\"presence.join\"]", 0, "error:invalid_json|-"},
	{"\"presence.join\"", 0, "error:invalid_json|-"},
	{"null", 0, "error:invalid_json|-"},
	{"{\"type\":\"presence.join\",\"documentId\":\"d\"} x", 0,
	 "error:invalid_json|-"},
	{"{\"type\":\"presence.join\",\"documentId\":\"d\"}{}", 0,
	 "error:invalid_json|-"},
	{"{\"type\":\"presence.join\",\"type\":\"subscribe\",\"documentId\":\"d\"}",
	 0, "error:invalid_json|-"},
	{"{\"type\":\"presence.join\",\"documentId\":\"a\\u0000b\"}", 0,
	 "error:invalid_json|-"},
	{"{\"type\":\"presence.join\",\"documentId\":\"\xff\"}", 0,
	 "error:invalid_json|-"},
	{"{\"type\":\"presence.join\",\"documentId\":\"\xc0\xaf\"}", 0,
	 "error:invalid_json|-"},
	{"{\"type\":\"presence.join\",\"documentId\":\"\xed\xa0\x80\"}", 0,
	 "error:invalid_json|-"},
	/* a NUL byte inside the frame: the length says where it ends */
	{"{\"type\":\"presence.join\",\"documentId\":\"d\"}\0garbage", 49,
	 "error:invalid_json|-"},
	/* not NUL-terminated: only len bytes are read */
	{"{\"type\":\"presence.join\",\"documentId\":\"d1\"}trailing", 42,
	 "join:d1"},

	/* type */
	{"{}", 0, "error:missing_field|-"},
	{"{\"documentId\":\"d\"}", 0, "error:missing_field|-"},
	{"{\"type\":1}", 0, "error:invalid_field|-"},
	{"{\"type\":null}", 0, "error:invalid_field|-"},
	{"{\"type\":\"presence.JOIN\",\"documentId\":\"d\"}", 0,
	 "error:unknown_type|-"},
	{"{\"type\":\"\"}", 0, "error:unknown_type|-"},
	{"{\"type\":\"presence.join \",\"documentId\":\"d\"}", 0,
	 "error:unknown_type|-"},
	{"{\"type\":\"welcome\"}", 0, "error:unknown_type|-"},

	/* presence fields */
	{"{\"type\":\"presence.join\"}", 0, "error:missing_field|-"},
	{"{\"type\":\"presence.leave\",\"documentid\":\"d\"}", 0,
	 "error:missing_field|-"},
	{"{\"type\":\"presence.join\",\"documentId\":7}", 0,
	 "error:invalid_field|-"},
	{"{\"type\":\"presence.join\",\"documentId\":null}", 0,
	 "error:invalid_field|-"},
	{"{\"type\":\"presence.join\",\"documentId\":[\"d\"]}", 0,
	 "error:invalid_field|-"},
	{"{\"type\":\"presence.join\",\"documentId\":\"\"}", 0,
	 "error:invalid_field|-"},

	/* subscription fields; once the query is known, errors name it */
	{"{\"type\":\"subscribe\"}", 0, "error:missing_field|-"},
	{"{\"type\":\"unsubscribe\"}", 0, "error:missing_field|-"},
	{"{\"type\":\"subscribe\",\"query\":{}}", 0, "error:invalid_field|-"},
	{"{\"type\":\"unsubscribe\",\"query\":false}", 0, "error:invalid_field|-"},
	{"{\"type\":\"subscribe\",\"query\":\"q\",\"dataset\":3}", 0,
	 "error:invalid_field|q"},
	{"{\"type\":\"subscribe\",\"query\":\"q\",\"params\":[1]}", 0,
	 "error:invalid_field|q"},
	{"{\"type\":\"subscribe\",\"query\":\"q\",\"params\":\"a\"}", 0,
	 "error:invalid_field|q"},
};

static void
render_msg(const protocol_msg *m, char *buf, size_t size)
{
	char *params = NULL;

	switch (m->type)
	{
		case PROTOCOL_PRESENCE_JOIN:
			snprintf(buf, size, "join:%s", m->document_id);
			break;
		case PROTOCOL_PRESENCE_LEAVE:
			snprintf(buf, size, "leave:%s", m->document_id);
			break;
		case PROTOCOL_SUBSCRIBE:
			if (m->params)
				params = json_dumps(m->params, JSON_COMPACT);
			snprintf(buf, size, "subscribe:%s|%s|%s", m->query,
					 m->dataset ? m->dataset : "-", params ? params : "-");
			free(params);
			break;
		case PROTOCOL_UNSUBSCRIBE:
			snprintf(buf, size, "unsubscribe:%s", m->query);
			break;
		default:
			snprintf(buf, size, "?");
	}
}

static void
test_parse_table(void)
{
	protocol_limits lim;
	char got[1024];

	protocol_limits_default(&lim);
	for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++)
	{
		const struct parse_case *c = &parse_cases[i];
		size_t len = c->len ? c->len : strlen(c->frame);
		protocol_msg m;
		protocol_error e;
		char *copy = malloc(len ? len : 1);

		/* exact-size heap copy: asan catches any read past len */
		memcpy(copy, c->frame, len);
		if (protocol_parse(copy, len, &lim, &m, &e) == 0)
		{
			render_msg(&m, got, sizeof(got));
			CHECK(e.code == NULL);
		}
		else
		{
			snprintf(got, sizeof(got), "error:%s|%s", e.code,
					 e.query ? e.query : "-");
			CHECK(m.type == PROTOCOL_NONE);
			CHECK(e.message != NULL && e.message[0] != '\0');
		}
		CHECK_MSG(!strcmp(got, c->want), "case %zu: got \"%s\" want \"%s\"", i,
				  got, c->want);
		if (m.type == PROTOCOL_SUBSCRIBE || m.type == PROTOCOL_UNSUBSCRIBE)
			CHECK_INT(m.query_len, strlen(m.query));
		protocol_msg_free(&m);
		CHECK(m.root == NULL);
		free(copy);
	}
}

/* Parse a frame built with printf; returns the rendering. */
static void parse_fmt(const protocol_limits *lim, char *got, size_t gotsize,
					  const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#include <stdarg.h>

static void
parse_fmt(const protocol_limits *lim, char *got, size_t gotsize,
		  const char *fmt, ...)
{
	static char frame[70000];
	va_list ap;
	protocol_msg m;
	protocol_error e;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(frame, sizeof(frame), fmt, ap);
	va_end(ap);
	if (protocol_parse(frame, (size_t) n, lim, &m, &e) == 0)
		snprintf(got, gotsize, "ok");
	else
		snprintf(got, gotsize, "error:%s|%s", e.code,
				 e.query ? (strlen(e.query) > 20 ? "long" : e.query) : "-");
	protocol_msg_free(&m);
}

static void
test_limits(void)
{
	protocol_limits lim;
	char got[128];
	static char s[17000], params[20000];
	size_t used;

	protocol_limits_default(&lim);
	CHECK_INT(lim.max_document_id, 256);
	CHECK_INT(lim.max_query, 4096);
	CHECK_INT(lim.max_params_bytes, 16384);
	CHECK_INT(lim.max_params_keys, 64);

	/* documentId: 256 bytes fine, 257 not (bytes, not characters) */
	memset(s, 'd', 256);
	s[256] = '\0';
	parse_fmt(&lim, got, sizeof(got),
			  "{\"type\":\"presence.join\",\"documentId\":\"%s\"}", s);
	CHECK_STR(got, "ok");
	s[256] = 'd';
	s[257] = '\0';
	parse_fmt(&lim, got, sizeof(got),
			  "{\"type\":\"presence.leave\",\"documentId\":\"%s\"}", s);
	CHECK_STR(got, "error:limit_exceeded|-");
	memset(s, 'd', 254);
	strcpy(s + 254, "\xc3\xa9"); /* 255 characters, 256 bytes */
	parse_fmt(&lim, got, sizeof(got),
			  "{\"type\":\"presence.join\",\"documentId\":\"%s\"}", s);
	CHECK_STR(got, "ok");
	strcpy(s + 254, "\xc3\xa9x");
	parse_fmt(&lim, got, sizeof(got),
			  "{\"type\":\"presence.join\",\"documentId\":\"%s\"}", s);
	CHECK_STR(got, "error:limit_exceeded|-");

	/* query: 4096 fine, 4097 refused and not echoed back */
	memset(s, 'q', 4096);
	s[4096] = '\0';
	parse_fmt(&lim, got, sizeof(got),
			  "{\"type\":\"subscribe\",\"query\":\"%s\"}", s);
	CHECK_STR(got, "ok");
	strcat(s, "q");
	parse_fmt(&lim, got, sizeof(got),
			  "{\"type\":\"subscribe\",\"query\":\"%s\"}", s);
	CHECK_STR(got, "error:limit_exceeded|-");
	parse_fmt(&lim, got, sizeof(got),
			  "{\"type\":\"unsubscribe\",\"query\":\"%s\"}", s);
	CHECK_STR(got, "error:limit_exceeded|-");

	/* params keys: 64 fine, 65 not */
	used = (size_t) snprintf(params, sizeof(params), "{");
	for (int i = 0; i < 65; i++)
		used += (size_t) snprintf(params + used, sizeof(params) - used,
								  "%s\"k%d\":%d", i ? "," : "", i, i);
	strcpy(params + used, "}");
	parse_fmt(&lim, got, sizeof(got),
			  "{\"type\":\"subscribe\",\"query\":\"q\",\"params\":%s}", params);
	CHECK_STR(got, "error:limit_exceeded|q");
	lim.max_params_keys = 65;
	parse_fmt(&lim, got, sizeof(got),
			  "{\"type\":\"subscribe\",\"query\":\"q\",\"params\":%s}", params);
	CHECK_STR(got, "ok");
	protocol_limits_default(&lim);

	/* params bytes: measured compact, so whitespace does not count.
	 * {"a":"xxx…"} is 8 bytes plus the string. */
	memset(s, 'x', 16376);
	s[16376] = '\0';
	parse_fmt(&lim, got, sizeof(got),
			  "{\"type\":\"subscribe\",\"query\":\"q\",\"params\":{ \"a\" :  "
			  "\"%s\" }}",
			  s);
	CHECK_STR(got, "ok");
	parse_fmt(
		&lim, got, sizeof(got),
		"{\"type\":\"subscribe\",\"query\":\"q\",\"params\":{\"a\":\"%sx\"}}",
		s);
	CHECK_STR(got, "error:limit_exceeded|q");
	/* nested values count too */
	parse_fmt(&lim, got, sizeof(got),
			  "{\"type\":\"subscribe\",\"query\":\"q\",\"params\":{\"a\":[[\"%s"
			  "\"]]}}",
			  s);
	CHECK_STR(got, "error:limit_exceeded|q");

	/* deep nesting is refused by the parser, not by a stack overflow */
	used = (size_t) snprintf(params, sizeof(params),
							 "{\"type\":\"subscribe\",\"query\":\"q\","
							 "\"params\":{\"a\":");
	for (int i = 0; i < 5000; i++)
		params[used++] = '[';
	params[used] = '\0';
	parse_fmt(&lim, got, sizeof(got), "%s", params);
	CHECK_STR(got, "error:invalid_json|-");
}

static void
check_msg(outmsg *m, const char *want)
{
	CHECK(m != NULL);
	if (!m)
		return;
	CHECK_INT(outmsg_refs(m), 1);
	CHECK_INT(outmsg_len(m), strlen(want));
	CHECK_STR((const char *) outmsg_payload(m), want);
	outmsg_unref(m);
}

static void
test_encode(void)
{
	presence_diff join = {PRESENCE_JOINED, "prod", "d1", "u1", "Alice"};
	presence_diff leave = {PRESENCE_LEFT, "prod", "d\"1", "u1", "Al\nice"};

	check_msg(protocol_encode_welcome("c-42", "u1"),
			  "{\"type\":\"welcome\",\"clientId\":\"c-42\",\"userId\":\"u1\"}");
	check_msg(protocol_encode_presence(&join),
			  "{\"type\":\"presence.join\",\"documentId\":\"d1\","
			  "\"userId\":\"u1\",\"userName\":\"Alice\"}");
	check_msg(protocol_encode_presence(&leave),
			  "{\"type\":\"presence.leave\",\"documentId\":\"d\\\"1\","
			  "\"userId\":\"u1\",\"userName\":\"Al\\nice\"}");
	check_msg(
		protocol_encode_subscribed("*[_type == \"post\"]"),
		"{\"type\":\"subscribed\",\"query\":\"*[_type == \\\"post\\\"]\"}");
	check_msg(protocol_encode_unsubscribed(""),
			  "{\"type\":\"unsubscribed\",\"query\":\"\"}");
	check_msg(protocol_encode_mutation("abc", "post", "update",
									   "2025-01-15T12:00:00.000Z",
									   "*[_type == \"post\"]"),
			  "{\"type\":\"mutation\",\"documentId\":\"abc\","
			  "\"documentType\":\"post\",\"operation\":\"update\","
			  "\"ts\":\"2025-01-15T12:00:00.000Z\","
			  "\"query\":\"*[_type == \\\"post\\\"]\"}");
	/* A document without a type still has the field: null, not absent. */
	check_msg(protocol_encode_mutation("abc", NULL, "create",
									   "2025-01-15T12:00:00.000Z", "*[]"),
			  "{\"type\":\"mutation\",\"documentId\":\"abc\","
			  "\"documentType\":null,\"operation\":\"create\","
			  "\"ts\":\"2025-01-15T12:00:00.000Z\",\"query\":\"*[]\"}");
	check_msg(protocol_encode_document_updated("abc", "delete",
											   "2025-01-15T12:00:00.000Z"),
			  "{\"type\":\"document.updated\",\"documentId\":\"abc\","
			  "\"operation\":\"delete\",\"ts\":\"2025-01-15T12:00:00.000Z\"}");
	check_msg(protocol_encode_error("invalid_query", "bad filter", "*["),
			  "{\"type\":\"error\",\"code\":\"invalid_query\","
			  "\"message\":\"bad filter\",\"query\":\"*[\"}");
	check_msg(
		protocol_encode_error("invalid_json", "frame is not valid JSON", NULL),
		"{\"type\":\"error\",\"code\":\"invalid_json\","
		"\"message\":\"frame is not valid JSON\"}");
}

/* Escaping: exact forms, then invalid UTF-8 becomes U+FFFD. */
static const struct esc_case
{
	const char *in, *want;
} esc_cases[] = {
	{"", "\"\""},
	{"plain", "\"plain\""},
	{"q\"b\\s/", "\"q\\\"b\\\\s/\""},
	{"\n\r\t\b\f", "\"\\n\\r\\t\\b\\f\""},
	{"\x01\x1f\x7f", "\"\\u0001\\u001f\x7f\""},
	{"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", /* é € 😀 kept as is */
	 "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\""},
	{"\xef\xbf\xbf\xf4\x8f\xbf\xbf", "\"\xef\xbf\xbf\xf4\x8f\xbf\xbf\""},
	{"a\xff"
	 "b",
	 "\"a\\ufffdb\""},
	{"\xc3", "\"\\ufffd\""},					   /* truncated at the end */
	{"\xc3(", "\"\\ufffd(\""},					   /* bad continuation */
	{"\xc0\xaf", "\"\\ufffd\\ufffd\""},			   /* overlong '/' */
	{"\xe0\x80\xaf", "\"\\ufffd\\ufffd\\ufffd\""}, /* overlong */
	{"\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\""}, /* surrogate */
	{"\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""}, /* > 10FFFF */
	{"\xf8\x88\x80\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\""},
	{"\xe2\x82", "\"\\ufffd\\ufffd\""},
};

static void
test_escape(void)
{
	char want[256];

	for (size_t i = 0; i < sizeof(esc_cases) / sizeof(esc_cases[0]); i++)
	{
		outmsg *m = protocol_encode_subscribed(esc_cases[i].in);

		snprintf(want, sizeof(want), "{\"type\":\"subscribed\",\"query\":%s}",
				 esc_cases[i].want);
		CHECK_MSG(m && !strcmp((const char *) outmsg_payload(m), want),
				  "escape case %zu: got %s", i,
				  m ? (const char *) outmsg_payload(m) : "NULL");
		outmsg_unref(m);
	}
}

static unsigned long rng = 42;

static unsigned
rnd(unsigned n)
{
	rng = rng * 6364136223846793005UL + 1442695040888963407UL;
	return (unsigned) (rng >> 33) % n;
}

/*
 * Random byte strings: the encoding is always valid JSON that jansson
 * accepts, and a valid UTF-8 input comes back unchanged.
 */
static void
test_escape_roundtrip(void)
{
	int bad = 0, valid_inputs = 0;

	for (int iter = 0; iter < 20000; iter++)
	{
		char in[40];
		size_t len = rnd(sizeof(in) - 1);
		outmsg *m;
		json_t *root;
		json_error_t jerr;

		if (iter % 2)
		{
			/* random bytes, biased to the ones that matter */
			static const unsigned char pick[] = {
				'a',  '"',	'\\', '\n', 0x01, 0x7f, 0x80, 0xbf, 0xc2, 0xc3,
				0xe0, 0xe2, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff, 0x9f, 0xa0};

			for (size_t i = 0; i < len; i++)
				in[i] =
					(char) (rnd(3) ? pick[rnd(sizeof(pick))] : 1 + rnd(255));
		}
		else
		{
			/* valid UTF-8 made of pieces that need care */
			static const char *piece[] = {
				"a",		"\"",			"\\",
				"\n",		"\x01",			"\x7f",
				"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80"};
			size_t used = 0;

			while (used + 4 < len)
			{
				const char *pc = piece[rnd(9)];

				memcpy(in + used, pc, strlen(pc));
				used += strlen(pc);
			}
			len = used;
		}
		in[len] = '\0';
		m = protocol_encode_unsubscribed(in);
		root = json_loadb((const char *) outmsg_payload(m), outmsg_len(m), 0,
						  &jerr);
		if (!root)
		{
			bad++;
			fprintf(stderr, "not JSON: %s (%s)\n", outmsg_payload(m),
					jerr.text);
		}
		else
		{
			json_t *probe = json_stringn(in, len); /* NULL if invalid UTF-8 */
			const char *q = json_string_value(json_object_get(root, "query"));

			if (probe)
			{
				valid_inputs++;
				bad += !q || strcmp(q, in) != 0;
			}
			json_decref(probe);
		}
		json_decref(root);
		outmsg_unref(m);
	}
	CHECK_INT(bad, 0);
	CHECK(valid_inputs >= 10000);
}

static void
test_snapshot(void)
{
	static const uint8_t seed[16] = {0};
	presence *p = presence_new(0, seed);
	presence_diffs d;
	char conns[3];

	check_msg(protocol_encode_snapshot(p, "prod"),
			  "{\"type\":\"presence.snapshot\",\"documents\":[]}");
	presence_join(p, &conns[0], "prod", "d1", "u1", "Alice", &d);
	presence_join(p, &conns[1], "prod", "d1", "u1", "Alice", &d);
	presence_join(p, &conns[2], "prod", "d1", "u2", "B\"ob", &d);
	presence_join(p, &conns[2], "prod", "d2", "u2", "B\"ob", &d);
	presence_join(p, &conns[2], "other", "d3", "u2", "B\"ob", &d);
	check_msg(protocol_encode_snapshot(p, "prod"),
			  "{\"type\":\"presence.snapshot\",\"documents\":["
			  "{\"documentId\":\"d1\",\"users\":["
			  "{\"userId\":\"u1\",\"userName\":\"Alice\"},"
			  "{\"userId\":\"u2\",\"userName\":\"B\\\"ob\"}]},"
			  "{\"documentId\":\"d2\",\"users\":["
			  "{\"userId\":\"u2\",\"userName\":\"B\\\"ob\"}]}]}");
	check_msg(protocol_encode_snapshot(p, "other"),
			  "{\"type\":\"presence.snapshot\",\"documents\":["
			  "{\"documentId\":\"d3\",\"users\":["
			  "{\"userId\":\"u2\",\"userName\":\"B\\\"ob\"}]}]}");
	presence_free(p);
}

/* Mangled frames never crash, leak or read out of bounds (asan/valgrind). */
static void
test_fuzz(void)
{
	static const char *seeds[] = {
		"{\"type\":\"presence.join\",\"documentId\":\"d1\"}",
		"{\"type\":\"subscribe\",\"query\":\"*[a==$a]\",\"dataset\":\"p\","
		"\"params\":{\"a\":[1,{\"b\":null}]}}",
		"{\"type\":\"unsubscribe\",\"query\":\"q\"}",
	};
	protocol_limits lim;
	int ok = 0, errors = 0, consistent = 1;

	protocol_limits_default(&lim);
	lim.max_params_bytes = 20;
	for (int iter = 0; iter < 30000; iter++)
	{
		const char *src = seeds[rnd(3)];
		size_t len = strlen(src);
		char *buf = malloc(len);
		protocol_msg m;
		protocol_error e;

		memcpy(buf, src, len);
		for (unsigned k = rnd(4) + 1; k > 0; k--)
			buf[rnd((unsigned) len)] = (char) rnd(256);
		if (rnd(4) == 0)
			len = rnd((unsigned) len + 1);
		if (protocol_parse(buf, len, &lim, &m, &e) == 0)
		{
			ok++;
			consistent &= m.type != PROTOCOL_NONE && e.code == NULL;
		}
		else
		{
			errors++;
			consistent &= m.type == PROTOCOL_NONE && e.code && e.message;
		}
		protocol_msg_free(&m);
		free(buf);
	}
	CHECK(consistent);
	CHECK(ok > 0 && errors > 0);
}

int
main(void)
{
	test_parse_table();
	test_limits();
	test_encode();
	test_escape();
	test_escape_roundtrip();
	test_snapshot();
	test_fuzz();
	return unit_summary();
}
