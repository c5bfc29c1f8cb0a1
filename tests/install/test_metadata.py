"""The built package metadata: torch as a range, a small core, the extras; pins only in constraints.txt."""

import importlib.metadata as md
import re
import shutil
import subprocess
import sys
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from shiftkit.extras import EXTRAS

REPO = Path(__file__).resolve().parents[2]


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.fixture(scope="module")
def requirements(tmp_path_factory) -> list[Requirement]:
    """Requires-Dist of the metadata setuptools builds from pyproject.toml (PEP 517 hook, no network)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    (src / "shiftkit").mkdir()
    (src / "shiftkit" / "__init__.py").write_text("")
    out = tmp_path_factory.mktemp("meta")
    code = f"from setuptools import build_meta as b; print(b.prepare_metadata_for_build_wheel({str(out)!r}))"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=src,
        check=False,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    dist_info = out / proc.stdout.strip().splitlines()[-1]
    meta = Parser().parsestr((dist_info / "METADATA").read_text())
    return [Requirement(r) for r in meta.get_all("Requires-Dist")]


def core(requirements):
    return {norm(r.name): r for r in requirements if r.marker is None}


def extra(requirements, name):
    return {
        norm(r.name): r
        for r in requirements
        if r.marker is not None and r.marker.evaluate({"extra": name})
    }


def test_torch_is_a_range_never_a_pin(requirements):
    torch = [r for r in requirements if norm(r.name) == "torch"]
    assert len(torch) == 1 and torch[0].marker is None
    specs = {(s.operator, s.version) for s in torch[0].specifier}
    assert specs == {(">=", "2.4")}  # nn.RMSNorm in the default layer table needs 2.4
    assert not [
        str(r) for r in requirements if any(s.operator in ("==", "===") for s in r.specifier)
    ]


def test_core_is_small_and_every_extra_is_there(requirements):
    assert set(core(requirements)) == {
        "torch",
        "lightning",
        "torchmetrics",
        "numpy",
        "pandas",
        "tqdm",
    }
    assert set(extra(requirements, "wandb")) == {"wandb", "wandb-workspaces", "matplotlib"}
    assert set(extra(requirements, "report")) == {
        "seaborn",
        "matplotlib",
        "pandas",
        "wandb-workspaces",
    }
    assert set(extra(requirements, "data")) == {"mlxtend", "scikit-learn"}
    assert set(extra(requirements, "cli")) == {"jsonargparse"}
    assert extra(requirements, "cli")["jsonargparse"].extras == {
        "signatures"
    }  # what LightningCLI needs
    assert set(extra(requirements, "hf")) == {"transformers", "accelerate"}
    everything = extra(requirements, "all")
    assert set(everything) == {"shiftkit"} and everything["shiftkit"].extras == {
        "wandb",
        "report",
        "data",
        "cli",
        "hf",
    }
    assert set(extra(requirements, "bench")) == {"wandb", "torchinstruments", "nvdlfw-inspect"}
    assert extra(requirements, "test")["shiftkit"].extras == {"all", "bench"}


def test_each_extra_installs_the_modules_its_features_check(requirements):
    # shiftkit.extras.require looks for modules; the extra must install their distributions.
    owners = md.packages_distributions()
    for name, modules in EXTRAS.items():
        direct = {n for n in extra(requirements, name) if n != "shiftkit"}
        reachable = set(direct)
        for dist in direct:  # one level down: jsonargparse[signatures] brings docstring-parser
            try:
                reachable.update(norm(Requirement(r).name) for r in md.requires(dist) or [])
            except md.PackageNotFoundError:  # not installed here: its modules are not checked
                pass
        checked = [m for m in modules if m in owners]
        for module in checked:
            assert {norm(d) for d in owners[module]} & reachable, (
                f"[{name}] does not install {module}"
            )
        assert checked or name == "hf", f"none of [{name}]'s modules is installed here"


def test_exact_torch_pin_lives_in_constraints_used_by_readme_and_ci():
    constraints = (REPO / "constraints.txt").read_text()
    assert re.search(r"^torch==\d+\.\d+\.\d+$", constraints, re.MULTILINE)
    readme = (REPO / "README.md").read_text()
    commands = re.findall(r"^python3 -m venv .*$", readme, re.MULTILINE)
    assert len(commands) == 2 and all("pip install -c constraints.txt -e" in c for c in commands)
    assert 'pip install -q -c constraints.txt -e ".[test]"' in (REPO / ".ci" / "run").read_text()
    # Every extra has its install line in the README.
    for name in (*EXTRAS, "all"):
        assert f"pip install 'shiftkit[{name}]'" in readme, name
