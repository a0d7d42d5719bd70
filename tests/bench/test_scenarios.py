"""The benchmark's pure parts: wrk summaries and h2load times read into results, percentiles,
and the check that every acknowledged request's reports are in the store (run against a real
statusd, seeded through IngestService)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from bench.scenarios import Bench, Result, h2load_millis, percentile, seed
from statusd.server import Statusd

WRK_RUN = {
    "duration_us": 2_000_000,
    "acked": ["a", "b", "c", "d"],
    "requests": 5,
    "p50_us": 1500,
    "p99_us": 8000,
    "p999_us": 12000,
    "errors_status": 1,
    "errors_timeout": 0,
}


def test_percentile() -> None:
    values = [float(value) for value in range(1, 101)]
    assert percentile(values, 50) == 51.0
    assert percentile(values, 99) == 100.0
    assert percentile(values, 99.9) == 100.0
    assert percentile([], 50) == 0.0


@pytest.mark.parametrize(
    ("text", "millis"),
    [("1.5ms", 1.5), ("250us", 0.25), ("1.2s", 1200.0), ("12", 0.0)],
)
def test_h2load_millis(text: str, millis: float) -> None:
    assert h2load_millis(text) == pytest.approx(millis)


def test_from_wrk(tmp_path: Path) -> None:
    usage = {"gateway": {"cpu_seconds": 1.0, "peak_rss_mib": 80.0}}
    result = Bench(argparse.Namespace(), tmp_path).from_wrk("scn", WRK_RUN, usage)
    assert result == Result(
        scenario="scn",
        requests_per_second=2.0,
        p50_ms=1.5,
        p99_ms=8.0,
        p999_ms=12.0,
        usage=usage,
        notes={"wrk_requests": 5, "errors_status": 1},
        webhook=True,
    )


async def test_verify_finds_what_is_missing(statusd: Statusd, tmp_path: Path) -> None:
    await seed(f"127.0.0.1:{statusd.port}", 3)
    bench = Bench(argparse.Namespace(), tmp_path)
    bench.database = tmp_path / "statusd.sqlite3"  # where the statusd fixture stores
    index = {
        "r-0": (("infobip", "seed-0"), ("infobip", "seed-1")),
        "r-1": (("infobip", "seed-2"),),
        "r-2": (("infobip", "never-sent"),),
    }
    assert bench.verify(index, ["r-0", "r-1"]) == "ok"
    assert bench.verify(index, ["r-0", "r-2"]) == "MISSING 1 of 3"
    assert bench.stored_ids(10) == ["seed-0", "seed-1", "seed-2"]
