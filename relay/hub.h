/*
 * hub: everything the relay knows about its clients, without sockets.
 *
 * The hub owns one hub_client per authenticated WebSocket connection, the
 * presence state, the subscription registry and the per-dataset lists of
 * clients.  It turns client frames into presence changes, subscriptions and
 * replies, and change events into mutation / document.updated messages.
 * Every message is encoded once and pushed, refcounted, into the bounded
 * queue of each client it goes to; the transport (ws_server) drains the
 * queues and tells the hub when a connection is gone.
 *
 * The hub never calls the transport back synchronously for anything but the
 * two sink functions below, and it never frees a client except in
 * hub_disconnect(): a client whose queue overflows is only marked closing
 * (its queue is released at once) and closed by the transport later.
 *
 * Single-threaded; no I/O.
 */
#ifndef RELAY_HUB_H
#define RELAY_HUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "groq.h"
#include "protocol.h"

/* Only pointers to these: hub.h does not pull in (or re-export) their
 * modules. */
typedef struct auth_identity auth_identity;
typedef struct outq outq;
typedef struct rt_event rt_event;

typedef struct hub hub;
typedef struct hub_client hub_client;

typedef struct hub_config
{
	protocol_limits protocol;
	groq_limits groq;
	size_t max_queue_bytes;		   /* per client: past it, close 4008 */
	size_t max_subscriptions;	   /* per client */
	size_t max_presence_documents; /* per client */
} hub_config;

/*
 * How the hub reaches the transport.  `transport` is the opaque handle given
 * to hub_connect().
 *
 * wake: the client's queue went from empty to non-empty; the transport
 *       should write when the socket is writable.
 * close: close the connection with this WebSocket close code and reason.
 *       The hub has stopped queueing for the client; the transport calls
 *       hub_disconnect() once the connection is really gone.
 */
typedef struct hub_sink
{
	void (*wake)(void *transport);
	void (*close)(void *transport, int code, const char *reason);
} hub_sink;

/* Close codes beyond RFC 6455's, from SPEC §4. */
#define HUB_CLOSE_UNAUTHORIZED 4001
#define HUB_CLOSE_FORBIDDEN	   4003
#define HUB_CLOSE_SLOW		   4008

/*
 * A new hub.  cfg and sink are copied.  seed: 32 random bytes (hash keys
 * and client ids).  NULL when out of memory.
 */
hub *hub_new(const hub_config *cfg, const hub_sink *sink,
			 const uint8_t seed[32]);

/* Frees the hub and every client still connected (without telling them). */
void hub_free(hub *h);

/*
 * A connection authenticated as identity on dataset.  The hub takes
 * ownership of identity (freed with the client, or at once on failure);
 * dataset is copied.  Queues `welcome` then `presence.snapshot` and wakes the
 * transport.  NULL when out of memory.
 */
hub_client *hub_connect(hub *h, void *transport, auth_identity *identity,
						const char *dataset);

/*
 * One complete text message from the client (buf need not be
 * NUL-terminated).  Replies and broadcasts are queued.
 */
void hub_receive(hub *h, hub_client *c, const char *buf, size_t len);

/*
 * The connection is gone: broadcast the presence leaves that follow, drop
 * its subscriptions and queue, free c.  c is invalid afterwards.
 */
void hub_disconnect(hub *h, hub_client *c);

/* The client's queue, which the transport drains (outq_peek/outq_pop). */
outq *hub_client_queue(hub_client *c);

/* The unique id sent in `welcome`. */
const char *hub_client_id(const hub_client *c);

/*
 * Close (4001) every client whose token has expired at `now`.  Called about
 * once a second.
 */
void hub_expire(hub *h, time_t now);

/* Ask the transport to close every client with this code (shutdown). */
void hub_close_all(hub *h, int code, const char *reason);

size_t hub_client_count(const hub *h);

/*
 * True when some subscription that could match ev needs the document's
 * content, not only its _id and _type (the listener then loads it from the
 * change log before hub_dispatch()).
 */
bool hub_needs_document(const hub *h, const rt_event *ev);

/*
 * Deliver one change: a `mutation` per matching subscription (encoded once
 * per matching group of subs, i.e. per (query text, params), and shared by
 * every client in it) and a `document.updated` to every client present on
 * the document.  ev is borrowed; ev->document may be NULL.
 */
void hub_dispatch(hub *h, const rt_event *ev);

#endif
