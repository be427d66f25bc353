"""Firebase Cloud Messaging through firebase-admin's async sender.

The SDK has no option for its endpoint: the URL is the class constant
`_MessagingService.FCM_URL`, read when an app's messaging service is created, so it is
set from configuration before that. Its built-in retries (500/503 up to four more times)
are turned off: retries belong to Herald's own policy (backoff through the delay queues,
failover, circuit breakers), and a hidden retry loop would outlive the provider timeout.

The SDK's auth flow refreshes the OAuth token with a blocking call (google-auth, 120 s
by default) on the event loop whenever the token looks stale and again on every 401, where
no `asyncio.timeout` can interrupt it. It is replaced by one that only adds the cached
token: the provider fetches tokens itself, in a thread and under its timeout, and drops the
token FCM rejected so that the next send fetches a new one.
"""

from __future__ import annotations

import asyncio
import uuid
import warnings
from collections.abc import Generator
from typing import Any

import firebase_admin
import google.auth.exceptions
import google.auth.transport.requests
import httpx
from firebase_admin import _http_client as fcm_http
from firebase_admin import credentials, exceptions, messaging
from firebase_admin._retry import HttpxRetry

from deliveryd.providers.base import (
    PermanentError,
    Platform,
    Provider,
    PushMessage,
    Sent,
    TargetGone,
    TransientError,
    throttled,
)

FCM_PATH = "/v1/projects/{0}/messages:send"


def _classify(error: BaseException) -> Exception:
    """Permanent only for what is wrong with this message (its token or its payload, which
    FCM answers with INVALID_ARGUMENT); rejected credentials, an unknown project and the
    like are the configuration's fault: transient, so that the chain fails over. A 429
    (QUOTA_EXCEEDED) is `Throttled`, waiting its Retry-After."""
    text = f"fcm: {error}"[:300]
    if isinstance(error, exceptions.ResourceExhaustedError):
        response = error.http_response
        return throttled("fcm", response.headers if response is not None else None)
    if isinstance(error, messaging.UnregisteredError | messaging.SenderIdMismatchError):
        return TargetGone(text, status=404)
    if isinstance(error, exceptions.InvalidArgumentError):
        return PermanentError(text, status=400)
    if isinstance(error, exceptions.UnauthenticatedError):
        return TransientError(text, status=401)
    return TransientError(text)


class _TimedRequest(google.auth.transport.requests.Request):
    """google-auth's transport with our timeout instead of its default 120 s."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self._timeout = timeout

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["timeout"] = self._timeout
        return super().__call__(*args, **kwargs)  # type: ignore[no-untyped-call]


class _CachedToken(httpx.Auth):
    """Adds the cached OAuth token to a request; never fetches one (that would block the loop)."""

    def __init__(self, credential: Any) -> None:
        self._credential = credential

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        # Another send may have dropped the token since this one checked it: FCM answers
        # the request without one 401, a transient failure like the one that dropped it.
        if self._credential.token:
            self._credential.apply(request.headers)
        yield request


class FcmProvider(Provider[PushMessage]):
    """Sends to FCM registration tokens; the message id is `projects/…/messages/…`."""

    name = "fcm"

    def __init__(
        self, *, credentials_file: str, project_id: str | None, base_url: str, timeout: float
    ) -> None:
        super().__init__(timeout=timeout)
        messaging._MessagingService.FCM_URL = base_url.rstrip("/") + FCM_PATH
        options: dict[str, object] = {"httpTimeout": timeout}
        if project_id:
            options["projectId"] = project_id
        self._app = firebase_admin.initialize_app(
            credentials.Certificate(credentials_file), options, name=f"herald-{uuid.uuid4()}"
        )
        service = messaging._get_messaging_service(self._app)
        self._credential = service._credential
        self._http = fcm_http.HttpxAsyncClient(
            credential=self._credential, timeout=timeout, retry_config=HttpxRetry(max_retries=0)
        )
        self._http.async_client.auth = _CachedToken(self._credential)
        service._async_client = self._http
        self._refresh_lock = asyncio.Lock()

    def accepts(self, message: PushMessage) -> bool:
        return message.device.platform == Platform.FCM and bool(message.device.token)

    async def _ensure_token(self) -> None:
        """Fetches the OAuth token in a thread, under the provider's timeout, when it has
        none or it is about to expire."""
        if self._credential.valid:
            return
        async with self._refresh_lock:
            if self._credential.valid:
                return
            request = _TimedRequest(self.timeout)
            try:
                async with asyncio.timeout(self.timeout):
                    await asyncio.to_thread(self._credential.refresh, request)
            except TimeoutError:
                raise TransientError(f"fcm token refresh timed out after {self.timeout}s") from None
            except google.auth.exceptions.GoogleAuthError as exc:
                raise TransientError(f"fcm token refresh failed: {exc}"[:300]) from exc

    async def send(self, message: PushMessage) -> Sent:
        await self._ensure_token()
        with warnings.catch_warnings():
            # firebase-admin 7.7 prefers installation ids; userd stores registration tokens,
            # which the FCM v1 API still takes.
            warnings.simplefilter("ignore", DeprecationWarning)
            fcm_message = messaging.Message(
                token=message.device.token,
                notification=messaging.Notification(title=message.title, body=message.body),
                data={**message.data, "herald_notification_id": message.notification_id},
            )
        batch = await messaging.send_each_async([fcm_message], app=self._app)
        answer = batch.responses[0]
        if answer.success:
            return Sent(message_id=str(answer.message_id))
        error = answer.exception
        if isinstance(error, exceptions.UnauthenticatedError) and not isinstance(
            error, messaging.ThirdPartyAuthError
        ):
            # FCM rejected our token (revoked, or expired early): the next send fetches another.
            self._credential.token = None
        raise _classify(error) from None

    async def close(self) -> None:
        await self._http.aclose()
        # delete_app closes the SDK's clients with asyncio.run: not on a running loop.
        await asyncio.to_thread(firebase_admin.delete_app, self._app)
