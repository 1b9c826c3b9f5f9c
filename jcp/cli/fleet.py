"""`jcp fleet`: every node's warm state, read from the API, in one table.

Each jcp with `--node-label` writes what its node holds to the node's `<label>-state`
annotation (jcp/kube/node_signal.py): the config generation, warm or not, the counts and the
images that failed permanently. Reading those back with one LIST of the nodes answers "which
nodes are still cold, and which miss image X" without port-forwarding to 500 pods. The
annotation names only permanent failures (and, from jcps that write it, the missing images),
so for a node that is not warm and does not name its missing images the answer is "unknown",
said as such, never guessed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jcp.cli.fleet_slots import FLEET_LABEL, slots, slots_line
from jcp.kube.keys import label_problem, state_annotation
from jcp.model.refs import parse_reference

if TYPE_CHECKING:  # kubernetes_asyncio takes most of a second to import: only `jcp fleet` pays
    from jcp.kube.api import JsonObject, NodeApi

DEFAULT_LABEL = "jcp.nimbix.net/warm"
DEFAULT_KUBECONFIG = Path.home() / ".kube" / "config"


@dataclass(frozen=True)
class NodeState:
    """One node as its annotation describes it; `annotated` False: jcp wrote nothing there."""

    name: str
    annotated: bool
    warm: bool | None = None
    generation: int | None = None
    selected: int | None = None
    present: int | None = None
    failed: tuple[str, ...] = ()
    failed_count: int = 0
    missing: tuple[str, ...] | None = None
    """The missing images, when the annotation names them (None: it does not)."""
    missing_count: int | None = None
    problem: str | None = None
    """Why the annotation could not be read (not JSON, wrong shape)."""

    def lacks(self, image: str) -> bool | None:
        """Whether the node misses IMAGE: True, False, or None when the annotation cannot say."""
        if not self.annotated or self.problem:
            return None
        if image in self.failed:
            return True
        if self.missing is not None and image in self.missing:
            return True
        failed_all = self.failed_count <= len(self.failed)
        if self.warm:
            return False if failed_all else None
        missing_all = self.missing is not None and (self.missing_count or 0) <= len(self.missing)
        return False if failed_all and missing_all else None

    def to_json(self) -> dict[str, Any]:
        """The annotation's own key names (camelCase), for scripts."""
        doc = asdict(self)
        for snake, camel in (("failed_count", "failedCount"), ("missing_count", "missingCount")):
            doc[camel] = doc.pop(snake)
        return doc


def read_node(node: JsonObject, annotation: str) -> NodeState:
    meta = node.get("metadata") or {}
    name = str(meta.get("name", "?"))
    raw = (meta.get("annotations") or {}).get(annotation)
    if raw is None:
        return NodeState(name, annotated=False)
    try:
        doc = json.loads(raw)
        failed = tuple(str(_norm(i)) for i in doc.get("failed", []))
        missing = doc.get("missing")
        return NodeState(
            name,
            annotated=True,
            warm=bool(doc["warm"]),
            generation=int(doc["generation"]),
            selected=int(doc["selected"]),
            present=int(doc["present"]),
            failed=failed,
            failed_count=int(doc.get("failedCount", len(failed))),
            missing=None if missing is None else tuple(_norm(i) for i in missing),
            missing_count=None if missing is None else int(doc.get("missingCount", len(missing))),
        )
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        return NodeState(name, annotated=True, problem=f"unreadable {annotation}: {exc}")


def _norm(image: str) -> str:
    """One spelling per image (`ubuntu` is docker.io/library/ubuntu:latest), as jcp logs it."""
    try:
        return str(parse_reference(str(image)))
    except ValueError:
        return str(image)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "fleet",
        help="every node's warm state from the API (the warm-state annotations jcp writes)",
        description="Read the warm-state annotation jcp writes on each node (jcp run "
        "--node-label) and show, node by node, whether it is warm, how many of its images are "
        "present, and which failed. Exit code: 0; with --image, 1 if some node misses the "
        "image or cannot say; 2 on a usage or API error.",
    )
    p.add_argument("--image", metavar="NAME", help="which nodes miss this image")
    p.add_argument("--node", metavar="NAME", help="only this node, with its failing images")
    p.add_argument("-l", "--selector", metavar="LABELS", help="only nodes with these labels")
    p.add_argument("-o", "--output", choices=["table", "json"], default="table")
    p.add_argument(
        "--label",
        default=DEFAULT_LABEL,
        help="the warm label jcp was given (--node-label); its annotation is <label>-state "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--kubeconfig", type=Path, default=None, help="default: $KUBECONFIG, ~/.kube/config"
    )
    p.add_argument("--context", default=None, help="the kubeconfig context (default: current)")
    p.add_argument("--kube-api", metavar="URL", default=None, help="an API server URL instead")
    p.add_argument("--kube-token-file", type=Path, default=None, help="bearer token for it")
    p.add_argument(
        "--fleet-namespace",
        default="jarvice-system",
        metavar="NS",
        help="where the fleet pull budget's Leases live (--fleet-parallelism; default: "
        "%(default)s, the manifests' namespace): who holds the slots, who waits",
    )


