/*
 * Unit tests of relay/hub: the relay's protocol logic driven through a fake
 * transport.  Each fake transport records the sink calls made for it (wake,
 * close) and drains its client's queue like ws_server does, so every test
 * asserts what a WebSocket client would receive, message by message.
 */
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "event.h"
#include "groq.h"
#include "hub.h"
#include "outq.h"
#include "protocol.h"
#include "unit.h"

static const uint8_t seed[32] = "0123456789abcdef0123456789ABCDEF";

#define TS "2025-01-15T12:00:00.000Z"

/* ---- the fake transport ---------------------------------------------- */

typedef struct fake
{
	hub_client *c; /* NULL once disconnected */
	int wakes;
	int closes;
	int close_code;
	char close_reason[128];
} fake;

static void
fake_wake(void *transport)
{
	fake *f = transport;

	f->wakes++;
}

static void
fake_close(void *transport, int code, const char *reason)
{
	fake *f = transport;

	f->closes++;
	f->close_code = code;
	snprintf(f->close_reason, sizeof(f->close_reason), "%s",
			 reason ? reason : "");
}

static const hub_sink sink = {fake_wake, fake_close};

static hub_config
config_default(void)
{
	hub_config cfg;

	memset(&cfg, 0, sizeof(cfg));
	protocol_limits_default(&cfg.protocol);
	cfg.groq = groq_limits_default();
	cfg.max_queue_bytes = 1 << 20;
	cfg.max_subscriptions = 100;
	cfg.max_presence_documents = 32;
	return cfg;
}

/* A heap identity as auth_verify() would build it; owned by the caller. */
static auth_identity *
identity_new(const char *user_id, const char *user_name, long long expires_at)
{
	auth_identity *id = calloc(1, sizeof(*id));

	id->user_id = strdup(user_id);
	id->user_name = strdup(user_name);
	id->expires_at = expires_at;
	return id;
}

static void
fake_connect_exp(hub *h, fake *f, const char *user_id, const char *user_name,
				 const char *dataset, long long expires_at)
{
	memset(f, 0, sizeof(*f));
	f->c = hub_connect(h, f, identity_new(user_id, user_name, expires_at),
					   dataset);
	CHECK(f->c != NULL);
}

static void
fake_connect(hub *h, fake *f, const char *user_id, const char *user_name,
			 const char *dataset)
{
	fake_connect_exp(h, f, user_id, user_name, dataset, 0);
}

static void
fake_disconnect(hub *h, fake *f)
{
	hub_disconnect(h, f->c);
	f->c = NULL;
}

static size_t
pending(fake *f)
{
	return outq_count(hub_client_queue(f->c));
}

/* Pops the next message as a string (caller frees), or NULL. */
static char *
pop_text(fake *f)
{
	outmsg *m = outq_pop(hub_client_queue(f->c));
	char *s;

	if (!m)
		return NULL;
	s = strndup((const char *) outmsg_payload(m), outmsg_len(m));
	CHECK_INT(strlen(s), outmsg_len(m)); /* no NUL inside a frame */
	outmsg_unref(m);
	return s;
}

/* Pops the next message parsed, or NULL (none, or not JSON: a failure). */
static json_t *
pop_json(fake *f)
{
	char *s = pop_text(f);
	json_error_t jerr;
	json_t *j;

	if (!s)
		return NULL;
	j = json_loads(s, JSON_REJECT_DUPLICATES, &jerr);
	CHECK_MSG(j != NULL, "frame is not JSON: %s (%s)", s, jerr.text);
	free(s);
	return j;
}

static void
drain(fake *f)
{
	char *s;

	while ((s = pop_text(f)))
		free(s);
}

/* ---- expectations ------------------------------------------------------ */

/*
 * The next message of f equals want (json_equal: same members, arrays in
 * the same order).  want is stolen.  Reported at the caller's line.
 */
#define EXPECT(f, want) expect_json(__LINE__, f, want)
static void
expect_json(int line, fake *f, json_t *want)
{
	json_t *got = pop_json(f);
	char *gs = got ? json_dumps(got, JSON_COMPACT) : NULL;
	char *ws = want ? json_dumps(want, JSON_COMPACT) : NULL;

	CHECK_MSG(got && want && json_equal(got, want), "line %d: got %s, want %s",
			  line, gs ? gs : "(nothing)", ws ? ws : "(bad expectation)");
	free(gs);
	free(ws);
	json_decref(got);
	json_decref(want);
}

/* The next message of f is exactly the text want (byte for byte). */
#define EXPECT_TEXT(f, want) expect_text(__LINE__, f, want)
static void
expect_text(int line, fake *f, const char *want)
{
	char *got = pop_text(f);

	CHECK_MSG(got && !strcmp(got, want), "line %d: got %s, want %s", line,
			  got ? got : "(nothing)", want);
	free(got);
}

/*
 * The next message of f is an error with this code and query (NULL: no
 * query member) and a non-empty message, and nothing else.
 */
#define EXPECT_ERROR(f, code, query) expect_error(__LINE__, f, code, query)
static void
expect_error(int line, fake *f, const char *code, const char *query)
{
	json_t *got = pop_json(f);
	const char *msg = json_string_value(json_object_get(got, "message"));
	json_t *want =
		query ? json_pack("{s:s,s:s,s:s,s:s}", "type", "error", "code", code,
						  "message", msg ? msg : "", "query", query)
			  : json_pack("{s:s,s:s,s:s}", "type", "error", "code", code,
						  "message", msg ? msg : "");
	char *gs = got ? json_dumps(got, JSON_COMPACT) : NULL;

	CHECK_MSG(got && msg && *msg && json_equal(got, want),
			  "line %d: got %s, want error %s (query %s)", line,
			  gs ? gs : "(nothing)", code, query ? query : "absent");
	free(gs);
	json_decref(got);
	json_decref(want);
}

/*
 * The next two messages of f are w1 and w2 in either order (stolen): the
 * leaves of a disconnect come in presence's order, which is unspecified.
 */
