/*
 * ws_server: libwebsockets glue.  See ws_server.h.
 *
 * One protocol serves both HTTP (/healthz) and WebSocket (/ws) on the
 * relay's libuv loop.  A session is lws's per-connection user data: it
 * holds the hub client once the connection is authenticated, the partial
 * message being reassembled, and a pending close.
 *
 * Closes initiated by the hub (slow client, expired token, shutdown) are
 * sent from the next WRITEABLE callback, the only place lws lets us write;
 * a timeout kills the connection if that callback never comes because the
 * peer stopped reading.
 */
#include <errno.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "log.h"
#include "ws_server.h"

_Static_assert(OUTMSG_HEADROOM >= LWS_PRE,
			   "outmsg headroom must fit the WebSocket frame header");

/* Messages written per WRITEABLE callback before yielding to others. */
#define WRITES_PER_CALLBACK 32
/* Seconds shutdown waits for clients to acknowledge 1001. */
#define SHUTDOWN_GRACE_MS 3000
#define MAX_DATASET_LEN	  128

struct ws_server
{
	ws_server_config cfg;
	struct lws_context *context;
	hub *hub;
	const auth_config *auth;
	lws_retry_bo_t no_lws_keepalive;
	bool shutting_down;
	size_t live_sessions; /* WebSocket connections not yet destroyed */
	time_t last_full_warning;
	void (*done)(void *arg);
	void *done_arg;
	uv_timer_t shutdown_timer;
	uv_timer_t keepalive_timer;
	uv_check_t flush_check;
	struct session *dirty;	  /* sessions with messages to write directly */
	struct session *sessions; /* established WebSocket sessions */
	time_t now;				  /* seconds, refreshed by the keepalive tick */
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
	bool counted; /* in live_sessions */
	/* Keep-alive: the list of established sessions, swept every second. */
	struct session *prev, *next;
	time_t last_heard; /* last frame or pong from the peer */
	time_t last_ping;
	bool ping_due;
	/*
	 * Writes without the POLLOUT round trip: once established, a session
	 * whose queue fills is put on the server's dirty list and written at
	 * the end of the loop iteration (see flush_dirty).
	 */
	bool direct_ok;
	bool is_dirty;
	struct session *dirty_prev, *dirty_next;
} session;

static ws_server *
server_of(struct lws *wsi)
{
	return lws_context_user(lws_get_context(wsi));
}

static void
session_request_close(session *s, int code, const char *reason)
{
	if (s->close_code)
		return;
	s->close_code = code;
	snprintf(s->close_reason, sizeof(s->close_reason), "%s", reason);
	lws_set_timer_usecs(s->wsi, 1);
	/*
	 * Called from outside lws (a libuv callback of the hub's): wake lws so
	 * that it re-arms its timer with the new deadline.
	 */
	lws_cancel_service(lws_get_context(s->wsi));
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
	lws_close_reason(wsi, (enum lws_close_status) s->close_code,
					 (unsigned char *) s->close_reason,
					 strlen(s->close_reason));
	return -1;
}

static void
dirty_remove(ws_server *srv, session *s)
{
	if (!s->is_dirty)
		return;
	if (s->dirty_prev)
		s->dirty_prev->dirty_next = s->dirty_next;
	else
		srv->dirty = s->dirty_next;
	if (s->dirty_next)
		s->dirty_next->dirty_prev = s->dirty_prev;
	s->dirty_prev = s->dirty_next = NULL;
	s->is_dirty = false;
}

