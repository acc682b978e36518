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
 * The row trigger carries the column names given to watch() as trigger
 * arguments, so its configuration arrives with the relcache entry and is
 * replaced by the invalidation that CREATE OR REPLACE TRIGGER sends to every
 * backend.  The resolved form (attribute numbers, output functions, the row
 * conversions of the document's columns) is kept per trigger in a
 * backend-local hash that relcache invalidations mark stale.
 *
 * IDENTIFICATION
 *	  extension/cellcms_rt.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "commands/sequence.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_coerce.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"
#include "utils/xid8.h"

PG_MODULE_MAGIC;

/*
 * Async_Notify() refuses payloads of BLCKSZ - NAMEDATALEN - 128 bytes or
 * more (NOTIFY_PAYLOAD_MAX_LENGTH, private to async.c).
 */
#define PAYLOAD_MAX_LEN (BLCKSZ - NAMEDATALEN - 128 - 1)

/* Rows prune() deletes per statement. */
#define PRUNE_BATCH 10000

#define ROW_TRIGGER_NAME	  "cellcms_rt_changes"
#define TRUNCATE_TRIGGER_NAME "cellcms_rt_truncate"

/* The roles a column can play, in the order of watch()'s parameters. */
typedef enum WatchColumn
{
	WC_ID,
	WC_TYPE,
	WC_DATASET,
	WC_DATA,
	WC_PUBLISHED,
	WC_COUNT
} WatchColumn;

static const char *const watch_param[WC_COUNT] = {
	"id_column", "type_column", "dataset_column", "data_column",
	"published_column"};

/* Trigger arguments: the five column names ('' = none), the fixed dataset. */
#define TRIGGER_NARGS (WC_COUNT + 1)

/*
 * A column that appears in the document under its own name.  Text values
 * become JSON strings directly; other types go through to_jsonb(), which
 * gives each type its usual JSON form.
 */
typedef struct PlainColumn
{
	AttrNumber att;
	char *name;
	bool is_text;
	FmgrInfo to_jsonb; /* fn_expr gives to_jsonb() the argument's type */
} PlainColumn;

/* Resolved configuration of one row trigger; lives in cxt. */
typedef struct WatchConfig
{
	Oid tgoid; /* hash key */
	Oid relid;
	bool valid;					  /* false once an invalidation hit relid */
	uint64 inval_gen;			  /* bumped by each such invalidation */
	int in_use;					  /* trigger calls using it now */
	MemoryContext cxt;			  /* everything below, NULL before the build */
	AttrNumber att[WC_COUNT];	  /* 0 = the table has no such column */
	char *fixed_dataset;		  /* when att[WC_DATASET] == 0 */
	bool data_is_json;			  /* data column is json, not jsonb */
	FmgrInfo out[WC_DATASET + 1]; /* output functions of id, type,
								   * dataset */
	int n_plain;				  /* columns of the document under own names */
	struct PlainColumn *plain;
} WatchConfig;

static char *channel_setting = NULL;
static int retention_setting = 7 * SECS_PER_DAY;

static HTAB *watch_cache = NULL;
static Oid changes_relid = InvalidOid;
static Oid changes_seqid = InvalidOid;
static ExecutorEnd_hook_type prev_ExecutorEnd = NULL;

void _PG_init(void);
static void log_writer_executor_end(QueryDesc *queryDesc);
static void log_writer_xact_callback(XactEvent event, void *arg);
static void log_writer_subxact_callback(SubXactEvent event,
										SubTransactionId mySubid,
										SubTransactionId parentSubid,
										void *arg);

PG_FUNCTION_INFO_V1(cellcms_rt_on_change);
PG_FUNCTION_INFO_V1(cellcms_rt_refuse_truncate);
PG_FUNCTION_INFO_V1(cellcms_rt_watch);
PG_FUNCTION_INFO_V1(cellcms_rt_unwatch);
PG_FUNCTION_INFO_V1(cellcms_rt_prune);

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
 * Marks stale every cached configuration of the relation and frees those no
 * trigger call is using.  An entry in use (an invalidation can arrive during
 * any lock acquisition of a trigger call) is rebuilt by the next call.
 */
static void
invalidate_relation(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS status;
	WatchConfig *cfg;

	if (relid == InvalidOid || relid == changes_relid || relid == changes_seqid)
	{
		changes_relid = InvalidOid;
		changes_seqid = InvalidOid;
	}
	if (watch_cache == NULL)
		return;
	hash_seq_init(&status, watch_cache);
	while ((cfg = hash_seq_search(&status)) != NULL)
	{
		if (relid != InvalidOid && cfg->relid != relid)
			continue;
		cfg->valid = false;
		cfg->inval_gen++;
		/* unused entries go at once: the trigger may have been dropped */
		if (cfg->in_use == 0)
		{
			if (cfg->cxt != NULL)
				MemoryContextDelete(cfg->cxt);
			hash_search(watch_cache, &cfg->tgoid, HASH_REMOVE, NULL);
		}
	}
}

void
_PG_init(void)
{
	HASHCTL ctl;

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

	ctl.keysize = sizeof(Oid);
	ctl.entrysize = sizeof(WatchConfig);
	watch_cache = hash_create("cellcms_rt watch configurations", 16, &ctl,
							  HASH_ELEM | HASH_BLOBS);
	CacheRegisterRelcacheCallback(invalidate_relation, (Datum) 0);

	prev_ExecutorEnd = ExecutorEnd_hook;
	ExecutorEnd_hook = log_writer_executor_end;
	RegisterXactCallback(log_writer_xact_callback, NULL);
	RegisterSubXactCallback(log_writer_subxact_callback, NULL);
}

/*
 * Finds the change log and its sequence, and checks that the table still has
 * the shape this file writes.  Callers use the OIDs returned, not the cached
 * copies, which an invalidation can reset at any lock acquisition.
 */
static void
lookup_changes(Oid *log_relid, Oid *log_seqid)
{
	static const Oid expected[] = {INT8OID, XID8OID, TEXTOID,		 TEXTOID,
								   TEXTOID, TEXTOID, TIMESTAMPTZOID, JSONBOID};
	Oid nsp;
	Oid relid;
	Oid seqid;
	Relation rel;
	TupleDesc desc;

	if (OidIsValid(changes_relid))
	{
		*log_relid = changes_relid;
		*log_seqid = changes_seqid;
		return;
	}
	nsp = get_namespace_oid("cellcms_rt", false);
	relid = get_relname_relid("changes", nsp);
	seqid = get_relname_relid("changes_position_seq", nsp);
	if (!OidIsValid(relid) || !OidIsValid(seqid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("cellcms_rt.changes or its sequence does not exist"),
				 errhint("Reinstall the extension cellcms_rt.")));

	rel = table_open(relid, AccessShareLock);
	desc = RelationGetDescr(rel);
	if (desc->natts != lengthof(expected))
		elog(ERROR, "cellcms_rt.changes has %d columns, expected %d",
			 desc->natts, (int) lengthof(expected));
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute a = TupleDescAttr(desc, i);

		if (a->attisdropped || a->atttypid != expected[i])
			elog(ERROR, "column %d of cellcms_rt.changes has been altered",
				 i + 1);
	}
	table_close(rel, AccessShareLock);

	changes_relid = *log_relid = relid;
	changes_seqid = *log_seqid = seqid;
}

