/*
 * pg_listener: two non-blocking libpq connections on a libuv loop.  What
 * they ask and what reaches on_event is decided by delivery.c; this file
 * connects, retries, sends those queries and parses their results.  See
 * pg_listener.h.
 */
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "delivery.h"
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
	delivery *d; /* NULL once stopping */
	bool prune_wanted;
	bool reported_connected;
	unsigned long long bad_payloads;
	unsigned long long reconnects;
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

/* ---- logging -------------------------------------------------------- */

static bool
is_connected(const pg_listener *l)
{
	return l->listen.state == CS_READY && l->query.state == CS_READY &&
		   delivery_frontier(l->d) != NULL;
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
			   delivery_frontier(l->d));
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

/* ---- delivery ------------------------------------------------------- */

/* Hand every event that waits for nothing to on_event. */
static void
deliver(pg_listener *l)
{
	rt_event ev;

	while (!l->stopping && delivery_pop(l->d, &ev))
	{
		l->cbs.on_event(l->arg, &ev);
		event_free(&ev);
	}
}

/* ---- connections ---------------------------------------------------- */

/*
 * Exponential backoff with jitter, always within [reconnect_min_ms,
 * reconnect_max_ms] (what the README promises): the k-th retry waits
 * uniformly in [hi / 2, hi], hi = min * 2^k capped at max, and never less
 * than min.
 */
static unsigned
backoff_ms(pg_listener *l, unsigned failures)
{
	uint64_t hi = l->cfg.reconnect_min_ms, lo;

	for (unsigned i = 0; i < failures && hi < l->cfg.reconnect_max_ms; i++)
		hi *= 2;
	if (hi > l->cfg.reconnect_max_ms)
		hi = l->cfg.reconnect_max_ms;
	lo = hi / 2 > l->cfg.reconnect_min_ms ? hi / 2 : l->cfg.reconnect_min_ms;
	if (lo > hi)
		lo = hi;
	/* xorshift64: spreads the retries of many relays after an outage */
	l->rand ^= l->rand << 13;
	l->rand ^= l->rand >> 7;
	l->rand ^= l->rand << 17;
	return (unsigned) (lo + l->rand % (hi - lo + 1));
}

/* What c's loss means for the delivery; c is already reset. */
static void
conn_lost(pgconn *c)
{
	if (c->is_listen)
		delivery_listen_lost(c->l->d);
	else
		delivery_query_lost(c->l->d);
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
		delivery_wants_notifications(l->d))
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
		l->reconnects++;
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
send_page(pg_listener *l, const delivery_query *q)
{
	char after[24], lim[16];
	const char *params[4];

	snprintf(after, sizeof(after), "%lld", (long long) q->after);
	snprintf(lim, sizeof(lim), "%u", q->limit);
	params[0] = q->from;
	params[1] = q->to;
	params[2] = after;
	params[3] = lim;
	send_query(&l->query, OP_PAGE, page_sql, 4, params);
}

static void
send_documents(pg_listener *l, const delivery_query *q)
{
	/* "{p1,p2,...}": at most 20 bytes per position */
	size_t cap = q->npositions * 21 + 3;
	char *arr = malloc(cap);
	size_t len = 0;
	const char *params[1];

	if (arr == NULL)
	{
		conn_fail(&l->query, "out of memory");
		return;
	}
	arr[len++] = '{';
	for (size_t i = 0; i < q->npositions; i++)
		len += (size_t) snprintf(arr + len, cap - len, "%s%lld", i ? "," : "",
								 (long long) q->positions[i]);
	arr[len++] = '}';
	arr[len] = '\0';
	params[0] = arr;
	send_query(&l->query, OP_DOCUMENTS, documents_sql, 1, params);
	free(arr);
}

/* Send what delivery asks for; housekeeping when it asks nothing. */
static void
kick(pg_listener *l)
{
	pgconn *c = &l->query;
	delivery_query q;

	if (l->stopping || c->state != CS_READY || c->op != OP_NONE)
		return;
	switch (delivery_next_query(l->d, &q))
	{
		case DELIVERY_SNAPSHOT:
			send_query(c, OP_SNAPSHOT, snapshot_sql, 0, NULL);
			break;
		case DELIVERY_PAGE:
			send_page(l, &q);
			break;
		case DELIVERY_DOCUMENTS:
			send_documents(l, &q);
			break;
		case DELIVERY_IDLE:
			if (l->prune_wanted && delivery_frontier(l->d) != NULL)
			{
				l->prune_wanted = false;
				send_query(c, OP_PRUNE, prune_sql, 0, NULL);
			}
			break;
		case DELIVERY_WAIT:
			break;
	}
}

