/*
 * hub: clients, presence and subscriptions, without sockets.  See hub.h.
 *
 * Clients are grouped by dataset (an intrusive list per dataset) because
 * every broadcast of the protocol is per dataset: presence changes go to
 * every other client of the dataset, and events of a dataset only ever
 * reach its clients.  A dataset entry exists while it has clients.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "event.h"
#include "groq.h"
#include "htab.h"
#include "hub.h"
#include "ilist.h"
#include "outq.h"
#include "presence.h"
#include "protocol.h"
#include "subs.h"
#include "tstr.h"

typedef struct hub_dataset
{
	hnode hn;			/* must be first */
	dlist_head clients; /* newest first */
	outmsg *snapshot;	/* cached presence.snapshot; NULL when stale */
	char name[];
} hub_dataset;

struct hub_client
{
	dlist_node link; /* on ds->clients */
	hub_dataset *ds;
	void *transport;
	auth_identity *identity;
	outq queue;
	bool closing; /* told the transport to close; queue no more */
	char id[40];
};

struct hub
{
	hub_config cfg;
	hub_sink sink;
	presence *presence;
	subs *subs;
	htab datasets;
	uint8_t key[16];
	uint64_t next_client; /* never leaves the hub: ids are keyed hashes of it */
	size_t nclients;
};

hub *
hub_new(const hub_config *cfg, const hub_sink *sink, const uint8_t seed[32])
{
	hub *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	h->cfg = *cfg;
	h->sink = *sink;
	memcpy(h->key, seed, 16);
	h->presence = presence_new(cfg->max_presence_documents, seed + 16);
	h->subs = subs_new(&cfg->groq, cfg->max_subscriptions, seed);
	if (!h->presence || !h->subs || htab_init(&h->datasets) != 0)
	{
		hub_free(h);
		return NULL;
	}
	return h;
}

static void
client_free(hub_client *c)
{
	outq_clear(&c->queue);
	auth_identity_free(c->identity);
	free(c);
}

static void
dataset_free(hub_dataset *ds)
{
	outmsg_unref(ds->snapshot);
	free(ds);
}

static void
free_dataset_entry(hnode *e, void *arg)
{
	hub_dataset *ds = (hub_dataset *) e;
	dlist_mutable_iter it;

	dlist_foreach_modify(it, &ds->clients)
		client_free(dlist_container(hub_client, link, it.cur));
	dataset_free(ds);
}

void
hub_free(hub *h)
{
	if (!h)
		return;
	htab_free_entries(&h->datasets, free_dataset_entry, NULL);
	htab_free(&h->datasets);
	subs_free(h->subs);
	presence_free(h->presence);
	free(h);
}

static uint64_t
dataset_hash(const hub *h, const char *name)
{
	return htab_siphash(h->key, name, strlen(name));
}

static hub_dataset *
find_dataset(const hub *h, const char *name)
{
	uint64_t hash = dataset_hash(h, name);

	for (hnode *e = htab_first(&h->datasets, hash); e; e = e->next)
	{
		hub_dataset *ds = (hub_dataset *) e;

		if (e->hash == hash && strcmp(ds->name, name) == 0)
			return ds;
	}
	return NULL;
}

/*
 * The client stops receiving anything and the transport is told to close
 * it.  The queue is released now: a slow client must not keep pinning
 * memory until its socket finally closes.
 */
static void
client_close(hub *h, hub_client *c, int code, const char *reason)
{
	if (c->closing)
		return;
	c->closing = true;
	outq_clear(&c->queue);
	h->sink.close(c->transport, code, reason);
}

/* Queue a reference to m for c (the caller keeps its own reference). */
static void
client_send(hub *h, hub_client *c, outmsg *m)
{
	bool was_empty;

	if (c->closing)
		return;
	if (!m)
	{
		client_close(h, c, 1011, "out of memory");
		return;
	}
	was_empty = outq_count(&c->queue) == 0;
	switch (outq_push(&c->queue, m))
	{
		case OUTQ_OK:
			if (was_empty)
				h->sink.wake(c->transport);
			break;
		case OUTQ_OVERFLOW:
			client_close(h, c, HUB_CLOSE_SLOW,
						 "too slow: send queue limit exceeded");
			break;
		case OUTQ_NOMEM:
			client_close(h, c, 1011, "out of memory");
			break;
	}
}

/* Send a freshly encoded message (taking over its reference). */
static void
client_send_new(hub *h, hub_client *c, outmsg *m)
{
	client_send(h, c, m);
	outmsg_unref(m);
}

static void
send_error(hub *h, hub_client *c, const char *code, const char *message,
		   const char *query)
{
	client_send_new(h, c, protocol_encode_error(code, message, query));
}

