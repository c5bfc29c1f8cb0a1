"""The CPU fast path of the raw sums (finite_raw_sums) against the masked path and numpy.

The monitor takes the fast path whenever a CPU tensor holds only finite values; it must give
the masked path's numbers (to float32 summation order), count flags exactly, and hand every
tensor with a NaN, an Inf or a float32-overflowing square back to the masked path.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from shiftkit.stats.moments import (
    RAW_FIELDS,
    FlagKinds,
    Scratch,
    finite_raw_sums,
    masked_raw_sums,
    unit_raw_sums,
)

from .oracles import units_view

LAYOUTS = [
    ((64, 10), -1), ((16, 7, 5), -1), ((12, 6, 17), 1), ((8, 5, 6, 7), 1), ((9, 4, 3), None),
    # 64 or more elements per sample and unit: sums of squares as squared norms (NORM_PATH_INNER)
    ((8, 5, 16, 16), 1), ((6, 70, 9), -1), ((4, 3, 10, 10), None),
]  # fmt: skip
FLAGS = {"none": (False, None), "positive": (True, None), "beyond": (False, 1.0)}


def data(shape, gen):
    x = torch.randn(shape, generator=gen) * 1.5 + 0.3
    x.view(-1)[::7] = 0.0  # exact zeros: not > 0
    x.view(-1)[1::11] = 1.0  # exactly at the threshold: not beyond it
    return x


def per_unit_shift(x, unit_dim, gen):
    units = 1 if unit_dim is None else x.shape[unit_dim]
    return torch.randn(units, generator=gen) * 0.2


@pytest.mark.parametrize("flag", list(FLAGS))
@pytest.mark.parametrize("shifted", [False, True])
@pytest.mark.parametrize("shape,unit_dim", LAYOUTS, ids=str)
def test_fast_path_equals_masked_path(shape, unit_dim, shifted, flag, gen):
    x = data(shape, gen)
    k = per_unit_shift(x, unit_dim, gen) if shifted else None
    h = x.shape[0] // 2
    positive, beyond = FLAGS[flag]
    fast = finite_raw_sums(x, unit_dim, k, h, positive, beyond, Scratch())
    slow = masked_raw_sums(x, unit_dim, k, h, positive, beyond, Scratch())
    assert fast is not None and fast.shape == slow.shape == (len(RAW_FIELDS), slow.shape[1])
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-4)
    # Counts are exact: the flag against numpy, the element counts against the shape.
    u = units_view(x, unit_dim)
    expected = {"none": 0 * u[:, 0], "positive": (u > 0).sum(1), "beyond": (np.abs(u) > 1.0).sum(1)}[flag]
    np.testing.assert_array_equal(fast[RAW_FIELDS.index("flag")].numpy(), expected)
    assert fast[RAW_FIELDS.index("elements")].tolist() == [u.shape[1]] * u.shape[0]


@pytest.mark.parametrize("path", [finite_raw_sums, masked_raw_sums])
def test_grouped_flag_kinds(path, gen):
    """Several sites side by side (a group): rectifier units, then saturating ones, then the rest."""
    x = data((20, 6), gen)
    kinds = FlagKinds(rectifiers=2, thresholds=torch.tensor([0.5, 0.5, 2.0]), units=6)
    got = path(x, -1, None, 10, kinds, None)
    u = x.numpy()
    expected = [(u[:, 0] > 0).sum(), (u[:, 1] > 0).sum(), (abs(u[:, 2]) > 0.5).sum(), (abs(u[:, 3]) > 0.5).sum(), (abs(u[:, 4]) > 2).sum(), 0]
    assert got[RAW_FIELDS.index("flag")].tolist() == expected


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, 3e20])
def test_nonfinite_or_overflowing_tensor_goes_to_the_masked_path(bad, gen):
    x = data((16, 5), gen)
    x[3, 2] = bad
    assert finite_raw_sums(x, -1, None, 8, True, None) is None
    # ... and unit_raw_sums then gives the masked numbers: the bad element counted, not summed.
    got = unit_raw_sums(x, -1, None, True, True)
    torch.testing.assert_close(got, masked_raw_sums(x, -1, None, 8, True, None), equal_nan=True)
    nonfinite = got[RAW_FIELDS.index("nonfinite")].tolist()
    assert nonfinite == ([0, 0, 1, 0, 0] if not math.isfinite(bad) else [0, 0, 0, 0, 0])


@pytest.mark.parametrize("shape,unit_dim,by_norm", [((8, 5, 16, 16), 1, True), ((8, 5, 6, 7), 1, False), ((2, 3, 70, 70), 1, False)])
def test_norm_path_is_taken_between_its_bounds(shape, unit_dim, by_norm, gen, monkeypatch):
    # 64..4096 elements per sample and unit: squared norms; outside, squares written out (short
    # reductions gain nothing, long ones would lose float32 precision in the norm).
    calls = []
    norm = torch.linalg.vector_norm
    monkeypatch.setattr(torch.linalg, "vector_norm", lambda *a, **k: calls.append(1) or norm(*a, **k))
    x = data(shape, gen)
    fast = finite_raw_sums(x, unit_dim, None, shape[0] // 2, False, None, Scratch())
    assert bool(calls) is by_norm
    torch.testing.assert_close(fast, masked_raw_sums(x, unit_dim, None, shape[0] // 2, False, None, Scratch()), rtol=1e-5, atol=1e-4)
