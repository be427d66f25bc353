"""UserService RPCs through a real channel to a running userd (PostgreSQL and Redis real)."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest
from argon2 import PasswordHasher
from google.protobuf.field_mask_pb2 import FieldMask

from herald.v1 import common_pb2, user_pb2
from tests.support.infra import SERVICE_TOKEN
from tests.support.processes import ServiceProcess
from tests.userd.helpers import (
    PASSWORD,
    Stub,
    create_request,
    fcm_target,
    invalid_fields,
    onesignal_target,
    rpc_error,
    snapshot,
    unique_email,
    webpush_target,
)

Db = psycopg.Connection[dict[str, Any]]
GRPCURL = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "grpcurl")


def user_count(db: Db) -> int:
    row = db.execute("SELECT count(*) AS n FROM users").fetchone()
    assert row is not None
    return int(row["n"])


async def create(stub: Stub, **fields: Any) -> user_pb2.User:
    return (await stub.CreateUser(create_request(**fields))).user


# --- CreateUser / GetUser ------------------------------------------------------------------


async def test_create_user_normalises_applies_defaults_and_hashes_the_password(
    stub: Stub, users_db: Db
) -> None:
    email = unique_email("Ada.Lovelace").replace("example.com", "EXAMPLE.com")
    user = await create(stub, email=email, phone="+1 (415) 555-0100")

    assert uuid.UUID(user.id)
    assert user.email == email.replace("EXAMPLE.com", "example.com")
    assert user.phone == "+14155550100"
    assert (user.locale, user.time_zone) == ("en", "UTC")
    # The seed's {"email": true, "push": false}; sms was not given: allowed by default.
    assert (user.preferences.email, user.preferences.sms, user.preferences.push) == (
        True,
        True,
        False,
    )
    assert user.create_time.seconds > 0
    assert user.update_time == user.create_time
    assert "password" not in user_pb2.User.DESCRIPTOR.fields_by_name

    stored = snapshot(users_db, user.id)["user"]
    assert stored["password_hash"].startswith("$argon2id$")
    assert PasswordHasher().verify(stored["password_hash"], PASSWORD)
    assert (await stub.GetUser(user_pb2.GetUserRequest(id=user.id))).user == user


async def test_create_user_keeps_locale_time_zone_quiet_hours_and_every_kind_of_push_target(
    stub: Stub,
) -> None:
    fcm, onesignal, webpush = fcm_target(label="Pixel 8"), onesignal_target(), webpush_target()
    night = user_pb2.QuietHours(start="22:00", end="07:00")
    user = await create(
        stub,
        phone="",
        locale="pt-br",
        time_zone="America/Sao_Paulo",
        preferences=user_pb2.Preferences(sms=False),
        push_targets=[fcm, onesignal, webpush],
        quiet_hours=night,
    )
    assert (user.locale, user.time_zone, user.phone) == ("pt-BR", "America/Sao_Paulo", "")
    assert user.quiet_hours == night
    assert (user.preferences.email, user.preferences.sms, user.preferences.push) == (
        True,
        False,
        True,
    )
    targets = list(user.push_targets)
    assert [t.platform for t in targets] == [
        common_pb2.PUSH_PLATFORM_FCM,
        common_pb2.PUSH_PLATFORM_ONESIGNAL,
        common_pb2.PUSH_PLATFORM_WEBPUSH,
    ]
    assert all(uuid.UUID(t.id) and t.create_time.seconds for t in targets)
    assert (targets[0].token, targets[0].label) == (fcm.token, "Pixel 8")
    assert targets[1].token == onesignal.token
    assert targets[2].token == ""
    assert targets[2].web_push == webpush.web_push


async def test_get_user_errors(stub: Stub) -> None:
    missing = await rpc_error(stub.GetUser(user_pb2.GetUserRequest(id=str(uuid.uuid4()))))
    assert missing.code() == grpc.StatusCode.NOT_FOUND
    assert await invalid_fields(stub.GetUser(user_pb2.GetUserRequest(id="nope"))) == {
        "id": "must be a UUID"
    }


async def test_get_user_by_email_whatever_its_case(stub: Stub) -> None:
    email = unique_email("Grace.Hopper")
    user = await create(stub, email=email)
    for asked in (email, email.upper(), f"  {email.lower()} "):
        assert (await stub.GetUser(user_pb2.GetUserRequest(email=asked))).user == user
    missing = await rpc_error(stub.GetUser(user_pb2.GetUserRequest(email=unique_email("nobody"))))
    assert missing.code() == grpc.StatusCode.NOT_FOUND
    assert set(await invalid_fields(stub.GetUser(user_pb2.GetUserRequest(email="nope")))) == {
        "email"
    }


async def test_batch_get_users_answers_the_found_and_names_the_missing(stub: Stub) -> None:
    ada, bob = await create(stub), await create(stub)
    unknown = str(uuid.uuid4())

    answer = await stub.BatchGetUsers(
        user_pb2.BatchGetUsersRequest(ids=[ada.id, unknown, bob.id.upper(), ada.id])
    )

    assert sorted(answer.users, key=lambda u: u.id) == sorted([ada, bob], key=lambda u: u.id)
    assert list(answer.missing_ids) == [unknown]


async def test_batch_get_users_errors(stub: Stub) -> None:
    ada = await create(stub)
    assert await invalid_fields(
        stub.BatchGetUsers(user_pb2.BatchGetUsersRequest(ids=[ada.id, "nope"]))
    ) == {"ids[1]": "must be a UUID"}
    assert await invalid_fields(stub.BatchGetUsers(user_pb2.BatchGetUsersRequest())) == {
        "ids": "from 1 to 500 user ids"
    }
    too_many = [str(uuid.uuid4()) for _ in range(501)]
    assert await invalid_fields(
        stub.BatchGetUsers(user_pb2.BatchGetUsersRequest(ids=too_many))
    ) == {"ids": "from 1 to 500 user ids"}


BAD_CREATE_FIELDS: list[tuple[dict[str, Any], str]] = [
    ({"name": ""}, "name"),
    ({"name": "   "}, "name"),
    ({"name": "x" * 201}, "name"),
    ({"name": "Ada\x07"}, "name"),
    ({"email": ""}, "email"),
    ({"email": "not-an-address"}, "email"),
    ({"email": "ada@localhost"}, "email"),
    ({"email": "a" * 300 + "@example.com"}, "email"),
    ({"phone": "4155550100"}, "phone"),
    ({"phone": "+1 555"}, "phone"),
    ({"phone": "+1" + "5" * 40}, "phone"),
    ({"password": ""}, "password"),
    ({"password": "short"}, "password"),
    ({"password": "p" * 513}, "password"),
    ({"locale": "english!"}, "locale"),
    ({"locale": "en-" + "a" * 70}, "locale"),
    ({"time_zone": "Mars/Olympus_Mons"}, "time_zone"),
    ({"quiet_hours": user_pb2.QuietHours(start="24:00", end="07:00")}, "quiet_hours.start"),
    ({"quiet_hours": user_pb2.QuietHours(start="22:00", end="7:00")}, "quiet_hours.end"),
    ({"quiet_hours": user_pb2.QuietHours(start="22:00")}, "quiet_hours.end"),
    ({"push_targets": [user_pb2.PushTarget(token="abc")]}, "push_targets[0].platform"),
    ({"push_targets": [fcm_target(token="has spaces")]}, "push_targets[0].token"),
    ({"push_targets": [fcm_target(token="x" * 1025)]}, "push_targets[0].token"),
    (
        {"push_targets": [fcm_target(), fcm_target(label="L" * 101)]},
        "push_targets[1].label",
    ),
    (
        {
            "push_targets": [
                user_pb2.PushTarget(platform=common_pb2.PUSH_PLATFORM_ONESIGNAL, token="n/a")
            ]
        },
        "push_targets[0].token",
    ),
    (
        {"push_targets": [user_pb2.PushTarget(platform=common_pb2.PUSH_PLATFORM_WEBPUSH)]},
        "push_targets[0].web_push",
    ),
    (
        {"push_targets": [webpush_target(endpoint="ftp://push.example.net/x")]},
        "push_targets[0].web_push.endpoint",
    ),
    ({"push_targets": [fcm_target(token="same"), fcm_target(token="same")]}, "push_targets[1]"),
    ({"push_targets": [fcm_target() for _ in range(21)]}, "push_targets"),
]


@pytest.mark.parametrize(("fields", "field"), BAD_CREATE_FIELDS)
async def test_create_user_names_the_bad_field_and_writes_nothing(
    stub: Stub, users_db: Db, fields: dict[str, Any], field: str
) -> None:
    before = user_count(users_db)
    violations = await invalid_fields(stub.CreateUser(create_request(**fields)))
    assert field in violations, violations
    assert violations[field]
    assert user_count(users_db) == before


async def test_create_user_reports_every_bad_field_at_once(stub: Stub) -> None:
    bad_key = webpush_target()
    bad_key.web_push.p256dh = "AAAA"
    bad_key.web_push.auth = "not base64!"
    violations = await invalid_fields(
        stub.CreateUser(
            create_request(
                name="", email="nope", phone="12", time_zone="Nowhere", push_targets=[bad_key]
            )
        )
    )
    assert set(violations) == {
        "name",
        "email",
        "phone",
        "time_zone",
        "push_targets[0].web_push.p256dh",
        "push_targets[0].web_push.auth",
    }


async def test_a_taken_email_answers_already_exists_whatever_its_case(
    stub: Stub, users_db: Db
) -> None:
    email = unique_email("taken")
    await create(stub, email=email)
    before = user_count(users_db)
    error = await rpc_error(stub.CreateUser(create_request(email=email.upper())))
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS
    assert user_count(users_db) == before


# --- UpdateUser ----------------------------------------------------------------------------


async def update(stub: Stub, user: user_pb2.User, *paths: str, password: str = "") -> user_pb2.User:
    request = user_pb2.UpdateUserRequest(
        user=user, update_mask=FieldMask(paths=list(paths)), password=password
    )
    return (await stub.UpdateUser(request)).user


async def test_update_user_changes_only_the_masked_fields(stub: Stub, users_db: Db) -> None:
    user = await create(stub, locale="en-GB")
    version = snapshot(users_db, user.id)["user"]["version"]
    change = user_pb2.User(
        id=user.id,
        name="Augusta Ada King",
        email=unique_email("ignored"),
        phone="+442079460958",
        locale="fr",
    )
    updated = await update(stub, change, "name")

    assert updated.name == "Augusta Ada King"
    assert (updated.email, updated.phone, updated.locale) == (user.email, user.phone, "en-GB")
    assert updated.preferences == user.preferences
    assert updated.update_time.ToDatetime() >= user.update_time.ToDatetime()
    assert snapshot(users_db, user.id)["user"]["version"] == version + 1
    assert (await stub.GetUser(user_pb2.GetUserRequest(id=user.id))).user == updated


async def test_update_user_every_path(stub: Stub, users_db: Db) -> None:
    kept, dropped = fcm_target(label="kept"), fcm_target(label="dropped")
    user = await create(stub, push_targets=[kept, dropped])
    kept_id = user.push_targets[0].id
    new_email = unique_email("New.Address").replace("example.com", "Example.COM")

    user = await update(
        stub,
        user_pb2.User(
            id=user.id, email=new_email, phone="", locale="zh-hant-tw", time_zone="Asia/Taipei"
        ),
        "email",
        "phone",
        "locale",
        "time_zone",
    )
    assert user.email == new_email.replace("Example.COM", "example.com")
    assert (user.phone, user.locale, user.time_zone) == ("", "zh-Hant-TW", "Asia/Taipei")

    # "preferences" changes the channels that are set; "preferences.push" that channel.
    user = await update(
        stub, user_pb2.User(id=user.id, preferences=user_pb2.Preferences(sms=False)), "preferences"
    )
    assert (user.preferences.email, user.preferences.sms, user.preferences.push) == (
        True,
        False,
        False,
    )
    user = await update(
        stub,
        user_pb2.User(id=user.id, preferences=user_pb2.Preferences(push=True, email=False)),
        "preferences.push",
    )
    assert (user.preferences.email, user.preferences.sms, user.preferences.push) == (
        True,
        False,
        True,
    )

    # "push_targets" replaces the set; a device kept keeps its id.
    added = webpush_target(label="laptop")
    user = await update(
        stub,
        user_pb2.User(id=user.id, push_targets=[fcm_target(kept.token, "kept, renamed"), added]),
        "push_targets",
    )
    assert [(t.label, t.id == kept_id) for t in user.push_targets] == [
        ("kept, renamed", True),
        ("laptop", False),
    ]

    # "quiet_hours" sets the user's own window; unset in the user, it clears it.
    night = user_pb2.QuietHours(start="22:30", end="06:45")
    user = await update(stub, user_pb2.User(id=user.id, quiet_hours=night), "quiet_hours")
    assert user.quiet_hours == night
    assert (await stub.GetUser(user_pb2.GetUserRequest(id=user.id))).user.quiet_hours == night
    user = await update(stub, user_pb2.User(id=user.id), "quiet_hours")
    assert not user.HasField("quiet_hours")

    new_password = "a brand new passphrase"
    user = await update(stub, user_pb2.User(id=user.id), "password", password=new_password)
    stored_hash = snapshot(users_db, user.id)["user"]["password_hash"]
    assert PasswordHasher().verify(stored_hash, new_password)


async def test_update_user_errors_name_the_field_and_change_nothing(
    stub: Stub, users_db: Db
) -> None:
    user = await create(stub)
    other = await create(stub)
    before = snapshot(users_db, user.id)

    async def refused(
        change: user_pb2.User, paths: list[str], password: str = ""
    ) -> dict[str, str]:
        return await invalid_fields(
            stub.UpdateUser(
                user_pb2.UpdateUserRequest(
                    user=change, update_mask=FieldMask(paths=paths), password=password
                )
            )
        )

    me = user_pb2.User(id=user.id)
    assert "update_mask" in await refused(me, [])
    assert "update_mask" in await refused(me, ["id"])
    assert "update_mask" in await refused(me, ["create_time"])
    assert "update_mask" in await refused(me, ["nickname"])
    assert "user.name" in await refused(me, ["name"])
    assert "user.email" in await refused(user_pb2.User(id=user.id, email="bad@"), ["email"])
    assert "user.phone" in await refused(user_pb2.User(id=user.id, phone="+1 555"), ["phone"])
    assert "user.locale" in await refused(user_pb2.User(id=user.id, locale="!!"), ["locale"])
    assert "user.time_zone" in await refused(
        user_pb2.User(id=user.id, time_zone="Europe/Atlantis"), ["time_zone"]
    )
    assert "user.quiet_hours.start" in await refused(
        user_pb2.User(id=user.id, quiet_hours=user_pb2.QuietHours(start="9pm", end="07:00")),
        ["quiet_hours"],
    )
    assert "user.preferences.email" in await refused(me, ["preferences.email"])
    assert "user.preferences" in await refused(me, ["preferences"])
    assert "user.push_targets[0].token" in await refused(
        user_pb2.User(
            id=user.id,
            push_targets=[user_pb2.PushTarget(platform=common_pb2.PUSH_PLATFORM_FCM)],
        ),
        ["push_targets"],
    )
    assert "password" in await refused(me, ["password"], password="short")
    assert "password" in await refused(
        user_pb2.User(id=user.id, name="N"), ["name"], password=PASSWORD
    )
    # One bad field spoils the whole request: the good one is not applied either.
    assert "user.email" in await refused(
        user_pb2.User(id=user.id, name="Fine Name", email="bad@"), ["name", "email"]
    )
    assert "user.id" in await refused(user_pb2.User(id="42", name="N"), ["name"])

    taken = await rpc_error(
        stub.UpdateUser(
            user_pb2.UpdateUserRequest(
                user=user_pb2.User(id=user.id, name="Thief", email=other.email.upper()),
                update_mask=FieldMask(paths=["name", "email"]),
            )
        )
    )
    assert taken.code() == grpc.StatusCode.ALREADY_EXISTS
    missing = await rpc_error(
        stub.UpdateUser(
            user_pb2.UpdateUserRequest(
                user=user_pb2.User(id=str(uuid.uuid4()), name="Nobody"),
                update_mask=FieldMask(paths=["name"]),
            )
        )
    )
    assert missing.code() == grpc.StatusCode.NOT_FOUND
    assert snapshot(users_db, user.id) == before


# --- UpdatePreferences ---------------------------------------------------------------------


async def test_update_preferences_changes_only_the_channels_set(stub: Stub, users_db: Db) -> None:
    user = await create(stub)
    updated = (
        await stub.UpdatePreferences(
            user_pb2.UpdatePreferencesRequest(
                user_id=user.id, preferences=user_pb2.Preferences(email=False, push=True)
            )
        )
    ).user
    assert (updated.preferences.email, updated.preferences.sms, updated.preferences.push) == (
        False,
        True,
        True,
    )
    before = snapshot(users_db, user.id)
    assert await invalid_fields(
        stub.UpdatePreferences(user_pb2.UpdatePreferencesRequest(user_id=user.id))
    ) == {"preferences": "set at least one of email, sms, push"}
    assert "user_id" in await invalid_fields(
        stub.UpdatePreferences(
            user_pb2.UpdatePreferencesRequest(
                user_id="x", preferences=user_pb2.Preferences(sms=True)
            )
        )
    )
    missing = await rpc_error(
        stub.UpdatePreferences(
            user_pb2.UpdatePreferencesRequest(
                user_id=str(uuid.uuid4()), preferences=user_pb2.Preferences(sms=True)
            )
        )
    )
    assert missing.code() == grpc.StatusCode.NOT_FOUND
    assert snapshot(users_db, user.id) == before


# --- AddPushTarget / RemovePushTarget -------------------------------------------------------


async def test_add_push_target_adds_and_re_adding_a_token_updates_it(
    stub: Stub, users_db: Db
) -> None:
    user = await create(stub)
    target = fcm_target(label="phone")
    added = await stub.AddPushTarget(user_pb2.AddPushTargetRequest(user_id=user.id, target=target))
    assert added.target.token == target.token
    assert list(added.user.push_targets) == [added.target]

    again = await stub.AddPushTarget(
        user_pb2.AddPushTargetRequest(user_id=user.id, target=fcm_target(target.token, "new"))
    )
    assert (again.target.id, again.target.label) == (added.target.id, "new")
    assert len(again.user.push_targets) == 1

    browser = await stub.AddPushTarget(
        user_pb2.AddPushTargetRequest(user_id=user.id, target=webpush_target())
    )
    assert len(browser.user.push_targets) == 2
    assert (await stub.GetUser(user_pb2.GetUserRequest(id=user.id))).user == browser.user

    before = snapshot(users_db, user.id)
    assert "target.token" in await invalid_fields(
        stub.AddPushTarget(
            user_pb2.AddPushTargetRequest(user_id=user.id, target=fcm_target(token="bad token"))
        )
    )
    assert "target.platform" in await invalid_fields(
        stub.AddPushTarget(user_pb2.AddPushTargetRequest(user_id=user.id))
    )
    missing = await rpc_error(
        stub.AddPushTarget(
            user_pb2.AddPushTargetRequest(user_id=str(uuid.uuid4()), target=fcm_target())
        )
    )
    assert missing.code() == grpc.StatusCode.NOT_FOUND
    assert snapshot(users_db, user.id) == before


async def test_a_user_has_at_most_twenty_push_targets(stub: Stub, users_db: Db) -> None:
    targets = [fcm_target() for _ in range(20)]
    user = await create(stub, push_targets=targets)
    before = snapshot(users_db, user.id)
    error = await rpc_error(
        stub.AddPushTarget(user_pb2.AddPushTargetRequest(user_id=user.id, target=fcm_target()))
    )
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert snapshot(users_db, user.id) == before
    # Re-adding one the user already has is still fine.
    again = await stub.AddPushTarget(
        user_pb2.AddPushTargetRequest(user_id=user.id, target=targets[3])
    )
    assert len(again.user.push_targets) == 20


async def test_remove_push_target_by_id_token_or_endpoint_is_idempotent(
    stub: Stub, users_db: Db
) -> None:
    fcm, onesignal, browser = fcm_target(), onesignal_target(), webpush_target()
    user = await create(stub, push_targets=[fcm, onesignal, browser])
    fcm_id = user.push_targets[0].id

    def remove(**fields: str) -> Any:
        return stub.RemovePushTarget(user_pb2.RemovePushTargetRequest(user_id=user.id, **fields))

    by_id = await remove(target_id=fcm_id)
    assert by_id.removed
    assert [t.token for t in by_id.user.push_targets] == [onesignal.token, ""]
    version = snapshot(users_db, user.id)["user"]["version"]
    assert not (await remove(target_id=fcm_id)).removed
    assert not (await remove(token=fcm.token)).removed
    assert snapshot(users_db, user.id)["user"]["version"] == version

    assert (await remove(token=onesignal.token)).removed
    last = await remove(token=browser.web_push.endpoint)
    assert last.removed
    assert list(last.user.push_targets) == []

    assert "target_id" in await invalid_fields(remove())
    assert "target_id" in await invalid_fields(remove(target_id=fcm_id, token=fcm.token))
    assert "target_id" in await invalid_fields(remove(target_id="not-a-uuid"))
    missing = await rpc_error(
        stub.RemovePushTarget(
            user_pb2.RemovePushTargetRequest(user_id=str(uuid.uuid4()), token="t")
        )
    )
    assert missing.code() == grpc.StatusCode.NOT_FOUND


# --- ListUsers / DeleteUser -----------------------------------------------------------------


async def test_list_users_pages_through_everyone_once_in_a_stable_order(
    stub: Stub, users_db: Db
) -> None:
    created = [(await create(stub, name=f"Lister {i}")).id for i in range(5)]
    seen: list[str] = []
    token = ""
    while True:
        page = await stub.ListUsers(user_pb2.ListUsersRequest(page_size=2, page_token=token))
        assert len(page.users) <= 2
        seen.extend(u.id for u in page.users)
        token = page.next_page_token
        if not token:
            break
    expected = [
        str(row["id"])
        for row in users_db.execute("SELECT id FROM users ORDER BY create_time, id").fetchall()
    ]
    assert seen == expected
    assert [i for i in seen if i in created] == created

    first = await stub.ListUsers(user_pb2.ListUsersRequest())
    assert len(first.users) == min(50, len(expected))
    huge = await stub.ListUsers(user_pb2.ListUsersRequest(page_size=100_000))
    assert len(huge.users) == min(500, len(expected))

    assert "page_size" in await invalid_fields(
        stub.ListUsers(user_pb2.ListUsersRequest(page_size=-1))
    )
    assert "page_token" in await invalid_fields(
        stub.ListUsers(user_pb2.ListUsersRequest(page_token="garbage"))
    )


async def test_delete_user_removes_it_and_its_push_targets(stub: Stub, users_db: Db) -> None:
    user = await create(stub, push_targets=[fcm_target(), webpush_target()])
    await stub.DeleteUser(user_pb2.DeleteUserRequest(id=user.id))

    gone = await rpc_error(stub.GetUser(user_pb2.GetUserRequest(id=user.id)))
    assert gone.code() == grpc.StatusCode.NOT_FOUND
    assert snapshot(users_db, user.id) == {"user": None, "targets": []}
    again = await rpc_error(stub.DeleteUser(user_pb2.DeleteUserRequest(id=user.id)))
    assert again.code() == grpc.StatusCode.NOT_FOUND
    assert "id" in await invalid_fields(stub.DeleteUser(user_pb2.DeleteUserRequest(id="1")))
    # The email is free again.
    assert (await create(stub, email=user.email)).email == user.email


# --- grpcurl (the README example) -----------------------------------------------------------


def test_grpcurl_creates_and_fetches_a_user(userd: ServiceProcess) -> None:
    def grpcurl(method: str, body: dict[str, Any]) -> dict[str, Any]:
        done = subprocess.run(
            [
                GRPCURL,
                "-plaintext",
                "-H",
                f"authorization: Bearer {SERVICE_TOKEN}",
                "-d",
                json.dumps(body),
                userd.address,
                f"herald.v1.UserService/{method}",
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
        answer: dict[str, Any] = json.loads(done.stdout)
        return answer

    email = unique_email("grpcurl")
    created = grpcurl(
        "CreateUser",
        {
            "name": "Grace Hopper",
            "email": email,
            "password": PASSWORD,
            "preferences": {"email": True, "push": False},
        },
    )["user"]
    assert created["email"] == email
    fetched = grpcurl("GetUser", {"id": created["id"]})["user"]
    assert fetched == created
    assert "password" not in json.dumps(fetched)
