"""A small client of the registry v2 API: what digest does a tag name now? (`HEAD` of the
manifest with the Accept header for Docker and OCI manifests and indexes.) And, for an image
about to be pulled, its size and platforms (`GET` of the manifest, and of the list's entry).

One connection pool and a bounded number of requests in flight per registry. Loopback hosts
and `--insecure-registry` hosts are plain HTTP, as Docker treats them; Docker Hub's names go to
registry-1.docker.io. Errors become the model's failure classes (401/403 auth, 404 not found,
429 rate limited with Retry-After, 5xx transient); a registry that cannot be asked at all
(refused, timed out, HEAD refused) is `unreachable`, so the caller falls back to the runtime.

With the node's containerd host config (`hosts.py`), a registry's requests go to its mirrors
first, in order, and fall back as containerd does. The registry's credentials go to the
endpoint that challenges for them, mirror or registry, as containerd's authorizer does (it asks
its credentials for the host that answered 401, and the CRI answers with the pull's auth): only
to the registry's own endpoints, never to a host the config does not name for that registry.
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
from jcp.registry.fallback import Fallback
from jcp.registry.hosts import PULL, RESOLVE, Endpoint, HostsConfig, HostsError

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
        hosts: HostsConfig | None = None,
    ) -> None:
        self.insecure = set(insecure)
        self.hosts = hosts
        self.fallback = Fallback()
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

    def endpoints(self, host: str, *capabilities: str) -> tuple[Endpoint, ...]:
        """Where registry HOST is asked for what needs CAPABILITIES (`resolve` for a tag,
        `pull` for content by digest), in the order to try: its mirrors from the node's
        hosts.toml, then its server; without a config, the registry alone."""
        scheme, api = self.base(host).split("://", 1)
        default = Endpoint(scheme, api)
        if self.hosts is None:
            return (default,)
        return tuple(e for e in self.hosts.endpoints(host, default) if e.can(*capabilities))

    def session(self, endpoint: Endpoint) -> aiohttp.ClientSession:
        """One pool per endpoint and TLS setting; raises HostsError (a CA file unreadable)."""
        key = f"{endpoint.root}|{endpoint.skip_verify}|{endpoint.ca}|{endpoint.client}"
        session = self._sessions.get(key)
        if session is None or session.closed:
            tls = endpoint.ssl_context()
            connector = aiohttp.TCPConnector(limit=self.per_registry, ssl=tls or True)
            timeout = _TIMEOUT
            if endpoint.dial_timeout is not None:
                timeout = aiohttp.ClientTimeout(total=30, sock_connect=endpoint.dial_timeout)
            session = aiohttp.ClientSession(connector=connector, timeout=timeout)
            self._sessions[key] = session
        return session

    def _slot(self, host: str) -> asyncio.Semaphore:
        if host not in self._slots:
            self._slots[host] = asyncio.Semaphore(self.per_registry)
        return self._slots[host]

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

    def blob_endpoint(self, image: ImageRef) -> Endpoint:
        """Where IMAGE's blobs are fetched: the first of its registry's endpoints that may
        `pull` (a mirror from hosts.toml first). A fetch that fails there is the runtime's to
        retry, through its own host config: the next endpoints are not tried here."""
        found = self.endpoints(image.registry, PULL)
        return found[0] if found else self.endpoints(image.registry)[0]

    def blob_url(self, image: ImageRef, digest: str) -> str:
        endpoint = self.blob_endpoint(image)
        return endpoint.url(image.registry, image.repository, "blobs", digest)

    async def pull_headers(
        self, image: ImageRef, auth: RegistryAuth | None, challenge: str | None = None
    ) -> dict[str, str]:
        """The headers a blob GET of IMAGE's repository needs (its endpoint's own, and the
        Authorization with the token logic of the manifest requests); CHALLENGE, a 401's
        `WWW-Authenticate`, is learnt first. Raises RegistryFailure (the token service)."""
        endpoint = self.blob_endpoint(image)
        found = parse_challenge(challenge)
        if found is not None:
            self._challenges[_name(endpoint, image.registry)] = found
        scope = f"repository:{image.repository}:pull"
        authorization = await self.authorization(endpoint, image.registry, scope, auth)
        headers = dict(endpoint.header)
        if authorization:
            headers["Authorization"] = authorization
        return headers

    def metered(self, registry: str) -> bool:
        return registry in self.rate_limits

    async def _manifest(
        self, method: str, image: ImageRef, reference: str, auth: RegistryAuth | None
    ) -> tuple[CIMultiDictProxy[str], bytes]:
        """One manifest request (HEAD or GET): at each of the registry's endpoints in turn until
        one answers, as containerd's resolver and fetcher do."""
        host = image.registry
        by_tag = reference == image.tag and not reference.startswith("sha256:")
        endpoints = self.endpoints(host, *((PULL, RESOLVE) if by_tag else (PULL,)))
        async with self._slot(host):
            return await self.fallback.first(
                host,
                endpoints,
                lambda endpoint: self._manifest_at(endpoint, method, image, reference, auth),
                "resolve tags" if by_tag else "pull",
            )

    async def _manifest_at(
        self,
        endpoint: Endpoint,
        method: str,
        image: ImageRef,
        reference: str,
        auth: RegistryAuth | None,
    ) -> tuple[CIMultiDictProxy[str], bytes]:
        """One manifest request at one endpoint, with the auth it challenges for."""
        host = image.registry
        at = _name(endpoint, host)
        kind = method.lower()
        scope = f"repository:{image.repository}:pull"
        url = endpoint.url(host, image.repository, "manifests", reference)
        try:
            session = self.session(endpoint)
        except HostsError as exc:
            raise RegistryFailure(Failure(Reason.REGISTRY, str(exc)), unreachable=True) from None
        for attempt in (1, 2):
            headers = {"Accept": ACCEPT, **dict(endpoint.header)}
            authorization = await self.authorization(endpoint, host, scope, auth)
            if authorization:
                headers["Authorization"] = authorization
            try:
                async with session.request(
                    method, url, headers=headers, allow_redirects=True
                ) as resp:
                    self._count(host, kind, str(resp.status))
                    self._note_limits(host, resp.headers)
                    if (
                        resp.status == 401
                        and attempt == 1
                        and self.challenged(endpoint, host, resp)
                    ):
                        continue
                    self._raise_for(at, resp.status, resp.headers, image)
                    body = b"" if method == "HEAD" else await _read(resp, image)
                    return resp.headers, body
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                self._count(host, kind, "error")
                raise RegistryFailure(
                    Failure(Reason.REGISTRY, f"cannot reach {at}: {type(exc).__name__}"),
                    unreachable=True,
                ) from None
        raise RegistryFailure(Failure(Reason.AUTH, f"{at} refused the credentials (401)"))

    def challenged(self, endpoint: Endpoint, registry: str, resp: aiohttp.ClientResponse) -> bool:
        """Keep a 401's challenge of one of REGISTRY's endpoints: True when it is new (worth
        one more attempt with `authorization`)."""
        at = _name(endpoint, registry)
        challenge = parse_challenge(resp.headers.get("WWW-Authenticate"))
        if challenge is None or challenge == self._challenges.get(at):
            return False
        self._challenges[at] = challenge
        return True

    async def authorization(
        self, endpoint: Endpoint, registry: str, scope: str, auth: RegistryAuth | None
    ) -> str | None:
        """The Authorization header for ENDPOINT of REGISTRY, once it challenged; AUTH is the
        registry's own credentials, which reach its mirrors as containerd's do (and no other
        host: aiohttp drops the header on a redirect to another one)."""
        host = _name(endpoint, registry)
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
            token, expires = await self._token(endpoint, host, challenge, scope, auth)
            self._tokens.put(key, token, expires)
        return f"Bearer {token}"

    async def _token(
        self,
        endpoint: Endpoint,
        host: str,
        challenge: Challenge,
        scope: str,
        auth: RegistryAuth | None,
    ) -> tuple[str, float]:
        params = {"scope": scope}
        if "service" in challenge.params:
            params["service"] = challenge.params["service"]
        headers = dict(endpoint.header)
        if auth is not None and auth.identitytoken:
            params["refresh_token"] = auth.identitytoken
        elif (credentials := basic(auth)) is not None:
            headers["Authorization"] = credentials
        try:
            async with self.session(endpoint).get(
                challenge.params["realm"], params=params, headers=headers
            ) as resp:
                self._count(host, "token", str(resp.status))
                self._raise_for(host, resp.status, resp.headers, None)
                doc = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:  # HostsError too
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


def _name(endpoint: Endpoint, registry: str) -> str:
    """How an endpoint is named in messages and keyed for its challenges and tokens: the
    registry itself, or the mirror's host."""
    return endpoint.host if endpoint.is_mirror(registry) else registry


def _sha256(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


def _leading_int(value: str | None) -> int | None:
    """`76;w=21600` -> 76."""
    found = re.match(r"\s*(\d+)", value or "")
    return int(found.group(1)) if found else None
