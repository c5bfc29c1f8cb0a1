"""Fixed-edge histograms, edge choice, strided subsample, percentiles (shiftkit.stats.histogram)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from shiftkit.stats import (
    HistogramEdges,
    ShiftAccumulator,
    SiteSpec,
    choose_edges,
    histogram_counts,
    histogram_percentiles,
    site_statistics,
)
from shiftkit.stats.histogram import edges_from_range, finite_extremes, strided_subsample

from .oracles import hist_counts

# ---------------------------------------------------------------- histogram_counts


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16], ids=str)
def test_counts_match_numpy_with_values_on_every_edge(dtype, gen):
    # Edges that float32 represents exactly (width 1/4), so "on an edge" is unambiguous.
    e = HistogramEdges(-2.0, 6.0, 32)
    edges = np.linspace(-2.0, 6.0, 33)
    x = torch.cat(
        [
            torch.randn(5000, generator=gen) * 3 + 2,
            torch.tensor(edges, dtype=torch.float32),  # every edge, lo and hi included
            torch.tensor([-2.0 - 2**-10, 6.0 - 2**-10, 1e30, -1e30, math.nan, math.inf, -math.inf]),
        ]
    ).to(dtype)
    got = histogram_counts(x, e)
    assert got.shape == (34,) and got.dtype == torch.float64
    expected = hist_counts(x.double().numpy(), -2.0, 6.0, 32)
    np.testing.assert_array_equal(got.numpy(), expected)
    assert got.sum().item() == torch.isfinite(x).sum().item()


@pytest.mark.parametrize(
    "lo,hi,bins,loc,scale",
    [(-0.3, 0.7, 50, 0.2, 0.3), (0.1, 0.9, 10, 0.5, 0.2), (999.9, 1000.1, 64, 1000.0, 0.05)],
)
def test_counts_match_numpy_up_to_float32_rounding_at_the_edges(lo, hi, bins, loc, scale, gen):
    """Non-dyadic edges: away from the edges binning is exact; within float32 rounding of an
    edge a value may land in the neighbouring bin (torch.histc bins in float32)."""
    x = (loc + scale * torch.randn(100000, generator=gen, dtype=torch.float64)).float()
    v = x.double().numpy()
    edges = np.linspace(lo, hi, bins + 1)
    tol = 4 * np.spacing(np.float32(max(abs(lo), abs(hi))))
    near = np.min(np.abs(v[:, None] - edges[None, :]), axis=1) <= tol
    far = torch.from_numpy(~near)
    np.testing.assert_array_equal(
        histogram_counts(x[far], HistogramEdges(lo, hi, bins)).numpy(),
        hist_counts(v[~near], lo, hi, bins),
    )
    # all values: cumulative counts differ by at most the number of near-edge values
    cdf_gap = np.cumsum(histogram_counts(x, HistogramEdges(lo, hi, bins)).numpy()) - np.cumsum(
        hist_counts(v, lo, hi, bins)
    )
    assert np.abs(cdf_gap).max() <= near.sum()


def test_histogram_edges_contract():
    e = HistogramEdges(-1.0, 3.0, 8)
    assert e.width == 0.5
    np.testing.assert_allclose(e.tensor().numpy(), np.linspace(-1.5, 3.5, 11), rtol=0, atol=1e-15)
    with pytest.raises(ValueError):
        HistogramEdges(0.0, 1.0, 1)
    with pytest.raises(ValueError):
        HistogramEdges(1.0, 1.0, 4)
    with pytest.raises(ValueError):
        HistogramEdges(0.0, math.inf, 4)


# ---------------------------------------------------------------- edge choice


def expected_edges(q_lo, q_hi, margin, bins=64):
    """The documented rule: widen by margin spans, then by half a bin, on each side."""
    span = q_hi - q_lo
    lo, hi = q_lo - margin * span, q_hi + margin * span
    pad = (hi - lo) / (2 * bins)
    return lo - pad, hi + pad


def test_choose_edges_from_finite_min_and_max(gen):
    x = torch.randn(10000, generator=gen) * 2 + 1
    x[:3] = torch.tensor([math.nan, math.inf, -math.inf])
    finite = x.double().numpy()[np.isfinite(x.numpy())]
    e = choose_edges(x)
    assert e.bins == 64
    np.testing.assert_allclose([e.lo, e.hi], expected_edges(finite.min(), finite.max(), 0.5), rtol=1e-6)


def test_choose_edges_margin_and_bins(gen):
    x = torch.rand(3001, generator=gen) * 10
    v = x.double().numpy()
    e = choose_edges(x, bins=10, margin=0.25)
    assert e.bins == 10
    np.testing.assert_allclose([e.lo, e.hi], expected_edges(v.min(), v.max(), 0.25, bins=10), rtol=1e-6)


def test_finite_extremes_merge_exactly_across_any_split(gen):
    """min/max of the parts = min/max of the whole: k ranks choose one process's edges."""
    x = torch.randn(999, generator=gen)
    parts = torch.stack([finite_extremes(p) for p in x.split([100, 500, 399])])
    assert parts[:, 0].min() == finite_extremes(x)[0] and parts[:, 1].max() == finite_extremes(x)[1]
    assert finite_extremes(torch.tensor([math.nan])).tolist() == [math.inf, -math.inf]


