/*
 * pg_listener: two non-blocking libpq connections on a libuv loop, and the
 * delivery rules of relay-arch.md on top of them.  See pg_listener.h.
 *
 * State of the delivery (all on the listener):
 *   F          the frontier snapshot: every change visible in F has been
 *              delivered or was before the relay's start;
 *   D          (position, txid) of events delivered from a NOTIFY whose txid
 *              F does not see yet; a catch-up skips them;
 *   advance    IDLE -> SNAPSHOT (F' being taken) -> CATCHUP (pages of
 *              changes_between(F, F') after catchup_after) -> IDLE with
 *              F := F' and D minus what F' sees;
 *   FIFO       events in delivery order, each maybe waiting for its document.
 *
 * A NOTIFY is dropped when F sees its txid (already delivered by a catch-up
 * or from before the start), when D holds its position, or when the F' of
 * a catch-up in progress sees it (that catch-up delivers it, in position
 * order, unless D holds it).  Otherwise it is delivered and added to D.  A
 * catch-up interrupted by the loss of the query connection resumes with the
 * same F, F' and catchup_after, so nothing it already delivered comes twice.
 *
 * After a re-LISTEN, notifications are held (the LISTEN socket is not read)
 * until an advance whose F' was taken after the LISTEN has delivered what
 * was missed: a change committed after the reconnection must not overtake
 * the changes committed during the outage.
 */
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pg_listener.h"

typedef enum conn_state
{
	CS_WAITING,	   /* no connection; the timer retries */
	CS_CONNECTING, /* PQconnectPoll in progress; the timer is the timeout */
	CS_SETUP,	   /* connected, LISTEN in flight (LISTEN connection only) */
	CS_READY,
} conn_state;

typedef enum query_op
{
	OP_NONE,
	OP_LISTEN,
	OP_SNAPSHOT,
	OP_PAGE,
	OP_DOCUMENTS,
	OP_PRUNE,
} query_op;

typedef struct pgconn pgconn;

/*
 * A poll handle lives apart from its connection: libpq may replace the
 * socket while connecting, and a closing handle must stay allocated until
 * its close callback, after the connection has moved on.
 */
typedef struct pollh
{
	uv_poll_t h; /* h.data = the pgconn */
	pg_listener *l;
} pollh;

struct pgconn
{
	pg_listener *l;
	const char *name; /* "LISTEN" or "query", for the log */
	bool is_listen;
	PGconn *conn; /* owned; NULL unless CONNECTING/SETUP/READY */
	pollh *poll;  /* NULL when none */
	int poll_fd;
	int poll_events;
	uv_timer_t timer; /* retry delay or connect timeout */
	unsigned failures;
	conn_state state;
	query_op op;	  /* query in flight */
	PGresult *result; /* its first result, owned */
	bool ever_ready;
};

typedef struct pending
{
	rt_event ev;	/* owned */
	bool needs_doc; /* waits for a document load */
	bool loading;	/* in the load in flight */
	bool loaded;
} pending;

enum advance
{
	ADV_IDLE,
	ADV_SNAPSHOT,
	ADV_CATCHUP,
};

struct pg_listener
{
	uv_loop_t *loop;
	pg_listener_callbacks cbs;
	void *arg;
	pg_listener_config cfg; /* conninfo and channel point to the copies */
	char *conninfo;
	char *channel;
	pgconn listen;
	pgconn query;
	uv_timer_t advance_timer;
	uv_timer_t prune_timer;
	unsigned open_handles;
	bool stopping;
	void (*closed)(void *);
	void *closed_arg;
	uint64_t rand;

	bool have_frontier;
	snapshot frontier; /* F */
	char *frontier_text;
	dset unconfirmed; /* D */
	bool advance_wanted;
	enum advance adv;
	snapshot next; /* F' while ADV_CATCHUP */
	char *next_text;
	int64_t catchup_after;
	unsigned snapshot_gen; /* snapshots sent so far */
	unsigned next_gen;	   /* the one F' comes from */
	bool hold_notifies;	   /* after a re-LISTEN, see above */
	unsigned hold_gen;	   /* the first snapshot that may end the hold */
	unsigned page_limit;   /* LIMIT of the page in flight, reserved in FIFO */
	bool prune_wanted;

	pending *fifo; /* ring of cfg.max_pending_events */
	size_t fifo_head;
	size_t fifo_count;
	size_t docs_wanted; /* queued, needs_doc, neither loading nor loaded */
	size_t *loading;	/* FIFO slots of the load in flight */
	size_t nloading;
	bool reported_connected;
	pg_listener_stats stats;
};

/*
 * Libpq's TCP settings go first: the conninfo, expanded last, wins.  With
 * keepalives after 10 s idle, every 5 s, 3 probes, a dead server or a silent
 * network is noticed within 25 s while idle, and tcp_user_timeout (25 s)
 * covers sent data that stays unacknowledged.
 */
