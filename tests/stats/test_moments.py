"""Per-unit moments (shiftkit.stats.moments) against numpy in float64.

Tolerance: the code reduces in float32 (float16/bfloat16 upcast first, float64 cast down), so
mean and variance agree with numpy's float64 answer to ~1e-6 relative; we assert rtol 2e-5
(atol 2e-6 on the unit-scale data used here). The float64 oracle runs on the exact values the
code sees for float16/bfloat16 (the upcast is exact) and on the original values for float64.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from shiftkit.stats.moments import FIELDS

from .moment_state import MomentState, unit_field_sums, unit_moment_sums
from .oracles import finite_mean_var, units_view

RTOL, ATOL = 2e-5, 2e-6

# (shape, unit_dim): features (N, D), tokens (N, T, D), and channels of 1d/2d/3d convolutions.
LAYOUTS = [
    ((64, 10), -1),
    ((16, 7, 5), -1),
    ((12, 6, 17), 1),
    ((8, 5, 6, 7), 1),
    ((4, 3, 4, 5, 6), 1),
]
DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]


def assert_moments(state: MomentState, u: np.ndarray) -> None:
    """Per-unit mean and population variance of ``state`` against numpy over the finite values."""
    mean, var = finite_mean_var(u)
    np.testing.assert_allclose(state.mean.numpy(), mean, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(state.var.numpy(), var, rtol=RTOL, atol=ATOL)


def unit_data(shape, unit_dim, gen, dtype=torch.float32):
    """Random data whose units have different means (-2..2) and scales (0.5..2)."""
    x = torch.randn(shape, generator=gen, dtype=torch.float64)
    if unit_dim is not None:
        units = shape[unit_dim]
        view = [1] * len(shape)
        view[unit_dim] = units
        x = x * torch.linspace(0.5, 2.0, units).reshape(view) + torch.linspace(
            -2, 2, units
        ).reshape(view)
    return x.to(dtype)


def sprinkle_nonfinite(x: torch.Tensor, gen, frac=0.05) -> torch.Tensor:
    x = x.clone()
    flat = x.view(-1)
    r = torch.rand(flat.shape, generator=gen)
    flat[r < frac / 3] = math.nan
    flat[(r >= frac / 3) & (r < 2 * frac / 3)] = math.inf
    flat[(r >= 2 * frac / 3) & (r < frac)] = -math.inf
    return x


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape,unit_dim", LAYOUTS, ids=str)
def test_mean_and_population_variance_per_unit(shape, unit_dim, dtype, gen):
    x = unit_data(shape, unit_dim, gen, dtype)
    u = units_view(x, unit_dim)
    state = MomentState.from_tensor(x, unit_dim)
    assert state.count.tolist() == [u.shape[1]] * u.shape[0]
    assert state.nonfinite.tolist() == [0] * u.shape[0]
    assert_moments(state, u)
    np.testing.assert_allclose(state.std.numpy(), np.std(u, axis=1), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("shape,unit_dim", LAYOUTS, ids=str)
def test_unit_moment_sums_rows(shape, unit_dim, gen):
    x = unit_data(shape, unit_dim, gen)
    u = units_view(x, unit_dim)
    shift = torch.linspace(-1.0, 1.0, u.shape[0])
    sums = unit_moment_sums(x, unit_dim, shift)
    assert sums.dtype == torch.float32 and sums.shape == (4, u.shape[0])
    np.testing.assert_array_equal(sums[0].numpy(), u.shape[1])
    np.testing.assert_allclose(sums[1].numpy(), u.sum(1), rtol=RTOL, atol=1e-3)
    np.testing.assert_allclose(
        sums[2].numpy(), ((u - shift.numpy()[:, None]) ** 2).sum(1), rtol=RTOL
    )
    np.testing.assert_array_equal(sums[3].numpy(), 0)




@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_pooled_sums_without_shift(dtype, gen):
    x = unit_data((8, 5, 6, 7), 1, gen, dtype)
    u = units_view(x, None)
    sums = unit_moment_sums(x, None)
    assert sums.shape == (4, 1)
    assert sums[0].item() == u.size
    np.testing.assert_allclose(sums[1].numpy(), u.sum(1), rtol=RTOL, atol=1e-3)
    np.testing.assert_allclose(sums[2].numpy(), (u**2).sum(1), rtol=RTOL)


def test_pooled_moment_state(gen):
    x = unit_data((8, 5, 6, 7), 1, gen)
    u = units_view(x, None)
    state = MomentState.from_tensor(x, None)
    assert_moments(state, u)


def test_pooled_sums_with_shift(gen):
    x = unit_data((8, 5, 6, 7), 1, gen)
    u = units_view(x, None)
    sums = unit_field_sums(x, None, torch.tensor([0.5]))
    np.testing.assert_allclose(sums[2].numpy(), ((u - 0.5) ** 2).sum(1), rtol=RTOL)


def test_lone_vector_is_one_sample(gen):
    x = torch.randn(9, generator=gen)
    state = MomentState.from_tensor(x)
    np.testing.assert_array_equal(state.count.numpy(), np.ones(9))
    np.testing.assert_allclose(state.mean.numpy(), x.numpy(), rtol=1e-7)
    # one element per unit: variance 0 up to float32 rounding of x^2 (no shift on a first look)
    np.testing.assert_allclose(state.var.numpy(), 0.0, atol=1e-6 * float(x.square().max()))


@pytest.mark.parametrize("shape,unit_dim", [((60, 8), -1), ((10, 4, 3, 3), 1)], ids=str)
def test_two_halves_merge_to_the_whole(shape, unit_dim, gen):
    x = unit_data(shape, unit_dim, gen)
    u = units_view(x, unit_dim)
    merged = MomentState.from_tensor(
        x[: 30 if len(shape) == 2 else 5], unit_dim
    ) + MomentState.from_tensor(x[30 if len(shape) == 2 else 5 :], unit_dim)
    np.testing.assert_array_equal(merged.count.numpy(), u.shape[1])
    assert_moments(merged, u)


def test_three_uneven_chunks_with_a_shift_merge_to_the_whole(gen):
    x = unit_data((64, 6), -1, gen)
    shift = torch.tensor([-2.0, -1.0, 0.0, 0.5, 1.0, 2.0])
    chunks = [x[:7], x[7:27], x[27:]]
    merged = sum(
        (MomentState.from_tensor(c, shift=shift) for c in chunks[1:]),
        MomentState.from_tensor(chunks[0], shift=shift),
    )
    u = units_view(x, -1)
    np.testing.assert_array_equal(merged.count.numpy(), 64)
    assert_moments(merged, u)


def test_merging_states_about_different_shifts_is_refused(gen):
    x = torch.randn(8, 3, generator=gen)
    with pytest.raises(ValueError, match="different shifts"):
        MomentState.from_tensor(x) + MomentState.from_tensor(x, shift=torch.ones(3))


@pytest.mark.parametrize("shape,unit_dim", [((50, 6), -1), ((6, 4, 5, 5), 1)], ids=str)
def test_shift_leaves_variance_unchanged(shape, unit_dim, gen):
    x = unit_data(shape, unit_dim, gen)
    u = units_view(x, unit_dim)
    shift = torch.randn(u.shape[0], generator=gen) * 3
    state = MomentState.from_tensor(x, unit_dim, shift)
    assert_moments(state, u)


def nearly_constant(gen, n=20000):
    """One float32 unit 1000 + 1e-3 * noise: variance ~1e-6 on a mean of 1000."""
    x = (1000.0 + 1e-3 * torch.randn(n, 1, generator=gen, dtype=torch.float64)).float()
    return x, np.var(x.double().numpy())


def relative_var_error(x, truth, shift):
    return abs(MomentState.from_tensor(x, shift=shift).var.item() / truth - 1.0)


def test_shift_near_the_mean_keeps_a_nearly_constant_unit_accurate(gen):
    x, truth = nearly_constant(gen)
    for k in (1000.0, 1000.0 + 3e-4, 1000.0 - 1e-3):
        assert relative_var_error(x, truth, torch.tensor([k])) < 0.01, k


def test_without_shift_a_nearly_constant_unit_is_far_less_accurate(gen):
    x, truth = nearly_constant(gen)
    shifted = relative_var_error(x, truth, torch.tensor([1000.0]))
    unshifted = relative_var_error(x, truth, None)
    # E[x^2] - E[x]^2 cancels ~1e6 against ~1e6 in float32/float64 sums to find ~1e-6.
    assert unshifted > 10 * shifted
    assert unshifted > 0.01


@pytest.mark.parametrize("shape,unit_dim", [((80, 6), -1), ((10, 4, 5, 5), 1)], ids=str)
@pytest.mark.parametrize("shifted", [False, True])
def test_nonfinite_counted_exactly_and_left_out(shape, unit_dim, shifted, gen):
    x = sprinkle_nonfinite(unit_data(shape, unit_dim, gen), gen)
    u = units_view(x, unit_dim)
    shift = torch.linspace(-2, 2, u.shape[0]) if shifted else None
    state = MomentState.from_tensor(x, unit_dim, shift)
    finite = np.isfinite(u)
    assert (~finite).sum() > 0 and np.isinf(u).sum() > 0 and np.isnan(u).sum() > 0
    np.testing.assert_array_equal(state.nonfinite.numpy(), (~finite).sum(1))
    np.testing.assert_array_equal(state.count.numpy(), finite.sum(1))
    assert_moments(state, u)


def test_nonfinite_does_not_spoil_the_shifted_variance_of_a_nearly_constant_unit(gen):
    x, _ = nearly_constant(gen)
    x[::97] = math.nan
    _, truth = finite_mean_var(units_view(x, -1))
    assert relative_var_error(x, truth[0], torch.tensor([1000.0])) < 0.01


def test_all_nonfinite_unit_has_nan_moments():
    x = torch.tensor([[math.nan, 1.0], [math.inf, 3.0]])
    state = MomentState.from_tensor(x)
    assert state.count.tolist() == [0, 2] and state.nonfinite.tolist() == [2, 0]
    assert math.isnan(state.mean[0]) and math.isnan(state.var[0])
    assert state.mean[1].item() == 2.0 and state.var[1].item() == 1.0


# ---------------------------------------------------------------- unit_field_sums


def field(sums, name):
    return sums[FIELDS.index(name)].numpy()


@pytest.mark.parametrize(
    "shape,unit_dim",
    [((33, 6), -1), ((9, 4, 5, 5), 1), ((8, 5, 7), -1), ((9, 4, 5, 5), None)],
    ids=str,
)
def test_half_batch_fields_are_the_sums_of_the_first_half(shape, unit_dim, gen):
    x = sprinkle_nonfinite(unit_data(shape, unit_dim, gen), gen)
    units = units_view(x, unit_dim).shape[0]
    shift = torch.linspace(-1, 1, units) if units > 1 else torch.tensor([0.25])
    sums = unit_field_sums(x, unit_dim, shift)
    first = units_view(x[: shape[0] // 2], unit_dim)
    finite = np.isfinite(first)
    np.testing.assert_array_equal(field(sums, "count_h"), finite.sum(1))
    np.testing.assert_allclose(
        field(sums, "sum_h"), np.where(finite, first, 0).sum(1), rtol=RTOL, atol=1e-3
    )
    k = 0.0 if shift is None else shift.numpy()[:, None]
    dev2 = np.where(finite, (first - k) ** 2, 0)
    np.testing.assert_allclose(field(sums, "sumsq_h"), dev2.sum(1), rtol=RTOL, atol=1e-3)
    # ... and the same numbers as the moment sums of x[:N//2] on their own.
    np.testing.assert_allclose(
        sums[4:7].numpy(),
        unit_moment_sums(x[: shape[0] // 2], unit_dim, shift)[:3].numpy(),
        rtol=1e-6,
    )


def test_no_split_half_leaves_half_fields_zero(gen):
    sums = unit_field_sums(torch.randn(10, 3, generator=gen), split_half=False)
    np.testing.assert_array_equal(sums[4:7].numpy(), 0)


def flagged_data(gen):
    """Normal data with exact zeros, values exactly at +-t, and NaN/±Inf mixed in."""
    x = sprinkle_nonfinite(torch.randn(40, 7, 3, generator=gen) * 2, gen, frac=0.1)
    x[0, :, 0] = 0.0
    x[1, :, 1] = 1.5
    x[2, :, 2] = -1.5
    return x


@pytest.mark.parametrize("unit_dim", [-1, 1, None])
def test_flag_counts_positive_elements(unit_dim, gen):
    x = flagged_data(gen)
    u = units_view(x, unit_dim)
    with np.errstate(invalid="ignore"):
        expected = (np.isfinite(u) & (u > 0)).sum(1)
    np.testing.assert_array_equal(
        field(unit_field_sums(x, unit_dim, positive=True), "flag"), expected
    )


@pytest.mark.parametrize("unit_dim", [-1, 1, None])
def test_flag_counts_elements_beyond_threshold(unit_dim, gen):
    x = flagged_data(gen)
    u = units_view(x, unit_dim)
    with np.errstate(invalid="ignore"):
        expected = (np.isfinite(u) & (np.abs(u) > 1.5)).sum(1)
    np.testing.assert_array_equal(field(unit_field_sums(x, unit_dim, beyond=1.5), "flag"), expected)
    np.testing.assert_array_equal(field(unit_field_sums(x, unit_dim), "flag"), 0)


def test_field_sums_layout(gen):
    x = torch.randn(6, 4, generator=gen)
    sums = unit_field_sums(x)
    assert sums.shape == (len(FIELDS), 4) and sums.dtype == torch.float32
