"""Test-wide settings: W&B strictly offline, quiet Lightning, one BLAS thread per process."""

import os
import warnings

os.environ["WANDB_MODE"] = "offline"
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("WANDB_DISABLE_GIT", "true")
os.environ.setdefault("WANDB_CONSOLE", "off")
os.environ.setdefault("WANDB__DISABLE_STATS", "true")

import pytest  # noqa: E402

# Lightning's advice for real runs (more dataloader workers, a progress bar on
# tiny runs) is noise in tests.
for pattern in (
    ".*does not have many workers.*",
    ".*The number of training batches.*",
    ".*GPU available but not used.*",
    ".*`isinstance\\(treespec, LeafSpec\\)` is deprecated.*",
):
    warnings.filterwarnings("ignore", message=pattern)


@pytest.fixture(autouse=True)
def _wandb_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / ".wandb_cache"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / ".wandb_config"))
