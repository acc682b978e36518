/*
 * outq: outbound messages and the bounded per-connection queue.
 *
 * A message is encoded once and shared by every connection it goes to: an
 * outmsg is an immutable, reference-counted buffer in ONE allocation
 * (header, OUTMSG_HEADROOM bytes of headroom, payload, a trailing NUL that is
 * not part of the payload).  Each connection owns an outq, a FIFO of
 * references bounded in bytes; the writer sends the head once per WRITEABLE
 * callback and pops it.
 *
 * Headroom: lws_write() writes the WebSocket frame header into the
 * LWS_PRE bytes before the payload.  That headroom is scratch space owned by
 * whoever is writing the message right now; it is shared by every connection
 * holding the message, which is only safe because the relay is
 * single-threaded (and lws writes the same header for the same payload
 * anyway).  The payload itself must never be written once the message has
 * been handed to a queue or a second owner.
 *
 * Not thread-safe: reference counts are plain integers.
 */
#ifndef RELAY_OUTQ_H
#define RELAY_OUTQ_H

#include <stddef.h>
#include <stdint.h>

/* The relay static-asserts OUTMSG_HEADROOM >= LWS_PRE. */
#define OUTMSG_HEADROOM 16

/* Largest payload outmsg_new() accepts (keeps lengths in 32 bits). */
#define OUTMSG_MAX_LEN (UINT32_MAX - 64)

typedef struct outmsg outmsg;

/*
 * Allocate a message of exactly `len` payload bytes with one reference,
 * owned by the caller.  The payload is uninitialised: the caller fills it
 * through outmsg_payload() before sharing the message.  Returns NULL when
 * out of memory or len > OUTMSG_MAX_LEN.
 */
outmsg *outmsg_new(size_t len);

/* outmsg_new() + copy of data[0..len). */
outmsg *outmsg_from(const void *data, size_t len);

/*
 * The payload (len bytes, followed by a NUL so that tests and logs may treat
 * it as a string).  The OUTMSG_HEADROOM bytes before it are writable
 * scratch space, see above.  Borrowed: valid while the caller holds a
 * reference.
 */
unsigned char *outmsg_payload(outmsg *m);
size_t outmsg_len(const outmsg *m);

/* Take one more reference; returns m. */
outmsg *outmsg_ref(outmsg *m);

/* Drop one reference; the last one frees the message.  NULL is a no-op. */
void outmsg_unref(outmsg *m);

/* Number of references held (for tests and assertions). */
uint32_t outmsg_refs(const outmsg *m);

/*
 * A connection's queue.  Embedded by value in the session (40 bytes);
 * the ring of pointers is allocated on first push, grows by doubling, and is
 * given back when the queue drains while larger than OUTQ_KEEP_SLOTS, so an
 * idle connection costs only the struct and steady traffic allocates
 * nothing per push.
 *
 * `bytes` counts queued payload bytes; push refuses a message that would
 * make it exceed `limit`, including a single message larger than the limit
 * on an empty queue: the limit is a hard bound on what one connection pins.
 *
 * Fields are private; read them through the functions below.
 */
typedef struct outq
{
	outmsg **ring;	/* cap slots, NULL when cap == 0 */
	uint32_t cap;	/* power of two, or 0 */
	uint32_t head;	/* index of the oldest message */
	uint32_t count; /* messages queued */
	size_t bytes;	/* sum of their payload lengths */
	size_t limit;	/* bound on bytes */
} outq;

/* A drained ring at most this large is kept for reuse. */
#define OUTQ_KEEP_SLOTS 8

typedef enum outq_result
{
	OUTQ_OK = 0,
	OUTQ_OVERFLOW, /* limit would be exceeded: close the connection (4008) */
	OUTQ_NOMEM,	   /* the ring could not grow */
} outq_result;

/* An empty queue bounded to limit_bytes payload bytes.  Allocates nothing. */
void outq_init(outq *q, size_t limit_bytes);

/*
 * Append m.  On OUTQ_OK the queue has taken its OWN reference (the caller
 * keeps the one it had and usually drops it after the fan-out).  On any
 * other result nothing changed and no reference was taken.
 */
outq_result outq_push(outq *q, outmsg *m);

/* The oldest message, or NULL when empty.  Borrowed from the queue. */
outmsg *outq_peek(const outq *q);

/*
 * Remove the oldest message and hand its reference to the caller, who must
 * outmsg_unref() it.  NULL when empty.
 */
outmsg *outq_pop(outq *q);

/* Release every reference and the ring; the queue stays usable (empty). */
void outq_clear(outq *q);

static inline size_t
outq_count(const outq *q)
{
	return q->count;
}

static inline size_t
outq_bytes(const outq *q)
{
	return q->bytes;
}

#endif
