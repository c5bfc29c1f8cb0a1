"""One rank of a 2-process CPU DDP run of the Hugging Face Trainer with ShiftCallback (started by
``python -m torch.distributed.run`` from ``test_transformers_ddp.py``): trains the tiny BERT with
learning rate 0 and writes what it fed and what the callback measured to ``OUT/rank{r}.json``."""

from __future__ import annotations

import json
import os
import sys

import torch

torch.set_num_threads(1)  # two ranks on two cores

from transformers import Trainer, TrainingArguments  # noqa: E402
from transformers.data.data_collator import default_data_collator  # noqa: E402

from shiftkit.integrations.transformers import ShiftCallback  # noqa: E402
from tests.integrations.test_transformers import examples, tiny_bert  # noqa: E402

STEPS, MICRO, ACCUMULATE, EVERY = 4, 4, 2, 2


def main(out: str) -> None:
    rank = int(os.environ["RANK"])
    seen = []

    def collate(features):
        batch = default_data_collator(features)
        seen.append({k: v.tolist() for k, v in batch.items()})
        return batch

    args = TrainingArguments(
        output_dir=os.path.join(out, "hf"), per_device_train_batch_size=MICRO, gradient_accumulation_steps=ACCUMULATE,
        max_steps=STEPS, learning_rate=0.0, logging_steps=EVERY, report_to=[], use_cpu=True, ddp_backend="gloo",
        save_strategy="no", disable_tqdm=True, dataloader_num_workers=0, seed=0,
    )  # fmt: skip
    callback = ShiftCallback()
    trainer = Trainer(model=tiny_bert(), args=args, train_dataset=examples(2 * STEPS * MICRO * ACCUMULATE),
                      data_collator=collate, callbacks=[callback])  # fmt: skip
    trainer.train()
    world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump({"world": world, "history": callback.history, "batches": seen}, f)
    if torch.distributed.is_initialized():
        # Tear gloo down before the interpreter exits: left to exit, its threads were once
        # destroyed while joinable under load ("terminate called without an active exception",
        # SIGABRT, a failed run after both ranks had written their records).
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
