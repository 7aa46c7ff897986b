-- ingestion: the record of imported files. A file is identified by its
-- SHA-256 per user: importing the same bytes again writes nothing and
-- answers with the first import. An import is 'pending' while its rows are
-- appended to the ledger and 'done' once they are committed; a pending
-- record whose import failed is removed, so a failed import leaves no trace.
CREATE SCHEMA ingestion;

CREATE TABLE ingestion.imports (
  id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id             uuid NOT NULL,
  status              text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done')),
  filename            text NOT NULL DEFAULT '',
  size_bytes          bigint NOT NULL,
  sha256              char(64) NOT NULL,
  format              smallint NOT NULL DEFAULT 0,
  account_id          text NOT NULL DEFAULT '',
  encrypted           boolean NOT NULL DEFAULT false,
  rows_read           integer NOT NULL DEFAULT 0,
  inserted            integer NOT NULL DEFAULT 0,
  skipped_duplicates  integer NOT NULL DEFAULT 0,
  skipped_zero_amount integer NOT NULL DEFAULT 0,
  rejected_count      integer NOT NULL DEFAULT 0,
  date_format         text NOT NULL DEFAULT '',
  min_date            date,
  max_date            date,
  created_at          timestamptz NOT NULL DEFAULT now()
);

-- One completed import per file and user.
CREATE UNIQUE INDEX imports_user_sha256_done ON ingestion.imports (user_id, sha256) WHERE status = 'done';
-- ListUploadedFiles: newest first.
CREATE INDEX imports_user_created ON ingestion.imports (user_id, created_at DESC, id DESC);
