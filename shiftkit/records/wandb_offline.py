"""Read back a W&B run from its local ``.wandb`` file: no network, no W&B API.

A run directory (``wandb/offline-run-YYYYMMDD_HHMMSS-<id>/``, or ``run-...`` for an
online run) holds ``run-<id>.wandb``: a 7-byte W&B header followed by protobuf
``wandb_internal_pb2.Record`` messages in LevelDB-log framing. As written by
wandb 0.31's ``wandb-core`` (``core/pkg/leveldb/record.go``):

- header: ``b":W&B"``, magic ``0xBEE1`` (uint16, little-endian), version ``0``;
  it sits at the start of the first 32 KiB block and counts towards it;
- the file is a sequence of 32 KiB blocks (the last may be short), each a
  sequence of chunks: crc (uint32 LE), length (uint16 LE), type (uint8:
  FULL=1, FIRST=2, MIDDLE=3, LAST=4), then ``length`` payload bytes;
- the crc is the plain IEEE CRC-32 (``zlib.crc32``) of the type byte and the
  payload, not LevelDB's masked CRC-32C;
- a chunk never crosses a block; a block tail shorter than a chunk header is
  zero padding, and a record larger than what is left is split FIRST, MIDDLE..., LAST.

The file is appended to while the run is live, and a crashed process leaves a
cut-off last record: reading stops at the first incomplete or corrupt chunk
with a :class:`TruncatedRunWarning` and returns what came before it.

Values are JSON in the file. ``wandb.log({"a": {"b": 1}})`` is stored under the
key path ``("a", "b")`` and read back, as the W&B API does, as column ``"a.b"``;
media such as ``wandb.Histogram`` (dicts with a ``_type``) stay whole dicts,
e.g. ``{"_type": "histogram", "bins": [...], "values": [...]}``.

wandb-core buffers the current 32 KiB block and writes it when the block is full
or the run is closed, so a live run's file lags behind what was logged, and
``wandb.finish()`` (0.31) may return before the file is complete: call
:func:`wait_for_wandb_run` before reading a run that was just finished. For the
same reason, under DDP with forked workers rank 0 must call ``wandb.finish()`` at
teardown, or the run file stays empty.
"""

from __future__ import annotations

import json
import os
import re
import struct
import time
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from shiftkit.extras import require
from shiftkit.records.frames import merge_rows_by_step

WANDB_FILE_HEADER = b":W&B" + struct.pack("<HB", 0xBEE1, 0)
"""First 7 bytes of a ``.wandb`` file: ident, magic 0xBEE1 (LE), version 0."""
BLOCK_SIZE = 32 * 1024
"""LevelDB-log block size; the file header is part of the first block."""
WANDB_STEP = "_step"
"""W&B's own history step (one per ``wandb.log`` call that commits)."""

_CHUNK = struct.Struct("<IHB")  # crc32, payload length, chunk type
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4
_RUN_DIR_TIME = re.compile(r"run-(\d{8}_\d{6})-")
_INTERNAL_KEY = "_wandb"  # W&B's own bookkeeping in summary and config


class TruncatedRunWarning(UserWarning):
    """A ``.wandb`` file ended inside a record, or a chunk failed its checksum."""


