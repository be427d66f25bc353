-- The suppression list: contact points (per channel) Herald does not send to, because a
-- provider's receipt said the address bounced, the recipient complained or opted out.
-- A removed entry stays, with who removed it and why.
CREATE TABLE suppressions (
    id uuid PRIMARY KEY,
    channel smallint NOT NULL,
    -- An email address lower-cased, a phone number as given (E.164).
    contact text NOT NULL,
    reason text NOT NULL,
    detail text NOT NULL DEFAULT '',
    provider text NOT NULL DEFAULT '',
    receipt_id uuid,
    notification_id uuid,
    create_time timestamptz NOT NULL DEFAULT now(),
    remove_time timestamptz,
    removed_by text NOT NULL DEFAULT '',
    remove_reason text NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX suppressions_active ON suppressions (channel, contact)
    WHERE remove_time IS NULL;
CREATE INDEX suppressions_by_time ON suppressions (create_time DESC, id DESC);
