"""The CRI's failures, mapped into the model's classes: used only by the CRI adapter.

A gRPC status code says whether the runtime itself answered (UNAVAILABLE: the socket is gone or
refuses: the runtime is down, wait for it); the text (containerd wraps the registry's answer in
an UNKNOWN status) says why a pull failed. The patterns below are what Debian's containerd 1.6
actually returned in tests/test_cri_runtime.py (run it with -s to see them), e.g.:

- auth: `failed to pull and unpack image "R/x:1": failed to resolve reference "R/x:1": pulling
  from host R failed with status code [manifests 1]: 401 Unauthorized` (no or wrong password)
- not_found: `... failed to resolve reference "R/x:1": R/x:1: not found` (repository or tag)
- platform: `failed to pull and unpack image "R/x:1": no match for platform in manifest: not
  found` (checked before not_found: it ends in "not found" too)
- runtime down: status UNAVAILABLE, `failed to connect to all addresses; last error: ...
  Connection refused` (containerd killed)
"""

from __future__ import annotations

import re

import grpc

from jcp.model.failures import Failure, Reason

_PATTERNS: tuple[tuple[Reason, re.Pattern[str]], ...] = tuple(
    (reason, re.compile(pattern, re.IGNORECASE))
    for reason, pattern in (
        (Reason.PLATFORM, r"no match for platform|no matching manifest|not match.*platform"),
        (Reason.DISK, r"no space left on device"),
        (Reason.RATE_LIMITED, r"toomanyrequests|too many requests|\b429\b"),
        (Reason.AUTH, r"unauthorized|authentication required|\b401\b|\b403\b|forbidden|denied"),
        (Reason.NOT_FOUND, r"not found|manifest unknown|name unknown|does not exist"),
        (
            Reason.REGISTRY,
            (
                r"connection refused|connection reset|i/o timeout|timeout|EOF|no such host|"
                r"\b50[0234]\b|service unavailable|bad gateway|internal server error"
            ),
        ),
    )
)


def classify(exc: grpc.RpcError, endpoint: str) -> Failure:
    # grpc.aio's AioRpcError has code() and details() without being a grpc.Call.
    code = exc.code() if hasattr(exc, "code") else None
    details = (exc.details() if hasattr(exc, "details") else None) or str(code)
    message = " ".join(details.split())
    if code == grpc.StatusCode.UNAVAILABLE:
        return Failure(Reason.DAEMON, f"cannot reach the CRI runtime at {endpoint}: {message}")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return Failure(Reason.REGISTRY, f"the CRI call timed out: {message}")
    if code == grpc.StatusCode.CANCELLED:
        return Failure(Reason.DAEMON, f"the CRI call was cancelled: {message}")
    for reason, pattern in _PATTERNS:
        if pattern.search(message):
            return Failure(reason, message)
    if code == grpc.StatusCode.NOT_FOUND:
        return Failure(Reason.NOT_FOUND, message)
    if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        return Failure(Reason.AUTH, message)
    return Failure(Reason.REGISTRY, message)
