"""`make up`'s supervisor (scripts/supervise.py): every Procfile process under supervisord
on this run's isolation. A kill -9 of the email worker stops nothing else; the worker is
back by itself and a notification sent afterwards is delivered. Ctrl-C stops them all."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import grpc
import psutil
import pytest
from google.protobuf import struct_pb2

from herald.v1 import (
    common_pb2,
    notification_pb2,
    notification_pb2_grpc,
    template_pb2,
    template_pb2_grpc,
    user_pb2,
    user_pb2_grpc,
)
from mesh.client import internal_channel
from scripts.ports_free import ports
from scripts.supervise import config, read_procfile, scaled
from tests.support.infra import SERVICE_TOKEN, Isolation, add_vhost, free_port, release_vhost
from tests.support.processes import ROOT, SERVING, health_status
from tests.support.waits import eventually_sync

TEMPLATE = "ops/supervised"
# Every process of the Procfile, by its supervised name.
PROCESSES = ("userd", "templated", "gateway", "email", "sms", "push", "callbacks")


def serving(port: int) -> bool:
    return bool(health_status(port) == SERVING)


@dataclass
class Supervised:
    process: subprocess.Popen[bytes]
    run_dir: Path
    env: dict[str, str]
    log: Path

    def port(self, variable: str) -> int:
        return int(self.env[variable])

    def pid(self, name: str) -> int:
        """The pid supervisord reports for process `name` (0 while it is not running)."""
        answer = subprocess.run(
            [
                str(Path(sys.executable).with_name("supervisorctl")),
                "-c",
                str(self.run_dir / "supervisord.conf"),
                "pid",
                name,
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        )
        return int(answer.stdout.strip()) if answer.stdout.strip().isdigit() else 0


@pytest.fixture(scope="module")
def supervised(
    isolation: Isolation, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Supervised]:
    run = uuid.uuid4().hex[:6]
    vhost = f"{isolation.vhost}-supervise-{run}"
    env = {
        **isolation.env(),
        **{variable: str(free_port()) for variable in ports()},
        "HERALD_AMQP_URL": add_vhost(vhost),
        "HERALD_USERD_DATABASE": isolation.database(f"users_sup{run}"),
        "HERALD_TEMPLATED_DATABASE": isolation.database(f"templates_sup{run}"),
        "HERALD_GATEWAY_DATABASE": isolation.database(f"notifications_sup{run}"),
        "HERALD_GATEWAY_DB_POOL_SIZE": "4",
    }
    env["HERALD_USERD_ADDR"] = f"127.0.0.1:{env['HERALD_USERD_GRPC_PORT']}"
    env["HERALD_TEMPLATED_ADDR"] = f"127.0.0.1:{env['HERALD_TEMPLATED_GRPC_PORT']}"
    env["HERALD_GATEWAY_ADDR"] = f"127.0.0.1:{env['HERALD_GATEWAY_GRPC_PORT']}"
    run_dir = tmp_path_factory.mktemp("supervise")
    log = run_dir / "output.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "scripts.supervise", "--run-dir", str(run_dir)],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    built = Supervised(process, run_dir, env, log)
    try:
        for variable in [v for v in env if v.endswith("_GRPC_PORT")]:
            eventually_sync(partial(serving, built.port(variable)), 60, what=variable)
        yield built
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
        release_vhost(vhost)


async def send_and_deliver(stack: Supervised) -> notification_pb2.Notification:
    """A user, a template and an email sent through the gateway; returns it delivered."""

    def channel(variable: str) -> grpc.aio.Channel:
        return internal_channel(f"127.0.0.1:{stack.port(variable)}", SERVICE_TOKEN, "")

    async with (
        channel("HERALD_USERD_GRPC_PORT") as users_ch,
        channel("HERALD_TEMPLATED_GRPC_PORT") as templates_ch,
        channel("HERALD_GATEWAY_GRPC_PORT") as gateway_ch,
    ):
        user = (
            await user_pb2_grpc.UserServiceStub(users_ch).CreateUser(
                user_pb2.CreateUserRequest(
                    name="Ada",
                    email=f"ada.{uuid.uuid4().hex[:8]}@example.com",
                    password="correct horse battery staple",
                ),
                timeout=10,
            )
        ).user
        templates = template_pb2_grpc.TemplateServiceStub(templates_ch)
        try:
            await templates.CreateTemplate(
                template_pb2.CreateTemplateRequest(
                    code=TEMPLATE,
                    name="Supervised",
                    author="ops@example.com",
                    default_language="en",
                    contents=[
                        template_pb2.LocalizedContent(
                            language="en",
                            email=template_pb2.EmailContent(
                                subject="Hi {{ name }}", html_body="<p>Hi</p>", text_body="Hi"
                            ),
                        )
                    ],
                ),
                timeout=10,
            )
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.ALREADY_EXISTS
        variables = struct_pb2.Struct()
        variables.update({"name": "Ada"})
        notifications = notification_pb2_grpc.NotificationServiceStub(gateway_ch)
        sent = await notifications.Send(
            notification_pb2.SendRequest(
                user_id=user.id,
                channel=common_pb2.CHANNEL_EMAIL,
                template_code=TEMPLATE,
                variables=variables,
                request_id=f"supervise-{uuid.uuid4().hex}",
            ),
            timeout=10,
        )
        deadline = time.monotonic() + 60
        while True:
            found = (
                await notifications.GetNotification(
                    notification_pb2.GetNotificationRequest(id=sent.notification_id), timeout=10
                )
            ).notification
            if found.status == common_pb2.NOTIFICATION_STATUS_DELIVERED:
                return found
            assert time.monotonic() < deadline, f"not delivered: {found}"
            await asyncio.sleep(0.1)


def test_config_runs_every_procfile_process_with_restarts() -> None:
    processes = scaled(read_procfile(ROOT / "Procfile"), {"gateway": 2})
    text = config(processes, Path("/run/x"), stop_wait_seconds=25)
    for name in PROCESSES:
        assert f"[program:{name}]" in text
    assert "command=python -m deliveryd email\n" in text
    assert "command=python -m gateway callbacks\n" in text
    assert "numprocs=2" in text and "%(program_name)s-%(process_num)d" in text
    assert text.count("autorestart=true") == len(PROCESSES)
    assert text.count("stopwaitsecs=25") == len(PROCESSES)


async def test_a_killed_worker_comes_back_and_the_rest_keep_serving(
    supervised: Supervised,
) -> None:
    gateway = supervised.pid("gateway")
    email = supervised.pid("email")
    assert gateway and email

    os.kill(email, signal.SIGKILL)
    eventually_sync(
        lambda: supervised.pid("email") not in (0, email), 60, what="a new email worker"
    )
    eventually_sync(
        lambda: health_status(supervised.port("HERALD_DELIVERYD_EMAIL_GRPC_PORT")) == SERVING,
        60,
        what="the new email worker serving",
    )

    assert supervised.pid("gateway") == gateway
    assert supervised.process.poll() is None
    delivered = await send_and_deliver(supervised)
    assert delivered.status == common_pb2.NOTIFICATION_STATUS_DELIVERED


def test_ctrl_c_stops_every_process(supervised: Supervised) -> None:
    children = [supervised.pid(name) for name in PROCESSES]
    assert all(children)

    supervised.process.send_signal(signal.SIGINT)

    assert supervised.process.wait(60) == 0
    assert not [
        pid
        for pid in children
        if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    ]
    assert "Traceback" not in supervised.log.read_text(errors="replace")
