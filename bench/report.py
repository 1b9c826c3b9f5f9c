"""The results as Markdown tables (pasted into BENCHMARKS.md) and the goals' verdicts."""

from __future__ import annotations

from typing import Any

from bench.registry_log import KINDS

STEADY_TARGET = 0.05
COLD_TARGET = 0.9
_KIND_HEADERS = ("GET /v2/", "token", "HEAD manifest", "GET manifest", "blob", "other")


def cell(result: dict[str, Any], name: str) -> str:
    c = result["contenders"].get(name)
    if c is None:
        return "-"
    if "skipped" in c:
        return f"skipped: {c['skipped']}"
    s = c["seconds"]
    spread = f" ({s['min']:.2f}-{s['max']:.2f})" if c["runs"] > 1 else " (1 run)"
    return f"{s['median']:.2f}{spread}"


def num(value: float | None, fmt: str = ".3f") -> str:
    return "-" if value is None else format(value, fmt)


def per_image_header(first: str, daemon: str) -> list[str]:
    return [
        f"| {first} | images | contender | "
        + " | ".join(_KIND_HEADERS)
        + f" | runtime pulls | client CPU ms | {daemon} CPU ms | requests by agent |",
        "|---|---|---|" + "---|" * (len(KINDS) + 4),
    ]


def per_image_rows(first: str, result: dict[str, Any]) -> list[str]:
    """Per image, for each contender measured: registry requests by kind, runtime pulls, CPU
    of the contender and of the runtime daemon (medians), and who made the requests."""
    rows = []
    n = int(result["images"])
    for name, c in result["contenders"].items():
        if "skipped" in c:
            continue
        per = c["requests_per_image"]
        client = c["cpu_seconds"]["median"] * 1000 / n
        daemon = c["runtime_cpu_seconds"]["median"] * 1000 / n
        agents = ", ".join(f"{a} {k}" for a, k in sorted(c["requests_by_agent"].items()))
        rows.append(
            f"| {first} | {n} | {name} | "
            + " | ".join(f"{per.get(k, 0):g}" for k in KINDS)
            + f" | {num(c['runtime_pulls_per_image'], 'g')} | {client:.1f} | {daemon:.1f} "
            f"| {agents} |"
        )
    return rows


