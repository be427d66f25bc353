"""The accept pipeline's metrics: one observation per run, and per stage it went through."""

from __future__ import annotations

from bench.stages import Samples, added, scrape
from herald.v1 import notification_pb2
from tests.gateway.core.helpers import CLIENT, send_request, struct
from tests.gateway.core.peers import Peers
from tests.support.processes import ServiceProcess


def samples(gateway: ServiceProcess) -> Samples:
    """Every `herald_accept_*` sample of the gateway's /metrics, by (name, stage)."""
    return scrape(f"http://127.0.0.1:{gateway.http_port}")


async def test_each_run_and_each_of_its_stages_is_observed(
    notifications, gateway: ServiceProcess, peers: Peers
) -> None:
    user = peers.users.add()
    before = samples(gateway)
    calls = (peers.templates.render_calls, peers.templates.batch_calls)

    # A lone Send: one run of one item (its keys looked up, its user and rendering fetched).
    await notifications.Send(send_request(user.id), metadata=CLIENT)
    # A SendBatch of three items with two distinct renderings: one run of three.
    batch = [
        send_request(user.id, variables=struct(name="Ada")),
        send_request(user.id, variables=struct(name="Grace")),
        send_request(user.id, variables=struct(name="Grace")),
    ]
    await notifications.SendBatch(
        notification_pb2.SendBatchRequest(requests=batch), metadata=CLIENT
    )

    after = samples(gateway)
    assert added(before, after, "herald_accept_run_items_count") == 2
    assert added(before, after, "herald_accept_run_items_sum") == 4
    # Both runs went through every stage; the lone Send's one Render is timed as `renders`
    # too (before, only a BatchRender was, and a lone item's Render hid in `prepare`).
    for stage in ("keys", "users", "renders", "prepare", "store", "publish"):
        assert added(before, after, "herald_accept_stage_seconds_count", stage) == 2, stage
        assert added(before, after, "herald_accept_stage_seconds_sum", stage) > 0, stage
    # One Render for the lone Send, one BatchRender for the batch's two renderings.
    assert (peers.templates.render_calls, peers.templates.batch_calls) == (
        calls[0] + 1,
        calls[1] + 1,
    )
