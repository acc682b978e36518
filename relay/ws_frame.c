/*
 * ws_frame: see ws_frame.h, which states the assumptions checked here.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <libwebsockets.h>

#include "log.h"
#include "outq.h"
#include "ws_frame.h"

/*
 * Assumption 4 of ws_frame.h: what follows was checked against lws 4.1.
 * For another version, re-read lws_write()'s LWS_WRITE_RAW path and what a
 * write outside a WRITEABLE callback does there, then widen this test.  (A
 * static assertion rather than #error: cppcheck, which reads no system
 * header, does not know the version.)
 */
_Static_assert(LWS_LIBRARY_VERSION_MAJOR == 4 && LWS_LIBRARY_VERSION_MINOR == 1,
			   "ws_frame.c is verified on libwebsockets 4.1 only: see "
			   "assumption 4 in ws_frame.h");

/*
 * lws_write() puts its frame header (at most WS_FRAME_MAX_HEADER bytes for
 * a server, plus a masking key for a client) in the LWS_PRE bytes before the
 * buffer it is given; a message that goes out alone is written in place, in
 * the headroom outq keeps before every payload.
 */
_Static_assert(WS_FRAME_MAX_HEADER <= LWS_PRE,
			   "LWS_PRE must fit a server frame header");
_Static_assert(OUTMSG_HEADROOM >= LWS_PRE,
			   "outmsg headroom must fit lws's frame header");

/*
 * One batch: at most BATCH_MESSAGES messages (so that one busy client does
 * not hold the loop for long) in at most BATCH_BYTES, headers included.  A
 * message too big for a batch goes out alone.
 */
#define BATCH_MESSAGES 32
#define BATCH_BYTES	   65536

/*
 * LWS_WRITE_RAW needs no headroom, but lws documents LWS_PRE before every
 * buffer it is given, and this is what was measured.
 */
static unsigned char batch[LWS_PRE + BATCH_BYTES];

size_t
ws_frame_header(unsigned char *out, ws_opcode opcode, bool fin, uint64_t len)
{
	switch (opcode)
	{
		case WS_OPCODE_CONTINUATION:
		case WS_OPCODE_TEXT:
		case WS_OPCODE_BINARY:
			break;
		case WS_OPCODE_CLOSE:
		case WS_OPCODE_PING:
		case WS_OPCODE_PONG:
			if (!fin || len > WS_FRAME_MAX_CONTROL_PAYLOAD)
				return 0;
			break;
		default:
			return 0;
	}
	/* The most significant bit of the 64-bit length must be 0. */
	if (len >> 63)
		return 0;

	out[0] = (unsigned char) ((fin ? 0x80 : 0) | opcode);
	if (len <= 125)
	{
		out[1] = (unsigned char) len;
		return 2;
	}
	if (len <= 0xffff)
	{
		out[1] = 126;
		out[2] = (unsigned char) (len >> 8);
		out[3] = (unsigned char) len;
		return 4;
	}
	out[1] = 127;
	for (int i = 0; i < 8; i++)
		out[2 + i] = (unsigned char) (len >> (56 - 8 * i));
	return WS_FRAME_MAX_HEADER;
}

int
ws_frame_refuse_extension(const char *name)
{
	static bool logged;

	if (!logged)
		log_msg(LOG_WARN,
				"refusing WebSocket extension %s: the relay's batched "
				"writes build frames without extensions",
				name ? name : "?");
	logged = true;
	return 1;
}

bool
ws_frame_direct_ok(struct lws *wsi)
{
	return lws_get_network_wsi(wsi) == wsi;
}

int
ws_frame_write(struct lws *wsi, outq *q, bool direct)
{
	outmsg *m = outq_peek(q);
	unsigned char *out = batch + LWS_PRE;
	size_t used = 0;
	int n = 0;

	if (!m)
		return 0;
	if (!direct || outq_count(q) == 1 ||
		outmsg_len(m) + WS_FRAME_MAX_HEADER > BATCH_BYTES)
	{
		size_t len = outmsg_len(m);

		if (lws_write(wsi, outmsg_payload(m), len, LWS_WRITE_TEXT) < (int) len)
			return -1;
		outmsg_unref(outq_pop(q));
		return 0;
	}
	while (n < BATCH_MESSAGES && (m = outq_peek(q)) != NULL &&
		   used + outmsg_len(m) + WS_FRAME_MAX_HEADER <= BATCH_BYTES)
	{
		used +=
			ws_frame_header(out + used, WS_OPCODE_TEXT, true, outmsg_len(m));
		memcpy(out + used, outmsg_payload(m), outmsg_len(m));
		used += outmsg_len(m);
		outmsg_unref(outq_pop(q));
		n++;
	}
	/* What the socket does not take, lws keeps and sends (assumption 4). */
	return lws_write(wsi, out, used, LWS_WRITE_RAW) < 0 ? -1 : 0;
}

int
ws_frame_write_direct(struct lws *wsi, outq *q)
{
	if (lws_partial_buffered(wsi))
		return 0;
	return ws_frame_write(wsi, q, true);
}