@pytest.mark.parametrize("value", [5.0, 0.0, -300.0])
def test_choose_edges_constant_sample_gets_a_small_valid_range(value):
    x = torch.full((100,), value)
    x[3] = math.nan
    e = choose_edges(x)
    min_span = max(1e-6 * abs(value), 1e-6)
    lo, hi = expected_edges(value - min_span / 2, value + min_span / 2, 0.5)
    assert e.lo == pytest.approx(lo, rel=1e-12, abs=1e-15)
    assert e.hi == pytest.approx(hi, rel=1e-12, abs=1e-15)
    # and its one value lands in an in-range bin
    counts = histogram_counts(x, e)
    assert counts[0] == 0 and counts[-1] == 0 and counts.sum() == 99


@pytest.mark.parametrize(
    "sample",
    [torch.full((10,), math.nan), torch.tensor([math.inf, -math.inf]), torch.zeros(0)],
    ids=["nan", "inf", "empty"],
)
def test_choose_edges_without_finite_values_falls_back_to_unit_range(sample):
    e = choose_edges(sample)
    assert (e.lo, e.hi) == expected_edges(-1.0, 1.0, 0.5)  # [-1, 1] widened as documented


def test_edges_from_range():
    e = edges_from_range(1.0, 3.0, 8, 0.5)
    assert (e.lo, e.hi, e.bins) == (-0.25, 4.25, 8)  # [0, 4] plus half a bin (0.25)
    fallback = expected_edges(-1.0, 1.0, 0.5)
    assert (edges_from_range(math.nan, 1.0).lo, edges_from_range(0.0, math.inf).hi) == fallback


def test_choose_edges_on_a_sample_above_2_pow_24():
    x = torch.linspace(0.0, 1.0, 2**24 + 1)
    e = choose_edges(x)
    np.testing.assert_allclose([e.lo, e.hi], expected_edges(0.0, 1.0, 0.5), atol=1e-6)


# ---------------------------------------------------------------- strided subsample


def test_subsample_of_a_small_tensor_is_everything(gen):
    x = torch.randn(10, 20, generator=gen)
    assert torch.equal(strided_subsample(x, 200), x.reshape(-1))


@pytest.mark.parametrize(
    "shape",
    [(4096, 64), (100, 7, 31), (3, 5, 7, 11, 13), (1, 65537), (128, 2, 3, 4, 5), (999, 1000)],
    ids=str,
)
def test_subsample_is_every_sth_element_and_at_most_the_budget(shape):
    x = torch.arange(math.prod(shape), dtype=torch.float64).reshape(shape)
    per_sample = x.numel() // shape[0]
    for max_elements in (1000, 4096, 65536):
        got = strided_subsample(x, max_elements)
        assert got.numel() <= max_elements
        # the docstring: s = smallest stride >= numel / max_elements coprime with per_sample
        s = max(1, math.ceil(x.numel() / max_elements))
        while s > 1 and math.gcd(s, per_sample) != 1:
            s += 1
        np.testing.assert_array_equal(got.numpy(), np.arange(x.numel())[::s][:max_elements])


def unit_shares(shape, unit_dim, max_elements, memory_format=torch.contiguous_format):
    """Share of each unit in the subsample; the elements carry their flat index as value."""
    idx = torch.arange(math.prod(shape), dtype=torch.float64).reshape(shape)
    x = idx.contiguous(memory_format=memory_format)
    picked = strided_subsample(x, max_elements).long().numpy()
    unit_of = np.moveaxis(np.indices(shape)[unit_dim % len(shape)], 0, 0).reshape(-1)
    return np.bincount(unit_of[picked], minlength=shape[unit_dim]) / picked.size


@pytest.mark.parametrize(
    "shape,unit_dim,max_elements",
    [
        ((4096, 64), -1, 4096),  # a naive stride of 64 would pick feature 0 only
        ((256, 8, 4, 4), 1, 256),  # a naive stride of 128 would pick channel 0, pixel 0 only
        ((32, 128, 64), -1, 4096),  # tokens: naive stride 64
        ((16, 12, 30, 30), 1, 4096),
        ((8, 3, 64, 64), 1, 5000),
    ],
    ids=str,
)
def test_subsample_covers_every_unit_in_proportion(shape, unit_dim, max_elements):
    shares = unit_shares(shape, unit_dim, max_elements)
    np.testing.assert_allclose(shares, 1 / shape[unit_dim], rtol=0.1)


def test_subsample_of_a_channels_last_tensor_covers_every_channel():
    shares = unit_shares((64, 16, 8, 8), 1, 2048, torch.channels_last)
    np.testing.assert_allclose(shares, 1 / 16, rtol=0.1)


# ---------------------------------------------------------------- percentiles


