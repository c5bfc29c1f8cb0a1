"""Recipe files, read in one place: a LightningCLI config plus an optional ``sweep:`` section.

``shiftkit fit --config R --variant NAME`` (:mod:`shiftkit.cli.argv`) and ``shiftkit sweep R``
(:mod:`shiftkit.sweep.spec`) both read a recipe's named variants through :func:`read_recipe`,
so a malformed section gives the same one-line error, naming the file and the key, either way.
The section (``fit`` itself ignores it)::

    sweep:
      grid:     {dotted.key: [values...], ...}      # every combination
      variants: {name: {dotted.key: value, ...}}    # named bundles of overrides
      scales:   {name: {dotted.key: value, ...}}    # override sets picked by --scale
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = ["SECTION_KEYS", "RecipeError", "SweepSection", "read_recipe", "recipe_variants"]

SECTION_KEYS = ("grid", "variants", "scales")
"""The keys a recipe's ``sweep:`` section may have."""


class RecipeError(ValueError):
    """A malformed recipe file (the message names the file and the key)."""


@dataclass(frozen=True)
class SweepSection:
    """A recipe's checked ``sweep:`` section (every part empty when it has none).

    Attributes:
        grid: dotted key -> non-empty list of values.
        variants: variant name -> overrides (dotted key -> value).
        scales: scale name -> overrides.
    """

    grid: dict[str, list[Any]] = field(default_factory=dict)
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    scales: dict[str, dict[str, Any]] = field(default_factory=dict)


def _mapping(value: Any, what: str, path: Path) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RecipeError(f"{path}: {what} must be a mapping, got {type(value).__name__}")
    return value


def read_recipe(path: str | Path) -> tuple[dict[str, Any], SweepSection]:
    """The recipe's YAML mapping and its checked ``sweep:`` section.

    Raises:
        RecipeError: the file is not a YAML mapping; unknown keys in the section, grid values
            that are not non-empty lists, variants or scales that are not mappings, or a key
            set by both the grid and a variant.
        FileNotFoundError: no such file.
    """
    path = Path(path)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: not a recipe (a YAML mapping)")
    section = _mapping(data.get("sweep"), "sweep", path)
    unknown = [k for k in section if k not in SECTION_KEYS]
    if unknown:
        raise RecipeError(
            f"{path}: unknown key 'sweep.{unknown[0]}'; a sweep section has {', '.join(SECTION_KEYS)}"
        )
    grid = {}
    for key, values in _mapping(section.get("grid"), "sweep.grid", path).items():
        if not isinstance(values, list) or not values:
            raise RecipeError(f"{path}: sweep.grid.{key} must be a non-empty list of values")
        grid[str(key)] = values
    variants = {}
    for name, overrides in _mapping(section.get("variants"), "sweep.variants", path).items():
        variants[str(name)] = dict(_mapping(overrides, f"sweep.variants.{name}", path))
        both = sorted(set(variants[str(name)]) & set(grid))
        if both:
            raise RecipeError(
                f"{path}: '{both[0]}' is set by both sweep.grid and sweep.variants.{name}; "
                "set each key in one place"
            )
    scales = {
        str(name): dict(_mapping(overrides, f"sweep.scales.{name}", path))
        for name, overrides in _mapping(section.get("scales"), "sweep.scales", path).items()
    }
    return data, SweepSection(grid, variants, scales)


def recipe_variants(path: str | Path) -> dict[str, dict[str, Any]]:
    """The named variants (``sweep: variants:``) of a recipe file; ``{}`` if it has none.

    Raises:
        RecipeError: the recipe is malformed (see :func:`read_recipe`).

    Example:
        >>> import tempfile, pathlib
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "r.yaml"
        >>> _ = f.write_text("sweep:\\n  variants:\\n    bn: {model.norm: batch}\\n")
        >>> recipe_variants(f)
        {'bn': {'model.norm': 'batch'}}
    """
    return read_recipe(path)[1].variants
