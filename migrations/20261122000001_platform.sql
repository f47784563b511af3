-- The platform's data: what the background jobs read and write.
--
-- Money is NUMERIC(78,0) wei (any uint256 fits); points are BIGINT. Every table that jobs
-- write idempotently has the unique key that makes a second write a no-op.

CREATE TABLE users (
    id          BIGSERIAL PRIMARY KEY,
    handle      TEXT NOT NULL UNIQUE CHECK (length(handle) BETWEEN 1 AND 64),
    email       TEXT CHECK (email IS NULL OR email LIKE '%_@_%'),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE wallets (
    id          BIGSERIAL PRIMARY KEY,
    user_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    address     TEXT NOT NULL UNIQUE CHECK (address ~ '^0x[0-9a-f]{40}$'),
    chain_id    BIGINT NOT NULL CHECK (chain_id > 0),
    is_primary  BOOLEAN NOT NULL DEFAULT false,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- At most one primary wallet per user.
CREATE UNIQUE INDEX wallets_one_primary ON wallets (user_id) WHERE is_primary;

-- Cached balances: native (token = 'native') and ERC-20 (token = contract address), with the
-- block they were read at.
CREATE TABLE wallet_balances (
    wallet_id     BIGINT NOT NULL REFERENCES wallets (id) ON DELETE CASCADE,
    token         TEXT NOT NULL CHECK (token = 'native' OR token ~ '^0x[0-9a-f]{40}$'),
    balance       NUMERIC(78, 0) NOT NULL CHECK (balance >= 0),
    block_number  BIGINT NOT NULL CHECK (block_number >= 0),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (wallet_id, token)
);

CREATE TYPE market_state AS ENUM (
    'PROPOSED', 'APPROVED', 'REJECTED', 'ACTIVE', 'RESOLVING', 'DISPUTED', 'RESOLVED', 'CANCELLED'
);

CREATE TABLE markets (
    id                  BIGSERIAL PRIMARY KEY,
    on_chain_id         BIGINT UNIQUE CHECK (on_chain_id >= 0),
    proposer_id         BIGINT NOT NULL REFERENCES users (id),
    title               TEXT NOT NULL CHECK (length(title) > 0),
    state               market_state NOT NULL DEFAULT 'PROPOSED',
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    resolves_at         TIMESTAMPTZ NOT NULL,
    decided_at          TIMESTAMPTZ,
    -- The reported outcome of a binary market, once known.
    outcome             BOOLEAN,
    -- Set when the approval is confirmed on chain.
    approval_tx_hash    TEXT CHECK (approval_tx_hash ~ '^0x[0-9a-f]{64}$'),
    approval_block      BIGINT,
    CHECK (outcome IS NULL OR state IN ('RESOLVING', 'DISPUTED', 'RESOLVED'))
);
CREATE INDEX markets_by_state ON markets (state, created_at);

-- One vote per wallet per proposed market: like (true) or dislike (false).
CREATE TABLE proposal_votes (
    market_id   BIGINT NOT NULL REFERENCES markets (id) ON DELETE CASCADE,
    wallet_id   BIGINT NOT NULL REFERENCES wallets (id) ON DELETE CASCADE,
    likes       BOOLEAN NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (market_id, wallet_id)
);

CREATE TYPE dispute_state AS ENUM ('OPEN', 'UPHELD', 'REJECTED');

CREATE TABLE disputes (
    id          BIGSERIAL PRIMARY KEY,
    market_id   BIGINT NOT NULL REFERENCES markets (id) ON DELETE CASCADE,
    raised_by   BIGINT NOT NULL REFERENCES users (id),
    reason      TEXT NOT NULL,
    state       dispute_state NOT NULL DEFAULT 'OPEN',
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    decided_at  TIMESTAMPTZ
);
-- One open dispute per market at a time.
CREATE UNIQUE INDEX disputes_one_open ON disputes (market_id) WHERE state = 'OPEN';

-- One vote per juror per dispute: uphold (true) or reject (false).
CREATE TABLE dispute_votes (
    dispute_id  BIGINT NOT NULL REFERENCES disputes (id) ON DELETE CASCADE,
    juror_id    BIGINT NOT NULL REFERENCES users (id),
    uphold      BOOLEAN NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (dispute_id, juror_id)
);

-- Stakes on an outcome of a market.
CREATE TABLE positions (
    id          BIGSERIAL PRIMARY KEY,
    market_id   BIGINT NOT NULL REFERENCES markets (id),
    user_id     BIGINT NOT NULL REFERENCES users (id),
    outcome     BOOLEAN NOT NULL,
    stake       NUMERIC(78, 0) NOT NULL CHECK (stake > 0),
    payout      NUMERIC(78, 0) CHECK (payout >= 0),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX positions_by_market ON positions (market_id);

CREATE TYPE points_kind AS ENUM ('EARNED', 'BURNED', 'LOCKED', 'UNLOCKED');

-- The points ledger: append-only (a trigger refuses updates and deletes).
CREATE TABLE points_transactions (
    id          BIGSERIAL PRIMARY KEY,
    user_id     BIGINT NOT NULL REFERENCES users (id),
    kind        points_kind NOT NULL,
    amount      BIGINT NOT NULL CHECK (amount > 0),
    reason      TEXT NOT NULL CHECK (length(reason) > 0),
    tx_hash     TEXT CHECK (tx_hash ~ '^0x[0-9a-f]{64}$'),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX points_transactions_by_user ON points_transactions (user_id);
CREATE INDEX points_transactions_by_time ON points_transactions (created_at);

CREATE FUNCTION points_transactions_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'points_transactions is append-only: % refused', TG_OP;
END;
$$;
CREATE TRIGGER points_transactions_append_only
    BEFORE UPDATE OR DELETE ON points_transactions
    FOR EACH ROW EXECUTE FUNCTION points_transactions_append_only();

-- Per-user totals, recomputed from the ledger by rebuild_leaderboard.
CREATE TABLE points_ledgers (
    user_id       BIGINT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    balance       BIGINT NOT NULL,
    total_earned  BIGINT NOT NULL CHECK (total_earned >= 0),
    total_burned  BIGINT NOT NULL CHECK (total_burned >= 0),
    locked        BIGINT NOT NULL,
    tx_count      BIGINT NOT NULL CHECK (tx_count >= 0),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Ranked boards: 'all-time' and ISO weeks ('2026-W47'). A rebuild replaces a period's rows in
-- one transaction, so readers see the old board or the new one, never a mix.
CREATE TABLE leaderboard_entries (
    period      TEXT NOT NULL CHECK (period = 'all-time' OR period ~ '^\d{4}-W\d{2}$'),
    position    INTEGER NOT NULL CHECK (position > 0),
    rank        INTEGER NOT NULL CHECK (rank > 0 AND rank <= position),
    user_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    points      BIGINT NOT NULL,
    built_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (period, position),
    UNIQUE (period, user_id)
);

CREATE TABLE discussions (
    id          BIGSERIAL PRIMARY KEY,
    market_id   BIGINT NOT NULL REFERENCES markets (id) ON DELETE CASCADE,
    author_id   BIGINT NOT NULL REFERENCES users (id),
    content     TEXT NOT NULL CHECK (length(content) > 0),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    deleted_at  TIMESTAMPTZ
);
CREATE INDEX discussions_by_market_time ON discussions (market_id, created_at);

-- One snapshot per market per window; kept after pruning for the audit trail.
CREATE TABLE discussion_snapshots (
    id             BIGSERIAL PRIMARY KEY,
    market_id      BIGINT NOT NULL REFERENCES markets (id) ON DELETE CASCADE,
    cid            TEXT NOT NULL,
    message_count  INTEGER NOT NULL CHECK (message_count >= 0),
    window_start   TIMESTAMPTZ NOT NULL,
    window_end     TIMESTAMPTZ NOT NULL CHECK (window_end > window_start),
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    pruned_at      TIMESTAMPTZ,
    UNIQUE (market_id, window_start)
);

CREATE TYPE outbox_status AS ENUM ('PENDING', 'SIGNED', 'SUBMITTED', 'CONFIRMED', 'FAILED');

-- Transactions to send on chain. The idempotency key makes a re-run or a retry of the job
-- that produced a row a no-op.
CREATE TABLE chain_outbox (
    id               BIGSERIAL PRIMARY KEY,
    idempotency_key  TEXT NOT NULL UNIQUE,
    kind             TEXT NOT NULL,
    target           TEXT NOT NULL,
    args             JSONB NOT NULL,
    calldata         BYTEA,
    status           outbox_status NOT NULL DEFAULT 'PENDING',
    nonce            BIGINT CHECK (nonce >= 0),
    tx_hash          TEXT CHECK (tx_hash ~ '^0x[0-9a-f]{64}$'),
    attempts         INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error       TEXT,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (status = 'PENDING' OR nonce IS NOT NULL OR status = 'FAILED')
);
CREATE INDEX chain_outbox_by_status ON chain_outbox (status, id);

CREATE TABLE chain_cursors (
    name          TEXT PRIMARY KEY,
    block_number  BIGINT NOT NULL CHECK (block_number >= 0),
    block_hash    TEXT NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE chain_events (
    id            BIGSERIAL PRIMARY KEY,
    tx_hash       TEXT NOT NULL CHECK (tx_hash ~ '^0x[0-9a-f]{64}$'),
    log_index     INTEGER NOT NULL CHECK (log_index >= 0),
    block_number  BIGINT NOT NULL,
    block_hash    TEXT NOT NULL,
    contract      TEXT NOT NULL,
    event         TEXT NOT NULL,
    data          JSONB NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (tx_hash, log_index)
);

CREATE TABLE notifications (
    id          BIGSERIAL PRIMARY KEY,
    user_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    event       TEXT NOT NULL,
    payload     JSONB NOT NULL,
    dedupe_key  TEXT NOT NULL UNIQUE,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE notification_deliveries (
    id               BIGSERIAL PRIMARY KEY,
    notification_id  BIGINT NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    channel          TEXT NOT NULL CHECK (channel IN ('email', 'discord', 'slack', 'webhook')),
    attempt          INTEGER NOT NULL CHECK (attempt > 0),
    status           TEXT NOT NULL CHECK (status IN ('sent', 'failed', 'retrying')),
    response_code    INTEGER,
    error            TEXT,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
