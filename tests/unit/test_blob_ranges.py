"""The reorder window on its own: ranges planned, written in order whatever order they
arrive in, and the bytes held never over the window plus the head's buffer."""

from __future__ import annotations

import asyncio
import random

import pytest

from jcp.registry.blob_ranges import HEAD_BUFFER, PIECE, Range, Window, plan

KiB = 1024


@pytest.mark.parametrize(
    ("start", "size", "chunk", "bounds"),
    [
        (0, 10, 4, [(0, 4), (4, 8), (8, 10)]),
        (5, 10, 4, [(5, 9), (9, 10)]),
        (0, 8, 8, [(0, 8)]),
        (0, 8, 100, [(0, 8)]),
        (8, 8, 4, []),
        (0, 0, 4, []),
    ],
)
def test_plan(start: int, size: int, chunk: int, bounds: list[tuple[int, int]]) -> None:
    ranges = plan(start, size, chunk)
    assert [(r.start, r.end) for r in ranges] == bounds
    assert [r.head for r in ranges] == [i == 0 for i in range(len(bounds))]


class Collect:
    def __init__(self) -> None:
        self.data = bytearray()

    async def write(self, data: bytes) -> None:
        self.data += data
        await asyncio.sleep(0)


async def test_out_of_order_ranges_are_written_in_order_within_the_bound() -> None:
    blob = random.Random(7).randbytes(3 * 1024 * KiB + 5)  # noqa: S311 - test data
    chunk = 256 * KiB
    window = Window(4 * chunk)
    ranges = plan(0, len(blob), chunk)
    rng = random.Random(1)  # noqa: S311 - a repeatable arrival order

    async def fetch(r: Range) -> None:
        await window.reserve(r)
        while not r.complete:
            n = min(rng.choice([1, 1000, PIECE]), r.end - r.pos)
            await window.put(r, blob[r.pos : r.pos + n])
            await asyncio.sleep(rng.random() / 1000)
            assert window.held <= window.limit + HEAD_BUFFER + PIECE

    sink = Collect()
    tasks = [asyncio.create_task(fetch(r)) for r in reversed(ranges)]  # the last ones first
    await window.drain(ranges, sink, lambda: None)
    await asyncio.gather(*tasks)
    assert bytes(sink.data) == blob
    assert 0 < window.peak <= window.limit + HEAD_BUFFER + PIECE
    assert (window.held, window.used) == (0, 0)


async def test_a_range_waits_for_room_and_the_head_never_does() -> None:
    window = Window(100)
    ahead = Range(0, 100)
    await window.reserve(ahead)
    late = Range(100, 150)
    waiting = asyncio.create_task(window.reserve(late))
    await asyncio.sleep(0.01)
    assert not waiting.done(), "no room: the window is full"
    late.head = True
    await window.wake()
    await asyncio.wait_for(waiting, 1)
    assert late.reserved == 0, "the head streams through without a reservation"


async def test_a_failure_ends_the_drain() -> None:
    window = Window(100)
    r = Range(0, 10, head=True)
    failure: list[BaseException] = []
    drain = asyncio.create_task(window.drain([r], Collect(), lambda: next(iter(failure), None)))
    await asyncio.sleep(0.01)
    failure.append(ConnectionResetError("gone"))
    await window.wake()
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(drain, 1)


async def test_waiting_ranges_are_let_in_in_order_and_a_cancelled_one_is_skipped() -> None:
    window = Window(100)
    full = Range(0, 100)
    await window.reserve(full)
    first, second, third = Range(100, 160), Range(160, 200), Range(200, 270)
    tasks = [asyncio.create_task(window.reserve(r)) for r in (first, second, third)]
    await asyncio.sleep(0)
    tasks[0].cancel()
    await window.forget([full])  # the room comes back
    await asyncio.wait_for(tasks[1], 1)
    assert tasks[0].cancelled()
    assert (first.reserved, second.reserved, window.used) == (0, 40, 40)
    assert not tasks[2].done(), "70 more do not fit beside 40"
    await window.forget([second])
    await asyncio.wait_for(tasks[2], 1)
    assert (third.reserved, window.used) == (70, 70)
