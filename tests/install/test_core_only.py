"""shiftkit with its core dependencies only: ``import shiftkit`` and a ShiftMonitor fit work.

Fast: in this environment, with every extra hidden (tests/install/without_extras.py).
Slow: in a fresh virtual environment holding the core install only, built from a wheel of this
checkout under constraints.txt (pip reuses a torch wheel already on disk when its find-links or
cache have one; without network and without such a wheel the test is skipped, not failed).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from .without_extras import HIDDEN

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CORE_FIT = HERE / "core_fit.py"
WITHOUT = HERE / "without_extras.py"

# No network needed: pip reports an unreachable index with one of these.
OFFLINE = re.compile(
    r"NewConnectionError|Temporary failure in name resolution|Network is unreachable|"
    r"Could not find a version that satisfies|No matching distribution found"
)


def check_core_fit(stdout: str) -> dict:
    out = json.loads(stdout.strip().splitlines()[-1])
    assert out["steps"] == [0, 2, 4]  # every_n_steps=2 over max_steps=6
    assert out["sites"] == ["net.0", "net.1", "net.2"]
    assert sorted(out["summary_sites"]) == ["net.0", "net.1", "net.2"]
    assert out["imported_optional"] == []
    assert out["tracker_steps"] == [0, 3]
    return out


def test_core_only_import_and_monitor_fit_with_every_extra_hidden():
    proc = subprocess.run(
        [sys.executable, str(WITHOUT), ",".join(HIDDEN), str(CORE_FIT)],
        cwd=REPO,
        check=False,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    check_core_fit(proc.stdout)


def test_hiding_works():
    # The check above means something only if a hidden extra really cannot be imported.
    code = "import importlib.util as u, sys; print(u.find_spec('wandb'), u.find_spec('sklearn'))"
    proc = subprocess.run(
        [sys.executable, str(WITHOUT), "wandb,data", "-c", code],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["None", "None"]
    proc = subprocess.run(
        [sys.executable, str(WITHOUT), "wandb", "-c", "import wandb"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1 and "ModuleNotFoundError: No module named 'wandb'" in proc.stderr


@pytest.mark.slow
def test_core_only_fresh_venv(tmp_path):
    # Built from a copy: setuptools writes build/ and *.egg-info next to the sources it builds.
    src = tmp_path / "src"
    shutil.copytree(
        REPO / "shiftkit", src / "shiftkit", ignore=shutil.ignore_patterns("__pycache__")
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    wheels = tmp_path / "wheels"
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(wheels),
            str(src),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = wheels.glob("shiftkit-*.whl")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    install = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "--retries",
            "1",
            "--timeout",
            "30",
            "-c",
            str(REPO / "constraints.txt"),
            str(wheel),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=1200,
        env=env,
    )
    if install.returncode != 0 and OFFLINE.search(install.stderr):
        pytest.skip(
            f"no package index reachable for the core install: {install.stderr.strip()[-300:]}"
        )
    assert install.returncode == 0, install.stderr[-3000:]
    listed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=json"],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    names = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert not names & {
        "wandb",
        "seaborn",
        "matplotlib",
        "mlxtend",
        "scikit-learn",
        "jsonargparse",
        "transformers",
    }
    # Outside the checkout, so the installed wheel is imported, not the source tree.
    proc = subprocess.run(
        [str(python), str(CORE_FIT)],
        cwd=tmp_path,
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = check_core_fit(proc.stdout)
    assert out["torch"].startswith("2.13.0")  # the constraints file's pin
