"""Standard Webhooks signatures, with the `standardwebhooks` library: what the sandbox's
receipts and the status callbacks to clients carry.

Three headers: `webhook-id` (the message id, which receivers deduplicate by),
`webhook-timestamp` (unix seconds) and `webhook-signature`: `v1,<base64 HMAC-SHA256 of
"{id}.{timestamp}.{body}">` under a `whsec_<base64>` secret, one per live secret,
space-separated (while a secret rotates, either verifies).
"""

from __future__ import annotations

import base64
import binascii
import functools
import secrets
from collections.abc import Sequence
from datetime import datetime

from standardwebhooks import Webhook
from standardwebhooks.webhooks import EmptyWebhookSecretError

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
SECRET_PREFIX = "whsec_"


@functools.lru_cache(maxsize=1024)
def signer(secret: str) -> Webhook:
    """The signer/verifier of a `whsec_…` secret; ValueError when it is not one. Built once
    per secret: the callbacks process signs every post under the same few."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("must be a Standard Webhooks secret: whsec_ and base64")
    try:
        return Webhook(secret)
    except (binascii.Error, ValueError, EmptyWebhookSecretError) as exc:
        raise ValueError(f"must be whsec_ and base64: {exc}") from None


def check_secret(value: str) -> str:
    """A settings validator's check of a secret."""
    signer(value)
    return value


def new_secret() -> str:
    """A fresh secret: 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def signed_headers(
    body: bytes, keys: Sequence[str], *, webhook_id: str, at: datetime
) -> dict[str, str]:
    """The three headers of `body`, signed under each of `keys`."""
    return {
        ID_HEADER: webhook_id,
        TIMESTAMP_HEADER: str(int(at.timestamp())),
        SIGNATURE_HEADER: " ".join(signer(k).sign(webhook_id, at, body) for k in keys),
    }
