"""The committed gRPC stubs are exactly what `make proto` generates from proto/."""

from __future__ import annotations

from pathlib import Path

from scripts.gen_proto import ROOT, generate


def test_regenerating_the_stubs_changes_nothing(tmp_path: Path) -> None:
    generated = generate(tmp_path)
    assert generated, "protoc wrote nothing"
    for path in generated:
        committed = ROOT / path.relative_to(tmp_path)
        assert committed.is_file(), f"{committed} is not committed"
        assert committed.read_bytes() == path.read_bytes(), f"{committed} is stale: run make proto"
