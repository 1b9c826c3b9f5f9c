"""A stand-in for the slice of the Kubernetes API that jcp's node signal uses: one Node, GET/PATCH.

Why a stand-in: no Kubernetes API server can run on these machines (no kube-apiserver or etcd
binaries, no internet to fetch them), and jcp needs only `GET` and `PATCH /api/v1/nodes/{name}`.
This aiohttp server answers those as the API documents them, so the real client
(kubernetes_asyncio's ApiClient: bearer token, content types, Status errors) runs end to end.
Sources, and what is taken from each:

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
  cannot patch resource "nodes" in API group "" at the cluster scope`; a missing or wrong bearer
  token answers 401 `Unauthorized`.
- Validation answers 422 Invalid: label and annotation keys are qualified names, label values
  at most 63 characters ("Labels and Selectors"), annotations at most 256 KiB in total
  ("Annotations"), taints need a key and an effect of NoSchedule, PreferNoSchedule or
  NoExecute, unique per key and effect; `metadata.name` is immutable.
- A patch that changes nothing writes nothing: the resourceVersion stays.

Faults a test injects: `conflict_next(n)` (the next N patches answer 409), `forbid("patch")`
(403 for a verb), `before_next_patch(fn)` (another writer edits the node between a client's GET
and its PATCH), and `stop()`/`start()` on the same port (the API server down, then back).
"""

from __future__ import annotations

import copy
import hmac
import itertools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

_QNAME = re.compile(
    r"(([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
)
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_EFFECTS = frozenset({"NoSchedule", "PreferNoSchedule", "NoExecute"})
_PATCH_TYPES = frozenset(
    {
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
    }
)


@dataclass(frozen=True)
class Seen:
    """One request the stand-in answered."""

    method: str
    node: str
    content_type: str
    status: int


class _Fail(Exception):  # noqa: N818 - an HTTP answer, not a bug
    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message


class KubeApiStandIn:
    """Nodes in memory behind `GET`/`PATCH /api/v1/nodes/{name}` on 127.0.0.1."""

    def __init__(self, token: str, user: str = "system:serviceaccount:jcp:jcp") -> None:
        self.token = token
        self.user = user
        self.seen: list[Seen] = []
        self.port = 0
        self._nodes: dict[str, dict[str, Any]] = {}
        self._versions = itertools.count(1000)
        self._conflicts = 0
        self._forbidden: set[str] = set()
        self._before_patch: list[Callable[[], None]] = []
        self._runner: web.AppRunner | None = None

    # -- the cluster's state ----------------------------------------------------------------

    def add_node(
        self,
        name: str,
        labels: dict[str, str] | None = None,
        taints: list[dict[str, Any]] | None = None,
    ) -> None:
        self._nodes[name] = {
            "kind": "Node",
            "apiVersion": "v1",
            "metadata": {
                "name": name,
                "uid": f"uid-{name}",
                "resourceVersion": str(next(self._versions)),
                "labels": {"kubernetes.io/hostname": name, **(labels or {})},
            },
            "spec": {"taints": copy.deepcopy(taints)} if taints else {},
            "status": {"nodeInfo": {"architecture": "amd64"}},
        }

    def node(self, name: str) -> dict[str, Any]:
        return copy.deepcopy(self._nodes[name])

    def edit(self, name: str, change: Callable[[dict[str, Any]], None]) -> None:
        """Another client's write: CHANGE mutates the node, the resourceVersion moves."""
        change(self._nodes[name])
        self._nodes[name]["metadata"]["resourceVersion"] = str(next(self._versions))

    def conflict_next(self, n: int) -> None:
        self._conflicts = n

    def forbid(self, *verbs: str) -> None:
        """Answer 403 to these verbs (`get`, `patch`); `forbid()` allows everything again."""
        self._forbidden = set(verbs)

    def before_next_patch(self, action: Callable[[], None]) -> None:
        self._before_patch.append(action)

    def patches(self) -> list[Seen]:
        return [s for s in self.seen if s.method == "PATCH"]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- the server ---------------------------------------------------------------------------

    async def start(self) -> str:
        """Listen on 127.0.0.1 (the same port again after `stop`); return the base URL."""
        app = web.Application()
        app.router.add_get("/api/v1/nodes/{name}", self._handle, allow_head=False)
        app.router.add_patch("/api/v1/nodes/{name}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        content_type = request.headers.get("Content-Type", "")
        try:
            self._authorise(request, name)
            if request.method == "GET":
                body = self._get(name)
            else:
                body = self._patch(name, content_type.split(";")[0].strip(), await request.read())
        except _Fail as fail:
            self.seen.append(Seen(request.method, name, content_type, fail.code))
            status = {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": fail.message,
                "reason": fail.reason,
                "details": {"name": name, "kind": "nodes"},
                "code": fail.code,
            }
            return web.json_response(status, status=fail.code)
        self.seen.append(Seen(request.method, name, content_type, 200))
        return web.json_response(body)

    def _authorise(self, request: web.Request, name: str) -> None:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
            raise _Fail(401, "Unauthorized", "Unauthorized")
        verb = request.method.lower()
        if verb in self._forbidden:
            raise _Fail(
                403,
                "Forbidden",
                f'nodes "{name}" is forbidden: User "{self.user}" cannot {verb} resource '
                '"nodes" in API group "" at the cluster scope',
            )

    def _get(self, name: str) -> dict[str, Any]:
        if name not in self._nodes:
            raise _Fail(404, "NotFound", f'nodes "{name}" not found')
        return self.node(name)

    def _patch(self, name: str, content_type: str, raw: bytes) -> dict[str, Any]:
        if content_type not in _PATCH_TYPES:
            accepted = ", ".join(sorted(_PATCH_TYPES))
            raise _Fail(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format - accepted media types "
                f"include: {accepted}",
            )
        current = self._get(name)
        try:
            patch = json.loads(raw)
        except ValueError as exc:
            raise _Fail(400, "BadRequest", f"error decoding patch: {exc}") from None
        if self._conflicts > 0:
            self._conflicts -= 1
            raise _conflict(name)
        while self._before_patch:
            self._before_patch.pop(0)()
            current = self._get(name)
        if content_type == "application/json-patch+json":
            patched = _json_patch(current, patch)
        else:
            if not isinstance(patch, dict):
                raise _Fail(400, "BadRequest", "a merge patch must be a JSON object")
            patched = _merge(current, patch, strategic=content_type.startswith("application/s"))
        if not isinstance(patched, dict):
            raise _Fail(422, "Invalid", "the patch replaced the whole object")
        meta = patched.get("metadata")
        if not isinstance(meta, dict):
            raise _Fail(422, "Invalid", "metadata: Required value")
        stored = current["metadata"]["resourceVersion"]
        if meta.get("resourceVersion") not in (None, "", stored):  # "" or absent: unconditional
            raise _conflict(name)
        meta["resourceVersion"] = stored
        _validate(name, patched)
        if patched != current:
            meta["resourceVersion"] = str(next(self._versions))
            self._nodes[name] = patched
        return copy.deepcopy(patched)


def _conflict(name: str) -> _Fail:
    return _Fail(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on nodes "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
    )


def _merge(target: object, patch: object, *, strategic: bool) -> object:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if strategic and str(key).startswith("$"):
            raise _Fail(400, "BadRequest", f"the stand-in does not implement {key} directives")
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge(result.get(key), value, strategic=strategic)
    return result


def _json_patch(doc: dict[str, Any], ops: object) -> object:
    if not isinstance(ops, list):
        raise _Fail(400, "BadRequest", "a JSON patch must be a list of operations")
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or not isinstance(op.get("path"), str):
            raise _Fail(400, "BadRequest", f"malformed operation {op!r}")
        kind, path, value = op.get("op"), op["path"], op.get("value")
        parts = [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]
        if not path.startswith("/") or not parts:
            raise _Fail(422, "Invalid", f"jsonpatch {kind} operation: cannot apply to {path!r}")
        parent: object = doc
        for part in parts[:-1]:
            parent = _child(parent, part, path)
        last = parts[-1]
        if kind == "test":
            if _child(parent, last, path) != value:
                raise _Fail(422, "Invalid", f"testing value {path} failed")
        elif kind in ("remove", "replace"):
            _child(parent, last, path)
            key: int | str = int(last) if isinstance(parent, list) else last
            assert isinstance(parent, (list, dict))  # _child found KEY in it
            if kind == "remove":
                del parent[key]  # type: ignore[arg-type]
            else:
                parent[key] = value  # type: ignore[index]
        elif kind == "add":
            _add(parent, last, value, path)
        else:
            raise _Fail(400, "BadRequest", f"the stand-in does not implement op {kind!r}")
    return doc


def _add(parent: object, last: str, value: object, path: str) -> None:
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list) and (last == "-" or last.isdigit()):
        at = len(parent) if last == "-" else int(last)
        if at > len(parent):
            raise _Fail(422, "Invalid", f"jsonpatch add operation: index out of range: {path}")
        parent.insert(at, value)
    else:
        raise _Fail(422, "Invalid", f"jsonpatch add operation: doc is missing path: {path}")


