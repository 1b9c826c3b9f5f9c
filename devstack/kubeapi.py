"""A stand-in for the slice of the Kubernetes API that jcp uses: Nodes, GET, PATCH, LIST, WATCH.

Why a stand-in: no Kubernetes API server can run on these machines (no kube-apiserver or etcd
binaries, no internet to fetch them), and jcp needs only `GET`, `PATCH /api/v1/nodes/{name}`
and the list and watch of `/api/v1/nodes`. This aiohttp server answers those as the API
documents them, so the real client (kubernetes_asyncio's ApiClient: bearer token, content
types, Status errors) runs end to end. Sources, and what is taken from each:

- "Update API Objects in Place Using kubectl patch"
  (https://kubernetes.io/docs/tasks/manage-kubernetes-objects/update-api-object-kubectl-patch/)
  and "Kubernetes API Concepts" (https://kubernetes.io/docs/reference/using-api/api-concepts/):
  the three PATCH content types. `application/json-patch+json` is RFC 6902 (add, remove,
  replace, test here; move and copy answer 400 as unimplemented); `application/merge-patch+json`
  is RFC 7386 (objects merge, `null` deletes, lists replace); `application/strategic-merge-patch
  +json` merges the same way for the fields modelled here, because a list is merged by key only
  when its schema declares a merge key, and Node `spec.taints` is `x-kubernetes-list-type:
  atomic` in the published OpenAPI schema (kubernetes-validate's nodespec-v1.json): replaced
  whole. `$patch` directives answer 400 as unimplemented. Other content types: 415.
- API conventions, "Concurrency Control and Consistency" and "Response Status Kind"
  (https://github.com/kubernetes/community/blob/master/contributors/devel/sig-architecture/api-conventions.md):
  `resourceVersion` is opaque and changes on every write; a patch whose result carries a
  `metadata.resourceVersion` other than the stored one answers 409 Conflict with the server's
  wording (`Operation cannot be fulfilled on nodes "n": the object has been modified; please
  apply your changes to the latest version and try again`); errors are `Status` objects (kind,
  apiVersion, metadata, status Failure, message, reason, details, code).
- kubernetes/kubernetes#68346 (merged): a JSON patch that cannot be applied, including a failed
  `test`, answers 422 (the issue it fixes, #68202, shows the old 500); an undecodable patch 400.
- Authorization errors as the authorizer words them (kubernetes/node-problem-detector#754,
  aws/karpenter-provider-aws#3467): `nodes "n" is forbidden: User "system:serviceaccount:ns:sa"
  cannot patch resource "nodes" in API group "" at the cluster scope` (for a list or watch:
  `nodes is forbidden: ... cannot list resource "nodes" ...`); a missing or wrong bearer token
  answers 401 `Unauthorized`.
- Validation answers 422 Invalid: label and annotation keys are qualified names, label values
  at most 63 characters ("Labels and Selectors"), annotations at most 256 KiB in total
  ("Annotations"), taints need a key and an effect of NoSchedule, PreferNoSchedule or
  NoExecute, unique per key and effect; `metadata.name` is immutable.
- A patch that changes nothing writes nothing: the resourceVersion stays.
- "Kubernetes API Concepts" (above), "Efficient detection of changes": a LIST (`GET
  /api/v1/nodes`, `labelSelector` and `fieldSelector` as `kubeselect.py` cites) answers a
  `NodeList` whose `metadata.resourceVersion` is the store's at the time of the list; its items
  carry no `kind` and `apiVersion` (kubernetes/kubernetes#3030, #63676). `limit` is not
  implemented: the whole list comes with no `continue`, which says the list is complete. WATCH
  (`watch=1`): bookmarks, 410 Gone and selectors as `kubewatch.py` cites.

Faults a test injects: `conflict_next(n)` (the next N patches answer 409), `forbid("patch")`
(403 for a verb: get, patch, list, watch), `before_next_patch(fn)` (another writer edits the
node between a client's GET and its PATCH), `stop()`/`start()` on the same port (the API server
down, then back; open watches end), `relabel(name, {...})` (another client's label change),
`bookmark()`, `drop_watches()` (every open watch ends, as when a load balancer cuts idle
streams) and `expire()` (history forgotten and open watches ended: resuming from an older
resourceVersion needs a relist).
"""

