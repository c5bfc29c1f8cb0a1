"""Divergences (shiftkit.stats.divergence) vs torch.distributions, scipy and exact arithmetic."""

from __future__ import annotations

import math
from decimal import Decimal, getcontext

import numpy as np
import pytest
import torch
from scipy.spatial.distance import jensenshannon
from scipy.stats import entropy

from shiftkit.stats import (
    HIST_SMOOTHING,
    gaussian_kl,
    gaussian_kl_noise_scale,
    histogram_js,
    histogram_kl,
    mean_drift,
    std_log_ratio,
)
from shiftkit.stats.divergence import smoothed_probabilities

from .oracles import kl_normal, smoothed

LOG2 = math.log(2.0)


def gaussian_batch(gen, n=500, dtype=torch.float64):
    mp, mq = (
        torch.randn(n, generator=gen, dtype=torch.float64),
        torch.randn(n, generator=gen, dtype=torch.float64),
    )
    vp = torch.exp(torch.randn(n, generator=gen, dtype=torch.float64))
    vq = torch.exp(torch.randn(n, generator=gen, dtype=torch.float64))
    return [t.to(dtype) for t in (mp, vp, mq, vq)]


def test_gaussian_kl_matches_torch_distributions_float64(gen):
    mp, vp, mq, vq = gaussian_batch(gen)
    np.testing.assert_allclose(
        gaussian_kl(mp, vp, mq, vq).numpy(), kl_normal(mp, vp, mq, vq), rtol=1e-10
    )


def test_gaussian_kl_matches_torch_distributions_float32(gen):
    args = gaussian_batch(gen, dtype=torch.float32)
    got = gaussian_kl(*args)
    assert got.dtype == torch.float32
    # float32 inputs, float64 oracle on the same (upcast) values
    np.testing.assert_allclose(
        got.numpy(), kl_normal(*[a.double() for a in args]), rtol=1e-5, atol=1e-6
    )


def test_gaussian_kl_hand_values():
    # KL(N(1,1) || N(0,1)) = 1/2; KL(N(0,4) || N(0,1)) = (4 - 1 - ln 4)/2; asymmetric.
    one, zero = torch.tensor(1.0, dtype=torch.float64), torch.tensor(0.0, dtype=torch.float64)
    assert gaussian_kl(one, one, zero, one).item() == pytest.approx(0.5, rel=1e-15)
    four = torch.tensor(4.0, dtype=torch.float64)
    assert gaussian_kl(zero, four, zero, one).item() == pytest.approx(
        (3 - math.log(4)) / 2, rel=1e-14
    )
    assert gaussian_kl(zero, one, zero, four).item() == pytest.approx(
        (0.25 - 1 + math.log(4)) / 2, rel=1e-14
    )


def exact_kl(mp: float, vp: float, mq: float, vq: float) -> float:
    """The closed form evaluated with 50 significant digits on the exact float64 inputs."""
    getcontext().prec = 50
    mp, vp, mq, vq = (Decimal(v) for v in (mp, vp, mq, vq))
    r = vp / vq
    return float((r - 1 - r.ln() + (mp - mq) ** 2 / vq) / 2)


@pytest.mark.parametrize("ratio", [1 + 1e-6, 1 - 1e-6, 1 + 1e-4, 1 + 1e-7])
def test_gaussian_kl_tiny_variance_change_stays_accurate_in_float64(ratio):
    vq = 2.5
    vp = vq * ratio
    mp, mq = 0.3, 0.3 + 1e-9
    got = gaussian_kl(*(torch.tensor(v, dtype=torch.float64) for v in (mp, vp, mq, vq))).item()
    expected = exact_kl(mp, vp, mq, vq)
    d = ratio - 1
    assert expected == pytest.approx(
        d * d / 4, rel=1e-2
    )  # the series 0.5 * d^2 / 2, a sanity check
    assert got == pytest.approx(expected, rel=1e-7)


def test_var_floor_two_constant_units_at_one_value_give_zero():
    z = torch.zeros(3, dtype=torch.float64)
    m = torch.tensor([0.0, 5.0, -1e3], dtype=torch.float64)
    np.testing.assert_array_equal(gaussian_kl(m, z, m, z).numpy(), 0.0)


