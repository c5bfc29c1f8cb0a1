"""Every committed report rebuilds, table for table, from the records committed beside it."""

from __future__ import annotations

from pathlib import Path

import pytest

from shiftkit.report import build_report
from shiftkit.report.build import RECORDS_DIR, REPORT_META

REPORTS = Path(__file__).resolve().parents[2] / "reports"
COMMITTED = sorted(p.parent for p in REPORTS.glob(f"*/{REPORT_META}") if (p.parent / RECORDS_DIR).is_dir())


def claims_table(readme: str) -> list[str]:
    """The lines of the README's claims table (from its header row to the first blank line)."""
    lines = readme.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| Claim |"))
    end = next((i for i in range(start, len(lines)) if not lines[i].strip()), len(lines))
    return lines[start:end]


def test_there_are_committed_reports():
    assert len(COMMITTED) >= 8, f"expected a report per recipe under {REPORTS}, found {[p.name for p in COMMITTED]}"


@pytest.mark.parametrize("report", COMMITTED, ids=lambda p: p.name)
def test_claims_table_rebuilds_from_committed_records(report, tmp_path):
    result = build_report([report / RECORDS_DIR], tmp_path / report.name, figures=False, progress=False)
    committed = claims_table((report / "README.md").read_text(encoding="utf-8"))
    rebuilt = claims_table(result.readme.read_text(encoding="utf-8"))
    assert rebuilt == committed


@pytest.mark.parametrize("report", COMMITTED, ids=lambda p: p.name)
def test_records_are_one_folder_per_cell_and_seed(report):
    results = list((report / RECORDS_DIR).glob("*/*/seed=*/result.json"))
    meta = (report / REPORT_META).read_text(encoding="utf-8")
    import json

    assert len(results) == json.loads(meta)["n_runs"]
