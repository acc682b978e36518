/*
 * bench-loadgen: WebSocket load generator for cellcms-relay benchmarks.
 *
 * A coordinator forks --procs workers; each worker owns a slice of the
 * --conns connections and runs its own epoll loop with a hand-written
 * WebSocket client (HTTP upgrade, frame parser, masked client frames), so
 * that the per-message cost is one read() share plus a few string scans.
 * Tokens are HS256 JWTs signed here with the --secret (one user per
 * connection) unless --token is given.
 *
 * Each connection, once it has its `welcome` and `presence.snapshot`, sends
 * its --sub subscriptions, its --join presence document, and finally an
 * `unsubscribe` of a query it never subscribed: the relay handles one
 * connection's frames in order, so the `unsubscribed` reply proves that
 * everything before it was processed.  When every connection has that
 * reply the coordinator prints
 *
 *   ready conns=N failed=F retried=R elapsed_s=T rate=C/s
 *
 * (elapsed from the common start to the last `welcome`; the storm figure).
 * Then, per measurement round driven by signals to the coordinator:
 *   SIGUSR2  start presence churn (--churn joins/s over all workers)
 *   SIGUSR1  stop churn, wait until nothing has arrived for --quiet-ms,
 *            print one `result` line for the round and reset the counters
 *   SIGTERM  close everything and exit
 *
 * Latency: for `mutation` messages, parse time (CLOCK_REALTIME) minus the
 * message's `ts` (the commit side's clock, whole milliseconds); for
 * `presence.join` of churn documents, parse time minus the send time that
 * the joining worker wrote into the document id.  Same machine, same clock.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/hmac.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

/* Latency histogram: 100 µs buckets up to 10 s, then one overflow bucket. */
#define HIST_STEP_US  100
#define HIST_BUCKETS  100001
#define READ_BUF	  (256 * 1024)
#define MAX_PROCS	  64
#define MAX_SUBS	  1000
#define BARRIER_QUERY "*[_id == \"loadgen-barrier\"]"

typedef struct options
{
	const char *host;
	int port;
	const char *secret;
	const char *token;
	int conns;
	int procs;
	int window;
	int src_net;   /* source addresses 127.0.<src_net>.1 .. */
	int src_count; /* .. 127.0.<src_net>.<src_count> */
	const char *dataset;
	int rooms; /* > 0: dataset "<dataset>-<c % rooms>" */
	const char *sub;
	int subs_per_conn;
	int types;
	const char *join;
	double churn; /* joins/s over all workers */
	int quiet_ms;
	int timeout_s;
	bool retry;
} options;

/* What one worker reports for one round (or for the setup). */
typedef struct stats
{
	uint64_t ready;
	uint64_t failed;
	uint64_t retried;
	uint64_t dropped; /* open connections the relay closed afterwards */
	uint64_t errors;  /* `error` messages */
	uint64_t msgs;	  /* text messages of any type */
	uint64_t measured;
	uint64_t conn_min; /* per-connection measured messages */
	uint64_t conn_max;
	uint64_t joins_sent;
	int64_t first_us; /* first and last measured message */
	int64_t last_us;
	int64_t last_welcome_us;
	double cpu_s; /* this worker's CPU time during the round */
	uint64_t max_lat_us;
	uint32_t hist[HIST_BUCKETS];
} stats;

enum conn_state
{
	C_IDLE,
	C_CONNECTING,
	C_HANDSHAKE,
	C_OPEN,
	C_READY,
	C_DEAD
};

typedef struct conn
{
	int fd;
	uint8_t state;
	uint8_t attempts;
	bool snapshot;
	bool counted; /* in `connecting` (the --window) */
	int index;	  /* global connection number */
	char *in;	  /* unparsed bytes kept between reads */
	size_t inlen;
	char *out; /* bytes the socket did not take yet */
	size_t outlen;
	char *frag; /* a fragmented message being assembled */
	size_t fraglen;
	uint64_t measured;
	int64_t started_us;
	char doc[48]; /* churn: the document currently joined */
} conn;

static options opt = {
	.host = "127.0.0.1",
	.port = 8080,
	.conns = 100,
	.procs = 1,
	.window = 256,
	.src_net = 0,
	.src_count = 1,
	.dataset = "production",
	.subs_per_conn = 1,
	.types = 1,
	.quiet_ms = 1000,
	.timeout_s = 60,
};

static volatile sig_atomic_t got_usr1, got_usr2, got_term;

