"""The fleet simulation's harness (`python -m bench.fleet --quick`: 20 real engines, K=3,
against the API stand-in's Leases): it runs, the budget holds exactly (never more than K pulls
at once, from every pull's own start and end), and the median node is warm sooner with it."""

from __future__ import annotations

import pytest

from bench import fleet


def test_the_quick_simulation_holds_the_budget_and_warms_the_median_node_sooner(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert fleet.main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert "| no budget |" in out
    assert "| budget K=3 |" in out
    assert "budget held: at most 3 of K=3 pulling at once" in out
