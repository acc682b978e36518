-- the change log: one row per change of a watched table
\set VERBOSITY terse

CREATE VIEW log AS
	SELECT row_number() OVER (ORDER BY position) AS n, dataset, document_id,
		   document_type, operation, document
	FROM cellcms_rt.changes ORDER BY position;

CREATE FUNCTION uid(n integer) RETURNS uuid LANGUAGE sql IMMUTABLE
	AS $$ SELECT lpad(n::text, 32, '0')::uuid $$;

TRUNCATE cellcms_rt.changes;

-- every operation of the table in the specification
INSERT INTO documents (id, type, data)
	VALUES (uid(1), 'post', '{"slug": {"current": "a"}, "title": "A"}');
UPDATE documents SET published_at = '2025-01-15 12:00:00+00' WHERE id = uid(1);
UPDATE documents SET published_at = '2025-01-16 12:00:00+00' WHERE id = uid(1);
UPDATE documents SET published_at = NULL WHERE id = uid(1);
UPDATE documents SET data = data || '{"title": "B"}' WHERE id = uid(1);
DELETE FROM documents WHERE id = uid(1);
SELECT * FROM log;
TRUNCATE cellcms_rt.changes;

-- an UPDATE that changes nothing logs nothing
INSERT INTO documents (id, type) VALUES (uid(2), 'post');
UPDATE documents SET type = type, data = '{}', published_at = NULL;
UPDATE documents SET data = '{"a": 1}';
UPDATE documents SET data = '{"a": 1}';
SELECT n, operation, document FROM log;
TRUNCATE cellcms_rt.changes;

-- rolled back work logs nothing; a rolled back savepoint drops its part
BEGIN;
INSERT INTO documents (id, type) VALUES (uid(3), 'post');
ROLLBACK;
BEGIN;
UPDATE documents SET type = 'page' WHERE id = uid(2);
SAVEPOINT s;
INSERT INTO documents (id, type) VALUES (uid(3), 'post');
DELETE FROM documents WHERE id = uid(2);
ROLLBACK TO SAVEPOINT s;
INSERT INTO documents (id, type) VALUES (uid(4), 'post');
COMMIT;
SELECT n, document_id, document_type, operation FROM log;
TRUNCATE cellcms_rt.changes;
DELETE FROM documents;
TRUNCATE cellcms_rt.changes;

-- multi-row statements log one row per row, in statement order
INSERT INTO documents (id, type)
	SELECT uid(i), 'post' FROM generate_series(10, 13) i;
UPDATE documents SET published_at = '2025-01-15 12:00:00+00'
	WHERE id IN (uid(11), uid(12));
DELETE FROM documents WHERE id >= uid(12);
SELECT n, document_id, operation FROM log;
SELECT count(DISTINCT txid) AS transactions FROM cellcms_rt.changes;
DELETE FROM documents;
TRUNCATE cellcms_rt.changes;

-- the log stays usable in the transaction that wrote it, after a failed
-- statement, and from nested statements
CREATE FUNCTION refuse_fail() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.type = 'fail' THEN
		RAISE EXCEPTION 'refused';
	END IF;
	RETURN NULL;
END $$;
CREATE TRIGGER zz_refuse_fail AFTER INSERT ON documents
	FOR EACH ROW EXECUTE FUNCTION refuse_fail();
BEGIN;
INSERT INTO documents (id, type) VALUES (uid(30), 'post');
TRUNCATE cellcms_rt.changes;
INSERT INTO documents (id, type) VALUES (uid(31), 'post');
SAVEPOINT s;
INSERT INTO documents (id, type) VALUES (uid(32), 'post'), (uid(33), 'fail');
ROLLBACK TO SAVEPOINT s;
INSERT INTO documents (id, type) VALUES (uid(34), 'post');
DO $$
BEGIN
	FOR i IN 35 .. 36 LOOP
		INSERT INTO documents (id, type) VALUES (uid(i), 'post');
	END LOOP;
	BEGIN
		INSERT INTO documents (id, type) VALUES (uid(37), 'fail');
	EXCEPTION WHEN raise_exception THEN
		INSERT INTO documents (id, type) VALUES (uid(38), 'post');
	END;
END $$;
COMMIT;
SELECT n, document_id, operation FROM log;
INSERT INTO documents (id, type) VALUES (uid(39), 'fail');
SELECT count(*) FROM log;
DROP TRIGGER zz_refuse_fail ON documents;
DELETE FROM documents;
TRUNCATE cellcms_rt.changes;

-- a document that changes id or dataset leaves its old identity
INSERT INTO documents (id, type) VALUES (uid(5), 'post');
UPDATE documents SET id = uid(6) WHERE id = uid(5);
UPDATE documents SET dataset = 'staging' WHERE id = uid(6);
SELECT n, dataset, document_id, operation FROM log;
DELETE FROM documents;
TRUNCATE cellcms_rt.changes;

