"""Gmail: SMTP submission to smtp.gmail.com with an app password (the `gmail` preset).

Gmail takes mail from its own accounts over STARTTLS on port 587 with SMTP AUTH; with
2-Step Verification on, an app password stands for the account's password. The preset
fixes all but the account and the app password (HERALD_GMAIL_*): it is SMTP with Gmail's
defaults under a name of its own, so its breaker, health and metrics stay apart from a
generic `smtp` provider in the same chain.
"""

from __future__ import annotations

from deliveryd.providers.email.smtp import SmtpProvider


class GmailProvider(SmtpProvider):
    name = "gmail"

    def __init__(
        self, *, account: str, app_password: str, sender: str, host: str, port: int, timeout: float
    ) -> None:
        # Google shows an app password in groups of four letters: the spaces are not part of it.
        super().__init__(
            host=host,
            port=port,
            username=account,
            password="".join(app_password.split()),
            start_tls=True,
            sender=sender,
            timeout=timeout,
        )