static AttrNumber
find_column(Relation rel, const char *name)
{
	TupleDesc desc = RelationGetDescr(rel);

	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute a = TupleDescAttr(desc, i);

		if (!a->attisdropped && strcmp(NameStr(a->attname), name) == 0)
			return a->attnum;
	}
	return InvalidAttrNumber;
}

/*
 * Resolves and checks the columns named by watch() (at_watch) or by a row
 * trigger's arguments; name[c] is NULL when the table has no such column.
 * Errors at trigger time mean the table was altered after watch().
 */
static void
resolve_columns(Relation rel, const char *const name[WC_COUNT], bool at_watch,
				AttrNumber att[WC_COUNT])
{
	const char *relname = RelationGetRelationName(rel);
	TupleDesc desc = RelationGetDescr(rel);

	for (int c = 0; c < WC_COUNT; c++)
	{
		Oid type;
		bool ok;
		const char *want;

		att[c] = InvalidAttrNumber;
		if (name[c] == NULL)
			continue;
		att[c] = find_column(rel, name[c]);
		if (att[c] == InvalidAttrNumber)
		{
			if (!at_watch)
				ereport(
					ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg(
						 "column \"%s\" of watched relation \"%s\" does not exist",
						 name[c], relname),
					 errhint(
						 "Call cellcms_rt.watch() again with the new column names, or cellcms_rt.unwatch().")));
			if (c == WC_ID || c == WC_TYPE || c == WC_DATASET)
				ereport(
					ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("column \"%s\" of relation \"%s\" does not exist",
							name[c], relname),
					 errhint(
						 "Name the column with cellcms_rt.watch(%s => ...).",
						 watch_param[c])));
			ereport(
				ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of relation \"%s\" does not exist",
						name[c], relname),
				 errhint(
					 "Name the column with cellcms_rt.watch(%s => ...), or pass NULL if the table has none.",
					 watch_param[c])));
		}
		for (int d = 0; d < c; d++)
		{
			if (att[d] == att[c])
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("%s and %s both name column \"%s\"",
								watch_param[d], watch_param[c], name[c])));
		}

		type = getBaseType(TupleDescAttr(desc, att[c] - 1)->atttypid);
		switch (c)
		{
			case WC_TYPE:
			case WC_DATASET:
				ok = TypeCategory(type) == TYPCATEGORY_STRING;
				want = "a string type";
				break;
			case WC_DATA:
				ok = type == JSONBOID || type == JSONOID;
				want = "type jsonb or json";
				break;
			case WC_PUBLISHED:
				ok = type == TIMESTAMPTZOID || type == TIMESTAMPOID ||
					 type == DATEOID;
				want = "type timestamp with time zone, timestamp or date";
				break;
			default:
				ok = true;
				want = NULL;
				break;
		}
		if (!ok)
			ereport(
				ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("%s \"%s\" of relation \"%s\" must be of %s, not %s",
						watch_param[c], name[c], relname, want,
						format_type_be(type))));
	}

	/*
	 * Only watch() insists: a NOT NULL dropped later must not make writes
	 * fail, the trigger skips a row with a NULL id with a warning instead.
	 */
	if (at_watch && !TupleDescAttr(desc, att[WC_ID] - 1)->attnotnull)
		ereport(
			ERROR,
			(errcode(ERRCODE_INVALID_TABLE_DEFINITION),
			 errmsg("id_column \"%s\" of relation \"%s\" must be NOT NULL",
					name[WC_ID], relname),
			 errhint(
				 "Make it the primary key, or add a NOT NULL constraint.")));
}