-- the document: _id and _type win over real columns, real columns over
-- data keys; a data value that is not an object is not merged
INSERT INTO documents (id, type, dataset, data) VALUES
	(uid(7), 'post', 'production',
	 '{"_id": "x", "_type": "x", "dataset": "x", "published_at": "x", "id": "x", "type": "x", "data": "x", "n": 1.50, "tags": ["a", null]}'),
	(uid(8), 'post', 'production', '[1, 2]'),
	(uid(9), 'post', 'production', '"text"');
SELECT n, document FROM log;
DELETE FROM documents;
TRUNCATE cellcms_rt.changes;

-- ts is the time of the change in whole milliseconds, not the start of the
-- transaction; txid is the writing transaction
BEGIN;
SELECT pg_sleep(0.01);
INSERT INTO documents (id, type) VALUES (uid(20), 'post');
SELECT ts > now() AS after_xact_start, ts <= clock_timestamp() AS not_future,
	   ts = date_trunc('milliseconds', ts) AS milliseconds,
	   txid = pg_current_xact_id() AS own_txid
FROM cellcms_rt.changes;
COMMIT;
DELETE FROM documents;
TRUNCATE cellcms_rt.changes;

-- a NULL type is logged as NULL; a NULL dataset cannot be delivered to
-- anybody: the write succeeds, the change is skipped with a warning
CREATE TABLE loose (id text PRIMARY KEY, type text, dataset text, data jsonb,
					published_at timestamptz);
SELECT cellcms_rt.watch('loose');
INSERT INTO loose VALUES ('a', NULL, 'production', NULL, NULL);
INSERT INTO loose VALUES ('b', 'post', NULL, '{}', NULL);
SELECT id FROM loose ORDER BY id;
SELECT n, document_id, document_type, document FROM log;
TRUNCATE cellcms_rt.changes;

-- huge and multibyte values are logged whole
INSERT INTO loose VALUES (repeat('x', 10000), repeat('é', 5000), repeat('d', 9000));
SELECT octet_length(document_id) AS id_bytes,
	   octet_length(document_type) AS type_bytes,
	   octet_length(dataset) AS dataset_bytes,
	   octet_length(document->>'_id') AS doc_id_bytes
FROM cellcms_rt.changes;
TRUNCATE cellcms_rt.changes;

-- quoted names, a fixed dataset, a json data column
INSERT INTO content."My Docs" VALUES
	('home', 'page', '{"title": "ignored", "slug": "home"}', NULL, 'Home');
UPDATE content."My Docs" SET "Live Since" = '2025-01-15 12:00:00+00';
INSERT INTO content.documents VALUES (42, 'page', 'About');
CREATE TABLE jsondocs (id integer PRIMARY KEY, type text, data json);
SELECT cellcms_rt.watch('jsondocs', dataset => 'production',
						published_column => NULL);
INSERT INTO jsondocs VALUES (1, 'post', '{"b": 2, "a": 1, "a": 3}');
SELECT n, dataset, document_id, document_type, operation, document FROM log;
TRUNCATE cellcms_rt.changes;

-- the table may change after watch(): new columns appear in the document,
-- a renamed watched column stops writes with a clear error until watch()
-- is called again
ALTER TABLE jsondocs ADD COLUMN extra integer DEFAULT 7;
INSERT INTO jsondocs VALUES (2, 'post', '{}');
ALTER TABLE jsondocs RENAME COLUMN type TO kind;
INSERT INTO jsondocs VALUES (3, 'post', '{}');
SELECT cellcms_rt.watch('jsondocs', type_column => 'kind',
						dataset => 'production', published_column => NULL);
INSERT INTO jsondocs VALUES (3, 'post', '{}');
SELECT n, document_id, document FROM log;
TRUNCATE cellcms_rt.changes;

-- writers need no privilege on the log
CREATE ROLE regress_cellcms_writer;
GRANT ALL ON loose TO regress_cellcms_writer;
SET ROLE regress_cellcms_writer;
INSERT INTO loose VALUES ('c', 'post', 'production', '{}', NULL);
SELECT count(*) FROM cellcms_rt.changes;
RESET ROLE;
SELECT n, document_id, operation FROM log;
REVOKE ALL ON loose FROM regress_cellcms_writer;
DROP ROLE regress_cellcms_writer;
TRUNCATE cellcms_rt.changes;

-- an unwatched table logs nothing
SELECT cellcms_rt.unwatch('loose');
INSERT INTO loose VALUES ('d', 'post', 'production', '{}', NULL);
SELECT count(*) FROM cellcms_rt.changes;
