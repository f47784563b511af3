-- Balance sync runs: one sync_balances tick fans out batches of wallets as a flow, each batch
-- records what it did in sync_batches, and the flow's callback (record_sync_run) sums them
-- into one sync_runs row once every batch finished.

-- What one batch of a run did. A batch run again (a retry, a lost lease) adds the balances it
-- changed this time, which are changes a first run did not write.
CREATE TABLE sync_batches (
    id            BIGSERIAL PRIMARY KEY,
    run_id        TEXT NOT NULL,
    from_id       BIGINT NOT NULL,
    wallets       INTEGER NOT NULL CHECK (wallets >= 0),
    changed       INTEGER NOT NULL CHECK (changed >= 0),
    block_number  BIGINT NOT NULL CHECK (block_number >= 0),
    synced_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (run_id, from_id)
);

-- One row per run, written once (a callback run again finds its row taken).
CREATE TABLE sync_runs (
    run_id          TEXT PRIMARY KEY,
    started_at      TIMESTAMPTZ NOT NULL,
    finished_at     TIMESTAMPTZ NOT NULL CHECK (finished_at >= started_at),
    duration_ms     BIGINT NOT NULL CHECK (duration_ms >= 0),
    batches         INTEGER NOT NULL CHECK (batches >= 0),
    failed_batches  INTEGER NOT NULL CHECK (failed_batches >= 0 AND failed_batches <= batches),
    wallets         BIGINT NOT NULL CHECK (wallets >= 0),
    changed         BIGINT NOT NULL CHECK (changed >= 0),
    -- The newest block a batch read at; NULL when no batch succeeded.
    block_number    BIGINT
);

-- prune_records walks both from the oldest (retention.sync_runs).
CREATE INDEX sync_runs_by_time ON sync_runs (started_at);
CREATE INDEX sync_batches_by_time ON sync_batches (synced_at);
