"""Every recipe of CLAIMS.md runs: tiny in the default suite, at its small scale with -m slow."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from shiftkit.records import read_run
from shiftkit.sweep import load_sweep, plan_cells, resolve_cells, run_cells

RECIPES_DIR = Path(__file__).resolve().parents[2] / "recipes"
CLAIM_RECIPES = {
    "C1": "mnist_fig1",
    "C2": "lr_multipliers",
    "C3": "init_scale",
    "C4": "deep_sigmoid",
    "C5": "noisy_bn",
    "C6": "grad_ics",
    "C7": "landscape",
    "C8": "syncbn_vs_local",
}
#: 3 steps, a validation at step 2, the monitor every step, one val/test batch.
TINY = [
    "--trainer.max_steps=3", "--trainer.val_check_interval=2", "--trainer.limit_val_batches=1",
    "--trainer.limit_test_batches=1", "--monitor.every_n_steps=1",
]  # fmt: skip
#: The cell of each recipe run in the tiny test: the one with the most machinery (BN, the
#: largest grid values, noise, SyncBN under DDP). Every cell's keys are checked by
#: test_small_and_paper_scale_cells_resolve; every cell runs in the slow test.
TINY_CELL = {
    "mnist_fig1": "bn",
    "lr_multipliers": "seed=0 model.norm=batch model.lr_multiplier=30",
    "init_scale": "seed=0 model.norm=batch model.init_scale=10.0",
    "deep_sigmoid": "bn seed=0 model.init_std=4.0",
    "noisy_bn": "noisy_bn",
    "grad_ics": "bn",
    "landscape": "bn",
    "syncbn_vs_local": "sync_b4",
}


ALL = [pytest.param(n, id=n) for n in CLAIM_RECIPES.values()]


def recipe_path(name: str) -> Path:
    return RECIPES_DIR / f"{name}.yaml"


@pytest.mark.parametrize("name", CLAIM_RECIPES.values())
def test_recipe_documents_both_scales_and_has_three_seeds(name):
    path = recipe_path(name)
    text = path.read_text()
    header = "".join(line for line in text.splitlines(True) if line.startswith("#"))
    for needed in ("Small scale", "Paper scale", f"shiftkit sweep recipes/{name}.yaml",
                   "--scale paper", "fixed here"):  # fmt: skip
        assert needed.lower() in header.lower(), f"{path}: header lacks {needed!r}"
    spec = load_sweep(path)
    assert spec.recipe == name
    assert len(spec.grid["seed_everything"]) >= 3  # the report needs a spread over seeds
    assert spec.scales["paper"]["trainer.max_steps"] > yaml.safe_load(text)["trainer"]["max_steps"]
    claim = next(c for c, r in CLAIM_RECIPES.items() if r == name)
    readme = (RECIPES_DIR / "README.md").read_text()
    assert re.search(rf"\|\s*{claim}\s*\|.*`{name}\.yaml`", readme), f"README lacks {claim}"


@pytest.mark.parametrize("name", ALL)
def test_small_and_paper_scale_cells_resolve(name, resolver):
    """Every variant's and grid value's keys are valid at both scales (nothing is run)."""
    spec = load_sweep(recipe_path(name))
    small = resolve_cells(plan_cells(spec, seeds=[0]), resolver)
    paper = resolve_cells(
        plan_cells(spec, "paper", [0], ["--data.data_dir=/data/elsewhere"]), resolver
    )
    assert len(small) == len(paper) == len(plan_cells(spec, seeds=[0]))
    for cell in small:
        assert cell.config["data"]["class_path"] == "shiftkit.data.mnist5k.Mnist5kDataModule"
    for cell in paper:
        config = cell.config
        assert config["data"]["class_path"] in (
            "shiftkit.data.mnist.MnistDataModule",
            "shiftkit.data.cifar10.Cifar10DataModule",
        )
        assert config["data"]["init_args"]["data_dir"] == "/data/elsewhere"
        assert config["trainer"]["max_steps"] == spec.scales["paper"]["trainer.max_steps"]


@pytest.mark.parametrize("name", ALL)
def test_recipe_runs_tiny(name, tmp_path, resolver):
    cells = [
        c for c in plan_cells(load_sweep(recipe_path(name)), seeds=[0], extra_args=TINY)
        if TINY_CELL[name] in (c.variant, c.label())
    ]  # fmt: skip
    assert len(cells) == 1
    cell = resolve_cells(cells, resolver)[0]
    report = run_cells([cell], tmp_path, progress=False, write=lambda line: None)
    assert report.ok, report.outcomes[0].error
    run = read_run(tmp_path / cell.cell_id)
    result = run.result
    variant = cell.variant or result["config"]["model"]["norm"]
    assert (run.recipe, run.variant, run.seed) == (name, variant, 0)
    assert result["steps"] == 3 and result["diverged"] is False
    assert sorted(run.history["step"].unique()) == [0, 1, 2]
    assert run.histograms["counts"].shape[0] == 3
    assert run.metrics["val/acc"].notna().sum() == 1  # the validation at step 2
    assert result["world_size"] == cell.config["trainer"]["devices"]


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("name", ALL)
def test_recipe_small_scale(name, tmp_path, resolver):
    """The whole recipe at its small scale, every seed: every cell finishes (or diverges)."""
    spec = load_sweep(recipe_path(name))
    cells = resolve_cells(plan_cells(spec), resolver)
    jobs = 1 if name == "syncbn_vs_local" else 2  # a DDP cell uses both cores
    report = run_cells(cells, tmp_path, jobs=jobs, progress=False)
    assert not report.with_status("failed"), [o.error for o in report.with_status("failed")]
    max_steps = yaml.safe_load(recipe_path(name).read_text())["trainer"]["max_steps"]
    for outcome in report.outcomes:
        result = outcome.result
        assert result["steps"] == max_steps or result["diverged"], outcome.cell.label()
        assert result["monitor"]["measurements"] >= 1
