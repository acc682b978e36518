/*
 * outq: refcounted outbound messages and bounded per-connection FIFOs.
 */
#include <stdlib.h>
#include <string.h>

#include "outq.h"

struct outmsg
{
	uint32_t refs;
	uint32_t len;
	/* OUTMSG_HEADROOM bytes, then len payload bytes, then a NUL */
	unsigned char buf[];
};

outmsg *
outmsg_new(size_t len)
{
	outmsg *m;

	if (len > OUTMSG_MAX_LEN)
		return NULL;
	m = malloc(sizeof(*m) + OUTMSG_HEADROOM + len + 1);
	if (!m)
		return NULL;
	m->refs = 1;
	m->len = (uint32_t) len;
	m->buf[OUTMSG_HEADROOM + len] = '\0';
	return m;
}

outmsg *
outmsg_from(const void *data, size_t len)
{
	outmsg *m = outmsg_new(len);

	if (m && len)
		memcpy(m->buf + OUTMSG_HEADROOM, data, len);
	return m;
}

unsigned char *
outmsg_payload(outmsg *m)
{
	return m->buf + OUTMSG_HEADROOM;
}

size_t
outmsg_len(const outmsg *m)
{
	return m->len;
}

outmsg *
outmsg_ref(outmsg *m)
{
	m->refs++;
	return m;
}

void
outmsg_unref(outmsg *m)
{
	if (m && --m->refs == 0)
		free(m);
}

uint32_t
outmsg_refs(const outmsg *m)
{
	return m->refs;
}

void
outq_init(outq *q, size_t limit_bytes)
{
	memset(q, 0, sizeof(*q));
	q->limit = limit_bytes;
}

/* Double the ring, unrolling the wrapped part so the FIFO starts at 0. */
static int
outq_grow(outq *q)
{
	uint32_t ncap = q->cap ? q->cap * 2 : 4;
	outmsg **nring;
	uint32_t first;

	if (q->cap >= (UINT32_C(1) << 30))
		return -1;
	nring = malloc(sizeof(*nring) * ncap);
	if (!nring)
		return -1;
	first = q->cap - q->head < q->count ? q->cap - q->head : q->count;
	if (q->count)
	{
		memcpy(nring, q->ring + q->head, sizeof(*nring) * first);
		memcpy(nring + first, q->ring, sizeof(*nring) * (q->count - first));
	}
	free(q->ring);
	q->ring = nring;
	q->cap = ncap;
	q->head = 0;
	return 0;
}

outq_result
outq_push(outq *q, outmsg *m)
{
	if (m->len > q->limit || q->bytes > q->limit - m->len)
		return OUTQ_OVERFLOW;
	if (q->count == q->cap && outq_grow(q) != 0)
		return OUTQ_NOMEM;
	q->ring[(q->head + q->count) & (q->cap - 1)] = outmsg_ref(m);
	q->count++;
	q->bytes += m->len;
	return OUTQ_OK;
}

outmsg *
outq_peek(const outq *q)
{
	return q->count ? q->ring[q->head] : NULL;
}

outmsg *
outq_pop(outq *q)
{
	outmsg *m;

	if (!q->count)
		return NULL;
	m = q->ring[q->head];
	q->head = (q->head + 1) & (q->cap - 1);
	q->count--;
	q->bytes -= m->len;
	/* A burst grew the ring; give it back once drained (idle budget). */
	if (q->count == 0)
	{
		q->head = 0;
		if (q->cap > OUTQ_KEEP_SLOTS)
		{
			free(q->ring);
			q->ring = NULL;
			q->cap = 0;
		}
	}
	return m;
}

void
outq_clear(outq *q)
{
	while (q->count)
		outmsg_unref(outq_pop(q));
	free(q->ring);
	q->ring = NULL;
	q->cap = 0;
	q->head = 0;
}
