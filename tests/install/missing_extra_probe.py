"""Try each feature whose extra is hidden (see without_extras.py); print what each said, as JSON.

``python without_extras.py EXTRAS missing_extra_probe.py OUT_DIR FEATURE...``: each FEATURE is
run, its exception or exit message recorded as ``{"type": ..., "message": ...}``; OUT_DIR is where
the features were told to write (the test checks that nothing was written there).
"""

import json
import sys
from pathlib import Path

out = Path(sys.argv[1])


def cli(*argv):
    from shiftkit.command import main

    return lambda: main(list(argv))


def import_report():
    import shiftkit.report  # noqa: F401


def digits():
    from shiftkit.data import DigitsDataModule

    DigitsDataModule(batch_size=8).setup("fit")


def wandb_offline():
    from shiftkit.records import read_wandb_offline

    read_wandb_offline(out)


def tracker_wandb():
    import torch

    from shiftkit import ShiftTracker

    ShiftTracker(torch.nn.Linear(2, 2), wandb=True)


def hf_callback():
    from shiftkit.integrations.transformers import ShiftCallback  # noqa: F401


def workspace():
    from shiftkit.integrations.wandb_workspace import build_workspace

    build_workspace("team", "project")


FEATURES = {
    "tracker_wandb": tracker_wandb,
    "hf_callback": hf_callback,
    "workspace": workspace,
    "workspace_cli": cli("workspace", "team/project", "--spec-out", str(out / "view.json")),
    "report": cli("report", str(out)),
    "sweep": cli("sweep", "recipes/mnist_fig1.yaml", "--out", str(out / "sweep")),
    "fit": cli("fit", "--data=synthetic", f"--run_dir={out / 'fit'}", "--trainer.max_steps=2"),
    "demo": cli("demo", "--steps", "2", "--out", str(out / "demo")),
    "demo_wandb": cli("demo", "--steps", "2", "--wandb", "--out", str(out / "demo")),
    "import_report": import_report,
    "digits": digits,
    "wandb_offline": wandb_offline,
}

said = {}
for name in sys.argv[2:]:
    try:
        FEATURES[name]()
        said[name] = {"type": None, "message": ""}
    except BaseException as err:  # noqa: BLE001 -- SystemExit included: how the command line says it
        said[name] = {"type": type(err).__name__, "message": str(err)}
print(json.dumps(said))
