"""The CRI's failures, mapped into the model's classes: used only by the CRI adapter.

The transport (grpc_transport.py) hands over the status code's name and the server's text; the
texts below are containerd's (grpclib's own words for a refused or missing socket are mapped to
grpcio's last words for it, which older jcp releases logged).

A gRPC status code says whether the runtime itself answered (UNAVAILABLE: the socket is gone or
refuses, or the runtime died mid-call: the runtime is down, wait for it); the text (containerd
wraps the registry's answer) says why a pull failed. These are the texts Debian's containerd
1.6.20 returned (tests/integration/test_cri_runtime.py and test_cri_choose.py, run with -s,
print them; R is the registry host:port):

- auth (status UNKNOWN), both without credentials and with a wrong user or password:
  `failed to pull and unpack image "R/x:1": failed to resolve reference "R/x:1": pulling from
  host R failed with status code [manifests 1]: 401 Unauthorized`
- not_found (status NOT_FOUND), a missing repository, tag or digest: `failed to pull and unpack
  image "R/x:1": failed to resolve reference "R/x:1": R/x:1: not found`
- platform (status NOT_FOUND), a manifest list without the node's platform: `failed to pull and
  unpack image "R/x:1": no match for platform in manifest: not found` (matched before not_found)
- daemon, containerd killed (status UNAVAILABLE): before the call `failed to connect to all
  addresses; last error: FAILED_PRECONDITION: unix:/path.sock: connect failed: addr:
  unix:/path.sock error: Connection refused` (`No such file or directory` when the socket file
  is gone), and during a pull `Stream removed (Socket closed)`
- registry (status UNKNOWN), the registry refuses connections: `failed to pull and unpack image
  "R/x/y:1": failed to resolve reference "R/x/y:1": failed to do request: Head
  "http://R/v2/x/y/manifests/1": dial tcp R: connect: connection refused`; the call's own
  deadline: DEADLINE_EXCEEDED `Deadline Exceeded`
- rate_limited (status UNKNOWN), Docker Hub's 429: `... failed to resolve reference "R/x:1":
  pulling from host R failed with status code [manifests 1]: 429 Too Many Requests` (the
  registry's Retry-After does not reach the CRI client: the engine's own backoff applies)
"""

from __future__ import annotations

import re

from jcp.model.failures import Failure, Reason
from jcp.runtime.grpc_transport import CallError

_CONNECT_ERROR = re.compile(r"connect failed: .* error: ([^;]+)$")

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


def _status(exc: BaseException) -> tuple[str, str] | None:
    """The status code's name and the details of a failed call: a CallError (either transport,
    through grpc_transport), or grpcio's own RpcError (code() and details(); grpc.aio's
    AioRpcError has them without being a grpc.Call). None for anything else."""
    if isinstance(exc, CallError):
        return exc.code, exc.details
    code = getattr(exc, "code", None)
    details = getattr(exc, "details", None)
    if callable(code) and callable(details):
        name = getattr(code(), "name", None)
        if isinstance(name, str):
            return name, str(details() or "")
    return None


def classify(exc: BaseException, endpoint: str) -> Failure:
    """The failure class of an exception raised by a CRI call on the channel to ENDPOINT."""
    status = _status(exc)
    if status is None:
        return Failure(Reason.DAEMON, f"unexpected {type(exc).__name__} from the CRI: {exc}")
    code, details = status
    message = " ".join((details or f"StatusCode.{code}").split())
    if code == "UNAVAILABLE":
        # gRPC's connect failure names the socket twice; its last words are the cause.
        if cause := _CONNECT_ERROR.search(message):
            message = cause.group(1)
        return Failure(Reason.DAEMON, f"cannot reach the CRI runtime at {endpoint}: {message}")
    if code == "DEADLINE_EXCEEDED":
        return Failure(Reason.REGISTRY, f"the CRI call timed out: {message}")
    if code == "CANCELLED":
        return Failure(Reason.DAEMON, f"the CRI call was cancelled: {message}")
    for reason, pattern in _PATTERNS:
        if pattern.search(message):
            return Failure(reason, message)
    if code == "NOT_FOUND":
        return Failure(Reason.NOT_FOUND, message)
    if code in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
        return Failure(Reason.AUTH, message)
    return Failure(Reason.REGISTRY, message)