static void
build_config(WatchConfig *cfg, Trigger *trigger, Relation rel)
{
	const char *name[WC_COUNT];
	AttrNumber att[WC_COUNT];
	TupleDesc desc = RelationGetDescr(rel);
	MemoryContext cxt;
	MemoryContext old;
	Oid outfunc;
	bool isvarlena;
	int n;
	uint64 gen = cfg->inval_gen;

	if (cfg->cxt != NULL)
		MemoryContextDelete(cfg->cxt);
	cfg->cxt = NULL;

	if (trigger->tgnargs != TRIGGER_NARGS)
		ereport(
			ERROR,
			(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
			 errmsg("cellcms_rt.on_change() must be called with %d arguments",
					TRIGGER_NARGS),
			 errhint("Create the trigger with cellcms_rt.watch().")));
	for (int c = 0; c < WC_COUNT; c++)
		name[c] = trigger->tgargs[c][0] != '\0' ? trigger->tgargs[c] : NULL;
	if (name[WC_ID] == NULL || name[WC_TYPE] == NULL ||
		(name[WC_DATASET] == NULL) == (trigger->tgargs[WC_COUNT][0] == '\0'))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("invalid arguments of trigger \"%s\"", trigger->tgname),
				 errhint("Create the trigger with cellcms_rt.watch().")));
	resolve_columns(rel, name, false, att);

	cxt = AllocSetContextCreate(CacheMemoryContext, "cellcms_rt watch",
								ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(cxt);

	cfg->relid = RelationGetRelid(rel);
	memcpy(cfg->att, att, sizeof(att));
	cfg->fixed_dataset = pstrdup(trigger->tgargs[WC_COUNT]);
	cfg->data_is_json =
		att[WC_DATA] != 0 &&
		getBaseType(TupleDescAttr(desc, att[WC_DATA] - 1)->atttypid) == JSONOID;
	for (int c = WC_ID; c <= WC_DATASET; c++)
	{
		if (att[c] == 0)
			continue;
		getTypeOutputInfo(TupleDescAttr(desc, att[c] - 1)->atttypid, &outfunc,
						  &isvarlena);
		fmgr_info_cxt(outfunc, &cfg->out[c], cxt);
	}

	/* Every column but id, type and data appears under its own name. */
	cfg->plain = palloc(sizeof(PlainColumn) * desc->natts);
	n = 0;
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute a = TupleDescAttr(desc, i);
		PlainColumn *col = &cfg->plain[n];
		Oid base = getBaseType(a->atttypid);

		if (a->attisdropped || a->attnum == att[WC_ID] ||
			a->attnum == att[WC_TYPE] || a->attnum == att[WC_DATA])
			continue;
		col->att = a->attnum;
		col->name = pstrdup(NameStr(a->attname));
		col->is_text = base == TEXTOID || base == VARCHAROID;
		if (!col->is_text)
		{
			fmgr_info_cxt(F_TO_JSONB, &col->to_jsonb, cxt);
			col->to_jsonb.fn_expr = (Node *) makeFuncExpr(
				F_TO_JSONB, JSONBOID,
				list_make1(
					makeNullConst(a->atttypid, a->atttypmod, a->attcollation)),
				InvalidOid, InvalidOid, COERCE_EXPLICIT_CALL);
		}
		n++;
	}
	cfg->n_plain = n;

	MemoryContextSwitchTo(old);
	cfg->cxt = cxt;
	/* an invalidation during the build: use it for this call only */
	cfg->valid = cfg->inval_gen == gen;
}

