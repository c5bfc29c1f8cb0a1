"""What a report needs to know about one run, read from its record, its config and its metrics.

Recipes name their variants freely (``bn``, ``plain``, ``bn_x30``...), so the report does not parse
variant names when the resolved config says the same thing: the normalization, learning-rate
multiplier, init scale and batch sizes are read from ``result.json``'s ``config`` (any nesting:
LightningCLI's ``model.init_args.norm`` and a flat ``norm`` both work, ``model`` first). Only
where the config is silent is the variant name used, and that is said in :func:`norm_of`.

Accuracy: the held-out curve is ``val/acc`` (``test/acc`` when a run logs no ``val/acc``); the
final accuracy is the record's ``test/acc``, else its ``val/acc``, else the curve's last value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from shiftkit.records import STEP, TEST_ACC, TRAIN_ACC, VAL_ACC, Run

BN_NORMS = frozenset({"batch", "syncbatch", "noisy_batch"})
"""Normalizations counted as "with BN" by the claims (ghost BN is ``batch`` with a group size)."""

ACC_CURVE_KEYS = (VAL_ACC, TEST_ACC, f"{TRAIN_ACC}_epoch", f"{TRAIN_ACC}_step", TRAIN_ACC)
"""Accuracy series tried for the accuracy-vs-step curve, first present wins."""


def config_value(config: Any, key: str, default: Any = None) -> Any:
    """The value of ``key`` anywhere in a nested config dict.

    Several matches: one under a ``model`` key wins, then the shallowest, then the first found.

    Example:
        >>> config_value({"model": {"init_args": {"norm": "batch"}}, "data": {"norm": "x"}}, "norm")
        'batch'
        >>> config_value({"trainer": {"max_steps": 3}}, "lr", 0.1)
        0.1
    """
    found: list[tuple[int, int, Any]] = []

    def walk(node: Any, depth: int, under_model: bool) -> None:
        if not isinstance(node, dict):
            return
        for k, v in node.items():
            if k == key and not isinstance(v, dict):
                found.append((0 if under_model else 1, depth, v))
            walk(v, depth + 1, under_model or k == "model")

    walk(config, 0, False)
    if not found:
        return default
    return min(found, key=lambda t: (t[0], t[1]))[2]


@dataclass(frozen=True)
class RunFacts:
    """The numbers and labels of one run that tables, claims and figures use."""

    recipe: str
    variant: str
    seed: int
    norm: str
    lr: float
    lr_multiplier: float
    init_scale: float
    init: str
    init_std: float
    depth: float
    per_device_batch: float
    global_batch: float
    synced: bool
    activation: str
    num_classes: int
    target_accuracy: float
    steps: float
    diverged: bool
    diverged_step: float
    final_acc: float
    acc_source: str
    path: str

    @property
    def is_bn(self) -> bool:
        return self.norm in BN_NORMS

    @property
    def chance(self) -> float:
        return 1.0 / self.num_classes if self.num_classes else float("nan")

    @property
    def acc_or_chance(self) -> float:
        """Final accuracy for comparisons: a diverged run (or one with no accuracy) scores chance."""
        if self.diverged or not math.isfinite(self.final_acc):
            return self.chance
        return self.final_acc


def _float(value: Any, default: float = float("nan")) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return default
    return out


def norm_of(result: dict, config: dict) -> str:
    """The run's normalization: the config's ``norm``; else guessed from the variant name.

    The guess (only without a config ``norm``): ``noisy`` with ``bn``/``batch`` is
    ``noisy_batch``, ``noisy`` alone ``noisy_none``, ``sync`` ``syncbatch``, ``bn``/``batch``
    ``batch``, anything else ``none``.
    """
    norm = result.get("norm") or config_value(config, "norm")
    if norm:
        return str(norm)
    name = str(result.get("variant", "")).lower()
    tokens = set(name.replace("-", "_").split("_"))
    has_bn = bool(tokens & {"bn", "batch", "batchnorm"}) or "batchnorm" in name
    if "noisy" in name:
        return "noisy_batch" if has_bn else "noisy_none"
    if "sync" in name:
        return "syncbatch"
    return "batch" if has_bn else "none"


def accuracy_curve(run: Run) -> tuple[pd.DataFrame, str]:
    """The run's accuracy-vs-step series (columns ``step``, ``acc``) and the key it came from.

    An empty frame and ``""`` when the run logged no accuracy.
    """
    m = run.metrics
    if m is not None:
        for key in ACC_CURVE_KEYS:
            if key in m.columns:
                s = m[[STEP, key]].dropna()
                if len(s):
                    return s.rename(columns={STEP: "step", key: "acc"}).reset_index(drop=True), key
    return pd.DataFrame({"step": pd.Series(dtype="int64"), "acc": pd.Series(dtype="float64")}), ""


def run_facts(run: Run) -> RunFacts:
    """Read :class:`RunFacts` from a run (record, config and metrics)."""
    res = run.result
    cfg = res.get("config") or {}
    metrics = res.get("metrics") or {}
    norm = norm_of(res, cfg)

    batch = _float(config_value(cfg, "batch_size"))
    ghost = config_value(cfg, "ghost_batch_size")
    devices = config_value(cfg, "devices")
    nodes = config_value(cfg, "num_nodes")
    world = (int(devices) if isinstance(devices, int) and devices > 0 else 1) * (
        int(nodes) if isinstance(nodes, int) and nodes > 0 else 1
    )
    explicit = res.get("per_device_batch", config_value(cfg, "per_device_batch"))
    if explicit is not None:
        per_device = _float(explicit)
    elif ghost:
        per_device = _float(ghost)
    else:
        per_device = batch
    # Under DDP data.batch_size is per device; a ghost-BN emulation on one device keeps the
    # global batch in batch_size and the per-device group in ghost_batch_size.
    global_batch = batch * world if not ghost else batch
    synced = norm == "syncbatch" or (norm == "batch" and not ghost and world == 1)

    curve, curve_key = accuracy_curve(run)
    if metrics.get(TEST_ACC) is not None:
        final_acc, acc_source = _float(metrics[TEST_ACC]), TEST_ACC
    elif metrics.get(VAL_ACC) is not None:
        final_acc, acc_source = _float(metrics[VAL_ACC]), VAL_ACC
    elif len(curve):
        final_acc, acc_source = float(curve["acc"].iloc[-1]), curve_key
    else:
        final_acc, acc_source = float("nan"), ""

    diverged = res.get("diverged", metrics.get("diverged"))
    if diverged is None and run.metrics is not None and "diverged" in run.metrics.columns:
        diverged = bool(np.nanmax(run.metrics["diverged"].to_numpy(dtype=float)) >= 1)
    steps = res.get("steps", metrics.get("global_step"))
    if steps is None and run.metrics is not None and len(run.metrics):
        steps = int(run.metrics[STEP].max())
    num_classes = config_value(cfg, "num_classes", 10)
    target = res.get("target_accuracy", metrics.get("target_accuracy"))
    if target is None:
        target = config_value(cfg, "target_accuracy")

    return RunFacts(
        recipe=str(res.get("recipe") or "unnamed"),
        variant=str(res.get("variant") or "default"),
        seed=int(res.get("seed") if res.get("seed") is not None else -1),
        norm=norm,
        lr=_float(config_value(cfg, "lr")),
        lr_multiplier=_float(config_value(cfg, "lr_multiplier"), 1.0),
        init_scale=_float(config_value(cfg, "init_scale"), 1.0),
        init=str(config_value(cfg, "init") or "default"),
        init_std=_float(config_value(cfg, "init_std")),
        depth=_float(config_value(cfg, "depth")),
        per_device_batch=per_device,
        global_batch=global_batch,
        synced=bool(synced),
        activation=str(config_value(cfg, "activation") or ""),
        num_classes=int(num_classes) if num_classes else 10,
        target_accuracy=_float(target),
        steps=_float(steps),
        diverged=bool(diverged),
        diverged_step=_float(res.get("diverged_step", metrics.get("diverged_step"))),
        final_acc=final_acc,
        acc_source=acc_source,
        path=str(run.path),
    )


def steps_to_target(run: Run, target: float) -> float:
    """First logged step at which the accuracy curve reached ``target``; NaN if it never did.

    Without an accuracy curve, the record's ``steps_to_target`` is used when its
    ``target_accuracy`` is ``target``.
    """
    curve, _ = accuracy_curve(run)
    if len(curve):
        hit = curve.loc[curve["acc"] >= target, "step"]
        return float(hit.iloc[0]) if len(hit) else float("nan")
    res = run.result
    if res.get("steps_to_target") is not None and _float(res.get("target_accuracy")) == target:
        return float(res["steps_to_target"])
    return float("nan")


def accuracy_at(run: Run, step: float) -> float:
    """The accuracy curve's value at the last logged step <= ``step`` (NaN before the first)."""
    curve, _ = accuracy_curve(run)
    before = curve.loc[curve["step"] <= step, "acc"]
    return float(before.iloc[-1]) if len(before) else float("nan")
