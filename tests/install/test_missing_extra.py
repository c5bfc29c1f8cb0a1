"""A feature whose extra is not installed stops before any work with one line naming the extra."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from shiftkit.extras import MissingExtraError, missing_modules, require

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
REPORT_LINE = (
    "shiftkit: shiftkit report needs the 'report' extra (seaborn, matplotlib not installed): "
    "pip install 'shiftkit[report]'"
)


def probe(tmp_path, hidden: str, *features: str) -> dict:
    cmd = [
        sys.executable,
        str(HERE / "without_extras.py"),
        hidden,
        str(HERE / "missing_extra_probe.py"),
        str(tmp_path),
        *features,
    ]
    proc = subprocess.run(cmd, cwd=REPO, check=False, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def one_line(message: str, extra: str) -> bool:
    return "\n" not in message and message.endswith(f"pip install 'shiftkit[{extra}]'")


def test_every_feature_names_its_extra_when_all_are_missing(tmp_path):
    said = probe(tmp_path, "wandb,report,data,cli,hf", *EXPECTED)
    for feature, (kind, extra) in EXPECTED.items():
        assert said[feature]["type"] == kind, (feature, said[feature])
        assert one_line(said[feature]["message"], extra), (feature, said[feature])
    assert said["report"]["message"] == REPORT_LINE
    assert not list(tmp_path.rglob("*")), "a feature wrote files before saying its extra is missing"


EXPECTED = {
    "report": ("SystemExit", "report"),
    "sweep": ("SystemExit", "cli"),
    "fit": ("SystemExit", "cli"),
    "demo": ("SystemExit", "data"),
    "import_report": ("MissingExtraError", "report"),
    "digits": ("MissingExtraError", "data"),
    "wandb_offline": ("MissingExtraError", "wandb"),
    "tracker_wandb": ("MissingExtraError", "wandb"),
    "hf_callback": ("MissingExtraError", "hf"),
    "workspace": ("MissingExtraError", "wandb"),
    "workspace_cli": ("SystemExit", "wandb"),
}
"""Feature -> (what it raises, the extra its one line names), with every extra hidden."""


def test_demo_with_data_but_without_wandb(tmp_path):
    said = probe(tmp_path, "wandb", "demo_wandb")
    assert said["demo_wandb"]["type"] == "SystemExit"
    assert one_line(said["demo_wandb"]["message"], "wandb"), said
    assert not list(tmp_path.rglob("*"))


def test_the_command_prints_one_line_and_no_traceback(tmp_path):
    code = "from shiftkit.command import main; raise SystemExit(main(['report', 'runs']))"
    proc = subprocess.run(
        [sys.executable, str(HERE / "without_extras.py"), "report", "-c", code],
        cwd=REPO,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [REPORT_LINE]


def test_require_is_quiet_when_installed_and_rejects_unknown_extras():
    assert missing_modules("report") == []  # installed in the test environment
    require("data", "the digits")
    assert missing_modules("data", ("surely_not_a_module_x",)) == ["surely_not_a_module_x"]
    with pytest.raises(
        MissingExtraError,
        match=r"^thing needs the 'data' extra \(surely_not_a_module_x not "
        r"installed\): pip install 'shiftkit\[data\]'$",
    ):
        require("data", "thing", ("surely_not_a_module_x",))
    with pytest.raises(
        ValueError, match="unknown shiftkit extra 'gpu'; the extras are: wandb, report"
    ):
        require("gpu", "thing")
