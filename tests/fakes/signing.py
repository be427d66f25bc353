"""Webhook signatures made the way each provider makes them, written from their
documentation rather than with the code under test: the fakes sign the receipts they post,
the unit tests sign (and mis-sign) theirs.

    signer = SendGridSigner()                      # a key pair, as the account would have
    headers = signer.headers(body)                 # the two X-Twilio-Email-Event-Webhook-*
    mailgun_signature(key, timestamp, token)       # hex HMAC-SHA256 of timestamp + token
    twilio_signature(token, url, form)             # base64 HMAC-SHA1 of url + sorted k + v
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

SENDGRID_SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"
TWILIO_SIGNATURE = "X-Twilio-Signature"


class SendGridSigner:
    """An ECDSA P-256 key pair, as SendGrid keeps one per account for its Event Webhook."""

    def __init__(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())

    @property
    def public_key(self) -> str:
        """The verification key as SendGrid's settings page shows it (base64 DER)."""
        der = self._key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(der).decode()

    def sign(self, body: bytes, timestamp: str) -> str:
        """base64 of the DER ECDSA/SHA-256 signature of timestamp + body."""
        signature = self._key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return base64.b64encode(signature).decode()

    def headers(self, body: bytes, timestamp: str | None = None) -> dict[str, str]:
        """The signature headers of a request carrying `body`, signed now by default."""
        ts = timestamp if timestamp is not None else str(int(time.time()))
        return {SENDGRID_SIGNATURE: self.sign(body, ts), SENDGRID_TIMESTAMP: ts}


def mailgun_signature(signing_key: str, timestamp: str, token: str) -> str:
    return hmac.new(signing_key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()


def mailgun_signature_block(signing_key: str, timestamp: str | None = None) -> dict[str, str]:
    """The `signature` object of a Mailgun webhook body: a fresh token, signed now."""
    ts = timestamp if timestamp is not None else str(int(time.time()))
    token = secrets.token_hex(25)
    return {"timestamp": ts, "token": token, "signature": mailgun_signature(signing_key, ts, token)}


def twilio_signature(auth_token: str, url: str, form: Mapping[str, str]) -> str:
    """The URL exactly as called, then each form field's name and value in name order."""
    data = url + "".join(name + form[name] for name in sorted(form))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()