static int64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static double
cpu_seconds(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
		   (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void
die(const char *what)
{
	perror(what);
	exit(1);
}

static void *
xmalloc(size_t n)
{
	void *p = malloc(n);

	if (!p)
		die("malloc");
	return p;
}

/* ---- tokens ---------------------------------------------------------- */

static size_t
b64url(char *out, const unsigned char *in, size_t n)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t o = 0;

	for (size_t i = 0; i < n; i += 3)
	{
		uint32_t v = (uint32_t) in[i] << 16;

		if (i + 1 < n)
			v |= (uint32_t) in[i + 1] << 8;
		if (i + 2 < n)
			v |= in[i + 2];
		out[o++] = tab[(v >> 18) & 63];
		out[o++] = tab[(v >> 12) & 63];
		if (i + 1 < n)
			out[o++] = tab[(v >> 6) & 63];
		if (i + 2 < n)
			out[o++] = tab[v & 63];
	}
	out[o] = '\0';
	return o;
}

/* An HS256 token for user u<index>, valid for a day; out has 512 bytes. */
static void
sign_token(char *out, int index)
{
	static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
	char payload[128];
	unsigned char mac[32];
	unsigned int maclen = sizeof(mac);
	size_t n;

	snprintf(payload, sizeof(payload),
			 "{\"sub\":\"u%d\",\"name\":\"user %d\",\"exp\":%lld}", index,
			 index, (long long) (time(NULL) + 86400));
	n = b64url(out, (const unsigned char *) header, strlen(header));
	out[n++] = '.';
	n += b64url(out + n, (const unsigned char *) payload, strlen(payload));
	if (!HMAC(EVP_sha256(), opt.secret, (int) strlen(opt.secret),
			  (const unsigned char *) out, n, mac, &maclen))
	{
		fprintf(stderr, "bench-loadgen: HMAC failed\n");
		exit(1);
	}
	out[n++] = '.';
	b64url(out + n, mac, maclen);
}

/* ---- per-worker state ------------------------------------------------ */

static int epfd;
static conn *conns;
static int nconns;
static stats *live;	  /* this round, private */
static stats *shared; /* this worker's slot in the shared report area */
static char *readbuf;
static int connecting; /* started but not yet welcomed */
static int next_to_start;
static int ready_count, settled_count;
static bool churning;
static int churn_next;
static double round_cpu0;

static void
hist_add(stats *s, int64_t lat_us)
{
	uint64_t b;

	if (lat_us < 0)
		lat_us = 0;
	b = (uint64_t) lat_us / HIST_STEP_US;
	if (b >= HIST_BUCKETS)
		b = HIST_BUCKETS - 1;
	s->hist[b]++;
	if ((uint64_t) lat_us > s->max_lat_us)
		s->max_lat_us = (uint64_t) lat_us;
}

static void
round_reset(void)
{
	uint64_t ready = live->ready, failed = live->failed,
			 retried = live->retried;
	int64_t welcome = live->last_welcome_us;

	memset(live, 0, sizeof(*live));
	live->ready = ready;
	live->failed = failed;
	live->retried = retried;
	live->last_welcome_us = welcome;
	for (int i = 0; i < nconns; i++)
		conns[i].measured = 0;
	round_cpu0 = cpu_seconds();
}

static void
conn_watch(conn *c, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = c};

	if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) != 0)
		die("epoll_ctl");
}

static void conn_start(conn *c);

/* Gives up on c; a connection that never got ready may be retried. */
static void
conn_fail(conn *c)
{
	bool was_ready = c->state == C_READY;
	struct linger lg = {1, 0};

	if (c->fd >= 0)
	{
		/* RST, not FIN: no TIME_WAIT on this side eating source ports */
		setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		close(c->fd);
		c->fd = -1;
	}
	free(c->in);
	free(c->out);
	free(c->frag);
	c->in = c->out = c->frag = NULL;
	c->inlen = c->outlen = c->fraglen = 0;
	if (was_ready)
	{
		live->dropped++;
		ready_count--;
		c->state = C_DEAD;
		return;
	}
	if (c->counted)
	{
		c->counted = false;
		connecting--;
	}
	if (opt.retry && c->attempts < 3 && c->state != C_IDLE)
	{
		live->retried++;
		conn_start(c);
		return;
	}
	c->state = C_DEAD;
	live->failed++;
	settled_count++;
}

/* Queues bytes for c, writing at once what the socket takes. */
static void
conn_send(conn *c, const char *data, size_t len)
{
	if (c->outlen == 0)
	{
		ssize_t n = write(c->fd, data, len);

		if (n < 0 && errno != EAGAIN)
		{
			conn_fail(c);
			return;
		}
		if (n < 0)
			n = 0;
		data += n;
		len -= (size_t) n;
		if (len == 0)
			return;
		conn_watch(c, EPOLLIN | EPOLLOUT);
	}
	c->out = realloc(c->out, c->outlen + len);
	if (!c->out)
		die("realloc");
	memcpy(c->out + c->outlen, data, len);
	c->outlen += len;
}