#define EXPECT_SET2(f, w1, w2) expect_set2(__LINE__, f, w1, w2)
static void
expect_set2(int line, fake *f, json_t *w1, json_t *w2)
{
	json_t *m1 = pop_json(f);
	json_t *m2 = pop_json(f);
	char *s1 = m1 ? json_dumps(m1, JSON_COMPACT) : NULL;
	char *s2 = m2 ? json_dumps(m2, JSON_COMPACT) : NULL;

	CHECK_MSG(m1 && m2 &&
				  ((json_equal(m1, w1) && json_equal(m2, w2)) ||
				   (json_equal(m1, w2) && json_equal(m2, w1))),
			  "line %d: got %s and %s", line, s1 ? s1 : "(nothing)",
			  s2 ? s2 : "(nothing)");
	free(s1);
	free(s2);
	json_decref(m1);
	json_decref(m2);
	json_decref(w1);
	json_decref(w2);
}

#define EXPECT_NONE(f)                                                         \
	CHECK_MSG(pending(f) == 0, "%s has %zu unexpected message(s)", #f,         \
			  pending(f))

static json_t *
j_join(const char *doc, const char *uid, const char *uname)
{
	return json_pack("{s:s,s:s,s:s,s:s}", "type", "presence.join", "documentId",
					 doc, "userId", uid, "userName", uname);
}

static json_t *
j_leave(const char *doc, const char *uid, const char *uname)
{
	return json_pack("{s:s,s:s,s:s,s:s}", "type", "presence.leave",
					 "documentId", doc, "userId", uid, "userName", uname);
}

static json_t *
j_subscribed(const char *query)
{
	return json_pack("{s:s,s:s}", "type", "subscribed", "query", query);
}

static json_t *
j_unsubscribed(const char *query)
{
	return json_pack("{s:s,s:s}", "type", "unsubscribed", "query", query);
}

/* type NULL: "documentType":null */
static json_t *
j_mutation(const char *id, const char *type, const char *op, const char *query)
{
	return json_pack("{s:s,s:s,s:o,s:s,s:s,s:s}", "type", "mutation",
					 "documentId", id, "documentType",
					 type ? json_string(type) : json_null(), "operation", op,
					 "ts", TS, "query", query);
}

static json_t *
j_updated(const char *id, const char *op)
{
	return json_pack("{s:s,s:s,s:s,s:s}", "type", "document.updated",
					 "documentId", id, "operation", op, "ts", TS);
}

static json_t *
j_empty_snapshot(void)
{
	return json_pack("{s:s,s:[]}", "type", "presence.snapshot", "documents");
}

/*
 * Pops every pending message of f and checks they are exactly the mutations
 * of id for these queries, in any order (subs_match has no order).
 */
#define EXPECT_MUTATIONS(f, id, type, n, ...)                                  \
	expect_mutations(__LINE__, f, id, type, n, __VA_ARGS__)
static void
expect_mutations(int line, fake *f, const char *id, const char *type, size_t n,
				 ...)
{
	const char *queries[16];
	bool seen[16] = {false};
	size_t got = 0;
	va_list ap;
	json_t *m;

	va_start(ap, n);
	for (size_t i = 0; i < n; i++)
		queries[i] = va_arg(ap, const char *);
	va_end(ap);
	while ((m = pop_json(f)))
	{
		const char *q = json_string_value(json_object_get(m, "query"));
		bool ok = false;

		got++;
		for (size_t i = 0; q && i < n; i++)
			if (!seen[i] && !strcmp(q, queries[i]))
			{
				json_t *want = j_mutation(id, type, "update", queries[i]);

				ok = seen[i] = json_equal(m, want);
				json_decref(want);
				break;
			}
		if (!ok)
		{
			char *s = json_dumps(m, JSON_COMPACT);

			CHECK_MSG(0, "line %d: unexpected message %s", line, s);
			free(s);
		}
		json_decref(m);
	}
	CHECK_MSG(got == n, "line %d: got %zu messages, want %zu mutations", line,
			  got, n);
}

/* ---- client frames ----------------------------------------------------- */

static void
send_text(hub *h, fake *f, const char *text)
{
	hub_receive(h, f->c, text, strlen(text));
}

static void
send_json(hub *h, fake *f, json_t *frame)
{
	char *s = json_dumps(frame, JSON_COMPACT);

	send_text(h, f, s);
	free(s);
	json_decref(frame);
}

static void
join(hub *h, fake *f, const char *doc)
{
	send_json(
		h, f,
		json_pack("{s:s,s:s}", "type", "presence.join", "documentId", doc));
}

static void
leave(hub *h, fake *f, const char *doc)
{
	send_json(
		h, f,
		json_pack("{s:s,s:s}", "type", "presence.leave", "documentId", doc));
}

/* params: stolen JSON (or NULL); dataset NULL: no dataset member. */
static void
subscribe(hub *h, fake *f, const char *query, json_t *params,
		  const char *dataset)
{
	json_t *frame = json_pack("{s:s,s:s}", "type", "subscribe", "query", query);

	if (params)
		json_object_set_new(frame, "params", params);
	if (dataset)
		json_object_set_new(frame, "dataset", json_string(dataset));
	send_json(h, f, frame);
}

static void
unsubscribe(hub *h, fake *f, const char *query)
{
	send_json(h, f,
			  json_pack("{s:s,s:s}", "type", "unsubscribe", "query", query));
}

/* subscribe + check the `subscribed` reply. */
#define SUBSCRIBE_OK(h, f, query)                                              \
	do                                                                         \
	{                                                                          \
		subscribe(h, f, query, NULL, NULL);                                    \
		EXPECT(f, j_subscribed(query));                                        \
		EXPECT_NONE(f);                                                        \
	} while (0)

/* ---- events ------------------------------------------------------------ */

/* An update event; type may be NULL.  Release with event_free(). */
static rt_event
ev_make(const char *dataset, const char *id, const char *type)
{
	rt_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.position = 1;
	ev.txid = 1;
	ev.dataset = strdup(dataset);
	ev.document_id = strdup(id);
	ev.document_type = type ? strdup(type) : NULL;
	ev.operation = strdup("update");
	ev.ts = strdup(TS);
	return ev;
}

static void
dispatch(hub *h, const char *dataset, const char *id, const char *type)
{
	rt_event ev = ev_make(dataset, id, type);

	hub_dispatch(h, &ev);
	event_free(&ev);
}

static bool
needs_document(hub *h, const char *dataset, const char *type)
{
	rt_event ev = ev_make(dataset, "x", type);
	bool r = hub_needs_document(h, &ev);

	event_free(&ev);
	return r;
}

/* ---- tests ------------------------------------------------------------- */

