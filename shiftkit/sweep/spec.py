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
        paper: {data: shiftkit.data.MnistDataModule, trainer.max_steps: 50000}

A cell is ``shiftkit fit --config <file> [scale overrides] [--variant NAME] [grid values]
[extra args]``; its id is the :func:`~shiftkit.records.config_hash` of the config it resolves to
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

import yaml

from shiftkit.cli.argv import overrides_to_args

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
SECTION_KEYS = ("grid", "variants", "scales")
SMALL = "small"


class SweepError(ValueError):
    """A malformed sweep file or request (the message names the file and the key)."""


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


def _mapping(value: Any, what: str, path: Path) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SweepError(f"{path}: {what} must be a mapping, got {type(value).__name__}")
    return value


def load_sweep(path: str | Path) -> SweepSpec:
    """Read a sweep file (a recipe with an optional ``sweep:`` section).

    Raises:
        SweepError: unknown keys in the section, grid values that are not non-empty lists,
            variants that are not mappings, or a key set by both the grid and a variant.
        FileNotFoundError: no such file.
    """
    path = Path(path).resolve()
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise SweepError(f"{path}: not a recipe (a YAML mapping)")
    section = _mapping(data.get("sweep"), "sweep", path)
    unknown = [k for k in section if k not in SECTION_KEYS]
    if unknown:
        raise SweepError(
            f"{path}: unknown key 'sweep.{unknown[0]}'; a sweep section has {', '.join(SECTION_KEYS)}"
        )
    grid = {}
    for key, values in _mapping(section.get("grid"), "sweep.grid", path).items():
        if not isinstance(values, list) or not values:
            raise SweepError(f"{path}: sweep.grid.{key} must be a non-empty list of values")
        grid[str(key)] = values
    variants = {}
    for name, overrides in _mapping(section.get("variants"), "sweep.variants", path).items():
        variants[str(name)] = dict(_mapping(overrides, f"sweep.variants.{name}", path))
        both = sorted(set(variants[str(name)]) & set(grid))
        if both:
            raise SweepError(
                f"{path}: '{both[0]}' is set by both sweep.grid and sweep.variants.{name}; "
                "set each key in one place"
            )
    scales = {SMALL: {}}
    for name, overrides in _mapping(section.get("scales"), "sweep.scales", path).items():
        scales[str(name)] = dict(_mapping(overrides, f"sweep.scales.{name}", path))
    return SweepSpec(path, str(data.get("recipe") or path.stem), grid, variants, scales)


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
    base = ["--config", str(spec.path), *overrides_to_args(spec.scales[scale])]
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
