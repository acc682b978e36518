/*-------------------------------------------------------------------------
 *
 * watch_config.c
 *	  The row trigger's configuration, resolved and cached per backend.
 *
 * The row trigger carries the column names given to watch() as trigger
 * arguments, so its configuration arrives with the relcache entry and is
 * replaced by the invalidation that CREATE OR REPLACE TRIGGER sends to every
 * backend.  The resolved form (attribute numbers, output functions, the row
 * conversions of the document's columns) is kept per trigger in a
 * backend-local hash that relcache invalidations mark stale.
 *
 * IDENTIFICATION
 *	  extension/watch_config.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "cellcms_rt.h"
#include "nodes/makefuncs.h"
#include "parser/parse_coerce.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

const char *const watch_param[WC_COUNT] = {"id_column", "type_column",
										   "dataset_column", "data_column",
										   "published_column"};

static HTAB *watch_cache = NULL;

static void
watch_cache_xact_callback(XactEvent event, void *arg)
{
	HASH_SEQ_STATUS status;
	WatchConfig *cfg;

	if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_ABORT &&
		event != XACT_EVENT_PREPARE)
		return;

	/* no trigger call runs now: forget the uses that errors cut short */
	hash_seq_init(&status, watch_cache);
	while ((cfg = hash_seq_search(&status)) != NULL)
		cfg->in_use = 0;
}

void
init_watch_cache(void)
{
	HASHCTL ctl;

	ctl.keysize = sizeof(Oid);
	ctl.entrysize = sizeof(WatchConfig);
	watch_cache = hash_create("cellcms_rt watch configurations", 16, &ctl,
							  HASH_ELEM | HASH_BLOBS);
	RegisterXactCallback(watch_cache_xact_callback, NULL);
}

/*
 * Marks stale every cached configuration of the relation (InvalidOid: of
 * every relation) and frees those no trigger call is using.  An entry in use
 * (an invalidation can arrive during any lock acquisition of a trigger call)
 * is rebuilt by the next call.
 */
void
forget_watch_configs(Oid relid)
{
	HASH_SEQ_STATUS status;
	WatchConfig *cfg;

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
void
resolve_watch_columns(Relation rel, const char *const name[WC_COUNT],
					  bool at_watch, AttrNumber att[WC_COUNT])
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
	resolve_watch_columns(rel, name, false, att);

	cxt = AllocSetContextCreate(CacheMemoryContext, "cellcms_rt watch",
								ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(cxt);

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

/*
 * The configuration of the row trigger firing on rel.  Invalidations do not
 * free it until release_watch_config(): the caller may be holding pointers
 * into it when one arrives.
 */
WatchConfig *
get_watch_config(Trigger *trigger, Relation rel)
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

void
release_watch_config(WatchConfig *cfg)
{
	cfg->in_use--;
}