static WatchConfig *
watch_config(Trigger *trigger, Relation rel)
{
	WatchConfig *cfg;
	bool found;

	cfg = hash_search(watch_cache, &trigger->tgoid, HASH_ENTER, &found);
	if (!found)
	{
		cfg->cxt = NULL;
		cfg->valid = false;
		cfg->inval_gen = 0;
		cfg->in_use = 0;
		cfg->relid = RelationGetRelid(rel);
	}
	/* released by the caller, or by the end of the transaction on error */
	cfg->in_use++;
	if (!cfg->valid)
		build_config(cfg, trigger, rel);
	return cfg;
}

/* Appends the members of a jsonb object; later keys replace earlier ones. */
static void
push_members(JsonbParseState **state, Jsonb *jb)
{
	JsonbIterator *it = JsonbIteratorInit(&jb->root);
	JsonbValue v;
	JsonbIteratorToken tok;

	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY || tok == WJB_VALUE)
			pushJsonbValue(state, tok, &v);
	}
}

static void
push_string(JsonbParseState **state, const char *key, const char *value)
{
	JsonbValue v;

	v.type = jbvString;
	v.val.string.val = unconstify(char *, key);
	v.val.string.len = strlen(key);
	pushJsonbValue(state, WJB_KEY, &v);
	if (value == NULL)
		v.type = jbvNull;
	else
	{
		v.val.string.val = unconstify(char *, value);
		v.val.string.len = strlen(value);
	}
	pushJsonbValue(state, WJB_VALUE, &v);
}

/*
 * The row as a GROQ filter sees it.  Precedence, lowest first: keys of the
 * data column (when it holds an object), the other columns under their own
 * names, then _id and _type.  jsonb keeps the last of duplicate keys.
 */
static Jsonb *
build_document(WatchConfig *cfg, Datum *values, bool *nulls, const char *id,
			   const char *type)
{
	JsonbParseState *state = NULL;
	JsonbValue *res;
	AttrNumber data_att = cfg->att[WC_DATA];

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	if (data_att != 0 && !nulls[data_att - 1])
	{
		Jsonb *data;

		if (cfg->data_is_json)
			data = DatumGetJsonbP(DirectFunctionCall1(
				jsonb_in,
				CStringGetDatum(TextDatumGetCString(values[data_att - 1]))));
		else
			data = DatumGetJsonbP(values[data_att - 1]);
		if (JB_ROOT_IS_OBJECT(data))
			push_members(&state, data);
	}
	for (int i = 0; i < cfg->n_plain; i++)
	{
		PlainColumn *col = &cfg->plain[i];
		Datum value = values[col->att - 1];
		JsonbValue v;

		v.type = jbvString;
		v.val.string.val = col->name;
		v.val.string.len = strlen(col->name);
		pushJsonbValue(&state, WJB_KEY, &v);
		if (nulls[col->att - 1])
			v.type = jbvNull;
		else if (col->is_text)
		{
			text *t = DatumGetTextPP(value);

			v.val.string.val = VARDATA_ANY(t);
			v.val.string.len = VARSIZE_ANY_EXHDR(t);
		}
		else
		{
			Jsonb *jb = DatumGetJsonbP(FunctionCall1(&col->to_jsonb, value));

			if (JB_ROOT_IS_SCALAR(jb))
				JsonbExtractScalar(&jb->root, &v);
			else
			{
				v.type = jbvBinary;
				v.val.binary.data = &jb->root;
				v.val.binary.len = VARSIZE(jb) - VARHDRSZ;
			}
		}
		pushJsonbValue(&state, WJB_VALUE, &v);
	}
	push_string(&state, "_id", id);
	push_string(&state, "_type", type);
	res = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	return JsonbValueToJsonb(res);
}

