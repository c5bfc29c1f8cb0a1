"""The W&B Report: its spec is built offline with the expected blocks and panels, no socket is
opened; saving without credentials fails fast with a clear message; W&B runs read as run records."""

from __future__ import annotations

import json
import sys
import time
from types import SimpleNamespace

import pandas as pd
import pytest

from shiftkit.report.cli import main
from shiftkit.report.wandb_report import (
    WandbReportError,
    build_wandb_report,
    check_online,
    credentials_source,  # fmt: skip
    report_spec,
)
from shiftkit.report.wandb_source import read_wandb_runs

ENTITY, PROJECT = "test-entity", "shiftkit-tests"


@pytest.fixture
def no_credentials(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_IDENTITY_TOKEN_FILE", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no.netrc"))
    monkeypatch.setenv("HOME", str(tmp_path))


def panel_grids(spec):
    return [b for b in spec["spec"]["blocks"] if b["type"] == "panel-grid"]


def test_spec_offline_has_claims_table_and_per_layer_shift_panels(full_report, synthetic_root, no_network):
    report = build_wandb_report(full_report.outcomes, full_report.cohorts, ENTITY, PROJECT, title="synthetic",
                                stats=["kl_gauss", "mean_drift"], figures_run="report-synthetic")  # fmt: skip
    spec = json.loads(json.dumps(report_spec(report)))
    assert no_network == []
    assert spec["project"] == {"name": PROJECT, "entityName": ENTITY} and spec["displayName"] == "synthetic"
    blocks = spec["spec"]["blocks"]
    markdown = [b["content"] for b in blocks if b["type"] == "markdown-block"]
    assert markdown[0].splitlines()[0].startswith("| Claim | Paper |") and markdown[0].count("| **C") == 8
    headings = [b["children"][0]["text"] for b in blocks if b["type"] == "heading"]
    assert headings[:2] == ["synthetic", "Claims"] and len(headings) == 2 + 8
    # Per claim: one grid of line plots over the recipe's runs, one grid with the figures' media panel.
    grids = panel_grids(spec)
    assert len(grids) == 8 + 8
    line_grids = [g for g in grids if g["metadata"]["runSets"][0]["name"] != "figures"]
    c1 = line_grids[0]["metadata"]
    (runset,) = c1["runSets"]
    assert "project" not in runset  # no project id lookup: nothing resolved over the network
    assert runset["filters"]["filters"][0]["key"] == {"section": "config", "name": "recipe"}
    assert runset["filters"]["filters"][0]["value"] == "mnist_fig1"
    assert runset["grouping"] == [{"section": "config", "name": "variant.value"}]
    panels = c1["panelBankSectionConfig"]["panels"]
    sites = set()
    for d in sorted((synthetic_root / "mnist_fig1").glob("*/seed*")):
        sites |= set(pd.read_csv(d / "shift_history.csv")["site"])
    expected = {f"shift/{s}/{stat}" for s in sites for stat in ("kl_gauss", "mean_drift")} | {"val/acc"}
    plotted = [m for p in panels for m in p["config"]["metrics"]]
    assert len(panels) == 1 + 2 * len(sites) == 21 and set(plotted) == expected
    assert {p["config"]["xAxis"] for p in panels} == {"trainer/global_step"}
    c6_keys = {m for p in line_grids[5]["metadata"]["panelBankSectionConfig"]["panels"] for m in p["config"]["metrics"]}
    assert {f"grad_ics/hidden.{i}.linear/{s}" for i in range(3) for s in ("l2", "cos")} <= c6_keys
    c7_keys = {m for p in line_grids[6]["metadata"]["panelBankSectionConfig"]["panels"] for m in p["config"]["metrics"]}
    assert {"landscape/loss_range", "landscape/grad_pred_max", "landscape/beta_smooth"} <= c7_keys
    media = [g["metadata"]["panelBankSectionConfig"]["panels"][0] for g in grids if g not in line_grids]
    assert media[0]["viewType"] == "Media Browser" and media[0]["config"]["mediaKeys"] == ["report/C1_fig1"]


