"""The gateway's `notifications` database, one module per concern: `db` (connections),
`notifications` (accepted rows, the trail), `hops` (what the lifecycle writes: locks,
claims, attempts, final states), `outbox` (hops due for publishing), `apikeys`."""
