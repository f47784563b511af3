-- Retention: the platform's figures every 15 minutes (platform_stats), and the indexes that let
-- prune_records find what is past its retention, oldest first, without reading whole tables.

-- One row per 15-minute period, written by platform_stats at the tick that ends it. The period
-- is derived from the tick, so a re-run of a tick finds its row taken (ON CONFLICT DO NOTHING).
-- Counts by state and status are JSON objects with every value of the enum, zeros included, so
-- a chart has a point for each state in every period.
CREATE TABLE platform_stats (
    period_start              TIMESTAMPTZ PRIMARY KEY,
    period_end                TIMESTAMPTZ NOT NULL CHECK (period_end > period_start),
    users                     BIGINT NOT NULL CHECK (users >= 0),
    wallets                   BIGINT NOT NULL CHECK (wallets >= 0),
    markets_by_state          JSONB NOT NULL CHECK (jsonb_typeof(markets_by_state) = 'object'),
    -- Votes cast in the hour that ends at period_end.
    proposal_votes_last_hour  BIGINT NOT NULL CHECK (proposal_votes_last_hour >= 0),
    dispute_votes_last_hour   BIGINT NOT NULL CHECK (dispute_votes_last_hour >= 0),
    outbox_by_status          JSONB NOT NULL CHECK (jsonb_typeof(outbox_by_status) = 'object'),
    -- Notifications not yet turned into delivery jobs.
    notifications_pending     BIGINT NOT NULL CHECK (notifications_pending >= 0),
    -- EARNED points with created_at in [period_start, period_end).
    points_issued             BIGINT NOT NULL CHECK (points_issued >= 0),
    recorded_at               TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The votes of the last hour, counted every 15 minutes.
CREATE INDEX proposal_votes_by_time ON proposal_votes (created_at);
CREATE INDEX dispute_votes_by_time ON dispute_votes (created_at);

-- Dispatched notifications by dispatch time, and the delivery log by time: the prune walks
-- both from the oldest. Undispatched rows have their own index (notifications_undispatched).
CREATE INDEX notifications_dispatched ON notifications (dispatched_at)
    WHERE dispatched_at IS NOT NULL;
CREATE INDEX notification_deliveries_by_time ON notification_deliveries (created_at);

-- Settled outbox rows by the time they settled (a settled row is not updated again).
CREATE INDEX chain_outbox_settled ON chain_outbox (updated_at)
    WHERE status IN ('CONFIRMED', 'FAILED');

-- Indexed events by the time they were recorded.
CREATE INDEX chain_events_by_time ON chain_events (created_at);
