-- The chain: the signer's nonce sequence, the transaction sender's bookkeeping and market
-- resolution.

-- One row per signer and chain: the next nonce to sign with. The sender locks this row for
-- the whole sign step, so nonces are handed out one at a time, in order, with no gaps.
CREATE TABLE chain_signers (
    address     TEXT NOT NULL CHECK (address ~ '^0x[0-9a-f]{40}$'),
    chain_id    BIGINT NOT NULL CHECK (chain_id > 0),
    next_nonce  BIGINT NOT NULL CHECK (next_nonce >= 0),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (address, chain_id)
);

-- What the sender needs to recover from a crash at any point: the signed bytes are stored
-- (with their hash and nonce) before they are broadcast, so a restart re-broadcasts the very
-- same transaction instead of signing a second one.
ALTER TABLE chain_outbox
    ADD COLUMN signer                    TEXT CHECK (signer ~ '^0x[0-9a-f]{40}$'),
    ADD COLUMN chain_id                  BIGINT,
    ADD COLUMN raw_tx                    BYTEA,
    ADD COLUMN gas_limit                 BIGINT,
    ADD COLUMN max_fee_per_gas           NUMERIC(78, 0),
    ADD COLUMN max_priority_fee_per_gas  NUMERIC(78, 0),
    -- Hashes of earlier attempts at this nonce (replaced for higher fees): any of them may
    -- still be the one that is mined.
    ADD COLUMN previous_hashes           TEXT[] NOT NULL DEFAULT '{}',
    ADD COLUMN signed_at                 TIMESTAMPTZ,
    ADD COLUMN submitted_at              TIMESTAMPTZ,
    ADD COLUMN block_number              BIGINT,
    ADD COLUMN block_hash                TEXT,
    ADD COLUMN confirmed_at              TIMESTAMPTZ,
    -- Set when an operator (or the escalation path) has looked at a failed row.
    ADD COLUMN escalated_at              TIMESTAMPTZ;
-- A nonce is used by at most one row of a signer.
CREATE UNIQUE INDEX chain_outbox_signer_nonce ON chain_outbox (signer, chain_id, nonce)
    WHERE nonce IS NOT NULL;

-- Market resolution: the oracle's report, the dispute window, the on-chain record and the
-- settlement.
ALTER TABLE markets
    ADD COLUMN reported_outcome        BOOLEAN,
    ADD COLUMN reported_at             TIMESTAMPTZ,
    ADD COLUMN dispute_window_ends_at  TIMESTAMPTZ,
    ADD COLUMN resolution_tx_hash      TEXT CHECK (resolution_tx_hash ~ '^0x[0-9a-f]{64}$'),
    ADD COLUMN resolution_block        BIGINT,
    ADD COLUMN resolved_at             TIMESTAMPTZ,
    ADD COLUMN pool                    NUMERIC(78, 0) CHECK (pool >= 0),
    ADD COLUMN fee                     NUMERIC(78, 0) CHECK (fee >= 0);
CREATE INDEX markets_resolving ON markets (dispute_window_ends_at)
    WHERE state IN ('RESOLVING', 'DISPUTED');

ALTER TABLE disputes
    ADD COLUMN resolution_tx_hash  TEXT CHECK (resolution_tx_hash ~ '^0x[0-9a-f]{64}$'),
    ADD COLUMN resolution_block    BIGINT;

-- The indexer re-reads events above a block after a reorg.
CREATE INDEX chain_events_by_block ON chain_events (block_number);
