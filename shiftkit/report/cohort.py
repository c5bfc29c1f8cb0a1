"""The runs of one recipe, their facts, and the tidy series the claims and figures draw from."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from shiftkit.records import Run
from shiftkit.report.facts import RunFacts, accuracy_curve, config_value, run_facts

NORM_ORDER = ("none", "batch", "syncbatch", "noisy_batch", "noisy_none", "layer", "group")
NORM_LABELS = {
    "none": "no BN",
    "batch": "BN",
    "syncbatch": "SyncBN",
    "noisy_batch": "noisy BN",
    "noisy_none": "noisy no BN",
    "layer": "LayerNorm",
    "group": "GroupNorm",
}
"""How a normalization is named in legends when it tells the variants apart."""
SIGMOID_SATURATION = 4.0
"""The monitor's saturation threshold for sigmoid inputs (``shiftkit.stats.activation``), typed here so
that reading reports needs no torch (a test checks the two agree)."""


@dataclass
class Cohort:
    """The runs of one recipe with their :class:`RunFacts`, in a stable variant order."""

    recipe: str
    runs: list[Run]
    facts: list[RunFacts] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.facts:
            self.facts = [run_facts(r) for r in self.runs]
        order = sorted(range(len(self.runs)), key=lambda i: (_variant_key(self.facts[i]), self.facts[i].seed))
        self.runs = [self.runs[i] for i in order]
        self.facts = [self.facts[i] for i in order]

    @property
    def pairs(self) -> list[tuple[Run, RunFacts]]:
        return list(zip(self.runs, self.facts))

    def variants(self) -> list[str]:
        """Variant names in display order (no BN first, then BN, then by multipliers/sizes)."""
        return list(dict.fromkeys(f.variant for f in self.facts))

    def seeds(self) -> list[int]:
        return sorted({f.seed for f in self.facts})

    def select(self, pred: Callable[[RunFacts], bool]) -> list[tuple[Run, RunFacts]]:
        return [(r, f) for r, f in self.pairs if pred(f)]

    def of_variant(self, variant: str) -> list[tuple[Run, RunFacts]]:
        return self.select(lambda f: f.variant == variant)

    def labels(self) -> dict[str, str]:
        """Legend label of each variant: the norm's name when norms tell variants apart."""
        norms = {v: {f.norm for f in self.facts if f.variant == v} for v in self.variants()}
        single = all(len(n) == 1 for n in norms.values())
        distinct = len({next(iter(n)) for n in norms.values()}) == len(norms) if single else False
        if distinct:
            return {v: NORM_LABELS.get(next(iter(n)), next(iter(n))) for v, n in norms.items()}
        return {v: v for v in norms}

    def target_accuracy(self, override: float | None = None) -> float:
        """``override``, else the most common ``target_accuracy`` of the runs (NaN if none)."""
        if override is not None:
            return float(override)
        targets = [f.target_accuracy for f in self.facts if math.isfinite(f.target_accuracy)]
        return Counter(targets).most_common(1)[0][0] if targets else float("nan")

    def figure_seed(self, wanted: int | None = None) -> int:
        """``wanted`` if some run has it, else the smallest seed."""
        seeds = self.seeds()
        return wanted if wanted in seeds else seeds[0]

    def n_cells(self) -> int:
        """Distinct configurations apart from the seed: the grid's cells (a variant name that says
        only the norm, as in a knob grid, would undercount them)."""
        def key(f: RunFacts) -> tuple:
            values = (f.lr, f.lr_multiplier, f.init_scale, f.init_std, f.depth, f.per_device_batch, f.global_batch)
            return (f.variant, f.norm, f.synced, *(None if math.isnan(v) else v for v in values))  # NaN != NaN

        return len({key(f) for f in self.facts})

    def config(self) -> dict:
        return self.runs[0].result.get("config") or {} if self.runs else {}


def _variant_key(f: RunFacts) -> tuple:
    rank = NORM_ORDER.index(f.norm) if f.norm in NORM_ORDER else len(NORM_ORDER)
    return (_nan_to(f.depth, 0), rank, f.lr_multiplier, f.init_scale, _nan_to(f.init_std, 0),
            -_nan_to(f.per_device_batch, 0), f.variant)


def _nan_to(x: float, default: float) -> float:
    return x if math.isfinite(x) else default


def group_cohorts(runs: Iterable[Run]) -> dict[str, Cohort]:
    """Runs grouped by recipe (a run without one is recipe ``unnamed``), recipes sorted."""
    by: dict[str, list[Run]] = {}
    for run in runs:
        by.setdefault(str(run.recipe or "unnamed"), []).append(run)
    return {name: Cohort(name, by[name]) for name in sorted(by)}


# ----------------------------------------------------------------------------- series


def accuracy_long(pairs: list[tuple[Run, RunFacts]], labels: dict[str, str]) -> pd.DataFrame:
    """Accuracy curves of the runs: ``variant, label, seed, step, acc``."""
    frames = []
    for run, f in pairs:
        curve, _ = accuracy_curve(run)
        if len(curve):
            frames.append(curve.assign(variant=f.variant, label=labels.get(f.variant, f.variant), seed=f.seed))
    if not frames:
        return pd.DataFrame(columns=["variant", "label", "seed", "step", "acc"])
    return pd.concat(frames, ignore_index=True)


