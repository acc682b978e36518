/*-------------------------------------------------------------------------
 *
 * admin.c
 *	  The SQL-callable administration functions: watch(), unwatch(),
 *	  prune().
 *
 * IDENTIFICATION
 *	  extension/admin.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "cellcms_rt.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

/* Rows prune() deletes per statement. */
#define PRUNE_BATCH 10000

#define ROW_TRIGGER_NAME	  "cellcms_rt_changes"
#define TRUNCATE_TRIGGER_NAME "cellcms_rt_truncate"

PG_FUNCTION_INFO_V1(cellcms_rt_watch);
PG_FUNCTION_INFO_V1(cellcms_rt_unwatch);
PG_FUNCTION_INFO_V1(cellcms_rt_prune);

static char *
qualified_name(Relation rel)
{
	return quote_qualified_identifier(
		get_namespace_name(RelationGetNamespace(rel)),
		RelationGetRelationName(rel));
}

static void
spi_exec(const char *sql, int nargs, Oid *types, Datum *values,
		 const char *nulls, int expected)
{
	int ret = SPI_execute_with_args(sql, nargs, types, values, nulls, false, 0);

	if (ret != expected)
		elog(ERROR, "SPI_execute_with_args failed: %s (%s)",
			 SPI_result_code_string(ret), sql);
}

static char *
trigger_arg(const char *s)
{
	return quote_literal_cstr(s != NULL ? s : "");
}

/*
 * watch(relation, id_column, type_column, dataset_column, data_column,
 *		 published_column, dataset)
 *
 * NULL data_column or published_column: the table has none.  A non-NULL
 * dataset fixes the dataset of every row; the table then has no dataset
 * column and dataset_column must be left at its default (or NULL).
 */
Datum
cellcms_rt_watch(PG_FUNCTION_ARGS)
{
	const char *name[WC_COUNT];
	AttrNumber att[WC_COUNT];
	const char *fixed;
	Oid relid;
	Relation rel;
	char *qualified;
	StringInfoData sql;
	Oid types[WC_COUNT + 2];
	Datum values[WC_COUNT + 2];
	char nulls[WC_COUNT + 2];

	if (PG_ARGISNULL(0))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						errmsg("relation must not be NULL")));
	relid = PG_GETARG_OID(0);
	for (int c = 0; c < WC_COUNT; c++)
		name[c] = PG_ARGISNULL(c + 1) ? NULL : NameStr(*PG_GETARG_NAME(c + 1));
	fixed = PG_ARGISNULL(6) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(6));

	for (int c = WC_ID; c <= WC_TYPE; c++)
	{
		if (name[c] == NULL)
			ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
							errmsg("%s must not be NULL", watch_param[c])));
	}
	if (fixed != NULL)
	{
		if (fixed[0] == '\0')
			ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							errmsg("dataset must not be empty")));
		if (name[WC_DATASET] != NULL &&
			strcmp(name[WC_DATASET], "dataset") != 0)
			ereport(
				ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("dataset_column and dataset cannot both be given"),
				 errdetail(
					 "dataset => fixes the dataset of a table that has no dataset column.")));
		name[WC_DATASET] = NULL;
	}
	else if (name[WC_DATASET] == NULL)
		ereport(
			ERROR,
			(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
			 errmsg("a dataset column or a fixed dataset is required"),
			 errhint(
				 "Pass dataset_column => the column that holds the dataset, or dataset => a dataset name for every row.")));

	/* the lock CREATE TRIGGER takes, held until the end of the transaction */
	rel = table_open(relid, ShareRowExclusiveLock);
	if (rel->rd_rel->relkind != RELKIND_RELATION)
		ereport(
			ERROR,
			(errcode(ERRCODE_WRONG_OBJECT_TYPE),
			 errmsg("\"%s\" is not a table", RelationGetRelationName(rel)),
			 errdetail(
				 "cellcms_rt watches ordinary tables only; partitioned tables, views and foreign tables are not supported.")));
	if (RelationGetNamespace(rel) == get_namespace_oid("cellcms_rt", false))
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("cellcms_rt cannot watch its own table \"%s\"",
							   RelationGetRelationName(rel))));
	resolve_watch_columns(rel, name, true, att);
	qualified = qualified_name(rel);
	table_close(rel, NoLock);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	types[0] = REGCLASSOID;
	values[0] = ObjectIdGetDatum(relid);
	nulls[0] = ' ';
	for (int c = 0; c < WC_COUNT; c++)
	{
		Name n = palloc0(NAMEDATALEN);

		types[c + 1] = NAMEOID;
		nulls[c + 1] = name[c] != NULL ? ' ' : 'n';
		if (name[c] != NULL)
			namestrcpy(n, name[c]);
		values[c + 1] = NameGetDatum(n);
	}
	types[WC_COUNT + 1] = TEXTOID;
	nulls[WC_COUNT + 1] = fixed != NULL ? ' ' : 'n';
	values[WC_COUNT + 1] =
		fixed != NULL ? CStringGetTextDatum(fixed) : (Datum) 0;
	spi_exec("INSERT INTO cellcms_rt.watched_tables AS w (table_name,"
			 " id_column, type_column, dataset_column, data_column,"
			 " published_column, dataset)"
			 " VALUES ($1, $2, $3, $4, $5, $6, $7)"
			 " ON CONFLICT (table_name) DO UPDATE SET"
			 " id_column = excluded.id_column,"
			 " type_column = excluded.type_column,"
			 " dataset_column = excluded.dataset_column,"
			 " data_column = excluded.data_column,"
			 " published_column = excluded.published_column,"
			 " dataset = excluded.dataset",
			 WC_COUNT + 2, types, values, nulls, SPI_OK_INSERT);

	initStringInfo(&sql);
	appendStringInfo(
		&sql,
		"CREATE OR REPLACE TRIGGER " ROW_TRIGGER_NAME
		" AFTER INSERT OR UPDATE OR DELETE ON %s FOR EACH ROW"
		" EXECUTE FUNCTION cellcms_rt.on_change(%s, %s, %s, %s, %s, %s)",
		qualified, trigger_arg(name[WC_ID]), trigger_arg(name[WC_TYPE]),
		trigger_arg(name[WC_DATASET]), trigger_arg(name[WC_DATA]),
		trigger_arg(name[WC_PUBLISHED]), trigger_arg(fixed));
	spi_exec(sql.data, 0, NULL, NULL, NULL, SPI_OK_UTILITY);
	resetStringInfo(&sql);
	appendStringInfo(&sql,
					 "CREATE OR REPLACE TRIGGER " TRUNCATE_TRIGGER_NAME
					 " BEFORE TRUNCATE ON %s FOR EACH STATEMENT"
					 " EXECUTE FUNCTION cellcms_rt.refuse_truncate()",
					 qualified);
	spi_exec(sql.data, 0, NULL, NULL, NULL, SPI_OK_UTILITY);

	SPI_finish();
	PG_RETURN_VOID();
}