def test_var_floor_clamps_both_variances():
    f = 1e-12
    z, one = torch.tensor([0.0], dtype=torch.float64), torch.tensor([1.0], dtype=torch.float64)
    # p constant, q unit normal: var_p -> f. (r = 1e-12 enters as d = r - 1, whose rounding
    # costs ~1e-6 relative in log1p(d); irrelevant at the ratios the monitor's floor allows.)
    assert gaussian_kl(z, z, z, one).item() == pytest.approx(0.5 * (f - 1 - math.log(f)), rel=1e-5)
    # q constant: var_q -> f, finite and large
    got = gaussian_kl(z, one, z, z).item()
    assert math.isfinite(got) and got == pytest.approx(0.5 * (1 / f - 1 + math.log(f)), rel=1e-9)
    # a tensor floor broadcasts per element
    floor = torch.tensor([1e-2, 1e-4], dtype=torch.float64)
    got = gaussian_kl(
        torch.zeros(2, dtype=torch.float64),
        torch.ones(2, dtype=torch.float64),
        torch.zeros(2, dtype=torch.float64),
        torch.zeros(2, dtype=torch.float64),
        floor,
    )
    np.testing.assert_allclose(
        got.numpy(), kl_normal([0, 0], [1, 1], [0, 0], floor.numpy()), rtol=1e-12
    )


def test_mean_drift_and_std_log_ratio(gen):
    mb, vb, ma, va = (t.numpy() for t in gaussian_batch(gen))
    got = mean_drift(*(torch.from_numpy(v) for v in (mb, ma, va))).numpy()
    np.testing.assert_allclose(got, np.abs(mb - ma) / np.sqrt(va), rtol=1e-13)
    got = std_log_ratio(torch.from_numpy(vb), torch.from_numpy(va)).numpy()
    np.testing.assert_allclose(got, np.log(np.sqrt(vb) / np.sqrt(va)), rtol=1e-12, atol=1e-15)


def test_mean_drift_and_std_log_ratio_floor():
    z = torch.zeros(1, dtype=torch.float64)
    one = torch.ones(1, dtype=torch.float64)
    assert mean_drift(one, z, z, 1e-4).item() == pytest.approx(100.0, rel=1e-12)
    assert std_log_ratio(one, z, 1e-4).item() == pytest.approx(0.5 * math.log(1e4), rel=1e-12)
    assert std_log_ratio(z, z).item() == 0.0


# ---------------------------------------------------------------- histograms


def count_rows(gen, rows=5, bins=12):
    c = torch.randint(0, 50, (rows, bins), generator=gen).double()
    c[0, :3] = 0  # empty bins in P
    c[1, -4:] = 0  # and in Q's row
    return c


def test_smoothed_probabilities_follow_the_docstring(gen):
    assert HIST_SMOOTHING == 0.5
    c = count_rows(gen)
    np.testing.assert_allclose(smoothed_probabilities(c).numpy(), smoothed(c.numpy()), rtol=1e-15)


def test_histogram_kl_matches_scipy(gen):
    cp, cq = count_rows(gen), count_rows(gen).flip(0)
    p, q = smoothed(cp.numpy()), smoothed(cq.numpy())
    expected = [entropy(pi, qi) for pi, qi in zip(p, q)]
    np.testing.assert_allclose(histogram_kl(cp, cq).numpy(), expected, rtol=1e-12)


def test_histogram_js_matches_scipy(gen):
    cp, cq = count_rows(gen), count_rows(gen).flip(0)
    p, q = smoothed(cp.numpy()), smoothed(cq.numpy())
    # scipy returns the square root of JS (base e by default)
    expected = [jensenshannon(pi, qi) ** 2 for pi, qi in zip(p, q)]
    np.testing.assert_allclose(histogram_js(cp, cq).numpy(), expected, rtol=1e-10)


@pytest.mark.parametrize("smoothing", [0.5, 1.0, 0.01])
def test_histogram_divergences_with_other_smoothing(smoothing, gen):
    cp, cq = count_rows(gen), count_rows(gen)
    p, q = smoothed(cp.numpy(), smoothing), smoothed(cq.numpy(), smoothing)
    np.testing.assert_allclose(
        histogram_kl(cp, cq, smoothing).numpy(), [entropy(a, b) for a, b in zip(p, q)], rtol=1e-12
    )
    np.testing.assert_allclose(
        histogram_js(cp, cq, smoothing).numpy(),
        [jensenshannon(a, b) ** 2 for a, b in zip(p, q)],
        rtol=1e-10,
    )


def test_divergence_of_a_histogram_with_itself_is_zero(gen):
    c = count_rows(gen)
    np.testing.assert_array_equal(histogram_kl(c, c).numpy(), 0.0)
    np.testing.assert_allclose(histogram_js(c, c).numpy(), 0.0, atol=1e-16)