def iter_wandb_records(path: str | os.PathLike) -> Iterator[bytes]:
    """Yield the serialized ``Record`` payloads of a ``.wandb`` file, in order.

    Stops with a :class:`TruncatedRunWarning` (never an exception) at a cut-off
    or corrupt chunk.

    Raises:
        ValueError: if the file does not start with :data:`WANDB_FILE_HEADER`.
    """
    with open(path, "rb") as f:
        block = f.read(BLOCK_SIZE)
        if not block.startswith(WANDB_FILE_HEADER):
            if WANDB_FILE_HEADER.startswith(block):  # header itself still being written
                _warn_truncated(path, len(block), "file ends inside the W&B header")
                return
            raise ValueError(f"{path}: not a W&B run file (starts {block[:7]!r})")
        block_start, pos, pending = 0, len(WANDB_FILE_HEADER), None
        while True:
            if len(block) - pos < _CHUNK.size:
                if len(block) == BLOCK_SIZE:  # the rest is padding: next block
                    block_start, pos, block = block_start + BLOCK_SIZE, 0, f.read(BLOCK_SIZE)
                    continue
                if pending is not None or any(block[pos:]):  # zeros: cut in padding
                    _warn_truncated(path, block_start + pos, "file ends inside a record")
                return
            chunk_offset = block_start + pos
            crc, length, kind = _CHUNK.unpack_from(block, pos)
            if crc == length == kind == 0:  # zero-filled (preallocated) rest of block
                pos = BLOCK_SIZE
                continue
            start, end = pos + _CHUNK.size, pos + _CHUNK.size + length
            if end > len(block):
                why = "file ends inside a record" if len(block) < BLOCK_SIZE else "bad length"
                _warn_truncated(path, chunk_offset, why)
                return
            payload = block[start:end]
            if zlib.crc32(payload, zlib.crc32(bytes((kind,)))) != crc:
                _warn_truncated(path, chunk_offset, "checksum mismatch")
                return
            pos = end
            if kind == _FULL and pending is None:
                yield payload
            elif kind == _FIRST and pending is None:
                pending = bytearray(payload)
            elif kind == _MIDDLE and pending is not None:
                pending += payload
            elif kind == _LAST and pending is not None:
                yield bytes(pending + payload)
                pending = None
            else:
                _warn_truncated(path, chunk_offset, f"unexpected chunk type {kind}")
                return


def _warn_truncated(path, offset: int, why: str) -> None:
    warnings.warn(
        f"{path}: {why} at byte {offset}; reading stopped there",
        TruncatedRunWarning,
        stacklevel=3,
    )


def find_wandb_run_file(path: str | os.PathLike, run_id: str | None = None) -> Path:
    """Return the ``run-<id>.wandb`` file that ``path`` designates.

    Args:
        path: the ``.wandb`` file, its run directory, a ``wandb/`` directory of
            run directories, or the directory that holds ``wandb/`` (a logger's
            ``save_dir``).
        run_id: pick this run; by default the latest (by the run directory's
            timestamp, then the file's modification time).

    Raises:
        FileNotFoundError: if no (matching) run file is found.
    """
    path = Path(path)
    if path.is_file():
        return path
    candidates = [
        run_file
        for pattern in ("run-*.wandb", "*run-*/run-*.wandb", "wandb/*run-*/run-*.wandb")
        for run_file in path.glob(pattern)
    ]
    if run_id is not None:
        candidates = [c for c in candidates if c.name == f"run-{run_id}.wandb"]
    if not candidates:
        wanted = f"run {run_id!r}" if run_id else "any run"
        raise FileNotFoundError(f"no .wandb file for {wanted} under {path}")
    return max(candidates, key=_run_file_age)


def _run_file_age(run_file: Path) -> tuple[str, int]:
    match = _RUN_DIR_TIME.search(run_file.parent.name)
    return (match.group(1) if match else "", run_file.stat().st_mtime_ns)


@dataclass
class _RunContents:
    history: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    complete: bool = False  # saw the exit record W&B writes when the run finishes


def _read_run(path, run_id) -> _RunContents:
    from google.protobuf.message import DecodeError
    require("wandb", "reading a W&B run's files")
    from wandb.proto import wandb_internal_pb2  # lazy: importing wandb is slow

    run_file = find_wandb_run_file(path, run_id)
    contents = _RunContents()
    for payload in iter_wandb_records(run_file):
        record = wandb_internal_pb2.Record()
        try:
            record.ParseFromString(payload)
        except DecodeError as err:  # passed the crc, so written wrong: stop, as for corruption
            warnings.warn(f"{run_file}: undecodable record ({err}); reading stopped there",
                          TruncatedRunWarning, stacklevel=3)
            break
        kind = record.WhichOneof("record_type")
        if kind == "history":
            row: dict = {}
            _apply_items(row, record.history.item)
            if WANDB_STEP not in row and record.history.HasField("step"):
                row[WANDB_STEP] = record.history.step.num
            contents.history.append(_flatten(row))
        elif kind == "summary":
            _apply_items(contents.summary, record.summary.update, record.summary.remove)
        elif kind == "config":
            _apply_items(contents.config, record.config.update, record.config.remove)
        elif kind == "run":
            _apply_items(contents.config, record.run.config.update, record.run.config.remove)
        elif kind == "exit":
            contents.complete = True
    contents.summary.pop(_INTERNAL_KEY, None)
    contents.config.pop(_INTERNAL_KEY, None)
    contents.summary = _flatten(contents.summary)
    return contents


