-- watch() and unwatch(): arguments, validation, the catalog, the triggers
\set VERBOSITY terse

CREATE TABLE documents (
	id				uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	dataset			text NOT NULL DEFAULT 'production',
	type			text NOT NULL,
	data			jsonb NOT NULL DEFAULT '{}',
	published_at	timestamptz
);

CREATE VIEW watched AS
	SELECT w.*,
		   (SELECT string_agg(t.tgname, ',' ORDER BY t.tgname)
			FROM pg_trigger t WHERE t.tgrelid = w.table_name) AS triggers
	FROM cellcms_rt.watched_tables w
	ORDER BY w.table_name::text;

-- defaults fit the usual table
SELECT cellcms_rt.watch('documents');
SELECT * FROM watched;
SELECT pg_get_triggerdef(oid) FROM pg_trigger
WHERE tgrelid = 'documents'::regclass ORDER BY tgname;

-- watching again is idempotent, and new options replace the old ones
SELECT cellcms_rt.watch('documents');
SELECT cellcms_rt.watch('documents', published_column => NULL);
SELECT * FROM watched;
SELECT cellcms_rt.watch('documents');

-- errors leave the watch as it was
SELECT cellcms_rt.watch(NULL);
SELECT cellcms_rt.watch('nosuchtable');
SELECT cellcms_rt.watch('documents', id_column => 'uuid');
SELECT cellcms_rt.watch('documents', type_column => 'kind');
SELECT cellcms_rt.watch('documents', dataset_column => 'ds');
SELECT cellcms_rt.watch('documents', data_column => 'body');
SELECT cellcms_rt.watch('documents', published_column => 'published');
SELECT cellcms_rt.watch('documents', id_column => NULL);
SELECT cellcms_rt.watch('documents', type_column => NULL);
SELECT cellcms_rt.watch('documents', dataset_column => NULL);
SELECT cellcms_rt.watch('documents', dataset => '');
SELECT cellcms_rt.watch('documents', dataset_column => 'type', dataset => 'x');
SELECT cellcms_rt.watch('documents', type_column => 'id');
SELECT cellcms_rt.watch('documents', dataset_column => 'type');
SELECT cellcms_rt.watch('documents', type_column => 'data');
SELECT cellcms_rt.watch('documents', dataset_column => 'published_at');
SELECT cellcms_rt.watch('documents', data_column => 'type');
SELECT cellcms_rt.watch('documents', published_column => 'data');
SELECT cellcms_rt.watch('documents', id_column => 'ctid');
SELECT * FROM watched;

CREATE TABLE no_pk (id text, type text, dataset text);
SELECT cellcms_rt.watch('no_pk', data_column => NULL, published_column => NULL);
CREATE VIEW docs_view AS SELECT * FROM documents;
SELECT cellcms_rt.watch('docs_view');
CREATE TABLE parted (id text NOT NULL, type text, dataset text, data jsonb,
					 published_at timestamptz) PARTITION BY LIST (dataset);
SELECT cellcms_rt.watch('parted');
SELECT cellcms_rt.watch('cellcms_rt.changes');

-- accepted types: domains, varchar, json, timestamp without time zone, date
CREATE DOMAIN doc_type AS varchar(40);
CREATE TABLE typed (
	id		bigint NOT NULL,
	type	doc_type,
	dataset	char(10),
	data	json,
	published_at date
);
SELECT cellcms_rt.watch('typed');
CREATE TABLE stamped (id text PRIMARY KEY, type name, dataset varchar,
					  data jsonb, published_at timestamp);
SELECT cellcms_rt.watch('stamped');

-- non-default column names, a fixed dataset, no data or published column
CREATE SCHEMA content;
CREATE TABLE content."My Docs" (
	"Doc Id"	text PRIMARY KEY,
	"Kind"		text,
	"Body"		jsonb,
	"Live Since" timestamptz,
	title		text
);
SELECT cellcms_rt.watch('content."My Docs"', id_column => 'Doc Id',
						type_column => 'Kind', data_column => 'Body',
						published_column => 'Live Since',
						dataset => 'marketing');
CREATE TABLE content.documents (key integer PRIMARY KEY, kind text,
								title text);
SELECT cellcms_rt.watch('content.documents', id_column => 'key',
						type_column => 'kind', dataset_column => NULL,
						dataset => 'production', data_column => NULL,
						published_column => NULL);
-- dataset => with dataset_column left at its default is the same thing
SELECT cellcms_rt.watch('content.documents', id_column => 'key',
						type_column => 'kind', dataset => 'staging',
						data_column => NULL, published_column => NULL);
SELECT * FROM watched;

-- TRUNCATE is refused while watched
TRUNCATE documents;
TRUNCATE content."My Docs";
\set VERBOSITY default
TRUNCATE content.documents;
\set VERBOSITY terse

-- unwatch() says whether the table was watched
SELECT cellcms_rt.unwatch('typed');
SELECT cellcms_rt.unwatch('typed');
SELECT cellcms_rt.unwatch('no_pk');
TRUNCATE typed;
SELECT * FROM watched;

-- dropping a watched table, or its trigger, forgets it
SELECT cellcms_rt.watch('typed');
DROP TABLE typed;
DROP TRIGGER cellcms_rt_changes ON stamped;
SELECT * FROM watched;
DROP TABLE stamped;

-- renaming a watched table keeps it watched
ALTER TABLE content.documents RENAME TO pages;
SELECT * FROM watched;
ALTER TABLE content.pages RENAME TO documents;

-- only superusers and roles granted EXECUTE may watch
CREATE ROLE regress_cellcms_editor;
GRANT ALL ON documents TO regress_cellcms_editor;
SET ROLE regress_cellcms_editor;
SELECT cellcms_rt.watch('documents');
SELECT cellcms_rt.unwatch('documents');
SELECT cellcms_rt.prune();
SELECT count(*) FROM cellcms_rt.watched_tables;
SELECT count(*) FROM cellcms_rt.changes;
RESET ROLE;
REVOKE ALL ON documents FROM regress_cellcms_editor;
DROP ROLE regress_cellcms_editor;
