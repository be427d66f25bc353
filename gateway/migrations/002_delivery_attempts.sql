-- The delivery trail: every attempt a worker reported. `id` is the worker's attempt id,
-- which makes a repeated ReportStatus harmless.
CREATE TABLE delivery_attempts (
    id uuid PRIMARY KEY,
    notification_id uuid NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    channel smallint NOT NULL,
    provider text NOT NULL DEFAULT '',
    outcome smallint NOT NULL,
    provider_message_id text NOT NULL DEFAULT '',
    error text NOT NULL DEFAULT '',
    duration_us bigint NOT NULL DEFAULT 0,
    start_time timestamptz NOT NULL,
    attempt integer NOT NULL DEFAULT 0,
    generation integer NOT NULL DEFAULT 0,
    worker text NOT NULL DEFAULT '',
    detail text NOT NULL DEFAULT '',
    record_time timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX delivery_attempts_trail ON delivery_attempts (notification_id, start_time, record_time);
