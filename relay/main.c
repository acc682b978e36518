/*
 * cellcms-relay: PostgreSQL change events to WebSocket clients.
 *
 * main wires the parts on one libuv loop: pg_listener delivers change
 * events in order to the hub, which matches them against subscriptions and
 * presence and queues messages; ws_server serves the clients.  Signals are
 * loop events: SIGTERM and SIGINT close every client with 1001 and exit 0.
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <time.h>

#include <uv.h>

#include "auth.h"
#include "config.h"
#include "event.h"
#include "groq.h"
#include "hub.h"
#include "log.h"
#include "pg_listener.h"
#include "protocol.h"
#include "ws_server.h"

extern char **environ;

/* --log-level is handed to log_set_level() as it is. */
_Static_assert((int) CONFIG_LOG_ERROR == (int) LOG_ERROR &&
				   (int) CONFIG_LOG_WARN == (int) LOG_WARN &&
				   (int) CONFIG_LOG_INFO == (int) LOG_INFO &&
				   (int) CONFIG_LOG_DEBUG == (int) LOG_DEBUG,
			   "config_log_level and log_level agree");

/* File descriptors kept back from clients: PostgreSQL, logs, the loop. */
#define FD_RESERVE 64

typedef struct relay
{
	uv_loop_t loop;
	uv_signal_t sigterm, sigint, sighup;
	uv_timer_t tick;
	relay_config cfg;
	auth_config auth;
	hub *hub;
	ws_server *server;
	pg_listener *listener;
	bool database_connected;
	bool stopping;
} relay;

static int
set_connection_limit(relay_config *cfg)
{
	struct rlimit rl;
	rlim_t available, reserved;

	/* Raising the soft limit to the hard one is always allowed. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max)
	{
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		rl.rlim_cur = 1024;
	/* refused connections awaiting their close hold descriptors too */
	reserved = (rlim_t) FD_RESERVE + cfg->max_refused_connections;
	available = rl.rlim_cur > reserved ? rl.rlim_cur - reserved : 0;
	if (cfg->max_connections == 0)
		cfg->max_connections = (unsigned) (available > CONFIG_MAX_CONNECTIONS
											   ? CONFIG_MAX_CONNECTIONS
											   : available);
	else if (cfg->max_connections > available)
	{
		fprintf(stderr,
				"cellcms-relay: --max-connections %u exceeds what the file "
				"descriptor limit allows (%llu = %llu - %d reserved - "
				"--max-refused-connections %u)\n",
				cfg->max_connections, (unsigned long long) available,
				(unsigned long long) rl.rlim_cur, FD_RESERVE,
				cfg->max_refused_connections);
		return -1;
	}
	if (cfg->max_connections == 0)
	{
		fprintf(stderr,
				"cellcms-relay: the file descriptor limit (%llu) "
				"leaves no room for connections\n",
				(unsigned long long) rl.rlim_cur);
		return -1;
	}
	return 0;
}

static int
setup_auth(relay *r)
{
	char err[256];
	const relay_config *cfg = &r->cfg;
	int rc;

	auth_config_init(&r->auth);
	r->auth.leeway = (long) cfg->jwt_leeway;
	r->auth.require_exp = cfg->jwt_require_exp != 0;
	if (cfg->jwt_secret)
		rc = auth_config_set_key(&r->auth, "HS256", cfg->jwt_secret,
								 strlen(cfg->jwt_secret), err, sizeof(err));
	else
		rc = auth_config_load_key(&r->auth, config_jwt_alg_name(cfg->jwt_alg),
								  cfg->jwt_public_key, err, sizeof(err));
	if (rc != 0)
	{
		fprintf(stderr, "cellcms-relay: %s\n", err);
		return -1;
	}
	if (auth_config_set_issuer(&r->auth, cfg->jwt_issuer) != 0 ||
		auth_config_set_audience(&r->auth, cfg->jwt_audience) != 0)
	{
		fprintf(stderr, "cellcms-relay: out of memory\n");
		return -1;
	}
	return 0;
}

