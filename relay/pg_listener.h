/*
 * pg_listener: change events from PostgreSQL, in order, exactly once.
 *
 * The only module that talks to PostgreSQL (the only one including
 * libpq-fe.h).  It owns two non-blocking libpq connections on the caller's
 * libuv loop:
 *   - the LISTEN connection, which only runs LISTEN and receives NOTIFYs,
 *     so that no query ever delays a notification (PostgreSQL sends them
 *     only while the backend is idle);
 *   - the query connection, which runs every query: frontier snapshots,
 *     catch-up pages of cellcms_rt.changes_between(), batched document
 *     loads and cellcms_rt.prune().
 *
 * Delivery (docs/architecture.md, "Delivery guarantees"; the rules are in
 * delivery.h): NOTIFY is the doorbell; a frontier snapshot F and the set D
 * of (position, txid) delivered from a NOTIFY but not yet visible in F make
 * the periodic catch-up (changes_between(F, F')) deliver exactly what was
 * missed, once: while a connection is down, after a restart of PostgreSQL,
 * or a NOTIFY lost for any other reason.  Events reach on_event strictly in
 * the order they were queued; an event whose document is needed waits for
 * it, and the events behind it wait too.
 *
 * Everything is bounded: the FIFO of queued events (max_pending_events; when
 * full, the LISTEN socket is not read and catch-up pages wait: backpressure
 * onto PostgreSQL's notification queue), D (max_unconfirmed; an advance is
 * started when it is half full, notifications wait when it is full), pages
 * and document batches.  Connections are retried with jittered exponential
 * backoff; TCP keepalives (defaults that the conninfo may override) notice a
 * dead server.  Nothing blocks the loop, with one libpq limitation: libpq
 * resolves host NAMES synchronously while connecting; give an IP address
 * (host=127.0.0.1 or hostaddr=) when that matters.
 *
 * Not thread-safe; everything runs on the loop's thread.
 */
#ifndef RELAY_PG_LISTENER_H
#define RELAY_PG_LISTENER_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "event.h"

#define PG_LISTENER_DEFAULT_CHANNEL			   "cellcms_rt"
#define PG_LISTENER_DEFAULT_ADVANCE_MS		   1000
#define PG_LISTENER_DEFAULT_CATCHUP_BATCH	   1000
#define PG_LISTENER_DEFAULT_DOCUMENT_BATCH	   100
#define PG_LISTENER_DEFAULT_RECONNECT_MIN_MS   100
#define PG_LISTENER_DEFAULT_RECONNECT_MAX_MS   10000
#define PG_LISTENER_DEFAULT_CONNECT_TIMEOUT_MS 10000
#define PG_LISTENER_DEFAULT_MAX_PENDING		   10000
#define PG_LISTENER_DEFAULT_MAX_UNCONFIRMED	   65536
#define PG_LISTENER_DEFAULT_PRUNE_INTERVAL_S   3600

typedef struct pg_listener pg_listener;

/*
 * Settings.  Strings are borrowed for the pg_listener_start() call (copied).
 * Fill with pg_listener_config_init() and override what you need.
 */
typedef struct pg_listener_config
{
	const char *conninfo; /* postgresql:// URL or key=value string */
	const char *channel;  /* NOTIFY channel, 1..63 bytes, as the extension's
						   * cellcms_rt.channel */
	unsigned advance_interval_ms; /* catch-up period, >= 10 */
	unsigned catchup_batch;		  /* rows per catch-up page, 1..100000 */
	unsigned document_batch;	  /* documents per load query, 1..10000 */
	unsigned reconnect_min_ms;	  /* first retry delay, >= 1 */
	unsigned reconnect_max_ms;	  /* cap of the doubling, >= min */
	unsigned connect_timeout_ms;  /* a connection attempt longer than this
								   * fails, >= 100 */
	unsigned max_pending_events;  /* bound on queued events, 1..10^7 */
	unsigned max_unconfirmed;	  /* bound on D, 16..2^30 */
	unsigned prune_interval_s;	  /* call cellcms_rt.prune() this often;
								   * 0 = never */
} pg_listener_config;

/*
 * Callbacks, all called on the loop's thread from inside pg_listener's own
 * handle callbacks.  None may call pg_listener_stop() (stop from another
 * callback of the loop, e.g. a signal handler).
 */
typedef struct pg_listener_callbacks
{
	/*
	 * Called at most once per event when it is queued: true when the
	 * subscriptions need the document image (more than _id/_type).  ev is
	 * borrowed for the call.  Not called for events whose payload was
	 * truncated: their row is always loaded (it has the full strings).  May
	 * be NULL (= never).
	 */
	bool (*needs_document)(void *arg, const rt_event *ev);

	/*
	 * Every event, once, in order.  ev is borrowed for the call; take a
	 * reference to ev->document (json_incref) to keep it.  ev->document is
	 * NULL when it was not needed, or when the change log row is gone
	 * (pruned); a truncated event whose row is gone keeps truncated = true
	 * and the cut strings.
	 */
	void (*on_event)(void *arg, rt_event *ev);

	/*
	 * A line for the log.  connected: both connections are up and the
	 * frontier is known, i.e. events flow with NOTIFY latency.  detail is
	 * borrowed for the call and never contains a password.  May be NULL.
	 */
	void (*on_state)(void *arg, bool connected, const char *detail);
} pg_listener_callbacks;

/* The defaults above; conninfo NULL (must be set). */
void pg_listener_config_init(pg_listener_config *cfg);

/*
 * Start connecting.  loop, cbs and arg are borrowed and must outlive the
 * listener; cfg is copied.  Returns the listener, owned by the caller until
 * pg_listener_stop(), or NULL with a message in err[0..errlen) when a
 * setting is out of range or memory is short.  Connection failures are not
 * errors here: they are retried forever and reported through on_state.
 */
pg_listener *pg_listener_start(uv_loop_t *loop, const pg_listener_config *cfg,
							   const pg_listener_callbacks *cbs, void *arg,
							   char *err, size_t errlen);

/*
 * Stop: no callback of cbs is called any more, connections are closed and
 * queued events dropped.  The uv handles close asynchronously; when the last
 * one has closed the listener is freed and closed(closed_arg) is called (if
 * not NULL), after which the loop holds nothing of it.  l must not be used
 * after this call.  NULL is a no-op.
 */
void pg_listener_stop(pg_listener *l, void (*closed)(void *arg),
					  void *closed_arg);

/* Counters for logs and tests. */
typedef struct pg_listener_stats
{
	unsigned long long delivered;		 /* on_event calls */
	unsigned long long from_notify;		 /* events queued from a NOTIFY */
	unsigned long long from_catchup;	 /* events queued by a catch-up */
	unsigned long long duplicates;		 /* NOTIFYs dropped as already seen */
	unsigned long long bad_payloads;	 /* NOTIFYs that did not parse */
	unsigned long long documents_loaded; /* rows found by document loads */
	unsigned long long reconnects;		 /* connections re-established */
	size_t pending;						 /* events queued now */
	size_t unconfirmed;					 /* entries in D now */
} pg_listener_stats;

void pg_listener_get_stats(const pg_listener *l, pg_listener_stats *out);

#endif
