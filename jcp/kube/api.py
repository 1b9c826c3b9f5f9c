"""The slice of the Kubernetes API jcp uses: GET, PATCH, LIST and WATCH of Nodes, as raw JSON.

Over kubernetes_asyncio's `ApiClient`, whose in-cluster config reads the service account token
and CA and re-reads a rotated token, but not its generated models: the taint removal `test`s a
taint exactly as the server sent it, and a round trip through `V1Taint` would reformat it
(`timeAdded`). Every failure becomes one `KubeError` whose text is safe to log: the HTTP status
and the server's `Status` message, never a request header (the token lives there), never the
client's own exception text (it prints response headers and bodies wholesale).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from kubernetes_asyncio.client import ApiClient, Configuration
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.config import ConfigException, load_incluster_config

from jcp.model.errors import JcpError

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
DEFAULT_TIMEOUT = 10.0

JsonObject = dict[str, Any]


class KubeError(JcpError):
    """A call to the API failed. `status` is the HTTP status, None when no answer came."""

    def __init__(self, status: int | None, message: str) -> None:
        self.status = status
        super().__init__(message)

    @property
    def conflict(self) -> bool:
        """Someone else changed the node first (409), or a JSON patch `test` failed (422)."""
        return self.status in (409, 422)


class NodeApi:
    """GET and PATCH `/api/v1/nodes/{name}`; one aiohttp session, opened on first use."""

    def __init__(self, configuration: Configuration, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._configuration = configuration
        self._timeout = timeout
        self._client: ApiClient | None = None

    @classmethod
    def in_cluster(cls, *, timeout: float = DEFAULT_TIMEOUT) -> NodeApi:
        """The pod's service account; raises KubeError (status None) outside a pod."""
        configuration = Configuration()
        try:
            load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except (ConfigException, OSError) as exc:
            # ConfigException's texts name files and variables, never the token's content.
            raise KubeError(
                None,
                f"no in-cluster Kubernetes config ({exc}): KUBERNETES_SERVICE_HOST/PORT and the "
                "service account token at /var/run/secrets/kubernetes.io/serviceaccount/ are "
                "set only in a pod whose service account token is mounted",
            ) from None
        return cls(configuration, timeout=timeout)

    @classmethod
    def connect(
        cls,
        host: str,
        token: str | None = None,
        *,
        ca_file: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> NodeApi:
        """An explicit API server (tests, out-of-cluster runs), with an optional bearer token."""
        configuration = Configuration(host=host, ssl_ca_cert=ca_file)
        if token:
            configuration.api_key["BearerToken"] = f"Bearer {token}"
        return cls(configuration, timeout=timeout)

    @property
    def host(self) -> str:
        return str(self._configuration.host)

    @property
    def configuration(self) -> Configuration:
        """Host, token and CA: other slices of the API (`lease_api.py`) use the same."""
        return self._configuration

    async def get(self, name: str) -> JsonObject:
        return await self._call("GET", name, None, None)

    async def patch(self, name: str, body: object, content_type: str) -> JsonObject:
        return await self._call("PATCH", name, body, content_type)

    async def list_nodes(
        self, *, field_selector: str | None = None, label_selector: str | None = None
    ) -> JsonObject:
        """`GET /api/v1/nodes`: a NodeList (`items`, `metadata.resourceVersion`)."""
        query = [("fieldSelector", field_selector), ("labelSelector", label_selector)]
        return await self._call("GET", "", None, None, query=[(k, v) for k, v in query if v])

    async def watch_nodes(
        self, *, field_selector: str, resource_version: str, timeout_seconds: int
    ) -> AsyncIterator[JsonObject]:
        """The watch events of `GET /api/v1/nodes?watch=true` after RESOURCE_VERSION, bookmarks
        allowed, until the server ends the stream (TIMEOUT_SECONDS). An ERROR event (a 410 Gone
        for an expired resourceVersion, most often) raises KubeError with its code, as an
        answer other than 200 does; a stream silent for 30 s past its timeout is a lost one."""
        if self._client is None:
            self._client = ApiClient(self._configuration)
        query = [
            ("fieldSelector", field_selector),
            ("watch", "true"),
            ("resourceVersion", resource_version),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(timeout_seconds)),
        ]
        try:
            response = await self._client.call_api(
                "/api/v1/nodes",
                "GET",
                query_params=query,
                header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=aiohttp.ClientTimeout(
                    sock_connect=self._timeout, sock_read=timeout_seconds + 30
                ),
            )
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise self._unreachable(exc) from None
        except ConfigException as exc:
            raise KubeError(None, f"cannot read the service account token: {exc}") from None
        try:
            if response.status != 200:
                raise _from_answer(
                    response.status, response.reason, await response.read(), "watch nodes"
                )
            async for line in response.content:
                if line.strip():
                    yield _watch_event(line)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise self._unreachable(exc) from None
        except ValueError:  # aiohttp's "Chunk too big": a line beyond the client's 2 MiB buffer
            raise KubeError(200, "watch nodes: the API sent an event over 2 MiB") from None
        finally:
            response.release()

    def _unreachable(self, exc: BaseException) -> KubeError:
        detail = "no answer in time" if isinstance(exc, TimeoutError) else _plain(exc)
        return KubeError(None, f"cannot reach the Kubernetes API at {self.host}: {detail}")

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()

    async def _call(
        self,
        method: str,
        name: str,
        body: object,
        content_type: str | None,
        *,
        query: list[tuple[str, str]] | None = None,
    ) -> JsonObject:
        if self._client is None:
            self._client = ApiClient(self._configuration)
        headers = {"Accept": "application/json"}
        if content_type is not None:
            headers["Content-Type"] = content_type
        try:
            answer = await self._client.call_api(
                "/api/v1/nodes/{name}" if name else "/api/v1/nodes",
                method,
                path_params={"name": name} if name else None,
                query_params=query,
                header_params=headers,
                body=body,
                response_types_map={200: "object"},
                auth_settings=["BearerToken"],
                _return_http_data_only=True,
                _request_timeout=self._timeout,
            )
        except ApiException as exc:
            raise _from_status(exc, method, name) from None
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise self._unreachable(exc) from None
        except ConfigException as exc:  # the token file vanished since startup
            raise KubeError(None, f"cannot read the service account token: {exc}") from None
        if not isinstance(answer, dict):
            raise KubeError(200, f"{method} node {name}: the API answered {type(answer).__name__}")
        return answer


