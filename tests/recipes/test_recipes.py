"""Every recipe of CLAIMS.md runs: tiny in the default suite, at its small scale with -m slow;
its paper scale (networks, optimizers, callbacks, monitor) runs two steps on stand-in data."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import pytest
import yaml

from shiftkit.records import read_run
from shiftkit.records.names import GRAD_ICS_PREFIX, LANDSCAPE_PREFIX
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


#: What a paper-scale cell replaces: the step counts (2 optimizer steps, a validation at step 2,
#: one val/test batch) and the data (`paper_data_args`); everything else runs as configured.
PAPER_STEPS = [
    "--trainer.max_steps=2", "--trainer.val_check_interval=2", "--trainer.limit_val_batches=1",
    "--trainer.limit_test_batches=1",
]  # fmt: skip
REPLACED_TRAINER_KEYS = {"max_steps", "val_check_interval", "limit_val_batches",
                         "limit_test_batches"}  # fmt: skip
#: A metric each opt-in callback of a recipe logs when it measures.
CALLBACK_PREFIX = {"GradientICSMonitor": GRAD_ICS_PREFIX, "LandscapeMonitor": LANDSCAPE_PREFIX}


def paper_data_args(config: dict) -> list[str]:
    """Synthetic data of the paper-scale DataModule's input shape, classes and batch size, with
    two training batches (CIFAR-10- or MNIST-shaped Gaussian blobs instead of the real files)."""
    data = config["data"]
    module, name = data["class_path"].rsplit(".", 1)
    real = getattr(importlib.import_module(module), name)
    batch = data["init_args"]["batch_size"]
    return [
        "--data=shiftkit.data.SyntheticDataModule",
        f"--data.shape=[{','.join(map(str, real.input_shape))}]",
        f"--data.num_classes={real.num_classes}", f"--data.batch_size={batch}",
        f"--data.num_train={2 * batch}", f"--data.num_val={batch}", f"--data.num_test={batch}",
    ]  # fmt: skip


def run_paper_scale(name: str, pick, out: Path, resolver) -> list[str]:
    """Run the picked seed-0 cells of a recipe's paper scale for two steps on stand-in data,
    check that they ran as configured, and return the labels of the cells that ran."""
    spec = load_sweep(recipe_path(name))
    planned = resolve_cells(plan_cells(spec, "paper", [0], ["--data.data_dir=/nowhere"]), resolver)
    planned = [c for c in planned if pick(c)]
    paper = {c.label(): c.config for c in planned}
    for cell in planned:
        cell.fit_args = [*cell.fit_args, *paper_data_args(cell.config), *PAPER_STEPS]
    cells = resolve_cells(planned, resolver)
    assert len(cells) == len(paper)
    report = run_cells(cells, out, progress=False, write=lambda line: None)
    assert report.ok, [f"{o.cell.label()}: {o.error}" for o in report.with_status("failed")]
    for cell in cells:
        run = read_run(out / cell.cell_id)
        # as recorded in result.json (JSON: tuples become lists)
        result, config = run.result, run.result["config"]
        want = json.loads(json.dumps(paper[cell.label()]))
        assert result["steps"] == 2 and not result["diverged"], cell.label()
        for section in ("model", "monitor", "seed_everything", "test_after_fit"):
            assert config.get(section) == want.get(section), (cell.label(), section)
        kept = [{k: v for k, v in c["trainer"].items() if k not in REPLACED_TRAINER_KEYS}
                for c in (config, want)]  # fmt: skip
        assert kept[0] == kept[1], cell.label()
        data = config["data"]["init_args"]
        assert data["batch_size"] == want["data"]["init_args"]["batch_size"]
        assert result["monitor"]["measurements"] >= 1 and result["world_size"] == int(
            want["trainer"]["devices"]
        )  # fmt: skip
        assert run.metrics["val/acc"].notna().sum() == 1
        for callback in want["trainer"].get("callbacks") or []:
            prefix = CALLBACK_PREFIX[callback["class_path"].rsplit(".", 1)[1]]
            logged = [c for c in run.metrics.columns if c.startswith(prefix)]
            assert logged and run.metrics[logged].notna().any().any(), (cell.label(), prefix)
    return [cell.label() for cell in cells]


#: The landscape cell alone takes ~30 s on 2 cores (LandscapeMonitor: nine forward/backward
#: passes of VGG-11 at batch 128 besides the steps), as long as the other seven together: it
#: runs with -m slow, so that this test stays under a minute. Its network and optimizer are
#: grad_ics's, which runs here; only the callback is left to the slow tests.
PAPER_CELL = [
    pytest.param(n, id=n, marks=[pytest.mark.slow] if n == "landscape" else [])
    for n in CLAIM_RECIPES.values()
]


@pytest.mark.timeout(600)
@pytest.mark.parametrize("name", PAPER_CELL)
def test_paper_scale_runs_two_steps(name, tmp_path, resolver):
    """Each recipe's paper-scale network, optimizer, callbacks and monitor, at the paper's input
    shapes and batch size (the cell of TINY_CELL; every cell in the slow test below)."""
    ran = run_paper_scale(name, lambda c: TINY_CELL[name] in (c.variant, c.label()), tmp_path, resolver)
    assert len(ran) == 1 and all(TINY_CELL[name] in label for label in ran), ran


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("name", ALL)
def test_paper_scale_every_cell_runs_two_steps(name, tmp_path, resolver):
    """Every variant and grid value of each recipe's paper scale (seed 0), two steps each."""
    ran = run_paper_scale(name, lambda c: True, tmp_path, resolver)
    planned = plan_cells(load_sweep(recipe_path(name)), "paper", [0], ["--data.data_dir=/nowhere"])
    assert sorted(ran) == sorted(c.label() for c in planned)  # every cell of the grid, once
