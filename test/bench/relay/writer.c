/*
 * bench-writer: commits changes to a watched table at a fixed rate.
 *
 *   bench-writer --url URL --rate N --duration S [--type TEMPLATE]
 *                [--types K] [--slot V]
 *
 * Change i is one INSERT, in its own transaction (autocommit), of a row of
 * type TEMPLATE with %d replaced by i mod K (default "post") and data
 * {"slot": V, "n": i}.  Commits are paced on an absolute schedule (i / N
 * seconds after the start); a writer that falls behind does not sleep until
 * it has caught up, and reports how far behind it got.  Prints
 *
 *   written=COUNT span_s=S rate=R lag_max_ms=L
 *
 * and exits non-zero when a statement fails.
 */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
usage(void)
{
	fprintf(stderr, "usage: bench-writer --url URL --rate N --duration S "
					"[--type TEMPLATE] [--types K] [--slot V] [--table T]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"url", required_argument, NULL, 'u'},
		{"rate", required_argument, NULL, 'r'},
		{"duration", required_argument, NULL, 'd'},
		{"type", required_argument, NULL, 't'},
		{"types", required_argument, NULL, 'k'},
		{"slot", required_argument, NULL, 's'},
		{"table", required_argument, NULL, 'T'},
		{NULL, 0, NULL, 0},
	};
	const char *url = NULL, *type_tmpl = "post", *table = "documents";
	double rate = 0, duration = 0, start, lag_max = 0, end;
	long types = 1, slot = 0;
	long long total, i;
	char sql[256];
	PGconn *pg;
	PGresult *res;
	int ch;

	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1)
		switch (ch)
		{
			case 'u':
				url = optarg;
				break;
			case 'r':
				rate = atof(optarg);
				break;
			case 'd':
				duration = atof(optarg);
				break;
			case 't':
				type_tmpl = optarg;
				break;
			case 'k':
				types = atol(optarg);
				break;
			case 's':
				slot = atol(optarg);
				break;
			case 'T':
				table = optarg;
				break;
			default:
				usage();
		}
	if (!url || optind != argc || rate <= 0 || duration <= 0 || types < 1 ||
		strlen(type_tmpl) > 64 || strlen(table) > 64)
		usage();

	pg = PQconnectdb(url);
	if (PQstatus(pg) != CONNECTION_OK)
	{
		fprintf(stderr, "bench-writer: %s", PQerrorMessage(pg));
		return 1;
	}
	snprintf(sql, sizeof(sql),
			 "INSERT INTO %s (type, data) VALUES ($1, "
			 "jsonb_build_object('slot', $2::int, 'n', $3::bigint))",
			 table);
	res = PQprepare(pg, "ins", sql, 3, NULL);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
	{
		fprintf(stderr, "bench-writer: %s", PQerrorMessage(pg));
		return 1;
	}
	PQclear(res);

	total = (long long) (rate * duration + 0.5);
	start = now_s();
	for (i = 0; i < total; i++)
	{
		double due = start + i / rate, now = now_s();
		char type[96], slotbuf[24], nbuf[24];
		const char *params[3] = {type, slotbuf, nbuf};
		const char *pct = strstr(type_tmpl, "%d");

		if (now < due)
		{
			struct timespec ts;
			double wait = due - now;

			ts.tv_sec = (time_t) wait;
			ts.tv_nsec = (long) ((wait - (double) ts.tv_sec) * 1e9);
			nanosleep(&ts, NULL);
		}
		else if (now - due > lag_max)
			lag_max = now - due;
		if (pct)
			snprintf(type, sizeof(type), "%.*s%ld%s", (int) (pct - type_tmpl),
					 type_tmpl, (long) (i % types), pct + 2);
		else
			snprintf(type, sizeof(type), "%s", type_tmpl);
		snprintf(slotbuf, sizeof(slotbuf), "%ld", slot);
		snprintf(nbuf, sizeof(nbuf), "%lld", i);
		res = PQexecPrepared(pg, "ins", 3, params, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
		{
			fprintf(stderr, "bench-writer: change %lld: %s", i,
					PQerrorMessage(pg));
			PQclear(res);
			PQfinish(pg);
			return 1;
		}
		PQclear(res);
	}
	end = now_s();
	printf("written=%lld span_s=%.3f rate=%.1f lag_max_ms=%.1f\n", total,
		   end - start, total / (end - start), lag_max * 1000);
	PQfinish(pg);
	return 0;
}
