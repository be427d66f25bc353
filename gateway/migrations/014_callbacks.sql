-- Telling the caller: each client's callback endpoints, the outbox of status changes to
-- post to them, every attempt to post one, and the gRPC watches under way.
--
-- A trigger on notifications writes the outbox rows, in the very transaction that
-- changes a status, whichever code path changed it (a worker's report, a receipt, a
-- sweep, a manual retry): no path can forget to, and a crash after the commit loses
-- nothing. The same trigger wakes the gateways watching that notification (NOTIFY, only
-- when a watch is registered: a NOTIFY serialises commits, so unwatched changes skip it).

CREATE TABLE callback_endpoints (
    id uuid PRIMARY KEY,
    client_id text NOT NULL,
    url text NOT NULL,
    -- 'all': every status change; 'final': delivered, failed, suppressed only.
    events text NOT NULL CHECK (events IN ('all', 'final')),
    description text NOT NULL DEFAULT '',
    created_by text NOT NULL DEFAULT '',
    create_time timestamptz NOT NULL DEFAULT now(),
    delete_time timestamptz,
    -- Per-endpoint backoff: while it fails, none of its callbacks is tried before
    -- next_attempt_time, so a dead endpoint costs one request per backoff, not one per
    -- callback, and never holds up another endpoint's.
    failing_since timestamptz,
    consecutive_failures integer NOT NULL DEFAULT 0,
    next_attempt_time timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX callback_endpoints_by_client ON callback_endpoints (client_id)
    WHERE delete_time IS NULL;

-- Signing secrets (Standard Webhooks, whsec_…). Rotation adds one and gives the old one
-- an expire_time: until then callbacks carry a signature under each.
CREATE TABLE callback_secrets (
    id uuid PRIMARY KEY,
    endpoint_id uuid NOT NULL REFERENCES callback_endpoints (id),
    secret text NOT NULL,
    create_time timestamptz NOT NULL DEFAULT now(),
    expire_time timestamptz
);
CREATE INDEX callback_secrets_by_endpoint ON callback_secrets (endpoint_id);

-- The outbox: one row per status change per endpoint, posted in `seq` order per
-- (endpoint, notification). The row is the event: its id is the `webhook-id` receivers
-- deduplicate by, and the body is made from these columns alone.
CREATE TABLE callback_events (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    seq bigserial NOT NULL,
    endpoint_id uuid NOT NULL REFERENCES callback_endpoints (id),
    notification_id uuid NOT NULL,
    client_id text NOT NULL,
    request_id text NOT NULL,
    status text NOT NULL,
    previous_status text NOT NULL,
    channel smallint NOT NULL,
    provider text NOT NULL,
    reason text NOT NULL,
    metadata jsonb NOT NULL,
    occur_time timestamptz NOT NULL,
    -- pending → delivered, or failed (retries used up, or a 4xx that says never), or
    -- cancelled (its endpoint was deleted).
    state text NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'delivered', 'failed', 'cancelled')),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_time timestamptz NOT NULL DEFAULT now(),
    -- A dispatcher took it until then (several gateways share the work).
    lease_until timestamptz,
    last_error text NOT NULL DEFAULT '',
    finish_time timestamptz
);
CREATE INDEX callback_events_due ON callback_events (next_attempt_time)
    WHERE state = 'pending';
CREATE INDEX callback_events_order ON callback_events (endpoint_id, notification_id, seq)
    WHERE state = 'pending';
CREATE INDEX callback_events_by_notification ON callback_events (notification_id, seq);

CREATE TABLE callback_attempts (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    event_id uuid NOT NULL REFERENCES callback_events (id),
    notification_id uuid NOT NULL,
    url text NOT NULL,
    status_code integer,
    duration_ms double precision NOT NULL,
    error text NOT NULL DEFAULT '',
    attempt_time timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX callback_attempts_by_notification ON callback_attempts (notification_id);

-- gRPC watches under way: a gateway registers one (a notification, or every notification
-- of a client) before reading the current state, renews it while the stream is open and
-- removes it when the stream ends; an expired one is a gateway that died.
CREATE TABLE status_watches (
    id uuid PRIMARY KEY,
    client_id text NOT NULL,
    notification_id uuid,
    expire_time timestamptz NOT NULL
);
CREATE INDEX status_watches_by_client ON status_watches (client_id);

CREATE FUNCTION herald_status_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO callback_events (endpoint_id, notification_id, client_id, request_id,
        status, previous_status, channel, provider, reason, metadata, occur_time)
    SELECT e.id, NEW.id, NEW.client_id, NEW.request_id, NEW.status, OLD.status,
        CASE WHEN NEW.delivered_channel <> 0 THEN NEW.delivered_channel
             ELSE NEW.hop_channel END,
        NEW.delivered_provider, NEW.status_reason, NEW.metadata, now()
    FROM callback_endpoints e
    WHERE e.client_id = NEW.client_id AND e.delete_time IS NULL
      AND (e.events = 'all' OR NEW.status IN ('delivered', 'failed', 'suppressed'));
    IF EXISTS (SELECT 1 FROM status_watches w
               WHERE w.client_id = NEW.client_id
                 AND (w.notification_id IS NULL OR w.notification_id = NEW.id)) THEN
        PERFORM pg_notify('herald_status', NEW.id::text || ' ' || NEW.client_id);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER notifications_status_changed
    AFTER UPDATE OF status ON notifications
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION herald_status_changed();
