/*
 * protocol: parse client frames, encode server messages (SPEC §4).
 *
 * Encoders run their writer twice: once to measure, once to fill an outmsg
 * of exactly that size.  Escaping short strings twice costs less than a
 * json_t tree or a growing buffer, and the message is one allocation.
 */
#include <jansson.h>
#include <string.h>

#include "outq.h"
#include "presence.h"
#include "protocol.h"

/* ---- parsing -------------------------------------------------------- */

void
protocol_limits_default(protocol_limits *lim)
{
	lim->max_document_id = PROTOCOL_DEFAULT_MAX_DOCUMENT_ID;
	lim->max_query = PROTOCOL_DEFAULT_MAX_QUERY;
	lim->max_params_bytes = PROTOCOL_DEFAULT_MAX_PARAMS_BYTES;
	lim->max_params_keys = PROTOCOL_DEFAULT_MAX_PARAMS_KEYS;
}

static int
fail(protocol_error *err, const char *code, const char *message)
{
	err->code = code;
	err->message = message;
	return -1;
}

static int
parse_presence(protocol_msg *msg, const protocol_limits *lim,
			   protocol_error *err)
{
	json_t *id = json_object_get(msg->root, "documentId");

	if (!id)
		return fail(err, PROTOCOL_EMISSING_FIELD, "documentId is required");
	if (!json_is_string(id) || json_string_length(id) == 0)
		return fail(err, PROTOCOL_EINVALID_FIELD,
					"documentId must be a non-empty string");
	if (json_string_length(id) > lim->max_document_id)
		return fail(err, PROTOCOL_ELIMIT_EXCEEDED, "documentId is too long");
	msg->document_id = json_string_value(id);
	return 0;
}

static int
parse_subscription(protocol_msg *msg, const protocol_limits *lim,
				   protocol_error *err)
{
	json_t *query = json_object_get(msg->root, "query");
	json_t *dataset, *params;

	if (!query)
		return fail(err, PROTOCOL_EMISSING_FIELD, "query is required");
	if (!json_is_string(query))
		return fail(err, PROTOCOL_EINVALID_FIELD, "query must be a string");
	/* Too long to be echoed back either. */
	if (json_string_length(query) > lim->max_query)
		return fail(err, PROTOCOL_ELIMIT_EXCEEDED, "query is too long");
	msg->query = json_string_value(query);
	msg->query_len = json_string_length(query);
	err->query = msg->query;
	if (msg->type == PROTOCOL_UNSUBSCRIBE)
		return 0;

	dataset = json_object_get(msg->root, "dataset");
	if (dataset && !json_is_null(dataset))
	{
		if (!json_is_string(dataset))
			return fail(err, PROTOCOL_EINVALID_FIELD,
						"dataset must be a string");
		msg->dataset = json_string_value(dataset);
	}

	params = json_object_get(msg->root, "params");
	if (params && !json_is_null(params))
	{
		if (!json_is_object(params))
			return fail(err, PROTOCOL_EINVALID_FIELD,
						"params must be an object");
		if (json_object_size(params) > lim->max_params_keys)
			return fail(err, PROTOCOL_ELIMIT_EXCEEDED,
						"params has too many keys");
		/* Size as re-encoded, so whitespace in the frame does not count. */
		if (json_dumpb(params, NULL, 0, JSON_COMPACT) > lim->max_params_bytes)
			return fail(err, PROTOCOL_ELIMIT_EXCEEDED, "params is too large");
		msg->params = params;
	}
	return 0;
}

static const struct
{
	const char *name;
	protocol_type type;
} types[] = {
	{"presence.join", PROTOCOL_PRESENCE_JOIN},
	{"presence.leave", PROTOCOL_PRESENCE_LEAVE},
	{"subscribe", PROTOCOL_SUBSCRIBE},
	{"unsubscribe", PROTOCOL_UNSUBSCRIBE},
};

