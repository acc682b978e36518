/*
 * Unit tests of relay/delivery.c, the delivery rules of pg_listener.
 *
 * Most cases are scripts: a line of steps fed to a delivery, and the line
 * of what it answered, asked for and delivered.  A simulated database then
 * checks exactly-once delivery under random commits, lost and replayed
 * notifications and lost connections.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "delivery.h"
#include "snapshot.h"
#include "unit.h"

static unsigned needs_calls;

/* Events of type "doc" need their document. */
static bool
needs_doc(void *arg, const rt_event *ev)
{
	needs_calls++;
	return ev->document_type != NULL && !strcmp(ev->document_type, "doc");
}

static delivery_config
config(unsigned catchup, unsigned docs, unsigned pending, unsigned unconfirmed)
{
	delivery_config c = {
		.catchup_batch = catchup ? catchup : 1000,
		.document_batch = docs ? docs : 100,
		.max_pending_events = pending ? pending : 10000,
		.max_unconfirmed = unconfirmed ? unconfirmed : 64,
		.key = 42,
		.needs_document = needs_doc,
	};

	return c;
}

static rt_event
make_event(int64_t position, uint64_t txid, bool doc, bool truncated)
{
	rt_event ev;
	char pos[24], xid[24], id[32];

	snprintf(pos, sizeof(pos), "%lld", (long long) position);
	snprintf(xid, sizeof(xid), "%llu", (unsigned long long) txid);
	snprintf(id, sizeof(id), "d%lld", (long long) position);
	if (event_from_row(pos, xid, "production", id, doc ? "doc" : "post",
					   "update", "2025-01-15T12:00:00.000Z", &ev, NULL, 0) < 0)
	{
		fprintf(stderr, "cannot build event %lld/%llu\n", (long long) position,
				(unsigned long long) txid);
		exit(2);
	}
	ev.truncated = truncated;
	return ev;
}

/* ---- scripts -------------------------------------------------------- */

/*
 * Steps, separated by spaces:
 *   start               listen, then F = 100:100: (txids from 100 on are
 *                       new); prints nothing
 *   listen listen-lost query-lost tick     the inputs of the same names
 *   ask                 delivery_next_query; prints idle, wait, snapshot,
 *                       page>AFTER/LIMIT or docs:P,P,...
 *   snap:TEXT           the snapshot asked for; prints bad-snap on -1
 *   n:P/T               a NOTIFY of position P, txid T; prints dup or
 *                       refused unless queued.  Suffix d: the event needs
 *                       its document; t: its payload was truncated
 *   r:P/T  r:P/bad      a catch-up row (bad: did not parse); end: no more
 *   doc:P               a document row; prints stray when nobody waits for
 *                       it; done: no more
 *   ?                   prints open or shut (delivery_wants_notifications)
 *   D Q                 print D=n, Q=n (entries in D, queued events)
 *   nopop pop           stop and resume taking events from delivery_pop
 * After every step the delivered events are printed as +P, +Pd when the
 * event carries a document.
 */
typedef struct run
{
	delivery *d;
	bool paused;
	char out[2048];
	size_t len;
} run;