/*
 * Presence changed in c's dataset: the cached snapshot is stale, and every
 * other client of the dataset hears of each diff.
 */
static void
broadcast_presence(hub *h, hub_dataset *ds, hub_client *sender,
				   const presence_diffs *diffs)
{
	if (diffs->n == 0)
		return;
	outmsg_unref(ds->snapshot);
	ds->snapshot = NULL;
	for (size_t i = 0; i < diffs->n; i++)
	{
		outmsg *m = protocol_encode_presence(&diffs->v[i]);
		dlist_iter it;

		dlist_foreach(it, &ds->clients)
		{
			hub_client *c = dlist_container(hub_client, link, it.cur);

			if (c != sender)
				client_send(h, c, m);
		}
		outmsg_unref(m);
	}
}

/*
 * A client id that reveals neither how many connections the relay has seen
 * nor when this one came, and differs across restarts: 128 bits of a keyed
 * hash (a PRF, so the key stays secret) of the connection's ordinal.
 */
static void
client_id_make(const hub *h, uint64_t ordinal, char out[40])
{
	uint8_t block[16];
	uint64_t hi, lo;

	memcpy(block, "clientid", 8);
	memcpy(block + 8, &ordinal, 8);
	hi = htab_siphash(h->key, block, sizeof(block));
	block[0] ^= 1;
	lo = htab_siphash(h->key, block, sizeof(block));
	snprintf(out, 40, "%016llx%016llx", (unsigned long long) hi,
			 (unsigned long long) lo);
}

hub_client *
hub_connect(hub *h, void *transport, auth_identity *identity,
			const char *dataset)
{
	hub_dataset *ds = find_dataset(h, dataset);
	hub_client *c = calloc(1, sizeof(*c));

	if (!c)
		goto err;
	if (!ds)
	{
		ds = TSTR_NEW(hub_dataset, name, dataset);
		if (!ds)
			goto err;
		dlist_init(&ds->clients);
		htab_insert(&h->datasets, &ds->hn, dataset_hash(h, dataset));
	}
	c->transport = transport;
	c->identity = identity;
	outq_init(&c->queue, h->cfg.max_queue_bytes);
	client_id_make(h, ++h->next_client, c->id);
	c->ds = ds;
	dlist_push_head(&ds->clients, &c->link);
	h->nclients++;

	client_send_new(h, c, protocol_encode_welcome(c->id, c->identity->user_id));
	if (!ds->snapshot)
		ds->snapshot = protocol_encode_snapshot(h->presence, ds->name);
	client_send(h, c, ds->snapshot);
	return c;

err:
	free(c);
	auth_identity_free(identity);
	return NULL;
}

static void
handle_subscribe(hub *h, hub_client *c, const protocol_msg *msg)
{
	groq_error gerr;
	char message[sizeof(gerr.message) + 32];

	if (msg->dataset && strcmp(msg->dataset, c->ds->name) != 0)
	{
		send_error(h, c, "dataset_mismatch",
				   "this connection is bound to another dataset", msg->query);
		return;
	}
	switch (subs_subscribe(h->subs, c, c->ds->name, msg->query, msg->query_len,
						   msg->params, &gerr))
	{
		case SUBS_OK:
			client_send_new(h, c, protocol_encode_subscribed(msg->query));
			break;
		case SUBS_INVALID_QUERY:
			snprintf(message, sizeof(message), "at offset %zu: %s", gerr.pos,
					 gerr.message);
			send_error(h, c, "invalid_query", message, msg->query);
			break;
		case SUBS_LIMIT:
			send_error(h, c, PROTOCOL_ELIMIT_EXCEEDED,
					   "too many subscriptions on this connection", msg->query);
			break;
		case SUBS_NOMEM:
			send_error(h, c, "internal_error", "out of memory", msg->query);
			break;
	}
}