def _child(parent: object, part: str, path: str) -> object:
    if isinstance(parent, dict) and part in parent:
        return parent[part]
    if isinstance(parent, list) and part.isdigit() and int(part) < len(parent):
        return parent[int(part)]
    raise _Fail(422, "Invalid", f"jsonpatch: doc is missing path: {path}")


def _validate(name: str, node: dict[str, Any]) -> None:
    meta = node["metadata"]
    problems: list[str] = []
    if meta.get("name") != name:
        problems.append("metadata.name: Invalid value: field is immutable")
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    for field, values in (("labels", labels), ("annotations", annotations)):
        if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
            problems.append(f"metadata.{field}: Invalid value: must map strings to strings")
            continue
        problems += [
            f"metadata.{field}: Invalid value: {k!r}: not a qualified name"
            for k in values
            if len(k) > 317 or not _QNAME.fullmatch(k)
        ]
    if isinstance(labels, dict):
        problems += [
            f"metadata.labels: Invalid value: {v!r}: must be at most 63 characters of "
            "alphanumerics, '-', '_' or '.', beginning and ending with an alphanumeric"
            for v in labels.values()
            if isinstance(v, str) and (len(v) > 63 or not _LABEL_VALUE.fullmatch(v))
        ]
    if isinstance(annotations, dict) and len(json.dumps(annotations)) > 256 * 1024:
        problems.append("metadata.annotations: Too long: must have at most 262144 bytes")
    taints = (node.get("spec") or {}).get("taints") or []
    pairs: set[tuple[str, str]] = set()
    for i, taint in enumerate(taints if isinstance(taints, list) else [None]):
        key = taint.get("key") if isinstance(taint, dict) else None
        effect = taint.get("effect") if isinstance(taint, dict) else None
        if not isinstance(key, str) or not _QNAME.fullmatch(key) or effect not in _EFFECTS:
            problems.append(f"spec.taints[{i}]: Invalid value: needs a key and a valid effect")
        elif (key, effect) in pairs:
            problems.append(f"spec.taints[{i}]: Duplicate value: {key}:{effect}")
        else:
            pairs.add((key, effect))
    if problems:
        raise _Fail(422, "Invalid", f'Node "{name}" is invalid: ' + "; ".join(problems))
