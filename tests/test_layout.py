"""The layout keeps its promises (scripts/check_layout.py): module sizes, the orchestrator's
top level, imports flowing one way, and few repeated blocks in product code."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts import check_layout


def test_no_module_too_large_and_a_small_top_level() -> None:
    assert check_layout.check_sizes() == []


def test_imports_flow_one_way() -> None:
    assert check_layout.check_imports() == []


def test_few_repeated_blocks() -> None:
    assert check_layout.check_repeats() == []


def test_the_checks_catch_what_they_promise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a tree that breaks each rule, each check reports it."""
    sessions = tmp_path / "orchestrator" / "sessions"
    sessions.mkdir(parents=True)
    (sessions / "session.py").write_text("from orchestrator.app import Services\n")
    (tmp_path / "tts_worker").mkdir()
    (tmp_path / "tts_worker" / "big.py").write_text("from orchestrator import errors\n" * 501)
    block = "".join(f"value_{n} = compute(a, b + {n}) * scale(c)\n" for n in range(6))
    (tmp_path / "fleet").mkdir()
    for name in ("one", "two", "three", "four", "five"):
        (tmp_path / "fleet" / f"{name}.py").write_text(
            f"def {name}():\n" + block.replace("v", "    v")
        )
    monkeypatch.setattr(check_layout, "ROOT", tmp_path)
    assert any("big.py has 501 lines" in p for p in check_layout.check_sizes())
    problems = check_layout.check_imports()
    assert any("orchestrator.sessions imports orchestrator.app" in p for p in problems)
    assert any("tts_worker.big may not import orchestrator" in p for p in problems)
    assert check_layout.check_repeats()
