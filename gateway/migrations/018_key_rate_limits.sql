-- Each API key's send rate (docs/scheduling.md, "Rate limits"): a token bucket of
-- `rate_per_second` refilled per second holding at most `rate_burst`. NULL: the gateway's
-- default (HERALD_GATEWAY_CLIENT_RATE_PER_SECOND / _BURST); a rate of 0: unlimited.
ALTER TABLE api_keys ADD COLUMN rate_per_second integer CHECK (rate_per_second >= 0);
ALTER TABLE api_keys ADD COLUMN rate_burst integer CHECK (rate_burst >= 1);
