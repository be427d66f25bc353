"""Where Herald's outbound requests may go: https to a public host, nowhere else.

URLs that come from users (Web Push endpoints) or operators (the alert webhook) would
otherwise let anyone make Herald's workers call its own network: the cloud metadata
address, loopback services, private ranges. An address is public when `ipaddress` calls
it global and it is neither multicast nor an IPv4 address wrapped in IPv6 (mapped, 6to4,
NAT64) that is not. `localhost` and other local names are refused too.

Two checks share the rule: `OutboundRule.check_url` on the URL alone (no DNS: at
registration, at start-up, before every request) and `OutboundRule.check_address` on
every address a name resolves to when a connection is made (`mesh.public_http`),
so a name cannot be pointed elsewhere between the check and the connection.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

SHARED = ipaddress.IPv4Network("100.64.0.0/10")  # carrier-grade NAT (RFC 6598)
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052: the low 32 bits are IPv4
LOOPBACK_NAMES = ("localhost", ".localhost")  # RFC 6761
# Names only a local resolver answers (RFC 6762, RFC 8375, ICANN's .internal).
LOCAL_SUFFIXES = (".local", ".localdomain", ".internal", ".home.arpa", ".lan")
LOOPBACK = "a loopback address"
LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
# What a URL may hold: RFC 3986 characters, `%` escapes included (no spaces, controls, `\`).
_URL_CHARACTER = r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]"
URL_CHARACTERS = re.compile(rf"^{_URL_CHARACTER}+$")
# The rule as patterns, for schemas (/openapi.json): a URL that `check_url` passes when it
# matches PUBLIC_HTTPS_URL and not LOCAL_HOST_URL. The host is a public name as
# `is_public_name` reads it, in lowercase; IP literals, which need `address_kind`, are
# left out.
_NAME_LABEL = r"[a-z0-9]([a-z0-9\-]{0,61}[a-z0-9])?"
PUBLIC_HTTPS_URL = (
    rf"^https://({_NAME_LABEL}\.)+[a-z]([a-z0-9\-]{{0,61}}[a-z0-9])?"
    rf"(:[0-9]{{1,4}})?([/?#]{_URL_CHARACTER}*)?$"
)
_LOCAL = "|".join(re.escape(s.lstrip(".")) for s in (*LOCAL_SUFFIXES, LOOPBACK_NAMES[1]))
LOCAL_HOST_URL = rf"^https://([^/?#:]{{254}}[^/?#:]*|[^/?#:]*\.({_LOCAL}))([/?#:].*)?$"
PUBLIC_HTTPS_URL_RULE = "must be an https URL of a public host, by name"


class OutboundRefused(ValueError):
    """A URL or address outbound requests may not go to; the message says why."""


@dataclass(frozen=True)
class OutboundRule:
    """The rule, with the allowances a deployment chose.

    `allow_loopback` lets requests reach this machine (http included): for tests and local
    development only. `allow_private` lets them reach any host, http included: for a URL
    an operator vouches for (an alerting service on the private network).
    """

    allow_loopback: bool = False
    allow_private: bool = False

    def check_url(self, url: str, *, names: bool = True) -> SplitResult:
        """The parsed URL, or `OutboundRefused` saying what is wrong with it.

        `names=False` leaves a host name to the resolver (`check_address` on what it
        resolves to); the default judges it by its syntax alone (no DNS).
        """
        if not URL_CHARACTERS.match(url):
            raise OutboundRefused("is not a valid URL")
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - parsing the port is the check
        except ValueError:
            raise OutboundRefused("is not a valid URL") from None
        if parts.scheme not in ("https", "http"):
            raise OutboundRefused("must be an https URL")
        if "@" in parts.netloc:
            raise OutboundRefused("must not carry a user name or password")
        host = (parts.hostname or "").rstrip(".")
        if not host:
            raise OutboundRefused("names no host")
        loopback = self._check_host(host, names=names)
        plain_allowed = self.allow_private or (loopback and self.allow_loopback)
        if parts.scheme == "http" and not plain_allowed:
            raise OutboundRefused("must be an https URL")
        return parts

    def check_address(self, address: str) -> None:
        """Refuses an address (as a resolver answers it) that is not public."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            raise OutboundRefused(f"{address} is not an IP address") from None
        kind = address_kind(ip)
        if kind is not None and not self._allows(kind):
            raise OutboundRefused(f"{address} is {kind}")

    def _check_host(self, host: str, *, names: bool) -> bool:
        """Refuses a host the rule forbids; answers whether it is this machine."""
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            ip = None
        if ip is not None:
            kind = address_kind(ip)
            if kind is not None and not self._allows(kind):
                raise OutboundRefused(f"points to {kind}")
            return kind == LOOPBACK
        loopback = host == LOOPBACK_NAMES[0] or host.endswith(LOOPBACK_NAMES[1])
        if not names:
            return loopback
        if loopback:
            if not self._allows(LOOPBACK):
                raise OutboundRefused("points to this machine (localhost)")
            return True
        if not self.allow_private and not is_public_name(host):
            raise OutboundRefused("names no public host")
        return False

    def _allows(self, kind: str) -> bool:
        return self.allow_private or (kind == LOOPBACK and self.allow_loopback)


def address_kind(ip: IPAddress) -> str | None:
    """What makes `ip` non-public ("a private address"...), or None when it is public."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return address_kind(embedded)
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_loopback:
        return LOOPBACK
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in SHARED:
        return "a shared (carrier-grade NAT) address"
    if ip.is_reserved:
        return "a reserved address"
    if ip.is_private or not ip.is_global:
        return "a private address"
    return None


def is_public_name(host: str) -> bool:
    """Whether `host` reads as a public DNS name: dotted, valid labels, no local suffix.

    A last label of digits is refused: it is no top-level domain, and resolvers read
    such names (`127.1`, `2130706433`) as IPv4 addresses.
    """
    name = host.lower()
    labels = name.split(".")
    return (
        len(name) <= 253
        and len(labels) >= 2
        and all(LABEL.match(label) for label in labels)
        and not labels[-1].isdigit()
        and not name.endswith(LOCAL_SUFFIXES)
    )
