"""Decision rules flip when the data stop supporting a claim; too few seeds and missing recipes are said."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from shiftkit.records import read_runs
from shiftkit.report import build_report
from shiftkit.report.claims.base import Context
from shiftkit.report.claims.registry import CLAIMS_BY_ID
from shiftkit.report.cohort import group_cohorts
from tests.report import synthetic_runs as syn
from tests.report.conftest import claims_rows


def decide(tmp_path, claim_id: str, specs, seeds=syn.SEEDS):
    """Write ``specs`` as the claim's recipe and evaluate the claim (no figures)."""
    claim = CLAIMS_BY_ID[claim_id]
    syn.write_recipe(tmp_path, claim.recipe, specs, seeds)
    cohort = group_cohorts(read_runs(tmp_path))[claim.recipe]
    return claim.evaluate(claim, cohort, Context(out_dir=tmp_path / "out", figures=False))


def by_name(specs, **changes):
    """Copy ``specs`` with ``changes = {variant: {field: value}}`` applied."""
    return [replace(s, **changes.get(s.variant, {})) for s in specs]


def test_synthetic_recipes_reproduce(tmp_path):
    assert decide(tmp_path, "C1", syn.fig1_specs()).status == "yes"


def test_c1_no_when_bn_is_the_plain_net(tmp_path):
    plain = syn.fig1_specs()[0]
    out = decide(tmp_path, "C1", [plain, replace(plain, variant="bn", norm="batch")])
    assert out.status == "no"
    assert [c.passed for c in out.checks] == [False, False, False, False]


def test_c1_partly_when_only_the_accuracy_goes(tmp_path):
    specs = by_name(syn.fig1_specs(), bn={"p50_drift": -2.0, "spread_growth": 1.0})
    out = decide(tmp_path, "C1", specs)
    assert out.status == "partly"
    assert [c.passed for c in out.checks] == [True, True, False, False]


def test_c1_final_accuracy_is_judged_even_against_bn(tmp_path):
    # BN learns faster (tau 80 vs 300) but ends lower: the early check passes, the final one fails.
    specs = by_name(syn.fig1_specs(), bn={"final_acc": 0.85})
    out = decide(tmp_path, "C1", specs)
    assert [c.passed for c in out.checks][:2] == [True, False]
    bn_final, plain_final = (syn.acc_at(specs[i], 1, syn.STEPS) for i in (1, 0))  # seed offsets cancel
    assert out.checks[1].detail.startswith(f"{100 * (bn_final - plain_final):.3g} pts")


def test_c1_drift_falls_back_to_moments_when_percentiles_clamp(tmp_path):
    # The no-BN median walks to -8: its 15th percentile leaves the histogram's edges [-6, 6].
    out = decide(tmp_path, "C1", by_name(syn.fig1_specs(), plain={"p50_drift": -8.0}))
    assert [c.name for c in out.checks][2:] == ["median drift larger without BN (mean/sd, steps ≥ 200)",
                                                "spread drift larger without BN (mean/sd, steps ≥ 200)"]  # fmt: skip
    assert out.status == "yes" and "hit the fixed histogram edges in 3 of 6 runs" in out.notes[0]
    history = pd.read_csv(tmp_path / "mnist_fig1" / "plain" / "seed1" / "shift_history.csv")
    b = history[(history["site"] == "hidden.2.act") & (history["step"] >= 200)]  # after the burn-in only
    expected = (b["mean"].max() - b["mean"].min()) / b["std"].median()
    assert out.per_run[str(tmp_path / "mnist_fig1" / "plain" / "seed1")]["C1:median_drift"] == pytest.approx(expected)


def test_c2_a_run_at_chance_counts_as_unstable(tmp_path):
    # No BN x5 keeps a finite loss but sits at chance: not stable, whatever its loss.
    specs = by_name(syn.lr_specs(), plain_x5={"diverged_seeds": (), "final_acc": 0.1})
    out = decide(tmp_path, "C2", specs)
    assert out.numbers["max_stable_plain"] == 1
    assert all(out.per_run[str(tmp_path / "lr_multipliers" / "plain_x5" / f"seed{s}")]["C2:stable"] == 0 for s in syn.SEEDS)
    assert out.checks[0].passed is True


def test_c2_no_when_bn_diverges_at_every_higher_rate(tmp_path):
    specs = by_name(syn.lr_specs(), bn_x5={"diverged_seeds": syn.SEEDS}, bn_x30={"diverged_seeds": syn.SEEDS})
    out = decide(tmp_path, "C2", specs)
    assert out.numbers["max_stable_bn"] == out.numbers["max_stable_plain"] == 1
    assert [c.passed for c in out.checks] == [False, False, False] and out.status == "no"


def test_c2_speed_unresolved_when_every_seed_hits_the_target_at_the_first_validation(tmp_path):
    specs = by_name(syn.lr_specs(), bn_x1={"tau": 1.0}, bn_x5={"tau": 1.0})
    out = decide(tmp_path, "C2", specs)
    assert out.checks[2].passed is None and "unresolved" in out.checks[2].detail


def test_c3_flips_when_bn_fails_one_scale(tmp_path):
    out = decide(tmp_path, "C3", by_name(syn.init_specs(), **{"bn_s10": {"diverged_seeds": (2,)}}))
    # One seed of three at chance: the cell's interval straddles the threshold, so it does not train.
    assert out.status == "partly" and out.numbers["bn_trains"] == 3
    assert out.numbers["threshold"] == pytest.approx(0.1 + 0.5 * (syn.acc_at(syn.init_specs()[1], 1, syn.STEPS) - 0.1))


