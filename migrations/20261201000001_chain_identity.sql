-- A chain is its id and its genesis block's hash: two nodes with the same chain id (a
-- development chain started afresh, a second checkout's node over the same database) are two
-- chains, and a signer's nonces, its signed rows, the indexer's cursor and its events belong
-- to one. Records made before this migration have the genesis '' (unknown): the first chain
-- that runs with this id adopts the ones that matter (nonce row, in-flight rows, cursor,
-- events), or `chain reset` forgets them (db/outbox.rs).

ALTER TABLE chain_outbox ADD COLUMN genesis_hash TEXT
    CHECK (genesis_hash = '' OR genesis_hash ~ '^0x[0-9a-f]{64}$');
UPDATE chain_outbox SET genesis_hash = '' WHERE chain_id IS NOT NULL;
-- A nonce is used by at most one row of a signer on one chain; another chain with the same id
-- has its own sequence from 0.
DROP INDEX chain_outbox_signer_nonce;
CREATE UNIQUE INDEX chain_outbox_signer_nonce ON chain_outbox (signer, chain_id, genesis_hash, nonce)
    WHERE nonce IS NOT NULL;

ALTER TABLE chain_signers ADD COLUMN genesis_hash TEXT NOT NULL DEFAULT ''
    CHECK (genesis_hash = '' OR genesis_hash ~ '^0x[0-9a-f]{64}$');
ALTER TABLE chain_signers DROP CONSTRAINT chain_signers_pkey,
    ADD PRIMARY KEY (address, chain_id, genesis_hash);

ALTER TABLE chain_cursors
    ADD COLUMN chain_id BIGINT NOT NULL DEFAULT 0 CHECK (chain_id >= 0),
    ADD COLUMN genesis_hash TEXT NOT NULL DEFAULT ''
        CHECK (genesis_hash = '' OR genesis_hash ~ '^0x[0-9a-f]{64}$');
ALTER TABLE chain_cursors DROP CONSTRAINT chain_cursors_pkey,
    ADD PRIMARY KEY (name, chain_id, genesis_hash);

-- The same transaction hash can exist on two chains (the same key, nonce and call signed for
-- the same chain id gives the same bytes), so an event is unique per chain.
ALTER TABLE chain_events
    ADD COLUMN chain_id BIGINT NOT NULL DEFAULT 0 CHECK (chain_id >= 0),
    ADD COLUMN genesis_hash TEXT NOT NULL DEFAULT ''
        CHECK (genesis_hash = '' OR genesis_hash ~ '^0x[0-9a-f]{64}$');
ALTER TABLE chain_events DROP CONSTRAINT chain_events_tx_hash_log_index_key,
    ADD CONSTRAINT chain_events_once UNIQUE (chain_id, genesis_hash, tx_hash, log_index);
DROP INDEX chain_events_by_block;
CREATE INDEX chain_events_by_block ON chain_events (chain_id, genesis_hash, block_number);
