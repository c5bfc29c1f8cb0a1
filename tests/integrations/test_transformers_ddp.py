"""The Hugging Face ShiftCallback under DDP (2 CPU ranks, gloo, started as torchrun would): every
rank holds the same history, and it is the statistics of the global batch."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("accelerate", reason="the Hugging Face Trainer needs accelerate (shiftkit[hf])")

from shiftkit import ShiftTracker  # noqa: E402
from tests.integrations.hf_ddp_run import ACCUMULATE, EVERY, STEPS  # noqa: E402
from tests.integrations.test_transformers import tiny_bert  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(240)
def test_two_ranks_agree_and_measure_the_global_batch(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "WANDB_MODE": "offline"}  # fmt: skip
    # --standalone: the rendezvous picks its own free port (no race with another test's port).
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "tests.integrations.hf_ddp_run", str(tmp_path)]  # fmt: skip
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=220)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2]
    h0, h1 = ranks[0]["history"], ranks[1]["history"]
    assert sorted({r["step"] for r in h0}) == list(range(0, STEPS, EVERY)) and len(h0) == len(h1)
    for a, b in zip(h0, h1):
        assert (a["step"], a["site"]) == (b["step"], b["site"])
        for key, value in a.items():
            if isinstance(value, float) and not math.isnan(value):
                assert b[key] == pytest.approx(value, rel=1e-6, abs=1e-9), (a["site"], key)
    # Learning rate 0: the weights never change, so one process folding both ranks' micro-batches
    # of each optimizer step must measure what the two ranks measured together.
    assert all(len(r["batches"]) == STEPS * ACCUMULATE for r in ranks)
    # The ranks were fed different examples, so a rank measuring only its own would not pass below.
    assert ranks[0]["batches"][0]["input_ids"] != ranks[1]["batches"][0]["input_ids"]
    model = tiny_bert()
    model.train()
    tracker = ShiftTracker(model, every_n_steps=EVERY)
    with torch.no_grad():
        for step in range(STEPS):
            with tracker.step():
                for r in ranks:
                    for batch in r["batches"][step * ACCUMULATE : (step + 1) * ACCUMULATE]:
                        model(**{k: torch.tensor(v) for k, v in batch.items()})
    tracker.close()
    assert [(r["step"], r["site"]) for r in tracker.history] == [(r["step"], r["site"]) for r in h0]
    for a, b in zip(h0, tracker.history):
        for key, value in b.items():
            if key in ("step", "epoch", "site") or not isinstance(value, float) or math.isnan(value):
                continue
            if key == "kl_gauss_floor":  # a split-half estimate within each rank's own batch
                continue
            assert a[key] == pytest.approx(value, rel=1e-5, abs=1e-7), (a["step"], a["site"], key)