/* One masked client text frame. */
static void
ws_send_text(conn *c, const char *text, size_t len)
{
	char stackbuf[4096];
	char *f = len + 14 <= sizeof(stackbuf) ? stackbuf : xmalloc(len + 14);
	size_t h = 0;
	uint32_t key = (uint32_t) rand();
	unsigned char mask[4];

	memcpy(mask, &key, 4);
	f[h++] = (char) 0x81;
	if (len < 126)
		f[h++] = (char) (0x80 | len);
	else if (len < 65536)
	{
		f[h++] = (char) (0x80 | 126);
		f[h++] = (char) (len >> 8);
		f[h++] = (char) len;
	}
	else
	{
		f[h++] = (char) (0x80 | 127);
		for (int i = 7; i >= 0; i--)
			f[h++] = (char) ((uint64_t) len >> (8 * i));
	}
	memcpy(f + h, mask, 4);
	h += 4;
	for (size_t i = 0; i < len; i++)
		f[h + i] = (char) (text[i] ^ mask[i & 3]);
	conn_send(c, f, h + len);
	if (f != stackbuf)
		free(f);
}

static void
ws_send_control(conn *c, int opcode, const char *payload, size_t len)
{
	char f[2 + 4 + 125];

	if (len > 125)
		len = 125;
	f[0] = (char) (0x80 | opcode);
	f[1] = (char) (0x80 | len);
	memset(f + 2, 0, 4); /* a zero mask leaves the payload as it is */
	memcpy(f + 6, payload, len);
	conn_send(c, f, 6 + len);
}

/*
 * Expands a template for connection c's subscription j into a JSON string
 * body (quotes escaped): %t = c mod --types, %u = (c + j) mod --types,
 * %j = j.  out has outsize bytes.
 */
static void
expand(char *out, size_t outsize, const char *tmpl, int c, int j)
{
	size_t o = 0;

	for (const char *p = tmpl; *p && o + 24 < outsize; p++)
	{
		if (p[0] == '%' && (p[1] == 't' || p[1] == 'u' || p[1] == 'j'))
		{
			int v = p[1] == 't'	  ? c % opt.types
					: p[1] == 'u' ? (c + j) % opt.types
								  : j;

			o += (size_t) snprintf(out + o, outsize - o, "%d", v);
			p++;
		}
		else if (*p == '"' || *p == '\\')
		{
			out[o++] = '\\';
			out[o++] = *p;
		}
		else
			out[o++] = *p;
	}
	out[o] = '\0';
}

static void
send_json_request(conn *c, const char *type, const char *field,
				  const char *value)
{
	char msg[2048];
	int n = snprintf(msg, sizeof(msg), "{\"type\":\"%s\",\"%s\":\"%s\"}", type,
					 field, value);

	ws_send_text(c, msg, (size_t) n);
}

/* welcome + snapshot received: the setup requests, then the barrier. */
static void
conn_setup(conn *c)
{
	char buf[1024];

	if (opt.sub)
		for (int j = 0; j < opt.subs_per_conn && c->fd >= 0; j++)
		{
			expand(buf, sizeof(buf), opt.sub, c->index, j);
			send_json_request(c, "subscribe", "query", buf);
		}
	if (opt.join && c->fd >= 0)
	{
		expand(buf, sizeof(buf), opt.join, c->index, 0);
		send_json_request(c, "presence.join", "documentId", buf);
	}
	if (c->fd >= 0)
	{
		expand(buf, sizeof(buf), BARRIER_QUERY, 0, 0);
		send_json_request(c, "unsubscribe", "query", buf);
	}
}

/* "2025-01-15T12:00:00.123Z" -> µs since the epoch; -1 when malformed. */
static int64_t
parse_ts(const char *s, const char *end)
{
	int v[7];
	static const int len[7] = {4, 2, 2, 2, 2, 2, 3};
	static const char sep[7] = {'-', '-', 'T', ':', ':', '.', 'Z'};
	int64_t y, m, d, era, yoe, doy, doe, days;

	if (end - s < 24)
		return -1;
	for (int i = 0; i < 7; i++)
	{
		v[i] = 0;
		for (int k = 0; k < len[i]; k++, s++)
		{
			if (*s < '0' || *s > '9')
				return -1;
			v[i] = v[i] * 10 + (*s - '0');
		}
		if (*s++ != sep[i])
			return -1;
	}
	/* days from civil (Howard Hinnant's algorithm) */
	y = v[0] - (v[1] <= 2);
	m = v[1];
	d = v[2];
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	days = era * 146097 + doe - 719468;
	return ((days * 86400 + v[3] * 3600 + v[4] * 60 + v[5]) * 1000 + v[6]) *
		   1000;
}

/* The string value of "key":"..." in msg, or NULL; *vend = closing quote. */
static const char *
find_str(const char *msg, const char *end, const char *key, size_t keylen,
		 const char **vend)
{
	const char *p = memmem(msg, (size_t) (end - msg), key, keylen);
	const char *q;

	if (!p)
		return NULL;
	p += keylen;
	q = memchr(p, '"', (size_t) (end - p));
	if (!q)
		return NULL;
	*vend = q;
	return p;
}