def _steady(results: dict[str, Any]) -> list[str]:
    names = ["serial", "xargs -P 8", "jcp pull", "jcp digest"]
    lines = [
        (
            "| link | images | serial s | xargs -P 8 s | jcp pull s | jcp digest s "
            "| pull/serial | digest/serial | digest/xargs |"
        ),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    counts = per_image_header("link", "dockerd")
    runs = [
        "| link | images | jcp run sweep s | serial s | sweep/serial |",
        "|---|---|---|---|---|",
    ]
    for link in ("loopback", "slow_link"):
        for n, r in sorted(results.get(link, {}).items(), key=lambda kv: int(kv[0])):
            lines.append(
                f"| {link} | {n} | " + " | ".join(cell(r, x) for x in names) + " | "
                f"{num(r['jcp pull vs serial'])} | {num(r['jcp digest vs serial'])} | "
                f"{num(r['jcp digest vs xargs -P 8'])} |"
            )
            counts += per_image_rows(link, r)
            if "jcp run sweep" in r:
                w = r["jcp run sweep"]
                runs.append(
                    f"| {link} | {n} | {w['median']:.2f} ({w['min']:.2f}-{w['max']:.2f}) | "
                    f"{cell(r, 'serial')} | {num(r['jcp run sweep vs serial'])} |"
                )
    return [
        *lines,
        "",
        "steady sweeps inside `jcp run` (refresh by digest, start-up and first sweep left out):",
        "",
        *runs,
        "",
        (
            "per image: registry requests (the registry's access log), runtime pulls (the "
            "daemon's events), CPU of the contender and of dockerd (medians):"
        ),
        "",
        *counts,
    ]


def _cold(results: dict[str, Any]) -> list[str]:
    cold = ("cold_small", "cold_slow_link", "cold_big", "cold_mixed")
    rows = [(n, results[n]) for n in cold if n in results]
    if not rows:
        return []
    names: list[str] = []
    for _, r in rows:
        names += [n for n in r["contenders"] if n not in names]
    lines = [
        "| set | images | " + " | ".join(f"{n} s" for n in names) + " | jcp/best xargs |",
        "|---|---|" + "---|" * (len(names) + 1),
    ]
    for label, r in rows:
        best = r.get("jcp_vs_best_xargs", r.get("jcp_vs_xargs"))
        lines.append(
            f"| {label} | {r['images']} | "
            + " | ".join(cell(r, n) if n in r["contenders"] else "-" for n in names)
            + f" | {num(best)} |"
        )
    big = results.get("cold_big")
    if big and "floor" in big:
        f = big["floor"]
        lines += [
            "",
            (
                f"floor (big set, {f['compressed_mb']} MB compressed, {f['uncompressed_mb']} MB "
                f"of tar): {f['one_core_seconds']} s on one core, {f['two_cores_seconds']} s on "
                f"two; jcp / floor (two cores) = {big['jcp_vs_floor']}"
            ),
        ]
    if big and "phases" in big:
        lines += [
            "",
            (
                "| big set, `docker pull` at once | images | last layer downloaded s "
                "| last layer extracted s |"
            ),
            "|---|---|---|---|",
        ]
        lines += [
            f"| {label} | {p['images']} | {p['last_download_complete']} | "
            f"{p['last_pull_complete']} |"
            for label, p in big["phases"].items()
        ]
    lines += [
        "",
        (
            "| set | contender | wall s | client CPU s | dockerd CPU s | of which its children "
            "| of which kernel | registry CPU s |"
        ),
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, r in rows:
        for name, c in r["contenders"].items():
            if "skipped" in c:
                continue
            lines.append(
                f"| {label} | {name} | {c['seconds']['median']:.2f} | "
                f"{c['cpu_seconds']['median']:.2f} | {c['runtime_cpu_seconds']['median']:.2f} | "
                f"{c['runtime_children_cpu_seconds']['median']:.2f} | "
                f"{c['runtime_kernel_cpu_seconds']['median']:.2f} | "
                f"{c['registry_cpu_seconds']['median']:.2f} |"
            )
    return lines


def _misc(results: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    if "reload_latency" in results:
        r = results["reload_latency"]
        s = r["to_pull_start_seconds"]
        lines.append(
            f"reload latency: pull start {s['median'] * 1000:.0f} ms median ({s['min'] * 1000:.0f}"
            f"-{s['max'] * 1000:.0f}), image present "
            f"{r['to_present_seconds']['median'] * 1000:.0f} ms median"
        )
    if "footprint" in results:
        f = results["footprint"]
        lines.append(
            f"footprint: peak RSS {f['peak_rss_mb_cold_warm_up']} MB during a cold warm-up, "
            f"idle RSS {f['idle_rss_mb']} MB, idle CPU {f['idle_cpu_seconds']} s over "
            f"{f['idle_window_seconds']} s"
        )
    if "scale" in results:
        r = results["scale"]
        once = r["once_one_image"]
        lines.append(
            f"jcp once on one present image (its fixed cost): {once['seconds']['median']:.2f} s,"
            f" {once['cpu_seconds']['median']:.2f} s CPU"
        )
        lines += ["", "| entries | jcp validate s | CPU s |", "|---|---|---|"]
        for n, v in sorted(r["validate"].items(), key=lambda kv: int(kv[0])):
            lines.append(
                f"| {n} | {v['seconds']['median']:.2f} | {v['cpu_seconds']['median']:.2f} |"
            )
    return lines


def goals(results: dict[str, Any]) -> list[tuple[str, float | None, float, str | None]]:
    """(goal, figure, limit, why there is no figure)."""
    out: list[tuple[str, float | None, float, str | None]] = []
    for link, by_n in results.get("steady", {}).items():
        if link == "link":
            continue
        for n, r in sorted(by_n.items(), key=lambda kv: int(kv[0])):
            skipped = r["contenders"]["jcp digest"].get("skipped")
            out.append(
                (f"steady {link} {n}: jcp once --refresh digest / serial <= {STEADY_TARGET}",
                 r["jcp digest vs serial"], STEADY_TARGET, skipped)
            )  # fmt: skip
            if "jcp run sweep vs serial" in r:
                out.append(
                    (f"steady {link} {n}: jcp run's sweep / serial <= {STEADY_TARGET}",
                     r["jcp run sweep vs serial"], STEADY_TARGET, None)
                )  # fmt: skip
    out.extend(
        (f"{name}: jcp/best xargs -P <= {COLD_TARGET}",
         results[name]["jcp_vs_best_xargs"], COLD_TARGET, None)
        for name in ("cold_small", "cold_big", "cold_mixed") if name in results
    )  # fmt: skip
    out.extend(tuple(g) for g in results.get("containerd", {}).get("goals", []))
    if "reload_latency" in results:
        s = results["reload_latency"]["to_pull_start_seconds"]["median"]
        out.append(("reload: median to pull start <= 1 s", s, 1.0, None))
    if "footprint" in results:
        out.append(("idle RSS <= 80 MB", results["footprint"]["idle_rss_mb"], 80.0, None))
    return out


def report(results: dict[str, Any]) -> str:
    from bench.containerd import report_lines  # noqa: PLC0415 - containerd's part is optional

    lines = [""]
    if "steady" in results:
        lines += ["## steady", "", *_steady(results["steady"]), ""]
    cold = _cold(results)
    if cold:
        lines += ["## cold", "", *cold, ""]
    if "containerd" in results:
        lines += ["## containerd", "", *report_lines(results["containerd"]), ""]
    lines += _misc(results)
    lines += ["", "goals:"]
    for label, value, limit, why in goals(results):
        if why:
            verdict, shown = "skipped", why
        elif value is None:
            verdict, shown = "n/a", "-"
        else:
            verdict, shown = ("met" if value <= limit else "MISSED"), f"{value:g}"
        lines.append(f"  [{verdict}] {label}: {shown}")
    return "\n".join(lines)
