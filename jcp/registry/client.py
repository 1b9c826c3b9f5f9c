"""A small client of the registry v2 API: what digest does a tag name now? (`HEAD` of the
manifest with the Accept header for Docker and OCI manifests and indexes.) And, for an image
about to be pulled, its size and platforms (`GET` of the manifest, and of the list's entry).

One connection pool and a bounded number of requests in flight per registry. Loopback hosts
and `--insecure-registry` hosts are plain HTTP, as Docker treats them; Docker Hub's names go to
registry-1.docker.io. Errors become the model's failure classes (401/403 auth, 404 not found,
429 rate limited with Retry-After, 5xx transient); a registry that cannot be asked at all
(refused, timed out, HEAD refused) is `unreachable`, so the caller falls back to the runtime.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Callable, Collection

import aiohttp
from multidict import CIMultiDictProxy

from jcp.model.credentials import RegistryAuth
from jcp.model.failures import Failure, Reason, RegistryFailure
from jcp.model.manifests import (
    MAX_MANIFEST_BYTES,
    Index,
    Manifest,
    ManifestError,
    RemoteImage,
    parse,
)
from jcp.model.refs import DOCKER_HUB, ImageRef
from jcp.registry.auth import Challenge, TokenCache, basic, fingerprint, parse_challenge

ACCEPT = (
    "application/vnd.oci.image.index.v1+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, "
    "application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.docker.distribution.manifest.v2+json"
)
_LOOPBACK = ("127.", "localhost", "[::1]")
_TIMEOUT = aiohttp.ClientTimeout(total=30, sock_connect=10)

RequestHook = Callable[[str, str, str], None]
"""(registry, kind: ping|token|head|get, result: an HTTP status or 'error')"""
LimitsHook = Callable[[str, int | None, int | None], None]
"""(registry, its rate limit, what remains of it), as its last answer said"""
_LIMIT_HEADERS = ("ratelimit-limit", "ratelimit-remaining")


class RegistryClient:
    def __init__(
        self,
        *,
        insecure: Collection[str] = (),
        per_registry: int = 8,
        on_request: RequestHook | None = None,
        on_limits: LimitsHook | None = None,
    ) -> None:
        self.insecure = set(insecure)
        self.per_registry = per_registry
        self.on_request = on_request
        self.on_limits = on_limits
        self.rate_limits: dict[str, dict[str, str]] = {}
        self._sessions: dict[str, aiohttp.ClientSession] = {}
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._challenges: dict[str, Challenge] = {}
        self._tokens = TokenCache()

    def base(self, host: str) -> str:
        api = "registry-1.docker.io" if host == DOCKER_HUB else host
        plain = host in self.insecure or host.startswith(_LOOPBACK)
        return f"{'http' if plain else 'https'}://{api}"

    def _session(self, host: str) -> aiohttp.ClientSession:
        session = self._sessions.get(host)
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(limit=self.per_registry)
            session = aiohttp.ClientSession(connector=connector, timeout=_TIMEOUT)
            self._sessions[host] = session
            self._slots[host] = asyncio.Semaphore(self.per_registry)
        return session

    def _count(self, host: str, kind: str, result: str) -> None:
        if self.on_request is not None:
            self.on_request(host, kind, result)

    async def digest(self, image: ImageRef, auth: RegistryAuth | None) -> str:
        """The digest IMAGE's tag names now; raises RegistryFailure."""
        headers, _ = await self._manifest("HEAD", image, image.tag or image.digest or "", auth)
        found = headers.get("Docker-Content-Digest")
        if not found:
            raise RegistryFailure(
                Failure(Reason.REGISTRY, f"{image.registry} sent no Docker-Content-Digest"),
                unreachable=True,
            )
        return found

    async def inspect(self, image: ImageRef, auth: RegistryAuth | None, arch: str) -> RemoteImage:
        """IMAGE's compressed size for a Linux node of ARCH, read from its manifest (and its
        list's entry): raises RegistryFailure, with reason `platform` when the list was not
        built for ARCH. Two manifest GETs for a list, one for a single manifest."""
        reference = image.digest or image.tag or ""
        headers, body = await self._manifest("GET", image, reference, auth)
        digest = headers.get("Docker-Content-Digest") or image.digest or _sha256(body)
        found = _parse(image, headers, body)
        if isinstance(found, Manifest):
            return RemoteImage(digest, found.size, blobs=found.blobs)
        entry = found.pick(arch)
        platforms = tuple(found.platforms())
        if entry is None:
            built = ", ".join(platforms) or "no platform"
            raise RegistryFailure(
                Failure(
                    Reason.PLATFORM,
                    f"{image} is not built for linux/{arch}: its manifest list has {built}",
                )
            )
        headers, body = await self._manifest("GET", image, entry.digest, auth)
        child = _parse(image, headers, body)
        if not isinstance(child, Manifest):
            raise RegistryFailure(
                Failure(Reason.REGISTRY, f"{image}: the list's entry is not a manifest")
            )
        return RemoteImage(digest, child.size, platforms, child.blobs)

    def blob_url(self, image: ImageRef, digest: str) -> str:
        return f"{self.base(image.registry)}/v2/{image.repository}/blobs/{digest}"

    async def pull_headers(
        self, image: ImageRef, auth: RegistryAuth | None, challenge: str | None = None
    ) -> dict[str, str]:
        """The Authorization a pull of IMAGE's repository needs (blob GETs), with the token
        logic of the manifest requests; CHALLENGE, a 401's `WWW-Authenticate`, is learnt
        first. Raises RegistryFailure (the token service)."""
        host = image.registry
        found = parse_challenge(challenge)
        if found is not None:
            self._challenges[host] = found
        self._session(host)  # the token request goes through the registry's session
        scope = f"repository:{image.repository}:pull"
        authorization = await self._authorization(host, scope, auth)
        return {"Authorization": authorization} if authorization else {}

    def metered(self, registry: str) -> bool:
        return registry in self.rate_limits

    async def _manifest(
        self, method: str, image: ImageRef, reference: str, auth: RegistryAuth | None
    ) -> tuple[CIMultiDictProxy[str], bytes]:
        """One manifest request (HEAD or GET) with the auth its registry challenges for."""
        host = image.registry
        kind = method.lower()
        scope = f"repository:{image.repository}:pull"
        url = f"{self.base(host)}/v2/{image.repository}/manifests/{reference}"
        session = self._session(host)
        async with self._slots[host]:
            for attempt in (1, 2):
                headers = {"Accept": ACCEPT}
                authorization = await self._authorization(host, scope, auth)
                if authorization:
                    headers["Authorization"] = authorization
                try:
                    async with session.request(
                        method, url, headers=headers, allow_redirects=True
                    ) as resp:
                        self._count(host, kind, str(resp.status))
                        self._note_limits(host, resp.headers)
                        if resp.status == 401 and attempt == 1:
                            challenge = parse_challenge(resp.headers.get("WWW-Authenticate"))
                            if challenge is not None and challenge != self._challenges.get(host):
                                self._challenges[host] = challenge
                                continue
                        self._raise_for(host, resp.status, resp.headers, image)
                        body = b"" if method == "HEAD" else await _read(resp, image)
                        return resp.headers, body
                except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                    self._count(host, kind, "error")
                    raise RegistryFailure(
                        Failure(Reason.REGISTRY, f"cannot reach {host}: {type(exc).__name__}"),
                        unreachable=True,
                    ) from None
        raise RegistryFailure(Failure(Reason.AUTH, f"{host} refused the credentials (401)"))

    async def _authorization(self, host: str, scope: str, auth: RegistryAuth | None) -> str | None:
        challenge = self._challenges.get(host)
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            return basic(auth)
        if challenge.scheme != "bearer" or "realm" not in challenge.params:
            return None
        key = (host, scope, fingerprint(auth))
        token = self._tokens.get(key)
        if token is None:
            token, expires = await self._token(host, challenge, scope, auth)
            self._tokens.put(key, token, expires)
        return f"Bearer {token}"

    async def _token(
        self, host: str, challenge: Challenge, scope: str, auth: RegistryAuth | None
    ) -> tuple[str, float]:
        params = {"scope": scope}
        if "service" in challenge.params:
            params["service"] = challenge.params["service"]
        headers = {}
        if auth is not None and auth.identitytoken:
            params["refresh_token"] = auth.identitytoken
        elif (credentials := basic(auth)) is not None:
            headers["Authorization"] = credentials
        try:
            async with self._session(host).get(
                challenge.params["realm"], params=params, headers=headers
            ) as resp:
                self._count(host, "token", str(resp.status))
                self._raise_for(host, resp.status, resp.headers, None)
                doc = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            self._count(host, "token", "error")
            raise RegistryFailure(
                Failure(Reason.REGISTRY, f"token service of {host}: {type(exc).__name__}"),
                unreachable=True,
            ) from None
        token = doc.get("token") or doc.get("access_token") if isinstance(doc, dict) else None
        if not isinstance(token, str) or not token:
            raise RegistryFailure(Failure(Reason.AUTH, f"token service of {host} gave no token"))
        expires = doc.get("expires_in", 60)
        return token, float(expires) if isinstance(expires, int | float) else 60.0

    def _note_limits(self, host: str, headers: object) -> None:
        """Keep what a registry says of its rate limit (Docker Hub: `ratelimit-limit: 100;w=21600`
        on every manifest answer), so operators see the allowance shrink before a 429."""
        get = getattr(headers, "get", None)
        if get is None:
            return
        found = {k: str(get(k)) for k in ("ratelimit-limit", "ratelimit-remaining") if get(k)}
        if not found:
            return
        self.rate_limits[host] = found
        if self.on_limits is not None:
            limit, remaining = (_leading_int(found.get(k)) for k in _LIMIT_HEADERS)
            self.on_limits(host, limit, remaining)

    def _raise_for(self, host: str, status: int, headers: object, image: ImageRef | None) -> None:
        if status < 400:
            return
        what = f"{image}" if image is not None else f"{host} token"
        if status in (401, 403):
            raise RegistryFailure(Failure(Reason.AUTH, f"{what}: {status} from {host}"))
        if status == 404:
            raise RegistryFailure(Failure(Reason.NOT_FOUND, f"{what}: not found at {host}"))
        if status == 429:
            retry = getattr(headers, "get", lambda _k: None)("Retry-After")
            after = float(retry) if retry and str(retry).isdigit() else None
            raise RegistryFailure(
                Failure(Reason.RATE_LIMITED, f"{host}: 429 too many requests", after)
            )
        if status in (405, 501):  # HEAD refused (some proxies): the runtime pulls instead
            raise RegistryFailure(
                Failure(Reason.REGISTRY, f"{host} refuses HEAD ({status})"), unreachable=True
            )
        raise RegistryFailure(Failure(Reason.REGISTRY, f"{what}: {status} from {host}"))

    async def close(self) -> None:
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()


async def _read(resp: aiohttp.ClientResponse, image: ImageRef) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(65536):
        size += len(chunk)
        if size > MAX_MANIFEST_BYTES:
            raise RegistryFailure(
                Failure(Reason.REGISTRY, f"{image}: manifest over {MAX_MANIFEST_BYTES} bytes")
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(image: ImageRef, headers: CIMultiDictProxy[str], body: bytes) -> Index | Manifest:
    try:
        return parse(body, headers.get("Content-Type"))
    except ManifestError as exc:
        raise RegistryFailure(Failure(Reason.REGISTRY, f"{image}: {exc}")) from None


def _sha256(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


def _leading_int(value: str | None) -> int | None:
    """`76;w=21600` -> 76."""
    found = re.match(r"\s*(\d+)", value or "")
    return int(found.group(1)) if found else None
