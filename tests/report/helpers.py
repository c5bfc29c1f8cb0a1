"""Independent readers of report output for the report tests: plain pandas/numpy/regex on the
files, never the report's own helpers."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk (raises if the file is not a PNG)."""
    data = Path(path).read_bytes()[:33]
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def claims_rows(readme: str) -> dict[str, list[str]]:
    """The claims table of a README: claim id -> its cells (pipes escaped with a backslash are kept)."""
    rows = {}
    for line in readme.splitlines():
        if line.startswith("| **C"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            rows[re.match(r"\*\*(C\d)\*\*", cells[0]).group(1)] = cells
    return rows


_SUMMARY = re.compile(r"^(?P<label>.+?) (?P<mean>-?[\d.]+(?:e[-+]?\d+)?|n/a) ± (?P<sd>-?[\d.]+(?:e[-+]?\d+)?|n/a)(?: %)? \(n=(?P<n>\d+)\)")


def measured(cells: list[str]) -> dict[str, dict[str, tuple[float, float, int]]]:
    """The measured cell as ``{quantity: {label: (mean, sd, n)}}`` (a line ``quantity: A m ± s (n=k) vs B ...``)."""
    out = {}
    for line in cells[3].split("<br>"):
        quantity, _, rest = line.partition(": ")
        out[quantity] = {}
        for part in rest.split(" vs "):
            m = _SUMMARY.match(part.strip().replace("≥ ", ""))
            if m:
                as_float = lambda s: float("nan") if s == "n/a" else float(s)  # noqa: E731
                out[quantity][m["label"].strip()] = (as_float(m["mean"]), as_float(m["sd"]), int(m["n"]))
    return out


def read_result(run_dir: Path) -> dict:
    return json.loads((run_dir / "result.json").read_text())


def run_dirs(root: Path, recipe: str, variant: str) -> list[Path]:
    return sorted((root / recipe / variant).glob("seed*"))
