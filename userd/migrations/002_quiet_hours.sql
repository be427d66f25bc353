-- A user's own quiet window ("HH:MM" in their time_zone); NULL: the gateway's default.
-- start = end means no quiet hours at all.
ALTER TABLE users ADD COLUMN quiet_start time;
ALTER TABLE users ADD COLUMN quiet_end time;
ALTER TABLE users ADD CONSTRAINT users_quiet_hours_both
    CHECK ((quiet_start IS NULL) = (quiet_end IS NULL));
