/*-------------------------------------------------------------------------
 *
 * cellcms_rt.c
 *	  Change log and NOTIFY for CMS document tables.
 *
 * cellcms_rt.watch() puts two triggers on a documents table: an AFTER ROW
 * trigger (cellcms_rt_on_change) that writes each change to the change log
 * cellcms_rt.changes and sends one NOTIFY per change, and a BEFORE TRUNCATE
 * trigger that refuses TRUNCATE, which would otherwise empty the table
 * without telling anybody.
 *
 * The files, by concern:
 *	  cellcms_rt.c		settings and module initialization
 *	  admin.c			watch(), unwatch(), prune()
 *	  watch_config.c	the row trigger's configuration, cached per backend
 *	  trigger.c			what a row change is: create, update, delete, ...
 *	  document.c		the row as a JSON document
 *	  change_log.c		writing cellcms_rt.changes
 *	  payload.c			the NOTIFY payload
 *
 * IDENTIFICATION
 *	  extension/cellcms_rt.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "cellcms_rt.h"
#include "utils/guc.h"
#include "utils/inval.h"

PG_MODULE_MAGIC;

char *channel_setting = NULL;
int retention_setting = 7 * SECS_PER_DAY;

void _PG_init(void);

static bool
check_channel(char **newval, void **extra, GucSource source)
{
	if (**newval == '\0')
	{
		GUC_check_errdetail("The channel name must not be empty.");
		return false;
	}
	if (strlen(*newval) >= NAMEDATALEN)
	{
		GUC_check_errdetail("The channel name must be shorter than %d bytes.",
							NAMEDATALEN);
		return false;
	}
	return true;
}

/*
 * One callback for both caches: a backend has few relcache callback slots
 * (MAX_RELCACHE_CALLBACKS), shared with every other loaded module.
 */
static void
invalidate_relation(Datum arg, Oid relid)
{
	forget_change_log(relid);
	forget_watch_configs(relid);
}

void
_PG_init(void)
{
	DefineCustomStringVariable("cellcms_rt.channel",
							   "NOTIFY channel of cellcms_rt's change events.",
							   NULL, &channel_setting, "cellcms_rt", PGC_SUSET,
							   0, check_channel, NULL, NULL);
	DefineCustomIntVariable(
		"cellcms_rt.retention",
		"Age of the change log entries cellcms_rt.prune() removes by default.",
		NULL, &retention_setting, 7 * SECS_PER_DAY, 1, INT_MAX, PGC_SUSET,
		GUC_UNIT_S, NULL, NULL, NULL);
	MarkGUCPrefixReserved("cellcms_rt");

	init_watch_cache();
	CacheRegisterRelcacheCallback(invalidate_relation, (Datum) 0);
	init_change_log();
}