#define KEY(s) s, sizeof(s) - 1

static void
measure(conn *c, int64_t now, int64_t sent_us)
{
	live->measured++;
	c->measured++;
	if (live->first_us == 0)
		live->first_us = now;
	live->last_us = now;
	hist_add(live, now - sent_us);
}

static void
on_message(conn *c, const char *msg, size_t len)
{
	const char *end = msg + len, *type, *tend, *v, *vend;
	int64_t now = now_us();

	live->msgs++;
	type = find_str(msg, end, KEY("\"type\":\""), &tend);
	if (!type)
		return;
	switch (tend - type)
	{
		case 8:
			if (memcmp(type, "mutation", 8) == 0 &&
				(v = find_str(msg, end, KEY("\"ts\":\""), &vend)))
			{
				int64_t ts = parse_ts(v, vend + 1);

				if (ts >= 0)
					measure(c, now, ts);
			}
			break;
		case 7:
			if (memcmp(type, "welcome", 7) == 0 && c->state == C_OPEN)
				live->last_welcome_us = now;
			break;
		case 17:
			if (memcmp(type, "presence.snapshot", 17) == 0 &&
				c->state == C_OPEN && !c->snapshot)
			{
				c->snapshot = true;
				c->counted = false;
				connecting--;
				conn_setup(c);
			}
			break;
		case 13:
			/* churn documents are "j<send µs>-<connection>" */
			if (memcmp(type, "presence.join", 13) == 0 &&
				(v = find_str(msg, end, KEY("\"documentId\":\""), &vend)) &&
				*v == 'j')
				measure(c, now, strtoll(v + 1, NULL, 10));
			break;
		case 12:
			if (memcmp(type, "unsubscribed", 12) == 0 && c->state == C_OPEN &&
				c->snapshot)
			{
				c->state = C_READY;
				live->ready++;
				ready_count++;
				settled_count++;
			}
			break;
		case 5:
			if (memcmp(type, "error", 5) == 0)
			{
				live->errors++;
				if (live->errors <= 3)
					fprintf(stderr, "bench-loadgen: connection %d: %.*s\n",
							c->index, (int) len, msg);
			}
			break;
	}
}

/* Parses the frames in buf; returns the bytes consumed, or -1 on close. */
static ssize_t
parse_frames(conn *c, char *buf, size_t len)
{
	size_t pos = 0;

	while (len - pos >= 2)
	{
		unsigned char *p = (unsigned char *) buf + pos;
		int opcode = p[0] & 0x0f;
		bool fin = p[0] & 0x80;
		uint64_t plen = p[1] & 0x7f;
		size_t h = 2;
		char *payload;

		if (p[1] & 0x80)
			return -1; /* servers never mask */
		if (plen == 126)
		{
			if (len - pos < 4)
				break;
			plen = (uint64_t) p[2] << 8 | p[3];
			h = 4;
		}
		else if (plen == 127)
		{
			if (len - pos < 10)
				break;
			plen = 0;
			for (int i = 0; i < 8; i++)
				plen = plen << 8 | p[2 + i];
			h = 10;
		}
		if (plen > (64u << 20))
			return -1;
		if (len - pos < h + plen)
			break;
		payload = buf + pos + h;
		pos += h + plen;
		switch (opcode)
		{
			case 0x1:
			case 0x0:
				if (fin && c->fraglen == 0 && opcode == 0x1)
					on_message(c, payload, plen);
				else
				{
					c->frag = realloc(c->frag, c->fraglen + plen);
					if (!c->frag)
						die("realloc");
					memcpy(c->frag + c->fraglen, payload, plen);
					c->fraglen += plen;
					if (fin)
					{
						on_message(c, c->frag, c->fraglen);
						free(c->frag);
						c->frag = NULL;
						c->fraglen = 0;
					}
				}
				break;
			case 0x8:
				if (c->state == C_READY || live->errors < 3)
					fprintf(stderr,
							"bench-loadgen: connection %d closed by the "
							"relay: code %d %.*s\n",
							c->index, plen >= 2 ? (p[h] << 8 | p[h + 1]) : 0,
							plen > 2 ? (int) plen - 2 : 0, payload + 2);
				return -1;
			case 0x9:
				ws_send_control(c, 0xA, payload, plen);
				if (c->fd < 0)
					return -1;
				break;
			default:
				break;
		}
		if (c->fd < 0)
			return -1;
	}
	return (ssize_t) pos;
}