def test_percentiles_of_a_flat_histogram_by_hand():
    counts = torch.tensor([0.0, 1, 1, 1, 1, 0])  # uniform on [0, 4)
    got = histogram_percentiles(
        counts, torch.tensor(0.0), torch.tensor(4.0), (0.15, 0.5, 0.85, 0.25)
    )
    np.testing.assert_allclose(got.numpy(), [0.6, 2.0, 3.4, 1.0], rtol=1e-12)


def test_percentiles_in_underflow_and_overflow_bins_are_the_bounds():
    counts = torch.tensor([[5.0, 1, 1, 1, 1, 3], [0, 0, 0, 0, 0, 4], [4, 0, 0, 0, 0, 0]])
    lo, hi = torch.tensor([0.0, -1.0, 2.0]), torch.tensor([4.0, 1.0, 3.0])
    got = histogram_percentiles(counts, lo, hi, (0.1, 0.5, 0.9))
    # row 0: 5 of 12 below lo, 3 above hi; the median is the top of the first bin (cum 6 = 12/2)
    np.testing.assert_allclose(
        got.numpy(), [[0.0, 1.0, 4.0], [1.0, 1.0, 1.0], [2.0, 2.0, 2.0]], rtol=1e-12
    )


def test_percentiles_of_an_empty_histogram_are_nan():
    counts = torch.tensor([[0.0] * 6, [0, 2, 0, 0, 2, 0]])
    got = histogram_percentiles(
        counts, torch.tensor([0.0, 0.0]), torch.tensor([4.0, 4.0]), (0.5, 0.85)
    )
    assert torch.isnan(got[0]).all()
    # median: the CDF reaches 1/2 at the top of bin [0, 1); p85: 70% into bin [3, 4)
    np.testing.assert_allclose(got[1].numpy(), [1.0, 3.7], rtol=1e-12)


def test_percentiles_match_numpy_within_one_bin_batched(rng):
    n, bins, qs = 200000, 800, (0.025, 0.15, 0.5, 0.85, 0.975)
    samples = [
        rng.normal(3.0, 2.0, n),
        rng.exponential(1.5, n),
        np.concatenate([rng.normal(-4, 0.5, n // 3), rng.normal(2, 1.0, n - n // 3)]),
    ]
    edges = [choose_edges(torch.from_numpy(s).float(), bins=bins, margin=0.1) for s in samples]
    counts = torch.stack([histogram_counts(torch.from_numpy(s), e) for s, e in zip(samples, edges)])
    lo = torch.tensor([e.lo for e in edges], dtype=torch.float64)
    hi = torch.tensor([e.hi for e in edges], dtype=torch.float64)
    got = histogram_percentiles(counts, lo, hi, qs).numpy()
    assert got.shape == (3, len(qs))
    for row, s, e in zip(got, samples, edges):
        np.testing.assert_allclose(
            row, np.percentile(s, [100 * q for q in qs]), rtol=0, atol=e.width
        )


def test_percentiles_from_a_subsampled_4m_element_tensor_hit_the_cdf(gen):
    """(64, 16, 64, 64) activations, channels with different distributions; the histogram sees
    65536 strided elements: the full data's empirical CDF at p15/p50/p85 is within 0.01."""
    shape = (64, 16, 64, 64)
    loc = torch.linspace(-3, 3, 16).reshape(1, 16, 1, 1)
    scale = torch.linspace(0.3, 2, 16).reshape(1, 16, 1, 1)
    x = torch.randn(shape, generator=gen) * scale + loc
    acc = ShiftAccumulator([SiteSpec("conv", unit_dim=1)], hist_max_elements=65536)
    v = np.sort(x.numpy().ravel())
    for _ in range(2):  # the discovery measurement, then the hot path
        acc.observe(0, x)
        snap = acc.finish()
        assert snap.hist.sum().item() <= 65536
        stats = site_statistics(snap)
        for name, q in (("p15", 0.15), ("p50", 0.5), ("p85", 0.85)):
            cdf = np.searchsorted(v, stats[name].item(), side="right") / v.size
            assert cdf == pytest.approx(q, abs=0.01), name


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_counts_same_with_reused_memory_and_the_finite_hint(dtype, gen):
    """The accumulator's fast options (scratch buffers, finite=True) change no count, and the
    input is left as it was."""
    from shiftkit.stats.scratch import Scratch

    e = HistogramEdges(-1.5, 2.5, 16)
    x = (torch.randn(3000, generator=gen) * 1.5).to(dtype)
    before = x.clone()
    plain = histogram_counts(x, e)
    scratch = Scratch()
    for _ in range(2):  # the second call reuses the buffers of the first
        np.testing.assert_array_equal(histogram_counts(x, e, finite=True, scratch=scratch).numpy(), plain.numpy())
    assert scratch.nbytes >= 3000 * 8  # a float32 position and an int32 index per value
    np.testing.assert_array_equal(plain.numpy(), hist_counts(x.double().numpy(), -1.5, 2.5, 16))
    assert torch.equal(x, before)
