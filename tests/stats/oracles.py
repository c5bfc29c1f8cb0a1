"""Independent reference computations (numpy, scipy, torch.distributions) for the stats tests.

Nothing here calls ``shiftkit``: these are the oracles the code under test is compared with.
"""

from __future__ import annotations

import threading

import numpy as np
import torch
from torch.distributions import Normal, kl_divergence


def units_view(x: torch.Tensor, unit_dim: int | None) -> np.ndarray:
    """``x`` as a float64 ``(units, elements)`` array: unit ``u`` is row ``u``.

    ``unit_dim`` -1 (features, last dim), 1 (channels) or None (everything is one unit).
    float16/bfloat16 are upcast exactly; float64 keeps its own values.
    """
    a = x.detach().to(torch.float64).numpy()
    if a.ndim == 1:
        a = a[None, :]
    if unit_dim is None:
        return a.reshape(1, -1)
    return np.moveaxis(a, unit_dim, 0).reshape(a.shape[unit_dim], -1)


def finite_mean_var(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row mean and population variance (divide by n) of the finite entries."""
    f = np.where(np.isfinite(u), u, np.nan)
    return np.nanmean(f, axis=-1), np.nanvar(f, axis=-1)


def hist_counts(values, lo: float, hi: float, bins: int) -> np.ndarray:
    """``bins + 2`` counts: x < lo, ``bins`` equal bins [e_k, e_k+1) on [lo, hi), x >= hi.

    Built with ``np.histogram`` on the edges ``[-inf, linspace(lo, hi, bins + 1), +inf]``
    (only the last, infinite bin is closed); non-finite values are dropped first.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    edges = np.concatenate([[-np.inf], np.linspace(lo, hi, bins + 1), [np.inf]])
    return np.histogram(v, bins=edges)[0].astype(np.float64)


def smoothed(counts: np.ndarray, a: float = 0.5) -> np.ndarray:
    """Additive smoothing as documented: p_i = (c_i + a) / (N + a K), along the last axis."""
    counts = np.asarray(counts, dtype=np.float64)
    return (counts + a) / (counts.sum(-1, keepdims=True) + a * counts.shape[-1])


def kl_normal(mean_p, var_p, mean_q, var_q) -> np.ndarray:
    """KL(N(mean_p, var_p) || N(mean_q, var_q)) by torch.distributions, in float64."""
    t = [torch.as_tensor(np.asarray(v, dtype=np.float64)) for v in (mean_p, var_p, mean_q, var_q)]
    return kl_divergence(Normal(t[0], t[1].sqrt()), Normal(t[2], t[3].sqrt())).numpy()


def dyadic(shape, gen: torch.Generator, half_range: int = 40, offset=None) -> torch.Tensor:
    """float32 values k/4 with |k| <= half_range: sums and squares stay exact in float32."""
    x = torch.randint(-half_range, half_range + 1, shape, generator=gen).float() / 4
    return x if offset is None else x + offset


def symmetric_dyadic(
    shape, unit_dim: int, centres: torch.Tensor, gen: torch.Generator
) -> torch.Tensor:
    """Dyadic values whose multiset per unit is symmetric about ``centres[u]`` (a multiple of 1/4).

    The per-unit mean is then exactly ``centres[u]``, so a shift taken from it is exact too; the
    extremes are repeated, so quantiles near 0 and 1 do not depend on how the data are split.
    """
    units = shape[unit_dim]
    per_unit = int(np.prod(shape)) // units
    half = dyadic((units, per_unit // 2), gen, 12)
    half[:, :2] = 3.0  # every unit reaches centre +- 3 twice: the extreme quantiles sit on ties
    vals = torch.cat([half, -half], 1) + centres[:, None]
    perm = torch.argsort(torch.rand(units, per_unit, generator=gen), dim=1)
    vals = torch.gather(vals, 1, perm)
    moved = [shape[unit_dim]] + [s for d, s in enumerate(shape) if d != unit_dim % len(shape)]
    return torch.movedim(vals.reshape(moved), 0, unit_dim).contiguous()


class FakeGroup:
    """An in-process stand-in for ``torch.distributed``: ranks are threads.

    ``group.all_reduce_for(rank)`` is an ``all_reduce(tensor, op)`` callable for that rank; every
    rank must call it the same number of times, as with a real process group.
    """

    def __init__(self, world_size: int):
        self.world_size = world_size
        self.slots: list = [None] * world_size
        self.barrier = threading.Barrier(world_size, timeout=30)
        self.calls: list[list[str]] = [[] for _ in range(world_size)]

    def all_reduce_for(self, rank: int):
        def all_reduce(tensor: torch.Tensor, op: str) -> None:
            self.calls[rank].append(op)
            self.slots[rank] = tensor.clone()
            self.barrier.wait()
            stacked = torch.stack(self.slots)
            out = stacked.sum(0) if op == "sum" else stacked.amax(0)
            self.barrier.wait()  # everyone has read every slot before anyone writes a new one
            tensor.copy_(out)

        return all_reduce

    def run(self, *rank_fns):
        """Run ``rank_fns[r](all_reduce_for(r))`` on one thread per rank; return their results."""
        results: list = [None] * self.world_size
        errors: list = []

        def target(r):
            try:
                results[r] = rank_fns[r](self.all_reduce_for(r))
            except BaseException as e:  # noqa: BLE001 - re-raised below
                errors.append(e)
                self.barrier.abort()

        threads = [threading.Thread(target=target, args=(r,)) for r in range(self.world_size)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        return results


def site_values(tensors, unit_dim: int | None) -> np.ndarray:
    """All elements one site saw in a measurement, as float64 ``(units, elements)``."""
    return np.concatenate([units_view(t, unit_dim) for t in tensors], axis=1)


def site_oracle(
    u: np.ndarray, lo: float, hi: float, bins: int, threshold: float | None = None
) -> dict:
    """What a snapshot of one site should say, from its raw ``(units, elements)`` values."""
    finite = np.isfinite(u)
    v = u[finite]
    mean, var = finite_mean_var(u)
    with np.errstate(invalid="ignore"):
        out = {
            "mean": v.mean(),
            "std": v.std(),
            "unit_mean": mean,
            "unit_var": var,
            "nonfinite": float((~finite).sum()),
            "dead_frac": (finite & (u <= 0)).sum() / finite.sum(),
            "dead_units": np.mean(~(finite & (u > 0)).any(1)[finite.any(1)]),
            "hist": hist_counts(v, lo, hi, bins),
        }
        if threshold is not None:
            out["sat_frac"] = (finite & (np.abs(u) > threshold)).sum() / finite.sum()
    return out


def shift_oracle(cur: dict, ref: dict) -> dict:
    """Divergences of snapshot B (``cur``) from A (``ref``), both from :func:`site_oracle`."""
    from scipy.spatial.distance import jensenshannon
    from scipy.stats import entropy

    mb, vb, ma, va = cur["unit_mean"], cur["unit_var"], ref["unit_mean"], ref["unit_var"]
    drift = np.abs(mb - ma) / np.sqrt(va)
    p, q = smoothed(cur["hist"]), smoothed(ref["hist"])
    return {
        "kl_gauss": kl_normal(mb, vb, ma, va).mean(),
        "mean_drift": drift.mean(),
        "mean_drift_max": drift.max(),
        "std_log_ratio": np.mean(np.log(np.sqrt(vb) / np.sqrt(va))),
        "kl_hist": entropy(p, q),
        "js_hist": jensenshannon(p, q) ** 2,
    }