static void
on_readable(conn *c)
{
	size_t have = c->inlen;
	ssize_t n, used;
	char *data;

	if (have > READ_BUF / 2)
	{
		fprintf(stderr, "bench-loadgen: message too large\n");
		conn_fail(c);
		return;
	}
	memcpy(readbuf, c->in, have);
	n = read(c->fd, readbuf + have, READ_BUF - have);
	if (n <= 0)
	{
		if (n < 0 && errno == EAGAIN)
			return;
		conn_fail(c);
		return;
	}
	have += (size_t) n;
	data = readbuf;
	if (c->state == C_HANDSHAKE)
	{
		char *eoh = memmem(data, have, "\r\n\r\n", 4);

		if (!eoh)
		{
			if (have > 8192)
			{
				conn_fail(c);
				return;
			}
			goto keep;
		}
		if (have < 12 || memcmp(data + 9, "101", 3) != 0)
		{
			conn_fail(c);
			return;
		}
		c->state = C_OPEN;
		eoh += 4;
		have -= (size_t) (eoh - data);
		data = eoh;
	}
	used = parse_frames(c, data, have);
	if (used < 0)
	{
		conn_fail(c);
		return;
	}
	data += used;
	have -= (size_t) used;
keep:
	if (have == 0)
	{
		free(c->in);
		c->in = NULL;
		c->inlen = 0;
		return;
	}
	c->in = realloc(c->in, have);
	if (!c->in)
		die("realloc");
	memmove(c->in, data, have);
	c->inlen = have;
}

static void
on_writable(conn *c)
{
	if (c->state == C_CONNECTING)
	{
		int err = 0;
		socklen_t elen = sizeof(err);
		char token[512];
		char req[1024];
		int n;

		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &elen);
		if (err != 0)
		{
			conn_fail(c);
			return;
		}
		if (opt.token)
			snprintf(token, sizeof(token), "%s", opt.token);
		else
			sign_token(token, c->index);
		if (opt.rooms > 0)
			n = snprintf(req, sizeof(req),
						 "GET /ws?token=%s&dataset=%s-%d HTTP/1.1\r\n", token,
						 opt.dataset, c->index % opt.rooms);
		else
			n = snprintf(req, sizeof(req),
						 "GET /ws?token=%s&dataset=%s HTTP/1.1\r\n", token,
						 opt.dataset);
		n += snprintf(req + n, sizeof(req) - (size_t) n,
					  "Host: %s:%d\r\nUpgrade: websocket\r\n"
					  "Connection: Upgrade\r\n"
					  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
					  "Sec-WebSocket-Version: 13\r\n\r\n",
					  opt.host, opt.port);
		c->state = C_HANDSHAKE;
		conn_watch(c, EPOLLIN);
		conn_send(c, req, (size_t) n);
		return;
	}
	if (c->outlen > 0)
	{
		ssize_t n = write(c->fd, c->out, c->outlen);

		if (n < 0)
		{
			if (errno != EAGAIN)
				conn_fail(c);
			return;
		}
		memmove(c->out, c->out + n, c->outlen - (size_t) n);
		c->outlen -= (size_t) n;
	}
	if (c->outlen == 0)
		conn_watch(c, EPOLLIN);
}

static void
conn_start(conn *c)
{
	struct sockaddr_in src = {.sin_family = AF_INET};
	struct sockaddr_in dst = {.sin_family = AF_INET};
	struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
	int one = 1;

	c->attempts++;
	c->snapshot = false;
	c->started_us = now_us();
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		die("socket");
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
	src.sin_addr.s_addr = htonl((127u << 24) | ((unsigned) opt.src_net << 8) |
								(1u + (unsigned) (c->index % opt.src_count)));
	if (bind(c->fd, (struct sockaddr *) &src, sizeof(src)) != 0)
		die("bind");
	dst.sin_port = htons((uint16_t) opt.port);
	if (inet_pton(AF_INET, opt.host, &dst.sin_addr) != 1)
	{
		fprintf(stderr, "bench-loadgen: --host must be an IPv4 address\n");
		exit(2);
	}
	c->state = C_CONNECTING;
	c->counted = true;
	connecting++;
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0)
		die("epoll_ctl");
	if (connect(c->fd, (struct sockaddr *) &dst, sizeof(dst)) != 0 &&
		errno != EINPROGRESS)
		conn_fail(c);
}

/* One churn step: leave the previous document, join a new one. */
static void
churn_step(void)
{
	for (int tries = 0; tries < nconns; tries++)
	{
		conn *c = &conns[churn_next];
		char doc[48];

		churn_next = (churn_next + 1) % nconns;
		if (c->state != C_READY)
			continue;
		if (c->doc[0])
			send_json_request(c, "presence.leave", "documentId", c->doc);
		snprintf(doc, sizeof(doc), "j%" PRId64 "-%d", now_us(), c->index);
		if (c->fd >= 0)
		{
			send_json_request(c, "presence.join", "documentId", doc);
			snprintf(c->doc, sizeof(c->doc), "%s", doc);
			live->joins_sent++;
		}
		return;
	}
}

