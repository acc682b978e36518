/*
 * delivery: the delivery rules of pg_listener.  See delivery.h.
 */
#include <stdlib.h>
#include <string.h>

#include "delivery.h"
#include "snapshot.h"
#include "textparse.h"

typedef struct pending
{
	rt_event ev;	/* owned */
	bool needs_doc; /* waits for a document load */
	bool loading;	/* in the load in flight */
	bool loaded;
} pending;

typedef enum advance
{
	ADV_IDLE,
	ADV_SNAPSHOT, /* F' asked for */
	ADV_CATCHUP,  /* pages of changes_between(F, F') */
} advance;

struct delivery
{
	delivery_config cfg;
	delivery_op asked; /* the query in flight, DELIVERY_IDLE when none */
	bool listening;

	bool have_frontier;
	snapshot frontier; /* F */
	char *frontier_text;
	dset unconfirmed; /* D */

	bool advance_wanted;
	advance adv;
	snapshot next; /* F' while ADV_CATCHUP */
	char *next_text;
	int64_t catchup_after;
	unsigned snapshot_gen; /* snapshots asked for so far */
	unsigned next_gen;	   /* the one F' comes from */
	bool hold_notifies;	   /* after a re-LISTEN, see delivery.h */
	unsigned hold_gen;	   /* the first snapshot that may end the hold */
	unsigned page_limit;   /* of the page in flight */
	unsigned page_rows;	   /* rows of it so far */
	unsigned reserved;	   /* queue slots kept for the rest of the page */

	pending *fifo; /* ring of cfg.max_pending_events */
	size_t fifo_head;
	size_t fifo_count;
	size_t docs_wanted;		 /* queued, needs_doc, neither loading nor loaded */
	size_t *loading;		 /* FIFO slots of the load in flight */
	int64_t *load_positions; /* their positions: the query's array */
	size_t nloading;
	delivery_stats stats;
};


delivery *
delivery_new(const delivery_config *cfg)
{
	delivery *d;

	if (cfg->catchup_batch < 1 || cfg->document_batch < 1 ||
		cfg->max_pending_events < 1 || cfg->max_unconfirmed < 1)
		return NULL;
	d = calloc(1, sizeof(*d));
	if (d == NULL)
		return NULL;
	d->cfg = *cfg;
	d->advance_wanted = true;
	d->fifo = calloc(cfg->max_pending_events, sizeof(*d->fifo));
	d->loading = calloc(cfg->document_batch, sizeof(*d->loading));
	d->load_positions = calloc(cfg->document_batch, sizeof(*d->load_positions));
	if (d->fifo == NULL || d->loading == NULL || d->load_positions == NULL ||
		dset_init(&d->unconfirmed, cfg->max_unconfirmed, cfg->key) < 0)
	{
		delivery_free(d);
		return NULL;
	}
	return d;
}

void
delivery_free(delivery *d)
{
	if (d == NULL)
		return;
	for (size_t i = 0; i < d->fifo_count; i++)
		event_free(&d->fifo[(d->fifo_head + i) % d->cfg.max_pending_events].ev);
	snapshot_free(&d->frontier);
	snapshot_free(&d->next);
	free(d->frontier_text);
	free(d->next_text);
	dset_free(&d->unconfirmed);
	free(d->fifo);
	free(d->loading);
	free(d->load_positions);
	free(d);
}

/* ---- the queue ------------------------------------------------------ */

static size_t
fifo_room(const delivery *d)
{
	return d->cfg.max_pending_events - d->fifo_count - d->reserved;
}

/* Queue *ev (it moves to the queue; *ev is zeroed).  Needs room. */
static void
fifo_push(delivery *d, rt_event *ev)
{
	size_t slot = (d->fifo_head + d->fifo_count) % d->cfg.max_pending_events;
	pending *p = &d->fifo[slot];

	p->ev = *ev;
	memset(ev, 0, sizeof(*ev));
	p->loading = false;
	p->loaded = false;
	p->needs_doc =
		p->ev.truncated || (d->cfg.needs_document != NULL &&
							d->cfg.needs_document(d->cfg.arg, &p->ev));
	d->fifo_count++;
	if (p->needs_doc)
		d->docs_wanted++;
}

bool
delivery_pop(delivery *d, rt_event *out)
{
	pending *p;

	if (d->fifo_count == 0)
		return false;
	p = &d->fifo[d->fifo_head];
	if (p->needs_doc && !p->loaded)
		return false;
	*out = p->ev;
	memset(&p->ev, 0, sizeof(p->ev));
	d->fifo_head = (d->fifo_head + 1) % d->cfg.max_pending_events;
	d->fifo_count--;
	d->stats.delivered++;
	return true;
}

