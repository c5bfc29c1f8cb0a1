"""Divergences between two snapshots of a layer's inputs: A (reference) and B (now).

All functions are elementwise/batched and take torch tensors or numpy arrays
(the monitor calls them with float64 numpy arrays on the host, see
:mod:`shiftkit.stats.compare`). Pass float64 when the values can be tiny:
``gaussian_kl`` of two nearly equal Gaussians is a difference of nearly equal
numbers (the monitor computes in float64 throughout).
"""

from __future__ import annotations

from torch import Tensor

from shiftkit.stats.arrays import as_float64, at_least, namespace, xlogy

#: Additive smoothing of histogram counts: p_i = (c_i + a) / (N + a K), a = 0.5
#: (Krichevsky–Trofimov). It keeps KL finite when a bin is empty in one snapshot.
HIST_SMOOTHING = 0.5


def gaussian_kl(mean_p: Tensor, var_p: Tensor, mean_q: Tensor, var_q: Tensor, var_floor=1e-12) -> Tensor:
    """KL(N(mean_p, var_p) || N(mean_q, var_q)) in nats, elementwise (closed form).

    ``0.5 * [ r - 1 - log r + (mean_p - mean_q)^2 / var_q ]`` with ``r = var_p / var_q``.
    Both variances are clamped below at ``var_floor`` (a float or a tensor that
    broadcasts), so a constant unit gives a large but finite value and two
    constant units at the same value give 0.

    Example:
        >>> import numpy as np, torch
        >>> gaussian_kl(torch.tensor(1.0), torch.tensor(1.0), torch.tensor(0.0), torch.tensor(1.0))
        tensor(0.5000)
        >>> float(gaussian_kl(np.float64(1.0), 1.0, 0.0, 1.0))
        0.5
    """
    vp, vq = at_least(var_p, var_floor), at_least(var_q, var_floor)
    d = (vp - vq) / vq
    # r - 1 - log r written as d - log1p(d): no cancellation for r near 1.
    return 0.5 * (d - namespace(d).log1p(d) + (mean_p - mean_q) ** 2 / vq)


def mean_drift(mean_b: Tensor, mean_a: Tensor, var_a: Tensor, var_floor=1e-12) -> Tensor:
    """``|mu_B - mu_A| / sigma_A`` elementwise: how far the mean moved, in reference SDs."""
    return abs(mean_b - mean_a) / at_least(var_a, var_floor) ** 0.5


def std_log_ratio(var_b: Tensor, var_a: Tensor, var_floor=1e-12) -> Tensor:
    """``log(sigma_B / sigma_A)`` elementwise: > 0 when the spread grew."""
    vb, va = at_least(var_b, var_floor), at_least(var_a, var_floor)
    xp = namespace(vb)
    return 0.5 * (xp.log(vb) - xp.log(va))


def smoothed_probabilities(counts: Tensor, smoothing: float = HIST_SMOOTHING) -> Tensor:
    """Histogram counts (last dim = bins) to probabilities with additive smoothing."""
    counts = as_float64(counts)
    total = counts.sum(-1, keepdim=True) if isinstance(counts, Tensor) else counts.sum(-1, keepdims=True)
    return (counts + smoothing) / (total + smoothing * counts.shape[-1])


def histogram_kl(counts_p: Tensor, counts_q: Tensor, smoothing: float = HIST_SMOOTHING) -> Tensor:
    """KL(P || Q) in nats between histograms with the same edges (last dim = bins).

    Counts are smoothed additively first (see :data:`HIST_SMOOTHING`).
    """
    p = smoothed_probabilities(counts_p, smoothing)
    q = smoothed_probabilities(counts_q, smoothing)
    # xlogy: 0 log 0 = 0, so smoothing=0 with empty bins stays finite.
    return (xlogy(p, p) - xlogy(p, q)).sum(-1)


def histogram_js(counts_p: Tensor, counts_q: Tensor, smoothing: float = HIST_SMOOTHING) -> Tensor:
    """Jensen–Shannon divergence in nats (0 .. log 2) between smoothed histograms."""
    p = smoothed_probabilities(counts_p, smoothing)
    q = smoothed_probabilities(counts_q, smoothing)
    m = 0.5 * (p + q)
    kl_pm = (xlogy(p, p) - xlogy(p, m)).sum(-1)
    kl_qm = (xlogy(q, q) - xlogy(q, m)).sum(-1)
    return 0.5 * kl_pm + 0.5 * kl_qm


def gaussian_kl_noise_scale(n_a: Tensor, n_b: Tensor, n_h1: Tensor, n_h2: Tensor) -> Tensor:
    """Factor that turns a split-half KL into the noise floor of an A-vs-B comparison.

    Two independent samples of sizes ``n1``, ``n2`` from one Gaussian give an
    expected KL of about ``1/n1 + 1/n2`` (half from the means, half from the
    variances). A KL measured between the two halves of snapshot B (sizes
    ``n_h1``, ``n_h2``) therefore estimates the floor of a comparison between
    snapshots of sizes ``n_a`` and ``n_b`` after scaling by
    ``(1/n_a + 1/n_b) / (1/n_h1 + 1/n_h2)``. Splitting by samples keeps the
    correlation between positions of one sample (pixels, tokens) in the estimate.
    """
    return (1.0 / n_a + 1.0 / n_b) / (1.0 / n_h1 + 1.0 / n_h2)