static void
on_signal(int sig)
{
	if (sig == SIGUSR1)
		got_usr1 = 1;
	else if (sig == SIGUSR2)
		got_usr2 = 1;
	else
		got_term = 1;
}

/* Snapshot of this round into the shared slot, then a fresh round. */
static void
report_round(void)
{
	live->conn_min = UINT64_MAX;
	live->conn_max = 0;
	for (int i = 0; i < nconns; i++)
		if (conns[i].state == C_READY)
		{
			if (conns[i].measured < live->conn_min)
				live->conn_min = conns[i].measured;
			if (conns[i].measured > live->conn_max)
				live->conn_max = conns[i].measured;
		}
	live->cpu_s = cpu_seconds() - round_cpu0;
	memcpy(shared, live, sizeof(*live));
	round_reset();
}

static void
worker_run(int first, int count, int64_t start_us, int notify_fd)
{
	struct epoll_event evs[1024];
	int64_t deadline = start_us + (int64_t) opt.timeout_s * 1000000;
	int64_t drain_since = 0, next_churn = 0;
	double churn_us = 0;
	bool setup_reported = false;
	char byte = 'r';

	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0)
		die("epoll_create1");
	nconns = count;
	conns = calloc((size_t) count, sizeof(conn));
	live = calloc(1, sizeof(stats));
	readbuf = xmalloc(READ_BUF);
	if (!conns || !live)
		die("calloc");
	for (int i = 0; i < count; i++)
	{
		conns[i].fd = -1;
		conns[i].index = first + i;
	}
	srand((unsigned) (getpid() ^ start_us));
	while (now_us() < start_us)
		usleep(1000);
	round_cpu0 = cpu_seconds();
	if (opt.churn > 0)
		churn_us = 1e6 * opt.procs / opt.churn;

	for (;;)
	{
		int timeout = 100, n;
		int64_t now;

		while (connecting < opt.window && next_to_start < nconns)
			conn_start(&conns[next_to_start++]);
		now = now_us();
		if (churning)
		{
			while (next_churn <= now)
			{
				churn_step();
				next_churn += (int64_t) churn_us;
			}
			timeout = (int) ((next_churn - now + 999) / 1000);
		}
		n = epoll_wait(epfd, evs, 1024, timeout);
		if (n < 0 && errno != EINTR)
			die("epoll_wait");
		for (int i = 0; i < n; i++)
		{
			conn *c = evs[i].data.ptr;

			if (c->fd < 0)
				continue;
			if (evs[i].events & (EPOLLERR | EPOLLHUP) &&
				c->state == C_CONNECTING)
			{
				conn_fail(c);
				continue;
			}
			if (evs[i].events & EPOLLOUT)
				on_writable(c);
			if (c->fd >= 0 && evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
				on_readable(c);
		}
		now = now_us();
		if (!setup_reported)
		{
			if (settled_count < nconns && now > deadline)
			{
				/* connections that never got ready count as failed */
				opt.retry = false;
				next_to_start = nconns;
				for (int i = 0; i < nconns; i++)
					if (conns[i].state != C_READY && conns[i].state != C_DEAD)
						conn_fail(&conns[i]);
			}
			if (settled_count >= nconns && next_to_start >= nconns)
			{
				setup_reported = true;
				report_round();
				if (write(notify_fd, &byte, 1) != 1)
					die("write");
			}
		}
		if (got_term)
			break;
		if (got_usr2 && setup_reported)
		{
			got_usr2 = 0;
			if (churn_us > 0)
			{
				churning = true;
				next_churn = now_us();
			}
		}
		if (got_usr1 && setup_reported)
		{
			churning = false;
			if (drain_since == 0)
				drain_since = now;
			if (now - (live->last_us > drain_since ? live->last_us
												   : drain_since) >=
					(int64_t) opt.quiet_ms * 1000 ||
				now - drain_since > 60 * 1000000)
			{
				got_usr1 = 0;
				drain_since = 0;
				report_round();
				if (write(notify_fd, &byte, 1) != 1)
					die("write");
			}
		}
	}
	for (int i = 0; i < nconns; i++)
		if (conns[i].fd >= 0)
		{
			struct linger lg = {1, 0};

			setsockopt(conns[i].fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
			close(conns[i].fd);
		}
	exit(0);
}

/* ---- coordinator ----------------------------------------------------- */

static uint64_t
hist_quantile(const uint32_t *h, uint64_t total, double q)
{
	uint64_t want = (uint64_t) (q * (double) total), seen = 0;

	if (total == 0)
		return 0;
	if (want >= total)
		want = total - 1;
	for (int b = 0; b < HIST_BUCKETS; b++)
	{
		seen += h[b];
		if (seen > want)
			return (uint64_t) b * HIST_STEP_US + HIST_STEP_US / 2;
	}
	return (uint64_t) (HIST_BUCKETS - 1) * HIST_STEP_US;
}

static void
print_result(const char *what, stats *slots, int procs, int64_t start_us)
{
	static stats sum;
	uint64_t cmin = UINT64_MAX, cmax = 0;
	int64_t first = 0, last = 0, welcome = 0;
	double span;

	memset(&sum, 0, sizeof(sum));
	for (int p = 0; p < procs; p++)
	{
		stats *s = &slots[p];

		sum.ready += s->ready;
		sum.failed += s->failed;
		sum.retried += s->retried;
		sum.dropped += s->dropped;
		sum.errors += s->errors;
		sum.msgs += s->msgs;
		sum.measured += s->measured;
		sum.joins_sent += s->joins_sent;
		sum.cpu_s += s->cpu_s;
		if (s->max_lat_us > sum.max_lat_us)
			sum.max_lat_us = s->max_lat_us;
		if (s->conn_min < cmin)
			cmin = s->conn_min;
		if (s->conn_max > cmax)
			cmax = s->conn_max;
		if (s->first_us && (first == 0 || s->first_us < first))
			first = s->first_us;
		if (s->last_us > last)
			last = s->last_us;
		if (s->last_welcome_us > welcome)
			welcome = s->last_welcome_us;
		for (int b = 0; b < HIST_BUCKETS; b++)
			sum.hist[b] += s->hist[b];
	}
	if (cmin == UINT64_MAX)
		cmin = 0;
	if (strcmp(what, "ready") == 0)
	{
		span = welcome > start_us ? (welcome - start_us) / 1e6 : 0;
		printf("ready conns=%" PRIu64 " failed=%" PRIu64 " retried=%" PRIu64
			   " errors=%" PRIu64 " elapsed_s=%.3f rate=%.0f cpu_s=%.3f\n",
			   sum.ready, sum.failed, sum.retried, sum.errors, span,
			   span > 0 ? sum.ready / span : 0, sum.cpu_s);
	}
	else
	{
		span = last > first ? (last - first) / 1e6 : 0;
		printf("result measured=%" PRIu64 " msgs=%" PRIu64 " conn_min=%" PRIu64
			   " conn_max=%" PRIu64 " span_s=%.3f"
			   " rate=%.0f p50_ms=%.2f p99_ms=%.2f p999_ms=%.2f"
			   " max_ms=%.2f cpu_s=%.3f joins_sent=%" PRIu64 " dropped=%" PRIu64
			   " errors=%" PRIu64 "\n",
			   sum.measured, sum.msgs, cmin, cmax, span,
			   span > 0 ? sum.measured / span : 0,
			   hist_quantile(sum.hist, sum.measured, 0.5) / 1000.0,
			   hist_quantile(sum.hist, sum.measured, 0.99) / 1000.0,
			   hist_quantile(sum.hist, sum.measured, 0.999) / 1000.0,
			   sum.max_lat_us / 1000.0, sum.cpu_s, sum.joins_sent, sum.dropped,
			   sum.errors);
	}
	fflush(stdout);
}

static void
usage(void)
{
	fprintf(stderr,
			"usage: bench-loadgen [--host IP] --port N (--secret S | "
			"--token JWT)\n"
			"  [--conns N] [--procs P] [--window W] [--src-net X] "
			"[--src-count K]\n"
			"  [--dataset NAME] [--rooms R] [--sub TEMPLATE] "
			"[--subs-per-conn S] [--types T]\n"
			"  [--join TEMPLATE] [--churn JOINS_PER_S] [--quiet-ms MS] "
			"[--timeout S] [--retry]\n"
			"TEMPLATE: %%t = connection number mod T, %%u = (connection + "
			"subscription number) mod T, %%j = subscription number\n");
	exit(2);
}

static void
parse_args(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"host", required_argument, NULL, 'h'},
		{"port", required_argument, NULL, 'p'},
		{"secret", required_argument, NULL, 's'},
		{"token", required_argument, NULL, 'k'},
		{"conns", required_argument, NULL, 'n'},
		{"procs", required_argument, NULL, 'P'},
		{"window", required_argument, NULL, 'w'},
		{"src-net", required_argument, NULL, 'N'},
		{"src-count", required_argument, NULL, 'K'},
		{"dataset", required_argument, NULL, 'd'},
		{"rooms", required_argument, NULL, 'r'},
		{"sub", required_argument, NULL, 'q'},
		{"subs-per-conn", required_argument, NULL, 'S'},
		{"types", required_argument, NULL, 'T'},
		{"join", required_argument, NULL, 'j'},
		{"churn", required_argument, NULL, 'c'},
		{"quiet-ms", required_argument, NULL, 'Q'},
		{"timeout", required_argument, NULL, 't'},
		{"retry", no_argument, NULL, 'R'},
		{NULL, 0, NULL, 0},
	};
	int ch;

	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1)
		switch (ch)
		{
			case 'h':
				opt.host = optarg;
				break;
			case 'p':
				opt.port = atoi(optarg);
				break;
			case 's':
				opt.secret = optarg;
				break;
			case 'k':
				opt.token = optarg;
				break;
			case 'n':
				opt.conns = atoi(optarg);
				break;
			case 'P':
				opt.procs = atoi(optarg);
				break;
			case 'w':
				opt.window = atoi(optarg);
				break;
			case 'N':
				opt.src_net = atoi(optarg);
				break;
			case 'K':
				opt.src_count = atoi(optarg);
				break;
			case 'd':
				opt.dataset = optarg;
				break;
			case 'r':
				opt.rooms = atoi(optarg);
				break;
			case 'q':
				opt.sub = optarg;
				break;
			case 'S':
				opt.subs_per_conn = atoi(optarg);
				break;
			case 'T':
				opt.types = atoi(optarg);
				break;
			case 'j':
				opt.join = optarg;
				break;
			case 'c':
				opt.churn = atof(optarg);
				break;
			case 'Q':
				opt.quiet_ms = atoi(optarg);
				break;
			case 't':
				opt.timeout_s = atoi(optarg);
				break;
			case 'R':
				opt.retry = true;
				break;
			default:
				usage();
		}
	if (optind != argc || opt.port <= 0 || opt.port > 65535 ||
		(!opt.secret == !opt.token) || opt.conns < 1 || opt.procs < 1 ||
		opt.procs > MAX_PROCS || opt.procs > opt.conns || opt.window < 1 ||
		opt.src_net < 0 || opt.src_net > 255 || opt.src_count < 1 ||
		opt.src_count > 254 || opt.rooms < 0 || opt.subs_per_conn < 1 ||
		opt.subs_per_conn > MAX_SUBS || opt.types < 1 || opt.churn < 0 ||
		opt.quiet_ms < 1 || opt.timeout_s < 1)
		usage();
}

