"""docs/CONFIGURATION.md lists every setting with its variable and default, as the code has them."""

from __future__ import annotations

from scripts.gen_config_docs import TARGET, render


def test_configuration_reference_is_current() -> None:
    assert TARGET.read_text(encoding="utf-8") == render(), (
        "docs/CONFIGURATION.md is stale: run python -m scripts.gen_config_docs"
    )
