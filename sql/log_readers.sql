-- changes_between(), prune() and the settings
\set VERBOSITY terse

SELECT cellcms_rt.watch('loose');
TRUNCATE cellcms_rt.changes;

-- changes_between(after, upto): what committed in between, once
CREATE TABLE snaps (name text PRIMARY KEY, snap pg_snapshot);
INSERT INTO snaps VALUES ('s0', pg_current_snapshot());
INSERT INTO loose VALUES ('e', 'post', 'production', '{}', NULL);
INSERT INTO loose VALUES ('f', 'post', 'production', '{}', NULL);
INSERT INTO snaps VALUES ('s1', pg_current_snapshot());
UPDATE loose SET type = 'page' WHERE id = 'e';
INSERT INTO snaps VALUES ('s2', pg_current_snapshot());
SELECT c.document_id, c.operation
FROM snaps a, snaps b, cellcms_rt.changes_between(a.snap, b.snap) c
WHERE a.name = 's0' AND b.name = 's1';
SELECT c.document_id, c.operation
FROM snaps a, snaps b, cellcms_rt.changes_between(a.snap, b.snap) c
WHERE a.name = 's1' AND b.name = 's2';
SELECT count(*)
FROM snaps a, cellcms_rt.changes_between(a.snap, a.snap) c
WHERE a.name = 's2';
SELECT count(*) FROM cellcms_rt.changes_between(NULL, pg_current_snapshot());
-- the reader's query uses the txid index
SET enable_seqscan = off;
EXPLAIN (COSTS OFF)
SELECT * FROM cellcms_rt.changes_between(pg_current_snapshot(),
										 pg_current_snapshot());
RESET enable_seqscan;

-- prune() deletes entries older than its argument or the retention setting
SHOW cellcms_rt.retention;
UPDATE cellcms_rt.changes SET ts = ts - interval '8 days'
	WHERE document_id = 'e' AND operation = 'create';
SELECT cellcms_rt.prune();
SELECT document_id, operation FROM cellcms_rt.changes ORDER BY position;
SELECT cellcms_rt.prune(interval '1 hour');
UPDATE cellcms_rt.changes SET ts = ts - interval '2 hours';
SELECT cellcms_rt.prune(interval '1 hour');
SELECT count(*) FROM cellcms_rt.changes;

-- many batches
INSERT INTO loose SELECT 'g' || i, 'post', 'production', '{}', NULL
	FROM generate_series(1, 25000) i;
UPDATE cellcms_rt.changes SET ts = ts - interval '1 day'
	WHERE position < (SELECT min(position) + 24000 FROM cellcms_rt.changes);
SET cellcms_rt.retention = '12h';
SHOW cellcms_rt.retention;
SELECT cellcms_rt.prune();
SELECT count(*) FROM cellcms_rt.changes;
SET cellcms_rt.retention = 3600;
SHOW cellcms_rt.retention;
RESET cellcms_rt.retention;
SET cellcms_rt.retention = 0;

-- the channel
SHOW cellcms_rt.channel;
SET cellcms_rt.channel = '';
SET cellcms_rt.channel = 'a_channel_name_that_is_longer_than_sixty_three_bytes_which_notify_refuses';
SET cellcms_rt.channel = 'cms';
SHOW cellcms_rt.channel;
RESET cellcms_rt.channel;
SET cellcms_rt.no_such_setting = 1;

-- cellcms_rt's settings are for superusers
CREATE ROLE regress_cellcms_user;
SET ROLE regress_cellcms_user;
SET cellcms_rt.channel = 'elsewhere';
SET cellcms_rt.retention = '1d';
RESET ROLE;
DROP ROLE regress_cellcms_user;