/*
 * The change log, open while the statement that writes it runs, so that a
 * statement changing many rows opens the log, its indexes and an EState
 * once instead of once per row.  Everything belongs to the top transaction
 * (memory and resource owner): the end of the statement (ExecutorEnd) or of
 * a subtransaction closes it, commit closes what is left, and after an abort
 * the resource owner releases it.  Holding it no longer than a statement
 * keeps TRUNCATE or ALTER of the log possible later in the transaction.
 */
typedef struct LogWriter
{
	Relation rel;
	ResultRelInfo *rri;
	EState *estate;
	TupleTableSlot *slot;
} LogWriter;

static LogWriter *log_writer = NULL;

static void
close_log_writer(void)
{
	LogWriter *w = log_writer;
	ResourceOwner saved = CurrentResourceOwner;

	log_writer = NULL;
	CurrentResourceOwner = TopTransactionResourceOwner;
	ExecDropSingleTupleTableSlot(w->slot);
	ExecCloseIndices(w->rri);
	FreeExecutorState(w->estate);
	table_close(w->rel, NoLock);
	CurrentResourceOwner = saved;
	pfree(w->rri);
	pfree(w);
}

static LogWriter *
open_log_writer(Oid log_relid)
{
	MemoryContext old;
	ResourceOwner saved;
	LogWriter *w;

	if (log_writer != NULL && RelationGetRelid(log_writer->rel) == log_relid)
		return log_writer;
	if (log_writer != NULL)
		close_log_writer();

	old = MemoryContextSwitchTo(TopTransactionContext);
	saved = CurrentResourceOwner;
	CurrentResourceOwner = TopTransactionResourceOwner;
	w = palloc(sizeof(LogWriter));
	w->rel = table_open(log_relid, RowExclusiveLock);
	w->rri = makeNode(ResultRelInfo);
	InitResultRelInfo(w->rri, w->rel, 1, NULL, 0);
	ExecOpenIndices(w->rri, false);
	w->estate = CreateExecutorState();
	w->slot =
		MakeSingleTupleTableSlot(RelationGetDescr(w->rel), &TTSOpsVirtual);
	CurrentResourceOwner = saved;
	MemoryContextSwitchTo(old);
	log_writer = w;
	return w;
}

static void
log_writer_executor_end(QueryDesc *queryDesc)
{
	if (prev_ExecutorEnd)
		prev_ExecutorEnd(queryDesc);
	else
		standard_ExecutorEnd(queryDesc);
	if (log_writer != NULL)
		close_log_writer();
}

static void
log_writer_xact_callback(XactEvent event, void *arg)
{
	HASH_SEQ_STATUS status;
	WatchConfig *cfg;

	if (event == XACT_EVENT_PRE_COMMIT || event == XACT_EVENT_PRE_PREPARE)
	{
		if (log_writer != NULL)
			close_log_writer();
		return;
	}
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		log_writer = NULL; /* released by the resource owner */
	if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_ABORT &&
		event != XACT_EVENT_PREPARE)
		return;

	/* no trigger call runs now: forget the uses that errors cut short */
	hash_seq_init(&status, watch_cache);
	while ((cfg = hash_seq_search(&status)) != NULL)
		cfg->in_use = 0;
}

static void
log_writer_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
							SubTransactionId parentSubid, void *arg)
{
	if (log_writer != NULL && event == SUBXACT_EVENT_ABORT_SUB)
		close_log_writer();
}

/*
 * Writes one change log row.  A direct table_tuple_insert plus
 * ExecInsertIndexTuples costs a fraction of an SPI plan execution per row
 * (no executor startup, no permission or constraint checks: every value is
 * ours) and writes the row whatever the user's privileges on the log.
 */
