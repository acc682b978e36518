-- Four identical documents tables: (a) no trigger, (b) cellcms_rt, (c) a
-- PL/pgSQL trigger doing the same work as cellcms_rt (document image, change
-- log insert, NOTIFY), (d) a PL/pgSQL trigger that only NOTIFYs.
CREATE EXTENSION cellcms_rt;
CREATE SCHEMA bench;

CREATE FUNCTION bench.make_table(name text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE format('CREATE TABLE bench.%I (
		id				text PRIMARY KEY,
		dataset			text NOT NULL DEFAULT ''production'',
		type			text NOT NULL,
		data			jsonb NOT NULL DEFAULT ''{}'',
		published_at	timestamptz)', name);
END $$;
SELECT bench.make_table('docs_' || v) FROM unnest(array['a', 'b', 'c', 'd']) v;

-- (c)'s change log: the same shape and indexes as cellcms_rt.changes
CREATE TABLE bench.changes_plpgsql (
	position		bigserial PRIMARY KEY,
	txid			xid8 NOT NULL DEFAULT pg_current_xact_id(),
	dataset			text NOT NULL,
	document_id		text NOT NULL,
	document_type	text,
	operation		text NOT NULL CHECK (operation IN
					('create', 'update', 'delete', 'publish', 'unpublish')),
	ts				timestamptz NOT NULL,
	document		jsonb NOT NULL
);
CREATE INDEX ON bench.changes_plpgsql (txid);

CREATE FUNCTION bench.log_and_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	r		bench.docs_c;
	op		text;
	pos		bigint;
	ts		timestamptz := date_trunc('milliseconds', clock_timestamp());
BEGIN
	IF TG_OP = 'DELETE' THEN
		r := OLD; op := 'delete';
	ELSIF TG_OP = 'INSERT' THEN
		r := NEW; op := 'create';
	ELSE
		IF OLD IS NOT DISTINCT FROM NEW THEN
			RETURN NULL;
		END IF;
		r := NEW;
		op := CASE
			WHEN OLD.published_at IS NULL AND NEW.published_at IS NOT NULL THEN 'publish'
			WHEN OLD.published_at IS NOT NULL AND NEW.published_at IS NULL THEN 'unpublish'
			ELSE 'update' END;
	END IF;
	INSERT INTO bench.changes_plpgsql
		(dataset, document_id, document_type, operation, ts, document)
	VALUES (r.dataset, r.id, r.type, op, ts,
			CASE WHEN jsonb_typeof(r.data) = 'object' THEN r.data ELSE '{}' END
			|| (to_jsonb(r) - 'id' - 'type' - 'data')
			|| jsonb_build_object('_id', r.id, '_type', r.type))
	RETURNING position INTO pos;
	PERFORM pg_notify('cellcms_rt', json_build_object(
		'documentId', r.id, 'documentType', r.type, 'operation', op,
		'dataset', r.dataset,
		'ts', to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
		'position', pos, 'txid', pg_current_xact_id())::text);
	RETURN NULL;
END $$;

CREATE FUNCTION bench.notify_only() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	r		bench.docs_d;
BEGIN
	IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
	PERFORM pg_notify('cellcms_rt', json_build_object(
		'documentId', r.id, 'documentType', r.type,
		'operation', CASE TG_OP WHEN 'INSERT' THEN 'create'
					 WHEN 'DELETE' THEN 'delete' ELSE 'update' END,
		'dataset', r.dataset,
		'ts', to_char(clock_timestamp() AT TIME ZONE 'UTC',
					  'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))::text);
	RETURN NULL;
END $$;

SELECT cellcms_rt.watch('bench.docs_b');
CREATE TRIGGER log_and_notify AFTER INSERT OR UPDATE OR DELETE ON bench.docs_c
	FOR EACH ROW EXECUTE FUNCTION bench.log_and_notify();
CREATE TRIGGER notify_only AFTER INSERT OR UPDATE OR DELETE ON bench.docs_d
	FOR EACH ROW EXECUTE FUNCTION bench.notify_only();

-- Empties every table and log and loads nrows rows into each table, without
-- firing triggers (they are not what is measured then).
CREATE FUNCTION bench.reset(nrows integer) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	PERFORM cellcms_rt.unwatch('bench.docs_b');
	TRUNCATE bench.docs_a, bench.docs_b, bench.docs_c, bench.docs_d,
		bench.changes_plpgsql, cellcms_rt.changes;
	PERFORM cellcms_rt.watch('bench.docs_b');
	SET LOCAL session_replication_role = replica;
	INSERT INTO bench.docs_a (id, type, data)
		SELECT 'doc-' || i, 'post', '{"title": "hello", "n": 0}'
		FROM generate_series(1, nrows) i;
	INSERT INTO bench.docs_b SELECT * FROM bench.docs_a;
	INSERT INTO bench.docs_c SELECT * FROM bench.docs_a;
	INSERT INTO bench.docs_d SELECT * FROM bench.docs_a;
END $$;
