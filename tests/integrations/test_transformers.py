"""The Hugging Face ShiftCallback: counts optimizer steps under gradient accumulation, reports
through the Trainer's integrations, and measures what the plain-loop tracker measures."""

import copy
import math

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("accelerate", reason="the Hugging Face Trainer needs accelerate (shiftkit[hf])")

from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments
from transformers.data.data_collator import default_data_collator

from shiftkit import ShiftTracker
from shiftkit.integrations.transformers import ShiftCallback

STEPS, MICRO, ACCUMULATE = 6, 4, 2


def tiny_bert():
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=16, num_labels=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )  # fmt: skip
    return BertForSequenceClassification(config)  # built from the config: nothing downloaded


def examples(n):
    g = torch.Generator().manual_seed(3)
    return [
        {"input_ids": torch.randint(1, 40, (8,), generator=g), "attention_mask": torch.ones(8, dtype=torch.long),
         "labels": torch.randint(0, 2, (), generator=g)}
        for _ in range(n)
    ]  # fmt: skip


def test_callback_counts_optimizer_steps_reports_and_matches_the_plain_loop(tmp_path, monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.setenv(
        "TENSORBOARD_LOGGING_DIR", str(tmp_path / "tb")
    )  # where the integration writes
    model = tiny_bert()
    initial = copy.deepcopy(model.state_dict())
    seen = []

    def collate(features):  # what the Trainer fed, in its order
        batch = default_data_collator(features)
        seen.append({k: v.clone() for k, v in batch.items()})
        return batch

    args = TrainingArguments(
        output_dir=str(tmp_path / "out"), per_device_train_batch_size=MICRO, gradient_accumulation_steps=ACCUMULATE,
        max_steps=STEPS, learning_rate=0.0, logging_steps=2, report_to=["tensorboard"],
        use_cpu=True, save_strategy="no", disable_tqdm=True,
        dataloader_num_workers=0, seed=0,
    )  # fmt: skip
    callback = ShiftCallback()  # every_n_steps: the Trainer's logging_steps (2)
    trainer = Trainer(model=model, args=args, train_dataset=examples(STEPS * MICRO * ACCUMULATE),
                      data_collator=collate, callbacks=[callback])  # fmt: skip
    trainer.train()

    assert sorted({r["step"] for r in callback.history}) == [
        0,
        2,
        4,
    ]  # optimizer steps, not micro-batches
    assert len(seen) == STEPS * ACCUMULATE
    assert "bert.encoder.layer.1.output.dense" in callback.tracker.site_names
    hooks = sum(len(m._forward_pre_hooks) for m in model.modules())
    assert hooks == 0  # removed at the end of training

    # The same batches, grouped by optimizer step, through the plain-loop tracker. The learning
    # rate is 0, so the weights are the initial ones at every step.
    plain = tiny_bert()
    plain.load_state_dict(initial)
    plain.train()
    tracker = ShiftTracker(plain, every_n_steps=2)
    with torch.no_grad():
        for i in range(STEPS):
            with tracker.step():
                for batch in seen[i * ACCUMULATE : (i + 1) * ACCUMULATE]:
                    plain(**batch)
    tracker.close()
    assert [(r["step"], r["site"]) for r in callback.history] == [
        (r["step"], r["site"]) for r in tracker.history
    ]
    for a, b in zip(callback.history, tracker.history):
        for key, value in b.items():
            if key in ("step", "epoch", "site") or math.isnan(value):
                continue
            assert a[key] == pytest.approx(value, rel=1e-6, abs=1e-9), (a["step"], a["site"], key)

    # Reported through the Trainer's TensorBoard integration, at the Trainer's step (s + 1).
    (events,) = (tmp_path / "tb").rglob("events.out.tfevents.*")
    acc = EventAccumulator(str(events.parent))
    acc.Reload()
    site = "bert.encoder.layer.1.output.dense"
    scalars = {e.step: e.value for e in acc.Scalars(f"train/shift/{site}/kl_gauss")}
    measured = {r["step"]: r["kl_gauss"] for r in callback.history if r["site"] == site}
    assert sorted(scalars) == [3, 5]  # step 0 has no reference yet: kl_gauss is left out
    assert scalars[5] == pytest.approx(measured[4], rel=1e-6)