static bool
listener_needs_document(void *arg, const rt_event *ev)
{
	relay *r = arg;

	return hub_needs_document(r->hub, ev);
}

static void
listener_on_event(void *arg, rt_event *ev)
{
	relay *r = arg;

	hub_dispatch(r->hub, ev);
}

static void
listener_on_state(void *arg, bool connected, const char *detail)
{
	relay *r = arg;

	if (connected != r->database_connected)
		log_msg(connected ? LOG_INFO : LOG_WARN, "database %s: %s",
				connected ? "connected" : "disconnected", detail);
	else
		log_msg(LOG_DEBUG, "database: %s", detail);
	r->database_connected = connected;
}

static const pg_listener_callbacks listener_callbacks = {
	listener_needs_document,
	listener_on_event,
	listener_on_state,
};

static void
health(void *arg, char *buf, size_t len)
{
	relay *r = arg;

	snprintf(buf, len,
			 "{\"status\":\"ok\",\"database\":\"%s\",\"connections\":%zu}",
			 r->database_connected ? "connected" : "disconnected",
			 hub_client_count(r->hub));
}

static void
tick(uv_timer_t *t)
{
	relay *r = t->data;

	hub_expire(r->hub, time(NULL));
}

static void
close_handle(uv_handle_t *h)
{
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

static void
close_any_handle(uv_handle_t *h, void *arg)
{
	close_handle(h);
}

/* Clients are gone: release the rest; the loop ends when handles close. */
static void
clients_closed(void *arg)
{
	relay *r = arg;

	ws_server_stop(r->server);
	pg_listener_stop(r->listener, NULL, NULL);
	r->listener = NULL;
	close_handle((uv_handle_t *) &r->tick);
	close_handle((uv_handle_t *) &r->sigterm);
	close_handle((uv_handle_t *) &r->sigint);
	close_handle((uv_handle_t *) &r->sighup);
}

static void
on_signal(uv_signal_t *s, int signum)
{
	relay *r = s->data;

	/*
	 * Settings come from the command line and the environment, which a
	 * running process cannot re-read, and logs go to stderr: a hangup (a
	 * closed terminal, a reload from a service manager) must not kill the
	 * relay.
	 */
	if (signum == SIGHUP)
	{
		log_msg(LOG_INFO, "SIGHUP: nothing to reload; still running");
		return;
	}
	if (r->stopping)
		return;
	r->stopping = true;
	log_msg(LOG_INFO, "%s: closing %zu clients",
			signum == SIGTERM ? "SIGTERM" : "SIGINT", hub_client_count(r->hub));
	ws_server_shutdown(r->server, clients_closed, r);
}

/*
 * The startup line: where the relay listens and every setting (secrets
 * only as "(set)"), so that a log shows what the relay ran with.
 */
static void
log_started(const relay *r)
{
	char *settings = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&settings, &len);

	if (f)
	{
		config_print(f, &r->cfg, ", ");
		fclose(f);
	}
	log_msg(LOG_INFO, "cellcms-relay %s listening on ws://%s:%u/ws; %s",
			RELAY_VERSION, r->cfg.host, r->cfg.port,
			settings ? settings : "(settings: out of memory)");
	free(settings);
}

