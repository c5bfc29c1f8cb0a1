"""Result records: one small JSON file per finished sweep cell, read by the reports.

A record is a plain dict (config, final metrics, paths to the run's logs...).
It is written atomically, so a report never reads half a file, and it never
holds a secret: keys that look like credentials are stripped before writing.

Example:
    >>> cfg = {"norm": "batch", "lr": 0.1, "seed": 0}
    >>> path = write_result_record(f"results/{config_hash(cfg)}.json",  # doctest: +SKIP
    ...                            {"config": cfg, "test/acc": 0.97})
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any

from shiftkit.records.atomic import atomic_write_bytes

SCHEMA_VERSION = 1
"""Version of the record layout; bump it when a reader would misread old records."""
SCHEMA_KEY = "schema_version"
"""Key under which every record stores :data:`SCHEMA_VERSION`."""

_SECRET_KEY_PARTS = ("api_key", "apikey", "token", "secret", "password")


def config_hash(config: dict) -> str:
    """Return a stable 12-hex-digit id of a config: sha256 of its canonical JSON.

    Canonical: keys sorted, no whitespace, ASCII. Key order does not change the
    hash; any value does, including its JSON type (``1`` and ``1.0`` differ).
    numpy scalars and arrays hash like the Python numbers and lists they hold.
    """
    canonical = json.dumps(
        config, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=_jsonable
    )
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()[:12]


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "tolist"):  # numpy scalars/arrays, torch tensors
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable: {obj!r}")


def is_secret_key(key: str) -> bool:
    """Whether a key names a credential: contains api_key, token, secret or password.

    Case-insensitive, ``-`` read as ``_``: ``WANDB_API_KEY``, ``hf-token``,
    ``db_password``. Deliberately broad (``max_tokens`` matches too): a stripped
    harmless key costs less than a leaked key.
    """
    normalized = key.lower().replace("-", "_")
    return any(part in normalized for part in _SECRET_KEY_PARTS)


def strip_secrets(record: Any) -> tuple[Any, list[str]]:
    """Return a copy of ``record`` without secret-looking keys, and their dotted paths.

    Recurses into dicts and lists. A string equal to the ``WANDB_API_KEY``
    environment variable is dropped wherever it appears, whatever its key.
    """
    stripped: list[str] = []
    clean = _strip(record, "", os.environ.get("WANDB_API_KEY") or None, stripped)
    return clean, stripped


def _strip(value: Any, where: str, api_key: str | None, stripped: list[str]) -> Any:
    if isinstance(value, dict):
        items = [(f"{where}{k}", k, v) for k, v in value.items()]
    elif isinstance(value, (list, tuple)):
        items = [(f"{where}{i}", i, v) for i, v in enumerate(value)]
    else:
        return value
    kept = {}
    for path, key, item in items:
        named_secret = isinstance(key, str) and is_secret_key(key)
        if named_secret or (api_key is not None and isinstance(item, str) and item == api_key):
            stripped.append(path)
        else:
            kept[key] = _strip(item, f"{path}.", api_key, stripped)
    return kept if isinstance(value, dict) else list(kept.values())


def write_result_record(path: str | os.PathLike, record: dict) -> Path:
    """Write ``record`` as JSON to ``path`` atomically, with ``schema_version``, minus secrets.

    The JSON goes to a temporary file in the same directory, is flushed to
    disk, then ``os.replace``-d over ``path``: readers see the old file or the
    new one, never a partial one; if anything fails the old file is untouched
    and the temporary file removed. Secret-looking keys (see
    :func:`is_secret_key`) are stripped with a warning naming them (never the
    values). Parent directories are created; the file's mode is 0644.

    Returns:
        The path written.
    """
    path = Path(path)
    clean, stripped = strip_secrets(record)
    if stripped:
        warnings.warn(
            f"result record {path}: stripped secret-looking keys {stripped}", stacklevel=2
        )
    clean[SCHEMA_KEY] = SCHEMA_VERSION
    text = json.dumps(clean, indent=2, sort_keys=True, default=_jsonable) + "\n"
    atomic_write_bytes(path, text.encode("utf-8"))
    return path


def read_result_records(directory: str | os.PathLike) -> list[dict]:
    """Read every ``*.json`` result record in ``directory`` (not recursive), sorted by file name.

    Temporary files of unfinished writes are skipped.

    Raises:
        ValueError: naming the file, if one is not valid JSON, not a JSON
            object, or has no or a newer ``schema_version``.
    """
    records = []
    for file in sorted(Path(directory).glob("*.json")):
        if file.name.startswith("."):  # a temp file (ours end in .tmp; be safe anyway)
            continue
        try:
            record = json.loads(file.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{file}: corrupt result record: {err}") from err
        if not isinstance(record, dict) or not isinstance(record.get(SCHEMA_KEY), int):
            raise ValueError(f"{file}: not a result record (no integer {SCHEMA_KEY!r})")
        if record[SCHEMA_KEY] > SCHEMA_VERSION:
            raise ValueError(
                f"{file}: result record schema {record[SCHEMA_KEY]} is newer than this "
                f"shiftkit reads ({SCHEMA_VERSION}); upgrade shiftkit"
            )
        records.append(record)
    return records
