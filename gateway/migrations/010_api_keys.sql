-- API keys of the REST edge. A key is `hk_<id>_<secret>`, shown once at creation; only
-- its SHA-256 is kept (keys are 256-bit random tokens, so a fast hash is enough: there is
-- no low-entropy password to stretch). Revoked keys stay for the record.
CREATE TABLE api_keys (
    id text PRIMARY KEY,
    name text NOT NULL,
    scopes text[] NOT NULL CHECK (cardinality(scopes) > 0),
    key_hash bytea NOT NULL,
    create_time timestamptz NOT NULL DEFAULT now(),
    revoke_time timestamptz
);
