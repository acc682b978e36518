/*-------------------------------------------------------------------------
 *
 * change_log.c
 *	  Writing the change log cellcms_rt.changes.
 *
 * IDENTIFICATION
 *	  extension/change_log.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "cellcms_rt.h"
#include "executor/executor.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/resowner.h"

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

static Oid changes_relid = InvalidOid;
static Oid changes_seqid = InvalidOid;
static LogWriter *log_writer = NULL;
static ExecutorEnd_hook_type prev_ExecutorEnd = NULL;

void
forget_change_log(Oid relid)
{
	if (relid == InvalidOid || relid == changes_relid || relid == changes_seqid)
	{
		changes_relid = InvalidOid;
		changes_seqid = InvalidOid;
	}
}

/*
 * Finds the change log and its sequence, and checks that the table still has
 * the shape this file writes.  Callers use the OIDs returned, not the cached
 * copies, which an invalidation can reset at any lock acquisition.
 */
void
lookup_change_log(Oid *log_relid, Oid *log_seqid)
{
	static const Oid expected[Natts_changes] = {
		[Anum_changes_position - 1] = INT8OID,
		[Anum_changes_txid - 1] = XID8OID,
		[Anum_changes_dataset - 1] = TEXTOID,
		[Anum_changes_document_id - 1] = TEXTOID,
		[Anum_changes_document_type - 1] = TEXTOID,
		[Anum_changes_operation - 1] = TEXTOID,
		[Anum_changes_ts - 1] = TIMESTAMPTZOID,
		[Anum_changes_document - 1] = JSONBOID,
	};
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
	if (desc->natts != Natts_changes)
		elog(ERROR, "cellcms_rt.changes has %d columns, expected %d",
			 desc->natts, Natts_changes);
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
	if (event == XACT_EVENT_PRE_COMMIT || event == XACT_EVENT_PRE_PREPARE)
	{
		if (log_writer != NULL)
			close_log_writer();
	}
	else if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		log_writer = NULL; /* released by the resource owner */
}

static void
log_writer_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
							SubTransactionId parentSubid, void *arg)
{
	if (log_writer != NULL && event == SUBXACT_EVENT_ABORT_SUB)
		close_log_writer();
}

void
init_change_log(void)
{
	prev_ExecutorEnd = ExecutorEnd_hook;
	ExecutorEnd_hook = log_writer_executor_end;
	RegisterXactCallback(log_writer_xact_callback, NULL);
	RegisterSubXactCallback(log_writer_subxact_callback, NULL);
}

/*
 * Writes one change log row, values/nulls indexed by Anum_changes_*.  A
 * direct table_tuple_insert plus ExecInsertIndexTuples costs a fraction of
 * an SPI plan execution per row (no executor startup, no permission or
 * constraint checks: every value is ours) and writes the row whatever the
 * user's privileges on the log.
 */
void
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
