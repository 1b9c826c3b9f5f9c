"""The stand-in's Leases: `/apis/coordination.k8s.io/v1/namespaces/{ns}/leases`, as the API
documents them (hooked into `kubeapi.py`, whose docstring says why there is a stand-in at all):

- "Lease v1" (https://kubernetes.io/docs/reference/kubernetes-api/cluster-resources/lease-v1/):
  the object (`spec.holderIdentity`, `leaseDurationSeconds`, `acquireTime`, `renewTime`,
  `leaseTransitions`; the times are MicroTime) and its operations: `get`, `list` (a LeaseList,
  `labelSelector` as `kubeselect.py` reads it), `create` (POST: 201 Created with the stored
  object), `update` (PUT: 200), `delete` (200 and a `Status` of `Success`, as the generic
  registry answers a kind that does not return the deleted object). Watch is not implemented
  (jcp lists): `watch=1` answers 400 here.
- API conventions, "Concurrency Control and Consistency" and "Response Status Kind"
  (https://github.com/kubernetes/community/blob/master/contributors/devel/sig-architecture/api-conventions.md):
  every write moves the opaque `resourceVersion`; an update whose `metadata.resourceVersion` is
  not the stored one is 409 Conflict worded `Operation cannot be fulfilled on
  leases.coordination.k8s.io "x": the object has been modified; please apply your changes to the
  latest version and try again` (the wording clients quote, e.g.
  fabric8io/kubernetes-client#5635, with `details.group` coordination.k8s.io and `details.kind`
  leases); an update without one is unconditional (Leases allow it); an update that changes
  nothing writes nothing (the version stays). A second create of a name is 409 AlreadyExists
  (`leases.coordination.k8s.io "x" already exists`); a missing one 404 NotFound (`... "x" not
  found`); an update does not create (404).
  A delete's `preconditions.resourceVersion` that does not match is 409 Conflict.
- The server sets `metadata.uid`, `namespace` and `creationTimestamp` (RFC 3339 in whole
  seconds, the server's clock: what orders jcp's waiters) on create and keeps them on update.
- Authorization as the authorizer words it for a namespaced resource: `leases.coordination.k8s.io
  "x" is forbidden: User "u" cannot update resource "leases" in API group
  "coordination.k8s.io" in the namespace "ns"`.

Faults: `forbid("update")` (403 for verbs: get, list, create, update, delete), the stand-in's
`stop()`/`start()` (the API server down), `edit(ns, name, fn)` (another client's write),
`before_next_update(fn)` (a write that lands between a client's read and its update).
"""

from __future__ import annotations

import copy
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from devstack.kubepatch import Fail
from devstack.kubeselect import label_selector

if TYPE_CHECKING:
    from devstack.kubeapi import KubeApiStandIn

Object = dict[str, Any]
GROUP = "coordination.k8s.io"
PREFIX = f"/apis/{GROUP}/v1/namespaces/{{ns}}/leases"


@dataclass(frozen=True)
class LeaseCall:
    """One request the stand-in's Leases answered."""

    verb: str
    """get, list, create, update or delete: what RBAC checks."""
    name: str
    status: int
    at: float
    """time.monotonic() when it was answered."""


