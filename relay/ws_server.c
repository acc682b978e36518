/*
 * ws_server: libwebsockets glue.  See ws_server.h.
 *
 * One protocol serves both HTTP (/healthz) and WebSocket (/ws) on the
 * relay's libuv loop.  A session is lws's per-connection user data: it
 * holds the hub client once the connection is authenticated, the partial
 * message being reassembled, and a pending close.
 *
 * Closes initiated by the hub (slow client, expired token, shutdown) are
 * started from an lws timer callback (see close_now); a timeout kills the
 * connection if the close never completes because the peer stopped
 * reading.
 *
 * Queued messages are written by ws_frame, several to a send; ws_frame.h
 * lists what that assumes of lws.
 */
#include <errno.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "auth.h"
#include "hub.h"
#include "ilist.h"
#include "log.h"
#include "outq.h"
#include "ws_frame.h"
#include "ws_server.h"

/*
 * 1013 Try Again Later, from IANA's WebSocket close code registry: lws 4.1
 * has no name for it.  The relay's own codes are hub.h's HUB_CLOSE_*, the
 * rest lws's LWS_CLOSE_STATUS_*.
 */
#define WS_CLOSE_TRY_AGAIN_LATER 1013

/* How long shutdown waits for clients to acknowledge 1001. */
#define SHUTDOWN_GRACE_MS 3000
#define MAX_DATASET_LEN	  128

/*
 * lws 4.1 reports no pong to an empty ping (LWS_CALLBACK_RECEIVE_PONG never
 * comes), so pings carry a payload.
 */
#define PING_PAYLOAD "cellcms"

/*
 * The keepalive tick runs every second; one that finds more than this gap
 * since the last means the relay itself was not running.
 */
#define KEEPALIVE_STALL_SEC 2

struct ws_server
{
	ws_server_config cfg;
	struct lws_context *context;
	hub *hub;
	const auth_config *auth;
	lws_retry_bo_t no_lws_keepalive;
	bool shutting_down;
	size_t live_sessions;	 /* WebSocket connections not yet destroyed */
	size_t refused_sessions; /* of those, refused after the handshake */
	time_t last_full_warning;
	time_t last_refused_warning;
	void (*done)(void *arg);
	void *done_arg;
	uv_timer_t shutdown_timer;
	uv_timer_t keepalive_timer;
	uv_check_t flush_check;
	dlist_head dirty;	 /* sessions with messages to write directly */
	dlist_head sessions; /* established WebSocket sessions */
	time_t now;			 /* seconds, refreshed by the keepalive tick */
	time_t last_sweep;	 /* when the keepalive tick last ran */
};

typedef struct session
{
	struct lws *wsi;
	hub_client *client; /* NULL until authenticated */
	/* Set between FILTER_PROTOCOL_CONNECTION and ESTABLISHED. */
	auth_identity *pending_identity;
	char *pending_dataset;
	/* A close to send from the next WRITEABLE callback. */
	int close_code;
	char close_reason[64];
	/* A message arriving in several fragments or chunks. */
	char *rx;
	size_t rx_len;
	/* /healthz body */
	char *http_body;
	/*
	 * In live_sessions (and refused_sessions if refused): from ESTABLISHED
	 * to WSI_DESTROY, which comes after CLOSED has taken the session off
	 * `sessions`.
	 */
	bool counted;
	bool refused;
	/* Keep-alive: in the server's `sessions`, swept every second. */
	dlist_node session_link;
	time_t last_heard; /* last frame or pong from the peer */
	time_t last_ping;  /* when a ping was last asked for */
	bool ping_due;	   /* asked for, not yet written */
	time_t ping_sent;  /* written and unanswered since; 0: none */
	/*
	 * Writes without the POLLOUT round trip: once established (and if
	 * ws_frame_direct_ok()), a session whose queue fills is put on the
	 * server's `dirty` list and written at the end of the loop iteration
	 * (see flush_dirty).  lws zeroes the session, so both links start
	 * unlinked.
	 */
	bool direct_ok;
	dlist_node dirty_link;
} session;