static void
test_connect(void)
{
	hub_config cfg = config_default();
	hub *h = hub_new(&cfg, &sink, seed);
	fake a, b;
	char want[256];

	CHECK(h != NULL);
	if (!h)
		return;
	CHECK_INT(hub_client_count(h), 0);

	fake_connect(h, &a, "u1", "Alice", "production");
	CHECK_INT(a.wakes, 1);
	CHECK_INT(a.closes, 0);
	CHECK_INT(pending(&a), 2);
	snprintf(want, sizeof(want),
			 "{\"type\":\"welcome\",\"clientId\":\"%s\",\"userId\":\"u1\"}",
			 hub_client_id(a.c));
	EXPECT_TEXT(&a, want);
	EXPECT_TEXT(&a, "{\"type\":\"presence.snapshot\",\"documents\":[]}");
	EXPECT_NONE(&a);

	/* Same user, same dataset: still a new, distinct client id. */
	fake_connect(h, &b, "u1", "Alice", "production");
	/* 32 hex digits of a keyed hash: no connection count in them */
	CHECK_INT(strlen(hub_client_id(a.c)), 32);
	CHECK(strspn(hub_client_id(a.c), "0123456789abcdef") == 32);
	CHECK(strcmp(hub_client_id(a.c), hub_client_id(b.c)) != 0);
	snprintf(want, sizeof(want),
			 "{\"type\":\"welcome\",\"clientId\":\"%s\",\"userId\":\"u1\"}",
			 hub_client_id(b.c));
	EXPECT_TEXT(&b, want);
	EXPECT(&b, j_empty_snapshot());
	CHECK_INT(b.wakes, 1);
	CHECK_INT(hub_client_count(h), 2);
	/* A connect tells the others nothing (presence is per document). */
	EXPECT_NONE(&a);

	/* wake fires again when the drained queue gets a message. */
	subscribe(h, &a, "*[_type == \"post\"]", NULL, NULL);
	CHECK_INT(a.wakes, 2);
	subscribe(h, &a, "*[_type == \"page\"]", NULL, NULL);
	CHECK_INT(a.wakes, 2); /* not empty: no new wake */
	CHECK_INT(pending(&a), 2);

	fake_disconnect(h, &a);
	CHECK_INT(hub_client_count(h), 1);
	fake_disconnect(h, &b);
	CHECK_INT(hub_client_count(h), 0);
	CHECK_INT(a.closes + b.closes, 0);

	/* The dataset entry is gone with its last client; a new one works. */
	fake_connect(h, &a, "u2", "Bob", "production");
	drain(&a);
	join(h, &a, "d1");
	EXPECT_NONE(&a);
	hub_free(h); /* frees the client still connected */
}

static void
test_presence(void)
{
	hub_config cfg = config_default();
	hub *h = hub_new(&cfg, &sink, seed);
	fake a1, a2, b, s, c;

	fake_connect(h, &a1, "u1", "Alice Smith", "production");
	fake_connect(h, &a2, "u1", "Alice Smith", "production");
	fake_connect(h, &b, "u2", "Bob", "production");
	fake_connect(h, &s, "u9", "Sam", "staging");
	drain(&a1);
	drain(&a2);
	drain(&b);
	drain(&s);

	/* First tab joins: every other connection hears it, the sender not. */
	join(h, &a1, "d1");
	EXPECT_NONE(&a1);
	EXPECT(&a2, j_join("d1", "u1", "Alice Smith"));
	EXPECT(&b, j_join("d1", "u1", "Alice Smith"));
	EXPECT_NONE(&a2);
	EXPECT_NONE(&b);
	EXPECT_NONE(&s); /* other dataset */

	/* Second tab of the same user: same present user, nothing said. */
	join(h, &a2, "d1");
	EXPECT_NONE(&a1);
	EXPECT_NONE(&a2);
	EXPECT_NONE(&b);

	/* Joining twice is harmless. */
	join(h, &a1, "d1");
	EXPECT_NONE(&a1);
	EXPECT_NONE(&a2);
	EXPECT_NONE(&b);

	/* Leaving a document never joined is harmless. */
	leave(h, &b, "d1");
	leave(h, &b, "nope");
	EXPECT_NONE(&a1);
	EXPECT_NONE(&a2);
	EXPECT_NONE(&b);

	/* A new client's snapshot: d1 with Alice once, named by the identity. */
	fake_connect(h, &c, "u3", "Carol", "production");
	free(pop_text(&c)); /* welcome */
	EXPECT(&c, json_pack("{s:s,s:[{s:s,s:[{s:s,s:s}]}]}", "type",
						 "presence.snapshot", "documents", "documentId", "d1",
						 "users", "userId", "u1", "userName", "Alice Smith"));
	EXPECT_NONE(&c);
	fake_disconnect(h, &c);

	/* First tab leaves: the user is still present through the second. */
	leave(h, &a1, "d1");
	EXPECT_NONE(&a1);
	EXPECT_NONE(&a2);
	EXPECT_NONE(&b);

	/* Second tab leaves: now the user is gone. */
	leave(h, &a2, "d1");
	EXPECT(&a1, j_leave("d1", "u1", "Alice Smith"));
	EXPECT(&b, j_leave("d1", "u1", "Alice Smith"));
	EXPECT_NONE(&a1);
	EXPECT_NONE(&a2);
	EXPECT_NONE(&b);
	EXPECT_NONE(&s);

	/* Leaving again: nothing. */
	leave(h, &a2, "d1");
	EXPECT_NONE(&a1);
	EXPECT_NONE(&b);

	/* The staging client's presence stays in staging. */
	join(h, &s, "d1");
	EXPECT_NONE(&a1);
	EXPECT_NONE(&a2);
	EXPECT_NONE(&b);
	EXPECT_NONE(&s);

	/* Disconnect broadcasts the leaves of every document it had joined. */
	join(h, &b, "d2");
	join(h, &b, "d3");
	EXPECT(&a1, j_join("d2", "u2", "Bob"));
	EXPECT(&a1, j_join("d3", "u2", "Bob"));
	EXPECT(&a2, j_join("d2", "u2", "Bob"));
	EXPECT(&a2, j_join("d3", "u2", "Bob"));
	fake_disconnect(h, &b);
	EXPECT_SET2(&a1, j_leave("d2", "u2", "Bob"), j_leave("d3", "u2", "Bob"));
	EXPECT_SET2(&a2, j_leave("d2", "u2", "Bob"), j_leave("d3", "u2", "Bob"));
	EXPECT_NONE(&a1);
	EXPECT_NONE(&a2);
	EXPECT_NONE(&s);
	CHECK_INT(a1.closes + a2.closes + s.closes, 0);

	fake_disconnect(h, &a1);
	fake_disconnect(h, &a2);
	fake_disconnect(h, &s);
	CHECK_INT(hub_client_count(h), 0);
	hub_free(h);
}

