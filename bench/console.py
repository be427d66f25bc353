"""`python -m bench.console`: how fast the operator console's pages answer with 100,000
notifications stored (docs/console.md, Speed).

Starts an isolated stack (bench/stack.py: databases, vhost and Redis prefix of its own),
creates users and a template through the REST edge, sends a few notifications for real
(delivered by the sandbox, so their jobs and trails are real), then copies them in SQL
into `--rows` notifications (spread over the last 7 days; a tenth failed, statuses,
channels, templates and users mixed) each with a delivery attempt. It signs in to the
console as an operator would and times each page `--repeat` times, sequentially, and
prints the median, p95 and worst of each; every page must answer under `--budget-ms`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import orjson
import psycopg

from bench.processes import ROOT, Servers
from bench.stack import Stack

RESULTS = ROOT / "bench" / "results"
SEED_USERS = 20
REAL_SENDS = 40


@dataclass(frozen=True)
class Timing:
    page: str
    median_ms: float
    p95_ms: float
    worst_ms: float
    status: int


def _fill(dsn: str, rows: int) -> None:
    """Copies the real notifications (and their attempts) into `rows` in total."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            """
            WITH src AS (
                SELECT row_number() OVER (ORDER BY id) - 1 AS k, * FROM notifications
            ), n AS (SELECT count(*) AS c FROM src)
            INSERT INTO notifications (id, client_id, request_id, payload_hash, correlation_id,
                user_id, channel, route, template_code, template_version, language, priority,
                message_type, metadata, status, status_reason, delivered_channel,
                delivered_provider, provider_message_id, generation, route_index, hop_channel,
                attempt, hop, job, create_time, update_time, deliver_time)
            SELECT gen_random_uuid(), s.client_id, '', s.payload_hash, md5(g::text), s.user_id,
                s.channel, s.route,
                CASE WHEN g %% 7 = 0 THEN 'bench/other-' || (g %% 13) ELSE s.template_code END,
                s.template_version, s.language, s.priority, s.message_type, s.metadata,
                CASE WHEN g %% 10 = 0 THEN 'failed' WHEN g %% 97 = 0 THEN 'pending'
                     ELSE 'delivered' END,
                CASE WHEN g %% 10 = 0 THEN 'sandbox: simulated failure ' || (g %% 5) ELSE '' END,
                s.delivered_channel, s.delivered_provider, s.provider_message_id,
                1, 0, s.hop_channel, 1, 1, s.job, t, t, t
            FROM generate_series(1, %s) AS g
            CROSS JOIN n
            JOIN src s ON s.k = g %% n.c
            CROSS JOIN LATERAL (
                SELECT now() - make_interval(secs => (g * 604800.0 / %s)) AS t
            ) AS at
            """,
            (rows, rows),
        )
        conn.execute(
            """
            INSERT INTO delivery_attempts (id, notification_id, channel, provider, outcome,
                provider_message_id, error, duration_us, start_time, attempt, generation,
                worker, detail)
            SELECT gen_random_uuid(), n.id, n.hop_channel, 'sandbox',
                CASE WHEN n.status = 'failed' THEN 3 ELSE 1 END, '', n.status_reason,
                200 + (hashtext(n.id::text) & 1023), n.create_time, 1, 1, 'bench', '{}'
            FROM notifications n WHERE n.request_id = ''
            """
        )
        conn.execute("ANALYZE")


def _sign_in(client: httpx.Client, key: str) -> None:
    client.get("/console/login")
    answer = client.post(
        "/console/login",
        data={"api_key": key, "login_token": client.cookies.get("herald_console_login", "")},
    )
    if answer.status_code != 303:
        raise SystemExit(f"console sign-in failed: {answer.status_code} {answer.text[:300]}")


def _time(client: httpx.Client, page: str, path: str, repeat: int, **post: str) -> Timing:
    times: list[float] = []
    status = 0
    for _ in range(repeat):
        began = time.perf_counter()
        answer = client.post(path, data=post) if post else client.get(path)
        times.append((time.perf_counter() - began) * 1000)
        status = answer.status_code
        if status >= 400:
            raise SystemExit(f"{page} ({path}) answered {status}: {answer.text[:300]}")
    times.sort()
    p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
    return Timing(page, statistics.median(times), p95, times[-1], status)


def _deep_token(client: httpx.Client, pages: int) -> str:
    """The `after` cursor `pages` pages into Activity (followed link by link)."""
    token = ""
    for _ in range(pages):
        answer = client.get("/console/", params={"after": token} if token else None)
        marker = 'href="/console/?after='
        text = answer.text
        if marker not in text:
            break
        token = text.split(marker, 1)[1].split('"', 1)[0].replace("&amp;", "&")
    return token


def run(rows: int, repeat: int, budget_ms: float) -> int:
    logs = Path(tempfile.mkdtemp(prefix="herald-bench-console-"))
    stack = Stack(Servers.from_env(), logs, log_level="WARNING")
    try:
        stack.start()
        stack.restart_gateway(
            {"HERALD_CONSOLE_WORKER_METRICS_URLS": ",".join(stack.worker_metrics_urls())}
        )
        seed = stack.seed(SEED_USERS)
        headers = {"Authorization": f"Bearer {seed.api_key}"}
        with httpx.Client(base_url=stack.rest_url, headers=headers, timeout=30) as api:
            sent = []
            for number in range(REAL_SENDS):
                answer = api.post(
                    "/api/v1/notifications/",
                    json={
                        "notification_type": "email",
                        "user_id": seed.user_ids[number % SEED_USERS],
                        "template_code": seed.template_code,
                        "variables": {"name": f"User {number}", "link": "https://example.com"},
                        "request_id": f"console-bench-{number}",
                    },
                )
                sent.append(answer.json()["notification_id"])
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                last = api.get(f"/api/v1/notifications/{sent[-1]}").json()
                if last["status"] == "delivered":
                    break
                time.sleep(0.2)
            user_email = api.get(f"/api/v1/users/{seed.user_ids[0]}").json()["email"]
        began = time.monotonic()
        _fill(stack.notifications_dsn, rows - REAL_SENDS)
        print(f"seeded {rows} notifications in {time.monotonic() - began:.1f} s", flush=True)

        with httpx.Client(base_url=stack.rest_url, timeout=30) as client:
            _sign_in(client, seed.api_key)
            with psycopg.connect(stack.notifications_dsn) as conn:
                failed_row = conn.execute(
                    "SELECT id FROM notifications WHERE status = 'failed' LIMIT 1"
                ).fetchone()
            assert failed_row is not None
            deep = _deep_token(client, 20)
            csrf = client.get("/console/").text.split('"X-CSRF-Token": "', 1)[1].split('"', 1)[0]
            client.headers["X-CSRF-Token"] = csrf
            code = quote(seed.template_code)
            pages = [
                ("Activity", "/console/"),
                ("Activity, live rows", "/console/activity/rows"),
                ("Activity, 21st page (keyset)", f"/console/?after={deep}"),
                ("Activity, status=failed", "/console/?status=failed"),
                ("Activity, channel=sms", "/console/?channel=sms"),
                ("Activity, rare template", "/console/?template=bench/other-3"),
                ("Activity, one user", f"/console/?user={seed.user_ids[3]}"),
                (
                    "Activity, a past hour",
                    "/console/?since=2000-01-01T00:00&until=2000-01-01T01:00",
                ),
                ("Story (delivered)", f"/console/notifications/{sent[0]}"),
                ("Story (failed)", f"/console/notifications/{failed_row[0]}"),
                ("Story's email HTML", f"/console/notifications/{sent[0]}/email"),
                ("Failed", "/console/failed"),
                ("Providers", "/console/providers"),
                ("Templates", "/console/templates"),
                ("Template (versions, diff)", f"/console/templates/view?code={code}"),
                ("Users (by email)", f"/console/users?q={quote(user_email)}"),
                ("Sandbox inbox", "/console/inbox"),
                ("API keys", "/console/keys"),
            ]
            timings = [_time(client, name, path, repeat) for name, path in pages]
            timings.append(
                _time(
                    client,
                    "Template preview (POST)",
                    "/console/templates/preview",
                    repeat,
                    code=seed.template_code,
                    **{"var.name": "Ada", "var.link": "https://example.com"},
                )
            )
    finally:
        stack.close()
    width = max(len(t.page) for t in timings)
    print(f"{'page':<{width}}  median   p95    worst  (ms, {repeat} runs each, {rows} rows)")
    for t in timings:
        print(f"{t.page:<{width}}  {t.median_ms:6.1f} {t.p95_ms:6.1f} {t.worst_ms:6.1f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"console-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_bytes(orjson.dumps({"rows": rows, "repeat": repeat, "pages": timings}))
    slow = [t for t in timings if t.p95_ms > budget_ms]
    for t in slow:
        print(f"over the {budget_ms:g} ms budget: {t.page} (p95 {t.p95_ms:.1f} ms)")
    print(f"written {out.relative_to(ROOT)}")
    return 1 if slow else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000, help="notifications stored")
    parser.add_argument("--repeat", type=int, default=20, help="requests per page")
    parser.add_argument("--budget-ms", type=float, default=200.0, help="p95 limit per page")
    args = parser.parse_args()
    return run(args.rows, args.repeat, args.budget_ms)


if __name__ == "__main__":
    sys.exit(main())