static ws_server *
server_of(struct lws *wsi)
{
	return lws_context_user(lws_get_context(wsi));
}

/* The close to send later; a longer reason is cut to fit close_reason. */
static void
set_close(session *s, int code, const char *reason)
{
	s->close_code = code;
	snprintf(s->close_reason, sizeof(s->close_reason), "%s", reason);
}

static void
session_request_close(session *s, int code, const char *reason)
{
	if (s->close_code)
		return;
	set_close(s, code, reason);
	lws_set_timer_usecs(s->wsi, 1);
	/*
	 * Called from outside lws (a libuv callback of the hub's): wake lws so
	 * that it re-arms its timer with the new deadline.
	 */
	lws_cancel_service(lws_get_context(s->wsi));
}

/* lws sends the close frame once the callback returns the -1. */
static int
close_with(struct lws *wsi, int code, const char *reason)
{
	lws_close_reason(wsi, (enum lws_close_status) code,
					 (unsigned char *) reason, strlen(reason));
	return -1;
}

/*
 * The close frame must be started from a callback other than WRITEABLE:
 * returning -1 from WRITEABLE makes lws drop the socket without a close
 * frame, so the client would only see 1006.  lws then sends the frame and
 * waits (with its own timeout) for the peer's acknowledgement.
 */
static int
close_now(session *s, struct lws *wsi)
{
	return close_with(wsi, s->close_code, s->close_reason);
}

static void
sink_wake(void *transport)
{
	session *s = transport;

	if (!s->direct_ok)
	{
		lws_callback_on_writable(s->wsi);
		return;
	}
	if (!dlist_node_is_linked(&s->dirty_link))
		dlist_push_head(&server_of(s->wsi)->dirty, &s->dirty_link);
}

static void
sink_close(void *transport, int code, const char *reason)
{
	session_request_close(transport, code, reason);
}

const hub_sink ws_server_sink = {sink_wake, sink_close};

/*
 * Copies the value of query argument `name` into out (outlen bytes with the
 * NUL); false when absent or too long.  scratch (scratchlen bytes) holds
 * one argument at a time: an argument longer than it ends the search.
 */
static bool
url_arg(struct lws *wsi, const char *name, char *scratch, int scratchlen,
		char *out, size_t outlen)
{
	size_t nlen = strlen(name);

	for (int i = 0;; i++)
	{
		int n = lws_hdr_copy_fragment(wsi, scratch, scratchlen,
									  WSI_TOKEN_HTTP_URI_ARGS, i);

		if (n < 0)
			return false;
		if ((size_t) n > nlen && strncmp(scratch, name, nlen) == 0 &&
			scratch[nlen] == '=')
		{
			if ((size_t) n - nlen - 1 >= outlen)
				return false;
			memcpy(out, scratch + nlen + 1, (size_t) n - nlen);
			return true;
		}
	}
}

static bool
dataset_name_ok(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > MAX_DATASET_LEN)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char) name[i] < 0x20 || name[i] == 0x7f)
			return false;
	return true;
}

/*
 * True when no more refused sessions may linger: the handshake is then
 * dropped without a close code (an attacker's flood, not a browser that
 * needs to see why).  Logged at most once a second.
 */
static bool
refused_full(ws_server *srv)
{
	time_t now;

	if (srv->refused_sessions < srv->cfg.max_refused_connections)
		return false;
	now = time(NULL);
	if (now != srv->last_refused_warning)
		log_msg(LOG_WARN,
				"dropping refused connections: --max-refused-connections "
				"(%u) reached",
				srv->cfg.max_refused_connections);
	srv->last_refused_warning = now;
	return true;
}

/*
 * Decide, before the handshake completes, what happens after it: either a
 * pending identity and dataset for hub_connect(), or a close code.  The
 * handshake itself always completes so that browsers see the close code
 * (a refused handshake is only "connection failed" to them).
 */
