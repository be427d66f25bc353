-- Claims: which worker holds which hop, until when; `done` once its outcome is reported.
CREATE TABLE claims (
    notification_id uuid NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    generation integer NOT NULL,
    channel smallint NOT NULL,
    attempt integer NOT NULL,
    worker text NOT NULL,
    -- The holder before the last takeover (NULL for a first claim).
    previous_worker text,
    lease_until timestamptz NOT NULL,
    done boolean NOT NULL DEFAULT false,
    claim_time timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (notification_id, generation, channel, attempt)
);
