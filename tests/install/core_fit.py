"""A ShiftMonitor fit with shiftkit's core install only; prints what it measured as JSON.

Run by tests/install/test_core_only.py, with the extras hidden (fast) and in a fresh virtual
environment holding the core install only (slow).
"""

import json
import sys

import torch

torch.set_num_threads(1)

import lightning.pytorch as pl

import shiftkit
from shiftkit import ShiftMonitor


class TinyNet(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)
        )

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.cross_entropy(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


torch.manual_seed(0)
data = torch.utils.data.TensorDataset(torch.randn(64, 4), torch.randint(0, 2, (64,)))
monitor = ShiftMonitor(every_n_steps=2)
trainer = pl.Trainer(
    max_steps=6, callbacks=[monitor], logger=False, enable_checkpointing=False,
    enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
)  # fmt: skip
trainer.fit(TinyNet(), torch.utils.data.DataLoader(data, batch_size=8))
table = monitor.summary(top=3)

# The framework-free core in a plain loop.
net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
tracker = shiftkit.ShiftTracker(net, every_n_steps=3)
for _ in range(4):
    with tracker.step():
        net(torch.randn(8, 4)).sum().backward()
tracker.close()
optional = ("wandb", "seaborn", "matplotlib", "mlxtend", "sklearn", "jsonargparse", "transformers")
print(
    json.dumps(
        {
            "version": shiftkit.__version__,
            "torch": torch.__version__,
            "steps": sorted({row["step"] for row in monitor.history}),
            "sites": monitor.site_names,
            "summary_sites": list(table["site"]),
            "tracker_steps": sorted({row["step"] for row in tracker.history}),
            "imported_optional": sorted(m for m in sys.modules if m.partition(".")[0] in optional),
        }
    )
)