static void
insert_change(Oid log_relid, Datum *values, bool *nulls)
{
	LogWriter *w = open_log_writer(log_relid);
	TupleTableSlot *slot = w->slot;

	ExecClearTuple(slot);
	memcpy(slot->tts_values, values,
		   sizeof(Datum) * slot->tts_tupleDescriptor->natts);
	memcpy(slot->tts_isnull, nulls,
		   sizeof(bool) * slot->tts_tupleDescriptor->natts);
	ExecStoreVirtualTuple(slot);

	simple_table_tuple_insert(w->rel, slot);
	ExecInsertIndexTuples(w->rri, slot, w->estate, false, false, NULL, NIL);
	ExecClearTuple(slot);
	ResetPerTupleExprContext(w->estate);
}

/* Bytes escape_json() writes for s[0..len), without the quotes. */
static size_t
escaped_len(const char *s, size_t len)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++)
	{
		switch (s[i])
		{
			case '\b':
			case '\f':
			case '\n':
			case '\r':
			case '\t':
			case '"':
			case '\\':
				n += 2;
				break;
			default:
				n += (unsigned char) s[i] < ' ' ? 6 : 1;
				break;
		}
	}
	return n;
}

/* Longest prefix of s, in whole characters, whose escaped form fits limit. */
static size_t
prefix_fitting(const char *s, size_t limit)
{
	size_t len = strlen(s);
	size_t used = 0;
	size_t i = 0;

	while (i < len)
	{
		size_t clen = Min((size_t) pg_mblen(s + i), len - i);
		size_t elen = escaped_len(s + i, clen);

		if (used + elen > limit)
			break;
		used += elen;
		i += clen;
	}
	return i;
}

/*
 * The NOTIFY payload, at most PAYLOAD_MAX_LEN bytes whatever the strings:
 * when they do not fit, each string keeps its escaped length or a fair share
 * of the room left (short ones whole, the rest split between the long ones),
 * and "truncated":true tells the reader to take the full values from the log
 * row at that position.
 */
static void
build_payload(StringInfo buf, const char *id, const char *type,
			  const char *operation, const char *dataset, const char *ts,
			  int64 position, uint64 txid)
{
	static const char truncated[] = ",\"truncated\":true";
	const char *str[3] = {id, type, dataset};
	size_t len[3];
	size_t keep[3];
	size_t total = 0;
	StringInfoData tail;
	size_t fixed;

	initStringInfo(&tail);
	appendStringInfo(&tail,
					 ",\"ts\":\"%s\",\"position\":" INT64_FORMAT
					 ",\"txid\":" UINT64_FORMAT "}",
					 ts, position, txid);
	fixed = strlen("{\"documentId\":,\"documentType\":,\"operation\":\"\""
				   ",\"dataset\":") +
			strlen(operation) + tail.len;
	for (int i = 0; i < 3; i++)
	{
		if (str[i] == NULL)
		{
			len[i] = 0;
			fixed += strlen("null");
			continue;
		}
		len[i] = escaped_len(str[i], strlen(str[i]));
		fixed += 2;
		total += len[i];
	}

	for (int i = 0; i < 3; i++)
		keep[i] = SIZE_MAX;
	if (fixed + total > PAYLOAD_MAX_LEN)
	{
		size_t room = PAYLOAD_MAX_LEN - fixed - (sizeof(truncated) - 1);
		bool done[3] = {false, false, false};

		/* Shortest first, each gets at most an equal share of what is left. */
		for (int left = 3; left > 0; left--)
		{
			int s = -1;

			for (int i = 0; i < 3; i++)
			{
				if (!done[i] && (s < 0 || len[i] < len[s]))
					s = i;
			}
			done[s] = true;
			keep[s] = Min(len[s], room / left);
			room -= keep[s];
		}
	}

	appendStringInfoString(buf, "{\"documentId\":");
	for (int i = 0; i < 3; i++)
	{
		if (i == 1)
			appendStringInfoString(buf, ",\"documentType\":");
		else if (i == 2)
			appendStringInfo(buf,
							 ",\"operation\":\"%s\",\"dataset\":", operation);
		if (str[i] == NULL)
			appendStringInfoString(buf, "null");
		else if (keep[i] >= len[i])
			escape_json(buf, str[i]);
		else
			escape_json(buf, pnstrdup(str[i], prefix_fitting(str[i], keep[i])));
	}
	if (fixed + total > PAYLOAD_MAX_LEN)
	{
		/* before the closing brace of tail */
		appendBinaryStringInfo(buf, tail.data, tail.len - 1);
		appendStringInfoString(buf, truncated);
		appendStringInfoChar(buf, '}');
	}
	else
		appendBinaryStringInfo(buf, tail.data, tail.len);
	pfree(tail.data);
}