/* ---- what to ask ---------------------------------------------------- */

static void
ask_documents(delivery *d, delivery_query *q)
{
	for (size_t i = 0; i < d->fifo_count && d->nloading < d->cfg.document_batch;
		 i++)
	{
		size_t slot = (d->fifo_head + i) % d->cfg.max_pending_events;
		pending *p = &d->fifo[slot];

		if (!p->needs_doc || p->loading || p->loaded)
			continue;
		p->loading = true;
		d->loading[d->nloading] = slot;
		d->load_positions[d->nloading] = p->ev.position;
		d->nloading++;
		d->docs_wanted--;
	}
	q->positions = d->load_positions;
	q->npositions = d->nloading;
}

/* The page's rows are reserved so that it always fits in the queue. */
static void
ask_page(delivery *d, delivery_query *q, size_t room)
{
	d->page_limit =
		room < d->cfg.catchup_batch ? (unsigned) room : d->cfg.catchup_batch;
	d->page_rows = 0;
	d->reserved = d->page_limit;
	q->from = d->frontier_text;
	q->to = d->next_text;
	q->after = d->catchup_after;
	q->limit = d->page_limit;
}

delivery_op
delivery_next_query(delivery *d, delivery_query *q)
{
	memset(q, 0, sizeof(*q));
	if (d->asked != DELIVERY_IDLE)
		q->op = DELIVERY_WAIT;
	else if (d->docs_wanted > 0)
	{
		q->op = DELIVERY_DOCUMENTS;
		ask_documents(d, q);
	}
	else if (d->adv == ADV_CATCHUP)
	{
		size_t room = fifo_room(d);

		q->op = room > 0 ? DELIVERY_PAGE : DELIVERY_WAIT;
		if (room > 0)
			ask_page(d, q, room);
	}
	/* the first F must come after LISTEN: nothing may fall between them */
	else if (d->advance_wanted && d->adv == ADV_IDLE &&
			 (d->have_frontier || d->listening))
	{
		q->op = DELIVERY_SNAPSHOT;
		d->advance_wanted = false;
		d->adv = ADV_SNAPSHOT;
		d->snapshot_gen++;
	}
	else
		q->op = DELIVERY_IDLE;
	if (q->op != DELIVERY_WAIT)
		d->asked = q->op;
	return q->op;
}

/* ---- what happened -------------------------------------------------- */

void
delivery_listen_started(delivery *d)
{
	d->listening = true;
	d->advance_wanted = true;
	if (d->have_frontier)
	{
		d->hold_notifies = true;
		d->hold_gen = d->snapshot_gen + 1;
	}
}

void
delivery_listen_lost(delivery *d)
{
	d->listening = false;
}

void
delivery_query_lost(delivery *d)
{
	for (size_t i = 0; i < d->nloading; i++)
	{
		d->fifo[d->loading[i]].loading = false;
		d->docs_wanted++;
	}
	d->nloading = 0;
	d->page_limit = 0;
	d->page_rows = 0;
	d->reserved = 0;
	if (d->adv == ADV_SNAPSHOT)
	{
		d->adv = ADV_IDLE;
		d->advance_wanted = true;
	}
	d->asked = DELIVERY_IDLE;
}

void
delivery_interval_elapsed(delivery *d)
{
	d->advance_wanted = true;
}

/* ---- the answers ---------------------------------------------------- */

int
delivery_snapshot_taken(delivery *d, const char *text, size_t len, char *err,
						size_t errlen)
{
	snapshot s;
	char *copy;

	if (d->asked != DELIVERY_SNAPSHOT)
	{
		seterr(err, errlen, "no snapshot was asked for");
		return -1;
	}
	/* a snapshot that cannot be used counts as lost: ask again */
	d->asked = DELIVERY_IDLE;
	if (snapshot_parse(text, len, &s, err, errlen) < 0)
	{
		delivery_query_lost(d);
		return -1;
	}
	copy = strndup(text, len);
	if (copy == NULL)
	{
		snapshot_free(&s);
		delivery_query_lost(d);
		seterr(err, errlen, "out of memory");
		return -1;
	}
	if (!d->have_frontier)
	{
		d->frontier = s;
		d->frontier_text = copy;
		d->have_frontier = true;
		d->adv = ADV_IDLE;
	}
	else
	{
		d->next = s;
		d->next_text = copy;
		d->next_gen = d->snapshot_gen;
		d->catchup_after = 0;
		d->adv = ADV_CATCHUP;
	}
	return 0;
}

