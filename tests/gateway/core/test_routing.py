"""Route planning and its configuration (pure functions, no process)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.notifications.routing import RoutePolicy, plan_route
from gateway.settings import GatewaySettings
from herald.v1 import common_pb2, user_pb2
from mesh.settings import load_settings

EMAIL, SMS, PUSH = common_pb2.CHANNEL_EMAIL, common_pb2.CHANNEL_SMS, common_pb2.CHANNEL_PUSH
TRANSACTIONAL = common_pb2.MESSAGE_TYPE_TRANSACTIONAL
ALERT = common_pb2.MESSAGE_TYPE_ALERT
MARKETING = common_pb2.MESSAGE_TYPE_MARKETING
POLICY = RoutePolicy.from_names(
    {"transactional": ["email", "sms"], "alert": ["email", "sms", "push"], "marketing": []}
)


def user(**fields) -> user_pb2.User:
    values: dict[str, Any] = {"email": "a@example.com", "phone": "+14155550100"}
    values.update(fields)
    return user_pb2.User(**values)


@pytest.mark.parametrize(
    ("requested", "kind", "who", "route"),
    [
        (EMAIL, TRANSACTIONAL, user(), (EMAIL, SMS)),
        (SMS, TRANSACTIONAL, user(), (SMS, EMAIL)),
        (EMAIL, MARKETING, user(), (EMAIL,)),
        (EMAIL, ALERT, user(), (EMAIL, SMS)),  # no push target
        (PUSH, ALERT, user(push_targets=[user_pb2.PushTarget(token="t")]), (PUSH, EMAIL, SMS)),
        (EMAIL, TRANSACTIONAL, user(preferences=user_pb2.Preferences(email=False)), (SMS,)),
        (EMAIL, TRANSACTIONAL, user(phone=""), (EMAIL,)),
        (EMAIL, TRANSACTIONAL, user(preferences=user_pb2.Preferences(sms=True)), (EMAIL, SMS)),
    ],
)
def test_routes(requested, kind, who, route) -> None:
    assert (
        plan_route(requested=requested, message_type=kind, user=who, policy=POLICY).channels
        == route
    )


def test_an_empty_route_says_why() -> None:
    route = plan_route(
        requested=EMAIL,
        message_type=TRANSACTIONAL,
        user=user(phone="", preferences=user_pb2.Preferences(email=False)),
        policy=POLICY,
    )
    assert route.channels == ()
    assert route.reason.endswith("none of: email (preference off), sms (no phone number)")


def test_the_policy_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERALD_ROUTE_POLICY", '{"transactional": ["sms", "push"]}')
    policy = RoutePolicy.from_names(GatewaySettings().route_policy)
    assert policy.candidates(EMAIL, TRANSACTIONAL) == [EMAIL, SMS, PUSH]
    assert policy.candidates(EMAIL, ALERT) == [EMAIL]


def test_a_bad_policy_stops_the_process_with_a_reason(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HERALD_ROUTE_POLICY", '{"transactional": ["fax"]}')
    with pytest.raises(SystemExit):
        load_settings(GatewaySettings)
    assert "ROUTE_POLICY" in capsys.readouterr().err
