/*-------------------------------------------------------------------------
 *
 * trigger.c
 *	  The triggers watch() creates: what a row change is, and TRUNCATE.
 *
 * IDENTIFICATION
 *	  extension/trigger.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "cellcms_rt.h"
#include "commands/async.h"
#include "commands/sequence.h"
#include "commands/trigger.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/rel.h"
#include "utils/timestamp.h"
#include "utils/xid8.h"

PG_FUNCTION_INFO_V1(cellcms_rt_on_change);
PG_FUNCTION_INFO_V1(cellcms_rt_refuse_truncate);

/*
 * Logs and announces one change of the row row/row_nulls.  Rows without an
 * id or a dataset cannot be routed to anybody: they are skipped with a
 * warning rather than failing the user's write.
 */
static void
emit_change(WatchConfig *cfg, Relation rel, Datum *row, bool *row_nulls,
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
	Datum values[Natts_changes];
	bool nulls[Natts_changes] = {false};
	StringInfoData payload;
	Oid log_relid;
	Oid log_seqid;

	if (row_nulls[id_att - 1] ||
		(dataset_att != 0 && row_nulls[dataset_att - 1]))
	{
		ereport(
			WARNING,
			(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
			 errmsg(
				 "cellcms_rt: change of a row of \"%s\" with a NULL %s was not logged",
				 RelationGetRelationName(rel),
				 row_nulls[id_att - 1] ? "id" : "dataset"),
			 errdetail(
				 "A change needs a document id and a dataset to be delivered.")));
		return;
	}
	lookup_change_log(&log_relid, &log_seqid);

	id = OutputFunctionCall(&cfg->out[WC_ID], row[id_att - 1]);
	if (!row_nulls[type_att - 1])
		type = OutputFunctionCall(&cfg->out[WC_TYPE], row[type_att - 1]);
	if (dataset_att != 0)
		dataset =
			OutputFunctionCall(&cfg->out[WC_DATASET], row[dataset_att - 1]);
	else
		dataset = cfg->fixed_dataset;
	doc = build_document(cfg, row, row_nulls, id, type);
	position = nextval_internal(log_seqid, false);
	txid = GetTopFullTransactionId();

	values[Anum_changes_position - 1] = Int64GetDatum(position);
	values[Anum_changes_txid - 1] = FullTransactionIdGetDatum(txid);
	values[Anum_changes_dataset - 1] = CStringGetTextDatum(dataset);
	values[Anum_changes_document_id - 1] = CStringGetTextDatum(id);
	if (type != NULL)
		values[Anum_changes_document_type - 1] = CStringGetTextDatum(type);
	else
	{
		values[Anum_changes_document_type - 1] = (Datum) 0;
		nulls[Anum_changes_document_type - 1] = true;
	}
	values[Anum_changes_operation - 1] = CStringGetTextDatum(operation);
	values[Anum_changes_ts - 1] = TimestampTzGetDatum(ts);
	values[Anum_changes_document - 1] = JsonbPGetDatum(doc);
	insert_change(log_relid, values, nulls);

	initStringInfo(&payload);
	build_payload(&payload, id, type, operation, dataset, ts, position,
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
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
		ereport(
			ERROR,
			(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
			 errmsg(
				 "cellcms_rt.on_change() must be fired AFTER INSERT, UPDATE or DELETE FOR EACH ROW")));

	cfg = get_watch_config(trigdata->tg_trigger, trigdata->tg_relation);
	process_row(cfg, trigdata);
	release_watch_config(cfg);
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
