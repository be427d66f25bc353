"""The accept pipeline's Prometheus metrics: how big its runs are and where their time goes.

A run is one SendBatch, or the concurrent Sends gathered into one (`accept.Acceptor`).
Its stages, in order: `keys` (idempotency keys looked up; only when some item has a
request_id), `users` (the users fetched from userd), `renders` (several renderings in
one BatchRender), `prepare` (routes planned, rows and jobs built, and any user or
rendering fetched one by one), `store` (the INSERT, committed) and `publish` (until
RabbitMQ confirmed every first hop). Each histogram observation is one run's time in one
stage; `sum / count` per stage is the mean time a run spends there, which tells a slow
peer from a slow database or broker.
"""

from __future__ import annotations

from prometheus_client import Histogram

STAGES = ("keys", "users", "renders", "prepare", "store", "publish")

STAGE_SECONDS = Histogram(
    "herald_accept_stage_seconds",
    "Time one run of the accept pipeline spends in a stage, by stage.",
    ["stage"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
RUN_ITEMS = Histogram(
    "herald_accept_run_items",
    "Notifications in one run of the accept pipeline (a SendBatch or gathered Sends).",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
)
# One child per stage, bound once: `stage["users"].time()` times a block.
stage = {name: STAGE_SECONDS.labels(name) for name in STAGES}
