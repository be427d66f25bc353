-- Delivery receipts: what providers report after they took a message (webhooks).
-- `sent`: the provider took it and will report; a receipt settles it.
ALTER TABLE notifications DROP CONSTRAINT notifications_status_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_status_check
    CHECK (status IN ('pending', 'sent', 'delivered', 'failed', 'suppressed'));
-- When the notification became `sent` (the receipt window counts from it).
ALTER TABLE notifications ADD COLUMN sent_time timestamptz;
CREATE INDEX notifications_sent ON notifications (sent_time) WHERE status = 'sent';

-- Every receipt, once per provider event (a duplicate has no effect). `attempt_id` is the
-- attempt it is about, as the message carried it or as its provider message id finds
-- it; a receipt whose attempt is not recorded yet waits (`applied_time` NULL) and is
-- applied once it is.
CREATE TABLE receipts (
    id uuid PRIMARY KEY,
    provider text NOT NULL,
    receipt_id text NOT NULL,
    event text NOT NULL,
    provider_message_id text NOT NULL DEFAULT '',
    attempt_id uuid,
    notification_id uuid,
    occur_time timestamptz NOT NULL,
    receive_time timestamptz NOT NULL DEFAULT now(),
    reason text NOT NULL DEFAULT '',
    code text NOT NULL DEFAULT '',
    applied_time timestamptz,
    effect text NOT NULL DEFAULT '',
    UNIQUE (provider, receipt_id)
);
CREATE INDEX receipts_waiting ON receipts (receive_time) WHERE applied_time IS NULL;
CREATE INDEX receipts_by_notification ON receipts (notification_id, occur_time);

-- A receipt without Herald's ids finds its attempt by the provider's message id.
CREATE INDEX delivery_attempts_by_provider_message
    ON delivery_attempts (provider, provider_message_id) WHERE provider_message_id <> '';

-- Single-use values of webhook signatures (Mailgun's token): a signature seen once is a
-- replay the second time. Kept a little longer than the signature tolerance.
CREATE TABLE webhook_nonces (
    provider text NOT NULL,
    nonce text NOT NULL,
    seen_time timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, nonce)
);