static int
filter_connection(ws_server *srv, session *s, struct lws *wsi)
{
	char path[16];
	char dataset[MAX_DATASET_LEN + 2];
	size_t token_cap = srv->auth->max_token_len + 1;
	int scratch_len = (int) token_cap + 16;
	char *token = NULL, *scratch = NULL;
	const char *reason;

	s->wsi = wsi;
	if (srv->shutting_down)
		return -1;
	if (lws_hdr_copy(wsi, path, sizeof(path), WSI_TOKEN_GET_URI) < 0 ||
		strcmp(path, "/ws") != 0)
		return -1;
	/*
	 * Refused sessions linger until the peer acknowledges the close: a
	 * client that never does must not hold the slots of accepted ones.
	 */
	if (srv->live_sessions - srv->refused_sessions >= srv->cfg.max_connections)
	{
		time_t now = time(NULL);

		if (now != srv->last_full_warning)
			log_msg(LOG_WARN,
					"refusing connections: --max-connections (%u) reached",
					srv->cfg.max_connections);
		srv->last_full_warning = now;
		set_close(s, WS_CLOSE_TRY_AGAIN_LATER, "too many connections");
		return refused_full(srv) ? -1 : 0;
	}

	token = malloc(token_cap);
	scratch = malloc((size_t) scratch_len);
	if (!token || !scratch)
	{
		free(token);
		free(scratch);
		return -1;
	}
	if (!url_arg(wsi, "dataset", scratch, scratch_len, dataset,
				 sizeof(dataset)))
		snprintf(dataset, sizeof(dataset), "%s", srv->cfg.default_dataset);
	if (!dataset_name_ok(dataset))
		set_close(s, HUB_CLOSE_FORBIDDEN, "invalid dataset name");
	else if (!url_arg(wsi, "token", scratch, scratch_len, token, token_cap))
		set_close(s, HUB_CLOSE_UNAUTHORIZED, "missing or oversized token");
	else
	{
		switch (auth_verify(srv->auth, token, time(NULL), &s->pending_identity,
							&reason))
		{
			case AUTH_OK:
				if (!auth_dataset_allowed(s->pending_identity, dataset))
					set_close(s, HUB_CLOSE_FORBIDDEN,
							  "token does not grant this dataset");
				break;
			case AUTH_INVALID:
				set_close(s, HUB_CLOSE_UNAUTHORIZED, reason);
				break;
			case AUTH_ERROR:
				set_close(s, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION,
						  "internal error");
				break;
		}
	}
	/* Tokens are credentials: do not leave copies in freed memory. */
	explicit_bzero(token, token_cap);
	explicit_bzero(scratch, (size_t) scratch_len);
	free(token);
	free(scratch);
	if (s->close_code)
	{
		log_msg(LOG_DEBUG, "connection refused after handshake: %d %s",
				s->close_code, s->close_reason);
		if (refused_full(srv))
			return -1;
		auth_identity_free(s->pending_identity);
		s->pending_identity = NULL;
		return 0;
	}
	s->pending_dataset = strdup(dataset);
	if (!s->pending_dataset)
	{
		auth_identity_free(s->pending_identity);
		s->pending_identity = NULL;
		return -1;
	}
	return 0;
}

static void
establish(ws_server *srv, session *s, struct lws *wsi)
{
	s->wsi = wsi;
	s->counted = true;
	srv->live_sessions++;
	if (s->close_code)
	{
		s->refused = true;
		srv->refused_sessions++;
	}
	s->last_heard = s->last_ping = srv->now;
	dlist_push_head(&srv->sessions, &s->session_link);
	if (s->close_code)
	{
		lws_set_timer_usecs(wsi, 1);
		return;
	}
	s->client =
		hub_connect(srv->hub, s, s->pending_identity, s->pending_dataset);
	s->pending_identity = NULL;
	free(s->pending_dataset);
	s->pending_dataset = NULL;
	if (!s->client)
		session_request_close(s, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION,
							  "out of memory");
	/*
	 * After hub_connect(), so that its wake-up for `welcome` asks lws for a
	 * WRITEABLE callback: a connection's first write waits for lws to
	 * report the socket writable.
	 */
	s->direct_ok = ws_frame_direct_ok(wsi);
}

