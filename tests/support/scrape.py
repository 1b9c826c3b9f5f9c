"""Reading jcp's HTTP surface in tests: probes, /status and /metrics samples."""

from __future__ import annotations

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.support.helpers import wait_for
from tests.support.jcp_process import JcpProcess


async def get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, await resp.text()


async def wait_http(run: JcpProcess) -> str:
    assert run.http is not None
    base = run.http

    async def up() -> bool:
        try:
            await get(base + "/healthz")
        except aiohttp.ClientError:
            return False
        return True

    await wait_for(up, what="jcp's HTTP server")
    return base


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(
    metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float | None:
    return metrics.get((name, tuple(sorted(labels.items()))))
