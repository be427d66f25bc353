"""Route planning and its configuration (pure functions, no process)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.notifications.model import Recipient
from gateway.notifications.peers import recipient
from gateway.notifications.routing import RoutePolicy, plan_route
from gateway.settings import GatewaySettings
from gateway.wire import CHANNELS_BY_NAME, MESSAGE_TYPES_BY_NAME
from herald.v1 import user_pb2
from mesh.settings import load_settings

EMAIL, SMS, PUSH = (CHANNELS_BY_NAME[c] for c in ("email", "sms", "push"))
TRANSACTIONAL, ALERT, MARKETING = (
    MESSAGE_TYPES_BY_NAME[t] for t in ("transactional", "alert", "marketing")
)
POLICY = RoutePolicy.from_names(
    {"transactional": ["email", "sms"], "alert": ["email", "sms", "push"], "marketing": []}
)


def user(**fields: Any) -> Recipient:
    values: dict[str, Any] = {
        "id": "u",
        "email": "a@example.com",
        "phone": "+14155550100",
        "locale": "en",
        "push_targets": (),
        "preferences": {},
    }
    values.update(fields)
    return Recipient(**values)


@pytest.mark.parametrize(
    ("requested", "kind", "who", "route"),
    [
        (EMAIL, TRANSACTIONAL, user(), (EMAIL, SMS)),
        (SMS, TRANSACTIONAL, user(), (SMS, EMAIL)),
        (EMAIL, MARKETING, user(), (EMAIL,)),
        (EMAIL, ALERT, user(), (EMAIL, SMS)),  # no push target
        (PUSH, ALERT, user(push_targets=(object(),)), (PUSH, EMAIL, SMS)),
        (EMAIL, TRANSACTIONAL, user(preferences={"email": False}), (SMS,)),
        (EMAIL, TRANSACTIONAL, user(phone=""), (EMAIL,)),
        (EMAIL, TRANSACTIONAL, user(preferences={"sms": True}), (EMAIL, SMS)),
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
        user=user(phone="", preferences={"email": False}),
        policy=POLICY,
    )
    assert route.channels == ()
    assert route.reason.endswith("none of: email (preference off), sms (no phone number)")


def test_a_userd_user_is_a_recipient_with_the_preferences_it_set() -> None:
    target = user_pb2.PushTarget(token="t", label="Pixel 8")
    got = recipient(
        user_pb2.User(
            id="u1",
            email="a@example.com",
            locale="pt-BR",
            push_targets=[target],
            preferences=user_pb2.Preferences(email=True, push=False),
        )
    )
    assert got == Recipient(
        id="u1",
        email="a@example.com",
        phone="",
        locale="pt-BR",
        push_targets=(target,),
        preferences={"email": True, "push": False},
    )


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
