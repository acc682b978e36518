-- The usual CellCMS documents table of SPEC §2, watched by cellcms_rt: the
-- database of `make run`, the integration tests, the SDK's tests and the
-- relay benchmark.
CREATE EXTENSION cellcms_rt;
CREATE TABLE documents (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  dataset      text NOT NULL DEFAULT 'production',
  type         text NOT NULL,
  data         jsonb NOT NULL DEFAULT '{}',
  published_at timestamptz
);
SELECT cellcms_rt.watch('documents');
