"""Saturation and dead-ReLU fractions (shiftkit.stats.activation) against numpy counts."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from shiftkit.stats import dead_fraction, dead_unit_fraction, saturation_fraction

from .oracles import units_view


def activations(gen):
    """(N, C, L) data spread over +-6, with exact zeros, exact +-2 and NaN/±Inf."""
    x = torch.randn(30, 5, 8, generator=gen) * 3
    x[0, :, :2] = 0.0
    x[1, :, 2] = 2.0
    x[1, :, 3] = -2.0
    x[2, 0, 0], x[2, 1, 1], x[3, 2, 2] = math.nan, math.inf, -math.inf
    return x


def np_fraction(u, hit):
    finite = np.isfinite(u)
    with np.errstate(invalid="ignore"):
        return (finite & hit(u)).sum(1) / finite.sum(1)


@pytest.mark.parametrize("unit_dim", [None, -1, 1])
@pytest.mark.parametrize("threshold", [2.0, 4.0, 0.5])
def test_saturation_fraction(unit_dim, threshold, gen):
    x = activations(gen)
    got = saturation_fraction(x, threshold, unit_dim)
    expected = np_fraction(units_view(x, unit_dim), lambda u: np.abs(u) > threshold)
    np.testing.assert_allclose(np.atleast_1d(got.numpy()), expected, rtol=1e-12)


@pytest.mark.parametrize("unit_dim", [None, -1, 1])
def test_dead_fraction(unit_dim, gen):
    x = activations(gen)
    expected = np_fraction(units_view(x, unit_dim), lambda u: u <= 0)
    np.testing.assert_allclose(
        np.atleast_1d(dead_fraction(x, unit_dim).numpy()), expected, rtol=1e-12
    )


@pytest.mark.parametrize("unit_dim", [-1, 1])
def test_dead_unit_fraction(unit_dim, gen):
    x = torch.randn(20, 6, 4, generator=gen)
    # Kill units 0 and 2 of the chosen layout: all their inputs <= 0 (unit 2: exactly 0).
    index = [slice(None)] * 3
    for u, fill in ((0, None), (2, 0.0)):
        index[unit_dim] = u
        x[tuple(index)] = -x[tuple(index)].abs() if fill is None else fill
    index[unit_dim] = 3
    x[tuple(index)] = -1.0
    x[(0, 3, 0) if unit_dim == 1 else (0, 0, 3)] = (
        1e-30  # one tiny positive input keeps unit 3 alive
    )
    u = units_view(x, unit_dim)
    expected = np.mean(~(u > 0).any(1))
    assert expected == pytest.approx(2 / u.shape[0])
    assert dead_unit_fraction(x, unit_dim).item() == expected


def test_dead_unit_fraction_ignores_nonfinite():
    x = torch.tensor([[math.inf, -1.0], [math.nan, -2.0], [-3.0, 4.0]])
    # unit 0: finite inputs are all <= 0 (the +inf does not count as firing); unit 1 fires once.
    assert dead_unit_fraction(x).item() == 0.5
