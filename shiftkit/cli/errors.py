"""One clear line for an unknown config key: which key, in which file, and what was meant.

jsonargparse names the key (``Subcommand 'fit' does not accept option 'model.nrom'``, or a
dozen lines about Union subtypes for a DataModule argument) but not the file it came from;
:func:`explain_parse_error` finds the file and suggests the closest accepted name.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from shiftkit.cli.argv import config_paths

__all__ = ["explain_parse_error", "unknown_key"]

_UNKNOWN = (
    re.compile(r"does not accept option '([^']+)'"),
    re.compile(r"Option '([^']+)' is not accepted"),
    re.compile(r'No action for key "([^"]+)"'),
    re.compile(r"[Uu]nrecognized arguments: (\S+)"),
)
_PARSER_KEY = re.compile(r'Parser key "([^"]+)"')


def unknown_key(message: str) -> tuple[str, str | None] | None:
    """``(key, parser_key)`` of the first unknown key a jsonargparse error names, or None.

    ``parser_key`` is the group the key was given to (``data`` for a DataModule argument).

    Example:
        >>> unknown_key("Subcommand 'fit' does not accept option 'model.nrom'")
        ('model.nrom', None)
    """
    for pattern in _UNKNOWN:
        match = pattern.search(message)
        if match:
            group = _PARSER_KEY.search(message)
            key = match.group(1).split("=", 1)[0].lstrip("-")
            return key, group.group(1) if group else None
    return None


def _leaves(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{prefix}{key}"
            yield path, value
            yield from _leaves(value, f"{path}.")


def _strip_init_args(path: str) -> str:
    return ".".join(part for part in path.split(".") if part != "init_args")


def _find_in_file(path: Path, key: str, group: str | None) -> str | None:
    """The dotted path under which ``path`` holds ``key`` (an option of ``group``), or None."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    wanted = {key, f"{group}.{key}"} if group else {key}
    for dotted, _ in _leaves(data):
        if _strip_init_args(dotted) in wanted:
            return dotted
    return None


def _class_of(path: Path, group: str) -> type | None:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        class_path = data[group]["class_path"] if isinstance(data[group], dict) else data[group]
        module, _, name = class_path.rpartition(".")
        return getattr(importlib.import_module(module), name)
    except Exception:  # a suggestion is a bonus: never fail the error message on it
        return None


def _suggestion(key: str, group: str | None, known: list[str], cls: type | None) -> str:
    if cls is not None:
        names = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
        leaf = key.rsplit(".", 1)[-1]
        close = difflib.get_close_matches(leaf, names, n=1)
        return f"; did you mean '{close[0]}' ({cls.__name__})?" if close else ""
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.75)
    return f"; did you mean '{close[0]}'?" if close else ""


def explain_parse_error(message: str, argv: list[str], known_keys: list[str] = ()) -> str:
    """A one-line message for a parse error about an unknown key; else ``message`` unchanged.

    Args:
        message: jsonargparse's error message.
        argv: the command line that was parsed (its ``--config`` files are searched).
        known_keys: accepted dotted keys, for a "did you mean" suggestion.

    Example:
        >>> explain_parse_error("Subcommand 'fit' does not accept option 'model.nrom'",
        ...                     ["fit", "--model.nrom=batch"], ["model.norm"])
        "unknown option '--model.nrom' on the command line; did you mean 'model.norm'?"
    """
    found = unknown_key(message)
    if found is None:
        return message
    key, group = found
    full = f"{group}.{key}" if group and not key.startswith(f"{group}.") else key
    for path in reversed(config_paths(argv)):  # the last file that has it set it
        where = _find_in_file(path, key, group)
        if where is not None:
            cls = _class_of(path, group) if group else None
            hint = _suggestion(full, group, list(known_keys), cls)
            return f"unknown key '{where}' in config file {path}{hint}"
    hint = _suggestion(full, group, list(known_keys), None)
    if any(arg.lstrip("-").split("=", 1)[0] in (key, full) for arg in argv):
        return f"unknown option '--{full}' on the command line{hint}"
    return f"unknown key '{full}'{hint} ({message.splitlines()[0]})"
