"""The Leases of one namespace (`coordination.k8s.io/v1`), as raw JSON: what the fleet's pull
budget (`fleet.py`) is made of.

Over the same kubernetes_asyncio `ApiClient` and `Configuration` as `NodeApi` (in-cluster
service account, or an explicit host and token), and with the same rule for failures: one
`KubeError` whose text is the HTTP status and the server's `Status` message, never a header.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp
from kubernetes_asyncio.client import ApiClient, Configuration
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.config import ConfigException

from jcp.kube.api import DEFAULT_TIMEOUT, JsonObject, KubeError, NodeApi, _from_answer, _plain

_COLLECTION = "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def pod_namespace(path: Path = NAMESPACE_FILE) -> str | None:
    """The pod's own namespace, as its service account token's volume holds it; None outside."""
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


class LeaseApi:
    """GET, LIST, POST, PUT and DELETE of `leases` in NAMESPACE; one session, opened on use."""

    def __init__(
        self, configuration: Configuration, namespace: str, *, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self._configuration = configuration
        self.namespace = namespace
        self._timeout = timeout
        self._client: ApiClient | None = None

    @classmethod
    def of(cls, api: NodeApi, namespace: str, *, timeout: float = DEFAULT_TIMEOUT) -> LeaseApi:
        """The same cluster and credentials as API (`NodeApi.in_cluster()` or `.connect()`)."""
        return cls(api.configuration, namespace, timeout=timeout)

    @property
    def host(self) -> str:
        return str(self._configuration.host)

    async def list_leases(self, label_selector: str) -> JsonObject:
        """A LeaseList (`items`, `metadata.resourceVersion`)."""
        return await self._call("GET", "", None, "list leases", [("labelSelector", label_selector)])

    async def get(self, name: str) -> JsonObject:
        return await self._call("GET", name, None, f"get lease {name}")

    async def create(self, lease: JsonObject) -> JsonObject:
        """201 with the stored lease; 409 (AlreadyExists) when the name is taken."""
        name = lease["metadata"]["name"]
        return await self._call("POST", "", lease, f"create lease {name}")

    async def replace(self, lease: JsonObject) -> JsonObject:
        """PUT: with `metadata.resourceVersion`, 409 (Conflict) if someone wrote it since."""
        name = lease["metadata"]["name"]
        return await self._call("PUT", name, lease, f"update lease {name}")

    async def delete(self, name: str, resource_version: str | None = None) -> None:
        body = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if resource_version is not None:
            body["preconditions"] = {"resourceVersion": resource_version}  # type: ignore[assignment]
        await self._call("DELETE", name, body, f"delete lease {name}")

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()

    async def _call(
        self,
        method: str,
        name: str,
        body: object,
        what: str,
        query: list[tuple[str, str]] | None = None,
    ) -> JsonObject:
        if self._client is None:
            self._client = ApiClient(self._configuration)
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        params = {"namespace": self.namespace, **({"name": name} if name else {})}
        try:
            answer = await self._client.call_api(
                _COLLECTION + ("/{name}" if name else ""),
                method,
                path_params=params,
                query_params=query,
                header_params=headers,
                body=body,
                response_types_map={200: "object", 201: "object"},
                auth_settings=["BearerToken"],
                _return_http_data_only=True,
                _request_timeout=self._timeout,
            )
        except ApiException as exc:
            status = int(exc.status) if exc.status else None
            if status is None:
                raise KubeError(None, f"{what}: {exc.reason or 'request not sent'}") from None
            raise _from_answer(status, exc.reason, exc.body, what) from None
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            detail = "no answer in time" if isinstance(exc, TimeoutError) else _plain(exc)
            raise KubeError(
                None, f"cannot reach the Kubernetes API at {self.host}: {detail}"
            ) from None
        except ConfigException as exc:  # the token file vanished since startup
            raise KubeError(None, f"cannot read the service account token: {exc}") from None
        if not isinstance(answer, dict):
            raise KubeError(200, f"{what}: the API answered {type(answer).__name__}")
        return answer
