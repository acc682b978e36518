/*
 * ws_frame: the relay's own WebSocket framing, so that several queued
 * messages leave in one send.
 *
 * lws_write() frames one message per call, and lws wants one call per
 * WRITEABLE callback.  When a client's queue holds several messages (a
 * burst of changes fanned out to it), ws_frame frames them itself into one
 * buffer and gives lws the bytes as a single raw write; ws_server also
 * writes that way from the end of each loop iteration instead of waiting
 * for a WRITEABLE callback (see flush_dirty there).  That is what keeps
 * fan-out at one system call per connection and iteration, not one per
 * message plus two epoll_ctl calls.
 *
 * Writing bytes lws did not frame is only correct under these assumptions;
 * each is checked where it can break:
 *
 * 1. No extension is active on the connection.  With permessage-deflate
 *    (RFC 7692) a payload must be compressed and flagged RSV1, which only
 *    lws's own write path does.  ws_server gives its vhost no extensions;
 *    in case that ever changes, ws_frame_refuse_extension() declines every
 *    extension lws offers to activate (CONFIRM_EXTENSION_OKAY), so none can
 *    be active.
 * 2. A server's frames are never masked (RFC 6455 §5.1), so a frame header
 *    depends only on FIN, the opcode and the payload length, and is at most
 *    WS_FRAME_MAX_HEADER bytes.  ws_frame_header() is that encoding.
 * 3. The connection is a WebSocket on its own TCP connection, not a stream
 *    of an HTTP/2 connection (RFC 8441), whose bytes need h2 framing and
 *    flow control.  Clients upgrade from HTTP/1.1, but lws 4.1 built with
 *    h2 (Debian's is) would also take an h2c upgrade and carry WebSockets
 *    on its streams; ws_frame_direct_ok() tells them apart, and ws_server
 *    writes such a connection through lws_write() alone.
 * 4. lws's behaviour, as read in and measured against libwebsockets 4.1:
 *    LWS_WRITE_RAW (= LWS_WRITE_HTTP) on a WebSocket goes straight to
 *    lws_issue_raw(), which sends what the socket takes and keeps the rest
 *    in the same output list (buflist_out) as lws's own frames, so raw
 *    bytes never interleave with a ping or close lws frames; and a write
 *    from outside any callback is fine there, since lws_issue_raw() itself
 *    asks for POLLOUT to drain what it kept.  ws_frame.c refuses to
 *    compile against another lws version (a static assertion): a silent
 *    fallback would be an untested path.  Re-read those functions in the
 *    new version, then widen the check.
 *
 * Single-threaded: one scratch buffer serves every connection.
 */
#ifndef RELAY_WS_FRAME_H
#define RELAY_WS_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "outq.h"

struct lws;

/* RFC 6455 §5.2 opcodes. */
typedef enum ws_opcode
{
	WS_OPCODE_CONTINUATION = 0x0,
	WS_OPCODE_TEXT = 0x1,
	WS_OPCODE_BINARY = 0x2,
	WS_OPCODE_CLOSE = 0x8,
	WS_OPCODE_PING = 0x9,
	WS_OPCODE_PONG = 0xa,
} ws_opcode;

/*
 * The longest header of an unmasked frame: 2 bytes, then a 64-bit
 * extended payload length.  A client's frames add a 4-byte masking key;
 * lws's LWS_PRE headroom covers both (ws_frame.c static-asserts it).
 */
#define WS_FRAME_MAX_HEADER 10

/* Payloads of control frames (close, ping, pong) fit 7 bits: §5.5. */
#define WS_FRAME_MAX_CONTROL_PAYLOAD 125

/*
 * Writes the header of an unmasked frame with payload length len into
 * out[0..WS_FRAME_MAX_HEADER) and returns its length: 2 (len <= 125),
 * 4 (len <= 65535) or 10.  Returns 0 and writes nothing for a frame
 * RFC 6455 forbids: a reserved opcode, a control frame that is fragmented
 * or longer than 125 bytes, or len >= 2^63.
 */
size_t ws_frame_header(unsigned char *out, ws_opcode opcode, bool fin,
					   uint64_t len);

/*
 * For LWS_CALLBACK_CONFIRM_EXTENSION_OKAY: logs the refusal once and
 * returns non-zero, which tells lws not to activate the extension `name`
 * (assumption 1).
 */
int ws_frame_refuse_extension(const char *name);

/*
 * Whether pre-built frames may be written on this established connection,
 * from a WRITEABLE callback or outside any (assumption 3).
 */
bool ws_frame_direct_ok(struct lws *wsi);

/*
 * Writes the head of q from a WRITEABLE callback and pops what was
 * written.  direct: ws_frame_direct_ok() said yes, so several messages may
 * leave as one raw write; otherwise one message goes through lws_write().
 * Returns -1 when the connection is dead, else 0; a short write is kept by
 * lws, which then waits for POLLOUT itself.
 */
int ws_frame_write(struct lws *wsi, outq *q, bool direct);

/*
 * The same from outside any lws callback, on a connection where
 * ws_frame_direct_ok() said yes.  Writes nothing while lws still holds
 * bytes of an earlier write, so that lws never buffers more than one batch
 * per connection; a slow client's backlog stays in its bounded queue.
 */
int ws_frame_write_direct(struct lws *wsi, outq *q);

#endif
