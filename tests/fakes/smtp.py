"""A real SMTP server (aiosmtpd) served in the test's loop, recording what it accepts.

Programmable like the HTTP fakes: refuse recipients (550), deny relaying like a server
that wants authentication (554 5.7.1 at RCPT), answer the next DATA commands with a failure
(451 unless told otherwise), stall at EHLO (the client is connected, nothing sent yet),
stop listening. Given a TLS context and credentials it is a submission server as Gmail's
is: STARTTLS required before anything else, then AUTH with those credentials only.
"""

from __future__ import annotations

import asyncio
import collections
import email
import email.policy
import ssl
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


class SmtpFake:
    name = "smtp"

    def __init__(
        self, *, tls: ssl.SSLContext | None = None, credentials: tuple[str, str] | None = None
    ) -> None:
        self._tls = tls
        self._credentials = credentials
        self.deliveries: list[dict[str, Any]] = []
        self.connections = 0
        self.invalid_recipients: set[str] = set()
        self.relay_denied = False
        self.port = 0
        self._data_failures: collections.deque[str] = collections.deque()
        self._ehlo_stall = 0.0
        self._server: asyncio.Server | None = None

    async def start(self, port: int = 0) -> SmtpFake:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._protocol, "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def _protocol(self) -> SMTP:
        return SMTP(
            self,
            hostname="fake-smtp",
            ident="fake-smtp",
            tls_context=self._tls,
            require_starttls=self._tls is not None,
            authenticator=self._authenticate if self._credentials else None,
            auth_required=self._credentials is not None,
        )

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        given = (
            (data.login.decode(), data.password.decode())
            if isinstance(data, LoginPassword)
            else None
        )
        return AuthResult(success=given == self._credentials, handled=False, auth_data=data)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    async def refuse(self) -> None:
        await self.stop()

    async def resume(self) -> None:
        if self._server is None:
            await self.start(self.port)

    def fail_next(
        self, count: int = 1, answer: str = "451 4.3.0 temporary failure, try again later"
    ) -> None:
        """The next `count` messages get `answer` at DATA (451: try again later)."""
        self._data_failures.extend([answer] * count)

    def stall_ehlo(self, seconds: float) -> None:
        """Answer EHLO only after `seconds` (0 turns it off)."""
        self._ehlo_stall = seconds

    def reset(self) -> None:
        self.deliveries.clear()
        self.connections = 0
        self.invalid_recipients.clear()
        self.relay_denied = False
        self._data_failures.clear()
        self._ehlo_stall = 0.0

    # aiosmtpd handler hooks.
    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        self.connections += 1
        if self._ehlo_stall:
            await asyncio.sleep(self._ehlo_stall)
        session.host_name = hostname
        return responses

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.relay_denied:
            return f"554 5.7.1 <{address}>: Relay access denied"
        if address in self.invalid_recipients:
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self._data_failures:
            return self._data_failures.popleft()
        content = envelope.content
        raw = content if isinstance(content, bytes) else str(content).encode()
        message = email.message_from_bytes(raw, policy=email.policy.default)
        text = message.get_body(("plain",))
        html = message.get_body(("html",))
        self.deliveries.append(
            {
                "mail_from": envelope.mail_from,
                "to": list(envelope.rcpt_tos),
                "subject": str(message["Subject"]),
                "message_id": str(message["Message-ID"]),
                "from": str(message["From"]),
                "tls": session.ssl is not None,
                "login": session.auth_data.login.decode() if session.auth_data else None,
                "text": text.get_content() if text is not None else "",
                "html": html.get_content() if html is not None else "",
            }
        )
        return "250 2.0.0 OK queued"
