"""The report of the synthetic runs: every figure is a real PNG of sensible size, and every number of
the claims table equals an independent calculation from the files (plain pandas/numpy here)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from tests.report.conftest import claims_rows, measured, png_size, read_result, run_dirs
from tests.report.synthetic_runs import RECIPES

EXPECTED_FIGURES = {
    "C1_fig1.png", "C2_lr_grid.png", "C3_init_grid.png", "C4_saturation.png", "C5_noisy_bn.png",
    "C6_grad_ics.png", "C7_landscape.png", "C8_syncbn.png",
    "mnist_fig1_heatmap_kl_gauss.png", "mnist_fig1_colorful.png",
    "deep_sigmoid_heatmap_kl_gauss.png", "deep_sigmoid_colorful.png", "noisy_bn_heatmap_kl_gauss.png",
}  # fmt: skip


def sd(values) -> float:
    return float(np.std(np.asarray(values, dtype=float), ddof=1))


def val_acc(run_dir) -> pd.Series:
    """val/acc by step, straight from the Lightning CSV."""
    m = pd.read_csv(run_dir / "metrics.csv")
    return m.dropna(subset=["val/acc"]).set_index("step")["val/acc"]


def assert_summary(got, values, scale=1.0, digits_tol=None):
    mean, spread, n = got
    assert n == len(values)
    tol = digits_tol if digits_tol is not None else 5e-4 * max(1.0, abs(scale * np.mean(values)))
    assert mean == pytest.approx(scale * np.mean(values), abs=tol)
    assert spread == pytest.approx(scale * sd(values), abs=max(tol, 0.006 * scale * sd(values)))


def test_every_figure_is_a_png_of_sensible_size(full_report):
    out = full_report.out_dir
    files = {f.file for f in full_report.figures}
    assert files == EXPECTED_FIGURES
    readme = (out / "README.md").read_text()
    for name in files:
        path = out / name
        width, height = png_size(path)
        assert 400 <= width <= 3000 and 200 <= height <= 2000, (name, width, height)
        assert path.stat().st_size > 15_000, name  # a blank canvas compresses to a few KB
        assert f"]({name})" in readme, f"{name} is not shown in the README"


def test_results_csv_has_one_row_per_run_with_the_records_numbers(full_report, synthetic_root):
    results = pd.read_csv(full_report.results_csv)
    dirs = sorted(p.parent for p in synthetic_root.rglob("result.json"))
    assert len(results) == len(dirs) == 96
    for d in dirs[::7]:
        rec = read_result(d)
        row = results[(results["recipe"] == rec["recipe"]) & (results["variant"] == rec["variant"])
                      & (results["seed"] == rec["seed"])]  # fmt: skip
        assert len(row) == 1
        assert row["final_acc"].iloc[0] == pytest.approx(rec["metrics"]["test/acc"], rel=1e-9)
        assert bool(row["diverged"].iloc[0]) == rec["diverged"]
    # The per-run numbers a claim used are columns of results.csv and average to the table's.
    c1 = measured(claims_rows(full_report.readme.read_text())["C1"])
    (quantity,) = [q for q in c1 if q.startswith("acc @ step")]
    bn = results[(results["recipe"] == "mnist_fig1") & (results["variant"] == "bn")]
    assert 100 * bn["C1:early_acc"].mean() == pytest.approx(c1[quantity]["BN"][0], abs=0.006)
    meta = json.loads((full_report.out_dir / "report.json").read_text())
    assert meta["n_runs"] == 96 and meta["recipes"] == sorted(RECIPES)
    assert [c["status"] for c in meta["claims"]] == ["yes"] * 8


def test_c1_numbers_equal_an_independent_calculation(full_report, synthetic_root):
    row = measured(claims_rows(full_report.readme.read_text())["C1"])
    groups = {"no BN": run_dirs(synthetic_root, "mnist_fig1", "plain"), "BN": run_dirs(synthetic_root, "mnist_fig1", "bn")}
    curves = {k: [val_acc(d) for d in v] for k, v in groups.items()}
    steps = sorted(set().union(*(c.index for cs in curves.values() for c in cs)))
    early = min(s for s in steps if s >= 0.1 * max(steps))
    (quantity,) = [q for q in row if q.startswith("acc @ step")]
    assert quantity == f"acc @ step {early}"
    for label, cs in curves.items():
        assert_summary(row[quantity][label], [c[c.index <= early].iloc[-1] for c in cs], scale=100, digits_tol=0.006)
        reached = [c[c >= 0.85].index[0] for c in cs]
        assert_summary(row["steps to 85%"][label], reached, digits_tol=0.5)

    def drift(d):
        h = pd.read_csv(d / "shift_history.csv")
        site = h.dropna(subset=["sat_frac"])["site"].iloc[-1]
        b = h[h["site"] == site].sort_values("step")
        spread = (b["p85"] - b["p15"]).to_numpy()
        return (b["p50"].max() - b["p50"].min()) / np.median(spread), math.log(spread.max() / spread.min())

    for label, dirs in groups.items():
        d = [drift(x) for x in dirs]
        got = row["median drift (hidden.2.act, percentiles)"][label]
        assert got[0] == pytest.approx(np.mean([x[0] for x in d]), rel=1e-3)
        assert row["spread drift (hidden.2.act, percentiles)"][label][0] == pytest.approx(np.mean([x[1] for x in d]), rel=1e-3)


def test_c2_c3_grid_numbers(full_report, synthetic_root):
    rows = claims_rows(full_report.readme.read_text())
    stable = {}
    for fam in ("plain", "bn"):
        mults = {}
        for d in sorted((synthetic_root / "lr_multipliers").glob(f"{fam}_x*/seed*")):
            rec = read_result(d)
            mults.setdefault(rec["config"]["model"]["lr_multiplier"], []).append(rec["diverged"])
        stable[fam] = max((m for m, div in mults.items() if not any(div)), default=0)
    n_div = {fam: sum(read_result(d)["diverged"] for d in (synthetic_root / "lr_multipliers").glob(f"{fam}_x*/seed*"))
             for fam in ("plain", "bn")}  # fmt: skip
    assert f"max stable multiplier: BN x{stable['bn']:g} vs no BN x{stable['plain']:g}" in rows["C2"][3]
    assert f"diverged seeds: BN {n_div['bn']}/9, no BN {n_div['plain']}/9" in rows["C2"][3]
    # C3: a scale trains when no seed diverged and every seed reached the target (0.85).
    trains = {"plain": 0, "bn": 0}
    for fam in trains:
        for scale_dir in sorted((synthetic_root / "init_scale").glob(f"{fam}_s*")):
            recs = [read_result(d) for d in scale_dir.glob("seed*")]
            trains[fam] += all(not r["diverged"] and r["metrics"]["test/acc"] >= 0.85 for r in recs)
    assert f"BN trains at {trains['bn']}/4 scales" in rows["C3"][3]
    assert f"no BN trains at {trains['plain']}/4 scales" in rows["C3"][3]


def test_c4_c5_numbers(full_report, synthetic_root):
    rows = claims_rows(full_report.readme.read_text())
    c4 = measured(rows["C4"])
    for label, variant in (("no BN", "plain"), ("BN", "bn")):
        per_run = []
        for d in run_dirs(synthetic_root, "deep_sigmoid", variant):
            h = pd.read_csv(d / "shift_history.csv").dropna(subset=["sat_frac"])
            per_site = [g[g["step"] >= 0.9 * g["step"].max()]["sat_frac"].mean() for _, g in h.groupby("site")]
            per_run.append(np.mean(per_site))
        assert_summary(c4["late saturation, mean over layers"][label], per_run, scale=100, digits_tol=0.006)
        accs = [read_result(d)["metrics"]["test/acc"] for d in run_dirs(synthetic_root, "deep_sigmoid", variant)]
        assert_summary(c4["final acc"][label], accs, scale=100, digits_tol=0.006)

    c5_cells = rows["C5"][3].split("<br>")
    variants = {"no BN": "plain", "BN": "bn", "noisy BN": "noisy_bn", "noisy no BN": "noisy_plain"}
    hist = {k: [pd.read_csv(d / "shift_history.csv") for d in run_dirs(synthetic_root, "noisy_bn", v)] for k, v in variants.items()}
    common = set.intersection(*(set(h["site"]) for hs in hist.values() for h in hs))
    shift = {k: [h[h["site"].isin(common)].groupby("step")["kl_gauss"].mean().dropna().mean() for h in hs]
             for k, hs in hist.items()}  # fmt: skip
    line = measured([None, None, None, c5_cells[1]])["mean kl_gauss"]
    assert_summary(line["noisy BN"], shift["noisy BN"])
    assert_summary(line["no BN"], shift["no BN"])
    acc = {k: [read_result(d)["metrics"]["test/acc"] for d in run_dirs(synthetic_root, "noisy_bn", v)] for k, v in variants.items()}
    first = measured([None, None, None, c5_cells[0]])["final acc"]
    assert_summary(first["noisy BN"], acc["noisy BN"], scale=100, digits_tol=0.006)
    assert_summary(first["BN"], acc["BN"], scale=100, digits_tol=0.006)


def test_c6_c7_c8_numbers(full_report, synthetic_root):
    rows = claims_rows(full_report.readme.read_text())
    c6 = measured(rows["C6"])
    for label, variant in (("no BN", "plain"), ("BN", "bn")):
        for layer in ("hidden.0.linear", "hidden.2.linear"):
            col = f"grad_ics/{layer}/l2"
            values = [pd.read_csv(d / "metrics.csv")[col].dropna().mean() for d in run_dirs(synthetic_root, "grad_ics", variant)]
            assert_summary(c6[f"{layer} ‖G−G′‖"][label], values)
    c7 = measured(rows["C7"])
    for label, variant in (("no BN", "plain"), ("BN", "bn")):
        for q in ("loss_range", "grad_pred_max", "beta_smooth"):
            values = []
            for d in run_dirs(synthetic_root, "landscape", variant):
                m = pd.read_csv(d / "metrics.csv").dropna(subset=[f"landscape/{q}"])
                values.append(m[m["step"] <= 0.5 * m["step"].max()][f"landscape/{q}"].mean())
            assert_summary(c7[f"early {q}"][label], values)
    c8 = measured(rows["C8"])
    synced = [read_result(d)["metrics"]["test/acc"] for d in run_dirs(synthetic_root, "syncbn_vs_local", "synced")]
    for n in (2, 4, 16, 32):
        local = [read_result(d)["metrics"]["test/acc"] for d in run_dirs(synthetic_root, "syncbn_vs_local", f"local_bs{n}")]
        assert_summary(c8[f"batch {n}/device"]["per-device"], local, scale=100, digits_tol=0.006)
        assert_summary(c8[f"batch {n}/device"]["synced"], synced, scale=100, digits_tol=0.006)
    assert "batch 8/device" not in c8  # between the judged sizes: reported in the section, not judged