/*
 * The presence.snapshot a new client gets reflects the presence of its own
 * dataset at that moment, in join order, users named by their identity.
 */
static void
test_snapshot(void)
{
	hub_config cfg = config_default();
	hub *h = hub_new(&cfg, &sink, seed);
	fake a1, a2, b, s, c, d, e;
	char want[512];

	fake_connect(h, &a1, "u1", "Alice \"Al\" Smith", "production");
	fake_connect(h, &a2, "u1", "Alice \"Al\" Smith", "production");
	fake_connect(h, &b, "u2", "Bob", "production");
	fake_connect(h, &s, "u9", "Sam", "staging");
	join(h, &a1, "d1");
	join(h, &a2, "d1");
	join(h, &b, "d1");
	join(h, &b, "d2");
	join(h, &s, "s1");

	fake_connect(h, &c, "u3", "Carol", "production");
	snprintf(want, sizeof(want),
			 "{\"type\":\"welcome\",\"clientId\":\"%s\",\"userId\":\"u3\"}",
			 hub_client_id(c.c));
	EXPECT_TEXT(&c, want);
	EXPECT_TEXT(&c, "{\"type\":\"presence.snapshot\",\"documents\":["
					"{\"documentId\":\"d1\",\"users\":["
					"{\"userId\":\"u1\",\"userName\":\"Alice \\\"Al\\\" "
					"Smith\"},"
					"{\"userId\":\"u2\",\"userName\":\"Bob\"}]},"
					"{\"documentId\":\"d2\",\"users\":["
					"{\"userId\":\"u2\",\"userName\":\"Bob\"}]}]}");
	EXPECT_NONE(&c);

	/* staging sees only staging. */
	fake_connect(h, &d, "u4", "Dan", "staging");
	free(pop_text(&d)); /* welcome */
	EXPECT(&d, json_pack("{s:s,s:[{s:s,s:[{s:s,s:s}]}]}", "type",
						 "presence.snapshot", "documents", "documentId", "s1",
						 "users", "userId", "u9", "userName", "Sam"));

	/*
	 * After presence changes, a new client's snapshot is fresh: Bob left
	 * d1, and Alice's first tab went away (her second is still on d1).
	 */
	leave(h, &b, "d1");
	fake_disconnect(h, &a1);
	fake_connect(h, &e, "u5", "Eve", "production");
	free(pop_text(&e)); /* welcome */
	EXPECT(&e, json_pack("{s:s,s:[{s:s,s:[{s:s,s:s}]},{s:s,s:[{s:s,s:s}]}]}",
						 "type", "presence.snapshot", "documents", "documentId",
						 "d1", "users", "userId", "u1", "userName",
						 "Alice \"Al\" Smith", "documentId", "d2", "users",
						 "userId", "u2", "userName", "Bob"));
	fake_disconnect(h, &a2);
	fake_disconnect(h, &e);
	fake_connect(h, &e, "u5", "Eve", "production");
	free(pop_text(&e)); /* welcome */
	EXPECT(&e, json_pack("{s:s,s:[{s:s,s:[{s:s,s:s}]}]}", "type",
						 "presence.snapshot", "documents", "documentId", "d2",
						 "users", "userId", "u2", "userName", "Bob"));
	hub_free(h);
}

/* Limit on documents per connection: an error, and the connection stays. */
static void
test_presence_limit(void)
{
	hub_config cfg = config_default();
	hub *h;
	fake a, b;

	cfg.max_presence_documents = 2;
	h = hub_new(&cfg, &sink, seed);
	fake_connect(h, &a, "u1", "Alice", "production");
	fake_connect(h, &b, "u2", "Bob", "production");
	drain(&a);
	drain(&b);

	join(h, &a, "d1");
	join(h, &a, "d2");
	join(h, &a, "d2"); /* already joined: not a third document */
	EXPECT_NONE(&a);
	join(h, &a, "d3");
	EXPECT_ERROR(&a, "limit_exceeded", NULL);
	EXPECT_NONE(&a);
	CHECK_INT(a.closes, 0);
	EXPECT(&b, j_join("d1", "u1", "Alice"));
	EXPECT(&b, j_join("d2", "u1", "Alice"));
	EXPECT_NONE(&b); /* d3 was refused: nobody hears of it */

	/* A slot freed is usable again: the connection was kept. */
	leave(h, &a, "d1");
	join(h, &a, "d3");
	EXPECT_NONE(&a);
	EXPECT(&b, j_leave("d1", "u1", "Alice"));
	EXPECT(&b, j_join("d3", "u1", "Alice"));
	EXPECT_NONE(&b);

	fake_disconnect(h, &a);
	EXPECT_SET2(&b, j_leave("d2", "u1", "Alice"), j_leave("d3", "u1", "Alice"));
	EXPECT_NONE(&b);
	hub_free(h);
}