static const char *const conn_keys[] = {"keepalives",
										"keepalives_idle",
										"keepalives_interval",
										"keepalives_count",
										"tcp_user_timeout",
										"fallback_application_name",
										"dbname",
										NULL};

static const char snapshot_sql[] =
	"SELECT pg_catalog.pg_current_snapshot()::pg_catalog.text";

static const char page_sql[] =
	"SELECT c.position, c.txid, c.dataset, c.document_id, c.document_type,"
	" c.operation, pg_catalog.to_char(c.ts AT TIME ZONE 'UTC',"
	" 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
	" FROM cellcms_rt.changes_between($1::pg_catalog.pg_snapshot,"
	" $2::pg_catalog.pg_snapshot) c"
	" WHERE c.position > $3::pg_catalog.int8"
	" ORDER BY c.position LIMIT $4::pg_catalog.int4";

static const char documents_sql[] =
	"SELECT c.position, c.dataset, c.document_id, c.document_type, c.document"
	" FROM cellcms_rt.changes c"
	" WHERE c.position OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.int8[])";

static const char prune_sql[] = "SELECT cellcms_rt.prune()";

static void conn_start(pgconn *c);
static void conn_fail(pgconn *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void progress(pg_listener *l);

/* ---- logging ---------------------------------------------------------- */

static bool
is_connected(const pg_listener *l)
{
	return l->listen.state == CS_READY && l->query.state == CS_READY &&
		   l->have_frontier;
}

static void report(pg_listener *l, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* One line to on_state; libpq's multi-line messages are folded. */
static void
report(pg_listener *l, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	size_t n = 0;

	if (l->stopping || l->cbs.on_state == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	for (size_t i = 0; msg[i]; i++)
	{
		bool space =
			msg[i] == ' ' || msg[i] == '\n' || msg[i] == '\r' || msg[i] == '\t';

		if (space && (n == 0 || msg[n - 1] == ' '))
			continue;
		/* "message ; retrying" reads better without the space */
		if (n > 0 && msg[n - 1] == ' ' && (msg[i] == ';' || msg[i] == ','))
			n--;
		msg[n++] = space ? ' ' : msg[i];
	}
	while (n > 0 && msg[n - 1] == ' ')
		n--;
	msg[n] = '\0';
	l->cbs.on_state(l->arg, is_connected(l), msg);
}

/* Say so once each time the listener becomes fully connected. */
static void
report_if_ready(pg_listener *l)
{
	if (is_connected(l) && !l->reported_connected)
	{
		report(l, "ready: listening on channel \"%s\", frontier %s", l->channel,
			   l->frontier_text);
		l->reported_connected = true;
	}
}

/* PQhost/PQport never print as "(null)". */
static const char *
str_or(const char *s, const char *dflt)
{
	return s && *s ? s : dflt;
}

/* libpq's last error of c, or a stand-in; borrowed. */
static const char *
conn_error(const pgconn *c)
{
	const char *m = c->conn ? PQerrorMessage(c->conn) : NULL;

	return m && *m ? m : "connection lost";
}

/* ---- handles -------------------------------------------------------- */

static void
finish(pg_listener *l)
{
	void (*closed)(void *) = l->closed;
	void *closed_arg = l->closed_arg;

	snapshot_free(&l->frontier);
	snapshot_free(&l->next);
	free(l->frontier_text);
	free(l->next_text);
	dset_free(&l->unconfirmed);
	free(l->fifo);
	free(l->loading);
	free(l->conninfo);
	free(l->channel);
	free(l);
	if (closed)
		closed(closed_arg);
}

static void
handle_gone(pg_listener *l)
{
	l->open_handles--;
	if (l->stopping && l->open_handles == 0)
		finish(l);
}

static void
timer_closed(uv_handle_t *h)
{
	handle_gone(h->data);
}

static void
conn_timer_closed(uv_handle_t *h)
{
	pgconn *c = h->data;

	handle_gone(c->l);
}

static void
poll_closed(uv_handle_t *h)
{
	pollh *p = (pollh *) h;
	pg_listener *l = p->l;

	free(p);
	handle_gone(l);
}

/*
 * Stop watching c's socket.  Closing the handle takes the descriptor out of
 * epoll at once, so the caller may then close the socket (PQfinish).
 */
static void
poll_stop(pgconn *c)
{
	if (c->poll == NULL)
		return;
	uv_close((uv_handle_t *) &c->poll->h, poll_closed);
	c->poll = NULL;
	c->poll_events = 0;
}

static void on_poll(uv_poll_t *h, int status, int events);

/*
 * Watch c's current socket for events.  fresh: use a new handle even when
 * the descriptor number did not change, because libpq may have closed the
 * socket and opened another one under the same number (PQconnectPoll trying
 * the next address), which epoll would not notice.  Returns 0 or -1.
 */
static int
poll_set(pgconn *c, int events, bool fresh)
{
	pg_listener *l = c->l;
	int fd = PQsocket(c->conn);
	int r;

	if (fd < 0)
		return -1;
	if (c->poll != NULL && (fresh || fd != c->poll_fd))
		poll_stop(c);
	if (c->poll == NULL)
	{
		pollh *p = malloc(sizeof(*p));

		if (p == NULL)
			return -1;
		if (uv_poll_init(l->loop, &p->h, fd) != 0)
		{
			free(p);
			return -1;
		}
		p->h.data = c;
		p->l = l;
		l->open_handles++;
		c->poll = p;
		c->poll_fd = fd;
		c->poll_events = 0;
	}
	if (events == c->poll_events)
		return 0;
	r = events ? uv_poll_start(&c->poll->h, events, on_poll)
			   : uv_poll_stop(&c->poll->h);
	if (r != 0)
		return -1;
	c->poll_events = events;
	return 0;
}

/* ---- the FIFO ------------------------------------------------------- */

static size_t
fifo_room(const pg_listener *l)
{
	return l->cfg.max_pending_events - l->fifo_count - l->page_limit;
}

/* Deliver the head events that wait for nothing. */
static void
fifo_flush(pg_listener *l)
{
	while (l->fifo_count > 0 && !l->stopping)
	{
		pending *p = &l->fifo[l->fifo_head];

		if (p->needs_doc && !p->loaded)
			break;
		l->cbs.on_event(l->arg, &p->ev);
		l->stats.delivered++;
		event_free(&p->ev);
		l->fifo_head = (l->fifo_head + 1) % l->cfg.max_pending_events;
		l->fifo_count--;
	}
}

/* Queue *ev (ownership moves to the FIFO; *ev is zeroed).  Needs room. */
static void
fifo_push(pg_listener *l, rt_event *ev)
{
	size_t slot = (l->fifo_head + l->fifo_count) % l->cfg.max_pending_events;
	pending *p = &l->fifo[slot];

	p->ev = *ev;
	memset(ev, 0, sizeof(*ev));
	p->loading = false;
	p->loaded = false;
	p->needs_doc = p->ev.truncated || (l->cbs.needs_document != NULL &&
									   l->cbs.needs_document(l->arg, &p->ev));
	l->fifo_count++;
	if (p->needs_doc)
		l->docs_wanted++;
	fifo_flush(l);
}

/* ---- connections ------------------------------------------------------ */

static unsigned
backoff_ms(pg_listener *l, unsigned failures)
{
	uint64_t d = l->cfg.reconnect_min_ms;

	for (unsigned i = 1; i < failures && d < l->cfg.reconnect_max_ms; i++)
		d *= 2;
	if (d > l->cfg.reconnect_max_ms)
		d = l->cfg.reconnect_max_ms;
	/* xorshift64: spreads the retries of many relays after an outage */
	l->rand ^= l->rand << 13;
	l->rand ^= l->rand >> 7;
	l->rand ^= l->rand << 17;
	return (unsigned) (d / 2 + l->rand % (d - d / 2 + 1));
}

/* What c's loss means for the delivery state; c is already reset. */
static void
conn_lost(pgconn *c)
{
	pg_listener *l = c->l;

	if (c->is_listen)
		return; /* the re-LISTEN asks for an advance */
	/* loads are sent again; a snapshot is taken again; a catch-up resumes
	 * with its F' where it stopped */
	for (size_t i = 0; i < l->nloading; i++)
	{
		pending *p = &l->fifo[l->loading[i]];

		p->loading = false;
		l->docs_wanted++;
	}
	l->nloading = 0;
	l->page_limit = 0;
	if (l->adv == ADV_SNAPSHOT)
	{
		l->adv = ADV_IDLE;
		l->advance_wanted = true;
	}
}

static void
conn_reset(pgconn *c)
{
	poll_stop(c);
	if (c->result != NULL)
		PQclear(c->result);
	c->result = NULL;
	c->op = OP_NONE;
	if (c->conn != NULL)
		PQfinish(c->conn);
	c->conn = NULL;
	uv_timer_stop(&c->timer);
}

static void
on_conn_timer(uv_timer_t *t)
{
	pgconn *c = t->data;

	if (c->state == CS_WAITING)
		conn_start(c);
	else if (c->state == CS_CONNECTING)
		conn_fail(c, "timed out after %u ms", c->l->cfg.connect_timeout_ms);
	progress(c->l);
}

/* Drop c and retry after a backoff.  The message says why. */
static void
conn_fail(pgconn *c, const char *fmt, ...)
{
	pg_listener *l = c->l;
	char why[768];
	va_list ap;
	unsigned delay;
	bool was_up = c->state == CS_SETUP || c->state == CS_READY;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	conn_reset(c);
	c->state = CS_WAITING;
	l->reported_connected = false;
	conn_lost(c);
	c->failures++;
	delay = backoff_ms(l, c->failures);
	report(l, "%s connection %s: %s; retrying in %u ms", c->name,
		   was_up ? "lost" : "failed", why, delay);
	uv_timer_start(&c->timer, on_conn_timer, delay, 0);
}

/* Poll for what c needs next and flush what libpq has to send. */
static bool
conn_update_poll(pgconn *c)
{
	pg_listener *l = c->l;
	int events = 0;
	int f;

	if (c->state != CS_SETUP && c->state != CS_READY)
		return false;
	/* a blocked LISTEN connection is not read: notifications stay in the
	 * server's queue (backpressure) instead of libpq's memory */
	if (!c->is_listen || c->state == CS_SETUP ||
		(l->have_frontier && !l->hold_notifies && fifo_room(l) > 0 &&
		 dset_count(&l->unconfirmed) < l->unconfirmed.max))
		events |= UV_READABLE;
	f = PQflush(c->conn);
	if (f < 0)
	{
		conn_fail(c, "%s", conn_error(c));
		return false;
	}
	if (f > 0)
		events |= UV_WRITABLE;
	if (poll_set(c, events, false) < 0)
	{
		conn_fail(c, "cannot watch the socket");
		return false;
	}
	return true;
}

static bool
send_query(pgconn *c, query_op op, const char *sql, int nparams,
		   const char *const *params)
{
	if (!PQsendQueryParams(c->conn, sql, nparams, NULL, params, NULL, NULL, 0))
	{
		conn_fail(c, "%s", conn_error(c));
		return false;
	}
	c->op = op;
	return conn_update_poll(c);
}

static void
conn_established(pgconn *c)
{
	pg_listener *l = c->l;

	uv_timer_stop(&c->timer);
	if (PQsetnonblocking(c->conn, 1) != 0)
	{
		conn_fail(c, "%s", conn_error(c));
		return;
	}
	if (c->is_listen)
	{
		char *ident =
			PQescapeIdentifier(c->conn, l->channel, strlen(l->channel));
		char sql[160];

		if (ident == NULL)
		{
			conn_fail(c, "%s", conn_error(c));
			return;
		}
		snprintf(sql, sizeof(sql), "LISTEN %s", ident);
		PQfreemem(ident);
		c->state = CS_SETUP;
		send_query(c, OP_LISTEN, sql, 0, NULL);
		return;
	}
	c->state = CS_READY;
	report(l, "query connection to %s port %s established",
		   str_or(PQhost(c->conn), "?"), str_or(PQport(c->conn), "?"));
	if (c->ever_ready)
		l->stats.reconnects++;
	c->ever_ready = true;
	if (conn_update_poll(c))
		report_if_ready(l);
}

/* Wait for what PQconnectPoll asked for, on a fresh handle. */
static void
connect_wait(pgconn *c, PostgresPollingStatusType r)
{
	if (poll_set(c, r == PGRES_POLLING_READING ? UV_READABLE : UV_WRITABLE,
				 true) < 0)
		conn_fail(c, "cannot watch the socket");
}

static void
connect_step(pgconn *c)
{
	PostgresPollingStatusType r = PQconnectPoll(c->conn);

	switch (r)
	{
		case PGRES_POLLING_OK:
			conn_established(c);
			break;
		case PGRES_POLLING_READING:
		case PGRES_POLLING_WRITING:
			connect_wait(c, r);
			break;
		default:
			conn_fail(c, "%s", conn_error(c));
			break;
	}
}

/* Server NOTICEs and WARNINGs go to the log, not to stderr. */
static void
on_notice(void *arg, const char *message)
{
	pgconn *c = arg;

	report(c->l, "%s connection: server says: %s", c->name, message);
}

static void
conn_start(pgconn *c)
{
	/* in the order of conn_keys; see there for the numbers */
	const char *vals[] = {
		"1", "10", "5", "3", "25000", "cellcms-relay", c->l->conninfo, NULL};

	c->conn = PQconnectStartParams(conn_keys, vals, 1);
	if (c->conn == NULL)
	{
		conn_fail(c, "out of memory");
		return;
	}
	if (PQstatus(c->conn) == CONNECTION_BAD)
	{
		conn_fail(c, "%s", conn_error(c));
		return;
	}
	PQsetNoticeProcessor(c->conn, on_notice, c);
	c->state = CS_CONNECTING;
	uv_timer_start(&c->timer, on_conn_timer, c->l->cfg.connect_timeout_ms, 0);
	/* libpq: after PQconnectStart, behave as if PQconnectPoll had said
	 * PGRES_POLLING_WRITING */
	connect_wait(c, PGRES_POLLING_WRITING);
}

/* ---- queries -------------------------------------------------------- */

static void
send_snapshot(pg_listener *l)
{
	l->advance_wanted = false;
	l->adv = ADV_SNAPSHOT;
	l->snapshot_gen++;
	send_query(&l->query, OP_SNAPSHOT, snapshot_sql, 0, NULL);
}

static void
send_page(pg_listener *l, unsigned limit)
{
	char after[24], lim[16];
	const char *params[4];

	snprintf(after, sizeof(after), "%lld", (long long) l->catchup_after);
	snprintf(lim, sizeof(lim), "%u", limit);
	params[0] = l->frontier_text;
	params[1] = l->next_text;
	params[2] = after;
	params[3] = lim;
	l->page_limit = limit;
	send_query(&l->query, OP_PAGE, page_sql, 4, params);
}

static void
send_documents(pg_listener *l)
{
	/* "{p1,p2,...}": at most 20 bytes per position */
	size_t cap = (size_t) l->cfg.document_batch * 21 + 3;
	char *arr = malloc(cap);
	size_t len = 0;
	const char *params[1];

	if (arr == NULL)
	{
		conn_fail(&l->query, "out of memory");
		return;
	}
	arr[len++] = '{';
	for (size_t i = 0; i < l->fifo_count && l->nloading < l->cfg.document_batch;
		 i++)
	{
		size_t slot = (l->fifo_head + i) % l->cfg.max_pending_events;
		pending *p = &l->fifo[slot];

		if (!p->needs_doc || p->loading || p->loaded)
			continue;
		len += (size_t) snprintf(arr + len, cap - len, "%s%lld",
								 l->nloading ? "," : "",
								 (long long) p->ev.position);
		p->loading = true;
		l->loading[l->nloading++] = slot;
		l->docs_wanted--;
	}
	arr[len++] = '}';
	arr[len] = '\0';
	params[0] = arr;
	send_query(&l->query, OP_DOCUMENTS, documents_sql, 1, params);
	free(arr);
}

/*
 * Send the next query when the query connection is idle.  Loads first:
 * they hold up delivery.  A catch-up in progress owns the connection until
 * it ends (a page waits for room in the FIFO).
 */
static void
kick(pg_listener *l)
{
	pgconn *c = &l->query;

	if (l->stopping || c->state != CS_READY || c->op != OP_NONE)
		return;
	if (l->docs_wanted > 0)
		send_documents(l);
	else if (l->adv == ADV_CATCHUP)
	{
		size_t room = fifo_room(l);

		if (room > 0)
			send_page(l, room < l->cfg.catchup_batch ? (unsigned) room
													 : l->cfg.catchup_batch);
	}
	else if (l->advance_wanted && l->adv == ADV_IDLE &&
			 (l->have_frontier || l->listen.state == CS_READY))
		send_snapshot(l);
	else if (l->prune_wanted && l->have_frontier)
	{
		l->prune_wanted = false;
		send_query(c, OP_PRUNE, prune_sql, 0, NULL);
	}
}

/* F' was taken: the first one becomes F, later ones start a catch-up. */
static bool
snapshot_done(pg_listener *l, PGresult *r)
{
	snapshot s;
	char err[128];
	char *text;

	if (PQntuples(r) != 1 || PQnfields(r) != 1 || PQgetisnull(r, 0, 0))
	{
		conn_fail(&l->query, "unexpected pg_current_snapshot() result");
		return false;
	}
	if (snapshot_parse(PQgetvalue(r, 0, 0), (size_t) PQgetlength(r, 0, 0), &s,
					   err, sizeof(err)) < 0)
	{
		conn_fail(&l->query, "pg_current_snapshot(): %s", err);
		return false;
	}
	text = strdup(PQgetvalue(r, 0, 0));
	if (text == NULL)
	{
		snapshot_free(&s);
		conn_fail(&l->query, "out of memory");
		return false;
	}
	if (!l->have_frontier)
	{
		l->frontier = s;
		l->frontier_text = text;
		l->have_frontier = true;
		l->adv = ADV_IDLE;
		report_if_ready(l);
	}
	else
	{
		l->next = s;
		l->next_text = text;
		l->next_gen = l->snapshot_gen;
		l->catchup_after = 0;
		l->adv = ADV_CATCHUP;
	}
	return true;
}

static void
advance_done(pg_listener *l)
{
	snapshot_free(&l->frontier);
	free(l->frontier_text);
	l->frontier = l->next;
	l->frontier_text = l->next_text;
	memset(&l->next, 0, sizeof(l->next));
	l->next_text = NULL;
	dset_remove_visible(&l->unconfirmed, &l->frontier);
	l->adv = ADV_IDLE;
	if (l->hold_notifies && l->next_gen >= l->hold_gen)
		l->hold_notifies = false;
}

/* A page of the catch-up: rows D does not hold are delivered. */
static bool
page_done(pg_listener *l, PGresult *r)
{
	int n = PQntuples(r);
	unsigned limit = l->page_limit;

	l->page_limit = 0;
	if (PQnfields(r) != 7)
	{
		conn_fail(&l->query, "unexpected catch-up result");
		return false;
	}
	for (int i = 0; i < n; i++)
	{
		rt_event ev;
		char err[128];
		long long pos = strtoll(PQgetvalue(r, i, 0), NULL, 10);

		/* position orders the pages, whatever else is wrong with the row */
		if (pos > l->catchup_after)
			l->catchup_after = pos;
		if (event_from_row(PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
						   PQgetvalue(r, i, 2), PQgetvalue(r, i, 3),
						   PQgetisnull(r, i, 4) ? NULL : PQgetvalue(r, i, 4),
						   PQgetvalue(r, i, 5), PQgetvalue(r, i, 6), &ev, err,
						   sizeof(err)) < 0)
		{
			report(l, "skipped change log row %lld: %s", pos, err);
			continue;
		}
		if (dset_contains(&l->unconfirmed, ev.position))
		{
			event_free(&ev);
			continue;
		}
		l->stats.from_catchup++;
		fifo_push(l, &ev);
	}
	if ((unsigned) n < limit)
		advance_done(l);
	return true;
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

static bool
documents_done(pg_listener *l, PGresult *r)
{
	int n = PQntuples(r);

	if (PQnfields(r) != 5)
	{
		conn_fail(&l->query, "unexpected document result");
		return false;
	}
	for (int i = 0; i < n; i++)
	{
		long long pos = strtoll(PQgetvalue(r, i, 0), NULL, 10);
		pending *p = NULL;
		json_error_t jerr;

		for (size_t k = 0; k < l->nloading; k++)
		{
			if (l->fifo[l->loading[k]].ev.position == pos)
			{
				p = &l->fifo[l->loading[k]];
				break;
			}
		}
		if (p == NULL || p->ev.document != NULL)
			continue;
		p->ev.document =
			json_loadb(PQgetvalue(r, i, 4), (size_t) PQgetlength(r, i, 4),
					   JSON_REJECT_DUPLICATES, &jerr);
		if (p->ev.document == NULL)
			report(l, "document of change %lld not loaded: %s", pos, jerr.text);
		else
			l->stats.documents_loaded++;
		if (p->ev.truncated && !PQgetisnull(r, i, 1) && !PQgetisnull(r, i, 2))
		{
			replace_string(&p->ev.dataset, PQgetvalue(r, i, 1));
			replace_string(&p->ev.document_id, PQgetvalue(r, i, 2));
			replace_string(&p->ev.document_type,
						   PQgetisnull(r, i, 3) ? NULL : PQgetvalue(r, i, 3));
			p->ev.truncated = false;
		}
	}
	/* rows not found were pruned: those events go without a document */
	for (size_t k = 0; k < l->nloading; k++)
	{
		pending *p = &l->fifo[l->loading[k]];

		p->loading = false;
		p->loaded = true;
	}
	l->nloading = 0;
	fifo_flush(l);
	return true;
}

static const char *
op_name(query_op op)
{
	switch (op)
	{
		case OP_LISTEN:
			return "LISTEN";
		case OP_SNAPSHOT:
			return "pg_current_snapshot()";
		case OP_PAGE:
			return "catch-up";
		case OP_DOCUMENTS:
			return "document load";
		case OP_PRUNE:
			return "cellcms_rt.prune()";
		default:
			return "query";
	}
}

/* The query op of c ended with r (owned here, may be NULL). */
static bool
op_done(pgconn *c, query_op op, PGresult *r)
{
	pg_listener *l = c->l;
	ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
	bool ok = true;

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
	{
		const char *m = r ? PQresultErrorMessage(r) : "";

		if (op == OP_PRUNE)
		{
			/* pruning is housekeeping: say so, keep the connection */
			report(l, "%s failed: %s", op_name(op), *m ? m : conn_error(c));
			PQclear(r);
			return true;
		}
		/* the page in flight, the load, the snapshot are retried on a new
		 * connection after a backoff, so a setup error is loud but not
		 * busy */
		conn_fail(c, "%s failed: %s", op_name(op), *m ? m : conn_error(c));
		PQclear(r);
		return false;
	}
	c->failures = 0;
	switch (op)
	{
		case OP_LISTEN:
			c->state = CS_READY;
			if (c->ever_ready)
				l->stats.reconnects++;
			c->ever_ready = true;
			/* NOTIFYs were lost while not listening: catch up from F, and
			 * hold the new ones until that catch-up is delivered */
			l->advance_wanted = true;
			if (l->have_frontier)
			{
				l->hold_notifies = true;
				l->hold_gen = l->snapshot_gen + 1;
			}
			report(l, "LISTEN connection to %s port %s established",
				   str_or(PQhost(c->conn), "?"), str_or(PQport(c->conn), "?"));
			report_if_ready(l);
			break;
		case OP_SNAPSHOT:
			ok = snapshot_done(l, r);
			break;
		case OP_PAGE:
			ok = page_done(l, r);
			break;
		case OP_DOCUMENTS:
			ok = documents_done(l, r);
			break;
		case OP_PRUNE:
			if (PQntuples(r) == 1 && !PQgetisnull(r, 0, 0) &&
				strcmp(PQgetvalue(r, 0, 0), "0") != 0)
				report(l, "pruned %s change log rows", PQgetvalue(r, 0, 0));
			break;
		case OP_NONE:
			break;
	}
	PQclear(r);
	return ok;
}

/* Collect finished results of c.  False when c failed. */
static bool
conn_results(pgconn *c)
{
	while (c->op != OP_NONE && !PQisBusy(c->conn))
	{
		PGresult *r = PQgetResult(c->conn);
		query_op op;

		if (r != NULL)
		{
			/* one statement per query: keep the first, an error wins */
			if (c->result == NULL)
				c->result = r;
			else if (PQresultStatus(r) == PGRES_FATAL_ERROR)
			{
				PQclear(c->result);
				c->result = r;
			}
			else
				PQclear(r);
			continue;
		}
		op = c->op;
		r = c->result;
		c->op = OP_NONE;
		c->result = NULL;
		if (!op_done(c, op, r))
			return false;
	}
	if (PQstatus(c->conn) == CONNECTION_BAD)
	{
		conn_fail(c, "%s", conn_error(c));
		return false;
	}
	return true;
}

/* ---- notifications -------------------------------------------------- */

static void
handle_notify(pg_listener *l, const PGnotify *n)
{
	rt_event ev;
	char err[128];

	if (strcmp(n->relname, l->channel) != 0)
		return;
	if (event_from_notify(n->extra, strlen(n->extra), &ev, err, sizeof(err)) <
		0)
	{
		l->stats.bad_payloads++;
		report(l, "ignored a notification from backend %d: %s", n->be_pid, err);
		return;
	}
	if (snapshot_visible(&l->frontier, ev.txid) ||
		dset_contains(&l->unconfirmed, ev.position) ||
		(l->adv == ADV_CATCHUP && snapshot_visible(&l->next, ev.txid)))
	{
		l->stats.duplicates++;
		event_free(&ev);
		return;
	}
	dset_add(&l->unconfirmed, ev.position, ev.txid);
	/* an advance empties D of everything committed before it started */
	if (dset_count(&l->unconfirmed) >= l->unconfirmed.max / 2)
		l->advance_wanted = true;
	l->stats.from_notify++;
	fifo_push(l, &ev);
}

/* Take the notifications libpq holds, as far as the bounds allow. */
static void
listen_drain(pg_listener *l)
{
	pgconn *c = &l->listen;

	if (c->state != CS_READY)
		return;
	while (l->have_frontier && !l->hold_notifies && fifo_room(l) > 0 &&
		   dset_count(&l->unconfirmed) < l->unconfirmed.max && !l->stopping)
	{
		PGnotify *n = PQnotifies(c->conn);

		if (n == NULL)
			break;
		handle_notify(l, n);
		PQfreemem(n);
	}
	conn_update_poll(c);
}

/* After anything changed: take notifications, start the next query. */
static void
progress(pg_listener *l)
{
	if (l->stopping)
		return;
	listen_drain(l);
	kick(l);
}

static void
on_poll(uv_poll_t *h, int status, int events)
{
	pgconn *c = h->data;
	pg_listener *l = c->l;

	if (status < 0)
		conn_fail(c, "socket error: %s", uv_strerror(status));
	else if (c->state == CS_CONNECTING)
		connect_step(c);
	else if ((events & UV_READABLE) && !PQconsumeInput(c->conn))
		conn_fail(c, "%s", conn_error(c));
	else if (conn_results(c))
		conn_update_poll(c);
	progress(l);
}

/* ---- timers and the public functions -------------------------------- */

static void
on_advance_timer(uv_timer_t *t)
{
	pg_listener *l = t->data;

	l->advance_wanted = true;
	progress(l);
}

static void
on_prune_timer(uv_timer_t *t)
{
	pg_listener *l = t->data;

	l->prune_wanted = true;
	progress(l);
}

void
pg_listener_config_init(pg_listener_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->channel = PG_LISTENER_DEFAULT_CHANNEL;
	cfg->advance_interval_ms = PG_LISTENER_DEFAULT_ADVANCE_MS;
	cfg->catchup_batch = PG_LISTENER_DEFAULT_CATCHUP_BATCH;
	cfg->document_batch = PG_LISTENER_DEFAULT_DOCUMENT_BATCH;
	cfg->reconnect_min_ms = PG_LISTENER_DEFAULT_RECONNECT_MIN_MS;
	cfg->reconnect_max_ms = PG_LISTENER_DEFAULT_RECONNECT_MAX_MS;
	cfg->connect_timeout_ms = PG_LISTENER_DEFAULT_CONNECT_TIMEOUT_MS;
	cfg->max_pending_events = PG_LISTENER_DEFAULT_MAX_PENDING;
	cfg->max_unconfirmed = PG_LISTENER_DEFAULT_MAX_UNCONFIRMED;
	cfg->prune_interval_s = PG_LISTENER_DEFAULT_PRUNE_INTERVAL_S;
}

static const char *
config_check(const pg_listener_config *cfg)
{
	if (cfg->conninfo == NULL)
		return "conninfo is not set";
	if (cfg->channel == NULL || cfg->channel[0] == '\0' ||
		strlen(cfg->channel) > 63)
		return "channel must be 1 to 63 bytes";
	if (cfg->advance_interval_ms < 10)
		return "advance interval must be at least 10 ms";
	if (cfg->catchup_batch < 1 || cfg->catchup_batch > 100000)
		return "catch-up batch must be 1 to 100000";
	if (cfg->document_batch < 1 || cfg->document_batch > 10000)
		return "document batch must be 1 to 10000";
	if (cfg->reconnect_min_ms < 1 ||
		cfg->reconnect_max_ms < cfg->reconnect_min_ms)
		return "reconnect delays must satisfy 1 <= min <= max";
	if (cfg->connect_timeout_ms < 100)
		return "connect timeout must be at least 100 ms";
	if (cfg->max_pending_events < 1 || cfg->max_pending_events > 10000000)
		return "max pending events must be 1 to 10000000";
	if (cfg->max_unconfirmed < 16 || cfg->max_unconfirmed > (1u << 30))
		return "max unconfirmed must be 16 to 2^30";
	if (cfg->prune_interval_s > 365u * 86400u)
		return "prune interval must be at most a year";
	return NULL;
}

static void
conn_init(pg_listener *l, pgconn *c, const char *name, bool is_listen)
{
	c->l = l;
	c->name = name;
	c->is_listen = is_listen;
	c->state = CS_WAITING;
	uv_timer_init(l->loop, &c->timer);
	c->timer.data = c;
	l->open_handles++;
}

pg_listener *
pg_listener_start(uv_loop_t *loop, const pg_listener_config *cfg,
				  const pg_listener_callbacks *cbs, void *arg, char *err,
				  size_t errlen)
{
	const char *bad = config_check(cfg);
	pg_listener *l;

	if (bad == NULL && (cbs == NULL || cbs->on_event == NULL))
		bad = "on_event callback is not set";
	if (bad != NULL)
	{
		snprintf(err, errlen, "%s", bad);
		return NULL;
	}
	l = calloc(1, sizeof(*l));
	if (l == NULL)
		goto nomem;
	l->loop = loop;
	l->cbs = *cbs;
	l->arg = arg;
	l->cfg = *cfg;
	l->rand = uv_hrtime() ^ ((uint64_t) getpid() << 32) ^ (uintptr_t) l;
	if (l->rand == 0)
		l->rand = 1;
	l->conninfo = strdup(cfg->conninfo);
	l->channel = strdup(cfg->channel);
	l->fifo = calloc(cfg->max_pending_events, sizeof(*l->fifo));
	l->loading = calloc(cfg->document_batch, sizeof(*l->loading));
	if (!l->conninfo || !l->channel || !l->fifo || !l->loading ||
		dset_init(&l->unconfirmed, cfg->max_unconfirmed,
				  l->rand * UINT64_C(0x9e3779b97f4a7c15)) < 0)
		goto nomem;
	l->cfg.conninfo = l->conninfo;
	l->cfg.channel = l->channel;

	conn_init(l, &l->listen, "LISTEN", true);
	conn_init(l, &l->query, "query", false);
	uv_timer_init(loop, &l->advance_timer);
	l->advance_timer.data = l;
	uv_timer_init(loop, &l->prune_timer);
	l->prune_timer.data = l;
	l->open_handles += 2;
	uv_timer_start(&l->advance_timer, on_advance_timer,
				   cfg->advance_interval_ms, cfg->advance_interval_ms);
	if (cfg->prune_interval_s > 0)
		uv_timer_start(&l->prune_timer, on_prune_timer,
					   (uint64_t) cfg->prune_interval_s * 1000,
					   (uint64_t) cfg->prune_interval_s * 1000);
	l->advance_wanted = true;
	conn_start(&l->listen);
	conn_start(&l->query);
	return l;

nomem:
	if (l != NULL)
	{
		dset_free(&l->unconfirmed);
		free(l->conninfo);
		free(l->channel);
		free(l->fifo);
		free(l->loading);
		free(l);
	}
	snprintf(err, errlen, "out of memory");
	return NULL;
}

void
pg_listener_stop(pg_listener *l, void (*closed)(void *), void *closed_arg)
{
	pgconn *conns[2];

	if (l == NULL)
		return;
	conns[0] = &l->listen;
	conns[1] = &l->query;
	l->stopping = true;
	l->closed = closed;
	l->closed_arg = closed_arg;
	for (int i = 0; i < 2; i++)
	{
		conn_reset(conns[i]);
		uv_close((uv_handle_t *) &conns[i]->timer, conn_timer_closed);
	}
	uv_close((uv_handle_t *) &l->advance_timer, timer_closed);
	uv_close((uv_handle_t *) &l->prune_timer, timer_closed);
	for (size_t i = 0; i < l->fifo_count; i++)
		event_free(&l->fifo[(l->fifo_head + i) % l->cfg.max_pending_events].ev);
	l->fifo_count = 0;
}

void
pg_listener_get_stats(const pg_listener *l, pg_listener_stats *out)
{
	*out = l->stats;
	out->pending = l->fifo_count;
	out->unconfirmed = dset_count(&l->unconfirmed);
}