/*
 * A chunk of a message.  Most messages arrive whole and are handed to the
 * hub in place; fragmented ones are reassembled up to max_frame_bytes.
 * Returns -1 to close the connection (the close reason is set).
 */
static int
receive(ws_server *srv, session *s, struct lws *wsi, const char *in, size_t len)
{
	bool last =
		lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0;
	size_t total = s->rx_len + len;

	s->last_heard = srv->now;
	s->ping_sent = 0;
	if (lws_frame_is_binary(wsi))
		return close_with(wsi, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE,
						  "binary frames are not supported");
	if (total > srv->cfg.max_frame_bytes)
		return close_with(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
						  "message too large");
	if (!s->client || s->close_code)
		return 0;
	if (last && s->rx_len == 0)
	{
		hub_receive(srv->hub, s->client, in, len);
		return 0;
	}
	{
		char *rx = realloc(s->rx, total ? total : 1);

		if (!rx)
			return close_with(wsi, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION,
							  "out of memory");
		s->rx = rx;
	}
	memcpy(s->rx + s->rx_len, in, len);
	s->rx_len = total;
	if (last)
	{
		hub_receive(srv->hub, s->client, s->rx, s->rx_len);
		free(s->rx);
		s->rx = NULL;
		s->rx_len = 0;
	}
	return 0;
}

static int
writeable(session *s, struct lws *wsi)
{
	outq *q;

	if (s->close_code)
		return 0;
	if (s->ping_due)
	{
		unsigned char ping[LWS_PRE + sizeof(PING_PAYLOAD) - 1];

		s->ping_due = false;
		memcpy(ping + LWS_PRE, PING_PAYLOAD, sizeof(PING_PAYLOAD) - 1);
		if (lws_write(wsi, ping + LWS_PRE, sizeof(PING_PAYLOAD) - 1,
					  LWS_WRITE_PING) < 0)
			return -1;
		/* the timeout runs from here: the peer cannot answer sooner */
		s->ping_sent = time(NULL);
	}
	if (!s->client)
		return 0;
	q = hub_client_queue(s->client);
	if (ws_frame_write(wsi, q, s->direct_ok) != 0)
		return -1;
	if (outq_count(q) > 0)
		lws_callback_on_writable(wsi);
	return 0;
}

static void shutdown_timeout(uv_timer_t *t);

/*
 * Once the last connection is gone (its close frame sent and acknowledged,
 * or timed out), finish the shutdown from the loop rather than from inside
 * an lws callback: done() destroys the lws context.
 */
static void
maybe_finish_shutdown(ws_server *srv)
{
	if (!srv->shutting_down || !srv->done || srv->live_sessions > 0)
		return;
	uv_timer_start(&srv->shutdown_timer, shutdown_timeout, 0, 0);
}

static void
closed(ws_server *srv, session *s)
{
	dlist_delete(&s->dirty_link);
	s->direct_ok = false;
	dlist_delete(&s->session_link);
	if (s->client)
	{
		hub_disconnect(srv->hub, s->client);
		s->client = NULL;
	}
	auth_identity_free(s->pending_identity);
	s->pending_identity = NULL;
	free(s->pending_dataset);
	s->pending_dataset = NULL;
	free(s->rx);
	s->rx = NULL;
}

static int
http_request(ws_server *srv, session *s, struct lws *wsi, const char *path)
{
	unsigned char headers[LWS_PRE + 512];
	unsigned char *start = headers + LWS_PRE, *p = start;
	unsigned char *end = headers + sizeof(headers) - 1;
	char body[512];
	unsigned status = HTTP_STATUS_OK;

	if (strcmp(path, "/healthz") == 0)
		srv->cfg.health(srv->cfg.health_arg, body, sizeof(body) - 1);
	else
	{
		status = HTTP_STATUS_NOT_FOUND;
		snprintf(body, sizeof(body), "{\"error\":\"not found\"}");
	}
	strcat(body, "\n");
	s->http_body = strdup(body);
	if (!s->http_body)
		return -1;
	if (lws_add_http_common_headers(wsi, status, "application/json",
									strlen(body), &p, end) ||
		lws_finalize_write_http_header(wsi, start, &p, end))
		return -1;
	lws_callback_on_writable(wsi);
	return 0;
}