async def _api(args: argparse.Namespace) -> NodeApi:
    """--kube-api, else a kubeconfig (--kubeconfig, $KUBECONFIG, ~/.kube/config), else the
    pod's service account."""
    from kubernetes_asyncio.client import Configuration  # noqa: PLC0415 - see the imports
    from kubernetes_asyncio.config import ConfigException, load_kube_config  # noqa: PLC0415

    from jcp.kube.api import KubeError, NodeApi  # noqa: PLC0415

    if args.kube_api:
        token = args.kube_token_file.read_text().strip() if args.kube_token_file else None
        return NodeApi.connect(args.kube_api, token)
    path = args.kubeconfig or (
        Path(os.environ["KUBECONFIG"]) if os.environ.get("KUBECONFIG") else None
    )
    if path is None and DEFAULT_KUBECONFIG.exists():
        path = DEFAULT_KUBECONFIG
    if path is None:
        return NodeApi.in_cluster()
    configuration = Configuration()
    try:
        await load_kube_config(
            config_file=str(path), context=args.context, client_configuration=configuration
        )
    except (ConfigException, OSError, ValueError) as exc:
        raise KubeError(None, f"kubeconfig {path}: {exc}") from None
    return NodeApi(configuration)


async def collect(args: argparse.Namespace) -> list[NodeState]:
    from jcp.kube.api import KubeError  # noqa: PLC0415 - see the imports
    from jcp.kube.lease_api import LeaseApi  # noqa: PLC0415

    api = await _api(args)
    try:
        fields = f"metadata.name={args.node}" if args.node else None
        doc = await api.list_nodes(field_selector=fields, label_selector=args.selector)
        leases = LeaseApi.of(api, args.fleet_namespace)
        try:  # the fleet budget is optional: no Leases, or no right to read them, is no error
            args.leases = await leases.list_leases(FLEET_LABEL)
        except KubeError:
            args.leases = None
        finally:
            await leases.close()
    finally:
        await api.close()
    annotation = state_annotation(args.label)
    items = doc.get("items") or []
    return sorted((read_node(n, annotation) for n in items), key=lambda n: n.name)


def table(nodes: list[NodeState], *, detail: bool) -> str:
    rows = [("NODE", "WARM", "PRESENT", "GENERATION", "FAILING")]
    for n in nodes:
        if not n.annotated or n.problem:
            why = n.problem or "no warm-state annotation (jcp without --node-label, or not here)"
            rows.append((n.name, "?", "-", "-", why))
            continue
        more = n.failed_count - len(n.failed)
        failing = ", ".join(n.failed) + (f" (+{more} more)" if more > 0 else "")
        rows.append(
            (
                n.name,
                "yes" if n.warm else "no",
                f"{n.present}/{n.selected}",
                str(n.generation),
                failing or "-",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)) + "  " + r[4]
        for r in rows
    ]
    if detail:
        lines.extend(f"{n.name}: missing {', '.join(n.missing)}" for n in nodes if n.missing)
    lines.append(summary(nodes))
    return "\n".join(line.rstrip() for line in lines)


def summary(nodes: list[NodeState]) -> str:
    warm = sum(1 for n in nodes if n.warm)
    cold = sum(1 for n in nodes if n.annotated and not n.problem and not n.warm)
    unknown = len(nodes) - warm - cold
    generations = sorted({n.generation for n in nodes if n.generation is not None})
    count = f"{len(nodes)} node" + ("" if len(nodes) == 1 else "s")
    text = f"{count}: {warm} warm, {cold} not warm, {unknown} without a warm state"
    if len(generations) > 1:
        text += f"; config generations {', '.join(map(str, generations))} (a reload in flight)"
    return text


def image_report(nodes: list[NodeState], image: str) -> tuple[dict[str, Any], str, int]:
    missing = [n.name for n in nodes if n.lacks(image) is True]
    unknown = [n.name for n in nodes if n.lacks(image) is None]
    fine = [n.name for n in nodes if n.lacks(image) is False]
    doc = {"image": image, "missing": missing, "unknown": unknown, "notMissing": fine}
    lines = [f"{image}: missing on {len(missing)} of {len(nodes)} nodes"]
    lines += [f"  missing  {name}" for name in missing]
    lines += [f"  unknown  {name}" for name in unknown]
    if unknown:
        lines.append("unknown: not warm, and no list of its missing images (or no annotation)")
    return doc, "\n".join(lines), 1 if missing or unknown else 0


def run(args: argparse.Namespace) -> int:
    if problem := label_problem(args.label):
        print(f"jcp fleet: error: --label: {problem}", file=sys.stderr)
        return 2
    try:
        image = str(parse_reference(args.image)) if args.image else None
    except ValueError as exc:
        print(f"jcp fleet: error: --image: {exc}", file=sys.stderr)
        return 2
    from jcp.kube.api import KubeError  # noqa: PLC0415 - see the imports

    try:
        nodes = asyncio.run(collect(args))
    except (KubeError, OSError) as exc:
        print(f"jcp fleet: error: {exc}", file=sys.stderr)
        return 2
    if args.node and not nodes:
        print(f"jcp fleet: error: no node {args.node}", file=sys.stderr)
        return 2
    if image is not None:
        doc, text, code = image_report(nodes, image)
        print(json.dumps(doc, indent=2) if args.output == "json" else text)
        return code
    fleet_slots = slots(getattr(args, "leases", None))
    if args.output == "json":
        doc = {"nodes": [n.to_json() for n in nodes], "summary": summary(nodes)}
        print(json.dumps({**doc, "fleet": fleet_slots}, indent=2))
    else:
        print(table(nodes, detail=bool(args.node)))
        line = slots_line(fleet_slots)
        if line is not None:
            print(line)
    return 0
