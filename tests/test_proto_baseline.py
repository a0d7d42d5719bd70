"""proto/baseline.binpb, the gRPC API of the last release: ``buf breaking`` (run by
``make lint``) accepts today's proto/ and refuses a change that breaks its clients."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]
BUF = Path(sys.executable).parent / "buf"


def breaking(proto: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BUF), "breaking", str(proto), "--against", str(ROOT / "proto" / "baseline.binpb")],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_current_proto_keeps_the_released_api() -> None:
    done = breaking(ROOT / "proto")
    assert (done.returncode, done.stdout) == (0, "")


def test_a_renumbered_field_breaks_the_build(tmp_path: Path) -> None:
    proto = tmp_path / "proto"
    shutil.copytree(ROOT / "proto", proto, ignore=shutil.ignore_patterns("*.binpb"))
    report = proto / "dlrhub" / "v1" / "delivery_report.proto"
    text = report.read_text(encoding="utf-8")
    assert "  string message_id = 3;\n" in text
    report.write_text(text.replace("  string message_id = 3;\n", "  string message_id = 99;\n", 1))
    done = breaking(proto)
    assert done.returncode != 0
    assert 'Previously present field "3" with name "message_id"' in done.stdout