static char *
put_digits(char *p, int value, int width)
{
	for (int i = width - 1; i >= 0; i--)
	{
		p[i] = '0' + value % 10;
		value /= 10;
	}
	return p + width;
}

/*
 * UTC, ISO 8601, milliseconds and Z ("2025-01-15T12:00:00.000Z"); ts is
 * already whole milliseconds.  out has room for TS_LEN + 1 bytes.
 */
#define TS_LEN 24
static void
format_ts(char *out, TimestampTz ts)
{
	struct pg_tm tm;
	fsec_t fsec;
	char *p = out;

	/* without a time zone argument timestamp2tm() does not convert: UTC */
	if (timestamp2tm(ts, NULL, &tm, &fsec, NULL, NULL) != 0 || tm.tm_year < 0 ||
		tm.tm_year > 9999)
		ereport(ERROR, (errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
						errmsg("timestamp out of range")));
	p = put_digits(p, tm.tm_year, 4);
	*p++ = '-';
	p = put_digits(p, tm.tm_mon, 2);
	*p++ = '-';
	p = put_digits(p, tm.tm_mday, 2);
	*p++ = 'T';
	p = put_digits(p, tm.tm_hour, 2);
	*p++ = ':';
	p = put_digits(p, tm.tm_min, 2);
	*p++ = ':';
	p = put_digits(p, tm.tm_sec, 2);
	*p++ = '.';
	p = put_digits(p, fsec / 1000, 3);
	*p++ = 'Z';
	*p = '\0';
}

/*
 * Logs and announces one change of the row values/nulls.  Rows without an
 * id or a dataset cannot be routed to anybody: they are skipped with a
 * warning rather than failing the user's write.
 */
static void
emit_change(WatchConfig *cfg, Relation rel, Datum *values, bool *nulls,
			const char *operation, TimestampTz ts)
{
	AttrNumber id_att = cfg->att[WC_ID];
	AttrNumber type_att = cfg->att[WC_TYPE];
	AttrNumber dataset_att = cfg->att[WC_DATASET];
	char *dataset;
	char *id;
	char *type = NULL;
	Jsonb *doc;
	int64 position;
	FullTransactionId txid;
	Datum row[8];
	bool rownull[8] = {false};
	char tsbuf[TS_LEN + 1];
	StringInfoData payload;
	Oid log_relid;
	Oid log_seqid;

	if (nulls[id_att - 1] || (dataset_att != 0 && nulls[dataset_att - 1]))
	{
		ereport(
			WARNING,
			(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
			 errmsg(
				 "cellcms_rt: change of a row of \"%s\" with a NULL %s was not logged",
				 RelationGetRelationName(rel),
				 nulls[id_att - 1] ? "id" : "dataset"),
			 errdetail(
				 "A change needs a document id and a dataset to be delivered.")));
		return;
	}
	lookup_changes(&log_relid, &log_seqid);

	id = OutputFunctionCall(&cfg->out[WC_ID], values[id_att - 1]);
	if (!nulls[type_att - 1])
		type = OutputFunctionCall(&cfg->out[WC_TYPE], values[type_att - 1]);
	if (dataset_att != 0)
		dataset =
			OutputFunctionCall(&cfg->out[WC_DATASET], values[dataset_att - 1]);
	else
		dataset = cfg->fixed_dataset;
	doc = build_document(cfg, values, nulls, id, type);
	position = nextval_internal(log_seqid, false);
	txid = GetTopFullTransactionId();

	row[0] = Int64GetDatum(position);
	row[1] = FullTransactionIdGetDatum(txid);
	row[2] = CStringGetTextDatum(dataset);
	row[3] = CStringGetTextDatum(id);
	if (type != NULL)
		row[4] = CStringGetTextDatum(type);
	else
	{
		row[4] = (Datum) 0;
		rownull[4] = true;
	}
	row[5] = CStringGetTextDatum(operation);
	row[6] = TimestampTzGetDatum(ts);
	row[7] = JsonbPGetDatum(doc);
	insert_change(log_relid, row, rownull);

	format_ts(tsbuf, ts);
	initStringInfo(&payload);
	build_payload(&payload, id, type, operation, dataset, tsbuf, position,
				  U64FromFullTransactionId(txid));
	Async_Notify(channel_setting, payload.data);
}

