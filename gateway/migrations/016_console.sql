-- The operator console (console/, docs/console.md).
--
-- Its sessions: the browser holds a random token in an HttpOnly cookie; only the token's
-- SHA-256 is kept. A session belongs to the API key it was opened with: revoking the key
-- ends it (the key is checked on every request), and so does logout or expire_time.
CREATE TABLE console_sessions (
    token_hash bytea PRIMARY KEY,
    key_id text NOT NULL REFERENCES api_keys (id),
    -- Every form and htmx request that changes anything carries it (CSRF).
    csrf_token text NOT NULL,
    create_time timestamptz NOT NULL DEFAULT now(),
    expire_time timestamptz NOT NULL
);
CREATE INDEX console_sessions_expired ON console_sessions (expire_time);

-- Activity's and Failed's filters, paged newest first (keyset) over a million rows.
CREATE INDEX notifications_by_status ON notifications (status, create_time DESC, id DESC);
CREATE INDEX notifications_by_template ON notifications (template_code, create_time DESC, id DESC);
CREATE INDEX notifications_by_channel ON notifications (channel, create_time DESC, id DESC);
CREATE INDEX notifications_by_message_type
    ON notifications (message_type, create_time DESC, id DESC);

-- Providers (sends, failures and latency over the last hour) and the sandbox inbox.
CREATE INDEX delivery_attempts_by_provider ON delivery_attempts (provider, start_time DESC);
CREATE INDEX delivery_attempts_by_time ON delivery_attempts (start_time DESC);
