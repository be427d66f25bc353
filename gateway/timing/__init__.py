"""Time-aware delivery: when a notification goes out (send_at, quiet hours), the scheduler
that releases it on time, and the rate limits that pace callers (docs/scheduling.md)."""
