"""Command-line shorthands of ``shiftkit fit``, expanded before LightningCLI parses the line.

* ``--data NAME`` (a key of :data:`shiftkit.data.DATAMODULES`, e.g. ``--data=digits``) stands for
  ``--data=shiftkit.data.DigitsDataModule``.
* ``--variant NAME`` applies the overrides of the named variant of the recipe (the ``sweep:
  variants:`` section of a ``--config`` file given before it), at the place where it appears: the
  config before it, the variant, then the arguments after it. With no variants in any config it is
  only a label (recorded in ``result.json``).

Both work in config files too, but only as what they are there: ``data`` takes a class path and
``variant`` is a label.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from shiftkit.cli.recipe import recipe_variants

__all__ = [
    "ArgvError",
    "arg_value",
    "config_paths",
    "expand_argv",
    "overrides_to_args",
]

CONFIG_FLAGS = ("--config", "-c")


class ArgvError(ValueError):
    """A shorthand on the command line that cannot be expanded (the message says why)."""


def arg_value(value: Any) -> str:
    """A config value as jsonargparse reads it back from ``--key=<value>``.

    Strings pass as they are; everything else as JSON (which is YAML): ``true``, ``null``,
    ``0.5``, ``[1, 5, 30]``, ``{"class_path": ...}``.

    Example:
        >>> [arg_value(v) for v in ("batch", True, None, 5, [0, 1])]
        ['batch', 'true', 'null', '5', '[0, 1]']
    """
    return value if isinstance(value, str) else json.dumps(value)


def overrides_to_args(overrides: dict[str, Any]) -> list[str]:
    """``{"model.norm": "batch", "seed_everything": 1}`` -> ``["--model.norm=batch",
    "--seed_everything=1"]``, in the dict's order (order matters: a ``data`` class before its
    ``data.*`` arguments)."""
    return [f"--{key}={arg_value(value)}" for key, value in overrides.items()]


def _flag_value(argv: list[str], i: int, flags: tuple[str, ...]) -> tuple[str | None, int]:
    """If ``argv[i]`` is one of ``flags`` (``--flag value`` or ``--flag=value``): its value and
    the number of tokens it used; else ``(None, 0)``."""
    token = argv[i]
    for flag in flags:
        if token == flag:
            if i + 1 >= len(argv):
                raise ArgvError(f"{flag} needs a value")
            return argv[i + 1], 2
        if token.startswith(flag + "="):
            return token[len(flag) + 1 :], 1
    return None, 0


def config_paths(argv: list[str]) -> list[Path]:
    """The ``--config`` files of a command line that exist as files, in order."""
    paths, i = [], 0
    while i < len(argv):
        value, used = _flag_value(argv, i, CONFIG_FLAGS)
        if used:
            if Path(value).is_file():
                paths.append(Path(value))
            i += used
        else:
            i += 1
    return paths


def _data_shorthand(value: str) -> str:
    from shiftkit.data import DATAMODULES

    cls = DATAMODULES.get(value)
    return f"shiftkit.data.{cls.__name__}" if cls is not None else value


def expand_argv(argv: list[str]) -> list[str]:
    """Expand the ``--data NAME`` and ``--variant NAME`` shorthands (see the module docstring).

    Raises:
        ArgvError: ``--variant`` names a variant that the recipe's variants do not have.
        RecipeError: a ``--config`` file is a malformed recipe (see :mod:`shiftkit.cli.recipe`).

    Example:
        >>> expand_argv(["fit", "--data", "digits", "--model.lr=0.1"])
        ['fit', '--data=shiftkit.data.DigitsDataModule', '--model.lr=0.1']
    """
    out: list[str] = []
    variants: dict[str, dict[str, Any]] = {}
    variant_source: list[Path] = []
    i = 0
    while i < len(argv):
        value, used = _flag_value(argv, i, CONFIG_FLAGS)
        if used:
            out += argv[i : i + used]
            if Path(value).is_file():
                found = recipe_variants(value)
                if found:
                    variants.update(found)
                    variant_source.append(Path(value))
            i += used
            continue
        value, used = _flag_value(argv, i, ("--data",))
        if used:
            out.append(f"--data={_data_shorthand(value)}")
            i += used
            continue
        value, used = _flag_value(argv, i, ("--variant",))
        if used:
            out.append(f"--variant={value}")
            if variants:
                if value not in variants:
                    raise ArgvError(
                        f"--variant={value}: no such variant in "
                        f"{', '.join(map(str, variant_source))}; known variants: "
                        f"{', '.join(variants)}"
                    )
                out += overrides_to_args(variants[value])
            i += used
            continue
        out.append(argv[i])
        i += 1
    return out
