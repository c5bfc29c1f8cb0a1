"""ShiftAccumulator + site_statistics against numpy/scipy/torch.distributions on the raw data.

Tolerances: each observe() reduces in float32 and the buffer adds in float64, so statistics built
from moments agree with the float64 oracle to ~1e-7 relative (asserted: rtol 1e-6); histogram
statistics are exact (counts are integers; subsampling is switched off with a large
``hist_max_elements``). Merge tests use dyadic data whose float32 sums are exact, so that a
merged state can be compared with the whole one to 1e-9 (in fact bit for bit).
"""

from __future__ import annotations

import io
import itertools
import math
import pickle

import numpy as np
import pytest
import torch

from shiftkit.records.names import DIVERGENCE_STATS, percentile_names
from shiftkit.stats import (
    ShiftAccumulator,
    SiteSpec,
    Snapshot,
    overflowed,
    site_statistics,
    statistics_table,
    torch_distributed_all_reduce,
)
from shiftkit.stats.accumulator import Layout
from shiftkit.stats.moments import FIELDS

from .oracles import (
    FakeGroup,
    dyadic,
    finite_mean_var,
    shift_oracle,
    site_oracle,
    site_values,
    symmetric_dyadic,
    units_view,
)

SITES = [
    SiteSpec("fc", -1),
    SiteSpec("conv", 1),
    SiteSpec("relu", -1, rectifier=True),
    SiteSpec("tanh", 1, saturation_threshold=2.0),
]
BINS = 32
NO_SUBSAMPLE = 10**9
MOMENT_STATS = ("mean", "std", "kl_gauss", "mean_drift", "mean_drift_max", "std_log_ratio")


def make_acc(sites=SITES, **kw):
    kw.setdefault("bins", BINS)
    kw.setdefault("hist_max_elements", NO_SUBSAMPLE)
    return ShiftAccumulator(sites, **kw)


