"""Pre-registered rules: the rule a report prints is the rule committed before the deciding runs;
amendments show beside the pre-registered verdict, never instead of it."""

from __future__ import annotations

import ast
import inspect
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from shiftkit.report import build_report
from shiftkit.report.claims.base import Check, ClaimOutcome, finish
from shiftkit.report.claims.prereg import Amendment
from shiftkit.report.claims.registry import CLAIMS, CLAIMS_BY_ID
from tests.report import synthetic_runs as syn
from tests.report.conftest import claims_rows

REPO = Path(__file__).resolve().parents[2]


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True)


def _docstring_at(commit: str, module) -> str | None:
    rel = Path(inspect.getfile(module)).resolve().relative_to(REPO)
    shown = _git("show", f"{commit}:{rel}")
    if shown.returncode != 0:
        return None
    return ast.get_docstring(ast.parse(shown.stdout))


@pytest.mark.parametrize("claim", CLAIMS, ids=lambda c: c.id)
def test_rule_is_the_one_committed_before_the_runs(claim):
    module = inspect.getmodule(claim.evaluate)
    if _git("cat-file", "-e", f"{claim.prereg.commit}^{{commit}}").returncode != 0:
        pytest.skip(f"commit {claim.prereg.commit} is not in this checkout's history (shallow clone?)")
    committed = _docstring_at(claim.prereg.commit, module)
    assert committed is not None, f"{module.__name__} did not exist at {claim.prereg.commit}"
    assert committed == inspect.getdoc(module), (
        f"{claim.id}'s rule changed after it was pre-registered at {claim.prereg.commit}: add an Amendment instead")


def test_deciding_seeds_are_the_recipes_seeds():
    import yaml

    for claim in CLAIMS:
        recipe = yaml.safe_load((REPO / "recipes" / f"{claim.recipe}.yaml").read_text())
        assert tuple(recipe["sweep"]["grid"]["seed_everything"]) == claim.prereg.seeds, claim.id


def test_amended_verdict_is_shown_beside_the_preregistered_one(tmp_path, monkeypatch):
    syn.write_recipe(tmp_path / "runs", "landscape")

    def stricter(claim, cohort, ctx):
        out = ClaimOutcome(claim, "")
        out.checks.append(Check("ratio above 100", False))
        return finish(out)

    amended = replace(CLAIMS_BY_ID["C7"], amendments=(Amendment("found after the runs", "ratio above 100", stricter),))
    monkeypatch.setattr("shiftkit.report.build.CLAIMS_BY_ID", {**CLAIMS_BY_ID, "C7": amended})
    result = build_report([tmp_path / "runs"], tmp_path / "out", claims=["C7"], figures=False, progress=False)
    row = claims_rows(result.readme.read_text())["C7"]
    assert row[4].startswith("**yes**") and "amended rule 1: **no**" in row[4]
    text = result.readme.read_text()
    assert "**Amended rule 1: no** — found after the runs: found after the runs" in text
    assert "Rule pre-registered at commit" in text


def test_report_flags_runs_outside_the_preregistered_seeds(tmp_path):
    syn.write_recipe(tmp_path / "runs", "landscape", seeds=(0, 1, 2))
    result = build_report([tmp_path / "runs"], tmp_path / "out", figures=False, progress=False)
    assert "seeds outside the pre-registered ones (0, 1, 2)" in result.readme.read_text()
