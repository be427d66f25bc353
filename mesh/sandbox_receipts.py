"""The sandbox's receipts: which contact points make the sandbox provider call back as a
real provider would, and the signed callback it posts to the gateway's
`/webhooks/sandbox` (the same route, verification and ingestion every provider's
receipts take). Shared by the sender (`deliveryd.providers.sandbox_receipts`) and the
reader (`gateway.receipts.verify.sandbox`).

| Contact point                        | Receipts, in order                    |
|--------------------------------------|---------------------------------------|
| delivered@simulator.herald.example   | delivered                             |
| bounce@simulator.herald.example      | bounced (550 5.1.1): suppressed       |
| complaint@simulator.herald.example   | delivered, then complained: suppressed|
| +14155550190                         | delivered                             |
| +14155550191                         | undelivered (30003 unreachable)       |
| +14155550192                         | opted out (21610): suppressed         |

Any other contact point gets no receipt: the sandbox's notification is delivered at once,
as before receipts. `.example` is reserved (RFC 2606) and 555-01xx numbers are fictional,
so no real provider ever carries these to a person.

The callback is signed as Standard Webhooks specify (`mesh.signing`); its body is
`{"events": [Event, ...]}`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

DOMAIN = "simulator.herald.example"


@dataclass(frozen=True)
class Simulated:
    """One receipt the sandbox sends: an event of `gateway.receipts.model.ReceiptEvent`."""

    event: str
    code: str = ""
    reason: str = ""


_EMAIL: Mapping[str, tuple[Simulated, ...]] = {
    f"delivered@{DOMAIN}": (Simulated("delivered"),),
    f"bounce@{DOMAIN}": (
        Simulated(
            "bounced", "550", "5.1.1 The email account that you tried to reach does not exist"
        ),
    ),
    f"complaint@{DOMAIN}": (
        Simulated("delivered"),
        Simulated("complained", "", "the recipient marked the message as spam"),
    ),
}
_SMS: Mapping[str, tuple[Simulated, ...]] = {
    "+14155550190": (Simulated("delivered"),),
    "+14155550191": (Simulated("undelivered", "30003", "Unreachable destination handset"),),
    "+14155550192": (Simulated("opted_out", "21610", "Attempt to send to unsubscribed recipient"),),
}
_BY_CHANNEL: Mapping[str, Mapping[str, tuple[Simulated, ...]]] = {"email": _EMAIL, "sms": _SMS}


def simulated(channel: str, contact: str) -> tuple[Simulated, ...]:
    """The receipts the sandbox sends for a message to `contact` ("email"/"sms"); none
    for any other contact point or channel."""
    table = _BY_CHANNEL.get(channel, {})
    return table.get(contact.strip().lower() if channel == "email" else contact.strip(), ())
