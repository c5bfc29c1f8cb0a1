"""The command line's layers: `shiftkit.cli` never imports the sweep (the sweep calls the command
line), and a recipe's `sweep:` section is read in one place, with one error, by both commands."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import shiftkit.cli
from shiftkit.cli.argv import expand_argv
from shiftkit.cli.recipe import RecipeError
from shiftkit.sweep import SweepError, load_sweep
from tests.cli.helpers import TINY, write_yaml


def imported_modules(path: Path) -> set[str]:
    """Every module a source file imports, at the top or inside a function."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_the_command_line_package_never_imports_the_sweep_or_the_dispatcher():
    package = Path(shiftkit.cli.__file__).parent
    files = sorted(package.glob("*.py"))
    assert len(files) >= 8
    for path in files:
        upward = {
            m
            for m in imported_modules(path)
            if m.startswith(("shiftkit.sweep", "shiftkit.command"))
        }
        assert not upward, (path.name, upward)


@pytest.mark.parametrize(
    "variants, message",
    [
        ("bn", "sweep.variants must be a mapping, got str"),
        ({"bn": ["model.norm=batch"]}, "sweep.variants.bn must be a mapping, got list"),
    ],
)
def test_fit_and_sweep_reject_a_malformed_variants_section_alike(tmp_path, variants, message):
    path = write_yaml(tmp_path / "bad.yaml", dict(TINY, sweep={"variants": variants}))
    with pytest.raises(RecipeError) as from_fit:
        expand_argv(["fit", "--config", str(path), "--variant=bn"])
    with pytest.raises(SweepError) as from_sweep:
        load_sweep(path)
    assert str(from_fit.value) == str(from_sweep.value) == f"{path}: {message}"
