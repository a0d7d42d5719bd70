"""``python -m bench.stats`` at a small size: the fill has the statuses in their shares, and
every timed GetDeliveryStats answer, from a real statusd process, matches plain SQL."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bench import stats
from dlrhub.v1 import delivery_report_pb2 as pb

END = 1_800_000_000_000_000


def test_the_fill_spreads_messages_over_the_window(tmp_path: Path) -> None:
    path = tmp_path / "fill.sqlite3"
    stats.fill(path, 2000, 2, END)
    with sqlite3.connect(path) as connection:
        count, low, high = connection.execute(
            "SELECT count(*), min(submit_time), max(submit_time) FROM messages"
        ).fetchone()
        delivered = connection.execute(
            "SELECT count(*) FROM messages WHERE status = ?", (pb.DELIVERY_STATUS_DELIVERED,)
        ).fetchone()[0]
        names = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
        ungrouped = connection.execute(
            "SELECT count(*) FROM messages WHERE stats_group IS NULL"
        ).fetchone()[0]
    assert count == 2000
    assert END - 2 * 24 * stats.HOUR <= low < high < END
    assert 0.7 < delivered / count < 0.9
    assert {"messages_stats_by_submit", "messages_stats_by_first_seen"} <= names
    assert ungrouped == 0  # every message has its statistics group, as the writer sets it


def test_a_small_run_checks_every_answer(capsys: object) -> None:
    assert stats.main(["--messages", "500", "--days", "2", "--repeat", "1", "--no-save"]) == 0
    table = capsys.readouterr().out  # type: ignore[attr-defined]
    lines = [line for line in table.splitlines() if line.startswith("| 24 h") or "whole" in line]
    assert len(lines) == 2 * 2 * len(stats.GROUPINGS)
    assert all(line.rstrip().endswith("| ok |") for line in lines)
