-- Users, their push targets, and the cache repairs still owed to Redis.

CREATE TABLE users (
    id uuid PRIMARY KEY,
    name text NOT NULL,
    -- As email-validator normalised it; unique regardless of case (index below).
    email text NOT NULL,
    -- E.164, NULL when unknown.
    phone text,
    locale text NOT NULL,
    time_zone text NOT NULL,
    pref_email boolean NOT NULL,
    pref_sms boolean NOT NULL,
    pref_push boolean NOT NULL,
    -- argon2id PHC string; never leaves this table.
    password_hash text NOT NULL,
    -- Grows by one on every change (push targets included): the Redis cache keeps the
    -- version it holds and never replaces a newer one with an older one.
    version bigint NOT NULL DEFAULT 1,
    create_time timestamptz NOT NULL DEFAULT now(),
    update_time timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX users_email_key ON users (lower(email));
-- ListUsers pages in (create_time, id) order.
CREATE INDEX users_create_time_id_idx ON users (create_time, id);

CREATE TABLE push_targets (
    id uuid PRIMARY KEY,
    -- Orders a user's devices as they were added (several may share a create_time).
    seq bigint GENERATED ALWAYS AS IDENTITY,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    platform text NOT NULL CHECK (platform IN ('fcm', 'onesignal', 'webpush')),
    -- The FCM registration token, the OneSignal subscription id, or the Web Push endpoint.
    address text NOT NULL,
    -- Web Push keys (base64url), empty for the other platforms.
    p256dh text NOT NULL DEFAULT '',
    auth text NOT NULL DEFAULT '',
    label text NOT NULL DEFAULT '',
    create_time timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, address)
);

-- Users whose Redis entry may be older than their row: a write-through that failed
-- (Redis down or paused). Any userd process refreshes them once Redis answers.
CREATE TABLE cache_repairs (
    user_id uuid PRIMARY KEY,
    marked_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
