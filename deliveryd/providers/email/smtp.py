"""SMTP through aiosmtplib: one connection per message, every step under one timeout."""

from __future__ import annotations

from email.message import EmailMessage as MimeMessage
from email.utils import formatdate, parseaddr

import aiosmtplib

from deliveryd.providers.base import (
    EmailMessage,
    PermanentError,
    Provider,
    ProviderError,
    Sent,
    TransientError,
)


def _by_code(code: int, text: str) -> ProviderError:
    # 4xx is "try again later" in SMTP, 5xx is "this will not work".
    if 400 <= code < 500:
        return TransientError(text, status=code)
    return PermanentError(text, status=code)


class SmtpProvider(Provider[EmailMessage]):
    """The provider message id is the Message-ID we set, stable per notification hop."""

    name = "smtp"

    def __init__(
        self,
        *,
        host: str,
        port: int,
        username: str | None,
        password: str | None,
        start_tls: bool,
        sender: str,
        timeout: float,
    ) -> None:
        super().__init__(timeout=timeout)
        self._host = host
        self._port = port
        self._username = username
        self._password = password
        self._start_tls = start_tls
        self._sender = sender
        self._domain = parseaddr(sender)[1].rpartition("@")[2] or "herald.local"

    def _mime(self, message: EmailMessage) -> MimeMessage:
        mime = MimeMessage()
        mime["From"] = self._sender
        mime["To"] = message.to
        mime["Subject"] = message.subject
        mime["Date"] = formatdate(localtime=False, usegmt=True)
        # The same hop always carries the same Message-ID: a duplicate after a crash is
        # recognisable (and many receivers drop it).
        mime["Message-ID"] = f"<{message.key.replace(':', '.')}@{self._domain}>"
        mime["X-Herald-Notification-Id"] = message.notification_id
        mime.set_content(message.text or " ")
        if message.html:
            mime.add_alternative(message.html, subtype="html")
        return mime

    async def send(self, message: EmailMessage) -> Sent:
        try:
            mime = self._mime(message)
        except ValueError as exc:
            # A header the email library refuses (CR/LF in the subject, say): the message's
            # own fault, so it neither counts against SMTP's breaker nor is retried.
            raise PermanentError(f"smtp cannot carry the message: {exc}") from None
        try:
            _, response = await aiosmtplib.send(
                mime,
                hostname=self._host,
                port=self._port,
                username=self._username,
                password=self._password,
                start_tls=self._start_tls,
                timeout=self.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            first = exc.recipients[0]
            if first.code == 530 or "relay" in first.message.lower():
                # "Relay access denied" or "authentication required": the server will not
                # take mail from us for anyone, a configuration problem.
                raise TransientError(
                    f"smtp refused to relay: {first.code} {first.message}", status=first.code
                ) from None
            text = f"smtp refused the recipient: {first.code} {first.message}"
            raise _by_code(first.code, text) from None
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise TransientError(
                f"smtp rejected the credentials ({exc.code})", status=exc.code
            ) from None
        except aiosmtplib.SMTPSenderRefused as exc:
            # Our From address is refused: a configuration problem, not the message's.
            raise TransientError(f"smtp refused the sender: {exc.code}", status=exc.code) from None
        except aiosmtplib.SMTPDataError as exc:
            # The answer to the message itself: its content or size.
            raise _by_code(
                exc.code, f"smtp refused the message: {exc.code} {exc.message}"
            ) from None
        except aiosmtplib.SMTPResponseException as exc:
            # Refused at the greeting, EHLO or STARTTLS: the server will not talk to us at all.
            raise TransientError(
                f"smtp answered {exc.code} {exc.message}", status=exc.code
            ) from None
        except aiosmtplib.SMTPTimeoutError as exc:
            raise TransientError(f"smtp timed out after {self.timeout}s") from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise TransientError(f"smtp connection failed: {exc}") from exc
        return Sent(message_id=str(mime["Message-ID"]), detail=f"smtp: {response}"[:300])
