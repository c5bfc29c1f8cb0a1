"""The report figures: the numbers they are drawn from (zoom ranges, shared y ranges, colour-scale
clips, histogram rows), and what one render of each puts on its axes (captured before saving)."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from shiftkit.report.figures import colorful, fig1, heatmap, noisy_bn, saturation
from shiftkit.report.figures.style import accuracy_panel, accuracy_zoom, palette
from tests.report.conftest import png_size

C5_LABELS = ["no BN", "BN", "noisy BN", "noisy no BN", "no BN (depth 6)", "noisy no BN (depth 6)"]


@pytest.fixture
def captured(monkeypatch):
    """Each figure a module saves, kept open for inspection (still saved, title and all)."""
    figs = []

    def patch(module):
        real = module.save

        def keep(fig, *args, **kwargs):
            figs.append(fig)
            with monkeypatch.context() as m:  # the real save closes the figure: not this time
                m.setattr(plt, "close", lambda *a, **k: None)
                return real(fig, *args, **kwargs)

        monkeypatch.setattr(module, "save", keep)
        return figs

    yield patch
    for fig in figs:
        plt.close(fig)


def acc_frame(curves: dict[str, dict[int, list[float]]]) -> pd.DataFrame:
    """``label, seed, step, acc`` from ``{label: {step: [acc % per seed]}}``."""
    rows = [
        {"label": label, "seed": i, "step": step, "acc": a / 100}
        for label, by_step in curves.items()
        for step, accs in by_step.items()
        for i, a in enumerate(accs)
    ]
    return pd.DataFrame(rows)


def npz(steps, sites, lo, hi, counts) -> dict[str, np.ndarray]:
    return {
        "steps": np.asarray(steps),
        "sites": np.asarray(sites),
        "lo": np.asarray(lo, dtype=float),
        "hi": np.asarray(hi, dtype=float),
        "counts": np.asarray(counts, dtype=float),
    }


# ----------------------------------------------------------------------------- style


def test_palette_gives_a_variant_one_colour_in_every_figure():
    two, six = palette(["no BN", "BN"]), palette(C5_LABELS)
    assert two["BN"] == six["BN"] and two["no BN"] == six["no BN"]
    assert len(set(six.values())) == 6  # C5's six variants are told apart
    # Any depth of a family shares the depth-6 colour; unnamed labels take the free ones in order.
    assert (
        palette(["noisy no BN (depth 12)"])["noisy no BN (depth 12)"]
        == six["noisy no BN (depth 6)"]
    )
    other = palette(["per-device BN", "synced BN"])
    assert list(other.values()) == list(palette(["no BN", "BN"]).values())
    mixed = palette(["BN", "mystery"])
    assert mixed["mystery"] != mixed["BN"]


def test_accuracy_zoom_is_computed_from_the_curves_after_the_first_steps():
    acc = acc_frame(
        {
            "no BN": {100: [10, 10], 200: [50, 50], 300: [80, 80], 400: [89, 91], 500: [92, 92]},
            "BN": {100: [85, 85], 200: [88, 88], 300: [90, 90], 400: [93, 93], 500: [94, 94]},
        }
    )
    lo, hi = accuracy_zoom(acc, skip_steps=3, percentile=0, pad=0.1, room=0.5)
    # Steps 400 and 500 only; the lowest mean - sd is no BN at 400: 90 - sd(89, 91) = 90 - sqrt(2).
    data_lo, data_hi = 90 - math.sqrt(2), 94.0
    span = data_hi - data_lo
    assert lo == pytest.approx(data_lo - 0.5 * span) and hi == pytest.approx(data_hi + 0.1 * span)
    assert accuracy_zoom(acc, skip_steps=5) == (0.0, 101.0)  # nothing left: the full range
    # mean + sd = 99 + sqrt(2) passes 100; accuracy cannot: the data top is 100, then padded.
    near_top = acc_frame({"BN": {1: [10, 10], 2: [98, 100], 3: [98, 100]}})
    assert accuracy_zoom(near_top, skip_steps=1)[1] == pytest.approx(
        100 + 0.08 * (1 + math.sqrt(2))
    )


def test_a_zoomed_accuracy_panel_counts_the_points_it_hides():
    acc = acc_frame(
        {
            "no BN": {100: [10, 12], 200: [60, 60], 300: [91, 93]},
            "BN": {100: [88, 88], 300: [94, 94]},
        }
    )
    fig, ax = plt.subplots()
    accuracy_panel(ax, acc, ["no BN", "BN"], palette(["no BN", "BN"]), ylim=(80.0, 95.0))
    assert ax.get_ylim() == (80.0, 95.0)
    title = ax.get_legend().get_title().get_text()
    assert "2 early points below the axis (lowest 11%)" in title  # no BN at 100 (mean 11) and 200
    plt.close(fig)


# ----------------------------------------------------------------------------- C1


def test_fig1_zooms_panel_a_and_draws_edges_unlike_any_percentile(tmp_path, captured):
    figs = captured(fig1)
    acc = acc_frame(
        {
            "no BN": {s: [min(95, 10 + s / 5)] * 2 for s in range(100, 1100, 100)},
            "BN": {s: [90 + s / 500] * 2 for s in range(100, 1100, 100)},
        }
    )
    band = pd.DataFrame(
        {
            "step": [0, 50, 100],
            "p15": [-1.0, -1.2, -1.1],
            "p50": [0, 0.1, 0.0],
            "p85": [1.0, 1.3, 1.2],
        }
    )
    path = fig1.plot_fig1(
        acc,
        {"no BN": band, "BN": None},
        tmp_path / "c1.png",
        site="s",
        seed=0,
        order=["no BN", "BN"],
        edges={"no BN": (-3.0, 3.0), "BN": None},
        burn_in=50,
    )
    assert png_size(path)[0] > 100
    (fig,) = figs
    a, b, c = fig.axes[:3]
    assert a.get_ylim() == pytest.approx(accuracy_zoom(acc))
    assert a.get_ylim()[0] > 50  # not 0-100
    edges = [ln for ln in b.get_lines() if ln.get_color() == "0.45"]
    assert sorted(ln.get_ydata()[0] for ln in edges) == [-3.0, 3.0]
    assert {ln.get_linestyle() for ln in edges} == {":"}
    percentile_styles = {ln.get_linestyle() for ln in b.get_lines() if ln not in edges}
    assert percentile_styles == {"--", "-", "-."}  # p85, p50, p15: none dotted like the edges
    assert "no percentiles for BN" in [t.get_text() for t in c.texts]


# ----------------------------------------------------------------------------- colorful


def test_site_ranges_are_the_union_over_variants_with_the_threshold():
    one = lambda lo, hi: npz([0], ["a"], [lo], [hi], np.ones((1, 1, 6)))
    hists = {"no BN": one(-2, 2), "BN": one(-6, 6)}  # bin widths 1 and 3; strips 3 bins each
    assert colorful.site_ranges(hists, ["a"]) == {"a": (-15.0, 15.0)}
    narrow = {"no BN": one(-1, 1)}  # strips of 3 x 0.5: [-2.5, 2.5]; the threshold 4 must show
    assert colorful.site_ranges(narrow, ["a"], {"a": 4.0}) == {"a": pytest.approx((-4.2, 4.2))}
    assert colorful.site_ranges(narrow, ["b"]) == {"b": (-1.0, 1.0)}  # no variant has it


def test_colorful_shares_each_sites_y_range_and_drops_empty_columns(tmp_path, captured):
    figs = captured(colorful)
    counts = np.zeros((3, 3, 6))
    counts[:, 0, 2] = counts[:, 1, 3] = 10  # site c (index 2) never measured: all zero
    hists = {
        "no BN": npz([0, 10, 20], ["a", "b", "c"], [-2, -1, -1], [2, 1, 1], counts),
        "BN": npz([0, 10, 20], ["a", "b"], [-6, -8], [6, 8], counts[:, :2]),
    }
    colorful.plot_colorful(
        hists,
        tmp_path / "col.png",
        sites=["a", "b", "c"],
        seed=0,
        title="t",
        saturation=4.0,
        saturating_sites={"b"},
    )
    (fig,) = figs
    assert [ax.get_title() for ax in fig.axes[:2]] == ["a", "b"]  # c dropped
    grid = np.array(fig.axes[:4]).reshape(2, 2)
    for j in range(2):
        assert grid[0, j].get_ylim() == grid[1, j].get_ylim()  # no BN and BN rows comparable
    assert grid[0, 1].get_ylim() == pytest.approx((-8 - 3 * 4, 8 + 3 * 4))
    thresholds = sorted(
        ln.get_ydata()[0] for ln in grid[0, 1].get_lines() if ln.get_linestyle() == "-."
    )
    assert thresholds == [-4.0, 4.0]
    assert not [
        ln for ln in grid[0, 0].get_lines() if ln.get_linestyle() == "-."
    ]  # a: not saturating


# ----------------------------------------------------------------------------- heat map


def test_colour_scale_is_clipped_at_the_stated_percentile():
    values = np.arange(1.0, 101.0)
    cs = heatmap.colour_scale(values, "kl_gauss", clip_percentile=99)
    assert cs.norm.vmax == pytest.approx(np.percentile(values, 99)) == pytest.approx(99.01)
    assert cs.clipped_at == pytest.approx(99.01) and cs.extend == "max" and cs.scale == "linear"
    full = heatmap.colour_scale(values, "kl_gauss", clip_percentile=None)
    assert full.norm.vmax == 100 and full.clipped_at is None and full.extend == "neither"
    decades = np.array([1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0, np.nan])
    log = heatmap.colour_scale(decades, "kl_gauss", clip_percentile=50)
    assert log.scale == "log" and log.norm.vmin == pytest.approx(1e-4)
    assert log.norm.vmax == pytest.approx(np.percentile(decades[:-1], 50))
    signed = heatmap.colour_scale(np.array([-10.0, -1, 0, 1, 2]), "mean", clip_percentile=80)
    lim = np.percentile([10, 1, 0, 1, 2], 80)
    assert signed.scale == "signed" and (signed.norm.vmin, signed.norm.vmax) == (-lim, lim)
    assert signed.extend == "both"


def test_heat_values_subtract_the_noise_floor_only_when_recorded():
    df = pd.DataFrame(
        {
            "label": ["BN"] * 4,
            "site": ["a"] * 4,
            "step": [50, 50, 100, 100],
            "seed": [0, 1, 0, 1],
            "value": [0.5, 0.7, 0.2, 0.4],
            "kl_gauss_floor": [0.1, 0.3, 0.3, 0.5],
        }
    )
    minus, used = heatmap.heat_values(df, "kl_gauss", subtract_floor=True)
    assert used and minus.loc[("BN", "a", 50)] == pytest.approx(0.4)
    assert minus.loc[("BN", "a", 100)] == pytest.approx(-0.1)  # within the noise
    plain, used = heatmap.heat_values(df, "kl_gauss")
    assert not used and plain.loc[("BN", "a", 50)] == pytest.approx(0.6)
    _, used = heatmap.heat_values(
        df.drop(columns="kl_gauss_floor"), "kl_gauss", subtract_floor=True
    )
    assert not used


def test_heatmap_names_its_reference_floor_and_clip(tmp_path, captured):
    figs = captured(heatmap)
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        [
            {
                "label": lab,
                "seed": s,
                "site": site,
                "step": step,
                "value": v,
                "kl_gauss_floor": 0.05,
            }
            for lab in ("no BN", "BN")
            for s in (0, 1)
            for site in ("a", "b")
            for step, v in zip(range(0, 500, 50), rng.uniform(0.01, 0.3, 10))
        ]
    )
    df.loc[(df["site"] == "b") & (df["step"] == 100), "value"] = 0.04  # below the floor 0.05
    heatmap.plot_shift_heatmap(
        df,
        tmp_path / "h.png",
        stat="kl_gauss",
        sites=["a", "b"],
        order=["no BN", "BN"],
        title="T",
        reference="the measurement 50 steps earlier",
        subtract_floor=True,
    )
    (fig,) = figs
    assert fig._suptitle.get_text() == (
        "T\nkl_gauss vs the measurement 50 steps earlier, minus its noise floor, mean over seeds"
    )
    bar = fig.axes[-1].get_ylabel()
    assert "minus noise floor" in bar and "clipped at the 99th percentile" in bar
    assert "white: at or below the noise floor" in bar


# ----------------------------------------------------------------------------- C5


def test_pick_steps_spreads_over_training_and_refuses_unmeasured_steps():
    measured = list(range(0, 1500, 50))
    assert noisy_bn.pick_steps(measured, n=5) == [0, 350, 700, 1100, 1450]
    assert noisy_bn.pick_steps([0, 10], n=5) == [0, 10]  # duplicates dropped
    assert noisy_bn.pick_steps(measured, [100, 0]) == [100, 0]
    with pytest.raises(
        ValueError, match=r"steps \[120\] were not measured.*nearest measured: \[100\]"
    ):
        noisy_bn.pick_steps(measured, [120])


def test_site_densities_read_the_rows_of_the_asked_steps_and_site():
    # Site "b" (index 1), bins of width 2 on [-4, 4]: at measurement t all in-range mass sits in
    # bin t, plus t values under and 2 over, of 10 in all.
    counts = np.zeros((3, 2, 6))
    for t in range(3):
        counts[t, 1, 0], counts[t, 1, 1 + t], counts[t, 1, 5] = t, 8 - t, 2
        counts[t, 0, 3] = 100  # site "a": must not leak in
    h = npz([0, 10, 20], ["a", "b"], [-1, -4], [1, 4], counts)
    d = noisy_bn.site_densities(h, "b", [20, 0])
    assert d["edges"].tolist() == [-4, -2, 0, 2, 4]
    assert d["density"].argmax(axis=1).tolist() == [2, 0]  # step 20 is row 2, step 0 row 0
    assert d["density"][0, 2] == pytest.approx(0.6 / 2)  # 6 of 10 values per unit of width 2
    assert d["under"].tolist() == [0.2, 0.0] and d["over"].tolist() == [0.2, 0.2]
    with pytest.raises(ValueError, match="step 5 was not measured"):
        noisy_bn.site_densities(h, "b", [5])
    with pytest.raises(ValueError, match="no site 'c'"):
        noisy_bn.site_densities(h, "c", [0])


def test_distribution_over_steps_draws_a_ridge_per_step_per_variant(tmp_path, captured):
    figs = captured(noisy_bn)
    counts = np.zeros((4, 1, 10))
    counts[:, 0, 3:7] = 5
    h = npz([0, 10, 20, 30], ["act"], [-2], [2], counts)
    g = npz([0, 10, 20, 30], ["other"], [-2], [2], counts)
    noisy_bn.plot_distribution_over_steps(
        {"BN": h, "noisy BN": h, "no BN": g},
        tmp_path / "d.png",
        site="act",
        steps=[0, 20, 30],
        seed=3,
    )
    (fig,) = figs
    ax_bn, _, ax_plain = fig.axes
    assert [t.get_text() for t in ax_bn.get_yticklabels()] == ["step 0", "step 20", "step 30"]
    assert len(ax_bn.get_lines()) == 3 + 1  # three ridges and the base line
    assert "absent in no BN" in ax_plain.texts[0].get_text()
    assert "seed 3" in fig._suptitle.get_text()
    with pytest.raises(ValueError, match="no variants"):
        noisy_bn.plot_distribution_over_steps({}, tmp_path / "e.png", site="act")


def test_noisy_bn_draws_each_seed_in_six_distinct_colours(tmp_path, captured):
    figs = captured(noisy_bn)
    acc = acc_frame(
        {
            lab: {s: [90 - 10 * i + seed for seed in range(3)] for s in (100, 200)}
            for i, lab in enumerate(C5_LABELS)
        }
    )
    acc.loc[(acc["label"] == "noisy no BN") & (acc["seed"] == 0), "acc"] = 0.1  # one seed at chance
    shift = acc.rename(columns={"acc": "value"})
    judged = pd.DataFrame(
        [
            {"label": lab, "seed": s, "stat": st, "value": 0.01 * (i + 1) + 0.001 * s}
            for i, lab in enumerate(C5_LABELS)
            for s in range(3)
            for st in ("js_hist", "mean_drift")
        ]
    )
    noisy_bn.plot_noisy_bn(
        acc,
        shift,
        tmp_path / "c5.png",
        order=C5_LABELS,
        stat="kl_gauss",
        judged=judged,
        burn_in=150,
    )
    (fig,) = figs
    final_ax = fig.axes[2]
    points = [c for c in final_ax.collections if len(c.get_offsets()) == 3]  # a point per seed
    assert len(points) == 6
    assert len({tuple(c.get_facecolor()[0]) for c in points}) == 6
    chance = [c for c in points if np.isclose(c.get_offsets()[:, 1].min(), 10.0)]
    assert len(chance) == 1  # the chance seed is its own point, not hidden in a mean
    assert [ax.get_title() for ax in fig.axes if ax.get_visible()][3:] == [
        "(d) js_hist as judged, per seed",
        "(e) mean_drift as judged, per seed",
    ]


# ----------------------------------------------------------------------------- C4


def test_saturation_adds_the_sigmoid_derivative_panel_with_the_threshold(tmp_path, captured):
    assert saturation.sigmoid_derivative_at(0.0) == 0.25
    assert saturation.sigmoid_derivative_at(-4.0) == pytest.approx(0.017663, abs=1e-6)
    figs = captured(saturation)
    acc = acc_frame({"no BN": {100: [10, 10]}, "BN": {100: [90, 92]}})
    sat = pd.DataFrame(
        [
            {
                "label": lab,
                "seed": s,
                "layer": k,
                "sat_frac": 0.5 if lab == "no BN" else 0.01,
                "sigmoid_deriv": 0.02 if lab == "no BN" else 0.2,
            }
            for lab in ("no BN", "BN")
            for s in (0, 1)
            for k in (1, 2)
        ]
    )
    saturation.plot_saturation(
        acc, sat, tmp_path / "a.png", order=["no BN", "BN"], threshold_note="w"
    )
    saturation.plot_saturation(
        acc,
        sat.drop(columns="sigmoid_deriv"),
        tmp_path / "b.png",
        order=["no BN", "BN"],
        threshold_note="w",
        threshold=3,
    )
    with_deriv, without = figs
    assert len(with_deriv.axes) == 3 and len(without.axes) == 2
    c = with_deriv.axes[2]
    assert sorted(ln.get_ydata()[0] for ln in c.get_lines() if ln.get_linestyle() == "-.") == [
        pytest.approx(0.017663, abs=1e-6)
    ]
    assert without.axes[1].get_ylabel() == "inputs with |x| > 3 (%)"


# ----------------------------------------------------------------------------- C6, C7


def test_grad_ics_rows_and_a_constant_layer_says_so(tmp_path, captured):
    from shiftkit.report.figures import grad_ics

    figs = captured(grad_ics)
    rows = []
    for lab in ("no BN", "BN"):
        for s in (0, 1):
            for step in (0, 50, 100):
                rows.append(
                    {
                        "label": lab,
                        "seed": s,
                        "layer": "first",
                        "step": step,
                        "l2": 0.0,
                        "rel": 0.0,
                        "cos": 1.0,
                    }
                )
                rows.append(
                    {
                        "label": lab,
                        "seed": s,
                        "layer": "second",
                        "step": step,
                        "l2": 0.1 + step,
                        "rel": 0.01 * (s + 1),
                        "cos": 0.9,
                    }
                )
    df = pd.DataFrame(rows)
    grad_ics.plot_grad_ics(
        df,
        tmp_path / "g.png",
        layers=["first", "second"],
        order=["no BN", "BN"],
        rows=("rel", "cos"),
        burn_in=50,
        judged_layers=["second"],
    )
    (fig,) = figs
    axes = np.array(fig.axes).reshape(2, 2)
    assert axes[0, 0].get_ylabel() == grad_ics.ROW_LABELS["rel"]
    assert axes[0, 0].texts[0].get_text().startswith("rel = 0 at every step")
    assert not axes[0, 0].get_lines()  # no flat line drawn
    assert axes[0, 1].get_title() == "second" and axes[0, 0].get_title() == "first (not judged)"
    assert axes[0, 1].get_lines()  # the varying layer is drawn
    assert axes[1, 1].get_xticks().size  # the shared x axis keeps its ticks
    with pytest.raises(ValueError, match="unknown rows"):
        grad_ics.plot_grad_ics(df, tmp_path / "x.png", layers=["first"], order=["BN"], rows=("l3",))


def test_landscape_judged_window_starts_after_burn_in(tmp_path, captured):
    from shiftkit.report.figures import landscape

    figs = captured(landscape)
    df = pd.DataFrame(
        [
            {
                "label": lab,
                "seed": 0,
                "step": step,
                "loss_range": 1.0 + step,
                "grad_pred_min": 0.1,
                "grad_pred_max": 0.2,
                "beta_smooth": 2.0,
            }
            for lab in ("no BN", "BN")
            for step in range(0, 500, 50)
        ]
    )
    landscape.plot_landscape(
        df, tmp_path / "l.png", order=["no BN", "BN"], early_step=300.0, burn_in=100
    )
    (fig,) = figs
    spans = {p.get_label(): p.get_x() for p in fig.axes[0].patches}
    assert spans["judged window"] == 100.0 and spans["before burn-in: not judged"] == 0.0
