-- Time-aware delivery (docs/scheduling.md): a notification can be `scheduled` (held until
-- its send_at, or the end of the user's quiet hours) and `cancelled` before it goes out.
ALTER TABLE notifications DROP CONSTRAINT notifications_status_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_status_check
    CHECK (status IN ('scheduled', 'pending', 'sent', 'delivered', 'failed', 'suppressed',
                      'cancelled'));

-- When the notification is due to go out (its send_at, or the end of quiet hours); NULL
-- for one that went at once. `deliver_after` stays the current hop's (retry backoff).
ALTER TABLE notifications ADD COLUMN send_at timestamptz;

-- The scheduler's work list: only scheduled rows, by due time.
CREATE INDEX notifications_scheduled ON notifications (send_at) WHERE status = 'scheduled';

-- A newly scheduled notification wakes every gateway's scheduler (payload: its due time,
-- seconds since the epoch), so one due sooner than the scheduler's next wake is not late.
-- Identical payloads in one transaction are delivered once.
CREATE FUNCTION herald_scheduled() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('herald_scheduled', extract(epoch FROM NEW.send_at)::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER notifications_scheduled
    AFTER INSERT ON notifications
    FOR EACH ROW WHEN (NEW.status = 'scheduled')
    EXECUTE FUNCTION herald_scheduled();

-- `cancelled` is final: 'final' callback endpoints hear of it too.
CREATE OR REPLACE FUNCTION herald_status_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO callback_events (endpoint_id, notification_id, client_id, request_id,
        status, previous_status, channel, provider, reason, metadata, occur_time)
    SELECT e.id, NEW.id, NEW.client_id, NEW.request_id, NEW.status, OLD.status,
        CASE WHEN NEW.delivered_channel <> 0 THEN NEW.delivered_channel
             ELSE NEW.hop_channel END,
        NEW.delivered_provider, NEW.status_reason, NEW.metadata, now()
    FROM callback_endpoints e
    WHERE e.client_id = NEW.client_id AND e.delete_time IS NULL
      AND (e.events = 'all'
           OR NEW.status IN ('delivered', 'failed', 'suppressed', 'cancelled'));
    IF EXISTS (SELECT 1 FROM status_watches w
               WHERE w.client_id = NEW.client_id
                 AND (w.notification_id IS NULL OR w.notification_id = NEW.id)) THEN
        PERFORM pg_notify('herald_status', NEW.id::text || ' ' || NEW.client_id);
    END IF;
    RETURN NULL;
END;
$$;
