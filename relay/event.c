/*
 * event: the change event and its two parsers.  See event.h.
 */
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "textparse.h"

static const char *const operations[] = {"create", "update", "delete",
										 "publish", "unpublish"};


bool
event_operation_valid(const char *op)
{
	for (size_t i = 0; i < sizeof(operations) / sizeof(operations[0]); i++)
	{
		if (!strcmp(op, operations[i]))
			return true;
	}
	return false;
}

bool
event_ts_valid(const char *ts)
{
	/* 'd' is a digit, anything else must match itself */
	static const char form[] = "dddd-dd-ddTdd:dd:dd.dddZ";

	for (size_t i = 0; i < sizeof(form) - 1; i++)
	{
		if (form[i] == 'd' ? (ts[i] < '0' || ts[i] > '9') : ts[i] != form[i])
			return false;
	}
	return ts[sizeof(form) - 1] == '\0';
}

void
event_free(rt_event *ev)
{
	if (ev == NULL)
		return;
	free(ev->dataset);
	free(ev->document_id);
	free(ev->document_type);
	free(ev->operation);
	free(ev->ts);
	json_decref(ev->document);
	memset(ev, 0, sizeof(*ev));
}

/* Copies of the five strings into *ev; on failure *ev is freed. */
static int
set_strings(rt_event *ev, const char *dataset, const char *id, const char *type,
			const char *operation, const char *ts, char *err, size_t errlen)
{
	ev->dataset = strdup(dataset);
	ev->document_id = strdup(id);
	ev->document_type = type ? strdup(type) : NULL;
	ev->operation = strdup(operation);
	ev->ts = strdup(ts);
	if (!ev->dataset || !ev->document_id || (type && !ev->document_type) ||
		!ev->operation || !ev->ts)
	{
		event_free(ev);
		seterr(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

static int
check_fields(const char *operation, const char *ts, char *err, size_t errlen)
{
	if (!event_operation_valid(operation))
	{
		seterr(err, errlen, "unknown operation");
		return -1;
	}
	if (!event_ts_valid(ts))
	{
		seterr(err, errlen, "ts is not YYYY-MM-DDTHH:MM:SS.mmmZ");
		return -1;
	}
	return 0;
}

/* The string member `key` of obj, or NULL with err set. */
static const char *
get_string(json_t *obj, const char *key, char *err, size_t errlen)
{
	json_t *v = json_object_get(obj, key);

	if (v == NULL)
	{
		seterr(err, errlen, "missing member \"%s\"", key);
		return NULL;
	}
	if (!json_is_string(v))
	{
		seterr(err, errlen, "member \"%s\" is not a string", key);
		return NULL;
	}
	return json_string_value(v);
}

/* The integer member `key` of obj, >= 1, or -1 with err set. */
static json_int_t
get_positive(json_t *obj, const char *key, char *err, size_t errlen)
{
	json_t *v = json_object_get(obj, key);

	if (v == NULL)
	{
		seterr(err, errlen, "missing member \"%s\"", key);
		return -1;
	}
	if (!json_is_integer(v) || json_integer_value(v) < 1)
	{
		seterr(err, errlen, "member \"%s\" is not a positive integer", key);
		return -1;
	}
	return json_integer_value(v);
}

int
event_from_notify(const char *payload, size_t len, rt_event *out, char *err,
				  size_t errlen)
{
	json_t *root = NULL;
	json_t *v;
	json_error_t jerr;
	const char *id, *dataset, *operation, *ts, *type = NULL;
	json_int_t position, txid;
	bool truncated = false;

	memset(out, 0, sizeof(*out));
	if (len > EVENT_PAYLOAD_MAX)
	{
		seterr(err, errlen, "payload longer than %d bytes", EVENT_PAYLOAD_MAX);
		return -1;
	}
	/* duplicates are refused: two "dataset" members must not be resolved by
	 * whichever the parser happens to keep */
	root = json_loadb(payload, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL)
	{
		seterr(err, errlen, "invalid JSON: %s", jerr.text);
		return -1;
	}
	if (!json_is_object(root))
	{
		seterr(err, errlen, "payload is not a JSON object");
		goto err;
	}
	if (!(id = get_string(root, "documentId", err, errlen)) ||
		!(dataset = get_string(root, "dataset", err, errlen)) ||
		!(operation = get_string(root, "operation", err, errlen)) ||
		!(ts = get_string(root, "ts", err, errlen)))
		goto err;
	v = json_object_get(root, "documentType");
	if (v == NULL)
	{
		seterr(err, errlen, "missing member \"documentType\"");
		goto err;
	}
	if (json_is_string(v))
		type = json_string_value(v);
	else if (!json_is_null(v))
	{
		seterr(err, errlen, "member \"documentType\" is not a string or null");
		goto err;
	}
	if ((position = get_positive(root, "position", err, errlen)) < 0 ||
		(txid = get_positive(root, "txid", err, errlen)) < 0)
		goto err;
	v = json_object_get(root, "truncated");
	if (v != NULL)
	{
		if (!json_is_boolean(v))
		{
			seterr(err, errlen, "member \"truncated\" is not a boolean");
			goto err;
		}
		truncated = json_is_true(v);
	}
	if (check_fields(operation, ts, err, errlen) < 0 ||
		set_strings(out, dataset, id, type, operation, ts, err, errlen) < 0)
		goto err;
	out->position = position;
	out->txid = (uint64_t) txid;
	out->truncated = truncated;
	json_decref(root);
	return 0;

err:
	json_decref(root);
	return -1;
}


int
event_from_row(const char *position, const char *txid, const char *dataset,
			   const char *document_id, const char *type, const char *operation,
			   const char *ts, rt_event *out, char *err, size_t errlen)
{
	uint64_t pos, xid;

	memset(out, 0, sizeof(*out));
	if (parse_decimal(position, strlen(position), INT64_MAX, &pos) < 0)
	{
		seterr(err, errlen, "position is not a positive integer");
		return -1;
	}
	if (parse_decimal(txid, strlen(txid), UINT64_MAX, &xid) < 0)
	{
		seterr(err, errlen, "txid is not a positive integer");
		return -1;
	}
	if (check_fields(operation, ts, err, errlen) < 0 ||
		set_strings(out, dataset, document_id, type, operation, ts, err,
					errlen) < 0)
		return -1;
	out->position = (int64_t) pos;
	out->txid = xid;
	return 0;
}