void
delivery_page_row(delivery *d, int64_t position, rt_event *ev)
{
	if (d->asked != DELIVERY_PAGE || d->page_rows >= d->page_limit)
	{
		event_free(ev);
		return;
	}
	d->page_rows++;
	d->reserved--;
	if (position > d->catchup_after)
		d->catchup_after = position;
	if (ev == NULL)
		return;
	if (dset_contains(&d->unconfirmed, ev->position, ev->txid))
	{
		event_free(ev);
		return;
	}
	d->stats.from_catchup++;
	fifo_push(d, ev);
}

static void
advance_done(delivery *d)
{
	snapshot_free(&d->frontier);
	free(d->frontier_text);
	d->frontier = d->next;
	d->frontier_text = d->next_text;
	memset(&d->next, 0, sizeof(d->next));
	d->next_text = NULL;
	{
		size_t forged;

		dset_settle(&d->unconfirmed, &d->frontier, d->next_gen, &forged);
		d->stats.forged += forged;
	}
	d->adv = ADV_IDLE;
	if (d->hold_notifies && d->next_gen >= d->hold_gen)
		d->hold_notifies = false;
}

void
delivery_page_done(delivery *d)
{
	if (d->asked != DELIVERY_PAGE)
		return;
	d->asked = DELIVERY_IDLE;
	if (d->page_rows < d->page_limit)
		advance_done(d);
	d->page_limit = 0;
	d->page_rows = 0;
	d->reserved = 0;
}

/* Replace *dst by a copy of src; on failure *dst stays. */
static void
replace_string(char **dst, const char *src)
{
	char *s = src ? strdup(src) : NULL;

	if (src != NULL && s == NULL)
		return;
	free(*dst);
	*dst = s;
}

bool
delivery_document(delivery *d, int64_t position, const char *dataset,
				  const char *document_id, const char *document_type,
				  json_t *document)
{
	pending *p = NULL;

	if (d->asked == DELIVERY_DOCUMENTS)
	{
		for (size_t k = 0; k < d->nloading; k++)
		{
			if (d->load_positions[k] == position)
			{
				p = &d->fifo[d->loading[k]];
				break;
			}
		}
	}
	if (p == NULL || p->ev.document != NULL)
	{
		json_decref(document);
		return false;
	}
	p->ev.document = document;
	if (document != NULL)
		d->stats.documents_loaded++;
	if (p->ev.truncated && dataset != NULL && document_id != NULL)
	{
		replace_string(&p->ev.dataset, dataset);
		replace_string(&p->ev.document_id, document_id);
		replace_string(&p->ev.document_type, document_type);
		p->ev.truncated = false;
	}
	return true;
}

void
delivery_documents_done(delivery *d)
{
	if (d->asked != DELIVERY_DOCUMENTS)
		return;
	d->asked = DELIVERY_IDLE;
	for (size_t k = 0; k < d->nloading; k++)
	{
		pending *p = &d->fifo[d->loading[k]];

		p->loading = false;
		p->loaded = true;
	}
	d->nloading = 0;
}

/* ---- notifications -------------------------------------------------- */

bool
delivery_wants_notifications(const delivery *d)
{
	return d->have_frontier && !d->hold_notifies && fifo_room(d) > 0 &&
		   dset_count(&d->unconfirmed) < d->unconfirmed.max;
}

delivery_verdict
delivery_notify(delivery *d, rt_event *ev)
{
	if (!delivery_wants_notifications(d))
	{
		event_free(ev);
		return DELIVERY_REFUSED;
	}
	if (snapshot_visible(&d->frontier, ev->txid) ||
		dset_contains(&d->unconfirmed, ev->position, ev->txid) ||
		(d->adv == ADV_CATCHUP && snapshot_visible(&d->next, ev->txid)))
	{
		d->stats.duplicates++;
		event_free(ev);
		return DELIVERY_DUPLICATE;
	}
	dset_add(&d->unconfirmed, ev->position, ev->txid, d->snapshot_gen);
	/* an advance empties D of everything committed before it started */
	if (dset_count(&d->unconfirmed) >= d->unconfirmed.max / 2)
		d->advance_wanted = true;
	d->stats.from_notify++;
	fifo_push(d, ev);
	return DELIVERY_QUEUED;
}

const char *
delivery_frontier(const delivery *d)
{
	return d->have_frontier ? d->frontier_text : NULL;
}

void
delivery_get_stats(const delivery *d, delivery_stats *out)
{
	*out = d->stats;
	out->pending = d->fifo_count;
	out->unconfirmed = dset_count(&d->unconfirmed);
}