static int
http_writeable(session *s, struct lws *wsi)
{
	unsigned char buf[LWS_PRE + 520];
	size_t len;

	if (!s->http_body)
		return 0;
	len = strlen(s->http_body);
	memcpy(buf + LWS_PRE, s->http_body, len);
	free(s->http_body);
	s->http_body = NULL;
	if (lws_write(wsi, buf + LWS_PRE, len, LWS_WRITE_HTTP_FINAL) < (int) len)
		return -1;
	return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static int
callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
		 void *in, size_t len)
{
	session *s = user;
	ws_server *srv;

	switch (reason)
	{
		case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
			return filter_connection(server_of(wsi), s, wsi);
		case LWS_CALLBACK_CONFIRM_EXTENSION_OKAY:
			return ws_frame_refuse_extension(in);
		case LWS_CALLBACK_ESTABLISHED:
			establish(server_of(wsi), s, wsi);
			return 0;
		case LWS_CALLBACK_RECEIVE:
			return receive(server_of(wsi), s, wsi, in, len);
		case LWS_CALLBACK_SERVER_WRITEABLE:
			return writeable(s, wsi);
		case LWS_CALLBACK_RECEIVE_PONG:
			s->last_heard = server_of(wsi)->now;
			s->ping_sent = 0;
			return 0;
		case LWS_CALLBACK_TIMER:
			return s->close_code ? close_now(s, wsi) : 0;
		case LWS_CALLBACK_CLOSED:
			closed(server_of(wsi), s);
			return 0;
		case LWS_CALLBACK_HTTP:
			srv = server_of(wsi);
			return http_request(srv, s, wsi, in ? (const char *) in : "");
		case LWS_CALLBACK_HTTP_WRITEABLE:
			return http_writeable(s, wsi);
		case LWS_CALLBACK_WSI_DESTROY:
			if (s && s->counted)
			{
				s->counted = false;
				srv = server_of(wsi);
				srv->live_sessions--;
				if (s->refused)
					srv->refused_sessions--;
				maybe_finish_shutdown(srv);
			}
			return 0;
		case LWS_CALLBACK_CLOSED_HTTP:
			if (s)
			{
				free(s->http_body);
				s->http_body = NULL;
			}
			return 0;
		default:
			return lws_callback_http_dummy(wsi, reason, user, in, len);
	}
}

static const struct lws_protocols protocols[] = {
	{"cellcms", callback, sizeof(session), 4096, 0, NULL, 0},
	{NULL, NULL, 0, 0, 0, NULL, 0},
};

static void
lws_log_to_ours(int level, const char *line)
{
	size_t len = strlen(line);

	while (len > 0 && line[len - 1] == '\n')
		len--;
	log_msg(level == LLL_ERR ? LOG_ERROR : LOG_WARN, "lws: %.*s", (int) len,
			line);
}

/*
 * Bind host:port once ourselves: lws reports a failed bind only in its log
 * and a context it cannot tear down cleanly on a foreign loop, so a port
 * that is taken must be found before lws is involved.
 */
static bool
can_listen(const char *host, int port)
{
	struct addrinfo hints, *res = NULL;
	char service[16];
	int fd = -1, one = 1, rc;
	bool ok = false;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	snprintf(service, sizeof(service), "%d", port);
	rc = getaddrinfo(host, service, &hints, &res);
	if (rc != 0)
	{
		log_msg(LOG_ERROR, "cannot listen on %s:%d: %s", host, port,
				gai_strerror(rc));
		return false;
	}
	fd = socket(res->ai_family, res->ai_socktype, res->ai_protocol);
	if (fd < 0 ||
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
		bind(fd, res->ai_addr, res->ai_addrlen) != 0)
		log_msg(LOG_ERROR, "cannot listen on %s:%d: %s", host, port,
				strerror(errno));
	else
		ok = true;
	if (fd >= 0)
		close(fd);
	freeaddrinfo(res);
	return ok;
}