def history_long(pairs: list[tuple[Run, RunFacts]], stat: str, labels: dict[str, str]) -> pd.DataFrame:
    """One shift statistic of every run's ``shift_history``: ``variant, label, seed, site, step, value``."""
    frames = []
    for run, f in pairs:
        h = run.history
        if h is None or stat not in h.columns:
            continue
        part = h[["step", "site", stat]].rename(columns={stat: "value"})
        frames.append(part.assign(variant=f.variant, label=labels.get(f.variant, f.variant), seed=f.seed))
    if not frames:
        return pd.DataFrame(columns=["variant", "label", "seed", "site", "step", "value"])
    return pd.concat(frames, ignore_index=True)


def site_order(histories: Iterable[pd.DataFrame | None]) -> list[str]:
    """Union of the histories' sites in network order (each history lists sites in module order).

    A site missing from one history is placed after the site that precedes it where it appears.
    """
    order: list[str] = []
    for h in histories:
        if h is None or "site" not in h.columns:
            continue
        previous = None
        for site in dict.fromkeys(h["site"].astype(str)):
            if site not in order:
                order.insert(order.index(previous) + 1 if previous in order else len(order), site)
            previous = site
    return order


def saturating_sites(history: pd.DataFrame | None) -> list[str]:
    """Sites whose ``sat_frac`` is ever finite: the inputs of sigmoid/tanh layers, in order."""
    if history is None or "sat_frac" not in history.columns:
        return []
    finite = history[np.isfinite(history["sat_frac"].to_numpy(dtype=float))]
    return list(dict.fromkeys(finite["site"].astype(str)))


def activation_sites(history: pd.DataFrame | None) -> list[str]:
    """Inputs of activations: sites with a finite ``sat_frac`` or ``dead_frac``, in order."""
    if history is None:
        return []
    mask = np.zeros(len(history), dtype=bool)
    for col in ("sat_frac", "dead_frac"):
        if col in history.columns:
            mask |= np.isfinite(history[col].to_numpy(dtype=float))
    return list(dict.fromkeys(history.loc[mask, "site"].astype(str)))


def late_site_means(history: pd.DataFrame | None, col: str, frac: float = 0.1) -> pd.Series:
    """Per site (in network order), the mean of ``col`` over the measurements with
    ``step >= (1 - frac) x`` that site's last step with a finite value (finite values only)."""
    if history is None or col not in history.columns:
        return pd.Series(dtype=float)
    d = history[["site", "step", col]].dropna()
    last = d.groupby("site", sort=False)["step"].transform("max")
    return d[d["step"] >= (1.0 - frac) * last].groupby("site", sort=False)[col].mean()


def metric_columns(run: Run, parse: Callable[[str], tuple[str, str] | None]) -> dict[tuple[str, str], str]:
    """``{(layer, stat): column}`` of the run's metrics columns that ``parse`` accepts."""
    if run.metrics is None:
        return {}
    out = {}
    for col in run.metrics.columns:
        parsed = parse(col) if isinstance(col, str) else None
        if parsed is not None:
            out[parsed] = col
    return out


def describe_setup(cohort: Cohort) -> str:
    """A one-line setup from the runs' configs: shared values, then what the variants vary."""
    cfgs = [r.result.get("config") or {} for r in cohort.runs]
    keys = ("arch", "depth", "width", "activation", "optimizer", "lr", "momentum", "batch_size",
            "max_steps", "init", "init_std")  # fmt: skip
    parts = []
    data = _data_name(cfgs[0]) if cfgs else None
    if data:
        parts.append(f"data {data}")
    normal_init = {config_value(c, "init") for c in cfgs} == {"normal"}
    for key in keys:
        if key == "init_std" and not normal_init:
            continue  # only the normal init reads it: printing it elsewhere misleads
        values = {repr(config_value(c, key)) for c in cfgs}
        if len(values) == 1:
            value = config_value(cfgs[0], key)
            if value is not None:
                parts.append(f"{key} {value}")
    varied = []
    for key in ("norm", "lr_multiplier", "init_scale", "init_std", "ghost_batch_size", "depth", "lr", "activation",
                "batch_size"):
        values = {config_value(c, key) for c in cfgs if isinstance(config_value(c, key), (str, int, float, type(None)))}
        if len(values) > 1:
            ordered = sorted(values, key=lambda v: (v is None, isinstance(v, str), v if not isinstance(v, str) else 0, str(v)))
            varied.append(f"{key} ∈ {{{', '.join(str(v) for v in ordered)}}}")
    n_seeds = len(cohort.seeds())
    text = ", ".join(parts) if parts else "config not recorded"
    if varied:
        text += "; varied: " + "; ".join(varied)
    return f"{text}; {cohort.n_cells()} grid cells × {n_seeds} seeds"


def _data_name(cfg: dict) -> str | None:
    data = cfg.get("data") if isinstance(cfg, dict) else None
    if isinstance(data, dict):
        name = data.get("class_path") or data.get("name")
        if name:
            return str(name).rsplit(".", 1)[-1]
    elif isinstance(data, str):
        return data
    return None
