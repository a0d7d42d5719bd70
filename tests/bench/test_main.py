"""Covers bench/__main__.py: the results table, with each webhook scenario's rate as a share
of the ceiling, and the single-report requests the first scenarios replay."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.__main__ import HEADER, baselines, pair, single, table
from bench.scenarios import Bench, Result


def test_table_rows() -> None:
    ceiling = Result(
        scenario="ceiling",
        requests_per_second=10_000,
        usage={
            "ceiling": {
                "cpu_seconds": 9.5,
                "cpu_us_per_request": 95.0,
                "cpu_us_per_report": 95.0,
                "peak_rss_mib": 40.0,
            }
        },
        verified="n/a",
        webhook=True,
    )
    webhook = Result(
        scenario="infobip",
        requests_per_second=2_500,
        reports_per_second=2_500,
        p50_ms=3.25,
        p99_ms=9.0,
        p999_ms=20.0,
        usage={
            "gateway": {
                "cpu_seconds": 8.0,
                "cpu_us_per_request": 1066.7,
                "cpu_us_per_report": 1066.7,
                "peak_rss_mib": 90.0,
            },
            "statusd": {
                "cpu_seconds": 4.0,
                "cpu_us_per_request": 53.3,
                "cpu_us_per_report": 53.3,
                "peak_rss_mib": 70.0,
            },
        },
        verified="ok",
        webhook=True,
    )
    grpc_only = Result(scenario="get", requests_per_second=5_000, verified="ok")
    lines = table([ceiling, webhook, grpc_only], ceiling.requests_per_second).splitlines()
    assert "\n".join(lines[:2]) == HEADER
    assert (
        lines[2] == "| ceiling | 10,000 | 0 | 100% | 0.0 | 0.0 | 0.0 | 9.5 / - | 95 / - | 95 / - "
        "| 40.0 / - | n/a |"
    )
    assert lines[3] == (
        "| infobip | 2,500 | 2,500 | 25% | 3.2 | 9.0 | 20.0 | 8.0 / 4.0 | 1,067 / 53 "
        "| 1,067 / 53 | 90.0 / 70.0 | ok |"
    )
    assert lines[4].startswith("| get | 5,000 | 0 | - |")
    assert table([webhook], 0).splitlines()[2].split("|")[4].strip() == "-"


def test_pair_rounds_microseconds_and_marks_what_is_missing() -> None:
    gateway = {"cpu_seconds": 1.25, "cpu_us_per_request": 123.46}
    assert pair(gateway, {}, "cpu_us_per_request") == "123 / -"
    assert pair(gateway, {"cpu_seconds": 0.5}, "cpu_seconds") == "1.25 / 0.5"
    assert pair({}, {}, "cpu_us_per_report") == "- / -"


def test_single_makes_one_report_per_request() -> None:
    requests = list(single("one", 3))
    assert len(requests) == 3
    assert all(len(request.message_ids) == 1 for request in requests)


def test_baselines_alone_start_nothing(tmp_path: Path) -> None:
    """Scenarios that compare with themselves get a placeholder ceiling and no floor: no
    process is started (a Bench with no settings would fail to start one)."""
    results = baselines(Bench(argparse.Namespace(), tmp_path), alone=True)
    assert [(result.scenario, result.requests_per_second) for result in results] == [
        ("ceiling (not run)", 0.0)
    ]
