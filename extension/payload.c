/*-------------------------------------------------------------------------
 *
 * payload.c
 *	  The NOTIFY payload of a change.
 *
 * IDENTIFICATION
 *	  extension/payload.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "cellcms_rt.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/timestamp.h"

/*
 * Async_Notify() refuses payloads of BLCKSZ - NAMEDATALEN - 128 bytes or
 * more (NOTIFY_PAYLOAD_MAX_LENGTH, private to async.c).
 */
#define PAYLOAD_MAX_LEN (BLCKSZ - NAMEDATALEN - 128 - 1)

/* "2025-01-15T12:00:00.000Z" */
#define TS_LEN 24

/*
 * A member of the payload object.  A string value is escaped and quoted, or
 * JSON null when NULL; any other value is JSON already.
 */
typedef struct PayloadField
{
	const char *name;
	const char *value;
	bool is_string;
	bool cuttable; /* a string that may be cut to make the payload fit */
	size_t len;	   /* escaped length of a cuttable string, once measured */
	size_t keep;   /* escaped bytes of it to write, SIZE_MAX: all */
} PayloadField;

/* Bytes escape_json() writes for s[0..len), without the quotes. */
static size_t
escaped_len(const char *s, size_t len)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++)
	{
		switch (s[i])
		{
			case '\b':
			case '\f':
			case '\n':
			case '\r':
			case '\t':
			case '"':
			case '\\':
				n += 2;
				break;
			default:
				n += (unsigned char) s[i] < ' ' ? 6 : 1;
				break;
		}
	}
	return n;
}

/* Longest prefix of s, in whole characters, whose escaped form fits limit. */
static size_t
prefix_fitting(const char *s, size_t limit)
{
	size_t len = strlen(s);
	size_t used = 0;
	size_t i = 0;

	while (i < len)
	{
		size_t clen = Min((size_t) pg_mblen(s + i), len - i);
		size_t elen = escaped_len(s + i, clen);

		if (used + elen > limit)
			break;
		used += elen;
		i += clen;
	}
	return i;
}

static void
append_json_field(StringInfo buf, const PayloadField *f)
{
	escape_json(buf, f->name);
	appendStringInfoChar(buf, ':');
	if (f->value == NULL)
		appendStringInfoString(buf, "null");
	else if (!f->is_string)
		appendStringInfoString(buf, f->value);
	else if (f->keep >= f->len)
		escape_json(buf, f->value);
	else
		escape_json(buf, pnstrdup(f->value, prefix_fitting(f->value, f->keep)));
}

/* Replaces what buf holds from start on with the object of fields[0..n). */
static void
write_payload(StringInfo buf, int start, const PayloadField *fields, int n)
{
	buf->len = start;
	buf->data[start] = '\0';
	appendStringInfoChar(buf, '{');
	for (int i = 0; i < n; i++)
	{
		if (i > 0)
			appendStringInfoChar(buf, ',');
		append_json_field(buf, &fields[i]);
	}
	appendStringInfoChar(buf, '}');
}

/*
 * Shares room between the cuttable strings: shortest first (the earlier
 * field on a tie), each keeps its length or at most an equal share of what
 * is left, so that short strings stay whole and the long ones split the rest.
 */
static void
share_room(PayloadField *fields, int n, size_t room)
{
	int left = 0;

	for (int i = 0; i < n; i++)
	{
		if (fields[i].cuttable)
			left++;
	}
	for (; left > 0; left--)
	{
		PayloadField *s = NULL;

		for (int i = 0; i < n; i++)
		{
			PayloadField *f = &fields[i];

			if (f->cuttable && f->keep == SIZE_MAX &&
				(s == NULL || f->len < s->len))
				s = f;
		}
		s->keep = Min(s->len, room / left);
		room -= s->keep;
	}
}

static char *
put_digits(char *p, int value, int width)
{
	for (int i = width - 1; i >= 0; i--)
	{
		p[i] = '0' + value % 10;
		value /= 10;
	}
	return p + width;
}

/*
 * UTC, ISO 8601, milliseconds and Z, the form clients parse; ts is already
 * whole milliseconds.  out has room for TS_LEN + 1 bytes.
 */
static void
format_ts(char *out, TimestampTz ts)
{
	struct pg_tm tm;
	fsec_t fsec;
	char *p = out;

	/* without a time zone argument timestamp2tm() does not convert: UTC */
	if (timestamp2tm(ts, NULL, &tm, &fsec, NULL, NULL) != 0 || tm.tm_year < 0 ||
		tm.tm_year > 9999)
		ereport(ERROR, (errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
						errmsg("timestamp out of range")));
	p = put_digits(p, tm.tm_year, 4);
	*p++ = '-';
	p = put_digits(p, tm.tm_mon, 2);
	*p++ = '-';
	p = put_digits(p, tm.tm_mday, 2);
	*p++ = 'T';
	p = put_digits(p, tm.tm_hour, 2);
	*p++ = ':';
	p = put_digits(p, tm.tm_min, 2);
	*p++ = ':';
	p = put_digits(p, tm.tm_sec, 2);
	*p++ = '.';
	p = put_digits(p, fsec / 1000, 3);
	*p++ = 'Z';
	*p = '\0';
}

/*
 * Appends the NOTIFY payload to buf, at most PAYLOAD_MAX_LEN bytes whatever
 * the strings: when they do not fit, id, type and dataset are cut to share
 * the room left (see share_room), and "truncated":true tells the reader to
 * take the full values from the log row at that position.
 */
void
build_payload(StringInfo buf, const char *id, const char *type,
			  const char *operation, const char *dataset, TimestampTz ts,
			  int64 position, uint64 txid)
{
	char tsbuf[TS_LEN + 1];
	char positionbuf[MAXINT8LEN + 1];
	char txidbuf[MAXINT8LEN + 1];
	PayloadField fields[] = {
		{"documentId", id, true, true},
		{"documentType", type, true, true},
		{"operation", operation, true, false},
		{"dataset", dataset, true, true},
		{"ts", tsbuf, true, false},
		{"position", positionbuf, false, false},
		{"txid", txidbuf, false, false},
		/* last: written only when something was cut */
		{"truncated", "true", false, false},
	};
	int start = buf->len;
	size_t fixed;

	format_ts(tsbuf, ts);
	snprintf(positionbuf, sizeof(positionbuf), INT64_FORMAT, position);
	snprintf(txidbuf, sizeof(txidbuf), UINT64_FORMAT, txid);
	for (int i = 0; i < lengthof(fields); i++)
		fields[i].keep = SIZE_MAX;

	write_payload(buf, start, fields, lengthof(fields) - 1);
	if (buf->len - start <= PAYLOAD_MAX_LEN)
		return;

	/* The bytes that stay whatever the cut: all but the cuttable strings. */
	write_payload(buf, start, fields, lengthof(fields));
	fixed = buf->len - start;
	for (int i = 0; i < lengthof(fields); i++)
	{
		PayloadField *f = &fields[i];

		if (f->cuttable && f->value != NULL)
		{
			f->len = escaped_len(f->value, strlen(f->value));
			fixed -= f->len;
		}
	}
	share_room(fields, lengthof(fields), PAYLOAD_MAX_LEN - fixed);
	write_payload(buf, start, fields, lengthof(fields));
}