int
main(int argc, char **argv)
{
	struct rlimit rl;
	struct sigaction sa;
	stats *slots;
	pid_t pids[MAX_PROCS];
	int pipefd[2];
	struct pollfd pfd;
	int64_t start_us;
	bool ready_done = false;
	int pending = 0;

	parse_args(argc, argv);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max)
	{
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
		(rlim_t) (opt.conns / opt.procs + 64) > rl.rlim_cur)
	{
		fprintf(stderr,
				"bench-loadgen: %d connections per process exceed the file "
				"limit %llu: raise --procs\n",
				opt.conns / opt.procs + 1, (unsigned long long) rl.rlim_cur);
		exit(2);
	}
	slots = mmap(NULL, sizeof(stats) * (size_t) opt.procs,
				 PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (slots == MAP_FAILED)
		die("mmap");
	if (pipe(pipefd) != 0)
		die("pipe");

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	start_us = now_us() + 20000;
	for (int p = 0; p < opt.procs; p++)
	{
		int first = (int) ((int64_t) opt.conns * p / opt.procs);
		int last = (int) ((int64_t) opt.conns * (p + 1) / opt.procs);

		pids[p] = fork();
		if (pids[p] < 0)
			die("fork");
		if (pids[p] == 0)
		{
			prctl(PR_SET_PDEATHSIG, SIGTERM);
			if (getppid() == 1)
				exit(1);
			close(pipefd[0]);
			shared = &slots[p];
			worker_run(first, last - first, start_us, pipefd[1]);
		}
	}
	close(pipefd[1]);

	pfd.fd = pipefd[0];
	pfd.events = POLLIN;
	for (;;)
	{
		char buf[MAX_PROCS];
		ssize_t n;

		if (got_term)
			break;
		if (got_usr1 && ready_done && pending == 0)
		{
			got_usr1 = 0;
			pending = opt.procs;
			for (int p = 0; p < opt.procs; p++)
				kill(pids[p], SIGUSR1);
		}
		if (got_usr2 && ready_done)
		{
			got_usr2 = 0;
			for (int p = 0; p < opt.procs; p++)
				kill(pids[p], SIGUSR2);
		}
		if (!ready_done && pending == 0)
			pending = opt.procs;
		/* poll with a timeout: a signal may land just before the call */
		if (poll(&pfd, 1, 50) <= 0)
			continue;
		n = read(pipefd[0], buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
		{
			fprintf(stderr, "bench-loadgen: a worker died\n");
			break;
		}
		pending -= (int) n;
		if (pending > 0)
			continue;
		print_result(ready_done ? "result" : "ready", slots, opt.procs,
					 start_us);
		ready_done = true;
	}
	for (int p = 0; p < opt.procs; p++)
		kill(pids[p], SIGTERM);
	for (int p = 0; p < opt.procs; p++)
		waitpid(pids[p], NULL, 0);
	return got_term ? 0 : 1;
}
