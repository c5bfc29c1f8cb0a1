"""Test-wide settings: W&B strictly offline, one torch thread per process."""

import os

os.environ["WANDB_MODE"] = "offline"
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("WANDB_DISABLE_GIT", "true")
os.environ.setdefault("WANDB_CONSOLE", "off")
os.environ.setdefault("WANDB__DISABLE_STATS", "true")

import pytest  # noqa: E402
import torch  # noqa: E402

# Two cores shared by the test process and, in DDP tests, its children: tiny
# tensors run faster on one thread, and oversubscription slows DDP ~100x.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _one_thread():
    # Lightning's DDP set-up changes the thread count of the process: put it back after every test.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _wandb_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / ".wandb_cache"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / ".wandb_config"))


@pytest.hookimpl(hookwrapper=True)
def pytest_collect_file(file_path, parent):
    # --doctest-modules (pytest.ini_options) is for the package's examples: the test modules have
    # none, and their same-named conftest.py/helpers would clash as doctest modules.
    outcome = yield
    outcome.force_result([c for c in outcome.get_result() if type(c).__name__ != "DoctestModule"])


def pytest_collection_modifyitems(config, items):
    # Tests marked `cuda` skip, each with the reason, where torch sees no CUDA device.
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (torch.cuda.is_available() is False)")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)
