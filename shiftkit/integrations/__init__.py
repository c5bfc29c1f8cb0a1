"""Adapters of :class:`~shiftkit.ShiftTracker` to training loops other than Lightning's Trainer,
and the W&B workspace view.

- :mod:`shiftkit.integrations.transformers`: ``ShiftCallback``, a Hugging Face ``TrainerCallback``
  (``pip install 'shiftkit[hf]'``);
- :mod:`shiftkit.integrations.wandb_workspace`: a saved W&B view of the monitor's metrics
  (``pip install 'shiftkit[wandb]'``).

Lightning Fabric and plain loops use the tracker directly (see its docstring). Nothing here is
imported by ``import shiftkit``.
"""
