/*
 * delivery: what pg_listener asks PostgreSQL and what it hands to on_event.
 *
 * The rules of docs/architecture.md ("Delivery guarantees"), apart from the
 * I/O.  NOTIFY is the doorbell, the change log the truth:
 *   F     the frontier snapshot: every change visible in F has been
 *         delivered or was before the start;
 *   D     (position, txid) pairs of events delivered from a NOTIFY whose txid F
 *         does not see yet; a catch-up skips them;
 *   an advance takes a new snapshot F', reads changes_between(F, F') in
 *   pages after the last position read, then F := F' and D drops what F'
 *   sees, and what arrived before F' was asked for yet F' does not see: a
 *   forged NOTIFY (any role may send one), which must not stay in D for
 *   ever.  One is started right after every LISTEN, when the interval
 *   elapses and when D is half full.
 * A NOTIFY is a duplicate, and dropped, when F sees its txid, when D holds
 * its (position, txid), or when the F' of the catch-up in progress sees it
 * (that catch-up delivers it in position order).  After a re-LISTEN,
 * notifications are held until an advance whose F' was asked for after the
 * LISTEN has delivered what was missed: a change committed after the
 * reconnection must not overtake those committed during the outage.
 *
 * Events leave in the order they were queued; an event whose document is
 * needed waits for it, and the events behind it wait too.  The queue, D,
 * pages and document loads are bounded; when the queue or D is full,
 * notifications are not taken (the shell stops reading them, so they wait
 * in PostgreSQL) and a catch-up waits for room.
 *
 * The module is driven by inputs: what happened on the connections and the
 * rows of the answers.  delivery_next_query() says what to ask next,
 * delivery_pop() hands out what may be delivered.  One query is in flight
 * at a time; its answer (or delivery_query_lost()) ends it.  No I/O, no
 * clock, no libpq.  Not thread-safe.
 */
#ifndef RELAY_DELIVERY_H
#define RELAY_DELIVERY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event.h"

typedef struct delivery delivery;

typedef struct delivery_config
{
	unsigned catchup_batch;		 /* rows per catch-up page, >= 1 */
	unsigned document_batch;	 /* positions per document load, >= 1 */
	unsigned max_pending_events; /* bound on queued events, >= 1 */
	unsigned max_unconfirmed;	 /* bound on D, >= 1 (<= 2^30) */
	uint64_t key;				 /* perturbs D's hash: pass a random value */

	/*
	 * Called once per event as it is queued (never for a duplicate): true
	 * when on_event needs the document image.  ev is borrowed for the call.
	 * Not called for a truncated event, whose row is always loaded for its
	 * full strings.  NULL = never.
	 */
	bool (*needs_document)(void *arg, const rt_event *ev);
	void *arg;
} delivery_config;

/*
 * A new delivery without a frontier: its first query is the snapshot that
 * becomes F, once LISTEN is in effect (nothing may fall between the two).
 * cfg is copied.  Returns NULL when a bound is out of range or memory is
 * short.  Release with delivery_free().
 */
delivery *delivery_new(const delivery_config *cfg);

/* Release d and every event still queued.  NULL is a no-op. */
void delivery_free(delivery *d);

/* ---- what to ask ---------------------------------------------------- */

typedef enum delivery_op
{
	DELIVERY_IDLE,		/* nothing to ask: the connection is free */
	DELIVERY_WAIT,		/* nothing now, but the connection is taken: a query
						 * is in flight, or a catch-up waits for room */
	DELIVERY_SNAPSHOT,	/* pg_current_snapshot() */
	DELIVERY_PAGE,		/* a page of changes_between() */
	DELIVERY_DOCUMENTS, /* the change log rows at some positions */
} delivery_op;

typedef struct delivery_query
{
	delivery_op op;
	/* DELIVERY_PAGE: changes_between(from, to) with position > after, in
	 * position order, at most limit rows */
	const char *from; /* F as pg_snapshot text; borrowed from d */
	const char *to;	  /* F' */
	int64_t after;
	unsigned limit;
	/* DELIVERY_DOCUMENTS: rows of these positions, in any order */
	const int64_t *positions; /* borrowed from d */
	size_t npositions;
} delivery_query;

/*
 * What to send on the query connection now that it is ready and idle, in
 * *q (and returned).  Document loads come first (they hold up delivery);
 * a catch-up in progress owns the connection until it ends; then an
 * advance when one is due.  SNAPSHOT, PAGE and DOCUMENTS put the query in
 * flight: send it, then give its answer below.  q's pointers stay valid
 * until then.
 */
