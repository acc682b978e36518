/*
 * subs: the subscription registry and the matching of change events.
 *
 * A connection subscribes GROQ queries (SPEC §4 "Subscriptions").  Per
 * connection, subscriptions are keyed by query text: subscribing the same
 * text again replaces its dataset and params, unsubscribing a text never
 * subscribed changes nothing.  Replies (subscribed / unsubscribed) are the
 * caller's; this module sends nothing and does no I/O.
 *
 * Sharing, so that the cost of an event does not grow with the number of
 * connections:
 *   - a query text is compiled once, whoever subscribes it; the compiled
 *     filter lives while some subscription uses the text;
 *   - subscriptions with the same (dataset, query text, params) form one
 *     group, evaluated ONCE per event: 10,000 connections on
 *     `*[_type == "post"]` cost one evaluation;
 *   - per dataset, groups are indexed by the one value a document must have
 *     to match: the filter's equality key (groq_filter_eq_key: `_id ==
 *     $id`, `slug == "about"`; with a $param, when its value is a string),
 *     else its type key (`_type == "post"`).  An event looks up, for each
 *     indexed attribute of its dataset, the bucket of its own value and
 *     never visits the others.  The remaining groups ("scan" groups) are
 *     evaluated for every event of the dataset.
 *
 * Datasets never leak: a group belongs to one dataset and an event is only
 * matched against the groups of its own dataset.  The caller checks that a
 * subscribe names the connection's own dataset (dataset_mismatch).
 *
 * Connections are opaque `void *` handles owned by the caller; subs never
 * dereferences them.  Memory per subscription (x86-64) is one 24-byte
 * record plus two pointers in its group's arrays; per connection with at
 * least one subscription one 40-byte record.  A connection leaves a group
 * in O(1) (swap-remove), however large the group.
 *
 * Hash tables use SipHash keyed by the seed given to subs_new(), so clients
 * choosing query texts, params, types or dataset names cannot force
 * collisions.
 *
 * Not thread-safe.
 */
#ifndef RELAY_SUBS_H
#define RELAY_SUBS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Only pointers to these: callers include groq.h and event.h as needed. */
typedef struct groq_error groq_error;
typedef struct groq_limits groq_limits;
typedef struct rt_event rt_event;

typedef struct subs subs;

/* Default for subs_new()'s max_per_conn. */
#define SUBS_DEFAULT_MAX_PER_CONN 100

typedef enum subs_status
{
	SUBS_OK = 0,
	SUBS_INVALID_QUERY, /* compile error, or a $param the params do not
						 * define / params too large: groq_error filled
						 * (the caller replies invalid_query) */
	SUBS_LIMIT,			/* the connection already has max_per_conn
						 * subscriptions (limit_exceeded) */
	SUBS_NOMEM,
} subs_status;

/*
 * Called by subs_match() once per matching group: query[0..query_len) is
 * the group's query text (NUL-terminated, borrowed), conns[0..n) its
 * connections (n >= 1; borrowed array, in no particular order).  Both are
 * valid during the call only.  The callee must not call
 * subs_subscribe/unsubscribe/drop_connection/free on this registry during
 * the call: defer them (e.g. a connection whose queue overflowed is closed
 * after the fan-out).
 */
typedef void (*subs_match_fn)(void *arg, const char *query, size_t query_len,
							  void *const *conns, size_t n);

/*
 * A new, empty registry.  limits: GROQ limits for compiling and evaluating
 * (copied; NULL means groq's defaults).  max_per_conn: subscriptions one
 * connection may hold at once (0 means SUBS_DEFAULT_MAX_PER_CONN).  seed:
 * 16 random bytes keying the hash function (copied).  Returns NULL when out
 * of memory.  The caller owns the result and frees it with subs_free().
 */
subs *subs_new(const groq_limits *limits, size_t max_per_conn,
			   const uint8_t seed[16]);

/* Frees everything, compiled filters included.  Connection handles are not
 * touched.  NULL is a no-op. */
void subs_free(subs *s);

/*
 * conn subscribes (or re-subscribes) query[0..query_len) (need not be
 * NUL-terminated) in dataset with params (a JSON object, or NULL; NULL and
 * {} are the same).  dataset, query and params are borrowed for the call:
 * the registry keeps its own copies (params canonicalised: keys sorted,
 * compact).  A re-subscribe of the same text moves conn to the group of
 * the new (dataset, params), so the old params stop matching at once.
 *
 * Returns SUBS_OK; SUBS_INVALID_QUERY with *err filled (err may be NULL)
 * when the query does not compile or params lack a $name it uses;
 * SUBS_LIMIT when the text is new for conn and conn already holds
 * max_per_conn subscriptions; SUBS_NOMEM.  On any error nothing changed
 * (a re-subscribe keeps its previous params).
 */
subs_status subs_subscribe(subs *s, void *conn, const char *dataset,
						   const char *query, size_t query_len, json_t *params,
						   groq_error *err);

/* conn unsubscribes query[0..query_len).  Never fails; a text conn has not
 * subscribed changes nothing. */
void subs_unsubscribe(subs *s, void *conn, const char *query, size_t query_len);

/*
 * Remove every subscription of conn (the connection is closing).  Never
 * fails and never allocates.  Afterwards subs holds no reference to conn.
 */
void subs_drop_connection(subs *s, void *conn);

/* Number of subscriptions conn holds. */
size_t subs_conn_count(const subs *s, void *conn);

/*
 * True when some group that could match an event of (dataset,
 * document_type) reads more of the document than `_id` and `_type`, i.e.
 * the event cannot be decided without the document image (the listener
 * then loads it from the change log).  Groups indexed by an attribute
 * other than `_type` count whatever their value (the event does not carry
 * it).  document_type NULL: no `_type` bucket applies.  O(1).
 */
bool subs_needs_document(const subs *s, const char *dataset,
						 const char *document_type);

/*
 * Match one event against the groups of its dataset and call on_match once
 * per matching group (see subs_match_fn).  Each group is evaluated at most
 * once.
 *
 * doc: the document image as GROQ sees it (borrowed), or NULL.  With a
 * document, the index is looked up with the document's own values (what
 * the filters evaluate).  Without one, `_id` and `_type` buckets are
 * looked up with the event's id and type, a {"_id":…, "_type":…} object is
 * built once from the event, and
 * groups that read more than those two attributes are skipped (cannot be
 * decided); if ev->truncated, the event's id and type were cut, so nothing
 * is matched.  An evaluation aborted by a limit (groq_match() == -1) counts
 * as no match.
 *
 * Returns the number of evaluations done (for tests and statistics).
 */
size_t subs_match(subs *s, const rt_event *ev, json_t *doc,
				  subs_match_fn on_match, void *arg);

#endif