def _apply_items(target: dict, updates, removes=()) -> None:
    """Apply protobuf items (``key`` or ``nested_key`` path + ``value_json``) to a nested dict."""
    for item in updates:
        *parents, leaf = list(item.nested_key) or [item.key]
        node = target
        for name in parents:
            if not isinstance(node.get(name), dict):  # a scalar key became a nested one
                node[name] = {}
            node = node[name]
        node[leaf] = json.loads(item.value_json)  # json accepts NaN/Infinity as W&B writes them
    for item in removes:
        *parents, leaf = list(item.nested_key) or [item.key]
        node = target
        for name in parents:
            node = node.get(name) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(leaf, None)


def _flatten(nested: dict, prefix: str = "") -> dict:
    """Join plain nested dicts' keys with ``.``; keep media dicts (with ``_type``) whole."""
    flat = {}
    for key, value in nested.items():
        if isinstance(value, dict) and "_type" not in value and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def read_wandb_offline(
    path: str | os.PathLike, run_id: str | None = None, step_col: str = WANDB_STEP
) -> pd.DataFrame:
    """Read the history of a local W&B run into one row per step.

    Args:
        path: see :func:`find_wandb_run_file`.
        run_id: see :func:`find_wandb_run_file`.
        step_col: the column to key rows by: ``"_step"`` (W&B's step, one per
            ``wandb.log`` call), or ``"trainer/global_step"`` for a Lightning
            ``WandbLogger`` run, which logs several W&B steps per Trainer step;
            rows sharing a step are merged, keeping each column's last
            non-null value, and rows without ``step_col`` are dropped.

    Returns:
        A DataFrame sorted by ``step_col`` (``int64``, first). Scalars are
        floats/ints, media (``wandb.Histogram``...) are dicts in object columns.
        ``df.attrs["complete"]`` says whether the run's exit record was read
        (False: still running, crashed, or not yet flushed).
    """
    contents = _read_run(path, run_id)
    if contents.history:
        df = merge_rows_by_step(pd.DataFrame(contents.history), step_col)
    else:
        df = pd.DataFrame({step_col: pd.Series(dtype="int64")})
    df.attrs["complete"] = contents.complete
    return df


def read_wandb_offline_summary(path: str | os.PathLike, run_id: str | None = None) -> dict:
    """Return the final run summary (last value of each key, plus ``wandb.summary`` writes).

    Keys are flattened as in :func:`read_wandb_offline`; W&B's internal
    ``_wandb`` entry is left out.
    """
    return _read_run(path, run_id).summary


def read_wandb_offline_config(path: str | os.PathLike, run_id: str | None = None) -> dict:
    """Return the run config (as given to ``wandb.init`` and ``wandb.config`` updates), nested."""
    return _read_run(path, run_id).config


def wait_for_wandb_run(
    path: str | os.PathLike, run_id: str | None = None, timeout: float = 30.0
) -> Path:
    """Wait until a run's ``.wandb`` file holds its exit record, and return the file.

    ``wandb.finish()`` can return before wandb-core has written the last
    buffered block; reading right after it may see only the 7-byte header.

    Args:
        path: see :func:`find_wandb_run_file`.
        run_id: see :func:`find_wandb_run_file`.
        timeout: seconds to wait.

    Raises:
        TimeoutError: if the exit record has not appeared within ``timeout``.
    """
    deadline = time.monotonic() + timeout
    while True:
        with warnings.catch_warnings():  # a half-written tail is expected here
            warnings.simplefilter("ignore", TruncatedRunWarning)
            try:
                if _read_run(path, run_id).complete:
                    return find_wandb_run_file(path, run_id)
            except FileNotFoundError:
                pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"W&B run under {path} not finished after {timeout} s")
        time.sleep(0.05)