static void emit(run *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
emit(run *r, const char *fmt, ...)
{
	va_list ap;

	if (r->len > 0 && r->len < sizeof(r->out) - 1)
		r->out[r->len++] = ' ';
	va_start(ap, fmt);
	r->len +=
		(size_t) vsnprintf(r->out + r->len, sizeof(r->out) - r->len, fmt, ap);
	va_end(ap);
	if (r->len >= sizeof(r->out))
		r->len = sizeof(r->out) - 1;
}

static void
take_events(run *r)
{
	rt_event ev;

	while (!r->paused && delivery_pop(r->d, &ev))
	{
		emit(r, "+%lld%s", (long long) ev.position, ev.document ? "d" : "");
		event_free(&ev);
	}
}

static void
print_query(run *r, const delivery_query *q)
{
	char list[256];
	size_t n = 0;

	switch (q->op)
	{
		case DELIVERY_IDLE:
			emit(r, "idle");
			break;
		case DELIVERY_WAIT:
			emit(r, "wait");
			break;
		case DELIVERY_SNAPSHOT:
			emit(r, "snapshot");
			break;
		case DELIVERY_PAGE:
			emit(r, "page>%lld/%u", (long long) q->after, q->limit);
			break;
		case DELIVERY_DOCUMENTS:
			list[0] = '\0';
			for (size_t i = 0; i < q->npositions && n < sizeof(list); i++)
				n += (size_t) snprintf(list + n, sizeof(list) - n, "%s%lld",
									   i ? "," : "",
									   (long long) q->positions[i]);
			emit(r, "docs:%s", list);
			break;
	}
}

/* "P/T" plus flags into *ev; false for "P/bad". */
static bool
parse_event(const char *s, int64_t *position, rt_event *ev)
{
	char *end;
	unsigned long long txid;

	*position = strtoll(s, &end, 10);
	if (*end != '/' || !strcmp(end + 1, "bad"))
		return false;
	txid = strtoull(end + 1, &end, 10);
	*ev = make_event(*position, txid, strchr(end, 'd') != NULL,
					 strchr(end, 't') != NULL);
	return true;
}

static void
step(run *r, const char *s)
{
	delivery *d = r->d;
	delivery_query q;
	rt_event ev;
	int64_t pos;

	if (!strcmp(s, "start"))
	{
		delivery_listen_started(d);
		delivery_next_query(d, &q);
		delivery_snapshot_taken(d, "100:100:", 8, NULL, 0);
	}
	else if (!strcmp(s, "listen"))
		delivery_listen_started(d);
	else if (!strcmp(s, "listen-lost"))
		delivery_listen_lost(d);
	else if (!strcmp(s, "query-lost"))
		delivery_query_lost(d);
	else if (!strcmp(s, "tick"))
		delivery_interval_elapsed(d);
	else if (!strcmp(s, "ask"))
	{
		delivery_next_query(d, &q);
		print_query(r, &q);
	}
	else if (!strncmp(s, "snap:", 5))
	{
		if (delivery_snapshot_taken(d, s + 5, strlen(s + 5), NULL, 0) < 0)
			emit(r, "bad-snap");
	}
	else if (!strncmp(s, "n:", 2))
	{
		delivery_verdict v;

		parse_event(s + 2, &pos, &ev);
		v = delivery_notify(d, &ev);
		if (v != DELIVERY_QUEUED)
			emit(r, v == DELIVERY_DUPLICATE ? "dup" : "refused");
	}
	else if (!strncmp(s, "r:", 2))
	{
		bool good = parse_event(s + 2, &pos, &ev);

		delivery_page_row(d, pos, good ? &ev : NULL);
	}
	else if (!strcmp(s, "end"))
		delivery_page_done(d);
	else if (!strncmp(s, "doc:", 4))
	{
		pos = strtoll(s + 4, NULL, 10);
		if (!delivery_document(d, pos, NULL, NULL, NULL,
							   json_pack("{s:I}", "p", (json_int_t) pos)))
			emit(r, "stray");
	}
	else if (!strcmp(s, "done"))
		delivery_documents_done(d);
	else if (!strcmp(s, "?"))
		emit(r, delivery_wants_notifications(d) ? "open" : "shut");
	else if (!strcmp(s, "D") || !strcmp(s, "Q"))
	{
		delivery_stats st;

		delivery_get_stats(d, &st);
		emit(r, "%s=%zu", s, *s == 'D' ? st.unconfirmed : st.pending);
	}
	else if (!strcmp(s, "nopop"))
		r->paused = true;
	else if (!strcmp(s, "pop"))
		r->paused = false;
	else
	{
		fprintf(stderr, "unknown step \"%s\"\n", s);
		exit(2);
	}
	take_events(r);
}

typedef struct script
{
	const char *name;
	unsigned catchup, docs, pending, unconfirmed; /* 0: config()'s default */
	const char *steps;
	const char *want;
} script;

static const script scripts[] = {
	{.name = "the first F waits for LISTEN; nothing is taken before it",
	 .steps = "ask ? n:1/100 listen ask ? ask snap:100:100: ? ask",
	 .want = "idle shut refused snapshot shut wait open idle"},
	{.name = "notifications are delivered in the order they arrive",
	 .steps = "start n:3/102 n:1/100 n:2/101",
	 .want = "+3 +1 +2"},
	{.name = "a NOTIFY whose txid F already sees is dropped",
	 .steps =
		 "listen ask snap:105:107:105 n:1/104 n:2/105 n:3/106 n:4/107 n:5/99",
	 .want = "snapshot dup +2 dup +4 dup"},
	{.name = "a NOTIFY D holds is dropped",
	 .steps = "start n:1/100 n:1/100 D",
	 .want = "+1 dup D=1"},
	{.name = "a NOTIFY after the catch-up that delivered it is dropped",
	 .steps = "start tick ask snap:100:103: ask "
			  "r:1/100 r:2/101 r:3/102 end n:2/101 D",
	 .want = "snapshot page>0/1000 +1 +2 +3 dup D=0"},
	{.name = "a NOTIFY that the F' of the catch-up sees is left to it",
	 .steps = "start tick ask snap:100:103: n:2/101 ask r:1/100 r:2/101 end",
	 .want = "snapshot dup page>0/1000 +1 +2"},
	{.name = "a NOTIFY that the F' of the catch-up does not see is delivered",
	 .steps =
		 "start tick ask snap:100:102: n:5/103 D ask r:1/100 r:2/101 end D",
	 .want = "snapshot +5 D=1 page>0/1000 +1 +2 D=1"},
	{.name = "the catch-up skips what D holds",
	 .steps =
		 "start n:1/100 n:2/101 D tick ask snap:100:103: ask r:1/100 r:2/101 "
		 "r:3/102 end D",
	 .want = "+1 +2 D=2 snapshot page>0/1000 +3 D=0"},
	{.name = "a late commit is delivered once",
	 .steps =
		 "start n:2/101 tick ask snap:100:102:100 ask r:2/101 end D n:1/100 D "
		 "tick ask snap:102:102: ask r:1/100 end D n:1/100",
	 .want = "+2 snapshot page>0/1000 D=0 +1 D=1 snapshot page>0/1000 D=0 "
			 "dup"},
	{.name = "a late commit whose NOTIFY is lost comes with a catch-up, once",
	 .steps =
		 "start n:2/101 tick ask snap:100:102:100 ask r:2/101 end tick ask "
		 "snap:102:102: ask r:1/100 end n:1/100 D",
	 .want = "+2 snapshot page>0/1000 snapshot page>0/1000 +1 dup D=0"},
	{.name = "D drops what F' sees and keeps the rest",
	 .steps = "start n:1/100 D tick ask n:2/105 "
			  "snap:100:103: ask r:1/100 end D tick "
			  "ask snap:106:106: ask r:2/105 end D",
	 .want = "+1 D=1 snapshot +2 page>0/1000 D=1 snapshot page>0/1000 D=0"},
	/*
	 * Any role may NOTIFY: a forged payload for the next position with a
	 * txid no snapshot will ever see must neither hide the real change at
	 * that position nor stay in D.
	 */
	{.name = "a forged NOTIFY hides nothing and leaves D at the next advance",
	 .steps = "start n:2/4611686018427387904 n:2/101 D tick ask "
			  "snap:102:102: ask r:2/101 end D",
	 .want = "+2 +2 D=2 snapshot page>0/1000 D=0"},
	{.name = "a catch-up delivers the real change a forged NOTIFY named",
	 .steps = "start n:2/4611686018427387904 tick ask "
			  "snap:102:102: ask r:2/101 end D",
	 .want = "+2 snapshot page>0/1000 +2 D=0"},
	{.name = "D half full starts an advance",
	 .unconfirmed = 4,
	 .steps = "start n:1/100 ask n:2/101 ask",
	 .want = "+1 idle +2 snapshot"},
	{.name = "D full: notifications wait until the catch-up empties it",
	 .unconfirmed = 4,
	 .steps =
		 "start n:1/100 n:2/101 ask n:3/102 n:4/103 ? n:5/104 D snap:100:104: "
		 "ask r:1/100 r:2/101 r:3/102 r:4/103 end D ? tick ask "
		 "snap:100:106: ask r:5/104 end",
	 .want = "+1 +2 snapshot +3 +4 shut refused D=4 page>0/1000 D=0 open "
			 "snapshot page>0/1000 +5"},
	{.name = "a full queue stops notifications",
	 .pending = 2,
	 .steps = "start n:1/100d n:2/101 ? n:3/102 Q ask doc:1 done ? Q",
	 .want = "shut refused Q=2 docs:1 +1d +2 open Q=0"},
	{.name = "a page fits in the queue, and waits for room",
	 .pending = 3,
	 .steps = "start nopop tick ask n:1/120 n:2/121 "
			  "snap:100:110: ask r:3/102 end ask "
			  "? pop ask r:4/103 end ? D",
	 .want = "snapshot page>0/1 wait shut +1 +2 +3 page>3/3 +4 open D=2"},
	{.name = "an event waiting for its document holds back the ones behind it",
	 .steps = "start n:1/100 n:2/101d n:3/102 ask "
			  "n:4/103d doc:2 done ask doc:4 done",
	 .want = "+1 docs:2 +2d +3 docs:4 +4d"},
	{.name =
		 "documents load in batches, before anything else; a pruned row goes "
		 "without",
	 .docs = 2,
	 .steps = "start n:1/100d n:2/101d n:3/102d tick ask "
			  "doc:2 doc:1 done ask done ask",
	 .want = "docs:1,2 +1d +2d docs:3 +3 snapshot"},
	{.name = "a document row nobody waits for is ignored",
	 .steps = "start n:1/100d ask doc:7 doc:1 doc:1 done",
	 .want = "docs:1 stray stray +1d"},
	{.name = "after a re-LISTEN notifications wait for the catch-up",
	 .steps =
		 "start n:1/100 listen-lost listen ? ask snap:100:103: ? ask r:1/100 "
		 "r:2/101 r:3/102 end ? n:4/103",
	 .want = "+1 shut snapshot shut page>0/1000 +2 +3 open +4"},
	{.name = "a snapshot asked before the re-LISTEN does not end the hold",
	 .steps = "start tick ask listen-lost listen snap:100:101: "
			  "ask r:1/100 end ? ask "
			  "snap:100:103: ask r:2/101 r:3/102 end ?",
	 .want = "snapshot page>0/1000 +1 shut snapshot page>0/1000 +2 +3 open"},
	{.name = "pages continue after the last position, bad rows included",
	 .catchup = 2,
	 .steps =
		 "start tick ask snap:100:110: ask r:1/100 r:3/102 end ask r:4/103 "
		 "r:7/bad end ask end ask",
	 .want = "snapshot page>0/2 +1 +3 page>3/2 +4 page>7/2 idle"},
	{.name = "a catch-up cut by the query connection resumes where it stopped",
	 .catchup = 2,
	 .steps = "start tick ask snap:100:110: ask r:1/100 "
			  "r:2/101 end ask query-lost ask "
			  "r:3/102 end ask",
	 .want = "snapshot page>0/2 +1 +2 page>2/2 page>2/2 +3 idle"},
	{.name = "a row beyond the page's limit is read again by the next page",
	 .catchup = 1,
	 .steps = "start tick ask snap:100:110: ask r:1/100 "
			  "r:2/101 end ask r:2/101 end ask "
			  "end ask",
	 .want = "snapshot page>0/1 +1 page>1/1 +2 page>2/1 idle"},
	{.name = "a lost document load or snapshot is asked again",
	 .steps =
		 "start n:1/100d ask query-lost ask doc:1 done tick ask query-lost ask",
	 .want = "docs:1 docs:1 +1d snapshot snapshot"},
	{.name = "a snapshot that does not parse is asked again",
	 .steps = "listen ask snap:1:x ask snap:100:100: ?",
	 .want = "snapshot bad-snap snapshot open"},
	{.name = "the interval starts an advance",
	 .steps = "start ask tick ask",
	 .want = "idle snapshot"},
	{.name = "one query at a time",
	 .steps = "start n:1/100d ask ask tick ask doc:1 done ask",
	 .want = "docs:1 wait wait +1d snapshot"},
	{.name = "answers nobody asked for are ignored",
	 .steps = "start r:1/100 end doc:1 done snap:200:200: ask",
	 .want = "stray bad-snap idle"},
};

static void
test_scripts(void)
{
	for (size_t i = 0; i < sizeof(scripts) / sizeof(scripts[0]); i++)
	{
		const script *sc = &scripts[i];
		delivery_config cfg =
			config(sc->catchup, sc->docs, sc->pending, sc->unconfirmed);
		run r = {.d = delivery_new(&cfg)};
		char *copy = strdup(sc->steps);
		char *save = NULL;

		for (char *s = strtok_r(copy, " ", &save); s;
			 s = strtok_r(NULL, " ", &save))
			step(&r, s);
		r.out[r.len] = '\0';
		CHECK_MSG(!strcmp(r.out, sc->want), "%s:\n  got  %s\n  want %s",
				  sc->name, r.out, sc->want);
		free(copy);
		delivery_free(r.d);
	}
}

/* ---- details a script does not show --------------------------------- */

static delivery *
started(delivery_config cfg)
{
	delivery *d = delivery_new(&cfg);
	delivery_query q;

	delivery_listen_started(d);
	delivery_next_query(d, &q);
	delivery_snapshot_taken(d, "100:100:", 8, NULL, 0);
	return d;
}

static void
test_config(void)
{
	delivery_config cfg = config(0, 0, 0, 0);

	cfg.catchup_batch = 0;
	CHECK(delivery_new(&cfg) == NULL);
	cfg = config(0, 0, 0, 0);
	cfg.document_batch = 0;
	CHECK(delivery_new(&cfg) == NULL);
	cfg = config(0, 0, 0, 0);
	cfg.max_pending_events = 0;
	CHECK(delivery_new(&cfg) == NULL);
	cfg = config(0, 0, 0, 0);
	cfg.max_unconfirmed = 0;
	CHECK(delivery_new(&cfg) == NULL);
	cfg = config(0, 0, 0, 0);
	cfg.max_unconfirmed = (1u << 30) + 1;
	CHECK(delivery_new(&cfg) == NULL);
	delivery_free(NULL);
}

/* The page query names F and F' as they were taken. */
static void
test_page_query(void)
{
	delivery *d = started(config(0, 0, 0, 0));
	delivery_query q;
	char err[64] = "";

	CHECK_STR(delivery_frontier(d), "100:100:");
	delivery_interval_elapsed(d);
	CHECK_INT(delivery_next_query(d, &q), DELIVERY_SNAPSHOT);
	/* only len bytes count */
	CHECK_INT(
		delivery_snapshot_taken(d, "100:104:102xyz", 11, err, sizeof(err)), 0);
	CHECK_INT(delivery_next_query(d, &q), DELIVERY_PAGE);
	CHECK_STR(q.from, "100:100:");
	CHECK_STR(q.to, "100:104:102");
	CHECK_INT(q.after, 0);
	CHECK_INT(q.limit, 1000);
	delivery_page_done(d);
	CHECK_STR(delivery_frontier(d), "100:104:102");

	delivery_interval_elapsed(d);
	CHECK_INT(delivery_next_query(d, &q), DELIVERY_SNAPSHOT);
	CHECK_INT(delivery_snapshot_taken(d, "1:0:", 4, err, sizeof(err)), -1);
	CHECK(err[0] != '\0');
	CHECK_STR(delivery_frontier(d), "100:104:102");
	delivery_free(d);
}

/*
 * A truncated event is completed from its row; one whose row is gone keeps
 * its cut strings.  needs_document is asked once per queued event, never
 * for a truncated one or a duplicate.
 */
static void
test_documents(void)
{
	delivery *d = started(config(0, 0, 0, 0));
	delivery_query q;
	delivery_stats st;
	rt_event ev = make_event(1, 100, false, true);
	json_t *doc = json_pack("{s:s}", "title", "full");

	needs_calls = 0;
	CHECK_INT(delivery_notify(d, &ev), DELIVERY_QUEUED);
	CHECK(ev.dataset == NULL); /* it belongs to d now */
	ev = make_event(2, 101, false, true);
	CHECK_INT(delivery_notify(d, &ev), DELIVERY_QUEUED);
	ev = make_event(3, 102, true, false);
	CHECK_INT(delivery_notify(d, &ev), DELIVERY_QUEUED);
	ev = make_event(3, 102, true, false);
	CHECK_INT(delivery_notify(d, &ev), DELIVERY_DUPLICATE);
	CHECK_INT(needs_calls, 1);
	CHECK(!delivery_pop(d, &ev));

	CHECK_INT(delivery_next_query(d, &q), DELIVERY_DOCUMENTS);
	CHECK_INT(q.npositions, 3);
	json_incref(doc);
	CHECK(delivery_document(d, 1, "staging", "the-full-id", NULL, doc));
	CHECK(delivery_document(d, 3, "production", "d3", "doc",
							json_pack("{s:i}", "n", 3)));
	delivery_documents_done(d);

	CHECK(delivery_pop(d, &ev));
	CHECK_INT(ev.position, 1);
	CHECK(!ev.truncated);
	CHECK_STR(ev.dataset, "staging");
	CHECK_STR(ev.document_id, "the-full-id");
	CHECK(ev.document_type == NULL);
	CHECK(ev.document == doc);
	CHECK_INT(doc->refcount, 2);
	event_free(&ev);
	CHECK_INT(doc->refcount, 1);
	json_decref(doc);

	CHECK(delivery_pop(d, &ev));
	CHECK_INT(ev.position, 2);
	CHECK(ev.truncated);
	CHECK_STR(ev.document_id, "d2");
	CHECK(ev.document == NULL);
	event_free(&ev);

	CHECK(delivery_pop(d, &ev));
	CHECK_INT(ev.position, 3);
	CHECK(json_integer_value(json_object_get(ev.document, "n")) == 3);
	event_free(&ev);
	CHECK(!delivery_pop(d, &ev));

	delivery_get_stats(d, &st);
	CHECK_INT(st.delivered, 3);
	CHECK_INT(st.from_notify, 3);
	CHECK_INT(st.duplicates, 1);
	CHECK_INT(st.documents_loaded, 2);
	CHECK_INT(st.pending, 0);
	CHECK_INT(st.unconfirmed, 3);
	delivery_free(d);
}

/* Whatever is queued, loading or held is released with d. */
static void
test_free_with_events(void)
{
	delivery *d = started(config(2, 0, 0, 0));
	delivery_query q;
	rt_event ev = make_event(1, 100, true, false);
	delivery_stats st;

	delivery_notify(d, &ev);
	ev = make_event(2, 101, false, false);
	delivery_notify(d, &ev);
	CHECK_INT(delivery_next_query(d, &q), DELIVERY_DOCUMENTS);
	CHECK(delivery_document(d, 1, NULL, NULL, NULL, json_pack("[]")));
	delivery_interval_elapsed(d);
	delivery_get_stats(d, &st);
	CHECK_INT(st.pending, 2);
	CHECK_INT(st.from_catchup, 0);
	delivery_free(d);
}

/* ---- a simulated database ------------------------------------------- */

/*
 * Transactions take a txid and a position when they write and commit in
 * any order; the answers to delivery's queries are computed from them as
 * PostgreSQL would.  Notifications are lost at random, replayed, and all
 * lost with the LISTEN connection; both connections fail at random.  In the
 * end every change F0 does not see is delivered exactly once.
 */
enum
{
	SIM_TX = 600,
	SIM_NOTES = 4096
};

typedef struct sim
{
	delivery *d;
	uint64_t rng;
	struct
	{
		uint64_t txid;
		bool committed;
	} tx[SIM_TX]; /* tx[i] wrote position i + 1 */
	size_t ntx;
	int64_t notes[SIM_NOTES]; /* positions of notifications not read yet */
	size_t nnotes;
	bool listen_up, query_up, paused;
	delivery_query q; /* in flight when q.op is not IDLE/WAIT */
	char *f0;		  /* the first snapshot */
	unsigned delivered[SIM_TX + 1];
	int bad;
} sim;

static uint64_t
sim_rand(sim *s)
{
	s->rng ^= s->rng >> 12;
	s->rng ^= s->rng << 25;
	s->rng ^= s->rng >> 27;
	return s->rng * UINT64_C(2685821657736338717);
}

static bool
sim_open(const sim *s, size_t i)
{
	return !s->tx[i].committed;
}

/* pg_current_snapshot(): txids are 100 + i, handed out in order. */
static char *
sim_snapshot(const sim *s)
{
	size_t cap = 32 + s->ntx * 24, n;
	char *text = malloc(cap);
	uint64_t xmin = 100 + s->ntx;

	for (size_t i = 0; i < s->ntx; i++)
		if (sim_open(s, i))
		{
			xmin = s->tx[i].txid;
			break;
		}
	n = (size_t) snprintf(text, cap, "%llu:%llu:", (unsigned long long) xmin,
						  (unsigned long long) (100 + s->ntx));
	for (size_t i = 0, k = 0; i < s->ntx; i++)
		if (sim_open(s, i))
			n += (size_t) snprintf(text + n, cap - n, "%s%llu", k++ ? "," : "",
								   (unsigned long long) s->tx[i].txid);
	return text;
}

static snapshot
sim_parse(sim *s, const char *text)
{
	snapshot snap;

	if (snapshot_parse(text, strlen(text), &snap, NULL, 0) < 0)
		s->bad++;
	return snap;
}

static void
sim_take(sim *s)
{
	rt_event ev;

	while (!s->paused && delivery_pop(s->d, &ev))
	{
		if (ev.position < 1 || ev.position > SIM_TX ||
			(ev.position % 3 == 0 && ev.document == NULL))
			s->bad++;
		else
			s->delivered[ev.position]++;
		event_free(&ev);
	}
}

static rt_event
sim_event(const sim *s, int64_t position)
{
	return make_event(position, s->tx[position - 1].txid, position % 3 == 0,
					  false);
}

/* Answer the query in flight. */
static void
sim_answer(sim *s)
{
	delivery_query *q = &s->q;

	if (q->op == DELIVERY_SNAPSHOT)
	{
		char *text = sim_snapshot(s);

		if (delivery_snapshot_taken(s->d, text, strlen(text), NULL, 0) < 0)
			s->bad++;
		if (s->f0 == NULL)
			s->f0 = text;
		else
			free(text);
	}
	else if (q->op == DELIVERY_PAGE)
	{
		/* changes_between(from, to): committed in between, by position */
		snapshot from = sim_parse(s, q->from), to = sim_parse(s, q->to);
		unsigned rows = 0;

		for (size_t i = 0; i < s->ntx && rows < q->limit; i++)
		{
			rt_event ev;

			if ((int64_t) i + 1 <= q->after ||
				!snapshot_visible(&to, s->tx[i].txid) ||
				snapshot_visible(&from, s->tx[i].txid))
				continue;
			ev = sim_event(s, (int64_t) i + 1);
			delivery_page_row(s->d, (int64_t) i + 1, &ev);
			rows++;
			sim_take(s);
		}
		snapshot_free(&from);
		snapshot_free(&to);
		delivery_page_done(s->d);
	}
	else if (q->op == DELIVERY_DOCUMENTS)
	{
		for (size_t i = 0; i < q->npositions; i++)
			delivery_document(
				s->d, q->positions[i], NULL, NULL, NULL,
				json_pack("{s:I}", "p", (json_int_t) q->positions[i]));
		delivery_documents_done(s->d);
	}
	q->op = DELIVERY_IDLE;
	sim_take(s);
}

static void
sim_query(sim *s)
{
	if (!s->query_up)
		return;
	if (s->q.op == DELIVERY_IDLE || s->q.op == DELIVERY_WAIT)
		delivery_next_query(s->d, &s->q);
	else
		sim_answer(s);
}

static void
sim_notify(sim *s, int64_t position)
{
	if (s->listen_up && s->nnotes < SIM_NOTES)
		s->notes[s->nnotes++] = position;
}

static void
sim_read_notes(sim *s)
{
	size_t i = 0;

	while (s->listen_up && i < s->nnotes && delivery_wants_notifications(s->d))
	{
		rt_event ev = sim_event(s, s->notes[i++]);

		if (delivery_notify(s->d, &ev) == DELIVERY_REFUSED)
			s->bad++;
		sim_take(s);
	}
	memmove(s->notes, s->notes + i, (s->nnotes - i) * sizeof(s->notes[0]));
	s->nnotes -= i;
}

/* One random thing happens; an outage or a pause lasts ~20 steps. */
static void
sim_step(sim *s)
{
	uint64_t r = sim_rand(s) % 1000;
	size_t open = 0;

	for (size_t i = 0; i < s->ntx; i++)
		open += sim_open(s, i);
	if (!s->listen_up && sim_rand(s) % 20 == 0)
	{
		s->listen_up = true;
		delivery_listen_started(s->d);
	}
	if (!s->query_up && sim_rand(s) % 20 == 0)
		s->query_up = true;
	if (s->paused && sim_rand(s) % 20 == 0)
	{
		s->paused = false;
		sim_take(s);
	}
	/* notifications usually arrive before the next advance */
	if (sim_rand(s) % 4 != 0)
		sim_read_notes(s);
	if (r < 200 && s->ntx < SIM_TX && open < 8)
	{
		s->tx[s->ntx].txid = 100 + s->ntx;
		s->ntx++;
	}
	else if (r < 400 && open > 0)
	{
		size_t k = sim_rand(s) % open;

		for (size_t i = 0; i < s->ntx; i++)
			if (sim_open(s, i) && k-- == 0)
			{
				s->tx[i].committed = true;
				if (sim_rand(s) % 5 != 0) /* one in five is lost */
					sim_notify(s, (int64_t) i + 1);
				break;
			}
	}
	else if (r < 600)
		sim_read_notes(s);
	else if (r < 880)
		sim_query(s);
	else if (r < 900)
		delivery_interval_elapsed(s->d);
	else if (r < 920 && s->ntx > 0)
	{
		size_t i = sim_rand(s) % s->ntx;

		if (s->tx[i].committed) /* a replayed notification */
			sim_notify(s, (int64_t) i + 1);
	}
	else if (r < 924 && s->listen_up)
	{
		s->listen_up = false;
		s->nnotes = 0;
		delivery_listen_lost(s->d);
	}
	else if (r < 928 && s->query_up)
	{
		s->query_up = false;
		s->q.op = DELIVERY_IDLE;
		delivery_query_lost(s->d);
	}
	else if (r < 936)
		s->paused = true;
}

static void
test_simulation(void)
{
	for (uint64_t seed = 1; seed <= 40; seed++)
	{
		/* odd seeds: tiny bounds, so that everything waits for room */
		delivery_config cfg = config(1 + seed % 4, 1 + seed % 3,
									 seed % 2 ? 2 + seed % 5 : 64, 16);
		sim *s = calloc(1, sizeof(*s));
		unsigned missing = 0, twice = 0;
		delivery_stats st;
		snapshot f0;

		s->rng = seed * UINT64_C(0x9e3779b97f4a7c15);
		s->d = delivery_new(&cfg);
		s->query_up = true;
		delivery_listen_started(s->d);
		s->listen_up = true;
		for (int i = 0; i < 6000; i++)
			sim_step(s);

		/* commit everything, reconnect, and let it settle */
		for (size_t i = 0; i < s->ntx; i++)
			s->tx[i].committed = true;
		if (!s->listen_up)
			delivery_listen_started(s->d);
		s->listen_up = true;
		s->query_up = true;
		s->paused = false;
		sim_take(s);
		/* two advances: the first may have been asked before the LISTEN */
		for (int advance = 0; advance < 3; advance++)
		{
			delivery_interval_elapsed(s->d);
			for (int round = 0; round < 100000; round++)
			{
				sim_read_notes(s);
				if (s->q.op != DELIVERY_IDLE && s->q.op != DELIVERY_WAIT)
					sim_answer(s);
				else if (delivery_next_query(s->d, &s->q) == DELIVERY_IDLE &&
						 s->nnotes == 0)
					break;
			}
		}
		CHECK_MSG(s->f0 != NULL, "seed %llu: no F", (unsigned long long) seed);
		f0 = sim_parse(s, s->f0 ? s->f0 : "1:1:");
		for (size_t i = 0; i < s->ntx; i++)
		{
			unsigned want = snapshot_visible(&f0, s->tx[i].txid) ? 0 : 1;

			missing += s->delivered[i + 1] < want;
			twice += s->delivered[i + 1] > want;
		}
		delivery_get_stats(s->d, &st);
		CHECK_MSG(missing == 0 && twice == 0 && s->bad == 0 &&
					  st.pending == 0 && st.unconfirmed == 0,
				  "seed %llu: %u missing, %u too often, %d bad, %zu pending, "
				  "%zu in D",
				  (unsigned long long) seed, missing, twice, s->bad, st.pending,
				  st.unconfirmed);
		if (getenv("SIM_VERBOSE"))
			fprintf(stderr,
					"seed %llu: %zu tx, %llu delivered, %llu from NOTIFY, "
					"%llu from catch-up, %llu duplicates\n",
					(unsigned long long) seed, s->ntx, st.delivered,
					st.from_notify, st.from_catchup, st.duplicates);
		snapshot_free(&f0);
		free(s->f0);
		delivery_free(s->d);
		free(s);
	}
}

int
main(void)
{
	test_scripts();
	test_config();
	test_page_query();
	test_documents();
	test_free_with_events();
	test_simulation();
	return unit_summary();
}
