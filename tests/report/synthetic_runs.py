"""Synthetic run directories with known numbers, written through the records contract.

Each run gets ``result.json`` (``write_run_result``), ``metrics.csv`` in Lightning ``CSVLogger``
form (columns ``epoch, step`` and metric names; one row per log call), ``shift_history.csv``
(``write_shift_history``) and ``shift_histograms.npz`` (``write_shift_histograms``). Every curve is
a closed-form function of the step plus a small per-seed offset, so a test can recompute any number
from the files. ``Spec`` objects say what each variant does; tests change them to break a claim.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from shiftkit.records import write_run_result, write_shift_histograms, write_shift_history

STEPS = 1000
EVAL_EVERY = 50
MEASURE_EVERY = 50
BINS = 16
TARGET = 0.85
SEEDS = (0, 1, 2)
_WIDTH = 12 / BINS
_CENTRES = np.linspace(-6 - _WIDTH / 2, 6 + _WIDTH / 2, BINS + 2)  # under, in-range..., over


@dataclass
class Spec:
    """One variant: its config knobs and the shape of its curves."""

    variant: str
    norm: str = "none"
    final_acc: float = 0.9  # asymptote of the accuracy curve
    tau: float = 200.0  # accuracy time constant (steps)
    diverged_seeds: tuple[int, ...] = ()
    config: dict = field(default_factory=dict)
    p50_drift: float = 0.0  # total move of the sigmoid inputs' median over training
    spread_growth: float = 0.0  # ln of the 15-85 spread's growth over training
    sat: float = 0.02  # saturation fraction late in training
    kl: float = 0.01  # kl_gauss level
    depth: int = 3
    grad_l2: float | None = None
    grad_cos: float = 0.9
    grad_step0: float | None = None  # ||G - G'|| of the step-0 probe, where it differs
    landscape: float | None = None  # scale of the landscape quantities


def acc_at(spec: Spec, seed: int, step: float) -> float:
    """The accuracy curve: chance 0.1 rising to ``final_acc`` with time constant ``tau``, + seed offset."""
    return 0.1 + (spec.final_acc - 0.1) * (1 - math.exp(-step / spec.tau)) + 0.004 * (seed - 1)


def _sites(spec: Spec) -> list[str]:
    sites = []
    for i in range(spec.depth):
        sites.append(f"hidden.{i}.linear")
        if spec.norm != "none":
            sites.append(f"hidden.{i}.norm")
        sites.append(f"hidden.{i}.act")
    return sites + ["head"]


def write_variant_runs(root: Path, recipe: str, spec: Spec, seeds=SEEDS) -> list[Path]:
    """Write one run directory per seed under ``root/recipe/variant/seed{s}``."""
    return [write_run(root / recipe / spec.variant / f"seed{seed}", recipe, spec, seed) for seed in seeds]


def write_run(run_dir: Path, recipe: str, spec: Spec, seed: int) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    diverged = seed in spec.diverged_seeds
    last = STEPS // 2 if diverged else STEPS
    eval_steps = list(range(EVAL_EVERY, last + 1, EVAL_EVERY))
    measure_steps = list(range(0, last + 1, MEASURE_EVERY))

    # metrics.csv, Lightning CSVLogger style: one row per log call.
    rows = []
    for step in range(0, last, 50):
        rows.append({"epoch": step // 100, "step": step, "train/loss_step": 2.3 * math.exp(-step / spec.tau)})
    for step in eval_steps:
        acc = 0.1 if diverged and step == last else acc_at(spec, seed, step)
        rows.append({"epoch": step // 100, "step": step, "val/acc": acc, "val/loss": 1 - acc})
    if spec.grad_l2 is not None:
        for step in measure_steps:
            row = {"epoch": step // 100, "step": step}
            for i in range(spec.depth):
                l2 = spec.grad_l2 * (1 + 0.1 * i) * (1 + 0.05 * seed) * (1 + step / STEPS)
                if step == 0 and spec.grad_step0 is not None:
                    l2 = spec.grad_step0
                row |= {f"grad_ics/hidden.{i}.linear/l2": l2, f"grad_ics/hidden.{i}.linear/cos": spec.grad_cos,
                        f"grad_ics/hidden.{i}.linear/grad_norm": 0.1, f"grad_ics/hidden.{i}.linear/rel": l2 / 0.1}
            rows.append(row)
    if spec.landscape is not None:
        for step in measure_steps:
            s = spec.landscape * (1 + 0.03 * seed) * math.exp(-step / 400)
            rows.append({"epoch": step // 100, "step": step, "landscape/loss_range": s,
                         "landscape/grad_pred_max": 2 * s, "landscape/grad_pred_min": 0.5 * s,
                         "landscape/beta_smooth": 3 * s})  # fmt: skip
    pd.DataFrame(rows).to_csv(run_dir / "metrics.csv", index=False)

    # shift_history.csv and shift_histograms.npz.
    sites = _sites(spec)
    history, counts = [], []
    for k, step in enumerate(measure_steps):
        frac = step / STEPS
        per_site = []
        for site in sites:
            is_act = site.endswith(".act")
            p50 = spec.p50_drift * frac + 0.01 * seed
            spread = 2.0 * math.exp(spec.spread_growth * frac)
            kl = float("nan") if k == 0 else spec.kl * (1 + 0.1 * seed) * (1 + frac)
            history.append({
                "step": step, "epoch": step // 100, "site": site, "kl_gauss": kl,
                "js_hist": kl / 4, "mean_drift": math.sqrt(2 * kl) if k else float("nan"),
                "mean": p50, "std": spread / 2.07, "p15": p50 - spread / 2, "p50": p50, "p85": p50 + spread / 2,
                "sat_frac": spec.sat * frac * (1 + 0.05 * seed) if is_act else float("nan"),
                "dead_frac": float("nan"),
            })  # fmt: skip
            # A Gaussian of the same median and spread over BINS bins in [-6, 6] + 2 outside bins.
            z = (_CENTRES - p50) / (spread / 2.07)
            per_site.append(6000 * np.exp(-0.5 * z * z) / np.exp(-0.5 * z * z).sum())
        counts.append(per_site)
    write_shift_history(run_dir, history)
    write_shift_histograms(run_dir, measure_steps, np.asarray(counts), sites, [-6.0] * len(sites), [6.0] * len(sites))

    final = 0.1 if diverged else acc_at(spec, seed, last)
    write_run_result(run_dir, {
        "recipe": recipe, "variant": spec.variant, "seed": seed,
        "config": {"model": {"arch": "paper_mlp", "norm": spec.norm, "lr": 0.5, "activation": "sigmoid",
                             "num_classes": 10, "depth": spec.depth, **spec.config},
                   "data": {"class_path": "shiftkit.data.MNIST5k", "init_args": {"batch_size": spec.config.get("batch_size", 60)}},
                   "trainer": {"max_steps": STEPS}, "seed_everything": seed},
        "metrics": {"val/acc": final, "test/acc": final, "best_val_acc": final},
        "diverged": diverged, "diverged_step": last if diverged else None,
        "target_accuracy": TARGET, "steps": last, "wall_time_s": 1.0,
    })  # fmt: skip
    return run_dir


# ----------------------------------------------------------------------------- recipes

def fig1_specs() -> list[Spec]:
    return [Spec("plain", "none", final_acc=0.90, tau=300, p50_drift=-2.0, spread_growth=1.0, kl=0.05),
            Spec("bn", "batch", final_acc=0.95, tau=80, p50_drift=0.1, spread_growth=0.05, kl=0.005)]


def lr_specs() -> list[Spec]:
    out = []
    for mult, div_plain, div_bn, tau_bn in ((1, (), (), 200), (5, SEEDS, (), 60), (30, SEEDS, (1,), 40)):
        out.append(Spec(f"plain_x{mult}", "none", 0.9, 250, div_plain if mult > 1 else (), {"lr_multiplier": mult}))
        out.append(Spec(f"bn_x{mult}", "batch", 0.95, tau_bn, div_bn, {"lr_multiplier": mult}))
    return out


def init_specs() -> list[Spec]:
    out = []
    for scale in (0.01, 0.1, 1.0, 10.0):
        acc, div = (0.11, ()) if scale == 0.01 else (0.9, SEEDS if scale == 10 else ())
        out.append(Spec(f"plain_s{scale:g}", "none", acc, 200, div, {"init_scale": scale}))
        out.append(Spec(f"bn_s{scale:g}", "batch", 0.95, 100, (), {"init_scale": scale}))
    return out


def deep_sigmoid_specs() -> list[Spec]:
    """At the saturating init std 4: the plain net's inputs spread far beyond the sigmoid's range."""
    cfg = {"init": "normal", "init_std": 4.0}
    return [Spec("plain", "none", 0.4, 400, depth=6, sat=0.6, spread_growth=2.0, config=cfg),
            Spec("bn", "batch", 0.93, 100, depth=6, sat=0.05, config=cfg)]


def noisy_specs() -> list[Spec]:
    return [Spec("plain", "none", 0.88, 200, kl=0.01), Spec("bn", "batch", 0.94, 100, kl=0.005),
            Spec("noisy_bn", "noisy_batch", 0.935, 110, kl=0.2), Spec("noisy_plain", "noisy_none", 0.2, 200, kl=0.3),
            Spec("plain_d6", "none", 0.9, 200, kl=0.01, depth=6), Spec("noisy_plain_d6", "noisy_none", 0.15, 200, kl=0.3, depth=6)]


def grad_ics_specs() -> list[Spec]:
    return [Spec("plain", "none", 0.88, 200, grad_l2=0.02, grad_cos=0.95),
            Spec("bn", "batch", 0.94, 100, grad_l2=0.03, grad_cos=0.9)]


def landscape_specs() -> list[Spec]:
    return [Spec("plain", "none", 0.88, 200, landscape=10.0), Spec("bn", "batch", 0.94, 100, landscape=1.0)]


def syncbn_specs() -> list[Spec]:
    accs = {2: 0.80, 4: 0.86, 8: 0.90, 16: 0.918, 32: 0.921}
    out = [Spec(f"local_bs{n}", "batch", a, 150, config={"ghost_batch_size": n, "batch_size": 64}) for n, a in accs.items()]
    return out + [Spec("synced", "batch", 0.922, 150, config={"batch_size": 64})]


RECIPES = {
    "mnist_fig1": fig1_specs, "lr_multipliers": lr_specs, "init_scale": init_specs,
    "deep_sigmoid": deep_sigmoid_specs, "noisy_bn": noisy_specs, "grad_ics": grad_ics_specs,
    "landscape": landscape_specs, "syncbn_vs_local": syncbn_specs,
}  # fmt: skip


def write_recipe(root: Path, recipe: str, specs: list[Spec] | None = None, seeds=SEEDS) -> None:
    for spec in specs if specs is not None else RECIPES[recipe]():
        write_variant_runs(root, recipe, spec, seeds)


def write_all(root: Path, seeds=SEEDS) -> Path:
    for recipe in RECIPES:
        write_recipe(root, recipe, seeds=seeds)
    return root


__all__ = ["RECIPES", "SEEDS", "Spec", "TARGET", "replace", "write_all", "write_recipe", "write_run"]
