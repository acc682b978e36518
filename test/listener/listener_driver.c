/*
 * listener-driver: runs pg_listener against a real PostgreSQL and prints
 * every delivered event as one JSON line on stdout, for run.sh beside it.
 *
 *   listener-driver [--documents] [--advance-ms N] [--catchup-batch N]
 *                   [--document-batch N] [--max-pending N]
 *                   [--reconnect-max-ms N] [--channel NAME] CONNINFO
 *
 * --documents (or LISTENER_NEEDS_DOCUMENT=1 in the environment) makes
 * needs_document answer true, so every event carries its document.  Log
 * lines go to stderr as "state: connected=0|1 DETAIL".  SIGINT or SIGTERM
 * stops the listener cleanly and prints its counters to stderr.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "pg_listener.h"

static bool want_documents;
static pg_listener *listener;
static uv_signal_t sigint, sigterm;

static bool
needs_document(void *arg, const rt_event *ev)
{
	return want_documents;
}

static void
on_event(void *arg, rt_event *ev)
{
	json_t *o = json_object();
	char *s;

	json_object_set_new(o, "position", json_integer(ev->position));
	json_object_set_new(o, "txid", json_integer((json_int_t) ev->txid));
	json_object_set_new(o, "operation", json_string(ev->operation));
	json_object_set_new(o, "documentId", json_string(ev->document_id));
	json_object_set_new(o, "documentType",
						ev->document_type ? json_string(ev->document_type)
										  : json_null());
	json_object_set_new(o, "dataset", json_string(ev->dataset));
	json_object_set_new(o, "ts", json_string(ev->ts));
	json_object_set_new(o, "truncated", json_boolean(ev->truncated));
	json_object_set(o, "document", ev->document ? ev->document : json_null());
	s = o ? json_dumps(o, JSON_COMPACT) : NULL;
	if (s == NULL)
	{
		fprintf(stderr, "listener-driver: cannot print event %lld\n",
				(long long) ev->position);
		exit(2);
	}
	printf("%s\n", s);
	fflush(stdout);
	free(s);
	json_decref(o);
}

static void
on_state(void *arg, bool connected, const char *detail)
{
	fprintf(stderr, "state: connected=%d %s\n", connected ? 1 : 0, detail);
}

static void
on_closed(void *arg)
{
	uv_close((uv_handle_t *) &sigint, NULL);
	uv_close((uv_handle_t *) &sigterm, NULL);
}

static void
on_signal(uv_signal_t *h, int signum)
{
	pg_listener_stats st;

	if (listener == NULL)
		return;
	pg_listener_get_stats(listener, &st);
	fprintf(stderr,
			"stats: delivered=%llu from_notify=%llu from_catchup=%llu "
			"duplicates=%llu bad_payloads=%llu documents_loaded=%llu "
			"reconnects=%llu pending=%zu unconfirmed=%zu\n",
			st.delivered, st.from_notify, st.from_catchup, st.duplicates,
			st.bad_payloads, st.documents_loaded, st.reconnects, st.pending,
			st.unconfirmed);
	pg_listener_stop(listener, on_closed, NULL);
	listener = NULL;
}

static unsigned
number(const char *opt, const char *s)
{
	char *end;
	unsigned long v = strtoul(s ? s : "", &end, 10);

	if (s == NULL || *s == '\0' || *end != '\0' || v > 0xffffffffUL)
	{
		fprintf(stderr, "listener-driver: %s needs a number\n", opt);
		exit(2);
	}
	return (unsigned) v;
}

int
main(int argc, char **argv)
{
	pg_listener_config cfg;
	pg_listener_callbacks cbs = {needs_document, on_event, on_state};
	uv_loop_t *loop = uv_default_loop();
	const char *env = getenv("LISTENER_NEEDS_DOCUMENT");
	char err[256];
	int i;

	pg_listener_config_init(&cfg);
	want_documents = env != NULL && !strcmp(env, "1");
	for (i = 1; i < argc - 1; i++)
	{
		if (!strcmp(argv[i], "--documents"))
			want_documents = true;
		else if (!strcmp(argv[i], "--advance-ms"))
			cfg.advance_interval_ms = number(argv[i], argv[i + 1]), i++;
		else if (!strcmp(argv[i], "--catchup-batch"))
			cfg.catchup_batch = number(argv[i], argv[i + 1]), i++;
		else if (!strcmp(argv[i], "--document-batch"))
			cfg.document_batch = number(argv[i], argv[i + 1]), i++;
		else if (!strcmp(argv[i], "--max-pending"))
			cfg.max_pending_events = number(argv[i], argv[i + 1]), i++;
		else if (!strcmp(argv[i], "--reconnect-max-ms"))
			cfg.reconnect_max_ms = number(argv[i], argv[i + 1]), i++;
		else if (!strcmp(argv[i], "--channel") && i + 2 < argc)
			cfg.channel = argv[++i];
		else
			break;
	}
	if (i != argc - 1)
	{
		fprintf(stderr, "usage: listener-driver [--documents] [--advance-ms N] "
						"[--catchup-batch N] [--document-batch N] "
						"[--max-pending N] [--reconnect-max-ms N] "
						"[--channel NAME] CONNINFO\n");
		return 2;
	}
	cfg.conninfo = argv[i];

	listener = pg_listener_start(loop, &cfg, &cbs, NULL, err, sizeof(err));
	if (listener == NULL)
	{
		fprintf(stderr, "listener-driver: %s\n", err);
		return 2;
	}
	uv_signal_init(loop, &sigint);
	uv_signal_init(loop, &sigterm);
	uv_signal_start(&sigint, on_signal, SIGINT);
	uv_signal_start(&sigterm, on_signal, SIGTERM);
	uv_run(loop, UV_RUN_DEFAULT);
	if (uv_loop_close(loop) != 0)
	{
		fprintf(stderr, "listener-driver: handles left open on the loop\n");
		return 1;
	}
	return 0;
}
