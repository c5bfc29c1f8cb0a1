"""Sweep files: a recipe plus its ``sweep:`` section (grid, named variants, scales) -> cells.

A sweep file *is* a recipe (``shiftkit fit --config recipes/x.yaml`` runs its base config) with a
``sweep:`` section that ``fit`` ignores::

    sweep:
      grid:                       # every combination of these values (dotted fit keys)
        model.lr_multiplier: [1, 5, 30]
        seed_everything: [0, 1, 2]
      variants:                   # named bundles of overrides; crossed with the grid
        plain: {model.norm: none}
        bn: {model.norm: batch}
      scales:                     # named override sets picked by --scale (small = the recipe)
        paper: {data: shiftkit.data.MnistDataModule, trainer.max_steps: 50000,
                variants: {bn: {model.lr: 0.5}}}   # optional: a variant's values at this scale

A cell is ``shiftkit fit --config <file> [scale overrides] [--variant NAME] [the scale's
overrides of that variant] [grid values] [extra args]``; its id is the :func:`~shiftkit.records.config_hash` of the config it resolves to
(:class:`~shiftkit.cli.fit.ConfigResolver`), the same hash ``shiftkit fit`` records.
Cells are ordered seed first (a sweep stopped after a third has every variant at one seed),
then variant, then the other grid keys in file order. A shard ``i/n`` of a grid
(:func:`shard_cells`) is the cells whose index in that order is ``i`` mod ``n``: shards of one
grid, planned with the same arguments, are disjoint and together are the whole grid.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shiftkit.cli.argv import overrides_to_args
from shiftkit.cli.recipe import RecipeError, read_recipe

__all__ = [
    "SEED_KEY",
    "Cell",
    "SweepError",
    "SweepSpec",
    "load_sweep",
    "parse_shard",
    "plan_cells",
    "shard_cells",
]

SEED_KEY = "seed_everything"
SMALL = "small"
SCALE_VARIANTS = "variants"
"""A scale's key for its overrides of named variants (a variant's values that differ at that scale)."""

SweepError = RecipeError
"""A malformed sweep file or request (the message names the file and the key): the recipe's
error, so that ``shiftkit fit`` and ``shiftkit sweep`` report a malformed section alike."""


@dataclass(frozen=True)
class SweepSpec:
    """A parsed sweep file.

    Attributes:
        path: the recipe file (absolute).
        recipe: its ``recipe`` key, or the file's stem.
        grid: dotted key -> list of values.
        variants: variant name -> overrides (dotted key -> value); empty: no named variants.
        scales: scale name -> overrides; ``small`` is always there (``{}`` unless given).
    """

    path: Path
    recipe: str
    grid: dict[str, list[Any]] = field(default_factory=dict)
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    scales: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class Cell:
    """One run of a sweep.

    Attributes:
        variant: the variant name (None without named variants).
        params: the grid values of this cell (dotted key -> value).
        fit_args: the ``shiftkit fit`` arguments (after ``fit``), without ``--run_dir``.
        cell_id: config hash of the resolved config (set by the runner).
        config: the resolved, recorded config (set by the runner).
    """

    variant: str | None
    params: dict[str, Any]
    fit_args: list[str]
    cell_id: str | None = None
    config: dict[str, Any] | None = None

    @property
    def seed(self) -> Any:
        return self.params.get(SEED_KEY)

    def label(self) -> str:
        """``bn model.lr_multiplier=5 seed=1``: the variant and the grid values."""
        parts = [self.variant] if self.variant else []
        for key, value in self.params.items():
            parts.append(f"seed={value}" if key == SEED_KEY else f"{key}={value}")
        return " ".join(parts)


def load_sweep(path: str | Path) -> SweepSpec:
    """Read a sweep file (a recipe with an optional ``sweep:`` section).

    Raises:
        SweepError: unknown keys in the section, grid values that are not non-empty lists,
            variants that are not mappings, or a key set by both the grid and a variant (see
            :func:`~shiftkit.cli.recipe.read_recipe`, which ``shiftkit fit`` reads it with too).
        FileNotFoundError: no such file.
    """
    path = Path(path).resolve()
    data, section = read_recipe(path)
    scales = {SMALL: {}, **section.scales}
    return SweepSpec(path, str(data.get("recipe") or path.stem), section.grid, section.variants, scales)


def plan_cells(
    spec: SweepSpec,
    scale: str = SMALL,
    seeds: list[int] | None = None,
    extra_args: list[str] = (),
) -> list[Cell]:
    """The cells of a sweep, in run order (ids not resolved yet).

    Args:
        spec: the sweep.
        scale: a key of ``spec.scales``: its overrides come right after ``--config``.
        seeds: replace (or add) the ``seed_everything`` grid axis.
        extra_args: more ``shiftkit fit`` arguments, last (so they win).

    Raises:
        SweepError: unknown scale.
    """
    if scale not in spec.scales:
        raise SweepError(
            f"{spec.path}: no scale '{scale}'; scales: {', '.join(spec.scales)} (sweep.scales)"
        )
    grid = dict(spec.grid)
    if seeds is not None:
        grid[SEED_KEY] = [int(s) for s in seeds]
    keys = ([SEED_KEY] if SEED_KEY in grid else []) + [k for k in grid if k != SEED_KEY]
    overrides = dict(spec.scales[scale])
    per_variant = overrides.pop(SCALE_VARIANTS, None) or {}
    unknown = sorted(set(per_variant) - set(spec.variants))
    if unknown:
        raise SweepError(f"{spec.path}: sweep.scales.{scale}.variants names unknown variant(s) {unknown}; "
                         f"variants: {', '.join(spec.variants) or 'none'}")  # fmt: skip
    base = ["--config", str(spec.path), *overrides_to_args(overrides)]
    variants = list(spec.variants) or [None]
    cells = []
    seed_values = grid.get(SEED_KEY, [None])
    rest = [k for k in keys if k != SEED_KEY]
    for seed in seed_values:
        for variant in variants:
            for combo in itertools.product(*(grid[k] for k in rest)):
                params = ({SEED_KEY: seed} if seed is not None else {}) | dict(zip(rest, combo))
                args = list(base)
                if variant is not None:
                    args.append(f"--variant={variant}")
                    args += overrides_to_args(per_variant.get(variant) or {})
                args += overrides_to_args(params)
                args += list(extra_args)
                cells.append(Cell(variant, params, args))
    return cells


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)``, with ``0 <= i < n``.

    Raises:
        SweepError: not of that form.
    """
    index, sep, count = str(text).partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        i, n = -1, 0
    if not sep or not 0 <= i < n:
        raise SweepError(f"--shard must be i/n with 0 <= i < n (e.g. 0/4), got {text!r}")
    return i, n


def shard_cells(cells: list[Cell], index: int, count: int) -> list[Cell]:
    """The cells of shard ``index`` of ``count``: those at positions ``index``, ``index + count``,
    ... of ``cells`` (the planned order, duplicates dropped, is stable: it depends on the sweep
    file and the arguments only, not on what has run)."""
    return cells[index::count]
