-- Notifications: the outbox rows become delivery jobs (dispatched_at), users choose their
-- channels (notification_preferences) and may register a signed webhook endpoint
-- (notification_webhooks), and every delivery attempt is logged with what the receiver said.

-- Set once the row's delivery jobs are enqueued; NULL rows are what dispatch_notifications
-- picks up, oldest first, through the partial index.
ALTER TABLE notifications ADD COLUMN dispatched_at TIMESTAMPTZ;
CREATE INDEX notifications_undispatched ON notifications (id) WHERE dispatched_at IS NULL;

-- What a platform channel (Discord, Slack) posts about: one post per subject, however many
-- users are notified of it. Derived from the payload so producers never set it.
ALTER TABLE notifications ADD COLUMN subject TEXT GENERATED ALWAYS AS (
    event || ':' || coalesce(payload ->> 'dispute_id', payload ->> 'market_id', payload ->> 'wallet', '')
) STORED;
CREATE INDEX notifications_by_subject ON notifications (subject);

-- A user's choice per channel, for one event or for all ('*'); the event's own row wins over
-- '*'. Without a row a channel is on when the user has its address (an email, a webhook).
-- Discord and Slack are the platform's channels, chosen by configuration, not by users.
CREATE TABLE notification_preferences (
    user_id  BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    channel  TEXT NOT NULL CHECK (channel IN ('email', 'webhook')),
    event    TEXT NOT NULL DEFAULT '*' CHECK (event IN ('*', 'market.approved', 'market.resolved',
                                                        'dispute.raised', 'dispute.resolved',
                                                        'balance.changed')),
    enabled  BOOLEAN NOT NULL,
    PRIMARY KEY (user_id, channel, event)
);

-- Whether a user gets an event on a channel: the event's own row, else the '*' row, else on.
-- (Whether the user has an address for the channel is checked by the caller.) One definition
-- for dispatch and for the send-time re-check, so the two can never disagree.
CREATE FUNCTION notification_enabled(p_user BIGINT, p_channel TEXT, p_event TEXT)
RETURNS BOOLEAN LANGUAGE sql STABLE AS $$
    SELECT coalesce(
        (SELECT p.enabled FROM notification_preferences p
         WHERE p.user_id = p_user AND p.channel = p_channel AND p.event IN (p_event, '*')
         ORDER BY p.event = '*'
         LIMIT 1),
        true)
$$;

-- A user's (or integration's) generic webhook: JSON posts signed with HMAC-SHA256 of `secret`.
CREATE TABLE notification_webhooks (
    user_id     BIGINT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    url         TEXT NOT NULL CHECK (url ~ '^https?://[^/]+'),
    secret      TEXT NOT NULL CHECK (length(secret) >= 16),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- What the receiver answered (the start of the body) and how long the attempt took.
ALTER TABLE notification_deliveries
    ADD COLUMN response_excerpt TEXT,
    ADD COLUMN duration_ms INTEGER CHECK (duration_ms >= 0);
CREATE INDEX notification_deliveries_by_notification
    ON notification_deliveries (notification_id, channel);