from __future__ import annotations

import copy
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from devstack.kubeleases import Leases
from devstack.kubepatch import Fail, apply_patch, conflict, parse_patch, status
from devstack.kubeselect import field_selector, label_selector
from devstack.kubewatch import GoneAs, History, Object, Watch, seconds


@dataclass(frozen=True)
class Seen:
    """One request the stand-in answered."""

    method: str
    node: str
    content_type: str
    status: int
    verb: str = ""
    """get, patch, list or watch: what RBAC checks."""


class KubeApiStandIn:
    """Nodes in memory behind `/api/v1/nodes` on 127.0.0.1."""

    def __init__(self, token: str, user: str = "system:serviceaccount:jcp:jcp") -> None:
        self.token = token
        self.user = user
        self.seen: list[Seen] = []
        self.port = 0
        self._nodes: dict[str, Object] = {}
        self._history = History()
        self._conflicts = 0
        self._forbidden: set[str] = set()
        self._before_patch: list[Callable[[], None]] = []
        self._runner: web.AppRunner | None = None
        self.leases = Leases(self)  # /apis/coordination.k8s.io/v1/namespaces/{ns}/leases

    # -- the cluster's state ----------------------------------------------------------------

    def add_node(
        self,
        name: str,
        labels: dict[str, str] | None = None,
        taints: list[dict[str, Any]] | None = None,
    ) -> None:
        node = {
            "kind": "Node",
            "apiVersion": "v1",
            "metadata": {
                "name": name,
                "uid": f"uid-{name}",
                "labels": {"kubernetes.io/hostname": name, **(labels or {})},
            },
            "spec": {"taints": copy.deepcopy(taints)} if taints else {},
            "status": {"nodeInfo": {"architecture": "amd64"}},
        }
        self._store(name, node)

    def node(self, name: str) -> Object:
        return copy.deepcopy(self._nodes[name])

    def edit(self, name: str, change: Callable[[Object], None]) -> None:
        """Another client's write: CHANGE mutates the node, the resourceVersion moves."""
        node = self.node(name)
        change(node)
        self._store(name, node)

    def relabel(self, name: str, labels: Mapping[str, str | None]) -> None:
        """Another client sets labels (None removes one), as `kubectl label` does."""

        def change(node: Object) -> None:
            current = node["metadata"].setdefault("labels", {})
            for key, value in labels.items():
                if value is None:
                    current.pop(key, None)
                else:
                    current[key] = value

        self.edit(name, change)

    def remove_node(self, name: str) -> None:
        self._store(name, None)

    @property
    def resource_version(self) -> str:
        """The store's resourceVersion now (what a LIST answers)."""
        return str(self._history.version)

    def conflict_next(self, n: int) -> None:
        self._conflicts = n

    def forbid(self, *verbs: str) -> None:
        """Answer 403 to these verbs (get, patch, list, watch); `forbid()` allows everything."""
        self._forbidden = set(verbs)

    def before_next_patch(self, action: Callable[[], None]) -> None:
        self._before_patch.append(action)

    def patches(self) -> list[Seen]:
        return [s for s in self.seen if s.method == "PATCH"]

    def requests(self, verb: str) -> list[Seen]:
        """The requests of one RBAC verb (get, patch, list, watch), answered or refused."""
        return [s for s in self.seen if s.verb == verb]

    def watching(self) -> int:
        """Watches open now."""
        return len(self._history.watches)

    def bookmark(self) -> None:
        """A BOOKMARK at the store's resourceVersion to every watch that allows them."""
        self._history.bookmark()

    def drop_watches(self) -> None:
        """Every open watch ends, as when the server restarts or a proxy cuts the stream."""
        self._history.drop()

    def expire(self, how: GoneAs = "event") -> None:
        """Forget the history up to now (a watch from an older resourceVersion is 410 Gone) and
        end the open watches: a client whose last version is older must list again, one that a
        bookmark brought up to date resumes. HOW: an ERROR event in a 200 stream, or an HTTP
        410 answer (kubernetes/kubernetes#25151)."""
        self._history.expire(how)

    def _store(self, name: str, node: Object | None) -> None:
        """Write NODE (None deletes it) under a new resourceVersion; tell the watches."""
        old = self._nodes.get(name)
        self._history.version += 1
        if node is None:
            self._nodes.pop(name, None)
        else:
            node["metadata"]["resourceVersion"] = str(self._history.version)
            self._nodes[name] = node
        self._history.record(old, node)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- the server ---------------------------------------------------------------------------

    async def start(self) -> str:
        """Listen on 127.0.0.1 (the same port again after `stop`); return the base URL."""
        app = web.Application()
        app.router.add_get("/api/v1/nodes", self._handle_collection, allow_head=False)
        app.router.add_get("/api/v1/nodes/{name}", self._handle, allow_head=False)
        app.router.add_patch("/api/v1/nodes/{name}", self._handle)
        self.leases.route(app)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self.url

    async def stop(self) -> None:
        """The API server goes down: open watches end, connections close."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            self._history.drop()
            await runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        content_type = request.headers.get("Content-Type", "")
        verb = request.method.lower()
        try:
            self._authorise(request, verb, name)
            if request.method == "GET":
                body = self._get(name)
            else:
                body = self._patch(name, content_type.split(";")[0].strip(), await request.read())
        except Fail as fail:
            self.seen.append(Seen(request.method, name, content_type, fail.code, verb))
            return web.json_response(status(fail, name), status=fail.code)
        self.seen.append(Seen(request.method, name, content_type, 200, verb))
        return web.json_response(body)

    async def _handle_collection(self, request: web.Request) -> web.StreamResponse:
        query = request.query
        verb = "watch" if query.get("watch") in ("1", "true") else "list"
        watch = None
        try:
            self._authorise(request, verb, None)
            by_field = field_selector(query.get("fieldSelector"))
            by_label = label_selector(query.get("labelSelector"))
            lasts = seconds(query.get("timeoutSeconds"))
            if verb == "watch":
                watch = Watch(
                    lambda o: by_field(o) and by_label(o),
                    query.get("allowWatchBookmarks") == "true",
                    lasts,
                )
                current = [n for _, n in sorted(self._nodes.items()) if watch.matches(n)]
                backlog = self._history.backlog(watch, query.get("resourceVersion", ""), current)
        except Fail as fail:
            self.seen.append(Seen("GET", "", "", fail.code, verb))
            return web.json_response(status(fail, None), status=fail.code)
        self.seen.append(Seen("GET", "", "", 200, verb))
        if watch is not None:
            return await self._history.serve(request, watch, backlog)
        items = [
            {k: v for k, v in copy.deepcopy(n).items() if k not in ("kind", "apiVersion")}
            for _, n in sorted(self._nodes.items())
            if by_field(n) and by_label(n)
        ]
        meta = {"resourceVersion": self.resource_version}
        return web.json_response(
            {"kind": "NodeList", "apiVersion": "v1", "metadata": meta, "items": items}
        )

    def _authorise(self, request: web.Request, verb: str, name: str | None) -> None:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
            raise Fail(401, "Unauthorized", "Unauthorized")
        if verb in self._forbidden:
            what = "nodes" if name is None else f'nodes "{name}"'
            raise Fail(
                403,
                "Forbidden",
                f'{what} is forbidden: User "{self.user}" cannot {verb} resource '
                '"nodes" in API group "" at the cluster scope',
            )

    def _get(self, name: str) -> Object:
        if name not in self._nodes:
            raise Fail(404, "NotFound", f'nodes "{name}" not found')
        return self.node(name)

    def _patch(self, name: str, content_type: str, raw: bytes) -> Object:
        patch = parse_patch(content_type, raw)
        current = self._get(name)
        if self._conflicts > 0:
            self._conflicts -= 1
            raise conflict(name)
        while self._before_patch:
            self._before_patch.pop(0)()
            current = self._get(name)
        patched = apply_patch(current, content_type, patch)
        if patched != current:
            self._store(name, patched)
        return self.node(name)