static bool
values_equal(Form_pg_attribute a, Datum x, bool xnull, Datum y, bool ynull)
{
	if (xnull || ynull)
		return xnull == ynull;
	/* the cheap test first: unchanged toasted values share their pointer */
	return datumIsEqual(x, y, a->attbyval, a->attlen) ||
		   datum_image_eq(x, y, a->attbyval, a->attlen);
}

static bool
column_changed(TupleDesc desc, AttrNumber att, Datum *ov, bool *on, Datum *nv,
			   bool *nn)
{
	return att != 0 && !values_equal(TupleDescAttr(desc, att - 1), ov[att - 1],
									 on[att - 1], nv[att - 1], nn[att - 1]);
}

/* Logs and announces what the row change of trigdata is, if anything. */
static void
process_row(WatchConfig *cfg, TriggerData *trigdata)
{
	Relation rel = trigdata->tg_relation;
	TupleDesc desc = RelationGetDescr(rel);
	TimestampTz ts;
	Datum *ov;
	bool *on;
	Datum *nv;
	bool *nn;
	bool changed = false;
	AttrNumber pub;

	/* the time of the change, whole milliseconds so log and payload agree */
	ts = GetCurrentTimestamp();
	ts -= ts % 1000;

	ov = palloc(sizeof(Datum) * desc->natts);
	on = palloc(sizeof(bool) * desc->natts);
	heap_deform_tuple(trigdata->tg_trigtuple, desc, ov, on);
	if (TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
	{
		emit_change(cfg, rel, ov, on, "create", ts);
		return;
	}
	if (TRIGGER_FIRED_BY_DELETE(trigdata->tg_event))
	{
		emit_change(cfg, rel, ov, on, "delete", ts);
		return;
	}

	nv = palloc(sizeof(Datum) * desc->natts);
	nn = palloc(sizeof(bool) * desc->natts);
	heap_deform_tuple(trigdata->tg_newtuple, desc, nv, nn);
	for (int i = 0; i < desc->natts && !changed; i++)
	{
		Form_pg_attribute a = TupleDescAttr(desc, i);

		if (!a->attisdropped)
			changed = !values_equal(a, ov[i], on[i], nv[i], nn[i]);
	}
	if (!changed)
		return;

	/*
	 * A document that changes id or dataset leaves its old identity: the
	 * subscribers of the old one must see it go, those of the new one see it
	 * arrive.
	 */
	if (column_changed(desc, cfg->att[WC_ID], ov, on, nv, nn) ||
		column_changed(desc, cfg->att[WC_DATASET], ov, on, nv, nn))
	{
		emit_change(cfg, rel, ov, on, "delete", ts);
		emit_change(cfg, rel, nv, nn, "create", ts);
		return;
	}

	pub = cfg->att[WC_PUBLISHED];
	if (pub != 0 && on[pub - 1] && !nn[pub - 1])
		emit_change(cfg, rel, nv, nn, "publish", ts);
	else if (pub != 0 && !on[pub - 1] && nn[pub - 1])
		emit_change(cfg, rel, nv, nn, "unpublish", ts);
	else
		emit_change(cfg, rel, nv, nn, "update", ts);
}


Datum
cellcms_rt_on_change(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	WatchConfig *cfg;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("cellcms_rt.on_change() must be called as a trigger")));
	if (!TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		TRIGGER_FIRED_BY_TRUNCATE(trigdata->tg_event))
		ereport(
			ERROR,
			(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
			 errmsg(
				 "cellcms_rt.on_change() must be fired AFTER INSERT, UPDATE or DELETE FOR EACH ROW")));

	cfg = watch_config(trigdata->tg_trigger, trigdata->tg_relation);
	process_row(cfg, trigdata);
	cfg->in_use--;
	return PointerGetDatum(NULL);
}

Datum
cellcms_rt_refuse_truncate(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_BY_TRUNCATE(trigdata->tg_event))
		ereport(
			ERROR,
			(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
			 errmsg("cellcms_rt.refuse_truncate() must be fired by TRUNCATE")));
	ereport(
		ERROR,
		(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
		 errmsg("cannot truncate \"%s\" while cellcms_rt watches it",
				RelationGetRelationName(trigdata->tg_relation)),
		 errdetail(
			 "TRUNCATE would remove documents without logging or announcing their deletion."),
		 errhint("Use DELETE, or call cellcms_rt.unwatch() first.")));
	PG_RETURN_NULL();
}

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
	resolve_columns(rel, name, true, att);
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