static void
test_subscribe(void)
{
	hub_config cfg = config_default();
	hub *h;
	fake a, b;
	const char *qt = "*[_type == $t]";
	const char *qp = "*[_type == \"post\"]";

	cfg.max_subscriptions = 3;
	h = hub_new(&cfg, &sink, seed);
	fake_connect(h, &a, "u1", "Alice", "production");
	fake_connect(h, &b, "u2", "Bob", "production");
	drain(&a);
	drain(&b);

	/* subscribed, with the query; the own dataset named is fine */
	subscribe(h, &a, qp, NULL, "production");
	EXPECT(&a, j_subscribed(qp));
	EXPECT_NONE(&a);
	EXPECT_NONE(&b);

	/* params, then a re-subscribe of the same text replaces them */
	subscribe(h, &a, qt, json_pack("{s:s}", "t", "page"), NULL);
	EXPECT(&a, j_subscribed(qt));
	subscribe(h, &a, qt, json_pack("{s:s}", "t", "author"), NULL);
	EXPECT(&a, j_subscribed(qt));
	EXPECT_NONE(&a);
	dispatch(h, "production", "p1", "page");
	EXPECT_NONE(&a); /* the old params match no more */
	dispatch(h, "production", "a1", "author");
	EXPECT(&a, j_mutation("a1", "author", "update", qt));
	EXPECT_NONE(&a);

	/* A refused re-subscribe (undefined $t) keeps the previous params. */
	subscribe(h, &a, qt, json_pack("{}"), NULL);
	EXPECT_ERROR(&a, "invalid_query", qt);
	EXPECT_NONE(&a);
	dispatch(h, "production", "a2", "author");
	EXPECT(&a, j_mutation("a2", "author", "update", qt));
	EXPECT_NONE(&a);

	/* undefined $param on a new subscription */
	subscribe(h, &a, "*[_id == $id]", NULL, NULL);
	EXPECT_ERROR(&a, "invalid_query", "*[_id == $id]");
	EXPECT_NONE(&a);

	/* a query that does not compile */
	subscribe(h, &a, "*[_type ==", NULL, NULL);
	EXPECT_ERROR(&a, "invalid_query", "*[_type ==");
	subscribe(h, &a, "*[_type == \"post\"] | order(_id)", NULL, NULL);
	EXPECT_ERROR(&a, "invalid_query", "*[_type == \"post\"] | order(_id)");
	EXPECT_NONE(&a);

	/* another dataset named: refused, and nothing subscribed */
	subscribe(h, &a, "*[_type == \"secret\"]", NULL, "staging");
	EXPECT_ERROR(&a, "dataset_mismatch", "*[_type == \"secret\"]");
	EXPECT_NONE(&a);
	dispatch(h, "production", "s1", "secret");
	EXPECT_NONE(&a);

	/* limit: a third text is fine, a fourth is refused */
	SUBSCRIBE_OK(h, &a, "*[_type == \"x\"]");
	subscribe(h, &a, "*[_type == \"y\"]", NULL, NULL);
	EXPECT_ERROR(&a, "limit_exceeded", "*[_type == \"y\"]");
	EXPECT_NONE(&a);
	CHECK_INT(a.closes, 0);
	dispatch(h, "production", "y1", "y");
	EXPECT_NONE(&a);
	/* at the limit, re-subscribing an existing text still works */
	SUBSCRIBE_OK(h, &a, "*[_type == \"x\"]");

	/* unsubscribe: reply with the query; delivery stops */
	unsubscribe(h, &a, qp);
	EXPECT(&a, j_unsubscribed(qp));
	EXPECT_NONE(&a);
	dispatch(h, "production", "p2", "post");
	EXPECT_NONE(&a);
	/* unknown or already gone: still unsubscribed */
	unsubscribe(h, &a, qp);
	EXPECT(&a, j_unsubscribed(qp));
	unsubscribe(h, &a, "never");
	EXPECT(&a, j_unsubscribed("never"));
	EXPECT_NONE(&a);
	/* and the slot is free again */
	SUBSCRIBE_OK(h, &a, "*[_type == \"y\"]");

	/* b saw none of it */
	EXPECT_NONE(&b);
	CHECK_INT(b.closes, 0);
	fake_disconnect(h, &a);
	fake_disconnect(h, &b);
	hub_free(h);
}

/* Malformed frames: one error each, nothing else happens. */
static void
test_protocol_errors(void)
{
	hub_config cfg = config_default();
	hub *h = hub_new(&cfg, &sink, seed);
	fake a, b;
	static const struct
	{
		const char *frame;
		const char *code;
		const char *query; /* NULL: no query member in the error */
	} cases[] = {
		{"", "invalid_json", NULL},
		{"not json", "invalid_json", NULL},
		{"{\"type\":\"presence.join\",\"documentId\":\"d1\"", "invalid_json",
		 NULL},
		{"{\"type\":\"presence.join\",\"documentId\":\"d1\"} x", "invalid_json",
		 NULL},
		{"[1,2]", "invalid_json", NULL},
		{"{\"type\":\"presence.join\",\"type\":\"presence.join\","
		 "\"documentId\":\"d1\"}",
		 "invalid_json", NULL},
		{"{\"type\":\"hello\"}", "unknown_type", NULL},
		{"{\"type\":\"welcome\",\"clientId\":\"x\"}", "unknown_type", NULL},
		{"{\"documentId\":\"d1\"}", "missing_field", NULL},
		{"{\"type\":\"presence.join\"}", "missing_field", NULL},
		{"{\"type\":\"presence.leave\"}", "missing_field", NULL},
		{"{\"type\":\"subscribe\"}", "missing_field", NULL},
		{"{\"type\":\"unsubscribe\"}", "missing_field", NULL},
		{"{\"type\":1}", "invalid_field", NULL},
		{"{\"type\":\"subscribe\",\"query\":\"*[a == 1]\",\"params\":[1]}",
		 "invalid_field", "*[a == 1]"},
		{"{\"type\":\"subscribe\",\"query\":\"*[a == 1]\",\"dataset\":3}",
		 "invalid_field", "*[a == 1]"},
	};

	fake_connect(h, &a, "u1", "Alice", "production");
	fake_connect(h, &b, "u2", "Bob", "production");
	drain(&a);
	drain(&b);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		send_text(h, &a, cases[i].frame);
		expect_error(__LINE__, &a, cases[i].code, cases[i].query);
		CHECK_MSG(pending(&a) == 0, "frame %s: extra message", cases[i].frame);
	}
	/* not NUL-terminated: only len bytes count */
	hub_receive(h, a.c, "{\"type\":\"presence.join\",\"documentId\":\"d1\"}XX",
				42);
	EXPECT_NONE(&a);
	EXPECT(&b, j_join("d1", "u1", "Alice"));
	/* an embedded NUL ends nothing: still one invalid frame */
	hub_receive(h, a.c, "{\"type\":\0\"x\"}", 13);
	EXPECT_ERROR(&a, "invalid_json", NULL);

	EXPECT_NONE(&a);
	EXPECT_NONE(&b);
	CHECK_INT(a.closes + b.closes, 0);
	fake_disconnect(h, &a);
	fake_disconnect(h, &b);
	hub_free(h);
}