delivery_op delivery_next_query(delivery *d, delivery_query *q);

/* ---- what happened -------------------------------------------------- */

/*
 * LISTEN took effect on a new connection: what was sent while nobody
 * listened is caught up at once, and when F is known, notifications are
 * held until that catch-up is delivered.
 */
void delivery_listen_started(delivery *d);

/* The LISTEN connection is gone. */
void delivery_listen_lost(delivery *d);

/*
 * The query connection is gone with the query in flight unanswered: a
 * document load or a snapshot is asked for again; a catch-up resumes with
 * the same F' after the last position it read, so nothing it delivered
 * comes twice.
 */
void delivery_query_lost(delivery *d);

/* The advance interval elapsed: an advance is due. */
void delivery_interval_elapsed(delivery *d);

/* ---- the answers ---------------------------------------------------- */

/*
 * The answer to DELIVERY_SNAPSHOT: text[0..len) in pg_snapshot's output
 * form (copied).  The first snapshot becomes F; a later one is F' and
 * starts the catch-up.  Returns 0, or -1 with a message in err[0..errlen)
 * when the text does not parse or memory is short; the snapshot is then
 * asked for again.
 */
int delivery_snapshot_taken(delivery *d, const char *text, size_t len,
							char *err, size_t errlen);

/*
 * A row of the page in flight, in the order of the answer.  position orders
 * the next page even when the row is bad: ev NULL skips it.  A row D holds
 * is dropped (its NOTIFY delivered it).  After the call *ev belongs to d
 * (it is zeroed).  A row beyond the page's limit is not taken: the next
 * page reads it again.
 */
void delivery_page_row(delivery *d, int64_t position, rt_event *ev);

/*
 * The page in flight has no more rows.  One shorter than its limit ends
 * the catch-up: F := F', D drops what F' sees, and a hold after a
 * re-LISTEN ends when F' was asked for after the LISTEN.
 */
void delivery_page_done(delivery *d);

/*
 * A row of the document load in flight.  document is the parsed image or
 * NULL when it did not parse; the reference belongs to d after the call.
 * For a truncated event, dataset, document_id and document_type (NULL for
 * a NULL type) replace the cut strings when the first two are not NULL;
 * they are copied.  Returns false when no event waits for this position
 * (the row is ignored).
 */
bool delivery_document(delivery *d, int64_t position, const char *dataset,
					   const char *document_id, const char *document_type,
					   json_t *document);

/*
 * The document load in flight has no more rows.  An event whose row was
 * not among them (pruned) goes without its document.
 */
void delivery_documents_done(delivery *d);

/* ---- notifications and events --------------------------------------- */

/*
 * True when a notification may be offered now: F is known, nothing is
 * held, and neither the queue nor D is full.  While false the shell leaves
 * notifications unread (in PostgreSQL's queue).
 */
bool delivery_wants_notifications(const delivery *d);

typedef enum delivery_verdict
{
	DELIVERY_QUEUED,	/* queued, and added to D */
	DELIVERY_DUPLICATE, /* already delivered or to be delivered by a catch-up */
	DELIVERY_REFUSED,	/* offered while delivery_wants_notifications() was
						 * false: dropped, as if the NOTIFY had been lost */
} delivery_verdict;

/*
 * A parsed NOTIFY.  After the call *ev belongs to d (it is zeroed),
 * whatever the verdict.
 */
delivery_verdict delivery_notify(delivery *d, rt_event *ev);

/*
 * The next event to deliver, when there is one that waits for nothing.
 * Returns true with *out owned by the caller (release with event_free()),
 * else false with *out untouched.
 */
bool delivery_pop(delivery *d, rt_event *out);

/* F as pg_snapshot text (borrowed), or NULL before the first snapshot. */
const char *delivery_frontier(const delivery *d);

typedef struct delivery_stats
{
	unsigned long long delivered;		 /* events popped */
	unsigned long long from_notify;		 /* events queued from a NOTIFY */
	unsigned long long from_catchup;	 /* events queued by a catch-up */
	unsigned long long duplicates;		 /* NOTIFYs dropped as already seen */
	unsigned long long forged;			 /* D entries no later snapshot saw */
	unsigned long long documents_loaded; /* documents attached to events */
	size_t pending;						 /* events queued now */
	size_t unconfirmed;					 /* entries in D now */
} delivery_stats;

void delivery_get_stats(const delivery *d, delivery_stats *out);

#endif