/* Returns whether the relation was watched. */
Datum
cellcms_rt_unwatch(PG_FUNCTION_ARGS)
{
	static const char *const triggers[] = {ROW_TRIGGER_NAME,
										   TRUNCATE_TRIGGER_NAME};
	Oid relid = PG_GETARG_OID(0);
	Relation rel;
	char *qualified;
	bool watched;
	Oid type = REGCLASSOID;
	Datum value = ObjectIdGetDatum(relid);

	rel = table_open(relid, ShareRowExclusiveLock);
	qualified = qualified_name(rel);
	table_close(rel, NoLock);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	spi_exec("DELETE FROM cellcms_rt.watched_tables WHERE table_name = $1", 1,
			 &type, &value, NULL, SPI_OK_DELETE);
	watched = SPI_processed > 0;
	for (int i = 0; i < lengthof(triggers); i++)
	{
		if (OidIsValid(get_trigger_oid(relid, triggers[i], true)))
		{
			spi_exec(psprintf("DROP TRIGGER %s ON %s", triggers[i], qualified),
					 0, NULL, NULL, NULL, SPI_OK_UTILITY);
			watched = true;
		}
	}
	SPI_finish();
	PG_RETURN_BOOL(watched);
}

/*
 * prune(older_than): deletes the log entries older than older_than (default
 * cellcms_rt.retention) in batches of PRUNE_BATCH consecutive positions,
 * oldest first, through the primary key; it stops at the first batch with
 * nothing to delete, since positions and ts grow together (up to the
 * overlap of concurrent transactions).  DELETE takes row locks on old rows
 * only, which no writer touches: writers are never blocked.
 */
Datum
cellcms_rt_prune(PG_FUNCTION_ARGS)
{
	Interval deflt;
	Interval *older;
	Datum cutoff;
	int64 after = 0;
	int64 removed = 0;
	SPIPlanPtr plan;
	Oid types[2] = {INT8OID, TIMESTAMPTZOID};

	if (PG_ARGISNULL(0))
	{
		deflt.month = 0;
		deflt.day = 0;
		deflt.time = (int64) retention_setting * USECS_PER_SEC;
		older = &deflt;
	}
	else
		older = PG_GETARG_INTERVAL_P(0);
	cutoff = DirectFunctionCall2(timestamptz_mi_interval,
								 TimestampTzGetDatum(GetCurrentTimestamp()),
								 IntervalPGetDatum(older));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	plan = SPI_prepare(
		"WITH batch AS ("
		"  SELECT position, ts FROM cellcms_rt.changes"
		"  WHERE position > $1 ORDER BY position"
		"  LIMIT " CppAsString2(
			PRUNE_BATCH) "),"
						 " gone AS ("
						 "  DELETE FROM cellcms_rt.changes c USING batch b"
						 "  WHERE c.position = b.position AND b.ts < $2"
						 "  RETURNING 1)"
						 " SELECT (SELECT count(*) FROM gone),"
						 "  (SELECT max(position) FROM batch)",
		2, types);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s",
			 SPI_result_code_string(SPI_result));
	for (;;)
	{
		Datum args[2] = {Int64GetDatum(after), cutoff};
		int64 gone;
		bool isnull;
		Datum last;

		if (SPI_execute_plan(plan, args, NULL, false, 1) != SPI_OK_SELECT ||
			SPI_processed != 1)
			elog(ERROR, "cellcms_rt.prune: batch query failed");
		gone = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
										   SPI_tuptable->tupdesc, 1, &isnull));
		last = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2,
							 &isnull);
		removed += gone;
		if (gone == 0 || isnull)
			break;
		after = DatumGetInt64(last);
		CHECK_FOR_INTERRUPTS();
	}
	SPI_finish();
	PG_RETURN_INT64(removed);
}