/*
 * End of a loop iteration: write the queues that filled during it, every
 * event dispatched in the iteration batched into one send per session.
 * This skips lws's POLLOUT round trip (two epoll_ctl calls per message) in
 * the common case of a socket with room.  A session whose last write lws
 * had to buffer, or whose queue is longer than one batch, is left to the
 * WRITEABLE callback, so what lws buffers stays bounded by one batch and a
 * slow client's backlog stays in its bounded queue.
 */
static void
flush_dirty(uv_check_t *check)
{
	ws_server *srv = check->data;
	bool killed = false;
	dlist_node *n;

	while ((n = dlist_head_node(&srv->dirty)) != NULL)
	{
		session *s = dlist_container(session, dirty_link, n);
		outq *q;

		dlist_delete(n);
		if (s->close_code || !s->client)
			continue;
		q = hub_client_queue(s->client);
		if (ws_frame_write_direct(s->wsi, q) != 0)
		{
			lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
			killed = true;
			continue;
		}
		if (outq_count(q) > 0)
			lws_callback_on_writable(s->wsi);
	}
	if (killed)
		lws_cancel_service(srv->context);
}

/*
 * Once a second: ping every session silent for ping_interval (once per
 * interval), and drop one that has not answered a ping within ping_timeout
 * of its writing, or whose ping could not even be written in that time (a
 * peer that stopped reading).  Nobody is dropped who was not pinged and
 * failed to answer: when the tick comes late, the relay itself stalled
 * (SIGSTOP, swapping, a slow disk), and the answers may be sitting unread
 * in the sockets, since libuv runs timers before it polls; every pending
 * ping then gets its full timeout again from now.  A dropped session is
 * closed by lws like any other, so the hub broadcasts its presence leaves.
 */
static void
keepalive_sweep(uv_timer_t *t)
{
	ws_server *srv = t->data;
	time_t now = time(NULL);
	time_t interval = srv->cfg.ping_interval;
	time_t timeout = srv->cfg.ping_timeout;
	bool stalled = now - srv->last_sweep > KEEPALIVE_STALL_SEC;
	bool killed = false;
	dlist_iter it;

	srv->now = now;
	srv->last_sweep = now;
	dlist_foreach(it, &srv->sessions)
	{
		session *s = dlist_container(session, session_link, it.cur);
		bool pending = s->ping_sent || s->ping_due;

		if (pending && stalled)
		{
			if (s->ping_sent)
				s->ping_sent = now;
			s->last_ping = now;
		}
		else if (pending &&
				 now - (s->ping_sent ? s->ping_sent : s->last_ping) >= timeout)
		{
			lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
			killed = true;
		}
		else if (!pending && now - s->last_heard >= interval &&
				 now - s->last_ping >= interval)
		{
			s->last_ping = now;
			s->ping_due = true;
			lws_callback_on_writable(s->wsi);
		}
	}
	/* lws re-arms its timers when it next services: make that now. */
	if (killed)
		lws_cancel_service(srv->context);
}

