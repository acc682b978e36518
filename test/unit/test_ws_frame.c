/*
 * Unit tests of ws_frame_header(): the header bytes of RFC 6455 §5.2 for
 * every length encoding and its boundaries, the examples of §5.7, and the
 * frames §5.2 and §5.5 forbid.  The lws-facing half of ws_frame is covered
 * by the integration tests, which drive real connections.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "unit.h"
#include "ws_frame.h"

/* Room after the longest header, to catch a write past it. */
#define CANARY 0xa5

/*
 * Encodes and compares with want[0..want_len); want_len 0 means "refused"
 * (returns 0 and writes nothing).
 */
static void
check_header(ws_opcode opcode, bool fin, uint64_t len,
			 const unsigned char *want, size_t want_len)
{
	unsigned char out[WS_FRAME_MAX_HEADER + 4];
	size_t got;

	memset(out, CANARY, sizeof(out));
	got = ws_frame_header(out, opcode, fin, len);
	CHECK_MSG(got == want_len,
			  "opcode %d fin %d len %llu: length %zu, want %zu", (int) opcode,
			  (int) fin, (unsigned long long) len, got, want_len);
	if (got == want_len && want_len > 0)
		CHECK_MSG(memcmp(out, want, want_len) == 0,
				  "opcode %d fin %d len %llu: wrong bytes", (int) opcode,
				  (int) fin, (unsigned long long) len);
	for (size_t i = want_len; i < sizeof(out); i++)
		CHECK_MSG(out[i] == CANARY, "opcode %d len %llu: byte %zu written",
				  (int) opcode, (unsigned long long) len, i);
}

#define BYTES(...) ((const unsigned char[]){__VA_ARGS__})
#define WANT(...)  BYTES(__VA_ARGS__), sizeof(BYTES(__VA_ARGS__))
#define REFUSED	   NULL, 0

/* The three length encodings of §5.2 and both sides of each boundary. */
static void
test_lengths(void)
{
	check_header(WS_OPCODE_TEXT, true, 0, WANT(0x81, 0x00));
	check_header(WS_OPCODE_TEXT, true, 1, WANT(0x81, 0x01));
	check_header(WS_OPCODE_TEXT, true, 125, WANT(0x81, 0x7d));
	/* 126..65535: 126, then 16 bits in network byte order */
	check_header(WS_OPCODE_TEXT, true, 126, WANT(0x81, 0x7e, 0x00, 0x7e));
	check_header(WS_OPCODE_TEXT, true, 256, WANT(0x81, 0x7e, 0x01, 0x00));
	check_header(WS_OPCODE_TEXT, true, 65535, WANT(0x81, 0x7e, 0xff, 0xff));
	/* 65536 and more: 127, then 64 bits in network byte order */
	check_header(
		WS_OPCODE_TEXT, true, 65536,
		WANT(0x81, 0x7f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00));
	check_header(
		WS_OPCODE_TEXT, true, UINT64_C(0xffffffff),
		WANT(0x81, 0x7f, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff));
	check_header(
		WS_OPCODE_TEXT, true, UINT64_C(1) << 32,
		WANT(0x81, 0x7f, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00));
	check_header(
		WS_OPCODE_TEXT, true, UINT64_C(0x0102030405060708),
		WANT(0x81, 0x7f, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08));
	/* the largest length: the most significant bit must stay 0 */
	check_header(
		WS_OPCODE_BINARY, true, (UINT64_C(1) << 63) - 1,
		WANT(0x82, 0x7f, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff));
	check_header(WS_OPCODE_BINARY, true, UINT64_C(1) << 63, REFUSED);
	check_header(WS_OPCODE_TEXT, true, UINT64_MAX, REFUSED);

	/* the header length alone, as the batch writer counts it */
	{
		unsigned char out[WS_FRAME_MAX_HEADER];

		CHECK_INT(ws_frame_header(out, WS_OPCODE_TEXT, true, 125), 2);
		CHECK_INT(ws_frame_header(out, WS_OPCODE_TEXT, true, 126), 4);
		CHECK_INT(ws_frame_header(out, WS_OPCODE_TEXT, true, 65535), 4);
		CHECK_INT(ws_frame_header(out, WS_OPCODE_TEXT, true, 65536), 10);
		CHECK_INT(WS_FRAME_MAX_HEADER, 10);
	}
}

/* The unmasked examples of §5.7, and the opcodes of §5.2. */
static void
test_rfc_examples(void)
{
	/* "A single-frame unmasked text message": 0x81 0x05 "Hello" */
	check_header(WS_OPCODE_TEXT, true, 5, WANT(0x81, 0x05));
	/* "A fragmented unmasked text message": 0x01 0x03 "Hel", 0x80 0x02 "lo" */
	check_header(WS_OPCODE_TEXT, false, 3, WANT(0x01, 0x03));
	check_header(WS_OPCODE_CONTINUATION, true, 2, WANT(0x80, 0x02));
	/* "Unmasked Ping request": 0x89 0x05 "Hello"; its pong: 0x8a 0x05 */
	check_header(WS_OPCODE_PING, true, 5, WANT(0x89, 0x05));
	check_header(WS_OPCODE_PONG, true, 5, WANT(0x8a, 0x05));
	/* "256 bytes binary message in a single unmasked frame" */
	check_header(WS_OPCODE_BINARY, true, 256, WANT(0x82, 0x7e, 0x01, 0x00));
	/* "64KiB binary message in a single unmasked frame" */
	check_header(
		WS_OPCODE_BINARY, true, 65536,
		WANT(0x82, 0x7f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00));
	/* a close with a status code (2 bytes) and with a reason */
	check_header(WS_OPCODE_CLOSE, true, 2, WANT(0x88, 0x02));
	check_header(WS_OPCODE_CLOSE, true, 0, WANT(0x88, 0x00));
	/* an unfinished binary frame, then its continuation */
	check_header(WS_OPCODE_BINARY, false, 126, WANT(0x02, 0x7e, 0x00, 0x7e));
	check_header(WS_OPCODE_CONTINUATION, false, 0, WANT(0x00, 0x00));
}

/* Control frames: at most 125 bytes and never fragmented (§5.5). */
static void
test_control_frames(void)
{
	check_header(WS_OPCODE_PING, true, WS_FRAME_MAX_CONTROL_PAYLOAD,
				 WANT(0x89, 0x7d));
	check_header(WS_OPCODE_CLOSE, true, 125, WANT(0x88, 0x7d));
	check_header(WS_OPCODE_PONG, true, 125, WANT(0x8a, 0x7d));
	check_header(WS_OPCODE_PING, true, 126, REFUSED);
	check_header(WS_OPCODE_CLOSE, true, 65536, REFUSED);
	check_header(WS_OPCODE_PONG, true, UINT64_C(1) << 32, REFUSED);
	check_header(WS_OPCODE_PING, false, 5, REFUSED);
	check_header(WS_OPCODE_CLOSE, false, 2, REFUSED);
	check_header(WS_OPCODE_PONG, false, 0, REFUSED);
}

/* Opcodes 0x3-0x7 and 0xb-0xf are reserved (§5.2); 4 bits at most. */
static void
test_reserved_opcodes(void)
{
	static const int reserved[] = {0x3, 0x4, 0x5, 0x6, 0x7,	 0xb,
								   0xc, 0xd, 0xe, 0xf, 0x10, 0x81};

	for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
		check_header((ws_opcode) reserved[i], true, 5, REFUSED);
}

int
main(void)
{
	test_lengths();
	test_rfc_examples();
	test_control_frames();
	test_reserved_opcodes();
	return unit_summary();
}