void
hub_receive(hub *h, hub_client *c, const char *buf, size_t len)
{
	protocol_msg msg;
	protocol_error perr;
	presence_diffs diffs;

	if (c->closing)
		return;
	if (protocol_parse(buf, len, &h->cfg.protocol, &msg, &perr) != 0)
	{
		send_error(h, c, perr.code, perr.message, perr.query);
		protocol_msg_free(&msg);
		return;
	}
	switch (msg.type)
	{
		case PROTOCOL_PRESENCE_JOIN:
			switch (presence_join(h->presence, c, c->ds->name, msg.document_id,
								  c->identity->user_id, c->identity->user_name,
								  &diffs))
			{
				case PRESENCE_OK:
					broadcast_presence(h, c->ds, c, &diffs);
					break;
				case PRESENCE_LIMIT:
					send_error(h, c, PROTOCOL_ELIMIT_EXCEEDED,
							   "too many presence documents on this "
							   "connection",
							   NULL);
					break;
				case PRESENCE_NOMEM:
					send_error(h, c, "internal_error", "out of memory", NULL);
					break;
			}
			break;
		case PROTOCOL_PRESENCE_LEAVE:
			presence_leave(h->presence, c, c->ds->name, msg.document_id,
						   &diffs);
			broadcast_presence(h, c->ds, c, &diffs);
			break;
		case PROTOCOL_SUBSCRIBE:
			handle_subscribe(h, c, &msg);
			break;
		case PROTOCOL_UNSUBSCRIBE:
			subs_unsubscribe(h->subs, c, msg.query, msg.query_len);
			client_send_new(h, c, protocol_encode_unsubscribed(msg.query));
			break;
		case PROTOCOL_NONE:
			break;
	}
	protocol_msg_free(&msg);
}

void
hub_disconnect(hub *h, hub_client *c)
{
	hub_dataset *ds = c->ds;
	presence_diffs diffs;

	c->closing = true;
	presence_drop_connection(h->presence, c, &diffs);
	broadcast_presence(h, ds, c, &diffs);
	subs_drop_connection(h->subs, c);

	dlist_delete(&c->link);
	h->nclients--;
	if (dlist_is_empty(&ds->clients))
	{
		htab_remove(&h->datasets, &ds->hn);
		dataset_free(ds);
	}
	client_free(c);
}

outq *
hub_client_queue(hub_client *c)
{
	return &c->queue;
}

const char *
hub_client_id(const hub_client *c)
{
	return c->id;
}

size_t
hub_client_count(const hub *h)
{
	return h->nclients;
}

/*
 * Calls fn for every client.  fn may close clients (that only marks them)
 * but must not disconnect them.
 */
static void
for_each_client(hub *h, void (*fn)(hub *, hub_client *, void *), void *arg)
{
	htab_iter hi;

	for (hnode *e = htab_iter_first(&hi, &h->datasets); e;
		 e = htab_iter_next(&hi))
	{
		dlist_iter it;

		dlist_foreach(it, &((hub_dataset *) e)->clients)
			fn(h, dlist_container(hub_client, link, it.cur), arg);
	}
}

static void
expire_one(hub *h, hub_client *c, void *arg)
{
	time_t now = *(const time_t *) arg;

	if (c->identity->expires_at && (long long) now >= c->identity->expires_at)
		client_close(h, c, HUB_CLOSE_UNAUTHORIZED, "token expired");
}

void
hub_expire(hub *h, time_t now)
{
	for_each_client(h, expire_one, &now);
}

typedef struct close_args
{
	int code;
	const char *reason;
} close_args;

static void
close_one(hub *h, hub_client *c, void *arg)
{
	const close_args *a = arg;

	client_close(h, c, a->code, a->reason);
}

void
hub_close_all(hub *h, int code, const char *reason)
{
	close_args a = {code, reason};

	for_each_client(h, close_one, &a);
}

bool
hub_needs_document(const hub *h, const rt_event *ev)
{
	if (!find_dataset(h, ev->dataset))
		return false;
	return subs_needs_document(h->subs, ev->dataset, ev->document_type);
}

typedef struct dispatch_ctx
{
	hub *h;
	const rt_event *ev;
} dispatch_ctx;

static void
deliver_mutation(void *arg, const char *query, size_t query_len,
				 void *const *clients, size_t n)
{
	dispatch_ctx *ctx = arg;
	const rt_event *ev = ctx->ev;
	outmsg *m = protocol_encode_mutation(ev->document_id, ev->document_type,
										 ev->operation, ev->ts, query);

	for (size_t i = 0; i < n; i++)
		client_send(ctx->h, clients[i], m);
	outmsg_unref(m);
}

void
hub_dispatch(hub *h, const rt_event *ev)
{
	dispatch_ctx ctx = {h, ev};
	const presence_member *member;
	outmsg *m;

	/* Datasets never leak: no client of this dataset, nobody to tell. */
	if (!find_dataset(h, ev->dataset))
		return;
	subs_match(h->subs, ev, ev->document, deliver_mutation, &ctx);

	member = presence_members(h->presence, ev->dataset, ev->document_id);
	if (!member)
		return;
	m = protocol_encode_document_updated(ev->document_id, ev->operation,
										 ev->ts);
	for (; member; member = presence_member_next(member))
		client_send(h, presence_member_conn(member), m);
	outmsg_unref(m);
}