ws_server *
ws_server_start(uv_loop_t *loop, const ws_server_config *cfg, hub *h,
				const auth_config *auth)
{
	struct lws_context_creation_info info;
	void *foreign_loops[1] = {loop};
	ws_server *srv;

	if (!can_listen(cfg->host, cfg->port))
		return NULL;
	srv = calloc(1, sizeof(*srv));
	if (!srv)
		return NULL;
	srv->cfg = *cfg;
	srv->hub = h;
	srv->auth = auth;
	srv->now = srv->last_sweep = time(NULL);
	dlist_init(&srv->dirty);
	dlist_init(&srv->sessions);

	lws_set_log_level(LLL_ERR | LLL_WARN, lws_log_to_ours);
	memset(&info, 0, sizeof(info));
	info.port = cfg->port;
	info.iface = cfg->host;
	info.protocols = protocols;
	/* No info.extensions: ws_frame writes frames without any. */
	info.options =
		LWS_SERVER_OPTION_LIBUV |
		LWS_SERVER_OPTION_HTTP_HEADERS_SECURITY_BEST_PRACTICES_ENFORCE;
	info.foreign_loops = foreign_loops;
	info.user = srv;
	/* lws clears it once the context is completely destroyed. */
	info.pcontext = &srv->context;
	/*
	 * fd_limit_per_thread is left at the process's file limit: below it,
	 * lws 4.1 finds the connection of a ready socket by a linear scan.
	 * --max-connections is enforced by counting sessions instead.
	 */
	/* The token travels in the URL: room for it plus the other headers. */
	info.max_http_header_data =
		(unsigned short) (auth->max_token_len + 4096 > 65535
							  ? 65535
							  : auth->max_token_len + 4096);
	/*
	 * lws's own keep-alive keeps a timer per connection in one sorted list
	 * (an O(n) insert for every connection and every pong); the relay's
	 * sweep below does the same job in O(n) per second.
	 */
	info.retry_and_idle_policy = &srv->no_lws_keepalive;
	info.timeout_secs = 10;
	srv->context = lws_create_context(&info);
	/*
	 * lws creates the context even when the port cannot be bound (lost a
	 * race since can_listen()); such a context cannot be destroyed cleanly
	 * on a foreign loop, and the process is about to exit anyway.
	 */
	if (!srv->context || !lws_get_vhost_by_name(srv->context, "default"))
	{
		log_msg(LOG_ERROR, "cannot listen on %s:%d", cfg->host, cfg->port);
		exit(EXIT_FAILURE);
	}
	uv_timer_init(loop, &srv->shutdown_timer);
	srv->shutdown_timer.data = srv;
	uv_timer_init(loop, &srv->keepalive_timer);
	srv->keepalive_timer.data = srv;
	uv_timer_start(&srv->keepalive_timer, keepalive_sweep, 1000, 1000);
	uv_check_init(loop, &srv->flush_check);
	srv->flush_check.data = srv;
	uv_check_start(&srv->flush_check, flush_dirty);
	return srv;
}

static void
shutdown_timeout(uv_timer_t *t)
{
	ws_server *srv = t->data;
	void (*done)(void *) = srv->done;

	if (!done)
		return;
	if (hub_client_count(srv->hub) > 0)
		log_msg(LOG_WARN, "%zu clients did not close in time",
				hub_client_count(srv->hub));
	srv->done = NULL;
	done(srv->done_arg);
}

void
ws_server_shutdown(ws_server *srv, void (*done)(void *arg), void *arg)
{
	srv->shutting_down = true;
	srv->done = done;
	srv->done_arg = arg;
	hub_close_all(srv->hub, LWS_CLOSE_STATUS_GOINGAWAY, "server shutting down");
	uv_timer_start(&srv->shutdown_timer, shutdown_timeout, SHUTDOWN_GRACE_MS,
				   0);
	maybe_finish_shutdown(srv);
}

void
ws_server_stop(ws_server *srv)
{
	lws_context_destroy(srv->context);
	uv_timer_stop(&srv->shutdown_timer);
	uv_close((uv_handle_t *) &srv->shutdown_timer, NULL);
	uv_timer_stop(&srv->keepalive_timer);
	uv_close((uv_handle_t *) &srv->keepalive_timer, NULL);
	uv_check_stop(&srv->flush_check);
	uv_close((uv_handle_t *) &srv->flush_check, NULL);
}

void
ws_server_free(ws_server *srv)
{
	if (!srv)
		return;
	/* Its handles are closed now: this finishes what the first call began. */
	if (srv->context)
		lws_context_destroy(srv->context);
	free(srv);
}
