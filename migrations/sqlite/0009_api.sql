-- The HTTP API and the drop folder (SQLite). Keep in step with migrations/postgres/0009_api.sql.

-- An optional RMA (return authorisation) number per loan: shipments CSV/API column rma_number.
ALTER TABLE shipments ADD COLUMN rma_number TEXT;

-- API bearer tokens: only the SHA-256 of the token is stored. A name has at most one token in
-- force; a revoked token stays (revoked_at set) so the audit log's `token:NAME` keeps meaning.
CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY,
    name         TEXT NOT NULL,
    token_sha256 TEXT NOT NULL UNIQUE,
    read_only    BOOLEAN NOT NULL,
    created_at   BIGINT NOT NULL,
    revoked_at   BIGINT
);
CREATE UNIQUE INDEX api_tokens_active_name ON api_tokens (name) WHERE revoked_at IS NULL;

-- Drop-folder files already imported, keyed by name and content hash. Written in the
-- transaction of the import itself, so a crash between the commit and moving the file to
-- done/ is recognised on restart (the file is moved, not imported again).
CREATE TABLE import_files (
    file_name   TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    rows        BIGINT NOT NULL,
    imported_at BIGINT NOT NULL,
    PRIMARY KEY (file_name, sha256)
);