def test_cli_spec_out_writes_the_spec_without_network(synthetic_root, tmp_path, no_network, no_credentials, capsys):
    spec_file = tmp_path / "spec.json"
    rc = main([str(synthetic_root / "mnist_fig1"), "-o", str(tmp_path / "r"), "--no-figures", "--no-progress",
               "--wandb-report", f"{ENTITY}/{PROJECT}", "--spec-out", str(spec_file)])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    spec = json.loads(spec_file.read_text())
    assert len(panel_grids(spec)) == 1  # one claim (C1), no figures drawn: no media grid
    assert no_network == []


def test_without_wandb_workspaces_the_spec_is_a_clear_error_naming_the_extra(synthetic_root, tmp_path, monkeypatch,
                                                                             capsys):
    # None in sys.modules makes the import raise ImportError, as on an install without the extra.
    for name in ("wandb_workspaces", "wandb_workspaces.reports", "wandb_workspaces.reports.v2"):
        monkeypatch.setitem(sys.modules, name, None)
    rc = main([str(synthetic_root / "mnist_fig1"), "-o", str(tmp_path / "r"), "--no-figures", "--no-progress",
               "--wandb-report", f"{ENTITY}/{PROJECT}", "--spec-out", str(tmp_path / "spec.json")])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 1 and "pip install 'shiftkit[report]'" in err and "ModuleNotFoundError" not in err
    assert not (tmp_path / "spec.json").exists() and not (tmp_path / "r").exists()  # failed before any work


def test_wandb_report_without_credentials_fails_fast(synthetic_root, tmp_path, no_network, no_credentials, capsys):
    assert credentials_source() is None
    start = time.monotonic()
    rc = main([str(synthetic_root / "mnist_fig1"), "-o", str(tmp_path / "r"), "--wandb-report", f"{ENTITY}/{PROJECT}"])
    assert rc == 1 and time.monotonic() - start < 5
    err = capsys.readouterr().err
    assert "no W&B credentials" in err and "--spec-out" in err
    assert not (tmp_path / "r").exists()  # failed before any work
    assert no_network == []


def test_offline_mode_and_unreachable_host_fail_fast(monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_MODE", "offline")
    with pytest.raises(WandbReportError, match="offline mode"):
        check_online()
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("WANDB_BASE_URL", "https://wandb.invalid")

    def unreachable(address, timeout=None):
        assert timeout is not None and timeout <= 5
        raise OSError("network is unreachable")

    monkeypatch.setattr("socket.create_connection", unreachable)
    with pytest.raises(WandbReportError, match="cannot reach wandb.invalid:443"):
        check_online()


def test_netrc_credentials_are_found_without_reading_the_key_out(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_BASE_URL", raising=False)
    netrc = tmp_path / "netrc"
    netrc.write_text("machine api.wandb.ai\n  login user\n  password " + "k" * 40 + "\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    assert credentials_source() == f"netrc {netrc}"


class FakeRun(SimpleNamespace):
    def scan_history(self):
        return iter(self.rows)


def test_runs_read_from_a_wandb_project_become_run_records():
    rows = [{"_step": 0, "trainer/global_step": 0, "shift/fc1/kl_gauss": float("nan"), "shift/fc1/p50": 0.1},
            {"_step": 1, "trainer/global_step": 10, "val/acc": 0.5},
            {"_step": 2, "trainer/global_step": 10, "shift/fc1/kl_gauss": 0.02, "shift/fc1/p50": 0.3}]
    run = FakeRun(config={"recipe": "mnist_fig1", "variant": "bn", "seed": 2, "norm": "batch", "_wandb": {}},
                  summary={"val/acc": 0.5, "trainer/global_step": 10, "diverged": 0}, path=["e", "p", "abc"],
                  rows=rows, job_type="train")  # fmt: skip
    figures = FakeRun(config={}, summary={}, path=["e", "p", "fig"], rows=[], job_type="report")
    api = SimpleNamespace(runs=lambda path, filters=None: [run, figures])
    (got,) = read_wandb_runs("e/p", api=api)
    assert (got.recipe, got.variant, got.seed) == ("mnist_fig1", "bn", 2)
    assert got.result["metrics"] == {"val/acc": 0.5} and got.result["diverged"] is False
    assert list(got.metrics["step"]) == [0, 10] and got.metrics.set_index("step").loc[10, "val/acc"] == 0.5
    h = got.history.set_index("step")
    assert list(got.history["site"]) == ["fc1", "fc1"] and h.loc[10, "kl_gauss"] == 0.02 and h.loc[10, "p50"] == 0.3