static int
start(relay *r)
{
	uint8_t seed[32];
	char err[256];
	hub_config hcfg;
	ws_server_config wcfg;
	pg_listener_config lcfg;

	if (getrandom(seed, sizeof(seed), 0) != sizeof(seed))
	{
		log_msg(LOG_ERROR, "getrandom: %s", strerror(errno));
		return -1;
	}

	memset(&hcfg, 0, sizeof(hcfg));
	protocol_limits_default(&hcfg.protocol);
	hcfg.protocol.max_query = r->cfg.max_query_bytes;
	hcfg.groq = groq_limits_default();
	hcfg.groq.max_query_len = r->cfg.max_query_bytes;
	hcfg.max_queue_bytes = r->cfg.max_queue_bytes;
	hcfg.max_subscriptions = r->cfg.max_subscriptions;
	hcfg.max_presence_documents = r->cfg.max_presence_documents;
	r->hub = hub_new(&hcfg, &ws_server_sink, seed);
	explicit_bzero(seed, sizeof(seed));
	if (!r->hub)
	{
		log_msg(LOG_ERROR, "out of memory");
		return -1;
	}

	memset(&wcfg, 0, sizeof(wcfg));
	wcfg.host = r->cfg.host;
	wcfg.port = (int) r->cfg.port;
	wcfg.max_frame_bytes = r->cfg.max_frame_bytes;
	wcfg.max_connections = r->cfg.max_connections;
	wcfg.max_refused_connections = r->cfg.max_refused_connections;
	wcfg.ping_interval = r->cfg.ping_interval;
	wcfg.ping_timeout = r->cfg.ping_timeout;
	wcfg.default_dataset = "production";
	wcfg.health = health;
	wcfg.health_arg = r;
	r->server = ws_server_start(&r->loop, &wcfg, r->hub, &r->auth);
	if (!r->server)
		return -1;

	/*
	 * pg_listener's defaults stand only for what is not a relay setting
	 * (batch sizes, backoff, bounds); config.c's table owns the rest.
	 */
	pg_listener_config_init(&lcfg);
	lcfg.conninfo = r->cfg.database_url;
	lcfg.channel = r->cfg.channel;
	lcfg.advance_interval_ms = r->cfg.advance_interval_ms;
	lcfg.prune_interval_s = r->cfg.prune_interval;
	r->listener = pg_listener_start(&r->loop, &lcfg, &listener_callbacks, r,
									err, sizeof(err));
	if (!r->listener)
	{
		log_msg(LOG_ERROR, "%s", err);
		return -1;
	}

	uv_timer_init(&r->loop, &r->tick);
	r->tick.data = r;
	uv_timer_start(&r->tick, tick, 1000, 1000);
	uv_signal_init(&r->loop, &r->sigterm);
	uv_signal_init(&r->loop, &r->sigint);
	uv_signal_init(&r->loop, &r->sighup);
	r->sigterm.data = r->sigint.data = r->sighup.data = r;
	uv_signal_start(&r->sigterm, on_signal, SIGTERM);
	uv_signal_start(&r->sigint, on_signal, SIGINT);
	uv_signal_start(&r->sighup, on_signal, SIGHUP);
	log_started(r);
	return 0;
}

int
main(int argc, char **argv)
{
	static relay r;
	char err[512];
	int status = EXIT_SUCCESS;

	switch (config_parse(argc, argv, environ, &r.cfg, err, sizeof(err)))
	{
		case CONFIG_OK:
			break;
		case CONFIG_HELP:
			config_help(stdout, argv[0]);
			return EXIT_SUCCESS;
		case CONFIG_VERSION:
			printf("cellcms-relay %s\n", RELAY_VERSION);
			return EXIT_SUCCESS;
		case CONFIG_ERROR:
			fprintf(stderr, "cellcms-relay: %s\n", err);
			return CONFIG_EXIT_STATUS;
	}
	log_set_level((log_level) r.cfg.log_level);
	if (set_connection_limit(&r.cfg) != 0 || setup_auth(&r) != 0)
	{
		auth_config_free(&r.auth);
		return CONFIG_EXIT_STATUS;
	}
	/* A client vanishing mid-write must be an error code, not a signal. */
	signal(SIGPIPE, SIG_IGN);

	uv_loop_init(&r.loop);
	if (start(&r) != 0)
	{
		status = EXIT_FAILURE;
		pg_listener_stop(r.listener, NULL, NULL);
		r.listener = NULL;
	}
	else
		uv_run(&r.loop, UV_RUN_DEFAULT);

	/* Let every handle finish closing before the loop goes away. */
	uv_walk(&r.loop, close_any_handle, NULL);
	uv_run(&r.loop, UV_RUN_DEFAULT);
	ws_server_free(r.server);
	if (uv_loop_close(&r.loop) != 0)
		log_msg(LOG_WARN, "event loop closed with handles still open");
	hub_free(r.hub);
	auth_config_free(&r.auth);
	if (status == EXIT_SUCCESS)
		log_msg(LOG_INFO, "stopped");
	return status;
}
