/*
 * ws_server: the only part of the relay that talks to libwebsockets.
 *
 * It serves `GET /ws?token=<JWT>&dataset=<name>` and `GET /healthz` on the
 * libuv loop it is given.  A WebSocket handshake always completes; a bad
 * token is then closed with 4001, a dataset the token may not open with
 * 4003.  Authenticated connections become hub clients: complete text
 * messages go to hub_receive(), the hub's queues are drained from WRITEABLE
 * callbacks and at the end of each loop iteration (several messages to a
 * send, see ws_frame.h), and a closed connection is hub_disconnect()ed.
 */
#ifndef RELAY_WS_SERVER_H
#define RELAY_WS_SERVER_H

#include <stddef.h>
#include <uv.h>

#include "auth.h"
#include "hub.h"

typedef struct ws_server ws_server;

typedef struct ws_server_config
{
	const char *host;
	int port;
	size_t max_frame_bytes;	  /* a bigger message: close 1009 */
	unsigned max_connections; /* WebSocket + HTTP connections */
	/*
	 * Connections refused after the handshake (bad token, 1013, ...) that
	 * wait for the peer's close acknowledgement.  They do not count against
	 * max_connections; past this many, a refused one is dropped at once.
	 */
	unsigned max_refused_connections;
	unsigned ping_interval; /* s of silence before a ping */
	unsigned ping_timeout;	/* s more without a pong: dropped */
	const char *default_dataset;
	/*
	 * Writes a JSON object describing the relay's health into buf (at most
	 * len bytes, NUL-terminated); /healthz serves it with status 200.
	 */
	void (*health)(void *arg, char *buf, size_t len);
	void *health_arg;
} ws_server_config;

/* The hub_sink that ws_server's sessions implement. */
extern const hub_sink ws_server_sink;

/*
 * Listens on host:port on loop.  cfg is copied (its strings must outlive
 * the server); hub and auth are borrowed for the server's lifetime.  NULL
 * with a logged reason when the port cannot be bound.
 */
ws_server *ws_server_start(uv_loop_t *loop, const ws_server_config *cfg, hub *h,
						   const auth_config *auth);

/*
 * Stop accepting, close every client with 1001, and call done(arg) once all
 * are closed or after a grace period, whichever comes first.
 */
void ws_server_shutdown(ws_server *s, void (*done)(void *arg), void *arg);

/*
 * Start destroying the lws context: its handles close as the loop keeps
 * running.  Call ws_server_free() once the loop has ended.
 */
void ws_server_stop(ws_server *s);

/* Finish destroying the context and free s (after the loop ended).  NULL is
 * a no-op. */
void ws_server_free(ws_server *s);

#endif
