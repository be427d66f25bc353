"""The outbound rule: https to a public host only; loopback only when a setting allows it."""

from __future__ import annotations

import pytest

from mesh.outbound import OutboundRefused, OutboundRule
from mesh.settings import CommonSettings

STRICT = OutboundRule()
LOOPBACK = OutboundRule(allow_loopback=True)
PRIVATE = OutboundRule(allow_private=True)

PUBLIC = [
    "https://fcm.googleapis.com/fcm/send/abc:def",
    "https://updates.push.services.mozilla.com/wpush/v2/gAAAA",
    "https://web.push.apple.com/QGz?x=1#f",
    "https://push.example.net:8443/send/1",
    "https://Push.Example.NET./send/1",
    "https://8.8.8.8/x",
    "https://[2606:4700:4700::1111]/x",
    "https://[::ffff:8.8.8.8]/x",
]

REFUSED = {
    "https://169.254.169.254/latest/meta-data/": "link-local",
    "https://[fe80::1]/x": "link-local",
    "https://[fe80::1%25eth0]/x": "link-local",
    "https://127.0.0.1:8000/x": "loopback",
    "https://127.8.9.10/x": "loopback",
    "https://[::1]/x": "loopback",
    "https://[::ffff:127.0.0.1]/x": "loopback",
    "https://[::ffff:7f00:1]/x": "loopback",
    "https://[::ffff:169.254.169.254]/x": "link-local",
    "https://[2002:a9fe:a9fe::]/x": "link-local",  # 6to4 around the metadata address
    "https://[64:ff9b::a00:1]/x": "private",  # NAT64 around 10.0.0.1
    "https://10.1.2.3/x": "private",
    "https://172.16.0.1/x": "private",
    "https://172.31.255.255/x": "private",
    "https://192.168.1.1/x": "private",
    "https://[fc00::1]/x": "private",
    "https://[fd12:3456::1]/x": "private",
    "https://100.64.0.1/x": "shared",
    "https://0.0.0.0/x": "unspecified",
    "https://[::]/x": "unspecified",
    "https://224.0.0.1/x": "multicast",
    "https://[ff02::1]/x": "multicast",
    "https://240.0.0.1/x": "reserved",
    "https://255.255.255.255/x": "reserved",
    "https://localhost/x": "localhost",
    "https://LOCALHOST./x": "localhost",
    "https://api.localhost/x": "localhost",
    "https://metadata/computeMetadata/v1/": "no public host",
    "https://metadata.google.internal/x": "no public host",
    "https://printer.local/x": "no public host",
    "https://router.home.arpa/x": "no public host",
    "https://127.1/x": "no public host",
    "https://2130706433/x": "no public host",
    "https://0x7f000001/x": "no public host",
    "https://%31%32%37.0.0.1/x": "no public host",
    "https://bad_label.example.com/x": "no public host",
    "https://-dash.example.com/x": "no public host",
    "https://]": "not a valid URL",
    "https://[/x": "not a valid URL",
    "https://[::1/x": "not a valid URL",
    "https://example.com:99999/x": "not a valid URL",
    "https://example.com:port/x": "not a valid URL",
    "https://exa mple.com/x": "not a valid URL",
    "https://127.0.0.1\\@example.com/x": "not a valid URL",
    "https://example.com/\nx": "not a valid URL",
    "https://пример.рф/x": "not a valid URL",
    "": "not a valid URL",
    "https://user:pw@example.com/x": "user name or password",
    "https://@example.com/x": "user name or password",
    "https:///x": "names no host",
    "https://": "names no host",
    "http://push.example.net/x": "must be an https URL",
    "ftp://push.example.net/x": "must be an https URL",
    "javascript:alert(1)": "must be an https URL",
    "//push.example.net/x": "must be an https URL",
}


@pytest.mark.parametrize("url", PUBLIC)
def test_https_to_a_public_host_is_allowed(url: str) -> None:
    assert STRICT.check_url(url).scheme == "https"


@pytest.mark.parametrize(("url", "reason"), REFUSED.items())
def test_everything_else_is_refused_saying_why(url: str, reason: str) -> None:
    with pytest.raises(OutboundRefused, match=reason):
        STRICT.check_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/push/1",
        "https://127.0.0.1/x",
        "http://[::1]:8000/x",
        "http://[::ffff:127.0.0.1]:8000/x",
        "http://localhost:8000/x",
    ],
)
def test_the_loopback_allowance_lets_this_machine_in_http_included(url: str) -> None:
    with pytest.raises(OutboundRefused):
        STRICT.check_url(url)
    LOOPBACK.check_url(url)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://169.254.169.254/latest/meta-data/", "link-local"),
        ("https://10.0.0.1/x", "private"),
        ("https://[::ffff:10.0.0.1]/x", "private"),
        ("http://push.example.net/x", "must be an https URL"),
        ("http://192.168.0.1/x", "private"),
        ("https://]", "not a valid URL"),
    ],
)
def test_the_loopback_allowance_lets_nothing_else_in(url: str, reason: str) -> None:
    with pytest.raises(OutboundRefused, match=reason):
        LOOPBACK.check_url(url)


def test_the_private_allowance_lets_an_operator_vouch_for_any_host() -> None:
    for url in ("http://10.0.0.5:9000/alerts", "https://alerts.internal/x", "http://[fd00::1]/"):
        PRIVATE.check_url(url)
    with pytest.raises(OutboundRefused, match="not a valid URL"):
        PRIVATE.check_url("https://]")


def test_without_names_a_host_name_is_left_to_the_resolver() -> None:
    STRICT.check_url("https://localhost/x", names=False)
    STRICT.check_url("https://metadata/x", names=False)
    with pytest.raises(OutboundRefused, match="must be an https URL"):
        STRICT.check_url("http://localhost/x", names=False)
    with pytest.raises(OutboundRefused, match="link-local"):
        STRICT.check_url("https://169.254.169.254/x", names=False)
    LOOPBACK.check_url("http://localhost:8000/x", names=False)


@pytest.mark.parametrize(
    ("address", "refused"),
    [
        ("8.8.8.8", False),
        ("2606:4700:4700::1111", False),
        ("127.0.0.1", True),
        ("::1", True),
        ("10.0.0.1", True),
        ("169.254.169.254", True),
        ("fe80::1%eth0", True),
        ("::ffff:192.168.0.1", True),
        ("100.100.100.200", True),
        ("not-an-address", True),
    ],
)
def test_resolved_addresses_are_judged_alone(address: str, refused: bool) -> None:
    if refused:
        with pytest.raises(OutboundRefused):
            STRICT.check_address(address)
    else:
        STRICT.check_address(address)


def test_the_loopback_allowance_admits_only_loopback_addresses() -> None:
    LOOPBACK.check_address("127.0.0.1")
    LOOPBACK.check_address("::1")
    with pytest.raises(OutboundRefused, match="a private address"):
        LOOPBACK.check_address("192.168.1.1")


def test_the_setting_defaults_to_the_strict_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HERALD_OUTBOUND_ALLOW_LOOPBACK", raising=False)
    assert CommonSettings().outbound_rule() == STRICT
    monkeypatch.setenv("HERALD_OUTBOUND_ALLOW_LOOPBACK", "true")
    assert CommonSettings().outbound_rule() == LOOPBACK