static void
test_dispatch(void)
{
	hub_config cfg = config_default();
	hub *h = hub_new(&cfg, &sink, seed);
	fake x, y, z, n;
	const char *qpost = "*[_type == \"post\"]";
	const char *qid = "*[_id == \"p1\"]";
	const char *qpage = "*[_type == \"page\"]";
	const char *qhi = "*[_type == \"post\" && title == \"Hi\"]";
	rt_event ev;

	fake_connect(h, &x, "u1", "Xena", "production");
	fake_connect(h, &y, "u2", "Yann", "production");
	fake_connect(h, &n, "u3", "Nora", "production"); /* no subscription */
	fake_connect(h, &z, "u1", "Xena", "staging");
	drain(&x);
	drain(&y);
	drain(&n);
	drain(&z);
	SUBSCRIBE_OK(h, &x, qpost);
	SUBSCRIBE_OK(h, &x, qid);
	SUBSCRIBE_OK(h, &y, qpage);
	SUBSCRIBE_OK(h, &z, qpost);

	/* Only type/id filters so far: no document needed anywhere. */
	CHECK(!needs_document(h, "production", "post"));
	CHECK(!needs_document(h, "production", "page"));
	CHECK(!needs_document(h, "production", NULL));
	CHECK(!needs_document(h, "staging", "post"));
	CHECK(!needs_document(h, "nobody", "post"));

	/* Two matching subscriptions on one client: two mutations. */
	dispatch(h, "production", "p1", "post");
	EXPECT_MUTATIONS(&x, "p1", "post", 2, qpost, qid);
	EXPECT_NONE(&y);
	EXPECT_NONE(&n);
	EXPECT_NONE(&z); /* staging never sees production */

	dispatch(h, "production", "g1", "page");
	EXPECT_NONE(&x);
	EXPECT(&y, j_mutation("g1", "page", "update", qpage));
	EXPECT_NONE(&y);
	EXPECT_NONE(&z);

	/*
	 * A document without a type: SPEC §4 lists documentType among the
	 * fields of every mutation, so it is null (as in the NOTIFY payload),
	 * not absent.
	 */
	dispatch(h, "production", "p1", NULL);
	EXPECT(&x, j_mutation("p1", NULL, "update", qid));
	EXPECT_NONE(&x);
	EXPECT_NONE(&y);

	/* The same event in staging goes to staging only. */
	dispatch(h, "staging", "p1", "post");
	EXPECT(&z, j_mutation("p1", "post", "update", qpost));
	EXPECT_NONE(&z);
	EXPECT_NONE(&x);
	EXPECT_NONE(&y);

	/* A dataset with no client at all. */
	dispatch(h, "other", "p1", "post");
	EXPECT_NONE(&x);
	EXPECT_NONE(&z);

	/* A content filter: the document is needed for posts of production. */
	SUBSCRIBE_OK(h, &x, qhi);
	CHECK(needs_document(h, "production", "post"));
	CHECK(!needs_document(h, "production", "page"));
	CHECK(!needs_document(h, "production", NULL));
	CHECK(!needs_document(h, "staging", "post"));
	CHECK(!needs_document(h, "other", "post"));

	ev = ev_make("production", "p1", "post");
	/* without the document the content filter is skipped */
	hub_dispatch(h, &ev);
	EXPECT_MUTATIONS(&x, "p1", "post", 2, qpost, qid);
	/* with it, it is decided */
	ev.document =
		json_pack("{s:s,s:s,s:s}", "_id", "p1", "_type", "post", "title", "Hi");
	hub_dispatch(h, &ev);
	EXPECT_MUTATIONS(&x, "p1", "post", 3, qpost, qid, qhi);
	json_decref(ev.document);
	ev.document = json_pack("{s:s,s:s,s:s}", "_id", "p1", "_type", "post",
							"title", "Bye");
	hub_dispatch(h, &ev);
	EXPECT_MUTATIONS(&x, "p1", "post", 2, qpost, qid);
	event_free(&ev);
	EXPECT_NONE(&y);
	EXPECT_NONE(&z);

	/* A truncated event without its document decides nothing. */
	ev = ev_make("production", "p1", "post");
	ev.truncated = true;
	hub_dispatch(h, &ev);
	event_free(&ev);
	EXPECT_NONE(&x);

	/* A scan group reading content: needed for every type, and none. */
	SUBSCRIBE_OK(h, &y, "*[defined(title)]");
	CHECK(needs_document(h, "production", "page"));
	CHECK(needs_document(h, "production", NULL));
	CHECK(!needs_document(h, "staging", "page"));

	/* Once the content subscriptions are gone, no document needed. */
	unsubscribe(h, &x, qhi);
	EXPECT(&x, j_unsubscribed(qhi));
	fake_disconnect(h, &y);
	CHECK(!needs_document(h, "production", "post"));
	CHECK(!needs_document(h, "production", NULL));

	/* A disconnected client's subscriptions are gone with it. */
	fake_disconnect(h, &x);
	dispatch(h, "production", "p1", "post");
	EXPECT_NONE(&n);
	fake_disconnect(h, &n);
	fake_disconnect(h, &z);
	CHECK_INT(hub_client_count(h), 0);
	hub_free(h);
}

/* document.updated goes to every client present on the document, once. */
static void
test_document_updated(void)
{
	hub_config cfg = config_default();
	hub *h = hub_new(&cfg, &sink, seed);
	fake a1, a2, b, c, s;
	const char *q = "*[_id == \"d1\"]";

	fake_connect(h, &a1, "u1", "Alice", "production");
	fake_connect(h, &a2, "u1", "Alice", "production");
	fake_connect(h, &b, "u2", "Bob", "production");
	fake_connect(h, &c, "u3", "Carol", "production");
	fake_connect(h, &s, "u1", "Alice", "staging");
	join(h, &a1, "d1");
	join(h, &a2, "d1");
	join(h, &a2, "d2");
	join(h, &b, "d1");
	join(h, &s, "d1");
	drain(&a1);
	drain(&a2);
	drain(&b);
	drain(&c);
	drain(&s);
	SUBSCRIBE_OK(h, &b, q);

	dispatch(h, "production", "d1", "post");
	EXPECT(&a1, j_updated("d1", "update"));
	EXPECT(&a2, j_updated("d1", "update"));
	EXPECT_NONE(&a1);
	EXPECT_NONE(&a2);
	/* b: its subscription's mutation, then the presence notification */
	EXPECT(&b, j_mutation("d1", "post", "update", q));
	EXPECT(&b, j_updated("d1", "update"));
	EXPECT_NONE(&b);
	EXPECT_NONE(&c);
	EXPECT_NONE(&s);

	dispatch(h, "production", "d2", NULL);
	EXPECT(&a2, j_updated("d2", "update"));
	EXPECT_NONE(&a1);
	EXPECT_NONE(&a2);
	EXPECT_NONE(&b);

	dispatch(h, "staging", "d1", "post");
	EXPECT(&s, j_updated("d1", "update"));
	EXPECT_NONE(&a1);
	EXPECT_NONE(&b);

	/* After a leave, no more notifications for that client. */
	leave(h, &a1, "d1");
	dispatch(h, "production", "d1", "post");
	EXPECT_NONE(&a1);
	EXPECT(&a2, j_updated("d1", "update"));
	drain(&b);

	/* a2 was u1's last connection on d1 and d2: the leaves follow */
	fake_disconnect(h, &a2);
	EXPECT_SET2(&a1, j_leave("d1", "u1", "Alice"),
				j_leave("d2", "u1", "Alice"));
	EXPECT_SET2(&b, j_leave("d1", "u1", "Alice"), j_leave("d2", "u1", "Alice"));
	EXPECT_SET2(&c, j_leave("d1", "u1", "Alice"), j_leave("d2", "u1", "Alice"));
	dispatch(h, "production", "d2", "post");
	EXPECT_NONE(&a1);
	EXPECT_NONE(&b);
	EXPECT_NONE(&c);

	fake_disconnect(h, &a1);
	fake_disconnect(h, &b);
	fake_disconnect(h, &c);
	fake_disconnect(h, &s);
	hub_free(h);
}

