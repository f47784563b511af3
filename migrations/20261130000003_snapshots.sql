-- Discussion snapshots on IPFS: the parts of a split day, and the index of what is to prune.
--
-- A day that does not fit in one 256 KiB block is stored as parts plus an index document;
-- `cid` is then the index's CID and `part_cids` the parts', in order, so that pruning can unpin
-- every part without fetching the index. A one-block day has no parts.
ALTER TABLE discussion_snapshots
    ADD COLUMN part_cids TEXT[] NOT NULL DEFAULT '{}',
    -- CIDv1 in base32, as Kubo prints it for `cid-version=1`.
    ADD CONSTRAINT discussion_snapshots_cid_base32 CHECK (cid ~ '^b[a-z2-7]{20,}$'),
    ADD CONSTRAINT discussion_snapshots_pruned_after_created
        CHECK (pruned_at IS NULL OR pruned_at >= created_at);

-- prune_snapshots reads the snapshots still pinned, oldest first.
CREATE INDEX discussion_snapshots_pinned ON discussion_snapshots (created_at)
    WHERE pruned_at IS NULL;
