-- Every API key belongs to a client; a key made before clients existed is its own client
-- (its id), which is the client_id its notifications already record.
ALTER TABLE api_keys ADD COLUMN client_id text;
UPDATE api_keys SET client_id = id;
ALTER TABLE api_keys ALTER COLUMN client_id SET NOT NULL;
CREATE INDEX api_keys_by_client ON api_keys (client_id);

-- Least-privilege scopes (gateway/apikeys/scopes.py): send -> notifications:send;
-- read -> notifications:read, users:read, templates:read; admin stays admin.
UPDATE api_keys SET scopes = ARRAY(
    SELECT DISTINCT granted FROM unnest(scopes) AS old,
        unnest(CASE old
            WHEN 'send' THEN ARRAY['notifications:send']
            WHEN 'read' THEN ARRAY['notifications:read', 'users:read', 'templates:read']
            ELSE ARRAY[old]
        END) AS granted
    ORDER BY granted);

-- A client's notifications, newest first (reads and lists are per client).
CREATE INDEX notifications_by_client ON notifications (client_id, create_time DESC, id DESC);
