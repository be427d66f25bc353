-- Manual retries of failed notifications: who asked, why, which generation it started.
CREATE TABLE retries (
    notification_id uuid NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    generation integer NOT NULL,
    requested_by text NOT NULL,
    reason text NOT NULL DEFAULT '',
    request_time timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (notification_id, generation)
);
