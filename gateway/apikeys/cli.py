"""`python -m gateway apikeys create|list|revoke`: manage the REST edge's API keys.

    python -m gateway apikeys create --name billing-prod --client billing \
        --scopes notifications:send,notifications:read
    python -m gateway apikeys list
    python -m gateway apikeys rate 3f9a1c0b7d2e 100 --burst 200   # 0: unlimited
    python -m gateway apikeys rate 3f9a1c0b7d2e default
    python -m gateway apikeys revoke 3f9a1c0b7d2e

`create` prints the key once; only its hash is stored. Without `--client` the key starts
a new client of its own (named by the key's id). `--json` prints machine-readable
output. Running gateways learn of a revocation at once through PostgreSQL's NOTIFY (at
most HERALD_GATEWAY_API_KEY_CACHE_SECONDS while a gateway's listening connection is down).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import Any

import orjson
import psycopg
from psycopg.rows import dict_row

from gateway import MIGRATIONS
from gateway.apikeys import service
from gateway.apikeys.scopes import Scope
from gateway.apikeys.service import ApiKey, InvalidKeyRequest
from gateway.settings import GatewaySettings
from mesh import migrations
from mesh.logging import configure_logging
from mesh.settings import load_settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gateway apikeys", description="Manage the REST edge's API keys."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="create a key and print it (once)")
    create.add_argument("--name", required=True, help="who or what uses the key")
    create.add_argument(
        "--scopes",
        required=True,
        help="comma-separated: " + ", ".join(s.value for s in Scope) + " (legacy: send, read)",
    )
    create.add_argument(
        "--client", default="", help="the client the key belongs to (default: a new one)"
    )
    create.add_argument(
        "--rate",
        type=int,
        default=None,
        help="sends per second (0: unlimited; default: the "
        "gateway's HERALD_GATEWAY_CLIENT_RATE_PER_SECOND)",
    )
    create.add_argument("--burst", type=int, default=None, help="sends at once (default: rate)")
    create.add_argument("--json", action="store_true", help="print JSON")
    listing = commands.add_parser("list", help="list keys (never their secrets)")
    listing.add_argument("--json", action="store_true", help="print JSON")
    rate = commands.add_parser("rate", help="set a key's send rate")
    rate.add_argument("id", help="the key id (the part after hk_)")
    rate.add_argument("rate", help="sends per second (0: unlimited), or 'default'")
    rate.add_argument("--burst", type=int, default=None, help="sends at once (default: rate)")
    revoke = commands.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("id", help="the key id (the part after hk_)")
    return parser


def as_dict(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "name": key.name,
        "client_id": key.client_id,
        "scopes": sorted(s.value for s in key.scopes),
        "created_at": key.create_time.isoformat(),
        "revoked_at": key.revoke_time.isoformat() if key.revoke_time else None,
        "rate_per_second": key.rate[0] if key.rate else None,
        "rate_burst": key.rate[1] if key.rate else None,
    }


def _number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise service.InvalidKeyRequest(
            f"rate must be a number or 'default', not {text!r}"
        ) from None


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


async def _run(args: argparse.Namespace, settings: GatewaySettings) -> int:
    await migrations.prepare(settings.postgres_url, settings.database, MIGRATIONS)
    url = settings.database_url(settings.database)
    async with await psycopg.AsyncConnection.connect(
        url, autocommit=True, row_factory=dict_row
    ) as conn:
        if args.command == "create":
            new = await service.create(
                conn,
                name=args.name,
                scopes=service.parse_scopes(args.scopes),
                client_id=args.client,
                rate=service.check_rate(args.rate, args.burst),
            )
            if args.json:
                _out(orjson.dumps({**as_dict(new.key), "key": new.token}).decode())
            else:
                scopes = ",".join(sorted(s.value for s in new.key.scopes))
                _out(
                    f"created key {new.key.id} ({new.key.name}; client {new.key.client_id}; "
                    f"scopes: {scopes})"
                )
                _out(new.token)
                _out("Store it now: it is not shown again.")
            return 0
        if args.command == "list":
            keys = [as_dict(k) for k in await service.list_keys(conn)]
            if args.json:
                _out(orjson.dumps(keys).decode())
            else:
                for key in keys:
                    state = f"revoked {key['revoked_at']}" if key["revoked_at"] else "active"
                    scopes = ",".join(key["scopes"])
                    _out(
                        f"{key['id']}  {key['name']}  {key['client_id']}  {scopes}  "
                        f"{key['created_at']}  {state}"
                    )
            return 0
        if args.command == "rate":
            per_second = None if args.rate == "default" else _number(args.rate)
            rate = service.check_rate(per_second, args.burst)
            if await service.set_rate(conn, key_id=args.id, rate=rate):
                _out(f"key {args.id}: " + (f"{rate[0]}/s burst {rate[1]}" if rate else "default"))
                return 0
            sys.stderr.write(f"no active key with id {args.id!r}\n")
            return 1
        if await service.revoke(conn, key_id=args.id):
            _out(f"revoked key {args.id}")
            return 0
        sys.stderr.write(f"no active key with id {args.id!r}\n")
        return 1


def main(argv: Sequence[str]) -> int:
    """Runs one command; returns the process exit code."""
    args = _parser().parse_args(argv)
    configure_logging("gateway", "WARNING")  # stdout is the command's output
    settings = load_settings(GatewaySettings)
    try:
        return asyncio.run(_run(args, settings))
    except InvalidKeyRequest as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    except psycopg.OperationalError as exc:
        sys.stderr.write(f"error: cannot reach PostgreSQL ({exc.__class__.__name__})\n")
        return 3