def measurement_data(gen, m: int, n: int = 48) -> list[tuple[int, torch.Tensor]]:
    """The observations (site, tensor) of measurement ``m``; the distributions move with m."""
    fc = torch.randn(n + n // 2, 12, generator=gen) * (1 + 0.3 * m) + 0.4 * m
    if m == 1:
        fc[3, 2], fc[7, 5], fc[40, 0] = math.nan, math.inf, -math.inf
    conv = (
        torch.randn(n // 4, 6, 5, 5, generator=gen) * (1 + 0.4 * m)
        + torch.linspace(-1, 1, 6).reshape(1, 6, 1, 1) * m
    )
    if m == 2:
        conv[0, 1, 2, 3] = math.nan
    relu = torch.randn(n, 10, generator=gen) + 0.3 * m - 0.5
    relu[:, :2] = -relu[:, :2].abs()  # two dead units
    tanh = torch.randn(n // 2, 4, 9, generator=gen) * (1.5 + 0.5 * m)
    # fc is observed twice (a shared module / two micro-batches)
    return [(0, fc[:n]), (1, conv), (2, relu), (3, tanh), (0, fc[n:])]


def feed(acc: ShiftAccumulator, observations) -> None:
    for i, x in observations:
        acc.observe(i, x)


def raw_by_site(observations, num_sites=None):
    out = [[] for _ in range(num_sites or len(SITES))]
    for i, x in observations:
        out[i].append(x)
    return out


def oracle_for(snap: Snapshot, observations, sites=SITES, bins=BINS) -> list[dict]:
    raw = raw_by_site(observations, len(sites))
    return [
        site_oracle(
            site_values(raw[i], s.unit_dim),
            snap.layout.lo[i],
            snap.layout.hi[i],
            bins,
            s.saturation_threshold,
        )
        for i, s in enumerate(sites)
    ]


def stats_row(stats: dict, i: int) -> dict:
    return {k: v[i].item() for k, v in stats.items()}


@pytest.fixture
def three_measurements(gen):
    acc = make_acc()
    data = [measurement_data(gen, m) for m in range(3)]
    snaps = []
    for obs in data:
        feed(acc, obs)
        snaps.append(acc.finish())
    return acc, data, snaps


def test_layout_after_discovery(three_measurements):
    acc, data, snaps = three_measurements
    layout = snaps[0].layout
    assert layout.units == (12, 6, 10, 4)
    assert layout.offsets == (0, 12, 18, 28)
    assert snaps[0].fields.shape == (len(FIELDS), 32) and snaps[0].hist.shape == (4, BINS + 2)
    assert acc.never_seen == [] and acc.shape_mismatch == set()
    # edges: the finite min / max of the first measurement, widened by half a span a side
    for i, spec in enumerate(SITES):
        v = site_values(raw_by_site(data[0])[i], None)
        q_lo, q_hi = v[np.isfinite(v)].min(), v[np.isfinite(v)].max()
        span = q_hi - q_lo
        pad = 2 * span / (2 * BINS)  # half a bin of the widened range (twice the span)
        np.testing.assert_allclose(
            [layout.lo[i], layout.hi[i]],
            [q_lo - span / 2 - pad, q_hi + span / 2 + pad],
            rtol=0,
            atol=1e-6 * span,
        )
        assert snaps[2].layout == layout  # fixed for the rest of the run


def test_sums_of_squares_are_taken_about_the_previous_mean(three_measurements):
    _, data, snaps = three_measurements
    assert torch.equal(snaps[0].shift, torch.zeros(32, dtype=torch.float64))
    for m in (1, 2):
        means = np.concatenate(
            [
                finite_mean_var(site_values(raw_by_site(data[m - 1])[i], s.unit_dim))[0]
                for i, s in enumerate(SITES)
            ]
        )
        np.testing.assert_allclose(
            snaps[m].shift.numpy(), means.astype(np.float32), rtol=1e-6, atol=1e-7
        )


@pytest.mark.parametrize(
    "pair", [(0, None), (1, 0), (2, 1), (2, 0)], ids=["m0", "m1_vs_m0", "m2_vs_m1", "m2_vs_m0"]
)
def test_site_statistics_match_numpy(three_measurements, pair):
    _, data, snaps = three_measurements
    b, a = pair
    cur = snaps[b]
    stats = site_statistics(cur, None if a is None else snaps[a], sites=SITES)
    oracle_b = oracle_for(cur, data[b])
    oracle_a = None if a is None else oracle_for(cur, data[a])
    for i, spec in enumerate(SITES):
        got, want = stats_row(stats, i), oracle_b[i]
        assert got["mean"] == pytest.approx(want["mean"], rel=1e-6, abs=1e-7), spec.name
        assert got["std"] == pytest.approx(want["std"], rel=1e-6), spec.name
        assert got["nonfinite"] == want["nonfinite"], spec.name
        # percentiles: within one bin of numpy's, clamped to [lo, hi] as documented
        lo, hi = cur.layout.lo[i], cur.layout.hi[i]
        finite = units_view(torch.cat([x.reshape(-1) for x in raw_by_site(data[b])[i]]), None)
        finite = finite[np.isfinite(finite)]
        for name, q in (("p15", 15), ("p50", 50), ("p85", 85)):
            assert got[name] == pytest.approx(
                np.clip(np.percentile(finite, q), lo, hi), abs=(hi - lo) / BINS
            ), (spec.name, name)
        if spec.rectifier:
            # 1 - (#x > 0)/n against (#x <= 0)/n: equal up to one rounding
            assert got["dead_frac"] == pytest.approx(want["dead_frac"], rel=1e-14)
            assert got["dead_units"] == want["dead_units"] == 0.2
        else:
            assert math.isnan(got["dead_frac"]) and math.isnan(got["dead_units"])
        if spec.saturation_threshold is not None:
            assert got["sat_frac"] == want["sat_frac"] > 0
        else:
            assert math.isnan(got["sat_frac"])
        np.testing.assert_array_equal(cur.hist[i].numpy(), want["hist"])
        if oracle_a is None:
            assert all(math.isnan(stats[name][i]) for name in DIVERGENCE_STATS)
            continue
        expected = shift_oracle(want, oracle_a[i])
        for name in MOMENT_STATS[2:]:
            assert got[name] == pytest.approx(expected[name], rel=1e-6, abs=2e-7), (spec.name, name)
        for name in ("kl_hist", "js_hist"):
            assert got[name] == pytest.approx(expected[name], rel=1e-9), (spec.name, name)


def test_statistic_names(three_measurements):
    _, _, snaps = three_measurements
    assert percentile_names((0.15, 0.5, 0.85, 0.025)) == ["p15", "p50", "p85", "p2.5"]
    names = set(site_statistics(snaps[1], snaps[0], quantiles=(0.025, 0.5), noise_floor=False))
    assert names == {"mean", "std", "nonfinite", "hist_outside", "p2.5", "p50"} | set(DIVERGENCE_STATS) - {
        "kl_gauss_floor"
    }


@pytest.mark.parametrize("huge_at", [1, 0], ids=["in_cur", "in_ref"])
def test_statistics_table_is_site_statistics_plus_the_overflow_row(gen, huge_at):
    # The monitor's one table: the same rows as site_statistics, and overflowed() under the given
    # name (an overflow in either snapshot flags the site).
    acc = make_acc()
    snaps = []
    for m in range(2):
        obs = measurement_data(gen, m)
        if m == huge_at:
            obs[2] = (2, obs[2][1] * 1e30)  # relu: float32 squares overflow
        feed(acc, obs)
        snaps.append(acc.finish())
    names, table = statistics_table(snaps[1], snaps[0], sites=SITES, overflow="_overflow")
    expected = site_statistics(snaps[1], snaps[0], sites=SITES)
    assert names == [*list(expected)[:1], "_overflow", *list(expected)[1:]]
    for j, name in enumerate(names):
        want = overflowed(snaps[1], snaps[0]) if name == "_overflow" else expected[name]
        np.testing.assert_array_equal(table[j], want.numpy(), err_msg=name)
    assert table[names.index("_overflow")].tolist() == [0.0, 0.0, 1.0, 0.0]


def test_torch_distributed_all_reduce_is_a_no_op_in_one_process():
    t = torch.arange(4.0)
    torch_distributed_all_reduce(t, "sum")
    assert t.tolist() == [0.0, 1.0, 2.0, 3.0]


def test_all_reduce_protocol_and_rank_agreement(gen):
    """Discovery uses one MAX, every measurement one SUM of the flat buffer; ranks end equal."""
    data = [[measurement_data(gen, m) for m in range(2)] for _ in range(2)]
    group, (snaps0, snaps1) = run_two_ranks(data)
    assert group.calls == [["max", "sum", "sum"]] * 2
    for s0, s1 in zip(snaps0, snaps1):
        assert_same_snapshot(s0, s1)
    # and the merged counts are the sums of both ranks' data
    n_fc = sum(torch.isfinite(x).sum().item() for r in range(2) for i, x in data[r][1] if i == 0)
    assert snaps0[1].fields[0, :12].sum().item() == n_fc


# ---------------------------------------------------------------- known shift and noise floor


def test_known_mean_shift(gen):
    delta, n, units = -0.5, 4000, 16
    acc = make_acc([SiteSpec("x")])
    snaps = []
    for loc in (0.0, delta):
        acc.observe(0, torch.randn(n, units, generator=gen, dtype=torch.float64) + loc)
        snaps.append(acc.finish())
    s = stats_row(site_statistics(snaps[1], snaps[0]), 0)
    floor = 1 / n + 1 / n  # the closed form of the expected KL between two samples
    assert 0.5 * floor < s["kl_gauss_floor"] < 1.6 * floor
    assert s["kl_gauss"] - s["kl_gauss_floor"] == pytest.approx(delta**2 / 2, rel=0.1)
    assert s["mean_drift"] == pytest.approx(abs(delta), abs=0.03)
    assert s["std_log_ratio"] == pytest.approx(0.0, abs=0.02)


def test_noise_floor_predicts_kl_between_unchanged_measurements(gen):
    acc = make_acc([SiteSpec("x"), SiteSpec("c", 1)])
    snaps = []
    for _ in range(25):
        acc.observe(0, torch.randn(128, 16, generator=gen) * 2 + 1)
        acc.observe(1, torch.randn(32, 4, 3, 3, generator=gen) - 1)
        snaps.append(acc.finish())
    pairs = [site_statistics(b, a) for a, b in itertools.pairwise(snaps)]
    kl = torch.stack([p["kl_gauss"] for p in pairs]).mean(0)
    floor = torch.stack([p["kl_gauss_floor"] for p in pairs]).mean(0)
    np.testing.assert_allclose(kl.numpy(), [2 / 128, 2 / 288], rtol=0.2)
    np.testing.assert_allclose(floor.numpy(), kl.numpy(), rtol=0.2)


# ---------------------------------------------------------------- merge = whole


def exact_measurements(gen, n=16):
    """Per rank, two measurements of dyadic data (float32 sums exact).

    Measurement 0: both ranks hold the same multiset per unit (so per-rank edge quantiles equal
    the whole's), symmetric about a multiple of 1/4 (so the next shift is exact); one site is
    seen by rank 1 only. Measurement 1: unrelated data per rank, with NaN/Inf on rank 0.
    """
    shapes = {0: (n, 12), 1: (n // 2, 6, 5, 5), 2: (n, 10), 3: (n // 2, 4, 9)}
    centres = {i: dyadic((s[SITES[i].unit_dim],), gen, 8) for i, s in shapes.items()}
    base = {i: symmetric_dyadic(s, SITES[i].unit_dim, centres[i], gen) for i, s in shapes.items()}
    perm = torch.randperm(n // 2, generator=gen)
    m0 = [
        [(i, x) for i, x in base.items() if i != 3],
        [
            (i, x[perm[: x.shape[0]] if x.shape[0] == n // 2 else torch.randperm(n, generator=gen)])
            for i, x in base.items()
        ],
    ]
    m1 = [[(i, dyadic(s, gen)) for i, s in shapes.items()] for _ in range(2)]
    m1[0][0][1][1, 3], m1[0][0][1][2, 4], m1[0][1][1][0, 0, 0, 0] = math.nan, math.inf, -math.inf
    m1[1].append((0, dyadic((n // 2, 12), gen)))  # a second call on rank 1
    return [[m0[r], m1[r]] for r in range(2)]


def assert_same_snapshot(a: Snapshot, b: Snapshot) -> None:
    assert_same_layout(a.layout, b.layout)
    assert (
        torch.equal(a.fields, b.fields)
        and torch.equal(a.hist, b.hist)
        and torch.equal(a.shift, b.shift)
    )


def assert_same_layout(a: Layout, b: Layout) -> None:
    """Field by field, NaN equal to NaN (unseen sites have NaN edges)."""
    for k, v in a.to_dict().items():
        np.testing.assert_array_equal(v, b.to_dict()[k], err_msg=k)


def run_two_ranks(per_rank, **acc_kw):
    """Two accumulators on two threads joined by a FakeGroup.

    Returns the group and each rank's list of snapshots."""

    def rank(r):
        def body(all_reduce):
            acc = make_acc(**acc_kw)
            out = []
            for obs in per_rank[r]:
                feed(acc, obs)
                out.append(acc.finish(all_reduce=all_reduce))
            return out

        return body

    group = FakeGroup(2)
    return group, group.run(rank(0), rank(1))


def run_whole(per_rank, **acc_kw):
    acc = make_acc(**acc_kw)
    out = []
    for m in range(len(per_rank[0])):
        feed(acc, per_rank[0][m] + per_rank[1][m])  # the same calls, one after the other
        out.append(acc.finish())
    return out


def all_stats(snaps):
    return [site_statistics(snaps[0], sites=SITES)] + [
        site_statistics(b, a, sites=SITES) for a, b in itertools.pairwise(snaps)
    ]


def test_merged_packed_state_equals_the_whole(gen):
    per_rank = exact_measurements(gen)
    merged, whole = run_two_ranks(per_rank)[1][0], run_whole(per_rank)
    assert merged[1].shift.abs().sum() > 0  # the second measurement's sums are about a real shift
    for sm, sw in zip(merged, whole):
        assert_same_snapshot(sm, sw)
    for gm, gw in zip(all_stats(merged), all_stats(whole)):
        assert gm.keys() == gw.keys()
        for k in gm:
            np.testing.assert_allclose(gm[k].numpy(), gw[k].numpy(), rtol=1e-9, err_msg=k)
    # and the whole is right: the rank-1-only site has rank 1's count, the NaN/Infs are counted
    s = site_statistics(whole[1], whole[0], sites=SITES)
    assert s["nonfinite"].tolist() == [2.0, 1.0, 0.0, 0.0]
    assert whole[0].fields[0, 28:].tolist() == [8 * 9] * 4


def test_merged_gaussian_data_agrees_to_float32_rounding(gen):
    """Realistic data: per-rank float32 reductions differ from the whole's by rounding only,
    and the histograms agree exactly (edges from min/max are the same for any split)."""
    per_rank = [[measurement_data(gen, m) for m in range(2)] for _ in range(2)]
    merged, whole = run_two_ranks(per_rank)[1][0], run_whole(per_rank)
    np.testing.assert_allclose(
        merged[1].fields.numpy(), whole[1].fields.numpy(), rtol=1e-6, atol=1e-4
    )
    gm, gw = site_statistics(merged[1], merged[0]), site_statistics(whole[1], whole[0])
    for k in MOMENT_STATS:
        np.testing.assert_allclose(gm[k].numpy(), gw[k].numpy(), rtol=1e-5, err_msg=k)
    assert merged[1].layout == whole[1].layout
    assert torch.equal(merged[1].hist, whole[1].hist)
    for k in ("kl_hist", "js_hist", "p15", "p50", "p85"):
        np.testing.assert_allclose(gm[k].numpy(), gw[k].numpy(), rtol=1e-12, err_msg=k)


def test_several_observe_calls_fold_like_one_call_on_the_concatenation(gen):
    # symmetric dyadic data: the next shift (this mean) is exact, so every float32 sum is exact
    xs = symmetric_dyadic((20, 7, 3), 1, dyadic((7,), gen, 8), gen).split([6, 10, 4])
    split, joined = make_acc([SiteSpec("s", 1)]), make_acc([SiteSpec("s", 1)])
    for m in range(2):
        for x in xs:
            split.observe(0, x + m)
        joined.observe(0, torch.cat(xs) + m)
        a, b = split.finish(), joined.finish()
        rows = [FIELDS.index(f) for f in ("count", "sum", "sumsq", "nonfinite", "flag")]
        assert torch.equal(a.fields[rows], b.fields[rows]) and torch.equal(a.hist, b.hist)
        # the split halves are the first halves of each call (3 + 5 + 2 rows), by design
        assert a.fields[FIELDS.index("count_h")].tolist() == [10 * 3] * 7
        assert b.fields[FIELDS.index("count_h")].tolist() == [10 * 3] * 7
    sa, sb = site_statistics(a, a), site_statistics(b, b)
    for k in set(sa) - {"kl_gauss_floor"}:
        np.testing.assert_allclose(sa[k].numpy(), sb[k].numpy(), rtol=1e-12, err_msg=k)


def test_histogram_subsampling_leaves_moments_exact(gen):
    x = torch.randn(64, 8, 16, 16, generator=gen)
    acc = make_acc([SiteSpec("c", 1)], hist_max_elements=1000)
    acc.observe(0, x)
    snap = acc.finish()
    assert snap.hist.sum().item() <= 1000
    assert snap.fields[0].tolist() == [64 * 256] * 8
    s = site_statistics(snap)
    assert s["mean"].item() == pytest.approx(x.double().mean().item(), abs=1e-7)
    assert s["std"].item() == pytest.approx(x.double().std(unbiased=False).item(), rel=1e-6)


# ---------------------------------------------------------------- sites that come, go, change


def test_never_observed_site_is_dropped_after_discovery_rounds(gen):
    acc = make_acc([SiteSpec("a"), SiteSpec("ghost")], discovery_rounds=2)
    acc.observe(0, torch.randn(8, 3, generator=gen))
    acc.finish()
    assert acc.never_seen == [] and 1 not in acc.dropped
    acc.observe(0, torch.randn(8, 3, generator=gen))
    acc.finish()
    assert acc.never_seen == ["ghost"] and 1 in acc.dropped
    acc.observe(1, torch.randn(8, 5, generator=gen))  # too late: ignored
    acc.observe(0, torch.randn(8, 3, generator=gen))
    snap = acc.finish()
    assert snap.layout.units == (3, 0)
    s = site_statistics(snap)
    assert math.isnan(s["mean"][1].item()) and s["mean"][0].item() == pytest.approx(
        snap.fields[1].sum().item() / 24
    )


def test_site_first_seen_at_measurement_two_is_appended(gen):
    acc = make_acc([SiteSpec("late", 1), SiteSpec("early")])
    early = [torch.randn(20, 5, generator=gen) + m for m in range(3)]
    late = [torch.randn(10, 3, 4, generator=gen) * (1 + m) for m in range(3)]
    acc.observe(1, early[0])
    s0 = acc.finish()
    for m in (1, 2):
        acc.observe(0, late[m])
        acc.observe(1, early[m])
        if m == 1:
            s1 = acc.finish()
    s2 = acc.finish()
    assert s0.layout.units == (0, 5) and s1.layout.units == (3, 5)
    assert s1.layout.offsets == (5, 0)  # appended after the existing columns
    st1 = site_statistics(s1, s0)
    assert st1["mean"][0].item() == pytest.approx(late[1].double().mean().item(), abs=1e-7)
    assert math.isnan(st1["kl_gauss"][0].item()) and math.isnan(st1["kl_hist"][0].item())
    assert st1["kl_gauss"][1].item() > 0
    # one measurement later the late site has a reference of its own
    st2 = site_statistics(s2, s1)
    u1, u2 = units_view(late[1], 1), units_view(late[2], 1)
    want = shift_oracle(
        {"unit_mean": u2.mean(1), "unit_var": u2.var(1), "hist": np.ones(1)},
        {"unit_mean": u1.mean(1), "unit_var": u1.var(1), "hist": np.ones(1)},
    )
    assert st2["kl_gauss"][0].item() == pytest.approx(want["kl_gauss"], rel=1e-6)


def test_snapshot_extended_to_a_newer_layout(gen):
    acc = make_acc([SiteSpec("a"), SiteSpec("b")])
    acc.observe(0, torch.randn(6, 4, generator=gen))
    s0 = acc.finish()
    acc.observe(0, torch.randn(6, 4, generator=gen))
    acc.observe(1, torch.randn(6, 3, generator=gen))
    s1 = acc.finish()
    ext = s0.extended_to(s1.layout)
    assert ext.layout == s1.layout and ext.fields.shape == s1.fields.shape == (len(FIELDS), 7)
    assert torch.equal(ext.fields[:, :4], s0.fields) and torch.equal(
        ext.fields[:, 4:], torch.zeros(len(FIELDS), 3, dtype=torch.float64)
    )
    assert torch.equal(ext.shift, torch.cat([s0.shift, torch.zeros(3, dtype=torch.float64)]))
    assert torch.equal(ext.hist, s0.hist)
    assert s0.extended_to(s0.layout) is s0


def test_unit_count_change_is_recorded_and_skipped(gen):
    acc = make_acc([SiteSpec("a"), SiteSpec("b", 1)])
    good = torch.randn(10, 4, generator=gen)
    acc.observe(0, good)
    acc.observe(1, torch.randn(5, 3, 2, generator=gen))
    acc.observe(1, torch.randn(5, 4, 2, generator=gen))  # changes within discovery: dropped
    acc.finish()
    assert acc.shape_mismatch == {1} and 1 in acc.dropped
    acc.observe(0, good)
    acc.observe(0, torch.randn(10, 5, generator=gen))  # changes later: this call is skipped
    acc.observe(1, torch.randn(5, 3, 2, generator=gen))
    snap = acc.finish()
    assert acc.shape_mismatch == {0, 1}
    assert snap.fields[0].tolist() == [10.0] * 4
    s = site_statistics(snap)
    assert s["mean"][0].item() == pytest.approx(good.double().mean().item(), abs=1e-7)
    assert math.isnan(s["mean"][1].item())


def test_pooled_site_first_measurement(gen):
    x = torch.randn(16, 10, generator=gen) * torch.linspace(1, 3, 10) + torch.arange(10.0)
    acc = make_acc([SiteSpec("wide")], max_units=8)
    acc.observe(0, x)
    snap = acc.finish()
    assert snap.layout.pooled == (True,) and snap.layout.units == (1,)
    s = site_statistics(snap)
    assert s["mean"].item() == pytest.approx(x.double().mean().item(), rel=1e-6)
    assert s["std"].item() == pytest.approx(x.double().std(unbiased=False).item(), rel=1e-6)


def test_pooled_site_second_measurement(gen):
    acc = make_acc([SiteSpec("wide")], max_units=8)
    xs = [torch.randn(16, 10, generator=gen) + m for m in range(2)]
    snaps = []
    for x in xs:
        acc.observe(0, x)
        snaps.append(acc.finish())
    want = shift_oracle(
        {
            "unit_mean": np.array([xs[1].double().mean().item()]),
            "unit_var": np.array([xs[1].double().var(unbiased=False).item()]),
            "hist": np.ones(1),
        },
        {
            "unit_mean": np.array([xs[0].double().mean().item()]),
            "unit_var": np.array([xs[0].double().var(unbiased=False).item()]),
            "hist": np.ones(1),
        },
    )
    assert site_statistics(snaps[1], snaps[0])["kl_gauss"].item() == pytest.approx(
        want["kl_gauss"], rel=1e-6
    )


# ---------------------------------------------------------------- checkpointing


def test_state_dict_round_trip_gives_identical_snapshots(gen):
    sites = SITES + [SiteSpec("late"), SiteSpec("ghost")]
    data = [measurement_data(gen, m) for m in range(4)]
    data[2].append((4, torch.randn(12, 3, generator=gen)))  # discovered after the checkpoint
    data[3].append((4, torch.randn(12, 3, generator=gen)))
    acc = make_acc(sites)
    for obs in data[:2]:
        feed(acc, obs)
        acc.finish()
    buf = io.BytesIO()
    torch.save(acc.state_dict(), buf)
    buf.seek(0)
    resumed = make_acc(sites)
    resumed.load_state_dict(torch.load(buf))
    for obs in data[2:]:
        feed(acc, obs)
        feed(resumed, obs)
        a, b = acc.finish(), resumed.finish()
        assert_same_snapshot(a, b)
    assert b.layout.units[4] == 3
    # discovery resumes where it was: the third round (after the checkpoint) drops the ghost
    assert acc.never_seen == resumed.never_seen == ["ghost"]


def test_layout_equality_survives_a_round_trip():
    layout = Layout((3, 0), (0, 3), (False, False), (-1.0, math.nan), (1.0, math.nan))
    assert pickle.loads(pickle.dumps(layout)) == layout


def test_load_state_dict_refuses_other_sites_or_bins():
    state = make_acc().state_dict()
    with pytest.raises(ValueError, match="other sites or bins"):
        make_acc(SITES[:2]).load_state_dict(state)
    with pytest.raises(ValueError, match="other sites or bins"):
        make_acc(bins=16).load_state_dict(state)


def test_snapshot_state_dict_round_trip(three_measurements):
    _, _, snaps = three_measurements
    back = Snapshot.from_state_dict(snaps[2].state_dict())
    assert back.layout == snaps[2].layout
    assert torch.equal(back.fields, snaps[2].fields) and torch.equal(back.hist, snaps[2].hist)