def _plain(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _from_status(exc: ApiException, method: str, name: str) -> KubeError:
    """The server's `Status` message, or the HTTP reason when the body is not a Status."""
    status = int(exc.status) if exc.status else None
    reason = str(exc.reason or "").strip()
    if status is None:  # the client could not build the request: a bug, said plainly
        return KubeError(None, f"{method} node {name}: {reason or 'request not sent'}")
    what = f"{method} node {name}" if name else "list nodes"
    return _from_answer(status, reason, exc.body, what)


def _from_answer(status: int, reason: object, raw: object, what: str) -> KubeError:
    message = ""
    body = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    if isinstance(body, str) and body:
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        if isinstance(doc, dict) and isinstance(doc.get("message"), str):
            message = doc["message"]
    text = f"{what}: {status} {str(reason or '').strip()}".rstrip()
    return KubeError(status, f"{text}: {message[:500]}" if message else text)


def _watch_event(line: bytes) -> JsonObject:
    """One line of a watch stream; an ERROR event (its object a Status) raises KubeError."""
    try:
        event = json.loads(line)
    except ValueError:
        raise KubeError(200, "watch nodes: the API sent a line that is not JSON") from None
    if not isinstance(event, dict) or not isinstance(event.get("object"), dict):
        raise KubeError(200, "watch nodes: the API sent an event without an object")
    if event.get("type") == "ERROR":
        status = event["object"]
        code = status.get("code") if isinstance(status.get("code"), int) else None
        raise _from_answer(code or 500, status.get("reason"), json.dumps(status), "watch nodes")
    return event