int
protocol_parse(const char *buf, size_t len, const protocol_limits *lim,
			   protocol_msg *msg, protocol_error *err)
{
	json_error_t jerr;
	json_t *type;
	const char *name;
	int rc;

	memset(msg, 0, sizeof(*msg));
	memset(err, 0, sizeof(*err));
	/*
	 * jansson rejects invalid UTF-8, "\u0000" and trailing data; duplicate
	 * keys are refused so that no two readers can see different values.
	 */
	msg->root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!msg->root)
		return fail(err, PROTOCOL_EINVALID_JSON, "frame is not valid JSON");
	if (!json_is_object(msg->root))
		return fail(err, PROTOCOL_EINVALID_JSON, "frame must be a JSON object");

	type = json_object_get(msg->root, "type");
	if (!type)
		return fail(err, PROTOCOL_EMISSING_FIELD, "type is required");
	if (!json_is_string(type))
		return fail(err, PROTOCOL_EINVALID_FIELD, "type must be a string");
	name = json_string_value(type);
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (!strcmp(name, types[i].name))
			msg->type = types[i].type;
	switch (msg->type)
	{
		case PROTOCOL_PRESENCE_JOIN:
		case PROTOCOL_PRESENCE_LEAVE:
			rc = parse_presence(msg, lim, err);
			break;
		case PROTOCOL_SUBSCRIBE:
		case PROTOCOL_UNSUBSCRIBE:
			rc = parse_subscription(msg, lim, err);
			break;
		default:
			return fail(err, PROTOCOL_EUNKNOWN_TYPE, "unknown message type");
	}
	if (rc != 0)
	{
		msg->type = PROTOCOL_NONE;
		msg->document_id = msg->dataset = NULL;
		msg->params = NULL;
	}
	return rc;
}

void
protocol_msg_free(protocol_msg *msg)
{
	json_decref(msg->root);
	memset(msg, 0, sizeof(*msg));
}

/* ---- encoding ------------------------------------------------------- */

/* Writes to buf when set, else only counts. */
typedef struct sink
{
	unsigned char *buf;
	size_t n;
} sink;

static void
put(sink *s, const void *data, size_t len)
{
	if (s->buf)
		memcpy(s->buf + s->n, data, len);
	s->n += len;
}

#define PUT_LIT(s, lit) put((s), (lit), sizeof(lit) - 1)

/* Length of the valid UTF-8 sequence at p (p[0] >= 0x80), or 0. */
static size_t
utf8_seq(const unsigned char *p)
{
	unsigned char c = p[0], lo = 0x80, hi = 0xBF;
	size_t n;

	if (c >= 0xC2 && c <= 0xDF)
		n = 2;
	else if (c >= 0xE0 && c <= 0xEF)
	{
		n = 3;
		if (c == 0xE0)
			lo = 0xA0; /* overlong */
		else if (c == 0xED)
			hi = 0x9F; /* surrogates */
	}
	else if (c >= 0xF0 && c <= 0xF4)
	{
		n = 4;
		if (c == 0xF0)
			lo = 0x90; /* overlong */
		else if (c == 0xF4)
			hi = 0x8F; /* > U+10FFFF */
	}
	else
		return 0;
	/* A NUL terminator fails these tests, so we never read past it. */
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (p[i] < 0x80 || p[i] > 0xBF)
			return 0;
	return n;
}

/* str as a JSON string: quoted, escaped, invalid UTF-8 as U+FFFD. */
static void
put_str(sink *s, const char *str)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *) str, *run = p;

	PUT_LIT(s, "\"");
	for (;;)
	{
		unsigned char c = *p;
		size_t n;

		if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80)
		{
			p++;
			continue;
		}
		if (c >= 0x80 && (n = utf8_seq(p)) != 0)
		{
			p += n;
			continue;
		}
		put(s, run, (size_t) (p - run));
		if (c == '\0')
			break;
		switch (c)
		{
			case '"':
				PUT_LIT(s, "\\\"");
				break;
			case '\\':
				PUT_LIT(s, "\\\\");
				break;
			case '\n':
				PUT_LIT(s, "\\n");
				break;
			case '\r':
				PUT_LIT(s, "\\r");
				break;
			case '\t':
				PUT_LIT(s, "\\t");
				break;
			case '\b':
				PUT_LIT(s, "\\b");
				break;
			case '\f':
				PUT_LIT(s, "\\f");
				break;
			default:
				if (c < 0x20)
				{
					char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};

					put(s, u, sizeof(u));
				}
				else
					PUT_LIT(s, "\\ufffd");
				break;
		}
		run = ++p;
	}
	PUT_LIT(s, "\"");
}

/* Switch a measuring sink to writing into a new message of its size. */
static outmsg *
sink_alloc(sink *s)
{
	outmsg *m = outmsg_new(s->n);

	if (m)
	{
		s->buf = outmsg_payload(m);
		s->n = 0;
	}
	return m;
}