static bool
snapshot_done(pg_listener *l, PGresult *r)
{
	char err[128];

	if (PQntuples(r) != 1 || PQnfields(r) != 1 || PQgetisnull(r, 0, 0))
	{
		conn_fail(&l->query, "unexpected pg_current_snapshot() result");
		return false;
	}
	if (delivery_snapshot_taken(l->d, PQgetvalue(r, 0, 0),
								(size_t) PQgetlength(r, 0, 0), err,
								sizeof(err)) < 0)
	{
		conn_fail(&l->query, "pg_current_snapshot(): %s", err);
		return false;
	}
	report_if_ready(l);
	return true;
}

/* NULL for a NULL column. */
static const char *
value_or_null(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

static bool
page_done(pg_listener *l, PGresult *r)
{
	int n = PQntuples(r);

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

		if (event_from_row(PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
						   PQgetvalue(r, i, 2), PQgetvalue(r, i, 3),
						   value_or_null(r, i, 4), PQgetvalue(r, i, 5),
						   PQgetvalue(r, i, 6), &ev, err, sizeof(err)) < 0)
		{
			report(l, "skipped change log row %lld: %s", pos, err);
			/* its position still orders the pages */
			delivery_page_row(l->d, pos, NULL);
			continue;
		}
		delivery_page_row(l->d, pos, &ev);
		deliver(l);
	}
	delivery_page_done(l->d);
	return true;
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
		json_error_t jerr;
		json_t *doc =
			json_loadb(PQgetvalue(r, i, 4), (size_t) PQgetlength(r, i, 4),
					   JSON_REJECT_DUPLICATES, &jerr);

		if (doc == NULL)
			report(l, "document of change %lld not loaded: %s", pos, jerr.text);
		delivery_document(l->d, pos, value_or_null(r, i, 1),
						  value_or_null(r, i, 2), value_or_null(r, i, 3), doc);
	}
	delivery_documents_done(l->d);
	deliver(l);
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
				l->reconnects++;
			c->ever_ready = true;
			delivery_listen_started(l->d);
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
		l->bad_payloads++;
		report(l, "ignored a notification from backend %d: %s", n->be_pid, err);
		return;
	}
	delivery_notify(l->d, &ev);
	deliver(l);
}

/* Take the notifications libpq holds, as far as the bounds allow. */
static void
listen_drain(pg_listener *l)
{
	pgconn *c = &l->listen;

	if (c->state != CS_READY)
		return;
	while (!l->stopping && delivery_wants_notifications(l->d))
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

	delivery_interval_elapsed(l->d);
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
	delivery_config dcfg;
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
	dcfg.catchup_batch = cfg->catchup_batch;
	dcfg.document_batch = cfg->document_batch;
	dcfg.max_pending_events = cfg->max_pending_events;
	dcfg.max_unconfirmed = cfg->max_unconfirmed;
	dcfg.key = l->rand * UINT64_C(0x9e3779b97f4a7c15);
	dcfg.needs_document = cbs->needs_document;
	dcfg.arg = arg;
	l->d = delivery_new(&dcfg);
	if (!l->conninfo || !l->channel || !l->d)
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
	conn_start(&l->listen);
	conn_start(&l->query);
	return l;

nomem:
	if (l != NULL)
	{
		delivery_free(l->d);
		free(l->conninfo);
		free(l->channel);
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
	delivery_free(l->d);
	l->d = NULL;
}

void
pg_listener_get_stats(const pg_listener *l, pg_listener_stats *out)
{
	delivery_stats ds;

	delivery_get_stats(l->d, &ds);
	out->delivered = ds.delivered;
	out->from_notify = ds.from_notify;
	out->from_catchup = ds.from_catchup;
	out->duplicates = ds.duplicates;
	out->bad_payloads = l->bad_payloads;
	out->documents_loaded = ds.documents_loaded;
	out->reconnects = l->reconnects;
	out->pending = ds.pending;
	out->unconfirmed = ds.unconfirmed;
}