static void
sink_wake(void *transport)
{
	session *s = transport;
	ws_server *srv;

	if (!s->direct_ok)
	{
		lws_callback_on_writable(s->wsi);
		return;
	}
	if (s->is_dirty)
		return;
	srv = server_of(s->wsi);
	s->is_dirty = true;
	s->dirty_prev = NULL;
	s->dirty_next = srv->dirty;
	if (srv->dirty)
		srv->dirty->dirty_prev = s;
	srv->dirty = s;
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
	if (srv->live_sessions >= srv->cfg.max_connections)
	{
		time_t now = time(NULL);

		if (now != srv->last_full_warning)
			log_msg(LOG_WARN,
					"refusing connections: --max-connections (%u) reached",
					srv->cfg.max_connections);
		srv->last_full_warning = now;
		s->close_code = 1013 /* try again later */;
		snprintf(s->close_reason, sizeof(s->close_reason),
				 "too many connections");
		return 0;
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
	{
		s->close_code = HUB_CLOSE_FORBIDDEN;
		snprintf(s->close_reason, sizeof(s->close_reason),
				 "invalid dataset name");
	}
	else if (!url_arg(wsi, "token", scratch, scratch_len, token, token_cap))
	{
		s->close_code = HUB_CLOSE_UNAUTHORIZED;
		snprintf(s->close_reason, sizeof(s->close_reason),
				 "missing or oversized token");
	}
	else
	{
		switch (auth_verify(srv->auth, token, time(NULL), &s->pending_identity,
							&reason))
		{
			case AUTH_OK:
				if (!auth_dataset_allowed(s->pending_identity, dataset))
				{
					s->close_code = HUB_CLOSE_FORBIDDEN;
					snprintf(s->close_reason, sizeof(s->close_reason),
							 "token does not grant this dataset");
				}
				break;
			case AUTH_INVALID:
				s->close_code = HUB_CLOSE_UNAUTHORIZED;
				snprintf(s->close_reason, sizeof(s->close_reason), "%s",
						 reason);
				break;
			case AUTH_ERROR:
				s->close_code = 1011;
				snprintf(s->close_reason, sizeof(s->close_reason),
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
	s->last_heard = s->last_ping = srv->now;
	s->next = srv->sessions;
	if (srv->sessions)
		srv->sessions->prev = s;
	srv->sessions = s;
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
		session_request_close(s, 1011, "out of memory");
	s->direct_ok = true;
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
	if (lws_frame_is_binary(wsi))
	{
		lws_close_reason(wsi, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE,
						 (unsigned char *) "binary frames are not supported",
						 31);
		return -1;
	}
	if (total > srv->cfg.max_frame_bytes)
	{
		lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
						 (unsigned char *) "message too large", 17);
		return -1;
	}
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
		{
			lws_close_reason(wsi, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION,
							 (unsigned char *) "out of memory", 13);
			return -1;
		}
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

/*
 * Frames for several queued messages go out in one send: each message
 * gets its WebSocket header (a server's frames are unmasked, so the header
 * depends only on the length) and the lot is written raw.  One system call
 * per batch instead of per message is what keeps fan-out cheap when a
 * client's queue holds more than one message.  The relay is
 * single-threaded, so one scratch buffer serves every connection.
 */
#define BATCH_BYTES 65536
static unsigned char batch[LWS_PRE + BATCH_BYTES];

static size_t
frame_header(unsigned char *h, size_t len)
{
	h[0] = 0x81; /* FIN, text */
	if (len < 126)
	{
		h[1] = (unsigned char) len;
		return 2;
	}
	if (len < 65536)
	{
		h[1] = 126;
		h[2] = (unsigned char) (len >> 8);
		h[3] = (unsigned char) len;
		return 4;
	}
	h[1] = 127;
	for (int i = 0; i < 8; i++)
		h[2 + i] = (unsigned char) ((uint64_t) len >> (56 - 8 * i));
	return 10;
}

/* Writes up to WRITES_PER_CALLBACK queued messages; -1 on a dead socket. */
static int
write_queue(struct lws *wsi, outq *q)
{
	outmsg *m = outq_peek(q);
	unsigned char *out = batch + LWS_PRE;
	size_t used = 0;
	int n = 0;

	if (!m)
		return 0;
	if (outq_count(q) == 1 || outmsg_len(m) + 10 > BATCH_BYTES)
	{
		size_t len = outmsg_len(m);

		if (lws_write(wsi, outmsg_payload(m), len, LWS_WRITE_TEXT) < (int) len)
			return -1;
		outmsg_unref(outq_pop(q));
		return 0;
	}
	while (n < WRITES_PER_CALLBACK && (m = outq_peek(q)) != NULL &&
		   used + outmsg_len(m) + 10 <= BATCH_BYTES)
	{
		used += frame_header(out + used, outmsg_len(m));
		memcpy(out + used, outmsg_payload(m), outmsg_len(m));
		used += outmsg_len(m);
		outmsg_unref(outq_pop(q));
		n++;
	}
	/* A short write is buffered by lws, which then waits for POLLOUT. */
	return lws_write(wsi, out, used, LWS_WRITE_RAW) < 0 ? -1 : 0;
}

static int
writeable(session *s, struct lws *wsi)
{
	outq *q;

	if (s->close_code)
		return 0;
	if (s->ping_due)
	{
		s->ping_due = false;
		/*
		 * A payload, because lws 4.1 does not report the pong to an empty
		 * ping (LWS_CALLBACK_RECEIVE_PONG never comes).
		 */
		memcpy(batch + LWS_PRE, "cellcms", 7);
		if (lws_write(wsi, batch + LWS_PRE, 7, LWS_WRITE_PING) < 0)
			return -1;
	}
	if (!s->client)
		return 0;
	q = hub_client_queue(s->client);
	if (write_queue(wsi, q) != 0)
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
	dirty_remove(srv, s);
	s->direct_ok = false;
	if (s->counted)
	{
		if (s->prev)
			s->prev->next = s->next;
		else
			srv->sessions = s->next;
		if (s->next)
			s->next->prev = s->prev;
		s->prev = s->next = NULL;
	}
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
		case LWS_CALLBACK_ESTABLISHED:
			establish(server_of(wsi), s, wsi);
			return 0;
		case LWS_CALLBACK_RECEIVE:
			return receive(server_of(wsi), s, wsi, in, len);
		case LWS_CALLBACK_SERVER_WRITEABLE:
			return writeable(s, wsi);
		case LWS_CALLBACK_RECEIVE_PONG:
			s->last_heard = server_of(wsi)->now;
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

	while (srv->dirty)
	{
		session *s = srv->dirty;
		outq *q;

		dirty_remove(srv, s);
		if (s->close_code || !s->client)
			continue;
		q = hub_client_queue(s->client);
		if (!lws_partial_buffered(s->wsi) && write_queue(s->wsi, q) != 0)
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
 * interval), and drop those silent for ping_interval + ping_timeout.  A
 * dropped session is closed by lws like any other, so the hub broadcasts
 * its presence leaves.
 */
static void
keepalive_sweep(uv_timer_t *t)
{
	ws_server *srv = t->data;
	time_t now = time(NULL);
	time_t interval = srv->cfg.ping_interval;
	time_t timeout = srv->cfg.ping_interval + srv->cfg.ping_timeout;
	bool killed = false;

	srv->now = now;
	for (session *s = srv->sessions; s; s = s->next)
	{
		time_t silent = now - s->last_heard;

		if (silent >= timeout)
		{
			lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
			killed = true;
		}
		else if (silent >= interval && now - s->last_ping >= interval)
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
	srv->now = time(NULL);

	lws_set_log_level(LLL_ERR | LLL_WARN, lws_log_to_ours);
	memset(&info, 0, sizeof(info));
	info.port = cfg->port;
	info.iface = cfg->host;
	info.protocols = protocols;
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
		exit(1);
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
