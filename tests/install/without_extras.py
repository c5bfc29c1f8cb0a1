"""Run Python code as if some of shiftkit's extras were not installed.

Usage: ``python without_extras.py EXTRA[,EXTRA...] SCRIPT.py [ARGS...]`` or
``python without_extras.py EXTRA[,...] -c CODE``.

The extras' distributions are hidden from both halves of "installed": importing their modules
finds nothing (``ModuleNotFoundError``, ``importlib.util.find_spec`` is None), and
``importlib.metadata`` does not list them, so libraries that probe for optional packages by
their metadata (torchmetrics, Lightning) behave as on a machine without them. Setting
``sys.modules[name] = None`` would not do: ``find_spec`` then raises instead of returning None,
and the metadata would still say the package is there.
"""

from __future__ import annotations

import importlib.machinery
import importlib.metadata as md
import runpy
import sys

#: Extra -> (distributions, top-level modules) it installs; the modules are shiftkit.extras.EXTRAS'.
HIDDEN = {
    "wandb": ({"wandb", "wandb-workspaces"}, {"wandb", "wandb_workspaces"}),
    "report": (
        {"seaborn", "matplotlib", "wandb-workspaces"},
        {"seaborn", "matplotlib", "mpl_toolkits", "wandb_workspaces"},
    ),
    "data": ({"mlxtend", "scikit-learn"}, {"mlxtend", "sklearn"}),
    "cli": (
        {"jsonargparse", "docstring-parser", "typeshed-client"},
        {"jsonargparse", "docstring_parser", "typeshed_client"},
    ),
    "hf": ({"transformers", "accelerate"}, {"transformers", "accelerate"}),
}


def hide(extras: list[str]) -> None:
    """Hide the distributions and modules of ``extras`` for the rest of this process."""
    dists = {d for e in extras for d in HIDDEN[e][0]}
    modules = {m for e in extras for m in HIDDEN[e][1]}

    class Hidden(importlib.machinery.PathFinder):
        @classmethod
        def find_spec(cls, name, path=None, target=None):
            if name.partition(".")[0] in modules:
                return None
            return super().find_spec(name, path, target)

        @classmethod
        def find_distributions(cls, context=None):
            for dist in super().find_distributions(context or md.DistributionFinder.Context()):
                if dist.metadata["Name"].lower().replace("_", "-") not in dists:
                    yield dist

    already = [m for m in sys.modules if m.partition(".")[0] in modules]
    assert not already, f"already imported: {already}"
    sys.meta_path[:] = [Hidden if f is importlib.machinery.PathFinder else f for f in sys.meta_path]


if __name__ == "__main__":
    hide([e for e in sys.argv[1].split(",") if e])
    if sys.argv[2] == "-c":
        code, sys.argv = sys.argv[3], ["-c", *sys.argv[4:]]
        exec(compile(code, "<string>", "exec"), {"__name__": "__main__"})  # noqa: S102 -- like python -c
    else:
        sys.argv = sys.argv[2:]
        runpy.run_path(sys.argv[0], run_name="__main__")
