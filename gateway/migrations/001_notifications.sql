-- Notifications: one row per accepted notification, with its current hop and the
-- outbox state of that hop (the transactional outbox lives in this row).
-- Enums are stored as their herald.v1 numbers (Channel, Priority, MessageType);
-- status as text for readable queries.
CREATE TABLE notifications (
    id uuid PRIMARY KEY,
    client_id text NOT NULL,
    request_id text NOT NULL DEFAULT '',
    payload_hash bytea NOT NULL,
    correlation_id text NOT NULL,
    user_id uuid NOT NULL,
    channel smallint NOT NULL,
    route smallint[] NOT NULL,
    template_code text NOT NULL,
    template_version integer NOT NULL DEFAULT 0,
    language text NOT NULL DEFAULT '',
    priority smallint NOT NULL,
    message_type smallint NOT NULL,
    metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
    status text NOT NULL CHECK (status IN ('pending', 'delivered', 'failed', 'suppressed')),
    status_reason text NOT NULL DEFAULT '',
    delivered_channel smallint NOT NULL DEFAULT 0,
    delivered_provider text NOT NULL DEFAULT '',
    provider_message_id text NOT NULL DEFAULT '',
    -- The current hop: (generation, hop_channel = route[route_index], attempt).
    generation integer NOT NULL DEFAULT 1,
    route_index integer NOT NULL DEFAULT 0,
    hop_channel smallint NOT NULL DEFAULT 0,
    attempt integer NOT NULL DEFAULT 1,
    -- Bumped whenever the current hop changes: names one publication of `job`.
    hop integer NOT NULL DEFAULT 1,
    -- The serialized herald.v1.DeliveryJob of the current hop (NULL when suppressed).
    job bytea,
    -- Outbox: the hop still has to reach RabbitMQ; the relay takes rows whose
    -- publish_after has passed. deliver_after is when the hop should run (retry backoff).
    publish_pending boolean NOT NULL DEFAULT false,
    publish_after timestamptz,
    deliver_after timestamptz,
    published_at timestamptz,
    create_time timestamptz NOT NULL DEFAULT now(),
    update_time timestamptz NOT NULL DEFAULT now(),
    deliver_time timestamptz
);

-- Idempotency: one notification per (API client, request_id).
CREATE UNIQUE INDEX notifications_idempotency
    ON notifications (client_id, request_id) WHERE request_id <> '';

-- The relay's work list stays tiny: only hops not yet published.
CREATE INDEX notifications_outbox ON notifications (publish_after) WHERE publish_pending;

-- ListNotifications: newest first, by user or overall.
CREATE INDEX notifications_by_user ON notifications (user_id, create_time DESC, id DESC);
CREATE INDEX notifications_by_time ON notifications (create_time DESC, id DESC);
