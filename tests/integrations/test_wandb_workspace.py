"""The W&B workspace view: built and written offline, one section per statistic, readable at 100 layers."""

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from shiftkit.integrations.wandb_workspace import (
    NETWORK_SECTION,
    build_workspace,
    heatmap_figure,
    heatmap_matrix,
    workspace_spec,
)
from shiftkit.records.names import STATS, shift_key

REPO = Path(__file__).resolve().parents[2]


def sections(spec: dict) -> list[dict]:
    return spec["spec"]["section"]["panelBankConfig"]["sections"]


def test_spec_has_network_section_on_top_then_one_overlay_plot_per_statistic():
    spec = workspace_spec(build_workspace("team", "proj", step_metric="trainer/global_step"))
    secs = sections(spec)
    assert [s["name"] for s in secs] == [NETWORK_SECTION] + [f"shift: {s}" for s in STATS]
    top = secs[0]
    assert top["pinned"] is True and top["isOpen"] is True
    summary_metrics = [p["config"].get("metrics") for p in top["panels"][:2]]
    assert summary_metrics == [["shift/mean_kl_gauss"], ["shift/max_kl_gauss"]]
    assert top["panels"][2]["viewType"] == "Media Browser"
    assert top["panels"][2]["config"]["mediaKeys"] == ["shift_heatmap/kl_gauss"]
    # W&B's one-panel-per-key is off: the view is these 2 + 1 + 17 panels, whatever the model.
    assert spec["spec"]["section"]["settings"]["shouldAutoGeneratePanels"] is False
    assert sum(len(s["panels"]) for s in secs) == 3 + len(STATS)
    for sec, stat in zip(secs[1:], STATS):
        (panel,) = sec["panels"]
        config = panel["config"]
        assert config["xAxis"] == "trainer/global_step" and config["useMetricRegex"] is True
        assert config.get("yLogScale") is (
            True if stat in ("kl_gauss", "kl_gauss_floor", "kl_hist", "js_hist") else None
        )


def test_each_regex_overlays_every_layer_of_its_statistic_and_nothing_else():
    spec = workspace_spec(build_workspace("team", "proj"))
    sites = [f"layer{i}.conv" for i in range(100)] + ["net.0@out", "encoder/block.1", "fc"]
    keys = [shift_key(site, stat) for site in sites for stat in STATS]
    keys += [
        "shift/mean_kl_gauss",
        "shift/max_kl_gauss",
        "shift/step",
        "shift_hist/fc",
        "train/loss",
    ]
    for sec, stat in zip(sections(spec)[1:], STATS):
        pattern = re.compile(sec["panels"][0]["config"]["metricRegex"])
        matched = [k for k in keys if pattern.search(k)]
        assert matched == [shift_key(site, stat) for site in sites], stat


def test_hugging_face_prefix():
    view = build_workspace(
        "t", "p", stats=["kl_gauss"], step_metric="train/global_step", key_prefix="train/"
    )
    top, kl = sections(workspace_spec(view))
    assert top["panels"][0]["config"]["metrics"] == ["train/shift/mean_kl_gauss"]
    pattern = re.compile(kl["panels"][0]["config"]["metricRegex"])
    assert pattern.search("train/shift/bert.pooler.dense/kl_gauss")
    assert not pattern.search("shift/bert.pooler.dense/kl_gauss")


def test_other_step_metric_and_stats_and_bad_stat():
    spec = workspace_spec(build_workspace("t", "p", stats=["mean", "std"], step_metric="train/global_step",
                                          heatmap_stats=()))  # fmt: skip
    secs = sections(spec)
    assert [s["name"] for s in secs] == [NETWORK_SECTION, "shift: mean", "shift: std"]
    assert len(secs[0]["panels"]) == 2  # no heat maps asked
    assert {p["config"]["xAxis"] for s in secs for p in s["panels"]} == {"train/global_step"}
    with pytest.raises(ValueError, match="unknown stat 'kl'; expected one of kl_gauss, "):
        build_workspace("t", "p", stats=["kl"])


def test_command_writes_the_spec_offline(tmp_path):
    out = tmp_path / "view.json"
    cmd = [sys.executable, "-m", "shiftkit", "workspace", "team/proj", "--stats", "kl_gauss", "dead_frac",
           "--spec-out", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, check=False, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    spec = json.loads(out.read_text())
    assert spec["entity"] == "team" and spec["project"] == "proj"
    assert [s["name"] for s in sections(spec)] == [
        NETWORK_SECTION,
        "shift: kl_gauss",
        "shift: dead_frac",
    ]
    bad = subprocess.run([sys.executable, "-m", "shiftkit", "workspace", "team"], cwd=REPO, check=False,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert bad.returncode == 1 and "expected ENTITY/PROJECT, got 'team'" in bad.stderr


def test_heatmap_matrix_and_figure():
    history = [
        {"step": 0, "site": "a", "kl_gauss": 1.0}, {"step": 0, "site": "b", "kl_gauss": 10.0},
        {"step": 5, "site": "a", "kl_gauss": 0.1},  # b not measured at step 5
    ]  # fmt: skip
    sites, steps, values = heatmap_matrix(history, "kl_gauss")
    assert sites == ["a", "b"] and steps == [0, 5]
    assert values[0] == [1.0, 0.1] and values[1][0] == 10.0 and math.isnan(values[1][1])
    fig = heatmap_figure(history, "kl_gauss")
    image = fig.axes[0].images[0].get_array()
    assert image.mask.tolist() == [[False, False], [False, True]]
    assert image.data[0].tolist() == pytest.approx([0.0, -1.0])  # log10 of a divergence
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["a", "b"]
