/*-------------------------------------------------------------------------
 *
 * cellcms_rt.h
 *	  Declarations shared by the files of the cellcms_rt extension.
 *
 * IDENTIFICATION
 *	  extension/cellcms_rt.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef CELLCMS_RT_H
#define CELLCMS_RT_H

#include "access/attnum.h"
#include "datatype/timestamp.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/jsonb.h"
#include "utils/relcache.h"
#include "utils/reltrigger.h"

/*
 * The columns of cellcms_rt.changes, which the relay reads and
 * extension/cellcms_rt--1.0.sql creates.
 */
#define Anum_changes_position	   1
#define Anum_changes_txid		   2
#define Anum_changes_dataset	   3
#define Anum_changes_document_id   4
#define Anum_changes_document_type 5
#define Anum_changes_operation	   6
#define Anum_changes_ts			   7
#define Anum_changes_document	   8
#define Natts_changes			   8

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

/*
 * Arguments of the row trigger, as watch() writes them: the five column
 * names ('' = none), then the fixed dataset ('' = none).
 */
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
	PlainColumn *plain;
} WatchConfig;

/* cellcms_rt.c */
extern char *channel_setting;
extern int retention_setting;

/* watch_config.c */
extern const char *const watch_param[WC_COUNT];
extern void init_watch_cache(void);
extern void forget_watch_configs(Oid relid);
extern void resolve_watch_columns(Relation rel,
								  const char *const name[WC_COUNT],
								  bool at_watch, AttrNumber att[WC_COUNT]);
extern WatchConfig *get_watch_config(Trigger *trigger, Relation rel);
extern void release_watch_config(WatchConfig *cfg);

/* document.c */
extern Jsonb *build_document(WatchConfig *cfg, Datum *values, bool *nulls,
							 const char *id, const char *type);

/* change_log.c */
extern void init_change_log(void);
extern void forget_change_log(Oid relid);
extern void lookup_change_log(Oid *log_relid, Oid *log_seqid);
extern void insert_change(Oid log_relid, Datum *values, bool *nulls);

/* payload.c */
extern void build_payload(StringInfo buf, const char *id, const char *type,
						  const char *operation, const char *dataset,
						  TimestampTz ts, int64 position, uint64 txid);

#endif /* CELLCMS_RT_H */
