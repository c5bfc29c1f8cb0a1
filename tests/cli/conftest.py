"""Fixtures of the CLI tests: one config parser per session, the tiny recipe as a file."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.helpers import TINY, write_yaml


@pytest.fixture(scope="session")
def resolver():
    """One parser for the session: resolves `shiftkit fit` command lines to config + hash."""
    from shiftkit.cli.fit import ConfigResolver

    return ConfigResolver()


@pytest.fixture
def tiny_recipe(tmp_path) -> Path:
    """TINY as a recipe file, with two named variants and a 2-seed grid."""
    data = dict(TINY)
    data["sweep"] = {
        "grid": {"seed_everything": [0, 1]},
        "variants": {"plain": {"model.norm": "none"}, "bn": {"model.norm": "batch"}},
        "scales": {"paper": {"trainer.max_steps": 50000}},
    }
    return write_yaml(tmp_path / "tiny.yaml", data)