/*
 * A client that does not drain past max_queue_bytes is closed 4008 once,
 * its queue released at once; the others are unaffected.
 */
static void
test_slow_client(void)
{
	hub_config cfg = config_default();
	hub *h;
	fake slow, fast, other;
	const char *q = "*[_type == \"post\"]";
	char id[32];
	int sent = 0;

	cfg.max_queue_bytes = 600;
	h = hub_new(&cfg, &sink, seed);
	fake_connect_exp(h, &slow, "u1", "Slow", "production", 100);
	fake_connect(h, &fast, "u2", "Fast", "production");
	fake_connect(h, &other, "u3", "Other", "production");
	drain(&slow);
	drain(&fast);
	drain(&other);
	join(h, &slow, "d1");
	EXPECT(&fast, j_join("d1", "u1", "Slow"));
	drain(&other);
	SUBSCRIBE_OK(h, &slow, q);
	SUBSCRIBE_OK(h, &fast, q);

	/*
	 * The slow client never drains, the fast one always does; each
	 * mutation is ~130 bytes.
	 */
	while (slow.closes == 0 && sent < 100)
	{
		snprintf(id, sizeof(id), "p%d", sent++);
		dispatch(h, "production", id, "post");
		EXPECT(&fast, j_mutation(id, "post", "update", q));
		CHECK(outq_bytes(hub_client_queue(slow.c)) <= 600);
	}
	CHECK_INT(slow.closes, 1);
	CHECK_INT(slow.close_code, HUB_CLOSE_SLOW);
	CHECK(slow.close_reason[0] != '\0');
	CHECK(sent > 2);
	CHECK_INT(pending(&slow), 0); /* released at once */
	CHECK_INT(outq_bytes(hub_client_queue(slow.c)), 0);
	/* connect, `subscribed`, first mutation */
	CHECK_INT(slow.wakes, 3);

	/* Nothing more is queued for it, and close is not repeated. */
	dispatch(h, "production", "late", "post");
	join(h, &fast, "d1");
	subscribe(h, &slow, "*[_type == \"page\"]", NULL, NULL);
	join(h, &slow, "d9"); /* ignored: it is closing */
	CHECK_INT(pending(&slow), 0);
	CHECK_INT(slow.wakes, 3);
	/* other: fast's join, not slow's d9 (ignored while closing) */
	EXPECT(&other, j_join("d1", "u2", "Fast"));
	EXPECT_NONE(&other);
	EXPECT(&fast, j_mutation("late", "post", "update", q));
	EXPECT_NONE(&fast);
	CHECK_INT(fast.closes + other.closes, 0);

	/* Closing it again (expiry, shutdown) does not repeat the close. */
	hub_expire(h, 200);
	CHECK_INT(slow.closes, 1);
	CHECK_INT(slow.close_code, HUB_CLOSE_SLOW);

	/* The transport finally drops it: presence leaves follow. */
	fake_disconnect(h, &slow);
	CHECK_INT(hub_client_count(h), 2);
	EXPECT(&fast, j_leave("d1", "u1", "Slow"));
	EXPECT(&other, j_leave("d1", "u1", "Slow"));
	EXPECT_NONE(&fast);
	EXPECT_NONE(&other);
	CHECK_INT(slow.closes, 1);
	CHECK_INT(fast.closes + other.closes, 0);
	fake_disconnect(h, &fast);
	fake_disconnect(h, &other);
	hub_free(h);
}

/* Overflow while the broadcast is in progress: others still get theirs. */
static void
test_slow_presence_broadcast(void)
{
	hub_config cfg = config_default();
	hub *h;
	fake a, b, c;
	char doc[32];
	int n = 0;

	cfg.max_queue_bytes = 400;
	h = hub_new(&cfg, &sink, seed);
	fake_connect(h, &a, "u1", "Alice", "production");
	fake_connect(h, &b, "u2", "Bob", "production"); /* never drains */
	fake_connect(h, &c, "u3", "Carol", "production");
	drain(&a);
	drain(&c);
	while (b.closes == 0 && n < 30)
	{
		snprintf(doc, sizeof(doc), "doc%d", n++);
		join(h, &a, doc);
		EXPECT(&c, j_join(doc, "u1", "Alice"));
		EXPECT_NONE(&c);
	}
	CHECK_INT(b.closes, 1);
	CHECK_INT(b.close_code, HUB_CLOSE_SLOW);
	CHECK_INT(pending(&b), 0);
	CHECK_INT(a.closes + c.closes, 0);
	EXPECT_NONE(&a);
	fake_disconnect(h, &b);
	fake_disconnect(h, &a);
	CHECK_INT(pending(&c), (size_t) n); /* a's leaves */
	fake_disconnect(h, &c);
	hub_free(h);
}