def test_js_is_bounded_by_log2():
    # disjoint supports with large counts: JS tends to log 2 from below
    p = torch.tensor([[1e9, 1e9, 0, 0], [1e3, 0, 0, 0]], dtype=torch.float64)
    q = torch.tensor([[0, 0, 1e9, 1e9], [0, 0, 0, 1e3]], dtype=torch.float64)
    js = histogram_js(p, q)
    assert torch.all(js < LOG2)
    assert js[0].item() == pytest.approx(LOG2, rel=1e-7)
    for i in range(2):
        expected = jensenshannon(smoothed(p[i].numpy()), smoothed(q[i].numpy())) ** 2
        assert js[i].item() == pytest.approx(expected, rel=1e-9)


def test_unsmoothed_divergences_with_empty_bins_are_finite():
    p = torch.tensor([10.0, 0.0, 0.0])
    q = torch.tensor([5.0, 5.0, 0.0])
    assert histogram_kl(p, q, 0.0).item() == pytest.approx(
        entropy([1, 0, 0], [0.5, 0.5, 0]), rel=1e-12
    )
    assert histogram_js(p, torch.tensor([0.0, 0.0, 7.0]), 0.0).item() == pytest.approx(
        LOG2, rel=1e-12
    )


# ---------------------------------------------------------------- noise floor


def test_noise_scale_closed_form():
    n = torch.tensor([100.0, 64.0], dtype=torch.float64)
    got = gaussian_kl_noise_scale(n, 3 * n, n / 2, n / 2)
    np.testing.assert_allclose(got.numpy(), (1 / n + 1 / (3 * n)) / (4 / n), rtol=1e-15)


def test_split_half_floor_predicts_the_kl_between_two_samples(gen):
    """Monte Carlo: 400 pairs of samples (n=200, 8 units) of one Gaussian."""
    pairs, n, units = 400, 200, 8
    a = torch.randn(pairs, n, units, generator=gen, dtype=torch.float64) * 1.7 + 0.4
    b = torch.randn(pairs, n, units, generator=gen, dtype=torch.float64) * 1.7 + 0.4
    # between the two samples, by torch.distributions (population variances, as the stats use)
    between = kl_normal(
        b.mean(1), b.var(1, unbiased=False), a.mean(1), a.var(1, unbiased=False)
    ).mean()
    # between the two halves of b, scaled to the sizes of a and b
    h1, h2 = b[:, : n // 2], b[:, n // 2 :]
    halves = gaussian_kl(
        h2.mean(1), h2.var(1, unbiased=False), h1.mean(1), h1.var(1, unbiased=False)
    )
    nn = torch.tensor(float(n), dtype=torch.float64)
    floor = (halves * gaussian_kl_noise_scale(nn, nn, nn / 2, nn / 2)).mean().item()
    assert between == pytest.approx(2 / n, rel=0.15)  # the closed form 1/n1 + 1/n2
    assert floor == pytest.approx(between, rel=0.15)


def test_numpy_and_torch_inputs_give_the_same_numbers(gen):
    """The monitor compares on the host in numpy; users and the other tests pass tensors."""
    mp, mq = torch.randn(50, generator=gen, dtype=torch.float64), torch.randn(50, generator=gen, dtype=torch.float64)
    vp, vq = torch.rand(50, generator=gen, dtype=torch.float64) * 3, torch.rand(50, generator=gen, dtype=torch.float64)
    vp[0] = vq[1] = 0.0  # the floor applies
    floor = torch.full((50,), 1e-3, dtype=torch.float64)
    cp, cq = torch.randint(0, 5, (4, 12), generator=gen).double(), torch.randint(0, 5, (4, 12), generator=gen).double()
    cp[0] = 0.0  # an empty histogram row: 0 log 0 stays finite
    pairs = [
        (gaussian_kl, (mp, vp, mq, vq, floor)),
        (mean_drift, (mp, mq, vq, floor)),
        (std_log_ratio, (vp, vq, floor)),
        (histogram_kl, (cp, cq, 0.0)),
        (histogram_js, (cp, cq)),
    ]
    for fn, args in pairs:
        as_numpy = [a.numpy() if isinstance(a, torch.Tensor) else a for a in args]
        with np.errstate(divide="ignore", invalid="ignore"):  # the empty row without smoothing: NaN in both
            got = fn(*as_numpy)
        assert isinstance(got, np.ndarray), fn.__name__
        np.testing.assert_allclose(got, fn(*args).numpy(), rtol=1e-12, atol=0, err_msg=fn.__name__)
