"""Fixtures for the report tests: synthetic run records, the report built from them, and a
socket that refuses to connect (the readers of report output are in ``helpers.py``)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.report.synthetic_runs import write_all


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    """All eight recipes, every variant, seeds 0-2 (102 runs)."""
    return write_all(tmp_path_factory.mktemp("runs") / "runs")


@pytest.fixture(scope="session")
def full_report(synthetic_root, tmp_path_factory):
    """The report of the synthetic runs, with every figure (built once: figures are the slow part)."""
    from shiftkit.report import build_report

    out = tmp_path_factory.mktemp("reports") / "reports" / "synthetic"
    return build_report([synthetic_root], out, progress=False, dpi=72)


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test."""
    calls = []

    def refuse(self, address, *args, **kwargs):
        calls.append(address)
        raise AssertionError(f"network connection attempted to {address!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return calls
