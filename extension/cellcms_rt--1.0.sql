/* extension/cellcms_rt--1.0.sql */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION cellcms_rt" to load this file. \quit

/*
 * The change log.  The relay depends on this exact shape.
 *
 * position is taken from a sequence when the row is inserted, not when its
 * transaction commits: a later position can become visible before an earlier
 * one, and rolled-back transactions leave gaps.  Readers therefore page with
 * changes_between() (transaction snapshots), never with "position > last".
 */
CREATE SEQUENCE cellcms_rt.changes_position_seq;

CREATE TABLE cellcms_rt.changes (
	position		bigint PRIMARY KEY
					DEFAULT nextval('cellcms_rt.changes_position_seq'),
	txid			xid8 NOT NULL DEFAULT pg_current_xact_id(),
	dataset			text NOT NULL,
	document_id		text NOT NULL,
	document_type	text,
	operation		text NOT NULL CHECK (operation IN
					('create', 'update', 'delete', 'publish', 'unpublish')),
	ts				timestamptz NOT NULL,
	document		jsonb NOT NULL
);

ALTER SEQUENCE cellcms_rt.changes_position_seq
	OWNED BY cellcms_rt.changes.position;

CREATE INDEX changes_txid_idx ON cellcms_rt.changes (txid);

COMMENT ON TABLE cellcms_rt.changes IS
	'one row per change of a watched table, written in the changing transaction';

/*
 * Rows committed by transactions that are visible in upto and were not yet
 * visible in after, in position order.  A reader that keeps the snapshot it
 * last used and calls changes_between(last, pg_current_snapshot()) sees every
 * change exactly once, including changes whose transaction took its position
 * early and committed late (PgQ's batch technique).  Everything below
 * pg_snapshot_xmin(after) was already visible in after, which bounds the scan
 * of the txid index from below; nothing at or above pg_snapshot_xmax(upto) is
 * visible in upto, which bounds it from above.
 */
CREATE FUNCTION cellcms_rt.changes_between(after pg_snapshot, upto pg_snapshot)
RETURNS SETOF cellcms_rt.changes
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
	SELECT c.*
	FROM cellcms_rt.changes c
	WHERE c.txid >= pg_catalog.pg_snapshot_xmin(after)
	  AND c.txid < pg_catalog.pg_snapshot_xmax(upto)
	  AND pg_catalog.pg_visible_in_snapshot(c.txid, upto)
	  AND NOT pg_catalog.pg_visible_in_snapshot(c.txid, after)
	ORDER BY c.position
$$;

/*
 * What watch() was told, one row per watched table.  The row trigger reads
 * the same settings from its own arguments (they travel with the table's
 * relcache entry); this table is what people and pg_dump see.  Its rows are
 * dumped with the extension, the triggers with their tables.
 */
CREATE TABLE cellcms_rt.watched_tables (
	table_name			regclass PRIMARY KEY,
	id_column			name NOT NULL,
	type_column			name NOT NULL,
	dataset_column		name,
	data_column			name,
	published_column	name,
	dataset				text,
	CHECK ((dataset_column IS NULL) <> (dataset IS NULL))
);

SELECT pg_catalog.pg_extension_config_dump('cellcms_rt.watched_tables', '');

/*
 * Anybody may see what is watched; reading the log (changes_between) needs
 * SELECT on cellcms_rt.changes, which only the owner has until granted.
 */
GRANT USAGE ON SCHEMA cellcms_rt TO PUBLIC;
GRANT SELECT ON cellcms_rt.watched_tables TO PUBLIC;

CREATE FUNCTION cellcms_rt.on_change()
RETURNS trigger
AS 'MODULE_PATHNAME', 'cellcms_rt_on_change'
LANGUAGE C;

CREATE FUNCTION cellcms_rt.refuse_truncate()
RETURNS trigger
AS 'MODULE_PATHNAME', 'cellcms_rt_refuse_truncate'
LANGUAGE C;

CREATE FUNCTION cellcms_rt.watch(
	relation			regclass,
	id_column			name DEFAULT 'id',
	type_column			name DEFAULT 'type',
	dataset_column		name DEFAULT 'dataset',
	data_column			name DEFAULT 'data',
	published_column	name DEFAULT 'published_at',
	dataset				text DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'cellcms_rt_watch'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION cellcms_rt.watch(regclass, name, name, name, name, name, text) IS
	'log and NOTIFY every change of a table; dataset => fixes the dataset of a table without a dataset column';

CREATE FUNCTION cellcms_rt.unwatch(relation regclass)
RETURNS boolean
AS 'MODULE_PATHNAME', 'cellcms_rt_unwatch'
LANGUAGE C VOLATILE STRICT;

CREATE FUNCTION cellcms_rt.prune(older_than interval DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'cellcms_rt_prune'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION cellcms_rt.prune(interval) IS
	'delete change log entries older than older_than (default: setting cellcms_rt.retention); returns the number deleted';

REVOKE ALL ON FUNCTION cellcms_rt.watch(regclass, name, name, name, name, name, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION cellcms_rt.unwatch(regclass) FROM PUBLIC;
REVOKE ALL ON FUNCTION cellcms_rt.prune(interval) FROM PUBLIC;

/*
 * DROP TABLE (or DROP TRIGGER) must not leave a stale row behind.  SECURITY
 * DEFINER because whoever drops a watched table need not be able to write
 * watched_tables.
 */
CREATE FUNCTION cellcms_rt.forget_dropped()
RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF EXISTS (SELECT FROM pg_event_trigger_dropped_objects()
			   WHERE object_type IN ('table', 'trigger')) THEN
		DELETE FROM cellcms_rt.watched_tables w
		WHERE NOT EXISTS (SELECT FROM pg_trigger t
						  WHERE t.tgrelid = w.table_name
						    AND t.tgfoid = 'cellcms_rt.on_change()'::regprocedure);
	END IF;
END
$$;

REVOKE ALL ON FUNCTION cellcms_rt.forget_dropped() FROM PUBLIC;

CREATE EVENT TRIGGER cellcms_rt_forget_dropped ON sql_drop
	EXECUTE FUNCTION cellcms_rt.forget_dropped();