static void
test_expire(void)
{
	hub_config cfg = config_default();
	hub *h = hub_new(&cfg, &sink, seed);
	fake a, b, c, d;

	fake_connect_exp(h, &a, "u1", "Alice", "production", 1000);
	fake_connect_exp(h, &b, "u2", "Bob", "production", 0); /* no exp */
	fake_connect_exp(h, &c, "u3", "Carol", "staging", 2000);
	fake_connect_exp(h, &d, "u4", "Dan", "production", 3000);
	join(h, &a, "d1");
	drain(&b);
	drain(&d);

	hub_expire(h, 999);
	CHECK_INT(a.closes + b.closes + c.closes + d.closes, 0);
	hub_expire(h, 1000); /* expires_at is the first invalid second */
	CHECK_INT(a.closes, 1);
	CHECK_INT(a.close_code, HUB_CLOSE_UNAUTHORIZED);
	CHECK(a.close_reason[0] != '\0');
	CHECK_INT(pending(&a), 0);
	CHECK_INT(b.closes + c.closes + d.closes, 0);
	hub_expire(h, 2500);
	CHECK_INT(a.closes, 1); /* not told twice */
	CHECK_INT(c.closes, 1);
	CHECK_INT(c.close_code, HUB_CLOSE_UNAUTHORIZED);
	CHECK_INT(b.closes + d.closes, 0);
	hub_expire(h, (time_t) 1 << 40);
	CHECK_INT(d.closes, 1);
	CHECK_INT(d.close_code, HUB_CLOSE_UNAUTHORIZED);
	CHECK_INT(b.closes, 0); /* no exp: never expires */
	CHECK_INT(a.closes + c.closes, 2);

	/* a's presence lasts until the transport disconnects it. */
	fake_disconnect(h, &a);
	EXPECT(&b, j_leave("d1", "u1", "Alice"));
	EXPECT_NONE(&b);
	CHECK_INT(pending(&d), 0); /* closing: hears nothing more */
	fake_disconnect(h, &b);
	fake_disconnect(h, &c);
	fake_disconnect(h, &d);
	hub_free(h);
}

static void
test_close_all(void)
{
	hub_config cfg = config_default();
	hub *h = hub_new(&cfg, &sink, seed);
	fake f[5];
	const char *datasets[5] = {"production", "staging", "production", "a", "b"};

	for (int i = 0; i < 5; i++)
	{
		fake_connect(h, &f[i], "u", "U", datasets[i]);
		drain(&f[i]);
		SUBSCRIBE_OK(h, &f[i], "*[_type == \"post\"]");
	}
	join(h, &f[2], "d"); /* leaves f[0]'s queue non-empty */
	CHECK_INT(pending(&f[0]), 1);
	hub_close_all(h, 1001, "server shutting down");
	for (int i = 0; i < 5; i++)
	{
		CHECK_INT(f[i].closes, 1);
		CHECK_INT(f[i].close_code, 1001);
		CHECK_STR(f[i].close_reason, "server shutting down");
		CHECK_INT(pending(&f[i]), 0);
	}
	/* closing clients get nothing more */
	dispatch(h, "production", "p1", "post");
	for (int i = 0; i < 5; i++)
		CHECK_INT(pending(&f[i]), 0);
	CHECK_INT(hub_client_count(h), 5);
	for (int i = 0; i < 5; i++)
		fake_disconnect(h, &f[i]);
	for (int i = 0; i < 5; i++)
		CHECK_INT(f[i].closes, 1);
	CHECK_INT(hub_client_count(h), 0);
	hub_free(h);
}

/* One encoded message, referenced by every queue it went to. */
static void
test_shared_messages(void)
{
	hub_config cfg = config_default();
	hub *h = hub_new(&cfg, &sink, seed);
	fake f[4];
	const char *q = "*[_type == \"post\"]";
	outmsg *m;

	for (int i = 0; i < 4; i++)
	{
		fake_connect(h, &f[i], "u", "U", "production");
		drain(&f[i]);
	}
	for (int i = 0; i < 3; i++)
		SUBSCRIBE_OK(h, &f[i], q);

	dispatch(h, "production", "p1", "post");
	m = outq_peek(hub_client_queue(f[0].c));
	CHECK(m != NULL);
	CHECK(outq_peek(hub_client_queue(f[1].c)) == m);
	CHECK(outq_peek(hub_client_queue(f[2].c)) == m);
	CHECK_INT(outmsg_refs(m), 3);
	EXPECT_NONE(&f[3]);
	outmsg_unref(outq_pop(hub_client_queue(f[0].c)));
	CHECK_INT(outmsg_refs(m), 2);
	EXPECT(&f[1], j_mutation("p1", "post", "update", q));
	EXPECT(&f[2], j_mutation("p1", "post", "update", q));

	/* a presence broadcast: one message for the three others */
	join(h, &f[3], "d1");
	m = outq_peek(hub_client_queue(f[0].c));
	CHECK(m != NULL);
	CHECK(outq_peek(hub_client_queue(f[1].c)) == m);
	CHECK(outq_peek(hub_client_queue(f[2].c)) == m);
	CHECK_INT(outmsg_refs(m), 3);
	for (int i = 0; i < 3; i++)
		EXPECT(&f[i], j_join("d1", "u", "U"));

	/* document.updated to two present clients */
	join(h, &f[0], "d1");
	dispatch(h, "production", "d1", "page");
	m = outq_peek(hub_client_queue(f[0].c));
	CHECK(m != NULL);
	CHECK(outq_peek(hub_client_queue(f[3].c)) == m);
	CHECK_INT(outmsg_refs(m), 2);
	EXPECT(&f[0], j_updated("d1", "update"));
	EXPECT(&f[3], j_updated("d1", "update"));

	for (int i = 0; i < 4; i++)
	{
		drain(&f[i]);
		fake_disconnect(h, &f[i]);
	}
	hub_free(h);
}

/* hub_free with clients, subscriptions, presence and queues in place. */
static void
test_free_busy(void)
{
	hub_config cfg = config_default();
	hub *h = hub_new(&cfg, &sink, seed);
	fake f[6];

	for (int i = 0; i < 6; i++)
	{
		fake_connect(h, &f[i], i % 2 ? "u1" : "u2", "U",
					 i < 3 ? "production" : "staging");
		drain(&f[i]);
		SUBSCRIBE_OK(h, &f[i], "*[_type == \"post\" && x > 1]");
		join(h, &f[i], "d1");
	}
	dispatch(h, "production", "d1", "post");
	hub_close_all(h, 1001, "x");
	for (int i = 0; i < 6; i++)
		CHECK_INT(f[i].closes, 1);
	hub_free(h);
}

int
main(void)
{
	test_connect();
	test_presence();
	test_snapshot();
	test_presence_limit();
	test_subscribe();
	test_protocol_errors();
	test_dispatch();
	test_document_updated();
	test_slow_client();
	test_slow_presence_broadcast();
	test_expire();
	test_close_all();
	test_shared_messages();
	test_free_busy();
	return unit_summary();
}