def test_c4_partly_when_saturation_is_equal(tmp_path):
    out = decide(tmp_path, "C4", by_name(syn.deep_sigmoid_specs(), bn={"sat": 0.6}))
    assert out.status == "partly" and [c.passed for c in out.checks] == [True, True, False]


def test_c4_sigmoid_derivative_is_read_from_the_histograms(tmp_path):
    from shiftkit.records import read_run
    from shiftkit.report.claims.c4_deep_sigmoid import sigmoid_derivative

    out = decide(tmp_path, "C4", syn.deep_sigmoid_specs())
    assert out.status == "yes"
    run = read_run(tmp_path / "deep_sigmoid" / "bn" / "seed0")
    h = run.histograms
    i, keep = list(h["sites"]).index("hidden.0.act"), h["steps"] >= 200
    c = h["counts"][keep, i, :]
    x = syn._CENTRES.copy()
    x[0], x[-1] = -6.0, 6.0  # the outside bins count at the edges
    s = 1 / (1 + np.exp(-x))
    expected = np.mean((c * s * (1 - s)).sum(axis=1) / c.sum(axis=1))
    assert sigmoid_derivative(run, ["hidden.0.act"], 200)["hidden.0.act"] == pytest.approx(expected)


def test_c5_checks_follow_the_numbers(tmp_path):
    out = decide(tmp_path, "C5", by_name(syn.noisy_specs(), noisy_bn={"final_acc": 0.7}))
    assert [c.passed for c in out.checks] == [False, True, True, True, True] and out.status == "partly"
    out = decide(tmp_path / "b", "C5", by_name(syn.noisy_specs(), noisy_plain_d6={"final_acc": 0.875}))
    assert [c.passed for c in out.checks] == [True, True, True, True, False]


def test_c5_shift_is_judged_at_the_noise_sites_only(tmp_path):
    # A huge shift at the linear inputs (no noise there) must not count: only `.act` sites do.
    out = decide(tmp_path, "C5", syn.noisy_specs())
    assert out.details.count("`hidden.") == 3 and "hidden.0.linear" not in out.details


def test_c6_step_zero_probe_does_not_decide(tmp_path):
    # BN's step-0 probe is 100x the plain net's (as in real runs), later BN's is a tenth of it.
    specs = by_name(syn.grad_ics_specs(), bn={"grad_l2": 0.002, "grad_step0": 2.0})
    out = decide(tmp_path, "C6", specs)
    assert [c.passed for c in out.checks] == [False, False, True] and out.status == "partly"
    # Averaging every probe, step 0 included, would have said the opposite: BN's ICS is larger.
    metrics = pd.read_csv(tmp_path / "grad_ics" / "bn" / "seed0" / "metrics.csv")
    plain = pd.read_csv(tmp_path / "grad_ics" / "plain" / "seed0" / "metrics.csv")
    col = "grad_ics/hidden.1.linear/rel"
    assert metrics[col].mean() > plain[col].mean()


def test_c6_first_layer_is_not_judged(tmp_path):
    out = decide(tmp_path, "C6", syn.grad_ics_specs())
    assert [c.name.split(":")[0] for c in out.checks[:-1]] == ["hidden.1.linear", "hidden.2.linear"]


def test_c7_no_when_landscapes_match(tmp_path):
    out = decide(tmp_path, "C7", by_name(syn.landscape_specs(), bn={"landscape": 10.0}))
    assert out.status == "no"
    assert out.numbers["ratio_loss_range"] == pytest.approx(1.0)


def test_c7_large_factor_check(tmp_path):
    out = decide(tmp_path, "C7", by_name(syn.landscape_specs(), bn={"landscape": 6.0}))
    # 10 / 6 = 1.67: smaller with BN, but not by a large factor.
    assert [c.passed for c in out.checks] == [True, True, True, False] and out.status == "partly"


def test_c8_partly_when_large_per_device_batch_lags(tmp_path):
    out = decide(tmp_path, "C8", by_name(syn.syncbn_specs(), local_bs16={"final_acc": 0.85}))
    assert out.status == "partly"
    assert [c.name for c in out.checks if c.passed is False] == ["per-device batch 16 within 1.5 pts of synced"]


def test_fewer_than_three_seeds_is_flagged_in_the_table(tmp_path):
    syn.write_recipe(tmp_path / "runs", "mnist_fig1", seeds=(0, 1))
    result = build_report([tmp_path / "runs"], tmp_path / "out", figures=False, progress=False)
    row = claims_rows(result.readme.read_text())["C1"]
    assert row[4] == "**yes** ⚠ n=2 < 3 seeds"
    assert "Fewer than 3 seeds: C1 (n=2)" in result.readme.read_text()


def test_missing_recipes_are_listed_as_not_run(tmp_path):
    syn.write_recipe(tmp_path / "runs", "mnist_fig1")
    result = build_report([tmp_path / "runs"], tmp_path / "a", figures=False, progress=False)
    text = result.readme.read_text()
    assert list(claims_rows(text)) == ["C1"]
    assert "Not run in these records: C2 (`lr_multipliers`), C3 (`init_scale`)" in text
    result = build_report([tmp_path / "runs"], tmp_path / "b", claims=["C1", "C8"], figures=False, progress=False)
    rows = claims_rows(result.readme.read_text())
    assert rows["C8"][4] == "not run" and "no runs of recipe `syncbn_vs_local`" in rows["C8"][3]


def test_unknown_claim_and_empty_dir_are_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown claim"):
        build_report([tmp_path], tmp_path / "o", claims=["C9"], progress=False)
    with pytest.raises(ValueError, match="no run records"):
        build_report([tmp_path], tmp_path / "o", progress=False)
