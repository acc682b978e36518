/*
 * protocol: the WebSocket codec of SPEC §4.
 *
 * protocol_parse() turns one client text frame into a tagged message or an
 * error (code + message) the caller sends back as an `error` frame; the
 * connection stays open.  Encoders build every server message as a
 * refcounted outmsg (see outq.h) of compact JSON, escaped directly into one
 * exactly-sized allocation (no json_t tree), so a `mutation` encoded once is
 * shared by every connection it goes to.
 *
 * Strings given to encoders are NUL-terminated and should be UTF-8; a byte
 * sequence that is not valid UTF-8 is written as U+FFFD so that every frame
 * the relay sends is valid UTF-8 (clients close on invalid text frames).
 *
 * Links: outq (messages) and presence (snapshot iteration).  No I/O.
 */
#ifndef RELAY_PROTOCOL_H
#define RELAY_PROTOCOL_H

#include <jansson.h>
#include <stddef.h>

/* Only pointers to these: their users include outq.h and presence.h. */
typedef struct outmsg outmsg;
typedef struct presence presence;
typedef struct presence_diff presence_diff;

/*
 * Limits on fields of client frames.  The frame itself is bounded by the
 * server (64 KiB by default) before it gets here.
 */
typedef struct protocol_limits
{
	size_t max_document_id;	 /* bytes of documentId (default 256) */
	size_t max_query;		 /* bytes of query (default 4096) */
	size_t max_params_bytes; /* params re-encoded as compact JSON
							  * (default 16384) */
	size_t max_params_keys;	 /* top-level keys of params (default 64) */
} protocol_limits;

#define PROTOCOL_DEFAULT_MAX_DOCUMENT_ID  256
#define PROTOCOL_DEFAULT_MAX_QUERY		  4096
#define PROTOCOL_DEFAULT_MAX_PARAMS_BYTES 16384
#define PROTOCOL_DEFAULT_MAX_PARAMS_KEYS  64

/* Fill *lim with the defaults above. */
void protocol_limits_default(protocol_limits *lim);

typedef enum protocol_type
{
	PROTOCOL_NONE = 0, /* parse failed */
	PROTOCOL_PRESENCE_JOIN,
	PROTOCOL_PRESENCE_LEAVE,
	PROTOCOL_SUBSCRIBE,
	PROTOCOL_UNSUBSCRIBE,
} protocol_type;

/*
 * A parsed client message.  Every pointer in it is BORROWED from `root`,
 * the parsed JSON document the message owns; all are valid until
 * protocol_msg_free().  Keep something longer by copying it (or
 * json_incref(params)).
 */
typedef struct protocol_msg
{
	protocol_type type;
	const char *document_id; /* presence.join / presence.leave; non-empty */
	const char *query;		 /* subscribe / unsubscribe */
	size_t query_len;		 /* strlen(query) */
	const char *dataset;	 /* subscribe: NULL when absent; the caller
							  * compares it with the connection's
							  * (dataset_mismatch) */
	json_t *params;			 /* subscribe: a JSON object, NULL when absent
							  * or null */
	json_t *root;			 /* owned */
} protocol_msg;

/*
 * An error to send back.  code is one of the PROTOCOL_E* strings; message
 * is a static human-readable sentence; query is the offending query when
 * there is one (borrowed from the protocol_msg, valid until its free) and
 * NULL otherwise.
 */
typedef struct protocol_error
{
	const char *code;
	const char *message;
	const char *query;
} protocol_error;

#define PROTOCOL_EINVALID_JSON	 "invalid_json"
#define PROTOCOL_EUNKNOWN_TYPE	 "unknown_type"
#define PROTOCOL_EMISSING_FIELD	 "missing_field"
#define PROTOCOL_EINVALID_FIELD	 "invalid_field"
#define PROTOCOL_ELIMIT_EXCEEDED "limit_exceeded"

/*
 * Parse the text frame buf[0..len) (not NUL-terminated, possibly invalid
 * UTF-8).  Unknown extra fields are ignored; duplicate keys, trailing data
 * and NUL characters inside strings are invalid_json.  Returns 0 and fills
 * *msg, or -1 and fills *err (msg->type is PROTOCOL_NONE).  Either way the
 * caller calls protocol_msg_free(msg) when done with msg and err.
 */
int protocol_parse(const char *buf, size_t len, const protocol_limits *lim,
				   protocol_msg *msg, protocol_error *err);

/* Release msg->root; msg may be reused.  Safe on a zeroed msg. */
void protocol_msg_free(protocol_msg *msg);

/*
 * Encoders.  Each returns a new message holding ONE reference owned by the
 * caller, or NULL when out of memory.  Arguments are borrowed for the call;
 * strings are NUL-terminated.
 */

/* {"type":"welcome","clientId":…,"userId":…} */
outmsg *protocol_encode_welcome(const char *client_id, const char *user_id);

/*
 * {"type":"presence.snapshot","documents":[{"documentId":…,"users":
 * [{"userId":…,"userName":…},…]},…]} for one dataset, in presence's order
 * ("documents":[] when nobody is present).
 */
outmsg *protocol_encode_snapshot(const presence *p, const char *dataset);

/* {"type":"presence.join"|"presence.leave","documentId":…,"userId":…,
 *  "userName":…} from a diff of presence. */
outmsg *protocol_encode_presence(const presence_diff *d);

/* {"type":"subscribed","query":…} */
outmsg *protocol_encode_subscribed(const char *query);

/* {"type":"unsubscribed","query":…} */
outmsg *protocol_encode_unsubscribed(const char *query);

/* {"type":"mutation","documentId":…,"documentType":…,"operation":…,"ts":…,
 *  "query":…}; ts is passed through as the string of the event; a NULL
 *  document_type is written as null (the field is always present). */
outmsg *protocol_encode_mutation(const char *document_id,
								 const char *document_type,
								 const char *operation, const char *ts,
								 const char *query);

/* {"type":"document.updated","documentId":…,"operation":…,"ts":…} */
outmsg *protocol_encode_document_updated(const char *document_id,
										 const char *operation, const char *ts);

/* {"type":"error","code":…,"message":…[,"query":…]}; query NULL: omitted. */
outmsg *protocol_encode_error(const char *code, const char *message,
							  const char *query);

#endif