class Leases:
    """Leases in memory, per namespace, behind the stand-in's server."""

    def __init__(self, api: KubeApiStandIn) -> None:
        self._api = api
        self._store: dict[tuple[str, str], Object] = {}
        self._version = 5000
        self._forbidden: set[str] = set()
        self._before_update: list[Callable[[], None]] = []
        self.calls: list[LeaseCall] = []

    def route(self, app: web.Application) -> None:
        app.router.add_get(PREFIX, self._collection, allow_head=False)
        app.router.add_post(PREFIX, self._collection)
        for method in ("GET", "PUT", "DELETE"):
            app.router.add_route(method, PREFIX + "/{name}", self._one)

    # -- what a test sees and does ------------------------------------------------------------

    def get(self, namespace: str, name: str) -> Object | None:
        return copy.deepcopy(self._store.get((namespace, name)))

    def names(self, namespace: str) -> list[str]:
        return sorted(n for ns, n in self._store if ns == namespace)

    def holder(self, namespace: str, name: str) -> str | None:
        """The lease's holderIdentity; None when it is empty or there is no such lease."""
        lease = self._store.get((namespace, name))
        return (lease or {}).get("spec", {}).get("holderIdentity") or None

    def edit(self, namespace: str, name: str, change: Callable[[Object], None]) -> None:
        """Another client's write: CHANGE mutates the lease, the resourceVersion moves."""
        lease = copy.deepcopy(self._store[namespace, name])
        change(lease)
        self._write(namespace, name, lease)

    def forbid(self, *verbs: str) -> None:
        """Answer 403 to these verbs; `forbid()` allows everything again."""
        self._forbidden = set(verbs)

    def before_next_update(self, action: Callable[[], None]) -> None:
        """Run ACTION (another client's write) just before the next update is applied."""
        self._before_update.append(action)

    def requests(self, verb: str | None = None) -> list[LeaseCall]:
        return [c for c in self.calls if verb is None or c.verb == verb]

    # -- the server ---------------------------------------------------------------------------

    async def _collection(self, request: web.Request) -> web.Response:
        ns = request.match_info["ns"]
        verb = "create" if request.method == "POST" else "list"
        if request.query.get("watch") in ("1", "true"):
            return self._answer(verb, "", Fail(400, "BadRequest", "the stand-in does not watch "
                                               "leases"), ns)  # fmt: skip
        try:
            self._authorise(request, verb, ns, None)
            if verb == "list":
                match = label_selector(request.query.get("labelSelector"))
                items = [copy.deepcopy(o) for (n, _), o in sorted(self._store.items())
                         if n == ns and match(o)]  # fmt: skip
                for item in items:
                    item.pop("kind", None), item.pop("apiVersion", None)
                meta = {"resourceVersion": str(self._version)}
                body = {"kind": "LeaseList", "apiVersion": f"{GROUP}/v1", "metadata": meta,
                        "items": items}  # fmt: skip
                return self._answer(verb, "", body, ns)
            return self._answer(verb, "", self._create(ns, await _json(request)), ns, 201)
        except Fail as fail:
            return self._answer(verb, "", fail, ns)

    async def _one(self, request: web.Request) -> web.Response:
        ns, name = request.match_info["ns"], request.match_info["name"]
        verb = {"GET": "get", "PUT": "update", "DELETE": "delete"}[request.method]
        try:
            self._authorise(request, verb, ns, name)
            if verb == "get":
                body = self._existing(ns, name)
            elif verb == "update":
                body = self._update(ns, name, await _json(request))
            else:
                body = self._delete(ns, name, await _json(request) if request.can_read_body else {})
        except Fail as fail:
            return self._answer(verb, name, fail, ns)
        return self._answer(verb, name, body, ns)

    def _answer(
        self, verb: str, name: str, body: Object | Fail, ns: str, code: int = 200
    ) -> web.Response:
        if isinstance(body, Fail):
            code, body = body.code, status(body, name or None)
        self.calls.append(LeaseCall(verb, name, code, time.monotonic()))
        return web.json_response(body, status=code)

    def _authorise(self, request: web.Request, verb: str, ns: str, name: str | None) -> None:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {self._api.token}".encode()):
            raise Fail(401, "Unauthorized", "Unauthorized")
        if verb in self._forbidden:
            what = f"leases.{GROUP}" + ("" if name is None else f' "{name}"')
            raise Fail(
                403,
                "Forbidden",
                f'{what} is forbidden: User "{self._api.user}" cannot {verb} resource "leases" '
                f'in API group "{GROUP}" in the namespace "{ns}"',
            )

    def _existing(self, ns: str, name: str) -> Object:
        if (ns, name) not in self._store:
            raise Fail(404, "NotFound", f'leases.{GROUP} "{name}" not found')
        return copy.deepcopy(self._store[ns, name])

    def _create(self, ns: str, body: Object) -> Object:
        name = _name(body)
        if (ns, name) in self._store:
            raise Fail(409, "AlreadyExists", f'leases.{GROUP} "{name}" already exists')
        meta = body.setdefault("metadata", {})
        meta.pop("resourceVersion", None)
        meta.update(
            namespace=ns,
            uid=f"uid-lease-{ns}-{name}-{self._version}",
            creationTimestamp=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        )
        body.update(kind="Lease", apiVersion=f"{GROUP}/v1")
        return self._write(ns, name, body)

    def _update(self, ns: str, name: str, body: Object) -> Object:
        while self._before_update:
            self._before_update.pop(0)()
        current = self._existing(ns, name)
        if _name(body) != name:
            raise Fail(400, "BadRequest", "the name of the object does not match the name on "
                       "the URL")  # fmt: skip
        meta = body.setdefault("metadata", {})
        if meta.get("resourceVersion") not in (None, "", current["metadata"]["resourceVersion"]):
            raise conflict(name)
        for kept in ("uid", "creationTimestamp", "namespace", "resourceVersion"):
            meta[kept] = current["metadata"][kept]
        body.update(kind="Lease", apiVersion=f"{GROUP}/v1")
        if body == current:
            return current
        return self._write(ns, name, body)

    def _delete(self, ns: str, name: str, options: Object) -> Object:
        current = self._existing(ns, name)
        wanted = (options.get("preconditions") or {}).get("resourceVersion")
        stored = current["metadata"]["resourceVersion"]
        if wanted not in (None, stored):
            raise Fail(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on leases.{GROUP} "{name}": the ResourceVersion '
                f"in the precondition ({wanted}) does not match the ResourceVersion in record "
                f"({stored}). The object might have been modified",
            )
        self._version += 1
        del self._store[ns, name]
        details = {"name": name, "group": GROUP, "kind": "leases",
                   "uid": current["metadata"]["uid"]}  # fmt: skip
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "details": details}  # fmt: skip

    def _write(self, ns: str, name: str, lease: Object) -> Object:
        self._version += 1
        lease["metadata"]["resourceVersion"] = str(self._version)
        self._store[ns, name] = lease
        return copy.deepcopy(lease)


def conflict(name: str) -> Fail:
    return Fail(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on leases.{GROUP} "{name}": the object has been '
        "modified; please apply your changes to the latest version and try again",
    )


def status(fail: Fail, name: str | None) -> Object:
    """The `Status` object the API answers a failure with."""
    details = {"group": GROUP, "kind": "leases", **({"name": name} if name else {})}
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": fail.message,
        "reason": fail.reason,
        "details": details,
        "code": fail.code,
    }


def _name(body: Object) -> str:
    name = (body.get("metadata") or {}).get("name")
    if not isinstance(name, str) or not name:
        raise Fail(422, "Invalid", "Lease.coordination.k8s.io is invalid: metadata.name: "
                   "Required value: name or generateName is required")  # fmt: skip
    return name


async def _json(request: web.Request) -> Object:
    try:
        body = json.loads(await request.read() or b"{}")
    except ValueError as exc:
        raise Fail(400, "BadRequest", f"error decoding the body: {exc}") from None
    if not isinstance(body, dict):
        raise Fail(400, "BadRequest", "the body must be a JSON object")
    return body