/* A flat object of string fields; a NULL value omits its field. */
typedef struct field
{
	const char *key; /* a literal: written as is */
	const char *val; /* NULL: the field is left out */
} field;

/* A field value written as JSON null (compared by address). */
static const char null_value[] = "null";

static void
write_flat(sink *s, const field *f, size_t n)
{
	int first = 1;

	PUT_LIT(s, "{");
	for (size_t i = 0; i < n; i++)
	{
		if (!f[i].val)
			continue;
		if (!first)
			PUT_LIT(s, ",");
		first = 0;
		PUT_LIT(s, "\"");
		put(s, f[i].key, strlen(f[i].key));
		PUT_LIT(s, "\":");
		if (f[i].val == null_value)
			PUT_LIT(s, "null");
		else
			put_str(s, f[i].val);
	}
	PUT_LIT(s, "}");
}

static outmsg *
encode_flat(const field *f, size_t n)
{
	sink s = {NULL, 0};
	outmsg *m;

	write_flat(&s, f, n);
	if (!(m = sink_alloc(&s)))
		return NULL;
	write_flat(&s, f, n);
	return m;
}

/* encode_flat(FIELDS({"k", v}, ...)) */
#define FIELDS(...)                                                            \
	(const field[]){__VA_ARGS__},                                              \
		sizeof((const field[]){__VA_ARGS__}) / sizeof(field)

outmsg *
protocol_encode_welcome(const char *client_id, const char *user_id)
{
	return encode_flat(FIELDS({"type", "welcome"}, {"clientId", client_id},
							  {"userId", user_id}));
}

outmsg *
protocol_encode_presence(const presence_diff *d)
{
	return encode_flat(
		FIELDS({"type", d->kind == PRESENCE_JOINED ? "presence.join"
												   : "presence.leave"},
			   {"documentId", d->document_id}, {"userId", d->user_id},
			   {"userName", d->user_name}));
}

outmsg *
protocol_encode_subscribed(const char *query)
{
	return encode_flat(FIELDS({"type", "subscribed"}, {"query", query}));
}

outmsg *
protocol_encode_unsubscribed(const char *query)
{
	return encode_flat(FIELDS({"type", "unsubscribed"}, {"query", query}));
}

outmsg *
protocol_encode_mutation(const char *document_id, const char *document_type,
						 const char *operation, const char *ts,
						 const char *query)
{
	return encode_flat(
		FIELDS({"type", "mutation"}, {"documentId", document_id},
			   {"documentType", document_type ? document_type : null_value},
			   {"operation", operation}, {"ts", ts}, {"query", query}));
}

outmsg *
protocol_encode_document_updated(const char *document_id, const char *operation,
								 const char *ts)
{
	return encode_flat(FIELDS({"type", "document.updated"},
							  {"documentId", document_id},
							  {"operation", operation}, {"ts", ts}));
}

outmsg *
protocol_encode_error(const char *code, const char *message, const char *query)
{
	return encode_flat(FIELDS({"type", "error"}, {"code", code},
							  {"message", message}, {"query", query}));
}

static void
write_snapshot(sink *s, const presence *p, const char *dataset)
{
	const presence_doc *first = presence_docs(p, dataset);

	PUT_LIT(s, "{\"type\":\"presence.snapshot\",\"documents\":[");
	for (const presence_doc *d = first; d; d = presence_doc_next(d))
	{
		if (d != first)
			PUT_LIT(s, ",");
		PUT_LIT(s, "{\"documentId\":");
		put_str(s, presence_doc_id(d));
		PUT_LIT(s, ",\"users\":[");
		for (const presence_user *u = presence_doc_users(d); u;
			 u = presence_user_next(u))
		{
			if (u != presence_doc_users(d))
				PUT_LIT(s, ",");
			PUT_LIT(s, "{\"userId\":");
			put_str(s, presence_user_id(u));
			PUT_LIT(s, ",\"userName\":");
			put_str(s, presence_user_name(u));
			PUT_LIT(s, "}");
		}
		PUT_LIT(s, "]}");
	}
	PUT_LIT(s, "]}");
}

outmsg *
protocol_encode_snapshot(const presence *p, const char *dataset)
{
	sink s = {NULL, 0};
	outmsg *m;

	write_snapshot(&s, p, dataset);
	if (!(m = sink_alloc(&s)))
		return NULL;
	write_snapshot(&s, p, dataset);
	return m;
}
