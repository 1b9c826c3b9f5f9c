"""Docker's words for failures, mapped into the model's classes: used only by the Docker adapter.

Docker reports registry failures three ways: an HTTP error from `POST /images/create`, an error
inside the 200 JSON stream (aiodocker's DockerStreamError, status 0), or a broken connection
to the daemon (status 900, or an aiohttp/OS error). The text is what carries the cause, so it is
matched here against the registry and daemon messages seen in practice.
"""

from __future__ import annotations

import asyncio
import re

import aiodocker
import aiohttp

from jcp.model.failures import Failure, Reason

_PATTERNS: tuple[tuple[Reason, re.Pattern[str]], ...] = tuple(
    (reason, re.compile(pattern, re.IGNORECASE))
    for reason, pattern in (
        (Reason.DAEMON, r"grpc: |temporary lease|daemon is shutting down|containerd"),
        (
            Reason.PLATFORM,
            r"no matching manifest|no match for platform|does not match the specified platform",
        ),
        (Reason.DISK, r"no space left on device"),
        (Reason.RATE_LIMITED, r"toomanyrequests|too many requests|rate limit|\b429\b"),
        (
            Reason.NOT_FOUND,
            (
                r"manifest unknown|not found|does not exist|name unknown|no such image|"
                r"repository .* not found"
            ),
        ),
        (
            Reason.AUTH,
            (
                r"unauthorized|authentication required|denied|forbidden|no basic auth credentials|"
                r"\b401\b|\b403\b|incorrect username or password"
            ),
        ),
        (
            Reason.REGISTRY,
            (
                r"connection refused|connection reset|i/o timeout|timeout|EOF|no such host|"
                r"server misbehaving|TLS handshake|\b50[0234]\b|service unavailable|bad gateway|"
                r"internal server error|temporary failure"
            ),
        ),
    )
)


def _from_message(message: str, status: int | None) -> Failure:
    for reason, pattern in _PATTERNS:
        if pattern.search(message):
            return Failure(reason, message)
    if status is not None and 400 <= status < 500:
        return Failure(Reason.NOT_FOUND if status == 404 else Reason.AUTH, message)
    return Failure(Reason.REGISTRY, message)


def classify(exc: BaseException) -> Failure:
    """The failure class of an exception raised by aiodocker while talking to the daemon."""
    if isinstance(exc, aiodocker.DockerError):
        message = str(exc.message).strip()
        if exc.status == 900:
            return Failure(Reason.DAEMON, f"cannot reach the Docker daemon: {message}")
        if exc.status >= 500 and "daemon" in message.lower() and "registry" not in message.lower():
            return Failure(Reason.DAEMON, message)
        return _from_message(message, exc.status or None)
    if isinstance(exc, (aiohttp.ClientError, OSError, asyncio.TimeoutError)):
        return Failure(Reason.DAEMON, f"cannot reach the Docker daemon: {exc!r}")
    return Failure(Reason.DAEMON, f"unexpected {type(exc).__name__}: {exc}")
